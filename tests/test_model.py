"""Manifests to model, and settings precedence: table-driven unit tests of the pure core."""

from __future__ import annotations

import pytest

from ofobserve import conventions
from ofobserve.errors import InvalidInput, Location
from ofobserve.loading import load_subjects
from ofobserve.manifests import build_function, is_function_document
from ofobserve.model import Runtime
from ofobserve.settings import parse_config, resolve
from ofobserve.subject import Subject
from tests.conftest import EXAMPLE_CONFIG, EXAMPLES


@pytest.fixture(scope="module")
def examples() -> dict[str, Subject]:
    subjects = load_subjects([str(EXAMPLES)], str(EXAMPLE_CONFIG))
    return {s.function.name: s for s in subjects}


@pytest.mark.parametrize(
    ("name", "runtime", "profile", "lo", "hi"),
    [
        ("hello-world", Runtime.KNATIVE, "knative", None, None),
        ("nodejs-sample", Runtime.KNATIVE, "knative", None, None),
        ("build-from-source", Runtime.KNATIVE, "ofobserve", None, None),
        ("sync-http-function", Runtime.KNATIVE, "ofobserve", 1, 10),
        ("async-kafka-function", Runtime.ASYNC, "dapr", 0, 10),
        ("order-processor", Runtime.ASYNC, "dapr", 1, 20),
        ("event-router", Runtime.ASYNC, "dapr", 0, 10),
        ("nightly-report", Runtime.ASYNC, "dapr", 0, 1),
        ("redis-subscriber", Runtime.ASYNC, "dapr", 0, 5),
        ("keda-http-function", Runtime.KEDA_HTTP, "keda-http", 0, 10),
        ("image-processor", Runtime.KNATIVE, "knative", 0, 8),
    ],
)
def test_examples_model(
    examples: dict[str, Subject],
    name: str,
    runtime: Runtime,
    profile: str,
    lo: int | None,
    hi: int | None,
) -> None:
    subject = examples[name]
    f = subject.function
    assert f.runtime is runtime
    assert subject.profile == profile
    assert (f.scale.min_replicas, f.scale.max_replicas) == (lo, hi)


def test_inputs_outputs_and_triggers(examples: dict[str, Subject]) -> None:
    router = examples["event-router"].function
    assert [(i.component, i.kind) for i in router.inputs] == [("events-in", "binding")]
    assert [(o.component, o.component_type, o.operation) for o in router.outputs] == [
        ("payments-out", "bindings.kafka", "create"),
        ("shipping-out", "bindings.kafka", "create"),
    ]
    orders = examples["order-processor"].function
    assert [(i.component, i.kind, i.topic) for i in orders.inputs] == [
        ("orders", "pubsub", "orders")
    ]
    [trigger] = orders.scale.triggers
    assert trigger.type == "kafka"
    assert dict(trigger.metadata)["lagThreshold"] == "5"
    assert orders.scale.polling_interval == 10
    cron = examples["nightly-report"].function
    assert cron.inputs[0].component_type == "bindings.cron"
    redis = examples["redis-subscriber"].function
    assert redis.dapr_sidecar_mode
    assert not cron.dapr_sidecar_mode


def test_http_route_and_port(examples: dict[str, Subject]) -> None:
    api = examples["sync-http-function"].function
    assert (api.http_port, api.http_paths) == (8080, ("/api",))
    node = examples["nodejs-sample"].function
    assert (node.api_version, node.http_port) == ("core.openfunction.io/v1beta1", 8080)


def test_settings_precedence(examples: dict[str, Subject]) -> None:
    """Built-in < defaults < overrides in file order < annotations."""
    api = examples["sync-http-function"].settings
    assert api.slo.availability == 99.9  # namespace override
    assert api.slo.latency.threshold == 0.25  # name override, later in the file
    assert api.slo.latency.quantile == 0.95  # defaults
    assert api.alerting.team == "checkout"
    assert api.alerting.severity_overrides == {"FunctionHighLatency": "critical"}
    media = examples["image-processor"].settings
    assert (media.slo.latency.threshold, media.alerting.team) == (2.0, "media")
    hello = examples["hello-world"].settings
    assert hello.slo.availability == 99.5
    assert hello.scaling.target_utilization == 0.7


def test_annotation_overrides_config() -> None:
    doc = {
        "apiVersion": "core.openfunction.io/v1beta2",
        "kind": "Function",
        "metadata": {
            "name": "fn",
            "namespace": "shop",
            "annotations": {
                f"{conventions.ANNOTATION_PREFIX}slo.availability": "99.95",
                f"{conventions.ANNOTATION_PREFIX}grafana.delivery": "json",
                "unrelated.io/x": "kept out",
            },
        },
        "spec": {"image": "x", "serving": {"triggers": {"http": {"port": 8080}}}},
    }
    function = build_function(doc, Location("fn.yaml", 0))
    config = parse_config(
        {
            "defaults": {"slo": {"availability": 99.0}},
            "overrides": [
                {"match": {"namespace": "shop"}, "settings": {"slo": {"availability": 99.9}}}
            ],
        },
        Location("c.yaml", 0),
    )
    settings = resolve(config, function)
    assert settings.slo.availability == 99.95
    assert settings.grafana.delivery == "json"


def test_merged_settings_are_validated_as_a_whole() -> None:
    """Each layer is valid alone; together min > max is caught, at the function."""
    doc = {
        "apiVersion": "core.openfunction.io/v1beta2",
        "kind": "Function",
        "metadata": {"name": "fn", "annotations": {"ofobserve.io/scaling.minReplicas": "5"}},
        "spec": {"image": "x"},
    }
    function = build_function(doc, Location("fn.yaml", 0))
    config = parse_config({"defaults": {"scaling": {"maxReplicas": 3}}}, Location("c.yaml", 0))
    with pytest.raises(InvalidInput) as caught:
        resolve(config, function)
    [problem] = caught.value.problems
    assert str(problem) == (
        "fn.yaml[0] settings.scaling: maxReplicas (3) must be >= minReplicas (5) "
        "(settings merged from c.yaml and annotations)"
    )


@pytest.mark.parametrize(
    ("doc", "ours"),
    [
        ({"apiVersion": "core.openfunction.io/v1beta2", "kind": "Function"}, True),
        ({"apiVersion": "core.openfunction.io/v1beta2", "kind": "Serving"}, False),
        ({"apiVersion": "core.openfunction.io/v1alpha1", "kind": "Functoin"}, True),
        ({"apiVersion": "openfunction.io/v1", "kind": "Function"}, True),
        ({"apiVersion": "fission.io/v1", "kind": "Function"}, False),
        ({"apiVersion": "dapr.io/v1alpha1", "kind": "Component"}, False),
        (["not", "a", "mapping"], False),
    ],
)
def test_which_documents_are_functions(doc: object, ours: bool) -> None:
    assert is_function_document(doc) is ours


def test_v1beta1_legacy_replica_counts() -> None:
    doc = {
        "apiVersion": "core.openfunction.io/v1beta1",
        "kind": "Function",
        "metadata": {"name": "legacy"},
        "spec": {
            "image": "x",
            "serving": {
                "runtime": "async",
                "inputs": [{"name": "in", "component": "kafka"}],
                "bindings": {"kafka": {"type": "bindings.kafka"}},
                "triggers": [{"type": "kafka", "metadata": {"lagThreshold": "10"}}],
                "scaleOptions": {
                    "keda": {"scaledObject": {"minReplicaCount": 2, "maxReplicaCount": 1}}
                },
            },
        },
    }
    with pytest.raises(InvalidInput) as caught:
        build_function(doc, Location("legacy.yaml", 3))
    assert [str(p) for p in caught.value.problems] == [
        "legacy.yaml[3] spec.serving.scaleOptions.keda.scaledObject.maxReplicaCount: "
        "must be >= minReplicaCount (2)"
    ]


def test_hpa_name_follows_keda_default() -> None:
    from ofobserve.model import ClusterRefs

    assert ClusterRefs(scaled_object="serving-q9z4m-scaler-yyyyy").hpa == (
        "keda-hpa-serving-q9z4m-scaler-yyyyy"
    )
    assert ClusterRefs(http_scaled_object="serving-k-scaler-f").hpa == "keda-hpa-serving-k-scaler-f"
    assert ClusterRefs().hpa == ""

"""The scaling group: KEDA wiring for the ofobserve scaler, checked against the upstream
CRDs, and its trigger metadata read back by the scaler itself."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml

from ofobserve.builders.scaling import (
    HPA_BEHAVIOR,
    build_scaling,
    build_trigger_authentication,
    scaler_metadata,
    why_not_wired,
)
from ofobserve.errors import Location
from ofobserve.loading import build_functions, load_subjects
from ofobserve.model import ClusterRefs, Runtime
from ofobserve.scaler.config import parse_metadata
from ofobserve.subject import Subject
from tests.conftest import EXAMPLE_CONFIG, EXAMPLES
from tests.support.kube import KubeAPI, dropped_fields
from tests.support.patches import merge_patch

SUBJECTS = load_subjects([str(EXAMPLES)], str(EXAMPLE_CONFIG))
ASYNC = [s for s in SUBJECTS if s.function.runtime == Runtime.ASYNC]
WIRED = [s for s in ASYNC if why_not_wired(s) is None]


def _manifest(subject: Subject) -> dict[str, Any]:
    f = subject.function
    for doc in yaml.safe_load_all((EXAMPLES / f.source.source.split("/")[-1]).read_text()):
        if doc and doc.get("kind") == "Function" and doc["metadata"]["name"] == f.name:
            return dict(doc)
    raise AssertionError(f"{f.name} not found in {f.source}")


@pytest.mark.parametrize("subject", WIRED, ids=lambda s: s.function.qualified_name)
def test_the_patched_function_validates_and_keeps_its_own_triggers(
    subject: Subject, validate_cr: Any
) -> None:
    patch = build_scaling(subject)
    assert patch is not None
    # What the patch adds validates against the Function CRD (on a minimal Function: the
    # examples' Dapr binding values are strings, which the upstream CRD types as objects).
    validate_cr(merge_patch({"spec": {"image": "example/fn:v1"}}, patch))
    original = _manifest(subject)
    patched = merge_patch(original, patch)
    triggers = patched["spec"]["serving"]["scaleOptions"]["keda"]["triggers"]
    own = original["spec"]["serving"].get("scaleOptions", {}).get("keda", {}).get("triggers", [])
    assert triggers[: len(own)] == own  # verbatim, first
    ours = triggers[-1]
    assert (ours["type"], ours["name"]) == ("external-push", "ofobserve")
    scaled = patched["spec"]["serving"]["scaleOptions"]["keda"]["scaledObject"]
    written = original["spec"]["serving"].get("scaleOptions", {}).get("keda", {})
    behavior = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    if "advanced" in written.get("scaledObject", {}):  # the user's own is kept
        assert (
            behavior
            == written["scaledObject"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        )
    else:
        assert behavior == HPA_BEHAVIOR
    # KEDA 2.10's fallback (what OpenFunction pins): no `behavior`, which would be pruned
    assert scaled["fallback"] == {"failureThreshold": 3, "replicas": max(f_min(subject), 1)}


def f_min(subject: Subject) -> int:
    return subject.function.scale.min_replicas or 0


@pytest.mark.parametrize("subject", WIRED, ids=lambda s: s.function.qualified_name)
def test_the_patch_survives_the_real_api_server(subject: Subject, kube_apiserver: KubeAPI) -> None:
    """Applied to a stored Function the way kubectl patch does, nothing of it is dropped."""
    patch = build_scaling(subject)
    assert patch is not None
    namespace = kube_apiserver.fresh_namespace("scaling")
    f = subject.function
    base = {
        "apiVersion": f.api_version,
        "kind": "Function",
        "metadata": {"name": f.name, "namespace": namespace},
        "spec": {"image": "example/fn:v1", "serving": {"triggers": {"dapr": [{"name": "in"}]}}},
    }
    kube_apiserver.apply_and_read_back(base)
    change = {"spec": patch["spec"]}
    stored = kube_apiserver.merge_patch("functions", namespace, f.name, change)
    sent = merge_patch(base, change)
    assert dropped_fields(sent, stored) == []


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda s: s.function.qualified_name)
def test_the_scaler_accepts_the_metadata_it_is_given(subject: Subject) -> None:
    """The render builder and the scaler agree: the trigger's metadata parses, and the
    settings arrive unchanged (the ScaledObject's own name is a generated one)."""
    metadata = scaler_metadata(subject)
    config = parse_metadata("serving-abcde-scaler-fghij", "elsewhere", metadata)
    f, s = subject.function, subject.settings.scaling
    assert config.key == (f.namespace, f.name)
    assert config.profile == subject.profile
    assert config.target_concurrency == s.target_concurrency
    assert config.target_utilization == s.target_utilization
    assert config.latency_objective == s.latency_objective


def test_other_runtimes_and_file_mode_scaled_objects_are_left_out() -> None:
    for subject in SUBJECTS:
        if subject.function.runtime != Runtime.ASYNC:
            assert build_scaling(subject) is None, subject.function.name
            assert why_not_wired(subject) in (
                "Knative's autoscaler scales it (docs/scaling.md)",
                "the KEDA HTTP add-on's ScaledObject scales it (docs/scaling.md)",
            )
    standalone = _with(WIRED[0], delivery="scaled-object")
    assert build_scaling(standalone) is None  # no workload name without --from-cluster
    assert why_not_wired(standalone) == (
        "scaling.delivery scaled-object needs --from-cluster (the Deployment's name)"
    )


def test_a_cron_function_without_triggers_is_never_wired() -> None:
    """Wired, its only trigger would be the scaler, idle between runs: KEDA would scale it
    to zero and the cron binding would have no pod to fire in."""
    [nightly] = [s for s in ASYNC if s.function.name == "nightly-report"]
    assert nightly.function.scale.min_replicas == 0
    assert build_scaling(nightly) is None
    reason = why_not_wired(nightly)
    assert reason is not None
    assert reason.startswith("a cron binding and no KEDA trigger")


def _trigger_less(**scaling: Any) -> Subject:
    doc = {
        "apiVersion": "core.openfunction.io/v1beta2",
        "kind": "Function",
        "metadata": {"name": "queue-worker", "namespace": "jobs"},
        "spec": {
            "image": "example/worker:v1",
            "serving": {
                "scaleOptions": {"minReplicas": 0, "maxReplicas": 4},
                "pubsub": {"work": {"type": "pubsub.redis", "version": "v1", "metadata": []}},
                "triggers": {"dapr": [{"name": "work", "topic": "work"}]},
            },
        },
    }
    [function] = build_functions([(Location("worker.yaml", 0), doc)])
    return _with(Subject(function, SUBJECTS[0].settings), **scaling)


def test_a_function_without_triggers_of_its_own_never_scales_to_zero() -> None:
    subject = _trigger_less()
    patch = build_scaling(subject)
    assert patch is not None
    options = patch["spec"]["serving"]["scaleOptions"]
    assert options["minReplicas"] == 1  # nothing else could wake it from zero
    assert [t["name"] for t in options["keda"]["triggers"]] == ["ofobserve"]
    assert scaler_metadata(subject)["minReplicas"] == "1"


def test_no_second_scaled_object_beside_one_keda_already_has() -> None:
    """KEDA's webhook refuses a second ScaledObject for a workload ("the workload ... is
    already managed by the ScaledObject ..."): keda-http functions have the add-on's, and
    async functions with triggers OpenFunction's."""
    refs = ClusterRefs(
        workload="serving-x-deployment-v1-abcde", scaled_object="serving-x-scaler-fghij"
    )
    for subject in SUBJECTS:
        f = subject.function
        if f.runtime is Runtime.KNATIVE:
            continue
        cluster = Subject(dataclasses.replace(f, refs=refs), subject.settings)
        assert build_scaling(_with(cluster, delivery="scaled-object")) is None, f.name
    lone = _trigger_less(delivery="scaled-object")
    lone = Subject(
        dataclasses.replace(lone.function, refs=ClusterRefs(workload="w-deployment-v1-x")),
        lone.settings,
    )
    scaled = build_scaling(lone)
    assert scaled is not None
    assert scaled["spec"]["minReplicaCount"] == 1


def _with(subject: Subject, **scaling: Any) -> Subject:
    settings = subject.settings.model_copy(
        update={"scaling": subject.settings.scaling.model_copy(update=scaling)}
    )
    return Subject(subject.function, settings)


def test_a_standalone_scaled_object_validates(validate_cr: Any) -> None:
    subject = _with(_trigger_less(), delivery="scaled-object", tls_secret="client-tls")
    function = dataclasses.replace(
        subject.function, refs=ClusterRefs(workload="serving-x-deployment-v1-abcde")
    )
    subject = Subject(function, subject.settings)
    scaled = build_scaling(subject)
    assert scaled is not None
    validate_cr(scaled)
    assert scaled["metadata"]["name"] == f"ofobserve-{function.name}"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "serving-x-deployment-v1-abcde"
    auth = build_trigger_authentication(subject)
    assert auth is not None
    validate_cr(auth)
    assert scaled["spec"]["triggers"][0]["authenticationRef"] == {"name": auth["metadata"]["name"]}


def test_tls_secret_adds_a_trigger_authentication(validate_cr: Any) -> None:
    shop = [s for s in ASYNC if s.function.namespace == "shop"]
    assert shop
    for subject in shop:
        auth = build_trigger_authentication(subject)
        assert auth is not None
        validate_cr(auth)
        params = {r["parameter"] for r in auth["spec"]["secretTargetRef"]}
        assert params == {"caCert", "tlsClientCert", "tlsClientKey"}
    for subject in WIRED:
        if subject.function.namespace != "shop":
            assert build_trigger_authentication(subject) is None


def _async(name: str, **serving: Any) -> Subject:
    """An async v1beta2 Function with one pubsub input and ``serving`` on top."""
    base: dict[str, Any] = {
        "pubsub": {"work": {"type": "pubsub.redis", "version": "v1", "metadata": []}},
        "triggers": {"dapr": [{"name": "work", "topic": "work"}]},
    }
    doc = {
        "apiVersion": "core.openfunction.io/v1beta2",
        "kind": "Function",
        "metadata": {"name": name, "namespace": "jobs"},
        "spec": {"image": "example/worker:v1", "serving": {**base, **serving}},
    }
    [function] = build_functions([(Location(f"{name}.yaml", 0), doc)])
    return Subject(function, SUBJECTS[0].settings)


REDIS = {"type": "redis-streams", "metadata": {"address": "r:6379", "stream": "s"}}


def test_rendering_a_patched_function_again_keeps_one_trigger_of_ours() -> None:
    """Re-rendered from the cluster or from a GitOps source that holds the patch, the
    patch must not add a second `ofobserve` trigger (KEDA refuses duplicate names)."""
    first = build_scaling(_async("twice", scaleOptions={"keda": {"triggers": [REDIS]}}))
    assert first is not None
    patched = merge_patch(
        {"spec": {"serving": {"scaleOptions": {"keda": {"triggers": [REDIS]}}}}}, first
    )
    again = build_scaling(_async("twice", scaleOptions=patched["spec"]["serving"]["scaleOptions"]))
    assert again is not None
    names = [t.get("name") for t in again["spec"]["serving"]["scaleOptions"]["keda"]["triggers"]]
    assert names == [None, "ofobserve"]


def test_the_users_own_fallback_and_hpa_behavior_are_kept() -> None:
    mine = {
        "fallback": {"failureThreshold": 5, "replicas": 6},
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {
            "stabilizationWindowSeconds": 300}}}},
    }  # fmt: skip
    options = {"keda": {"triggers": [REDIS], "scaledObject": mine}}
    patch = build_scaling(_async("own", scaleOptions=options))
    assert patch is not None
    assert "scaledObject" not in patch["spec"]["serving"]["scaleOptions"]["keda"]
    patched = merge_patch({"spec": {"serving": {"scaleOptions": options}}}, patch)
    assert patched["spec"]["serving"]["scaleOptions"]["keda"]["scaledObject"] == mine


@pytest.mark.parametrize(
    "trigger",
    [
        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}},
        {"type": "memory", "metadata": {"value": "60"}},
        {**REDIS, "metricType": "Value"},
    ],
)
def test_no_fallback_beside_a_trigger_keda_refuses_one_for(trigger: dict[str, Any]) -> None:
    """KEDA's CheckFallbackValid refuses a fallback with cpu/memory triggers or a metric
    type other than AverageValue; the ScaledObject would fail as a whole."""
    patch = build_scaling(_async("nofb", scaleOptions={"keda": {"triggers": [trigger]}}))
    assert patch is not None
    keda = patch["spec"]["serving"]["scaleOptions"]["keda"]
    assert "fallback" not in keda.get("scaledObject", {})


@pytest.mark.parametrize(
    "serving",
    [{"workloadType": "Job"}, {"scaleOptions": {"keda": {"scaledJob": {"pollingInterval": 5},
                                                          "triggers": [REDIS]}}}],
)  # fmt: skip
def test_a_job_workload_is_not_wired(serving: dict[str, Any]) -> None:
    """OpenFunction makes a ScaledJob for it and refuses scaledObject beside scaledJob."""
    subject = _async("job", **serving)
    assert build_scaling(subject) is None
    assert why_not_wired(subject) == (
        "a Job workload: OpenFunction makes a ScaledJob, which takes no HPA metric"
    )


def test_bounds_land_where_v1beta2_reads_them() -> None:
    """scaledObject.minReplicaCount/maxReplicaCount are pruned in v1beta2: the patch
    writes them as scaleOptions.minReplicas/maxReplicas, which OpenFunction copies into
    the ScaledObject (else KEDA's default cap of 100 applies)."""
    legacy = {"keda": {"triggers": [REDIS], "scaledObject": {"minReplicaCount": 0,
                                                             "maxReplicaCount": 7}}}  # fmt: skip
    patch = build_scaling(_async("legacy", scaleOptions=legacy))
    assert patch is not None
    options = patch["spec"]["serving"]["scaleOptions"]
    assert (options["minReplicas"], options["maxReplicas"]) == (0, 7)
    lone = build_scaling(_async("lone"))
    assert lone is not None
    options = lone["spec"]["serving"]["scaleOptions"]
    assert (options["minReplicas"], options["maxReplicas"]) == (1, 10)


def test_the_charts_cluster_trigger_authentication_is_referred_to_by_kind(
    kube_apiserver: KubeAPI,
) -> None:
    """With the chart's ClusterTriggerAuthentication, the trigger names it with its kind
    (which the Function CRD keeps), and no per-function TriggerAuthentication is made."""
    ref = {"kind": "ClusterTriggerAuthentication", "name": "ofobserve-scaler"}
    subject = WIRED[0]
    subject = Subject(
        subject.function,
        subject.settings.model_copy(
            update={
                "scaling": subject.settings.scaling.model_validate({"triggerAuthentication": ref})
            }
        ),
    )
    patch = build_scaling(subject)
    assert patch is not None
    [ours] = [t for t in patch["spec"]["serving"]["scaleOptions"]["keda"]["triggers"]
              if t.get("name") == "ofobserve"]  # fmt: skip
    assert ours["authenticationRef"] == ref
    assert build_trigger_authentication(subject) is None
    namespace = kube_apiserver.fresh_namespace("chart-auth")
    f = subject.function
    base = {
        "apiVersion": f.api_version,
        "kind": "Function",
        "metadata": {"name": f.name, "namespace": namespace},
        "spec": {"image": "example/fn:v1", "serving": {"triggers": {"dapr": [{"name": "in"}]}}},
    }
    kube_apiserver.apply_and_read_back(base)
    stored = kube_apiserver.merge_patch("functions", namespace, f.name, {"spec": patch["spec"]})
    assert dropped_fields(merge_patch(base, {"spec": patch["spec"]}), stored) == []


def test_tls_secret_and_trigger_authentication_are_one_or_the_other() -> None:
    with pytest.raises(ValueError, match=r"give tlsSecret .* or triggerAuthentication"):
        SUBJECTS[0].settings.scaling.model_validate(
            {"tlsSecret": "client", "triggerAuthentication": {"name": "ofobserve-scaler"}}
        )

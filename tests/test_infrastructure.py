"""The real-component fixtures are real: a kube-apiserver 1.20 that validates and prunes custom
resources, and a Fluent Bit that refuses what it cannot start. Plus :func:`dropped_fields`,
the pruning detector the CRD tests rely on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.fluentbit import assert_started, dry_run, start_for
from tests.support.kube import KubeAPI, KubeError, dropped_fields

FALLBACK = "spec.serving.scaleOptions.keda.scaledObject.fallback"


def function(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "core.openfunction.io/v1beta2",
        "kind": "Function",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": "openfunctiondev/sample-go-func:v1", **spec},
    }


# --- dropped_fields, on plain data ---------------------------------------------------------


def test_dropped_fields_names_missing_and_changed_paths() -> None:
    sent = {
        "spec": {
            "a": {"b": 1, "c": "x"},
            "items": [{"k": "v"}, {"k": "w", "gone": True}],
            "labels": {"ofobserve.io/function": "f"},
        }
    }
    stored = {"spec": {"a": {"b": 1, "c": "y"}, "items": [{"k": "v"}, {"k": "w"}], "labels": {}}}
    assert dropped_fields(sent, stored) == [
        "spec.a.c",
        "spec.items[1].gone",
        'spec.labels["ofobserve.io/function"]',
    ]


def test_dropped_fields_ignores_server_metadata_and_added_fields() -> None:
    sent = {"metadata": {"name": "f", "uid": "mine", "resourceVersion": "1"}, "spec": {"n": 1}}
    stored = {
        "metadata": {"name": "f", "uid": "theirs", "resourceVersion": "42", "generation": 1},
        "spec": {"n": 1.0, "added": "by the server"},
        "status": {},
    }
    assert dropped_fields(sent, stored) == []


def test_dropped_fields_does_not_equate_booleans_with_numbers() -> None:
    assert dropped_fields({"spec": {"on": True, "n": 1}}, {"spec": {"on": 1, "n": True}}) == [
        "spec.n",
        "spec.on",
    ]


def test_dropped_fields_reports_a_shortened_list() -> None:
    assert dropped_fields({"x": [1, 2, 3]}, {"x": [1]}) == ["x[1]", "x[2]"]


# --- the API server --------------------------------------------------------------------------


def test_api_server_is_kubernetes_1_20(kube_apiserver: KubeAPI) -> None:
    version = json.loads(kube_apiserver.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.20.")


def test_api_server_prunes_undeclared_function_fields(kube_apiserver: KubeAPI) -> None:
    """Known 1.20 behaviour: no strict field validation, undeclared fields vanish silently.
    ``spec.port`` exists only in v1beta1, and OpenFunction's embedded ScaledObject fallback
    predates KEDA's ``behavior``."""
    namespace = kube_apiserver.fresh_namespace()
    fallback = {"failureThreshold": 3, "replicas": 1, "behavior": "currentReplicasIfHigher"}
    sent = function(
        namespace,
        "pruned",
        {
            "port": 8080,
            "serving": {"scaleOptions": {"keda": {"scaledObject": {"fallback": fallback}}}},
        },
    )
    stored = kube_apiserver.apply_and_read_back(sent)
    assert stored["metadata"]["uid"]
    assert dropped_fields(sent, stored) == ["spec.port", f"{FALLBACK}.behavior"]


def test_api_server_validates_function_schema(kube_apiserver: KubeAPI) -> None:
    """The server itself refuses (kubectl's own check, from the server's OpenAPI, is off)."""
    invalid = function(kube_apiserver.fresh_namespace(), "no-image", {})
    del invalid["spec"]["image"]
    with pytest.raises(KubeError, match=r'"no-image" is invalid: spec\.image: Required value'):
        kube_apiserver.kubectl("create", "--validate=false", "-f", "-", input=json.dumps(invalid))


def test_merge_patch_adds_a_serving_label(kube_apiserver: KubeAPI) -> None:
    namespace = kube_apiserver.fresh_namespace()
    kube_apiserver.apply_and_read_back(function(namespace, "patched", {}))
    patch = {"spec": {"serving": {"labels": {"ofobserve.io/function": "patched"}}}}
    stored = kube_apiserver.merge_patch(
        "functions.core.openfunction.io", namespace, "patched", patch
    )
    assert stored["spec"]["serving"]["labels"] == {"ofobserve.io/function": "patched"}
    assert stored["spec"]["image"] == "openfunctiondev/sample-go-func:v1"


@pytest.mark.parametrize("server_side", [False, True], ids=["create", "server-side-apply"])
def test_scaled_object_round_trips(kube_apiserver: KubeAPI, server_side: bool) -> None:
    namespace = kube_apiserver.fresh_namespace()
    sent = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "order-processor", "namespace": namespace, "labels": {"a": "b"}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fn"},
            "minReplicaCount": 0,
            "maxReplicaCount": 10,
            "pollingInterval": 15,
            "fallback": {"failureThreshold": 3, "replicas": 2, "behavior": "currentReplicas"},
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}
                }
            },
            "triggers": [
                {
                    "type": "external-push",
                    "metadata": {"scalerAddress": "ofobserve-scaler.ofobserve:6000"},
                    "authenticationRef": {"name": "ofobserve-scaler-tls"},
                }
            ],
        },
    }
    stored = kube_apiserver.apply_and_read_back(sent, server_side=server_side)
    assert dropped_fields(sent, stored) == []
    if server_side:  # kubectl >= 1.21 hides managedFields unless asked
        shown = kube_apiserver.get_json(
            "scaledobjects.keda.sh", "order-processor", "-n", namespace, "--show-managed-fields"
        )
        managers = {
            (entry["manager"], entry["operation"]) for entry in shown["metadata"]["managedFields"]
        }
        assert managers == {("ofobserve-tests", "Apply")}


# --- Fluent Bit ------------------------------------------------------------------------------


def write_config(tmp_path: Path, inputs: list[dict[str, Any]]) -> Path:
    config = {
        "service": {"flush": 1, "log_level": "info"},
        "pipeline": {"inputs": inputs, "outputs": [{"name": "null", "match": "*"}]},
    }
    path = tmp_path / "fluent-bit.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_fluent_bit_starts_a_valid_pipeline(fluent_bit: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "dummy", "tag": "test"}])
    checked = dry_run(fluent_bit, config)
    assert checked.returncode == 0, checked.stderr
    assert "configuration test is successful" in checked.stdout + checked.stderr
    returncode, log = start_for(fluent_bit, config)
    assert_started(log, returncode is None)
    assert "[input:dummy:dummy.0] initializing" in log


def test_fluent_bit_start_catches_an_unopenable_database(fluent_bit: str, tmp_path: Path) -> None:
    tail = {"name": "tail", "path": str(tmp_path / "*.log"), "db": "/nonexistent-dir/x.db"}
    config = write_config(tmp_path, [tail])
    assert dry_run(fluent_bit, config).returncode == 0  # why a real start is needed
    returncode, log = start_for(fluent_bit, config)
    assert returncode is not None
    with pytest.raises(AssertionError, match=r"cannot open database /nonexistent-dir/x\.db"):
        assert_started(log, returncode is None)


def test_fluent_bit_dry_run_rejects_an_unknown_plugin(fluent_bit: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "no_such_plugin"}])
    checked = dry_run(fluent_bit, config)
    assert checked.returncode != 0
    assert "'no_such_plugin' tried to instance a plugin name that doesn't exist" in checked.stderr

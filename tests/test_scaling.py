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
)
from ofobserve.loading import load_subjects
from ofobserve.model import ClusterRefs, Runtime
from ofobserve.scaler.config import parse_metadata
from ofobserve.subject import Subject
from tests.conftest import EXAMPLE_CONFIG, EXAMPLES
from tests.support.patches import merge_patch

SUBJECTS = load_subjects([str(EXAMPLES)], str(EXAMPLE_CONFIG))
ASYNC = [s for s in SUBJECTS if s.function.runtime == Runtime.ASYNC]


def _manifest(subject: Subject) -> dict[str, Any]:
    f = subject.function
    for doc in yaml.safe_load_all((EXAMPLES / f.source.source.split("/")[-1]).read_text()):
        if doc and doc.get("kind") == "Function" and doc["metadata"]["name"] == f.name:
            return dict(doc)
    raise AssertionError(f"{f.name} not found in {f.source}")


@pytest.mark.parametrize("subject", ASYNC, ids=lambda s: s.function.qualified_name)
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
    assert scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == HPA_BEHAVIOR
    assert scaled["fallback"]["failureThreshold"] == 3


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
    standalone = _with(ASYNC[0], delivery="scaled-object")
    assert build_scaling(standalone) is None  # no workload name without --from-cluster


def _with(subject: Subject, **scaling: Any) -> Subject:
    settings = subject.settings.model_copy(
        update={"scaling": subject.settings.scaling.model_copy(update=scaling)}
    )
    return Subject(subject.function, settings)


def test_a_standalone_scaled_object_validates(validate_cr: Any) -> None:
    subject = _with(ASYNC[0], delivery="scaled-object", tls_secret="client-tls")
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
    for subject in ASYNC:
        if subject.function.namespace != "shop":
            assert build_trigger_authentication(subject) is None

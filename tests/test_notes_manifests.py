"""Functions written in older forms (examples/notes) are read as their authors meant, and
every field OpenFunction would drop is warned about: exactly the fields the CRD's pruning
rules drop, and exactly those the real API server drops."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ofobserve.builders.scaling import build_scaling
from ofobserve.loading import load_subjects
from ofobserve.model import Runtime
from tests.conftest import EXAMPLE_CONFIG, EXAMPLES, run_cli
from tests.support.crds import pruned_fields as crd_pruned
from tests.support.kube import KubeAPI, KubeError, dropped_fields, storable_function
from tests.support.tools import REPO

NOTES = REPO / "examples" / "notes"
WARNING = re.compile(
    r"^warning: (?P<file>\S+)\[(?P<doc>\d+)\] (?P<field>\S+): not an OpenFunction v1beta2 field; "
    r"OpenFunction drops it\. (?P<advice>.+)$"
)


def _documents() -> list[tuple[str, int, dict[str, Any]]]:
    found = []
    for path in sorted(NOTES.glob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            found.append((path.relative_to(REPO).as_posix(), index, doc))
    return found


def _warned(stderr: str) -> dict[tuple[str, int], set[str]]:
    warned: dict[tuple[str, int], set[str]] = {}
    for line in stderr.splitlines():
        match = WARNING.match(line)
        if match:
            key = (Path(match["file"]).relative_to(REPO).as_posix(), int(match["doc"]))
            warned.setdefault(key, set()).add(match["field"])
    return warned


def test_render_reads_them_by_intent_and_exits_0(tmp_path: Path) -> None:
    result = run_cli("render", str(NOTES), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stderr.splitlines()[1:]}
    assert rows["notes/kafka-enricher"][:2] == ["async", "dapr"]
    assert rows["notes/alert-subscriber"][:2] == ["async", "dapr"]
    assert rows["notes/cleanup-job"][:2] == ["async", "dapr"]
    assert rows["notes/greeter"][:2] == ["knative", "knative"]
    subjects = {s.function.name: s for s in load_subjects([str(NOTES)], None)}
    kafka = subjects["kafka-enricher"].function
    assert [(i.component, i.component_type) for i in kafka.inputs] == [
        ("raw-events", "bindings.kafka")
    ]
    assert [(o.component, o.operation) for o in kafka.outputs] == [("enriched-events", "create")]
    assert [t.type for t in kafka.scale.triggers] == ["kafka"]
    alerts = subjects["alert-subscriber"].function
    assert [(i.component, i.kind, i.topic) for i in alerts.inputs] == [
        ("alerts", "pubsub", "alerts")
    ]
    cron = subjects["cleanup-job"].function
    assert [i.component_type for i in cron.inputs] == ["bindings.cron"]
    assert subjects["greeter"].function.runtime is Runtime.KNATIVE
    assert subjects["greeter"].function.http_port == 8080
    assert subjects["thumbnailer"].function.http_port == 8081


def test_their_own_triggers_move_to_where_v1beta2_reads_them() -> None:
    subjects = {s.function.name: s for s in load_subjects([str(NOTES)], None)}
    patch = build_scaling(subjects["kafka-enricher"])
    assert patch is not None
    triggers = patch["spec"]["serving"]["scaleOptions"]["keda"]["triggers"]
    written = yaml.safe_load((NOTES / "kafka-bindings.yaml").read_text())
    own = written["spec"]["serving"]["scaleOptions"]["keda"]["scaledObject"]["triggers"]
    assert triggers[:-1] == own  # verbatim
    assert triggers[-1]["name"] == "ofobserve"
    assert build_scaling(subjects["cleanup-job"]) is None  # a cron job keeps its replica


def test_each_pruned_field_is_warned_exactly_once() -> None:
    result = run_cli("validate", str(NOTES))
    assert result.exit_code == 0, result.stderr
    warned = _warned(result.stderr)
    lines = [line for line in result.stderr.splitlines() if WARNING.match(line)]
    assert len(lines) == sum(len(fields) for fields in warned.values())
    for source, index, doc in _documents():
        assert warned.get((source, index), set()) == set(crd_pruned(doc)), (source, index)
    assert "Write spec.serving.triggers.http.port instead" in result.stderr


def test_the_crd_refuses_plain_string_component_values(kube_apiserver: KubeAPI) -> None:
    [(_source, _index, doc)] = [
        d for d in _documents() if d[2]["metadata"]["name"] == "cleanup-job"
    ]
    sent = {**doc, "metadata": {**doc["metadata"], "namespace": kube_apiserver.fresh_namespace()}}
    with pytest.raises(KubeError, match=r"metadata\.value in body must be of type object"):
        kube_apiserver.apply_and_read_back(sent)


def test_the_real_api_server_drops_exactly_the_warned_fields(kube_apiserver: KubeAPI) -> None:
    warned = _warned(run_cli("validate", str(NOTES)).stderr)
    namespace = kube_apiserver.fresh_namespace("notes")
    for source, index, doc in _documents():
        sent = storable_function({**doc, "metadata": {**doc["metadata"], "namespace": namespace}})
        stored = kube_apiserver.apply_and_read_back(sent)
        assert set(dropped_fields(sent, stored)) == warned.get((source, index), set())


def test_validate_strict_fails_naming_file_document_and_field() -> None:
    result = run_cli("validate", "--strict", str(NOTES))
    assert result.exit_code == 1
    assert (
        "error: examples/notes/knative-port.yaml[1] spec.port: not an OpenFunction v1beta2 "
        "field; OpenFunction drops it. Write spec.serving.triggers.http.port instead"
    ) in result.stderr.replace(str(REPO) + "/", "")
    assert result.stderr.rstrip().endswith("error(s); nothing was written")


@pytest.mark.parametrize("command", ["render", "validate"])
def test_the_bundled_examples_have_nothing_to_warn_about(command: str, tmp_path: Path) -> None:
    args = ["-o", str(tmp_path / "out")] if command == "render" else []
    result = run_cli(command, str(EXAMPLES), "-c", str(EXAMPLE_CONFIG), *args)
    assert result.exit_code == 0, result.stderr
    assert "warning:" not in result.stderr
    assert run_cli("validate", "--strict", str(EXAMPLES)).exit_code == 0


def _one(tmp_path: Path, serving: dict[str, Any]) -> str:
    doc = {
        "apiVersion": "core.openfunction.io/v1beta2",
        "kind": "Function",
        "metadata": {"name": "fn", "namespace": "default"},
        "spec": {"image": "example/fn:v1", "serving": serving},
    }
    path = tmp_path / "fn.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = run_cli("validate", str(path))
    assert result.exit_code == 0, result.stderr
    return result.stderr.replace(f"{path}[0] ", "")


def test_triggers_inputs_alone_make_a_sync_function(tmp_path: Path) -> None:
    """OpenFunction's defaulting webhook adds triggers.http when triggers.dapr is empty
    (apis/core/v1beta2/function_webhook.go Default), so such a function runs on Knative."""
    stderr = _one(
        tmp_path,
        {
            "bindings": {"in": {"type": "bindings.kafka", "version": "v1", "metadata": []}},
            "triggers": {"inputs": [{"dapr": {"name": "in"}}]},
        },
    )
    assert (
        "warning: spec.serving.triggers.inputs: without spec.serving.triggers.dapr, OpenFunction "
        "adds triggers.http (port 8080) and runs the function as a sync Knative function (its "
        "defaulting webhook). For an async function write spec.serving.triggers.dapr: "
        "[{name: in}] instead"
    ) in stderr
    [subject] = load_subjects([str(tmp_path / "fn.yaml")], None)
    assert subject.function.runtime is Runtime.KNATIVE


def test_the_advice_keeps_topics_and_v1beta1_names(tmp_path: Path) -> None:
    stderr = _one(
        tmp_path,
        {
            "runtime": "async",
            "inputs": [{"name": "producer", "component": "kafka-server", "topic": "sample"}],
            "outputs": [{"name": "notify", "component": "notification-manager"}],
            "pubsub": {"kafka-server": {"type": "pubsub.kafka", "version": "v1", "metadata": []}},
            "bindings": {
                "notification-manager": {"type": "bindings.http", "version": "v1", "metadata": []}
            },
        },
    )
    assert (
        "spec.serving.inputs: not an OpenFunction v1beta2 field; OpenFunction drops it. Write "
        "spec.serving.triggers.dapr: [{name: kafka-server, topic: sample, inputName: producer}] "
        "instead"
    ) in stderr
    assert (
        "spec.serving.outputs[0].name: not an OpenFunction v1beta2 field; OpenFunction drops it. "
        "Write spec.serving.outputs[0].dapr.outputName: notify instead (v1beta1-style function "
        "code looks the output up by this name)"
    ) in stderr
    assert (
        "spec.serving.runtime: not an OpenFunction v1beta2 field; OpenFunction drops it. Write "
        "spec.serving.triggers.dapr instead (a v1beta2 function is async with it)"
    ) in stderr

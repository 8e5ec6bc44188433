"""The telemetry group: Fluent Bit and OpenTelemetry Collector configuration checked
structurally against their documented schemas (neither binary can run here), the
per-function OTEL_* patch against the Function CRD, and no secret in any rendered file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ofobserve.builders.telemetry import (
    build_otel_env_patch,
    collector_config,
    fluent_bit_config,
)
from ofobserve.loading import load_config, load_subjects
from ofobserve.settings import Settings, fleet_settings
from ofobserve.subject import Subject
from tests.conftest import EXAMPLE_CONFIG, EXAMPLES, run_cli
from tests.support.patches import merge_patch

SUBJECTS = load_subjects([str(EXAMPLES)], str(EXAMPLE_CONFIG))
FLEET = fleet_settings(load_config(str(EXAMPLE_CONFIG)))

# Fluent Bit's YAML configuration format (docs.fluentbit.io, "YAML configuration"): the
# sections, and per plugin the keys its documentation marks as needed for this use.
FLUENT_BIT_SECTIONS = {"service", "pipeline", "parsers", "multiline_parsers", "env", "includes"}
PIPELINE_KINDS = ("inputs", "filters", "outputs")
PLUGINS: dict[str, dict[str, set[str]]] = {
    "inputs": {"tail": {"path"}},
    "filters": {"kubernetes": {"match"}, "grep": {"match", "regex"}},
    "outputs": {
        "es": {"match", "host", "port"},
        "loki": {"match", "host", "port", "labels"},
        "opentelemetry": {"match", "host", "port", "logs_uri"},
    },
}
COLLECTOR_SECTIONS = ("receivers", "processors", "exporters", "connectors", "extensions")


def check_fluent_bit(config: dict[str, Any]) -> list[str]:
    problems = [f"unknown section {k!r}" for k in config if k not in FLUENT_BIT_SECTIONS]
    pipeline = config.get("pipeline", {})
    problems += [f"unknown pipeline list {k!r}" for k in pipeline if k not in PIPELINE_KINDS]
    for kind in PIPELINE_KINDS:
        for plugin in pipeline.get(kind, []):
            name = plugin.get("name")
            if name not in PLUGINS[kind]:
                problems.append(f"{kind}: unknown plugin {name!r}")
                continue
            missing = PLUGINS[kind][name] - set(plugin)
            problems += [f"{kind}.{name}: missing {key!r}" for key in sorted(missing)]
            if kind != "inputs" and "match" in plugin and plugin["match"] != "kube.*":
                problems.append(f"{kind}.{name}: matches {plugin['match']!r}, not the input's tag")
    return problems


def check_collector(config: dict[str, Any]) -> list[str]:
    """Every component a pipeline names is defined, and every defined one is used."""
    problems = []
    used: dict[str, set[str]] = {section: set() for section in COLLECTOR_SECTIONS}
    for name, pipeline in config["service"]["pipelines"].items():
        if name.split("/")[0] not in ("traces", "metrics", "logs"):
            problems.append(f"pipeline {name!r}: unknown signal")
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                used[section].add(component)
                if component not in config.get(section, {}):
                    problems.append(
                        f"pipeline {name!r} uses undefined {section[:-1]} {component!r}"
                    )
    for section in ("receivers", "processors", "exporters"):
        for component in config.get(section, {}):
            if component not in used[section]:
                problems.append(f"{section[:-1]} {component!r} is defined but never used")
    return problems


def _with_telemetry(settings: Settings, **layer: Any) -> Settings:
    data = settings.model_dump(by_alias=True)
    for key, value in layer.items():
        data["telemetry"][key] = {**data["telemetry"].get(key, {}), **value}
    return Settings.model_validate(data)


@pytest.mark.parametrize("output", ["es", "loki", "opentelemetry"])
def test_fluent_bit_config_follows_the_documented_schema(output: str) -> None:
    settings = _with_telemetry(FLEET, logs={"output": output})
    config = fluent_bit_config(SUBJECTS, settings)
    assert check_fluent_bit(config) == []
    [tail] = config["pipeline"]["inputs"]
    assert tail["path"].split(",") == [
        f"/var/log/containers/*_{ns}_function-*.log" for ns in ("default", "media", "shop")
    ]
    assert tail["multiline.parser"] == "docker, cri"
    kubernetes = config["pipeline"]["filters"][0]
    assert (kubernetes["name"], kubernetes["merge_log"]) == ("kubernetes", "on")
    [out] = config["pipeline"]["outputs"]
    assert out["name"] == output
    if output == "loki":  # trace ids stay fields of the line, never labels
        assert "trace_id" not in out["labels"]
        assert "span_id" not in out["labels"]
        assert out["labels"].startswith("namespace=")


def test_the_schema_check_catches_mistakes() -> None:
    config = fluent_bit_config(SUBJECTS, FLEET)
    config["pipeline"]["outputs"][0]["name"] = "lokki"
    del config["pipeline"]["inputs"][0]["path"]
    config["logging"] = {}
    assert check_fluent_bit(config) == [
        "unknown section 'logging'",
        "inputs.tail: missing 'path'",
        "outputs: unknown plugin 'lokki'",
    ]
    collector = collector_config(SUBJECTS, FLEET)
    collector["processors"]["batch"] = {}
    collector["service"]["pipelines"]["traces"]["exporters"].append("debug")
    assert check_collector(collector) == [
        "pipeline 'traces' uses undefined exporter 'debug'",
        "processor 'batch' is defined but never used",
    ]


@pytest.mark.parametrize("sampling", [False, True])
def test_collector_config_is_consistent(sampling: bool) -> None:
    settings = _with_telemetry(FLEET, traces={"sampling": {"enabled": sampling}})
    config = collector_config(SUBJECTS, settings)
    assert check_collector(config) == []
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols == {"grpc": {"endpoint": "0.0.0.0:4317"}, "http": {"endpoint": "0.0.0.0:4318"}}
    processors = config["service"]["pipelines"]["traces"]["processors"]
    assert processors[:2] == ["memory_limiter", "k8sattributes"]
    associations = config["processors"]["k8sattributes"]["pod_association"]
    names = [a["sources"][0].get("name", a["sources"][0]["from"]) for a in associations]
    assert names == ["k8s.pod.ip", "k8s.pod.uid", "connection"]
    [exporter] = config["exporters"].values()
    assert exporter["sending_queue"]["batch"]["flush_timeout"] == "1s"
    if sampling:
        policies = {p["type"]: p for p in config["processors"]["tail_sampling"]["policies"]}
        assert set(policies) == {"status_code", "latency", "probabilistic"}
        assert policies["latency"]["latency"]["threshold_ms"] == 250  # the lowest SLO threshold
    else:
        assert "tail_sampling" not in config["processors"]


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda s: s.function.qualified_name)
def test_the_otel_patch_validates_and_keeps_the_container(
    subject: Subject, validate_cr: Any
) -> None:
    patch = build_otel_env_patch(subject)
    assert patch is not None
    # on a minimal valid Function of the same version (v1beta1 requires serving.runtime)
    base: dict[str, Any] = {"spec": {"image": "example/fn:v1"}}
    if patch["apiVersion"].endswith("v1beta1"):
        base["spec"]["serving"] = {"runtime": "knative"}
    validate_cr(merge_patch(base, patch))
    [container] = [
        x for x in patch["spec"]["serving"]["template"]["containers"] if x["name"] == "function"
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["OTEL_SERVICE_NAME"]["value"] == subject.function.name
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["OFOBSERVE_BUCKETS"]["value"] == f"{subject.settings.slo.latency.threshold:g}"


def test_secrets_are_referenced_never_written(tmp_path: Path) -> None:
    """Render with every secret-bearing setting; no secret value can appear, only refs."""
    config = tmp_path / "ofobserve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "defaults": {
                    "telemetry": {
                        "logs": {
                            "output": "es",
                            "user": "fluent",
                            "passwordSecret": {"name": "es-credentials", "key": "password"},
                        },
                        "traces": {
                            "headersSecret": {"name": "otlp-auth", "key": "headers"},
                            "sampling": {"enabled": True, "percentage": 25},
                        },
                    },
                    "scaling": {"tlsSecret": "scaler-client-tls"},
                }
            }
        )
    )
    out = tmp_path / "out"
    result = run_cli("render", str(EXAMPLES), "-c", str(config), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    texts = {p: p.read_text() for p in out.rglob("*") if p.is_file()}
    joined = "\n".join(texts.values())
    assert "${FLUENT_OUTPUT_PASSWORD}" in joined
    assert "secretKeyRef" in joined
    for path, text in texts.items():
        for line in text.splitlines():
            lowered = line.lower()
            if any(word in lowered for word in ("passwd", "password:", "token:", "headers:")):
                assert "${" in line or "Ref" in line or "key:" in line or "name:" in line, (
                    f"{path}: {line}"
                )
    patch = json.dumps(yaml.safe_load(texts[out / "telemetry/shop/order-processor.yaml"]))
    assert '"secretKeyRef": {"key": "headers", "name": "otlp-auth"}' in patch


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (
            "telemetry: {logs: {output: splunk}}",
            "defaults.telemetry.logs.output: Input should be 'es', 'loki' or 'opentelemetry' "
            "(got 'splunk')",
        ),
        (
            "telemetry: {traces: {sampling: {percentage: 120}}}",
            "defaults.telemetry.traces.sampling.percentage: Input should be less than or equal "
            "to 100 (got 120)",
        ),
        (
            "telemetry: {traces: {sampling: {percentage: -1}}}",
            "defaults.telemetry.traces.sampling.percentage: Input should be greater than or "
            "equal to 0 (got -1)",
        ),
        (
            "telemetry: {traces: {endpoint: 'otel-collector:4317'}}",
            "defaults.telemetry.traces.endpoint: must be an http(s) URL with a host and an "
            "optional port, such as http://otel-collector.observability.svc:4317 "
            "(got 'otel-collector:4317')",
        ),
    ],
)
def test_bad_telemetry_settings(tmp_path: Path, layer: str, message: str) -> None:
    config = tmp_path / "ofobserve.yaml"
    config.write_text(f"defaults:\n  {layer}\n")
    result = run_cli("render", str(EXAMPLES), "-c", str(config), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert f"error: {config}[0] {message}" in result.stderr
    assert not (tmp_path / "out").exists()

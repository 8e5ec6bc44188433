"""The telemetry group: Fluent Bit and OpenTelemetry Collector configuration checked
structurally against their documented schemas (the real fluent-bit runs every Fluent Bit
variant in tests/test_fluent_bit.py; no collector can run here), the Helm values that make
the fluent-bit chart load the YAML, the per-function OTEL_* patch against the Function CRD,
the Knative ``config-observability`` patch (here and on a real kube-apiserver), and no
secret in any rendered file."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from ofobserve.builders.knative_config import build_knative_observability_patch
from ofobserve.builders.telemetry import (
    build_otel_env_patch,
    collector_config,
    fluent_bit_config,
)
from ofobserve.loading import load_config, load_subjects
from ofobserve.settings import Settings, fleet_settings
from ofobserve.subject import Subject
from tests.conftest import EXAMPLE_CONFIG, EXAMPLES, run_cli
from tests.support.kube import KubeAPI
from tests.support.patches import merge_patch

SUBJECTS = load_subjects([str(EXAMPLES)], str(EXAMPLE_CONFIG))
FLEET = fleet_settings(load_config(str(EXAMPLE_CONFIG)))

# Fluent Bit's YAML configuration format (docs.fluentbit.io, "YAML configuration"): the
# sections, and per plugin the keys its documentation marks as needed for this use.
FLUENT_BIT_SECTIONS = {"service", "pipeline", "parsers", "multiline_parsers", "env", "includes"}
PIPELINE_KINDS = ("inputs", "filters", "outputs")
PLUGINS: dict[str, dict[str, set[str]]] = {
    "inputs": {"tail": {"path"}},
    "filters": {
        "kubernetes": {"match"},
        "grep": {"match", "regex"},
        "lua": {"match", "call", "code"},
    },
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
    # the chart mounts /var/log read-write, and sqlite3 does not create a missing directory
    assert PurePosixPath(tail["db"]).parent == PurePosixPath("/var/log")
    # the chart's readinessProbe reads /api/v1/health, served only with health_check on
    assert (config["service"]["health_check"], config["service"]["http_port"]) == ("on", 2020)
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
    # collector v0.144.0 renamed the exporter otlp -> otlp_grpc; the receiver keeps its name
    assert list(config["exporters"]) == ["otlp_grpc/jaeger"]
    assert config["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]
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
            "telemetry: {logs: {db: flb_functions.db}}",
            "defaults.telemetry.logs.db: must be an absolute path on a volume the Fluent Bit "
            "pod mounts read-write, such as /var/log/flb_ofobserve_functions.db, or '' for "
            "none (got 'flb_functions.db')",
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


# --- Fluent Bit on the fluent-bit Helm chart ------------------------------------------------------

CHART_ARGS = ["--workdir=/fluent-bit/etc", "--config=/fluent-bit/etc/conf/fluent-bit.yaml"]


def _render(tmp_path: Path, defaults: dict[str, Any] | None, *groups: str) -> Path:
    """Render the examples with ``defaults`` (``None``: no config file) into ``tmp_path/out``."""
    args = []
    tmp_path.mkdir(parents=True, exist_ok=True)
    if defaults is not None:
        config = tmp_path / "ofobserve.yaml"
        config.write_text(yaml.safe_dump({"defaults": defaults}))
        args = ["-c", str(config)]
    out = tmp_path / "out"
    only = [x for group in groups for x in ("--only", group)]
    result = run_cli("-q", "render", str(EXAMPLES), *args, *only, "-o", str(out))
    assert result.exit_code == 0, result.stderr
    return out


def test_the_tail_db_setting() -> None:
    def tail(**logs: Any) -> dict[str, Any]:
        config = fluent_bit_config(SUBJECTS, _with_telemetry(FLEET, logs=logs))
        found: dict[str, Any] = config["pipeline"]["inputs"][0]
        return found

    assert tail()["db"] == "/var/log/flb_ofobserve_functions.db"
    assert tail(db="/var/log/functions.db")["db"] == "/var/log/functions.db"
    assert "db" not in tail(db="")  # no offsets kept: a restart starts at each file's end


@pytest.mark.parametrize("secret", [False, True], ids=["no-secret", "password-secret"])
def test_the_helm_values_make_the_chart_load_the_yaml(tmp_path: Path, secret: bool) -> None:
    """The chart has no YAML-config value: the file goes into its ConfigMap through
    ``config.extraFiles`` (mounted at /fluent-bit/etc/conf/), and ``args`` (replaced whole,
    so ``--workdir`` is kept) points fluent-bit at it instead of the classic fluent-bit.conf."""
    ref = {"name": "es-credentials", "key": "password"}
    logs = {"output": "es", "user": "fluent", "passwordSecret": ref} if secret else {}
    out = _render(tmp_path, {"telemetry": {"logs": logs}}, "telemetry")
    plain = yaml.safe_load((out / "telemetry" / "fluent-bit.yaml").read_text())
    values = yaml.safe_load((out / "telemetry" / "fluent-bit-values.yaml").read_text())
    assert values["args"] == CHART_ARGS
    assert list(values["config"]) == ["extraFiles"]
    assert yaml.safe_load(values["config"]["extraFiles"]["fluent-bit.yaml"]) == plain
    configmap = yaml.safe_load((out / "telemetry" / "fluent-bit-configmap.yaml").read_text())
    assert yaml.safe_load(configmap["data"]["fluent-bit.yaml"]) == plain
    if secret:
        assert values["env"] == [
            {"name": "FLUENT_OUTPUT_PASSWORD", "valueFrom": {"secretKeyRef": ref}}
        ]
        assert plain["pipeline"]["outputs"][0]["http_passwd"] == "${FLUENT_OUTPUT_PASSWORD}"
    else:
        assert set(values) == {"args", "config"}


@pytest.mark.parametrize(("index", "key"), [("function", "labels"), ("namespace", "namespace")])
def test_es_index_names_carry_the_functions_prefix(index: str, key: str) -> None:
    """es's ``logstash_prefix_key`` replaces the prefix with the key's value (checked on the
    real fluent-bit), so a Lua filter writes ``functions-<name>`` into the record first."""
    config = fluent_bit_config(
        SUBJECTS, _with_telemetry(FLEET, logs={"output": "es", "index": index})
    )
    assert check_fluent_bit(config) == []
    filters = config["pipeline"]["filters"]
    assert [f["name"] for f in filters] == ["kubernetes", "grep", "lua"]
    assert key in filters[2]["code"]
    assert config["pipeline"]["outputs"][0]["logstash_prefix_key"] == "$ofobserve_index"
    loki = fluent_bit_config(SUBJECTS, FLEET)
    assert [f["name"] for f in loki["pipeline"]["filters"]] == ["kubernetes", "grep"]


# --- collector versions --------------------------------------------------------------------------


def test_legacy_exporter_names_for_collectors_before_v0_144() -> None:
    settings = _with_telemetry(FLEET, traces={"legacyExporterNames": True, "backend": "tempo"})
    config = collector_config(SUBJECTS, settings)
    assert check_collector(config) == []
    assert list(config["exporters"]) == ["otlp/tempo"]
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["otlp/tempo"]


# --- Knative >= 1.19: the queue-proxy serves request metrics only when asked ---------------------

KNATIVE_PATCH = "monitors/knative-config-observability.yaml"


def _with_knative_metrics(subjects: list[Subject], generation: str) -> list[Subject]:
    return [
        Subject(s.function, s.settings.model_copy(update={"knative_metrics": generation}))
        for s in subjects
    ]


def test_knative_otel_functions_get_the_config_observability_patch() -> None:
    assert [s.function.name for s in SUBJECTS if s.settings.knative_metrics == "otel"] == [
        "nodejs-sample"
    ]
    assert build_knative_observability_patch(SUBJECTS, FLEET) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-observability", "namespace": "knative-serving"},
        "data": {"request-metrics-protocol": "prometheus", "request-metrics-endpoint": None},
    }


def test_no_patch_when_no_function_reads_knative_otel_metrics() -> None:
    opencensus = _with_knative_metrics(list(SUBJECTS), "opencensus")
    assert build_knative_observability_patch(opencensus, FLEET) is None
    # otel names on functions that are not on the knative profile need no queue-proxy metrics
    others = [s for s in SUBJECTS if s.profile != "knative"]
    assert {s.profile for s in others} == {"ofobserve", "dapr", "keda-http"}
    assert build_knative_observability_patch(_with_knative_metrics(others, "otel"), FLEET) is None
    assert build_knative_observability_patch([], FLEET) is None


def test_the_patch_file_is_rendered_in_the_monitors_group(tmp_path: Path) -> None:
    out = _render(tmp_path / "examples", {"knativeMetrics": "opencensus"}, "monitors")
    assert not (out / KNATIVE_PATCH).exists()
    out = _render(tmp_path / "otel", {"knativeMetrics": "otel"}, "monitors")
    patch = yaml.safe_load((out / KNATIVE_PATCH).read_text())
    assert patch["data"]["request-metrics-protocol"] == "prometheus"


def test_the_patch_applies_with_kubectl(kube_apiserver: KubeAPI, tmp_path: Path) -> None:
    """As docs/telemetry.md says: ``kubectl patch configmap config-observability -n
    knative-serving --type merge --patch-file FILE`` on Knative's own ConfigMap (here, as an
    earlier OTLP push setup left it) sets the protocol, drops the endpoint, keeps the rest."""
    out = _render(tmp_path, {"knativeMetrics": "otel"}, "monitors")
    namespace, name = "knative-serving", "config-observability"
    kube_apiserver.ensure_namespace(namespace)
    kube_apiserver.kubectl("delete", "configmap", name, "-n", namespace, "--ignore-not-found")
    stock = {
        "_example": "# request-metrics-protocol: none\n",
        "request-metrics-protocol": "grpc",
        "request-metrics-endpoint": "otel-collector.observability.svc:4317",
        "metrics-protocol": "prometheus",
    }
    kube_apiserver.apply_and_read_back(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": stock,
        }
    )
    kube_apiserver.kubectl(
        "patch", "configmap", name, "-n", namespace, "--type", "merge",
        "--patch-file", str(out / KNATIVE_PATCH),
    )  # fmt: skip
    stored = kube_apiserver.get_json("configmap", name, "-n", namespace)
    assert stored["data"] == {
        "_example": stock["_example"],
        "request-metrics-protocol": "prometheus",
        "metrics-protocol": "prometheus",  # the control plane's own setting is left alone
    }
    assert "labels" not in stored["metadata"]  # Knative's object: nothing of ofobserve's

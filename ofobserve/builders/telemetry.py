"""Log and trace pipelines: Fluent Bit and OpenTelemetry Collector configuration, and the
per-function ``OTEL_*`` environment. Pure, no I/O.

- Fluent Bit, YAML format: tail only the function containers' logs (offsets in a db on
  ``/var/log``, the fluent-bit chart's one read-write mount), the ``kubernetes`` filter with
  ``Merge_Log``, one output (``es``, ``loki`` or ``opentelemetry``); ``trace_id``/``span_id``
  stay fields of the record, never Loki labels. Also as Helm values for the fluent-bit
  chart (``config.extraFiles`` plus the ``args`` that load the YAML file) and as a ConfigMap.
- The collector: ``otlp`` receivers (gRPC 4317, HTTP 4318), ``memory_limiter``, then
  ``k8sattributes``, optional ``tail_sampling``, and an ``otlp_grpc`` exporter (``otlp``
  before collector v0.144.0) to Jaeger v2 or Tempo that batches in its ``sending_queue``.
- Secrets are referenced (``${ENV}`` in Fluent Bit, ``secretKeyRef`` in the Helm values and
  the Function patch), never written into a file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from ofobserve import conventions as c
from ofobserve.builders.common import metadata
from ofobserve.settings import Settings
from ofobserve.subject import Subject

TAG = "kube.*"
FUNCTION_LABEL_ACCESSOR = "$kubernetes['labels']['ofobserve.io/function']"
NAMESPACE_ACCESSOR = "$kubernetes['namespace_name']"
#: Environment variable the Fluent Bit pod gets from ``telemetry.logs.passwordSecret``.
LOG_PASSWORD_ENV = "FLUENT_OUTPUT_PASSWORD"
#: The fluent-bit Helm chart (fluent/helm-charts ``charts/fluent-bit``): its ConfigMap, with
#: every ``config.extraFiles`` key, is mounted here; the default ``args`` load the classic
#: ``fluent-bit.conf`` from it, with this ``--workdir``.
CHART_CONFIG_DIR = "/fluent-bit/etc/conf"
CHART_WORKDIR = "/fluent-bit/etc"
CONFIG_FILE = "fluent-bit.yaml"
#: Record key the ``es`` output's index prefix is read from (written by a Lua filter).
ES_INDEX_KEY = "ofobserve_index"
ES_INDEX_PREFIX = "functions"
#: ``es``'s ``logstash_prefix_key`` *replaces* ``logstash_prefix`` with the key's value (it
#: takes one record accessor, no template), so ``functions-<name>`` is made here first.
#: Lua return code 2: the record changed, its timestamp did not.
_ES_INDEX_LUA = """function ofobserve_index(tag, timestamp, record)
  local k = record["kubernetes"] or {{}}
  local v = {lookup}
  if type(v) ~= "string" then
    return 0, timestamp, record
  end
  record["{key}"] = "{prefix}-" .. v
  return 2, timestamp, record
end
"""
_ES_INDEX_LOOKUP = {
    "function": '(k["labels"] or {})["' + c.FUNCTION_POD_LABEL + '"]',
    "namespace": 'k["namespace_name"]',
}
DEFAULT_HOSTS = {
    "es": ("elasticsearch-master.logging.svc", 9200),
    "loki": ("loki-gateway.logging.svc", 80),
    "opentelemetry": ("otel-collector.observability.svc", 4318),
}


def _namespaces(subjects: Sequence[Subject]) -> list[str]:
    return sorted({s.function.namespace for s in subjects})


def fluent_bit_config(subjects: Sequence[Subject], settings: Settings) -> dict[str, Any]:
    """Fluent Bit's YAML configuration for every function namespace rendered."""
    pattern = "/var/log/containers/*_{}_" + c.FUNCTION_CONTAINER + "-*.log"
    paths = [pattern.format(ns) for ns in _namespaces(subjects)] or [pattern.format("*")]
    logs = settings.telemetry.logs
    tail: dict[str, Any] = {
        "name": "tail",
        "tag": TAG,
        "path": ",".join(paths),
        "multiline.parser": "docker, cri",
        "mem_buf_limit": "50MB",
        "skip_long_lines": "on",
        "refresh_interval": 10,
    }
    if logs.db:
        tail["db"] = logs.db
    filters = [
        {
            "name": "kubernetes",
            "match": TAG,
            "merge_log": "on",
            "keep_log": "off",
            "k8s-logging.parser": "on",
            "k8s-logging.exclude": "on",
            "labels": "on",
            "annotations": "off",
        },
        # only pods the Function patch labelled (a function container of anything else)
        {"name": "grep", "match": TAG, "regex": f"{FUNCTION_LABEL_ACCESSOR} .+"},
    ]
    if logs.output == "es":
        code = _ES_INDEX_LUA.format(
            lookup=_ES_INDEX_LOOKUP[logs.index], key=ES_INDEX_KEY, prefix=ES_INDEX_PREFIX
        )
        filters.append({"name": "lua", "match": TAG, "call": "ofobserve_index", "code": code})
    # health_check: the chart's readinessProbe reads /api/v1/health (404 without it)
    service = {
        "flush": 1,
        "log_level": "info",
        "http_server": "on",
        "http_port": 2020,
        "health_check": "on",
    }
    return {
        "service": service,
        "pipeline": {"inputs": [tail], "filters": filters, "outputs": [_log_output(settings)]},
    }


def _log_output(settings: Settings) -> dict[str, Any]:
    logs = settings.telemetry.logs
    host, port = DEFAULT_HOSTS[logs.output]
    output: dict[str, Any] = {
        "name": logs.output,
        "match": TAG,
        "host": logs.host or host,
        "port": logs.port or port,
        "tls": "on" if logs.tls else "off",
    }
    secret = f"${{{LOG_PASSWORD_ENV}}}" if logs.password_secret else None
    if logs.output == "es":
        output |= {
            "logstash_format": "on",
            "logstash_prefix": ES_INDEX_PREFIX,  # only if the Lua filter found no name
            "logstash_prefix_key": f"${ES_INDEX_KEY}",
            "replace_dots": "on",  # ofobserve.io/function -> ofobserve_io/function
            "suppress_type_name": "on",
            "trace_error": "on",
        }
        if logs.user:
            output["http_user"] = logs.user
        if secret:
            output["http_passwd"] = secret
    elif logs.output == "loki":
        # two low-cardinality labels; trace_id and span_id stay in the JSON line
        output |= {
            "labels": f"namespace={NAMESPACE_ACCESSOR}, function={FUNCTION_LABEL_ACCESSOR}",
            "line_format": "json",
            "remove_keys": "kubernetes, stream",
        }
        if logs.user:
            output["http_user"] = logs.user
        if secret:
            output["http_passwd"] = secret
    else:
        output |= {"logs_uri": "/v1/logs", "log_response_payload": "on"}
    return output


def collector_config(subjects: Sequence[Subject], settings: Settings) -> dict[str, Any]:
    """The OpenTelemetry Collector's configuration (traces pipeline)."""
    traces = settings.telemetry.traces
    thresholds = sorted({s.settings.slo.latency.threshold for s in subjects}) or [
        settings.slo.latency.threshold
    ]
    grpc = c.OTLP_GRPC_EXPORTER_LEGACY if traces.legacy_exporter_names else c.OTLP_GRPC_EXPORTER
    exporter = f"{grpc}/{traces.backend}"
    processors: dict[str, Any] = {
        "memory_limiter": {
            "check_interval": "1s",
            "limit_percentage": 80,
            "spike_limit_percentage": 25,
        },
        "k8sattributes": {
            "auth_type": "serviceAccount",
            "pod_association": [
                {"sources": [{"from": "resource_attribute", "name": "k8s.pod.ip"}]},
                {"sources": [{"from": "resource_attribute", "name": "k8s.pod.uid"}]},
                {"sources": [{"from": "connection"}]},
            ],
            "extract": {
                "metadata": ["k8s.namespace.name", "k8s.pod.name", "k8s.pod.uid", "k8s.node.name"],
                "labels": [{"tag_name": "function", "key": c.FUNCTION_POD_LABEL, "from": "pod"}],
            },
        },
    }
    pipeline = ["memory_limiter", "k8sattributes"]
    if traces.sampling.enabled:
        processors["tail_sampling"] = {
            "decision_wait": "10s",
            "policies": [
                {
                    "name": "errors",
                    "type": "status_code",
                    "status_code": {"status_codes": ["ERROR"]},
                },
                {
                    "name": "slower-than-the-slo",
                    "type": "latency",
                    "latency": {"threshold_ms": round(min(thresholds) * 1000)},
                },
                {
                    "name": "a-share-of-the-rest",
                    "type": "probabilistic",
                    "probabilistic": {"sampling_percentage": traces.sampling.percentage},
                },
            ],
        }
        pipeline.append("tail_sampling")
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": "0.0.0.0:4317"},
                    "http": {"endpoint": "0.0.0.0:4318"},
                }
            }
        },
        "processors": processors,
        "exporters": {
            exporter: {
                "endpoint": traces.backend_endpoint,
                "tls": {"insecure": True},
                "sending_queue": {
                    "enabled": True,
                    "num_consumers": 4,
                    "sizer": "items",
                    "queue_size": 100_000,
                    "batch": {"flush_timeout": "1s", "min_size": 1024, "max_size": 8192},
                },
                "retry_on_failure": {"enabled": True},
            }
        },
        "service": {
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": pipeline, "exporters": [exporter]}
            }
        },
    }


class _TextDumper(yaml.SafeDumper):
    """Configuration embedded as text: multi-line strings (the Lua code) as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_TextDumper.add_representer(str, _represent_str)


def _yaml_text(content: dict[str, Any]) -> str:
    text: str = yaml.dump(
        content, Dumper=_TextDumper, sort_keys=True, default_flow_style=False, width=100_000
    )
    return text


def _configmap(name: str, settings: Settings, key: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(name, settings.telemetry.namespace),
        "data": {key: _yaml_text(content)},
    }


def build_fluent_bit(subjects: Sequence[Subject], settings: Settings) -> dict[str, Any]:
    return fluent_bit_config(subjects, settings)


def build_fluent_bit_configmap(subjects: Sequence[Subject], settings: Settings) -> dict[str, Any]:
    """For the chart's ``existingConfigMap`` (with the ``args`` of
    :func:`build_fluent_bit_values`), or a DaemonSet of one's own."""
    config = fluent_bit_config(subjects, settings)
    return _configmap("ofobserve-fluent-bit", settings, CONFIG_FILE, config)


def build_fluent_bit_values(subjects: Sequence[Subject], settings: Settings) -> dict[str, Any]:
    """Helm values for the fluent-bit chart. The chart has no YAML-config value (its
    maintainers declined one, fluent/helm-charts PR #558): ``config.extraFiles`` puts the
    file into the chart's ConfigMap, and ``args`` (which replaces the whole list, so the
    default ``--workdir`` is repeated) loads it instead of the classic ``fluent-bit.conf``.
    With ``passwordSecret``, ``env`` hands the password to the pod from the Secret."""
    values: dict[str, Any] = {
        "config": {"extraFiles": {CONFIG_FILE: _yaml_text(fluent_bit_config(subjects, settings))}},
        "args": [f"--workdir={CHART_WORKDIR}", f"--config={CHART_CONFIG_DIR}/{CONFIG_FILE}"],
    }
    secret = settings.telemetry.logs.password_secret
    if secret is not None:
        ref = {"name": secret.name, "key": secret.key}
        values["env"] = [{"name": LOG_PASSWORD_ENV, "valueFrom": {"secretKeyRef": ref}}]
    return values


def build_collector(subjects: Sequence[Subject], settings: Settings) -> dict[str, Any]:
    return collector_config(subjects, settings)


def build_collector_configmap(subjects: Sequence[Subject], settings: Settings) -> dict[str, Any]:
    config = collector_config(subjects, settings)
    return _configmap("ofobserve-otel-collector", settings, "config.yaml", config)


def build_otel_env_patch(subject: Subject) -> dict[str, Any] | None:
    """A merge patch adding the ``OTEL_*`` variables to the function container. OpenFunction
    names it ``function``; a merge patch replaces lists whole, so the Function's other
    containers and the container's other fields are carried over from the manifest."""
    f, traces = subject.function, subject.settings.telemetry.traces
    env: list[dict[str, Any]] = [
        {"name": "OTEL_SERVICE_NAME", "value": f.name},
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": traces.endpoint},
        {"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": traces.protocol},
        {"name": "OFOBSERVE_FUNCTION", "value": f.name},
        {"name": "OFOBSERVE_BUCKETS", "value": f"{subject.settings.slo.latency.threshold:g}"},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    if traces.headers_secret is not None:
        ref = traces.headers_secret
        env.append(
            {
                "name": "OTEL_EXPORTER_OTLP_HEADERS",
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    containers: list[dict[str, Any]] = json.loads(f.containers_raw) if f.containers_raw else []
    names = [x.get("name") for x in containers]
    if c.FUNCTION_CONTAINER in names:
        own = containers[names.index(c.FUNCTION_CONTAINER)]
        ours = {e["name"] for e in env}
        own["env"] = [e for e in own.get("env", []) if e.get("name") not in ours] + env
    else:
        containers.append({"name": c.FUNCTION_CONTAINER, "env": env})
    return {
        "apiVersion": f.api_version,
        "kind": "Function",
        "metadata": {"name": f.name, "namespace": f.namespace},
        "spec": {"serving": {"template": {"containers": containers}}},
    }

"""Log and trace pipelines: Fluent Bit and OpenTelemetry Collector configuration, and the
per-function ``OTEL_*`` environment. Pure, no I/O.

- Fluent Bit, YAML format: tail only the function containers' logs, the ``kubernetes``
  filter with ``Merge_Log``, one output (``es``, ``loki`` or ``opentelemetry``);
  ``trace_id``/``span_id`` stay fields of the record, never Loki labels.
- The collector: ``otlp`` receivers (gRPC 4317, HTTP 4318), ``memory_limiter``, then
  ``k8sattributes``, optional ``tail_sampling``, and an ``otlp`` exporter to Jaeger v2 or
  Tempo that batches in its ``sending_queue``.
- Both also as ConfigMaps. Secrets are referenced (``${ENV}`` in Fluent Bit, ``secretKeyRef``
  in the Function patch), never written into a file.
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
    inputs = [
        {
            "name": "tail",
            "tag": TAG,
            "path": ",".join(paths),
            "multiline.parser": "docker, cri",
            "db": "/var/fluent-bit/state/flb_functions.db",
            "mem_buf_limit": "50MB",
            "skip_long_lines": "on",
            "refresh_interval": 10,
        }
    ]
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
    return {
        "service": {"flush": 1, "log_level": "info", "http_server": "on", "http_port": 2020},
        "pipeline": {"inputs": inputs, "filters": filters, "outputs": [_log_output(settings)]},
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
        prefix = FUNCTION_LABEL_ACCESSOR if logs.index == "function" else NAMESPACE_ACCESSOR
        output |= {
            "logstash_format": "on",
            "logstash_prefix": "functions",
            "logstash_prefix_key": prefix,
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
    exporter = f"otlp/{traces.backend}"
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


def _configmap(name: str, settings: Settings, key: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(name, settings.telemetry.namespace),
        "data": {key: yaml.safe_dump(content, sort_keys=True, default_flow_style=False)},
    }


def build_fluent_bit(subjects: Sequence[Subject], settings: Settings) -> dict[str, Any]:
    return fluent_bit_config(subjects, settings)


def build_fluent_bit_configmap(subjects: Sequence[Subject], settings: Settings) -> dict[str, Any]:
    config = fluent_bit_config(subjects, settings)
    return _configmap("ofobserve-fluent-bit", settings, "fluent-bit.yaml", config)


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

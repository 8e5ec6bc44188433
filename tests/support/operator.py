"""Turn a PodMonitor endpoint into the Prometheus scrape job prometheus-operator would build.

An emulation of the operator's generated config, limited to the fields ofobserve renders:
the container port-name filter, the namespace/pod/container target labels, our
relabelings and metricRelabelings (camelCase to snake_case), honorLabels and path. Kubernetes
service discovery is replaced by a static target that carries the ``__meta_kubernetes_*``
labels a pod would have, so the real Prometheus runs the real relabelling.
"""

from __future__ import annotations

import re
from typing import Any

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def _relabel(rule: dict[str, Any]) -> dict[str, Any]:
    return {_SNAKE.sub("_", key).lower(): value for key, value in rule.items()}


def scrape_job(
    job_name: str, endpoint: dict[str, Any], address: str, pod_meta: dict[str, str]
) -> dict[str, Any]:
    """A scrape config for one PodMonitor endpoint, scraping ``address`` as the pod."""
    relabel = []
    if "port" in endpoint:
        relabel.append(
            {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                "regex": endpoint["port"],
            }
        )
    relabel += [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    relabel += [_relabel(rule) for rule in endpoint.get("relabelings", [])]
    return {
        "job_name": job_name,
        "honor_labels": endpoint.get("honorLabels", False),
        "metrics_path": endpoint.get("path", "/metrics"),
        "static_configs": [{"targets": [address], "labels": pod_meta}],
        "relabel_configs": relabel,
        "metric_relabel_configs": [_relabel(r) for r in endpoint.get("metricRelabelings", [])],
    }


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (``matchLabels``, ``matchExpressions``) selects a
    pod with ``labels``."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in labels
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if (op == "Exists") != present and op in ("Exists", "DoesNotExist"):
            return False
    return True

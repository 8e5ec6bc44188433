"""Dashboards in the delivery form chosen by ``grafana.delivery``. Pure, no I/O.

- ``json``: the dashboard JSON itself (import it, or provision it from files);
- ``configmap``: a ConfigMap for the kube-prometheus-stack Grafana sidecar, labelled
  ``grafana_dashboard: "1"`` and annotated with the folder (the sidecar's
  ``folderAnnotation`` must be ``grafana_folder``);
- ``grafana-operator``: a ``GrafanaDashboard`` (grafana.integreatly.org/v1beta1).

Each form has its own artifact kind: the builder of the form not chosen returns ``None``.
"""

from __future__ import annotations

from typing import Any

from ofobserve import conventions as c
from ofobserve.builders.common import metadata
from ofobserve.grafana import json_text
from ofobserve.settings import Settings

GRAFANA_OPERATOR_API = "grafana.integreatly.org/v1beta1"
OBJECT_PREFIX = "ofobserve-dashboard-"


def dashboard_text(dashboard: dict[str, Any]) -> str:
    """The dashboard JSON as a string inside a Kubernetes object (sorted, stable)."""
    return json_text(dashboard)


def as_resource(
    dashboard: dict[str, Any], settings: Settings, key: str, namespace: str | None
) -> dict[str, Any] | None:
    """The ConfigMap or GrafanaDashboard named after ``key`` (``<ns>.<name>`` or a fleet
    dashboard's name), in ``grafana.namespace``, else ``namespace`` (``None``: unset)."""
    grafana = settings.grafana
    if grafana.delivery == "json":
        return None
    name = OBJECT_PREFIX + key
    where = grafana.namespace or namespace
    meta = metadata(name, where or "")
    if not where:
        del meta["namespace"]
    text = dashboard_text(dashboard)
    if grafana.delivery == "configmap":
        meta["labels"][c.GRAFANA_SIDECAR_LABEL] = c.GRAFANA_SIDECAR_VALUE
        meta["annotations"] = {c.GRAFANA_FOLDER_ANNOTATION: grafana.folder}
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {f"{key}.json": text},
        }
    return {
        "apiVersion": GRAFANA_OPERATOR_API,
        "kind": "GrafanaDashboard",
        "metadata": meta,
        "spec": {
            "instanceSelector": {"matchLabels": dict(grafana.instance_selector)},
            # Grafana usually runs in its own namespace, the dashboard in the function's.
            "allowCrossNamespaceImport": True,
            "folder": grafana.folder,
            "uid": dashboard["uid"],
            "json": text,
        },
    }

"""The PodMonitor of a function, per metric profile. Pure, no I/O.

Every profile's series end up with ``namespace`` and ``function`` labels. How each profile
gets there, and why ``honorLabels`` is set the way it is, is in ``docs/metrics.md``.
"""

from __future__ import annotations

from typing import Any

from ofobserve import conventions as c
from ofobserve.builders.common import metadata, object_name
from ofobserve.subject import Subject

API_VERSION = "monitoring.coreos.com/v1"


def _meta_label(label: str) -> str:
    """Prometheus Kubernetes-SD meta label of a pod label (non-alphanumerics become ``_``)."""
    return "__meta_kubernetes_pod_label_" + "".join(ch if ch.isalnum() else "_" for ch in label)


def _identity_relabelings() -> list[dict[str, Any]]:
    """Copy the pod's ``ofobserve.io/function`` label and its namespace onto the series."""
    return [
        {
            "action": "replace",
            "sourceLabels": [_meta_label(c.FUNCTION_POD_LABEL)],
            "targetLabel": c.FUNCTION_LABEL,
        },
        {
            "action": "replace",
            "sourceLabels": ["__meta_kubernetes_namespace"],
            "targetLabel": c.NAMESPACE_LABEL,
        },
    ]


def _static_function_label(name: str) -> dict[str, Any]:
    return {"action": "replace", "targetLabel": c.FUNCTION_LABEL, "replacement": name}


def _undeclared_port(port: int) -> list[dict[str, Any]]:
    """Point a pod's target at ``port``, which the pod need not declare (IPv4 and IPv6).
    A pod declaring several ports gives identical targets, which Prometheus scrapes once."""
    return [
        {
            "action": "replace",
            "sourceLabels": ["__meta_kubernetes_pod_ip"],
            "regex": "([^:]+)",
            "targetLabel": "__address__",
            "replacement": f"$1:{port}",
        },
        {
            "action": "replace",
            "sourceLabels": ["__meta_kubernetes_pod_ip"],
            "regex": "(.+:.+)",
            "targetLabel": "__address__",
            "replacement": f"[$1]:{port}",
        },
    ]


def _native_endpoint() -> dict[str, Any]:
    """The ``ofobserve.instrument`` metrics server in the function container.

    Knative allows one declared port per container, so the metrics port is not declared:
    keep the function container's target and point its address at the metrics port.
    """
    return {
        "honorLabels": False,
        "relabelings": [
            {
                "action": "keep",
                "sourceLabels": ["__meta_kubernetes_pod_container_name"],
                "regex": c.FUNCTION_CONTAINER,
            },
            *_undeclared_port(c.NATIVE_METRICS_PORT),
            *_identity_relabelings(),
        ],
    }


def _knative_endpoint() -> dict[str, Any]:
    """queue-proxy's request metrics (both name generations serve them on 9091)."""
    return {
        "port": c.QUEUE_PROXY_METRICS_PORT_NAME,
        "honorLabels": False,
        "relabelings": _identity_relabelings(),
    }


def _dapr_endpoint(subject: Subject) -> dict[str, Any]:
    """daprd, in the function pod (sidecar mode) or the dapr-proxy pod (default mode).

    Both pods carry ``dapr.io/app-id: <function>-<namespace>``, which is how the target is
    found without knowing the generated Serving name. ``honorLabels`` keeps Dapr's own
    ``namespace`` label instead of renaming it ``exported_namespace``.
    """
    f = subject.function
    return {
        "port": c.DAPR_METRICS_PORT_NAME,
        "honorLabels": True,
        "relabelings": [
            {
                "action": "keep",
                "sourceLabels": ["__meta_kubernetes_pod_annotation_dapr_io_app_id"],
                "regex": c.dapr_app_id(f.namespace, f.name),
            },
            _static_function_label(f.name),
        ],
    }


def _keda_http_endpoint(subject: Subject, route: str) -> dict[str, Any]:
    """The shared KEDA HTTP interceptor, keeping only this function's route.

    Its Prometheus exporter listens on 2223 (``OTEL_PROM_EXPORTER_PORT``), which the
    kedacore/charts interceptor Deployment does not declare as a container port, so the
    target is pointed at it as for the native profile."""
    f = subject.function
    return {
        "honorLabels": False,
        "relabelings": [
            {  # the chart's `<chart>-interceptor`; not a sidecar (it would scrape twice)
                "action": "keep",
                "sourceLabels": ["__meta_kubernetes_pod_container_name"],
                "regex": KEDA_HTTP_INTERCEPTOR_CONTAINER,
            },
            *_undeclared_port(subject.settings.monitoring.keda_http_metrics_port),
        ],
        "metricRelabelings": [
            {
                "action": "keep",
                "sourceLabels": ["route_namespace", "route_name"],
                "separator": ";",
                "regex": f"{f.namespace};{route}",
            },
            _static_function_label(f.name),
            {
                "action": "replace",
                "sourceLabels": ["route_namespace"],
                "targetLabel": c.NAMESPACE_LABEL,
            },
        ],
    }


#: What kedacore/charts ``http-add-on/templates/interceptor/deployment.yaml`` (and the
#: add-on's own kustomize config) put on the interceptor pods; the ``app``/``control-plane``
#: labels of older charts are gone.
KEDA_HTTP_INTERCEPTOR_CONTAINER = "(.+-)?interceptor"
KEDA_HTTP_INTERCEPTOR_SELECTOR = {
    "app.kubernetes.io/component": "interceptor",
    "app.kubernetes.io/name": "http-add-on",
}


def why_no_monitor(subject: Subject) -> str | None:
    """Why a function gets no PodMonitor, or ``None``."""
    if subject.profile == c.PROFILE_KEDA_HTTP and not subject.function.refs.http_scaled_object:
        return "the interceptor's route name is generated: needs --from-cluster (docs/metrics.md)"
    return None


def build_pod_monitor(subject: Subject) -> dict[str, Any] | None:
    """The PodMonitor for one function, or ``None`` when its profile cannot be identified
    without the cluster (``keda-http`` in file mode: the route name is generated)."""
    f, settings = subject.function, subject.settings
    profile = subject.profile
    namespaces = [f.namespace]
    selector: dict[str, Any] = {"matchLabels": {c.FUNCTION_POD_LABEL: f.name}}
    if profile == c.PROFILE_NATIVE:
        endpoint = _native_endpoint()
    elif profile == c.PROFILE_KNATIVE:
        endpoint = _knative_endpoint()
    elif profile == c.PROFILE_DAPR:
        selector = {"matchLabels": {c.OPENFUNCTION_MANAGED_LABEL: "true"}}
        endpoint = _dapr_endpoint(subject)
    else:
        route = f.refs.http_scaled_object
        if not route:
            return None
        selector = {"matchLabels": dict(KEDA_HTTP_INTERCEPTOR_SELECTOR)}
        namespaces = [settings.monitoring.keda_http_namespace]
        endpoint = _keda_http_endpoint(subject, route)
    endpoint["path"] = c.METRICS_PATH
    if settings.monitoring.scrape_interval:
        endpoint["interval"] = settings.monitoring.scrape_interval
    return {
        "apiVersion": API_VERSION,
        "kind": "PodMonitor",
        "metadata": metadata(object_name(f.name), f.namespace, settings.selector_labels.monitors),
        "spec": {
            "selector": selector,
            "namespaceSelector": {"matchNames": namespaces},
            "podMetricsEndpoints": [endpoint],
        },
    }

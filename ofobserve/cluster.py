"""Read Functions, and the names OpenFunction generated for them, from a live cluster.

Does I/O through the ``kubernetes`` client (kubeconfig, else in-cluster config). Any
failure to reach or read the API becomes :class:`~ofobserve.errors.ClusterUnavailable`
with a one-line reason.
"""

from __future__ import annotations

import os
from typing import Any

from ofobserve.errors import ClusterUnavailable, Location
from ofobserve.manifests import GROUP
from ofobserve.model import ClusterRefs

VERSION = "v1beta2"
TIMEOUT_SECONDS = 10

#: Serving ``status.resourceRef`` keys (fact sheet section 7) -> ClusterRefs field.
_REF_KEYS = {
    "Async/workload": "workload",
    "Async/scaler": "scaled_object",
    "serving.knative.dev/service": "knative_service",
    "http.keda.sh/deployment": "workload",
    "http.keda.sh/httpscaledobject": "http_scaled_object",
}

SOURCE = "cluster"


def load_cluster_documents(
    namespace: str | None,
) -> tuple[list[tuple[Location, Any]], dict[tuple[str, str], ClusterRefs]]:
    """Every Function (in ``namespace``, or all namespaces) plus its generated names."""
    api = _custom_objects_api()
    functions = _list(api, "functions", namespace)
    servings = {
        (s["metadata"]["namespace"], s["metadata"]["name"]): s
        for s in _list(api, "servings", namespace)
    }
    documents: list[tuple[Location, Any]] = []
    refs: dict[tuple[str, str], ClusterRefs] = {}
    for index, item in enumerate(functions):
        meta = item.get("metadata", {})
        key = (meta.get("namespace", "default"), meta.get("name", ""))
        documents.append((Location(SOURCE, index), item))
        serving_name = (item.get("status", {}).get("serving") or {}).get("resourceRef", "")
        serving = servings.get((key[0], serving_name), {})
        refs[key] = _refs(serving_name, serving)
    return documents, refs


def _refs(serving_name: str, serving: dict[str, Any]) -> ClusterRefs:
    resource_ref = (serving.get("status") or {}).get("resourceRef") or {}
    fields = {field: resource_ref[key] for key, field in _REF_KEYS.items() if key in resource_ref}
    return ClusterRefs(serving=serving_name, **fields)


def _custom_objects_api() -> Any:
    return kubernetes_client().CustomObjectsApi()


def kubernetes_client() -> Any:
    """The ``kubernetes.client`` module, configured from KUBECONFIG or the pod's service
    account; :class:`ClusterUnavailable` when neither works."""
    # Imported here: only --from-cluster and the scaler's pod discovery need the client.
    import kubernetes

    client: Any = kubernetes.client
    config: Any = kubernetes.config

    try:
        # The client reads KUBECONFIG once, at import; pass it so the current value counts.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    except Exception as kube_error:  # the client raises several unrelated types
        try:
            config.load_incluster_config()
        except Exception:
            raise ClusterUnavailable(
                f"no usable Kubernetes configuration: {_short(kube_error)}; "
                "set KUBECONFIG or run inside a cluster"
            ) from None
    return client


def _list(api: Any, plural: str, namespace: str | None) -> list[dict[str, Any]]:
    try:
        if namespace:
            result = api.list_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, _request_timeout=TIMEOUT_SECONDS
            )
        else:
            result = api.list_cluster_custom_object(
                GROUP, VERSION, plural, _request_timeout=TIMEOUT_SECONDS
            )
    except Exception as exc:  # urllib3 and ApiException alike
        raise ClusterUnavailable(f"cannot list {plural}.{GROUP}: {_short(exc)}") from None
    items: list[dict[str, Any]] = result.get("items", [])
    return items


def _short(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status and reason:
        return f"HTTP {status} {reason}"
    text = str(exc).strip()
    if "[Errno" in text:  # urllib3 wraps the socket error in several layers of repr
        return text[text.index("[Errno") :].split('"')[0].rstrip(")'")
    lines = text.splitlines()
    return lines[-1] if lines else type(exc).__name__

"""The Kubernetes API, as the controller and the scaler use it: JSON requests, server-side
apply and watch streams through the ``kubernetes`` client's ``ApiClient``. Does I/O."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ofobserve.errors import ClusterUnavailable

#: Seconds to connect, and to wait for an answer (not for a watch: see :meth:`Kube.watch`).
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
APPLY_PATCH = "application/apply-patch+yaml"


class APIError(Exception):
    """The API server answered with an error status. ``causes`` are its Status's
    ``details.causes`` (a 409 of server-side apply: one per conflicting field, with the
    ``field`` and a ``message`` naming the manager that owns it)."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        causes: Sequence[Mapping[str, str]] = (),
    ) -> None:
        self.status, self.reason, self.message = status, reason, message
        self.causes = tuple(causes)
        super().__init__(f"HTTP {status} {reason}: {message}" if message else f"HTTP {status}")


def load_api_client(
    kubeconfig: str | None, hint: str = "give --kubeconfig or run inside a cluster"
) -> Any:
    """An ``ApiClient`` from ``kubeconfig``, else ``$KUBECONFIG`` or ``~/.kube/config``,
    else the pod's service account. :class:`ClusterUnavailable` with one line otherwise,
    ending with ``hint`` (what the caller's user can do)."""
    import os

    import kubernetes

    client: Any = kubernetes.client
    config: Any = kubernetes.config

    configuration = client.Configuration()
    if kubeconfig is not None:
        if not os.path.isfile(kubeconfig):
            raise ClusterUnavailable(f"cannot read kubeconfig {kubeconfig}: no such file")
        try:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        except Exception as exc:  # the loader raises several unrelated types
            raise ClusterUnavailable(f"cannot load kubeconfig {kubeconfig}: {_line(exc)}") from None
        return client.ApiClient(configuration)
    try:
        config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    except Exception as kube_error:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except Exception:
            raise ClusterUnavailable(
                f"no usable Kubernetes configuration: {_line(kube_error)}; {hint}"
            ) from None
    return client.ApiClient(configuration)


def _line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__


class Kube:
    """JSON in, JSON out. Every failure is :class:`APIError` (an answer) or an ``OSError`` /
    urllib3 error (no answer)."""

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client

    def _send(
        self,
        method: str,
        path: str,
        query: dict[str, Any],
        body: Any,
        content_type: str | None,
        timeout: float,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=sorted(query.items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(*request, _request_timeout=(CONNECT_TIMEOUT, timeout))
        if not 200 <= response.status <= 299:
            raise _api_error(response.status, response.reason, response.read())
        return response

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = READ_TIMEOUT,
    ) -> dict[str, Any]:
        response = self._send(method, path, query or {}, body, content_type, timeout)
        data = response.read()
        result: dict[str, Any] = json.loads(data) if data else {}
        return result

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        return self.request("GET", path, query)

    def apply(self, path: str, obj: dict[str, Any], manager: str, force: bool) -> dict[str, Any]:
        """Server-side apply ``obj`` at ``path`` as ``manager``."""
        query: dict[str, Any] = {"fieldManager": manager}
        if force:
            query["force"] = "true"
        return self.request("PATCH", path, query, obj, APPLY_PATCH)

    def delete(self, path: str) -> bool:
        """Delete the object at ``path``; ``False`` when it was gone already."""
        try:
            self.request("DELETE", path, body={"propagationPolicy": "Background"})
        except APIError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_all(self, path: str, **query: Any) -> tuple[list[dict[str, Any]], str]:
        """Every item of a collection (in pages of 500) and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            page_query = {**query, "limit": 500}
            if token:
                page_query["continue"] = token
            page = self.request("GET", path, page_query)
            items += page.get("items") or []
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    def watch(
        self,
        path: str,
        resource_version: str,
        timeout_seconds: int,
        on_open: Callable[[Callable[[], None]], None] | None = None,
        **query: Any,
    ) -> Iterator[dict[str, Any]]:
        """The events of a watch from ``resource_version``, with bookmarks, until the server
        ends it (``timeout_seconds``) or the connection drops (an exception). ``on_open`` is
        called once the server has accepted the watch (a 2xx answer), before any event, with
        a function that ends the stream from another thread (the reader then raises)."""
        from kubernetes.watch import watch as kube_watch

        iter_resp_lines: Any = kube_watch.iter_resp_lines

        params = {
            **query,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        }
        response = self._send("GET", path, params, None, None, timeout_seconds + READ_TIMEOUT)
        raw = response.response
        if on_open is not None:
            on_open(getattr(raw, "shutdown", raw.close))
        try:
            for line in iter_resp_lines(raw):
                if line:
                    event: dict[str, Any] = json.loads(line)
                    yield event
        finally:
            raw.release_conn()


def _api_error(status: int, reason: str | None, body: bytes | None) -> APIError:
    message = ""
    causes: list[dict[str, str]] = []
    try:
        parsed = json.loads(body or b"{}")
        message = str(parsed.get("message") or "")
        for cause in (parsed.get("details") or {}).get("causes") or []:
            if isinstance(cause, dict):
                causes.append({str(k): str(v) for k, v in cause.items()})
    except (AttributeError, TypeError, ValueError):
        message = (body or b"").decode("utf-8", "replace")[:200]
    return APIError(int(status), str(reason or ""), message, causes)

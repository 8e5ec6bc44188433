"""Real HTTP peers for a running Fluent Bit, on 127.0.0.1: a stand-in for the Kubernetes API
(the ``kubernetes`` filter's pod lookups) and a log backend that answers as Loki
(``/loki/api/v1/push``), Elasticsearch (``/_bulk``) and an OTLP/HTTP receiver
(``/v1/logs``) do, keeping every request it gets. The OTLP body is decoded with the
``opentelemetry-proto`` messages, Loki's and Elasticsearch's as their documented JSON.
"""

from __future__ import annotations

import gzip
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

#: ``POST /_bulk`` answer Fluent Bit's ``es`` output takes as success.
BULK_OK = b'{"took":1,"errors":false,"items":[]}'


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Peer:
    """What one server received, in order."""

    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: ``(namespace, pod) -> labels`` the Kubernetes stand-in answers with; other pods: 404.
    pods: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)
    url: str = ""

    def record(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)

    def received(self, method: str = "POST") -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == method]


def _handler(peer: Peer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _reply(self, code: int, body: bytes = b"") -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            peer.record(Request("GET", self.path, dict(self.headers), b""))
            parts = self.path.split("?")[0].strip("/").split("/")
            # /api/v1/namespaces/<ns>/pods/<pod>
            pod = (parts[3], parts[5]) if len(parts) == 6 else None
            if parts[:3] != ["api", "v1", "namespaces"] or parts[4:5] != ["pods"]:
                pod = None
            if pod is None or pod not in peer.pods:
                self._reply(404, b'{"kind":"Status","code":404}')
            else:
                self._reply(200, json.dumps(_pod(pod[0], pod[1], peer)).encode())

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            peer.record(Request("POST", self.path, dict(self.headers), body))
            if self.path.startswith("/_bulk"):
                self._reply(200, BULK_OK)
            elif self.path.startswith("/loki/"):
                self._reply(204)
            else:
                self._reply(200, logs_service_pb2.ExportLogsServiceResponse().SerializeToString())

    return Handler


def _pod(namespace: str, name: str, peer: Peer) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "labels": dict(peer.pods[(namespace, name)]),
        },
        "spec": {"nodeName": "node-1", "containers": [{"name": "function", "image": "fn:v1"}]},
        "status": {},
    }


@contextmanager
def serve(
    pods: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Iterator[Peer]:
    """A peer on a free port of 127.0.0.1 for the ``with`` block; stopped after it."""
    peer = Peer(pods=pods or {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(peer))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    peer.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def port_of(peer: Peer) -> int:
    return int(peer.url.rsplit(":", 1)[1])


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass; whether it held."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# --- what each backend got, as (labels or index, record) -------------------------------------


def loki_entries(peer: Peer) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """Every pushed line: its stream labels and the JSON line."""
    found = []
    for request in peer.received():
        if request.path == "/loki/api/v1/push":
            for stream in json.loads(request.body)["streams"]:
                for _ts, line in stream["values"]:
                    found.append((stream["stream"], json.loads(line)))
    return found


def bulk_entries(peer: Peer) -> list[tuple[str, dict[str, Any]]]:
    """Every document of every ``_bulk`` request: its index and its body."""
    found = []
    for request in peer.received():
        if request.path.startswith("/_bulk"):
            lines = [json.loads(x) for x in request.body.decode().splitlines() if x.strip()]
            for action, document in zip(lines[::2], lines[1::2], strict=True):
                [(_op, meta)] = action.items()
                found.append((meta["_index"], document))
    return found


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def otlp_log_bodies(peer: Peer) -> list[Any]:
    """The body of every log record posted to ``/v1/logs``."""
    found = []
    for request in peer.received():
        if request.path == "/v1/logs":
            message = logs_service_pb2.ExportLogsServiceRequest()
            message.ParseFromString(request.body)
            for resource_logs in message.resource_logs:
                for scope_logs in resource_logs.scope_logs:
                    found += [_any_value(r.body) for r in scope_logs.log_records]
    return found

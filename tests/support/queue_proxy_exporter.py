"""A Knative queue-proxy's request metrics (port 9091) in a process of its own.

    python -m tests.support.queue_proxy_exporter PORT SPEC_JSON [HOST]

SPEC_JSON: ``{"generation": "opencensus" | "otel", "rps": requests/s, "ms": ms each,
"depth": queue depth or null, "app_rps": requests/s}``, or ``{"raw": TEXT}`` to serve TEXT
verbatim (an endpoint answering garbage). The names, units, labels and buckets are the
fact sheet's (``shared/reference/upstream-metrics.md`` sections 1 and 2):

- ``opencensus`` (Knative <= 1.18, knative/serving ``pkg/queue/request_metric.go``,
  ``pkg/metrics/key.go``): ``revision_request_count`` (no ``_total``),
  ``revision_request_latencies_*`` in ms, ``revision_queue_depth`` (only when ``depth`` is
  given: queue-proxy has a breaker only with containerConcurrency >= 1), with the
  resource and pod labels; plus ``revision_app_request_count`` / ``_latencies_*`` at
  ``app_rps`` (inside the breaker: not what the function is scaled on).
- ``otel`` (Knative >= 1.21, ``pkg/queue/sharedmain/handlers.go``, otelhttp):
  ``http_server_request_duration_seconds_*`` in s with otelhttp's attributes,
  ``kn_serving_queue_depth``, ``kn_serving_invocation_duration_seconds_*`` at ``app_rps``,
  ``target_info`` with the revision's resource attributes, ``otel_scope_*`` labels.

Every request takes exactly ``ms``. Listens on HOST, prints ``ready`` once it serves.
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from ofobserve import profiles
from tests.support.exporters import Clock, Family, StaticFamilies

REVISION = {
    "namespace_name": "shop",
    "service_name": "serving-x1y2z-ksvc-a1b2c",
    "configuration_name": "serving-x1y2z-ksvc-a1b2c",
    "revision_name": "serving-x1y2z-ksvc-a1b2c-latest",
    "pod_name": "serving-x1y2z-ksvc-a1b2c-latest-deployment-5d9f-abcde",
    "container_name": "queue-proxy",
}
OTELHTTP = {
    "otel_scope_name": "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
    "otel_scope_version": "0.62.0",
}
QUEUE_SCOPE = {"otel_scope_name": "knative.dev/serving/pkg/queue", "otel_scope_version": ""}


def le(bound: float) -> str:
    """``le`` as Go's exporters write it: ``5``, ``0.005``."""
    return f"{bound:g}"


def latencies(
    family: Family,
    labels: dict[str, str],
    bounds: tuple[float, ...],
    scale: float,
    rps: float,
    ms: float,
    clock: Clock,
) -> Family:
    """Buckets, _sum and _count of ``rps`` requests of ``ms`` each, ``le`` in 1/scale s."""
    took = ms / 1000 * scale
    for bound in bounds:
        family.add(
            {**labels, "le": le(bound)}, clock.counter(rps if took <= bound else 0), "_bucket"
        )
    family.add({**labels, "le": "+Inf"}, clock.counter(rps), "_bucket")
    family.add(labels, clock.counter(rps * took), "_sum")
    family.add(labels, clock.counter(rps), "_count")
    return family


def opencensus(spec: dict[str, Any], clock: Clock) -> list[Family]:
    rps, ms, app = spec["rps"], spec["ms"], spec.get("app_rps", 0)
    code = {**REVISION, "response_code": "200", "response_code_class": "2xx"}
    found = [
        Family("revision_request_count", "counter").add(
            {**code, "route_tag": "DEFAULT"}, clock.counter(rps)
        ),
        latencies(
            Family("revision_request_latencies", "histogram"),
            {**code, "route_tag": "DEFAULT"},
            profiles.KNATIVE_OPENCENSUS_BUCKETS_MS,
            1000,
            rps,
            ms,
            clock,
        ),
        Family("revision_app_request_count", "counter").add(code, clock.counter(app)),
        latencies(
            Family("revision_app_request_latencies", "histogram"),
            code,
            profiles.KNATIVE_OPENCENSUS_BUCKETS_MS,
            1000,
            app,
            5000,
            clock,
        ),
    ]
    if spec.get("depth") is not None:
        found.append(Family("revision_queue_depth", "gauge").add(REVISION, spec["depth"]))
    return found


def otel(spec: dict[str, Any], clock: Clock) -> list[Family]:
    rps, ms, app = spec["rps"], spec["ms"], spec.get("app_rps", 0)
    server = {
        "http_request_method": "GET",
        "http_response_status_code": "200",
        "kn_route_tag": "kn:default",
        "network_protocol_name": "http",
        "network_protocol_version": "1.1",
        "url_scheme": "http",
        **OTELHTTP,
    }
    resource = {
        "k8s_namespace_name": "shop",
        "kn_revision_name": REVISION["revision_name"],
        "service_name": REVISION["service_name"],
        "service_instance_id": REVISION["pod_name"],
    }
    found = [
        Family("target_info", "gauge").add(resource, 1),
        latencies(
            Family("http_server_request_duration_seconds", "histogram"),
            server,
            profiles.OTEL_HTTP_BUCKETS_S,
            1,
            rps,
            ms,
            clock,
        ),
        latencies(
            Family("kn_serving_invocation_duration_seconds", "histogram"),
            {"http_response_status_code": "200", **QUEUE_SCOPE},
            profiles.OTEL_HTTP_BUCKETS_S,
            1,
            app,
            5000,
            clock,
        ),
    ]
    if spec.get("depth") is not None:
        found.append(Family("kn_serving_queue_depth", "gauge").add(QUEUE_SCOPE, spec["depth"]))
    return found


def serve_raw(port: int, host: str, text: str) -> None:
    """Answer every GET with ``text``, as a misconfigured endpoint would."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer((host, port), Handler)
    Thread(target=server.serve_forever, daemon=True).start()


def main() -> None:
    port, spec = int(sys.argv[1]), json.loads(sys.argv[2])
    host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    if "raw" in spec:
        serve_raw(port, host, spec["raw"])
    else:
        clock = Clock()
        build = otel if spec["generation"] == "otel" else opencensus
        registry = CollectorRegistry()
        registry.register(StaticFamilies(build(spec, clock)))
        start_http_server(port, addr=host, registry=registry)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()

"""The KEDA HTTP add-on interceptor's Prometheus endpoint (port 2223) in a process of its own.

    python -m tests.support.interceptor_exporter PORT SPEC_JSON [HOST]

SPEC_JSON: ``{"version": "0.14" | "0.13", "routes": [{"route": NAME, "namespace": NS,
"host": HOST, "rps": requests/s, "ms": ms each, "concurrency": N}, ...]}``. The names and
labels are kedacore/http-add-on's (fact sheet section 3):

- ``0.14`` and later (``interceptor/metrics/instruments.go``; OTel exporter with
  ``WithoutScopeInfo()``): ``interceptor_request_count_total{code,method,route_name,
  route_namespace}``, ``interceptor_request_duration_seconds_*`` (s, the OTel HTTP buckets)
  and ``interceptor_request_concurrency{route_name,route_namespace}``, plus
  ``target_info``;
- ``0.13`` and before (``interceptor/metrics/prommetrics.go``):
  ``interceptor_request_count_total{method,path,code,host}`` and
  ``interceptor_pending_request_count{host}``, with ``otel_scope_*`` labels, and no
  duration histogram.

Every route's requests take exactly ``ms``. Listens on HOST, prints ``ready``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from ofobserve import profiles
from tests.support.exporters import Clock, Family, StaticFamilies
from tests.support.queue_proxy_exporter import latencies

SCOPE = {"otel_scope_name": "keda-interceptor-proxy", "otel_scope_version": ""}


def families(spec: dict[str, Any], clock: Clock) -> list[Family]:
    count = Family("interceptor_request_count", "counter")  # samples: + "_total"
    info = Family("target_info", "gauge").add({"service_name": "keda-http-interceptor"}, 1)
    if spec.get("version") == "0.13":
        pending = Family("interceptor_pending_request_count", "gauge")
        for r in spec["routes"]:
            labels = {"host": r["host"], "method": "GET", "path": "/", "code": "200", **SCOPE}
            count.add(labels, clock.counter(r["rps"]), "_total")
            pending.add({"host": r["host"], **SCOPE}, r["concurrency"])
        return [info, count, pending]
    duration = Family("interceptor_request_duration_seconds", "histogram")
    concurrency = Family("interceptor_request_concurrency", "gauge")
    for r in spec["routes"]:
        route = {"route_name": r["route"], "route_namespace": r["namespace"]}
        labels = {"code": "200", "method": "GET", **route}
        count.add(labels, clock.counter(r["rps"]), "_total")
        count.add({**labels, "code": "502"}, 0, "_total")
        latencies(duration, labels, profiles.OTEL_HTTP_BUCKETS_S, 1, r["rps"], r["ms"], clock)
        concurrency.add(route, r["concurrency"])
    return [info, count, duration, concurrency]


def main() -> None:
    port, spec = int(sys.argv[1]), json.loads(sys.argv[2])
    host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    registry = CollectorRegistry()
    registry.register(StaticFamilies(families(spec, Clock())))
    start_http_server(port, addr=host, registry=registry)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()

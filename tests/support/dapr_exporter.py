"""A daprd's ``/metrics`` in a process of its own, with Dapr's metric names and labels.

    python -m tests.support.dapr_exporter PORT SPEC_JSON [HOST]

SPEC_JSON is a list of apps: ``{"app_id": "orders-shop", "namespace": "shop",
"binding": [events/s, ms each], "pubsub": [messages/s, ms each]}``; either kind may be left
out. For each app it serves, as daprd's OpenCensus exporter writes them (fact sheet section 4:
counters without ``_total``, latencies in milliseconds, Dapr's default buckets):

- ``dapr_component_input_binding_count{app_id,component,namespace,success}`` and
  ``dapr_component_input_binding_latencies_{bucket,sum,count}``;
- ``dapr_component_pubsub_ingress_count{app_id,component,namespace,process_status,status,
  topic}`` and ``dapr_component_pubsub_ingress_latencies_*``;

all growing continuously at the given rates (every event takes exactly its ``ms``), plus
``dapr_http_server_request_count`` (daprd's own API: not traffic to the function). Listens
on HOST (default 127.0.0.1; any 127.0.0.0/8 address stands for a pod IP), prints ``ready``
once it serves, and runs until killed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from ofobserve import profiles
from tests.support.exporters import Clock, Family, StaticFamilies


def _latencies(
    family: Family, labels: dict[str, str], per_second: float, ms: float, clock: Clock
) -> None:
    def grows(rate: float) -> Callable[[], float]:
        return clock.counter(rate)

    for bound in profiles.DAPR_BUCKETS_MS:
        family.add({**labels, "le": str(bound)}, grows(per_second if ms <= bound else 0), "_bucket")
    family.add({**labels, "le": "+Inf"}, grows(per_second), "_bucket")
    family.add(labels, grows(per_second * ms), "_sum")
    family.add(labels, grows(per_second), "_count")


def families(apps: list[dict[str, Any]], clock: Clock) -> list[Family]:
    binding = Family(profiles.DAPR_BINDING.metric, "counter")
    binding_ms = Family(profiles.DAPR_BINDING_LATENCY.metric, "histogram")
    pubsub = Family(profiles.DAPR_PUBSUB.metric, "counter")
    pubsub_ms = Family(profiles.DAPR_PUBSUB_LATENCY.metric, "histogram")
    api = Family("dapr_http_server_request_count", "counter")
    for app in apps:
        ident = {"app_id": app["app_id"], "namespace": app["namespace"]}
        api.add({**ident, "method": "POST", "path": "", "status": "200"}, clock.counter(50))
        if "binding" in app:
            rate, ms = app["binding"]
            labels = {**ident, "component": "serving-x1y2z-bindings-cron-a1b2c"}
            binding.add({**labels, "success": "true"}, clock.counter(rate))
            binding.add({**labels, "success": "false"}, 0)
            _latencies(binding_ms, labels, rate, ms, clock)
        if "pubsub" in app:
            rate, ms = app["pubsub"]
            labels = {
                **ident,
                "component": "serving-x1y2z-pubsub-orders-d3e4f",
                "topic": "orders",
                "process_status": "success",
                "status": "success",
            }
            pubsub.add(labels, clock.counter(rate))
            _latencies(pubsub_ms, labels, rate, ms, clock)
    return [binding, binding_ms, pubsub, pubsub_ms, api]


def main() -> None:
    port, apps = int(sys.argv[1]), json.loads(sys.argv[2])
    registry = CollectorRegistry()
    registry.register(StaticFamilies(families(apps, Clock())))
    host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    start_http_server(port, addr=host, registry=registry)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()

"""A function pod's native-profile metrics in a process of its own (prometheus-client).

    python -m tests.support.native_exporter PORT IN_FLIGHT REQUESTS_PER_SECOND [HOST]

Serves ``function_requests_in_flight`` = IN_FLIGHT, and ``function_requests_total`` and
``function_request_duration_seconds`` growing at REQUESTS_PER_SECOND (all 0.2 s long).
Listens on HOST (default 127.0.0.1; any 127.0.0.0/8 address stands for a pod IP). Runs until
killed.
"""

from __future__ import annotations

import sys
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ofobserve import conventions as c


def main() -> None:
    port, in_flight, rps = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    registry = CollectorRegistry()
    Gauge(c.NATIVE_IN_FLIGHT, "in flight", registry=registry).set(in_flight)
    requests = Counter(
        c.NATIVE_REQUESTS_TOTAL.removesuffix("_total"), "requests", ["code"], registry=registry
    )
    duration = Histogram(c.NATIVE_DURATION_SECONDS, "duration", registry=registry)
    host = sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1"
    start_http_server(port, addr=host, registry=registry)
    print("ready", flush=True)
    while True:
        time.sleep(0.1)
        for _ in range(round(rps / 10)):
            requests.labels("200").inc()
            duration.observe(0.2)


if __name__ == "__main__":
    main()

"""An instrumented OpenFunction-style HTTP handler in a process of its own.

    python -m tests.support.sample_function HTTP_PORT METRICS_PORT

``handler(request, context)`` is decorated with ``ofobserve.instrument``; a tiny HTTP server
turns each request into one call: ``/ok``, ``/slow?seconds=S`` (sleeps) and ``/fail``
(raises, answered 500). Tracing follows the ``OTEL_*`` environment; logs are JSON lines on
stdout with the trace ids. Prints ``ready`` when both ports listen.
"""

from __future__ import annotations

import http.server
import logging
import sys
import time
import urllib.parse
from typing import Any

from ofobserve.instrument import instrument
from ofobserve.tracing import JSONLogFormatter

log = logging.getLogger("sample")


@instrument(function="sample", port=int(sys.argv[2]) if len(sys.argv) > 2 else None)
def handler(request: Any, context: Any) -> tuple[str, int]:
    path = urllib.parse.urlsplit(request.path)
    log.info("handling %s", path.path)
    if path.path == "/slow":
        time.sleep(float(urllib.parse.parse_qs(path.query).get("seconds", ["1"])[0]))
    if path.path == "/fail":
        raise RuntimeError("the function failed")
    return "ok", 200


class _Server(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        try:
            body, status = handler(self, {"name": "sample"})
        except RuntimeError:
            body, status = "error", 500
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(JSONLogFormatter())
    logging.getLogger().addHandler(stream)
    logging.getLogger().setLevel(logging.INFO)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _Server)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

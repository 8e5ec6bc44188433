"""The demo function: one replica, a real OS process (I/O: HTTP and a file). Light:
``ofobserve.instrument`` and the standard library only, as in a function image.

    python -m ofobserve.demo.function HTTP_PORT METRICS_PORT CONTROL_FILE

Each ``POST /`` (an event, as daprd delivers it) is one call of ``handler``, decorated with
``ofobserve.instrument``: it takes the service time and fails (HTTP 500) with the error
share that ``CONTROL_FILE`` says now (JSON ``{"service": s, "errors": share}``; re-read
when it changes, so the load generator can change both at run time). Prints ``ready``
when both ports listen, after ``startup`` seconds that stand for a container's start.
"""

from __future__ import annotations

import http.server
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ofobserve.instrument import instrument

FUNCTION = "demo"
#: A container's start (pull, runtime start, the framework's own start), as a stand-in.
STARTUP_SECONDS = 1.0


class Control:
    """The newest ``service`` and ``errors`` from the control file (checked at most every
    0.2 s; a file being rewritten keeps the previous values)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.service, self.errors = 0.1, 0.0
        self._seen: float | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def now(self) -> tuple[float, float]:
        with self._lock:
            at = time.monotonic()
            if at - self._checked >= 0.2:
                self._checked = at
                self._reload()
            return self.service, self.errors

    def _reload(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime
            if mtime == self._seen:
                return
            values = json.loads(self.path.read_text())
            self.service = float(values["service"])
            self.errors = float(values["errors"])
            self._seen = mtime
        except (OSError, ValueError, KeyError, TypeError):
            pass  # keep the last good values


def make_handler(control: Control, metrics_port: int) -> Any:
    @instrument(function=FUNCTION, port=metrics_port)
    def handler(request: Any, context: Any) -> tuple[str, int]:
        service, errors = control.now()
        time.sleep(service)
        return ("failed", 500) if random.random() < errors else ("ok", 200)

    return handler


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        sys.exit("usage: python -m ofobserve.demo.function HTTP_PORT METRICS_PORT CONTROL_FILE")
    port, metrics_port, control = int(argv[0]), int(argv[1]), Control(Path(argv[2]))
    time.sleep(STARTUP_SECONDS)
    handler = make_handler(control, metrics_port)

    class Server(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body, status = handler(self, {"name": FUNCTION})
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Server)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])

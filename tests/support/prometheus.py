"""A real Prometheus server (Debian ``prometheus``) on 127.0.0.1, for the whole session.

Tests change what it scrapes and which rule files it loads with :meth:`configure`, which
rewrites the config file and asks Prometheus to reload it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrometheusError(RuntimeError):
    pass


class PrometheusServer:
    """One Prometheus process with its own temporary storage; stop it with :meth:`stop`."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.config_path = workdir / "prometheus.yml"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "prometheus.log"

    def start(self) -> None:
        self._write_config([], [])
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.process = self._spawn(log)
        deadline = time.monotonic() + START_TIMEOUT
        self._wait_ready(deadline)

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--enable-feature=exemplar-storage",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        raise PrometheusError("prometheus did not become ready in time")

    def resume(self) -> None:
        """Start again after :meth:`stop`, on the same port, storage and configuration."""
        with self.log_path.open("ab") as log:
            self.process = self._spawn(log)
        self._wait_ready(time.monotonic() + START_TIMEOUT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def configure(
        self, scrape_configs: list[dict[str, Any]], rule_files: list[str] | None = None
    ) -> None:
        """Replace scrape jobs and rule files, then reload; raises if Prometheus rejects it."""
        self._write_config(scrape_configs, rule_files or [])
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                assert resp.status == 200
        except urllib.error.HTTPError as exc:
            raise PrometheusError(f"reload refused: {exc.read().decode()}") from None

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the ``result`` list. Raises :class:`PrometheusError` on bad PromQL."""
        params = urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query?{params}", timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
            raise PrometheusError(f"{body.get('errorType')}: {body.get('error')}") from None
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def exemplars(self, expr: str, seconds: float = 300) -> list[dict[str, Any]]:
        """``/api/v1/query_exemplars`` over the last ``seconds``."""
        now = time.time()
        params = urllib.parse.urlencode({"query": expr, "start": now - seconds, "end": now})
        with urllib.request.urlopen(f"{self.url}/api/v1/query_exemplars?{params}", timeout=10) as r:
            data: list[dict[str, Any]] = json.load(r)["data"]
        return data

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until ``expr`` returns at least one series; the first scrape takes seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.25)

    def _write_config(self, scrape_configs: list[dict[str, Any]], rule_files: list[str]) -> None:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": scrape_configs,
            "rule_files": rule_files,
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=True))

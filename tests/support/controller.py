"""``ofobserve controller`` as a real subprocess, read through its own /metrics, and a
kube-apiserver that can be restarted in place (same etcd) to drop every watch."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from tests.support.kube import APIServer, KubeAPI, _established, free_ports

T = TypeVar("T")
STOP_TIMEOUT = 30.0


def eventually(check: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    """``check()``'s first truthy result, polled every 50 ms; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what or check}: {last!r}")


class ControllerProcess:
    def __init__(self, kubeconfig: Path, log_path: Path, *args: str) -> None:
        [self.port] = free_ports(1)
        self.log_path = log_path
        self.command = [
            sys.executable, "-m", "ofobserve", "controller", f"--kubeconfig={kubeconfig}",
            f"--listen=127.0.0.1:{self.port}", *args,
        ]  # fmt: skip
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen(self.command, stdout=self.log, stderr=self.log)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()
        except OSError:
            return 0, ""

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = self.get("/metrics")
        if status != 200:
            return {}
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.metrics().items() if n == name and wanted <= set(ls))

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"controller exited: {self.logs()[-2000:]}"
            return self.get("/readyz")[0] == 200

        eventually(ready, timeout, "/readyz")

    def idle(self) -> bool:
        """Nothing queued, and the last reconcile finished."""
        m = self.metrics()
        return bool(m) and m.get(("ofobserve_controller_queue_depth", ()), 1) == 0

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return int(self.proc.returncode)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.log.close()


STAND_IN_NAME = "functions.core.openfunction.io"
#: OpenFunction's Function kind with no schema (every field kept): for a test about watches,
#: where the real CRD's 18,000-line schema would only cost seconds at every start.
STAND_IN_FUNCTION_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: functions.core.openfunction.io
spec:
  group: core.openfunction.io
  names: {kind: Function, listKind: FunctionList, plural: functions, singular: function}
  scope: Namespaced
  versions:
    - name: v1beta2
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


class PrivateAPIServer(APIServer):
    """An API server of one test's own, with only the CRDs named in ``crds`` (each CRD
    costs install time), whose kube-apiserver :meth:`restart` stops and starts again on
    the same etcd: every watch drops, no object is lost."""

    def __init__(self, state_dir: Path, crds: tuple[str, ...], extra: str = "") -> None:
        super().__init__(state_dir)
        self.wanted, self.extra = crds, extra
        self.restarted: subprocess.Popen[bytes] | None = None

    def _install_crds(self, api: KubeAPI) -> None:
        # crds-for-1.20.py on just these files: parsing every upstream CRD costs seconds.
        group_plural = (name.split(".", 1) for name in self.wanted)
        files = [str(self.crds / f"{group}_{plural}.yaml") for plural, group in group_plural]
        converted = ""
        if files:
            converted = subprocess.run(
                [sys.executable, str(self.tools / "crds-for-1.20.py"), *files],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
        api.kubectl("create", "-f", "-", input=converted + "\n---\n" + self.extra)
        names = set(self.wanted) | ({STAND_IN_NAME} if self.extra else set())
        eventually(lambda: names <= _established(api), 60, "CRDs Established")

    def restart(self) -> float:
        """Kill kube-apiserver and start it again; seconds it was away. (SIGKILL: on
        SIGTERM it waits up to a minute for the open watches to end.)"""
        pid_file = self.state_dir / "kube-apiserver.pid"
        pid = int(pid_file.read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        eventually(lambda: _gone(pid) and _free(self.api_port), 30, "kube-apiserver to stop")
        with (self.state_dir / "kube-apiserver.log").open("ab") as log:
            self.restarted = subprocess.Popen(
                [c.decode() for c in command], stdout=log, stderr=log,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        pid_file.write_text(f"{self.restarted.pid}\n")
        token = (self.state_dir / "tokens.csv").read_text().split(",", 1)[0]

        def ready() -> bool:
            request = urllib.request.Request(
                f"https://127.0.0.1:{self.api_port}/readyz",
                headers={"Authorization": f"Bearer {token}"},
            )
            import ssl

            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            try:
                with urllib.request.urlopen(request, timeout=2, context=context) as r:
                    return bool(r.read() == b"ok")
            except OSError:
                return False

        eventually(ready, 60, "kube-apiserver to be ready again")
        return time.monotonic() - started

    def stop(self) -> None:
        if self.restarted is not None:  # ours to reap (stop-apiserver.sh would wait on a zombie)
            self.restarted.terminate()
            try:
                self.restarted.wait(30)
            except subprocess.TimeoutExpired:
                self.restarted.kill()
                self.restarted.wait()
        super().stop()


def _gone(pid: int) -> bool:
    """The process has exited (a zombie nobody has reaped yet counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def _free(port: int) -> bool:
    """Nothing listens on ``port`` (a killed process's threads may hold it a moment longer
    than its main thread)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def metric_sum(samples: dict[Any, float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)

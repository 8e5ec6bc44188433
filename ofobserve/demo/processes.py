"""The demo's child processes: start on 127.0.0.1, wait until ready, stop by PID. Does I/O.

Every child is started with ``PR_SET_PDEATHSIG`` (Linux), so that even if the demo itself
is killed with SIGKILL the kernel sends its children SIGTERM: nothing is left running.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1
STOP_GRACE = 5.0


class DemoError(RuntimeError):
    """Something the demo needs is missing or would clash: the message says what."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def find_binary(name: str, flag: str, given: str | None, package: str) -> str:
    """``given`` or ``name`` on PATH; a :class:`DemoError` naming the flag and package."""
    found = shutil.which(given or name)
    if found is None:
        shown = given or name
        raise DemoError(f"{shown} not found on PATH (give {flag}, or: apt-get install {package})")
    return found


def check_free(port: int, flag: str) -> None:
    """A :class:`DemoError` when ``127.0.0.1:port`` is taken."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise DemoError(f"port {port} ({flag}) is in use: {exc.strerror}") from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Children:
    """Every process the demo started, stopped together (reverse order) by PID."""

    logs: Path
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Child:
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                preexec_fn=_die_with_parent,
            )
        child = Child(name, process, log)
        self.started.append(child)
        return child

    def stop(self, child: Child) -> None:
        """SIGTERM, then SIGKILL after :data:`STOP_GRACE`; waits, so no zombie is left."""
        if child.alive():
            child.process.terminate()
            try:
                child.process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if child in self.started:
            self.started.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.started)):
            if child.alive():
                child.process.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for child in reversed(list(self.started)):
            try:
                child.process.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        self.started.clear()


def wait_http(child: Child, url: str, timeout: float = 30.0) -> None:
    """Until ``url`` answers 200; a :class:`DemoError` with the log's tail if the child
    exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise DemoError(f"{child.name} exited ({child.process.returncode}):\n{child.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise DemoError(f"{child.name} did not answer {url} within {timeout:g} s:\n{child.tail()}")


def wait_port(child: Child, port: int, timeout: float = 30.0) -> None:
    """Until ``127.0.0.1:port`` accepts connections (same errors as :func:`wait_http`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise DemoError(f"{child.name} exited ({child.process.returncode}):\n{child.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise DemoError(f"{child.name} did not listen on {port} within {timeout:g} s")


def python() -> str:
    return sys.executable


def write_atomic(path: Path, text: str) -> None:
    """Write then rename: a reader sees the old file or the new one, never half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)

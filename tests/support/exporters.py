"""Synthetic exporters built with prometheus-client, emitting upstream metric names exactly.

OpenCensus-based exporters (Knative <= 1.18, Dapr) expose counters without the ``_total``
suffix that prometheus-client's own Counter adds; :class:`StaticFamilies` writes samples
under the exact names given, with the given TYPE.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from tests.support.prometheus import free_port
from tests.support.tools import REPO


@dataclass
class Family:
    """One metric family: name, type and samples ``(sample name, labels, value)``."""

    name: str
    type: str
    samples: list[tuple[str, dict[str, str], float | Callable[[], float]]] = field(
        default_factory=list
    )

    def add(
        self, labels: dict[str, str], value: float | Callable[[], float], suffix: str = ""
    ) -> Family:
        """A sample; a callable value is read at every scrape (a counter that grows)."""
        self.samples.append((self.name + suffix, labels, value))
        return self


class StaticFamilies(Collector):
    """A collector that serves fixed families verbatim."""

    def __init__(self, families: Iterable[Family]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            metric = Metric(family.name, family.name, family.type)
            for sample_name, labels, value in family.samples:
                metric.add_sample(sample_name, labels, value() if callable(value) else value)
            yield metric


class Clock:
    """Seconds since creation: counters defined as ``rate * clock()`` grow at ``rate``/s."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.start

    def counter(self, per_second: float) -> Callable[[], float]:
        return lambda: per_second * self()


def histogram(
    family: Family,
    labels: dict[str, str],
    bounds: Iterable[float],
    share_below: Callable[[float], float],
    per_second: float,
    clock: Clock,
    le: Callable[[float], str] = str,
) -> Family:
    """Cumulative buckets growing at ``per_second * share_below(bound)``, plus _count/_sum."""
    for bound in bounds:
        rate = per_second * share_below(bound)
        family.add({**labels, "le": le(bound)}, clock.counter(rate), "_bucket")
    family.add({**labels, "le": "+Inf"}, clock.counter(per_second), "_bucket")
    family.add(labels, clock.counter(per_second), "_count")
    family.add(labels, clock.counter(per_second * 0.1), "_sum")
    return family


class Exporters:
    """prometheus-client HTTP servers on 127.0.0.1, one per registry; :meth:`close` stops all."""

    def __init__(self) -> None:
        self._servers: list[object] = []

    def serve(self, registry: CollectorRegistry) -> str:
        """Serve ``registry``; returns its ``host:port``."""
        port = free_port()
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
        self._servers.append(server)
        return f"127.0.0.1:{port}"

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]
        self._servers.clear()


class ExporterProcesses:
    """Exporter processes, ``python -m MODULE PORT ARGS... HOST``, each printing ``ready``
    once it serves (``tests.support.native_exporter``, ``tests.support.dapr_exporter``).
    :meth:`kill` stops one by its PID, :meth:`close` all that are left."""

    def __init__(self) -> None:
        self.started: dict[str, subprocess.Popen[str]] = {}

    def start(
        self, module: str, *args: str, host: str = "127.0.0.1", port: int | None = None
    ) -> str:
        """Start one; returns its ``host:port`` once it serves."""
        port = port or free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", module, str(port), *args, host],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        with process.stdout:
            line = process.stdout.readline().strip()
        address = f"{host}:{port}"
        self.started[address] = process
        if line != "ready":
            self.kill(address)
            raise RuntimeError(f"{module} on {address} did not start (said {line!r})")
        return address

    def kill(self, address: str) -> None:
        process = self.started.pop(address)
        process.kill()
        process.wait()

    def close(self) -> None:
        for address in list(self.started):
            self.kill(address)

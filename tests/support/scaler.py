"""Run the real scaler server in-process (its own event loop in a thread) on a real port.

The source is swappable (the engine takes any :class:`~ofobserve.scaler.sources.Source`):
:class:`ScriptedSource` answers what a test sets, the real sources read real exporters.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
from prometheus_client import CollectorRegistry

from ofobserve.scaler.config import FunctionKey, ScalerConfig
from ofobserve.scaler.engine import Engine
from ofobserve.scaler.proto import externalscaler_pb2 as pb
from ofobserve.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from ofobserve.scaler.server import TLS, serve
from ofobserve.scaler.sources import History, Reading, Signals, Source, SourceError
from ofobserve.scaler.telemetry import ScalerMetrics


@dataclass
class ScriptedSource:
    """Answers ``signals``; raises while ``failing``; counts its reads."""

    name: str = "scripted"
    signals: dict[FunctionKey, Signals] = field(default_factory=dict)
    failing: bool = False
    #: Functions whose read fails on its own (the rest of the read succeeds).
    failed: dict[FunctionKey, SourceError] = field(default_factory=dict)
    broken: bool = False  # raise a non-SourceError (a bug)
    reads: int = 0
    #: The functions the engine told it to forget.
    forgotten: list[FunctionKey] = field(default_factory=list)
    #: What :meth:`history` answers: per function, ``(age, signals)`` oldest first.
    past: History = field(default_factory=dict)

    async def fetch(self, functions: Sequence[ScalerConfig]) -> Reading:
        self.reads += 1
        if self.broken:
            raise ZeroDivisionError("a bug")
        if self.failing:
            raise SourceError("scripted", "told to fail")
        wanted = {f.key for f in functions}
        return Reading(
            {k: v for k, v in self.signals.items() if k in wanted},
            {k: v for k, v in self.failed.items() if k in wanted},
        )

    def forget(self, keys: Sequence[FunctionKey]) -> None:
        self.forgotten.extend(keys)

    async def history(self, functions: Sequence[ScalerConfig], step: float) -> History:
        return {f.key: self.past[f.key] for f in functions if f.key in self.past}


@dataclass
class Running:
    port: int
    engine: Engine
    metrics: ScalerMetrics
    registry: CollectorRegistry
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stub(self) -> pb_grpc.ExternalScalerStub:
        return pb_grpc.ExternalScalerStub(grpc.insecure_channel(self.address))

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.registry.get_sample_value(name, labels or {})


@contextmanager
def running_scaler(
    source: Source,
    *,
    max_staleness: float = 60.0,
    interval: float = 0.05,
    tls: TLS | None = None,
    health_listen: str | None = None,
    namespaces: frozenset[str] = frozenset(),
    grace: float = 2.0,
    forget_after: float = 600.0,
    clock: Callable[[], float] = time.monotonic,
    lag_interval: float = 0.1,
) -> Iterator[Running]:
    registry = CollectorRegistry()
    metrics = ScalerMetrics(registry)
    engine = Engine(
        source,
        metrics,
        max_staleness=max_staleness,
        interval=interval,
        forget_after=forget_after,
        clock=clock,
    )
    started = threading.Event()
    holder: dict[str, object] = {}

    def main() -> None:
        async def run() -> None:
            holder["loop"] = asyncio.get_running_loop()
            holder["stop"] = stop = asyncio.Event()

            def ready(port: int) -> None:
                holder["port"] = port
                started.set()

            await serve(
                engine,
                metrics,
                "127.0.0.1:0",
                tls=tls,
                health_listen=health_listen,
                namespaces=namespaces,
                grace=grace,
                ready=ready,
                stop=stop,
                lag_interval=lag_interval,
            )

        try:
            asyncio.run(run())
        except BaseException as exc:  # surface start-up failures to the test
            holder["error"] = exc
            started.set()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    started.wait(10)
    if "error" in holder:
        raise RuntimeError(f"scaler failed to start: {holder['error']!r}")
    loop = holder["loop"]
    stop = holder["stop"]
    assert isinstance(loop, asyncio.AbstractEventLoop)
    assert isinstance(stop, asyncio.Event)
    port = holder["port"]
    assert isinstance(port, int)
    try:
        yield Running(port, engine, metrics, registry, loop, stop)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)


def ref(function: str = "fn", namespace: str = "shop", **metadata: str) -> pb.ScaledObjectRef:
    """A ScaledObjectRef as KEDA sends it (the ScaledObject is named after the function)."""
    return pb.ScaledObjectRef(name=function, namespace=namespace, scalerMetadata=metadata)


@dataclass
class FakeClock:
    """A monotonic clock the test moves by hand (the engine takes any ``clock``)."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

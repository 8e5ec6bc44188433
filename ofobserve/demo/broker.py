"""The event source and its broker: the demo's load generator. Does I/O (asyncio, HTTP).

A stand-in for Kafka and daprd's delivery: events arrive (Poisson, at the scenario's rate)
into one queue that keeps them until a replica takes them, as a topic keeps messages until
the consumer group reads them. Each replica takes at most ``concurrency`` events at once
(daprd's ``--app-max-concurrency``), over HTTP. The queue's length is the consumer lag
that the function's own KEDA trigger (``kafka``, ``lagThreshold``) reads. An event whose
delivery fails to connect goes back to the head of the queue (redelivery); an event the
function answers 5xx is counted failed, as Dapr would after its retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ofobserve.demo.processes import write_atomic
from ofobserve.demo.scenario import Load, Scenario

TICK = 0.05


@dataclass
class Replica:
    """One function process as the broker sees it."""

    name: str
    port: int
    metrics_port: int
    concurrency: int
    busy: int = 0
    ready: bool = False
    draining: bool = False
    drain_since: float | None = None

    @property
    def free(self) -> bool:
        return self.ready and not self.draining and self.busy < self.concurrency


@dataclass
class Stats:
    arrived: int = 0
    served: int = 0
    failed: int = 0
    redelivered: int = 0
    #: (finished at, end-to-end seconds from arrival, status) of each delivered event
    done: deque[tuple[float, float, int]] = field(default_factory=lambda: deque(maxlen=20000))


@dataclass
class Broker:
    scenario: Scenario
    control: Path
    clock: Callable[[], float] = time.monotonic
    seed: int = 1
    replicas: list[Replica] = field(default_factory=list)
    queue: deque[float] = field(default_factory=deque)
    stats: Stats = field(default_factory=Stats)
    load: Load | None = None
    started: float = 0.0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def lag(self) -> int:
        return len(self.queue)

    @property
    def in_flight(self) -> int:
        return sum(r.busy for r in self.replicas)

    def wake(self) -> None:
        self._wake.set()

    def write_control(self, load: Load) -> None:
        write_atomic(self.control, json.dumps({"service": load.service, "errors": load.errors}))

    async def produce(self) -> None:
        """Arrivals until the scenario ends (then :attr:`load` is ``None``)."""
        rng = random.Random(self.seed)
        self.started = self.clock()
        shown: tuple[float, float] | None = None
        while True:
            now = self.clock()
            load = self.scenario.at(now - self.started)
            self.load = load
            if load is None:
                return
            if (load.service, load.errors) != shown:
                self.write_control(load)
                shown = (load.service, load.errors)
            arrivals = _poisson(rng, load.rate * TICK)
            if arrivals:
                self.queue.extend([now] * arrivals)
                self.stats.arrived += arrivals
                self.wake()
            await asyncio.sleep(TICK)

    async def dispatch(self) -> None:
        """Hand queued events to replicas with a free slot, least busy first."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.queue:
                free = [r for r in self.replicas if r.free]
                if not free:
                    break
                replica = min(free, key=lambda r: r.busy)
                arrival = self.queue.popleft()
                replica.busy += 1
                task = asyncio.create_task(self._deliver(replica, arrival))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver(self, replica: Replica, arrival: float) -> None:
        try:
            status = await post(replica.port)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.queue.appendleft(arrival)  # not delivered: it stays in the topic
            self.stats.redelivered += 1
            replica.ready = False  # it does not answer: no more events for it
            return
        finally:
            replica.busy -= 1
            self.wake()
        now = self.clock()
        self.stats.done.append((now, now - arrival, status))
        if status >= 500:
            self.stats.failed += 1
        else:
            self.stats.served += 1

    def oldest_wait(self) -> float:
        return self.clock() - self.queue[0] if self.queue else 0.0


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; ``mean`` is small: one tick's arrivals)."""
    if mean <= 0:
        return 0
    limit, count, product = pow(2.718281828459045, -mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


async def post(port: int, timeout: float = 30.0) -> int:
    """One event as ``POST /`` to ``127.0.0.1:port``; the HTTP status."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5.0)
    try:
        body = b'{"event":"demo"}'
        writer.write(
            b"POST / HTTP/1.1\r\nHost: demo\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"not an HTTP status line: {line!r}")
        await asyncio.wait_for(reader.read(), timeout)
        return int(parts[1])
    finally:
        writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await writer.wait_closed()

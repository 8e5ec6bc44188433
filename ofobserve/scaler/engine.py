"""The scaler's engine: the registry of functions, the refresh loop and the snapshot.

Does I/O through its :class:`~ofobserve.scaler.sources.Source` only. Every tick reads all
registered functions at once and steps each function's policy; RPCs answer from the
decisions in memory and never wait on the source, except once for a function seen for the
first time (coalesced, with a short timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ofobserve.scaler import policy
from ofobserve.scaler.config import FunctionKey, ScalerConfig
from ofobserve.scaler.sources import Signals, Source, SourceError
from ofobserve.scaler.telemetry import FunctionRow, ScalerMetrics

log = logging.getLogger("ofobserve.scaler")
#: Functions stepped between two yields to the event loop during a tick.
CHUNK = 25


class Unavailable(RuntimeError):
    """No fresh enough data for a function: the RPC returns ``UNAVAILABLE``."""


@dataclass
class Entry:
    """One registered function."""

    config: ScalerConfig
    state: policy.State
    decision: policy.Decision | None = None
    signals: Signals | None = None
    fetched_at: float | None = None  # time of the last successful read covering it
    #: Why its latest read failed on its own (``None`` after a good read). Failures of a
    #: whole read are logged instead: they are the same for every function.
    failure: SourceError | None = None
    subscribers: set[asyncio.Queue[bool]] = field(default_factory=set)


class Engine:
    def __init__(
        self,
        source: Source,
        metrics: ScalerMetrics,
        *,
        max_staleness: float = 60.0,
        interval: float = 1.0,
        first_fetch_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.metrics = metrics
        self.max_staleness = max_staleness
        self.interval = interval
        self.first_fetch_timeout = first_fetch_timeout
        self.clock = clock
        self.entries: dict[FunctionKey, Entry] = {}
        self._first_fetch: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._frozen = 0
        metrics.track(self.rows)

    def rows(self) -> list[FunctionRow]:
        """What the scaler's /metrics shows per function (called from the scrape thread)."""
        now = self.clock()
        return [
            FunctionRow(
                e.config.key,
                e.config.metric_name,
                e.signals,
                e.decision,
                None if e.fetched_at is None else now - e.fetched_at,
            )
            for e in list(self.entries.values())
        ]

    # --- registry -------------------------------------------------------------------------------

    def register(self, config: ScalerConfig) -> Entry:
        """The function's entry; a changed configuration restarts its policy state."""
        entry = self.entries.get(config.key)
        if entry is None:
            entry = Entry(config, policy.State.new(config))
            self.entries[config.key] = entry
        elif entry.config != config:
            entry.config, entry.state = config, policy.State.new(config)
            entry.failure = None  # a new profile may be readable: read it before answering
        return entry

    async def ensure(self, config: ScalerConfig) -> Entry:
        """Register, and read a new function once before answering for it."""
        entry = self.register(config)
        if entry.fetched_at is None and not (entry.failure and entry.failure.lasting):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._fetch_new()), self.first_fetch_timeout)
        return entry

    def _fetch_new(self) -> asyncio.Task[None]:
        """One read of every never-read function; concurrent callers share it."""
        if self._first_fetch is None or self._first_fetch.done():
            self._first_fetch = asyncio.ensure_future(self.refresh(only_new=True))
        return self._first_fetch

    def decision(self, entry: Entry) -> policy.Decision:
        """The decision in force, or :class:`Unavailable` when the data is too old."""
        name = f"{entry.config.namespace}/{entry.config.function}"
        failure = entry.failure
        if failure is not None and failure.lasting:
            raise Unavailable(f"no data for {name}: {failure.detail}")
        if entry.fetched_at is None or entry.decision is None:
            why = failure.detail if failure else f"the {self.source.name} source has not answered"
            raise Unavailable(f"no data yet for {name}: {why}")
        age = self.clock() - entry.fetched_at
        if age > self.max_staleness:
            last = f"; last failure: {failure.detail}" if failure else ""
            raise Unavailable(
                f"no fresh data for {name}: last good read {age:.0f} s ago "
                f"(max staleness {self.max_staleness:g} s){last}"
            )
        return entry.decision

    def subscribe(self, entry: Entry) -> asyncio.Queue[bool]:
        queue: asyncio.Queue[bool] = asyncio.Queue(maxsize=1)
        entry.subscribers.add(queue)
        return queue

    # --- refresh --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            started = self.clock()
            await self.refresh()
            self.freeze()
            delay = max(self.interval - (self.clock() - started), 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def refresh(self, only_new: bool = False) -> None:
        """Read the registered functions (or only the never-read ones) and step them."""
        async with self._lock:
            entries = [e for e in self.entries.values() if not only_new or e.fetched_at is None]
            if not entries:
                return
            started = time.perf_counter()
            try:
                reading = await self.source.fetch([e.config for e in entries])
            except SourceError as exc:
                self._failed(entries, exc)
                return
            except Exception as exc:  # a bug must not stop the refresh loop
                log.exception("%s source raised", self.source.name)
                self._failed(entries, SourceError("internal", type(exc).__name__))
                return
            finally:
                self.metrics.source_duration.labels(self.source.name).observe(
                    time.perf_counter() - started
                )
            now = self.clock()
            for i, entry in enumerate(entries):
                key = entry.config.key
                failed = reading.failed.get(key)
                if failed is not None:
                    self._one_failed(entry, failed)
                else:
                    if key in reading.degraded:  # read from the targets that answered
                        self._count(entry, reading.degraded[key])
                    self._step(entry, reading.signals.get(key, Signals()), now)
                if i % CHUNK == CHUNK - 1:
                    await asyncio.sleep(0)  # let RPCs in between

    def freeze(self) -> None:
        """Take the registry out of the cyclic collector's reach once it has grown by a
        tenth: full collections would otherwise walk every entry and stall RPCs for tens of
        milliseconds at 10,000 functions (docs/performance.md). Entries are never removed,
        and frozen objects are still freed by reference counting, so only reference cycles
        alive at that moment are kept for good."""
        if len(self.entries) > self._frozen * 1.1:
            gc.collect()
            gc.freeze()
            self._frozen = len(self.entries)

    def _failed(self, entries: list[Entry], exc: SourceError) -> None:
        """A whole read failed: every function read keeps its last good decision."""
        log.warning("%s source failed: %s", self.source.name, exc)
        for entry in entries:
            self._count(entry, exc)

    def _one_failed(self, entry: Entry, exc: SourceError) -> None:
        """One function's read failed: it keeps its last good decision (staleness
        applies), or has none when the failure is lasting."""
        if entry.failure is None or entry.failure.detail != exc.detail:  # not every tick
            log.warning("%s source: %s/%s: %s", self.source.name, *entry.config.key, exc)
        entry.failure = exc
        if exc.lasting:
            entry.decision = entry.signals = entry.fetched_at = None
        self._count(entry, exc)

    def _count(self, entry: Entry, exc: SourceError) -> None:
        if exc.count:
            errors = self.metrics.source_errors.labels(
                *entry.config.key, self.source.name, exc.reason
            )
            errors.inc(exc.count)

    def _step(self, entry: Entry, signals: Signals, now: float) -> None:
        before = entry.decision
        ready = signals.ready
        if ready is None:  # replicas unknown: assume the HPA runs what it was told last
            ready = before.value if before else 0
        latency = signals.latency if signals.latency is not None else math.nan
        sample = policy.Sample(now, signals.concurrency, signals.rate, latency, ready)
        decision = policy.step(entry.config, entry.state, sample)
        entry.decision, entry.signals, entry.fetched_at = decision, signals, now
        entry.failure = None
        if decision.active and not (before and before.active):
            for queue in entry.subscribers:
                if queue.empty():
                    queue.put_nowait(True)

"""The scaler's engine: the registry of functions, the refresh loop and the snapshot.

Does I/O through its :class:`~ofobserve.scaler.sources.Source` only. Every tick reads all
registered functions at once and steps each function's policy; RPCs answer from the
decisions in memory and never wait on the source, except once for a function seen for the
first time (coalesced, with a short timeout). A function KEDA has not asked about for
``forget_after`` seconds is dropped with its policy state (bounded memory under churn).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
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
    asked_at: float = 0.0  # the last RPC about it (clock time)
    #: RPCs using it now (an open stream, a first read awaited): never forgotten meanwhile.
    holders: int = 0
    #: ``(source, reason)`` of its ``source_errors_total`` series, removed with it.
    error_labels: set[tuple[str, str]] = field(default_factory=set)
    #: Its policy state was filled from the source's history (or the source had none).
    warmed: bool = False


class Engine:
    def __init__(
        self,
        source: Source,
        metrics: ScalerMetrics,
        *,
        max_staleness: float = 60.0,
        interval: float = 1.0,
        first_fetch_timeout: float = 2.0,
        forget_after: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.metrics = metrics
        self.max_staleness = max_staleness
        self.interval = interval
        self.first_fetch_timeout = first_fetch_timeout
        self.forget_after = forget_after
        self.clock = clock
        #: Least recently asked first: forgetting looks at the head only.
        self.entries: OrderedDict[FunctionKey, Entry] = OrderedDict()
        self._first_fetch: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._frozen = 0
        self._new_since_freeze = 0
        self._forgotten_since_unfreeze = 0
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
        """The function's entry, marked as asked about now; a changed configuration
        restarts its policy state."""
        key = config.key
        entry = self.entries.get(key)
        if entry is None:
            entry = Entry(config, policy.State.new(config))
            self.entries[key] = entry
            self._new_since_freeze += 1
        else:
            self.entries.move_to_end(key)
            if entry.config != config:
                entry.config, entry.state = config, policy.State.new(config)
                entry.failure = None  # a new profile may be readable: read it before answering
                entry.warmed = False  # before its first read, warm the new state instead
        entry.asked_at = self.clock()
        return entry

    async def ensure(self, config: ScalerConfig) -> Entry:
        """Register, and read a new function once before answering for it."""
        entry = self.register(config)
        if entry.fetched_at is None and not (entry.failure and entry.failure.lasting):
            entry.holders += 1
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.shield(self._fetch_new()), self.first_fetch_timeout
                    )
            finally:
                entry.holders -= 1
        return entry

    @contextlib.contextmanager
    def hold(self, entry: Entry) -> Iterator[None]:
        """Keep ``entry`` registered while an RPC uses it (a stream stays open)."""
        entry.holders += 1
        try:
            yield
        finally:
            entry.holders -= 1
            entry.asked_at = self.clock()  # its forget_after counts from the stream's end
            if self.entries.get(entry.config.key) is entry:
                self.entries.move_to_end(entry.config.key)

    async def forget_idle(self) -> int:
        """Drop the functions nobody asked about for ``forget_after`` seconds, with their
        policy state and error series; how many. One asked again later is a new function:
        it gets a first read before its first answer. Entries held by an open stream are
        kept (and move to the back of the queue)."""
        async with self._lock:  # not while a read is stepping them
            now, gone = self.clock(), []
            while self.entries:
                key, entry = next(iter(self.entries.items()))
                if now - entry.asked_at <= self.forget_after:
                    break
                if entry.holders:
                    entry.asked_at = now
                    self.entries.move_to_end(key)
                    continue
                del self.entries[key]
                gone.append(entry)
            if gone:
                self._forget(gone)
            return len(gone)

    def _forget(self, gone: Sequence[Entry]) -> None:
        for entry in gone:
            for source, reason in entry.error_labels:
                self.metrics.source_errors.remove(*entry.config.key, source, reason)
        self.metrics.forgotten.inc(len(gone))
        self._forgotten_since_unfreeze += len(gone)
        self.source.forget([e.config.key for e in gone])
        log.info("forgot %d function(s) not asked about for %g s", len(gone), self.forget_after)

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
            await self.forget_idle()
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
            cold = [e for e in entries if not e.warmed and e.fetched_at is None]
            if cold:
                await self._warm(cold)
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

    async def _warm(self, entries: Sequence[Entry]) -> None:
        """Fill new functions' windows from the source's history (Prometheus: their last
        stable window, every ``interval``), so that a new replica decides as one that has
        been running: the history is what a running replica read, tick by tick. A failed
        history read leaves them cold (logged); they are read as usual either way."""
        for entry in entries:
            entry.warmed = True
        try:
            past = await self.source.history([e.config for e in entries], self.interval)
        except SourceError as exc:
            log.warning("%s source: no history for a warm start: %s", self.source.name, exc)
            return
        except Exception:  # a bug must not stop the refresh loop
            log.exception("%s source raised reading history", self.source.name)
            return
        now = self.clock()
        for entry in entries:
            for age, signals in past.get(entry.config.key, ()):
                if age >= self.interval / 2:  # the read that follows gives this moment
                    policy.step(entry.config, entry.state, self._sample(entry, signals, now - age))

    def freeze(self) -> None:
        """Take the registry out of the cyclic collector's reach once a tenth of it is new
        (it grew, or functions came and went): full collections would otherwise walk every
        entry and stall RPCs for tens of milliseconds at 10,000 functions
        (docs/performance.md). Frozen objects are still freed by reference counting when
        forgotten; a reference cycle among frozen garbage is not, so once as many entries
        were forgotten as the registry holds, everything is unfrozen and collected first
        (one full collection per turnover of the registry)."""
        size = len(self.entries)
        if self._new_since_freeze > self._frozen * 0.1:
            if self._forgotten_since_unfreeze >= max(size, 1):
                gc.unfreeze()
                self._forgotten_since_unfreeze = 0
            gc.collect()
            gc.freeze()
            self._frozen, self._new_since_freeze = size, 0

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
            entry.error_labels.add((self.source.name, exc.reason))

    @staticmethod
    def _sample(entry: Entry, signals: Signals, now: float) -> policy.Sample:
        ready = signals.ready
        if ready is None:  # replicas unknown: assume the HPA runs what it was told last
            last = entry.state.last
            ready = last.value if last else 0
        latency = signals.latency if signals.latency is not None else math.nan
        return policy.Sample(now, signals.concurrency, signals.rate, latency, ready)

    def _step(self, entry: Entry, signals: Signals, now: float) -> None:
        before = entry.decision
        decision = policy.step(entry.config, entry.state, self._sample(entry, signals, now))
        entry.decision, entry.signals, entry.fetched_at = decision, signals, now
        entry.failure = None
        if decision.active and not (before and before.active):
            for queue in entry.subscribers:
                if queue.empty():
                    queue.put_nowait(True)

"""A rate-limited work queue of keys, as client-go's. Pure, no I/O; thread-safe.

- A key queued twice before a worker takes it is processed once; a key added while it is
  being processed is queued again when the worker is :meth:`~WorkQueue.done` with it, so a
  key is never processed by two workers at once.
- :meth:`~WorkQueue.add_rate_limited` (after a failure) waits the longer of the key's own
  exponential backoff (``base_delay * 2**failures``, at most ``max_delay``) and the overall
  token bucket (``qps``, ``burst``); :meth:`~WorkQueue.forget` resets the key's backoff.
- The clock is injectable, so tests need no sleeping.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class TokenBucket:
    """``qps`` tokens a second, at most ``burst`` saved; :meth:`delay` takes one token and
    says how long to wait for it (a reservation, as Go's ``rate.Limiter``)."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float]) -> None:
        self.qps, self.burst, self.clock = qps, burst, clock
        self.tokens = float(burst)
        self.last = clock()

    def delay(self) -> float:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.qps)
        self.last = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.qps


class WorkQueue(Generic[K]):
    def __init__(
        self,
        base_delay: float = 0.005,
        max_delay: float = 300.0,
        qps: float = 10.0,
        burst: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_delay, self.max_delay, self.clock = base_delay, max_delay, clock
        self._bucket = TokenBucket(qps, burst, clock)
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiting: list[tuple[float, int, K]] = []
        self._ready_at: dict[K, float] = {}
        self._failures: dict[K, int] = {}
        self._seq = itertools.count()
        self._shutdown = False

    # --- adding -------------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Queue ``key`` now (a no-op when it is queued already)."""
        with self._cond:
            self._add(key)

    def _add(self, key: K) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds (the earlier time wins if it waits already)."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            at = self.clock() + delay
            if self._shutdown or self._ready_at.get(key, float("inf")) <= at:
                return
            self._ready_at[key] = at
            heapq.heappush(self._waiting, (at, next(self._seq), key))
            self._cond.notify()

    def backoff(self, key: K) -> float:
        """The delay the key's next failure gets, counting that failure."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        return min(self.max_delay, self.base_delay * 2.0**failures)

    def add_rate_limited(self, key: K) -> float:
        """Queue ``key`` after its backoff or the overall rate limit; returns the delay."""
        delay = max(self.backoff(key), self._bucket.delay())
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """The key succeeded: its next failure starts from ``base_delay`` again."""
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    # --- taking -------------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> K | None:
        """The next key (the caller must call :meth:`done` with it), or ``None`` after
        :meth:`shutdown` or when ``timeout`` passes first."""
        deadline = None if timeout is None else self.clock() + timeout
        with self._cond:
            while True:
                self._promote()
                if self._shutdown:
                    return None
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                now = self.clock()
                waits = [t - now for t in (deadline,) if t is not None]
                if self._waiting:
                    waits.append(self._waiting[0][0] - now)
                if deadline is not None and now >= deadline:
                    return None
                self._cond.wait(max(0.0, min(waits)) if waits else None)

    def _promote(self) -> None:
        now = self.clock()
        while self._waiting and self._waiting[0][0] <= now:
            at, _, key = heapq.heappop(self._waiting)
            if self._ready_at.get(key) == at:
                del self._ready_at[key]
                self._add(key)

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        """Keys queued or waiting for their time (not those being processed)."""
        with self._cond:
            return len(self._queue) + len(self._ready_at)

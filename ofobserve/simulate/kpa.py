"""Knative's Pod Autoscaler (KPA), ported from its algorithm. Pure.

From knative/serving ``pkg/autoscaler/scaling/autoscaler.go`` (``Scale``) and the defaults
of ``pkg/autoscaler/config/config.go`` (also knative/docs
``docs/serving/configuring-the-autoscaler.md``):

- the metric is the revision's average concurrency, one bucket per second, averaged over
  the stable window (60 s) and the panic window (10 % of it, 6 s);
- ``dspc = ceil(stable / target)``, ``dppc = ceil(panic / target)``, with ``target =
  containerConcurrency target x target utilization (0.7)``; both clamped to
  ``[floor(ready / maxScaleDownRate), ceil(ready x maxScaleUpRate)]`` (2 and 1000; the
  lower bound only while pods are reachable), ``ready`` at least 1;
- panic when ``dppc / ready >= panicThreshold`` (200 %); every tick over it restarts the
  panic time, and panic ends a stable window after the last such tick. While panicking the
  answer is ``max(dspc, dppc)`` but never below the highest answer of this panic
  (``maxPanicPods``): no scale-down in panic;
- ``scale-down-delay`` (``ScaleDownDelay`` of config.go, default 0, the annotation
  ``autoscaling.knative.dev/scale-down-delay``): after the panic logic, the answer is the
  highest of the last ``ScaleDownDelay`` (``delayWindow``, a ``max.TimeWindow`` with the
  tick interval as granularity); with 0 there is no window;
- the decider ticks every 2 s (``tickInterval`` of ``multiscaler.go``); and with no replica,
  the activator's poke makes it decide at once when a request arrives;
- scale to zero (``pkg/reconciler/autoscaling/kpa/scaler.go``): a desired 0 is applied only
  after ``scale-to-zero-grace-period`` (30 s) of asking for 0; until then the replicas stay.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class KpaSettings:
    target: float  # per-pod concurrency target x target utilization ("TargetValue")
    stable_window: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold: float = 2.0  # 200 %
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    scale_to_zero_grace: float = 30.0
    tick_interval: float = 2.0
    scale_down_delay: float = 0.0

    @property
    def panic_window(self) -> float:
        return self.stable_window * self.panic_window_percentage / 100.0


class _Average:
    """Mean of the per-second buckets of the last ``length`` seconds (Knative's
    ``WindowAverage``: buckets since the first one, at most the window)."""

    def __init__(self, length: float) -> None:
        self.length = length
        self.buckets: deque[tuple[float, float]] = deque()
        self.total = 0.0

    def record(self, time: float, value: float) -> None:
        self.buckets.append((time, value))
        self.total += value
        while self.buckets[0][0] <= time - self.length:
            self.total -= self.buckets.popleft()[1]

    def value(self) -> float | None:
        return max(self.total, 0.0) / len(self.buckets) if self.buckets else None


@dataclass
class Kpa:
    settings: KpaSettings
    stable: _Average = field(init=False)
    panic: _Average = field(init=False)
    panic_time: float | None = None
    max_panic_pods: int = 0
    zero_since: float | None = None
    delayed: deque[tuple[float, int]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.stable = _Average(self.settings.stable_window)
        self.panic = _Average(self.settings.panic_window)

    @property
    def panicking(self) -> bool:
        return self.panic_time is not None

    def record(self, now: float, concurrency: float) -> None:
        """One second's average concurrency, as the queue-proxies report it."""
        self.stable.record(now, concurrency)
        self.panic.record(now, concurrency)

    def scale(self, now: float, ready: int) -> int | None:
        """``Scale``: the desired pods, or ``None`` with no data yet."""
        s = self.settings
        stable, panic = self.stable.value(), self.panic.value()
        if stable is None or panic is None:
            return None
        ready_count = float(max(ready, 1))
        max_up = math.ceil(s.max_scale_up_rate * ready_count)
        max_down = math.floor(ready_count / s.max_scale_down_rate) if ready > 0 else 0
        dspc = math.ceil(stable / s.target)
        dppc = math.ceil(panic / s.target)
        desired_stable = int(min(max(dspc, max_down), max_up))
        desired_panic = int(min(max(dppc, max_down), max_up))
        over = dppc / ready_count >= s.panic_threshold
        if over:
            self.panic_time = now
        elif self.panic_time is not None and self.panic_time + s.stable_window < now:
            self.panic_time = None
            self.max_panic_pods = 0
        desired = desired_stable
        if self.panic_time is not None:
            desired = max(desired, desired_panic)
            self.max_panic_pods = max(self.max_panic_pods, desired)
            desired = self.max_panic_pods
        if s.scale_down_delay > 0:  # delayWindow.Record(now, desired); desired = Current()
            bucket = math.floor(now / s.tick_interval) * s.tick_interval
            if self.delayed and self.delayed[-1][0] == bucket:
                desired = max(desired, self.delayed.pop()[1])
            self.delayed.append((bucket, desired))
            while len(self.delayed) > 1 and self.delayed[0][0] <= now - s.scale_down_delay:
                self.delayed.popleft()
            desired = max(value for _, value in self.delayed)
        return desired

    def replicas(self, now: float, ready: int, current: int) -> int | None:
        """What the PodAutoscaler sets: :meth:`scale`, with the scale-to-zero grace."""
        desired = self.scale(now, ready)
        if desired is None:
            return None
        if desired > 0:
            self.zero_since = None
            return desired
        if self.zero_since is None:
            self.zero_since = now
        if now - self.zero_since >= self.settings.scale_to_zero_grace:
            return 0
        return max(current, 1) if current > 0 else 0

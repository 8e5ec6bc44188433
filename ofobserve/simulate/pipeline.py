"""What Prometheus, KEDA and the HPA see and do, between the pods and the replicas. Pure.

- :class:`PrometheusView`: the pods' series as a query sees them at ``t``: the newest
  scrape at or before ``t - evaluation_lag`` (scrapes every ``scrape_interval``), with
  ``rate`` over the scrapes in the window and ``histogram_quantile``'s interpolation.
- :class:`Hpa`: kubernetes/kubernetes ``pkg/controller/podautoscaler``: the tolerance band
  of ``replica_calculator.go`` (``|1 - usageRatio| <= tolerance`` keeps the replicas), and
  ``horizontal.go``'s ``stabilizeRecommendationWithBehaviors`` (the highest recommendation
  of the scale-down window, the lowest of the scale-up window) and its scale-up limit: with
  no ``behavior`` (keda-prometheus, hpa-cpu) the legacy ``calculateScaleUpLimit``,
  max(2 x current, 4) per sync; with the behavior ``ofobserve render`` writes, 1000 % per
  15 s (11 x current). It never acts at 0 replicas, and never goes below its minReplicas of 1.
- :class:`Keda`: kedacore/keda ``pkg/scaling/executor/scale_scaledobjects.go``: every
  ``pollingInterval`` it asks whether the workload is active; active at 0 replicas scales to
  1, inactive longer than ``cooldownPeriod`` since the last active poll scales to 0.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from ofobserve.simulate.cluster import BUCKETS, Record
from ofobserve.simulate.model import Pipeline


@dataclass(frozen=True)
class PrometheusView:
    record: Record
    pipeline: Pipeline

    def scraped(self, now: float) -> int:
        """The second of the newest scrape a query at ``now`` sees (-1: none yet)."""
        every = self.pipeline.scrape_interval
        seen = now - self.pipeline.evaluation_lag
        if seen < 0:
            return -1
        return min(int(math.floor(seen / every) * every), len(self.record.ready) - 1)

    def _window(self, now: float, window: float) -> tuple[int, int] | None:
        end = self.scraped(now)
        if end < 0:
            return None
        every = self.pipeline.scrape_interval
        # The scrapes inside (end - window, end]: rate() needs two of them.
        span = math.floor((window - 1e-9) / every) * every
        start = max(int(end - span), 0)
        start = int(math.ceil(start / every) * every)
        if end - start <= 0:
            return None
        return start, end

    def gauge(self, series: Sequence[float], now: float) -> float | None:
        at = self.scraped(now)
        return None if at < 0 else float(series[at])

    def rate(self, counter: Sequence[float], now: float) -> float | None:
        """``rate(counter[window])``: per second, ``None`` with fewer than two scrapes."""
        span = self._window(now, self.pipeline.rate_window)
        if span is None:
            return None
        start, end = span
        return (counter[end] - counter[start]) / (end - start)

    def quantile(
        self, q: float, now: float, series: Sequence[tuple[int, ...]] | None = None
    ) -> float | None:
        """``histogram_quantile(q, rate(bucket[window]))`` of ``series`` (default: the
        latency histogram); ``None`` with no observations."""
        span = self._window(now, self.pipeline.rate_window)
        if span is None:
            return None
        start, end = span
        buckets = self.record.histogram if series is None else series
        later, earlier = buckets[end], buckets[start]
        return histogram_quantile(q, [a - b for a, b in zip(later, earlier, strict=True)])


def histogram_quantile(q: float, counts: Sequence[float]) -> float | None:
    """Prometheus's ``histogram_quantile`` over per-bucket (not cumulative) counts of
    :data:`BUCKETS`: linear within the bucket; the highest finite bound if it falls in +Inf."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    cumulative = 0.0
    for index, count in enumerate(counts):
        if cumulative + count >= rank and count > 0:
            upper = BUCKETS[index]
            if math.isinf(upper):
                return BUCKETS[-2]
            lower = BUCKETS[index - 1] if index > 0 else 0.0
            return lower + (upper - lower) * (rank - cumulative) / count
        cumulative += count
    return BUCKETS[-2]


@dataclass
class Hpa:
    """One HorizontalPodAutoscaler: call :meth:`sync` every ``hpa_sync`` seconds."""

    pipeline: Pipeline
    max_replicas: int
    stabilize_down: float
    stabilize_up: float
    #: Scale-up limit per sync: ``max(ceil(up_factor x current), up_minimum)``. Without a
    #: ``behavior`` the HPA takes its legacy limit, ``max(2 x current, 4)``
    #: (``horizontal.go`` ``calculateScaleUpLimit``, scaleUpLimitFactor 2, minimum 4).
    up_factor: float = 2.0
    up_minimum: int = 4
    min_replicas: int = 1
    recommendations: deque[tuple[float, int]] = field(default_factory=deque)

    def within_tolerance(self, ratio: float) -> bool:
        return abs(1.0 - ratio) <= self.pipeline.hpa_tolerance

    def average_value(self, value: float, target: float, current: int) -> int:
        """An ``AverageValue`` external metric (``GetExternalPerPodMetricReplicas``)."""
        ratio = value / (target * current)
        return current if self.within_tolerance(ratio) else math.ceil(value / target)

    def utilization(self, usage: float, target: float, current: int) -> int:
        """A resource ``Utilization`` metric: ``ceil(usageRatio x currentReplicas)``."""
        ratio = usage / target
        return current if self.within_tolerance(ratio) else math.ceil(ratio * current)

    def sync(self, now: float, recommendation: int, current: int) -> int:
        """The replicas after one sync, from the metric's raw ``recommendation``."""
        recommendation = max(self.min_replicas, min(recommendation, self.max_replicas))
        self.recommendations.append((now, recommendation))
        horizon = now - max(self.stabilize_down, self.stabilize_up)
        while self.recommendations and self.recommendations[0][0] < horizon:
            self.recommendations.popleft()
        up = down = recommendation
        for at, rec in self.recommendations:
            if at > now - self.stabilize_up:
                up = min(up, rec)
            if at > now - self.stabilize_down:
                down = max(down, rec)
        desired = min(max(current, up), down)
        if desired > current:
            desired = min(desired, max(math.ceil(self.up_factor * current), self.up_minimum))
        return max(self.min_replicas, min(desired, self.max_replicas))


@dataclass
class Keda:
    """KEDA's activation and scale to zero for one ScaledObject (``minReplicaCount`` 0)."""

    pipeline: Pipeline
    last_active: float = 0.0

    def poll(self, now: float, active: bool, current: int) -> int | None:
        if active:
            self.last_active = now
            return 1 if current == 0 else None
        if current > 0 and now - self.last_active >= self.pipeline.cooldown_period:
            return 0
        return None


def every(now: int, interval: float) -> bool:
    """Whether a loop with this ``interval`` runs at second ``now``: its first run is one
    interval in, when there is something to read."""
    step = max(round(interval), 1)
    return now > 0 and now % step == 0

"""The scaling policy: a function's state and one sample in, a decision out. Pure, no I/O.

Knative's KPA, plus a latency term; the formulas are in docs/scaling.md. :func:`step`
advances the state in place (O(1) amortised per sample) and returns the decision, so the
engine calls it once per refresh tick and tests replay any sequence of samples.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from ofobserve.scaler.config import ScalerConfig

#: The latency term lets go once the quantile is back under this share of the objective.
LATENCY_RELEASE = 0.8
#: The latency term adds replicas only while the replicas are the bottleneck: the panic
#: window's mean concurrency per ready replica at least this share of
#: ``targetConcurrency`` (the per-replica limit the target stands for). The concurrency term
#: sizes the fleet at ``targetUtilization`` (0.7) of it, so a fleet it sized is not counted
#: as saturated; requests queueing at the replicas (a queue-proxy counts them) push it over.
#: Below it, slowness is not queueing at the replicas (a slow downstream, a slow request
#: type, a CPU-bound handler) and more replicas are not known to help.
LATENCY_SATURATION = 0.8
#: While the quantile misses the objective the term holds the ready replicas (no
#: scale-down into a missed objective), but only while they carry at least this share of
#: ``targetConcurrency x targetUtilization`` each: a fleet the term grew during a backlog,
#: now nearly idle, is let go even if the quantile stays high (a service time whose own
#: p95 is over the objective).
LATENCY_HOLD = 0.25
#: ... and at most this many times the ready replicas per decision: a latency quantile can
#: jump tenfold on one cold start, the work to do does not.
LATENCY_MAX_STEP = 2.0


@dataclass(frozen=True)
class Sample:
    """What the source saw at ``time`` (seconds). ``latency`` is the configured quantile in
    seconds, or ``None``/NaN when there is no latency signal (no traffic)."""

    time: float
    concurrency: float
    rate: float
    latency: float | None
    ready: int


@dataclass(frozen=True)
class Decision:
    desired: int
    active: bool
    panic: bool
    reason: str
    #: What GetMetrics reports (target 1): ``desired``, raised where the HPA would
    #: otherwise ignore a scale-up as within its tolerance (:func:`metric_value`).
    value: int


class _Window:
    """Samples of the last ``length`` seconds: running sum, and a monotonic queue for the
    maximum, so both are O(1) amortised per sample."""

    def __init__(self, length: float) -> None:
        self.length = length
        self.items: deque[tuple[float, float]] = deque()
        self.peaks: deque[tuple[float, float]] = deque()  # decreasing values
        self.total = 0.0

    def add(self, time: float, value: float) -> None:
        self.items.append((time, value))
        self.total += value
        while self.peaks and self.peaks[-1][1] <= value:
            self.peaks.pop()
        self.peaks.append((time, value))
        horizon = time - self.length
        while self.items[0][0] <= horizon:
            self.total -= self.items.popleft()[1]
        while self.peaks[0][0] <= horizon:
            self.peaks.popleft()

    def average(self) -> float:
        return max(self.total, 0.0) / len(self.items) if self.items else 0.0

    def maximum(self) -> float:
        return self.peaks[0][1] if self.peaks else 0.0


@dataclass
class State:
    """What the policy remembers about one function between samples."""

    stable: _Window
    panic: _Window
    recommendations: deque[tuple[float, int]] = field(default_factory=deque)
    panic_until: float = -math.inf
    latency_engaged: bool = False
    #: The latency term's last step up: (replicas asked, the quantile and the panic
    #: window's concurrency then, when it stepped, when they were all ready or ``None``).
    latency_step: tuple[int, float, float, float, float | None] | None = None
    #: A step up did not lower the quantile: the latency is not the replicas' to fix, and
    #: the term stays out until the quantile is back under the release level.
    latency_futile: bool = False
    last: Decision | None = None

    @classmethod
    def new(cls, config: ScalerConfig) -> State:
        return cls(_Window(config.stable_window), _Window(config.panic_window))


def _bounded(config: ScalerConfig, desired: int) -> tuple[int, str]:
    if desired < config.min_replicas:
        return config.min_replicas, "minReplicas"
    if config.max_replicas is not None and desired > config.max_replicas:
        return config.max_replicas, "maxReplicas"
    return desired, ""


def step(config: ScalerConfig, state: State, sample: Sample) -> Decision:
    """Advance ``state`` by ``sample``; the decision in force from now on."""
    now = sample.time
    concurrency = max(sample.concurrency, 0.0) if math.isfinite(sample.concurrency) else 0.0
    state.stable.add(now, concurrency)
    state.panic.add(now, concurrency)
    ready = max(sample.ready, 1)
    per_replica = config.per_replica

    stable_desired = math.ceil(state.stable.average() / per_replica - 1e-9)
    panic_desired = math.ceil(state.panic.average() / per_replica - 1e-9)
    # Panic starts when the panic window, or the newest sample alone (so a burst is caught
    # on its first tick, before it fills the window), needs panicThreshold x the replicas.
    burst = math.ceil(concurrency / per_replica - 1e-9)
    if max(panic_desired, burst) / ready >= config.panic_threshold:
        state.panic_until = now + config.stable_window
    panicking = now < state.panic_until

    reason = "stable window"
    desired = stable_desired
    if panicking:
        previous = state.last.desired if state.last else 0
        desired = max(panic_desired, stable_desired, previous)
        reason = "panic window"

    latency_desired = _latency_term(config, state, sample, ready)
    if latency_desired > desired:
        desired, reason = latency_desired, "latency objective"

    # Rate limits, relative to the replicas ready now (as the KPA).
    up_limit = math.ceil(ready * config.max_scale_up_rate)
    down_limit = math.floor(ready / config.max_scale_down_rate)
    if desired > up_limit:
        desired, reason = up_limit, "maxScaleUpRate"
    elif sample.ready > 0 and desired < down_limit:
        desired, reason = down_limit, "maxScaleDownRate"

    # Scale-down delay: the highest recommendation of the last scaleDownDelay seconds.
    state.recommendations.append((now, desired))
    while state.recommendations and state.recommendations[0][0] <= now - config.scale_down_delay:
        if len(state.recommendations) == 1:
            break
        state.recommendations.popleft()
    delayed = max(r for _, r in state.recommendations)
    if delayed > desired:
        desired, reason = delayed, "scaleDownDelay"

    active = (
        state.stable.maximum() > config.activation_concurrency
        or sample.rate > 0
        or panicking
        or config.min_replicas > 0
    )
    if not active:
        desired, reason = 0, "inactive"
    else:
        desired = max(desired, 1)
    bounded, why = _bounded(config, desired)
    if why and (bounded != desired):
        desired, reason = bounded, why
    value = metric_value(desired, sample.ready, config.hpa_tolerance, config.max_replicas)
    decision = Decision(desired, active, panicking, reason, value)
    state.last = decision
    return decision


def hpa_holds(value: int, current: int, tolerance: float) -> bool:
    """Whether the HPA keeps ``current`` replicas for an ``AverageValue`` external metric
    of ``value`` with target 1, as kubernetes/kubernetes computes it
    (``pkg/controller/podautoscaler/replica_calculator.go``,
    ``GetExternalPerPodMetricReplicas``): ``usageRatio = value / (target x current)``; it
    keeps ``current`` while ``|1 - usageRatio| <= tolerance``, else it takes
    ``ceil(value / target)``. (KEDA sends milli-units, which leave the ratio as it is.)"""
    return abs(1.0 - value / current) <= tolerance


def metric_value(desired: int, current: int, tolerance: float, maximum: int | None) -> int:
    """What to report so that the HPA lands on ``desired`` replicas or a few more, never
    fewer, given ``current`` ready replicas.

    A scale-up the HPA would hold back as within its tolerance (at 10 replicas a +1 step,
    with the default 0.1) reports the smallest count it acts on instead, ``floor(current x
    (1 + tolerance)) + 1``, but not above ``maximum``. A scale-down within the tolerance is
    reported as asked: the HPA holds ``current``, which is the safe side.
    """
    if current <= 0 or desired <= current or not hpa_holds(desired, current, tolerance):
        return desired
    value = max(desired, math.floor(current * (1 + tolerance)))
    while hpa_holds(value, current, tolerance):  # at most two steps: float rounding
        value += 1
    return value if maximum is None else min(value, maximum)


def _latency_term(config: ScalerConfig, state: State, sample: Sample, ready: int) -> int:
    """Replicas the latency objective asks for, or 0 when it asks for nothing.

    Little's law: at a fixed request rate, the concurrency a replica holds grows with the
    time each request takes, so with latency ``q`` over objective ``L`` the fleet holds
    about ``q / L`` times too much work per replica: ``ceil(ready * q / L)``, at most
    :data:`LATENCY_MAX_STEP` times the ready replicas. Guards:

    - **saturation**: it adds replicas only while the replicas are the bottleneck
      (:data:`LATENCY_SATURATION`); otherwise, while ``q > L``, it adds none and holds the
      ready replicas (no scale-down into a missed objective) as long as they carry
      :data:`LATENCY_HOLD` of their target;
    - **back-off**: after a step up it waits until the replicas are ready (or a stable
      window has passed) and then a stable window more, long enough for a quantile over a
      Prometheus rate window to show them; if ``q`` is not lower than when it stepped and
      the load did not grow meanwhile, the step was futile and the term lets go (adds
      nothing, holds nothing) until ``q`` is back under ``0.8 L``;
    - **hysteresis**: once engaged it holds the ready replicas (as above) until ``q``
      falls under ``0.8 L``.
    """
    objective, q = config.latency_objective, sample.latency
    if objective is None or q is None or not math.isfinite(q) or sample.rate <= 0:
        return 0  # no traffic, no latency signal: the term neither adds nor releases
    now = sample.time
    if q <= LATENCY_RELEASE * objective:
        state.latency_engaged, state.latency_step, state.latency_futile = False, None, False
        return 0
    if state.latency_futile:
        return 0
    load = state.panic.average() / ready
    hold = ready if load >= LATENCY_HOLD * config.per_replica - 1e-9 else 0
    if q <= objective:
        return hold if state.latency_engaged else 0
    state.latency_engaged = True
    settle = max(config.stable_window, config.panic_window)
    if state.latency_step is not None:
        wanted, before, load_before, stepped, landed = state.latency_step
        if landed is None:
            if sample.ready < wanted and now - stepped < settle:
                return wanted  # still starting: keep asking for them
            state.latency_step = (wanted, before, load_before, stepped, now)
            return ready
        if now - landed < settle:
            return ready  # let the quantile see the new replicas
        state.latency_step = None
        if q >= before and state.panic.average() <= load_before * 1.1:
            state.latency_futile, state.latency_engaged = True, False  # it did not help
            return 0
    if load < LATENCY_SATURATION * config.target_concurrency - 1e-9:
        return hold  # not saturated: more replicas are not known to help
    step_cap = math.ceil(ready * LATENCY_MAX_STEP - 1e-9)
    desired = min(math.ceil(ready * q / objective - 1e-9), step_cap)
    if config.max_replicas is not None:
        desired = min(desired, config.max_replicas)
    if desired > ready:
        state.latency_step = (desired, q, state.panic.average(), now, None)
    return desired

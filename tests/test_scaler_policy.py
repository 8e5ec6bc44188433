"""The scaling policy: table-driven cases and hypothesis properties (pure, no I/O)."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ofobserve.scaler.config import ScalerConfig
from ofobserve.scaler.policy import Decision, Sample, State, metric_value, step

BASE = ScalerConfig(namespace="shop", function="fn", target_concurrency=10, target_utilization=1)


def run(
    config: ScalerConfig,
    loads: list[float],
    *,
    ready: int | None = None,
    latency: float | None = None,
    rate: float = 1.0,
) -> list[Decision]:
    """One sample per second; ``ready`` follows the previous decision unless given."""
    state, decisions = State.new(config), []
    current = ready if ready is not None else 1
    for t, load in enumerate(loads):
        decision = step(config, state, Sample(float(t), load, rate, latency, current))
        decisions.append(decision)
        if ready is None:
            current = decision.desired
    return decisions


@pytest.mark.parametrize(
    ("name", "config", "loads", "want"),
    [
        ("steady 25 at 10 per replica", BASE, [25.0] * 60, 3),
        ("utilisation 0.5 doubles", replace(BASE, target_utilization=0.5), [25.0] * 60, 5),
        ("idle scales to zero", BASE, [0.0] * 60, 0),
        ("minReplicas keeps one", replace(BASE, min_replicas=1), [0.0] * 60, 1),
        ("maxReplicas caps", replace(BASE, max_replicas=4), [100.0] * 60, 4),
        ("activation threshold", replace(BASE, activation_concurrency=5), [4.0] * 60, 0),
    ],
)
def test_steady_loads(name: str, config: ScalerConfig, loads: list[float], want: int) -> None:
    rate = 1.0 if name != "activation threshold" and loads[0] > 0 else 0.0
    assert run(config, loads, rate=rate)[-1].desired == want, name


def test_a_tenfold_step_enters_panic_within_one_tick() -> None:
    decisions = run(BASE, [20.0] * 130 + [200.0])
    before, after = decisions[-2], decisions[-1]
    assert not before.panic
    assert after.panic
    assert after.desired >= 2 * before.desired
    assert after.reason == "panic window"


def test_panic_holds_replicas_then_ends_one_stable_window_after_the_last_breach() -> None:
    decisions = run(BASE, [20.0] * 130 + [200.0] * 10 + [20.0] * 80)
    assert not decisions[129].panic
    assert decisions[130].panic
    peak = max(d.desired for d in decisions[130:140])
    in_panic = [d for d in decisions[130:] if d.panic]
    assert all(later.desired >= peak for later in in_panic[in_panic.index(decisions[139]) :])
    # the last breach is within the 200s (t <= 139): panic ends one stable window later
    assert len(in_panic) <= 10 + 60
    assert not decisions[-1].panic
    assert decisions[-1].desired == 2


def test_scale_down_delay_keeps_the_highest_recent_recommendation() -> None:
    config = replace(BASE, scale_down_delay=30.0, panic_threshold=1000)
    decisions = run(config, [50.0] * 60 + [10.0] * 100)
    assert decisions[100].desired == 5  # the stable window still holds some of the 50s
    assert decisions[-1].desired == 1
    assert any(d.reason == "scaleDownDelay" for d in decisions)


def test_scale_down_rate_halves_at_most_per_step() -> None:
    config = replace(BASE, max_scale_down_rate=2.0)
    decision = step(config, State.new(config), Sample(0.0, 10.0, 1.0, None, 8))
    assert decision.desired == 4
    assert decision.reason == "maxScaleDownRate"


def test_scale_up_rate_limits_relative_to_ready() -> None:
    config = replace(BASE, max_scale_up_rate=2.0, panic_threshold=1000)
    decision = step(config, State.new(config), Sample(0.0, 500.0, 1.0, None, 3))
    assert decision.desired == 6
    assert decision.reason == "maxScaleUpRate"


def test_latency_over_objective_adds_replicas_with_hysteresis() -> None:
    config = replace(BASE, latency_objective=0.2, panic_threshold=1000)
    state = State.new(config)
    # 8 in flight per replica of a target of 10: saturated (LATENCY_SATURATION 0.8).
    slow = step(config, state, Sample(0.0, 16.0, 5.0, 0.4, 2))
    assert (slow.desired, slow.reason) == (4, "latency objective")  # ceil(2 * 0.4 / 0.2)
    held = step(config, state, Sample(1.0, 16.0, 5.0, 0.18, 4))
    assert held.desired == 4  # between 0.8 L and L: hold
    released = step(config, state, Sample(2.0, 16.0, 5.0, 0.1, 4))
    assert released.desired == 2  # under 0.8 L the term lets go; maxScaleDownRate halves 4


def test_latency_without_traffic_is_no_signal() -> None:
    config = replace(BASE, latency_objective=0.2)
    decision = step(config, State.new(config), Sample(0.0, 10.0, 0.0, 5.0, 1))
    assert decision.reason != "latency objective"


# --- properties ----------------------------------------------------------------------------------

loads = st.lists(st.floats(min_value=0, max_value=1000), min_size=1, max_size=90)
configs = st.builds(
    ScalerConfig,
    namespace=st.just("ns"),
    function=st.just("fn"),
    target_concurrency=st.floats(min_value=0.5, max_value=50),
    target_utilization=st.floats(min_value=0.1, max_value=1),
    min_replicas=st.integers(min_value=0, max_value=3),
    max_replicas=st.one_of(st.none(), st.integers(min_value=3, max_value=50)),
    stable_window=st.sampled_from([10.0, 60.0]),
    panic_window=st.sampled_from([2.0, 6.0]),
    scale_down_delay=st.sampled_from([0.0, 5.0]),
    latency_objective=st.one_of(st.none(), st.just(0.3)),
)


@settings(max_examples=200, deadline=None)
@given(configs, st.floats(min_value=0, max_value=500), st.floats(min_value=0, max_value=500))
def test_desired_is_monotone_in_load(config: ScalerConfig, a: float, b: float) -> None:
    low, high = sorted((a, b))
    n = int(config.stable_window) + 2
    assert (
        run(config, [low] * n, ready=5)[-1].desired <= run(config, [high] * n, ready=5)[-1].desired
    )


@settings(max_examples=200, deadline=None)
@given(configs, loads, st.integers(min_value=0, max_value=40))
def test_desired_stays_within_bounds(config: ScalerConfig, series: list[float], ready: int) -> None:
    for decision in run(config, series, ready=ready):
        assert decision.desired >= config.min_replicas
        if config.max_replicas is not None:
            assert decision.desired <= config.max_replicas


@settings(max_examples=200, deadline=None)
@given(configs, loads)
def test_no_scale_down_while_panicking(config: ScalerConfig, series: list[float]) -> None:
    decisions = run(config, series)
    for before, after in itertools.pairwise(decisions):
        if before.panic and after.panic:
            assert after.desired >= before.desired


@settings(max_examples=200, deadline=None)
@given(configs, loads, st.sampled_from([None, math.nan]))
def test_nan_latency_never_changes_the_decision(
    config: ScalerConfig, series: list[float], missing: float | None
) -> None:
    assert run(config, series, latency=missing) == run(config, series, latency=None)


@settings(max_examples=100, deadline=None)
@given(configs, st.floats(min_value=1, max_value=100))
def test_a_tenfold_step_always_panics_at_once(config: ScalerConfig, replicas: float) -> None:
    """From a steady load of at least one replica's worth, ten times the load needs more
    than twice the replicas: panic on the very tick of the step."""
    config = replace(config, panic_threshold=2.0, max_replicas=None, max_scale_up_rate=1000)
    load = replicas * config.per_replica
    steady = [load] * (2 * int(config.stable_window) + 1)
    decisions = run(config, [*steady, 10 * load])
    if decisions[-2].panic:
        return  # already panicking on the way up (a tiny target): nothing to enter
    assert decisions[-1].panic


# --- the HPA's tolerance -------------------------------------------------------------------------


def hpa(value: int, current: int, tolerance: float) -> int:
    """The HPA's next replica count for our metric: an ``AverageValue`` external metric
    with target 1 (KEDA sends milli-units). kubernetes/kubernetes
    ``pkg/controller/podautoscaler/replica_calculator.go`` ``GetExternalPerPodMetricReplicas``:
    ``usageRatio = usage / (target x current)``; within the tolerance it keeps ``current``,
    else ``ceil(usage / target)``."""
    usage, target = value * 1000, 1000
    ratio = usage / (target * current)
    if abs(1.0 - ratio) <= tolerance:
        return current
    return math.ceil(usage / target)


tolerances = st.one_of(
    st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.5]), st.floats(min_value=0, max_value=0.99)
)


@settings(max_examples=500, deadline=None)
@given(
    st.integers(min_value=0, max_value=2000), st.integers(min_value=1, max_value=2000), tolerances
)
def test_the_hpa_lands_on_desired_or_a_little_more(
    desired: int, current: int, tolerance: float
) -> None:
    value = metric_value(desired, current, tolerance, None)
    after = hpa(value, current, tolerance)
    assert after >= desired  # a scale-up is never swallowed, and nothing goes below desired
    if desired <= current:
        assert value == desired  # scaling down or holding is reported as asked
    # and it is the least that works: any smaller report would be held back
    for smaller in range(desired, value):
        assert hpa(smaller, current, tolerance) < desired


def test_a_small_step_up_is_not_held_back() -> None:
    """At 20 ready replicas and the default tolerance, 21 lies inside 20 x (1 +- 0.1): the
    HPA would keep 20, so the answer is 22, the smallest count it acts on (22 / 20 is 1.1,
    which in float64 is just outside the tolerance, as the HPA computes it)."""
    config = replace(BASE, panic_threshold=1000)
    decision = step(config, State.new(config), Sample(0.0, 210.0, 1.0, None, 20))
    assert (decision.desired, decision.value) == (21, 22)
    assert hpa(decision.desired, 20, 0.1) == 20  # what reporting desired would have done
    assert hpa(decision.value, 20, 0.1) == 22
    down = step(config, State.new(config), Sample(0.0, 190.0, 1.0, None, 20))
    assert (down.desired, down.value) == (19, 19)  # the HPA holds 20: the safe side
    exact = replace(config, hpa_tolerance=0.0)
    assert step(exact, State.new(exact), Sample(0.0, 210.0, 1.0, None, 20)).value == 21
    capped = replace(config, max_replicas=21)
    assert step(capped, State.new(capped), Sample(0.0, 210.0, 1.0, None, 20)).value == 21


@settings(max_examples=200, deadline=None)
@given(configs, loads, st.integers(min_value=1, max_value=60), tolerances)
def test_every_decision_survives_the_hpa(
    config: ScalerConfig, series: list[float], ready: int, tolerance: float
) -> None:
    """Whatever the policy decides, the HPA applying the reported value lands on at least
    the desired replicas, unless maxReplicas caps the report."""
    config = replace(config, hpa_tolerance=tolerance)
    for decision in run(config, series, ready=ready):
        after = hpa(decision.value, ready, tolerance)
        if after < decision.desired:  # only where maxReplicas keeps the report in the band
            assert decision.value == config.max_replicas
            assert after == ready
        assert decision.value >= decision.desired
        if config.max_replicas is not None:
            assert decision.value <= config.max_replicas


# --- the latency guard: saturation and back-off ----------------------------------------------


def test_a_cpu_bound_high_target_function_is_not_halved() -> None:
    """Target 100, 30 in flight per replica (the handler is CPU-bound well under its
    concurrency target), p95 3x the objective: the replicas are not saturated by
    concurrency, so the latency term adds none, but it holds them: the concurrency term's
    ceil(300 / 70) = 5 would halve a fleet that already misses its objective."""
    config = ScalerConfig(
        namespace="shop", function="fn", target_concurrency=100, latency_objective=0.5
    )
    decisions = run(config, [300.0] * 120, ready=10, latency=1.5, rate=100.0)
    assert {d.desired for d in decisions} == {10}
    assert decisions[-1].reason == "latency objective"


def test_saturated_replicas_scale_on_latency_and_back_off_when_it_does_not_help() -> None:
    # A stable window of 6 s: the back-off waits that long for the quantile to move.
    config = replace(BASE, latency_objective=0.5, panic_threshold=1000, stable_window=6.0)
    state = State.new(config)
    # 18 in flight per replica of a target of 10: saturated, p95 4x: a step to 2 x 10.
    first = step(config, state, Sample(0.0, 180.0, 50.0, 2.0, 10))
    assert (first.desired, first.reason) == (20, "latency objective")
    starting = step(config, state, Sample(1.0, 180.0, 50.0, 2.0, 12))
    assert starting.desired == 20  # the step's replicas are still starting: keep asking
    landed = [step(config, state, Sample(float(t), 180.0, 50.0, 2.0, 20)) for t in range(2, 8)]
    assert {d.desired for d in landed} == {20}  # a stable window for the quantile to move
    # Still 2 s a stable window after the step landed, at the same load: it did not help.
    futile = step(config, state, Sample(8.0, 180.0, 50.0, 2.0, 20))
    assert futile.reason != "latency objective"
    assert futile.desired == 18  # the concurrency term alone: ceil(180 / 10)
    again = step(config, state, Sample(9.0, 180.0, 50.0, 3.0, 18))
    assert again.reason != "latency objective"  # it stays out ...
    recovered = step(config, state, Sample(10.0, 180.0, 50.0, 0.3, 18))
    assert recovered.reason != "latency objective"
    back = step(config, state, Sample(11.0, 180.0, 50.0, 2.0, 18))
    assert (back.desired, back.reason) == (36, "latency objective")  # ... until it recovered


def test_a_step_is_not_judged_futile_when_the_load_grew_meanwhile() -> None:
    config = replace(BASE, latency_objective=0.5, panic_threshold=1000, stable_window=6.0)
    state = State.new(config)
    assert step(config, state, Sample(0.0, 180.0, 50.0, 2.0, 10)).desired == 20
    for t in range(1, 8):  # the load doubles while the step lands: the quantile cannot fall
        step(config, state, Sample(float(t), 360.0, 50.0, 2.5, 20))
    d = step(config, state, Sample(8.0, 360.0, 50.0, 2.5, 20))
    assert (d.desired, d.reason) == (40, "latency objective")


def test_a_latency_step_stops_at_max_replicas_and_lets_go() -> None:
    """A step is never asked above maxReplicas, so it lands, and a fleet whose load fell
    away is let go even though the quantile stays high."""
    config = replace(BASE, latency_objective=0.5, panic_threshold=1000, max_replicas=4)
    state = State.new(config)
    first = [step(config, state, Sample(float(t), 27.0, 50.0, 2.0, 3)) for t in range(3)]
    assert {d.desired for d in first} == {4}
    idle = [step(config, state, Sample(float(t), 0.2, 0.1, 2.0, 4)) for t in range(3, 400)]
    assert idle[-1].desired < 4


def test_a_step_that_lowers_the_latency_allows_the_next() -> None:
    config = replace(BASE, latency_objective=0.5, panic_threshold=1000, stable_window=6.0)
    state = State.new(config)
    assert step(config, state, Sample(0.0, 90.0, 50.0, 2.0, 10)).desired == 20
    for t in range(1, 8):
        step(config, state, Sample(float(t), 180.0, 50.0, 1.5, 20))
    # Lower than the 2 s it stepped at, still over the objective and saturated: step on.
    d = step(config, state, Sample(8.0, 180.0, 50.0, 1.0, 20))
    assert (d.desired, d.reason) == (40, "latency objective")  # min(20 x 2, 2 x 20)


idle_shares = st.lists(st.floats(min_value=0, max_value=0.79), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(
    configs,
    idle_shares,
    st.integers(min_value=1, max_value=40),
    st.floats(min_value=0.31, max_value=30),
)
def test_idle_replicas_never_scale_up_on_latency(
    config: ScalerConfig, shares: list[float], ready: int, latency: float
) -> None:
    """Per-replica concurrency under LATENCY_SATURATION x targetConcurrency, latency over
    the objective: the answer is never above what the load alone asks for, or the ready
    replicas (the term holds, it does not add)."""
    config = replace(config, latency_objective=0.3)
    series = [s * config.target_concurrency * ready for s in shares]
    slow = run(config, series, ready=ready, latency=latency)
    plain = run(config, series, ready=ready, latency=None)
    for with_latency, without in zip(slow, plain, strict=True):
        assert with_latency.desired <= max(without.desired, ready)


@settings(max_examples=200, deadline=None)
@given(
    configs,
    st.floats(min_value=0.8, max_value=5),
    st.integers(min_value=1, max_value=40),
    st.floats(min_value=1.01, max_value=30),
)
def test_saturated_replicas_with_high_latency_scale_up(
    config: ScalerConfig, share: float, ready: int, over: float
) -> None:
    config = replace(config, latency_objective=0.3, max_replicas=None)
    load = share * config.target_concurrency * ready
    decision = step(config, State.new(config), Sample(0.0, load, 1.0, 0.3 * over, ready))
    assert decision.desired > ready

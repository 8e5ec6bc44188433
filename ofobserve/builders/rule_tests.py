"""promtool unit tests for a function's alerts, generated from the same definitions. Pure.

Each test file loads the fleet's rule file and the function's own (its constant series),
as Prometheus does.

Each scenario feeds synthetic series with the profile's real metric names and labels
(``profiles.Counter.ok_labels``…) and states which alerts fire at which time, with which
labels and annotations. promtool then evaluates the real rules on that data: the
expectations here are the scenario's intent (this error ratio breaches that pair), the
numbers are Prometheus' own.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ofobserve import alerts as a
from ofobserve import conventions as c
from ofobserve import profiles, slo
from ofobserve.builders.rules import (
    ERROR_OR_LATENCY,
    RuleContext,
    alert_names,
    burn_rate_static,
    fleet_files,
    has_keda,
    max_replicas,
)
from ofobserve.builders.scaling import why_not_wired
from ofobserve.profiles import escape_label_value
from ofobserve.settings import BurnWindow, window_seconds
from ofobserve.subject import Subject

PER_MINUTE = 600  # requests per minute of "normal" traffic: 10/s
DEPLOYMENT = "serving-x1y2z-deployment-v100-a1b2c"
#: A ScaledObject named as OpenFunction names them: never derivable from the Function.
SCALED_OBJECT = "serving-x1y2z-scaler-d3e4f"
EVALUATION_INTERVAL = "5m"  # 1m would be 5x slower for the same verdicts
#: Two kube-state-metrics instances (an HA pair, or both sides of a rollout) export every
#: object: the rules must reduce them before they join.
KSM_INSTANCES = ("kube-state-metrics-0", "kube-state-metrics-1")


@dataclass
class Traffic:
    """Requests per minute: (count, failed, latency in seconds)."""

    parts: list[tuple[float, bool, float]] = field(default_factory=list)


@dataclass
class Scenario:
    name: str
    minutes: int
    interval_minutes: int = 1
    traffic: Traffic | None = None
    desired: int | None = 2
    available: int | None = 2
    up: float | None = 1
    keda_errors_per_minute: float = 0
    #: The KEDA error counters fed: both, as KEDA 2.14-2.16 export them (so the rules must
    #: count them once), or the one of another release.
    keda_counters: tuple[str, ...] = (c.KEDA_SCALER_ERRORS_LEGACY, c.KEDA_SCALER_ERRORS)
    scaler_age: float | None = 5
    expect: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def build_rule_tests(subject: Subject) -> dict[str, Any]:
    """The promtool test file of one function: the fleet's rule files its rules are in
    (``../../fleet/<family>.yaml``, ``../../fleet/common.yaml``) and its own
    (``../../<ns>/<name>.yaml``)."""
    ctx = RuleContext.of(subject)
    f = subject.function
    names = alert_names(subject)
    tests = [_test(ctx, s, names) for s in scenarios(ctx)]
    return {
        "rule_files": [
            *(f"../../{c.FLEET_RULES_FOLDER}/{name}" for name in fleet_files(subject)),
            f"../../{f.namespace}/{f.name}.yaml",
        ],
        "evaluation_interval": EVALUATION_INTERVAL,
        "tests": tests,
    }


def scenarios(ctx: RuleContext) -> list[Scenario]:
    s = ctx.subject.settings
    fast = _fast_latency(ctx)
    healthy = Traffic([(PER_MINUTE, False, fast)])
    cap = max_replicas(ctx.subject)
    running = 2 if cap is None else min(2, cap - 1)
    out = [
        Scenario(
            "healthy: nothing fires",
            120,
            traffic=healthy,
            desired=running,
            available=running,
        ),
        Scenario(
            "scaled to zero: nothing fires, not even FunctionMetricsAbsent",
            120,
            desired=0,
            available=0,
            up=None,
            scaler_age=None,
        ),
    ]
    for objective in slo.objectives(s):
        out += _burn_scenarios(ctx, objective)
    out += _operational_scenarios(ctx, healthy)
    return out


# --- burn-rate scenarios ----------------------------------------------------------------------


def _burn_scenarios(ctx: RuleContext, objective: slo.Objective) -> list[Scenario]:
    s = ctx.subject.settings
    windows = slo.burn_windows(s)
    budget = float(objective.budget)
    rates = sorted(w.burn_rate for w in windows)
    # every short window full, long ones partly: their ratio is that of the data so far
    slow_minutes = max(window_seconds(w.short) for w in windows) // 60 + 30
    spec = ERROR_OR_LATENCY[objective.name]
    out = []
    for label, ratio, minutes, interval in (
        ("fast burn", min(1.0, budget * rates[-1] * 1.25), 60, 1),
        ("slow burn", budget * rates[0] * 1.5, slow_minutes, 5),
    ):
        if ratio <= budget * rates[0] or ratio > 1:
            continue
        scenario = Scenario(
            f"{objective.name} {label}: {slo.plain(round(ratio, 6))} of requests bad",
            minutes,
            interval_minutes=interval,
            traffic=_bad_traffic(ctx, objective, PER_MINUTE, ratio),
        )
        firing = []
        for severity in dict.fromkeys(w.severity for w in windows):
            pairs = [w for w in windows if w.severity == severity]
            if any(_breaches(w, ratio, budget, minutes, s.slo.min_requests) for w in pairs):
                static = burn_rate_static(ctx, objective, pairs[0])
                firing.append(
                    _expected(
                        ctx,
                        spec,
                        ratio,
                        severity,
                        {**ctx.identity, **ctx.sloth_labels(objective)},
                        **static,
                    )
                )
        scenario.expect[spec.name] = firing
        out.append(scenario)
    minimum = s.slo.min_requests
    if minimum:
        per_minute = minimum / 240  # 2 h hold half the guard's minimum
        out.append(
            Scenario(
                f"{objective.name} low traffic: every request bad, fewer than {minimum} "
                "requests, the guard keeps it silent",
                120,
                traffic=_bad_traffic(ctx, objective, per_minute, 1.0),
                expect={spec.name: []},
            )
        )
    return out


def _breaches(w: BurnWindow, ratio: float, budget: float, minutes: int, minimum: int) -> bool:
    """Whether a pair fires on ``ratio`` bad requests, at normal traffic after ``minutes``."""
    held = PER_MINUTE * min(window_seconds(w.long) // 60, minutes)
    return ratio > w.burn_rate * budget and held >= minimum


def _bad_traffic(ctx: RuleContext, objective: slo.Objective, total: float, ratio: float) -> Traffic:
    fast = _fast_latency(ctx)
    if objective.name == c.SLO_AVAILABILITY:
        return Traffic([(total * (1 - ratio), False, fast), (total * ratio, True, fast)])
    bucket = _bucket_above(ctx, ctx.subject.settings.slo.latency.threshold)
    slow = sum(bucket) / 2 if bucket else 2 * _bounds_seconds(ctx)[-1]  # else in +Inf
    return Traffic([(total * (1 - ratio), False, fast), (total * ratio, False, slow)])


# --- operational scenarios -------------------------------------------------------------------


def _operational_scenarios(ctx: RuleContext, healthy: Traffic) -> list[Scenario]:
    s = ctx.subject.settings
    t = s.alerting.thresholds
    out = []
    error_ratio = min(1.0, t.error_ratio * 2)
    out.append(
        Scenario(
            f"errors: {slo.plain(error_ratio)} of requests fail",
            30,
            traffic=Traffic(
                [
                    (PER_MINUTE * (1 - error_ratio), False, _fast_latency(ctx)),
                    (PER_MINUTE * error_ratio, True, _fast_latency(ctx)),
                ]
            ),
            expect={
                a.HIGH_ERROR_RATE.name: [
                    _expected(
                        ctx,
                        a.HIGH_ERROR_RATE,
                        error_ratio,
                        labels=ctx.identity,
                        threshold=a.humanize("percentage", t.error_ratio),
                    )
                ]
            },
        )
    )
    slow = _bucket_above(ctx, t.latency)
    if slow is not None:
        low, high = slow
        q = t.latency_quantile
        out.append(
            Scenario(
                f"latency: every request between {slo.plain(low)} s and {slo.plain(high)} s",
                30,
                traffic=Traffic([(PER_MINUTE, False, (low + high) / 2)]),
                expect={
                    a.HIGH_LATENCY.name: [
                        _expected(
                            ctx,
                            a.HIGH_LATENCY,
                            low + (high - low) * q,
                            labels={**ctx.identity, c.QUANTILE_LABEL: slo.plain(q)},
                            threshold=a.humanize("duration", t.latency),
                            quantile=slo.plain(q * 100),
                        )
                    ]
                },
            )
        )
    out.append(
        Scenario(
            "one replica unavailable",
            30,
            traffic=healthy,
            available=1,
            expect={
                a.REPLICAS_UNAVAILABLE.name: [
                    _expected(ctx, a.REPLICAS_UNAVAILABLE, 1, labels=ctx.identity)
                ]
            },
        )
    )
    cap = max_replicas(ctx.subject)
    if cap is not None:
        out.append(
            Scenario(
                f"at the maximum of {cap} replicas",
                30,
                traffic=healthy,
                desired=cap,
                available=cap,
                expect={
                    a.AT_MAX_REPLICAS.name: [
                        _expected(
                            ctx, a.AT_MAX_REPLICAS, cap, labels=ctx.identity, max_replicas=str(cap)
                        )
                    ]
                },
            )
        )
    stale = t.scaler_stale_after * 5
    reasons = [("keda", 1 / 60)] if has_keda(ctx.subject) else []
    reasons += [("stale", stale)] if why_not_wired(ctx.subject) is None else []
    if reasons:
        out.append(
            Scenario(
                "KEDA scaler errors and a stale ofobserve scaler",
                30,
                traffic=healthy,
                keda_errors_per_minute=1,
                scaler_age=stale,
                expect={
                    a.SCALER_ERRORS.name: [
                        _expected(
                            ctx,
                            a.SCALER_ERRORS,
                            value,
                            labels={**ctx.identity, "reason": reason},
                            reason=reason,
                        )
                        for reason, value in reasons
                    ]
                },
            )
        )
    if has_keda(ctx.subject):
        out.append(
            Scenario(
                "KEDA 2.10 scaler errors (keda_scaler_errors only)",
                30,
                traffic=healthy,
                keda_errors_per_minute=1,
                keda_counters=(c.KEDA_SCALER_ERRORS_LEGACY,),
                expect={
                    a.SCALER_ERRORS.name: [
                        _expected(
                            ctx,
                            a.SCALER_ERRORS,
                            1 / 60,
                            labels={**ctx.identity, "reason": "keda"},
                            reason="keda",
                        )
                    ]
                },
            )
        )
    if ctx.subject.profile != c.PROFILE_KEDA_HTTP:
        out.append(
            Scenario(
                "two replicas desired, no scrape target",
                30,
                up=None,
                expect={
                    a.METRICS_ABSENT.name: [
                        _expected(ctx, a.METRICS_ABSENT, 2, labels=ctx.identity)
                    ]
                },
            )
        )
    return out


# --- expectations -----------------------------------------------------------------------------


def _expected(
    ctx: RuleContext,
    spec: a.AlertSpec,
    value: float,
    severity: str | None = None,
    labels: dict[str, str] | None = None,
    **static: str,
) -> dict[str, Any]:
    s = ctx.subject.settings
    f = ctx.subject.function
    severity = severity or s.alerting.severity_overrides.get(spec.name, spec.severity)
    exp_labels = {**(labels or {}), **s.alerting.labels, "severity": severity}
    if s.alerting.team:
        exp_labels["team"] = s.alerting.team
    uid = c.dashboard_uid(f.namespace, f.name)
    return {
        "exp_labels": exp_labels,
        "exp_annotations": {
            "summary": spec.summary,
            "description": a.expand(spec, f.namespace, f.name, value, **static),
            "runbook_url": s.alerting.runbook_base_url + spec.name.lower(),
            "dashboard_url": f"{s.grafana.url.rstrip('/')}/d/{uid}",
        },
    }


def _test(ctx: RuleContext, scenario: Scenario, names: list[str]) -> dict[str, Any]:
    checks = []
    for name in names:
        expected = scenario.expect.get(name)
        if expected is None and scenario.expect:
            continue  # a focused scenario asserts only its own alerts
        checks.append(
            {
                "eval_time": f"{scenario.minutes}m",
                "alertname": name,
                "exp_alerts": expected or [],
            }
        )
    return {
        "name": scenario.name,
        "interval": f"{scenario.interval_minutes}m",
        "input_series": list(_series(ctx, scenario)),
        "alert_rule_test": checks,
    }


# --- synthetic series ---------------------------------------------------------------------------


def _series(ctx: RuleContext, scenario: Scenario) -> Iterable[dict[str, str]]:
    steps = scenario.minutes // scenario.interval_minutes + 1
    per_step = scenario.interval_minutes
    ident = ctx.identity
    f = ctx.subject.function
    if scenario.traffic is not None:
        yield from _traffic_series(ctx, scenario.traffic, steps, per_step)
    owned = {c.NAMESPACE_LABEL: f.namespace, "deployment": DEPLOYMENT}
    owned |= ctx.subject.settings.monitoring.extra_matchers
    yield from _ksm(c.KSM_DEPLOYMENT_LABELS, {**owned, c.KSM_FUNCTION_LABEL: f.name}, 1, steps)
    # the dapr-proxy Deployment carries the function's label too, and must not count
    proxy = {**owned, "deployment": DEPLOYMENT.replace("-deployment-", "-proxy-deployment-")}
    yield from _ksm(c.KSM_DEPLOYMENT_LABELS, {**proxy, c.KSM_FUNCTION_LABEL: f.name}, 1, steps)
    yield from _ksm(c.KSM_DEPLOYMENT_SPEC_REPLICAS, proxy, 1, steps)
    yield from _ksm(c.KSM_DEPLOYMENT_AVAILABLE, proxy, 1, steps)
    hpa = {
        **{k: v for k, v in owned.items() if k != "deployment"},
        c.KSM_HPA_LABEL: c.keda_hpa_name(SCALED_OBJECT),
        "scaletargetref_kind": "Deployment",
        "scaletargetref_name": DEPLOYMENT,
    }
    yield from _ksm(c.KSM_HPA_INFO, hpa, 1, steps)
    if scenario.desired is not None:
        unavailable = scenario.desired - (scenario.available or 0)
        yield from _ksm(c.KSM_DEPLOYMENT_SPEC_REPLICAS, owned, scenario.desired, steps)
        yield from _ksm(c.KSM_DEPLOYMENT_AVAILABLE, owned, scenario.available or 0, steps)
        yield from _ksm(c.KSM_DEPLOYMENT_UNAVAILABLE, owned, unavailable, steps)
    if scenario.up is not None:
        yield _gauge("up", {**ident, "pod": "function-pod"}, scenario.up, steps)
    keda = {
        c.KEDA_NAMESPACE_LABEL: f.namespace,
        c.KEDA_SCALED_OBJECT_LABEL: SCALED_OBJECT,
        "scaler": "externalScaler",
        "metric": "s0-concurrency",
        **ctx.subject.settings.monitoring.extra_matchers,
    }
    for counter in scenario.keda_counters:
        yield _counter(counter, keda, scenario.keda_errors_per_minute * per_step, steps)
    if scenario.scaler_age is not None:
        yield _gauge(c.SCALER_SAMPLE_AGE_SECONDS, ident, scenario.scaler_age, steps)


def _traffic_series(
    ctx: RuleContext, traffic: Traffic, steps: int, per_step: int
) -> Iterable[dict[str, str]]:
    prof = ctx.queries.profile
    counter, hist = prof.counters[0], prof.histograms[0]
    ident = ctx.identity
    classes = (
        (dict(counter.ok_labels), [p for p in traffic.parts if not p[1]]),
        (dict(counter.error_labels), [p for p in traffic.parts if p[1]]),
    )
    shares_count = counter.metric == f"{hist.metric}_count"
    for labels, parts in classes:
        total = sum(n for n, _, _ in parts) * per_step
        if not shares_count:
            yield _counter(counter.metric, {**ident, **labels}, total, steps)
    hist_classes = classes if shares_count else (({}, traffic.parts),)
    bounds = _bounds(ctx)
    for labels, parts in hist_classes:
        base = {**ident, **labels}
        for bound in (*bounds, float("inf")):
            n = sum(k for k, _, lat in parts if lat * hist.scale <= bound) * per_step
            yield _counter(f"{hist.metric}_bucket", {**base, "le": _le(ctx, bound)}, n, steps)
        count = sum(k for k, _, _ in parts) * per_step
        total_time = sum(k * lat * hist.scale for k, _, lat in parts) * per_step
        yield _counter(f"{hist.metric}_count", base, count, steps)
        yield _counter(f"{hist.metric}_sum", base, total_time, steps)


def _bounds(ctx: RuleContext) -> tuple[float, ...]:
    """The first histogram's bounds in ``le`` units (native: defaults plus thresholds)."""
    h = ctx.queries.profile.histograms[0]
    if h.buckets:
        return h.buckets
    s = ctx.subject.settings
    extra = {s.slo.latency.threshold, s.alerting.thresholds.latency}
    return tuple(sorted(set(profiles.NATIVE_DEFAULT_BUCKETS_S) | extra))


def _le(ctx: RuleContext, bound: float) -> str:
    """``le`` as the profile's exporter writes it (Python ``1.0``, Go ``1``)."""
    return _le_text(ctx.subject.profile == c.PROFILE_NATIVE, bound)


@functools.lru_cache(maxsize=1024)
def _le_text(native: bool, bound: float) -> str:
    if bound == float("inf"):
        return "+Inf"
    if native:
        return repr(float(bound))
    return str(int(bound)) if bound == int(bound) else repr(bound)


def _bounds_seconds(ctx: RuleContext) -> list[float]:
    return [b / ctx.queries.profile.histograms[0].scale for b in _bounds(ctx)]


def _fast_latency(ctx: RuleContext) -> float:
    """A latency inside the first bucket, below every threshold (bucket middles keep
    unit conversions away from the bounds)."""
    return _bounds_seconds(ctx)[0] / 2


def _bucket_above(ctx: RuleContext, seconds: float) -> tuple[float, float] | None:
    """The first bucket wholly above ``seconds``, as (lower, upper) bounds in seconds."""
    bounds = _bounds_seconds(ctx)
    for lower, upper in zip([0.0, *bounds], bounds, strict=False):
        if lower >= seconds - 1e-12 and upper > seconds:
            return lower, upper
    return None


@functools.lru_cache(maxsize=4096)
def _escaped(value: str) -> str:
    """:func:`escape_label_value`, once per value: the same few values fill every series."""
    return escape_label_value(value)


def _labels(metric: str, labels: dict[str, str]) -> str:
    return _selector(metric, tuple(labels.items()))


@functools.lru_cache(maxsize=8192)
def _selector(metric: str, labels: tuple[tuple[str, str], ...]) -> str:
    """``metric{k="v",...}``, once per series: a function's scenarios feed the same ones."""
    inner = ",".join([f'{k}="{_escaped(v)}"' for k, v in labels])
    return f"{metric}{{{inner}}}"


def _counter(metric: str, labels: dict[str, str], per_step: float, steps: int) -> dict[str, str]:
    return {"series": _labels(metric, labels), "values": _values("0+", per_step, steps)}


def _ksm(metric: str, labels: dict[str, str], value: float, steps: int) -> Iterable[dict[str, str]]:
    """A kube-state-metrics gauge, as each of :data:`KSM_INSTANCES` exports it."""
    for instance in KSM_INSTANCES:
        yield _gauge(metric, {**labels, "instance": instance}, value, steps)


def _gauge(metric: str, labels: dict[str, str], value: float, steps: int) -> dict[str, str]:
    return {"series": _labels(metric, labels), "values": _values("", value, steps)}


@functools.lru_cache(maxsize=4096)
def _values(start: str, step: float, steps: int) -> str:
    """A series' values in promtool's notation: ``0+<step>x<steps>`` for a counter
    (``start`` ``0+``), ``<value>+0x<steps>`` for a gauge (``start`` empty); the same few
    fill every file."""
    return f"{start}{slo.plain(step)}x{steps}" if start else f"{slo.plain(step)}+0x{steps}"

"""The alert catalogue: every alert's name, severity, wording and runbook. Pure, no I/O.

The rules builder, the generated promtool tests and ``docs/alerts.md`` all read these
definitions, so an alert is described in exactly one place. Descriptions are written
with ``{namespace}``, ``{function}`` and ``{value}`` fields (plus static ones filled in at
render time): :func:`go_template` turns them into Prometheus templates, :func:`expand`
into the text Prometheus will produce for a given value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ValueFormat = Literal["percentage", "duration", "number"]
GO_FILTER: dict[str, str] = {
    "percentage": "humanizePercentage",
    "duration": "humanizeDuration",
    "number": "humanize",
}


@dataclass(frozen=True)
class AlertSpec:
    """What one alert means and how it reads; expressions are built per function."""

    name: str
    severity: str  # default; burn-rate alerts take theirs from the window
    summary: str  # one static sentence
    description: str  # fields: namespace, function, value, and the builder's static ones
    value_format: ValueFormat
    for_: str
    keep_firing_for: str
    meaning: str
    causes: tuple[str, ...]
    first_steps: tuple[str, ...]


ERROR_BUDGET_BURN = AlertSpec(
    name="FunctionErrorBudgetBurn",
    severity="critical",
    summary="A function is burning its availability error budget too fast.",
    description=(
        "{namespace}/{function}: {value} of requests failed in the short window, "
        "{burn_rate}x the rate its {objective}% availability objective can sustain."
    ),
    value_format="percentage",
    for_="",
    keep_firing_for="5m",
    meaning=(
        "Both the long and the short window of one burn-rate pair show more failed requests "
        "than the objective allows, at that pair's multiple. `critical` pairs (1h/5m at "
        "14.4x, 6h/30m at 6x over 30 days) exhaust the budget within days and page; "
        "`warning` pairs (1d/2h at 3x, 3d/6h at 1x) are tickets. No alert fires while the "
        "long window holds fewer than `slo.minRequests` requests."
    ),
    causes=(
        "A bad release: the function raises or returns 5xx for some inputs.",
        "A dependency (database, broker, downstream API) fails or times out.",
        "Out-of-memory kills or crash loops during scale-up.",
    ),
    first_steps=(
        "Open the function's dashboard (`dashboard_url`): Errors row, errors by code.",
        "Compare the start of the burn with the last rollout of the Function.",
        "Read the function's logs for the failing invocations (Logs and traces row).",
    ),
)
LATENCY_BUDGET_BURN = AlertSpec(
    name="FunctionLatencyBudgetBurn",
    severity="critical",
    summary="A function is burning its latency error budget too fast.",
    description=(
        "{namespace}/{function}: {value} of requests were slower than {threshold} in the "
        "short window, {burn_rate}x what its {objective}% latency objective can sustain."
    ),
    value_format="percentage",
    for_="",
    keep_firing_for="5m",
    meaning=(
        "The share of requests slower than the latency SLO threshold burns the latency budget "
        "at one pair's multiple in both its windows. Severities and the low-traffic guard "
        "work as for FunctionErrorBudgetBurn."
    ),
    causes=(
        "Cold starts: the function scales from zero or adds replicas too slowly.",
        "A slow dependency, or CPU throttling at the container's limit.",
        "Concurrency per replica above what the function handles.",
    ),
    first_steps=(
        "Dashboard: Latency row (quantiles and heatmap) and Concurrency row.",
        "Check the Scaling row: replicas at max, or the scaler lagging demand.",
        "Check the Resources row for CPU throttling.",
    ),
)
HIGH_ERROR_RATE = AlertSpec(
    name="FunctionHighErrorRate",
    severity="warning",
    summary="A function fails more requests than its error-rate threshold.",
    description=(
        "{namespace}/{function}: {value} of requests failed over 5m (threshold {threshold})."
    ),
    value_format="percentage",
    for_="5m",
    keep_firing_for="5m",
    meaning=(
        "More than `alerting.thresholds.errorRatio` of the requests of the last 5 minutes "
        "failed, for 5 minutes. The fast, SLO-independent signal of OpenFunction's notes."
    ),
    causes=ERROR_BUDGET_BURN.causes,
    first_steps=ERROR_BUDGET_BURN.first_steps,
)
HIGH_LATENCY = AlertSpec(
    name="FunctionHighLatency",
    severity="warning",
    summary="A function's latency quantile is above its threshold.",
    description=(
        "{namespace}/{function}: p{quantile} latency is {value} over 5m (threshold {threshold})."
    ),
    value_format="duration",
    for_="5m",
    keep_firing_for="5m",
    meaning=(
        "The `alerting.thresholds.latencyQuantile` latency quantile of the last 5 minutes "
        "exceeded `alerting.thresholds.latency` for 5 minutes."
    ),
    causes=LATENCY_BUDGET_BURN.causes,
    first_steps=LATENCY_BUDGET_BURN.first_steps,
)
REPLICAS_UNAVAILABLE = AlertSpec(
    name="FunctionReplicasUnavailable",
    severity="warning",
    summary="Replicas of a function are unavailable.",
    description="{namespace}/{function}: {value} replica(s) unavailable for 15 minutes.",
    value_format="number",
    for_="15m",
    keep_firing_for="",
    meaning=(
        "The function's Deployments report unavailable replicas for 15 minutes (longer than "
        "a rollout): pods cannot start or do not become ready."
    ),
    causes=(
        "Image pull errors, or a crash loop in the function or its sidecars.",
        "Not enough cluster capacity: pods stay Pending.",
        "A failing readiness probe.",
    ),
    first_steps=(
        "`kubectl -n <namespace> get pods -l ofobserve.io/function=<function>`.",
        "`kubectl describe` a pod that is not ready: events, last state, probe failures.",
    ),
)
AT_MAX_REPLICAS = AlertSpec(
    name="FunctionAtMaxReplicas",
    severity="warning",
    summary="A function has been at its maximum replicas for 15 minutes.",
    description=(
        "{namespace}/{function}: {value} replicas desired for 15 minutes, at its maximum "
        "of {max_replicas}; it cannot scale further."
    ),
    value_format="number",
    for_="15m",
    keep_firing_for="",
    meaning=(
        "The desired replicas reached the function's maximum (`scaling.maxReplicas`, or the "
        "Function's `scaleOptions.maxReplicaCount`) and stayed there: demand is capped."
    ),
    causes=(
        "Sustained traffic above what the maximum can serve.",
        "Each replica is slower than before (latency regression), so more are needed.",
    ),
    first_steps=(
        "Dashboard: Scaling and Latency rows; is latency rising with the cap?",
        "Raise the maximum, or the target concurrency if replicas are underused.",
    ),
)
SCALER_ERRORS = AlertSpec(
    name="FunctionScalerErrors",
    severity="warning",
    summary="The autoscaler of a function is failing or reading stale data.",
    description=(
        "{namespace}/{function}: scaler problem '{reason}' (value {value}) for 10 minutes."
    ),
    value_format="number",
    for_="10m",
    keep_firing_for="",
    meaning=(
        "Either KEDA reports errors from one of the function's scalers (`reason=keda`, value "
        "in errors per second), or the ofobserve scaler's last sample for the function is "
        "older than `alerting.thresholds.scalerStaleAfter` (`reason=stale`, value in "
        "seconds). Scaling decisions are then based on old or no data. Rendered only where one "
        "of the two can happen: a function a KEDA ScaledObject scales (found through "
        "kube-state-metrics' HPA target, `namespace_function:keda_scaler:info`), or one the "
        "ofobserve scaler scales."
    ),
    causes=(
        "Prometheus unreachable from KEDA or the ofobserve scaler.",
        "A broker or trigger credential that KEDA cannot use.",
        "The function's pods are not scraped (see FunctionMetricsAbsent).",
    ),
    first_steps=(
        "`kubectl -n <namespace> describe scaledobject` for KEDA's events.",
        "The ofobserve scaler dashboard: source freshness and errors.",
    ),
)
METRICS_ABSENT = AlertSpec(
    name="FunctionMetricsAbsent",
    severity="warning",
    summary="A function that should be running exposes no metrics.",
    description=(
        "{namespace}/{function}: {value} replica(s) desired but no scrape target is up "
        "for 10 minutes."
    ),
    value_format="number",
    for_="10m",
    keep_firing_for="",
    meaning=(
        "The function wants replicas, but Prometheus has no healthy target for it. It never "
        "fires at zero replicas, so scale-to-zero is silent."
    ),
    causes=(
        "The Function patch (label `ofobserve.io/function`) was not applied, so the "
        "PodMonitor selects nothing.",
        "The metrics port is wrong, or the instrumentation is not started.",
        "prometheus-operator does not pick up the PodMonitor (selector labels).",
    ),
    first_steps=(
        "Prometheus `/targets`: is the function's PodMonitor there, and why is it down?",
        "Check the pods carry `ofobserve.io/function=<function>`.",
    ),
)

CATALOGUE: tuple[AlertSpec, ...] = (
    ERROR_BUDGET_BURN,
    LATENCY_BUDGET_BURN,
    HIGH_ERROR_RATE,
    HIGH_LATENCY,
    REPLICAS_UNAVAILABLE,
    AT_MAX_REPLICAS,
    SCALER_ERRORS,
    METRICS_ABSENT,
)
NAMES: tuple[str, ...] = tuple(a.name for a in CATALOGUE)
#: Template of the ``reason`` label, a static field of FunctionScalerErrors.
REASON_TEMPLATE = "{{ $labels.reason }}"
#: Alerts whose severity comes from the burn-rate window, not ``severityOverrides``.
BURN_RATE = (ERROR_BUDGET_BURN.name, LATENCY_BUDGET_BURN.name)


def go_template(spec: AlertSpec, **static: str) -> str:
    """The description as a Prometheus alert template. ``namespace`` and ``function`` come
    from the alert's series unless given as static values."""
    fields = {
        "namespace": "{{ $labels.namespace }}",
        "function": "{{ $labels.function }}",
        "value": f"{{{{ $value | {GO_FILTER[spec.value_format]} }}}}",
        **static,
    }
    return spec.description.format(**fields)


def expand(spec: AlertSpec, namespace: str, function: str, value: float, **static: str) -> str:
    """The description Prometheus renders for one alert instance."""
    return spec.description.format(
        namespace=namespace, function=function, value=humanize(spec.value_format, value), **static
    )


def humanize(fmt: ValueFormat, value: float) -> str:
    """Prometheus' ``humanizePercentage``, ``humanizeDuration`` and ``humanize``."""
    if fmt == "percentage":
        return _g(value * 100) + "%"
    if fmt == "duration":
        return _humanize_duration(value)
    return _humanize_number(value)


def _g(value: float) -> str:
    return f"{value:.4g}"


def _humanize_number(value: float) -> str:
    if value == 0 or math.isnan(value) or math.isinf(value):
        return _g(value)
    prefix = ""
    if abs(value) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix, value = p, value / 1000
        return _g(value) + prefix
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return _g(value) + prefix


def _humanize_duration(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return _g(value)
    if value == 0:
        return _g(value) + "s"
    sign = "-" if value < 0 else ""
    v = abs(value)
    if v >= 1:
        whole = int(v)
        seconds, minutes = whole % 60, whole // 60 % 60
        hours, days = whole // 3600 % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g(v)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if v >= 1:
            break
        prefix, v = p, v * 1000
    return f"{sign}{_g(v)}{prefix}s"


def runbook_markdown() -> str:
    """``docs/alerts.md``: every alert's meaning, likely causes and first steps."""
    lines = [
        "# Alerts and runbooks",
        "",
        "<!-- Generated from ofobserve/alerts.py by `./dev examples`; do not edit. -->",
        "",
        "Every function's PrometheusRule carries these alerts. Each has `severity`, `namespace`,",
        "`function` (plus `team`, `alerting.labels` and the extra matchers' labels), and the",
        "annotations `summary`, `description`, `runbook_url` (`alerting.runbookBaseUrl` + the",
        "lower-cased alert name, an anchor of this page) and `dashboard_url`.",
        "",
        "| alert | severity | for | keep_firing_for | summary |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in CATALOGUE:
        severity = "by window" if spec.name in BURN_RATE else spec.severity
        lines.append(
            f"| [{spec.name}](#{spec.name.lower()}) | {severity} | {spec.for_ or '-'} | "
            f"{spec.keep_firing_for or '-'} | {spec.summary} |"
        )
    for spec in CATALOGUE:
        lines += ["", f"## {spec.name}", "", spec.meaning, "", "**Likely causes**", ""]
        lines += [f"- {cause}" for cause in spec.causes]
        lines += ["", "**First steps**", ""]
        lines += [f"{i}. {step}" for i, step in enumerate(spec.first_steps, 1)]
    return "\n".join(lines) + "\n"

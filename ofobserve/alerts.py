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


HOW_RULES_ARE_BUILT = """\
## How the rules are built

Prometheus evaluates the same number of rules for 10 functions as for 1,000, except one
group of constant series per function (`vector(...)`, next to nothing to evaluate).

**Fleet rules.** `rules/fleet/` holds one PrometheusRule per profile family (a profile
variant such as `knative-opencensus` or `dapr-binding-pubsub`, plus the extra matchers'
label names when there are any: `ofobserve-by-cluster`) and `common.yaml` for what they
share. A family's rules record each signal once for all its functions, `sum by (namespace,
function, <extra matcher names>)`:

- `namespace_function:requests:increase5m`, `…:errors:increase5m`,
  `…:requests_observed:increase5m` (the latency histograms' count) and
  `…:requests_slow:increase5m`: 5-minute increases of total and bad events, from the raw
  series, each restricted to the family's functions (`and on (namespace, function)
  ofobserve:function:info{ofobserve_rules="<family>"}`) and labelled
  `ofobserve_rules="<family>"`, so that no family reads another's;
- `namespace_function:request_duration_bucket:rate5m` by `le` (in the histogram's own unit,
  a trailing `.0` removed: Python's client writes `1.0` where Go writes `1`), which the
  quantiles and the latency SLI read;
- from those, under the names and labels of the per-function rules before them:
  `namespace_function:requests:rate<window>`, `…:errors:rate5m`,
  `…:error_ratio:rate5m`, `…:request_duration_seconds:quantile_rate5m{quantile}`,
  `…:requests_in_flight:sum`, and Sloth's `slo:sli_error:ratio_rate<window>` with
  `sloth_id`, `sloth_service`, `sloth_slo`, `sloth_window` (made with `label_join`).

No rule reads a raw series over more than 5 minutes. Every longer window (30m … 30d) sums
the 5-minute increases: `sum_over_time(…:increase5m[<window - 1s>])` (one second short, so
that the range holds exactly `window / interval` samples in Prometheus 2 and 3 alike).

- **Ratios (the SLIs)** are a sum of bad increases over a sum of total increases. Recorded
  every evaluation interval, each 5-minute increase overlaps the next ones, so each event is
  counted `5m / interval` times, in both sums alike: the ratio is exact and weighted by
  traffic, whatever the interval. (Sloth's optimized period SLI, and ofobserve's before this,
  averaged the 5-minute ratios over 30 days, so a quiet night weighed as much as a busy day:
  slok/sloth `internal/prometheus/recording_rules.go`, `optimizedSLIRecordGenerator`.)
- **Rates** (requests per second over a window, read by the low-traffic guard) divide the
  same sum by that factor, counted rather than assumed: `count_over_time(…:increase5m[299s])`
  is `5m / interval`. So nothing depends on the evaluation interval, which ofobserve does not
  set.
- A sum of 5-minute increases sees its window shifted back by half of `5m - interval` (2
  minutes at a 1-minute interval, none at 5 minutes) and blurs its edges over 5 minutes:
  exact wherever the traffic does not change within 5 minutes of the edges, and as a
  window for burn-rate alerts that changes nothing (`tests/test_fleet_rules.py` shows both).

`common.yaml` records the replicas and the KEDA mapping from kube-state-metrics for every
function at once (the function's name from the Deployment's `label_ofobserve_io_function`),
Sloth's `slo:current_burn_rate:ratio`, `slo:period_burn_rate:ratio` and
`slo:period_error_budget_remaining:ratio`, and holds every alert.

**Per-function constant series.** Each function's own PrometheusRule (`rules/<ns>/<name>.yaml`,
in its namespace) holds only constants, which the fleet rules join `on (namespace, function[,
sloth_slo | quantile | reason])`:

- `ofobserve:function:info` = 1, with `ofobserve_rules` (its family) and
  `ofobserve_keda="1"` where KEDA scales it;
- `namespace_function:dashboard:info` = 1, with `dashboard_uid`;
- Sloth's `slo:objective:ratio`, `slo:error_budget:ratio`, `slo:time_period:days` and
  `sloth_slo_info`, with Sloth's labels;
- `ofobserve:slo:burn_threshold:ratio` = `burnRate * budget`, one per window pair, with
  Sloth's labels, `ofobserve_long`, `ofobserve_short` and `ofobserve_severity`;
- `ofobserve:slo:latency_threshold_seconds` = `slo.latency.threshold`, with `le`: its
  bucket, as the bucket rates write it;
- `ofobserve:slo:min_requests` = `slo.minRequests`;
- `ofobserve:alert:threshold` = the alert's threshold, one per alert the function has (and
  per severity, or `reason`), with `ofobserve_alert`, the alert's labels (`severity`,
  `team`, `alerting.labels`), its join label (`sloth_slo`, `quantile`, `reason`) and its
  annotation fields (`ofobserve_runbook_url`, `ofobserve_dashboard_url`,
  `ofobserve_threshold`, ...).

An alert compares the fleet series with the function's threshold and copies its labels:
`… > on (namespace, function) group_left (severity, team, …) ofobserve:alert:threshold{
ofobserve_alert="…"}`; its annotations read the same series (`{{ with printf … | query
}}`). A function has an alert only if it has that alert's threshold series: no cap, no
`FunctionAtMaxReplicas`; a window pair only if it has the pair's burn threshold. So every
per-function setting and override (objectives, windows, thresholds, severities, team,
labels, the runbook and Grafana URLs) changes that function's constants only, never a fleet
rule. The low-traffic guard is `namespace_function:requests:rate<long> * <seconds> >= on
(namespace, function) ofobserve:slo:min_requests`; the latency SLI counts the requests
within the threshold as the bucket rate whose `le` the threshold series names
(`namespace_function:request_duration_bucket:rate5m and on (namespace, function, le)
ofobserve:slo:latency_threshold_seconds`).

**Delivery.** The fleet PrometheusRules (`ofobserve-fleet-<family>`, `ofobserve-fleet-common`)
go to `alerting.fleetRules.namespace` (a fleet setting, read from `defaults:`); unset, they
carry no namespace, like the fleet dashboards, and go where they are applied: with the
controller, its `--fleet-namespace`, labelled as its other fleet objects. Each function's
constants are in its own PrometheusRule, in its namespace, owned by the Function. Prometheus
must select rules in both (kube-prometheus-stack's default `ruleNamespaceSelector: {}`
does). With `alerting.delivery: rule-file` they are plain rule files, in the same places.
The promtool tests of a function (`rules/tests/`) load its family's file, `common.yaml` and
its own."""


def runbook_markdown() -> str:
    """``docs/alerts.md``: every alert's meaning, likely causes and first steps."""
    lines = [
        "# Alerts and runbooks",
        "",
        "<!-- Generated from ofobserve/alerts.py by `./dev examples`; do not edit. -->",
        "",
        "These alerts are fleet rules: each is one rule for every function (see [How the rules",
        "are built](#how-the-rules-are-built)). Each firing alert has `severity`, `namespace`,",
        "`function` (plus `team`, `alerting.labels` and the extra matchers' labels), and the",
        "annotations `summary`, `description`, `runbook_url` (`alerting.runbookBaseUrl` + the",
        "lower-cased alert name, an anchor of this page) and `dashboard_url`, all from the",
        "function's own settings.",
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
    lines += ["", *HOW_RULES_ARE_BUILT.splitlines()]
    for spec in CATALOGUE:
        lines += ["", f"## {spec.name}", "", spec.meaning, "", "**Likely causes**", ""]
        lines += [f"- {cause}" for cause in spec.causes]
        lines += ["", "**First steps**", ""]
        lines += [f"{i}. {step}" for i, step in enumerate(spec.first_steps, 1)]
    return "\n".join(lines) + "\n"

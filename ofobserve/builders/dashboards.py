"""The Grafana dashboard of one function, from its metric profile. Pure, no I/O.

Rows: traffic, errors, latency, saturation, scaling, SLO, resources; links to the
function's logs and traces. A panel the profile cannot fill is left out. Raw series of the
function's own pods carry ``instance=~"$instance"``; recorded series and fleet exporters
(kube-state-metrics, cAdvisor, KEDA) do not (docs/decisions.md, "Dashboards").
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from ofobserve import conventions as c
from ofobserve import slo
from ofobserve.builders.grafana_delivery import as_resource
from ofobserve.builders.rules import (
    RuleContext,
    has_keda,
    hpa_join,
    hpa_series,
    keda_errors_rate,
    keda_join,
    keda_selector,
    max_replicas,
)
from ofobserve.builders.scaling import why_not_wired
from ofobserve.grafana import (
    RATE_INTERVAL,
    DashboardSpec,
    Link,
    Panel,
    Query,
    Row,
    Variable,
    build_dashboard_json,
)
from ofobserve.profiles import Queries, matcher
from ofobserve.settings import Settings
from ofobserve.subject import Subject

INSTANCE = 'instance=~"$instance"'
SEVERITY_COLOUR = {"critical": "red", "warning": "orange", "info": "blue"}
PERCENTILES = (0.5, 0.9, 0.95, 0.99)
#: Why the Knative queue-depth panels can be empty: queue-proxy only has a queue (its
#: breaker) with a concurrency limit (knative/serving ``buildBreaker``; fact sheet section 1).
KNATIVE_QUEUE_NOTE = (
    " Empty unless the revision's containerConcurrency is 1 or more: queue-proxy keeps a "
    "queue, and reports its depth, only under a concurrency limit, and Knative's default "
    "(config-defaults container-concurrency: 0) sets none."
)
CONCURRENCY_TITLE = {
    c.PROFILE_NATIVE: "In-flight requests",
    c.PROFILE_KNATIVE: "Queue depth (queue-proxy)",
    c.PROFILE_KEDA_HTTP: "Interceptor concurrency",
}


@dataclass(frozen=True)
class View:
    """One function's queries, as its dashboard needs them."""

    subject: Subject
    rules: RuleContext
    q: Queries  # raw series of the function's pods, narrowed by $instance

    @classmethod
    def of(cls, subject: Subject) -> View:
        rules = RuleContext.of(subject)
        return cls(subject, rules, rules.queries.narrowed(INSTANCE))

    @property
    def settings(self) -> Settings:
        return self.subject.settings


def traffic(v: View) -> Row:
    by_class = v.q.requests_by_class(RATE_INTERVAL)
    if by_class is not None:
        rate = Panel(
            "Request rate by status class",
            "Requests per second, split by HTTP status class (2xx, 4xx, 5xx).",
            "reqps",
            (Query(by_class, "{{code_class}}"),),
        )
    else:
        rate = Panel(
            "Event rate",
            "Events delivered to the function per second, all and failed.",
            "reqps",
            (
                Query(v.q.request_rate(RATE_INTERVAL), "all"),
                Query(v.q.error_rate(RATE_INTERVAL), "failed"),
            ),
        )
    panels = [rate]
    cold = v.q.cold_starts(RATE_INTERVAL)
    if cold is not None:
        panels.append(
            Panel(
                "Cold starts",
                "First invocations in a new process (pod start or new worker).",
                "short",
                (Query(cold, "cold starts"),),
            )
        )
    return Row("Traffic", tuple(panels))


def errors(v: View) -> Row:
    budget = 1 - v.settings.slo.availability / 100
    alert_ratio = v.settings.alerting.thresholds.error_ratio
    counters = v.q.profile.counters
    by_what = (
        "status code"
        if counters[0].code_label
        else " or ".join(dict.fromkeys(ctr.detail_label for ctr in counters))
    )
    return Row(
        "Errors",
        (
            Panel(
                "Error ratio",
                "Share of failed requests. Lines: the availability SLO's error budget "
                f"({budget:.4g}) and the FunctionHighErrorRate threshold "
                f"({alert_ratio:g}).",
                "percentunit",
                (Query(v.q.error_ratio(RATE_INTERVAL), "error ratio"),),
                thresholds=((budget, "orange"), (alert_ratio, "red")),
                links=_observability_links(v.subject),
            ),
            Panel(
                f"Errors by {by_what}",
                f"Failed requests per second by {by_what}.",
                "reqps",
                (Query(v.q.errors_by_detail(RATE_INTERVAL), "{{detail}}"),),
            ),
        ),
    )


def latency(v: View) -> Row:
    threshold = v.settings.slo.latency.threshold
    quantile = v.settings.slo.latency.quantile
    histogram_unit = "s" if v.q.profile.histograms[0].scale == 1 else "ms"
    ex = v.q.profile.exemplars
    return Row(
        "Latency",
        (
            Panel(
                "Latency percentiles",
                "p50/p90/p95/p99 request duration. Line: the latency SLO threshold "
                f"({threshold:g} s)." + (" Exemplars link to traces." if ex else ""),
                "s",
                tuple(
                    Query(v.q.latency_quantile(p, RATE_INTERVAL), f"p{p * 100:g}", exemplar=ex)
                    for p in PERCENTILES
                ),
                thresholds=((threshold, "red"),),
                links=_observability_links(v.subject),
            ),
            Panel(
                "Latency distribution",
                f"Requests per second by duration bucket (upper bound, in {histogram_unit}).",
                histogram_unit,
                (Query(v.q.latency_buckets(RATE_INTERVAL), "{{le}}", format="heatmap"),),
                kind="heatmap",
            ),
            Panel(
                "Requests slower than the SLO threshold",
                f"Share of requests slower than {threshold:g} s. Line: what the latency SLO "
                f"allows ({1 - quantile:.4g}).",
                "percentunit",
                (Query(v.q.slow_ratio(threshold, RATE_INTERVAL), "slower than threshold"),),
                thresholds=((1 - quantile, "red"),),
                width=24,
            ),
        ),
    )


def saturation(v: View) -> Row | None:
    concurrency = v.q.concurrency()
    if concurrency is None:
        return None
    target = v.settings.scaling.target_concurrency
    utilization = v.settings.scaling.target_utilization
    available = f"{c.RECORD_REPLICAS_AVAILABLE}{v.rules.sel()}"
    note = KNATIVE_QUEUE_NOTE if v.subject.profile == c.PROFILE_KNATIVE else ""
    return Row(
        "Concurrency / saturation",
        (
            Panel(
                CONCURRENCY_TITLE[v.subject.profile],
                "Requests being served or waiting, summed over the function's pods." + note,
                "short",
                (Query(concurrency, "concurrent requests"),),
            ),
            Panel(
                "Utilisation of the concurrency target",
                f"Concurrency per available replica over the target ({target:g}). Line: the "
                f"target utilisation ({utilization:g})." + note,
                "percentunit",
                (Query(f"{concurrency} / (sum({available}) * {target:g})", "utilisation"),),
                thresholds=((utilization, "orange"),),
            ),
        ),
    )


def scaling(v: View) -> Row:
    """What scales the function, with only the panels that can have data for it: the HPA
    and KEDA where a ScaledObject exists (async functions, the KEDA HTTP add-on), the
    ofobserve scaler where the wiring points KEDA at it; a Knative function has neither."""
    sel = v.rules.sel()
    keda = keda_selector(v.subject) if has_keda(v.subject) else ""
    ours = why_not_wired(v.subject) is None
    to_hpa = hpa_join(v.subject)

    def hpa(metric: str) -> str:
        return f"{hpa_series(v.subject, metric)}{to_hpa}"

    replicas = [Query(f"{c.RECORD_REPLICAS_AVAILABLE}{sel}", "available")]
    if ours:
        replicas.insert(
            0, Query(f"max({c.SCALER_DESIRED_REPLICAS}{sel})", "desired (ofobserve scaler)")
        )
    if keda:
        replicas += [
            Query(f"sum({hpa(c.KSM_HPA_DESIRED)})", "desired (HPA)"),
            Query(f"max({hpa(c.KSM_HPA_MIN)})", "min"),
            Query(f"max({hpa(c.KSM_HPA_MAX)})", "max"),
        ]
    cap = max_replicas(v.subject)
    panels = [
        Panel(
            "Replicas",
            "Replicas available"
            + (", what the ofobserve scaler wants" if ours else "")
            + (", and the HPA's desired, min and max" if keda else "")
            + "."
            + (f" The function's cap is {cap}." if cap is not None else ""),
            "short",
            tuple(replicas),
        )
    ]
    if ours:
        panels.append(
            Panel(
                "ofobserve scaler: metric value and target",
                "The value the ofobserve scaler reports to KEDA per metric, and its target; "
                "KEDA's HPA wants ceil(value / target) replicas.",
                "short",
                (
                    Query(f"max by (metric) ({c.SCALER_METRIC_VALUE}{sel})", "{{metric}} value"),
                    Query(f"max by (metric) ({c.SCALER_METRIC_TARGET}{sel})", "{{metric}} target"),
                ),
            )
        )
    if keda:
        join = keda_join(v.subject)
        panels += [
            Panel(
                "KEDA scaler value",
                "Each KEDA trigger's metric value (queue length, lag, concurrency, ...).",
                "short",
                (
                    Query(
                        f"sum by ({c.KEDA_SCALED_OBJECT_LABEL}, metric) "
                        f"({c.KEDA_SCALER_VALUE}{keda}{join})",
                        "{{scaledObject}} {{metric}}",
                    ),
                ),
            ),
            Panel(
                "KEDA scaler active",
                "1 when a trigger asks for at least one replica (activation).",
                "bool_yes_no",
                (
                    Query(
                        f"max by ({c.KEDA_SCALED_OBJECT_LABEL}) "
                        f"({c.KEDA_SCALER_ACTIVE}{keda}{join})",
                        "{{scaledObject}}",
                    ),
                ),
                width=8,
            ),
        ]
    errors = []
    if keda:
        errors.append(
            Query(
                f"sum by ({c.KEDA_SCALED_OBJECT_LABEL}) "
                f"({keda_errors_rate(v.subject, RATE_INTERVAL)}{keda_join(v.subject)})",
                "KEDA {{scaledObject}}",
            )
        )
    if ours:
        errors.append(
            Query(
                f"sum by (source) (rate({c.SCALER_SOURCE_ERRORS_TOTAL}{sel}[{RATE_INTERVAL}]))",
                "ofobserve {{source}}",
            )
        )
    if errors:
        panels.append(
            Panel(
                "Scaler errors",
                "Errors per second of "
                + " and ".join(
                    (["KEDA's scalers"] if keda else [])
                    + (["the ofobserve scaler's source"] if ours else [])
                )
                + ".",
                "ops",
                tuple(errors),
                width=8,
            )
        )
    if ours:
        panels.append(
            Panel(
                "Scaler panic mode",
                "1 while the ofobserve scaler is in panic mode (a burst above twice the "
                "target in the short window).",
                "bool_on_off",
                (Query(f"max({c.SCALER_PANIC_MODE}{sel})", "panic"),),
                width=8,
            )
        )
    return Row("Scaling", tuple(panels))


def slo_row(v: View) -> Row:
    objectives = slo.objectives(v.settings)
    rates = sorted({(w.burn_rate, w.severity) for w in slo.burn_windows(v.settings)})
    remaining = tuple(
        Query(f"{c.SLO_PERIOD_BUDGET_REMAINING}{v.rules.slo_sel(o)}", o.name) for o in objectives
    )
    burn = tuple(
        Query(f"{c.SLO_CURRENT_BURN_RATE}{v.rules.slo_sel(o)}", o.name) for o in objectives
    )
    return Row(
        "SLO",
        (
            Panel(
                "Error budget remaining",
                f"Share of the {v.settings.slo.window} error budget left, per SLO "
                f"({', '.join(f'{o.name} {o.percent}%' for o in objectives)}).",
                "percentunit",
                remaining,
                kind="stat",
                thresholds=((0.0, "orange"), (0.25, "green")),
                base_colour="red",
                width=8,
            ),
            Panel(
                "Burn rate",
                "How fast each SLO spends its budget (1 = exactly the budget over the window). "
                "Lines: the burn-rate alert thresholds.",
                "short",
                burn,
                thresholds=tuple((rate, SEVERITY_COLOUR[sev]) for rate, sev in rates),
                width=16,
            ),
        ),
    )


def resources(v: View) -> Row:
    f = v.subject.function
    extra = v.settings.monitoring.extra_matchers
    base = [matcher(c.NAMESPACE_LABEL, f.namespace)] + [matcher(k, x) for k, x in extra.items()]
    pods = "{" + ",".join([*base, matcher(c.KSM_FUNCTION_LABEL, f.name)]) + "}"
    owned = (
        f" * on ({c.NAMESPACE_LABEL}, pod) group_left () "
        f"max by ({c.NAMESPACE_LABEL}, pod) ({c.KSM_POD_LABELS}{pods})"
    )
    container = [*base, matcher("container", c.FUNCTION_CONTAINER)]

    def sel(*more: str) -> str:
        return "{" + ",".join([*container, *more]) + "}"

    def bounds(resource: str) -> tuple[Query, Query]:
        # one series per pod however many kube-state-metrics export it (HA, rollouts)
        r = matcher("resource", resource)

        def per_pod(metric: str) -> str:
            return f"sum(max by ({c.NAMESPACE_LABEL}, pod) ({metric}{sel(r)}){owned})"

        return (
            Query(per_pod(c.KSM_CONTAINER_REQUESTS), "requests"),
            Query(per_pod(c.KSM_CONTAINER_LIMITS), "limits"),
        )

    return Row(
        "Resources",
        (
            Panel(
                "CPU",
                "CPU cores used by the function containers, against their requests and limits "
                "(summed over pods).",
                "short",
                (
                    Query(
                        f"sum(rate({c.CADVISOR_CPU_SECONDS_TOTAL}{sel()}[{RATE_INTERVAL}]){owned})",
                        "used",
                    ),
                    *bounds("cpu"),
                ),
            ),
            Panel(
                "Memory",
                "Working-set memory of the function containers, against their requests and "
                "limits (summed over pods).",
                "bytes",
                (
                    Query(f"sum({c.CADVISOR_MEMORY_WORKING_SET}{sel()}{owned})", "working set"),
                    *bounds("memory"),
                ),
            ),
        ),
    )


def _explore(datasource: str, query: dict[str, str]) -> str:
    state = {
        "datasource": datasource,
        "queries": [{"refId": "A", "datasource": {"uid": datasource}, **query}],
        "range": {"from": "now-1h", "to": "now"},
    }
    encoded = urllib.parse.quote(json.dumps(state, sort_keys=True, separators=(",", ":")))
    return f"/explore?left={encoded}"


def _observability_links(subject: Subject) -> tuple[Link, ...]:
    """Explore links to the function's logs and traces (docs/dashboards.md)."""
    f, grafana = subject.function, subject.settings.grafana
    links = []
    if grafana.logs.kind == "loki":
        expr = "{" + f"{matcher('namespace', f.namespace)}, {matcher('function', f.name)}" + "}"
        links.append(Link("Logs", _explore(grafana.logs.datasource, {"expr": expr})))
    elif grafana.logs.kind == "elasticsearch":
        lucene = (
            f'kubernetes.namespace_name:"{f.namespace}" AND '
            f'kubernetes.labels.ofobserve_io/function:"{f.name}"'
        )
        links.append(Link("Logs", _explore(grafana.logs.datasource, {"query": lucene})))
    if grafana.traces.kind == "jaeger":
        search = {"queryType": "search", "service": f.name}
        links.append(Link("Traces", _explore(grafana.traces.datasource, search)))
    elif grafana.traces.kind == "tempo":
        traceql = (
            f'{{resource.service.name="{f.name}" && resource.k8s.namespace.name="{f.namespace}"}}'
        )
        query = {"queryType": "traceql", "query": traceql}
        links.append(Link("Traces", _explore(grafana.traces.datasource, query)))
    return tuple(links)


def instance_variable(v: View) -> Variable:
    """``$instance``: the function's scrape targets. The keda-http profile's target is the
    shared interceptor, whose ``up`` carries the interceptor's namespace and no
    ``function`` (only its series get both, by metric relabelling: docs/metrics.md), so
    there the values are the interceptor pods that served the function's route."""
    q = v.rules.queries
    if v.subject.profile == c.PROFILE_KEDA_HTTP:
        counter = q.profile.counters[0].metric
        return Variable(
            "instance", "Interceptor pod", f"label_values({counter}{{{q.selector}}}, instance)"
        )
    return Variable("instance", "Pod endpoint", f"label_values({q.up()}, instance)")


def function_dashboard(subject: Subject) -> DashboardSpec:
    """The function's dashboard as specs (what the docs list and the JSON is built from)."""
    v = View.of(subject)
    f = subject.function
    rows = [
        traffic(v),
        errors(v),
        latency(v),
        saturation(v),
        scaling(v),
        slo_row(v),
        resources(v),
    ]
    return DashboardSpec(
        uid=c.dashboard_uid(f.namespace, f.name),
        title=f"Function {f.namespace}/{f.name}",
        description=(
            f"OpenFunction function {f.namespace}/{f.name}, metric profile {subject.profile}. "
            "Generated by ofobserve render: edit the settings, not the dashboard."
        ),
        tags=(c.DASHBOARD_TAG, c.FUNCTION_DASHBOARD_TAG, subject.profile, f.namespace),
        rows=tuple(r for r in rows if r is not None),
        datasource=subject.settings.grafana.datasource,
        variables=(instance_variable(v),),
        links=(
            *_observability_links(subject),
            Link("Fleet overview", f"/d/{c.OVERVIEW_DASHBOARD_UID}"),
        ),
    )


def build_dashboard_file(subject: Subject) -> dict[str, Any] | None:
    """The dashboard JSON, when ``grafana.delivery`` is ``json``."""
    if subject.settings.grafana.delivery != "json":
        return None
    return build_dashboard_json(function_dashboard(subject))


def build_dashboard_resource(subject: Subject) -> dict[str, Any] | None:
    """The ConfigMap or GrafanaDashboard, for the other delivery forms."""
    if subject.settings.grafana.delivery == "json":
        return None
    f = subject.function
    dashboard = build_dashboard_json(function_dashboard(subject))
    return as_resource(dashboard, subject.settings, f"{f.namespace}.{f.name}", f.namespace)

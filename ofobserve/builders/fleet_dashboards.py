"""Dashboards that span every function: the fleet overview and the ofobserve scaler.

Pure, no I/O. The overview reads only recorded series (the rules group), so it costs
Prometheus little however many functions there are; the scaler dashboard reads the
scaler's own metrics (``ofobserve.conventions``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ofobserve import conventions as c
from ofobserve.builders.grafana_delivery import as_resource
from ofobserve.grafana import (
    RATE_INTERVAL,
    Column,
    DashboardSpec,
    Link,
    Panel,
    Query,
    Row,
    Variable,
    build_dashboard_json,
)
from ofobserve.settings import Settings
from ofobserve.subject import Subject

FLEET = '{namespace=~"$namespace",function=~"$function"}'
BY_FUNCTION = f"by ({c.NAMESPACE_LABEL}, {c.FUNCTION_LABEL})"
LEGEND = "{{namespace}}/{{function}}"
SCALER_SERVICE = 'grpc_service="externalscaler.ExternalScaler"'
SCALER_FUNCTIONS = '{namespace=~"$namespace",function=~"$function",instance=~"$instance"}'
SCALER_RPC = "{" + SCALER_SERVICE + ',instance=~"$instance"}'


def _fleet_variables(source: str) -> tuple[Variable, ...]:
    return (
        Variable("namespace", "Namespace", f"label_values({source}, namespace)"),
        Variable(
            "function",
            "Function",
            f'label_values({source}{{namespace=~"$namespace"}}, function)',
        ),
    )


FUNCTIONS_TABLE = "Functions"
#: The overview table's queries: one column each, then the dashboard-uid info query, whose
#: value (always 1) is no column: only its ``dashboard_uid`` label is wanted (for the link).
TABLE_COLUMNS = (
    Column("Requests/s", "reqps"),
    Column("Errors", "percentunit"),
    Column("p95", "s"),
    Column("Replicas", "short"),
    Column("SLO budget left", "percentunit"),
)
#: Grafana's name for the info query's value field (refId F) in the merged table.
INFO_VALUE_FIELD = f"Value #{chr(ord('A') + len(TABLE_COLUMNS))}"


def overview(settings: Settings) -> DashboardSpec:
    p95 = c.record_latency_quantile(c.OPERATIONAL_WINDOW)
    requests = f"{c.record_requests_rate(c.OPERATIONAL_WINDOW)}{FLEET}"
    error_ratio = f"{c.record_error_ratio(c.OPERATIONAL_WINDOW)}{FLEET}"
    latency = f'{p95}{{namespace=~"$namespace",function=~"$function",quantile="0.95"}}'
    available = f"{c.RECORD_REPLICAS_AVAILABLE}{FLEET}"
    budget = f"{c.SLO_PERIOD_BUDGET_REMAINING}{FLEET}"
    info = f"{c.RECORD_DASHBOARD_INFO}{FLEET}"
    table = Panel(
        FUNCTIONS_TABLE,
        "Every function with recording rules: traffic, errors, p95 latency, replicas and "
        "the worst SLO's remaining error budget, over the last 5 minutes. Click a function "
        "to open its dashboard.",
        "short",
        (
            Query(f"sum {BY_FUNCTION} ({requests})", instant=True, format="table"),
            Query(f"max {BY_FUNCTION} ({error_ratio})", instant=True, format="table"),
            Query(f"max {BY_FUNCTION} ({latency})", instant=True, format="table"),
            Query(f"sum {BY_FUNCTION} ({available})", instant=True, format="table"),
            Query(f"min {BY_FUNCTION} ({budget})", instant=True, format="table"),
            Query(
                f"max by ({c.NAMESPACE_LABEL}, {c.FUNCTION_LABEL}, {c.DASHBOARD_UID_LABEL}) "
                f"({info})",
                instant=True,
                format="table",
            ),
        ),
        kind="table",
        width=24,
        columns=TABLE_COLUMNS,
        link_field=c.DASHBOARD_UID_LABEL,
    )
    trends = Row(
        "Trends",
        (
            Panel(
                "Requests by function",
                "Requests per second.",
                "reqps",
                (Query(f"sum {BY_FUNCTION} ({requests})", LEGEND),),
            ),
            Panel(
                "Error ratio by function",
                "Share of failed requests.",
                "percentunit",
                (Query(f"max {BY_FUNCTION} ({error_ratio})", LEGEND),),
            ),
            Panel(
                "p95 latency by function",
                "95th percentile request duration.",
                "s",
                (Query(f"max {BY_FUNCTION} ({latency})", LEGEND),),
            ),
            Panel(
                "Available replicas by function",
                "Ready replicas (kube-state-metrics).",
                "short",
                (Query(f"sum {BY_FUNCTION} ({available})", LEGEND),),
            ),
            Panel(
                "Burn rate by SLO",
                "Current burn rate of every SLO (1 = spending exactly the budget).",
                "short",
                (
                    Query(
                        f"max by ({c.NAMESPACE_LABEL}, {c.FUNCTION_LABEL}, {c.SLOTH_SLO}) "
                        f"({c.SLO_CURRENT_BURN_RATE}{FLEET})",
                        LEGEND + " {{sloth_slo}}",
                    ),
                ),
                width=24,
            ),
        ),
    )
    return DashboardSpec(
        uid=c.OVERVIEW_DASHBOARD_UID,
        title="OpenFunction fleet overview",
        description="Every OpenFunction function ofobserve renders rules for. Generated by "
        "ofobserve render.",
        tags=(c.DASHBOARD_TAG,),
        rows=(Row("Functions", (table,)), trends),
        datasource=settings.grafana.datasource,
        variables=_fleet_variables(c.RECORD_DASHBOARD_INFO),
        links=(Link("ofobserve scaler", f"/d/{c.SCALER_DASHBOARD_UID}"),),
        dashboard_links_tag=c.FUNCTION_DASHBOARD_TAG,
        time_from="now-3h",
    )


def scaler(settings: Settings) -> DashboardSpec:
    fn = SCALER_FUNCTIONS
    by_fn_metric = f"by ({c.NAMESPACE_LABEL}, {c.FUNCTION_LABEL}, metric)"
    stale = settings.alerting.thresholds.scaler_stale_after
    decisions = Row(
        "Decisions",
        (
            Panel(
                "Desired replicas",
                "Replicas the scaler asks KEDA for, per function.",
                "short",
                (Query(f"max {BY_FUNCTION} ({c.SCALER_DESIRED_REPLICAS}{fn})", LEGEND),),
            ),
            Panel(
                "Metric value over target",
                "Value reported to KEDA divided by its target: the HPA's desired/current "
                "replica ratio.",
                "percentunit",
                (
                    Query(
                        f"max {by_fn_metric} ({c.SCALER_METRIC_VALUE}{fn}) / "
                        f"max {by_fn_metric} ({c.SCALER_METRIC_TARGET}{fn})",
                        LEGEND + " {{metric}}",
                    ),
                ),
            ),
            Panel(
                "Active",
                "1 when the scaler tells KEDA a function should run (activation).",
                "bool_yes_no",
                (Query(f"max {BY_FUNCTION} ({c.SCALER_ACTIVE}{fn})", LEGEND),),
            ),
            Panel(
                "Panic mode",
                "1 while a function's scaling is in panic mode.",
                "bool_on_off",
                (Query(f"max {BY_FUNCTION} ({c.SCALER_PANIC_MODE}{fn})", LEGEND),),
            ),
        ),
    )
    inputs = Row(
        "Inputs",
        (
            Panel(
                "Observed concurrency",
                "Concurrent requests the scaler read, per function.",
                "short",
                (Query(f"max {BY_FUNCTION} ({c.SCALER_OBSERVED_CONCURRENCY}{fn})", LEGEND),),
            ),
            Panel(
                "Observed latency",
                "The latency quantile the scaler read, per function.",
                "s",
                (Query(f"max {BY_FUNCTION} ({c.SCALER_OBSERVED_LATENCY_SECONDS}{fn})", LEGEND),),
            ),
        ),
    )
    sources = Row(
        "Sources",
        (
            Panel(
                "Sample age",
                f"Age of the newest sample per function. Line: FunctionScalerErrors fires "
                f"above {stale:g} s.",
                "s",
                (Query(f"max {BY_FUNCTION} ({c.SCALER_SAMPLE_AGE_SECONDS}{fn})", LEGEND),),
                thresholds=((stale, "red"),),
                width=8,
            ),
            Panel(
                "Source errors",
                "Failed reads per second, by source and reason.",
                "ops",
                (
                    Query(
                        f"sum by (source, reason) "
                        f"(rate({c.SCALER_SOURCE_ERRORS_TOTAL}{fn}[{RATE_INTERVAL}]))",
                        "{{source}} {{reason}}",
                    ),
                ),
                width=8,
            ),
            Panel(
                "Source read p99",
                "99th percentile duration of one read from Prometheus or the pods.",
                "s",
                (
                    Query(
                        "histogram_quantile(0.99, sum by (le, source) "
                        f"(rate({c.SCALER_SOURCE_DURATION_SECONDS}_bucket"
                        f'{{instance=~"$instance"}}[{RATE_INTERVAL}])))',
                        "{{source}}",
                    ),
                ),
                width=8,
            ),
        ),
    )
    rpc = Row(
        "gRPC",
        (
            Panel(
                "RPC rate",
                "ExternalScaler calls per second by method and status code.",
                "reqps",
                (
                    Query(
                        "sum by (grpc_method, grpc_code) "
                        f"(rate({c.GRPC_SERVER_HANDLED_TOTAL}{SCALER_RPC}[{RATE_INTERVAL}]))",
                        "{{grpc_method}} {{grpc_code}}",
                    ),
                ),
            ),
            Panel(
                "RPC latency p99",
                "99th percentile handling time by method. StreamIsActive is a long-lived "
                "stream and is left out.",
                "s",
                (
                    Query(
                        "histogram_quantile(0.99, sum by (le, grpc_method) "
                        f"(rate({c.GRPC_SERVER_HANDLING_SECONDS}_bucket{{{SCALER_SERVICE},"
                        f'grpc_type="unary",instance=~"$instance"}}[{RATE_INTERVAL}])))',
                        "{{grpc_method}}",
                    ),
                ),
            ),
        ),
    )
    lag = c.SCALER_EVENT_LOOP_LAG_ALERT
    process = Row(
        "Process",
        (
            Panel(
                "Functions forgotten",
                "Functions dropped per second, with their policy state, after --forget-after "
                "without a question from KEDA: ScaledObjects that went or, on a stable fleet, "
                "KEDA asking less often than --forget-after (plain external trigger).",
                "ops",
                (
                    Query(
                        "sum by (instance) "
                        f"(rate({c.SCALER_FUNCTIONS_FORGOTTEN_TOTAL}"
                        f'{{instance=~"$instance"}}[{RATE_INTERVAL}]))',
                        "{{instance}}",
                    ),
                ),
            ),
            Panel(
                "Event-loop lag p99",
                "99th percentile of how late the serving event loop wakes from a 0.1 s sleep, "
                "per scaler pod: how long an RPC waits behind a refresh tick. Line: "
                f"OfobserveScalerEventLoopLag fires above {lag:g} s (the chart's default).",
                "s",
                (
                    Query(
                        "histogram_quantile(0.99, sum by (le, instance) "
                        f"(rate({c.SCALER_EVENT_LOOP_LAG_SECONDS}_bucket"
                        f'{{instance=~"$instance"}}[{RATE_INTERVAL}])))',
                        "{{instance}}",
                    ),
                ),
                thresholds=((lag, "red"),),
            ),
        ),
    )
    return DashboardSpec(
        uid=c.SCALER_DASHBOARD_UID,
        title="ofobserve scaler",
        description="The ofobserve KEDA external scaler: what it reads, what it decides, how "
        "fresh its sources are, how its gRPC server behaves and how its event loop keeps up. "
        "Generated by ofobserve render.",
        tags=(c.DASHBOARD_TAG,),
        rows=(decisions, inputs, sources, rpc, process),
        datasource=settings.grafana.datasource,
        variables=(
            *_fleet_variables(c.SCALER_DESIRED_REPLICAS),
            Variable(
                "instance",
                "Scaler pod",
                f"label_values({c.GRPC_SERVER_HANDLED_TOTAL}{{{SCALER_SERVICE}}}, instance)",
            ),
        ),
        links=(Link("Fleet overview", f"/d/{c.OVERVIEW_DASHBOARD_UID}"),),
        dashboard_links_tag=c.FUNCTION_DASHBOARD_TAG,
    )


def overview_json(settings: Settings) -> dict[str, Any]:
    """The overview's JSON: the table's info-query value is excluded (an ``organize``
    exclusion; the ``dashboard_uid`` label field stays, hidden, for the link), so no
    stray ``Value #F`` column shows."""
    dashboard = build_dashboard_json(overview(settings))
    for panel in dashboard["panels"]:
        if panel.get("type") == "table" and panel.get("title") == FUNCTIONS_TABLE:
            for transformation in panel["transformations"]:
                if transformation["id"] == "organize":
                    transformation["options"]["excludeByName"][INFO_VALUE_FIELD] = True
    return dashboard


def scaler_json(settings: Settings) -> dict[str, Any]:
    return build_dashboard_json(scaler(settings))


Fleet = Callable[[Sequence[Subject], Settings], Any]


def _file(dashboard: Callable[[Settings], dict[str, Any]]) -> Fleet:
    def build(subjects: Sequence[Subject], settings: Settings) -> dict[str, Any] | None:
        if settings.grafana.delivery != "json":
            return None
        return dashboard(settings)

    return build


def _resource(dashboard: Callable[[Settings], dict[str, Any]], key: str) -> Fleet:
    def build(subjects: Sequence[Subject], settings: Settings) -> dict[str, Any] | None:
        if settings.grafana.delivery == "json":
            return None
        return as_resource(dashboard(settings), settings, key, None)

    return build


build_overview_file = _file(overview_json)
build_overview_resource = _resource(overview_json, "overview")
build_scaler_file = _file(scaler_json)
build_scaler_resource = _resource(scaler_json, "scaler")

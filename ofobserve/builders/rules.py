"""The PrometheusRule of a function: recording rules, SLO series and alerts. Pure, no I/O.

Recording rules follow ``level:metric:operations`` and SLO series Sloth's names and
labels (``ofobserve.conventions``), so Sloth's dashboards read them. Every recorded series
carries ``namespace``, ``function`` and the extra matchers' labels as static rule labels:
queries sum away their labels, and the rule puts the identity back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ofobserve import alerts as a
from ofobserve import conventions as c
from ofobserve import slo
from ofobserve.builders.common import metadata, object_name
from ofobserve.builders.scaling import own_triggers, why_not_wired
from ofobserve.model import Runtime
from ofobserve.profiles import Queries, matcher
from ofobserve.settings import BurnWindow, window_seconds
from ofobserve.subject import Subject

API_VERSION = "monitoring.coreos.com/v1"
Rule = dict[str, Any]


@dataclass(frozen=True)
class RuleContext:
    """Everything the rules of one function are built from."""

    subject: Subject
    queries: Queries

    @classmethod
    def of(cls, subject: Subject) -> RuleContext:
        f = subject.function
        extra = subject.settings.monitoring.extra_matchers
        return cls(
            subject, Queries.for_function(subject.metric_profile, f.namespace, f.name, extra)
        )

    @property
    def identity(self) -> dict[str, str]:
        """Labels every recorded series and alert of the function carries."""
        f = self.subject.function
        return {
            c.NAMESPACE_LABEL: f.namespace,
            c.FUNCTION_LABEL: f.name,
            **self.subject.settings.monitoring.extra_matchers,
        }

    def sel(self, **more: str) -> str:
        """``{namespace=…,function=…,extra…,more…}`` for recorded series."""
        parts = [self.queries.selector] + [matcher(k, v) for k, v in more.items()]
        return "{" + ",".join(parts) + "}"

    def ksm_sel(self, *raw: str, **more: str) -> str:
        """Selector for kube-state-metrics series (``namespace`` is the object's), with
        ``more`` equalities and ``raw`` matchers."""
        f = self.subject.function
        labels = {
            c.NAMESPACE_LABEL: f.namespace,
            **self.subject.settings.monitoring.extra_matchers,
            **more,
        }
        return "{" + ",".join([*(matcher(k, v) for k, v in labels.items()), *raw]) + "}"

    def sloth_labels(self, objective: slo.Objective) -> dict[str, str]:
        f = self.subject.function
        service = c.sloth_service(f.namespace, f.name)
        return {
            c.SLOTH_ID: f"{service}-{objective.name}",
            c.SLOTH_SERVICE: service,
            c.SLOTH_SLO: objective.name,
        }

    def slo_sel(self, objective: slo.Objective) -> str:
        return self.sel(**{c.SLOTH_SLO: objective.name})


def quantiles(subject: Subject) -> tuple[float, ...]:
    """Quantiles recorded for a function: the standard ones plus its SLO and alert ones."""
    s = subject.settings
    wanted = {*c.RECORDED_QUANTILES, s.slo.latency.quantile, s.alerting.thresholds.latency_quantile}
    return tuple(sorted(wanted))


def max_replicas(subject: Subject) -> int | None:
    """The function's replica cap (the setting, else the Function's scale options), or
    ``None`` when it has none or cannot scale: at most one replica, or max = min, is a
    size by design, not a cap being hit."""
    scaling, scale = subject.settings.scaling, subject.function.scale
    cap = scaling.max_replicas or scale.max_replicas
    floor = scaling.min_replicas if scaling.min_replicas is not None else scale.min_replicas
    if cap is None or cap <= max(1, floor or 0):
        return None
    return cap


# --- recording rules -----------------------------------------------------------------------------


def _record(name: str, expr: str, labels: dict[str, str]) -> Rule:
    return {"record": name, "expr": expr, "labels": dict(labels)}


def build_recordings(ctx: RuleContext) -> list[Rule]:
    q, ident = ctx.queries, ctx.identity
    op = c.OPERATIONAL_WINDOW
    rules = [
        _record(c.record_requests_rate(w), q.request_rate(w), ident)
        for w in _windows(slo.sli_windows(ctx.subject.settings), op)
    ]
    rules.append(_record(c.record_errors_rate(op), q.error_rate(op), ident))
    rules.append(_record(c.record_error_ratio(op), q.error_ratio(op), ident))
    for quantile in quantiles(ctx.subject):
        rules.append(
            _record(
                c.record_latency_quantile(op),
                q.latency_quantile(quantile, op),
                {**ident, c.QUANTILE_LABEL: slo.plain(quantile)},
            )
        )
    concurrency = q.concurrency()
    if concurrency is not None:
        rules.append(_record(c.RECORD_IN_FLIGHT, concurrency, ident))
    f = ctx.subject.function
    uid = {c.DASHBOARD_UID_LABEL: c.dashboard_uid(f.namespace, f.name)}
    rules.append(_record(c.RECORD_DASHBOARD_INFO, "vector(1)", {**ident, **uid}))
    owned = f" * on ({DEPLOYMENT_KEY}) {_function_deployments(ctx)}"
    for name, metric in (
        (c.RECORD_REPLICAS_DESIRED, c.KSM_DEPLOYMENT_SPEC_REPLICAS),
        (c.RECORD_REPLICAS_AVAILABLE, c.KSM_DEPLOYMENT_AVAILABLE),
        (c.RECORD_REPLICAS_UNAVAILABLE, c.KSM_DEPLOYMENT_UNAVAILABLE),
    ):
        replicas = f"max by ({DEPLOYMENT_KEY}) ({metric}{ctx.ksm_sel()})"
        rules.append(_record(name, f"sum({replicas}{owned})", ident))
    if has_keda(ctx.subject):
        rules.append(_record(c.RECORD_KEDA_SCALER_INFO, _keda_scaler_info(ctx), ident))
    return rules


#: One kube-state-metrics Deployment series per object: every KSM series is reduced to these
#: labels before a join, because two kube-state-metrics instances (HA, or a rollout) export
#: each object twice, with different ``instance``/``pod`` labels, and a join of unreduced
#: sides fails with "many-to-many matching not allowed".
DEPLOYMENT_KEY = f"{c.NAMESPACE_LABEL}, deployment"
HPA_KEY = f"{c.NAMESPACE_LABEL}, {c.KSM_HPA_LABEL}"


def _function_deployments(ctx: RuleContext) -> str:
    """kube-state-metrics' ``kube_deployment_labels`` of the function's own Deployments, one
    series per Deployment however many kube-state-metrics export it: labelled by the
    Function patch, and not the dapr-proxy Deployment, which carries the same label
    (OpenFunction copies ``spec.serving.labels`` onto it) and is told apart by its name."""
    f = ctx.subject.function
    own = matcher("deployment", c.DAPR_PROXY_DEPLOYMENT_REGEX, "!~")
    labels = f"{c.KSM_DEPLOYMENT_LABELS}{ctx.ksm_sel(own, **{c.KSM_FUNCTION_LABEL: f.name})}"
    return f"max by ({DEPLOYMENT_KEY}) ({labels})"


def has_keda(subject: Subject) -> bool:
    """True when a KEDA ScaledObject (and so an HPA) scales the function: the HTTP add-on's,
    OpenFunction's for an async function with triggers, or one the scaling wiring adds."""
    f = subject.function
    if f.runtime is Runtime.KEDA_HTTP:
        # OpenFunction creates the HTTPScaledObject only with spec.serving.scaleOptions.keda
        # (OpenFunction/OpenFunction pkg/core/serving/kedahttp/servingrun.go createScaler).
        # The model keeps no trace of that field; a Serving read from the cluster without an
        # HTTPScaledObject in its status shows it was absent. In file mode it is assumed
        # present, and render warns where it is not (ofobserve.manifest_lint).
        return not (f.refs.serving and not f.refs.http_scaled_object)
    return f.runtime is Runtime.ASYNC and bool(own_triggers(f) or why_not_wired(subject) is None)


def _keda_scaler_info(ctx: RuleContext) -> str:
    """The HPAs whose target is one of the function's Deployments (kube-state-metrics'
    ``kube_horizontalpodautoscaler_info``, kubernetes/kube-state-metrics
    ``internal/store/horizontalpodautoscaler.go``), with the ScaledObject's name from KEDA's
    HPA name and ``exported_namespace`` for KEDA's own series. No generated name is needed:
    it works the same in file mode and with ``--from-cluster``."""
    hpa = (
        f"max by ({HPA_KEY}, scaletargetref_name) "
        f"({c.KSM_HPA_INFO}{ctx.ksm_sel(scaletargetref_kind='Deployment')})"
    )
    by_deployment = (
        f'label_replace({hpa}, "deployment", "$1", "scaletargetref_name", "(.+)")\n'
        f"* on ({DEPLOYMENT_KEY}) group_left ()\n"
        f"{_function_deployments(ctx)}"
    )
    named = (
        f'label_replace(label_replace({by_deployment}, "{c.KEDA_SCALED_OBJECT_LABEL}", "$1", '
        f'"{c.KSM_HPA_LABEL}", "keda-hpa-(.+)"), "{c.KEDA_NAMESPACE_LABEL}", "$1", '
        f'"{c.NAMESPACE_LABEL}", "(.+)")'
    )
    keep = f"{c.KSM_HPA_LABEL}, {c.KEDA_SCALED_OBJECT_LABEL}, {c.KEDA_NAMESPACE_LABEL}"
    return f"max by ({keep}) (\n{named}\n)"


def _windows(windows: tuple[str, ...], *more: str) -> tuple[str, ...]:
    return tuple(sorted(set(windows) | set(more), key=window_seconds))


def build_slo_recordings(ctx: RuleContext, objective: slo.Objective) -> list[Rule]:
    """Sloth's SLI and metadata series for one SLO."""
    s = ctx.subject.settings
    labels = {**ctx.identity, **ctx.sloth_labels(objective)}
    rules = []
    for w in slo.sli_windows(s):
        if objective.name == c.SLO_AVAILABILITY:
            expr = ctx.queries.error_ratio(w)
        else:
            expr = ctx.queries.slow_ratio(s.slo.latency.threshold, w)
        rules.append(_record(c.slo_sli_error(w), expr, {**labels, c.SLOTH_WINDOW: w}))
    period = s.slo.window
    five = f"{c.slo_sli_error(c.SLO_CURRENT_WINDOW)}{ctx.slo_sel(objective)}"
    rules.append(
        _record(
            c.slo_sli_error(period),
            f"sum_over_time({five}[{period}])\n/ ignoring ({c.SLOTH_WINDOW})\n"
            f"count_over_time({five}[{period}])",
            {**labels, c.SLOTH_WINDOW: period},
        )
    )
    on = f"on ({c.SLOTH_ID}, {c.SLOTH_SLO}, {c.SLOTH_SERVICE}) group_left"
    budget = f"{c.SLO_ERROR_BUDGET}{ctx.slo_sel(objective)}"
    rules += [
        _record(c.SLO_OBJECTIVE, f"vector({slo.plain(objective.objective)})", labels),
        _record(c.SLO_ERROR_BUDGET, f"vector({slo.plain(objective.budget)})", labels),
        _record(c.SLO_TIME_PERIOD_DAYS, f"vector({slo.PERIOD_DAYS[period]})", labels),
        _record(c.SLO_CURRENT_BURN_RATE, f"{five}\n/ {on}\n{budget}", labels),
        _record(
            c.SLO_PERIOD_BURN_RATE,
            f"{c.slo_sli_error(period)}{ctx.slo_sel(objective)}\n/ {on}\n{budget}",
            labels,
        ),
        _record(
            c.SLO_PERIOD_BUDGET_REMAINING,
            f"1 - {c.SLO_PERIOD_BURN_RATE}{ctx.slo_sel(objective)}",
            labels,
        ),
        _record(
            c.SLO_INFO,
            "vector(1)",
            {**labels, "sloth_mode": "ofobserve", "sloth_objective": objective.percent},
        ),
    ]
    return rules


# --- alerts -------------------------------------------------------------------------------------


def _alert(
    ctx: RuleContext,
    spec: a.AlertSpec,
    expr: str,
    severity: str | None = None,
    labels: dict[str, str] | None = None,
    static: dict[str, str] | None = None,
) -> Rule:
    s = ctx.subject.settings
    f = ctx.subject.function
    severity = severity or s.alerting.severity_overrides.get(spec.name, spec.severity)
    all_labels = {
        **s.alerting.labels,
        **(labels or {}),
        "severity": severity,
    }
    if s.alerting.team:
        all_labels["team"] = s.alerting.team
    uid = c.dashboard_uid(f.namespace, f.name)
    rule: Rule = {
        "alert": spec.name,
        "expr": expr,
        "labels": all_labels,
        "annotations": {
            "summary": spec.summary,
            "description": a.go_template(spec, **(static or {})),
            "runbook_url": s.alerting.runbook_base_url + spec.name.lower(),
            "dashboard_url": f"{s.grafana.url.rstrip('/')}/d/{uid}",
        },
    }
    if spec.for_:
        rule["for"] = spec.for_
    if spec.keep_firing_for:
        rule["keep_firing_for"] = spec.keep_firing_for
    return rule


def burn_rate_static(ctx: RuleContext, objective: slo.Objective, w: BurnWindow) -> dict[str, str]:
    """The static fields of a burn-rate description."""
    return {
        "burn_rate": slo.plain(w.burn_rate),
        "objective": objective.percent,
        "threshold": f"{slo.plain(ctx.subject.settings.slo.latency.threshold)}s",
    }


def build_burn_rate_alerts(ctx: RuleContext, objective: slo.Objective) -> list[Rule]:
    """One alert per severity: its window pairs joined with ``or`` (Sloth's shape), each
    guarded against low traffic."""
    s = ctx.subject.settings
    spec = ERROR_OR_LATENCY[objective.name]
    by_severity: dict[str, list[BurnWindow]] = {}
    for w in slo.burn_windows(s):
        by_severity.setdefault(w.severity, []).append(w)
    rules = []
    for severity, windows in by_severity.items():
        branches = [_burn_branch(ctx, objective, w) for w in windows]
        expr = "(\n" + "\n)\nor\n(\n".join(branches) + "\n)"
        rules.append(
            _alert(
                ctx,
                spec,
                expr,
                severity=severity,
                static=burn_rate_static(ctx, objective, windows[0]),
            )
        )
    return rules


ERROR_OR_LATENCY = {
    c.SLO_AVAILABILITY: a.ERROR_BUDGET_BURN,
    c.SLO_LATENCY: a.LATENCY_BUDGET_BURN,
}


def _burn_branch(ctx: RuleContext, objective: slo.Objective, w: BurnWindow) -> str:
    limit = f"({slo.plain(w.burn_rate)} * {slo.plain(objective.budget)})"
    parts = [
        f"max without ({c.SLOTH_WINDOW}) "
        f"({c.slo_sli_error(window)}{ctx.slo_sel(objective)} > {limit})"
        for window in (w.short, w.long)
    ]
    minimum = ctx.subject.settings.slo.min_requests
    if minimum:
        parts.append(
            f"on ({c.NAMESPACE_LABEL}, {c.FUNCTION_LABEL}) "
            f"({c.record_requests_rate(w.long)}{ctx.sel()} * {window_seconds(w.long)} "
            f">= {minimum})"
        )
    return "  " + "\nand\n  ".join(parts)


def build_operational_alerts(ctx: RuleContext) -> list[Rule]:
    s = ctx.subject.settings
    t = s.alerting.thresholds
    op = c.OPERATIONAL_WINDOW
    q = slo.plain(t.latency_quantile)
    rules = [
        _alert(
            ctx,
            a.HIGH_ERROR_RATE,
            f"{c.record_error_ratio(op)}{ctx.sel()} > {slo.plain(t.error_ratio)}",
            static={"threshold": a.humanize("percentage", t.error_ratio)},
        ),
        _alert(
            ctx,
            a.HIGH_LATENCY,
            f"{c.record_latency_quantile(op)}{ctx.sel(**{c.QUANTILE_LABEL: q})} "
            f"> {slo.plain(t.latency)}",
            static={
                "threshold": a.humanize("duration", t.latency),
                "quantile": slo.plain(t.latency_quantile * 100),
            },
        ),
        _alert(
            ctx,
            a.REPLICAS_UNAVAILABLE,
            f"{c.RECORD_REPLICAS_UNAVAILABLE}{ctx.sel()} > 0",
        ),
    ]
    cap = max_replicas(ctx.subject)
    if cap is not None:
        rules.append(
            _alert(
                ctx,
                a.AT_MAX_REPLICAS,
                f"{c.RECORD_REPLICAS_DESIRED}{ctx.sel()} >= {cap}",
                static={"max_replicas": str(cap)},
            )
        )
    scaler_errors = _scaler_errors(ctx)
    if scaler_errors is not None:
        rules.append(
            _alert(
                ctx,
                a.SCALER_ERRORS,
                scaler_errors,
                labels=dict(ctx.identity),
                static={
                    "reason": a.REASON_TEMPLATE,
                    # its expression sums the labels away; DNS names cannot inject a template
                    "namespace": ctx.subject.function.namespace,
                    "function": ctx.subject.function.name,
                },
            )
        )
    if ctx.subject.profile != c.PROFILE_KEDA_HTTP:
        rules.append(
            _alert(
                ctx,
                a.METRICS_ABSENT,
                f"{c.RECORD_REPLICAS_DESIRED}{ctx.sel()} > 0\n"
                f"unless on ({c.NAMESPACE_LABEL}, {c.FUNCTION_LABEL})\n"
                f"(max by ({c.NAMESPACE_LABEL}, {c.FUNCTION_LABEL}) ({ctx.queries.up()}) == 1)",
            )
        )
    return rules


def keda_errors_rate(subject: Subject, window: str) -> str:
    """KEDA's errors per second of each scaler in the function's namespace (restrict them
    with :func:`keda_join`), in both generations of the counter: ``keda_scaler_errors``
    (KEDA 2.9-2.16) and ``keda_scaler_detail_errors_total`` (2.14 on). 2.14-2.16 export
    both with the same labels: each side is reduced to the labels both generations share
    and ``or`` keeps the newer one, so nothing is counted twice."""
    by = ", ".join(c.KEDA_SCALER_SERIES)
    sel = keda_selector(subject)
    parts = [
        f"max by ({by}) (rate({name}{sel}[{window}]))"
        for name in (c.KEDA_SCALER_ERRORS, c.KEDA_SCALER_ERRORS_LEGACY)
    ]
    return "(" + "\nor\n".join(parts) + ")"


def keda_join(subject: Subject) -> str:
    """Restrict KEDA's series (``keda_scaler_*``) to the function's ScaledObjects."""
    info = f"{c.RECORD_KEDA_SCALER_INFO}{_recorded(subject)}"
    return f" * on ({c.KEDA_NAMESPACE_LABEL}, {c.KEDA_SCALED_OBJECT_LABEL}) group_left () {info}"


def keda_selector(subject: Subject) -> str:
    """``{exported_namespace=…,extra…}``: the namespace part of KEDA's series of the function
    (the rest is :func:`keda_join`)."""
    labels = {c.KEDA_NAMESPACE_LABEL: subject.function.namespace}
    labels |= subject.settings.monitoring.extra_matchers
    return "{" + ",".join(matcher(k, v) for k, v in labels.items()) + "}"


def hpa_join(subject: Subject) -> str:
    """Restrict kube-state-metrics' HPA series, reduced by :func:`hpa_series`, to the HPAs
    that scale the function."""
    info = f"{c.RECORD_KEDA_SCALER_INFO}{_recorded(subject)}"
    return f" * on ({HPA_KEY}) group_left () {info}"


def hpa_series(subject: Subject, metric: str) -> str:
    """One series per HPA of a kube-state-metrics HPA metric in the function's namespace,
    however many kube-state-metrics export it (join with :func:`hpa_join`)."""
    return f"max by ({HPA_KEY}) ({metric}{hpa_selector(subject)})"


def hpa_selector(subject: Subject) -> str:
    """``{namespace=…,extra…}`` for kube-state-metrics' HPA series (with :func:`hpa_join`)."""
    labels = {c.NAMESPACE_LABEL: subject.function.namespace}
    labels |= subject.settings.monitoring.extra_matchers
    return "{" + ",".join(matcher(k, v) for k, v in labels.items()) + "}"


def _recorded(subject: Subject) -> str:
    return RuleContext.of(subject).sel()


def _scaler_errors(ctx: RuleContext) -> str | None:
    """KEDA's errors for the function's ScaledObjects, and a stale ofobserve scaler, each
    only where it can happen; ``None`` where neither can (a Knative function)."""
    s = ctx.subject.settings
    op = c.OPERATIONAL_WINDOW
    parts = []
    if has_keda(ctx.subject):
        errors = keda_errors_rate(ctx.subject, op)
        parts.append(
            f'label_replace(sum({errors}{keda_join(ctx.subject)}) > 0, "reason", "keda", "", "")'
        )
    if why_not_wired(ctx.subject) is None:
        stale = slo.plain(s.alerting.thresholds.scaler_stale_after)
        parts.append(
            f"label_replace(max({c.SCALER_SAMPLE_AGE_SECONDS}{ctx.sel()}) > {stale}, "
            f'"reason", "stale", "", "")'
        )
    return "\nor\n".join(parts) or None


def regex_literal(name: str) -> str:
    """An object name as an RE2 literal (names hold only ``[a-z0-9.-]``)."""
    return name.replace(".", "\\.")


# --- the PrometheusRule ---------------------------------------------------------------------


def build_rule_groups(subject: Subject) -> list[dict[str, Any]]:
    """The rule groups of one function, as in a rule file's ``groups:``."""
    ctx = RuleContext.of(subject)
    f = subject.function
    prefix = f"{c.RULE_GROUP_PREFIX}-{f.namespace}-{f.name}"
    groups = [{"name": f"{prefix}-recordings", "rules": build_recordings(ctx)}]
    alerts: list[Rule] = []
    for objective in slo.objectives(subject.settings):
        groups.append(
            {
                "name": f"{prefix}-slo-{objective.name}",
                "rules": build_slo_recordings(ctx, objective),
            }
        )
        alerts += build_burn_rate_alerts(ctx, objective)
    alerts += build_operational_alerts(ctx)
    groups.append({"name": f"{prefix}-alerts", "rules": alerts})
    return groups


def build_prometheus_rule(subject: Subject) -> dict[str, Any]:
    """The PrometheusRule (or, with ``alerting.delivery: rule-file``, the plain rule file)."""
    groups = build_rule_groups(subject)
    settings, f = subject.settings, subject.function
    if settings.alerting.delivery == "rule-file":
        return {"groups": groups}
    return {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": metadata(object_name(f.name), f.namespace, settings.selector_labels.rules),
        "spec": {"groups": groups},
    }

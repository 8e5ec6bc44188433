"""The PrometheusRules: the fleet's rules, once for every function, and each function's
constant series. Pure, no I/O.

The fleet rules compute each profile's signals once for all its functions (``sum by
(namespace, function, ...)``): 5-minute increases of good and total events from the raw
series, and every longer window as a sum of those (``sum_over_time``), never a ``rate`` of
raw series over more than 5 minutes. The alerts are fleet rules too. What differs between
functions (objectives, thresholds, the latency bucket, the low-traffic guard, alert labels
and annotations) is in each function's constant series, which the fleet rules join with
``on (namespace, function, ...)``: the only rules whose number grows with the fleet.

Recording rules follow ``level:metric:operations`` and SLO series Sloth's names and labels
(``ofobserve.conventions``), so Sloth's dashboards read them. docs/alerts.md tells how.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ofobserve import alerts as a
from ofobserve import conventions as c
from ofobserve import slo
from ofobserve.builders.common import metadata, object_name
from ofobserve.builders.scaling import own_triggers, why_not_wired
from ofobserve.model import Runtime
from ofobserve.profiles import DAPR_BINDING, Queries, matcher
from ofobserve.settings import BurnWindow, Settings, window_seconds
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


ERROR_OR_LATENCY = {
    c.SLO_AVAILABILITY: a.ERROR_BUDGET_BURN,
    c.SLO_LATENCY: a.LATENCY_BUDGET_BURN,
}


def burn_rate_static(ctx: RuleContext, objective: slo.Objective, w: BurnWindow) -> dict[str, str]:
    """The static fields of a burn-rate description."""
    return {
        "burn_rate": slo.plain(w.burn_rate),
        "objective": objective.percent,
        "threshold": f"{slo.plain(ctx.subject.settings.slo.latency.threshold)}s",
    }


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


#: One kube-state-metrics HPA series per object (see :func:`_ksm_key`).
HPA_KEY = f"{c.NAMESPACE_LABEL}, {c.KSM_HPA_LABEL}"


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


# --- families: which functions share fleet rules ---------------------------------------------


def extra_names(subject: Subject) -> tuple[str, ...]:
    """The names of the function's extra matchers, sorted: its rules group by them too."""
    return tuple(sorted(subject.settings.monitoring.extra_matchers))


def profile_variant(subject: Subject) -> str:
    """The metric profile as the rules see it: ``knative-opencensus``/``knative-otel`` for
    the two Knative generations, ``dapr-binding``/``dapr-pubsub``/``dapr-binding-pubsub``
    for the input kinds Dapr's signals come from."""
    name = subject.profile
    if name == c.PROFILE_KNATIVE:
        return f"{name}-{subject.settings.knative_metrics}"
    if name == c.PROFILE_DAPR:
        kinds = [
            "binding" if ctr is DAPR_BINDING else "pubsub"
            for ctr in subject.metric_profile.counters
        ]
        return "-".join([name, *sorted(kinds)])
    return name


def family(subject: Subject) -> str:
    """The rule family of a function: its profile variant, and its extra matchers' names.
    One fleet group per family records every member's signals (:data:`c.FLEET_RULES_LABEL`)."""
    names = extra_names(subject)
    return profile_variant(subject) + (f"-by-{'-'.join(names)}" if names else "")


# --- per-function constant series --------------------------------------------------------------


def _record(name: str, expr: str, labels: dict[str, str] | None = None) -> Rule:
    rule: Rule = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = dict(labels)
    return rule


def _constant(name: str, value: Decimal | float | int, labels: dict[str, str]) -> Rule:
    return _record(name, f"vector({slo.plain(value)})", labels)


def latency_le(subject: Subject) -> str:
    """The ``le`` of the latency SLO's bucket, in the histogram's unit, as
    :data:`c.RECORD_BUCKET_RATE` writes it (no trailing ``.0``)."""
    scale = subject.metric_profile.histograms[0].scale
    return slo.plain(Decimal(str(subject.settings.slo.latency.threshold)) * Decimal(str(scale)))


@dataclass(frozen=True)
class AlertInstance:
    """One ``ofobserve:alert:threshold`` series: an alert a function has, its threshold,
    its join labels (``quantile``, ``reason``), the labels the alert copies and the fields
    its annotations read."""

    spec: a.AlertSpec
    threshold: Decimal | float | int
    severity: str
    join: dict[str, str]
    fields: dict[str, str]


def alert_instances(subject: Subject) -> list[AlertInstance]:
    """Every alert of one function, as its constant series say (none: it never fires)."""
    s = subject.settings
    t = s.alerting.thresholds
    ctx = RuleContext.of(subject)
    out = []
    for objective in slo.objectives(s):
        spec = ERROR_OR_LATENCY[objective.name]
        by_severity: dict[str, list[BurnWindow]] = {}
        for w in slo.burn_windows(s):
            by_severity.setdefault(w.severity, []).append(w)
        for severity, windows in by_severity.items():
            static = burn_rate_static(ctx, objective, windows[0])
            out.append(AlertInstance(spec, 0, severity, {c.SLOTH_SLO: objective.name}, static))

    def own(spec: a.AlertSpec) -> str:
        return s.alerting.severity_overrides.get(spec.name, spec.severity)

    out.append(
        AlertInstance(
            a.HIGH_ERROR_RATE,
            t.error_ratio,
            own(a.HIGH_ERROR_RATE),
            {},
            {"threshold": a.humanize("percentage", t.error_ratio)},
        )
    )
    q = t.latency_quantile
    out.append(
        AlertInstance(
            a.HIGH_LATENCY,
            t.latency,
            own(a.HIGH_LATENCY),
            {c.QUANTILE_LABEL: slo.plain(q)},
            {"threshold": a.humanize("duration", t.latency), "quantile": slo.plain(q * 100)},
        )
    )
    out.append(AlertInstance(a.REPLICAS_UNAVAILABLE, 0, own(a.REPLICAS_UNAVAILABLE), {}, {}))
    cap = max_replicas(subject)
    if cap is not None:
        out.append(
            AlertInstance(
                a.AT_MAX_REPLICAS, cap, own(a.AT_MAX_REPLICAS), {}, {"max_replicas": str(cap)}
            )
        )
    if has_keda(subject):
        out.append(AlertInstance(a.SCALER_ERRORS, 0, own(a.SCALER_ERRORS), {"reason": "keda"}, {}))
    if why_not_wired(subject) is None:
        out.append(
            AlertInstance(
                a.SCALER_ERRORS,
                t.scaler_stale_after,
                own(a.SCALER_ERRORS),
                {"reason": "stale"},
                {},
            )
        )
    if subject.profile != c.PROFILE_KEDA_HTTP:
        out.append(AlertInstance(a.METRICS_ABSENT, 0, own(a.METRICS_ABSENT), {}, {}))
    return out


def alert_names(subject: Subject) -> list[str]:
    """The alerts that can fire for the function, sorted."""
    return sorted({i.spec.name for i in alert_instances(subject)})


def _alert_threshold(ctx: RuleContext, instance: AlertInstance) -> Rule:
    s = ctx.subject.settings
    f = ctx.subject.function
    labels = {**s.alerting.labels, "severity": instance.severity}
    if s.alerting.team:
        labels["team"] = s.alerting.team
    uid = c.dashboard_uid(f.namespace, f.name)
    annotations = {
        "runbook_url": s.alerting.runbook_base_url + instance.spec.name.lower(),
        "dashboard_url": f"{s.grafana.url.rstrip('/')}/d/{uid}",
        **instance.fields,
    }
    labels |= {c.ANNOTATION_LABEL_PREFIX + k: v for k, v in annotations.items()}
    labels |= {**ctx.identity, c.ALERT_NAME_LABEL: instance.spec.name, **instance.join}
    return _constant(c.RECORD_ALERT_THRESHOLD, instance.threshold, labels)


def build_constants(subject: Subject) -> list[Rule]:
    """The function's constant series: its family, dashboard, SLO objectives, thresholds
    and alert settings. The fleet rules join them; nothing else here reads a series."""
    ctx = RuleContext.of(subject)
    s = subject.settings
    f = subject.function
    ident = ctx.identity
    info = {**ident, c.FLEET_RULES_LABEL: family(subject)}
    if has_keda(subject):
        info[c.KEDA_INFO_LABEL] = "1"
    uid = {c.DASHBOARD_UID_LABEL: c.dashboard_uid(f.namespace, f.name)}
    rules = [
        _constant(c.RECORD_FUNCTION_INFO, 1, info),
        _constant(c.RECORD_DASHBOARD_INFO, 1, {**ident, **uid}),
        _constant(
            c.RECORD_SLO_LATENCY_THRESHOLD,
            s.slo.latency.threshold,
            {**ident, "le": latency_le(subject)},
        ),
        _constant(c.RECORD_SLO_MIN_REQUESTS, s.slo.min_requests, ident),
    ]
    period = s.slo.window
    for objective in slo.objectives(s):
        labels = {**ident, **ctx.sloth_labels(objective)}
        rules += [
            _constant(c.SLO_OBJECTIVE, objective.objective, labels),
            _constant(c.SLO_ERROR_BUDGET, objective.budget, labels),
            _constant(c.SLO_TIME_PERIOD_DAYS, slo.PERIOD_DAYS[period], labels),
            _constant(
                c.SLO_INFO,
                1,
                {**labels, "sloth_mode": "ofobserve", "sloth_objective": objective.percent},
            ),
        ]
        for w in slo.burn_windows(s):
            pair = {
                c.BURN_LONG_LABEL: w.long,
                c.BURN_SHORT_LABEL: w.short,
                c.BURN_SEVERITY_LABEL: w.severity,
            }
            threshold = Decimal(str(w.burn_rate)) * objective.budget
            rules.append(_constant(c.RECORD_SLO_BURN_THRESHOLD, threshold, {**labels, **pair}))
    rules += [_alert_threshold(ctx, i) for i in alert_instances(subject)]
    return rules


# --- fleet rules --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSet:
    """The functions whose extra matchers have the same names (usually all of them): their
    rules group by ``namespace``, ``function`` and those names, and every recorded series
    they read is told apart from another set's by :attr:`only`."""

    names: tuple[str, ...]
    others: tuple[str, ...]  # names other sets use, absent here
    subjects: tuple[Subject, ...]

    @property
    def by(self) -> str:
        return ", ".join((c.NAMESPACE_LABEL, c.FUNCTION_LABEL, *self.names))

    @property
    def suffix(self) -> str:
        return f"-by-{'-'.join(self.names)}" if self.names else ""

    def only(self, *more: str) -> list[str]:
        return [
            *(matcher(n, "", "!=") for n in self.names),
            *(matcher(n, "") for n in self.others),
            *more,
        ]

    def sel(self, *more: str, **equal: str) -> str:
        """A selector of recorded (or constant) series of this set's functions."""
        parts = self.only(*more, *(matcher(k, v) for k, v in equal.items()))
        return "{" + ",".join(parts) + "}" if parts else ""


def label_sets(subjects: Sequence[Subject]) -> list[LabelSet]:
    by_names: dict[tuple[str, ...], list[Subject]] = {}
    for subject in subjects:
        by_names.setdefault(extra_names(subject), []).append(subject)
    every = {n for names in by_names for n in names}
    return [
        LabelSet(names, tuple(sorted(every - set(names))), tuple(members))
        for names, members in sorted(by_names.items())
    ]


def _union(parts: list[str]) -> str:
    """Several vectors as one: each part labelled ``signal`` first, so ``or`` keeps all."""
    if len(parts) == 1:
        return parts[0]
    return " or ".join(f'label_replace({p}, "signal", "{i}", "", "")' for i, p in enumerate(parts))


def _published(expr: str) -> str:
    """A series under its public name: without the family label of the series it is made of."""
    return f"sum without ({c.FLEET_RULES_LABEL}) ({expr})"


NOT_EMPTY = matcher(c.FUNCTION_LABEL, "", "!=")
#: A trailing ``.0`` of ``le`` removed: Python's client writes ``1.0`` where Go writes ``1``.
LE_NORMAL = '"le", "$1", "le", "(.+)\\\\.0"'


def build_family_group(ls: LabelSet, name: str, members: Sequence[Subject]) -> dict[str, Any]:
    """One profile family's recordings, for every member at once: 5-minute increases of
    good and total events from the raw series, then every window and SLI from those."""
    prof = members[0].metric_profile
    by = ls.by
    member = f"{c.RECORD_FUNCTION_INFO}{{{matcher(c.FLEET_RULES_LABEL, name)}}}"
    own = {c.FLEET_RULES_LABEL: name}
    mine = "{" + matcher(c.FLEET_RULES_LABEL, name) + "}"
    raw = "{" + NOT_EMPTY + "}"

    def members_only(expr: str) -> str:
        return f"{expr} and on ({by}) {member}"

    def increase(metric: str, *more: str) -> str:
        sel = "{" + ",".join([NOT_EMPTY, *more]) + "}"
        return f"increase({metric}{sel}[5m])"

    requests = _union([increase(ctr.metric) for ctr in prof.counters])
    errors = _union([increase(ctr.metric, ctr.error) for ctr in prof.counters])
    observed = _union([increase(f"{h.metric}_count") for h in prof.histograms])
    buckets = _union(
        [f"label_replace(rate({h.metric}_bucket{raw}[5m]), {LE_NORMAL})" for h in prof.histograms]
    )
    req_inc, err_inc = c.RECORD_REQUESTS_INCREASE + mine, c.RECORD_ERRORS_INCREASE + mine
    obs_inc, slow_inc = c.RECORD_OBSERVED_INCREASE + mine, c.RECORD_SLOW_INCREASE + mine
    within = (
        f"sum by ({by}) ({c.RECORD_BUCKET_RATE}{mine} and on ({by}, le) "
        f"{c.RECORD_SLO_LATENCY_THRESHOLD}{ls.sel()})"
    )
    rules = [
        _record(c.RECORD_REQUESTS_INCREASE, members_only(f"sum by ({by}) ({requests})"), own),
        _record(
            c.RECORD_ERRORS_INCREASE,
            f"({members_only(f'sum by ({by}) ({errors})')})\nor on ({by})\n(0 * {req_inc})",
            own,
        ),
        _record(c.RECORD_OBSERVED_INCREASE, members_only(f"sum by ({by}) ({observed})"), own),
        _record(c.RECORD_BUCKET_RATE, members_only(f"sum by ({by}, le) ({buckets})"), own),
        _record(c.RECORD_SLOW_INCREASE, f"{obs_inc}\n- on ({by})\n({within} * 300)", own),
    ]
    windows = _windows(*(slo.sli_windows(s.settings) for s in members))
    periods = sorted({s.settings.slo.window for s in members}, key=window_seconds)

    def total(record: str, window: str) -> str:
        """The 5-minute increases over ``window``, all of them: each event is in every
        increase recorded within 5 minutes after it, so in ``5m / interval`` of them, the
        same factor for good and total events, which a ratio cancels."""
        if window == c.SLO_CURRENT_WINDOW:
            return record
        return f"sum_over_time({record}[{_range(window)}])"

    # Events per second need each event once: the sum of the increases over the window
    # divided by how many increases are recorded in 5 minutes (5m / interval, counted, so
    # that no interval is assumed).
    recorded_per_5m = f"count_over_time({req_inc}[{_range('5m')}])"
    for w in windows:
        per_second = (
            f"{req_inc} / 300"
            if w == c.SLO_CURRENT_WINDOW
            else f"{total(req_inc, w)}\n/ {recorded_per_5m}\n/ {window_seconds(w)}"
        )
        rules.append(_record(c.record_requests_rate(w), _published(per_second)))
    op = c.OPERATIONAL_WINDOW
    rules.append(_record(c.record_errors_rate(op), _published(f"{err_inc} / 300")))
    rules.append(_record(c.record_error_ratio(op), _published(f"{err_inc} / ({req_inc} > 0)")))
    scale = prof.histograms[0].scale
    for q in sorted({q for s in members for q in quantiles(s)}):
        value = f"histogram_quantile({slo.plain(q)}, {c.RECORD_BUCKET_RATE}{mine})"
        if scale != 1:
            value = f"{value} / {slo.plain(scale)}"
        rules.append(
            _record(
                c.record_latency_quantile(op), _published(value), {c.QUANTILE_LABEL: slo.plain(q)}
            )
        )
    if prof.concurrency is not None:
        rules.append(
            _record(c.RECORD_IN_FLIGHT, members_only(f"sum by ({by}) ({prof.concurrency}{raw})"))
        )
    for objective, bad, good in (
        (c.SLO_AVAILABILITY, err_inc, req_inc),
        (c.SLO_LATENCY, slow_inc, obs_inc),
    ):
        for w in (*windows, *(p for p in periods if p not in windows)):
            ratio = f"{total(bad, w)}\n/\n({total(good, w)} > 0)"
            rules.append(
                _record(
                    c.slo_sli_error(w),
                    _sloth_labelled(_published(ratio), objective),
                    {c.SLOTH_SLO: objective, c.SLOTH_WINDOW: w},
                )
            )
    return {"name": f"{c.FLEET_RULES_NAME}-{name}", "rules": rules}


def _range(window: str) -> str:
    """A range 1 s shorter than ``window``: it holds exactly ``window / interval`` samples of
    a series recorded every interval, however the evaluations align with it (Prometheus
    2.x ranges include both ends, 3.x only the last)."""
    return f"{window_seconds(window) - 1}s"


def _sloth_labelled(expr: str, objective: str) -> str:
    """Sloth's ``sloth_service`` (``<namespace>/<function>``) and ``sloth_id``
    (``<service>-<slo>``), made from the series' own labels."""
    slo_label = f'label_replace({expr}, "{c.SLOTH_SLO}", "{objective}", "", "")'
    service = (
        f'label_join({slo_label}, "{c.SLOTH_SERVICE}", "/", "{c.NAMESPACE_LABEL}", '
        f'"{c.FUNCTION_LABEL}")'
    )
    return f'label_join({service}, "{c.SLOTH_ID}", "-", "{c.SLOTH_SERVICE}", "{c.SLOTH_SLO}")'


def _windows(*sets: Iterable[str]) -> tuple[str, ...]:
    every = {c.OPERATIONAL_WINDOW}
    for windows in sets:
        every |= set(windows)
    return tuple(sorted(every, key=window_seconds))


def _deployments(ls: LabelSet) -> str:
    """kube-state-metrics' Deployments labelled by the Function patch, one series each
    however many kube-state-metrics export it, with the function's name as ``function``;
    not the dapr-proxy Deployment, which carries the same label (OpenFunction copies
    ``spec.serving.labels`` onto it) and is told apart by its name."""
    sel = (
        "{"
        + ",".join(
            [
                matcher(c.KSM_FUNCTION_LABEL, "", "!="),
                matcher("deployment", c.DAPR_PROXY_DEPLOYMENT_REGEX, "!~"),
                *ls.only(),
            ]
        )
        + "}"
    )
    named = (
        f'label_replace({c.KSM_DEPLOYMENT_LABELS}{sel}, "{c.FUNCTION_LABEL}", "$1", '
        f'"{c.KSM_FUNCTION_LABEL}", "(.+)")'
    )
    return f"max by ({_ksm_key(ls)}, {c.FUNCTION_LABEL}) ({named})"


def _ksm_key(ls: LabelSet, *more: str) -> str:
    """One kube-state-metrics series per object: every KSM series is reduced to these labels
    before a join, because two kube-state-metrics instances (HA, or a rollout) export each
    object twice, with different ``instance``/``pod`` labels, and a join of unreduced sides
    fails with "many-to-many matching not allowed"."""
    return ", ".join((c.NAMESPACE_LABEL, *(more or ("deployment",)), *ls.names))


def _keda_scaler_info(ls: LabelSet) -> str:
    """The HPAs whose target is one of a function's Deployments (kube-state-metrics'
    ``kube_horizontalpodautoscaler_info``, kubernetes/kube-state-metrics
    ``internal/store/horizontalpodautoscaler.go``), with the ScaledObject's name from KEDA's
    HPA name and ``exported_namespace`` for KEDA's own series. No generated name is needed:
    it works the same in file mode and with ``--from-cluster``."""
    sel = "{" + ",".join([matcher("scaletargetref_kind", "Deployment"), *ls.only()]) + "}"
    key = _ksm_key(ls, c.KSM_HPA_LABEL, "scaletargetref_name")
    hpa = f"max by ({key}) ({c.KSM_HPA_INFO}{sel})"
    by_deployment = (
        f'label_replace({hpa}, "deployment", "$1", "scaletargetref_name", "(.+)")\n'
        f"* on ({_ksm_key(ls)}) group_left ({c.FUNCTION_LABEL})\n"
        f"{_deployments(ls)}"
    )
    named = (
        f'label_replace(label_replace({by_deployment}, "{c.KEDA_SCALED_OBJECT_LABEL}", "$1", '
        f'"{c.KSM_HPA_LABEL}", "keda-hpa-(.+)"), "{c.KEDA_NAMESPACE_LABEL}", "$1", '
        f'"{c.NAMESPACE_LABEL}", "(.+)")'
    )
    keep = f"{ls.by}, {c.KSM_HPA_LABEL}, {c.KEDA_SCALED_OBJECT_LABEL}, {c.KEDA_NAMESPACE_LABEL}"
    keda = f"{c.RECORD_FUNCTION_INFO}{ls.sel(**{c.KEDA_INFO_LABEL: '1'})}"
    return f"max by ({keep}) (\n{named}\n)\nand on ({ls.by}) {keda}"


def _common_recordings(ls: LabelSet) -> list[Rule]:
    info = f"{c.RECORD_FUNCTION_INFO}{ls.sel()}"
    rules = []
    for name, metric in (
        (c.RECORD_REPLICAS_DESIRED, c.KSM_DEPLOYMENT_SPEC_REPLICAS),
        (c.RECORD_REPLICAS_AVAILABLE, c.KSM_DEPLOYMENT_AVAILABLE),
        (c.RECORD_REPLICAS_UNAVAILABLE, c.KSM_DEPLOYMENT_UNAVAILABLE),
    ):
        replicas = f"max by ({_ksm_key(ls)}) ({metric}{ls.sel()})"
        owned = f"* on ({_ksm_key(ls)}) group_left ({c.FUNCTION_LABEL}) {_deployments(ls)}"
        rules.append(
            _record(name, f"sum by ({ls.by}) (\n{replicas}\n{owned}\n)\nand on ({ls.by}) {info}")
        )
    rules.append(_record(c.RECORD_KEDA_SCALER_INFO, _keda_scaler_info(ls)))
    budget = f"{c.SLO_ERROR_BUDGET}{ls.sel()}"
    on = f"on ({ls.by}, {c.SLOTH_SLO}) group_left ()"
    five = c.slo_sli_error(c.SLO_CURRENT_WINDOW)
    rules.append(_record(c.SLO_CURRENT_BURN_RATE, f"{five}{ls.sel()}\n/ {on}\n{budget}"))
    periods = sorted({s.settings.slo.window for s in ls.subjects}, key=window_seconds)
    for period in periods:
        days = f"({c.SLO_TIME_PERIOD_DAYS}{ls.sel()} == {slo.PERIOD_DAYS[period]})"
        rules.append(
            _record(
                c.SLO_PERIOD_BURN_RATE,
                f"({c.slo_sli_error(period)}{ls.sel()}\n/ {on}\n{budget})\n"
                f"and on ({ls.by}, {c.SLOTH_SLO}) {days}",
            )
        )
    rules.append(_record(c.SLO_PERIOD_BUDGET_REMAINING, f"1 - {c.SLO_PERIOD_BURN_RATE}{ls.sel()}"))
    return rules


# --- fleet alerts ---------------------------------------------------------------------------


def _copied(ls: LabelSet) -> str:
    """The alert labels a fleet alert copies from its threshold series: ``severity``,
    ``team`` and every ``alerting.labels`` name of the set's functions."""
    names = {"severity"}
    for subject in ls.subjects:
        names |= set(subject.settings.alerting.labels)
        if subject.settings.alerting.team:
            names.add("team")
    return ", ".join(sorted(names))


def _threshold(ls: LabelSet, spec: a.AlertSpec, **more: str) -> str:
    return f"{c.RECORD_ALERT_THRESHOLD}{ls.sel(**{c.ALERT_NAME_LABEL: spec.name}, **more)}"


def _field(ls: LabelSet, spec: a.AlertSpec, field: str, by_severity: bool = False) -> str:
    """A Go template reading one annotation field of the alert's threshold series."""
    labels = [c.NAMESPACE_LABEL, c.FUNCTION_LABEL, *ls.names]
    sel = [f"{n}=%q" for n in labels] + [f'{c.ALERT_NAME_LABEL}="{spec.name}"']
    args = [f"$labels.{n}" for n in labels]
    if by_severity:
        sel.append("severity=%q")
        args.append("$labels.severity")
    query = f"`{c.RECORD_ALERT_THRESHOLD}{{{','.join(sel)}}}` {' '.join(args)}"
    label = c.ANNOTATION_LABEL_PREFIX + field
    return (
        f'{{{{ with printf {query} | query }}}}{{{{ . | first | label "{label}" }}}}{{{{ end }}}}'
    )


def _fleet_alert(
    ls: LabelSet,
    spec: a.AlertSpec,
    expr: str,
    fields: Iterable[str] = (),
    by_severity: bool = False,
) -> Rule:
    static = {f: _field(ls, spec, f, by_severity) for f in fields}
    if spec is a.SCALER_ERRORS:
        static["reason"] = a.REASON_TEMPLATE
    rule: Rule = {
        "alert": spec.name,
        "expr": expr,
        "annotations": {
            "summary": spec.summary,
            "description": a.go_template(spec, **static),
            "runbook_url": _field(ls, spec, "runbook_url", by_severity),
            "dashboard_url": _field(ls, spec, "dashboard_url", by_severity),
        },
    }
    if spec.for_:
        rule["for"] = spec.for_
    if spec.keep_firing_for:
        rule["keep_firing_for"] = spec.keep_firing_for
    return rule


SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
BURN_FIELDS = ("burn_rate", "objective", "threshold")


def _burn_alerts(ls: LabelSet) -> list[Rule]:
    """Per SLO and severity one alert: each window pair of that severity any function has,
    joined with ``or`` (Sloth's shape); a function without the pair has no threshold series
    for it, so the pair never fires for it."""
    pairs: dict[str, set[tuple[str, str]]] = {}
    for subject in ls.subjects:
        for w in slo.burn_windows(subject.settings):
            pairs.setdefault(w.severity, set()).add((w.long, w.short))
    rules = []
    copied = _copied(ls)
    for objective in (c.SLO_AVAILABILITY, c.SLO_LATENCY):
        spec = ERROR_OR_LATENCY[objective]
        for severity in sorted(pairs, key=SEVERITY_ORDER.__getitem__):
            branches = [
                _burn_branch(ls, objective, long, short, severity)
                for long, short in sorted(
                    pairs[severity], key=lambda p: (window_seconds(p[0]), window_seconds(p[1]))
                )
            ]
            either = "(\n" + "\n)\nor\n(\n".join(branches) + "\n)"
            expr = (
                f"(\n{either}\n)\n> on ({ls.by}) group_left ({copied})\n"
                f"{_threshold(ls, spec, severity=severity)}"
            )
            rules.append(_fleet_alert(ls, spec, expr, BURN_FIELDS, by_severity=True))
    return rules


def _burn_branch(ls: LabelSet, objective: str, long: str, short: str, severity: str) -> str:
    pair = {
        c.SLOTH_SLO: objective,
        c.BURN_LONG_LABEL: long,
        c.BURN_SHORT_LABEL: short,
        c.BURN_SEVERITY_LABEL: severity,
    }
    limit = f"{c.RECORD_SLO_BURN_THRESHOLD}{ls.sel(**pair)}"
    parts = [
        f"max without ({c.SLOTH_WINDOW}) ({c.slo_sli_error(window)}"
        f"{ls.sel(**{c.SLOTH_SLO: objective})} > on ({ls.by}, {c.SLOTH_SLO}) group_left () "
        f"{limit})"
        for window in (short, long)
    ]
    held = f"{c.record_requests_rate(long)}{ls.sel()} * {window_seconds(long)}"
    parts.append(f"on ({ls.by}) ({held} >= on ({ls.by}) {c.RECORD_SLO_MIN_REQUESTS}{ls.sel()})")
    return "  " + "\nand\n  ".join(parts)


def _operational_alerts(ls: LabelSet) -> list[Rule]:
    subjects = ls.subjects
    copied = _copied(ls)
    by = ls.by
    op = c.OPERATIONAL_WINDOW

    def over(series: str, spec: a.AlertSpec, op_: str = ">", *join: str, **more: str) -> str:
        on = ", ".join((by, *join))
        limit = _threshold(ls, spec, **more)
        return f"{series}{ls.sel()} {op_} on ({on}) group_left ({copied})\n{limit}"

    rules = [
        _fleet_alert(
            ls, a.HIGH_ERROR_RATE, over(c.record_error_ratio(op), a.HIGH_ERROR_RATE), ("threshold",)
        ),
        _fleet_alert(
            ls,
            a.HIGH_LATENCY,
            over(c.record_latency_quantile(op), a.HIGH_LATENCY, ">", c.QUANTILE_LABEL),
            ("threshold", "quantile"),
        ),
        _fleet_alert(
            ls, a.REPLICAS_UNAVAILABLE, over(c.RECORD_REPLICAS_UNAVAILABLE, a.REPLICAS_UNAVAILABLE)
        ),
    ]
    if any(max_replicas(s) is not None for s in subjects):
        rules.append(
            _fleet_alert(
                ls,
                a.AT_MAX_REPLICAS,
                over(c.RECORD_REPLICAS_DESIRED, a.AT_MAX_REPLICAS, ">="),
                ("max_replicas",),
            )
        )
    parts = []
    if any(has_keda(s) for s in subjects):
        names = ", ".join((*c.KEDA_SCALER_SERIES, *ls.names))
        errors = (
            "("
            + "\nor\n".join(
                f"max by ({names}) (rate({name}{ls.sel()}[{op}]))"
                for name in (c.KEDA_SCALER_ERRORS, c.KEDA_SCALER_ERRORS_LEGACY)
            )
            + ")"
        )
        key = ", ".join((c.KEDA_NAMESPACE_LABEL, c.KEDA_SCALED_OBJECT_LABEL, *ls.names))
        own = (
            f"{errors}\n* on ({key}) group_left ({c.NAMESPACE_LABEL}, {c.FUNCTION_LABEL})\n"
            f"{c.RECORD_KEDA_SCALER_INFO}{ls.sel()}"
        )
        parts.append(
            f'label_replace(sum by ({by}) ({own}), "reason", "keda", "", "")\n'
            f"> on ({by}, reason) group_left ({copied})\n"
            f"{_threshold(ls, a.SCALER_ERRORS, reason='keda')}"
        )
    if any(why_not_wired(s) is None for s in subjects):
        parts.append(
            f"label_replace(max by ({by}) ({c.SCALER_SAMPLE_AGE_SECONDS}{ls.sel()}), "
            f'"reason", "stale", "", "")\n'
            f"> on ({by}, reason) group_left ({copied})\n"
            f"{_threshold(ls, a.SCALER_ERRORS, reason='stale')}"
        )
    if parts:
        rules.append(_fleet_alert(ls, a.SCALER_ERRORS, "(\n" + "\n)\nor\n(\n".join(parts) + "\n)"))
    if any(s.profile != c.PROFILE_KEDA_HTTP for s in subjects):
        up = "{" + ",".join([NOT_EMPTY, *ls.only()]) + "}"
        rules.append(
            _fleet_alert(
                ls,
                a.METRICS_ABSENT,
                f"({over(c.RECORD_REPLICAS_DESIRED, a.METRICS_ABSENT)})\n"
                f"unless on ({by})\n(max by ({by}) (up{up}) == 1)",
            )
        )
    return rules


def common_name(suffix: str = "") -> str:
    """The name of a label set's common rules: ``common``, ``common-by-<names>``."""
    return f"common{suffix}"


def fleet_files(subject: Subject) -> tuple[str, str]:
    """The fleet rule files a function's rules are in, under the rules group's
    ``fleet/``: its family's and its label set's common one."""
    names = extra_names(subject)
    suffix = f"-by-{'-'.join(names)}" if names else ""
    return f"{family(subject)}.yaml", f"{common_name(suffix)}.yaml"


def build_fleet_rule_groups(subjects: Sequence[Subject]) -> dict[str, dict[str, Any]]:
    """The fleet's groups by name: per label set, one group per profile family (its
    recordings) and one for what every profile shares (replicas, KEDA, Sloth's burn rates,
    every alert)."""
    groups: dict[str, dict[str, Any]] = {}
    for ls in label_sets(subjects):
        families: dict[str, list[Subject]] = {}
        for subject in ls.subjects:
            families.setdefault(family(subject), []).append(subject)
        for name, members in sorted(families.items()):
            groups[name] = build_family_group(ls, name, members)
        common = common_name(ls.suffix)
        groups[common] = {
            "name": f"{c.FLEET_RULES_NAME}-{common}",
            "rules": _common_recordings(ls) + _burn_alerts(ls) + _operational_alerts(ls),
        }
    return groups


def build_fleet_prometheus_rules(
    subjects: Sequence[Subject], settings: Settings
) -> dict[str, dict[str, Any]] | None:
    """The fleet's PrometheusRules (or plain rule files) by name: one per profile family,
    one per label set for what they share, in ``alerting.fleetRules.namespace`` (unset:
    none, so they go where they are applied). ``None`` without functions."""
    if not subjects:
        return None
    out: dict[str, dict[str, Any]] = {}
    for name, group in build_fleet_rule_groups(subjects).items():
        if settings.alerting.delivery == "rule-file":
            out[name] = {"groups": [group]}
            continue
        where = settings.alerting.fleet_rules.namespace
        meta = metadata(group["name"], where, settings.selector_labels.rules)
        if not where:
            del meta["namespace"]
        out[name] = {
            "apiVersion": API_VERSION,
            "kind": "PrometheusRule",
            "metadata": meta,
            "spec": {"groups": [group]},
        }
    return out


# --- the function's PrometheusRule -----------------------------------------------------------


def build_rule_groups(subject: Subject) -> list[dict[str, Any]]:
    """The function's own group: its constant series only (the fleet rules do the rest)."""
    f = subject.function
    name = f"{c.RULE_GROUP_PREFIX}-{f.namespace}-{f.name}"
    return [{"name": name, "rules": build_constants(subject)}]


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

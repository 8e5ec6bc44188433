"""Dashboards: the linter's rules, every query against the real Prometheus, delivery forms.

The real-Prometheus test scrapes one synthetic exporter per example function (its profile's
real metric names and labels, under its identity) and one for the fleet exporters and the
scaler, loads every function's recording rules, then runs every target of every dashboard.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from ofobserve import conventions as c
from ofobserve.builders.dashboards import (
    build_dashboard_file,
    build_dashboard_resource,
    function_dashboard,
)
from ofobserve.builders.fleet_dashboards import (
    INFO_VALUE_FIELD,
    overview,
    overview_json,
    scaler,
    scaler_json,
)
from ofobserve.builders.grafana_delivery import dashboard_text
from ofobserve.builders.rules import build_fleet_rule_groups, build_rule_groups
from ofobserve.builders.scaling import why_not_wired
from ofobserve.grafana import DashboardSpec, build_dashboard_json
from ofobserve.loading import load_config, load_subjects
from ofobserve.model import ClusterRefs, Runtime
from ofobserve.settings import fleet_settings
from ofobserve.subject import Subject
from tests.conftest import EXAMPLE_CONFIG, EXAMPLES
from tests.support.dashboard_lint import lint, panels
from tests.support.exporters import Clock, Exporters, Family, StaticFamilies
from tests.support.fleet import (
    KEDA_GENERATIONS,
    fleet_families,
    keda_generation,
    kube_state_families,
    profile_families,
)
from tests.support.prometheus import PrometheusServer

SUBJECTS = load_subjects([str(EXAMPLES)], str(EXAMPLE_CONFIG))
FLEET = fleet_settings(load_config(str(EXAMPLE_CONFIG)))
SPECS: dict[str, DashboardSpec] = {
    **{spec.uid: spec for spec in (function_dashboard(s) for s in SUBJECTS)},
    c.OVERVIEW_DASHBOARD_UID: overview(FLEET),
    c.SCALER_DASHBOARD_UID: scaler(FLEET),
}
DASHBOARDS = {
    **{uid: build_dashboard_json(spec) for uid, spec in SPECS.items()},
    # what render writes for the fleet (the overview's JSON is touched up after building)
    c.OVERVIEW_DASHBOARD_UID: overview_json(FLEET),
    c.SCALER_DASHBOARD_UID: scaler_json(FLEET),
}
RATE_WINDOW = "10s"  # what $__rate_interval stands for: ten 1 s scrapes

# Panels whose data can legitimately be absent in the fixture: (dashboard uid, panel title).
# Empty: the fixture feeds every series every panel reads. Add an entry only with the reason.
ALLOWED_EMPTY: frozenset[tuple[str, str]] = frozenset()


def substitute(expr: str) -> str:
    """The query Grafana sends with every variable at All and a 10 s rate interval."""
    expr = expr.replace("$__rate_interval", RATE_WINDOW)
    return re.sub(r"\$(instance|namespace|function)\b", ".*", expr)


def targets() -> Iterator[tuple[str, str, str]]:
    for uid, dashboard in DASHBOARDS.items():
        for panel in panels(dashboard):
            for target in panel["targets"]:
                yield uid, panel["title"], target["expr"]


# --- the linter's rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_every_dashboard_passes_the_lint_rules(uid: str) -> None:
    assert lint(DASHBOARDS[uid]) == []


def _mutated(change: str) -> dict[str, Any]:
    dashboard = copy.deepcopy(DASHBOARDS["shop_sync-http-function"])
    panel = panels(dashboard)[0]
    target = panel["targets"][0]
    if change == "unit":
        panel["fieldConfig"]["defaults"]["unit"] = ""
    elif change == "description":
        del panel["description"]
    elif change == "datasource":
        panel["datasource"] = "prometheus"
    elif change == "interval":
        target["expr"] = target["expr"].replace("$__rate_interval", "5m")
    elif change == "instance":
        target["expr"] = target["expr"].replace(',instance=~"$instance"', "")
    elif change == "counter":
        target["expr"] = 'sum(function_requests_total{instance=~"$instance"})'
    elif change == "editable":
        dashboard["editable"] = True
    elif change == "targets":
        panel["targets"] = []
    return dashboard


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ("unit", "panel-units-rule"),
        ("description", "panel-description-rule"),
        ("datasource", "panel-datasource-rule"),
        ("interval", "target-rate-interval-rule"),
        ("instance", "target-instance-rule"),
        ("counter", "target-counter-agg-rule"),
        ("editable", "editable"),
        ("targets", "panel-targets-rule"),
    ],
)
def test_the_lint_rules_catch_each_mistake(change: str, rule: str) -> None:
    problems = lint(_mutated(change))
    assert problems, change
    assert all(rule in p for p in problems), problems


def test_every_expression_parses_with_promtool(promtool: str, tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{i}:check", "expr": substitute(expr)}
        for i, (_uid, _title, expr) in enumerate(targets())
    ]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


# --- what each profile shows ----------------------------------------------------------------------


def _variant(subject: Subject) -> str:
    profile = subject.profile
    return f"{profile}-{subject.settings.knative_metrics}" if profile == "knative" else profile


def test_the_examples_cover_every_profile_and_name_generation() -> None:
    assert {_variant(s) for s in SUBJECTS} == {
        "ofobserve",
        "knative-opencensus",
        "knative-otel",
        "keda-http",
        "dapr",
    }


def _titles(subject: Subject) -> dict[str, list[str]]:
    return {r.title: [p.title for p in r.panels] for r in function_dashboard(subject).rows}


def test_panels_a_profile_cannot_fill_are_left_out() -> None:
    by_variant = {_variant(s): _titles(s) for s in SUBJECTS}
    assert "Concurrency / saturation" not in by_variant["dapr"]
    assert by_variant["dapr"]["Traffic"] == ["Event rate"]
    dapr_errors = {t for s in SUBJECTS if s.profile == "dapr" for t in _titles(s)["Errors"]}
    assert {"Errors by component", "Errors by topic"} <= dapr_errors
    assert "Cold starts" in by_variant["ofobserve"]["Traffic"]
    for variant in ("knative-opencensus", "knative-otel", "keda-http", "dapr"):
        assert "Cold starts" not in by_variant[variant]["Traffic"], variant
    assert by_variant["knative-otel"]["Concurrency / saturation"][0] == (
        "Queue depth (queue-proxy)"
    )


def test_exemplars_only_where_the_profile_has_them() -> None:
    for subject in SUBJECTS:
        dashboard = DASHBOARDS[c.dashboard_uid(subject.function.namespace, subject.function.name)]
        latency = next(p for p in panels(dashboard) if p["title"] == "Latency percentiles")
        flags = {t["exemplar"] for t in latency["targets"]}
        assert flags == {subject.profile == c.PROFILE_NATIVE}, subject.function.name


def test_uids_are_unique_and_the_overview_links_to_them() -> None:
    assert len(DASHBOARDS) == len(SUBJECTS) + 2
    table = next(p for p in panels(DASHBOARDS[c.OVERVIEW_DASHBOARD_UID]) if p["type"] == "table")
    links = json.dumps(table["fieldConfig"]["overrides"])
    assert "/d/${__data.fields.dashboard_uid}" in links
    for dashboard in DASHBOARDS.values():
        assert dashboard["schemaVersion"] == 39
        assert dashboard["templating"]["list"][0]["current"]["value"] == "prometheus"


#: Which autoscalers scale each example function, from the runtime facts, not from the code
#: under test: (the ofobserve scaler, a KEDA ScaledObject and its HPA). Knative's KPA scales
#: Knative functions (no HPA, no ScaledObject); the KEDA HTTP add-on's ScaledObject scales
#: keda-http ones; async functions with a KEDA trigger get OpenFunction's ScaledObject, with
#: the ofobserve trigger patched in; a cron function without one gets no ScaledObject.
AUTOSCALERS = {
    "default/async-kafka-function": (True, True),
    "default/build-from-source": (False, False),
    "default/hello-world": (False, False),
    "default/keda-http-function": (False, True),
    "default/nightly-report": (False, False),
    "default/nodejs-sample": (False, False),
    "default/redis-subscriber": (True, True),
    "default/sample-function": (False, False),
    "media/image-processor": (False, False),
    "shop/event-router": (True, True),
    "shop/order-processor": (True, True),
    "shop/sync-http-function": (False, False),
}
OFOBSERVE_SCALER_PANELS = {"ofobserve scaler: metric value and target", "Scaler panic mode"}
KEDA_PANELS = {"KEDA scaler value", "KEDA scaler active"}


def _scaling(subject: Subject) -> dict[str, list[str]]:
    """Scaling-row panel titles, each with its legends."""
    row = next(r for r in function_dashboard(subject).rows if r.title == "Scaling")
    return {p.title: [q.legend for q in p.queries] for p in row.panels}


def _expected_scaling(ours: bool, keda: bool) -> dict[str, list[str]]:
    want = {"Replicas": ["desired (ofobserve scaler)"] * ours + ["available"]}
    if keda:
        want["Replicas"] += ["desired (HPA)", "min", "max"]
        want |= {title: [] for title in KEDA_PANELS}
    if ours:
        want |= {title: [] for title in OFOBSERVE_SCALER_PANELS}
    if ours or keda:
        want["Scaler errors"] = ["KEDA {{scaledObject}}"] * keda + ["ofobserve {{source}}"] * ours
    return want


def _shape(found: dict[str, list[str]]) -> dict[str, list[str]]:
    """Legends of the panels whose legends the test checks, titles of the others."""
    return {
        t: (legends if t in ("Replicas", "Scaler errors") else []) for t, legends in found.items()
    }


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda s: s.function.qualified_name)
def test_scaling_panels_only_where_that_autoscaler_runs(subject: Subject) -> None:
    """No HPA, KEDA or ofobserve-scaler panel for a Knative function; KEDA's but not the
    ofobserve scaler's for keda-http; all of them for a wired async function; none for a
    cron function without a ScaledObject."""
    ours, keda = AUTOSCALERS[subject.function.qualified_name]
    assert (why_not_wired(subject) is None) is ours  # the brief's predicate agrees
    assert _shape(_scaling(subject)) == _expected_scaling(ours, keda)


def test_an_unwired_async_function_keeps_the_panels_of_its_own_scaled_object() -> None:
    """Its own KEDA trigger, but ``scaling.delivery: scaled-object`` without --from-cluster:
    OpenFunction's ScaledObject and HPA scale it, the ofobserve scaler does not."""
    subject = next(s for s in SUBJECTS if s.function.qualified_name == "shop/order-processor")
    scaling = subject.settings.scaling.model_copy(update={"delivery": "scaled-object"})
    unwired = Subject(subject.function, subject.settings.model_copy(update={"scaling": scaling}))
    assert why_not_wired(unwired) is not None
    assert _shape(_scaling(unwired)) == _expected_scaling(ours=False, keda=True)


def test_the_overview_hides_the_uid_column_without_excluding_it() -> None:
    """A data link can only use a field that reaches the panel: the uid column is hidden by
    a field override (``custom.hidden``, the table panel's "Hide in table"), not removed by
    the organize transformation."""
    table = next(p for p in panels(DASHBOARDS[c.OVERVIEW_DASHBOARD_UID]) if p["type"] == "table")
    for transformation in table["transformations"]:
        excluded = transformation.get("options", {}).get("excludeByName", {})
        assert not excluded.get(c.DASHBOARD_UID_LABEL), transformation
    hidden = [
        o["properties"]
        for o in table["fieldConfig"]["overrides"]
        if o["matcher"] == {"id": "byName", "options": c.DASHBOARD_UID_LABEL}
    ]
    assert hidden == [[{"id": "custom.hidden", "value": True}]]


def test_every_value_column_of_the_overview_is_named_or_excluded() -> None:
    """Merged, each instant query's value is a field ``Value #<refId>``: every one is a
    named column or excluded, so no raw ``Value #F`` (the uid info query's constant 1)
    shows in the table."""
    table = next(p for p in panels(DASHBOARDS[c.OVERVIEW_DASHBOARD_UID]) if p["type"] == "table")
    named = {
        o["matcher"]["options"]
        for o in table["fieldConfig"]["overrides"]
        if any(prop["id"] == "displayName" for prop in o["properties"])
    }
    excluded = {
        name
        for t in table["transformations"]
        for name, gone in t.get("options", {}).get("excludeByName", {}).items()
        if gone
    }
    values = {f"Value #{t['refId']}" for t in table["targets"]}
    assert INFO_VALUE_FIELD == "Value #F"
    assert values - named == {INFO_VALUE_FIELD}
    assert INFO_VALUE_FIELD in excluded
    assert not named & excluded


def test_the_fleet_dashboards_render_writes_are_the_tested_ones() -> None:
    from ofobserve.builders.fleet_dashboards import build_overview_file

    json_delivery = FLEET.model_copy(
        update={"grafana": FLEET.grafana.model_copy(update={"delivery": "json"})}
    )
    assert build_overview_file(SUBJECTS, json_delivery) == overview_json(json_delivery)
    assert overview_json(FLEET) != build_dashboard_json(overview(FLEET))  # the exclusion


def _keda_http(refs: ClusterRefs) -> Subject:
    subject = next(s for s in SUBJECTS if s.profile == c.PROFILE_KEDA_HTTP)
    return Subject(dataclasses.replace(subject.function, refs=refs), subject.settings)


def test_keda_panels_leave_a_keda_http_function_without_an_http_scaled_object() -> None:
    """OpenFunction makes the HTTPScaledObject only with scaleOptions.keda (kedahttp
    servingrun.go createScaler): read from the cluster without one, nothing scales the
    function, and no HPA or KEDA panel is left that could only be empty."""
    without = _keda_http(ClusterRefs(serving="serving-abcde", workload="serving-abcde-dep"))
    assert _shape(_scaling(without)) == _expected_scaling(ours=False, keda=False)
    scaled = _keda_http(
        ClusterRefs(serving="serving-abcde", http_scaled_object="serving-abcde-scaler-fghij")
    )
    assert _shape(_scaling(scaled)) == _expected_scaling(ours=False, keda=True)


def test_the_keda_http_instance_variable_reads_the_interceptor_series() -> None:
    """The interceptor's own ``up`` has neither the function's namespace nor ``function``."""
    for subject in SUBJECTS:
        f = subject.function
        [variable] = function_dashboard(subject).variables
        if subject.profile == c.PROFILE_KEDA_HTTP:
            assert variable.query.startswith("label_values(interceptor_request_count_total{")
        else:
            assert variable.query.startswith("label_values(up{"), f.qualified_name


def test_knative_queue_depth_panels_say_why_they_can_be_empty() -> None:
    for subject in SUBJECTS:
        row = next(
            (r for r in function_dashboard(subject).rows if r.title.startswith("Concurrency")),
            None,
        )
        if row is None:
            continue
        for panel in row.panels:
            noted = "containerConcurrency is 1 or more" in panel.description
            assert noted is (subject.profile == c.PROFILE_KNATIVE), panel.title


def test_a_link_to_an_excluded_field_is_caught() -> None:
    dashboard = copy.deepcopy(DASHBOARDS[c.OVERVIEW_DASHBOARD_UID])
    table = next(p for p in panels(dashboard) if p["type"] == "table")
    table["transformations"].append(
        {"id": "organize", "options": {"excludeByName": {c.DASHBOARD_UID_LABEL: True}}}
    )
    problems = lint(dashboard)
    assert problems
    assert all("link-field-rule" in p and "dashboard_uid" in p for p in problems), problems


# --- every query against the real Prometheus ------------------------------------------------------


@pytest.fixture(scope="module")
def fleet(
    prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """Every example function's profile series; the fleet exporters, with kube-state-metrics
    scraped twice (two instances, as in an HA pair or during a rollout: every query must
    reduce them before a join); the keda-http functions' series as their PodMonitor makes
    them: the shared interceptor is the target (its ``up`` carries the interceptor's
    namespace and no ``function``), and only its series get the function's identity."""
    workdir = tmp_path_factory.mktemp("dashboards")
    clock = Clock()
    exporters, jobs, rule_files = Exporters(), [], []
    for i, subject in enumerate(SUBJECTS):
        registry = CollectorRegistry()
        f = subject.function
        target = {"namespace": f.namespace, "function": f.name}
        families = profile_families(subject, clock)
        if subject.profile == c.PROFILE_KEDA_HTTP:
            families = [_with_labels(family, target) for family in families]
            target = {"namespace": subject.settings.monitoring.keda_http_namespace}
        registry.register(StaticFamilies(families))
        jobs.append(
            {
                "job_name": f"fn-{i}",
                "honor_labels": subject.profile == c.PROFILE_KEDA_HTTP,
                "static_configs": [{"targets": [exporters.serve(registry)], "labels": target}],
            }
        )
        path = workdir / f"{f.namespace}-{f.name}.yaml"
        path.write_text(yaml.safe_dump({"groups": build_rule_groups(subject)}))
        rule_files.append(str(path))
    fleet_rules = workdir / "fleet.yaml"
    fleet_rules.write_text(
        yaml.safe_dump({"groups": list(build_fleet_rule_groups(SUBJECTS).values())})
    )
    rule_files.append(str(fleet_rules))
    registry = CollectorRegistry()
    registry.register(StaticFamilies(fleet_families(SUBJECTS, clock)))
    jobs.append(
        {
            "job_name": "fleet",
            "honor_labels": True,
            "static_configs": [{"targets": [exporters.serve(registry)]}],
        }
    )
    second = CollectorRegistry()
    second.register(StaticFamilies(kube_state_families(SUBJECTS, clock)))
    jobs.append(
        {
            "job_name": "kube-state-metrics-b",
            "honor_labels": True,
            "static_configs": [{"targets": [exporters.serve(second)]}],
        }
    )
    prometheus.configure(jobs, rule_files)
    try:
        prometheus.wait_for(f"count(count_over_time(up[30s]) >= 12) == {len(jobs)}", timeout=60)
        prometheus.wait_for(
            f"count({c.SLO_CURRENT_BURN_RATE}) >= {len(SUBJECTS)}",
            timeout=30,
        )
        yield prometheus
    finally:
        exporters.close()
        prometheus.configure([])


def _with_labels(family: Family, labels: dict[str, str]) -> Family:
    """``family`` with ``labels`` on every sample (what a metric relabelling adds)."""
    return Family(
        family.name, family.type, [(n, {**lab, **labels}, v) for n, lab, v in family.samples]
    )


def test_the_fixture_feeds_every_keda_generation() -> None:
    """The KEDA error panels are proven against each generation of KEDA's counter."""
    scaled = {name for name, (_ours, keda) in AUTOSCALERS.items() if keda}
    # fleet_families gives KEDA objects to every function that is not a Knative one
    with_objects = [
        s.function.qualified_name for s in SUBJECTS if s.function.runtime is not Runtime.KNATIVE
    ]
    assert scaled <= set(with_objects)
    found = {keda_generation(i) for i, name in enumerate(with_objects) if name in scaled}
    assert found == set(KEDA_GENERATIONS)


@pytest.mark.prometheus
@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_every_query_returns_data(fleet: PrometheusServer, uid: str) -> None:
    empty = []
    for panel in panels(DASHBOARDS[uid]):
        for target in panel["targets"]:
            result = fleet.query(substitute(target["expr"]))  # raises on a parse error
            if not result and (uid, panel["title"]) not in ALLOWED_EMPTY:
                empty.append(f"{panel['title']} [{target['refId']}]: {target['expr']}")
    assert empty == []


@pytest.mark.prometheus
@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_every_variable_query_finds_values(fleet: PrometheusServer, uid: str) -> None:
    for variable in DASHBOARDS[uid]["templating"]["list"][1:]:
        found = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"])
        assert found, variable["query"]
        series = fleet.query(substitute(found.group(1)))
        values = {s["metric"].get(found.group(2)) for s in series} - {None}
        assert values, variable["query"]


def test_the_queries_select_only_their_function() -> None:
    """A function's dashboard names no other function: its raw series select it exactly."""
    for subject in SUBJECTS:
        f = subject.function
        dashboard = DASHBOARDS[c.dashboard_uid(f.namespace, f.name)]
        for panel in panels(dashboard):
            for target in panel["targets"]:
                names = set(re.findall(r'function="([^"]*)"', target["expr"]))
                assert names <= {f.name}, (panel["title"], names)


# --- delivery forms -------------------------------------------------------------------------------


def _with_delivery(subject: Subject, delivery: str, namespace: str = "") -> Subject:
    grafana = subject.settings.grafana.model_copy(
        update={"delivery": delivery, "namespace": namespace}
    )
    return Subject(subject.function, subject.settings.model_copy(update={"grafana": grafana}))


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda s: s.function.qualified_name)
def test_the_three_delivery_forms_carry_the_same_dashboard(
    subject: Subject, validate_cr: Any
) -> None:
    f = subject.function
    as_json = build_dashboard_file(_with_delivery(subject, "json"))
    assert as_json is not None
    assert build_dashboard_resource(_with_delivery(subject, "json")) is None
    text = json.dumps(as_json)
    assert json.loads(text) == as_json

    configmap = build_dashboard_resource(_with_delivery(subject, "configmap"))
    assert configmap is not None
    assert build_dashboard_file(_with_delivery(subject, "configmap")) is None
    assert configmap["metadata"]["labels"][c.GRAFANA_SIDECAR_LABEL] == "1"
    assert configmap["metadata"]["annotations"] == {c.GRAFANA_FOLDER_ANNOTATION: "OpenFunction"}
    assert configmap["metadata"]["namespace"] == f.namespace
    [(key, data)] = configmap["data"].items()
    assert key == f"{f.namespace}.{f.name}.json"
    assert re.fullmatch(r"[-._a-zA-Z0-9]+", key)
    assert json.loads(data) == as_json

    operator = build_dashboard_resource(_with_delivery(subject, "grafana-operator", "grafana"))
    assert operator is not None
    validate_cr(operator)  # type: ignore[operator]
    assert operator["metadata"]["namespace"] == "grafana"
    assert json.loads(operator["spec"]["json"]) == as_json
    assert operator["spec"]["uid"] == as_json["uid"]
    selector = dict(subject.settings.grafana.instance_selector)
    assert operator["spec"]["instanceSelector"] == {"matchLabels": selector}


def test_the_committed_grafana_dashboards_validate(validate_cr: Any) -> None:
    root = Path(__file__).resolve().parents[1] / "dashboards"
    found = 0
    for path in sorted(root.rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc["kind"] == "GrafanaDashboard":
            validate_cr(doc)  # type: ignore[operator]
            found += 1
        text = doc["spec"]["json"] if doc["kind"] == "GrafanaDashboard" else None
        if doc["kind"] == "ConfigMap":
            [text] = doc["data"].values()
        assert text is not None
        assert lint(json.loads(text)) == [], path
    assert found >= 1


def test_dashboard_text_is_stable() -> None:
    dashboard = DASHBOARDS[c.OVERVIEW_DASHBOARD_UID]
    assert dashboard_text(dashboard) == dashboard_text(json.loads(dashboard_text(dashboard)))


def _panel_values(server: PrometheusServer, dashboard: dict[str, Any], title: str) -> list[float]:
    panel = next(p for p in panels(dashboard) if p["title"] == title)
    return [
        sum(float(s["value"][1]) for s in server.query(substitute(t["expr"])))
        for t in panel["targets"]
    ]


@pytest.mark.prometheus
@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda s: s.function.qualified_name)
def test_the_panels_show_the_fixture_traffic(fleet: PrometheusServer, subject: Subject) -> None:
    """10 requests/s, 10 % failing, 90 % under 0.5 s; 2 replicas available of 3; two pods
    using 0.25 cores and 128 MiB each, requesting 0.5 cores and 256 MiB."""
    f = subject.function
    dashboard = DASHBOARDS[c.dashboard_uid(f.namespace, f.name)]

    def values(title: str) -> list[float]:
        return _panel_values(fleet, dashboard, title)

    traffic = next(p["title"] for p in panels(dashboard) if p["title"].startswith(("Req", "Ev")))
    assert values(traffic)[0] == pytest.approx(10, rel=0.2)
    assert values("Error ratio") == [pytest.approx(0.1, rel=0.2)]
    p50, _p90, p95, _p99 = values("Latency percentiles")
    assert p50 <= 0.5
    assert 0.5 < p95 <= 1.0
    # the scaler wants 3 where it scales the function; 2 of 3 available (the dapr-proxy
    # Deployment's replica is not counted); the HPA (desired 3, min 1, max 10) where KEDA
    # scales it, found by its target, not the decoy's (7, 5, 50)
    ours, keda = AUTOSCALERS[f.qualified_name]
    expected = [3.0] if ours else []
    expected += [2.0] + ([3.0, 1.0, 10.0] if keda else [])
    assert values("Replicas") == expected
    if keda:  # OpenFunction's ScaledObject, found with no name known; not the decoy's 1000
        assert values("KEDA scaler value") == [30.0]  # nor the same name's in "elsewhere"
        assert values("KEDA scaler active") == [1.0]
        assert values("Scaler errors")[0] == pytest.approx(0.1, rel=0.3)
    cpu_used, cpu_requests, cpu_limits = values("CPU")
    assert (cpu_used, cpu_requests, cpu_limits) == (pytest.approx(0.5, rel=0.2), 1.0, 2.0)
    assert values("Memory") == [2 * 2**27, 2 * 2**28, 4 * 2**28]
    [remaining] = values("Error budget remaining")[:1]
    assert remaining < 1  # 10 % failing spends budget fast


def test_the_generated_docs_are_current() -> None:
    """docs/dashboards.md, docs/alerts.md and the README table match the builders."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, str(root / "scripts" / "generate_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr

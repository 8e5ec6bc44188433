"""The PrometheusRules: promtool check and the generated promtool unit tests on the committed
output, CRD validation, the recording rules evaluated by the real Prometheus, label safety."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from ofobserve import conventions as c
from ofobserve.alerts import runbook_markdown
from ofobserve.builders.rules import (
    alert_names,
    build_fleet_rule_groups,
    build_rule_groups,
    common_name,
    family,
    has_keda,
)
from ofobserve.errors import Location
from ofobserve.model import ClusterRefs, DaprIO, Function, Runtime
from ofobserve.settings import Settings
from ofobserve.subject import Subject
from tests.support.exporters import Clock, Exporters, Family, StaticFamilies
from tests.support.prometheus import PrometheusServer
from tests.support.tools import REPO
from tests.test_profiles import SCENARIOS

RULES = REPO / "rules"


def _rule_files(root: Path) -> list[Path]:
    """Every function's rule file and the fleet's."""
    return sorted(p for p in root.rglob("*.yaml") if "tests" not in p.relative_to(root).parts)


def _function_rule_files(root: Path) -> list[Path]:
    return [p for p in _rule_files(root) if c.FLEET_RULES_FOLDER not in p.relative_to(root).parts]


def _plain_tree(root: Path, into: Path) -> Path:
    """Copy ``rules/`` with each PrometheusRule replaced by its ``spec`` (what promtool reads)."""
    for path in root.rglob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        if doc.get("kind") == "PrometheusRule":
            doc = doc["spec"]
        out = into / path.relative_to(root)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(doc))
    return into


def test_every_committed_rule_file_passes_promtool_check(promtool: str, tmp_path: Path) -> None:
    plain = _plain_tree(RULES, tmp_path)
    files = _rule_files(plain)
    assert len(_function_rule_files(plain)) == 12
    assert len(files) == 12 + 7  # six profile families and what they share
    result = subprocess.run(
        [promtool, "check", "rules", *map(str, files)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _fleet_alerts(names: list[str]) -> set[str]:
    return {
        r["alert"]
        for name in names
        for g in yaml.safe_load((RULES / name).read_text())["spec"]["groups"]
        for r in g["rules"]
        if "alert" in r
    }


def test_every_example_function_has_unit_tests_for_every_alert() -> None:
    """Every alert a function's constant series enable, which the fleet files its tests
    load define, fires in one case and stays silent in another."""
    for rule_file in _function_rule_files(RULES):
        rel = rule_file.relative_to(RULES)
        tests = yaml.safe_load((RULES / "tests" / rel).read_text())
        alerts = {
            r["labels"][c.ALERT_NAME_LABEL]
            for g in yaml.safe_load(rule_file.read_text())["spec"]["groups"]
            for r in g["rules"]
            if r["record"] == c.RECORD_ALERT_THRESHOLD
        }
        loaded = [f.removeprefix("../../") for f in tests["rule_files"]]
        assert loaded[-1] == rel.as_posix()
        assert alerts <= _fleet_alerts(loaded[:-1]), rel
        assert len(alerts) >= 6, rel
        fired = {
            check["alertname"]
            for t in tests["tests"]
            for check in t["alert_rule_test"]
            if check["exp_alerts"]
        }
        silent = {
            check["alertname"]
            for t in tests["tests"]
            for check in t["alert_rule_test"]
            if not check["exp_alerts"]
        }
        assert fired == alerts, f"{rel}: no firing case for {alerts - fired}"
        assert silent == alerts, f"{rel}: no silent case for {alerts - silent}"
        names = " ".join(t["name"] for t in tests["tests"])
        assert "low traffic" in names
        assert "scaled to zero" in names


def _split_tests(plain: Path) -> list[Path]:
    return sorted((plain / "tests").rglob("*.yaml"))


def test_the_generated_promtool_unit_tests_pass(promtool: str, tmp_path: Path) -> None:
    plain = _plain_tree(RULES, tmp_path)
    files = _split_tests(plain)
    assert len(files) == 12
    # two processes: the suite's machine has two cores
    half = len(files) // 2
    procs = [
        subprocess.Popen(
            [promtool, "test", "rules", *map(str, chunk)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=plain,
        )
        for chunk in (files[:half], files[half:])
    ]
    for proc, chunk in zip(procs, (files[:half], files[half:]), strict=True):
        out, _ = proc.communicate()
        assert proc.returncode == 0, out
        assert out.count("SUCCESS") == len(chunk)


def test_a_wrong_expectation_makes_promtool_fail(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: flip one expected severity and promtool must object."""
    plain = _plain_tree(RULES, tmp_path)
    path = plain / "tests" / "shop" / "sync-http-function.yaml"
    doc = yaml.safe_load(path.read_text())
    for test in doc["tests"]:
        for check in test["alert_rule_test"]:
            for alert in check["exp_alerts"]:
                alert["exp_labels"]["severity"] = "info"
    path.write_text(yaml.safe_dump(doc))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, cwd=plain
    )
    assert result.returncode != 0
    assert 'severity="info"' in result.stdout + result.stderr


def test_every_prometheus_rule_validates_against_its_crd(validate_cr: Any) -> None:
    for path in _rule_files(RULES):
        doc = yaml.safe_load(path.read_text())
        assert doc["kind"] == "PrometheusRule"
        assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        validate_cr(doc)


def test_runbooks_are_generated_from_the_catalogue() -> None:
    assert (REPO / "docs" / "alerts.md").read_text() == runbook_markdown(), "run ./dev examples"


# --- the recording rules in the real Prometheus ----------------------------------------------


PROFILE_DAPR_CASE = "dapr"


def _subject(case: str, label: str = "") -> Subject:
    """The function of a profile scenario, its series told apart by ``case=<label>`` (by
    default the scenario's name)."""
    scenario = next(s for s in SCENARIOS if s.name == case)
    profile = scenario.profile.name
    runtime = Runtime.ASYNC if profile == c.PROFILE_DAPR else Runtime.KNATIVE
    inputs = (
        (DaprIO("in", "c", "bindings.kafka"), DaprIO("orders", "p", "pubsub.redis", "orders"))
        if profile == c.PROFILE_DAPR
        else ()
    )
    function = Function(
        namespace="shop",
        name="fn",
        api_version="core.openfunction.io/v1beta2",
        runtime=runtime,
        source=Location("test.yaml", 0),
        inputs=inputs,
    )
    settings = Settings.model_validate(
        {
            "profile": profile,
            "knativeMetrics": "otel" if case == "knative-otel" else "opencensus",
            "monitoring": {"extraMatchers": {"case": label or case}},
        }
    )
    return Subject(function, settings)


OWN_DEPLOYMENT = "serving-x-deployment-v1-abcde"
PROXY_DEPLOYMENT = "serving-x-proxy-deployment-v1-fghij"  # CreateDaprProxy's name
SCALED_OBJECT = "serving-x-scaler-klmno"  # OpenFunction's generated name
DECOY_SCALED_OBJECT = "serving-y-scaler-zzzzz"  # another function's, same namespace
#: kube-state-metrics >= 2.3.0 (kubernetes/kube-state-metrics
#: ``internal/store/horizontalpodautoscaler.go``): one series per HPA, naming its target.
KSM_HPA_INFO = "kube_horizontalpodautoscaler_info"


def _kube_state(clock: Clock) -> list[Family]:
    """kube-state-metrics as OpenFunction's objects make it: the function's Deployment; the
    dapr-proxy Deployment with the same label (OpenFunction copies spec.serving.labels onto
    it); KEDA's HPA of the function, of another function's Deployment and one of the
    proxy."""
    owned = {"namespace": "shop", "deployment": OWN_DEPLOYMENT}
    proxy = {"namespace": "shop", "deployment": PROXY_DEPLOYMENT}
    other = {"namespace": "shop", "deployment": "serving-y-deployment-v1-yyyyy"}
    labels = Family(c.KSM_DEPLOYMENT_LABELS, "gauge")
    for deployment, function in ((owned, "fn"), (proxy, "fn"), (other, "other-fn")):
        labels.add({**deployment, c.KSM_FUNCTION_LABEL: function}, 1)
    hpa = Family(KSM_HPA_INFO, "gauge")
    for name, target in (
        (SCALED_OBJECT, owned),
        (DECOY_SCALED_OBJECT, other),
        ("serving-x-proxy-scaler-ppppp", proxy),
    ):
        hpa.add(
            {
                "namespace": "shop",
                c.KSM_HPA_LABEL: c.keda_hpa_name(name),
                "scaletargetref_api_version": "apps/v1",
                "scaletargetref_kind": "Deployment",
                "scaletargetref_name": target["deployment"],
            },
            1,
        )
    del clock
    return [
        labels,
        hpa,
        Family(c.KSM_DEPLOYMENT_SPEC_REPLICAS, "gauge").add(owned, 3).add(proxy, 1),
        Family(c.KSM_DEPLOYMENT_AVAILABLE, "gauge").add(owned, 2).add(proxy, 1),
        Family(c.KSM_DEPLOYMENT_UNAVAILABLE, "gauge").add(owned, 1).add(proxy, 1),
    ]


#: KEDA's per-scaler error counters by release (kedacore/keda ``pkg/prommetrics/
#: prommetrics.go`` up to 2.11, ``pkg/metricscollector/prommetrics.go`` since): 2.10-2.13
#: only ``keda_scaler_errors`` (index label ``scalerIndex``), 2.14-2.16 that and
#: ``keda_scaler_detail_errors_total`` with the same labels, 2.17 on only the latter.
KEDA_COUNTERS = {
    "2.10": ((c.KEDA_SCALER_ERRORS_LEGACY, "", "scalerIndex"),),
    "2.14": (
        (c.KEDA_SCALER_ERRORS_LEGACY, "", "triggerIndex"),
        (c.KEDA_SCALER_ERRORS.removesuffix("_total"), "_total", "triggerIndex"),
    ),
}


def _keda(clock: Clock, release: str) -> list[Family]:
    """KEDA's errors of the function's ScaledObject (0.1/s), of another function's (5/s)
    and of one of the same name in another namespace (7/s), as ``release`` exports them."""
    families = []
    for name, suffix, index in KEDA_COUNTERS[release]:
        errors = Family(name, "counter")
        for namespace, scaled_object, rate in (
            ("shop", SCALED_OBJECT, 0.1),
            ("shop", DECOY_SCALED_OBJECT, 5),
            ("elsewhere", SCALED_OBJECT, 7),
        ):
            keda = {
                "namespace": "keda",  # the operator's own: its target's namespace
                c.KEDA_NAMESPACE_LABEL: namespace,
                c.KEDA_SCALED_OBJECT_LABEL: scaled_object,
                "scaler": "kafkaScaler",
                index: "0",
                "metric": "s0-kafka-orders",
            }
            if index == "triggerIndex":
                keda["type"] = "scaledobject"
            errors.add(keda, clock.counter(rate), suffix)
        families.append(errors)
    return families


#: A case beyond the profiles' scenarios: the dapr function again, its KEDA at 2.10 (what
#: OpenFunction pins), which exports only ``keda_scaler_errors``.
KEDA_210 = "keda-2.10"
CASES = [*(s.name for s in SCENARIOS), KEDA_210]


@pytest.fixture(scope="module")
def recorded(
    prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PrometheusServer, dict[str, list[dict[str, Any]]]]]:
    """Every profile's exporter (plus kube-state-metrics and KEDA 2.14 series) scraped as its
    own job with a ``case`` label, and every profile's rules loaded, told apart by that
    extra matcher; the ``keda-2.10`` case is the dapr one with KEDA 2.10's counter. Every
    case's kube-state-metrics series are scraped a second time, as a second instance
    exports them (HA, or during a rollout)."""
    workdir = tmp_path_factory.mktemp("rules")
    clock = Clock()
    exporters, jobs, rule_files, groups = Exporters(), [], [], {}
    subjects: dict[str, Subject] = {}
    collectors = []
    for case in CASES:
        profile_case = PROFILE_DAPR_CASE if case == KEDA_210 else case
        scenario = next(s for s in SCENARIOS if s.name == profile_case)
        release = "2.10" if case == KEDA_210 else "2.14"
        for job, families in (
            (case, scenario.families(clock) + _kube_state(clock) + _keda(clock, release)),
            (f"{case}-ksm-b", _kube_state(clock)),
        ):
            registry = CollectorRegistry()
            collectors.append(StaticFamilies(families))
            registry.register(collectors[-1])
            address = exporters.serve(registry)
            jobs.append(
                {
                    "job_name": job,
                    "honor_labels": True,
                    "static_configs": [{"targets": [address], "labels": {"case": case}}],
                }
            )
        subjects[case] = _subject(scenario.name, case)
        groups[case] = build_rule_groups(subjects[case])
        path = workdir / f"{case}.yaml"
        path.write_text(yaml.safe_dump({"groups": groups[case]}))
        rule_files.append(str(path))
    fleet = build_fleet_rule_groups(list(subjects.values()))
    for case, subject in subjects.items():  # the fleet groups the case's function is in
        groups[case] = [*groups[case], fleet[family(subject)], fleet[common_name("-by-case")]]
    path = workdir / "fleet.yaml"
    path.write_text(yaml.safe_dump({"groups": list(fleet.values())}))
    rule_files.append(str(path))
    prometheus.configure(jobs, rule_files)
    try:
        for job in jobs:
            prometheus.wait_for(f'count_over_time(up{{job="{job["job_name"]}"}}[30s]) >= 7')
        yield prometheus, groups
    finally:
        _go_stale(prometheus, collectors)
        exporters.close()
        prometheus.configure([])


def _go_stale(prometheus: PrometheusServer, collectors: list[StaticFamilies]) -> None:
    """Empty the exporters and wait for a scrape of each: Prometheus then marks every series
    they served stale. Removing a job from the configuration does not, and tests/
    test_profiles.py, later on the same Prometheus, reads the very same ``namespace="shop",
    function="fn"`` gauges: an unmarked one would count for 5 minutes more."""
    for collector in collectors:
        collector.families = []
    jobs = "|".join(CASES)
    selector = f'{{job=~"({jobs})(-ksm-b)?",__name__!="up",__name__!~"scrape_.+"}}'
    deadline = time.monotonic() + 15
    while prometheus.query(f"count({selector})") and time.monotonic() < deadline:
        time.sleep(0.25)


@pytest.mark.parametrize("case", [s.name for s in SCENARIOS])
def test_every_recording_rule_records_with_its_labels(
    recorded: tuple[PrometheusServer, dict[str, list[dict[str, Any]]]], case: str
) -> None:
    server, groups = recorded
    identity = {"namespace": "shop", "function": "fn", "case": case}
    for group in groups[case]:
        for rule in group["rules"]:
            if "record" not in rule:
                continue
            if rule["record"] == c.RECORD_KEDA_SCALER_INFO and not has_keda(_subject(case)):
                continue  # no KEDA scales it (test_keda_series_are_found...)
            want = {**identity, **rule.get("labels", {})}
            selector = ",".join(f'{k}="{v}"' for k, v in sorted(want.items()))
            result = server.wait_for(f'{{__name__="{rule["record"]}",{selector}}}', timeout=20)
            assert result, f"{case}: {rule['record']} {want} never recorded"
            if rule["record"] == c.RECORD_BUCKET_RATE:  # one per bucket, "1.0" read as "1"
                les = [r["metric"]["le"] for r in result]
                assert len(set(les)) == len(les) > 5, les
                assert not [le for le in les if le.endswith(".0")], les
                continue
            if rule["record"].startswith("slo:"):  # Sloth's labels, made by the fleet rules
                for series in result:
                    slo_name = series["metric"][c.SLOTH_SLO]
                    assert series["metric"][c.SLOTH_SERVICE] == "shop/fn"
                    assert series["metric"][c.SLOTH_ID] == f"shop/fn-{slo_name}"
                if c.SLOTH_SLO not in want:  # one rule for both SLOs
                    slos = sorted(r["metric"][c.SLOTH_SLO] for r in result)
                    assert slos == [c.SLO_AVAILABILITY, c.SLO_LATENCY], result
                    continue
            assert len(result) == 1, result
            labels = result[0]["metric"]
            assert {k: labels.get(k) for k in want} == want


def test_recorded_values_follow_the_traffic(
    recorded: tuple[PrometheusServer, dict[str, list[dict[str, Any]]]],
) -> None:
    """Scenario traffic: 10 % of requests fail, 10 % slower than 0.5 s; 3 replicas, 1 down."""
    server, _ = recorded
    sel = 'namespace="shop",function="fn",case="ofobserve"'

    def value(expr: str) -> float:
        return float(server.wait_for(expr)[0]["value"][1])

    assert value(f"{c.record_error_ratio('5m')}{{{sel}}}") == pytest.approx(0.1, rel=0.2)
    sli = c.slo_sli_error("5m")
    assert value(f'{sli}{{{sel},sloth_slo="availability"}}') == pytest.approx(0.1, rel=0.2)
    assert value(f'{sli}{{{sel},sloth_slo="latency"}}') == pytest.approx(0.1, rel=0.2)
    assert value(f"{c.RECORD_REPLICAS_DESIRED}{{{sel}}}") == 3
    assert value(f"{c.RECORD_REPLICAS_UNAVAILABLE}{{{sel}}}") == 1
    budget = value(f'{c.SLO_ERROR_BUDGET}{{{sel},sloth_slo="availability"}}')
    assert budget == pytest.approx(0.005)
    burn = value(f'{c.SLO_CURRENT_BURN_RATE}{{{sel},sloth_slo="availability"}}')
    assert burn == pytest.approx(0.1 / 0.005, rel=0.2)


# --- labels are safe ----------------------------------------------------------------------------


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=20))
def test_no_extra_matcher_value_can_alter_an_expression(
    promtool: str, tmp_path: Path, value: str
) -> None:
    """Quotes, backslashes, braces, newlines: promtool parses every generated expression, and
    the value reads back as the one label value of the recorded series."""
    subject = _subject("ofobserve")
    settings = subject.settings.model_copy(
        update={
            "monitoring": subject.settings.monitoring.model_copy(
                update={"extra_matchers": {"cluster": value}}
            )
        }
    )
    weird = Subject(subject.function, settings)
    groups = build_rule_groups(weird)
    fleet = list(build_fleet_rule_groups([weird]).values())
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups + fleet}, allow_unicode=True))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, f"{value!r}: {result.stdout}{result.stderr}"
    for group in groups:
        for rule in group["rules"]:
            if "record" in rule:
                assert rule["labels"]["cluster"] == value


def test_replicas_leave_the_dapr_proxy_out(
    recorded: tuple[PrometheusServer, dict[str, list[dict[str, Any]]]],
) -> None:
    """The dapr-proxy Deployment carries the function's label: counted, every replica
    figure would be one too high and FunctionAtMaxReplicas would fire one replica early."""
    server, _groups = recorded
    for record, want in (
        (c.RECORD_REPLICAS_DESIRED, 3),
        (c.RECORD_REPLICAS_AVAILABLE, 2),
        (c.RECORD_REPLICAS_UNAVAILABLE, 1),
    ):
        [series] = server.wait_for(f'{record}{{case="dapr"}}', timeout=20)
        assert float(series["value"][1]) == want, record


def test_keda_series_are_found_without_the_generated_names(
    recorded: tuple[PrometheusServer, dict[str, list[dict[str, Any]]]],
) -> None:
    """The function's HPA and ScaledObject come from what kube-state-metrics exports (the
    HPA's target), not from a name ofobserve would have to guess: exactly the function's
    own, not another function's, not the proxy's."""
    server, _groups = recorded
    info = "namespace_function:keda_scaler:info"  # documented in docs/metrics.md
    [series] = server.wait_for(f'{info}{{case="dapr"}}', timeout=20)
    assert series["metric"] == {
        "__name__": info,
        "namespace": "shop",
        "function": "fn",
        "case": "dapr",
        c.KSM_HPA_LABEL: c.keda_hpa_name(SCALED_OBJECT),
        c.KEDA_SCALED_OBJECT_LABEL: SCALED_OBJECT,
        c.KEDA_NAMESPACE_LABEL: "shop",
    }
    assert server.query(f'{info}{{case="knative-opencensus"}}') == []  # not rendered
    assert (info, KSM_HPA_INFO) == (c.RECORD_KEDA_SCALER_INFO, c.KSM_HPA_INFO)


@pytest.mark.parametrize(("case", "counter"), [
    ("dapr", c.KEDA_SCALER_ERRORS),  # KEDA 2.14-2.16: both counters, counted once
    (KEDA_210, c.KEDA_SCALER_ERRORS_LEGACY),  # KEDA 2.10-2.13: only keda_scaler_errors
])  # fmt: skip
def test_scaler_errors_read_keda_through_the_hpa_target(
    recorded: tuple[PrometheusServer, dict[str, list[dict[str, Any]]]], case: str, counter: str
) -> None:
    """FunctionScalerErrors' expression, run by Prometheus: KEDA's errors of the function's
    ScaledObject only (0.1/s), not the other function's (5/s) nor those of a ScaledObject of
    the same name in another namespace (7/s), in either generation of KEDA's counter, and
    not twice where a release exports both. There is no ofobserve scaler sample here, so
    only the ``keda`` reason can be present."""
    server, groups = recorded
    [alert] = [
        r for g in groups[case] for r in g["rules"] if r.get("alert") == "FunctionScalerErrors"
    ]
    assert "FunctionScalerErrors" in alert_names(_subject(PROFILE_DAPR_CASE, case))
    own = (
        f'sum(rate({counter}{{exported_namespace="shop",'
        f'scaledObject="{SCALED_OBJECT}",case="{case}"}}[5m]))'
    )
    deadline = time.monotonic() + 20
    while True:
        found = [s for s in server.query(alert["expr"]) if s["metric"].get("case") == case]
        want = server.query(own)
        if (found and want) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert [s["metric"] for s in found] == [
        {
            "namespace": "shop",
            "function": "fn",
            "case": case,
            "reason": "keda",
            "severity": "warning",
        }
    ]
    # the one counter's rate: not twice it where KEDA exports both
    assert float(found[0]["value"][1]) == pytest.approx(float(want[0]["value"][1]), rel=0.1)


def test_replica_recordings_survive_two_kube_state_metrics(
    recorded: tuple[PrometheusServer, dict[str, list[dict[str, Any]]]],
) -> None:
    """Every case's kube-state-metrics series are scraped twice (two instances): each
    replica recording is still the one Deployment's figure, and Prometheus reports no
    failed rule evaluation (a one-to-one join of unreduced sides fails with
    "many-to-many matching not allowed")."""
    server, _groups = recorded
    assert len(server.query(f'{c.KSM_DEPLOYMENT_AVAILABLE}{{case="dapr"}}')) == 4  # 2 x 2
    for record, want in (
        (c.RECORD_REPLICAS_DESIRED, 3),
        (c.RECORD_REPLICAS_AVAILABLE, 2),
        (c.RECORD_REPLICAS_UNAVAILABLE, 1),
    ):
        for case in CASES:
            [series] = server.wait_for(f'{record}{{case="{case}"}}', timeout=20)
            assert float(series["value"][1]) == want, (record, case)
    with urllib.request.urlopen(f"{server.url}/api/v1/rules", timeout=10) as response:
        rules = json.load(response)["data"]["groups"]
    errors = [
        (r.get("name"), r.get("lastError"))
        for g in rules
        for r in g["rules"]
        if r.get("health") == "err"
    ]
    assert errors == []


# --- what the rules cannot see: render says so -------------------------------------------------

UNOBSERVED = """\
apiVersion: core.openfunction.io/v1beta2
kind: Function
metadata: {name: kafka-sts, namespace: shop}
spec:
  image: example/fn:v1
  serving:
    workloadType: StatefulSet
    triggers:
      dapr: [{name: orders, type: bindings.kafka}]
---
apiVersion: core.openfunction.io/v1beta2
kind: Function
metadata: {name: http-keda, namespace: shop}
spec:
  image: example/fn:v1
  serving:
    triggers:
      http: {engine: keda, port: 8080}
---
apiVersion: core.openfunction.io/v1beta2
kind: Function
metadata: {name: http-keda-scaled, namespace: shop}
spec:
  image: example/fn:v1
  serving:
    workloadType: StatefulSet
    scaleOptions: {keda: {httpScaledObject: {targetPendingRequests: 50}}}
    triggers:
      http: {engine: keda, port: 8080}
"""


def test_render_warns_of_what_the_rules_cannot_observe(tmp_path: Path) -> None:
    """One warning line each, naming file, document and field: an async StatefulSet (the
    replica rules read Deployments only), and a KEDA-HTTP function without
    scaleOptions.keda (OpenFunction makes no HTTPScaledObject). A KEDA-HTTP function's
    workloadType is no warning: OpenFunction always makes it a Deployment."""
    from tests.conftest import run_cli

    path = tmp_path / "functions.yaml"
    path.write_text(UNOBSERVED)
    result = run_cli("render", str(path), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {path}[0] spec.serving.workloadType: a StatefulSet workload: ofobserve's "
        "replica recordings and the alerts on them (FunctionReplicasUnavailable, "
        "FunctionAtMaxReplicas, FunctionMetricsAbsent), the HPA mapping behind the KEDA panels "
        "and FunctionScalerErrors' KEDA branch, the Replicas panel and the ofobserve scaler's "
        "ready replicas read kube-state-metrics' Deployment series only, so they stay empty "
        "for this function",
        f"warning: {path}[1] spec.serving.scaleOptions.keda: missing: without it OpenFunction "
        "creates no HTTPScaledObject and no Ingress for a triggers.http.engine: keda function, "
        "so the interceptor has no route to it and KEDA never scales it; its dashboard's KEDA "
        "panels and FunctionScalerErrors' KEDA branch stay empty (render leaves them out only "
        "with --from-cluster)",
    ]


def _keda_http(refs: ClusterRefs) -> Subject:
    function = Function(
        namespace="shop",
        name="http-keda",
        api_version="core.openfunction.io/v1beta2",
        runtime=Runtime.KEDA_HTTP,
        source=Location("test.yaml", 0),
        refs=refs,
    )
    return Subject(function, Settings.model_validate({}))


def _alerts(subject: Subject) -> dict[str, str]:
    """The alerts that can fire for the function, with their fleet expressions."""
    fleet = build_fleet_rule_groups([subject])
    expressions = {
        r["alert"]: r["expr"] for g in fleet.values() for r in g["rules"] if "alert" in r
    }
    return {name: expressions[name] for name in alert_names(subject)}


def test_no_keda_alert_branch_for_a_keda_http_function_without_an_http_scaled_object() -> None:
    """Read from the cluster, a Serving whose status names no HTTPScaledObject had no
    scaleOptions.keda: nothing of KEDA's exists for it, and nothing else can make
    FunctionScalerErrors fire (the ofobserve scaler does not scale keda-http functions)."""
    scaled = _keda_http(ClusterRefs(serving="serving-ab12c", http_scaled_object="serving-ab12c-x"))
    assert "keda_scaler_errors" in _alerts(scaled)["FunctionScalerErrors"]
    unscaled = _keda_http(ClusterRefs(serving="serving-ab12c", workload="serving-ab12c-dep"))
    assert "FunctionScalerErrors" not in _alerts(unscaled)
    [info] = [
        r
        for g in build_rule_groups(unscaled)
        for r in g["rules"]
        if r["record"] == c.RECORD_FUNCTION_INFO
    ]
    assert c.KEDA_INFO_LABEL not in info["labels"]  # so no keda_scaler:info is recorded
    fleet = build_fleet_rule_groups([unscaled])
    assert all(r.get("alert") != "FunctionScalerErrors" for g in fleet.values() for r in g["rules"])

"""The fleet rules: their number does not grow with the fleet, no rule reads a raw series
over more than 5 minutes, the SLIs are traffic-weighted, and a function's own settings
reach its alerts only (promtool runs the real rules)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ofobserve import alerts as a
from ofobserve import conventions as c
from ofobserve.builders.rule_tests import _expected
from ofobserve.builders.rules import (
    RuleContext,
    build_fleet_rule_groups,
    build_rule_groups,
    burn_rate_static,
)
from ofobserve.errors import Location
from ofobserve.loading import load_subjects
from ofobserve.model import Function, Runtime
from ofobserve.settings import Settings, window_seconds
from ofobserve.slo import objectives, window_set
from ofobserve.subject import Subject
from tests.conftest import EXAMPLE_CONFIG, EXAMPLES
from tests.support.tools import REPO

EXAMPLE_SUBJECTS = load_subjects([str(EXAMPLES)], str(EXAMPLE_CONFIG))


def _fleet(subjects: list[Subject]) -> list[dict[str, Any]]:
    return list(build_fleet_rule_groups(subjects).values())


def _rules(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for g in groups for r in g["rules"]]


def _clones(bases: list[Subject], n: int) -> list[Subject]:
    """``n`` functions, the bases' kinds in turn, each under its own name."""
    out = []
    for i in range(n):
        base = bases[i % len(bases)]
        function = dataclasses.replace(base.function, name=f"{base.function.name}-{i}")
        out.append(Subject(function, base.settings))
    return out


# --- the rule count ------------------------------------------------------------------------


def test_the_rule_count_does_not_depend_on_the_number_of_functions() -> None:
    """Three kinds of function (three profile families), 3 and then 30 of them: the fleet
    rules are the very same rules, and only the constant series grow, by the same number
    per function."""
    bases = [
        next(s for s in EXAMPLE_SUBJECTS if s.function.name == name)
        for name in ("sync-http-function", "order-processor", "keda-http-function")
    ]
    few, many = _clones(bases, 3), _clones(bases, 30)
    assert _fleet(few) == _fleet(many)
    assert len(_rules(_fleet(many))) > 50
    text = yaml.safe_dump(_fleet(many))
    assert not [s.function.name for s in many if s.function.name in text]  # nobody by name
    per_function = [len(_rules(build_rule_groups(s))) for s in bases]
    assert sum(len(_rules(build_rule_groups(s))) for s in few) == sum(per_function)
    assert sum(len(_rules(build_rule_groups(s))) for s in many) == 10 * sum(per_function)
    # and every rule there is a constant
    for subject in many:
        for rule in _rules(build_rule_groups(subject)):
            assert re.fullmatch(r"vector\([0-9.]+\)", rule["expr"]), rule


# --- no long range over raw series ---------------------------------------------------------

RANGE = re.compile(
    r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(?:[^{}\"]|\"(?:[^\"\\]|\\.)*\")*\})?"
    r"\s*\[(?P<range>[0-9]+[smhd])(?::[0-9]+[smhd])?\]"
)


def _seconds(duration: str) -> int:
    if duration.endswith("s"):
        return int(duration[:-1])
    return window_seconds(duration)


def long_raw_ranges(expr: str) -> list[str]:
    """Range selectors over more than 5 minutes on a raw (not recorded: no ``:``) series."""
    return [
        m.group(0)
        for m in RANGE.finditer(expr)
        if ":" not in m.group("name") and _seconds(m.group("range")) > 300
    ]


def test_the_check_finds_a_long_range_over_raw_series() -> None:
    """The check below can fail: the per-function rules it replaces had these."""
    assert long_raw_ranges('sum(rate(revision_request_count{namespace="a",x="}["}[3d]))') == [
        'revision_request_count{namespace="a",x="}["}[3d]'
    ]
    assert long_raw_ranges("increase(function_requests_total[1h])") != []
    assert long_raw_ranges("sum_over_time(namespace_function:requests:increase5m[30d])") == []
    assert long_raw_ranges("rate(function_requests_total[5m])") == []


def test_no_rule_reads_a_raw_series_over_more_than_5_minutes() -> None:
    exprs = [
        r["expr"]
        for path in sorted((REPO / "rules").rglob("*.yaml"))
        if "tests" not in path.relative_to(REPO / "rules").parts
        for g in yaml.safe_load(path.read_text())["spec"]["groups"]
        for r in g["rules"]
    ]
    exprs += [r["expr"] for r in _rules(_fleet(_clones(EXAMPLE_SUBJECTS, 30)))]
    assert len(exprs) > 300
    assert [e for e in exprs if long_raw_ranges(e)] == []


# --- promtool on the real rules ------------------------------------------------------------


def _native(name: str, **settings: Any) -> Subject:
    function = Function(
        namespace="shop",
        name=name,
        api_version="core.openfunction.io/v1beta2",
        runtime=Runtime.KNATIVE,
        source=Location("test.yaml", 0),
    )
    return Subject(function, Settings.model_validate({"profile": "ofobserve", **settings}))


def _requests(name: str, ok: str, failed: str) -> list[dict[str, str]]:
    labels = f'namespace="shop",function="{name}"'
    return [
        {"series": f'{c.NATIVE_REQUESTS_TOTAL}{{{labels},code="200"}}', "values": ok},
        {"series": f'{c.NATIVE_REQUESTS_TOTAL}{{{labels},code="500"}}', "values": failed},
    ]


def _promtool(
    promtool: str, tmp_path: Path, subjects: list[Subject], test: dict[str, Any], interval: str
) -> subprocess.CompletedProcess[str]:
    files = []
    for i, groups in enumerate([_fleet(subjects), *(build_rule_groups(s) for s in subjects)]):
        path = tmp_path / f"rules-{i}.yaml"
        path.write_text(yaml.safe_dump({"groups": groups}))
        files.append(path.name)
    spec = tmp_path / "test.yaml"
    spec.write_text(
        yaml.safe_dump({"rule_files": files, "evaluation_interval": interval, "tests": [test]})
    )
    return subprocess.run(
        [promtool, "test", "rules", spec.name], capture_output=True, text=True, cwd=tmp_path
    )


def _near(expr: str, want: float, rel: float = 0.03) -> str:
    """1 where ``expr`` is within ``rel`` of ``want``."""
    return f"abs({expr} - {want}) <= bool {abs(want) * rel}"


BUSY, QUIET = 6000, 60  # requests per minute
BUSY_FAILED, QUIET_FAILED = 0.01, 0.5  # share of them failing
BUSY_MINUTES, QUIET_MINUTES = 60, 90
END = BUSY_MINUTES + QUIET_MINUTES


def _minutes() -> list[tuple[float, float]]:
    """(requests, failed) in each minute of the scenario."""
    return [(BUSY, BUSY * BUSY_FAILED)] * BUSY_MINUTES + [
        (QUIET, QUIET * QUIET_FAILED)
    ] * QUIET_MINUTES


def _in_window(minutes: int, interval: str) -> tuple[float, float]:
    """(requests, failed) in the window of ``minutes`` that ends the scenario, as a sum of
    5-minute increases recorded every ``interval`` sees it: shifted back by half of
    ``5m - interval`` (docs/alerts.md), exact where the traffic does not change within 5
    minutes of its edges, as here."""
    shift = (300 - window_seconds(interval)) // 120
    window = _minutes()[max(0, END - shift - minutes) : END - shift]
    return sum(n for n, _ in window), sum(f for _, f in window)


@pytest.mark.parametrize("interval", ["1m", "5m"])
def test_the_sli_is_traffic_weighted(promtool: str, tmp_path: Path, interval: str) -> None:
    """A busy hour with 1 % failures, then a quiet hour and a half with 50 %: the recorded
    SLIs are the failed share of the requests in their window (2 h: 2.4 %; the 30-day
    period: 1.7 %), whatever the evaluation interval. The old 30-day SLI, the average of the
    5-minute ratios, says 30 % on the same series: a quiet minute weighs as much as a busy
    one. Events per second count each event once (1 h: the quiet 1/s)."""
    assert (300 - window_seconds(interval)) % 120 == 0  # a whole number of minutes
    subject = _native("bursty")
    ok = _counter([n - f for n, f in _minutes()])
    bad = _counter([f for _, f in _minutes()])
    two_hours, period = _in_window(120, interval), _in_window(END, interval)
    averaged = sum(f / n for n, f in _minutes()) / END
    sel = '{function="bursty",sloth_slo="availability"}'
    ident = {"namespace": "shop", "function": "bursty"}
    sloth = {
        **ident,
        "sloth_id": "shop/bursty-availability",
        "sloth_service": "shop/bursty",
        "sloth_slo": "availability",
    }
    checks = {
        _near(f"{c.slo_sli_error('2h')}{sel}", two_hours[1] / two_hours[0]): {
            **sloth,
            "sloth_window": "2h",
        },
        _near(f"{c.slo_sli_error('30d')}{sel}", period[1] / period[0]): {
            **sloth,
            "sloth_window": "30d",
        },
        # the average of ratios, as the per-function rules recorded the period's SLI
        _near(f"avg_over_time({c.slo_sli_error('5m')}{sel}[30d])", averaged, 0.1): {
            **sloth,
            "sloth_window": "5m",
        },
        _near(
            f'{c.record_requests_rate("1h")}{{function="bursty"}}',
            _in_window(60, interval)[0] / 3600,
        ): (ident),
        _near(f'{c.record_requests_rate("2h")}{{function="bursty"}}', two_hours[0] / 7200): (ident),
    }
    assert 0.02 < two_hours[1] / two_hours[0] < 0.03
    assert 0.015 < period[1] / period[0] < 0.02
    assert averaged > 0.25  # what the old rules would have alerted on
    test = {
        "interval": "1m",
        "input_series": _requests("bursty", ok, bad),
        "promql_expr_test": [
            {
                "expr": expr,
                "eval_time": f"{END}m",
                "exp_samples": [{"labels": _labels(want), "value": 1}],
            }
            for expr, want in checks.items()
        ],
    }
    result = _promtool(promtool, tmp_path, [subject], test, interval)
    assert result.returncode == 0, result.stdout + result.stderr


def _counter(per_minute: list[float]) -> str:
    """promtool's values of a counter growing by ``per_minute[i]`` in minute ``i``."""
    values, total = ["0"], 0.0
    for n in per_minute:
        total += n
        values.append(f"{total:g}")
    return " ".join(values)


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def test_an_objective_override_changes_only_that_functions_alert(
    promtool: str, tmp_path: Path
) -> None:
    """Two functions with 2.5 % failed requests for an hour; one of them has a 99.9 %
    objective. Its fast burn (14.4 x 0.1 %) fires; the other's (14.4 x 0.5 %, and 6 x 0.5 %
    for 6h/30m) does not. The fleet rules are the same with or without the override: only
    the function's constant series carry it."""
    plain, strict = _native("steady"), _native("strict", slo={"availability": 99.9})
    assert _fleet([plain, strict]) == _fleet([plain, _native("strict")])
    changed = [
        (r["record"], r.get("labels", {}).get("sloth_slo"))
        for r, d in zip(
            _rules(build_rule_groups(strict)),
            _rules(build_rule_groups(_native("strict"))),
            strict=True,
        )
        if r != d
    ]
    assert {name for name, _ in changed} == {
        c.SLO_OBJECTIVE,
        c.SLO_ERROR_BUDGET,
        c.SLO_INFO,
        c.RECORD_SLO_BURN_THRESHOLD,
        c.RECORD_ALERT_THRESHOLD,  # the description's objective
    }
    assert {slo_name for _, slo_name in changed} == {c.SLO_AVAILABILITY}
    ratio = 0.025
    series = []
    for subject in (plain, strict):
        name = subject.function.name
        series += _requests(name, f"0+{600 * (1 - ratio):g}x60", f"0+{600 * ratio:g}x60")
    pairs = window_set("30d")
    # 2.5 % breaches every pair at 99.9 %, and only the warning ones (3 x and 1 x 0.5 %) at
    # 99.5 %: without the override the critical alert would not fire
    firing = []
    for subject, severity, pair in (
        (strict, "critical", pairs[0]),
        (strict, "warning", pairs[2]),
        (plain, "warning", pairs[2]),
    ):
        ctx = RuleContext.of(subject)
        objective = objectives(subject.settings)[0]
        labels = {**ctx.identity, **ctx.sloth_labels(objective)}
        static = burn_rate_static(ctx, objective, pair)
        firing.append(_expected(ctx, a.ERROR_BUDGET_BURN, ratio, severity, labels, **static))
    test = {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": "60m", "alertname": a.ERROR_BUDGET_BURN.name, "exp_alerts": firing}
        ],
    }
    result = _promtool(promtool, tmp_path, [plain, strict], test, "1m")
    assert result.returncode == 0, result.stdout + result.stderr

"""``ofobserve simulate``: the event loop against queueing theory, the KPA port and the HPA
model against their upstream rules, the traces, the CLI end to end (pure, no wall clock)."""

from __future__ import annotations

import json
import math
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import ofobserve.scaler.policy as scaler_policy
from ofobserve.scaler.config import ScalerConfig
from ofobserve.simulate import cluster, kpa, pipeline, policies, report, traces, traffic
from ofobserve.simulate.cluster import Record, Run
from ofobserve.simulate.model import Params, Pipeline, Traffic
from ofobserve.simulate.traffic import rng_for
from tests.conftest import run_cli

ORC_HEADER = traces.ORCBENCH_HEADER


class Fixed:
    """A controller that keeps ``replicas`` replicas: M/M/c when each serves one request."""

    name = "fixed"
    histogram = False

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas

    def initial(self) -> int:
        return self.replicas

    def tick(self, now: int, record: Record) -> int | None:
        return None


def poisson_traffic(rate: float, mean_service: float, minutes: int, seed: int) -> Traffic:
    """Poisson arrivals at ``rate``/s through the per-minute path (Poisson counts, uniform
    within the minute), exponential service."""
    return traffic.from_minutes([1.0] * minutes, None, mean_service, rate * 60.0, seed)


def fixed_run(t: Traffic, replicas: int) -> Run:
    params = Params(container_concurrency=1, timeout=1e9)
    return cluster.simulate(t, params, Fixed(replicas), rng_for(0, "fixed"))


def erlang_c(c: int, offered: float) -> float:
    """Probability of waiting in M/M/c with offered load ``offered`` = lambda / mu."""
    top = offered**c / math.factorial(c) * c / (c - offered)
    return top / (sum(offered**k / math.factorial(k) for k in range(c)) + top)


def test_mmc_mean_wait_matches_erlang_c() -> None:
    rate, service, c = 3.0, 1.0, 4
    t = poisson_traffic(rate, service, minutes=1000, seed=7)
    run = fixed_run(t, c)
    waits = run.latencies - t.services
    expected = erlang_c(c, rate * service) / (c / service - rate)
    assert expected == pytest.approx(0.5094, abs=1e-3)  # C(4, 3) / (4 - 3)
    assert float(np.mean(waits)) == pytest.approx(expected, rel=0.05)
    assert run.timed_out == 0


def test_mm1_utilization_and_number_in_system() -> None:
    rate, service = 0.5, 1.0
    t = poisson_traffic(rate, service, minutes=2000, seed=3)
    run = fixed_run(t, 1)
    horizon = len(run.record.busy)
    rho = rate * service
    assert run.record.busy[-1] / horizon == pytest.approx(rho, rel=0.05)
    # The per-second mean of the requests held is the time average of N(t): rho / (1 - rho).
    assert float(np.mean(run.record.concurrency)) == pytest.approx(rho / (1 - rho), rel=0.05)


def test_a_poisson_minute_has_poisson_counts() -> None:
    rng = np.random.default_rng(1)
    counts = traffic.scaled_counts([10.0] * 20000, 3.0, rng)
    assert float(np.mean(counts)) == pytest.approx(30.0, rel=0.01)
    assert float(np.var(counts)) == pytest.approx(30.0, rel=0.05)
    arrivals = traffic.arrivals_from_counts([2, 0, 3], np.random.default_rng(2))
    assert [int(a // 60) for a in arrivals] == [0, 0, 2, 2, 2]
    assert list(arrivals) == sorted(arrivals)


# --- the KPA port -------------------------------------------------------------------------


def kpa_run(
    loads: list[float], ready0: int, follow: bool = True
) -> list[tuple[float, int | None, bool]]:
    """Per-second loads into the KPA (target 7), deciding every 2 s; the ready replicas
    follow the decisions at once."""
    scaler = kpa.Kpa(kpa.KpaSettings(target=7.0))
    ready, out = ready0, []
    for t, load in enumerate(loads):
        scaler.record(float(t), load)
        if t % 2:
            continue
        wanted = scaler.replicas(float(t), ready, ready)
        out.append((float(t), wanted, scaler.panicking))
        if follow and wanted is not None:
            ready = wanted
    return out


def test_kpa_a_10x_step_panics_within_the_panic_window() -> None:
    step_at = 120
    decisions = kpa_run([7.0] * step_at + [70.0] * 60, ready0=1)
    before = [d for d in decisions if d[0] < step_at]
    assert not any(p for _, _, p in before)
    assert {w for _, w, _ in before} == {1}
    first = next(t for t, _, p in decisions if p)
    assert step_at <= first <= step_at + 6.0
    # In panic it scales on the panic window: ten times the load, ten times the pods.
    assert max(w or 0 for t, w, _ in decisions if t <= step_at + 8) >= 10


def test_kpa_never_scales_down_while_panicking() -> None:
    loads = [7.0] * 60 + [140.0] * 10 + [3.0] * 200
    decisions = kpa_run(loads, ready0=1)
    panicking = [(t, w) for t, w, p in decisions if p]
    assert len(panicking) > 20
    counts = [w for _, w in panicking]
    assert counts == sorted(counts)  # non-decreasing throughout the panic
    after = [w for t, w, p in decisions if not p and t > panicking[-1][0]]
    assert after
    assert after[-1] is not None
    assert after[-1] < counts[-1]


def test_kpa_scale_down_respects_max_scale_down_rate() -> None:
    """20 ready pods at a load one pod carries: without the clamp the first answer is 1;
    with maxScaleDownRate 2 each tick halves the ready pods (floor(ready / 2))."""
    decisions = kpa_run([7.0] * 8, ready0=20)
    assert [w for _, w, _ in decisions] == [10, 5, 2, 1]
    assert not any(p for _, _, p in decisions)


def test_kpa_scale_down_delay_holds_the_highest_answer() -> None:
    """Knative's scale-down-delay (``delayWindow``): the answer is the highest of the last
    ScaleDownDelay; scale-up is not delayed."""
    scaler = kpa.Kpa(kpa.KpaSettings(target=7.0, scale_down_delay=60.0))
    answers = {}
    for t in range(0, 200):
        scaler.record(float(t), 70.0 if t < 60 else 7.0)
        if t % 2 == 0:
            answers[t] = scaler.scale(float(t), 10)
    assert answers[0] == 10  # up at once
    assert all(answers[t] == 10 for t in range(60, 120, 2))  # held for the delay
    assert answers[198] == 5  # then maxScaleDownRate from 10


def test_kpa_reaches_zero_only_after_the_grace_period() -> None:
    scaler = kpa.Kpa(kpa.KpaSettings(target=7.0))
    first_zero: float | None = None
    zero_at: float | None = None
    for t in range(0, 400):
        scaler.record(float(t), 5.0 if t < 60 else 0.0)
        if t % 2:
            continue
        if first_zero is None and scaler.scale(float(t), 1) == 0:
            first_zero = float(t)
            scaler.zero_since = None  # scale() alone does not start the grace: replicas() does
        wanted = scaler.replicas(float(t), 1, 1)
        if wanted == 0 and zero_at is None:
            zero_at = float(t)
    assert first_zero is not None
    assert zero_at is not None
    assert first_zero >= 60 + 60 - 2  # the stable window holds the traffic for 60 s
    assert zero_at == first_zero + 30.0


# --- the HPA and KEDA model ---------------------------------------------------------------


def test_hpa_does_nothing_within_the_tolerance() -> None:
    hpa = pipeline.Hpa(Pipeline(), max_replicas=100, stabilize_down=0, stabilize_up=0)
    assert hpa.average_value(10.9, 1.0, 10) == 10  # 9 % over: held
    assert hpa.average_value(9.1, 1.0, 10) == 10  # 9 % under: held
    assert hpa.average_value(11.5, 1.0, 10) == 12  # outside the band: ceil(value / target)
    assert hpa.utilization(0.75, 0.7, 10) == 10  # 7 % over the CPU target
    assert hpa.utilization(0.91, 0.7, 10) == 13
    assert hpa.sync(0.0, hpa.average_value(10.9, 1.0, 10), 10) == 10


def test_hpa_stabilization_holds_the_highest_recommendation() -> None:
    hpa = pipeline.Hpa(Pipeline(), max_replicas=100, stabilize_down=300, stabilize_up=0)
    assert hpa.sync(0.0, 10, 4) == 8  # up: limited to max(+4, x2) per period
    assert hpa.sync(15.0, 10, 8) == 10
    held = [hpa.sync(t, 3, 10) for t in (30.0, 150.0, 285.0)]
    assert held == [10, 10, 10]  # the 10 of t=15 is still in the window
    assert hpa.sync(316.0, 3, 10) == 3  # it left the window: the highest left is 3
    keda = pipeline.Keda(Pipeline(cooldown_period=300))
    assert keda.poll(0.0, True, 0) == 1
    assert keda.poll(30.0, False, 3) is None
    assert keda.poll(300.0, False, 3) == 0


def test_hpa_scale_up_limits() -> None:
    """No behavior: the legacy calculateScaleUpLimit, max(2 x current, 4) (horizontal.go);
    render's behavior for ofobserve: 1000 % per 15 s, 11 x current."""
    legacy = pipeline.Hpa(Pipeline(), max_replicas=1000, stabilize_down=0, stabilize_up=0)
    assert legacy.sync(0.0, 50, 1) == 4
    assert legacy.sync(15.0, 50, 10) == 20
    rendered = pipeline.Hpa(Pipeline(), 1000, 0, 0, up_factor=11.0, up_minimum=0)
    assert rendered.sync(0.0, 500, 3) == 33
    assert policies.Ofobserve(Params()).hpa.up_factor == 11.0


def test_prometheus_view_sees_scrapes_and_rates() -> None:
    rec = Record()
    for t in range(121):
        rec.arrived.append(3 * t)
        rec.ready.append(1)
        rec.in_system.append(t)
    view = pipeline.PrometheusView(rec, Pipeline(scrape_interval=15, evaluation_lag=5))
    assert view.scraped(4) == -1
    assert view.scraped(44) == 30
    assert view.gauge(rec.in_system, 44) == 30
    assert view.rate(rec.arrived, 120) == pytest.approx(3.0)
    assert pipeline.histogram_quantile(0.5, [0] * 5 + [10] + [0] * 24) == pytest.approx(0.0875)
    assert pipeline.histogram_quantile(0.5, [0] * 30) is None


# --- the scaler's own policy --------------------------------------------------------------


def test_the_simulator_runs_the_scalers_step() -> None:
    """Not a copy: the decisions are ofobserve.scaler.policy.step's on the samples the
    simulated source read, replayed here through the scaler module itself."""
    assert policies.policy is scaler_policy
    params = Params()
    t = poisson_traffic(20.0, 0.2, minutes=10, seed=1)
    controller = policies.Ofobserve(params)
    seen: list[tuple[scaler_policy.Sample, scaler_policy.Decision]] = []

    class Spy:
        name, histogram = "spy", True

        def initial(self) -> int:
            return controller.initial()

        def tick(self, now: int, record: Record) -> int | None:
            sample = controller.sample(now, record)
            wanted = controller.tick(now, record)
            assert controller.decision is not None
            seen.append((sample, controller.decision))
            return wanted

    cluster.simulate(t, params, Spy(), rng_for(0, "spy"))
    config = policies.scaler_config(params)
    state = scaler_policy.State.new(config)
    replayed = [scaler_policy.step(config, state, sample) for sample, _ in seen]
    assert replayed == [decision for _, decision in seen]
    assert {d.reason for _, d in seen} >= {"stable window"}
    assert isinstance(controller.state, scaler_policy.State)


def test_the_latency_term_needs_saturated_replicas() -> None:
    """A slow downstream: latency 4x the objective while the replicas hold a tenth of their
    target. The guard adds no replica, and nearly idle replicas are not held either (under
    LATENCY_HOLD of their target); saturated replicas still scale on latency."""
    config = ScalerConfig(
        namespace="shop", function="fn", target_concurrency=10, latency_objective=0.5
    )
    idle = scaler_policy.State.new(config)
    decisions = [
        scaler_policy.step(config, idle, scaler_policy.Sample(float(t), 7.0, 3.5, 2.0, 10))
        for t in range(120)
    ]
    assert all(d.reason != "latency objective" for d in decisions)
    assert decisions[-1].desired == 5  # the stable window's 1, held at maxScaleDownRate
    busy = scaler_policy.State.new(config)
    d = scaler_policy.step(config, busy, scaler_policy.Sample(0.0, 80.0, 20.0, 2.0, 10))
    assert (d.desired, d.reason) == (20, "latency objective")  # min(10 x 4, 10 x 2)
    half = scaler_policy.State.new(config)
    d = scaler_policy.step(config, half, scaler_policy.Sample(0.0, 80.0, 20.0, 0.75, 10))
    assert (d.desired, d.reason) == (15, "latency objective")  # 10 x 0.75 / 0.5
    # Half the target per replica is not saturation: the old guard's threshold.
    d = scaler_policy.step(config, scaler_policy.State.new(config),
                           scaler_policy.Sample(0.0, 40.0, 20.0, 2.0, 10))  # fmt: skip
    assert d.desired == 10


@pytest.mark.parametrize("source", ["prometheus", "direct"])
def test_a_slow_downstream_costs_no_more_than_the_kpa(source: str) -> None:
    """35 req/s, 2 s of service each, SLO 0.5 s, no concurrency limit: no replica count
    meets the SLO. The latency term must not over-provision against the KPA."""
    t = traffic.from_minutes([35.0 * 60] * 20, None, 2.0, 1.0, 5)
    t = replace(t, services=np.full(len(t.services), 2.0))
    params = Params(container_concurrency=0, target_concurrency=10, source=source)
    ours, theirs = _runs(t, params, ["ofobserve", "kpa"])
    kpa_max = max(theirs.record.replicas)
    assert kpa_max <= 12
    # At most one step on latency (a fluctuation can saturate the replicas for a scrape),
    # which the back-off finds futile: then the concurrency term alone, as the KPA.
    assert max(ours.record.replicas) <= 2 * kpa_max
    assert max(ours.record.replicas[300:]) <= math.ceil(1.2 * kpa_max)
    assert sum(ours.record.replicas) <= 1.15 * sum(theirs.record.replicas)


def test_the_sources_see_what_the_pods_expose() -> None:
    """direct (native profile): running requests only and handler time, nothing at zero
    pods; prometheus (Knative profile): the queue-proxies' running + queued and the
    latency with the queue wait, a scrape later, nothing at zero pods."""
    rec = Record()
    for t in range(61):
        rec.in_system.append(25)  # 10 running + 15 queued
        rec.running.append(10)
        rec.started.append(5 * t)
        rec.arrived.append(8 * t)
        rec.ready.append(1 if t <= 45 else 0)
        rec.replicas.append(1)
        rec.histogram.append(tuple([0] * 20 + [t] + [0] * 9))  # 4-5 s: with the wait
        rec.handler.append(tuple([0] * 5 + [t] + [0] * 24))  # 75-100 ms: handler time
    direct = policies.Ofobserve(Params(source="direct"))
    s = direct.sample(30, rec)
    assert (s.concurrency, s.rate, s.ready) == (10.0, 5.0, 1)
    assert s.latency is not None
    assert s.latency < 0.1
    assert direct.sample(50, rec) == scaler_policy.Sample(50.0, 0.0, 0.0, None, 0)
    prom = policies.Ofobserve(Params(source="prometheus"))
    s = prom.sample(44, rec)  # the scrape at 30
    assert (s.concurrency, s.rate, s.ready) == (25.0, 5.0, 1)
    assert s.latency is not None
    assert s.latency > 4.0
    at_zero = prom.sample(60, rec)  # the scrape at 60: no pod, no queue-proxy
    assert (at_zero.concurrency, at_zero.ready) == (0.0, 0)


def _runs(t: Traffic, params: Params, names: list[str]) -> list[Run]:
    from ofobserve.simulate.runner import run_policies

    return run_policies(t, params, names)


# --- traces -------------------------------------------------------------------------------


def test_an_orcbench_trace_with_the_glued_header(tmp_path: Path) -> None:
    path = tmp_path / "orc.csv"
    path.write_text(
        f"{ORC_HEADER}0.5, fa, 120.0, 3-model\n0.7, fb, 10.0, 1-model\n"
        "1.2, fa, -3.0, 3-model\n2.9, fa, 80.0, 3-model\n"
    )
    t = traces.load_trace(str(path), None, 0.1, 1.0, 0)
    assert len(t.arrivals) == 3  # fa is the busiest
    assert sorted(t.services.tolist()) == [0.0, 0.08, 0.12]
    assert t.duration == 180.0
    assert [int(a // 60) for a in t.arrivals] == [0, 1, 2]
    only_b = traces.load_trace(str(path), "fb", 0.1, 1.0, 0)
    assert only_b.services.tolist() == [0.01]


def test_azure_and_per_request_traces(tmp_path: Path) -> None:
    azure = tmp_path / "azure.csv"
    azure.write_text(
        "HashOwner,HashApp,HashFunction,Trigger,1,2,3\no,a,f1,http,5,0,7\no,a,f2,http,1,1,1\n"
    )
    t = traces.load_trace(str(azure), None, 0.25, 1.0, 0)
    assert len(t.arrivals) == 12
    assert t.duration == 180.0
    assert sum(1 for a in t.arrivals if a >= 120) == 7
    requests = tmp_path / "requests.csv"
    requests.write_text("timestamp,duration\n100.0,0.2\n100.5,150ms\n161,1\n")
    r = traces.load_trace(str(requests), None, 0.1, 1.0, 0)
    assert r.arrivals.tolist() == [0.0, 0.5, 61.0]
    assert r.services.tolist() == [0.2, 0.15, 1.0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (f"{ORC_HEADER}\n0.5, fa, 120.0, 3-model\n0.7, fa, fast, 3-model\n",
         "t.csv:3: Runtime (ms): must be a number (got 'fast')"),
        (f"{ORC_HEADER}\n0.5, fa, 120.0\n", "t.csv:2: expected 4 columns"),
        ("HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1\n",
         "t.csv:2: expected 6 columns, got 5"),
        ("HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1,-4\n",
         "t.csv:2: minute 2: must be a number >= 0 (got '-4')"),
        ("timestamp,duration\n1,0.1\n2,slow\n",
         "t.csv:3: duration: must be seconds, or with ms, s, m or h (got 'slow')"),
        ("time,latency\n1,2\n", "t.csv:1: unknown trace header 'time,latency'"),
    ],
)  # fmt: skip
def test_a_malformed_trace_names_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(content)
    result = run_cli("simulate", str(path), "--policies", "kpa")
    assert result.exit_code == 1
    assert f"error: {path.parent}/{message}" in result.stderr
    assert result.stdout == ""


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def orc_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twenty minutes of one OrcBench function: a quiet start, a 10x burst, quiet again."""
    rng = np.random.default_rng(11)
    rows = [ORC_HEADER]
    for minute in range(20):
        n = 1800 if 8 <= minute < 13 else 180
        for at in np.sort(minute + rng.random(n)):
            rows.append(f"{at}, fn, {rng.exponential(400.0)}, 7-model")
    path = tmp_path_factory.mktemp("orc") / "trace.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_the_same_seed_gives_identical_json(orc_trace: Path) -> None:
    args = ("simulate", str(orc_trace), "--format", "json", "--seed", "4", "--scale", "1.5")
    first, second = run_cli(*args), run_cli(*args)
    assert first.exit_code == 0, first.stderr
    assert first.stdout == second.stdout
    other = run_cli("simulate", str(orc_trace), "--format", "json", "--seed", "5", "--scale", "1.5")
    assert other.stdout != first.stdout


def test_json_has_fixed_keys_and_the_plot_is_a_png(orc_trace: Path, tmp_path: Path) -> None:
    import matplotlib.image

    png = tmp_path / "out.png"
    result = run_cli("simulate", str(orc_trace), "--format", "json", "--plot", str(png))
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert sorted(body) == ["load_step", "parameters", "policies", "trace"]
    assert [p["policy"] for p in body["policies"]] == list(policies.POLICIES)
    for figures in body["policies"]:
        assert sorted(figures) == sorted(report.KEYS)
        assert figures["requests"] == body["trace"]["requests"] > 10000
        assert 0 <= figures["slo_violation_share"] <= 1
        assert figures["p50_s"] <= figures["p95_s"] <= figures["p99_s"]
        assert figures["replica_seconds"] >= 1200  # 20 minutes, 1 replica or more
    assert body["load_step"]["minute"] == 8
    by_name = {f["policy"]: f for f in body["policies"]}
    assert by_name["kpa"]["cold_starts"] >= 1  # the 10x burst needs more than one replica
    assert by_name["ofobserve"]["max_replicas"] >= 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 300
    assert image.shape[1] > 500
    assert f"wrote {png}" in result.stderr


def test_the_ofobserve_flags_reach_its_scaled_object(orc_trace: Path) -> None:
    args = ("simulate", str(orc_trace), "--policies", "ofobserve", "--format", "json")
    plain = json.loads(run_cli(*args).stdout)
    held = json.loads(run_cli(*args, "--scale-down-delay", "2m").stdout)
    direct = json.loads(run_cli(*args, "--source", "direct", "--kpa-scale-down-delay", "1m").stdout)
    assert (plain["parameters"]["source"], plain["parameters"]["scale_down_delay_s"]) == (
        "prometheus",
        0.0,
    )
    assert held["parameters"]["scale_down_delay_s"] == 120.0
    assert direct["parameters"]["source"] == "direct"
    assert direct["parameters"]["kpa_scale_down_delay_s"] == 60.0
    [a], [b] = plain["policies"], held["policies"]
    assert b["replica_seconds"] > a["replica_seconds"]  # two minutes' hold costs replicas


def test_options_come_from_the_environment(orc_trace: Path) -> None:
    from click.testing import CliRunner

    from ofobserve.cli import main

    env = {"OFOBSERVE_SIMULATE_POLICIES": "hpa-cpu", "OFOBSERVE_SIMULATE_FORMAT": "json"}
    result = CliRunner(env=env).invoke(main, ["simulate", str(orc_trace)])
    assert result.exit_code == 0, result.stderr
    assert [p["policy"] for p in json.loads(result.stdout)["policies"]] == ["hpa-cpu"]


def test_the_table(orc_trace: Path) -> None:
    result = run_cli("simulate", str(orc_trace), "--policies", "kpa,hpa-cpu")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split()[:3] == ["POLICY", "REQUESTS", "OVER"]
    assert [line.split()[0] for line in lines[2:]] == ["kpa", "hpa-cpu"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--policies", "ofobserve,knative"], 2,
         "Invalid value for '--policies': unknown policy 'knative'"),
        (["--scale", "-2"], 2, "Invalid value for '--scale'"),
        (["--timeout", "-5s"], 2, "Invalid value for '--timeout': must be a duration > 0"),
        (["--container-concurrency", "-1"], 2, "Invalid value for '--container-concurrency'"),
        (["--cold-start", "5s-1s"], 2, "Invalid value for '--cold-start': the high end"),
        (["--slo", "0"], 2, "Invalid value for '--slo'"),
        (["--function", "nope"], 1, "--function 'nope' is not in the trace (busiest: fn)"),
    ],
)  # fmt: skip
def test_bad_flags_name_the_flag(orc_trace: Path, args: list[str], code: int, message: str) -> None:
    result = run_cli("simulate", str(orc_trace), *args)
    assert result.exit_code == code
    assert message in result.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--scale", "nan", "Invalid value for '--scale': must be a finite number > 0 (got 'nan')"),
        ("--scale", "inf", "Invalid value for '--scale': must be a finite number > 0 (got 'inf')"),
        ("--target-concurrency", "nan",
         "Invalid value for '--target-concurrency': must be a finite number > 0"),
        ("--target-utilization", "nan",
         "Invalid value for '--target-utilization': must be a finite number > 0 and <= 1"),
        ("--keda-threshold", "nan",
         "Invalid value for '--keda-threshold': must be a finite number > 0"),
        ("--hpa-tolerance", "nan",
         "Invalid value for '--hpa-tolerance': must be a finite number >= 0 and < 1"),
        ("--hpa-tolerance", "1", "Invalid value for '--hpa-tolerance'"),
    ],
)  # fmt: skip
def test_a_number_flag_must_be_finite(orc_trace: Path, flag: str, value: str, message: str) -> None:
    result = run_cli("simulate", str(orc_trace), "--policies", "kpa", flag, value)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_a_bad_plot_path_fails_before_the_run(orc_trace: Path, tmp_path: Path) -> None:
    target = tmp_path / "nonexistent" / "p.png"
    result = run_cli("simulate", str(orc_trace), "--policies", "kpa", "--plot", str(target))
    assert result.exit_code == 1
    assert f"error: --plot {target}: no such directory {target.parent}" in result.stderr
    assert result.stdout == ""  # no table: it did not simulate
    assert "Traceback" not in result.stderr


def test_neither_trace_nor_prometheus() -> None:
    result = run_cli("simulate")
    assert result.exit_code == 2
    assert "give a TRACE, or --prometheus URL with --function" in result.stderr
    assert "not both" not in result.stderr
    both = run_cli("simulate", "t.csv", "--prometheus", "http://x")
    assert both.exit_code == 2
    assert "give either TRACE or --prometheus URL, not both" in both.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (f"{ORC_HEADER}\n0.5, fa, 120.0, 3-model\n1000000000000, fa, 10.0, 3-model\n",
         "t.csv:3: Logical Time Clock (minutes): 1e+12 is past the 31-day limit"),
        ("timestamp,duration\n100,0.1\n2000000000,0.1\n",
         "t.csv:3: timestamp: 23148 days from line 2's, past the 31-day limit"),
    ],
)  # fmt: skip
def test_an_oversized_trace_is_refused(tmp_path: Path, content: str, message: str) -> None:
    """The loop steps through every second: a row at minute 1e12 would never finish."""
    path = tmp_path / "t.csv"
    path.write_text(content)
    result = run_cli("simulate", str(path), "--policies", "kpa")
    assert result.exit_code == 1
    assert f"error: {tmp_path}/{message}" in result.stderr


def test_a_missing_trace_is_one_line(tmp_path: Path) -> None:
    result = run_cli("simulate", str(tmp_path / "none.csv"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {tmp_path}/none.csv: cannot read the trace")


# --- Prometheus history -------------------------------------------------------------------


class _QueryRange(BaseHTTPRequestHandler):
    """A stand-in for Prometheus's ``/api/v1/query_range``, answering the documented JSON
    (a matrix) for the two queries the history reader sends; it records every query."""

    queries: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        self.queries.append(query)
        start, end, step = float(query["start"]), float(query["end"]), float(query["step"])
        stamps = np.arange(start, end + 1, step)
        if "_sum" in query["query"]:  # the mean latency: 0.3 s
            values = [[float(s), "0.3"] for s in stamps]
        else:  # the request rate: 2/s, then 20/s from minute 10
            values = [[float(s), "20" if s - start >= 600 else "2"] for s in stamps]
        body: dict[str, Any] = {
            "status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": {}, "values": values}]},
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def query_range() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _QueryRange)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_traffic_from_prometheus_history(query_range: str) -> None:
    _QueryRange.queries.clear()
    result = run_cli(
        "simulate", "--prometheus", query_range, "--function", "shop/checkout",
        "--start", "2026-01-06T09:00:00Z", "--end", "2026-01-06T09:20:00Z",
        "--format", "json", "--policies", "kpa",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["trace"]["duration_s"] == 1200
    # 10 minutes at 2/s and 10 at 20/s: 13200 requests, and a step at minute 10.
    assert body["trace"]["requests"] == 13200
    assert body["trace"]["mean_service_s"] == pytest.approx(0.3, rel=0.05)
    assert body["load_step"]["minute"] == 10
    sent = sorted(q["query"] for q in _QueryRange.queries)
    match = '{namespace="shop",function="checkout"}[1m]'
    assert sent == sorted(
        [
            f"sum(rate(function_requests_total{match}))",
            f"sum(rate(function_request_duration_seconds_sum{match})) / "
            f"sum(rate(function_request_duration_seconds_count{match}))",
        ]
    )
    assert {q["step"] for q in _QueryRange.queries} == {"60"}


def _openmetrics(t0: int, minutes: int) -> str:
    """A function's counters every 15 s: 2 requests/s, 20/s from minute 10, 0.3 s each."""
    lines = [
        "# TYPE function_requests counter",
        "# TYPE function_request_duration_seconds summary",
    ]
    match = 'namespace="shop",function="checkout"'
    requests = 0.0
    for k in range(minutes * 4 + 1):
        at = t0 + 15 * k
        lines.append(f"function_requests_total{{{match}}} {requests} {at}")
        lines.append(f"function_request_duration_seconds_sum{{{match}}} {0.3 * requests} {at}")
        lines.append(f"function_request_duration_seconds_count{{{match}}} {requests} {at}")
        requests += 15 * (20 if k >= 40 else 2)
    return "\n".join([*lines, "# EOF", ""])


@pytest.mark.prometheus
def test_traffic_from_a_real_prometheus(tmp_path: Path) -> None:
    """The history queries against Prometheus 2.42 itself, on 20 minutes backfilled with
    ``promtool tsdb create-blocks-from openmetrics`` three hours back."""
    import subprocess
    import time
    from datetime import UTC, datetime

    from tests.support.prometheus import PrometheusServer
    from tests.support.tools import require_tool

    t0 = (int(time.time()) // 3600 - 3) * 3600
    source = tmp_path / "history.om"
    source.write_text(_openmetrics(t0, 21))
    subprocess.run(
        [require_tool("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source),
         str(tmp_path / "data")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    server = PrometheusServer(require_tool("prometheus"), tmp_path)
    server.start()
    try:
        start = datetime.fromtimestamp(t0 + 60, UTC).isoformat()
        end = datetime.fromtimestamp(t0 + 60 + 20 * 60, UTC).isoformat()
        result = run_cli(
            "simulate", "--prometheus", server.url, "--function", "shop/checkout",
            "--start", start, "--end", end, "--format", "json", "--policies", "kpa",
        )  # fmt: skip
    finally:
        server.stop()
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["trace"]["duration_s"] == 1200
    # rate(...[1m]) at the end of each minute: the window holds 2/s for minutes 0-9 and
    # 20/s from minute 10 on (the counter changes pace at t0 + 600).
    assert body["trace"]["requests"] == 10 * 120 + 10 * 1200
    assert body["trace"]["mean_service_s"] == pytest.approx(0.3, rel=0.05)
    assert body["load_step"]["minute"] == 10


def test_prometheus_needs_its_flags(query_range: str) -> None:
    result = run_cli("simulate", "--prometheus", query_range, "--function", "checkout",
                     "--start", "2h ago", "--end", "1h ago")  # fmt: skip
    assert result.exit_code == 1
    assert "error: --function: must be namespace/name with --prometheus" in result.stderr
    assert run_cli("simulate", "--prometheus", query_range).exit_code == 2


def test_parameters_reach_the_model() -> None:
    params = replace(Params(), container_concurrency=0)
    assert params.concurrency_target == 100.0
    assert replace(params, container_concurrency=4).concurrency_target == 4.0

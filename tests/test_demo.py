"""``ofobserve demo``: the whole loop with real processes (docs/demo.md).

One quick run (about 3 minutes: real Prometheus, Alertmanager, scaler, function replicas)
is shared by the assertions; a second run is interrupted with SIGINT. Bad input starts
nothing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.prometheus import free_port
from tests.support.tools import REPO, require_tool

RUN_TIMEOUT = 420


def _command(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "ofobserve", "demo", "--no-live", "--output", str(out),
        "--prometheus-port", str(free_port()), "--alertmanager-port", str(free_port()),
        "--scaler-port", str(free_port()), "--scaler-metrics-port", str(free_port()),
        "--prometheus-bin", require_tool("prometheus"),
        "--alertmanager-bin", require_tool("prometheus-alertmanager"),
        *extra,
    ]  # fmt: skip


def _running_under(out: Path) -> list[str]:
    """Command lines of live processes that name ``out`` (every child of the demo does:
    its config, targets or control file is there)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if str(out) in cmdline and state != "Z":
            found.append(f"{proc.name}: {cmdline}")
    return found


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("demo") / "out"
    done = subprocess.run(
        _command(out), cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    return {
        "out": out,
        "done": done,
        "summary": json.loads((out / "summary.json").read_text()) if done.returncode == 0 else {},
        "timeline": (out / "timeline.csv").read_text().splitlines() if done.returncode == 0 else [],
    }


def _ok(quick: dict[str, Any]) -> dict[str, Any]:
    done = quick["done"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary: dict[str, Any] = quick["summary"]
    return summary


def _alert(summary: dict[str, Any], name: str) -> dict[str, Any]:
    spans = [a for a in summary["alerts"] if a["alert"] == name]
    assert spans, f"{name} never reached Alertmanager: {summary['alerts']}"
    return spans[0]


def test_scales_from_zero_to_at_least_three_and_back(quick: dict[str, Any]) -> None:
    summary = _ok(quick)
    assert summary["first_replica_after"] is not None
    assert summary["max_replicas"] >= 3
    assert summary["back_to_zero_after"] is not None
    header, *rows = (line.split(",") for line in quick["timeline"])
    ready = [int(row[header.index("ready")]) for row in rows]
    assert ready[0] == 0
    assert ready[-1] == 0
    burst = [int(r[header.index("ready")]) for r in rows if r[header.index("phase")] == "burst"]
    assert max(burst) >= 3, burst


def test_the_error_fault_fires_the_alert_in_alertmanager_and_it_resolves(
    quick: dict[str, Any],
) -> None:
    summary = _ok(quick)
    fault = dict(summary["phases"])["error fault"]
    recovery = dict(summary["phases"])["recovery"]
    high = _alert(summary, "FunctionHighErrorRate/warning")
    assert fault < high["fired"], high
    assert high["resolved"] is not None, high
    assert high["resolved"] > recovery, high
    burn = _alert(summary, "FunctionErrorBudgetBurn/critical")
    assert burn["fired"] > fault
    # Nothing fired before the fault.
    assert all(a["fired"] > fault for a in summary["alerts"]), summary["alerts"]


def test_prometheus_recorded_the_functions_metrics(quick: dict[str, Any]) -> None:
    _ok(quick)
    header, *rows = (line.split(",") for line in quick["timeline"])
    rates = [
        float(r[header.index("rate_prometheus")])
        for r in rows
        if r[header.index("rate_prometheus")]
    ]
    p95 = [float(r[header.index("p95_function")]) for r in rows if r[header.index("p95_function")]]
    assert max(rates, default=0) > 5, rates
    assert p95, "no p95 recorded"
    assert all(0.1 <= v <= 1.0 for v in p95), p95


def test_summary_counts_and_files(quick: dict[str, Any]) -> None:
    summary = _ok(quick)
    out = quick["out"]
    assert summary["events_arrived"] == (
        summary["events_served"] + summary["events_failed"] + summary["events_left"]
    )
    assert summary["events_failed"] > 0
    assert summary["events_left"] == 0
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = quick["done"].stdout
    assert "first replica from zero" in text
    assert "FunctionHighErrorRate" in text


def test_nothing_is_left_running(quick: dict[str, Any]) -> None:
    _ok(quick)
    assert _running_under(quick["out"]) == []


def test_sigint_mid_run_stops_everything(tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = subprocess.Popen(
        _command(out), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "logs" / "demo-1.log").exists():  # the first replica started
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no replica started in 120 s"
            time.sleep(0.5)
        time.sleep(3)
        assert len(_running_under(out)) >= 4  # prometheus, alertmanager, scaler, a replica
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr[-3000:]
    assert "(interrupted)" in stdout
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True
    assert _running_under(out) == []


def test_unknown_scenario_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        _command(tmp_path / "out", "--scenario", "huge"), capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "Invalid value for '--scenario': 'huge' is not one of 'quick', 'full'" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_port_in_use_starts_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = _command(out)
        command[command.index("--alertmanager-port") + 1] = str(port)
        done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 1
    assert f"error: port {port} (--alertmanager-port) is in use" in done.stderr
    assert not out.exists()
    assert _running_under(out) == []


def test_a_missing_binary_and_a_foreign_output_directory_are_errors(tmp_path: Path) -> None:
    command = _command(tmp_path / "out")
    command[command.index("--prometheus-bin") + 1] = str(tmp_path / "no-prometheus")
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 1
    assert f"error: {tmp_path / 'no-prometheus'} not found on PATH (give --prometheus-bin" in (
        done.stderr
    )
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    done = subprocess.run(_command(mine), capture_output=True, text=True)
    assert done.returncode == 1
    assert f"error: --output {mine}: not empty and not an earlier demo's output" in done.stderr
    assert (mine / "notes.txt").read_text() == "keep me"

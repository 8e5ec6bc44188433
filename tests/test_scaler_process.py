"""The scaler as users run it: ``ofobserve scaler`` processes, real exporter processes,
SIGTERM drain, the direct source, CLI usage errors, and the committed gRPC stubs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from ofobserve.cli import main
from ofobserve.scaler.proto import externalscaler_pb2 as pb
from ofobserve.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from ofobserve.scaler.sources import DirectSource, StaticDiscovery
from tests.conftest import run_cli
from tests.support.prometheus import free_port
from tests.support.scaler import ref, running_scaler
from tests.support.tools import REPO
from tests.test_scaler_server import eventually

PROM = ["--source", "prometheus", "--prometheus-url", "http://127.0.0.1:1"]


def _exporter(in_flight: float, rps: float) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.native_exporter", str(port), str(in_flight),
         str(rps)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    process.stdout.close()
    return process, f"127.0.0.1:{port}"


@pytest.fixture
def pods() -> Iterator[list[tuple[subprocess.Popen[str], str]]]:
    """Three pods of shop/fn, each with 4 requests in flight and 10 requests/s."""
    started = [_exporter(4, 10) for _ in range(3)]
    try:
        yield started
    finally:
        for process, _ in started:
            process.kill()
            process.wait()


def test_the_direct_source_reads_real_pods_and_survives_one_dying(
    pods: list[tuple[subprocess.Popen[str], str]],
) -> None:
    discovery = StaticDiscovery({"shop/fn": [address for _, address in pods]})
    source = DirectSource(discovery)
    metadata = {"targetConcurrency": "5", "targetUtilization": "1", "stableWindow": "1",
                "panicWindow": "0.5", "latencyObjective": "0.5"}  # fmt: skip
    with running_scaler(source, interval=0.2) as scaler:
        stub = scaler.stub()
        request = pb.GetMetricsRequest(scaledObjectRef=ref(**metadata))
        # 12 in flight over three pods, 5 per replica: 3 (latency 0.2 s is within 0.5 s)
        eventually(lambda: stub.GetMetrics(request).metricValues[0].metricValue == 3, 10)
        labels = {"namespace": "shop", "function": "fn"}
        assert scaler.sample("ofobserve_scaler_observed_concurrency", labels) == 12
        latency = eventually(
            lambda: scaler.sample("ofobserve_scaler_observed_latency_seconds", labels)
        )
        assert isinstance(latency, float)
        assert 0.1 < latency <= 0.25  # every request takes 0.2 s: the 0.1-0.25 bucket
        pods[0][0].kill()
        pods[0][0].wait()
        eventually(lambda: scaler.sample("ofobserve_scaler_observed_concurrency", labels) == 8)
        assert stub.IsActive(ref(**metadata)).result is True  # the read did not fail
        eventually(lambda: stub.GetMetrics(request).metricValues[0].metricValue == 2)
        errors = {**labels, "source": "direct", "reason": "scrape"}
        eventually(lambda: (scaler.sample("ofobserve_scaler_source_errors_total", errors) or 0) > 0)


def _start_scaler(
    tmp_path: Path, *extra: str, metrics_port: int | None = None
) -> tuple[subprocess.Popen[str], str]:
    targets = tmp_path / "targets.yaml"
    targets.write_text(yaml.safe_dump({"shop/fn": []}))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ofobserve", "scaler", "--source", "direct", "--targets",
         str(targets), "--listen", f"127.0.0.1:{port}", "--metrics-listen",
         f"127.0.0.1:{metrics_port or free_port()}", *extra],
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(address))
    eventually(
        lambda: (
            health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
            == health_pb2.HealthCheckResponse.SERVING
        ),
        15,
    )
    return process, address


def test_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    process, address = _start_scaler(tmp_path, "--grace-period", "5", "--log-format", "json")
    channel = grpc.insecure_channel(address)
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
    statuses: list[int] = []
    watcher = threading.Thread(target=lambda: statuses.extend(r.status for r in watch))
    stream = pb_grpc.ExternalScalerStub(channel).StreamIsActive(ref())
    assert next(stream).result is False
    watcher.start()
    eventually(lambda: statuses == [health_pb2.HealthCheckResponse.SERVING])
    process.send_signal(signal.SIGTERM)
    assert list(stream) == []  # the stream ends cleanly (OK), not cut off
    assert process.wait(15) == 0
    watcher.join(5)
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses
    assert process.stderr is not None
    with process.stderr:
        logs = [json.loads(line) for line in process.stderr.read().splitlines()]
    messages = [entry["message"] for entry in logs]
    assert any(m.startswith("stopping: health NOT_SERVING") for m in messages)
    assert messages[-1] == "stopped"
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in logs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "prometheus"], "--source prometheus needs --prometheus-url"),
        (["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (
            ["--prometheus-url", "http://p:9090"],
            "--prometheus-url only applies with --source prometheus",
        ),
        (
            [
                "--source",
                "prometheus",
                "--prometheus-url",
                "http://p",
                "--prometheus-username",
                "u",
            ],
            "--prometheus-username and --prometheus-password-file go together",
        ),
        (["--max-staleness", "0"], "0.0 is not in the range x>0"),
        (["--health-listen", "6001"], "--health-listen must be HOST:PORT (got '6001')"),
        (
            ["--forget-after", "0"],
            "Invalid value for '--forget-after' (env var: 'OFOBSERVE_FORGET_AFTER'): must be "
            "a duration > 0: seconds, or with ms, s, m or h (got '0')",
        ),
        (
            ["--forget-after", "soon"],
            "--forget-after' (env var: 'OFOBSERVE_FORGET_AFTER'): "
            "must be a duration > 0: seconds, or with ms, s, m or h (got 'soon')",
        ),
        (
            [*PROM, "--prometheus-header", "X-Scope-OrgID"],
            "Invalid value for '--prometheus-header' (env var: 'OFOBSERVE_PROMETHEUS_HEADERS'): "
            "must be NAME=VALUE or NAME=@FILE, NAME an HTTP header name (got 'X-Scope-OrgID')",
        ),
        (
            [*PROM, "--prometheus-header", "Org Id=a"],
            "must be NAME=VALUE or NAME=@FILE, NAME an HTTP header name (got 'Org Id=a')",
        ),
        ([*PROM, "--prometheus-header", "X-Scope-OrgID="], "X-Scope-OrgID: the value is empty"),
        (
            [*PROM, "--prometheus-header", "X-Scope-OrgID=@"],
            "X-Scope-OrgID: @ needs a file path (got 'X-Scope-OrgID=@')",
        ),
        (
            [
                *PROM,
                "--prometheus-header",
                "X-Scope-OrgID=a",
                "--prometheus-header",
                "x-scope-orgid=b",
            ],
            "Error: --prometheus-header x-scope-orgid is given twice",
        ),
        (
            [
                *PROM,
                "--prometheus-header",
                "Authorization=Bearer x",
                "--prometheus-bearer-token-file",
                "token",
            ],
            "Error: --prometheus-header Authorization cannot go with "
            "--prometheus-bearer-token-file or --prometheus-username",
        ),
        (
            ["--prometheus-header", "X-Scope-OrgID=a"],
            "Error: --prometheus-header only applies with --source prometheus",
        ),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = run_cli("scaler", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_the_header_env_var_takes_one_header_per_line() -> None:
    """Values may hold spaces and pipes; blank lines are skipped. Two of the lines name
    the same header: refused, so each line was one header."""
    lines = "X-Scope-OrgID=a|b\n\nX-Extra=with spaces\nx-extra=again\n"
    env = {"OFOBSERVE_PROMETHEUS_HEADERS": lines}
    result = CliRunner().invoke(main, ["scaler", *PROM], env=env)
    assert result.exit_code == 2
    assert "Error: --prometheus-header x-extra is given twice" in result.stderr


def test_an_unreadable_header_file_exits_1_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "org-id"
    result = run_cli("scaler", *PROM, "--prometheus-header", f"X-Scope-OrgID=@{missing}")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: cannot read --prometheus-header X-Scope-OrgID file {missing}: "
        "No such file or directory"
    )
    two_lines = tmp_path / "two-lines"
    two_lines.write_text("tenant-a\ntenant-b\n")
    result = run_cli("scaler", *PROM, "--prometheus-header", f"X-Scope-OrgID=@{two_lines}")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: --prometheus-header X-Scope-OrgID file {two_lines}: the value must be one line"
    )


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def test_forget_after_drops_an_idle_function_in_a_real_process(tmp_path: Path) -> None:
    """``--forget-after`` as users pass it; the scaler's /metrics counts the function
    forgotten and the functions held, and shows the event-loop lag probe at work."""
    metrics_port = free_port()
    process, address = _start_scaler(
        tmp_path, "--forget-after", "500ms", "--refresh-interval", "0.1",
        metrics_port=metrics_port,
    )  # fmt: skip
    try:
        stub = pb_grpc.ExternalScalerStub(grpc.insecure_channel(address))
        answer = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref()), timeout=5)
        assert answer.metricValues[0].metricValue == 0  # no pods: no traffic
        assert stub.IsActive(ref("other"), timeout=5).result is False
        eventually(
            lambda: _scrape(metrics_port)["ofobserve_scaler_functions_forgotten_total"] == 2, 15
        )
        metrics = _scrape(metrics_port)
        assert metrics["ofobserve_scaler_registered_functions"] == 0
        assert metrics["ofobserve_scaler_event_loop_lag_seconds_count"] > 0
        answer = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref()), timeout=5)
        assert answer.metricValues[0].metricValue == 0  # asked again: read again, answered
    finally:
        process.terminate()
        assert process.wait(15) == 0
        assert process.stderr is not None
        process.stderr.close()


def test_unreadable_files_and_bad_targets_exit_1_with_a_clear_message(tmp_path: Path) -> None:
    result = run_cli("scaler", "--tls-cert", str(tmp_path / "no.pem"), "--tls-key", "k.pem",
                     "--targets", str(tmp_path / "t.yaml"))  # fmt: skip
    assert result.exit_code == 1
    assert f"Error: cannot read targets file {tmp_path / 't.yaml'}" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("shop/fn: 5\n")
    result = run_cli("scaler", "--targets", str(bad))
    assert result.exit_code == 1
    assert "expected a mapping of '<namespace>/<function>' to lists of host:port" in result.stderr


def test_the_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "generate_stubs.py"), str(tmp_path)],
        check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    package = Path("ofobserve/scaler/proto")
    generated = sorted(p.name for p in (tmp_path / package).iterdir())
    assert generated == [
        "externalscaler_pb2.py",
        "externalscaler_pb2.pyi",
        "externalscaler_pb2_grpc.py",
        "externalscaler_pb2_grpc.pyi",
    ]
    for name in generated:
        committed = (REPO / package / name).read_bytes()
        assert (tmp_path / package / name).read_bytes() == committed, f"regenerate: {name}"


def test_the_proto_states_keda_contract() -> None:
    """Field numbers and names KEDA's Go client relies on (from the issue's contract)."""
    fields = {
        m.name: {(f.name, f.number) for f in m.fields}
        for m in pb.DESCRIPTOR.message_types_by_name.values()
    }
    assert fields["ScaledObjectRef"] == {("name", 1), ("namespace", 2), ("scalerMetadata", 3)}
    assert fields["MetricSpec"] == {("metricName", 1), ("targetSize", 2), ("targetSizeFloat", 3)}
    assert fields["MetricValue"] == {
        ("metricName", 1),
        ("metricValue", 2),
        ("metricValueFloat", 3),
    }
    assert fields["GetMetricsRequest"] == {("scaledObjectRef", 1), ("metricName", 2)}
    service = pb.DESCRIPTOR.services_by_name["ExternalScaler"]
    assert service.full_name == "externalscaler.ExternalScaler"
    assert {m.name: (m.server_streaming) for m in service.methods} == {
        "IsActive": False,
        "StreamIsActive": True,
        "GetMetricSpec": False,
        "GetMetrics": False,
        "StreamMetricSpec": True,
    }
    assert pb.DESCRIPTOR.GetOptions().go_package == ".;externalscaler"
    _ = time  # keep the import for eventually's clock


def test_a_key_that_does_not_match_its_certificate_exits_1(pki: Path, tmp_path: Path) -> None:
    targets = tmp_path / "targets.yaml"
    targets.write_text("shop/fn: []\n")
    result = run_cli("scaler", "--targets", str(targets), "--tls-cert", str(pki / "server.pem"),
                     "--tls-key", str(pki / "client.key"))  # fmt: skip
    assert result.exit_code == 1
    assert "Error: --tls-cert/--tls-key/--tls-client-ca do not load:" in result.stderr

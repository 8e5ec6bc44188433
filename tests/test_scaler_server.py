"""The scaler's gRPC server over real channels: every RPC, metadata errors, staleness,
StreamIsActive's edges, health, reflection (grpcurl), mTLS and a metadata fuzz."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ofobserve.conventions import SCALER_GRPC_SERVICE
from ofobserve.scaler.config import ScalerConfig
from ofobserve.scaler.proto import externalscaler_pb2 as pb
from ofobserve.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from ofobserve.scaler.sources import Signals, SourceError
from ofobserve.scaler.tls import TLS
from tests.conftest import make_pki
from tests.support.prometheus import free_port
from tests.support.scaler import FakeClock, Running, ScriptedSource, ref, running_scaler
from tests.support.tools import require_tool

KEY = ("shop", "fn")
METRIC = ScalerConfig("shop", "fn").metric_name


def eventually(check: Callable[[], object], timeout: float = 5.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (AssertionError, grpc.RpcError):
            if time.monotonic() > deadline:
                raise
        else:
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError("condition never held")
        time.sleep(0.05)


@pytest.fixture
def source() -> ScriptedSource:
    return ScriptedSource(signals={KEY: Signals(concurrency=25, rate=5, latency=0.1, ready=1)})


@pytest.fixture
def scaler(source: ScriptedSource) -> Iterator[Running]:
    with running_scaler(source, max_staleness=1.0) as running:
        yield running


def test_get_metric_spec_needs_no_data(scaler: Running, source: ScriptedSource) -> None:
    source.failing = True
    spec = scaler.stub().GetMetricSpec(ref(targetConcurrency="10"))
    [metric] = spec.metricSpecs
    assert (metric.metricName, metric.targetSize, metric.targetSizeFloat) == (METRIC, 1, 1.0)


def test_get_metrics_reports_desired_replicas(scaler: Running) -> None:
    stub = scaler.stub()
    request = pb.GetMetricsRequest(
        scaledObjectRef=ref(targetConcurrency="10", targetUtilization="1"), metricName="s0-x"
    )
    [value] = stub.GetMetrics(request).metricValues
    assert (value.metricName, value.metricValueFloat, value.metricValue) == ("s0-x", 3.0, 3)
    assert stub.IsActive(ref(targetConcurrency="10", targetUtilization="1")).result is True
    labels = {"namespace": "shop", "function": "fn"}
    assert scaler.sample("ofobserve_scaler_desired_replicas", labels) == 3


def test_get_metrics_steps_past_the_hpa_tolerance(scaler: Running, source: ScriptedSource) -> None:
    """21 replicas wanted at 20 ready: the HPA (tolerance 0.1) would keep 20 for a value of
    21, so GetMetrics says 22 while desired_replicas stays 21; a cluster that runs its HPA
    with another tolerance says so in hpaTolerance."""
    source.signals = {KEY: Signals(concurrency=210, rate=5, latency=0.1, ready=20)}
    metadata = {"targetConcurrency": "10", "targetUtilization": "1", "panicThreshold": "100"}
    stub = scaler.stub()
    [value] = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(**metadata))).metricValues
    assert (value.metricValue, value.metricValueFloat) == (22, 22.0)
    labels = {"namespace": "shop", "function": "fn"}
    assert scaler.sample("ofobserve_scaler_desired_replicas", labels) == 21
    assert scaler.sample("ofobserve_scaler_metric_value", {**labels, "metric": METRIC}) == 22
    assert scaler.sample("ofobserve_scaler_observed_ready_replicas", labels) == 20
    exact = pb.GetMetricsRequest(scaledObjectRef=ref(**metadata, hpaTolerance="0"))
    eventually(lambda: stub.GetMetrics(exact).metricValues[0].metricValue == 21)


def test_idle_function_reports_zero_in_both_fields(scaler: Running, source: ScriptedSource) -> None:
    source.signals = {}  # a successful read without series: no traffic
    [value] = scaler.stub().GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref())).metricValues
    assert (value.metricValueFloat, value.metricValue) == (0.0, 0)
    assert scaler.stub().IsActive(ref()).result is False


def test_a_source_that_never_answered_is_unavailable(
    scaler: Running, source: ScriptedSource
) -> None:
    source.failing = True
    with pytest.raises(grpc.RpcError) as caught:
        scaler.stub().GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref()))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == (
        "no data yet for shop/fn: the scripted source has not answered"
    )


def test_stale_data_turns_unavailable_never_zero(scaler: Running, source: ScriptedSource) -> None:
    stub = scaler.stub()
    request = pb.GetMetricsRequest(scaledObjectRef=ref(targetUtilization="1"))
    assert stub.GetMetrics(request).metricValues[0].metricValue == 3
    source.failing = True
    seen: list[int] = []
    refused: grpc.RpcError | None = None
    deadline = time.monotonic() + 5
    while refused is None and time.monotonic() < deadline:
        try:
            seen.append(stub.GetMetrics(request).metricValues[0].metricValue)
        except grpc.RpcError as exc:
            refused = exc
        time.sleep(0.05)
    assert refused is not None, "never became UNAVAILABLE"
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    assert "max staleness 1 s" in (refused.details() or "")
    assert seen
    assert set(seen) == {3}  # the snapshot, never 0
    source.failing = False
    eventually(lambda: stub.GetMetrics(request).metricValues[0].metricValue == 3)


def test_a_source_bug_is_an_outage_not_a_crash(scaler: Running, source: ScriptedSource) -> None:
    stub = scaler.stub()
    assert stub.IsActive(ref()).result is True
    source.broken = True
    eventually(lambda: source.reads > 3)
    source.broken = False
    reads = source.reads
    eventually(lambda: source.reads > reads + 2)  # the refresh loop is still running
    assert stub.IsActive(ref()).result is True


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (
            {"targetConcurency": "5"},
            "scalerMetadata.targetConcurency: unknown key; did you mean 'targetConcurrency'?",
        ),
        (
            {"targetConcurrency": "zero"},
            "scalerMetadata.targetConcurrency: must be a number > 0 (got 'zero')",
        ),
        (
            {"targetUtilization": "1.5"},
            "scalerMetadata.targetUtilization: must be a number > 0 and < 1 (got '1.5')",
        ),
        (
            {"profile": "prom"},
            "scalerMetadata.profile: must be one of ofobserve, knative, keda-http, dapr "
            "(got 'prom')",
        ),
        (
            {"latencyObjective": "fast"},
            "scalerMetadata.latencyObjective: must be a duration > 0: seconds, or with ms, s, "
            "m or h (got 'fast')",
        ),
        (
            {"minReplicas": "3", "maxReplicas": "2"},
            "scalerMetadata.maxReplicas: must be >= minReplicas (3) (got 2)",
        ),
        (
            {"minReplicas": "-1"},
            "scalerMetadata.minReplicas: must be a whole number >= 0 (got '-1')",
        ),
        (
            {"panicWindow": "2m"},
            "scalerMetadata.panicWindow: must not be longer than stableWindow (60 s) (got 120 s)",
        ),
        (
            {"hpaTolerance": "1"},
            "scalerMetadata.hpaTolerance: must be a number >= 0 and < 1 (got '1')",
        ),
        (
            {"hpaTolerance": "-0.1"},
            "scalerMetadata.hpaTolerance: must be a number >= 0 and < 1 (got '-0.1')",
        ),
        (
            {"function": "Bad_Name"},
            "scalerMetadata.function: must be a Kubernetes object name (got 'Bad_Name')",
        ),
    ],
)
def test_bad_metadata_is_invalid_argument_naming_the_key(
    scaler: Running, metadata: dict[str, str], message: str
) -> None:
    stub = scaler.stub()
    calls: list[Callable[[], object]] = [
        lambda: stub.GetMetricSpec(ref(**metadata)),
        lambda: stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(**metadata))),
        lambda: stub.IsActive(ref(**metadata)),
        lambda: next(iter(stub.StreamIsActive(ref(**metadata)))),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details() == message


def test_keda_keys_are_accepted(scaler: Running) -> None:
    metadata = {"scalerAddress": "ofobserve-scaler:6000", "enableTLS": "true"}
    assert scaler.stub().GetMetricSpec(ref(**metadata)).metricSpecs[0].metricName == METRIC


def test_stream_is_active_is_edge_triggered(scaler: Running, source: ScriptedSource) -> None:
    config = {"stableWindow": "1", "panicWindow": "0.5"}
    source.signals = {}
    stream = scaler.stub().StreamIsActive(ref(**config))
    messages: list[bool] = []

    def read() -> None:
        with contextlib.suppress(grpc.RpcError):  # CANCELLED when the test ends the stream
            messages.extend(m.result for m in stream)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        eventually(lambda: messages == [False])
        source.signals = {KEY: Signals(concurrency=5, rate=1, ready=1)}
        eventually(lambda: messages == [False, True])
        time.sleep(0.5)  # active and staying active: nothing more is sent
        assert messages == [False, True]
        source.signals = {}
        eventually(lambda: scaler.stub().IsActive(ref(**config)).result is False)
        source.signals = {KEY: Signals(concurrency=5, rate=1, ready=1)}
        eventually(lambda: messages == [False, True, True])
    finally:
        stream.cancel()
        reader.join(5)


def test_stream_is_active_scales_to_a_thousand_streams(scaler: Running) -> None:
    channel = grpc.insecure_channel(scaler.address)
    stub = pb_grpc.ExternalScalerStub(channel)
    streams = [stub.StreamIsActive(ref(f"fn-{i}")) for i in range(1000)]
    first = [next(s).result for s in streams]
    assert len(first) == 1000
    entries = scaler.engine.entries
    assert sum(len(e.subscribers) for e in entries.values()) == 1000
    for s in streams:
        s.cancel()
    eventually(lambda: sum(len(e.subscribers) for e in entries.values()) == 0)


def test_stream_metric_spec_sends_what_get_metric_spec_returns(scaler: Running) -> None:
    stub = scaler.stub()
    stream = stub.StreamMetricSpec(ref(targetConcurrency="7"))
    assert next(iter(stream)) == stub.GetMetricSpec(ref(targetConcurrency="7"))
    stream.cancel()


def test_rpc_metrics_are_recorded(scaler: Running) -> None:
    stub = scaler.stub()
    stub.IsActive(ref())
    with pytest.raises(grpc.RpcError):
        stub.IsActive(ref(profile="x"))
    labels = {
        "grpc_service": "externalscaler.ExternalScaler",
        "grpc_method": "IsActive",
        "grpc_type": "unary",
    }
    # the server records a call after its status is sent: allow it a moment
    eventually(lambda: scaler.sample("grpc_server_handling_seconds_count", labels) == 2)
    assert scaler.sample("grpc_server_handled_total", {**labels, "grpc_code": "OK"}) == 1
    invalid = {**labels, "grpc_code": "INVALID_ARGUMENT"}
    assert scaler.sample("grpc_server_handled_total", invalid) == 1


def test_health_serves(scaler: Running) -> None:
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(scaler.address))
    for service in ("", "externalscaler.ExternalScaler"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_with_grpcurl(scaler: Running) -> None:
    grpcurl = require_tool("grpcurl")
    listed = subprocess.run(
        [grpcurl, "-plaintext", scaler.address, "list"], capture_output=True, text=True, check=True
    )
    assert set(listed.stdout.split()) >= {
        "externalscaler.ExternalScaler",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    body = json.dumps({"name": "fn", "namespace": "shop"})
    spec = subprocess.run(
        [grpcurl, "-plaintext", "-d", body, scaler.address,
         "externalscaler.ExternalScaler/GetMetricSpec"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(spec.stdout) == {
        "metricSpecs": [{"metricName": METRIC, "targetSize": "1", "targetSizeFloat": 1}]
    }


def test_metadata_fuzz_never_crashes(scaler: Running) -> None:
    """Thousands of random maps: the answer is OK or INVALID_ARGUMENT, and the server lives."""
    rnd = random.Random(20261125)
    keys = [*ScalerConfig.__dataclass_fields__, "targetConcurrency", "minReplicas",
            "maxReplicas", "latencyObjective", "stableWindow", "panicWindow", "profile",
            "function", "namespace", "scaleDownDelay", "x", "", "é"]  # fmt: skip
    values = ["", "0", "1", "-1", "1e309", "nan", "inf", "0.5", "10s", "1m", "2h", "abc",
              "ofobserve", "knative", "99999999999999999999", "\x00", "💥", " 5 "]  # fmt: skip
    stub = scaler.stub()
    codes: dict[str, int] = {}
    for _ in range(3000):
        metadata = {rnd.choice(keys): rnd.choice(values) for _ in range(rnd.randint(0, 5))}
        outcome: grpc.RpcError | None = None
        try:
            stub.GetMetricSpec(ref(**metadata))
        except grpc.RpcError as exc:
            outcome = exc
        code = outcome.code().name if outcome else "OK"
        codes[code] = codes.get(code, 0) + 1
        assert code in ("OK", "INVALID_ARGUMENT"), (metadata, outcome)
        assert outcome is None or "scalerMetadata." in (outcome.details() or "")
    assert codes.get("OK", 0) > 0
    assert codes.get("INVALID_ARGUMENT", 0) > 0
    assert stub.GetMetricSpec(ref()).metricSpecs[0].metricName == METRIC


# --- mTLS -----------------------------------------------------------------------------------------


def test_mtls_refuses_a_client_without_a_certificate(pki: Path, source: ScriptedSource) -> None:
    tls = TLS(pki / "server.pem", pki / "server.key", pki / "ca.pem")
    with running_scaler(source, tls=tls) as scaler:
        ca = (pki / "ca.pem").read_bytes()
        anonymous = grpc.secure_channel(scaler.address, grpc.ssl_channel_credentials(ca))
        with pytest.raises(grpc.RpcError) as caught:
            pb_grpc.ExternalScalerStub(anonymous).GetMetricSpec(ref(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        client = grpc.ssl_channel_credentials(
            ca, (pki / "client.key").read_bytes(), (pki / "client.pem").read_bytes()
        )
        trusted = pb_grpc.ExternalScalerStub(grpc.secure_channel(scaler.address, client))
        assert trusted.GetMetricSpec(ref(), timeout=5).metricSpecs[0].metricName == METRIC


def test_the_health_port_serves_probes_in_plaintext_and_nothing_else(
    pki: Path, source: ScriptedSource
) -> None:
    """The kubelet's gRPC probe cannot speak TLS: ``--health-listen`` serves grpc.health.v1
    alone in plaintext, while the ExternalScaler service stays behind mTLS."""
    tls = TLS(pki / "server.pem", pki / "server.key", pki / "ca.pem")
    probe_address = f"127.0.0.1:{free_port()}"
    with running_scaler(source, tls=tls, health_listen=probe_address) as scaler:
        probes = grpc.insecure_channel(probe_address)
        health = health_pb2_grpc.HealthStub(probes)
        for service in ("", SCALER_GRPC_SERVICE):
            request = health_pb2.HealthCheckRequest(service=service)
            answer = health.Check(request, timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as caught:
            pb_grpc.ExternalScalerStub(probes).GetMetricSpec(ref(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        plain = grpc.insecure_channel(scaler.address)
        with pytest.raises(grpc.RpcError) as caught:  # the main port refuses plaintext
            health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def _client(pki: Path, address: str) -> pb_grpc.ExternalScalerStub:
    credentials = grpc.ssl_channel_credentials(
        (pki / "ca.pem").read_bytes(),
        (pki / "client.key").read_bytes(),
        (pki / "client.pem").read_bytes(),
    )
    return pb_grpc.ExternalScalerStub(grpc.secure_channel(address, credentials))


def test_a_rotated_certificate_is_served_without_a_restart(
    pki: Path, tmp_path: Path, source: ScriptedSource, caplog: pytest.LogCaptureFixture
) -> None:
    """cert-manager rewrites the Secret and the kubelet swaps the files: the next
    connection gets the new chain; a pair that does not load keeps the current one."""
    (tmp_path / "renewed").mkdir()
    renewed = make_pki(tmp_path / "renewed")
    live = tmp_path / "live"
    live.mkdir()

    def install(cert: Path, key: Path, ca: Path) -> None:
        for source_file, name in ((cert, "tls.crt"), (key, "tls.key"), (ca, "ca.crt")):
            (live / f".{name}").write_bytes(source_file.read_bytes())
            os.replace(live / f".{name}", live / name)

    install(pki / "server.pem", pki / "server.key", pki / "ca.pem")
    tls = TLS(live / "tls.crt", live / "tls.key", live / "ca.crt")
    with running_scaler(source, tls=tls) as scaler:
        assert _client(pki, scaler.address).GetMetricSpec(ref(), timeout=5).metricSpecs
        install(renewed / "server.pem", renewed / "server.key", renewed / "ca.pem")
        answer = _client(renewed, scaler.address).GetMetricSpec(ref(), timeout=5)
        assert answer.metricSpecs[0].metricName == METRIC
        with pytest.raises(grpc.RpcError) as caught:  # the old chain is no longer served
            _client(pki, scaler.address).GetMetricSpec(ref(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        with caplog.at_level(logging.WARNING, logger="ofobserve.scaler"):
            install(renewed / "server.pem", pki / "server.key", renewed / "ca.pem")
            answer = _client(renewed, scaler.address).GetMetricSpec(ref(), timeout=5)
        assert answer.metricSpecs[0].metricName == METRIC
        assert any(
            r.getMessage().startswith("TLS files changed but do not load, keeping the current")
            for r in caplog.records
        )


def test_a_namespace_outside_watch_namespace_is_refused_on_every_rpc(
    source: ScriptedSource,
) -> None:
    """The chart's RBAC covers the watched namespaces only: say so at once, by name."""
    with running_scaler(source, namespaces=frozenset({"shop", "media"})) as scaler:
        stub = scaler.stub()
        assert stub.GetMetricSpec(ref(), timeout=5).metricSpecs[0].metricName == METRIC
        other = ref(namespace="jobs")
        message = "namespace 'jobs' is not watched by this scaler (--watch-namespace: media, shop)"
        calls = [
            lambda: stub.GetMetricSpec(other, timeout=5),
            lambda: stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=other), timeout=5),
            lambda: stub.IsActive(other, timeout=5),
            lambda: next(stub.StreamIsActive(other, timeout=5)),
            lambda: next(stub.StreamMetricSpec(other, timeout=5)),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert caught.value.details() == message


# --- forgetting functions KEDA no longer asks about, and the event-loop lag probe ---------------


def test_a_function_not_asked_about_is_forgotten_with_its_state_and_series(
    source: ScriptedSource,
) -> None:
    """``forget_after`` seconds without an RPC drops a function, its policy state and its
    error series, counted; an open stream keeps one; asked again, it is a new function:
    no answer until a new first read, never the old decision."""
    clock = FakeClock()
    broken = ("shop", "broken")
    source.failed = {broken: SourceError("scripted", "its pods cannot be listed")}
    with running_scaler(source, forget_after=600, clock=clock) as scaler:
        stub = scaler.stub()
        request = pb.GetMetricsRequest(scaledObjectRef=ref(targetUtilization="1"))
        assert stub.GetMetrics(request).metricValues[0].metricValue == 3
        with pytest.raises(grpc.RpcError) as caught:
            stub.IsActive(ref("broken"))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        errors = {"namespace": "shop", "function": "broken", "source": "scripted",
                  "reason": "scripted"}  # fmt: skip
        eventually(lambda: (scaler.sample("ofobserve_scaler_source_errors_total", errors) or 0) > 0)
        stream = stub.StreamIsActive(ref("streamed"))
        assert next(stream).result is False
        assert scaler.sample("ofobserve_scaler_registered_functions") == 3

        def forgotten() -> float:
            return scaler.sample("ofobserve_scaler_functions_forgotten_total") or 0.0

        clock.advance(300)
        eventually(lambda: stub.IsActive(ref(targetUtilization="1")).result)  # asked: kept
        clock.advance(301)  # broken: 601 s without a question
        eventually(lambda: forgotten() == 1)
        assert set(scaler.engine.entries) == {KEY, ("shop", "streamed")}
        assert scaler.sample("ofobserve_scaler_registered_functions") == 2
        assert scaler.sample("ofobserve_scaler_source_errors_total", errors) is None
        assert source.forgotten == [broken]
        clock.advance(600)  # fn: 901 s; streamed: its stream is still open
        eventually(lambda: forgotten() == 2)
        assert set(scaler.engine.entries) == {("shop", "streamed")}
        stream.cancel()
        eventually(lambda: not scaler.engine.entries[("shop", "streamed")].holders)
        clock.advance(601)
        eventually(lambda: forgotten() == 3)
        assert scaler.sample("ofobserve_scaler_registered_functions") == 0
        assert source.forgotten == [broken, KEY, ("shop", "streamed")]

        source.failing = True  # asked again: a first read is due, the old 3 is gone
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetMetrics(request)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert caught.value.details() == (
            "no data yet for shop/fn: the scripted source has not answered"
        )
        source.failing = False
        eventually(lambda: stub.GetMetrics(request).metricValues[0].metricValue == 3)


def test_stream_metric_spec_keeps_its_function(source: ScriptedSource) -> None:
    clock = FakeClock()
    with running_scaler(source, forget_after=60, clock=clock) as scaler:
        stream = scaler.stub().StreamMetricSpec(ref())
        assert next(stream).metricSpecs[0].metricName == METRIC
        clock.advance(61)
        reads = source.reads
        eventually(lambda: source.reads > reads + 2)  # sweeps ran after each read
        assert set(scaler.engine.entries) == {KEY}
        stream.cancel()
        eventually(lambda: not scaler.engine.entries[KEY].holders)
        clock.advance(61)
        eventually(lambda: not scaler.engine.entries)
        assert scaler.sample("ofobserve_scaler_functions_forgotten_total") == 1


def test_the_event_loop_lag_probe_counts_and_sees_a_blocked_loop(source: ScriptedSource) -> None:
    with running_scaler(source, lag_interval=0.01) as scaler:
        name = "ofobserve_scaler_event_loop_lag_seconds"
        eventually(lambda: (scaler.sample(f"{name}_count") or 0) >= 5)
        count = scaler.sample(f"{name}_count") or 0
        eventually(lambda: (scaler.sample(f"{name}_count") or 0) > count)

        def late() -> float:
            total = scaler.sample(f"{name}_count") or 0
            return total - (scaler.sample(f"{name}_bucket", {"le": "0.1"}) or 0)

        assert late() == 0  # nothing held the loop for 0.1 s so far
        scaler.loop.call_soon_threadsafe(time.sleep, 0.3)  # hold the loop for 0.3 s
        eventually(lambda: late() >= 1)


def test_a_new_function_is_warmed_from_the_source_history(source: ScriptedSource) -> None:
    """The first answer already averages the history the source gives (nine samples at
    45 in flight, then the read at 5: mean 41, 10 per replica, so 5); cold it would be 1.
    A function the source has no history for answers from its first read alone."""
    source.signals = {
        KEY: Signals(concurrency=5, rate=1, ready=1),
        ("shop", "new"): Signals(concurrency=5, rate=1, ready=1),
    }
    source.past = {
        KEY: [(age, Signals(concurrency=45, rate=1, ready=1)) for age in range(9, 0, -1)]
    }
    metadata = {"targetUtilization": "1", "stableWindow": "10s", "panicThreshold": "1000"}
    with running_scaler(source, interval=1.0) as scaler:
        stub = scaler.stub()
        warm = pb.GetMetricsRequest(scaledObjectRef=ref(**metadata))
        assert stub.GetMetrics(warm).metricValues[0].metricValue == 5
        cold = pb.GetMetricsRequest(scaledObjectRef=ref("new", **metadata))
        assert stub.GetMetrics(cold).metricValues[0].metricValue == 1

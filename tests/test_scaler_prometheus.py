"""The scaler's Prometheus source against a real Prometheus of its own (so the test can
kill and restart it), scraping synthetic native-profile exporters for 100 functions."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.server
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import grpc
import pytest
from prometheus_client import CollectorRegistry

from ofobserve import conventions as c
from ofobserve.scaler.config import ScalerConfig
from ofobserve.scaler.proto import externalscaler_pb2 as pb
from ofobserve.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from ofobserve.scaler.sources import PrometheusSource, Reading, SourceError
from tests.support.exporters import Clock, Exporters, Family, StaticFamilies, histogram
from tests.support.prometheus import PrometheusServer, free_port
from tests.support.scaler import Running, ref, running_scaler
from tests.support.tools import REPO, require_tool
from tests.test_scaler_server import eventually

FUNCTIONS = [(f"team-{i % 4}", f"fn-{i:03d}") for i in range(100)]
METADATA = {"targetConcurrency": "1", "targetUtilization": "1"}
#: In flight of shop/warm, which the warm-start test steps (Prometheus holds its history
#: from the module's start).
WARM_LEVEL = [2.0]


def _warm_families() -> list[Family]:
    ident = {"namespace": "shop", "function": "warm"}
    gauge = Family(c.NATIVE_IN_FLIGHT, "gauge").add(ident, lambda: WARM_LEVEL[0])
    deployment = {"namespace": "shop", "deployment": "warm-deployment"}
    labels = Family(c.KSM_DEPLOYMENT_LABELS, "gauge").add(
        {**deployment, c.KSM_FUNCTION_LABEL: "warm"}, 1
    )
    available = Family(c.KSM_DEPLOYMENT_AVAILABLE, "gauge").add(deployment, 2)
    return [gauge, labels, available]


def in_flight(index: int) -> int:
    return index % 5 + 1


def _families(keys: list[tuple[int, tuple[str, str]]], clock: Clock) -> list[Family]:
    gauge = Family(c.NATIVE_IN_FLIGHT, "gauge")
    requests = Family(c.NATIVE_REQUESTS_TOTAL.removesuffix("_total"), "counter")
    durations = Family(c.NATIVE_DURATION_SECONDS, "histogram")
    labels_family = Family(c.KSM_DEPLOYMENT_LABELS, "gauge")
    available = Family(c.KSM_DEPLOYMENT_AVAILABLE, "gauge")
    for index, (ns, fn) in keys:
        ident = {"namespace": ns, "function": fn}
        gauge.add(ident, in_flight(index))
        requests.add({**ident, "code": "200"}, clock.counter(10), "_total")
        histogram(durations, ident, (0.1, 0.25, 0.5, 1), lambda b: 1.0 if b >= 0.25 else 0.0,
                  10, clock)  # fmt: skip
        deployment = {"namespace": ns, "deployment": f"{fn}-deployment"}
        labels_family.add({**deployment, c.KSM_FUNCTION_LABEL: fn}, 1)
        available.add(deployment, 2)
    return [gauge, requests, durations, labels_family, available]


@pytest.fixture(scope="module")
def own_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A Prometheus of this module's own: the tests kill it."""
    server = PrometheusServer(require_tool("prometheus"), tmp_path_factory.mktemp("scaler-prom"))
    server.start()
    clock, exporters, jobs = Clock(), Exporters(), []
    indexed = list(enumerate(FUNCTIONS))
    for part in range(4):
        registry = CollectorRegistry()
        registry.register(StaticFamilies(_families(indexed[part::4], clock)))
        jobs.append(
            {
                "job_name": f"functions-{part}",
                "honor_labels": True,
                "static_configs": [{"targets": [exporters.serve(registry)]}],
            }
        )
    warm = CollectorRegistry()
    warm.register(StaticFamilies(_warm_families()))
    jobs.append(
        {"job_name": "warm", "honor_labels": True,
         "static_configs": [{"targets": [exporters.serve(warm)]}]}
    )  # fmt: skip
    server.configure(jobs)
    try:
        in_flight = f'{c.NATIVE_IN_FLIGHT}{{function!="warm"}}'
        server.wait_for(f"count(count_over_time({in_flight}[1m]) >= 12) == 100", 60)
        yield server
    finally:
        exporters.close()
        server.stop()


@pytest.fixture(scope="module")
def scaler(own_prometheus: PrometheusServer) -> Iterator[Running]:
    source = PrometheusSource(own_prometheus.url, window="10s", timeout=1.0)
    with running_scaler(source, max_staleness=3.0, interval=0.2) as running:
        source.on_query = running.metrics.queries.inc
        yield running


def _desired(scaler: Running, ns: str, fn: str) -> int:
    request = pb.GetMetricsRequest(scaledObjectRef=ref(fn, ns, **METADATA))
    return int(scaler.stub().GetMetrics(request, timeout=5).metricValues[0].metricValue)


def _refreshes(scaler: Running) -> float:
    value = scaler.sample("ofobserve_scaler_source_request_duration_seconds_count",
                          {"source": "prometheus"})  # fmt: skip
    return value or 0.0


def _queries(scaler: Running) -> float:
    return scaler.sample("ofobserve_scaler_prometheus_queries_total") or 0.0


def _at_rest(scaler: Running) -> tuple[float, float]:
    """(queries, reads) read between two reads, under the engine's own lock."""

    async def read() -> tuple[float, float]:
        async with scaler.engine._lock:
            return _queries(scaler), _refreshes(scaler)

    return asyncio.run_coroutine_threadsafe(read(), scaler.loop).result(10)


def _queries_per_refresh(scaler: Running, seconds: float = 2.0) -> float:
    q0, r0 = _at_rest(scaler)
    time.sleep(seconds)
    q1, r1 = _at_rest(scaler)
    return (q1 - q0) / (r1 - r0)


def test_values_follow_the_load_and_queries_do_not_grow(scaler: Running) -> None:
    for index, (ns, fn) in enumerate(FUNCTIONS[:10]):
        assert _desired(scaler, ns, fn) == in_flight(index)
    with_ten = _queries_per_refresh(scaler)
    for index, (ns, fn) in enumerate(FUNCTIONS):
        assert _desired(scaler, ns, fn) == in_flight(index)
    with_hundred = _queries_per_refresh(scaler)
    assert len(scaler.engine.entries) == 100
    # concurrency, rate, latency, ready: four batched queries a tick, for 10 or 100 functions
    assert with_ten == with_hundred == 4


def test_an_outage_serves_the_snapshot_then_unavailable_then_recovers(
    scaler: Running, own_prometheus: PrometheusServer
) -> None:
    ns, fn = FUNCTIONS[3]
    assert _desired(scaler, ns, fn) == in_flight(3)
    own_prometheus.stop()
    answers: list[int] = []
    refused: grpc.RpcError | None = None
    deadline = time.monotonic() + 10
    while refused is None and time.monotonic() < deadline:
        try:
            answers.append(_desired(scaler, ns, fn))
        except grpc.RpcError as exc:
            refused = exc
        time.sleep(0.1)
    assert refused is not None
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    assert len(answers) >= 10  # about 3 s of answers from the snapshot
    assert set(answers) == {in_flight(3)}  # never 0
    labels = {"namespace": ns, "function": fn, "source": "prometheus", "reason": "prometheus"}
    errors = scaler.sample("ofobserve_scaler_source_errors_total", labels)
    assert errors is not None
    assert errors > 0
    own_prometheus.resume()
    eventually(lambda: _desired(scaler, ns, fn) == in_flight(3), 30)


def test_the_batched_queries_are_what_the_docs_show(tmp_path: Path) -> None:
    from ofobserve.profiles import NATIVE
    from ofobserve.scaler.sources import batch_queries

    queries = batch_queries(NATIVE, 0.95, "1m")
    assert queries.concurrency == "sum by (namespace, function) (function_requests_in_flight)"
    assert queries.rate == (
        'sum by (namespace, function) (rate({__name__=~"function_requests_total"}[1m]))'
    )
    del tmp_path


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every query with an empty vector and remembers the request headers and
    paths."""

    seen: ClassVar[list[dict[str, str]]] = []
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Recorder.seen.append(dict(self.headers))
        _Recorder.paths.append(self.path)
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _http_server(tls: ssl.SSLContext | None = None) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_bearer_and_basic_auth_reach_prometheus() -> None:
    config = ScalerConfig("shop", "fn")
    with _http_server() as url:
        _Recorder.seen.clear()
        found = asyncio.run(PrometheusSource(url, bearer_token="s3cret").fetch([config]))
        assert found == Reading()  # a successful read without series: no traffic, not an error
        assert {h["Authorization"] for h in _Recorder.seen} == {"Bearer s3cret"}
        _Recorder.seen.clear()
        asyncio.run(PrometheusSource(url, basic_auth=("ofobserve", "pw")).fetch([config]))
        expected = "Basic " + base64.b64encode(b"ofobserve:pw").decode()
        assert {h["Authorization"] for h in _Recorder.seen} == {expected}


def test_extra_headers_and_a_path_prefix_reach_the_peer() -> None:
    """Mimir and Cortex serve the Prometheus API under ``/prometheus`` and pick the tenant
    from ``X-Scope-OrgID``: every query goes to ``<base>/api/v1/query`` (a trailing slash on
    the base is not doubled) and carries every header, beside the bearer token."""
    config = ScalerConfig("shop", "fn")
    headers = {"X-Scope-OrgID": "tenant-a|tenant-b", "X-Extra": "1"}
    with _http_server() as url:
        _Recorder.seen.clear()
        _Recorder.paths.clear()
        source = PrometheusSource(f"{url}/prometheus/", headers=headers, bearer_token="s3cret")
        assert asyncio.run(source.fetch([config])) == Reading()
        assert len(_Recorder.paths) == 4  # concurrency, rate, latency, ready
        assert {p.partition("?")[0] for p in _Recorder.paths} == {"/prometheus/api/v1/query"}
        for seen in _Recorder.seen:
            assert seen["X-Scope-OrgID"] == "tenant-a|tenant-b"
            assert seen["X-Extra"] == "1"
            assert seen["Authorization"] == "Bearer s3cret"


def test_prometheus_header_flags_reach_the_peer_from_a_real_process(tmp_path: Path) -> None:
    """``--prometheus-header`` as users pass it, one value read from a file (as a Secret
    is mounted: with its trailing newline), against a real HTTP peer."""
    token = tmp_path / "token"
    token.write_text("Bearer from-a-secret\n")
    with _http_server() as url:
        _Recorder.seen.clear()
        _Recorder.paths.clear()
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "ofobserve", "scaler", "--source", "prometheus",
             "--prometheus-url", f"{url}/prometheus", "--listen", f"127.0.0.1:{port}",
             "--metrics-listen", f"127.0.0.1:{free_port()}",
             "--prometheus-header", "X-Scope-OrgID=tenant-a",
             "--prometheus-header", f"Authorization=@{token}"],
            cwd=REPO, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            stub = pb_grpc.ExternalScalerStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
            request = pb.GetMetricsRequest(scaledObjectRef=ref("fn", "shop"))
            answer = eventually(lambda: stub.GetMetrics(request, timeout=5), 15)
            assert isinstance(answer, pb.GetMetricsResponse)
            assert answer.metricValues[0].metricValue == 0  # read: no series, no traffic
        finally:
            process.terminate()
            assert process.wait(15) == 0
        paths = {p.partition("?")[0] for p in _Recorder.paths}
        # the instant reads, and the range reads of the warm start: all under the prefix
        assert paths == {"/prometheus/api/v1/query", "/prometheus/api/v1/query_range"}
        assert {h["X-Scope-OrgID"] for h in _Recorder.seen} == {"tenant-a"}
        assert {h["Authorization"] for h in _Recorder.seen} == {"Bearer from-a-secret"}


def test_the_ca_option_verifies_prometheus_certificate(pki: Path) -> None:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pki / "server.pem", pki / "server.key")
    config = ScalerConfig("shop", "fn")
    with _http_server(tls) as url:
        trusted = PrometheusSource(url, ca_file=str(pki / "ca.pem"))
        assert asyncio.run(trusted.fetch([config])) == Reading()
        with pytest.raises(SourceError, match="SSLError"):
            asyncio.run(PrometheusSource(url).fetch([config]))  # system CAs: refused


def _kube_state_metrics(clock: Clock) -> list[Family]:
    """kube-state-metrics for one Dapr function in OpenFunction's default proxy mode: its
    own Deployment (2 available) and the dapr-proxy Deployment (1 available), both labelled
    with the function (CreateDaprProxy copies spec.serving.labels); names as OpenFunction
    generates them (fact sheet section 7)."""
    labels = Family(c.KSM_DEPLOYMENT_LABELS, "gauge")
    available = Family(c.KSM_DEPLOYMENT_AVAILABLE, "gauge")
    for deployment, count in (
        ("serving-x1y2z-deployment-latest-abcde", 2),
        ("serving-x1y2z-proxy-deployment-latest-fghij", 1),
    ):
        ident = {"namespace": "shop", "deployment": deployment}
        labels.add({**ident, c.KSM_FUNCTION_LABEL: "orders"}, 1)
        available.add(ident, count)
    del clock
    return [labels, available]


def test_ready_replicas_leave_the_dapr_proxy_deployment_out(prometheus: PrometheusServer) -> None:
    """The real Prometheus, kube-state-metrics as it exports a proxy-mode function, and the
    function's daprd series as its PodMonitor labels them (``function`` from app_id).
    kube-state-metrics is scraped twice, as two instances export it (HA, or during a
    rollout): the ready query still counts each Deployment once (unreduced, its join fails
    with "many-to-many matching not allowed")."""
    from tests.support.dapr_exporter import families as dapr_families

    clock, exporters = Clock(), Exporters()
    ksm, daprd = CollectorRegistry(), CollectorRegistry()
    ksm.register(StaticFamilies(_kube_state_metrics(clock)))
    app = {"app_id": "orders-shop", "namespace": "shop", "binding": [10, 150], "pubsub": [5, 400]}
    daprd.register(StaticFamilies(dapr_families([app], clock)))
    try:
        prometheus.configure(
            [
                {"job_name": "kube-state-metrics", "honor_labels": True,
                 "static_configs": [{"targets": [exporters.serve(ksm)]}]},
                {"job_name": "kube-state-metrics-b", "honor_labels": True,
                 "static_configs": [{"targets": [exporters.serve(ksm)]}]},
                {"job_name": "daprd", "honor_labels": True,
                 "static_configs": [{"targets": [exporters.serve(daprd)],
                                     "labels": {"function": "orders"}}]},
            ]
        )  # fmt: skip
        # series older than the rate window: no extrapolation from a partial window
        prometheus.wait_for("count_over_time(dapr_component_pubsub_ingress_count[10s]) >= 9")
        prometheus.wait_for(f"count({c.KSM_DEPLOYMENT_AVAILABLE}) == 4")  # 2 x 2 instances
        config = ScalerConfig("shop", "orders", profile="dapr")
        reading = asyncio.run(PrometheusSource(prometheus.url, window="5s").fetch([config]))
        signals = reading.signals[config.key]
        assert signals.ready == 2  # not 3: the dapr-proxy Deployment is no replica
        assert 3.0 < signals.concurrency < 4.0  # Little's law: 10 x 0.15 s + 5 x 0.4 s
        assert signals.latency is not None
        assert 0.3 < signals.latency <= 0.4
    finally:
        exporters.close()


def _scaler_process(url: str) -> tuple[subprocess.Popen[bytes], pb_grpc.ExternalScalerStub]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ofobserve", "scaler", "--source", "prometheus",
         "--prometheus-url", url, "--listen", f"127.0.0.1:{port}", "--metrics-listen",
         f"127.0.0.1:{free_port()}", "--refresh-interval", "0.5", "--rate-window", "5s"],
        cwd=REPO, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return process, pb_grpc.ExternalScalerStub(grpc.insecure_channel(f"127.0.0.1:{port}"))


def test_a_new_replica_fills_its_window_from_history_and_agrees(
    own_prometheus: PrometheusServer,
) -> None:
    """Two scaler processes behind one client that alternates between them, through a
    load step (2 -> 7 in flight, one per replica, 8 s stable window, no panic): A answers
    from before the step and steps the live reads through it; B is asked first in the
    middle of it. Warm, B's first answer is A's within 1 replica; cold, B's window would
    hold the new level only (7) while A's mean is still near 4. (A's own window, too, was
    filled from history when it was first asked.)"""
    metadata = {"targetConcurrency": "1", "targetUtilization": "1", "stableWindow": "8s",
                "panicWindow": "2s", "panicThreshold": "1000"}  # fmt: skip
    request = pb.GetMetricsRequest(scaledObjectRef=ref("warm", "shop", **metadata))
    replicas = [_scaler_process(own_prometheus.url), _scaler_process(own_prometheus.url)]
    (_, a), (_, b) = replicas

    def answer(stub: pb_grpc.ExternalScalerStub) -> int:
        return int(stub.GetMetrics(request, timeout=5).metricValues[0].metricValue)

    try:
        assert eventually(lambda: answer(a) == 2, 15)
        time.sleep(1)  # A steps live reads at 2
        WARM_LEVEL[0] = 7.0
        own_prometheus.wait_for(f'{c.NATIVE_IN_FLIGHT}{{function="warm"}} == 7')
        time.sleep(2)  # about a third of the stable window at the new level
        pairs = []
        for _ in range(4):
            pairs.append((answer(b), answer(a)))
            time.sleep(0.3)
        first_b, a_then = pairs[0]
        assert 3 <= a_then <= 5, pairs  # mid-step: neither the old level nor the new
        for from_b, from_a in pairs:
            assert abs(from_b - from_a) <= 1, pairs
        assert first_b <= 6, pairs  # not the cold answer (7)
    finally:
        WARM_LEVEL[0] = 2.0
        for process, _ in replicas:
            process.terminate()
            process.wait(15)


def test_the_filtered_queries_of_a_warm_start_parse_and_select_only_those_functions(
    own_prometheus: PrometheusServer,
) -> None:
    """Every profile's batch queries limited to some functions (a dot in a name is escaped)
    are valid PromQL for the real Prometheus; for the native profile they select those
    functions and no other."""
    from ofobserve import profiles
    from ofobserve.scaler.sources import batch_queries

    only = [("shop", "warm"), ("team-0", "fn-000"), ("team-1", "a.b")]
    for name in c.PROFILES:
        for generation in c.KNATIVE_GENERATIONS:
            prof = profiles.profile(name, generation, ("binding", "pubsub"))
            queries = batch_queries(prof, 0.95, "10s", only)
            for expr in (queries.concurrency, queries.rate, queries.latency, queries.ready):
                own_prometheus.query(expr)  # raises on a parse error
    native = batch_queries(profiles.profile("ofobserve", "opencensus", ()), 0.95, "10s", only)
    seen = {
        (s["metric"]["namespace"], s["metric"]["function"])
        for s in own_prometheus.query(native.concurrency)
    }
    assert seen == {("shop", "warm"), ("team-0", "fn-000")}
    ready = {
        (s["metric"]["namespace"], s["metric"]["function"])
        for s in own_prometheus.query(native.ready)
    }
    assert ready == {("shop", "warm"), ("team-0", "fn-000")}

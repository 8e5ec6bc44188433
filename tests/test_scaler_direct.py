"""The direct source: what it reads of the native and dapr profiles, reads that fail
in full or in part, the ``--targets`` file, and pod discovery against a real API server.

Pods are real processes (tests.support.native_exporter, tests.support.dapr_exporter); in
the Kubernetes tests each listens on its own loopback address, the pod IP the API server
holds for it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from ofobserve import conventions as c
from ofobserve.kube.client import Kube
from ofobserve.scaler.config import ScalerConfig
from ofobserve.scaler.discovery import WatchDiscovery
from ofobserve.scaler.proto import externalscaler_pb2 as pb
from ofobserve.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from ofobserve.scaler.sources import DirectSource, StaticDiscovery, Targets
from tests.conftest import run_cli
from tests.support.exporters import ExporterProcesses
from tests.support.kube import KubeAPI
from tests.support.prometheus import free_port
from tests.support.scaler import Running, ref, running_scaler
from tests.support.tools import REPO
from tests.test_scaler_server import eventually

FN = {"namespace": "shop", "function": "fn"}
ORDERS = {"namespace": "shop", "function": "orders"}
#: 10 binding events/s of 150 ms and 5 messages/s of 400 ms: 3.5 in flight (Little's law).
ORDERS_TRAFFIC = {"binding": [10, 150], "pubsub": [5, 400]}
#: Another app on the same daprd, much busier: it must not count for orders.
OTHER = {"app_id": "other-shop", "namespace": "shop", "binding": [100, 1000]}
PER_REPLICA = {"targetConcurrency": "1", "targetUtilization": "1"}
WINDOWS = {"stableWindow": "2", "panicWindow": "1", "panicThreshold": "100"}


@pytest.fixture
def processes() -> Iterator[ExporterProcesses]:
    started = ExporterProcesses()
    try:
        yield started
    finally:
        started.close()


def _native(processes: ExporterProcesses, in_flight: float = 4, **where: Any) -> str:
    return processes.start("tests.support.native_exporter", str(in_flight), "10", **where)


def _daprd(processes: ExporterProcesses, *apps: dict[str, Any], **where: Any) -> str:
    return processes.start("tests.support.dapr_exporter", json.dumps(list(apps)), **where)


def _value(scaler: Running, name: str = "fn", namespace: str = "shop", **metadata: str) -> int:
    request = pb.GetMetricsRequest(scaledObjectRef=ref(name, namespace, **metadata))
    return int(scaler.stub().GetMetrics(request, timeout=5).metricValues[0].metricValue)


def _errors(scaler: Running, labels: dict[str, str], reason: str) -> float:
    found = scaler.sample(
        "ofobserve_scaler_source_errors_total", {**labels, "source": "direct", "reason": reason}
    )
    return found or 0.0


# --- what is read --------------------------------------------------------------------------------


def test_a_profile_the_direct_source_cannot_read_is_unavailable(
    processes: ExporterProcesses,
) -> None:
    """``keda-http`` without ``route`` (the interceptor's series name only the route): not
    a made-up 0 (what 'no traffic' would give) but UNAVAILABLE, saying what to do. The
    knative and keda-http reads themselves: tests/test_scaler_direct_profiles.py."""
    discovery = StaticDiscovery({"shop/fn": [_native(processes)]})
    profile = "keda-http"
    with running_scaler(DirectSource(discovery), interval=0.1) as scaler:
        stub = scaler.stub()
        assert stub.GetMetricSpec(ref(profile=profile)).metricSpecs[0].targetSize == 1
        for call in (
            lambda: _value(scaler, profile=profile),
            lambda: stub.IsActive(ref(profile=profile)),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert caught.value.details() == (
                "no data for shop/fn: the direct source reads keda-http from the shared "
                "interceptor, whose series name the route only: set scalerMetadata.route to "
                "the function's HTTPScaledObject name, or run the scaler with --source "
                "prometheus"
            )
        eventually(lambda: _errors(scaler, FN, "profile") > 0)
        assert scaler.sample("ofobserve_scaler_desired_replicas", FN) is None
        assert scaler.sample("ofobserve_scaler_sample_age_seconds", FN) is None
        # the same function with a profile it reads is answered at once
        assert _value(scaler, **PER_REPLICA) == 4


def test_dapr_signals_come_from_daprd(processes: ExporterProcesses) -> None:
    daprd = _daprd(
        processes, {"app_id": "orders-shop", "namespace": "shop", **ORDERS_TRAFFIC}, OTHER
    )
    discovery = StaticDiscovery({"shop/orders": {"metrics": [daprd], "ready": 3}})
    metadata = {"profile": "dapr", **PER_REPLICA, **WINDOWS}
    with running_scaler(DirectSource(discovery), interval=0.2) as scaler:
        # the first read already has a value: new daprd targets are scraped twice
        assert _value(scaler, "orders", **metadata) in (4, 5)
        eventually(lambda: _value(scaler, "orders", **metadata) == 4, 10)  # 3.5 in flight
        concurrency = scaler.sample("ofobserve_scaler_observed_concurrency", ORDERS)
        assert concurrency is not None
        assert 3.0 < concurrency < 4.0
        latency = scaler.sample("ofobserve_scaler_observed_latency_seconds", ORDERS)
        assert latency is not None
        assert 0.3 < latency <= 0.4  # p95 in the pubsub messages' (300, 400] ms bucket, in s
        assert scaler.sample("ofobserve_scaler_observed_ready_replicas", ORDERS) == 3
        assert _errors(scaler, ORDERS, "scrape") == 0


def test_a_plain_list_for_dapr_leaves_ready_replicas_unknown(processes: ExporterProcesses) -> None:
    """A plain list may be the dapr-proxy: its daprd endpoints are not replicas."""
    daprd = _daprd(processes, {"app_id": "orders-shop", "namespace": "shop", **ORDERS_TRAFFIC})
    source = DirectSource(StaticDiscovery({"shop/orders": [daprd]}))
    with running_scaler(source, interval=0.2) as scaler:
        eventually(
            lambda: _value(scaler, "orders", profile="dapr", **PER_REPLICA, **WINDOWS) == 4, 10
        )
        assert scaler.sample("ofobserve_scaler_observed_ready_replicas", ORDERS) is None


# --- failed reads --------------------------------------------------------------------------------


def test_a_read_where_every_pod_fails_keeps_the_last_decision(processes: ExporterProcesses) -> None:
    pod = _native(processes)
    metadata = {"targetConcurrency": "2", "targetUtilization": "1"}
    source = DirectSource(StaticDiscovery({"shop/fn": [pod]}))
    with running_scaler(source, max_staleness=1.0, interval=0.1) as scaler:
        eventually(lambda: _value(scaler, **metadata) == 2, 10)
        processes.kill(pod)
        seen: list[int] = []
        refused: grpc.RpcError | None = None
        deadline = time.monotonic() + 10
        while refused is None and time.monotonic() < deadline:
            try:
                seen.append(_value(scaler, **metadata))
            except grpc.RpcError as exc:
                refused = exc
            time.sleep(0.05)
        assert refused is not None, "never became UNAVAILABLE"
        assert refused.code() == grpc.StatusCode.UNAVAILABLE
        details = refused.details() or ""
        assert details.startswith("no fresh data for shop/fn: last good read ")
        assert (
            f"(max staleness 1 s); last failure: 1 of its 1 target(s) did not answer ({pod}: "
            in details
        )
        assert seen
        assert set(seen) == {2}  # the last good decision, never a made-up 0
        assert _errors(scaler, FN, "scrape") > 0


def test_no_pods_is_a_good_read_without_traffic() -> None:
    """Zero targets (scaled to zero): read, no traffic, answered 0 with a fresh sample."""
    source = DirectSource(StaticDiscovery({"shop/fn": []}))
    with running_scaler(source, interval=0.1) as scaler:
        assert _value(scaler) == 0
        assert scaler.stub().IsActive(ref()).result is False
        assert scaler.sample("ofobserve_scaler_observed_ready_replicas", FN) == 0
        assert scaler.sample("ofobserve_scaler_sample_age_seconds", FN) is not None


def test_some_pods_failing_decides_from_the_others(processes: ExporterProcesses) -> None:
    """Partial failure: the answering pods' signals, and every failed scrape counted."""
    alive, dead = _native(processes, 3), f"127.0.0.1:{free_port()}"
    source = DirectSource(StaticDiscovery({"shop/fn": [alive, dead]}))
    with running_scaler(source, interval=0.1) as scaler:
        assert _value(scaler, **PER_REPLICA) == 3
        assert scaler.sample("ofobserve_scaler_observed_concurrency", FN) == 3
        assert scaler.sample("ofobserve_scaler_observed_ready_replicas", FN) == 1
        eventually(lambda: _errors(scaler, FN, "scrape") >= 2)


# --- the --targets file, through the real command -----------------------------------------------


def _metrics(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_the_targets_file_says_where_daprd_is(processes: ExporterProcesses, tmp_path: Path) -> None:
    daprd = _daprd(processes, {"app_id": "orders-shop", "namespace": "shop", **ORDERS_TRAFFIC})
    targets = tmp_path / "targets.yaml"
    targets.write_text(yaml.safe_dump({"shop/orders": {"metrics": [daprd], "ready": 2}}))
    port, metrics_address = free_port(), f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "ofobserve", "scaler", "--targets", str(targets),
         "--listen", f"127.0.0.1:{port}", "--metrics-listen", metrics_address,
         "--refresh-interval", "0.2"],
        cwd=REPO, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        health = health_pb2_grpc.HealthStub(channel)
        eventually(
            lambda: (
                health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                == health_pb2.HealthCheckResponse.SERVING
            ),
            15,
        )
        stub = pb_grpc.ExternalScalerStub(channel)
        request = pb.GetMetricsRequest(
            scaledObjectRef=ref("orders", profile="dapr", **PER_REPLICA, **WINDOWS)
        )
        eventually(lambda: stub.GetMetrics(request, timeout=5).metricValues[0].metricValue == 4, 10)
        labels = tuple(sorted(ORDERS.items()))
        found = _metrics(metrics_address)
        assert found[("ofobserve_scaler_observed_ready_replicas", labels)] == 2
    finally:
        process.terminate()
        assert process.wait(15) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "- a\n",
            "expected a mapping of '<namespace>/<function>' to lists of host:port, or to "
            "{metrics: [host:port, ...], ready: N}",
        ),
        ("fn: [a:1]\n", "'fn': expected '<namespace>/<function>'"),
        (
            "shop/fn: {metrics: [a:1], ready: -1}\n",
            "shop/fn.ready: must be a whole number >= 0 (got -1)",
        ),
        (
            "shop/fn: {metrics: [a:1], ready: true}\n",
            "shop/fn.ready: must be a whole number >= 0 (got True)",
        ),
        ("shop/fn: {ready: 2}\n", "shop/fn.metrics: expected a list of host:port (got None)"),
        (
            "shop/fn: {metrics: [a:1], pods: 2}\n",
            "shop/fn: unknown key 'pods'; expected 'metrics', 'ready'",
        ),
    ],
)
def test_a_bad_targets_file_exits_1_naming_the_key(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(content)
    result = run_cli("scaler", "--targets", str(path))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {path}: {message}"


# --- pod discovery through a real Kubernetes API server ------------------------------------------


class Pods:
    """Pods in one namespace of the real API server, with their status set as a kubelet
    would (pod IP, Ready condition): no kubelet runs there."""

    def __init__(self, api: KubeAPI, core: Any, namespace: str) -> None:
        self.api, self.core, self.namespace = api, core, namespace
        self.count = 0
        self.watches: list[WatchDiscovery] = []

    def discovery(self, **ports: int) -> WatchDiscovery:
        """Pod discovery by one watch of this namespace, listed once (closed at the end)."""
        found = WatchDiscovery(Kube(self.core.api_client), [self.namespace], **ports).start()
        self.watches.append(found)
        assert found.wait_synced(10)
        return found

    def add(self, function: str, ip: str, *, proxy: bool = False, ready: bool = True) -> None:
        self.count += 1
        name = f"{function}-{'proxy-' if proxy else ''}{self.count}"
        labels = {c.FUNCTION_POD_LABEL: function, c.OPENFUNCTION_MANAGED_LABEL: "true"}
        if proxy:  # what OpenFunction's CreateDaprProxy puts on the proxy pod
            labels[c.OPENFUNCTION_PROXY_LABEL] = "serving-x1y2z"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": {"containers": [{"name": "dapr-proxy" if proxy else c.FUNCTION_CONTAINER,
                                     "image": "example.invalid/fn:1"}]},
        }  # fmt: skip
        self.api.kubectl("create", "-f", "-", input=json.dumps(pod))
        condition = {"type": "Ready", "status": "True" if ready else "False"}
        status = {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [condition],
        }
        self.core.patch_namespaced_pod_status(name, self.namespace, {"status": status})


@pytest.fixture
def pods(kube_apiserver: KubeAPI) -> Iterator[Pods]:
    import kubernetes

    # The kubeconfig skips TLS verification (urllib3 warns); trust the API server's own
    # self-signed certificate instead (start-apiserver.sh: --cert-dir=STATE/certs).
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kube_apiserver.kubeconfig), client_configuration=configuration
    )
    configuration.verify_ssl = True
    configuration.ssl_ca_cert = str(kube_apiserver.kubeconfig.parent / "certs" / "apiserver.crt")
    core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))
    made = Pods(kube_apiserver, core, kube_apiserver.fresh_namespace("scaler"))
    try:
        yield made
    finally:
        for discovery in made.watches:
            discovery.close()


def test_native_discovery_leaves_the_dapr_proxy_out(
    pods: Pods, processes: ExporterProcesses
) -> None:
    port = free_port()
    for ip in ("127.0.0.11", "127.0.0.12"):
        _native(processes, 3, host=ip, port=port)
        pods.add("fn", ip)
    pods.add("fn", "127.0.0.13", ready=False)
    pods.add("fn", "127.0.0.14", proxy=True)  # serves nothing on the native port
    discovery = pods.discovery(port=port)
    config = ScalerConfig(pods.namespace, "fn")
    assert discovery.targets(config) == Targets((f"127.0.0.11:{port}", f"127.0.0.12:{port}"), 2)
    labels = {"namespace": pods.namespace, "function": "fn"}
    with running_scaler(DirectSource(discovery), interval=0.1) as scaler:
        assert _value(scaler, "fn", pods.namespace, **PER_REPLICA) == 6
        time.sleep(0.5)  # several ticks
        assert _errors(scaler, labels, "scrape") == 0  # the proxy is never scraped here
        assert scaler.sample("ofobserve_scaler_observed_ready_replicas", labels) == 2


def test_dapr_discovery_reads_the_proxy_and_counts_the_function_pods(
    pods: Pods, processes: ExporterProcesses
) -> None:
    port = free_port()
    app = {"app_id": f"orders-{pods.namespace}", "namespace": pods.namespace, **ORDERS_TRAFFIC}
    _daprd(processes, app, host="127.0.0.21", port=port)
    pods.add("orders", "127.0.0.21", proxy=True)
    for ip in ("127.0.0.22", "127.0.0.23", "127.0.0.24"):
        pods.add("orders", ip)  # proxy mode: no daprd in the function pods
    discovery = pods.discovery(dapr_port=port)
    config = ScalerConfig(pods.namespace, "orders", profile="dapr")
    assert discovery.targets(config) == Targets((f"127.0.0.21:{port}",), 3)
    labels = {"namespace": pods.namespace, "function": "orders"}
    with running_scaler(DirectSource(discovery), interval=0.2) as scaler:
        metadata = {"profile": "dapr", **PER_REPLICA, **WINDOWS}
        eventually(lambda: _value(scaler, "orders", pods.namespace, **metadata) == 4, 10)
        assert scaler.sample("ofobserve_scaler_observed_ready_replicas", labels) == 3


def test_dapr_discovery_in_sidecar_mode_reads_every_function_pod(
    pods: Pods, processes: ExporterProcesses
) -> None:
    port = free_port()
    app = {"app_id": f"events-{pods.namespace}", "namespace": pods.namespace,
           "binding": [10, 100]}  # fmt: skip
    for ip in ("127.0.0.31", "127.0.0.32"):  # each pod: 1 in flight
        _daprd(processes, app, host=ip, port=port)
        pods.add("events", ip)
    discovery = pods.discovery(dapr_port=port)
    config = ScalerConfig(pods.namespace, "events", profile="dapr")
    assert discovery.targets(config) == Targets((f"127.0.0.31:{port}", f"127.0.0.32:{port}"), 2)
    labels = {"namespace": pods.namespace, "function": "events"}
    with running_scaler(DirectSource(discovery), interval=0.2) as scaler:
        metadata = {"profile": "dapr", "targetConcurrency": "0.8", "targetUtilization": "1",
                    **WINDOWS}  # fmt: skip
        eventually(lambda: _value(scaler, "events", pods.namespace, **metadata) == 3, 10)
        concurrency = scaler.sample("ofobserve_scaler_observed_concurrency", labels)
        assert concurrency is not None
        assert 1.7 < concurrency < 2.3  # 2 pods x 10/s x 0.1 s


def test_a_dapr_proxy_that_is_not_ready_fails_the_read(pods: Pods) -> None:
    """Proxy mode with no ready proxy: not 'no traffic' (there are function pods)."""
    pods.add("orders", "127.0.0.41", proxy=True, ready=False)
    pods.add("orders", "127.0.0.42")
    discovery = pods.discovery()
    with running_scaler(DirectSource(discovery), interval=0.1) as scaler:
        with pytest.raises(grpc.RpcError) as caught:
            _value(scaler, "orders", pods.namespace, profile="dapr")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert caught.value.details() == (
            f"no data yet for {pods.namespace}/orders: DiscoveryError: none of its 1 "
            "dapr-proxy pod(s) is ready"
        )

"""The direct source's pod discovery: one list+watch of the function pods, against the real
kube-apiserver 1.20 (pods there never run: each one's status is set as a kubelet would,
pointing at a local exporter process standing for the pod), and the ``--targets`` file
followed as it changes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ofobserve import conventions as c
from ofobserve.kube.client import Kube
from ofobserve.scaler.config import ScalerConfig
from ofobserve.scaler.discovery import (
    DiscoveryError,
    StaticDiscovery,
    Targets,
    TargetsFileError,
    WatchDiscovery,
)
from ofobserve.scaler.proto import externalscaler_pb2 as pb
from ofobserve.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from ofobserve.scaler.sources import DirectSource
from tests.support.exporters import ExporterProcesses
from tests.support.kube import KubeAPI
from tests.support.prometheus import free_port
from tests.support.scaler import Running, ref, running_scaler
from tests.support.tools import REPO
from tests.test_scaler_server import eventually

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

#: The scaler's refresh interval in these tests; "within one refresh" allows one more for
#: the read in progress when the change lands, plus the scrape.
REFRESH = 1.0
ONE_REFRESH = 2 * REFRESH + 0.5
PER_REPLICA = {"targetConcurrency": "1", "targetUtilization": "1"}
#: The Status the API server sends in a watch whose resourceVersion it no longer has
#: (kubernetes/website content/en/docs/reference/using-api/api-concepts.md, "410 Gone").
EXPIRED = {
    "type": "ERROR",
    "object": {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "too old resource version: 1 (2)",
        "reason": "Expired",
        "code": 410,
    },
}


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_client(kube_apiserver: KubeAPI) -> Any:
    """An ``ApiClient`` that trusts the API server's own certificate."""
    import kubernetes

    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kube_apiserver.kubeconfig), client_configuration=configuration
    )
    configuration.verify_ssl = True
    configuration.ssl_ca_cert = str(kube_apiserver.kubeconfig.parent / "certs" / "apiserver.crt")
    return kubernetes.client.ApiClient(configuration)


class Pods:
    """Pods in one namespace, created and changed through the API (no kubectl: fast)."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        import kubernetes

        self.core: Any = kubernetes.client.CoreV1Api(api_client)
        self.namespace = namespace
        self.count = 0

    def add(self, function: str, ip: str, *, proxy: bool = False, ready: bool | None = True) -> str:
        """A pod of ``function``; ``ready=None``: no status at all (not scheduled yet)."""
        self.count += 1
        name = f"{function}-{'proxy-' if proxy else ''}{self.count}"
        labels = {c.FUNCTION_POD_LABEL: function}
        if proxy:
            labels[c.OPENFUNCTION_PROXY_LABEL] = "serving-x1y2z"
        self.core.create_namespaced_pod(
            self.namespace,
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {"containers": [{"name": "function", "image": "example.invalid/fn:1"}]},
            },
        )
        if ready is not None:
            self.status(name, ip, ready)
        return name

    def status(self, name: str, ip: str, ready: bool) -> None:
        condition = {"type": "Ready", "status": "True" if ready else "False"}
        status = {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [condition],
        }
        self.core.patch_namespaced_pod_status(name, self.namespace, {"status": status})

    def delete(self, name: str) -> None:
        self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)


@pytest.fixture
def pods(kube_apiserver: KubeAPI, api_client: Any) -> Pods:
    return Pods(api_client, kube_apiserver.fresh_namespace("watch"))


@pytest.fixture
def processes() -> Iterator[ExporterProcesses]:
    started = ExporterProcesses()
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def discoveries() -> Iterator[list[WatchDiscovery]]:
    """Discoveries to close at the end (their watches would otherwise stay open)."""
    made: list[WatchDiscovery] = []
    try:
        yield made
    finally:
        for discovery in made:
            discovery.close()


def _native(processes: ExporterProcesses, in_flight: float, host: str, port: int) -> str:
    return processes.start(
        "tests.support.native_exporter", str(in_flight), "10", host=host, port=port
    )


def _ask(scaler: Running, function: str, namespace: str) -> int:
    """GetMetrics, as KEDA asks it: registers the function (its first read happens then)."""
    request = pb.GetMetricsRequest(scaledObjectRef=ref(function, namespace, **PER_REPLICA))
    return int(scaler.stub().GetMetrics(request, timeout=5).metricValues[0].metricValue)


def _reads(scaler: Running) -> float:
    """Reads of every registered function the engine has done so far."""
    found = scaler.sample("ofobserve_scaler_source_request_duration_seconds_count",
                          {"source": "direct"})  # fmt: skip
    return found or 0.0


def _after_reads(scaler: Running, count: int) -> None:
    """Wait until ``count`` more reads have completed (not a wall-clock wait)."""
    target = _reads(scaler) + count
    eventually(lambda: _reads(scaler) >= target, 10 + count * REFRESH)


def _observed(scaler: Running, name: str, namespace: str, function: str) -> float | None:
    return scaler.sample(name, {"namespace": namespace, "function": function})


def _refusal(discovery: WatchDiscovery, config: ScalerConfig) -> str:
    """Why ``targets`` refuses to answer (``""``: it answers)."""
    try:
        discovery.targets(config)
    except DiscoveryError as exc:
        return str(exc)
    return ""


class Seam(Kube):
    """The real client, with a hand on the list and the watch: ``gate`` holds every list
    until set; ``expire()`` makes the open watch answer its next event with the 410 the API
    server sends for a version it no longer has (swallowing that event); ``cut()`` ends the
    open watch and fails every list and watch until ``heal()``."""

    def __init__(self, api_client: Any) -> None:
        super().__init__(api_client)
        self.gate = threading.Event()
        self.gate.set()
        self.expiring = threading.Event()
        self.broken = threading.Event()
        self.lists = 0
        self.opened = threading.Event()
        self.end_stream: Callable[[], None] = lambda: None

    def list_all(self, path: str, **query: Any) -> tuple[list[dict[str, Any]], str]:
        self.gate.wait()
        if self.broken.is_set():
            raise ConnectionRefusedError("connection refused (cut by the test)")
        self.lists += 1
        return super().list_all(path, **query)

    def watch(
        self,
        path: str,
        resource_version: str,
        timeout_seconds: int,
        on_open: Callable[[Callable[[], None]], None] | None = None,
        **query: Any,
    ) -> Iterator[dict[str, Any]]:
        if self.broken.is_set():
            raise ConnectionRefusedError("connection refused (cut by the test)")

        def opened(end: Callable[[], None]) -> None:
            self.end_stream = end
            self.opened.set()
            if on_open is not None:
                on_open(end)

        for event in super().watch(path, resource_version, timeout_seconds, opened, **query):
            if self.expiring.is_set():
                self.expiring.clear()
                yield EXPIRED
                return
            yield event

    def cut(self) -> None:
        self.broken.set()
        self.end_stream()

    def heal(self) -> None:
        self.broken.clear()


def _apiserver_requests(api: KubeAPI) -> dict[str, float]:
    """``apiserver_request_total`` for pods (no subresource), summed by verb."""
    text = api.kubectl("get", "--raw", "/metrics").stdout
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            labels = sample.labels
            if labels.get("resource") == "pods" and not labels.get("subresource"):
                verb = labels.get("verb", "")
                totals[verb] = totals.get(verb, 0.0) + sample.value
    return totals


def _pod_watchers(api: KubeAPI) -> float:
    text = api.kubectl("get", "--raw", "/metrics").stdout
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "apiserver_registered_watchers"
        for sample in family.samples
        if sample.labels.get("kind") == "Pod"
    )


# --- what is read, and when ----------------------------------------------------------------------


def test_a_pod_is_read_within_one_refresh_of_becoming_ready_and_dropped_when_deleted(
    pods: Pods, processes: ExporterProcesses, api_client: Any, discoveries: list[WatchDiscovery]
) -> None:
    port = free_port()
    _native(processes, 3, "127.0.0.71", port)
    _native(processes, 7, "127.0.0.72", port)  # what a not-ready pod would add if read
    first = pods.add("fn", "127.0.0.71")
    discovery = WatchDiscovery(Kube(api_client), [pods.namespace], port=port).start()
    discoveries.append(discovery)
    assert discovery.wait_synced(10)
    ns = pods.namespace
    with running_scaler(DirectSource(discovery), interval=REFRESH) as scaler:
        assert _ask(scaler, "fn", ns) == 3
        # a pod with an IP that is not Ready is never read
        second = pods.add("fn", "127.0.0.72", ready=False)
        _after_reads(scaler, 3)
        assert _observed(scaler, c.SCALER_OBSERVED_CONCURRENCY, ns, "fn") == 3
        assert _observed(scaler, c.SCALER_OBSERVED_READY_REPLICAS, ns, "fn") == 1
        # it becomes Ready: read within one refresh
        pods.status(second, "127.0.0.72", True)
        became_ready = time.monotonic()
        eventually(
            lambda: _observed(scaler, c.SCALER_OBSERVED_CONCURRENCY, ns, "fn") == 10, ONE_REFRESH
        )
        print(f"\nread {time.monotonic() - became_ready:.2f} s after it became Ready")
        assert _observed(scaler, c.SCALER_OBSERVED_READY_REPLICAS, ns, "fn") == 2
        # deleted: dropped within one refresh
        pods.delete(first)
        eventually(
            lambda: _observed(scaler, c.SCALER_OBSERVED_READY_REPLICAS, ns, "fn") == 1, ONE_REFRESH
        )
        assert _observed(scaler, c.SCALER_OBSERVED_CONCURRENCY, ns, "fn") == 7
        pods.delete(second)
        eventually(
            lambda: _observed(scaler, c.SCALER_OBSERVED_READY_REPLICAS, ns, "fn") == 0, ONE_REFRESH
        )
        assert _observed(scaler, c.SCALER_OBSERVED_CONCURRENCY, ns, "fn") == 0


def test_the_semantics_of_the_list_per_function_discovery_are_kept(
    pods: Pods, api_client: Any, discoveries: list[WatchDiscovery]
) -> None:
    """Own pods leave the dapr-proxy out; dapr reads the proxies (or, without any, the
    function pods); a proxy that is not ready fails the read; a pod without a status yet
    (no IP) is not ready; other functions' pods and unlabelled pods are not counted."""
    pods.add("fn", "127.0.0.81")
    pods.add("fn", "127.0.0.82", ready=None)
    pods.add("fn", "127.0.0.83", proxy=True)
    pods.add("fnx", "127.0.0.84")  # a name that "fn" is a prefix of
    pods.add("orders", "127.0.0.85", proxy=True, ready=False)
    pods.add("orders", "127.0.0.86")
    pods.add("events", "127.0.0.87")
    pods.core.create_namespaced_pod(
        pods.namespace,
        {"metadata": {"name": "unlabelled"}, "spec": {"containers": [{"name": "x", "image": "x"}]}},
    )
    discovery = WatchDiscovery(Kube(api_client), [pods.namespace], port=9464, dapr_port=9090)
    discoveries.append(discovery.start())
    assert discovery.wait_synced(10)
    ns = pods.namespace
    assert discovery.targets(ScalerConfig(ns, "fn")) == Targets(("127.0.0.81:9464",), 1)
    assert discovery.targets(ScalerConfig(ns, "fn", profile="dapr")) == Targets(
        ("127.0.0.83:9090",), 1
    )
    assert discovery.targets(ScalerConfig(ns, "events", profile="dapr")) == Targets(
        ("127.0.0.87:9090",), 1
    )
    with pytest.raises(DiscoveryError, match=r"none of its 1 dapr-proxy pod\(s\) is ready"):
        discovery.targets(ScalerConfig(ns, "orders", profile="dapr"))
    assert discovery.targets(ScalerConfig(ns, "none")) == Targets((), 0)
    with pytest.raises(DiscoveryError, match="namespace elsewhere is not watched"):
        discovery.targets(ScalerConfig("elsewhere", "fn"))


def test_a_label_changed_to_another_function_moves_the_pod(
    pods: Pods, api_client: Any, discoveries: list[WatchDiscovery]
) -> None:
    name = pods.add("blue", "127.0.0.91")
    discovery = WatchDiscovery(Kube(api_client), [pods.namespace], port=9464)
    discoveries.append(discovery.start())
    assert discovery.wait_synced(10)
    blue, green = ScalerConfig(pods.namespace, "blue"), ScalerConfig(pods.namespace, "green")
    assert discovery.targets(blue).ready == 1
    pods.core.patch_namespaced_pod(
        name, pods.namespace, {"metadata": {"labels": {c.FUNCTION_POD_LABEL: "green"}}}
    )
    eventually(lambda: discovery.targets(green).ready == 1)
    assert discovery.targets(blue) == Targets((), 0)
    # the label removed: the watch no longer matches it (a DELETED event)
    pods.core.patch_namespaced_pod(
        name, pods.namespace, {"metadata": {"labels": {c.FUNCTION_POD_LABEL: None}}}
    )
    eventually(lambda: discovery.targets(green).ready == 0)


# --- before the first list, and when the watch breaks --------------------------------------------


def test_before_the_first_list_targets_raise_rather_than_answer_no_pods(
    pods: Pods, processes: ExporterProcesses, api_client: Any, discoveries: list[WatchDiscovery]
) -> None:
    port = free_port()
    _native(processes, 4, "127.0.0.101", port)
    pods.add("fn", "127.0.0.101")
    kube = Seam(api_client)
    kube.gate.clear()  # the first list does not complete yet
    discovery = WatchDiscovery(kube, [pods.namespace], port=port)
    discoveries.append(discovery.start())
    config = ScalerConfig(pods.namespace, "fn")
    with pytest.raises(DiscoveryError, match=r"^pod list not synced yet$"):
        discovery.targets(config)
    assert not discovery.healthy()
    with running_scaler(DirectSource(discovery), interval=0.2) as scaler:
        with pytest.raises(grpc.RpcError) as caught:
            _ask(scaler, "fn", pods.namespace)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert caught.value.details() == (
            f"no data yet for {pods.namespace}/fn: DiscoveryError: pod list not synced yet"
        )
        ns = pods.namespace
        assert _observed(scaler, c.SCALER_OBSERVED_READY_REPLICAS, ns, "fn") is None
        kube.gate.set()
        assert eventually(lambda: _ask(scaler, "fn", ns) == 4, 10)
    assert discovery.healthy()


def test_an_api_server_that_cannot_be_reached_is_never_no_pods(
    discoveries: list[WatchDiscovery],
) -> None:
    import kubernetes

    configuration = kubernetes.client.Configuration()
    configuration.host = f"https://127.0.0.1:{free_port()}"  # nothing listens
    discovery = WatchDiscovery(Kube(kubernetes.client.ApiClient(configuration)))
    discoveries.append(discovery.start())
    config = ScalerConfig("shop", "fn")

    eventually(lambda: "pod list not synced yet (last error: " in _refusal(discovery, config))


def test_a_watch_broken_for_long_stops_answering_then_recovers(
    pods: Pods, api_client: Any, discoveries: list[WatchDiscovery]
) -> None:
    """Within ``max_outage`` the store answers (the pods are most likely still there);
    beyond, targets raise; reconnected, the store is listed anew and answers again."""
    pods.add("fn", "127.0.0.111")
    kube = Seam(api_client)
    restarts: list[str] = []
    discovery = WatchDiscovery(
        kube,
        [pods.namespace],
        port=9464,
        max_outage=1.5,
        on_restart=lambda resource, reason: restarts.append(reason),
    )
    discoveries.append(discovery.start())
    assert discovery.wait_synced(10)
    config = ScalerConfig(pods.namespace, "fn")
    assert kube.opened.wait(10)
    kube.cut()
    eventually(lambda: "error" in restarts)
    assert discovery.targets(config) == Targets(("127.0.0.111:9464",), 1)  # within the limit

    eventually(lambda: "the pod watch has been failing for" in _refusal(discovery, config), 10)
    assert not discovery.healthy()
    pods.add("fn", "127.0.0.112")  # while cut: only a relist or the resumed watch shows it
    kube.heal()
    eventually(lambda: not _refusal(discovery, config), 15)
    eventually(lambda: discovery.targets(config).ready == 2)
    assert discovery.healthy()


def test_410_gone_relists_and_catches_up_with_what_the_watch_missed(
    kube_apiserver: KubeAPI, pods: Pods, api_client: Any, discoveries: list[WatchDiscovery]
) -> None:
    """The 410 is the seam's (the real server's watch cache cannot be made to expire a
    version within a test: it grows while its events are recent); the relist that follows
    is a real LIST of the real server, and it alone can show the change whose event the
    410 replaced."""
    pods.add("fn", "127.0.0.121")
    gone = pods.add("fn", "127.0.0.122")
    kube = Seam(api_client)
    restarts: list[str] = []
    discovery = WatchDiscovery(
        kube, [pods.namespace], port=9464, on_restart=lambda r, reason: restarts.append(reason)
    )
    discoveries.append(discovery.start())
    assert discovery.wait_synced(10)
    config = ScalerConfig(pods.namespace, "fn")
    assert discovery.targets(config).ready == 2
    assert kube.lists == 1
    kube.expiring.set()
    pods.delete(gone)  # its DELETED event is answered with the 410 instead
    eventually(lambda: "gone" in restarts)
    eventually(lambda: discovery.targets(config) == Targets(("127.0.0.121:9464",), 1))
    assert kube.lists == 2  # one relist
    # the relisted store resumes watching from the list's version
    pods.add("fn", "127.0.0.123")
    eventually(lambda: discovery.targets(config).ready == 2)
    assert kube.lists == 2


# --- API load ------------------------------------------------------------------------------------


def test_api_load_does_not_grow_with_the_functions(
    kube_apiserver: KubeAPI,
    api_client: Any,
    processes: ExporterProcesses,
    discoveries: list[WatchDiscovery],
) -> None:
    """Over a steady window of reads, the API server counts no pod LIST and the same WATCH
    requests with 5 functions as with 50 (the list-per-function discovery made 2 LISTs per
    function every 10 s: 10 and 100 over the same window)."""
    port = free_port()
    _native(processes, 1, "127.0.0.131", port)  # every pod points at it: scraped once a read
    window = 10 * REFRESH
    figures: dict[int, dict[str, float]] = {}
    for functions in (5, 50):
        pods = Pods(api_client, kube_apiserver.fresh_namespace("load"))
        for i in range(functions):
            pods.add(f"fn{i}", "127.0.0.131")
        discovery = WatchDiscovery(Kube(api_client), [pods.namespace], port=port).start()
        discoveries.append(discovery)
        assert discovery.wait_synced(10)
        with running_scaler(DirectSource(discovery), interval=REFRESH) as scaler:
            for i in range(functions):
                assert _ask(scaler, f"fn{i}", pods.namespace) == 1
            _after_reads(scaler, 1)
            watchers = _pod_watchers(kube_apiserver)
            before, reads = _apiserver_requests(kube_apiserver), _reads(scaler)
            time.sleep(window)
            after, reads = _apiserver_requests(kube_apiserver), _reads(scaler) - reads
            for i in range(functions):  # every function was read through the window
                assert _observed(scaler, c.SCALER_OBSERVED_READY_REPLICAS, pods.namespace,
                                 f"fn{i}") == 1  # fmt: skip
        figures[functions] = {
            "reads": reads,
            "LIST": after.get("LIST", 0.0) - before.get("LIST", 0.0),
            "WATCH": after.get("WATCH", 0.0) - before.get("WATCH", 0.0),
            "watchers": watchers,
        }
        discovery.close()
    print()
    for functions, found in figures.items():
        print(
            f"{functions} functions, {window:g} s, {found['reads']:g} reads of all: "
            f"{found['LIST']:g} pod LIST, {found['WATCH']:g} pod WATCH completed; "
            f"{found['watchers']:g} pod watcher(s) registered"
        )
    assert figures[5]["reads"] >= 5
    assert figures[50]["reads"] >= 5
    assert figures[5]["LIST"] == figures[50]["LIST"] == 0
    assert figures[5]["WATCH"] == figures[50]["WATCH"]
    # one watch of ours during each window (plus any a previous test left ending)
    assert figures[50]["watchers"] - figures[5]["watchers"] <= 1


# --- the real scaler process ---------------------------------------------------------------------


def _scrape(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The scaler's /metrics by (name, labels); nothing while it does not serve yet."""
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _scaler(
    *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str, str]:
    port, metrics = free_port(), f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "ofobserve", "scaler", *args, "--listen", f"127.0.0.1:{port}",
         "--metrics-listen", metrics, "--refresh-interval", "0.2", "--log-format", "text"],
        cwd=REPO, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip
    return process, f"127.0.0.1:{port}", metrics


def _concurrency(metrics: str, namespace: str, function: str) -> float | None:
    labels = (("function", function), ("namespace", namespace))
    return _scrape(metrics).get((c.SCALER_OBSERVED_CONCURRENCY, labels))


def test_the_scaler_process_discovers_pods_through_the_watch(
    kube_apiserver: KubeAPI, pods: Pods, processes: ExporterProcesses
) -> None:
    # the scaler reads pods on the native port, 9464: the exporter stands in for the pod
    _native(processes, 6, "127.0.0.141", c.NATIVE_METRICS_PORT)
    process, address, metrics = _scaler(
        "--watch-namespace", pods.namespace, env={"KUBECONFIG": str(kube_apiserver.kubeconfig)}
    )
    try:
        stub = pb_grpc.ExternalScalerStub(grpc.insecure_channel(address))
        request = pb.GetMetricsRequest(scaledObjectRef=ref("fn", pods.namespace, **PER_REPLICA))

        def ask() -> int:
            return int(stub.GetMetrics(request, timeout=5).metricValues[0].metricValue)

        eventually(lambda: _scrape(metrics).get((c.SCALER_POD_WATCH_UP, ())) == 1, 20)
        assert ask() == 0  # listed: no pod of fn, no traffic
        pods.add("fn", "127.0.0.141")
        eventually(lambda: ask() == 6, 10)
        found = _scrape(metrics)
        ready = (
            c.SCALER_OBSERVED_READY_REPLICAS,
            (("function", "fn"), ("namespace", pods.namespace)),
        )
        assert found[ready] == 1
        restarts = c.SCALER_WATCH_RESTARTS_TOTAL
        assert not [k for k in found if k[0] == restarts and dict(k[1]).get("reason") != "expired"]
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert f"listed 0 pods/{pods.namespace}" in stderr


def test_the_targets_file_is_followed_as_it_is_rewritten(
    tmp_path: Path, processes: ExporterProcesses
) -> None:
    """A good rewrite (write, then rename into place) is picked up; a bad one keeps the last
    good table, is logged naming the file and the key, and counted; the next good one is
    picked up again; so is a rewrite in place."""
    a = _native(processes, 3, "127.0.0.1", free_port())
    b = _native(processes, 5, "127.0.0.1", free_port())
    path = tmp_path / "targets.yaml"

    def rewrite(content: object) -> None:
        temporary = tmp_path / ".targets.yaml.tmp"
        temporary.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        os.replace(temporary, path)

    rewrite({"shop/fn": [a]})
    process, address, metrics = _scaler("--targets", str(path))
    try:
        stub = pb_grpc.ExternalScalerStub(grpc.insecure_channel(address))
        request = pb.GetMetricsRequest(scaledObjectRef=ref("fn", "shop", **PER_REPLICA))
        eventually(lambda: stub.GetMetrics(request, timeout=5).metricValues[0].metricValue, 15)
        eventually(lambda: _concurrency(metrics, "shop", "fn") == 3, 10)
        rewrite({"shop/fn": [b]})
        eventually(lambda: _concurrency(metrics, "shop", "fn") == 5, 5)
        errors = (c.SCALER_TARGETS_FILE_ERRORS_TOTAL, ())
        assert _scrape(metrics)[errors] == 0
        rewrite({"shop/fn": {"metrics": [a], "ready": -1}})
        eventually(lambda: _scrape(metrics).get(errors) == 1, 5)
        time.sleep(1.0)  # several refreshes: still the last good table, counted once
        assert _concurrency(metrics, "shop", "fn") == 5
        assert _scrape(metrics)[errors] == 1
        rewrite("shop/fn: [unclosed\n")  # not YAML at all
        eventually(lambda: _scrape(metrics).get(errors) == 2, 5)
        rewrite({"shop/fn": [a]})
        eventually(lambda: _concurrency(metrics, "shop", "fn") == 3, 5)
        path.write_text(yaml.safe_dump({"shop/fn": [b]}))  # in place, not renamed
        eventually(lambda: _concurrency(metrics, "shop", "fn") == 5, 5)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert (
        f"{path}: shop/fn.ready: must be a whole number >= 0 (got -1); keeping the table "
        "read before (1 function(s))"
    ) in stderr
    assert f"cannot read targets file {path}: " in stderr
    assert stderr.count(f"targets file {path} read again: 1 function(s)") == 3


def test_the_targets_file_is_checked_at_most_once_per_refresh(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump({"shop/fn": ["10.0.0.1:9464"]}))
    now = [0.0]
    errors: list[str] = []
    discovery = StaticDiscovery.from_file(
        path, check_every=10.0, on_error=errors.append, clock=lambda: now[0]
    )
    config = ScalerConfig("shop", "fn")
    assert discovery.targets(config) == Targets(("10.0.0.1:9464",))
    path.write_text(yaml.safe_dump({"shop/fn": ["10.0.0.2:9464"], "shop/new": []}))
    now[0] = 9.9
    assert discovery.targets(config) == Targets(("10.0.0.1:9464",))  # not checked yet
    now[0] = 10.0
    assert discovery.targets(config) == Targets(("10.0.0.2:9464",))
    path.unlink()  # gone: the last good table stays, reported once
    now[0] = 20.0
    assert discovery.targets(config) == Targets(("10.0.0.2:9464",))
    now[0] = 30.0
    assert discovery.targets(config) == Targets(("10.0.0.2:9464",))
    assert errors == ["targets-file"]
    with pytest.raises(TargetsFileError, match=f"cannot read targets file {path}: "):
        StaticDiscovery.from_file(path)

"""The direct source on Knative's queue-proxy (both metric generations) and the KEDA HTTP
interceptor: signals read from real processes serving the upstream names, compared with
what they were told to emit, and the reads that must fail, with their messages.

Exporters: tests.support.queue_proxy_exporter (port 9091 of a revision pod) and
tests.support.interceptor_exporter (port 2223 of an interceptor pod); targets come from
``--targets`` tables (StaticDiscovery)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import pytest

from ofobserve.scaler.config import FunctionKey, ScalerConfig, parse_metadata
from ofobserve.scaler.discovery import StaticDiscovery, Targets
from ofobserve.scaler.proto import externalscaler_pb2 as pb
from ofobserve.scaler.sources import DirectSource, Reading
from tests.support.exporters import ExporterProcesses
from tests.support.scaler import ref, running_scaler
from tests.test_scaler_server import eventually

ROUTE = "serving-x1y2z-scaler-a1b2c"  # OpenFunction's generated HTTPScaledObject name
PER_REPLICA = {"targetConcurrency": "1", "targetUtilization": "1"}
WINDOWS = {"stableWindow": "2", "panicWindow": "1", "panicThreshold": "100"}


@pytest.fixture
def processes() -> Iterator[ExporterProcesses]:
    started = ExporterProcesses()
    try:
        yield started
    finally:
        started.close()


def _queue_proxy(processes: ExporterProcesses, **spec: Any) -> str:
    return processes.start("tests.support.queue_proxy_exporter", json.dumps(spec))


def _interceptor(
    processes: ExporterProcesses, *routes: dict[str, Any], version: str = "0.14"
) -> str:
    spec = {"version": version, "routes": list(routes)}
    return processes.start("tests.support.interceptor_exporter", json.dumps(spec))


def _fetch(source: DirectSource, config: ScalerConfig) -> Reading:
    return asyncio.run(source.fetch([config]))


def _read_twice(source: DirectSource, config: ScalerConfig) -> Reading:
    """A first read, and the one 0.5 s later that has rates."""
    _fetch(source, config)
    time.sleep(0.5)
    return _fetch(source, config)


def _knative(generation: str, function: str = "fn") -> ScalerConfig:
    metadata = {"profile": "knative", "knativeMetrics": generation}
    return parse_metadata(function, "shop", metadata)


def _keda_http(route: str | None = ROUTE, function: str = "web") -> ScalerConfig:
    metadata = {"profile": "keda-http"} | ({"route": route} if route else {})
    return parse_metadata(function, "shop", metadata)


def _close(value: float | None, expected: float, tolerance: float = 0.1) -> bool:
    return value is not None and math.isclose(value, expected, rel_tol=tolerance)


# --- Knative queue-proxy ------------------------------------------------------------------------


def test_knative_opencensus_reads_the_queue_depth_of_every_revision_pod(
    processes: ExporterProcesses,
) -> None:
    """``revision_queue_depth`` summed over the pods (the Prometheus source's
    ``sum(revision_queue_depth)``); requests and latency from ``revision_request_*``, ms
    to s; ``revision_app_request_*`` (inside the breaker, 5 s each here) do not count."""
    pods = [
        _queue_proxy(processes, generation="opencensus", rps=10, ms=200, depth=d, app_rps=50)
        for d in (3, 2)
    ]
    config = _knative("opencensus")
    source = DirectSource(StaticDiscovery({"shop/fn": pods}))
    first = _fetch(source, config)
    assert first.signals[config.key].concurrency == 5  # a gauge: read at the first scrape
    time.sleep(0.5)
    signals = _fetch(source, config).signals[config.key]
    assert signals.concurrency == 5
    assert _close(signals.rate, 20)
    # every request takes 200 ms: p95 interpolated in the (150, 200] ms bucket
    assert signals.latency is not None
    assert math.isclose(signals.latency, 0.1975, rel_tol=1e-3)
    assert signals.ready == 2  # each queue-proxy that answers is a ready replica


def test_knative_opencensus_without_a_queue_uses_littles_law(
    processes: ExporterProcesses,
) -> None:
    """containerConcurrency 0 (OpenFunction's default): queue-proxy has no breaker, so no
    ``revision_queue_depth``; concurrency is then the time spent in requests per second,
    10/s x 0.2 s = 2, not a made-up 0. New endpoints are scraped twice, so the first read
    has it."""
    pod = _queue_proxy(processes, generation="opencensus", rps=10, ms=200, app_rps=50)
    config = _knative("opencensus")
    source = DirectSource(StaticDiscovery({"shop/fn": [pod]}), warmup=0.5)
    signals = _fetch(source, config).signals[config.key]
    assert _close(signals.concurrency, 2.0)
    assert _close(signals.rate, 10)


def test_knative_otel_reads_kn_serving_queue_depth_and_the_otelhttp_histogram(
    processes: ExporterProcesses,
) -> None:
    """>= 1.21: ``kn_serving_queue_depth``, and ``http_server_request_duration_seconds``
    (its ``_count`` is the request count); ``kn_serving_invocation_duration_seconds``
    (inside the breaker) does not count."""
    pod = _queue_proxy(processes, generation="otel", rps=20, ms=40, depth=4, app_rps=100)
    config = _knative("otel")
    signals = _read_twice(DirectSource(StaticDiscovery({"shop/fn": [pod]})), config).signals[
        config.key
    ]
    assert signals.concurrency == 4
    assert _close(signals.rate, 20)
    assert signals.latency is not None
    assert math.isclose(
        signals.latency, 0.025 + 0.025 * 0.95, rel_tol=1e-3
    )  # in the (0.025, 0.05] bucket
    assert signals.ready == 1


def test_knative_otel_without_a_queue_uses_littles_law(processes: ExporterProcesses) -> None:
    pod = _queue_proxy(processes, generation="otel", rps=20, ms=40, app_rps=100)
    config = _knative("otel")
    source = DirectSource(StaticDiscovery({"shop/fn": [pod]}), warmup=0.5)
    assert _close(_fetch(source, config).signals[config.key].concurrency, 0.8)  # 20 x 0.04 s


@pytest.mark.parametrize(
    ("configured", "served", "found", "hint"),
    [
        ("opencensus", "otel", "http_server_request_duration_seconds_bucket", "otel"),
        ("otel", "opencensus", "revision_request_count", "opencensus"),
    ],
)
def test_the_wrong_knative_generation_is_an_error_not_no_traffic(
    processes: ExporterProcesses, configured: str, served: str, found: str, hint: str
) -> None:
    """With the other generation's names none of the profile's series exist, which would
    read as no traffic: it is a failed read naming the setting instead."""
    pod = _queue_proxy(processes, generation=served, rps=10, ms=100, depth=1)
    config = _knative(configured)
    reading = _fetch(DirectSource(StaticDiscovery({"shop/fn": [pod]})), config)
    assert config.key not in reading.signals
    failure = reading.failed[config.key]
    assert failure.reason == "scrape"
    assert failure.detail == (
        f"1 of its 1 target(s) served no metrics it can read ({pod}: it serves {found}: "
        f"set scalerMetadata.knativeMetrics: {hint})"
    )


def test_a_target_answering_garbage_fails_the_read(processes: ExporterProcesses) -> None:
    bad = processes.start(
        "tests.support.queue_proxy_exporter", json.dumps({"raw": "<html>502 Bad Gateway</html>\n"})
    )
    config = _knative("opencensus")
    reading = _fetch(DirectSource(StaticDiscovery({"shop/fn": [bad]})), config)
    failure = reading.failed[config.key]
    assert failure.reason == "scrape"
    assert failure.count == 1
    assert failure.detail.startswith(
        f"1 of its 1 target(s) served no metrics it can read ({bad}: not Prometheus text "
        "(ValueError: "
    )


def test_a_garbage_pod_beside_good_ones_is_counted_and_left_out(
    processes: ExporterProcesses,
) -> None:
    good = _queue_proxy(processes, generation="opencensus", rps=10, ms=200, depth=3)
    bad = processes.start("tests.support.queue_proxy_exporter", json.dumps({"raw": "up 1 2 3 x\n"}))
    config = _knative("opencensus")
    reading = _fetch(DirectSource(StaticDiscovery({"shop/fn": [good, bad]})), config)
    assert reading.signals[config.key].concurrency == 3
    assert reading.signals[config.key].ready == 1
    assert reading.degraded[config.key].detail.startswith(
        f"1 of its 2 target(s) served no metrics it can read ({bad}: not Prometheus text"
    )


def test_knative_through_the_scaler(processes: ExporterProcesses) -> None:
    pods = [
        _queue_proxy(processes, generation="opencensus", rps=10, ms=200, depth=d) for d in (4, 3)
    ]
    source = DirectSource(StaticDiscovery({"shop/fn": pods}))
    metadata = {"profile": "knative", **PER_REPLICA, **WINDOWS}
    with running_scaler(source, interval=0.2) as scaler:
        request = pb.GetMetricsRequest(scaledObjectRef=ref(**metadata))
        value = scaler.stub().GetMetrics(request, timeout=5).metricValues[0].metricValue
        assert value == 7
        labels = {"namespace": "shop", "function": "fn"}
        assert scaler.sample("ofobserve_scaler_observed_concurrency", labels) == 7
        assert scaler.sample("ofobserve_scaler_observed_ready_replicas", labels) == 2


# --- KEDA HTTP interceptor ----------------------------------------------------------------------

OURS = {"route": ROUTE, "namespace": "shop", "host": "web.example.com", "ms": 300}
#: The same route name in another namespace, and another route in ours: much busier.
OTHERS = (
    {"route": ROUTE, "namespace": "other", "host": "a.example.com", "rps": 100, "ms": 2000,
     "concurrency": 50},
    {"route": "serving-q9w8e-scaler-f5g6h", "namespace": "shop", "host": "b.example.com",
     "rps": 50, "ms": 2000, "concurrency": 20},
)  # fmt: skip


def test_keda_http_reads_the_functions_route_on_every_interceptor(
    processes: ExporterProcesses,
) -> None:
    """The interceptor is shared: only series with the function's ``route_name`` and
    ``route_namespace`` count, summed over the interceptor replicas (each sees part of the
    traffic). ``interceptor_request_concurrency`` is the concurrency, as the Prometheus
    source's ``sum(interceptor_request_concurrency)``."""
    interceptors = [
        _interceptor(processes, {**OURS, "rps": 6, "concurrency": 4}, *OTHERS),
        _interceptor(processes, {**OURS, "rps": 2, "concurrency": 1}, *OTHERS),
    ]
    config = _keda_http()
    source = DirectSource(StaticDiscovery({"shop/web": {"metrics": interceptors, "ready": 3}}))
    signals = _read_twice(source, config).signals[config.key]
    assert signals.concurrency == 5
    assert _close(signals.rate, 8)
    assert signals.latency is not None
    assert math.isclose(
        signals.latency, 0.25 + 0.25 * 0.95, rel_tol=1e-3
    )  # 300 ms: the (0.25, 0.5] bucket
    assert signals.ready == 3  # the function's pods, not the interceptors


def test_keda_http_interceptors_are_not_replicas(processes: ExporterProcesses) -> None:
    interceptor = _interceptor(processes, {**OURS, "rps": 6, "concurrency": 4})
    config = _keda_http()
    reading = _fetch(DirectSource(StaticDiscovery({"shop/web": [interceptor]})), config)
    assert reading.signals[config.key].concurrency == 4
    assert reading.signals[config.key].ready is None


def test_keda_http_with_no_series_for_the_route_is_no_traffic(
    processes: ExporterProcesses,
) -> None:
    """The interceptor's instruments have a series per route once it served one: none is
    no traffic (the other routes' do not count)."""
    interceptor = _interceptor(processes, *OTHERS)
    config = _keda_http()
    source = DirectSource(StaticDiscovery({"shop/web": [interceptor]}), warmup=0.2)
    signals = _fetch(source, config).signals[config.key]
    assert (signals.concurrency, signals.rate, signals.latency) == (0.0, 0.0, None)


def test_an_interceptor_before_0_14_is_an_error(processes: ExporterProcesses) -> None:
    """0.8-0.13 label requests by host, with a pending-request gauge by host and no
    duration histogram: the function's route cannot be picked out, and the latency does
    not exist. A failed read, not a made-up value."""
    interceptor = _interceptor(processes, {**OURS, "rps": 6, "concurrency": 4}, version="0.13")
    config = _keda_http()
    reading = _fetch(DirectSource(StaticDiscovery({"shop/web": [interceptor]})), config)
    assert config.key not in reading.signals
    assert reading.failed[config.key].detail == (
        f"1 of its 1 target(s) served no metrics it can read ({interceptor}: "
        "interceptor_request_count_total has no route_name label (KEDA HTTP add-on before "
        "0.14 labels its series by host, with no duration histogram; the direct source reads "
        "0.14 or later))"
    )


def test_keda_http_without_a_route_is_unavailable_for_good(processes: ExporterProcesses) -> None:
    """The route name is generated (``<serving>-scaler-<random>``): without
    ``scalerMetadata.route`` there is nothing to filter on. UNAVAILABLE at once, never
    "no traffic"; given the route, the same function is read."""
    interceptor = _interceptor(processes, {**OURS, "rps": 6, "concurrency": 3})
    source = DirectSource(StaticDiscovery({"shop/web": [interceptor]}))
    with running_scaler(source, interval=0.1) as scaler:
        stub = scaler.stub()
        request = pb.GetMetricsRequest(scaledObjectRef=ref("web", profile="keda-http"))
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetMetrics(request, timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert caught.value.details() == (
            "no data for shop/web: the direct source reads keda-http from the shared "
            "interceptor, whose series name the route only: set scalerMetadata.route to the "
            "function's HTTPScaledObject name, or run the scaler with --source prometheus"
        )
        labels = {"namespace": "shop", "function": "web", "source": "direct"}
        eventually(
            lambda: scaler.sample(
                "ofobserve_scaler_source_errors_total", {**labels, "reason": "profile"}
            )
        )
        metadata = {"profile": "keda-http", "route": ROUTE, **PER_REPLICA, **WINDOWS}
        request = pb.GetMetricsRequest(scaledObjectRef=ref("web", **metadata))
        assert stub.GetMetrics(request, timeout=5).metricValues[0].metricValue == 3


def test_a_bad_route_is_invalid_metadata() -> None:
    with pytest.raises(
        ValueError,
        match=r"^scalerMetadata.route: must be a Kubernetes object name \(got 'Web_1'\)$",
    ):
        parse_metadata("web", "shop", {"profile": "keda-http", "route": "Web_1"})


# --- pod discovery -------------------------------------------------------------------------------


class PodsOnTheNativePort:
    """What pod discovery answers today for every profile but dapr: the function's pods on
    the native port (here a native exporter, whose series a knative read would take for
    no traffic)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def targets(self, config: ScalerConfig) -> Targets:
        return Targets((self.endpoint,), 1)

    def forget(self, keys: Sequence[FunctionKey]) -> None:
        """Nothing kept."""


@pytest.mark.parametrize(
    "config", [_knative("opencensus"), _keda_http()], ids=["knative", "keda-http"]
)
def test_pod_discovery_is_not_trusted_for_queue_proxy_or_interceptor_targets(
    processes: ExporterProcesses, config: ScalerConfig
) -> None:
    pod = processes.start("tests.support.native_exporter", "4", "10")
    reading = _fetch(DirectSource(PodsOnTheNativePort(pod)), config)
    assert config.key not in reading.signals
    failure = reading.failed[config.key]
    assert (failure.reason, failure.lasting) == ("profile", True)
    assert failure.detail == (
        f"the direct source finds no {config.profile} targets through pod discovery yet: give "
        "them in a --targets file, or run the scaler with --source prometheus"
    )
    native = parse_metadata("fn", "shop", {})  # the profiles it does find are read
    assert (
        _fetch(DirectSource(PodsOnTheNativePort(pod)), native).signals[native.key].concurrency == 4
    )

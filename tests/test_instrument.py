"""``ofobserve.instrument`` and ``ofobserve.tracing``: a sample function in its own process,
real HTTP traffic, scraped by the real Prometheus, tracing to real OTLP receivers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from ofobserve.instrument import ASGIMiddleware, InstrumentError, WSGIMiddleware, instrument
from ofobserve.tracing import TracingConfigError, endpoint
from tests.support.otlp import Receiver, grpc_receiver, http_receiver
from tests.support.prometheus import PrometheusServer, free_port
from tests.support.tools import REPO

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"
SLO_THRESHOLD = "0.3"


@dataclass
class Sample:
    http: str
    metrics: str
    process: subprocess.Popen[str]
    logs: list[dict[str, Any]]

    def get(self, path: str, headers: dict[str, str] | None = None) -> int:
        request = urllib.request.Request(f"http://{self.http}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


def _start(env: dict[str, str]) -> Sample:
    http_port, metrics_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.sample_function", str(http_port), str(metrics_port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    logs: list[dict[str, Any]] = []
    stdout = process.stdout

    def read() -> None:
        for line in stdout:
            if line.startswith("{"):
                logs.append(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    return Sample(f"127.0.0.1:{http_port}", f"127.0.0.1:{metrics_port}", process, logs)


@pytest.fixture(scope="module")
def traced() -> Iterator[tuple[Sample, Receiver]]:
    """The sample function tracing to an OTLP/gRPC receiver, with an SLO bucket."""
    with grpc_receiver() as (receiver, url):
        sample = _start(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": url,
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "POD_NAMESPACE": "shop",
                "POD_NAME": "sample-7d9f-abcde",
                "OFOBSERVE_BUCKETS": SLO_THRESHOLD,
            }
        )
        try:
            yield sample, receiver
        finally:
            sample.process.kill()
            sample.process.wait()
            assert sample.process.stdout is not None
            sample.process.stdout.close()


@pytest.fixture(scope="module")
def scraped(
    traced: tuple[Sample, Receiver], prometheus: PrometheusServer
) -> Iterator[tuple[Sample, PrometheusServer]]:
    """Real traffic, scraped by the real Prometheus: 20 ok, 5 failing, 3 slow in parallel
    (checked in flight while they run)."""
    sample, _ = traced
    prometheus.configure(
        [{"job_name": "sample", "static_configs": [{"targets": [sample.metrics]}]}]
    )
    try:
        assert prometheus.wait_for('up{job="sample"} == 1', 30), "the sample is never scraped"
        for _ in range(20):
            assert sample.get("/ok") == 200
        for _ in range(5):
            assert sample.get("/fail") == 500
        slow = [threading.Thread(target=sample.get, args=("/slow?seconds=4",)) for _ in range(3)]
        for thread in slow:
            thread.start()
        in_flight = prometheus.wait_for('function_requests_in_flight{function="sample"} == 3', 10)
        for thread in slow:
            thread.join()
        assert in_flight, "never saw the 3 slow requests in flight"
        prometheus.wait_for(
            'function_requests_total{function="sample",code="200"} == 23 and '
            'function_requests_in_flight{function="sample"} == 0',
            15,
        )
        yield sample, prometheus
    finally:
        prometheus.configure([])


def _value(server: PrometheusServer, expr: str) -> float:
    [series] = server.query(expr)
    return float(series["value"][1])


@pytest.mark.prometheus
def test_names_labels_and_counts(scraped: tuple[Sample, PrometheusServer]) -> None:
    _, server = scraped
    sel = 'function="sample"'
    assert _value(server, f'function_requests_total{{{sel},code="500"}}') == 5
    assert _value(server, f"function_errors_total{{{sel}}}") == 5
    assert _value(server, f"function_cold_starts_total{{{sel}}}") == 1
    assert _value(server, f"function_request_duration_seconds_count{{{sel}}}") == 28
    slow = _value(server, f'function_request_duration_seconds_bucket{{{sel},le="+Inf"}}') - (
        _value(server, f'function_request_duration_seconds_bucket{{{sel},le="2.5"}}')
    )
    assert slow == 3  # the three 4 s requests, above the 2.5 s bucket
    labels = {s["metric"]["code"] for s in server.query(f"function_requests_total{{{sel}}}")}
    assert labels == {"200", "500"}


@pytest.mark.prometheus
def test_bucket_bounds_include_the_slo_threshold(scraped: tuple[Sample, PrometheusServer]) -> None:
    _, server = scraped
    series = server.query('function_request_duration_seconds_bucket{function="sample"}')
    bounds = sorted(float(s["metric"]["le"]) for s in series)
    assert float(SLO_THRESHOLD) in bounds
    assert bounds == [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1, 2.5, 5, 10, float("inf")]


@pytest.mark.prometheus
def test_exemplars_carry_real_trace_ids(
    scraped: tuple[Sample, PrometheusServer], traced: tuple[Sample, Receiver]
) -> None:
    _, server = scraped
    _, receiver = traced
    found = server.exemplars('function_request_duration_seconds_bucket{function="sample"}')
    trace_ids = {e["labels"]["trace_id"] for series in found for e in series["exemplars"]}
    assert trace_ids
    deadline = time.monotonic() + 10
    while not trace_ids <= {s.trace_id for s in receiver.spans} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert trace_ids <= {s.trace_id for s in receiver.spans}


def _span_for(receiver: Receiver, trace_id: str) -> Any:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with receiver.lock:
            found = [s for s in receiver.spans if s.trace_id == trace_id]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no span of trace {trace_id} reached the receiver")


def test_spans_reach_the_otlp_receiver_with_faas_attributes(
    traced: tuple[Sample, Receiver],
) -> None:
    sample, receiver = traced
    assert sample.get("/ok", {"traceparent": TRACEPARENT}) == 200
    span = _span_for(receiver, PARENT_TRACE)
    assert span.name == "sample"
    assert span.parent_span_id == PARENT_SPAN
    assert span.kind == 2  # SPAN_KIND_SERVER
    assert span.attributes["faas.trigger"] == "http"
    assert span.attributes["faas.name"] == "sample"
    assert span.attributes["faas.coldstart"] in (True, False)
    assert span.attributes["faas.invocation_id"] == span.span_id  # no CloudEvent id here
    assert span.resource["service.name"] == "sample"
    assert span.resource["k8s.namespace.name"] == "shop"
    assert span.resource["k8s.pod.name"] == "sample-7d9f-abcde"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [entry for entry in sample.logs if entry.get("trace_id") == PARENT_TRACE]
        if lines:
            break
        time.sleep(0.05)
    assert lines, "no log line carried the trace id"
    assert lines[0]["span_id"] == span.span_id
    assert lines[0]["message"] == "handling /ok"


def test_the_cold_start_is_flagged_once(traced: tuple[Sample, Receiver]) -> None:
    _, receiver = traced
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not receiver.spans:
        time.sleep(0.05)
    with receiver.lock:
        cold = [s for s in receiver.spans if s.attributes["faas.coldstart"]]
    assert len(cold) == 1


def test_http_protobuf_export_and_cloudevent_parent() -> None:
    with http_receiver() as (receiver, url):
        sample = _start(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": url,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "OTEL_SERVICE_NAME": "checkout-sample",
            }
        )
        try:
            # a binary-mode CloudEvent over HTTP carries its traceparent as ce-traceparent
            assert sample.get("/ok", {"ce-traceparent": TRACEPARENT, "ce-id": "e-1"}) == 200
            span = _span_for(receiver, PARENT_TRACE)
            assert span.resource["service.name"] == "checkout-sample"
            assert span.parent_span_id == PARENT_SPAN
        finally:
            sample.process.kill()
            sample.process.wait()
            assert sample.process.stdout is not None
            sample.process.stdout.close()


# --- in process: forms, safety, bad input -------------------------------------------------------


def _registry_value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_every_form_records_and_passes_results_and_errors_through() -> None:
    registry = CollectorRegistry()
    sentinel = object()

    @instrument(function="forms", registry=registry, start_server=False)
    def main(context: Any, data: Any) -> Any:
        if data == "boom":
            raise KeyError("boom")
        return sentinel

    @instrument(function="forms", registry=registry, start_server=False)
    async def event_handler(event: Any, context: Any) -> Any:
        return {"status": "done"}

    assert main({}, "x") is sentinel
    with pytest.raises(KeyError, match="boom") as caught:
        main({}, "boom")
    assert caught.type is KeyError
    assert asyncio.run(event_handler({"id": "1"}, {})) == {"status": "done"}
    assert main.__name__ == "main"
    assert _registry_value(registry, "function_requests_total", function="forms", code="200") == 2
    assert _registry_value(registry, "function_errors_total", function="forms") == 1
    assert _registry_value(registry, "function_cold_starts_total", function="forms") == 2
    assert _registry_value(registry, "function_requests_in_flight", function="forms") == 0


def test_instrumentation_failures_never_break_the_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = CollectorRegistry()

    @instrument(function="fragile", registry=registry, start_server=False)
    def handler(request: Any, context: Any) -> str:
        return "fine"

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("metrics storage is gone")

    from prometheus_client import Histogram

    monkeypatch.setattr(Histogram, "observe", broken)
    assert handler(None, None) == "fine"


def test_wsgi_and_asgi_middleware() -> None:
    registry = CollectorRegistry()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("404 Not Found", [])
        return [b"nope"]

    wrapped = WSGIMiddleware(app, function="wsgi", registry=registry, start_server=False)
    body = wrapped({"HTTP_TRACEPARENT": TRACEPARENT}, lambda *a: None)
    assert b"".join(body) == b"nope"
    body.close()
    assert _registry_value(registry, "function_requests_total", function="wsgi", code="404") == 1

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = ASGIMiddleware(asgi, function="asgi", registry=registry, start_server=False)
    asyncio.run(middleware({"type": "http", "headers": []}, None, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert _registry_value(registry, "function_errors_total", function="asgi") == 1


def test_tracing_is_off_without_an_endpoint() -> None:
    assert endpoint({}) is None
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_SDK_DISABLED": "true"}
    assert endpoint(disabled) is None
    assert endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}) == ("http://c:4317", "grpc")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "otel-collector:4317"},
            "OTEL_EXPORTER_OTLP_ENDPOINT: 'otel-collector:4317' is not an http(s) URL such as "
            "http://otel-collector:4317",
        ),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:99999"},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:99999' has an invalid port",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "json"},
            "OTEL_EXPORTER_OTLP_PROTOCOL: 'json' is not one of grpc, http/protobuf",
        ),
    ],
)
def test_bad_otlp_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(TracingConfigError) as caught:
        endpoint(env)
    assert str(caught.value) == message


def test_instrument_refuses_what_it_cannot_wrap_at_decoration_time() -> None:
    with pytest.raises(InstrumentError) as caught:
        instrument(42)  # type: ignore[call-overload]
    assert str(caught.value) == "instrument: expected a function, got int"

    def three(a: Any, b: Any, c: Any) -> None:
        pass

    with pytest.raises(InstrumentError) as caught:
        instrument(start_server=False)(three)
    assert str(caught.value) == (
        "instrument: three(a, b, c) has an unsupported signature; expected main(context, data), "
        "handler(request, context) or event_handler(event, context)"
    )


def test_bad_bucket_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFOBSERVE_BUCKETS", "0.25,fast")
    with pytest.raises(InstrumentError, match="OFOBSERVE_BUCKETS: 'fast' is not a number"):
        instrument(start_server=False)(lambda context, data: None)


def test_multiprocess_mode_sums_the_workers(tmp_path: Any) -> None:
    """Two worker processes (as gunicorn forks them) write to PROMETHEUS_MULTIPROC_DIR; the
    multiprocess collector the metrics endpoint uses reads their sum."""
    from prometheus_client import multiprocess

    worker = (
        "from ofobserve.instrument import instrument\n"
        "@instrument(function='mp', start_server=False)\n"
        "def main(context, data):\n"
        "    return data\n"
        "for i in range(3):\n"
        "    main({}, i)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], env=env, cwd=REPO, check=True)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    assert _registry_value(registry, "function_requests_total", function="mp", code="200") == 6
    assert _registry_value(registry, "function_cold_starts_total", function="mp") == 2
    assert _registry_value(registry, "function_request_duration_seconds_count", function="mp") == 6

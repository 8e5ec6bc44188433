"""Every profile's queries, run against the real Prometheus scraping exporters that emit that
profile's real metric names, labels and units; and label escaping proven by Prometheus itself.

Traffic in every scenario: 10 requests/s, 10 % failing, half under 0.1 s, 90 % under 0.5 s,
all under 1 s; 3 requests in flight where the profile has a gauge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.utils import floatToGoString

from ofobserve import profiles as p
from tests.support.exporters import Clock, Exporters, Family, StaticFamilies, histogram
from tests.support.fleet import go_float, share_below
from tests.support.prometheus import PrometheusError, PrometheusServer

WINDOW = "5s"  # a rate window shorter than the series' history: no start-up extrapolation
IDENTITY = {"namespace": "shop", "function": "fn"}


def _buckets(
    h: p.Histogram, clock: Clock, labels: dict[str, str], rate: float, le: Callable[[float], str]
) -> Family:
    bounds = h.buckets or p.NATIVE_DEFAULT_BUCKETS_S
    return histogram(
        Family(h.metric, "histogram"),
        labels,
        bounds,
        lambda b: share_below(b / h.scale),
        rate,
        clock,
        le,
    )


def native(clock: Clock) -> list[Family]:
    requests = Family("function_requests", "counter")
    requests.add({**IDENTITY, "code": "200"}, clock.counter(9), "_total")
    requests.add({**IDENTITY, "code": "500"}, clock.counter(1), "_total")
    in_flight = Family("function_requests_in_flight", "gauge").add(IDENTITY, 3)
    return [
        requests,
        _buckets(p.NATIVE.histograms[0], clock, IDENTITY, 10, floatToGoString),
        in_flight,
    ]


def knative_opencensus(clock: Clock) -> list[Family]:
    base = {**IDENTITY, "namespace_name": "shop", "revision_name": "serving-x-ksvc-y-latest"}
    count = Family("revision_request_count", "counter")
    count.add({**base, "response_code": "200", "response_code_class": "2xx"}, clock.counter(9))
    count.add({**base, "response_code": "503", "response_code_class": "5xx"}, clock.counter(1))
    depth = Family("revision_queue_depth", "gauge").add(base, 3)
    hist = _buckets(p.KNATIVE_OPENCENSUS.histograms[0], clock, base, 10, go_float)
    return [count, hist, depth]


def knative_otel(clock: Clock) -> list[Family]:
    h = p.KNATIVE_OTEL.histograms[0]
    hist = Family(h.metric, "histogram")
    for code, rate in (("200", 9.0), ("500", 1.0)):
        labels = {**IDENTITY, "http_request_method": "GET", "http_response_status_code": code}
        histogram(hist, labels, h.buckets, share_below, rate, clock, go_float)
    depth = Family("kn_serving_queue_depth", "gauge").add(IDENTITY, 3)
    return [hist, depth]


def keda_http(clock: Clock) -> list[Family]:
    route = {**IDENTITY, "route_name": "serving-x-scaler-y", "route_namespace": "shop"}
    count = Family("interceptor_request_count", "counter")
    count.add({**route, "code": "200", "method": "GET"}, clock.counter(9), "_total")
    count.add({**route, "code": "502", "method": "GET"}, clock.counter(1), "_total")
    concurrency = Family("interceptor_request_concurrency", "gauge").add(route, 3)
    hist = _buckets(p.KEDA_HTTP.histograms[0], clock, route, 10, go_float)
    return [count, hist, concurrency]


def dapr(clock: Clock) -> list[Family]:
    app = {**IDENTITY, "app_id": "fn-shop"}
    binding = {**app, "component": "serving-x-bindings-in-abcde"}
    pubsub = {**app, "component": "serving-x-pubsub-orders-abcde", "topic": "orders"}
    bc = Family("dapr_component_input_binding_count", "counter")
    bc.add({**binding, "success": "true"}, clock.counter(4.5))
    bc.add({**binding, "success": "false"}, clock.counter(0.5))
    pc = Family("dapr_component_pubsub_ingress_count", "counter")
    pc.add({**pubsub, "process_status": "success", "status": "success"}, clock.counter(4.5))
    pc.add({**pubsub, "process_status": "retry", "status": "retry"}, clock.counter(0.5))
    return [
        bc,
        pc,
        _buckets(p.DAPR_BINDING_LATENCY, clock, binding, 5, go_float),
        _buckets(p.DAPR_PUBSUB_LATENCY, clock, pubsub, 5, go_float),
    ]


@dataclass
class Scenario:
    name: str
    profile: p.Profile
    families: Callable[[Clock], list[Family]]


SCENARIOS = [
    Scenario("ofobserve", p.NATIVE, native),
    Scenario("knative-opencensus", p.KNATIVE_OPENCENSUS, knative_opencensus),
    Scenario("knative-otel", p.KNATIVE_OTEL, knative_otel),
    Scenario("keda-http", p.KEDA_HTTP, keda_http),
    Scenario("dapr", p.profile("dapr", input_kinds=["binding", "pubsub"]), dapr),
]


def _job(scenario: Scenario) -> str:
    """A job name of this module's own: the session's Prometheus keeps the ``up`` history
    of other modules' jobs (tests/test_rules.py names its jobs after the scenarios too), and
    waiting on that would start the queries before these exporters are scraped."""
    return f"profiles-{scenario.name}"


@pytest.fixture(scope="module")
def served(prometheus: PrometheusServer) -> Iterator[PrometheusServer]:
    """One exporter per scenario, each scraped as its own job with honor_labels."""
    clock = Clock()
    exporters, jobs = Exporters(), []
    for scenario in SCENARIOS:
        registry = CollectorRegistry()
        registry.register(StaticFamilies(scenario.families(clock)))
        address = exporters.serve(registry)
        jobs.append(
            {
                "job_name": _job(scenario),
                "honor_labels": True,
                "static_configs": [{"targets": [address]}],
            }
        )
    prometheus.configure(jobs)
    try:
        for scenario in SCENARIOS:  # 7 s of history: more than one full rate window
            prometheus.wait_for(f'count_over_time(up{{job="{_job(scenario)}"}}[30s]) >= 7')
        yield prometheus
    finally:
        exporters.close()
        prometheus.configure([])


def _value(server: PrometheusServer, expr: str) -> float:
    result = server.query(expr)
    assert len(result) == 1, f"{expr} -> {result}"
    return float(result[0]["value"][1])


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_queries_return_the_traffic(served: PrometheusServer, scenario: Scenario) -> None:
    q = p.Queries.for_function(scenario.profile, "shop", "fn")
    assert _value(served, q.request_rate(WINDOW)) == pytest.approx(10, rel=0.2)
    assert _value(served, q.error_rate(WINDOW)) == pytest.approx(1, rel=0.2)
    assert _value(served, q.error_ratio(WINDOW)) == pytest.approx(0.1, rel=0.2)
    assert _value(served, q.slow_rate(0.5, WINDOW)) == pytest.approx(1, rel=0.2)
    assert _value(served, q.slow_rate(0.1, WINDOW)) == pytest.approx(5, rel=0.2)
    p95 = _value(served, q.latency_quantile(0.95, WINDOW))
    assert 0.5 < p95 <= 1.0
    p40 = _value(served, q.latency_quantile(0.4, WINDOW))
    assert p40 <= 0.1
    concurrency = q.concurrency()
    if scenario.profile.concurrency is None:
        assert concurrency is None
    else:
        assert concurrency is not None
        assert _value(served, concurrency) == 3


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_other_functions_are_not_counted(served: PrometheusServer, scenario: Scenario) -> None:
    q = p.Queries.for_function(scenario.profile, "shop", "other-fn")
    assert served.query(q.request_rate(WINDOW)) == []
    assert served.query(q.error_ratio(WINDOW)) == []
    assert served.query(q.latency_quantile(0.95, WINDOW)) == []


def test_error_rate_is_zero_not_absent_when_healthy(served: PrometheusServer) -> None:
    q = p.Queries.for_function(p.NATIVE, "shop", "fn")
    healthy = q.error_rate(WINDOW).replace('code=~"5.."', 'code=~"9.."')
    assert _value(served, healthy) == 0


def test_nearest_buckets() -> None:
    seconds = p.KNATIVE_OPENCENSUS.histograms[0].bucket_seconds()
    assert p.nearest_buckets(seconds, 0.3) == (0.25, 0.35)
    assert p.nearest_buckets(seconds, 0.001) == (0.005,)
    assert p.nearest_buckets(seconds, 500) == (100,)


def test_unknown_profile_and_bad_label_names() -> None:
    with pytest.raises(ValueError, match="unknown metric profile 'prom'"):
        p.profile("prom")
    with pytest.raises(ValueError, match="'bad-label' is not a valid Prometheus label name"):
        p.Queries.for_function(p.NATIVE, "ns", "fn", {"bad-label": "x"})


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=30))
def test_any_label_value_reads_back_exactly(prometheus: PrometheusServer, value: str) -> None:
    """Prometheus parses the escaped literal back to the very same string (a string literal
    is a PromQL expression of its own; its value comes back as the result)."""
    literal = p.escape_label_value(value)
    _timestamp, parsed = prometheus.query(f'"{literal}"')
    assert parsed == value


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=20), st.sampled_from(SCENARIOS))
def test_extra_matchers_cannot_alter_expressions(
    prometheus: PrometheusServer, value: str, scenario: Scenario
) -> None:
    """Whatever the value, every expression parses, and still selects nothing for a function
    that has no series (an injected ``or vector(1)`` would return a result)."""
    q = p.Queries.for_function(scenario.profile, "shop", "nobody", {"cluster": value})
    for expr in (
        q.request_rate(WINDOW),
        q.error_ratio(WINDOW),
        q.latency_quantile(0.9, WINDOW),
        q.slow_rate(0.5, WINDOW),
    ):
        try:
            result = prometheus.query(expr)
        except PrometheusError as exc:
            pytest.fail(f"{value!r} broke {expr}: {exc}")
        assert result == [], f"{value!r} changed {expr}"

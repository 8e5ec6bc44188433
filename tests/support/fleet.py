"""Synthetic series for whole functions: each profile's metrics under a function's identity,
plus what the fleet exporters (kube-state-metrics, cAdvisor, KEDA) and the ofobserve scaler
publish about it. Names and labels come from ``ofobserve.profiles`` and
``ofobserve.conventions``, i.e. from the upstream facts they encode.

Traffic: 10 requests/s, 10 % failing, half under 0.1 s, 90 % under 0.5 s; 3 replicas wanted,
2 available.

The objects are named as OpenFunction and KEDA name them (fact sheet section 7): the
function's Deployment ``<serving>-deployment-<version>-<random>``, OpenFunction's (or the HTTP
add-on's) ScaledObject ``<serving>-scaler-<random>`` and KEDA's HPA ``keda-hpa-<ScaledObject>``
targeting that Deployment, never ofobserve's own names. Decoys every query must leave out: the
dapr-proxy Deployment of each async function (it carries the function's label too, one
replica), a function ``decoy`` in ``shop`` with its own HPA and ScaledObject (desired 7, min 5,
max 50, KEDA value 1000), and KEDA series of the same ScaledObject names in another namespace.

KEDA's per-scaler error counter comes in the generation :func:`keda_generation` picks for each
function, so every dashboard reads each: ``keda_scaler_errors`` alone (KEDA 2.10-2.13, what
OpenFunction pins), both names at the same rate (2.14-2.16), or only
``keda_scaler_detail_errors_total`` (2.17 on); the decoy exports both.
"""

from __future__ import annotations

import hashlib

from ofobserve import conventions as c
from ofobserve import profiles as p
from ofobserve.model import Runtime
from ofobserve.subject import Subject
from tests.support.exporters import Clock, Family, histogram

DECOY = "decoy"


def serving_name(name: str) -> str:
    """A stable stand-in for OpenFunction's ``serving-<5 random>``."""
    return "serving-" + hashlib.sha256(name.encode()).hexdigest()[:5]


def function_deployment(name: str) -> str:
    return f"{serving_name(name)}-deployment-v100-abcde"


def proxy_deployment(name: str) -> str:
    return f"{serving_name(name)}-proxy-deployment-v100-klmno"


def scaled_object(name: str) -> str:
    """OpenFunction's (async) or the HTTP add-on's (keda-http) ScaledObject."""
    return f"{serving_name(name)}-scaler-fghij"


KEDA_GENERATIONS = ("2.10", "2.14", "2.17")


def keda_generation(index: int) -> str:
    """The KEDA release whose error counters the ``index``-th function with KEDA objects
    follows."""
    return KEDA_GENERATIONS[index % len(KEDA_GENERATIONS)]


def keda_error_families(generation: str) -> tuple[str, ...]:
    """The error counters a KEDA release exports (kedacore/keda ``prommetrics.go``)."""
    legacy, detail = c.KEDA_SCALER_ERRORS_LEGACY, c.KEDA_SCALER_ERRORS
    return {"2.10": (legacy,), "2.14": (legacy, detail), "2.17": (detail,)}[generation]


def share_below(bound_seconds: float) -> float:
    if bound_seconds < 0.1:
        return 0.0
    if bound_seconds < 0.5:
        return 0.5
    if bound_seconds < 1:
        return 0.9
    return 1.0


def go_float(value: float) -> str:
    """How Go exporters write ``le``: shortest, no ``.0``."""
    return str(int(value)) if value == int(value) else repr(value)


def _counter_family(metric: str) -> tuple[Family, str]:
    """The family and sample suffix that expose ``metric`` under exactly that name."""
    if metric.endswith("_total"):
        return Family(metric.removesuffix("_total"), "counter"), "_total"
    return Family(metric, "counter"), ""


def profile_families(subject: Subject, clock: Clock) -> list[Family]:
    """The function's profile series, as its exporter writes them (labels without identity:
    the scrape job adds ``namespace`` and ``function``)."""
    prof = subject.metric_profile
    families: list[Family] = []
    histograms = {h.metric: h for h in prof.histograms}
    share = 1 / len(prof.counters)
    for counter in prof.counters:
        outcomes = ((dict(counter.ok_labels), 9 * share), (dict(counter.error_labels), share))
        detail = {counter.detail_label: "detail"} if counter.detail_label else {}
        via_histogram = counter.metric.removesuffix("_count")
        if via_histogram in histograms:  # the count of a histogram (Knative >= 1.19)
            h = histograms.pop(via_histogram)
            family = Family(h.metric, "histogram")
            for labels, rate in outcomes:
                histogram(
                    family,
                    {**detail, **labels},
                    h.buckets,
                    lambda b, h=h: share_below(b / h.scale),
                    rate,
                    clock,
                    go_float,
                )
            families.append(family)
            continue
        family, suffix = _counter_family(counter.metric)
        for labels, rate in outcomes:
            family.add({**detail, **labels}, clock.counter(rate), suffix)
        families.append(family)
    for h in histograms.values():
        family = Family(h.metric, "histogram")
        bounds = h.buckets or (*p.NATIVE_DEFAULT_BUCKETS_S, subject.settings.slo.latency.threshold)
        histogram(
            family,
            {},
            sorted(set(bounds)),
            lambda b, h=h: share_below(b / h.scale),
            10 * (1 if len(prof.histograms) == 1 else 0.5),
            clock,
            go_float,
        )
        families.append(family)
    if prof.concurrency:
        families.append(Family(prof.concurrency, "gauge").add({}, 3))
    if prof.cold_starts:
        family, suffix = _counter_family(prof.cold_starts)
        families.append(family.add({}, clock.counter(0.2), suffix))
    return families


def fleet_families(subjects: list[Subject], clock: Clock) -> list[Family]:
    """kube-state-metrics, cAdvisor, KEDA and ofobserve-scaler series for every function."""
    f: dict[str, Family] = {
        name: Family(name, kind)
        for name, kind in (
            (c.KSM_DEPLOYMENT_LABELS, "gauge"),
            (c.KSM_DEPLOYMENT_SPEC_REPLICAS, "gauge"),
            (c.KSM_DEPLOYMENT_AVAILABLE, "gauge"),
            (c.KSM_DEPLOYMENT_UNAVAILABLE, "gauge"),
            (c.KSM_POD_LABELS, "gauge"),
            (c.KSM_CONTAINER_REQUESTS, "gauge"),
            (c.KSM_CONTAINER_LIMITS, "gauge"),
            (c.KSM_HPA_DESIRED, "gauge"),
            (c.KSM_HPA_MIN, "gauge"),
            (c.KSM_HPA_MAX, "gauge"),
            (c.KSM_HPA_INFO, "gauge"),
            (c.CADVISOR_MEMORY_WORKING_SET, "gauge"),
            (c.KEDA_SCALER_VALUE, "gauge"),
            (c.KEDA_SCALER_ACTIVE, "gauge"),
            (c.SCALER_DESIRED_REPLICAS, "gauge"),
            (c.SCALER_METRIC_VALUE, "gauge"),
            (c.SCALER_METRIC_TARGET, "gauge"),
            (c.SCALER_ACTIVE, "gauge"),
            (c.SCALER_PANIC_MODE, "gauge"),
            (c.SCALER_OBSERVED_CONCURRENCY, "gauge"),
            (c.SCALER_OBSERVED_LATENCY_SECONDS, "gauge"),
            (c.SCALER_SAMPLE_AGE_SECONDS, "gauge"),
        )
    }
    cpu = Family(c.CADVISOR_CPU_SECONDS_TOTAL.removesuffix("_total"), "counter")
    keda_errors = {
        name: _counter_family(name) for name in (c.KEDA_SCALER_ERRORS, c.KEDA_SCALER_ERRORS_LEGACY)
    }
    source_errors = Family(c.SCALER_SOURCE_ERRORS_TOTAL.removesuffix("_total"), "counter")

    def keda_objects(
        ns: str,
        name: str,
        hpa_values: tuple[float, float, float],
        value: float,
        errors: float,
        generation: str,
    ) -> None:
        so = scaled_object(name)
        hpa = {"namespace": ns, c.KSM_HPA_LABEL: c.keda_hpa_name(so)}
        target = {
            "scaletargetref_api_version": "apps/v1",
            "scaletargetref_kind": "Deployment",
            "scaletargetref_name": function_deployment(name),
        }
        f[c.KSM_HPA_INFO].add({**hpa, **target}, 1)
        for family, v in zip(
            (c.KSM_HPA_DESIRED, c.KSM_HPA_MIN, c.KSM_HPA_MAX), hpa_values, strict=True
        ):
            f[family].add(hpa, v)
        for namespace, scale in ((ns, 1), ("elsewhere", 100)):  # same name, other namespace
            keda = {
                c.KEDA_NAMESPACE_LABEL: namespace,
                c.KEDA_SCALED_OBJECT_LABEL: so,
                "scaler": "externalScaler",
                "triggerIndex": "0",
                "metric": "s0-concurrency",
                "type": "scaledobject",
            }
            f[c.KEDA_SCALER_VALUE].add(keda, value * scale)
            f[c.KEDA_SCALER_ACTIVE].add(keda, 1)
            for metric in keda_error_families(generation):
                family, suffix = keda_errors[metric]
                family.add(keda, clock.counter(errors * scale), suffix)

    def deployment(ns: str, name: str, replicas: tuple[float, float, float], proxy: bool) -> None:
        d = {
            "namespace": ns,
            "deployment": proxy_deployment(name) if proxy else function_deployment(name),
        }
        f[c.KSM_DEPLOYMENT_LABELS].add({**d, c.KSM_FUNCTION_LABEL: name}, 1)
        for family, v in zip(
            (
                c.KSM_DEPLOYMENT_SPEC_REPLICAS,
                c.KSM_DEPLOYMENT_AVAILABLE,
                c.KSM_DEPLOYMENT_UNAVAILABLE,
            ),
            replicas,
            strict=True,
        ):
            f[family].add(d, v)

    deployment("shop", DECOY, (7, 7, 0), proxy=False)
    keda_objects("shop", DECOY, (7, 5, 50), 1000, 5, "2.14")
    scaled = 0  # functions with KEDA objects so far: each generation gets some
    for s in subjects:
        ns, name = s.function.namespace, s.function.name
        ident = {"namespace": ns, "function": name}
        deployment(ns, name, (3, 2, 1), proxy=False)
        if s.function.runtime is Runtime.ASYNC:
            deployment(ns, name, (1, 1, 0), proxy=True)
            proxy_pod = {"namespace": ns, "pod": f"{proxy_deployment(name)}-0"}
            f[c.KSM_POD_LABELS].add({**proxy_pod, c.KSM_FUNCTION_LABEL: name}, 1)
            proxy_container = {**proxy_pod, "container": "dapr-proxy", "image": "dapr:1"}
            cpu.add(proxy_container, clock.counter(5), "_total")
            f[c.CADVISOR_MEMORY_WORKING_SET].add(proxy_container, 2**30)
        for i in range(2):
            pod = {"namespace": ns, "pod": f"{function_deployment(name)}-{i}"}
            f[c.KSM_POD_LABELS].add({**pod, c.KSM_FUNCTION_LABEL: name}, 1)
            container = {**pod, "container": c.FUNCTION_CONTAINER}
            for resource, unit, value in (("cpu", "core", 0.5), ("memory", "byte", 2**28)):
                labels = {**container, "resource": resource, "unit": unit}
                f[c.KSM_CONTAINER_REQUESTS].add(labels, value)
                f[c.KSM_CONTAINER_LIMITS].add(labels, 2 * value)
            cadvisor = {**container, "image": "example/fn:v1"}
            cpu.add(cadvisor, clock.counter(0.25), "_total")
            f[c.CADVISOR_MEMORY_WORKING_SET].add(cadvisor, 2**27)
        # Knative's KPA scales Knative functions: no HPA. Every other function gets KEDA's
        # objects, even one that has none in a cluster (a cron function): its dashboard and
        # rules must not read them
        if s.function.runtime is not Runtime.KNATIVE:
            keda_objects(ns, name, (3, 1, 10), 30, 0.1, keda_generation(scaled))
            scaled += 1
        f[c.SCALER_DESIRED_REPLICAS].add(ident, 3)
        f[c.SCALER_METRIC_VALUE].add({**ident, "metric": "concurrency"}, 30)
        f[c.SCALER_METRIC_TARGET].add({**ident, "metric": "concurrency"}, 10)
        f[c.SCALER_ACTIVE].add(ident, 1)
        f[c.SCALER_PANIC_MODE].add(ident, 0)
        f[c.SCALER_OBSERVED_CONCURRENCY].add(ident, 3)
        f[c.SCALER_OBSERVED_LATENCY_SECONDS].add(ident, 0.3)
        f[c.SCALER_SAMPLE_AGE_SECONDS].add(ident, 4)
        source_errors.add(
            {**ident, "source": "prometheus", "reason": "timeout"}, clock.counter(0.1), "_total"
        )
    errors = [family for family, _suffix in keda_errors.values()]
    return [*f.values(), cpu, *errors, source_errors, *_scaler_server(clock)]


def kube_state_families(subjects: list[Subject], clock: Clock) -> list[Family]:
    """Only the kube-state-metrics series of :func:`fleet_families`: what a second
    kube-state-metrics instance (HA, or a rollout) exports again, under its own target."""
    return [f for f in fleet_families(subjects, clock) if f.name.startswith("kube_")]


def _scaler_server(clock: Clock) -> list[Family]:
    """The scaler's gRPC server, source-read, forgetting and event-loop metrics."""
    service = {"grpc_service": "externalscaler.ExternalScaler", "grpc_type": "unary"}
    handled = Family(c.GRPC_SERVER_HANDLED_TOTAL.removesuffix("_total"), "counter")
    handling = Family(c.GRPC_SERVER_HANDLING_SECONDS, "histogram")
    for method in ("GetMetrics", "IsActive", "GetMetricSpec"):
        labels = {**service, "grpc_method": method}
        handled.add({**labels, "grpc_code": "OK"}, clock.counter(1), "_total")
        histogram(handling, labels, (0.001, 0.01, 0.1, 1), share_below, 1, clock)
    reads = Family(c.SCALER_SOURCE_DURATION_SECONDS, "histogram")
    histogram(reads, {"source": "prometheus"}, (0.01, 0.1, 1), share_below, 1, clock)
    forgotten = Family(c.SCALER_FUNCTIONS_FORGOTTEN_TOTAL.removesuffix("_total"), "counter")
    forgotten.add({}, clock.counter(0.5), "_total")
    lag = Family(c.SCALER_EVENT_LOOP_LAG_SECONDS, "histogram")
    histogram(lag, {}, (0.001, 0.01, 0.1, 1), share_below, 10, clock)
    return [handled, handling, reads, forgotten, lag]

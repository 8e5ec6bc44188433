"""PodMonitors: valid against the upstream CRD, and their relabelling proven in real Prometheus.

Each profile gets a synthetic exporter (prometheus-client) that emits that profile's real
metric names and labels. The PodMonitor is turned into the scrape job prometheus-operator
would generate (tests/support/operator.py); the real Prometheus then applies our
relabelings, and PromQL checks that every series carries ``namespace`` and ``function``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter

from ofobserve import conventions
from ofobserve.builders.monitors import build_pod_monitor
from ofobserve.loading import load_subjects
from ofobserve.model import ClusterRefs
from ofobserve.subject import Subject
from tests.conftest import EXAMPLE_CONFIG, EXAMPLES
from tests.support.crds import schema_errors
from tests.support.exporters import Exporters, Family, StaticFamilies
from tests.support.operator import scrape_job, selects
from tests.support.patches import merge_patch
from tests.support.prometheus import PrometheusServer


def _subject(file: str) -> Subject:
    [subject] = load_subjects([str(EXAMPLES / file)], str(EXAMPLE_CONFIG))
    return subject


def _keda_http_subject() -> Subject:
    subject = _subject("keda-http-function.yaml")
    refs = ClusterRefs(serving="serving-abcde", http_scaled_object="serving-abcde-scaler-fghij")
    function = dataclasses.replace(subject.function, refs=refs)
    return dataclasses.replace(subject, function=function)


def _native(reg: CollectorRegistry) -> None:
    c = Counter("function_requests", "requests", ["function", "code"], registry=reg)
    c.labels("main", "200").inc(3)


def _knative(reg: CollectorRegistry) -> None:
    labels = {
        "namespace_name": "default",
        "revision_name": "serving-x-ksvc-y-latest",
        "response_code_class": "2xx",
    }
    reg.register(StaticFamilies([Family("revision_request_count", "counter").add(labels, 1)]))


def _dapr(reg: CollectorRegistry) -> None:
    labels = {
        "app_id": "async-kafka-function-default",
        "component": "kafka-receiver",
        "namespace": "default",
        "success": "true",
    }
    reg.register(
        StaticFamilies([Family("dapr_component_input_binding_count", "counter").add(labels, 1)])
    )


def _keda_http(reg: CollectorRegistry) -> None:
    c = Counter(
        "interceptor_request_count",
        "requests",
        ["code", "method", "route_name", "route_namespace"],
        registry=reg,
    )
    c.labels("200", "GET", "serving-abcde-scaler-fghij", "default").inc(2)
    c.labels("200", "GET", "serving-other-scaler-zzzzz", "default").inc(5)  # someone else's


@dataclasses.dataclass
class Profile:
    name: str
    subject: Callable[[], Subject]
    emit: Callable[[CollectorRegistry], None]
    container: str
    port_name: str
    pod_namespace: str
    query: str
    #: Labels the upstream pod carries (besides the Function patch's identity label).
    pod_labels: dict[str, str] = dataclasses.field(default_factory=dict)


#: The interceptor pod as kedacore/charts http-add-on/templates/interceptor/deployment.yaml
#: labels it (component, plus the chart's common labels from _helpers.tpl).
INTERCEPTOR_LABELS = {
    "app.kubernetes.io/component": "interceptor",
    "app.kubernetes.io/name": "http-add-on",
    "app.kubernetes.io/part-of": "keda-add-ons-http",
    "app.kubernetes.io/managed-by": "Helm",
    "app.kubernetes.io/instance": "http-add-on",
}


PROFILES = [
    Profile(
        "ofobserve",
        lambda: _subject("build-from-source.yaml"),
        _native,
        "function",
        "function-port",
        "default",
        "function_requests_total",
    ),
    Profile(
        "knative",
        lambda: _subject("hello-world.yaml"),
        _knative,
        "queue-proxy",
        "http-usermetric",
        "default",
        "revision_request_count",
    ),
    Profile(
        "dapr",
        lambda: _subject("async-kafka-function.yaml"),
        _dapr,
        "daprd",
        "dapr-metrics",
        "default",
        "dapr_component_input_binding_count",
        # the dapr-proxy pod (OpenFunction CreateDaprProxy)
        {"openfunction.io/managed": "true", "openfunction.io/proxy": "serving-abcde"},
    ),
    Profile(
        "keda-http",
        _keda_http_subject,
        _keda_http,
        "keda-add-ons-http-interceptor",  # `{{ .Chart.Name }}-interceptor`
        "proxy",  # the chart declares admin and proxy, not the metrics port
        "keda",
        "interceptor_request_count_total",
        INTERCEPTOR_LABELS,
    ),
]


def _pod_labels(profile: Profile, subject: Subject) -> dict[str, str]:
    if profile.name == "keda-http":  # shared: not the function's pod
        return dict(profile.pod_labels)
    return {**profile.pod_labels, conventions.FUNCTION_POD_LABEL: subject.function.name}


def _pod_meta(profile: Profile, subject: Subject, pod: str) -> dict[str, str]:
    f = subject.function
    labels = {
        "__meta_kubernetes_pod_label_" + re.sub("[^a-zA-Z0-9]", "_", key): value
        for key, value in _pod_labels(profile, subject).items()
    }
    return labels | {
        "__meta_kubernetes_namespace": profile.pod_namespace,
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_container_name": profile.container,
        "__meta_kubernetes_pod_container_port_name": profile.port_name,
        "__meta_kubernetes_pod_ip": "127.0.0.1",
        "__meta_kubernetes_pod_annotation_dapr_io_app_id": conventions.dapr_app_id(
            f.namespace, f.name
        ),
    }


def _decoy_meta(profile: Profile, subject: Subject) -> dict[str, str]:
    """A pod the monitor must drop: another container, port or app id."""
    meta = _pod_meta(profile, subject, "decoy")
    meta["__meta_kubernetes_pod_container_name"] = "other"
    meta["__meta_kubernetes_pod_container_port_name"] = "other"
    meta["__meta_kubernetes_pod_annotation_dapr_io_app_id"] = "someone-else-default"
    return meta


@pytest.fixture(scope="module")
def scraped(prometheus: PrometheusServer) -> Iterator[PrometheusServer]:
    """Prometheus scraping one exporter per profile through that profile's PodMonitor."""
    jobs: list[dict[str, Any]] = []
    exporters = Exporters()
    for profile in PROFILES:
        registry = CollectorRegistry()
        profile.emit(registry)
        address = exporters.serve(registry)
        port = int(address.rsplit(":", 1)[1])
        subject = profile.subject()
        assert subject.profile == profile.name
        monitor = build_pod_monitor(subject)
        assert monitor is not None
        [endpoint] = monitor["spec"]["podMetricsEndpoints"]
        assert selects(monitor["spec"]["selector"], _pod_labels(profile, subject))
        # The native and keda-http profiles point the address at a fixed metrics port;
        # the test exporter listens on a free port instead.
        text = yaml.safe_dump(endpoint)
        for fixed in (
            conventions.NATIVE_METRICS_PORT,
            conventions.KEDA_HTTP_INTERCEPTOR_METRICS_PORT,
        ):
            text = text.replace(f":{fixed}", f":{port}")
        endpoint = yaml.safe_load(text)
        meta = _pod_meta(profile, subject, "pod-1")
        job = scrape_job(profile.name, endpoint, address, meta)
        job["static_configs"].append(
            {"targets": [address], "labels": _decoy_meta(profile, subject)}
        )
        # A second declared port of the same pod (Kubernetes SD gives one target per port).
        other_port = {**meta, "__meta_kubernetes_pod_container_port_name": "admin"}
        job["static_configs"].append({"targets": [f"127.0.0.1:{port}"], "labels": other_port})
        jobs.append(job)
    prometheus.configure(jobs)
    try:
        yield prometheus
    finally:
        exporters.close()
        prometheus.configure([])


@pytest.mark.parametrize("profile", PROFILES, ids=[p.name for p in PROFILES])
def test_series_carry_namespace_and_function(scraped: PrometheusServer, profile: Profile) -> None:
    f = profile.subject().function
    selector = f'{{namespace="{f.namespace}",function="{f.name}"}}'
    result = scraped.wait_for(profile.query + selector)
    assert len(result) == 1, result
    labels = result[0]["metric"]
    assert labels["pod"] == "pod-1"
    # No decoy target and no other route survived the relabelling.
    assert scraped.query(f'{profile.query}{{pod="decoy"}}') == []
    assert len(scraped.query(f'{profile.query}{{job="{profile.name}"}}')) == 1


def test_native_profile_keeps_the_kubernetes_identity(scraped: PrometheusServer) -> None:
    """honorLabels false: the pod label wins; the exporter's own label becomes exported_*."""
    [series] = scraped.wait_for('function_requests_total{function="build-from-source"}')
    assert series["metric"]["exported_function"] == "main"


def test_dapr_profile_keeps_daprs_namespace_label(scraped: PrometheusServer) -> None:
    """honorLabels true: Dapr's own namespace label is kept, never exported_namespace."""
    # (select this module's series: earlier modules' may linger until marked stale)
    [series] = scraped.wait_for(
        'dapr_component_input_binding_count{app_id="async-kafka-function-default"}'
    )
    assert "exported_namespace" not in series["metric"]
    assert series["metric"]["app_id"] == "async-kafka-function-default"


def test_keda_http_needs_the_cluster_for_identity() -> None:
    assert build_pod_monitor(_subject("keda-http-function.yaml")) is None
    monitor = build_pod_monitor(_keda_http_subject())
    assert monitor is not None
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["keda"]}


def test_every_rendered_monitor_validates_against_its_crd(
    rendered_examples: Path, validate_cr: Callable[[dict[str, Any]], None]
) -> None:
    docs = [
        yaml.safe_load(p.read_text())
        for p in sorted((rendered_examples / "monitors").rglob("*.yaml"))
    ]
    monitors = [d for d in docs if d["kind"] == "PodMonitor"]
    assert len(monitors) >= 10
    for monitor in monitors:
        validate_cr(monitor)
    validate_cr(build_pod_monitor(_keda_http_subject()))  # type: ignore[arg-type]


def test_patched_functions_are_valid_and_labelled(rendered_examples: Path) -> None:
    """Applied as kubectl would, each patch adds the label and no schema violation.

    (OpenFunction's CRD types Dapr metadata ``value`` as an object while its own samples
    use strings, so the source manifests are compared with, not required to be clean.)
    """
    sources = {}
    for path in EXAMPLES.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == "Function":
                doc["metadata"].setdefault("namespace", "default")
                sources[(doc["metadata"].get("namespace", "default"), doc["metadata"]["name"])] = (
                    doc
                )
    patches = sorted((rendered_examples / "patches").rglob("*.yaml"))
    assert len(patches) == len(sources)
    for path in patches:
        patch = yaml.safe_load(path.read_text())
        key = (patch["metadata"]["namespace"], patch["metadata"]["name"])
        patched = merge_patch(sources[key], patch)
        assert schema_errors(patched) == schema_errors(sources[key])
        assert patched["spec"]["serving"]["labels"]["ofobserve.io/function"] == key[1]
        # The merge patch changes nothing but the label.
        patched["spec"]["serving"]["labels"].pop("ofobserve.io/function")
        if not patched["spec"]["serving"]["labels"]:
            del patched["spec"]["serving"]["labels"]
        assert patched == sources[key]

"""``ofobserve controller`` against the real kube-apiserver 1.20: artifacts appear, follow
updates and settings, go with their Function; bad input is an Event; a restart writes
nothing new; two replicas elect one leader; a watch dropped by the server resumes.

Pure parts (the work queue, the lease rules, the desired state) are tested without a
cluster. The controller runs as a real subprocess, read through its own ``/metrics``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ofobserve import conventions as c
from ofobserve.controller.desired import (
    Owner,
    authored,
    desired_objects,
    failure_message,
    fleet_owner,
    function_label_patch,
    function_scaling_patch,
    owner_of,
    prune_plan,
    scaling_conflict_message,
    scaling_is_applied,
    subject_for,
)
from ofobserve.controller.leases import Observer, released, taken
from ofobserve.controller.resources import MANAGED_KINDS, ObjectKey, function_kind, key_of
from ofobserve.controller.settings_source import SettingsSource, parse_settings_text
from ofobserve.controller.workqueue import WorkQueue
from ofobserve.errors import InvalidInput
from ofobserve.kube.client import Kube, load_api_client
from ofobserve.settings import Config
from tests.conftest import run_cli
from tests.support.controller import (
    STAND_IN_FUNCTION_CRD,
    ControllerProcess,
    PrivateAPIServer,
    eventually,
)
from tests.support.kube import KubeAPI, dropped_fields

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
FUNCTIONS = function_kind()
PODMONITORS, RULES = MANAGED_KINDS[0], MANAGED_KINDS[1]
CONFIGMAPS = MANAGED_KINDS[4]
FLEET_COUNT = 50
MANAGED = f"{c.MANAGED_BY_LABEL}={c.MANAGED_BY_VALUE}"


def function_doc(namespace: str, name: str, **annotations: str) -> dict[str, Any]:
    """A sync (Knative) Function: a PodMonitor, a PrometheusRule and a dashboard."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": FUNCTIONS.api_version,
        "kind": "Function",
        "metadata": meta,
        "spec": {
            "version": "v1.0.0",
            "image": "openfunctiondev/sample-go-func:v1",
            "serving": {
                "template": {"containers": [{"name": "function", "imagePullPolicy": "Always"}]},
                "triggers": {"http": {"port": 8080}},
            },
        },
    }


def async_function_doc(
    namespace: str, name: str, keda_triggers: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """An async (Dapr pubsub) Function, with the author's own KEDA triggers or none; the
    Dapr metadata values are mappings, as OpenFunction 1.2's CRD types them."""
    serving: dict[str, Any] = {
        "pubsub": {
            "orders": {
                "type": "pubsub.redis",
                "version": "v1",
                "metadata": [{"name": "redisHost", "value": {"value": "redis:6379"}}],
            }
        },
        "triggers": {"dapr": [{"name": "orders", "topic": "orders"}]},
        "template": {"containers": [{"name": "function", "imagePullPolicy": "Always"}]},
    }
    if keda_triggers is not None:
        serving["scaleOptions"] = {"keda": {"triggers": keda_triggers}}
    return {
        "apiVersion": FUNCTIONS.api_version,
        "kind": "Function",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"version": "v1.0.0", "image": "example/orders:v1", "serving": serving},
    }


KAFKA_TRIGGER = {
    "type": "kafka",
    "metadata": {"bootstrapServers": "kafka:9092", "consumerGroup": "g", "topic": "orders",
                 "lagThreshold": "5"},
}  # fmt: skip


# --- pure: the work queue -------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_queue_collapses_duplicates_and_never_hands_out_a_key_twice_at_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "a"):
        queue.add(key)
    assert len(queue) == 2
    assert queue.get(0) == "a"
    queue.add("a")  # changed while being processed: queued again once done
    assert queue.get(0) == "b"
    assert queue.get(0) is None
    queue.done("a")
    assert queue.get(0) == "a"
    queue.done("a")
    queue.done("b")
    assert queue.get(0) is None
    queue.shutdown()
    queue.add("c")
    assert queue.get() is None


def test_queue_backs_off_per_key_exponentially_and_forget_resets() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(base_delay=0.1, max_delay=1.0, qps=1000, clock=clock)
    delays = [queue.add_rate_limited("a") for _ in range(6)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert queue.add_rate_limited("b") == 0.1  # per key
    assert queue.get(0) is None  # nothing is due yet
    clock.now = 0.1
    assert queue.get(0) in {"a", "b"}
    queue.forget("a")
    assert queue.failures("a") == 0
    assert queue.add_rate_limited("a") == 0.1


def test_queue_overall_rate_limit_is_a_token_bucket() -> None:
    clock = FakeClock()
    queue: WorkQueue[int] = WorkQueue(base_delay=0.0, qps=10, burst=2, clock=clock)
    delays = [queue.add_rate_limited(i) for i in range(4)]
    assert delays == pytest.approx([0.0, 0.0, 0.1, 0.2])
    clock.now = 0.2
    assert sorted(k for k in iter(lambda: queue.get(0), None)) == [0, 1, 2, 3]


def test_queue_get_wakes_up_for_a_key_added_from_another_thread() -> None:
    queue: WorkQueue[str] = WorkQueue()
    threading.Timer(0.05, queue.add, ("late",)).start()
    assert queue.get(5) == "late"


# --- pure: the lease rules ------------------------------------------------------------------


def test_lease_holder_is_respected_until_it_is_stale_as_observed() -> None:
    from datetime import UTC, datetime

    wall = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
    spec = taken(None, "a", 15, wall)
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("a", 0)
    assert spec["renewTime"] == "2026-12-03T10:00:00.000000Z"
    seen = Observer()
    seen.observe(spec, now=100.0)
    assert not seen.may_take(spec, "b", now=114.9)
    assert seen.may_take(spec, "a", now=101)  # its own
    assert seen.may_take(spec, "b", now=115.0)
    renewed = taken(spec, "a", 15, wall)
    seen.observe({**renewed, "renewTime": "later"}, now=114.0)  # a renewal resets the clock
    assert not seen.may_take(renewed, "b", now=120.0)
    stolen = taken(spec, "b", 15, wall)
    assert (stolen["holderIdentity"], stolen["leaseTransitions"]) == ("b", 1)
    assert seen.may_take(released(stolen, wall), "c", now=0)


# --- pure: the desired state ----------------------------------------------------------------

SETTINGS = """\
defaults:
  grafana:
    namespace: {grafana}
  selectorLabels:
    rules:
      release: {release}
"""


def _stored(doc: dict[str, Any], uid: str = "u-1") -> dict[str, Any]:
    return {**doc, "metadata": {**doc["metadata"], "uid": uid, "resourceVersion": "7"}}


def test_desired_objects_are_labelled_and_owned_in_the_functions_namespace() -> None:
    config = parse_settings_text(SETTINGS.format(grafana="grafana", release="r"), "test")
    doc = _stored(function_doc("shop", "cart"))
    objects = desired_objects(subject_for(doc, config), doc)
    assert [str(key_of(o)) for o in objects] == [
        "ConfigMap grafana/ofobserve-dashboard-shop.cart",
        "PodMonitor shop/ofobserve-cart",
        "PrometheusRule shop/ofobserve-cart",
    ]
    identity = {
        c.MANAGED_BY_LABEL: c.MANAGED_BY_VALUE,
        c.FUNCTION_POD_LABEL: "cart",
        c.FUNCTION_NAMESPACE_LABEL: "shop",
    }
    for obj in objects:
        assert identity.items() <= obj["metadata"]["labels"].items()
        assert owner_of(obj["metadata"]["labels"]) == Owner("shop", "cart")
    dashboard, monitor, rule = objects
    assert "ownerReferences" not in dashboard["metadata"]  # cross-namespace: labels only
    owner = {
        "apiVersion": "core.openfunction.io/v1beta2",
        "kind": "Function",
        "name": "cart",
        "uid": "u-1",
        "controller": True,
    }
    assert monitor["metadata"]["ownerReferences"] == [owner] == rule["metadata"]["ownerReferences"]
    assert rule["metadata"]["labels"]["release"] == "r"


def test_render_output_and_foreign_objects_are_never_pruned() -> None:
    assert owner_of({c.MANAGED_BY_LABEL: c.MANAGED_BY_VALUE}) is None  # `ofobserve render`
    assert owner_of({c.FUNCTION_POD_LABEL: "x", c.FUNCTION_NAMESPACE_LABEL: "y"}) is None
    fleet = {c.MANAGED_BY_LABEL: c.MANAGED_BY_VALUE, c.FLEET_LABEL: "ofobserve"}
    assert owner_of(fleet) == fleet_owner("ofobserve")
    assert owner_of(fleet) != fleet_owner("default")  # another controller's fleet
    a, b, d = (ObjectKey("PodMonitor", "ns", n, "monitoring.coreos.com/v1") for n in "abd")
    assert prune_plan([a, b, d], [b]) == [a, d]
    assert prune_plan([], [a]) == []


def test_function_label_patch_only_when_missing() -> None:
    doc = function_doc("shop", "cart")
    patch = function_label_patch(subject_for(doc, Config()))
    assert patch is not None
    assert patch["spec"] == {"serving": {"labels": {c.FUNCTION_POD_LABEL: "cart"}}}
    doc["spec"]["serving"]["labels"] = {c.FUNCTION_POD_LABEL: "cart"}
    assert function_label_patch(subject_for(doc, Config())) is None


def _fields_v1(value: Any) -> dict[str, Any]:
    """The ``fieldsV1`` a server-side apply of ``value`` records (lists are atomic)."""
    if not isinstance(value, dict) or not value:
        return {}
    return {".": {}, **{f"f:{k}": _fields_v1(v) for k, v in value.items()}}


def _wired(doc: dict[str, Any], patch: dict[str, Any], *others: tuple[str, Any]) -> dict[str, Any]:
    """``doc`` as the API server holds it once ``patch`` is applied by the scaling manager
    (``others``: more managedFields entries, manager and fieldsV1)."""

    def merge(into: dict[str, Any], new: dict[str, Any]) -> None:
        for k, v in new.items():
            if isinstance(v, dict) and isinstance(into.get(k), dict):
                merge(into[k], v)
            else:
                into[k] = json.loads(json.dumps(v))

    wired = json.loads(json.dumps(doc))
    merge(wired["spec"], patch["spec"])
    entries = [(c.CONTROLLER_SCALING_FIELD_MANAGER, {"f:spec": _fields_v1(patch["spec"])})]
    wired["metadata"]["managedFields"] = [
        {"manager": m, "operation": "Apply", "fieldsV1": f} for m, f in [*entries, *others]
    ]
    return wired


def test_scaling_patch_renders_the_same_from_a_function_it_wired() -> None:
    doc = async_function_doc("shop", "orders")
    patch = function_scaling_patch(subject_for(doc, Config()))
    assert patch is not None
    keda = patch["spec"]["serving"]["scaleOptions"]["keda"]
    assert [t["type"] for t in keda["triggers"]] == ["external-push"]
    assert {"advanced", "fallback"} <= set(keda["scaledObject"])
    wired = _wired(doc, patch)
    # Read as it is, the wired Function looks as if its author set the fallback, behavior
    # and bounds: render would leave them out, and applying that would delete them.
    assert function_scaling_patch(subject_for(wired, Config())) != patch
    assert function_scaling_patch(subject_for(authored(wired), Config())) == patch
    assert scaling_is_applied(wired, patch)
    assert not scaling_is_applied(doc, patch)
    stale = json.loads(json.dumps(wired))
    stale["spec"]["serving"]["scaleOptions"]["keda"]["triggers"][0]["metadata"]["profile"] = "x"
    assert not scaling_is_applied(stale, patch)
    # A field another manager owns too is the author's: kept.
    fallback = {"f:spec": {"f:serving": {"f:scaleOptions": {"f:keda": {"f:scaledObject": {
        "f:fallback": {"f:replicas": {}}}}}}}}  # fmt: skip
    shared = authored(_wired(doc, patch, ("gitops", fallback)))
    assert "fallback" in shared["spec"]["serving"]["scaleOptions"]["keda"]["scaledObject"]
    assert "advanced" not in shared["spec"]["serving"]["scaleOptions"]["keda"]["scaledObject"]
    # The author's own KEDA triggers are kept verbatim, before ofobserve's.
    own = async_function_doc("shop", "orders", [KAFKA_TRIGGER])
    own_patch = function_scaling_patch(subject_for(own, Config()))
    assert own_patch is not None
    triggers = own_patch["spec"]["serving"]["scaleOptions"]["keda"]["triggers"]
    assert triggers[0] == KAFKA_TRIGGER
    assert triggers[1]["name"] == "ofobserve"


def test_sync_functions_get_no_scaling_patch() -> None:
    assert function_scaling_patch(subject_for(function_doc("shop", "cart"), Config())) is None


SCALING_CONFLICT = (
    'not wired to the ofobserve scaler: server-side apply conflicts with "gitops" on '
    "spec.serving.scaleOptions.keda.triggers, and ofobserve does not force it. Add "
    "ofobserve's trigger to this Function's manifest as `ofobserve render --only scaling` "
    "prints it, or let that manager give up these fields."
)


def test_scaling_conflict_message_names_fields_and_managers() -> None:
    cause = {"reason": "FieldManagerConflict", "message": 'conflict with "gitops"',
             "field": ".spec.serving.scaleOptions.keda.triggers"}  # fmt: skip
    assert scaling_conflict_message([cause], "Apply failed") == SCALING_CONFLICT
    more = [
        cause,
        {"message": 'conflict with "kubectl-create" using core.openfunction.io/v1beta2',
         "field": ".spec.serving.scaleOptions.minReplicas"},
        {"message": 'conflict with "gitops"', "field": ".spec.serving.scaleOptions.maxReplicas"},
    ]  # fmt: skip
    assert scaling_conflict_message(more, "").startswith(
        'not wired to the ofobserve scaler: server-side apply conflicts with "gitops" on '
        "spec.serving.scaleOptions.keda.triggers, spec.serving.scaleOptions.maxReplicas; "
        'with "kubectl-create" on spec.serving.scaleOptions.minReplicas, and ofobserve '
    )


BAD_MESSAGE = (
    '{ns}/bad metadata.annotations."ofobserve.io/slo.availability": Input should be a valid '
    "number, unable to parse string as a number (got 'lots')"
)


def test_bad_annotation_message_is_renders() -> None:
    doc = function_doc("shop", "bad", **{"ofobserve.io/slo.availability": "lots"})
    with pytest.raises(InvalidInput) as caught:
        subject_for(doc, Config())
    assert failure_message(caught.value) == BAD_MESSAGE.format(ns="shop")


def test_settings_text_errors_name_the_configmap() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_settings_text("defaults:\n  slo: {availability: lots}\n", "ConfigMap a/b k")
    assert str(caught.value).startswith("ConfigMap a/b k defaults.slo.availability: ")


# --- the command line -----------------------------------------------------------------------


def test_bad_config_map_value_is_a_usage_error() -> None:
    result = run_cli("controller", "--config-map", "no-slash")
    assert result.exit_code == 2
    assert "Invalid value for '--config-map': expected NAMESPACE/NAME (got 'no-slash')" in (
        result.stderr
    )
    result = run_cli("controller", "--config", "x.yaml", "--config-map", "a/b")
    assert result.exit_code == 2
    assert "Error: give either --config or --config-map, not both" in result.stderr
    result = run_cli("controller", "--leader-elect", "--renew-deadline", "20")
    assert result.exit_code == 2
    assert (
        "leader election needs --retry-period < --renew-deadline < --lease-duration "
        "(got 2 < 20 < 15)"
    ) in result.stderr


def test_unreadable_kubeconfig_and_settings_exit_1(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = run_cli("controller", "--kubeconfig", str(missing))
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot read kubeconfig {missing}: no such file\n"
    garbage = tmp_path / "kubeconfig"
    garbage.write_text("{{{")
    result = run_cli("controller", "--kubeconfig", str(garbage))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot load kubeconfig {garbage}: ")
    settings = tmp_path / "ofobserve.yaml"
    settings.write_text("defaults:\n  slo:\n    availability: lots\n")
    result = run_cli("controller", "--config", str(settings), "--kubeconfig", str(missing))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {settings}[0] defaults.slo.availability: Input should be a valid number, "
        "unable to parse string as a number (got 'lots')\n"
    )


# --- against the real API server ------------------------------------------------------------


class Cluster:
    """The test's namespaces, a direct API client, and the shared controller."""

    def __init__(self, api: KubeAPI, logs: Path) -> None:
        self.api = api
        self.kube = Kube(load_api_client(str(api.kubeconfig)))
        self.logs = logs
        self.ns = api.fresh_namespace("ctl")
        self.grafana = api.fresh_namespace("ctl-grafana")
        self.settings("one")
        self.controller = self.start()

    def start(self, *extra: str) -> ControllerProcess:
        process = ControllerProcess(
            self.api.kubeconfig, self.logs,
            f"--namespace={self.ns}", f"--config-map={self.ns}/ofobserve", *extra,
        )  # fmt: skip
        process.wait_ready()
        return process

    def settings(self, release: str) -> None:
        text = SETTINGS.format(grafana=self.grafana, release=release)
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "ofobserve", "namespace": self.ns},
            "data": {"ofobserve.yaml": text},
        }
        self.kube.apply(CONFIGMAPS.path(self.ns, "ofobserve"), body, "tests", force=True)

    def create(self, doc: dict[str, Any]) -> dict[str, Any]:
        return self.kube.request("POST", FUNCTIONS.path(doc["metadata"]["namespace"]), body=doc)

    def managed(self, namespace: str, owner: str | None = None) -> dict[str, dict[str, Any]]:
        """Every managed object in ``namespace`` (of ``owner``, a function name) by key."""
        selector = MANAGED + (f",{c.FUNCTION_POD_LABEL}={owner}" if owner else "")
        found = {}
        for kind in MANAGED_KINDS:
            items, _ = self.kube.list_all(kind.path(namespace), labelSelector=selector)
            for item in items:
                item.setdefault("apiVersion", kind.api_version)
                item.setdefault("kind", kind.kind)
                found[str(key_of(item))] = item
        return found

    def artifacts(self, name: str) -> dict[str, dict[str, Any]]:
        return {**self.managed(self.ns, name), **self.managed(self.grafana, name)}

    def config(self, release: str) -> Config:
        return parse_settings_text(SETTINGS.format(grafana=self.grafana, release=release), "x")


@pytest.fixture(scope="module")
def cluster(kube_apiserver: KubeAPI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("controller") / "controller.log"
    shared = Cluster(kube_apiserver, logs)
    try:
        yield shared
    finally:
        shared.controller.stop()
        print(f"controller logs: {logs}")


def _watch_rules(kube: Kube, namespace: str, seen: dict[str, float], stop: threading.Event,
                 started: threading.Event) -> None:  # fmt: skip
    _, version = kube.list_all(RULES.path(namespace), labelSelector=MANAGED)
    started.set()
    while not stop.is_set():
        for event in kube.watch(RULES.path(namespace), version, 5, labelSelector=MANAGED):
            labels = event["object"]["metadata"]["labels"]
            # the functions' own; the fleet rules (labelled ofobserve.io/fleet) come once
            if event["type"] == "ADDED" and c.FUNCTION_POD_LABEL in labels:
                seen.setdefault(labels[c.FUNCTION_POD_LABEL], time.monotonic())
            version = event["object"]["metadata"]["resourceVersion"]
            if stop.is_set():
                return


def test_new_functions_get_their_artifacts_stored_unpruned(cluster: Cluster) -> None:
    """The PrometheusRule is the last object applied (keys are applied in order), so its
    ADDED event, seen on a watch of the test's own, ends each function's latency."""
    seen: dict[str, float] = {}
    stop, started = threading.Event(), threading.Event()
    watcher = threading.Thread(
        target=_watch_rules, args=(cluster.kube, cluster.ns, seen, stop, started), daemon=True
    )
    watcher.start()
    started.wait(10)
    created: dict[str, float] = {}
    for i in range(FLEET_COUNT):
        name = f"fn-{i:02d}"
        created[name] = time.monotonic()
        cluster.create(function_doc(cluster.ns, name))
    eventually(lambda: len(seen) == FLEET_COUNT, 60, f"{FLEET_COUNT} PrometheusRules")
    stop.set()
    latencies = sorted(seen[n] - created[n] for n in created)
    p95 = latencies[int(0.95 * len(latencies)) - 1]
    print(
        f"\ncreate -> last artifact applied over {FLEET_COUNT} functions: "
        f"p50 {statistics.median(latencies):.3f} s, p95 {p95:.3f} s, max {latencies[-1]:.3f} s"
    )
    config = cluster.config("one")
    for name in ("fn-00", "fn-25", "fn-49"):
        doc = cluster.kube.get(FUNCTIONS.path(cluster.ns, name))
        sent = desired_objects(subject_for(doc, config), doc)
        stored = eventually(lambda n=name: (a := cluster.artifacts(n)) and len(a) == 3 and a)
        assert sorted(stored) == sorted(str(key_of(o)) for o in sent)
        for obj in sent:
            assert dropped_fields(obj, stored[str(key_of(obj))]) == [], key_of(obj)
        labels = doc["spec"]["serving"].get("labels") or {}
        if labels.get(c.FUNCTION_POD_LABEL) != name:  # the patch may come just after
            doc = eventually(
                lambda n=name: (
                    (d := cluster.kube.get(FUNCTIONS.path(cluster.ns, n)))["spec"]["serving"]
                    .get("labels", {}).get(c.FUNCTION_POD_LABEL) == n and d
                )
            )  # fmt: skip
        managers = {f["manager"]: f for f in doc["metadata"]["managedFields"]}
        owned = managers[c.CONTROLLER_FUNCTION_FIELD_MANAGER]["fieldsV1"]
        label = {".": {}, f"f:{c.FUNCTION_POD_LABEL}": {}}
        assert owned == {"f:spec": {".": {}, "f:serving": {".": {}, "f:labels": label}}}
        # A sync (Knative) function: Knative scales it, no scaling wiring.
        assert function_scaling_patch(subject_for(doc, config)) is None
        assert c.CONTROLLER_SCALING_FIELD_MANAGER not in managers
        assert "scaleOptions" not in doc["spec"]["serving"]
    fleet = cluster.managed(cluster.grafana)
    assert {"ConfigMap " + f"{cluster.grafana}/ofobserve-dashboard-{n}" for n in
            ("overview", "scaler")} <= set(fleet)  # fmt: skip


def _function(cluster: Cluster, name: str) -> dict[str, Any]:
    return cluster.kube.get(FUNCTIONS.path(cluster.ns, name))


def _keda(doc: dict[str, Any]) -> dict[str, Any]:
    keda: dict[str, Any] = doc["spec"]["serving"].get("scaleOptions", {}).get("keda", {})
    return keda


def _settled(cluster: Cluster, name: str) -> tuple[str, float, float]:
    """Once idle: the Function's resourceVersion, the Function applies and the conflicts."""
    eventually(cluster.controller.idle, 30, "the controller to be idle")
    return (
        _function(cluster, name)["metadata"]["resourceVersion"],
        cluster.controller.value("ofobserve_controller_applied_objects_total", kind="Function"),
        cluster.controller.value("ofobserve_controller_scaling_conflicts_total"),
    )


def test_an_async_function_gets_its_scaling_wiring(cluster: Cluster) -> None:
    """Created with kubectl, which owns only what it wrote: no KEDA trigger of the author's,
    so the controller's scaling manager takes the fields without a conflict."""
    applied = cluster.controller.value("ofobserve_controller_applied_objects_total",
                                       kind="Function")  # fmt: skip
    doc = async_function_doc(cluster.ns, "orders")
    cluster.api.kubectl("create", "-f", "-", input=json.dumps(doc))
    expected = function_scaling_patch(
        subject_for(_function(cluster, "orders"), cluster.config("one"))
    )
    assert expected is not None
    stored = eventually(lambda: _keda(d := _function(cluster, "orders")).get("triggers") and d,
                        30, "the scaling wiring")  # fmt: skip
    assert (
        _keda(stored)["triggers"] == expected["spec"]["serving"]["scaleOptions"]["keda"]["triggers"]
    )
    assert [t["type"] for t in _keda(stored)["triggers"]] == ["external-push"]
    assert dropped_fields(expected, stored) == []  # nothing pruned
    managers = {f["manager"]: f["fieldsV1"] for f in stored["metadata"]["managedFields"]}
    ours = managers[c.CONTROLLER_SCALING_FIELD_MANAGER]["f:spec"]["f:serving"]["f:scaleOptions"]
    assert ours["f:keda"]["f:triggers"] == {}
    assert {"f:minReplicas", "f:maxReplicas"} <= set(ours)
    assert set(ours["f:keda"]["f:scaledObject"]) == {".", "f:advanced", "f:fallback"}
    created = managers["kubectl-create"]["f:spec"]["f:serving"]
    assert "f:scaleOptions" not in created
    assert "f:dapr" in created["f:triggers"]
    assert stored["spec"]["serving"]["triggers"] == doc["spec"]["serving"]["triggers"]
    assert stored["spec"]["serving"]["pubsub"] == doc["spec"]["serving"]["pubsub"]
    # Its own write comes back on the watch: rendered from the Function as authored it
    # gives the same patch, so nothing more is sent (no flip-flop of the fields it set).
    version, functions, _ = _settled(cluster, "orders")
    assert functions >= applied + 2  # the identity label and the wiring
    time.sleep(1.0)
    assert _settled(cluster, "orders")[:2] == (version, functions)


def test_a_gitops_owned_trigger_list_is_not_forced(cluster: Cluster) -> None:
    """The author server-side applies their own KEDA triggers as ``gitops``: the atomic
    list is theirs, the controller's apply conflicts, and it says so once."""
    conflicts = cluster.controller.value("ofobserve_controller_scaling_conflicts_total")
    doc = async_function_doc(cluster.ns, "gitops-owned", [KAFKA_TRIGGER])
    gitops = ("apply", "--server-side", "--field-manager=gitops", "-f", "-")
    cluster.api.kubectl(*gitops, input=json.dumps(doc))

    def events() -> list[dict[str, Any]]:
        items, _ = cluster.kube.list_all(
            f"/api/v1/namespaces/{cluster.ns}/events",
            fieldSelector="involvedObject.name=gitops-owned,reason=ScalingNotWired",
        )
        return items

    [event] = eventually(events, 30, "the ScalingNotWired Event")
    assert (event["type"], event["involvedObject"]["kind"]) == ("Warning", "Function")
    assert event["message"] == SCALING_CONFLICT
    version, _, counted = _settled(cluster, "gitops-owned")
    assert counted >= conflicts + 1
    stored = _function(cluster, "gitops-owned")
    assert _keda(stored) == {"triggers": [KAFKA_TRIGGER]}  # exactly the author's
    managers = {f["manager"] for f in stored["metadata"]["managedFields"]}
    assert c.CONTROLLER_SCALING_FIELD_MANAGER not in managers
    time.sleep(1.0)  # no retry loop: nothing changed, nothing is sent
    assert _settled(cluster, "gitops-owned")[0::2] == (version, counted)
    assert len(events()) == 1
    # The remedy the Event gives: the author adds ofobserve's trigger as render prints it.
    patch = function_scaling_patch(subject_for(stored, cluster.config("one")))
    assert patch is not None
    doc["spec"]["serving"]["scaleOptions"] = patch["spec"]["serving"]["scaleOptions"]
    cluster.api.kubectl(*gitops, input=json.dumps(doc))

    def co_owned() -> dict[str, Any] | None:
        d = _function(cluster, "gitops-owned")
        managers = {f["manager"] for f in d["metadata"]["managedFields"]}
        return d if c.CONTROLLER_SCALING_FIELD_MANAGER in managers else None

    wired = eventually(co_owned, 30, "the scaling manager to share the fields")
    assert _keda(wired)["triggers"] == [KAFKA_TRIGGER, patch["spec"]["serving"]["scaleOptions"][
        "keda"]["triggers"][1]]  # fmt: skip
    assert _settled(cluster, "gitops-owned")[2] == counted  # no new conflict
    assert len(events()) == 1


def _objective(rule: dict[str, Any]) -> list[str]:
    return [
        r["expr"]
        for group in rule["spec"]["groups"]
        for r in group["rules"]
        if r.get("record") == c.SLO_OBJECTIVE
    ]


def test_update_and_settings_change_re_render(cluster: Cluster) -> None:
    cluster.create(function_doc(cluster.ns, "updated"))
    rule_key = f"PrometheusRule {cluster.ns}/ofobserve-updated"
    before = eventually(lambda: cluster.artifacts("updated").get(rule_key), 30, "its rule")
    patch = {"metadata": {"annotations": {"ofobserve.io/slo.availability": "99.0"}}}
    cluster.api.merge_patch("functions", cluster.ns, "updated", patch)

    def changed() -> dict[str, Any] | None:
        rule = cluster.artifacts("updated")[rule_key]
        return rule if json.dumps(rule["spec"]) != json.dumps(before["spec"]) else None

    after = eventually(changed, 30, "the rule to change")
    assert _objective(before)[0] == "vector(0.995)"  # the default
    assert _objective(after)[0] == "vector(0.99)"

    cluster.settings("two")

    def relabelled() -> bool:
        items, _ = cluster.kube.list_all(RULES.path(cluster.ns), labelSelector=MANAGED)
        return len(items) >= 1 and all(
            i["metadata"]["labels"].get("release") == "two" for i in items
        )

    eventually(relabelled, 60, "every PrometheusRule to carry release: two")


def test_deleting_the_function_prunes_everything(cluster: Cluster) -> None:
    cluster.create(function_doc(cluster.ns, "short-lived"))
    eventually(lambda: len(cluster.artifacts("short-lived")) == 3, 30, "its artifacts")
    cluster.kube.delete(FUNCTIONS.path(cluster.ns, "short-lived"))
    eventually(lambda: cluster.artifacts("short-lived") == {}, 30, "its artifacts to go")


def test_bad_annotation_is_a_warning_event_and_the_others_go_on(cluster: Cluster) -> None:
    failures = cluster.controller.value("ofobserve_controller_render_failures_total")
    bad = cluster.create(
        function_doc(cluster.ns, "bad", **{"ofobserve.io/slo.availability": "lots"})
    )
    cluster.create(function_doc(cluster.ns, "good-after-bad"))
    eventually(lambda: len(cluster.artifacts("good-after-bad")) == 3, 30, "the good one")

    def event() -> dict[str, Any] | None:
        items, _ = cluster.kube.list_all(
            f"/api/v1/namespaces/{cluster.ns}/events",
            fieldSelector="involvedObject.name=bad,reason=RenderFailed",
        )
        return items[0] if items else None

    found = eventually(event, 30, "the RenderFailed Event")
    assert found["type"] == "Warning"
    assert found["message"] == BAD_MESSAGE.format(ns=cluster.ns)
    assert found["involvedObject"]["uid"] == bad["metadata"]["uid"]
    assert found["involvedObject"]["kind"] == "Function"
    assert cluster.artifacts("bad") == {}
    assert cluster.controller.value("ofobserve_controller_render_failures_total") > failures


def test_a_restarted_controller_applies_nothing_new(cluster: Cluster) -> None:
    eventually(cluster.controller.idle, 60, "the controller to be idle")
    time.sleep(1.5)  # the fleet waits a second after the last change
    eventually(cluster.controller.idle, 60, "the controller to be idle")

    def versions() -> dict[str, str]:
        found = {**cluster.managed(cluster.ns), **cluster.managed(cluster.grafana)}
        items, _ = cluster.kube.list_all(FUNCTIONS.path(cluster.ns))
        found.update({f"Function {i['metadata']['name']}": i for i in items})
        return {k: v["metadata"]["resourceVersion"] for k, v in found.items()}

    before = versions()
    assert cluster.controller.stop() == 0  # SIGTERM: graceful
    assert '"message": "stopped"' in cluster.controller.logs()
    # Deleted while no controller runs: found by label at the start, and pruned.
    cluster.kube.delete(FUNCTIONS.path(cluster.ns, "fn-49"))
    orphaned = set(cluster.artifacts("fn-49"))
    assert len(orphaned) == 3
    before = {k: v for k, v in before.items() if k not in orphaned and k != "Function fn-49"}
    cluster.controller = cluster.start()
    restarted = cluster.controller
    eventually(
        lambda: restarted.value("ofobserve_controller_reconciles_total", result="applied")
        >= FLEET_COUNT and restarted.idle(),
        60, "every function reconciled again",
    )  # fmt: skip
    time.sleep(1.5)
    eventually(restarted.idle, 30, "idle")
    assert restarted.value("ofobserve_controller_applied_objects_total") > 3 * (FLEET_COUNT - 1)
    assert versions() == before
    assert cluster.artifacts("fn-49") == {}


def test_two_replicas_elect_one_leader_and_the_other_takes_over(
    kube_apiserver: KubeAPI, tmp_path: Path
) -> None:
    ns = kube_apiserver.fresh_namespace("ctl-ha")
    kube = Kube(load_api_client(str(kube_apiserver.kubeconfig)))
    for i in range(3):
        kube.request("POST", FUNCTIONS.path(ns), body=function_doc(ns, f"ha-{i}"))
    flags = (
        f"--namespace={ns}", "--leader-elect", f"--lease-namespace={ns}",
        "--lease-duration=4", "--renew-deadline=3", "--retry-period=0.5",
    )  # fmt: skip
    replicas = [
        ControllerProcess(kube_apiserver.kubeconfig, tmp_path / f"r{i}.log", *flags)
        for i in range(2)
    ]
    try:
        for replica in replicas:
            replica.wait_ready()  # ready while not leading, too

        def one_leader() -> list[ControllerProcess] | None:
            leaders = [r for r in replicas if r.value("ofobserve_controller_leader") == 1]
            done = sum(
                r.value("ofobserve_controller_reconciles_total", result="applied") for r in replicas
            )
            return leaders if len(leaders) == 1 and done >= 3 else None

        [leader] = eventually(one_leader, 30, "one leader that reconciled")
        [follower] = [r for r in replicas if r is not leader]
        time.sleep(1.0)
        assert follower.value("ofobserve_controller_reconciles_total") == 0
        assert follower.value("ofobserve_controller_applied_objects_total") == 0
        assert follower.value("ofobserve_controller_leader") == 0
        leader.kill()  # no release: the follower must wait the lease out
        killed = time.monotonic()
        eventually(lambda: follower.value("ofobserve_controller_leader") == 1, 20, "takeover")
        print(f"\ntakeover after the leader was killed: {time.monotonic() - killed:.2f} s "
              "(lease duration 4 s, retry period 0.5 s)")  # fmt: skip
        kube.request("POST", FUNCTIONS.path(ns), body=function_doc(ns, "after-takeover"))
        eventually(
            lambda: kube.list_all(RULES.path(ns), labelSelector=MANAGED)[0].__len__() == 4,
            30, "the new leader to reconcile a new function",
        )  # fmt: skip
    finally:
        for replica in replicas:
            if replica.proc.poll() is None:
                replica.stop()


def test_a_watch_dropped_by_the_server_resumes_without_missing_a_function(
    tmp_path: Path,
) -> None:
    """A private API server whose kube-apiserver is killed and started again on the same
    etcd while the controller watches. It has a stand-in Function CRD (same group, version
    and kind, no schema: the real one costs seconds at each start) and nothing else, so the
    controller runs with --dry-run: its lines say which Functions it saw."""
    started = time.monotonic()
    server = PrivateAPIServer(tmp_path / "k8s", (), STAND_IN_FUNCTION_CRD)
    try:
        api = server.start()
        kube = Kube(load_api_client(str(api.kubeconfig)))
        kube.request("POST", FUNCTIONS.path("default"), body=function_doc("default", "before"))
        controller = ControllerProcess(api.kubeconfig, tmp_path / "controller.log", "--dry-run")
        try:
            controller.wait_ready()
            seen = "apply PrometheusRule default/ofobserve-{}"
            eventually(lambda: seen.format("before") in controller.logs(), 30, "the first one")
            away = server.restart()
            kube = Kube(load_api_client(str(api.kubeconfig)))
            kube.request("POST", FUNCTIONS.path("default"), body=function_doc("default", "after"))
            eventually(lambda: seen.format("after") in controller.logs(), 60, "the second one")
            restarts = controller.metrics()
            dropped = sum(
                v for (n, labels), v in restarts.items()
                if n == "ofobserve_controller_watch_restarts_total"
                and ("reason", "expired") not in labels
            )  # fmt: skip
            assert dropped >= 1
            total = time.monotonic() - started
            reasons = {dict(labels)["reason"]: v for (n, labels), v in restarts.items()
                       if n == "ofobserve_controller_watch_restarts_total"}  # fmt: skip
            print(f"\nkube-apiserver away {away:.1f} s; watch restarts {reasons}; "
                  f"whole test {total:.1f} s")  # fmt: skip
        finally:
            controller.stop()
    finally:
        server.stop()


def test_dry_run_prints_and_writes_nothing(cluster: Cluster) -> None:
    ns = cluster.api.fresh_namespace("ctl-dry")
    cluster.create(function_doc(ns, "preview"))
    cluster.create(async_function_doc(ns, "queue"))

    def preview(*extra: str) -> list[str]:
        result = subprocess.run(
            [sys.executable, "-m", "ofobserve", "controller", "--dry-run", "--once",
             f"--kubeconfig={cluster.api.kubeconfig}", f"--namespace={ns}",
             "--listen=127.0.0.1:0", *extra],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    lines = preview()
    assert lines == [
        f"apply ConfigMap {ns}/ofobserve-dashboard-{ns}.preview",
        f"apply PodMonitor {ns}/ofobserve-preview",
        f"apply PrometheusRule {ns}/ofobserve-preview",
        f"apply Function {ns}/preview (spec.serving.labels)",
        f"apply ConfigMap {ns}/ofobserve-dashboard-{ns}.queue",
        f"apply PodMonitor {ns}/ofobserve-queue",
        f"apply PrometheusRule {ns}/ofobserve-queue",
        f"apply Function {ns}/queue (spec.serving.labels)",
        f"apply Function {ns}/queue (spec.serving.scaleOptions.keda)",
        "apply ConfigMap default/ofobserve-dashboard-overview",
        "apply ConfigMap default/ofobserve-dashboard-scaler",
        # the fleet rules, once for both: their profile families' and what they share
        "apply PrometheusRule default/ofobserve-fleet-common",
        "apply PrometheusRule default/ofobserve-fleet-dapr-pubsub",
        "apply PrometheusRule default/ofobserve-fleet-knative-opencensus",
    ]
    # --no-patch-functions: neither the label nor the scaling wiring.
    assert preview("--no-patch-functions") == [x for x in lines if "apply Function" not in x]
    assert cluster.managed(ns) == {}
    doc = cluster.kube.get(FUNCTIONS.path(ns, "preview"))
    assert "labels" not in doc["spec"]["serving"]
    assert "scaleOptions" not in cluster.kube.get(FUNCTIONS.path(ns, "queue"))["spec"]["serving"]


#: docs/controller.md's RBAC table for one watched namespace, and for Grafana's.
MANAGE = ["list", "create", "patch", "delete"]
FUNCTION_NAMESPACE_RULES = [
    {"apiGroups": ["core.openfunction.io"], "resources": ["functions"],
     "verbs": ["list", "watch", "patch"]},
    {"apiGroups": ["monitoring.coreos.com"], "resources": ["podmonitors", "prometheusrules"],
     "verbs": MANAGE},
    {"apiGroups": ["keda.sh"], "resources": ["scaledobjects", "triggerauthentications"],
     "verbs": MANAGE},
    {"apiGroups": ["grafana.integreatly.org"], "resources": ["grafanadashboards"],
     "verbs": MANAGE},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": [*MANAGE, "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
     "verbs": ["get", "create", "update"]},
]  # fmt: skip
GRAFANA_NAMESPACE_RULES = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": MANAGE}]


def _grant(api: KubeAPI, namespace: str, subject: str, rules: list[dict[str, Any]]) -> None:
    sa_namespace, sa = subject.split("/")
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "ofobserve-controller", "namespace": namespace},
            "rules": rules}  # fmt: skip
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "ofobserve-controller", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "ofobserve-controller"},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": sa_namespace}],
    }  # fmt: skip
    api.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                       "items": [role, binding]}))  # fmt: skip


def test_the_documented_rbac_is_enough(kube_apiserver: KubeAPI, tmp_path: Path) -> None:
    """The controller as a ServiceAccount holding exactly docs/controller.md's rules: it
    applies, labels, reports, prunes and leads, and is never refused."""
    api = kube_apiserver
    ns, grafana = api.fresh_namespace("ctl-rbac"), api.fresh_namespace("ctl-rbac-grafana")
    api.kubectl("create", "serviceaccount", "controller", "-n", ns)
    token = api.kubectl("create", "token", "controller", "-n", ns).stdout.strip()
    _grant(api, ns, f"{ns}/controller", FUNCTION_NAMESPACE_RULES)
    _grant(api, grafana, f"{ns}/controller", GRAFANA_NAMESPACE_RULES)
    config = yaml_config = api.kubeconfig.read_text()
    admin_token = next(
        line.split(":", 1)[1].strip() for line in config.splitlines() if "token:" in line
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml_config.replace(admin_token, token))
    kube = Kube(load_api_client(str(api.kubeconfig)))
    settings = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ofobserve", "namespace": ns},
        "data": {"ofobserve.yaml": SETTINGS.format(grafana=grafana, release="r")},
    }
    kube.apply(CONFIGMAPS.path(ns, "ofobserve"), settings, "tests", force=True)  # fmt: skip
    kube.request("POST", FUNCTIONS.path(ns), body=function_doc(ns, "least"))
    kube.request("POST", FUNCTIONS.path(ns), body=function_doc(
        ns, "bad", **{"ofobserve.io/slo.availability": "lots"}))  # fmt: skip
    controller = ControllerProcess(
        kubeconfig, tmp_path / "controller.log", f"--namespace={ns}",
        f"--config-map={ns}/ofobserve", "--leader-elect", f"--lease-namespace={ns}",
    )  # fmt: skip
    try:
        controller.wait_ready()

        def artifacts() -> int:
            selector = f"{MANAGED},{c.FUNCTION_POD_LABEL}=least"
            return sum(
                len(kube.list_all(kind.path(n), labelSelector=selector)[0])
                for kind in (PODMONITORS, RULES, CONFIGMAPS) for n in (ns, grafana)
            )  # fmt: skip

        eventually(lambda: artifacts() == 3, 30, "the function's objects")
        eventually(
            lambda: (kube.get(FUNCTIONS.path(ns, "least"))["spec"]["serving"].get("labels")),
            30, "the identity label",
        )  # fmt: skip
        eventually(
            lambda: kube.list_all(f"/api/v1/namespaces/{ns}/events",
                                  fieldSelector="reason=RenderFailed")[0],
            30, "the RenderFailed Event",
        )  # fmt: skip

        def fleet() -> int:
            selector = f"{MANAGED},{c.FLEET_LABEL}={ns}"  # its --fleet-namespace
            return len(kube.list_all(CONFIGMAPS.path(grafana), labelSelector=selector)[0])

        eventually(lambda: fleet() == 2, 30, "the fleet dashboards")
        kube.delete(FUNCTIONS.path(ns, "least"))
        eventually(lambda: artifacts() == 0, 30, "the objects pruned")
        eventually(lambda: fleet() == 0, 30, "the fleet pruned with the last function")
        assert controller.value("ofobserve_controller_reconciles_total", result="error") == 0
        assert "403" not in controller.logs()
    finally:
        assert controller.stop() == 0
    lease = kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/ofobserve-controller")
    assert lease["spec"]["holderIdentity"] == ""  # released on SIGTERM


def test_a_deleted_settings_configmap_keeps_the_last_good_settings() -> None:
    applied: list[Config] = []
    source = SettingsSource(("ofobserve", "settings"), "ofobserve.yaml", applied.append)
    good = {"data": {"ofobserve.yaml": "defaults: {alerting: {team: platform}}\n"}}
    source.on_event("ADDED", good)
    source.on_event("MODIFIED", {"data": {"ofobserve.yaml": "defaults: {nope: 1}\n"}})
    source.on_event("DELETED", good)
    assert [config.defaults for config in applied] == [{"alerting": {"team": "platform"}}]
    assert "nope" in source.error
    fresh: list[Config] = []
    absent = SettingsSource(("ofobserve", "settings"), "ofobserve.yaml", fresh.append)
    absent.absent()  # none at start: the built-in settings, until one appears
    assert [config.source for config in fresh] == ["<built-in>"]


def test_once_ends_and_exits_1_naming_what_was_not_reconciled(cluster: Cluster) -> None:
    """``--once`` does not retry: a refused Function (and an API error would be the same)
    ends the pass with exit 1 and a line naming each; the good ones are still applied."""
    ns = cluster.api.fresh_namespace("ctl-once")
    cluster.create(function_doc(ns, "fine"))
    cluster.create(function_doc(ns, "bad", **{"ofobserve.io/slo.availability": "lots"}))
    result = subprocess.run(
        [sys.executable, "-m", "ofobserve", "controller", "--once", "--log-format=text",
         f"--kubeconfig={cluster.api.kubeconfig}", f"--namespace={ns}",
         f"--fleet-namespace={ns}", "--listen=127.0.0.1:0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"error: 1 not reconciled: {ns}/bad: " + BAD_MESSAGE.format(ns=ns)
    )
    assert len(cluster.managed(ns, "fine")) == 3

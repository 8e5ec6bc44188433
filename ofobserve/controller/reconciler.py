"""Reconcile one key at a time: a function's objects, or the fleet's. Does I/O (the API).

The worker takes a key from the queue, renders the desired objects (pure:
:mod:`~ofobserve.controller.desired`), server-side applies each one, deletes what the
owner no longer gets, and applies the Function's identity label and scaling wiring (each
under its own field manager, never forced: a conflict is a Warning Event). It knows what exists from
one list per managed kind (by the ``managed-by`` label) when it becomes leader, then from
its own writes. Bad input on one Function is a Warning Event on it, never an error that
stops the others.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from ofobserve import conventions as c
from ofobserve.controller.desired import (
    Owner,
    authored,
    desired_objects,
    failure_message,
    fleet_objects,
    fleet_owner,
    function_key,
    function_label_patch,
    function_scaling_patch,
    owner_of,
    prune_plan,
    rendered_inputs,
    scaling_conflict_message,
    scaling_is_applied,
    subject_for,
    with_label,
)
from ofobserve.controller.metrics import ControllerMetrics
from ofobserve.controller.resources import (
    DASHBOARD_KINDS,
    EVENTS,
    MANAGED_KINDS,
    Kind,
    ObjectKey,
    function_kind,
    key_of,
)
from ofobserve.controller.workqueue import WorkQueue
from ofobserve.errors import InvalidInput
from ofobserve.kube.client import APIError, Kube
from ofobserve.kube.informer import Informer
from ofobserve.settings import Config
from ofobserve.subject import Subject

log = logging.getLogger("ofobserve.controller")
COMPONENT = "ofobserve-controller"
#: Seconds the fleet waits after a change of the function set, so that a burst of new
#: functions re-applies it once.
FLEET_DELAY = 1.0
EVENT_MESSAGE_MAX = 1024
#: Requests one reconcile sends at once (its objects and the Function's label).
WRITERS = 4


class NotLeader(Exception):
    """The lease was lost in the middle of a reconcile: nothing more is written."""


@dataclass
class Options:
    patch_functions: bool = True
    dry_run: bool = False
    fleet_namespace: str = "default"
    #: ``None``: every namespace; else only these (plus the fleet's and Grafana's).
    namespaces: tuple[str, ...] | None = None
    function_version: str = "v1beta2"
    identity: str = COMPONENT
    #: ``--once``: a key whose reconcile fails is not retried (the pass ends, and says so).
    once: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        functions: list[Informer],
        queue: WorkQueue[Owner],
        metrics: ControllerMetrics,
        options: Options,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.kube, self.informers, self.queue = kube, functions, queue
        self.metrics, self.options, self.leading = metrics, options, leading
        #: This controller's fleet: objects of another controller's fleet are never its own.
        self.fleet = fleet_owner(options.fleet_namespace)
        self.config: Config | None = None
        self.config_lock = threading.Lock()
        #: What exists, by owner; ``None`` until listed in this leadership term.
        self.index: dict[Owner, set[ObjectKey]] | None = None
        self.indexed_namespaces: set[str] = set()
        self.subjects: dict[Owner, Subject] = {}
        self.failures: dict[Owner, str] = {}
        #: Keys whose last reconcile failed on the API (with ``once``: not retried).
        self.errors: dict[Owner, str] = {}
        #: The last ScalingNotWired message of each owner: one Event per distinct conflict.
        self.conflicts: dict[Owner, str] = {}
        #: What the last successful reconcile of each owner saw and applied, so that an event
        #: that changes nothing rendered (the controller's own label patch, a status update)
        #: costs no request.
        self.seen: dict[Owner, tuple[str, Config]] = {}
        self.applied: dict[Owner, list[dict[str, Any]]] = {}
        self.known: set[Owner] = set()
        self.pool = concurrent.futures.ThreadPoolExecutor(WRITERS, thread_name_prefix="apply")
        self.known_lock = threading.Lock()

    # --- inputs (informer threads) ------------------------------------------------------------

    def on_function(self, kind: str, doc: dict[str, Any]) -> None:
        owner = Owner(*function_key(doc))
        self.queue.add(owner)
        with self.known_lock:
            changed = (owner in self.known) == (kind == "DELETED")
            if kind == "DELETED":
                self.known.discard(owner)
            else:
                self.known.add(owner)
        if changed:
            self.queue.add_after(self.fleet, FLEET_DELAY)

    def set_config(self, config: Config) -> None:
        """New settings: every function and the fleet again."""
        with self.config_lock:
            if self.config == config:
                return
            self.config = config
        log.info("settings from %s: reconciling every function", config.source)
        self.enqueue_all()

    def enqueue_all(self) -> None:
        for owner in self.owners():
            self.queue.add(owner)
        self.queue.add_after(self.fleet, FLEET_DELAY)

    def owners(self) -> list[Owner]:
        return sorted(
            Owner(*function_key(doc)) for informer in self.informers for doc in informer.items()
        )

    def orphans(self) -> list[Owner]:
        """Owners of listed objects whose Function is gone (deleted while no controller
        ran), in the watched namespaces only: a reconcile of each prunes them."""
        watched = self.options.namespaces
        return sorted(
            owner
            for owner in self.index or {}
            if not owner.fleet
            and (watched is None or owner.namespace in watched)
            and self.function(owner) is None
        )

    def function(self, owner: Owner) -> dict[str, Any] | None:
        for informer in self.informers:
            doc = informer.get((owner.namespace, owner.name))
            if doc is not None:
                return doc
        return None

    def function_count(self) -> int:
        return sum(len(informer.items()) for informer in self.informers)

    # --- the worker ---------------------------------------------------------------------------

    def lost_leadership(self) -> None:
        self.index = None
        self.indexed_namespaces = set()
        self.seen.clear()
        self.applied.clear()
        self.conflicts.clear()

    def process(self, timeout: float = 0.2) -> bool:
        """Take one key and reconcile it; ``False`` when there was none."""
        if self.index is None:
            self.build_index()
            self.enqueue_all()
            for orphan in self.orphans():
                self.queue.add(orphan)
        owner = self.queue.get(timeout)
        if owner is None:
            return False
        started = time.monotonic()
        try:
            result = self.reconcile(owner)
            self.queue.forget(owner)
            self.errors.pop(owner, None)
        except NotLeader:
            result = "not_leader"
            self.queue.add(owner)  # the next leader term starts with everything anyway
        except Exception as exc:  # an API error: back off this key, go on with the others
            self.errors[owner] = str(exc)
            result = "error"
            if self.options.once:
                log.error("reconcile of %s failed: %s", owner, exc)
            else:
                delay = self.queue.add_rate_limited(owner)
                log.warning("reconcile of %s failed, retrying in %.2f s: %s", owner, delay, exc)
        finally:
            self.queue.done(owner)
        self.metrics.reconciles.labels(result).inc()
        self.metrics.duration.observe(time.monotonic() - started)
        return True

    def reconcile(self, owner: Owner) -> str:
        config = self.config
        if config is None:  # not loaded yet: comes back with set_config
            return "error"
        if owner.fleet:
            return self._reconcile_fleet(config)
        doc = self.function(owner)
        if doc is None or (doc.get("metadata") or {}).get("deletionTimestamp"):
            self.subjects.pop(owner, None)
            self.failures.pop(owner, None)
            self.conflicts.pop(owner, None)
            self.seen.pop(owner, None)
            self.applied.pop(owner, None)
            deleted = self._prune(owner, set())
            log.info("function %s is gone: pruned %d object(s)", owner, deleted)
            return "deleted"
        fingerprint = rendered_inputs(doc)
        if self.seen.get(owner) == (fingerprint, config):
            return "unchanged"
        try:  # as the author wrote it: the scaling wiring applied before renders the same
            subject = subject_for(authored(doc), config)
        except InvalidInput as exc:
            self._render_failed(owner, doc, failure_message(exc))
            return "render_failed"
        objects = desired_objects(subject, doc)
        self._ensure_indexed({key_of(o).namespace for o in objects})
        same = self.applied.get(owner) == objects
        patch = scaling = None
        if self.options.patch_functions:
            patch = function_label_patch(subject)
            scaling = function_scaling_patch(subject)
            if scaling is not None and scaling_is_applied(doc, scaling):
                scaling = None
        tasks: list[Callable[[], object]] = [] if same else self._applies(owner, objects)
        label_task = len(tasks)
        if patch is not None:
            tasks.append(functools.partial(self._patch_function, owner, doc, patch))
        if scaling is not None:
            tasks.append(functools.partial(self._wire_scaling, owner, doc, scaling))
        results = self._run(tasks)
        deleted = self._prune(owner, {key_of(o) for o in objects})
        if patch is not None and results[label_task] is True:
            fingerprint = rendered_inputs(with_label(doc, patch))
        self.seen[owner] = (fingerprint, config)
        self.applied[owner] = objects
        if owner not in self.subjects:  # the fleet is built from the rendered functions
            self.queue.add_after(self.fleet, FLEET_DELAY)
        self.subjects[owner] = subject
        self.failures.pop(owner, None)
        log.info("reconciled %s: %d object(s)%s, pruned %d", owner, len(objects),
                 " unchanged" if same else "", deleted)  # fmt: skip
        return "applied"

    def _reconcile_fleet(self, config: Config) -> str:
        subjects = [self.subjects[o] for o in sorted(self.subjects) if self.function(o)]
        objects = fleet_objects(subjects, config, self.options.fleet_namespace)
        self._ensure_indexed({key_of(o).namespace for o in objects})
        self._run(self._applies(self.fleet, objects))
        deleted = self._prune(self.fleet, {key_of(o) for o in objects})
        log.info("reconciled the fleet: applied %d, pruned %d", len(objects), deleted)
        return "applied"

    # --- writes -------------------------------------------------------------------------------

    def _guard(self) -> None:
        if not self.leading():
            raise NotLeader()

    def _applies(self, owner: Owner, objects: list[dict[str, Any]]) -> list[Callable[[], object]]:
        """One task per object. The keys join the index first: a failure half-way leaves
        nothing the next prune does not know of."""
        assert self.index is not None
        self.index.setdefault(owner, set()).update(key_of(o) for o in objects)
        return [functools.partial(self._apply, obj) for obj in objects]

    def _apply(self, obj: dict[str, Any]) -> None:
        key = key_of(obj)
        self._guard()
        if self.options.dry_run:
            self._say(f"apply {key}")
        else:
            self.kube.apply(key.path(), obj, c.CONTROLLER_FIELD_MANAGER, force=True)
        self.metrics.applied.labels(key.kind).inc()

    def _run(self, tasks: list[Callable[[], object]]) -> list[object]:
        """The writes of one reconcile, at once (in order with --dry-run); the first error
        is raised once all are done."""
        if self.options.dry_run or len(tasks) < 2:
            return [task() for task in tasks]
        futures = [self.pool.submit(task) for task in tasks]
        concurrent.futures.wait(futures)
        return [f.result() for f in futures]

    def _prune(self, owner: Owner, keep: set[ObjectKey]) -> int:
        assert self.index is not None
        existing = self.index.get(owner, set())
        count = 0
        for key in prune_plan(existing, keep):
            self._guard()
            if self.options.dry_run:
                self._say(f"delete {key}")
            elif self.kube.delete(key.path()):
                count += 1
            self.metrics.deleted.labels(key.kind).inc()
            existing.discard(key)
        if not existing:
            self.index.pop(owner, None)
        return count

    def _patch_function(self, owner: Owner, doc: dict[str, Any], patch: dict[str, Any]) -> bool:
        """Apply the identity label; ``False`` when it was not (dry run, conflict)."""
        self._guard()
        if self.options.dry_run:
            self._say(f"apply Function {owner} (spec.serving.labels)")
            return False
        version = str(doc.get("apiVersion", "")).rpartition("/")[2]
        path = function_kind(version).path(owner.namespace, owner.name)
        try:
            self.kube.apply(path, patch, c.CONTROLLER_FUNCTION_FIELD_MANAGER, force=False)
        except APIError as exc:
            if exc.status != 409:
                raise
            # Someone else owns the label with another value: say so, do not fight.
            self._event(doc, "LabelConflict", exc.message)
            return False
        self.metrics.applied.labels("Function").inc()
        return True

    def _wire_scaling(self, owner: Owner, doc: dict[str, Any], patch: dict[str, Any]) -> bool:
        """Apply the scaling wiring (render's ``scaling`` Function patch) without force;
        ``False`` when it was not (dry run, conflict). A 409 (another manager owns
        ``triggers`` or a bound) is a Warning Event and a count, not an error: nothing is
        retried until the Function or the settings change."""
        self._guard()
        if self.options.dry_run:
            self._say(f"apply Function {owner} (spec.serving.scaleOptions.keda)")
            return False
        version = str(doc.get("apiVersion", "")).rpartition("/")[2]
        path = function_kind(version).path(owner.namespace, owner.name)
        try:
            self.kube.apply(path, patch, c.CONTROLLER_SCALING_FIELD_MANAGER, force=False)
        except APIError as exc:
            if exc.status != 409:
                raise
            self.metrics.scaling_conflicts.inc()
            message = scaling_conflict_message(exc.causes, exc.message)
            log.warning("scaling of %s not wired: %s", owner, message)
            if self.conflicts.get(owner) != message:
                self.conflicts[owner] = message
                self._event(doc, "ScalingNotWired", message)
            return False
        self.conflicts.pop(owner, None)
        self.metrics.applied.labels("Function").inc()
        return True

    def _render_failed(self, owner: Owner, doc: dict[str, Any], message: str) -> None:
        self.metrics.render_failures.inc()
        if self.failures.get(owner) == message:
            return  # said already: one Event per distinct failure
        self.failures[owner] = message
        log.warning("render of %s failed: %s", owner, message)
        self._event(doc, "RenderFailed", message)

    def _event(self, doc: dict[str, Any], reason: str, message: str) -> None:
        self._guard()
        meta = doc.get("metadata") or {}
        namespace, name = function_key(doc)
        if self.options.dry_run:
            self._say(f"event Warning {reason} Function {namespace}/{name}: {message}")
            return
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": doc.get("apiVersion"),
                "kind": "Function",
                "name": name,
                "namespace": namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": "Warning",
            "reason": reason,
            "message": message[:EVENT_MESSAGE_MAX],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.options.identity,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.kube.request("POST", EVENTS.path(namespace), body=event)

    def _say(self, line: str) -> None:
        print(line, file=self.options.out, flush=True)

    # --- what exists --------------------------------------------------------------------------

    def build_index(self) -> None:
        """List every managed kind by label: in every namespace, or in each watched one (and
        the dashboard kinds in the other namespaces objects go to)."""
        self.index, self.indexed_namespaces = {}, set()
        if self.options.namespaces is None:
            self._list_into(None, MANAGED_KINDS)
            return
        self._ensure_indexed({*self.options.namespaces, self.options.fleet_namespace})

    def _ensure_indexed(self, namespaces: set[str]) -> None:
        if self.options.namespaces is None:
            return
        for namespace in sorted(namespaces - self.indexed_namespaces):
            watched = namespace in self.options.namespaces
            self._list_into(namespace, MANAGED_KINDS if watched else DASHBOARD_KINDS)
            self.indexed_namespaces.add(namespace)

    def _list_into(self, namespace: str | None, kinds: Iterable[Kind]) -> None:
        assert self.index is not None
        selector = f"{c.MANAGED_BY_LABEL}={c.MANAGED_BY_VALUE}"
        where = f" in {namespace}" if namespace else ""
        for kind in kinds:
            try:
                items, _ = self.kube.list_all(kind.path(namespace), labelSelector=selector)
            except APIError as exc:
                if exc.status == 404:  # the CRD is not installed: nothing of that kind
                    log.warning("cannot list %s%s: is its CRD installed? (%s)", kind.plural,
                                where, exc)  # fmt: skip
                    continue
                if exc.status == 403:  # not granted: the kind is not in use there
                    log.warning("not allowed to list %s%s: none will be pruned there",
                                kind.plural, where)  # fmt: skip
                    continue
                raise
            for item in items:
                owner = owner_of((item.get("metadata") or {}).get("labels"))
                if owner is not None:
                    item.setdefault("apiVersion", kind.api_version)
                    item.setdefault("kind", kind.kind)
                    self.index.setdefault(owner, set()).add(key_of(item))

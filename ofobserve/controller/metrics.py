"""The controller's own Prometheus metrics, on a registry it is given (names in
``ofobserve.conventions``). No I/O: :mod:`~ofobserve.controller.ops` serves them."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ofobserve import conventions as c

#: ``result`` of a reconcile.
RESULTS = ("applied", "unchanged", "deleted", "render_failed", "error", "not_leader")
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.reconciles = Counter(
            c.CONTROLLER_RECONCILES_TOTAL.removesuffix("_total"),
            "Reconciles, by result (applied, unchanged: nothing rendered changed, deleted, "
            "render_failed, error, not_leader).",
            ("result",),
            registry=registry,
        )
        for result in RESULTS:
            self.reconciles.labels(result)
        self.duration = Histogram(
            c.CONTROLLER_RECONCILE_SECONDS,
            "Time of one reconcile (render, apply, prune).",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            c.CONTROLLER_QUEUE_DEPTH, "Keys waiting in the work queue.", registry=registry
        )
        self.watch_restarts = Counter(
            c.CONTROLLER_WATCH_RESTARTS_TOTAL.removesuffix("_total"),
            "Watches started again, by resource and reason (expired, gone: relisted, error).",
            ("resource", "reason"),
            registry=registry,
        )
        self.applied = Counter(
            c.CONTROLLER_APPLIED_TOTAL.removesuffix("_total"),
            "Objects server-side applied, by kind (Function: the identity label or the "
            "scaling wiring).",
            ("kind",),
            registry=registry,
        )
        self.deleted = Counter(
            c.CONTROLLER_DELETED_TOTAL.removesuffix("_total"),
            "Objects pruned, by kind.",
            ("kind",),
            registry=registry,
        )
        self.render_failures = Counter(
            c.CONTROLLER_RENDER_FAILURES_TOTAL.removesuffix("_total"),
            "Functions render refused (a Warning Event RenderFailed on each).",
            registry=registry,
        )
        self.scaling_conflicts = Counter(
            c.CONTROLLER_SCALING_CONFLICTS_TOTAL.removesuffix("_total"),
            "Scaling patches of a Function refused with a 409 because another field manager "
            "owns the fields (not forced; a Warning Event ScalingNotWired on each).",
            registry=registry,
        )
        self.leader = Gauge(
            c.CONTROLLER_LEADER, "1 while this replica reconciles (leader).", registry=registry
        )
        self.functions = Gauge(
            c.CONTROLLER_FUNCTIONS, "Functions in the informers' store.", registry=registry
        )

    def track_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def track_functions(self, count: Callable[[], int]) -> None:
        self.functions.set_function(count)

"""The scaler's own Prometheus metrics (prometheus-client, on a registry it is given).

Pure: no I/O here: ``ofobserve scaler`` serves the registry on ``--metrics-listen``. Names are in
``ofobserve.conventions`` (the scaler dashboard reads them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ofobserve import conventions as c
from ofobserve.scaler.config import FunctionKey
from ofobserve.scaler.policy import Decision
from ofobserve.scaler.sources import Signals

FN = ("namespace", "function")
RPC_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
#: Event-loop lag: the goal is a p99 under 1 ms, so the buckets are fine below it.
LAG_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


def _name(full: str, suffix: str = "_total") -> str:
    """prometheus-client adds ``_total`` to counters itself."""
    return full.removesuffix(suffix)


@dataclass(frozen=True)
class FunctionRow:
    """What the scaler knows about one function, read when Prometheus scrapes."""

    key: FunctionKey
    metric: str
    signals: Signals | None
    decision: Decision | None
    age: float | None


class _Functions(Collector):
    """Per-function gauges built at scrape time from the engine's memory, so a refresh tick
    costs nothing for metrics however many functions there are."""

    def __init__(self, rows: Callable[[], Iterable[FunctionRow]]) -> None:
        self.rows = rows

    def collect(self) -> Iterator[Metric]:
        def family(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*FN, *extra])

        desired = family(c.SCALER_DESIRED_REPLICAS, "Replicas the scaler asks KEDA for.")
        value = family(c.SCALER_METRIC_VALUE, "Value reported to KEDA.", ("metric",))
        target = family(c.SCALER_METRIC_TARGET, "Target sent to KEDA.", ("metric",))
        active = family(c.SCALER_ACTIVE, "1 when the function should run.")
        panic = family(c.SCALER_PANIC_MODE, "1 while in panic mode.")
        concurrency = family(c.SCALER_OBSERVED_CONCURRENCY, "Concurrency read.")
        latency = family(c.SCALER_OBSERVED_LATENCY_SECONDS, "Latency quantile read.")
        ready = family(c.SCALER_OBSERVED_READY_REPLICAS, "The function's ready replicas read.")
        age = family(c.SCALER_SAMPLE_AGE_SECONDS, "Age of the newest good sample.")
        count = 0
        for row in self.rows():
            count += 1
            key = list(row.key)
            if row.decision is not None:
                desired.add_metric(key, row.decision.desired)
                value.add_metric([*key, row.metric], row.decision.value)
                target.add_metric([*key, row.metric], 1)
                active.add_metric(key, 1 if row.decision.active else 0)
                panic.add_metric(key, 1 if row.decision.panic else 0)
            if row.signals is not None:
                concurrency.add_metric(key, row.signals.concurrency)
                if row.signals.latency is not None:
                    latency.add_metric(key, row.signals.latency)
                if row.signals.ready is not None:
                    ready.add_metric(key, row.signals.ready)
            if row.age is not None:
                age.add_metric(key, row.age)
        registered = GaugeMetricFamily(
            c.SCALER_REGISTERED_FUNCTIONS,
            "Functions held: KEDA asked about them within --forget-after.",
            value=count,
        )
        yield from (desired, value, target, active, panic, concurrency, latency, ready, age)
        yield registered


class ScalerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.source_errors = Counter(
            _name(c.SCALER_SOURCE_ERRORS_TOTAL),
            "Failed reads, per function affected.",
            (*FN, "source", "reason"),
            registry=registry,
        )
        self.source_duration = Histogram(
            c.SCALER_SOURCE_DURATION_SECONDS,
            "Duration of one read of every registered function.",
            ("source",),
            registry=registry,
        )
        self.queries = Counter(
            _name(c.SCALER_PROMETHEUS_QUERIES_TOTAL), "PromQL queries sent.", registry=registry
        )
        self.forgotten = Counter(
            _name(c.SCALER_FUNCTIONS_FORGOTTEN_TOTAL),
            "Functions dropped after --forget-after without a question from KEDA.",
            registry=registry,
        )
        self.watch_restarts = Counter(
            _name(c.SCALER_WATCH_RESTARTS_TOTAL),
            "Pod watches of the direct source started again, by resource and reason "
            "(expired, gone: relisted, error).",
            ("resource", "reason"),
            registry=registry,
        )
        self.targets_file_errors = Counter(
            _name(c.SCALER_TARGETS_FILE_ERRORS_TOTAL),
            "Rewrites of the --targets file that could not be read or parsed (the last good "
            "table is kept).",
            registry=registry,
        )
        self.loop_lag = Histogram(
            c.SCALER_EVENT_LOOP_LAG_SECONDS,
            "How much later than asked the serving event loop woke from a timed sleep.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.handled = Counter(
            _name(c.GRPC_SERVER_HANDLED_TOTAL),
            "RPCs completed.",
            ("grpc_service", "grpc_method", "grpc_type", "grpc_code"),
            registry=registry,
        )
        self.handling = Histogram(
            c.GRPC_SERVER_HANDLING_SECONDS,
            "RPC handling time.",
            ("grpc_service", "grpc_method", "grpc_type"),
            buckets=RPC_BUCKETS,
            registry=registry,
        )

    def track_pod_watch(self, healthy: Callable[[], bool]) -> None:
        """Publish whether pod discovery can answer (read at every scrape)."""
        up = Gauge(
            c.SCALER_POD_WATCH_UP,
            "1 while every pod watch of the direct source has listed and none has failed "
            "for longer than it may (then discovery refuses to answer).",
            registry=self.registry,
        )
        up.set_function(lambda: 1.0 if healthy() else 0.0)

    def track(self, rows: Callable[[], Iterable[FunctionRow]]) -> None:
        """Publish the per-function gauges from ``rows``, read at every scrape."""
        self.registry.register(_Functions(rows))

    def rpc(self, method: str, kind: str, code: str, seconds: float) -> None:
        service = c.SCALER_GRPC_SERVICE
        self.handled.labels(service, method, kind, code).inc()
        self.handling.labels(service, method, kind).observe(seconds)

"""The four policies, each a :class:`~ofobserve.simulate.cluster.Controller`. Pure.

- ``ofobserve``: :func:`ofobserve.scaler.policy.step`, the scaler's own code, once a
  second (the scaler's refresh), on the :class:`~ofobserve.scaler.policy.Sample` its
  source would read, and no more than that source can read:

  - ``--source prometheus`` (the default), the Knative profile: the queue-proxies'
    metrics through Prometheus, as of the newest scrape. ``revision_queue_depth`` counts
    the requests in a queue-proxy's serving *and* waiting queue, and
    ``revision_request_latencies`` is the response time at the queue-proxy, queue wait
    included (knative/docs ``docs/serving/metrics.md``): here the requests held (running
    and queued) while there are pods, the latency histogram with the queue wait, ``rate``
    of the requests that reached a pod. With no pod there is no queue-proxy and no series:
    concurrency 0, rate 0, no latency. The KPA reads the same queue-proxies every second
    (and the activator's count at zero); this source reads them a scrape later.
  - ``--source direct``, the native profile: the function's own ``/metrics`` scraped every
    second. ``function_requests_in_flight`` is incremented inside the function process
    (:mod:`ofobserve.instrument`), so it counts running requests only (at most
    containerConcurrency per pod), and ``function_request_duration_seconds`` is handler
    time, without the queue wait; rate and quantile from the difference of the last two
    scrapes. With no pod: ready 0, concurrency 0, rate 0, no latency.

  Neither source sees a request held while there is no pod, so ofobserve's decision
  cannot wake a function at zero: in a cluster that is the function's own KEDA trigger
  (the event source's lag, the HTTP add-on's interceptor), which KEDA polls every
  ``pollingInterval``. The model does that: at zero replicas with requests waiting, KEDA
  scales to 1 at its next poll; the ScaledObject is active while either trigger is.
  Its answer goes through KEDA (``external-push`` trigger, activation pushed at once
  when the decision turns active; scale to zero after ``cooldownPeriod``) and the HPA
  (value = GetMetrics' ``Decision.value``, AverageValue target 1, both stabilization
  windows 0 and the 1000 %/15 s scale-up policy ``ofobserve render`` writes).
- ``kpa``: :mod:`ofobserve.simulate.kpa` on the queue-proxies' per-second concurrency,
  setting the replicas directly.
- ``keda-prometheus``: KEDA's Prometheus scaler (kedacore/keda
  ``pkg/scalers/prometheus_scaler.go``): the query ``sum(rate(requests_total[1m]))`` is the
  HPA's AverageValue metric with ``threshold`` as target; active while it is above the
  ``activationThreshold`` 0; default HPA behaviour (300 s scale-down stabilization).
- ``hpa-cpu``: a plain HPA on CPU utilization (target 70 %), minReplicas 1, no KEDA. A
  replica's CPU is the share of its ``containerConcurrency`` slots in service (busy time
  per replica), as metrics-server reports it every ``metrics_resolution`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ofobserve.scaler import policy
from ofobserve.scaler.config import ScalerConfig
from ofobserve.simulate.cluster import Record
from ofobserve.simulate.kpa import Kpa, KpaSettings
from ofobserve.simulate.model import Params
from ofobserve.simulate.pipeline import Hpa, Keda, PrometheusView, every, histogram_quantile

POLICIES = ("ofobserve", "kpa", "keda-prometheus", "hpa-cpu")


def scaler_config(params: Params) -> ScalerConfig:
    """The ScaledObject metadata ``ofobserve render`` would write for this function."""
    return ScalerConfig(
        namespace="simulate",
        function="fn",
        target_concurrency=params.concurrency_target,
        target_utilization=params.target_utilization,
        latency_objective=params.slo,
        latency_quantile=params.latency_quantile,
        max_replicas=params.max_replicas,
        scale_down_delay=params.scale_down_delay,
        hpa_tolerance=params.pipeline.hpa_tolerance,
    )


@dataclass
class Ofobserve:
    params: Params
    name: str = "ofobserve"
    histogram: bool = True
    config: ScalerConfig = field(init=False)
    state: policy.State = field(init=False)
    decision: policy.Decision | None = None
    hpa: Hpa = field(init=False)
    keda: Keda = field(init=False)

    def __post_init__(self) -> None:
        self.config = scaler_config(self.params)
        self.state = policy.State.new(self.config)
        p = self.params.pipeline
        # render's behavior: scale-up policy 1000 % per 15 s, no stabilization.
        self.hpa = Hpa(p, self.params.max_replicas, 0.0, 0.0, up_factor=11.0, up_minimum=0)
        self.keda = Keda(p)

    def initial(self) -> int:
        return self.params.initial_replicas or 0

    def sample(self, now: int, record: Record) -> policy.Sample:
        if self.params.source == "direct":
            return self._scraped(now, record)
        view = PrometheusView(record, self.params.pipeline)
        at = view.scraped(now)
        ready = record.ready[at] if at >= 0 else 0
        # The queue-proxies' queue depth: running + queued, and only where there are pods.
        held = float(record.in_system[at]) if at >= 0 and ready > 0 else 0.0
        rate = view.rate(record.started, now)
        latency = view.quantile(self.params.latency_quantile, now)
        return policy.Sample(
            time=float(now), concurrency=held, rate=rate or 0.0, latency=latency, ready=ready
        )

    def _scraped(self, now: int, record: Record) -> policy.Sample:
        """The native profile from the pods, every second: running requests, handler time."""
        ready = record.ready[now]
        if ready == 0:  # no pod, nothing to scrape: no traffic as far as the scaler knows
            return policy.Sample(float(now), 0.0, 0.0, None, 0)
        before = max(now - 1, 0)
        latency = None
        if now > 0:
            counts = [
                a - b for a, b in zip(record.handler[now], record.handler[before], strict=True)
            ]
            latency = histogram_quantile(self.params.latency_quantile, counts)
        return policy.Sample(
            time=float(now),
            concurrency=float(record.running[now]),
            rate=float(record.started[now] - record.started[before]),
            latency=latency,
            ready=ready,
        )

    def tick(self, now: int, record: Record) -> int | None:
        if (
            self.params.source != "direct"
            and PrometheusView(record, self.params.pipeline).scraped(now) < 0
        ):
            return None  # no scrape yet (the run's start): the scaler has read nothing
        decision = policy.step(self.config, self.state, self.sample(now, record))
        self.decision = decision
        current = record.replicas[now]
        p = self.params.pipeline
        waiting = record.in_system[now] > 0  # the function's own trigger sees these
        polled = every(now, p.polling_interval)
        if current == 0:  # StreamIsActive pushes ours; KEDA polls the function's own trigger
            return 1 if decision.active or (polled and waiting) else None
        if polled:
            change = self.keda.poll(now, decision.active or waiting, current)
            if change is not None:
                return change
        if every(now, p.hpa_sync):
            recommendation = self.hpa.average_value(decision.value, 1.0, current)
            return self.hpa.sync(now, recommendation, current)
        return None


@dataclass
class KnativeKpa:
    params: Params
    name: str = "kpa"
    histogram: bool = False
    kpa: Kpa = field(init=False)

    def __post_init__(self) -> None:
        target = self.params.concurrency_target * self.params.target_utilization
        self.kpa = Kpa(
            KpaSettings(target=target, scale_down_delay=self.params.kpa_scale_down_delay)
        )

    def initial(self) -> int:
        return self.params.initial_replicas or 0

    def tick(self, now: int, record: Record) -> int | None:
        # The activator reports the requests it holds too: all of them count.
        self.kpa.record(float(now), record.concurrency[now])
        current = record.replicas[now]
        poke = current == 0 and record.in_system[now] > 0
        if not (poke or every(now, self.kpa.settings.tick_interval)):
            return None
        wanted = self.kpa.replicas(float(now), record.ready[now], current)
        if poke and wanted == 0:
            wanted = 1
        return wanted


def default_threshold(params: Params, mean_service: float) -> float:
    """Requests per second one replica should take: the concurrency target x utilization
    over the mean service time (what a user sizing the Prometheus trigger would write)."""
    return params.concurrency_target * params.target_utilization / max(mean_service, 1e-6)


@dataclass
class KedaPrometheus:
    params: Params
    threshold: float
    name: str = "keda-prometheus"
    histogram: bool = False
    hpa: Hpa = field(init=False)
    keda: Keda = field(init=False)

    def __post_init__(self) -> None:
        p = self.params.pipeline
        self.hpa = Hpa(
            p, self.params.max_replicas, p.downscale_stabilization, p.upscale_stabilization
        )
        self.keda = Keda(p)

    def initial(self) -> int:
        return self.params.initial_replicas or 0

    def tick(self, now: int, record: Record) -> int | None:
        p = self.params.pipeline
        current = record.replicas[now]
        polled = every(now, p.polling_interval)
        synced = every(now, p.hpa_sync) and current > 0
        if not (polled or synced):
            return None
        value = PrometheusView(record, p).rate(record.arrived, now) or 0.0
        if polled:
            change = self.keda.poll(now, value > 0.0, current)
            if change is not None:
                return change
        if synced:
            recommendation = self.hpa.average_value(value, self.threshold, current)
            return self.hpa.sync(now, recommendation, current)
        return None


@dataclass
class HpaCpu:
    params: Params
    name: str = "hpa-cpu"
    histogram: bool = False
    hpa: Hpa = field(init=False)

    def __post_init__(self) -> None:
        p = self.params.pipeline
        self.hpa = Hpa(
            p, self.params.max_replicas, p.downscale_stabilization, p.upscale_stabilization
        )

    def initial(self) -> int:
        return max(self.params.initial_replicas or 0, 1)

    def utilization(self, now: int, record: Record) -> float | None:
        """Mean CPU of the ready pods over the last metrics-server window."""
        window = int(self.params.pipeline.metrics_resolution)
        if now < window:
            return None
        pod_seconds = sum(record.ready[now - window + 1 : now + 1])
        if pod_seconds <= 0:
            return None
        busy = record.busy[now] - record.busy[now - window]
        capacity = self.params.container_concurrency or self.params.concurrency_target
        return busy / (pod_seconds * capacity)

    def tick(self, now: int, record: Record) -> int | None:
        p = self.params.pipeline
        current = record.replicas[now]
        if not every(now, p.hpa_sync) or current == 0:
            return None
        usage = self.utilization(now, record)
        if usage is None:
            return None
        ready = max(record.ready[now], 1)
        recommendation = self.hpa.utilization(usage, self.params.cpu_target, ready)
        if recommendation == ready:
            recommendation = current  # within tolerance: the HPA keeps the scale as it is
        return self.hpa.sync(now, recommendation, current)

"""The simulator's plain data: the traffic and the run's parameters. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Traffic:
    """Requests of one function, in arrival order: ``arrivals`` (seconds from the start)
    and ``services`` (the time each needs on a replica, seconds)."""

    arrivals: FloatArray
    services: FloatArray
    duration: float
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.arrivals) != len(self.services):
            raise ValueError("arrivals and services differ in length")


@dataclass(frozen=True)
class Pipeline:
    """The metrics and control pipeline between the pods and the replica count."""

    scrape_interval: float = 15.0
    evaluation_lag: float = 0.0
    rate_window: float = 60.0
    polling_interval: float = 30.0
    cooldown_period: float = 300.0
    hpa_sync: float = 15.0
    hpa_tolerance: float = 0.1
    downscale_stabilization: float = 300.0
    upscale_stabilization: float = 0.0
    metrics_resolution: float = 15.0


@dataclass(frozen=True)
class Params:
    """One simulation: the model of the replicas, the pipeline and each policy's target."""

    slo: float = 0.5
    container_concurrency: int = 10
    timeout: float = 300.0
    cold_start: tuple[float, float] = (1.0, 5.0)
    max_replicas: int = 1000
    initial_replicas: int | None = None  # None: what the first minute needs at the target
    target_concurrency: float | None = None  # None: containerConcurrency, or 100 if unlimited
    target_utilization: float = 0.7
    keda_threshold: float | None = None  # requests/s per replica; None: from the traffic
    cpu_target: float = 0.7
    latency_quantile: float = 0.95
    scale_down_delay: float = 0.0  # ofobserve's scaleDownDelay
    kpa_scale_down_delay: float = 0.0  # Knative's scale-down-delay
    #: ofobserve scaler's --source: prometheus (the Knative profile's queue-proxy metrics,
    #: what the KPA reads, a scrape later) or direct (the native profile from the pods)
    source: str = "prometheus"
    seed: int = 0
    pipeline: Pipeline = field(default_factory=Pipeline)

    @property
    def concurrency_target(self) -> float:
        """Knative's default: the containerConcurrency, else 100
        (``container-concurrency-target-default``)."""
        if self.target_concurrency is not None:
            return self.target_concurrency
        return float(self.container_concurrency) if self.container_concurrency > 0 else 100.0

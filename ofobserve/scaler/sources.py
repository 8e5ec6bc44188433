"""Where the scaler reads its signals: Prometheus (batched) or the pods directly. Does I/O.

Both implement :class:`Source`: given every registered function, return the signals of
those that have any. A function missing from a successful answer has no traffic; a failed
read raises :class:`SourceError` and the engine keeps its last good values.
"""

from __future__ import annotations

import asyncio
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_client.parser import text_string_to_metric_families
from urllib3.util.retry import Retry

from ofobserve import conventions as c
from ofobserve import profiles
from ofobserve.scaler.config import FunctionKey, ScalerConfig


@dataclass(frozen=True)
class Signals:
    """One function's signals: total concurrency, requests/s, the latency quantile in
    seconds (``None``: no signal) and ready replicas (``None``: unknown)."""

    concurrency: float = 0.0
    rate: float = 0.0
    latency: float | None = None
    ready: int | None = None


class SourceError(RuntimeError):
    """A read failed (``reason`` is a short label for the scaler's own metrics)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class Source(Protocol):
    name: str

    async def fetch(self, functions: Sequence[ScalerConfig]) -> dict[FunctionKey, Signals]: ...


# --- Prometheus ----------------------------------------------------------------------------------

BY = f"{c.NAMESPACE_LABEL}, {c.FUNCTION_LABEL}"


@dataclass(frozen=True)
class BatchQueries:
    """One query per signal for every function of one profile (and quantile): each groups
    by ``namespace`` and ``function``, so the count does not grow with the functions."""

    concurrency: str
    rate: str
    latency: str
    ready: str


def batch_queries(profile: profiles.Profile, quantile: float, window: str) -> BatchQueries:
    counters = "|".join(ctr.metric for ctr in profile.counters)
    buckets = "|".join(f"{h.metric}_bucket" for h in profile.histograms)
    scale = profile.histograms[0].scale
    per_second = "" if scale == 1 else f" / {scale:g}"
    if profile.concurrency is not None:
        concurrency = f"sum by ({BY}) ({profile.concurrency})"
    else:  # Little's law: time spent in requests per second = mean concurrency
        sums = "|".join(f"{h.metric}_sum" for h in profile.histograms)
        concurrency = f'sum by ({BY}) (rate({{__name__=~"{sums}"}}[{window}])){per_second}'
    ready = (
        f"sum by ({BY}) (label_replace({c.KSM_DEPLOYMENT_AVAILABLE} * on ({c.NAMESPACE_LABEL}, "
        f"deployment) group_left ({c.KSM_FUNCTION_LABEL}) {c.KSM_DEPLOYMENT_LABELS}, "
        f'"{c.FUNCTION_LABEL}", "$1", "{c.KSM_FUNCTION_LABEL}", "(.+)"))'
    )
    return BatchQueries(
        concurrency=concurrency,
        rate=f'sum by ({BY}) (rate({{__name__=~"{counters}"}}[{window}]))',
        latency=(
            f"histogram_quantile({quantile:g}, sum by ({BY}, le) "
            f'(rate({{__name__=~"{buckets}"}}[{window}]))){per_second}'
        ),
        ready=ready,
    )


def _group_key(config: ScalerConfig) -> tuple[str, str, float]:
    return (config.profile, config.knative_metrics, config.latency_quantile)


class PrometheusSource:
    """Batched PromQL through prometheus-api-client (blocking; run in a thread)."""

    name = "prometheus"

    def __init__(
        self,
        url: str,
        *,
        window: str = "1m",
        timeout: float = 5.0,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        ca_file: str | None = None,
        on_query: Callable[[], None] = lambda: None,
    ) -> None:
        session = requests.Session()
        if ca_file:
            session.verify = ca_file
        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else None
        self.client = PrometheusConnect(
            url=url,
            headers=headers,
            auth=basic_auth,
            session=session,
            timeout=timeout,
            retry=Retry(total=0),  # a failed tick is retried by the next one
        )
        self.window = window
        self.on_query = on_query

    async def fetch(self, functions: Sequence[ScalerConfig]) -> dict[FunctionKey, Signals]:
        return await asyncio.to_thread(self._fetch, functions)

    def _fetch(self, functions: Sequence[ScalerConfig]) -> dict[FunctionKey, Signals]:
        wanted: dict[tuple[str, str, float], set[FunctionKey]] = {}
        for config in functions:
            wanted.setdefault(_group_key(config), set()).add(config.key)
        found: dict[FunctionKey, dict[str, float]] = {}
        for (profile_name, generation, quantile), keys in sorted(wanted.items()):
            prof = profiles.profile(profile_name, generation, ("binding", "pubsub"))
            queries = batch_queries(prof, quantile, self.window)
            for signal in ("concurrency", "rate", "latency", "ready"):
                for key, value in self._query(getattr(queries, signal)):
                    if key in keys:
                        found.setdefault(key, {})[signal] = value
        return {key: _signals(values) for key, values in found.items()}

    def _query(self, expr: str) -> Iterable[tuple[FunctionKey, float]]:
        self.on_query()
        try:
            result: list[dict[str, Any]] = self.client.custom_query(expr)
        except Exception as exc:  # requests' and the client's errors alike
            raise SourceError("prometheus", f"{type(exc).__name__}: {exc}") from None
        for series in result:
            labels = series.get("metric", {})
            key = (labels.get(c.NAMESPACE_LABEL, ""), labels.get(c.FUNCTION_LABEL, ""))
            yield key, float(series["value"][1])


def _signals(values: Mapping[str, float]) -> Signals:
    latency = values.get("latency")
    ready = values.get("ready")
    finite = latency is not None and math.isfinite(latency)
    concurrency = values.get("concurrency", 0.0)
    return Signals(
        concurrency=concurrency if math.isfinite(concurrency) else 0.0,
        rate=values.get("rate", 0.0),
        latency=latency if finite else None,
        ready=int(ready) if ready is not None and math.isfinite(ready) else None,
    )


# --- direct scrape -------------------------------------------------------------------------------


class Discovery(Protocol):
    """Where a function's pods serve their native-profile metrics: ``host:port`` list."""

    def targets(self, key: FunctionKey) -> list[str]: ...


@dataclass
class StaticDiscovery:
    """Targets from a file: ``{"<namespace>/<function>": ["host:port", ...]}``."""

    table: Mapping[str, Sequence[str]]

    def targets(self, key: FunctionKey) -> list[str]:
        return list(self.table.get(f"{key[0]}/{key[1]}", ()))


@dataclass
class KubernetesDiscovery:
    """Ready pods labelled ``ofobserve.io/function=<name>``, listed at most every
    ``refresh`` seconds per namespace."""

    core: Any  # kubernetes.client.CoreV1Api
    port: int = c.NATIVE_METRICS_PORT
    refresh: float = 10.0
    _cache: dict[FunctionKey, tuple[float, list[str]]] = field(default_factory=dict)

    def targets(self, key: FunctionKey) -> list[str]:
        cached = self._cache.get(key)
        if cached and time.monotonic() - cached[0] < self.refresh:
            return cached[1]
        pods = self.core.list_namespaced_pod(
            key[0], label_selector=f"{c.FUNCTION_POD_LABEL}={key[1]}"
        ).items
        found = [
            f"{pod.status.pod_ip}:{self.port}"
            for pod in pods
            if pod.status.pod_ip
            and any(
                cond.type == "Ready" and cond.status == "True"
                for cond in (pod.status.conditions or [])
            )
        ]
        self._cache[key] = (time.monotonic(), found)
        return found


@dataclass
class _PodReading:
    time: float
    requests: float
    buckets: dict[float, float]


class DirectSource:
    """Scrapes each pod's ``/metrics`` (native profile) and derives rates from consecutive
    scrapes, as Knative's autoscaler scrapes queue-proxies. A pod that does not answer is
    skipped and reported through ``on_pod_error``; it never fails the whole read."""

    name = "direct"

    def __init__(
        self,
        discovery: Discovery,
        *,
        timeout: float = 0.5,
        on_pod_error: Callable[[FunctionKey, str], None] = lambda key, reason: None,
    ) -> None:
        self.discovery = discovery
        self.timeout = timeout
        self.on_pod_error = on_pod_error
        self.previous: dict[str, _PodReading] = {}

    async def fetch(self, functions: Sequence[ScalerConfig]) -> dict[FunctionKey, Signals]:
        try:
            plan = {cfg.key: (cfg, self.discovery.targets(cfg.key)) for cfg in functions}
        except Exception as exc:
            raise SourceError("discovery", f"{type(exc).__name__}: {exc}") from None
        scrapes = [
            (key, target, asyncio.to_thread(self._scrape, target))
            for key, (_cfg, targets) in plan.items()
            for target in targets
        ]
        bodies = await asyncio.gather(*(s[2] for s in scrapes), return_exceptions=True)
        per_function: dict[FunctionKey, list[tuple[str, str]]] = {}
        for (key, target, _), body in zip(scrapes, bodies, strict=True):
            if isinstance(body, BaseException):
                self.on_pod_error(key, "scrape")
                continue
            per_function.setdefault(key, []).append((target, body))
        return {
            key: self._signals(plan[key][0], pods) for key, pods in per_function.items() if pods
        }

    def _scrape(self, target: str) -> str:
        url = f"http://{target}{c.METRICS_PATH}"
        with urllib.request.urlopen(url, timeout=self.timeout) as resp:
            body: str = resp.read().decode()
            return body

    def _signals(self, config: ScalerConfig, pods: Collection[tuple[str, str]]) -> Signals:
        now = time.monotonic()
        concurrency = rate = 0.0
        deltas: dict[float, float] = {}
        for target, body in pods:
            reading = _parse(body, now)
            concurrency += reading[0]
            current = _PodReading(now, reading[1], reading[2])
            before = self.previous.get(target)
            self.previous[target] = current
            if before is None or current.requests < before.requests:  # new pod or restart
                continue
            rate += (current.requests - before.requests) / max(now - before.time, 1e-3)
            for le, count in current.buckets.items():
                deltas[le] = deltas.get(le, 0.0) + count - before.buckets.get(le, 0.0)
        return Signals(
            concurrency=concurrency,
            rate=rate,
            latency=_quantile(config.latency_quantile, deltas),
            ready=len(pods),
        )


def _parse(body: str, now: float) -> tuple[float, float, dict[float, float]]:
    """In-flight requests, total requests and cumulative duration buckets of one pod."""
    in_flight = requests_total = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == c.NATIVE_IN_FLIGHT:
                in_flight += sample.value
            elif sample.name == c.NATIVE_REQUESTS_TOTAL:
                requests_total += sample.value
            elif sample.name == f"{c.NATIVE_DURATION_SECONDS}_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    del now
    return in_flight, requests_total, buckets


def _quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """Prometheus' ``histogram_quantile`` on bucket increments; ``None`` without traffic."""
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] <= 0:
        return None
    total = cumulative[bounds[-1]]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return bounds[-1]

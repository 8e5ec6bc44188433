"""Where the scaler reads its signals: Prometheus (batched) or the pods directly. Does I/O.

Both implement :class:`Source`: given every registered function, return a
:class:`Reading`: the signals of the functions that were read, and the ones that could not
be, with why. A read that fails as a whole raises :class:`SourceError`. Either way the
engine keeps a failed function's last good decision (staleness applies) and never stands
in a value nobody read.
"""

from __future__ import annotations

import asyncio
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_client.parser import text_string_to_metric_families
from urllib3.util.retry import Retry

from ofobserve import conventions as c
from ofobserve import profiles
from ofobserve.scaler.config import FunctionKey, ScalerConfig
from ofobserve.scaler.discovery import Discovery, Targets
from ofobserve.scaler.discovery import DiscoveryError as DiscoveryError  # re-exported
from ofobserve.scaler.discovery import StaticDiscovery as StaticDiscovery  # re-exported
from ofobserve.scaler.discovery import parse_targets as parse_targets  # re-exported


@dataclass(frozen=True)
class Signals:
    """One function's signals: total concurrency, requests/s, the latency quantile in
    seconds (``None``: no signal) and ready replicas (``None``: unknown)."""

    concurrency: float = 0.0
    rate: float = 0.0
    latency: float | None = None
    ready: int | None = None


class SourceError(RuntimeError):
    """A read failed, as a whole or for one function. ``reason`` is a short label for
    ``ofobserve_scaler_source_errors_total`` (which grows by ``count``: failed scrapes or
    reads), ``detail`` what the UNAVAILABLE answer says. ``lasting``: no later read can
    succeed either (the source cannot read the function's profile at all)."""

    def __init__(self, reason: str, detail: str, *, count: int = 1, lasting: bool = False) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.count = count
        self.lasting = lasting


@dataclass
class Reading:
    """What one read found. A function in ``signals`` was read; in ``degraded`` as well
    when some of its targets failed (those are counted; the signals come from the others).
    A function in ``failed`` was not read. One in neither was read and has no series: no
    traffic (for example at zero replicas)."""

    signals: dict[FunctionKey, Signals] = field(default_factory=dict)
    failed: dict[FunctionKey, SourceError] = field(default_factory=dict)
    degraded: dict[FunctionKey, SourceError] = field(default_factory=dict)


#: Per function, its past signals oldest first, each with its age in seconds.
History = dict[FunctionKey, list[tuple[float, Signals]]]
#: Functions per range query of a warm start: their names go in the URL.
HISTORY_CHUNK = 200


class Source(Protocol):
    name: str

    async def fetch(self, functions: Sequence[ScalerConfig]) -> Reading: ...

    def forget(self, keys: Sequence[FunctionKey]) -> None:
        """Drop what is kept per function for ``keys``: the engine forgot them."""

    async def history(self, functions: Sequence[ScalerConfig], step: float) -> History:
        """The signals each function had over its last stable window, every ``step``
        seconds, as far as the source remembers (nothing: ``{}``). Raises
        :class:`SourceError` when it cannot tell."""


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


def batch_queries(
    profile: profiles.Profile,
    quantile: float,
    window: str,
    only: Sequence[FunctionKey] = (),
) -> BatchQueries:
    """The four queries; with ``only``, each selector also matches those functions'
    namespaces and names alone (a superset of them, which the caller filters)."""
    fn, ns, ksm = "", "", ""
    if only:
        names = "|".join(sorted({_regex(name) for _, name in only}))
        spaces = "|".join(sorted({_regex(namespace) for namespace, _ in only}))
        ns = f',{c.NAMESPACE_LABEL}=~"{spaces}"'
        fn = f',{c.FUNCTION_LABEL}=~"{names}"{ns}'
        ksm = f',{c.KSM_FUNCTION_LABEL}=~"{names}"'
    counters = "|".join(ctr.metric for ctr in profile.counters)
    buckets = "|".join(f"{h.metric}_bucket" for h in profile.histograms)
    scale = profile.histograms[0].scale
    per_second = "" if scale == 1 else f" / {scale:g}"
    if profile.concurrency is not None:
        gauge = f"{profile.concurrency}{{{fn[1:]}}}" if fn else profile.concurrency
        concurrency = f"sum by ({BY}) ({gauge})"
    else:  # Little's law: time spent in requests per second = mean concurrency
        sums = "|".join(f"{h.metric}_sum" for h in profile.histograms)
        concurrency = f'sum by ({BY}) (rate({{__name__=~"{sums}"{fn}}}[{window}])){per_second}'
    # the dapr-proxy Deployment carries the function's label too: leave it out by name.
    # Two kube-state-metrics (HA, or a rollout) export every Deployment twice: both sides
    # are reduced to one series per Deployment before the join, which would otherwise fail
    # with "many-to-many matching not allowed".
    own = f'deployment!~"{c.DAPR_PROXY_DEPLOYMENT_REGEX}"'
    key = f"{c.NAMESPACE_LABEL}, deployment"
    available = f"max by ({key}) ({c.KSM_DEPLOYMENT_AVAILABLE}{{{own}{ns}}})"
    labelled = (
        f"max by ({key}, {c.KSM_FUNCTION_LABEL}) "
        f'({c.KSM_DEPLOYMENT_LABELS}{{{own},{c.KSM_FUNCTION_LABEL}!=""{ksm}{ns}}})'
    )
    ready = (
        f"sum by ({BY}) (label_replace({available} * on ({key}) "
        f"group_left ({c.KSM_FUNCTION_LABEL}) {labelled}, "
        f'"{c.FUNCTION_LABEL}", "$1", "{c.KSM_FUNCTION_LABEL}", "(.+)"))'
    )
    return BatchQueries(
        concurrency=concurrency,
        rate=f'sum by ({BY}) (rate({{__name__=~"{counters}"{fn}}}[{window}]))',
        latency=(
            f"histogram_quantile({quantile:g}, sum by ({BY}, le) "
            f'(rate({{__name__=~"{buckets}"{fn}}}[{window}]))){per_second}'
        ),
        ready=ready,
    )


def _regex(name: str) -> str:
    """A namespace or function name as a PromQL regex matching it alone (names hold only
    ``[a-z0-9.-]``: the dot is the one metacharacter, escaped inside a PromQL string)."""
    return name.replace(".", "\\\\.")


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
        headers: Mapping[str, str] | None = None,
        on_query: Callable[[], None] = lambda: None,
    ) -> None:
        session = requests.Session()
        if ca_file:
            session.verify = ca_file
        # prometheus-api-client sends ``headers`` with every request it makes
        # (4n4nd/prometheus-api-client-python prometheus_api_client/prometheus_connect.py).
        sent = dict(headers or {})
        if bearer_token:
            sent["Authorization"] = f"Bearer {bearer_token}"
        self.client = PrometheusConnect(
            # the client appends "/api/v1/...": a base URL with a path prefix (Mimir's and
            # Cortex's /prometheus) keeps it, without a doubled slash
            url=url.rstrip("/"),
            headers=sent or None,
            auth=basic_auth,
            session=session,
            timeout=timeout,
            retry=Retry(total=0),  # a failed tick is retried by the next one
        )
        self.window = window
        self.on_query = on_query

    async def fetch(self, functions: Sequence[ScalerConfig]) -> Reading:
        return Reading(await asyncio.to_thread(self._fetch, functions))

    def forget(self, keys: Sequence[FunctionKey]) -> None:
        """Nothing is kept per function: every read is one batch over the registry."""

    async def history(self, functions: Sequence[ScalerConfig], step: float) -> History:
        return await asyncio.to_thread(self._history, functions, step)

    def _history(self, functions: Sequence[ScalerConfig], step: float) -> History:
        """Each function's signals over its last stable window, every ``step`` seconds:
        the batch queries as range queries (``custom_query_range``), each limited to the
        functions asked for, :data:`HISTORY_CHUNK` at a time (the names travel in the
        URL). An evaluation time at which a function has no series is no traffic, as in
        an instant read, except before its first series: Prometheus did not know it yet
        (it was not deployed, or not scraped), so its history starts there."""
        end = time.time()
        found: History = {}
        wanted: dict[tuple[str, str, float], list[ScalerConfig]] = {}
        for config in functions:
            wanted.setdefault(_group_key(config), []).append(config)
        for (profile_name, generation, quantile), configs in sorted(wanted.items()):
            prof = profiles.profile(profile_name, generation, ("binding", "pubsub"))
            for i in range(0, len(configs), HISTORY_CHUNK):
                chunk = configs[i : i + HISTORY_CHUNK]
                span = max(cfg.stable_window for cfg in chunk)
                start = end - span
                queries = batch_queries(prof, quantile, self.window, [cfg.key for cfg in chunk])
                values: dict[FunctionKey, dict[float, dict[str, float]]] = {}
                for signal in ("concurrency", "rate", "latency", "ready"):
                    for key, at, value in self._range(getattr(queries, signal), start, end, step):
                        values.setdefault(key, {}).setdefault(at, {})[signal] = value
                # the evaluation times Prometheus uses: start, start + step, ... <= end,
                # with start and end in whole seconds (as the client sends them)
                first, last = round(start), round(end)
                times = [first + k * step for k in range(int((last - first) / step + 1e-9) + 1)]
                for cfg in chunk:
                    seen = values.get(cfg.key, {})
                    kept = [at for at in times if end - at <= cfg.stable_window]
                    while kept and round(kept[0], 3) not in seen:
                        kept.pop(0)  # not seen yet: unknown, not "no traffic"
                    found[cfg.key] = [
                        (end - at, _signals(seen.get(round(at, 3), {}))) for at in kept
                    ]
        return found

    def _range(
        self, expr: str, start: float, end: float, step: float
    ) -> Iterable[tuple[FunctionKey, float, float]]:
        self.on_query()
        try:
            result: list[dict[str, Any]] = self.client.custom_query_range(
                expr,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=f"{step:g}",
            )
        except Exception as exc:  # requests' and the client's errors alike
            raise SourceError("prometheus", f"{type(exc).__name__}: {exc}") from None
        for series in result:
            labels = series.get("metric", {})
            key = (labels.get(c.NAMESPACE_LABEL, ""), labels.get(c.FUNCTION_LABEL, ""))
            for at, value in series.get("values", []):
                yield key, round(float(at), 3), float(value)

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

#: The profiles the direct source reads: the native metrics server, queue-proxy, the KEDA
#: HTTP interceptor and daprd (docs/scaling.md, "Sources").
DIRECT_PROFILES = (c.PROFILE_NATIVE, c.PROFILE_KNATIVE, c.PROFILE_KEDA_HTTP, c.PROFILE_DAPR)
#: The profiles pod discovery finds the right endpoints for; for the others it would give
#: the function's pods on the native port, where no queue-proxy or interceptor answers
#: (or, worse, a native metrics server whose series would read as no traffic). Only a
#: ``--targets`` table (:class:`StaticDiscovery`) says where those are, until discovery
#: looks for queue-proxy's port and the interceptor pods (docs/scaling.md, "Sources").
POD_DISCOVERY_PROFILES = (c.PROFILE_NATIVE, c.PROFILE_DAPR)
#: Pause between two scrapes of targets seen for the first time, for profiles whose
#: concurrency is a rate (Dapr): the first read of a function then has a value at once.
WARMUP_SECONDS = 0.5


@dataclass(frozen=True)
class _Counters:
    """What one scrape of one endpoint says about one function: the concurrency gauge
    (``gauge``: whether the endpoint serves it at all), and cumulative requests, time spent
    in them (s) and duration buckets (``le`` in s)."""

    time: float
    in_flight: float
    requests: float
    seconds: float
    buckets: dict[float, float]
    gauge: bool = False


class MetricsError(ValueError):
    """An endpoint answered, but not with metrics the function's profile can read."""


#: Why an interceptor series without ``route_name`` cannot be read.
KEDA_HTTP_BEFORE_0_14 = (
    " (KEDA HTTP add-on before 0.14 labels its series by host, with no duration histogram;"
    " the direct source reads 0.14 or later)"
)


@dataclass(frozen=True)
class _Reader:
    """How one function's ``/metrics`` bodies are read: its profile; the label values its
    series carry on an endpoint other functions share (daprd's ``app_id``, the interceptor's
    route), ``unlabelled`` saying why a series of the profile without those labels cannot be
    read; and ``foreign``, names of the other Knative generation, which tell a wrong
    ``knativeMetrics`` (``hint``) from no traffic."""

    profile: profiles.Profile
    only: tuple[tuple[str, str], ...] = ()
    unlabelled: str = ""
    foreign: frozenset[str] = frozenset()
    hint: str = ""


def _names(prof: profiles.Profile) -> frozenset[str]:
    """Every sample name of ``prof``'s series, counters without ``_total``."""
    names = {ctr.metric.removesuffix("_total") for ctr in prof.counters}
    for h in prof.histograms:
        names |= {f"{h.metric}_bucket", f"{h.metric}_sum", f"{h.metric}_count"}
    if prof.concurrency is not None:
        names.add(prof.concurrency)
    return frozenset(names)


def _reader(config: ScalerConfig) -> _Reader | SourceError:
    """How ``config``'s function is read, or why it cannot be (for good)."""
    prof = profiles.profile(config.profile, config.knative_metrics, ("binding", "pubsub"))
    if config.profile == c.PROFILE_DAPR:
        return _Reader(prof, (("app_id", c.dapr_app_id(*config.key)),))
    if config.profile == c.PROFILE_KEDA_HTTP:
        if config.route is None:
            return SourceError(
                "profile",
                "the direct source reads keda-http from the shared interceptor, whose series "
                "name the route only: set scalerMetadata.route to the function's "
                "HTTPScaledObject name, or run the scaler with --source prometheus",
                lasting=True,
            )
        route = (
            (c.KEDA_HTTP_ROUTE_NAME_LABEL, config.route),
            (c.KEDA_HTTP_ROUTE_NAMESPACE_LABEL, config.namespace),
        )
        return _Reader(prof, route, KEDA_HTTP_BEFORE_0_14)
    if config.profile == c.PROFILE_KNATIVE:
        other = c.KNATIVE_OPENCENSUS if prof is profiles.KNATIVE_OTEL else c.KNATIVE_OTEL
        foreign = _names(profiles.profile(c.PROFILE_KNATIVE, other)) - _names(prof)
        return _Reader(prof, foreign=foreign, hint=f"knativeMetrics: {other}")
    return _Reader(prof)


def _parse(body: str, reader: _Reader, at: float) -> _Counters:
    """Sum the profile's series in one ``/metrics`` body (only the function's, on a shared
    endpoint); :class:`MetricsError` when the body shows the profile cannot be read there.

    prometheus-client's parser names every counter sample ``*_total``, also where the
    exporter wrote none (OpenCensus names: daprd, Knative <= 1.18), so counters match
    either way.
    """
    prof = reader.profile
    counters = {ctr.metric.removesuffix("_total") for ctr in prof.counters}
    histograms = {h.metric: h.scale for h in prof.histograms}
    in_flight = requests_total = seconds = 0.0
    gauge = False
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            name = sample.name
            base = name.removesuffix("_total")
            if base in reader.foreign:
                raise MetricsError(f"it serves {base}: set scalerMetadata.{reader.hint}")
            histogram = name.rpartition("_")[0]
            if not (
                name == prof.concurrency
                or base in counters
                or (name.endswith(("_bucket", "_sum")) and histogram in histograms)
            ):
                continue
            missing = [label for label, _ in reader.only if label not in sample.labels]
            if missing:
                raise MetricsError(f"{name} has no {missing[0]} label{reader.unlabelled}")
            if any(sample.labels[label] != value for label, value in reader.only):
                continue
            if name == prof.concurrency:
                in_flight += sample.value
                gauge = True
            elif base in counters:
                requests_total += sample.value
            elif name.endswith("_bucket"):
                le = float(sample.labels["le"]) / histograms[histogram]
                buckets[le] = buckets.get(le, 0.0) + sample.value
            else:
                seconds += sample.value / histograms[histogram]
    return _Counters(at, in_flight, requests_total, seconds, buckets, gauge)


Scraped = tuple[float, str] | BaseException  # (time, body), or why it failed


class DirectSource:
    """Scrapes each function's endpoints and derives rates from consecutive scrapes, as
    Knative's autoscaler scrapes queue-proxies.

    Concurrency is the profile's gauge where the endpoints serve it: the native in-flight
    gauge, queue-proxy's queue depth, the interceptor's per-route concurrency. Where they
    do not (Dapr has none; queue-proxy has no queue without a containerConcurrency) it is
    the time spent in requests per second (Little's law on the latency histograms'
    ``_sum``). On a shared endpoint only the function's series count: daprd's with its
    ``app_id``, the interceptor's with its route (``scalerMetadata.route``; without it
    ``keda-http`` fails for good). Endpoints seen for the first time are scraped twice,
    ``warmup`` seconds apart, when the concurrency needs a rate. Per function: endpoints
    that answer give the signals, the others (and those whose answer the profile cannot
    read) are counted as errors; when none answers the read failed (the engine keeps the
    last good decision); with no endpoint at all no pod runs: no traffic.
    """

    name = "direct"

    def __init__(
        self,
        discovery: Discovery,
        *,
        timeout: float = 0.5,
        warmup: float = WARMUP_SECONDS,
        profiles: Sequence[str] | None = None,
    ) -> None:
        """``profiles``: those ``discovery`` finds targets for (default: every profile
        with a ``--targets`` table, :data:`POD_DISCOVERY_PROFILES` otherwise)."""
        self.discovery = discovery
        if profiles is None:
            static = isinstance(discovery, StaticDiscovery)
            profiles = DIRECT_PROFILES if static else POD_DISCOVERY_PROFILES
        self.profiles = tuple(profiles)
        self.timeout = timeout
        self.warmup = warmup
        self.previous: dict[FunctionKey, dict[str, _Counters]] = {}

    def forget(self, keys: Sequence[FunctionKey]) -> None:
        """Drop the last scrapes of ``keys`` (a function asked again starts afresh) and
        what discovery caches for them."""
        for key in keys:
            self.previous.pop(key, None)
        self.discovery.forget(keys)

    async def history(self, functions: Sequence[ScalerConfig], step: float) -> History:
        """Pods keep no past: a new function starts with an empty window."""
        return {}

    async def fetch(self, functions: Sequence[ScalerConfig]) -> Reading:
        reading = Reading()
        readable = []
        readers: dict[FunctionKey, _Reader] = {}
        for cfg in functions:
            how = (
                _reader(cfg)
                if cfg.profile in self.profiles
                else SourceError(
                    "profile",
                    f"the direct source finds no {cfg.profile} targets through pod discovery "
                    "yet: give them in a --targets file, or run the scaler with --source "
                    "prometheus",
                    lasting=True,
                )
            )
            if isinstance(how, SourceError):
                reading.failed[cfg.key] = how
            else:
                readable.append(cfg)
                readers[cfg.key] = how
        plan: dict[FunctionKey, tuple[ScalerConfig, Targets]] = {}
        for cfg, found in await asyncio.to_thread(self._discover, readable):
            if isinstance(found, Targets):
                plan[cfg.key] = (cfg, found)
            else:
                reading.failed[cfg.key] = found
        scraped = await self._scrape_all(
            [(key, e) for key, (_, targets) in plan.items() for e in targets.endpoints]
        )
        results = {
            key: self._read(cfg, readers[key], targets, scraped)
            for key, (cfg, targets) in plan.items()
        }
        again = [key for key, (signals, answered, _) in results.items() if not signals and answered]
        if again:  # first scrapes of a rate-only profile: a second one gives the rates
            await asyncio.sleep(self.warmup)
            scraped = await self._scrape_all(
                [(key, e) for key in again for e in plan[key][1].endpoints]
            )
            for key in again:
                cfg, targets = plan[key]
                results[key] = self._read(cfg, readers[key], targets, scraped)
        for key, (signals, _, errors) in results.items():
            endpoints = plan[key][1].endpoints
            if signals is not None:
                reading.signals[key] = signals
                if errors:
                    reading.degraded[key] = SourceError(
                        "scrape", f"{_failures(errors, len(endpoints))}", count=len(errors)
                    )
            elif errors:
                reading.failed[key] = SourceError(
                    "scrape", _failures(errors, len(endpoints)), count=len(errors)
                )
            else:  # answered, but each counter was new or reset: no rate yet
                reading.failed[key] = SourceError(
                    "warming-up", "its counters need one more scrape", count=0
                )
        return reading

    def _discover(
        self, functions: Sequence[ScalerConfig]
    ) -> list[tuple[ScalerConfig, Targets | SourceError]]:
        found: list[tuple[ScalerConfig, Targets | SourceError]] = []
        for cfg in functions:
            try:
                found.append((cfg, self.discovery.targets(cfg)))
            except Exception as exc:  # the client raises many types; one function fails
                found.append((cfg, SourceError("discovery", f"{type(exc).__name__}: {exc}")))
        return found

    async def _scrape_all(
        self, wanted: Sequence[tuple[FunctionKey, str]]
    ) -> dict[tuple[FunctionKey, str], Scraped]:
        """Each ``(function, endpoint)``; an endpoint two functions share is scraped once."""
        endpoints = sorted({e for _, e in wanted})
        bodies = await asyncio.gather(
            *(asyncio.to_thread(self._scrape, e) for e in endpoints), return_exceptions=True
        )
        by_endpoint = dict(zip(endpoints, bodies, strict=True))
        return {(key, e): by_endpoint[e] for key, e in wanted}

    def _scrape(self, endpoint: str) -> tuple[float, str]:
        url = f"http://{endpoint}{c.METRICS_PATH}"
        with urllib.request.urlopen(url, timeout=self.timeout) as resp:
            body: str = resp.read().decode()
        return time.monotonic(), body

    def _read(
        self,
        config: ScalerConfig,
        reader: _Reader,
        targets: Targets,
        scraped: Mapping[tuple[FunctionKey, str], Scraped],
    ) -> tuple[Signals | None, int, list[tuple[str, BaseException]]]:
        """The function's signals (``None`` when its concurrency needs a rate and no
        endpoint has two scrapes yet), how many endpoints answered, and the ones that
        failed."""
        if not targets.endpoints:  # no pod runs (scaled to zero): no traffic
            return Signals(ready=targets.ready or 0), 0, []
        before = self.previous.get(config.key, {})
        now: dict[str, _Counters] = {}
        errors: list[tuple[str, BaseException]] = []
        in_flight = rate = busy = 0.0
        deltas: dict[float, float] = {}
        compared = 0
        gauge = False
        for endpoint in targets.endpoints:
            result = scraped[(config.key, endpoint)]
            if isinstance(result, BaseException):
                errors.append((endpoint, result))
                if endpoint in before:  # compare across the gap next time
                    now[endpoint] = before[endpoint]
                continue
            try:
                current = _parse(result[1], reader, result[0])
            except (ValueError, KeyError) as exc:  # the parser's errors: not Prometheus text
                why = (
                    exc
                    if isinstance(exc, MetricsError)
                    else MetricsError(f"not Prometheus text ({type(exc).__name__}: {exc})")
                )
                errors.append((endpoint, why))
                if endpoint in before:
                    now[endpoint] = before[endpoint]
                continue
            now[endpoint] = current
            in_flight += current.in_flight
            gauge = gauge or current.gauge
            last = before.get(endpoint)
            if last is None or current.requests < last.requests or current.time <= last.time:
                continue  # a new endpoint, or its process restarted
            compared += 1
            elapsed = current.time - last.time
            rate += (current.requests - last.requests) / elapsed
            busy += max(current.seconds - last.seconds, 0.0) / elapsed
            for le, count in current.buckets.items():
                deltas[le] = deltas.get(le, 0.0) + count - last.buckets.get(le, 0.0)
        self.previous[config.key] = now
        answered = len(targets.endpoints) - len(errors)
        if not answered or (not gauge and not compared):
            return None, answered, errors
        ready = targets.ready
        if ready is None and config.profile in (c.PROFILE_NATIVE, c.PROFILE_KNATIVE):
            ready = answered  # each pod (or its queue-proxy) that answers is a ready replica
        signals = Signals(
            concurrency=in_flight if gauge else busy,
            rate=rate,
            latency=_quantile(config.latency_quantile, deltas),
            ready=ready,
        )
        return signals, answered, errors


def _failures(errors: Sequence[tuple[str, BaseException]], total: int) -> str:
    endpoint, exc = errors[0]
    if isinstance(exc, MetricsError):
        return (
            f"{len(errors)} of its {total} target(s) served no metrics it can read "
            f"({endpoint}: {exc})"
        )
    reason = getattr(exc, "reason", None) or exc
    return (
        f"{len(errors)} of its {total} target(s) did not answer "
        f"({endpoint}: {type(exc).__name__}: {reason})"
    )


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

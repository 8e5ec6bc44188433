"""Traffic from Prometheus history: "what would have happened last Tuesday". Does I/O.

With prometheus-api-client's ``custom_query_range`` (step 60 s) it reads the function's
request rate and its mean latency per minute (native profile:
``function_requests_total``, ``function_request_duration_seconds``), and turns them into
per-minute counts (rate x 60) and exponential service times with each minute's mean. The
mean latency measured includes any queueing of the day, so it is an upper bound of the
service time.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ofobserve.errors import InvalidInput, Location, Problem
from ofobserve.simulate import traffic
from ofobserve.simulate.model import Traffic

STEP = 60


def history_queries(namespace: str, function: str) -> tuple[str, str]:
    match = f'namespace="{namespace}",function="{function}"'
    rate = f"sum(rate(function_requests_total{{{match}}}[1m]))"
    latency = (
        f"sum(rate(function_request_duration_seconds_sum{{{match}}}[1m])) / "
        f"sum(rate(function_request_duration_seconds_count{{{match}}}[1m]))"
    )
    return rate, latency


def _error(where: str, message: str) -> InvalidInput:
    return InvalidInput([Problem(Location(where), message)])


def _series(result: list[dict[str, Any]], start: float, minutes: int) -> list[float]:
    values = [math.nan] * minutes
    for series in result:
        for stamp, raw in series.get("values", []):
            m = round((float(stamp) - start) / STEP)
            if 0 <= m < minutes:
                v = float(raw)
                values[m] = v if math.isfinite(v) else math.nan
    return values


def load_history(
    url: str,
    key: str,
    start: datetime,
    end: datetime,
    default_service: float,
    scale: float,
    seed: int,
) -> Traffic:
    """Per-minute traffic of ``key`` (``namespace/function``) from ``start`` to ``end``."""
    from prometheus_api_client import PrometheusConnect
    from prometheus_api_client.exceptions import PrometheusApiClientException

    namespace, _, function = key.partition("/")
    if not namespace or not function:
        raise _error("--function", f"must be namespace/name with --prometheus (got {key!r})")
    if end <= start:
        raise _error("--end", "must be after --start")
    if (end - start).total_seconds() > 31 * 86400:
        raise _error("--end", "at most 31 days after --start (the limit of a simulation)")
    minutes = int((end - start).total_seconds() // STEP)
    rate_q, latency_q = history_queries(namespace, function)
    client = PrometheusConnect(url=url, disable_ssl=True)
    try:
        rates = client.custom_query_range(rate_q, start_time=start, end_time=end, step=str(STEP))
        means = client.custom_query_range(latency_q, start_time=start, end_time=end, step=str(STEP))
    except PrometheusApiClientException as exc:
        raise _error(f"--prometheus {url}", f"query refused: {exc}") from None
    except OSError as exc:
        raise _error(f"--prometheus {url}", f"cannot query: {exc}") from None
    t0 = start.timestamp()
    rate = _series(rates, t0, minutes)
    mean = _series(means, t0, minutes)
    if all(math.isnan(r) for r in rate):
        raise _error(f"--prometheus {url}", f"no request rate for {key} in that range ({rate_q})")
    counts = [0.0 if math.isnan(r) else r * STEP for r in rate]
    service = [default_service if math.isnan(s) or s <= 0 else s for s in mean]
    return traffic.from_minutes(counts, service, default_service, scale, seed, f"{url} {key}")

"""Arrivals from per-minute counts, per-request lists and service-time draws. Pure.

Within a minute, arrivals are a Poisson process: given the minute's count, the times are
uniform order statistics. ``scale`` multiplies the arrival rate: the count of a minute
becomes a Poisson draw with mean ``scale x count`` (exactly the count when ``scale`` is 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ofobserve.simulate.model import FloatArray, Traffic

MINUTE = 60.0


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """An independent, reproducible random stream per purpose (arrivals, services, one per
    policy's cold starts), so that adding a policy changes no other stream."""
    key = [ord(ch) for ch in stream]
    return np.random.default_rng([seed, *key])


def scaled_counts(counts: Sequence[float], scale: float, rng: np.random.Generator) -> list[int]:
    """Each minute's count times ``scale``: the count itself at 1, else a Poisson draw."""
    if scale == 1.0:
        return [round(c) for c in counts]
    drawn = rng.poisson(np.asarray(counts, dtype=np.float64) * scale)
    return [int(n) for n in drawn]


def arrivals_from_counts(counts: Sequence[int], rng: np.random.Generator) -> FloatArray:
    """Sorted arrival times: ``counts[m]`` uniform times in minute ``m``."""
    total = int(sum(counts))
    if total == 0:
        return np.zeros(0, dtype=np.float64)
    starts = np.repeat(np.arange(len(counts), dtype=np.float64) * MINUTE, counts)
    times = starts + rng.random(total) * MINUTE
    times.sort()
    return times


def exponential_services(mean: float, n: int, rng: np.random.Generator) -> FloatArray:
    return rng.exponential(mean, n).astype(np.float64)


def from_minutes(
    counts: Sequence[float],
    service_means: Sequence[float] | None,
    default_service: float,
    scale: float,
    seed: int,
    source: str = "",
) -> Traffic:
    """Traffic from per-minute counts; each minute's service times are exponential with that
    minute's mean (``service_means``), or ``default_service``."""
    rng = rng_for(seed, "arrivals")
    minutes = scaled_counts(counts, scale, rng)
    arrivals = arrivals_from_counts(minutes, rng)
    service_rng = rng_for(seed, "services")
    if service_means is None:
        services = exponential_services(default_service, len(arrivals), service_rng)
    else:
        means = np.repeat(np.asarray(service_means, dtype=np.float64), minutes)
        services = service_rng.exponential(1.0, len(arrivals)) * means
    return Traffic(arrivals, services, len(counts) * MINUTE, source)


def from_requests(
    times: Sequence[float], durations: Sequence[float], scale: float, seed: int, source: str = ""
) -> Traffic:
    """Traffic from a per-request list. ``scale`` above 1 adds copies of requests, each
    shifted by up to a second; below 1 it keeps each request with probability ``scale``."""
    t = np.asarray(times, dtype=np.float64)
    d = np.asarray(durations, dtype=np.float64)
    if len(t):
        start = float(t.min())
        t = t - start
    duration = float(np.ceil(t.max() / MINUTE) * MINUTE) if len(t) else 0.0
    duration = max(duration, MINUTE)
    if scale != 1.0:
        rng = rng_for(seed, "arrivals")
        copies = rng.poisson(scale, len(t))
        t = np.repeat(t, copies) + rng.random(int(copies.sum()))
        d = np.repeat(d, copies)
        t = np.minimum(t, duration - 1e-6)
    order = np.argsort(t, kind="stable")
    return Traffic(t[order], d[order], duration, source)


def from_invocations(
    minutes: Sequence[float],
    runtimes: Sequence[float],
    scale: float,
    seed: int,
    source: str = "",
) -> Traffic:
    """Traffic from OrcBench rows: one invocation per row at its logical time (minutes, a
    real number as ``orcbench trace`` writes it; whole minutes are spread uniformly within
    the minute), with its runtime. ``scale`` turns each row into Poisson(``scale``) copies,
    spread uniformly until the function's next row (at most a minute): the trace's shape,
    at ``scale`` times its rate."""
    rng = rng_for(seed, "arrivals")
    m = np.asarray(minutes, dtype=np.float64)
    r = np.asarray(runtimes, dtype=np.float64)
    order = np.argsort(m, kind="stable")
    m, r = m[order], r[order]
    t = m * MINUTE
    if len(m) and bool(np.all(m == np.floor(m))):
        t = np.sort(t + rng.random(len(m)) * MINUTE)
    span = float(np.floor(m.max())) + 1 if len(m) else 1.0
    if scale != 1.0:
        gaps = np.minimum(np.diff(t, append=span * MINUTE), MINUTE)
        copies = rng.poisson(scale, len(t))
        t = np.repeat(t, copies) + rng.random(int(copies.sum())) * np.repeat(gaps, copies)
        r = np.repeat(r, copies)
    t = np.minimum(t, span * MINUTE - 1e-6)
    order = np.argsort(t, kind="stable")
    return Traffic(t[order], r[order], span * MINUTE, source)

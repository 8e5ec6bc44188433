"""The figures of each run, as a table and as JSON with fixed keys. Pure.

Per policy: the share of requests over the SLO (timed-out ones included), p50/p95/p99
latency, timed-out requests, cold starts, replica-seconds (ready and starting replicas,
the cost), scale events, the highest replica count, and the reaction time to the trace's
largest load step: the seconds from the start of the minute whose arrivals grew the most
until the ready replicas first reach what that minute's offered load needs,
``ceil(arrival rate x mean service time / containerConcurrency)``, or ``None`` when that
does not happen within 10 minutes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ofobserve.simulate.cluster import Run
from ofobserve.simulate.model import Params, Traffic

MINUTE = 60
REACTION_LIMIT = 600
#: The keys of one policy's figures, in table order.
KEYS = (
    "policy",
    "requests",
    "slo_violation_share",
    "p50_s",
    "p95_s",
    "p99_s",
    "timed_out",
    "cold_starts",
    "replica_seconds",
    "max_replicas",
    "scale_events",
    "reaction_time_s",
)
HEADERS = {
    "policy": "POLICY",
    "requests": "REQUESTS",
    "slo_violation_share": "OVER SLO",
    "p50_s": "P50",
    "p95_s": "P95",
    "p99_s": "P99",
    "timed_out": "TIMED OUT",
    "cold_starts": "COLD STARTS",
    "replica_seconds": "REPLICA-S",
    "max_replicas": "MAX REPLICAS",
    "scale_events": "SCALE EVENTS",
    "reaction_time_s": "REACTION",
}


@dataclass(frozen=True)
class LoadStep:
    minute: int
    needed: int


def per_minute(traffic: Traffic) -> list[int]:
    minutes = max(math.ceil(traffic.duration / MINUTE), 1)
    index = np.minimum((traffic.arrivals // MINUTE).astype(np.int64), minutes - 1)
    return [int(c) for c in np.bincount(index, minlength=minutes)]


def load_step(traffic: Traffic, params: Params) -> LoadStep | None:
    """The minute whose arrivals grew the most over the one before, and the ready replicas
    its offered load needs."""
    counts = per_minute(traffic)
    if len(counts) < 2:
        return None
    growth = [counts[m] - counts[m - 1] for m in range(1, len(counts))]
    best = max(range(len(growth)), key=lambda k: (growth[k], -k))
    if growth[best] <= 0:
        return None
    minute = best + 1
    mean = float(np.mean(traffic.services)) if len(traffic.services) else 0.0
    slots = params.container_concurrency or params.concurrency_target
    needed = max(1, math.ceil(counts[minute] / MINUTE * mean / slots))
    return LoadStep(minute, needed)


def reaction_time(run: Run, step: LoadStep | None) -> float | None:
    if step is None:
        return None
    start = step.minute * MINUTE
    ready = run.record.ready
    for t in range(start, min(start + REACTION_LIMIT, len(ready))):
        if ready[t] >= step.needed:
            return float(t - start)
    return None


def _r(value: float, digits: int = 4) -> float:
    return float(round(value, digits))


def figures(run: Run, params: Params, step: LoadStep | None) -> dict[str, Any]:
    lat = run.latencies
    n = len(lat)
    quantiles = np.percentile(lat, [50, 95, 99]) if n else np.zeros(3)
    over = int(np.count_nonzero(lat > params.slo)) if n else 0
    reaction = reaction_time(run, step)
    return {
        "policy": run.policy,
        "requests": n,
        "slo_violation_share": _r(over / n if n else 0.0, 6),
        "p50_s": _r(float(quantiles[0])),
        "p95_s": _r(float(quantiles[1])),
        "p99_s": _r(float(quantiles[2])),
        "timed_out": run.timed_out,
        "cold_starts": run.cold_starts,
        "replica_seconds": int(sum(run.record.replicas)),
        "max_replicas": int(max(run.record.replicas, default=0)),
        "scale_events": run.scale_events,
        "reaction_time_s": None if reaction is None else _r(reaction, 1),
    }


def build_report(traffic: Traffic, params: Params, runs: Sequence[Run]) -> dict[str, Any]:
    """Fixed keys: ``trace``, ``parameters``, ``load_step`` and ``policies``."""
    step = load_step(traffic, params)
    mean = float(np.mean(traffic.services)) if len(traffic.services) else 0.0
    p = params.pipeline
    return {
        "trace": {
            "source": traffic.source,
            "requests": len(traffic.arrivals),
            "duration_s": _r(traffic.duration, 1),
            "mean_rate_per_s": _r(len(traffic.arrivals) / max(traffic.duration, 1.0)),
            "mean_service_s": _r(mean),
        },
        "parameters": {
            "seed": params.seed,
            "slo_s": params.slo,
            "container_concurrency": params.container_concurrency,
            "timeout_s": params.timeout,
            "cold_start_s": list(params.cold_start),
            "target_concurrency": params.concurrency_target,
            "target_utilization": params.target_utilization,
            "cpu_target": params.cpu_target,
            "scale_down_delay_s": params.scale_down_delay,
            "kpa_scale_down_delay_s": params.kpa_scale_down_delay,
            "source": params.source,
            "max_replicas": params.max_replicas,
            "initial_replicas": params.initial_replicas,
            "scrape_interval_s": p.scrape_interval,
            "evaluation_lag_s": p.evaluation_lag,
            "polling_interval_s": p.polling_interval,
            "cooldown_period_s": p.cooldown_period,
            "hpa_sync_s": p.hpa_sync,
            "hpa_tolerance": p.hpa_tolerance,
            "downscale_stabilization_s": p.downscale_stabilization,
        },
        "load_step": None
        if step is None
        else {"minute": step.minute, "replicas_needed": step.needed},
        "policies": [figures(run, params, step) for run in runs],
    }


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "slo_violation_share":
        return f"{100 * value:.2f}%"
    if key in ("p50_s", "p95_s", "p99_s"):
        return f"{value:.3f}s"
    if key == "reaction_time_s":
        return f"{value:.0f}s"
    return str(value)


def render_table(report: dict[str, Any]) -> str:
    rows = [[HEADERS[k] for k in KEYS]]
    rows += [[_cell(k, figures[k]) for k in KEYS] for figures in report["policies"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(KEYS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    t = report["trace"]
    head = (
        f"{t['source']}: {t['requests']} requests over {t['duration_s'] / 60:.0f} min "
        f"({t['mean_rate_per_s']:.2f}/s, mean service {t['mean_service_s']:.3f}s); "
        f"SLO {report['parameters']['slo_s']:g}s"
    )
    return "\n".join([head, *lines]) + "\n"

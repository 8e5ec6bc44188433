"""``--plot FILE.png``: load, replicas per policy and p95 latency over time. Does I/O
(writes the PNG, atomically), with matplotlib's Agg backend."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ofobserve.simulate.cluster import Run
from ofobserve.simulate.model import Params, Traffic

MINUTE = 60.0


def write_plot(
    path: str, traffic: Traffic, params: Params, runs: Sequence[Run], dpi: int = 80
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 7.5), dpi=dpi)
    load, replicas, latency = figure.subplots(3, 1, sharex=True)
    minutes = max(int(np.ceil(traffic.duration / MINUTE)), 1)
    index = np.minimum((traffic.arrivals // MINUTE).astype(np.int64), minutes - 1)
    per_minute = np.bincount(index, minlength=minutes)
    axis = np.arange(minutes)
    load.plot(axis, per_minute / MINUTE, color="black", linewidth=1)
    load.set_ylabel("requests/s")
    load.set_title(f"{traffic.source}: SLO {params.slo:g} s", fontsize=10)
    for run in runs:
        seconds = np.arange(len(run.record.replicas)) / MINUTE
        replicas.plot(seconds, run.record.replicas, linewidth=1, label=run.policy)
        order = np.argsort(index, kind="stable")
        groups = np.split(
            run.latencies[order], np.cumsum(np.bincount(index, minlength=minutes))[:-1]
        )
        p95 = [float(np.percentile(g, 95)) if len(g) else np.nan for g in groups]
        latency.plot(axis, p95, linewidth=1, label=run.policy)
    replicas.set_ylabel("replicas")
    replicas.legend(loc="upper right", fontsize=8)
    latency.axhline(params.slo, color="grey", linestyle="--", linewidth=1, label="SLO")
    latency.set_yscale("log")
    latency.set_ylabel("p95 latency (s)")
    latency.legend(loc="upper right", fontsize=8)
    latency.set_xlabel("minutes")
    figure.tight_layout()
    target = Path(path)
    handle, temporary = tempfile.mkstemp(dir=target.parent or ".", suffix=".png.tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            figure.savefig(out, format="png")
        os.chmod(temporary, 0o644)  # mkstemp's 0600 is for the temporary only
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise

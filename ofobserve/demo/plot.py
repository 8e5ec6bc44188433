"""``demo.png``: the run's timeline (load, replicas, p95, alerts). Does I/O (writes the PNG
atomically), with matplotlib's Agg backend."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ofobserve.demo.observe import Row
from ofobserve.demo.report import Summary


def write_plot(path: Path, rows: Sequence[Row], summary: Summary, dpi: int = 72) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 7.5), dpi=dpi)
    load, replicas, latency, alerts = figure.subplots(
        4, 1, sharex=True, gridspec_kw={"height_ratios": [3, 3, 3, 2]}
    )
    t = [r.t for r in rows]
    load.plot(t, [r.offered for r in rows], color="grey", linestyle="--", linewidth=1,
              label="offered")  # fmt: skip
    load.plot(t, [r.served for r in rows], color="tab:green", linewidth=1, label="served")
    load.plot(t, [r.failed for r in rows], color="tab:red", linewidth=1, label="failed (5xx)")
    load.plot(t, [r.lag for r in rows], color="tab:orange", linewidth=1, label="queued (lag)")
    load.set_ylabel("events/s")
    load.legend(loc="upper right", fontsize=7, ncol=4)
    scale = f", time scale {summary.time_scale:g}x" if summary.time_scale != 1 else ""
    load.set_title(f"ofobserve demo --scenario {summary.scenario}{scale}", fontsize=10)
    for name, at in summary.phases:
        for axis in (load, replicas, latency, alerts):
            axis.axvline(at, color="lightgrey", linewidth=0.8)
        load.annotate(name, (at, 1), xycoords=("data", "axes fraction"), fontsize=7,
                      va="top", xytext=(2, -2), textcoords="offset points")  # fmt: skip
    replicas.step(t, [r.desired for r in rows], where="post", label="desired", linewidth=1)
    replicas.step(t, [r.ready for r in rows], where="post", label="ready", linewidth=1)
    replicas.set_ylabel("replicas")
    replicas.legend(loc="upper right", fontsize=7)
    latency.plot(t, [_nan(r.p95_end_to_end) for r in rows], linewidth=1,
                 label="p95 end to end (queue + function)")  # fmt: skip
    latency.plot(t, [_nan(r.p95_function) for r in rows], linewidth=1,
                 label="p95 function (Prometheus rule)")  # fmt: skip
    latency.set_yscale("log")
    latency.set_ylabel("seconds")
    latency.legend(loc="upper right", fontsize=7)
    names = sorted({span.alert for span in summary.alerts})
    for index, name in enumerate(names):
        for span in (s for s in summary.alerts if s.alert == name):
            end = span.resolved if span.resolved is not None else (t[-1] if t else span.fired)
            alerts.broken_barh([(span.fired, max(end - span.fired, 0.5))], (index - 0.4, 0.8),
                               color="tab:red")  # fmt: skip
    alerts.set_yticks(range(len(names)), names, fontsize=7)
    alerts.set_ylim(-0.6, max(len(names), 1) - 0.4)
    alerts.set_xlabel("seconds")
    alerts.set_title("firing in Alertmanager", fontsize=8)
    figure.tight_layout()
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".png.tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            figure.savefig(out, format="png")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value

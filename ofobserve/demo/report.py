"""The run's summary and its files: ``summary.json``, ``timeline.csv``. Pure except
:func:`write_files`.

Times are seconds from the run's start. Alerts are what Alertmanager held, read once a
second through its API: "fired" is the first second an alert was active there, "resolved"
the first second it was gone again.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ofobserve.demo.observe import Row


@dataclass(frozen=True)
class AlertSpan:
    alert: str
    fired: float
    resolved: float | None  # None: still firing at the end


@dataclass(frozen=True)
class Summary:
    scenario: str
    time_scale: float
    seconds: float
    interrupted: bool
    max_replicas: int
    first_replica_after: float | None  # from the first event to the first ready replica
    back_to_zero_after: float | None  # from the last event to no replica
    events_arrived: int
    events_served: int
    events_failed: int
    events_left: int
    alerts: tuple[AlertSpan, ...]
    phases: tuple[tuple[str, float], ...]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def alert_spans(rows: Sequence[Row]) -> tuple[AlertSpan, ...]:
    spans: list[AlertSpan] = []
    open_: dict[str, float] = {}
    for row in rows:
        now = set(row.alerts)
        for name in sorted(now - set(open_)):
            open_[name] = row.t
        for name in sorted(set(open_) - now):
            spans.append(AlertSpan(name, open_.pop(name), row.t))
    spans.extend(AlertSpan(name, at, None) for name, at in open_.items())
    return tuple(sorted(spans, key=lambda s: (s.fired, s.alert)))


def summarize(
    rows: Sequence[Row],
    *,
    scenario: str,
    time_scale: float,
    arrived: int,
    served: int,
    failed: int,
    left: int,
    interrupted: bool,
    phases: Sequence[tuple[str, float]],
) -> Summary:
    first_load = next((r.t for r in rows if r.offered > 0), None)
    first_ready = next(
        (r.t for r in rows if r.ready > 0 and first_load is not None and r.t >= first_load),
        None,
    )
    last_load = next((r.t for r in reversed(rows) if r.offered > 0 or r.lag > 0), None)
    back = None
    if last_load is not None:
        after = [r for r in rows if r.t > last_load]
        zero = next((r.t for r in after if r.ready == 0 and r.desired == 0), None)
        back = None if zero is None else round(zero - last_load, 1)
    return Summary(
        scenario=scenario,
        time_scale=time_scale,
        seconds=rows[-1].t if rows else 0.0,
        interrupted=interrupted,
        max_replicas=max((r.ready for r in rows), default=0),
        first_replica_after=(
            None
            if first_ready is None or first_load is None
            else round(first_ready - first_load, 1)
        ),
        back_to_zero_after=back,
        events_arrived=arrived,
        events_served=served,
        events_failed=failed,
        events_left=left,
        alerts=alert_spans(rows),
        phases=tuple((name, round(at, 1)) for name, at in phases),
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def render_text(summary: Summary) -> str:
    lines = [
        f"scenario {summary.scenario}: {summary.seconds:.0f} s"
        + (f", time scale {summary.time_scale:g}x" if summary.time_scale != 1 else "")
        + (" (interrupted)" if summary.interrupted else ""),
        f"  max replicas ready         {summary.max_replicas}",
        f"  first replica from zero    {_seconds(summary.first_replica_after)} after the "
        "first event",
        f"  back to zero               {_seconds(summary.back_to_zero_after)} after the last event",
        f"  events                     {summary.events_arrived} arrived, "
        f"{summary.events_served} served, {summary.events_failed} failed (5xx), "
        f"{summary.events_left} still queued",
        "  phases                     "
        + ", ".join(f"{name} @{at:.0f}s" for name, at in summary.phases),
    ]
    if not summary.alerts:
        lines.append("  alerts                     none reached Alertmanager")
    for span in summary.alerts:
        end = "still firing" if span.resolved is None else f"resolved @{span.resolved:.0f}s"
        lines.append(f"  alert {span.alert:<38} fired @{span.fired:.0f}s, {end}")
    return "\n".join(lines)


def write_files(out: Path, summary: Summary, rows: Sequence[Row]) -> None:
    (out / "summary.json").write_text(json.dumps(summary.as_dict(), indent=2) + "\n")
    with (out / "timeline.csv").open("w", newline="") as f:
        fields = [fl.name for fl in dataclasses.fields(Row)]
        writer = csv.writer(f)
        writer.writerow(fields)
        for row in rows:
            values = dataclasses.astuple(row)
            writer.writerow(
                ["" if v is None else ";".join(v) if isinstance(v, tuple) else v for v in values]
            )

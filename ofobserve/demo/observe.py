"""What the demo reads back while it runs: Prometheus and Alertmanager over their HTTP
APIs, and the broker's and controller's own counts. Does I/O.

A value that could not be read is ``None`` (shown as "-"), never a guess.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from ofobserve.demo.broker import Broker
from ofobserve.demo.replicas import ReplicaController

P95 = (
    'namespace_function:request_duration_seconds:quantile_rate5m{namespace="demo",quantile="0.95"}'
)
RATE = 'namespace_function:requests:rate5m{namespace="demo"}'


@dataclass(frozen=True)
class Row:
    """One second of the run."""

    t: float
    phase: str
    offered: float
    served: int  # events finished OK in this second
    failed: int  # events answered 5xx in this second
    lag: int
    in_flight: int
    p95_end_to_end: float | None  # broker arrival to answer, events of the last 5 s
    p95_function: float | None  # the function's own histogram, through the recorded rule
    rate_prometheus: float | None
    metric: float | None  # the scaler's GetMetrics value (desired replicas)
    desired: int
    ready: int
    alerts: tuple[str, ...]  # firing in Alertmanager: "name/severity"


def get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def query(prometheus: str, expr: str) -> float | None:
    """One instant query's single value; ``None`` when there is none or it fails."""
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        result = get_json(url)["data"]["result"]
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        return None
    if len(result) != 1:
        return None
    value = float(result[0]["value"][1])
    return value if value == value else None  # NaN: no value


def firing(alertmanager: str) -> tuple[str, ...] | None:
    """The active alerts Alertmanager holds, as ``name/severity``; ``None`` if unread."""
    try:
        alerts = get_json(f"{alertmanager}/api/v2/alerts?active=true&silenced=false")
    except (OSError, ValueError, urllib.error.URLError):
        return None
    names = {
        f"{a['labels'].get('alertname', '?')}/{a['labels'].get('severity', '-')}"
        for a in alerts
        if a.get("status", {}).get("state") == "active"
    }
    return tuple(sorted(names))


@dataclass
class Observer:
    prometheus: str
    alertmanager: str
    broker: Broker
    controller: ReplicaController
    rows: list[Row] = field(default_factory=list)
    _served: int = 0
    _failed: int = 0
    _alerts: tuple[str, ...] = ()

    def sample(
        self, t: float, prom: dict[str, float | None], alerts: tuple[str, ...] | None
    ) -> Row:
        stats = self.broker.stats
        served, failed = stats.served - self._served, stats.failed - self._failed
        self._served, self._failed = stats.served, stats.failed
        if alerts is not None:
            self._alerts = alerts
        now = self.broker.clock()
        recent = sorted(lat for done, lat, _ in stats.done if now - done <= 5.0)
        load = self.broker.load
        row = Row(
            t=round(t, 1),
            phase=load.phase if load else "done",
            offered=load.rate if load else 0.0,
            served=served,
            failed=failed,
            lag=self.broker.lag,
            in_flight=self.broker.in_flight,
            p95_end_to_end=_p95(recent),
            p95_function=prom.get("p95"),
            rate_prometheus=prom.get("rate"),
            metric=self.controller.metric,
            desired=self.controller.desired,
            ready=self.controller.ready,
            alerts=self._alerts,
        )
        self.rows.append(row)
        return row

    def read_servers(self) -> tuple[dict[str, float | None], tuple[str, ...] | None]:
        """Blocking reads (run them in a thread)."""
        prom = {"p95": query(self.prometheus, P95), "rate": query(self.prometheus, RATE)}
        return prom, firing(self.alertmanager)


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    return values[min(int(0.95 * len(values)), len(values) - 1)]

"""Synthetic exporters built with prometheus-client, emitting upstream metric names exactly.

OpenCensus-based exporters (Knative <= 1.18, Dapr) expose counters without the ``_total``
suffix that prometheus-client's own Counter adds; :class:`StaticFamilies` writes samples
under the exact names given, with the given TYPE.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import Metric
from prometheus_client.registry import Collector


@dataclass
class Family:
    """One metric family: name, type and samples ``(sample name, labels, value)``."""

    name: str
    type: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def add(self, labels: dict[str, str], value: float, suffix: str = "") -> Family:
        self.samples.append((self.name + suffix, labels, value))
        return self


class StaticFamilies(Collector):
    """A collector that serves fixed families verbatim."""

    def __init__(self, families: Iterable[Family]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            metric = Metric(family.name, family.name, family.type)
            for sample_name, labels, value in family.samples:
                metric.add_sample(sample_name, labels, value)
            yield metric

"""The demo's scenarios: phases of offered load, service time and error share. Pure.

A scenario also fixes its time scale ``k``: the rendered rules' windows and ``for``
durations, KEDA's polling and cooldown and the HPA's sync period run ``k`` times faster,
so that a few minutes show what takes an hour in a cluster. ``full`` runs at ``k = 1``:
the rules exactly as ``ofobserve render`` writes them (docs/demo.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Phase:
    """``seconds`` of events arriving at a rate going linearly from ``rate_from`` to
    ``rate_to`` per second, each needing ``service`` seconds, ``errors`` of them failing."""

    name: str
    seconds: float
    rate_from: float
    rate_to: float
    service: float = 0.1
    errors: float = 0.0


@dataclass(frozen=True)
class Load:
    """What the event source does at one instant."""

    phase: str
    rate: float
    service: float
    errors: float


@dataclass(frozen=True)
class Scenario:
    name: str
    phases: tuple[Phase, ...]
    #: How many times faster than a cluster the time-based settings run (module doc).
    time_scale: float
    #: The scaler's stable and panic windows for this run (scalerMetadata keys).
    stable_window: str
    panic_window: str

    @property
    def duration(self) -> float:
        return sum(p.seconds for p in self.phases)

    def at(self, t: float) -> Load | None:
        """The load ``t`` seconds into the run; ``None`` once the scenario is over."""
        start = 0.0
        for p in self.phases:
            if t < start + p.seconds:
                share = (t - start) / p.seconds if p.seconds else 0.0
                rate = p.rate_from + (p.rate_to - p.rate_from) * share
                return Load(p.name, rate, p.service, p.errors)
            start += p.seconds
        return None

    def starts(self) -> list[tuple[str, float]]:
        """Each phase's name and start time."""
        found, start = [], 0.0
        for p in self.phases:
            found.append((p.name, start))
            start += p.seconds
        return found

    def stretched(self, duration: float) -> Scenario:
        """The same phases scaled to last ``duration`` seconds in all."""
        factor = duration / self.duration
        return replace(
            self, phases=tuple(replace(p, seconds=p.seconds * factor) for p in self.phases)
        )


SCENARIOS = {
    "quick": Scenario(
        "quick",
        (
            Phase("idle", 10, 0, 0),
            Phase("ramp", 20, 5, 40),
            Phase("burst", 20, 100, 100),
            Phase("error fault", 40, 40, 40, errors=0.3),
            Phase("recovery", 20, 30, 30),
            Phase("idle", 50, 0, 0),
        ),
        time_scale=10.0,
        stable_window="10s",
        panic_window="2s",
    ),
    "full": Scenario(
        "full",
        (
            Phase("idle", 30, 0, 0),
            Phase("ramp", 120, 5, 40),
            Phase("burst", 90, 100, 100),
            Phase("error fault", 300, 40, 40, errors=0.3),
            Phase("recovery", 600, 30, 30),
            Phase("idle", 240, 0, 0),
        ),
        time_scale=1.0,
        stable_window="60s",
        panic_window="6s",
    ),
}

"""Leader election rules on a ``coordination.k8s.io/v1`` Lease, as client-go's. Pure, no I/O.

A candidate may take the Lease when nobody holds it, when it holds it itself, or when the
holder has not renewed it for ``leaseDurationSeconds`` *as this candidate observed it*: the
time is the candidate's own monotonic clock at the moment it last saw the record change, so
clock skew between replicas does not matter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def micro_time(moment: datetime) -> str:
    """A ``MicroTime`` as the API server writes it."""
    return moment.astimezone(UTC).strftime(MICRO_TIME)


@dataclass
class Observer:
    """What one candidate last saw of the Lease, and when (monotonic seconds)."""

    record: tuple[Any, ...] | None = None
    seen_at: float = field(default=0.0)

    def observe(self, spec: Mapping[str, Any] | None, now: float) -> None:
        record = _record(spec)
        if record != self.record:
            self.record, self.seen_at = record, now

    def may_take(self, spec: Mapping[str, Any] | None, identity: str, now: float) -> bool:
        """True when ``identity`` may write itself into the Lease now (call
        :meth:`observe` first)."""
        holder = (spec or {}).get("holderIdentity") or ""
        if not holder or holder == identity:
            return True
        duration = float((spec or {}).get("leaseDurationSeconds") or 0)
        return now >= self.seen_at + duration


def _record(spec: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    if spec is None:
        return None
    keys = ("holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime")
    return (*(spec.get(k) for k in keys), spec.get("leaseTransitions"))


def taken(
    spec: Mapping[str, Any] | None, identity: str, duration: int, wall: datetime
) -> dict[str, Any]:
    """The Lease spec with ``identity`` holding it, renewed at ``wall``. ``spec`` is the
    Lease's spec as read, ``None`` when there is no Lease yet (created with 0 transitions).
    As client-go's ``tryAcquireOrRenew``: taking it from any other holder, an empty
    (released) one too, counts a transition and a new acquire time; a renewal keeps both."""
    old = dict(spec or {})
    now = micro_time(wall)
    transitions = int(old.get("leaseTransitions") or 0)
    if old.get("holderIdentity") == identity:
        acquired = old.get("acquireTime") or now
    else:
        acquired = now
        transitions += 0 if spec is None else 1
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": acquired,
        "renewTime": now,
        "leaseTransitions": transitions,
    }


def released(spec: Mapping[str, Any], wall: datetime) -> dict[str, Any]:
    """The Lease given up on shutdown: no holder, so the next candidate takes it at once."""
    return {**spec, "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": micro_time(wall)}

"""The replicas and the event loop, in virtual time. Pure, deterministic for a seed.

Each ready replica serves up to ``containerConcurrency`` requests at once (0: unlimited).
Requests wait in one FIFO queue for a free slot: the activator / interceptor / broker in
front of the function, which also holds them while there is no replica. A request whose
total time would pass the timeout is cut at the timeout and counted as timed out. A new
replica serves after a cold start drawn uniformly from ``cold_start``; a removed replica
takes no new request and finishes those it holds.

Once a second the loop records what the pods expose (:class:`Record`) and asks the policy
(:class:`Controller`) for the replica count, which it applies at once. The loop keeps no
object per request: arrivals and service times are lists, the running requests a heap of
finish times, the queue a deque of indices.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ofobserve.simulate.model import FloatArray, Params, Traffic

#: Upper bounds (seconds) of the latency histogram the pods expose, as a Prometheus
#: histogram's ``le`` buckets (the last is +Inf).
BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0,
    1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, math.inf,
)  # fmt: skip


@dataclass
class Record:
    """Per second ``t`` (index), what the pods and the cluster show at ``t``."""

    in_system: list[int] = field(default_factory=list)  # requests held: running + queued
    concurrency: list[float] = field(default_factory=list)  # its mean over (t-1, t]
    arrived: list[int] = field(default_factory=list)  # cumulative counters
    finished: list[int] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)  # slot-seconds in service, cumulative
    histogram: list[tuple[int, ...]] = field(default_factory=list)  # cumulative, per bucket
    #: What the function process itself sees (the native profile): requests it started
    #: (cumulative), requests running in it now, and its handler-time histogram (service
    #: only, no queue wait; cumulative, per bucket).
    started: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    handler: list[tuple[int, ...]] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    replicas: list[int] = field(default_factory=list)  # asked for: ready + starting


class Controller(Protocol):
    """A policy as the loop sees it: once a second, the replicas it wants (``None``: no
    change). ``histogram``: whether it reads the latency histogram (recorded only then)."""

    name: str
    histogram: bool

    def initial(self) -> int: ...

    def tick(self, now: int, record: Record) -> int | None: ...


@dataclass
class Run:
    """What happened to every request and to the replicas."""

    policy: str
    latencies: FloatArray  # per request, in arrival order; the timeout for timed-out ones
    timed_out: int
    record: Record
    cold_starts: int
    scale_events: int


def simulate(
    traffic: Traffic, params: Params, controller: Controller, cold_rng: np.random.Generator
) -> Run:
    """Replay ``traffic`` under ``controller``.

    The integrals over each second (requests held, slots busy) are kept without tracking the
    time of the last event: a change of +1 at ``now`` adds ``end - now`` to the second that
    ends at ``end``, on top of the count the second started with."""
    arrivals: list[float] = traffic.arrivals.tolist()
    services: list[float] = traffic.services.tolist()
    n = len(arrivals)
    latencies = [0.0] * n
    timeout = params.timeout
    per_replica = params.container_concurrency if params.container_concurrency > 0 else 1 << 40
    low, high = params.cold_start
    want_histogram = controller.histogram
    bounds = list(BUCKETS)
    counts = [0] * len(bounds)
    handler = [0] * len(bounds)
    last_bucket = len(bounds) - 1
    heappush, heappop = heapq.heappush, heapq.heappop

    rec = Record()
    running: list[float] = []  # finish times
    starting: list[float] = []  # ready times of replicas in their cold start (a heap)
    queue: deque[int] = deque()
    ready = controller.initial()
    slots = ready * per_replica
    busy = 0
    timed_out = cold_starts = scale_events = 0
    finished = 0
    started = 0
    busy_total = 0.0
    i = 0
    inf = math.inf
    next_arrival = arrivals[0] if n else inf
    next_ready = inf
    horizon = math.ceil(traffic.duration + timeout) + 1

    for second in range(horizon + 1):
        end = float(second)
        area = float(busy + len(queue))  # what the second started with, for 1 s
        busy_area = float(busy)
        while True:
            t_run = running[0] if running else inf
            if next_arrival <= t_run and next_arrival <= next_ready:
                now = next_arrival
                if now >= end:
                    break
                area += end - now
                if busy < slots and not queue:
                    total = services[i]
                    if total > timeout:
                        total = timeout
                        timed_out += 1
                    latencies[i] = total
                    heappush(running, now + total)
                    busy += 1
                    finished += 1
                    started += 1
                    busy_area += end - now
                    if want_histogram:
                        counts[bisect_left(bounds, total)] += 1
                        handler[bisect_left(bounds, total)] += 1
                else:
                    queue.append(i)
                i += 1
                next_arrival = arrivals[i] if i < n else inf
                continue
            if t_run <= next_ready:
                now = t_run
                if now >= end:
                    break
                heappop(running)
                busy -= 1
                area -= end - now
                busy_area -= end - now
            else:
                now = next_ready
                if now >= end:
                    break
                heappop(starting)
                next_ready = starting[0] if starting else inf
                ready += 1
                slots += per_replica
            while queue and busy < slots:  # a slot is free: the queue's head takes it
                j = queue.popleft()
                waited = now - arrivals[j]
                if waited >= timeout:
                    latencies[j] = timeout
                    timed_out += 1
                    finished += 1
                    area -= end - now
                    if want_histogram:
                        counts[last_bucket] += 1
                    continue
                total = waited + services[j]
                if total > timeout:
                    total = timeout
                    timed_out += 1
                latencies[j] = total
                heappush(running, arrivals[j] + total)
                busy += 1
                finished += 1
                started += 1
                busy_area += end - now
                if want_histogram:
                    counts[bisect_left(bounds, total)] += 1
                    handler[bisect_left(bounds, min(services[j], total))] += 1
        # The second is over: expire what waited too long, then record.
        while queue and end - arrivals[queue[0]] >= timeout:
            j = queue.popleft()
            latencies[j] = timeout
            timed_out += 1
            finished += 1
            area -= end - (arrivals[j] + timeout)
            if want_histogram:
                counts[last_bucket] += 1
        busy_total += busy_area
        rec.in_system.append(busy + len(queue))
        rec.concurrency.append(area)
        rec.arrived.append(i)
        rec.finished.append(finished)
        rec.busy.append(busy_total)
        rec.started.append(started)
        rec.running.append(busy)
        if want_histogram:
            rec.histogram.append(tuple(counts))
            rec.handler.append(tuple(handler))
        rec.ready.append(ready)
        rec.replicas.append(ready + len(starting))

        if i >= n and not queue and not running and second >= traffic.duration:
            break
        wanted = controller.tick(second, rec)
        current = ready + len(starting)
        if wanted is None or wanted == current:
            continue
        wanted = max(0, min(wanted, params.max_replicas))
        if wanted == current:
            continue
        scale_events += 1
        if wanted > current:
            for _ in range(wanted - current):
                starting.append(end + low + (high - low) * float(cold_rng.random()))
                cold_starts += 1
            heapq.heapify(starting)
        else:
            remove = current - wanted
            if starting:  # the replicas still starting go first, the latest of them first
                starting.sort()
                cut = min(remove, len(starting))
                del starting[len(starting) - cut :]
                remove -= cut
            ready -= remove
            slots = ready * per_replica
        next_ready = starting[0] if starting else inf
    # What is still waiting at the end never got an answer.
    while queue:
        latencies[queue.popleft()] = timeout
        timed_out += 1
    return Run(
        controller.name,
        np.asarray(latencies, dtype=np.float64),
        timed_out,
        rec,
        cold_starts,
        scale_events,
    )

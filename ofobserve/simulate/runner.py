"""One simulation per policy on the same traffic. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ofobserve.simulate import cluster, policies
from ofobserve.simulate.cluster import Controller, Run
from ofobserve.simulate.model import Params, Traffic
from ofobserve.simulate.traffic import rng_for


def warm_replicas(params: Params, traffic: Traffic) -> int:
    """Replicas for the first minute's offered load at the concurrency target (at least 1),
    so that no policy starts from a backlog the trace did not have."""
    first = traffic.arrivals < 60.0
    offered = float(np.sum(traffic.services[first])) / 60.0
    per_replica = params.concurrency_target * params.target_utilization
    return max(1, math.ceil(offered / per_replica))


def resolved(params: Params, traffic: Traffic) -> Params:
    """``params`` with the defaults that depend on the traffic filled in."""
    if params.initial_replicas is None:
        return replace(params, initial_replicas=warm_replicas(params, traffic))
    return params


def controller_for(name: str, params: Params, traffic: Traffic) -> Controller:
    if name == "ofobserve":
        return policies.Ofobserve(params)
    if name == "kpa":
        return policies.KnativeKpa(params)
    if name == "keda-prometheus":
        mean = float(np.mean(traffic.services)) if len(traffic.services) else 0.1
        threshold = params.keda_threshold or policies.default_threshold(params, mean)
        return policies.KedaPrometheus(params, threshold)
    if name == "hpa-cpu":
        return policies.HpaCpu(params)
    raise ValueError(f"unknown policy {name!r}")


def run_policies(traffic: Traffic, params: Params, names: Sequence[str]) -> list[Run]:
    """Each policy on ``traffic``. Common random numbers: every policy draws its cold
    starts from the same stream of the seed, so the k-th replica started takes as long
    under each policy and the difference between policies is theirs, not the draw's."""
    params = resolved(params, traffic)
    return [
        cluster.simulate(
            traffic,
            params,
            controller_for(name, params, traffic),
            rng_for(params.seed, "cold-starts"),
        )
        for name in names
    ]

"""The replica controller: a stand-in for KEDA and the HPA. Does I/O (gRPC, processes).

It runs the simulator's model of them (:mod:`ofobserve.simulate.pipeline`) against the
real scaler, over the real external-scaler gRPC API, with the ScaledObject ``ofobserve
render`` wrote for the demo function:

- KEDA (kedacore/keda ``pkg/scaling/executor/scale_scaledobjects.go``): every
  ``pollingInterval`` it asks each trigger whether the function is active (the scaler's
  ``IsActive``; the kafka trigger: lag > 0); active at 0 replicas scales to 1; inactive
  for ``cooldownPeriod`` since the last active poll scales to 0. The scaler's
  ``StreamIsActive`` push wakes a function at zero at once (the ``external-push``
  trigger).
- The HPA (kubernetes/kubernetes ``pkg/controller/podautoscaler``): every sync period,
  one ``AverageValue`` recommendation per metric (the scaler's ``GetMetrics`` against
  ``GetMetricSpec``'s target; the kafka lag against ``lagThreshold``), the largest wins,
  within the tolerance, ``minReplicas`` 1 and ``maxReplicaCount``, and the behavior render
  writes (no stabilization, 1000 % per 15 s up).

Replicas are real processes: a new one is ready when its port answers; one being removed
takes no new events and stops when its events are done (SIGTERM), as a terminating pod
leaves the endpoints first. The scaler finds the ready replicas in its ``--targets``
file, Prometheus in a ``file_sd`` file; both are rewritten atomically on every change.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from ofobserve.demo.broker import Broker, Replica
from ofobserve.demo.processes import Child, Children, free_port, python, write_atomic
from ofobserve.scaler.proto import externalscaler_pb2 as pb
from ofobserve.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from ofobserve.simulate.model import Pipeline
from ofobserve.simulate.pipeline import Hpa, Keda

TICK = 0.25
#: kube-controller-manager's ``--horizontal-pod-autoscaler-sync-period`` default.
HPA_SYNC_SECONDS = 15.0
DRAIN_TIMEOUT = 10.0


@dataclass(frozen=True)
class ScaledObject:
    """What the controller takes from the rendered ScaledObject (docs/demo.md)."""

    namespace: str
    name: str
    metadata: dict[str, str]  # the external-push trigger's
    polling_interval: float
    cooldown_period: float
    min_replicas: int
    max_replicas: int
    lag_threshold: float | None  # the kafka trigger's, if any
    concurrency: int  # events one replica takes at once


@dataclass
class Event:
    """One change the controller made or saw, for the timeline and the summary."""

    at: float
    what: str


@dataclass
class ReplicaController:
    scaled: ScaledObject
    broker: Broker
    children: Children
    channel: grpc.aio.Channel
    work: Path
    time_scale: float
    clock: Callable[[], float] = time.monotonic
    desired: int = 0
    events: list[Event] = field(default_factory=list)
    #: The scaler's newest answers: GetMetrics' value and IsActive.
    metric: float | None = None
    active: bool = False
    errors: int = 0
    last_error: str = ""
    _children: dict[str, Child] = field(default_factory=dict)
    _serial: int = 0
    _started: float = 0.0

    def __post_init__(self) -> None:
        k = self.time_scale
        self.pipeline = Pipeline(
            polling_interval=self.scaled.polling_interval / k,
            cooldown_period=self.scaled.cooldown_period / k,
            hpa_sync=max(HPA_SYNC_SECONDS / k, TICK),
        )
        self.keda = Keda(self.pipeline)
        self.hpa = Hpa(
            self.pipeline, self.scaled.max_replicas, 0.0, 0.0, up_factor=11.0, up_minimum=0
        )
        self.stub = pb_grpc.ExternalScalerStub(self.channel)
        self.ref = pb.ScaledObjectRef(
            name=self.scaled.name,
            namespace=self.scaled.namespace,
            scalerMetadata=self.scaled.metadata,
        )
        self.targets_file = self.work / "scaler-targets.json"
        self.sd_file = self.work / "function-targets.json"
        self._publish()

    @property
    def ready(self) -> int:
        return sum(1 for r in self.broker.replicas if r.ready and not r.draining)

    def note(self, what: str) -> None:
        self.events.append(Event(self.clock() - self._started, what))

    async def run(self, started: float) -> None:
        self._started = started
        spec = await self.stub.GetMetricSpec(self.ref, timeout=10)
        target = spec.metricSpecs[0].targetSizeFloat or float(spec.metricSpecs[0].targetSize)
        metric_name = spec.metricSpecs[0].metricName
        stream = asyncio.create_task(self._stream())
        next_poll = next_sync = self.clock()
        try:
            while True:
                now = self.clock()
                if now >= next_poll:
                    next_poll = now + self.pipeline.polling_interval
                    await self._poll(now)
                if now >= next_sync:
                    next_sync = now + self.pipeline.hpa_sync
                    if self.desired > 0:
                        await self._sync(now, target, metric_name)
                await self._converge()
                await asyncio.sleep(TICK)
        finally:
            stream.cancel()

    async def _stream(self) -> None:
        """KEDA's ``external-push``: an active push at zero scales to 1 at once."""
        while True:
            try:
                async for answer in self.stub.StreamIsActive(self.ref):
                    self.active = answer.result
                    if answer.result and self.desired == 0:
                        self._scale(1, "the scaler pushed active (StreamIsActive)")
            except grpc.aio.AioRpcError as exc:
                self._failed(f"StreamIsActive: {exc.code().name}: {exc.details()}")
            await asyncio.sleep(1.0)

    async def _poll(self, now: float) -> None:
        lagging = self.scaled.lag_threshold is not None and self.broker.lag > 0
        try:
            answer = await self.stub.IsActive(self.ref, timeout=5)
            self.active = answer.result
        except grpc.aio.AioRpcError as exc:
            self._failed(f"IsActive: {exc.code().name}: {exc.details()}")
        active = self.active or lagging
        change = self.keda.poll(now, active, self.desired)
        if change == 1:
            why = "the scaler says active" if self.active else "kafka lag > 0"
            self._scale(1, f"KEDA poll: {why}")
        elif change == 0:
            self._scale(0, "KEDA: inactive for the cooldown period")

    async def _sync(self, now: float, target: float, metric_name: str) -> None:
        current = self.desired
        recommendations = []
        try:
            answer = await self.stub.GetMetrics(
                pb.GetMetricsRequest(scaledObjectRef=self.ref, metricName=metric_name), timeout=5
            )
            value = answer.metricValues[0].metricValueFloat
            self.metric = value
            recommendations.append(self.hpa.average_value(value, target, current))
        except grpc.aio.AioRpcError as exc:
            # The HPA keeps the replicas when a metric cannot be read.
            self._failed(f"GetMetrics: {exc.code().name}: {exc.details()}")
            self.metric = None
        if self.scaled.lag_threshold is not None:
            lag = float(self.broker.lag)
            recommendations.append(self.hpa.average_value(lag, self.scaled.lag_threshold, current))
        if not recommendations:
            return
        wanted = self.hpa.sync(now, max(recommendations), current)
        if wanted != current:
            self._scale(wanted, f"HPA: {current} -> {wanted}")

    def _failed(self, message: str) -> None:
        self.errors += 1
        if message != self.last_error:
            self.last_error = message
            self.note(f"error: {message}")

    def _scale(self, replicas: int, why: str) -> None:
        if replicas == self.desired:
            return
        replicas = max(0, min(replicas, self.scaled.max_replicas))
        self.note(f"desired {self.desired} -> {replicas} ({why})")
        self.desired = replicas

    async def _converge(self) -> None:
        """Start or drain replicas towards :attr:`desired`; drop the dead and the drained."""
        live = [r for r in self.broker.replicas if not r.draining]
        for replica in live[self.desired :]:
            replica.draining = True
        for _ in range(self.desired - len(live)):
            self._start_replica()
        changed = False
        for replica in list(self.broker.replicas):
            child = self._children[replica.name]
            starting = not replica.ready and not replica.draining and child.alive()
            if starting and _answers(replica.port):
                replica.ready = changed = True
                self.broker.wake()
            gone = not child.alive() and not replica.draining
            drained = replica.draining and (replica.busy == 0 or self._drain_expired(replica))
            if gone or drained:
                self.broker.replicas.remove(replica)
                del self._children[replica.name]
                self.children.stop(child)
                if gone:
                    self.note(f"{replica.name} exited ({child.process.returncode})")
                changed = True
        if changed:
            self._publish()

    def _drain_expired(self, replica: Replica) -> bool:
        if replica.drain_since is None:
            replica.drain_since = self.clock()
        return self.clock() - replica.drain_since > DRAIN_TIMEOUT

    def _start_replica(self) -> None:
        self._serial += 1
        name = f"demo-{self._serial}"
        port, metrics = free_port(), free_port()
        child = self.children.start(
            name,
            [python(), "-m", "ofobserve.demo.function", str(port), str(metrics),
             str(self.broker.control)],
            env={"OTEL_SDK_DISABLED": "true", "POD_NAME": name, "POD_NAMESPACE": "demo"},
        )  # fmt: skip
        self._children[name] = child
        self.broker.replicas.append(Replica(name, port, metrics, self.scaled.concurrency))

    def _publish(self) -> None:
        """Where the ready replicas' metrics are: for the scaler and for Prometheus."""
        ready = [r for r in self.broker.replicas if r.ready and not r.draining]
        key = f"{self.scaled.namespace}/{self.scaled.name}"
        endpoints = [f"127.0.0.1:{r.metrics_port}" for r in ready]
        write_atomic(
            self.targets_file, json.dumps({key: {"metrics": endpoints, "ready": len(ready)}})
        )
        write_atomic(
            self.sd_file,
            json.dumps(
                [
                    {
                        "targets": [f"127.0.0.1:{r.metrics_port}"],
                        "labels": {"namespace": self.scaled.namespace, "pod": r.name},
                    }
                    for r in ready
                ]
            ),
        )

    def stop_all(self) -> None:
        for child in self._children.values():
            self.children.stop(child)
        self._children.clear()
        self.broker.replicas.clear()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def scaled_object(
    rendered: dict[str, Any], manifest: dict[str, Any], concurrency: int
) -> ScaledObject:
    """The :class:`ScaledObject` from render's scaling patch and the Function manifest
    (OpenFunction merges the two into the ScaledObject it makes)."""
    keda_patch = rendered["spec"]["serving"]["scaleOptions"]["keda"]
    options = manifest["spec"]["serving"]["scaleOptions"]
    own = options.get("keda", {}).get("scaledObject", {})
    triggers = keda_patch["triggers"]
    ours = next(t for t in triggers if t.get("type") == "external-push")
    kafka = next((t for t in triggers if t.get("type") == "kafka"), None)
    meta = rendered["metadata"]
    return ScaledObject(
        namespace=meta["namespace"],
        name=meta["name"],
        metadata={str(k): str(v) for k, v in ours["metadata"].items()},
        polling_interval=float(own.get("pollingInterval", 30)),
        cooldown_period=float(own.get("cooldownPeriod", 300)),
        min_replicas=int(options.get("minReplicas", 0)),
        max_replicas=int(options.get("maxReplicas", 10)),
        lag_threshold=float(kafka["metadata"]["lagThreshold"]) if kafka else None,
        concurrency=concurrency,
    )

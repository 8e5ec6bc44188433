"""The gRPC server KEDA talks to: ExternalScaler, health, reflection, TLS, shutdown. Does I/O.

Every handler answers from the engine's memory. Bad metadata is ``INVALID_ARGUMENT`` naming
the key; stale data is ``UNAVAILABLE`` (KEDA then applies the ScaledObject's ``fallback``);
anything unexpected is logged and returned as ``INTERNAL`` without its details.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ofobserve import conventions as c
from ofobserve.scaler.config import MetadataError, ScalerConfig, parse_metadata
from ofobserve.scaler.engine import Engine, Unavailable
from ofobserve.scaler.proto import externalscaler_pb2 as pb
from ofobserve.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from ofobserve.scaler.telemetry import ScalerMetrics
from ofobserve.scaler.tls import TLS

log = logging.getLogger("ofobserve.scaler")
R = TypeVar("R")
#: Seconds between two samples of the event-loop lag probe.
LAG_INTERVAL = 0.1


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _config(ref: pb.ScaledObjectRef) -> ScalerConfig:
    try:
        return parse_metadata(ref.name, ref.namespace, dict(ref.scalerMetadata))
    except MetadataError as exc:
        raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None


def _unary(
    method: str,
) -> Callable[
    [Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]],
    Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]],
]:
    """Record the RPC's code and duration; map refusals and surprises to gRPC statuses."""

    def wrap(
        handler: Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]],
    ) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]:
        @functools.wraps(handler)
        async def run(self: Scaler, request: Any, context: grpc.aio.ServicerContext) -> R:
            started, code = time.perf_counter(), grpc.StatusCode.OK
            try:
                return await handler(self, request, context)
            except _Refused as exc:
                code = exc.code
                await context.abort(exc.code, exc.message)
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("%s failed", method)
                await context.abort(code, "internal error; see the scaler's log")
            finally:
                self.metrics.rpc(method, "unary", code.name, time.perf_counter() - started)
            raise AssertionError("unreachable")  # context.abort always raises

        return run

    return wrap


class Scaler(pb_grpc.ExternalScalerServicer):
    def __init__(
        self,
        engine: Engine,
        metrics: ScalerMetrics,
        stopping: asyncio.Event,
        namespaces: frozenset[str] = frozenset(),
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.stopping = stopping
        self.namespaces = namespaces

    def _config(self, ref: pb.ScaledObjectRef) -> ScalerConfig:
        """The metadata, validated; a function outside ``--watch-namespace`` is refused at
        once (its pods could not be listed: the RBAC covers the watched namespaces only)."""
        config = _config(ref)
        if self.namespaces and config.namespace not in self.namespaces:
            watched = ", ".join(sorted(self.namespaces))
            raise _Refused(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"namespace {config.namespace!r} is not watched by this scaler "
                f"(--watch-namespace: {watched})",
            )
        return config

    def _spec(self, config: ScalerConfig) -> pb.GetMetricSpecResponse:
        return pb.GetMetricSpecResponse(
            metricSpecs=[
                pb.MetricSpec(metricName=config.metric_name, targetSize=1, targetSizeFloat=1)
            ]
        )

    async def _decide(self, config: ScalerConfig) -> Any:
        entry = await self.engine.ensure(config)
        try:
            return self.engine.decision(entry)
        except Unavailable as exc:
            raise _Refused(grpc.StatusCode.UNAVAILABLE, str(exc)) from None

    @_unary("GetMetricSpec")
    async def GetMetricSpec(  # noqa: N802 (gRPC's names)
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext
    ) -> pb.GetMetricSpecResponse:
        config = self._config(request)
        self.engine.register(config)  # start reading it; the spec itself needs no data
        return self._spec(config)

    @_unary("GetMetrics")
    async def GetMetrics(  # noqa: N802
        self, request: pb.GetMetricsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMetricsResponse:
        config = self._config(request.scaledObjectRef)
        value = (await self._decide(config)).value
        name = request.metricName or config.metric_name
        return pb.GetMetricsResponse(
            metricValues=[
                pb.MetricValue(metricName=name, metricValue=value, metricValueFloat=float(value))
            ]
        )

    @_unary("IsActive")
    async def IsActive(  # noqa: N802
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext
    ) -> pb.IsActiveResponse:
        return pb.IsActiveResponse(result=(await self._decide(self._config(request))).active)

    async def StreamIsActive(  # noqa: N802
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.IsActiveResponse]:
        """The current state at once, then ``true`` on each transition into active."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            config = self._config(request)
            entry = await self.engine.ensure(config)
            queue = self.engine.subscribe(entry)
            stop = asyncio.ensure_future(self.stopping.wait())
            try:
                with self.engine.hold(entry):  # an open stream keeps the function registered
                    current = entry.decision.active if entry.decision else False
                    yield pb.IsActiveResponse(result=current)
                    while not stop.done():
                        getter = asyncio.ensure_future(queue.get())
                        try:
                            await asyncio.wait({getter, stop}, return_when=asyncio.FIRST_COMPLETED)
                        finally:
                            getter.cancel()
                        if getter.done() and not getter.cancelled():
                            yield pb.IsActiveResponse(result=True)
            finally:
                stop.cancel()
                entry.subscribers.discard(queue)
        except _Refused as exc:
            code = exc.code
            await context.abort(exc.code, exc.message)
        finally:
            self.metrics.rpc(
                "StreamIsActive", "server_stream", code.name, time.perf_counter() - started
            )

    async def StreamMetricSpec(  # noqa: N802
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GetMetricSpecResponse]:
        """The spec at once (equal to GetMetricSpec's), then nothing until it changes: it
        only changes with the metadata, and new metadata opens a new stream."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            config = self._config(request)
            with self.engine.hold(self.engine.register(config)):
                yield self._spec(config)
                await self.stopping.wait()
        except _Refused as exc:
            code = exc.code
            await context.abort(exc.code, exc.message)
        finally:
            self.metrics.rpc(
                "StreamMetricSpec", "server_stream", code.name, time.perf_counter() - started
            )


class Health(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """``grpc.health.v1.Health``. Unlike grpcio-health-checking's servicer, ``Watch`` streams
    end after sending NOT_SERVING on shutdown, so they do not hold the drain for its whole
    grace period."""

    def __init__(self) -> None:
        self.status: dict[str, int] = {}
        self.changed = asyncio.Condition()
        self.closing = False

    async def set(self, service: str, status: int) -> None:
        async with self.changed:
            self.status[service] = status
            self.changed.notify_all()

    async def close(self) -> None:
        """Every service NOT_SERVING, and every Watch stream ends."""
        async with self.changed:
            for service in self.status:
                self.status[service] = health_pb2.HealthCheckResponse.NOT_SERVING
            self.closing = True
            self.changed.notify_all()

    async def Check(  # noqa: N802
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        if request.service not in self.status:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=self.status[request.service])

    async def Watch(  # noqa: N802
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        unknown = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        last = None
        while True:
            async with self.changed:
                status, closing = self.status.get(request.service, unknown), self.closing
                if status == last and not closing:
                    await self.changed.wait()
                    continue
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            if closing:
                return


async def serve(
    engine: Engine,
    metrics: ScalerMetrics,
    listen: str,
    *,
    tls: TLS | None = None,
    health_listen: str | None = None,
    namespaces: frozenset[str] = frozenset(),
    grace: float = 10.0,
    ready: Callable[[int], None] = lambda port: None,
    stop: asyncio.Event | None = None,
    lag_interval: float = LAG_INTERVAL,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop``): then NOT_SERVING, drain for ``grace``
    seconds, stop the refresh loop and return. Every ``lag_interval`` seconds a probe
    records how late the event loop woke (``ofobserve_scaler_event_loop_lag_seconds``).

    ``health_listen`` adds a plaintext port that serves ``grpc.health.v1`` alone: the
    kubelet's native gRPC probe cannot speak TLS, and the ExternalScaler service must not
    be reachable without it."""
    stopping = stop or asyncio.Event()
    server = grpc.aio.server()
    pb_grpc.add_ExternalScalerServicer_to_server(
        Scaler(engine, metrics, stopping, namespaces), server
    )
    health = Health()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = (c.SCALER_GRPC_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
    reflection.enable_server_reflection((*names, reflection.SERVICE_NAME), server)
    port = (
        server.add_secure_port(listen, tls.credentials())
        if tls
        else server.add_insecure_port(listen)
    )
    servers = [server]
    if health_listen:
        probes = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health, probes)
        health_port = probes.add_insecure_port(health_listen)
        servers.append(probes)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stopping.set)
    for each in servers:
        await each.start()
    for name in ("", c.SCALER_GRPC_SERVICE):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    refresher = asyncio.create_task(engine.run(stopping))
    prober = asyncio.create_task(probe_lag(metrics, lag_interval))
    log.info("listening on %s (port %d)", listen, port)
    if health_listen:
        log.info("health checks in plaintext on %s (port %d)", health_listen, health_port)
    ready(port)
    await stopping.wait()
    log.info("stopping: health NOT_SERVING, draining for up to %g s", grace)
    await health.close()
    await asyncio.gather(*(each.stop(grace) for each in servers))
    prober.cancel()
    await refresher
    log.info("stopped")


async def probe_lag(metrics: ScalerMetrics, interval: float) -> None:
    """Sleep ``interval`` seconds, again and again, and record how much later than that
    the loop resumed: the time a callback (an RPC's completion) waited behind the work
    before it. epoll waits in whole milliseconds, rounded up (CPython ``Lib/selectors.py``,
    ``EpollSelector.select``), so a sample taken while the loop idles is up to 1 ms late
    by itself."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(interval)
        metrics.loop_lag.observe(max(loop.time() - asked - interval, 0.0))

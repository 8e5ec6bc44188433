"""``ofobserve.instrument``: native-profile metrics (and, when configured, traces) for Python
functions, as a decorator or as WSGI/ASGI middleware.

Does I/O: starts the metrics HTTP server (port 9464 unless told otherwise) on first use.
Metrics follow the metric contract of DESIGN.md and ``ofobserve.conventions``. The handler's
result and exceptions pass through unchanged; a failure of the instrumentation itself is
logged once and never reaches the function.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from ofobserve import conventions as c
from ofobserve import tracing
from ofobserve.profiles import NATIVE_DEFAULT_BUCKETS_S

log = logging.getLogger("ofobserve.instrument")
F = TypeVar("F", bound=Callable[..., Any])
BUCKETS_ENV = "OFOBSERVE_BUCKETS"  # extra bucket bounds (e.g. SLO thresholds), comma separated
PORT_ENV = "OFOBSERVE_METRICS_PORT"  # 0 disables the metrics server
FUNCTION_ENV = "OFOBSERVE_FUNCTION"
#: The signatures of OpenFunction's Python function frameworks, by first parameter name.
FORMS = {"context": "main", "ctx": "main", "request": "http", "req": "http", "event": "event"}


class InstrumentError(TypeError):
    """``instrument`` applied to something it cannot wrap (raised at decoration time)."""


def buckets(extra: Iterable[float] = (), env: dict[str, str] | None = None) -> tuple[float, ...]:
    """Default bounds plus ``extra`` and ``OFOBSERVE_BUCKETS``: every SLO threshold becomes
    a bound, so latency SLOs can be counted exactly."""
    env = dict(os.environ) if env is None else env
    found = set(NATIVE_DEFAULT_BUCKETS_S) | {float(b) for b in extra}
    for raw in filter(None, (part.strip() for part in env.get(BUCKETS_ENV, "").split(","))):
        try:
            value = float(raw)
        except ValueError:
            raise InstrumentError(f"{BUCKETS_ENV}: {raw!r} is not a number") from None
        if not value > 0:
            raise InstrumentError(f"{BUCKETS_ENV}: bucket bounds must be > 0 (got {raw!r})")
        found.add(value)
    return tuple(sorted(found))


@dataclass
class Metrics:
    """The native-profile metrics of one registry (shared by every handler using it)."""

    requests: Counter
    errors: Counter
    duration: Histogram
    in_flight: Gauge
    cold_starts: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, bounds: Sequence[float]) -> Metrics:
        fn = [c.FUNCTION_LABEL]
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        return cls(
            requests=Counter(
                c.NATIVE_REQUESTS_TOTAL.removesuffix("_total"),
                "Invocations by result code.",
                [*fn, "code"],
                registry=registry,
            ),
            errors=Counter(
                c.NATIVE_ERRORS_TOTAL.removesuffix("_total"),
                "Invocations that raised or answered 5xx.",
                fn,
                registry=registry,
            ),
            duration=Histogram(
                c.NATIVE_DURATION_SECONDS,
                "Invocation duration.",
                fn,
                buckets=bounds,
                registry=registry,
            ),
            in_flight=Gauge(
                c.NATIVE_IN_FLIGHT,
                "Invocations running now.",
                fn,
                registry=registry,
                multiprocess_mode="livesum" if multiprocess else "all",
            ),
            cold_starts=Counter(
                c.NATIVE_COLD_STARTS_TOTAL.removesuffix("_total"),
                "First invocation in this process.",
                fn,
                registry=registry,
            ),
        )


_lock = threading.Lock()
_metrics: dict[int, Metrics] = {}
_server_started = False
_warned = False


def _metrics_for(registry: CollectorRegistry, bounds: Sequence[float]) -> Metrics:
    with _lock:
        found = _metrics.get(id(registry))
        if found is None:
            found = _metrics[id(registry)] = Metrics.create(registry, bounds)
        return found


def start_metrics_server(port: int | None = None, registry: CollectorRegistry = REGISTRY) -> None:
    """Serve ``/metrics`` once per process (multi-process mode: every worker's files)."""
    global _server_started
    with _lock:
        if _server_started:
            return
        _server_started = True
    port = int(os.environ.get(PORT_ENV, c.NATIVE_METRICS_PORT)) if port is None else port
    if port == 0:
        return
    from prometheus_client import start_http_server

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, registry=registry)
    log.info("metrics on :%d%s", port, c.METRICS_PATH)


class Invocation:
    """One call's bookkeeping: in-flight, cold start, span, duration, code. Every metric and
    tracing step is guarded: a failure is logged once and never reaches the function."""

    __slots__ = ("code", "probe", "span", "started", "token")

    def __init__(self, probe: Probe, carriers: Sequence[Any], trigger: str) -> None:
        self.probe = probe
        self.code = "200"
        self.span: Any = None
        try:
            probe.in_flight.inc()
            cold = probe.cold and probe.first_call()
            if cold:
                probe.cold_starts.inc()
            if probe.tracer is not None:
                self._start_span(carriers, trigger, cold)
        except Exception:
            _warn()
        self.started = time.perf_counter()

    def _start_span(self, carriers: Sequence[Any], trigger: str, cold: bool) -> None:
        from opentelemetry import context, trace

        parent = tracing.extract(*carriers) if any(c is not None for c in carriers) else None
        kind = trace.SpanKind.SERVER if trigger == "http" else trace.SpanKind.CONSUMER
        span = self.probe.tracer.start_span(self.probe.function, context=parent, kind=kind)
        if span.is_recording():  # attributes only for spans that are kept
            span.set_attributes(
                {
                    "faas.trigger": trigger,
                    # the CloudEvent's id, else the span id (os.urandom, as uuid4 needs,
                    # costs 10 µs a call here; the SDK's ids are already random)
                    "faas.invocation_id": _cloudevent_id(carriers)
                    or f"{span.get_span_context().span_id:016x}",
                    "faas.coldstart": cold,
                    "faas.name": self.probe.function,
                }
            )
        self.span = span
        self.token = context.attach(trace.set_span_in_context(span))

    def fail(self, error: BaseException) -> None:
        self.code = "500"
        if self.span is not None:
            try:
                self.span.record_exception(error)
            except Exception:
                _warn()

    def finish(self) -> None:
        elapsed = time.perf_counter() - self.started
        probe, exemplar = self.probe, None
        failed = self.code.startswith("5")
        try:
            if self.span is not None:
                exemplar = self._end_span(failed)
            probe.duration.observe(elapsed, exemplar)
            probe.requests(self.code).inc(1, exemplar)
            if failed:
                probe.errors.inc()
            probe.in_flight.dec()
        except Exception:
            _warn()

    def _end_span(self, failed: bool) -> dict[str, str] | None:
        from opentelemetry import context

        span = self.span
        context.detach(self.token)
        if not span.is_recording():
            span.end()
            return None
        if failed:
            span.set_status(_error_status())
        span.end()
        return {"trace_id": f"{span.get_span_context().trace_id:032x}"}


def _warn() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.exception("ofobserve.instrument failed (the function is unaffected)")


def _error_status() -> Any:
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR)


def _cloudevent_id(carriers: Sequence[Any]) -> str | None:
    """The ``id`` of a CloudEvent among the carriers (an event has ``specversion``)."""
    for carrier in carriers:
        getter = getattr(carrier, "get", None)
        if not callable(getter):
            continue
        try:
            if getter("specversion"):
                value = getter("id")
                return value if isinstance(value, str) and value else None
        except Exception:
            continue
    return None


class Probe:
    """What every invocation of one instrumented callable shares: its labelled metrics
    (looked up once), the cold-start flag and the tracer."""

    def __init__(
        self,
        function: str,
        registry: CollectorRegistry | None,
        bounds: Sequence[float],
        start_server: bool,
        port: int | None,
    ) -> None:
        registry = registry if registry is not None else REGISTRY
        self.function = function
        self.metrics = m = _metrics_for(registry, bounds)
        self.in_flight = m.in_flight.labels(function)
        self.cold_starts = m.cold_starts.labels(function)
        self.duration = m.duration.labels(function)
        self.errors = m.errors.labels(function)
        self._requests: dict[str, Any] = {}
        self.cold = True
        self._cold_lock = threading.Lock()
        provider = tracing.setup(function)
        self.tracer: Any = provider.get_tracer("ofobserve.instrument") if provider else None
        if start_server:
            start_metrics_server(port, registry)

    def requests(self, code: str) -> Any:
        child = self._requests.get(code)
        if child is None:
            child = self._requests[code] = self.metrics.requests.labels(self.function, code)
        return child

    def first_call(self) -> bool:
        with self._cold_lock:
            cold, self.cold = self.cold, False
            return cold


def _status_of(result: Any) -> str:
    """HTTP status of a handler's result: a response object's, a ``(body, status)`` tuple's,
    else 200."""
    status = getattr(result, "status_code", None)
    if status is None and isinstance(result, tuple) and len(result) >= 2:
        status = result[1]
    return str(int(status)) if isinstance(status, int) else "200"


def _form(fn: Callable[..., Any]) -> str:
    """Which OpenFunction signature ``fn`` has; raises :class:`InstrumentError`."""
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params]
    if len(params) == 2 and names[0] in FORMS and (FORMS[names[0]] == "main" or names[1] in
                                                    ("context", "ctx")):  # fmt: skip
        return FORMS[names[0]]
    shown = f"{getattr(fn, '__name__', repr(fn))}({', '.join(names)})"
    raise InstrumentError(
        f"instrument: {shown} has an unsupported signature; expected main(context, data), "
        "handler(request, context) or event_handler(event, context)"
    )


@overload
def instrument(fn: F, /) -> F: ...


@overload
def instrument(
    fn: None = None,
    /,
    *,
    function: str | None = None,
    registry: CollectorRegistry | None = None,
    buckets: Iterable[float] = (),
    start_server: bool = True,
    port: int | None = None,
) -> Callable[[F], F]: ...


def instrument(
    fn: Any = None,
    /,
    *,
    function: str | None = None,
    registry: CollectorRegistry | None = None,
    buckets: Iterable[float] = (),
    start_server: bool = True,
    port: int | None = None,
) -> Any:
    """Instrument an OpenFunction handler: ``@instrument`` or ``@instrument(function=...)``.

    Forms: ``main(context, data)``, ``handler(request, context)``,
    ``event_handler(event, context)``, sync or async. ``function`` defaults to
    ``OFOBSERVE_FUNCTION``, then the handler's name; ``buckets`` adds bounds (also
    ``OFOBSERVE_BUCKETS``); metrics go to ``registry`` (default: prometheus-client's).
    """
    extra = tuple(buckets)

    def wrap(target: Any) -> Any:
        if not callable(target):
            raise InstrumentError(f"instrument: expected a function, got {type(target).__name__}")
        form = _form(target)
        name = function or os.environ.get(FUNCTION_ENV) or target.__name__
        probe = Probe(name, registry, _bounds(extra), start_server, port)
        trigger = "http" if form == "http" else "pubsub" if form == "event" else "other"

        def carriers(args: Sequence[Any]) -> list[Any]:
            if form == "main":  # main(context, data): the context may carry the event
                return [args[1], args[0]] if len(args) > 1 else list(args)
            return list(args[:1])

        if inspect.iscoroutinefunction(target):

            @functools.wraps(target)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                call = Invocation(probe, carriers(args), trigger)
                try:
                    result = await target(*args, **kwargs)
                except BaseException as error:
                    call.fail(error)
                    raise
                else:
                    call.code = _status_of(result)
                    return result
                finally:
                    call.finish()

            return run_async

        @functools.wraps(target)
        def run(*args: Any, **kwargs: Any) -> Any:
            call = Invocation(probe, carriers(args), trigger)
            try:
                result = target(*args, **kwargs)
            except BaseException as error:
                call.fail(error)
                raise
            else:
                call.code = _status_of(result)
                return result
            finally:
                call.finish()

        return run

    if fn is None:
        return wrap
    return wrap(fn)


def _bounds(extra: Sequence[float]) -> tuple[float, ...]:
    return buckets(extra)


def _middleware_probe(function: str, options: dict[str, Any]) -> Probe:
    """The probe of a middleware; ``options`` as :func:`instrument`'s keywords."""
    return Probe(
        function,
        options.get("registry"),
        buckets(options.get("buckets", ())),
        options.get("start_server", True),
        options.get("port"),
    )


class WSGIMiddleware:
    """``app = WSGIMiddleware(app, function="name")``: every request is one invocation."""

    def __init__(self, app: Callable[..., Any], *, function: str, **options: Any) -> None:
        self.app = app
        self.probe = _middleware_probe(function, options)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        call = Invocation(self.probe, [headers], "http")

        def capture(status: str, response_headers: Any, exc_info: Any = None) -> Any:
            call.code = status.split(" ", 1)[0]
            return start_response(status, response_headers, exc_info)

        try:
            body = self.app(environ, capture)
        except BaseException as error:
            call.fail(error)
            call.finish()
            raise
        return _Closing(body, call)


class _Closing:
    """The response body; the invocation ends when the server closes it."""

    def __init__(self, body: Iterable[bytes], call: Invocation) -> None:
        self.body, self.call = body, call

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.body
        except BaseException as error:
            self.call.fail(error)
            raise

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.call.finish()


class ASGIMiddleware:
    """``app = ASGIMiddleware(app, function="name")``: every HTTP request is one invocation;
    other scopes (lifespan, websocket) pass through."""

    def __init__(self, app: Callable[..., Any], *, function: str, **options: Any) -> None:
        self.app = app
        self.probe = _middleware_probe(function, options)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        call = Invocation(self.probe, [headers], "http")

        async def capture(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                call.code = str(message.get("status", 200))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException as error:
            call.fail(error)
            raise
        finally:
            call.finish()

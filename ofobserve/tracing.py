"""OpenTelemetry tracing for functions, configured from the standard ``OTEL_*`` variables.

Does I/O once configured: spans go to an OTLP endpoint (gRPC by default, the base install's
exporter; ``http/protobuf`` on request, with the ``otlp-http`` extra). Off unless
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set, and then :func:`setup`
returns ``None`` and costs nothing. Also: W3C ``traceparent``
extraction from HTTP headers and CloudEvents, and a JSON log formatter carrying
``trace_id``/``span_id``. OpenTelemetry loads on first use: the scaler formats its logs with
:class:`JSONLogFormatter` and runs without it (deploy/image does not install it).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry import context as otel_context
    from opentelemetry.propagators.textmap import Getter
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("ofobserve.tracing")
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOL_VARS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
PROTOCOLS = ("grpc", "http/protobuf")
_provider: Any = None


class TracingConfigError(ValueError):
    """A bad ``OTEL_*`` value, naming the variable."""


def _env(names: tuple[str, ...], env: Mapping[str, str]) -> tuple[str, str] | None:
    for name in names:
        if env.get(name):
            return name, env[name]
    return None


def endpoint(env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The configured OTLP endpoint and protocol, or ``None`` when tracing is off.
    Raises :class:`TracingConfigError` on a malformed URL or unknown protocol."""
    env = os.environ if env is None else env
    if (
        env.get("OTEL_SDK_DISABLED", "").lower() == "true"
        or env.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none"
    ):
        return None
    found = _env(ENDPOINT_VARS, env)
    if found is None:
        return None
    name, url = found
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise TracingConfigError(
            f"{name}: {url!r} is not an http(s) URL such as http://otel-collector:4317"
        )
    try:
        parsed.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise TracingConfigError(f"{name}: {url!r} has an invalid port") from None
    var, protocol = _env(PROTOCOL_VARS, env) or ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    if protocol not in PROTOCOLS:
        raise TracingConfigError(f"{var}: {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    return url, protocol


def setup(function: str = "", env: Mapping[str, str] | None = None) -> Any:
    """Configure the global tracer provider once; ``None`` when tracing is off.

    ``OTEL_SERVICE_NAME`` defaults to ``function``; ``POD_NAMESPACE`` and ``POD_NAME``
    (from the downward API) become ``k8s.namespace.name`` and ``k8s.pod.name``.
    """
    global _provider
    if _provider is not None:
        return _provider
    env = os.environ if env is None else env
    configured = endpoint(env)
    if configured is None:
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    url, protocol = configured
    exporter = _exporter(url, protocol, env)
    attributes = {"service.name": env.get("OTEL_SERVICE_NAME") or function or "function"}
    if function:
        attributes["faas.name"] = function
    for var, key in (("POD_NAMESPACE", "k8s.namespace.name"), ("POD_NAME", "k8s.pod.name")):
        if env.get(var):
            attributes[key] = env[var]
    resource = OTELResourceDetector().detect().merge(Resource.create(attributes))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    log.info("tracing to %s over %s", url, protocol)
    return provider


def use(provider: Any) -> None:
    """Trace with an application's own TracerProvider instead of the ``OTEL_*`` one; call it
    before decorating handlers."""
    global _provider
    _provider = provider


def _exporter(url: str, protocol: str, env: Mapping[str, str]) -> Any:
    if protocol == "grpc":  # the base install's exporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        secure = url.startswith("https://")
        return OTLPSpanExporter(endpoint=url, insecure=not secure)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HTTPSpanExporter,
        )
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(("opentelemetry", "requests", "google")):
            raise
        var = next((v for v in PROTOCOL_VARS if env.get(v)), PROTOCOL_VARS[-1])
        raise TracingConfigError(
            f"{var}: {protocol!r} needs the otlp-http extra ({exc.name} is missing): "
            "pip install 'ofobserve[otlp-http]'"
        ) from None

    path = "" if url.rstrip("/").endswith("/v1/traces") else "/v1/traces"
    return HTTPSpanExporter(endpoint=url.rstrip("/") + path)


@functools.cache
def _propagation() -> tuple[TraceContextTextMapPropagator, Getter[Any]]:
    """The W3C propagator and a getter for any carrier, built on first use."""
    from opentelemetry.propagators.textmap import Getter
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    class MappingGetter(Getter[Any]):
        """Reads a carrier that is a mapping, a headers object, or a CloudEvent."""

        def get(self, carrier: Any, key: str) -> list[str] | None:
            for name in (key, f"ce-{key}", f"ce_{key}"):
                value = _lookup(carrier, name)
                if value is not None:
                    return [value]
            return None

        def keys(self, carrier: Any) -> list[str]:
            return list(carrier.keys()) if hasattr(carrier, "keys") else []

    return TraceContextTextMapPropagator(), MappingGetter()


def _lookup(carrier: Any, key: str) -> str | None:
    for source in (carrier, getattr(carrier, "headers", None), _attributes(carrier)):
        if source is None:
            continue
        getter = getattr(source, "get", None)
        if getter is None:
            continue
        try:
            value = getter(key)
            if value is None and isinstance(source, Mapping):
                value = next((v for k, v in source.items() if str(k).lower() == key), None)
        except Exception:
            continue
        if isinstance(value, str) and value:
            return value
    return None


def _attributes(carrier: Any) -> Any:
    """A CloudEvent's attributes (cloudevents SDK objects expose ``get_attributes``)."""
    get = getattr(carrier, "get_attributes", None)
    return get() if callable(get) else None


def extract(*carriers: Any) -> otel_context.Context | None:
    """The remote parent from the first carrier with a ``traceparent`` (HTTP headers, a
    CloudEvent or its ``ce-`` headers), else ``None``."""
    from opentelemetry import trace

    propagator, getter = _propagation()
    for carrier in carriers:
        if carrier is None:
            continue
        ctx = propagator.extract(carrier, getter=getter)
        if trace.get_current_span(ctx).get_span_context().is_valid:
            return ctx
    return None


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) in hex of the active sampled span, or ``None``."""
    if "opentelemetry.trace" not in sys.modules:
        return None  # no span can be active: nothing has loaded OpenTelemetry's API
    from opentelemetry import trace

    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


class JSONLogFormatter(logging.Formatter):
    """One JSON object per line with ``trace_id`` and ``span_id`` when a span is active, so
    logs and traces join (Fluent Bit keeps them as fields)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = current_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)

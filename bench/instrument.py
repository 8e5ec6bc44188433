"""Benchmark: what ``ofobserve.instrument`` adds to one invocation. In process, no I/O
beyond stdout.

    .venv/bin/python bench/instrument.py [CALLS]      (default: 200000)

Measures, in one run, the same trivial handler bare, instrumented with tracing off, and
instrumented with tracing on (a real SDK TracerProvider with a BatchSpanProcessor whose
exporter drops the spans) both sampled and not sampled. The baseline of the same run is a
hand-written block of the raw prometheus-client calls one invocation needs (in-flight
inc/dec, histogram observe, counter inc).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ofobserve import tracing
from ofobserve.instrument import instrument


class _Drop(SpanExporter):
    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def per_call(fn: Callable[[Any, Any], Any], calls: int) -> float:
    """Best of three runs, in microseconds per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            fn(None, None)
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def handler(context: Any, data: Any) -> str:
    return "ok"


def raw_calls() -> Callable[[Any, Any], Any]:
    registry = CollectorRegistry()
    gauge = Gauge("g", "g", ["function"], registry=registry).labels("f")
    hist = Histogram("h", "h", ["function"], registry=registry).labels("f")
    count = Counter("c", "c", ["function", "code"], registry=registry).labels("f", "200")

    def run(context: Any, data: Any) -> str:
        gauge.inc()
        start = time.perf_counter()
        result = handler(context, data)
        hist.observe(time.perf_counter() - start)
        count.inc()
        gauge.dec()
        return result

    return run


def sdk_span_only(calls: int) -> Callable[[Any, Any], Any]:
    """The OpenTelemetry SDK's own cost of one sampled span (start, attach, four
    attributes, end): the floor for any instrumentation that traces with it."""
    from opentelemetry import context, trace

    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(BatchSpanProcessor(_Drop(), max_queue_size=calls))
    tracer = provider.get_tracer("bench")
    attributes = {"faas.trigger": "http", "faas.invocation_id": "x", "faas.coldstart": False,
                  "faas.name": "f"}  # fmt: skip

    def run(context_: Any, data: Any) -> str:
        span = tracer.start_span("f", attributes=attributes)
        token = context.attach(trace.set_span_in_context(span))
        result = handler(context_, data)
        context.detach(token)
        span.end()
        return result

    return run


def instrumented(sampler: Any | None, calls: int) -> Callable[[Any, Any], Any]:
    if sampler is None:
        tracing.use(None)
    else:
        provider = TracerProvider(sampler=sampler)
        # a queue large enough for the whole run: no "queue full" logging in the figures
        provider.add_span_processor(BatchSpanProcessor(_Drop(), max_queue_size=calls))
        tracing.use(provider)
    return instrument(registry=CollectorRegistry(), start_server=False)(handler)


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    bare = per_call(handler, calls)
    raw = per_call(raw_calls(), calls)
    off = per_call(instrumented(None, calls), calls)
    not_sampled = per_call(instrumented(ALWAYS_OFF, calls), calls // 4)
    sampled = per_call(instrumented(ALWAYS_ON, calls), calls // 4)
    sdk = per_call(sdk_span_only(calls), calls // 4)
    print(f"{calls} calls, best of 3, microseconds per invocation")
    print(f"  bare handler                          {bare:7.3f}")
    rows = (
        ("raw prometheus-client calls (baseline)", raw),
        ("instrumented, tracing off", off),
        ("instrumented, tracing on, not sampled", not_sampled),
        ("instrumented, tracing on, sampled", sampled),
        ("OTel SDK sampled span alone (floor)", sdk),
    )
    for label, value in rows:
        print(
            f"  {label:<38} {value:7.3f}   added {value - bare:7.3f}"
            f"   {(value - bare) / (raw - bare):4.1f}x the raw calls' cost"
        )


if __name__ == "__main__":
    main()

"""Metric profiles: where a function's requests, errors, latency and concurrency live, as PromQL.

Pure, no I/O. Dashboards, rules and the scaler all pick their queries here, so a profile's
metric names and units are written down once. Upstream facts: the fact sheet sections named
in each profile (``shared/reference/upstream-metrics.md``) and ``docs/metrics.md``.

Every selector matches ``namespace`` and ``function`` (set by the PodMonitor), plus any
extra matchers; label values are escaped so no value can change an expression.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ofobserve import conventions as c

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# fmt: off
# Knative gen A latency buckets, in milliseconds (fact sheet section 1).
KNATIVE_OPENCENSUS_BUCKETS_MS = (
    5, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 900,
    1000, 2000, 5000, 10000, 20000, 50000, 100000,
)
# OpenTelemetry semantic-convention buckets, in seconds: Knative gen B and the KEDA HTTP
# interceptor (sections 2 and 3).
OTEL_HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# Dapr default latency buckets, in milliseconds (section 4).
DAPR_BUCKETS_MS = (
    1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 30, 40, 50, 65, 80, 100, 130, 160, 200, 250, 300,
    400, 500, 650, 800, 1000, 2000, 5000, 10000, 20000, 50000, 100000,
)
# fmt: on
# Native profile default buckets, in seconds; configured SLO thresholds are added to these.
NATIVE_DEFAULT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def escape_label_value(value: str) -> str:
    """The body of a PromQL double-quoted string that reads back as ``value``.

    Backslash and quote are escaped, and every non-printable character (newlines, tabs,
    other controls) becomes a ``\\u``/``\\U`` escape, so no value can end the string or
    the expression early.
    """
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def matcher(label: str, value: str, op: str = "=") -> str:
    """One label matcher; raises ``ValueError`` on a label name PromQL would not accept."""
    if not LABEL_NAME.match(label):
        raise ValueError(f"{label!r} is not a valid Prometheus label name")
    if op not in ("=", "!=", "=~", "!~"):
        raise ValueError(f"{op!r} is not a PromQL matcher operator")
    return f'{label}{op}"{escape_label_value(value)}"'


@dataclass(frozen=True)
class Counter:
    """A request counter and the matcher that selects its failed requests."""

    metric: str
    error: str  # e.g. 'code=~"5.."'
    code_label: str = ""  # label with the HTTP status code, "" when there is none
    # Label that tells failures apart on a dashboard: the status code, else the component.
    detail_label: str = ""
    # Labels of one succeeding and one failing series, as the exporter writes them: what
    # the generated promtool tests feed the rules.
    ok_labels: tuple[tuple[str, str], ...] = ()
    error_labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Histogram:
    """A latency histogram; ``le`` is in ``1 / scale`` seconds (1 = seconds, 1000 = ms)."""

    metric: str
    scale: float
    buckets: tuple[float, ...]  # in le units; () = configurable (native profile)

    def le_matcher(self, seconds: float) -> str:
        """A matcher for the bucket at ``seconds``. Whole numbers match both spellings
        exporters use (Go writes ``1``, Python's prometheus-client ``1.0``): Prometheus 2.x
        stores ``le`` as written."""
        value = _format_float(seconds * self.scale)
        if "." in value or "e" in value:
            return matcher("le", value)
        return matcher("le", f"{value}(\\.0)?", "=~")

    def bucket_seconds(self) -> tuple[float, ...]:
        return tuple(b / self.scale for b in self.buckets)


@dataclass(frozen=True)
class Profile:
    """What one metric profile offers. ``None`` fields are signals it does not have."""

    name: str
    counters: tuple[Counter, ...]
    histograms: tuple[Histogram, ...]
    concurrency: str | None  # gauge of in-flight or queued requests
    exemplars: bool = False
    cold_starts: str | None = None  # counter of first invocations per process


def _format_float(value: float) -> str:
    """Prometheus' formatting of ``le`` values: integers without a fraction, else shortest."""
    if value == int(value):
        return str(int(value)) if abs(value) < 1e15 else repr(float(value))
    return repr(value)


NATIVE = Profile(
    name=c.PROFILE_NATIVE,
    counters=(
        Counter(
            c.NATIVE_REQUESTS_TOTAL,
            'code=~"5.."',
            "code",
            "code",
            (("code", "200"),),
            (("code", "500"),),
        ),
    ),
    histograms=(Histogram(c.NATIVE_DURATION_SECONDS, 1, ()),),
    concurrency=c.NATIVE_IN_FLIGHT,
    exemplars=True,
    cold_starts=c.NATIVE_COLD_STARTS_TOTAL,
)
KNATIVE_OPENCENSUS = Profile(
    name=c.PROFILE_KNATIVE,
    counters=(
        Counter(
            "revision_request_count",
            'response_code_class="5xx"',
            "response_code",
            "response_code",
            (("response_code", "200"), ("response_code_class", "2xx")),
            (("response_code", "503"), ("response_code_class", "5xx")),
        ),
    ),
    histograms=(Histogram("revision_request_latencies", 1000, KNATIVE_OPENCENSUS_BUCKETS_MS),),
    concurrency="revision_queue_depth",
)
KNATIVE_OTEL = Profile(
    name=c.PROFILE_KNATIVE,
    counters=(
        Counter(
            "http_server_request_duration_seconds_count",
            'http_response_status_code=~"5.."',
            "http_response_status_code",
            "http_response_status_code",
            (("http_response_status_code", "200"),),
            (("http_response_status_code", "500"),),
        ),
    ),
    histograms=(Histogram("http_server_request_duration_seconds", 1, OTEL_HTTP_BUCKETS_S),),
    concurrency="kn_serving_queue_depth",
)
KEDA_HTTP = Profile(
    name=c.PROFILE_KEDA_HTTP,
    counters=(
        Counter(
            "interceptor_request_count_total",
            'code=~"5.."',
            "code",
            "code",
            (("code", "200"),),
            (("code", "502"),),
        ),
    ),
    histograms=(Histogram("interceptor_request_duration_seconds", 1, OTEL_HTTP_BUCKETS_S),),
    concurrency="interceptor_request_concurrency",
)
DAPR_BINDING = Counter(
    "dapr_component_input_binding_count",
    'success="false"',
    detail_label="component",
    ok_labels=(("success", "true"),),
    error_labels=(("success", "false"),),
)
DAPR_PUBSUB = Counter(
    "dapr_component_pubsub_ingress_count",
    'process_status!="success"',
    detail_label="topic",
    ok_labels=(("process_status", "success"),),
    error_labels=(("process_status", "retry"),),
)
DAPR_BINDING_LATENCY = Histogram("dapr_component_input_binding_latencies", 1000, DAPR_BUCKETS_MS)
DAPR_PUBSUB_LATENCY = Histogram("dapr_component_pubsub_ingress_latencies", 1000, DAPR_BUCKETS_MS)


def profile(
    name: str,
    knative_metrics: str = c.KNATIVE_OPENCENSUS,
    input_kinds: Iterable[str] = ("binding",),
) -> Profile:
    """The profile named in settings. Dapr's signals depend on the function's input kinds
    (``binding``, ``pubsub``); a function with neither gets both."""
    if name == c.PROFILE_NATIVE:
        return NATIVE
    if name == c.PROFILE_KNATIVE:
        return KNATIVE_OTEL if knative_metrics == c.KNATIVE_OTEL else KNATIVE_OPENCENSUS
    if name == c.PROFILE_KEDA_HTTP:
        return KEDA_HTTP
    if name != c.PROFILE_DAPR:
        raise ValueError(f"unknown metric profile {name!r}")
    kinds = set(input_kinds) & {"binding", "pubsub"} or {"binding", "pubsub"}
    counters = tuple(
        ctr for kind, ctr in (("binding", DAPR_BINDING), ("pubsub", DAPR_PUBSUB)) if kind in kinds
    )
    histograms = tuple(
        h
        for kind, h in (("binding", DAPR_BINDING_LATENCY), ("pubsub", DAPR_PUBSUB_LATENCY))
        if kind in kinds
    )
    return Profile(name=c.PROFILE_DAPR, counters=counters, histograms=histograms, concurrency=None)


@dataclass(frozen=True)
class Queries:
    """PromQL for one function's signals. Windows are PromQL durations or ``$__rate_interval``."""

    profile: Profile
    selector: str  # the inside of {...}: namespace, function and extra matchers

    @classmethod
    def for_function(
        cls, prof: Profile, namespace: str, name: str, extra: Mapping[str, str] | None = None
    ) -> Queries:
        parts = [matcher(c.NAMESPACE_LABEL, namespace), matcher(c.FUNCTION_LABEL, name)]
        parts += [matcher(k, v) for k, v in sorted((extra or {}).items())]
        return cls(prof, ",".join(parts))

    def narrowed(self, *matchers: str) -> Queries:
        """The same queries with more (already rendered) matchers, e.g. a dashboard's
        ``instance=~"$instance"``."""
        return Queries(self.profile, ",".join([self.selector, *matchers]))

    def _sel(self, *more: str) -> str:
        return "{" + ",".join([self.selector, *[m for m in more if m]]) + "}"

    def _union(self, parts: list[str]) -> str:
        """Several vectors as one. Each part gets its own ``signal`` label first, so ``or``
        keeps them all instead of dropping series whose other labels coincide."""
        if len(parts) == 1:
            return parts[0]
        return " or ".join(
            f'label_replace({p}, "signal", "{i}", "", "")' for i, p in enumerate(parts)
        )

    def request_rate(self, window: str) -> str:
        """Requests per second."""
        return (
            "sum("
            + self._union(
                [f"rate({ctr.metric}{self._sel()}[{window}])" for ctr in self.profile.counters]
            )
            + ")"
        )

    def error_rate(self, window: str) -> str:
        """Failed requests per second (0 when there is traffic and no error)."""
        errors = self._union(
            [f"rate({ctr.metric}{self._sel(ctr.error)}[{window}])" for ctr in self.profile.counters]
        )
        return f"(sum({errors}) or (0 * {self.request_rate(window)}))"

    def error_ratio(self, window: str) -> str:
        """Share of failed requests; no result without traffic (not 0: no data is not good,
        and not NaN, which would poison every average over time)."""
        return f"({self.error_rate(window)}) / ({self.request_rate(window)} > 0)"

    def observed_rate(self, window: str) -> str:
        """Requests per second the latency histograms saw."""
        return (
            "sum("
            + self._union(
                [f"rate({h.metric}_count{self._sel()}[{window}])" for h in self.profile.histograms]
            )
            + ")"
        )

    def slow_ratio(self, threshold_seconds: float, window: str) -> str:
        """Share of requests slower than ``threshold_seconds``; no result without traffic."""
        return f"({self.slow_rate(threshold_seconds, window)}) / ({self.observed_rate(window)} > 0)"

    def up(self) -> str:
        """The function's scrape targets (1 up, 0 down); none when nothing is scraped."""
        return f"up{self._sel()}"

    def latency_quantile(self, quantile: float, window: str) -> str:
        """Latency quantile in seconds; NaN-free: no traffic gives no result."""
        buckets = self._union(
            [f"rate({h.metric}_bucket{self._sel()}[{window}])" for h in self.profile.histograms]
        )
        scale = self.profile.histograms[0].scale
        q = f"histogram_quantile({_format_float(quantile)}, sum by (le) ({buckets}))"
        return q if scale == 1 else f"({q}) / {_format_float(scale)}"

    def slow_rate(self, threshold_seconds: float, window: str) -> str:
        """Requests per second slower than ``threshold_seconds`` (must be a bucket bound)."""
        parts = []
        for h in self.profile.histograms:
            le = h.le_matcher(threshold_seconds)
            parts.append(
                f"(sum(rate({h.metric}_count{self._sel()}[{window}])) - "
                f"sum(rate({h.metric}_bucket{self._sel(le)}[{window}])))"
            )
        return parts[0] if len(parts) == 1 else "sum(" + self._union(parts) + ")"

    def requests_by_class(self, window: str) -> str | None:
        """Requests per second by status-code class (``code_class`` = ``2xx``, ``5xx``, ...);
        ``None`` when the profile's counters carry no status code."""
        parts = [
            f'label_replace(rate({ctr.metric}{self._sel()}[{window}]), "code_class", "${{1}}xx", '
            f'"{ctr.code_label}", "(.).*")'
            for ctr in self.profile.counters
            if ctr.code_label
        ]
        return f"sum by (code_class) ({self._union(parts)})" if parts else None

    def errors_by_detail(self, window: str) -> str:
        """Failed requests per second by ``detail``: the status code, or the Dapr component
        or topic."""
        parts = [
            f'label_replace(rate({ctr.metric}{self._sel(ctr.error)}[{window}]), "detail", "$1", '
            f'"{ctr.detail_label}", "(.*)")'
            for ctr in self.profile.counters
        ]
        return f"sum by (detail) ({self._union(parts)})"

    def latency_buckets(self, window: str) -> str:
        """Bucket rates by ``le`` (in the histogram's own unit), for a heatmap."""
        buckets = self._union(
            [f"rate({h.metric}_bucket{self._sel()}[{window}])" for h in self.profile.histograms]
        )
        return f"sum by (le) ({buckets})"

    def cold_starts(self, window: str) -> str | None:
        """Cold starts in ``window``, or ``None`` if the profile does not count them."""
        if self.profile.cold_starts is None:
            return None
        return f"sum(increase({self.profile.cold_starts}{self._sel()}[{window}]))"

    def concurrency(self) -> str | None:
        """In-flight (or queued) requests across replicas, or ``None`` if the profile has none."""
        if self.profile.concurrency is None:
            return None
        return f"sum({self.profile.concurrency}{self._sel()})"


def nearest_buckets(buckets_seconds: Iterable[float], threshold: float) -> tuple[float, ...]:
    """The bucket bounds just below and above ``threshold`` (one if it is off either end)."""
    ordered = sorted(buckets_seconds)
    below = [b for b in ordered if b < threshold]
    above = [b for b in ordered if b > threshold]
    return tuple(
        x for x in (below[-1] if below else None, above[0] if above else None) if x is not None
    )

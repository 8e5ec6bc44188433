"""A ScaledObject's ``scalerMetadata`` as validated scaler settings. Pure, no I/O.

Every key is documented in docs/scaling.md. Errors name the key and what it accepts; the
server turns them into ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ofobserve import conventions as c

T = TypeVar("T")
FunctionKey = tuple[str, str]  # (namespace, function)
PROFILES = c.PROFILES
#: Keys KEDA's own ``external`` / ``external-push`` trigger reads; accepted and ignored.
KEDA_KEYS = frozenset(
    {"scalerAddress", "enableTLS", "unsafeSsl", "tlsCertFile", "caCert", "tlsClientCert",
     "tlsClientKey", "tlsClientKeyPassword"}
)  # fmt: skip
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
METRIC_NAME_MAX = 63


class MetadataError(ValueError):
    """One bad key: ``key`` and a message saying what it accepts."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"scalerMetadata.{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class ScalerConfig:
    """How to scale one function (defaults as in docs/scaling.md)."""

    namespace: str
    function: str
    profile: str = c.PROFILE_NATIVE
    knative_metrics: str = c.KNATIVE_OPENCENSUS
    target_concurrency: float = 10.0
    target_utilization: float = 0.7
    latency_objective: float | None = None
    latency_quantile: float = 0.95
    min_replicas: int = 0
    max_replicas: int | None = None
    activation_concurrency: float = 0.0
    stable_window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0
    scale_down_delay: float = 0.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    hpa_tolerance: float = c.HPA_DEFAULT_TOLERANCE
    #: ``keda-http`` with the direct source: the HTTPScaledObject's name, which the
    #: interceptor writes as ``route_name`` (``None``: not given).
    route: str | None = None

    @property
    def key(self) -> FunctionKey:
        return (self.namespace, self.function)

    @property
    def metric_name(self) -> str:
        """Stable and sanitised, from the metadata alone: ``ofobserve-<ns>-<function>``, or
        a hash tail when that is longer than 63 characters."""
        name = re.sub(r"[^a-z0-9-]", "-", f"ofobserve-{self.namespace}-{self.function}".lower())
        if len(name) <= METRIC_NAME_MAX:
            return name
        digest = hashlib.sha256(f"{self.namespace}/{self.function}".encode()).hexdigest()[:16]
        return f"{name[: METRIC_NAME_MAX - 17]}-{digest}"

    @property
    def per_replica(self) -> float:
        """Concurrency one replica should carry: target * utilisation."""
        return self.target_concurrency * self.target_utilization


def _number(key: str, raw: str, low: float, high: float = math.inf, low_open: bool = True) -> float:
    bound = f"> {low:g}" if low_open else f">= {low:g}"
    upper = "" if high == math.inf else f" and < {high:g}"
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    ok = (value > low if low_open else value >= low) and value < high
    if not ok or not math.isfinite(value):
        raise MetadataError(key, f"must be a number {bound}{upper} (got {raw!r})")
    return value


def _count(key: str, raw: str, low: int) -> int:
    if not re.fullmatch(r"[0-9]+", raw.strip()) or int(raw) < low:
        raise MetadataError(key, f"must be a whole number >= {low} (got {raw!r})")
    return int(raw)


def duration_seconds(raw: str) -> float | None:
    """``raw`` as seconds (a number, or with ``ms``, ``s``, ``m`` or ``h``); ``None`` when it
    is no duration."""
    found = DURATION.match(raw.strip())
    return float(found.group(1)) * _UNIT[found.group(2)] if found else None


def _duration(key: str, raw: str, allow_zero: bool = False) -> float:
    found = DURATION.match(raw.strip())
    if not found or (float(found.group(1)) == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise MetadataError(
            key, f"must be a duration {bound}: seconds, or with ms, s, m or h (got {raw!r})"
        )
    return float(found.group(1)) * _UNIT[found.group(2)]


def _choice(key: str, raw: str, allowed: tuple[str, ...]) -> str:
    if raw not in allowed:
        raise MetadataError(key, f"must be one of {', '.join(allowed)} (got {raw!r})")
    return raw


def _name(key: str, raw: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.match(raw) or len(raw) > 253:
        raise MetadataError(key, f"must be a Kubernetes {what} (got {raw!r})")
    return raw


PARSERS: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "profile": ("profile", lambda k, v: _choice(k, v, PROFILES)),
    "knativeMetrics": ("knative_metrics", lambda k, v: _choice(k, v, c.KNATIVE_GENERATIONS)),
    "targetConcurrency": ("target_concurrency", lambda k, v: _number(k, v, 0)),
    "targetUtilization": ("target_utilization", lambda k, v: _number(k, v, 0, 1.000001)),
    "latencyObjective": ("latency_objective", _duration),
    "latencyQuantile": ("latency_quantile", lambda k, v: _number(k, v, 0, 1)),
    "minReplicas": ("min_replicas", lambda k, v: _count(k, v, 0)),
    "maxReplicas": ("max_replicas", lambda k, v: _count(k, v, 1)),
    "activationConcurrency": (
        "activation_concurrency",
        lambda k, v: _number(k, v, 0, low_open=False),
    ),
    "stableWindow": ("stable_window", _duration),
    "panicWindow": ("panic_window", _duration),
    "panicThreshold": ("panic_threshold", lambda k, v: _number(k, v, 1, low_open=False)),
    "scaleDownDelay": ("scale_down_delay", lambda k, v: _duration(k, v, allow_zero=True)),
    "maxScaleUpRate": ("max_scale_up_rate", lambda k, v: _number(k, v, 1)),
    "maxScaleDownRate": ("max_scale_down_rate", lambda k, v: _number(k, v, 1)),
    "hpaTolerance": ("hpa_tolerance", lambda k, v: _number(k, v, 0, 1, low_open=False)),
    "route": ("route", lambda k, v: _name(k, v, NAME, "object name")),
}
KNOWN_KEYS = ("function", "namespace", *PARSERS)


def parse_metadata(name: str, namespace: str, metadata: Mapping[str, str]) -> ScalerConfig:
    """The settings of one ScaledObject; raises :class:`MetadataError` on the first bad key
    (keys are checked in sorted order, so the same input always names the same key)."""
    for key in sorted(metadata):
        if key not in KNOWN_KEYS and key not in KEDA_KEYS:
            close = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
            hint = (
                f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(KNOWN_KEYS)}"
            )
            raise MetadataError(key, f"unknown key; {hint}")
    ns = _name("namespace", metadata.get("namespace", namespace), DNS_LABEL, "namespace name")
    fn = _name("function", metadata.get("function", name), NAME, "object name")
    values: dict[str, object] = {}
    for key in sorted(PARSERS):
        if key in metadata:
            field, parse = PARSERS[key]
            values[field] = parse(key, metadata[key])
    config = ScalerConfig(namespace=ns, function=fn, **values)  # type: ignore[arg-type]
    if config.max_replicas is not None and config.max_replicas < config.min_replicas:
        raise MetadataError(
            "maxReplicas",
            f"must be >= minReplicas ({config.min_replicas}) (got {config.max_replicas})",
        )
    if config.panic_window > config.stable_window:
        raise MetadataError(
            "panicWindow",
            f"must not be longer than stableWindow ({config.stable_window:g} s) "
            f"(got {config.panic_window:g} s)",
        )
    return config

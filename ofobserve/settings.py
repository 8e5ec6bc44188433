"""Settings: the user's intent per function (profile, SLOs, alerting, scaling, Grafana).

Pure: parses and validates plain data that the loaders read. Precedence, lowest first:
built-in defaults, the config file's ``defaults:``, every matching ``overrides:`` entry in
file order, then the Function's ``ofobserve.io/<key.path>`` annotations.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from ofobserve import conventions
from ofobserve.errors import InvalidInput, Location, Problem
from ofobserve.model import Function, Runtime

Profile = Literal["ofobserve", "knative", "keda-http", "dapr"]
Severity = Literal["critical", "warning", "info"]
Percent = Annotated[float, Field(gt=0, lt=100)]
Ratio = Annotated[float, Field(gt=0, lt=1)]
Seconds = Annotated[float, Field(gt=0)]
LabelMap = dict[str, str]
#: A PromQL range of whole minutes, hours or days, e.g. ``5m``, ``6h``, ``3d``.
Window = Annotated[str, Field(pattern=r"^[1-9][0-9]*(m|h|d)$")]
#: Labels every generated series and selector already owns; extra matchers cannot use them.
RESERVED_LABELS = frozenset(
    {"namespace", "function", "le", "quantile", "job", "instance", "severity", "alertname"}
)


_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


def window_seconds(window: str) -> int:
    """Seconds in a :data:`Window` such as ``6h``."""
    return int(window[:-1]) * _UNIT_SECONDS[window[-1]]


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class LatencySLO(_Section):
    """Latency SLO: ``quantile`` of requests finish within ``threshold`` seconds."""

    threshold: Seconds = 0.5
    quantile: Ratio = 0.95


class BurnWindow(_Section):
    """One multi-window burn-rate alert: fire when both windows burn faster than
    ``burnRate`` times the sustainable rate."""

    long: Window
    short: Window
    burn_rate: Annotated[float, Field(gt=0)]
    severity: Severity

    @model_validator(mode="after")
    def _order(self) -> BurnWindow:
        if window_seconds(self.short) >= window_seconds(self.long):
            raise ValueError(f"short window {self.short} must be shorter than long {self.long}")
        return self


class SLO(_Section):
    availability: Percent = 99.5
    latency: LatencySLO = LatencySLO()
    window: Literal["30d", "28d"] = "30d"
    windows: tuple[BurnWindow, ...] | None = None
    min_requests: Annotated[int, Field(ge=0)] = 100


class Thresholds(_Section):
    """Thresholds of the operational alerts."""

    error_ratio: Ratio = 0.05
    latency: Seconds = 1.0
    latency_quantile: Ratio = 0.95
    scaler_stale_after: Seconds = 120.0


class FleetRules(_Section):
    """The fleet's rules (one PrometheusRule for every function): fleet settings, read from
    the config's ``defaults:`` only (docs/alerts.md)."""

    #: Where the fleet PrometheusRule goes; ``""``: the namespace it is applied in (the
    #: controller's ``--fleet-namespace``), like the fleet dashboards.
    namespace: Annotated[str, Field(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")] = ""


class Alerting(_Section):
    delivery: Literal["prometheus-rule", "rule-file"] = "prometheus-rule"
    fleet_rules: FleetRules = FleetRules()
    thresholds: Thresholds = Thresholds()
    team: str = ""
    labels: LabelMap = {}
    severity_overrides: dict[str, Severity] = {}
    runbook_base_url: str = "https://github.com/ofobserve/ofobserve/blob/main/docs/alerts.md#"


class TriggerAuthenticationRef(_Section):
    """A (Cluster)TriggerAuthentication made elsewhere, such as by the Helm chart."""

    kind: Literal["ClusterTriggerAuthentication", "TriggerAuthentication"] = (
        "ClusterTriggerAuthentication"
    )
    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)]


class Scaling(_Section):
    delivery: Literal["function-patch", "scaled-object"] = "function-patch"
    scaler_address: Annotated[str, Field(pattern=r"^[^\s:]+:[0-9]{1,5}$")] = (
        "ofobserve-scaler.ofobserve.svc:6000"
    )
    tls_secret: str = ""
    trigger_authentication: TriggerAuthenticationRef | None = None
    fallback_replicas: Annotated[int, Field(ge=0)] | None = None
    target_concurrency: Seconds = 10.0
    target_utilization: Annotated[float, Field(gt=0, le=1)] = 0.7
    latency_objective: Seconds | None = None
    latency_quantile: Ratio = 0.95
    min_replicas: Annotated[int, Field(ge=0)] | None = None
    max_replicas: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Scaling:
        lo, hi = self.min_replicas, self.max_replicas
        if lo is not None and hi is not None and hi < lo:
            raise ValueError(f"maxReplicas ({hi}) must be >= minReplicas ({lo})")
        if self.tls_secret and self.trigger_authentication:
            raise ValueError(
                "give tlsSecret (a TriggerAuthentication per function) or "
                "triggerAuthentication (one made by the chart), not both"
            )
        return self


class LogsLink(_Section):
    """Where the dashboard's "Logs" link opens Grafana Explore."""

    kind: Literal["loki", "elasticsearch", "none"] = "loki"
    datasource: str = "loki"  # the datasource uid


class TracesLink(_Section):
    """Where the dashboard's "Traces" link opens Grafana Explore."""

    kind: Literal["jaeger", "tempo", "none"] = "jaeger"
    datasource: str = "jaeger"  # the datasource uid


class Grafana(_Section):
    url: str = ""
    datasource: str = "prometheus"
    folder: str = "OpenFunction"
    delivery: Literal["json", "configmap", "grafana-operator"] = "configmap"
    namespace: Annotated[str, Field(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")] = ""
    instance_selector: LabelMap = {"dashboards": "grafana"}
    logs: LogsLink = LogsLink()
    traces: TracesLink = TracesLink()


class SecretRef(_Section):
    """A key of a Kubernetes Secret: referenced, never copied into rendered files."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
    key: Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$")]


class LogShipping(_Section):
    """Fluent Bit's output (docs/telemetry.md)."""

    output: Literal["es", "loki", "opentelemetry"] = "loki"
    host: str = ""  # empty: the output's usual in-cluster service
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    tls: bool = False
    index: Literal["function", "namespace"] = "function"  # es only: one index per ...
    user: str = ""
    password_secret: SecretRef | None = None
    #: The tail input's offset database. Its directory must exist and be writable in the
    #: Fluent Bit pod (sqlite3 creates no directory): the fluent-bit chart mounts only
    #: ``/var/log`` read-write. ``""``: no database (a restart resumes at each file's end).
    db: str = conventions.FLUENT_BIT_TAIL_DB

    @field_validator("db")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if value and not re.fullmatch(r"/[^\s,]*[^\s,/]", value):
            raise ValueError(
                "must be an absolute path on a volume the Fluent Bit pod mounts read-write, "
                f"such as {conventions.FLUENT_BIT_TAIL_DB}, or '' for none"
            )
        return value


class TailSampling(_Section):
    enabled: bool = False
    percentage: Annotated[float, Field(ge=0, le=100)] = 10.0


class TraceShipping(_Section):
    """Where functions send spans (the collector) and where the collector sends them."""

    endpoint: str = "http://otel-collector.observability.svc:4317"
    protocol: Literal["grpc", "http/protobuf"] = "grpc"
    backend: Literal["jaeger", "tempo"] = "jaeger"
    backend_endpoint: str = "jaeger-collector.observability.svc:4317"
    headers_secret: SecretRef | None = None
    sampling: TailSampling = TailSampling()
    #: Name the collector's exporters ``otlp``/``otlphttp`` as collectors before v0.144.0
    #: need; from v0.144.0 they are ``otlp_grpc``/``otlp_http`` (the old names are aliases).
    legacy_exporter_names: bool = False

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/:]+(:[0-9]{1,5})?/?", value):
            raise ValueError(
                "must be an http(s) URL with a host and an optional port, such as "
                "http://otel-collector.observability.svc:4317"
            )
        return value


class Telemetry(_Section):
    namespace: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")] = "observability"
    logs: LogShipping = LogShipping()
    traces: TraceShipping = TraceShipping()


class SelectorLabels(_Section):
    rules: LabelMap = {}
    monitors: LabelMap = {}


class Monitoring(_Section):
    scrape_interval: Annotated[str, Field(pattern=r"^([0-9]+(ms|s|m|h))?$")] = ""
    keda_http_namespace: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")] = "keda"
    keda_http_metrics_port: Annotated[int, Field(ge=1, le=65535)] = (
        conventions.KEDA_HTTP_INTERCEPTOR_METRICS_PORT
    )
    extra_matchers: LabelMap = {}

    @field_validator("extra_matchers")
    @classmethod
    def _label_names(cls, value: LabelMap) -> LabelMap:
        for label in value:
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label):
                raise ValueError(f"{label!r} is not a valid Prometheus label name")
            if label.startswith("__") or label in RESERVED_LABELS or label.startswith("sloth_"):
                raise ValueError(f"label {label!r} is reserved by ofobserve's own selectors")
        return value


class Settings(_Section):
    """Fully resolved settings of one function (every field has a default)."""

    profile: Profile | None = None
    knative_metrics: Literal["opencensus", "otel"] = "opencensus"
    slo: SLO = SLO()
    alerting: Alerting = Alerting()
    scaling: Scaling = Scaling()
    grafana: Grafana = Grafana()
    telemetry: Telemetry = Telemetry()
    selector_labels: SelectorLabels = SelectorLabels()
    monitoring: Monitoring = Monitoring()

    def profile_for(self, runtime: Runtime) -> str:
        """The metric profile in force: the setting, else the runtime's default."""
        return self.profile or DEFAULT_PROFILE[runtime]


DEFAULT_PROFILE: dict[Runtime, str] = {
    Runtime.KNATIVE: conventions.PROFILE_KNATIVE,
    Runtime.ASYNC: conventions.PROFILE_DAPR,
    Runtime.KEDA_HTTP: conventions.PROFILE_KEDA_HTTP,
}


class Match(_Section):
    """Which functions an override applies to; every given criterion must hold."""

    namespace: str | None = None
    name: str | None = None
    labels: LabelMap = {}

    def matches(self, function: Function) -> bool:
        labels = dict(function.labels)
        return (
            (self.namespace is None or self.namespace == function.namespace)
            and (self.name is None or self.name == function.name)
            and all(labels.get(k) == v for k, v in self.labels.items())
        )


class _Override(_Section):
    match: Match
    settings: dict[str, Any]


class _ConfigFile(_Section):
    defaults: dict[str, Any] = {}
    overrides: list[_Override] = []


class Config(BaseModel):
    """A parsed config file: raw layers, validated, merged per function by :func:`resolve`."""

    model_config = ConfigDict(frozen=True)

    source: str = "<built-in>"
    defaults: dict[str, Any] = {}
    overrides: tuple[tuple[Match, dict[str, Any]], ...] = ()


def parse_config(data: object, where: Location) -> Config:
    """Validate a config file's content. Raises :class:`InvalidInput` with every problem."""
    if data is None:
        data = {}
    try:
        parsed = _ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_problems(exc, where, _ConfigFile)) from None
    problems: list[Problem] = []
    problems += _check_layer(parsed.defaults, where.at("defaults"))
    for i, override in enumerate(parsed.overrides):
        problems += _check_layer(override.settings, where.at(f"overrides[{i}].settings"))
    if problems:
        raise InvalidInput(problems)
    return Config(
        source=where.source,
        defaults=parsed.defaults,
        overrides=tuple((o.match, o.settings) for o in parsed.overrides),
    )


def resolve(config: Config, function: Function) -> Settings:
    """Merge the layers for one function and validate the result."""
    merged: dict[str, Any] = {}
    _deep_merge(merged, config.defaults)
    for match, layer in config.overrides:
        if match.matches(function):
            _deep_merge(merged, layer)
    annotations_layer, problems = annotation_settings(function)
    _deep_merge(merged, annotations_layer)
    if problems:
        raise InvalidInput(problems)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        note = f" (settings merged from {config.source} and annotations)"
        raise InvalidInput(
            Problem(p.location, p.message + note)
            for p in _problems(exc, function.source.at("settings"), Settings)
        ) from None


def fleet_settings(config: Config) -> Settings:
    """Settings of what spans every function (the overview and scaler dashboards): the
    config file's ``defaults:`` alone, already validated by :func:`parse_config`."""
    return Settings.model_validate(config.defaults)


def annotation_settings(function: Function) -> tuple[dict[str, Any], list[Problem]]:
    """The ``ofobserve.io/<key.path>`` annotations as a settings layer, plus their problems.

    Each value is read as a YAML scalar (``"99.9"`` is a number, ``"true"`` a boolean).
    """
    layer: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, raw in function.annotations:
        if not key.startswith(conventions.ANNOTATION_PREFIX):
            continue
        path = key[len(conventions.ANNOTATION_PREFIX) :]
        where = function.source.at(f'metadata.annotations."{key}"')
        suggestion = _unknown_path(path)
        if suggestion is not None:
            problems.append(Problem(where, suggestion))
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        candidate: dict[str, Any] = {}
        _set_path(candidate, path.split("."), value)
        try:
            Settings.model_validate(candidate)
        except ValidationError as exc:
            problems += [Problem(where, f"{err['msg']} (got {raw!r})") for err in exc.errors()]
            continue
        _set_path(layer, path.split("."), value)
    return layer, problems


# --- helpers -----------------------------------------------------------------------------------


def _check_layer(layer: Mapping[str, Any], where: Location) -> list[Problem]:
    try:
        Settings.model_validate(layer)
    except ValidationError as exc:
        return _problems(exc, where, Settings)
    return []


def _problems(exc: ValidationError, where: Location, model: type[BaseModel]) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        path = ".".join(p if not p.isdigit() else f"[{p}]" for p in loc).replace(".[", "[")
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(loc[-1], _keys_at(model, loc[:-1]))
        elif "input" in err and err["type"] != "missing" and not isinstance(err["input"], dict):
            message = f"{message} (got {err['input']!r})"
        out.append(Problem(where.at(path) if path else where, message))
    return out


def _keys_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The keys allowed at ``loc`` inside ``model`` (camelCase aliases)."""
    current: Any = model
    for part in loc:
        fields = {(f.alias or n): f for n, f in current.model_fields.items()}
        field = fields.get(part)
        if field is None:
            return []
        current = _model_of(field.annotation)
        if current is None:
            return []
    return sorted((f.alias or n) for n, f in current.model_fields.items())


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _did_you_mean(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; allowed: {', '.join(allowed)}" if allowed else ""


def _unknown_path(path: str) -> str | None:
    """``None`` when ``path`` names a settings leaf, else the error message."""
    parts = path.split(".")
    for depth, part in enumerate(parts):
        allowed = _keys_at(Settings, parts[:depth])
        if part not in allowed:
            prefix = ".".join(parts[:depth])
            options = [f"{prefix}.{a}" if prefix else a for a in allowed]
            return f"unknown setting {path!r}" + _did_you_mean(
                ".".join(parts[: depth + 1]), options
            )
    if _keys_at(Settings, parts):
        return f"setting {path!r} is a section; annotate one of its keys"
    return None


def _set_path(target: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


def _deep_merge(into: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        elif isinstance(value, Mapping):
            into[key] = {}
            _deep_merge(into[key], value)
        else:
            into[key] = value

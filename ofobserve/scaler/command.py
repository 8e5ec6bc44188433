"""``ofobserve scaler``: flags to a running server. Does I/O (files, sockets, signals)."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from prometheus_client import CollectorRegistry, start_http_server

from ofobserve.errors import ClusterUnavailable
from ofobserve.scaler.config import duration_seconds
from ofobserve.tracing import JSONLogFormatter

if TYPE_CHECKING:
    from ofobserve.scaler.discovery import Discovery
    from ofobserve.scaler.telemetry import ScalerMetrics

log = logging.getLogger("ofobserve.scaler")


def _logging(fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JSONLogFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(message)s")
    )
    root = logging.getLogger("ofobserve")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def _read(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise click.ClickException(f"cannot read {what} {path}: {exc.strerror}") from None


def _host_port(value: str, flag: str) -> tuple[str, int]:
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit():
        raise click.BadParameter(f"{flag} must be HOST:PORT (got {value!r})")
    return host.strip("[]") or "0.0.0.0", int(port)


class Duration(click.ParamType[float]):
    """Seconds, or a number with ``ms``, ``s``, ``m`` or ``h`` (as ``scalerMetadata``), > 0."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        seconds = duration_seconds(str(value))
        if seconds is None or seconds <= 0:
            self.fail(f"must be a duration > 0: seconds, or with ms, s, m or h (got {value!r})")
        return seconds


#: An HTTP header name (RFC 9110 section 5.6.2, ``token``).
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _header_value_error(value: str) -> str | None:
    if not value:
        return "is empty"
    if any(ch in value for ch in "\r\n\x00"):
        return "must be one line"
    return None


class Header(click.ParamType[tuple[str, "str | Path"]]):
    """``NAME=VALUE``, or ``NAME=@FILE`` (read at start). Converts to ``(name, value)`` or
    ``(name, Path)``; the file is read later, so an unreadable one exits 1, not 2. From the
    environment: one header per line."""

    name = "header"

    def split_envvar_value(self, rv: str) -> list[str]:
        return [line for line in (rv or "").splitlines() if line.strip()]

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str | Path]:
        if isinstance(value, tuple):
            return value
        name, equals, rest = str(value).partition("=")
        if not equals or not HEADER_NAME.match(name):
            self.fail(f"must be NAME=VALUE or NAME=@FILE, NAME an HTTP header name (got {value!r})")
        if rest.startswith("@"):
            if not rest[1:]:
                self.fail(f"{name}: @ needs a file path (got {value!r})")
            return name, Path(rest[1:])
        problem = _header_value_error(rest)
        if problem:
            self.fail(f"{name}: the value {problem}")
        return name, rest


def _headers(given: tuple[tuple[str, str | Path], ...]) -> dict[str, str]:
    """The ``--prometheus-header`` values, with files read (stripped); exit 1 naming an
    unreadable file or one whose content is no header value."""
    headers: dict[str, str] = {}
    for name, value in given:
        if isinstance(value, Path):
            try:
                text = value.read_text().strip()
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise click.ClickException(
                    f"cannot read --prometheus-header {name} file {value}: {why}"
                ) from None
            problem = _header_value_error(text)
            if problem:
                raise click.ClickException(
                    f"--prometheus-header {name} file {value}: the value {problem}"
                )
            value = text
        headers[name] = value
    return headers


def _discovery(
    targets: str | None, namespaces: tuple[str, ...], refresh: float, metrics: ScalerMetrics
) -> Discovery:
    """The ``--targets`` file (read again when it changes), else one watch of the function
    pods per ``--watch-namespace`` (or of all namespaces), started here."""
    from ofobserve.kube.client import Kube, load_api_client
    from ofobserve.scaler.discovery import StaticDiscovery, TargetsFileError, WatchDiscovery

    if targets is not None:
        try:
            return StaticDiscovery.from_file(
                Path(targets),
                check_every=refresh,
                on_error=lambda reason: metrics.targets_file_errors.inc(),
            )
        except TargetsFileError as exc:
            raise click.ClickException(str(exc)) from None
    try:
        api_client = load_api_client(None, hint="set KUBECONFIG or run inside a cluster")
    except ClusterUnavailable as exc:
        raise click.UsageError(f"{exc} (or give --targets)") from None
    discovery = WatchDiscovery(
        Kube(api_client),
        namespaces,
        on_restart=lambda resource, reason: metrics.watch_restarts.labels(resource, reason).inc(),
    )
    metrics.track_pod_watch(discovery.healthy)
    return discovery.start()


@click.command()
@click.option(
    "--listen",
    default="0.0.0.0:6000",
    show_default=True,
    envvar="OFOBSERVE_LISTEN",
    show_envvar=True,
    help="gRPC address KEDA connects to.",
)
@click.option(
    "--metrics-listen",
    default="0.0.0.0:9100",
    show_default=True,
    envvar="OFOBSERVE_METRICS_LISTEN",
    show_envvar=True,
    help="Address of the scaler's own /metrics.",
)
@click.option(
    "--health-listen",
    envvar="OFOBSERVE_HEALTH_LISTEN",
    show_envvar=True,
    help="Also serve grpc.health.v1 alone, in plaintext, on this address: for the "
    "kubelet's gRPC probes, which cannot speak TLS (off unless given).",
)
@click.option(
    "--watch-namespace",
    "watch_namespaces",
    multiple=True,
    envvar="OFOBSERVE_WATCH_NAMESPACES",
    show_envvar=True,
    help="Serve functions in this namespace only (repeat it; the env var takes a "
    "space-separated list). Others are refused with FAILED_PRECONDITION. Default: all.",
)
@click.option(
    "--source",
    type=click.Choice(["prometheus", "direct"]),
    default="direct",
    show_default=True,
    envvar="OFOBSERVE_SOURCE",
    show_envvar=True,
    help="Read signals from Prometheus (batched) or scrape the function pods.",
)
@click.option(
    "--prometheus-url",
    envvar="OFOBSERVE_PROMETHEUS_URL",
    show_envvar=True,
    help="Prometheus base URL (with --source prometheus).",
)
@click.option(
    "--prometheus-bearer-token-file",
    type=click.Path(dir_okay=False),
    envvar="OFOBSERVE_PROMETHEUS_BEARER_TOKEN_FILE",
    show_envvar=True,
    help="File holding a bearer token for Prometheus.",
)
@click.option(
    "--prometheus-username",
    envvar="OFOBSERVE_PROMETHEUS_USERNAME",
    show_envvar=True,
    help="Basic-auth user for Prometheus (with --prometheus-password-file).",
)
@click.option(
    "--prometheus-password-file",
    type=click.Path(dir_okay=False),
    envvar="OFOBSERVE_PROMETHEUS_PASSWORD_FILE",
    show_envvar=True,
    help="File holding the basic-auth password.",
)
@click.option(
    "--prometheus-ca-file",
    type=click.Path(dir_okay=False),
    envvar="OFOBSERVE_PROMETHEUS_CA_FILE",
    show_envvar=True,
    help="CA bundle that signs Prometheus' certificate.",
)
@click.option(
    "--prometheus-header",
    "prometheus_headers",
    type=Header(),
    multiple=True,
    envvar="OFOBSERVE_PROMETHEUS_HEADERS",
    show_envvar=True,
    help="NAME=VALUE: an HTTP header sent with every Prometheus request (repeat it; the "
    "env var takes one per line), e.g. X-Scope-OrgID=tenant-a for Mimir, Cortex or a "
    "multi-tenant Thanos. NAME=@FILE reads the value from FILE at start (stripped): "
    "for a value mounted from a Secret.",
)
@click.option(
    "--rate-window",
    default="1m",
    show_default=True,
    envvar="OFOBSERVE_RATE_WINDOW",
    show_envvar=True,
    help="PromQL range of the rate and latency queries.",
)
@click.option(
    "--targets",
    type=click.Path(dir_okay=False),
    envvar="OFOBSERVE_TARGETS",
    show_envvar=True,
    help="With --source direct: a YAML map of '<ns>/<function>' to the host:port list "
    "serving its metrics (its pods, or daprd), or to {metrics: [...], ready: N}, instead "
    "of discovering pods through the Kubernetes API.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False),
    envvar="OFOBSERVE_TLS_CERT",
    show_envvar=True,
    help="Serve TLS with this certificate (PEM).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False),
    envvar="OFOBSERVE_TLS_KEY",
    show_envvar=True,
    help="Private key of --tls-cert (PEM).",
)
@click.option(
    "--tls-client-ca",
    type=click.Path(dir_okay=False),
    envvar="OFOBSERVE_TLS_CLIENT_CA",
    show_envvar=True,
    help="Require client certificates signed by this CA (mTLS).",
)
@click.option(
    "--max-staleness",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    envvar="OFOBSERVE_MAX_STALENESS",
    show_envvar=True,
    help="Seconds the last good reading is used when the source fails; then "
    "UNAVAILABLE, so KEDA's fallback applies.",
)
@click.option(
    "--refresh-interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    envvar="OFOBSERVE_REFRESH_INTERVAL",
    show_envvar=True,
    help="Seconds between two reads of every registered function.",
)
@click.option(
    "--forget-after",
    type=Duration(),
    default="10m",
    show_default=True,
    envvar="OFOBSERVE_FORGET_AFTER",
    show_envvar=True,
    help="Drop a function KEDA has not asked about (no RPC, no open stream) for this long, "
    "with its windows: seconds, or with ms, s, m or h. Asked again, it is read anew first.",
)
@click.option(
    "--grace-period",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    envvar="OFOBSERVE_GRACE_PERIOD",
    show_envvar=True,
    help="Seconds in-flight calls get to finish after SIGTERM.",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default="json",
    show_default=True,
    envvar="OFOBSERVE_LOG_FORMAT",
    show_envvar=True,
    help="Log lines as JSON objects or plain text (stderr).",
)
def scaler(**options: Any) -> None:  # fmt: skip
    """Run the KEDA external scaler (gRPC) that scales functions on concurrency and latency."""
    # grpc and the sources load only for this command, not for render.
    from ofobserve.scaler.engine import Engine
    from ofobserve.scaler.server import serve
    from ofobserve.scaler.sources import DirectSource, PrometheusSource, Source
    from ofobserve.scaler.telemetry import ScalerMetrics
    from ofobserve.scaler.tls import TLS

    o = options
    if o["source"] == "prometheus" and not o["prometheus_url"]:
        raise click.UsageError("--source prometheus needs --prometheus-url")
    if o["source"] == "direct" and o["prometheus_url"]:
        raise click.UsageError("--prometheus-url only applies with --source prometheus")
    if bool(o["tls_cert"]) != bool(o["tls_key"]):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if o["tls_client_ca"] and not o["tls_cert"]:
        raise click.UsageError("--tls-client-ca needs --tls-cert and --tls-key")
    if bool(o["prometheus_username"]) != bool(o["prometheus_password_file"]):
        raise click.UsageError("--prometheus-username and --prometheus-password-file go together")
    if o["health_listen"]:
        _host_port(o["health_listen"], "--health-listen")
    header_names = [name.lower() for name, _ in o["prometheus_headers"]]
    if o["prometheus_headers"] and o["source"] != "prometheus":
        raise click.UsageError("--prometheus-header only applies with --source prometheus")
    repeated = sorted({n for n in header_names if header_names.count(n) > 1})
    if repeated:
        raise click.UsageError(f"--prometheus-header {repeated[0]} is given twice")
    if "authorization" in header_names and (
        o["prometheus_bearer_token_file"] or o["prometheus_username"]
    ):
        raise click.UsageError(
            "--prometheus-header Authorization cannot go with --prometheus-bearer-token-file "
            "or --prometheus-username"
        )
    _logging(o["log_format"])
    registry = CollectorRegistry()
    metrics = ScalerMetrics(registry)
    source: Source
    if o["source"] == "prometheus":
        password = _read(o["prometheus_password_file"], "password file")
        source = PrometheusSource(
            o["prometheus_url"],
            window=o["rate_window"],
            bearer_token=_read(o["prometheus_bearer_token_file"], "bearer token file"),
            basic_auth=(o["prometheus_username"], password) if password is not None else None,
            ca_file=o["prometheus_ca_file"],
            headers=_headers(o["prometheus_headers"]),
            on_query=metrics.queries.inc,
        )
    else:
        source = DirectSource(
            _discovery(o["targets"], o["watch_namespaces"], o["refresh_interval"], metrics)
        )
    host, port = _host_port(o["metrics_listen"], "--metrics-listen")
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {o['metrics_listen']}: {exc.strerror}"
        ) from None
    engine = Engine(
        source,
        metrics,
        max_staleness=o["max_staleness"],
        interval=o["refresh_interval"],
        forget_after=o["forget_after"],
    )
    tls = None
    if o["tls_cert"]:
        client_ca = o["tls_client_ca"]
        tls = TLS(Path(o["tls_cert"]), Path(o["tls_key"]), Path(client_ca) if client_ca else None)
        try:
            tls.load()
        except ssl.SSLError as exc:
            raise click.ClickException(
                f"--tls-cert/--tls-key/--tls-client-ca do not load: {exc}"
            ) from None
        except OSError as exc:
            raise click.ClickException(
                f"cannot read TLS file {exc.filename}: {exc.strerror}"
            ) from None
    try:
        asyncio.run(
            serve(
                engine,
                metrics,
                o["listen"],
                tls=tls,
                health_listen=o["health_listen"],
                namespaces=frozenset(o["watch_namespaces"]),
                grace=o["grace_period"],
            )
        )
    except RuntimeError as exc:  # grpc: the port cannot be bound
        raise click.ClickException(str(exc)) from None

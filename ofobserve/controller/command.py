"""``ofobserve controller``: flags to a running controller. Does I/O (the API, a socket,
signals). Usage errors exit 2; an unreadable kubeconfig or settings file exits 1."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import sys
import threading
import uuid
from typing import Any

import click

log = logging.getLogger("ofobserve.controller")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _namespaced(value: str | None, flag: str) -> tuple[str, str] | None:
    if value is None:
        return None
    namespace, slash, name = value.partition("/")
    if not slash or not _DNS_LABEL.fullmatch(namespace) or not name or "/" in name:
        raise click.BadParameter(f"expected NAMESPACE/NAME (got {value!r})", param_hint=flag)
    return namespace, name


def _host_port(value: str, flag: str) -> tuple[str, int]:
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(f"expected HOST:PORT (got {value!r})", param_hint=flag)
    return host.strip("[]") or "0.0.0.0", int(port)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _logging(fmt: str, verbose: bool) -> None:
    from ofobserve.tracing import JSONLogFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JSONLogFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(message)s")
    )
    root = logging.getLogger("ofobserve")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


@click.command()
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    envvar="OFOBSERVE_KUBECONFIG",
    show_envvar=True,
    help="Kubeconfig file. Default: $KUBECONFIG or ~/.kube/config, else the pod's service account.",
)
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    envvar="OFOBSERVE_NAMESPACES",
    show_envvar=True,
    help="Watch Functions in this namespace only (repeat it; the env var takes a "
    "space-separated list). Default: all namespaces.",
)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="OFOBSERVE_CONFIG",
    show_envvar=True,
    help="Settings file (defaults: and overrides:), read once at start.",
)
@click.option(
    "--config-map",
    envvar="OFOBSERVE_CONFIG_MAP",
    show_envvar=True,
    help="NAMESPACE/NAME of a ConfigMap holding the settings file, watched: a "
    "change re-renders every function.",
)
@click.option(
    "--config-map-key",
    default="ofobserve.yaml",
    show_default=True,
    envvar="OFOBSERVE_CONFIG_MAP_KEY",
    show_envvar=True,
    help="The ConfigMap's key that holds the settings.",
)
@click.option(
    "--fleet-namespace",
    envvar="OFOBSERVE_FLEET_NAMESPACE",
    show_envvar=True,
    help="Namespace of the fleet dashboards when grafana.namespace is unset. "
    "Default: the --config-map's namespace, else default.",
)
@click.option(
    "--no-patch-functions",
    is_flag=True,
    envvar="OFOBSERVE_NO_PATCH_FUNCTIONS",
    show_envvar=True,
    help="Do not patch Functions: neither the identity label (spec.serving.labels) nor "
    "the scaling wiring (spec.serving.scaleOptions.keda).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    envvar="OFOBSERVE_DRY_RUN",
    show_envvar=True,
    help="Print each object it would apply or delete, one a line on stdout; write nothing.",
)
@click.option(
    "--once",
    is_flag=True,
    envvar="OFOBSERVE_ONCE",
    show_envvar=True,
    help="Exit once every function has been reconciled (with --dry-run: a preview).",
)
@click.option(
    "--leader-elect",
    is_flag=True,
    envvar="OFOBSERVE_LEADER_ELECT",
    show_envvar=True,
    help="Reconcile only while holding a coordination.k8s.io/v1 Lease (for 2+ replicas).",
)
@click.option(
    "--lease-name",
    default="ofobserve-controller",
    show_default=True,
    envvar="OFOBSERVE_LEASE_NAME",
    show_envvar=True,
    help="The Lease's name.",
)
@click.option(
    "--lease-namespace",
    envvar="OFOBSERVE_LEASE_NAMESPACE",
    show_envvar=True,
    help="The Lease's namespace. Default: the --config-map's namespace, else "
    "$POD_NAMESPACE, else default.",
)
@click.option(
    "--lease-duration",
    type=click.FloatRange(min=1),
    default=15.0,
    show_default=True,
    envvar="OFOBSERVE_LEASE_DURATION",
    show_envvar=True,
    help="Seconds a non-leader waits after the last renewal before it takes over.",
)
@click.option(
    "--renew-deadline",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    envvar="OFOBSERVE_RENEW_DEADLINE",
    show_envvar=True,
    help="Seconds the leader keeps trying to renew before it stops reconciling.",
)
@click.option(
    "--retry-period",
    type=click.FloatRange(min=0.05),
    default=2.0,
    show_default=True,
    envvar="OFOBSERVE_RETRY_PERIOD",
    show_envvar=True,
    help="Seconds between two attempts to take or renew the Lease.",
)
@click.option(
    "--identity",
    envvar="OFOBSERVE_IDENTITY",
    show_envvar=True,
    help="This replica's name in the Lease. Default: $POD_NAME, else the host "
    "name, plus a random suffix.",
)
@click.option(
    "--listen",
    default="0.0.0.0:8080",
    show_default=True,
    envvar="OFOBSERVE_LISTEN",
    show_envvar=True,
    help="Address of /metrics, /healthz and /readyz.",
)
@click.option(
    "--watch-timeout",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    envvar="OFOBSERVE_WATCH_TIMEOUT",
    show_envvar=True,
    help="Seconds a watch lasts before it is resumed (timeoutSeconds).",
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
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    envvar="OFOBSERVE_VERBOSE",
    show_envvar=True,
    help="Debug logs.",
)
def controller(**options: Any) -> None:  # fmt: skip
    """Apply every Function's artifacts live, and prune them when it goes (docs/controller.md)."""
    o = options
    config_map = _namespaced(o["config_map"], "'--config-map'")
    host, port = _host_port(o["listen"], "'--listen'")
    if o["config_path"] and config_map:
        raise click.UsageError("give either --config or --config-map, not both")
    if o["dry_run"] and o["leader_elect"]:
        raise click.UsageError(
            "--dry-run writes nothing, so it takes no lease: drop --leader-elect"
        )
    if o["leader_elect"] and not o["retry_period"] < o["renew_deadline"] < o["lease_duration"]:
        raise click.UsageError(
            "leader election needs --retry-period < --renew-deadline < --lease-duration "
            f"(got {o['retry_period']:g} < {o['renew_deadline']:g} < {o['lease_duration']:g})"
        )
    for namespace in o["namespaces"]:
        if not _DNS_LABEL.fullmatch(namespace):
            raise click.BadParameter(
                f"{namespace!r} is not a namespace", param_hint="'--namespace'"
            )
    for flag in ("fleet_namespace", "lease_namespace"):
        if o[flag] is not None and not _DNS_LABEL.fullmatch(o[flag]):
            hint = "'--" + flag.replace("_", "-") + "'"
            raise click.BadParameter(f"{o[flag]!r} is not a namespace", param_hint=hint)
    _run(o, config_map, host, port)


def _run(o: dict[str, Any], config_map: tuple[str, str] | None, host: str, port: int) -> None:
    try:
        _serve(o, config_map, host, port)
    except ModuleNotFoundError as exc:  # the scaler-only image (deploy/image) lacks render's
        if exc.name is None or exc.name.partition(".")[0] == "ofobserve":
            raise
        _fail(f"ofobserve controller needs the controller extra ({exc.name} is missing): "
              "pip install 'ofobserve[controller]'")  # fmt: skip


def _serve(o: dict[str, Any], config_map: tuple[str, str] | None, host: str, port: int) -> None:
    import warnings

    from prometheus_client import CollectorRegistry

    from ofobserve.controller.election import LeaderElector
    from ofobserve.controller.metrics import ControllerMetrics
    from ofobserve.controller.ops import OpsServer
    from ofobserve.controller.reconciler import Options, Reconciler
    from ofobserve.controller.resources import CONFIGMAPS, FUNCTION_GROUP, function_kind
    from ofobserve.controller.settings_source import SettingsSource
    from ofobserve.controller.workqueue import WorkQueue
    from ofobserve.errors import ClusterUnavailable, InvalidInput
    from ofobserve.kube.client import APIError, Kube, load_api_client
    from ofobserve.kube.informer import Informer
    from ofobserve.loading import load_config
    from ofobserve.settings import Config

    _logging(o["log_format"], o["verbose"])
    config: Config | None = None
    if o["config_path"]:
        try:
            config = load_config(o["config_path"])
        except InvalidInput as exc:
            _fail("; ".join(str(p) for p in exc.problems))
    elif config_map is None:
        config = Config()
    try:
        api_client = load_api_client(o["kubeconfig"])
    except ClusterUnavailable as exc:
        _fail(str(exc))
    if not api_client.configuration.verify_ssl:  # the kubeconfig's own choice; said once
        import urllib3

        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        log.warning("the kubeconfig skips TLS verification of the API server")
    kube = Kube(api_client)
    try:
        group = kube.get(f"/apis/{FUNCTION_GROUP}")
    except APIError as exc:
        if exc.status == 404:
            _fail(f"the API server serves no {FUNCTION_GROUP}: is OpenFunction's CRD installed?")
        _fail(f"cannot read /apis/{FUNCTION_GROUP}: {exc}")
    except Exception as exc:
        _fail(f"cannot reach the API server {api_client.configuration.host}: {exc}")
    version = str((group.get("preferredVersion") or {}).get("version") or "v1beta2")

    cm_namespace = config_map[0] if config_map else None
    identity = o["identity"] or (
        f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    )
    lease_namespace = (
        o["lease_namespace"] or cm_namespace or os.environ.get("POD_NAMESPACE") or "default"
    )
    stop = threading.Event()
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    queue: WorkQueue[Any] = WorkQueue()
    elector: LeaderElector | None = None
    if o["leader_elect"]:
        elector = LeaderElector(
            kube,
            lease_namespace,
            o["lease_name"],
            identity,
            o["lease_duration"],
            o["renew_deadline"],
            o["retry_period"],
            on_change=lambda leading: metrics.leader.set(1 if leading else 0),
            stop=stop,
        )
    leading = elector.leading.is_set if elector is not None else (lambda: True)

    def restarted(resource: str, reason: str) -> None:
        metrics.watch_restarts.labels(resource, reason).inc()

    kind = function_kind(version)
    namespaces = tuple(dict.fromkeys(o["namespaces"])) or None
    functions: list[Informer] = []
    reconciler = Reconciler(
        kube,
        functions,
        queue,
        metrics,
        Options(
            patch_functions=not o["no_patch_functions"],
            dry_run=o["dry_run"],
            fleet_namespace=o["fleet_namespace"] or cm_namespace or "default",
            namespaces=namespaces,
            function_version=version,
            identity=identity,
            once=o["once"],
        ),
        leading=leading,
    )
    for namespace in namespaces or (None,):
        functions.append(
            Informer(
                kube,
                f"functions.{version}" + (f"/{namespace}" if namespace else ""),
                kind.path(namespace),
                reconciler.on_function,
                restarted,
                stop,
                watch_timeout=o["watch_timeout"],
            )
        )
    informers = list(functions)
    source: SettingsSource | None = None
    if config_map is not None:
        source = SettingsSource(config_map, o["config_map_key"], reconciler.set_config)
        informers.append(
            Informer(
                kube,
                f"configmap/{config_map[0]}/{config_map[1]}",
                CONFIGMAPS.path(config_map[0]),
                source.on_event,
                restarted,
                stop,
                field_selector=f"metadata.name={config_map[1]}",
                watch_timeout=o["watch_timeout"],
            )
        )
    else:
        assert config is not None
        reconciler.set_config(config)
    metrics.track_queue(lambda: len(queue))
    metrics.track_functions(reconciler.function_count)
    if elector is None:
        metrics.leader.set(1)

    def synced() -> bool:
        return all(i.synced.is_set() for i in informers)

    def ready() -> bool:  # listed, and settings in force (not refused at start)
        return synced() and reconciler.config is not None

    try:
        ops = OpsServer(host, port, registry, ready)
    except OSError as exc:
        _fail(f"cannot listen on {o['listen']}: {exc.strerror}")

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s: finishing the current reconcile, then stopping",
                 signal.Signals(signum).name)  # fmt: skip
        stop.set()
        queue.shutdown()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ops.start()
    for informer in informers:
        informer.start()
    if elector is not None:
        elector.start()
    log.info(
        "controller %s: Functions %s in %s, listening on %s:%d%s",
        identity,
        kind.api_version,
        ", ".join(namespaces) if namespaces else "every namespace",
        host,
        ops.port,
        " (dry run)" if o["dry_run"] else "",
    )
    try:
        while not stop.is_set():
            if source is not None and synced() and reconciler.config is None:
                source.absent()
            if not synced() or reconciler.config is None:
                stop.wait(0.05)
                continue
            if not leading():
                if reconciler.index is not None:
                    reconciler.lost_leadership()
                stop.wait(0.05)
                continue
            try:
                worked = reconciler.process(0.2)
            except Exception as exc:  # listing the managed objects failed: try again
                log.warning("cannot list the managed objects: %s", exc)
                reconciler.lost_leadership()
                stop.wait(1.0)
                continue
            if o["once"] and not worked and len(queue) == 0:
                break
    finally:
        stop.set()
        queue.shutdown()
        if elector is not None:
            elector.release()
        ops.stop()
        log.info("stopped")
    if o["once"] and (reconciler.errors or reconciler.failures):
        failed = {**reconciler.failures, **reconciler.errors}
        _fail(
            f"{len(failed)} not reconciled: "
            + "; ".join(f"{owner}: {message}" for owner, message in sorted(failed.items()))
        )

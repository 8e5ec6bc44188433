"""The ``ofobserve`` command line. Does I/O: parses flags, calls the library, maps errors.

Data goes to stdout, notes and the summary to stderr. Exit codes: 0 success, 1 invalid
input or drift, 2 usage error. Every option can also be set by an ``OFOBSERVE_*``
environment variable, shown in ``--help``.

The renderers and the settings models load inside the commands that use them, so that
``ofobserve scaler`` runs with the scaler's dependencies only (deploy/image); there, the
other commands say in one line which install extra they need (``ofobserve.extras``, the
console script, checks it first; this is the fallback).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from ofobserve import __version__
from ofobserve.controller.command import controller
from ofobserve.errors import (
    ClusterUnavailable,
    DriftDetected,
    InvalidInput,
    Location,
    Problem,
    ToolMissing,
)
from ofobserve.extras import COMMAND_EXTRAS, install_hint
from ofobserve.scaler.command import scaler

if TYPE_CHECKING:
    from ofobserve.render import Artifact, Format
    from ofobserve.settings import Settings
    from ofobserve.subject import Subject

log = logging.getLogger("ofobserve")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
PROGRESS_AFTER_SECONDS = 1.0
#: Functions named per reason under the summary table.
SUMMARY_NAMES = 3


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ofobserve")
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    envvar="OFOBSERVE_QUIET",
    show_envvar=True,
    help="Print errors only: no notes, no summary.",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    envvar="OFOBSERVE_VERBOSE",
    show_envvar=True,
    help="Print debug logs.",
)
def main(quiet: bool, verbose: bool) -> None:
    """Observability and autoscaling for OpenFunction functions."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_NoteFormatter())
    root = logging.getLogger("ofobserve")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class _NoteFormatter(logging.Formatter):
    """``note: ...`` for information, ``warning: ...`` and so on for the rest."""

    def format(self, record: logging.LogRecord) -> str:
        level = "note" if record.levelno == logging.INFO else record.levelname.lower()
        return f"{level}: {record.getMessage()}"


@contextlib.contextmanager
def _full_install() -> Iterator[None]:
    """Around the imports of a command's library: where only the scaler's dependencies are
    installed (deploy/image), a missing one is one line on stderr and exit 1."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] == "ofobserve":
            raise
        ctx = click.get_current_context(silent=True)
        command = ctx.command_path if ctx is not None else "ofobserve"
        extra = COMMAND_EXTRAS.get(ctx.info_name or "" if ctx is not None else "", "all")
        click.echo(
            f"error: {command} needs the {extra} extra ({exc.name} is missing): "
            f"{install_hint(extra)}",
            err=True,
        )
        sys.exit(1)


class _GroupChoice(click.Choice[str]):
    """``render --only``: the artifact groups, read from ofobserve.render only when render
    parses or shows its options, so that no other command imports the renderers."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        with _full_install():
            from ofobserve.render import GROUP_NAMES
        return GROUP_NAMES

    @choices.setter
    def choices(self, _value: tuple[str, ...]) -> None:
        """Ignored: the groups are render's."""


def _input_options(command: F) -> F:
    """Options shared by every command that reads Functions."""
    options = [
        click.argument("paths", nargs=-1, type=click.Path(dir_okay=True, allow_dash=True)),
        click.option(
            "-c",
            "--config",
            "config_path",
            type=click.Path(dir_okay=False),
            envvar="OFOBSERVE_CONFIG",
            show_envvar=True,
            help="Settings file with defaults: and overrides:.",
        ),
        click.option(
            "--from-cluster",
            is_flag=True,
            envvar="OFOBSERVE_FROM_CLUSTER",
            show_envvar=True,
            help="List Functions from the cluster (kubeconfig or in-cluster config).",
        ),
        click.option(
            "-n",
            "--namespace",
            envvar="OFOBSERVE_NAMESPACE",
            show_envvar=True,
            help="With --from-cluster: only this namespace (default: all).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _load(
    paths: Sequence[str],
    config_path: str | None,
    from_cluster: bool,
    namespace: str | None,
    strict: bool = False,
) -> tuple[list[Subject], Settings]:
    """The subjects, and the fleet's settings (the config's ``defaults:``)."""
    if from_cluster and paths:
        raise click.UsageError("give either PATHS or --from-cluster, not both")
    if namespace and not from_cluster:
        raise click.UsageError("--namespace only applies with --from-cluster")
    if not from_cluster and not paths:
        raise click.UsageError("no input: give PATHS (files, directories or -) or --from-cluster")
    with _full_install():
        from ofobserve.loading import build_functions, load_config, load_inputs, resolve_subjects
        from ofobserve.settings import fleet_settings
    if not from_cluster:
        config, subjects = load_inputs(paths, config_path, strict=strict)
        return subjects, fleet_settings(config)
    from ofobserve.cluster import load_cluster_documents

    config = load_config(config_path)
    documents, refs = load_cluster_documents(namespace)
    functions = build_functions(documents, refs, strict=strict)
    return resolve_subjects(functions, config), fleet_settings(config)


@main.command()
@_input_options
@click.option(
    "-o",
    "--output",
    default="ofobserve-out",
    show_default=True,
    envvar="OFOBSERVE_OUTPUT",
    show_envvar=True,
    help="Output directory: each artifact group's folder in it is replaced atomically. "
    "- writes one stream on stdout.",
)
@click.option(
    "--format",
    "stream_format",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    envvar="OFOBSERVE_FORMAT",
    show_envvar=True,
    help="Stream format with -o -: multi-document YAML, or JSON Lines.",
)
@click.option(
    "--only",
    "groups",
    multiple=True,
    type=_GroupChoice(),
    envvar="OFOBSERVE_ONLY",
    show_envvar=True,
    help="Render only these artifact groups (repeatable). Default: all.",
)
@click.option(
    "--check",
    is_flag=True,
    envvar="OFOBSERVE_CHECK",
    show_envvar=True,
    help="Write nothing; list files that differ from the output directory, exit 1 if any.",
)
def render(
    paths: tuple[str, ...],
    config_path: str | None,
    from_cluster: bool,
    namespace: str | None,
    output: str,
    stream_format: Format,
    groups: tuple[str, ...],
    check: bool,
) -> None:
    """Render observability and scaling artifacts for Functions.

    PATHS are files, directories (searched for *.yaml and *.yml) or - for stdin.
    """
    if check and output == "-":
        raise click.UsageError("--check compares against a directory; it cannot use -o -")
    with _full_install():
        from ofobserve.output import compare_tree, write_tree
        from ofobserve.render import GROUP_NAMES, render_fleet, render_subject
        from ofobserve.serialize import serialize_stream, serialize_tree
    with _errors():
        subjects, fleet = _load(paths, config_path, from_cluster, namespace)
        chosen = groups or GROUP_NAMES
        artifacts = [a for s in _progress(subjects) for a in render_subject(s, chosen)]
        artifacts += render_fleet(subjects, fleet, chosen)
        artifacts.sort(key=lambda a: a.path)
        if output == "-":
            click.echo(serialize_stream(artifacts, stream_format), nl=False)
        else:
            files = serialize_tree(artifacts)
            if check:
                drifted = compare_tree(output, files, chosen)
                if drifted:
                    raise DriftDetected(f"{output.rstrip('/')}/{p}" for p in drifted)
                log.info("%s is up to date (%d files)", output, len(files))
            else:
                write_tree(output, files, chosen)
                log.info("wrote %d files to %s", len(files), output)
        _summary(subjects, artifacts, chosen)


@main.command()
@_input_options
@click.option(
    "--strict",
    is_flag=True,
    envvar="OFOBSERVE_STRICT",
    show_envvar=True,
    help="Fail on every field OpenFunction's API would drop (warnings become errors).",
)
def validate(
    paths: tuple[str, ...],
    config_path: str | None,
    from_cluster: bool,
    namespace: str | None,
    strict: bool,
) -> None:
    """Check Function manifests and settings only; print every error found.

    PATHS are files, directories (searched for *.yaml and *.yml) or - for stdin.
    """
    with _errors():
        subjects, _fleet = _load(paths, config_path, from_cluster, namespace, strict)
        log.info("%d function(s) valid", len(subjects))


@main.command("test-rules")
@click.argument("directory", default="ofobserve-out", type=click.Path(file_okay=False))
@click.option(
    "--promtool",
    type=click.Path(dir_okay=False),
    envvar="OFOBSERVE_PROMTOOL",
    show_envvar=True,
    help="promtool to run. Default: the one on PATH.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    envvar="OFOBSERVE_JOBS",
    show_envvar=True,
    help="promtool processes at once. Default: one per CPU.",
)
def test_rules(directory: str, promtool: str | None, jobs: int | None) -> None:
    """Run the promtool unit tests render wrote (DIRECTORY: a render output, or its rules/).

    Works with either alerting.delivery: each PrometheusRule's spec is what promtool reads.
    Prints promtool's verdict; exit 1 when a test fails.
    """
    from ofobserve.rule_testing import run_rule_tests

    with _errors():
        report = run_rule_tests(directory, promtool, jobs or 0)
        click.echo(report.output, nl=False)
        verdict = "passed" if report.passed else "FAILED"
        log.info("%d promtool test file(s) %s", report.files, verdict)
        if not report.passed:
            sys.exit(1)


class _Duration(click.ParamType[float]):
    """A duration: seconds, or a number with ms, s, m or h; at least ``low``."""

    name = "duration"

    def __init__(self, low: float = 0.0, allow_zero: bool = True) -> None:
        self.low, self.allow_zero = low, allow_zero

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        from ofobserve.scaler.config import duration_seconds

        if isinstance(value, float):
            return value
        seconds = duration_seconds(str(value))
        if seconds is None or seconds < self.low or (seconds == 0 and not self.allow_zero):
            bound = ">= 0" if self.allow_zero else "> 0"
            self.fail(f"must be a duration {bound}: seconds, or with ms, s, m or h (got {value!r})")
        return seconds


class _Range(click.ParamType[tuple[float, float]]):
    """``LOW-HIGH`` durations (``1s-5s``), or one duration for a fixed value."""

    name = "range"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[float, float]:
        if isinstance(value, tuple):
            return value
        parts = str(value).split("-")
        one = _Duration()
        if len(parts) not in (1, 2) or not all(parts):
            self.fail(f"must be LOW-HIGH durations such as 1s-5s, or one duration (got {value!r})")
        low, high = (one.convert(x, param, ctx) for x in (parts[0], parts[-1]))
        if high < low:
            self.fail(f"the high end must not be below the low end (got {value!r})")
        return (low, high)


def _policies(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    with _full_install():
        from ofobserve.simulate.policies import POLICIES

    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown or not names:
        raise click.BadParameter(
            f"unknown policy {unknown[0]!r}; choose from {', '.join(POLICIES)}"
            if unknown
            else f"give at least one of {', '.join(POLICIES)}"
        )
    return tuple(dict.fromkeys(names))


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    from ofobserve.scaler.config import duration_seconds

    now = datetime.now(UTC)
    ago = duration_seconds(value[:-4]) if value.endswith(" ago") else None
    if ago is not None:
        return now - timedelta(seconds=ago)
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"must be ISO 8601 (2026-01-06T09:00:00Z) or a duration ago ('2h ago'); got {value!r}"
        ) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


class _Finite(click.ParamType[float]):
    """A finite number (not nan, not inf) within bounds; ``click.FloatRange`` lets nan
    through, since every comparison with it is false."""

    name = "float"

    def __init__(
        self,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
    ) -> None:
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def _bounds(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(parts)

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        low, high = self.low, self.high
        ok = math.isfinite(number)
        if ok and low is not None:
            ok = number > low if self.low_open else number >= low
        if ok and high is not None:
            ok = number < high if self.high_open else number <= high
        if not ok:
            bound = self._bounds()
            self.fail(f"must be a finite number{' ' + bound if bound else ''} (got {value!r})")
        return number


_POSITIVE = _Finite(0, low_open=True)


@main.command(context_settings={"auto_envvar_prefix": "OFOBSERVE_SIMULATE"})
@click.argument("trace", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--policies",
    default="ofobserve,kpa,keda-prometheus,hpa-cpu",
    show_default=True,
    callback=_policies,
    help="Comma-separated: ofobserve, kpa, keda-prometheus, hpa-cpu.",
)
@click.option("--function", "function", help="The function in the trace (default: the busiest); "
              "with --prometheus, namespace/name.")  # fmt: skip
@click.option("--scale", type=_POSITIVE, default=1.0, show_default=True,
              help="Multiply the arrival rate.")  # fmt: skip
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--slo", type=_Duration(allow_zero=False), default="0.5s", show_default=True,
              help="Latency objective: requests over it violate the SLO; ofobserve's "
              "latencyObjective.")  # fmt: skip
@click.option("--container-concurrency", type=click.IntRange(min=0), default=10,
              show_default=True,
              help="Requests one replica serves at once (0: unlimited).")  # fmt: skip
@click.option("--timeout", type=_Duration(allow_zero=False), default="300s", show_default=True,
              help="A request is cut after this long (queue + service).")  # fmt: skip
@click.option("--cold-start", type=_Range(), default="1s-5s", show_default=True,
              help="A new replica's start-up delay: uniform between LOW-HIGH.")  # fmt: skip
@click.option("--service-time", type=_Duration(allow_zero=False), default="100ms",
              show_default=True, help="Mean of the exponential service time, where the trace "
              "has none (per-minute counts).")  # fmt: skip
@click.option("--max-replicas", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--initial-replicas", type=click.IntRange(min=0),
              help="Replicas ready at the start (default: what the first minute's load "
              "needs at the concurrency target).")  # fmt: skip
@click.option("--target-concurrency", type=_POSITIVE,
              help="ofobserve's and the KPA's per-replica target (default: "
              "--container-concurrency, or 100 when unlimited).")  # fmt: skip
@click.option("--target-utilization", type=_Finite(0, 1, low_open=True), default=0.7,
              show_default=True)  # fmt: skip
@click.option("--scale-down-delay", type=_Duration(), default="0s", show_default=True,
              help="ofobserve: its scaleDownDelay key (hold the highest answer "
              "this long).")  # fmt: skip
@click.option("--kpa-scale-down-delay", type=_Duration(), default="0s", show_default=True,
              help="kpa: Knative's scale-down-delay (hold the highest answer "
              "this long).")  # fmt: skip
@click.option("--source", type=click.Choice(["prometheus", "direct"]), default="prometheus",
              show_default=True, help="ofobserve: the scaler's --source and what it reads "
              "(prometheus: the Knative queue-proxies' running + queued requests and latency "
              "with the queue wait, as of the last --scrape-interval scrape: the KPA's "
              "information, later; direct: the native profile from the pods every second, "
              "running requests and handler time only). Neither sees a function at zero "
              "replicas.")  # fmt: skip
@click.option("--keda-threshold", type=_POSITIVE,
              help="keda-prometheus: requests/s per replica (default: target concurrency x "
              "utilization / mean service time).")  # fmt: skip
@click.option("--cpu-target", type=click.IntRange(1, 100), default=70, show_default=True,
              help="hpa-cpu: CPU utilization target, percent.")  # fmt: skip
@click.option("--scrape-interval", type=_Duration(allow_zero=False), default="15s",
              show_default=True)  # fmt: skip
@click.option("--evaluation-lag", type=_Duration(), default="0s", show_default=True,
              help="How far behind the newest scrape a query sees.")  # fmt: skip
@click.option("--polling-interval", type=_Duration(allow_zero=False), default="30s",
              show_default=True, help="KEDA's pollingInterval.")  # fmt: skip
@click.option("--cooldown-period", type=_Duration(), default="300s", show_default=True,
              help="KEDA's cooldownPeriod before scaling to zero.")  # fmt: skip
@click.option("--hpa-sync", type=_Duration(allow_zero=False), default="15s", show_default=True)
@click.option("--hpa-tolerance", type=_Finite(0, 1, high_open=True), default=0.1,
              show_default=True)  # fmt: skip
@click.option("--downscale-stabilization", type=_Duration(), default="300s", show_default=True,
              help="The HPA's scale-down window (keda-prometheus, hpa-cpu).")  # fmt: skip
@click.option("--prometheus", help="Read the traffic from this Prometheus "
              "(with --function ns/name, --start, --end) instead of TRACE.")  # fmt: skip
@click.option("--start", callback=_when, help="With --prometheus: ISO 8601 or '2h ago'.")
@click.option("--end", callback=_when, help="With --prometheus: ISO 8601 or '1h ago'.")
@click.option("--format", type=click.Choice(["table", "json"]),
              default="table", show_default=True)  # fmt: skip
@click.option("--plot", type=click.Path(dir_okay=False),
              help="Write load, replicas and p95 latency over time to this PNG.")  # fmt: skip
def simulate(
    trace: str | None,
    policies: tuple[str, ...],
    function: str | None,
    scale: float,
    seed: int,
    slo: float,
    container_concurrency: int,
    timeout: float,
    cold_start: tuple[float, float],
    service_time: float,
    max_replicas: int,
    initial_replicas: int | None,
    target_concurrency: float | None,
    target_utilization: float,
    scale_down_delay: float,
    kpa_scale_down_delay: float,
    source: str,
    keda_threshold: float | None,
    cpu_target: int,
    scrape_interval: float,
    evaluation_lag: float,
    polling_interval: float,
    cooldown_period: float,
    hpa_sync: float,
    hpa_tolerance: float,
    downscale_stabilization: float,
    prometheus: str | None,
    start: datetime | None,
    end: datetime | None,
    format: str,
    plot: str | None,
) -> None:
    """Replay a trace through ofobserve's policy, Knative's KPA, KEDA and the HPA.

    TRACE is an OrcBench CSV, Azure Functions 2019 per-minute counts, or a per-request CSV
    (timestamp,duration). Virtual time, deterministic for a seed (docs/simulate.md).
    Every option can also be set as OFOBSERVE_SIMULATE_<OPTION> (OFOBSERVE_SIMULATE_SCALE).
    """
    if trace is not None and prometheus is not None:
        raise click.UsageError("give either TRACE or --prometheus URL, not both")
    if trace is None and prometheus is None:
        raise click.UsageError(
            "give a TRACE, or --prometheus URL with --function NAMESPACE/NAME, --start and --end"
        )
    if prometheus is not None and (function is None or start is None or end is None):
        raise click.UsageError("--prometheus needs --function NAMESPACE/NAME, --start and --end")
    with _full_install():
        from ofobserve.simulate.model import Params, Pipeline
        from ofobserve.simulate.report import build_report, render_json, render_table
        from ofobserve.simulate.runner import resolved, run_policies
    params = Params(
        slo=slo,
        container_concurrency=container_concurrency,
        timeout=timeout,
        cold_start=cold_start,
        max_replicas=max_replicas,
        initial_replicas=initial_replicas,
        target_concurrency=target_concurrency,
        target_utilization=target_utilization,
        scale_down_delay=scale_down_delay,
        kpa_scale_down_delay=kpa_scale_down_delay,
        source=source,
        keda_threshold=keda_threshold,
        cpu_target=cpu_target / 100.0,
        seed=seed,
        pipeline=Pipeline(
            scrape_interval=scrape_interval,
            evaluation_lag=evaluation_lag,
            polling_interval=polling_interval,
            cooldown_period=cooldown_period,
            hpa_sync=hpa_sync,
            hpa_tolerance=hpa_tolerance,
            downscale_stabilization=downscale_stabilization,
        ),
    )
    with _errors():
        if plot is not None:  # before the run: a bad --plot should not cost a simulation
            _plot_directory(plot)
        if trace is not None:
            from ofobserve.simulate.traces import load_trace

            traffic = load_trace(trace, function, service_time, scale, seed)
        else:
            from ofobserve.simulate.history import load_history

            assert prometheus
            assert function
            assert start
            assert end
            traffic = load_history(prometheus, function, start, end, service_time, scale, seed)
        params = resolved(params, traffic)
        runs = run_policies(traffic, params, policies)
        report = build_report(traffic, params, runs)
        click.echo(render_json(report) if format == "json" else render_table(report), nl=False)
        if plot is not None:
            with _full_install():
                from ofobserve.simulate.plot import write_plot
            try:
                write_plot(plot, traffic, params, runs)
            except OSError as exc:
                raise InvalidInput(
                    [Problem(Location(f"--plot {plot}"), f"cannot write: {exc.strerror or exc}")]
                ) from None
            log.info("wrote %s", plot)


@main.command(context_settings={"auto_envvar_prefix": "OFOBSERVE_DEMO"})
@click.option("--scenario", type=click.Choice(["quick", "full"]), default="quick",
              show_default=True, help="quick: about 3 minutes, the rules' windows and "
              "KEDA's timings run 10x faster; full: about 23 minutes at real speed.")  # fmt: skip
@click.option("--duration", type=click.FloatRange(min=60), help="Stretch or shrink the "
              "scenario's phases to last this many seconds in all.")  # fmt: skip
@click.option("--output", type=click.Path(file_okay=False), default="ofobserve-demo",
              show_default=True, help="Where the summary, timeline, PNG, logs and the "
              "servers' files go (an earlier demo's output is replaced).")  # fmt: skip
@click.option("--keep-running", is_flag=True, help="After the scenario, keep Prometheus, "
              "Alertmanager and the scaler up until Ctrl-C.")  # fmt: skip
@click.option("--no-live", is_flag=True, help="No live view: a line every 10 s instead "
              "(also when the output is not a terminal).")  # fmt: skip
@click.option("--prometheus-port", type=click.IntRange(1, 65535), default=9090,
              show_default=True)  # fmt: skip
@click.option("--alertmanager-port", type=click.IntRange(1, 65535), default=9093,
              show_default=True)  # fmt: skip
@click.option("--scaler-port", type=click.IntRange(1, 65535), default=6000,
              show_default=True, help="The scaler's gRPC port.")  # fmt: skip
@click.option("--scaler-metrics-port", type=click.IntRange(1, 65535), default=9100,
              show_default=True)  # fmt: skip
@click.option("--prometheus-bin", help="The prometheus binary (default: on PATH).")
@click.option(
    "--alertmanager-bin", help="The Alertmanager binary (default: prometheus-alertmanager on PATH)."
)
def demo(
    scenario: str,
    duration: float | None,
    output: str,
    keep_running: bool,
    no_live: bool,
    prometheus_port: int,
    alertmanager_port: int,
    scaler_port: int,
    scaler_metrics_port: int,
    prometheus_bin: str | None,
    alertmanager_bin: str | None,
) -> None:
    """Run the whole loop on this machine: load in, replicas 0 -> N -> 0, an alert fires
    and resolves.

    Starts, on 127.0.0.1, a real Prometheus with the rules `ofobserve render` writes for
    the demo function, a real Alertmanager, `ofobserve scaler --source direct`, the demo
    function's replicas (real processes, instrumented with ofobserve.instrument), and two
    stand-ins: an event source with its broker (for Kafka and daprd) and a replica
    controller (for KEDA and the HPA). Prints the summary and writes summary.json,
    timeline.csv and demo.png to --output (docs/demo.md).
    """
    from pathlib import Path

    # The demo forks replicas while its gRPC channel is open: gRPC's fork handlers are
    # for children that use gRPC, which these do not (and they log a line per fork).
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    from ofobserve.demo.processes import DemoError
    from ofobserve.demo.report import render_text
    from ofobserve.demo.runner import Options, run_demo
    from ofobserve.demo.scenario import SCENARIOS

    chosen = SCENARIOS[scenario]
    if duration is not None:
        chosen = chosen.stretched(duration)
    options = Options(
        chosen, Path(output), keep_running=keep_running, live=not no_live,
        prometheus_port=prometheus_port, alertmanager_port=alertmanager_port,
        scaler_port=scaler_port, scaler_metrics_port=scaler_metrics_port,
        prometheus=prometheus_bin, alertmanager=alertmanager_bin,
    )  # fmt: skip
    try:
        summary, _ = run_demo(options)
    except DemoError as exc:
        click.echo(f"error: {exc}", err=True)
        click.echo("everything the demo started is stopped", err=True)
        sys.exit(1)
    click.echo(render_text(summary))
    log.info("wrote %s/summary.json, timeline.csv, demo.png", output)
    if summary.interrupted:
        sys.exit(130)


def _plot_directory(plot: str) -> None:
    """``--plot``'s directory exists and takes a new file (InvalidInput, exit 1, if not)."""
    parent = os.path.dirname(os.path.abspath(plot))
    problem = None
    if not os.path.isdir(parent):
        problem = f"no such directory {parent}"
    elif not os.access(parent, os.W_OK | os.X_OK):
        problem = f"cannot write in {parent}"
    if problem is not None:
        raise InvalidInput([Problem(Location(f"--plot {plot}"), problem)])


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Map library errors to one line per problem on stderr and exit code 1."""
    try:
        yield
    except InvalidInput as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        click.echo(f"{len(exc.problems)} error(s); nothing was written", err=True)
        sys.exit(1)
    except DriftDetected as exc:
        for path in exc.paths:
            click.echo(f"drifted: {path}", err=True)
        click.echo(
            f"{len(exc.paths)} file(s) differ from what render produces; "
            "run render without --check to update them",
            err=True,
        )
        sys.exit(1)
    except ClusterUnavailable as exc:
        click.echo(f"error: cluster: {exc}", err=True)
        sys.exit(1)
    except ToolMissing as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _progress(
    items: Sequence[T],
    stream: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[T]:
    """Yield ``items``; show a progress bar on a terminal once it takes over a second."""
    out = stream or sys.stderr
    start = clock()
    for index, item in enumerate(items):
        if clock() - start > PROGRESS_AFTER_SECONDS and out.isatty():
            rest = items[index:]
            with click.progressbar(length=len(rest), label="rendering", file=out) as bar:
                for later in rest:
                    yield later
                    bar.update(1)
            return
        yield item


def _summary(
    subjects: Sequence[Subject], artifacts: Sequence[Artifact], groups: Sequence[str]
) -> None:
    """Functions x artifact groups, on stderr (suppressed by --quiet)."""
    from ofobserve.render import skip_reasons

    if not log.isEnabledFor(logging.INFO):
        return
    made = {(a.function, a.group) for a in artifacts}
    header = ["FUNCTION", "RUNTIME", "PROFILE", *groups]
    rows = [header]
    for s in subjects:
        f = s.function
        rows.append(
            [
                f.qualified_name,
                f.runtime.value,
                s.profile,
                *("yes" if (f.key, g) in made else "-" for g in groups),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), err=True
        )
    why: dict[tuple[str, str], list[str]] = {}
    for s in subjects:
        for group, reason in skip_reasons(s, groups):
            if (s.function.key, group) not in made:
                why.setdefault((group, reason), []).append(s.function.qualified_name)
    tail = "; '-' = none, because:" if why else ""
    click.echo(f"{len(subjects)} function(s), {len(artifacts)} artifact(s){tail}", err=True)
    for (group, reason), names in why.items():
        shown = ", ".join(names[:SUMMARY_NAMES])
        more = f" and {len(names) - SUMMARY_NAMES} more" if len(names) > SUMMARY_NAMES else ""
        click.echo(f"  {group}: {reason}: {shown}{more}", err=True)


main.add_command(scaler)
main.add_command(controller)

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
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from ofobserve import __version__
from ofobserve.controller.command import controller
from ofobserve.errors import ClusterUnavailable, DriftDetected, InvalidInput, ToolMissing
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

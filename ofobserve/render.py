"""The pure middle of the pipeline: subjects in, artifacts (paths and plain data) out.

No I/O. Each artifact group has one builder; a builder returning ``None`` means the
artifact does not apply to that function (the summary shows why).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from ofobserve import conventions as c
from ofobserve.builders.dashboards import build_dashboard_file, build_dashboard_resource
from ofobserve.builders.fleet_dashboards import (
    build_overview_file,
    build_overview_resource,
    build_scaler_file,
    build_scaler_resource,
)
from ofobserve.builders.knative_config import build_knative_observability_patch
from ofobserve.builders.monitors import build_pod_monitor, why_no_monitor
from ofobserve.builders.patches import build_function_patch
from ofobserve.builders.rule_tests import build_rule_tests
from ofobserve.builders.rules import build_fleet_prometheus_rules, build_prometheus_rule
from ofobserve.builders.scaling import (
    build_scaling,
    build_trigger_authentication,
    why_not_wired,
)
from ofobserve.builders.telemetry import (
    build_collector,
    build_collector_configmap,
    build_fluent_bit,
    build_fluent_bit_configmap,
    build_fluent_bit_values,
    build_otel_env_patch,
)
from ofobserve.settings import Settings
from ofobserve.subject import Subject

Format = Literal["yaml", "json"]


@dataclass(frozen=True)
class Artifact:
    """One output file: where it goes (POSIX, relative), its content, and whose it is."""

    path: str
    content: Any
    format: Format
    group: str
    function: tuple[str, str] | None = None


@dataclass(frozen=True)
class ArtifactKind:
    """One file per function in a group, under ``<group>/<folder>/<ns>/<name>.<format>``."""

    build: Callable[[Subject], Any]
    format: Format = "yaml"
    folder: str = ""


@dataclass(frozen=True)
class FleetKind:
    """One file for all functions, at ``<group>/<name>.<format>``, built from every subject
    and the fleet's settings (the config's ``defaults:``). With ``many``, the build gives
    several by name, written as ``<group>/<name>/<key>.<format>``."""

    name: str
    build: Callable[[Sequence[Subject], Settings], Any]
    format: Format = "yaml"
    many: bool = False


@dataclass(frozen=True)
class ArtifactGroup:
    """A top-level output folder, replaced as a whole on every render."""

    name: str
    kinds: tuple[ArtifactKind, ...]
    fleet: tuple[FleetKind, ...] = ()
    #: Why a function gets nothing in this group (``None``: it does, or no reason is kept).
    why_not: Callable[[Subject], str | None] = lambda _subject: None


GROUPS: tuple[ArtifactGroup, ...] = (
    ArtifactGroup("patches", (ArtifactKind(build_function_patch),)),
    ArtifactGroup(
        "monitors",
        (ArtifactKind(build_pod_monitor),),
        (FleetKind("knative-config-observability", build_knative_observability_patch),),
        why_not=why_no_monitor,
    ),
    ArtifactGroup(
        "scaling",
        (ArtifactKind(build_scaling), ArtifactKind(build_trigger_authentication, folder="auth")),
        why_not=why_not_wired,
    ),
    ArtifactGroup(
        "rules",
        (ArtifactKind(build_prometheus_rule), ArtifactKind(build_rule_tests, folder="tests")),
        (FleetKind(c.FLEET_RULES_FOLDER, build_fleet_prometheus_rules, many=True),),
    ),
    ArtifactGroup(
        "telemetry",
        (ArtifactKind(build_otel_env_patch),),
        (
            FleetKind("fluent-bit", build_fluent_bit),
            FleetKind("fluent-bit-configmap", build_fluent_bit_configmap),
            FleetKind("fluent-bit-values", build_fluent_bit_values),
            FleetKind("otel-collector", build_collector),
            FleetKind("otel-collector-configmap", build_collector_configmap),
        ),
    ),
    ArtifactGroup(
        "dashboards",
        (ArtifactKind(build_dashboard_file, format="json"), ArtifactKind(build_dashboard_resource)),
        (
            FleetKind("ofobserve-overview", build_overview_file, "json"),
            FleetKind("ofobserve-overview", build_overview_resource),
            FleetKind("ofobserve-scaler", build_scaler_file, "json"),
            FleetKind("ofobserve-scaler", build_scaler_resource),
        ),
    ),
)
GROUP_NAMES: tuple[str, ...] = tuple(g.name for g in GROUPS)


def artifact_path(group: str, kind: ArtifactKind, namespace: str, name: str) -> str:
    folder = f"{kind.folder}/" if kind.folder else ""
    return f"{group}/{folder}{namespace}/{name}.{kind.format}"


def render_subject(subject: Subject, groups: Iterable[str] = GROUP_NAMES) -> Iterator[Artifact]:
    """Every artifact of one function, in group order."""
    wanted = set(groups)
    f = subject.function
    for group in GROUPS:
        if group.name not in wanted:
            continue
        for kind in group.kinds:
            content = kind.build(subject)
            if content is not None:
                yield Artifact(
                    path=artifact_path(group.name, kind, f.namespace, f.name),
                    content=content,
                    format=kind.format,
                    group=group.name,
                    function=f.key,
                )


def skip_reasons(subject: Subject, groups: Iterable[str] = GROUP_NAMES) -> list[tuple[str, str]]:
    """``(group, reason)`` for each chosen group that gives this function nothing, and says
    why."""
    wanted = set(groups)
    found = []
    for group in GROUPS:
        reason = group.why_not(subject) if group.name in wanted else None
        if reason:
            found.append((group.name, reason))
    return found


def render_fleet(
    subjects: Sequence[Subject], settings: Settings, groups: Iterable[str] = GROUP_NAMES
) -> Iterator[Artifact]:
    """The artifacts that span every function (fleet dashboards, log and trace pipelines)."""
    wanted = set(groups)
    for group in GROUPS:
        if group.name not in wanted:
            continue
        for kind in group.fleet:
            content = kind.build(subjects, settings)
            if content is None:
                continue
            files = (
                {f"{kind.name}/{key}": value for key, value in content.items()}
                if kind.many
                else {kind.name: content}
            )
            for name, value in files.items():
                path = f"{group.name}/{name}.{kind.format}"
                yield Artifact(path=path, content=value, format=kind.format, group=group.name)


def render_all(
    subjects: Iterable[Subject],
    groups: Iterable[str] = GROUP_NAMES,
    fleet: Settings | None = None,
) -> list[Artifact]:
    """Every artifact of every function, then the fleet's (``fleet``: its settings, by
    default the built-in ones), sorted by path."""
    chosen, subjects = tuple(groups), list(subjects)
    with no_cycle_collection():
        artifacts = [a for s in subjects for a in render_subject(s, chosen)]
        artifacts += render_fleet(subjects, fleet or Settings(), chosen)
    return sorted(artifacts, key=lambda a: a.path)


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused, then restored as it was.

    Rendering allocates millions of plain containers and frees almost none: each pass of
    the collector walks the growing heap and finds nothing (about a quarter of the build
    and a fifth of serializing at 500 functions, bench/render.py). Reference counting
    still frees everything else; cycles made meanwhile wait for the next pass."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

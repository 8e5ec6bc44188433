"""The pure middle of the pipeline: subjects in, artifacts (paths and plain data) out.

No I/O. Each artifact group has one builder; a builder returning ``None`` means the
artifact does not apply to that function (the summary shows why).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ofobserve.builders.monitors import build_pod_monitor
from ofobserve.builders.patches import build_function_patch
from ofobserve.builders.rule_tests import build_rule_tests
from ofobserve.builders.rules import build_prometheus_rule
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
class ArtifactGroup:
    """A top-level output folder, replaced as a whole on every render."""

    name: str
    kinds: tuple[ArtifactKind, ...]


GROUPS: tuple[ArtifactGroup, ...] = (
    ArtifactGroup("patches", (ArtifactKind(build_function_patch),)),
    ArtifactGroup("monitors", (ArtifactKind(build_pod_monitor),)),
    ArtifactGroup(
        "rules",
        (ArtifactKind(build_prometheus_rule), ArtifactKind(build_rule_tests, folder="tests")),
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


def render_all(subjects: Iterable[Subject], groups: Iterable[str] = GROUP_NAMES) -> list[Artifact]:
    """Every artifact of every function, sorted by path."""
    chosen = tuple(groups)
    artifacts = [a for s in subjects for a in render_subject(s, chosen)]
    return sorted(artifacts, key=lambda a: a.path)

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
class ArtifactGroup:
    name: str
    format: Format
    build: Callable[[Subject], Any]


GROUPS: tuple[ArtifactGroup, ...] = (
    ArtifactGroup("patches", "yaml", build_function_patch),
    ArtifactGroup("monitors", "yaml", build_pod_monitor),
)
GROUP_NAMES: tuple[str, ...] = tuple(g.name for g in GROUPS)


def artifact_path(group: str, namespace: str, name: str, fmt: Format) -> str:
    return f"{group}/{namespace}/{name}.{fmt}"


def render_subject(subject: Subject, groups: Iterable[str] = GROUP_NAMES) -> Iterator[Artifact]:
    """Every artifact of one function, in group order."""
    wanted = set(groups)
    f = subject.function
    for group in GROUPS:
        if group.name not in wanted:
            continue
        content = group.build(subject)
        if content is not None:
            yield Artifact(
                path=artifact_path(group.name, f.namespace, f.name, group.format),
                content=content,
                format=group.format,
                group=group.name,
                function=f.key,
            )


def render_all(subjects: Iterable[Subject], groups: Iterable[str] = GROUP_NAMES) -> list[Artifact]:
    """Every artifact of every function, sorted by path."""
    chosen = tuple(groups)
    artifacts = [a for s in subjects for a in render_subject(s, chosen)]
    return sorted(artifacts, key=lambda a: a.path)

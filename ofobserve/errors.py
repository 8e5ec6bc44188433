"""The error hierarchy. Pure, no I/O.

Bad user input is always an :class:`InvalidInput`, which carries every
:class:`Problem` found in one run. Anything else escaping the CLI is a bug.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Location:
    """Where a problem is: a source (file path as given, ``-`` or ``cluster``), a document
    index (0-based, ``None`` for the whole source) and a dotted field path."""

    source: str
    document: int | None = None
    field: str = ""

    def at(self, field: str) -> Location:
        """The same document, deeper field path."""
        if not self.field or field.startswith("["):
            return Location(self.source, self.document, f"{self.field}{field}")
        return Location(self.source, self.document, f"{self.field}.{field}")

    def __str__(self) -> str:
        head = self.source if self.document is None else f"{self.source}[{self.document}]"
        return f"{head} {self.field}" if self.field else head


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the input."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class OfobserveError(Exception):
    """Base class of every error ofobserve raises on purpose."""


class InvalidInput(OfobserveError):
    """Bad user input: manifests, settings or flags. Holds all problems found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class DriftDetected(OfobserveError):
    """``render --check`` found files on disk that differ from what render produces."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths: tuple[str, ...] = tuple(paths)
        super().__init__(f"{len(self.paths)} file(s) drifted")


class ClusterUnavailable(OfobserveError):
    """The Kubernetes API could not be reached or refused the request."""


class ToolMissing(OfobserveError):
    """A program ofobserve runs (promtool...) is not installed."""

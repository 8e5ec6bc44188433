"""ofobserve: observability and autoscaling for OpenFunction functions.

The package root does no I/O on import. The public API is what ``__all__`` lists.
"""

from __future__ import annotations

from ofobserve.errors import ClusterUnavailable, DriftDetected, InvalidInput, OfobserveError
from ofobserve.loading import load_subjects
from ofobserve.render import Artifact, render_all
from ofobserve.serialize import serialize_tree

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "ClusterUnavailable",
    "DriftDetected",
    "InvalidInput",
    "OfobserveError",
    "__version__",
    "load_subjects",
    "render_all",
    "serialize_tree",
]

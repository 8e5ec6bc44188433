"""ofobserve: observability and autoscaling for OpenFunction functions.

The package root does no I/O on import. The public API is what ``__all__`` lists; the
renderers load on first use (PEP 562), so the scaler, which imports ``ofobserve.scaler``,
runs without them (deploy/image installs only the scaler's dependencies).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ofobserve.errors import ClusterUnavailable, DriftDetected, InvalidInput, OfobserveError

if TYPE_CHECKING:
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

_LAZY = {
    "Artifact": "ofobserve.render",
    "load_subjects": "ofobserve.loading",
    "render_all": "ofobserve.render",
    "serialize_tree": "ofobserve.serialize",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ofobserve' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

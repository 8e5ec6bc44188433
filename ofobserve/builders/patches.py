"""The Function patch that gives a function's pods their identity label. Pure, no I/O.

OpenFunction pods carry no function-name label; it copies ``spec.serving.labels`` onto
them. The patch is a JSON merge patch that also carries apiVersion, kind and metadata,
so both ``kubectl patch --type merge --patch-file`` and a kustomize ``patches:`` entry
accept the same file.
"""

from __future__ import annotations

from typing import Any

from ofobserve import conventions
from ofobserve.subject import Subject


def build_function_patch(subject: Subject) -> dict[str, Any]:
    function = subject.function
    return {
        "apiVersion": function.api_version,
        "kind": "Function",
        "metadata": {"name": function.name, "namespace": function.namespace},
        "spec": {"serving": {"labels": {conventions.FUNCTION_POD_LABEL: function.name}}},
    }

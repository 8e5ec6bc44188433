"""Warnings about what OpenFunction would do differently from what a manifest says. Pure.

Every field its API server prunes (:mod:`ofobserve.function_fields`) gets one warning,
with the v1beta2 spelling when the field is an older form that ofobserve reads by intent
(:mod:`ofobserve.manifests`), else the closest declared name. One more case is not pruned
but refused: v1beta1's list of KEDA triggers under ``spec.serving.triggers``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any

from ofobserve.errors import Location, Problem
from ofobserve.function_fields import FUNCTION, Obj, node_at, pruned_fields
from ofobserve.model import Function, Runtime

PRUNED = "not an OpenFunction {version} field; OpenFunction drops it"
KEDA_TRIGGERS = "spec.serving.scaleOptions.keda.triggers"

Advice = Callable[[re.Match[str], Function], str]


def _write(template: str) -> Advice:
    return lambda match, _function: f"Write {match.expand(template)} instead"


def _runtime(_match: re.Match[str], function: Function) -> str:
    if function.runtime is Runtime.ASYNC:
        names = ", ".join(f"{{name: {i.component}}}" for i in function.inputs)
        return (
            f"Write spec.serving.triggers.dapr: [{names}] instead "
            "(a v1beta2 function is async when it has Dapr triggers)"
        )
    return "Write spec.serving.triggers.http instead (a v1beta2 function is sync with it)"


def _output_name(match: re.Match[str], function: Function) -> str:
    index, field = int(match.group(1)), match.group(2)
    component = function.outputs[index].component if index < len(function.outputs) else ""
    target = (
        f"spec.serving.outputs[{index}].dapr.name: {component}"
        if component
        else (f"spec.serving.outputs[{index}].dapr.name")
    )
    if field == "name":
        return f"v1beta2 names an output by its Dapr component: write {target} instead"
    return f"Write {target} instead"


SO = r"spec\.serving\.scaleOptions\.keda\.scaledObject\."
OUT = r"spec\.serving\.outputs(\[\d+\])\."

#: Older forms (v1beta1, and drafts the notes copied) -> what v1beta2 says instead.
V1BETA2_ADVICE: tuple[tuple[str, Advice], ...] = (
    (r"spec\.port", _write("spec.serving.triggers.http.port")),
    (r"spec\.route", _write("spec.serving.triggers.http.route")),
    (r"spec\.serving\.runtime", _runtime),
    (r"spec\.serving\.inputs", _write("spec.serving.triggers.dapr (one {name, topic} each)")),
    (r"spec\.serving\.outputs\[(\d+)\]\.(component|name)", _output_name),
    (OUT + r"(operation|topic)", _write(r"spec.serving.outputs\1.dapr.\2")),
    (OUT + "params", _write(r"spec.serving.outputs\1.dapr.metadata")),
    (SO + "triggers", _write(KEDA_TRIGGERS)),
    (SO + "minReplicaCount", _write("spec.serving.scaleOptions.minReplicas")),
    (SO + "maxReplicaCount", _write("spec.serving.scaleOptions.maxReplicas")),
    (SO + "workloadType", _write("spec.serving.workloadType")),
    (
        SO + r"fallback\.behavior",
        lambda _m, _f: (
            "KEDA has fallback.behavior from 2.17; OpenFunction pins KEDA 2.10, whose "
            "fallback is always the fixed `replicas`"
        ),
    ),
)


def lint_function(doc: Mapping[str, Any], where: Location, function: Function) -> list[Problem]:
    """The warnings for one Function document that :func:`~ofobserve.manifests.build_function`
    read as ``function``."""
    version = function.api_version.rpartition("/")[2]
    if version not in FUNCTION:
        return []
    pruned = PRUNED.format(version=version)
    found = [
        Problem(where.at(path), f"{pruned}. {_advice(version, path, function)}")
        for path in pruned_fields(doc, version)
    ]
    serving = doc.get("spec", {}).get("serving") if isinstance(doc.get("spec"), dict) else None
    if (
        version == "v1beta2"
        and isinstance(serving, dict)
        and isinstance(serving.get("triggers"), list)
    ):
        found.append(
            Problem(
                where.at("spec.serving.triggers"),
                "must be a mapping in OpenFunction v1beta2 (its API server refuses a list); a list "
                f"of KEDA triggers is the v1beta1 form. Write {KEDA_TRIGGERS} instead",
            )
        )  # fmt: skip
    return found


def _advice(version: str, path: str, function: Function) -> str:
    if version == "v1beta2":
        for pattern, advice in V1BETA2_ADVICE:
            match = re.fullmatch(pattern, path)
            if match:
                return advice(match, function)
    bare = re.sub(r"\[\d+\]", "", path)
    for other in FUNCTION:
        if other != version and node_at(other, bare) is not None:
            if other == "v1beta1":
                return "It is a v1beta1 field, which v1beta2 no longer has"
            return f"It is a {other} field: write apiVersion core.openfunction.io/{other} for it"
    parent, _, name = bare.rpartition(".")
    siblings = node_at(version, parent)
    keys = list(siblings.fields) if isinstance(siblings, Obj) else []
    close = difflib.get_close_matches(name, keys, n=1)
    return f"Did you mean {close[0]!r}?" if close else "Remove it"

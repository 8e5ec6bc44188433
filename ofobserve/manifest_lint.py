"""Warnings about what OpenFunction would do differently from what a manifest says. Pure.

Every field its API server prunes (:mod:`ofobserve.function_fields`) gets one warning,
with the v1beta2 spelling when the field is an older form that ofobserve reads by intent
(:mod:`ofobserve.manifests`), else the closest declared name. One more warning is about a
kept field that does not do what it reads like: ``triggers.inputs`` without
``triggers.dapr`` makes a sync function. Two more are about what ofobserve cannot observe
as the manifest stands: an async ``StatefulSet`` workload (the replica rules and panels read
Deployments only), and a KEDA-HTTP function without ``scaleOptions.keda`` (OpenFunction
then makes no HTTPScaledObject).
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
INPUTS_ONLY = (
    "without spec.serving.triggers.dapr, OpenFunction adds triggers.http (port 8080) and runs "
    "the function as a sync Knative function (its defaulting webhook)."
)

STATEFULSET = (
    "a StatefulSet workload: ofobserve's replica recordings and the alerts on them "
    "(FunctionReplicasUnavailable, FunctionAtMaxReplicas, FunctionMetricsAbsent), the HPA "
    "mapping behind the KEDA panels and FunctionScalerErrors' KEDA branch, the Replicas "
    "panel and the ofobserve scaler's ready replicas read kube-state-metrics' Deployment "
    "series only, so they stay empty for this function"
)
NO_HTTP_SCALED_OBJECT = (
    "missing: without it OpenFunction creates no HTTPScaledObject and no Ingress for a "
    "triggers.http.engine: keda function, so the interceptor has no route to it and KEDA "
    "never scales it; its dashboard's KEDA panels and FunctionScalerErrors' KEDA branch stay "
    "empty (render leaves them out only with --from-cluster)"
)

Advice = Callable[[re.Match[str], Function, Mapping[str, Any]], str]


def _write(template: str) -> Advice:
    return lambda match, _function, _doc: f"Write {match.expand(template)} instead"


def _serving(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = doc.get("spec")
    serving = spec.get("serving") if isinstance(spec, Mapping) else None
    return serving if isinstance(serving, Mapping) else {}


def dapr_triggers(function: Function) -> str:
    """The function's inputs in v1beta2's ``triggers.dapr`` form, as one YAML flow line
    (``inputName`` keeps a v1beta1 input's own name, which v1beta1-style code uses)."""
    items = []
    for io in function.inputs:
        fields = [f"name: {io.component}"]
        if io.topic:
            fields.append(f"topic: {io.topic}")
        if io.name != io.component:
            fields.append(f"inputName: {io.name}")
        items.append("{" + ", ".join(fields) + "}")
    return f"spec.serving.triggers.dapr: [{', '.join(items)}]"


def _runtime(_match: re.Match[str], function: Function, doc: Mapping[str, Any]) -> str:
    if function.runtime is not Runtime.ASYNC:
        return "Write spec.serving.triggers.http instead (a v1beta2 function is sync with it)"
    if _serving(doc).get("inputs"):  # that field's warning shows the triggers
        return "Write spec.serving.triggers.dapr instead (a v1beta2 function is async with it)"
    return f"Write {dapr_triggers(function)} instead (a v1beta2 function is async with it)"


def _inputs(_match: re.Match[str], function: Function, _doc: Mapping[str, Any]) -> str:
    return f"Write {dapr_triggers(function)} instead"


def _output_name(match: re.Match[str], function: Function, _doc: Mapping[str, Any]) -> str:
    index, field = int(match.group(1)), match.group(2)
    here = f"spec.serving.outputs[{index}].dapr"
    output = function.outputs[index] if index < len(function.outputs) else None
    if output is None:
        return f"Write {here}.{'outputName' if field == 'name' else 'name'} instead"
    if field == "component":
        return f"Write {here}.name: {output.component} instead"
    if output.name == output.component:
        return f"v1beta2 names an output by its Dapr component: write {here}.name instead"
    return (
        f"Write {here}.outputName: {output.name} instead (v1beta1-style function code looks "
        "the output up by this name)"
    )


def _say(text: str) -> Advice:
    return lambda _match, _function, _doc: text


FALLBACK_BEHAVIOR = (
    "KEDA has fallback.behavior from 2.17; OpenFunction pins KEDA 2.10, whose fallback is "
    "always the fixed `replicas`"
)
SO = r"spec\.serving\.scaleOptions\.keda\.scaledObject\."
OUT = r"spec\.serving\.outputs(\[\d+\])\."

#: Older forms (v1beta1, v1alpha2, as the notes copied them) -> what v1beta2 says instead.
V1BETA2_ADVICE: tuple[tuple[str, Advice], ...] = (
    (r"spec\.port", _write("spec.serving.triggers.http.port")),
    (r"spec\.route", _write("spec.serving.triggers.http.route")),
    (r"spec\.serving\.runtime", _runtime),
    (r"spec\.serving\.inputs", _inputs),
    (r"spec\.serving\.outputs\[(\d+)\]\.(component|name)", _output_name),
    (OUT + r"(operation|topic)", _write(r"spec.serving.outputs\1.dapr.\2")),
    (OUT + "params", _write(r"spec.serving.outputs\1.dapr.metadata")),
    (SO + "triggers", _write(KEDA_TRIGGERS)),
    (SO + "minReplicaCount", _write("spec.serving.scaleOptions.minReplicas")),
    (SO + "maxReplicaCount", _write("spec.serving.scaleOptions.maxReplicas")),
    (SO + "workloadType", _write("spec.serving.workloadType")),
    (SO + r"fallback\.behavior", _say(FALLBACK_BEHAVIOR)),
)


def lint_function(doc: Mapping[str, Any], where: Location, function: Function) -> list[Problem]:
    """The warnings for one Function document that :func:`~ofobserve.manifests.build_function`
    read as ``function``."""
    version = function.api_version.rpartition("/")[2]
    if version not in FUNCTION:
        return []
    pruned = PRUNED.format(version=version)
    found = [
        Problem(where.at(path), f"{pruned}. {_advice(version, path, function, doc)}")
        for path in pruned_fields(doc, version)
    ]
    triggers = _serving(doc).get("triggers")
    if (
        version == "v1beta2"
        and function.runtime is Runtime.KNATIVE
        and isinstance(triggers, Mapping)
        and triggers.get("inputs")
        and not triggers.get("http")
        and not triggers.get("dapr")
    ):
        found.append(
            Problem(
                where.at("spec.serving.triggers.inputs"),
                f"{INPUTS_ONLY} For an async function write {dapr_triggers(function)} instead",
            )
        )
    if version == "v1beta2":
        found += _unobserved(doc, where, function)
    return found


def _unobserved(doc: Mapping[str, Any], where: Location, function: Function) -> list[Problem]:
    """What ofobserve cannot see of a v1beta2 Function as written."""
    serving = _serving(doc)
    found = []
    # only the async runtime honours workloadType (OpenFunction's Knative and KEDA-HTTP
    # servings always make a Knative Service or a Deployment)
    if function.runtime is Runtime.ASYNC and serving.get("workloadType") == "StatefulSet":
        found.append(Problem(where.at("spec.serving.workloadType"), STATEFULSET))
    scale = serving.get("scaleOptions")
    # OpenFunction/OpenFunction pkg/core/serving/kedahttp/servingrun.go createScaler: "No
    # keda scaleOptions found, no need to create scaler"
    if function.runtime is Runtime.KEDA_HTTP and not (
        isinstance(scale, Mapping) and scale.get("keda") is not None
    ):
        found.append(Problem(where.at("spec.serving.scaleOptions.keda"), NO_HTTP_SCALED_OBJECT))
    return found


def _advice(version: str, path: str, function: Function, doc: Mapping[str, Any]) -> str:
    if version == "v1beta2":
        for pattern, advice in V1BETA2_ADVICE:
            match = re.fullmatch(pattern, path)
            if match:
                return advice(match, function, doc)
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

"""Turn one OpenFunction ``Function`` document (v1beta1 or v1beta2) into the model.

Pure: takes the parsed document, returns a :class:`~ofobserve.model.Function` or raises
:class:`~ofobserve.errors.InvalidInput` naming every bad field. Only the fields ofobserve
uses are checked; the upstream CRD schema is the cluster's business.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from typing import Any, NamedTuple, TypeVar

from ofobserve.errors import InvalidInput, Location, Problem
from ofobserve.model import (
    DaprIO,
    Function,
    KedaTrigger,
    Pairs,
    Runtime,
    ScaleOptions,
    pairs,
)

GROUP = "core.openfunction.io"
VERSIONS = ("v1beta1", "v1beta2")
KIND = "Function"
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

T = TypeVar("T")


OTHER_KINDS = ("Builder", "Serving")  # core.openfunction.io kinds that are not ours


def is_function_document(doc: object) -> bool:
    """True when the document claims to be a Function (maybe a broken one).

    A document is ours when its group is ``core.openfunction.io`` (other than the Builder
    and Serving kinds), or when it is ``kind: Function`` with any ``openfunction.io``
    apiVersion. Everything else (a Dapr Component, a Secret...) is someone else's.
    """
    if not isinstance(doc, dict):
        return False
    api_version, kind = str(doc.get("apiVersion", "")), doc.get("kind")
    if api_version.split("/", 1)[0] == GROUP:
        return kind not in OTHER_KINDS
    return kind == KIND and "openfunction.io" in api_version


def build_function(doc: dict[str, Any], where: Location) -> Function:
    """The model of one Function document. Raises :class:`InvalidInput`."""
    reader = _Reader(doc, where)
    api_version = doc.get("apiVersion")
    group, _, version = str(api_version).partition("/")
    if group != GROUP or version not in VERSIONS:
        reader.problem(
            "apiVersion",
            f"unsupported version {api_version!r}; expected "
            + " or ".join(f"{GROUP}/{v}" for v in VERSIONS),
        )
    kind = doc.get("kind")
    if kind != KIND:
        hint = difflib.get_close_matches(str(kind), [KIND], n=1)
        reader.problem(
            "kind",
            f"expected {KIND!r}, got {kind!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""),
        )
    if reader.problems:
        raise InvalidInput(reader.problems)

    name = reader.get("metadata.name", str)
    if name is None:
        reader.problem("metadata.name", "required")
    elif not _is_dns_label(name):
        reader.problem(
            "metadata.name",
            f"{name!r} is not a DNS-1123 label "
            "(lowercase letters, digits and '-', at most 63 characters)",
        )
    namespace = reader.get("metadata.namespace", str) or "default"
    if not _is_dns_label(namespace):
        reader.problem("metadata.namespace", f"{namespace!r} is not a DNS-1123 label")
    labels = reader.string_map("metadata.labels")
    annotations = reader.string_map("metadata.annotations")
    spec = reader.get("spec", dict)
    if spec is None:
        reader.problem("spec", "required")
        raise InvalidInput(reader.problems)

    reader.get("spec.serving", dict)
    serving_labels = reader.string_map("spec.serving.labels")
    serving_annotations = reader.string_map("spec.serving.annotations")
    parse = _parse_v1beta1 if version == "v1beta1" else _parse_v1beta2
    runtime, http_port, http_paths, inputs, outputs, triggers = parse(reader)
    scale = _scale_options(reader, triggers)
    if reader.problems:
        raise InvalidInput(reader.problems)
    assert name is not None
    return Function(
        namespace=namespace,
        name=name,
        api_version=str(api_version),
        runtime=runtime,
        source=where,
        http_port=http_port,
        http_paths=http_paths,
        inputs=inputs,
        outputs=outputs,
        scale=scale,
        labels=labels,
        serving_labels=serving_labels,
        annotations=annotations,
        serving_annotations=serving_annotations,
        containers_raw=_containers_raw(reader),
    )


def _containers_raw(reader: _Reader) -> str:
    containers = reader.get("spec.serving.template.containers", list)
    if not containers:
        return ""
    return json.dumps([x for x in containers if isinstance(x, dict)], sort_keys=True, default=str)


class _Parsed(NamedTuple):
    """The version-specific part of a Function."""

    runtime: Runtime
    http_port: int | None
    http_paths: tuple[str, ...]
    inputs: tuple[DaprIO, ...]
    outputs: tuple[DaprIO, ...]
    triggers: tuple[KedaTrigger, ...]


def _parse_v1beta1(reader: _Reader) -> _Parsed:
    runtime_name = reader.get("spec.serving.runtime", str)
    if runtime_name is None:
        reader.problem("spec.serving.runtime", "required in v1beta1 (knative or async)")
        runtime = Runtime.KNATIVE
    elif runtime_name in ("knative", "async"):
        runtime = Runtime(runtime_name)
    else:
        reader.problem(
            "spec.serving.runtime", f"must be 'knative' or 'async', got {runtime_name!r}"
        )
        runtime = Runtime.KNATIVE
    components = _component_types(reader)
    inputs = tuple(
        _dapr_io(reader, item, f"spec.serving.inputs[{i}]", components, component_key="component")
        for i, item in enumerate(reader.get("spec.serving.inputs", list) or [])
    )
    outputs = tuple(
        _dapr_io(reader, item, f"spec.serving.outputs[{i}]", components, component_key="component")
        for i, item in enumerate(reader.get("spec.serving.outputs", list) or [])
    )
    triggers = _triggers(reader, "spec.serving.triggers")
    is_sync = runtime is Runtime.KNATIVE
    port = reader.port("spec.port") if is_sync else None
    paths = _route_paths(reader, "spec.route") if is_sync else ()
    return _Parsed(runtime, port, paths, inputs, outputs, triggers)


def _parse_v1beta2(reader: _Reader) -> _Parsed:
    """The v1beta2 fields, and the older forms people still write in v1beta2 documents
    (``serving.runtime``, ``serving.inputs``, ``outputs[].component``, ``spec.port``,
    ``scaledObject.triggers``...), read as their authors meant them. OpenFunction drops
    those; :mod:`ofobserve.manifest_lint` warns about each.

    The runtime follows OpenFunction: ``triggers.http`` makes a sync function (Knative, or
    the KEDA HTTP add-on); else ``triggers.dapr`` an async one; else OpenFunction's
    defaulting webhook adds ``triggers.http`` (OpenFunction/OpenFunction
    ``apis/core/v1beta2/function_webhook.go`` ``Default``), so it is sync on Knative, even
    with ``triggers.inputs``, unless the older fields say async."""
    reader.get("spec.serving.scaleOptions", dict)
    if isinstance(reader.raw("spec.serving.triggers"), list):
        reader.problem(
            "spec.serving.triggers",
            "must be a mapping in OpenFunction v1beta2, got a list (the API server refuses "
            "the Function); a list of KEDA triggers is the v1beta1 form: write them under "
            "spec.serving.scaleOptions.keda.triggers",
        )
    else:
        reader.get("spec.serving.triggers", dict)
    components = _component_types(reader)
    dapr = [
        _dapr_io(reader, item, f"spec.serving.triggers.dapr[{i}]", components)
        for i, item in enumerate(reader.get("spec.serving.triggers.dapr", list) or [])
    ]
    inputs = list(dapr)
    for i, item in enumerate(reader.get("spec.serving.triggers.inputs", list) or []):
        path = f"spec.serving.triggers.inputs[{i}].dapr"
        inner = item.get("dapr") if isinstance(item, dict) else None
        if isinstance(inner, dict):
            inputs.append(_dapr_io(reader, inner, path, components))
        else:
            reader.problem(path, "required (a mapping with name, type and topic)")
    outputs = _outputs_v1beta2(reader, components)
    triggers = _triggers(reader, "spec.serving.scaleOptions.keda.triggers") or _triggers(
        reader, "spec.serving.scaleOptions.keda.scaledObject.triggers"
    )
    legacy_runtime = _legacy_runtime(reader)
    port = reader.port("spec.serving.triggers.http.port") or reader.port("spec.port")
    http = reader.get("spec.serving.triggers.http", dict)
    if http is not None:
        engine = reader.get("spec.serving.triggers.http.engine", str) or "knative"
        if engine not in ("knative", "keda"):
            reader.problem(
                "spec.serving.triggers.http.engine", f"must be 'knative' or 'keda', got {engine!r}"
            )
        runtime = Runtime.KEDA_HTTP if engine == "keda" else Runtime.KNATIVE
        paths = _route_paths(reader, "spec.serving.triggers.http.route")
        return _Parsed(runtime, port, paths, tuple(inputs), outputs, triggers)
    if not dapr and legacy_runtime is not Runtime.KNATIVE:
        legacy = list(_legacy_inputs(reader, components, (*outputs, *inputs), legacy_runtime))
        if legacy:
            return _Parsed(Runtime.ASYNC, None, (), tuple(inputs + legacy), outputs, triggers)
    if dapr:
        return _Parsed(Runtime.ASYNC, None, (), tuple(inputs), outputs, triggers)
    paths = _route_paths(reader, "spec.route")
    return _Parsed(Runtime.KNATIVE, port, paths, tuple(inputs), outputs, triggers)


def _outputs_v1beta2(reader: _Reader, components: dict[str, str]) -> tuple[DaprIO, ...]:
    """``outputs[].dapr``, or the v1beta1 form ``outputs[].component`` (its Dapr name)."""
    outputs = []
    for i, item in enumerate(reader.get("spec.serving.outputs", list) or []):
        path = f"spec.serving.outputs[{i}]"
        inner = item.get("dapr") if isinstance(item, dict) else None
        if isinstance(inner, dict):
            outputs.append(_dapr_io(reader, inner, f"{path}.dapr", components))
        elif isinstance(item, dict) and "component" in item:
            outputs.append(_dapr_io(reader, item, path, components, component_key="component"))
        else:
            reader.problem(f"{path}.dapr", "required (a mapping with name, type and topic)")
    return tuple(outputs)


def _legacy_runtime(reader: _Reader) -> Runtime | None:
    """v1beta1's ``spec.serving.runtime`` in a v1beta2 document, when valid."""
    name = reader.get("spec.serving.runtime", str)
    if name is None:
        return None
    if name not in ("knative", "async"):
        reader.problem("spec.serving.runtime", f"must be 'knative' or 'async', got {name!r}")
        return None
    return Runtime(name)


def _legacy_inputs(
    reader: _Reader,
    components: dict[str, str],
    taken: tuple[DaprIO, ...],
    runtime: Runtime | None,
) -> Iterator[DaprIO]:
    """v1beta1's ``spec.serving.inputs``; or, for ``runtime: async`` without any, every
    binding or pubsub component not already an output or input (what such an author
    means)."""
    listed = reader.get("spec.serving.inputs", list)
    if listed:
        for i, item in enumerate(listed):
            path = f"spec.serving.inputs[{i}]"
            yield _dapr_io(reader, item, path, components, component_key="component")
        return
    if runtime is not Runtime.ASYNC:
        return
    used = {io.component for io in taken}
    for name, component_type in sorted(components.items()):
        if name not in used:
            yield DaprIO(name=name, component=name, component_type=component_type)


def _component_types(reader: _Reader) -> dict[str, str]:
    """Component name -> Dapr type (``bindings.kafka``...) from ``bindings``/``pubsub``."""
    types: dict[str, str] = {}
    for section in ("bindings", "pubsub"):
        for comp, spec in (reader.get(f"spec.serving.{section}", dict) or {}).items():
            if not isinstance(spec, dict):
                reader.problem(
                    f"spec.serving.{section}.{comp}",
                    f"must be a mapping (a Dapr component spec), got {type(spec).__name__}",
                )
                continue
            comp_type = spec.get("type")
            if not isinstance(comp_type, str) or not comp_type:
                reader.problem(f"spec.serving.{section}.{comp}.type", "required (a string)")
            else:
                types[str(comp)] = comp_type
    return types


def _dapr_io(
    reader: _Reader,
    item: object,
    path: str,
    components: dict[str, str],
    component_key: str = "name",
) -> DaprIO:
    if not isinstance(item, dict):
        reader.problem(path, f"must be a mapping, got {type(item).__name__}")
        return DaprIO(name="", component="", component_type="")
    component = item.get(component_key)
    if component is not None and not isinstance(component, str):
        reader.problem(
            f"{path}.{component_key}", f"must be a string, got {type(component).__name__}"
        )
        component = ""
    elif not component:
        reader.problem(f"{path}.{component_key}", "required (the Dapr component name)")
        component = ""
    declared = item.get("type")
    comp_type = declared if isinstance(declared, str) else components.get(component, "")
    return DaprIO(
        name=str(item.get("name") or component),
        component=component,
        component_type=comp_type,
        topic=str(item.get("topic") or ""),
        operation=str(item.get("operation") or ""),
    )


def _triggers(reader: _Reader, path: str) -> tuple[KedaTrigger, ...]:
    out = []
    for i, item in enumerate(reader.get(path, list) or []):
        here = f"{path}[{i}]"
        if not isinstance(item, dict):
            reader.problem(here, "must be a mapping")
            continue
        trigger_type = item.get("type")
        if not isinstance(trigger_type, str) or not trigger_type:
            reader.problem(f"{here}.type", "required (a KEDA scaler type such as 'kafka')")
            continue
        metadata = item.get("metadata") or {}
        if not isinstance(metadata, dict):
            reader.problem(f"{here}.metadata", "must be a mapping of strings")
            metadata = {}
        out.append(
            KedaTrigger(
                type=trigger_type,
                name=str(item.get("name") or ""),
                metadata=pairs({str(k): str(v) for k, v in metadata.items()}),
                raw=json.dumps(item, sort_keys=True, default=str),
            )
        )
    return tuple(out)


def _scale_options(reader: _Reader, triggers: tuple[KedaTrigger, ...]) -> ScaleOptions:
    base = "spec.serving.scaleOptions"
    legacy = f"{base}.keda.scaledObject"
    lo = reader.replicas(f"{base}.minReplicas")
    hi = reader.replicas(f"{base}.maxReplicas")
    lo_field, hi_field = f"{base}.minReplicas", f"{base}.maxReplicas"
    if lo is None and (legacy_lo := reader.replicas(f"{legacy}.minReplicaCount")) is not None:
        lo, lo_field = legacy_lo, f"{legacy}.minReplicaCount"
    if hi is None and (legacy_hi := reader.replicas(f"{legacy}.maxReplicaCount")) is not None:
        hi, hi_field = legacy_hi, f"{legacy}.maxReplicaCount"
    if hi is not None and hi < 1:
        reader.problem(hi_field, f"must be >= 1, got {hi}")
    elif lo is not None and hi is not None and hi < lo:
        reader.problem(hi_field, f"must be >= {lo_field.rsplit('.', 1)[-1]} ({lo})")
    workload = reader.get("spec.serving.workloadType", str) or reader.get(
        f"{legacy}.workloadType", str
    )
    return ScaleOptions(
        min_replicas=lo,
        max_replicas=hi,
        polling_interval=reader.replicas(f"{legacy}.pollingInterval"),
        cooldown_period=reader.replicas(f"{legacy}.cooldownPeriod"),
        triggers=triggers,
        legacy_bounds=legacy in lo_field or legacy in hi_field,
        workload_type=workload or "",
        scaled_job=reader.raw(f"{base}.keda.scaledJob") is not None,
        own_fallback=reader.raw(f"{legacy}.fallback") is not None,
        own_hpa_behavior=reader.raw(f"{legacy}.advanced.horizontalPodAutoscalerConfig.behavior")
        is not None,
    )


def _route_paths(reader: _Reader, path: str) -> tuple[str, ...]:
    found: list[str] = []
    for i, rule in enumerate(reader.get(f"{path}.rules", list) or []):
        matches = rule.get("matches") if isinstance(rule, dict) else None
        for j, match in enumerate(matches if isinstance(matches, list) else []):
            where = f"{path}.rules[{i}].matches[{j}].path"
            value = match.get("path") if isinstance(match, dict) else None
            if isinstance(value, dict):
                if isinstance(value.get("value"), str):
                    found.append(value["value"])
                elif value.get("value") is not None:
                    reader.problem(f"{where}.value", "must be a string (a path such as /api)")
            elif value is not None:
                reader.problem(
                    where,
                    f"must be a mapping like {{type: PathPrefix, value: /api}} "
                    f"(Gateway API HTTPRouteMatch), got {type(value).__name__}",
                )
    return tuple(sorted(set(found)))


def _is_dns_label(value: str) -> bool:
    return len(value) <= 63 and DNS1123_LABEL.match(value) is not None


class _Reader:
    """Typed access to a document by dotted path, collecting problems instead of raising."""

    def __init__(self, doc: dict[str, Any], where: Location) -> None:
        self.doc = doc
        self.where = where
        self.problems: list[Problem] = []

    def problem(self, field: str, message: str) -> None:
        self.problems.append(Problem(self.where.at(field), message))

    def raw(self, path: str) -> Any:
        """The value at ``path``, unchecked; ``None`` when absent."""
        node: Any = self.doc
        for part in path.split("."):
            if not isinstance(node, dict) or node.get(part) is None:
                return None
            node = node[part]
        return node

    def get(self, path: str, expected: type[T]) -> T | None:
        node = self.raw(path)
        if node is None:
            return None
        if (expected is not bool and isinstance(node, bool)) or not isinstance(node, expected):
            self.problem(path, f"must be {_TYPE_NAMES[expected]}, got {type(node).__name__}")
            return None
        return node

    def replicas(self, path: str) -> int | None:
        value = self.get(path, int)
        if value is not None and value < 0:
            self.problem(path, f"must be >= 0, got {value}")
            return None
        return value

    def port(self, path: str) -> int | None:
        value = self.get(path, int)
        if value is not None and not 1 <= value <= 65535:
            self.problem(path, f"must be a port number 1-65535, got {value}")
            return None
        return value

    def string_map(self, path: str) -> Pairs:
        value = self.get(path, dict) or {}
        for key, item in value.items():
            if not isinstance(item, str):
                self.problem(
                    f"{path}.{key}",
                    f"must be a string, got {type(item).__name__} (quote the value in YAML)",
                )
        return pairs({str(k): v for k, v in value.items() if isinstance(v, str)})


_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    dict: "a mapping",
    list: "a list",
    bool: "a boolean",
}

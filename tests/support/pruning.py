"""What a Kubernetes API server prunes from a custom resource, read off the CRD's schema.

An independent implementation of the structural-schema pruning rules (Kubernetes
``apiextensions-apiserver`` ``pkg/apiserver/schema/pruning``), used by the tests to check
ofobserve's own field tables and every rendered custom resource:

- a key declared in ``properties`` is kept and walked;
- else a key is kept when ``additionalProperties`` is a schema (walked with it) or ``true``;
- else it is kept, unwalked, when ``x-kubernetes-preserve-unknown-fields: true``;
- else it is pruned. List items are walked with ``items``; ``metadata`` at the root is
  ObjectMeta, which the server handles itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def pruned_paths(obj: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Dotted paths (``spec.a[0].b``) of every field of ``obj`` that ``schema`` (a CRD
    version's ``openAPIV3Schema``) would prune."""
    return list(walk(obj, schema, "", root=True))


def walk(value: Any, schema: Mapping[str, Any], path: str, root: bool = False) -> Iterator[str]:
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                yield from walk(item, items, f"{path}[{index}]")
        return
    if not isinstance(value, Mapping):
        return
    properties: Mapping[str, Any] = schema.get("properties", {})
    additional = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    for key, child in value.items():
        here = f"{path}.{key}" if path else str(key)
        if root and key == "metadata":
            continue
        if key in properties:
            yield from walk(child, properties[key], here)
        elif isinstance(additional, Mapping):
            yield from walk(child, additional, here)
        elif additional is True or preserve:
            continue
        else:
            yield here

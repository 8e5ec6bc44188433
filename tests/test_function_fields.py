"""ofobserve's table of Function fields is the upstream CRD's structural schema.

Every declared field of the CRD in ../shared/crds is kept by ``pruned_fields``, and an
unknown key at every object of the schema is reported exactly when the pruning walker of
the tests (``tests/support/pruning.py``) prunes it. The one documented gap: below the
PodSpec's and the containers' own keys, ofobserve leaves Kubernetes' core types to the API
server, so it must report nothing there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from ofobserve.function_fields import FUNCTION, pruned_fields
from tests.support.crds import pruned_fields as crd_pruned
from tests.support.crds import schema_for

PROBE = "zzProbe"
Token = tuple[str, str]  # ("key", name) | ("item", "") | ("map", "")
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def _nodes(schema: Mapping[str, Any], tokens: tuple[Token, ...]) -> Iterator[tuple[str, tuple]]:
    """("leaf", tokens) for every declared leaf, ("object", tokens) for every object whose
    unknown keys are pruned."""
    if schema.get("type") == "array" or "items" in schema:
        yield from _nodes(schema.get("items", {}), (*tokens, ("item", "")))
        return
    properties = schema.get("properties", {})
    additional = schema.get("additionalProperties")
    if properties and not schema.get("x-kubernetes-preserve-unknown-fields") and not additional:
        yield "object", tokens
    for key, child in properties.items():
        yield from _nodes(child, (*tokens, ("key", key)))
    if isinstance(additional, Mapping):
        yield from _nodes(additional, (*tokens, ("map", "")))
    if not properties and not isinstance(additional, Mapping):
        yield "leaf", tokens


def _document(version: str, tokens: tuple[Token, ...]) -> tuple[dict[str, Any], str]:
    """A Function holding a value at ``tokens``, and that value's dotted path."""
    value: Any = "x"
    for kind, name in reversed(tokens):
        value = {name: value} if kind == "key" else [value] if kind == "item" else {"k": value}
    doc = {"apiVersion": f"core.openfunction.io/{version}", "kind": "Function", **value}
    path = ""
    for kind, name in tokens:
        if kind == "key":
            path = f"{path}.{name}" if path else name
        else:
            path += "[0]" if kind == "item" else ".k"
    return doc, path


def _in_scope(tokens: tuple[Token, ...]) -> bool:
    """Everything but what lies below the PodSpec's and the containers' own keys."""
    names = [name for kind, name in tokens if kind == "key"]
    if names[:3] != ["spec", "serving", "template"]:
        return True
    rest = tokens[3:]
    return not rest or (len(rest) == 2 and rest[0][1] in CONTAINER_LISTS and rest[1][0] == "item")


def _spec_nodes(version: str) -> list[tuple[str, tuple]]:
    schema = schema_for(f"core.openfunction.io/{version}", "Function")
    return list(_nodes(schema["properties"]["spec"], (("key", "spec"),)))


@pytest.mark.parametrize("version", sorted(FUNCTION))
def test_every_declared_field_is_kept(version: str) -> None:
    leaves = [tokens for kind, tokens in _spec_nodes(version) if kind == "leaf"]
    assert len(leaves) > 800  # the whole schema, PodSpec included
    for tokens in leaves:
        doc, path = _document(version, tokens)
        assert crd_pruned(doc) == [], path  # the walker agrees the field is declared
        assert list(pruned_fields(doc, version)) == [], path


@pytest.mark.parametrize("version", sorted(FUNCTION))
def test_an_unknown_key_is_reported_exactly_where_the_api_server_prunes_it(version: str) -> None:
    objects = [tokens for kind, tokens in _spec_nodes(version) if kind == "object"]
    checked = 0
    for tokens in objects:
        doc, path = _document(version, (*tokens, ("key", PROBE)))
        assert crd_pruned(doc) == [path]
        if _in_scope(tokens):
            assert list(pruned_fields(doc, version)) == [path]
            checked += 1
        else:
            assert list(pruned_fields(doc, version)) == [], f"{path}: outside the scope"
    assert checked > 60


@pytest.mark.parametrize("version", sorted(FUNCTION))
def test_unknown_top_level_keys_are_pruned(version: str) -> None:
    doc = {"apiVersion": f"core.openfunction.io/{version}", "kind": "Function", "specs": {}}
    assert crd_pruned(doc) == list(pruned_fields(doc, version)) == ["specs"]

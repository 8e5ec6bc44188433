"""Validate generated custom resources against the upstream CRD schemas in ../shared/crds."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.support.pruning import pruned_paths
from tests.support.tools import REPO, unavailable


def crd_dir() -> Path:
    return Path(os.environ.get("OFOBSERVE_CRD_DIR", REPO.parent / "shared" / "crds"))


@cache
def _schemas(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema for every served version of every CRD."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                api_version = f"{spec['group']}/{version['name']}"
                schemas[(api_version, spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


def schema_for(api_version: str, kind: str) -> dict[str, Any]:
    directory = crd_dir()
    if not directory.is_dir():
        unavailable(f"CRD schemas not found at {directory} (../shared/crds beside the repo)")
    schemas = _schemas(directory)
    assert (api_version, kind) in schemas, f"no CRD for {api_version} {kind} in {directory}"
    return schemas[(api_version, kind)]


def pruned_fields(obj: dict[str, Any]) -> list[str]:
    """Every field of ``obj`` the API server would prune (tests/support/pruning.py)."""
    return pruned_paths(obj, schema_for(obj["apiVersion"], obj["kind"]))


def validate_custom_resource(obj: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``obj`` breaks its CRD's schema, and
    ``AssertionError`` when it holds a field the API server would prune (jsonschema accepts
    undeclared fields; the server silently drops them)."""
    schema = schema_for(obj["apiVersion"], obj["kind"])
    jsonschema.Draft7Validator(schema).validate(obj)
    pruned = pruned_paths(obj, schema)
    assert not pruned, f"{obj['kind']} {obj.get('metadata', {}).get('name')}: pruned {pruned}"


def schema_errors(obj: dict[str, Any]) -> set[str]:
    """Every CRD schema violation in ``obj``, as ``path: message`` strings."""
    schema = schema_for(obj["apiVersion"], obj["kind"])
    return {
        "/".join(str(p) for p in error.absolute_path) + ": " + error.message
        for error in jsonschema.Draft7Validator(schema).iter_errors(obj)
    }

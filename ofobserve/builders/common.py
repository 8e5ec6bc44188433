"""Helpers shared by the builders: object metadata and names. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ofobserve import conventions


def object_name(function_name: str) -> str:
    """Name of the objects ofobserve generates for a function: ``ofobserve-<name>``."""
    return f"ofobserve-{function_name}"


def metadata(name: str, namespace: str, *extra: Mapping[str, str]) -> dict[str, Any]:
    """``metadata`` with the managed-by label plus any extra label maps, later ones winning."""
    labels = {conventions.MANAGED_BY_LABEL: conventions.MANAGED_BY_VALUE}
    for mapping in extra:
        labels.update(mapping)
    return {"name": name, "namespace": namespace, "labels": labels}

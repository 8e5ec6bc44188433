"""Deterministic serialization of artifacts. Pure, no I/O.

Keys are sorted, indentation is fixed, output ends with one newline; no timestamps and no
absolute paths ever enter an artifact, so the same input gives byte-identical output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import yaml

from ofobserve.render import Artifact, Format


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(content: Any) -> str:
    text: str = yaml.dump(
        content,
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=100_000,
    )
    return text


def dump_json(content: Any) -> str:
    return json.dumps(content, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def serialize(content: Any, fmt: Format) -> bytes:
    """The bytes of one file."""
    text = dump_yaml(content) if fmt == "yaml" else dump_json(content)
    return text.encode("utf-8")


def serialize_tree(artifacts: Iterable[Artifact]) -> dict[str, bytes]:
    """Relative path -> bytes, for writing or comparing a whole output tree."""
    return {a.path: serialize(a.content, a.format) for a in artifacts}


def serialize_stream(artifacts: Iterable[Artifact], fmt: Format) -> str:
    """All artifacts as one stream: multi-document YAML, or JSON Lines.

    Each YAML document is preceded by a ``# Source: <path>`` comment, as ``helm template``
    does; each JSON line is ``{"path": ..., "content": ...}``.
    """
    if fmt == "json":
        return "".join(
            json.dumps({"path": a.path, "content": a.content}, sort_keys=True, ensure_ascii=False)
            + "\n"
            for a in artifacts
        )
    return "".join(f"---\n# Source: {a.path}\n{dump_yaml(a.content)}" for a in artifacts)

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

_Base: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_Base):  # type: ignore[valid-type,misc]
    """libyaml's safe dumper (C emitter) with our string styles."""


_UNICODE_BREAKS = ("\x85", "\u2028", "\u2029")  # line breaks to YAML, not to Python


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """Literal blocks for multi-line text; double quotes (escaped) for Unicode breaks."""
    if any(ch in value for ch in _UNICODE_BREAKS):
        style: str | None = '"'
    elif "\n" in value:
        style = "|"
    else:
        style = None
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

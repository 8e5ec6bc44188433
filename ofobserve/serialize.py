"""Deterministic serialization of artifacts. Pure, no I/O.

Keys are sorted, indentation is fixed, output ends with one newline; no timestamps and no
absolute paths ever enter an artifact, so the same input gives byte-identical output.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from typing import Any

import yaml

from ofobserve.grafana import json_text
from ofobserve.render import Artifact, Format, no_cycle_collection

_Base: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_Base):  # type: ignore[valid-type,misc]
    """libyaml's safe dumper (C emitter) with our string styles."""


_UNICODE_BREAKS = ("\x85", "\u2028", "\u2029")  # line breaks to YAML, not to Python


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """Literal blocks for multi-line text; double quotes (escaped) for Unicode breaks."""
    if "\x85" in value or "\u2028" in value or "\u2029" in value:  # _UNICODE_BREAKS
        style: str | None = '"'
    elif "\n" in value:
        style = "|"
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(content: Any) -> str:
    """``content`` as block YAML: libyaml's output, byte for byte.

    The common documents (mappings and lists of printable ASCII strings, numbers, booleans
    and nulls) are written by :func:`_fast_yaml`, which follows libyaml's layout and
    scalar-style rules; anything else (shared objects, which PyYAML writes as anchors;
    other types; non-ASCII or control characters; very long lines) goes through PyYAML.
    """
    try:
        return _fast_yaml(content)
    except _Slow:
        return _pyyaml(content)


def _pyyaml(content: Any) -> str:
    text: str = yaml.dump(
        content,
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=_WIDTH,
    )
    return text


# --- the fast path --------------------------------------------------------------------------

_WIDTH = 100_000
#: Longest scalar line the fast path writes: libyaml folds plain and quoted scalars at
#: spaces past ``_WIDTH`` columns, which the fast path does not do.
_MAX_LINE = _WIDTH // 2


class _Slow(Exception):
    """The fast path cannot prove it writes what libyaml would: use PyYAML."""


_IMPLICIT = yaml.resolver.Resolver.yaml_implicit_resolvers
_PRINTABLE = re.compile(r"[\x20-\x7e]*").fullmatch
_PRINTABLE_LINES = re.compile(r"[\x20-\x7e\n]*").fullmatch
_LONG_LINE = re.compile(f"[^\\n]{{{_MAX_LINE + 1}}}").search
#: What keeps a printable single-line scalar from libyaml's plain style in block context:
#: a leading indicator, a document marker, ``: `` or a final ``:``, `` #``, outer spaces.
_NOT_PLAIN = re.compile(r"[-?:](?: |$)|[,\[\]{}#&*!|>'\"%@`]|---|\.\.\.|.*(?:: |:$| #| $)|\s").match


def _resolves_to_str(value: str) -> bool:
    """Whether ``value``, written plain, reads back as a string (PyYAML's resolver)."""
    for _tag, regexp in _IMPLICIT.get(value[:1] if value else "", ()):
        if regexp.match(value):
            return False
    return True


def _inline(value: str) -> str:
    """A single-line string as libyaml writes it in block context (key or value)."""
    return _inline_short(value) if len(value) <= 512 else _style(value)


def _style(value: str) -> str:
    if len(value) > _MAX_LINE or not _PRINTABLE(value):
        raise _Slow
    if value and _resolves_to_str(value) and not _NOT_PLAIN(value):
        return value
    return "'" + value.replace("'", "''") + "'"


#: Label values, series and keys repeat across every file: each is analysed once.
_inline_short = functools.lru_cache(maxsize=1 << 16)(_style)


def _literal(value: str) -> tuple[str, str]:
    """A multi-line string as a literal block: its header (``|``, or ``|-`` without a final
    line break) and its body, the final line break dropped."""
    if (
        not _PRINTABLE_LINES(value)
        or value[0] in " \n"  # an indentation indicator
        or value.endswith(("\n\n", " "))  # keep chomping, or no block style at all
        or " \n" in value
        or _LONG_LINE(value)
    ):
        raise _Slow
    if value.endswith("\n"):
        return "|", value[:-1]
    return "|-", value


def _block(value: str, pad: str, out: list[str]) -> None:
    """A literal block: the header, then each line at ``pad`` (empty lines stay empty)."""
    header, body = _literal(value)
    out.append(header)
    out.append("\n")
    out.append(pad)
    if "\n\n" in body:
        out.append("\n".join([pad + line if line else "" for line in body.split("\n")])[len(pad) :])
    else:
        out.append(body.replace("\n", "\n" + pad))
    out.append("\n")


def _scalar(value: Any) -> str:
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    if kind is float:
        text = repr(value).lower()
        if value != value or text in ("inf", "-inf"):
            raise _Slow
        if "." not in text and "e" in text:
            text = text.replace("e", ".0e", 1)
        return text
    raise _Slow


def _fast_yaml(content: Any) -> str:
    out: list[str] = []
    seen: set[int] = set()
    kind = type(content)
    if kind is dict and content:
        _mapping(content, "", "", out, seen)
    elif kind is list and content:
        _sequence(content, "", "", out, seen)
    else:
        raise _Slow
    return "".join(out)


def _enter(value: Any, seen: set[int]) -> None:
    """PyYAML writes an object met twice as an anchor and an alias: not the fast path."""
    key = id(value)
    if key in seen:
        raise _Slow
    seen.add(key)


@functools.lru_cache(maxsize=1 << 12)
def _key(key: Any) -> str:
    """A mapping key as libyaml writes it: a simple (single-line, short) key only."""
    if type(key) is not str:
        raise _Slow
    text = _inline(key)
    if len(text) > 128:  # no longer a simple key
        raise _Slow
    return text


def _mapping(data: dict[Any, Any], lead: str, pad: str, out: list[str], seen: set[int]) -> None:
    """A non-empty block mapping: its first key after ``lead``, the others at ``pad``."""
    if id(data) in seen:  # _enter, inline: this runs for every mapping
        raise _Slow
    seen.add(id(data))
    try:
        keys = sorted(data)
    except TypeError:
        raise _Slow from None
    inner = pad + "  "
    for key in keys:
        head = lead + _key(key)
        lead = pad
        value = data[key]
        kind = type(value)
        if kind is str:
            if "\n" in value:
                out.append(head + ": ")
                _block(value, inner, out)
            else:
                out.append(head + ": " + _inline(value) + "\n")
        elif kind is dict:
            if value:
                out.append(head + ":\n")
                _mapping(value, inner, inner, out, seen)
            else:
                _enter(value, seen)
                out.append(head + ": {}\n")
        elif kind is list:
            if value:
                out.append(head + ":\n")
                _sequence(value, pad, pad, out, seen)  # indentless, as libyaml does
            else:
                _enter(value, seen)
                out.append(head + ": []\n")
        else:
            out.append(head + ": " + _scalar(value) + "\n")


def _sequence(data: list[Any], lead: str, pad: str, out: list[str], seen: set[int]) -> None:
    """A non-empty block sequence: its first ``- `` after ``lead``, the others at ``pad``."""
    _enter(data, seen)
    inner = pad + "  "
    for value in data:
        head = lead + "- "
        lead = pad
        kind = type(value)
        if kind is str:
            if "\n" in value:
                out.append(head)
                _block(value, inner, out)
            else:
                out.append(head + _inline(value) + "\n")
        elif kind is dict:
            if value:
                _mapping(value, head, inner, out, seen)
            else:
                _enter(value, seen)
                out.append(head + "{}\n")
        elif kind is list:
            if value:
                _sequence(value, head, inner, out, seen)
            else:
                _enter(value, seen)
                out.append(head + "[]\n")
        else:
            out.append(head + _scalar(value) + "\n")


def dump_json(content: Any) -> str:
    """``json.dumps(content, sort_keys=True, indent=2, ensure_ascii=False)`` and a newline."""
    return json_text(content)


def serialize(content: Any, fmt: Format) -> bytes:
    """The bytes of one file."""
    text = dump_yaml(content) if fmt == "yaml" else dump_json(content)
    return text.encode("utf-8")


def serialize_tree(artifacts: Iterable[Artifact]) -> dict[str, bytes]:
    """Relative path -> bytes, for writing or comparing a whole output tree."""
    with no_cycle_collection():
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

"""Run rendered rule groups ``k`` times faster. Pure.

Every duration in a group is divided by ``k``: range selectors and subqueries
(``[5m]``, ``[1799s]``, ``[1h:5m]``), ``offset``, the alerts' ``for`` and
``keep_firing_for`` and the group's ``interval``; and so is every whole number the rules
builder writes as a window's length in seconds (``/ 300`` turns a 5-minute increase into
a rate, ``* 3600`` a 1-hour rate into a count). Label values, strings and the
per-function constants (``vector(...)``) are left as they are, so thresholds, objectives
and burn rates do not change: only time runs faster. ``k = 1`` returns the groups as
they are.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ofobserve.settings import window_seconds

#: The windows the rules use (ofobserve/builders/rules.py), whose length in seconds
#: appears as a bare number in expressions.
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "28d", "30d")
WINDOW_SECONDS = frozenset(window_seconds(w) for w in WINDOWS)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_RANGE = re.compile(r"\[([0-9a-z]+)(?::([0-9a-z]+))?\]")
_OFFSET = re.compile(r"\boffset\s+([0-9a-z]+)")
_NUMBER = re.compile(r"(?<![\w.\"'])(\d+)(?![\w.\"'])")
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`")


def seconds(duration: str) -> float:
    """A Prometheus duration (``1h30m``, ``299s``, ``500ms``) in seconds."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def scaled(duration: str, k: float) -> str:
    """``duration`` divided by ``k``, in whole milliseconds (at least 1)."""
    if k == 1:
        return duration
    return f"{max(round(seconds(duration) * 1000 / k), 1)}ms"


def scale_expr(expr: str, k: float) -> str:
    if k == 1 or expr.lstrip().startswith("vector("):
        return expr
    pieces = []
    last = 0
    for literal in _STRING.finditer(expr):  # strings are label values: left alone
        pieces.append(_scale_code(expr[last : literal.start()], k))
        pieces.append(literal.group(0))
        last = literal.end()
    pieces.append(_scale_code(expr[last:], k))
    return "".join(pieces)


def _scale_code(code: str, k: float) -> str:
    def window(match: re.Match[str]) -> str:
        span, step = match.group(1), match.group(2)
        if not _DURATION.fullmatch(span) and not _DURATION.match(span):
            return match.group(0)
        inner = scaled(span, k) + (f":{scaled(step, k)}" if step else "")
        return f"[{inner}]"

    def number(match: re.Match[str]) -> str:
        value = int(match.group(1))
        if value not in WINDOW_SECONDS:
            return match.group(0)
        fast = value / k
        return str(int(fast)) if fast == int(fast) else repr(fast)

    code = _RANGE.sub(window, code)
    code = _OFFSET.sub(lambda m: f"offset {scaled(m.group(1), k)}", code)
    # Numbers inside the scaled brackets end in "ms" and are no longer bare.
    return _NUMBER.sub(number, code)


def scale_groups(groups: list[dict[str, Any]], k: float) -> list[dict[str, Any]]:
    """A copy of rule ``groups`` running ``k`` times faster (module doc)."""
    if k <= 0:
        raise ValueError(f"time scale must be > 0 (got {k})")
    out = copy.deepcopy(groups)
    if k == 1:
        return out
    for group in out:
        if "interval" in group:
            group["interval"] = scaled(str(group["interval"]), k)
        for rule in group.get("rules", []):
            rule["expr"] = scale_expr(str(rule["expr"]), k)
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    rule[key] = scaled(str(rule[key]), k)
    return out

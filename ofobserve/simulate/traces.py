"""Read a trace file into :class:`~ofobserve.simulate.model.Traffic`. Does I/O (reads files).

Three layouts, told apart by the header:

- **OrcBench** (``Logical Time Clock (minutes), Function ID, Runtime (ms), Model``): one
  invocation per row. ``orcbench trace`` 0.1.4 writes the header without a line break, so
  the first row may follow it on the same line; that is read as the row it is.
- **Azure Functions 2019 per-minute counts** (``HashOwner,HashApp,HashFunction,Trigger,1,
  2,...``): one function per row, a count per minute; no durations (``service_time``).
- **Per request** (``timestamp,duration``): seconds (or ISO 8601) and seconds (or a duration
  with ``ms``/``s``/``m``/``h``).

Every error names the file and the line (``trace.csv:7: ...``).
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

from ofobserve.errors import InvalidInput, Location, Problem
from ofobserve.scaler.config import duration_seconds
from ofobserve.simulate import traffic
from ofobserve.simulate.model import Traffic

ORCBENCH_HEADER = "Logical Time Clock (minutes), Function ID, Runtime (ms), Model"
AZURE_KEYS = ("HashOwner", "HashApp", "HashFunction", "Trigger")
REQUEST_KEYS = ("timestamp", "duration")
#: The longest trace a simulation takes: the event loop steps through every second of it.
MAX_DAYS = 31
MAX_SECONDS = MAX_DAYS * 86400.0
LIMIT = f"past the {MAX_DAYS}-day limit of a simulation"


def _fail(path: str, line: int | None, message: str) -> InvalidInput:
    where = path if line is None else f"{path}:{line}"
    return InvalidInput([Problem(Location(where), message)])


def _number(path: str, line: int, column: str, raw: str, low: float = -math.inf) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < low:
        bound = "" if low == -math.inf else f" >= {low:g}"
        raise _fail(path, line, f"{column}: must be a number{bound} (got {raw.strip()!r})")
    return value


def _lines(path: str) -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            yield from enumerate(handle, start=1)
    except OSError as exc:
        raise _fail(path, None, f"cannot read the trace: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _fail(path, None, "not a UTF-8 text file") from None


def load_trace(
    path: str, function: str | None, service_time: float, scale: float, seed: int
) -> Traffic:
    """The traffic of one function in the trace at ``path`` (``function``: its ID; default:
    the function with the most requests)."""
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise _fail(path, None, "empty trace")
    _, header = first
    if header.startswith(ORCBENCH_HEADER):
        rest = header[len(ORCBENCH_HEADER) :].strip()
        glued = [(1, rest)] if rest else []
        return _orcbench(path, [*glued, *lines], function, scale, seed)
    columns = [c.strip() for c in next(csv.reader([header]))]
    if tuple(columns[:4]) == AZURE_KEYS:
        return _azure(path, columns, lines, function, service_time, scale, seed)
    if tuple(c.lower() for c in columns[:2]) == REQUEST_KEYS:
        if function is not None:
            raise _fail(path, 1, "a per-request trace holds one function: drop --function")
        return _requests(path, lines, scale, seed)
    raise _fail(
        path,
        1,
        f"unknown trace header {header.strip()[:80]!r}: expected OrcBench "
        f"({ORCBENCH_HEADER!r}), Azure Functions 2019 per-minute counts "
        f"({','.join(AZURE_KEYS)},1,2,...) or per-request (timestamp,duration)",
    )


def _pick(
    path: str, counts: Counter[str], function: str | None, work: dict[str, float] | None = None
) -> str:
    """``function``, or the one with the most requests; among equals (orcbench gives every
    function of a group the same invocations, and random IDs) the most work, then the ID."""
    if not counts:
        raise _fail(path, None, "the trace has no requests")
    if function is None:
        weight = work or {}
        return min(counts, key=lambda f: (-counts[f], -weight.get(f, 0.0), f))
    if function not in counts:
        some = ", ".join(sorted(counts, key=lambda f: -counts[f])[:3])
        raise _fail(path, None, f"--function {function!r} is not in the trace (busiest: {some})")
    return function


def _orcbench(
    path: str,
    lines: list[tuple[int, str]] | Iterator[tuple[int, str]],
    function: str | None,
    scale: float,
    seed: int,
) -> Traffic:
    rows: dict[str, tuple[list[float], list[float]]] = {}
    counts: Counter[str] = Counter()
    for number, text in lines:
        if not text.strip():
            continue
        cells = [c.strip() for c in text.split(",")]
        if len(cells) != 4:
            raise _fail(path, number, f"expected 4 columns ({ORCBENCH_HEADER}), got {len(cells)}")
        try:
            minute, runtime = float(cells[0]), float(cells[2])
            ok = minute >= 0 and math.isfinite(minute) and math.isfinite(runtime)
        except ValueError:
            ok = False
        if not ok:  # the slow path, for its message
            minute = _number(path, number, "Logical Time Clock (minutes)", cells[0], 0)
            runtime = _number(path, number, "Runtime (ms)", cells[2])
        if minute * 60.0 > MAX_SECONDS:
            raise _fail(
                path,
                number,
                f"Logical Time Clock (minutes): {minute:g} is {LIMIT} "
                f"({MAX_SECONDS / 60:.0f} minutes)",
            )
        # orcbench draws runtimes from a normal distribution: a rare negative one is 0 ms.
        runtime = max(runtime, 0.0)
        fid = cells[1]
        if not fid:
            raise _fail(path, number, "Function ID: empty")
        minutes, runtimes = rows.setdefault(fid, ([], []))
        minutes.append(minute)
        runtimes.append(runtime / 1000.0)
        counts[fid] += 1
    work = {f: sum(r) for f, (_, r) in rows.items()}
    chosen = _pick(path, counts, function, work)
    minutes, runtimes = rows[chosen]
    return traffic.from_invocations(minutes, runtimes, scale, seed, f"{path} ({chosen})")


def _azure(
    path: str,
    columns: list[str],
    lines: Iterator[tuple[int, str]],
    function: str | None,
    service_time: float,
    scale: float,
    seed: int,
) -> Traffic:
    minutes = columns[4:]
    if not minutes:
        raise _fail(path, 1, "no minute columns after Trigger")
    if len(minutes) * 60.0 > MAX_SECONDS:
        raise _fail(path, 1, f"{len(minutes)} minute columns: {LIMIT}")
    series: dict[str, list[float]] = {}
    totals: Counter[str] = Counter()
    for number, text in lines:
        if not text.strip():
            continue
        cells = next(csv.reader([text]))
        if len(cells) != len(columns):
            raise _fail(path, number, f"expected {len(columns)} columns, got {len(cells)}")
        fid = cells[2].strip()
        counts = [
            _number(path, number, f"minute {minutes[i]}", raw, 0) for i, raw in enumerate(cells[4:])
        ]
        if fid in series:  # the same function twice: add them up
            counts = [a + b for a, b in zip(series[fid], counts, strict=True)]
        series[fid] = counts
        totals[fid] += int(sum(counts))
    chosen = _pick(path, totals, function)
    return traffic.from_minutes(
        series[chosen], None, service_time, scale, seed, f"{path} ({chosen})"
    )


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _timestamp(path: str, number: int, raw: str) -> float:
    raw = raw.strip()
    if _ISO.match(raw):
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise _fail(path, number, f"timestamp: not ISO 8601 (got {raw!r})") from None
    return _number(path, number, "timestamp", raw, 0)


def _requests(path: str, lines: Iterator[tuple[int, str]], scale: float, seed: int) -> Traffic:
    times: list[float] = []
    durations: list[float] = []
    first = last = (0.0, 0)
    seen = False
    for number, text in lines:
        if not text.strip():
            continue
        cells = next(csv.reader([text]))
        if len(cells) < 2:
            raise _fail(path, number, f"expected 2 columns (timestamp,duration), got {len(cells)}")
        at = _timestamp(path, number, cells[0])
        if not seen:
            first = last = (at, number)
            seen = True
        first, last = min(first, (at, number)), max(last, (at, number))
        if last[0] - first[0] > MAX_SECONDS:
            other = first if at == last[0] else last
            raise _fail(
                path,
                number,
                f"timestamp: {abs(at - other[0]) / 86400:.0f} days from line {other[1]}'s, {LIMIT}",
            )
        times.append(at)
        seconds = duration_seconds(cells[1])
        if seconds is None:
            raise _fail(
                path,
                number,
                f"duration: must be seconds, or with ms, s, m or h (got {cells[1].strip()!r})",
            )
        durations.append(seconds)
    if not times:
        raise _fail(path, None, "the trace has no requests")
    return traffic.from_requests(times, durations, scale, seed, path)

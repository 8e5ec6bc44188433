"""Benchmark: what ``import ofobserve.instrument`` costs a function's cold start, against the
floor ``import prometheus_client, opentelemetry.trace`` and Python itself, in one run.

    .venv/bin/python bench/import_cost.py [RUNS] [PYTHON]   (default: 15, this interpreter)

PYTHON is the interpreter the child processes run, e.g. a function-side virtualenv's
(``pip install ofobserve``: docs/instrumentation.md) to measure what a function image pays.

Each run starts fresh processes, interleaved (Python, floor, ofobserve, then again), so
that a busy machine slows all three alike:

- wall: the process's wall time from ``subprocess`` start to exit (``python -c``);
- importtime: ``python -X importtime``'s cumulative microseconds of the top-level imports of
  the statement (the lines at nesting level 0 that come after Python's own start-up).

It prints the best and the median of each, and the ratios ofobserve / floor of the bests
(the goal: both ≤ 1.5, issue 16). The children run without ``PYTHONPATH`` and may write
bytecode: a warm-up run caches it, as an image has it. No I/O beyond the child processes
and stdout.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

CASES = {
    "python": "pass",
    "floor": "import prometheus_client, opentelemetry.trace",
    "ofobserve": "import ofobserve.instrument",
}
GOAL = 1.5


PYTHON = sys.executable


def wall(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([PYTHON, "-c", statement], check=True, env=_env())
    return time.perf_counter() - start


def importtime(statement: str) -> float:
    """Seconds: the sum of the cumulative times of the statement's top-level imports."""
    if statement == "pass":
        return 0.0
    # Python's start-up imports (site, encodings, ...) come first, and are the same for all
    # three: the statement's imports are those after the marker module.
    code = f"import sys; sys.stderr.write('-- start --\\n'); {statement}"
    result = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env=_env(),
    )
    lines = result.stderr.split("-- start --\n", 1)[1].splitlines()
    total = 0
    for line in lines:
        if not line.startswith("import time:"):
            continue
        _, cumulative, name = line.split(":", 1)[1].split("|")
        if not name.startswith("  "):  # " name" is level 0, "   name" is nested
            total += int(cumulative)
    return total / 1e6


def _env() -> dict[str, str]:
    drop = ("PYTHONPATH", "PYTHONPROFILEIMPORTTIME", "PYTHONDONTWRITEBYTECODE")
    return {k: v for k, v in os.environ.items() if k not in drop}


def main(runs: int) -> None:
    for statement in CASES.values():  # warm the bytecode and the page cache
        wall(statement)
    walls: dict[str, list[float]] = {name: [] for name in CASES}
    imports: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(runs):
        for name, statement in CASES.items():
            walls[name].append(wall(statement))
            imports[name].append(importtime(statement))
    print(f"{runs} runs each, interleaved; {os.cpu_count()} cores; {PYTHON}")
    print(f"{'case':10} {'wall best':>10} {'median':>8} {'importtime best':>16} {'median':>8}")
    for name, statement in CASES.items():
        w, i = walls[name], imports[name]
        print(
            f"{name:10} {min(w) * 1e3:8.1f}ms {statistics.median(w) * 1e3:6.1f}ms"
            f" {min(i) * 1e3:14.1f}ms {statistics.median(i) * 1e3:6.1f}ms   {statement}"
        )
    wall_ratio = min(walls["ofobserve"]) / min(walls["floor"])
    import_ratio = min(imports["ofobserve"]) / min(imports["floor"])
    above = min(walls["ofobserve"]) - min(walls["python"])
    floor_above = min(walls["floor"]) - min(walls["python"])
    print(f"ratio ofobserve / floor, wall (best):       {wall_ratio:.2f}  (goal <= {GOAL})")
    print(f"ratio ofobserve / floor, importtime (best): {import_ratio:.2f}  (goal <= {GOAL})")
    print(
        f"above Python itself, wall (best): ofobserve {above * 1e3:.1f} ms, "
        f"floor {floor_above * 1e3:.1f} ms"
    )
    met = wall_ratio <= GOAL and import_ratio <= GOAL
    print("goal met" if met else "goal MISSED")


if __name__ == "__main__":
    if len(sys.argv) > 2:
        PYTHON = sys.argv[2]
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)

"""Benchmark: render N synthetic functions end to end, in process. Does I/O (stdout, a temp dir).

    .venv/bin/python bench/render.py [N ...]        (default: 100 1000)

Per N it prints the wall time of each stage and per function, and, as the baseline measured
in the same run, the ratio to parsing the input YAML alone (PyYAML's C loader), which every
tool reading manifests pays. Not part of the test suite.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ofobserve.builders.dashboards import function_dashboard
from ofobserve.grafana import build_dashboard_json
from ofobserve.loading import load_subjects
from ofobserve.output import write_tree
from ofobserve.render import GROUP_NAMES, render_all
from ofobserve.serialize import serialize_tree

EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "ofobserve.yaml"
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def synthetic_manifests(n: int) -> str:
    """N functions across 10 namespaces, a third of each runtime."""
    docs = []
    for i in range(n):
        ns = f"team-{i % 10}"
        if i % 3 == 0:
            serving = {
                "triggers": {"http": {"port": 8080}},
                "scaleOptions": {"minReplicas": 1, "maxReplicas": 10},
            }
        elif i % 3 == 1:
            serving = {
                "bindings": {"in": {"type": "bindings.kafka"}},
                "triggers": {"dapr": [{"name": "in"}]},
                "scaleOptions": {
                    "minReplicas": 0,
                    "maxReplicas": 20,
                    "keda": {
                        "triggers": [
                            {"type": "kafka", "metadata": {"topic": f"t{i}", "lagThreshold": "10"}}
                        ]
                    },
                },
            }
        else:
            serving = {"triggers": {"http": {"port": 8080, "engine": "keda"}}}
        docs.append(
            {
                "apiVersion": "core.openfunction.io/v1beta2",
                "kind": "Function",
                "metadata": {
                    "name": f"fn-{i:05d}",
                    "namespace": ns,
                    "labels": {"team": f"t{i % 7}"},
                },
                "spec": {"image": "example/fn:v1", "serving": serving},
            }
        )
    return yaml.safe_dump_all(docs)


def _timed(fn, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def bench(n: int) -> None:
    text = synthetic_manifests(n)
    _, parse = _timed(lambda: list(yaml.load_all(text, Loader=LOADER)))
    subjects, load = _timed(lambda: load_subjects(["-"], str(EXAMPLE_CONFIG), io.StringIO(text)))
    artifacts, build = _timed(render_all, subjects)
    files, ser = _timed(serialize_tree, artifacts)
    with tempfile.TemporaryDirectory() as tmp:
        _, write = _timed(write_tree, f"{tmp}/out", files, GROUP_NAMES)
    total = load + build + ser + write
    print(f"N={n:>6}  functions, {len(files)} files")
    print(
        f"  load+validate {load:7.3f} s   build {build:7.3f} s   serialize {ser:7.3f} s   "
        f"write {write:7.3f} s"
    )
    print(
        f"  total {total:7.3f} s   {1000 * total / n:6.3f} ms/function   "
        f"{n / total:8.0f} functions/s"
    )
    print(
        f"  baseline: YAML parse of the input {parse:7.3f} s; render total = "
        f"{total / parse:5.1f}x the parse"
    )


def bench_dashboards(n: int) -> None:
    """Dashboards alone: specs from the profiles, then grafanalib and the post-processing;
    the baseline is ``json.dumps`` of the very dashboards built (the floor of any
    JSON-producing builder)."""
    subjects = load_subjects(["-"], str(EXAMPLE_CONFIG), io.StringIO(synthetic_manifests(n)))
    specs, spec_time = _timed(lambda: [function_dashboard(s) for s in subjects])
    dashboards, json_time = _timed(lambda: [build_dashboard_json(spec) for spec in specs])
    _, dump = _timed(lambda: [json.dumps(d, sort_keys=True, indent=2) for d in dashboards])
    total = spec_time + json_time
    print(f"N={n:>6}  dashboards")
    print(
        f"  specs {spec_time:7.3f} s   grafanalib+post-processing {json_time:7.3f} s   "
        f"total {total:7.3f} s   {n / total:8.0f} dashboards/s"
    )
    print(
        f"  baseline: json.dumps of the same dashboards {dump:7.3f} s; build = {total / dump:5.1f}x"
    )


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100, 1000]
    for n in sizes:
        bench(n)
    bench_dashboards(max(sizes))


if __name__ == "__main__":
    main()

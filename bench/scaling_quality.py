"""Benchmark: the four policies of ``ofobserve simulate`` on bursty OrcBench traces, and
ofobserve's figures as a ratio to Knative's KPA, measured in the same run. Does I/O
(runs ``orcbench``, writes the plot). Not part of the test suite.

    .venv/bin/python bench/scaling_quality.py [--orcbench PATH] [--seeds 1,2,3]
        [--minutes 120] [--plot docs/simulate-quality.png] [--baseline-policy FILE]

``--baseline-policy FILE`` adds the rows ``ofobserve (before)`` and ``ofobserve+delay
(before)``: the same runs with another version of ``ofobserve/scaler/policy.py`` (e.g.
``git show HEAD:ofobserve/scaler/policy.py > /tmp/policy_before.py``), to show what a
policy change does to the table.

Each seed is one ``orcbench trace --scale 0.01 --runtime MINUTES --seed SEED`` (PyPI
``orcbench`` 0.1.4; it pins ``numpy<2``, so it lives in a virtualenv of its own, e.g.
``python3 -m venv /tmp/orcvenv && /tmp/orcvenv/bin/pip install orcbench==0.1.4``). From
each trace the bench takes the function with the most invocations among those whose mean
runtime is 0.3-3 s, and scales its arrivals (``--scale K``: each invocation becomes a
Poisson(K) burst within a second of it) so that it holds ``IN_FLIGHT`` requests on average:
replicas reach tens at ``containerConcurrency`` 10. The SLO is twice the function's mean
runtime (orcbench draws runtimes normal with a 30 % deviation, so service alone almost never
misses it): what is left is queueing and cold starts, the autoscaler's part.

Rows: the four policies (ofobserve with ``--source prometheus``, the default: the
queue-proxies' view a scrape later), ``ofobserve+delay`` (``scaleDownDelay: 60s``),
``kpa+delay`` (Knative's ``scale-down-delay: 60s``, the like-for-like baseline of
``ofobserve+delay``), ``ofobserve (direct)`` (``--source direct``, the native profile) and,
as a diagnostic, ``ofobserve (1 s scrapes)``: the queue-proxies' view at the KPA's freshness.

Goal (issue 14): SLO violations <= 0.8x KPA's at <= 1.0x KPA's replica-seconds, reported
for each of ours against its like-for-like KPA, met or not.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ofobserve.simulate import policies, report, traces  # noqa: E402
from ofobserve.simulate.cluster import Run  # noqa: E402
from ofobserve.simulate.model import Params, Traffic  # noqa: E402
from ofobserve.simulate.plot import write_plot  # noqa: E402
from ofobserve.simulate.runner import resolved, run_policies  # noqa: E402

IN_FLIGHT = 80.0
#: ofobserve once more, with ``scaleDownDelay: 60s`` in its ScaledObject metadata.
DELAY = 60.0
DELAYED = "ofobserve+delay"
#: Knative's KPA with the same 60 s, as ``autoscaling.knative.dev/scale-down-delay``.
KPA_DELAYED = "kpa+delay"
#: ofobserve with ``--source direct`` (the native profile: running requests, handler time).
DIRECT = "ofobserve (direct)"
#: Diagnostic: ofobserve on the queue-proxies' view scraped every second, the KPA's
#: freshness (a Prometheus scrape every second is not a usual setup).
FRESH = "ofobserve (1 s scrapes)"
NAMES = (*policies.POLICIES, DELAYED, KPA_DELAYED, DIRECT, FRESH)
#: Each of ours against its like-for-like KPA.
BASELINE = {"ofobserve": "kpa", DELAYED: KPA_DELAYED, DIRECT: "kpa", FRESH: "kpa"}
BEFORE = ("ofobserve (before)", "ofobserve+delay (before)")
RUNTIME_RANGE = (300.0, 3000.0)  # ms


def generate(orcbench: str, seed: int, minutes: int, out: Path) -> None:
    subprocess.run(
        [orcbench, "trace", "--scale", "0.01", "--seed", str(seed), "--runtime", str(minutes),
         "--out", str(out)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip


def choose(path: Path) -> tuple[str, float, float]:
    """The function to replay: (ID, invocations per second, mean runtime in s)."""
    text = path.read_text()[len(traces.ORCBENCH_HEADER) :]
    counts: Counter[str] = Counter()
    runtime: defaultdict[str, float] = defaultdict(float)
    last = 0.0
    for line in text.splitlines():
        if not line.strip():
            continue
        minute, fid, ms, _model = (c.strip() for c in line.split(","))
        counts[fid] += 1
        runtime[fid] += float(ms)
        last = max(last, float(minute))
    low, high = RUNTIME_RANGE
    fit = [f for f in counts if low <= runtime[f] / counts[f] <= high]
    # orcbench gives every function of a group the same invocations and random (uuid1) IDs:
    # among equals, the runtime closest to 1 s, so that a seed always picks the same one.
    best = max(fit, key=lambda f: (counts[f], -abs(math.log(runtime[f] / counts[f] / 1000.0))))
    return best, counts[best] / ((int(last) + 1) * 60.0), runtime[best] / counts[best] / 1000.0


def load_policy(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("policy_before", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["policy_before"] = module
    spec.loader.exec_module(module)
    return module


def run_with(module: ModuleType | None, traffic: Traffic, params: Params) -> list[Run]:
    """ofobserve, and ofobserve with scaleDownDelay, through ``module`` as its policy."""
    current = vars(policies)["policy"]
    if module is not None:
        setattr(policies, "policy", module)  # noqa: B010 (the bench swaps the module in)
    try:
        [plain] = run_policies(traffic, params, ["ofobserve"])
        [held] = run_policies(traffic, replace(params, scale_down_delay=DELAY), ["ofobserve"])
    finally:
        setattr(policies, "policy", current)  # noqa: B010
    return [plain, held]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orcbench", default=shutil.which("orcbench") or "orcbench")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--minutes", type=int, default=120)
    parser.add_argument("--plot", default=str(ROOT / "docs" / "simulate-quality.png"))
    parser.add_argument("--baseline-policy")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    before = load_policy(args.baseline_policy) if args.baseline_policy else None
    names = (*NAMES, *BEFORE) if before else NAMES
    totals: dict[str, dict[str, float]] = {p: defaultdict(float) for p in names}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for index, seed in enumerate(seeds):
            path = Path(tmp) / f"orcbench-{seed}.csv"
            generate(args.orcbench, seed, args.minutes, path)
            fid, rate, service = choose(path)
            scale = IN_FLIGHT / (rate * service)
            traffic = traces.load_trace(str(path), fid, 0.1, scale, seed)
            traffic = replace(traffic, source=f"orcbench seed {seed}, x{scale:.0f}")
            params = resolved(Params(slo=round(2 * service, 3), seed=seed), traffic)
            runs = run_policies(traffic, params, policies.POLICIES)
            runs.append(replace(run_with(None, traffic, params)[1], policy=DELAYED))
            [kpa_held] = run_policies(traffic, replace(params, kpa_scale_down_delay=DELAY), ["kpa"])
            runs.append(replace(kpa_held, policy=KPA_DELAYED))
            [direct] = run_policies(traffic, replace(params, source="direct"), ["ofobserve"])
            runs.append(replace(direct, policy=DIRECT))
            fast = replace(params, pipeline=replace(params.pipeline, scrape_interval=1.0))
            [fresh] = run_policies(traffic, fast, ["ofobserve"])
            runs.append(replace(fresh, policy=FRESH))
            shown = list(runs[:6])
            if before is not None:
                old = run_with(before, traffic, params)
                runs += [replace(r, policy=n) for r, n in zip(old, BEFORE, strict=True)]
            result = report.build_report(traffic, params, runs)
            print(f"seed {seed}: orcbench function {fid[:12]}, {rate * 60:.1f}/min x {scale:.1f}, "
                  f"mean runtime {service:.3f}s, SLO {params.slo:g}s")  # fmt: skip
            print(report.render_table(result).split("\n", 1)[1])
            for figures in result["policies"]:
                t = totals[figures["policy"]]
                t["requests"] += figures["requests"]
                t["over"] += figures["slo_violation_share"] * figures["requests"]
                t["replica_seconds"] += figures["replica_seconds"]
                t["cold_starts"] += figures["cold_starts"]
                t["timed_out"] += figures["timed_out"]
                t["max_replicas"] = max(t["max_replicas"], figures["max_replicas"])
            if index == 0 and args.plot:
                write_plot(args.plot, traffic, params, shown, dpi=60)
    print(f"all {len(seeds)} traces ({time.perf_counter() - started:.1f} s):")
    kpa = totals["kpa"]
    header = ("POLICY", "OVER SLO", "REPLICA-S", "COLD STARTS", "MAX", "OVER SLO / KPA",
              "REPLICA-S / KPA")  # fmt: skip
    rows: list[tuple[Any, ...]] = [header]
    for name in names:
        t = totals[name]
        share = t["over"] / t["requests"]
        rows.append((name, f"{100 * share:.3f}%", int(t["replica_seconds"]), int(t["cold_starts"]),
                     int(t["max_replicas"]), f"{t['over'] / max(kpa['over'], 1):.2f}x",
                     f"{t['replica_seconds'] / kpa['replica_seconds']:.2f}x"))  # fmt: skip
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    pairs = [*BASELINE.items(), *((n, "kpa+delay" if "delay" in n else "kpa") for n in
             (BEFORE if before else ()))]  # fmt: skip
    for name, base_name in pairs:
        ours, base = totals[name], totals[base_name]
        slo_ratio = ours["over"] / max(base["over"], 1)
        cost_ratio = ours["replica_seconds"] / base["replica_seconds"]
        met = slo_ratio <= 0.8 and cost_ratio <= 1.0
        print(f"goal for {name} vs {base_name} (SLO violations <= 0.8x at <= 1.0x "
              f"replica-seconds): {slo_ratio:.2f}x at {cost_ratio:.2f}x: "
              f"{'met' if met else 'NOT met'}")  # fmt: skip
    if args.plot:
        print(f"plot of seed {seeds[0]}: {args.plot} ({Path(args.plot).stat().st_size} bytes)")


if __name__ == "__main__":
    main()

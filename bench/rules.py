"""Benchmark: what the SLO rules cost a real Prometheus, per-function (round 1) vs fleet-wide.

    .venv/bin/python bench/rules.py [N ...] [--days D] [--cycles C] [--keep DIR]
    (default: N = 100 1000, D = 3 days of history, C = 3 measured evaluation cycles)

Per N, in one run and against one TSDB:

1. **Synthetic traffic** for N Knative functions (``revision_request_count`` by
   ``response_code_class`` and the ``revision_request_latencies`` histogram, in ms): D days
   at one sample a minute, written as OpenMetrics and backfilled with ``promtool tsdb
   create-blocks-from openmetrics``; from then on a small exporter in this process serves
   the same series, computed from the same formula, and Prometheus scrapes it every 60 s, so
   history and live data join without a seam. Every 20th function fails 10 % of its
   requests (its burn-rate alerts fire), every 20th + 1 is *bursty*: the last 5 minutes of
   every hour busy
   at 20 req/s with 0.1 % errors, 55 quiet minutes at 0.05 req/s with 20 % errors, the case
   where an average of 5-minute ratios is far from the traffic-weighted ratio. The rest are
   steady at 0.5 to 20 req/s. Every rate is constant or hourly-periodic, so every window
   from 1 h up reads the same value whenever it is evaluated, and the exact SLI of each
   window is known in closed form (the "truth" column).
2. **Recorded history**: the recording rules that other rules read through ``*_over_time``
   (round 1's 5-minute ratios, the fleet design's 5-minute increases) are backfilled over
   the D days with ``promtool tsdb create-blocks-from rules``.
3. **Idle**: Prometheus with no rules, scraping only: its CPU is the floor.
4. **Per-function rules**: the frozen round-1 template ``bench/baseline/per-function-knative.yaml``
   once per function (as prometheus-operator loads one file per PrometheusRule).
5. **Fleet rules**: what ``ofobserve render --only rules`` writes today for the same N
   functions (the same settings: examples/ofobserve.yaml's defaults).

For each of 4 and 5, after every group has evaluated once and one more cycle: Prometheus's
CPU (``/proc/PID/stat``, minus the idle floor) over C evaluation cycles of 60 s, its RSS,
the sum over groups of ``prometheus_rule_group_last_duration_seconds`` and of
``/api/v1/rules`` ``evaluationTime`` (the evaluation time per cycle), then a sample of SLI
and burn-rate values and the firing alerts. Not part of the test suite; needs ``prometheus``
and ``promtool`` (Debian's 2.42 here) on PATH.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "bench" / "baseline" / "per-function-knative.yaml"
MANIFEST = ROOT / "examples" / "functions" / "hello-world.yaml"
CONFIG = ROOT / "examples" / "ofobserve.yaml"
STEP = 60  # seconds between samples, in history and in scrapes
INTERVAL = 60  # rule evaluation interval
BLOCK = 7200  # promtool's block range (2 h, aligned to the epoch)
BUCKETS_MS = ("50", "100", "250", "500", "1000", "+Inf")
OBJECTIVE = {"availability": 0.995, "latency": 0.95}  # examples/ofobserve.yaml defaults
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
HOUR = 3600.0
BUSY = 300.0  # the bursty functions' busy seconds per hour


@dataclass(frozen=True)
class Function:
    """One synthetic function: request rate, error share and slow share (over 500 ms) in its
    busy and its quiet part of every hour (equal for a steady function)."""

    namespace: str
    name: str
    kind: str  # steady | burning | bursty
    busy: tuple[float, float, float]  # rate (1/s), error share, slow share
    quiet: tuple[float, float, float]

    def truth(self, share: Callable[[tuple[float, float, float]], float]) -> float:
        """The exact bad share over any whole number of hours (every window from 1 h up)."""
        b, q = self.busy, self.quiet
        bad = b[0] * share(b) * BUSY + q[0] * share(q) * (HOUR - BUSY)
        return bad / (b[0] * BUSY + q[0] * (HOUR - BUSY))


def busy_quiet(t: float) -> tuple[float, float]:
    """Busy and quiet seconds from the start of history to ``t`` seconds after it."""
    hours, rest = divmod(t, HOUR)
    busy = hours * BUSY + max(rest - (HOUR - BUSY), 0.0)  # the busy part ends each hour
    return busy, t - busy


def fleet(n: int) -> list[Function]:
    functions = []
    for i in range(n):
        ns, name = f"team-{i % 10}", f"fn-{i:05d}"
        if i % 20 == 0:
            steady = (2.0 + i % 7, 0.10, 0.01)
            functions.append(Function(ns, name, "burning", steady, steady))
        elif i % 20 == 1:
            functions.append(Function(ns, name, "bursty", (20.0, 0.001, 0.01), (0.05, 0.2, 0.2)))
        else:
            steady = (0.5 + (i * 7) % 40 / 2, 0.0005 + (i % 5) * 0.0005, 0.005 + (i % 4) * 0.004)
            functions.append(Function(ns, name, "steady", steady, steady))
    return functions


def _share_fractions(slow: float) -> tuple[float, ...]:
    """Cumulative share of requests under each bucket bound: ``1 - slow`` under 500 ms."""
    return (0.3, 0.6, 0.9, 1 - slow, 1 - slow / 4, 1.0)


def series(fn: Function) -> list[tuple[str, str, float, float]]:
    """(family, labels, a, b) of every counter of ``fn``: its value ``t`` seconds into
    history is ``a * busy + b * quiet`` seconds (:func:`busy_quiet`)."""
    base = f'namespace="{fn.namespace}",function="{fn.name}"'
    (br, be, bs), (qr, qe, qs) = fn.busy, fn.quiet
    out = [
        ("revision_request_count", f'{base},response_code_class="5xx"', br * be, qr * qe),
        ("revision_request_count", f'{base},response_code_class="2xx"', br * (1 - be),
         qr * (1 - qe)),
    ]  # fmt: skip
    under = zip(BUCKETS_MS, _share_fractions(bs), _share_fractions(qs), strict=True)
    for le, b_under, q_under in under:
        out.append(("revision_request_latencies_bucket", f'{base},le="{le}"', br * b_under,
                    qr * q_under))  # fmt: skip
    out.append(("revision_request_latencies_count", base, br, qr))
    out.append(("revision_request_latencies_sum", base, br * 120.0, qr * 120.0))
    return out


def live_series(fn: Function) -> Iterator[tuple[str, str, float]]:
    """The gauges only the live exporter serves (instant queries need no history)."""
    yield "revision_queue_depth", f'namespace="{fn.namespace}",function="{fn.name}"', 0.0
    deployment = f'namespace="{fn.namespace}",deployment="{fn.name}-v2-deployment"'
    yield "kube_deployment_spec_replicas", deployment, 1.0
    yield "kube_deployment_status_replicas_available", deployment, 1.0
    yield "kube_deployment_status_replicas_unavailable", deployment, 0.0
    yield "kube_deployment_labels", f'{deployment},label_ofobserve_io_function="{fn.name}"', 1.0


def write_openmetrics(
    path: Path, functions: list[Function], start: float, first: float, last: float
) -> int:
    """History from ``first`` to ``last`` at one sample per STEP (the series' own time starts
    at ``start``), family by family, series by series (as OpenMetrics wants); returns the
    number of samples."""
    times = [first + k * STEP for k in range(int((last - first) // STEP) + 1)]
    parts = [(busy_quiet(t - start), f" {int(t)}\n") for t in times]
    by_family: dict[str, list[tuple[str, float, float]]] = {}
    for fn in functions:
        for family, labels, a, b in series(fn):
            by_family.setdefault(family, []).append((labels, a, b))
    samples = 0
    with path.open("w") as out:
        for family, members in by_family.items():
            out.write(f"# TYPE {family} unknown\n")
            for labels, a, b in members:
                prefix = f"{family}{{{labels}}} "
                out.write("".join(f"{prefix}{a * bs + b * qs:.3f}{s}" for (bs, qs), s in parts))
                samples += len(parts)
        out.write("# EOF\n")
    return samples


class Exporter:
    """The live end of the same series, at the time of each scrape."""

    def __init__(self, functions: list[Function], start: float) -> None:
        self.functions, self.start = functions, start
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.exposition(time.time()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def exposition(self, now: float) -> str:
        busy, quiet = busy_quiet(now - self.start)
        lines: dict[str, list[str]] = {}
        for fn in self.functions:
            for family, labels, a, b in series(fn):
                value = a * busy + b * quiet
                lines.setdefault(family, []).append(f"{family}{{{labels}}} {value:.3f}")
            for family, labels, value in live_series(fn):
                lines.setdefault(family, []).append(f"{family}{{{labels}}} {value:.3f}")
        return "".join(f"# TYPE {f} untyped\n" + "\n".join(v) + "\n" for f, v in lines.items())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, workdir: Path, tsdb: Path, rule_files: list[Path], scrape_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": f"{STEP}s", "evaluation_interval": f"{INTERVAL}s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {
                    "job_name": "synthetic",
                    "honor_labels": True,
                    "static_configs": [{"targets": [f"127.0.0.1:{scrape_port}"]}],
                }
            ],
        }
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        self.log = (workdir / "prometheus.log").open("a")
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={path}",
                f"--storage.tsdb.path={tsdb}",
                "--storage.tsdb.retention.time=60d",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--query.max-samples=200000000",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"prometheus did not start; see {workdir / 'prometheus.log'}")
            time.sleep(0.5)

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=600) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("/api/v1/query", query=expr)["result"])

    def own_metrics(self) -> Iterator[tuple[str, float]]:
        """Prometheus's own /metrics (not scraped into its TSDB: that would add series)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=60) as r:
            text = r.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                yield sample.name, sample.value

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        self.log.close()


# --- the two rule sets ----------------------------------------------------------------------


def per_function_rules(functions: list[Function], out: Path) -> list[Path]:
    template = TEMPLATE.read_text()
    out.mkdir(parents=True)
    paths = []
    for fn in functions:
        text = template.replace("@NS@", fn.namespace).replace("@FN@", fn.name)
        path = out / f"{fn.namespace}-{fn.name}.yaml"
        path.write_text(yaml.safe_dump({"groups": yaml.safe_load(text)["spec"]["groups"]}))
        paths.append(path)
    return paths


def fleet_rules(functions: list[Function], workdir: Path) -> list[Path]:
    """What ``ofobserve render --only rules`` writes for these functions, one rules file per
    PrometheusRule (as prometheus-operator loads them)."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    docs = []
    for fn in functions:
        doc = json.loads(json.dumps(manifest))
        doc["metadata"] = {"name": fn.name, "namespace": fn.namespace}
        docs.append(doc)
    source = workdir / "functions.yaml"
    source.write_text(yaml.safe_dump_all(docs))
    rendered = workdir / "rendered"
    subprocess.run(
        [str(Path(sys.executable).parent / "ofobserve"), "-q", "render", str(source),
         "-c", str(CONFIG), "--only", "rules", "-o", str(rendered)],
        check=True,
    )  # fmt: skip
    out = workdir / "fleet-rules"
    out.mkdir()
    paths = []
    for path in sorted(rendered.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
                meta = doc["metadata"]
                target = out / f"{meta.get('namespace', '')}-{meta['name']}.yaml"
                target.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
                paths.append(target)
    if not paths:
        raise SystemExit(f"ofobserve render wrote no PrometheusRule under {rendered}")
    return paths


def rule_count(paths: list[Path]) -> tuple[int, int]:
    groups = [g for p in paths for g in yaml.safe_load(p.read_text())["groups"]]
    return sum(len(g["rules"]) for g in groups), len(groups)


OVER_TIME = re.compile(r"\b[a-z]+_over_time\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")
RECORDED = re.compile(r"\b[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]+")


def history_levels(paths: list[Path]) -> list[list[dict[str, Any]]]:
    """The recording rules some rule reads over a range (``*_over_time``), with the recorded
    series they read in turn: their history must be backfilled, or the long windows would
    only see the minutes since Prometheus started. promtool backfills only from data already
    in the TSDB, so they come in levels: level 0 reads raw series only, level k reads levels
    below k. Each level is a list of rule groups."""
    groups = [g for p in paths for g in yaml.safe_load(p.read_text())["groups"]]
    defined = {r["record"]: (g["name"], r) for g in groups for r in g["rules"] if "record" in r}
    wanted = {m for g in groups for r in g["rules"] for m in OVER_TIME.findall(str(r["expr"]))}
    pending, level_of = sorted(wanted & defined.keys()), {}
    while pending:
        name = pending.pop()
        reads = set(RECORDED.findall(str(defined[name][1]["expr"]))) & defined.keys()
        missing = [r for r in reads if r not in level_of]
        if missing:
            pending += [name, *missing]
            continue
        level_of[name] = 1 + max((level_of[r] for r in reads), default=-1)
    levels: list[dict[str, list[dict[str, Any]]]] = []
    for group in groups:
        for rule in group["rules"]:
            level = level_of.get(rule.get("record", ""))
            if level is not None:
                while len(levels) <= level:
                    levels.append({})
                levels[level].setdefault(group["name"], []).append(rule)
    return [[{"name": g, "rules": rules} for g, rules in lv.items()] for lv in levels]


def _as_record(rule: dict[str, Any]) -> str:
    """The rule's expression, yielding the series the rule records, with its name as the
    label ``bench_record``: ``or`` matches label sets without the metric name, so rules that
    record alike-labelled series under two names would otherwise shadow each other."""
    expr = f"({rule['expr']})"
    for name, value in {**rule.get("labels", {}), RECORD_LABEL: rule["record"]}.items():
        expr = f'label_replace({expr}, "{name}", "{value}", "", "")'
    return expr


RECORD_LABEL = "bench_record"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def backfill_recorded(
    prom: Prometheus, rules: list[dict[str, Any]], first: int, last: int, workdir: Path,
    tsdb: Path, batch: int = 50,
) -> None:  # fmt: skip
    """Evaluate ``rules`` over [first, last] at the evaluation interval, as Prometheus would
    have recorded them, and write the results into ``tsdb`` as blocks. (``promtool tsdb
    create-blocks-from rules`` does the same one rule and one 2-hour range at a time: for the
    per-function design's thousands of rules that takes hours; here up to ``batch`` rules
    share one range query, joined with ``or``.)"""
    for chunk_first in range(first - first % BLOCK, last + 1, BLOCK):
        lo, hi = max(chunk_first, first), min(chunk_first + BLOCK - INTERVAL, last)
        families: dict[str, list[str]] = {}
        for b in range(0, len(rules), batch):
            expr = " or ".join(_as_record(r) for r in rules[b : b + batch])
            result = prom.api(
                "/api/v1/query_range", query=expr, start=str(lo), end=str(hi), step=str(INTERVAL)
            )["result"]
            for item in result:
                metric = dict(item["metric"])
                metric.pop("__name__", None)
                name = metric.pop(RECORD_LABEL)
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(metric.items()))
                families.setdefault(name, []).extend(
                    f"{name}{{{labels}}} {v} {int(t)}" for t, v in item["values"]
                )
        if not families:
            continue
        chunk = workdir / "recorded.om"
        with chunk.open("w") as out:
            for name, samples in families.items():
                out.write(f"# TYPE {name} unknown\n" + "\n".join(samples) + "\n")
            out.write("# EOF\n")
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q",
                        str(chunk), str(tsdb)], check=True)  # fmt: skip
        chunk.unlink()


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    rules: int
    groups: int
    cores: float  # Prometheus CPU / wall time over the measured cycles
    rss_mib: float
    eval_seconds: float  # sum of the groups' last evaluation durations (one cycle)
    api_eval_seconds: float
    values: dict[tuple[str, str, str, str], float]
    alerts: set[tuple[str, str, str, str]]


def wait_all_evaluated(prom: Prometheus, since: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        groups = prom.api("/api/v1/rules")["groups"]
        stamps = [g.get("lastEvaluation", "") for g in groups]
        if groups and all(s and not s.startswith("0001") and _ts(s) > since for s in stamps):
            return
        time.sleep(5)
    raise SystemExit("not every rule group evaluated in time")


def _ts(stamp: str) -> float:
    stamp = re.sub(r"(\.\d{6})\d*", r"\1", stamp.replace("Z", "+00:00"))
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def measure(name: str, prom: Prometheus, paths: list[Path], cycles: int,
            sample: list[Function]) -> Phase:  # fmt: skip
    rules, groups = rule_count(paths) if paths else (0, 0)
    if paths:
        wait_all_evaluated(prom, time.time() - 5, timeout=30 * INTERVAL)
        time.sleep(INTERVAL)
    cpu0, t0 = prom.cpu_seconds(), time.monotonic()
    time.sleep(cycles * INTERVAL)
    cores = (prom.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    rss = prom.rss_mib()
    eval_s = sum(
        v for name, v in prom.own_metrics() if name == "prometheus_rule_group_last_duration_seconds"
    )
    api_eval = sum(float(g["evaluationTime"]) for g in prom.api("/api/v1/rules")["groups"])
    values: dict[tuple[str, str, str, str], float] = {}
    alerts: set[tuple[str, str, str, str]] = set()
    if paths:
        names = "|".join(fn.name for fn in sample)
        for r in prom.query(
            f'{{__name__=~"slo:(sli_error:ratio_rate.+|current_burn_rate:ratio|'
            f'period_burn_rate:ratio)",function=~"{names}"}}'
        ):
            m = r["metric"]
            window = m["__name__"].rsplit("rate", 1)[1] if "sli_error" in m["__name__"] else ""
            key = (m["function"], m.get("sloth_slo", ""), m["__name__"].split(":")[1], window)
            values[key] = float(r["value"][1])
        for r in prom.query('ALERTS{alertstate="firing"}'):
            m = r["metric"]
            alerts.add((m["alertname"], m.get("namespace", ""), m.get("function", ""),
                        m.get("severity", "")))  # fmt: skip
    return Phase(name, rules, groups, cores, rss, eval_s, api_eval, values, alerts)


def run(n: int, days: float, cycles: int, keep: Path | None) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"ofobserve-rules-{n}-", dir=keep))
    functions = fleet(n)
    start = math.floor((time.time() - days * 86400) / BLOCK) * BLOCK
    history_end = math.floor(time.time() / STEP) * STEP - STEP
    print(f"N={n}: {days:g} days of history, {workdir}", flush=True)

    t = time.monotonic()
    tsdb, samples = workdir / "tsdb", 0
    # One file per 2-hour block: promtool reads its whole input once per block it writes.
    for first in range(start, history_end + 1, BLOCK):
        chunk = workdir / "history.om"
        last = min(first + BLOCK - STEP, history_end)
        samples += write_openmetrics(chunk, functions, start, first, last)
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q",
                        str(chunk), str(tsdb)], check=True)  # fmt: skip
        chunk.unlink()
    print(f"  backfilled {samples:,} samples in {time.monotonic() - t:.0f} s", flush=True)

    exporter = Exporter(functions, start)
    old = per_function_rules(functions, workdir / "per-function-rules")
    new = fleet_rules(functions, workdir)
    prom = Prometheus(workdir, tsdb, [], exporter.port)
    idle = measure("idle (no rules)", prom, [], cycles, [])
    prom.stop()

    sample = [f for f in functions if f.kind == "steady"][:4]
    sample += [f for f in functions if f.kind != "steady"][:4]
    phases = []
    for name, paths in (("per-function", old), ("fleet", new)):
        # Each design's recorded history up to the moment its rules take over, so that its
        # long windows have no hole where the other design was running.
        t = time.monotonic()
        for level in history_levels(paths):
            prom = Prometheus(workdir, tsdb, [], exporter.port)
            rules = [r for g in level for r in g["rules"]]
            backfill_recorded(prom, rules, start + 600, int(time.time()) - 5, workdir, tsdb)
            prom.stop()
        print(f"  {name}: backfilled its recorded history in {time.monotonic() - t:.0f} s",
              flush=True)  # fmt: skip
        prom = Prometheus(workdir, tsdb, paths, exporter.port)
        phases.append(measure(name, prom, paths, cycles, sample))
        prom.stop()
    exporter.server.shutdown()
    report(n, idle, phases, sample)
    if keep is None:
        shutil.rmtree(workdir)


def report(n: int, idle: Phase, phases: list[Phase], sample: list[Function]) -> None:
    old, new = phases
    print(f"  idle Prometheus: {idle.cores:.3f} cores, {idle.rss_mib:.0f} MiB")
    print(f"  {'rules':<14}{'rules':>8}{'groups':>8}{'cores':>8}{'for rules':>10}"
          f"{'eval/cycle':>12}{'api eval':>10}{'RSS MiB':>9}")  # fmt: skip
    for p in phases:
        print(f"  {p.name:<14}{p.rules:>8}{p.groups:>8}{p.cores:>8.3f}"
              f"{p.cores - idle.cores:>10.3f}{p.eval_seconds:>11.3f}s"
              f"{p.api_eval_seconds:>9.3f}s{p.rss_mib:>9.0f}")  # fmt: skip
    cpu_ratio = (old.cores - idle.cores) / max(new.cores - idle.cores, 1e-3)
    print(f"  ratio per-function / fleet: CPU for the rules {cpu_ratio:.1f}x, evaluation time "
          f"{old.eval_seconds / max(new.eval_seconds, 1e-6):.1f}x, RSS "
          f"{old.rss_mib / new.rss_mib:.2f}x")  # fmt: skip
    print(f"  firing alerts: per-function {len(old.alerts)}, fleet {len(new.alerts)}, "
          f"identical: {old.alerts == new.alerts}")  # fmt: skip
    for a in sorted(old.alerts ^ new.alerts)[:10]:
        print(f"    only in {'per-function' if a in old.alerts else 'fleet'}: {a}")
    print(f"  {'function':<10}{'kind':<9}{'slo':<13}{'window':>7}{'truth':>10}{'per-fn':>10}"
          f"{'fleet':>10}{'fleet/per-fn':>13}")  # fmt: skip
    worst = 0.0
    for fn in sample:
        for slo, share in (("availability", lambda p: p[1]), ("latency", lambda p: p[2])):
            truth = fn.truth(share)
            for window in WINDOWS:
                key = (fn.name, slo, "sli_error", window)
                a, b = old.values.get(key, math.nan), new.values.get(key, math.nan)
                ratio = b / a if a else math.nan
                exact = "" if window in ("5m", "30m") and fn.kind == "bursty" else f"{truth:.5f}"
                if fn.kind != "bursty":
                    worst = max(worst, abs(ratio - 1) if math.isfinite(ratio) else math.inf)
                print(f"  {fn.name:<10}{fn.kind:<9}{slo:<13}{window:>7}{exact:>10}{a:>10.5f}"
                      f"{b:>10.5f}{ratio:>13.4f}")  # fmt: skip
    print(f"  largest disagreement, steady and burning functions: {100 * worst:.2f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="*", type=int, default=[100, 1000])
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the work directory under DIR")
    args = parser.parse_args()
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not on PATH (Debian: apt-get install prometheus)")
    version = subprocess.check_output(["prometheus", "--version"], stderr=subprocess.STDOUT)
    print(f"machine: {os.cpu_count()} cores; {version.decode().splitlines()[0]}")
    for n in args.n:
        run(n, args.days, args.cycles, args.keep)


if __name__ == "__main__":
    main()

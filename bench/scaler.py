"""Benchmark: ``ofobserve scaler`` against a real Prometheus, and KEDA's one-query-per-call
approach as the baseline measured in the same run. Does I/O (processes, sockets).

    .venv/bin/python bench/scaler.py [N ...]      (default: 1000 10000)
    .venv/bin/python bench/scaler.py churn [TOTAL [ALIVE]]   (default: 100000 10000)

For each N it starts Prometheus (Debian ``prometheus``) scraping synthetic native-profile
series for N functions, starts ``ofobserve scaler --source prometheus`` as a process,
registers N ScaledObjects, then sends GetMetrics+IsActive pairs at a fixed 500 RPC/s for
``SECONDS`` and reports p50/p99 latency, Prometheus queries per tick, and the scaler's CPU
and RSS. The baseline is a gRPC server whose GetMetrics sends one PromQL query per call, as
KEDA's Prometheus scaler does. Not part of the test suite.

``churn`` registers TOTAL distinct functions over time (GetMetricSpec once each, ALIVE /
CHURN_FORGET_AFTER a second) against ``--forget-after`` CHURN_FORGET_AFTER, so at most
ALIVE are held at once, and prints the scaler's RSS, the functions it holds and those it
forgot every 10 s: the curve stays flat once the first ALIVE are forgotten. The source is
``direct`` with an empty ``--targets`` file (no pods: every read is cheap, and every held
function is read and stepped each tick), so the registry is what is measured.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from prometheus_api_client import PrometheusConnect
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ofobserve import conventions as c  # noqa: E402
from ofobserve.scaler.proto import externalscaler_pb2 as pb  # noqa: E402
from ofobserve.scaler.proto import externalscaler_pb2_grpc as pb_grpc  # noqa: E402
from tests.support.exporters import Clock, Exporters, Family, StaticFamilies  # noqa: E402
from tests.support.prometheus import PrometheusServer, free_port  # noqa: E402

RPC_PER_SECOND = 500
SECONDS = 20
TICKS_PER_SECOND = 1
METADATA = {"targetConcurrency": "1", "targetUtilization": "1"}


def functions(n: int) -> list[tuple[str, str]]:
    return [(f"team-{i % 20}", f"fn-{i:05d}") for i in range(n)]


def families(keys: list[tuple[str, str]], clock: Clock) -> list[Family]:
    gauge = Family(c.NATIVE_IN_FLIGHT, "gauge")
    requests = Family(c.NATIVE_REQUESTS_TOTAL.removesuffix("_total"), "counter")
    count = Family(c.NATIVE_DURATION_SECONDS, "histogram")
    for i, (ns, fn) in enumerate(keys):
        ident = {"namespace": ns, "function": fn}
        gauge.add(ident, i % 7)
        requests.add({**ident, "code": "200"}, clock.counter(5), "_total")
        for le in ("0.1", "0.5", "+Inf"):
            count.add({**ident, "le": le}, clock.counter(5), "_bucket")
    return [gauge, requests, count]


def ref(ns: str, fn: str) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name=fn, namespace=ns, scalerMetadata=METADATA)


class Baseline(pb_grpc.ExternalScalerServicer):  # type: ignore[misc]
    """KEDA's Prometheus scaler, in effect: one PromQL query per GetMetrics/IsActive call."""

    def __init__(self, url: str) -> None:
        self.client = PrometheusConnect(url=url, timeout=5)
        self.queries = 0

    def _value(self, request: pb.ScaledObjectRef) -> float:
        self.queries += 1
        expr = (
            f'sum({c.NATIVE_IN_FLIGHT}{{namespace="{request.namespace}",'
            f'function="{request.name}"}})'
        )
        result = self.client.custom_query(expr)
        return float(result[0]["value"][1]) if result else 0.0

    async def GetMetrics(self, request: Any, context: Any) -> Any:  # noqa: N802
        value = await asyncio.to_thread(self._value, request.scaledObjectRef)
        return pb.GetMetricsResponse(
            metricValues=[pb.MetricValue(metricName="m", metricValueFloat=value)]
        )

    async def IsActive(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.IsActiveResponse(result=await asyncio.to_thread(self._value, request) > 0)


class Noop(pb_grpc.ExternalScalerServicer):  # type: ignore[misc]
    """Answers at once: the floor of this machine's gRPC round trip under the same load."""

    async def GetMetrics(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.GetMetricsResponse(metricValues=[pb.MetricValue(metricName="m")])

    async def IsActive(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.IsActiveResponse(result=True)


async def load(address: str, keys: list[tuple[str, str]]) -> list[float]:
    """GetMetrics+IsActive pairs at RPC_PER_SECOND for SECONDS; per-RPC latencies (s)."""
    rnd = random.Random(1)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        latencies: list[float] = []
        failures: list[str] = []

        async def pair(ns: str, fn: str) -> None:
            for call in (
                lambda: stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(ns, fn))),
                lambda: stub.IsActive(ref(ns, fn)),
            ):
                started = time.perf_counter()
                try:
                    await call()
                except grpc.aio.AioRpcError as exc:
                    failures.append(exc.code().name)
                    continue
                latencies.append(time.perf_counter() - started)

        tasks = []
        interval = 2 / RPC_PER_SECOND
        start = time.perf_counter()
        for i in range(RPC_PER_SECOND * SECONDS // 2):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(pair(*rnd.choice(keys))))
        await asyncio.gather(*tasks)
        if failures:
            print(f"  ({len(failures)} calls failed: {sorted(set(failures))})")
        return latencies


async def register(address: str, keys: list[tuple[str, str]]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        for i in range(0, len(keys), 200):
            await asyncio.gather(*(stub.GetMetricSpec(ref(ns, fn)) for ns, fn in keys[i : i + 200]))
            await asyncio.gather(
                *(
                    stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(ns, fn)))
                    for ns, fn in keys[i : i + 200]
                )
            )


def scrape(port: int) -> dict[str, float]:
    """Unlabelled samples and ``_count`` sums, plus the unary RPC histogram by ``le``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.labels or sample.name.endswith("_count"):
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
            if (
                sample.name == f"{c.GRPC_SERVER_HANDLING_SECONDS}_bucket"
                and sample.labels.get("grpc_type") == "unary"
            ):
                key = f"rpc_le_{sample.labels['le']}"
                out[key] = out.get(key, 0.0) + sample.value
            if sample.name == f"{c.SCALER_EVENT_LOOP_LAG_SECONDS}_bucket":
                out[f"lag_le_{sample.labels['le']}"] = sample.value
    return out


def server_p99(before: dict[str, float], after: dict[str, float], prefix: str = "rpc_le_") -> str:
    """The smallest histogram bound holding 99 % of the RPCs handled in the run (or, with
    ``prefix="lag_le_"``, of the event-loop lag samples)."""
    bounds = sorted(
        (float(k.removeprefix(prefix)), after[k] - before.get(k, 0.0))
        for k in after
        if k.startswith(prefix)
    )
    total = bounds[-1][1] if bounds else 0.0
    for bound, count in bounds:
        if count >= 0.99 * total:
            return f"<= {bound * 1000:g} ms"
    return "n/a"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def baseline_run(
    servicer: Baseline | Noop, keys: list[tuple[str, str]]
) -> tuple[list[float], int]:
    server = grpc.aio.server()
    pb_grpc.add_ExternalScalerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        latencies = await load(f"127.0.0.1:{port}", keys)
    finally:
        await server.stop(0)
    return latencies, servicer.queries if isinstance(servicer, Baseline) else 0


def bench(n: int) -> None:
    keys = functions(n)
    with tempfile.TemporaryDirectory() as tmp:
        prometheus = PrometheusServer("prometheus", Path(tmp))
        prometheus.start()
        exporters = Exporters()
        registry = CollectorRegistry()
        registry.register(StaticFamilies(families(keys, Clock())))
        prometheus.configure(
            [
                {
                    "job_name": "functions",
                    "honor_labels": True,
                    "scrape_interval": "5s",
                    "static_configs": [{"targets": [exporters.serve(registry)]}],
                }
            ]
        )
        prometheus.wait_for(f"count({c.NATIVE_IN_FLIGHT}) == {n}", 60)
        grpc_port, metrics_port = free_port(), free_port()
        scaler = subprocess.Popen(
            [sys.executable, "-m", "ofobserve", "scaler", "--source", "prometheus",
             "--prometheus-url", prometheus.url, "--listen", f"127.0.0.1:{grpc_port}",
             "--metrics-listen", f"127.0.0.1:{metrics_port}", "--rate-window", "30s",
             "--log-format", "text"],
            cwd=ROOT, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(2)
            address = f"127.0.0.1:{grpc_port}"
            started = time.perf_counter()
            asyncio.run(register(address, keys))
            registration = time.perf_counter() - started
            before, cpu0, t0 = scrape(metrics_port), cpu_seconds(scaler.pid), time.perf_counter()
            latencies = asyncio.run(load(address, keys))
            after, cpu1, t1 = scrape(metrics_port), cpu_seconds(scaler.pid), time.perf_counter()
            rss = rss_mib(scaler.pid)
        finally:
            scaler.terminate()
            scaler.wait(30)
        queries = (
            after["ofobserve_scaler_prometheus_queries_total"]
            - before["ofobserve_scaler_prometheus_queries_total"]
        )
        ticks = (
            after["ofobserve_scaler_source_request_duration_seconds_count"]
            - before["ofobserve_scaler_source_request_duration_seconds_count"]
        )
        floor, _ = asyncio.run(baseline_run(Noop(), keys))  # before the baseline's backlog
        base_latencies, base_queries = asyncio.run(baseline_run(Baseline(prometheus.url), keys))
        exporters.close()
        prometheus.stop()
    seconds = t1 - t0
    print(f"N={n:>6} ScaledObjects, {RPC_PER_SECOND} RPC/s for {SECONDS} s")
    print(f"  registration of {n}: {registration:6.2f} s")
    print(
        f"  ofobserve scaler: p50 {pct(latencies, 0.5):6.2f} ms  p99 {pct(latencies, 0.99):6.2f} ms"
        f" (server-side p99 {server_p99(before, after)},"
        f" event-loop lag p99 {server_p99(before, after, 'lag_le_')})"
        f"  queries/tick {queries / max(ticks, 1):5.2f} ({ticks:.0f} ticks)"
        f"  CPU {100 * (cpu1 - cpu0) / seconds:5.1f} %  RSS {rss:6.1f} MiB"
    )
    print(
        f"  baseline (1 query/call): p50 {pct(base_latencies, 0.5):6.2f} ms"
        f"  p99 {pct(base_latencies, 0.99):6.2f} ms  queries {base_queries}"
        f" ({base_queries / SECONDS:.0f}/s)"
    )
    print(
        f"  floor (a server that answers at once, same client and machine): "
        f"p50 {pct(floor, 0.5):6.2f} ms  p99 {pct(floor, 0.99):6.2f} ms"
    )
    print(
        f"  ratio baseline/ofobserve: p50 {pct(base_latencies, 0.5) / pct(latencies, 0.5):5.1f}x"
        f"  p99 {pct(base_latencies, 0.99) / pct(latencies, 0.99):5.1f}x"
        f"  queries/s {base_queries / SECONDS / max(queries / seconds, 1e-9):6.1f}x"
    )


CHURN_FORGET_AFTER = 10.0
FORGOTTEN = c.SCALER_FUNCTIONS_FORGOTTEN_TOTAL


async def register_paced(
    address: str, keys: list[tuple[str, str]], per_second: int, report: Any
) -> int:
    """GetMetricSpec for each key once, ``per_second`` a second (as ScaledObjects are
    created), calling ``report(done)`` every 10 s; how many calls failed."""
    failed = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        start = time.perf_counter()
        for second, i in enumerate(range(0, len(keys), per_second)):
            answers = await asyncio.gather(
                *(stub.GetMetricSpec(ref(*key)) for key in keys[i : i + per_second]),
                return_exceptions=True,
            )
            failed += sum(isinstance(a, grpc.aio.AioRpcError) for a in answers)
            if second % 10 == 9:
                report(i + per_second)
            delay = start + second + 1 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
    return failed


def churn(total: int, alive: int) -> None:
    """TOTAL distinct functions, each asked about once when it appears (GetMetricSpec),
    ALIVE / forget-after of them a second: at most ALIVE are within their forget-after at
    any time."""
    keys = [(f"team-{i % 50}", f"churn-{i:06d}") for i in range(total)]
    per_second = max(int(alive / CHURN_FORGET_AFTER), 1)
    with tempfile.TemporaryDirectory() as tmp:
        targets = Path(tmp) / "targets.yaml"
        targets.write_text("{}\n")
        grpc_port, metrics_port = free_port(), free_port()
        scaler = subprocess.Popen(
            [sys.executable, "-m", "ofobserve", "scaler", "--source", "direct", "--targets",
             str(targets), "--listen", f"127.0.0.1:{grpc_port}", "--metrics-listen",
             f"127.0.0.1:{metrics_port}", "--forget-after", f"{CHURN_FORGET_AFTER:g}s",
             "--log-format", "text"],
            cwd=ROOT, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        curve: list[tuple[int, float, float]] = []
        started = time.perf_counter()

        def report(done: int) -> None:
            seen, rss = scrape(metrics_port), rss_mib(scaler.pid)
            held = seen[c.SCALER_REGISTERED_FUNCTIONS]
            curve.append((done, held, rss))
            print(
                f"  {time.perf_counter() - started:5.0f} s  {done:17d}  {held:6.0f}"
                f"  {seen.get(FORGOTTEN, 0):9.0f}  {rss:7.1f}"
            )

        try:
            time.sleep(2)
            print(
                f"churn: {total} distinct functions, {per_second} new a second (GetMetricSpec "
                f"each), --forget-after {CHURN_FORGET_AFTER:g}s: at most {alive} held at once"
            )
            print(f"  start: RSS {rss_mib(scaler.pid):6.1f} MiB")
            print("   time  registered so far    held  forgotten  RSS MiB")
            address = f"127.0.0.1:{grpc_port}"
            failed = asyncio.run(register_paced(address, keys, per_second, report))
            time.sleep(CHURN_FORGET_AFTER + 3)
            report(total)
        finally:
            scaler.terminate()
            scaler.wait(30)
    steady = [rss for done, held, rss in curve if done >= 2 * alive]
    print(
        f"  {failed} calls failed; held at most {max(h for _, h, _ in curve):.0f}; RSS once "
        f"{2 * alive} were registered: {steady[0]:.1f} MiB, at the end of the registrations "
        f"{steady[-2]:.1f} MiB ({steady[-2] / steady[0]:.2f}x), peak {max(steady):.1f} MiB, "
        f"idle {CHURN_FORGET_AFTER + 3:g} s later {steady[-1]:.1f} MiB"
    )


def main() -> None:
    if sys.argv[1:2] == ["churn"]:
        numbers = [int(a) for a in sys.argv[2:]]
        churn(*(numbers + [100_000, 10_000][len(numbers) :])[:2])
        return
    for n in [int(a) for a in sys.argv[1:]] or [1000, 10000]:
        bench(n)


if __name__ == "__main__":
    main()

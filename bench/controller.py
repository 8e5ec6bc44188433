"""Benchmark: ``ofobserve controller`` against a real kube-apiserver 1.20 with 1,000
Functions. Does I/O (processes, sockets).

    .venv/bin/python bench/controller.py [N]      (default: 1000)

It starts a private API server (``../shared/tools/k8s``, with the Function, PodMonitor and
PrometheusRule CRDs), starts ``ofobserve controller`` as a process, creates N sync
Functions (4 clients at once) in 10 namespaces, and reports:

- the time from the first create until every function is reconciled (its PrometheusRule,
  the last object applied, exists and the queue is empty);
- the API server's own ``apiserver_request_total`` over a steady-state window after that,
  by verb and resource, so any polling would show;
- the controller's CPU seconds and RSS (``/proc``).

Not part of the test suite.
"""

from __future__ import annotations

import concurrent.futures
import os
import ssl
import sys
import tempfile
import time
import urllib.request
import warnings
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ofobserve.controller.resources import MANAGED_KINDS, function_kind  # noqa: E402
from ofobserve.kube.client import Kube, load_api_client  # noqa: E402
from tests.support.controller import ControllerProcess, PrivateAPIServer  # noqa: E402
from tests.test_controller import function_doc  # noqa: E402

NAMESPACES = 10
STEADY_SECONDS = 60
CRDS = (
    "functions.core.openfunction.io",
    "podmonitors.monitoring.coreos.com",
    "prometheusrules.monitoring.coreos.com",
)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mib(pid: int) -> tuple[float, float]:
    """Current and peak resident set size."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024)


def request_counts(server: PrivateAPIServer) -> Counter[tuple[str, str]]:
    token = (server.state_dir / "tokens.csv").read_text().split(",", 1)[0]
    request = urllib.request.Request(
        f"https://127.0.0.1:{server.api_port}/metrics",
        headers={"Authorization": f"Bearer {token}"},
    )
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        text = response.read().decode()
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            if sample.name == "apiserver_request_total":
                key = (sample.labels.get("verb", ""), sample.labels.get("resource", ""))
                counts[key] += int(sample.value)
    return counts


def main(n: int) -> None:
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="ofobserve-bench-") as tmp:
        server = PrivateAPIServer(Path(tmp) / "k8s", CRDS)
        try:
            api = server.start()
            run(n, server, api.kubeconfig, Path(tmp))
        finally:
            server.stop()


def run(n: int, server: PrivateAPIServer, kubeconfig: Path, tmp: Path) -> None:
    kube = Kube(load_api_client(str(kubeconfig)))
    namespaces = [f"bench-{i}" for i in range(NAMESPACES)]
    for ns in namespaces:
        kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
    controller = ControllerProcess(kubeconfig, tmp / "controller.log")
    try:
        controller.wait_ready()
        pid = controller.proc.pid
        cpu_idle = cpu_seconds(pid)
        functions = function_kind()

        def create(i: int) -> None:
            ns = namespaces[i % NAMESPACES]
            kube.request("POST", functions.path(ns), body=function_doc(ns, f"fn-{i:04d}"))

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(create, range(n)))
        created = time.monotonic() - started
        rules = MANAGED_KINDS[1]
        while True:
            done = controller.value("ofobserve_controller_reconciles_total", result="applied")
            if done >= n and controller.idle():
                stored = len(kube.list_all(rules.path())[0])
                if stored >= n:
                    break
            time.sleep(0.2)
        reconciled = time.monotonic() - started
        cpu_busy = cpu_seconds(pid) - cpu_idle
        rss_busy = rss_mib(pid)
        time.sleep(5)  # the fleet's delay and the last label patches settle
        before, cpu_before, at = request_counts(server), cpu_seconds(pid), time.monotonic()
        time.sleep(STEADY_SECONDS)
        after, cpu_after = request_counts(server), cpu_seconds(pid)
        window = time.monotonic() - at
        rss_now, rss_peak = rss_mib(pid)
        applied = controller.value("ofobserve_controller_applied_objects_total")
        restarts = controller.value("ofobserve_controller_watch_restarts_total")
    finally:
        controller.stop()
    diff = after - before
    print(f"functions: {n} in {NAMESPACES} namespaces; {os.cpu_count()} cores")
    print(f"created in {created:.1f} s (4 clients)")
    print(f"all reconciled {reconciled:.1f} s after the first create "
          f"({n / reconciled:.1f} functions/s); {applied:.0f} objects applied")  # fmt: skip
    share = 100 * cpu_busy / reconciled
    print(f"controller CPU while reconciling: {cpu_busy:.1f} s ({share:.0f}% of one core); "
          f"RSS {rss_busy[0]:.0f} MiB")  # fmt: skip
    print(
        f"steady state, {window:.0f} s: controller CPU {cpu_after - cpu_before:.2f} s, "
        f"RSS {rss_now:.0f} MiB (peak {rss_peak:.0f} MiB), watch restarts {restarts:.0f}"
    )
    total = sum(diff.values())
    print(f"apiserver_request_total in steady state: {total} requests, "
          f"{total / window:.2f}/s (every client, the API server's own included)")  # fmt: skip
    for (verb, resource), count in sorted(diff.items(), key=lambda kv: -kv[1]):
        if count:
            print(f"  {verb:6s} {resource or '-':28s} {count:5d}  {count / window:.2f}/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)

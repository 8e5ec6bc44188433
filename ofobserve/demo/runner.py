"""``ofobserve demo``'s run: set up, start everything, run the scenario, summarize, stop.
Does I/O.

Order: render the demo function with ``ofobserve render`` (a real run of the command),
time-scale its rules (:mod:`ofobserve.demo.timescale`), start Alertmanager, the scaler
and Prometheus, then the event source, the broker and the replica controller, and read
the servers back once a second. Everything started is stopped by PID when the run ends,
fails or is interrupted (SIGINT, SIGTERM); with ``--keep-running`` the servers stay up
until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ofobserve.demo.broker import Broker
from ofobserve.demo.live import View
from ofobserve.demo.observe import Observer, get_json
from ofobserve.demo.processes import (
    Children,
    DemoError,
    check_free,
    find_binary,
    python,
    wait_http,
    wait_port,
    write_atomic,
)
from ofobserve.demo.replicas import ReplicaController, scaled_object
from ofobserve.demo.report import Summary, render_text, summarize, write_files
from ofobserve.demo.scenario import Scenario
from ofobserve.demo.timescale import scale_groups

MARKER = ".ofobserve-demo"
#: Events one replica takes at once (daprd's --app-max-concurrency in the stand-in).
REPLICA_CONCURRENCY = 4
SCRAPE_SECONDS = 5
#: After the scenario: how long to wait, at most, for the function to be back at zero.
SETTLE_SECONDS = 120.0

FUNCTION: dict[str, Any] = {
    "apiVersion": "core.openfunction.io/v1beta2",
    "kind": "Function",
    "metadata": {"name": "demo", "namespace": "demo"},
    "spec": {
        "version": "v1.0.0",
        "image": "example.com/demo/function:v1",
        "serving": {
            "scaleOptions": {
                "minReplicas": 0,
                "maxReplicas": 8,
                "keda": {
                    "scaledObject": {"pollingInterval": 15, "cooldownPeriod": 60},
                    "triggers": [
                        {
                            "type": "kafka",
                            "metadata": {
                                "topic": "demo-events",
                                "bootstrapServers": "kafka.demo.svc:9092",
                                "consumerGroup": "demo",
                                "lagThreshold": "50",
                            },
                        }
                    ],
                },
            },
            "bindings": {
                "demo-events": {
                    "type": "bindings.kafka",
                    "version": "v1",
                    "metadata": [
                        {"name": "brokers", "value": "kafka.demo.svc:9092"},
                        {"name": "topics", "value": "demo-events"},
                        {"name": "consumerGroup", "value": "demo"},
                    ],
                }
            },
            "triggers": {"dapr": [{"name": "demo-events"}]},
        },
    },
}


def settings(scaler_port: int) -> dict[str, Any]:
    return {
        "defaults": {
            "profile": "ofobserve",
            "alerting": {"delivery": "rule-file", "team": "demo"},
            "scaling": {
                "targetConcurrency": 4,
                "targetUtilization": 0.7,
                "scalerAddress": f"127.0.0.1:{scaler_port}",
            },
        }
    }


@dataclass(frozen=True)
class Options:
    scenario: Scenario
    output: Path
    keep_running: bool = False
    live: bool = True
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    scaler_port: int = 6000
    scaler_metrics_port: int = 9100
    prometheus: str | None = None
    alertmanager: str | None = None

    @property
    def urls(self) -> dict[str, str]:
        return {
            "Prometheus": f"http://127.0.0.1:{self.prometheus_port}",
            "Alertmanager": f"http://127.0.0.1:{self.alertmanager_port}",
        }


@dataclass
class Run:
    """What a run leaves behind, also when it is interrupted."""

    options: Options
    children: Children
    observer: Observer | None = None
    broker: Broker | None = None
    interrupted: bool = False
    pids: list[int] = field(default_factory=list)


def prepare_output(out: Path) -> None:
    """An empty output directory: a previous demo's is replaced, anything else refused."""
    if out.exists():
        if not out.is_dir():
            raise DemoError(f"--output {out}: exists and is not a directory")
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise DemoError(
                f"--output {out}: not empty and not an earlier demo's output; "
                "choose another directory"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("written by ofobserve demo; replaced by the next run\n")
    for sub in ("logs", "render", "prometheus/rules", "prometheus/data", "alertmanager"):
        (out / sub).mkdir(parents=True)


def preflight(options: Options) -> tuple[str, str]:
    """Binaries and ports, before anything starts: :class:`DemoError` on the first
    problem."""
    prometheus = find_binary("prometheus", "--prometheus-bin", options.prometheus, "prometheus")
    alertmanager = find_binary(
        "prometheus-alertmanager", "--alertmanager-bin", options.alertmanager,
        "prometheus-alertmanager",
    )  # fmt: skip
    ports = {
        "--prometheus-port": options.prometheus_port,
        "--alertmanager-port": options.alertmanager_port,
        "--scaler-port": options.scaler_port,
        "--scaler-metrics-port": options.scaler_metrics_port,
    }
    seen: dict[int, str] = {}
    for flag, port in ports.items():
        if port in seen:
            raise DemoError(f"{flag} and {seen[port]} are both {port}")
        seen[port] = flag
        check_free(port, flag)
    return prometheus, alertmanager


def render_demo(out: Path, scaler_port: int, time_scale: float) -> dict[str, Any]:
    """Run ``ofobserve render`` on the demo function; write its rules, time-scaled, for
    Prometheus; return the rendered scaling patch."""
    manifest, config = out / "render" / "function.yaml", out / "render" / "ofobserve.yaml"
    manifest.write_text(yaml.safe_dump(FUNCTION, sort_keys=False))
    config.write_text(yaml.safe_dump(settings(scaler_port), sort_keys=False))
    rendered = out / "render" / "out"
    command = [python(), "-m", "ofobserve", "render", str(manifest), "-c", str(config),
               "-o", str(rendered), "--only", "rules", "--only", "scaling"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DemoError(f"ofobserve render failed ({done.returncode}):\n{done.stderr}")
    for path in sorted((rendered / "rules").rglob("*.yaml")):
        if "tests" in path.relative_to(rendered / "rules").parts:
            continue
        doc = yaml.safe_load(path.read_text())
        groups = doc["groups"] if "groups" in doc else doc["spec"]["groups"]
        target = out / "prometheus" / "rules" / f"{path.parent.name}-{path.name}"
        target.write_text(yaml.safe_dump({"groups": scale_groups(groups, time_scale)}))
    patch: dict[str, Any] = yaml.safe_load(
        (rendered / "scaling" / "demo" / "demo.yaml").read_text()
    )
    return patch


def _prometheus_config(out: Path, options: Options) -> Path:
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_SECONDS}s",
            "evaluation_interval": f"{SCRAPE_SECONDS}s",
        },
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"127.0.0.1:{options.alertmanager_port}"]}]}
            ]
        },
        "rule_files": [str(out / "prometheus" / "rules" / "*.yaml")],
        "scrape_configs": [
            {
                "job_name": "demo-function",
                "file_sd_configs": [
                    {"files": [str(out / "function-targets.json")], "refresh_interval": "5s"}
                ],
            },
            {
                "job_name": "ofobserve-scaler",
                "static_configs": [{"targets": [f"127.0.0.1:{options.scaler_metrics_port}"]}],
            },
        ],
    }
    path = out / "prometheus" / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _alertmanager_config(out: Path) -> Path:
    config = {
        "route": {"receiver": "demo", "group_wait": "1s", "group_interval": "5s",
                  "repeat_interval": "1h"},
        "receivers": [{"name": "demo"}],
    }  # fmt: skip
    path = out / "alertmanager" / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_servers(
    run: Run, prometheus: str, alertmanager: str, time_scale: float
) -> dict[str, Any]:
    options, out, children = run.options, run.options.output, run.children
    patch = render_demo(out, options.scaler_port, time_scale)
    write_atomic(out / "function-targets.json", "[]")
    write_atomic(
        out / "scaler-targets.json", json.dumps({"demo/demo": {"metrics": [], "ready": 0}})
    )
    am = children.start(
        "alertmanager",
        [alertmanager, f"--config.file={_alertmanager_config(out)}",
         f"--storage.path={out / 'alertmanager'}",
         f"--web.listen-address=127.0.0.1:{options.alertmanager_port}",
         "--cluster.listen-address=", "--log.level=warn"],
    )  # fmt: skip
    scaler = children.start(
        "scaler",
        [python(), "-m", "ofobserve", "scaler", "--source", "direct",
         "--targets", str(out / "scaler-targets.json"),
         "--listen", f"127.0.0.1:{options.scaler_port}",
         "--metrics-listen", f"127.0.0.1:{options.scaler_metrics_port}",
         "--refresh-interval", "1"],
    )  # fmt: skip
    prom = children.start(
        "prometheus",
        [prometheus, f"--config.file={_prometheus_config(out, options)}",
         f"--storage.tsdb.path={out / 'prometheus' / 'data'}",
         f"--web.listen-address=127.0.0.1:{options.prometheus_port}",
         "--log.level=warn"],
    )  # fmt: skip
    wait_http(am, f"{options.urls['Alertmanager']}/-/ready")
    wait_port(scaler, options.scaler_port)
    wait_http(prom, f"{options.urls['Prometheus']}/-/ready")
    groups = get_json(f"{options.urls['Prometheus']}/api/v1/rules")["data"]["groups"]
    wanted = len(list((out / "prometheus" / "rules").glob("*.yaml")))
    if not groups or len({g["file"] for g in groups}) != wanted:
        raise DemoError(
            f"Prometheus loaded {len(groups)} rule group(s) from fewer than the {wanted} "
            f"rule files:\n{prom.tail()}"
        )
    return patch


async def _loop(run: Run, patch: dict[str, Any], view: View) -> None:
    import grpc

    options, scenario = run.options, run.options.scenario
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    scaled = scaled_object(patch, FUNCTION, REPLICA_CONCURRENCY)
    scaled = replace(
        scaled,
        metadata={**scaled.metadata, "stableWindow": scenario.stable_window,
                  "panicWindow": scenario.panic_window},
    )  # fmt: skip
    broker = run.broker = Broker(scenario, options.output / "control.json")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{options.scaler_port}") as channel:
        controller = ReplicaController(
            scaled, broker, run.children, channel, options.output, scenario.time_scale
        )
        observer = run.observer = Observer(
            options.urls["Prometheus"], options.urls["Alertmanager"], broker, controller
        )
        started = time.monotonic()
        producer = asyncio.create_task(broker.produce())
        background = [
            asyncio.create_task(broker.dispatch(), name="broker"),
            asyncio.create_task(controller.run(started), name="replica controller"),
        ]
        try:
            tick = started
            while True:
                tick += 1.0
                await asyncio.sleep(max(tick - time.monotonic(), 0))
                for task in background:
                    if task.done() and task.exception() is not None:
                        raise DemoError(
                            f"the demo's {task.get_name()} failed: {task.exception()!r}"
                        )
                prom, alerts = await asyncio.to_thread(observer.read_servers)
                row = observer.sample(time.monotonic() - started, prom, alerts)
                view.show(row, options.urls)
                if producer.done():
                    idle = row.ready == 0 and row.desired == 0 and row.lag == 0
                    if idle or row.t > scenario.duration + SETTLE_SECONDS:
                        break
        finally:
            for task in (producer, *background):
                task.cancel()
            await asyncio.gather(producer, *background, return_exceptions=True)
            controller.stop_all()


def run_demo(options: Options) -> tuple[Summary, Run]:
    """The whole run; :class:`DemoError` for what stopped it before the scenario."""
    prometheus, alertmanager = preflight(options)
    prepare_output(options.output)
    run = Run(options, Children(options.output / "logs"))
    try:
        patch = start_servers(run, prometheus, alertmanager, options.scenario.time_scale)
        with View(options.live) as view:
            try:
                asyncio.run(_loop(run, patch, view))
            except (KeyboardInterrupt, asyncio.CancelledError):
                run.interrupted = True
        summary = finish(run)
        if options.keep_running and not run.interrupted:
            hold(run)
        return summary, run
    except KeyboardInterrupt:
        run.interrupted = True
        return finish(run), run
    finally:
        run.children.stop_all()


def finish(run: Run) -> Summary:
    """Summary, files and plot from what the run saw (also a partial run)."""
    from ofobserve.demo.plot import write_plot

    rows = run.observer.rows if run.observer else []
    stats = run.broker.stats if run.broker else None
    summary = summarize(
        rows,
        scenario=run.options.scenario.name,
        time_scale=run.options.scenario.time_scale,
        arrived=stats.arrived if stats else 0,
        served=stats.served if stats else 0,
        failed=stats.failed if stats else 0,
        left=run.broker.lag if run.broker else 0,
        interrupted=run.interrupted,
        phases=run.options.scenario.starts(),
    )
    out = run.options.output
    write_files(out, summary, rows)
    if rows:
        write_plot(out / "demo.png", rows, summary)
    return summary


def hold(run: Run) -> None:
    """``--keep-running``: the servers stay up until Ctrl-C or SIGTERM."""
    print(render_text_urls(run.options), flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


def render_text_urls(options: Options) -> str:
    shown = ", ".join(f"{name} {url}" for name, url in options.urls.items())
    return f"--keep-running: {shown} stay up; Ctrl-C stops them"


__all__ = ["Options", "render_text", "run_demo"]

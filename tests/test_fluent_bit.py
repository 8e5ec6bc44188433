"""Every rendered Fluent Bit configuration, run by the real fluent-bit 5.1.1.

Each variant of ``telemetry.logs`` is rendered by the CLI, checked with ``--dry-run``, then
started for a few seconds on a fake node: a temp directory that holds only what the
fluent/helm-charts ``charts/fluent-bit`` DaemonSet mounts (``/var/log`` read-write,
``/var/lib/docker/containers`` and ``/etc/machine-id`` read-only) plus the service-account
files every pod gets. The configuration's file paths are moved under that directory (the
only change to it, with the peers' addresses): a path the chart does not mount does not
exist there, as in a real pod. The ``kubernetes`` filter asks a stand-in Kubernetes API for
pod labels, and the output sends to a real HTTP peer that answers as Loki, Elasticsearch or
an OTLP/HTTP receiver. Container log files written in the kubelet's layout (CRI and Docker
formats, a decoy pod, a sidecar) must come out at the peer as the function's records only.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import socket
import sqlite3
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLES, run_cli
from tests.support.fluentbit import assert_started, dry_run, start_for
from tests.support.log_peer import (
    Peer,
    bulk_entries,
    loki_entries,
    otlp_log_bodies,
    port_of,
    serve,
    wait_until,
)

#: What the chart's DaemonSet mounts from the node (values.yaml ``daemonSetVolumeMounts``).
CHART_DIRECTORIES = ("/var/log", "/var/lib/docker/containers")
CHART_FILES = ("/etc/machine-id",)
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
#: The db path ofobserve rendered before: on no volume the chart mounts.
OLD_DB = "/var/fluent-bit/state/flb_functions.db"
#: The kubernetes filter reads its own pod's namespace from this fixed path, which no
#: setting moves; the kubelet mounts it in every pod, the fake node cannot provide it, so
#: this one warning is left out before the log is judged.
NOT_IN_A_POD = (
    "[filter:kubernetes:kubernetes.0] cannot open "
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
)
PASSWORD = "s3cret-from-the-secret"
#: How long each configuration runs: the records need one flush (1 s) after the write.
RUN_SECONDS = 5.0
LOG_TIME = "2026-01-02T03:04:05.123456789Z"
INDEX_DATE = "2026.01.02"


@dataclass(frozen=True)
class ContainerLog:
    """One container's log, laid out as the kubelet does: the file under ``/var/log/pods``
    (for Docker a link to ``/var/lib/docker/containers/<id>/<id>-json.log``) and the
    ``/var/log/containers/<pod>_<namespace>_<container>-<id>.log`` link the tail reads."""

    namespace: str
    pod: str
    container: str
    runtime: str  # "cri" or "docker"

    @property
    def container_id(self) -> str:
        return hashlib.sha256(f"{self.namespace}/{self.pod}/{self.container}".encode()).hexdigest()

    def link(self, root: Path) -> Path:
        name = f"{self.pod}_{self.namespace}_{self.container}-{self.container_id}.log"
        return root / "var/log/containers" / name

    def create(self, root: Path) -> Path:
        pod_dir = root / "var/log/pods" / f"{self.namespace}_{self.pod}_uid-{self.pod}"
        log = pod_dir / self.container / "0.log"
        log.parent.mkdir(parents=True)
        if self.runtime == "docker":
            target = root / "var/lib/docker/containers" / self.container_id
            target.mkdir(parents=True)
            data = target / f"{self.container_id}-json.log"
            data.touch()
            log.symlink_to(data)
        else:
            log.touch()
        self.link(root).parent.mkdir(parents=True, exist_ok=True)
        self.link(root).symlink_to(log)
        return log

    def append(self, root: Path, *lines: str) -> None:
        """Append JSON log lines in the runtime's format (``P|`` prefix: a CRI partial)."""
        with self.link(root).open("a") as out:
            for line in lines:
                partial, text = (True, line[2:]) if line.startswith("P|") else (False, line)
                if self.runtime == "docker":
                    entry = {"log": text + "\n", "stream": "stdout", "time": LOG_TIME}
                    out.write(json.dumps(entry) + "\n")
                else:
                    out.write(f"{LOG_TIME} stdout {'P' if partial else 'F'} {text}\n")


HELLO = ContainerLog("default", "hello-world-00001-deployment-7c9f", "function", "cri")
ORDERS = ContainerLog("shop", "order-processor-5d8b-x2k4q", "function", "docker")
DECOY = ContainerLog("default", "decoy-6f5c-lq9vz", "function", "cri")  # not a Function's pod
SIDECAR = ContainerLog("default", "hello-world-00001-deployment-7c9f", "daprd", "cri")
LOGS = (HELLO, ORDERS, DECOY, SIDECAR)
PODS = {
    (HELLO.namespace, HELLO.pod): {"ofobserve.io/function": "hello-world"},
    (ORDERS.namespace, ORDERS.pod): {"ofobserve.io/function": "order-processor"},
    (DECOY.namespace, DECOY.pod): {"app": "decoy"},
}
TRACE_ID, SPAN_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
#: (namespace, function, msg) of every record that must arrive, and nothing else.
EXPECTED = sorted(
    [
        ("default", "hello-world", "hello from hello-world"),
        ("default", "hello-world", "one record from two partial lines"),
        ("shop", "order-processor", "hello from order-processor"),
    ]
)


def write_the_logs(root: Path) -> None:
    HELLO.append(
        root,
        f'{{"msg":"hello from hello-world","trace_id":"{TRACE_ID}","span_id":"{SPAN_ID}"}}',
        'P|{"msg":"one record from ',
        'two partial lines"}',
    )
    ORDERS.append(root, '{"msg":"hello from order-processor"}')
    DECOY.append(root, '{"msg":"decoy"}')
    SIDECAR.append(root, '{"msg":"sidecar"}')


def make_node(tmp_path: Path) -> Path:
    root = tmp_path / "node"
    for directory in CHART_DIRECTORIES:
        (root / directory.lstrip("/")).mkdir(parents=True)
    for file in CHART_FILES:
        (root / file.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / file.lstrip("/")).write_text("0123456789abcdef0123456789abcdef\n")
    account = root / SERVICE_ACCOUNT.lstrip("/")
    account.mkdir(parents=True)
    (account / "token").write_text("service-account-token")
    (account / "namespace").write_text("observability")
    (account / "ca.crt").write_text("")
    for log in LOGS:
        log.create(root)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def on_the_node(
    config: dict[str, Any],
    root: Path,
    kube: Peer,
    backend: Peer,
    http_port: int,
    ca_file: Path | None = None,
) -> dict[str, Any]:
    """The configuration as it runs on the fake node: every file path moved under ``root``,
    the kubernetes filter pointed at the stand-in API, the output at the peer."""
    moved = copy.deepcopy(config)
    moved["service"] |= {"http_listen": "127.0.0.1", "http_port": http_port}
    [tail] = moved["pipeline"]["inputs"]
    tail["path"] = ",".join(f"{root}{p}" for p in tail["path"].split(","))
    if "db" in tail:
        tail["db"] = f"{root}{tail['db']}"
    prefix = "kube." + f"{root}/var/log/containers/".lstrip("/").replace("/", ".")
    for plugin in moved["pipeline"]["filters"]:
        if plugin["name"] == "kubernetes":
            plugin |= {
                "kube_url": kube.url,
                "kube_token_file": f"{root}{SERVICE_ACCOUNT}/token",
                "kube_ca_file": f"{root}{SERVICE_ACCOUNT}/ca.crt",
                "kube_tag_prefix": prefix,
            }
    [output] = moved["pipeline"]["outputs"]
    output |= {"host": "127.0.0.1", "port": port_of(backend)}
    if ca_file is not None:
        output["tls.ca_file"] = str(ca_file)
    return moved


def render_fluent_bit(tmp_path: Path, logs: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The rendered configuration, and the file the chart mounts (``config.extraFiles``
    of ``fluent-bit-values.yaml``) as its text."""
    settings = tmp_path / "ofobserve.yaml"
    settings.write_text(yaml.safe_dump({"defaults": {"telemetry": {"logs": logs}}}))
    out = tmp_path / "out"
    result = run_cli(
        "-q", "render", str(EXAMPLES), "-c", str(settings), "--only", "telemetry", "-o", str(out)
    )
    assert result.exit_code == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load((out / "telemetry" / "fluent-bit.yaml").read_text())
    values = yaml.safe_load((out / "telemetry" / "fluent-bit-values.yaml").read_text())
    mounted: str = values["config"]["extraFiles"]["fluent-bit.yaml"]
    assert yaml.safe_load(mounted) == config
    return config, mounted


@dataclass
class Feeder:
    """Writes the container logs once fluent-bit watches every tailed file, then reads the
    health endpoint the chart's readiness probe reads (``/api/v1/health``)."""

    log_path: Path
    root: Path
    http_port: int
    watched: int = 0
    failed: bool = False
    health: int | None = None
    error: BaseException | None = None

    def run(self) -> None:
        try:
            tailed = 3  # HELLO, ORDERS, DECOY: the sidecar's name is outside the path glob

            def watching() -> bool:
                text = self.log_path.read_text() if self.log_path.exists() else ""
                self.watched = text.count("inotify_fs_add()")
                self.failed = "initialization failed" in text
                return self.watched >= tailed or self.failed

            if wait_until(watching, RUN_SECONDS - 2) and not self.failed:
                write_the_logs(self.root)
                wait_until(self._healthy, 2)
        except BaseException as error:  # reported by the test thread
            self.error = error

    def _healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.http_port}/api/v1/health"
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                self.health = answer.status
        except urllib.error.HTTPError as error:
            self.health = error.code
        except OSError:
            return False
        return self.health == 200


def run_on_the_node(
    binary: str, config: dict[str, Any], tmp_path: Path, root: Path, port: int
) -> tuple[int | None, str, str, Feeder]:
    """Start fluent-bit for :data:`RUN_SECONDS` with the logs fed; its exit code (``None``:
    still running at the end), its log, the log to judge, and what the feeder saw."""
    path = tmp_path / "fluent-bit.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=True))
    feeder = Feeder(path.with_name(path.name + ".log"), root, port)
    thread = threading.Thread(target=feeder.run, daemon=True)
    thread.start()
    returncode, log = start_for(binary, path, RUN_SECONDS)
    thread.join()
    assert feeder.error is None, feeder.error
    judged = "\n".join(line for line in log.splitlines() if NOT_IN_A_POD not in line)
    return returncode, log, judged, feeder


# --- every variant -------------------------------------------------------------------------------

SECRET = {"name": "log-credentials", "key": "password"}
VARIANTS: dict[str, dict[str, Any]] = {
    "loki": {},
    "loki-basic-auth": {"user": "fluent", "passwordSecret": SECRET},
    "loki-tls": {"tls": True},
    "es-index-per-function": {"output": "es"},
    "es-index-per-namespace-basic-auth": {
        "output": "es",
        "index": "namespace",
        "user": "fluent",
        "passwordSecret": SECRET,
    },
    "es-without-db": {"output": "es", "db": ""},
    "opentelemetry": {"output": "opentelemetry"},
}


def received(output: str, backend: Peer, index: str = "function") -> list[tuple[str, str, str]]:
    """(namespace, function, msg) of every record the backend got, after checking what each
    output promises about the record's shape."""
    found = []
    if output == "loki":
        for labels, line in loki_entries(backend):
            assert set(labels) == {"namespace", "function"}, labels  # low cardinality
            assert "kubernetes" not in line  # remove_keys
            assert "stream" not in line
            if line["msg"] == "hello from hello-world":
                assert (line["trace_id"], line["span_id"]) == (TRACE_ID, SPAN_ID)
            found.append((labels["namespace"], labels["function"], line["msg"]))
    elif output == "es":
        for name, document in bulk_entries(backend):
            k8s = document["kubernetes"]
            function = k8s["labels"]["ofobserve_io/function"]  # replace_dots
            part = function if index == "function" else k8s["namespace_name"]
            assert name == f"functions-{part}-{INDEX_DATE}", name
            found.append((k8s["namespace_name"], function, document["msg"]))
    else:
        for body in otlp_log_bodies(backend):
            k8s = body["kubernetes"]
            function = k8s["labels"]["ofobserve.io/function"]
            found.append((k8s["namespace_name"], function, body["msg"]))
    return sorted(found)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rendered_configuration_runs_on_a_chart_node(
    variant: str,
    fluent_bit: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logs = VARIANTS[variant]
    config, mounted = render_fluent_bit(tmp_path, logs)
    as_mounted = tmp_path / "fluent-bit-as-mounted.yaml"
    as_mounted.write_text(mounted)
    checked = dry_run(fluent_bit, as_mounted)
    assert checked.returncode == 0, checked.stderr
    assert "configuration test is successful" in checked.stdout + checked.stderr

    monkeypatch.setenv("FLUENT_OUTPUT_PASSWORD", PASSWORD)  # the chart's env: from the Secret
    tls, ca_file = None, None
    if logs.get("tls"):
        pki: Path = request.getfixturevalue("pki")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(pki / "server.pem", pki / "server.key")
        ca_file = pki / "ca.pem"
    root = make_node(tmp_path)
    port = free_port()
    with serve(PODS) as kube, serve(tls=tls) as backend:
        node_config = on_the_node(config, root, kube, backend, port, ca_file)
        returncode, log, judged, feeder = run_on_the_node(
            fluent_bit, node_config, tmp_path, root, port
        )
        assert_started(judged, returncode is None)
        assert feeder.watched >= 3, log
        output = logs.get("output", "loki")
        assert received(output, backend, logs.get("index", "function")) == EXPECTED, log
        auth = {r.headers.get("Authorization") for r in backend.received()}
    if "user" in logs:
        token = base64.b64encode(f"{logs['user']}:{PASSWORD}".encode()).decode()
        assert auth == {f"Basic {token}"}
    else:
        assert auth == {None}
    assert feeder.health == 200  # the chart's readinessProbe: GET /api/v1/health
    [tail] = config["pipeline"]["inputs"]
    if logs.get("db") == "":
        assert "db" not in tail
        return
    # the offsets are kept in the db, on the chart's read-write /var/log
    assert Path(tail["db"]).parent == Path("/var/log")
    with sqlite3.connect(f"{root}{tail['db']}") as db:
        offsets = dict(db.execute("SELECT name, offset FROM in_tail_files").fetchall())
    tailed = {str(x.link(root)): x for x in (HELLO, ORDERS, DECOY)}
    assert set(offsets) == set(tailed)
    assert all(offset > 0 for offset in offsets.values()), offsets


def test_the_old_db_path_cannot_start_under_the_charts_mounts(
    fluent_bit: str, tmp_path: Path
) -> None:
    """``/var/fluent-bit/state`` is on no volume of the chart: sqlite3 cannot create the db,
    the tail input fails and fluent-bit exits; ``--dry-run`` alone does not see it."""
    config, _mounted = render_fluent_bit(tmp_path, {})
    config["pipeline"]["inputs"][0]["db"] = OLD_DB
    plain = tmp_path / "old.yaml"
    plain.write_text(yaml.safe_dump(config))
    assert dry_run(fluent_bit, plain).returncode == 0
    root = make_node(tmp_path)
    port = free_port()
    with serve(PODS) as kube, serve() as backend:
        node_config = on_the_node(config, root, kube, backend, port)
        returncode, log, judged, _feeder = run_on_the_node(
            fluent_bit, node_config, tmp_path, root, port
        )
    assert returncode is not None, log
    assert f"[sqldb] cannot open database {root}{OLD_DB}" in log
    assert "could not open/create database" in log
    assert "[engine] input initialization failed" in log
    with pytest.raises(AssertionError, match="input initialization failed"):
        assert_started(judged, returncode is None)

"""The container image's contents, without building an image: deploy/image/install.sh (the
one install step of the Dockerfile) runs into a temp prefix, and the scaler starts from it
the way the image runs it: read-only files, an unprivileged numeric user, the Dockerfile's
environment, a read-only HOME and working directory."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ofobserve.conventions import SCALER_GRPC_SERVICE
from ofobserve.scaler.config import ScalerConfig
from ofobserve.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from tests.support.prometheus import free_port
from tests.support.scaler import ref
from tests.support.tools import REPO, unavailable
from tests.test_scaler_server import eventually

IMAGE = REPO / "deploy" / "image"
#: The Dockerfile's USER.
IMAGE_UID = 65532
#: Instrumentation-only and test packages: none may reach the image.
ABSENT_DISTRIBUTIONS = (
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp",
    "opentelemetry-exporter-otlp-proto-grpc",
    "pytest",
    "grpcio-tools",
    "mypy",
    "hypothesis",
    "pip",
    "setuptools",
    "wheel",
)
ABSENT_MODULES = ("opentelemetry", "pytest", "grpc_tools", "mypy", "hypothesis",
                  "pip")  # fmt: skip


def _name(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _reachable_by_others(path: Path) -> bool:
    """Whether a user with no special rights can run ``path`` (every parent traversable)."""
    real = path.resolve()
    if not real.is_file() or not real.stat().st_mode & stat.S_IXOTH:
        return False
    return all(p.stat().st_mode & stat.S_IXOTH for p in real.parents)


def _base_python() -> str:
    """The interpreter the prefix is built on: as root, one that uid 65532 can run (the
    virtualenv's python links to it)."""
    version = ".".join(str(part) for part in sys.version_info[:2])
    current = Path(sys.base_prefix) / "bin" / f"python{version}"
    if os.getuid() != 0:
        return str(current)
    for candidate in (current, Path("/usr/local/bin/python3"), Path("/usr/bin/python3")):
        if not _reachable_by_others(candidate):
            continue
        check = "import sys, venv; sys.exit(sys.version_info < (3, 11))"
        if subprocess.run([candidate, "-c", check], capture_output=True).returncode == 0:
            return str(candidate)
    unavailable(f"no Python >= 3.11 with venv that uid {IMAGE_UID} can run")
    raise AssertionError("unreachable")


def _world_readable_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)  # mkdtemp's 0700 would keep uid 65532 out
    return path


def _remove(path: Path) -> None:
    subprocess.run(["chmod", "-R", "u+w", str(path)], check=True)
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def prefix() -> Iterator[Path]:
    """deploy/image/install.sh into a fresh prefix, then made read-only like an image layer."""
    if importlib.util.find_spec("pip") is None:
        unavailable(f"{sys.executable} has no pip for install.sh")
    base = _world_readable_dir("ofobserve-image-")
    target = base / "opt" / "ofobserve"
    try:
        result = subprocess.run(
            [str(IMAGE / "install.sh"), str(target)],
            env={**os.environ, "PYTHON": _base_python(), "PIP_PYTHON": sys.executable},
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"into {target}:" in result.stdout
        subprocess.run(["chmod", "-R", "a-w", str(base)], check=True)
        yield target
    finally:
        _remove(base)


def _site_packages(prefix: Path) -> Path:
    [site] = (prefix / "lib").glob("python3.*/site-packages")
    return site


def _pinned() -> dict[str, str]:
    lines = (IMAGE / "requirements.txt").read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {_name(name): version for name, version in pins}


def test_install_sh_refuses_a_missing_or_used_prefix(tmp_path: Path) -> None:
    usage = subprocess.run([str(IMAGE / "install.sh")], capture_output=True, text=True)
    assert (usage.returncode, usage.stderr.startswith("usage: ")) == (2, True)
    (tmp_path / "something").write_text("")
    used = subprocess.run([str(IMAGE / "install.sh"), str(tmp_path)], capture_output=True,
                          text=True)  # fmt: skip
    assert used.returncode == 1
    assert (
        used.stderr
        == f"error: {tmp_path} is not empty; install.sh only installs into a new prefix\n"
    )


def test_the_prefix_holds_the_pinned_scaler_runtime_and_nothing_else(prefix: Path) -> None:
    site = _site_packages(prefix)
    installed = {}
    for info in site.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        installed[_name(name)] = version
    assert installed.pop("ofobserve") == "0.1.0"
    assert installed == _pinned()
    for distribution in ABSENT_DISTRIBUTIONS:
        assert distribution not in installed
    for module in ABSENT_MODULES:
        assert not (site / module).exists(), module
        assert not (site / f"{module}.py").exists(), module
    assert not [p for p in (prefix / "include").rglob("*") if p.is_file()]  # no C headers
    # Precompiled: with PYTHONDONTWRITEBYTECODE and a read-only filesystem nothing is written
    # later, so every module needs its .pyc now.
    sources = list(site.rglob("*.py"))
    assert len(sources) > 1000
    missing = [s for s in sources if not Path(importlib.util.cache_from_source(str(s))).exists()]
    assert missing == []


def _listing(*roots: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``roots`` with its mode, size and mtime."""
    found = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            info = path.lstat()
            found[str(path)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def _unprivileged() -> dict[str, Any]:
    """Popen arguments that run a child as the image's user (as root) or as ourselves."""
    if os.getuid() == 0:
        return {"user": IMAGE_UID, "group": IMAGE_UID, "extra_groups": []}
    assert os.getuid() != 0
    return {}


@pytest.fixture(scope="module")
def sandbox(prefix: Path) -> Iterator[Path]:
    """Read-only HOME and working directory, and a read-only targets file."""
    root = _world_readable_dir("ofobserve-image-run-")
    try:
        (root / "home").mkdir(mode=0o555)
        (root / "cwd").mkdir(mode=0o555)
        (root / "targets.yaml").write_text(yaml.safe_dump({"shop/fn": []}))
        subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)
        yield root
    finally:
        _remove(root)


def _env(prefix: Path, sandbox: Path) -> dict[str, str]:
    """The Dockerfile's environment and nothing else."""
    return {"PATH": f"{prefix / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(sandbox / "home"), "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_the_scaler_runs_from_the_read_only_prefix_as_an_unprivileged_user(
    prefix: Path, sandbox: Path
) -> None:
    port, metrics_port = free_port(), free_port()
    before = _listing(prefix, sandbox)
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            [str(prefix / "bin" / "ofobserve"), "scaler", "--source", "direct", "--targets",
             str(sandbox / "targets.yaml"), "--listen", f"127.0.0.1:{port}",
             "--metrics-listen", f"127.0.0.1:{metrics_port}"],
            env=_env(prefix, sandbox), cwd=sandbox / "cwd", stdout=subprocess.DEVNULL,
            stderr=stderr, **_unprivileged(),
        )  # fmt: skip
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            health = health_pb2_grpc.HealthStub(channel)
            serving = health_pb2.HealthCheckResponse.SERVING

            def check(service: str) -> bool:
                if process.poll() is not None:
                    stderr.seek(0)
                    raise AssertionError(f"the scaler exited {process.returncode}: {stderr.read()}")
                request = health_pb2.HealthCheckRequest(service=service)
                return health.Check(request, timeout=2).status == serving

            eventually(lambda: check(""), 30)
            assert check(SCALER_GRPC_SERVICE)
            assert _uid(process.pid) == (IMAGE_UID if os.getuid() == 0 else os.getuid())
            spec = pb_grpc.ExternalScalerStub(channel).GetMetricSpec(
                ref(targetConcurrency="10"), timeout=5
            )
            [metric] = spec.metricSpecs
            assert metric.metricName == ScalerConfig("shop", "fn").metric_name
            assert metric.targetSizeFloat == 1.0
            url = f"http://127.0.0.1:{metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                assert "ofobserve_scaler_" in response.read().decode()
            channel.close()
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr.seek(0)
        log = stderr.read()
    assert "Traceback" not in log, log
    assert _listing(prefix, sandbox) == before  # nothing written: prefix, HOME, cwd


def _cli(prefix: Path, sandbox: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(prefix / "bin" / "ofobserve"), *args], env=_env(prefix, sandbox),
        cwd=sandbox / "cwd", capture_output=True, text=True, timeout=60, **_unprivileged(),
    )  # fmt: skip


def test_the_prefix_runs_the_controller_and_renders(prefix: Path, sandbox: Path) -> None:
    """The image holds the controller's closure (render + scaler): its commands start, and
    the render core it runs validates the bundled examples."""
    for args in (["--help"], ["scaler", "--help"], ["controller", "--help"]):
        result = _cli(prefix, sandbox, *args)
        assert (result.returncode, result.stderr) == (0, ""), args
    assert "--metrics-listen" in _cli(prefix, sandbox, "scaler", "--help").stdout
    assert "--leader-elect" in _cli(prefix, sandbox, "controller", "--help").stdout
    examples = REPO / "examples"
    result = _cli(prefix, sandbox, "validate", str(examples / "functions"),
                  "-c", str(examples / "ofobserve.yaml"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1].endswith("function(s) valid")

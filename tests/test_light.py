"""The light function side: ``import ofobserve.instrument`` loads none of the tool, the base
install (``pip install ofobserve``) is only what instrumentation needs, and the ``ofobserve``
command names the extra a command is missing.

The function-side install goes into a fresh virtualenv from wheels rebuilt out of this
virtualenv's installed distributions (tests/support/wheels.py): ``--no-index``, so pip's
resolver proves the base requirements are complete, without the network.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from ofobserve.extras import EXTRA_MODULES, command_of, missing_extra
from tests.support.otlp import grpc_receiver
from tests.support.prometheus import free_port
from tests.support.tools import REPO
from tests.support.wheels import build_project, closure, rebuild

#: Top-level modules of the tool (render, scaler, controller) that a function must not load.
FORBIDDEN = ("grafanalib", "pydantic", "kubernetes", "grpc", "yaml", "click",
             "prometheus_api_client", "pandas", "numpy", "matplotlib", "requests")  # fmt: skip
FORBIDDEN_OURS = ("ofobserve.render", "ofobserve.builders", "ofobserve.scaler",
                  "ofobserve.controller", "ofobserve.cli", "ofobserve.loading",
                  "ofobserve.settings", "ofobserve.cluster")  # fmt: skip
#: What ``pip install ofobserve`` installs: the function side (docs/instrumentation.md).
FUNCTION_SIDE = [
    "googleapis-common-protos",
    "grpcio",
    "ofobserve",
    "opentelemetry-api",
    "opentelemetry-exporter-otlp-common",
    "opentelemetry-exporter-otlp-proto-common",
    "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-proto",
    "opentelemetry-sdk",
    "opentelemetry-semantic-conventions",
    "prometheus-client",
    "protobuf",
    "typing-extensions",
]
MAX_PACKAGES = 15
MAX_BYTES = 40 * 1000 * 1000


def _imported_by(statement: str, python: str = sys.executable) -> list[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    modules: list[str] = json.loads(result.stdout)
    return modules


def test_import_instrument_loads_nothing_of_the_tool() -> None:
    modules = _imported_by("import ofobserve.instrument")
    tops = {m.partition(".")[0] for m in modules}
    found = sorted(
        m for m in modules if m.partition(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN_OURS)
    )
    assert found == []
    # Exactly these: OpenTelemetry loads only once tracing is configured.
    # (site's hooks: setuptools' distutils shim, the editable install's finder)
    hooks = {
        t for t in tops if t in ("__main__", "_distutils_hack") or t.startswith("__editable__")
    }
    assert sorted(tops - set(sys.stdlib_module_names) - hooks) == [
        "ofobserve",
        "prometheus_client",
    ]
    assert sorted(m for m in modules if m.startswith("ofobserve")) == [
        "ofobserve",
        "ofobserve.conventions",
        "ofobserve.errors",
        "ofobserve.instrument",
        "ofobserve.profiles",
        "ofobserve.tracing",
    ]


def _normal(name: str) -> str:
    return name.replace("_", "-").replace(".", "-").lower()


def test_the_extras_modules_are_pyprojects_extras() -> None:
    """ofobserve.extras checks the modules of exactly the distributions pyproject lists."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    owners = md.packages_distributions()

    def listed(extra: str) -> set[str]:
        names: set[str] = set()
        for line in extras[extra]:
            req = Requirement(line)
            if req.name == "ofobserve":
                names |= set().union(*(listed(e) for e in req.extras))
            else:
                names.add(_normal(req.name))
        return names

    for extra, modules in EXTRA_MODULES.items():
        checked = set()
        for module in modules:
            candidates = {_normal(d) for d in owners[module.partition(".")[0]]}
            [dist] = candidates & listed(extra) or candidates
            checked.add(dist)
        assert checked == listed(extra), extra
    assert "ofobserve[all]" in extras["test"]
    assert listed("all") == (
        listed("render")
        | listed("scaler")
        | listed("otlp-http")
        | listed("simulate")
        | listed("demo")
    )


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["render", "x"], "render"),
        (["-q", "--verbose", "scaler", "--help"], "scaler"),
        (["--help"], None),
        ([], None),
        (["--version", "render"], None),
    ],
)
def test_the_command_is_found_past_the_group_options(argv: list[str], command: str) -> None:
    assert command_of(argv) == command


def test_a_full_install_misses_no_extra() -> None:
    commands = (["render"], ["validate"], ["test-rules"], ["scaler"], ["controller"], ["simulate"])
    for argv in (*commands, []):
        assert missing_extra(argv) is None, argv


def _site(venv: Path) -> Path:
    [site] = (venv / "lib").glob("python3.*/site-packages")
    return site


@pytest.fixture(scope="module")
def function_side(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with ``pip install ofobserve`` (the base install) and nothing else."""
    root = tmp_path_factory.mktemp("function-side")
    wheels, venv = root / "wheels", root / "venv"
    wheels.mkdir()
    base = [r for r in md.requires("ofobserve") or [] if "extra ==" not in r]
    for dist in closure(base):
        rebuild(dist, wheels)
    build_project(REPO, wheels)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
         "--find-links", str(wheels), "ofobserve"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    shutil.rmtree(wheels)
    return venv


def test_the_function_side_install_is_small(function_side: Path) -> None:
    site = _site(function_side)
    names = sorted(
        _normal(info.name.removesuffix(".dist-info").partition("-")[0])
        for info in site.glob("*.dist-info")
    )
    size = sum(p.lstat().st_size for p in site.rglob("*") if p.is_file())
    print(f"\nfunction-side install: {len(names)} packages, {size / 1e6:.1f} MB in {site}")
    assert names == FUNCTION_SIDE
    assert len(names) <= MAX_PACKAGES
    assert size <= MAX_BYTES


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def test_an_instrumented_function_runs_from_the_function_side_install(
    function_side: Path, tmp_path: Path
) -> None:
    """tests/support/sample_function.py, run by the fresh virtualenv's Python from a folder
    of its own (so the checkout's ofobserve is not on sys.path), tracing over OTLP/gRPC."""
    script = tmp_path / "sample_function.py"
    shutil.copy(REPO / "tests" / "support" / "sample_function.py", script)
    http_port, metrics_port = free_port(), free_port()
    with grpc_receiver() as (receiver, url):
        env = {"PATH": os.environ["PATH"], "OTEL_EXPORTER_OTLP_ENDPOINT": url,
               "OTEL_BSP_SCHEDULE_DELAY": "100", "OFOBSERVE_BUCKETS": "0.3"}  # fmt: skip
        process = subprocess.Popen(
            [str(function_side / "bin" / "python"), str(script), str(http_port), str(metrics_port)],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            for _ in range(2):
                assert _get(f"http://127.0.0.1:{http_port}/ok") == "ok"
            with pytest.raises(urllib.error.HTTPError, match="500"):
                _get(f"http://127.0.0.1:{http_port}/fail")
            metrics = _get(f"http://127.0.0.1:{metrics_port}/metrics")
            deadline = time.monotonic() + 15
            while len(receiver.spans) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            process.kill()
            _, stderr = process.communicate()
    assert "Traceback" not in stderr, stderr
    assert 'function_requests_total{code="200",function="sample"} 2.0' in metrics
    assert 'function_requests_total{code="500",function="sample"} 1.0' in metrics
    assert 'function_errors_total{function="sample"} 1.0' in metrics
    assert 'function_cold_starts_total{function="sample"} 1.0' in metrics
    assert 'function_request_duration_seconds_bucket{function="sample",le="0.3"} 3.0' in metrics
    assert 'function_requests_in_flight{function="sample"} 0.0' in metrics
    assert sorted(s.name for s in receiver.spans) == ["sample"] * 3


def _run(venv: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / argv[0]), *argv[1:]], capture_output=True,
                          text=True, timeout=60, cwd=venv)  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["render", "functions/"], "ofobserve render needs the render extra: "
         "pip install 'ofobserve[render]'"),
        (["-q", "validate"], "ofobserve validate needs the render extra: "
         "pip install 'ofobserve[render]'"),
        (["scaler", "--help"], "ofobserve scaler needs the scaler extra: "
         "pip install 'ofobserve[scaler]'"),
        (["controller"], "ofobserve controller needs the controller extra: "
         "pip install 'ofobserve[controller]'"),
        (["--help"], "the ofobserve command needs an extra (this install has only "
         "ofobserve.instrument): pip install 'ofobserve[render]', pip install "
         "'ofobserve[scaler]' or pip install 'ofobserve[all]'"),
    ],
)  # fmt: skip
def test_a_command_without_its_extra_names_it_in_one_line(
    function_side: Path, argv: list[str], message: str
) -> None:
    for command in (["ofobserve"], ["python", "-m", "ofobserve"]):
        result = _run(function_side, *command, *argv)
        assert (result.returncode, result.stdout) == (1, ""), command
        assert result.stderr == f"error: {message}\n", command


def test_otlp_http_without_its_extra_is_named(function_side: Path) -> None:
    code = (
        "from ofobserve import tracing\n"
        "try:\n"
        "    tracing.setup('fn', {'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://127.0.0.1:4318',\n"
        "                         'OTEL_EXPORTER_OTLP_PROTOCOL': 'http/protobuf'})\n"
        "except tracing.TracingConfigError as exc:\n"
        "    print(exc)\n"
    )
    result = _run(function_side, "python", "-c", code)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' needs the otlp-http extra "
        "(opentelemetry.exporter.otlp.proto.http is missing): pip install 'ofobserve[otlp-http]'\n"
    )


def test_the_images_pins_cover_the_scaler_extra() -> None:
    """deploy/image/requirements.txt installs the scaler's set: every distribution of the
    scaler extra, and prometheus-client from the base install, is pinned there."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    lines = (REPO / "deploy" / "image" / "requirements.txt").read_text().splitlines()
    pinned = {_normal(line.split("==")[0]) for line in lines if line and line[0] != "#"}
    wanted = {_normal(Requirement(r).name) for r in extras["scaler"]} | {"prometheus-client"}
    assert sorted(wanted - pinned) == []

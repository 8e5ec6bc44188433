"""Shared fixtures: real tools (Prometheus, promtool, helm, a Kubernetes API server, Fluent Bit),
CRD validation, the CLI."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ofobserve.cli import main
from tests.support.crds import validate_custom_resource
from tests.support.fluentbit import find_binary
from tests.support.kube import APIServer, KubeAPI
from tests.support.prometheus import PrometheusServer
from tests.support.tools import REPO, require_tool

EXAMPLES = REPO / "examples" / "functions"
EXAMPLE_CONFIG = REPO / "examples" / "ofobserve.yaml"


def run_cli(*args: str, input: str | None = None) -> Result:
    """Run ``ofobserve ARGS`` in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """One real Prometheus for the whole session; tests reconfigure it as they need."""
    server = PrometheusServer(require_tool("prometheus"), tmp_path_factory.mktemp("prometheus"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def helm() -> str:
    return require_tool("helm")


@pytest.fixture(scope="session")
def validate_cr() -> object:
    """``validate_cr(obj)`` raises when a custom resource breaks its upstream CRD schema."""
    return validate_custom_resource


@pytest.fixture
def rendered_examples(tmp_path: Path) -> Path:
    """The examples rendered into a fresh directory."""
    out = tmp_path / "out"
    result = run_cli("render", str(EXAMPLES), "-c", str(EXAMPLE_CONFIG), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    return out


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([require_tool("openssl"), *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> Path:
    """In ``d``: a CA, a server certificate for 127.0.0.1 and a client certificate, made by
    openssl (``ca.pem``, ``server.pem``/``.key``, ``client.pem``/``.key``)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ca",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "1", "-extfile", "san.cnf",
                 "-out", f"{name}.pem", cwd=d)  # fmt: skip
    return d


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def kube_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPI]:
    """One real kube-apiserver 1.20 + etcd for the whole session, with the upstream CRDs
    installed; use ``fresh_namespace()`` per test. Stopped by PID at the end, even on failure."""
    server = APIServer(tmp_path_factory.mktemp("k8s"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fluent_bit() -> str:
    """Path of the real fluent-bit binary (see tests/support/fluentbit.py)."""
    return find_binary()

"""The copy-paste examples in docs/instrumentation.md run as written (each in its own
interpreter, with no metrics port opened), and docs/telemetry.md's configuration renders."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.support.tools import REPO

DOC = REPO / "docs" / "instrumentation.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("code", BLOCKS, ids=[f"example-{i}" for i in range(len(BLOCKS))])
def test_each_example_runs(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "OFOBSERVE_METRICS_PORT": "0"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_documented_outputs_are_real() -> None:
    """The messages the page quotes are what the examples print."""
    text = DOC.read_text()
    outputs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
            env={**os.environ, "OFOBSERVE_METRICS_PORT": "0"},
        ).stdout.strip()
        for code in BLOCKS
    ]  # fmt: skip
    assert outputs[0] == "hello world"
    signature = outputs[1]
    assert signature.startswith("instrument: handler(a, b, c) has an unsupported signature")
    assert " ".join(signature.split()) in " ".join(text.split())
    assert "b'hello'" in outputs


def test_the_telemetry_example_renders(tmp_path: Path) -> None:
    """docs/telemetry.md's configuration renders, and does what the page says."""
    text = (REPO / "docs" / "telemetry.md").read_text()
    [config] = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    path = tmp_path / "telemetry.yaml"
    path.write_text(config)
    out = tmp_path / "out"
    result = run_cli(
        "render", str(REPO / "examples" / "functions"), "-c", str(path), "--only",
        "telemetry", "-o", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    fluent = yaml.safe_load((out / "telemetry" / "fluent-bit.yaml").read_text())
    [output] = fluent["pipeline"]["outputs"]
    # index per namespace: the lua filter writes functions-<namespace> into ofobserve_index
    assert (output["name"], output["logstash_prefix_key"]) == ("es", "$ofobserve_index")
    [lua] = [f for f in fluent["pipeline"]["filters"] if f["name"] == "lua"]
    assert "namespace_name" in lua["code"]
    assert output["http_passwd"] == "${FLUENT_OUTPUT_PASSWORD}"
    collector = yaml.safe_load((out / "telemetry" / "otel-collector.yaml").read_text())
    assert "otlp_grpc/tempo" in collector["exporters"]
    assert "tail_sampling" in collector["processors"]

"""The copy-paste examples in docs/instrumentation.md run as written (each in its own
interpreter, with no metrics port opened)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

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

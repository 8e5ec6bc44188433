"""The README's example output is real: the quick start's summary and the validate examples."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.tools import REPO

README = (REPO / "README.md").read_text()


def test_the_quick_start_output_is_what_render_prints(tmp_path: Path) -> None:
    block = README.split("`./dev demo` writes `ofobserve-out/` and prints (real output):")[1]
    shown = block.split("```\n", 2)[1].splitlines()
    out = f"{tmp_path}/ofobserve-out"
    result = subprocess.run(
        [sys.executable, "-m", "ofobserve", "render", "examples/functions",
         "--config", "examples/ofobserve.yaml", "--output", out],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    printed = result.stderr.replace(out, "ofobserve-out").splitlines()
    assert shown[:-1] == printed  # the last line is ./dev demo's own count
    assert shown[-1] == f"Rendered files: {printed[1].split()[2]}"


def test_every_validate_example_on_bundled_files_is_real() -> None:
    examples = re.findall(r"```\n\$ (ofobserve validate [^\n]*)\n(.*?)```", README, flags=re.S)
    checked = 0
    for command, output in examples:
        args = command.split()[1:]
        if not all((REPO / a).exists() for a in args if a.startswith("examples/")):
            continue
        if any(a.endswith(".yaml") and not a.startswith("examples/") for a in args):
            continue  # an illustration with a file of the reader's
        result = subprocess.run(
            [sys.executable, "-m", "ofobserve", *args], cwd=REPO, capture_output=True, text=True
        )
        assert result.stderr == output, command
        checked += 1
    assert checked >= 1

"""Run the promtool unit tests that ``render`` writes, on its default output. Does I/O.

promtool reads plain rule files, while the default ``alerting.delivery`` writes each
function's rules as a PrometheusRule. :func:`run_rule_tests` copies the rules group into a
temporary folder with each PrometheusRule replaced by its ``spec`` (plain rule files pass
through), runs ``promtool test rules`` there in parallel batches, and returns promtool's
own report with the temporary paths put back to the real ones.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from ofobserve.errors import InvalidInput, Location, Problem, ToolMissing

RULES_GROUP = "rules"
TESTS_FOLDER = "tests"


@dataclass(frozen=True)
class RuleTestReport:
    passed: bool
    output: str  # promtool's own words
    files: int


def find_rules_root(directory: str) -> Path:
    """The rules group folder: ``DIR/rules`` of a render output, or ``DIR`` itself."""
    root = Path(directory)
    for candidate in (root / RULES_GROUP, root):
        if (candidate / TESTS_FOLDER).is_dir():
            return candidate
    if not root.is_dir():
        raise InvalidInput([Problem(Location(directory), "no such directory")])
    raise InvalidInput(
        [
            Problem(
                Location(directory),
                f"no promtool tests here: expected {RULES_GROUP}/{TESTS_FOLDER}/ "
                "(a render output directory) or tests/ (its rules folder)",
            )
        ]
    )


def run_rule_tests(directory: str, promtool: str | None = None, jobs: int = 0) -> RuleTestReport:
    """Run every test file under the rules group of ``directory``."""
    binary = promtool or shutil.which("promtool")
    if promtool and not (Path(promtool).is_file() and os.access(promtool, os.X_OK)):
        raise ToolMissing(f"--promtool {promtool}: not an executable file")
    if binary is None:
        raise ToolMissing(
            "promtool not found on PATH: install it (Debian: apt-get install prometheus) "
            "or pass --promtool"
        )
    root = find_rules_root(directory)
    with tempfile.TemporaryDirectory(prefix="ofobserve-rules-") as tmp:
        plain = Path(tmp)
        _plain_copy(root, plain)
        tests = sorted((plain / TESTS_FOLDER).rglob("*.yaml"))
        if not tests:
            raise InvalidInput([Problem(Location(str(root / TESTS_FOLDER)), "no test files")])
        batches = _batches(tests, jobs or os.cpu_count() or 1)
        procs = [
            subprocess.Popen(
                [binary, "test", "rules", *(str(t.relative_to(plain)) for t in batch)],
                cwd=plain,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for batch in batches
        ]
        outputs = [proc.communicate()[0] for proc in procs]
    prefix = f"{root.as_posix().rstrip('/')}/"
    output = "".join(_with_real_paths(text, prefix) for text in outputs)
    return RuleTestReport(all(p.returncode == 0 for p in procs), output, len(tests))


def _plain_copy(root: Path, into: Path) -> None:
    for path in sorted(root.rglob("*.yaml")):
        target = into / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text(encoding="utf-8")
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInput([Problem(Location(path.as_posix()), f"not YAML: {exc}")]) from None
        if isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
            text = yaml.safe_dump(doc.get("spec") or {}, sort_keys=False)
        target.write_text(text, encoding="utf-8")


def _batches(items: list[Path], count: int) -> list[list[Path]]:
    size = -(-len(items) // max(1, min(count, len(items))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _with_real_paths(text: str, prefix: str) -> str:
    """promtool names files as given (relative to the copy): prefix them with the real root."""
    return re.sub(rf"(?<![\w/.]){TESTS_FOLDER}/", f"{prefix}{TESTS_FOLDER}/", text)

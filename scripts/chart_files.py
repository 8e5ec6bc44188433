"""Write the chart's fleet artifacts from ``ofobserve render`` output. Does I/O.

It also writes the chart README's table of values, from the ``# --`` comment above each
key of values.yaml (a scalar key without one is an error), and the golden ``helm template``
output of each value set that tests/test_chart.py compares with (tests/golden/chart/, made
with the helm in .tools/bin).

The overview and scaler dashboards, and the fleet Fluent Bit and OpenTelemetry Collector
configurations, are rendered with the default settings and stored under
``deploy/helm/ofobserve/files/``; the chart's templates wrap them (ConfigMaps for Grafana's
sidecar, or GrafanaDashboards). Fluent Bit's tail path depends on the function namespaces,
so it is stored as ``@@FUNCTION_LOG_PATHS@@`` and the chart fills it in from
``watchNamespaces``.

    .venv/bin/python scripts/chart_files.py          write them
    .venv/bin/python scripts/chart_files.py --check  exit 1 if any is out of date
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support import chart  # noqa: E402  (the value sets and how the tests run helm)

FILES = REPO / "deploy" / "helm" / "ofobserve" / "files"
LOG_PATHS_TOKEN = "@@FUNCTION_LOG_PATHS@@"
#: Rendered file -> (its ConfigMap data key, where it goes under files/).
SOURCES = {
    "dashboards/ofobserve-overview.yaml": ("overview.json", "dashboards/overview.json"),
    "dashboards/ofobserve-scaler.yaml": ("scaler.json", "dashboards/scaler.json"),
    "telemetry/fluent-bit-configmap.yaml": ("fluent-bit.yaml", "telemetry/fluent-bit.yaml"),
    "telemetry/otel-collector-configmap.yaml": ("config.yaml", "telemetry/otel-collector.yaml"),
}


def _render(out: Path) -> None:
    """``ofobserve render`` of this checkout's code (not whatever the venv installed)."""
    subprocess.run(
        [sys.executable, "-m", "ofobserve", "-q", "render", str(REPO / "examples" / "functions"),
         "--only", "dashboards", "--only", "telemetry", "-o", str(out)],
        check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def _fluent_bit(text: str) -> str:
    """The tail input's path, which lists the examples' namespaces, becomes the token."""
    config = yaml.safe_load(text)
    [tail] = [i for i in config["pipeline"]["inputs"] if i["name"] == "tail"]
    return text.replace(f"path: {tail['path']}\n", f"path: {LOG_PATHS_TOKEN}\n")


def build() -> dict[Path, str]:
    with tempfile.TemporaryDirectory() as tmp:
        _render(Path(tmp))
        files = {}
        for rendered, (key, target) in SOURCES.items():
            text = yaml.safe_load((Path(tmp) / rendered).read_text())["data"][key]
            files[FILES / target] = _fluent_bit(text) if "fluent-bit" in target else text
    return files


VALUES = REPO / "deploy" / "helm" / "ofobserve" / "values.yaml"
README = REPO / "deploy" / "helm" / "ofobserve" / "README.md"
TABLE_START, TABLE_END = "<!-- values:start -->", "<!-- values:end -->"


def values_table() -> str:
    """One row per documented key of values.yaml: key, default (as JSON), description."""
    defaults = yaml.safe_load(VALUES.read_text())
    rows, stack, comment = [], [], []  # stack: (indent, key)
    whole = None  # indent of a documented key whose children it documents as a whole
    for number, line in enumerate(VALUES.read_text().splitlines(), 1):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if whole is not None and stripped and indent > whole:
            continue
        whole = None
        if stripped.startswith("# --"):
            comment = [stripped.removeprefix("# --").strip()]
            continue
        if stripped.startswith("#") and comment:
            comment.append(stripped.removeprefix("#").strip())
            continue
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            comment = [] if not stripped else comment
            continue
        key, _, rest = stripped.partition(":")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key]
        if comment:
            value = defaults
            for part in path:
                value = value[part]
            shown = json.dumps(value, separators=(", ", ": "))
            rows.append(f"| `{'.'.join(path)}` | `{shown}` | {' '.join(comment)} |")
            comment = []
            whole = indent
        elif rest.strip() and not rest.strip().startswith("#"):
            raise SystemExit(f"{VALUES}:{number}: {'.'.join(path)} has no '# --' comment")
        stack.append((indent, key))
    return "\n".join(["| Key | Default | Description |", "| --- | --- | --- |", *rows])


def readme() -> dict[Path, str]:
    text = README.read_text()
    head, _, rest = text.partition(TABLE_START + "\n")
    _, _, tail = rest.partition(TABLE_END)
    return {README: f"{head}{TABLE_START}\n{values_table()}\n{TABLE_END}{tail}"}


def goldens() -> dict[Path, str]:
    """``helm template`` of every value set (run after the files above are in place)."""
    helm = str(REPO / ".tools" / "bin" / "helm")
    with tempfile.TemporaryDirectory() as home:
        return {
            chart.GOLDEN / f"{name}.yaml": chart.template(
                helm, Path(home), name, chart.GOLDEN_KUBE_VERSION
            )
            for name in chart.VALUE_SETS
        }


def main(argv: list[str]) -> int:
    check = argv == ["--check"]
    if argv and not check:
        print(__doc__, file=sys.stderr)
        return 2
    stale = []
    for produce in (build, readme, goldens):
        for path, text in produce().items():
            current = path.read_text() if path.exists() else None
            if current == text:
                continue
            stale.append(path.relative_to(REPO))
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if check and stale:
        print(f"out of date (run scripts/chart_files.py): {', '.join(map(str, stale))}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

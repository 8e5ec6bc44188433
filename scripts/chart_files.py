"""Write the chart's fleet artifacts from ``ofobserve render`` output. Does I/O.

It also writes the golden ``helm template`` output of each value set that
tests/test_chart.py compares with (tests/golden/chart/, made with the helm in .tools/bin).

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
    for produce in (build, goldens):
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

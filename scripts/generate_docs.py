"""Write the generated documentation: docs/alerts.md, docs/dashboards.md and the README's
dashboard matrix. Does I/O.

    .venv/bin/python scripts/generate_docs.py          write them
    .venv/bin/python scripts/generate_docs.py --check  exit 1 if any is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from ofobserve.alerts import runbook_markdown
from ofobserve.builders.dashboard_docs import dashboards_markdown, example_variants, readme_section
from ofobserve.builders.fleet_dashboards import overview, scaler
from ofobserve.loading import load_inputs
from ofobserve.settings import fleet_settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def pages() -> dict[Path, str]:
    """Every generated file and its content."""
    config, subjects = load_inputs([str(EXAMPLES / "functions")], str(EXAMPLES / "ofobserve.yaml"))
    fleet = fleet_settings(config)
    variants = example_variants(subjects)
    readme = ROOT / "README.md"
    return {
        ROOT / "docs" / "alerts.md": runbook_markdown(),
        ROOT / "docs" / "dashboards.md": dashboards_markdown(
            variants, [overview(fleet), scaler(fleet)]
        ),
        readme: readme_section(variants, readme.read_text()),
    }


if __name__ == "__main__":
    stale = [p for p, text in pages().items() if not p.exists() or p.read_text() != text]
    if "--check" in sys.argv:
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)} (run ./dev examples)", file=sys.stderr)
        sys.exit(1 if stale else 0)
    for path, text in pages().items():
        path.write_text(text)

"""Write the generated documentation pages (docs/alerts.md). Does I/O."""

from __future__ import annotations

from pathlib import Path

from ofobserve.alerts import runbook_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = {"alerts.md": runbook_markdown}

if __name__ == "__main__":
    for name, build in PAGES.items():
        (DOCS / name).write_text(build())

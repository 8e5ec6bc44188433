"""Find the real binaries the tests need; a missing one fails under CI and skips elsewhere."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO / ".tools" / "bin"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Fail under ``CI=true``, skip elsewhere; either way say why."""
    message = f"{reason} (the README's test command installs it: ./dev test)"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """Absolute path of a binary from PATH or ``.tools/bin``."""
    found = shutil.which(name) or shutil.which(name, path=str(TOOLS_BIN))
    if found is None:
        unavailable(f"{name} is not installed")
    assert found is not None
    return found

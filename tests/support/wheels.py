"""Wheels rebuilt from this virtualenv's installed distributions, so that a fresh virtualenv
can be installed with ``pip install --no-index --find-links``: no network, and exactly the
versions the development virtualenv runs. Does I/O: reads site-packages, writes wheels.

A wheel is the installed files (no bytecode, nothing outside site-packages) plus the
``.dist-info`` pip keeps (METADATA, WHEEL, entry points), with a new RECORD.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement

#: What pip writes into a .dist-info at install time; a wheel does not carry them.
_INSTALL_ONLY = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: Iterable[str]) -> list[md.Distribution]:
    """The installed distributions that ``requirements`` need, transitively (no extras, markers
    of this interpreter)."""
    found: dict[str, md.Distribution] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = _normal(req.name)
        if key in found:
            continue
        dist = found[key] = md.distribution(req.name)
        todo += [Requirement(r) for r in dist.requires or []]
    return sorted(found.values(), key=lambda d: _normal(d.metadata["Name"]))


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def rebuild(dist: md.Distribution, into: Path) -> Path:
    """One installed distribution as a wheel in ``into``."""
    root = Path(str(dist.locate_file(""))).resolve()
    name, version = dist.metadata["Name"], dist.version
    info_dir = f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]  # fmt: skip
    path = into / f"{re.sub(r'[-_.]+', '_', name)}-{version}-{tags[0]}.whl"
    records = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as wheel:
        for file in dist.files or []:
            full = Path(str(dist.locate_file(file))).resolve()
            if not full.is_relative_to(root) or "__pycache__" in file.parts:
                continue  # console scripts (pip makes them again) and bytecode
            arcname = full.relative_to(root).as_posix()
            if arcname.split("/")[0].endswith(".dist-info") and file.name in _INSTALL_ONLY:
                continue
            data = full.read_bytes()
            wheel.writestr(arcname, data)
            records.append(_record_line(arcname, data))
        records.append(f"{info_dir}/RECORD,,")
        wheel.writestr(f"{info_dir}/RECORD", "\n".join(records) + "\n")
    return path


def build_project(repo: Path, into: Path) -> Path:
    """The project's own wheel, from a clean copy (an in-tree build would write build/),
    with this virtualenv's setuptools: no build isolation, so nothing is downloaded."""
    work = Path(tempfile.mkdtemp(prefix="ofobserve-wheel-"))
    try:
        for part in ("pyproject.toml", "README.md"):
            shutil.copy(repo / part, work / part)
        shutil.copytree(repo / "ofobserve", work / "ofobserve",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
             "--no-build-isolation", "--disable-pip-version-check", "-w", str(into), str(work)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        shutil.rmtree(work)
    [wheel] = into.glob("ofobserve-*.whl")
    return wheel

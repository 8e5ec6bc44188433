"""A real Fluent Bit 5.1.1 (``../shared/tools/fluent-bit/fluent-bit.xz``), to check the
pipelines ofobserve generates.

``--dry-run`` (:func:`dry_run`) checks plugins, their properties and the YAML, but not what
only a real start finds, such as a tail ``db:`` that cannot be opened. So :func:`start_for`
also runs a configuration for a few seconds, and :func:`assert_started` fails on what its log
reports. The binary is unpacked into ``.tools/bin`` (``./dev test`` does it first, through
``scripts/install_tools.py``); ``$OFOBSERVE_FLUENT_BIT`` names another one.
"""

from __future__ import annotations

import lzma
import os
import shutil
import subprocess
from pathlib import Path

from tests.support.kube import shared_dir
from tests.support.tools import TOOLS_BIN, unavailable

DRY_RUN_TIMEOUT = 30.0
#: Fluent Bit's own shutdown grace period is 5 s; after this, SIGKILL.
STOP_TIMEOUT = 10.0
#: Log text that means a pipeline did not start (fluent-bit logs everything on stderr).
FAILURE_MARKERS = ("initialization failed", "[error]", "cannot open")
LIBRARIES = "it needs: apt-get install -y libluajit-5.1-2 libsqlite3-0 libyaml-0-2 libssl3"


def archive() -> Path:
    return shared_dir() / "tools" / "fluent-bit" / "fluent-bit.xz"


def unpack(source: Path, target: Path) -> Path:
    """Unpack ``source`` (xz) to ``target`` unless it is there and newer; atomic, chmod +x."""
    if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with lzma.open(source) as unpacked, partial.open("wb") as out:
        shutil.copyfileobj(unpacked, out)
    partial.chmod(0o755)
    partial.rename(target)
    return target


def find_binary() -> str:
    """``.tools/bin/fluent-bit`` (unpacked from ../shared when needed), else
    ``$OFOBSERVE_FLUENT_BIT``; checked to run. :func:`unavailable` when there is neither."""
    binary = TOOLS_BIN / "fluent-bit"
    if archive().is_file():
        unpack(archive(), binary)
    if not binary.exists():
        override = os.environ.get("OFOBSERVE_FLUENT_BIT")
        if not override:
            unavailable(
                f"fluent-bit not found: no {binary} and no {archive()} "
                "(../shared/tools beside the repo); or set OFOBSERVE_FLUENT_BIT to a binary"
            )
        assert override is not None
        binary = Path(override)
    if not os.access(binary, os.X_OK):
        unavailable(f"fluent-bit at {binary} is not an executable file")
    version = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=DRY_RUN_TIMEOUT
    )
    if version.returncode != 0:
        unavailable(f"fluent-bit at {binary} does not run: {version.stderr.strip()} ({LIBRARIES})")
    return str(binary)


def dry_run(binary: str, config_path: Path) -> subprocess.CompletedProcess[str]:
    """``fluent-bit --dry-run -c FILE``: exit 0 and "configuration test is successful", or
    exit 1 with the reason on stderr."""
    return subprocess.run(
        [binary, "--dry-run", "-c", str(config_path)],
        capture_output=True,
        text=True,
        timeout=DRY_RUN_TIMEOUT,
    )


def start_for(binary: str, config_path: Path, seconds: float = 3.0) -> tuple[int | None, str]:
    """Run ``fluent-bit -c FILE`` for up to ``seconds``, then stop it by PID.

    Returns its exit code if it exited by itself in that time (``None`` if it was still
    running), and its whole log, shutdown included. The log goes to a file beside the
    config (``<config>.log``), never to a pipe that could fill up.
    """
    log_path = config_path.with_name(config_path.name + ".log")
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [binary, "-c", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=config_path.parent,
        )
    try:
        returncode: int | None = process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        returncode = None
    finally:
        _stop(process)
    return returncode, log_path.read_text(errors="replace")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def assert_started(log: str, still_running: bool) -> None:
    """Fail, with the log, when fluent-bit exited early or logged a start-up failure."""
    problems = [line for line in log.splitlines() if any(m in line for m in FAILURE_MARKERS)]
    if not still_running:
        problems.append("fluent-bit exited before the end of its start-up window")
    if problems:
        summary = "\n".join(problems)
        raise AssertionError(f"fluent-bit did not start cleanly:\n{summary}\n--- log ---\n{log}")

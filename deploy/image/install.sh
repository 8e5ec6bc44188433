#!/usr/bin/env bash
# Install the scaler's and the controller's runtime into PREFIX: a virtualenv with ofobserve and exactly the
# pinned packages of requirements.txt, bytecode precompiled, no pip in it.
#
#   deploy/image/install.sh PREFIX
#
# The Dockerfile runs it (PREFIX=/opt/ofobserve); tests/test_image.py runs it into a temp
# directory and starts `PREFIX/bin/ofobserve scaler` from there. PREFIX must be absent or
# empty. Environment:
#   PYTHON      the interpreter the virtualenv is built on (default: python3)
#   PIP_PYTHON  an interpreter that has pip (default: PYTHON); pip installs into PREFIX
#               through --python, so pip itself never enters PREFIX
# Exit codes: 0 installed, 1 failure, 2 usage error.
set -euo pipefail

if [[ $# -ne 1 || -z $1 ]]; then
    echo "usage: $0 PREFIX   (an absent or empty directory)" >&2
    exit 2
fi
prefix=$1
python=${PYTHON:-python3}
pip_python=${PIP_PYTHON:-$python}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# What pyproject's base install (the function side) requires and the image does not: pip
# check may report only these missing. The controller extra's closure is requirements.txt.
omitted='opentelemetry-api|opentelemetry-sdk|opentelemetry-exporter-otlp-proto-grpc'

if [[ -e $prefix && ! -d $prefix ]]; then
    echo "error: $prefix exists and is not a directory" >&2
    exit 1
fi
if [[ -d $prefix && -n $(ls -A "$prefix") ]]; then
    echo "error: $prefix is not empty; install.sh only installs into a new prefix" >&2
    exit 1
fi
if ! "$pip_python" -m pip --version >/dev/null 2>&1; then
    echo "error: $pip_python has no pip; set PIP_PYTHON to an interpreter that has" >&2
    exit 1
fi
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)

"$python" -m venv --without-pip "$prefix"
pip=("$pip_python" -m pip --python "$prefix/bin/python" --disable-pip-version-check)

# Wheels only: nothing is compiled, so the builder needs no compiler or headers.
"${pip[@]}" install --quiet --no-compile --no-deps --only-binary=:all: -r "$here/requirements.txt"

# Build ofobserve from a clean copy: an in-tree build would write build/ into the checkout.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$repo/pyproject.toml" "$repo/README.md" "$repo/ofobserve" "$work/"
find "$work" -name __pycache__ -prune -exec rm -rf {} +
"${pip[@]}" install --quiet --no-compile --no-deps "$work"

# Every installed package's requirements are met, but for the render-only ones left out.
problems=$("${pip[@]}" check 2>&1 || true)
unexpected=$(grep -vE "^ofobserve [^ ]+ requires ($omitted), which is not installed\.$" \
    <<<"$problems" | grep -v '^No broken requirements found\.$' || true)
if [[ -n $unexpected ]]; then
    echo "error: pip check:" >&2
    echo "$unexpected" >&2
    exit 1
fi

site=$("$prefix/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
rm -rf "$site"/pip "$site"/pip-* "$site"/setuptools "$site"/setuptools-* \
    "$site"/wheel "$site"/wheel-* "$site"/_distutils_hack "$site"/distutils-precedence.pth
# A read-only root filesystem and PYTHONDONTWRITEBYTECODE=1: every .pyc is written now.
# unchecked-hash pycs stay valid whatever the files' mtimes become in the image's layers.
find "$prefix" -name __pycache__ -prune -exec rm -rf {} +
"$prefix/bin/python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$site"

packages=$(find "$site" -maxdepth 1 -name '*.dist-info' | wc -l)
echo "installed ofobserve and $((packages - 1)) packages into $prefix:" \
    "$(du -sh "$prefix" | cut -f1) on disk, $(du -sb "$prefix" | cut -f1) bytes of files"

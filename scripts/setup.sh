#!/usr/bin/env bash
# Create/refresh the project virtualenv in .venv and install pccompiler
# (editable) with its dev extras.  Idempotent: a second run is a no-op while
# .venv/.setup-stamp is newer than pyproject.toml and this script.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.setup-stamp"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

step() { echo "[setup] $*"; }

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] \
   && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt scripts/setup.sh ]; then
    step "$VENV is up to date (stamp newer than pyproject.toml); nothing to do"
    exit 0
fi

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    echo "[setup] error: $("$PYTHON" --version 2>&1) found; Python >= 3.10 is required" >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    step "creating $VENV with $("$PYTHON" --version 2>&1) ($(command -v "$PYTHON"))"
    "$PYTHON" -m venv "$VENV"
else
    step "reusing existing $VENV"
fi
# pip, quiet, minus the "Location ... is ignored" warnings that this
# machine's pip config (file:// extra index) prints for every package, and
# setuptools' generic "Editable installation" banner.
pip_q() {
    "$VENV/bin/python" -m pip install -q "$@" 2>&1 \
        | sed -e '/is ignored: it is neither a file nor a directory/d' \
              -e '/BuildBackendWarning: Editable installation/,/with strategy, WheelFile/d'
}

step "upgrading pip"
pip_q --upgrade pip

if command -v nvidia-smi >/dev/null 2>&1; then
    step "nvidia-smi found: installing torch (CUDA build from the index)"
    pip_q torch
else
    step "no nvidia-smi: installing torch==$TORCH_VERSION (CPU build) first"
    pip_q "torch==$TORCH_VERSION"
fi

step "installing pccompiler in editable mode with [dev] extras"
pip_q -e '.[dev]'

step "checking the install"
# From / so that the repo folder is not on sys.path: proves the editable
# install maps pccompiler.ir -> ir/ (find_spec: does not run ir/__init__.py).
VPY="$PWD/$VENV/bin/python"
(cd / && "$VPY" -c '
import importlib.util as u, torch, google.protobuf as pb
spec = u.find_spec("pccompiler.ir")
assert spec is not None, "pccompiler.ir is not importable"
tri = u.find_spec("triton") and __import__("triton").__version__
print("[setup] pccompiler.ir ->", spec.origin)
print("[setup] torch", torch.__version__, "| triton", tri, "| protobuf", pb.__version__)')

touch "$STAMP"
step "done"

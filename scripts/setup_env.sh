#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment and installs every dependency.
# torch goes first, pinned, so that no other package can pull a multi-GB CUDA build; DeepSpeed
# builds no CUDA ops (DS_BUILD_OPS=0) and compiles against the torch already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${AHA_VENV:-.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
. "$VENV/bin/activate"
stamp="$VENV/.aha-installed"
want=$(cat requirements.txt constraints.txt | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
DS_BUILD_OPS=0 python -m pip install -q --no-build-isolation -r requirements.txt -c constraints.txt
echo "$want" > "$stamp"

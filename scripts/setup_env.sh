#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment and installs the locked dependencies.
# 1. torch, pinned in requirements.txt, goes first and on its own, so that no other package can pull
#    a multi-GB CUDA build (here pip takes the local CPU wheel; on a GPU machine install the CUDA
#    build of the same version before running this script and it is kept);
# 2. requirements.lock, every other package at its exact version, without dependency resolution
#    (--no-deps: what is installed is exactly the lock); DeepSpeed builds no CUDA ops
#    (DS_BUILD_OPS=0) and compiles against the torch already installed;
# 3. `pip check`: the locked set is consistent.
# The lock is regenerated from requirements.txt by scripts/lock_env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${AHA_VENV:-.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
. "$VENV/bin/activate"
stamp="$VENV/.aha-installed"
want=$(cat requirements.txt requirements.lock constraints.txt scripts/setup_env.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
torch_pin=$(grep -E '^torch==' requirements.txt | cut -d' ' -f1)
if ! python -c "import sys, importlib.metadata as m; sys.exit(m.version('torch').split('+')[0] != '${torch_pin#torch==}')" 2>/dev/null; then
  python -m pip install -q "$torch_pin"
fi
DS_BUILD_OPS=0 python -m pip install -q --no-build-isolation --no-deps -r requirements.lock -c constraints.txt
# decord 0.6.0's wheel declares a cp36 tag inside (its file name says py3): pip check flags it
# although it imports and runs; every other finding fails the set-up
problems=$( (python -m pip check || true) | grep -v -e '^decord 0\.6\.0 is not supported on this platform$' -e '^No broken requirements found\.$' || true)
if [ -n "$problems" ]; then echo "pip check: $problems" >&2; exit 1; fi
echo "$want" > "$stamp"

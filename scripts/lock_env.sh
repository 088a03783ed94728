#!/usr/bin/env bash
# Regenerates requirements.lock from requirements.txt: every package the install resolves, at one
# exact version (pip-tools' pip-compile, run with pip's own resolver and this machine's indexes).
#   bash scripts/lock_env.sh            # keep what is locked where requirements.txt still allows it
#   bash scripts/lock_env.sh --upgrade  # move every package to the newest allowed version
# torch is excluded from the lock (--unsafe-package): it is pinned in requirements.txt and installed
# first by scripts/setup_env.sh, so that a GPU machine can take the CUDA build of the same version.
# DeepSpeed's metadata is built against that torch, hence a throwaway venv holding it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TOOL=$(mktemp -d)/lockenv
trap 'rm -rf "$(dirname "$TOOL")"' EXIT
"$PY" -m venv "$TOOL"
"$TOOL/bin/python" -m pip install -q "pip-tools==7.6.2" "$(grep -E '^torch==' requirements.txt)"
CUSTOM_COMPILE_COMMAND="bash scripts/lock_env.sh" DS_BUILD_OPS=0 "$TOOL/bin/pip-compile" -q --no-build-isolation --strip-extras \
  --unsafe-package torch --no-emit-index-url --no-emit-find-links \
  --output-file requirements.lock "$@" requirements.txt
echo "wrote requirements.lock ($(grep -cE '^[A-Za-z0-9]' requirements.lock) packages)"

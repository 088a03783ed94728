#!/usr/bin/env bash
# README command 2: set up the environment if needed (and the browser for the web demo's tests), then lint and
# run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# the web demo's browser tests: Debian's chromium + chromium-driver (apt; here, not in setup_env.sh,
# so `scripts/demo.sh` never installs a browser); skipped with a message where apt or root is missing
bash scripts/install_browser.sh
. "${AHA_VENV:-.venv}/bin/activate"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
ruff check .   # lint, at the locked ruff version
python -m pytest tests "$@"

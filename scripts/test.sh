#!/usr/bin/env bash
# README command 2: set up the environment if needed, then lint and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. "${AHA_VENV:-.venv}/bin/activate"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
ruff check .   # lint, at the locked ruff version
python -m pytest tests "$@"

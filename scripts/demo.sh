#!/usr/bin/env bash
# README command 1: set up the environment if needed, then run online highlight detection with the
# embedded default model on a generated synthetic test video (extra flags go to python -m test.demo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. "${AHA_VENV:-.venv}/bin/activate"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
exec python -m test.demo "$@"

#!/usr/bin/env bash
# Evaluate the embedded default model against its baselines on the synthetic TEST split.
#
#   bash scripts/eval_tiny.sh                          # the shipped checkpoint
#   CKPT=outputs/aha-tiny-synth bash scripts/eval_tiny.sh
#
# Writes results/synthetic_results.json and results/synthetic_results.md (the README table);
# predictions and per-benchmark results (with their protocol records) under $WORK.
# Fusion weights and response thresholds are chosen on the VAL split only (test/synthetic_eval.py).
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-outputs/synthetic}
CKPT=${CKPT:-checkpoints/aha-tiny-synth}
WORK=${WORK:-outputs/synthetic_eval}
RESULTS=${RESULTS:-results/synthetic_results.json}
PY=${PYTHON:-python}
export TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1

# the default synthetic set (seed 0): val and test are the same 20 + 20 videos whatever --n_train,
# so the training set of scripts/train_tiny.sh serves as well; generated unless DATA holds a
# complete default set of the current format
if ! $PY -c "import sys; from data.synthetic import is_default_set; sys.exit(0 if is_default_set(sys.argv[1]) else 1)" "$DATA"; then
    $PY -m data.synthetic --out "$DATA" --seed 0 --workers 2 --quiet
fi

$PY -m test.synthetic_eval --data "$DATA" --checkpoint "$CKPT" --work "$WORK" --results "$RESULTS" "$@"

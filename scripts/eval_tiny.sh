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
# so the training set of scripts/train_tiny.sh serves as well
# (re)generate unless the folder holds a complete set of this generator's format (its val and test
# splits are the same videos whatever --n_train, so scripts/train_tiny.sh's folder serves too)
if ! $PY -c "import json, sys; from data.synthetic import FORMAT_VERSION; m = json.load(open(sys.argv[1])); \
sys.exit(0 if m.get('complete') and m.get('seed') == 0 and m.get('format_version') == FORMAT_VERSION else 1)" \
    "$DATA/manifest.json" 2>/dev/null; then
    $PY -m data.synthetic --out "$DATA" --seed 0 --workers 2 --quiet
fi

$PY -m test.synthetic_eval --data "$DATA" --checkpoint "$CKPT" --work "$WORK" --results "$RESULTS" "$@"

#!/usr/bin/env bash
# Score curves against the ground truth for a few items of a benchmark result (test.visualize).
#   usage: scripts/visualize/plot_benchmark.sh RESULTS.json [OUT_DIR] [MAX_SHOW]
# RESULTS.json (from test.benchmark) names the predictions, items, gold file and each item's
# fusion weights. OUT_DIR defaults to <RESULTS stem>_files/plots, MAX_SHOW to 5 (or $MAX_SHOW).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
RESULTS=${1:?usage: plot_benchmark.sh RESULTS.json [OUT_DIR] [MAX_SHOW]}
OUT=${2:-}
MAX_SHOW=${3:-${MAX_SHOW:-5}}
args=(--results "$RESULTS" --max_show "$MAX_SHOW")
[ -n "$OUT" ] && args+=(--out_dir "$OUT")
"${PYTHON:-python}" -m test.visualize "${args[@]}"

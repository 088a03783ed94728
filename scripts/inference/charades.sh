#!/usr/bin/env bash
# Charades-STA temporal grounding: convert -> stream (2 fps, scores only) -> held-out tuning +
# scoring (one interval per query) -> plots.
#
#   VIDEO_ROOT=/data/charades/Charades_v1_480 ANNO_DIR=/data/charades_sta CHECKPOINT=... WEIGHTS=... \
#       bash scripts/inference/charades.sh [extra test.run_benchmark flags]
#
# Required: VIDEO_ROOT (<vid>.mp4), ANNO_DIR with charades_sta_$SPLIT.txt and Charades_v1_$SPLIT.csv
#   (SPLIT=test by default; the outputs are named after it), or GOLD and LENGTHS.
# Protocol (defaults first, the reference's in brackets):
#   FPS=2 [2]  MAX_FRAMES=400 [400]  GENERATE=0 scores only [GENERATE=1: --threshold 1 --score_heads
#   informative; generation is not suppressed in the reference, §9 item 19]
#   PROTOCOL=standard: causal interval (trailing mean, running min-max, threshold 0.5), interval IoU
#   [reference: centred +-w smoothing, whole-video min-max, frame-set IoU, per-query oracle threshold;
#    the paper's "Aha (w=8)": PROTOCOL=reference BENCH_ARGS="--opt window=8"]
set -euo pipefail
BENCH=charades
MAX_FRAMES=${MAX_FRAMES:-400}
. "$(dirname "$0")/_common.sh"
: "${VIDEO_ROOT:?set VIDEO_ROOT to the folder holding <vid>.mp4}"
SPLIT=${SPLIT:-test}
[ -n "${GOLD:-}" ] && [ -n "${LENGTHS:-}" ] || \
  : "${ANNO_DIR:?set ANNO_DIR to the folder with charades_sta_$SPLIT.txt and Charades_v1_$SPLIT.csv (or GOLD and LENGTHS)}"
need_dir "$VIDEO_ROOT" VIDEO_ROOT
GOLD=${GOLD:-$ANNO_DIR/charades_sta_$SPLIT.txt}
LENGTHS=${LENGTHS:-$ANNO_DIR/Charades_v1_$SPLIT.csv}
need_file "$GOLD" "Charades-STA annotation"; need_file "$LENGTHS" "Charades video lengths csv"
PROTOCOL=${PROTOCOL:-standard}

ENGINE=(--fps "${FPS:-2}")
if [ "${GENERATE:-0}" = 1 ]; then
  ENGINE+=(--threshold "${THRESHOLD:-1}" --score_heads "${SCORE_HEADS:-informative}" --max_new_tokens "${MAX_NEW_TOKENS:-200}")
else
  ENGINE+=(--no_generate)
fi

ITEMS=${ITEMS:-$OUT_DIR/items_$SPLIT.jsonl}
convert_items "$ITEMS" charades --input "$GOLD" --lengths "$LENGTHS"
infer "$ITEMS" "$OUT_DIR/pred_$SPLIT.jsonl" "${ENGINE[@]}" "$@"
score charades "$OUT_DIR/pred_$SPLIT.jsonl" "$GOLD" "$OUT_DIR/results_${SPLIT}_$PROTOCOL.json" \
    --protocol "$PROTOCOL" --split "$SPLIT" --opt "durations_csv=$LENGTHS"

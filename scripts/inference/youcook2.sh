#!/usr/bin/env bash
# YouCook2 dense video captioning: convert -> stream (0.5 fps, responses when the running sum of
# the informative score passes the threshold) -> scoring (SODA_c, CIDEr, METEOR, F1) -> plots.
#
#   VIDEO_ROOT=/data/youcook2/videos ANNO_DIR=/data/youcook2 CHECKPOINT=... WEIGHTS=... \
#       bash scripts/inference/youcook2.sh [extra test.run_benchmark flags]
#
# Required: VIDEO_ROOT (<youtube_id>.mp4, see datasets/README.md), ANNO_DIR with yc2_$SPLIT.json
#   (SPLIT=val by default; the outputs are named after it), or GOLD.
# Protocol = the reference's script, as flags: FPS=0.5  MAX_FRAMES=200  SUM_THRESHOLD=5.789473684210526
#   (the paper says s=2)  SCORE_HEADS=informative  --remove_assistant_turns  MAX_NEW_TOKENS=200.
#   Nothing is tuned (the responses are decided online). CAPTIONS=0 scores detection only (no Java).
#   The reference's conversion and skipping: PROTOCOL=reference.
set -euo pipefail
BENCH=youcook2
MAX_FRAMES=${MAX_FRAMES:-200}
. "$(dirname "$0")/_common.sh"
: "${VIDEO_ROOT:?set VIDEO_ROOT to the folder holding <youtube_id>.mp4}"
SPLIT=${SPLIT:-val}
[ -n "${GOLD:-}" ] || : "${ANNO_DIR:?set ANNO_DIR to the folder with yc2_$SPLIT.json (or GOLD)}"
need_dir "$VIDEO_ROOT" VIDEO_ROOT
GOLD=${GOLD:-$ANNO_DIR/yc2_$SPLIT.json}
need_file "$GOLD" "YouCook2 caption json"
PROTOCOL=${PROTOCOL:-official}

ENGINE=(--fps "${FPS:-0.5}" --cumulative_threshold "${SUM_THRESHOLD:-5.789473684210526}"
        --score_heads "${SCORE_HEADS:-informative}" --remove_assistant_turns --max_new_tokens "${MAX_NEW_TOKENS:-200}")
SCORE_OPTS=()
[ "${CAPTIONS:-1}" = 0 ] && SCORE_OPTS+=(--opt captions=false)

ITEMS=${ITEMS:-$OUT_DIR/items_$SPLIT.jsonl}
convert_items "$ITEMS" youcook2 --input "$GOLD"
infer "$ITEMS" "$OUT_DIR/pred_$SPLIT.jsonl" "${ENGINE[@]}" "$@"
score youcook2 "$OUT_DIR/pred_$SPLIT.jsonl" "$GOLD" "$OUT_DIR/results_${SPLIT}_$PROTOCOL.json" \
    --protocol "$PROTOCOL" --split "$SPLIT" ${SCORE_OPTS[@]+"${SCORE_OPTS[@]}"}

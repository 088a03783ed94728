#!/usr/bin/env bash
# QVHighlights highlight detection and moment retrieval: convert -> stream (1 fps, scores only) ->
# held-out tuning + scoring (Moment-DETR HD metrics on 2-s clips, MR metrics on the post-processor's
# highlight windows) -> plots.
#
#   VIDEO_ROOT=/data/qvh/videos ANNO_DIR=/data/qvhighlights CHECKPOINT=... WEIGHTS=... \
#       bash scripts/inference/qvh.sh [extra test.run_benchmark flags]
#
# Required: VIDEO_ROOT (<vid>.mp4, the official 150-s clips), ANNO_DIR with highlight_val_release.jsonl.
# Protocol: FPS=1 (MMDuet's qvh.sh)  scores only  PROTOCOL=official (mean per 2-s clip, every query
#   scored) [reference: sum per 2-s clip, missing queries dropped silently, HD only]. SPLIT=val (test has no labels).
#   MR_WINDOWS=online (default: windows = segments around the online-confirmed peaks of the causally
#   smoothed fused score, best first, at most 10) | offline (the whole-video post-processor) | none (HD only).
set -euo pipefail
BENCH=qvh
. "$(dirname "$0")/_common.sh"
: "${VIDEO_ROOT:?set VIDEO_ROOT to the folder holding <vid>.mp4}"
: "${ANNO_DIR:?set ANNO_DIR to the folder with highlight_val_release.jsonl}"
need_dir "$VIDEO_ROOT" VIDEO_ROOT
SPLIT=${SPLIT:-val}
GOLD=${GOLD:-$ANNO_DIR/highlight_${SPLIT}_release.jsonl}
need_file "$GOLD" "QVHighlights annotation"
PROTOCOL=${PROTOCOL:-official}
if [ "$PROTOCOL" = reference ]; then MR_WINDOWS=${MR_WINDOWS:-none}; else MR_WINDOWS=${MR_WINDOWS:-online}; fi

ENGINE=(--fps "${FPS:-1}" --no_generate)

ITEMS=${ITEMS:-$OUT_DIR/items_$SPLIT.jsonl}
convert_items "$ITEMS" qvh --input "$GOLD"
infer "$ITEMS" "$OUT_DIR/pred_$SPLIT.jsonl" "${ENGINE[@]}" "$@"
score qvh "$OUT_DIR/pred_$SPLIT.jsonl" "$GOLD" "$OUT_DIR/results_${SPLIT}_$PROTOCOL.json" \
    --protocol "$PROTOCOL" --split "$SPLIT" --opt "mr_windows=$MR_WINDOWS"

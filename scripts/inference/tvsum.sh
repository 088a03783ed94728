#!/usr/bin/env bash
# TVSum highlight detection: convert -> stream (1 fps, scores only) -> held-out tuning + scoring -> plots.
#
#   VIDEO_ROOT=/data/tvsum/video ANNO_DIR=/data/tvsum CHECKPOINT=ckpt WEIGHTS=/models/ov-7b \
#       bash scripts/inference/tvsum.sh [extra test.run_benchmark flags]
#
# Required: VIDEO_ROOT (<video_id>.mp4), ANNO_DIR with ydata-tvsum50-anno.tsv, tvsum_anno.json and
#   ydata-tvsum50-info.tsv (or ydata-tvsum50-info.reconstructed.tsv); or INFO / ANNO_TSV / GOLD.
# Protocol (defaults = this project's correct setting; the reference's in brackets):
#   FPS=1 [1]   PROMPT=title [HEAD: ambiguous_reference, hard-coded]   GENERATE=0: scores only
#   [GENERATE=1: --threshold 1 on informative+relevance, generation alters the context, §9 item 19]
#   PROTOCOL=umt (per-annotator UMT top-5 mAP on tvsum_anno.json) [aha: annotator mean, top-50 % labels, anno.tsv]
#   TUNE=kfold (FOLDS=5) [tuned on the evaluated videos: BENCH_ARGS=--tune_on_test]
#   SPLIT: the split name recorded in the results (default "all videos of <gold file name>")
# Shared settings (model, device, cache, tuning, plots): scripts/inference/_common.sh.
set -euo pipefail
BENCH=${BENCH:-tvsum}
ANNO_DIR=${ANNO_DIR:-}
. "$(dirname "$0")/_common.sh"
: "${VIDEO_ROOT:?set VIDEO_ROOT to the folder holding <video_id>.mp4}"
need_dir "$VIDEO_ROOT" VIDEO_ROOT
if [ -z "${INFO:-}" ]; then
  : "${ANNO_DIR:?set ANNO_DIR (TVSum annotation folder) or INFO, ANNO_TSV and GOLD}"
  INFO=$ANNO_DIR/ydata-tvsum50-info.tsv
  [ -f "$INFO" ] || INFO=$ANNO_DIR/ydata-tvsum50-info.reconstructed.tsv
fi
ANNO_TSV=${ANNO_TSV:-$ANNO_DIR/ydata-tvsum50-anno.tsv}
PROTOCOL=${PROTOCOL:-umt}
if [ "$PROTOCOL" = aha ]; then GOLD=${GOLD:-$ANNO_TSV}; else GOLD=${GOLD:-$ANNO_DIR/tvsum_anno.json}; fi
need_file "$INFO" "TVSum info tsv"; need_file "$ANNO_TSV" "TVSum anno tsv"; need_file "$GOLD" "gold file"
PROMPT=${PROMPT:-title}
TAG=${TAG:-$PROMPT}
ITEMS=${ITEMS:-$OUT_DIR/items_$PROMPT.jsonl}

ENGINE=(--fps "${FPS:-1}")
if [ "${GENERATE:-0}" = 1 ]; then
  ENGINE+=(--threshold "${THRESHOLD:-1}" --score_heads "${SCORE_HEADS:-informative,relevance}" --max_new_tokens "${MAX_NEW_TOKENS:-200}")
else
  ENGINE+=(--no_generate)
fi
[ -n "${DEGRADE:-}" ] && ENGINE+=(--degrade "$DEGRADE")

convert_items "$ITEMS" tvsum --input "$INFO" --anno "$ANNO_TSV" --prompt "$PROMPT"
infer "$ITEMS" "$OUT_DIR/pred_$TAG.jsonl" "${ENGINE[@]}" "$@"
# the recorded split: SPLIT when given, else what is true whatever the gold holds (its size: coverage.n_gold)
score "$BENCH" "$OUT_DIR/pred_$TAG.jsonl" "$GOLD" "$OUT_DIR/results_${TAG}_$PROTOCOL.json" \
    --protocol "$PROTOCOL" --split "${SPLIT:-all videos of $(basename "$GOLD")}"

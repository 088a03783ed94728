#!/usr/bin/env bash
# Mr.HiSum highlight detection: convert (test videos you have) -> stream (1 fps, scores only)
# -> held-out tuning + scoring against mr_hisum.h5 -> plots.
#
#   VIDEO_ROOT=/data/hisum/videos ANNO_DIR=/data/hisum HISUM_H5=/data/hisum/mr_hisum.h5 TITLES=titles.tsv \
#       CHECKPOINT=... WEIGHTS=... bash scripts/inference/hisum.sh [extra test.run_benchmark flags]
#
# Required: VIDEO_ROOT (<youtube_id>.mp4), ANNO_DIR with mr_hisum_metadata.csv and mr_hisum_split.json,
#   HISUM_H5 (the ground truth, built with MRHiSum/MR.HiSum), TITLES (video titles; the public
#   metadata has none, see datasets/README.md). MISSING_TITLE=error|skip|empty (default error).
# Protocol: FPS=1 [1]; GENERATE=0 scores only [GENERATE=1: --threshold 1, reference];
#   PROTOCOL=official (5-s segments, KTS+knapsack F1) [aha: 1-s segments; add BENCH_ARGS="--opt lag_one_frame=true"
#   for the reference's off-by-one pairing]; the paper's fixed weights: TUNE=none BENCH_ARGS="--alpha 0 --beta 1 --epsilon 0".
#   TUNE_SPLIT=val_keys: tune on the validation videos (streamed too) instead of k-fold on the test videos.
set -euo pipefail
BENCH=hisum
. "$(dirname "$0")/_common.sh"
: "${VIDEO_ROOT:?set VIDEO_ROOT to the folder holding <youtube_id>.mp4}"
: "${ANNO_DIR:?set ANNO_DIR to the folder with mr_hisum_metadata.csv and mr_hisum_split.json}"
: "${HISUM_H5:?set HISUM_H5 to mr_hisum.h5 (ground truth)}"
need_dir "$VIDEO_ROOT" VIDEO_ROOT
META=${META:-$ANNO_DIR/mr_hisum_metadata.csv}
SPLIT_FILE=${SPLIT_FILE:-$ANNO_DIR/mr_hisum_split.json}
need_file "$META" "Mr.HiSum metadata"; need_file "$SPLIT_FILE" "Mr.HiSum split"; need_file "$HISUM_H5" "HISUM_H5"
TITLE_ARGS=(--missing_title "${MISSING_TITLE:-error}")
[ -n "${TITLES:-}" ] && TITLE_ARGS+=(--titles "$TITLES")
PROTOCOL=${PROTOCOL:-official}

ENGINE=(--fps "${FPS:-1}")
if [ "${GENERATE:-0}" = 1 ]; then
  ENGINE+=(--threshold "${THRESHOLD:-1}" --score_heads "${SCORE_HEADS:-informative,relevance}" --max_new_tokens "${MAX_NEW_TOKENS:-200}")
else
  ENGINE+=(--no_generate)
fi

ITEMS=${ITEMS:-$OUT_DIR/items_test.jsonl}
convert_items "$ITEMS" hisum --input "$META" --split_file "$SPLIT_FILE" --split test_keys \
    --video_root "$VIDEO_ROOT" "${TITLE_ARGS[@]}"
infer "$ITEMS" "$OUT_DIR/pred_test.jsonl" "${ENGINE[@]}" "$@"
if [ -n "${TUNE_SPLIT:-}" ]; then
  convert_items "$OUT_DIR/items_$TUNE_SPLIT.jsonl" hisum --input "$META" --split_file "$SPLIT_FILE" \
      --split "$TUNE_SPLIT" --video_root "$VIDEO_ROOT" "${TITLE_ARGS[@]}"
  infer "$OUT_DIR/items_$TUNE_SPLIT.jsonl" "$OUT_DIR/pred_$TUNE_SPLIT.jsonl" "${ENGINE[@]}" "$@"
  TUNE="pred:$OUT_DIR/pred_$TUNE_SPLIT.jsonl"
fi
score hisum "$OUT_DIR/pred_test.jsonl" "$HISUM_H5" "$OUT_DIR/results_test_$PROTOCOL.json" \
    --protocol "$PROTOCOL" --split test --opt "split_file=$SPLIT_FILE" --opt split_key=test_keys

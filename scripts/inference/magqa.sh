#!/usr/bin/env bash
# Shot2Story-MAGQA: convert -> stream (2 fps, a response whenever informative + relevance > 0.5)
# -> in-span answer score with an LLM judge -> plots.
#
#   VIDEO_ROOT=/data/shot2story/videos MAGQA_JSON=/data/magqa_test.json CHECKPOINT=... WEIGHTS=... \
#   AHA_JUDGE_BASE_URL=... AHA_JUDGE_MODEL=... AHA_JUDGE_API_KEY=... bash scripts/inference/magqa.sh
#
# Required: VIDEO_ROOT (Shot2Story videos), MAGQA_JSON (magqa_test.json from MMDuetIT).
# Judge: JUDGE=openai (an OpenAI-compatible endpoint from AHA_JUDGE_*; default) or JUDGE=hf:/path/to/llm;
#   the judgements are cached in $OUT_DIR/judge_cache.jsonl.
# Protocol = the reference's script, as flags: FPS=2  MAX_FRAMES=400  THRESHOLD=0.5
#   SCORE_HEADS=informative,relevance  --remove_assistant_turns  MAX_NEW_TOKENS=200.
#   Nothing is tuned. The reference's padding to 2000 examples: PROTOCOL=reference.
set -euo pipefail
BENCH=magqa
MAX_FRAMES=${MAX_FRAMES:-400}
. "$(dirname "$0")/_common.sh"
: "${VIDEO_ROOT:?set VIDEO_ROOT to the Shot2Story video folder}"
: "${MAGQA_JSON:?set MAGQA_JSON to magqa_test.json}"
need_dir "$VIDEO_ROOT" VIDEO_ROOT
need_file "$MAGQA_JSON" "MAGQA json"
PROTOCOL=${PROTOCOL:-in_span}
# the recorded split: SPLIT when given, else the file's (magqa_test.json -> test; another name: the name)
SPLIT_NAME=$(basename "$MAGQA_JSON" .json)
SPLIT=${SPLIT:-${SPLIT_NAME#magqa_}}

ENGINE=(--fps "${FPS:-2}" --threshold "${THRESHOLD:-0.5}" --score_heads "${SCORE_HEADS:-informative,relevance}"
        --remove_assistant_turns --max_new_tokens "${MAX_NEW_TOKENS:-200}")

ITEMS=${ITEMS:-$OUT_DIR/items_test.jsonl}
convert_items "$ITEMS" magqa --input "$MAGQA_JSON"
infer "$ITEMS" "$OUT_DIR/pred_test.jsonl" "${ENGINE[@]}" "$@"
score magqa "$OUT_DIR/pred_test.jsonl" "$MAGQA_JSON" "$OUT_DIR/results_test_$PROTOCOL.json" \
    --protocol "$PROTOCOL" --split "$SPLIT" --opt "judge=${JUDGE:-openai}" --opt "judge_cache=$OUT_DIR/judge_cache.jsonl"

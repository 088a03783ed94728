# Sourced by scripts/inference/<benchmark>.sh: the model flags, the three steps and their files.
#
# Every path comes from the environment (or the calling script's arguments), never from this file:
#   OUT_DIR        outputs of this benchmark (default outputs/<benchmark>)
#   MODEL_CONFIG   preset name or .json (default aha-7b); WEIGHTS backbone folder; CHECKPOINT Aha! checkpoint
#   TOKENIZER      tokenizer folder (default: the checkpoint's / weights')
#   DEVICE         cuda | cpu | cuda:N (default: cuda when torch sees one); DTYPE bf16 | fp16 | fp32
#                  (default bf16 on cuda); ATTN sdpa | flash_attention_2 | eager
#   PROMPT_ORDER   training (default) | reference (the released weights' token order: query turn first)
#   CACHE_POLICY   sink (default: the standard SinkCache's 2048/32 budget, system turn and queries protected) |
#                  sink_reference (the reference's SinkCache as it ran) | dynamic_sink | sliding | unbounded
#   TUNE FOLDS GRID UNCERTAINTY_KIND MISSING   held-out tuning and scoring (test.benchmark)
#   COVERAGE_CHECK auto (default) | probe | exists | none: the coverage summary printed before a run
#   PLOTS          items to plot (default 5; 0 = none)
#   FEATURES       a feature cache (scripts/extract_features.py --items ITEMS --kind frame_embeds, same model
#                  and fps): streamed instead of decoding the videos (test.run_benchmark --features)
#   CONVERT_ARGS / INFER_ARGS / BENCH_ARGS   extra flags for datasets/convert.py / test.run_benchmark /
#                  test.benchmark (word-split), e.g. CONVERT_ARGS="--video_template {youtube_id}.mp4"
#   STREAMS        items streamed together in one process, one batched LM forward per step
#                  (test.run_benchmark --streams; default 1)
#   NPROC_PER_NODE processes per node (one per GPU): above 1, test.run_benchmark runs under torchrun, each
#                  rank streams its share of the items into its own file, rank 0 merges them into the
#                  prediction file (default 1: no launcher). A dead rank: re-run the same command.
#   TORCHRUN_ARGS  torchrun's flags for several nodes (word-split), e.g. "--nnodes 2 --node_rank 0
#                  --rdzv_backend c10d --rdzv_endpoint HOST:29400" (default --standalone: one node)
#   PYTHON         the interpreter (default: python)
# Extra command-line arguments of the benchmark script go to test.run_benchmark.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=${TOKENIZERS_PARALLELISM:-false}
PY=${PYTHON:-python}

die() { echo "$(basename "$0"): $*" >&2; exit 2; }
need_file() { [ -f "$1" ] || die "$2 not found: $1"; }
need_dir() { [ -d "$1" ] || die "$2 is not a folder: $1"; }

OUT_DIR=${OUT_DIR:-outputs/$BENCH}
mkdir -p "$OUT_DIR"
SEED=${SEED:-0}
MODEL_CONFIG=${MODEL_CONFIG:-aha-7b}
if [ -z "${DEVICE:-}" ]; then
  DEVICE=$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
fi
if [ -z "${DTYPE:-}" ] && [ "${DEVICE%%:*}" = cuda ]; then DTYPE=bf16; fi
if [ "$MODEL_CONFIG" != aha-tiny ] && [ -z "${WEIGHTS:-}" ] && [ -z "${CHECKPOINT:-}" ]; then
  die "MODEL_CONFIG=$MODEL_CONFIG needs WEIGHTS (backbone folder) and CHECKPOINT (Aha! checkpoint); see instructions/models.md"
fi
MODEL_ARGS=(--model_config "$MODEL_CONFIG" --device "$DEVICE")
[ -n "${WEIGHTS:-}" ] && MODEL_ARGS+=(--weights "$WEIGHTS")
[ -n "${CHECKPOINT:-}" ] && MODEL_ARGS+=(--checkpoint "$CHECKPOINT")
[ -n "${TOKENIZER:-}" ] && MODEL_ARGS+=(--tokenizer "$TOKENIZER")
[ -n "${DTYPE:-}" ] && MODEL_ARGS+=(--dtype "$DTYPE")
[ -n "${ATTN:-}" ] && MODEL_ARGS+=(--attn "$ATTN")
MODEL_ARGS+=(--prompt_order "${PROMPT_ORDER:-training}" --cache_policy "${CACHE_POLICY:-sink}")
[ -n "${WINDOW:-}" ] && MODEL_ARGS+=(--window "$WINDOW")
[ -n "${SINK_TOKENS:-}" ] && MODEL_ARGS+=(--sink_tokens "$SINK_TOKENS")
[ -n "${MAX_FRAMES:-}" ] && MODEL_ARGS+=(--max_frames "$MAX_FRAMES")

# convert ITEMS ARGS...: write the items file once (kept across runs: the template draw is seeded)
convert_items() {
  local items=$1; shift
  if [ -f "$items" ]; then
    echo "items: $items (exists; delete it to convert again)"
  else
    # shellcheck disable=SC2086
    "$PY" "$ROOT/datasets/convert.py" "$@" --seed "$SEED" --output "$items" ${CONVERT_ARGS:-}
  fi
}

# print_coverage ITEMS: how many items have a valid video under VIDEO_ROOT (python -m data.coverage;
# COVERAGE_CHECK=auto: trust the download manifest for unchanged files, probe the others | probe | exists | none)
print_coverage() {
  [ "${COVERAGE_CHECK:-auto}" = none ] && return 0
  "$PY" -m data.coverage --items "$1" --video_root "$VIDEO_ROOT" --check "${COVERAGE_CHECK:-auto}" \
    || echo "$(basename "$0"): coverage of $1 could not be computed" >&2
}

# infer ITEMS PRED ENGINE_FLAGS...: print the coverage, then stream every item (resumable)
infer() {
  local items=$1 pred=$2; shift 2
  print_coverage "$items"
  local feature_args=() launch=("$PY")
  [ -n "${FEATURES:-}" ] && feature_args+=(--features "$FEATURES")
  [ -n "${STREAMS:-}" ] && feature_args+=(--streams "$STREAMS")
  if [ "${NPROC_PER_NODE:-1}" != 1 ] || [ -n "${TORCHRUN_ARGS:-}" ]; then
    # shellcheck disable=SC2206
    launch=("$PY" -m torch.distributed.run --nproc_per_node "${NPROC_PER_NODE:-1}" ${TORCHRUN_ARGS:---standalone})
  fi
  # shellcheck disable=SC2086
  "${launch[@]}" -m test.run_benchmark --items "$items" --video_root "$VIDEO_ROOT" --output "$pred" \
      "${MODEL_ARGS[@]}" ${feature_args[@]+"${feature_args[@]}"} "$@" ${INFER_ARGS:-}
}

# score DATASET PRED GOLD RESULTS BENCH_FLAGS...: held-out tuning, scoring, results record, plots
score() {
  local dataset=$1 pred=$2 gold=$3 results=$4; shift 4
  local tune_args=()
  [ -n "${TUNE:-}" ] && tune_args+=(--tune "$TUNE")
  [ -n "${UNCERTAINTY_KIND:-}" ] && tune_args+=(--uncertainty_kind "$UNCERTAINTY_KIND")
  # shellcheck disable=SC2086
  "$PY" -m test.benchmark --dataset "$dataset" --pred "$pred" --gold "$gold" --out "$results" \
      --folds "${FOLDS:-5}" --tune_seed "$SEED" --grid "${GRID:-default}" --missing "${MISSING:-drop}" \
      ${tune_args[@]+"${tune_args[@]}"} "$@" ${BENCH_ARGS:-}
  if [ "${PLOTS:-5}" -gt 0 ]; then
    bash "$ROOT/scripts/visualize/plot_benchmark.sh" "$results" "" "${PLOTS:-5}"
  fi
}

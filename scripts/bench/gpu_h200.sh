#!/usr/bin/env bash
# The GPU rows of instructions/performance.md in one run (one lease of a GPU machine):
#   1. stream_latency: the 7B (random init, bf16), one stream, compiled, frame and file (K = 8) mode;
#   2. scale_out: the 7B, N = 1..32 streams in one process, score-only (frame tokens, no vision);
#   3. frame_breakdown: vision alone, LM step alone (compiled, eager), whole step, and a cProfile;
#   4. kernel_profile: a torch.profiler trace per mode (live frame, K-frame block, vision, N-lane batch),
#      kernels by kind and the device's busy / idle time per step (compiled; PROFILE_EAGER=1 adds eager).
# STAGES (default 1,2,3,4) picks the stages; MODES the stage-1 modes; SCALE_COMPILE=1 compiles stage 2's step;
# SPLIT_ROWS (default auto) the multi-stream split rule(s) of stage 2, e.g. none,auto,0 to compare.
# Carry .whl and .devcarry (bash scripts/bench/prepare_gpu_carry.sh makes them). The next lease (15 min):
#   STAGES=4,2 STREAMS=1,16 SPLIT_ROWS=none,auto,0 AHA_REVISION=<commit> OUT=$OUT bash scripts/bench/gpu_h200.sh
# Each stage has its own time limit and writes its JSON and log under $OUT, so a stage that fails or
# runs out of time leaves the other's numbers. On CPU it runs the same path at toy size:
#   PRESET=aha-tiny DEVICE=cpu DTYPE=fp32 FRAMES=120 ITEMS=8 STREAMS=1,2 PROF_STREAMS=2 OUT=/tmp/g bash scripts/bench/gpu_h200.sh
# The GPU machine's image has its own torch; the project's locked transformers & co. travel as wheels
# in .whl (see instructions/performance.md) and are put first on PYTHONPATH when present.
set -u
OUT=${OUT:-outputs/bench/gpu}
PRESET=${PRESET:-aha-7b}; DEVICE=${DEVICE:-cuda}; DTYPE=${DTYPE:-bf16}
FRAMES=${FRAMES:-1200}; STREAMS=${STREAMS:-1,2,4,8,16,32}; ITEMS=${ITEMS:-64}
TOK=${TOK:-.devcarry/qwen2}
T_STREAM=${T_STREAM:-300}; T_SCALE=${T_SCALE:-240}; T_BREAK=${T_BREAK:-150}; T_PROF=${T_PROF:-240}; STAGES=${STAGES:-1,2,3,4}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT"
if [ "${WHEELS:-1}" = 1 ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
{
  date -u; echo "revision ${AHA_REVISION:-?}"
  $PY -c "import torch, transformers, platform; print('python', platform.python_version(), 'torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no gpu')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
} 2>&1 | tee "$OUT/env.txt"
stage() {  # stage N LIMIT LOG cmd...: run cmd under a time limit if N is in STAGES, log its status
  local n=$1 limit=$2 log=$3; shift 3
  [[ ,$STAGES, == *,$n,* ]] || return 0
  local t0=$(date +%s)
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$log"
  echo "stage $n: rc ${PIPESTATUS[0]} in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/env.txt"
}
stage 1 "$T_STREAM" stream.log $PY scripts/bench/stream_latency.py --preset "$PRESET" --device "$DEVICE" --dtype "$DTYPE" \
  --compile --tokenizer "$TOK" --policies sink --modes "${MODES:-frame,file}" --frames "$FRAMES" --out "$OUT/stream_7b.json"
stage 2 "$T_SCALE" scale.log $PY scripts/bench/scale_out.py --preset "$PRESET" --device "$DEVICE" --dtype "$DTYPE" \
  --tokenizer "$TOK" --streams "$STREAMS" --procs 1 --reps 1 --items "$ITEMS" --split_rows "${SPLIT_ROWS:-auto}" \
  ${SCALE_COMPILE:+--compile} --out "$OUT/scale_7b${SCALE_COMPILE:+_compiled}.json"
stage 3 "$T_BREAK" breakdown.log $PY scripts/bench/frame_breakdown.py --preset "$PRESET" --device "$DEVICE" \
  --dtype "$DTYPE" --tokenizer "$TOK" --out "$OUT/breakdown_7b.json"
stage 4 "$T_PROF" kernels.log $PY scripts/bench/kernel_profile.py --preset "$PRESET" --device "$DEVICE" --dtype "$DTYPE" \
  --tokenizer "$TOK" --compile --streams "${PROF_STREAMS:-16}" --out "$OUT/kernels_7b.json"
if [ "${PROFILE_EAGER:-0}" = 1 ]; then
  stage 4 "$T_PROF" kernels_eager.log $PY scripts/bench/kernel_profile.py --preset "$PRESET" --device "$DEVICE" \
    --dtype "$DTYPE" --tokenizer "$TOK" --modes frame,batch --streams "${PROF_STREAMS:-16}" --out "$OUT/kernels_7b_eager.json"
fi

#!/usr/bin/env bash
# Prepare what a GPU lease needs beside the working tree (run here, where the package registry is
# reachable; the GPU machine reaches nothing): the project's locked transformers & co. as wheels for
# the machine image's Python in .whl/, and the Qwen2 tokenizer in .devcarry/qwen2. Both are ignored by
# git; pass them to the device tool as carry paths: [".whl", ".devcarry"].
#   bash scripts/bench/prepare_gpu_carry.sh            # PY_VERSION=3.12 (the H200 image's Python)
# Versions come from requirements.lock, so the GPU numbers run the same library code as the tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY_VERSION=${PY_VERSION:-3.12}
PACKAGES="transformers huggingface-hub tokenizers peft accelerate httpx2 httpcore2 kernels hf-xet click regex truststore tomlkit idna"
TOKENIZER=${TOKENIZER:-../shared/data/tokenizers/qwen2}
specs=()
for p in $PACKAGES; do
  line=$(grep -iE "^${p}==" requirements.lock || true)
  [ -n "$line" ] || { echo "prepare_gpu_carry: $p is not pinned in requirements.lock" >&2; exit 2; }
  specs+=("$line")
done
mkdir -p .whl
python -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform any \
  -d .whl "${specs[@]}"
[ -d "$TOKENIZER" ] || { echo "prepare_gpu_carry: no tokenizer folder at $TOKENIZER" >&2; exit 2; }
mkdir -p .devcarry
rm -rf .devcarry/qwen2 && cp -r "$TOKENIZER" .devcarry/qwen2
grep -q '^/.devcarry/$' .gitignore || echo "warning: .devcarry/ is not in .gitignore" >&2
ls .whl; du -sh .whl .devcarry

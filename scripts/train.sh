#!/usr/bin/env bash
# Multi-GPU (and multi-node) training with the reference recipe (aha_reference.md 3): torchrun +
# DeepSpeed ZeRO-2 with optimizer offload, bf16, LoRA r16/a32, lr 2e-5 cosine with 5 % warm-up,
# 1 epoch, micro-batch 1 x 2 accumulation steps per GPU, a checkpoint every 25 steps.
#
#   WEIGHTS=/models/llava-onevision-qwen2-7b-ov DATA_ROOT=/data/aha OUTPUT_DIR=outputs/aha \
#       bash scripts/train.sh [more train.py arguments, which override the ones below]
#
# Environment (defaults in brackets):
#   WEIGHTS        local LLaVA-OneVision weights folder (required)
#   DATA_ROOT      root of the dataset config's relative paths (required)
#   OUTPUT_DIR     [outputs/aha]            TOKENIZER [$WEIGHTS]          PRESET [aha-7b]
#   DATASET_CONFIG [configs/datasets/aha_config.json]
#   DS_CONFIG      [configs/deepspeed/zero2_offload.json]; "none" trains with plain DDP
#   NPROC_PER_NODE [number of visible GPUs]  NNODES [1]  NODE_RANK [0]
#   MASTER_ADDR    [127.0.0.1]              MASTER_PORT [29506]
#   REPORT_TO      [wandb] (WANDB_MODE=offline works without network), tensorboard or none
set -euo pipefail
cd "$(dirname "$0")/.."
: "${WEIGHTS:?set WEIGHTS to the local LLaVA-OneVision weights folder}"
: "${DATA_ROOT:?set DATA_ROOT to the folder holding the datasets of the mixture}"
OUTPUT_DIR=${OUTPUT_DIR:-outputs/aha}
TOKENIZER=${TOKENIZER:-$WEIGHTS}
PRESET=${PRESET:-aha-7b}
DATASET_CONFIG=${DATASET_CONFIG:-configs/datasets/aha_config.json}
DS_CONFIG=${DS_CONFIG:-configs/deepspeed/zero2_offload.json}
if [ -z "${NPROC_PER_NODE:-}" ]; then
  NPROC_PER_NODE=$(python -c "import torch; print(max(torch.cuda.device_count(), 1))")
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29506}
REPORT_TO=${REPORT_TO:-wandb}
DS_ARGS=()
if [ "$DS_CONFIG" != "none" ]; then
  DS_ARGS=(--deepspeed "$DS_CONFIG")
fi
mkdir -p "$OUTPUT_DIR"
torchrun --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$NPROC_PER_NODE" \
    --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
  train.py \
    --preset "$PRESET" --weights "$WEIGHTS" --tokenizer "$TOKENIZER" \
    --dataset_config "$DATASET_CONFIG" --data_root "$DATA_ROOT" \
    "${DS_ARGS[@]}" --bf16 true --tf32 true \
    --num_train_epochs 1 --per_device_train_batch_size 1 --gradient_accumulation_steps 2 \
    --activation_checkpointing true \
    --learning_rate 2e-5 --optim adamw_torch --lr_scheduler_type cosine --warmup_steps 0.05 --max_grad_norm 1.0 \
    --save_strategy steps --save_steps 25 --save_total_limit 5 \
    --dataloader_num_workers 4 --logging_steps 1 --report_to "$REPORT_TO" \
    --output_dir "$OUTPUT_DIR" "$@" 2>&1 | tee -a "$OUTPUT_DIR/train.log"

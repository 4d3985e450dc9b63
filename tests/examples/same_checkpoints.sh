#!/usr/bin/env bash
# Trains twice with the given train_gpt flags in two fresh directories, once per thread count given, and
# checks that the two checkpoints are byte for byte the same (weights, AdamW state, RNG states, metadata).
# usage: same_checkpoints.sh TRAIN_GPT WORK_DIR THREADS_A THREADS_B [train_gpt flags...]
set -euo pipefail
train_gpt="$1" work="$2" threads_a="$3" threads_b="$4"
shift 4
rm -rf "$work"
for run in a b; do
  threads="$threads_a"
  [ "$run" = b ] && threads="$threads_b"
  "$train_gpt" --out_dir "$work/$run" --threads "$threads" "$@" > "$work.$run.log" 2>&1 ||
    { echo "train_gpt failed (run $run, --threads $threads):"; cat "$work.$run.log"; exit 1; }
done
if cmp "$work/a/ckpt.safetensors" "$work/b/ckpt.safetensors"; then
  echo "identical checkpoints: --threads $threads_a and --threads $threads_b"
else
  echo "checkpoints differ between --threads $threads_a and --threads $threads_b"
  exit 1
fi

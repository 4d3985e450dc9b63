#!/usr/bin/env bash
# Writes the seed corpus of fuzz/checkpoint_fuzz.cpp into fuzz/corpus-checkpoint/: real train_gpt
# checkpoints of two tiny models (4 and 15 KB, with and without biases), so that the fuzzer starts from
# valid files and reaches every check by mutating one field.
# usage: fuzz/make_checkpoint_seeds.sh [build dir holding examples/train_gpt, default build]
set -euo pipefail
cd "$(dirname "$0")/.."
train_gpt="${1:-build}/examples/train_gpt"
out=fuzz/corpus-checkpoint
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
for _ in $(seq 50); do printf 'abcab cba '; done > "$work/text.txt"
n=0
for flags in "--n_layer 1 --n_embd 2 --n_head 1" "--n_layer 2 --n_embd 4 --n_head 2 --bias true"; do
  n=$((n + 1))
  # shellcheck disable=SC2086  # the flags are word-split on purpose
  "$train_gpt" --data "$work/text.txt" $flags --block_size 4 --batch_size 2 --max_iters 2 --eval_interval 2 \
    --eval_iters 1 --sample_chars 0 --threads 1 --out_dir "$work/run$n" > /dev/null
  cp "$work/run$n/ckpt.safetensors" "$out/train_gpt_$n.safetensors"
done
ls -l "$out"

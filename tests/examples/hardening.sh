#!/usr/bin/env bash
# Hostile and careless use of the example programs, one scenario per call; each needs files or a shell
# feature (FIFOs, ulimit, dead processes) that a plain "rejects this flag" test cannot set up.
# usage: hardening.sh CASE BIN_DIR WORK_DIR CORPUS
# Each case prints what it checked and exits non-zero with the programs' output when a check fails.
set -uo pipefail
case_name="$1" bin="$2" work="$3" corpus="$4"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
head -c 20000 "$corpus" > small.txt
tiny=(--data small.txt --n_layer 1 --n_embd 16 --n_head 2 --block_size 16 --batch_size 4 --eval_iters 2
      --sample_chars 0 --threads 1)

fail() { echo "FAIL: $*"; [ -f out.log ] && cat out.log; exit 1; }
# The checkpoint's iteration, read off its header (the JSON is plain text at the start of the file).
ckpt_iter() { head -c 4096 "$1" | grep -ao '"iter":"[0-9]*"' | grep -o '[0-9][0-9]*'; }

case "$case_name" in
fresh_run_keeps_checkpoint)  # a fresh run in a directory holding a checkpoint used to overwrite it
  "$bin/train_gpt" "${tiny[@]}" --out_dir run --max_iters 10 --eval_interval 5 > out.log 2>&1 || fail "first run"
  cp run/ckpt.safetensors before.safetensors
  "$bin/train_gpt" "${tiny[@]}" --out_dir run --max_iters 5 > out.log 2>&1 && fail "a fresh run replaced the checkpoint"
  grep -q "run/ckpt.safetensors already exists: continue it with --resume, or replace it with --overwrite" out.log ||
    fail "message"
  cmp -s before.safetensors run/ckpt.safetensors || fail "the checkpoint changed"
  "$bin/train_gpt" "${tiny[@]}" --out_dir run --max_iters 5 --overwrite > out.log 2>&1 || fail "--overwrite"
  [ "$(ckpt_iter run/ckpt.safetensors)" = 5 ] || fail "--overwrite did not start afresh"
  echo "refused without --overwrite, checkpoint untouched; replaced with --overwrite" ;;

diverged_run_keeps_last_good)  # a NaN evaluation used to be saved and called "the last good checkpoint"
  for interval in 1 3 5; do
    "$bin/train_gpt" "${tiny[@]}" --out_dir "nan$interval" --learning_rate 1e6 --eval_interval "$interval" \
      --max_iters 30 > out.log 2>&1
    status=$?
    [ "$status" = 2 ] || fail "--eval_interval $interval: exit $status, expected 2 (diverged)"
    line=$(grep "training stopped at iter" out.log) || fail "no divergence message"
    if kept=$(grep -o "from iter [0-9]*, is kept at [^ ]*" <<<"$line"); then
      iter=$(awk '{print $3}' <<<"${kept//,/}") file=$(awk '{print $NF}' <<<"$kept")
      [ "$(ckpt_iter "$file")" = "$iter" ] || fail "message names iter $iter, the file holds $(ckpt_iter "$file")"
      # The kept checkpoint loads (finite weights) and generates.
      "$bin/sample" --out_dir "nan$interval" --max_new_tokens 5 > /dev/null 2>>out.log || fail "kept checkpoint unusable"
      echo "--eval_interval $interval: kept iter $iter, loadable"
    else
      grep -q "no checkpoint was written by this run" <<<"$line" || fail "message: $line"
      [ ! -e "nan$interval/ckpt.safetensors" ] || fail "a checkpoint exists though the message says none"
      echo "--eval_interval $interval: none written, and the message says so"
    fi
  done ;;

fifo_checkpoint_does_not_hang)  # open() on a FIFO used to block forever
  mkdir fifo && mkfifo fifo/ckpt.safetensors && mkfifo data.fifo
  for cmd in "sample --out_dir fifo" "sample --import fifo/ckpt.safetensors" "export_gpt --out_dir fifo" \
             "train_gpt ${tiny[*]} --out_dir fifo --resume" "train_gpt --data data.fifo --out_dir x"; do
    read -ra argv <<<"$cmd"
    timeout 20 "$bin/${argv[0]}" "${argv[@]:1}" > out.log 2>&1
    status=$?
    [ "$status" = 124 ] && fail "$cmd hangs"
    [ "$status" != 0 ] && [ "$status" -lt 128 ] || fail "$cmd: exit $status"
    grep -q "is a FIFO, not a regular file" out.log || fail "$cmd: message"
  done
  echo "every program refuses a FIFO at once" ;;

file_size_limit_is_a_clear_error)  # SIGXFSZ used to kill train_gpt silently mid-write
  (ulimit -f 20; exec "$bin/train_gpt" --data small.txt --n_layer 1 --n_embd 64 --n_head 2 --block_size 16 \
    --batch_size 4 --eval_iters 2 --sample_chars 0 --threads 1 --out_dir big --max_iters 10 --eval_interval 5) > out.log 2>&1
  status=$?
  [ "$status" -ge 128 ] && fail "killed by a signal (exit $status)"
  [ "$status" != 0 ] || fail "succeeded under ulimit -f 20"
  grep -q "cannot write 'big/ckpt.safetensors'.*File too large" out.log || fail "message"
  ls big | grep -q "tmp" && fail "a temporary file was left"
  echo "exit $status with: $(grep -o "cannot write.*" out.log)" ;;

resume_checks_the_checkpoint_block_size)  # the start-up check used the command line's --block_size
  for _ in $(seq 400); do printf 'abcdefgh'; done > long.txt
  for _ in $(seq 12); do printf 'abcdefgh'; done > short.txt  # val split: 10 tokens
  "$bin/train_gpt" --data long.txt --n_layer 1 --n_embd 16 --n_head 2 --block_size 16 --batch_size 4 --eval_iters 2 \
    --sample_chars 0 --out_dir r --max_iters 4 > out.log 2>&1 || fail "first run"
  "$bin/train_gpt" --data short.txt --out_dir r --resume --max_iters 8 --eval_iters 2 --sample_chars 0 > out.log 2>&1 &&
    fail "resumed on a val split shorter than the checkpoint's block size"
  grep -q "block_size 16 is longer than the val split (10 tokens) of short.txt" out.log || fail "message"
  grep -q "resumed from" out.log && fail "trained before refusing"
  "$bin/train_gpt" --data long.txt --out_dir r --resume --n_layer 2 --n_embd 32 --max_iters 8 > out.log 2>&1 &&
    fail "shape flags differing from the checkpoint were accepted"
  grep -q -- "--n_layer 2 (checkpoint: 1), --n_embd 32 (checkpoint: 16)" out.log || fail "message for shape flags"
  echo "refused before training, naming the checkpoint's block size and each differing flag" ;;

export_refuses_to_overwrite_inputs)
  "$bin/train_gpt" "${tiny[@]}" --out_dir e --max_iters 2 --eval_interval 2 > out.log 2>&1 || fail "train"
  cp e/ckpt.safetensors before.safetensors
  "$bin/export_gpt" --out_dir e --output e/ckpt.safetensors > out.log 2>&1 && fail "--output over the checkpoint"
  grep -q -- "--output e/ckpt.safetensors is the training checkpoint" out.log || fail "message (output)"
  "$bin/export_gpt" --out_dir e --output e/m.safetensors --probe e/./m.safetensors > out.log 2>&1 && fail "--probe = --output"
  grep -q -- "is the same file as --output" out.log || fail "message (probe)"
  cmp -s before.safetensors e/ckpt.safetensors || fail "the checkpoint changed"
  echo "refused both" ;;

stale_temporaries_are_removed)  # kill -9 between write and rename leaves ckpt.safetensors.tmp.<pid>
  "$bin/train_gpt" "${tiny[@]}" --out_dir s --max_iters 2 --eval_interval 2 > out.log 2>&1 || fail "train"
  sh -c 'exit 0' & dead=$!
  wait "$dead"
  echo junk > "s/ckpt.safetensors.tmp.$dead"
  echo live > "s/ckpt.safetensors.tmp.$$"  # this script is alive: its temporary must stay
  "$bin/train_gpt" "${tiny[@]}" --out_dir s --resume --max_iters 4 --eval_interval 2 > out.log 2>&1 || fail "resume"
  [ ! -e "s/ckpt.safetensors.tmp.$dead" ] || fail "the dead process's temporary is still there"
  [ -e "s/ckpt.safetensors.tmp.$$" ] || fail "a live process's temporary was removed"
  grep -q "removed 1 temporary checkpoint file left by killed runs" out.log || fail "message"
  echo "dead writer's temporary removed, live one kept" ;;

hostile_out_dir_runs_nothing)  # the loss plot used to paste out_dir into a shell command
  dir="$work/x'; touch $work/PWNED; echo '\$(touch $work/PWNED2)\`touch $work/PWNED3\`"
  "$bin/train_gpt" "${tiny[@]}" --out_dir "$dir" --max_iters 2 --eval_interval 2 > out.log 2>&1 || fail "train"
  ls "$work" | grep -q PWNED && fail "a command in --out_dir ran"
  [ -f "$dir/ckpt.safetensors" ] || fail "no checkpoint in the hostile directory"
  if command -v gnuplot > /dev/null; then [ -s "$dir/loss.png" ] || fail "no loss.png"; fi
  echo "no command ran; checkpoint and plot written into the hostile directory" ;;

*) echo "unknown case $case_name"; exit 2 ;;
esac

#!/usr/bin/env bash
# Usage: mpi_kill_rank.sh MPIEXEC TRAIN_GPT SAMPLE OUT_DIR
# Starts a 2-rank train_gpt, waits for its first checkpoint, kills rank 1 with SIGKILL, and passes when
# the whole job ends soon (no rank left waiting for the dead one), non-zero, with a message naming rank 1,
# and the last checkpoint still loads (sample reads it).
set -u
mpiexec="$1" train_gpt="$2" sample="$3" out="$4"
rm -rf "$out"
log="$out.log"
"$mpiexec" -np 2 --oversubscribe "$train_gpt" --max_iters 1000000 --eval_interval 20 --eval_iters 1 --n_layer 1 \
  --n_embd 32 --n_head 2 --block_size 32 --batch_size 4 --out_dir "$out" --sample_chars 0 >"$log" 2>&1 &
job=$!
fail() { echo "FAIL: $*"; echo "--- job output (last 30 lines):"; tail -30 "$log"; kill -9 "$job" 2>/dev/null; exit 1; }

ranks() {  # this job's train_gpt processes and their ranks (from the environment mpirun gives them)
  for dir in /proc/[0-9]*; do
    tr '\0' ' ' <"$dir/cmdline" 2>/dev/null | grep -qF -- "--out_dir $out " || continue
    r=$(tr '\0' '\n' <"$dir/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
    [ -n "$r" ] && echo "${dir#/proc/} $r"
  done
}
for _ in $(seq 600); do [ -f "$out/ckpt.safetensors" ] && break; sleep 0.1; done
[ -f "$out/ckpt.safetensors" ] || fail "no checkpoint after 60 s"
sleep 0.5  # mid-run: a few more steps, perhaps a checkpoint being written
victim=$(ranks | awk '$2 == 1 {print $1}')
[ -n "$victim" ] || fail "rank 1 not found"
echo "killing rank 1 (pid $victim) at $(grep -o 'iter [0-9]*' "$log" | tail -1)"
kill -9 "$victim"

for _ in $(seq 300); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
kill -0 "$job" 2>/dev/null && fail "the job still runs 30 s after rank 1 died"
wait "$job"
status=$?
[ "$status" -ne 0 ] || fail "the job exited 0"
[ -z "$(ranks)" ] || fail "ranks left running: $(ranks)"
grep -qE "rank 1 .*(signal 9|Killed)" "$log" || fail "no message naming rank 1"
echo "job ended with exit $status: $(grep -E 'rank 1 ' "$log" | head -1)"
"$sample" --out_dir "$out" --prompt "The " --max_new_tokens 20 >"$out.sample" 2>&1 || { cat "$out.sample"; fail "the checkpoint does not load"; }
echo "checkpoint loads: $(grep -o 'iter [0-9]*' "$out.sample" | head -1) $(head -c 60 "$out.sample")"
rm -rf "$out" "$log" "$out.sample"

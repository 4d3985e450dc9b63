#!/usr/bin/env bash
# Usage: expect_mpi_failure.sh SECONDS PATTERN COMMAND...
# Passes when COMMAND (an mpirun job) exits non-zero within SECONDS and its output matches PATTERN (the
# failure it was meant to have, not some other crash). A job still running after SECONDS is the hang
# this guards against: its processes are killed and the test fails. Prints the time the job took.
set -u
limit="$1" pattern="$2"
shift 2
log=$(mktemp)
# A marker in the environment of the job only (mpirun passes it to its ranks), to find and end this job's
# processes if mpirun leaves one behind: killing mpirun alone does not end a rank stuck in a collective.
marker="MINITRAIN_FAILFAST_JOB=$$.$RANDOM"
job_processes() {
  for dir in /proc/[0-9]*; do
    { tr '\0' '\n' <"$dir/environ"; } 2>/dev/null | grep -qxF "$marker" && echo "${dir#/proc/}"
  done
}
start=$(date +%s%N)
env "$marker" "$@" >"$log" 2>&1 &
job=$!
while kill -0 "$job" 2>/dev/null; do
  if [ $(( ($(date +%s%N) - start) / 1000000000 )) -ge "$limit" ]; then
    kill -9 $(job_processes) 2>/dev/null
    echo "FAIL: the job still runs after $limit s (a rank left waiting?)"
    tail -30 "$log"
    rm -f "$log"
    exit 1
  fi
  sleep 0.05
done
wait "$job"
status=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
leftover=$(job_processes)
[ -z "$leftover" ] && left="" || { kill -9 $leftover 2>/dev/null; left="processes left running: $leftover"; }
cat "$log"
grep -qE -- "$pattern" "$log" && matched=1 || matched=0
rm -f "$log"
echo "job ended with exit $status after $((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000))) s"
[ "$status" -ne 0 ] || { echo "FAIL: the job exited 0"; exit 1; }
[ -z "$left" ] || { echo "FAIL: $left"; exit 1; }
[ "$matched" = 1 ] || { echo "FAIL: no line matches '$pattern'"; exit 1; }
exit 0

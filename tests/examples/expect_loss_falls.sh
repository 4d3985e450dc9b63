#!/usr/bin/env bash
# Usage: expect_loss_falls.sh FACTOR COMMAND...
# Runs train_gpt's COMMAND; passes when it exits 0 and its final val loss is below FACTOR times the val loss
# of its first evaluation (iter 0, the untrained model).
set -u
factor="$1"
shift
output=$("$@" 2>&1)
status=$?
if [ "$status" -ne 0 ]; then echo "failed (exit $status): $*"; echo "$output"; exit 1; fi
first=$(grep -oE "iter 0: train loss [0-9.]+, val loss [0-9.]+" <<<"$output" | grep -oE "[0-9.]+$" | head -1)
final=$(grep -oE "final: val loss [0-9.]+" <<<"$output" | grep -oE "[0-9.]+$" | head -1)
if [ -z "$first" ] || [ -z "$final" ]; then echo "no 'iter 0 ... val loss' or 'final: val loss' line:"; echo "$output"; exit 1; fi
if ! awk -v a="$final" -v b="$first" -v f="$factor" 'BEGIN { exit !(a < f * b) }'; then
  echo "the val loss did not fall enough: $first at iter 0, $final at the end (needed below $factor x $first)"
  echo "$output"
  exit 1
fi
echo "val loss $first at iter 0, $final at the end"

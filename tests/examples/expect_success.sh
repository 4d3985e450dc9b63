#!/usr/bin/env bash
# Usage: expect_success.sh PATTERN COMMAND...
# Passes when COMMAND exits 0 and its output (stdout and stderr, lines joined by spaces) matches PATTERN.
# (ctest's PASS_REGULAR_EXPRESSION alone would ignore the exit code, so a run that printed the right
# lines and then crashed, or leaked under the sanitizers, would pass.)
set -u
pattern="$1"
shift
output=$("$@" 2>&1)
status=$?
if [ "$status" -ne 0 ]; then echo "failed (exit $status): $*"; echo "$output"; exit 1; fi
if ! tr '\n' ' ' <<<"$output" | grep -qE -- "$pattern"; then echo "output does not match '$pattern':"; echo "$output"; exit 1; fi
echo "$output" | tail -3

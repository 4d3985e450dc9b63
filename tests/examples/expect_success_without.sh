#!/usr/bin/env bash
# Usage: expect_success_without.sh PATTERN ABSENT COMMAND...
# As expect_success.sh, and the output must not match ABSENT anywhere (a warning that must not appear).
set -u
pattern="$1"
absent="$2"
shift 2
output=$("$@" 2>&1)
status=$?
if [ "$status" -ne 0 ]; then echo "failed (exit $status): $*"; echo "$output"; exit 1; fi
if ! tr '\n' ' ' <<<"$output" | grep -qE -- "$pattern"; then echo "output does not match '$pattern':"; echo "$output"; exit 1; fi
if grep -qE -- "$absent" <<<"$output"; then echo "output matches '$absent', which it must not:"; echo "$output"; exit 1; fi
echo "$output" | tail -3

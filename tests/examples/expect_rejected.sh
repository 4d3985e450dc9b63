#!/usr/bin/env bash
# Usage: expect_rejected.sh PATTERN COMMAND...
# Passes when COMMAND exits non-zero, prints one line matching PATTERN, and does not crash.
set -u
pattern="$1"
shift
output=$("$@" 2>&1)
status=$?
if [ "$status" -eq 0 ]; then echo "accepted (exit 0): $*"; echo "$output"; exit 1; fi
if [ "$status" -ge 128 ]; then echo "crashed (exit $status): $*"; echo "$output"; exit 1; fi
if ! grep -qE -- "$pattern" <<<"$output"; then echo "message does not match '$pattern':"; echo "$output"; exit 1; fi
echo "rejected as expected: $(grep -E -- "$pattern" <<<"$output" | head -1)"

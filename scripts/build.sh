#!/usr/bin/env bash
# Configures and builds minitrain: scripts/build.sh [Release|Debug|Sanitize] [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
type="${1:-Release}"
dir="${2:-build}"
extra=()
if [ "$type" = "Sanitize" ]; then
  type=RelWithDebInfo
  extra+=(-DMINITRAIN_SANITIZE=ON)
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE="$type" "${extra[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"

#!/usr/bin/env bash
# Builds the libFuzzer target for the safetensors reader with clang + ASan + UBSan and runs it over
# fuzz/corpus for a bounded time: scripts/fuzz.sh [seconds, default 60] [build-dir, default build-fuzz]
# Exits non-zero when the fuzzer finds a crash, a sanitizer report, a leak or a hang; the input that caused
# it is written to <build-dir>/artifacts/ (replay: <build-dir>/fuzz/safetensors_fuzz <that file>).
#
# Debian 12 packages: clang-14 (compiler), libclang-rt-14-dev (libFuzzer and the sanitizer runtimes:
# clang-14 only recommends it), libomp-14-dev (OpenMP for clang; core uses it). Installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
dir="${2:-build-fuzz}"

packages=(clang-14 libclang-rt-14-dev libomp-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
CC=clang-14 CXX=clang++-14 cmake -S . -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMINITRAIN_BUILD_FUZZERS=ON -DMINITRAIN_SANITIZE=ON -DMINITRAIN_BUILD_TESTS=OFF -DMINITRAIN_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)" --target safetensors_fuzz

# New inputs go to a scratch directory; the committed seeds are read only.
work="$dir/corpus"
mkdir -p "$work" "$dir/artifacts"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$dir/fuzz/safetensors_fuzz" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "$work" fuzz/corpus

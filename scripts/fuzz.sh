#!/usr/bin/env bash
# Builds the libFuzzer targets with clang + ASan + UBSan and runs each over its seed corpus for a bounded
# time: scripts/fuzz.sh [-j JOBS] [seconds per target, default 60] [build-dir, default build-fuzz]
#   safetensors_fuzz  the safetensors reader            seeds: fuzz/corpus
#   checkpoint_fuzz   the checkpoint loader (metadata, config, tokenizer, restore)  seeds: fuzz/corpus-checkpoint
# Exits non-zero when a fuzzer finds a crash, a sanitizer report, a leak or a hang; the input that caused
# it is written to <build-dir>/artifacts/ (replay: <build-dir>/fuzz/<target> <that file>).
#
# -j JOBS runs JOBS fuzzing processes per target (libFuzzer's fork mode); it is capped by the cores that
# are idle now (nproc minus the 1-minute load average, at least 1), so a busy machine is not oversubscribed.
#
# Debian 12 packages: clang-14 (compiler), libclang-rt-14-dev (libFuzzer and the sanitizer runtimes:
# clang-14 only recommends it), libomp-14-dev (OpenMP for clang; core uses it). Installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=1
if [ "${1:-}" = "-j" ]; then
  jobs="${2:?-j needs a number}"
  shift 2
fi
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: -j must be a positive integer, got '$jobs'"; exit 2; }
seconds="${1:-60}"
dir="${2:-build-fuzz}"
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: seconds must be a positive integer, got '$seconds'"; exit 2; }

idle=$(awk -v cores="$(nproc)" '{ idle = int(cores - $1 + 0.5); print (idle < 1 ? 1 : idle) }' /proc/loadavg)
if [ "$jobs" -gt "$idle" ]; then
  echo "fuzz.sh: $jobs jobs asked, $idle core(s) idle (load $(cut -d' ' -f1 /proc/loadavg)): running $idle"
  jobs=$idle
fi

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
cmake --build "$dir" -j "$(nproc)" --target safetensors_fuzz checkpoint_fuzz

parallel=()
[ "$jobs" -gt 1 ] && parallel=(-fork="$jobs")
mkdir -p "$dir/artifacts"
run() {  # target, max input length, seed corpus
  local target="$1" max_len="$2" seeds="$3"
  # New inputs go to a scratch directory; the committed seeds are read only.
  local work="$dir/corpus-$target"
  mkdir -p "$work"
  echo "== $target: $seconds s, $jobs job(s)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$dir/fuzz/$target" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    "${parallel[@]}" -print_final_stats=1 -artifact_prefix="$dir/artifacts/$target-" "$work" "$seeds"
}
run safetensors_fuzz 4096 fuzz/corpus
run checkpoint_fuzz 16384 fuzz/corpus-checkpoint

#!/usr/bin/env bash
# Installs what minitrain needs from Debian 12 packages, skipping what is already there.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libxtensor-dev xtensor-dev libxtensor-blas-dev libopenblas-dev liblapack-dev
  libspdlog-dev libgtest-dev libcli11-dev nlohmann-json3-dev
  gnuplot-nox
  libopenmpi-dev openmpi-bin
)
missing=()
for p in "${packages[@]}"; do
  # Some names differ between releases (xtensor-dev vs libxtensor-dev): skip what apt does not know.
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then continue; fi
  missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  installable=()
  for p in "${missing[@]}"; do
    if apt-cache show "$p" >/dev/null 2>&1; then installable+=("$p"); fi
  done
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${installable[@]}"
fi

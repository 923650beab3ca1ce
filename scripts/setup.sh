#!/usr/bin/env bash
# Installs what headstart builds with (Debian packages), builds it into build/, and fetches
# the offline ImageNet weights (scripts/fetch-weights.sh). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libjpeg-dev libpng-dev libarchive-dev
          libcjson-dev libopenblas-dev libdnnl-dev libcairo2-dev libssl-dev unzip ca-certificates
          libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
scripts/fetch-weights.sh

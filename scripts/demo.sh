#!/usr/bin/env bash
# The demo: set up, then the transfer-learning job on CIFAR-10 (../shared/data), offline:
# EfficientNet-Lite0 with its real ImageNet weights, frozen, gets a new 10-class head trained
# on 5,000 training images and validated on 1,000 test images for 10 epochs; then the trained
# model is evaluated on all 10,000 test images and predicts a few of them.
# A second run reuses the cached features and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
data=${HEADSTART_DEMO_DATA:-../shared/data/cifar10-jpeg}
out=runs/demo
if [ ! -e "$data" ]; then
  echo "demo: no CIFAR-10 copy at $data (set HEADSTART_DEMO_DATA)" >&2
  exit 1
fi
./build/headstart train "$data" --limit-train 5000 --limit-val 1000 --epochs 10 \
  --out "$out" --overwrite
echo
./build/headstart evaluate "$out" "$data"
echo
# A few test images to predict, taken out of the archive.
samples=$(mktemp -d)
trap 'rm -rf "$samples"' EXIT
tar -xzf "$data/test.tar.gz" -C "$samples" test/cat/0000.jpg test/ship/0001.jpg \
  test/horse/0002.jpg test/airplane/0003.jpg
./build/headstart predict "$out" --top-k 3 "$samples/test"
echo
echo "curves: $out/accuracy.png $out/loss.png; confusion matrix: $out/confusion.png"

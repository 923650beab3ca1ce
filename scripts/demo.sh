#!/usr/bin/env bash
# The demo: set up, then classify 20 labelled ImageNet photos with EfficientNet-Lite0 and its
# real pretrained weights, offline, and say how many it got right.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
./build/headstart backbones
echo
./build/headstart classify --backbone efficientnet_lite0 --top-k 3 weights/foolbox
echo
./build/headstart classify --backbone efficientnet_lite0 --top-k 1 --format csv weights/foolbox |
  awk -F, 'NR > 1 { n++; split($1, p, "_"); sub(/\.jpg$/, "", p[3]); if (p[3] == $3) ok++ }
           END { printf "top-1 right on %d of %d labelled ImageNet images\n", ok, n }'

#!/usr/bin/env bash
# Seeds for fuzz_checkpoint: run folders of tiny real runs (two classes of three test images,
# a random Lite0 backbone at 32 x 32; AdamW for 2 and 3 epochs, SGD with weight decay for 1),
# each packed as the target reads its input: the identity, run.json, model.safetensors and
# checkpoint.safetensors, separated by the target's SEP. Written to fuzz/corpus/checkpoint/;
# the runs' safetensors files also go to fuzz/corpus/safetensors-gen/ for fuzz_safetensors
# (both ignored by git). Needs a built headstart (build/headstart, or $HEADSTART) and python3
# (to read the identity out of the checkpoint's header).
set -euo pipefail
cd "$(dirname "$0")/.."
headstart="${HEADSTART:-build/headstart}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/data/a" "$tmp/data/b" fuzz/corpus/checkpoint fuzz/corpus/safetensors-gen
cp tests/fixtures/images/rgb.png tests/fixtures/images/gray.png tests/fixtures/images/rgba.png \
  "$tmp/data/a/"
cp tests/fixtures/images/rgb.jpg tests/fixtures/images/gray.jpg tests/fixtures/images/cmyk.jpg \
  "$tmp/data/b/"
sep=$'\n==headstart-fuzz==\n' # as SEP in fuzz_checkpoint.c

identity() {
  python3 - "$1" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
sys.stdout.write(json.loads(raw[8:8 + n])["__metadata__"]["identity"])
PY
}

run() {
  local name=$1; shift
  "$headstart" train "$tmp/data" --weights none --img-size 32 --val-fraction 0.34 --no-cache \
    --threads 1 --out "$tmp/$name" "$@" >/dev/null 2>&1
  local r="$tmp/$name"
  { identity "$r/checkpoint.safetensors"; printf '%s' "$sep"; cat "$r/run.json"
    printf '%s' "$sep"; cat "$r/model.safetensors"; printf '%s' "$sep"
    cat "$r/checkpoint.safetensors"; } > "fuzz/corpus/checkpoint/$name"
  cp "$r/model.safetensors" "fuzz/corpus/safetensors-gen/$name-model.safetensors"
  cp "$r/checkpoint.safetensors" "fuzz/corpus/safetensors-gen/$name-checkpoint.safetensors"
}

run adamw2 --epochs 2
run adamw3 --epochs 3 --batch-size 2 --seed 7
run sgd1 --epochs 1 --optimizer sgd --weight-decay 0.01
ls -l fuzz/corpus/checkpoint

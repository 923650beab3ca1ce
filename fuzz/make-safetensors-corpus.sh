#!/usr/bin/env bash
# Seeds for fuzz_safetensors in fuzz/corpus/safetensors-gen/ (ignored by git): the committed
# seeds in fuzz/corpus/safetensors/, the test fixtures under 64 KB, and (when
# make-checkpoint-corpus.sh has run) the model and checkpoint files of its tiny runs.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p fuzz/corpus/safetensors-gen
cp fuzz/corpus/safetensors/* fuzz/corpus/safetensors-gen/
find tests/fixtures -name '*.safetensors' -size -64k | while read -r f; do
  cp "$f" "fuzz/corpus/safetensors-gen/$(echo "${f#tests/fixtures/}" | tr / _)"
done
ls fuzz/corpus/safetensors-gen

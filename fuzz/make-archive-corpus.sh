#!/usr/bin/env bash
# Seeds for fuzz_archive: the small archives test_dataset generates (class folders, train/test
# trees, a top-level folder, CIFAR-10 binary, odd names, hidden files), copied into
# fuzz/corpus/archive/ (ignored by git). Run after building the tests in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
./build/tests/test_dataset >/dev/null
mkdir -p fuzz/corpus/archive
find build/tests/tmp/dataset -name '*.tar' -o -name '*.tar.gz' | while read -r f; do
  cp "$f" "fuzz/corpus/archive/$(echo "${f#build/tests/tmp/dataset/}" | tr / _)"
done
ls fuzz/corpus/archive

#!/usr/bin/env bash
# Seeds for fuzz_pth: test_pth's fixtures (both layouts, every dtype, shared storages, nested
# and archive-named zips, the refused globals), copied into fuzz/corpus/pth/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p fuzz/corpus/pth
cp tests/fixtures/pth/*.pth fuzz/corpus/pth/
ls fuzz/corpus/pth

#!/usr/bin/env bash
# Seeds for fuzz_image: the JPEG and PNG fixtures of test_image (every colour type, bit depth,
# interlacing, EXIF orientation, progressive JPEG, truncated files and the pixel bombs) and the
# 65-byte header-only PNGs test_image writes for the aspect-ratio checks (1 x 89,478,485 and
# others), copied into fuzz/corpus/image/ (ignored by git). Run after building the tests in
# build/.
set -euo pipefail
cd "$(dirname "$0")/.."
./build/tests/test_image >/dev/null
mkdir -p fuzz/corpus/image
cp tests/fixtures/images/*.jpg tests/fixtures/images/*.png fuzz/corpus/image/
for f in build/tests/tmp/image/*.png; do cp "$f" "fuzz/corpus/image/header_$(basename "$f")"; done
ls fuzz/corpus/image | wc -l

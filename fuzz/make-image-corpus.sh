#!/usr/bin/env bash
# More seeds for fuzz_image, next to the committed ones in fuzz/corpus/image/ (test_image's
# fixtures): the 65-byte header-only PNGs test_image writes for the aspect-ratio checks
# (1 x 89,478,485, 89,478,485 x 1, 1 x 101, 1 x 100) and the fixtures not committed there,
# as gen_* files (ignored by git). Run after building the tests in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
./build/tests/test_image >/dev/null
mkdir -p fuzz/corpus/image
for f in build/tests/tmp/image/*.png; do cp "$f" "fuzz/corpus/image/gen_header_$(basename "$f")"; done
for f in tests/fixtures/images/*.jpg tests/fixtures/images/*.png; do
  [ -e "fuzz/corpus/image/$(basename "$f")" ] || cp "$f" "fuzz/corpus/image/gen_$(basename "$f")"
done
ls fuzz/corpus/image | wc -l

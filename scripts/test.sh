#!/usr/bin/env bash
# Sets up and runs the test suite (CTest). With --sanitize, also builds and runs every test
# under AddressSanitizer and UndefinedBehaviorSanitizer in build-asan/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# ctest shows a test's output only when it fails: print why each test or part was skipped.
show_skips() { grep -h '^SKIP' "$1/Testing/Temporary/LastTest.log" | sort -u || true; }
ctest --test-dir build --output-on-failure
show_skips build
if [ "${1:-}" = "--sanitize" ]; then
  cmake -S . -B build-asan -DHS_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-asan -j"$(nproc)"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure
  show_skips build-asan
fi

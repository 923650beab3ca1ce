#!/usr/bin/env bash
# Builds headstart against oneDNN 3 as well (src/dnnl_compat.c hides the API differences from
# Debian 12's oneDNN 2.6) and runs the test suite on it in build-onednn3/. oneDNN 3 comes from
# PyPI (onednn-devel-cpu-gomp 2023.2.0 = oneDNN 3.2, built with GNU OpenMP like Debian's) into
# third_party/onednn/; a system oneDNN 3 (Debian 13's libdnnl-dev) builds the same way with
# the plain `cmake -S . -B build`. The CPU-capped copies of the tests (_AVX2, _SSE41) and
# test_mpi run on the default build only: what they check does not depend on the version.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
prefix=$PWD/third_party/onednn
if [ ! -e "$prefix/include/oneapi/dnnl/dnnl.h" ]; then
  echo "test-onednn3: installing oneDNN 3.2 from PyPI into third_party/onednn"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps \
    --prefix "$prefix" onednn-cpu-gomp==2023.2.0 onednn-devel-cpu-gomp==2023.2.0
  # a wheel holds no symbolic links: the library's three names arrive as three copies
  (cd "$prefix/lib" && ln -sf libdnnl.so.3.2 libdnnl.so.3 && ln -sf libdnnl.so.3 libdnnl.so)
fi
cmake -S . -B build-onednn3 -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build build-onednn3 -j"$(nproc)"
ldd build-onednn3/headstart | grep -q 'libdnnl\.so\.3' ||
  { echo "test-onednn3: build-onednn3 does not load oneDNN 3" >&2; exit 1; }
ctest --test-dir build-onednn3 --output-on-failure -E '_AVX2$|_SSE41$|^test_mpi$'

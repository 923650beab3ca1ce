#!/usr/bin/env bash
# Seeds for fuzz_feature_cache, written to fuzz/corpus/feature_cache/ (ignored by git): entry
# bodies (rows, labels, sample indexes, header) and the 40 footer bytes the target reads
# (version, precision, count, dim, header offset, header size), for its 4-image data set
# (labels 0 1 0 1) and its 3-value rows. Valid entries in float32 and half, with and without
# skipped images, and a few that each break one promise (row width, row count, a longer key).
set -euo pipefail
cd "$(dirname "$0")/.."
out=fuzz/corpus/feature_cache
mkdir -p "$out"
python3 - "$out" <<'PY'
import struct, sys
out = sys.argv[1]
KEY = b"format=1\nbackbone=fuzz\n"
LABELS = [0, 1, 0, 1]

def entry(samples, precision=1, dim=3, key=KEY, skipped=(), extra=b""):
    rows = b""
    for s in samples:
        for j in range(dim):
            v = 0.25 * s - 0.5 * j
            rows += struct.pack("<e", v) if precision == 1 else struct.pack("<f", v)
    labels = b"".join(struct.pack("<i", LABELS[s]) for s in samples)
    index = b"".join(struct.pack("<i", s) for s in samples)
    header = key + b"source=fuzz (train)\n" + b"".join(b"skipped=" + n + b"\n" for n in skipped) + extra
    body = rows + labels + index
    fields = struct.pack("<IIQQQQ", 1, precision, len(samples), dim, len(body), len(header))
    return body + header + fields

seeds = {
    "f16_all": entry([0, 1, 2, 3]),
    "f16_skipped": entry([0, 1, 3], skipped=[b"c.png: not an image"]),
    "f32_all": entry([0, 1, 2, 3], precision=0),
    "f32_two_skipped": entry([0, 2], precision=0, skipped=[b"b.png: bad", b"d.png: bad"]),
    "none_readable": entry([], precision=0, skipped=[b"a.png: x", b"b.png: x", b"c.png: x", b"d.png: x"]),
    "wider_rows": entry([0, 1, 2, 3], dim=5),
    "row_missing": entry([0, 1, 3]),
    "longer_key": entry([0, 1, 2, 3], key=KEY + b"extra=1\n"),
    "unknown_line": entry([0, 1, 2, 3], extra=b"other=1\n"),
}
for name, data in seeds.items():
    with open(f"{out}/{name}", "wb") as f:
        f.write(data)
print(" ".join(sorted(seeds)))
PY

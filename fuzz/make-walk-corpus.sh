#!/usr/bin/env bash
# Seeds for fuzz_walk, in fuzz/corpus/walk/ (ignored by git). An input is a list of 3-byte
# operations (kind, a, b) that fuzz_walk.c turns into a tree: kind % 6 picks mkdir, file,
# symlink (two namings), hard link or an odd-named folder; a picks the parent among the nodes
# made so far (0 is the tree itself); b picks the name; for links (kind >> 3) % 5 picks the
# target: ".", "..", a relative path, an absolute path, or nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
out=fuzz/corpus/walk
mkdir -p "$out"
# cat/ and dog/ with images, "-> ." at the top, "-> .." in cat, a relative and an absolute link,
# a dangling link, and a hard link of cat/1.png into dog/
printf '\x00\x00\x00\x00\x00\x01\x01\x01\x00\x01\x01\x01\x01\x02\x08\x02\x00\x00\x08\x01\x00'\
'\x14\x02\x31\x1a\x00\x13\x20\x00\x05\x04\x02\x03' > "$out/classes_loops"
# train/cat, train/dog, val/cat, val/dog with one image each, and val -> train
printf '\x00\x00\x02\x00\x00\x03\x00\x01\x00\x00\x01\x01\x00\x02\x00\x00\x02\x01'\
'\x01\x03\x00\x01\x04\x00\x01\x05\x00\x01\x06\x00\x14\x00\x02' > "$out/train_val"
# a chain of 70 nested folders "d": past the walker's depth limit
seq=''
for i in $(seq 0 69); do seq+=$(printf '\\x00\\x%02x\\x08' "$i"); done
printf "$seq" > "$out/deep"
# a CIFAR-10 folder with batch and meta names, and hidden entries
printf '\x00\x00\x07\x01\x01\x05\x01\x01\x06\x01\x01\x07\x00\x00\x05\x01\x00\x04\x05\x00\x2e' \
  > "$out/cifar_hidden"
# links to links: a -> b -> a, and a file reached by three names
printf '\x00\x00\x00\x01\x01\x00\x02\x01\x03\x03\x01\x13\x1a\x00\x12\x1b\x00\x23\x04\x00\x02' \
  > "$out/link_chains"
ls "$out"

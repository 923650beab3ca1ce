#!/usr/bin/env bash
# More seeds for fuzz_cifar (first byte: class count - 1, then a batch and, read as text, a
# batches.meta.txt), next to the committed two_records and meta: the first records of
# test_dataset's CIFAR-10 batches with 10 and 256 classes, test_dataset's meta file, a
# wrong-sized batch and a meta with CR/LF, blank lines and spaces, as gen_* files in
# fuzz/corpus/cifar/ (ignored by git).
# Run after building the tests in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
./build/tests/test_dataset >/dev/null
src=build/tests/tmp/dataset/cifar/cifar-10-batches-bin
mkdir -p fuzz/corpus/cifar
{ printf '\x09'; head -c 6146 "$src/data_batch_1.bin"; } > fuzz/corpus/cifar/gen_two_records
{ printf '\xff'; head -c 3073 "$src/test_batch.bin"; } > fuzz/corpus/cifar/gen_one_record_256
{ printf '\x09'; head -c 3075 "$src/data_batch_2.bin"; } > fuzz/corpus/cifar/gen_bad_size
{ printf '\x09'; cat "$src/batches.meta.txt"; } > fuzz/corpus/cifar/gen_meta
printf '\x02cat\r\n\n  dog  \nbird' > fuzz/corpus/cifar/gen_meta_crlf
ls fuzz/corpus/cifar

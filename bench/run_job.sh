#!/bin/sh
# Benchmark 2: the 10-epoch frozen-backbone job (EfficientNet-Lite0, new Linear head, SGD
# lr 0.001 momentum 0.9, batch 32) on a CIFAR-10 subset, headstart against the classic PyTorch
# loop (bench/job_pytorch.py), side by side from one run. See bench/README.md.
# Usage: bench/run_job.sh [--train N] [--test M] [--threads T] [--epochs E] [--full] [--skip-pytorch]
#        (defaults 1000, 500, 2, 10; --full = --train 50000 --test 10000)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
data=$root/../shared/data/cifar10-jpeg
train=1000; test=500; threads=2; epochs=10; pytorch=1
while [ $# -gt 0 ]; do
    case $1 in
        --train) train=$2; shift ;;
        --test) test=$2; shift ;;
        --threads) threads=$2; shift ;;
        --epochs) epochs=$2; shift ;;
        --full) train=50000; test=10000 ;;
        --skip-pytorch) pytorch=0 ;;
        *) echo "usage: $0 [--train N] [--test M] [--threads T] [--epochs E] [--full] [--skip-pytorch]" >&2
           exit 2 ;;
    esac
    shift
done
build=$root/build-fast
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=$threads  # both tools get the same cores
now() { date +%s.%N; }

# The same images for both tools: the first train/10 and test/10 files of each class in sorted
# name order, hard-linked into SUBSET/{train,test}/<class>/ (ImageFolder layout for both).
tar -xzf "$data/train.tar.gz" -C "$tmp"
tar -xzf "$data/test.tar.gz" -C "$tmp"
subset=$tmp/subset
for split in train test; do
    eval "count=\$$split"
    for dir in "$tmp/$split"/*/; do
        class=$(basename "$dir")
        mkdir -p "$subset/$split/$class"
        ls "$dir" | LC_ALL=C sort | head -n $((count / 10)) |
            (cd "$dir" && xargs ln -t "$subset/$split/$class")
    done
done
ntrain=$(find "$subset/train" -type f | wc -l); ntest=$(find "$subset/test" -type f | wc -l)
echo "images: $ntrain train, $ntest test, $epochs epochs, $threads threads"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$threads" --target headstart_cli bench_forward >/dev/null

# The cache lives in the temporary folder: the first run is cold, the second reads it.
cache="--cache-dir $tmp/cache"
hs_run() {  # hs_run NAME: one headstart job into $tmp/run-NAME, prints its wall seconds
    t=$(now)
    # shellcheck disable=SC2086  # $cache is two words
    "$build/headstart" train "$subset" --backbone efficientnet_lite0 --optimizer sgd --lr 0.001 \
        --momentum 0.9 --batch-size 32 --epochs "$epochs" --threads "$threads" --seed 0 $cache \
        --out "$tmp/run-$1" > "$tmp/hs-$1.log" 2>&1 || { cat "$tmp/hs-$1.log" >&2; exit 1; }
    cp "$tmp/hs-$1.log" "$root/build-fast/job-hs-$1.log"  # kept for a look after the run
    echo "$(now) $t" | awk '{printf "%.2f", $1 - $2}'
}
last_val_acc() { tail -n 1 "$tmp/run-$1/metrics.csv" | cut -d, -f5; }
cold_s=$(hs_run cold); cold_acc=$(last_val_acc cold)
echo "headstart cold: ${cold_s} s, test acc ${cold_acc} %"
warm_s=$(hs_run warm); warm_acc=$(last_val_acc warm)
echo "headstart warm: ${warm_s} s, test acc ${warm_acc} %"

# The floor: one forward pass of the backbone over every image (train + test), at the batch
# size the job uses; nothing can train the head on these images faster than this.
ips=$("$build/bench/bench_forward" --threads "$threads" --batches 32 --reps 2 \
      --nets efficientnet_lite0 | awk '{print $3}')
floor_s=$(awk -v n=$((ntrain + ntest)) -v ips="$ips" 'BEGIN {printf "%.2f", n / ips}')
echo "floor: $ips img/s forward -> ${floor_s} s"

pt_s=-; pt_acc=-
if [ "$pytorch" = 1 ]; then
    "${HEADSTART_BENCH_PYTHON:-$root/.venv-bench/bin/python}" "$root/bench/job_pytorch.py" --data "$subset" --epochs "$epochs" \
        --batch-size 32 --lr 0.001 --momentum 0.9 --threads "$threads" --seed 0 | tee "$tmp/pt.log"
    pt_s=$(sed -n 's/^RESULT wall_s=\([^ ]*\) test_acc=\([^ ]*\).*/\1/p' "$tmp/pt.log")
    pt_acc=$(sed -n 's/^RESULT wall_s=\([^ ]*\) test_acc=\([^ ]*\).*/\2/p' "$tmp/pt.log")
fi

echo
awk -v ntrain="$ntrain" -v ntest="$ntest" -v epochs="$epochs" -v threads="$threads" \
    -v pt_s="$pt_s" -v pt_acc="$pt_acc" -v cold_s="$cold_s" -v cold_acc="$cold_acc" \
    -v warm_s="$warm_s" -v warm_acc="$warm_acc" -v floor_s="$floor_s" 'BEGIN {
    printf "frozen EfficientNet-Lite0 job: %d train / %d test images, %d epochs, %d threads\n",
           ntrain, ntest, epochs, threads
    printf "%-28s %10s %10s\n", "", "wall s", "test acc %"
    printf "%-28s %10s %10s\n", "classic PyTorch loop", pt_s, pt_acc
    printf "%-28s %10s %10.2f\n", "headstart cold", cold_s, cold_acc
    printf "%-28s %10s %10.2f\n", "headstart warm rerun", warm_s, warm_acc
    printf "%-28s %10s %10s\n", "floor (1 forward pass)", floor_s, "-"
    print ""
    if (pt_s != "-") {
        row("PyTorch / headstart cold", pt_s / cold_s, "x", ">= 10x", pt_s / cold_s >= 10)
        row("acc headstart - PyTorch", cold_acc - pt_acc, " pt", ">= -0.5 pt", cold_acc - pt_acc >= -0.5)
    }
    row("cold / warm", cold_s / warm_s, "x", ">= 20x", cold_s / warm_s >= 20)
    row("headstart cold / floor", cold_s / floor_s, "x", "<= 1.3x", cold_s / floor_s <= 1.3)
}
function row(name, value, unit, target, met) {
    printf "%-28s %9.2f%-3s target %-11s %s\n", name, value, unit, target,
           met ? "target met" : "target missed"
}'

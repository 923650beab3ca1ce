#!/bin/sh
# Strong scaling of a data-parallel run on this machine (bench/bench_mpi.c): the same job on
# 1 rank x T threads and on T ranks x 1 thread, the feature pass and a fine-tune step
# (Lite0, global batch 32, 128 px), the all-reduce time per step and its share, then the
# bytes each rank sends per step for every backbone. Each configuration runs `reps` times,
# interleaved, and the best run counts (the machine may be shared: `uptime` is printed).
# Usage: bench/run_mpi.sh [threads=2] [reps=3] [steps=5] [features=512]
# Needs an MPI build (cmake finds Open MPI or MPICH: apt-get install libopenmpi-dev).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
threads=${1:-2}; reps=${2:-3}; steps=${3:-5}; features=${4:-512}
build=${HEADSTART_BUILD:-$root/build-fast}   # another build folder: HEADSTART_BUILD=build
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$threads" --target bench_mpi >/dev/null
bench=$build/bench/bench_mpi
[ -x "$bench" ] || { echo "run_mpi.sh: no bench_mpi: the build found no MPI" >&2; exit 1; }
mpirun=${MPIRUN:-mpirun}
if $mpirun --version 2>&1 | grep -q 'Open MPI'; then
    mpirun="$mpirun --allow-run-as-root --oversubscribe --bind-to none"
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
args="--features $features --steps $steps --batch 32 --size 128"
cpu=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "CPU: $cpu, $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC'); load before: $(uptime | sed 's/.*load average: //')"
run() { # log, command...: appends the output; a failure shows it and stops
    log=$1; shift
    "$@" > "$tmp/last" 2>&1 || { echo "run_mpi.sh: failed: $*" >&2; cat "$tmp/last" >&2; exit 1; }
    cat "$tmp/last" >> "$log"
}
for rep in $(seq "$reps"); do
    run "$tmp/one" env OMP_NUM_THREADS="$threads" "$bench" --threads "$threads" $args
    run "$tmp/many" env OMP_NUM_THREADS=1 $mpirun -np "$threads" "$bench" --threads 1 $args
done
echo "load after: $(uptime | sed 's/.*load average: //')"
awk -v T="$threads" '
    function val(key,   i, kv) {
        for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return kv[2] + 0 }
        return 0
    }
    FNR == 1 { file++ }
    /^RESULT features/ { v = val("images_per_s"); if (v > feat[file]) feat[file] = v }
    /^RESULT step/ {
        v = val("images_per_s")
        if (v > step[file]) { step[file] = v; ms[file] = val("step_ms"); wait[file] = val("wait_ms") }
        u = val("untested_step_ms")
        if (file == 2 && (ums == 0 || u < ums)) { ums = u; uwait = val("untested_wait_ms") }
        b = val("blocking_images_per_s")
        if (b > blk[file]) { blk[file] = b; ar[file] = val("allreduce_ms"); share[file] = val("allreduce_share") }
    }
    END {
        printf "| | 1 rank x %d threads | %d ranks x 1 thread | ratio |\n| --- | --- | --- | --- |\n", T, T
        printf "| features, Lite0 224 px (images/s) | %.1f | %.1f | %.2f |\n", feat[1], feat[2], feat[2] / feat[1]
        printf "| fine-tune step, overlapped all-reduce (images/s) | %.1f | %.1f | %.2f |\n", step[1], step[2], step[2] / step[1]
        printf "| fine-tune step (ms) | %.0f | %.0f | |\n", ms[1], ms[2]
        printf "| waiting for the sums after backward (ms per step) | - | %.1f (%.1f %%) | |\n", wait[2], 100 * wait[2] / ms[2]
        printf "| the same without MPI_Testall between layers: waiting (ms per step) | - | %.1f (%.1f %%) | |\n", uwait, 100 * uwait / ums
        printf "| fine-tune step, blocking all-reduce (images/s) | %.1f | %.1f | %.2f |\n", blk[1], blk[2], blk[2] / blk[1]
        printf "| blocking all-reduce (ms per step, share of the step) | - | %.1f (%.1f %%) | |\n", ar[2], share[2]
    }' "$tmp/one" "$tmp/many"
echo
"$bench" --bytes-only | tail -n +2

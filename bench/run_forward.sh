#!/bin/sh
# Builds the benchmarks and prints one side-by-side table: headstart vs PyTorch vs darknet,
# forward at 224 px. Usage: bench/run_forward.sh [threads] [batches] [reps]
# (defaults 2, "1,32", 3). A few minutes on 2 cores. See bench/README.md.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
threads=${1:-2}; batches=${2:-1,32}; reps=${3:-3}
build=$root/build-fast
# PyTorch from PyPI (tools/setup-bench-env.sh); HEADSTART_BENCH_PYTHON picks another.
python=${HEADSTART_BENCH_PYTHON:-$root/.venv-bench/bin/python}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$threads" --target bench_forward peak_flops >/dev/null
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=$threads
"$build/bench/peak_flops" "$threads" > "$tmp/peak"
"$build/bench/bench_forward" --threads "$threads" --batches "$batches" --reps "$reps" > "$tmp/hs"
"$python" "$root/bench/forward_pytorch.py" "$threads" "$batches" "$reps" > "$tmp/pt" 2>"$tmp/pt.err" || true
darknet_ips=-
cfg=$(ls /usr/share/darknet*/cfg/vgg-16.cfg 2>/dev/null | head -1 || true)
if command -v darknet >/dev/null && [ -n "$cfg" ]; then
    darknet_ips=$(cd "$tmp" && darknet speed "$cfg" 3 2>&1 | awk '/Hz/ {print $2}')
fi
fma=$(awk '/^fma/ {print $2}' "$tmp/peak"); sgemm=$(awk '/^sgemm/ {print $2}' "$tmp/peak")
fma_isa=$(awk '/^fma/ {$1 = $2 = ""; sub(/^ +/, ""); print}' "$tmp/peak")
echo "peak FP32 on $threads threads: FMA loop $fma GFLOP/s $fma_isa, OpenBLAS sgemm $sgemm GFLOP/s"
echo "(% of peak uses the larger of the two)"
awk -v fma="$fma" -v sgemm="$sgemm" -v dn="$darknet_ips" '
    FNR == 1 { file++ }
    file == 1 { hs[$1 " " $2] = $3; gf[$1 " " $2] = $4; order[++rows] = $1 " " $2 }
    file == 2 { pt[$1 " " $2] = $3 }
    END {
        peak = fma > sgemm ? fma : sgemm
        printf "%-20s %5s %12s %10s %8s %12s %10s %12s\n", "net", "batch", "headstart/s",
               "GFLOP/s", "%peak", "pytorch/s", "hs/pt", "darknet/s"
        for (i = 1; i <= rows; i++) {
            k = order[i]; split(k, p, " ")
            ptv = (k in pt) ? pt[k] : "-"
            ratio = (k in pt) ? sprintf("%.2f", hs[k] / pt[k]) : "-"
            d = (p[1] == "vgg16") ? dn : "-"
            printf "%-20s %5s %12s %10s %7.0f%% %12s %10s %12s\n", p[1], p[2], hs[k], gf[k],
                   100 * gf[k] / peak, ptv, ratio, d
        }
    }' "$tmp/hs" "$tmp/pt"
[ -s "$tmp/pt.err" ] && { echo "pytorch stderr:"; tail -3 "$tmp/pt.err"; }
exit 0

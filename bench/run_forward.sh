#!/bin/sh
# Builds the benchmarks and prints one side-by-side table of forward throughput at 224 px,
# random weights: headstart float32 and bf16 against PyTorch (eager, channels_last, bf16
# autocast), ONNX Runtime and OpenVINO (default, f32 and bf16 hints), with the measured peaks.
# Usage: bench/run_forward.sh [threads] [batches] [reps] [nets]
#   defaults 2, "1,32", 3, "vgg16,efficientnet_lite0"; nets is a comma list of backbones
#   (resnet18,resnet50,mobilenet_v2,mobilenet_v3_large,efficientnet_b0,convnext_tiny, ...).
# A few minutes on 2 cores for the default two nets. The peers run in .venv-bench (tools/setup-bench-env.sh); see
# bench/README.md.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
threads=${1:-2}; batches=${2:-1,32}; reps=${3:-3}; nets=${4:-vgg16,efficientnet_lite0}
build=$root/build-fast
python=${HEADSTART_BENCH_PYTHON:-$root/.venv-bench/bin/python}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$threads" --target bench_forward peak_flops >/dev/null
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=$threads
"$build/bench/peak_flops" "$threads" > "$tmp/peak"
"$build/bench/bench_forward" --threads "$threads" --batches "$batches" --reps "$reps" \
    --nets "$nets" > "$tmp/hs_f32"
"$build/bench/bench_forward" --threads "$threads" --batches "$batches" --reps "$reps" --bf16 \
    --nets "$nets" > "$tmp/hs_bf16" 2>"$tmp/hs_bf16.err" || true
"$python" "$root/bench/forward_peers.py" "$threads" "$batches" "$reps" --nets "$nets" \
    > "$tmp/peers" 2>"$tmp/peers.err" || true
cpu=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "CPU: $cpu; $threads threads; $(date -u +%Y-%m-%d); load: $(uptime | sed 's/.*load average: //')"
grep -v '^#' "$tmp/peak" | sed 's/^/peak: /'
awk '
    FNR == 1 { file++ }
    file == 1 && NF >= 4 { v[$1 " " $2 " hs_f32"] = $3; gf[$1 " " $2] = $4; order[++rows] = $1 " " $2 }
    file == 2 && NF >= 3 { v[$1 " " $2 " hs_bf16"] = $3 }
    file == 3 && NF == 4 { v[$1 " " $2 " " $3] = $4 }
    END {
        n = split("hs_f32 hs_bf16 pytorch pytorch_cl pytorch_cl_bf16 onnxruntime openvino openvino_f32 openvino_bf16", eng, " ")
        printf "%-19s %5s", "img/s", "batch"
        for (e = 1; e <= n; e++) printf " %15s", eng[e]
        printf " %12s %13s\n", "best hs/peer", "hs_f32 GFLOP/s"
        for (i = 1; i <= rows; i++) {
            k = order[i]; split(k, p, " ")
            printf "%-19s %5s", p[1], p[2]
            hs = 0; peer = 0
            for (e = 1; e <= n; e++) {
                x = (k " " eng[e]) in v ? v[k " " eng[e]] : "-"
                printf " %15s", x
                if (x != "-" && e <= 2 && x + 0 > hs) hs = x + 0
                if (x != "-" && e > 2 && x + 0 > peer) peer = x + 0
            }
            if (peer > 0) printf " %12.2f", hs / peer; else printf " %12s", "-"
            printf " %13s\n", gf[k]
        }
    }' "$tmp/hs_f32" "$tmp/hs_bf16" "$tmp/peers"
for f in hs_bf16.err peers.err; do
    [ -s "$tmp/$f" ] && { echo "$f:"; grep -v Warning "$tmp/$f" | tail -6; }
done
exit 0

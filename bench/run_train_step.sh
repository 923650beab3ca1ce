#!/bin/sh
# The training-step targets side by side in one run: headstart's fast backend
# (bench_train_step, float32 and bf16 rows) and PyTorch 2.5 (train_step_pytorch.py, its CPU settings) on one Lite0
# step, batch 32, at 128 and 224 px, the same thread count, with the CPU model and the load
# (uptime: other work on the machine slows both; figures are median steps).
#
#   bench/run_train_step.sh [build dir=build] [threads=2] [python=.venv-bench/bin/python]
set -e
build=${1:-build}
threads=${2:-2}
python=${3:-.venv-bench/bin/python}
grep -m1 "model name" /proc/cpuinfo
echo "threads $threads; $(uptime)"
for size in 128 224; do
    echo "--- $size px"
    "$build/bench/bench_train_step" 32 "$size" "$threads" 5 0 f32
    # mixed precision (bf16 convolutions, float32 master weights); refused below AVX-512
    "$build/bench/bench_train_step" 32 "$size" "$threads" 5 0 bf16 || echo "(no bf16 row)"
    # eager NCHW is far slower (7x at 128 px): run at 128 px only, to show it
    settings=channels_last,channels_last_bf16
    [ "$size" = 128 ] && settings=nchw,$settings
    "$python" bench/train_step_pytorch.py 32 "$size" "$threads" 3 "$settings"
    echo "$(uptime)"
done

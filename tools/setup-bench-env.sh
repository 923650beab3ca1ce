#!/usr/bin/env bash
# The benchmarks' peers: PyTorch from PyPI (its CPU kernels use oneDNN, as a
# user's pip install does), ONNX Runtime and OpenVINO, in .venv-bench, apart from the fixtures'
# Debian PyTorch in .venv. About 3 GB with the CUDA libraries the PyPI wheel depends on; development only.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-bench/bin/python ] || python3 -m venv .venv-bench
.venv-bench/bin/pip install -q "torch==2.5.1" "torchvision==0.20.1" \
  efficientnet_lite_pytorch==0.1.0 pillow onnxruntime==1.31.1 openvino==2026.4.1 onnx==1.23.2
.venv-bench/bin/python -c 'import torch; print("bench environment ready: torch", torch.__version__)'

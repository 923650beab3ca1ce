"""PyTorch's figure for bench_train_step.c: one Lite0 training step (train mode: batch-
statistics BatchNorm, drop connect, dropout; cross-entropy; backward; AdamW) on random
weights, batch 32 at 128 px, 2 threads, NCHW and channels_last.

    python bench/train_step_pytorch.py [batch=32] [size=128] [threads=2] [steps=2]

Prints images/s, ms per step split into forward / backward / update, and process CPU
seconds per step (the machine may be shared)."""
import resource
import sys
import time

import torch
from efficientnet_lite_pytorch import EfficientNet


def main():
    args = [int(a) for a in sys.argv[1:]]
    batch, size, threads, steps = (args + [32, 128, 2, 2][len(args):])[:4]
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    for layout in (torch.contiguous_format, torch.channels_last):
        model = EfficientNet.from_name("efficientnet-lite0").train()
        model = model.to(memory_format=layout)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
        x = torch.randn(batch, 3, size, size).to(memory_format=layout)
        y = torch.randint(0, 1000, (batch,))
        fwd = bwd = upd = cpu = 0.0
        for s in range(steps + 1):  # step 0 warms up
            c0, t0 = time.process_time(), time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            t1 = time.perf_counter()
            opt.zero_grad()
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3, c1 = time.perf_counter(), time.process_time()
            if s > 0:
                fwd, bwd, upd, cpu = fwd + t1 - t0, bwd + t2 - t1, upd + t3 - t2, cpu + c1 - c0
        fwd, bwd, upd, cpu = (v / steps for v in (fwd, bwd, upd, cpu))
        step = fwd + bwd + upd
        name = "channels_last" if layout is torch.channels_last else "NCHW"
        print(f"pytorch {name:13s} batch {batch}: {batch / step:.2f} images/s, "
              f"{1e3 * step:.0f} ms/step (forward {1e3 * fwd:.0f}, backward {1e3 * bwd:.0f}, "
              f"update {1e3 * upd:.0f}), CPU {cpu:.2f} s/step")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")


if __name__ == "__main__":
    main()

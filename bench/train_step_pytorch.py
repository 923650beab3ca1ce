"""PyTorch's figure for bench_train_step.c: one Lite0 training step (train mode: batch-
statistics BatchNorm, drop connect, dropout; cross-entropy; backward; AdamW) on random
weights, batch 32 at 128 px, 2 threads, in PyTorch's CPU settings: eager NCHW, channels_last,
and channels_last with bf16 autocast.

    python bench/train_step_pytorch.py [batch=32] [size=128] [threads=2] [steps=3]
                                       [settings=nchw,channels_last,channels_last_bf16]

Prints images/s, ms per step split into forward / backward / update, and process CPU
seconds per step, for the median of `steps` timed steps (step 0 warms up; the machine may be
shared), then the fastest setting and the peak RSS of the process (all settings run in it,
one after another: the peak is the largest setting's)."""
import resource
import sys
import time

import torch
from efficientnet_lite_pytorch import EfficientNet


def step_times(model, opt, x, y, steps, bf16):
    times = []
    for s in range(steps + 1):  # step 0 warms up
        c0, t0 = time.process_time(), time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        t1 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3, c1 = time.perf_counter(), time.process_time()
        if s > 0:
            times.append((t3 - t0, t1 - t0, t2 - t1, t3 - t2, c1 - c0))
    times.sort()
    return times[len(times) // 2]


def main():
    args = sys.argv[1:]
    nums = [int(a) for a in args[:4]]
    batch, size, threads, steps = (nums + [32, 128, 2, 3][len(nums):])[:4]
    settings = (args[4] if len(args) > 4 else "nchw,channels_last,channels_last_bf16").split(",")
    torch.set_num_threads(threads)
    best = None
    for name in settings:
        torch.manual_seed(1)
        layout = torch.contiguous_format if name == "nchw" else torch.channels_last
        model = EfficientNet.from_name("efficientnet-lite0").train()
        model = model.to(memory_format=layout)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
        x = torch.randn(batch, 3, size, size).to(memory_format=layout)
        y = torch.randint(0, 1000, (batch,))
        step, fwd, bwd, upd, cpu = step_times(model, opt, x, y, steps, name.endswith("bf16"))
        print(f"pytorch {name:18s} batch {batch}: {batch / step:.2f} images/s, "
              f"{1e3 * step:.0f} ms/step (forward {1e3 * fwd:.0f}, backward {1e3 * bwd:.0f}, "
              f"update {1e3 * upd:.0f}), CPU {cpu:.2f} s/step", flush=True)
        if best is None or step < best[1]:
            best = (name, step)
        del model, opt
    print(f"pytorch best: {best[0]}, {batch / best[1]:.2f} images/s, {1e3 * best[1]:.0f} ms/step")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")


if __name__ == "__main__":
    main()

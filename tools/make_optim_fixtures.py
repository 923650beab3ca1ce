"""Writes tests/fixtures/optim.safetensors: torch.optim reference steps for src/optim.c and
torch.optim.lr_scheduler rates for src/lr_schedule.c.

Run with the dev environment's Python (torch 1.13):
    /work/main/.venv/bin/python tools/make_optim_fixtures.py

Three parameters ("w1" 5x8, "w2" 3x4, "b" 7: the bias-like one, which gets no weight decay)
start from "init.<p>"; every case applies the same gradients "grad.<step>.<p>" for STEPS steps
and stores the parameters after each step as "<case>.<step>.<p>". Cases:
  sgd_momentum     SGD lr 0.1, momentum 0.9, wd 1e-2 (b: wd 0)
  sgd_nesterov     the same with nesterov=True
  sgd_plain        SGD lr 0.1, no momentum, wd 1e-2 (b: wd 0)
  adamw_groups     AdamW betas 0.9/0.999, eps 1e-8; groups {w1: lr 1e-2, wd 0.05},
                   {w2: lr 1e-2 * 0.65, wd 0.05}, {b: lr 1e-2 * 0.65, wd 0}
  adamw_scheduled  adamw_groups with the lr of every group set by the warmup + cosine schedule
                   below (eta_min 0), stepped after each optimizer step
Schedules ("sched.<name>.lr_hi/lr_lo", one value per step; the rate is hi + lo, two float32s
so the C test can compare to 1e-7 and better): SequentialLR(LinearLR, CosineAnnealingLR) and a
plain LinearLR warmup, and CosineAnnealingLR alone for no warmup; "sched.<name>.params_hi/lo" =
[base_lr, start_factor, warmup, total, eta_min], split the same way.
Clipping: "clip.<case>.grad.<p>" after torch.nn.utils.clip_grad_norm_ of grad.0 and
"clip.<case>.norm" (its return value), "clip.<case>.max_norm".
"""
import os
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import save_fixture  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "optim.safetensors")

# SequentialLR steps its second scheduler with an epoch argument at the milestone (torch's
# own code), which warns about the deprecated argument.
warnings.filterwarnings("ignore", message="The epoch parameter")
torch.manual_seed(20261202)
torch.set_default_dtype(torch.float32)
STEPS = 5
SHAPES = {"w1": (5, 8), "w2": (3, 4), "b": (7,)}
NAMES = list(SHAPES)
LAYER_SCALE = 0.65
tensors = {}


def put(key, value):
    assert key not in tensors, key
    # clone: a parameter keeps changing in place after it is recorded
    tensors[key] = torch.as_tensor(value, dtype=torch.float32).detach().clone().numpy()


init = {n: torch.randn(*s) for n, s in SHAPES.items()}
grads = [{n: torch.randn(*s) * (0.5 + k) for n, s in SHAPES.items()} for k in range(STEPS)]
for n in NAMES:
    put(f"init.{n}", init[n])
    for k in range(STEPS):
        put(f"grad.{k}.{n}", grads[k][n])


def fresh():
    return {n: init[n].clone().requires_grad_(True) for n in NAMES}


def run(case, params, optimizer, scheduler=None):
    for k in range(STEPS):
        for n in NAMES:
            params[n].grad = grads[k][n].clone()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        for n in NAMES:
            put(f"{case}.{k}.{n}", params[n])


def sgd_groups(p):
    return [{"params": [p["w1"], p["w2"]], "weight_decay": 1e-2},
            {"params": [p["b"]], "weight_decay": 0.0}]


p = fresh()
run("sgd_momentum", p, torch.optim.SGD(sgd_groups(p), lr=0.1, momentum=0.9))
p = fresh()
run("sgd_nesterov", p, torch.optim.SGD(sgd_groups(p), lr=0.1, momentum=0.9, nesterov=True))
p = fresh()
run("sgd_plain", p, torch.optim.SGD(sgd_groups(p), lr=0.1))


def adamw(p):
    groups = [{"params": [p["w1"]], "lr": 1e-2, "weight_decay": 0.05},
              {"params": [p["w2"]], "lr": 1e-2 * LAYER_SCALE, "weight_decay": 0.05},
              {"params": [p["b"]], "lr": 1e-2 * LAYER_SCALE, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=1e-2, betas=(0.9, 0.999), eps=1e-8)


def warmup_cosine(optimizer, start, warmup, total, eta_min):
    first = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=start, end_factor=1.0,
                                              total_iters=warmup)
    second = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warmup,
                                                        eta_min=eta_min)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [first, second],
                                                 milestones=[warmup])


p = fresh()
run("adamw_groups", p, adamw(p))
p = fresh()
opt = adamw(p)
ADAMW_SCHED = [0.1, 2, STEPS, 0.0]
run("adamw_scheduled", p, opt, warmup_cosine(opt, *ADAMW_SCHED))
put("adamw_scheduled.params", ADAMW_SCHED)


def split(values):
    """float64 values as two float32s, hi + lo, exact to about 2^-48 relative."""
    values = np.asarray(values, dtype=np.float64)
    hi = values.astype(np.float32)
    return hi, (values - hi.astype(np.float64)).astype(np.float32)


def record_schedule(name, base, start, warmup, total, eta_min, cosine=True):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    if cosine and warmup == 0:  # SequentialLR needs a warmup; without one, the cosine alone
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=eta_min)
    elif cosine:
        sched = warmup_cosine(opt, start, warmup, total, eta_min)
    else:
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=start, end_factor=1.0,
                                                  total_iters=warmup)
    rates = []
    for _ in range(total):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    for suffix, part in zip(("hi", "lo"), split(rates)):
        put(f"sched.{name}.lr_{suffix}", part)
    for suffix, part in zip(("hi", "lo"), split([base, start, warmup, total, eta_min])):
        put(f"sched.{name}.params_{suffix}", part)


record_schedule("cosine", 3e-3, 0.01, 7, 40, 3e-5)
record_schedule("cosine_nofloor", 0.1, 0.25, 4, 23, 0.0)
record_schedule("cosine_nowarmup", 1e-3, 1.0, 0, 17, 1e-5)
record_schedule("warmup_only", 0.05, 0.1, 6, 15, 0.0, cosine=False)


def record_clip(case, max_norm):
    p = fresh()
    for n in NAMES:
        p[n].grad = grads[0][n].clone()
    norm = torch.nn.utils.clip_grad_norm_([p[n] for n in NAMES], max_norm)
    for n in NAMES:
        put(f"clip.{case}.grad.{n}", p[n].grad)
    put(f"clip.{case}.norm", [norm.item()])
    put(f"clip.{case}.max_norm", [max_norm])


record_clip("clipped", 1.5)
record_clip("unclipped", 100.0)

save_fixture(OUT, tensors, metadata={"generator": "tools/make_optim_fixtures.py",
                                     "torch": torch.__version__})
size = os.path.getsize(OUT)
print(f"wrote {OUT}: {len(tensors)} tensors, {size} bytes")
assert size < 64 * 1024

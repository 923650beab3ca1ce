"""Writes tests/fixtures/crop_boxes.safetensors: the boxes torchvision's
RandomResizedCrop.get_params returns for fixed random numbers; and
tests/fixtures/crop_images.safetensors: what torchvision makes of a few boxes of a test image
(F.resized_crop with BILINEAR on a PIL image, F.hflip, F.to_tensor, F.normalize).

torch's random draws inside get_params are replaced by fixed sequences: every
torch.empty(1).uniform_(lo, hi) gives u * (hi - lo) + lo in float32 with the case's next u (a
multiple of 2^-24, as hs_rng_uniform), every torch.randint(lo, hi) gives lo + r % (hi - lo)
with the next r. torchvision's own code does the rest (float32 logs and exps of the ratio,
Python's round, the fallback), which the C sampler must reproduce.

Run: /work/main/.venv/bin/python tools/make_crop_fixtures.py
"""
import math
import os
import sys

import numpy as np
import torch
from torchvision.transforms import transforms as T

sys.path.insert(0, os.path.dirname(__file__))
from fixture_io import save_fixture  # noqa: E402

UNIFORMS = 20  # 10 attempts x 2
INTS = 2


class Feed:
    def __init__(self, us, rs):
        self.us, self.rs, self.ui, self.ri = list(us), list(rs), 0, 0


feed = None
real_uniform = torch.Tensor.uniform_
real_randint = torch.randint


def fake_uniform(self, lo=0.0, hi=1.0, **kw):
    u = np.float32(feed.us[feed.ui])
    feed.ui += 1
    lo32, hi32 = np.float32(float(lo)), np.float32(float(hi))
    val = np.float32(u * np.float32(hi32 - lo32)) + lo32
    return self.fill_(float(np.float32(val)))


def fake_randint(lo, hi, size=None, **kw):
    r = int(feed.rs[feed.ri])
    feed.ri += 1
    return torch.tensor([lo + r % (hi - lo)])



def main():
    rng = np.random.default_rng(7)
    cases = []
    fixed = [  # (width, height, scale, ratio)
        (500, 375, (0.08, 1.0), (3 / 4, 4 / 3)),
        (32, 32, (0.35, 1.0), (3 / 4, 4 / 3)),
        (20, 300, (0.08, 1.0), (3 / 4, 4 / 3)),   # too tall: ratio fallback (w = width)
        (300, 20, (0.08, 1.0), (3 / 4, 4 / 3)),   # too wide: ratio fallback (h = height)
        (100, 100, (0.99, 1.0), (1.3, 1.4)),      # no attempt fits
        (100, 100, (1.0, 1.0), (1.0, 1.0)),       # the whole image
        (1, 1, (0.08, 1.0), (3 / 4, 4 / 3)),
    ]
    for c in fixed:
        cases.append(c)
    for _ in range(250):
        w = int(rng.integers(1, 640))
        if rng.random() < 0.7:  # photo-like: aspect within (1/2, 2)
            h = max(1, int(w * math.exp(rng.uniform(math.log(0.5), math.log(2.0)))))
        else:
            h = int(rng.integers(1, 640))
        lo = float(rng.choice([0.08, 0.35, 0.5, 0.9]))
        r0 = float(rng.choice([3 / 4, 0.5, 0.9]))
        cases.append((w, h, (lo, 1.0), (r0, 1 / r0)))
    params, us, rs, boxes = [], [], [], []
    torch.Tensor.uniform_ = fake_uniform
    torch.randint = fake_randint
    global feed
    try:
        for w, h, scale, ratio in cases:
            u = rng.integers(0, 1 << 24, size=UNIFORMS) / float(1 << 24)
            if rng.random() < 0.15:  # push attempts out of the image: large area, odd ratio
                u = 1.0 - rng.integers(0, 1 << 12, size=UNIFORMS) / float(1 << 24)
            r = rng.integers(0, 1 << 24, size=INTS)
            feed = Feed(u, r)
            img = torch.empty(3, h, w)
            i, j, bh, bw = T.RandomResizedCrop.get_params(img, list(scale), list(ratio))
            params.append([w, h, scale[0], scale[1], ratio[0], ratio[1]])
            us.append(u)
            rs.append(r)
            boxes.append([i, j, bh, bw, feed.ui, feed.ri])
    finally:
        torch.Tensor.uniform_ = real_uniform
        torch.randint = real_randint
    fallbacks = sum(1 for b in boxes if b[4] == UNIFORMS)
    out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                       "crop_boxes.safetensors")
    # params stays float64-exact only where float32 can hold it: the C test reads the
    # ratios and scales as these float32 values, so store them in float64 pieces instead.
    p = np.array(params, dtype=np.float64)
    save_fixture(out, {
        "size": p[:, :2],
        "scale_ratio_hi": p[:, 2:].astype(np.float32),
        "scale_ratio_lo": (p[:, 2:] - p[:, 2:].astype(np.float32).astype(np.float64)),
        "uniforms": np.array(us),
        "ints": np.array(rs),
        "boxes": np.array(boxes),
    }, metadata={"torchvision": __import__("torchvision").__version__,
                 "cases": len(cases), "fallbacks": fallbacks})
    print(f"{len(cases)} cases, {fallbacks} fallbacks -> {os.path.normpath(out)}")


def pixel_value(sample, x, y, c):
    """test_augment.c's pixel_value."""
    return (sample * 37 + x * 7 + y * 13 + c * 71 + (x * y) % 11) & 255


def crop_images():
    from PIL import Image
    import torchvision.transforms.functional as F
    from torchvision.transforms import InterpolationMode

    w, h, size = 97, 61, 24
    px = np.zeros((h, w, 3), dtype=np.uint8)
    for y in range(h):
        for x in range(w):
            for c in range(3):
                px[y, x, c] = pixel_value(5, x, y, c)
    img = Image.fromarray(px, "RGB")
    # (top, left, height, width, flip): upscales, downscales, mixed, the whole image
    boxes = [(3, 5, 10, 14, 0), (0, 0, 61, 97, 1), (20, 30, 41, 50, 1), (7, 60, 12, 37, 0),
             (40, 2, 21, 8, 1)]
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    outs = []
    for top, left, bh, bw, flip in boxes:
        out = F.resized_crop(img, top, left, bh, bw, [size, size], InterpolationMode.BILINEAR)
        if flip:
            out = F.hflip(out)
        outs.append(F.normalize(F.to_tensor(out), mean, std).numpy())
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                        "crop_images.safetensors")
    save_fixture(path, {"boxes": np.array(boxes), "images": np.stack(outs),
                        "size": np.array([w, h, size])})
    print(f"{len(boxes)} crops of a {w}x{h} image at {size} px -> {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
    crop_images()

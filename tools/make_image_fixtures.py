"""Writes the image fixtures tests/test_image.c checks against PIL and torchvision.

Run: /work/main/.venv/bin/python tools/make_image_fixtures.py
Writes tests/fixtures/images/*: small JPEG and PNG files of every layout headstart decodes,
broken files, decompression bombs, and expected.safetensors holding what PIL / torchvision
give for them:
  img/<file>           ImageOps.exif_transpose(Image.open(p)).convert("RGB"), H x W x 3
  resize/<w>x<h>       resize_src.png resized with Image.BILINEAR, H x W x 3
  bicubic/<w>x<h>      resize_src.png resized with Image.BICUBIC (support 2, a = -0.5,
                       antialiased when shrinking), H x W x 3
  pp/<file>            Resize(40), CenterCrop(32), ToTensor, Normalize(PP_MEAN, PP_STD): 3x32x32
  pp_bicubic/<file>    the same with Resize(40, interpolation=BICUBIC)
  pp/mean, pp/std      the normalisation used
"""
import io
import os
import shutil
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import save_fixture  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "images")

PP_MEAN = [0.485, 0.456, 0.406]
PP_STD = [0.229, 0.224, 0.225]
RESIZES = [(41, 26), (13, 9), (61, 7), (5, 3), (37, 27), (20, 23), (3, 2), (90, 11)]


def pattern(w, h, seed, noise=20):
    """A smooth picture with some noise: gradients, a disc, a few random pixels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 255 * (((x - w / 2) ** 2 + (y - h / 2) ** 2) < (min(w, h) / 3) ** 2)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, noise, (h, w, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# ---- A minimal PNG writer for what PIL cannot write (16-bit RGB, interlace, 4-bit gray) ----

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(w, h, depth, color, rows_of, interlace=False):
    """rows_of(xs, ys) -> list of raw scanline bytes (no filter byte) for the sub-image made
    of columns xs and rows ys."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 1 if interlace else 0)
    raw = b""
    if interlace:
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                  (1, 0, 2, 2), (0, 1, 1, 2)]
        for x0, y0, dx, dy in passes:
            xs, ys = list(range(x0, w, dx)), list(range(y0, h, dy))
            if xs and ys:
                raw += b"".join(b"\0" + row for row in rows_of(xs, ys))
    else:
        raw = b"".join(b"\0" + row for row in rows_of(list(range(w)), list(range(h))))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def exif_mm(orientation):
    """A big-endian (Motorola) TIFF block with only IFD0 tag 0x0112."""
    return (b"Exif\0\0" + b"MM\0\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) +
            struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0))


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    W, H = 17, 11
    rgb = pattern(W, H, 1)
    im = Image.fromarray(rgb, "RGB")
    gray = np.asarray(im.convert("L"))

    # JPEG
    im.save(os.path.join(OUT, "rgb.jpg"), quality=90)
    im.save(os.path.join(OUT, "rgb444_progressive.jpg"), quality=90, subsampling=0,
            progressive=True)
    Image.fromarray(gray, "L").save(os.path.join(OUT, "gray.jpg"), quality=90)
    cmyk = np.concatenate([255 - rgb, (rgb[..., :1] // 3)], axis=-1).astype(np.uint8)
    Image.fromarray(cmyk, "CMYK").save(os.path.join(OUT, "cmyk.jpg"), quality=90)
    for o in range(2, 9):
        if o == 8:  # big-endian EXIF, written by hand
            im.save(os.path.join(OUT, "exif8_mm.jpg"), quality=90, exif=exif_mm(8))
            continue
        exif = Image.Exif()
        exif[0x0112] = o
        im.save(os.path.join(OUT, "exif%d.jpg" % o), quality=90, exif=exif.tobytes())

    # PNG
    im.save(os.path.join(OUT, "rgb.png"))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(os.path.join(OUT, "exif6.png"), exif=exif.tobytes())  # an eXIf chunk
    rgba = np.concatenate([rgb, pattern(W, H, 2)[..., :1]], axis=-1)
    Image.fromarray(rgba, "RGBA").save(os.path.join(OUT, "rgba.png"))
    la = np.stack([gray, rgb[..., 2]], axis=-1)
    Image.fromarray(la, "LA").save(os.path.join(OUT, "la.png"))
    Image.fromarray(gray, "L").save(os.path.join(OUT, "gray.png"))
    Image.fromarray(gray > 128).save(os.path.join(OUT, "gray1.png"))
    pal = im.quantize(colors=16)
    trns = bytes([(i * 37) % 256 for i in range(16)])
    pal.save(os.path.join(OUT, "palette_trns.png"), transparency=trns)
    pal.save(os.path.join(OUT, "palette4.png"), bits=4)
    # 16-bit gray: values both below and above 255 (PIL clips these in convert("RGB"))
    g16 = (np.arange(W * H, dtype=np.uint32).reshape(H, W) * 397 % 700).astype(np.uint16)
    write("gray16.png", png_bytes(W, H, 16, 0, lambda xs, ys: [
        b"".join(struct.pack(">H", int(g16[y, x])) for x in xs) for y in ys]))
    rgb16 = (rgb.astype(np.uint16) * 257 + np.arange(W)[None, :, None] * 3).astype(np.uint16)
    write("rgb16.png", png_bytes(W, H, 16, 2, lambda xs, ys: [
        b"".join(struct.pack(">HHH", *map(int, rgb16[y, x])) for x in xs) for y in ys]))
    rgba16 = np.concatenate([rgb16, rgb16[..., :1]], axis=-1)
    write("rgba16.png", png_bytes(W, H, 16, 6, lambda xs, ys: [
        b"".join(struct.pack(">HHHH", *map(int, rgba16[y, x])) for x in xs) for y in ys]))
    write("rgb_interlaced.png", png_bytes(W, H, 8, 2, lambda xs, ys: [
        b"".join(bytes(rgb[y, x]) for x in xs) for y in ys], interlace=True))

    def gray4_rows(xs, ys):
        rows = []
        for y in ys:
            vals = [int(gray[y, x]) >> 4 for x in xs] + [0]
            rows.append(bytes((vals[i] << 4) | (vals[i + 1] if i + 1 < len(xs) else 0)
                              for i in range(0, len(xs), 2)))
        return rows
    write("gray4_interlaced.png", png_bytes(W, H, 4, 0, gray4_rows, interlace=True))

    # Sources of the resize and preprocessing checks (PNG: lossless, no decoder question)
    Image.fromarray(pattern(37, 23, 3), "RGB").save(os.path.join(OUT, "resize_src.png"))
    Image.fromarray(pattern(53, 47, 4, noise=4), "RGB").save(os.path.join(OUT, "pp_wide.png"))
    Image.fromarray(pattern(45, 60, 5, noise=4), "RGB").save(os.path.join(OUT, "pp_tall.png"))

    # Files that must be refused
    jpg = open(os.path.join(OUT, "rgb.jpg"), "rb").read()
    write("jpeg_named.png", jpg)
    write("truncated.jpg", jpg[: len(jpg) // 2])
    png = open(os.path.join(OUT, "rgb.png"), "rb").read()
    write("truncated.png", png[: len(png) // 2])
    write("empty.jpg", b"")
    write("text.jpg", b"this is not an image\n")
    # Bombs: a valid 100000 x 100000 gray PNG header (right CRCs, a real tiny zlib stream)
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    write("bomb.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
          png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))
    sof = jpg.index(b"\xff\xc0")
    bomb = bytearray(jpg)
    bomb[sof + 5:sof + 9] = struct.pack(">HH", 30000, 40000)  # height, width
    write("bomb.jpg", bytes(bomb))

    # Expected values
    tensors = {}
    for name in sorted(os.listdir(OUT)):
        if name.startswith(("pp_", "resize_src")):
            continue  # lossless sources of the resize checks: no need to store them twice
        path = os.path.join(OUT, name)
        try:
            with Image.open(path) as src:
                pic = ImageOps.exif_transpose(src).convert("RGB")
        except Exception as e:  # the broken files
            print("PIL refuses %s: %s" % (name, e))
            continue
        tensors["img/" + name] = np.asarray(pic, dtype=np.float32)
    src = Image.open(os.path.join(OUT, "resize_src.png")).convert("RGB")
    for w, h in RESIZES:
        tensors["resize/%dx%d" % (w, h)] = np.asarray(src.resize((w, h), Image.BILINEAR),
                                                      dtype=np.float32)
        tensors["bicubic/%dx%d" % (w, h)] = np.asarray(src.resize((w, h), Image.BICUBIC),
                                                       dtype=np.float32)
    import torch  # noqa: F401
    from torchvision import transforms
    tf = transforms.Compose([transforms.Resize(40), transforms.CenterCrop(32),
                             transforms.ToTensor(), transforms.Normalize(PP_MEAN, PP_STD)])
    for name in ("pp_wide.png", "pp_tall.png"):
        pic = Image.open(os.path.join(OUT, name)).convert("RGB")
        tensors["pp/" + name] = tf(pic).numpy()
    tf = transforms.Compose([
        transforms.Resize(40, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(32), transforms.ToTensor(), transforms.Normalize(PP_MEAN, PP_STD)])
    for name in ("pp_wide.png", "pp_tall.png"):
        pic = Image.open(os.path.join(OUT, name)).convert("RGB")
        tensors["pp_bicubic/" + name] = tf(pic).numpy()
    tensors["pp/mean"] = np.array(PP_MEAN, dtype=np.float32)
    tensors["pp/std"] = np.array(PP_STD, dtype=np.float32)
    save_fixture(os.path.join(OUT, "expected.safetensors"), tensors)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print("wrote %d files, %d bytes, %d expected tensors" % (len(os.listdir(OUT)), total,
                                                             len(tensors)))


if __name__ == "__main__":
    main()

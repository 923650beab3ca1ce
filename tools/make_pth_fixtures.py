"""Writes the small .pth fixtures tests/test_pth.c reads, and their expected values.

Run with the development venv (torch 1.13):
    .venv/bin/python tools/make_pth_fixtures.py

Writes tests/fixtures/pth/:
  tiny_zip.pth, tiny_legacy.pth, tiny_archive.pth  a Conv2d+BatchNorm2d+Linear state dict
      (zip with the file stem as folder, legacy stream, zip with an "archive/" folder)
  dtypes_zip.pth, dtypes_legacy.pth, dtypes_p4.pth  float16/bfloat16/float64/int/bool tensors
      (dtypes_p4 is pickled with protocol 4: FRAME, MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE)
  shared_zip.pth, shared_legacy.pth  views of one storage: offsets and a transposed tensor
  nested_zip.pth  a checkpoint {'epoch': 3, 'state_dict': <tiny>}
  evil_*.pth  pickles asking for posix.system / builtins.exec / os.system; built by hand,
      never unpickled here, so nothing runs (payload: touch /tmp/hs_pwned)
  expected.safetensors  float32 copy of every tensor, named "<group>/<key>"
"""
import io
import os
import pickle
import struct
import sys
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import save_fixture  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "pth")
PAYLOAD = "touch /tmp/hs_pwned"


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 5)


def tiny_state_dict():
    torch.manual_seed(0)
    m = Tiny()
    with torch.no_grad():  # make the running stats non-trivial
        m.bn.running_mean.uniform_(-1, 1)
        m.bn.running_var.uniform_(0.5, 2)
        m.bn.num_batches_tracked.fill_(7)
    return m.state_dict()


def dtypes_state_dict():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(3, 5, generator=g) * 3
    return {
        "half": base.to(torch.float16),
        "bfloat": base.to(torch.bfloat16),
        "double": base.to(torch.float64) / 7,
        "int32": torch.arange(-4, 4, dtype=torch.int32).reshape(2, 4),
        "int16": torch.tensor([-300, 0, 300], dtype=torch.int16),
        "int8": torch.tensor([-128, -1, 127], dtype=torch.int8),
        "uint8": torch.tensor([0, 1, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }


def shared_state_dict():
    base = torch.arange(24, dtype=torch.float32) * 0.5 - 3
    grid = base.view(4, 6)
    return {
        "full": base,
        "window": base[2:8].view(2, 3),        # offset 2, contiguous
        "block": grid[1:3, 2:5],               # offset 8, strides (6, 1)
        "transposed": grid.t(),                # strides (1, 6)
        "column": grid[:, 3],                  # offset 3, stride 6
    }


def save_both(sd, stem, legacy=True, **kw):
    torch.save(sd, os.path.join(OUT, stem + "_zip.pth"), **kw)
    if legacy:
        torch.save(sd, os.path.join(OUT, stem + "_legacy.pth"),
                   _use_new_zipfile_serialization=False)


def rename_zip_folder(src, dst, folder):
    """Rewrites a torch zip with every entry under folder/ instead of the file stem."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            name = folder + "/" + info.filename.split("/", 1)[1]
            zout.writestr(name, zin.read(info.filename))


def evil_pickle(module, name, stack_global=False):
    """OrderedDict() with one entry whose value is module.name(PAYLOAD) -- by hand, so that
    nothing is ever imported or called while writing it."""
    def s(text):  # BINUNICODE
        raw = text.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw
    if stack_global:
        glob = s(module) + s(name) + b"\x93"
    else:
        glob = b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    return (b"\x80\x02" + b"ccollections\nOrderedDict\n)R" + b"(" + s("weight") + glob +
            s(PAYLOAD) + b"\x85R" + b"u.")


def write_evil_zip(path, pkl):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/version", "3\n")


def write_evil_legacy(path, pkl):
    with open(path, "wb") as f:
        f.write(pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2))
        f.write(pickle.dumps(1001, protocol=2))
        f.write(pickle.dumps({"protocol_version": 1001, "little_endian": True,
                              "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))
        f.write(pkl)
        f.write(pickle.dumps([], protocol=2))


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {}

    tiny = tiny_state_dict()
    save_both(tiny, "tiny")
    rename_zip_folder(os.path.join(OUT, "tiny_zip.pth"), os.path.join(OUT, "tiny_archive.pth"),
                      "archive")
    torch.save({"epoch": 3, "state_dict": tiny}, os.path.join(OUT, "nested_zip.pth"))
    for k, v in tiny.items():
        expected["tiny/" + k] = v.float().numpy()

    dt = dtypes_state_dict()
    save_both(dt, "dtypes")
    torch.save(dt, os.path.join(OUT, "dtypes_p4.pth"), pickle_protocol=4)
    for k, v in dt.items():
        expected["dtypes/" + k] = v.float().numpy()

    sh = shared_state_dict()
    save_both(sh, "shared")
    for k, v in sh.items():
        expected["shared/" + k] = v.contiguous().float().numpy()

    write_evil_zip(os.path.join(OUT, "evil_zip.pth"), evil_pickle("posix", "system"))
    write_evil_legacy(os.path.join(OUT, "evil_legacy.pth"), evil_pickle("posix", "system"))
    write_evil_zip(os.path.join(OUT, "evil_exec.pth"),
                   evil_pickle("builtins", "exec", stack_global=True))
    write_evil_legacy(os.path.join(OUT, "evil_os.pth"), evil_pickle("os", "system"))

    save_fixture(os.path.join(OUT, "expected.safetensors"), expected)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, into {OUT}")


if __name__ == "__main__":
    main()

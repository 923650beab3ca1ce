"""Writes test fixtures as safetensors files (float32 only), without the safetensors package.

Layout: 8-byte little-endian header length, a JSON header
{"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}}, then raw data.
The C tests read these with headstart's own safetensors reader.
"""
import json
import struct

import numpy as np


def save_fixture(path, tensors, metadata=None):
    """tensors: dict name -> array-like (converted to float32, C order)."""
    header = {}
    blobs = []
    offset = 0
    for name, value in tensors.items():
        arr = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        raw = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def deterministic_input(shape):
    """The test input both PyTorch and the C tests build: x[i] = sin(0.37 * i) * 1.7, in
    float64 then rounded to float32, so no input tensor has to be stored."""
    count = int(np.prod(shape))
    return (np.sin(0.37 * np.arange(count, dtype=np.float64)) * 1.7).astype(np.float32).reshape(shape)


def put_case(tensors, case, **named):
    """Adds named float32 tensors under "case.name", refusing a key written twice."""
    import torch

    for name, value in named.items():
        key = f"{case}.{name}"
        assert key not in tensors, key
        tensors[key] = torch.as_tensor(value, dtype=torch.float32).detach().contiguous().numpy()

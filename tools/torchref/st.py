"""safetensors for the test oracle: read and write dicts of torch tensors.

Format: u64 little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}
(optionally "__metadata__": {str: str}), then the raw little-endian data. Writing goes through
the project's one stdlib writer, tools/gen_op_goldens.py:st_write (temp file, fsync, rename,
so a reader never sees half a file)."""
import json
import os
import struct
import sys

import numpy as np
import torch

_TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)
from gen_op_goldens import st_write  # noqa: E402

_NP = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "F16": np.float16}
_ST = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.bfloat16: "BF16",
       torch.float16: "F16"}


def read(path):
    """Returns (dict name -> torch tensor, metadata dict). BF16 comes back as float32."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + hlen
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        raw = blob[base + a:base + b]
        if e["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(_NP[e["dtype"]]).newbyteorder("<"))
        out[name] = torch.from_numpy(arr.copy()).reshape(e["shape"])
    return out, meta


def write(path, tensors, metadata=None):
    """tensors: dict (insertion order kept) name -> torch tensor (f32/f64/i64/bf16/f16)."""
    entries = []
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        dt = _ST[t.dtype]
        if dt == "BF16":
            raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            raw = t.numpy().astype(np.dtype(_NP[dt]).newbyteorder("<")).tobytes()
        entries.append((name, dt, list(t.shape), raw))
    st_write(path, entries, metadata)

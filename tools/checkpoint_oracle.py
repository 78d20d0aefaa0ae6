"""Test oracle for src/train/checkpoint: does a checkpoint's model part load into PyTorch?

    python3 tools/checkpoint_oracle.py CHECKPOINT.safetensors

Reads the file with tools/torchref/st.py (an independent stdlib/numpy safetensors reader), drops
the `optimizer.*` entries, builds tools/torchref/model.py's SSD300 in the file's precision and
calls load_state_dict(strict=True): every parameter and buffer of the torch model must be in the
file with its shape, and nothing else may be. Then every state_dict tensor must equal the file's
bit for bit (dtype included; num_batches_tracked an int64 0-dim tensor like torch's), the
optimizer entries must be exactly `optimizer.momentum.<name>` for every trainable parameter (or
none, per metadata momentum_valid) with the parameter's shape, and the metadata must hold the
documented keys. Prints "checkpoint_oracle: OK ..." and exits 0, or exits 1 with the reason.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchref import model, st  # noqa: E402

MOM = "optimizer.momentum."
META_KEYS = ["format", "format_version", "dtype", "epoch", "iteration", "loader_epoch",
             "loader_iter", "seed", "avg_loss", "momentum_valid"]


def fail(msg):
    print("checkpoint_oracle: FAIL: " + msg)
    sys.exit(1)


def main():
    if len(sys.argv) != 2:
        fail("usage: checkpoint_oracle.py CHECKPOINT")
    tensors, meta = st.read(sys.argv[1])
    for k in META_KEYS:
        if k not in meta:
            fail("metadata key %r missing" % k)
    if meta["format"] != "ssd-checkpoint" or meta["format_version"] != "1":
        fail("format %r version %r" % (meta["format"], meta["format_version"]))
    dtype = {"f32": torch.float32, "f64": torch.float64}[meta["dtype"]]
    float.fromhex(meta["avg_loss"])  # must parse as a Python hex float
    for k in ("epoch", "iteration", "loader_epoch", "loader_iter", "seed"):
        if int(meta[k]) < 0:
            fail("metadata %s negative" % k)

    weights = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    optim = {k: v for k, v in tensors.items() if k.startswith("optimizer.")}

    torch.manual_seed(0)
    net = model.SSD300().to(dtype)
    try:
        res = net.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        fail("load_state_dict(strict=True) refused the file: %s" % e)
    if res.missing_keys or res.unexpected_keys:
        fail("missing %s unexpected %s" % (res.missing_keys, res.unexpected_keys))
    sd = net.state_dict()
    if list(sd.keys()) != list(weights.keys()):
        fail("file order differs from the state_dict order")
    for name, t in sd.items():
        f = weights[name]
        want_dtype = torch.int64 if name.endswith("num_batches_tracked") else dtype
        if f.dtype != want_dtype or t.dtype != want_dtype:
            fail("%s: file dtype %s, model %s, expected %s" % (name, f.dtype, t.dtype, want_dtype))
        if tuple(f.shape) != tuple(t.shape):
            fail("%s: shape %s vs %s" % (name, tuple(f.shape), tuple(t.shape)))
        if not torch.equal(f, t):
            fail("%s: values differ after load_state_dict" % name)

    params = dict(net.named_parameters())
    if meta["momentum_valid"] == "1":
        want = {MOM + n for n in params}
        if set(optim) != want:
            fail("optimizer entries %d, expected %d (extra %s, missing %s)" % (
                len(optim), len(want), sorted(set(optim) - want)[:3], sorted(want - set(optim))[:3]))
        for n, p in params.items():
            m = optim[MOM + n]
            if m.dtype != dtype or tuple(m.shape) != tuple(p.shape):
                fail("%s: %s %s" % (MOM + n, m.dtype, tuple(m.shape)))
    elif optim:
        fail("optimizer entries present but momentum_valid is %r" % meta["momentum_valid"])

    nbt = {int(v) for k, v in weights.items() if k.endswith("num_batches_tracked")}
    print("checkpoint_oracle: OK %d state_dict tensors (%d params, %d bn) loaded strict, %d momentum,"
          " dtype %s, num_batches_tracked %s, epoch %s iteration %s avg_loss %r" % (
              len(sd), len(params), len(model.bn_modules(net)), len(optim), meta["dtype"],
              sorted(nbt), meta["epoch"], meta["iteration"], float.fromhex(meta["avg_loss"])))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch golden values for the single-op tests (tests/golden/test_ops_torch.c).

For every case writes <out>/<case>.safetensors holding the inputs and PyTorch's outputs, with
the case's parameters as "__metadata__" strings (op, stride, pad, eps, ...). Everything is
computed in torch.float64 from fixed seeds, so the files are deterministic; every INPUT is
exactly representable in float32 (drawn in float32, then widened), so a float32 run of our ops
sees exactly the inputs the float64 truth was computed from and its error is its own.
The sgd_f32 case is computed by torch in float32 (for bit-level comparison of our f32 SGD).

safetensors is written by hand (struct + json) so no package beyond torch is needed; the
--st-selftest mode writes a small known file for tests/unit/test_safetensors.c without
importing torch at all.

Usage: gen_op_goldens.py --out DIR            (all cases; needs torch 1.13)
       gen_op_goldens.py --st-selftest FILE   (stdlib only)
"""
import argparse
import json
import math
import os
import struct
import sys

# ---------------------------------------------------------------------------------------------
# safetensors writer (stdlib only)

_ST_FMT = {"F32": ("f", 4), "F64": ("d", 8), "I64": ("q", 8), "BF16": ("H", 2), "F16": ("e", 2)}


def _bf16_bits(x):
    """float -> bfloat16 bits, round to nearest even (as ssd_f32_to_bf16)."""
    u = struct.unpack("<I", struct.pack("<f", x))[0]
    if (u & 0x7F800000) == 0x7F800000 and (u & 0x007FFFFF):
        return ((u >> 16) | 0x0040) & 0xFFFF
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF


def st_pack(dtype, values):
    """Little-endian bytes of a flat list of python numbers in a safetensors dtype."""
    code, _ = _ST_FMT[dtype]
    if dtype == "BF16":
        values = [_bf16_bits(v) for v in values]
    return struct.pack("<%d%s" % (len(values), code), *values)


def st_write(path, tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw little-endian bytes), written in this order.
    The header is padded with spaces to a multiple of 8 bytes; the file is written to a temp
    name and renamed into place."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    off = 0
    names = set()
    for name, dtype, shape, raw in tensors:
        assert name not in names and name != "__metadata__", name
        names.add(name)
        numel = 1
        for d in shape:
            numel *= d
        assert len(raw) == numel * _ST_FMT[dtype][1], (name, len(raw), shape)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for _, _, _, raw in tensors:
            f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def st_selftest(path):
    """A small file with known contents (mirrored in tests/unit/test_safetensors.c): all four
    dtypes, a 0-d tensor, an empty tensor, metadata, and an F32 tensor at a byte offset that is
    not a multiple of 4 (after 3 BF16 values), which readers must still handle."""
    f32 = [i * 0.5 - 1.0 for i in range(6)]
    bf16 = [1.0, -2.5, 0.15625]
    f64 = [i / 3.0 for i in range(6)]
    i64 = [-(2 ** 40), -1, 0, 1, 2 ** 62]
    st_write(path, [
        ("bf16_vec", "BF16", [3], st_pack("BF16", bf16)),
        ("f32_mat", "F32", [2, 3], st_pack("F32", f32)),
        ("f64_3d", "F64", [3, 1, 2], st_pack("F64", f64)),
        ("i64_vec", "I64", [5], st_pack("I64", i64)),
        ("scalar", "F64", [], st_pack("F64", [math.pi])),
        ("empty", "F32", [0, 3], b""),
    ], metadata={"format": "pt", "writer": "gen_op_goldens.py"})


# ---------------------------------------------------------------------------------------------
# golden cases (torch imported lazily so --st-selftest works without it)

torch = None
F = None


def _flat(t):
    return t.detach().contiguous().reshape(-1).tolist()


def tensor_entry(name, t):
    if t.dtype == torch.float64:
        dt = "F64"
    elif t.dtype == torch.float32:
        dt = "F32"
    elif t.dtype == torch.int64:
        dt = "I64"
    else:
        raise ValueError("dtype %s" % t.dtype)
    return (name, dt, list(t.shape), st_pack(dt, _flat(t)))


class Case:
    def __init__(self, name, seed):
        self.name = name
        self.gen = torch.Generator().manual_seed(seed)
        self.tensors = []
        self.meta = {}

    def randn(self, *shape, scale=1.0, shift=0.0):
        """N(shift, scale^2) values that are exact in float32, returned as float64."""
        t = torch.randn(*shape, generator=self.gen, dtype=torch.float32).double()
        return (t * scale + shift).float().double()

    def rand(self, *shape, lo=0.0, hi=1.0):
        t = torch.rand(*shape, generator=self.gen, dtype=torch.float32).double()
        return (lo + (hi - lo) * t).float().double()

    def add(self, name, t):
        self.tensors.append(tensor_entry(name, t))

    def write(self, outdir):
        self.meta["case"] = self.name
        st_write(os.path.join(outdir, self.name + ".safetensors"), self.tensors, self.meta)


def conv_case(name, seed, N, C, H, W, K, R, stride, pad, bias):
    c = Case(name, seed)
    P = (H + 2 * pad - R) // stride + 1
    Q = (W + 2 * pad - R) // stride + 1
    x = c.randn(N, C, H, W).requires_grad_()
    w = c.randn(K, C, R, R, scale=1.0 / math.sqrt(C * R * R)).requires_grad_()
    b = c.randn(K, scale=0.1).requires_grad_() if bias else None
    dy = c.randn(N, K, P, Q)
    y = F.conv2d(x, w, b, stride=stride, padding=pad)
    y.backward(dy)
    c.meta.update(op="conv2d", stride=stride, pad=pad, bias=int(bias))
    c.add("x", x)
    c.add("w", w)
    if bias:
        c.add("b", b)
    c.add("dy", dy)
    c.add("y", y)
    c.add("dx", x.grad)
    c.add("dw", w.grad)
    if bias:
        c.add("db", b.grad)
    return c


def bn_train_case(name, seed, residual, relu, N=2, C=5, H=7, W=6):
    c = Case(name, seed)
    eps, momentum = 1e-5, 0.1
    # per-channel offsets and scales so the batch statistics are far from (0, 1)
    shift = torch.arange(C, dtype=torch.float64).view(1, C, 1, 1) * 0.5 - 1.0
    x = (c.randn(N, C, H, W, scale=2.0) + shift).float().double().requires_grad_()
    gamma = c.randn(C, scale=0.2, shift=1.0).requires_grad_()
    beta = c.randn(C, scale=0.1).requires_grad_()
    rm0 = c.randn(C, scale=0.3)
    rv0 = c.rand(C, lo=0.5, hi=2.0)
    r = c.randn(N, C, H, W).requires_grad_() if residual else None
    dy = c.randn(N, C, H, W)
    rm, rv = rm0.clone(), rv0.clone()
    y = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=momentum, eps=eps)
    if residual:
        y = y + r
    if relu:
        y = F.relu(y)
    y.backward(dy)
    c.meta.update(op="bn_train", eps=repr(eps), momentum=repr(momentum), residual=int(residual),
                  relu=int(relu))
    c.add("x", x)
    c.add("gamma", gamma)
    c.add("beta", beta)
    c.add("running_mean_in", rm0)
    c.add("running_var_in", rv0)
    if residual:
        c.add("r", r)
    c.add("dy", dy)
    c.add("y", y)
    c.add("running_mean", rm)
    c.add("running_var", rv)
    xd = x.detach()
    c.add("save_mean", xd.mean(dim=(0, 2, 3)))
    c.add("save_var", xd.var(dim=(0, 2, 3), unbiased=False))
    c.add("dx", x.grad)
    c.add("dgamma", gamma.grad)
    c.add("dbeta", beta.grad)
    if residual:
        c.add("dr", r.grad)
    return c


def bn_infer_case(name, seed, residual, relu, N=2, C=5, H=7, W=6):
    c = Case(name, seed)
    eps = 1e-5
    x = c.randn(N, C, H, W, scale=2.0, shift=0.3)
    gamma = c.randn(C, scale=0.2, shift=1.0)
    beta = c.randn(C, scale=0.1)
    rm = c.randn(C, scale=0.3)
    rv = c.rand(C, lo=0.5, hi=2.0)
    r = c.randn(N, C, H, W) if residual else None
    y = F.batch_norm(x, rm.clone(), rv.clone(), gamma, beta, training=False, eps=eps)
    if residual:
        y = y + r
    if relu:
        y = F.relu(y)
    c.meta.update(op="bn_infer", eps=repr(eps), momentum="0.1", residual=int(residual),
                  relu=int(relu))
    for n_, t in (("x", x), ("gamma", gamma), ("beta", beta), ("running_mean", rm),
                  ("running_var", rv)):
        c.add(n_, t)
    if residual:
        c.add("r", r)
    c.add("y", y)
    return c


def relu_case(name, seed):
    c = Case(name, seed)
    x = c.randn(2, 3, 9, 8)
    x.view(-1)[::7] = 0.0  # exact zeros: d relu/dx at 0 is 0 in torch (out > 0 test)
    x.requires_grad_()
    dy = c.randn(2, 3, 9, 8)
    y = F.relu(x)
    y.backward(dy)
    c.meta.update(op="relu")
    c.add("x", x)
    c.add("dy", dy)
    c.add("y", y)
    c.add("dx", x.grad)
    return c


def maxpool_case(name, seed, ties):
    c = Case(name, seed)
    k, s, p = 3, 2, 1
    if ties:
        # relu of values on a 0.5 grid: most windows hold several exact zeros or equal values
        x = torch.relu(torch.round(c.randn(2, 3, 16, 13, scale=1.5) * 2) / 2)
        x[:, :, 4:8, 3:9] = 1.0  # a plateau: every window inside is all ties
    else:
        x = c.randn(2, 3, 16, 13)
    x.requires_grad_()
    P = (16 + 2 * p - k) // s + 1
    Q = (13 + 2 * p - k) // s + 1
    dy = c.randn(2, 3, P, Q)
    y = F.max_pool2d(x, kernel_size=k, stride=s, padding=p)
    y.backward(dy)
    c.meta.update(op="maxpool", kernel=k, stride=s, pad=p)
    c.add("x", x)
    c.add("dy", dy)
    c.add("y", y)
    c.add("dx", x.grad)
    return c


def add_case(name, seed):
    c = Case(name, seed)
    a = c.randn(2, 4, 5, 7)
    b = c.randn(2, 4, 5, 7, scale=3.0)
    c.meta.update(op="add")
    c.add("a", a)
    c.add("b", b)
    c.add("y", a + b)
    return c


def scale_case(name, seed):
    c = Case(name, seed)
    alpha = 0.37
    x = c.randn(3, 5, 11)
    c.meta.update(op="scale", alpha=repr(alpha))
    c.add("x", x)
    c.add("y", x * alpha)
    return c


def copy_fill_case(name, seed):
    """x.clone() and torch.full_like(x, value): the op table's copy and fill."""
    c = Case(name, seed)
    value = -1.625
    x = c.randn(2, 3, 4, 5)
    c.meta.update(op="copy_fill", value=repr(value))
    c.add("x", x)
    c.add("copy", x.clone())
    c.add("fill", torch.full_like(x, value))
    return c


def sgd_case(name, seed, dtype, n=1003, steps=3):
    """torch.optim.SGD(momentum 0.9, weight_decay 5e-4, dampening 0, nesterov False) for
    `steps` steps from a fresh optimizer (torch creates the buffer as the first gradient). n is
    not a multiple of the SIMD width, so torch's vector body and scalar tail both run."""
    c = Case(name, seed)
    lr, mom, wd = 0.05, 0.9, 5e-4
    p0 = c.randn(n, scale=0.5).to(dtype)
    grads = [c.randn(n, scale=0.1).to(dtype) for _ in range(steps)]
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.SGD([p], lr=lr, momentum=mom, weight_decay=wd, dampening=0,
                          nesterov=False)
    c.meta.update(op="sgd", lr=repr(lr), momentum=repr(mom), weight_decay=repr(wd),
                  dampening="0.0", nesterov="0", steps=steps)
    c.add("p0", p0)
    for k, g in enumerate(grads, 1):
        c.add("g%d" % k, g)
    for k, g in enumerate(grads, 1):
        p.grad = g.clone()
        opt.step()
        c.add("p%d" % k, p.detach().clone())
        c.add("buf%d" % k, opt.state[p]["momentum_buffer"].detach().clone())
    return c


def all_cases():
    return [
        # name, padding as in ResNet34 / the SSD head; small channel counts keep the test fast
        conv_case("conv7x7_s2_p3_bias", 101, N=2, C=3, H=30, W=30, K=8, R=7, stride=2, pad=3,
                  bias=True),
        conv_case("conv3x3_s1_p1_nobias", 102, N=2, C=4, H=10, W=9, K=6, R=3, stride=1, pad=1,
                  bias=False),
        conv_case("conv3x3_s2_p1_bias", 103, N=2, C=4, H=11, W=10, K=6, R=3, stride=2, pad=1,
                  bias=True),
        conv_case("conv3x3_s1_p0_bias", 104, N=2, C=5, H=9, W=7, K=4, R=3, stride=1, pad=0,
                  bias=True),
        conv_case("conv1x1_s1_p0_nobias", 105, N=2, C=6, H=7, W=8, K=5, R=1, stride=1, pad=0,
                  bias=False),
        conv_case("conv1x1_s2_p0_nobias", 106, N=2, C=6, H=10, W=9, K=5, R=1, stride=2, pad=0,
                  bias=False),
        bn_train_case("bn_train", 201, residual=False, relu=False),
        bn_train_case("bn_train_relu", 202, residual=False, relu=True),
        bn_train_case("bn_train_add", 203, residual=True, relu=False),
        bn_train_case("bn_train_add_relu", 204, residual=True, relu=True),
        bn_infer_case("bn_infer", 301, residual=False, relu=False),
        bn_infer_case("bn_infer_add_relu", 302, residual=True, relu=True),
        relu_case("relu", 401),
        maxpool_case("maxpool3x3_s2_p1", 501, ties=False),
        maxpool_case("maxpool3x3_s2_p1_ties", 502, ties=True),
        add_case("add", 601),
        scale_case("scale", 701),
        copy_fill_case("copy_fill", 702),
        sgd_case("sgd_f64", 801, torch.float64),
        sgd_case("sgd_f32", 801, torch.float32),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="directory for <case>.safetensors")
    ap.add_argument("--st-selftest", metavar="FILE", help="write the safetensors self-test file")
    args = ap.parse_args()
    if args.st_selftest:
        st_selftest(args.st_selftest)
        return 0
    if not args.out:
        ap.error("--out or --st-selftest is required")
    global torch, F
    import torch as _torch
    import torch.nn.functional as _F
    torch, F = _torch, _F
    torch.set_num_threads(1)  # deterministic reductions
    os.makedirs(args.out, exist_ok=True)
    cases = all_cases()
    for c in cases:
        c.write(args.out)
    print("gen_op_goldens: wrote %d cases to %s (torch %s)"
          % (len(cases), args.out, torch.__version__))
    return 0


if __name__ == "__main__":
    sys.exit(main())

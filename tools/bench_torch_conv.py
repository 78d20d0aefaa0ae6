#!/usr/bin/python3
"""PyTorch side of bench_ops --torch: time one conv2d shape's forward, backward-data and
backward-weights on the CPU and print one JSON object on stdout.

Method (stated in the JSON as "method"):
  forward          torch.nn.functional.conv2d(x, w, b, stride, padding)
  backward-data    torch.ops.aten.convolution_backward(dy, x, w, ..., output_mask=(1,0,0))
  backward-weights torch.ops.aten.convolution_backward(dy, x, w, ..., output_mask=(0,1,b))
  convolution_backward is the op autograd runs for conv2d's backward, and the one
  torch.nn.grad.conv2d_input / conv2d_weight wrap in torch 1.13.1; calling it with one output
  selected times exactly one pass, without autograd graph overhead and without the expanded
  dummy input those wrappers pass. NCHW fp32 tensors; torch picks its conv backend as it does
  by default (mkldnn/oneDNN for these shapes; reported as "conv_backend").

Each pass: `warmup` untimed calls, then `reps` timed calls, median (and min) in ms. The oneDNN
implementation torch ran is captured from one extra call under torch.backends.mkldnn.verbose
(its output goes to fd 1, so it is redirected to a temp file while that call runs).

Usage: bench_torch_conv.py [--threads T] [--batches 8,32] [--warmup W] [--reps R]
                           [--c 256 --k 256 --h 38 --r 3 --stride 1 --pad 1 --bias 0]
Exit status 0 on success; 3 (with {"error": ...} on stdout) when torch cannot be imported.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    p.add_argument("--batches", default="8,32", help="comma-separated batch sizes")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--c", type=int, default=256)
    p.add_argument("--k", type=int, default=256)
    p.add_argument("--h", type=int, default=38)
    p.add_argument("--r", type=int, default=3)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--pad", type=int, default=1)
    p.add_argument("--bias", type=int, default=0)
    a = p.parse_args()
    try:
        a.batches = [int(b) for b in a.batches.split(",") if b]
    except ValueError:
        p.error("--batches: expected comma-separated integers")
    if not a.batches or min(a.batches) < 1 or a.reps < 1 or a.warmup < 0:
        p.error("batches must be >= 1, reps >= 1, warmup >= 0")
    return a


def time_call(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts), min(ts)


def onednn_impl(torch, fn):
    """Run fn once with oneDNN verbose on; return the impl fields of its exec lines."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
        with tempfile.TemporaryFile(mode="w+") as tmp:
            os.dup2(tmp.fileno(), 1)
            try:
                with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                    fn()
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
                os.close(saved)
            tmp.seek(0)
            lines = tmp.read().splitlines()
    except Exception as e:  # verbose is best effort: never fail the benchmark for it
        return "unknown (%s)" % e
    impls = []
    for ln in lines:
        f = ln.split(",")
        # dnnl_verbose,exec,cpu,<primitive>,<impl>,<prop_kind>,...
        if len(f) > 5 and f[0] in ("dnnl_verbose", "onednn_verbose") and f[1] == "exec":
            impls.append("%s:%s" % (f[3], f[4]) if f[3] != "convolution" else f[4])
    return " + ".join(impls) if impls else "none reported (not oneDNN?)"


def main():
    a = parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:
        print(json.dumps({"error": "cannot import torch with %s: %s" % (sys.executable, e)}))
        return 3
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    stride, pad = (a.stride, a.stride), (a.pad, a.pad)
    out = {
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "warmup": a.warmup,
        "reps": a.reps,
        "method": "fwd: F.conv2d; bwd_data / bwd_weights: torch.ops.aten.convolution_backward "
                  "with output_mask selecting one gradient (the op autograd and "
                  "torch.nn.grad.conv2d_input/conv2d_weight use); NCHW fp32; median of reps",
        "shape": {"c": a.c, "k": a.k, "h": a.h, "r": a.r, "stride": a.stride, "pad": a.pad,
                  "bias": bool(a.bias)},
        "results": [],
    }
    p = (a.h + 2 * a.pad - a.r) // a.stride + 1
    with torch.no_grad():
        for n in a.batches:
            x = torch.randn(n, a.c, a.h, a.h)
            w = torch.randn(a.k, a.c, a.r, a.r) * 0.05
            b = torch.randn(a.k) if a.bias else None
            dy = torch.randn(n, a.k, p, p)
            bias_sizes = [a.k] if a.bias else None
            try:
                backend = str(torch._C._select_conv_backend(x, w, b, stride, pad, (1, 1), False,
                                                            (0, 0), 1))
            except Exception as e:
                backend = "unknown (%s)" % e

            def fwd():
                return F.conv2d(x, w, b, stride, pad)

            def bwd_data():
                return torch.ops.aten.convolution_backward(
                    dy, x, w, bias_sizes, stride, pad, (1, 1), False, (0, 0), 1,
                    (True, False, False))

            def bwd_weights():
                return torch.ops.aten.convolution_backward(
                    dy, x, w, bias_sizes, stride, pad, (1, 1), False, (0, 0), 1,
                    (False, True, bool(a.bias)))

            flops = 2.0 * n * a.c * a.k * a.r * a.r * p * p
            row = {"batch": n, "conv_backend": backend, "flops": flops}
            for name, fn in (("fwd", fwd), ("bwd_data", bwd_data), ("bwd_weights", bwd_weights)):
                med, mn = time_call(fn, a.warmup, a.reps)
                row[name] = {"ms": med, "ms_min": mn, "gflops": flops / med * 1e-6,
                             "impl": onednn_impl(torch, fn)}
            out["results"].append(row)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

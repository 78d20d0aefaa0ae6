"""Test oracle for src/train/checkpoint: does a checkpoint give the same loc/conf in PyTorch?

    python3 tools/checkpoint_forward_oracle.py CHECKPOINT OUTPUTS [--tol T]

CHECKPOINT is a training checkpoint written by ssd_checkpoint_save (src/train/checkpoint.h).
OUTPUTS holds what our program computed from it: `images` [N,3,300,300] and the inference-mode
(running BN statistics) outputs `loc` [N,4,8732] and `conf` [N,81,8732], all in the checkpoint's
dtype. Both files are read with tools/torchref/st.py (an independent stdlib/numpy reader).

The oracle drops the `optimizer.*` entries, builds tools/torchref/model.py's SSD300 in the
file's precision (f32 or f64), load_state_dict(strict=True), .eval(), forwards the images and
compares with ours, per output tensor:

    err = max|ours - torch| / max|torch|        (the normalised max error)

and passes when the larger of the two (loc, conf) is <= the tolerance. Default tolerances:
  - f64: 1e-10. Both sides compute in float64 (unit roundoff 1.1e-16); they differ only in the
    summation order inside ~40 convolutions (up to 4608 products per output) and 29 inference
    batch normalisations, measured at ~1e-14 (tests/train/test_checkpoint_torch.c prints it).
    1e-10 leaves four orders of margin and is six orders below what a perturbed BN statistic,
    two exchanged tensors or one wrong output entry give (1.3e-3, 3.7e-2 and 3e-4 in the f32 test,
    which checks that such cases FAIL).
  - f32: 3e-5. Float32 unit roundoff 6e-8 through the same depth; both sides round (oneDNN
    against torch's own float32 kernels). Measured 4.2e-6 on the test's trained checkpoint (the
    network parity suite, tests/golden/test_model_torch.c, sees a similar 1.7e-6 normwise against
    float64); 3e-5 is a 7x margin. ReLU and max-pool are continuous, so a near tie cannot move an
    inference forward by more than the rounding itself (unlike gradients, where a flipped mask
    changes a term by O(1)).
Prints "checkpoint_forward_oracle: OK max_rel_err=..." and exits 0, or prints
"checkpoint_forward_oracle: FAIL: <reason>" and exits 1.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchref import model, st  # noqa: E402

DTYPES = {"f32": torch.float32, "f64": torch.float64}
DEFAULT_TOL = {"f32": 3e-5, "f64": 1e-10}


def fail(msg):
    print("checkpoint_forward_oracle: FAIL: " + msg, flush=True)
    sys.exit(1)


def norm_max_err(ours, ref):
    """max|ours - ref| / max|ref| (0/0 = 0); NaN anywhere gives inf."""
    diff = (ours - ref).abs().max().item()
    scale = ref.abs().max().item()
    if diff != diff or scale != scale:
        return float("inf")
    if scale == 0:
        return 0.0 if diff == 0 else float("inf")
    return diff / scale


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("outputs")
    p.add_argument("--tol", type=float, default=None,
                   help="normalised max error allowed (default by dtype: %s)" % DEFAULT_TOL)
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

    try:
        tensors, meta = st.read(a.checkpoint)
    except Exception as e:  # noqa: BLE001 -- any unreadable file is a FAIL with its reason
        fail("%s: cannot read: %s" % (a.checkpoint, e))
    if meta.get("format") != "ssd-checkpoint":
        fail("%s: metadata format is %r, not 'ssd-checkpoint'" % (a.checkpoint, meta.get("format")))
    if meta.get("dtype") not in DTYPES:
        fail("%s: metadata dtype %r" % (a.checkpoint, meta.get("dtype")))
    dtype = DTYPES[meta["dtype"]]
    tol = a.tol if a.tol is not None else DEFAULT_TOL[meta["dtype"]]
    weights = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}

    try:
        outs, _ = st.read(a.outputs)
    except Exception as e:  # noqa: BLE001
        fail("%s: cannot read: %s" % (a.outputs, e))
    for k in ("images", "loc", "conf"):
        if k not in outs:
            fail("%s: no tensor %r" % (a.outputs, k))
        if outs[k].dtype != dtype:
            fail("%s: %s is %s, the checkpoint is %s" % (a.outputs, k, outs[k].dtype, dtype))
    images = outs["images"]
    n = images.shape[0]
    if tuple(images.shape) != (n, 3, 300, 300) or n < 1:
        fail("images shape %s" % (tuple(images.shape),))
    for k, c in (("loc", 4), ("conf", model.N_CLASSES)):
        if tuple(outs[k].shape) != (n, c, 8732):
            fail("%s shape %s, expected %s" % (k, tuple(outs[k].shape), (n, c, 8732)))

    torch.manual_seed(0)
    net = model.SSD300().to(dtype)
    try:
        res = net.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        fail("load_state_dict(strict=True) refused %s: %s" % (a.checkpoint, e))
    if res.missing_keys or res.unexpected_keys:
        fail("missing %s unexpected %s" % (res.missing_keys, res.unexpected_keys))
    net.eval()
    t0 = time.time()
    with torch.no_grad():
        loc, conf = net(images)
    secs = time.time() - t0

    errs = {"loc": norm_max_err(outs["loc"], loc), "conf": norm_max_err(outs["conf"], conf)}
    worst = max(errs.values())
    detail = ("max_rel_err=%.3e (loc %.3e, conf %.3e; max|loc| %.4g, max|conf| %.4g) tol %.0e, "
              "dtype %s, %d image(s), torch forward %.1f s" % (
                  worst, errs["loc"], errs["conf"], loc.abs().max().item(),
                  conf.abs().max().item(), tol, meta["dtype"], n, secs))
    if not (worst <= tol):
        fail(detail)
    print("checkpoint_forward_oracle: OK " + detail, flush=True)


if __name__ == "__main__":
    main()

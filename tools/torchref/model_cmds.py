"""run.py subcommands for the SSD300 network oracle (model.py, calibrate.py, loss.py).

  run.py step --weights W.safetensors --batch B.safetensors --out O.safetensors
              [--dtype f64|f32|bf16emu|autocast] [--eval]
              [--sgd-lr LR [--momentum 0.9] [--weight-decay 5e-4]]
      One training step in train mode: forward, loss.ssd_loss, backward (and with --sgd-lr one
      torch.optim.SGD step from fresh momentum buffers). W: every parameter and BN running_mean /
      running_var by its reference name (num_batches_tracked optional, default 0); B: images f32
      [N,3,300,300], bboxes f32 [N,8732,4] (encoder xywh), labels i64 [N,8732]. O: loc [N,4,8732],
      conf [N,81,8732], loss (0-d), per_image_loss [N], grad.<param> for every parameter, every BN
      buffer after the forward under its own name, and sgd.<param> (parameter after the step) with
      --sgd-lr; with --eval also eval.loc / eval.conf, an eval-mode forward with the updated
      running stats (before the SGD step). Float outputs in --dtype (default f64),
      num_batches_tracked int64. bf16 modes: `autocast` runs the float32 network's forward under
      torch.autocast("cpu", bfloat16) and the loss in float32 from its bf16 head outputs
      (PyTorch's own bf16, BN/ReLU/add included); `bf16emu` runs float64 with every convolution
      as _Bf16Conv (operands and results rounded to bf16, exact products), i.e. what
      `ssd step --autocast` computes, with float64 sums. Outputs in the network's dtype.
      Debian's torch links the reference (netlib) BLAS, so f64 is slow: ~85 s at batch 2 on two
      cores, against ~3 s (batch 2) / ~9 s (batch 8) in f32.
  run.py make-case --out-weights W.safetensors --out-batch B.safetensors --batch N --seed S
              [--images-from DIR [--grain 0.03]] [--margin-frac 0.08] [--inactive-frac 0.15]
      Deterministic case with no near ReLU/max-pool/hard-negative ties (see calibrate.py); prints
      the calibration summary. Weights float32 (+ int64 counters), batch as `step` reads it.
  run.py count
      Parameter count, parameter tensor count and BN count (self-check against spec 1.4).
  run.py model-compare --ref R.safetensors --test T.safetensors [--top N]
      Per tensor held by both files, worst first: max|T-R| / max|R|, the RMS relative error and
      max|R|, e.g. a float32 `step` output against a float64 one.
  run.py fdcheck --weights W --batch B [--param NAME[:FLAT_INDEX] ...] [--h 1e-5]
      Central finite differences of the float64 loss against autograd for single scalars.
"""
import argparse
import math
import time

import torch

from torchref import boxes, model, st
from torchref import loss as loss_mod

DTYPES = {"f64": torch.float64, "f32": torch.float32}
# bf16 modes of `step`: the float dtype the network runs in
BF16_MODES = {"bf16emu": torch.float64, "autocast": torch.float32}


def _bf16(t):
    """t rounded to bfloat16 (nearest even; float64 goes through float32 first, as a float32
    sum does in our kernels), kept in t's dtype."""
    return t.to(torch.float32).to(torch.bfloat16).to(t.dtype)


class _Bf16Conv(torch.autograd.Function):
    """A convolution as bf16 autocast computes it, in float64: operands rounded to bf16 (so
    every product is exact), sums in float64, the result rounded to bf16; backward rounds the
    output gradient, computes the input, weight and bias gradients from the rounded operands
    and rounds each to bf16. What `ssd step --autocast` does with float32 sums."""

    @staticmethod
    def forward(ctx, x, w, b, stride, padding):
        xr, wr = _bf16(x), _bf16(w)
        y = torch.nn.functional.conv2d(xr, wr, None if b is None else _bf16(b), stride, padding)
        ctx.save_for_backward(xr, wr)
        ctx.geom = (stride, padding, b is not None)
        return _bf16(y)

    @staticmethod
    def backward(ctx, g):
        xr, wr = ctx.saved_tensors
        stride, padding, has_b = ctx.geom
        gr = _bf16(g)
        dx = _bf16(torch.nn.grad.conv2d_input(xr.shape, wr, gr, stride, padding))
        dw = _bf16(torch.nn.grad.conv2d_weight(xr, wr.shape, gr, stride, padding))
        db = _bf16(gr.sum((0, 2, 3))) if has_b else None
        return dx, dw, db, None, None


def emulate_bf16_convs(net):
    """Every Conv2d of net runs through _Bf16Conv (the bf16emu oracle)."""
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.forward = (lambda mod: lambda x: _Bf16Conv.apply(
                x, mod.weight, mod.bias, mod.stride, mod.padding))(m)


def load_weights(net, w, dtype):
    """Load by name with full checking; returns the number of num_batches_tracked defaulted."""
    sd = net.state_dict()
    unknown = sorted(set(w) - set(sd))
    if unknown:
        raise SystemExit("weights: unknown tensor names: %s" % ", ".join(unknown[:10]))
    missing = []
    defaulted = 0
    with torch.no_grad():
        for name, dst in sd.items():
            if name not in w:
                if name.endswith(".num_batches_tracked"):
                    dst.zero_()
                    defaulted += 1
                    continue
                missing.append(name)
                continue
            src = w[name]
            if tuple(src.shape) != tuple(dst.shape):
                raise SystemExit("weights: %s has shape %s, expected %s"
                                 % (name, tuple(src.shape), tuple(dst.shape)))
            if name.endswith(".num_batches_tracked"):
                dst.copy_(src.to(torch.int64))
            else:
                dst.copy_(src.to(dtype))
    if missing:
        raise SystemExit("weights: missing tensors: %s" % ", ".join(missing[:10]))
    return defaulted


def _load_case(weights, batch, dtype):
    w, _ = st.read(weights)
    b, _ = st.read(batch)
    for k in ("images", "bboxes", "labels"):
        if k not in b:
            raise SystemExit("batch: missing %s" % k)
    net = model.SSD300().to(dtype)
    load_weights(net, w, dtype)
    n = b["images"].shape[0]
    if (tuple(b["images"].shape) != (n, 3, 300, 300) or tuple(b["bboxes"].shape) != (n, 8732, 4)
            or tuple(b["labels"].shape) != (n, 8732)):
        raise SystemExit("batch: bad shapes images %s bboxes %s labels %s" % (
            tuple(b["images"].shape), tuple(b["bboxes"].shape), tuple(b["labels"].shape)))
    return net, b


def _loss(net, b, dtype, autocast=False):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        ploc, plabel = net(b["images"].to(dtype))
    # the loss in float32 from the bf16 head outputs: the reference's loss ops (cross entropy,
    # smooth L1) are on autocast's float32 list
    ploc, plabel = ploc.to(dtype), plabel.to(dtype)
    dxywh, _ = boxes.default_boxes()
    lossv, per = loss_mod.ssd_loss(ploc, plabel, b["bboxes"], b["labels"].to(torch.int64),
                                   dxywh.to(dtype))
    return ploc, plabel, lossv, per


def cmd_step(argv):
    ap = argparse.ArgumentParser(prog="run.py step")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=sorted(DTYPES) + sorted(BF16_MODES), default="f64")
    ap.add_argument("--sgd-lr", type=float, default=None)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--eval", action="store_true",
                    help="after the step: eval-mode forward with the updated running stats "
                         "(eval.loc, eval.conf), before any SGD step")
    a = ap.parse_args(argv)
    dtype = DTYPES.get(a.dtype) or BF16_MODES[a.dtype]
    autocast = a.dtype == "autocast"
    t0 = time.time()
    net, b = _load_case(a.weights, a.batch, dtype)
    if a.dtype == "bf16emu":
        emulate_bf16_convs(net)
    net.train()
    net.zero_grad(set_to_none=True)
    ploc, plabel, lossv, per = _loss(net, b, dtype, autocast)
    lossv.backward()
    out = {"loc": ploc.detach(), "conf": plabel.detach(), "loss": lossv.detach(),
           "per_image_loss": per.detach()}
    for name, p in net.named_parameters():
        if p.grad is None:
            raise SystemExit("step: %s received no gradient" % name)
        out["grad." + name] = p.grad.detach().clone()
    for name, buf in net.named_buffers():
        out[name] = buf.detach().clone()
    if a.eval:
        net.eval()
        with torch.no_grad():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                eloc, econf = net(b["images"].to(dtype))
            eloc, econf = eloc.to(dtype), econf.to(dtype)
        out["eval.loc"], out["eval.conf"] = eloc, econf
        net.train()
    if a.sgd_lr is not None:
        opt = torch.optim.SGD(net.parameters(), lr=a.sgd_lr, momentum=a.momentum, dampening=0,
                              weight_decay=a.weight_decay, nesterov=False)
        opt.step()
        for name, p in net.named_parameters():
            out["sgd." + name] = p.detach().clone()
    meta = {"dtype": a.dtype, "batch": str(b["images"].shape[0]),
            "sgd_lr": "" if a.sgd_lr is None else repr(a.sgd_lr),
            "momentum": repr(a.momentum), "weight_decay": repr(a.weight_decay)}
    st.write(a.out, out, meta)
    print("step: dtype %s batch %d loss %.9g (%.2f s, %d threads)" % (
        a.dtype, b["images"].shape[0], float(lossv), time.time() - t0, torch.get_num_threads()))


def cmd_make_case(argv):
    from torchref import calibrate
    ap = argparse.ArgumentParser(prog="run.py make-case")
    ap.add_argument("--out-weights", required=True)
    ap.add_argument("--out-batch", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--images-from", default=None)
    ap.add_argument("--grain", type=float, default=0.03,
                    help="std of the Gaussian grain added to 8-bit images from --images-from, "
                         "in [0,1] pixel units (flat regions otherwise tie in the max-pool)")
    ap.add_argument("--margin-frac", type=float, default=0.08)
    ap.add_argument("--inactive-frac", type=float, default=0.15)
    a = ap.parse_args(argv)
    if a.batch < 1:
        raise SystemExit("make-case: --batch must be >= 1")
    t0 = time.time()
    images = (calibrate.load_images(a.images_from, a.batch, a.seed, a.grain) if a.images_from
              else None)
    weights, batch, summary = calibrate.make_case(a.batch, a.seed, images, a.margin_frac,
                                                  a.inactive_frac,
                                                  log=lambda s: print(s, flush=True))
    meta = {"seed": str(a.seed), "batch": str(a.batch), "margin_frac": repr(a.margin_frac),
            "inactive_frac": repr(a.inactive_frac),
            "images": a.images_from or "synthetic",
            "worst_margin_ratio": repr(summary["worst_margin_ratio"]),
            "pool_min_gap_over_std": repr(summary["pool_min_rel_gap"]),
            "pool_min_gap_over_max": repr(summary["pool_min_gap_over_max"]),
            "loss_f64": repr(summary["loss"])}
    st.write(a.out_weights, weights, meta)
    st.write(a.out_batch, batch, meta)
    print("make-case: wrote %s and %s (%.1f s)" % (a.out_weights, a.out_batch, time.time() - t0))


def cmd_count(argv):
    argparse.ArgumentParser(prog="run.py count").parse_args(argv)
    net = model.SSD300()
    n, t, nbn = model.count(net)
    groups = {}
    for name, p in net.named_parameters():
        g = "backbone" if name.startswith("model.") else name.split(".")[0]
        groups[g] = groups.get(g, 0) + p.numel()
    print("parameters %d in %d tensors; %d BatchNorm layers; state dict %d entries" % (
        n, t, nbn, len(net.state_dict())))
    print("  " + ", ".join("%s %d" % kv for kv in groups.items()))
    ok = n == model.N_PARAMS and t == model.N_PARAM_TENSORS and nbn == model.N_BN
    print("matches spec (19972534 / 131 / 29): %s" % ("yes" if ok else "NO"))
    if not ok:
        raise SystemExit(1)


def cmd_compare(argv):
    ap = argparse.ArgumentParser(prog="run.py model-compare")
    ap.add_argument("--ref", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--top", type=int, default=0, help="print only the N worst (0 = all)")
    a = ap.parse_args(argv)
    r, _ = st.read(a.ref)
    t, _ = st.read(a.test)
    rows = []
    for k, rv in r.items():
        if k not in t:
            continue
        tv = t[k]
        if tuple(tv.shape) != tuple(rv.shape):
            rows.append((math.inf, k, "shape %s vs %s" % (tuple(tv.shape), tuple(rv.shape))))
            continue
        if not rv.is_floating_point():
            d = int((tv != rv).sum())
            rows.append((float(d), k, "%d differing integers" % d))
            continue
        rv = rv.double()
        tv = tv.double()
        den = float(rv.abs().max())
        diff = (tv - rv).abs()
        mx = float(diff.max()) if diff.numel() else 0.0
        rel = mx / den if den > 0 else mx
        nrm = float((diff.pow(2).sum() / rv.pow(2).sum().clamp(min=1e-300)).sqrt())
        rows.append((rel, k, "max|d|/max|ref| %.3e  rms-rel %.3e  max|ref| %.3e" % (rel, nrm, den)))
    rows.sort(key=lambda x: -x[0])
    if a.top:
        rows = rows[:a.top]
    for rel, k, s in rows:
        print("%-48s %s" % (k, s))


def cmd_fdcheck(argv):
    ap = argparse.ArgumentParser(prog="run.py fdcheck")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--param", action="append", default=[],
                    help="NAME[:FLAT_INDEX] (repeatable; no index = the element with the largest "
                         "|gradient|); default: a few spread over the net")
    ap.add_argument("--h", type=float, default=1e-5)
    a = ap.parse_args(argv)
    dtype = torch.float64
    net, b = _load_case(a.weights, a.batch, dtype)
    net.train()
    params = dict(net.named_parameters())
    picks = a.param or ["model.layer1.0.weight:100", "model.layer1.4.1.bn2.weight:3",
                        "model.layer2.0.3.conv1.weight:12345", "additional_blocks.2.0.bias:7",
                        "conf.0.weight", "loc.1.bias"]
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    net.zero_grad(set_to_none=True)
    _, _, lossv, _ = _loss(net, b, dtype)
    lossv.backward()
    for pk in picks:
        name, _, idx = pk.partition(":")
        if name not in params:
            raise SystemExit("fdcheck: no parameter %s" % name)
        p = params[name]
        idx = int(idx) if idx else int(p.grad.abs().argmax())
        pk = "%s:%d" % (name, idx)
        g = float(p.grad.reshape(-1)[idx])
        vals = []
        for s in (1.0, -1.0):
            net.load_state_dict(saved)
            with torch.no_grad():
                p.view(-1)[idx] += s * a.h
                _, _, lv, _ = _loss(net, b, dtype)
            vals.append(float(lv))
        net.load_state_dict(saved)
        fd = (vals[0] - vals[1]) / (2 * a.h)
        print("%-40s autograd % .10e  fd % .10e  rel.diff %.2e" % (
            pk, g, fd, abs(fd - g) / max(abs(g), 1e-300)))


def register(command):
    command("step")(cmd_step)
    command("make-case")(cmd_make_case)
    command("count")(cmd_count)
    command("model-compare")(cmd_compare)
    command("fdcheck")(cmd_fdcheck)

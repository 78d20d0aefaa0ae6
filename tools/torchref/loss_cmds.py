"""run.py subcommand for the loss oracle (spec/ssd-reference.md section 5):

  run.py loss --in IN.safetensors --out OUT.safetensors

IN:  ploc [N,4,A], plabel [N,81,A] (float), gloc [N,A,4] (float, encoder xywh), glabel [N,A] (I64);
     optional metadata "dtype" (compute dtype, "f64" default or "f32") and "target_dtype"
     (dtype the regression targets are computed in before the cast, default = dtype; the
     reference computes them in "f32").
OUT: loss [1], per_image [N], dloc [N,4,A], dconf [N,81,A] in the compute dtype: the batch loss
     of torchref.loss.ssd_loss and its gradient by autograd.
"""
import argparse

import torch

from torchref import boxes, loss, st

_DT = {"f32": torch.float32, "f64": torch.float64}


def cmd_loss(argv):
    ap = argparse.ArgumentParser(prog="run.py loss")
    ap.add_argument("--in", dest="inp", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    t, meta = st.read(a.inp)
    dt = _DT[meta.get("dtype", "f64")]
    tdt = _DT[meta.get("target_dtype", meta.get("dtype", "f64"))]
    xywh, _ = boxes.default_boxes()
    ploc = t["ploc"].to(dt).requires_grad_(True)
    plabel = t["plabel"].to(dt).requires_grad_(True)
    batch, per_image = loss.ssd_loss(ploc, plabel, t["gloc"], t["glabel"], xywh, target_dtype=tdt)
    batch.backward()
    st.write(a.out, {
        "loss": batch.detach().reshape(1),
        "per_image": per_image.detach(),
        "dloc": ploc.grad,
        "dconf": plabel.grad,
    })


def register(command):
    command("loss")(cmd_loss)

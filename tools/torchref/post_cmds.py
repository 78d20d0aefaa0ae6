"""run.py subcommand for the post-processing oracle (spec/ssd-reference.md section 8):

  run.py post --in IN.safetensors --out OUT.safetensors

IN:  ploc [N,4,A], plabel [N,81,A] (float32); optional metadata score_thresh, topk, iou_thresh,
     max_dets (defaults 0.05, 200, 0.5, 200) and exp ("torch" default, or "libm": see
     torchref.post.decode).
OUT: per image i: boxes.<i> [m,4] f32, scores.<i> [m] f32, labels.<i> [m] i64, anchors.<i> [m] i64
     (best first, torchref.post tie rules), decoded.<i> [A,4] f32 (every anchor's box),
     num_candidates.<i> [1] i64, num_kept.<i> [1] i64 (NMS survivors before the max_dets cut),
     margins.<i> [2] f64 = (score_margin, iou_margin) for detecting near-threshold ambiguity.
The per-image result; the batch-drop quirk is left to the caller.
"""
import argparse

import torch

from torchref import boxes, post, st


def cmd_post(argv):
    ap = argparse.ArgumentParser(prog="run.py post")
    ap.add_argument("--in", dest="inp", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    t, meta = st.read(a.inp)
    cfg = {}
    for key, conv in (("score_thresh", float), ("topk", int), ("iou_thresh", float),
                      ("max_dets", int), ("exp", str)):
        if key in meta:
            cfg[key] = conv(meta[key])
    xywh, _ = boxes.default_boxes()
    out = {}
    for i in range(t["ploc"].shape[0]):
        r = post.postprocess_image(t["ploc"][i], t["plabel"][i], xywh, cfg)
        out["boxes.%d" % i] = r["boxes"].to(torch.float32).reshape(-1, 4)
        out["scores.%d" % i] = r["scores"].to(torch.float32)
        out["labels.%d" % i] = r["labels"].to(torch.int64)
        out["anchors.%d" % i] = r["anchors"].to(torch.int64)
        out["decoded.%d" % i] = r["decoded"].to(torch.float32)
        out["num_candidates.%d" % i] = torch.tensor([r["num_candidates"]], dtype=torch.int64)
        out["num_kept.%d" % i] = torch.tensor([r["num_kept"]], dtype=torch.int64)
        out["margins.%d" % i] = torch.tensor([r["score_margin"], r["iou_margin"]],
                                             dtype=torch.float64)
    st.write(a.out, out)


def register(command):
    command("post")(cmd_post)

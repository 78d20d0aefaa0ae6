"""Inference post-processing in torch (spec/ssd-reference.md section 8), written from the spec
as an oracle for src/eval/postprocess.c:

  decode(ploc [4,A] f32, dboxes_xywh [A,4], exp="torch") -> ltrb [A,4] f32
                                        (reference op order, float32; exp="libm" evaluates the
                                        float32 exp with the C library's expf through ctypes, so
                                        a C caller using the same libm gets bit-identical boxes:
                                        torch's vectorised expf differs from glibc's by 1 ulp for
                                        ~9% of inputs, which would make IoU-vs-threshold decisions
                                        ambiguous at the 1e-5 level)
  scores(plabel [81,A]) -> [A,81] f32   softmax in float64, rounded to float32 once (the C code
                                        does the same; the reference's float32 softmax agrees
                                        to ~1 ulp)
  postprocess_image(ploc, plabel, dboxes_xywh, cfg) -> dict with
      boxes [m,4] f32, scores [m] f32, labels [m] i64, anchors [m] i64 (best first),
      decoded [A,4] (all anchors), num_candidates (all classes, before top-k/NMS), num_kept
      (survivors of NMS over all classes, before the max_dets cut), and two ambiguity margins:
      score_margin = min |score64 - thresh| over all class scores (float64 softmax),
      iou_margin   = min |IoU - iou_thresh| over every comparison the greedy NMS made.

Tie rules (the reference's sorts leave ties unspecified; these are the C code's documented ones):
within a class equal scores -> lower anchor index first; after merging, score descending, then
label ascending, then anchor ascending. NMS: the best remaining candidate is emitted and removed,
every other remaining candidate is kept iff IoU < iou_thresh (a NaN IoU removes it).
"""
import torch

DEFAULT_CFG = {"score_thresh": 0.05, "topk": 200, "iou_thresh": 0.5, "max_dets": 200,
               "exp": "torch"}


def _libm_expf(x):
    import ctypes
    import ctypes.util

    import numpy as np
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    f = libm.expf
    f.argtypes = [ctypes.c_float]
    f.restype = ctypes.c_float
    flat = x.contiguous().view(-1).numpy()
    out = np.array([f(float(v)) for v in flat], dtype=np.float32)
    return torch.from_numpy(out).view(x.shape)


def decode(ploc, dxywh, exp="torch"):
    p = ploc.to(torch.float32).t()
    d = dxywh.to(torch.float32)
    xy = 0.1 * p[:, :2]
    wh = 0.2 * p[:, 2:]
    xy = xy * d[:, 2:] + d[:, :2]
    wh = (_libm_expf(wh) if exp == "libm" else wh.exp()) * d[:, 2:]
    return torch.cat((xy - 0.5 * wh, xy + 0.5 * wh), dim=1)


def scores64(plabel):
    return torch.softmax(plabel.to(torch.float64).t(), dim=1)


def iou_one_to_many(box, boxes):
    """float32 IoU (spec 4 formula) of one ltrb box with each row of boxes."""
    lt = torch.max(boxes[:, :2], box[:2].unsqueeze(0))
    rb = torch.min(boxes[:, 2:], box[2:].unsqueeze(0))
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    a1 = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    a2 = (box[2] - box[0]) * (box[3] - box[1])
    return inter / (a1 + a2 - inter)


def _order(keys_desc, *keys_asc):
    """Indices sorting by keys_desc descending, then each of keys_asc ascending (stable sorts
    from the least significant key)."""
    n = keys_desc.shape[0]
    idx = torch.arange(n)
    for k in reversed(keys_asc):
        _, o = torch.sort(k[idx], stable=True)
        idx = idx[o]
    _, o = torch.sort(keys_desc[idx], descending=True, stable=True)
    return idx[o]


def postprocess_image(ploc, plabel, dxywh, cfg=None):
    cfg = dict(DEFAULT_CFG, **(cfg or {}))
    thr = torch.tensor(cfg["score_thresh"], dtype=torch.float32)
    iou_thr = torch.tensor(cfg["iou_thresh"], dtype=torch.float32)
    boxes = decode(ploc, dxywh, cfg["exp"])
    s64 = scores64(plabel)
    s32 = s64.to(torch.float32)
    score_margin = (s64[:, 1:] - float(thr)).abs().min().item()
    iou_margin = float("inf")
    A = boxes.shape[0]
    anchors_all = torch.arange(A)
    out_b, out_s, out_l, out_a = [], [], [], []
    ncand = 0
    for k in range(1, s32.shape[1]):
        sc = s32[:, k]
        m = sc > thr
        ncand += int(m.sum())
        if not bool(m.any()):
            continue
        cs, ca = sc[m], anchors_all[m]
        o = _order(cs, ca)[:cfg["topk"]]
        cs, ca = cs[o], ca[o]
        cb = boxes[ca]
        remaining = torch.arange(cs.shape[0])
        kept = []
        while remaining.numel() > 0:
            i = int(remaining[0])
            kept.append(i)
            rest = remaining[1:]
            if rest.numel() == 0:
                break
            iou = iou_one_to_many(cb[i], cb[rest])
            finite = iou[~torch.isnan(iou)]
            if finite.numel():
                iou_margin = min(iou_margin, (finite - iou_thr).abs().min().item())
            remaining = rest[iou < iou_thr]
        kept = torch.tensor(kept, dtype=torch.long)
        out_b.append(cb[kept])
        out_s.append(cs[kept])
        out_a.append(ca[kept])
        out_l.append(torch.full((kept.numel(),), k, dtype=torch.long))
    nkept = sum(int(x.numel()) for x in out_s)
    if out_b:
        b, s, l, a = torch.cat(out_b), torch.cat(out_s), torch.cat(out_l), torch.cat(out_a)
        o = _order(s, l, a)[:cfg["max_dets"]]
        b, s, l, a = b[o], s[o], l[o], a[o]
    else:
        b = torch.zeros(0, 4)
        s = torch.zeros(0)
        l = torch.zeros(0, dtype=torch.long)
        a = torch.zeros(0, dtype=torch.long)
    return {"boxes": b, "scores": s, "labels": l, "anchors": a, "decoded": boxes,
            "num_candidates": ncand, "num_kept": nkept,
            "score_margin": score_margin, "iou_margin": iou_margin}

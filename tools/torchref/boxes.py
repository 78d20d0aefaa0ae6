"""Default boxes, IoU, encoder and box coder (spec/ssd-reference.md sections 3, 4, 8)."""
import math

import torch

FIG_SIZE = 300
FEAT_SIZES = [38, 19, 10, 5, 3, 1]
STEPS = [8, 16, 32, 64, 100, 300]
SCALES = [21, 45, 99, 153, 207, 261, 315]
ASPECT_RATIOS = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
SCALE_XY = 0.1
SCALE_WH = 0.2


def default_boxes():
    """(xywh [8732,4] float32 clamped to [0,1], ltrb [8732,4] float32 from the clamped xywh)."""
    rows = []
    for k, s in enumerate(FEAT_SIZES):
        fk = FIG_SIZE / STEPS[k]
        sk1 = SCALES[k] / FIG_SIZE
        sk2 = SCALES[k + 1] / FIG_SIZE
        sk3 = math.sqrt(sk1 * sk2)
        sizes = [(sk1, sk1), (sk3, sk3)]
        for a in ASPECT_RATIOS[k]:
            r = math.sqrt(a)
            sizes += [(sk1 * r, sk1 / r), (sk1 / r, sk1 * r)]
        for w, h in sizes:
            for i in range(s):
                for j in range(s):
                    rows.append(((j + 0.5) / fk, (i + 0.5) / fk, w, h))
    xywh = torch.tensor(rows, dtype=torch.float64).float().clamp_(0.0, 1.0)
    ltrb = torch.empty_like(xywh)
    ltrb[:, 0] = xywh[:, 0] - 0.5 * xywh[:, 2]
    ltrb[:, 1] = xywh[:, 1] - 0.5 * xywh[:, 3]
    ltrb[:, 2] = xywh[:, 0] + 0.5 * xywh[:, 2]
    ltrb[:, 3] = xywh[:, 1] + 0.5 * xywh[:, 3]
    return xywh, ltrb


def iou_ltrb(a, b):
    """IoU matrix [B,A] (float32) between ltrb boxes a [B,4] and b [A,4] (spec 4): the
    intersection sides are clamped at 0 separately, no "+1", inter / (area_a + area_b - inter).
    Same elementwise op order as the reference's calc_iou_tensor."""
    a = a.float()
    b = b.float()
    ea = a.unsqueeze(1).expand(-1, b.size(0), -1)
    eb = b.unsqueeze(0).expand(a.size(0), -1, -1)
    lt = torch.max(ea[:, :, :2], eb[:, :, :2])
    rb = torch.min(ea[:, :, 2:], eb[:, :, 2:])
    delta = rb - lt
    delta[delta < 0] = 0
    inter = delta[:, :, 0] * delta[:, :, 1]
    da = ea[:, :, 2:] - ea[:, :, :2]
    db = eb[:, :, 2:] - eb[:, :, :2]
    area_a = da[:, :, 0] * da[:, :, 1]
    area_b = db[:, :, 0] * db[:, :, 1]
    return inter / (area_a + area_b - inter)


def ltrb_to_xywh(ltrb):
    """[N,4] ltrb -> xywh float32: cx=(l+r)/2, cy=(t+b)/2, w=r-l, h=b-t."""
    out = torch.empty_like(ltrb)
    out[:, 0] = 0.5 * (ltrb[:, 0] + ltrb[:, 2])
    out[:, 1] = 0.5 * (ltrb[:, 1] + ltrb[:, 3])
    out[:, 2] = ltrb[:, 2] - ltrb[:, 0]
    out[:, 3] = ltrb[:, 3] - ltrb[:, 1]
    return out


def encode(gt_ltrb, labels, dboxes_ltrb, dboxes_xywh=None, criteria=0.5):
    """Ground truth -> per-anchor targets (spec 4). gt_ltrb [B,4] float32, labels [B] int64.
    Returns (bbox_xywh [A,4] float32 absolute boxes, label [A] int64).

    Ties: per-anchor best GT = lowest GT index (torch CPU max(dim)); per-GT best anchor =
    lowest anchor index; forced best anchors get IoU 2.0; for g in increasing order
    best_gt[best_anchor[g]] = g, so the last GT wins a shared anchor. Positives: IoU > criteria
    (strict). Negatives keep the anchor's own ltrb box. B = 0 (never seen by the reference):
    all background, boxes = the anchors' ltrb converted to xywh.
    dboxes_xywh is accepted for symmetry with the C API and not used: the reference converts
    the anchors' ltrb, which may differ from the stored clamped xywh in the last bit."""
    dboxes_ltrb = dboxes_ltrb.float()
    n_anchors = dboxes_ltrb.size(0)
    gt_ltrb = gt_ltrb.float().reshape(-1, 4)
    labels = labels.long().reshape(-1)
    label_out = torch.zeros(n_anchors, dtype=torch.int64)
    boxes_out = dboxes_ltrb.clone()
    if gt_ltrb.size(0) == 0:
        return ltrb_to_xywh(boxes_out), label_out
    ious = iou_ltrb(gt_ltrb, dboxes_ltrb)                 # [B, A]
    best_gt_iou, best_gt = ious.max(dim=0)                # per anchor, first GT on ties
    _, best_anchor = ious.max(dim=1)                      # per GT, first anchor on ties
    best_gt_iou.index_fill_(0, best_anchor, 2.0)
    for g in range(best_anchor.size(0)):                  # explicit: last GT wins
        best_gt[best_anchor[g]] = g
    mask = best_gt_iou > criteria
    label_out[mask] = labels[best_gt[mask]]
    boxes_out[mask, :] = gt_ltrb[best_gt[mask], :]
    return ltrb_to_xywh(boxes_out), label_out

"""SSD loss in torch (spec/ssd-reference.md section 5), differentiable by autograd.

ssd_loss(ploc, plabel, gloc, glabel, dboxes_xywh) -> (batch_loss, per_image)

  ploc   [N,4,A]   predicted offsets (coordinate-major, as the heads emit them)
  plabel [N,81,A]  raw logits
  gloc   [N,A,4]   encoder output: absolute xywh per anchor (as the data loader emits it;
                   transposed here to [N,4,A] as train.py does before the loss)
  glabel [N,A]     int64 labels, 0 = background
  dboxes_xywh [A,4] default boxes, xywh clamped (section 3)

Everything is computed in ploc's dtype (float32 or float64); the other float inputs are cast to it.
target_dtype (optional) computes the regression targets in another dtype and casts them to
ploc's: the reference computes them in float32, so a float64 oracle comparing against float32
targets passes target_dtype=torch.float32.
Rules (section 5):
  * targets t = (10 (gx-dx)/dw, 10 (gy-dy)/dh, 5 ln(gw/dw), 5 ln(gh/dh)), in that operation order;
  * SmoothL1 (beta 1) summed over the 4 coordinates and over the positive anchors (mask multiply,
    as the reference: a degenerate positive with w or h = 0 gives +inf loss, finite gradient);
  * ce = logsumexp over the 81 logits - logit of the label;
  * hard negatives: ce with positives zeroed, ranked descending, ties by ascending anchor index
    (stable sort; the reference's GPU sort leaves ties unspecified); the first K = min(3P, A)
    ranks form neg_mask (ranking is not differentiated, it is an index selection);
  * Lconf = sum ce * (pos + neg_mask) (a positive that is also a top-K negative counts twice);
  * per image (Lloc + Lconf) / max(P, 1e-6) if P > 0 else 0; batch loss = mean over the N images.
"""
import torch
import torch.nn.functional as F

NEG_RATIO = 3


def targets(gloc, dboxes_xywh, dtype):
    """gloc [N,A,4] xywh -> regression targets [N,4,A] in dtype (reference operation order)."""
    g = gloc.to(dtype).transpose(1, 2)
    d = dboxes_xywh.to(dtype).t().unsqueeze(0)
    gxy = 10.0 * (g[:, :2, :] - d[:, :2, :]) / d[:, 2:, :]
    gwh = 5.0 * torch.log(g[:, 2:, :] / d[:, 2:, :])
    return torch.cat((gxy, gwh), dim=1).contiguous()


def hard_negative_mask(con, mask):
    """con [N,A] per-anchor CE, mask [N,A] bool positives -> neg_mask [N,A] bool."""
    A = con.shape[1]
    con_neg = con.detach().clone()
    con_neg[mask] = 0
    _, con_idx = torch.sort(con_neg, dim=1, descending=True, stable=True)
    _, con_rank = torch.sort(con_idx, dim=1)
    pos_num = mask.sum(dim=1)
    neg_num = torch.clamp(NEG_RATIO * pos_num, max=A).unsqueeze(-1)
    return con_rank < neg_num


def ssd_loss(ploc, plabel, gloc, glabel, dboxes_xywh, target_dtype=None):
    dt = ploc.dtype
    plabel = plabel.to(dt)
    glabel = glabel.to(torch.int64)
    mask = glabel > 0
    pos_num = mask.sum(dim=1)
    vec_gd = targets(gloc, dboxes_xywh, target_dtype or dt).to(dt)

    sl1 = F.smooth_l1_loss(ploc, vec_gd, reduction="none", beta=1.0).sum(dim=1)
    sl1 = (mask.to(dt) * sl1).sum(dim=1)

    con = F.cross_entropy(plabel, glabel, reduction="none")
    neg_mask = hard_negative_mask(con, mask)
    closs = (con * (mask.to(dt) + neg_mask.to(dt))).sum(dim=1)

    total = sl1 + closs
    num_mask = (pos_num > 0).to(dt)
    pos_f = pos_num.to(dt).clamp(min=1e-6)
    per_image = total * num_mask / pos_f
    return per_image.mean(dim=0), per_image

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

#!/usr/bin/env python3
"""Pillow / torchvision / torch as the test oracle of src/data/augment.c. Never a runtime dependency.

  pil_augment_oracle.py jobs MANIFEST.json OUT.json
      Runs the pixel jobs listed in MANIFEST (a JSON list; paths are relative to its folder),
      writes each job's output file and OUT.json = {"versions": ..., "checks": [...]}.
      Images travel as binary PPM (P6), tensors as raw little-endian float32 (CHW).
      ops:
        resize      in, w, h, out          Image.resize((w, h), Image.BILINEAR)
        crop        in, box, out           Image.crop(box)
        flip        in, out                Image.transpose(FLIP_LEFT_RIGHT)
        brightness  in, f, out             torchvision adjust_brightness (ImageEnhance)
        contrast    in, f, l_round, out    l_round 1: torchvision adjust_contrast (Pillow 9.4);
                                           l_round 0: numpy re-implementation of Pillow 5.2.0
        saturation  in, f, l_round, out    likewise (ImageEnhance.Color)
        hue         in, h, out             torchvision adjust_hue (see hue_explicit)
        to_tensor   in, out                ToTensor() + Normalize(ImageNet mean/std)
        decode      in (jpeg), out         Image.open(in).convert("RGB")
        coco        ann, file, in, out, boxes_out
                                           decode + the sample's boxes as in spec 6.1
  pil_augment_oracle.py crop CASES.json OUT.json
      Replays the C crop with the same draws (the "tape", see src/data/augment_internal.h) through
      a torch re-implementation of the reference's SSDCropping; one result per case.
  pil_augment_oracle.py train CASES.json OUT.json
      Replays whole training transforms (crop, flip, Resize, ColorJitter, ToTensor, Normalize)
      from their tapes on PIL images; writes each tensor and reports boxes, labels, size, params.
  pil_augment_oracle.py modes --boxes JSON --W W --H H --n N --seed S [--iterations T]
                              [--mutation any|ratio_px|no_ratio] OUT.json
      The final-mode histogram of N crops drawn with Python's own random.Random(S) (numpy port
      of the crop, checked equal to the torch one by `crop`; mutations: see ssd_crop_np).

The numpy re-implementation of Pillow's blends (`blend_np`) is checked against Pillow itself on
every l_round=1 job (the check is reported in OUT.json), so the l_round=0 results come from a
model that is exact where it can be compared.

hue: torchvision computes np.uint8(hue_factor * 255), a float -> uint8 cast that is undefined in C
for negative values; numpy on x86-64 truncates toward zero and wraps modulo 256 (-12.3 -> 244).
Each hue job also applies the shift written out explicitly (int(h * 255) % 256, Python
semantics) and reports whether both agree; the explicit result is the one written.
"""
import json
import math
import os
import random
import struct
import sys

import numpy as np
from PIL import Image
import PIL

# torch and torchvision take seconds to import: loaded only by the commands that use them
# (need_torch), so the Pillow-only jobs (decode, resize, crop, flip) and `modes` start fast.
torch = torchvision = T = F = None


def need_torch():
    global torch, torchvision, T, F
    if torch is None:
        import torch as _torch
        import torchvision as _tv
        import torchvision.transforms as _T
        import torchvision.transforms.functional as _F
        torch, torchvision, T, F = _torch, _tv, _T, _F
        torch.set_num_threads(1)

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
OPTIONS = (None, (0.1, None), (0.3, None), (0.5, None), (0.7, None), (0.9, None), (None, None))


# ---------------------------------------------------------------------------------------------
# file formats
# ---------------------------------------------------------------------------------------------
def load_ppm(path):
    im = Image.open(path)
    assert im.mode == "RGB", path
    return im


def save_ppm(im, path):
    assert im.mode == "RGB"
    w, h = im.size
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h))
        f.write(im.tobytes())


def save_f32(t, path):
    a = t.detach().contiguous().numpy().astype("<f4")
    with open(path, "wb") as f:
        f.write(a.tobytes())


# ---------------------------------------------------------------------------------------------
# Pillow blends in numpy (the l_round = 0 oracle)
# ---------------------------------------------------------------------------------------------
def gray_np(a, l_round):
    """RGB -> L: (19595 R + 38470 G + 7471 B) >> 16; Pillow >= 8 adds 0x8000 (rounding)."""
    a = a.astype(np.int64)
    s = 19595 * a[..., 0] + 38470 * a[..., 1] + 7471 * a[..., 2]
    if l_round:
        s = s + 0x8000
    return (s >> 16).astype(np.int64)


def blend_np(in1, in2, alpha):
    """ImagingBlend: in1 + alpha * (in2 - in1) in float32; clip to [0, 255] and truncate
    (Pillow clips only when alpha is outside [0, 1], where the value can leave the range)."""
    alpha = np.float32(alpha)
    if alpha == 0.0:
        return in1.astype(np.uint8)
    if alpha == 1.0:
        return in2.astype(np.uint8)
    d = (in2.astype(np.int64) - in1.astype(np.int64)).astype(np.float32)
    t = in1.astype(np.float32) + alpha * d          # float32 * float32, float32 + float32
    assert t.dtype == np.float32
    if 0.0 <= alpha <= 1.0:
        return t.astype(np.uint8)                    # truncation, value is in [0, 255]
    out = np.where(t <= 0.0, 0, np.where(t >= 255.0, 255, np.trunc(np.clip(t, 0, 255))))
    return out.astype(np.uint8)


def contrast_np(im, f, l_round):
    a = np.asarray(im)
    L = gray_np(a, l_round)
    mean = float(int(L.sum())) / L.size              # ImageStat: histogram sum / count
    m = int(mean + 0.5)
    return Image.fromarray(blend_np(np.full_like(a, m), a, f), "RGB")


def saturation_np(im, f, l_round):
    a = np.asarray(im)
    L = gray_np(a, l_round)
    return Image.fromarray(blend_np(np.repeat(L[..., None], 3, axis=2), a, f), "RGB")


def brightness_np(im, f):
    a = np.asarray(im)
    return Image.fromarray(blend_np(np.zeros_like(a), a, f), "RGB")


def hue_explicit(im, h):
    """adjust_hue with the shift written out: int() truncates toward zero, % 256 wraps."""
    hh, s, v = im.convert("HSV").split()
    shift = int(h * 255) % 256
    a = ((np.asarray(hh).astype(np.int64) + shift) % 256).astype(np.uint8)
    return Image.merge("HSV", (Image.fromarray(a, "L"), s, v)).convert("RGB")


def enhance(op, im, f, l_round, checks, tag):
    """One colour operation; l_round 1 = Pillow 9.4 (torchvision), 0 = numpy Pillow 5.2.0."""
    need_torch()
    if op == "brightness":
        ref = F.adjust_brightness(im, f)
        mine = brightness_np(im, f)
    elif op == "contrast":
        ref = F.adjust_contrast(im, f)
        mine = contrast_np(im, f, 1)
    elif op == "saturation":
        ref = F.adjust_saturation(im, f)
        mine = saturation_np(im, f, 1)
    elif op == "hue":
        tv = F.adjust_hue(im, f)
        ex = hue_explicit(im, f)
        checks.append({"job": tag, "check": "hue np.uint8 cast == explicit shift",
                       "ok": tv.tobytes() == ex.tobytes()})
        return ex
    else:
        raise ValueError(op)
    # The numpy model must equal Pillow where Pillow is the oracle (l_round = 1).
    checks.append({"job": tag, "check": "numpy blend model == Pillow 9.4 (" + op + ")",
                   "ok": ref.tobytes() == mine.tobytes()})
    if l_round or op == "brightness":
        return ref
    return contrast_np(im, f, 0) if op == "contrast" else saturation_np(im, f, 0)


def to_tensor_norm(im):
    need_torch()
    t = T.ToTensor()(im)
    return T.Normalize(MEAN, STD)(t)


# ---------------------------------------------------------------------------------------------
# the reference's SSDCropping, written from spec 6.2 (torch float32 tensors, Python floats)
# ---------------------------------------------------------------------------------------------
class Tape:
    """random.Random's interface, answering from recorded draws."""

    def __init__(self, values):
        self.v = list(values)
        self.i = 0

    def _next(self):
        if self.i >= len(self.v):
            raise IndexError("tape exhausted after %d draws" % self.i)
        x = self.v[self.i]
        self.i += 1
        return x

    def choice(self, seq):
        j = self._next()
        assert j == int(j) and 0 <= j < len(seq), j
        return seq[int(j)]

    def uniform(self, a, b):
        return a + (b - a) * self._next()

    def random(self):
        return self._next()

    def shuffle(self, x):
        for i in reversed(range(1, len(x))):
            j = self._next()
            assert j == int(j) and 0 <= j <= i, (i, j)
            j = int(j)
            x[i], x[j] = x[j], x[i]


def iou_tensor(b1, b2):
    """IoU of (N,4) ltrb against (M,4), float32 (kuangliu-style, as the reference)."""
    n, m = b1.size(0), b2.size(0)
    e1 = b1.unsqueeze(1).expand(-1, m, -1)
    e2 = b2.unsqueeze(0).expand(n, -1, -1)
    lt = torch.max(e1[:, :, :2], e2[:, :, :2])
    rb = torch.min(e1[:, :, 2:], e2[:, :, 2:])
    d = rb - lt
    d[d < 0] = 0
    inter = d[:, :, 0] * d[:, :, 1]
    d1 = e1[:, :, 2:] - e1[:, :, :2]
    d2 = e2[:, :, 2:] - e2[:, :, :2]
    a1 = d1[:, :, 0] * d1[:, :, 1]
    a2 = d2[:, :, 0] * d2[:, :, 1]
    return inter / (a1 + a2 - inter)


def ssd_crop(rnd, W, H, boxes, labels, iterations):
    """The reference's SSDCropping on torch tensors (boxes float32 (N, 4) ltrb, labels int64).
    Returns (mode index, draws, (l, t, r, b) floats, (L, T, R, B) ints, boxes, labels)."""
    draws = 0
    while True:
        opt = rnd.choice(OPTIONS)
        draws += 1
        mode = OPTIONS.index(opt)
        if opt is None:
            return mode, draws, (0.0, 0.0, 1.0, 1.0), (0, 0, W, H), boxes, labels
        lo, hi = opt
        lo = float("-inf") if lo is None else lo
        hi = float("+inf") if hi is None else hi
        for _ in range(iterations):
            w = rnd.uniform(0.3, 1.0)
            h = rnd.uniform(0.3, 1.0)
            if w / h < 0.5 or w / h > 2:
                continue
            left = rnd.uniform(0, 1.0 - w)
            top = rnd.uniform(0, 1.0 - h)
            right = left + w
            bottom = top + h
            ious = iou_tensor(boxes, torch.tensor([[left, top, right, bottom]]))
            if not ((ious > lo) & (ious < hi)).all():
                continue
            xc = 0.5 * (boxes[:, 0] + boxes[:, 2])
            yc = 0.5 * (boxes[:, 1] + boxes[:, 3])
            keep = (xc > left) & (xc < right) & (yc > top) & (yc < bottom)
            if not keep.any():
                continue
            b = boxes.clone()
            b[b[:, 0] < left, 0] = left
            b[b[:, 1] < top, 1] = top
            b[b[:, 2] > right, 2] = right
            b[b[:, 3] > bottom, 3] = bottom
            b = b[keep, :]
            lab = labels[keep]
            px = (int(left * W), int(top * H), int(right * W), int(bottom * H))
            b[:, 0] = (b[:, 0] - left) / w
            b[:, 1] = (b[:, 1] - top) / h
            b[:, 2] = (b[:, 2] - left) / w
            b[:, 3] = (b[:, 3] - top) / h
            return mode, draws, (left, top, right, bottom), px, b, lab


def ssd_crop_np(rnd, W, H, boxes, labels, iterations, mutation=None):
    """ssd_crop in numpy float32 (every scalar cast to float32 explicitly, as torch does), about
    20x faster for the statistical runs; cmd_crop checks it against ssd_crop on every case.
    mutation: None, "any" (IoU rule over any box instead of all), "ratio_px" (aspect test on
    pixels instead of fractions), "no_ratio" (no aspect test): wrong variants, to show that the
    statistical test would catch them."""
    f32 = np.float32
    draws = 0
    while True:
        opt = rnd.choice(OPTIONS)
        draws += 1
        mode = OPTIONS.index(opt)
        if opt is None:
            return mode, draws, (0.0, 0.0, 1.0, 1.0), (0, 0, W, H), boxes, labels
        lo = f32(float("-inf") if opt[0] is None else opt[0])
        for _ in range(iterations):
            w = rnd.uniform(0.3, 1.0)
            h = rnd.uniform(0.3, 1.0)
            ratio = (w * W) / (h * H) if mutation == "ratio_px" else w / h
            if mutation != "no_ratio" and (ratio < 0.5 or ratio > 2):
                continue
            left = rnd.uniform(0, 1.0 - w)
            top = rnd.uniform(0, 1.0 - h)
            right = left + w
            bottom = top + h
            c = np.array([left, top, right, bottom], np.float32)
            d = np.minimum(boxes[:, 2:], c[2:]) - np.maximum(boxes[:, :2], c[:2])
            d[d < 0] = 0
            inter = d[:, 0] * d[:, 1]
            a1 = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            a2 = (c[2] - c[0]) * (c[3] - c[1])
            with np.errstate(divide="ignore", invalid="ignore"):
                ious = inter / (a1 + a2 - inter)
            passing = (ious > lo) & (ious < f32(np.inf))
            if not (passing.any() if mutation == "any" else passing.all()):
                continue
            xc = f32(0.5) * (boxes[:, 0] + boxes[:, 2])
            yc = f32(0.5) * (boxes[:, 1] + boxes[:, 3])
            keep = (xc > c[0]) & (xc < c[2]) & (yc > c[1]) & (yc < c[3])
            if not keep.any():
                continue
            b = np.maximum(boxes[keep], np.array([c[0], c[1], -np.inf, -np.inf], np.float32))
            b = np.minimum(b, np.array([np.inf, np.inf, c[2], c[3]], np.float32))
            px = (int(left * W), int(top * H), int(right * W), int(bottom * H))
            sub = np.array([c[0], c[1], c[0], c[1]], np.float32)
            div = np.array([w, h, w, h], np.float32)
            b = (b - sub) / div
            assert b.dtype == np.float32
            return mode, draws, (left, top, right, bottom), px, b, labels[keep]


def f32list(t):
    return [float(x) for x in t.reshape(-1).tolist()]


def cmd_crop(cases_path, out_path):
    need_torch()
    cases = json.load(open(cases_path))
    out, checks = [], []
    for c in cases:
        rnd = Tape(c["tape"])
        boxes = torch.tensor(c["boxes"], dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor(c["labels"], dtype=torch.int64)
        mode, draws, crop, px, b, lab = ssd_crop(rnd, c["W"], c["H"], boxes, labels,
                                                 c["iterations"])
        r = {"mode": mode, "draws": draws, "crop": list(crop), "px": list(px),
             "boxes": f32list(b), "labels": lab.tolist(), "used": rnd.i, "tape": len(rnd.v)}
        out.append(r)
        # the fast numpy port must agree exactly (it is what the statistical runs use)
        rnd2 = Tape(c["tape"])
        m2 = ssd_crop_np(rnd2, c["W"], c["H"], boxes.numpy().copy(), labels.numpy(),
                         c["iterations"])
        same = (m2[0], m2[1], list(m2[2]), list(m2[3]), [float(x) for x in m2[4].reshape(-1)],
                m2[5].tolist(), rnd2.i) == (mode, draws, r["crop"], r["px"], r["boxes"],
                                            r["labels"], rnd.i)
        if not same:
            checks.append({"job": "crop case %d" % len(out), "check": "numpy crop == torch crop",
                           "ok": False})
    checks.append({"job": "all crop cases", "check": "numpy crop == torch crop (%d cases)"
                   % len(out), "ok": all(c["ok"] for c in checks)})
    json.dump({"results": out, "checks": checks}, open(out_path, "w"))


def cmd_modes(args, out_path):
    boxes = np.array(json.loads(args["boxes"]), np.float32).reshape(-1, 4)
    labels = np.arange(boxes.shape[0])
    rnd = random.Random(int(args["seed"]))
    W, H, n = int(args["W"]), int(args["H"]), int(args["n"])
    hist = [0] * len(OPTIONS)
    draws = 0
    for _ in range(n):
        mode, d, _, _, _, _ = ssd_crop_np(rnd, W, H, boxes, labels,
                                          int(args.get("iterations", 1)), args.get("mutation"))
        hist[mode] += 1
        draws += d
    json.dump({"hist": hist, "draws": draws}, open(out_path, "w"))


# ---------------------------------------------------------------------------------------------
# whole training transform, replayed from a tape
# ---------------------------------------------------------------------------------------------
def train_replay(rnd, im, boxes, labels, cfg, checks, tag):
    W, H = im.size
    mode, draws, crop, px, boxes, labels = ssd_crop(rnd, W, H, boxes, labels, cfg["iterations"])
    if mode != 0:
        im = im.crop(px)
    flip = rnd.random() < 0.5
    if flip:
        boxes[:, 0], boxes[:, 2] = 1.0 - boxes[:, 2], 1.0 - boxes[:, 0]
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    im = T.Resize((300, 300))(im)                   # Pillow BILINEAR
    b, c, s, hu = cfg["brightness"], cfg["contrast"], cfg["saturation"], cfg["hue"]
    # ColorJitter as torchvision 0.2.1 draws it: uniform factors (Python floats), then a
    # random.shuffle of the operations. The C code applies float32 factors: so do we.
    fb = float(np.float32(rnd.uniform(max(0, 1 - b), 1 + b)))
    fc = float(np.float32(rnd.uniform(max(0, 1 - c), 1 + c)))
    fs = float(np.float32(rnd.uniform(max(0, 1 - s), 1 + s)))
    fh = float(np.float32(rnd.uniform(-hu, hu)))
    order = [0, 1, 2, 3]
    rnd.shuffle(order)
    names = ["brightness", "contrast", "saturation", "hue"]
    factors = [fb, fc, fs, fh]
    for k in order:
        if k == 3 and hu == 0:
            continue
        im = enhance(names[k], im, factors[k], cfg["l_round"], checks, tag)
    t = to_tensor_norm(im)
    return {"mode": mode, "draws": draws, "crop": list(crop), "px": list(px), "flip": int(flip),
            "factors": factors, "order": order, "boxes": f32list(boxes),
            "labels": labels.tolist(), "h": px[3] - px[1], "w": px[2] - px[0]}, t


def cmd_train(cases_path, out_path):
    need_torch()
    cases = json.load(open(cases_path))
    base = os.path.dirname(os.path.abspath(cases_path))
    out, checks = [], []
    for i, c in enumerate(cases):
        rnd = Tape(c["tape"])
        im = load_ppm(os.path.join(base, c["in"]))
        boxes = torch.tensor(c["boxes"], dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor(c["labels"], dtype=torch.int64)
        r, t = train_replay(rnd, im, boxes, labels, c["cfg"], checks, "train%d" % i)
        save_f32(t, os.path.join(base, c["out"]))
        r["used"] = rnd.i
        r["tape"] = len(rnd.v)
        out.append(r)
    json.dump({"results": out, "checks": checks, "versions": versions()}, open(out_path, "w"))


# ---------------------------------------------------------------------------------------------
# pixel jobs
# ---------------------------------------------------------------------------------------------
def versions():
    v = {"pillow": PIL.__version__, "numpy": np.__version__,
         "torchvision": "not loaded", "torch": "not loaded"}
    if torch is not None:
        v["torchvision"], v["torch"] = torchvision.__version__, torch.__version__
    return v


def coco_sample(ann_path, file_name):
    """The image's boxes as spec 6.1: (x/W, y/H, (x+w)/W, (y+h)/H) in float64, then float32."""
    d = json.load(open(ann_path))
    img = [i for i in d["images"] if i["file_name"] == file_name][0]
    cats = {c["id"]: k + 1 for k, c in enumerate(d["categories"])}
    W, H = img["width"], img["height"]
    boxes, labels = [], []
    for a in d["annotations"]:
        if a["image_id"] == img["id"]:
            x, y, w, h = a["bbox"]
            boxes.append([x / W, y / H, (x + w) / W, (y + h) / H])
            labels.append(cats[a["category_id"]])
    return [float(v) for v in np.array(boxes, np.float32).reshape(-1)], labels


def cmd_jobs(manifest_path, out_path):
    jobs = json.load(open(manifest_path))
    base = os.path.dirname(os.path.abspath(manifest_path))
    P = lambda p: os.path.join(base, p)  # noqa: E731
    checks = []
    for i, j in enumerate(jobs):
        op = j["op"]
        tag = "%d:%s" % (i, op)
        if op == "decode":
            save_ppm(Image.open(P(j["in"])).convert("RGB"), P(j["out"]))
            continue
        if op == "coco":
            save_ppm(Image.open(P(j["in"])).convert("RGB"), P(j["out"]))
            boxes, labels = coco_sample(P(j["ann"]), j["file"])
            json.dump({"boxes": boxes, "labels": labels}, open(P(j["boxes_out"]), "w"))
            continue
        im = load_ppm(P(j["in"]))
        if op == "resize":
            save_ppm(im.resize((j["w"], j["h"]), Image.BILINEAR), P(j["out"]))
        elif op == "crop":
            save_ppm(im.crop(tuple(j["box"])), P(j["out"]))
        elif op == "flip":
            save_ppm(im.transpose(Image.FLIP_LEFT_RIGHT), P(j["out"]))
        elif op in ("brightness", "contrast", "saturation", "hue"):
            f = j["h"] if op == "hue" else j["f"]
            save_ppm(enhance(op, im, f, j.get("l_round", 1), checks, tag), P(j["out"]))
        elif op == "to_tensor":
            save_f32(to_tensor_norm(im), P(j["out"]))
        else:
            raise ValueError("unknown op " + op)
    json.dump({"versions": versions(), "checks": checks}, open(out_path, "w"))


def main(argv):
    if len(argv) >= 4 and argv[1] == "jobs":
        cmd_jobs(argv[2], argv[3])
    elif len(argv) >= 4 and argv[1] == "crop":
        cmd_crop(argv[2], argv[3])
    elif len(argv) >= 4 and argv[1] == "train":
        cmd_train(argv[2], argv[3])
    elif len(argv) >= 3 and argv[1] == "modes":
        opts = {}
        rest = argv[2:-1]
        for k in range(0, len(rest), 2):
            opts[rest[k].lstrip("-")] = rest[k + 1]
        cmd_modes(opts, argv[-1])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""PIL + torchvision side of bench/bench_augment.c: the reference's SSD training transform
(SSDCropping as re-implemented in pil_augment_oracle.py, RandomHorizontalFlip, Resize((300, 300)),
ColorJitter(0.125, 0.5, 0.5, 0.05), ToTensor, Normalize) and the validation transform, one
process, one torch thread, on the image of --ppm with the boxes of --boxes (flat ltrb list).
Prints one JSON object: seconds per image for both, and the library versions.

  bench_augment_pil.py --ppm FILE --images N --boxes JSON
"""
import argparse
import importlib.util
import json
import os
import random
import time

import torch
import torchvision
import torchvision.transforms as T
from PIL import Image
import PIL

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("oracle", os.path.join(here, "pil_augment_oracle.py"))
oracle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(oracle)
oracle.need_torch()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ppm", required=True)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--boxes", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    img = Image.open(a.ppm).convert("RGB")
    img.load()
    boxes0 = torch.tensor(json.loads(a.boxes), dtype=torch.float32).reshape(-1, 4)
    labels0 = torch.arange(1, boxes0.size(0) + 1)
    rnd = random.Random(7)
    jitter = T.ColorJitter(brightness=0.125, contrast=0.5, saturation=0.5, hue=0.05)
    norm = T.Normalize(mean=oracle.MEAN, std=oracle.STD)
    tail = T.Compose([T.Resize((300, 300)), jitter, T.ToTensor()])
    val = T.Compose([T.Resize((300, 300)), T.ToTensor(), norm])
    W, H = img.size

    def train_one():
        _, _, _, px, b, lab = oracle.ssd_crop(rnd, W, H, boxes0.clone(), labels0, 1)
        im = img.crop(px) if px != (0, 0, W, H) else img
        if rnd.random() < 0.5:
            b[:, 0], b[:, 2] = 1.0 - b[:, 2], 1.0 - b[:, 0]
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        return norm(tail(im).contiguous()), b, lab

    for _ in range(max(5, a.images // 10)):
        train_one()
    t0 = time.perf_counter()
    for _ in range(a.images):
        train_one()
    train_s = (time.perf_counter() - t0) / a.images
    t0 = time.perf_counter()
    for _ in range(a.images):
        val(img)
    val_s = (time.perf_counter() - t0) / a.images
    print(json.dumps({"train_s": train_s, "val_s": val_s,
                      "versions": "Pillow %s, torchvision %s, torch %s" % (
                          PIL.__version__, torchvision.__version__, torch.__version__)}))


if __name__ == "__main__":
    main()

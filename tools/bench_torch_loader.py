#!/usr/bin/env python3
"""The PyTorch side of `ssd bench --what loader`: the reference's training data pipeline built
from torch 1.13 + torchvision 0.14 + Pillow (Debian's python3-torch / -torchvision / -pil), run
with a DataLoader of --workers processes over the same COCO-format dataset, timed the same way
as ours. Benchmark only; nothing here decides a test.

Per sample, as the MLPerf reference does it (spec/ssd-reference.md 6.1-6.5): PIL open +
convert("RGB"), boxes normalised by the JSON size, SSD random crop (7 modes, all-boxes IoU rule,
--crop-iterations tries; tools/pil_augment_oracle.py's restatement, the one the tests check), horizontal flip p=0.5, Resize((300, 300)) bilinear, ColorJitter(0.125,
0.5, 0.5, 0.05), ToTensor, Normalize, then the encoder (IoU matching against the 8732 anchors)
inside the worker. Batches are collated by the default collate function.

Prints one JSON line: {"images_per_s", "images", "seconds", "workers", "batch"}.
"""
import argparse
import json
import os
import random
import sys
import time

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__))))
from torchref import boxes as tr_boxes  # noqa: E402  (our torch re-statement of the encoder)
import pil_augment_oracle as pao  # noqa: E402  (and of the crop)


def load_index(ann_path):
    with open(ann_path) as f:
        d = json.load(f)
    label_of = {c["id"]: i + 1 for i, c in enumerate(d["categories"])}
    images = {}
    order = []
    for im in d["images"]:
        images[im["id"]] = (im["file_name"], im["height"], im["width"], [])
        order.append(im["id"])
    for a in d["annotations"]:
        images[a["image_id"]][3].append((a["bbox"], label_of[a["category_id"]]))
    return [(i, images[i]) for i in order if images[i][3]]


def ssd_crop_image(img, size, boxes, labels, iterations):
    """The reference's SSDCropping (the torch restatement of tools/pil_augment_oracle.py, drawing
    from Python's `random` as the reference does), applied to the PIL image."""
    mode, _, _, px, boxes, labels = pao.ssd_crop(random, size[1], size[0], boxes, labels, iterations)
    if mode == 0:
        return img, size, boxes, labels
    return img.crop(px), (px[3] - px[1], px[2] - px[0]), boxes, labels


class TrainSet(Dataset):
    def __init__(self, image_dir, index, iterations):
        self.image_dir, self.index, self.iterations = image_dir, index, iterations
        self.dxywh, self.dltrb = tr_boxes.default_boxes()
        self.jitter = transforms.ColorJitter(brightness=0.125, contrast=0.5, saturation=0.5,
                                             hue=0.05)
        self.resize = transforms.Resize((300, 300))
        self.tensor = transforms.Compose([
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        image_id, (name, H, W, anns) = self.index[i]
        img = Image.open(os.path.join(self.image_dir, name)).convert("RGB")
        boxes = torch.tensor([[b[0] / W, b[1] / H, (b[0] + b[2]) / W, (b[1] + b[3]) / H]
                              for b, _ in anns], dtype=torch.float32)
        labels = torch.tensor([lab for _, lab in anns], dtype=torch.int64)
        img, size, boxes, labels = ssd_crop_image(img, (H, W), boxes, labels, self.iterations)
        if random.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
            boxes = torch.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], 1)
        img = self.tensor(self.jitter(self.resize(img)))
        bbox, label = tr_boxes.encode(boxes, labels, self.dltrb, self.dxywh)
        return img, image_id, size, bbox, label


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="COCO-format root (annotations/, train2017/)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--images", type=int, default=320, help="images to time (after 1 batch)")
    ap.add_argument("--crop-iterations", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    pao.need_torch()
    random.seed(a.seed)
    torch.manual_seed(a.seed)
    index = load_index(os.path.join(a.data, "annotations", "instances_train2017.json"))
    ds = TrainSet(os.path.join(a.data, "train2017"), index, a.crop_iterations)

    loader = DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=a.workers,
                        drop_last=False, persistent_workers=a.workers > 0)

    def batches():  # endless, over epochs; persistent workers start once
        while True:
            for b in loader:
                yield b

    it = batches()
    next(it)  # warm-up: worker start, first batch
    t0 = time.perf_counter()
    n = 0
    while n < a.images:
        n += next(it)[0].shape[0]
    dt = time.perf_counter() - t0
    print(json.dumps({"images_per_s": n / dt, "images": n, "seconds": dt,
                      "workers": a.workers, "batch": a.batch}))


if __name__ == "__main__":
    main()

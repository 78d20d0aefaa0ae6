#!/usr/bin/python3
"""Independent check of a dataset written by `ssd synth` (tests/data/test_synth.c calls it).

    synth_check.py DIR [--coco-ref instances_val2017.json]

Reads DIR/annotations/instances_{train,val}2017.json with Python's json module and every image
with Pillow, and checks what the trainer relies on (spec 6.1) plus the COCO format rules:
  - "info", "licenses", "images", "annotations", "categories" present;
  - categories = the 80 COCO 2017 ids of the spec, in that (ascending) order, unique names
    (with --coco-ref: names and supercategories equal the real file's);
  - image ids unique (and disjoint between train and val), file_name == "%012d.jpg" % id,
    the JPEG exists, Pillow reads it as JPEG in mode RGB or L, its size == JSON width/height;
  - annotation ids unique over both files, image_id and category_id known, bbox inside the
    image with w, h > 0, area > 0;
    polygons: lists of >= 3 points, every point inside the bbox;
    crowd RLE: counts sum to H*W, its mask (column-major) has `area` pixels and tight box bbox;
  - each split has crowd annotations, images without annotations and grayscale images.
Prints one summary line per split; exits 1 with the first problem found.
"""
import json
import os
import sys

import numpy as np
from PIL import Image

COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
            25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49,
            50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74,
            75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]  # spec 6.1


def fail(msg):
    print("synth_check FAILED:", msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def rle_mask_stats(counts, h, w):
    """Pixels set and tight box [x, y, w, h] of an uncompressed column-major RLE."""
    flat = np.zeros(h * w, np.uint8)
    pos, val = 0, 0
    for c in counts:
        check(isinstance(c, int) and c >= 0, f"bad RLE count {c!r}")
        flat[pos:pos + c] = val
        pos += c
        val ^= 1
    check(pos == h * w, f"RLE counts sum to {pos}, not H*W = {h * w}")
    mask = flat.reshape(w, h).T  # column-major: pixel (x, y) is flat[x * h + y]
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return 0, None
    return int(mask.sum()), [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                             int(ys.max() - ys.min() + 1)]


def main():
    root = sys.argv[1]
    ref = None
    if "--coco-ref" in sys.argv:
        with open(sys.argv[sys.argv.index("--coco-ref") + 1]) as f:
            ref = json.load(f)["categories"]
    ann_ids, image_ids = set(), {}
    for split in ("train2017", "val2017"):
        with open(os.path.join(root, "annotations", f"instances_{split}.json")) as f:
            d = json.load(f)
        for key in ("info", "licenses", "images", "annotations", "categories"):
            check(key in d, f"{split}: no '{key}'")
        cats = d["categories"]
        check([c["id"] for c in cats] == COCO_IDS, f"{split}: category ids are not COCO's 80")
        check(len({c["name"] for c in cats}) == 80, f"{split}: category names not unique")
        if ref is not None:
            check([(c["id"], c["name"], c["supercategory"]) for c in cats] ==
                  [(c["id"], c["name"], c["supercategory"]) for c in ref],
                  f"{split}: categories differ from the real COCO file")
        images = {}
        gray = 0
        for im in d["images"]:
            iid = im["id"]
            check(iid not in images and iid not in image_ids, f"{split}: image id {iid} repeated")
            check(im["file_name"] == "%012d.jpg" % iid, f"{split}: file_name {im['file_name']}")
            path = os.path.join(root, split, im["file_name"])
            check(os.path.isfile(path), f"{path} missing")
            with Image.open(path) as pim:
                check(pim.format == "JPEG", f"{path}: {pim.format}, not JPEG")
                check(pim.mode in ("RGB", "L"), f"{path}: mode {pim.mode}")
                check(pim.size == (im["width"], im["height"]),
                      f"{path}: Pillow size {pim.size}, JSON {im['width']}x{im['height']}")
                gray += pim.mode == "L"
                pim.load()  # the whole file decodes
            images[iid] = im
            image_ids[iid] = split
        per_image = dict.fromkeys(images, 0)
        crowd = 0
        for a in d["annotations"]:
            aid = a["id"]
            check(aid not in ann_ids, f"annotation id {aid} repeated")
            ann_ids.add(aid)
            check(a["image_id"] in images, f"{split}: annotation {aid}: unknown image")
            check(a["category_id"] in COCO_IDS, f"annotation {aid}: category {a['category_id']}")
            im = images[a["image_id"]]
            W, H = im["width"], im["height"]
            x, y, w, h = a["bbox"]
            check(w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= W and y + h <= H,
                  f"annotation {aid}: bbox {a['bbox']} not inside {W}x{H}")
            check(a["area"] > 0, f"annotation {aid}: area {a['area']}")
            check(a["iscrowd"] in (0, 1), f"annotation {aid}: iscrowd {a['iscrowd']}")
            seg = a["segmentation"]
            if a["iscrowd"]:
                crowd += 1
                check(seg["size"] == [H, W], f"annotation {aid}: RLE size {seg['size']}")
                n, box = rle_mask_stats(seg["counts"], H, W)
                check(n == a["area"], f"annotation {aid}: RLE has {n} pixels, area {a['area']}")
                check(box == a["bbox"], f"annotation {aid}: RLE box {box}, bbox {a['bbox']}")
            else:
                check(isinstance(seg, list) and seg, f"annotation {aid}: no polygon")
                for poly in seg:
                    check(len(poly) >= 6 and len(poly) % 2 == 0, f"annotation {aid}: polygon")
                    for px, py in zip(poly[0::2], poly[1::2]):
                        # two-decimal values: x + w may round one ulp below a vertex on the edge
                        e = 1e-9
                        check(x - e <= px <= x + w + e and y - e <= py <= y + h + e,
                              f"annotation {aid}: polygon point ({px}, {py}) outside bbox")
                # pixel centres inside the box bound the area
                check(a["area"] <= (int(w) + 2) * (int(h) + 2), f"annotation {aid}: area too big")
            per_image[a["image_id"]] += 1
        empty = sum(1 for v in per_image.values() if v == 0)
        check(crowd > 0, f"{split}: no crowd annotation")
        check(empty > 0, f"{split}: every image has annotations")
        check(gray > 0, f"{split}: no grayscale JPEG")
        check(len(d["annotations"]) > len(images), f"{split}: too few annotations")
        print(f"synth_check {split}: {len(images)} images ({gray} grayscale, {empty} without "
              f"annotations), {len(d['annotations'])} annotations ({crowd} crowd)")
    print("synth_check OK")


if __name__ == "__main__":
    main()

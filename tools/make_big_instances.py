#!/usr/bin/env python3
"""Writes a synthetic COCO instances JSON shaped like instances_train2017.json, for measuring
the annotation parser (bench/bench_coco_index) and for tests, with the standard library only.

    make_big_instances.py OUT.json [--size-mb 448] [--seed 0]

The default is the size of the real train2017 file (448 MB): 118,287 images of which ~0.86%
have no annotation, 860,001 annotations (~1% iscrowd with uncompressed RLE `counts` lists that
sum to H*W), 80 categories with COCO's sparse ids 1..90, polygon segmentations making up most of
the bytes, numbers written with two decimals as in COCO. A smaller --size-mb scales the image and
annotation counts down proportionally. The polygon lengths are steered annotation by annotation
so the file lands within a fraction of a percent of the requested size. Same seed, same file
(byte for byte): every random draw comes from one random.Random(seed).

Images are in random id order and annotations are shuffled across images, so a reader must not
assume any grouping. Nothing here is real COCO data.
"""
import argparse
import json
import random
import sys

COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
            25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49,
            50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74,
            75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]
SIZES = [(640, 480), (640, 427), (480, 640), (640, 426), (500, 375), (640, 428), (427, 640),
         (612, 612), (640, 360), (375, 500), (640, 640), (333, 500)]
REAL_IMAGES, REAL_ANNS, REAL_MB = 118287, 860001, 448.0


def write_images(out, rng, ids):
    out.write('"images":[')
    sizes = {}
    for k, img_id in enumerate(ids):
        w, h = rng.choice(SIZES)
        sizes[img_id] = (w, h)
        name = "%012d.jpg" % img_id
        out.write(('' if k == 0 else ',') +
                  '{"license":%d,"file_name":"%s","coco_url":"http://images.cocodataset.org/'
                  'train2017/%s","height":%d,"width":%d,"date_captured":"2013-11-%02d %02d:%02d:'
                  '%02d","flickr_url":"http://farm%d.staticflickr.com/%d/%d_%010x_z.jpg","id":%d}'
                  % (rng.randint(1, 8), name, name, h, w, rng.randint(1, 28), rng.randint(0, 23),
                     rng.randint(0, 59), rng.randint(0, 59), rng.randint(1, 9),
                     rng.randint(1000, 9999), rng.randint(10 ** 9, 10 ** 10 - 1),
                     rng.getrandbits(40), img_id))
    out.write('],')
    return sizes


def polygon(rng, x, y, w, h, npts):
    pts = []
    for _ in range(npts):
        pts.append("%.2f" % (x + rng.random() * w))
        pts.append("%.2f" % (y + rng.random() * h))
    return "[" + ",".join(pts) + "]"


def rle_counts(rng, w, h, nruns):
    """Run lengths alternating background/foreground that add up to w*h (uncompressed RLE)."""
    total = w * h
    cuts = sorted(rng.sample(range(1, total), max(1, nruns - 1)))
    runs, prev = [], 0
    for c in cuts + [total]:
        runs.append(c - prev)
        prev = c
    return "[" + ",".join(str(r) for r in runs) + "]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--size-mb", type=float, default=REAL_MB, help="target size in MB (1e6)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    scale = a.size_mb / REAL_MB
    n_img = max(2, round(REAL_IMAGES * scale))
    n_ann = max(1, round(REAL_ANNS * scale))
    target = int(a.size_mb * 1e6)

    ids = rng.sample(range(1, max(600000, 6 * n_img)), n_img)
    n_empty = max(1, round(n_img * 1021 / REAL_IMAGES))
    annotated = ids[n_empty:]

    with open(a.out, "w", encoding="ascii", newline="\n") as out:
        out.write('{"info":{"description":"synthetic COCO-like instances (tools/make_big_'
                  'instances.py, seed %d)","version":"1.0","year":2017},"licenses":[' % a.seed)
        out.write(",".join('{"url":"http://creativecommons.org/licenses/%d/","id":%d,"name":"L%d"}'
                           % (i, i, i) for i in range(1, 9)) + "],")
        sizes = write_images(out, rng, ids)
        # every annotated image gets one box, the rest are spread at random (a long tail)
        owners = annotated + [rng.choice(annotated) for _ in range(max(0, n_ann - len(annotated)))]
        owners = owners[:n_ann]
        rng.shuffle(owners)
        out.write('"annotations":[')
        tail = 9000  # bytes of the categories block and closing brackets, roughly
        for k, img_id in enumerate(owners):
            w_img, h_img = sizes[img_id]
            bw = round(max(0.5, rng.random() ** 2 * w_img), 2)
            bh = round(max(0.5, rng.random() ** 2 * h_img), 2)
            bx = round(rng.random() * (w_img - bw), 2)
            by = round(rng.random() * (h_img - bh), 2)
            crowd = 1 if rng.random() < 0.0106 else 0
            head = '%s{"segmentation":' % ('' if k == 0 else ',')
            rest = ('"area":%r,"iscrowd":%d,"image_id":%d,"bbox":[%.2f,%.2f,%.2f,%.2f],'
                    '"category_id":%d,"id":%d}'
                    % (bw * bh * (0.4 + 0.5 * rng.random()), crowd, img_id, bx, by, bw, bh,
                       rng.choice(COCO_IDS), 900000 + k))
            # bytes left per remaining annotation steer the segmentation length
            budget = (target - tail - out.tell()) / (n_ann - k) - len(head) - len(rest) - 2
            if crowd:
                nruns = max(2, int(budget * (0.5 + rng.random()) / 6))
                seg = '{"counts":%s,"size":[%d,%d]},' % (rle_counts(rng, w_img, h_img, nruns),
                                                         h_img, w_img)
            else:
                nnum = max(6, int(budget * (0.5 + rng.random()) / 7))
                npoly = 1 if nnum < 40 or rng.random() < 0.8 else 2
                per = max(3, nnum // (2 * npoly))
                seg = "[" + ",".join(polygon(rng, bx, by, bw, bh, per)
                                     for _ in range(npoly)) + "],"
            out.write(head + seg + rest)
        out.write('],"categories":[')
        out.write(",".join('{"supercategory":"super%d","id":%d,"name":"category %d"}'
                           % (i // 8, cid, cid) for i, cid in enumerate(COCO_IDS)))
        out.write("]}")
        size = out.tell()
    print(json.dumps({"out": a.out, "bytes": size, "images": n_img, "images_without_annotations":
                      n_empty, "annotations": n_ann, "seed": a.seed}))


if __name__ == "__main__":
    sys.exit(main())

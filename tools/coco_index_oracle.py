#!/usr/bin/env python3
"""Test oracle for src/data/coco_json.c: the training index of a COCO instances JSON, computed
the way the reference's COCODetection does it (mlcommons/training single_stage_detector/ssd/
utils.py, spec/ssd-reference.md 6.1), with nothing but the standard library.

    coco_index_oracle.py INSTANCES.json OUT.json

What the reference does, written out again here independently of the C code:
  - label map: categories in FILE order, the i-th (1-based) gets label i;
  - images in JSON order in a dict keyed by id (a duplicate id raises), each with file_name
    and (height, width) from the JSON;
  - every annotation appended to its image in JSON order (unknown image or category id raises);
    iscrowd is not filtered (recorded here; the reference ignores it);
  - images without annotations popped; sample order = remaining dict (= JSON) order;
  - per box (l/W, t/H, (l+w)/W, (t+h)/H) in Python floats (float64), then float32 the way
    torch.tensor() converts them (round to nearest).

OUT.json: {"category_ids": [...], "num_images_json": N, "num_annotations": M,
           "samples": [{"image_id", "width", "height", "file_name",
                        "boxes": [[label, crowd, l_bits, t_bits, r_bits, b_bits], ...]}, ...]}
where *_bits are the float32 bit patterns as unsigned integers, so the C test compares exactly.
"""
import json
import struct
import sys


def f32_bits(x):
    # struct's 'f' rounds a double to the nearest float32, like a C cast / torch.tensor()
    return struct.unpack("<I", struct.pack("<f", x))[0]


def build(path):
    with open(path, encoding="utf-8") as fin:
        data = json.load(fin)

    label_map = {}
    category_ids = []
    cnt = 0
    for cat in data["categories"]:
        cnt += 1
        label_map[cat["id"]] = cnt
        category_ids.append(cat["id"])

    images = {}
    for img in data["images"]:
        if img["id"] in images:
            raise Exception("duplicated image record %r" % img["id"])
        images[img["id"]] = (img["file_name"], (img["height"], img["width"]), [])

    for ann in data["annotations"]:
        crowd = 1 if ann.get("iscrowd", 0) else 0
        images[ann["image_id"]][2].append((ann["bbox"], label_map[ann["category_id"]], crowd))

    for k, v in list(images.items()):
        if len(v[2]) == 0:
            images.pop(k)

    samples = []
    for img_id, (name, (htot, wtot), anns) in images.items():
        boxes = []
        for (l, t, w, h), label, crowd in anns:
            r = l + w
            b = t + h
            boxes.append([label, crowd, f32_bits(l / wtot), f32_bits(t / htot),
                          f32_bits(r / wtot), f32_bits(b / htot)])
        samples.append({"image_id": img_id, "width": wtot, "height": htot,
                        "file_name": name, "boxes": boxes})
    return {"category_ids": category_ids, "num_images_json": len(data["images"]),
            "num_annotations": len(data["annotations"]), "samples": samples}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: coco_index_oracle.py INSTANCES.json OUT.json")
    out = build(sys.argv[1])
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()

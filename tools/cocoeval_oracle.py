#!/usr/bin/env python3
"""pycocotools as the test oracle (and bench partner) of `ssd cocoeval`. Never a runtime dependency.

  cocoeval_oracle.py gen   --seed S --out DIR          random gt.json + dt.json for one case
  cocoeval_oracle.py eval  GT DT [GT DT ...]           pycocotools on each pair; prints one JSON
                                                       list: {stats, per_category, summary, numpy}
  cocoeval_oracle.py cases --seed0 S --n N --dir DIR   gen N cases DIR/case<i>/ and write
                                                       DIR/case<i>/expected.json with eval's result
  cocoeval_oracle.py bench GT DT                       seconds of load/loadRes/evaluate/accumulate/
                                                       summarize, as one JSON object

The random cases cover what the C evaluator must get exactly right: crowd regions, GT whose `area`
field differs from its box, boxes whose area is exactly 32^2 or 96^2 (closed ranges), more than 100
detections in one (image, category) and more than 10 per image, tied scores within and across
images, empty images, categories without GT, every 13th case with 80 categories (so the final means sum more
than 8192 values: numpy's chunking shows), detections of categories that are not in the GT,
degenerate boxes, integer coordinates, duplicate annotation ids and annotation id 0.
"""
import contextlib
import io
import json
import os
import random
import sys
import time


def _coco():
    import numpy  # noqa: F401  (fail early with a clear message)
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    return COCO, COCOeval


def gen_case(seed):
    """One random (gt, dt) pair as Python objects."""
    r = random.Random(seed)
    big = seed % 13 == 0                         # all 80 COCO-sized: means over > 8192 values
    n_img = r.randint(100, 160) if big else r.randint(1, 24)
    img_ids = r.sample(range(1, 10**6 if seed % 3 else 10**12), n_img)
    n_cat = 80 if big else r.randint(1, 9)
    cat_ids = r.sample(range(1, 91), n_cat)
    quant = r.choice([None, 0.1, 0.25])          # tied scores when quantised
    p_crowd = r.choice([0.0, 0.1, 0.3])
    dup_ids = seed % 5 == 0                      # duplicate annotation ids
    integer = seed % 4 == 1                      # integer coordinates
    W, H = r.choice([(640, 480), (300, 300), (1000, 200)])

    def box():
        kind = r.random()
        if kind < 0.08:                          # area exactly 32^2 or 96^2
            w, h = r.choice([(32, 32), (16, 64), (96, 96), (48, 192)])
        elif kind < 0.4:
            w, h = r.uniform(1, 40), r.uniform(1, 40)
        elif kind < 0.75:
            w, h = r.uniform(20, 120), r.uniform(20, 120)
        else:
            w, h = r.uniform(80, W), r.uniform(80, H)
        x, y = r.uniform(0, max(1.0, W - w)), r.uniform(0, max(1.0, H - h))
        if integer:
            x, y, w, h = float(round(x)), float(round(y)), float(max(1, round(w))), float(max(1, round(h)))
        return [x, y, w, h]

    images = [{"id": i, "width": W, "height": H} for i in img_ids]
    anns = []
    next_id = 0 if seed % 7 == 3 else 1          # annotation id 0 in some cases
    for i in img_ids:
        if r.random() < 0.15:
            continue                             # an image without GT
        for _ in range(r.randint(0, 12)):
            b = box()
            area = b[2] * b[3]
            if r.random() < 0.15:
                area = area * r.uniform(0.2, 1.5)  # segmentation area differs from the box
            anns.append({"id": next_id, "image_id": i, "category_id": r.choice(cat_ids),
                         "bbox": b, "area": area, "iscrowd": int(r.random() < p_crowd)})
            next_id += 1
    if dup_ids and len(anns) > 3:
        for _ in range(r.randint(1, 3)):
            a, b = r.sample(range(len(anns)), 2)
            anns[b]["id"] = anns[a]["id"]
    r.shuffle(anns) if seed % 2 else None        # file order is not image order
    gt = {"images": images, "categories": [{"id": c, "name": "c%d" % c} for c in cat_ids],
          "annotations": anns}

    def score():
        s = r.random()
        return round(s / quant) * quant if quant else s

    dts = []
    for a in anns:
        for _ in range(r.choice([0, 1, 1, 1, 2, 3])):
            b = list(a["bbox"])
            j = r.choice([0.0, 0.02, 0.1, 0.3])
            b = [b[0] + r.uniform(-j, j) * b[2], b[1] + r.uniform(-j, j) * b[3],
                 b[2] * (1 + r.uniform(-j, j)), b[3] * (1 + r.uniform(-j, j))]
            if integer:
                b = [float(round(v)) for v in b]
            cat = a["category_id"] if r.random() < 0.9 else r.choice(cat_ids)
            dts.append({"image_id": a["image_id"], "category_id": cat, "bbox": b, "score": score()})
    for i in img_ids:                            # false positives
        for _ in range(r.randint(0, 8)):
            dts.append({"image_id": i, "category_id": r.choice(cat_ids), "bbox": box(), "score": score()})
    if r.random() < 0.5:                         # > 100 detections in one (image, category)
        i, c = r.choice(img_ids), r.choice(cat_ids)
        for _ in range(r.randint(95, 130)):
            dts.append({"image_id": i, "category_id": c, "bbox": box(), "score": score()})
    if r.random() < 0.3:                         # a category that is not in the GT
        dts.append({"image_id": img_ids[0], "category_id": 91, "bbox": box(), "score": 0.5})
    if r.random() < 0.3:                         # degenerate boxes
        dts.append({"image_id": img_ids[0], "category_id": cat_ids[0], "bbox": [5.0, 5.0, 0.0, 9.0], "score": 0.7})
    if not dts:                                  # pycocotools cannot load an empty result list
        dts.append({"image_id": img_ids[0], "category_id": cat_ids[0], "bbox": box(), "score": 0.5})
    r.shuffle(dts)
    return gt, dts


def evaluate(gt_path, dt_path):
    import numpy as np
    COCO, COCOeval = _coco()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_path)
        dt = gt.loadRes(dt_path)
        e = COCOeval(gt, dt, "bbox")
        e.evaluate()
        e.accumulate()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        e.summarize()
    per = {}
    for k, cid in enumerate(e.params.catIds):
        p = e.eval["precision"][:, :, k, 0, -1]
        p = p[p > -1]
        per[str(cid)] = float(np.mean(p)) if p.size else -1.0
    return {"stats": [float(s) for s in e.stats], "per_category": per,
            "summary": out.getvalue(), "numpy": np.__version__}


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "gen":
        seed, out = int(args[args.index("--seed") + 1]), args[args.index("--out") + 1]
        os.makedirs(out, exist_ok=True)
        gt, dt = gen_case(seed)
        write_json(os.path.join(out, "gt.json"), gt)
        write_json(os.path.join(out, "dt.json"), dt)
        return 0
    if cmd == "eval":
        res = [evaluate(args[i], args[i + 1]) for i in range(0, len(args), 2)]
        print(json.dumps(res))
        return 0
    if cmd == "cases":
        seed0 = int(args[args.index("--seed0") + 1])
        n = int(args[args.index("--n") + 1])
        d = args[args.index("--dir") + 1]
        for i in range(n):
            cd = os.path.join(d, "case%d" % i)
            os.makedirs(cd, exist_ok=True)
            gt, dt = gen_case(seed0 + i)
            write_json(os.path.join(cd, "gt.json"), gt)
            write_json(os.path.join(cd, "dt.json"), dt)
            res = evaluate(os.path.join(cd, "gt.json"), os.path.join(cd, "dt.json"))
            res["counts"] = {"images": len(gt["images"]), "categories": len(gt["categories"]),
                             "gt": len(gt["annotations"]), "dt": len(dt)}
            write_json(os.path.join(cd, "expected.json"), res)
        return 0
    if cmd == "bench":
        COCO, COCOeval = _coco()
        t = {}
        with contextlib.redirect_stdout(io.StringIO()):
            t0 = time.perf_counter()
            gt = COCO(args[0])
            t1 = time.perf_counter()
            dt = gt.loadRes(args[1])
            t2 = time.perf_counter()
            e = COCOeval(gt, dt, "bbox")
            e.evaluate()
            t3 = time.perf_counter()
            e.accumulate()
            t4 = time.perf_counter()
            e.summarize()
            t5 = time.perf_counter()
        t = {"load_gt_s": t1 - t0, "load_res_s": t2 - t1, "evaluate_s": t3 - t2,
             "accumulate_s": t4 - t3, "summarize_s": t5 - t4, "eval_s": t5 - t2,
             "total_s": t5 - t0, "stats": [float(s) for s in e.stats]}
        print(json.dumps(t))
        return 0
    print("unknown command %r" % cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Box subcommands of the oracle (registered into run.py):

  run.py encode --in IN.safetensors --out OUT.safetensors
      IN: for each case k, gt.<k> (B,4) float32 ltrb and labels.<k> (B) int64 (B may be 0)
      OUT: bbox.<k> (8732,4) float32 absolute xywh and label.<k> (8732) int64 from
      boxes.encode (spec/ssd-reference.md section 4)
"""
import argparse

from torchref import boxes, st


def _cases(tensors):
    """The case keys k of gt.<k>, in file order; each must come with labels.<k>."""
    keys = [name[3:] for name in tensors if name.startswith("gt.")]
    for k in keys:
        if "labels." + k not in tensors:
            raise SystemExit("encode: labels.%s missing for gt.%s" % (k, k))
    return keys


def cmd_encode(argv):
    ap = argparse.ArgumentParser(prog="run.py encode")
    ap.add_argument("--in", dest="inp", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    tensors, _ = st.read(a.inp)
    xywh, ltrb = boxes.default_boxes()
    out = {}
    for k in _cases(tensors):
        gt = tensors["gt." + k].float().reshape(-1, 4)
        labels = tensors["labels." + k].long().reshape(-1)
        bbox, label = boxes.encode(gt, labels, ltrb, xywh)
        out["bbox." + k] = bbox
        out["label." + k] = label
    st.write(a.out, out)


def register(command):
    command("encode")(cmd_encode)

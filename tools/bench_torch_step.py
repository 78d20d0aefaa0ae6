#!/usr/bin/env python3
"""Times one training step (forward, loss, backward) of our PyTorch reference model
(tools/torchref) in float32 on the CPU, for comparison with `ssd step --repeat`.

usage: bench_torch_step.py --weights W.safetensors --batch B.safetensors [--repeat K]
Prints the median and minimum step time in ms over K steps (after one warm-up step), with
torch's thread count (OMP_NUM_THREADS). A benchmark: it decides nothing in the test suite."""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from torchref import boxes, loss, model, st  # noqa: E402
from torchref.model_cmds import load_weights  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    net = model.SSD300()
    w, _ = st.read(a.weights)
    load_weights(net, w, torch.float32)
    net.train()
    b, _ = st.read(a.batch)
    xywh, _ = boxes.default_boxes()
    imgs, gloc, glabel = b["images"], b["bboxes"], b["labels"]
    times = []
    for r in range(a.repeat + 1):
        net.zero_grad(set_to_none=False)
        t0 = time.perf_counter()
        ploc, pconf = net(imgs)
        l, _ = loss.ssd_loss(ploc, pconf, gloc, glabel, xywh)
        l.backward()
        dt = (time.perf_counter() - t0) * 1e3
        if r > 0:
            times.append(dt)
    times.sort()
    n = imgs.shape[0]
    med = times[len(times) // 2]
    print("torch %s step timing: batch %d: median %.1f ms, min %.1f ms over %d steps "
          "(%.2f img/s, %d threads)" % (torch.__version__, n, med, times[0], len(times),
                                         n / (med / 1e3), torch.get_num_threads()))


if __name__ == "__main__":
    main()

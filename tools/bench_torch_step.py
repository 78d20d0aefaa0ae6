#!/usr/bin/env python3
"""Times one SGD training step (forward, loss, backward, update) of our PyTorch reference model
(tools/torchref) on the CPU or a GPU: the reference side of `ssd bench --what train`, also
usable with `ssd step --repeat` by hand.

usage: bench_torch_step.py --weights W.safetensors --batch B.safetensors [--repeat K]
                           [--threads T] [--autocast] [--device cpu|cuda] [--channels-last]
                           [--no-tf32] [--json]
After one warm-up step, K steps on the same batch; prints the median and minimum step time and
the median of each phase (forward, loss, backward, update = torch.optim.SGD(momentum 0.9,
weight decay 5e-4).step()). --autocast runs forward and loss under
torch.autocast(device, dtype=torch.bfloat16) (PyTorch AMP). On cuda every phase boundary
synchronises the GPU; --channels-last puts model and images in torch.channels_last (NHWC), as
NVIDIA's MLPerf submissions run; --no-tf32 keeps float32 convolutions in float32 (PyTorch lets
cuDNN use TF32 by default). --json prints one JSON object as the last line.
A benchmark: it decides nothing in the test suite."""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from torchref import boxes, loss, model, st  # noqa: E402
from torchref.model_cmds import load_weights  # noqa: E402


def profile_one_step(net, opt, imgs, gloc, glabel, xywh, autocast):
    """SSD_TORCH_PROFILE=1: one more step under torch.profiler; the kernels' GPU time, largest
    first, to stderr (where our side's SSD_CUDA_PROFILE table goes)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        opt.zero_grad(set_to_none=False)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            ploc, pconf = net(imgs)
            l, _ = loss.ssd_loss(ploc.float(), pconf.float(), gloc, glabel, xywh)
        l.backward()
        opt.step()
        torch.cuda.synchronize()
    ka = prof.key_averages()
    for key in ("self_device_time_total", "self_cuda_time_total"):
        try:
            print(ka.table(sort_by=key, row_limit=45, max_name_column_width=70), file=sys.stderr)
            break
        except Exception:  # older or newer torch names the column differently
            continue


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--autocast", action="store_true")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--no-tf32", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    gpu = a.device == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = not a.no_tf32
        torch.backends.cuda.matmul.allow_tf32 = not a.no_tf32
    net = model.SSD300()
    w, _ = st.read(a.weights)
    load_weights(net, w, torch.float32)
    net.train()
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    net = net.to(dev, memory_format=fmt)
    b, _ = st.read(a.batch)
    xywh, _ = boxes.default_boxes()
    imgs = b["images"].to(dev).contiguous(memory_format=fmt)
    gloc, glabel, xywh = b["bboxes"].to(dev), b["labels"].to(dev), xywh.to(dev)

    def now():
        if gpu:
            torch.cuda.synchronize()
        return time.perf_counter()
    # the same tiny learning rate as ours: the repeated batch stays meaningful
    opt = torch.optim.SGD(net.parameters(), lr=1e-6, momentum=0.9, weight_decay=5e-4)
    phases = {"forward_ms": [], "loss_ms": [], "backward_ms": [], "update_ms": [], "step_ms": []}
    for r in range(a.repeat + 1):
        opt.zero_grad(set_to_none=False)
        t0 = now()
        with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.autocast):
            ploc, pconf = net(imgs)
            t1 = now()
            l, _ = loss.ssd_loss(ploc.float(), pconf.float(), gloc, glabel, xywh)
        t2 = now()
        l.backward()
        t3 = now()
        opt.step()
        t4 = now()
        if r > 0:
            for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                phases[k].append(v * 1e3)
    if os.environ.get("SSD_TORCH_PROFILE") and gpu:
        profile_one_step(net, opt, imgs, gloc, glabel, xywh, a.autocast)
    n = imgs.shape[0]
    med = {k: statistics.median(v) for k, v in phases.items()}
    res = dict(med)
    res.update({"images_per_s": n / (med["step_ms"] / 1e3), "step_min_ms": min(phases["step_ms"]),
                "batch": n, "threads": torch.get_num_threads(), "torch": torch.__version__,
                "autocast_bf16": a.autocast, "repeat": a.repeat, "device": a.device,
                "channels_last": a.channels_last,
                "tf32": gpu and not a.no_tf32 and not a.autocast})
    if gpu:
        res["gpu"] = torch.cuda.get_device_name(0)
    print("torch %s step timing: batch %d: median %.1f ms (forward %.1f, loss %.1f, backward %.1f,"
          " update %.1f), min %.1f ms over %d steps (%.2f img/s, %d threads%s)"
          % (torch.__version__, n, med["step_ms"], med["forward_ms"], med["loss_ms"],
             med["backward_ms"], med["update_ms"], res["step_min_ms"], a.repeat,
             res["images_per_s"], res["threads"], ", bf16 autocast" if a.autocast else ""),
          file=sys.stderr if a.json else sys.stdout)
    if a.json:
        print(json.dumps(res, separators=(",", ":")))


if __name__ == "__main__":
    main()

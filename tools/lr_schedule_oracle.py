#!/usr/bin/env python3
"""Test oracle for src/train/schedule.c: the reference's LR schedule, simulated statefully.

Replays the learning-rate logic of the MLPerf SSD reference train.py (spec section 7) literally:
a real torch.optim.SGD param group (a plain dict when torch is not importable; the LR is only a
Python float in either case) whose 'lr' is written exactly where train.py writes it:

  current_lr = args.lr * (global_batch_size / 32)          # SGD(lr=current_lr)
  wb = int(args.warmup * nonempty_imgs / (N_gpu*args.batch_size))   if args.warmup
  for epoch in range(epochs):
      if epoch in lr_decay_schedule: current_lr *= 0.1; group['lr'] = current_lr
      for nbatch in range(iters_per_epoch):
          lr_warmup(): if iter_num < wb: group['lr'] = cur - (wb - iter_num) * (cur / (wb * 2**wf))
          optim.step()   # <- the LR recorded here
          iter_num += 1

Walks many configurations drawn from random.Random(SEED) (batch sizes, warmups including
fractional ones whose product truncates, zero and negative warmups, warmup factors, decay lists
that are empty, unsorted, duplicated, negative or inside the warmup, --iteration offsets, steps per
epoch) and writes, one record per line, with floats as float.hex() so the C side reads them exactly:

  C <lr> <global_batch> <warmup|none> <wf> <train_samples> <ipe> <iteration> <epochs> <n> d1..dn
  W <wb>                       (0 when no warmup is configured)
  S <epoch> <it> <lr>          one per optimizer step

Usage: lr_schedule_oracle.py [--seed N] [--configs N] > out.txt
"""
import argparse
import random
import sys

try:
    import torch

    def make_group(lr):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=lr, momentum=0.9, weight_decay=5e-4)
        return opt, opt.param_groups
except ImportError:  # the LR arithmetic is pure Python floats either way
    torch = None

    def make_group(lr):
        return None, [{"lr": lr}]


def simulate(out, lr_flag, gb, warmup, wf, n_samples, ipe, iteration, epochs, decays):
    current_lr = lr_flag * (gb / 32)
    opt, groups = make_group(current_lr)
    wb = 0
    if warmup:
        wb = int(warmup * n_samples / gb)

    def lr_warmup(iter_num, base_lr):
        if iter_num < wb:
            warmup_step = base_lr / (wb * (2 ** wf))
            new_lr = base_lr - (wb - iter_num) * warmup_step
            for g in groups:
                g["lr"] = new_lr

    wtxt = "none" if warmup is None else float(warmup).hex()
    out.write("C %s %d %s %d %d %d %d %d %d%s\n" % (
        float(lr_flag).hex(), gb, wtxt, wf, n_samples, ipe, iteration, epochs, len(decays),
        "".join(" %d" % d for d in decays)))
    out.write("W %d\n" % max(wb, 0))
    iter_num = iteration
    for epoch in range(epochs):
        if epoch in decays:
            current_lr *= 0.1
            for g in groups:
                g["lr"] = current_lr
        for _ in range(ipe):
            lr_warmup(iter_num, current_lr)
            lr = groups[0]["lr"]
            if opt is not None:
                opt.step()  # the step reads group['lr']; the grad is None, so it does nothing
            out.write("S %d %d %s\n" % (epoch, iter_num, float(lr).hex()))
            iter_num += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--configs", type=int, default=300)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    out = sys.stdout
    # The spec's named configurations first.
    simulate(out, 2.5e-3, 32, None, 0, 117266, 3665, 0, 52, [40, 50])
    simulate(out, 2.5e-3, 1024, 2.619685, 0, 117266, 115, 0, 52, [40, 50])
    simulate(out, 2.5e-3, 1024, 2.619685, 0, 117266, 115, 250, 52, [40, 50])
    for _ in range(a.configs):
        gb = rng.choice([1, 2, 3, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1000, 1024, 2048])
        lr_flag = rng.choice([2.5e-3, 1e-3, 0.1, 3e-3, rng.uniform(1e-5, 0.5)])
        n_samples = rng.choice([117266, 1000, 4999, rng.randint(1, 200000)])
        ipe = rng.randint(1, 60)
        epochs = rng.randint(1, 30)
        total = ipe * epochs
        r = rng.random()
        if r < 0.15:
            warmup = None
        elif r < 0.2:
            warmup = 0.0
        elif r < 0.25:
            warmup = -rng.uniform(0, 3)
        else:
            # wb somewhere in [0, 1.5 * total], fractional, often just below an integer
            target = rng.uniform(0, 1.5 * total)
            warmup = target * gb / n_samples
            if rng.random() < 0.3:
                warmup = rng.choice([2.619685, 0.5, 1.0 / 3.0, 0.1])
        wf = rng.choice([0, 0, 0, 1, 2, 3, -1])
        iteration = rng.choice([0, 0, 0, rng.randint(0, 2 * total + 5)])
        decays = []
        for _ in range(rng.choice([0, 1, 2, 2, 3, 5])):
            decays.append(rng.randint(-2, epochs + 2))
        if rng.random() < 0.2 and decays:
            decays.append(decays[0])  # duplicate
        simulate(out, lr_flag, gb, warmup, wf, n_samples, ipe, iteration, epochs, decays)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Command-line front of the PyTorch test oracle (tools/torchref). Each subcommand reads and
writes safetensors files so C tests can compare against it:

  run.py anchors --out F.safetensors
      xywh, ltrb (8732,4) float32
(further subcommands are registered by the modules below)
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from torchref import boxes, st  # noqa: E402

COMMANDS = {}


def command(name):
    def deco(fn):
        COMMANDS[name] = fn
        return fn
    return deco


@command("anchors")
def cmd_anchors(argv):
    ap = argparse.ArgumentParser(prog="run.py anchors")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    xywh, ltrb = boxes.default_boxes()
    st.write(a.out, {"xywh": xywh, "ltrb": ltrb})


def _load_plugins():
    # each oracle module may define register(command) to add subcommands
    import importlib
    for mod in ("boxes_cmds", "loss_cmds", "post_cmds", "model_cmds"):
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), mod + ".py")
        if os.path.exists(path):
            importlib.import_module("torchref." + mod).register(command)


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    _load_plugins()
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.stderr.write("usage: run.py {%s} ...\n" % ",".join(sorted(COMMANDS)))
        return 2
    COMMANDS[sys.argv[1]](sys.argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())

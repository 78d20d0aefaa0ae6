"""Our own PyTorch reference of SSD300-ResNet34, written from spec/ssd-reference.md.

A test oracle only (Debian python3-torch 1.13 under /usr/bin/python3); nothing in the C
program imports or runs it. Modules:
  st        safetensors read/write (stdlib + numpy; no safetensors package needed)
  boxes     default boxes, IoU, encoder, box coder
  loss      the SSD loss (smooth-L1 + CE with 3:1 hard-negative mining)
  post      decode + per-class NMS (inference post-processing)
  model     the network (truncated ResNet-34 + extras + heads)
"""

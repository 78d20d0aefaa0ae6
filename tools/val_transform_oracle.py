#!/usr/bin/env python3
"""Test oracle: the reference's validation transform in torchvision + Pillow (Debian's
python3-torchvision 0.14 / python3-pil 9.4): Image.open(path).convert("RGB"), Resize((300, 300))
(bilinear), ToTensor, Normalize(ImageNet mean/std). Writes the float32 CHW tensor raw to OUT.
Usage: val_transform_oracle.py IMAGE OUT"""
import sys

from PIL import Image
from torchvision import transforms


def main():
    src, out = sys.argv[1], sys.argv[2]
    t = transforms.Compose([
        transforms.Resize((300, 300)),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    x = t(Image.open(src).convert("RGB")).contiguous()
    with open(out, "wb") as f:
        f.write(x.numpy().astype("<f4").tobytes())


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Pillow as the reference JPEG decoder for tests/data/test_jpeg.c (spec 6.1: the reference
reads images with Image.open(path).convert("RGB")).

    pil_decode_oracle.py md5 FILE...           one line per file: "<md5> <w> <h> <basename>"
                                               (md5 of the w*h*3 RGB bytes), or
                                               "ERROR - - <basename> <message>" when Pillow fails
    pil_decode_oracle.py raw OUTDIR FILE...    writes OUTDIR/<basename>.rgb (raw RGB rows) and
                                               prints the md5 lines as above
    pil_decode_oracle.py version               Pillow's version and its libjpeg

Run it with the Python whose Pillow links the same libjpeg-turbo as the C code (Debian 12:
/usr/bin/python3, python3-pil 9.4 on libjpeg62-turbo 2.1.5).
"""
import hashlib
import os
import sys

from PIL import Image, features


def decode(path):
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    return rgb.size, rgb.tobytes()


def main():
    cmd = sys.argv[1]
    if cmd == "version":
        print(f"Pillow {Image.__version__}, libjpeg API {features.version('jpg')}, "
              f"libjpeg-turbo: {features.check_feature('libjpeg_turbo')}")
        return
    outdir = None
    files = sys.argv[2:]
    if cmd == "raw":
        outdir, files = files[0], files[1:]
    elif cmd != "md5":
        sys.exit("usage: pil_decode_oracle.py md5|raw|version ...")
    for path in files:
        name = os.path.basename(path)
        try:
            (w, h), data = decode(path)
        except Exception as e:  # noqa: BLE001 - any failure is an answer the test compares
            msg = " ".join(str(e).split())
            print(f"ERROR - - {name} {type(e).__name__}: {msg}")
            continue
        if outdir:
            with open(os.path.join(outdir, name + ".rgb"), "wb") as f:
                f.write(data)
        print(hashlib.md5(data).hexdigest(), w, h, name)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Makes the JPEG fixtures of tests/data/test_jpeg.c (tests/fixtures/data/jpeg/).

    /usr/bin/python3 tools/make_jpeg_fixtures.py tests/fixtures/data/jpeg [--coco ../shared/data/coco_tiny]

Writes (all deterministic, from numpy patterns):
  * Pillow 9.4 encodes: 4:2:0 / 4:2:2 / 4:4:4, progressive, optimized Huffman, grayscale,
    CMYK (libjpeg writes an Adobe APP14 marker, transform 0), the same CMYK file with its APP14
    segment cut out, odd sizes 1x1, 17x5 and 33x31 (partial MCUs in both directions);
  * TurboJPEG encodes through ctypes (the system libturbojpeg.so.0, which Pillow 9.4 cannot
    produce): YCCK (tjCompress2 of CMYK pixels; Adobe transform 2), a restart-interval file
    (TurboJPEG's documented TJ_RESTART environment variable: a DRI marker and RSTn every 3
    MCUs) and an arithmetic-coded file (TJ_ARITHMETIC);
  * bad_png.png: a small PNG, for the "not a JPEG" error test;
  * with --coco: copies 8 small real COCO images byte for byte and writes ATTRIBUTION.txt
    from the coco_tiny IMAGE_LICENSES.tsv.
Then run tools/pil_decode_oracle.py md5 over the directory to refresh pillow_md5.txt.
"""
import ctypes
import os
import shutil
import sys

import numpy as np
from PIL import Image

COCO_PICKS = [  # small files (< 60 kB) from both splits of coco_tiny
    "train2017/000000425989.jpg", "train2017/000000483330.jpg", "train2017/000000188421.jpg",
    "val2017/000000223747.jpg", "val2017/000000521601.jpg", "val2017/000000404484.jpg",
    "val2017/000000555009.jpg", "val2017/000000343937.jpg",
]
LICENSES = {  # COCO 2017 license list
    "1": "CC BY-NC-SA 2.0", "2": "CC BY-NC 2.0", "3": "CC BY-NC-ND 2.0", "4": "CC BY 2.0",
    "5": "CC BY-SA 2.0", "6": "CC BY-ND 2.0", "7": "No known copyright restrictions",
    "8": "United States Government Work",
}


def photo(w, h, seed):
    """A photo-like RGB test pattern: smooth gradients, sharp edges, fine texture, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / max(w, 1) * 6.0 + y / max(h, 1) * 2.0)
    g = 128 + 90 * np.cos(y / max(h, 1) * 5.0 - x / max(w, 1))
    b = 255 * ((x + y) / max(w + h - 2, 1))
    img = np.stack([r, g, b], -1)
    img[(x // 7 + y // 9) % 2 == 0] *= 0.8                         # blocky edges
    img[(x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(w, h) / 3) ** 2] = [250, 30, 40]  # a red disc
    img += rng.normal(0, 6, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def cmyk_sweep():
    """256x256 CMYK: C = x, K = y, M and Y mixed, so every (C, K) pair appears."""
    y, x = np.mgrid[0:256, 0:256]
    c = x
    k = y
    m = (x + y) // 2
    yy = 255 - x
    return np.stack([c, m, yy, k], -1).astype(np.uint8)


def strip_app14(data):
    """The JPEG bytes without their APP14 (Adobe) segment(s) (header part only)."""
    assert data[:2] == b"\xff\xd8"
    out, i = bytearray(data[:2]), 2
    while True:
        assert data[i] == 0xFF
        marker = data[i + 1]
        if marker == 0xDA:  # start of scan: copy the rest unchanged
            out += data[i:]
            return bytes(out)
        seglen = (data[i + 2] << 8) | data[i + 3]
        if marker != 0xEE:
            out += data[i:i + 2 + seglen]
        i += 2 + seglen


def tj_compress(pixels, pf, samp, quality, env=None):
    """tjCompress2 through ctypes; env: TurboJPEG's TJ_* variables for this call only."""
    tj = ctypes.CDLL("libturbojpeg.so.0")
    tj.tjInitCompress.restype = ctypes.c_void_p
    tj.tjGetErrorStr2.restype = ctypes.c_char_p
    tj.tjGetErrorStr2.argtypes = [ctypes.c_void_p]
    tj.tjDestroy.argtypes = [ctypes.c_void_p]
    tj.tjFree.argtypes = [ctypes.c_void_p]
    tj.tjCompress2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                               ctypes.POINTER(ctypes.c_ulong), ctypes.c_int, ctypes.c_int,
                               ctypes.c_int]
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        h = tj.tjInitCompress()
        h_, w_ = pixels.shape[:2]
        buf, size = ctypes.c_void_p(), ctypes.c_ulong(0)
        src = np.ascontiguousarray(pixels).tobytes()
        if tj.tjCompress2(h, src, w_, 0, h_, pf, ctypes.byref(buf), ctypes.byref(size), samp,
                          quality, 0) != 0:
            raise RuntimeError(tj.tjGetErrorStr2(h).decode())
        data = ctypes.string_at(buf, size.value)
        tj.tjFree(buf)
        tj.tjDestroy(h)
        return data
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


TJPF_RGB, TJPF_CMYK = 0, 11
TJSAMP_444, TJSAMP_420 = 0, 2


def main():
    out = sys.argv[1]
    coco = sys.argv[sys.argv.index("--coco") + 1] if "--coco" in sys.argv else None
    os.makedirs(out, exist_ok=True)

    def save(name, im, **kw):
        im.save(os.path.join(out, name), "JPEG", **kw)

    def write(name, data):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)

    p = photo(160, 120, 1)
    save("gen_420_q90.jpg", p, quality=90, subsampling=2)
    save("gen_422_q90.jpg", p, quality=90, subsampling=1)
    save("gen_444_q90.jpg", p, quality=90, subsampling=0)
    save("gen_progressive_420.jpg", photo(150, 110, 2), quality=85, progressive=True)
    save("gen_optimized_420.jpg", photo(130, 97, 3), quality=75, optimize=True)
    save("gen_gray.jpg", photo(123, 77, 4).convert("L"), quality=90)
    save("gen_gray_progressive.jpg", photo(64, 48, 5).convert("L"), quality=80, progressive=True)
    save("gen_1x1.jpg", photo(1, 1, 6), quality=90)
    save("gen_17x5.jpg", photo(17, 5, 7), quality=90)
    save("gen_33x31_422.jpg", photo(33, 31, 8), quality=90, subsampling=1)
    cmyk = Image.frombytes("CMYK", (256, 256), cmyk_sweep().tobytes())
    save("gen_cmyk_adobe.jpg", cmyk, quality=95)
    with open(os.path.join(out, "gen_cmyk_adobe.jpg"), "rb") as f:
        data = f.read()
    assert b"\xff\xee" in data[:200], "Pillow's CMYK JPEG has no Adobe marker?"
    write("gen_cmyk_noadobe.jpg", strip_app14(data))
    # TurboJPEG stores the CMYK values it is given; Adobe-convention files (Photoshop, and
    # Pillow's own "CMYK;I" writer above) store 255 - ink, so hand it the inverted sweep.
    ycck = tj_compress(255 - cmyk_sweep()[::2, ::2], TJPF_CMYK, TJSAMP_420, 92)
    assert ycck.find(b"Adobe") > 0, "TurboJPEG's YCCK file has no Adobe marker?"
    write("gen_ycck_adobe.jpg", ycck)
    rgb = np.asarray(photo(96, 80, 9))
    rst = tj_compress(rgb, TJPF_RGB, TJSAMP_420, 90, {"TJ_RESTART": "3B"})
    assert b"\xff\xdd" in rst, "no DRI marker: TJ_RESTART not honoured"
    write("gen_restart_420.jpg", rst)
    write("gen_arithmetic_444.jpg",
          tj_compress(rgb, TJPF_RGB, TJSAMP_444, 90, {"TJ_ARITHMETIC": "1"}))
    photo(20, 10, 10).save(os.path.join(out, "bad_png.png"), "PNG")

    if coco:
        lic = {}
        with open(os.path.join(coco, "IMAGE_LICENSES.tsv")) as f:
            for line in f.read().splitlines()[1:]:
                path, iid, lid, flickr, cocourl = line.split("\t")
                lic[path] = (iid, lid, flickr, cocourl)
        lines = [
            "Real COCO 2017 images copied byte for byte from coco_tiny (github.com/zzowenzz/",
            "COCO_Tiny@e7a689f7; see ../shared/data/coco_tiny/ATTRIBUTION.txt), itself a verbatim",
            "subset of MS COCO 2017 (Lin et al., ECCV 2014). The COCO Consortium does not own the",
            "images: each is a Flickr photo under the license below (COCO 2017 license ids).",
            "Used here only as decoder test inputs.",
            "",
            "file\tcoco_image_id\tlicense\tflickr_url\tcoco_url",
        ]
        for rel in COCO_PICKS:
            name = "coco_" + os.path.basename(rel)
            shutil.copyfile(os.path.join(coco, rel), os.path.join(out, name))
            iid, lid, flickr, cocourl = lic[rel]
            lines.append(f"{name}\t{iid}\t{lid} ({LICENSES[lid]})\t{flickr}\t{cocourl}")
        lines += ["", "All gen_*.jpg and bad_png.png files are synthetic, made by",
                  "tools/make_jpeg_fixtures.py (no third-party content)."]
        with open(os.path.join(out, "ATTRIBUTION.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

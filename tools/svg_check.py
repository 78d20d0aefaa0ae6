#!/usr/bin/env python3
"""Reads an SVG written by ssd_plot_training_svg (src/train/plot.h) with Python's XML parser and
reports what a reader of the picture would see, for tests/train/test_plot.c to compare with the
data it plotted.

usage: svg_check.py FILE.svg OUT.json

Exit status 1 (with the parser's message) when FILE is not well-formed XML or not an <svg>.
OUT.json holds:
  size        [width, height] of the root element
  title       text of <text class="title">
  legend      texts inside <g class="legend">
  panels      {panel id: {"frame": [x, y, w, h], "xtick"|"ytick"|"y2tick": [[pixel, value], ...]}}
              a tick's pixel is its label's x (x axis) or y (y axes), its value the label's text
  polylines   {id: [[x, y], ...]} for every <polyline>
  circles     {class: [[cx, cy], ...]}
  target      the dashed <line id="target">: x1, y1, x2, y2, dasharray; target_label its text
Prints one summary line: counts of polylines, their points and circles.
"""
import json
import sys
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"


def local(tag):
    return tag[len(SVG):] if tag.startswith(SVG) else tag


def text_of(el):
    return "".join(el.itertext())


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: svg_check.py FILE.svg OUT.json")
    try:
        root = ET.parse(sys.argv[1]).getroot()
    except ET.ParseError as e:
        sys.exit("%s: not well-formed XML: %s" % (sys.argv[1], e))
    if root.tag != SVG + "svg":
        sys.exit("%s: root element is %s, not svg" % (sys.argv[1], root.tag))
    out = {"size": [float(root.get("width")), float(root.get("height"))], "title": None,
           "legend": [], "panels": {}, "polylines": {}, "circles": {}, "target": None,
           "target_label": None}
    for el in root.iter():
        tag, cls = local(el.tag), el.get("class", "")
        if tag == "text" and cls == "title":
            out["title"] = text_of(el)
        elif tag == "text" and cls == "target-label":
            out["target_label"] = text_of(el)
        elif tag == "g" and cls == "legend":
            out["legend"] = [text_of(t) for t in el.iter(SVG + "text")]
        elif tag == "g" and cls == "panel":
            p = {"frame": None, "xtick": [], "ytick": [], "y2tick": []}
            for c in el.iter():
                ccls = c.get("class", "")
                if local(c.tag) == "rect" and ccls == "frame":
                    p["frame"] = [float(c.get(k)) for k in ("x", "y", "width", "height")]
                elif local(c.tag) == "text" and ccls.endswith("tick-label"):
                    axis = ccls[:-len("-label")]
                    pos = float(c.get("x") if axis == "xtick" else c.get("y"))
                    p[axis].append([pos, float(text_of(c))])
            out["panels"][el.get("id")] = p
        elif tag == "polyline":
            pts = []
            for pair in el.get("points").split():
                x, y = pair.split(",")
                pts.append([float(x), float(y)])
            out["polylines"][el.get("id")] = pts
        elif tag == "circle" and cls:
            out["circles"].setdefault(cls, []).append([float(el.get("cx")), float(el.get("cy"))])
        elif tag == "line" and el.get("id") == "target":
            out["target"] = {k: float(el.get(k)) for k in ("x1", "y1", "x2", "y2")}
            out["target"]["dasharray"] = el.get("stroke-dasharray", "")
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)
    print("polylines=%d points=%d circles=%d" % (
        len(out["polylines"]), sum(len(v) for v in out["polylines"].values()),
        sum(len(v) for v in out["circles"].values())))


if __name__ == "__main__":
    main()

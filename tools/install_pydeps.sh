#!/usr/bin/env bash
# The PyPI test oracles, in their own virtual environment .venv-oracle/ at the project root (kept
# apart from Debian's /usr/bin/python3, which runs the PyTorch oracle): pycocotools for the COCO
# evaluation tests and bench. Pinned: pycocotools 2.0.8 (its cocoeval.py already uses the builtin
# float, so no np.float shim is needed) with numpy 1.23.5, the last numpy series whose float64
# sum works in 8192-element chunks like the numpy 1.24 that produced the golden files (numpy >= 2
# sums in one pass; `ssd cocoeval --numpy2-sum` matches that instead). mlperf-logging 4.1.68 is
# MLCommons' compliance checker (`python -m mlperf_logging.compliance_checker --ruleset 1.0.0`),
# the oracle of tests/train/test_mllog.c; it ships every training ruleset from 0.6.0 on and pulls
# pandas, scipy and PyYAML (pip picks versions that work with numpy 1.23.5).
# Idempotent: does nothing when the environment already has all three at these versions.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-oracle
PKGS=(pycocotools==2.0.8 numpy==1.23.5 mlperf-logging==4.1.68)
PY="${PYTHON:-python3}"
if [ -x "$VENV/bin/python" ] &&
   "$VENV/bin/python" -c 'import numpy, pycocotools, mlperf_logging.compliance_checker, importlib.metadata as m; assert numpy.__version__ == "1.23.5" and m.version("pycocotools") == "2.0.8" and m.version("mlperf-logging") == "4.1.68"' 2>/dev/null; then
  echo "install_pydeps: $VENV has ${PKGS[*]}"
  exit 0
fi
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PKGS[@]}"
"$VENV/bin/python" -c 'import numpy, pycocotools.cocoeval, mlperf_logging.compliance_checker; print("install_pydeps: numpy", numpy.__version__, "pycocotools ok, mlperf_logging ok")'

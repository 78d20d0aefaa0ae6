#!/usr/bin/env bash
# Step time of `ssd train` as 1 process (batch B and 2B) and as 2 MPI ranks of batch B, on the
# same data, side by side (docs/distributed.md "Measured here"). A benchmark: it decides nothing.
#   tools/bench_dist_steps.sh [DATA_DIR] [B] [STEPS]
# DATA_DIR defaults to ../shared/data/coco_tiny beside the source tree; B to 4; STEPS to 7.
# The median images/s of steps 2..STEPS comes from each run's curves.jsonl.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$src/../shared/data/coco_tiny}"
b="${2:-4}"
steps="${3:-7}"
ssd="${SSD:-$src/build/ssd}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(--data "$data" --epochs 1000 --val-interval 0 --no-save --end-iteration "$steps"
        --log-interval 1 --no-progress-line --seed 3 --num-workers 2 --cache-dir "")
for cfg in "1 $b" "2 $b" "1 $((2 * b))"; do
  set -- $cfg
  out="$work/out-$1-$2"
  if [ "$1" = 1 ]; then "$ssd" train "${common[@]}" --output "$out" -b "$2" > "$out.log" 2>&1
  else mpirun -n "$1" "$ssd" train "${common[@]}" --output "$out" -b "$2" > "$out.log" 2>&1; fi
  python3 - "$out/curves.jsonl" "$1" "$2" <<'PY'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"step"' in l]
r, b = int(sys.argv[2]), int(sys.argv[3])
ips = [x["img_s"] for x in recs[1:]]
m = statistics.median(ips)
print(f"{r} process(es) x batch {b} (global {r*b}): median {m:.2f} img/s = {r*b/m:.2f} s/step "
      f"over steps 2-{len(recs)} {[round(v, 2) for v in ips]}")
PY
  grep -h 'all-reduce' "$out.log" || true
done

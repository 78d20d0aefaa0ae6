#!/usr/bin/env bash
# ssd train --pin-threads end to end: one step on a synthetic set says where its threads went
# and succeeds; with OMP_PROC_BIND set it leaves the binding to OpenMP, says so, and succeeds.
set -uo pipefail
ssd=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$ssd" synth --out "$tmp/d" --images 4 --val-images 2 --seed 3 >/dev/null 2>&1 || { echo "FAIL: synth"; exit 1; }
run() { "$ssd" train --data "$tmp/d" --output "$tmp/run$1" -b 2 --end-iteration 1 --val-interval 0 \
        --no-save --no-progress-line --cache-dir '' --pin-threads 2>&1; }
out=$(run 1) || { echo "$out" | tail -5; echo "FAIL: ssd train --pin-threads exited non-zero"; exit 1; }
echo "$out" | grep "pinned one per CPU" || { echo "$out" | tail -5; echo "FAIL: no pinning line"; exit 1; }
out=$(OMP_PROC_BIND=close run 2) || { echo "$out" | tail -5; echo "FAIL: with OMP_PROC_BIND"; exit 1; }
echo "$out" | grep "pin-threads does nothing: OMP_PROC_BIND" || { echo "FAIL: OMP_PROC_BIND not reported"; exit 1; }
echo PASS

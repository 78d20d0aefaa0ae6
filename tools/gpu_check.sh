#!/usr/bin/env bash
# The GPU checks of the cuda backend in one go, for a machine with an NVIDIA GPU:
#   tools/gpu_check.sh BUILD_DIR OUT_DIR [BATCH]
# BUILD_DIR holds `ssd` and the test programs (test_ops_parity, test_model_torch,
# test_gpu_train). OUT_DIR receives summary.txt (the GPU, then each check's status and last
# lines) and six logs: ops_parity, gpu_train, sync_debug, bench, model_torch, profile (scratch
# data goes to ${TMPDIR:-/tmp}). Runs:
#   1. the op suite on cuda against ref, in f32, tf32 and bf16 convolution math
#      (= ctest gpu_ops_parity, gpu_ops_parity_tf32, gpu_ops_parity_bf16)
#   2. short training runs against the CPU run (= ctest test_gpu_train)
#   3. ssd train --backend cuda with SSD_SYNC_DEBUG=1 for 2 steps (every op synchronised), and
#      one epoch with bf16 convolutions and the COCO evaluation (inference on the GPU)
#   4. ssd bench --what train --backend cuda at BATCH (default 128): bf16 convolutions with the
#      PyTorch AMP (bf16, channels_last) and f32 references in the same invocation, then TF32
#      and exact f32 convolutions;
#   5. the network parity suite on cuda vs PyTorch (= ctest gpu_model_torch; last, because it
#      first builds its PyTorch oracle when .cache/ has none);
#   6. where the bf16 step's GPU time goes: the bf16 bench again under SSD_CUDA_PROFILE=1, and
#      PyTorch AMP's kernels under SSD_TORCH_PROFILE=1 (profile.log).
# SSD_PYTHON_TORCH names the python with torch (default: python3 on PATH). GPU_CHECK_SKIP lists
# check names to leave out (e.g. "bench_tf32 bench_f32"), for a lease already short of time. Each check has a time
# limit; the script goes on after a failure and ends non-zero if any check failed.
set -u
build=$(cd "$1" && pwd)
out=$(mkdir -p "$2" && cd "$2" && pwd)
batch=${3:-128}
src=$(cd "$(dirname "$0")/.." && pwd)
export SSD_SOURCE_DIR=$src SSD_BUILD_DIR=$build
export SSD_PYTHON_TORCH=${SSD_PYTHON_TORCH:-$(command -v python3)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
status=0
check() { # name log seconds command...: output appended to OUT/log.log
    local name=$1 log=$out/$2.log secs=$3
    shift 3
    case " ${GPU_CHECK_SKIP:-} " in *" $name "*) echo "$name: skipped (GPU_CHECK_SKIP)" | tee -a "$out/summary.txt"; return;; esac
    local t0=$SECONDS
    echo "=== $name: $*" >>"$log"
    timeout "$secs" "$@" >>"$log" 2>&1
    local rc=$?
    echo "$name: rc=$rc ($((SECONDS - t0)) s)" | tee -a "$out/summary.txt"
    tail -n 4 "$log" | sed 's/^/    /' | tee -a "$out/summary.txt"
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then status=1; fi
}
{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; } \
    >"$out/summary.txt" 2>&1
scratch=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-XXXXXX")
check ops_parity ops_parity 150 env SSD_TEST_BACKEND=cuda "$build/test_ops_parity"
check ops_parity_tf32 ops_parity 150 env SSD_TEST_BACKEND=cuda SSD_CUDA_MATH=tf32 "$build/test_ops_parity"
check ops_parity_bf16 ops_parity 150 env SSD_TEST_BACKEND=cuda SSD_CUDA_MATH=bf16 "$build/test_ops_parity"
check gpu_train gpu_train 200 "$build/test_gpu_train"
"$build/ssd" synth --out "$scratch/synth" --images 8 --val-images 4 --seed 3 >/dev/null 2>&1
check sync_debug sync_debug 60 env SSD_SYNC_DEBUG=1 "$build/ssd" train --backend cuda \
    --data "$scratch/synth" --output "$scratch/sync-debug-run" -b 4 --end-iteration 2 \
    --val-interval 0 --no-save --no-progress-line --cache-dir ''
check train_eval sync_debug 120 "$build/ssd" train --backend cuda --autocast \
    --data "$scratch/synth" --output "$scratch/eval-run" -b 4 --epochs 1 --val-interval 1 \
    --no-progress-line --cache-dir ''
check bench_bf16 bench 200 "$build/ssd" bench --what train --backend cuda --dtype bf16 \
    --batch "$batch" --repeat 5 --json --torch-python "$SSD_PYTHON_TORCH"
check bench_tf32 bench 120 "$build/ssd" bench --what train --backend cuda --tf32 \
    --batch "$batch" --repeat 5 --json --no-reference
check bench_f32 bench 120 "$build/ssd" bench --what train --backend cuda --batch "$batch" \
    --repeat 5 --json --no-reference
check model_torch model_torch 300 env SSD_PARITY_BACKENDS=cuda "$build/test_model_torch"
check profile profile 200 env SSD_CUDA_PROFILE=1 SSD_TORCH_PROFILE=1 "$build/ssd" bench --what \
    train --backend cuda --dtype bf16 --batch "$batch" --repeat 5 --json \
    --torch-python "$SSD_PYTHON_TORCH"
rm -rf "$scratch"
exit $status

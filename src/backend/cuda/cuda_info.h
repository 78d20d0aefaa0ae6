/* What the cuda backend runs on, for `ssd bench` and the start-up line. */
#ifndef SSD_BACKEND_CUDA_INFO_H
#define SSD_BACKEND_CUDA_INFO_H

#include <stddef.h>
#include <stdio.h>

#include "backend/backend.h"

typedef struct ssd_cuda_info {
    char name[256];   /* "NVIDIA H200 (sm_90, 132 SMs)" */
    double f32_peak;  /* GFLOP/s: SMs x FP32 lanes (64 on sm_80, 128 later) x 2 x max clock */
    double tf32_peak; /* dense tensor-core GFLOP/s at the max clock (sm_80, sm_90; else 0) */
    double bf16_peak;
} ssd_cuda_info;

/* What `be` runs on; false when `be` is not the cuda backend. The tensor-core figures are
 * dense FLOP per clock per SM (sm_80: 1024 TF32 / 2048 bf16; sm_90: 2048 / 4096) at the
 * reported max clock, so they sit a little above NVIDIA's data-sheet numbers. */
bool ssd_cuda_describe(ssd_backend *be, ssd_cuda_info *info);

/* With SSD_CUDA_PROFILE=1 (else no-ops, as for other backends): forget the GPU time counted so
 * far; print where the GPU time of the last `steps` steps went, per op and convolution pass. */
void ssd_cuda_profile_reset(ssd_backend *be);
void ssd_cuda_profile_report(ssd_backend *be, FILE *f, int steps);

#endif

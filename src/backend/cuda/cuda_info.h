/* What the cuda backend runs on, for `ssd bench` and the start-up line. */
#ifndef SSD_BACKEND_CUDA_INFO_H
#define SSD_BACKEND_CUDA_INFO_H

#include <stddef.h>

#include "backend/backend.h"

/* The GPU's name and its float32 FMA peak in GFLOP/s: SMs x FP32 lanes per SM (64 on sm_80,
 * 128 on sm_86 and later) x 2 x the boost clock. Returns false when `be` is not cuda. */
bool ssd_cuda_describe(ssd_backend *be, char *name, size_t len, double *f32_peak_gflops);

#endif

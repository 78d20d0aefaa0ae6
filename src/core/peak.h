/* Measured fp32 peak of this machine: an FMA throughput loop run on every OpenMP thread at
 * once. Header-only (static functions): used by bench_ops and `ssd bench --what train`.
 *
 * The kernel keeps 12 independent vector accumulators, each updated acc = acc*m + c with one
 * fused multiply-add per step, so the FMA latency (4-5 cycles on Zen3 / Skylake) is hidden
 * behind 12 chains and the loop runs at the FMA ports' throughput limit (2 per cycle). Each FMA
 * counts as 2 FLOPs per lane. The variant is chosen at run time: avx512f (16 lanes) where the
 * CPU has it, otherwise avx2+fma (8 lanes), otherwise none (peak reported as 0).
 *
 * All threads start behind a barrier and run for the same wall time; the machine peak is the
 * sum over threads of each thread's FLOPs / its own elapsed time. The measurement is what the
 * cores really sustain under an all-core FMA load (turbo / AVX clock offsets included), which is
 * the ceiling a convolution kernel can reach. */
#ifndef SSD_CORE_PEAK_H
#define SSD_CORE_PEAK_H

#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "core/timer.h"

typedef struct peak_result {
    double gflops;           /* whole machine, all threads together */
    double gflops_per_core;  /* gflops / threads (one thread per core) */
    int threads;
    const char *isa;         /* "avx512f", "avx2+fma" or "none" */
    int lanes;               /* fp32 lanes per vector */
    double seconds;          /* measurement length */
    char how[200];           /* "measured: 2 threads x avx2 FMA loop (...)" */
} peak_result;

#define PEAK_ACCS 12
#define PEAK_CHUNK 200000L /* loop iterations between clock reads (~1-3 ms) */

/* Runs `iters` iterations of 12 independent FMAs on 8-lane vectors; returns a value that
 * depends on every accumulator so the compiler cannot drop the work. */
__attribute__((target("avx2,fma"))) static float peak_avx2_chunk(long iters, float m, float c) {
    __m256 vm = _mm256_set1_ps(m), vc = _mm256_set1_ps(c);
    __m256 a0 = _mm256_set1_ps(0.0f), a1 = _mm256_set1_ps(0.1f), a2 = _mm256_set1_ps(0.2f),
           a3 = _mm256_set1_ps(0.3f), a4 = _mm256_set1_ps(0.4f), a5 = _mm256_set1_ps(0.5f),
           a6 = _mm256_set1_ps(0.6f), a7 = _mm256_set1_ps(0.7f), a8 = _mm256_set1_ps(0.8f),
           a9 = _mm256_set1_ps(0.9f), a10 = _mm256_set1_ps(1.0f), a11 = _mm256_set1_ps(1.1f);
    for (long i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, vm, vc);
        a1 = _mm256_fmadd_ps(a1, vm, vc);
        a2 = _mm256_fmadd_ps(a2, vm, vc);
        a3 = _mm256_fmadd_ps(a3, vm, vc);
        a4 = _mm256_fmadd_ps(a4, vm, vc);
        a5 = _mm256_fmadd_ps(a5, vm, vc);
        a6 = _mm256_fmadd_ps(a6, vm, vc);
        a7 = _mm256_fmadd_ps(a7, vm, vc);
        a8 = _mm256_fmadd_ps(a8, vm, vc);
        a9 = _mm256_fmadd_ps(a9, vm, vc);
        a10 = _mm256_fmadd_ps(a10, vm, vc);
        a11 = _mm256_fmadd_ps(a11, vm, vc);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

__attribute__((target("avx512f"))) static float peak_avx512_chunk(long iters, float m, float c) {
    __m512 vm = _mm512_set1_ps(m), vc = _mm512_set1_ps(c);
    __m512 a0 = _mm512_set1_ps(0.0f), a1 = _mm512_set1_ps(0.1f), a2 = _mm512_set1_ps(0.2f),
           a3 = _mm512_set1_ps(0.3f), a4 = _mm512_set1_ps(0.4f), a5 = _mm512_set1_ps(0.5f),
           a6 = _mm512_set1_ps(0.6f), a7 = _mm512_set1_ps(0.7f), a8 = _mm512_set1_ps(0.8f),
           a9 = _mm512_set1_ps(0.9f), a10 = _mm512_set1_ps(1.0f), a11 = _mm512_set1_ps(1.1f);
    for (long i = 0; i < iters; i++) {
        a0 = _mm512_fmadd_ps(a0, vm, vc);
        a1 = _mm512_fmadd_ps(a1, vm, vc);
        a2 = _mm512_fmadd_ps(a2, vm, vc);
        a3 = _mm512_fmadd_ps(a3, vm, vc);
        a4 = _mm512_fmadd_ps(a4, vm, vc);
        a5 = _mm512_fmadd_ps(a5, vm, vc);
        a6 = _mm512_fmadd_ps(a6, vm, vc);
        a7 = _mm512_fmadd_ps(a7, vm, vc);
        a8 = _mm512_fmadd_ps(a8, vm, vc);
        a9 = _mm512_fmadd_ps(a9, vm, vc);
        a10 = _mm512_fmadd_ps(a10, vm, vc);
        a11 = _mm512_fmadd_ps(a11, vm, vc);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

/* One timed run of `seconds` on every OpenMP thread; returns machine GFLOP/s. */
static double peak_run(float (*chunk)(long, float, float), int lanes, double seconds,
                       int threads, volatile float *sink) {
    double rate_sum = 0.0;
    const double flops_per_iter = 2.0 * PEAK_ACCS * lanes;
#pragma omp parallel num_threads(threads) reduction(+ : rate_sum)
    {
        /* volatile: the multiplier and addend are unknown to the compiler */
        volatile float vm = 0.999999f, vc = 1e-7f;
        float acc = 0.0f;
        long iters = 0;
#pragma omp barrier
        double t0 = ssd_now(), t;
        do {
            acc += chunk(PEAK_CHUNK, vm, vc);
            iters += PEAK_CHUNK;
            t = ssd_now();
        } while (t - t0 < seconds);
        rate_sum += (double)iters * flops_per_iter / (t - t0);
        if (acc == 12345.678f) *sink = acc; /* practically never true; keeps acc live */
    }
    return rate_sum * 1e-9;
}

/* Measures the peak: a short warm-up run (clocks ramp up), then `seconds` of measurement. */
static peak_result peak_measure(double seconds) {
    peak_result r;
    memset(&r, 0, sizeof r);
    r.threads = omp_get_max_threads();
    r.seconds = seconds;
    float (*chunk)(long, float, float) = NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        chunk = peak_avx512_chunk;
        r.isa = "avx512f";
        r.lanes = 16;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        chunk = peak_avx2_chunk;
        r.isa = "avx2+fma";
        r.lanes = 8;
    } else {
        r.isa = "none";
        snprintf(r.how, sizeof r.how, "not measured: CPU has neither avx2+fma nor avx512f");
        return r;
    }
    static volatile float sink;
    peak_run(chunk, r.lanes, 0.05, r.threads, &sink);
    r.gflops = peak_run(chunk, r.lanes, seconds, r.threads, &sink);
    r.gflops_per_core = r.gflops / r.threads;
    snprintf(r.how, sizeof r.how,
             "measured: %d threads x %s FMA loop (%d independent %d-lane accumulators, %.2f s, "
             "all threads at once)",
             r.threads, r.isa, PEAK_ACCS, r.lanes, seconds);
    return r;
}

#endif

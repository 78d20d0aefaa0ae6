/* Winograd F(4x4, 3x3) convolution for the cpu backend's 3x3, stride-1, pad-1 layers
 * (forward, backward-data and backward-weights), where oneDNN has none for this CPU: oneDNN 2.6's Winograd
 * kernels are AVX-512 only, and this project also runs on AVX2 machines.
 *
 * Lavin & Gray's minimal filtering algorithm (arXiv:1509.09308) with the interpolation points
 * 0, +-1, +-2 and infinity: a 6x6 input tile d gives a 4x4 output tile
 *     Y = A^T [ (G g G^T) .* (B^T d B) ] A,
 * so each output tile costs 36 multiplies per (input, output) channel pair instead of 144.
 * Summed over input channels, the element-wise products become 36 independent GEMMs
 *     M[xi] (T x K) = V[xi] (T x C) * U[xi] (C x K),   xi = 0..35,
 * over the T = N * ceil(P/4) * ceil(Q/4) tiles, run by oneDNN's sgemm; we write only the three
 * transforms (weights -> U, input tiles -> V, M -> output tiles), which are memory-bound
 * loops that read and write the activations in their own layout (plain NCHW, or the nChw16c
 * of the f32 activation form: no layout reorders at all) and OIHW weights.
 *
 * Backward-data of a 3x3 pad-1 stride-1 convolution is the same convolution of dout with the
 * weights transposed (K <-> C) and rotated by 180 degrees, pad 1: the weight transform reads
 * them that way.
 *
 * Backward-weights reuses the input transform and adds an output-gradient transform and an
 * inverse weight transform around 36 GEMMs (see the section at the end of this file).
 *
 * Vectorised over 8 channels: the input is first copied into a zero-padded channel-blocked
 * buffer [n][c/8][y][x][8], so that every tile's 6x6 window is 36 aligned 8-float loads and the
 * transform writes V's channel rows 8 at a time; the output transform works on 8 output
 * channels at once. This file is compiled with -mavx2 -mfma (CMakeLists.txt) and entered only
 * when the CPU has both and SSD_WINOGRAD=0 did not turn it off (cpu_backend.c sets
 * im->winograd). Compiled without FMA contraction, so every build computes the same bits.
 *
 * Numerics: the transforms' coefficients (up to 5 in B, 1/24 in G, 8 in A) cost some float32
 * accuracy against a direct convolution; test_ops_parity measures it at every layer shape
 * (docs/backends.md gives the numbers). */
#include <stdio.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/par.h"

typedef float v8 __attribute__((vector_size(32)));

/* G (6x3) of F(4x4, 3x3). */
static const float WG[6][3] = {{1.0f / 4, 0, 0},
                               {-1.0f / 6, -1.0f / 6, -1.0f / 6},
                               {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                               {1.0f / 24, 1.0f / 12, 1.0f / 6},
                               {1.0f / 24, -1.0f / 12, 1.0f / 6},
                               {0, 0, 1}};

/* U[xi][c][k] = (G g_kc G^T)[xi] for c < C (rows C..Cp-1 are zero); g_kc = w[k][c] (forward) or
 * w[c][k] rotated by 180 degrees (backward-data: c runs over the forward's output channels).
 * 8 output channels k at a time. */
static void weight_transform(float *U, const float *w, int64_t C, int64_t Cp, int64_t K, bool bwd) {
    const int64_t KB = (K + 7) / 8;
    SSD_PARALLEL_FOR(kb, KB, {
        const int64_t k0 = kb * 8;
        const int nk = K - k0 < 8 ? (int)(K - k0) : 8;
        for (int64_t c = 0; c < Cp; c++) {
            v8 g[9] = {0}, t[18], u[36];
            if (c < C)
                for (int l = 0; l < nk; l++) {
                    const int64_t k = k0 + l;
                    for (int rs = 0; rs < 9; rs++)
                        g[rs][l] = bwd ? w[(c * K + k) * 9 + 8 - rs] : w[(k * C + c) * 9 + rs];
                }
            for (int i = 0; i < 6; i++) /* G g: 6 x 3 */
                for (int s = 0; s < 3; s++)
                    t[i * 3 + s] = WG[i][0] * g[s] + WG[i][1] * g[3 + s] + WG[i][2] * g[6 + s];
            for (int i = 0; i < 6; i++) /* (G g) G^T: 6 x 6 */
                for (int j = 0; j < 6; j++)
                    u[i * 6 + j] = t[i * 3] * WG[j][0] + t[i * 3 + 1] * WG[j][1] +
                                   t[i * 3 + 2] * WG[j][2];
            for (int xi = 0; xi < 36; xi++) {
                float *dst = U + (xi * Cp + c) * K + k0;
                if (nk == 8)
                    memcpy(dst, &u[xi], 32);
                else
                    for (int l = 0; l < nk; l++) dst[l] = u[xi][l];
            }
        }
    });
}

/* y = B^T x on 8 lanes: a 6-vector (stride sx) to a 6-vector (stride sy). */
static inline void bt6(const v8 *x, int sx, v8 *y, int sy) {
    v8 x0 = x[0], x1 = x[sx], x2 = x[2 * sx], x3 = x[3 * sx], x4 = x[4 * sx], x5 = x[5 * sx];
    y[0] = 4 * x0 - 5 * x2 + x4;
    y[sy] = -4 * (x1 + x2) + x3 + x4;
    y[2 * sy] = 4 * (x1 - x2) - x3 + x4;
    y[3 * sy] = 2 * (x3 - x1) - x2 + x4;
    y[4 * sy] = 2 * (x1 - x3) - x2 + x4;
    y[5 * sy] = 4 * x1 - 5 * x3 + x5;
}

/* y = A^T x on 8 lanes: a 6-vector (stride sx) to a 4-vector (stride sy). */
static inline void at6(const v8 *x, int sx, v8 *y, int sy) {
    v8 x0 = x[0], x1 = x[sx], x2 = x[2 * sx], x3 = x[3 * sx], x4 = x[4 * sx], x5 = x[5 * sx];
    v8 a = x1 + x2, b = x1 - x2, c = x3 + x4, d = x3 - x4;
    y[0] = x0 + a + c;
    y[sy] = b + 2 * d;
    y[2 * sy] = a + 4 * c;
    y[3 * sy] = b + 8 * d + x5;
}

/* y = A x on 8 lanes: a 4-vector (stride sx) to a 6-vector (stride sy); A (6x4) is the
 * transpose of at6's A^T. */
static inline void a6(const v8 *x, int sx, v8 *y, int sy) {
    v8 x0 = x[0], x1 = x[sx], x2 = x[2 * sx], x3 = x[3 * sx];
    v8 e = x0 + x2, o = x1 + x3, e4 = x0 + 4 * x2, o4 = 2 * x1 + 8 * x3;
    y[0] = x0;
    y[sy] = e + o;
    y[2 * sy] = e - o;
    y[3 * sy] = e4 + o4;
    y[4 * sy] = e4 - o4;
    y[5 * sy] = x3;
}

/* xb[n][cb][y][x][8] (Hp x Wp per block, zero border and zero channels beyond C) from x, f32 in
 * layout xl (row-major NCHW, or nChw16c: C a multiple of 16, each 8-channel block one half of a
 * 16-channel one): xb row y + off, column x + off holds image row y, column x (off = 1: the
 * pad of 1 around a conv input; off = 0: an output gradient, zero-extended to whole 4x4
 * tiles). */
static void pad_block(float *xb, const float *x, ssd_layout xl, int64_t N, int64_t C, int64_t CB,
                      int64_t H, int64_t W, int64_t Hp, int64_t Wp, int64_t off) {
    SSD_PARALLEL_FOR(ncb, N * CB, {
            const int64_t n = ncb / CB, cb = ncb % CB;
            float *dst = xb + (n * CB + cb) * Hp * Wp * 8;
            memset(dst, 0, (size_t)(Hp * Wp * 8) * sizeof(float));
            if (xl == SSD_LAYOUT_NCHW16C) {
                const float *blk = x + ((n * (C / 16) + cb / 2) * H * W) * 16 + (cb % 2) * 8;
                for (int64_t yy = 0; yy < H; yy++)
                    for (int64_t xx = 0; xx < W; xx++)
                        memcpy(dst + ((yy + off) * Wp + xx + off) * 8, blk + (yy * W + xx) * 16, 32);
            } else {
                for (int l = 0; l < 8 && cb * 8 + l < C; l++) {
                    const float *plane = x + (n * C + cb * 8 + l) * H * W;
                    for (int64_t yy = 0; yy < H; yy++)
                        for (int64_t xx = 0; xx < W; xx++)
                            dst[((yy + off) * Wp + xx + off) * 8 + l] = plane[yy * W + xx];
                }
            }
        });
}

/* V[xi][t][c] = (B^T d B)[xi] for every 6x6 tile d of the padded blocked input. */
static void input_transform(float *V, const float *xb, int64_t N, int64_t CB, int64_t Hp,
                            int64_t Wp, int64_t th, int64_t tw) {
    const int64_t T = N * th * tw, Cp = CB * 8;
    SSD_PARALLEL_FOR(t, T, {
        const int64_t n = t / (th * tw), ti = (t / tw) % th, tj = t % tw;
        for (int64_t cb = 0; cb < CB; cb++) {
            const float *src = xb + ((n * CB + cb) * Hp + 4 * ti) * Wp * 8 + 4 * tj * 8;
            v8 d[36], u[36], v[36];
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++) memcpy(&d[i * 6 + j], src + (i * Wp + j) * 8, 32);
            for (int j = 0; j < 6; j++) bt6(d + j, 6, u + j, 6);     /* columns: B^T d */
            for (int i = 0; i < 6; i++) bt6(u + 6 * i, 1, v + 6 * i, 1); /* rows: (B^T d) B */
            for (int xi = 0; xi < 36; xi++) memcpy(V + (xi * T + t) * Cp + cb * 8, &v[xi], 32);
        }
    });
}

/* out[n][k] tiles = A^T M A (+ bias), clipped to P x Q; 8 output channels at a time. out is f32
 * in layout ol (row-major, or nChw16c with K a multiple of 16). */
static void output_transform(float *out, ssd_layout ol, const float *M, const float *bias,
                             int64_t N, int64_t K, int64_t P, int64_t Q, int64_t th, int64_t tw) {
    const int64_t T = N * th * tw;
    SSD_PARALLEL_FOR(t, T, {
        const int64_t n = t / (th * tw), ti = (t / tw) % th, tj = t % tw;
        for (int64_t k0 = 0; k0 < K; k0 += 8) {
            const int nk = K - k0 < 8 ? (int)(K - k0) : 8;
            v8 m[36], u[24], y[16];
            for (int xi = 0; xi < 36; xi++) {
                if (nk == 8) {
                    memcpy(&m[xi], M + (xi * T + t) * K + k0, 32);
                } else {
                    float tmp[8] = {0};
                    memcpy(tmp, M + (xi * T + t) * K + k0, (size_t)nk * sizeof(float));
                    memcpy(&m[xi], tmp, 32);
                }
            }
            for (int j = 0; j < 6; j++) at6(m + j, 6, u + j, 6);      /* A^T m: 4 x 6 */
            for (int i = 0; i < 4; i++) at6(u + 6 * i, 1, y + 4 * i, 1); /* (A^T m) A: 4 x 4 */
            if (ol == SSD_LAYOUT_NCHW16C) { /* nk == 8: 8 consecutive floats of a 16-block */
                v8 b = {0};
                if (bias) memcpy(&b, bias + k0, 32);
                float *blk = out + (n * (K / 16) + k0 / 16) * P * Q * 16 + k0 % 16;
                for (int i = 0; i < 4 && 4 * ti + i < P; i++)
                    for (int j = 0; j < 4 && 4 * tj + j < Q; j++) {
                        const v8 v = y[i * 4 + j] + b;
                        memcpy(blk + ((4 * ti + i) * Q + 4 * tj + j) * 16, &v, 32);
                    }
                continue;
            }
            for (int l = 0; l < nk; l++) {
                const float b = bias ? bias[k0 + l] : 0.0f;
                float *plane = out + (n * K + k0 + l) * P * Q;
                for (int i = 0; i < 4 && 4 * ti + i < P; i++)
                    for (int j = 0; j < 4 && 4 * tj + j < Q; j++)
                        plane[(4 * ti + i) * Q + 4 * tj + j] = y[i * 4 + j][l] + b;
            }
        }
    });
}

/* C[xi] (M x Nn) = op(A[xi]) * B[xi] for xi = 0..35, row-major, op = transpose when ta == 'T'
 * (A[xi] is then Kk x M); the matrices of xi lie sa, sb, sc floats apart. The 36 GEMMs are
 * shared among the threads, each run single-threaded (oneDNN's sgemm does not fork inside a
 * parallel region): a GEMM's summation order, and so the result, is the same for any thread
 * count (without this, 1 and 2 threads gave different roundings, and test_dist's ranks-vs-
 * one-process parity could not hold with Winograd on). */
static void gemm36(char ta, int64_t M, int64_t Nn, int64_t Kk, const float *A, int64_t lda,
                   int64_t sa, const float *B, int64_t ldb, int64_t sb, float *C, int64_t ldc,
                   int64_t sc) {
    SSD_PARALLEL_FOR(xi, 36,
        DNNL_CHECK(dnnl_sgemm(ta, 'N', M, Nn, Kk, 1.0f, A + xi * sa, lda, B + xi * sb, ldb, 0.0f,
                              C + xi * sc, ldc)););
}

void cpu_wino_conv3x3(ssd_backend *be, float *out, ssd_layout ol, const float *inp, ssd_layout il,
                      const float *w, const float *bias, int64_t N, int64_t C, int64_t H,
                      int64_t W, int64_t K, bool bwd) {
    cpu_impl *im = cpu_impl_of(be);
    const int64_t th = (H + 3) / 4, tw = (W + 3) / 4, T = N * th * tw;
    const int64_t CB = (C + 7) / 8, Cp = CB * 8, Hp = 4 * th + 2, Wp = 4 * tw + 2;
    float *U = cpu_slot(im, CPU_SLOT_0, (size_t)36 * Cp * K * sizeof(float));
    float *V = cpu_slot(im, CPU_SLOT_1, (size_t)36 * T * Cp * sizeof(float));
    float *Mt = cpu_slot(im, CPU_SLOT_2, (size_t)36 * T * K * sizeof(float));
    float *xb = cpu_slot(im, CPU_SLOT_3, (size_t)N * Cp * Hp * Wp * sizeof(float));
    weight_transform(U, w, C, Cp, K, bwd);
    pad_block(xb, inp, il, N, C, CB, H, W, Hp, Wp, 1);
    input_transform(V, xb, N, CB, Hp, Wp, th, tw);
    gemm36('N', T, K, Cp, V, Cp, T * Cp, U, K, Cp * K, Mt, K, T * K);
    output_transform(out, ol, Mt, bias, N, K, H, W, th, tw);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:winograd_4x4_3x3+dnnl_sgemm");
}

/* ---- backward-weights ----
 * The forward tile is linear in the weights: Y = A^T [ (G g G^T) .* V ] A with V = B^T d B, so
 * the gradient of g from one tile's output gradient dY is G^T [ V .* (A dY A^T) ] G. The tiles
 * partition the output (gradient zero beyond P x Q), so summing over tiles gives the exact
 * weight gradient, and the sum over tiles inside the brackets is again 36 GEMMs:
 *     Mw[xi] (C x K) = V[xi]^T (C x T) * D[xi] (T x K),   D = A dY A^T per tile,
 * followed by dW[k][c] += G^T Mw_kc G. Same multiply count as the forward (4x fewer than
 * direct); the input transform is the forward's. */

/* D[xi][t][k] = (A dy A^T)[xi] for every 4x4 tile dy of the blocked output gradient yb
 * ([n][kb][y][x][8], Hq x Wq = whole tiles, zero beyond the map). */
static void dout_transform(float *D, const float *yb, int64_t N, int64_t KB, int64_t Hq,
                           int64_t Wq, int64_t th, int64_t tw) {
    const int64_t T = N * th * tw, Kp = KB * 8;
    SSD_PARALLEL_FOR(t, T, {
        const int64_t n = t / (th * tw), ti = (t / tw) % th, tj = t % tw;
        for (int64_t kb = 0; kb < KB; kb++) {
            const float *src = yb + ((n * KB + kb) * Hq + 4 * ti) * Wq * 8 + 4 * tj * 8;
            v8 d[16], u[24], v[36];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) memcpy(&d[i * 4 + j], src + (i * Wq + j) * 8, 32);
            for (int j = 0; j < 4; j++) a6(d + j, 4, u + j, 4);         /* columns: A dy: 6 x 4 */
            for (int i = 0; i < 6; i++) a6(u + 4 * i, 1, v + 6 * i, 1); /* rows: (A dy) A^T */
            for (int xi = 0; xi < 36; xi++) memcpy(D + (xi * T + t) * Kp + kb * 8, &v[xi], 32);
        }
    });
}

/* dw[k][c] += G^T Mw_kc G (6x6 -> 3x3) for c < C, k < K; 8 output channels at a time. Each
 * (k, c) is written by one iteration only. */
static void weight_grad_transform(float *dw, const float *Mw, int64_t C, int64_t Cp, int64_t K,
                                  int64_t Kp) {
    const int64_t KB = Kp / 8;
    SSD_PARALLEL_FOR(ckb, C * KB, {
            const int64_t c = ckb / KB, kb = ckb % KB;
            const int64_t k0 = kb * 8;
            const int nk = K - k0 < 8 ? (int)(K - k0) : 8;
            v8 m[36], t[18], g[9];
            for (int xi = 0; xi < 36; xi++) memcpy(&m[xi], Mw + (xi * Cp + c) * Kp + k0, 32);
            for (int r = 0; r < 3; r++) /* G^T m: 3 x 6 */
                for (int j = 0; j < 6; j++) {
                    v8 acc = {0};
                    for (int i = 0; i < 6; i++)
                        if (WG[i][r] != 0.0f) acc += WG[i][r] * m[i * 6 + j];
                    t[r * 6 + j] = acc;
                }
            for (int r = 0; r < 3; r++) /* (G^T m) G: 3 x 3 */
                for (int s2 = 0; s2 < 3; s2++) {
                    v8 acc = {0};
                    for (int j = 0; j < 6; j++)
                        if (WG[j][s2] != 0.0f) acc += t[r * 6 + j] * WG[j][s2];
                    g[r * 3 + s2] = acc;
                }
            for (int l = 0; l < nk; l++)
                for (int rs = 0; rs < 9; rs++) dw[((k0 + l) * C + c) * 9 + rs] += g[rs][l];
        });
}

void cpu_wino_conv3x3_bwd_weights(ssd_backend *be, float *dw, float *dbias, const float *dout,
                                  ssd_layout yl, const float *inp, ssd_layout xl, int64_t N,
                                  int64_t C, int64_t H, int64_t W, int64_t K) {
    cpu_impl *im = cpu_impl_of(be);
    const int64_t th = (H + 3) / 4, tw = (W + 3) / 4, T = N * th * tw;
    const int64_t CB = (C + 7) / 8, Cp = CB * 8, Hp = 4 * th + 2, Wp = 4 * tw + 2;
    const int64_t KB = (K + 7) / 8, Kp = KB * 8;
    float *Mw = cpu_slot(im, CPU_SLOT_0, (size_t)36 * Cp * Kp * sizeof(float));
    float *V = cpu_slot(im, CPU_SLOT_1, (size_t)36 * T * Cp * sizeof(float));
    float *D = cpu_slot(im, CPU_SLOT_2, (size_t)36 * T * Kp * sizeof(float));
    float *xb = cpu_slot(im, CPU_SLOT_3, (size_t)N * Cp * Hp * Wp * sizeof(float));
    float *yb = cpu_slot(im, CPU_SLOT_4, (size_t)N * Kp * 16 * th * tw * sizeof(float));
    pad_block(xb, inp, xl, N, C, CB, H, W, Hp, Wp, 1);
    input_transform(V, xb, N, CB, Hp, Wp, th, tw);
    pad_block(yb, dout, yl, N, K, KB, H, W, 4 * th, 4 * tw, 0);
    dout_transform(D, yb, N, KB, 4 * th, 4 * tw, th, tw);
    gemm36('T', Cp, Kp, T, V, Cp, T * Cp, D, Kp, T * Kp, Mw, Kp, Cp * Kp);
    weight_grad_transform(dw, Mw, C, Cp, K, Kp);
    if (dbias) {
        const int64_t shape[4] = {N, K, H, W}, ps = yl == SSD_LAYOUT_NCHW16C ? 16 : 1;
        SSD_PARALLEL_FOR(k, K, {
            double acc = 0;
            for (int64_t n = 0; n < N; n++) { /* channel k's plane of image n, in yl */
                const float *p = dout + ssd_layout_offset(yl, shape, n, k, 0, 0);
                for (int64_t i = 0; i < H * W; i++) acc += p[i * ps];
            }
            dbias[k] += (float)acc;
        });
    }
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:winograd_4x4_3x3+dnnl_sgemm");
}

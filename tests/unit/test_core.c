/* Unit tests of src/core: Philox known answers, stream independence, RNG distributions,
 * bf16 rounding, tensors, arena, status messages. */
#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/timer.h"
#include "testutil.h"

/* Known-answer vectors for Philox4x32-10 published with Random123 (kat_vectors):
 * counter, key -> output. */
static void test_philox_kat(void **state) {
    (void)state;
    static const struct { uint32_t ctr[4], key[2], out[4]; } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint32_t out[4];
        ssd_philox4x32_10(kat[i].ctr, kat[i].key, out);
        for (int j = 0; j < 4; j++) assert_int_equal(out[j], kat[i].out[j]);
    }
}

static void test_rng_streams(void **state) {
    (void)state;
    /* Same (seed, domain, rank, worker, index) -> same sequence; any field changed -> different. */
    ssd_rng a = ssd_rng_stream(42, SSD_RNG_DOMAIN_TEST, 0, 0, 7);
    ssd_rng b = ssd_rng_stream(42, SSD_RNG_DOMAIN_TEST, 0, 0, 7);
    for (int i = 0; i < 100; i++) assert_int_equal(ssd_rng_u32(&a), ssd_rng_u32(&b));
    ssd_rng v[5] = {
        ssd_rng_stream(43, SSD_RNG_DOMAIN_TEST, 0, 0, 7),
        ssd_rng_stream(42, SSD_RNG_DOMAIN_INIT, 0, 0, 7),
        ssd_rng_stream(42, SSD_RNG_DOMAIN_TEST, 1, 0, 7),
        ssd_rng_stream(42, SSD_RNG_DOMAIN_TEST, 0, 1, 7),
        ssd_rng_stream(42, SSD_RNG_DOMAIN_TEST, 0, 0, 8 + (1ull << 32)),
    };
    ssd_rng base = ssd_rng_stream(42, SSD_RNG_DOMAIN_TEST, 0, 0, 7);
    uint32_t b0[8];
    for (int i = 0; i < 8; i++) b0[i] = ssd_rng_u32(&base);
    for (int s = 0; s < 5; s++) {
        int same = 0;
        for (int i = 0; i < 8; i++) same += ssd_rng_u32(&v[s]) == b0[i];
        assert_true(same < 2);
    }
}

static void test_rng_distributions(void **state) {
    (void)state;
    ssd_rng r = ssd_rng_stream(1, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    const int n = 200000;
    double s = 0, s2 = 0, ns = 0, ns2 = 0;
    int hist[10] = {0};
    for (int i = 0; i < n; i++) {
        float u = ssd_rng_uniform(&r);
        assert_true(u >= 0.0f && u < 1.0f);
        double d = ssd_rng_uniform_f64(&r);
        assert_true(d >= 0.0 && d < 1.0);
        s += d;
        s2 += d * d;
        double z = ssd_rng_normal(&r);
        ns += z;
        ns2 += z * z;
        hist[ssd_rng_below(&r, 10)]++;
    }
    /* Means within ~5 standard errors of the exact moments. */
    assert_true(fabs(s / n - 0.5) < 5 * sqrt(1.0 / 12 / n));
    assert_true(fabs(s2 / n - 1.0 / 3) < 5 * sqrt(4.0 / 45 / n));
    assert_true(fabs(ns / n) < 5 / sqrt(n));
    assert_true(fabs(ns2 / n - 1.0) < 5 * sqrt(2.0 / n));
    /* Chi-square with 9 dof: P(X > 27.9) = 0.001. */
    double chi = 0;
    for (int k = 0; k < 10; k++) chi += (hist[k] - n / 10.0) * (hist[k] - n / 10.0) / (n / 10.0);
    assert_true(chi < 27.9);
}

static void test_bf16(void **state) {
    (void)state;
    assert_int_equal(ssd_f32_to_bf16(1.0f), 0x3f80);
    assert_true(ssd_bf16_to_f32(0x3f80) == 1.0f);
    /* 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even -> 1.0 */
    assert_int_equal(ssd_f32_to_bf16(1.00390625f), 0x3f80);
    /* 1 + 3*2^-8 is halfway between 1.0078125 (odd) and 1.015625 (even) -> up */
    assert_int_equal(ssd_f32_to_bf16(1.01171875f), 0x3f82);
    assert_int_equal(ssd_f32_to_bf16(-2.0f), 0xc000);
    assert_true(isinf(ssd_bf16_to_f32(ssd_f32_to_bf16(INFINITY))));
    assert_true(isnan(ssd_bf16_to_f32(ssd_f32_to_bf16(NAN))));
    /* the largest finite float rounds up to infinity in bf16, as in PyTorch */
    assert_true(isinf(ssd_bf16_to_f32(ssd_f32_to_bf16(3.4028235e38f))));
}

/* The bf16 of the float with bits u by the definition, in double arithmetic: the nearer of
 * the two bf16 neighbours (the truncation and the next one away from zero), the even one on a
 * tie, infinity past the largest finite bf16; NaN quiet with its sign and top mantissa bits. */
static uint16_t bf16_oracle(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    if (isnan(f)) return (uint16_t)((u >> 16) | 0x0040u);
    const uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    if (isinf(f)) return lo;
    const double a = fabs((double)ssd_bf16_to_f32(lo));
    const double b = (hi & 0x7fffu) == 0x7f80u ? ldexp(1.0, 128) /* the next step is 2^128 */
                                               : fabs((double)ssd_bf16_to_f32(hi));
    const double x = fabs((double)f);
    if (x - a < b - x) return lo;
    if (x - a > b - x) return hi;
    return (lo & 1u) ? hi : lo;
}

/* ssd_f32_to_bf16 (branch-free) against the oracle: every tie and its neighbours (each upper
 * half with the lower halves 0, 1, 0x7fff, 0x8000, 0x8001, 0xffff), NaNs, infinities,
 * subnormals, and a stride through all 2^32 patterns. */
static void check_bf16_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    if (ssd_f32_to_bf16(f) != bf16_oracle(u))
        fail_msg("bits 0x%08x: got 0x%04x, expected 0x%04x", u, ssd_f32_to_bf16(f),
                 bf16_oracle(u));
}

static void test_bf16_exhaustive(void **state) {
    (void)state;
    static const uint32_t lows[] = {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu};
    int64_t checked = 0;
    for (uint32_t hi = 0; hi <= 0xffffu; hi++)
        for (size_t j = 0; j < sizeof lows / sizeof lows[0]; j++, checked++)
            check_bf16_bits(hi << 16 | lows[j]);
    for (uint64_t v = 0; v <= 0xffffffffu; v += 4093, checked++) check_bf16_bits((uint32_t)v);
    assert_true(checked > 1400000);
    /* a signalling NaN comes back quiet, with its sign */
    assert_int_equal(ssd_f32_to_bf16(ssd_bf16_to_f32(0xff81u)), 0xffc1u);
}

static void test_tensor(void **state) {
    (void)state;
    ssd_tensor t = ssd_tensor_alloc_host4(SSD_F32, 2, 3, 4, 5, "x");
    assert_int_equal(ssd_tensor_numel(&t), 120);
    assert_int_equal(ssd_tensor_nbytes(&t), 480);
    assert_int_equal((uintptr_t)t.data % 64, 0);
    char buf[64];
    assert_string_equal(ssd_shape_str(&t, buf, sizeof buf), "(2,3,4,5)");
    ssd_tensor_set(&t, 7, 2.5);
    assert_true(ssd_tensor_get(&t, 7) == 2.5);
    ssd_dtype dt;
    assert_true(ssd_dtype_parse("BF16", &dt) && dt == SSD_BF16);
    assert_true(ssd_dtype_parse("F16", &dt) && dt == SSD_F16);
    assert_false(ssd_dtype_parse("I32", &dt));
    assert_int_equal(ssd_dtype_size(SSD_I64), 8);
    ssd_tensor_free(&t);
    assert_null(t.data);
}

/* IEEE half: known encodings, round to nearest even at every boundary kind, and every finite
 * half converts to float and back unchanged. */
static void test_f16(void **state) {
    (void)state;
    static const struct { float f; uint16_t h; } k[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff}, {65519.99f, 0x7bff},
        {65520.0f, 0x7c00}, {1e10f, 0x7c00}, {0.1f, 0x2e66}, {5.9604645e-8f, 0x0001},
        {2.9802322e-8f, 0x0000}, {2.9802326e-8f, 0x0001}, {6.1035156e-5f, 0x0400},
        {1.0f + 1.0f / 2048, 0x3c00}, {1.0f + 3.0f / 2048, 0x3c02}, {-0.0f, 0x8000},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        assert_int_equal(ssd_f32_to_f16(k[i].f), k[i].h);
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        assert_int_equal(ssd_f32_to_f16(ssd_f16_to_f32((uint16_t)h)), h);
    }
    assert_true(ssd_f16_to_f32(0x7e00) != ssd_f16_to_f32(0x7e00)); /* NaN */
}

static void test_arena(void **state) {
    (void)state;
    ssd_arena a;
    ssd_arena_init(&a, 4096);
    void *p = ssd_arena_alloc(&a, 10);
    size_t m = ssd_arena_mark(&a);
    void *q = ssd_arena_alloc(&a, 100);
    assert_int_equal((uintptr_t)p % 64, 0);
    assert_int_equal((uintptr_t)q % 64, 0);
    assert_true((char *)q >= (char *)p + 10);
    ssd_arena_release(&a, m);
    void *q2 = ssd_arena_alloc(&a, 100);
    assert_ptr_equal(q, q2);
    assert_true(a.high_water >= 164);
    ssd_arena_destroy(&a);
}

static void test_status(void **state) {
    (void)state;
    ssd_error e;
    ssd_error_clear(&e);
    assert_int_equal(e.code, SSD_OK);
    ssd_status s = ssd_fail(&e, SSD_ERR_FORMAT, "%s: bad magic at offset %d", "x.bin", 4);
    assert_int_equal(s, SSD_ERR_FORMAT);
    assert_string_equal(e.msg, "x.bin: bad magic at offset 4");
    assert_string_equal(ssd_status_name(SSD_ERR_IO), "io error");
    assert_int_equal(ssd_fail(NULL, SSD_ERR_ARG, "x"), SSD_ERR_ARG);
}

static void test_timer(void **state) {
    (void)state;
    ssd_timer t;
    ssd_timer_reset(&t);
    ssd_timer_start(&t);
    double dt = ssd_timer_stop(&t);
    assert_true(dt >= 0 && t.count == 1 && ssd_timer_mean(&t) == t.total);
    assert_true(ssd_now() > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_kat), cmocka_unit_test(test_rng_streams),
        cmocka_unit_test(test_rng_distributions), cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_bf16_exhaustive),
        cmocka_unit_test(test_tensor), cmocka_unit_test(test_f16), cmocka_unit_test(test_arena),
        cmocka_unit_test(test_status), cmocka_unit_test(test_timer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

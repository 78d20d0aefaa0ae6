/* Drawing on images (data/draw.h).
 *
 * Oracles: brute-force painters written here from the header's definitions, which decide every
 * pixel of the image on its own (is (x, y) inside the rectangle, within `thickness` of its border,
 * on a set font pixel of the character under it?) in 64-bit arithmetic, with no clipping logic to
 * share with the library. Every pixel of the image is compared, for thousands of random cases with
 * coordinates inside, across, far outside, inverted and at INT_MIN / INT_MAX. The font is checked
 * for coverage (every printable glyph but space has ink, all 95 glyphs differ); the labelled box
 * for its placement rules (label on the box's top edge, inside the image) and painted pixels; the
 * class names against the categories of the real COCO annotation files in
 * ../shared/data/coco_tiny (skipped, with the reason, when absent). */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "data/draw.h"
#include "testutil.h"

/* ---- brute-force reference painters ---- */

static void put(ssd_image *im, int x, int y, const uint8_t c[3]) {
    memcpy(im->px + ((size_t)y * im->w + x) * 3, c, 3);
}

static void ref_rect(ssd_image *im, long long l, long long t, long long r, long long b,
                     long long th, const uint8_t c[3]) {
    long long L = l < r ? l : r, R = l < r ? r : l, T = t < b ? t : b, B = t < b ? b : t;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            if (x < L || x > R || y < T || y > B) continue;
            if (x - L < th || R - x < th || y - T < th || B - y < th) put(im, x, y, c);
        }
}

static void ref_fill(ssd_image *im, long long l, long long t, long long r, long long b,
                     const uint8_t c[3]) {
    long long L = l < r ? l : r, R = l < r ? r : l, T = t < b ? t : b, B = t < b ? b : t;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            if (x >= L && x <= R && y >= T && y <= B) put(im, x, y, c);
}

/* Each pixel finds the character cell it falls in and asks the glyph table. */
static void ref_text(ssd_image *im, long long x0, long long y0, const char *text, int scale,
                     const uint8_t fg[3], const uint8_t *bg) {
    long long s = scale < 1 ? 1 : scale, n = (long long)strlen(text);
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            long long dx = x - x0, dy = y - y0;
            if (dx < 0 || dy < 0 || dy >= 9 * s || dx >= n * 6 * s) continue;
            unsigned char c = (unsigned char)text[dx / (6 * s)];
            if (c < 32 || c > 126) c = '?';
            int gx = (int)(dx % (6 * s) / s), gy = (int)(dy / s);
            if (gx < 5 && gy < 8 && ssd_font_pixel(c, gx, gy))
                put(im, x, y, fg);
            else if (bg)
                put(im, x, y, bg);
        }
}

/* ---- helpers ---- */

static void random_image(ssd_image *im, ssd_rng *r, int w, int h) {
    ssd_image_reserve(im, w, h);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) im->px[i] = (uint8_t)ssd_rng_u32(r);
}

static void random_color(ssd_rng *r, uint8_t c[3]) {
    for (int i = 0; i < 3; i++) c[i] = (uint8_t)ssd_rng_u32(r);
}

/* A coordinate for an image extent n: mostly near the image, sometimes anywhere in int. */
static int rand_coord(ssd_rng *r, int n) {
    switch (ssd_rng_below(r, 12)) {
    case 0:
        return INT_MIN;
    case 1:
        return INT_MAX;
    case 2:
        return (int)ssd_rng_u32(r);
    case 3:
        return -1000000000;
    case 4:
        return 1000000000;
    default:
        return (int)ssd_rng_below(r, (uint32_t)(2 * n + 20)) - n / 2 - 10;
    }
}

static int rand_thickness(ssd_rng *r) {
    static const int th[] = {INT_MIN, -1, 0, 1, 1, 2, 2, 3, 4, 5, 17, 1000, INT_MAX};
    if (ssd_rng_below(r, 4) == 0) return (int)ssd_rng_below(r, 30);
    return th[ssd_rng_below(r, sizeof th / sizeof th[0])];
}

static void assert_same_image(const ssd_image *a, const ssd_image *b, const char *what, int k) {
    assert_int_equal(a->w, b->w);
    assert_int_equal(a->h, b->h);
    for (int y = 0; y < a->h; y++)
        for (int x = 0; x < a->w; x++) {
            const uint8_t *p = a->px + ((size_t)y * a->w + x) * 3;
            const uint8_t *q = b->px + ((size_t)y * b->w + x) * 3;
            if (memcmp(p, q, 3) != 0)
                fail_msg("%s case %d: pixel (%d,%d) of %dx%d is %d,%d,%d, expected %d,%d,%d", what,
                         k, x, y, a->w, a->h, p[0], p[1], p[2], q[0], q[1], q[2]);
        }
}

/* ---- rectangles ---- */

static void test_rect_vs_reference(void **state) {
    (void)state;
    ssd_image im = {0}, ref = {0};
    for (int k = 0; k < 4000; k++) {
        ssd_rng r = ssd_rng_stream(1, SSD_RNG_DOMAIN_TEST, 0, 0, (uint64_t)k);
        int w = 1 + (int)ssd_rng_below(&r, 48), h = 1 + (int)ssd_rng_below(&r, 40);
        random_image(&im, &r, w, h);
        ssd_image_copy(&ref, &im);
        int l = rand_coord(&r, w), t = rand_coord(&r, h), rr = rand_coord(&r, w),
            b = rand_coord(&r, h), th = rand_thickness(&r);
        uint8_t c[3];
        random_color(&r, c);
        ssd_draw_rect(&im, l, t, rr, b, th, c);
        ref_rect(&ref, l, t, rr, b, th, c);
        assert_same_image(&im, &ref, "rect", k);
    }
    /* a hand-checked case: 3x3 outline with thickness 1 leaves the centre */
    ssd_image_reserve(&im, 5, 5);
    memset(im.px, 0, 75);
    const uint8_t white[3] = {255, 255, 255};
    ssd_draw_rect(&im, 3, 3, 1, 1, 1, white); /* inverted corners */
    int set = 0;
    for (int i = 0; i < 25; i++) set += im.px[3 * i] == 255;
    assert_int_equal(set, 8);
    assert_int_equal(im.px[(2 * 5 + 2) * 3], 0);
    assert_int_equal(im.px[(1 * 5 + 1) * 3], 255);
    ssd_image_free(&im);
    ssd_image_free(&ref);
}

static void test_fill_vs_reference(void **state) {
    (void)state;
    ssd_image im = {0}, ref = {0};
    for (int k = 0; k < 4000; k++) {
        ssd_rng r = ssd_rng_stream(2, SSD_RNG_DOMAIN_TEST, 0, 0, (uint64_t)k);
        int w = 1 + (int)ssd_rng_below(&r, 48), h = 1 + (int)ssd_rng_below(&r, 40);
        random_image(&im, &r, w, h);
        ssd_image_copy(&ref, &im);
        int l = rand_coord(&r, w), t = rand_coord(&r, h), rr = rand_coord(&r, w),
            b = rand_coord(&r, h);
        uint8_t c[3];
        random_color(&r, c);
        ssd_draw_fill(&im, l, t, rr, b, c);
        ref_fill(&ref, l, t, rr, b, c);
        assert_same_image(&im, &ref, "fill", k);
    }
    /* an empty image is left alone (no crash) */
    ssd_image empty = {0};
    const uint8_t c[3] = {1, 2, 3};
    ssd_draw_fill(&empty, 0, 0, 10, 10, c);
    ssd_draw_rect(&empty, 0, 0, 10, 10, 3, c);
    ssd_draw_text(&empty, 0, 0, "x", 1, c, c);
    ssd_draw_label_box(&empty, 0, 0, 10, 10, "x", 1);
    ssd_image_free(&im);
    ssd_image_free(&ref);
}

/* ---- font and text ---- */

static void test_glyphs(void **state) {
    (void)state;
    for (int c = 32; c <= 126; c++) {
        int ink = 0;
        for (int y = 0; y < SSD_FONT_H; y++)
            for (int x = 0; x < SSD_FONT_W; x++) ink += ssd_font_pixel((unsigned char)c, x, y);
        if (c == ' ')
            assert_int_equal(ink, 0);
        else if (ink == 0)
            fail_msg("glyph '%c' (%d) has no set pixel", c, c);
        /* outside the 5x8 glyph nothing is set */
        assert_int_equal(ssd_font_pixel((unsigned char)c, -1, 0), 0);
        assert_int_equal(ssd_font_pixel((unsigned char)c, SSD_FONT_W, 0), 0);
        assert_int_equal(ssd_font_pixel((unsigned char)c, 0, SSD_FONT_H), 0);
        assert_int_equal(ssd_font_pixel((unsigned char)c, 0, -1), 0);
    }
    for (int a = 32; a <= 126; a++)
        for (int b = a + 1; b <= 126; b++) {
            int same = 1;
            for (int y = 0; y < SSD_FONT_H && same; y++)
                for (int x = 0; x < SSD_FONT_W && same; x++)
                    same = ssd_font_pixel((unsigned char)a, x, y) ==
                           ssd_font_pixel((unsigned char)b, x, y);
            if (same) fail_msg("glyphs '%c' and '%c' are identical", a, b);
        }
    /* bytes outside 32..126 use '?' */
    const int odd[] = {0, 1, 9, 10, 31, 127, 128, 200, 255};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
        for (int y = 0; y < SSD_FONT_H; y++)
            for (int x = 0; x < SSD_FONT_W; x++)
                assert_int_equal(ssd_font_pixel((unsigned char)odd[i], x, y),
                                 ssd_font_pixel('?', x, y));
}

static void test_text_metrics(void **state) {
    (void)state;
    const char *texts[] = {"", "a", "dog 0.87", "0123456789abcdefghijklmnopqrstuvwxyz"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (int s = -2; s <= 5; s++) {
            int se = s < 1 ? 1 : s;
            assert_int_equal(ssd_text_width(texts[i], s), (int)strlen(texts[i]) * 6 * se);
            assert_int_equal(ssd_text_height(s), 9 * se);
        }
    assert_int_equal(ssd_text_width("abc", INT_MAX), INT_MAX);
    assert_int_equal(ssd_text_height(INT_MAX), INT_MAX);
    assert_int_equal(SSD_FONT_ADVANCE_X, 6);
    assert_int_equal(SSD_FONT_ADVANCE_Y, 9);
}

static void random_text(ssd_rng *r, char *buf, int maxlen) {
    int n = (int)ssd_rng_below(r, (uint32_t)maxlen + 1);
    for (int i = 0; i < n; i++) {
        /* mostly printable, sometimes any byte but NUL */
        buf[i] = ssd_rng_below(r, 6) ? (char)(32 + ssd_rng_below(r, 95))
                                     : (char)(1 + ssd_rng_below(r, 255));
    }
    buf[n] = 0;
}

static void test_text_vs_reference(void **state) {
    (void)state;
    ssd_image im = {0}, ref = {0};
    int border[4] = {0};
    for (int k = 0; k < 3000; k++) {
        ssd_rng r = ssd_rng_stream(3, SSD_RNG_DOMAIN_TEST, 0, 0, (uint64_t)k);
        int w = 1 + (int)ssd_rng_below(&r, 64), h = 1 + (int)ssd_rng_below(&r, 40);
        int s = 1 + k % 3;
        char text[16];
        random_text(&r, text, 10);
        int tw = (int)strlen(text) * 6 * s, th = 9 * s, x, y;
        switch (ssd_rng_below(&r, 8)) {
        case 0:
            x = INT_MIN, y = (int)ssd_rng_below(&r, (uint32_t)h);
            break;
        case 1:
            x = INT_MAX - 3, y = INT_MIN + 5;
            break;
        default:
            x = (int)ssd_rng_below(&r, (uint32_t)(w + tw + 10)) - tw - 5;
            y = (int)ssd_rng_below(&r, (uint32_t)(h + th + 10)) - th - 5;
        }
        border[0] += x < 0 && x + tw > 0;
        border[1] += x < w && x + tw > w;
        border[2] += y < 0 && y + th > 0;
        border[3] += y < h && y + th > h;
        random_image(&im, &r, w, h);
        ssd_image_copy(&ref, &im);
        uint8_t fg[3], bgc[3];
        random_color(&r, fg);
        random_color(&r, bgc);
        const uint8_t *bg = (k & 4) ? bgc : NULL;
        assert_int_equal(ssd_draw_text(&im, x, y, text, s, fg, bg), tw);
        ref_text(&ref, x, y, text, s, fg, bg);
        assert_same_image(&im, &ref, "text", k);
    }
    for (int i = 0; i < 4; i++) assert_true(border[i] > 100); /* every edge clipped often */
    /* non-printable bytes render exactly like '?' */
    ssd_image_reserve(&im, 40, 12);
    ssd_image_reserve(&ref, 40, 12);
    memset(im.px, 0, im.cap);
    memset(ref.px, 0, ref.cap);
    const uint8_t fg[3] = {255, 255, 255};
    ssd_draw_text(&im, 1, 1, "\x01\x7f\xff", 1, fg, NULL);
    ssd_draw_text(&ref, 1, 1, "???", 1, fg, NULL);
    assert_same_image(&im, &ref, "non-printable", 0);
    ssd_image_free(&im);
    ssd_image_free(&ref);
}

/* ---- labelled boxes ---- */

static double luminance(const uint8_t c[3]) { return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]; }

static void test_class_colors(void **state) {
    (void)state;
    uint8_t c[81][3];
    for (int i = 0; i < 81; i++) {
        ssd_class_color(i, c[i]);
        /* saturated HSV colours: max channel = value (1.0 or 0.78), min = value * 0.15 */
        int mx = c[i][0], mn = c[i][0];
        for (int j = 1; j < 3; j++) {
            mx = c[i][j] > mx ? c[i][j] : mx;
            mn = c[i][j] < mn ? c[i][j] : mn;
        }
        assert_int_equal(mx, (i & 1) ? 199 : 255);
        assert_int_equal(mn, (int)lround(((i & 1) ? 0.78 : 1.0) * 0.15 * 255));
        for (int j = 0; j < i; j++)
            if (memcmp(c[i], c[j], 3) == 0) fail_msg("classes %d and %d share a colour", i, j);
        uint8_t again[3];
        ssd_class_color(i + SSD_CLASS_PALETTE_SIZE, again);
        assert_memory_equal(again, c[i], 3);
        ssd_class_color(i - SSD_CLASS_PALETTE_SIZE, again);
        assert_memory_equal(again, c[i], 3);
    }
    uint8_t a[3], b[3];
    ssd_class_color(INT_MIN, a);
    ssd_class_color(INT_MAX, b);
}

/* A hand-computed case: 300x200 image, box (50.4, 80.6)-(150.5, 170.2), "dog 0.87", scale 1:
 * box 50,81..151,170 (lroundf rounds halves away from zero), thickness 2, label 8*6+1 = 49 wide
 * and 9+1 = 10 high on rows 71..80, text at (51, 72). */
static void test_label_layout_example(void **state) {
    (void)state;
    ssd_label_layout L;
    assert_int_equal(
        ssd_label_box_layout(300, 200, 50.4f, 80.6f, 150.5f, 170.2f, "dog 0.87", 18, &L), 0);
    assert_int_equal(L.l, 50);
    assert_int_equal(L.t, 81);
    assert_int_equal(L.r, 151);
    assert_int_equal(L.b, 170);
    assert_int_equal(L.thickness, 2);
    assert_int_equal(L.scale, 1);
    assert_int_equal(L.ll, 50);
    assert_int_equal(L.lr, 98);
    assert_int_equal(L.lt, 71);
    assert_int_equal(L.lb, 80);
    assert_int_equal(L.tx, 51);
    assert_int_equal(L.ty, 72);
    /* 1200x900: scale 2, thickness 900/300 = 3; box at the top edge: label inside the box */
    assert_int_equal(ssd_label_box_layout(1200, 900, 10, 5, 400, 300, "person 0.99", 1, &L), 0);
    assert_int_equal(L.scale, 2);
    assert_int_equal(L.thickness, 3);
    assert_int_equal(L.lt, 5);
    assert_int_equal(L.lb, 5 + 18 + 2 - 1);
    assert_int_equal(L.lr - L.ll + 1, 11 * 12 + 2);
    /* the label's right end would leave the image: it moves left */
    assert_int_equal(ssd_label_box_layout(100, 100, 90, 50, 99, 60, "abcdef", 3, &L), 0);
    assert_int_equal(L.lr, 99);
    assert_int_equal(L.ll, 100 - 37);
    /* no label: nothing but the box; non-finite coordinates: nothing at all */
    assert_int_equal(ssd_label_box_layout(100, 100, 1, 2, 3, 4, NULL, 3, &L), 0);
    assert_true(L.lr < L.ll);
    assert_int_equal(ssd_label_box_layout(100, 100, NAN, 2, 3, 4, "x", 3, &L), -1);
    assert_int_equal(ssd_label_box_layout(100, 100, 1, INFINITY, 3, 4, "x", 3, &L), -1);
}

static float rand_box_coord(ssd_rng *r, int n) {
    switch (ssd_rng_below(r, 10)) {
    case 0:
        return -1e30f;
    case 1:
        return 1e30f;
    case 2:
        return 0.0f;
    case 3:
        return (float)(n - 1);
    default:
        return (float)ssd_rng_range(r, -0.3 * n, 1.3 * n);
    }
}

static void test_label_box_vs_reference(void **state) {
    (void)state;
    ssd_image im = {0}, ref = {0};
    int n_above = 0, n_inside_top = 0, n_checked = 0;
    for (int k = 0; k < 600; k++) {
        ssd_rng r = ssd_rng_stream(4, SSD_RNG_DOMAIN_TEST, 0, 0, (uint64_t)k);
        int big = k % 25 == 0;
        int w = big ? 600 + (int)ssd_rng_below(&r, 700) : 1 + (int)ssd_rng_below(&r, 200);
        int h = big ? 300 + (int)ssd_rng_below(&r, 700) : 1 + (int)ssd_rng_below(&r, 150);
        float bl = rand_box_coord(&r, w), bt = rand_box_coord(&r, h);
        float br = rand_box_coord(&r, w), bb = rand_box_coord(&r, h);
        int cls = (int)ssd_rng_below(&r, 81);
        char label[64];
        if (ssd_rng_below(&r, 8) == 0)
            label[0] = 0;
        else
            snprintf(label, sizeof label, "%s %.2f", ssd_coco_class_names[cls],
                     ssd_rng_uniform_f64(&r));
        ssd_label_layout L;
        assert_int_equal(ssd_label_box_layout(w, h, bl, bt, br, bb, label, cls, &L), 0);
        /* the layout against the rules in draw.h */
        int rl = (int)lroundf(fminf(fmaxf(bl, -1073741824.0f), 1073741824.0f));
        int rr = (int)lroundf(fminf(fmaxf(br, -1073741824.0f), 1073741824.0f));
        int rt = (int)lroundf(fminf(fmaxf(bt, -1073741824.0f), 1073741824.0f));
        int rb = (int)lroundf(fminf(fmaxf(bb, -1073741824.0f), 1073741824.0f));
        assert_int_equal(L.l, rl < rr ? rl : rr);
        assert_int_equal(L.r, rl < rr ? rr : rl);
        assert_int_equal(L.t, rt < rb ? rt : rb);
        assert_int_equal(L.b, rt < rb ? rb : rt);
        int m = w < h ? w : h;
        assert_int_equal(L.thickness, m / 300 > 2 ? m / 300 : 2);
        assert_int_equal(L.scale, w < 600 ? 1 : 2);
        uint8_t col[3];
        ssd_class_color(cls, col);
        assert_memory_equal(L.color, col, 3);
        int black = luminance(col) > 127.5;
        for (int i = 0; i < 3; i++) assert_int_equal(L.text_color[i], black ? 0 : 255);
        if (label[0]) {
            int lw = ssd_text_width(label, L.scale) + L.scale;
            int lh = ssd_text_height(L.scale) + L.scale;
            assert_int_equal(L.lr - L.ll + 1, lw);
            assert_int_equal(L.lb - L.lt + 1, lh);
            assert_int_equal(L.tx, L.ll + L.scale);
            assert_int_equal(L.ty, L.lt + L.scale);
            if (lw <= w && lh <= h) {
                n_checked++;
                assert_true(L.ll >= 0 && L.lr < w && L.lt >= 0 && L.lb < h);
                if (L.t >= lh && L.t <= h) {
                    assert_int_equal(L.lb, L.t - 1); /* on the box's top edge, outside */
                    n_above++;
                } else if (L.t >= 0 && L.t < lh && L.t + lh <= h) {
                    assert_int_equal(L.lt, L.t); /* no room above: inside the box */
                    n_inside_top++;
                }
                if (L.l >= 0 && L.l + lw <= w) assert_int_equal(L.ll, L.l);
            }
        } else {
            assert_true(L.lr < L.ll);
        }
        /* the painted image = reference outline, then label background, then text */
        random_image(&im, &r, w, h);
        ssd_image_copy(&ref, &im);
        ssd_draw_label_box(&im, bl, bt, br, bb, label, cls);
        ref_rect(&ref, L.l, L.t, L.r, L.b, L.thickness, col);
        if (label[0]) {
            ref_fill(&ref, L.ll, L.lt, L.lr, L.lb, col);
            ref_text(&ref, L.tx, L.ty, label, L.scale, L.text_color, NULL);
        }
        assert_same_image(&im, &ref, "label box", k);
    }
    printf("label boxes: %d fully checked, %d above the box, %d inside its top\n", n_checked,
           n_above, n_inside_top);
    assert_true(n_above > 50 && n_inside_top > 10);
    /* non-finite and huge coordinates: safe; NaN draws nothing */
    ssd_image_reserve(&im, 50, 40);
    memset(im.px, 7, im.cap);
    ssd_image_copy(&ref, &im);
    ssd_draw_label_box(&im, NAN, 1, 2, 3, "nan", 5);
    ssd_draw_label_box(&im, 1, -INFINITY, 2, 3, "inf", 5);
    assert_same_image(&im, &ref, "non-finite", 0);
    ssd_draw_label_box(&im, -1e38f, -1e38f, 1e38f, 1e38f, "huge", 5);
    ssd_image_free(&im);
    ssd_image_free(&ref);
}

/* ---- class names ---- */

static int by_id(const void *a, const void *b) {
    double x = cJSON_GetObjectItem(*(cJSON *const *)a, "id")->valuedouble;
    double y = cJSON_GetObjectItem(*(cJSON *const *)b, "id")->valuedouble;
    return (x > y) - (x < y);
}

static void test_class_names(void **state) {
    (void)state;
    assert_int_equal(sizeof ssd_coco_class_names / sizeof ssd_coco_class_names[0], 81);
    for (int i = 0; i < 81; i++) {
        assert_non_null(ssd_coco_class_names[i]);
        assert_true(ssd_coco_class_names[i][0] != 0);
        for (int j = 0; j < i; j++)
            assert_true(strcmp(ssd_coco_class_names[i], ssd_coco_class_names[j]) != 0);
    }
    assert_string_equal(ssd_coco_class_names[0], "background");
    assert_string_equal(ssd_coco_class_names[1], "person");
    /* labels are contiguous: COCO id 18 "dog" is label 17 (ids 12, 26, 29, 30, ... are unused) */
    assert_string_equal(ssd_coco_class_names[17], "dog");
    assert_string_equal(ssd_coco_class_names[18], "horse");
    assert_string_equal(ssd_coco_class_names[80], "toothbrush");

    /* The real annotation files (tests/fixtures/data/coco_index_small.json is no oracle here: its
     * category names are made up for the parser tests). */
    char src[1024], path[1400];
    if (tu_source_dir(src, sizeof src) != 0) {
        tu_skip("test_draw/class_names_vs_coco", "SSD_SOURCE_DIR is not set (run through ctest)");
        skip();
    }
    const char *files[] = {"instances_val2017.json", "instances_train2017.json"};
    int compared = 0;
    for (int f = 0; f < 2; f++) {
        snprintf(path, sizeof path, "%s/../shared/data/coco_tiny/annotations/%s", src, files[f]);
        if (access(path, R_OK) != 0) continue;
        cJSON *d = tu_read_json(path);
        const cJSON *cats = cJSON_GetObjectItem(d, "categories");
        int n = cJSON_GetArraySize(cats);
        assert_int_equal(n, 80);
        cJSON *sorted[80];
        for (int i = 0; i < n; i++) sorted[i] = cJSON_GetArrayItem(cats, i);
        qsort(sorted, (size_t)n, sizeof sorted[0], by_id);
        for (int i = 0; i < n; i++) {
            const char *name = cJSON_GetObjectItem(sorted[i], "name")->valuestring;
            if (strcmp(name, ssd_coco_class_names[i + 1]) != 0)
                fail_msg("%s: category %d (id %d) is '%s', label %d is '%s'", path, i,
                         cJSON_GetObjectItem(sorted[i], "id")->valueint, name, i + 1,
                         ssd_coco_class_names[i + 1]);
        }
        cJSON_Delete(d);
        compared++;
    }
    if (!compared) {
        tu_skip("test_draw/class_names_vs_coco",
                "../shared/data/coco_tiny/annotations/instances_*2017.json not found");
        skip();
    }
    printf("class names equal the categories of %d COCO annotation file(s)\n", compared);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rect_vs_reference),
        cmocka_unit_test(test_fill_vs_reference),
        cmocka_unit_test(test_glyphs),
        cmocka_unit_test(test_text_metrics),
        cmocka_unit_test(test_text_vs_reference),
        cmocka_unit_test(test_class_colors),
        cmocka_unit_test(test_label_layout_example),
        cmocka_unit_test(test_label_box_vs_reference),
        cmocka_unit_test(test_class_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

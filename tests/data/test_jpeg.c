/* JPEG decoding against Pillow, the reference's decoder (spec 6.1: Image.open(f).convert("RGB")),
 * and the decoder's behaviour on bad input.
 *
 * Oracle: Debian's Pillow 9.4 (python3-pil, the Python in SSD_PYTHON_TORCH) through
 * tools/pil_decode_oracle.py, called at test time; its md5s of the committed fixtures are also
 * recorded in tests/fixtures/data/jpeg/pillow_md5.txt so that the bit-exactness check runs
 * without Python too. Pillow links the same system libjpeg-turbo as TurboJPEG, so we demand
 * equality, not a tolerance.
 *   - fixtures (8 real COCO images + generated: 4:2:0/4:2:2/4:4:4, progressive, optimized,
 *     grayscale, CMYK with and without Adobe marker, YCCK, restart intervals, arithmetic
 *     coding, 1x1, 17x5, 33x31): equal to the recorded md5s, and to live Pillow byte for byte;
 *   - all 160 coco_tiny images (../shared/data/coco_tiny; skipped with a reason when absent);
 *   - CMYK semantics checked without Pillow too (the sweep's known values), gray -> R=G=B;
 *   - bad inputs: truncations, flipped entropy bytes, empty file, PNG, random bytes, missing
 *     file, directory, forged huge / zero sizes; right status, file name in the message, no
 *     partial image, the handle still decodes afterwards; a seeded mutation loop (ASan build);
 *   - encode: round trip dims + PSNR at q95, 4:2:0 baseline, grayscale, Pillow decodes our
 *     files identically, bad arguments. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/rng.h"
#include "data/jpeg.h"
#include "io/file.h"
#include "testutil.h"

/* ---- MD5 (RFC 1321), to compare with Python's hashlib.md5 ---- */

typedef struct md5_ctx {
    uint32_t s[4];
    uint64_t n;
    uint8_t buf[64];
} md5_ctx;

static uint32_t rotl32(uint32_t x, int c) { return (x << c) | (x >> (32 - c)); }

static void md5_block(uint32_t s[4], const uint8_t *p) {
    static const int r[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                              5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                              4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                              6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
    uint32_t m[16];
    for (int i = 0; i < 16; i++)
        m[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    uint32_t a = s[0], b = s[1], c = s[2], d = s[3];
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) f = (b & c) | (~b & d), g = i;
        else if (i < 32) f = (d & b) | (~d & c), g = (5 * i + 1) % 16;
        else if (i < 48) f = b ^ c ^ d, g = (3 * i + 5) % 16;
        else f = c ^ (b | ~d), g = (7 * i) % 16;
        /* K[i] = floor(2^32 * |sin(i + 1)|), exact in double */
        uint32_t k = (uint32_t)(fabs(sin((double)i + 1.0)) * 4294967296.0);
        uint32_t t = d;
        d = c;
        c = b;
        b = b + rotl32(a + f + k + m[g], r[i]);
        a = t;
    }
    s[0] += a, s[1] += b, s[2] += c, s[3] += d;
}

static void md5_hex(const uint8_t *data, size_t n, char hex[33]) {
    md5_ctx c = {{0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u}, 0, {0}};
    size_t i = 0;
    for (; i + 64 <= n; i += 64) md5_block(c.s, data + i);
    uint8_t tail[128] = {0};
    size_t rest = n - i;
    memcpy(tail, data + i, rest);
    tail[rest] = 0x80;
    size_t tl = rest + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int b = 0; b < 8; b++) tail[tl - 8 + b] = (uint8_t)(bits >> (8 * b));
    md5_block(c.s, tail);
    if (tl == 128) md5_block(c.s, tail + 64);
    for (int w = 0; w < 4; w++)
        for (int b = 0; b < 4; b++) sprintf(hex + 8 * w + 2 * b, "%02x", (c.s[w] >> (8 * b)) & 0xff);
}

/* ---- environment ---- */

static char g_fix[1024], g_scratch[512], g_py[1024], g_coco[1200];
static int g_have_py; /* Pillow oracle usable */

static int setup(void **state) {
    (void)state;
    char src[900];
    if (tu_source_dir(src, sizeof src) != 0) return -1;
    snprintf(g_fix, sizeof g_fix, "%s/tests/fixtures/data/jpeg", src);
    tu_scratch_dir("test_jpeg", g_scratch, sizeof g_scratch);
    char clean[1200];
    snprintf(clean, sizeof clean, "rm -rf \"%s\"/*", g_scratch); /* no files of older runs */
    if (tu_system(clean) != 0) return -1;
    const char *coco = tu_env("SSD_COCO_TINY");
    if (coco) snprintf(g_coco, sizeof g_coco, "%s", coco);
    else snprintf(g_coco, sizeof g_coco, "%s/../shared/data/coco_tiny", src);
    const char *py = tu_env("SSD_PYTHON_TORCH");
    if (py && access(py, X_OK) == 0) {
        char cmd[1400];
        snprintf(cmd, sizeof cmd, "\"%s\" -c \"import PIL.Image\" >/dev/null 2>&1", py);
        g_have_py = system(cmd) == 0;
        snprintf(g_py, sizeof g_py, "%s", py);
    }
    if (!g_have_py)
        printf("note: no Pillow oracle (SSD_PYTHON_TORCH=%s cannot import PIL); live-Pillow tests "
               "will be SKIPPED, recorded md5s still checked\n", py ? py : "(unset)");
    return 0;
}

static const char *fix(const char *name) {
    static char buf[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_fix, name);
    return buf[k];
}

static const char *scratch(const char *name) {
    static char buf[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_scratch, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static uint8_t *read_bytes(const char *path, size_t *n) {
    char *b;
    ssd_error err;
    if (ssd_read_file(path, &b, n, &err) != SSD_OK) fail_msg("%s", err.msg);
    return (uint8_t *)b;
}

/* One "md5 w h name" line (ERROR lines have "-" for md5 w h). */
typedef struct md5_line {
    char md5[40], name[256];
    int w, h;
} md5_line;

static int parse_md5_lines(const char *text, md5_line *out, int max) {
    int n = 0;
    const char *p = text;
    while (*p && n < max) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), p);
        if (line[0] && line[0] != '#' && line[0] != '+' && line[0] != '$') {
            md5_line *m = &out[n];
            char w[16], h[16];
            if (sscanf(line, "%39s %15s %15s %255s", m->md5, w, h, m->name) == 4) {
                m->w = atoi(w);
                m->h = atoi(h);
                n++;
            }
        }
        if (!e) break;
        p = e + 1;
    }
    return n;
}

/* Our decode of PATH: md5 + dims; fails the test on a decode error. */
static void our_md5(ssd_jpeg *j, const char *path, ssd_image *im, char hex[33]) {
    ssd_error err;
    if (ssd_jpeg_decode_file(j, path, im, &err) != SSD_OK) fail_msg("%s", err.msg);
    md5_hex(im->px, (size_t)im->w * im->h * 3, hex);
}

/* Runs the Pillow oracle on `files` (a shell-quoted list); returns its stdout lines parsed. */
static int pillow_md5(const char *files, md5_line *out, int max) {
    size_t cap = strlen(files) + 3000;
    char *cmd = malloc(cap);
    snprintf(cmd, cap, "\"%s\" \"%s/tools/pil_decode_oracle.py\" md5 %s", g_py,
             tu_env("SSD_SOURCE_DIR"), files);
    static char outbuf[1 << 16];
    int rc = tu_run_capture(cmd, scratch("oracle.log"), outbuf, sizeof outbuf);
    free(cmd);
    assert_int_equal(rc, 0);
    return parse_md5_lines(outbuf, out, max);
}

/* ---- bit-exactness ---- */

static int is_jpg(const char *name) {
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".jpg") == 0;
}

/* The committed Pillow md5s: every fixture JPEG is listed, and our decode matches each. */
static void test_fixtures_recorded_md5(void **state) {
    (void)state;
    size_t n;
    char *text = (char *)read_bytes(fix("pillow_md5.txt"), &n);
    static md5_line rec[64];
    int nrec = parse_md5_lines(text, rec, 64);
    free(text);
    assert_true(nrec >= 23);
    DIR *d = opendir(g_fix);
    assert_non_null(d);
    int njpg = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_jpg(e->d_name)) continue;
        njpg++;
        int found = 0;
        for (int i = 0; i < nrec; i++) found |= strcmp(rec[i].name, e->d_name) == 0;
        if (!found) fail_msg("%s is not in pillow_md5.txt (regenerate it)", e->d_name);
    }
    closedir(d);
    assert_int_equal(njpg, nrec);
    ssd_jpeg *j = ssd_jpeg_create();
    ssd_image im = {0};
    int bad = 0;
    for (int i = 0; i < nrec; i++) {
        char hex[33];
        our_md5(j, fix(rec[i].name), &im, hex);
        int ok = im.w == rec[i].w && im.h == rec[i].h && strcmp(hex, rec[i].md5) == 0;
        printf("%-28s %4dx%-4d %s %s\n", rec[i].name, im.w, im.h, hex, ok ? "== Pillow" : "DIFFERS");
        bad += !ok;
    }
    assert_int_equal(bad, 0);
    ssd_image_free(&im);
    ssd_jpeg_destroy(j);
}

/* Live Pillow on the same fixtures, compared byte for byte (raw RGB), with the first
 * differing pixel reported; Pillow's md5s must also still equal the recorded ones. */
static void test_fixtures_live_pillow(void **state) {
    (void)state;
    if (!g_have_py) {
        tu_skip("test_jpeg/live_pillow", "no python with Pillow (SSD_PYTHON_TORCH)");
        skip();
    }
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "mkdir -p \"%s/raw\" && cd \"%s\" && \"%s\" \"%s/tools/pil_decode_oracle.py\" "
             "raw \"%s/raw\" *.jpg > \"%s/live.txt\"", g_scratch, g_fix, g_py,
             tu_env("SSD_SOURCE_DIR"), g_scratch, g_scratch);
    assert_int_equal(tu_system(cmd), 0);
    size_t n;
    char *text = (char *)read_bytes(scratch("live.txt"), &n);
    static md5_line live[64], rec[64];
    int nlive = parse_md5_lines(text, live, 64);
    free(text);
    text = (char *)read_bytes(fix("pillow_md5.txt"), &n);
    int nrec = parse_md5_lines(text, rec, 64);
    free(text);
    assert_int_equal(nlive, nrec);
    ssd_jpeg *j = ssd_jpeg_create();
    ssd_image im = {0};
    for (int i = 0; i < nlive; i++) {
        assert_string_equal(live[i].name, rec[i].name);
        if (strcmp(live[i].md5, rec[i].md5) != 0)
            fail_msg("%s: live Pillow md5 %s != recorded %s (different Pillow/libjpeg?)",
                     live[i].name, live[i].md5, rec[i].md5);
        char raw[600];
        snprintf(raw, sizeof raw, "raw/%s.rgb", live[i].name);
        size_t rn;
        uint8_t *ref = read_bytes(scratch(raw), &rn);
        ssd_error err;
        if (ssd_jpeg_decode_file(j, fix(live[i].name), &im, &err) != SSD_OK) fail_msg("%s", err.msg);
        assert_int_equal(im.w, live[i].w);
        assert_int_equal(im.h, live[i].h);
        assert_int_equal(rn, (size_t)im.w * im.h * 3);
        size_t ndiff = 0, first = 0;
        int maxd = 0;
        for (size_t k = 0; k < rn; k++) {
            int dd = abs((int)im.px[k] - (int)ref[k]);
            if (dd && !ndiff++) first = k;
            if (dd > maxd) maxd = dd;
        }
        if (ndiff)
            fail_msg("%s: %zu of %zu bytes differ from Pillow (max %d); first at x=%zu y=%zu c=%zu: "
                     "ours %d Pillow %d", live[i].name, ndiff, rn, maxd, first / 3 % im.w,
                     first / 3 / im.w, first % 3, im.px[first], ref[first]);
        free(ref);
    }
    printf("%d fixtures byte-identical to live Pillow\n", nlive);
    ssd_image_free(&im);
    ssd_jpeg_destroy(j);
}

/* Every coco_tiny image (train2017 + val2017) equals Pillow's decode. */
static void test_coco_tiny_all(void **state) {
    (void)state;
    char why[1400];
    struct stat sb;
    if (stat(g_coco, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(why, sizeof why, "%s not present (set SSD_COCO_TINY or check out ../shared)", g_coco);
        tu_skip("test_jpeg/coco_tiny_all", why);
        skip();
    }
    if (!g_have_py) {
        tu_skip("test_jpeg/coco_tiny_all", "no python with Pillow (SSD_PYTHON_TORCH)");
        skip();
    }
    static md5_line ref[400];
    int nref = 0;
    const char *splits[] = {"train2017", "val2017"};
    for (int s = 0; s < 2; s++) {
        char files[1400];
        snprintf(files, sizeof files, "\"%s/%s\"/*.jpg", g_coco, splits[s]);
        int k = pillow_md5(files, ref + nref, 400 - nref);
        for (int i = 0; i < k; i++) {
            char p[sizeof ref[0].name];
            int len = snprintf(p, sizeof p, "%s/%s", splits[s], ref[nref + i].name);
            assert_true(len > 0 && (size_t)len < sizeof p);
            memcpy(ref[nref + i].name, p, (size_t)len + 1);
        }
        nref += k;
    }
    assert_true(nref >= 160);
    ssd_jpeg *j = ssd_jpeg_create();
    ssd_image im = {0};
    int bad = 0;
    for (int i = 0; i < nref; i++) {
        char path[1700], hex[33];
        snprintf(path, sizeof path, "%s/%s", g_coco, ref[i].name);
        if (strcmp(ref[i].md5, "ERROR") == 0) fail_msg("Pillow cannot read %s", path);
        our_md5(j, path, &im, hex);
        if (im.w != ref[i].w || im.h != ref[i].h || strcmp(hex, ref[i].md5) != 0) {
            printf("%s: ours %dx%d %s, Pillow %dx%d %s\n", ref[i].name, im.w, im.h, hex, ref[i].w,
                   ref[i].h, ref[i].md5);
            bad++;
        }
    }
    printf("coco_tiny: %d images, %d differ from Pillow\n", nref, bad);
    assert_int_equal(bad, 0);
    ssd_image_free(&im);
    ssd_jpeg_destroy(j);
}

/* Colour spaces seen by the header, and their meaning checked without Pillow: gray replicates,
 * CMYK with/without Adobe marker decode the same, the CMYK sweep (C = x, K = y) gives
 * R ~ (255 - x)(255 - y)/255, and YCCK (transform 2) gives the same sweep at half size. */
static void test_colour_spaces(void **state) {
    (void)state;
    ssd_jpeg *j = ssd_jpeg_create();
    static const struct {
        const char *name;
        int cs;
    } k_cs[] = {{"gen_gray.jpg", TJCS_GRAY},        {"gen_420_q90.jpg", TJCS_YCbCr},
                {"gen_cmyk_adobe.jpg", TJCS_CMYK},  {"gen_cmyk_noadobe.jpg", TJCS_CMYK},
                {"gen_ycck_adobe.jpg", TJCS_YCCK},  {"coco_000000425989.jpg", TJCS_YCbCr}};
    for (size_t i = 0; i < sizeof k_cs / sizeof *k_cs; i++) {
        size_t n;
        uint8_t *b = read_bytes(fix(k_cs[i].name), &n);
        int w, h, cs;
        ssd_error err;
        if (ssd_jpeg_header(j, b, n, k_cs[i].name, &w, &h, &cs, &err) != SSD_OK)
            fail_msg("%s", err.msg);
        printf("%s: %dx%d colourspace %d\n", k_cs[i].name, w, h, cs);
        assert_int_equal(cs, k_cs[i].cs);
        free(b);
    }
    ssd_image g = {0}, a = {0}, b = {0}, y = {0};
    ssd_error err;
    assert_int_equal(ssd_jpeg_decode_file(j, fix("gen_gray.jpg"), &g, &err), SSD_OK);
    for (int i = 0; i < g.w * g.h; i++) {
        assert_int_equal(g.px[3 * i], g.px[3 * i + 1]);
        assert_int_equal(g.px[3 * i], g.px[3 * i + 2]);
    }
    assert_int_equal(ssd_jpeg_decode_file(j, fix("gen_cmyk_adobe.jpg"), &a, &err), SSD_OK);
    assert_int_equal(ssd_jpeg_decode_file(j, fix("gen_cmyk_noadobe.jpg"), &b, &err), SSD_OK);
    assert_int_equal(a.w, 256);
    assert_memory_equal(a.px, b.px, (size_t)256 * 256 * 3);
    /* q95 CMYK JPEG: a few levels of coding error per channel, amplified a little by the
     * product; 12 is generous yet far below the error of the wrong polarity (~255). */
    int maxerr = 0;
    for (int yy = 0; yy < 256; yy++)
        for (int x = 0; x < 256; x++) {
            double r = (255.0 - x) * (255.0 - yy) / 255.0;
            double bl = (255.0 - (255 - x)) * (255.0 - yy) / 255.0; /* Y = 255 - x */
            int er = (int)fabs(a.px[3 * (yy * 256 + x)] - r);
            int eb = (int)fabs(a.px[3 * (yy * 256 + x) + 2] - bl);
            if (er > maxerr) maxerr = er;
            if (eb > maxerr) maxerr = eb;
        }
    printf("CMYK sweep: max |decoded - (255-C)(255-K)/255| = %d\n", maxerr);
    assert_true(maxerr <= 12);
    assert_int_equal(ssd_jpeg_decode_file(j, fix("gen_ycck_adobe.jpg"), &y, &err), SSD_OK);
    assert_int_equal(y.w, 128);
    maxerr = 0;
    for (int yy = 0; yy < 128; yy++)
        for (int x = 0; x < 128; x++) {
            double r = (255.0 - 2 * x) * (255.0 - 2 * yy) / 255.0; /* same meaning as CMYK */
            int er = (int)fabs(y.px[3 * (yy * 128 + x)] - r);
            if (er > maxerr) maxerr = er;
        }
    printf("YCCK sweep: max R error %d\n", maxerr);
    assert_true(maxerr <= 16); /* q92 and 4:2:0 chroma: still far from the wrong polarity */
    ssd_image_free(&g);
    ssd_image_free(&a);
    ssd_image_free(&b);
    ssd_image_free(&y);
    ssd_jpeg_destroy(j);
}

/* ---- bad input ---- */

static uint8_t *g_good; /* gen_420_q90.jpg */
static size_t g_good_len;
static char g_good_md5[33];

/* The decoder must still decode a good file correctly after any failure. */
static void check_still_good(ssd_jpeg *j) {
    ssd_image im = {0};
    ssd_error err;
    if (ssd_jpeg_decode(j, g_good, g_good_len, "good.jpg", &im, &err) != SSD_OK)
        fail_msg("good file after a failure: %s", err.msg);
    char hex[33];
    md5_hex(im.px, (size_t)im.w * im.h * 3, hex);
    assert_string_equal(hex, g_good_md5);
    ssd_image_free(&im);
}

/* Decodes the file PATH (via decode_file) and expects status `want` with the path named and no
 * image handed out; returns the message for further checks. */
static const char *expect_fail(ssd_jpeg *j, const char *path, ssd_status want) {
    static ssd_error err;
    ssd_image im = {0};
    ssd_status st = ssd_jpeg_decode_file(j, path, &im, &err);
    printf("%s -> %s: %s\n", strrchr(path, '/') + 1, ssd_status_name(st), st ? err.msg : "");
    if (st != want) fail_msg("%s: status %s, want %s", path, ssd_status_name(st), ssd_status_name(want));
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(im.w, 0);
    assert_int_equal(im.h, 0);
    ssd_image_free(&im);
    check_still_good(j);
    return err.msg;
}

static void load_good(void) {
    if (g_good) return;
    g_good = read_bytes(fix("gen_420_q90.jpg"), &g_good_len);
    ssd_jpeg *j = ssd_jpeg_create();
    ssd_image im = {0};
    our_md5(j, fix("gen_420_q90.jpg"), &im, g_good_md5);
    ssd_image_free(&im);
    ssd_jpeg_destroy(j);
}

/* Offset of the first byte after the SOS header (start of entropy-coded data). */
static size_t entropy_start(const uint8_t *b, size_t n) {
    for (size_t i = 2; i + 3 < n;) {
        assert_int_equal(b[i], 0xFF);
        size_t seg = (size_t)b[i + 2] << 8 | b[i + 3];
        if (b[i + 1] == 0xDA) return i + 2 + seg;
        i += 2 + seg;
    }
    fail_msg("no SOS");
    return 0;
}

/* Offset of the SOF marker. */
static size_t sof_at(const uint8_t *b, size_t n) {
    for (size_t i = 2; i + 3 < n;) {
        if (b[i + 1] == 0xC0 || b[i + 1] == 0xC2) return i;
        i += 2 + ((size_t)b[i + 2] << 8 | b[i + 3]);
    }
    fail_msg("no SOF");
    return 0;
}

static void test_truncated(void **state) {
    (void)state;
    load_good();
    ssd_jpeg *j = ssd_jpeg_create();
    size_t es = entropy_start(g_good, g_good_len);
    size_t cuts[] = {1, 2, 3, 20, 100, es - 1, es, es + 1, es + 200, g_good_len / 2,
                     g_good_len - 100, g_good_len - 2, g_good_len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        char name[64];
        snprintf(name, sizeof name, "truncated_%zu.jpg", cuts[i]);
        write_bytes(scratch(name), g_good, cuts[i]);
        const char *msg = expect_fail(j, scratch(name), SSD_ERR_FORMAT);
        (void)msg;
    }
    /* "Premature end of JPEG file" is the libjpeg warning for data that stops mid-scan */
    write_bytes(scratch("truncated_half.jpg"), g_good, g_good_len / 2);
    assert_non_null(strstr(expect_fail(j, scratch("truncated_half.jpg"), SSD_ERR_FORMAT),
                           "Premature end of JPEG file"));
    if (g_have_py) { /* Pillow refuses them too ("image file is truncated" or similar) */
        char files[1400];
        snprintf(files, sizeof files, "\"%s\"/truncated_*.jpg", g_scratch);
        static md5_line pl[64];
        int np = pillow_md5(files, pl, 64);
        int pil_ok = 0;
        for (int i = 0; i < np; i++) pil_ok += strcmp(pl[i].md5, "ERROR") != 0;
        printf("Pillow decoded %d of %d truncated files without error (we refuse all)\n", pil_ok, np);
        assert_int_equal(np, 14);
        assert_int_equal(pil_ok, 0);
    }
    ssd_jpeg_destroy(j);
}

/* Flipped bytes in the entropy-coded data: libjpeg reports most (a warning such as "Corrupt
 * JPEG data: premature end of data segment" or an error) and we refuse those; a flip that
 * still parses as valid Huffman codes cannot be detected by any decoder (JPEG has no
 * checksum): then we must return a full image of the right size. Both outcomes are counted. */
static void test_flipped_entropy_bytes(void **state) {
    (void)state;
    load_good();
    ssd_jpeg *j = ssd_jpeg_create();
    size_t es = entropy_start(g_good, g_good_len);
    uint8_t *b = ssd_xmalloc(g_good_len);
    ssd_rng r = ssd_rng_stream(1, SSD_RNG_DOMAIN_TEST, 0, 0, 77);
    int refused = 0, undetected = 0;
    static char ok_md5[40][33];
    for (int t = 0; t < 40; t++) {
        memcpy(b, g_good, g_good_len);
        int flips = 1 + (int)ssd_rng_below(&r, 4);
        for (int f = 0; f < flips; f++) {
            size_t at = es + ssd_rng_below(&r, (uint32_t)(g_good_len - 2 - es));
            b[at] ^= (uint8_t)(1 + ssd_rng_below(&r, 255));
        }
        ssd_image im = {0};
        ssd_error err;
        ssd_status st = ssd_jpeg_decode(j, b, g_good_len, "flipped.jpg", &im, &err);
        char name[64];
        snprintf(name, sizeof name, "flipped_%s_%02d.jpg", st == SSD_OK ? "ok" : "bad", t);
        write_bytes(scratch(name), b, g_good_len);
        if (st == SSD_OK) {
            undetected++;
            assert_int_equal(im.w, 160);
            assert_int_equal(im.h, 120);
            md5_hex(im.px, (size_t)im.w * im.h * 3, ok_md5[t]);
        } else {
            refused++;
            assert_int_equal(st, SSD_ERR_FORMAT);
            assert_non_null(strstr(err.msg, "flipped.jpg"));
            if (refused <= 3) printf("  %s\n", err.msg);
            assert_int_equal(im.w, 0);
        }
        ssd_image_free(&im);
        check_still_good(j);
    }
    printf("flipped entropy bytes: %d of 40 refused by libjpeg, %d undetectable (decoded, right "
           "size)\n", refused, undetected);
    assert_true(refused > 0);
    if (g_have_py) {
        /* The undetectable ones are what Pillow decodes too, pixel for pixel. Pillow ignores
         * libjpeg warnings, so it also returns an image for most of those we refuse. */
        char files[1400];
        snprintf(files, sizeof files, "\"%s\"/flipped_*.jpg", g_scratch);
        static md5_line pl[64];
        int np = pillow_md5(files, pl, 64);
        assert_int_equal(np, 40);
        int pil_on_bad = 0;
        for (int i = 0; i < np; i++) {
            int t = atoi(pl[i].name + strlen(pl[i].name) - 6);
            if (strncmp(pl[i].name, "flipped_ok_", 11) == 0) assert_string_equal(pl[i].md5, ok_md5[t]);
            else pil_on_bad += strcmp(pl[i].md5, "ERROR") != 0;
        }
        printf("Pillow: the %d undetectable ones equal ours; it returns an image for %d of the %d "
               "we refuse (it ignores libjpeg warnings)\n", undetected, pil_on_bad, refused);
    }
    free(b);
    ssd_jpeg_destroy(j);
}

static void test_not_jpeg(void **state) {
    (void)state;
    load_good();
    ssd_jpeg *j = ssd_jpeg_create();
    write_bytes(scratch("empty.jpg"), "", 0);
    assert_non_null(strstr(expect_fail(j, scratch("empty.jpg"), SSD_ERR_FORMAT), "empty"));
    char png[1300];
    snprintf(png, sizeof png, "%s", fix("bad_png.png"));
    assert_non_null(strstr(expect_fail(j, png, SSD_ERR_FORMAT), "not a JPEG"));
    uint8_t rnd[4096];
    ssd_rng r = ssd_rng_stream(2, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    for (size_t i = 0; i < sizeof rnd; i++) rnd[i] = (uint8_t)ssd_rng_u32(&r);
    write_bytes(scratch("random.jpg"), rnd, sizeof rnd);
    expect_fail(j, scratch("random.jpg"), SSD_ERR_FORMAT);
    rnd[0] = 0xFF, rnd[1] = 0xD8; /* a JPEG signature followed by noise */
    write_bytes(scratch("soi_then_noise.jpg"), rnd, sizeof rnd);
    expect_fail(j, scratch("soi_then_noise.jpg"), SSD_ERR_FORMAT);
    write_bytes(scratch("text.jpg"), "hello world\n", 12);
    expect_fail(j, scratch("text.jpg"), SSD_ERR_FORMAT);
    /* missing file, a directory: I/O errors naming the path */
    const char *msg = expect_fail(j, scratch("does_not_exist.jpg"), SSD_ERR_IO);
    assert_non_null(strstr(msg, "No such file"));
    expect_fail(j, g_scratch, SSD_ERR_IO);
    /* the in-memory entry point names what it was given */
    ssd_image im = {0};
    ssd_error err;
    assert_int_equal(ssd_jpeg_decode(j, rnd, 0, "mem:empty", &im, &err), SSD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "mem:empty"));
    assert_int_equal(ssd_jpeg_decode(j, rnd, 1, "mem:one", &im, &err), SSD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "mem:one"));
    ssd_image_free(&im);
    ssd_jpeg_destroy(j);
}

/* A forged SOF: sizes past our limits are refused before any allocation; height 0 is libjpeg's
 * error. */
static void test_forged_sizes(void **state) {
    (void)state;
    load_good();
    ssd_jpeg *j = ssd_jpeg_create();
    uint8_t *b = ssd_xmalloc(g_good_len);
    size_t sof = sof_at(g_good, g_good_len);
    static const struct {
        int w, h;
        const char *expect;
    } k_sizes[] = {{65000, 65000, "over the limit"}, {30001, 8, "over the limit"},
                   {8, 30001, "over the limit"},    {20000, 20000, "over the limit"},
                   {160, 0, NULL},                   {0, 120, NULL}};
    for (size_t i = 0; i < sizeof k_sizes / sizeof *k_sizes; i++) {
        memcpy(b, g_good, g_good_len);
        b[sof + 5] = (uint8_t)(k_sizes[i].h >> 8), b[sof + 6] = (uint8_t)k_sizes[i].h;
        b[sof + 7] = (uint8_t)(k_sizes[i].w >> 8), b[sof + 8] = (uint8_t)k_sizes[i].w;
        char name[64];
        snprintf(name, sizeof name, "forged_%dx%d.jpg", k_sizes[i].w, k_sizes[i].h);
        write_bytes(scratch(name), b, g_good_len);
        const char *msg = expect_fail(j, scratch(name), SSD_ERR_FORMAT);
        if (k_sizes[i].expect) assert_non_null(strstr(msg, k_sizes[i].expect));
    }
    /* a plausible but larger-than-the-data size: libjpeg runs out of data -> refused */
    memcpy(b, g_good, g_good_len);
    b[sof + 5] = 0x04, b[sof + 6] = 0x00; /* height 1024 */
    write_bytes(scratch("forged_160x1024.jpg"), b, g_good_len);
    expect_fail(j, scratch("forged_160x1024.jpg"), SSD_ERR_FORMAT);
    free(b);
    ssd_jpeg_destroy(j);
}

/* Seeded mutations of every fixture (truncate, flip, overwrite header bytes, splice): never a
 * crash or sanitizer report; a success is a full image, a failure is FORMAT naming the input. */
static void test_mutation_loop(void **state) {
    (void)state;
    load_good();
    static const char *k_files[] = {"gen_420_q90.jpg", "gen_progressive_420.jpg", "gen_gray.jpg",
                                    "gen_cmyk_adobe.jpg", "gen_ycck_adobe.jpg",
                                    "gen_restart_420.jpg", "gen_arithmetic_444.jpg",
                                    "gen_17x5.jpg", "coco_000000425989.jpg"};
    ssd_jpeg *j = ssd_jpeg_create();
    ssd_rng r = ssd_rng_stream(3, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    int ok = 0, fail = 0;
    for (size_t f = 0; f < sizeof k_files / sizeof *k_files; f++) {
        size_t n;
        uint8_t *orig = read_bytes(fix(k_files[f]), &n);
        uint8_t *b = ssd_xmalloc(n);
        for (int t = 0; t < 40; t++) {
            memcpy(b, orig, n);
            size_t len = n;
            int kind = (int)ssd_rng_below(&r, 4);
            if (kind == 0) len = 1 + ssd_rng_below(&r, (uint32_t)n);
            int k = 1 + (int)ssd_rng_below(&r, 6);
            for (int q = 0; q < k && kind != 0; q++) {
                size_t at = kind == 2 ? ssd_rng_below(&r, (uint32_t)(n < 400 ? n : 400))
                                      : ssd_rng_below(&r, (uint32_t)n);
                b[at] = kind == 3 ? 0xFF : (uint8_t)ssd_rng_u32(&r);
            }
            ssd_image im = {0};
            ssd_error err;
            ssd_status st = ssd_jpeg_decode(j, b, len, "mutant", &im, &err);
            if (st == SSD_OK) {
                ok++;
                assert_true(im.w > 0 && im.h > 0);
                volatile uint8_t sink = im.px[(size_t)im.w * im.h * 3 - 1]; /* whole buffer there */
                (void)sink;
            } else {
                fail++;
                assert_int_equal(st, SSD_ERR_FORMAT);
                assert_non_null(strstr(err.msg, "mutant"));
            }
            ssd_image_free(&im);
        }
        free(b);
        free(orig);
    }
    check_still_good(j);
    printf("mutations: %d decoded, %d refused\n", ok, fail);
    ssd_jpeg_destroy(j);
}

/* ---- encode ---- */

static void make_photo(ssd_image *im, int w, int h) {
    ssd_image_reserve(im, w, h);
    ssd_rng r = ssd_rng_stream(4, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double v[3] = {128 + 100 * sin(x * 0.05 + y * 0.02), 128 + 90 * cos(y * 0.04 - x * 0.01),
                           255.0 * (x + y) / (w + h)};
            if ((x / 16 + y / 16) % 2) v[0] *= 0.85, v[1] *= 0.85, v[2] *= 0.85; /* luma edges */
            for (int c = 0; c < 3; c++) {
                double t = v[c] + 3 * (ssd_rng_uniform_f64(&r) - 0.5);
                im->px[3 * ((size_t)y * w + x) + c] = (uint8_t)(t < 0 ? 0 : t > 255 ? 255 : t);
            }
        }
}

static double psnr(const uint8_t *a, const uint8_t *b, size_t n, size_t stride_a, size_t stride_b) {
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i * stride_a] - b[i * stride_b];
        se += d * d;
    }
    return se == 0 ? INFINITY : 10 * log10(255.0 * 255.0 / (se / n));
}

static void test_encode_roundtrip(void **state) {
    (void)state;
    ssd_jpeg *j = ssd_jpeg_create();
    ssd_image src = {0}, dec = {0};
    make_photo(&src, 211, 157);
    uint8_t *jpg = NULL;
    size_t len = 0;
    ssd_error err;
    assert_int_equal(ssd_jpeg_encode(j, &src, 95, 0, &jpg, &len, &err), SSD_OK);
    /* 4:2:0, baseline (SOF0), YCbCr */
    tjhandle h = tjInitDecompress();
    int w, hh, ss, cs;
    assert_int_equal(tjDecompressHeader3(h, jpg, len, &w, &hh, &ss, &cs), 0);
    tjDestroy(h);
    assert_int_equal(ss, TJSAMP_420);
    assert_int_equal(cs, TJCS_YCbCr);
    assert_true(len > 4 && jpg[len - 2] == 0xFF && jpg[len - 1] == 0xD9);
    assert_int_equal(jpg[sof_at(jpg, len) + 1], 0xC0);
    assert_int_equal(ssd_jpeg_decode(j, jpg, len, "roundtrip.jpg", &dec, &err), SSD_OK);
    assert_int_equal(dec.w, 211);
    assert_int_equal(dec.h, 157);
    size_t npix = (size_t)211 * 157;
    double p = psnr(src.px, dec.px, npix * 3, 1, 1);
    printf("q95 4:2:0 round trip: %zu bytes, PSNR %.2f dB\n", len, p);
    /* q95 on this pattern measures 43.48 dB with libjpeg-turbo 2.1.5 and q50 39.65 dB: 42 dB
     * fails for a wrong quality setting, a swapped channel or a one-pixel shift. */
    assert_true(p > 42.0);
    write_bytes(scratch("ours_q95.jpg"), jpg, len);
    size_t len95 = len;
    free(jpg);

    /* grayscale: channel 0 only, decodes to R=G=B close to it */
    assert_int_equal(ssd_jpeg_encode(j, &src, 95, 1, &jpg, &len, &err), SSD_OK);
    int cs2;
    assert_int_equal(ssd_jpeg_header(j, jpg, len, "gray.jpg", &w, &hh, &cs2, &err), SSD_OK);
    assert_int_equal(cs2, TJCS_GRAY);
    assert_int_equal(ssd_jpeg_decode(j, jpg, len, "gray.jpg", &dec, &err), SSD_OK);
    for (size_t i = 0; i < npix; i++) {
        assert_int_equal(dec.px[3 * i], dec.px[3 * i + 1]);
        assert_int_equal(dec.px[3 * i], dec.px[3 * i + 2]);
    }
    double pg = psnr(src.px, dec.px, npix, 3, 3);
    printf("q95 gray round trip: %zu bytes, PSNR(R channel) %.2f dB\n", len, pg);
    assert_true(pg > 42.0); /* measured 48.5 dB: one channel, no chroma subsampling loss */
    write_bytes(scratch("ours_gray_q95.jpg"), jpg, len);
    free(jpg);

    /* quality is honoured: q50 is smaller and worse */
    size_t l50;
    assert_int_equal(ssd_jpeg_encode(j, &src, 50, 0, &jpg, &l50, &err), SSD_OK);
    assert_int_equal(ssd_jpeg_decode(j, jpg, l50, "q50.jpg", &dec, &err), SSD_OK);
    double p50 = psnr(src.px, dec.px, npix * 3, 1, 1);
    printf("q50: %zu bytes, PSNR %.2f dB\n", l50, p50);
    assert_true(l50 < len95 && p50 < p - 2.0);
    free(jpg);

    /* bad arguments */
    assert_int_equal(ssd_jpeg_encode(j, &src, 0, 0, &jpg, &len, &err), SSD_ERR_ARG);
    assert_null(jpg);
    assert_int_equal(ssd_jpeg_encode(j, &src, 101, 0, &jpg, &len, &err), SSD_ERR_ARG);
    ssd_image empty = {0};
    assert_int_equal(ssd_jpeg_encode(j, &empty, 90, 0, &jpg, &len, &err), SSD_ERR_ARG);

    /* Pillow decodes our files to exactly what we decode */
    if (g_have_py) {
        char files[1400];
        snprintf(files, sizeof files, "\"%s\"/ours_*.jpg", g_scratch);
        static md5_line pl[8];
        int np = pillow_md5(files, pl, 8);
        assert_int_equal(np, 2);
        for (int i = 0; i < np; i++) {
            char hex[33];
            our_md5(j, scratch(pl[i].name), &dec, hex);
            assert_string_equal(hex, pl[i].md5);
        }
    } else {
        tu_skip("test_jpeg/encode_pillow", "no python with Pillow (SSD_PYTHON_TORCH)");
    }
    ssd_image_free(&src);
    ssd_image_free(&dec);
    ssd_jpeg_destroy(j);
}

static int teardown(void **state) {
    (void)state;
    free(g_good);
    g_good = NULL;
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_recorded_md5), cmocka_unit_test(test_fixtures_live_pillow),
        cmocka_unit_test(test_coco_tiny_all),         cmocka_unit_test(test_colour_spaces),
        cmocka_unit_test(test_truncated),             cmocka_unit_test(test_flipped_entropy_bytes),
        cmocka_unit_test(test_not_jpeg),              cmocka_unit_test(test_forged_sizes),
        cmocka_unit_test(test_mutation_loop),         cmocka_unit_test(test_encode_roundtrip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

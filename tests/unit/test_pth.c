/* The .pth reader without torch: the committed seed files (tests/fuzz/corpus, written by
 * tools/pth_cases.py seeds: every container and pickle flavour) give their known values;
 * every truncation and many byte mutations of them end in a clean result or a named error
 * (never a crash: this test also runs under ASan+UBSan); hand-built pickles give the promised
 * messages with file name and byte offset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "io/pth.h"
#include "testutil.h"

static const struct {
    const char *file;
    ssd_pth_container kind;
} k_seeds[] = {{"small_zip.pth", SSD_PTH_ZIP},         {"small_zip_p4.pth", SSD_PTH_ZIP},
               {"small_legacy.pth", SSD_PTH_LEGACY},   {"small_tar_py2.pth", SSD_PTH_TAR},
               {"small_tar_py3.pth", SSD_PTH_TAR}};
#define NSEEDS ((int)(sizeof k_seeds / sizeof k_seeds[0]))

static uint8_t *slurp(const char *file, size_t *len) {
    char path[2048];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s", tu_env("SSD_SOURCE_DIR"), file);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *buf = ssd_xmalloc(1 << 16);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

/* The seeds' state_dict: w = arange(6).reshape(2,3).t(), n = 42, h = [1, -2] (f16),
 * v = arange(10.)[3:7] (f64). */
static void expect_small(const ssd_pth_file *f) {
    assert_int_equal(ssd_pth_count(f), 4);
    const ssd_pth_tensor *w = ssd_pth_at(f, 0), *n = ssd_pth_at(f, 1), *h = ssd_pth_at(f, 2),
                         *v = ssd_pth_at(f, 3);
    assert_string_equal(w->name, "w");
    assert_int_equal(w->dtype, SSD_PTH_F32);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 3);
    assert_int_equal(w->shape[1], 2);
    const float wv[6] = {0, 3, 1, 4, 2, 5};
    assert_memory_equal(w->data, wv, sizeof wv);
    assert_string_equal(n->name, "n");
    assert_int_equal(n->dtype, SSD_PTH_I64);
    assert_int_equal(n->ndim, 0);
    assert_int_equal(*(const int64_t *)n->data, 42);
    assert_int_equal(h->dtype, SSD_PTH_F16);
    const uint16_t hv[2] = {0x3c00, 0xc000};
    assert_memory_equal(h->data, hv, sizeof hv);
    assert_int_equal(v->dtype, SSD_PTH_F64);
    const double vv[4] = {3, 4, 5, 6};
    assert_memory_equal(v->data, vv, sizeof vv);
    ssd_tensor t;
    ssd_error err;
    assert_int_equal(ssd_pth_as_tensor(h, &t, &err), SSD_OK);
    assert_int_equal(t.dtype, SSD_F16);
    assert_true(ssd_tensor_get(&t, 1) == -2.0);
}

static void test_seeds(void **state) {
    (void)state;
    if (!tu_env("SSD_SOURCE_DIR")) skip();
    for (int s = 0; s < NSEEDS; s++) {
        size_t len;
        uint8_t *buf = slurp(k_seeds[s].file, &len);
        ssd_pth_file *f = NULL;
        ssd_error err;
        ssd_status st = ssd_pth_read_mem(buf, len, k_seeds[s].file, &f, &err);
        if (st) printf("%s\n", err.msg);
        assert_int_equal(st, SSD_OK);
        assert_int_equal(ssd_pth_kind(f), k_seeds[s].kind);
        expect_small(f);
        ssd_pth_free(f);
        free(buf);
    }
}

/* Every prefix: an error naming the file, or (tar: only zero padding lost) the same tensors. */
static void test_truncations(void **state) {
    (void)state;
    if (!tu_env("SSD_SOURCE_DIR")) skip();
    for (int s = 0; s < NSEEDS; s++) {
        size_t len;
        uint8_t *buf = slurp(k_seeds[s].file, &len);
        int ok = 0;
        for (size_t l = 0; l < len; l++) {
            ssd_pth_file *f = NULL;
            ssd_error err;
            uint8_t *cut = ssd_xmalloc(l + 1); /* exact size: ASan sees any overread */
            memcpy(cut, buf, l);
            ssd_status st = ssd_pth_read_mem(cut, l, k_seeds[s].file, &f, &err);
            if (st == SSD_OK) {
                expect_small(f);
                ok++;
            } else {
                assert_int_equal(st, SSD_ERR_FORMAT);
                assert_non_null(strstr(err.msg, k_seeds[s].file));
            }
            ssd_pth_free(f);
            free(cut);
        }
        printf("%s: %zu truncations, %d still complete\n", k_seeds[s].file, len, ok);
        if (k_seeds[s].kind != SSD_PTH_TAR) assert_int_equal(ok, 0);
        free(buf);
    }
}

/* Each byte set to 0x00, 0xff and flipped in its top bit: no crash, named errors. */
static void test_mutations(void **state) {
    (void)state;
    if (!tu_env("SSD_SOURCE_DIR")) skip();
    for (int s = 0; s < NSEEDS; s++) {
        size_t len;
        uint8_t *buf = slurp(k_seeds[s].file, &len);
        int errors = 0, runs = 0;
        for (size_t i = 0; i < len; i++) {
            uint8_t orig = buf[i], vals[3] = {0x00, 0xff, (uint8_t)(orig ^ 0x80)};
            for (int k = 0; k < 3; k++) {
                if (vals[k] == orig) continue;
                buf[i] = vals[k];
                ssd_pth_file *f = NULL;
                ssd_error err;
                ssd_status st = ssd_pth_read_mem(buf, len, "mutant.pth", &f, &err);
                if (st) {
                    errors++;
                    assert_non_null(strstr(err.msg, "mutant.pth"));
                }
                runs++;
                ssd_pth_free(f);
            }
            buf[i] = orig;
        }
        printf("%s: %d mutants, %d refused with an error\n", k_seeds[s].file, runs, errors);
        free(buf);
    }
}

/* ---- hand-built magic-number files ---- */

typedef struct bytes {
    uint8_t b[4096];
    size_t n;
} bytes;

static void put(bytes *o, const void *p, size_t n) {
    if (n) memcpy(o->b + o->n, p, n);
    o->n += n;
}
#define PUTS(o, s) put(o, s, sizeof(s) - 1)

/* magic, version 1001, sys_info {}, MAIN, key list KEYS, then DATA. */
static bytes legacy(const char *main, size_t nmain, const char *keys, size_t nkeys,
                    const void *data, size_t ndata) {
    static const uint8_t head[] = {0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20,
                                   0x6A, 0xA8, 0x50, 0x19, 0x2E, 0x80, 0x02, 0x4D, 0xE9, 0x03,
                                   0x2E, 0x80, 0x02, 0x7D, 0x2E};
    bytes o = {.n = 0};
    put(&o, head, sizeof head); /* 25 bytes: the main pickle starts at byte 25 */
    put(&o, main, nmain);
    put(&o, keys, nkeys);
    put(&o, data, ndata);
    return o;
}

/* {'a': _rebuild_tensor_v2(storage '0' (FloatStorage, 2 elements), 0, (2,), (STRIDE,), False,
 *  OrderedDict())}; storage keys ['0']; data: COUNT then 1.5, -2. */
static bytes one_tensor(uint8_t stride, int64_t count, size_t ndata) {
    static const char main[] =
        "\x80\x02}X\x01\x00\x00\x00" "a" "ctorch._utils\n_rebuild_tensor_v2\n"
        "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0"
        "X\x03\x00\x00\x00" "cpuK\x02NtQ" "K\x00K\x02\x85K\x01\x85\x89"
        "ccollections\nOrderedDict\n)RtRs.";
    static const char keys[] = "\x80\x02](X\x01\x00\x00\x00" "0e.";
    uint8_t data[16];
    memcpy(data, &count, 8);
    const float v[2] = {1.5f, -2.0f};
    memcpy(data + 8, v, 8);
    char m[sizeof main];
    memcpy(m, main, sizeof main);
    for (size_t i = 0; i + 2 < sizeof main; i++) /* the stride: K 01 TUPLE1 (has NULs before) */
        if (memcmp(m + i, "K\x01\x85", 3) == 0) {
            m[i + 1] = (char)stride;
            break;
        }
    return legacy(m, sizeof main - 1, keys, sizeof keys - 1, data, ndata);
}

static void expect_error(const bytes *b, const char *needle) {
    ssd_pth_file *f = NULL;
    ssd_error err;
    ssd_status st = ssd_pth_read_mem(b->b, b->n, "hand.pth", &f, &err);
    printf("-> %s\n", st ? err.msg : "ok");
    assert_int_equal(st, SSD_ERR_FORMAT);
    assert_null(f);
    assert_non_null(strstr(err.msg, "hand.pth"));
    assert_non_null(strstr(err.msg, needle));
}

static void test_hand_built(void **state) {
    (void)state;
    bytes b = one_tensor(1, 2, 16);
    ssd_pth_file *f = NULL;
    ssd_error err;
    assert_int_equal(ssd_pth_read_mem(b.b, b.n, "hand.pth", &f, &err), SSD_OK);
    assert_int_equal(ssd_pth_count(f), 1);
    const float want[2] = {1.5f, -2.0f};
    assert_memory_equal(ssd_pth_get(f, "a")->data, want, sizeof want);
    ssd_pth_free(f);

    b = one_tensor(1, 3, 16);
    expect_error(&b, "storage '0' has 3 elements in the data but 2 in the pickle");
    b = one_tensor(1, 2, 12);
    expect_error(&b, "truncated: storage '0' needs 2 x 4 bytes");
    b = one_tensor(5, 2, 16);
    expect_error(&b, "tensor 'a' reaches element 5 of storage '0', which has 2");

    static const char keys[] = "\x80\x02].";
    b = legacy("\x80\x02\xff.", 4, keys, sizeof keys - 1, NULL, 0);
    expect_error(&b, "main pickle, byte 27: unsupported pickle opcode 0xff");
    static const char glob[] = "\x80\x02" "cos\nsystem\n.";
    b = legacy(glob, sizeof glob - 1, keys, sizeof keys - 1, NULL, 0);
    expect_error(&b, "byte 27: unknown global 'os.system'");
    b = legacy("\x80\x02K\x05.", 5, keys, sizeof keys - 1, NULL, 0);
    expect_error(&b, "holds a int, not a state_dict");
    b = legacy("\x80\x02h\x07.", 5, keys, sizeof keys - 1, NULL, 0);
    expect_error(&b, "byte 27: memo entry 7 is not defined");
    b = legacy("\x80\x02s.", 4, keys, sizeof keys - 1, NULL, 0);
    expect_error(&b, "stack underflow");
    b = legacy("\x80\x02}", 3, "", 0, NULL, 0);
    expect_error(&b, "byte 28: truncated: the pickle ends without STOP");
    bytes z = {.n = 0};
    PUTS(&z, "PK\3\4 this is not a zip file at all........................");
    expect_error(&z, "zip container");
    bytes junk = {.n = 0};
    PUTS(&junk, "hello");
    expect_error(&junk, "not a PyTorch checkpoint");

    /* protocol 0 text opcodes (Python 2): {'kA': {}, 'n\u00e9': True} has no tensors */
    static const char text[] = "(dp0\nS'k\\x41'\np1\n(dp2\nsVn\\u00e9\np3\nI01\ns.";
    b = legacy(text, sizeof text - 1, keys, sizeof keys - 1, NULL, 0);
    assert_int_equal(ssd_pth_read_mem(b.b, b.n, "hand.pth", &f, &err), SSD_OK);
    assert_int_equal(ssd_pth_count(f), 0);
    assert_int_equal(ssd_pth_skipped(f), 1);
    ssd_pth_free(f);

    assert_int_equal(ssd_pth_read("/nonexistent/x.pth", &f, &err), SSD_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.pth"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeds), cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_mutations), cmocka_unit_test(test_hand_built),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of src/io/safetensors: round trips of every dtype (with and without metadata),
 * atomic writes, every malformed-file case giving its own clear error (no crash, no leak: the
 * Asan build runs this too), and a file written by Python's hand-rolled writer
 * (tools/gen_op_goldens.py --st-selftest) read back. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "testutil.h"

/* ---- helpers ---- */

static char g_dir[1024];

static const char *tmp_path(const char *name) {
    static char buf[4][1200];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static int setup_dir(void **state) {
    (void)state;
    const char *b = tu_env("SSD_BUILD_DIR");
    snprintf(g_dir, sizeof g_dir, "%s/test_tmp_safetensors", b ? b : ".");
    if (mkdir(g_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s: %s\n", g_dir, strerror(errno));
        return -1;
    }
    return 0;
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Writes [u64 len][header][data_len bytes 0..] by hand. len_override != UINT64_MAX replaces
 * the length field; header_bytes lets a header carry a NUL. */
static void write_raw(const char *path, uint64_t len_override, const char *header,
                      size_t header_bytes, size_t data_len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t hl = len_override != UINT64_MAX ? len_override : header_bytes;
    unsigned char lb[8];
    for (int i = 0; i < 8; i++)
        lb[i] = (unsigned char)(hl >> (8 * i));
    assert_int_equal(fwrite(lb, 1, 8, f), 8);
    if (header_bytes) assert_int_equal(fwrite(header, 1, header_bytes, f), header_bytes);
    for (size_t i = 0; i < data_len; i++)
        fputc((int)(i & 0xff), f);
    fclose(f);
}

/* Reads path, expects status `code` and a message holding the path and `needle`. */
static void expect_fail(const char *path, ssd_status code, const char *needle) {
    ssd_st_file *f = (ssd_st_file *)0x1;
    ssd_error err;
    ssd_error_clear(&err);
    ssd_status s = ssd_st_read(path, &f, &err);
    if (s != code || !strstr(err.msg, needle) || !strstr(err.msg, path)) {
        fprintf(stderr, "expected %s with \"%s\", got %s: %s\n", ssd_status_name(code), needle,
                ssd_status_name(s), err.msg);
        fail();
    }
    assert_null(f);
    assert_int_equal(err.code, code);
    printf("  ok: %s\n", err.msg + strlen(path) + 2);
}

/* A header string written with write_raw, data covering it. */
static void expect_header_fail(const char *name, const char *header, size_t data_len,
                               ssd_status code, const char *needle) {
    const char *path = tmp_path(name);
    write_raw(path, UINT64_MAX, header, strlen(header), data_len);
    expect_fail(path, code, needle);
    remove(path);
}

/* ---- round trips ---- */

typedef struct {
    ssd_tensor t[6];
} sample_set;

static void make_samples(sample_set *s) {
    ssd_rng r = ssd_rng_stream(7, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    int64_t s_f32[2] = {2, 3}, s_bf16[1] = {5}, s_f64[3] = {3, 1, 4}, s_i64[1] = {4},
            s_empty[2] = {0, 7};
    s->t[0] = ssd_tensor_alloc_host(SSD_F32, 2, s_f32, "model.conv1.weight");
    s->t[1] = ssd_tensor_alloc_host(SSD_BF16, 1, s_bf16, "bf16 \"quoted\" \\ name\t");
    s->t[2] = ssd_tensor_alloc_host(SSD_F64, 3, s_f64, "f64");
    s->t[3] = ssd_tensor_alloc_host(SSD_I64, 1, s_i64, "i64");
    s->t[4] = ssd_tensor_alloc_host(SSD_F64, 0, NULL, "scalar");
    s->t[5] = ssd_tensor_alloc_host(SSD_F32, 2, s_empty, "empty");
    tu_fill_uniform(&s->t[0], &r, -2, 2);
    tu_fill_uniform(&s->t[1], &r, -2, 2); /* odd count: the F64 after it is misaligned */
    tu_fill_uniform(&s->t[2], &r, -1e300, 1e300);
    int64_t *iv = s->t[3].data;
    iv[0] = INT64_MIN;
    iv[1] = -1;
    iv[2] = 0;
    iv[3] = INT64_MAX;
    ((double *)s->t[4].data)[0] = -0.0;
}

static void free_samples(sample_set *s) {
    for (int i = 0; i < 6; i++)
        ssd_tensor_free(&s->t[i]);
}

static void check_same_tensors(const ssd_st_file *f, const sample_set *s) {
    assert_int_equal(ssd_st_count(f), 6);
    for (int i = 0; i < 6; i++) {
        const ssd_tensor *a = ssd_st_at(f, i), *b = &s->t[i];
        assert_string_equal(a->name, b->name);
        assert_string_equal(ssd_st_name(f, i), b->name);
        assert_ptr_equal(ssd_st_get(f, b->name), a);
        assert_int_equal(a->dtype, b->dtype);
        assert_int_equal(a->ndim, b->ndim);
        for (int d = 0; d < a->ndim; d++)
            assert_int_equal(a->shape[d], b->shape[d]);
        assert_false(a->owns);
        assert_int_equal(a->device.kind, SSD_DEVICE_HOST);
        size_t nb = ssd_tensor_nbytes(b);
        if (nb) {
            assert_int_equal((uintptr_t)a->data % ssd_dtype_size(a->dtype), 0);
            assert_memory_equal(a->data, b->data, nb);
        }
    }
    assert_null(ssd_st_get(f, "nope"));
    assert_null(ssd_st_at(f, 6));
    assert_null(ssd_st_at(f, -1));
}

static void test_roundtrip_meta(void **state) {
    (void)state;
    sample_set s;
    make_samples(&s);
    const ssd_tensor *ts[6] = {&s.t[0], &s.t[1], &s.t[2], &s.t[3], &s.t[4], &s.t[5]};
    const char *keys[2] = {"format", "note"}, *vals[2] = {"pt", "line1\nline2 \"q\""};
    const char *path = tmp_path("rt_meta.safetensors");
    ssd_error err;
    ssd_error_clear(&err);
    assert_int_equal(ssd_st_write_meta(path, ts, 6, keys, vals, 2, &err), SSD_OK);

    ssd_st_file *f = NULL;
    assert_int_equal(ssd_st_read(path, &f, &err), SSD_OK);
    check_same_tensors(f, &s);
    assert_int_equal(ssd_st_meta_count(f), 2);
    assert_string_equal(ssd_st_meta(f, "format"), "pt");
    assert_string_equal(ssd_st_meta(f, "note"), vals[1]);
    assert_string_equal(ssd_st_meta_key(f, 1), "note");
    assert_string_equal(ssd_st_meta_value(f, 0), "pt");
    assert_null(ssd_st_meta(f, "absent"));
    ssd_st_free(f);

    /* header padded to 8 bytes with spaces; the whole file is deterministic */
    size_t n1, n2;
    unsigned char *b1 = read_all(path, &n1);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | b1[i];
    assert_int_equal(hl % 8, 0);
    assert_true(b1[8] == '{');
    assert_memory_equal(b1 + 8, "{\"__metadata__\":{\"format\":\"pt\"", 30);
    assert_int_equal(ssd_st_write_meta(path, ts, 6, keys, vals, 2, &err), SSD_OK);
    unsigned char *b2 = read_all(path, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(b1);
    free(b2);
    /* no temp file left behind */
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_not_equal(access(tmp, F_OK), 0);
    free_samples(&s);
    remove(path);
}

static void test_roundtrip_no_meta(void **state) {
    (void)state;
    sample_set s;
    make_samples(&s);
    const ssd_tensor *ts[6] = {&s.t[0], &s.t[1], &s.t[2], &s.t[3], &s.t[4], &s.t[5]};
    const char *path = tmp_path("rt_plain.safetensors");
    ssd_error err;
    assert_int_equal(ssd_st_write(path, ts, 6, &err), SSD_OK);
    ssd_st_file *f = NULL;
    assert_int_equal(ssd_st_read(path, &f, &err), SSD_OK);
    check_same_tensors(f, &s);
    assert_int_equal(ssd_st_meta_count(f), 0);
    assert_null(ssd_st_meta(f, "format"));
    ssd_st_free(f);
    size_t n;
    unsigned char *b = read_all(path, &n);
    b[n - 1] = '\0';
    assert_null(strstr((const char *)b + 8, "__metadata__"));
    free(b);

    /* an empty file list is a valid file: "{}" padded */
    assert_int_equal(ssd_st_write(path, NULL, 0, &err), SSD_OK);
    assert_int_equal(ssd_st_read(path, &f, &err), SSD_OK);
    assert_int_equal(ssd_st_count(f), 0);
    assert_null(ssd_st_get(f, "x"));
    ssd_st_free(f);
    free_samples(&s);
    remove(path);
}

static void test_write_errors(void **state) {
    (void)state;
    ssd_tensor a = ssd_tensor_alloc_host1(SSD_F32, 3, "a");
    ssd_tensor b = ssd_tensor_alloc_host1(SSD_F32, 3, "a");
    ssd_tensor noname = ssd_tensor_alloc_host1(SSD_F32, 3, "");
    ssd_tensor reserved = ssd_tensor_alloc_host1(SSD_F32, 3, "__metadata__");
    ssd_tensor nodata = ssd_tensor_view(NULL, SSD_F32, 1, (int64_t[]){2}, "nodata");
    ssd_tensor dev = ssd_tensor_view(a.data, SSD_F32, 1, (int64_t[]){3}, "dev");
    dev.device.kind = SSD_DEVICE_CUDA;
    const char *path = tmp_path("werr.safetensors");
    ssd_error err;
    struct {
        const ssd_tensor *t[2];
        int n;
        const char *needle;
    } bad[] = {
        {{&a, &b}, 2, "duplicate tensor name \"a\""},
        {{&noname}, 1, "has no name"},
        {{&reserved}, 1, "reserved"},
        {{&nodata}, 1, "has no data"},
        {{&dev}, 1, "not on the host"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ssd_error_clear(&err);
        assert_int_equal(ssd_st_write(path, bad[i].t, bad[i].n, &err), SSD_ERR_ARG);
        assert_non_null(strstr(err.msg, bad[i].needle));
        assert_int_not_equal(access(path, F_OK), 0);
    }
    const ssd_tensor *one[1] = {&a};
    const char *k[2] = {"x", "x"}, *v[2] = {"1", "2"};
    assert_int_equal(ssd_st_write_meta(path, one, 1, k, v, 2, &err), SSD_ERR_ARG);
    assert_non_null(strstr(err.msg, "duplicate metadata key"));

    /* unwritable location: IO error, nothing left behind */
    const char *bad_path = tmp_path("no_such_dir/x.safetensors");
    assert_int_equal(ssd_st_write(bad_path, one, 1, &err), SSD_ERR_IO);
    assert_non_null(strstr(err.msg, bad_path));

    /* overwrite keeps a valid file: old -> new */
    assert_int_equal(ssd_st_write(path, one, 1, &err), SSD_OK);
    ssd_tensor c = ssd_tensor_alloc_host1(SSD_F64, 2, "c");
    const ssd_tensor *two[2] = {&a, &c};
    assert_int_equal(ssd_st_write(path, two, 2, &err), SSD_OK);
    ssd_st_file *f = NULL;
    assert_int_equal(ssd_st_read(path, &f, &err), SSD_OK);
    assert_int_equal(ssd_st_count(f), 2);
    ssd_st_free(f);
    remove(path);
    ssd_tensor_free(&a);
    ssd_tensor_free(&b);
    ssd_tensor_free(&c);
    ssd_tensor_free(&noname);
    ssd_tensor_free(&reserved);
}

/* ---- malformed files ---- */

static void test_bad_length(void **state) {
    (void)state;
    const char *p = tmp_path("bad_len.safetensors");
    ssd_error err;
    ssd_st_file *f;
    /* missing file / directory */
    assert_int_equal(ssd_st_read(tmp_path("missing.safetensors"), &f, &err), SSD_ERR_IO);
    assert_null(f);
    assert_non_null(strstr(err.msg, "cannot open"));
    expect_fail(g_dir, SSD_ERR_IO, "not a regular file");
    /* shorter than 8 bytes, including empty */
    FILE *fp = fopen(p, "wb");
    fwrite("\x02\0\0\0\0", 1, 5, fp);
    fclose(fp);
    expect_fail(p, SSD_ERR_FORMAT, "shorter than the 8-byte");
    fp = fopen(p, "wb");
    fclose(fp);
    expect_fail(p, SSD_ERR_FORMAT, "file is 0 bytes");
    /* length beyond the file */
    write_raw(p, 100, "{}", 2, 0);
    expect_fail(p, SSD_ERR_FORMAT, "larger than the 2 bytes");
    /* absurd lengths */
    write_raw(p, 100000001ull, "{}", 2, 0);
    expect_fail(p, SSD_ERR_FORMAT, "absurd");
    write_raw(p, UINT64_MAX - 1, "{}", 2, 0);
    expect_fail(p, SSD_ERR_FORMAT, "absurd");
    /* zero-length header: not JSON */
    write_raw(p, 0, "", 0, 0);
    expect_fail(p, SSD_ERR_FORMAT, "not valid JSON");
    remove(p);
}

static void test_bad_json(void **state) {
    (void)state;
    expect_header_fail("j1", "{\"a\":", 0, SSD_ERR_FORMAT, "not valid JSON");
    expect_header_fail("j2", "not json", 0, SSD_ERR_FORMAT, "not valid JSON");
    expect_header_fail("j3", "{}  x    ", 0, SSD_ERR_FORMAT, "trailing bytes after the JSON");
    expect_header_fail("j4", "[1,2]", 0, SSD_ERR_FORMAT, "is an array, expected a JSON object");
    expect_header_fail("j5", "\"str\"", 0, SSD_ERR_FORMAT, "expected a JSON object");
    const char nul[] = "{\"a\"\0:1}";
    const char *p = tmp_path("j6");
    write_raw(p, UINT64_MAX, nul, sizeof nul - 1, 0);
    expect_fail(p, SSD_ERR_FORMAT, "NUL byte");
    remove(p);
    /* trailing spaces/newlines after the object are fine */
    p = tmp_path("j7");
    write_raw(p, UINT64_MAX, "{} \n\t ", 6, 0);
    ssd_st_file *f = NULL;
    ssd_error err;
    assert_int_equal(ssd_st_read(p, &f, &err), SSD_OK);
    assert_int_equal(ssd_st_count(f), 0);
    ssd_st_free(f);
    remove(p);
}

#define T_ENTRY(dt, shape, offs) "{\"dtype\":" dt ",\"shape\":" shape ",\"data_offsets\":" offs "}"

static void test_bad_fields(void **state) {
    (void)state;
    const ssd_status FMT = SSD_ERR_FORMAT;
    expect_header_fail("f1", "{\"a\":5}", 0, FMT, "\"a\": entry is a number, expected an object");
    expect_header_fail("f2", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, FMT,
                       "\"dtype\" is missing, expected a string");
    expect_header_fail("f3", "{\"a\":" T_ENTRY("7", "[1]", "[0,4]") "}", 4, FMT,
                       "\"dtype\" is a number");
    expect_header_fail("f4", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, FMT,
                       "\"shape\" is missing");
    expect_header_fail("f5", "{\"a\":" T_ENTRY("\"F32\"", "\"1\"", "[0,4]") "}", 4, FMT,
                       "\"shape\" is a string, expected an array");
    expect_header_fail("f6", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, FMT,
                       "\"data_offsets\" is missing");
    expect_header_fail("f7", "{\"a\":" T_ENTRY("\"F32\"", "[1]", "{}") "}", 4, FMT,
                       "\"data_offsets\" is an object");
    expect_header_fail("f8", "{\"a\":" T_ENTRY("\"F32\"", "[1]", "[4]") "}", 4, FMT,
                       "has 1 entries, expected [begin, end]");
    expect_header_fail("f9", "{\"a\":" T_ENTRY("\"F32\"", "[1]", "[0,4,8]") "}", 4, FMT,
                       "has 3 entries");
    expect_header_fail("f10", "{\"a\":" T_ENTRY("\"F32\"", "[1]", "[0,\"4\"]") "}", 4, FMT,
                       "a data offset is not a number");
    expect_header_fail("f11", "{\"a\":" T_ENTRY("\"F32\"", "[1]", "[-4,0]") "}", 4, FMT,
                       "a data offset is negative");
    expect_header_fail("f12", "{\"a\":" T_ENTRY("\"F32\"", "[1]", "[0,4.5]") "}", 4, FMT,
                       "a data offset is not an integer");
    /* dtypes */
    expect_header_fail("d1", "{\"a\":" T_ENTRY("\"Q7\"", "[1]", "[0,4]") "}", 4, FMT,
                       "unknown dtype \"Q7\"");
    expect_header_fail("d2", "{\"a\":" T_ENTRY("\"f32\"", "[1]", "[0,4]") "}", 4, FMT,
                       "unknown dtype \"f32\"");
    expect_header_fail("d3", "{\"a\":" T_ENTRY("\"I32\"", "[1]", "[0,4]") "}", 4,
                       SSD_ERR_UNSUPPORTED, "dtype I32 is not supported");
    /* shapes */
    expect_header_fail("s1", "{\"a\":" T_ENTRY("\"F32\"", "[2,-1]", "[0,0]") "}", 0, FMT,
                       "shape[1] is negative");
    expect_header_fail("s2", "{\"a\":" T_ENTRY("\"F32\"", "[1,1,1,1,1,1,1]", "[0,4]") "}", 4, FMT,
                       "shape has 7 dims, at most 6");
    expect_header_fail("s3", "{\"a\":" T_ENTRY("\"F32\"", "[2.5]", "[0,10]") "}", 10, FMT,
                       "shape[0] is not an integer");
    expect_header_fail("s4", "{\"a\":" T_ENTRY("\"F32\"", "[\"2\"]", "[0,8]") "}", 8, FMT,
                       "shape[0] is not a number");
    expect_header_fail("s5", "{\"a\":" T_ENTRY("\"F32\"", "[1e300]", "[0,8]") "}", 8, FMT,
                       "shape[0] is too large");
    expect_header_fail(
        "s6", "{\"a\":" T_ENTRY("\"F64\"", "[4294967296,4294967296,4294967296]", "[0,8]") "}", 8,
        FMT, "needs more than 2^64 bytes");
    /* metadata */
    expect_header_fail("m1", "{\"__metadata__\":[1]}", 0, FMT,
                       "\"__metadata__\" is an array, expected an object");
    expect_header_fail("m2", "{\"__metadata__\":{\"k\":1}}", 0, FMT,
                       "\"__metadata__\" entry \"k\" is a number, expected a string");
    expect_header_fail("m3", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, FMT,
                       "duplicate \"__metadata__\" entry");
    expect_header_fail("m4", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, FMT,
                       "duplicate \"__metadata__\" key \"k\"");
}

static void test_bad_offsets(void **state) {
    (void)state;
    const ssd_status FMT = SSD_ERR_FORMAT;
    /* size mismatch: F32 [2] is 8 bytes */
    expect_header_fail("o1", "{\"a\":" T_ENTRY("\"F32\"", "[2]", "[0,4]") "}", 4, FMT,
                       "F32 (2) needs 8 bytes but data_offsets [0, 4] span 4");
    expect_header_fail("o2", "{\"a\":" T_ENTRY("\"BF16\"", "[2,3]", "[0,8]") "}", 8, FMT,
                       "needs 12 bytes");
    /* outside the data section */
    expect_header_fail("o3", "{\"a\":" T_ENTRY("\"F32\"", "[2]", "[0,8]") "}", 4, FMT,
                       "outside the 4-byte data section");
    expect_header_fail("o4", "{\"a\":" T_ENTRY("\"F32\"", "[1]", "[8,4]") "}", 8, FMT,
                       "end before begin");
    /* overlap, hole, trailing bytes */
    expect_header_fail("o5",
                       "{\"a\":" T_ENTRY("\"F32\"", "[2]",
                                         "[0,8]") ",\"b\":" T_ENTRY("\"F32\"", "[2]", "[4,12]") "}",
                       12, FMT, "\"b\" data_offsets [4, 12] overlap the previous tensor \"a\"");
    expect_header_fail("o6",
                       "{\"a\":" T_ENTRY("\"F32\"", "[1]",
                                         "[0,4]") ",\"b\":" T_ENTRY("\"F32\"", "[1]", "[8,12]") "}",
                       12, FMT, "hole: bytes [4, 8) belong to no tensor");
    expect_header_fail("o7", "{\"a\":" T_ENTRY("\"F32\"", "[1]", "[4,8]") "}", 8, FMT,
                       "hole: bytes [0, 4)");
    expect_header_fail("o8", "{\"a\":" T_ENTRY("\"F32\"", "[1]", "[0,4]") "}", 8, FMT,
                       "cover only [0, 4): trailing bytes");
    expect_header_fail("o9", "{}", 3, FMT, "data section is 3 bytes");
    /* same range twice is an overlap too */
    expect_header_fail("o10",
                       "{\"a\":" T_ENTRY("\"F32\"", "[1]",
                                         "[0,4]") ",\"b\":" T_ENTRY("\"F32\"", "[1]", "[0,4]") "}",
                       4, FMT, "overlap");
    /* duplicate names */
    expect_header_fail("o11",
                       "{\"a\":" T_ENTRY("\"F32\"", "[1]",
                                         "[0,4]") ",\"a\":" T_ENTRY("\"F32\"", "[1]", "[4,8]") "}",
                       8, FMT, "duplicate tensor name \"a\"");
    /* valid: out-of-order offsets and zero-size tensors anywhere on the boundaries */
    const char *p = tmp_path("o_ok");
    const char *h = "{\"b\":" T_ENTRY("\"F32\"", "[1]", "[4,8]") ",\"z\":" T_ENTRY(
        "\"F64\"", "[0,5]", "[4,4]") ",\"a\":" T_ENTRY("\"F32\"", "[1]", "[0,4]") "}";
    write_raw(p, UINT64_MAX, h, strlen(h), 8);
    ssd_st_file *f = NULL;
    ssd_error err;
    assert_int_equal(ssd_st_read(p, &f, &err), SSD_OK);
    assert_int_equal(ssd_st_count(f), 3);
    assert_string_equal(ssd_st_name(f, 0), "b");
    const unsigned char *bb = ssd_st_get(f, "b")->data;
    assert_int_equal(bb[0], 4);
    assert_int_equal(ssd_tensor_numel(ssd_st_get(f, "z")), 0);
    ssd_st_free(f);
    remove(p);
}

/* ---- a file written by Python ---- */

static const char *python(void) { return tu_env("SSD_PYTHON_TORCH"); }

static void test_python_file(void **state) {
    (void)state;
    const char *py = python(), *src = tu_env("SSD_SOURCE_DIR");
    if (!py || !src) {
        tu_skip("test_safetensors/python_file", "SSD_PYTHON_TORCH or SSD_SOURCE_DIR not set");
        skip();
    }
    const char *path = tmp_path("from_python.safetensors");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "\"%s\" \"%s/tools/gen_op_goldens.py\" --st-selftest \"%s\"", py, src,
             path);
    if (system(cmd) != 0) {
        char why[4200];
        snprintf(why, sizeof why, "python writer failed to run: %s", cmd);
        tu_skip("test_safetensors/python_file", why);
        skip();
    }
    ssd_st_file *f = NULL;
    ssd_error err;
    ssd_error_clear(&err);
    ssd_status s = ssd_st_read(path, &f, &err);
    if (s != SSD_OK) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(s, SSD_OK);
    assert_int_equal(ssd_st_count(f), 6);
    assert_string_equal(ssd_st_meta(f, "format"), "pt");
    assert_string_equal(ssd_st_meta(f, "writer"), "gen_op_goldens.py");

    const ssd_tensor *t = ssd_st_get(f, "bf16_vec");
    assert_int_equal(t->dtype, SSD_BF16);
    assert_int_equal(t->ndim, 1);
    assert_int_equal(t->shape[0], 3);
    const double bf[3] = {1.0, -2.5, 0.15625};
    for (int i = 0; i < 3; i++)
        assert_true(ssd_tensor_get(t, i) == bf[i]);

    t = ssd_st_get(f, "f32_mat"); /* at byte offset 6 of the data: read via an aligned copy */
    assert_int_equal(t->dtype, SSD_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal((uintptr_t)t->data % 4, 0);
    for (int i = 0; i < 6; i++)
        assert_true(ssd_tensor_get(t, i) == i * 0.5 - 1.0);

    t = ssd_st_get(f, "f64_3d");
    assert_int_equal(t->dtype, SSD_F64);
    assert_int_equal(t->ndim, 3);
    assert_int_equal(t->shape[0] * 100 + t->shape[1] * 10 + t->shape[2], 312);
    for (int i = 0; i < 6; i++)
        assert_true(ssd_tensor_get(t, i) == i / 3.0);

    t = ssd_st_get(f, "i64_vec");
    assert_int_equal(t->dtype, SSD_I64);
    const int64_t iv[5] = {-(INT64_C(1) << 40), -1, 0, 1, INT64_C(1) << 62};
    for (int i = 0; i < 5; i++)
        assert_true(((const int64_t *)t->data)[i] == iv[i]);

    t = ssd_st_get(f, "scalar");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(ssd_tensor_numel(t), 1);
    assert_true(ssd_tensor_get(t, 0) == 3.141592653589793);

    t = ssd_st_get(f, "empty");
    assert_int_equal(t->ndim, 2);
    assert_int_equal(ssd_tensor_numel(t), 0);
    ssd_st_free(f);

    /* and the other way round: a file we write parses with Python's strict json module and
     * its offsets tile the data section */
    sample_set smp;
    make_samples(&smp);
    const ssd_tensor *ts[6] = {&smp.t[0], &smp.t[1], &smp.t[2], &smp.t[3], &smp.t[4], &smp.t[5]};
    const char *k[1] = {"format"}, *v[1] = {"pt"};
    const char *cpath = tmp_path("from_c.safetensors");
    assert_int_equal(ssd_st_write_meta(cpath, ts, 6, k, v, 1, &err), SSD_OK);
    snprintf(
        cmd, sizeof cmd,
        "\"%s\" -c \"import json,struct,sys; b=open(sys.argv[1],'rb').read(); "
        "n=struct.unpack('<Q',b[:8])[0]; h=json.loads(b[8:8+n].decode()); "
        "assert n%%8==0 and h.pop('__metadata__')=={'format':'pt'}; "
        "r=sorted(tuple(e['data_offsets']) for e in h.values()); "
        "assert r[0][0]==0 and r[-1][1]==len(b)-8-n and all(a[1]==c[0] for a,c in zip(r,r[1:])); "
        "assert list(h)[1].startswith('bf16 \\\"quoted\\\"'); "
        "assert struct.unpack('<q',b[8+n+h['i64']['data_offsets'][0]:][:8])[0]==-2**63\" "
        "\"%s\"",
        py, cpath);
    assert_int_equal(system(cmd), 0);
    free_samples(&smp);
    remove(cpath);
    remove(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_meta), cmocka_unit_test(test_roundtrip_no_meta),
        cmocka_unit_test(test_write_errors),   cmocka_unit_test(test_bad_length),
        cmocka_unit_test(test_bad_json),       cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_bad_offsets),    cmocka_unit_test(test_python_file),
    };
    return cmocka_run_group_tests(tests, setup_dir, NULL);
}

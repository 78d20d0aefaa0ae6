/* The anchors and the encoder against the PyTorch oracle (tools/torchref/boxes.py, spec
 * sections 3 and 4), bit for bit:
 *   - `run.py anchors`: xywh and ltrb (8732,4) float32 must equal ssd_anchors_build exactly;
 *   - `run.py encode`: N_CASES random ground-truth sets (B = 0..30: boxes of every size, tiny
 *     ones, exact duplicates, zero width or height, the whole image, anchor-equal boxes, half
 *     anchors (IoU exactly 0.5), the spec's golden box) drawn from an explicit rng stream;
 *     bbox (8732,4) float32 and label (8732) int64 must equal ssd_encode exactly, every case.
 * Exactness is the right bar: both sides evaluate the same float32 operations (IoU, compare,
 * (l+r)/2, r-l) with no reduction whose order could differ, so any difference is a bug.
 * Files are exchanged under tu_scratch_dir. Without python3 + torch the test prints
 * "SKIPPED test_box_torch: <reason>" and passes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "box/anchors.h"
#include "box/box_coder.h"
#include "box/encoder.h"
#include "core/mem.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "testutil.h"

#define A SSD_NUM_ANCHORS
#define N_CASES 50
#define MAX_GT 30

static char g_oracle[2600]; /* quoted "<python>" "<src>/tools/torchref/run.py" */
static char g_dir[1200];    /* scratch directory */
static ssd_anchors g_anchors;

/* Reads PATH (failing the test on error); free with ssd_st_free. */
static ssd_st_file *read_st(const char *path) {
    ssd_st_file *f = NULL;
    ssd_error err;
    if (ssd_st_read(path, &f, &err) != SSD_OK) fail_msg("%s", err.msg);
    return f;
}

/* Tensor NAME of F with the expected dtype and element count, or a test failure. */
static const void *get(const ssd_st_file *f, const char *name, ssd_dtype dt, int64_t numel) {
    const ssd_tensor *t = ssd_st_get(f, name);
    if (!t) fail_msg("oracle output lacks \"%s\"", name);
    assert_int_equal(t->dtype, dt);
    assert_int_equal(ssd_tensor_numel(t), numel);
    return t->data;
}

/* Counts the anchors where ours and torch's (n,4) float32 arrays differ in any bit. */
static int diff_boxes(const char *what, const float (*ours)[4], const float *theirs, int n) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (memcmp(ours[i], theirs + 4 * i, sizeof ours[i]) == 0) continue;
        if (bad++ < 5)
            printf("%s[%d]: ours (%.9g,%.9g,%.9g,%.9g) torch (%.9g,%.9g,%.9g,%.9g)\n", what, i,
                   ours[i][0], ours[i][1], ours[i][2], ours[i][3], theirs[4 * i],
                   theirs[4 * i + 1], theirs[4 * i + 2], theirs[4 * i + 3]);
    }
    return bad;
}

static void test_anchors_bitwise(void **state) {
    (void)state;
    char path[1400], cmd[4400];
    snprintf(path, sizeof path, "%s/anchors.safetensors", g_dir);
    snprintf(cmd, sizeof cmd, "%s anchors --out \"%s\"", g_oracle, path);
    assert_int_equal(tu_system(cmd), 0);
    ssd_st_file *f = read_st(path);
    int bad = diff_boxes("xywh", (const float (*)[4])g_anchors.xywh,
                         get(f, "xywh", SSD_F32, 4 * A), A);
    bad += diff_boxes("ltrb", (const float (*)[4])g_anchors.ltrb,
                      get(f, "ltrb", SSD_F32, 4 * A), A);
    ssd_st_free(f);
    printf("anchors vs torch: %d of %d boxes differ\n", bad, 2 * A);
    assert_int_equal(bad, 0);
}

/* ---- encoder cases ---- */

typedef struct {
    int n;
    float gt[MAX_GT][4];
    int64_t label[MAX_GT];
} gt_case;

/* One GT: a box of random size (sometimes tiny), or a special kind (see the file comment). */
static void random_box(ssd_rng *r, const gt_case *c, int g, float b[4]) {
    uint32_t kind = ssd_rng_below(r, 13);
    float s = kind == 1 ? 1e-3f : 1.0f; /* tiny boxes: sides below 1e-3 */
    float w = s * (0.005f + ssd_rng_uniform(r)), h = s * (0.005f + ssd_rng_uniform(r));
    b[0] = ssd_rng_uniform(r) * (1.0f - (w < 1.0f ? w : 1.0f));
    b[1] = ssd_rng_uniform(r) * (1.0f - (h < 1.0f ? h : 1.0f));
    b[2] = b[0] + w < 1.0f ? b[0] + w : 1.0f;
    b[3] = b[1] + h < 1.0f ? b[1] + h : 1.0f;
    if (kind == 2 && g > 0) memcpy(b, c->gt[ssd_rng_below(r, (uint32_t)g)], 4 * sizeof *b);
    if (kind == 3) b[2] = b[0]; /* zero width */
    if (kind == 4) b[3] = b[1]; /* zero height */
    if (kind == 5) b[0] = b[1] = 0.0f, b[2] = b[3] = 1.0f;
    if (kind == 6) memcpy(b, g_anchors.ltrb[ssd_rng_below(r, A)], 4 * sizeof *b);
    if (kind == 7) b[0] = b[1] = 0.1f, b[2] = 0.4f, b[3] = 0.5f; /* spec 4 golden box */
    if (kind == 8) { /* half an anchor: IoU often exactly 0.5 with it (strict threshold) */
        const float *d = g_anchors.ltrb[ssd_rng_below(r, A)];
        memcpy(b, d, 4 * sizeof *b);
        b[2] = d[0] + (d[2] - d[0]) * 0.5f;
    }
}

static void make_case(int k, gt_case *c) {
    ssd_rng r = ssd_rng_stream(4321, SSD_RNG_DOMAIN_TEST, 0, 0, (uint64_t)k);
    c->n = k == 0 ? 0 : k == 1 ? MAX_GT : (int)ssd_rng_below(&r, MAX_GT + 1);
    for (int g = 0; g < c->n; g++) {
        random_box(&r, c, g, c->gt[g]);
        c->label[g] = 1 + ssd_rng_below(&r, 80);
    }
}

/* Writes gt.<k> (B,4) f32 and labels.<k> (B) i64 for every case. */
static void write_cases(const char *path, gt_case *cases) {
    ssd_tensor *t = ssd_xcalloc(2 * N_CASES, sizeof *t);
    const ssd_tensor **list = ssd_xcalloc(2 * N_CASES, sizeof *list);
    for (int k = 0; k < N_CASES; k++) {
        char name[64];
        int64_t s_gt[2] = {cases[k].n, 4}, s_lab[1] = {cases[k].n};
        snprintf(name, sizeof name, "gt.%d", k);
        t[2 * k] = ssd_tensor_view(cases[k].gt, SSD_F32, 2, s_gt, name);
        snprintf(name, sizeof name, "labels.%d", k);
        t[2 * k + 1] = ssd_tensor_view(cases[k].label, SSD_I64, 1, s_lab, name);
        list[2 * k] = &t[2 * k], list[2 * k + 1] = &t[2 * k + 1];
    }
    ssd_error err;
    if (ssd_st_write(path, list, 2 * N_CASES, &err) != SSD_OK) fail_msg("%s", err.msg);
    free(list);
    free(t);
}

/* Compares case k of the oracle's output with ssd_encode; returns the differing anchors. */
static int check_case(const ssd_st_file *f, int k, const gt_case *c, ssd_encoder_ws *ws) {
    static float box[A][4];
    static int64_t label[A];
    char name[64];
    ssd_encode(&g_anchors, &c->gt[0][0], c->label, c->n, &box[0][0], label, ws);
    snprintf(name, sizeof name, "bbox.%d", k);
    int bad = diff_boxes(name, (const float (*)[4])box, get(f, name, SSD_F32, 4 * A), A);
    snprintf(name, sizeof name, "label.%d", k);
    const int64_t *want = get(f, name, SSD_I64, A);
    int npos = 0;
    for (int i = 0; i < A; i++) {
        npos += label[i] != 0;
        if (label[i] == want[i]) continue;
        if (bad++ < 5) printf("%s[%d]: ours %lld torch %lld\n", name, i, (long long)label[i],
                              (long long)want[i]);
    }
    printf("encode case %d: B=%d positives=%d differing=%d\n", k, c->n, npos, bad);
    return bad;
}

static void test_encode_bitwise(void **state) {
    (void)state;
    gt_case *cases = ssd_xcalloc(N_CASES, sizeof *cases);
    for (int k = 0; k < N_CASES; k++) make_case(k, &cases[k]);
    char in[1400], out[1400], cmd[6000];
    snprintf(in, sizeof in, "%s/encode_in.safetensors", g_dir);
    snprintf(out, sizeof out, "%s/encode_out.safetensors", g_dir);
    write_cases(in, cases);
    snprintf(cmd, sizeof cmd, "%s encode --in \"%s\" --out \"%s\"", g_oracle, in, out);
    assert_int_equal(tu_system(cmd), 0);
    ssd_st_file *f = read_st(out);
    ssd_encoder_ws *ws = ssd_encoder_ws_create(4); /* grows on the B = 30 case */
    int bad = 0;
    for (int k = 0; k < N_CASES; k++) bad += check_case(f, k, &cases[k], ws);
    ssd_encoder_ws_destroy(ws);
    ssd_st_free(f);
    free(cases);
    assert_int_equal(bad, 0);
}

int main(void) {
    int rc = tu_torch_oracle("test_box_torch", g_oracle, sizeof g_oracle);
    if (rc > 0) return 0; /* SKIPPED, already printed */
    if (rc < 0) return 1;
    tu_scratch_dir("test_box_torch", g_dir, sizeof g_dir);
    ssd_anchors_build(&g_anchors);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anchors_bitwise),
        cmocka_unit_test(test_encode_bitwise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

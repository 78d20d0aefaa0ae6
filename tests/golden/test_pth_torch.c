/* PyTorch checkpoints written by torch 1.13 itself (zip, magic-number legacy) and by our
 * tar-container writer (tools/pth_cases.py, checked against torch.load): a ResNet-34
 * state_dict with torchvision's names (random init) in all three containers, plus edge cases
 * (views with offsets and strides, shared storages, stride 0, f16/bf16/f64/i64, empty and
 * 0-d tensors, a Parameter, nested dicts, pickle protocol 4, Python-2 pickles), and the reader
 * paths torch 1.13 cannot write, from our own writers: a big-endian zip (byteorder record,
 * swapped storages; expected values from the little-endian original, torch.load checked to
 * ignore the record), tar files whose tensors point at storage views (views of views too)
 * and 0.3-style magic-number files with view metadata in the persistent ids (both read back
 * by torch.load bit for bit).
 *
 * - the reader detects each container and finds every tensor;
 * - `ssd convert` output, read back in Python, equals torch.load's tensors bit for bit
 *   (names, order, dtype, shape, bytes);
 * - the pretrained backbone lands in the model under the spec 1.4 mapping bit for bit,
 *   non-backbone parameters are untouched, and bad files are refused leaving the model as
 *   it was; `ssd step --pretrained-backbone` reports what it loaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "model/pretrained.h"
#include "testutil.h"

static char g_dir[1024], g_py[1024], g_src[1024], g_ssd[1200];
static int g_skip;

static const char *path_of(const char *name) {
    static char buf[8][1200];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static const struct {
    const char *name;
    ssd_pth_container kind;
    int tensors;
} k_cases[] = {
    {"resnet34_zip", SSD_PTH_ZIP, 218},     {"resnet34_legacy", SSD_PTH_LEGACY, 218},
    {"resnet34_tar", SSD_PTH_TAR, 182},     {"edge_zip", SSD_PTH_ZIP, 19},
    {"edge_zip_p4", SSD_PTH_ZIP, 19},       {"edge_legacy", SSD_PTH_LEGACY, 19},
    {"edge_tar_py2", SSD_PTH_TAR, 17},      {"edge_tar_py3", SSD_PTH_TAR, 17},
    {"edge_zip_big_endian", SSD_PTH_ZIP, 19}, {"views_tar_py2", SSD_PTH_TAR, 26},
    {"views_tar_py3", SSD_PTH_TAR, 26},     {"views_legacy_py2", SSD_PTH_LEGACY, 26},
    {"views_legacy_py3", SSD_PTH_LEGACY, 26},
};
#define NCASES ((int)(sizeof k_cases / sizeof k_cases[0]))

static int setup(void **state) {
    (void)state;
    char prefix[2400];
    g_skip = tu_torch_oracle("test_pth_torch", prefix, sizeof prefix);
    if (g_skip) return 0;
    snprintf(g_py, sizeof g_py, "%s", tu_env("SSD_PYTHON_TORCH"));
    snprintf(g_src, sizeof g_src, "%s", tu_env("SSD_SOURCE_DIR"));
    snprintf(g_ssd, sizeof g_ssd, "%s/ssd", tu_env("SSD_BUILD_DIR"));
    tu_scratch_dir("test_pth_torch", g_dir, sizeof g_dir);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "\"%s\" \"%s/tools/pth_cases.py\" write \"%s\"", g_py, g_src, g_dir);
    return tu_system(cmd) == 0 ? 0 : -1; /* includes torch.load of our tar files */
}

static void test_containers(void **state) {
    (void)state;
    if (g_skip) skip();
    for (int c = 0; c < NCASES; c++) {
        char file[64];
        snprintf(file, sizeof file, "%s.pth", k_cases[c].name);
        ssd_pth_file *f = NULL;
        ssd_error err;
        ssd_status st = ssd_pth_read(path_of(file), &f, &err);
        if (st) printf("%s\n", err.msg);
        assert_int_equal(st, SSD_OK);
        printf("%-19s %s container, %d tensors\n", k_cases[c].name,
               ssd_pth_container_name(ssd_pth_kind(f)), ssd_pth_count(f));
        assert_int_equal(ssd_pth_kind(f), k_cases[c].kind);
        assert_int_equal(ssd_pth_count(f), k_cases[c].tensors);
        if (strncmp(k_cases[c].name, "resnet34", 8) == 0) { /* spec section 6 totals */
            int64_t f32 = 0;
            for (int i = 0; i < ssd_pth_count(f); i++)
                if (ssd_pth_at(f, i)->dtype == SSD_PTH_F32) f32 += ssd_pth_at(f, i)->numel;
            assert_int_equal(f32, 21814696);
            assert_non_null(ssd_pth_get(f, "layer4.2.bn2.running_var"));
        }
        ssd_pth_free(f);
    }
}

static void test_convert_bit_exact(void **state) {
    (void)state;
    if (g_skip) skip();
    char cmd[4096];
    for (int c = 0; c < NCASES; c++) {
        char in[64], out[64];
        snprintf(in, sizeof in, "%s.pth", k_cases[c].name);
        snprintf(out, sizeof out, "%s.safetensors", k_cases[c].name);
        snprintf(cmd, sizeof cmd, "\"%s\" convert \"%s\" \"%s\"", g_ssd, path_of(in), path_of(out));
        assert_int_equal(tu_system(cmd), 0);
    }
    snprintf(cmd, sizeof cmd, "\"%s\" \"%s/tools/pth_cases.py\" check \"%s\"", g_py, g_src, g_dir);
    assert_int_equal(tu_system(cmd), 0);
}

/* Host f32 copies of the model's parameters and buffers, by row. */
static void snapshot(ssd_model *m, ssd_tensor *p, ssd_tensor *b) {
    *p = ssd_backend_download_as(m->be, &m->params, SSD_F32);
    *b = ssd_backend_download_as(m->be, &m->buffers, SSD_F32);
}

/* A fresh f32 model on `ref` and its parameters/buffers before (p0, b0) and after (p1, b1). */
typedef struct fixture {
    ssd_backend *be;
    ssd_model *m;
    ssd_tensor p0, b0, p1, b1;
} fixture;

static void fixture_open(fixture *x) {
    ssd_error err;
    assert_int_equal(ssd_backend_create("ref", &x->be, &err), SSD_OK);
    x->m = ssd_model_create(x->be, SSD_F32, 5);
    snapshot(x->m, &x->p0, &x->b0);
}

static void fixture_close(fixture *x) {
    ssd_tensor *all[] = {&x->p0, &x->b0, &x->p1, &x->b1};
    for (int i = 0; i < 4; i++) ssd_tensor_free(all[i]);
    ssd_model_destroy(x->m);
    ssd_backend_destroy(x->be);
}

static void expect_backbone(const char *file) {
    fixture x;
    fixture_open(&x);
    ssd_model *m = x.m;
    ssd_error err;
    ssd_pretrained_report rep;
    ssd_status st = ssd_model_load_pretrained_backbone(m, path_of(file), &rep, &err);
    if (st) printf("%s\n", err.msg);
    assert_int_equal(st, SSD_OK);
    printf("%s: %s container, loaded %d (%lld values), skipped %d unused + %d counters\n", file,
           rep.container, rep.loaded, (long long)rep.loaded_values, rep.skipped_unused,
           rep.skipped_counters);
    assert_int_equal(rep.loaded, 145);
    assert_int_equal(rep.loaded_values, 8180160); /* spec section 6 */
    assert_int_equal(rep.skipped_unused, 15 + 2 * 10 + 2); /* layer4 blocks 0-2 + fc */
    snapshot(m, &x.p1, &x.b1);
    ssd_pth_file *f = NULL;
    assert_int_equal(ssd_pth_read(path_of(file), &f, &err), SSD_OK);
    int seen = 0;
    const ssd_param_table *t = &m->tab;
    for (int pass = 0; pass < 2; pass++) {
        int n = pass ? t->n_buffers : t->n_params;
        for (int k = 0; k < n; k++) {
            const ssd_param_info *info = pass ? &t->buffers[k] : &t->params[k];
            const float *now = (const float *)(pass ? x.b1.data : x.p1.data) + info->offset;
            const float *before = (const float *)(pass ? x.b0.data : x.p0.data) + info->offset;
            if (strncmp(info->name, "model.", 6) != 0) { /* extras and heads: untouched */
                assert_memory_equal(now, before, (size_t)info->numel * 4);
                continue;
            }
            const ssd_pth_tensor *src = NULL;
            char mapped[SSD_PTH_MAX_NAME];
            for (int i = 0; i < ssd_pth_count(f) && !src; i++)
                if (ssd_backbone_map_name(ssd_pth_at(f, i)->name, mapped, sizeof mapped) == 1 &&
                    strcmp(mapped, info->name) == 0)
                    src = ssd_pth_at(f, i);
            assert_non_null(src);
            assert_int_equal(src->numel, info->numel);
            assert_memory_equal(now, src->data, (size_t)info->numel * 4);
            seen++;
        }
    }
    assert_int_equal(seen, 145);
    ssd_pth_free(f);
    fixture_close(&x);
}

static void test_pretrained_backbone(void **state) {
    (void)state;
    if (g_skip) skip();
    expect_backbone("resnet34_tar.pth");
    expect_backbone("resnet34_zip.pth");
    expect_backbone("resnet34_legacy.pth");
}

static void expect_refused(const char *file, const char *needle) {
    fixture x;
    fixture_open(&x);
    ssd_error err;
    ssd_status st = ssd_model_load_pretrained_backbone(x.m, path_of(file), NULL, &err);
    printf("%s -> %s\n", file, err.msg);
    assert_int_equal(st, SSD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, file));
    assert_non_null(strstr(err.msg, needle));
    snapshot(x.m, &x.p1, &x.b1);
    assert_memory_equal(x.p0.data, x.p1.data, ssd_tensor_nbytes(&x.p0));
    assert_memory_equal(x.b0.data, x.b1.data, ssd_tensor_nbytes(&x.b0));
    fixture_close(&x);
}

static void test_pretrained_refusals(void **state) {
    (void)state;
    if (g_skip) skip();
    expect_refused("bad_shape.pth", "'layer2.1.conv1.weight' has shape (128,128,1,1)");
    expect_refused("missing_tensor.pth", "'model.layer2.0.5.bn2.running_var' has no tensor");
    expect_refused("edge_zip.pth", "'arange' is not a key of torchvision's ResNet-34");
}

/* `ssd step --pretrained-backbone`: loads and reports; a bad file is exit 1 and no output. */
static void test_step_flag(void **state) {
    (void)state;
    if (g_skip) skip();
    int64_t is[4] = {1, 3, 300, 300}, bs[3] = {1, 8732, 4}, ls[2] = {1, 8732};
    ssd_tensor im = ssd_tensor_alloc_host(SSD_F32, 4, is, "images");
    ssd_tensor bb = ssd_tensor_alloc_host(SSD_F32, 3, bs, "bboxes");
    ssd_tensor lb = ssd_tensor_alloc_host(SSD_I64, 2, ls, "labels");
    for (int64_t i = 0; i < ssd_tensor_numel(&bb); i++) ((float *)bb.data)[i] = 0.5f;
    const ssd_tensor *list[] = {&im, &bb, &lb};
    ssd_error err;
    assert_int_equal(ssd_st_write(path_of("batch.safetensors"), list, 3, &err), SSD_OK);
    ssd_tensor_free(&im), ssd_tensor_free(&bb), ssd_tensor_free(&lb);
    const char *be = ssd_backend_default_name();
    char cmd[4096];
    unlink(path_of("out.safetensors"));
    snprintf(cmd, sizeof cmd,
             "\"%s\" step --backend %s --batch \"%s\" --out \"%s\" --pretrained-backbone \"%s\" "
             "2>&1 | tee \"%s\" && grep -q 'loaded 145 tensors (8180160 values' \"%s\"", g_ssd, be,
             path_of("batch.safetensors"), path_of("out.safetensors"), path_of("resnet34_tar.pth"),
             path_of("step.log"), path_of("step.log"));
    assert_int_equal(tu_system(cmd), 0);
    assert_int_equal(access(path_of("out.safetensors"), F_OK), 0);
    unlink(path_of("out2.safetensors"));
    snprintf(cmd, sizeof cmd,
             "\"%s\" step --backend %s --batch \"%s\" --out \"%s\" --pretrained-backbone \"%s\"; "
             "test $? -eq 1", g_ssd, be, path_of("batch.safetensors"), path_of("out2.safetensors"),
             path_of("bad_shape.pth"));
    assert_int_equal(tu_system(cmd), 0);
    assert_int_not_equal(access(path_of("out2.safetensors"), F_OK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_containers),         cmocka_unit_test(test_convert_bit_exact),
        cmocka_unit_test(test_pretrained_backbone), cmocka_unit_test(test_pretrained_refusals),
        cmocka_unit_test(test_step_flag),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

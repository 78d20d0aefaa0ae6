/* Unit tests of src/model (no Python needed): the parameter table against the counts, names
 * and shapes of spec/ssd-reference.md 1.4 and 2, the init distributions of spec 1.3/2.4,
 * init determinism, model load errors (each names the file and the tensor), export names, the
 * copy_rows op against a brute-force copy, and the output layout of spec 2.3 checked by
 * driving each head's bias alone through a forward pass. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "box/anchors.h"
#include "core/mem.h"
#include "io/safetensors.h"
#include "model/params.h"
#include "model/ssd_model.h"
#include "testutil.h"

static void test_table_counts(void **state) {
    (void)state;
    ssd_param_table t;
    ssd_param_table_build(&t);
    assert_int_equal(t.n_params, 131);
    assert_int_equal(t.params_numel, 19972534); /* spec 1.4 "total trainable" */
    assert_int_equal(t.net.n_bn, 29);
    assert_int_equal(t.n_buffers, 58);
    /* per-part counts of spec 1.4: backbone, extras, loc heads, conf heads */
    int64_t part[4] = {0, 0, 0, 0};
    for (int i = 0; i < t.n_params; i++) {
        const char *n = t.params[i].name;
        int k = strncmp(n, "model.", 6) == 0 ? 0
                : strncmp(n, "additional_blocks.", 18) == 0 ? 1
                : strncmp(n, "loc.", 4) == 0 ? 2
                : 3;
        part[k] += t.params[i].numel;
        if (i > 0) assert_int_equal(t.params[i].offset, t.params[i - 1].offset + t.params[i - 1].numel);
    }
    assert_int_equal(part[0], 8170304);
    assert_int_equal(part[1], 3574400);
    assert_int_equal(part[2], 387192);
    assert_int_equal(part[3], 7840638);
    ssd_param_table_free(&t);
}

static void expect_shape(const ssd_param_table *t, const char *name, int ndim, int64_t a,
                         int64_t b, int64_t c, int64_t d) {
    int i = ssd_param_find(t, name);
    if (i < 0) fail_msg("parameter %s missing", name);
    const ssd_param_info *r = &t->params[i];
    int64_t want[4] = {a, b, c, d};
    assert_int_equal(r->ndim, ndim);
    for (int k = 0; k < ndim; k++) assert_int_equal(r->shape[k], want[k]);
}

static void test_table_names(void **state) {
    (void)state;
    ssd_param_table t;
    ssd_param_table_build(&t);
    /* spec 1.4 key mapping */
    expect_shape(&t, "model.layer1.0.weight", 4, 64, 3, 7, 7);
    expect_shape(&t, "model.layer1.1.weight", 1, 64, 0, 0, 0);
    expect_shape(&t, "model.layer1.4.2.conv2.weight", 4, 64, 64, 3, 3);
    expect_shape(&t, "model.layer1.5.0.conv1.weight", 4, 128, 64, 3, 3);
    expect_shape(&t, "model.layer1.5.3.conv2.weight", 4, 128, 128, 3, 3);
    expect_shape(&t, "model.layer1.5.0.downsample.0.weight", 4, 128, 64, 1, 1);
    expect_shape(&t, "model.layer1.5.0.downsample.1.bias", 1, 128, 0, 0, 0);
    expect_shape(&t, "model.layer2.0.0.conv1.weight", 4, 256, 128, 3, 3);
    expect_shape(&t, "model.layer2.0.5.conv1.weight", 4, 256, 256, 3, 3);
    expect_shape(&t, "model.layer2.0.0.downsample.0.weight", 4, 256, 128, 1, 1);
    /* spec 2.1/2.2 */
    expect_shape(&t, "additional_blocks.0.0.weight", 4, 256, 256, 1, 1);
    expect_shape(&t, "additional_blocks.0.2.weight", 4, 512, 256, 3, 3);
    expect_shape(&t, "additional_blocks.4.2.bias", 1, 256, 0, 0, 0);
    expect_shape(&t, "loc.0.weight", 4, 16, 256, 3, 3);
    expect_shape(&t, "loc.1.weight", 4, 24, 512, 3, 3);
    expect_shape(&t, "conf.2.weight", 4, 486, 512, 3, 3);
    expect_shape(&t, "conf.5.bias", 1, 324, 0, 0, 0);
    assert_true(ssd_param_find(&t, "model.layer1.4.0.downsample.0.weight") < 0);
    assert_true(ssd_param_find(&t, "model.layer1.0.bias") < 0); /* convs have no bias */
    assert_true(ssd_buffer_find(&t, "model.layer2.0.5.bn2.running_var") >= 0);
    assert_true(ssd_buffer_find(&t, "model.layer1.5.0.downsample.1.running_mean") >= 0);
    /* layer3 strides are 1 everywhere (the reference's modifier), layer2 block 0 stride 2 */
    const ssd_net_layers *n = &t.net;
    assert_int_equal(n->blocks[3].conv1.desc.stride_h, 2);
    assert_int_equal(n->blocks[3].ds_conv.desc.stride_h, 2);
    assert_int_equal(n->blocks[7].conv1.desc.stride_h, 1);
    assert_int_equal(n->blocks[7].ds_conv.desc.stride_h, 1);
    assert_true(n->blocks[7].has_ds && n->blocks[3].has_ds && !n->blocks[0].has_ds);
    assert_int_equal(n->extra[3][1].desc.pad_h, 0);
    assert_int_equal(n->extra[2][1].desc.stride_h, 2);
    ssd_param_table_free(&t);
}

/* Mean and standard deviation of row `name` of an initialised f64 parameter array. */
static void row_stats(const ssd_param_table *t, const double *p, const char *name, double *mean,
                      double *sd, double *maxabs) {
    const ssd_param_info *r = &t->params[ssd_param_find(t, name)];
    double s = 0, s2 = 0, mx = 0;
    for (int64_t i = 0; i < r->numel; i++) {
        double v = p[r->offset + i];
        s += v, s2 += v * v, mx = fabs(v) > mx ? fabs(v) : mx;
    }
    *mean = s / (double)r->numel;
    *sd = sqrt(s2 / (double)r->numel - *mean * *mean);
    *maxabs = mx;
}

static void test_init(void **state) {
    (void)state;
    ssd_param_table t;
    ssd_param_table_build(&t);
    double *p = ssd_xmalloc((size_t)t.params_numel * sizeof *p);
    double *b = ssd_xmalloc((size_t)t.buffers_numel * sizeof *b);
    ssd_param_table_init(&t, 7, p, b);
    double mean, sd, mx;
    /* kaiming normal fan_out: sd = sqrt(2/(256*9)) = 0.029463; 589,824 samples -> the sample
     * sd is within 0.5% with overwhelming probability */
    row_stats(&t, p, "model.layer2.0.3.conv1.weight", &mean, &sd, &mx);
    assert_true(fabs(sd / sqrt(2.0 / 2304) - 1) < 5e-3);
    assert_true(fabs(mean) < 1e-3);
    /* xavier uniform: conf.0 bound 0.033903 (spec 2.4); sd of U(-b,b) = b/sqrt(3) */
    row_stats(&t, p, "conf.0.weight", &mean, &sd, &mx);
    assert_true(mx <= 0.033903 + 1e-6 && mx > 0.0339);
    assert_true(fabs(sd / (0.033903 / sqrt(3.0)) - 1) < 5e-3);
    row_stats(&t, p, "additional_blocks.0.0.weight", &mean, &sd, &mx);
    assert_true(mx <= 0.108253 + 1e-6 && mx > 0.108);
    /* default conv bias: U(-1/sqrt(fan_in), ..): loc.0 fan_in 2304 -> 0.0208333 */
    row_stats(&t, p, "loc.0.bias", &mean, &sd, &mx);
    assert_true(mx <= 1.0 / 48.0 && mx > 0.015);
    /* BN: weight 1, bias 0, running mean 0, var 1 */
    row_stats(&t, p, "model.layer1.1.weight", &mean, &sd, &mx);
    assert_true(mean == 1.0 && sd == 0.0);
    row_stats(&t, p, "model.layer1.1.bias", &mean, &sd, &mx);
    assert_true(mx == 0.0);
    int rv = ssd_buffer_find(&t, "model.layer1.1.running_var");
    assert_true(b[t.buffers[rv].offset] == 1.0);
    /* determinism: same seed -> same values; another seed -> different values */
    double *p2 = ssd_xmalloc((size_t)t.params_numel * sizeof *p2);
    ssd_param_table_init(&t, 7, p2, b);
    assert_memory_equal(p, p2, (size_t)t.params_numel * sizeof *p);
    ssd_param_table_init(&t, 8, p2, b);
    int w = ssd_param_find(&t, "conf.0.weight");
    assert_true(p[t.params[w].offset] != p2[t.params[w].offset]);
    free(p);
    free(p2);
    free(b);
    ssd_param_table_free(&t);
}

/* copy_rows against a brute-force copy, on every backend. */
static void test_copy_rows(void **state) {
    (void)state;
    for (const char *const *name = ssd_backend_names(); *name; name++) {
        ssd_backend *be = NULL;
        ssd_error err;
        if (!strcmp(*name, "cuda") && ssd_backend_create(*name, &be, &err) != SSD_OK) {
            printf("copy_rows: cuda not run here: %s\n", err.msg);
            continue;
        }
        if (!be) assert_int_equal(ssd_backend_create(*name, &be, &err), SSD_OK);
        int64_t ns = 7 * 13, nd = 9 * 20;
        ssd_tensor hs = ssd_tensor_alloc_host(SSD_F32, 1, &ns, "src");
        ssd_tensor hd = ssd_tensor_alloc_host(SSD_F32, 1, &nd, "dst");
        for (int64_t i = 0; i < ns; i++) ssd_tensor_set(&hs, i, (double)i + 0.5);
        for (int64_t i = 0; i < nd; i++) ssd_tensor_set(&hd, i, -1.0);
        ssd_tensor s = tu_to_backend(be, &hs, SSD_F32), d = tu_to_backend(be, &hd, SSD_F32);
        /* 6 rows of 11 from src (ld 13, offset 2) to dst (ld 20, offset 5) */
        ssd_copy_rows(be, &d, 5, 20, &s, 2, 13, 6, 11);
        ssd_tensor back = tu_to_host(be, &d, SSD_F32);
        for (int64_t i = 0; i < nd; i++) {
            int64_t r = (i - 5) / 20, c = (i - 5) % 20;
            double want = (i >= 5 && r < 6 && c < 11) ? 2 + r * 13 + c + 0.5 : -1.0;
            assert_true(ssd_tensor_get(&back, i) == want);
        }
        ssd_tensor_free(&back);
        ssd_tensor_free(&hs);
        ssd_tensor_free(&hd);
        ssd_backend_tensor_free(be, &s);
        ssd_backend_tensor_free(be, &d);
        ssd_backend_destroy(be);
    }
}

/* ---- load errors ---- */

static char g_dir[1024];

static const char *tmp_path(const char *name) {
    static char buf[1200];
    snprintf(buf, sizeof buf, "%s/%s", g_dir, name);
    return buf;
}

/* Writes the model's parameters + buffers to PATH, with one change: drop tensor `drop`,
 * reshape tensor `bad_shape` to (1), or add tensor `extra`. */
static void write_weights(ssd_model *m, const char *path, const char *drop, const char *bad_shape,
                          const char *extra) {
    int np, nb;
    ssd_tensor *p = ssd_model_export(m, 'p', SSD_F32, NULL, &np);
    ssd_tensor *b = ssd_model_export(m, 'b', SSD_F32, NULL, &nb);
    const ssd_tensor **list = ssd_xcalloc((size_t)(np + nb + 1), sizeof *list);
    int k = 0;
    int64_t one = 1;
    float zero = 0;
    ssd_tensor small = ssd_tensor_view(&zero, SSD_F32, 1, &one, bad_shape ? bad_shape : "x");
    ssd_tensor more = ssd_tensor_view(&zero, SSD_F32, 1, &one, extra ? extra : "x");
    for (int i = 0; i < np + nb; i++) {
        const ssd_tensor *t = i < np ? &p[i] : &b[i - np];
        if (drop && strcmp(t->name, drop) == 0) continue;
        list[k++] = (bad_shape && strcmp(t->name, bad_shape) == 0) ? &small : t;
    }
    if (extra) list[k++] = &more;
    ssd_error err;
    assert_int_equal(ssd_st_write(path, list, k, &err), SSD_OK);
    for (int i = 0; i < np; i++) ssd_tensor_free(&p[i]);
    for (int i = 0; i < nb; i++) ssd_tensor_free(&b[i]);
    free(p);
    free(b);
    free(list);
}

static ssd_status try_load(ssd_model *m, const char *path, bool strict, ssd_error *err) {
    ssd_st_file *f = NULL;
    ssd_status st = ssd_st_read(path, &f, err);
    if (st == SSD_OK) st = ssd_model_load(m, f, path, strict, err);
    ssd_st_free(f);
    return st;
}

static void test_load(void **state) {
    (void)state;
    tu_scratch_dir("test_model", g_dir, sizeof g_dir);
    ssd_backend *be = NULL;
    ssd_error err;
    assert_int_equal(ssd_backend_create("ref", &be, &err), SSD_OK);
    ssd_model *m = ssd_model_create(be, SSD_F32, 3);
    ssd_model *m2 = ssd_model_create(be, SSD_F32, 4);
    m->num_batches_tracked = 5;
    /* round trip: m2 loads m's weights exactly, counter included */
    write_weights(m, tmp_path("ok.safetensors"), NULL, NULL, NULL);
    assert_int_equal(try_load(m2, tmp_path("ok.safetensors"), true, &err), SSD_OK);
    assert_memory_equal(m->params.data, m2->params.data, ssd_tensor_nbytes(&m->params));
    assert_memory_equal(m->buffers.data, m2->buffers.data, ssd_tensor_nbytes(&m->buffers));
    assert_int_equal(m2->num_batches_tracked, 5);
    /* missing parameter */
    write_weights(m, tmp_path("missing.safetensors"), "conf.3.weight", NULL, NULL);
    assert_int_equal(try_load(m2, tmp_path("missing.safetensors"), true, &err), SSD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "missing tensor 'conf.3.weight'"));
    assert_non_null(strstr(err.msg, "missing.safetensors"));
    /* missing buffer */
    write_weights(m, tmp_path("nobuf.safetensors"), "model.layer1.1.running_var", NULL, NULL);
    assert_int_equal(try_load(m2, tmp_path("nobuf.safetensors"), true, &err), SSD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "model.layer1.1.running_var"));
    /* wrong shape */
    write_weights(m, tmp_path("shape.safetensors"), NULL, "loc.2.bias", NULL);
    assert_int_equal(try_load(m2, tmp_path("shape.safetensors"), true, &err), SSD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "'loc.2.bias' has shape (1), expected (24)"));
    /* unknown name: an error only when strict */
    write_weights(m, tmp_path("extra.safetensors"), NULL, NULL, "fc.weight");
    assert_int_equal(try_load(m2, tmp_path("extra.safetensors"), true, &err), SSD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "'fc.weight' is not a parameter"));
    assert_int_equal(try_load(m2, tmp_path("extra.safetensors"), false, &err), SSD_OK);
    ssd_model_destroy(m);
    ssd_model_destroy(m2);
    ssd_backend_destroy(be);
}

/* Output layout (spec 2.3): with every weight zero, loc/conf are the head biases. Channel
 * j*nd + d of level i must land at row j, column offset_i + d*s*s + y*s + x. */
static void test_output_layout(void **state) {
    (void)state;
    ssd_backend *be = NULL;
    ssd_error err;
    assert_int_equal(ssd_backend_create(ssd_backend_default_name(), &be, &err), SSD_OK);
    ssd_model *m = ssd_model_create(be, SSD_F32, 1);
    ssd_fill(be, &m->params, 0.0);
    const ssd_net_layers *n = &m->tab.net;
    for (int i = 0; i < SSD_NUM_LEVELS; i++) {
        ssd_tensor *lb = &m->p[n->loc[i].b], *cb = &m->p[n->conf[i].b];
        ssd_tensor h = ssd_tensor_alloc_host(SSD_F32, 1, lb->shape, "b");
        for (int64_t c = 0; c < lb->shape[0]; c++) ssd_tensor_set(&h, c, 1000 * i + c);
        ssd_backend_upload(be, lb, &h);
        ssd_tensor_free(&h);
        h = ssd_tensor_alloc_host(SSD_F32, 1, cb->shape, "b");
        for (int64_t c = 0; c < cb->shape[0]; c++) ssd_tensor_set(&h, c, 1000 * i + c);
        ssd_backend_upload(be, cb, &h);
        ssd_tensor_free(&h);
    }
    ssd_acts *a = ssd_acts_create(m, 1);
    int64_t shape[4] = {1, 3, 300, 300};
    ssd_tensor img = ssd_backend_tensor_alloc(be, SSD_F32, 4, shape, "images");
    ssd_model_forward(m, a, &img, false);
    ssd_tensor loc = tu_to_host(be, &a->loc, SSD_F32), conf = tu_to_host(be, &a->conf, SSD_F32);
    for (int i = 0; i < SSD_NUM_LEVELS; i++) {
        const ssd_level_geom *g = ssd_level(i);
        int ss = g->size * g->size;
        for (int d = 0; d < g->per_loc; d++)
            for (int p = 0; p < ss; p += 7) {
                int64_t col = g->offset + d * ss + p;
                for (int j = 0; j < 4; j++)
                    assert_true(ssd_tensor_get(&loc, j * SSD_NUM_ANCHORS + col) == 1000 * i + j * g->per_loc + d);
                for (int k = 0; k < SSD_NUM_CLASSES; k += 8)
                    assert_true(ssd_tensor_get(&conf, k * SSD_NUM_ANCHORS + col) == 1000 * i + k * g->per_loc + d);
            }
    }
    ssd_tensor_free(&loc);
    ssd_tensor_free(&conf);
    ssd_backend_tensor_free(be, &img);
    ssd_acts_destroy(m, a);
    ssd_model_destroy(m);
    ssd_backend_destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_counts), cmocka_unit_test(test_table_names),
        cmocka_unit_test(test_init),         cmocka_unit_test(test_copy_rows),
        cmocka_unit_test(test_load),         cmocka_unit_test(test_output_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* train/checkpoint -> PyTorch: "the checkpoint loads into the PyTorch reference model (tools/)
 * and gives the same loc/conf" (issue 7).
 *
 * cpu backend (f32): a model with non-trivial state -- two real training steps at batch 1
 * (train-mode forward on noise images, pseudo-random dloc/dconf, backward, SGD with momentum and
 * weight decay), so the weights, the momentum, the BN running statistics and
 * num_batches_tracked all differ from their init (asserted) -- is saved with
 * ssd_checkpoint_save. An inference-mode forward (running statistics) then runs on two fixed
 * images (a real COCO photo through ssd_augment_val, and uniform noise over the normalised
 * range) and images + loc + conf go to a safetensors file. tools/checkpoint_forward_oracle.py
 * (under $SSD_PYTHON_TORCH) reads the checkpoint with its own reader, drops optimizer.*, builds
 * tools/torchref/model.py's SSD300 in the file's dtype, load_state_dict(strict=True), .eval(),
 * forwards the images and compares: the normalised max error max|ours - torch| / max|torch| of
 * loc and of conf must be within the oracle's per-dtype tolerance (f32 3e-5, f64 1e-10; the
 * reasons are in the oracle's docstring; the measured values are printed here: ~4e-6 and
 * ~1e-14).
 *
 * ref backend (f64): the same with one image. A ref training step costs ~30 s at batch 1, so the
 * ref model starts from the trained cpu checkpoint (parameters, BN statistics and counter
 * converted to f64 by ssd_model_load) and takes one f64 SGD step from pseudo-random gradients,
 * which makes the momentum valid and the weights genuinely f64. Its plain-C f64 forward (~8 s)
 * and Debian torch's f64 convolutions (netlib BLAS, ~12 s) are the slow part of the test. In a
 * build without the cpu backend it trains on ref itself (one step at batch 1).
 *
 * The test can fail: copies of the f32 checkpoint with one BN running_var entry scaled by 1.1
 * (one statistic of 9,856), with conf.4.weight and conf.5.weight exchanged (same shape, so
 * strict loading still succeeds), and our conf output with one entry (of 1.4 million) moved by
 * 10x the tolerance times max|conf| must each make the oracle report FAIL.
 *
 * Without python3 + torch (or without the cpu backend for the cpu case) the test prints
 * SKIPPED with the reason and calls cmocka's skip(). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../testutil.h"
#include "core/mem.h"
#include "core/timer.h"
#include "data/augment.h"
#include "data/jpeg.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"

#define PHOTO "tests/fixtures/augment/coco_val2017_000000343937.jpg"
/* the normalised range of ToTensor + Normalize(ImageNet mean/std): (0 - 0.485) / 0.229 ..
 * (1 - 0.406) / 0.225 */
#define IMG_LO (-2.118)
#define IMG_HI 2.640

static char g_dir[1024];
/* The trained f32 checkpoint written by test_cpu_f32, which test_ref_f64 starts from. */
static char g_cpu_ckpt[1300];
static bool g_have_cpu_ckpt;

static const char *scratch(const char *name) {
    static char buf[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static int group_setup(void **state) {
    (void)state;
    if (!tu_scratch_dir("test_checkpoint_torch", g_dir, sizeof g_dir))
        return -1;
    snprintf(g_cpu_ckpt, sizeof g_cpu_ckpt, "%s/cpu.safetensors", g_dir);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    unlink(g_cpu_ckpt);
    return 0;
}

/* n host images (n,3,300,300) in dt: image 0 the photo through the validation transform
 * (resize to 300x300, ToTensor, Normalize), the others uniform noise over the normalised range. */
static ssd_tensor eval_images(int n, ssd_dtype dt) {
    char src[1024], path[1200];
    assert_int_equal(tu_source_dir(src, sizeof src), 0);
    snprintf(path, sizeof path, "%s/%s", src, PHOTO);
    ssd_jpeg *j = ssd_jpeg_create();
    ssd_image im = {0};
    ssd_error err = {0};
    if (ssd_jpeg_decode_file(j, path, &im, &err) != SSD_OK)
        fail_msg("%s", err.msg);
    const int64_t per = 3 * 300 * 300;
    float *chw = ssd_xmalloc((size_t)per * sizeof *chw);
    ssd_augment_ws *ws = ssd_augment_ws_create();
    ssd_augment_val(ws, &im, chw);
    ssd_tensor t = ssd_tensor_alloc_host4(dt, n, 3, 300, 300, "images");
    for (int64_t i = 0; i < per; i++)
        ssd_tensor_set(&t, i, chw[i]);
    ssd_rng r = ssd_rng_stream(77, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    for (int64_t i = per; i < n * per; i++)
        ssd_tensor_set(&t, i, ssd_rng_range(&r, IMG_LO, IMG_HI));
    ssd_augment_ws_destroy(ws);
    free(chw);
    ssd_image_free(&im);
    ssd_jpeg_destroy(j);
    return t;
}

/* nsteps real training steps at batch size `batch` on noise images: zero_grad, train-mode
 * forward (batch statistics; running statistics and the counter move), dloc and dconf
 * ~ U(-1e-4, 1e-4), backward, SGD (lr 0.05, momentum 0.9, weight decay 5e-4). */
static void train(ssd_model *m, int batch, int nsteps, uint32_t seed) {
    ssd_backend *be = m->be;
    ssd_acts *a = ssd_acts_create(m, batch);
    ssd_rng r = ssd_rng_stream(seed, SSD_RNG_DOMAIN_TEST, 0, 0, 1);
    ssd_tensor img_h = ssd_tensor_alloc_host4(m->dtype, batch, 3, 300, 300, "images");
    ssd_tensor img = ssd_backend_tensor_alloc(be, m->dtype, 4, img_h.shape, "images");
    ssd_tensor dl = ssd_tensor_alloc_host(m->dtype, a->dloc.ndim, a->dloc.shape, "dloc");
    ssd_tensor dc = ssd_tensor_alloc_host(m->dtype, a->dconf.ndim, a->dconf.shape, "dconf");
    for (int s = 0; s < nsteps; s++) {
        tu_fill_uniform(&img_h, &r, IMG_LO, IMG_HI);
        ssd_backend_upload(be, &img, &img_h);
        ssd_model_zero_grad(m);
        ssd_model_forward(m, a, &img, true);
        tu_fill_uniform(&dl, &r, -1e-4, 1e-4);
        tu_fill_uniform(&dc, &r, -1e-4, 1e-4);
        ssd_backend_upload(be, &a->dloc, &dl);
        ssd_backend_upload(be, &a->dconf, &dc);
        ssd_model_backward(m, a, &img);
        ssd_model_sgd_step(m, 0.05, 0.9, 5e-4);
    }
    ssd_model_zero_grad(m); /* a checkpoint is taken between steps */
    ssd_tensor_free(&dl);
    ssd_tensor_free(&dc);
    ssd_tensor_free(&img_h);
    ssd_backend_tensor_free(be, &img);
    ssd_acts_destroy(m, a);
}

/* The state is not the init: parameters moved from a fresh model of the same seed, momentum
 * valid and non-zero, the counter counts the steps, and (nearly) every BN running statistic
 * left its init (mean 0, var 1). */
static void assert_trained(ssd_model *m, uint32_t seed, int nsteps) {
    assert_true(m->momentum_valid);
    assert_int_equal(m->num_batches_tracked, nsteps);
    ssd_model *fresh = ssd_model_create(m->be, m->dtype, seed);
    ssd_tensor p = tu_to_host(m->be, &m->params, SSD_F64);
    ssd_tensor p0 = tu_to_host(m->be, &fresh->params, SSD_F64);
    ssd_tensor mom = tu_to_host(m->be, &m->momentum, SSD_F64);
    ssd_tensor b = tu_to_host(m->be, &m->buffers, SSD_F64);
    double num = 0, den = 0, mom2 = 0;
    int64_t moved = 0, np = ssd_tensor_numel(&p), nb = ssd_tensor_numel(&b), at_init = 0;
    for (int64_t i = 0; i < np; i++) {
        double x = ssd_tensor_get(&p, i), y = ssd_tensor_get(&p0, i), v = ssd_tensor_get(&mom, i);
        num += (x - y) * (x - y), den += y * y, mom2 += v * v;
        moved += x != y;
    }
    for (int64_t i = 0; i < nb; i++) {
        double v = ssd_tensor_get(&b, i);
        at_init += v == 0.0 || v == 1.0;
    }
    printf("  trained state: ||p - p0|| / ||p0|| = %.3e, %lld of %lld parameters moved, "
           "||momentum|| = %.3e, %lld of %lld BN statistics at their init\n",
           sqrt(num / den), (long long)moved, (long long)np, sqrt(mom2), (long long)at_init,
           (long long)nb);
    assert_true(sqrt(num / den) > 1e-3);
    assert_true(moved > np * 99 / 100);
    assert_true(mom2 > 0);
    assert_true(at_init < nb / 100);
    ssd_tensor_free(&p);
    ssd_tensor_free(&p0);
    ssd_tensor_free(&mom);
    ssd_tensor_free(&b);
    ssd_model_destroy(fresh);
}

/* Inference-mode forward of host images; host loc and conf in the model's dtype. */
static void infer(ssd_model *m, const ssd_tensor *images, ssd_tensor *loc, ssd_tensor *conf) {
    ssd_acts *a = ssd_acts_create(m, (int)images->shape[0]);
    ssd_tensor img = tu_to_backend(m->be, images, m->dtype);
    ssd_model_forward(m, a, &img, false);
    *loc = tu_to_host(m->be, &a->loc, m->dtype);
    *conf = tu_to_host(m->be, &a->conf, m->dtype);
    ssd_tensor_set_name(loc, "loc");
    ssd_tensor_set_name(conf, "conf");
    ssd_backend_tensor_free(m->be, &img);
    ssd_acts_destroy(m, a);
}

static void write_outputs(const char *path, const ssd_tensor *images, const ssd_tensor *loc,
                          const ssd_tensor *conf) {
    const ssd_tensor *list[3] = {images, loc, conf};
    ssd_error err = {0};
    if (ssd_st_write(path, list, 3, &err) != SSD_OK)
        fail_msg("%s", err.msg);
}

/* Runs the oracle on (ckpt, outs); returns its exit status, *rel = the reported max_rel_err
 * and *tol = the tolerance it applied (-1 when absent); the verdict line must be there either
 * way. */
static int run_oracle(const char *ckpt, const char *outs, const char *tag, double *rel,
                      double *tol) {
    char cmd[4096], log[1300], out[8192];
    snprintf(cmd, sizeof cmd, "\"%s\" \"%s/tools/checkpoint_forward_oracle.py\" \"%s\" \"%s\"",
             tu_env("SSD_PYTHON_TORCH"), tu_env("SSD_SOURCE_DIR"), ckpt, outs);
    snprintf(log, sizeof log, "%s/oracle_%s.log", g_dir, tag);
    double t0 = ssd_now();
    int rc = tu_run_capture(cmd, log, out, sizeof out);
    printf("  (oracle %s: %.1f s)\n", tag, ssd_now() - t0);
    const char *p = strstr(out, "max_rel_err=");
    *rel = p ? strtod(p + strlen("max_rel_err="), NULL) : -1;
    p = strstr(out, ") tol ");
    *tol = p ? strtod(p + strlen(") tol "), NULL) : -1;
    if (rc == 0)
        assert_non_null(strstr(out, "checkpoint_forward_oracle: OK"));
    else
        assert_non_null(strstr(out, "checkpoint_forward_oracle: FAIL"));
    return rc;
}

/* DST = SRC with element 0 of tensor SCALE (if any) multiplied by FACTOR and the data of
 * tensors SWAP_A and SWAP_B (if any; same shape) exchanged; metadata kept. */
static void edit_checkpoint(const char *dst, const char *src, const char *scale, double factor,
                            const char *swap_a, const char *swap_b) {
    ssd_st_file *f = NULL;
    ssd_error err = {0};
    assert_int_equal(ssd_st_read(src, &f, &err), SSD_OK);
    int n = ssd_st_count(f);
    ssd_tensor *ts = ssd_xcalloc((size_t)n, sizeof *ts);
    const ssd_tensor **list = ssd_xcalloc((size_t)n, sizeof *list);
    ssd_tensor edited = {0};
    int ia = -1, ib = -1;
    for (int i = 0; i < n; i++) {
        ts[i] = *ssd_st_at(f, i);
        if (scale && strcmp(ssd_st_name(f, i), scale) == 0) {
            edited = ssd_tensor_alloc_host(ts[i].dtype, ts[i].ndim, ts[i].shape, ts[i].name);
            memcpy(edited.data, ts[i].data, ssd_tensor_nbytes(&ts[i]));
            ssd_tensor_set(&edited, 0, ssd_tensor_get(&edited, 0) * factor);
            ts[i].data = edited.data;
        }
        if (swap_a && strcmp(ssd_st_name(f, i), swap_a) == 0)
            ia = i;
        if (swap_b && strcmp(ssd_st_name(f, i), swap_b) == 0)
            ib = i;
    }
    assert_true(!scale || edited.data);
    if (swap_a) {
        assert_true(ia >= 0 && ib >= 0);
        assert_true(ssd_tensor_same_shape(&ts[ia], &ts[ib]));
        void *d = ts[ia].data;
        ts[ia].data = ts[ib].data;
        ts[ib].data = d;
    }
    for (int i = 0; i < n; i++)
        list[i] = &ts[i];
    const char *keys[64], *vals[64];
    int nm = ssd_st_meta_count(f);
    assert_true(nm <= 64);
    for (int i = 0; i < nm; i++) {
        keys[i] = ssd_st_meta_key(f, i);
        vals[i] = ssd_st_meta_value(f, i);
    }
    if (ssd_st_write_meta(dst, list, n, keys, vals, nm, &err) != SSD_OK)
        fail_msg("%s", err.msg);
    ssd_tensor_free(&edited);
    free(ts);
    free(list);
    ssd_st_free(f);
}

#define SEED 2024
#define NSTEPS 2

/* A model on BE in DT trained in place: STEPS steps at batch BATCH. */
static ssd_model *trained_here(ssd_backend *be, ssd_dtype dt, int batch, int steps) {
    double t0 = ssd_now();
    ssd_model *m = ssd_model_create(be, dt, SEED);
    train(m, batch, steps, 5);
    printf("%s: %d training step(s) at batch %d: %.1f s\n", be->name, steps, batch, ssd_now() - t0);
    assert_trained(m, SEED, steps);
    return m;
}

static void save(const char *path, const ssd_model *m) {
    ssd_train_state st = {.epoch = 1,
                          .iteration = m->num_batches_tracked,
                          .loader_epoch = 1,
                          .loader_iter = 0,
                          .seed = SEED,
                          .avg_loss = 0.5};
    ssd_error err = {0};
    if (ssd_checkpoint_save(path, m, &st, &err) != SSD_OK)
        fail_msg("save: %s", err.msg);
}

/* The ref model (f64): the trained cpu checkpoint's parameters, BN statistics and counter
 * converted to f64 (ssd_model_load, non-strict: the optimizer.* entries are not weights), then
 * one f64 SGD step from pseudo-random gradients, which makes the momentum valid and the weights
 * genuinely f64. Training on ref itself costs ~30 s per step at batch 1, so it is only the
 * fallback of a build without the cpu backend. */
static ssd_model *trained_ref(ssd_backend *be) {
    if (!g_have_cpu_ckpt) {
#ifdef SSD_HAVE_CPU
        ssd_backend *cpu = ssd_backend_cpu_create(NULL);
        ssd_model *src = trained_here(cpu, SSD_F32, 1, NSTEPS);
        save(g_cpu_ckpt, src);
        g_have_cpu_ckpt = true;
        ssd_model_destroy(src);
        ssd_backend_destroy(cpu);
#else
        return trained_here(be, SSD_F64, 1, 1);
#endif
    }
    ssd_model *m = ssd_model_create(be, SSD_F64, SEED);
    ssd_st_file *f = NULL;
    ssd_error err = {0};
    assert_int_equal(ssd_st_read(g_cpu_ckpt, &f, &err), SSD_OK);
    if (ssd_model_load(m, f, g_cpu_ckpt, false, &err) != SSD_OK)
        fail_msg("%s", err.msg);
    ssd_st_free(f);
    ssd_rng r = ssd_rng_stream(6, SSD_RNG_DOMAIN_TEST, 0, 0, 2);
    int64_t n = m->tab.params_numel;
    ssd_tensor g = ssd_tensor_alloc_host(SSD_F64, 1, &n, "g");
    tu_fill_uniform(&g, &r, -1e-3, 1e-3);
    ssd_backend_upload(be, &m->grads, &g);
    ssd_tensor_free(&g);
    ssd_model_sgd_step(m, 0.05, 0.9, 5e-4);
    ssd_model_zero_grad(m);
    printf("ref: the cpu checkpoint in f64 + one f64 SGD step\n");
    assert_trained(m, SEED, NSTEPS);
    return m;
}

/* The whole check for one backend: trained state, checkpoint, our inference forward, the
 * oracle; for cpu also the three must-fail cases. */
static void check_backend(const char *test, ssd_backend *be, ssd_dtype dt, int n_images) {
    char prefix[2600];
    int rc = tu_torch_oracle(test, prefix, sizeof prefix);
    if (rc == 1)
        skip();
    assert_int_equal(rc, 0);
    const char *tag = be->name;
    const bool is_cpu = dt == SSD_F32;
    ssd_model *m = is_cpu ? trained_here(be, dt, 1, NSTEPS) : trained_ref(be);
    char ckpt[1300], outs[1300];
    snprintf(ckpt, sizeof ckpt, "%s", is_cpu ? g_cpu_ckpt : scratch("ref.safetensors"));
    snprintf(outs, sizeof outs, "%s",
             scratch(is_cpu ? "cpu_out.safetensors" : "ref_out.safetensors"));
    save(ckpt, m);
    if (is_cpu)
        g_have_cpu_ckpt = true;

    double t0 = ssd_now();
    ssd_tensor images = eval_images(n_images, dt), loc, conf;
    infer(m, &images, &loc, &conf);
    printf("%s: inference forward of %d image(s): %.1f s\n", tag, n_images, ssd_now() - t0);
    write_outputs(outs, &images, &loc, &conf);

    double rel, tol;
    assert_int_equal(run_oracle(ckpt, outs, tag, &rel, &tol), 0);
    printf("%s (%s): checkpoint -> torch forward max_rel_err %.3e (tol %.0e)\n", tag,
           ssd_dtype_name(dt), rel, tol);
    assert_true(rel >= 0 && rel <= tol);

    if (is_cpu) {
        double bad, t;
        /* one BN statistic of one channel: the last BN of the trunk, feeding every head */
        const char *bad_ckpt = scratch("bad.safetensors");
        edit_checkpoint(bad_ckpt, ckpt, "model.layer2.0.5.bn2.running_var", 1.1, NULL, NULL);
        assert_int_equal(run_oracle(bad_ckpt, outs, "bn_var", &bad, &t), 1);
        printf("  running_var[0] x 1.1 -> FAIL, max_rel_err %.3e\n", bad);
        /* two same-shape tensors exchanged: load_state_dict(strict=True) cannot see it */
        edit_checkpoint(bad_ckpt, ckpt, NULL, 1, "conf.4.weight", "conf.5.weight");
        assert_int_equal(run_oracle(bad_ckpt, outs, "swap", &bad, &t), 1);
        printf("  conf.4.weight <-> conf.5.weight -> FAIL, max_rel_err %.3e\n", bad);
        unlink(bad_ckpt);
        /* our output off by 10x the tolerance in one entry of 1.4 million */
        double cmax = 0;
        for (int64_t i = 0; i < ssd_tensor_numel(&conf); i++)
            cmax = fmax(cmax, fabs(ssd_tensor_get(&conf, i)));
        int64_t k = ssd_tensor_numel(&conf) / 3;
        ssd_tensor_set(&conf, k, ssd_tensor_get(&conf, k) + 10 * tol * cmax);
        const char *bad_outs = scratch("bad_out.safetensors");
        write_outputs(bad_outs, &images, &loc, &conf);
        assert_int_equal(run_oracle(ckpt, bad_outs, "conf_entry", &bad, &t), 1);
        printf("  one conf entry + %.0e max|conf| -> FAIL, max_rel_err %.3e\n", 10 * tol, bad);
        unlink(bad_outs);
    }
    if (!is_cpu)
        unlink(ckpt); /* the cpu checkpoint stays for test_ref_f64 (removed by the teardown) */
    unlink(outs);
    ssd_tensor_free(&images);
    ssd_tensor_free(&loc);
    ssd_tensor_free(&conf);
    ssd_model_destroy(m);
}

static void test_cpu_f32(void **state) {
    (void)state;
#ifdef SSD_HAVE_CPU
    ssd_backend *be = ssd_backend_cpu_create(NULL);
    check_backend("test_checkpoint_torch/cpu_f32", be, SSD_F32, 2);
    ssd_backend_destroy(be);
#else
    tu_skip("test_checkpoint_torch/cpu_f32", "the cpu backend (oneDNN) is not built");
    skip();
#endif
}

static void test_ref_f64(void **state) {
    (void)state;
    ssd_backend *be = ssd_backend_ref_create();
    check_backend("test_checkpoint_torch/ref_f64", be, SSD_F64, 1);
    ssd_backend_destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_f32),
        cmocka_unit_test(test_ref_f64),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/* train/checkpoint: training checkpoints (save, validate, load).
 *
 * - Round trip on the ref backend (f64) and, when built, the cpu backend (f32): a model with
 *   random gradients, one real SGD step (momentum valid), perturbed BN statistics and a BN
 *   counter is saved with a train state, loaded into a model made from a different seed, and the
 *   parameters, BN buffers + num_batches_tracked (ssd_model_export 'p', 'b') and momentum must be
 *   bit-identical, the state too (avg_loss compared as bits; also inf, a subnormal and -0.0).
 *   A checkpoint taken before any SGD step has no momentum tensors and loads as "no momentum".
 * - Bad inputs (an f32 checkpoint from the ref backend, so each of the ~40 rewritten files is
 *   160 MB, not 320), each loaded into a target model whose flat parameter / BN / momentum /
 *   gradient buffers, counter, momentum flag and the caller's state are compared with copies
 *   afterwards (must be unchanged); the error must name the file and the problem: truncation at
 *   several lengths, flipped header bytes, a missing tensor, a wrong shape, a wrong dtype, wrong
 *   format / version / metadata values, a plain weights-only safetensors file, stray and
 *   inconsistent tensors; a missing file gives SSD_ERR_IO; a save that cannot create its temp
 *   file fails and leaves the earlier checkpoint at PATH byte-identical.
 * - PyTorch oracle (tools/checkpoint_oracle.py under $SSD_PYTHON_TORCH): the checkpoint's
 *   weights load into tools/torchref/model.py's SSD300 with load_state_dict(strict=True) and
 *   every state_dict tensor equals the file's. Skipped with a stated reason without torch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../testutil.h"
#include "core/mem.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"

static char g_dir[1024];
static ssd_backend *g_ref;
/* ref-backend f32 checkpoint with momentum, written by the group setup (f32 keeps the many
 * bad-input rewrites of this 160 MB file fast; the f64 round trip has its own file) */
static char g_base[1200];
static ssd_train_state g_state;

/* Gives the model non-trivial state: random gradients and one real SGD step (so the momentum
 * buffer is valid and differs from the parameters' init), random BN statistics, a counter. */
static void perturb(ssd_model *m, uint32_t seed, int64_t nbt) {
    ssd_rng r = ssd_rng_stream(seed, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    int64_t np = m->tab.params_numel, nb = m->tab.buffers_numel;
    ssd_tensor g = ssd_tensor_alloc_host(m->dtype, 1, &np, "g");
    tu_fill_uniform(&g, &r, -1.0, 1.0);
    ssd_backend_upload(m->be, &m->grads, &g);
    ssd_model_sgd_step(m, 0.01, 0.9, 5e-4);
    tu_fill_uniform(&g, &r, -0.5, 0.5);
    ssd_backend_upload(m->be, &m->grads, &g);
    ssd_model_sgd_step(m, 0.01, 0.9, 5e-4); /* second step: buf = 0.9 buf + g */
    ssd_model_zero_grad(m);
    ssd_tensor b = ssd_tensor_alloc_host(m->dtype, 1, &nb, "b");
    tu_fill_uniform(&b, &r, 0.1, 2.0);
    ssd_backend_upload(m->be, &m->buffers, &b);
    m->num_batches_tracked = nbt;
    ssd_tensor_free(&g);
    ssd_tensor_free(&b);
}

/* Bit snapshot of everything a checkpoint carries. */
typedef struct snap {
    ssd_tensor *p, *b;
    int np, nb;
    ssd_tensor mom, grads;
    bool momentum_valid;
} snap;

static snap take(const ssd_model *m) {
    snap s;
    s.p = ssd_model_export(m, 'p', m->dtype, NULL, &s.np);
    s.b = ssd_model_export(m, 'b', m->dtype, NULL, &s.nb);
    s.mom = ssd_backend_download_as(m->be, &m->momentum, m->dtype);
    s.grads = ssd_backend_download_as(m->be, &m->grads, m->dtype);
    s.momentum_valid = m->momentum_valid;
    return s;
}

static void drop(snap *s) {
    for (int i = 0; i < s->np; i++)
        ssd_tensor_free(&s->p[i]);
    for (int i = 0; i < s->nb; i++)
        ssd_tensor_free(&s->b[i]);
    free(s->p);
    free(s->b);
    ssd_tensor_free(&s->mom);
    ssd_tensor_free(&s->grads);
}

static bool same_tensor(const ssd_tensor *a, const ssd_tensor *b) {
    return a->dtype == b->dtype && ssd_tensor_same_shape(a, b) && strcmp(a->name, b->name) == 0 &&
           memcmp(a->data, b->data, ssd_tensor_nbytes(a)) == 0;
}

/* Every bit equal (grads too when with_grads). */
static void assert_same_snap(const snap *x, const snap *y, bool with_grads) {
    assert_int_equal(x->np, y->np);
    assert_int_equal(x->nb, y->nb);
    for (int i = 0; i < x->np; i++)
        if (!same_tensor(&x->p[i], &y->p[i]))
            fail_msg("parameter %s differs", x->p[i].name);
    for (int i = 0; i < x->nb; i++)
        if (!same_tensor(&x->b[i], &y->b[i]))
            fail_msg("buffer %s differs", x->b[i].name);
    assert_int_equal(x->momentum_valid, y->momentum_valid);
    assert_memory_equal(x->mom.data, y->mom.data, ssd_tensor_nbytes(&x->mom));
    if (with_grads)
        assert_memory_equal(x->grads.data, y->grads.data, ssd_tensor_nbytes(&x->grads));
}

static ssd_train_state sample_state(double avg) {
    ssd_train_state s = {.epoch = 7,
                         .iteration = 25612,
                         .loader_epoch = 7,
                         .loader_iter = 1819,
                         .seed = 4000000001u,
                         .avg_loss = avg,
                         .momentum_valid = 0,
                         .world_size = 3};
    return s;
}

static bool same_state(const ssd_train_state *a, const ssd_train_state *b) {
    return a->epoch == b->epoch && a->iteration == b->iteration &&
           a->loader_epoch == b->loader_epoch && a->loader_iter == b->loader_iter &&
           a->seed == b->seed && memcmp(&a->avg_loss, &b->avg_loss, sizeof(double)) == 0 &&
           a->momentum_valid == b->momentum_valid && a->world_size == b->world_size;
}

static const char *scratch(const char *name) {
    static char buf[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static int group_setup(void **state) {
    (void)state;
    if (!tu_scratch_dir("test_checkpoint", g_dir, sizeof g_dir))
        return -1;
    g_ref = ssd_backend_ref_create();
    ssd_model *a = ssd_model_create(g_ref, SSD_F32, 11);
    perturb(a, 1, 1234);
    g_state = sample_state(1.0 / 3.0 + 2.5);
    snprintf(g_base, sizeof g_base, "%s", scratch("base.safetensors"));
    ssd_error err = {0};
    ssd_status s = ssd_checkpoint_save(g_base, a, &g_state, &err);
    ssd_model_destroy(a);
    if (s != SSD_OK) {
        printf("save failed: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    ssd_backend_destroy(g_ref);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

static void round_trip(ssd_backend *be, ssd_dtype dt, const char *file) {
    ssd_model *a = ssd_model_create(be, dt, 21);
    ssd_model *b = ssd_model_create(be, dt, 22);
    perturb(a, 2, 98765);
    /* b's own state that load must replace: other init, gradients, a counter */
    b->num_batches_tracked = 5;
    ssd_rng r = ssd_rng_stream(9, SSD_RNG_DOMAIN_TEST, 0, 0, 1);
    int64_t np = b->tab.params_numel;
    ssd_tensor g = ssd_tensor_alloc_host(dt, 1, &np, "g");
    tu_fill_uniform(&g, &r, -1, 1);
    ssd_backend_upload(be, &b->grads, &g);
    ssd_tensor_free(&g);

    ssd_train_state st = sample_state(0.1 + 0.2), got = sample_state(-1);
    st.momentum_valid = 0; /* ignored on save: the model's flag is written */
    ssd_error err = {0};
    const char *path = scratch(file);
    if (ssd_checkpoint_save(path, a, &st, &err) != SSD_OK)
        fail_msg("save: %s", err.msg);
    if (ssd_checkpoint_load(path, b, &got, &err) != SSD_OK)
        fail_msg("load: %s", err.msg);
    st.momentum_valid = 1;
    assert_true(same_state(&st, &got));
    snap sa = take(a), sb = take(b);
    assert_same_snap(&sa, &sb, true); /* a's grads are zero (zero_grad), b's were zeroed by load */
    assert_int_equal(b->num_batches_tracked, 98765);
    drop(&sa);
    drop(&sb);

    /* the file itself: 131 params + 58 BN buffers + 29 counters + 131 momentum, in model dtype */
    ssd_st_file *f = NULL;
    assert_int_equal(ssd_st_read(path, &f, &err), SSD_OK);
    assert_int_equal(ssd_st_count(f), 131 + 58 + 29 + 131);
    assert_string_equal(ssd_st_name(f, 0), "model.layer1.0.weight");
    assert_string_equal(ssd_st_name(f, 1), "model.layer1.1.weight");
    assert_string_equal(ssd_st_name(f, 3), "model.layer1.1.running_mean");
    assert_string_equal(ssd_st_name(f, 5), "model.layer1.1.num_batches_tracked");
    assert_int_equal(ssd_st_at(f, 0)->dtype, dt);
    assert_int_equal(ssd_st_at(f, 5)->ndim, 0);
    assert_non_null(ssd_st_get(f, "optimizer.momentum.conf.5.bias"));
    assert_string_equal(ssd_st_meta(f, "format"), "ssd-checkpoint");
    assert_string_equal(ssd_st_meta(f, "format_version"), "1");
    assert_string_equal(ssd_st_meta(f, "seed"), "4000000001");
    assert_string_equal(ssd_st_meta(f, "world_size"), "3");
    ssd_st_free(f);

    /* before any SGD step: no momentum in the file, and loading clears b's momentum */
    ssd_model_init(a, 23);
    ssd_train_state st2 = sample_state(0);
    if (ssd_checkpoint_save(path, a, &st2, &err) != SSD_OK)
        fail_msg("save: %s", err.msg);
    assert_int_equal(ssd_st_read(path, &f, &err), SSD_OK);
    assert_int_equal(ssd_st_count(f), 131 + 58 + 29);
    assert_string_equal(ssd_st_meta(f, "momentum_valid"), "0");
    ssd_st_free(f);
    assert_true(b->momentum_valid);
    if (ssd_checkpoint_load(path, b, &got, &err) != SSD_OK)
        fail_msg("load: %s", err.msg);
    assert_true(same_state(&st2, &got));
    assert_false(b->momentum_valid);
    assert_int_equal(b->num_batches_tracked, 0);
    sa = take(a);
    sb = take(b);
    assert_same_snap(&sa, &sb, true); /* momentum all zero on both sides */
    drop(&sa);
    drop(&sb);
    unlink(path);
    ssd_model_destroy(a);
    ssd_model_destroy(b);
}

static void test_round_trip_ref(void **state) {
    (void)state;
    round_trip(g_ref, SSD_F64, "rt_ref.safetensors");
}

static void test_round_trip_cpu(void **state) {
    (void)state;
#ifdef SSD_HAVE_CPU
    ssd_backend *be = ssd_backend_cpu_create(NULL);
    round_trip(be, SSD_F32, "rt_cpu.safetensors");
    ssd_backend_destroy(be);
#else
    tu_skip("test_checkpoint/round_trip_cpu", "the cpu backend (oneDNN) is not built");
#endif
}

/* avg_loss special values survive exactly; the metadata holds them as hex floats. */
static void test_avg_loss_exact(void **state) {
    (void)state;
    ssd_model *a = ssd_model_create(g_ref, SSD_F32, 31);
    const double vals[] = {1.0 / 3.0, 4.9e-324, -0.0, 1.0 / 0.0, 12345.678901234567};
    const char *path = scratch("avg.safetensors");
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        ssd_train_state st = sample_state(vals[i]), got = sample_state(7);
        ssd_error err = {0};
        if (ssd_checkpoint_save(path, a, &st, &err) != SSD_OK)
            fail_msg("save: %s", err.msg);
        if (ssd_checkpoint_load(path, a, &got, &err) != SSD_OK)
            fail_msg("load: %s", err.msg);
        assert_true(same_state(&st, &got));
    }
    unlink(path);
    ssd_model_destroy(a);
}

/* ---- bad inputs ---------------------------------------------------------------------------- */

/* A target model and copies of its flat buffers (ref backend: host memory, compared in place
 * after each failed load, which keeps the ~40 cases cheap). */
typedef struct target {
    ssd_model *m;
    ssd_tensor *flat[4]; /* params, buffers, momentum, grads */
    void *copy[4];
    int64_t nbt;
    bool momentum_valid;
} target;

static void target_init(target *t, ssd_model *m) {
    t->m = m;
    ssd_tensor *fl[4] = {&m->params, &m->buffers, &m->momentum, &m->grads};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fl[i]->device.kind, SSD_DEVICE_HOST);
        t->flat[i] = fl[i];
        size_t n = ssd_tensor_nbytes(fl[i]);
        t->copy[i] = ssd_xmalloc(n);
        memcpy(t->copy[i], fl[i]->data, n);
    }
    t->nbt = m->num_batches_tracked;
    t->momentum_valid = m->momentum_valid;
}

static void target_free(target *t) {
    for (int i = 0; i < 4; i++)
        free(t->copy[i]);
}

/* Loading PATH into t must fail with CODE, name the file and say WHAT; nothing changes. */
static void expect_fail(target *t, const char *path, ssd_status code, const char *what) {
    ssd_train_state st = sample_state(-42), st0 = st;
    ssd_error err = {0};
    ssd_status s = ssd_checkpoint_load(path, t->m, &st, &err);
    printf("  %-32s -> %s: %s\n", strrchr(path, '/') + 1, ssd_status_name(s), err.msg);
    assert_int_equal(s, code);
    assert_non_null(strstr(err.msg, path));
    if (!strstr(err.msg, what))
        fail_msg("message '%s' does not say '%s'", err.msg, what);
    assert_true(same_state(&st, &st0));
    for (int i = 0; i < 4; i++)
        if (memcmp(t->flat[i]->data, t->copy[i], ssd_tensor_nbytes(t->flat[i])) != 0)
            fail_msg("failed load changed the model's %s", t->flat[i]->name);
    assert_int_equal(t->m->num_batches_tracked, t->nbt);
    assert_int_equal(t->m->momentum_valid, t->momentum_valid);
}

static void write_bytes(const char *path, const char *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* Rewrites the base checkpoint through the safetensors writer with edits: tensor SKIP left out,
 * tensor RESHAPE given shape (numel/2, 2), metadata KEY set to VAL (NULL: removed), an extra
 * tensor EXTRA (a copy of the first tensor under that name) added. */
static void rewrite(const char *dst, const char *skip, const char *reshape, const char *key,
                    const char *val, const char *extra) {
    ssd_st_file *f = NULL;
    ssd_error err = {0};
    assert_int_equal(ssd_st_read(g_base, &f, &err), SSD_OK);
    int n = ssd_st_count(f), k = 0;
    ssd_tensor *ts = ssd_xcalloc((size_t)n + 1, sizeof *ts);
    const ssd_tensor **list = ssd_xcalloc((size_t)n + 1, sizeof *list);
    for (int i = 0; i < n; i++) {
        if (skip && strcmp(ssd_st_name(f, i), skip) == 0)
            continue;
        ts[k] = *ssd_st_at(f, i);
        if (reshape && strcmp(ssd_st_name(f, i), reshape) == 0) {
            int64_t numel = ssd_tensor_numel(&ts[k]);
            ts[k].ndim = 2;
            ts[k].shape[0] = numel / 2;
            ts[k].shape[1] = 2;
        }
        k++;
    }
    if (extra) {
        ts[k] = *ssd_st_at(f, 0);
        ssd_tensor_set_name(&ts[k], extra);
        k++;
    }
    for (int i = 0; i < k; i++)
        list[i] = &ts[i];
    const char *keys[32], *vals[32];
    int nm = 0;
    for (int i = 0; i < ssd_st_meta_count(f); i++) {
        if (key && strcmp(ssd_st_meta_key(f, i), key) == 0)
            continue;
        keys[nm] = ssd_st_meta_key(f, i);
        vals[nm++] = ssd_st_meta_value(f, i);
    }
    if (key && val) {
        keys[nm] = key;
        vals[nm++] = val;
    }
    if (ssd_st_write_meta(dst, list, k, keys, vals, nm, &err) != SSD_OK)
        fail_msg("%s", err.msg);
    free(ts);
    free(list);
    ssd_st_free(f);
}

static void test_bad_inputs(void **state) {
    (void)state;
    target t;
    ssd_model *tm = ssd_model_create(g_ref, SSD_F32, 41);
    perturb(tm, 4, 77);
    /* non-zero gradients: a failed load must not zero them either */
    ssd_rng r = ssd_rng_stream(8, SSD_RNG_DOMAIN_TEST, 0, 0, 2);
    ssd_tensor g = ssd_tensor_alloc_host(SSD_F32, 1, &tm->tab.params_numel, "g");
    tu_fill_uniform(&g, &r, -1, 1);
    ssd_backend_upload(g_ref, &tm->grads, &g);
    ssd_tensor_free(&g);
    target_init(&t, tm);
    const char *p = scratch("bad.safetensors");

    /* truncation: inside the length prefix, inside the header, at the header's end, in the
     * data, one byte short */
    char *buf = NULL;
    size_t len = 0;
    ssd_error err = {0};
    assert_int_equal(ssd_read_file(g_base, &buf, &len, &err), SSD_OK);
    uint64_t hlen;
    memcpy(&hlen, buf, 8);
    const size_t cuts[] = {len - 1, len - 8 * 1000 - 3, 8 + hlen + 8, 8 + hlen, 8 + hlen / 2, 5, 0};
    write_bytes(p, buf, len);
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        assert_int_equal(truncate(p, (off_t)cuts[i]), 0);
        expect_fail(&t, p, SSD_ERR_FORMAT, "");
    }

    /* flipped header bytes: the length prefix, the opening brace, a byte in the middle of the
     * header, a letter of a "dtype" key, a digit of a data offset */
    char *hdr_mid = buf + 8 + hlen / 2;
    char *dtype_key = strstr(buf + 8, "\"dtype\"");
    char *offs = strstr(buf + 8, "\"data_offsets\":[");
    assert_non_null(dtype_key);
    assert_non_null(offs);
    offs = strchr(offs, ',') + 1; /* end offset of some tensor */
    char *flips[] = {buf, buf + 8, hdr_mid, dtype_key + 2, offs};
    const unsigned char mask[] = {0x01, 0x20, 0x80, 0x01, 0x01};
    for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
        *flips[i] = (char)(*flips[i] ^ mask[i]);
        write_bytes(p, buf, len);
        *flips[i] = (char)(*flips[i] ^ mask[i]);
        expect_fail(&t, p, SSD_ERR_FORMAT, "");
    }
    free(buf);

    rewrite(p, "loc.3.weight", NULL, NULL, NULL, NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "missing tensor 'loc.3.weight'");
    rewrite(p, "model.layer1.5.0.bn2.running_var", NULL, NULL, NULL, NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "missing tensor 'model.layer1.5.0.bn2.running_var'");
    rewrite(p, "optimizer.momentum.conf.0.weight", NULL, NULL, NULL, NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "missing tensor 'optimizer.momentum.conf.0.weight'");
    rewrite(p, "model.layer2.0.3.bn1.num_batches_tracked", NULL, NULL, NULL, NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "missing tensor 'model.layer2.0.3.bn1.num_batches_tracked'");
    rewrite(p, NULL, "conf.5.bias", NULL, NULL, NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "'conf.5.bias' has shape (162,2), expected (324)");
    rewrite(p, NULL, "optimizer.momentum.loc.1.bias", NULL, NULL, NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "'optimizer.momentum.loc.1.bias' has shape");
    rewrite(p, NULL, NULL, NULL, NULL, "loc.6.weight");
    expect_fail(&t, p, SSD_ERR_FORMAT, "unexpected tensor 'loc.6.weight'");

    /* metadata */
    rewrite(p, NULL, NULL, "format_version", "2", NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "format_version 2 is not supported");
    rewrite(p, NULL, NULL, "format_version", NULL, NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "no 'format_version'");
    rewrite(p, NULL, NULL, "format", "something-else", NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "not a training checkpoint");
    rewrite(p, NULL, NULL, "dtype", "f64", NULL); /* metadata disagrees with the tensors */
    expect_fail(&t, p, SSD_ERR_FORMAT, "holds f64 tensors but the model is f32");
    rewrite(p, NULL, NULL, "dtype", "bf16", NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "'dtype' is 'bf16'");
    rewrite(p, NULL, NULL, "seed", "4294967296", NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "'seed'");
    rewrite(p, NULL, NULL, "epoch", "-1", NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "'epoch' is '-1'");
    rewrite(p, NULL, NULL, "iteration", "12x", NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "'iteration' is '12x'");
    rewrite(p, NULL, NULL, "loader_iter", "99999999999999999999", NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "'loader_iter'");
    rewrite(p, NULL, NULL, "loader_epoch", NULL, NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "no 'loader_epoch'");
    rewrite(p, NULL, NULL, "avg_loss", "0x1.8p+1junk", NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "'avg_loss'");
    rewrite(p, NULL, NULL, "momentum_valid", "yes", NULL);
    expect_fail(&t, p, SSD_ERR_FORMAT, "'momentum_valid'");
    rewrite(p, NULL, NULL, "momentum_valid", "0", NULL); /* momentum tensors but flag 0 */
    expect_fail(&t, p, SSD_ERR_FORMAT, "momentum_valid is 0");

    /* a plain weights-only safetensors file (what `ssd convert` or torch exports look like) */
    {
        int np, nb;
        ssd_tensor *ps = ssd_model_export(t.m, 'p', SSD_F32, NULL, &np);
        ssd_tensor *bs = ssd_model_export(t.m, 'b', SSD_F32, NULL, &nb);
        const ssd_tensor **list = ssd_xcalloc((size_t)(np + nb), sizeof *list);
        for (int i = 0; i < np; i++)
            list[i] = &ps[i];
        for (int i = 0; i < nb; i++)
            list[np + i] = &bs[i];
        assert_int_equal(ssd_st_write(p, list, np + nb, &err), SSD_OK);
        for (int i = 0; i < np; i++)
            ssd_tensor_free(&ps[i]);
        for (int i = 0; i < nb; i++)
            ssd_tensor_free(&bs[i]);
        free(ps);
        free(bs);
        free(list);
        expect_fail(&t, p, SSD_ERR_FORMAT, "not a training checkpoint");
    }
    write_bytes(p, "not a checkpoint", 16);
    expect_fail(&t, p, SSD_ERR_FORMAT, "");
    unlink(p);
    expect_fail(&t, p, SSD_ERR_IO, "");

    /* a precision mismatch: the f32 checkpoint into an f64 model */
    {
        ssd_model *m64 = ssd_model_create(g_ref, SSD_F64, 5);
        target t64;
        target_init(&t64, m64);
        expect_fail(&t64, g_base, SSD_ERR_FORMAT, "holds f32 tensors but the model is f64");
        target_free(&t64);
        ssd_model_destroy(m64);
    }
    target_free(&t);
    ssd_model_destroy(tm);
}

/* A save that fails leaves the earlier checkpoint at PATH intact (atomic write). The failure is
 * forced by a directory in place of the writer's temp file PATH.tmp.<pid> (works as root too,
 * where a read-only directory would not stop the write). */
static void test_atomic_save(void **state) {
    (void)state;
    ssd_model *a = ssd_model_create(g_ref, SSD_F32, 51);
    const char *path = scratch("atomic.safetensors");
    ssd_train_state st = sample_state(2), got;
    ssd_error err = {0};
    if (ssd_checkpoint_save(path, a, &st, &err) != SSD_OK)
        fail_msg("save: %s", err.msg);
    char *before = NULL, *after = NULL;
    size_t nb = 0, na = 0;
    assert_int_equal(ssd_read_file(path, &before, &nb, &err), SSD_OK);

    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(mkdir(tmp, 0755), 0);
    perturb(a, 5, 3);
    ssd_train_state st2 = sample_state(3);
    ssd_status s = ssd_checkpoint_save(path, a, &st2, &err);
    printf("  save over a blocked temp file -> %s: %s\n", ssd_status_name(s), err.msg);
    assert_int_equal(s, SSD_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(rmdir(tmp), 0);
    assert_int_equal(ssd_read_file(path, &after, &na, &err), SSD_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(before, after, nb);
    ssd_model *b = ssd_model_create(g_ref, SSD_F32, 52);
    assert_int_equal(ssd_checkpoint_load(path, b, &got, &err), SSD_OK);
    assert_true(same_state(&st, &got));

    /* a missing directory */
    s = ssd_checkpoint_save(scratch("no/such/dir/ck.safetensors"), a, &st, &err);
    assert_int_equal(s, SSD_ERR_IO);
    assert_non_null(strstr(err.msg, "no/such/dir/ck.safetensors"));
    /* negative counters are refused before anything is written */
    st2.iteration = -1;
    assert_int_equal(ssd_checkpoint_save(path, a, &st2, &err), SSD_ERR_ARG);
    free(before);
    free(after);
    unlink(path);
    ssd_model_destroy(a);
    ssd_model_destroy(b);
}

/* ---- PyTorch oracle ------------------------------------------------------------------------ */

static void test_torch_load_state_dict(void **state) {
    (void)state;
    char prefix[2600];
    int rc = tu_torch_oracle("test_checkpoint/torch_load_state_dict", prefix, sizeof prefix);
    if (rc == 1)
        return;
    assert_int_equal(rc, 0);
    char cmd[4096], log[1300], out[8192];
    snprintf(cmd, sizeof cmd, "\"%s\" \"%s/tools/checkpoint_oracle.py\" \"%s\"",
             tu_env("SSD_PYTHON_TORCH"), tu_env("SSD_SOURCE_DIR"), g_base);
    snprintf(log, sizeof log, "%s/oracle.log", g_dir);
    rc = tu_run_capture(cmd, log, out, sizeof out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "checkpoint_oracle: OK"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_ref), cmocka_unit_test(test_round_trip_cpu),
        cmocka_unit_test(test_avg_loss_exact), cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_atomic_save),    cmocka_unit_test(test_torch_load_state_dict),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

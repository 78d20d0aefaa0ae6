/* `ssd step`: one training-mode forward + loss + backward on a given batch and weights, with
 * everything written to one safetensors file. Our parity harness against the PyTorch
 * reference, and a debugging tool: feed it the same batch and weights as a Python run and
 * diff the tensors by name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "box/anchors.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timer.h"
#include "io/safetensors.h"
#include "loss/ssd_loss.h"
#include "model/pretrained.h"
#include "model/ssd_model.h"

typedef struct step_args {
    const char *weights, *batch, *out, *backend, *pretrained;
    long seed, repeat;
    bool eval, autocast;
    double sgd_lr, momentum, weight_decay;
} step_args;

typedef struct step_batch {
    int n;
    const ssd_tensor *images, *bboxes, *labels; /* views into the open file */
} step_batch;

/* Validates B's three tensors (names, dtypes, shapes, label range). */
static ssd_status check_batch(const ssd_st_file *f, const char *path, step_batch *b,
                              ssd_error *err) {
    b->images = ssd_st_get(f, "images");
    b->bboxes = ssd_st_get(f, "bboxes");
    b->labels = ssd_st_get(f, "labels");
    const char *missing = !b->images ? "images" : !b->bboxes ? "bboxes" : !b->labels ? "labels" : NULL;
    if (missing) return ssd_fail(err, SSD_ERR_FORMAT, "%s: missing tensor '%s'", path, missing);
    const ssd_tensor *im = b->images, *bb = b->bboxes, *lb = b->labels;
    if (im->dtype != SSD_F32 || im->ndim != 4 || im->shape[0] < 1 || im->shape[1] != 3 ||
        im->shape[2] != SSD_IMAGE_SIZE || im->shape[3] != SSD_IMAGE_SIZE)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: 'images' must be f32 (N,3,300,300)", path);
    int64_t n = im->shape[0];
    if (bb->dtype != SSD_F32 || bb->ndim != 3 || bb->shape[0] != n ||
        bb->shape[1] != SSD_NUM_ANCHORS || bb->shape[2] != 4)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: 'bboxes' must be f32 (%lld,8732,4)", path,
                        (long long)n);
    if (lb->dtype != SSD_I64 || lb->ndim != 2 || lb->shape[0] != n ||
        lb->shape[1] != SSD_NUM_ANCHORS)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: 'labels' must be i64 (%lld,8732)", path,
                        (long long)n);
    const int64_t *l = lb->data;
    for (int64_t i = 0; i < n * SSD_NUM_ANCHORS; i++)
        if (l[i] < 0 || l[i] >= SSD_NUM_CLASSES)
            return ssd_fail(err, SSD_ERR_FORMAT, "%s: labels[%lld][%lld] = %lld is outside 0..80",
                            path, (long long)(i / SSD_NUM_ANCHORS),
                            (long long)(i % SSD_NUM_ANCHORS), (long long)l[i]);
    const float *x = bb->data;
    for (int64_t i = 0; i < n * SSD_NUM_ANCHORS * 4; i++)
        if (!isfinite(x[i]))
            return ssd_fail(err, SSD_ERR_FORMAT, "%s: bboxes has a non-finite value", path);
    b->n = (int)n;
    return SSD_OK;
}

/* The state one step needs, created once (also reused by --repeat). */
typedef struct step_state {
    ssd_model *m;
    ssd_acts *acts;
    ssd_tensor images;            /* on the backend */
    ssd_tensor host_loc, host_conf, host_dloc, host_dconf, per_image;
    ssd_anchors *anchors;
    ssd_loss_ws *loss_ws;
    float loss;
} step_state;

/* forward (train) + loss + backward; gradients zeroed first. */
static void run_step(step_state *s, const step_batch *b) {
    ssd_backend *be = s->m->be;
    ssd_model_zero_grad(s->m);
    ssd_model_forward(s->m, s->acts, &s->images, true);
    ssd_backend_download(be, &s->host_loc, &s->acts->loc);
    ssd_backend_download(be, &s->host_conf, &s->acts->conf);
    s->loss = ssd_loss_forward_backward(s->anchors, b->n, s->host_loc.data, s->host_conf.data,
                                        b->bboxes->data, b->labels->data, s->host_dloc.data,
                                        s->host_dconf.data, s->per_image.data, s->loss_ws);
    ssd_backend_upload(be, &s->acts->dloc, &s->host_dloc);
    ssd_backend_upload(be, &s->acts->dconf, &s->host_dconf);
    ssd_model_backward(s->m, s->acts, &s->images);
    be->ops->sync(be);
}

/* Inference-mode forward (running statistics) on the same images, into eval.loc / eval.conf. */
static void run_eval(step_state *s, ssd_tensor *loc, ssd_tensor *conf) {
    ssd_model_forward(s->m, s->acts, &s->images, false);
    *loc = ssd_tensor_alloc_host(SSD_F32, 3, s->acts->loc.shape, "eval.loc");
    *conf = ssd_tensor_alloc_host(SSD_F32, 3, s->acts->conf.shape, "eval.conf");
    ssd_backend_download(s->m->be, loc, &s->acts->loc);
    ssd_backend_download(s->m->be, conf, &s->acts->conf);
}

/* Order: gradients and BN buffers of the training step, then (--eval) the inference forward
 * with the updated running statistics, then (--sgd-lr) one SGD step and the new parameters. */
static ssd_status write_outputs(step_state *s, const step_args *a, ssd_error *err) {
    ssd_model *m = s->m;
    int ng = 0, nb = 0, np = 0;
    ssd_tensor *grads = ssd_model_export(m, 'g', SSD_F32, "grad.", &ng);
    ssd_tensor *bufs = ssd_model_export(m, 'b', SSD_F32, NULL, &nb);
    ssd_tensor eloc = {0}, econf = {0};
    if (a->eval) run_eval(s, &eloc, &econf);
    ssd_tensor *sgd = NULL;
    if (a->sgd_lr > 0) {
        ssd_model_sgd_step(m, a->sgd_lr, a->momentum, a->weight_decay);
        sgd = ssd_model_export(m, 'p', SSD_F32, "sgd.", &np);
    }
    ssd_tensor loss = ssd_tensor_alloc_host(SSD_F32, 0, NULL, "loss");
    *(float *)loss.data = s->loss;
    int n = 6 + ng + nb + np, k = 0;
    const ssd_tensor **list = ssd_xcalloc((size_t)n, sizeof *list);
    list[k++] = &s->host_loc;
    list[k++] = &s->host_conf;
    list[k++] = &loss;
    list[k++] = &s->per_image;
    for (int i = 0; i < ng; i++) list[k++] = &grads[i];
    for (int i = 0; i < nb; i++) list[k++] = &bufs[i];
    for (int i = 0; i < np; i++) list[k++] = &sgd[i];
    if (a->eval) list[k++] = &eloc, list[k++] = &econf;
    ssd_status st = ssd_st_write(a->out, list, k, err);
    free(list);
    if (a->eval) ssd_tensor_free(&eloc), ssd_tensor_free(&econf);
    ssd_tensor_free(&loss);
    ssd_tensor *arrays[3] = {grads, bufs, sgd};
    int counts[3] = {ng, nb, np};
    for (int j = 0; j < 3; j++) {
        for (int i = 0; i < counts[j]; i++) ssd_tensor_free(&arrays[j][i]);
        free(arrays[j]);
    }
    return st;
}

static void state_free(step_state *s) {
    if (s->acts) ssd_acts_destroy(s->m, s->acts);
    if (s->images.data) ssd_backend_tensor_free(s->m->be, &s->images);
    ssd_tensor *h[] = {&s->host_loc, &s->host_conf, &s->host_dloc, &s->host_dconf, &s->per_image};
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++)
        if (h[i]->data) ssd_tensor_free(h[i]);
    ssd_model_destroy(s->m);
    ssd_loss_ws_destroy(s->loss_ws);
    free(s->anchors);
}

static void state_init(step_state *s, ssd_backend *be, const step_batch *b, uint32_t seed) {
    memset(s, 0, sizeof *s);
    s->m = ssd_model_create(be, SSD_F32, seed);
    s->acts = ssd_acts_create(s->m, b->n);
    s->images = ssd_backend_tensor_alloc(be, SSD_F32, 4, b->images->shape, "images");
    ssd_backend_upload(be, &s->images, b->images);
    s->host_loc = ssd_tensor_alloc_host(SSD_F32, 3, s->acts->loc.shape, "loc");
    s->host_dloc = ssd_tensor_alloc_host(SSD_F32, 3, s->acts->loc.shape, "dloc");
    s->host_conf = ssd_tensor_alloc_host(SSD_F32, 3, s->acts->conf.shape, "conf");
    s->host_dconf = ssd_tensor_alloc_host(SSD_F32, 3, s->acts->conf.shape, "dconf");
    int64_t n = b->n;
    s->per_image = ssd_tensor_alloc_host(SSD_F32, 1, &n, "per_image_loss");
    s->anchors = ssd_xmalloc(sizeof *s->anchors);
    ssd_anchors_build(s->anchors);
    s->loss_ws = ssd_loss_ws_create();
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* --repeat: time further steps on the same batch (the outputs are already written). */
static void time_steps(step_state *s, const step_batch *b, long repeat) {
    double *ms = ssd_xcalloc((size_t)repeat, sizeof *ms);
    for (long r = 0; r < repeat; r++) {
        double t0 = ssd_now();
        run_step(s, b);
        ms[r] = 1e3 * (ssd_now() - t0);
    }
    qsort(ms, (size_t)repeat, sizeof *ms, cmp_double);
    printf("step timing: backend %s batch %d: median %.1f ms, min %.1f ms over %ld steps "
           "(%.2f img/s)\n",
           s->m->be->name, b->n, ms[repeat / 2], ms[0], repeat, b->n / (ms[repeat / 2] / 1e3));
    free(ms);
}

int ssd_cmd_step(int argc, char **argv) {
    step_args a = {.backend = ssd_backend_default_name(), .momentum = 0.9, .weight_decay = 5e-4, .seed = 1};
    const ssd_opt opts[] = {
        {"--weights", SSD_OPT_STR, &a.weights, false, 1, 0, "W.safetensors",
         "every parameter and BN buffer by torch name (default: reference init from --seed)"},
        {"--pretrained-backbone", SSD_OPT_STR, &a.pretrained, false, 1, 0, "R34.pth",
         "torchvision ResNet-34 state_dict (.pth, any torch container) for the backbone "
         "(conv1, bn1, layer1-3), loaded before --weights"},
        {"--batch", SSD_OPT_STR, &a.batch, true, 1, 0, "B.safetensors",
         "images f32 (N,3,300,300), bboxes f32 (N,8732,4) xywh, labels i64 (N,8732)"},
        {"--out", SSD_OPT_STR, &a.out, true, 1, 0, "O.safetensors",
         "loc, conf, loss, per_image_loss, grad.<name>, BN buffers[, sgd.<name>]"},
        {"--backend", SSD_OPT_STR, &a.backend, false, 1, 0, "NAME", "compute backend"},
        {"--seed", SSD_OPT_INT, &a.seed, false, 0, 4294967295.0, "S", "init seed without --weights"},
        {"--sgd-lr", SSD_OPT_DOUBLE, &a.sgd_lr, false, 0, 1e6, "LR",
         "also apply one SGD step and write sgd.<name> (0: no step)"},
        {"--momentum", SSD_OPT_DOUBLE, &a.momentum, false, 0, 1, "M", "SGD momentum"},
        {"--weight-decay", SSD_OPT_DOUBLE, &a.weight_decay, false, 0, 1, "WD", "SGD weight decay"},
        {"--eval", SSD_OPT_FLAG, &a.eval, false, 1, 0, NULL,
         "also run an inference-mode forward after the step: eval.loc, eval.conf"},
        {"--repeat", SSD_OPT_INT, &a.repeat, false, 0, 100000, "K",
         "then time K more steps on the same batch and print the median"},
        {"--autocast", SSD_OPT_FLAG, &a.autocast, false, 1, 0, NULL,
         "bf16 as PyTorch autocast runs it (cpu, cuda; as ssd train --autocast)"},
    };
    int nopts = (int)(sizeof opts / sizeof opts[0]);
    const char *summary = "One training-mode forward, loss and backward of SSD300-ResNet34 on a given\n"
                          "batch; writes every output and gradient by torch name.";
    int early = ssd_opts_cli("step", summary, opts, nopts, argc, argv);
    if (early >= 0) return early;
    if (a.autocast) {
        const char *why = ssd_cli_autocast("ssd step", a.backend);
        if (why) {
            fprintf(stderr, "ssd step: --autocast: %s\n", why);
            return 2;
        }
    }
    ssd_error err;
    ssd_error_clear(&err);
    int rc = 1;
    ssd_backend *be = NULL;
    ssd_st_file *bf = NULL, *wf = NULL;
    step_state s = {0};
    step_batch b;
    if (ssd_st_read(a.batch, &bf, &err) != SSD_OK || check_batch(bf, a.batch, &b, &err) != SSD_OK)
        goto cleanup;
    if (a.weights && ssd_st_read(a.weights, &wf, &err) != SSD_OK) goto cleanup;
    if (ssd_backend_create(a.backend, &be, &err) != SSD_OK) goto cleanup;
    state_init(&s, be, &b, (uint32_t)a.seed);
    if (a.pretrained) {
        ssd_pretrained_report rep;
        if (ssd_model_load_pretrained_backbone(s.m, a.pretrained, &rep, &err) != SSD_OK)
            goto cleanup;
        fprintf(stderr, "ssd step: pretrained backbone %s (%s container): loaded %d tensors "
                "(%lld values: conv1, bn1, layer1-3 incl. BN running stats); skipped %d unused "
                "(layer4, fc) and %d num_batches_tracked\n", a.pretrained, rep.container,
                rep.loaded, (long long)rep.loaded_values, rep.skipped_unused,
                rep.skipped_counters);
    }
    if (wf && ssd_model_load(s.m, wf, a.weights, true, &err) != SSD_OK) goto cleanup;
    double t0 = ssd_now();
    run_step(&s, &b);
    double ms = 1e3 * (ssd_now() - t0);
    if (write_outputs(&s, &a, &err) != SSD_OK) goto cleanup;
    printf("ssd step: backend %s, batch %d, loss %.7g, %.1f ms; wrote %s\n", be->name, b.n,
           (double)s.loss, ms, a.out);
    if (a.repeat > 0) time_steps(&s, &b, a.repeat);
    rc = 0;
cleanup:
    if (rc) fprintf(stderr, "ssd step: %s\n", err.msg);
    if (s.m) state_free(&s);
    ssd_backend_destroy(be);
    ssd_st_free(bf);
    ssd_st_free(wf);
    return rc;
}

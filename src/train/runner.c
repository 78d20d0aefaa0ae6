/* See runner.h. */
#include "train/runner.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/log.h"
#include "core/timer.h"

#define POOL 3 /* batch sizes kept: the training batch, its short tail, the validation batch */

typedef struct runner_slot {
    int n; /* 0: empty */
    uint64_t used;
    ssd_acts *acts;
    ssd_tensor images; /* on the backend */
    ssd_tensor loc, conf, dloc, dconf; /* host f32 */
} runner_slot;

struct ssd_runner {
    ssd_model *m;
    ssd_anchors anchors;
    ssd_loss_ws *loss_ws;
    runner_slot slot[POOL];
    uint64_t clock;
    ssd_runner_times times;
};

ssd_runner *ssd_runner_create(ssd_model *m) {
    SSD_ASSERT(m->dtype == SSD_F32, "runner: the model must be f32");
    ssd_runner *r = ssd_xcalloc(1, sizeof *r);
    r->m = m;
    ssd_anchors_build(&r->anchors);
    r->loss_ws = ssd_loss_ws_create();
    return r;
}

static void slot_free(ssd_model *m, runner_slot *s) {
    if (!s->n) return;
    ssd_acts_destroy(m, s->acts);
    ssd_backend_tensor_free(m->be, &s->images);
    ssd_tensor_free(&s->loc);
    ssd_tensor_free(&s->conf);
    ssd_tensor_free(&s->dloc);
    ssd_tensor_free(&s->dconf);
    memset(s, 0, sizeof *s);
}

void ssd_runner_destroy(ssd_runner *r) {
    if (!r) return;
    for (int i = 0; i < POOL; i++) slot_free(r->m, &r->slot[i]);
    ssd_loss_ws_destroy(r->loss_ws);
    free(r);
}

/* The slot for batch size n: found, an empty one, or the least recently used one reused. */
static runner_slot *get_slot(ssd_runner *r, int n) {
    runner_slot *pick = NULL;
    for (int i = 0; i < POOL; i++)
        if (r->slot[i].n == n) {
            pick = &r->slot[i];
            break;
        }
    if (!pick) {
        pick = &r->slot[0];
        for (int i = 1; i < POOL; i++)
            if (r->slot[i].used < pick->used) pick = &r->slot[i];
        slot_free(r->m, pick);
        pick->n = n;
        pick->acts = ssd_acts_create(r->m, n);
        int64_t ishape[4] = {n, 3, SSD_IMAGE_SIZE, SSD_IMAGE_SIZE};
        pick->images = ssd_backend_tensor_alloc(r->m->be, SSD_F32, 4, ishape, "images");
        pick->loc = ssd_tensor_alloc_host(SSD_F32, 3, pick->acts->loc.shape, "loc");
        pick->conf = ssd_tensor_alloc_host(SSD_F32, 3, pick->acts->conf.shape, "conf");
        pick->dloc = ssd_tensor_alloc_host(SSD_F32, 3, pick->acts->loc.shape, "dloc");
        pick->dconf = ssd_tensor_alloc_host(SSD_F32, 3, pick->acts->conf.shape, "dconf");
    }
    pick->used = ++r->clock;
    return pick;
}

static void upload_images(ssd_runner *r, runner_slot *s, const float *images) {
    int64_t shape[4] = {s->n, 3, SSD_IMAGE_SIZE, SSD_IMAGE_SIZE};
    ssd_tensor host = ssd_tensor_view((void *)images, SSD_F32, 4, shape, "images");
    ssd_backend_upload(r->m->be, &s->images, &host);
}

float ssd_runner_train_step(ssd_runner *r, int n, const float *images, const float *bboxes,
                            const int64_t *labels, float *per_image) {
    return ssd_runner_train_fragment(r, n, images, bboxes, labels, per_image, 1.0f, true);
}

float ssd_runner_train_fragment(ssd_runner *r, int n, const float *images, const float *bboxes,
                                const int64_t *labels, float *per_image, float grad_scale,
                                bool zero_grad) {
    ssd_model *m = r->m;
    runner_slot *s = get_slot(r, n);
    if (zero_grad) ssd_model_zero_grad(m);
    double t0 = ssd_now();
    upload_images(r, s, images);
    ssd_model_forward(m, s->acts, &s->images, true);
    ssd_backend_download(m->be, &s->loc, &s->acts->loc);
    ssd_backend_download(m->be, &s->conf, &s->acts->conf);
    double t1 = ssd_now();
    float loss = ssd_loss_forward_backward(&r->anchors, n, s->loc.data, s->conf.data, bboxes,
                                           labels, s->dloc.data, s->dconf.data, per_image,
                                           r->loss_ws);
    if (grad_scale != 1.0f) {
        float *dl = s->dloc.data, *dc = s->dconf.data;
        int64_t nl = ssd_tensor_numel(&s->dloc), nc = ssd_tensor_numel(&s->dconf);
        for (int64_t i = 0; i < nl; i++) dl[i] *= grad_scale;
        for (int64_t i = 0; i < nc; i++) dc[i] *= grad_scale;
    }
    ssd_backend_upload(m->be, &s->acts->dloc, &s->dloc);
    ssd_backend_upload(m->be, &s->acts->dconf, &s->dconf);
    double t2 = ssd_now();
    ssd_model_backward(m, s->acts, &s->images);
    m->be->ops->sync(m->be);
    r->times.forward += t1 - t0;
    r->times.loss += t2 - t1;
    r->times.backward += ssd_now() - t2;
    return loss;
}

ssd_runner_times ssd_runner_get_times(const ssd_runner *r) { return r->times; }

void ssd_runner_infer(ssd_runner *r, int n, const float *images, const float **loc,
                      const float **conf) {
    ssd_model *m = r->m;
    runner_slot *s = get_slot(r, n);
    upload_images(r, s, images);
    ssd_model_forward(m, s->acts, &s->images, false);
    ssd_backend_download(m->be, &s->loc, &s->acts->loc);
    ssd_backend_download(m->be, &s->conf, &s->acts->conf);
    m->be->ops->sync(m->be);
    *loc = s->loc.data;
    *conf = s->conf.data;
}

const ssd_anchors *ssd_runner_anchors(const ssd_runner *r) { return &r->anchors; }
ssd_model *ssd_runner_model(const ssd_runner *r) { return r->m; }

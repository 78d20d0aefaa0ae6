/* The threaded data loader; see loader.h for the contract.
 *
 * Threads and the ring: batch number `seq` (0, 1, ... from the start position) is built in slot
 * seq % nslots. A worker claims the next seq only when that slot is FREE (the consumer has
 * released batch seq - nslots), builds it without holding the lock, and marks it READY; the
 * consumer waits for READY with the right seq, so batches come out strictly in order however the
 * workers interleave. One mutex and two condition variables guard the slot states; nothing
 * else is shared between workers except the read-only index, anchors and configuration. */
#include "core/pin.h"
#include "data/loader.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "box/encoder.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rng.h"
#include "data/jpeg.h"
#include "data/sampler.h"

#define MAX_REPLACEMENTS 64
#define IMG_FLOATS ((size_t)3 * SSD_AUG_SIZE * SSD_AUG_SIZE)

enum { SLOT_FREE, SLOT_BUSY, SLOT_READY };

typedef struct slot {
    ssd_batch b;
    int state;
    int64_t seq;
    int failed;
    char err[SSD_ERROR_MSG_LEN];
} slot;

/* Per-thread state: decoder, transform and encoder scratch, the epoch's permutation. */
typedef struct worker {
    struct ssd_loader *l;
    ssd_jpeg *jpeg;
    ssd_augment_ws *aws;
    ssd_encoder_ws *ews;
    ssd_image img;
    float *boxes;
    int32_t *labels;
    int64_t *labels64;
    int cap; /* boxes capacity */
    char *path;
    size_t path_cap;
    int64_t *perm;
    int64_t perm_epoch;
    pthread_t thread;
} worker;

struct ssd_loader {
    ssd_loader_cfg cfg;
    ssd_sampler smp;
    ssd_anchors *anchors; /* train only */
    slot *slots;
    int nslots;
    worker *workers; /* num_workers, or one for the synchronous mode */
    int nworkers;
    pthread_mutex_t mu;
    pthread_cond_t cv_free, cv_ready;
    int64_t next_job, next_out, end_seq;
    int holding, stop, threads_started;
    atomic_llong bad;
    char error[SSD_ERROR_MSG_LEN];
    int has_error;
};

void ssd_loader_cfg_default(ssd_loader_cfg *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->train = 1;
    cfg->batch_size = 32;
    cfg->num_workers = 4;
    cfg->world = 1;
    cfg->shuffle = -1;
    cfg->seed = 1;
    ssd_augment_cfg_default(&cfg->aug);
    cfg->augment = 1;
}

/* Batches of an epoch this loader streams: all, or those of its batch stride. */
static int64_t batches_streamed(const ssd_loader *l) {
    int64_t it = l->smp.iters, s = l->cfg.batch_stride;
    if (s <= 1) return it;
    return l->cfg.batch_offset < it ? (it - l->cfg.batch_offset + s - 1) / s : 0;
}

static void seq_position(const ssd_loader *l, int64_t seq, int64_t *epoch, int64_t *iter) {
    if (l->cfg.batch_stride > 1) {
        int64_t cnt = batches_streamed(l);
        *epoch = l->cfg.start_epoch + seq / cnt;
        *iter = l->cfg.batch_offset + (seq % cnt) * l->cfg.batch_stride;
        return;
    }
    int64_t t = l->cfg.start_iter + seq, it = l->smp.iters;
    *epoch = l->cfg.start_epoch + t / it;
    *iter = t % it;
}

static void worker_init(worker *w, ssd_loader *l) {
    memset(w, 0, sizeof *w);
    w->l = l;
    w->jpeg = ssd_jpeg_create();
    w->aws = ssd_augment_ws_create();
    w->ews = ssd_encoder_ws_create(64);
    w->perm = ssd_xmalloc((size_t)l->smp.n * sizeof *w->perm);
    w->perm_epoch = -1;
}

static void worker_free(worker *w) {
    ssd_jpeg_destroy(w->jpeg);
    ssd_augment_ws_destroy(w->aws);
    ssd_encoder_ws_destroy(w->ews);
    ssd_image_free(&w->img);
    free(w->boxes);
    free(w->labels);
    free(w->labels64);
    free(w->path);
    free(w->perm);
}

/* Decodes dataset sample j into w->img. */
static ssd_status decode_sample(worker *w, int64_t j, ssd_error *err) {
    const ssd_loader_cfg *c = &w->l->cfg;
    const char *name = ssd_coco_file_name(c->index, j);
    size_t need = strlen(c->image_dir) + strlen(name) + 2;
    if (need > w->path_cap) {
        w->path = ssd_xrealloc(w->path, need);
        w->path_cap = need;
    }
    snprintf(w->path, need, "%s/%s", c->image_dir, name);
    return ssd_jpeg_decode_file(w->jpeg, w->path, &w->img, err);
}

/* Copies sample j's boxes and labels into the worker's scratch; returns their number. */
static int load_boxes(worker *w, int64_t j) {
    const ssd_coco_index *ix = w->l->cfg.index;
    const ssd_coco_sample *s = &ix->samples[j];
    int nb = (int)s->num_boxes;
    if (nb > w->cap) {
        w->cap = nb;
        w->boxes = ssd_xrealloc(w->boxes, (size_t)nb * 4 * sizeof(float));
        w->labels = ssd_xrealloc(w->labels, (size_t)nb * sizeof(int32_t));
        w->labels64 = ssd_xrealloc(w->labels64, (size_t)nb * sizeof(int64_t));
    }
    memcpy(w->boxes, ix->boxes + (size_t)s->first_box * 4, (size_t)nb * 4 * sizeof(float));
    memcpy(w->labels, ix->labels + s->first_box, (size_t)nb * sizeof(int32_t));
    return nb;
}

/* Builds batch `seq` into b. Returns 0, or -1 with msg filled on a fatal error. */
static int build_batch(worker *w, int64_t seq, ssd_batch *b, char *msg) {
    ssd_loader *l = w->l;
    const ssd_loader_cfg *c = &l->cfg;
    const ssd_coco_index *ix = c->index;
    int64_t epoch, iter;
    seq_position(l, seq, &epoch, &iter);
    if (w->perm_epoch != epoch) {
        ssd_sampler_permutation(&l->smp, epoch, w->perm);
        w->perm_epoch = epoch;
    }
    b->n = ssd_sampler_batch_size(&l->smp, iter);
    b->epoch = epoch;
    b->iter = iter;
    b->replaced = 0;
    for (int k = 0; k < b->n; k++) {
        int64_t idx, gslot, j = -1;
        ssd_sampler_sample(&l->smp, w->perm, iter, k, &idx, &gslot);
        int attempt;
        ssd_error err;
        for (attempt = 0; attempt < MAX_REPLACEMENTS; attempt++) {
            j = (idx + attempt) % ix->num_samples;
            if (decode_sample(w, j, &err) == SSD_OK) break;
            atomic_fetch_add(&l->bad, 1);
            SSD_WARN("data: skipping image id %lld: %s (replaced by the next sample)",
                     (long long)ix->samples[j].image_id, err.msg);
        }
        if (attempt == MAX_REPLACEMENTS) {
            snprintf(msg, SSD_ERROR_MSG_LEN,
                     "data: %d consecutive images could not be read under %s (last: %.700s); "
                     "is the image directory right?",
                     MAX_REPLACEMENTS, c->image_dir, err.msg);
            return -1;
        }
        b->replaced += attempt > 0;
        const ssd_coco_sample *s = &ix->samples[j];
        float *img_out = b->images + (size_t)k * IMG_FLOATS;
        b->image_ids[k] = s->image_id;
        b->indices[k] = j;
        b->orig_sizes[2 * k] = s->height;
        b->orig_sizes[2 * k + 1] = s->width;
        if (c->train) {
            /* The sample's random stream: global slot and epoch; `attempt` separates the
             * stream of a replacement from that of the sample it replaces. */
            ssd_rng r = ssd_rng_stream(c->seed, SSD_RNG_DOMAIN_AUGMENT, 0, (uint32_t)attempt,
                                       ((uint64_t)epoch << 32) | (uint64_t)gslot);
            int nb = load_boxes(w, j), oh = s->height, ow = s->width;
            if (c->augment)
                ssd_augment_train(&c->aug, &r, w->aws, &w->img, w->boxes, w->labels, &nb,
                                  img_out, &oh, &ow, NULL);
            else /* fixed inputs (testing aid): the validation transform, boxes as annotated */
                ssd_augment_val(w->aws, &w->img, img_out);
            for (int q = 0; q < nb; q++) w->labels64[q] = w->labels[q];
            ssd_encode(l->anchors, w->boxes, w->labels64, nb,
                       b->bboxes + (size_t)k * SSD_NUM_ANCHORS * 4,
                       b->labels + (size_t)k * SSD_NUM_ANCHORS, w->ews);
            b->sizes[2 * k] = oh;
            b->sizes[2 * k + 1] = ow;
        } else {
            ssd_augment_val(w->aws, &w->img, img_out);
            b->sizes[2 * k] = s->height;
            b->sizes[2 * k + 1] = s->width;
        }
    }
    return 0;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    ssd_loader *l = w->l;
    if (l->cfg.worker_cpus) ssd_bind_thread(l->cfg.worker_cpus); /* best effort */
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->next_job < l->end_seq &&
               l->slots[l->next_job % l->nslots].state != SLOT_FREE)
            pthread_cond_wait(&l->cv_free, &l->mu);
        if (l->stop || l->next_job >= l->end_seq) break;
        int64_t seq = l->next_job++;
        slot *s = &l->slots[seq % l->nslots];
        s->state = SLOT_BUSY;
        s->seq = seq;
        pthread_mutex_unlock(&l->mu);
        int rc = build_batch(w, seq, &s->b, s->err);
        pthread_mutex_lock(&l->mu);
        s->failed = rc != 0;
        s->state = SLOT_READY;
        if (rc != 0) l->end_seq = seq + 1; /* nothing after a fatal error is built */
        pthread_cond_broadcast(&l->cv_ready);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void *big_alloc(const ssd_loader_cfg *c, size_t bytes) {
    return c->host_alloc ? c->host_alloc(c->host_ctx, bytes) : ssd_aligned_alloc(bytes);
}

static void big_free(const ssd_loader_cfg *c, void *p) {
    if (!p) return;
    if (c->host_free) c->host_free(c->host_ctx, p);
    else ssd_aligned_free(p);
}

static void slot_alloc(slot *s, const ssd_loader_cfg *c) {
    int n = c->batch_size;
    ssd_batch *b = &s->b;
    b->images = big_alloc(c, (size_t)n * IMG_FLOATS * sizeof(float));
    if (c->train) {
        b->bboxes = big_alloc(c, (size_t)n * SSD_NUM_ANCHORS * 4 * sizeof(float));
        b->labels = big_alloc(c, (size_t)n * SSD_NUM_ANCHORS * sizeof(int64_t));
    }
    b->image_ids = ssd_xcalloc((size_t)n, sizeof(int64_t));
    b->indices = ssd_xcalloc((size_t)n, sizeof(int64_t));
    b->orig_sizes = ssd_xcalloc((size_t)n * 2, sizeof(int32_t));
    b->sizes = ssd_xcalloc((size_t)n * 2, sizeof(int32_t));
}

static void slot_free(slot *s, const ssd_loader_cfg *c) {
    ssd_batch *b = &s->b;
    big_free(c, b->images);
    big_free(c, b->bboxes);
    big_free(c, b->labels);
    free(b->image_ids);
    free(b->indices);
    free(b->orig_sizes);
    free(b->sizes);
}

ssd_status ssd_loader_create(const ssd_loader_cfg *cfg, ssd_loader **out, ssd_error *err) {
    *out = NULL;
    if (!cfg->index || cfg->index->num_samples <= 0)
        return ssd_fail(err, SSD_ERR_ARG, "data: the annotation index has no samples");
    if (cfg->batch_size < 1 || cfg->batch_size > 65536)
        return ssd_fail(err, SSD_ERR_ARG, "data: batch size %d must be in 1..65536",
                        cfg->batch_size);
    if (cfg->num_workers < 0 || cfg->num_workers > 256)
        return ssd_fail(err, SSD_ERR_ARG, "data: --num-workers %d must be in 0..256",
                        cfg->num_workers);
    if (cfg->prefetch < 0 || cfg->prefetch > 1024)
        return ssd_fail(err, SSD_ERR_ARG, "data: prefetch %d must be in 0..1024", cfg->prefetch);
    if (cfg->world < 1 || cfg->rank < 0 || cfg->rank >= cfg->world || cfg->world > 65536)
        return ssd_fail(err, SSD_ERR_ARG, "data: rank %d of world size %d", cfg->rank,
                        cfg->world);
    if (cfg->start_epoch < 0 || cfg->start_iter < 0 || cfg->epochs < 0)
        return ssd_fail(err, SSD_ERR_ARG, "data: negative start position or epoch count");
    if (cfg->batch_stride < 0 || cfg->batch_offset < 0 ||
        (cfg->batch_stride > 1 && (cfg->batch_offset >= cfg->batch_stride || cfg->start_iter)))
        return ssd_fail(err, SSD_ERR_ARG, "data: batch offset %d of stride %d from batch %lld",
                        cfg->batch_offset, cfg->batch_stride, (long long)cfg->start_iter);
    if (cfg->aug.crop_iterations < 1)
        return ssd_fail(err, SSD_ERR_ARG, "data: --num-cropping-iterations %d must be >= 1",
                        cfg->aug.crop_iterations);
    struct stat st;
    if (!cfg->image_dir || stat(cfg->image_dir, &st) != 0)
        return ssd_fail(err, SSD_ERR_IO, "%s: cannot open image directory: %s",
                        cfg->image_dir ? cfg->image_dir : "(null)", strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ssd_fail(err, SSD_ERR_IO, "%s: not a directory", cfg->image_dir);

    ssd_loader *l = ssd_xcalloc(1, sizeof *l);
    l->cfg = *cfg;
    int shuffle = cfg->shuffle < 0 ? cfg->train : cfg->shuffle;
    ssd_sampler_init(&l->smp, cfg->index->num_samples, cfg->batch_size, cfg->rank, cfg->world,
                     shuffle, cfg->seed);
    if (cfg->start_iter >= l->smp.iters) {
        int64_t iters = l->smp.iters;
        free(l);
        return ssd_fail(err, SSD_ERR_ARG, "data: start iteration %lld, but an epoch has %lld",
                        (long long)cfg->start_iter, (long long)iters);
    }
    if (cfg->train) {
        l->anchors = ssd_xmalloc(sizeof *l->anchors);
        ssd_anchors_build(l->anchors);
    }
    l->end_seq = cfg->epochs > 0 ? cfg->epochs * batches_streamed(l) - cfg->start_iter : INT64_MAX;
    int nw = cfg->num_workers;
    l->nslots = cfg->prefetch > 0 ? cfg->prefetch : 2 * (nw > 0 ? nw : 1);
    if (nw == 0) l->nslots = 1;
    l->slots = ssd_xcalloc((size_t)l->nslots, sizeof *l->slots);
    for (int i = 0; i < l->nslots; i++) slot_alloc(&l->slots[i], cfg);
    l->nworkers = nw > 0 ? nw : 1;
    l->workers = ssd_xcalloc((size_t)l->nworkers, sizeof *l->workers);
    for (int i = 0; i < l->nworkers; i++) worker_init(&l->workers[i], l);
    atomic_init(&l->bad, 0);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv_free, NULL);
    pthread_cond_init(&l->cv_ready, NULL);
    for (int i = 0; i < nw; i++) {
        int rc = pthread_create(&l->workers[i].thread, NULL, worker_main, &l->workers[i]);
        if (rc != 0) {
            l->threads_started = i;
            ssd_loader_destroy(l);
            return ssd_fail(err, SSD_ERR_INTERNAL, "data: cannot start worker thread %d: %s", i,
                            strerror(rc));
        }
    }
    l->threads_started = nw;
    *out = l;
    return SSD_OK;
}

const ssd_batch *ssd_loader_next(ssd_loader *l) {
    pthread_mutex_lock(&l->mu);
    if (l->holding) {
        l->slots[(l->next_out - 1) % l->nslots].state = SLOT_FREE;
        l->holding = 0;
        pthread_cond_broadcast(&l->cv_free);
    }
    if (l->has_error || l->next_out >= l->end_seq) {
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    int64_t seq = l->next_out;
    slot *s = &l->slots[seq % l->nslots];
    if (l->cfg.num_workers == 0) {
        pthread_mutex_unlock(&l->mu);
        s->failed = build_batch(&l->workers[0], seq, &s->b, s->err) != 0;
        pthread_mutex_lock(&l->mu);
    } else {
        while (!(s->state == SLOT_READY && s->seq == seq)) pthread_cond_wait(&l->cv_ready, &l->mu);
    }
    const ssd_batch *b = NULL;
    if (s->failed) {
        snprintf(l->error, sizeof l->error, "%s", s->err);
        l->has_error = 1;
        s->state = SLOT_FREE;
    } else {
        s->state = SLOT_BUSY;
        l->holding = 1;
        l->next_out++;
        b = &s->b;
    }
    pthread_mutex_unlock(&l->mu);
    return b;
}

void ssd_loader_destroy(ssd_loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv_free);
    pthread_cond_broadcast(&l->cv_ready);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->threads_started; i++) pthread_join(l->workers[i].thread, NULL);
    for (int i = 0; i < l->nworkers; i++) worker_free(&l->workers[i]);
    for (int i = 0; i < l->nslots; i++) slot_free(&l->slots[i], &l->cfg);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv_free);
    pthread_cond_destroy(&l->cv_ready);
    free(l->workers);
    free(l->slots);
    free(l->anchors);
    free(l);
}

const char *ssd_loader_error(const ssd_loader *l) { return l->has_error ? l->error : NULL; }

int64_t ssd_loader_iters_per_epoch(const ssd_loader *l) { return l->smp.iters; }

int64_t ssd_loader_samples_per_epoch(const ssd_loader *l) { return l->smp.per_rank; }

void ssd_loader_position(const ssd_loader *l, int64_t *epoch, int64_t *iter) {
    seq_position(l, l->next_out, epoch, iter);
}

int64_t ssd_loader_bad_files(const ssd_loader *l) { return atomic_load(&l->bad); }

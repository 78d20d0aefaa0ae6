/* The threaded data loader: COCO index + JPEG files -> ready batches (spec 6.2-6.5).
 *
 * A loader streams batches in order -- epoch e batch 0, 1, ..., iters-1, then epoch e+1 -- from
 * a start position. `num_workers` threads each build whole batches (decode, transform, and for
 * training the encoder, as the reference's DataLoader workers do) into a ring of `prefetch`
 * slots; the consumer takes them strictly in order. With num_workers = 0 the caller's thread
 * builds each batch inside ssd_loader_next.
 *
 * Determinism: the order comes from the sampler (seed, epoch) and every sample's augmentation
 * from the Philox stream (seed, AUGMENT, epoch, global slot), so the bytes of every batch depend
 * only on (seed, epoch, position, rank/world layout), never on the number of workers or on thread
 * timing.
 *
 * Bad files: a JPEG that is missing, corrupt or truncated is reported once per occurrence
 * (SSD_WARN, file and reason), counted, and replaced by the next dataset sample that decodes
 * (index + 1, + 2, ... with its own random stream), so a batch is always full and never
 * contains a silent zero image. If 64 consecutive samples fail, the loader stops with an error
 * (ssd_loader_next returns NULL and ssd_loader_error says why): the image directory is wrong.
 *
 * Resuming: ssd_loader_position() is the (epoch, iter) of the next batch ssd_loader_next will
 * return; a loader created with that start position continues the identical stream. */
#ifndef SSD_DATA_LOADER_H
#define SSD_DATA_LOADER_H

#include <stdint.h>

#include "box/anchors.h"
#include "core/status.h"
#include "data/augment.h"
#include "data/coco_json.h"

typedef struct ssd_loader_cfg {
    const ssd_coco_index *index; /* borrowed; must outlive the loader */
    const char *image_dir;       /* directory of the index's file names */
    int train;          /* 1: training transform + encoded targets; 0: validation transform */
    int batch_size;     /* per rank */
    int num_workers;    /* threads; 0 = build batches in the caller's thread */
    int prefetch;       /* ring slots (ready or being built); 0 = 2 * max(1, num_workers) */
    int rank, world;    /* data-parallel sharding (1 rank: 0, 1) */
    int shuffle;        /* per-epoch shuffle; -1 = default (on for train, off for validation) */
    uint32_t seed;
    ssd_augment_cfg aug;
    int augment;        /* train: 1 = the reference's random transform (default); 0 = the
                           validation transform with the annotated boxes (fixed inputs) */
    int64_t start_epoch, start_iter; /* where the stream starts */
    int64_t epochs;     /* epochs to stream from start_epoch; 0 = until destroyed */
    int batch_offset, batch_stride; /* stream only batches offset, offset + stride, ... of each
                                       epoch (0, 0 = all; stride > 1 needs start_iter 0). The
                                       sharded evaluation: rank r of W takes whole batches
                                       r, r + W, ... so each batch is the one a single process
                                       would build */
    /* Allocator of the large batch arrays (images, bboxes, labels); NULL: 64-byte aligned host
     * memory. A GPU trainer passes its backend's pinned-memory allocator
     * (ssd_backend_pinned_alloc), so uploads from the batches run at DMA speed. */
    void *(*host_alloc)(void *ctx, size_t bytes);
    void (*host_free)(void *ctx, void *p);
    void *host_ctx;
    /* NULL: the workers run where the creating thread may. Else the CPUs they are bound to
     * (--pin-threads: the rank's share, while the caller's own thread is pinned to one of them);
     * borrowed, must outlive the loader. */
    const struct ssd_cpus *worker_cpus;
} ssd_loader_cfg;

/* Defaults: train, batch 32, 4 workers, default prefetch, rank 0 of 1, seed 1, the reference's
 * augmentation, start at (0, 0), endless. Caller sets index and image_dir. */
void ssd_loader_cfg_default(ssd_loader_cfg *cfg);

typedef struct ssd_batch {
    int n;                 /* samples (the epoch's last batch may be short) */
    int64_t epoch, iter;
    float *images;         /* [n][3][300][300], normalised */
    float *bboxes;         /* train: [n][8732][4] encoded xywh (what `ssd step` takes); else NULL */
    int64_t *labels;       /* train: [n][8732]; else NULL */
    int64_t *image_ids;    /* [n] COCO image ids */
    int64_t *indices;      /* [n] dataset sample actually used (after any replacement) */
    int32_t *orig_sizes;   /* [n][2] (H, W) from the JSON */
    int32_t *sizes;        /* [n][2] (H, W) after the crop (train; = orig_sizes for validation) */
    int replaced;          /* samples of this batch that replaced an unreadable file */
} ssd_batch;

typedef struct ssd_loader ssd_loader;

ssd_status ssd_loader_create(const ssd_loader_cfg *cfg, ssd_loader **out, ssd_error *err);
void ssd_loader_destroy(ssd_loader *l); /* stops and joins the workers; NULL is fine */

/* Next batch in stream order; blocks until it is ready. The batch stays valid until the next
 * call (or destroy). NULL at the end of the requested epochs or after a fatal error. */
const ssd_batch *ssd_loader_next(ssd_loader *l);

/* Set when ssd_loader_next returned NULL because of an error (else NULL). */
const char *ssd_loader_error(const ssd_loader *l);

int64_t ssd_loader_iters_per_epoch(const ssd_loader *l);
int64_t ssd_loader_samples_per_epoch(const ssd_loader *l); /* per rank, with padding */
void ssd_loader_position(const ssd_loader *l, int64_t *epoch, int64_t *iter);
/* Unreadable files met so far (each replacement counts once). */
int64_t ssd_loader_bad_files(const ssd_loader *l);

#endif

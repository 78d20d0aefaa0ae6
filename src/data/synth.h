/* A synthetic COCO-format detection dataset, for tests, benchmarks and smoke runs without the
 * real COCO download (`ssd synth`).
 *
 * ssd_synth_write makes, under cfg->out_dir, the layout the trainer reads (spec 6.1):
 *   train2017/%012d.jpg, val2017/%012d.jpg,
 *   annotations/instances_train2017.json, annotations/instances_val2017.json
 * Each image is a JPEG of flat-coloured rectangles, ellipses and triangles on a noisy
 * two-colour gradient (sizes 160..640 px, both orientations, a few grayscale files). Each
 * annotation is one drawn shape: category = one of the 80 real COCO categories (sparse ids
 * 1..90, listed in ascending id order as in COCO), bbox [x, y, w, h] of the shape (inside the
 * image), area = its pixel count, a polygon segmentation, or for iscrowd=1 annotations an
 * uncompressed RLE {"counts", "size"} of its mask (column-major, as pycocotools). Some images
 * have no annotation (the index must drop them). The JSONs carry "info" and "licenses" blocks.
 *
 * Everything is a function of (seed, n_train, n_val, quality): same inputs, byte-identical
 * files (TurboJPEG's TJ_* environment variables, if set, change the JPEG bytes). Every file is
 * written atomically; the JSONs last, so a complete JSON means all its images are there. */
#ifndef SSD_DATA_SYNTH_H
#define SSD_DATA_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

typedef struct ssd_synth_stats {
    /* [0] = train2017, [1] = val2017 */
    int images[2];
    int gray_images[2];
    int empty_images[2];   /* images without annotations */
    int annotations[2];
    int crowd[2];          /* annotations with iscrowd = 1 */
} ssd_synth_stats;

typedef struct ssd_synth_cfg {
    const char *out_dir;
    int n_train, n_val;     /* images per split, each 1..1000000 */
    uint32_t seed;
    int quality;            /* JPEG quality 1..100; 0 = 90 */
    bool force;             /* write into an existing non-empty out_dir */
    ssd_synth_stats *stats; /* optional; filled on success */
} ssd_synth_cfg;

/* Errors: SSD_ERR_ARG for bad counts/quality or a non-empty out_dir without force; SSD_ERR_IO
 * (naming the path) when a directory or file cannot be made. */
ssd_status ssd_synth_write(const ssd_synth_cfg *cfg, ssd_error *err);

#endif

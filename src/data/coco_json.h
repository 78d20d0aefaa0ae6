/* COCO instances annotations -> the training/validation index (spec/ssd-reference.md 6.1).
 *
 * What the index holds, exactly as the reference's COCODetection builds it:
 *   - label map: the JSON `categories` list in FILE order; the i-th category (1-based) gets
 *     contiguous label i (label 0 = background). category_ids[i-1] is its COCO id.
 *   - images in JSON `images` order (duplicate ids are an error), each with file_name and the
 *     JSON width/height; annotations appended to their image in JSON `annotations` order;
 *   - crowd annotations are kept as ordinary boxes (iscrowd is recorded, not filtered);
 *   - images with no annotation are dropped; sample i = the i-th remaining image.
 *   - each box is stored as ltrb normalised by the JSON width/height, computed in double and
 *     rounded to float: (x/W, y/H, (x+w)/W, (y+h)/H).
 * Errors (SSD_ERR_FORMAT) name the file and the JSON path, e.g.
 *   "instances_train2017.json: annotations[17].bbox[2]: negative width -3"
 *   "instances_val2017.json: images[4].id 139 appears twice (also images[1])"
 *   "x.json: malformed JSON near byte 1234 (line 56)".
 * Rejected: missing/ill-typed fields the index needs, non-finite or negative bbox w/h, an
 * annotation whose image_id or category_id is not in the file, non-positive image sizes,
 * empty or over-long file names, more than 2^31 boxes.
 * Memory: `segmentation` values are skipped before the JSON tree is built, so the 448 MB
 * train2017 file parses in a fraction of its size in nodes.
 *
 * Binary cache: ssd_coco_index_load() keeps a compact binary copy of the index in a cache
 * directory, keyed by the JSON's absolute path and validated by its size and mtime (and a
 * format version and checksum of the cache itself); a valid cache loads in milliseconds, a
 * stale, foreign or corrupt one is rebuilt. An unwritable cache directory only warns. */
#ifndef SSD_DATA_COCO_JSON_H
#define SSD_DATA_COCO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define SSD_COCO_MAX_CATEGORIES 1000

typedef struct ssd_coco_sample {
    int64_t image_id;
    int32_t width, height;  /* from the JSON */
    uint32_t first_box;     /* index into boxes/labels/crowd */
    uint32_t num_boxes;     /* >= 1 */
    uint32_t name_off;      /* file_name = names + name_off (NUL-terminated) */
} ssd_coco_sample;

typedef struct ssd_coco_index {
    int num_categories;          /* 80 for COCO */
    int64_t *category_ids;       /* [num_categories]: label i -> category_ids[i-1] */
    int64_t num_images_json;     /* images in the file, before dropping */
    int64_t num_samples;         /* images with >= 1 annotation */
    ssd_coco_sample *samples;    /* [num_samples] */
    int64_t num_boxes;
    float *boxes;                /* [num_boxes][4] ltrb, normalised */
    int32_t *labels;             /* [num_boxes] 1..num_categories */
    uint8_t *crowd;              /* [num_boxes] iscrowd */
    char *names;                 /* file names, NUL-separated */
    int64_t names_len;
} ssd_coco_index;

/* The reference's dataset layout (spec 6.1) under `root` for split "train" or "val":
 * ann = root/annotations/instances_<split>2017.json, images = root/<split>2017. Returns 0, or -1
 * when a path does not fit its buffer. */
int ssd_coco_split_paths(const char *root, const char *split, char *ann, size_t ann_len,
                         char *images, size_t images_len);

/* Parses the JSON file (no cache). */
ssd_status ssd_coco_index_parse(const char *json_path, ssd_coco_index **out, ssd_error *err);

/* Parses or loads from the cache. cache_dir NULL -> the default: $SSD_CACHE_DIR, else
 * $XDG_CACHE_HOME/ssd, else $HOME/.cache/ssd; "" -> no cache. *from_cache (may be NULL) tells
 * which happened. */
ssd_status ssd_coco_index_load(const char *json_path, const char *cache_dir,
                               ssd_coco_index **out, bool *from_cache, ssd_error *err);

/* The project's cache directory (malloc'd), or NULL when caching is off: cache_dir itself when
 * given ("" = off), else $SSD_CACHE_DIR ("" = off), else $XDG_CACHE_HOME/ssd (absolute values
 * only), else $HOME/.cache/ssd. */
char *ssd_cache_dir(const char *cache_dir);

void ssd_coco_index_free(ssd_coco_index *idx); /* NULL is fine */

static inline const char *ssd_coco_file_name(const ssd_coco_index *idx, int64_t i) {
    return idx->names + idx->samples[i].name_off;
}

/* label (1..num_categories) -> COCO category id; 0 for an out-of-range label. */
int64_t ssd_coco_label_to_id(const ssd_coco_index *idx, int label);

#endif

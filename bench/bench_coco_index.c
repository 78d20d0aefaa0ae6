/* bench_coco_index: how long the COCO annotation index takes to build from the JSON (cold) and
 * to load from its binary cache (warm), and the process's peak memory.
 *
 *     bench_coco_index JSON [--cache-dir D] [--repeat N]
 *
 * Cold = ssd_coco_index_load with no valid cache: read, parse, pack, write the cache. Warm =
 * the same call again, N times (default 5; the median and the fastest are printed). Without
 * --cache-dir a fresh temporary directory is used and removed afterwards, so the first load is
 * always cold; with --cache-dir an existing cache makes it warm ("cold_from_cache": true).
 * peak_rss_mb is getrusage's ru_maxrss after the cold load (the cold parse is the peak).
 * One JSON line on stdout. tools/make_big_instances.py writes a train2017-sized input.
 *
 * A benchmark never decides pass/fail of anything: the exit status only says whether the flags
 * were understood (2 if not) and the loads succeeded (0; 1 with the error on stderr). */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/timer.h"
#include "data/coco_json.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int usage(void) {
    fprintf(stderr, "usage: bench_coco_index JSON [--cache-dir D] [--repeat N]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *json = NULL, *dir = NULL;
    int repeat = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cache-dir") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
            repeat = atoi(argv[++i]);
            if (repeat < 1 || repeat > 1000) return usage();
        } else if (argv[i][0] == '-' || json) {
            return usage();
        } else {
            json = argv[i];
        }
    }
    if (!json) return usage();
    char tmp[] = "/tmp/bench_coco_index.XXXXXX";
    if (!dir) {
        if (!mkdtemp(tmp)) {
            perror("mkdtemp");
            return 1;
        }
        dir = tmp;
    }

    ssd_error err;
    ssd_coco_index *idx = NULL;
    bool cached = false;
    double t0 = ssd_now();
    if (ssd_coco_index_load(json, dir, &idx, &cached, &err) != SSD_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double cold = ssd_now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double *warm = calloc((size_t)repeat, sizeof *warm);
    int all_cached = 1;
    for (int r = 0; r < repeat; r++) {
        ssd_coco_index *w = NULL;
        bool c = false;
        t0 = ssd_now();
        if (ssd_coco_index_load(json, dir, &w, &c, &err) != SSD_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        warm[r] = ssd_now() - t0;
        all_cached &= c;
        ssd_coco_index_free(w);
    }
    qsort(warm, (size_t)repeat, sizeof *warm, cmp_double);
    struct stat sb;
    long long bytes = stat(json, &sb) == 0 ? (long long)sb.st_size : -1;
    printf("{\"json\":\"%s\",\"json_bytes\":%lld,\"cold_s\":%.4f,\"cold_from_cache\":%s,"
           "\"peak_rss_mb\":%.1f,\"warm_s\":%.5f,\"warm_min_s\":%.5f,\"warm_repeat\":%d,"
           "\"warm_from_cache\":%s,\"num_categories\":%d,\"num_images_json\":%lld,"
           "\"num_samples\":%lld,\"num_boxes\":%lld}\n",
           json, bytes, cold, cached ? "true" : "false", ru.ru_maxrss / 1024.0,
           warm[repeat / 2], warm[0], repeat, all_cached ? "true" : "false", idx->num_categories,
           (long long)idx->num_images_json, (long long)idx->num_samples,
           (long long)idx->num_boxes);
    ssd_coco_index_free(idx);
    free(warm);
    if (dir == tmp) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    }
    return 0;
}

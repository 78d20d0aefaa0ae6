/* Shared pieces of `ssd bench` (cmd_bench.c parses the options and dispatches on --what). */
#ifndef SSD_CLI_BENCH_H
#define SSD_CLI_BENCH_H

#include <stdbool.h>

typedef struct bench_args {
    const char *what, *workdir, *python, *threads_list;
    long images, dets, seed, repeat;
    bool json, keep, no_pycocotools;
    /* --what loader */
    const char *data, *torch_python;
    long workers, batch, crop_iterations;
    bool no_reference;
    /* --what train */
    const char *dtype, *backend;
    bool pin_threads;
} bench_args;

/* Runs `python script_args` after checking that python can `import probe`; returns the last line
 * it printed (malloc'd) or NULL with *why set. */
char *ssd_bench_run_python(const char *python, const char *probe, const char *script_args,
                           const char **why);

int ssd_bench_loader(const bench_args *a);
int ssd_bench_train(const bench_args *a);

#endif

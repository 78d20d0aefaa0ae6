/* `ssd synth --out DIR`: writes a small synthetic COCO-format dataset (data/synth.h) for smoke
 * runs, tests and benchmarks without the real COCO download. */
#include <stdio.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "data/synth.h"

int ssd_cmd_synth(int argc, char **argv) {
    const char *out = NULL;
    long images = 64, val_images = 0, seed = 1, quality = 90;
    bool force = false;
    const ssd_opt opts[] = {
        {"--out", SSD_OPT_STR, &out, true, 1, 0, "DIR", "output directory (created if missing)"},
        {"--images", SSD_OPT_INT, &images, false, 1, 1000000, "N", "training images"},
        {"--val-images", SSD_OPT_INT, &val_images, false, 0, 1000000, "M",
         "validation images (0: N/4, at least 8)"},
        {"--seed", SSD_OPT_INT, &seed, false, 0, 4294967295.0, "S",
         "seed: the same seed and counts give byte-identical files"},
        {"--quality", SSD_OPT_INT, &quality, false, 1, 100, "Q", "JPEG quality"},
        {"--force", SSD_OPT_FLAG, &force, false, 1, 0, NULL,
         "write into DIR even if it is not empty (existing files of the same names are replaced)"},
    };
    int nopts = (int)(sizeof opts / sizeof opts[0]);
    const char *summary =
        "Writes a synthetic COCO-format detection dataset: DIR/train2017/*.jpg, DIR/val2017/*.jpg,\n"
        "DIR/annotations/instances_{train,val}2017.json. Images are JPEGs of coloured shapes on\n"
        "noisy gradients; each annotation is one shape (bbox, area, polygon or crowd RLE) with\n"
        "one of the 80 COCO categories; some images have no annotation.";
    int early = ssd_opts_cli("synth", summary, opts, nopts, argc, argv);
    if (early >= 0) return early;
    if (val_images == 0) val_images = images / 4 < 8 ? 8 : images / 4;
    ssd_synth_stats st;
    ssd_synth_cfg cfg = {.out_dir = out,
                         .n_train = (int)images,
                         .n_val = (int)val_images,
                         .seed = (uint32_t)seed,
                         .quality = (int)quality,
                         .force = force,
                         .stats = &st};
    ssd_error err;
    ssd_error_clear(&err);
    if (ssd_synth_write(&cfg, &err) != SSD_OK) {
        fprintf(stderr, "ssd synth: %s\n", err.msg);
        return 1;
    }
    for (int sp = 0; sp < 2; sp++)
        printf("ssd synth: %s/%s: %d images (%d grayscale, %d without annotations), %d annotations "
               "(%d crowd)\n", out, sp ? "val2017" : "train2017", st.images[sp], st.gray_images[sp],
               st.empty_images[sp], st.annotations[sp], st.crowd[sp]);
    return fflush(stdout) == 0 ? 0 : 1;
}

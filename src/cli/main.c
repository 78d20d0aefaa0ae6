/* The `ssd` program: dispatches to the subcommands (cli/commands.h). */
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "cli/commands.h"
#include "core/log.h"

#define SSD_VERSION "0.1.0"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ssd <command> [options]\n"
            "\n"
            "SSD-ResNet34 (MLPerf) training system in C.\n"
            "\n"
            "commands (ssd <command> --help for options):\n"
            "  train        train SSD300-ResNet34 as the MLPerf reference (no --data: a ~10 min\n"
            "               demo on a built-in synthetic set)\n"
            "  eval         COCO evaluation of a checkpoint on a dataset's val2017 (12 stats +\n"
            "               detections json)\n"
            "  detect       draw a checkpoint's detections on JPEG pictures\n"
            "  step         one training forward+backward on a given batch and weights; writes\n"
            "               loc, conf, loss and every gradient by torch name (parity debugging)\n"
            "  cocoeval     COCO bbox evaluation of a detections json against a ground truth\n"
            "               (pycocotools-exact 12 stats, per-category AP with --json)\n"
            "  convert      IN.pth OUT.safetensors: every tensor of a PyTorch state_dict (zip,\n"
            "               legacy or tar container) under its torch name\n"
            "  bench        timings as JSON (--what eval: COCO evaluation vs pycocotools;\n"
            "               --what loader: the data pipeline vs torchvision/PIL)\n"
            "  synth        write a synthetic COCO-format dataset (JPEGs + instances json)\n"
            "  batch        one batch of the data pipeline as safetensors (what `step` takes)\n"
            "  backends     list the compute backends built into this binary\n"
            "  --help       this text\n"
            "  --version    print the version\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("ssd %s\n", SSD_VERSION);
        return 0;
    }
    if (strcmp(cmd, "train") == 0) return ssd_cmd_train(argc - 2, argv + 2);
    if (strcmp(cmd, "eval") == 0) return ssd_cmd_eval(argc - 2, argv + 2);
    if (strcmp(cmd, "detect") == 0) return ssd_cmd_detect(argc - 2, argv + 2);
    if (strcmp(cmd, "step") == 0) return ssd_cmd_step(argc - 2, argv + 2);
    if (strcmp(cmd, "cocoeval") == 0) return ssd_cmd_cocoeval(argc - 2, argv + 2);
    if (strcmp(cmd, "bench") == 0) return ssd_cmd_bench(argc - 2, argv + 2);
    if (strcmp(cmd, "convert") == 0) return ssd_cmd_convert(argc - 2, argv + 2);
    if (strcmp(cmd, "synth") == 0) return ssd_cmd_synth(argc - 2, argv + 2);
    if (strcmp(cmd, "batch") == 0) return ssd_cmd_batch(argc - 2, argv + 2);
    if (strcmp(cmd, "backends") == 0) {
        for (const char *const *n = ssd_backend_names(); *n; n++) printf("%s\n", *n);
        return 0;
    }
    fprintf(stderr, "ssd: unknown command '%s' (try 'ssd --help')\n", cmd);
    return 2;
}

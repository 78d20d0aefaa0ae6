/* Table-driven command-line options for the subcommands: each option has a name, a type,
 * a default, optional bounds and a help line; parsing fills the caller's variables and
 * reports the first problem (unknown flag, missing value, bad number, out of bounds, missing
 * required option) as SSD_ERR_ARG with a message naming the flag. `--help` is recognised by
 * every subcommand (ssd_opts_parse returns SSD_OK with *help = true).
 *
 * An option whose name does not start with '-' (e.g. "GT.json") is positional: the arguments
 * that are not flags fill the positional options in table order (SSD_OPT_STR / INT / DOUBLE). */
#ifndef SSD_CLI_OPTIONS_H
#define SSD_CLI_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>

#include "core/status.h"

typedef enum ssd_opt_type { SSD_OPT_STR, SSD_OPT_INT, SSD_OPT_DOUBLE, SSD_OPT_FLAG } ssd_opt_type;

typedef struct ssd_opt {
    const char *name; /* "--weights", or "GT.json" for a positional argument */
    ssd_opt_type type;
    void *dst;        /* const char **, long *, double *, bool * */
    bool required;
    double lo, hi;    /* bounds for numbers (inclusive); lo > hi means unbounded */
    const char *metavar;
    const char *help; /* one line; the default is printed from *dst */
} ssd_opt;

ssd_status ssd_opts_parse(const ssd_opt *opts, int n, int argc, char **argv, bool *help,
                          ssd_error *err);
/* "usage: ssd <cmd> ..." and one line per option with its default. */
void ssd_opts_usage(FILE *f, const char *cmd, const char *summary, const ssd_opt *opts, int n);

/* What every subcommand does first: parse; on a usage error print "ssd CMD: <problem> (try
 * 'ssd CMD --help')" and return 2; on --help print the usage to stdout and return 0; otherwise
 * return -1 (go on). */
int ssd_opts_cli(const char *cmd, const char *summary, const ssd_opt *opts, int n, int argc,
                 char **argv);

/* One line "ssd CMD: --flag value ..." with every option's current value (string options only
 * when set, flags only when on): the start-up summary of a run. */
void ssd_opts_summary(FILE *f, const char *cmd, const ssd_opt *opts, int n);

/* Whether argv names the option NAME ("NAME" or "NAME=..."): for defaults that depend on
 * other choices. */
bool ssd_opts_given(int argc, char **argv, const char *name);

/* bf16 autocast on `backend` (ssd train --autocast, ssd step --autocast, ssd bench --dtype
 * bf16): sets the backend's math variable (SSD_CUDA_MATH or SSD_CPU_MATH = bf16, read when the
 * backend starts) and returns NULL, or returns why the backend cannot (ref). On cpu it prints
 * to stderr, as `prog`, that bf16 is emulated: rounded operands and results, f32 kernels. */
const char *ssd_cli_autocast(const char *prog, const char *backend);

#endif

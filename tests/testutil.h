/* Helpers shared by the test binaries (cmocka). */
#ifndef SSD_TESTS_TESTUTIL_H
#define SSD_TESTS_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the three headers above first */
#include <cmocka.h>

#include "backend/backend.h"
#include "box/anchors.h"
#include "core/rng.h"
#include "core/tensor.h"

/* Normalised mean squared error sum((a-b)^2) / sum(b^2), with b the reference; tensors are
 * host tensors of any float dtype and equal numel. If sum(b^2) == 0, returns sum((a-b)^2). */
double tu_nmse(const ssd_tensor *a, const ssd_tensor *ref);
/* max |a-b| */
double tu_max_abs_diff(const ssd_tensor *a, const ssd_tensor *b);

/* Fill a host tensor with U(lo,hi) from an explicit stream. */
void tu_fill_uniform(ssd_tensor *t, ssd_rng *r, double lo, double hi);

/* Copy a host tensor to a new tensor on `be` (and back), converting dtype if needed. */
ssd_tensor tu_to_backend(ssd_backend *be, const ssd_tensor *host, ssd_dtype dt);
ssd_tensor tu_to_host(ssd_backend *be, const ssd_tensor *t, ssd_dtype dt);
/* The same in `layout` (of host's 4-d row-major values when not row-major); channels-last. */
ssd_tensor tu_to_backend_layout(ssd_backend *be, const ssd_tensor *host, ssd_dtype dt,
                                ssd_layout layout);
ssd_tensor tu_to_backend_nhwc(ssd_backend *be, const ssd_tensor *host, ssd_dtype dt);
/* The layout a dt tensor shaped like `like` takes as an activation on be: the backend's
 * activation layout when dt is its activation dtype and the layout holds the shape (bf16 NHWC
 * on cpu with native bf16 math; f32 nChw16c on cpu's f32 math on AVX-512 CPUs, for channel
 * counts that are multiples of 16), else row-major. */
ssd_layout tu_act_layout(const ssd_backend *be, const ssd_tensor *like, ssd_dtype dt);
/* In that form: the values of host / zeros (/ zeros in `layout`). */
ssd_tensor tu_to_backend_act(ssd_backend *be, const ssd_tensor *host, ssd_dtype dt);
ssd_tensor tu_zeros_act(ssd_backend *be, const ssd_tensor *like, ssd_dtype dt);
ssd_tensor tu_zeros_layout(ssd_backend *be, const ssd_tensor *like, ssd_dtype dt,
                           ssd_layout layout);
/* A zero tensor on `be` shaped like `like`. */
ssd_tensor tu_zeros_like(ssd_backend *be, const ssd_tensor *like, ssd_dtype dt);

/* Environment: SSD_SOURCE_DIR, SSD_BUILD_DIR, SSD_PYTHON_TORCH (set by ctest). NULL if unset. */
const char *tu_env(const char *name);

/* Print a line that CI logs keep: "SKIPPED <test>: <reason>". */
void tu_skip(const char *test, const char *reason);
/* Whether backend `name` starts here; if not, why (e.g. "no usable NVIDIA GPU") into why. */
bool tu_backend_starts(const char *name, char *why, size_t len);

/* The encoder of spec 4, steps 1-9, written literally (every GT against every anchor, float32
 * IoU, first-GT/first-anchor ties, last GT wins a shared anchor, > 0.5): an independent oracle
 * for the tests of the loss. gbox (8732,4) xywh, label (8732); B may be 0. */
void tu_naive_encode(const ssd_anchors *an, int B, const float (*gt)[4], const int *lab,
                     float *gbox, int64_t *label);

/* The PyTorch test oracle (tools/torchref/run.py under SSD_PYTHON_TORCH). Returns 0 and writes
 * the quoted command prefix `"<python>" "<src>/tools/torchref/run.py"` into cmd_prefix when
 * python + torch are usable; 1 after printing "SKIPPED <test>: <reason>" when they are not;
 * -1 on an internal error. */
int tu_torch_oracle(const char *test, char *cmd_prefix, size_t len);
/* printf into one of 8 rotating static buffers: a path or argument valid until 8 more calls
 * (single-threaded test code only). */
const char *tu_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* system() that echoes the command and reports failure; 0 on exit status 0, else -1. */
int tu_system(const char *cmd);
/* Runs the shell command CMDLINE with stdout+stderr going to LOG, reads LOG into out (NUL-ended,
 * at most len-1 bytes), echoes the command, status and output, and returns the exit status (-1
 * when it did not exit normally). */
int tu_run_capture(const char *cmdline, const char *log, char *out, size_t len);
/* The losses of the step lines of OUT_DIR/curves.jsonl (ssd train's curves), in order; returns
 * how many (at most max). Fails the test if the file is missing. */
int tu_curve_losses(const char *out_dir, double *loss, int max);
/* The short training runs that test_gpu_train and test_train_tracks compare: `SSD train
 * --backend BACKEND FLAGS` for TU_TRACK_STEPS steps of batch 4 (warmup 4, seed 7) on an `ssd
 * synth` set (16 + 4 images, seed 5) made in DIR/synth on the first call, output in
 * DIR/run-NAME; the per-step losses go to loss[TU_TRACK_STEPS]. The output of the last command
 * is in log (len bytes). Fails the test if a command fails. */
#define TU_TRACK_STEPS 12
void tu_track_run(const char *ssd, const char *dir, const char *backend, const char *flags,
                  const char *name, double *loss, char *log, size_t len);
/* max over i < n of |a[i] - b[i]| / |b[i]| (NaN gives NaN). */
double tu_max_rel(const double *a, const double *b, int n);
/* The JSON document in PATH (cJSON_Delete it); fails the test if unreadable or malformed. */
struct cJSON;
struct cJSON *tu_read_json(const char *path);
/* $SSD_SOURCE_DIR copied into buf; -1 (after saying so) when unset, i.e. not run by ctest. */
int tu_source_dir(char *buf, size_t len);
/* $SSD_BUILD_DIR/test_scratch/<test> (created), for files a test exchanges with the oracle. */
const char *tu_scratch_dir(const char *test, char *buf, size_t len);

/* The MLPerf compliance checker: its python into py ($SSD_PYTHON_COCO, else
 * <source>/.venv-oracle/bin/python); 0 when it imports mlperf_logging, 1 after a SKIPPED line. */
int tu_checker_python(const char *test, char *py, size_t len);
/* Runs `python -m mlperf_logging.compliance_checker --usage training --ruleset R FLAGS LOG`;
 * returns its exit status, its output in out. */
int tu_run_checker(const char *py, const char *ruleset, const char *flags, const char *log,
                   char *out, size_t len);

#endif

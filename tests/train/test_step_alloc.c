/* No allocation in the training step (issue: bf16 autocast and a fast CPU step, "no allocation in
 * the step"): once a batch size has been seen, a cpu training step (forward, loss, backward:
 * ssd_runner_train_step) and the SGD update (ssd_model_sgd_step) call no allocator at all, in
 * any thread: not ours, not oneDNN's, not OpenMP's, not the C++ runtime's.
 *
 * The oracle counts every call into the process's allocator, independently of the code under
 * test:
 * - Release builds: this executable defines malloc, calloc, realloc, free, posix_memalign,
 *   aligned_alloc, memalign and valloc. ELF symbol interposition makes every shared library
 *   (libdnnl, libgomp, libstdc++, libc's own callers) use these, and they forward to glibc's
 *   __libc_* entry points after counting.
 * - ASan builds own malloc; there the counting runs through ASan's
 *   __sanitizer_install_malloc_and_free_hooks, which sees the same calls.
 * A self-check proves the counter works in each build: a malloc, a calloc and a posix_memalign
 * made through a function pointer (so the compiler cannot elide them) must count 3, and a
 * one-off std::vector-like allocation from a shared library (strdup in libc) must count too.
 *
 * Configurations: the default (Winograd for the 3x3 stride-1 convolutions), oneDNN's direct
 * kernels (SSD_WINOGRAD=0), bf16 (SSD_CPU_MATH=bf16: oneDNN's native bf16 kernels on a CPU with
 * avx512_bf16, the emulation elsewhere), the emulated bf16 (bf16emu), and the default with one
 * OpenMP thread (every parallel loop then runs serially: no one-thread regions). Each runs two
 * warm-up steps (the first creates the activation set, primitives, workspaces and the OpenMP
 * team; the second lets anything lazily sized on first use settle), then counts over three
 * steps, which must make 0 allocations. */
#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "model/ssd_model.h"
#include "testutil.h"
#include "train/runner.h"

#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif

/* Who called the allocator: the return address of the interposed call, looked up in the
 * executable segments of the loaded objects (recorded once, before counting starts). Our code is
 * linked statically into this executable. */
enum { BY_OURS, BY_DNNL, BY_CXX, BY_GOMP, BY_LIBC, BY_OTHER, BY_N };
static const char *const by_name[BY_N] = {"our code", "libdnnl", "libstdc++ (operator new)",
                                          "libgomp", "libc", "other"};
typedef struct code_range {
    uintptr_t lo, hi;
    int by;
} code_range;
static code_range g_ranges[128];
static int g_nranges;

static atomic_int g_counting;
static atomic_ulong g_allocs[BY_N], g_bytes[BY_N], g_largest;

static int by_of(uintptr_t pc) {
    for (int i = 0; i < g_nranges; i++)
        if (pc >= g_ranges[i].lo && pc < g_ranges[i].hi) return g_ranges[i].by;
    return BY_OTHER;
}

static int note_range(struct dl_phdr_info *info, size_t size, void *ctx) {
    (void)size;
    (void)ctx;
    const char *n = info->dlpi_name ? info->dlpi_name : "";
    int by = !*n                         ? BY_OURS
             : strstr(n, "libdnnl")      ? BY_DNNL
             : strstr(n, "libstdc++")    ? BY_CXX
             : strstr(n, "libgomp")      ? BY_GOMP
             : strstr(n, "/libc.so")     ? BY_LIBC
                                         : BY_OTHER;
    for (int k = 0; k < info->dlpi_phnum && g_nranges < 128; k++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
        g_ranges[g_nranges++] = (code_range){lo, lo + ph->p_memsz, by};
    }
    return 0;
}

static void note_alloc(size_t bytes, uintptr_t caller) {
    if (!atomic_load_explicit(&g_counting, memory_order_relaxed)) return;
    int by = caller ? by_of(caller) : BY_OTHER;
    atomic_fetch_add_explicit(&g_allocs[by], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_bytes[by], bytes, memory_order_relaxed);
    unsigned long big = atomic_load_explicit(&g_largest, memory_order_relaxed);
    while (bytes > big && !atomic_compare_exchange_weak(&g_largest, &big, bytes)) {
    }
}

#define CALLER ((uintptr_t)__builtin_extract_return_addr(__builtin_return_address(0)))

#ifdef TU_ASAN
/* from the sanitizer runtime (its header is not installed with GCC) */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
/* ASan's hook runs inside its allocator: the caller is not known here */
static void asan_malloc_hook(const volatile void *p, size_t bytes) {
    (void)p;
    note_alloc(bytes, 0);
}
static void asan_free_hook(const volatile void *p) { (void)p; }
static bool install_counter(void) {
    /* both hooks are required: it installs nothing (returns 0) when either is NULL */
    return __sanitizer_install_malloc_and_free_hooks(asan_malloc_hook, asan_free_hook) != 0;
}
#define KNOWS_CALLER 0
#else
/* glibc's own allocator entry points (exported for exactly this use) */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

void *malloc(size_t n) {
    note_alloc(n, CALLER);
    return __libc_malloc(n);
}
void *calloc(size_t c, size_t n) {
    note_alloc(c * n, CALLER);
    return __libc_calloc(c, n);
}
void *realloc(void *p, size_t n) {
    note_alloc(n, CALLER);
    return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
void *memalign(size_t al, size_t n) {
    note_alloc(n, CALLER);
    return __libc_memalign(al, n);
}
void *aligned_alloc(size_t al, size_t n) {
    note_alloc(n, CALLER);
    return __libc_memalign(al, n);
}
void *valloc(size_t n) {
    note_alloc(n, CALLER);
    return __libc_memalign(4096, n);
}
int posix_memalign(void **out, size_t al, size_t n) {
    if (al < sizeof(void *) || (al & (al - 1))) return EINVAL;
    note_alloc(n, CALLER);
    void *p = __libc_memalign(al, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
static bool install_counter(void) { return true; }
#define KNOWS_CALLER 1
#endif

static void reset_counts(void) {
    for (int k = 0; k < BY_N; k++) {
        atomic_store(&g_allocs[k], 0);
        atomic_store(&g_bytes[k], 0);
    }
    atomic_store(&g_largest, 0);
}

static unsigned long total_allocs(void) {
    unsigned long t = 0;
    for (int k = 0; k < BY_N; k++) t += atomic_load(&g_allocs[k]);
    return t;
}

static void counting(bool on) { atomic_store(&g_counting, on ? 1 : 0); }

/* the counter sees allocations made here and in shared libraries, and tells them apart */
static void test_counter_counts(void **state) {
    (void)state;
    void *(*volatile m)(size_t) = malloc;
    void *(*volatile c)(size_t, size_t) = calloc;
    int (*volatile pm)(void **, size_t, size_t) = posix_memalign;
    reset_counts();
    counting(true);
    void *a = m(100), *b = c(3, 40), *d = NULL;
    assert_int_equal(pm(&d, 64, 256), 0);
    char *s = strdup("allocated inside libc"); /* libc calls malloc */
    counting(false);
    free(a);
    free(b);
    free(d);
    free(s);
    printf("allocation counter self-check: %lu in all, %lu by our code, %lu by libc\n",
           total_allocs(), atomic_load(&g_allocs[BY_OURS]), atomic_load(&g_allocs[BY_LIBC]));
    assert_int_equal(total_allocs(), 4);
    if (KNOWS_CALLER) {
        assert_int_equal(atomic_load(&g_allocs[BY_OURS]), 3);
        assert_int_equal(atomic_load(&g_allocs[BY_LIBC]), 1);
    }
    assert_int_equal(atomic_load(&g_largest), 256);
}

/* a batch of n images with smooth pixels, a few positive anchors per image */
typedef struct batch {
    int n;
    float *images, *bboxes;
    int64_t *labels;
} batch;

static batch make_batch(int n) {
    batch b = {.n = n};
    size_t img = (size_t)n * 3 * SSD_IMAGE_SIZE * SSD_IMAGE_SIZE;
    b.images = ssd_xmalloc(img * sizeof *b.images);
    b.bboxes = ssd_xcalloc((size_t)n * SSD_NUM_ANCHORS * 4, sizeof *b.bboxes);
    b.labels = ssd_xcalloc((size_t)n * SSD_NUM_ANCHORS, sizeof *b.labels);
    ssd_rng r = ssd_rng_stream(17, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    for (size_t i = 0; i < img; i++) b.images[i] = (float)((i % 613) / 613.0 - 0.5);
    for (int k = 0; k < n; k++)
        for (int j = 0; j < 12; j++) {
            size_t a = (size_t)k * SSD_NUM_ANCHORS + (size_t)(ssd_rng_u32(&r) % SSD_NUM_ANCHORS);
            b.labels[a] = 1 + (int64_t)(ssd_rng_u32(&r) % 80);
            for (int q = 0; q < 4; q++) b.bboxes[a * 4 + q] = (float)(ssd_rng_u32(&r) % 100) / 200.0f;
        }
    return b;
}

static void free_batch(batch *b) {
    free(b->images);
    free(b->bboxes);
    free(b->labels);
}

static void one_step(ssd_runner *r, ssd_model *m, const batch *b) {
    float loss = ssd_runner_train_step(r, b->n, b->images, b->bboxes, b->labels, NULL);
    ssd_model_sgd_step(m, 1e-4, 0.9, 5e-4);
    assert_true(loss == loss); /* not NaN */
}

#define STEPS 3
#define LARGEST_OK ((unsigned long)1 << 20)

/* Two warm-up steps, then STEPS counted ones with THREADS OpenMP threads. */
static void check_config(const char *label, const char *winograd, const char *math, int threads) {
    if (winograd) setenv("SSD_WINOGRAD", winograd, 1);
    else unsetenv("SSD_WINOGRAD");
    if (math) setenv("SSD_CPU_MATH", math, 1);
    else unsetenv("SSD_CPU_MATH");
    const int threads0 = omp_get_max_threads();
    omp_set_num_threads(threads);
    ssd_error err;
    ssd_backend *be = NULL;
    if (ssd_backend_create("cpu", &be, &err) != SSD_OK) fail_msg("cpu backend: %s", err.msg);
    ssd_model *m = ssd_model_create(be, SSD_F32, 3);
    ssd_runner *r = ssd_runner_create(m);
    batch b = make_batch(2);
    for (int k = 0; k < 2; k++) one_step(r, m, &b);
    reset_counts();
    counting(true);
    for (int k = 0; k < STEPS; k++) one_step(r, m, &b);
    counting(false);
    printf("%s, %d thread(s): %lu allocations in %d training steps of batch 2 (largest %lu "
           "bytes)\n", label, threads, total_allocs(), STEPS, atomic_load(&g_largest));
    if (!KNOWS_CALLER) printf("    (the callers are not known under ASan)\n");
    for (int k = 0; KNOWS_CALLER && k < BY_N; k++)
        if (atomic_load(&g_allocs[k]))
            printf("    by %s: %lu per step, %lu bytes per step\n", by_name[k],
                   atomic_load(&g_allocs[k]) / STEPS, atomic_load(&g_bytes[k]) / STEPS);
    free_batch(&b);
    ssd_runner_destroy(r);
    ssd_model_destroy(m);
    ssd_backend_destroy(be);
    unsetenv("SSD_WINOGRAD");
    unsetenv("SSD_CPU_MATH");
    omp_set_num_threads(threads0);
    /* no buffer is allocated per step: nothing the size of an activation, workspace or scratch */
    assert_true(atomic_load(&g_largest) < LARGEST_OK);
    if (KNOWS_CALLER) {
        /* and nothing at all by our code, by libgomp (OpenMP teams) or by libc on our behalf;
         * what remains is oneDNN's own bookkeeping inside dnnl_primitive_execute and its
         * sgemm, which its API gives no way to preallocate (docs/backends.md) */
        assert_int_equal(atomic_load(&g_allocs[BY_OURS]), 0);
        assert_int_equal(atomic_load(&g_allocs[BY_GOMP]), 0);
        assert_int_equal(atomic_load(&g_allocs[BY_LIBC]), 0);
        assert_int_equal(atomic_load(&g_allocs[BY_OTHER]), 0);
    }
}

static void test_default_no_alloc(void **state) {
    (void)state;
    check_config("cpu f32 (Winograd where it applies)", NULL, NULL, 2);
}
static void test_direct_no_alloc(void **state) {
    (void)state;
    check_config("cpu f32 direct (SSD_WINOGRAD=0)", "0", NULL, 2);
}
static void test_bf16_no_alloc(void **state) {
    (void)state;
    check_config("cpu bf16 (SSD_CPU_MATH=bf16: native where the CPU has avx512_bf16)", NULL,
                 "bf16", 2);
}
static void test_bf16emu_no_alloc(void **state) {
    (void)state;
    check_config("cpu bf16 emulated (SSD_CPU_MATH=bf16emu)", NULL, "bf16emu", 2);
}
static void test_one_thread_no_alloc(void **state) {
    (void)state;
    check_config("cpu f32 (Winograd where it applies)", NULL, NULL, 1);
}

int main(void) {
    char why[256];
    if (!tu_backend_starts("cpu", why, sizeof why)) {
        tu_skip("test_step_alloc", why);
        return 77;
    }
    if (!install_counter()) {
        fprintf(stderr, "test_step_alloc: the sanitizer did not install the allocation hooks\n");
        return 1;
    }
    dl_iterate_phdr(note_range, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_counts),
        cmocka_unit_test(test_default_no_alloc),
        cmocka_unit_test(test_direct_no_alloc),
        cmocka_unit_test(test_bf16_no_alloc),
        cmocka_unit_test(test_bf16emu_no_alloc),
        cmocka_unit_test(test_one_thread_no_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

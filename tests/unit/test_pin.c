/* Thread pinning (core/pin.h, --pin-threads): the share arithmetic against hand-made answers,
 * and, on this machine's CPUs, that every OpenMP thread ends on exactly its CPU (read back with
 * sched_getaffinity and sched_getcpu) and a loader-style thread on the whole share. */
#define _GNU_SOURCE
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "core/pin.h"
#include "testutil.h"

static ssd_cpus range(int first, int n) {
    ssd_cpus c = {.n = n};
    for (int i = 0; i < n; i++) c.cpu[i] = first + i;
    return c;
}

static void test_share(void **state) {
    (void)state;
    ssd_cpus all = range(0, 10), s;
    const int want[3][2] = {{0, 4}, {4, 3}, {7, 3}}; /* 10 CPUs, 3 ranks: 4 + 3 + 3 */
    for (int r = 0; r < 3; r++) {
        ssd_cpus_share(&all, r, 3, &s);
        assert_int_equal(s.n, want[r][1]);
        for (int i = 0; i < s.n; i++) assert_int_equal(s.cpu[i], want[r][0] + i);
    }
    ssd_cpus two = {.n = 2, .cpu = {3, 9}};
    ssd_cpus_share(&two, 4, 5, &s); /* more ranks than CPUs: one each, round robin */
    assert_int_equal(s.n, 1);
    assert_int_equal(s.cpu[0], 3);
    ssd_cpus_share(&all, 0, 1, &s);
    assert_int_equal(s.n, 10);
    char buf[64];
    ssd_cpus odd = {.n = 6, .cpu = {0, 2, 3, 4, 7, 8}};
    ssd_cpus_format(&odd, buf, sizeof buf);
    assert_string_equal(buf, "0,2-4,7-8");
}

/* The CPUs the calling thread may run on. */
static ssd_cpus mine(void) {
    ssd_cpus c;
    assert_int_equal(ssd_cpus_allowed(&c), 0);
    return c;
}

/* Pins to `share` and checks every thread of a region of that size; restores the main thread. */
static void check_pinned(const ssd_cpus *share, const ssd_cpus *restore) {
    char why[200];
    assert_int_equal(ssd_pin_omp(share, share->n, why, sizeof why), 0);
    int bad = 0;
#pragma omp parallel num_threads(share->n) reduction(+ : bad)
    {
        int t = omp_get_thread_num();
        ssd_cpus now;
        if (ssd_cpus_allowed(&now) != 0 || now.n != 1 || now.cpu[0] != share->cpu[t] ||
            sched_getcpu() != share->cpu[t])
            bad++;
    }
    assert_int_equal(bad, 0);
    assert_int_equal(omp_get_max_threads(), share->n);
    /* the main thread is thread 0: pinned too */
    ssd_cpus main_now = mine();
    assert_int_equal(main_now.n, 1);
    assert_int_equal(ssd_bind_thread(restore), 0);
}

typedef struct worker_io {
    const ssd_cpus *share;
    ssd_cpus got;
    int ok;
} worker_io;

static void *worker(void *arg) {
    worker_io *io = arg;
    io->ok = ssd_bind_thread(io->share) == 0 && ssd_cpus_allowed(&io->got) == 0;
    return NULL;
}

static void test_pin_threads(void **state) {
    (void)state;
    ssd_cpus all = mine(), share;
    printf("test_pin: %d CPUs allowed\n", all.n);
    ssd_cpus_share(&all, 0, 1, &share);
    check_pinned(&share, &all);
    if (all.n >= 2) { /* rank 1 of 2 on this machine */
        ssd_cpus_share(&all, 1, 2, &share);
        check_pinned(&share, &all);
        assert_int_equal(share.cpu[0], all.cpu[all.n - share.n]);
    }
    /* the worker thread's mask is the share, whatever its creator's */
    char why[200];
    ssd_cpus one = {.n = 1, .cpu = {all.cpu[0]}};
    assert_int_equal(ssd_pin_omp(&one, 1, why, sizeof why), 0);
    pthread_t th;
    worker_io io = {.share = &all};
    assert_int_equal(pthread_create(&th, NULL, worker, &io), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(io.ok);
    assert_int_equal(io.got.n, all.n);
    assert_memory_equal(io.got.cpu, all.cpu, (size_t)all.n * sizeof all.cpu[0]);
    assert_int_equal(ssd_bind_thread(&all), 0);
    /* the rank's CPUs are a non-empty part of the allowed ones */
    ssd_cpus r;
    assert_int_equal(ssd_cpus_of_rank(0, 1, &r), 0);
    assert_true(r.n >= 1 && r.n <= all.n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share),
        cmocka_unit_test(test_pin_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

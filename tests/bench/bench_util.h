/* Timing helpers shared by the single-process benchmarks: clocks in
 * seconds and medians of a run's figures. Header-only, like
 * bench_corpus.h, so each benchmark stays one translation unit. */
#ifndef HUB_BENCH_UTIL_H
#define HUB_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

/* The clock `clk` (CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, ...) in s. */
static inline double bench_clock_s(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The calling thread's CPU time in seconds: what a single-core figure is
 * timed in, so other work on a shared machine does not inflate it. */
static inline double bench_cpu_s(void) { return bench_clock_s(CLOCK_THREAD_CPUTIME_ID); }

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v[0..n) in place and returns its median (n >= 1). */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif

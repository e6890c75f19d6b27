/*
 * bench_util.h — the clock and median helpers every hetee-bench
 * subcommand uses (one copy instead of one per file).
 */
#ifndef HETEE_BENCH_UTIL_H
#define HETEE_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

/* Monotonic time in seconds / microseconds. */
static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static inline double bench_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

/* qsort comparator for doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v); 0 for n = 0. */
static inline double bench_median(double *v, size_t n) {
  if (!n) return 0;
  qsort(v, n, sizeof *v, bench_cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif

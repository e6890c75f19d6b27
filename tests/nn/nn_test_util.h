/*
 * nn_test_util.h — helpers shared by the tests of src/nn: paths of the
 * committed test data and bundled models, Debian's Fashion-MNIST location,
 * the quick mode of the sanitizer run, and comparisons of float arrays.
 */
#ifndef HETEE_NN_TEST_UTIL_H
#define HETEE_NN_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "hetee/nn.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Path of a file below the source tree (HETEE_SOURCE_DIR set by ctest). */
static inline const char *src_path(const char *rel) {
  static char buf[4][1024];
  static int k;
  const char *root = getenv("HETEE_SOURCE_DIR");
  char *b = buf[k++ & 3];
  snprintf(b, sizeof buf[0], "%s/%s", root ? root : ".", rel);
  return b;
}

static inline int quick_mode(void) { return getenv("HETEE_TEST_QUICK") != NULL; }

/* Largest |a[i] - b[i]|. */
static inline double max_abs_diff(const float *a, const float *b, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (!(d <= m)) m = d; /* NaN propagates as the maximum */
  }
  return m;
}

#endif

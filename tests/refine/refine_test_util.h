/* refine_test_util.h — small random dense chains for the refine tests. */
#ifndef HETEE_REFINE_TEST_UTIL_H
#define HETEE_REFINE_TEST_UTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hetee/refine.h"

static uint64_t rt_state = 12345;
static double rt_uniform(void) {
  rt_state = rt_state * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rt_state >> 11) / 9007199254740992.0;
}

/* dims[0..nl]: widths; acts[0..nl-1] activations (last must be NONE) */
static void rt_weights(hetee_refine_weights *w, int nl, const int *dims, const int *acts) {
  memset(w, 0, sizeof *w);
  w->nl = nl;
  for (int l = 0; l < nl; l++) {
    w->k[l] = dims[l];
    w->m[l] = dims[l + 1];
    w->act[l] = acts[l];
    size_t mk = (size_t)dims[l] * (size_t)dims[l + 1];
    w->w[l] = malloc(mk * sizeof(float));
    w->b[l] = malloc((size_t)dims[l + 1] * sizeof(float));
    w->vw[l] = calloc(mk, sizeof(float));
    w->vb[l] = calloc((size_t)dims[l + 1], sizeof(float));
    assert_non_null(w->w[l]);
    assert_non_null(w->b[l]);
    double sc = 1.5 / sqrt((double)dims[l]);
    for (size_t q = 0; q < mk; q++) w->w[l][q] = (float)((rt_uniform() * 2 - 1) * sc);
    for (int i = 0; i < dims[l + 1]; i++) w->b[l][i] = (float)((rt_uniform() * 2 - 1) * 0.2);
  }
}

static void rt_data(int k, int classes, uint32_t count, float **x, float **labels) {
  *x = malloc((size_t)count * (size_t)k * sizeof(float));
  *labels = malloc(count * sizeof(float));
  for (uint32_t s = 0; s < count; s++) {
    int c = (int)(rt_uniform() * classes) % classes;
    (*labels)[s] = (float)c;
    for (int j = 0; j < k; j++) (*x)[(size_t)s * (size_t)k + (size_t)j] = (float)(rt_uniform() + (j % classes == c ? 0.8 : 0.0));
  }
}

#endif

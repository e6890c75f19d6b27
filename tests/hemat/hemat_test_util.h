/*
 * hemat_test_util.h — helpers shared by the hemat tests: deterministic
 * random layers, the direct convolution in double computed from the floats
 * (the reference every packing is compared with), shape arguments
 * "key=value" (the ctest names carry them), and position-injectivity
 * checks.
 */
#ifndef HETEE_HEMAT_TEST_UTIL_H
#define HETEE_HEMAT_TEST_UTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hetee/hemat.h"

#define HT_OK(call)                                                                                  \
  do {                                                                                               \
    int ht_rc_ = (call);                                                                             \
    if (ht_rc_) fprintf(stderr, "%s: %s: %s\n", #call, hetee_strerror(ht_rc_), hetee_last_error()); \
    assert_int_equal(ht_rc_, 0);                                                                     \
  } while (0)

static inline uint64_t ht_rand(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}
/* uniform in [-1, 1), never exactly 0 (a zero could hide a collision) */
static inline float ht_unif(uint64_t *s) {
  float v = (float)((double)(ht_rand(s) >> 11) * 0x1p-52 * 2.0 - 1.0);
  return v == 0.0f ? 0.5f : v;
}
static inline void ht_fill(float *v, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 12345;
  for (size_t i = 0; i < n; i++) v[i] = ht_unif(&s);
}

static inline int ht_oh(const hetee_hemat_shape *s) { return (s->h - s->kh) / s->sh + 1; }
static inline int ht_ow(const hetee_hemat_shape *s) { return (s->w - s->kw) / s->sw + 1; }

/* Direct convolution from the floats: y[b][o][oy][ox] = bias[o] +
 * sum W[o][c][dy][dx] x[b][c][oy*sh+dy][ox*sw+dx]; mag gets, per output,
 * |bias| + sum |W x| (the scale of its rounding error). */
static inline void ht_direct(const hetee_hemat_shape *s, uint32_t batch, const float *w, const float *bias,
                             const float *x, double *y, double *mag) {
  int oh = ht_oh(s), ow = ht_ow(s);
  for (uint32_t b = 0; b < batch; b++)
    for (int o = 0; o < s->co; o++)
      for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
          double acc = bias ? bias[o] : 0, m = bias ? fabs(bias[o]) : 0;
          for (int c = 0; c < s->c; c++)
            for (int dy = 0; dy < s->kh; dy++)
              for (int dx = 0; dx < s->kw; dx++) {
                double t = (double)w[(((size_t)o * s->c + c) * s->kh + dy) * s->kw + dx] *
                           (double)x[(((size_t)b * s->c + c) * s->h + oy * s->sh + dy) * s->w + ox * s->sw + dx];
                acc += t;
                m += fabs(t);
              }
          size_t i = (((size_t)b * s->co + o) * oh + oy) * ow + ox;
          y[i] = acc;
          if (mag) mag[i] = m;
        }
}

static int ht_cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Every input position distinct and inside its ciphertext range; the same
 * for the outputs. */
static inline void ht_check_injective(const hetee_hemat_layout *L) {
  const hetee_hemat_shape *s = &L->shape;
  size_t nin = (size_t)L->batch * s->c * s->h * s->w, nout = (size_t)L->batch * s->co * L->oh * L->ow, k = 0;
  uint64_t *p = malloc((nin > nout ? nin : nout) * sizeof *p);
  assert_non_null(p);
  for (uint32_t b = 0; b < L->batch; b++)
    for (int c = 0; c < s->c; c++)
      for (int y = 0; y < s->h; y++)
        for (int x = 0; x < s->w; x++) {
          uint64_t q = hetee_hemat_in_pos(L, b, c, y, x);
          assert_true(q < (uint64_t)L->n_in_cts * L->n);
          assert_true(q % L->n < (uint64_t)L->lanes * L->pack.nimg * L->span_t);
          p[k++] = q;
        }
  qsort(p, nin, sizeof *p, ht_cmp_u64);
  for (size_t i = 1; i < nin; i++) assert_true(p[i] != p[i - 1]);
  k = 0;
  for (uint32_t b = 0; b < L->batch; b++)
    for (int o = 0; o < s->co; o++)
      for (int oy = 0; oy < L->oh; oy++)
        for (int ox = 0; ox < L->ow; ox++) {
          uint64_t q = hetee_hemat_out_pos(L, b, o, oy, ox);
          assert_true(q < (uint64_t)L->n_out_cts * L->n);
          assert_true(q % L->n < (uint64_t)L->lanes * L->pack.nimg * L->span_t);
          p[k++] = q;
        }
  qsort(p, nout, sizeof *p, ht_cmp_u64);
  for (size_t i = 1; i < nout; i++) assert_true(p[i] != p[i - 1]);
  /* where the enclave puts the inputs before the host's expansion: distinct,
   * below n_dense_in_cts ciphertexts, and lane q of dense ciphertext D at
   * coefficient e is sparse ciphertext D*lanes + q at coefficient e - q */
  k = 0;
  const uint64_t n = L->n, ln = (uint64_t)L->lanes;
  assert_int_equal(L->n_dense_in_cts, (L->n_in_cts + ln - 1) / ln);
  for (uint32_t b = 0; b < L->batch; b++)
    for (int c = 0; c < s->c; c++)
      for (int y = 0; y < s->h; y++)
        for (int x = 0; x < s->w; x++) {
          uint64_t q = hetee_hemat_in_pos(L, b, c, y, x), d = hetee_hemat_in_pos_dense(L, b, c, y, x);
          assert_true(d < (uint64_t)L->n_dense_in_cts * n);
          uint64_t lane = d % n % ln;
          assert_true((d / n) * ln + lane == q / n);
          assert_true(d % n - lane == q % n);
          if (ln == 1) assert_true(d == q);
          p[k++] = d;
        }
  qsort(p, nin, sizeof *p, ht_cmp_u64);
  for (size_t i = 1; i < nin; i++) assert_true(p[i] != p[i - 1]);
  assert_true(hetee_hemat_in_pos_dense(L, L->batch, 0, 0, 0) == UINT64_MAX);
  free(p);
}

#endif

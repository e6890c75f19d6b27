/*
 * tests/enclave/test_expect.c — the integrity checks' expectations
 * (src/enclave/trusted/expect.c) against a long-double reference, for the
 * ISA the ring layer picks (also run with HETEE_ISA=ref: the two-double
 * path): s_t = beta_t + V_t . sat(x), l1 = ||sat(x)||_1 with saturation at
 * +-bound (NaN -> -bound); the witness form (little-endian floats,
 * subnormals as 0) gives the doubles of the decoded form bit for bit; a
 * value that is not finite or above 2^20 in a witness is reported, in the
 * vector body and in the tail, and 2^20 itself is not.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/trusted/expect.h"
#include "enclave/wire/proto.h"

static double urand(unsigned *st) {
  *st = *st * 1103515245u + 12345u;
  return ((*st >> 8) & 0xffffff) / (double)0x1000000 * 2.0 - 1.0;
}

static double sat(double x, double bound) {
  if (isnan(x)) return -bound;
  return x < -bound ? -bound : x > bound ? bound : x;
}

/* float as the witness reads it: subnormals flushed to +-0 */
static double wval(float f) {
  if (f != 0.0f && fabsf(f) < 0x1p-126f) return signbit(f) ? -0.0 : 0.0;
  return (double)f;
}

static void check_against_reference(size_t n, uint32_t batch, double bound) {
  unsigned st = (unsigned)(n * 31 + batch);
  double *v0 = malloc(n * sizeof *v0), *v1 = malloc(n * sizeof *v1), *x = malloc(n * batch * sizeof *x);
  float *f = malloc(n * batch * sizeof *f);
  double *s0 = calloc(batch, sizeof *s0), *s1 = calloc(batch, sizeof *s1), *l1 = calloc(batch, sizeof *l1);
  double *w0 = calloc(batch, sizeof *w0), *w1 = calloc(batch, sizeof *w1), *wl = calloc(batch, sizeof *wl);
  assert_true(v0 && v1 && x && f && s0 && s1 && l1 && w0 && w1 && wl);
  for (size_t k = 0; k < n; k++) v0[k] = urand(&st), v1[k] = urand(&st);
  for (size_t i = 0; i < n * batch; i++) {
    /* with a small bound, two thirds beyond +-bound (saturated); values
     * stay within the witness's 2^20 */
    f[i] = (float)(urand(&st) * 3.0 * (bound < 0x1p18 ? bound : 0x1p18));
    if (i % 17 == 3) f[i] = 0x1p-140f;        /* subnormal */
    x[i] = wval(f[i]);
  }
  enclave_expect_stage sg = {v0, v1, 0.25, -0.5, n};
  assert_int_equal(enclave_expect(&sg, x, 0, batch, bound, s0, s1, l1), 0);
  uint8_t *le = malloc(n * batch * 4);
  assert_non_null(le);
  memcpy(le, f, n * batch * 4); /* little-endian test host */
  assert_int_equal(enclave_expect(&sg, le, 1, batch, bound, w0, w1, wl), 0);
  for (uint32_t b = 0; b < batch; b++) {
    long double r0 = 0.25L, r1 = -0.5L, ra = 0, m0 = 0, m1 = 0;
    for (size_t k = 0; k < n; k++) {
      double y = sat(x[(size_t)b * n + k], bound);
      r0 += (long double)v0[k] * y;
      r1 += (long double)v1[k] * y;
      ra += fabs(y);
      m0 += fabsl((long double)v0[k] * y);
      m1 += fabsl((long double)v1[k] * y);
    }
    assert_true(fabsl(s0[b] - r0) <= 1e-13L * (m0 + 1.0L));
    assert_true(fabsl(s1[b] - r1) <= 1e-13L * (m1 + 1.0L));
    assert_true(fabsl(l1[b] - ra) <= 1e-13L * (ra + 1.0L));
    /* the witness form: the same doubles */
    assert_memory_equal(&s0[b], &w0[b], sizeof(double));
    assert_memory_equal(&s1[b], &w1[b], sizeof(double));
    assert_memory_equal(&l1[b], &wl[b], sizeof(double));
  }
  /* NaN in the decoded form saturates at -bound */
  x[1] = NAN;
  assert_int_equal(enclave_expect(&sg, x, 0, 1, bound, s0, s1, l1), 0);
  x[1] = -bound;
  assert_int_equal(enclave_expect(&sg, x, 0, 1, bound, w0, w1, wl), 0);
  assert_memory_equal(s0, w0, sizeof(double));
  assert_memory_equal(l1, wl, sizeof(double));
  free(v0), free(v1), free(x), free(f), free(le);
  free(s0), free(s1), free(l1), free(w0), free(w1), free(wl);
}

static void test_reference(void **state) {
  (void)state;
  const size_t ns[] = {784, 320, 37, 5, 8, 1};
  for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
    check_against_reference(ns[i], 3, HETEE_REFRESH_VALUE_BOUND);
    check_against_reference(ns[i], 2, 1.5);
  }
}

static void test_witness_bad_values(void **state) {
  (void)state;
  const size_t n = 37; /* 32 in vectors of eight (or two), 5 in the tail */
  const uint32_t batch = 2;
  double v0[37], v1[37], s0[2], s1[2], l1[2];
  float f[74];
  for (size_t k = 0; k < n; k++) v0[k] = 0.5, v1[k] = -0.25;
  enclave_expect_stage sg = {v0, v1, 0, 0, n};
  const float bad[] = {NAN, INFINITY, -INFINITY, 1e30f, 0x1.000002p20f, -0x1.000002p20f};
  const size_t at[] = {0, 5, 31, 32, 36, 37, 73};
  for (size_t a = 0; a < sizeof at / sizeof at[0]; a++)
    for (size_t v = 0; v < sizeof bad / sizeof bad[0]; v++) {
      for (size_t i = 0; i < n * batch; i++) f[i] = (float)i / 8.0f;
      f[at[a]] = bad[v];
      assert_int_not_equal(enclave_expect(&sg, f, 1, batch, HETEE_REFRESH_VALUE_BOUND, s0, s1, l1), 0);
    }
  for (size_t i = 0; i < n * batch; i++) f[i] = (i & 1) ? 0x1p20f : -0x1p20f; /* the largest allowed */
  assert_int_equal(enclave_expect(&sg, f, 1, batch, HETEE_REFRESH_VALUE_BOUND, s0, s1, l1), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference),
      cmocka_unit_test(test_witness_bad_values),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

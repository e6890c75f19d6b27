/*
 * tests/enclave/test_activations.c — the branch-free functions the enclave
 * applies to decrypted values, against libm / plain C references: exp within
 * 4 ulp-ish relative error over its range, sigmoid/tanh, ReLU/leaky ReLU,
 * max/min, softmax, argmax (first index on ties), top-k, fixed-point rounding.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>

#include "enclave/trusted/activations.h"

static void test_exp(void **state) {
  double worst = 0;
  for (double x = -700; x <= 700; x += 0.0137) {
    double rel = fabs(hetee_exp_ct(x) - exp(x)) / exp(x);
    worst = fmax(worst, rel);
  }
  assert_true(worst < 1e-14);
  assert_true(hetee_exp_ct(0.0) == 1.0);
  /* clamped, finite outside the range */
  assert_true(isfinite(hetee_exp_ct(1e6)));
  assert_true(hetee_exp_ct(-1e6) >= 0.0 && hetee_exp_ct(-1e6) < 1e-300);
}

static void test_sigmoid_tanh(void **state) {
  for (double x = -30; x <= 30; x += 0.01) {
    assert_true(fabs(hetee_sigmoid(x) - 1 / (1 + exp(-x))) < 1e-15);
    assert_true(fabs(hetee_tanh(x) - tanh(x)) < 1e-15);
  }
}

static void test_relu_family(void **state) {
  const double xs[] = {-5.5, -1e-300, -0.0, 0.0, 1e-300, 3.25, 1e300, -1e300};
  for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
    double x = xs[i];
    assert_true(hetee_relu(x) == (x > 0 ? x : 0.0));
    assert_true(hetee_leaky_relu(x, 0.01) == (x > 0 ? x : 0.01 * x));
    assert_true(hetee_dmax(x, 1.0) == (x > 1.0 ? x : 1.0));
    assert_true(hetee_dmin(x, 1.0) == (x > 1.0 ? 1.0 : x));
  }
}

static void test_softmax_argmax_topk(void **state) {
  double v[7] = {0.5, -3, 7.25, 7.25, 2, -100, 6}, s[7], work[7];
  double sum = 0;
  for (int i = 0; i < 7; i++) sum += exp(v[i] - 7.25);
  for (int i = 0; i < 7; i++) s[i] = v[i];
  hetee_softmax_ct(s, 7);
  for (int i = 0; i < 7; i++) assert_true(fabs(s[i] - exp(v[i] - 7.25) / sum) < 1e-15);
  assert_int_equal(hetee_argmax_ct(v, 7), 2); /* first of the tie */
  uint32_t top[4];
  hetee_topk_ct(v, 7, 4, work, top);
  assert_int_equal(top[0], 2);
  assert_int_equal(top[1], 3);
  assert_int_equal(top[2], 6);
  assert_int_equal(top[3], 4);
  assert_true(v[2] == 7.25); /* input untouched */
  /* random vectors against a sort-free reference */
  srand(7);
  for (int t = 0; t < 200; t++) {
    double r[33];
    for (int i = 0; i < 33; i++) r[i] = (double)(rand() % 1000) / 7.0;
    uint32_t best = 0;
    for (uint32_t i = 1; i < 33; i++)
      if (r[i] > r[best]) best = i;
    assert_int_equal(hetee_argmax_ct(r, 33), best);
  }
}

static void test_round_fixed(void **state) {
  assert_true(hetee_round_fixed(1.0, 8) == 256);
  assert_true(hetee_round_fixed(-1.0, 8) == -256);
  assert_true(hetee_round_fixed(0.5 / 256, 8) == 1);     /* half away from zero */
  assert_true(hetee_round_fixed(-0.5 / 256, 8) == -1);
  assert_true(hetee_round_fixed(0.49 / 256, 8) == 0);
  assert_true(hetee_round_fixed(3.14159, 0) == 3);
  assert_true(hetee_round_fixed(1e300, 20) == 4611686018427387904LL); /* saturates at 2^62 */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exp),         cmocka_unit_test(test_sigmoid_tanh),
      cmocka_unit_test(test_relu_family), cmocka_unit_test(test_softmax_argmax_topk),
      cmocka_unit_test(test_round_fixed),
  };
  return cmocka_run_group_tests_name("enclave/activations", tests, NULL, NULL);
}

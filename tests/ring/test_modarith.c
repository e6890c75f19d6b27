/* tests/ring/test_modarith.c — Barrett/Shoup helpers, mod_pow and mod_inv
 * checked against __int128 % on random and edge inputs, for moduli of many
 * sizes up to 2^61. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "hetee/ring.h"
#include "ring/test_util.h"

static uint64_t ref_mod(unsigned __int128 x, uint64_t q) { return (uint64_t)(x % q); }

/* moduli: edge sizes (3, 2^61-1, odd just below powers of two) + random odd */
static size_t make_moduli(uint64_t *qs, size_t cap, uint64_t *seed) {
  size_t k = 0;
  qs[k++] = 3;
  qs[k++] = 5;
  qs[k++] = ((uint64_t)1 << 61) - 1;
  qs[k++] = ((uint64_t)1 << 60) + 1;
  for (int b = 2; b <= 61 && k < cap; b++)
    qs[k++] = ((uint64_t)1 << b) - 1;
  while (k < cap) {
    int b = 2 + (int)(tu_next(seed) % 60);
    qs[k++] = (tu_next(seed) >> (64 - b)) | 1 | ((uint64_t)1 << (b - 1));
  }
  return k;
}

static void test_reduce128(void **state) {
  (void)state;
  uint64_t seed = 1, qs[200];
  size_t nq = make_moduli(qs, 200, &seed);
  int iters = tu_quick() ? 500 : 5000;
  for (size_t k = 0; k < nq; k++) {
    uint64_t q = qs[k];
    hetee_modulus m;
    assert_int_equal(hetee_modulus_init(&m, q), 0);
    assert_int_equal(m.bits, 64 - __builtin_clzll(q));
    unsigned __int128 lim = (unsigned __int128)q << 64; /* x < q * 2^64 */
    unsigned __int128 edges[] = {0, 1, q - 1, q, (unsigned __int128)q + 1, lim - 1, lim - q,
                                 lim - q - 1, (unsigned __int128)(q - 1) * (q - 1),
                                 ((unsigned __int128)(q - 1) << 64) | ~(uint64_t)0,
                                 ~(uint64_t)0};
    for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++)
      if (edges[e] < lim)
        assert_int_equal(hetee_mod_reduce128(edges[e], &m), ref_mod(edges[e], q));
    for (int i = 0; i < iters; i++) {
      unsigned __int128 x = ((unsigned __int128)(tu_next(&seed) % q) << 64) | tu_next(&seed);
      assert_int_equal(hetee_mod_reduce128(x, &m), ref_mod(x, q));
      uint64_t a = tu_next(&seed) % q, b = tu_next(&seed) % q, w = tu_next(&seed);
      assert_int_equal(hetee_mod_mul(a, b, &m), ref_mod((unsigned __int128)a * b, q));
      assert_int_equal(hetee_mod_reduce64(w, &m), w % q);
      assert_int_equal(hetee_mod_add(a, b, q), ref_mod((unsigned __int128)a + b, q));
      assert_int_equal(hetee_mod_sub(a, b, q), ref_mod((unsigned __int128)a + q - b, q));
      /* Shoup: any 64-bit multiplicand */
      uint64_t wp = hetee_shoup_prep(b, q);
      assert_int_equal(hetee_mod_mul_shoup(w, b, wp, q), ref_mod((unsigned __int128)w * b, q));
      uint64_t lz = hetee_mod_mul_shoup_lazy(w, b, wp, q);
      assert_true(lz < 2 * q);
      assert_int_equal(lz % q, ref_mod((unsigned __int128)w * b, q));
    }
    uint64_t wq = q - 1, wqp = hetee_shoup_prep(wq, q);
    assert_int_equal(hetee_mod_mul_shoup(~(uint64_t)0, wq, wqp, q),
                     ref_mod((unsigned __int128)(~(uint64_t)0) * wq, q));
  }
}

static void test_modulus_init_rejects(void **state) {
  (void)state;
  hetee_modulus m;
  assert_int_equal(hetee_modulus_init(&m, 0), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_modulus_init(&m, 1), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_modulus_init(&m, 1024), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_modulus_init(&m, ((uint64_t)1 << 61) + 1), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_modulus_init(NULL, 7), HETEE_ERR_INVALID_ARG);
}

static void test_pow_inv(void **state) {
  (void)state;
  uint64_t seed = 7;
  const uint64_t primes[] = {3, 65537, 1073479681ull, 1152921504606584833ull,
                             2305843009213693951ull /* 2^61 - 1 */};
  for (size_t k = 0; k < sizeof primes / sizeof primes[0]; k++) {
    uint64_t q = primes[k];
    hetee_modulus m;
    assert_int_equal(hetee_modulus_init(&m, q), 0);
    assert_int_equal(hetee_mod_pow(5, 0, &m), 1 % q);
    assert_int_equal(hetee_mod_inv(0, &m), 0);
    assert_int_equal(hetee_mod_inv(q, &m), 0);
    for (int i = 0; i < 200; i++) {
      uint64_t a = tu_next(&seed) % q, e = tu_next(&seed) % 1000;
      /* pow against repeated multiplication with __int128 % */
      uint64_t r = 1 % q;
      for (uint64_t j = 0; j < e; j++)
        r = ref_mod((unsigned __int128)r * a, q);
      assert_int_equal(hetee_mod_pow(a, e, &m), r);
      if (a) {
        uint64_t inv = hetee_mod_inv(a, &m);
        assert_true(inv < q);
        assert_int_equal(ref_mod((unsigned __int128)inv * a, q), 1);
      }
      /* Fermat */
      if (a)
        assert_int_equal(hetee_mod_pow(a, q - 1, &m), 1);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reduce128),
      cmocka_unit_test(test_modulus_init_rejects),
      cmocka_unit_test(test_pow_inv),
  };
  return cmocka_run_group_tests_name("ring/modarith", tests, NULL, NULL);
}

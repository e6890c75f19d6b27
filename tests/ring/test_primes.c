/* tests/ring/test_primes.c — Miller-Rabin against trial division and known
 * strong pseudoprimes, NTT-friendly prime generation (prime, = 1 mod 2N,
 * right size, largest first, distinct, excludes honoured, deterministic),
 * and primitive 2N-th roots (order exactly 2N, minimal), plus frozen known
 * answers for a few primes and roots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "hetee/ring.h"
#include "ring/test_util.h"

static int trial_prime(uint64_t n) {
  if (n < 2)
    return 0;
  for (uint64_t d = 2; d * d <= n; d++)
    if (n % d == 0)
      return 0;
  return 1;
}

static void test_is_prime(void **state) {
  (void)state;
  for (uint64_t n = 0; n < 20000; n++)
    assert_int_equal(hetee_is_prime(n), trial_prime(n));
  uint64_t seed = 3;
  for (int i = 0; i < 300; i++) {
    uint64_t n = (tu_next(&seed) >> 28) | 1; /* < 2^36: trial division feasible */
    assert_int_equal(hetee_is_prime(n), trial_prime(n));
  }
  /* strong pseudoprimes to several bases, Carmichael numbers */
  const uint64_t composites[] = {2047ull, 1373653ull, 25326001ull, 3215031751ull, 2152302898747ull,
                                 3474749660383ull, 341550071728321ull, 3825123056546413051ull,
                                 561ull, 1105ull, 18446744073709551615ull,
                                 (uint64_t)4294967291ull * 4294967279ull};
  for (size_t i = 0; i < sizeof composites / sizeof composites[0]; i++)
    assert_false(hetee_is_prime(composites[i]));
  const uint64_t primes[] = {2305843009213693951ull /* M61 */, 18446744073709551557ull,
                             4294967291ull, 1152921504606584833ull};
  for (size_t i = 0; i < sizeof primes / sizeof primes[0]; i++)
    assert_true(hetee_is_prime(primes[i]));
}

static void check_set(int logn, const int *bits, size_t count, const uint64_t *excl, size_t nex) {
  uint64_t out[16], again[16];
  assert_int_equal(hetee_primes_generate(logn, bits, count, excl, nex, out), 0);
  assert_int_equal(hetee_primes_generate(logn, bits, count, excl, nex, again), 0);
  uint64_t n2 = (uint64_t)2 << logn;
  for (size_t i = 0; i < count; i++) {
    assert_int_equal(out[i], again[i]);
    assert_true(hetee_is_prime(out[i]));
    assert_int_equal(out[i] % n2, 1);
    assert_int_equal(64 - __builtin_clzll(out[i]), bits[i]);
    for (size_t j = 0; j < i; j++)
      assert_int_not_equal(out[i], out[j]);
    for (size_t j = 0; j < nex; j++)
      assert_int_not_equal(out[i], excl[j]);
    /* largest: no skipped candidate above it is a prime that is free */
    for (uint64_t c = ((uint64_t)1 << bits[i]) - n2 + 1; c > out[i]; c -= n2) {
      int used = 0;
      for (size_t j = 0; j < i; j++)
        used |= out[j] == c;
      for (size_t j = 0; j < nex; j++)
        used |= excl[j] == c;
      assert_true(used || !hetee_is_prime(c));
    }
  }
}

static void test_generate(void **state) {
  (void)state;
  int b1[] = {60, 40, 40, 60, 61};
  check_set(13, b1, 5, NULL, 0);
  int b2[] = {30, 30, 30, 50, 59, 49};
  check_set(12, b2, 6, NULL, 0);
  int b3[] = {36, 36, 20};
  check_set(16, b3, 2, NULL, 0);
  /* excludes: generate, then exclude the result: the next call must skip */
  uint64_t first[2];
  int b4[] = {50, 50};
  assert_int_equal(hetee_primes_generate(14, b4, 2, NULL, 0, first), 0);
  check_set(14, b4, 2, first, 2);
  uint64_t second[1];
  assert_int_equal(hetee_primes_generate(14, b4, 1, first, 1, second), 0);
  assert_int_equal(second[0], first[1]);
}

static void test_generate_errors(void **state) {
  (void)state;
  uint64_t out[4];
  int bad1[] = {19};
  assert_int_equal(hetee_primes_generate(12, bad1, 1, NULL, 0, out), HETEE_ERR_PARAMS);
  int bad2[] = {62};
  assert_int_equal(hetee_primes_generate(12, bad2, 1, NULL, 0, out), HETEE_ERR_PARAMS);
  int ok[] = {40};
  assert_int_equal(hetee_primes_generate(0, ok, 1, NULL, 0, out), HETEE_ERR_PARAMS);
  assert_int_equal(hetee_primes_generate(18, ok, 1, NULL, 0, out), HETEE_ERR_PARAMS);
  /* 20-bit primes = 1 mod 2^18: candidates k*2^18+1 in [2^19, 2^20) are
   * 2^19+1 (not prime: divisible by 3) and 3*2^18+1 = 786433 (prime): only one */
  int two20[] = {20, 20};
  assert_int_equal(hetee_primes_generate(17, two20, 1, NULL, 0, out), 0);
  assert_int_equal(out[0], 786433);
  assert_int_equal(hetee_primes_generate(17, two20, 2, NULL, 0, out), HETEE_ERR_PARAMS);
}

static void test_primitive_root(void **state) {
  (void)state;
  const int logns[] = {1, 4, 10, 13, 16};
  for (size_t k = 0; k < sizeof logns / sizeof logns[0]; k++) {
    int logn = logns[k], bits[] = {30, 50, 61};
    uint64_t qs[3];
    assert_int_equal(hetee_primes_generate(logn, bits, 3, NULL, 0, qs), 0);
    for (int i = 0; i < 3; i++) {
      hetee_modulus m;
      uint64_t psi;
      assert_int_equal(hetee_modulus_init(&m, qs[i]), 0);
      assert_int_equal(hetee_primitive_root_2n(qs[i], logn, &psi), 0);
      uint64_t n = (uint64_t)1 << logn;
      assert_int_equal(hetee_mod_pow(psi, n, &m), qs[i] - 1); /* order exactly 2N */
      if (logn <= 10) { /* minimal: no smaller x with x^N = -1 */
        for (uint64_t x = 2; x < psi && x < 200000; x++)
          assert_int_not_equal(hetee_mod_pow(x, n, &m), qs[i] - 1);
      }
    }
  }
  uint64_t psi;
  assert_int_equal(hetee_primitive_root_2n(97, 5, &psi), HETEE_ERR_PARAMS); /* 97 = 33 mod 64 */
  assert_int_equal(hetee_primitive_root_2n(97, 4, &psi), 0);                /* 97 = 1 mod 32 */
  assert_int_equal(hetee_primitive_root_2n(85, 1, &psi), HETEE_ERR_PARAMS); /* 85 = 5 * 17 */
}

/* Frozen values: primes and roots define the NTT form, the parameter
 * fingerprints and any serialized NTT-form polynomial, so they must not
 * change silently. Computed outside hetee (Python: the same documented rules
 * — largest q = 1 mod 2N below 2^bits, not yet taken, prime; root = the
 * smallest x^((q-1)/2N) power of order 2N among all its odd powers). */
static void test_known_answers(void **state) {
  (void)state;
  const int b13[] = {60, 40, 40, 60, 50};
  const uint64_t q13[] = {1152921504606830593ull, 1099511480321ull, 1099510890497ull,
                          1152921504606748673ull, 1125899906826241ull};
  uint64_t out[5];
  assert_int_equal(hetee_primes_generate(13, b13, 5, NULL, 0, out), 0);
  assert_memory_equal(out, q13, sizeof q13);
  const int b16[] = {60, 50};
  const uint64_t q16[] = {1152921504606584833ull, 1125899903827969ull};
  assert_int_equal(hetee_primes_generate(16, b16, 2, NULL, 0, out), 0);
  assert_memory_equal(out, q16, sizeof q16);
  uint64_t psi;
  assert_int_equal(hetee_primitive_root_2n(q13[0], 13, &psi), 0);
  assert_int_equal(psi, 25959043411404ull);
  assert_int_equal(hetee_primitive_root_2n(q13[1], 13, &psi), 0);
  assert_int_equal(psi, 30370987ull);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_is_prime),
      cmocka_unit_test(test_generate),
      cmocka_unit_test(test_generate_errors),
      cmocka_unit_test(test_primitive_root),
      cmocka_unit_test(test_known_answers),
  };
  return cmocka_run_group_tests_name("ring/primes", tests, NULL, NULL);
}

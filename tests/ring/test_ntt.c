/* tests/ring/test_ntt.c — the negacyclic NTT: the product NTT^-1(NTT(a) .
 * NTT(b)) against a naive O(N^2) negacyclic convolution (N = 2^4..2^12),
 * forward outputs against direct evaluation at the odd powers of psi in the
 * documented bit-reversed order, and forward-then-inverse round trips up to
 * N = 2^16, for primes of 30 to 61 bits. Both the reference kernels and the
 * dispatching entry points are exercised. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "hetee/ring.h"
#include "ring/test_util.h"

static const int BITS[] = {30, 36, 45, 50, 55, 59, 60, 61};
#define NBITS (sizeof BITS / sizeof BITS[0])

static void naive_negacyclic(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  memset(c, 0, n * sizeof *c);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      uint64_t p = hetee_mod_mul(a[i], b[j], m);
      size_t k = i + j;
      if (k < n)
        c[k] = hetee_mod_add(c[k], p, m->q);
      else
        c[k - n] = hetee_mod_sub(c[k - n], p, m->q);
    }
}

static uint32_t brv(uint32_t x, int bits) {
  uint32_t r = 0;
  for (int i = 0; i < bits; i++, x >>= 1)
    r = (r << 1) | (x & 1);
  return r;
}

static void test_convolution(void **state) {
  (void)state;
  uint64_t seed = 11;
  int maxlog = tu_quick() ? 10 : 12;
  for (int logn = 4; logn <= maxlog; logn++) {
    size_t n = (size_t)1 << logn;
    uint64_t *a = hetee_alloc(n * 8), *b = hetee_alloc(n * 8), *c = hetee_alloc(n * 8), *d = hetee_alloc(n * 8);
    assert_non_null(d);
    for (size_t k = 0; k < NBITS; k++) {
      if (logn >= 11 && (k % 3) != 0)
        continue; /* keep the O(N^2) part short at large N */
      uint64_t q;
      int bits = BITS[k];
      assert_int_equal(hetee_primes_generate(logn, &bits, 1, NULL, 0, &q), 0);
      hetee_ntt_tables *t = NULL;
      assert_int_equal(hetee_ntt_tables_new(logn, q, &t), 0);
      assert_int_equal(hetee_ntt_tables_n(t), n);
      const hetee_modulus *m = hetee_ntt_tables_modulus(t);
      assert_int_equal(m->q, q);
      for (size_t i = 0; i < n; i++) {
        a[i] = tu_next(&seed) % q;
        b[i] = tu_next(&seed) % q;
      }
      if (k == 0) { /* extreme values */
        a[0] = q - 1;
        b[n - 1] = q - 1;
      }
      naive_negacyclic(m, a, b, c, n);
      hetee_ntt_forward_ref(t, a);
      hetee_ntt_forward(t, b);
      for (size_t i = 0; i < n; i++)
        assert_true(a[i] < q && b[i] < q);
      hetee_vec_mul(m, a, b, d, n);
      hetee_ntt_inverse_ref(t, d);
      assert_memory_equal(c, d, n * 8);
      hetee_ntt_tables_free(t);
    }
    hetee_free(a);
    hetee_free(b);
    hetee_free(c);
    hetee_free(d);
  }
}

/* Output index i is a(psi^(2*brv(i)+1)) — the order docs/ring.md states and
 * the Galois permutation relies on. */
static void test_evaluation_order(void **state) {
  (void)state;
  uint64_t seed = 5;
  for (int logn = 1; logn <= 9; logn++) {
    size_t n = (size_t)1 << logn;
    int bits = 40;
    uint64_t q, psi, a[512], e[512];
    assert_int_equal(hetee_primes_generate(logn, &bits, 1, NULL, 0, &q), 0);
    assert_int_equal(hetee_primitive_root_2n(q, logn, &psi), 0);
    hetee_ntt_tables *t = NULL;
    assert_int_equal(hetee_ntt_tables_new(logn, q, &t), 0);
    const hetee_modulus *m = hetee_ntt_tables_modulus(t);
    for (size_t i = 0; i < n; i++)
      a[i] = tu_next(&seed) % q;
    for (size_t i = 0; i < n; i++) {
      uint64_t x = hetee_mod_pow(psi, 2 * (uint64_t)brv((uint32_t)i, logn) + 1, m), acc = 0;
      for (size_t j = n; j-- > 0;) /* Horner */
        acc = hetee_mod_add(hetee_mod_mul(acc, x, m), a[j], q);
      e[i] = acc;
    }
    hetee_ntt_forward(t, a);
    assert_memory_equal(a, e, n * 8);
    hetee_ntt_tables_free(t);
  }
}

static void test_round_trip(void **state) {
  (void)state;
  uint64_t seed = 99;
  int maxlog = tu_quick() ? 14 : 16;
  for (int logn = 1; logn <= maxlog; logn++) {
    size_t n = (size_t)1 << logn;
    uint64_t *a = hetee_alloc(n * 8), *orig = hetee_alloc(n * 8);
    assert_non_null(orig);
    for (size_t k = 0; k < NBITS; k++) {
      uint64_t q;
      int bits = BITS[k];
      if (bits <= logn + 1)
        continue;
      assert_int_equal(hetee_primes_generate(logn, &bits, 1, NULL, 0, &q), 0);
      hetee_ntt_tables *t = NULL;
      assert_int_equal(hetee_ntt_tables_new(logn, q, &t), 0);
      for (size_t i = 0; i < n; i++)
        orig[i] = a[i] = (i & 7) == 3 ? q - 1 : tu_next(&seed) % q;
      hetee_ntt_forward_ref(t, a);
      hetee_ntt_inverse_ref(t, a);
      assert_memory_equal(a, orig, n * 8);
      hetee_ntt_forward(t, a);
      for (size_t i = 0; i < n; i++)
        assert_true(a[i] < q);
      hetee_ntt_inverse(t, a);
      assert_memory_equal(a, orig, n * 8);
      hetee_ntt_tables_free(t);
    }
    hetee_free(a);
    hetee_free(orig);
  }
}

static void test_tables_errors(void **state) {
  (void)state;
  hetee_ntt_tables *t = (hetee_ntt_tables *)1;
  assert_int_equal(hetee_ntt_tables_new(13, 97, &t), HETEE_ERR_PARAMS); /* 97 != 1 mod 2^14 */
  assert_null(t);
  assert_int_equal(hetee_ntt_tables_new(0, 97, &t), HETEE_ERR_PARAMS);
  assert_int_equal(hetee_ntt_tables_new(18, 97, &t), HETEE_ERR_PARAMS);
  assert_int_equal(hetee_ntt_tables_new(4, 1000, &t), HETEE_ERR_INVALID_ARG); /* even */
  assert_int_equal(hetee_ntt_tables_new(4, 0, NULL), HETEE_ERR_INVALID_ARG);
  hetee_ntt_tables_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_convolution),
      cmocka_unit_test(test_evaluation_order),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_tables_errors),
  };
  return cmocka_run_group_tests_name("ring/ntt", tests, NULL, NULL);
}

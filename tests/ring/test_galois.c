/* tests/ring/test_galois.c — the Galois automorphism X -> X^g: the NTT-form
 * permutation must agree with the coefficient-form map through the NTT
 * (perm(NTT(a)) == NTT(apply_coeff(a))), the coefficient map is checked
 * against its definition on monomials, and composition matches g1*g2.
 * The AVX-512 gather variant of hetee_vec_permute is compared with the
 * scalar loop (Galois permutations and random maps, lengths with tails). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "hetee/ring.h"
#include "ring/ring_internal.h"
#include "ring/test_util.h"

static void test_perm_matches_coeff(void **state) {
  (void)state;
  uint64_t seed = 21;
  const int logns[] = {3, 5, 10, 13};
  for (size_t L = 0; L < sizeof logns / sizeof logns[0]; L++) {
    int logn = logns[L], bits = 50;
    size_t n = (size_t)1 << logn;
    uint64_t q;
    assert_int_equal(hetee_primes_generate(logn, &bits, 1, NULL, 0, &q), 0);
    hetee_ntt_tables *t = NULL;
    assert_int_equal(hetee_ntt_tables_new(logn, q, &t), 0);
    const hetee_modulus *m = hetee_ntt_tables_modulus(t);
    uint64_t *a = hetee_alloc(n * 8), *b = hetee_alloc(n * 8), *c = hetee_alloc(n * 8);
    uint32_t *perm = hetee_alloc(n * 4);
    assert_non_null(perm);
    /* rotation generators 5^k, conjugation 2N-1, and a few random odd g */
    uint64_t gs[8] = {5, 25, 3, 2 * n - 1, 1, 0, 0, 0};
    for (int i = 5; i < 8; i++)
      gs[i] = (tu_next(&seed) % (2 * n)) | 1;
    for (int gi = 0; gi < 8; gi++) {
      uint64_t g = gs[gi] % (2 * n);
      for (size_t i = 0; i < n; i++)
        a[i] = tu_next(&seed) % q;
      a[1] = 0; /* zero must stay zero when negated */
      hetee_galois_apply_coeff(m, logn, g, a, b);
      hetee_ntt_forward(t, b);
      hetee_ntt_forward(t, a);
      assert_int_equal(hetee_galois_perm_ntt(logn, g, perm), 0);
      hetee_vec_permute(perm, a, c, n);
      assert_memory_equal(b, c, n * 8);
    }
    hetee_free(a);
    hetee_free(b);
    hetee_free(c);
    hetee_free(perm);
    hetee_ntt_tables_free(t);
  }
}

static void test_coeff_definition(void **state) {
  (void)state;
  int logn = 4;
  size_t n = 16;
  hetee_modulus m;
  assert_int_equal(hetee_modulus_init(&m, 97), 0);
  for (uint64_t g = 1; g < 2 * n; g += 2)
    for (size_t j = 0; j < n; j++) {
      uint64_t in[16] = {0}, out[16], want[16] = {0};
      in[j] = 7; /* 7 X^j -> 7 X^(jg) = +-7 X^(jg mod N) */
      uint64_t e = (j * g) % (2 * n);
      want[e % n] = e < n ? 7 : 97 - 7;
      hetee_galois_apply_coeff(&m, logn, g, in, out);
      assert_memory_equal(out, want, sizeof want);
    }
}

static void test_composition_and_errors(void **state) {
  (void)state;
  int logn = 8;
  size_t n = 256;
  uint32_t p1[256], p2[256], p12[256];
  assert_int_equal(hetee_galois_perm_ntt(logn, 5, p1), 0);
  assert_int_equal(hetee_galois_perm_ntt(logn, 3, p2), 0);
  assert_int_equal(hetee_galois_perm_ntt(logn, 15, p12), 0);
  /* applying g=5 then g=3 equals g=15: out2[i] = out1[p2[i]] = in[p1[p2[i]]] */
  for (size_t i = 0; i < n; i++)
    assert_int_equal(p1[p2[i]], p12[i]);
  assert_int_equal(hetee_galois_perm_ntt(logn, 4, p1), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_galois_perm_ntt(logn, 2 * n + 1, p1), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_galois_perm_ntt(logn, 5, NULL), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_galois_perm_ntt(0, 5, p1), HETEE_ERR_PARAMS);
}

/* hetee_vec_permute_avx512 (and the dispatching entry point) against the
 * scalar reference, bit for bit: Galois permutations of logN 10..14 and
 * arbitrary index maps (repeats allowed) whose lengths leave tails of every
 * size modulo the 16-wide main loop. */
static void test_permute_variants(void **state) {
  (void)state;
  uint64_t seed = 77;
  int simd = hetee_ring_isa_supported(HETEE_ISA_AVX512);
  if (!simd)
    fprintf(stderr, "  AVX-512 not available: only the dispatcher is compared\n");
  for (int logn = 10; logn <= 14; logn++) {
    size_t n = (size_t)1 << logn;
    uint32_t *perm = hetee_alloc(n * 4);
    uint64_t *in = hetee_alloc(n * 8), *want = hetee_alloc(n * 8), *got = hetee_alloc(n * 8);
    assert_non_null(perm);
    assert_non_null(in);
    assert_non_null(want);
    assert_non_null(got);
    for (size_t i = 0; i < n; i++)
      in[i] = tu_next(&seed);
    uint64_t gs[3] = {5, 2 * n - 1, (tu_next(&seed) % (2 * n)) | 1};
    for (int gi = 0; gi < 3; gi++) {
      assert_int_equal(hetee_galois_perm_ntt(logn, gs[gi], perm), 0);
      hetee_vec_permute_ref(perm, in, want, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(want[i], in[perm[i]]);
      memset(got, 0, n * 8);
      hetee_vec_permute(perm, in, got, n);
      assert_memory_equal(got, want, n * 8);
      if (simd) {
        memset(got, 0, n * 8);
        hetee_vec_permute_avx512(perm, in, got, n);
        assert_memory_equal(got, want, n * 8);
      }
    }
    hetee_free(perm);
    hetee_free(in);
    hetee_free(want);
    hetee_free(got);
  }
  /* arbitrary maps, lengths 1..40 and 1000 (tails 0..15) */
  uint32_t perm[1000];
  uint64_t in[1000], want[1000], got[1000];
  for (size_t i = 0; i < 1000; i++)
    in[i] = tu_next(&seed);
  for (size_t n = 1; n <= 1000; n = n < 40 ? n + 1 : 1000) {
    for (size_t i = 0; i < n; i++)
      perm[i] = (uint32_t)(tu_next(&seed) % n);
    hetee_vec_permute_ref(perm, in, want, n);
    memset(got, 0, sizeof got);
    hetee_vec_permute(perm, in, got, n);
    assert_memory_equal(got, want, n * 8);
    if (simd) {
      memset(got, 0, sizeof got);
      hetee_vec_permute_avx512(perm, in, got, n);
      assert_memory_equal(got, want, n * 8);
    }
    if (n == 1000)
      break;
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_perm_matches_coeff),
      cmocka_unit_test(test_coeff_definition),
      cmocka_unit_test(test_composition_and_errors),
      cmocka_unit_test(test_permute_variants),
  };
  return cmocka_run_group_tests_name("ring/galois", tests, NULL, NULL);
}

/* tests/ring/test_ntt_isa.c — every ISA variant this CPU supports (ref,
 * avx2, avx512 with its IFMA52 path for q < 2^50) against the reference
 * kernels, bit for bit, forward and inverse, for N = 2^1..2^15 (2^13 under
 * HETEE_TEST_QUICK) and primes of 30, 40, 49, 50, 51, 59, 60 and 61 bits
 * (two primes per size), on random inputs and on the extreme inputs
 * all-zero and all-(q-1). Variants missing on this CPU are reported and
 * skipped; hetee_ntt_*_isa must then answer HETEE_ERR_UNSUPPORTED. Also
 * hetee_ntt_inverse_add (fused copy + inverse + constant) against the
 * reference, in place and out of place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "hetee/ring.h"
#include "ring/test_util.h"
#include "ring/ring_shoup.h"

static void check_variant(hetee_isa isa) {
  uint64_t seed = 1234 + (uint64_t)isa;
  static const int BITS[] = {30, 40, 49, 50, 51, 59, 60, 61};
  int maxlog = tu_quick() ? 13 : 15;
  size_t cap = (size_t)1 << maxlog;
  uint64_t *a = hetee_alloc(cap * 8), *b = hetee_alloc(cap * 8), *orig = hetee_alloc(cap * 8);
  assert_non_null(orig);
  for (int logn = 1; logn <= maxlog; logn++) {
    size_t n = (size_t)1 << logn;
    for (size_t k = 0; k < sizeof BITS / sizeof BITS[0]; k++) {
      int bits[2] = {BITS[k], BITS[k]};
      uint64_t qs[2];
      assert_int_equal(hetee_primes_generate(logn, bits, 2, NULL, 0, qs), 0);
      for (int s = 0; s < 2; s++) {
        uint64_t q = qs[s];
        hetee_ntt_tables *t = NULL;
        assert_int_equal(hetee_ntt_tables_new(logn, q, &t), 0);
        for (int pattern = 0; pattern < 3; pattern++) {
          for (size_t i = 0; i < n; i++)
            orig[i] = pattern == 0 ? tu_next(&seed) % q : pattern == 1 ? 0 : q - 1;
          memcpy(a, orig, n * 8);
          memcpy(b, orig, n * 8);
          hetee_ntt_forward_ref(t, a);
          assert_int_equal(hetee_ntt_forward_isa(isa, t, b), 0);
          if (memcmp(a, b, n * 8)) {
            fprintf(stderr, "forward mismatch isa=%d logN=%d q=%llu pattern=%d\n", (int)isa, logn,
                    (unsigned long long)q, pattern);
            fail();
          }
          /* inverse of an arbitrary reduced input (not only of a forward) */
          memcpy(a, orig, n * 8);
          memcpy(b, orig, n * 8);
          hetee_ntt_inverse_ref(t, a);
          assert_int_equal(hetee_ntt_inverse_isa(isa, t, b), 0);
          if (memcmp(a, b, n * 8)) {
            fprintf(stderr, "inverse mismatch isa=%d logN=%d q=%llu pattern=%d\n", (int)isa, logn,
                    (unsigned long long)q, pattern);
            fail();
          }
          /* round trip through the variant alone */
          assert_int_equal(hetee_ntt_forward_isa(isa, t, b), 0);
          assert_memory_equal(b, orig, n * 8);
        }
        hetee_ntt_tables_free(t);
      }
    }
  }
  hetee_free(a);
  hetee_free(b);
  hetee_free(orig);
}

static void run(hetee_isa isa, const char *name) {
  if (!hetee_ring_isa_supported(isa)) {
    uint64_t x[2] = {0, 0};
    hetee_ntt_tables *t = NULL;
    assert_int_equal(hetee_ntt_tables_new(1, 97, &t), 0);
    assert_int_equal(hetee_ntt_forward_isa(isa, t, x), HETEE_ERR_UNSUPPORTED);
    hetee_ntt_tables_free(t);
    fprintf(stderr, "ring/ntt_isa: %s not supported on this CPU, skipped\n", name);
    skip();
  }
  check_variant(isa);
}

static void test_ref(void **state) { (void)state; run(HETEE_ISA_REF, "ref"); }
static void test_avx2(void **state) { (void)state; run(HETEE_ISA_AVX2, "avx2"); }
static void test_avx512(void **state) { (void)state; run(HETEE_ISA_AVX512, "avx512"); }

/* hetee_ntt_inverse_add through the dispatcher (ctest also runs this file
 * pinned to ref and avx2): out-of-place (input untouched) and in place,
 * equal to the reference inverse plus s, computed with % */
static void test_inverse_add(void **state) {
  (void)state;
  uint64_t seed = 99;
  static const int BITS[] = {30, 40, 50, 51, 60, 61};
  int maxlog = tu_quick() ? 12 : 14;
  size_t cap = (size_t)1 << maxlog;
  uint64_t *in = hetee_alloc(cap * 8), *want = hetee_alloc(cap * 8), *out = hetee_alloc(cap * 8),
           *keep = hetee_alloc(cap * 8);
  assert_non_null(keep);
  for (int logn = 1; logn <= maxlog; logn++) {
    size_t n = (size_t)1 << logn;
    for (size_t k = 0; k < sizeof BITS / sizeof BITS[0]; k++) {
      int bits = BITS[k];
      uint64_t q;
      assert_int_equal(hetee_primes_generate(logn, &bits, 1, NULL, 0, &q), 0);
      hetee_ntt_tables *t = NULL;
      assert_int_equal(hetee_ntt_tables_new(logn, q, &t), 0);
      const uint64_t adds[] = {0, 1, q - 1, tu_next(&seed) % q};
      for (size_t ia = 0; ia < 4; ia++) {
        uint64_t sadd = adds[ia];
        for (size_t i = 0; i < n; i++) in[i] = (ia & 1) ? q - 1 - (tu_next(&seed) & 1) : tu_next(&seed) % q;
        memcpy(want, in, n * 8);
        hetee_ntt_inverse_ref(t, want);
        for (size_t i = 0; i < n; i++) want[i] = (uint64_t)(((unsigned __int128)want[i] + sadd) % q);
        memcpy(keep, in, n * 8);
        hetee_ntt_inverse_add(t, in, out, sadd);
        assert_memory_equal(out, want, n * 8);
        assert_memory_equal(in, keep, n * 8);
        hetee_ntt_inverse_add(t, in, in, sadd);
        assert_memory_equal(in, want, n * 8);
      }
      hetee_ntt_tables_free(t);
    }
  }
  hetee_free(in);
  hetee_free(want);
  hetee_free(out);
  hetee_free(keep);
}

/* hetee_ntt_inverse_scaled through the dispatcher (also pinned to ref and
 * avx2 by ctest): the reference inverse times c, computed with %, for
 * c = 0, 1, q - 1 and random, every size and prime width. */
static void test_inverse_scaled(void **state) {
  (void)state;
  uint64_t seed = 1234;
  static const int BITS[] = {30, 40, 50, 51, 60, 61};
  int maxlog = tu_quick() ? 12 : 14;
  size_t cap = (size_t)1 << maxlog;
  uint64_t *in = hetee_alloc(cap * 8), *want = hetee_alloc(cap * 8);
  assert_non_null(want);
  for (int logn = 1; logn <= maxlog; logn++) {
    size_t n = (size_t)1 << logn;
    for (size_t k = 0; k < sizeof BITS / sizeof BITS[0]; k++) {
      int bits = BITS[k];
      uint64_t q;
      assert_int_equal(hetee_primes_generate(logn, &bits, 1, NULL, 0, &q), 0);
      hetee_ntt_tables *t = NULL;
      assert_int_equal(hetee_ntt_tables_new(logn, q, &t), 0);
      const uint64_t cs[] = {0, 1, q - 1, tu_next(&seed) % q};
      for (size_t ic = 0; ic < 4; ic++) {
        for (size_t i = 0; i < n; i++) in[i] = (ic & 1) ? q - 1 - (tu_next(&seed) & 1) : tu_next(&seed) % q;
        memcpy(want, in, n * 8);
        hetee_ntt_inverse_ref(t, want);
        for (size_t i = 0; i < n; i++) want[i] = (uint64_t)(((unsigned __int128)want[i] * cs[ic]) % q);
        hetee_ntt_inverse_scaled(t, in, cs[ic]);
        assert_memory_equal(in, want, n * 8);
      }
      hetee_ntt_tables_free(t);
    }
  }
  hetee_free(in);
  hetee_free(want);
}

static void test_dispatch_names(void **state) {
  (void)state;
  const char *name = hetee_ring_isa_name();
  hetee_isa isa = hetee_ring_isa();
  assert_true(hetee_ring_isa_supported(isa));
  assert_true(!strcmp(name, "ref") || !strcmp(name, "avx2") || !strcmp(name, "avx512") ||
              !strcmp(name, "avx512ifma"));
  assert_false(hetee_ring_isa_supported((hetee_isa)7));
  /* a supported pin is honoured (ctest runs this file pinned to each) */
  const char *pin = getenv("HETEE_ISA");
  if (pin && !strcmp(pin, "ref"))
    assert_int_equal(isa, HETEE_ISA_REF);
  if (pin && !strcmp(pin, "avx2") && hetee_ring_isa_supported(HETEE_ISA_AVX2))
    assert_int_equal(isa, HETEE_ISA_AVX2);
  if (pin && !strcmp(pin, "avx512") && hetee_ring_isa_supported(HETEE_ISA_AVX512))
    assert_int_equal(isa, HETEE_ISA_AVX512);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ref),
      cmocka_unit_test(test_avx2),
      cmocka_unit_test(test_avx512),
      cmocka_unit_test(test_inverse_scaled),
      cmocka_unit_test(test_inverse_add),
      cmocka_unit_test(test_dispatch_names),
  };
  return cmocka_run_group_tests_name("ring/ntt_isa", tests, NULL, NULL);
}

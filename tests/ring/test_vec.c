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
#include "ring/ring_shoup.h"

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
      /* extremes of the quotient estimate: 2^64 - 1, multiples of q and
       * their neighbours near 2^64 */
      const uint64_t top = (UINT64_MAX / q) * q;
      const uint64_t ext[] = {UINT64_MAX, top, top - 1, top - q, top - q + 1, q, q - 1, 0};
      for (size_t i = 0; i < n && i < 8; i++) raw[(i * 5) % n] = ext[i];
      hetee_vec_reduce(&m, raw, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], raw[i] % q);
      hetee_vec_reduce_add_scalar(&m, raw, s, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (uint64_t)(((unsigned __int128)(raw[i] % q) + s) % q));
      hetee_vec_sub_mul_scalar_add(&m, a, bb, s, NULL, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (uint64_t)(((unsigned __int128)((a[i] + q - bb[i]) % q) * s) % q));
      hetee_vec_sub_mul_scalar_add(&m, a, bb, s, c, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (uint64_t)((((unsigned __int128)((a[i] + q - bb[i]) % q) * s) % q + c[i]) % q));
      memcpy(d, c, n * 8); /* in place over base: d = (a - b) s + d */
      hetee_vec_sub_mul_scalar_add(&m, a, bb, q - 1, d, d, n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (uint64_t)((((unsigned __int128)((a[i] + q - bb[i]) % q) * (q - 1)) % q + c[i]) % q));
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

/* hetee_vec_dot, hetee_vec_dot2 and hetee_vec_tensor2 against sums of exact __int128
 * products reduced with %, for every prime size, row counts that cross the
 * kernels' reduction chunks (2 to 256 products, 64 in the tails), SIMD tails, and outputs
 * aliasing inputs. Residues are biased to q-1 to hit the largest sums. */
static void test_vec_dot_tensor(void **state) {
  (void)state;
  uint64_t seed = 1234;
  /* NTT primes of many sizes, then small and extreme odd moduli */
  const int bits[] = {20, 30, 40, 49, 50, 51, 52, 55, 59, 60, 61, 0, 0, 0, 0, 0};
  const uint64_t extra[] = {3, 97, 65537, ((uint64_t)1 << 61) - 1, ((uint64_t)1 << 60) + 1};
  for (size_t kb = 0; kb < sizeof bits / sizeof bits[0]; kb++) {
    uint64_t q;
    int b = bits[kb];
    if (b)
      assert_int_equal(hetee_primes_generate(12, &b, 1, NULL, 0, &q), 0);
    else
      q = extra[kb - 11];
    hetee_modulus m;
    assert_int_equal(hetee_modulus_init(&m, q), 0);
    enum { MAXK = 300, MAXN = 37 };
    static uint64_t A[MAXK][MAXN], B[MAXK][MAXN];
    const uint64_t *ap[MAXK], *bp[MAXK];
    uint64_t c[MAXN], want[MAXN];
    const size_t ks[] = {0, 1, 2, 3, 4, 5, 8, 9, 65, 70, 257, 300};
    const size_t ns[] = {8, 13, 37};
    for (size_t ik = 0; ik < sizeof ks / sizeof ks[0]; ik++)
      for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++) {
        size_t k = ks[ik], n = ns[in];
        for (size_t j = 0; j < k; j++) {
          fill(A[j], n, q, &seed);
          fill(B[j], n, q, &seed);
          if (j % 3 == 0)
            for (size_t i = 0; i < n; i++) A[j][i] = B[j][i] = q - 1 - (tu_next(&seed) & 1);
          ap[j] = A[j];
          bp[j] = B[j];
        }
        for (size_t i = 0; i < n; i++) {
          unsigned __int128 s = 0;
          for (size_t j = 0; j < k; j++) s = (s + (unsigned __int128)A[j][i] * B[j][i]) % q;
          want[i] = (uint64_t)s;
        }
        hetee_vec_dot(&m, ap, bp, k, c, n);
        for (size_t i = 0; i < n; i++) assert_int_equal(c[i], want[i]);
        /* dot2 = two dots sharing a (second set: b reversed), plain and permuted */
        const uint64_t *bq[MAXK];
        uint64_t c2v[MAXN], want2[MAXN];
        for (size_t j = 0; j < k; j++) bq[j] = B[k - 1 - j];
        for (size_t i = 0; i < n; i++) {
          unsigned __int128 s2 = 0;
          for (size_t j = 0; j < k; j++) s2 = (s2 + (unsigned __int128)A[j][i] * B[k - 1 - j][i]) % q;
          want2[i] = (uint64_t)s2;
        }
        memset(c, 0, sizeof c);
        hetee_vec_dot2(&m, ap, NULL, bp, bq, k, c, c2v, n);
        for (size_t i = 0; i < n; i++) {
          assert_int_equal(c[i], want[i]);
          assert_int_equal(c2v[i], want2[i]);
        }
        /* through a permutation of the left rows (Fisher-Yates) */
        uint32_t perm[MAXN];
        for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
        for (size_t i = n - 1; i > 0; i--) {
          size_t r = tu_next(&seed) % (i + 1);
          uint32_t t = perm[i];
          perm[i] = perm[r];
          perm[r] = t;
        }
        for (size_t i = 0; i < n; i++) {
          unsigned __int128 s0 = 0, s1 = 0;
          for (size_t j = 0; j < k; j++) {
            s0 = (s0 + (unsigned __int128)A[j][perm[i]] * B[j][i]) % q;
            s1 = (s1 + (unsigned __int128)A[j][perm[i]] * B[k - 1 - j][i]) % q;
          }
          want2[i] = (uint64_t)s1;
          c[i] = (uint64_t)s0; /* expected c0 kept in c, compared below */
        }
        uint64_t p0[MAXN], p1[MAXN];
        hetee_vec_dot2(&m, ap, perm, bp, bq, k, p0, p1, n);
        for (size_t i = 0; i < n; i++) {
          assert_int_equal(p0[i], c[i]);
          assert_int_equal(p1[i], want2[i]);
        }
        /* output aliasing the first row of a */
        uint64_t save[MAXN];
        memcpy(save, A[0], n * 8);
        hetee_vec_dot(&m, ap, bp, k, A[0], n);
        for (size_t i = 0; i < n; i++) assert_int_equal(A[0][i], want[i]);
        memcpy(A[0], save, n * 8);
      }
    /* tensor2, fresh and accumulating, and in place over the a's */
    for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++) {
      size_t n = ns[in];
      uint64_t *a0 = A[0], *a1 = A[1], *b0 = B[0], *b1 = B[1], c0[MAXN], c1[MAXN], c2[MAXN];
      fill(a0, n, q, &seed);
      fill(a1, n, q, &seed);
      fill(b0, n, q, &seed);
      fill(b1, n, q, &seed);
      for (size_t i = 0; i < n / 2; i++) a0[i] = a1[i] = b0[i] = b1[i] = q - 1;
      for (int acc = 0; acc < 2; acc++) {
        uint64_t w0[MAXN], w1[MAXN], w2[MAXN];
        fill(c0, n, q, &seed);
        fill(c1, n, q, &seed);
        fill(c2, n, q, &seed);
        for (size_t i = 0; i < n / 3; i++) c0[i] = c1[i] = c2[i] = q - 1;
        for (size_t i = 0; i < n; i++) {
          unsigned __int128 z0 = acc ? c0[i] : 0, z1 = acc ? c1[i] : 0, z2 = acc ? c2[i] : 0;
          w0[i] = (uint64_t)(((unsigned __int128)a0[i] * b0[i] + z0) % q);
          w1[i] = (uint64_t)((((unsigned __int128)a0[i] * b1[i]) % q + ((unsigned __int128)a1[i] * b0[i]) % q + z1) % q);
          w2[i] = (uint64_t)(((unsigned __int128)a1[i] * b1[i] + z2) % q);
        }
        hetee_vec_tensor2(&m, a0, a1, b0, b1, c0, c1, c2, n, acc);
        for (size_t i = 0; i < n; i++) {
          assert_int_equal(c0[i], w0[i]);
          assert_int_equal(c1[i], w1[i]);
          assert_int_equal(c2[i], w2[i]);
        }
      }
      uint64_t w0[MAXN], w1[MAXN], w2[MAXN], x0[MAXN], x1[MAXN];
      memcpy(x0, a0, n * 8);
      memcpy(x1, a1, n * 8);
      hetee_vec_tensor2(&m, x0, x1, b0, b1, w0, w1, w2, n, 0);
      hetee_vec_tensor2(&m, x0, x1, b0, b1, x0, x1, c2, n, 0); /* c0, c1 over a0, a1 */
      for (size_t i = 0; i < n; i++) {
        assert_int_equal(x0[i], w0[i]);
        assert_int_equal(x1[i], w1[i]);
        assert_int_equal(c2[i], w2[i]);
      }
    }
  }
}

/* The secret-key products (ring_shoup.h): the division-free Shoup quotient
 * against the 128-bit division, and c = add + a0 w0 (+ a1 w1) against
 * __int128 % for every call shape (one or two products, with or without the
 * addend, the addend aliasing the output; and c = b - a0 w0), through the dispatcher (pinned by
 * HETEE_ISA in the per-ISA runs) and through each variant the CPU has
 * directly (the IFMA52 one for q < 2^50 only). Values biased to 0, 1, q-1. */
typedef void (*shoup_fn)(const hetee_modulus *, const uint64_t *, const uint64_t *, const uint64_t *,
                         const uint64_t *, const uint64_t *, const uint64_t *, const uint64_t *, uint64_t *, size_t);
typedef void (*shoup_sub_fn)(const hetee_modulus *, const uint64_t *, const uint64_t *, const uint64_t *,
                             const uint64_t *, uint64_t *, size_t);

static void test_vec_shoup_dot(void **state) {
  (void)state;
  uint64_t seed = 4242;
  const int bits[] = {20, 30, 40, 49, 50, 51, 52, 59, 60, 61, 0, 0, 0};
  const uint64_t extra[] = {3, ((uint64_t)1 << 61) - 1, ((uint64_t)1 << 60) + 1};
  for (size_t k = 0; k < sizeof bits / sizeof bits[0]; k++) {
    uint64_t q;
    int b = bits[k];
    if (b)
      assert_int_equal(hetee_primes_generate(12, &b, 1, NULL, 0, &q), 0);
    else
      q = extra[k - 10];
    hetee_modulus m;
    assert_int_equal(hetee_modulus_init(&m, q), 0);
    shoup_fn fns[4] = {hetee_vec_shoup_dot, hetee_vec_shoup_dot_ref, NULL, NULL};
    shoup_sub_fn subs[4] = {hetee_vec_shoup_sub, hetee_vec_shoup_sub_ref, NULL, NULL};
#if defined(__x86_64__) /* the SIMD files are built for x86-64 only (src/ring/CMakeLists.txt) */
    if (hetee_ring_isa_supported(HETEE_ISA_AVX512)) {
      fns[2] = hetee_vec_shoup_dot_avx512;
      subs[2] = hetee_vec_shoup_sub_avx512;
      if (m.bits <= 50 && __builtin_cpu_supports("avx512ifma")) {
        fns[3] = hetee_vec_shoup_dot_avx512ifma;
        subs[3] = hetee_vec_shoup_sub_avx512ifma;
      }
    }
#endif
    const size_t lens[] = {1, 7, 8, 13, 64, 1001};
    for (size_t L = 0; L < sizeof lens / sizeof lens[0]; L++) {
      size_t n = lens[L];
      uint64_t a0[1001], a1[1001], w0[1001], w1[1001], p0[1001], p1[1001], ad[1001], c[1001];
      fill(a0, n, q, &seed);
      fill(a1, n, q, &seed);
      fill(w0, n, q, &seed);
      fill(w1, n, q, &seed);
      fill(ad, n, q, &seed);
      hetee_vec_shoup_prep(&m, w0, p0, n);
      hetee_vec_shoup_prep(&m, w1, p1, n);
      for (size_t i = 0; i < n; i++) {
        assert_int_equal(p0[i], (uint64_t)(((unsigned __int128)w0[i] << 64) / q));
        assert_int_equal(p1[i], (uint64_t)(((unsigned __int128)w1[i] << 64) / q));
      }
      for (int f = 0; f < 4; f++) {
        if (!fns[f]) continue;
        for (int shape = 0; shape < 5; shape++) {
          int two = shape & 1, with_add = shape >= 2, alias = shape == 4;
          if (alias) memcpy(c, ad, n * 8);
          else memset(c, 0xa5, n * 8);
          fns[f](&m, with_add ? (alias ? c : ad) : NULL, a0, w0, p0, two ? a1 : NULL, two ? w1 : NULL,
                 two ? p1 : NULL, c, n);
          for (size_t i = 0; i < n; i++) {
            unsigned __int128 x = (unsigned __int128)a0[i] * w0[i] % q;
            if (two) x += (unsigned __int128)a1[i] * w1[i] % q;
            if (with_add) x += ad[i];
            assert_int_equal(c[i], (uint64_t)(x % q));
          }
        }
        /* the same sums from little-endian bytes at any alignment, with the
         * range check: equal results, and every out-of-range word (a0, a1
         * or add; vector body or tail) reported */
        if (f < 3) {
          typedef uint64_t (*le_fn)(const hetee_modulus *, const uint8_t *, const uint8_t *, const uint64_t *,
                                    const uint64_t *, const uint8_t *, const uint64_t *, const uint64_t *, uint64_t *,
                                    size_t);
          le_fn lf = f == 0 ? hetee_vec_shoup_dot_le : f == 1 ? hetee_vec_shoup_dot_le_ref : NULL;
#if defined(__x86_64__)
          if (f == 2) lf = hetee_vec_shoup_dot_le_avx512;
#endif
          static uint8_t raw[3][1001 * 8 + 8];
          uint64_t ref[1001];
          for (int shape = 0; shape < 4; shape++) {
            int two = shape & 1, with_add = shape >= 2;
            size_t sh = (size_t)(shape + f) % 8; /* byte offset: every alignment over the loop */
            uint8_t *b0 = raw[0] + sh, *b1 = raw[1] + sh, *bd = raw[2] + sh;
            memcpy(b0, a0, n * 8);
            memcpy(b1, a1, n * 8);
            memcpy(bd, ad, n * 8);
            hetee_vec_shoup_dot_ref(&m, with_add ? ad : NULL, a0, w0, p0, two ? a1 : NULL, two ? w1 : NULL,
                                    two ? p1 : NULL, ref, n);
            memset(c, 0xa5, n * 8);
            assert_int_equal(lf(&m, with_add ? bd : NULL, b0, w0, p0, two ? b1 : NULL, two ? w1 : NULL, two ? p1 : NULL,
                                c, n),
                             0);
            assert_memory_equal(c, ref, n * 8);
            const size_t at[3] = {0, n / 2, n - 1};
            for (int wh = 0; wh < 3; wh++) {
              uint8_t *row = wh == 0 ? b0 : wh == 1 ? b1 : bd;
              if ((wh == 1 && !two) || (wh == 2 && !with_add)) continue;
              for (int p = 0; p < 3; p++) {
                uint64_t big = p == 1 ? q : ~(uint64_t)0, old;
                memcpy(&old, row + 8 * at[p], 8);
                memcpy(row + 8 * at[p], &big, 8);
                assert_true(lf(&m, with_add ? bd : NULL, b0, w0, p0, two ? b1 : NULL, two ? w1 : NULL,
                               two ? p1 : NULL, c, n) != 0);
                memcpy(row + 8 * at[p], &old, 8);
              }
            }
          }
        }
        /* c = b - a0 w0, out of place and in place */
        for (int inplace = 0; inplace < 2; inplace++) {
          if (inplace) memcpy(c, ad, n * 8);
          else memset(c, 0x5a, n * 8);
          subs[f](&m, inplace ? c : ad, a0, w0, p0, c, n);
          for (size_t i = 0; i < n; i++)
            assert_int_equal(c[i], (uint64_t)(((unsigned __int128)ad[i] + q - (unsigned __int128)a0[i] * w0[i] % q) % q));
        }
      }
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vec_ops),
      cmocka_unit_test(test_vec_dot_tensor),
      cmocka_unit_test(test_vec_shoup_dot),
  };
  return cmocka_run_group_tests_name("ring/vec", tests, NULL, NULL);
}

/*
 * avx512_arith.h — helpers shared by the files compiled with AVX-512 flags
 * (ntt_avx512.c, vec_avx512.c, vec_avx512ifma.c): 64-bit modular arithmetic
 * on AVX-512F/DQ lanes, and the scalar remainders of the key-switching
 * inner products (the last n mod 8 coefficients, through the reference).
 * Include only from such files, after ring_internal.h.
 */
#ifndef HETEE_AVX512_ARITH_H
#define HETEE_AVX512_ARITH_H

#include <immintrin.h>
#include <string.h>

#include "ring_internal.h"

/* Full 64x64 -> 128 product a * b = hi * 2^64 + lo per lane, exact, from
 * four vpmuludq (AVX-512 has no 64-bit high multiply without IFMA); high and
 * low words share the partial products, so the low word costs no vpmullq. */
static inline void hetee_mm512_mul_wide(__m512i a, __m512i b, __m512i *hi, __m512i *lo) {
  const __m512i lo32 = _mm512_set1_epi64(0xffffffffll);
  __m512i ah = _mm512_srli_epi64(a, 32), bh = _mm512_srli_epi64(b, 32);
  __m512i ll = _mm512_mul_epu32(a, b), lh = _mm512_mul_epu32(a, bh);
  __m512i hl = _mm512_mul_epu32(ah, b), hh = _mm512_mul_epu32(ah, bh);
  __m512i mid = _mm512_add_epi64(_mm512_srli_epi64(ll, 32), _mm512_and_si512(lh, lo32));
  mid = _mm512_add_epi64(mid, _mm512_and_si512(hl, lo32));
  __m512i h = _mm512_add_epi64(hh, _mm512_srli_epi64(lh, 32));
  h = _mm512_add_epi64(h, _mm512_srli_epi64(hl, 32));
  *hi = _mm512_add_epi64(h, _mm512_srli_epi64(mid, 32));
  *lo = _mm512_or_si512(_mm512_slli_epi64(mid, 32), _mm512_and_si512(ll, lo32));
}

/* floor(a * b / 2^64) per lane (the unused low word is dropped by the
 * compiler once inlined) */
static inline __m512i hetee_mm512_mulhi64(__m512i a, __m512i b) {
  __m512i hi, lo;
  hetee_mm512_mul_wide(a, b, &hi, &lo);
  return hi;
}

/* x - b if x >= b else x, for x < 2b (unsigned min: x - b wraps when x < b) */
static inline __m512i hetee_mm512_csub(__m512i x, __m512i b) {
  return _mm512_min_epu64(x, _mm512_sub_epi64(x, b));
}

/* c[i..n) of hetee_vec_dot (n - i < 8 coefficients left by the vector
 * loop): through the reference, 64 rows at a time, accumulated. */
static inline void hetee_vec_dot_tail(const hetee_modulus *m, const uint64_t *const *a, const uint64_t *const *b,
                                      size_t k, uint64_t *c, size_t i, size_t n) {
  if (i >= n) return;
  const uint64_t *at[64], *bt[64];
  uint64_t tmp[8];
  for (size_t j0 = 0; j0 < k; j0 += 64) {
    size_t cnt = k - j0 < 64 ? k - j0 : 64;
    for (size_t j = 0; j < cnt; j++) {
      at[j] = a[j0 + j] + i;
      bt[j] = b[j0 + j] + i;
    }
    hetee_vec_dot_ref(m, at, bt, cnt, tmp, n - i);
    if (j0 == 0) memcpy(c + i, tmp, (n - i) * 8);
    else hetee_vec_add_ref(m, c + i, tmp, c + i, n - i);
  }
}

/* The same for hetee_vec_dot2 (with perm, a's rows are indexed by
 * perm[i..n) instead of being offset). */
static inline void hetee_vec_dot2_tail(const hetee_modulus *m, const uint64_t *const *a, const uint32_t *perm,
                                       const uint64_t *const *b0, const uint64_t *const *b1, size_t k, uint64_t *c0,
                                       uint64_t *c1, size_t i, size_t n) {
  if (i >= n) return;
  const uint64_t *at[64], *bt0[64], *bt1[64];
  uint64_t t0[8], t1[8];
  for (size_t j0 = 0; j0 < k; j0 += 64) {
    size_t cnt = k - j0 < 64 ? k - j0 : 64;
    for (size_t j = 0; j < cnt; j++) {
      at[j] = perm ? a[j0 + j] : a[j0 + j] + i;
      bt0[j] = b0[j0 + j] + i;
      bt1[j] = b1[j0 + j] + i;
    }
    hetee_vec_dot2_ref(m, at, perm ? perm + i : NULL, bt0, bt1, cnt, t0, t1, n - i);
    if (j0 == 0) {
      memcpy(c0 + i, t0, (n - i) * 8);
      memcpy(c1 + i, t1, (n - i) * 8);
    } else {
      hetee_vec_add_ref(m, c0 + i, t0, c0 + i, n - i);
      hetee_vec_add_ref(m, c1 + i, t1, c1 + i, n - i);
    }
  }
}

#endif

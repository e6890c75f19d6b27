/*
 * avx512_arith.h — 64-bit modular helpers on AVX-512F/DQ lanes shared by the
 * files compiled with AVX-512 flags (ntt_avx512.c, vec_avx512.c). Include
 * only from such files.
 */
#ifndef HETEE_AVX512_ARITH_H
#define HETEE_AVX512_ARITH_H

#include <immintrin.h>

/* floor(a * b / 2^64) per lane, exact, from four vpmuludq (AVX-512 has no
 * 64-bit high multiply without IFMA) */
static inline __m512i hetee_mm512_mulhi64(__m512i a, __m512i b) {
  const __m512i lo32 = _mm512_set1_epi64(0xffffffffll);
  __m512i ah = _mm512_srli_epi64(a, 32), bh = _mm512_srli_epi64(b, 32);
  __m512i ll = _mm512_mul_epu32(a, b), lh = _mm512_mul_epu32(a, bh);
  __m512i hl = _mm512_mul_epu32(ah, b), hh = _mm512_mul_epu32(ah, bh);
  __m512i mid = _mm512_add_epi64(_mm512_srli_epi64(ll, 32), _mm512_and_si512(lh, lo32));
  mid = _mm512_add_epi64(mid, _mm512_and_si512(hl, lo32));
  __m512i hi = _mm512_add_epi64(hh, _mm512_srli_epi64(lh, 32));
  hi = _mm512_add_epi64(hi, _mm512_srli_epi64(hl, 32));
  return _mm512_add_epi64(hi, _mm512_srli_epi64(mid, 32));
}

/* x - b if x >= b else x, for x < 2b (unsigned min: x - b wraps when x < b) */
static inline __m512i hetee_mm512_csub(__m512i x, __m512i b) {
  return _mm512_min_epu64(x, _mm512_sub_epi64(x, b));
}

#endif

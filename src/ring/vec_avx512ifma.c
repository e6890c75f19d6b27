/*
 * vec_avx512ifma.c — pointwise mul and muladd modulo q < 2^50 on the
 * AVX-512 IFMA52 unit (only file besides ntt_avx512ifma.c compiled with
 * -mavx512ifma). The 100-bit product a*b (+ c) is formed as two 52-bit
 * limbs (vpmadd52luq / vpmadd52huq) and reduced with Barrett's algorithm as
 * in Menezes et al., Handbook of Applied Cryptography, Alg. 14.42 (base 2,
 * k = bitlen(q) <= 50): q1 = floor(x / 2^(k-1)) < 2^51,
 * mu = floor(2^(2k)/q) < 2^51, q3 = floor(q1*mu / 2^(k+1)), r = x - q3*q in
 * [0, 3q) < 2^52 computed mod 2^52, then two conditional subtractions.
 * mul_scalar uses Shoup's method on 52-bit limbs instead (as the IFMA NTT).
 * Called by vec_avx512.c when q < 2^50 and the CPU has IFMA52.
 */
#include "ring_internal.h"

#include "avx512_arith.h"

#define MASK52 ((1ull << 52) - 1)

typedef struct {
  __m512i q, negq, mu, mask;
  int k;
} barrett52;

static inline barrett52 setup(const hetee_modulus *m) {
  barrett52 b;
  int k = m->bits, s = 128 - 2 * k;
  unsigned __int128 big = ((unsigned __int128)m->barrett_hi << 64) | m->barrett_lo;
  b.q = _mm512_set1_epi64((long long)m->q);
  b.negq = _mm512_set1_epi64((long long)((1ull << 52) - m->q));
  b.mu = _mm512_set1_epi64((long long)(uint64_t)(big >> s)); /* floor(2^(2k)/q) */
  b.mask = _mm512_set1_epi64((long long)MASK52);
  b.k = k;
  return b;
}

/* x = hi * 2^52 + lo (lo < 2^52), x < 2^(2k): x mod q */
static inline __m512i reduce(__m512i hi, __m512i lo, const barrett52 *b) {
  const __m512i zero = _mm512_setzero_si512();
  const int k = b->k;
  __m512i q1 = _mm512_or_si512(_mm512_slli_epi64(hi, (unsigned)(53 - k)), _mm512_srli_epi64(lo, (unsigned)(k - 1)));
  __m512i h2 = _mm512_madd52hi_epu64(zero, q1, b->mu), l2 = _mm512_madd52lo_epu64(zero, q1, b->mu);
  __m512i q3 = _mm512_or_si512(_mm512_slli_epi64(h2, (unsigned)(51 - k)), _mm512_srli_epi64(l2, (unsigned)(k + 1)));
  __m512i r = _mm512_and_si512(_mm512_madd52lo_epu64(lo, q3, b->negq), b->mask);
  return hetee_mm512_csub(hetee_mm512_csub(r, b->q), b->q);
}

void hetee_vec_mul_avx512ifma(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  const barrett52 br = setup(m);
  const __m512i zero = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i x = _mm512_loadu_si512(a + i), y = _mm512_loadu_si512(b + i);
    __m512i lo = _mm512_madd52lo_epu64(zero, x, y), hi = _mm512_madd52hi_epu64(zero, x, y);
    _mm512_storeu_si512(c + i, reduce(hi, lo, &br));
  }
  hetee_vec_mul_ref(m, a + i, b + i, c + i, n - i);
}

void hetee_vec_muladd_avx512ifma(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  const barrett52 br = setup(m);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i x = _mm512_loadu_si512(a + i), y = _mm512_loadu_si512(b + i), z = _mm512_loadu_si512(c + i);
    __m512i lo = _mm512_madd52lo_epu64(z, x, y); /* c + lo52(a*b) < 2^53 */
    __m512i hi = _mm512_madd52hi_epu64(_mm512_srli_epi64(lo, 52), x, y);
    _mm512_storeu_si512(c + i, reduce(hi, _mm512_and_si512(lo, br.mask), &br));
  }
  hetee_vec_muladd_ref(m, a + i, b + i, c + i, n - i);
}

/* c = a * s with the 52-bit Shoup constant s' = floor(s * 2^52 / q)
 * (a < q < 2^50 fits the multiplier): r = lo52(a*s - hi52(a*s')*q) in [0, 2q) */
void hetee_vec_mul_scalar_avx512ifma(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n) {
  const uint64_t sp52 = (uint64_t)(((unsigned __int128)s << 52) / m->q);
  const __m512i zero = _mm512_setzero_si512(), q = _mm512_set1_epi64((long long)m->q);
  const __m512i negq = _mm512_set1_epi64((long long)((1ull << 52) - m->q)), mask = _mm512_set1_epi64((long long)MASK52);
  const __m512i w = _mm512_set1_epi64((long long)s), wp = _mm512_set1_epi64((long long)sp52);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i x = _mm512_loadu_si512(a + i);
    __m512i qh = _mm512_madd52hi_epu64(zero, x, wp);
    __m512i r = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(zero, x, w), qh, negq);
    _mm512_storeu_si512(c + i, hetee_mm512_csub(_mm512_and_si512(r, mask), q));
  }
  hetee_vec_mul_scalar_ref(m, a + i, s, c + i, n - i);
}

/*
 * ntt_avx512ifma.c — AVX-512 IFMA52 NTT kernels for primes q < 2^50 (the
 * only file compiled with -mavx512ifma). Shoup multiplication on 52-bit
 * limbs: with w' = floor(w * 2^52 / q) and y < 2^52,
 *   Q = hi52(y * w')           (vpmadd52huq)
 *   r = lo52(y * w - Q * q)    (two vpmadd52luq, Q*(2^52 - q) added mod 2^52)
 * gives r = y*w mod q + {0, q}, i.e. r in [0, 2q). Lazy inputs up to 4q
 * must stay below 2^52, hence q < 2^50. Kernel structure: ntt_avx512_tmpl.h.
 */
#include "ring_internal.h"

#include <immintrin.h>

static inline __m512i ifma_mul_lazy(__m512i y, __m512i w, __m512i wp, __m512i q) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i mask52 = _mm512_set1_epi64((long long)((1ull << 52) - 1));
  __m512i negq = _mm512_sub_epi64(_mm512_set1_epi64((long long)(1ull << 52)), q);
  __m512i qh = _mm512_madd52hi_epu64(zero, y, wp);
  __m512i r = _mm512_madd52lo_epu64(zero, y, w);
  r = _mm512_madd52lo_epu64(r, qh, negq);
  return _mm512_and_si512(r, mask52);
}

#define TMPL(name) ifma_##name
#define SHOUP(t) t##_shoup52
#define mul_lazy ifma_mul_lazy
#include "ntt_avx512_tmpl.h"

void hetee_ntt_forward_avx512ifma(const hetee_ntt_tables *t, uint64_t *a) { ifma_forward(t, a); }
void hetee_ntt_inverse_avx512ifma(const hetee_ntt_tables *t, uint64_t *a) { ifma_inverse(t, a); }
void hetee_ntt_inverse_add_avx512ifma(const hetee_ntt_tables *t, const uint64_t *in, uint64_t *out, uint64_t s) {
  ifma_inverse_add(t, in, out, s);
}

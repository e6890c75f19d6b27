/*
 * vec_avx2.c — AVX2 pointwise add and sub modulo q (4 lanes), branch-free:
 * the conditional correction is chosen by the sign bit of a - b or
 * a + b - q, valid because all values are < 2q < 2^62.
 */
#include "ring_internal.h"

#include <immintrin.h>

void hetee_vec_add_avx2(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  const __m256i q = _mm256_set1_epi64x((long long)m->q), zero = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m256i t = _mm256_sub_epi64(_mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(a + i)),
                                                  _mm256_loadu_si256((const __m256i *)(b + i))),
                                 q);
    t = _mm256_add_epi64(t, _mm256_and_si256(q, _mm256_cmpgt_epi64(zero, t)));
    _mm256_storeu_si256((__m256i *)(c + i), t);
  }
  hetee_vec_add_ref(m, a + i, b + i, c + i, n - i);
}

void hetee_vec_sub_avx2(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  const __m256i q = _mm256_set1_epi64x((long long)m->q), zero = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m256i t = _mm256_sub_epi64(_mm256_loadu_si256((const __m256i *)(a + i)),
                                 _mm256_loadu_si256((const __m256i *)(b + i)));
    t = _mm256_add_epi64(t, _mm256_and_si256(q, _mm256_cmpgt_epi64(zero, t)));
    _mm256_storeu_si256((__m256i *)(c + i), t);
  }
  hetee_vec_sub_ref(m, a + i, b + i, c + i, n - i);
}

/*
 * galois_avx512.c — AVX-512 variant of hetee_vec_permute (the Galois
 * automorphism in NTT form is a pure index permutation, see galois.c):
 * eight 32-bit indices feed one vpgatherdq per 8 outputs. The indices are
 * the public permutation; the gathered values are only moved, so the
 * access pattern does not depend on them. Bit-identical to the scalar loop
 * (tests/ring/test_galois.c compares both).
 */
#include <immintrin.h>

#include "ring_internal.h"

void hetee_vec_permute_avx512(const uint32_t *perm, const uint64_t *in, uint64_t *out, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i i0 = _mm256_loadu_si256((const __m256i *)(perm + i));
    __m256i i1 = _mm256_loadu_si256((const __m256i *)(perm + i + 8));
    __m512i v0 = _mm512_i32gather_epi64(i0, (const void *)in, 8);
    __m512i v1 = _mm512_i32gather_epi64(i1, (const void *)in, 8);
    _mm512_storeu_si512((void *)(out + i), v0);
    _mm512_storeu_si512((void *)(out + i + 8), v1);
  }
  for (; i < n; i++) out[i] = in[perm[i]];
}

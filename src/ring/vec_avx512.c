/*
 * vec_avx512.c — AVX-512F/DQ pointwise kernels modulo q (8 lanes),
 * branch-free:
 *   add/sub  unsigned-min conditional correction;
 *   mul      x = a*b as 128 bits (vpmullq + exact high product), then
 *            Barrett's reduction as in Menezes et al., Handbook of Applied
 *            Cryptography, Alg. 14.42, base 2 with k = bitlen(q):
 *              q1 = floor(x / 2^(k-1)), mu = floor(2^(2k) / q),
 *              q3 = floor(q1 * mu / 2^(k+1)), r = x - q3*q in [0, 3q),
 *            valid for x < 2^(2k), then two conditional subtractions;
 *   muladd   the same on x = a*b + c < q^2 + q < 2^(2k).
 * mu is derived from the modulus' floor(2^128/q) by a shift
 * (floor(floor(2^128/q) / 2^(128-2k)) = floor(2^(2k)/q)).
 * mul, muladd and mul_scalar (Shoup) go to vec_avx512ifma.c for q < 2^50 on
 * CPUs with IFMA52.
 */
#include "ring_internal.h"

#include "avx512_arith.h"

void hetee_vec_add_avx512(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  const __m512i q = _mm512_set1_epi64((long long)m->q);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i s = _mm512_add_epi64(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
    _mm512_storeu_si512(c + i, hetee_mm512_csub(s, q));
  }
  hetee_vec_add_ref(m, a + i, b + i, c + i, n - i);
}

void hetee_vec_sub_avx512(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  const __m512i q = _mm512_set1_epi64((long long)m->q);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i d = _mm512_sub_epi64(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
    /* a >= b: d < q <= d + q; a < b: d wrapped, d + q = a - b + q < q */
    _mm512_storeu_si512(c + i, _mm512_min_epu64(d, _mm512_add_epi64(d, q)));
  }
  hetee_vec_sub_ref(m, a + i, b + i, c + i, n - i);
}

typedef struct {
  __m512i q, mu;
  int k;
} barrett512;

static inline barrett512 barrett_setup(const hetee_modulus *m) {
  barrett512 b;
  int k = m->bits, s = 128 - 2 * k; /* k <= 61: s >= 6 */
  unsigned __int128 big = ((unsigned __int128)m->barrett_hi << 64) | m->barrett_lo;
  b.q = _mm512_set1_epi64((long long)m->q);
  b.mu = _mm512_set1_epi64((long long)(uint64_t)(big >> s));
  b.k = k;
  return b;
}

/* (xhi, xlo) < 2^(2k) reduced to [0, q) */
static inline __m512i barrett_reduce(__m512i xhi, __m512i xlo, const barrett512 *b) {
  const int k = b->k;
  /* q1 = x >> (k-1): 1 <= k-1 <= 60 */
  __m512i q1 = _mm512_or_si512(_mm512_slli_epi64(xhi, (unsigned)(65 - k)), _mm512_srli_epi64(xlo, (unsigned)(k - 1)));
  /* q3 = (q1 * mu) >> (k+1) with q1, mu < 2^(k+1) */
  __m512i ph = hetee_mm512_mulhi64(q1, b->mu), pl = _mm512_mullo_epi64(q1, b->mu);
  __m512i q3 = _mm512_or_si512(_mm512_slli_epi64(ph, (unsigned)(63 - k)), _mm512_srli_epi64(pl, (unsigned)(k + 1)));
  __m512i r = _mm512_sub_epi64(xlo, _mm512_mullo_epi64(q3, b->q));
  return hetee_mm512_csub(hetee_mm512_csub(r, b->q), b->q);
}

void hetee_vec_mul_avx512(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  if (m->bits <= HETEE_IFMA_MAX_BITS && m->bits >= 2 && hetee_ring_cpu_has_ifma()) {
    hetee_vec_mul_avx512ifma(m, a, b, c, n);
    return;
  }
  const barrett512 br = barrett_setup(m);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i x = _mm512_loadu_si512(a + i), y = _mm512_loadu_si512(b + i);
    __m512i hi = hetee_mm512_mulhi64(x, y), lo = _mm512_mullo_epi64(x, y);
    _mm512_storeu_si512(c + i, barrett_reduce(hi, lo, &br));
  }
  hetee_vec_mul_ref(m, a + i, b + i, c + i, n - i);
}

void hetee_vec_muladd_avx512(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  if (m->bits <= HETEE_IFMA_MAX_BITS && m->bits >= 2 && hetee_ring_cpu_has_ifma()) {
    hetee_vec_muladd_avx512ifma(m, a, b, c, n);
    return;
  }
  const barrett512 br = barrett_setup(m);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i x = _mm512_loadu_si512(a + i), y = _mm512_loadu_si512(b + i), z = _mm512_loadu_si512(c + i);
    __m512i hi = hetee_mm512_mulhi64(x, y), lo = _mm512_mullo_epi64(x, y);
    lo = _mm512_add_epi64(lo, z);
    /* carry into the high word when the low addition wrapped */
    __mmask8 carry = _mm512_cmplt_epu64_mask(lo, z);
    hi = _mm512_mask_add_epi64(hi, carry, hi, _mm512_set1_epi64(1));
    _mm512_storeu_si512(c + i, barrett_reduce(hi, lo, &br));
  }
  hetee_vec_muladd_ref(m, a + i, b + i, c + i, n - i);
}

/* c = a * s (Shoup, s' = floor(s * 2^64 / q)): exact high product, then one
 * conditional subtraction from [0, 2q) */
void hetee_vec_mul_scalar_avx512(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n) {
  if (m->bits <= HETEE_IFMA_MAX_BITS && hetee_ring_cpu_has_ifma()) {
    hetee_vec_mul_scalar_avx512ifma(m, a, s, c, n);
    return;
  }
  const __m512i q = _mm512_set1_epi64((long long)m->q), w = _mm512_set1_epi64((long long)s),
                wp = _mm512_set1_epi64((long long)hetee_shoup_prep(s, m->q));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i x = _mm512_loadu_si512(a + i);
    __m512i r = _mm512_sub_epi64(_mm512_mullo_epi64(x, w), _mm512_mullo_epi64(hetee_mm512_mulhi64(x, wp), q));
    _mm512_storeu_si512(c + i, hetee_mm512_csub(r, q));
  }
  hetee_vec_mul_scalar_ref(m, a + i, s, c + i, n - i);
}

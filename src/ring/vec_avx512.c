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
 * The fused CKKS kernels (second half of the file): reduce / reduce_add_scalar
 * (quotient estimated in double precision), sub_mul_scalar_add (Shoup),
 * dot / dot2 (key-switching inner products: 32-bit partial products summed by
 * column, one wide Barrett reduction per 3 products) and tensor2 (ct x ct,
 * Karatsuba on exact 128-bit products); the wide Barrett reduction is HAC
 * Alg. 14.42 with shifts chosen so the quotient is one high product. dot,
 * dot2, tensor2 and sub_mul_scalar_add go to vec_avx512ifma.c for q < 2^50.
 */
#include "ring_internal.h"

#include "avx512_arith.h"
#include "ring_shoup.h"

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

/* ---- add_scalar, reduce, dot, tensor2 (any q < 2^61) ---- */

void hetee_vec_add_scalar_avx512(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n) {
  const __m512i q = _mm512_set1_epi64((long long)m->q), sv = _mm512_set1_epi64((long long)s);
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm512_storeu_si512(c + i, hetee_mm512_csub(_mm512_add_epi64(_mm512_loadu_si512(a + i), sv), q));
  hetee_vec_add_scalar_ref(m, a + i, s, c + i, n - i);
}

/* Any 64-bit x mod q. For q >= 2^15 (k = bitlen(q) >= 16) the quotient is
 * estimated in double precision: double(x) * double(1/q) carries three
 * roundings (relative error < 3.01 * 2^-53) of x/q < 2^(65-k), so it is
 * within 2^(65-k) * 3.01 * 2^-53 < 0.19 of x/q and its truncation Q' is
 * floor(x/q) - 1, + 0 or + 1: r = x - Q' q (mod 2^64, exact since
 * |r| < 2^63) lies in [-q, 2q); add q when negative (sign mask), subtract
 * q when >= q. Smaller q: the exact Barrett high product,
 * x - floor(x floor(2^64/q) / 2^64) q in [0, 2q). */
static inline __m512i reduce64_dbl(__m512i x, __m512i q, __m512d qinv) {
  __m512i qe = _mm512_cvttpd_epu64(_mm512_mul_pd(_mm512_cvtepu64_pd(x), qinv));
  __m512i r = _mm512_sub_epi64(x, _mm512_mullo_epi64(qe, q));
  __mmask8 neg = _mm512_cmplt_epi64_mask(r, _mm512_setzero_si512());
  r = _mm512_mask_add_epi64(r, neg, r, q);
  return hetee_mm512_csub(r, q);
}

static inline __m512i reduce64_barrett(__m512i x, __m512i q, __m512i r64) {
  __m512i r = _mm512_sub_epi64(x, _mm512_mullo_epi64(hetee_mm512_mulhi64(x, r64), q));
  return hetee_mm512_csub(r, q);
}

#define RED_DBL_MIN_BITS 16

void hetee_vec_reduce_avx512(const hetee_modulus *m, const uint64_t *a, uint64_t *c, size_t n) {
  const __m512i q = _mm512_set1_epi64((long long)m->q), r64 = _mm512_set1_epi64((long long)m->barrett_hi);
  const __m512d qinv = _mm512_set1_pd(1.0 / (double)m->q);
  size_t i = 0;
  if (m->bits >= RED_DBL_MIN_BITS)
    for (; i + 8 <= n; i += 8) _mm512_storeu_si512(c + i, reduce64_dbl(_mm512_loadu_si512(a + i), q, qinv));
  else
    for (; i + 8 <= n; i += 8) _mm512_storeu_si512(c + i, reduce64_barrett(_mm512_loadu_si512(a + i), q, r64));
  hetee_vec_reduce_ref(m, a + i, c + i, n - i);
}

/* (hi, lo) += (0, z) */
static inline void add_wide(__m512i *hi, __m512i *lo, __m512i zhi, __m512i zlo) {
  __m512i l = _mm512_add_epi64(*lo, zlo);
  __mmask8 carry = _mm512_cmplt_epu64_mask(l, zlo);
  *hi = _mm512_mask_add_epi64(_mm512_add_epi64(*hi, zhi), carry, _mm512_add_epi64(*hi, zhi), _mm512_set1_epi64(1));
  *lo = l;
}

/* Barrett (HAC Alg. 14.42, base 2) for x < 2^(k+63), k = bitlen(q) <= 61,
 * with the shifts chosen so the quotient is a plain high product:
 * q1 = floor(x / 2^(k-1)) < 2^64, mu = floor(2^(k+63) / q) < 2^64,
 * q3 = hi64(q1 mu) - e (e in {0, 1, 2}: the approximate high product).
 * The two fractions dropped by the exact high product are each < 1
 * (x < 2^(k+63), q > 2^(k-1)), so q3 >= floor(x/q) - 4 and
 * r = x - q3 q lies in [0, 5q) (< 2^64), brought to [0, q) by subtracting
 * 4q, 2q and q conditionally. */
typedef struct {
  __m512i q, q2, q4, mu, muh;
  unsigned k;
} wbarrett;

static inline wbarrett wbarrett_setup(const hetee_modulus *m) {
  wbarrett b;
  unsigned k = (unsigned)m->bits;
  unsigned __int128 big = ((unsigned __int128)m->barrett_hi << 64) | m->barrett_lo;
  uint64_t mu = (uint64_t)(big >> (65 - k));
  b.q = _mm512_set1_epi64((long long)m->q);
  b.q2 = _mm512_set1_epi64((long long)(2 * m->q));
  b.q4 = _mm512_set1_epi64((long long)(4 * m->q));
  b.mu = _mm512_set1_epi64((long long)mu);
  b.muh = _mm512_set1_epi64((long long)(mu >> 32));
  b.k = k;
  return b;
}

static inline __m512i wbarrett_reduce(__m512i xhi, __m512i xlo, const wbarrett *b) {
  __m512i q1 = _mm512_or_si512(_mm512_slli_epi64(xhi, 65 - b->k), _mm512_srli_epi64(xlo, b->k - 1));
  /* hi64(q1 mu) - e: three vpmuludq, low x low product and carries dropped */
  __m512i qh = _mm512_srli_epi64(q1, 32);
  __m512i lh = _mm512_mul_epu32(q1, b->muh), hl = _mm512_mul_epu32(qh, b->mu), hh = _mm512_mul_epu32(qh, b->muh);
  __m512i q3 = _mm512_add_epi64(hh, _mm512_add_epi64(_mm512_srli_epi64(lh, 32), _mm512_srli_epi64(hl, 32)));
  __m512i r = _mm512_sub_epi64(xlo, _mm512_mullo_epi64(q3, b->q));
  r = hetee_mm512_csub(r, b->q4);
  r = hetee_mm512_csub(r, b->q2);
  return hetee_mm512_csub(r, b->q);
}

/* one product x y (x, y < 2^61; xh = x >> 32) into the column sums A, B, D
 * described at hetee_vec_dot_avx512 */
static inline void dot_acc(__m512i x, __m512i xh, __m512i y, __m512i *A, __m512i *B, __m512i *D) {
  const __m512i lo32 = _mm512_set1_epi64(0xffffffffll);
  __m512i yh = _mm512_srli_epi64(y, 32);
  __m512i ll = _mm512_mul_epu32(x, y), lh = _mm512_mul_epu32(x, yh);
  __m512i hl = _mm512_mul_epu32(xh, y), hh = _mm512_mul_epu32(xh, yh);
  *A = _mm512_add_epi64(*A, hh);
  *B = _mm512_add_epi64(*B, _mm512_add_epi64(_mm512_add_epi64(lh, hl), _mm512_srli_epi64(ll, 32)));
  *D = _mm512_add_epi64(*D, _mm512_and_si512(ll, lo32));
}

static inline __m512i dot_finish(__m512i A, __m512i B, __m512i D, const wbarrett *br) {
  __m512i lo = _mm512_add_epi64(_mm512_slli_epi64(B, 32), D);
  __mmask8 carry = _mm512_cmplt_epu64_mask(lo, D);
  __m512i hi = _mm512_add_epi64(A, _mm512_srli_epi64(B, 32));
  hi = _mm512_mask_add_epi64(hi, carry, hi, _mm512_set1_epi64(1));
  return wbarrett_reduce(hi, lo, br);
}

/* Chunks of up to 3 products plus the running value r < q (x < 3 q^2 + q
 * < 2^(k+63)). Each product a b (a, b < 2^61) enters as its four 32-bit
 * partial products summed by column: A = sum hi*hi (< 2^58 each),
 * B = sum lo*hi + hi*lo + (lo*lo >> 32) (< 2^62 + 2^32 each, so three fit),
 * D = r + sum (lo*lo mod 2^32); x = A 2^64 + B 2^32 + D, carried once. */
void hetee_vec_dot_avx512(const hetee_modulus *m, const uint64_t *const *a, const uint64_t *const *b, size_t k,
                          uint64_t *c, size_t n) {
  if (k == 0) { /* empty sum */
    for (size_t i = 0; i < n; i++) c[i] = 0;
    return;
  }
  if (m->bits <= HETEE_IFMA_MAX_BITS && m->bits >= 2 && hetee_ring_cpu_has_ifma()) {
    hetee_vec_dot_avx512ifma(m, a, b, k, c, n);
    return;
  }
  const wbarrett br = wbarrett_setup(m);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i r = _mm512_setzero_si512();
    for (size_t j0 = 0; j0 < k; j0 += 3) {
      __m512i A = _mm512_setzero_si512(), B = A, D = r;
      size_t j1 = j0 + 3 < k ? j0 + 3 : k;
      for (size_t j = j0; j < j1; j++) {
        __m512i x = _mm512_loadu_si512(a[j] + i);
        dot_acc(x, _mm512_srli_epi64(x, 32), _mm512_loadu_si512(b[j] + i), &A, &B, &D);
      }
      r = dot_finish(A, B, D, &br);
    }
    _mm512_storeu_si512(c + i, r);
  }
  hetee_vec_dot_tail(m, a, b, k, c, i, n);
}

/* Karatsuba per coefficient: c1 = (a0 + a1)(b0 + b1) - a0 b0 - a1 b1 as
 * exact 128-bit integers (= a0 b1 + a1 b0 >= 0, < 2 q^2), so three wide
 * products instead of four; every sum (+ c < q when accumulating) is
 * < 2^(2k+1) < 2^(k+63). */
static inline void tensor2_body(const hetee_modulus *m, const uint64_t *a0, const uint64_t *a1, const uint64_t *b0,
                                const uint64_t *b1, uint64_t *c0, uint64_t *c1, uint64_t *c2, size_t n,
                                const int acc) {
  const wbarrett br = wbarrett_setup(m);
  const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi64(1);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i x0 = _mm512_loadu_si512(a0 + i), x1 = _mm512_loadu_si512(a1 + i);
    __m512i y0 = _mm512_loadu_si512(b0 + i), y1 = _mm512_loadu_si512(b1 + i);
    __m512i h0, l0, h1, l1, h2, l2;
    hetee_mm512_mul_wide(x0, y0, &h0, &l0);
    hetee_mm512_mul_wide(x1, y1, &h2, &l2);
    hetee_mm512_mul_wide(_mm512_add_epi64(x0, x1), _mm512_add_epi64(y0, y1), &h1, &l1);
    /* (h1, l1) -= (h0, l0) + (h2, l2) */
    __mmask8 b1m = _mm512_cmplt_epu64_mask(l1, l0);
    l1 = _mm512_sub_epi64(l1, l0);
    h1 = _mm512_mask_sub_epi64(_mm512_sub_epi64(h1, h0), b1m, _mm512_sub_epi64(h1, h0), one);
    __mmask8 b2m = _mm512_cmplt_epu64_mask(l1, l2);
    l1 = _mm512_sub_epi64(l1, l2);
    h1 = _mm512_mask_sub_epi64(_mm512_sub_epi64(h1, h2), b2m, _mm512_sub_epi64(h1, h2), one);
    if (acc) {
      add_wide(&h0, &l0, zero, _mm512_loadu_si512(c0 + i));
      add_wide(&h1, &l1, zero, _mm512_loadu_si512(c1 + i));
      add_wide(&h2, &l2, zero, _mm512_loadu_si512(c2 + i));
    }
    _mm512_storeu_si512(c0 + i, wbarrett_reduce(h0, l0, &br));
    _mm512_storeu_si512(c1 + i, wbarrett_reduce(h1, l1, &br));
    _mm512_storeu_si512(c2 + i, wbarrett_reduce(h2, l2, &br));
  }
  hetee_vec_tensor2_ref(m, a0 + i, a1 + i, b0 + i, b1 + i, c0 + i, c1 + i, c2 + i, n - i, acc);
}

void hetee_vec_tensor2_avx512(const hetee_modulus *m, const uint64_t *a0, const uint64_t *a1, const uint64_t *b0,
                              const uint64_t *b1, uint64_t *c0, uint64_t *c1, uint64_t *c2, size_t n, int acc) {
  if (m->bits <= HETEE_IFMA_MAX_BITS && m->bits >= 2 && hetee_ring_cpu_has_ifma()) {
    hetee_vec_tensor2_avx512ifma(m, a0, a1, b0, b1, c0, c1, c2, n, acc);
    return;
  }
  /* two instances: the accumulating loads and carries only where needed */
  if (acc) tensor2_body(m, a0, a1, b0, b1, c0, c1, c2, n, 1);
  else tensor2_body(m, a0, a1, b0, b1, c0, c1, c2, n, 0);
}

void hetee_vec_reduce_add_scalar_avx512(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n) {
  const __m512i q = _mm512_set1_epi64((long long)m->q), r64 = _mm512_set1_epi64((long long)m->barrett_hi);
  const __m512i sv = _mm512_set1_epi64((long long)s);
  const __m512d qinv = _mm512_set1_pd(1.0 / (double)m->q);
  size_t i = 0;
  if (m->bits >= RED_DBL_MIN_BITS)
    for (; i + 8 <= n; i += 8) {
      __m512i r = reduce64_dbl(_mm512_loadu_si512(a + i), q, qinv);
      _mm512_storeu_si512(c + i, hetee_mm512_csub(_mm512_add_epi64(r, sv), q));
    }
  else
    for (; i + 8 <= n; i += 8) {
      __m512i r = reduce64_barrett(_mm512_loadu_si512(a + i), q, r64);
      _mm512_storeu_si512(c + i, hetee_mm512_csub(_mm512_add_epi64(r, sv), q));
    }
  hetee_vec_reduce_add_scalar_ref(m, a + i, s, c + i, n - i);
}

/* d = a - b in [0, q) (unsigned-min correction), d * s by Shoup in [0, 2q),
 * one correction, + base, one correction */
void hetee_vec_sub_mul_scalar_add_avx512(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t s,
                                         const uint64_t *base, uint64_t *c, size_t n) {
  if (m->bits <= HETEE_IFMA_MAX_BITS && hetee_ring_cpu_has_ifma()) {
    hetee_vec_sub_mul_scalar_add_avx512ifma(m, a, b, s, base, c, n);
    return;
  }
  const __m512i q = _mm512_set1_epi64((long long)m->q), w = _mm512_set1_epi64((long long)s),
                wp = _mm512_set1_epi64((long long)hetee_shoup_prep(s, m->q));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i d = _mm512_sub_epi64(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
    d = _mm512_min_epu64(d, _mm512_add_epi64(d, q));
    __m512i r = _mm512_sub_epi64(_mm512_mullo_epi64(d, w), _mm512_mullo_epi64(hetee_mm512_mulhi64(d, wp), q));
    r = hetee_mm512_csub(r, q);
    if (base) r = hetee_mm512_csub(_mm512_add_epi64(r, _mm512_loadu_si512(base + i)), q);
    _mm512_storeu_si512(c + i, r);
  }
  hetee_vec_sub_mul_scalar_add_ref(m, a + i, b + i, s, base ? base + i : NULL, c + i, n - i);
}

/* dot2: the same sums as hetee_vec_dot_avx512 for two right-hand sets, the
 * left rows loaded (and split) once; with perm, gathered (vpgatherdq) */
void hetee_vec_dot2_avx512(const hetee_modulus *m, const uint64_t *const *a, const uint32_t *perm,
                           const uint64_t *const *b0, const uint64_t *const *b1, size_t k, uint64_t *c0, uint64_t *c1,
                           size_t n) {
  if (k == 0) { /* empty sums */
    for (size_t i = 0; i < n; i++) c0[i] = c1[i] = 0;
    return;
  }
  if (m->bits <= HETEE_IFMA_MAX_BITS && m->bits >= 2 && hetee_ring_cpu_has_ifma()) {
    hetee_vec_dot2_avx512ifma(m, a, perm, b0, b1, k, c0, c1, n);
    return;
  }
  const wbarrett br = wbarrett_setup(m);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i r0 = _mm512_setzero_si512(), r1 = r0;
    for (size_t j0 = 0; j0 < k; j0 += 3) {
      __m512i A0 = _mm512_setzero_si512(), B0 = A0, D0 = r0, A1 = A0, B1 = A0, D1 = r1;
      size_t j1 = j0 + 3 < k ? j0 + 3 : k;
      for (size_t j = j0; j < j1; j++) {
        __m512i x = perm ? _mm512_i32gather_epi64(_mm256_loadu_si256((const __m256i *)(perm + i)), a[j], 8)
                         : _mm512_loadu_si512(a[j] + i);
        __m512i xh = _mm512_srli_epi64(x, 32);
        dot_acc(x, xh, _mm512_loadu_si512(b0[j] + i), &A0, &B0, &D0);
        dot_acc(x, xh, _mm512_loadu_si512(b1[j] + i), &A1, &B1, &D1);
      }
      r0 = dot_finish(A0, B0, D0, &br);
      r1 = dot_finish(A1, B1, D1, &br);
    }
    _mm512_storeu_si512(c0 + i, r0);
    _mm512_storeu_si512(c1 + i, r1);
  }
  hetee_vec_dot2_tail(m, a, perm, b0, b1, k, c0, c1, i, n);
}

/* y * w mod q by Shoup with a per-lane w' = floor(w 2^64 / q) (any q < 2^61):
 * the quotient hi64(y w') from three vpmuludq, up to 2 below the exact one
 * (the low x low product and the middle carries dropped), so
 * y w - Q' q lies in [0, 4q); two conditional subtractions. */
static inline __m512i shoup_mul_full(__m512i y, __m512i w, __m512i wp, __m512i q, __m512i q2) {
  __m512i yh = _mm512_srli_epi64(y, 32), wh = _mm512_srli_epi64(wp, 32);
  __m512i lh = _mm512_mul_epu32(y, wh), hl = _mm512_mul_epu32(yh, wp), hh = _mm512_mul_epu32(yh, wh);
  __m512i qh = _mm512_add_epi64(hh, _mm512_add_epi64(_mm512_srli_epi64(lh, 32), _mm512_srli_epi64(hl, 32)));
  __m512i r = _mm512_sub_epi64(_mm512_mullo_epi64(y, w), _mm512_mullo_epi64(qh, q));
  return hetee_mm512_csub(hetee_mm512_csub(r, q2), q);
}

void hetee_vec_shoup_dot_avx512(const hetee_modulus *m, const uint64_t *add, const uint64_t *a0, const uint64_t *w0,
                                const uint64_t *wp0, const uint64_t *a1, const uint64_t *w1, const uint64_t *wp1,
                                uint64_t *c, size_t n) {
  const __m512i q = _mm512_set1_epi64((long long)m->q), q2 = _mm512_set1_epi64((long long)(2 * m->q));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i x = shoup_mul_full(_mm512_loadu_si512(a0 + i), _mm512_loadu_si512(w0 + i), _mm512_loadu_si512(wp0 + i), q, q2);
    if (a1) /* public: the shape of the call */
      x = hetee_mm512_csub(_mm512_add_epi64(x, shoup_mul_full(_mm512_loadu_si512(a1 + i), _mm512_loadu_si512(w1 + i),
                                                              _mm512_loadu_si512(wp1 + i), q, q2)),
                           q);
    if (add) x = hetee_mm512_csub(_mm512_add_epi64(x, _mm512_loadu_si512(add + i)), q);
    _mm512_storeu_si512(c + i, x);
  }
  hetee_vec_shoup_dot_ref(m, add ? add + i : NULL, a0 + i, w0 + i, wp0 + i, a1 ? a1 + i : NULL, a1 ? w1 + i : NULL,
                          a1 ? wp1 + i : NULL, c + i, n - i);
}

uint64_t hetee_vec_shoup_dot_le_avx512(const hetee_modulus *m, const uint8_t *add, const uint8_t *a0,
                                       const uint64_t *w0, const uint64_t *wp0, const uint8_t *a1, const uint64_t *w1,
                                       const uint64_t *wp1, uint64_t *c, size_t n) {
  const __m512i q = _mm512_set1_epi64((long long)m->q), q2 = _mm512_set1_epi64((long long)(2 * m->q));
  __mmask8 bad = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i y0 = _mm512_loadu_si512((const void *)(a0 + 8 * i));
    bad |= _mm512_cmpge_epu64_mask(y0, q);
    __m512i x = shoup_mul_full(y0, _mm512_loadu_si512(w0 + i), _mm512_loadu_si512(wp0 + i), q, q2);
    if (a1) { /* public: the shape of the call */
      __m512i y1 = _mm512_loadu_si512((const void *)(a1 + 8 * i));
      bad |= _mm512_cmpge_epu64_mask(y1, q);
      x = hetee_mm512_csub(
          _mm512_add_epi64(x, shoup_mul_full(y1, _mm512_loadu_si512(w1 + i), _mm512_loadu_si512(wp1 + i), q, q2)), q);
    }
    if (add) {
      __m512i z = _mm512_loadu_si512((const void *)(add + 8 * i));
      bad |= _mm512_cmpge_epu64_mask(z, q);
      x = hetee_mm512_csub(_mm512_add_epi64(x, z), q);
    }
    _mm512_storeu_si512(c + i, x);
  }
  uint64_t b = bad != 0;
  return b | hetee_vec_shoup_dot_le_ref(m, add ? add + 8 * i : NULL, a0 + 8 * i, w0 + i, wp0 + i,
                                        a1 ? a1 + 8 * i : NULL, a1 ? w1 + i : NULL, a1 ? wp1 + i : NULL, c + i, n - i);
}

void hetee_vec_shoup_sub_avx512(const hetee_modulus *m, const uint64_t *b, const uint64_t *a, const uint64_t *w,
                                const uint64_t *wp, uint64_t *c, size_t n) {
  const __m512i q = _mm512_set1_epi64((long long)m->q), q2 = _mm512_set1_epi64((long long)(2 * m->q));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i x = shoup_mul_full(_mm512_loadu_si512(a + i), _mm512_loadu_si512(w + i), _mm512_loadu_si512(wp + i), q, q2);
    /* b - x + q in (0, 2q) */
    _mm512_storeu_si512(c + i, hetee_mm512_csub(_mm512_add_epi64(_mm512_sub_epi64(_mm512_loadu_si512(b + i), x), q), q));
  }
  hetee_vec_shoup_sub_ref(m, b + i, a + i, w + i, wp + i, c + i, n - i);
}

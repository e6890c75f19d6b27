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
 * The CKKS kernels dot / dot2 accumulate 2^g products in unnormalised limbs
 * and reduce once (Barrett with one extra factor 2^g), tensor2 forms its
 * four products the same way, sub_mul_scalar_add is Shoup on 52-bit limbs.
 * Called by vec_avx512.c when q < 2^50 and the CPU has IFMA52.
 */
#include "ring_internal.h"

#include "avx512_arith.h"
#include "ring_shoup.h"

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

/* Multiplication by a fixed s with the 52-bit Shoup constant
 * s' = floor(s * 2^52 / q) (x < q < 2^50 fits the multiplier):
 * r = lo52(x*s - hi52(x*s')*q) in [0, 2q), then one conditional subtraction. */
typedef struct {
  __m512i q, negq, mask, w, wp;
} shoup52;

static inline shoup52 shoup52_setup(const hetee_modulus *m, uint64_t s) {
  shoup52 sh;
  sh.q = _mm512_set1_epi64((long long)m->q);
  sh.negq = _mm512_set1_epi64((long long)((1ull << 52) - m->q));
  sh.mask = _mm512_set1_epi64((long long)MASK52);
  sh.w = _mm512_set1_epi64((long long)s);
  sh.wp = _mm512_set1_epi64((long long)(uint64_t)(((unsigned __int128)s << 52) / m->q));
  return sh;
}

/* x * s mod q, for x < q */
static inline __m512i shoup52_mul(__m512i x, const shoup52 *sh) {
  const __m512i zero = _mm512_setzero_si512();
  __m512i qh = _mm512_madd52hi_epu64(zero, x, sh->wp);
  __m512i r = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(zero, x, sh->w), qh, sh->negq);
  return hetee_mm512_csub(_mm512_and_si512(r, sh->mask), sh->q);
}

void hetee_vec_mul_scalar_avx512ifma(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n) {
  const shoup52 sh = shoup52_setup(m, s);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm512_storeu_si512(c + i, shoup52_mul(_mm512_loadu_si512(a + i), &sh));
  hetee_vec_mul_scalar_ref(m, a + i, s, c + i, n - i);
}

/* Barrett as reduce() for x = hi * 2^52 + lo < 2^(2k+1) (one extra bit):
 * mu1 = floor(2^(2k+1)/q) < 2^(k+2), q1 = floor(x / 2^(k-1)) < 2^(k+2), both
 * within the 52-bit multiplier for k <= 50; q3 = floor(q1 mu1 / 2^(k+2))
 * >= floor(x/q) - 2 (HAC 14.42 argument), r = x - q3 q in [0, 3q) < 2^52. */
static inline __m512i reduce1(__m512i hi, __m512i lo, __m512i mu1, const barrett52 *b) {
  const __m512i zero = _mm512_setzero_si512();
  const int k = b->k;
  __m512i q1 = _mm512_or_si512(_mm512_slli_epi64(hi, (unsigned)(53 - k)), _mm512_srli_epi64(lo, (unsigned)(k - 1)));
  __m512i h2 = _mm512_madd52hi_epu64(zero, q1, mu1), l2 = _mm512_madd52lo_epu64(zero, q1, mu1);
  __m512i q3 = _mm512_or_si512(_mm512_slli_epi64(h2, (unsigned)(50 - k)), _mm512_srli_epi64(l2, (unsigned)(k + 2)));
  __m512i r = _mm512_and_si512(_mm512_madd52lo_epu64(lo, q3, b->negq), b->mask);
  return hetee_mm512_csub(hetee_mm512_csub(r, b->q), b->q);
}

static inline __m512i mu1_of(const hetee_modulus *m) {
  unsigned __int128 big = ((unsigned __int128)m->barrett_hi << 64) | m->barrett_lo;
  return _mm512_set1_epi64((long long)(uint64_t)(big >> (127 - 2 * m->bits)));
}

/* Barrett for x = hi * 2^52 + lo < 2^(2k+g) with k + g + 1 <= 52:
 * mu_g = floor(2^(2k+g)/q) < 2^(k+g+1) and q1 = floor(x / 2^(k-1))
 * < 2^(k+g+1) fit the 52-bit multiplier, q3 = floor(q1 mu_g / 2^(k+g+1))
 * >= floor(x/q) - 2 (HAC 14.42 argument), r = x - q3 q in [0, 3q) < 2^52. */
static inline __m512i reduce_g(__m512i hi, __m512i lo, __m512i mug, unsigned s, const barrett52 *b) {
  const __m512i zero = _mm512_setzero_si512();
  const unsigned k = (unsigned)b->k;
  __m512i q1 = _mm512_or_si512(_mm512_slli_epi64(hi, 53 - k), _mm512_srli_epi64(lo, k - 1));
  __m512i h2 = _mm512_madd52hi_epu64(zero, q1, mug), l2 = _mm512_madd52lo_epu64(zero, q1, mug);
  __m512i q3 = _mm512_or_si512(_mm512_slli_epi64(h2, 52 - s), _mm512_srli_epi64(l2, s));
  __m512i r = _mm512_and_si512(_mm512_madd52lo_epu64(lo, q3, b->negq), b->mask);
  return hetee_mm512_csub(hetee_mm512_csub(r, b->q), b->q);
}

/* The reduction of dot / dot2: chunks of 2^g products plus the running value
 * r < q, with g = min(51 - k, 8): 2^g (q-1)^2 + q - 1 < 2^(2k+g). The lo
 * limbs sum below 2^61, the hi limbs likewise; carried once before
 * reduce_g. */
typedef struct {
  barrett52 br;
  __m512i mug;  /* floor(2^(2k+g)/q) */
  unsigned s;   /* k + g + 1 */
  size_t chunk; /* 2^g */
} dot52;

static inline dot52 dot_setup(const hetee_modulus *m) {
  dot52 d;
  const unsigned k = (unsigned)m->bits, g = 51 - k < 8 ? 51 - k : 8;
  unsigned __int128 big = ((unsigned __int128)m->barrett_hi << 64) | m->barrett_lo;
  d.br = setup(m);
  d.mug = _mm512_set1_epi64((long long)(uint64_t)(big >> (128 - 2 * k - g)));
  d.s = k + g + 1;
  d.chunk = (size_t)1 << g;
  return d;
}

/* the sum hi * 2^52 + lo of unnormalised limbs, carried, mod q */
static inline __m512i dot_reduce(__m512i hi, __m512i lo, const dot52 *d) {
  hi = _mm512_add_epi64(hi, _mm512_srli_epi64(lo, 52));
  return reduce_g(hi, _mm512_and_si512(lo, d->br.mask), d->mug, d->s, &d->br);
}

void hetee_vec_dot_avx512ifma(const hetee_modulus *m, const uint64_t *const *a, const uint64_t *const *b, size_t k,
                              uint64_t *c, size_t n) {
  if (k == 0) { /* empty sum */
    for (size_t i = 0; i < n; i++) c[i] = 0;
    return;
  }
  const dot52 d = dot_setup(m);
  const __m512i zero = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i r = zero;
    for (size_t j0 = 0; j0 < k; j0 += d.chunk) {
      __m512i hi = zero, lo = r;
      size_t j1 = k - j0 > d.chunk ? j0 + d.chunk : k;
      for (size_t j = j0; j < j1; j++) {
        __m512i x = _mm512_loadu_si512(a[j] + i), y = _mm512_loadu_si512(b[j] + i);
        lo = _mm512_madd52lo_epu64(lo, x, y);
        hi = _mm512_madd52hi_epu64(hi, x, y);
      }
      r = dot_reduce(hi, lo, &d);
    }
    _mm512_storeu_si512(c + i, r);
  }
  hetee_vec_dot_tail(m, a, b, k, c, i, n);
}

/* Four products on the 52-bit multiplier (cheap here, so no Karatsuba);
 * c1 = a0 b1 + a1 b0 (+ c) < 2^(2k+1) goes through reduce1, c0 and c2
 * (< q^2 + q < 2^(2k)) through reduce. */
void hetee_vec_tensor2_avx512ifma(const hetee_modulus *m, const uint64_t *a0, const uint64_t *a1, const uint64_t *b0,
                                  const uint64_t *b1, uint64_t *c0, uint64_t *c1, uint64_t *c2, size_t n, int acc) {
  const barrett52 br = setup(m);
  const __m512i mu1 = mu1_of(m), zero = _mm512_setzero_si512();
  const __mmask8 keep = acc ? 0xff : 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i x0 = _mm512_loadu_si512(a0 + i), x1 = _mm512_loadu_si512(a1 + i);
    __m512i y0 = _mm512_loadu_si512(b0 + i), y1 = _mm512_loadu_si512(b1 + i);
    __m512i l0 = _mm512_madd52lo_epu64(_mm512_maskz_loadu_epi64(keep, c0 + i), x0, y0);
    __m512i h0 = _mm512_madd52hi_epu64(zero, x0, y0);
    __m512i l1 = _mm512_madd52lo_epu64(_mm512_maskz_loadu_epi64(keep, c1 + i), x0, y1);
    __m512i h1 = _mm512_madd52hi_epu64(zero, x0, y1);
    l1 = _mm512_madd52lo_epu64(l1, x1, y0);
    h1 = _mm512_madd52hi_epu64(h1, x1, y0);
    __m512i l2 = _mm512_madd52lo_epu64(_mm512_maskz_loadu_epi64(keep, c2 + i), x1, y1);
    __m512i h2 = _mm512_madd52hi_epu64(zero, x1, y1);
    h0 = _mm512_add_epi64(h0, _mm512_srli_epi64(l0, 52));
    h1 = _mm512_add_epi64(h1, _mm512_srli_epi64(l1, 52));
    h2 = _mm512_add_epi64(h2, _mm512_srli_epi64(l2, 52));
    _mm512_storeu_si512(c0 + i, reduce(h0, _mm512_and_si512(l0, br.mask), &br));
    _mm512_storeu_si512(c1 + i, reduce1(h1, _mm512_and_si512(l1, br.mask), mu1, &br));
    _mm512_storeu_si512(c2 + i, reduce(h2, _mm512_and_si512(l2, br.mask), &br));
  }
  hetee_vec_tensor2_ref(m, a0 + i, a1 + i, b0 + i, b1 + i, c0 + i, c1 + i, c2 + i, n - i, acc);
}

/* (a - b) * s + base for q < 2^50: the difference in [0, q) and Shoup on
 * 52-bit limbs as in mul_scalar */
void hetee_vec_sub_mul_scalar_add_avx512ifma(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t s,
                                             const uint64_t *base, uint64_t *c, size_t n) {
  const shoup52 sh = shoup52_setup(m, s);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i d = _mm512_sub_epi64(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
    d = _mm512_min_epu64(d, _mm512_add_epi64(d, sh.q));
    __m512i r = shoup52_mul(d, &sh);
    if (base) r = hetee_mm512_csub(_mm512_add_epi64(r, _mm512_loadu_si512(base + i)), sh.q);
    _mm512_storeu_si512(c + i, r);
  }
  hetee_vec_sub_mul_scalar_add_ref(m, a + i, b + i, s, base ? base + i : NULL, c + i, n - i);
}

/* dot2: hetee_vec_dot_avx512ifma for two right-hand sets, each left row
 * loaded once (gathered with vpgatherdq when permuted) */
void hetee_vec_dot2_avx512ifma(const hetee_modulus *m, const uint64_t *const *a, const uint32_t *perm,
                               const uint64_t *const *b0, const uint64_t *const *b1, size_t k, uint64_t *c0,
                               uint64_t *c1, size_t n) {
  if (k == 0) { /* empty sums */
    for (size_t i = 0; i < n; i++) c0[i] = c1[i] = 0;
    return;
  }
  const dot52 d = dot_setup(m);
  const __m512i zero = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i r0 = zero, r1 = zero;
    for (size_t j0 = 0; j0 < k; j0 += d.chunk) {
      __m512i hi0 = zero, lo0 = r0, hi1 = zero, lo1 = r1;
      size_t j1 = k - j0 > d.chunk ? j0 + d.chunk : k;
      for (size_t j = j0; j < j1; j++) {
        __m512i x = perm ? _mm512_i32gather_epi64(_mm256_loadu_si256((const __m256i *)(perm + i)), a[j], 8)
                         : _mm512_loadu_si512(a[j] + i);
        __m512i y0 = _mm512_loadu_si512(b0[j] + i);
        __m512i y1 = _mm512_loadu_si512(b1[j] + i);
        lo0 = _mm512_madd52lo_epu64(lo0, x, y0);
        hi0 = _mm512_madd52hi_epu64(hi0, x, y0);
        lo1 = _mm512_madd52lo_epu64(lo1, x, y1);
        hi1 = _mm512_madd52hi_epu64(hi1, x, y1);
      }
      r0 = dot_reduce(hi0, lo0, &d);
      r1 = dot_reduce(hi1, lo1, &d);
    }
    _mm512_storeu_si512(c0 + i, r0);
    _mm512_storeu_si512(c1 + i, r1);
  }
  hetee_vec_dot2_tail(m, a, perm, b0, b1, k, c0, c1, i, n);
}

/* y * w mod q (q < 2^50, y < q) by Shoup on 52-bit limbs with the per-lane
 * quotient w' >> 12 = floor(w 2^52 / q): r = lo52(y w - hi52(y (w' >> 12)) q)
 * in [0, 2q), one conditional subtraction. */
static inline __m512i shoup52_mul_full(__m512i y, __m512i w, __m512i wp, __m512i q, __m512i negq, __m512i mask) {
  const __m512i zero = _mm512_setzero_si512();
  __m512i qh = _mm512_madd52hi_epu64(zero, y, _mm512_srli_epi64(wp, 12));
  __m512i r = _mm512_madd52lo_epu64(zero, y, w);
  r = _mm512_and_si512(_mm512_madd52lo_epu64(r, qh, negq), mask);
  return hetee_mm512_csub(r, q);
}

void hetee_vec_shoup_dot_avx512ifma(const hetee_modulus *m, const uint64_t *add, const uint64_t *a0,
                                    const uint64_t *w0, const uint64_t *wp0, const uint64_t *a1, const uint64_t *w1,
                                    const uint64_t *wp1, uint64_t *c, size_t n) {
  const __m512i q = _mm512_set1_epi64((long long)m->q), negq = _mm512_set1_epi64((long long)((1ull << 52) - m->q)),
                mask = _mm512_set1_epi64((long long)MASK52);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i x = shoup52_mul_full(_mm512_loadu_si512(a0 + i), _mm512_loadu_si512(w0 + i), _mm512_loadu_si512(wp0 + i),
                                 q, negq, mask);
    if (a1) /* public: the shape of the call */
      x = hetee_mm512_csub(_mm512_add_epi64(x, shoup52_mul_full(_mm512_loadu_si512(a1 + i), _mm512_loadu_si512(w1 + i),
                                                                _mm512_loadu_si512(wp1 + i), q, negq, mask)),
                           q);
    if (add) x = hetee_mm512_csub(_mm512_add_epi64(x, _mm512_loadu_si512(add + i)), q);
    _mm512_storeu_si512(c + i, x);
  }
  hetee_vec_shoup_dot_ref(m, add ? add + i : NULL, a0 + i, w0 + i, wp0 + i, a1 ? a1 + i : NULL, a1 ? w1 + i : NULL,
                          a1 ? wp1 + i : NULL, c + i, n - i);
}

void hetee_vec_shoup_sub_avx512ifma(const hetee_modulus *m, const uint64_t *b, const uint64_t *a, const uint64_t *w,
                                    const uint64_t *wp, uint64_t *c, size_t n) {
  const __m512i q = _mm512_set1_epi64((long long)m->q), negq = _mm512_set1_epi64((long long)((1ull << 52) - m->q)),
                mask = _mm512_set1_epi64((long long)MASK52);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i x = shoup52_mul_full(_mm512_loadu_si512(a + i), _mm512_loadu_si512(w + i), _mm512_loadu_si512(wp + i), q,
                                 negq, mask);
    _mm512_storeu_si512(c + i, hetee_mm512_csub(_mm512_add_epi64(_mm512_sub_epi64(_mm512_loadu_si512(b + i), x), q), q));
  }
  hetee_vec_shoup_sub_ref(m, b + i, a + i, w + i, wp + i, c + i, n - i);
}

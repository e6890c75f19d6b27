/*
 * ntt_avx512_tmpl.h — AVX-512 NTT kernels, instantiated twice: by
 * ntt_avx512ifma.c with 52-bit Shoup multiplication on the IFMA unit
 * (q < 2^50, so lazy values < 4q < 2^52 fit the multiplier), and by
 * ntt_avx512.c with an exact 64x64 -> high-64 product built from vpmuludq
 * (any q < 2^61). Same algorithm and lazy ranges as ntt_ref.c (Harvey 2014
 * butterflies; Cooley-Tukey forward, Gentleman-Sande inverse), structured as
 * in Intel HEXL's AVX-512 NTT: stages with butterfly distance >= 8 work on
 * whole vectors with a broadcast twiddle, the last three forward stages (and
 * first three inverse stages) are fused on 16-coefficient blocks held in two
 * registers and rearranged with vpermt2q.
 *
 * The including file defines, before including this header:
 *   TMPL(name)          name mangling for this instance
 *   SHOUP(t)            the Shoup table suffix (t##_shoup52 or t##_shoup)
 *   LAZY_MULT           2 or 4 (default 2): mul_lazy returns values in
 *                       [0, LAZY_MULT*q); butterfly values then stay in
 *                       [0, 2*LAZY_MULT*q) forward, [0, LAZY_MULT*q) inverse
 *   mul_lazy(y, w, wp, q)  y * w mod q, lazily, for y < 2*LAZY_MULT*q
 * Outputs are bit-identical to the reference (all fully reduced, and the
 * transform is a function of its input). The inverse also comes as
 * inverse_add (out = INTT(in) + s): the fused head reads the input array,
 * the last stage adds s, so copy and addition cost no extra pass.
 */
#include <immintrin.h>

#ifndef LAZY_MULT
#define LAZY_MULT 2
#endif

static inline __m512i TMPL(csub)(__m512i x, __m512i b) { return _mm512_min_epu64(x, _mm512_sub_epi64(x, b)); }

/* [0, LAZY_MULT*q) -> [0, q) */
static inline __m512i TMPL(reduce_lazy)(__m512i x, __m512i qv) {
#if LAZY_MULT == 4
  x = TMPL(csub)(x, _mm512_add_epi64(qv, qv));
#endif
  return TMPL(csub)(x, qv);
}

/* [0, 2*LAZY_MULT*q) -> [0, q) */
static inline __m512i TMPL(reduce_fwd)(__m512i x, __m512i qv) {
  x = TMPL(csub)(x, _mm512_slli_epi64(qv, LAZY_MULT == 4 ? 2 : 1));
  return TMPL(reduce_lazy)(x, qv);
}

/* forward butterfly, values in [0, 2*qa) with qa = LAZY_MULT*q (in q2) */
#define FWD_BFLY(X, Y, W, WP)                                                                     \
  do {                                                                                            \
    __m512i x_ = TMPL(csub)(X, q2);                                                               \
    __m512i v_ = mul_lazy(Y, W, WP, qv);                                                          \
    X = _mm512_add_epi64(x_, v_);                                                                 \
    Y = _mm512_add_epi64(_mm512_sub_epi64(x_, v_), q2);                                           \
  } while (0)

/* inverse butterfly, values in [0, qa) */
#define INV_BFLY(X, Y, W, WP)                                                                     \
  do {                                                                                            \
    __m512i s_ = TMPL(csub)(_mm512_add_epi64(X, Y), q2);                                          \
    __m512i d_ = _mm512_add_epi64(_mm512_sub_epi64(X, Y), q2);                                    \
    X = s_;                                                                                       \
    Y = mul_lazy(d_, W, WP, qv);                                                                  \
  } while (0)

/* lane selections of a 16-coefficient block (v0 = e0..e7, v1 = e8..e15)
 * into (X, Y) operands of the distance-4, -2, -1 stages, and back */
#define IDX(a, b, c, d, e, f, g, h) _mm512_set_epi64(h, g, f, e, d, c, b, a)

static inline __m512i TMPL(tw2)(const uint64_t *p) {
  /* [p0 x4, p1 x4] */
  return _mm512_permutexvar_epi64(IDX(0, 0, 0, 0, 1, 1, 1, 1), _mm512_zextsi128_si512(_mm_loadu_si128((const __m128i *)p)));
}
static inline __m512i TMPL(tw4)(const uint64_t *p) {
  /* [p0 p0 p1 p1 p2 p2 p3 p3] */
  return _mm512_permutexvar_epi64(IDX(0, 0, 1, 1, 2, 2, 3, 3), _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)p)));
}

/* Coefficients per cache block: data (8 KiB) plus the twiddles its stages
 * read stay in L1 while all remaining stages run on it (depth-first). */
#define BLK 1024

/* one forward stage (twiddle index base m, distance gap >= 8), groups [i0, i1) */
static inline void TMPL(fwd_r2)(uint64_t *a, const uint64_t *w, const uint64_t *wp, size_t m, size_t gap,
                                size_t i0, size_t i1, __m512i qv, __m512i q2) {
  for (size_t i = i0; i < i1; i++) {
    const __m512i W = _mm512_set1_epi64((long long)w[m + i]), WP = _mm512_set1_epi64((long long)wp[m + i]);
    uint64_t *x = a + 2 * i * gap, *y = x + gap;
    for (size_t j = 0; j < gap; j += 8) {
      __m512i X = _mm512_loadu_si512(x + j), Y = _mm512_loadu_si512(y + j);
      FWD_BFLY(X, Y, W, WP);
      _mm512_storeu_si512(x + j, X);
      _mm512_storeu_si512(y + j, Y);
    }
  }
}

/* forward stages m (distance gap) and 2m (distance gap/2 >= 8) in one pass
 * over memory, groups [i0, i1) of stage m */
static inline void TMPL(fwd_r4)(uint64_t *a, const uint64_t *w, const uint64_t *wp, size_t m, size_t gap,
                                size_t i0, size_t i1, __m512i qv, __m512i q2) {
  const size_t h = gap >> 1;
  for (size_t i = i0; i < i1; i++) {
    const __m512i W1 = _mm512_set1_epi64((long long)w[m + i]), W1P = _mm512_set1_epi64((long long)wp[m + i]);
    const __m512i W2 = _mm512_set1_epi64((long long)w[2 * m + 2 * i]),
                  W2P = _mm512_set1_epi64((long long)wp[2 * m + 2 * i]);
    const __m512i W3 = _mm512_set1_epi64((long long)w[2 * m + 2 * i + 1]),
                  W3P = _mm512_set1_epi64((long long)wp[2 * m + 2 * i + 1]);
    uint64_t *x0 = a + 2 * i * gap, *x1 = x0 + h, *x2 = x0 + gap, *x3 = x2 + h;
    for (size_t j = 0; j < h; j += 8) {
      __m512i A = _mm512_loadu_si512(x0 + j), B = _mm512_loadu_si512(x1 + j);
      __m512i C = _mm512_loadu_si512(x2 + j), D = _mm512_loadu_si512(x3 + j);
      FWD_BFLY(A, C, W1, W1P);
      FWD_BFLY(B, D, W1, W1P);
      FWD_BFLY(A, B, W2, W2P);
      FWD_BFLY(C, D, W3, W3P);
      _mm512_storeu_si512(x0 + j, A);
      _mm512_storeu_si512(x1 + j, B);
      _mm512_storeu_si512(x2 + j, C);
      _mm512_storeu_si512(x3 + j, D);
    }
  }
}

/* fused forward distance-4, -2, -1 stages (m = N/8, N/4, N/2) and the final
 * reduction to [0, q), on 16-coefficient blocks [k0, k1) */
static inline void TMPL(fwd_tail)(uint64_t *a, size_t n, const uint64_t *w, const uint64_t *wp, size_t k0,
                                  size_t k1, __m512i qv, __m512i q2) {
  const __m512i i4x = IDX(0, 1, 2, 3, 8, 9, 10, 11), i4y = IDX(4, 5, 6, 7, 12, 13, 14, 15);
  const __m512i i2x = IDX(0, 1, 4, 5, 8, 9, 12, 13), i2y = IDX(2, 3, 6, 7, 10, 11, 14, 15);
  const __m512i i2a = IDX(0, 1, 8, 9, 2, 3, 10, 11), i2b = IDX(4, 5, 12, 13, 6, 7, 14, 15);
  const __m512i i1x = IDX(0, 2, 4, 6, 8, 10, 12, 14), i1y = IDX(1, 3, 5, 7, 9, 11, 13, 15);
  const __m512i i1a = IDX(0, 8, 1, 9, 2, 10, 3, 11), i1b = IDX(4, 12, 5, 13, 6, 14, 7, 15);
  const size_t m4 = n >> 3, m2 = n >> 2, m1 = n >> 1;
  for (size_t k = k0; k < k1; k++) {
    uint64_t *p = a + 16 * k;
    __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 8);
    __m512i X = _mm512_permutex2var_epi64(v0, i4x, v1), Y = _mm512_permutex2var_epi64(v0, i4y, v1);
    FWD_BFLY(X, Y, TMPL(tw2)(w + m4 + 2 * k), TMPL(tw2)(wp + m4 + 2 * k));
    /* back to natural order: v0 = X0..3 Y0..3, v1 = X4..7 Y4..7 */
    v0 = _mm512_permutex2var_epi64(X, i4x, Y);
    v1 = _mm512_permutex2var_epi64(X, i4y, Y);
    X = _mm512_permutex2var_epi64(v0, i2x, v1);
    Y = _mm512_permutex2var_epi64(v0, i2y, v1);
    FWD_BFLY(X, Y, TMPL(tw4)(w + m2 + 4 * k), TMPL(tw4)(wp + m2 + 4 * k));
    v0 = _mm512_permutex2var_epi64(X, i2a, Y);
    v1 = _mm512_permutex2var_epi64(X, i2b, Y);
    X = _mm512_permutex2var_epi64(v0, i1x, v1);
    Y = _mm512_permutex2var_epi64(v0, i1y, v1);
    FWD_BFLY(X, Y, _mm512_loadu_si512(w + m1 + 8 * k), _mm512_loadu_si512(wp + m1 + 8 * k));
    X = TMPL(reduce_fwd)(X, qv);
    Y = TMPL(reduce_fwd)(Y, qv);
    _mm512_storeu_si512(p, _mm512_permutex2var_epi64(X, i1a, Y));
    _mm512_storeu_si512(p + 8, _mm512_permutex2var_epi64(X, i1b, Y));
  }
}

static void TMPL(forward)(const hetee_ntt_tables *t, uint64_t *a) {
  const size_t n = t->n;
  if (n < 16) {
    hetee_ntt_forward_ref(t, a);
    return;
  }
  const uint64_t q = t->mod.q;
  const __m512i qv = _mm512_set1_epi64((long long)q), q2 = _mm512_set1_epi64((long long)(LAZY_MULT * q));
  const uint64_t *w = t->fwd, *wp = t->SHOUP(fwd);
  size_t m = 1, gap = n >> 1;
  /* breadth-first while a group (2*gap coefficients) exceeds a cache block */
  while (gap >= 8 && 2 * gap > BLK) {
    if (gap >= 16) {
      TMPL(fwd_r4)(a, w, wp, m, gap, 0, m, qv, q2);
      m <<= 2, gap >>= 2;
    } else {
      TMPL(fwd_r2)(a, w, wp, m, gap, 0, m, qv, q2);
      m <<= 1, gap >>= 1;
    }
  }
  /* then depth-first, one cache block at a time */
  const size_t blk = n < BLK ? n : BLK;
  for (size_t s = 0; s < n; s += blk) {
    size_t mm = m, g = gap;
    while (g >= 8) {
      size_t i0 = s / (2 * g), i1 = (s + blk) / (2 * g);
      if (g >= 16) {
        TMPL(fwd_r4)(a, w, wp, mm, g, i0, i1, qv, q2);
        mm <<= 2, g >>= 2;
      } else {
        TMPL(fwd_r2)(a, w, wp, mm, g, i0, i1, qv, q2);
        mm <<= 1, g >>= 1;
      }
    }
    TMPL(fwd_tail)(a, n, w, wp, s / 16, (s + blk) / 16, qv, q2);
  }
}

/* one inverse stage of distance gap (twiddle base h = N / (2 gap)),
 * groups [i0, i1) */
static inline void TMPL(inv_r2)(uint64_t *a, const uint64_t *w, const uint64_t *wp, size_t h, size_t gap,
                                size_t i0, size_t i1, __m512i qv, __m512i q2) {
  for (size_t i = i0; i < i1; i++) {
    const __m512i W = _mm512_set1_epi64((long long)w[h + i]), WP = _mm512_set1_epi64((long long)wp[h + i]);
    uint64_t *x = a + 2 * i * gap, *y = x + gap;
    for (size_t j = 0; j < gap; j += 8) {
      __m512i X = _mm512_loadu_si512(x + j), Y = _mm512_loadu_si512(y + j);
      INV_BFLY(X, Y, W, WP);
      _mm512_storeu_si512(x + j, X);
      _mm512_storeu_si512(y + j, Y);
    }
  }
}

/* inverse stages of distance gap (base h) and 2*gap (base h/2) in one pass;
 * groups [i0, i1) of the second stage */
static inline void TMPL(inv_r4)(uint64_t *a, const uint64_t *w, const uint64_t *wp, size_t h, size_t gap,
                                size_t i0, size_t i1, __m512i qv, __m512i q2) {
  for (size_t i = i0; i < i1; i++) {
    const __m512i W1 = _mm512_set1_epi64((long long)w[h + 2 * i]), W1P = _mm512_set1_epi64((long long)wp[h + 2 * i]);
    const __m512i W2 = _mm512_set1_epi64((long long)w[h + 2 * i + 1]),
                  W2P = _mm512_set1_epi64((long long)wp[h + 2 * i + 1]);
    const __m512i W3 = _mm512_set1_epi64((long long)w[h / 2 + i]), W3P = _mm512_set1_epi64((long long)wp[h / 2 + i]);
    uint64_t *x0 = a + 4 * i * gap, *x1 = x0 + gap, *x2 = x1 + gap, *x3 = x2 + gap;
    for (size_t j = 0; j < gap; j += 8) {
      __m512i A = _mm512_loadu_si512(x0 + j), B = _mm512_loadu_si512(x1 + j);
      __m512i C = _mm512_loadu_si512(x2 + j), D = _mm512_loadu_si512(x3 + j);
      INV_BFLY(A, B, W1, W1P);
      INV_BFLY(C, D, W2, W2P);
      INV_BFLY(A, C, W3, W3P);
      INV_BFLY(B, D, W3, W3P);
      _mm512_storeu_si512(x0 + j, A);
      _mm512_storeu_si512(x1 + j, B);
      _mm512_storeu_si512(x2 + j, C);
      _mm512_storeu_si512(x3 + j, D);
    }
  }
}

/* fused inverse distance-1, -2, -4 stages on 16-coefficient blocks [k0, k1),
 * reading the blocks from src (== a in place, the input array otherwise:
 * the first pass over each block is also the copy) */
static inline void TMPL(inv_head)(const uint64_t *src, uint64_t *a, size_t n, const uint64_t *w,
                                  const uint64_t *wp, size_t k0, size_t k1, __m512i qv, __m512i q2) {
  const __m512i i4x = IDX(0, 1, 2, 3, 8, 9, 10, 11), i4y = IDX(4, 5, 6, 7, 12, 13, 14, 15);
  const __m512i i2x = IDX(0, 1, 4, 5, 8, 9, 12, 13), i2y = IDX(2, 3, 6, 7, 10, 11, 14, 15);
  const __m512i i2a = IDX(0, 1, 8, 9, 2, 3, 10, 11), i2b = IDX(4, 5, 12, 13, 6, 7, 14, 15);
  const __m512i i1x = IDX(0, 2, 4, 6, 8, 10, 12, 14), i1y = IDX(1, 3, 5, 7, 9, 11, 13, 15);
  const __m512i i1a = IDX(0, 8, 1, 9, 2, 10, 3, 11), i1b = IDX(4, 12, 5, 13, 6, 14, 7, 15);
  const size_t h1 = n >> 1, h2 = n >> 2, h4 = n >> 3;
  for (size_t k = k0; k < k1; k++) {
    uint64_t *p = a + 16 * k;
    const uint64_t *ps = src + 16 * k;
    __m512i v0 = _mm512_loadu_si512(ps), v1 = _mm512_loadu_si512(ps + 8);
    __m512i X = _mm512_permutex2var_epi64(v0, i1x, v1), Y = _mm512_permutex2var_epi64(v0, i1y, v1);
    INV_BFLY(X, Y, _mm512_loadu_si512(w + h1 + 8 * k), _mm512_loadu_si512(wp + h1 + 8 * k));
    v0 = _mm512_permutex2var_epi64(X, i1a, Y);
    v1 = _mm512_permutex2var_epi64(X, i1b, Y);
    X = _mm512_permutex2var_epi64(v0, i2x, v1);
    Y = _mm512_permutex2var_epi64(v0, i2y, v1);
    INV_BFLY(X, Y, TMPL(tw4)(w + h2 + 4 * k), TMPL(tw4)(wp + h2 + 4 * k));
    v0 = _mm512_permutex2var_epi64(X, i2a, Y);
    v1 = _mm512_permutex2var_epi64(X, i2b, Y);
    X = _mm512_permutex2var_epi64(v0, i4x, v1);
    Y = _mm512_permutex2var_epi64(v0, i4y, v1);
    INV_BFLY(X, Y, TMPL(tw2)(w + h4 + 2 * k), TMPL(tw2)(wp + h4 + 2 * k));
    _mm512_storeu_si512(p, _mm512_permutex2var_epi64(X, i4x, Y));
    _mm512_storeu_si512(p + 8, _mm512_permutex2var_epi64(X, i4y, Y));
  }
}

/* a = INTT(src) (+ s when ADD; src == a in place); the copy is fused into
 * the first pass and the addition into the last stage */
static inline void TMPL(inverse_impl)(const hetee_ntt_tables *t, const uint64_t *src, uint64_t *a, uint64_t s_add,
                                      const int ADD) {
  const size_t n = t->n;
  if (n < 16) {
    if (ADD) {
      hetee_ntt_inverse_add_ref(t, src, a, s_add);
    } else {
      for (size_t i = 0; i < n; i++) a[i] = src[i];
      hetee_ntt_inverse_ref(t, a);
    }
    return;
  }
  const uint64_t q = t->mod.q;
  const __m512i qv = _mm512_set1_epi64((long long)q), q2 = _mm512_set1_epi64((long long)(LAZY_MULT * q));
  const uint64_t *w = t->inv, *wp = t->SHOUP(inv);
  const size_t blk = n < BLK ? n : BLK, last = n >> 1;
  size_t gap = 8;
  /* depth-first per cache block while a group fits in it; the last stage
   * (distance N/2, with 1/N) is always separate */
  for (size_t s = 0; s < n; s += blk) {
    TMPL(inv_head)(src, a, n, w, wp, s / 16, (s + blk) / 16, qv, q2);
    size_t g = 8;
    while (g < last && 2 * g <= blk) {
      if (2 * g < last && 4 * g <= blk) {
        TMPL(inv_r4)(a, w, wp, n / (2 * g), g, s / (4 * g), (s + blk) / (4 * g), qv, q2);
        g <<= 2;
      } else {
        TMPL(inv_r2)(a, w, wp, n / (2 * g), g, s / (2 * g), (s + blk) / (2 * g), qv, q2);
        g <<= 1;
      }
    }
    gap = g;
  }
  /* breadth-first for the larger distances */
  while (gap < last) {
    if (2 * gap < last) {
      TMPL(inv_r4)(a, w, wp, n / (2 * gap), gap, 0, n / (4 * gap), qv, q2);
      gap <<= 2;
    } else {
      TMPL(inv_r2)(a, w, wp, n / (2 * gap), gap, 0, n / (2 * gap), qv, q2);
      gap <<= 1;
    }
  }
  /* last stage with 1/N folded in, fully reduced */
  const __m512i NI = _mm512_set1_epi64((long long)t->ninv), NIP = _mm512_set1_epi64((long long)t->SHOUP(ninv));
  const __m512i NW = _mm512_set1_epi64((long long)t->ninv_w), NWP = _mm512_set1_epi64((long long)t->SHOUP(ninv_w));
  const __m512i SV = _mm512_set1_epi64((long long)s_add);
  uint64_t *x = a, *y = a + gap;
  for (size_t j = 0; j < gap; j += 8) {
    __m512i X = _mm512_loadu_si512(x + j), Y = _mm512_loadu_si512(y + j);
    __m512i s = _mm512_add_epi64(X, Y), d = _mm512_add_epi64(_mm512_sub_epi64(X, Y), q2);
    __m512i rx = TMPL(reduce_lazy)(mul_lazy(s, NI, NIP, qv), qv);
    __m512i ry = TMPL(reduce_lazy)(mul_lazy(d, NW, NWP, qv), qv);
    if (ADD) {
      rx = TMPL(csub)(_mm512_add_epi64(rx, SV), qv);
      ry = TMPL(csub)(_mm512_add_epi64(ry, SV), qv);
    }
    _mm512_storeu_si512(x + j, rx);
    _mm512_storeu_si512(y + j, ry);
  }
}

static void TMPL(inverse)(const hetee_ntt_tables *t, uint64_t *a) { TMPL(inverse_impl)(t, a, a, 0, 0); }

/* out = INTT(in) + s, s in [0, q) */
static void TMPL(inverse_add)(const hetee_ntt_tables *t, const uint64_t *in, uint64_t *out, uint64_t s) {
  TMPL(inverse_impl)(t, in, out, s, 1);
}

#undef BLK
#undef LAZY_MULT
#undef FWD_BFLY
#undef INV_BFLY
#undef IDX

/*
 * ntt_avx2.c — AVX2 variant (the only file compiled with -mavx2): the
 * negacyclic NTT on 4 x 64-bit lanes for any q < 2^61, same algorithm and
 * lazy ranges as ntt_ref.c (Harvey 2014 butterflies with Shoup twiddles;
 * Cooley-Tukey forward, Gentleman-Sande inverse). AVX2 has neither 64-bit
 * high nor low multiplies, so Shoup's product is built from vpmuludq:
 * hi64(y * w') from four 32x32 products, y*w - Q*q mod 2^64 from three each.
 * Stages with butterfly distance >= 4 work on whole vectors (two stages per
 * pass when the distance allows); the distance-2 and -1 stages are fused on
 * 8-coefficient blocks rearranged with vperm2i128 / vpunpck{l,h}qdq.
 * Conditional subtractions use the sign bit: all lazy values are < 4q < 2^63.
 * Pointwise add/sub come from vec_avx2.c; mul/muladd stay scalar (with only
 * 32-bit multiplies AVX2 does not beat the scalar 64-bit multiplier).
 */
#include "ring_internal.h"

#include <immintrin.h>

static inline __m256i csub(__m256i x, __m256i b) {
  __m256i t = _mm256_sub_epi64(x, b);
  __m256i neg = _mm256_cmpgt_epi64(_mm256_setzero_si256(), t);
  return _mm256_add_epi64(t, _mm256_and_si256(b, neg));
}

static inline __m256i mulhi64(__m256i a, __m256i b) {
  const __m256i lo32 = _mm256_set1_epi64x(0xffffffffll);
  __m256i ah = _mm256_srli_epi64(a, 32), bh = _mm256_srli_epi64(b, 32);
  __m256i ll = _mm256_mul_epu32(a, b), lh = _mm256_mul_epu32(a, bh);
  __m256i hl = _mm256_mul_epu32(ah, b), hh = _mm256_mul_epu32(ah, bh);
  __m256i mid = _mm256_add_epi64(_mm256_srli_epi64(ll, 32), _mm256_and_si256(lh, lo32));
  mid = _mm256_add_epi64(mid, _mm256_and_si256(hl, lo32));
  __m256i hi = _mm256_add_epi64(hh, _mm256_srli_epi64(lh, 32));
  hi = _mm256_add_epi64(hi, _mm256_srli_epi64(hl, 32));
  return _mm256_add_epi64(hi, _mm256_srli_epi64(mid, 32));
}

static inline __m256i mullo64(__m256i a, __m256i b) {
  __m256i ah = _mm256_srli_epi64(a, 32), bh = _mm256_srli_epi64(b, 32);
  __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(a, bh), _mm256_mul_epu32(ah, b));
  return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(cross, 32));
}

/* y * w mod q in [0, 2q) for any 64-bit y (Shoup) */
static inline __m256i mul_lazy(__m256i y, __m256i w, __m256i wp, __m256i q) {
  __m256i qh = mulhi64(y, wp);
  return _mm256_sub_epi64(mullo64(y, w), mullo64(qh, q));
}

#define FWD_BFLY(X, Y, W, WP)                                                                     \
  do {                                                                                            \
    __m256i x_ = csub(X, q2);                                                                     \
    __m256i v_ = mul_lazy(Y, W, WP, qv);                                                          \
    X = _mm256_add_epi64(x_, v_);                                                                 \
    Y = _mm256_add_epi64(_mm256_sub_epi64(x_, v_), q2);                                           \
  } while (0)

#define INV_BFLY(X, Y, W, WP)                                                                     \
  do {                                                                                            \
    __m256i s_ = csub(_mm256_add_epi64(X, Y), q2);                                                \
    __m256i d_ = _mm256_add_epi64(_mm256_sub_epi64(X, Y), q2);                                    \
    X = s_;                                                                                       \
    Y = mul_lazy(d_, W, WP, qv);                                                                  \
  } while (0)

#define LD(p) _mm256_loadu_si256((const __m256i *)(p))
#define ST(p, v) _mm256_storeu_si256((__m256i *)(p), v)
#define B64(x) _mm256_set1_epi64x((long long)(x))

/* [p0 p0 p1 p1] */
static inline __m256i tw2(const uint64_t *p) {
  return _mm256_permute4x64_epi64(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p)), 0x50);
}
/* [p0 p2 p1 p3]: lane order of the unpack-based distance-1 butterflies */
static inline __m256i tw4(const uint64_t *p) { return _mm256_permute4x64_epi64(LD(p), 0xD8); }

static void avx2_ntt_forward_entry(const hetee_ntt_tables *t, uint64_t *a) {
  const size_t n = t->n;
  if (n < 8) {
    hetee_ntt_forward_ref(t, a);
    return;
  }
  const uint64_t q = t->mod.q;
  const __m256i qv = B64(q), q2 = B64(2 * q);
  const uint64_t *w = t->fwd, *wp = t->fwd_shoup;
  size_t m = 1, gap = n >> 1;
  while (gap >= 4) {
    if (gap >= 8) { /* stages m (distance gap) and 2m (gap/2) */
      const size_t h = gap >> 1;
      for (size_t i = 0; i < m; i++) {
        const __m256i W1 = B64(w[m + i]), W1P = B64(wp[m + i]);
        const __m256i W2 = B64(w[2 * m + 2 * i]), W2P = B64(wp[2 * m + 2 * i]);
        const __m256i W3 = B64(w[2 * m + 2 * i + 1]), W3P = B64(wp[2 * m + 2 * i + 1]);
        uint64_t *x0 = a + 2 * i * gap, *x1 = x0 + h, *x2 = x0 + gap, *x3 = x2 + h;
        for (size_t j = 0; j < h; j += 4) {
          __m256i A = LD(x0 + j), B = LD(x1 + j), C = LD(x2 + j), D = LD(x3 + j);
          FWD_BFLY(A, C, W1, W1P);
          FWD_BFLY(B, D, W1, W1P);
          FWD_BFLY(A, B, W2, W2P);
          FWD_BFLY(C, D, W3, W3P);
          ST(x0 + j, A), ST(x1 + j, B), ST(x2 + j, C), ST(x3 + j, D);
        }
      }
      m <<= 2, gap >>= 2;
    } else {
      for (size_t i = 0; i < m; i++) {
        const __m256i W = B64(w[m + i]), WP = B64(wp[m + i]);
        uint64_t *x = a + 2 * i * gap, *y = x + gap;
        for (size_t j = 0; j < gap; j += 4) {
          __m256i X = LD(x + j), Y = LD(y + j);
          FWD_BFLY(X, Y, W, WP);
          ST(x + j, X), ST(y + j, Y);
        }
      }
      m <<= 1, gap >>= 1;
    }
  }
  /* fused distance-2 and -1 stages (m = N/4, N/2) and the final reduction */
  const size_t m2 = n >> 2, m1 = n >> 1;
  for (size_t k = 0; k < n / 8; k++) {
    uint64_t *p = a + 8 * k;
    __m256i v0 = LD(p), v1 = LD(p + 4);
    __m256i X = _mm256_permute2x128_si256(v0, v1, 0x20), Y = _mm256_permute2x128_si256(v0, v1, 0x31);
    FWD_BFLY(X, Y, tw2(w + m2 + 2 * k), tw2(wp + m2 + 2 * k));
    v0 = _mm256_permute2x128_si256(X, Y, 0x20);
    v1 = _mm256_permute2x128_si256(X, Y, 0x31);
    X = _mm256_unpacklo_epi64(v0, v1);
    Y = _mm256_unpackhi_epi64(v0, v1);
    FWD_BFLY(X, Y, tw4(w + m1 + 4 * k), tw4(wp + m1 + 4 * k));
    X = csub(csub(X, q2), qv);
    Y = csub(csub(Y, q2), qv);
    ST(p, _mm256_unpacklo_epi64(X, Y));
    ST(p + 4, _mm256_unpackhi_epi64(X, Y));
  }
}

static void avx2_ntt_inverse_entry(const hetee_ntt_tables *t, uint64_t *a) {
  const size_t n = t->n;
  if (n < 8) {
    hetee_ntt_inverse_ref(t, a);
    return;
  }
  const uint64_t q = t->mod.q;
  const __m256i qv = B64(q), q2 = B64(2 * q);
  const uint64_t *w = t->inv, *wp = t->inv_shoup;
  /* fused distance-1 and -2 stages (h = N/2, N/4) */
  const size_t h1 = n >> 1, h2 = n >> 2, last = n >> 1;
  for (size_t k = 0; k < n / 8; k++) {
    uint64_t *p = a + 8 * k;
    __m256i v0 = LD(p), v1 = LD(p + 4);
    __m256i X = _mm256_unpacklo_epi64(v0, v1), Y = _mm256_unpackhi_epi64(v0, v1);
    INV_BFLY(X, Y, tw4(w + h1 + 4 * k), tw4(wp + h1 + 4 * k));
    v0 = _mm256_unpacklo_epi64(X, Y);
    v1 = _mm256_unpackhi_epi64(X, Y);
    X = _mm256_permute2x128_si256(v0, v1, 0x20);
    Y = _mm256_permute2x128_si256(v0, v1, 0x31);
    INV_BFLY(X, Y, tw2(w + h2 + 2 * k), tw2(wp + h2 + 2 * k));
    ST(p, _mm256_permute2x128_si256(X, Y, 0x20));
    ST(p + 4, _mm256_permute2x128_si256(X, Y, 0x31));
  }
  size_t gap = 4;
  while (gap < last) {
    const size_t h = n / (2 * gap);
    if (2 * gap < last) { /* distances gap (base h) and 2*gap (base h/2) */
      for (size_t i = 0; i < h / 2; i++) {
        const __m256i W1 = B64(w[h + 2 * i]), W1P = B64(wp[h + 2 * i]);
        const __m256i W2 = B64(w[h + 2 * i + 1]), W2P = B64(wp[h + 2 * i + 1]);
        const __m256i W3 = B64(w[h / 2 + i]), W3P = B64(wp[h / 2 + i]);
        uint64_t *x0 = a + 4 * i * gap, *x1 = x0 + gap, *x2 = x1 + gap, *x3 = x2 + gap;
        for (size_t j = 0; j < gap; j += 4) {
          __m256i A = LD(x0 + j), B = LD(x1 + j), C = LD(x2 + j), D = LD(x3 + j);
          INV_BFLY(A, B, W1, W1P);
          INV_BFLY(C, D, W2, W2P);
          INV_BFLY(A, C, W3, W3P);
          INV_BFLY(B, D, W3, W3P);
          ST(x0 + j, A), ST(x1 + j, B), ST(x2 + j, C), ST(x3 + j, D);
        }
      }
      gap <<= 2;
    } else {
      for (size_t i = 0; i < h; i++) {
        const __m256i W = B64(w[h + i]), WP = B64(wp[h + i]);
        uint64_t *x = a + 2 * i * gap, *y = x + gap;
        for (size_t j = 0; j < gap; j += 4) {
          __m256i X = LD(x + j), Y = LD(y + j);
          INV_BFLY(X, Y, W, WP);
          ST(x + j, X), ST(y + j, Y);
        }
      }
      gap <<= 1;
    }
  }
  /* last stage with 1/N folded in, fully reduced */
  const __m256i NI = B64(t->ninv), NIP = B64(t->ninv_shoup), NW = B64(t->ninv_w), NWP = B64(t->ninv_w_shoup);
  uint64_t *x = a, *y = a + gap;
  for (size_t j = 0; j < gap; j += 4) {
    __m256i X = LD(x + j), Y = LD(y + j);
    __m256i s = _mm256_add_epi64(X, Y), d = _mm256_add_epi64(_mm256_sub_epi64(X, Y), q2);
    ST(x + j, csub(mul_lazy(s, NI, NIP, qv), qv));
    ST(y + j, csub(mul_lazy(d, NW, NWP, qv), qv));
  }
}

static void avx2_ntt_inverse_add_entry(const hetee_ntt_tables *t, const uint64_t *in, uint64_t *out, uint64_t s) {
  hetee_ntt_inverse_add_steps(avx2_ntt_inverse_entry, t, in, out, s);
}

const hetee_ring_kernels hetee_ring_kernels_avx2 = {
    "avx2", avx2_ntt_forward_entry, avx2_ntt_inverse_entry, hetee_vec_add_avx2,
    hetee_vec_sub_avx2, hetee_vec_mul_ref, hetee_vec_muladd_ref, hetee_vec_mul_scalar_ref,
    hetee_vec_add_scalar_ref, hetee_vec_reduce_ref, hetee_vec_dot_ref, hetee_vec_tensor2_ref,
    hetee_vec_dot2_ref, hetee_vec_reduce_add_scalar_ref, hetee_vec_sub_mul_scalar_add_ref,
    avx2_ntt_inverse_add_entry,
};

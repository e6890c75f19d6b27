/*
 * encoder.c — CKKS encoding and decoding (Cheon–Kim–Kim–Song 2017, canonical
 * embedding; special FFT as in the CKKS paper's reference implementation).
 *
 * Slot j (j < N/2) holds m(zeta^(5^j)), zeta = exp(2 pi i / 2N). Folding the
 * real coefficients as u_k = m_k + i m_(k+N/2) (k < N/2) gives
 * m(w) = u(w) for every w with w^(N/2) = i, i.e. the slots are the values of
 * the degree < N/2 complex polynomial u at the N/2 roots of X^(N/2) = i taken
 * in the order of the powers of 5: an O(N log N) "special FFT" (radix 2,
 * bit-reversed input, twiddles zeta^(5^j mod 8h * 2N/8h)).
 *
 * Encoding: z -> inverse special FFT -> u -> coefficients * scale, rounded to
 * integers and reduced modulo every prime of the level (one double quotient
 * and a conditional add per residue below 2^52; exactly, also for
 * |value| >= 2^63: the double's mantissa times a power of two) -> NTT.
 * Decoding: inverse NTT per prime -> exact centered CRT in O(l) products per
 * coefficient (rounding quotient from a floating-point sum as in
 * Halevi–Polyakov–Shoup, CT-RSA 2019, plus the value modulo 2^(64w) in w
 * machine words; see the CRT section below) -> / scale -> special FFT. The
 * FFT's bit reversal is folded into those copies. The FFT and the rounding
 * have AVX-512 variants (function-level target attributes, picked with the
 * ring layer's ISA choice). See docs/ckks.md for precision and timings.
 */
#include <math.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_arena.h"
#include "ckks/ckks_internal.h"
#include "ring/ring_shoup.h"

/* ---- special FFT ------------------------------------------------------
 *
 * The arrays are double complex, read as interleaved (re, im) doubles, and
 * the butterflies are written out in real arithmetic: gcc's complex product
 * checks for NaN/inf and calls __muldc3, which also stops vectorisation.
 * Stage h (half-length h, h = 1 .. N/4) reads its twiddles contiguously
 * from ctx->fft_tw + h. The AVX-512 variant runs 4 complex butterflies per
 * instruction for h >= 4, and stages h = 1, 2 inside each register with
 * lane shuffles; it uses
 * fused multiply-adds, so it agrees with the portable path within a few
 * ulps per stage, not bit for bit (test_encode compares them). The variant
 * follows the ring layer's pick (hetee_ring_isa(): HETEE_ISA=ref pins the
 * portable path). Only public sizes and the public twiddle/bit-reversal
 * tables decide branches and indices, never the values. */

static void fft_bitrev(const hetee_ckks_context *ctx, double *v, size_t n) {
  for (size_t j = 0; j < n; j++) {
    size_t r = ctx->bitrev[j];
    if (r > j) { /* public permutation */
      double tr = v[2 * j], ti = v[2 * j + 1];
      v[2 * j] = v[2 * r];
      v[2 * j + 1] = v[2 * r + 1];
      v[2 * r] = tr;
      v[2 * r + 1] = ti;
    }
  }
}

/* Forward stages h0 <= h < n (portable). */
static void fft_fwd_stages_ref(const double *tw0, double *v, size_t n, size_t h0, size_t h1) {
  for (size_t h = h0; h < h1; h <<= 1) {
    const double *tw = tw0 + 2 * h;
    for (size_t i = 0; i < n; i += 2 * h) {
      double *a = v + 2 * i, *b = v + 2 * (i + h);
      for (size_t j = 0; j < h; j++) {
        double wr = tw[2 * j], wi = tw[2 * j + 1];
        double br = b[2 * j], bi = b[2 * j + 1];
        double tr = br * wr - bi * wi, ti = br * wi + bi * wr;
        double ar = a[2 * j], ai = a[2 * j + 1];
        a[2 * j] = ar + tr;
        a[2 * j + 1] = ai + ti;
        b[2 * j] = ar - tr;
        b[2 * j + 1] = ai - ti;
      }
    }
  }
}

/* Inverse stages h from h1 down to h0 (portable), without the 1/n. */
static void fft_inv_stages_ref(const double *tw0, double *v, size_t n, size_t h0, size_t h1) {
  for (size_t h = h1; h >= h0 && h >= 1; h >>= 1) {
    const double *tw = tw0 + 2 * h;
    for (size_t i = 0; i < n; i += 2 * h) {
      double *a = v + 2 * i, *b = v + 2 * (i + h);
      for (size_t j = 0; j < h; j++) {
        double wr = tw[2 * j], wi = tw[2 * j + 1];
        double ar = a[2 * j], ai = a[2 * j + 1], br = b[2 * j], bi = b[2 * j + 1];
        double dr = ar - br, di = ai - bi;
        a[2 * j] = ar + br;
        a[2 * j + 1] = ai + bi;
        /* (a - b) * conj(w) */
        b[2 * j] = dr * wr + di * wi;
        b[2 * j + 1] = di * wr - dr * wi;
      }
    }
  }
}

static void fft_scale(double *v, size_t n2, double s) {
  for (size_t j = 0; j < n2; j++) v[j] *= s;
}

/* AVX-512 variants of the FFT, the rounding and the CRT (x86-64 with gcc
 * or clang; run only when the ring layer picked AVX-512: F + DQ + VL and
 * OS support). */
#if defined(__x86_64__) && defined(__GNUC__)
#define CKKS_FFT_AVX512 1
#include <immintrin.h>

#define AVX512_FN __attribute__((target("avx512f")))

/* 4 complex products b * w, interleaved (re, im) lanes. */
AVX512_FN static inline __m512d cmul4(__m512d b, __m512d w) {
  __m512d wr = _mm512_movedup_pd(w), wi = _mm512_permute_pd(w, 0xff);
  __m512d bs = _mm512_permute_pd(b, 0x55); /* (im, re) */
  return _mm512_fmaddsub_pd(b, wr, _mm512_mul_pd(bs, wi));
}

/* 4 complex products b * conj(w). */
AVX512_FN static inline __m512d cmulconj4(__m512d b, __m512d w) {
  __m512d wr = _mm512_movedup_pd(w), wi = _mm512_permute_pd(w, 0xff);
  __m512d bs = _mm512_permute_pd(b, 0x55);
  return _mm512_fmsubadd_pd(b, wr, _mm512_mul_pd(bs, wi));
}

/* Stages h = 1 and h = 2 inside each vector of 4 complex values (public
 * 128-bit lane shuffles): forward h = 1 then h = 2. */
AVX512_FN static void fft_fwd_first2_avx512(const double *tw0, double *v, size_t n) {
  __m512d w1 = _mm512_broadcast_f64x4(_mm256_set_pd(tw0[3], tw0[2], tw0[3], tw0[2]));
  __m512d w2 = _mm512_broadcast_f64x4(_mm256_loadu_pd(tw0 + 4)); /* tw[2], tw[3] */
  for (size_t i = 0; i < n; i += 4) {
    __m512d x = _mm512_loadu_pd(v + 2 * i);
    __m512d a = _mm512_shuffle_f64x2(x, x, _MM_SHUFFLE(2, 2, 0, 0));
    __m512d b = cmul4(_mm512_shuffle_f64x2(x, x, _MM_SHUFFLE(3, 3, 1, 1)), w1);
    x = _mm512_mask_sub_pd(_mm512_add_pd(a, b), 0xcc, a, b); /* lanes 1, 3: a - b */
    a = _mm512_shuffle_f64x2(x, x, _MM_SHUFFLE(1, 0, 1, 0));
    b = cmul4(_mm512_shuffle_f64x2(x, x, _MM_SHUFFLE(3, 2, 3, 2)), w2);
    x = _mm512_mask_sub_pd(_mm512_add_pd(a, b), 0xf0, a, b); /* lanes 2, 3: a - b */
    _mm512_storeu_pd(v + 2 * i, x);
  }
}

/* Inverse h = 2 then h = 1 inside each vector of 4 complex values. */
AVX512_FN static void fft_inv_last2_avx512(const double *tw0, double *v, size_t n) {
  __m512d w1 = _mm512_broadcast_f64x4(_mm256_set_pd(tw0[3], tw0[2], tw0[3], tw0[2]));
  __m512d w2 = _mm512_broadcast_f64x4(_mm256_loadu_pd(tw0 + 4));
  for (size_t i = 0; i < n; i += 4) {
    __m512d x = _mm512_loadu_pd(v + 2 * i);
    __m512d a = _mm512_shuffle_f64x2(x, x, _MM_SHUFFLE(1, 0, 1, 0));
    __m512d b = _mm512_shuffle_f64x2(x, x, _MM_SHUFFLE(3, 2, 3, 2));
    /* lanes 0, 1: a + b; lanes 2, 3: (a - b) conj(w2) */
    x = _mm512_mask_mov_pd(_mm512_add_pd(a, b), 0xf0, cmulconj4(_mm512_sub_pd(a, b), w2));
    a = _mm512_shuffle_f64x2(x, x, _MM_SHUFFLE(2, 2, 0, 0));
    b = _mm512_shuffle_f64x2(x, x, _MM_SHUFFLE(3, 3, 1, 1));
    x = _mm512_mask_mov_pd(_mm512_add_pd(a, b), 0xcc, cmulconj4(_mm512_sub_pd(a, b), w1));
    _mm512_storeu_pd(v + 2 * i, x);
  }
}

/* One radix-2 forward stage of half-length h (h >= 4). */
AVX512_FN static void fft_fwd_stage_avx512(const double *tw0, double *v, size_t n, size_t h) {
  const double *tw = tw0 + 2 * h;
  for (size_t i = 0; i < n; i += 2 * h) {
    double *a = v + 2 * i, *b = v + 2 * (i + h);
    for (size_t j = 0; j < h; j += 4) {
      __m512d w = _mm512_loadu_pd(tw + 2 * j);
      __m512d x = _mm512_loadu_pd(a + 2 * j), y = cmul4(_mm512_loadu_pd(b + 2 * j), w);
      _mm512_storeu_pd(a + 2 * j, _mm512_add_pd(x, y));
      _mm512_storeu_pd(b + 2 * j, _mm512_sub_pd(x, y));
    }
  }
}

/* Forward stages h and 2h in one pass over the data (radix-4 data flow,
 * the same operations as two radix-2 stages, so bit-identical to them):
 * half the loads and stores. */
AVX512_FN static void fft_fwd_stage2_avx512(const double *tw0, double *v, size_t n, size_t h) {
  const double *t1 = tw0 + 2 * h, *t2 = tw0 + 4 * h;
  for (size_t i = 0; i < n; i += 4 * h) {
    double *p0 = v + 2 * i, *p1 = p0 + 2 * h, *p2 = p0 + 4 * h, *p3 = p0 + 6 * h;
    for (size_t j = 0; j < h; j += 4) {
      __m512d w1 = _mm512_loadu_pd(t1 + 2 * j);
      __m512d a0 = _mm512_loadu_pd(p0 + 2 * j), a1 = cmul4(_mm512_loadu_pd(p1 + 2 * j), w1);
      __m512d a2 = _mm512_loadu_pd(p2 + 2 * j), a3 = cmul4(_mm512_loadu_pd(p3 + 2 * j), w1);
      __m512d b0 = _mm512_add_pd(a0, a1), b1 = _mm512_sub_pd(a0, a1);
      __m512d b2 = _mm512_add_pd(a2, a3), b3 = _mm512_sub_pd(a2, a3);
      __m512d c2 = cmul4(b2, _mm512_loadu_pd(t2 + 2 * j)), c3 = cmul4(b3, _mm512_loadu_pd(t2 + 2 * (j + h)));
      _mm512_storeu_pd(p0 + 2 * j, _mm512_add_pd(b0, c2));
      _mm512_storeu_pd(p2 + 2 * j, _mm512_sub_pd(b0, c2));
      _mm512_storeu_pd(p1 + 2 * j, _mm512_add_pd(b1, c3));
      _mm512_storeu_pd(p3 + 2 * j, _mm512_sub_pd(b1, c3));
    }
  }
}

/* Forward stages on bit-reversed input (n >= 8). */
AVX512_FN static void fft_fwd_avx512(const double *tw0, double *v, size_t n) {
  fft_fwd_first2_avx512(tw0, v, n);
  size_t h = 4;
  int stages = 0;
  for (size_t t = 4; t < n; t <<= 1) stages++;
  if (stages & 1) {
    fft_fwd_stage_avx512(tw0, v, n, h);
    h <<= 1;
  }
  for (; h < n; h <<= 2) fft_fwd_stage2_avx512(tw0, v, n, h);
}

/* One radix-2 inverse stage of half-length h (h >= 4). */
AVX512_FN static void fft_inv_stage_avx512(const double *tw0, double *v, size_t n, size_t h) {
  const double *tw = tw0 + 2 * h;
  for (size_t i = 0; i < n; i += 2 * h) {
    double *a = v + 2 * i, *b = v + 2 * (i + h);
    for (size_t j = 0; j < h; j += 4) {
      __m512d w = _mm512_loadu_pd(tw + 2 * j);
      __m512d x = _mm512_loadu_pd(a + 2 * j), y = _mm512_loadu_pd(b + 2 * j);
      _mm512_storeu_pd(a + 2 * j, _mm512_add_pd(x, y));
      _mm512_storeu_pd(b + 2 * j, cmulconj4(_mm512_sub_pd(x, y), w));
    }
  }
}

/* Inverse stages 2h then h in one pass (bit-identical to the two radix-2
 * stages). */
AVX512_FN static void fft_inv_stage2_avx512(const double *tw0, double *v, size_t n, size_t h) {
  const double *t1 = tw0 + 2 * h, *t2 = tw0 + 4 * h;
  for (size_t i = 0; i < n; i += 4 * h) {
    double *p0 = v + 2 * i, *p1 = p0 + 2 * h, *p2 = p0 + 4 * h, *p3 = p0 + 6 * h;
    for (size_t j = 0; j < h; j += 4) {
      __m512d a0 = _mm512_loadu_pd(p0 + 2 * j), a1 = _mm512_loadu_pd(p1 + 2 * j);
      __m512d a2 = _mm512_loadu_pd(p2 + 2 * j), a3 = _mm512_loadu_pd(p3 + 2 * j);
      __m512d b0 = _mm512_add_pd(a0, a2), b2 = cmulconj4(_mm512_sub_pd(a0, a2), _mm512_loadu_pd(t2 + 2 * j));
      __m512d b1 = _mm512_add_pd(a1, a3), b3 = cmulconj4(_mm512_sub_pd(a1, a3), _mm512_loadu_pd(t2 + 2 * (j + h)));
      __m512d w1 = _mm512_loadu_pd(t1 + 2 * j);
      _mm512_storeu_pd(p0 + 2 * j, _mm512_add_pd(b0, b1));
      _mm512_storeu_pd(p1 + 2 * j, cmulconj4(_mm512_sub_pd(b0, b1), w1));
      _mm512_storeu_pd(p2 + 2 * j, _mm512_add_pd(b2, b3));
      _mm512_storeu_pd(p3 + 2 * j, cmulconj4(_mm512_sub_pd(b2, b3), w1));
    }
  }
}

/* Inverse stages, output still bit-reversed and not divided by n. */
AVX512_FN static void fft_inv_avx512(const double *tw0, double *v, size_t n) {
  int stages = 0;
  for (size_t t = 4; t < n; t <<= 1) stages++;
  size_t h = n / 2;
  for (int st = stages; st >= 2; st -= 2, h >>= 2) fft_inv_stage2_avx512(tw0, v, n, h / 2);
  if (stages & 1) fft_inv_stage_avx512(tw0, v, n, 4);
  fft_inv_last2_avx512(tw0, v, n);
}
#endif

/* Whether the AVX-512 FFT runs: the ring layer's pick (CPUID + OS checks,
 * HETEE_ISA pin). */
static int fft_use_avx512(void) {
#ifdef CKKS_FFT_AVX512
  return hetee_ring_isa() == HETEE_ISA_AVX512;
#else
  return 0;
#endif
}

/* The stages without the bit reversal (encode and decode fold it into
 * their copies) and, for the inverse, without the 1/n. */
static void fft_fwd_core(const hetee_ckks_context *ctx, double *v, size_t n, int simd) {
#ifdef CKKS_FFT_AVX512
  if (simd) {
    fft_fwd_avx512((const double *)ctx->fft_tw, v, n);
    return;
  }
#endif
  fft_fwd_stages_ref((const double *)ctx->fft_tw, v, n, 1, n);
}

static void fft_inv_core(const hetee_ckks_context *ctx, double *v, size_t n, int simd) {
#ifdef CKKS_FFT_AVX512
  if (simd) {
    fft_inv_avx512((const double *)ctx->fft_tw, v, n);
    return;
  }
#endif
  fft_inv_stages_ref((const double *)ctx->fft_tw, v, n, 1, n / 2);
}

/* In-place special FFT (bit reversal + stages) with a chosen variant;
 * simd = 1 is the AVX-512 path (the caller checks it may run). */
void ckks_fft_special_variant(const hetee_ckks_context *ctx, double complex *z, int simd) {
  size_t n = ctx->n / 2;
  fft_bitrev(ctx, (double *)z, n);
  fft_fwd_core(ctx, (double *)z, n, simd);
}

void ckks_fft_special_inv_variant(const hetee_ckks_context *ctx, double complex *z, int simd) {
  size_t n = ctx->n / 2;
  fft_inv_core(ctx, (double *)z, n, simd);
  fft_bitrev(ctx, (double *)z, n);
  fft_scale((double *)z, 2 * n, 1.0 / (double)n);
}

int ckks_fft_has_simd(void) { return fft_use_avx512(); }

void ckks_fft_special(const hetee_ckks_context *ctx, double complex *v) {
  ckks_fft_special_variant(ctx, v, fft_use_avx512());
}

void ckks_fft_special_inv(const hetee_ckks_context *ctx, double complex *v) {
  ckks_fft_special_inv_variant(ctx, v, fft_use_avx512());
}

/* log2 of Q_level / 2: coefficients must stay strictly below it in
 * magnitude so that the centered representative is the integer itself. */
static double level_half_log2(const hetee_ckks_context *ctx, int level) {
  double s = -1.0;
  for (int i = 0; i <= level; i++) s += log2((double)ctx->mod[i].q);
  return s;
}

/* Residues of one rounded double x (any magnitude below 2^1023) modulo the
 * primes 0..level; written with stride `stride`. */
static void big_to_rns(const hetee_ckks_context *ctx, double x, int level, uint64_t *res, size_t stride) {
  double r = nearbyint(x);
  if (fabs(r) < 9.2e18) {
    int64_t v = (int64_t)r;
    for (int i = 0; i <= level; i++) res[(size_t)i * stride] = ckks_from_i64(v, &ctx->mod[i]);
    return;
  }
  /* |r| >= 2^63: r = mant * 2^e exactly with |mant| < 2^53 */
  int e;
  double f = frexp(r, &e);          /* r = f * 2^e, 0.5 <= |f| < 1 */
  int64_t mant = (int64_t)ldexp(f, 53);
  int sh = e - 53;                  /* >= 10 */
  for (int i = 0; i <= level; i++) {
    const hetee_modulus *m = &ctx->mod[i];
    uint64_t p2 = hetee_mod_pow(2, (uint64_t)sh, m);
    res[(size_t)i * stride] = hetee_mod_mul(ckks_from_i64(mant, m), p2, m);
  }
}

/* Residues mod q of integers |x| <= 2^52 (branch-free on the values). For
 * q > 2^53, |x| < q: the residue is x, plus q when x < 0. Otherwise
 * t = round(x / q) in double, r = x - t q is exact (both integers below
 * 2^53) and lies in (-q, q) even if t is one off; one conditional add. */
static void round_row_small(const int64_t *iv, uint64_t q, uint64_t *row, size_t n) {
  if (q > ((uint64_t)1 << 53)) { /* public: the prime's size */
    for (size_t k = 0; k < n; k++) {
      int64_t x = iv[k];
      row[k] = (uint64_t)x + (q & (uint64_t)(x >> 63));
    }
    return;
  }
  const double qd = (double)q, qinv = 1.0 / qd, magic = 0x1.8p52;
  for (size_t k = 0; k < n; k++) {
    double x = (double)iv[k];
    double t = (x * qinv + magic) - magic; /* round to nearest, |x/q| < 2^51 */
    int64_t r = (int64_t)(x - t * qd);
    row[k] = (uint64_t)r + (q & (uint64_t)(r >> 63));
  }
}

#ifdef CKKS_FFT_AVX512
/* round_row_small with AVX-512 (F + DQ: 64-bit integer <-> double
 * conversions): the same arithmetic 8 lanes at a time (the quotient is
 * rounded with vrndscalepd instead of the 1.5 * 2^52 trick; both give the
 * nearest integer, and the final residue is exact either way). */
__attribute__((target("avx512f,avx512dq"))) static void round_row_small_avx512(const int64_t *iv, uint64_t q,
                                                                               uint64_t *row, size_t n) {
  const __m512i vq = _mm512_set1_epi64((long long)q);
  size_t k = 0;
  if (q > ((uint64_t)1 << 53)) {
    for (; k + 8 <= n; k += 8) {
      __m512i x = _mm512_loadu_si512((const void *)(iv + k));
      _mm512_storeu_si512((void *)(row + k), _mm512_add_epi64(x, _mm512_and_si512(vq, _mm512_srai_epi64(x, 63))));
    }
  } else {
    const __m512d qd = _mm512_set1_pd((double)q), qinv = _mm512_set1_pd(1.0 / (double)q);
    for (; k + 8 <= n; k += 8) {
      __m512d x = _mm512_cvtepi64_pd(_mm512_loadu_si512((const void *)(iv + k)));
      __m512d t = _mm512_roundscale_pd(_mm512_mul_pd(x, qinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      __m512i r = _mm512_cvttpd_epi64(_mm512_fnmadd_pd(t, qd, x));
      _mm512_storeu_si512((void *)(row + k), _mm512_add_epi64(r, _mm512_and_si512(vq, _mm512_srai_epi64(r, 63))));
    }
  }
  if (k < n) round_row_small(iv + k, q, row + k, n - k);
}

/* Residues mod q of integers |x| < 2^62 (any prime of 20..61 bits), 8 lanes:
 * t = nearest(x / q) in double, with x and 1/q rounded to doubles:
 * |x/q - t| <= 1/2 + 3 * 2^-53 * 2^42 < 1/2 + 2^-9, so r = x - t q (exact
 * in 64-bit integers: |t q| < 2^63) lies in (-q, q) and one conditional
 * add makes it the residue ckks_from_i64 gives. No branch on the values. */
__attribute__((target("avx512f,avx512dq"))) static void round_row_i62_avx512(const int64_t *iv,
                                                                             const hetee_modulus *m, uint64_t *row,
                                                                             size_t n) {
  const __m512i vq = _mm512_set1_epi64((long long)m->q);
  const __m512d qinv = _mm512_set1_pd(1.0 / (double)m->q);
  size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m512i x = _mm512_loadu_si512((const void *)(iv + k));
    __m512d t = _mm512_roundscale_pd(_mm512_mul_pd(_mm512_cvtepi64_pd(x), qinv),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512i r = _mm512_sub_epi64(x, _mm512_mullo_epi64(_mm512_cvttpd_epi64(t), vq));
    _mm512_storeu_si512((void *)(row + k), _mm512_add_epi64(r, _mm512_and_si512(vq, _mm512_srai_epi64(r, 63))));
  }
  for (; k < n; k++) row[k] = ckks_from_i64(iv[k], m);
}

/* One pass over the coefficients: max |c|, all finite, and c rounded to
 * nearest int64 (vcvtpd2qq in the default rounding mode, like llrint;
 * lanes beyond the int64 range give the "integer indefinite" value and are
 * not used: the caller then takes the big-value path). */
__attribute__((target("avx512f,avx512dq"))) static void scan_round_avx512(const double *c, size_t n, int64_t *iv,
                                                                          double *maxabs, int *finite) {
  __m512d mx = _mm512_setzero_pd();
  __mmask8 bad = 0;
  const __m512d big = _mm512_set1_pd(1.7976931348623157e308);
  size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m512d x = _mm512_loadu_pd(c + k), a = _mm512_abs_pd(x);
    bad |= _mm512_cmp_pd_mask(a, big, _CMP_NLE_UQ); /* inf or NaN */
    mx = _mm512_max_pd(mx, a);
    _mm512_storeu_si512((void *)(iv + k), _mm512_cvtpd_epi64(x));
  }
  double m = _mm512_reduce_max_pd(mx);
  int fin = bad == 0;
  for (; k < n; k++) {
    double a = fabs(c[k]);
    fin &= isfinite(a) != 0;
    m = a > m ? a : m;
    iv[k] = (int64_t)llrint(c[k]); /* unspecified (unused) beyond int64 */
  }
  *maxabs = m;
  *finite = fin;
}
#endif

int ckks_round_to_rns(const hetee_ckks_context *ctx, const double *coef, int level, uint64_t *out) {
  size_t n = ctx->n;
  double maxabs = 0;
  int finite = 1, simd = fft_use_avx512(), rc = 0;
  (void)simd; /* unused without the AVX-512 variants */
  /* rounded coefficients (used when they all fit int64) */
  int64_t *iv = malloc(n * sizeof *iv);
  if (!iv) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
#ifdef CKKS_FFT_AVX512
  if (simd)
    scan_round_avx512(coef, n, iv, &maxabs, &finite);
  else
#endif
  {
    for (size_t k = 0; k < n; k++) {
      double a = fabs(coef[k]);
      finite &= isfinite(a) != 0;
      maxabs = a > maxabs ? a : maxabs;
    }
    /* llrint: round to nearest, branch-free (cvtsd2si); only run on
     * values that fit int64 */
    if (finite && maxabs < 4.0e18)
      for (size_t k = 0; k < n; k++) iv[k] = (int64_t)llrint(coef[k]);
  }
  if (!finite) {
    rc = hetee_error(HETEE_ERR_SCALE, "encoded value is not finite");
    goto done;
  }
  if (maxabs > 0 && log2(maxabs) >= level_half_log2(ctx, level) - 1.0) {
    rc = hetee_error(HETEE_ERR_SCALE, "values * scale (2^%.1f) do not fit the modulus at level %d (2^%.1f)",
                     log2(maxabs), level, level_half_log2(ctx, level) + 1.0);
    goto done;
  }
  if (maxabs < 4.0e18) {
    /* |x| <= 2^52 (the common case; one branch per polynomial on its
     * largest magnitude, like the range check above): per prime, one
     * double quotient and one conditional add instead of a 128-bit
     * Barrett reduction */
    int small = maxabs < 0x1p52;
    for (int i = 0; i <= level; i++) {
      const hetee_modulus *m = &ctx->mod[i];
      uint64_t *row = out + (size_t)i * n;
      if (!small) {
#ifdef CKKS_FFT_AVX512
        if (simd)
          round_row_i62_avx512(iv, m, row, n);
        else
#endif
          for (size_t k = 0; k < n; k++) row[k] = ckks_from_i64(iv[k], m);
      }
#ifdef CKKS_FFT_AVX512
      else if (simd)
        round_row_small_avx512(iv, m->q, row, n);
#endif
      else
        round_row_small(iv, m->q, row, n);
    }
    goto done;
  }
  for (size_t k = 0; k < n; k++) big_to_rns(ctx, coef[k], level, out + k, n);
done:
  sodium_memzero(iv, n * sizeof *iv);
  free(iv);
  return rc;
}

/* ---- bounded rounding (callers that must not reveal the values) ---------
 *
 * ckks_round_to_rns above picks its path from the data (max |c| < 2^52,
 * < 2^62, or the multi-word path with a variable-time power) and fails when
 * a value does not fit: both observable. Here the caller states a public
 * bound cmax on |coefficient|; every coefficient is saturated at +-cmax
 * (branch-free; NaN becomes -cmax) and the path comes from cmax alone:
 *   cmax < 2^51: round_row_small (one double quotient per residue);
 *   cmax < 2^62: int64 and ckks_from_i64 per residue;
 *   otherwise:   K 52-bit chunks, K from cmax: c = sum_j t_j 2^(52 j)
 *                exactly (t_j integers, |t_j| < 2^52), residue =
 *                sum_j t_j (2^(52 j) mod q) with masked modular arithmetic.
 * No branch or index depends on the coefficients. */

static inline double sel_d(uint64_t mask, double a, double b) {
  uint64_t ua, ub;
  memcpy(&ua, &a, 8);
  memcpy(&ub, &b, 8);
  uint64_t r = (ua & mask) | (ub & ~mask);
  double d;
  memcpy(&d, &r, 8);
  return d;
}

/* max(min(x, b), -b) without branches; NaN -> -b. */
static inline double clamp_ct(double x, double b) {
  x = sel_d((uint64_t)0 - (uint64_t)(x > -b), x, -b); /* NaN compares false */
  return sel_d((uint64_t)0 - (uint64_t)(x > b), b, x);
}

#ifdef CKKS_FFT_AVX512
/* The bounded coefficient encoder's integers, 8 lanes at a time:
 * iv[k] = nearest(clamp(clamp(v[k], vmax) * scale, cmax)) for k < n (the
 * same IEEE operations as clamp_ct and llrint: max_pd returns its second
 * operand for a NaN, so NaN becomes -bound as in clamp_ct; vcvtpd2qq
 * rounds in the current mode like llrint), 0 for n <= k < N. */
__attribute__((target("avx512f,avx512dq"))) static void coeffs_bounded_avx512(const double *v, size_t n, size_t N,
                                                                              double vmax, double scale,
                                                                              double cmax, int64_t *iv) {
  const __m512d lo = _mm512_set1_pd(-vmax), hi = _mm512_set1_pd(vmax), sc = _mm512_set1_pd(scale),
                clo = _mm512_set1_pd(-cmax), chi = _mm512_set1_pd(cmax);
  size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m512d x = _mm512_min_pd(_mm512_max_pd(_mm512_loadu_pd(v + k), lo), hi);
    x = _mm512_min_pd(_mm512_max_pd(_mm512_mul_pd(x, sc), clo), chi);
    _mm512_storeu_si512((void *)(iv + k), _mm512_cvtpd_epi64(x));
  }
  for (; k < n; k++) iv[k] = (int64_t)llrint(clamp_ct(clamp_ct(v[k], vmax) * scale, cmax));
  for (; k < N; k++) iv[k] = 0;
}
#endif

#ifdef CKKS_FFT_AVX512
/* coeffs_bounded_avx512 without the final rounding: the clamped, scaled,
 * clamped doubles (zero beyond n). */
__attribute__((target("avx512f,avx512dq"))) static void coeffs_clamp_avx512(const double *v, size_t n, size_t N,
                                                                            double vmax, double scale, double cmax,
                                                                            double *out) {
  const __m512d lo = _mm512_set1_pd(-vmax), hi = _mm512_set1_pd(vmax), sc = _mm512_set1_pd(scale),
                clo = _mm512_set1_pd(-cmax), chi = _mm512_set1_pd(cmax);
  size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m512d x = _mm512_min_pd(_mm512_max_pd(_mm512_loadu_pd(v + k), lo), hi);
    _mm512_storeu_pd(out + k, _mm512_min_pd(_mm512_max_pd(_mm512_mul_pd(x, sc), clo), chi));
  }
  for (; k < n; k++) out[k] = clamp_ct(clamp_ct(v[k], vmax) * scale, cmax);
  for (; k < N; k++) out[k] = 0.0;
}
#endif

#define CHUNK_MAX 24 /* 24 x 52 bits > 1023 */

static void round_rows_chunked(const hetee_ckks_context *ctx, const double *coef, int level, int K, uint64_t *out) {
  size_t n = ctx->n;
  uint64_t pw[CHUNK_MAX][CKKS_MAX_PRIMES], pwp[CHUNK_MAX][CKKS_MAX_PRIMES];
  double p2[CHUNK_MAX], p2inv[CHUNK_MAX];
  for (int j = 0; j < K; j++) {
    p2[j] = ldexp(1.0, 52 * j), p2inv[j] = ldexp(1.0, -52 * j); /* public powers of two */
    for (int i = 0; i <= level; i++) {
      pw[j][i] = hetee_mod_pow(2, (uint64_t)(52 * j), &ctx->mod[i]); /* public */
      pwp[j][i] = hetee_shoup_prep(pw[j][i], ctx->mod[i].q);
    }
  }
  int64_t t[CHUNK_MAX];
  const double magic = 0x1.8p52;
  for (size_t k = 0; k < n; k++) {
    double x = coef[k];
    for (int j = K - 1; j >= 1; j--) {
      double q = (x * p2inv[j] + magic) - magic; /* nearest integer, |x / 2^(52j)| < 2^51 */
      t[j] = (int64_t)q;
      x -= q * p2[j]; /* exact (see the comment above) */
    }
    t[0] = (int64_t)llrint(x); /* |x| <= 2^51 */
    for (int i = 0; i <= level; i++) {
      const hetee_modulus *m = &ctx->mod[i];
      const uint64_t q = m->q;
      uint64_t acc = ckks_from_i64(t[0], m);
      for (int j = 1; j < K; j++) {
        uint64_t sign = (uint64_t)0 - ((uint64_t)t[j] >> 63);
        uint64_t mag = ((uint64_t)t[j] ^ sign) - sign; /* |t_j| < 2^52 */
        uint64_t r = hetee_mod_mul_shoup(mag, pw[j][i], pwp[j][i], q);
        uint64_t neg = sign & ((uint64_t)0 - (uint64_t)(r != 0));
        acc = hetee_mod_add(acc, ((q - r) & neg) | (r & ~neg), q);
      }
      out[(size_t)i * n + k] = acc;
    }
  }
  sodium_memzero(t, sizeof t);
}

#ifdef CKKS_FFT_AVX512
#define CHUNK_SIMD_MAX 3 /* cmax < 2^154 */
/* round_rows_chunked for K = 2 or 3 (2^62 <= cmax < 2^154: scales above
 * 2^40), 8 coefficients at a time: the chunks of the scalar loop, h_j =
 * nearest(x / 2^(52j)) then x -= h_j 2^(52j) (exact) for j = K-1..1, lo =
 * nearest(x) (|h_j| <= 2^51, |lo| <= 2^51); then per prime W = sum_j h_j
 * (2^(52j) mod q) + lo reduced as round_row_i62_avx512 does: r = W - t q
 * with t the nearest integer to the double estimate of W / q (each term's
 * share of W / q is below 2^52, its relative error a few 2^-53: t is off by
 * less than 3, so |r| < 4q < 2^63 and the wrapping 64-bit products give r
 * exactly), brought into [0, q) by masked corrections. The same residues as
 * the scalar loop; no branch or index on the values. */
__attribute__((target("avx512f,avx512dq"))) static void round_rows_kk_avx512(const hetee_ckks_context *ctx,
                                                                             const double *coef, int level, int K,
                                                                             uint64_t *out) {
  size_t n = ctx->n;
#define RND_NEAREST (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC) /* an immediate, also at -O0 */
  __m512d inv[CHUNK_SIMD_MAX], p2[CHUNK_SIMD_MAX];
  for (int j = 1; j < K; j++) inv[j] = _mm512_set1_pd(ldexp(1.0, -52 * j)), p2[j] = _mm512_set1_pd(ldexp(1.0, 52 * j));
  for (int i = 0; i <= level; i++) {
    const hetee_modulus *m = &ctx->mod[i];
    const __m512i vq = _mm512_set1_epi64((long long)m->q);
    const __m512d qinv = _mm512_set1_pd(1.0 / (double)m->q);
    __m512i vc[CHUNK_SIMD_MAX];
    __m512d cd[CHUNK_SIMD_MAX];
    for (int j = 1; j < K; j++) {
      uint64_t c = hetee_mod_pow(2, (uint64_t)(52 * j), m); /* public */
      vc[j] = _mm512_set1_epi64((long long)c), cd[j] = _mm512_set1_pd((double)c);
    }
    uint64_t *row = out + (size_t)i * n;
    for (size_t k = 0; k < n; k += 8) { /* n is a multiple of 8 (the caller checks) */
      __m512d x = _mm512_loadu_pd(coef + k), est = _mm512_setzero_pd();
      __m512i w = _mm512_setzero_si512();
      for (int j = K - 1; j >= 1; j--) {
        __m512d hd = _mm512_roundscale_pd(_mm512_mul_pd(x, inv[j]), RND_NEAREST);
        x = _mm512_sub_pd(x, _mm512_mul_pd(hd, p2[j])); /* exact */
        est = _mm512_add_pd(est, _mm512_mul_pd(hd, cd[j]));
        w = _mm512_add_epi64(w, _mm512_mullo_epi64(_mm512_cvttpd_epi64(hd), vc[j]));
      }
      __m512i lo = _mm512_cvtpd_epi64(x);
      est = _mm512_mul_pd(_mm512_add_pd(est, _mm512_cvtepi64_pd(lo)), qinv);
      __m512i t = _mm512_cvttpd_epi64(_mm512_roundscale_pd(est, RND_NEAREST));
      __m512i r = _mm512_sub_epi64(_mm512_add_epi64(w, lo), _mm512_mullo_epi64(t, vq));
      for (int rep = 0; rep < 4; rep++) /* r in (-4q, 4q) -> [0, q) */
        r = _mm512_add_epi64(r, _mm512_and_si512(vq, _mm512_srai_epi64(r, 63)));
      for (int rep = 0; rep < 4; rep++) {
        __m512i d = _mm512_sub_epi64(r, vq);
        r = _mm512_add_epi64(d, _mm512_and_si512(vq, _mm512_srai_epi64(d, 63)));
      }
      _mm512_storeu_si512((void *)(row + k), r);
    }
  }
#undef RND_NEAREST
}
#endif

static int check_cmax(const hetee_ckks_context *ctx, int level, double cmax) {
  if (!(isfinite(cmax) && cmax > 0) || log2(cmax) >= level_half_log2(ctx, level) - 1.0)
    return hetee_error(HETEE_ERR_SCALE, "bound * scale (2^%.1f) does not fit the modulus at level %d", log2(cmax),
                       level);
  return 0;
}

/* Rows 0..level of out from the rounded integers iv (|iv| <= cmax < 2^62). */
static void rows_from_iv(const hetee_ckks_context *ctx, const int64_t *iv, int level, double cmax, uint64_t *out) {
  size_t n = ctx->n;
  int small = cmax < 0x1p51, simd = fft_use_avx512(); /* public */
  (void)simd;
  for (int i = 0; i <= level; i++) {
    const hetee_modulus *m = &ctx->mod[i];
    uint64_t *row = out + (size_t)i * n;
#ifdef CKKS_FFT_AVX512
    if (simd) {
      if (small) round_row_small_avx512(iv, m->q, row, n);
      else round_row_i62_avx512(iv, m, row, n);
      continue;
    }
#endif
    if (small) round_row_small(iv, m->q, row, n);
    else
      for (size_t k = 0; k < n; k++) row[k] = ckks_from_i64(iv[k], m);
  }
}

int ckks_round_to_rns_bounded(const hetee_ckks_context *ctx, double *coef, int level, double cmax, uint64_t *out) {
  size_t n = ctx->n;
  int rc = check_cmax(ctx, level, cmax);
  if (rc) return rc;
  for (size_t k = 0; k < n; k++) coef[k] = clamp_ct(coef[k], cmax);
  if (cmax >= 0x1p62) { /* public */
    int K = 1;
    while (K < CHUNK_MAX && cmax >= ldexp(1.0, 52 * (K - 1) + 50)) K++;
#ifdef CKKS_FFT_AVX512
    if (K <= CHUNK_SIMD_MAX && fft_use_avx512() && (n & 7) == 0) { /* public */
      round_rows_kk_avx512(ctx, coef, level, K, out);
      return 0;
    }
#endif
    round_rows_chunked(ctx, coef, level, K, out);
    return 0;
  }
  int64_t *iv = ckks_tmp_alloc(n * sizeof *iv);
  if (!iv) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
  for (size_t k = 0; k < n; k++) iv[k] = (int64_t)llrint(coef[k]);
  rows_from_iv(ctx, iv, level, cmax, out);
  ckks_tmp_free(iv, n * sizeof *iv, 1);
  return 0;
}

int ckks_const_to_rns(const hetee_ckks_context *ctx, double v, int level, uint64_t *res) {
  if (!isfinite(v)) return hetee_error(HETEE_ERR_SCALE, "constant * scale is not finite");
  if (v != 0 && log2(fabs(v)) >= level_half_log2(ctx, level) - 1.0)
    return hetee_error(HETEE_ERR_SCALE, "constant * scale (2^%.1f) does not fit the modulus at level %d",
                       log2(fabs(v)), level);
  big_to_rns(ctx, v, level, res, 1);
  return 0;
}

/* vmax > 0: bounded encoding (hetee_ckks_encode_real_bounded). */
static int encode_common(const hetee_ckks_context *ctx, double complex *z, double scale, int level, double vmax,
                         hetee_ckks_plaintext *out) {
  size_t n = ctx->n, slots = n / 2;
  int rc = 0;
  double *coef = NULL;
  /* inverse FFT stages; the bit reversal and the 1/n (a power of two, so
   * exact) are folded into this copy */
  fft_inv_core(ctx, (double *)z, slots, fft_use_avx512());
  coef = ckks_tmp_alloc(n * sizeof(double));
  if (!coef) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
  const double *zd = (const double *)z;
  double s = scale / (double)slots;
  for (size_t k = 0; k < slots; k++) {
    size_t r = ctx->bitrev[k];
    coef[k] = zd[2 * r] * s;
    coef[k + slots] = zd[2 * r + 1] * s;
  }
  if ((rc = ckks_pt_reserve(ctx, out, level))) goto err;
  /* |coefficient| <= max |slot| * scale; the margin covers the FFT's
   * rounding */
  if ((rc = vmax > 0 ? ckks_round_to_rns_bounded(ctx, coef, level, vmax * scale * (1.0 + 0x1p-30) + 1.0, out->data)
                     : ckks_round_to_rns(ctx, coef, level, out->data))) {
    out->level = -1;
    goto err;
  }
  for (int i = 0; i <= level; i++) hetee_ntt_forward(ctx->ntt[i], out->data + (size_t)i * n);
  out->scale = scale;
err:
  /* the coefficients are the (possibly secret) message: wipe */
  ckks_tmp_free(coef, n * sizeof(double), 1);
  return rc;
}

static int check_encode_args(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level,
                             const hetee_ckks_plaintext *out) {
  if (!ctx || (!v && n) || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (n > ctx->n / 2) return hetee_error(HETEE_ERR_INVALID_ARG, "%zu values exceed %zu slots", n, ctx->n / 2);
  if (!(isfinite(scale) && scale > 0)) return hetee_error(HETEE_ERR_SCALE, "scale must be finite and > 0");
  if (level < 0 || level >= ctx->nq)
    return hetee_error(HETEE_ERR_LEVEL, "level %d outside [0, %d]", level, ctx->nq - 1);
  return 0;
}

int hetee_ckks_encode_real(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level,
                           hetee_ckks_plaintext *out) {
  int rc = check_encode_args(ctx, v, n, scale, level, out);
  if (rc) return rc;
  double complex *z = calloc(ctx->n / 2, sizeof *z);
  if (!z) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
  for (size_t j = 0; j < n; j++) z[j] = v[j];
  rc = encode_common(ctx, z, scale, level, 0, out);
  sodium_memzero(z, ctx->n / 2 * sizeof *z);
  free(z);
  return rc;
}

int hetee_ckks_encode_complex(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level,
                              hetee_ckks_plaintext *out) {
  int rc = check_encode_args(ctx, v, n, scale, level, out);
  if (rc) return rc;
  double complex *z = calloc(ctx->n / 2, sizeof *z);
  if (!z) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
  for (size_t j = 0; j < n; j++) z[j] = v[2 * j] + I * v[2 * j + 1];
  rc = encode_common(ctx, z, scale, level, 0, out);
  sodium_memzero(z, ctx->n / 2 * sizeof *z);
  free(z);
  return rc;
}

int hetee_ckks_encode_real_bounded(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level,
                                   double vmax, hetee_ckks_plaintext *out) {
  int rc = check_encode_args(ctx, v, n, scale, level, out);
  if (rc) return rc;
  if (!(isfinite(vmax) && vmax > 0 && vmax <= 0x1p1000 / scale))
    return hetee_error(HETEE_ERR_SCALE, "value bound must be finite, > 0 and at most 2^1000 / scale");
  double complex *z = ckks_tmp_alloc(ctx->n / 2 * sizeof *z);
  if (!z) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
  memset(z, 0, ctx->n / 2 * sizeof *z);
  for (size_t j = 0; j < n; j++) z[j] = clamp_ct(v[j], vmax);
  rc = encode_common(ctx, z, scale, level, vmax, out);
  ckks_tmp_free(z, ctx->n / 2 * sizeof *z, 1);
  return rc;
}

/* ---- decoding: centered CRT with machine-word products --------------------
 *
 * For x given by residues x_i mod q_i (i <= l), Q = q_0...q_l:
 *   y_i = [x_i (Q/q_i)^-1]_{q_i},   S = sum_i y_i / q_i,   v = round(S),
 *   x_c = sum_i y_i (Q/q_i) - v Q   is the centered representative
 * (|x_c| <= Q/2; the fractional part S - v is x_c / Q; Halevi–Polyakov–Shoup,
 * CT-RSA 2019, take v from S in floating point the same way). Evaluating
 * x_c itself is where the cancellation is: it is far smaller than Q. So:
 *  - X = x_c mod 2^(64w) exactly, in w 64-bit limbs (y_i times the public
 *    constant (Q/q_i) mod 2^(64w), plus v times -Q mod 2^(64w)), read as a
 *    signed w-limb integer X_s;
 *  - A = Q (S - v) in double approximates x_c within Q (4l + 8) 2^-53;
 *  - x_c = X_s + k 2^(64w) with k = round((A - X_s) / 2^(64w)), exact as
 *    long as that approximation error stays below 2^(64w - 3): w is the
 *    smallest count with 64w >= log2 Q + log2(4l + 8) - 50 (a public
 *    function of the level; w = 1 for a 100-bit level, 2 for 140 bits,
 *    4 for 300, 10 for 620).
 * v is exact unless |x_c| is within Q (4l+8) 2^-53 of Q/2, where the other
 * representative x_c -+ Q comes out (both are the same overflow). The
 * result is X_s (sign and magnitude, Horner in double from the top limb:
 * relative error below 2w 2^-53, no cancellation) plus k 2^(64w) (k = 0
 * unless |x_c| >= 2^(64w-1)). Cost per coefficient: l+1 Shoup products for
 * y (vectorised by the ring layer), l+1 double products for S and
 * (l+2) w word products (w = 1, 2: native 64/128-bit code), against
 * ~l^2/2 modular products and l^2/2 modular subtractions for Garner's mixed
 * radix (what this replaced). O(l) while w stays 1-2 (levels up to ~175
 * bits); for long chains w grows with log2 Q / 64, so the count is still
 * quadratic in l there, but in single multiply-adds. No branch or index
 * depends on the values. Magnitudes beyond 2^1023 saturate (they do not
 * fit a double). */

#define CRT_MAX_LIMBS 64 /* 64 primes of 61 bits need 59 limbs */

typedef struct crt_plan {
  int nr, w;                  /* rows, limbs */
  uint64_t *hat;              /* [nr][w]: (Q/q_i) mod 2^(64w) */
  uint64_t negq[CRT_MAX_LIMBS]; /* -Q mod 2^(64w) */
  uint64_t hat_inv[CKKS_MAX_PRIMES];
  double inv_q[CKKS_MAX_PRIMES];
  double q_scaled;            /* Q / 2^(64w) */
  double two_w;               /* 2^(64w) (2^1023 at most) */
} crt_plan;

/* acc (w limbs) *= m, mod 2^(64w). */
static void limbs_mul_small(uint64_t *acc, int w, uint64_t m) {
  unsigned __int128 carry = 0;
  for (int k = 0; k < w; k++) {
    unsigned __int128 t = (unsigned __int128)acc[k] * m + carry;
    acc[k] = (uint64_t)t;
    carry = t >> 64;
  }
}

/* Public constants of the level (O(l^2 w) word operations per call). */
static int crt_plan_init(const hetee_ckks_context *ctx, int level, crt_plan *p) {
  int nr = level + 1;
  double log2q = 0;
  for (int i = 0; i < nr; i++) log2q += log2((double)ctx->mod[i].q);
  int w = (int)ceil((log2q + log2(4.0 * level + 8.0) - 50.0) / 64.0);
  if (w < 1) w = 1;
  if (w > CRT_MAX_LIMBS) return hetee_error(HETEE_ERR_INTERNAL, "decoder: %d limbs", w);
  p->nr = nr;
  p->w = w;
  p->hat = malloc((size_t)nr * (size_t)w * 8);
  if (!p->hat) return hetee_error(HETEE_ERR_NOMEM, "decoder constants");
  /* Q / 2^(64w) as a double, normalised as it goes (Q may exceed 2^1023) */
  double mant = 1.0;
  int ex = 0;
  for (int i = 0; i < nr; i++) {
    int e;
    mant = frexp(mant * (double)ctx->mod[i].q, &e);
    ex += e;
  }
  p->q_scaled = ldexp(mant, ex - 64 * w);
  p->two_w = ldexp(1.0, 64 * w < 1023 ? 64 * w : 1023);
  memset(p->negq, 0, sizeof p->negq);
  p->negq[0] = 1;
  for (int i = 0; i < nr; i++) {
    const hetee_modulus *mi = &ctx->mod[i];
    uint64_t *h = p->hat + (size_t)i * w, prod = 1;
    memset(h, 0, (size_t)w * 8);
    h[0] = 1;
    for (int j = 0; j < nr; j++) {
      if (j == i) continue;
      limbs_mul_small(h, w, ctx->mod[j].q);
      prod = hetee_mod_mul(prod, hetee_mod_reduce64(ctx->mod[j].q, mi), mi);
    }
    p->hat_inv[i] = prod == 1 ? 1 : hetee_mod_inv(prod, mi); /* 1 at level 0: no exponentiation per decryption */
    p->inv_q[i] = 1.0 / (double)mi->q;
    limbs_mul_small(p->negq, w, mi->q);
  }
  /* two's complement: -Q */
  unsigned __int128 c = 1;
  for (int k = 0; k < w; k++) {
    c += (uint64_t)~p->negq[k];
    p->negq[k] = (uint64_t)c;
    c >>= 64;
  }
  return 0;
}

/* uint64 -> double without the sign test gcc emits for unsigned
 * conversions (a branch on the value): two exact signed conversions, one
 * rounding. */
static inline double u64_to_double(uint64_t x) {
  return (double)(int64_t)(x >> 32) * 0x1p32 + (double)(int64_t)(x & 0xffffffffu);
}

/* One coefficient: y[i * stride] are the y_i; acc is w limbs of scratch
 * (wiped by the caller). Inlined with a constant w for small w. */
static inline __attribute__((always_inline)) double crt_compose(const crt_plan *p, const uint64_t *y,
                                                                size_t stride, const int w, uint64_t *acc) {
  const int nr = p->nr;
  double s = 0;
  for (int i = 0; i < nr; i++) s += (double)(int64_t)y[(size_t)i * stride] * p->inv_q[i];
  int64_t v = (int64_t)(s + 0.5); /* s >= 0: floor(s + 1/2) */
  double f = s - (double)v;
  unsigned __int128 cv = 0; /* acc = v * (-Q) mod 2^(64w) */
  for (int k = 0; k < w; k++) {
    cv += (unsigned __int128)p->negq[k] * (uint64_t)v;
    acc[k] = (uint64_t)cv;
    cv >>= 64;
  }
  for (int i = 0; i < nr; i++) {
    uint64_t m = y[(size_t)i * stride];
    const uint64_t *h = p->hat + (size_t)i * w;
    unsigned __int128 carry = 0;
    for (int k = 0; k < w - 1; k++) {
      unsigned __int128 t = (unsigned __int128)h[k] * m + acc[k] + carry;
      acc[k] = (uint64_t)t;
      carry = t >> 64;
    }
    acc[w - 1] += h[w - 1] * m + (uint64_t)carry; /* mod 2^(64w): the top limb's carry is dropped */
  }
  /* X_s / 2^(64w) from the top limbs (for k) */
  double top = (double)(int64_t)acc[w - 1] * 0x1p-64;
  if (w > 1) top += u64_to_double(acc[w - 2]) * 0x1p-128; /* public branch on w */
  /* sign and magnitude, branch-free */
  uint64_t neg = (uint64_t)0 - (acc[w - 1] >> 63);
  unsigned __int128 c = neg & 1;
  for (int k = 0; k < w; k++) {
    c += acc[k] ^ neg;
    acc[k] = (uint64_t)c;
    c >>= 64;
  }
  double d = 0;
  for (int k = w - 1; k >= 0; k--) d = d * 0x1p64 + u64_to_double(acc[k]);
  double sgn = 1.0 - 2.0 * (double)(neg & 1);
  /* round to nearest (|.| < 2^47); nearbyint() is a libm call without
   * SSE4.1 */
  double kk = (f * p->q_scaled - top + 0x1.8p52) - 0x1.8p52;
  return sgn * d + kk * p->two_w;
}

/* w = 1 and w = 2 with native 64/128-bit arithmetic (same algorithm). */
static inline double crt_compose1(const crt_plan *p, const uint64_t *y, size_t stride) {
  const int nr = p->nr;
  double s = 0;
  uint64_t x = 0;
  for (int i = 0; i < nr; i++) {
    uint64_t yi = y[(size_t)i * stride];
    s += (double)(int64_t)yi * p->inv_q[i];
    x += yi * p->hat[i];
  }
  int64_t v = (int64_t)(s + 0.5);
  double f = s - (double)v;
  x += (uint64_t)v * p->negq[0];
  double xs = (double)(int64_t)x;
  double kk = (f * p->q_scaled - xs * 0x1p-64 + 0x1.8p52) - 0x1.8p52;
  return xs + kk * p->two_w;
}

static inline double crt_compose2(const crt_plan *p, const uint64_t *y, size_t stride) {
  const int nr = p->nr;
  double s = 0;
  unsigned __int128 x = 0;
  for (int i = 0; i < nr; i++) {
    uint64_t yi = y[(size_t)i * stride];
    s += (double)(int64_t)yi * p->inv_q[i];
    /* low limb product in full, high limb product mod 2^64 */
    x += (unsigned __int128)yi * p->hat[2 * i] + ((unsigned __int128)(yi * p->hat[2 * i + 1]) << 64);
  }
  int64_t v = (int64_t)(s + 0.5);
  double f = s - (double)v;
  x += (unsigned __int128)(uint64_t)v * p->negq[0] + ((unsigned __int128)((uint64_t)v * p->negq[1]) << 64);
  uint64_t hi = (uint64_t)(x >> 64);
  double top = (double)(int64_t)hi * 0x1p-64 + u64_to_double((uint64_t)x) * 0x1p-128;
  unsigned __int128 neg = (unsigned __int128)0 - (unsigned __int128)(hi >> 63);
  unsigned __int128 mag = (x ^ neg) - neg;
  double d = u64_to_double((uint64_t)(mag >> 64)) * 0x1p64 + u64_to_double((uint64_t)mag);
  double sgn = 1.0 - 2.0 * (double)(hi >> 63);
  double kk = (f * p->q_scaled - top + 0x1.8p52) - 0x1.8p52;
  return sgn * d + kk * p->two_w;
}

/* All coefficients: z (bit-reversed order) = x / scale. */
static inline __attribute__((always_inline)) void crt_rows(const crt_plan *p, const uint64_t *rows, size_t n,
                                                           const uint32_t *bitrev, double inv, double *zd,
                                                           const int w, uint64_t *acc) {
  size_t slots = n / 2;
  for (size_t k = 0; k < slots; k++) {
    size_t r = bitrev[k];
    zd[2 * r] = crt_compose(p, rows + k, n, w, acc) * inv;
    zd[2 * r + 1] = crt_compose(p, rows + k + slots, n, w, acc) * inv;
  }
}

#ifdef CKKS_FFT_AVX512
#define AVX512DQ_FN __attribute__((target("avx512f,avx512dq")))

/* High 64 bits of the 64 x 64-bit products a * b (four 32-bit products). */
AVX512DQ_FN static inline __m512i mulhi64(__m512i a, __m512i b, __m512i b_hi) {
  const __m512i m32 = _mm512_set1_epi64(0xffffffffLL);
  __m512i a_hi = _mm512_srli_epi64(a, 32);
  __m512i p00 = _mm512_mul_epu32(a, b), p01 = _mm512_mul_epu32(a, b_hi);
  __m512i p10 = _mm512_mul_epu32(a_hi, b), p11 = _mm512_mul_epu32(a_hi, b_hi);
  __m512i mid = _mm512_add_epi64(_mm512_srli_epi64(p00, 32),
                                 _mm512_add_epi64(_mm512_and_si512(p01, m32), _mm512_and_si512(p10, m32)));
  return _mm512_add_epi64(_mm512_add_epi64(p11, _mm512_srli_epi64(mid, 32)),
                          _mm512_add_epi64(_mm512_srli_epi64(p01, 32), _mm512_srli_epi64(p10, 32)));
}

/* acc[k] += t, counting the carry out in cnt[k]. */
AVX512DQ_FN static inline void add_limb(__m512i *acc, __m512i *cnt, int k, __m512i t) {
  __m512i nl = _mm512_add_epi64(acc[k], t);
  cnt[k] = _mm512_mask_add_epi64(cnt[k], _mm512_cmplt_epu64_mask(nl, t), cnt[k], _mm512_set1_epi64(1));
  acc[k] = nl;
}

/* crt_compose for 8 coefficients y[i * stride + 0..7], w limbs (inlined
 * with a constant w for w <= 4): the same arithmetic, each limb product split
 * into its low word (vpmullq) and high word (four vpmuludq), carries
 * counted per limb and propagated once at the end; unsigned conversions by
 * vcvtuqq2pd, so no value-dependent branch. */
AVX512DQ_FN static inline __attribute__((always_inline)) __m512d crt_compose_avx512(const crt_plan *p,
                                                                                    const uint64_t *y,
                                                                                    size_t stride, const int w) {
  const int nr = p->nr;
  __m512i acc[CRT_MAX_LIMBS], cnt[CRT_MAX_LIMBS];
  if (w < 1 || w > CRT_MAX_LIMBS) __builtin_unreachable(); /* crt_plan_init */
  for (int k = 0; k < w; k++) acc[k] = cnt[k] = _mm512_setzero_si512();
  __m512d s = _mm512_setzero_pd();
  __m512i v = _mm512_setzero_si512();
  for (int i = 0; i <= nr; i++) {
    __m512i m;
    const uint64_t *h;
    if (i < nr) {
      m = _mm512_loadu_si512((const void *)(y + (size_t)i * stride));
      s = _mm512_fmadd_pd(_mm512_cvtepi64_pd(m), _mm512_set1_pd(p->inv_q[i]), s);
      h = p->hat + (size_t)i * w;
    } else { /* the last term: v * (-Q) */
      v = _mm512_cvttpd_epi64(_mm512_add_pd(s, _mm512_set1_pd(0.5)));
      m = v;
      h = p->negq;
    }
    for (int k = 0; k < w; k++) {
      __m512i hk = _mm512_set1_epi64((long long)h[k]);
      add_limb(acc, cnt, k, _mm512_mullo_epi64(m, hk));
      if (k + 1 < w) add_limb(acc, cnt, k + 1, mulhi64(m, hk, _mm512_set1_epi64((long long)(h[k] >> 32))));
    }
  }
  for (int k = 0; k + 1 < w; k++) add_limb(acc, cnt, k + 1, cnt[k]);
  __m512d f = _mm512_sub_pd(s, _mm512_cvtepi64_pd(v));
  /* X_s / 2^(64w) from the top words */
  __m512d top = _mm512_mul_pd(_mm512_cvtepi64_pd(acc[w - 1]), _mm512_set1_pd(0x1p-64));
  if (w > 1) top = _mm512_fmadd_pd(_mm512_cvtepu64_pd(acc[w - 2]), _mm512_set1_pd(0x1p-128), top);
  /* sign and magnitude */
  __mmask8 nm = _mm512_movepi64_mask(acc[w - 1]);
  __m512i neg = _mm512_srai_epi64(acc[w - 1], 63);
  __m512i c = _mm512_srli_epi64(neg, 63);
  __m512d d = _mm512_setzero_pd();
  for (int k = 0; k < w; k++) {
    __m512i t = _mm512_add_epi64(_mm512_xor_si512(acc[k], neg), c);
    c = _mm512_maskz_mov_epi64(_mm512_cmplt_epu64_mask(t, c), _mm512_set1_epi64(1));
    acc[k] = t;
  }
  for (int k = w - 1; k >= 0; k--) d = _mm512_fmadd_pd(d, _mm512_set1_pd(0x1p64), _mm512_cvtepu64_pd(acc[k]));
  d = _mm512_mask_sub_pd(d, nm, _mm512_setzero_pd(), d);
  __m512d kk = _mm512_fmsub_pd(f, _mm512_set1_pd(p->q_scaled), top);
  kk = _mm512_roundscale_pd(kk, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_fmadd_pd(kk, _mm512_set1_pd(p->two_w), d);
}

AVX512DQ_FN static inline __attribute__((always_inline)) void crt_rows_avx512(const crt_plan *p, const uint64_t *rows,
                                                                              size_t n, const uint32_t *bitrev,
                                                                              double inv, double *zd, const int w) {
  size_t slots = n / 2;
  const __m512d vinv = _mm512_set1_pd(inv);
  double re[8], im[8];
  for (size_t k = 0; k < slots; k += 8) {
    _mm512_storeu_pd(re, _mm512_mul_pd(crt_compose_avx512(p, rows + k, n, w), vinv));
    _mm512_storeu_pd(im, _mm512_mul_pd(crt_compose_avx512(p, rows + k + slots, n, w), vinv));
    for (int t = 0; t < 8; t++) {
      size_t r = bitrev[k + (size_t)t];
      zd[2 * r] = re[t];
      zd[2 * r + 1] = im[t];
    }
  }
  sodium_memzero(re, sizeof re);
  sodium_memzero(im, sizeof im);
}

AVX512DQ_FN static void crt_all_avx512(const crt_plan *p, const uint64_t *rows, size_t n, const uint32_t *bitrev,
                                       double inv, double *zd) {
  switch (p->w) { /* public: the level's size */
  case 1: crt_rows_avx512(p, rows, n, bitrev, inv, zd, 1); break;
  case 2: crt_rows_avx512(p, rows, n, bitrev, inv, zd, 2); break;
  case 3: crt_rows_avx512(p, rows, n, bitrev, inv, zd, 3); break;
  case 4: crt_rows_avx512(p, rows, n, bitrev, inv, zd, 4); break;
  default: crt_rows_avx512(p, rows, n, bitrev, inv, zd, p->w); break;
  }
}
#endif

static void crt_all(const crt_plan *p, const uint64_t *rows, size_t n, const uint32_t *bitrev, double inv,
                    double *zd) {
  uint64_t acc[CRT_MAX_LIMBS];
  size_t slots = n / 2;
#ifdef CKKS_FFT_AVX512
  if (slots % 8 == 0 && fft_use_avx512()) {
    crt_all_avx512(p, rows, n, bitrev, inv, zd);
    return;
  }
#endif
  switch (p->w) { /* public: the level's size */
  case 1:
    for (size_t k = 0; k < slots; k++) {
      size_t r = bitrev[k];
      zd[2 * r] = crt_compose1(p, rows + k, n) * inv;
      zd[2 * r + 1] = crt_compose1(p, rows + k + slots, n) * inv;
    }
    break;
  case 2:
    for (size_t k = 0; k < slots; k++) {
      size_t r = bitrev[k];
      zd[2 * r] = crt_compose2(p, rows + k, n) * inv;
      zd[2 * r + 1] = crt_compose2(p, rows + k + slots, n) * inv;
    }
    break;
  case 3: crt_rows(p, rows, n, bitrev, inv, zd, 3, acc); break;
  case 4: crt_rows(p, rows, n, bitrev, inv, zd, 4, acc); break;
  default: crt_rows(p, rows, n, bitrev, inv, zd, p->w, acc); break;
  }
  sodium_memzero(acc, sizeof acc);
}

static int decode_common(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt, double complex **zout) {
  if (!ctx || !pt) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = ckks_check_ctx(ctx, pt->fp, "plaintext");
  if (rc) return rc;
  if (pt->level < 0 || pt->level >= ctx->nq) return hetee_error(HETEE_ERR_LEVEL, "plaintext is empty");
  size_t n = ctx->n, slots = n / 2;
  int level = pt->level;
  crt_plan plan = {0};
  /* z first: it outlives rows (temporaries are released in stack order) */
  double complex *z = ckks_tmp_alloc(slots * sizeof(double complex));
  uint64_t *rows = z ? ckks_tmp_alloc((size_t)(level + 1) * n * 8) : NULL;
  if (!rows || !z) {
    rc = hetee_error(HETEE_ERR_NOMEM, "decoder buffers");
    goto err;
  }
  if ((rc = crt_plan_init(ctx, level, &plan))) goto err;
  for (int i = 0; i <= level; i++) {
    uint64_t *r = rows + (size_t)i * n;
    hetee_ntt_inverse_add(ctx->ntt[i], pt->data + (size_t)i * n, r, 0);
    hetee_vec_mul_scalar(&ctx->mod[i], r, plan.hat_inv[i], r, n);
  }
  /* CRT, / scale, folded into the FFT's bit-reversed input order */
  double *zd = (double *)z;
  crt_all(&plan, rows, n, ctx->bitrev, 1.0 / pt->scale, zd);
  fft_fwd_core(ctx, zd, slots, fft_use_avx512());
  *zout = z;
  z = NULL;
err:
  ckks_tmp_free(rows, (size_t)(level + 1) * n * 8, 1);
  free(plan.hat);
  ckks_tmp_free(z, slots * sizeof(double complex), 1);
  return rc;
}

int hetee_ckks_decode_real(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt, double *out, size_t n) {
  if (!out && n) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL output");
  if (ctx && n > ctx->n / 2) return hetee_error(HETEE_ERR_INVALID_ARG, "%zu values exceed the slots", n);
  double complex *z = NULL;
  int rc = decode_common(ctx, pt, &z);
  if (rc) return rc;
  for (size_t j = 0; j < n; j++) out[j] = creal(z[j]);
  ckks_tmp_free(z, ctx->n / 2 * sizeof *z, 1);
  return 0;
}

int hetee_ckks_decode_complex(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt, double *out, size_t n) {
  if (!out && n) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL output");
  if (ctx && n > ctx->n / 2) return hetee_error(HETEE_ERR_INVALID_ARG, "%zu values exceed the slots", n);
  double complex *z = NULL;
  int rc = decode_common(ctx, pt, &z);
  if (rc) return rc;
  for (size_t j = 0; j < n; j++) {
    out[2 * j] = creal(z[j]);
    out[2 * j + 1] = cimag(z[j]);
  }
  ckks_tmp_free(z, ctx->n / 2 * sizeof *z, 1);
  return 0;
}

/* ---- coefficient encoding ---------------------------------------------------
 * The values are the polynomial's coefficients (no canonical embedding): the
 * linear layers of hemat multiply such polynomials, so that one ct x ct
 * product computes a whole block of a matrix product or a convolution. */

int ckks_coeffs_check(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level,
                      int bounded, double vmax) {
  if (!ctx || (!v && n)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (n > ctx->n) return hetee_error(HETEE_ERR_INVALID_ARG, "%zu values exceed %zu coefficients", n, ctx->n);
  if (!(isfinite(scale) && scale > 0)) return hetee_error(HETEE_ERR_SCALE, "scale must be finite and > 0");
  if (level < 0 || level >= ctx->nq)
    return hetee_error(HETEE_ERR_LEVEL, "level %d outside [0, %d]", level, ctx->nq - 1);
  if (bounded && !(isfinite(vmax) && vmax > 0 && vmax <= 0x1p1000 / scale))
    return hetee_error(HETEE_ERR_SCALE, "value bound must be finite, > 0 and at most 2^1000 / scale");
  return 0;
}

int ckks_coeffs_round(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level, int bounded,
                      double vmax, uint64_t *out) {
  size_t N = ctx->n;
  int rc = 0;
#ifdef CKKS_FFT_AVX512
  /* bounded below 2^62: clamp, scale, clamp and round in one vector pass,
   * straight to the integers (the same values as the path below) */
  double cmax = vmax * scale * (1.0 + 0x1p-30) + 1.0;
  if (bounded && fft_use_avx512() && cmax < 0x1p62) { /* public */
    if ((rc = check_cmax(ctx, level, cmax))) return rc;
    int64_t *iv = ckks_tmp_alloc(N * sizeof *iv);
    if (!iv) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
    coeffs_bounded_avx512(v, n, N, vmax, scale, cmax, iv);
    rows_from_iv(ctx, iv, level, cmax, out);
    ckks_tmp_free(iv, N * sizeof *iv, 1);
    return 0;
  }
  /* bounded in [2^62, 2^154) (scales above 2^40): clamp, scale and clamp
   * in one vector pass, then two or three 52-bit chunks (the same values as
   * the path below) */
  if (bounded && fft_use_avx512() && cmax < 0x1p154 && (N & 7) == 0) { /* public */
    if ((rc = check_cmax(ctx, level, cmax))) return rc;
    double *cf = ckks_tmp_alloc(N * sizeof *cf);
    if (!cf) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
    coeffs_clamp_avx512(v, n, N, vmax, scale, cmax, cf);
    round_rows_kk_avx512(ctx, cf, level, cmax < 0x1p102 ? 2 : 3, out);
    ckks_tmp_free(cf, N * sizeof *cf, 1);
    return 0;
  }
#endif
  double *coef = ckks_tmp_alloc(N * sizeof(double));
  if (!coef) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
  memset(coef, 0, N * sizeof(double));
  if (bounded) {
    for (size_t k = 0; k < n; k++) coef[k] = clamp_ct(v[k], vmax) * scale;
    rc = ckks_round_to_rns_bounded(ctx, coef, level, vmax * scale * (1.0 + 0x1p-30) + 1.0, out);
  } else {
    for (size_t k = 0; k < n; k++) coef[k] = v[k] * scale;
    rc = ckks_round_to_rns(ctx, coef, level, out);
  }
  ckks_tmp_free(coef, N * sizeof(double), 1); /* the (possibly secret) message */
  return rc;
}

int ckks_coeffs_round_noise(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level,
                            double vmax, const int8_t *e, uint64_t *out) {
#ifdef CKKS_FFT_AVX512
  /* the bounded one-pass path of ckks_coeffs_round with the noise added to
   * the integers before they are reduced: rows = (round(v scale) + e) mod
   * q_i, the residues of rounding then adding e mod q_i (|e| <= K) */
  size_t N = ctx->n;
  double cmax = vmax * scale * (1.0 + 0x1p-30) + 1.0, cmax_e = cmax + HETEE_CBD_K;
  if (fft_use_avx512() && cmax_e < 0x1p62 && !check_cmax(ctx, level, cmax) &&
      !check_cmax(ctx, level, cmax_e)) { /* public */
    int64_t *iv = ckks_tmp_alloc(N * sizeof *iv);
    if (!iv) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
    coeffs_bounded_avx512(v, n, N, vmax, scale, cmax, iv);
    for (size_t k = 0; k < N; k++) iv[k] += e[k];
    rows_from_iv(ctx, iv, level, cmax_e, out);
    ckks_tmp_free(iv, N * sizeof *iv, 1);
    return 1;
  }
#else
  (void)ctx, (void)v, (void)n, (void)scale, (void)level, (void)vmax, (void)e, (void)out;
#endif
  return 0;
}

int ckks_round_noise_scaled(const hetee_ckks_context *ctx, double *coef, int level, double cmax, const int8_t *e,
                            uint64_t *out) {
#ifdef CKKS_FFT_AVX512
  /* ckks_round_to_rns_bounded's one-word path in one vector pass (clamp at
   * cmax, round: coeffs_bounded_avx512 with vmax = cmax and scale 1, whose
   * second clamp is then a no-op), e added to the integers before the
   * per-prime reduction: rows = (round(clamp(coef)) + e) mod q_i, the
   * residues of rounding then adding e mod q_i */
  size_t N = ctx->n;
  double cmax_e = cmax + HETEE_CBD_K;
  if (fft_use_avx512() && cmax_e < 0x1p62 && !check_cmax(ctx, level, cmax) &&
      !check_cmax(ctx, level, cmax_e)) { /* public */
    int64_t *iv = ckks_tmp_alloc(N * sizeof *iv);
    if (!iv) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
    coeffs_bounded_avx512(coef, N, N, cmax, 1.0, cmax, iv);
    for (size_t k = 0; k < N; k++) iv[k] += e[k];
    rows_from_iv(ctx, iv, level, cmax_e, out);
    ckks_tmp_free(iv, N * sizeof *iv, 1);
    return 1;
  }
#else
  (void)ctx, (void)coef, (void)level, (void)cmax, (void)e, (void)out;
#endif
  return 0;
}

static int encode_coeffs_common(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level,
                                int bounded, double vmax, hetee_ckks_plaintext *out) {
  if (!out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = ckks_coeffs_check(ctx, v, n, scale, level, bounded, vmax);
  if (rc || (rc = ckks_pt_reserve(ctx, out, level))) return rc;
  if ((rc = ckks_coeffs_round(ctx, v, n, scale, level, bounded, vmax, out->data))) {
    out->level = -1;
    return rc;
  }
  size_t N = ctx->n;
  for (int i = 0; i <= level; i++) hetee_ntt_forward(ctx->ntt[i], out->data + (size_t)i * N);
  out->scale = scale;
  return 0;
}

int hetee_ckks_encode_coeffs(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level,
                             hetee_ckks_plaintext *out) {
  return encode_coeffs_common(ctx, v, n, scale, level, 0, 0, out);
}

int hetee_ckks_encode_coeffs_bounded(const hetee_ckks_context *ctx, const double *v, size_t n, double scale,
                                     int level, double vmax, hetee_ckks_plaintext *out) {
  return encode_coeffs_common(ctx, v, n, scale, level, 1, vmax, out);
}

static int decode_idx_check(const hetee_ckks_context *ctx, double scale, const uint32_t *idx, size_t n) {
  if (!(isfinite(scale) && scale > 0)) return hetee_error(HETEE_ERR_SCALE, "scale must be finite and > 0");
  size_t N = ctx->n;
  if (!idx && n > N) return hetee_error(HETEE_ERR_INVALID_ARG, "%zu values exceed %zu coefficients", n, N);
  if (!idx) return 0;
  uint32_t bad = 0; /* one pass without an exit per index (vectorised); then the first one named */
  for (size_t j = 0; j < n; j++) bad |= (uint32_t)(idx[j] >= N);
  for (size_t j = 0; bad && j < n; j++)
    if (idx[j] >= N) return hetee_error(HETEE_ERR_INVALID_ARG, "coefficient index %u >= N = %zu", idx[j], N);
  return 0;
}

#ifdef CKKS_FFT_AVX512
/* decode_idx for n >= 8 on AVX-512: the residues of 8 named coefficients
 * gathered into a small block (public indices), then the vector CRT
 * (crt_compose_avx512, as decoding all coefficients does); returns how many
 * values it wrote (a multiple of 8). */
AVX512DQ_FN static size_t decode_idx_avx512(const crt_plan *plan, const uint64_t *rows, size_t N, double inv,
                                            const uint32_t *idx, size_t n, double *out) {
  uint64_t blk[CKKS_MAX_PRIMES * 8];
  const int nr = plan->nr;
  const __m512d vinv = _mm512_set1_pd(inv);
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    /* one gather per row (the indices are public and < N: decode_idx_check)
     * instead of 8 scalar stores that the block's vector load cannot forward */
    for (int i = 0; i < nr; i++) {
      const uint64_t *row = rows + (size_t)i * N;
      __m512i g = idx ? _mm512_i32gather_epi64(_mm256_loadu_si256((const __m256i *)(idx + j)), (const void *)row, 8)
                      : _mm512_loadu_si512((const void *)(row + j));
      _mm512_storeu_si512((void *)(blk + i * 8), g);
    }
    __m512d x;
    switch (plan->w) { /* public: the level's size */
    case 1: x = crt_compose_avx512(plan, blk, 8, 1); break;
    case 2: x = crt_compose_avx512(plan, blk, 8, 2); break;
    default: x = crt_compose_avx512(plan, blk, 8, plan->w); break;
    }
    _mm512_storeu_pd(out + j, _mm512_mul_pd(x, vinv));
  }
  sodium_memzero(blk, sizeof blk);
  return j;
}
#endif

/* rows: level+1 rows in coefficient form, already multiplied by the CRT
 * constants (Q/q_i)^-1; out[j] = centred coefficient idx[j] / scale. */
static void decode_idx(const crt_plan *plan, const uint64_t *rows, size_t N, double scale, const uint32_t *idx,
                       size_t n, double *out) {
  uint64_t acc[CRT_MAX_LIMBS];
  const double inv = 1.0 / scale;
  size_t j0 = 0;
#ifdef CKKS_FFT_AVX512
  if (fft_use_avx512() && plan->nr <= CKKS_MAX_PRIMES) j0 = decode_idx_avx512(plan, rows, N, inv, idx, n, out);
#endif
  for (size_t j = j0; j < n; j++) {
    size_t k = idx ? idx[j] : j; /* public index */
    double x;
    switch (plan->w) { /* public: the level's size */
    case 1: x = crt_compose1(plan, rows + k, N); break;
    case 2: x = crt_compose2(plan, rows + k, N); break;
    default: x = crt_compose(plan, rows + k, N, plan->w, acc); break;
    }
    out[j] = x * inv;
  }
  sodium_memzero(acc, sizeof acc);
}

int hetee_ckks_decode_coeffs_scaled(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt, double scale,
                                    const uint32_t *idx, size_t n, double *out) {
  if (!ctx || !pt || (!out && n)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = ckks_check_ctx(ctx, pt->fp, "plaintext");
  if (rc) return rc;
  if (pt->level < 0 || pt->level >= ctx->nq) return hetee_error(HETEE_ERR_LEVEL, "plaintext is empty");
  if ((rc = decode_idx_check(ctx, scale, idx, n))) return rc;
  size_t N = ctx->n;
  int level = pt->level;
  crt_plan plan = {0};
  uint64_t *rows = ckks_tmp_alloc((size_t)(level + 1) * N * 8);
  if (!rows) return hetee_error(HETEE_ERR_NOMEM, "decoder buffers");
  if ((rc = crt_plan_init(ctx, level, &plan))) goto err;
  for (int i = 0; i <= level; i++) {
    uint64_t *r = rows + (size_t)i * N;
    hetee_ntt_inverse_add(ctx->ntt[i], pt->data + (size_t)i * N, r, 0);
    hetee_vec_mul_scalar(&ctx->mod[i], r, plan.hat_inv[i], r, N);
  }
  decode_idx(&plan, rows, N, scale, idx, n, out);
err:
  ckks_tmp_free(rows, (size_t)(level + 1) * N * 8, 1);
  free(plan.hat);
  return rc;
}

int hetee_ckks_decrypt_coeffs(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                              const hetee_ckks_ciphertext *ct, double scale, const uint32_t *idx, size_t n,
                              double *out) {
  if (!ctx || !sk || !ct || (!out && n)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc;
  if ((rc = ckks_decrypt_check(ctx, sk, ct)) || (rc = decode_idx_check(ctx, scale, idx, n))) return rc;
  size_t N = ctx->n;
  int level = ct->level;
  crt_plan plan = {0};
  uint64_t *rows = ckks_tmp_alloc((size_t)(level + 1) * N * 8);
  if (!rows) return hetee_error(HETEE_ERR_NOMEM, "decoder buffers");
  if ((rc = crt_plan_init(ctx, level, &plan))) goto err;
  /* per row: decrypt (NTT form), inverse NTT in place, CRT constant: the
   * same residues decrypt + decode_coeffs_scaled compute, so the same
   * doubles come out */
  for (int i = 0; i <= level; i++) {
    uint64_t *r = rows + (size_t)i * N;
    ckks_decrypt_row(ctx, sk, ct, i, r);
    if (plan.hat_inv[i] != 1) /* public: 1 at level 0 (Q = q_0) */
      hetee_ntt_inverse_scaled(ctx->ntt[i], r, plan.hat_inv[i]); /* the constant in the last stage */
    else
      hetee_ntt_inverse(ctx->ntt[i], r);
  }
  decode_idx(&plan, rows, N, scale, idx, n, out);
err:
  ckks_tmp_free(rows, (size_t)(level + 1) * N * 8, 1);
  free(plan.hat);
  return rc;
}

/* ---- decryption of one coset of coefficients (ckks_arena.h) ----
 *
 * m(X) = sum_r X^r m_r(X^d) for d = 2^logd. The NTT row of m holds m(x)
 * for the N roots x of X^N = -1; the d roots with one x^d = y give
 *   sum_{x^d = y} x^-r m(x) = d m_r(y)
 * (the sum of zeta^(j (k - r)) over the d-th roots of unity vanishes
 * unless d | k - r), and the y are the N/d roots of Y^(N/d) = -1: m_r's
 * coefficients, the m_{r + d t}, are an inverse NTT of size N/d of these
 * sums. Per prime: weights w(x) = x^-r / d = NTT(-X^(N-r) / d), the
 * positions whose x^d are equal (in this ring's bit-reversed order: blocks
 * of d consecutive positions; the tables are built only when that holds)
 * and where each block's y sits in the small NTT (sigma). All public. */
struct ckks_coset {
  int logd;
  uint32_t r;
  size_t ns; /* N / d */
  int nt;
  uint64_t *w;      /* [nt][N] weights */
  uint64_t *wp;     /* [nt][N] their Shoup quotients */
  uint32_t *sigma;  /* [nt][ns] small NTT position of block j */
  hetee_ntt_tables *small[CKKS_MAX_PRIMES];
  /* the weights times the key (coset_keyed), made on first use with a key */
  _Atomic(struct coset_kw *) kw;
};

/* Secret (sodium_malloc: locked, guarded, wiped when freed): for the key
 * `key`, q_0's row of s w, its Shoup quotients, s^2 w and its quotients
 * ([4][N]: the only rows used, c0 at listed coefficients being level 0
 * only; all nt rows were made before, three times the products and the
 * memory for nothing). With them a decryption whose c0 is not in
 * the NTT-domain pass (c0 at listed coefficients) computes the coset's
 * weighted row c1 (s w) + c2 (s^2 w) in the pass that computed c1 s + c2
 * s^2, and the pass of Shoup products by w goes (the same residues:
 * both are fully reduced, equal mod q). */
typedef struct coset_kw {
  const hetee_ckks_secret_key *key;
  size_t bytes;
  uint64_t t[]; /* 64-byte aligned by the allocation below */
} coset_kw;

#define KW_HDR 64 /* t starts 64 bytes into the block */

static coset_kw *kw_alloc(size_t words) {
  size_t bytes = KW_HDR + words * 8;
  /* sodium_malloc ends the block at a page end: bytes a multiple of 64 keeps t 64-byte aligned */
  bytes = (bytes + 63) & ~(size_t)63;
  uint8_t *p = sodium_malloc(bytes);
  if (!p) return NULL;
  (void)sodium_mlock(p, bytes);
  coset_kw *k = (coset_kw *)p;
  k->bytes = bytes;
  return k;
}

static uint64_t *kw_rows(coset_kw *k) { return (uint64_t *)((uint8_t *)k + KW_HDR); }

void ckks_coset_free(ckks_coset *c) {
  if (!c) return;
  for (int i = 0; i < c->nt; i++) hetee_ntt_tables_free(c->small[i]);
  hetee_free(c->w);
  hetee_free(c->wp);
  free(c->sigma);
  coset_kw *k = atomic_load(&c->kw);
  if (k) sodium_free(k); /* wipes the key's products */
  free(c);
}

/* The coset's weights times sk's s and s^2 (sq: the key's s^2 rows), made
 * once per coset on first use (threads racing each make them; one copy is
 * kept). NULL when there is no memory, or when the coset's products were
 * made for another key (callers then multiply by w as before). Which
 * branch runs depends only on public state. */
static const uint64_t *coset_keyed(const hetee_ckks_context *ctx, const ckks_coset *cs_c,
                                   const hetee_ckks_secret_key *sk, const uint64_t *sq) {
  ckks_coset *cs = (ckks_coset *)cs_c; /* a cache, not the coset's value */
  coset_kw *k = atomic_load_explicit(&cs->kw, memory_order_acquire);
  if (k) return k->key == sk ? kw_rows(k) : NULL;
  size_t N = ctx->n;
  k = kw_alloc(4 * N);
  if (!k) return NULL;
  k->key = sk;
  uint64_t *t = kw_rows(k);
  const hetee_modulus *m = &ctx->mod[0];
  hetee_vec_mul(m, sk->s, cs->w, t, N);
  hetee_vec_shoup_prep(m, t, t + N, N);
  hetee_vec_mul(m, sq, cs->w, t + 2 * N, N);
  hetee_vec_shoup_prep(m, t + 2 * N, t + 3 * N, N);
  coset_kw *expect = NULL;
  if (!atomic_compare_exchange_strong_explicit(&cs->kw, &expect, k, memory_order_acq_rel, memory_order_acquire)) {
    sodium_free(k); /* another thread's copy won */
    return expect->key == sk ? kw_rows(expect) : NULL;
  }
  return t;
}

int ckks_coset_key(const hetee_ckks_context *ctx, const ckks_coset *cs, const hetee_ckks_secret_key *sk) {
  if (!ctx || !cs || !sk) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = ckks_check_ctx(ctx, sk->fp, "secret key");
  if (rc) return rc;
  const uint64_t *der = ckks_sk_derived(ctx, sk);
  if (!der || !coset_keyed(ctx, cs, sk, der + CKKS_SKD_SQ * (size_t)ctx->nt * ctx->n))
    return hetee_error(HETEE_ERR_NOMEM, "coset key products (no memory, or made for another key)");
  return 0;
}

int ckks_coset_fit(const hetee_ckks_context *ctx, const uint32_t *idx, size_t n, int *logd, uint32_t *r) {
  if (!ctx || !idx || !n || !logd || !r) return 0;
  /* the bits below which every index agrees with the first */
  uint32_t diff = 0;
  for (size_t j = 1; j < n; j++) diff |= idx[j] ^ idx[0];
  int k = diff ? __builtin_ctz(diff) : ctx->log_n;
  if (k > ctx->log_n - CKKS_COSET_MIN_LOGS) k = ctx->log_n - CKKS_COSET_MIN_LOGS;
  if (k < 1) return 0;
  *logd = k;
  *r = idx[0] & (((uint32_t)1 << k) - 1);
  return 1;
}

/* Sorts n (key, value) pairs by key (Shell sort with Ciura's gaps: no
 * qsort, whose glibc version asks the kernel for the memory size, a call
 * the enclave's seccomp filter refuses). Public data. */
static void pairs_sort(uint64_t *p, size_t n) {
  static const size_t gaps[] = {1750, 701, 301, 132, 57, 23, 10, 4, 1};
  for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
    size_t h = gaps[g];
    for (size_t i = h; i < n; i++) {
      uint64_t k = p[2 * i], v = p[2 * i + 1];
      size_t j = i;
      for (; j >= h && p[2 * (j - h)] > k; j -= h) p[2 * j] = p[2 * (j - h)], p[2 * j + 1] = p[2 * (j - h) + 1];
      p[2 * j] = k, p[2 * j + 1] = v;
    }
  }
}

int ckks_coset_new(const hetee_ckks_context *ctx, int logd, uint32_t r, ckks_coset **out) {
  if (!ctx || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  if (logd < 1 || logd > ctx->log_n - CKKS_COSET_MIN_LOGS || r >> logd)
    return hetee_error(HETEE_ERR_INVALID_ARG, "coset %u mod 2^%d outside [0, 2^%d), logN %d", r, logd, logd, ctx->log_n);
  size_t N = ctx->n, d = (size_t)1 << logd, ns = N >> logd, nt = (size_t)ctx->nq; /* decryption: Q's primes */
  int rc = 0;
  ckks_coset *c = calloc(1, sizeof *c);
  uint64_t *xd = hetee_alloc(N * 8), *ys = hetee_alloc(ns * 8), *pair = malloc(ns * 2 * 8);
  if (!c || !xd || !ys || !pair) goto nomem;
  c->logd = logd;
  c->r = r;
  c->ns = ns;
  c->w = hetee_alloc(nt * N * 8);
  c->wp = hetee_alloc(nt * N * 8);
  c->sigma = malloc(nt * ns * sizeof *c->sigma);
  if (!c->w || !c->wp || !c->sigma) goto nomem;
  for (size_t i = 0; i < nt; i++) {
    const hetee_modulus *m = &ctx->mod[i];
    uint64_t *w = c->w + i * N, dinv = hetee_mod_inv(d % m->q, m);
    if ((rc = hetee_ntt_tables_new(ctx->log_n - logd, m->q, &c->small[i]))) goto err;
    c->nt = (int)i + 1;
    /* w = NTT(-X^(N-r) / d) (r > 0), 1 / d everywhere (r = 0) */
    memset(w, 0, N * 8);
    if (r) w[N - r] = m->q - dinv;
    else w[0] = dinv;
    hetee_ntt_forward(ctx->ntt[i], w);
    hetee_vec_shoup_prep(m, w, c->wp + i * N, N);
    /* x^d at every position (NTT(X^d)): equal within each block of d */
    memset(xd, 0, N * 8);
    xd[d] = 1;
    hetee_ntt_forward(ctx->ntt[i], xd);
    for (size_t j = 0; j < ns; j++)
      for (size_t k = 1; k < d; k++)
        if (xd[j * d + k] != xd[j * d]) {
          rc = hetee_error(HETEE_ERR_UNSUPPORTED, "coset decryption: the NTT does not group x^d in blocks");
          goto err;
        }
    /* the small NTT's points (NTT(Y)) and each block's place among them */
    memset(ys, 0, ns * 8);
    ys[1] = 1;
    hetee_ntt_forward(c->small[i], ys);
    for (size_t t = 0; t < ns; t++) pair[2 * t] = ys[t], pair[2 * t + 1] = t;
    pairs_sort(pair, ns);
    for (size_t j = 0; j < ns; j++) {
      size_t lo = 0, hi = ns; /* binary search of xd[j d] */
      uint64_t y = xd[j * d];
      while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (pair[2 * mid] <= y) lo = mid;
        else hi = mid;
      }
      if (pair[2 * lo] != y) {
        rc = hetee_error(HETEE_ERR_INTERNAL, "coset decryption: a block's point is not a root of the small ring");
        goto err;
      }
      c->sigma[i * ns + j] = (uint32_t)pair[2 * lo + 1];
    }
  }
  hetee_free(xd);
  hetee_free(ys);
  free(pair);
  *out = c;
  return 0;
nomem:
  rc = hetee_error(HETEE_ERR_NOMEM, "coset decryption tables");
err:
  hetee_free(xd);
  hetee_free(ys);
  free(pair);
  ckks_coset_free(c);
  return rc;
}

/* a[b d] = sum of a[b d .. b d + d) mod q for every block b: a pairwise
 * tree in place, from the step of half-width h down to 1 (h = d / 2: the
 * whole tree; the other words are left partial). a in [0, q). */
static void block_sums_ref(uint64_t q, uint64_t *a, size_t N, size_t d, size_t h) {
  for (; h; h >>= 1)
    for (size_t b = 0; b < N; b += d)
      for (size_t k = 0; k < h; k++) {
        uint64_t s = a[b + k] + a[b + k + h];
        a[b + k] = s - (q & (0 - (uint64_t)(s >= q))); /* no branch on the value */
      }
}
#ifdef CKKS_FFT_AVX512
/* The same sums: the steps with h >= 8 eight lanes at a time
 * (min(s, s - q) is s mod q for s < 2q), the rest as the reference. */
AVX512_FN static void block_sums_avx512(uint64_t q, uint64_t *a, size_t N, size_t d) {
  const __m512i vq = _mm512_set1_epi64((long long)q);
  size_t h = d >> 1;
  for (; h >= 8; h >>= 1)
    for (size_t b = 0; b < N; b += d)
      for (size_t k = 0; k < h; k += 8) {
        __m512i s = _mm512_add_epi64(_mm512_loadu_si512((const void *)(a + b + k)),
                                     _mm512_loadu_si512((const void *)(a + b + k + h)));
        _mm512_storeu_si512((void *)(a + b + k), _mm512_min_epu64(s, _mm512_sub_epi64(s, vq)));
      }
  block_sums_ref(q, a, N, d, h);
}
#endif

/* One prime's row of the coset path: row = m(x) (NTT form) in, the
 * coefficients r + d t of m (times the CRT constant c) out at their
 * places (the other words of row are left meaningless); small: ns words. */
static void coset_row(const hetee_ckks_context *ctx, const ckks_coset *cs, int i, uint64_t c, uint64_t *row,
                      uint64_t *small, int weighted) {
  const hetee_modulus *m = &ctx->mod[i];
  size_t N = ctx->n, d = (size_t)1 << cs->logd, ns = cs->ns;
  const uint32_t *sg = cs->sigma + (size_t)i * ns;
  if (!weighted) /* public: row already times w (coset_keyed) or not */
    hetee_vec_shoup_dot(m, NULL, row, cs->w + (size_t)i * N, cs->wp + (size_t)i * N, NULL, NULL, NULL, row, N);
#ifdef CKKS_FFT_AVX512
  if (fft_use_avx512())
    block_sums_avx512(m->q, row, N, d);
  else
#endif
    block_sums_ref(m->q, row, N, d, d >> 1);
  for (size_t j = 0; j < ns; j++) small[sg[j]] = row[j * d]; /* public places */
  if (c != 1)
    hetee_ntt_inverse_scaled(cs->small[i], small, c);
  else
    hetee_ntt_inverse(cs->small[i], small);
  for (size_t t = 0; t < ns; t++) row[cs->r + t * d] = small[t];
}

int ckks_coset_holds(const ckks_coset *cs, const uint32_t *idx, size_t n) {
  if (!cs || !idx) return 0;
  uint32_t mask = ((uint32_t)1 << cs->logd) - 1, off = 0;
  for (size_t j = 0; j < n; j++) off |= (idx[j] & mask) ^ cs->r; /* public indices */
  return off == 0;
}

size_t ckks_coset_small_words(const ckks_coset *cs) { return cs ? cs->ns : 0; }

void ckks_coset_coeffs(const hetee_ckks_context *ctx, const ckks_coset *cs, int i, uint64_t *row, uint64_t *small) {
  coset_row(ctx, cs, i, 1, row, small, 0);
}

/* sum[j] = row[idx[j]] + c0[j] mod q, c0[j] read from little-endian bytes;
 * nonzero if some c0[j] >= q (public bytes; sum is then meaningless). No
 * branch on the values (row holds decrypted residues). */
static inline uint64_t ld_le64(const uint8_t *p) {
  uint64_t x = 0;
  for (int b = 0; b < 8; b++) x |= (uint64_t)p[b] << (8 * b);
  return x;
}

static uint64_t c0_at_add(uint64_t q, const uint8_t *c0, const uint64_t *row, const uint32_t *idx, size_t n,
                          uint64_t *sum) {
  uint64_t bad = 0;
  for (size_t j = 0; j < n; j++) {
    uint64_t a = ld_le64(c0 + 8 * j);
    bad |= (uint64_t)(a >= q);
    uint64_t s = row[idx ? idx[j] : j] + a; /* < 2q < 2^64 for a < q; the index is public */
    sum[j] = s - (q & (0 - (uint64_t)(s >= q)));
  }
  return bad;
}

int ckks_decrypt_coeffs_view(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, const ckks_ct_view *v,
                             double scale, const ckks_coset *cs, const uint32_t *idx, size_t n, double *out) {
  if (!ctx || !sk || !v || (!out && n)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc;
  if ((rc = ckks_check_ctx(ctx, sk->fp, "secret key")) || (rc = decode_idx_check(ctx, scale, idx, n))) return rc;
  if (v->level < 0 || v->level >= ctx->nq || v->size < 2 || v->size > 3)
    return hetee_error(HETEE_ERR_INVALID_ARG, "ciphertext view level %d size %d", v->level, v->size);
  const uint64_t *der = ckks_sk_derived(ctx, sk);
  if (!der) return 1;
  size_t N = ctx->n, nt = (size_t)ctx->nt;
  int level = v->level;
  /* the coset path only when every named index is in the coset (public) */
  if (cs && (!idx || !n || cs->nt <= level)) cs = NULL;
  if (cs) {
    uint32_t mask = ((uint32_t)1 << cs->logd) - 1, off = 0;
    for (size_t j = 0; j < n; j++) off |= (idx[j] & mask) ^ cs->r;
    if (off) cs = NULL;
  }
  /* c0 at listed coefficients (public form and count): level 0, one value
   * per named index */
  const int c0at = v->c[0] == NULL;
  if (c0at && (!v->c0at && v->nc0))
    return hetee_error(HETEE_ERR_INVALID_ARG, "ciphertext view without c0");
  if (c0at && level != 0)
    return hetee_error(HETEE_ERR_LEVEL, "c0 at listed coefficients at level %d: only level 0", level);
  if (c0at && v->nc0 != n)
    return hetee_error(HETEE_ERR_FORM, "ciphertext carries %zu c0 coefficients, %zu are read", v->nc0, n);
  crt_plan plan = {0};
  uint64_t bad = 0;
  uint64_t *rows = ckks_tmp_alloc((size_t)(level + 1) * N * 8), *small = NULL, *sum = NULL;
  if (!rows) return hetee_error(HETEE_ERR_NOMEM, "decoder buffers");
  if ((cs && !(small = ckks_tmp_alloc(cs->ns * 8))) || (c0at && n && !(sum = ckks_tmp_alloc(n * 8)))) {
    rc = hetee_error(HETEE_ERR_NOMEM, "decoder buffers");
    goto err;
  }
  if ((rc = crt_plan_init(ctx, level, &plan))) goto err;
  /* per row: c0 + c1 s (+ c2 s^2) straight from the bytes, checked on the
   * way (ckks_decrypt_row's Shoup pass), then as hetee_ckks_decrypt_coeffs
   * (or only the coset's coefficients: the same residues there) */
  /* the coset path with c0 outside the NTT-domain pass: the key's products
   * with the coset's weights, so that pass also applies the weights */
  const uint64_t *kw = cs && c0at ? coset_keyed(ctx, cs, sk, der + CKKS_SKD_SQ * nt * N) : NULL;
  for (int i = 0; i <= level; i++) {
    uint64_t *r = rows + (size_t)i * N;
    size_t off = (size_t)i * N;
    const uint64_t *s = sk->s + off, *sp = der + CKKS_SKD_S_SHOUP * nt * N + off;
    const uint64_t *s2 = der + CKKS_SKD_SQ * nt * N + off, *s2p = der + CKKS_SKD_SQ_SHOUP * nt * N + off;
    if (kw) { /* public: whether the products exist (level 0: i = 0 only) */
      s = kw;
      sp = kw + N;
      s2 = kw + 2 * N;
      s2p = kw + 3 * N;
    }
    bad |= hetee_vec_shoup_dot_le(&ctx->mod[i], c0at ? NULL : v->c[0] + 8 * off, v->c[1] + 8 * off, s, sp,
                                  v->size == 3 ? v->c[2] + 8 * off : NULL, s2, s2p, r, N);
    if (cs)
      coset_row(ctx, cs, i, plan.hat_inv[i], r, small, kw != NULL);
    else if (plan.hat_inv[i] != 1) /* public: 1 at level 0 (Q = q_0) */
      hetee_ntt_inverse_scaled(ctx->ntt[i], r, plan.hat_inv[i]);
    else
      hetee_ntt_inverse(ctx->ntt[i], r);
  }
  /* the range check is on the host's bytes (public): refused before any
   * value is decoded */
  if (c0at) /* level 0 (Q = q_0, no CRT constant): c0's coefficients added where they are read */
    bad |= c0_at_add(ctx->mod[0].q, v->c0at, rows, idx, n, sum);
  if (bad) {
    rc = hetee_error(HETEE_ERR_RANGE, "ciphertext residue >= its prime");
    goto err;
  }
  if (c0at)
    decode_idx(&plan, sum, N, scale, NULL, n, out);
  else
    decode_idx(&plan, rows, N, scale, idx, n, out);
err:
  if (sum) ckks_tmp_free(sum, n * 8, 1);
  if (small) ckks_tmp_free(small, cs->ns * 8, 1);
  ckks_tmp_free(rows, (size_t)(level + 1) * N * 8, 1);
  free(plan.hat);
  return rc;
}

int hetee_ckks_decode_coeffs(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt, const uint32_t *idx,
                             size_t n, double *out) {
  if (!pt) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  return hetee_ckks_decode_coeffs_scaled(ctx, pt, pt->scale, idx, n, out);
}

/* ---- fused enclave operations (ckks_arena.h) ---- */

int ckks_decrypt_decode_real(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                             const hetee_ckks_ciphertext *ct, double scale, double *out, size_t n) {
  if (!ctx || !sk || !ct || (!out && n)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc;
  if ((rc = ckks_decrypt_check(ctx, sk, ct))) return rc;
  if (n > ctx->n / 2) return hetee_error(HETEE_ERR_INVALID_ARG, "%zu values exceed the slots", n);
  if (!(isfinite(scale) && scale > 0)) return hetee_error(HETEE_ERR_SCALE, "scale must be finite and > 0");
  size_t N = ctx->n, slots = N / 2;
  int level = ct->level;
  crt_plan plan = {0};
  double complex *z = ckks_tmp_alloc(slots * sizeof(double complex));
  uint64_t *rows = z ? ckks_tmp_alloc((size_t)(level + 1) * N * 8) : NULL;
  if (!z || !rows) {
    rc = hetee_error(HETEE_ERR_NOMEM, "decoder buffers");
    goto err;
  }
  if ((rc = crt_plan_init(ctx, level, &plan))) goto err;
  /* per row: decrypt (NTT form), inverse NTT in place, CRT constant: the
   * residues hetee_ckks_decrypt + decode compute */
  for (int i = 0; i <= level; i++) {
    uint64_t *r = rows + (size_t)i * N;
    ckks_decrypt_row(ctx, sk, ct, i, r);
    if (plan.hat_inv[i] != 1) /* public: 1 at level 0 (Q = q_0) */
      hetee_ntt_inverse_scaled(ctx->ntt[i], r, plan.hat_inv[i]); /* the constant in the last stage */
    else
      hetee_ntt_inverse(ctx->ntt[i], r);
  }
  double *zd = (double *)z;
  crt_all(&plan, rows, N, ctx->bitrev, 1.0 / scale, zd);
  fft_fwd_core(ctx, zd, slots, fft_use_avx512());
  for (size_t j = 0; j < n; j++) out[j] = zd[2 * j];
err:
  ckks_tmp_free(rows, (size_t)(level + 1) * N * 8, 1);
  free(plan.hat);
  ckks_tmp_free(z, slots * sizeof(double complex), 1);
  return rc;
}

#ifdef CKKS_FFT_AVX512
/* The slot encoder's two copies, 8 values at a time (AVX-512F):
 * clamp_in: z[j] = clamp_ct(v[j], vmax) + 0i for j < n (max_pd returns its
 * second operand for a NaN, so NaN -> -vmax as in clamp_ct), zero for
 * n <= j < slots; unbitrev: coef[k] = zd[2 r] * s, coef[k + slots] =
 * zd[2 r + 1] * s with r = bitrev[k] (gathers at public indices). The same
 * IEEE operations as the scalar loops, so the same doubles. */
AVX512_FN static void slots_clamp_in_avx512(const double *v, size_t n, size_t slots, double vmax, double *z) {
  const __m512d lo = _mm512_set1_pd(-vmax), hi = _mm512_set1_pd(vmax), zero = _mm512_setzero_pd();
  const __m512i i0 = _mm512_set_epi64(8, 3, 8, 2, 8, 1, 8, 0), i1 = _mm512_set_epi64(8, 7, 8, 6, 8, 5, 8, 4);
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m512d x = _mm512_min_pd(_mm512_max_pd(_mm512_loadu_pd(v + j), lo), hi);
    _mm512_storeu_pd(z + 2 * j, _mm512_permutex2var_pd(x, i0, zero));
    _mm512_storeu_pd(z + 2 * j + 8, _mm512_permutex2var_pd(x, i1, zero));
  }
  for (; j < n; j++) z[2 * j] = clamp_ct(v[j], vmax), z[2 * j + 1] = 0.0;
  memset(z + 2 * n, 0, (slots - n) * 2 * sizeof *z);
}

AVX512_FN static void slots_unbitrev_avx512(const double *zd, const uint32_t *bitrev, size_t slots, double s,
                                            double *coef) {
  const __m512d sv = _mm512_set1_pd(s);
  size_t k = 0;
  for (; k + 8 <= slots; k += 8) {
    __m256i r2 = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(bitrev + k)), 1);
    _mm512_storeu_pd(coef + k, _mm512_mul_pd(_mm512_i32gather_pd(r2, zd, 8), sv));
    _mm512_storeu_pd(coef + k + slots, _mm512_mul_pd(_mm512_i32gather_pd(r2, zd + 1, 8), sv));
  }
  for (; k < slots; k++) {
    size_t r = bitrev[k];
    coef[k] = zd[2 * r] * s;
    coef[k + slots] = zd[2 * r + 1] * s;
  }
}
#endif

int ckks_encrypt_sk_real_bounded_seeded(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                                        const double *v, size_t n, double scale, int level, double vmax,
                                        const uint8_t eseed[HETEE_SEED_BYTES], const uint8_t aseed[HETEE_SEED_BYTES],
                                        hetee_ckks_ciphertext *out) {
  if (!ctx || !sk || !out || (!v && n)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = ckks_check_ctx(ctx, sk->fp, "secret key");
  if (rc) return rc;
  if (n > ctx->n / 2) return hetee_error(HETEE_ERR_INVALID_ARG, "%zu values exceed %zu slots", n, ctx->n / 2);
  if (!(isfinite(scale) && scale > 0)) return hetee_error(HETEE_ERR_SCALE, "scale must be finite and > 0");
  if (level < 0 || level >= ctx->nq)
    return hetee_error(HETEE_ERR_LEVEL, "level %d outside [0, %d]", level, ctx->nq - 1);
  if (!(isfinite(vmax) && vmax > 0 && vmax <= 0x1p1000 / scale))
    return hetee_error(HETEE_ERR_SCALE, "value bound must be finite, > 0 and at most 2^1000 / scale");
  size_t N = ctx->n, slots = N / 2;
  double complex *z = ckks_tmp_alloc(slots * sizeof *z);
  double *coef = z ? ckks_tmp_alloc(N * sizeof(double)) : NULL;
  if (!z || !coef) {
    rc = hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
    goto err;
  }
  /* encode_common's coefficients (the copies in AVX-512 when the ring
   * layer runs it: the same doubles) */
  const int simd = fft_use_avx512(); /* public */
  double s = scale / (double)slots;
  const double *zd = (const double *)z;
#ifdef CKKS_FFT_AVX512
  if (simd) {
    slots_clamp_in_avx512(v, n, slots, vmax, (double *)z);
    fft_inv_core(ctx, (double *)z, slots, simd);
    slots_unbitrev_avx512(zd, ctx->bitrev, slots, s, coef);
  } else
#endif
  {
    memset(z, 0, slots * sizeof *z);
    for (size_t j = 0; j < n; j++) z[j] = clamp_ct(v[j], vmax);
    fft_inv_core(ctx, (double *)z, slots, simd);
    for (size_t k = 0; k < slots; k++) {
      size_t r = ctx->bitrev[k];
      coef[k] = zd[2 * r] * s;
      coef[k + slots] = zd[2 * r + 1] * s;
    }
  }
  if ((rc = ckks_ct_reserve(ctx, out, level, 2))) goto err;
  /* rounded message + noise into c0 (coefficient form; in one pass with
   * the noise on the AVX-512 path), then one NTT per row */
  rc = ckks_encrypt_sk_scaled(ctx, sk, coef, level, scale, vmax * scale * (1.0 + 0x1p-30) + 1.0, eseed, aseed, out);
err:
  ckks_tmp_free(coef, N * sizeof(double), 1);
  ckks_tmp_free(z, slots * sizeof *z, 1);
  if (rc) { /* c0 may hold the message: wipe it; no ciphertext */
    if (out->c[0]) sodium_memzero(out->c[0], out->cap_rows * ctx->n * 8);
    out->level = -1;
    out->seeded = 0;
  }
  return rc;
}

int ckks_encrypt_sk_real_bounded(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, const double *v,
                                 size_t n, double scale, int level, double vmax, hetee_ckks_ciphertext *out) {
  if (!out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  uint8_t eseed[HETEE_SEED_BYTES], aseed[HETEE_SEED_BYTES];
  int rc = ckks_seeds_random(eseed, aseed);
  if (!rc) rc = ckks_encrypt_sk_real_bounded_seeded(ctx, sk, v, n, scale, level, vmax, eseed, aseed, out);
  sodium_memzero(eseed, sizeof eseed);
  if (rc) {
    out->level = -1;
    out->seeded = 0;
  }
  return rc;
}

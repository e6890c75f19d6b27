/*
 * expect.c — the integrity checks' expectations (expect.h): one pass over
 * a stage's input values, two doubles per vector on the baseline, eight
 * with AVX-512F when the ring layer picked it.
 */
#include "enclave/trusted/expect.h"

#include "enclave/trusted/activations.h"

#include <math.h>
#include <string.h>

#include "enclave/wire/proto.h"
#include "hetee/common.h"
#include "hetee/ring.h"

#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#endif

/* One witness value: the little-endian float at p, subnormals flushed to
 * +-0 without a branch (their conversion can take a slow path: time must
 * not depend on the values). */
static inline double witness_value(const uint8_t *p) {
  uint32_t u = hetee_rd32(p);
  uint32_t normal = (uint32_t)0 - (uint32_t)((u & 0x7f800000u) != 0);
  u &= normal | 0x80000000u;
  float f;
  memcpy(&f, &u, 4);
  return (double)f;
}

/* Four witness values as witness_value() converts them (the same doubles):
 * with SSE2 (the x86-64 baseline) the flush is a mask on the four words
 * and the conversion two cvtps2pd, no scalar round trip per value. */
static inline void witness_values4(const uint8_t *p, v2d *lo, v2d *hi) {
#if defined(__SSE2__) && defined(__GNUC__)
  typedef uint32_t v4u __attribute__((vector_size(16)));
  v4u u;
  memcpy(&u, p, sizeof u); /* little-endian host (x86) */
  const v4u expo = {0x7f800000u, 0x7f800000u, 0x7f800000u, 0x7f800000u};
  const v4u sign = {0x80000000u, 0x80000000u, 0x80000000u, 0x80000000u};
  v4u normal = (v4u)((u & expo) != 0); /* all ones where the exponent is nonzero */
  u &= normal | sign;
  __m128 f = (__m128)u;
  *lo = (v2d)_mm_cvtps_pd(f);
  *hi = (v2d)_mm_cvtps_pd(_mm_movehl_ps(f, f));
#else
  *lo = (v2d){witness_value(p), witness_value(p + 4)};
  *hi = (v2d){witness_value(p + 8), witness_value(p + 12)};
#endif
}

/* Sample b's values k..n-1 after the vector part (sums a, acc0, acc1 so
 * far), then its three results stored; returns nonzero if a witness value
 * there is not finite or too large. Shared by both vector widths. */
static inline __attribute__((always_inline)) unsigned tail_rows(const enclave_expect_stage *st, const double *xd,
                                                                const uint8_t *xw, int witness, size_t k, double bound,
                                                                double a, double acc0, double acc1, uint32_t b,
                                                                double *s0, double *s1, double *l1) {
  unsigned bad = 0;
  for (; k < st->n_in; k++) {
    double r = witness ? witness_value(xw + 4 * k) : xd[k];
    if (witness) bad |= (unsigned)!(fabs(r) <= HETEE_WITNESS_MAX_ABS);
    double xv = hetee_dmin(hetee_dmax(r, -bound), bound);
    a += fabs(xv);
    acc0 += st->v0[k] * xv;
    acc1 += st->v1[k] * xv;
  }
  l1[b] = a;
  s0[b] = acc0;
  s1[b] = acc1;
  return bad;
}

/* s_t[b] = V_t . x_b + beta_t and ||x_b||_1 for a stage from batch x n_in
 * input values, each first saturated at +-bound (branch-free; the
 * encoder's saturation of the values refresh encrypts; NaN becomes
 * -bound), in one pass. The values are doubles (src: double *), or, when
 * `witness` (a constant in both callers: the compiler makes one copy of
 * each), the little-endian floats of an opened witness converted as
 * witness_value() does: the same sums in the same order, so the same
 * doubles; then also returns nonzero if any value is not finite or above
 * HETEE_WITNESS_MAX_ABS in magnitude (no early exit, no branch on a
 * value). */
static inline __attribute__((always_inline)) unsigned expect_rows(const enclave_expect_stage *st, const void *src, int witness,
                                                                 uint32_t batch, double bound, double *s0, double *s1, double *l1) {
  const v2d hi = {bound, bound}, lo = -hi, mx = {HETEE_WITNESS_MAX_ABS, HETEE_WITNESS_MAX_ABS};
  v2i bad = {0, 0};
  for (uint32_t b = 0; b < batch; b++) {
    const double *xd = witness ? NULL : (const double *)src + (size_t)b * st->n_in;
    const uint8_t *xw = witness ? (const uint8_t *)src + (size_t)b * st->n_in * 4 : NULL;
    const double *v0 = st->v0, *v1 = st->v1;
    v2d va = {0}, vb = {0}, s0a = {0}, s0b = {0}, s1a = {0}, s1b = {0};
    size_t k = 0, n = st->n_in;
    for (; k + 4 <= n; k += 4) {
      v2d ra, rc;
      if (witness) {
        witness_values4(xw + 4 * k, &ra, &rc);
        bad |= ~(v2_abs(ra) <= mx) | ~(v2_abs(rc) <= mx); /* NaN: bad */
      } else {
        ra = v2_load(xd + k);
        rc = v2_load(xd + k + 2);
      }
      v2d xa = v2_sat(ra, lo, hi), xc = v2_sat(rc, lo, hi);
      va += v2_abs(xa);
      vb += v2_abs(xc);
      s0a += v2_load(v0 + k) * xa;
      s0b += v2_load(v0 + k + 2) * xc;
      s1a += v2_load(v1 + k) * xa;
      s1b += v2_load(v1 + k + 2) * xc;
    }
    double a = v2_sum(va, vb), acc0 = st->beta0 + v2_sum(s0a, s0b), acc1 = st->beta1 + v2_sum(s1a, s1b);
    bad[0] |= -(int64_t)tail_rows(st, xd, xw, witness, k, bound, a, acc0, acc1, b, s0, s1, l1);
  }
  return (unsigned)((bad[0] | bad[1]) != 0);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define EXPECT_AVX512 1
#include <immintrin.h>
/* expect_rows with eight doubles per vector (AVX-512F, when the ring layer
 * picked AVX-512: hetee_ring_isa, a public choice): the same values, the
 * same saturation (NaN -> -bound: max takes its second operand when the
 * first is NaN) and the same checks, branch-free; the sums in another
 * order (eight partial sums per sum), so the last bits of s and l1 may
 * differ from expect_rows'. Both forms of JOB_START (witness and
 * ciphertexts) and every stage's expectations take the same path on one
 * machine. */
__attribute__((target("avx512f,avx512dq"))) static inline unsigned
expect_rows_avx512(const enclave_expect_stage *st, const void *src, int witness, uint32_t batch, double bound, double *s0,
                   double *s1, double *l1) {
  const __m512d hi = _mm512_set1_pd(bound), lo = _mm512_set1_pd(-bound);
  const __m512d mx = _mm512_set1_pd(HETEE_WITNESS_MAX_ABS);
  const __m256i expo = _mm256_set1_epi32(0x7f800000), sign = _mm256_set1_epi32((int)0x80000000u);
  __mmask8 bad = 0;
  unsigned bad_tail = 0;
  for (uint32_t b = 0; b < batch; b++) {
    const double *xd = witness ? NULL : (const double *)src + (size_t)b * st->n_in;
    const uint8_t *xw = witness ? (const uint8_t *)src + (size_t)b * st->n_in * 4 : NULL;
    const double *v0 = st->v0, *v1 = st->v1;
    __m512d va = _mm512_setzero_pd(), t0 = _mm512_setzero_pd(), t1 = _mm512_setzero_pd();
    size_t k = 0, n = st->n_in;
    for (; k + 8 <= n; k += 8) {
      __m512d x;
      if (witness) {
        __m256i u = _mm256_loadu_si256((const __m256i *)(const void *)(xw + 4 * k)); /* little-endian (x86) */
        __m256i normal = _mm256_cmpgt_epi32(_mm256_and_si256(u, expo), _mm256_setzero_si256()); /* exponent != 0 */
        u = _mm256_and_si256(u, _mm256_or_si256(normal, sign));
        x = _mm512_cvtps_pd(_mm256_castsi256_ps(u));
        bad |= (__mmask8)~_mm512_cmp_pd_mask(_mm512_abs_pd(x), mx, _CMP_LE_OQ); /* NaN: bad */
      } else {
        x = _mm512_loadu_pd(xd + k);
      }
      x = _mm512_min_pd(_mm512_max_pd(x, lo), hi);
      va = _mm512_add_pd(va, _mm512_abs_pd(x));
      t0 = _mm512_add_pd(t0, _mm512_mul_pd(_mm512_loadu_pd(v0 + k), x));
      t1 = _mm512_add_pd(t1, _mm512_mul_pd(_mm512_loadu_pd(v1 + k), x));
    }
    double a = _mm512_reduce_add_pd(va), acc0 = st->beta0 + _mm512_reduce_add_pd(t0),
           acc1 = st->beta1 + _mm512_reduce_add_pd(t1);
    bad_tail |= tail_rows(st, xd, xw, witness, k, bound, a, acc0, acc1, b, s0, s1, l1);
  }
  return (unsigned)(bad != 0) | bad_tail;
}
#endif

unsigned enclave_expect(const enclave_expect_stage *st, const void *src, int witness, uint32_t batch, double bound,
                        double *s0, double *s1, double *l1) {
#ifdef EXPECT_AVX512
  if (hetee_ring_isa() == HETEE_ISA_AVX512) /* public */
    return witness ? expect_rows_avx512(st, src, 1, batch, bound, s0, s1, l1)
                   : expect_rows_avx512(st, src, 0, batch, bound, s0, s1, l1);
#endif
  return witness ? expect_rows(st, src, 1, batch, bound, s0, s1, l1) : expect_rows(st, src, 0, batch, bound, s0, s1, l1);
}

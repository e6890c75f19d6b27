/*
 * test_encode.c — ckks/encode/logN=<n>: the special FFT against a naive
 * evaluation of the canonical embedding (slot j = m(zeta^(5^j))), encode /
 * decode round trips for real and complex values at level 0 and at the top
 * level, values with |v * scale| >= 2^63 (exact big rounding path), and the
 * encoder's argument errors. Also: the portable and AVX-512 FFT variants
 * against each other, and the decoder's centered CRT on plaintexts whose
 * integer coefficients are known (residues built independently with the
 * ring layer's modular arithmetic), from tiny values to +-(Q-1)/2, at every
 * level of a 15-prime chain (1 to 12 limbs in the CRT).
 */
#include <complex.h>

#include "ckks_test_util.h"
#include "ckks/ckks_internal.h"

static int g_logn = 13;

/* The AVX-512 FFT (fused multiply-adds) against the portable one, both
 * directions: equal within a few ulps of the largest value per stage. */
static void test_fft_variants(void **state) {
  (void)state;
  hetee_ckks_context *ctx = tu_ctx_std(g_logn, 1);
  size_t slots = ctx->n / 2;
  if (!ckks_fft_has_simd()) {
    fprintf(stderr, "  AVX-512 FFT not in use (CPU or HETEE_ISA): portable path only\n");
    hetee_ckks_context_free(ctx);
    return;
  }
  double complex *a = malloc(slots * sizeof *a), *b = malloc(slots * sizeof *b);
  uint64_t s = 99;
  for (int dir = 0; dir < 2; dir++) {
    double maxv = 0, maxerr = 0;
    for (size_t k = 0; k < slots; k++) a[k] = b[k] = 1000.0 * tu_unif(&s) + I * 1000.0 * tu_unif(&s);
    if (dir == 0) {
      ckks_fft_special_variant(ctx, a, 0);
      ckks_fft_special_variant(ctx, b, 1);
    } else {
      ckks_fft_special_inv_variant(ctx, a, 0);
      ckks_fft_special_inv_variant(ctx, b, 1);
    }
    for (size_t k = 0; k < slots; k++) {
      double e = cabs(a[k] - b[k]);
      if (!(e <= maxerr)) maxerr = e;
      if (cabs(a[k]) > maxv) maxv = cabs(a[k]);
    }
    fprintf(stderr, "  FFT %s: AVX-512 vs portable max diff %.3g (values up to %.3g)\n", dir ? "inverse" : "forward",
            maxerr, maxv);
    assert_true(maxerr <= 0x1p-44 * maxv);
  }
  free(a);
  free(b);
  hetee_ckks_context_free(ctx);
}

/* Residue of sgn * (a * 2^e + b) modulo m, from the ring layer only. */
static uint64_t val_mod(int sgn, uint64_t a, int e, uint64_t b, const hetee_modulus *m) {
  uint64_t r = hetee_mod_mul(hetee_mod_reduce64(a, m), hetee_mod_pow(2, (uint64_t)e, m), m);
  r = hetee_mod_add(r, hetee_mod_reduce64(b, m), m->q);
  return sgn < 0 && r ? m->q - r : r;
}

/* Plaintext (scale 1) whose coefficient 0 is X and coefficient N/2 is Y:
 * u_0 = X + iY, every slot decodes to X + iY (zeta^(N/2 * 5^j) = i). */
static void crt_case(hetee_ckks_context *ctx, hetee_ckks_plaintext *pt, int level, const uint64_t *xr,
                     const uint64_t *yr, double want_x, double want_y, const char *what) {
  size_t n = ctx->n, slots = n / 2;
  TU_OK(ckks_pt_reserve(ctx, pt, level));
  pt->scale = 1.0;
  for (int i = 0; i <= level; i++) {
    uint64_t *row = pt->data + (size_t)i * n;
    memset(row, 0, n * 8);
    row[0] = xr[i];
    row[slots] = yr[i];
    hetee_ntt_forward(ctx->ntt[i], row);
  }
  double *out = malloc(2 * slots * sizeof *out), *want = malloc(2 * slots * sizeof *want);
  TU_OK(hetee_ckks_decode_complex(ctx, pt, out, slots));
  for (size_t j = 0; j < slots; j++) {
    want[2 * j] = want_x;
    want[2 * j + 1] = want_y;
  }
  double bits = tu_bits(out, want, 2 * slots);
  if (bits < 44) fprintf(stderr, "  level %d %s: %.1f bits (got %.17g %.17g want %.17g %.17g)\n", level, what, bits,
                         out[0], out[1], want_x, want_y);
  assert_true(bits >= 44);
  free(out);
  free(want);
}

static void test_decode_crt(void **state) {
  (void)state;
  /* toy chain of 15 primes (760 bits; insecure, allowed at logN 12) */
  int qb[15] = {60};
  for (int i = 1; i < 15; i++) qb[i] = 50;
  int pb[1] = {60};
  hetee_ckks_context *ctx = tu_ctx(12, qb, 15, pb, 1, 0x1p40);
  hetee_ckks_plaintext *pt = NULL;
  TU_OK(hetee_ckks_plaintext_new(ctx, &pt));
  uint64_t xr[15], yr[15];
  int cases = 0;
  for (int level = 0; level < 15; level++) {
    double log2q = 0;
    for (int i = 0; i <= level; i++) log2q += log2((double)ctx->mod[i].q);
    /* X = +-(a 2^e + b), b = 0 (low words of |X| all zero) or 12345,
     * Y = -+(c 2^(e/2) + d), for e from 0 up to log2(Q) - 25 (|X| < Q/2^4),
     * across every word boundary */
    for (int e = 0; e + 25 < (int)log2q; e += (e < 140 ? 7 : 29)) {
      for (int t = 0; t < 4; t++) {
        int sgn = t & 1 ? -1 : 1;
        uint64_t a = 0xABCDE + (uint64_t)e, b = t & 2 ? 12345 : 0, c = 777, d = 3;
        for (int i = 0; i <= level; i++) {
          xr[i] = val_mod(sgn, a, e, b, &ctx->mod[i]);
          yr[i] = val_mod(-sgn, c, e / 2, d, &ctx->mod[i]);
        }
        double wx = sgn * (ldexp((double)a, e) + (double)b), wy = -sgn * (ldexp((double)c, e / 2) + (double)d);
        crt_case(ctx, pt, level, xr, yr, wx, wy, "a 2^e + b");
        cases++;
      }
    }
    /* near the extremes: X = +-((Q-1)/2 - m Q/q_0), m = q_0 / 2^30, i.e.
     * |X| = Q (1/2 - ~2^-30): residues -1/2 - m (Q/q_0) mod q_0 and -1/2
     * mod every other prime (Q/q_0 = 0 there) */
    double qd = 1.0;
    for (int i = 0; i <= level; i++) qd *= (double)ctx->mod[i].q;
    const hetee_modulus *m0 = &ctx->mod[0];
    uint64_t mm = m0->q >> 30, hat0 = 1;
    for (int i = 1; i <= level; i++) hat0 = hetee_mod_mul(hat0, hetee_mod_reduce64(ctx->mod[i].q, m0), m0);
    double big = qd * 0.5 - (double)mm * (qd / (double)m0->q);
    for (int sgn = -1; sgn <= 1; sgn += 2) {
      for (int i = 0; i <= level; i++) {
        uint64_t q = ctx->mod[i].q, r = (q - 1) / 2; /* (Q-1)/2 = -1/2 mod q */
        if (i == 0) r = hetee_mod_sub(r, hetee_mod_mul(mm % q, hat0, m0), q);
        xr[i] = sgn > 0 || r == 0 ? r : q - r;
        yr[i] = 5;
      }
      crt_case(ctx, pt, level, xr, yr, sgn * big, 5.0, "+-Q (1/2 - 2^-30)");
      cases++;
    }
  }
  fprintf(stderr, "  centered CRT: %d cases on levels 0..14, all >= 44 bits\n", cases);
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_context_free(ctx);
}

/* The FFT ordering and values against sum_k m_k zeta^(k 5^j), computed
 * directly in long double for a sample of slots. */
static void test_fft_vs_naive(void **state) {
  (void)state;
  hetee_ckks_context *ctx = tu_ctx_std(g_logn, 1);
  size_t n = ctx->n, slots = n / 2, m2 = 2 * n;
  double *m = malloc(n * sizeof *m);
  double complex *u = malloc(slots * sizeof *u);
  uint64_t s = 7;
  for (size_t k = 0; k < n; k++) m[k] = (double)((int64_t)(tu_rand(&s) % 2001) - 1000);
  for (size_t k = 0; k < slots; k++) u[k] = m[k] + I * m[k + slots];
  ckks_fft_special(ctx, u);
  double maxerr = 0, maxval = 0;
  for (size_t t = 0; t < 24; t++) {
    size_t j = t < 8 ? t : (size_t)(tu_rand(&s) % slots);
    uint64_t e = 1;
    for (size_t r = 0; r < j; r++) e = e * 5 % m2;
    long double re = 0, im = 0;
    for (size_t k = 0; k < n; k++) {
      uint64_t ex = (uint64_t)((unsigned __int128)k * e % m2);
      long double ang = 2.0L * 3.14159265358979323846264338327950288L * (long double)ex / (long double)m2;
      re += m[k] * cosl(ang);
      im += m[k] * sinl(ang);
    }
    double er = fabs((double)re - creal(u[j])) + fabs((double)im - cimag(u[j]));
    if (er > maxerr) maxerr = er;
    if (fabs((double)re) > maxval) maxval = fabs((double)re);
  }
  fprintf(stderr, "  special FFT vs naive: max err %.3g (values up to %.3g)\n", maxerr, maxval);
  assert_true(maxerr < 1e-6 * (maxval + 1));
  /* inverse undoes forward */
  double complex *w = malloc(slots * sizeof *w);
  for (size_t k = 0; k < slots; k++) w[k] = u[k];
  ckks_fft_special_inv(ctx, w);
  for (size_t k = 0; k < slots; k++) {
    assert_true(fabs(creal(w[k]) - m[k]) < 1e-6);
    assert_true(fabs(cimag(w[k]) - m[k + slots]) < 1e-6);
  }
  free(w);
  free(m);
  free(u);
  hetee_ckks_context_free(ctx);
}

static void roundtrip(hetee_ckks_context *ctx, double scale, int level, double min_bits, const char *what) {
  size_t slots = hetee_ckks_context_slots(ctx);
  double *v = malloc(2 * slots * sizeof *v), *out = malloc(2 * slots * sizeof *out);
  tu_fill(v, 2 * slots, (uint64_t)level + 3);
  hetee_ckks_plaintext *pt = NULL;
  TU_OK(hetee_ckks_plaintext_new(ctx, &pt));
  TU_OK(hetee_ckks_encode_complex(ctx, v, slots, scale, level, pt));
  assert_int_equal(hetee_ckks_plaintext_level(pt), level);
  assert_true(hetee_ckks_plaintext_scale(pt) == scale);
  TU_OK(hetee_ckks_decode_complex(ctx, pt, out, slots));
  tu_check_bits(what, tu_bits(out, v, 2 * slots), min_bits);
  /* real encode of fewer values: zero padded */
  TU_OK(hetee_ckks_encode_real(ctx, v, 100, scale, level, pt));
  TU_OK(hetee_ckks_decode_complex(ctx, pt, out, slots));
  double *want = calloc(2 * slots, sizeof *want);
  for (size_t j = 0; j < 100; j++) want[2 * j] = v[j];
  tu_check_bits("  real, 100 values, zero padded", tu_bits(out, want, 2 * slots), min_bits);
  free(want);
  free(v);
  free(out);
  hetee_ckks_plaintext_free(pt);
}

static void test_roundtrip(void **state) {
  (void)state;
  hetee_ckks_context *ctx = tu_ctx_std(g_logn, 2);
  /* rounding error of 2^-40 per coefficient, amplified by ~sqrt(N) */
  roundtrip(ctx, 0x1p40, 2, 30, "encode/decode scale 2^40 level 2");
  roundtrip(ctx, 0x1p40, 0, 30, "encode/decode scale 2^40 level 0");
  roundtrip(ctx, 0x1p20, 1, 12, "encode/decode scale 2^20 level 1");
  /* |v * scale| > 2^63: exact big-integer rounding and 3-prime CRT; the
   * double FFT (53-bit mantissa) then limits precision to ~45 bits */
  roundtrip(ctx, 0x1p80, 2, 40, "encode/decode scale 2^80 level 2");
  /* 2^52 <= |v * scale| < 2^63: the int64 path with 128-bit Barrett
   * reductions (below 2^52 the double-quotient path runs) */
  roundtrip(ctx, 0x1p55, 2, 40, "encode/decode scale 2^55 level 2");
  hetee_ckks_context_free(ctx);
}

static void test_errors(void **state) {
  (void)state;
  hetee_ckks_context *ctx = tu_ctx_std(g_logn, 1);
  size_t slots = hetee_ckks_context_slots(ctx);
  double *v = calloc(slots + 1, sizeof *v);
  for (size_t j = 0; j <= slots; j++) v[j] = 1.0; /* constant polynomial: coefficient 0 = scale */
  hetee_ckks_plaintext *pt = NULL;
  TU_OK(hetee_ckks_plaintext_new(ctx, &pt));
  assert_int_equal(hetee_ckks_encode_real(ctx, v, slots + 1, 0x1p40, 1, pt), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_encode_real(ctx, v, slots, 0x1p40, 2, pt), HETEE_ERR_LEVEL);
  assert_int_equal(hetee_ckks_encode_real(ctx, v, slots, 0x1p40, -1, pt), HETEE_ERR_LEVEL);
  assert_int_equal(hetee_ckks_encode_real(ctx, v, slots, 0.0, 1, pt), HETEE_ERR_SCALE);
  assert_int_equal(hetee_ckks_encode_real(ctx, v, slots, NAN, 1, pt), HETEE_ERR_SCALE);
  /* 2^99 does not fit q_0*q_1 (~2^100) / 2 with a bit of margin; 2^60 does
   * not fit q_0 / 2 at level 0 */
  assert_int_equal(hetee_ckks_encode_real(ctx, v, slots, 0x1p99, 1, pt), HETEE_ERR_SCALE);
  assert_int_equal(hetee_ckks_encode_real(ctx, v, slots, 0x1p60, 0, pt), HETEE_ERR_SCALE);
  v[1] = INFINITY;
  assert_int_equal(hetee_ckks_encode_real(ctx, v, 2, 0x1p40, 1, pt), HETEE_ERR_SCALE);
  /* decoding an empty plaintext */
  hetee_ckks_plaintext *empty = NULL;
  TU_OK(hetee_ckks_plaintext_new(ctx, &empty));
  double out[4];
  assert_int_equal(hetee_ckks_decode_real(ctx, empty, out, 4), HETEE_ERR_LEVEL);
  hetee_ckks_plaintext_free(empty);
  hetee_ckks_plaintext_free(pt);
  free(v);
  hetee_ckks_context_free(ctx);
}

int main(int argc, char **argv) {
  /* no arguments (ctest ckks/encode): logN 14 (12 under HETEE_TEST_QUICK) */
  g_logn = tu_arg(argc, argv, 1, tu_quick() ? 12 : 14);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fft_vs_naive),
      cmocka_unit_test(test_fft_variants),
      cmocka_unit_test(test_decode_crt),
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

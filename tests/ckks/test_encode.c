/*
 * test_encode.c — ckks/encode/logN=<n>: the special FFT against a naive
 * evaluation of the canonical embedding (slot j = m(zeta^(5^j))), encode /
 * decode round trips for real and complex values at level 0 and at the top
 * level, values with |v * scale| >= 2^63 (exact big rounding path), and the
 * encoder's argument errors.
 */
#include <complex.h>

#include "ckks_test_util.h"
#include "ckks/ckks_internal.h"

static int g_logn = 13;

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
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_coeffs.c — coefficient encoding (hetee_ckks_encode_coeffs /
 * decode_coeffs): round trips at every level, sparse index decoding, and the
 * property the linear layers rely on: the decryption of a ct x ct product
 * (degree 2, never relinearised) is the negacyclic convolution of the two
 * coefficient vectors, checked against a plaintext convolution with a stated
 * precision in bits.
 */
#include "ckks/ckks_test_util.h"

static void negacyclic(const double *a, const double *b, size_t n, double *out) {
  memset(out, 0, n * sizeof *out);
  for (size_t i = 0; i < n; i++) {
    if (a[i] == 0) continue;
    for (size_t j = 0; j < n; j++) {
      size_t k = i + j;
      if (k < n) out[k] += a[i] * b[j];
      else out[k - n] -= a[i] * b[j];
    }
  }
}

static void test_roundtrip(void **state) {
  (void)state;
  hetee_ckks_context *ctx = tu_ctx_std(13, 2);
  size_t N = hetee_ckks_context_n(ctx);
  double *v = malloc(N * sizeof *v), *got = malloc(N * sizeof *got);
  tu_fill(v, N, 7);
  hetee_ckks_plaintext *pt = NULL;
  assert_int_equal(hetee_ckks_plaintext_new(ctx, &pt), 0);
  for (int level = 0; level <= 2; level++) {
    assert_int_equal(hetee_ckks_encode_coeffs(ctx, v, N, 0x1p40, level, pt), 0);
    assert_int_equal(hetee_ckks_decode_coeffs(ctx, pt, NULL, N, got), 0);
    double bits = tu_bits(got, v, N);
    assert_true(bits > 39.0); /* rounding only: 2^-41 */
  }
  /* sparse, permuted indices read the same coefficients */
  uint32_t idx[5] = {N - 1, 0, 17, 4095, 4096};
  double sparse[5];
  assert_int_equal(hetee_ckks_decode_coeffs(ctx, pt, idx, 5, sparse), 0);
  for (int j = 0; j < 5; j++) assert_true(fabs(sparse[j] - v[idx[j]]) < 0x1p-38);
  /* an index past N is refused, not read */
  uint32_t bad = (uint32_t)N;
  assert_int_equal(hetee_ckks_decode_coeffs(ctx, pt, &bad, 1, sparse), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_encode_coeffs(ctx, v, N + 1, 0x1p40, 0, pt), HETEE_ERR_INVALID_ARG);
  hetee_ckks_plaintext_free(pt);
  free(v);
  free(got);
  hetee_ckks_context_free(ctx);
}

/* Public-key encrypted a (scale 2^40) times secret-key encrypted b (scale
 * 2^30) at level 1, decrypted in degree 2 = a * b negacyclic. */
static void test_product(void **state) {
  (void)state;
  hetee_ckks_context *ctx = tu_ctx_std(13, 2);
  size_t N = hetee_ckks_context_n(ctx);
  double *a = calloc(N, sizeof *a), *b = calloc(N, sizeof *b), *want = malloc(N * sizeof *want),
         *got = malloc(N * sizeof *got);
  /* sparse-ish operands keep the reference convolution fast */
  uint64_t s = 99;
  for (size_t i = 0; i < N; i += 7) a[i] = tu_unif(&s);
  for (size_t i = 0; i < N; i += 3) b[i] = tu_unif(&s);
  negacyclic(a, b, N, want);
  hetee_ckks_secret_key *sk = NULL;
  hetee_ckks_public_key *pk = NULL;
  hetee_ckks_plaintext *pa = NULL, *pb = NULL, *pd = NULL;
  hetee_ckks_ciphertext *ca = NULL, *cb = NULL, *cp = NULL;
  assert_int_equal(hetee_ckks_keygen_secret(ctx, &sk), 0);
  assert_int_equal(hetee_ckks_keygen_public(ctx, sk, &pk), 0);
  assert_int_equal(hetee_ckks_plaintext_new(ctx, &pa), 0);
  assert_int_equal(hetee_ckks_plaintext_new(ctx, &pb), 0);
  assert_int_equal(hetee_ckks_plaintext_new(ctx, &pd), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(ctx, &ca), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(ctx, &cb), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(ctx, &cp), 0);
  assert_int_equal(hetee_ckks_encode_coeffs(ctx, a, N, 0x1p40, 1, pa), 0);
  assert_int_equal(hetee_ckks_encode_coeffs(ctx, b, N, 0x1p30, 1, pb), 0);
  assert_int_equal(hetee_ckks_encrypt_pk(ctx, pk, pa, ca), 0);
  assert_int_equal(hetee_ckks_encrypt_sk(ctx, sk, pb, cb), 0);
  assert_int_equal(hetee_ckks_eval_mul(ctx, ca, cb, cp), 0);
  assert_int_equal(hetee_ckks_ciphertext_size(cp), 3);
  assert_int_equal(hetee_ckks_decrypt(ctx, sk, cp, pd), 0);
  assert_int_equal(hetee_ckks_decode_coeffs(ctx, pd, NULL, N, got), 0);
  double bits = tu_bits(got, want, N);
  fprintf(stderr, "coefficient product precision: %.1f bits\n", bits);
  assert_true(bits > 20.0);
  /* the caller's scale overrides the recorded one */
  assert_int_equal(hetee_ckks_decode_coeffs_scaled(ctx, pd, 0x1p69, NULL, N, got), 0);
  for (size_t i = 0; i < N; i++) got[i] *= 0.5;
  assert_true(tu_bits(got, want, N) > 20.0);
  hetee_ckks_ciphertext_free(ca);
  hetee_ckks_ciphertext_free(cb);
  hetee_ckks_ciphertext_free(cp);
  hetee_ckks_plaintext_free(pa);
  hetee_ckks_plaintext_free(pb);
  hetee_ckks_plaintext_free(pd);
  hetee_ckks_public_key_free(pk);
  hetee_ckks_secret_key_free(sk);
  free(a);
  free(b);
  free(want);
  free(got);
  hetee_ckks_context_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_product),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_expand.c — ckks/expand/logN=<n>/L=<L>: coefficient expansion into
 * 2, 4 and 8 lanes against its definition (lane q of the result holds
 * coefficient i*lanes + q of the input at coefficient i*lanes, zero
 * elsewhere), at the top level and at level 1, from public-key and
 * secret-key (seeded) encryptions; the evaluator form with two OpenMP
 * threads equal to the one-thread form; the rotation steps it names; and
 * its refusals (lanes, missing keys, size-3 input, aliasing, cap).
 */
#include "ckks_test_util.h"

static int g_logn = 13, g_L = 2;
static double g_slack = 0;

/* 5^s mod 2N */
static uint64_t pow5(size_t n, int s) {
  uint64_t m = 2 * (uint64_t)n, g = 1;
  for (int i = 0; i < s; i++) g = g * 5 % m;
  return g;
}

static void check_lanes(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, hetee_ckks_ciphertext *const *z,
                        int lanes, const double *x, int level, double scale, const char *what) {
  size_t n = hetee_ckks_context_n(ctx);
  double *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
  for (int q = 0; q < lanes; q++) {
    assert_int_equal(hetee_ckks_ciphertext_level(z[q]), level);
    /* values come out times `lanes`: inputs were encoded at scale / lanes */
    TU_OK(hetee_ckks_decrypt_coeffs(ctx, sk, z[q], scale, NULL, n, got));
    for (size_t i = 0; i < n; i++) want[i] = i % (size_t)lanes ? 0.0 : x[i + (size_t)q];
    char w[96];
    snprintf(w, sizeof w, "%s, %d lanes, lane %d", what, lanes, q);
    tu_check_bits(w, tu_bits(got, want, n), 24 - g_slack);
  }
  free(got);
  free(want);
}

static void test_expand(void **state) {
  (void)state;
  hetee_ckks_context *ctx = tu_ctx_std(g_logn, g_L);
  size_t n = hetee_ckks_context_n(ctx);
  hetee_ckks_secret_key *sk = NULL;
  hetee_ckks_public_key *pk = NULL;
  hetee_ckks_galois_keys *gk = NULL;
  TU_OK(hetee_ckks_keygen_secret(ctx, &sk));
  TU_OK(hetee_ckks_keygen_public(ctx, sk, &pk));
  int steps[8];
  size_t ns = 0;
  TU_OK(hetee_ckks_expand_steps(ctx, 8, steps, 8, &ns));
  assert_int_equal(ns, 3);
  for (size_t j = 0; j < ns; j++) assert_int_equal(pow5(n, steps[j]), 1 + n / ((size_t)1 << j));
  TU_OK(hetee_ckks_keygen_galois(ctx, sk, steps, ns, 0, &gk));

  double *x = malloc(n * sizeof *x);
  tu_fill(x, n, 7);
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ct = NULL, *z[8], *z2[8];
  TU_OK(hetee_ckks_plaintext_new(ctx, &pt));
  TU_OK(hetee_ckks_ciphertext_new(ctx, &ct));
  for (int i = 0; i < 8; i++) {
    TU_OK(hetee_ckks_ciphertext_new(ctx, &z[i]));
    TU_OK(hetee_ckks_ciphertext_new(ctx, &z2[i]));
  }
  hetee_ckks_evaluator *ev2 = NULL;
  TU_OK(hetee_ckks_evaluator_new(ctx, 2, &ev2));
  int levels[2] = {g_L, 1};
  for (int li = 0; li < 2; li++) {
    int level = levels[li];
    for (int lanes = 2; lanes <= 8; lanes *= 2) {
      double scale = 0x1p40;
      /* public-key encryption (both polynomials random) */
      TU_OK(hetee_ckks_encode_coeffs(ctx, x, n, scale / lanes, level, pt));
      TU_OK(hetee_ckks_encrypt_pk(ctx, pk, pt, ct));
      TU_OK(hetee_ckks_eval_expand(ctx, gk, ct, lanes, z));
      check_lanes(ctx, sk, z, lanes, x, level, scale, "pk");
      /* the evaluator with 2 threads: the same ciphertexts bit for bit */
      TU_OK(hetee_ckks_evaluator_expand(ev2, gk, ct, lanes, z2));
      size_t n1 = 0, n2 = 0;
      for (int q = 0; q < lanes; q++) {
        uint8_t *b1 = NULL, *b2 = NULL;
        TU_OK(hetee_ckks_ciphertext_save(ctx, z[q], &b1, &n1));
        TU_OK(hetee_ckks_ciphertext_save(ctx, z2[q], &b2, &n2));
        assert_int_equal(n1, n2);
        assert_memory_equal(b1, b2, n1);
        free(b1);
        free(b2);
      }
      /* secret-key (seeded) encryption, as the enclave makes them */
      TU_OK(hetee_ckks_encrypt_sk_coeffs(ctx, sk, x, n, scale / lanes, level, ct));
      TU_OK(hetee_ckks_eval_expand(ctx, gk, ct, lanes, z));
      check_lanes(ctx, sk, z, lanes, x, level, scale, "sk");
    }
  }

  /* refusals */
  assert_int_equal(hetee_ckks_eval_expand(ctx, gk, ct, 3, z), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_eval_expand(ctx, gk, ct, 1, z), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_eval_expand(ctx, gk, ct, (int)n, z), HETEE_ERR_INVALID_ARG);
  hetee_ckks_ciphertext *z16[16];
  for (int i = 0; i < 16; i++) z16[i] = i < 8 ? z[i] : z2[i - 8];
  assert_int_equal(hetee_ckks_eval_expand(ctx, gk, ct, 16, z16), HETEE_ERR_NO_KEY); /* no key for 1 + N/8 */
  assert_int_equal(hetee_ckks_eval_expand(ctx, NULL, ct, 2, z), HETEE_ERR_NO_KEY);
  hetee_ckks_galois_keys *gk1 = NULL;
  TU_OK(hetee_ckks_keygen_galois(ctx, sk, steps, 1, 0, &gk1)); /* enough for 2 lanes only */
  TU_OK(hetee_ckks_eval_expand(ctx, gk1, ct, 2, z));
  assert_int_equal(hetee_ckks_eval_expand(ctx, gk1, ct, 4, z), HETEE_ERR_NO_KEY);
  hetee_ckks_ciphertext *bad[2] = {ct, z[1]};
  assert_int_equal(hetee_ckks_eval_expand(ctx, gk, ct, 2, bad), HETEE_ERR_INVALID_ARG);
  bad[0] = z[1];
  assert_int_equal(hetee_ckks_eval_expand(ctx, gk, ct, 2, bad), HETEE_ERR_INVALID_ARG);
  hetee_ckks_ciphertext *d2 = NULL;
  TU_OK(hetee_ckks_ciphertext_new(ctx, &d2));
  TU_OK(hetee_ckks_eval_mul(ctx, ct, ct, d2));
  assert_int_equal(hetee_ckks_eval_expand(ctx, gk, d2, 2, z), HETEE_ERR_FORM);
  ns = 0;
  assert_int_equal(hetee_ckks_expand_steps(ctx, 8, steps, 2, &ns), HETEE_ERR_LIMIT);
  assert_int_equal(ns, 3);
  assert_int_equal(hetee_ckks_expand_steps(ctx, 6, steps, 8, &ns), HETEE_ERR_INVALID_ARG);
  /* the context-free form names the same steps, and refuses a bad N */
  int steps_n[8];
  for (int lanes = 2; lanes <= 8; lanes *= 2) {
    size_t a = 0, b = 0;
    TU_OK(hetee_ckks_expand_steps(ctx, lanes, steps, 8, &a));
    TU_OK(hetee_ckks_expand_steps_n(n, lanes, steps_n, 8, &b));
    assert_int_equal(a, b);
    for (size_t j = 0; j < a; j++) assert_int_equal(steps[j], steps_n[j]);
  }
  assert_int_equal(hetee_ckks_expand_steps_n(n + 1, 4, steps_n, 8, &ns), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_expand_steps_n(0, 4, steps_n, 8, &ns), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_expand_steps_n(n, 4, steps_n, 8, NULL), HETEE_ERR_INVALID_ARG);

  hetee_ckks_ciphertext_free(d2);
  hetee_ckks_galois_keys_free(gk1);
  hetee_ckks_evaluator_free(ev2);
  for (int i = 0; i < 8; i++) {
    hetee_ckks_ciphertext_free(z[i]);
    hetee_ckks_ciphertext_free(z2[i]);
  }
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_galois_keys_free(gk);
  hetee_ckks_public_key_free(pk);
  hetee_ckks_secret_key_free(sk);
  free(x);
  hetee_ckks_context_free(ctx);
}

int main(int argc, char **argv) {
  tu_eval_args(argc, argv, &g_logn, &g_L, &g_slack);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_expand)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

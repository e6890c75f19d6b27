/*
 * test_rotate.c — ckks/rotate/logN=<n>/L=<L>: rotations by positive and
 * negative steps against the plaintext rotation (slot i of the result =
 * slot i+step of the input), hoisted rotations equal to individual ones,
 * conjugation of complex inputs, rotation by 0, in-place rotation, missing
 * Galois keys.
 */
#include "ckks_test_util.h"

static int g_logn = 13, g_L = 2;
/* Thresholds are calibrated at logN 13; slot errors grow by ~sqrt(2) (half a
 * bit) per doubling of N. */
static double g_slack = 0;
#define check_bits(w, b, m) tu_check_bits((w), (b), (m) - g_slack)

static void test_rotations(void **state) {
  (void)state;
  hetee_ckks_context *ctx = tu_ctx_std(g_logn, g_L);
  size_t slots = hetee_ckks_context_slots(ctx);
  long ls = (long)slots;
  int steps[] = {1, 2, 3, 5, 8, -1, -7, 100, (int)slots / 2 + 3};
  size_t nsteps = sizeof steps / sizeof steps[0];
  hetee_ckks_secret_key *sk = NULL;
  hetee_ckks_public_key *pk = NULL;
  hetee_ckks_galois_keys *gk = NULL;
  TU_OK(hetee_ckks_keygen_secret(ctx, &sk));
  TU_OK(hetee_ckks_keygen_public(ctx, sk, &pk));
  TU_OK(hetee_ckks_keygen_galois(ctx, sk, steps, nsteps, 1, &gk));
  for (size_t i = 0; i < nsteps; i++) assert_true(hetee_ckks_galois_keys_has_step(gk, steps[i]));
  assert_true(hetee_ckks_galois_keys_has_step(gk, 1 - ls)); /* same as +1 mod slots */
  assert_true(hetee_ckks_galois_keys_has_step(gk, 0));
  assert_false(hetee_ckks_galois_keys_has_step(gk, 4));

  double *v = malloc(2 * slots * sizeof *v), *got = malloc(2 * slots * sizeof *got),
         *want = malloc(2 * slots * sizeof *want), *got2 = malloc(2 * slots * sizeof *got2);
  tu_fill(v, 2 * slots, 11);
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ct = NULL, *o = NULL;
  TU_OK(hetee_ckks_plaintext_new(ctx, &pt));
  TU_OK(hetee_ckks_ciphertext_new(ctx, &ct));
  TU_OK(hetee_ckks_ciphertext_new(ctx, &o));
  TU_OK(hetee_ckks_encode_complex(ctx, v, slots, 0x1p40, g_L, pt));
  TU_OK(hetee_ckks_encrypt_pk(ctx, pk, pt, ct));

  hetee_ckks_ciphertext *outs[16];
  for (size_t i = 0; i < nsteps; i++) TU_OK(hetee_ckks_ciphertext_new(ctx, &outs[i]));
  TU_OK(hetee_ckks_eval_rotate_hoisted(ctx, gk, ct, steps, nsteps, outs));

  for (size_t i = 0; i < nsteps; i++) {
    long st = steps[i];
    for (size_t j = 0; j < slots; j++) {
      size_t src = (size_t)((((long)j + st) % ls + ls) % ls);
      want[2 * j] = v[2 * src];
      want[2 * j + 1] = v[2 * src + 1];
    }
    TU_OK(hetee_ckks_eval_rotate(ctx, gk, ct, steps[i], o));
    TU_OK(hetee_ckks_decrypt(ctx, sk, o, pt));
    TU_OK(hetee_ckks_decode_complex(ctx, pt, got, slots));
    char what[64];
    snprintf(what, sizeof what, "rotate by %ld", st);
    check_bits(what, tu_bits(got, want, 2 * slots), 23.5);
    /* hoisted result decrypts to the same values as the individual
     * rotation, up to the (independent) key-switching noise */
    TU_OK(hetee_ckks_decrypt(ctx, sk, outs[i], pt));
    TU_OK(hetee_ckks_decode_complex(ctx, pt, got2, slots));
    snprintf(what, sizeof what, "hoisted == individual, step %ld", st);
    check_bits(what, tu_bits(got2, got, 2 * slots), 24);
    check_bits("  hoisted vs plaintext", tu_bits(got2, want, 2 * slots), 23.5);
  }
  /* rotation by 0 is a copy; in-place rotation */
  TU_OK(hetee_ckks_eval_rotate(ctx, gk, ct, 0, o));
  TU_OK(hetee_ckks_decrypt(ctx, sk, o, pt));
  TU_OK(hetee_ckks_decode_complex(ctx, pt, got, slots));
  check_bits("rotate by 0", tu_bits(got, v, 2 * slots), 25);
  TU_OK(hetee_ckks_ciphertext_copy(ct, o));
  TU_OK(hetee_ckks_eval_rotate(ctx, gk, o, -1, o));
  TU_OK(hetee_ckks_eval_rotate(ctx, gk, o, 1, o));
  TU_OK(hetee_ckks_decrypt(ctx, sk, o, pt));
  TU_OK(hetee_ckks_decode_complex(ctx, pt, got, slots));
  check_bits("rotate -1 then +1 in place", tu_bits(got, v, 2 * slots), 23);

  /* conjugation */
  TU_OK(hetee_ckks_eval_conjugate(ctx, gk, ct, o));
  TU_OK(hetee_ckks_decrypt(ctx, sk, o, pt));
  TU_OK(hetee_ckks_decode_complex(ctx, pt, got, slots));
  for (size_t j = 0; j < slots; j++) {
    want[2 * j] = v[2 * j];
    want[2 * j + 1] = -v[2 * j + 1];
  }
  check_bits("conjugate", tu_bits(got, want, 2 * slots), 23.5);

  /* rotation at a lower level (keys are used on a prefix of the chain) */
  if (g_L >= 1) {
    TU_OK(hetee_ckks_eval_drop_level(ctx, ct, g_L - 1, o));
    TU_OK(hetee_ckks_eval_rotate(ctx, gk, o, 2, o));
    assert_int_equal(hetee_ckks_ciphertext_level(o), g_L - 1);
    TU_OK(hetee_ckks_decrypt(ctx, sk, o, pt));
    TU_OK(hetee_ckks_decode_complex(ctx, pt, got, slots));
    for (size_t j = 0; j < slots; j++) {
      size_t src = (j + 2) % slots;
      want[2 * j] = v[2 * src];
      want[2 * j + 1] = v[2 * src + 1];
    }
    check_bits("rotate at level L-1", tu_bits(got, want, 2 * slots), 23.5);
  }

  /* missing keys */
  int st4 = 4;
  assert_int_equal(hetee_ckks_eval_rotate(ctx, gk, ct, 4, o), HETEE_ERR_NO_KEY);
  assert_int_equal(hetee_ckks_eval_rotate_hoisted(ctx, gk, ct, &st4, 1, outs), HETEE_ERR_NO_KEY);
  hetee_ckks_galois_keys *gk2 = NULL;
  TU_OK(hetee_ckks_keygen_galois(ctx, sk, steps, 1, 0, &gk2));
  assert_int_equal(hetee_ckks_eval_conjugate(ctx, gk2, ct, o), HETEE_ERR_NO_KEY);
  /* aliasing rules of the hoisted form */
  hetee_ckks_ciphertext *bad[2] = {ct, o};
  assert_int_equal(hetee_ckks_eval_rotate_hoisted(ctx, gk, ct, steps, 2, bad), HETEE_ERR_INVALID_ARG);
  bad[0] = o;
  assert_int_equal(hetee_ckks_eval_rotate_hoisted(ctx, gk, ct, steps, 2, bad), HETEE_ERR_INVALID_ARG);

  hetee_ckks_galois_keys_free(gk2);
  for (size_t i = 0; i < nsteps; i++) hetee_ckks_ciphertext_free(outs[i]);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_ciphertext_free(o);
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_galois_keys_free(gk);
  hetee_ckks_public_key_free(pk);
  hetee_ckks_secret_key_free(sk);
  free(v);
  free(got);
  free(got2);
  free(want);
  hetee_ckks_context_free(ctx);
}

int main(int argc, char **argv) {
  tu_eval_args(argc, argv, &g_logn, &g_L, &g_slack);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_rotations)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

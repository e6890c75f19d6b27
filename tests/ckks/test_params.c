/*
 * test_params.c — ckks/params: the literal -> context checks. The 128-bit
 * security bound (HomomorphicEncryption.org table, ternary secret) is
 * accepted exactly at log2(QP) = bound and refused one bit beyond with
 * HETEE_ERR_INSECURE; allow_insecure bypasses it. Malformed literals give
 * HETEE_ERR_PARAMS. The prime chain is NTT-friendly, distinct and of the
 * requested sizes. The fingerprint equals SHA-256 of the canonical encoding
 * documented in docs/ckks.md, recomputed here independently.
 */
#include <sodium.h>

#include "ckks_test_util.h"

static void fill_chain(hetee_ckks_literal *lit, int log_n, int total) {
  memset(lit, 0, sizeof *lit);
  lit->log_n = log_n;
  lit->np = 1;
  lit->p_bits[0] = 60;
  int rem = total - 60;
  lit->nq = 0;
  while (rem > 0) {
    int b = rem - 60 >= 30 ? 60 : rem;
    if (b > 60) b = rem - 30; /* leave at least 30 bits for the last prime */
    lit->q_bits[lit->nq++] = b;
    rem -= b;
  }
  lit->default_scale = 0x1p30;
}

static void test_security_bounds(void **state) {
  (void)state;
  int expect[5] = {109, 218, 438, 881, 1772};
  assert_int_equal(hetee_ckks_max_logqp_128(11), 0);
  assert_int_equal(hetee_ckks_max_logqp_128(17), 0);
  int maxlog = tu_quick() ? 14 : 16;
  for (int log_n = 12; log_n <= maxlog; log_n++) {
    int bound = hetee_ckks_max_logqp_128(log_n);
    assert_int_equal(bound, expect[log_n - 12]);
    hetee_ckks_literal lit;
    hetee_ckks_context *ctx = NULL;
    fill_chain(&lit, log_n, bound);
    int sum = 0;
    for (int i = 0; i < lit.nq; i++) sum += lit.q_bits[i];
    assert_int_equal(sum + 60, bound);
    int rc = hetee_ckks_context_new(&lit, &ctx);
    if (rc) fprintf(stderr, "logN %d: %s\n", log_n, hetee_last_error());
    assert_int_equal(rc, 0);
    fprintf(stderr, "  logN %d: %d bits accepted (%d ciphertext primes)\n", log_n, bound, lit.nq);
    hetee_ckks_context_free(ctx);
    ctx = NULL;
    /* one bit more in the last ciphertext prime: refused */
    lit.q_bits[lit.nq - 1] += 1;
    assert_int_equal(hetee_ckks_context_new(&lit, &ctx), HETEE_ERR_INSECURE);
    assert_null(ctx);
    /* one bit more in the special prime instead: refused too (P counts) */
    lit.q_bits[lit.nq - 1] -= 1;
    lit.p_bits[0] = 61;
    assert_int_equal(hetee_ckks_context_new(&lit, &ctx), HETEE_ERR_INSECURE);
    lit.allow_insecure = 1;
    assert_int_equal(hetee_ckks_context_new(&lit, &ctx), 0);
    hetee_ckks_context_free(ctx);
  }
}

static void test_bad_literals(void **state) {
  (void)state;
  hetee_ckks_literal lit;
  hetee_ckks_context *ctx = NULL;
  fill_chain(&lit, 13, 200);
  assert_int_equal(hetee_ckks_context_new(NULL, &ctx), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_context_new(&lit, NULL), HETEE_ERR_INVALID_ARG);
  lit.log_n = 11;
  assert_int_equal(hetee_ckks_context_new(&lit, &ctx), HETEE_ERR_PARAMS);
  lit.log_n = 17;
  assert_int_equal(hetee_ckks_context_new(&lit, &ctx), HETEE_ERR_PARAMS);
  fill_chain(&lit, 13, 200);
  lit.nq = 0;
  assert_int_equal(hetee_ckks_context_new(&lit, &ctx), HETEE_ERR_PARAMS);
  fill_chain(&lit, 13, 200);
  lit.np = 0;
  assert_int_equal(hetee_ckks_context_new(&lit, &ctx), HETEE_ERR_PARAMS);
  fill_chain(&lit, 13, 200);
  lit.q_bits[0] = 62;
  assert_int_equal(hetee_ckks_context_new(&lit, &ctx), HETEE_ERR_PARAMS);
  fill_chain(&lit, 13, 200);
  lit.q_bits[1] = 19;
  assert_int_equal(hetee_ckks_context_new(&lit, &ctx), HETEE_ERR_PARAMS);
  fill_chain(&lit, 13, 200);
  lit.p_bits[0] = 40; /* special prime smaller than the 60-bit digit */
  assert_int_equal(hetee_ckks_context_new(&lit, &ctx), HETEE_ERR_PARAMS);
  fill_chain(&lit, 13, 200);
  lit.default_scale = -1;
  assert_int_equal(hetee_ckks_context_new(&lit, &ctx), HETEE_ERR_PARAMS);
  lit.default_scale = NAN;
  assert_int_equal(hetee_ckks_context_new(&lit, &ctx), HETEE_ERR_PARAMS);
  assert_null(ctx);
  hetee_ckks_context_free(NULL);
}

static void test_chain_and_fingerprint(void **state) {
  (void)state;
  int qb[4] = {60, 40, 40, 40}, pb[2] = {50, 50};
  hetee_ckks_context *ctx = tu_ctx(14, qb, 4, pb, 2, 0x1p40);
  assert_int_equal(hetee_ckks_context_log_n(ctx), 14);
  assert_int_equal((int)hetee_ckks_context_n(ctx), 16384);
  assert_int_equal((int)hetee_ckks_context_slots(ctx), 8192);
  assert_int_equal(hetee_ckks_context_max_level(ctx), 3);
  assert_int_equal(hetee_ckks_context_nq(ctx), 4);
  assert_int_equal(hetee_ckks_context_np(ctx), 2);
  assert_true(hetee_ckks_context_default_scale(ctx) == 0x1p40);
  int bits[6] = {60, 40, 40, 40, 50, 50};
  for (int i = 0; i < 6; i++) {
    uint64_t q = hetee_ckks_context_prime(ctx, i);
    assert_true(q % 32768 == 1);
    assert_true(q < (1ULL << bits[i]) && q > (1ULL << (bits[i] - 1)));
    for (int j = 0; j < i; j++) assert_true(q != hetee_ckks_context_prime(ctx, j));
  }
  assert_true(hetee_ckks_context_prime(ctx, 6) == 0);
  assert_true(hetee_ckks_context_prime(ctx, -1) == 0);
  /* SHA-256("hetee-ckks-v1" | u32 logN | u32 nq | u32 np | u64 primes | f64 scale), little endian */
  uint8_t msg[13 + 12 + 6 * 8 + 8], h[32];
  size_t p = 0;
  memcpy(msg, "hetee-ckks-v1", 13);
  p = 13;
  uint32_t v32[3] = {14, 4, 2};
  for (int i = 0; i < 3; i++)
    for (int b = 0; b < 4; b++) msg[p++] = (uint8_t)(v32[i] >> (8 * b));
  for (int i = 0; i < 6; i++)
    for (int b = 0; b < 8; b++) msg[p++] = (uint8_t)(hetee_ckks_context_prime(ctx, i) >> (8 * b));
  double sc = 0x1p40;
  uint64_t sb;
  memcpy(&sb, &sc, 8);
  for (int b = 0; b < 8; b++) msg[p++] = (uint8_t)(sb >> (8 * b));
  crypto_hash_sha256(h, msg, p);
  assert_memory_equal(h, hetee_ckks_context_fingerprint(ctx), 32);
  /* deterministic; the scale is part of it */
  hetee_ckks_context *same = tu_ctx(14, qb, 4, pb, 2, 0x1p40), *other = tu_ctx(14, qb, 4, pb, 2, 0x1p39);
  assert_memory_equal(hetee_ckks_context_fingerprint(same), h, 32);
  assert_memory_not_equal(hetee_ckks_context_fingerprint(other), h, 32);
  /* default scale 0 means 2^q_bits[nq-1] */
  hetee_ckks_context *dflt = tu_ctx(14, qb, 4, pb, 2, 0);
  assert_true(hetee_ckks_context_default_scale(dflt) == 0x1p40);
  hetee_ckks_context_free(dflt);
  hetee_ckks_context_free(same);
  hetee_ckks_context_free(other);
  hetee_ckks_context_free(ctx);
}

/* The default literal: logN 13, q {60, 40, 40}, p {60}, scale 2^40, and it
 * passes the 128-bit check without allow_insecure. */
static void test_default_literal(void **state) {
  (void)state;
  hetee_ckks_literal lit;
  memset(&lit, 0xff, sizeof lit);
  hetee_ckks_literal_default(&lit);
  assert_int_equal(lit.log_n, 13);
  assert_int_equal(lit.nq, 3);
  assert_int_equal(lit.q_bits[0], 60);
  assert_int_equal(lit.q_bits[1], 40);
  assert_int_equal(lit.q_bits[2], 40);
  assert_int_equal(lit.q_bits[3], 0);
  assert_int_equal(lit.np, 1);
  assert_int_equal(lit.p_bits[0], 60);
  assert_true(lit.default_scale == 0x1p40);
  assert_int_equal(lit.allow_insecure, 0);
  hetee_ckks_context *ctx = NULL;
  assert_int_equal(hetee_ckks_context_new(&lit, &ctx), 0);
  assert_int_equal(hetee_ckks_context_max_level(ctx), 2);
  hetee_ckks_context_free(ctx);
  hetee_ckks_literal_default(NULL); /* no-op */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_security_bounds),
      cmocka_unit_test(test_bad_literals),
      cmocka_unit_test(test_chain_and_fingerprint),
      cmocka_unit_test(test_default_literal),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

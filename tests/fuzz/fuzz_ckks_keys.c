/*
 * fuzz_ckks_keys.c — fuzz target of the four key loaders (serialize.c:
 * secret, public, relinearization and Galois keys), selected by the object
 * type in the header so mutants can cross formats. An accepted key must
 * save back to the same bytes.
 */
#include "fuzz/fuzz.h"
#include "fuzz/fuzz_ckks.h"

const char fuzz_target_name[] = "ckks_keys";
const int fuzz_prefixes_valid = 0;

static hetee_ckks_context *ctx;

int fuzz_setup(void) {
  ctx = fuzz_ckks_ctx();
  return ctx ? 0 : -1;
}
void fuzz_teardown(void) {
  hetee_ckks_context_free(ctx);
  ctx = NULL;
}

int fuzz_one(const uint8_t *data, size_t len) {
  uint16_t type = len >= 10 ? (uint16_t)(data[8] | data[9] << 8) : 0;
  uint8_t *b = NULL;
  size_t n = 0;
  int rc;
  switch (type) {
  case HETEE_OBJ_PUBLIC_KEY: {
    hetee_ckks_public_key *k = NULL;
    if ((rc = hetee_ckks_public_key_load(ctx, data, len, &k))) break;
    FUZZ_CHECK(hetee_ckks_public_key_save(ctx, k, &b, &n) == 0);
    hetee_ckks_public_key_free(k);
    break;
  }
  case HETEE_OBJ_RELIN_KEY: {
    hetee_ckks_relin_key *k = NULL;
    if ((rc = hetee_ckks_relin_key_load(ctx, data, len, &k))) break;
    FUZZ_CHECK(hetee_ckks_relin_key_save(ctx, k, &b, &n) == 0);
    hetee_ckks_relin_key_free(k);
    break;
  }
  case HETEE_OBJ_GALOIS_KEYS: {
    hetee_ckks_galois_keys *k = NULL;
    if ((rc = hetee_ckks_galois_keys_load(ctx, data, len, &k))) break;
    FUZZ_CHECK(hetee_ckks_galois_keys_save(ctx, k, &b, &n) == 0);
    hetee_ckks_galois_keys_free(k);
    break;
  }
  default: {
    hetee_ckks_secret_key *k = NULL;
    if ((rc = hetee_ckks_secret_key_load(ctx, data, len, &k))) break;
    FUZZ_CHECK(hetee_ckks_secret_key_save(ctx, k, &b, &n) == 0);
    hetee_ckks_secret_key_free(k);
    break;
  }
  }
  if (rc) return rc;
  FUZZ_CHECK(fuzz_same_bytes(b, n, data, len));
  free(b);
  return 0;
}

size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  hetee_ckks_secret_key *sk = NULL;
  hetee_ckks_public_key *pk = NULL;
  hetee_ckks_relin_key *rk = NULL;
  hetee_ckks_galois_keys *gk = NULL, *gk0 = NULL;
  const int steps[2] = {1, -3};
  uint8_t *b = NULL;
  size_t len = 0;
  FUZZ_CHECK(hetee_ckks_keygen_secret(ctx, &sk) == 0);
  FUZZ_CHECK(hetee_ckks_keygen_public(ctx, sk, &pk) == 0);
  FUZZ_CHECK(hetee_ckks_keygen_relin(ctx, sk, &rk) == 0);
  FUZZ_CHECK(hetee_ckks_keygen_galois(ctx, sk, steps, 2, 1, &gk) == 0);
  FUZZ_CHECK(hetee_ckks_keygen_galois(ctx, sk, NULL, 0, 0, &gk0) == 0);
  FUZZ_CHECK(hetee_ckks_secret_key_save(ctx, sk, &b, &len) == 0);
  fuzz_seed_add(&s, &n, b, len);
  free(b);
  FUZZ_CHECK(hetee_ckks_public_key_save(ctx, pk, &b, &len) == 0);
  fuzz_seed_add(&s, &n, b, len);
  free(b);
  FUZZ_CHECK(hetee_ckks_relin_key_save(ctx, rk, &b, &len) == 0);
  fuzz_seed_add(&s, &n, b, len);
  free(b);
  FUZZ_CHECK(hetee_ckks_galois_keys_save(ctx, gk, &b, &len) == 0);
  fuzz_seed_add(&s, &n, b, len);
  free(b);
  FUZZ_CHECK(hetee_ckks_galois_keys_save(ctx, gk0, &b, &len) == 0);
  fuzz_seed_add(&s, &n, b, len);
  free(b);
  hetee_ckks_secret_key_free(sk);
  hetee_ckks_public_key_free(pk);
  hetee_ckks_relin_key_free(rk);
  hetee_ckks_galois_keys_free(gk);
  hetee_ckks_galois_keys_free(gk0);
  *out = s;
  return n;
}

size_t fuzz_known_bad(fuzz_buf **out) {
  *out = NULL;
  return 0;
}

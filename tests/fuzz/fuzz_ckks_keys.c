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

FUZZ_CKKS_SHARED_CTX

int fuzz_one(const uint8_t *data, size_t len) {
  uint16_t type = fuzz_ckks_obj_type(data, len);
  uint8_t *b = NULL;
  size_t n = 0;
  int rc;
/* load as hetee_ckks_<obj>; when accepted, save back into (b, n) and free */
#define ROUNDTRIP(obj)                                                                                   \
  {                                                                                                      \
    hetee_ckks_##obj *k = NULL;                                                                          \
    if ((rc = hetee_ckks_##obj##_load(ctx, data, len, &k))) break;                                       \
    FUZZ_CHECK(hetee_ckks_##obj##_save(ctx, k, &b, &n) == 0);                                            \
    hetee_ckks_##obj##_free(k);                                                                          \
    break;                                                                                               \
  }
  switch (type) {
  case HETEE_OBJ_PUBLIC_KEY: ROUNDTRIP(public_key)
  case HETEE_OBJ_RELIN_KEY: ROUNDTRIP(relin_key)
  case HETEE_OBJ_GALOIS_KEYS: ROUNDTRIP(galois_keys)
  default: ROUNDTRIP(secret_key)
  }
#undef ROUNDTRIP
  if (rc) return rc;
  return fuzz_check_resaved(b, n, data, len);
}

size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  hetee_ckks_secret_key *sk = NULL;
  hetee_ckks_public_key *pk = NULL;
  hetee_ckks_relin_key *rk = NULL;
  hetee_ckks_galois_keys *gk = NULL, *gk0 = NULL;
  const int steps[2] = {1, -3};
  FUZZ_CHECK(hetee_ckks_keygen_secret(ctx, &sk) == 0);
  FUZZ_CHECK(hetee_ckks_keygen_public(ctx, sk, &pk) == 0);
  FUZZ_CHECK(hetee_ckks_keygen_relin(ctx, sk, &rk) == 0);
  FUZZ_CHECK(hetee_ckks_keygen_galois(ctx, sk, steps, 2, 1, &gk) == 0);
  FUZZ_CHECK(hetee_ckks_keygen_galois(ctx, sk, NULL, 0, 0, &gk0) == 0);
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_secret_key_save, ctx, sk);
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_public_key_save, ctx, pk);
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_relin_key_save, ctx, rk);
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_galois_keys_save, ctx, gk);
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_galois_keys_save, ctx, gk0);
  hetee_ckks_secret_key_free(sk);
  hetee_ckks_public_key_free(pk);
  hetee_ckks_relin_key_free(rk);
  hetee_ckks_galois_keys_free(gk);
  hetee_ckks_galois_keys_free(gk0);
  *out = s;
  return n;
}

FUZZ_NO_KNOWN_BAD

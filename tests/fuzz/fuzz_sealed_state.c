/*
 * fuzz_sealed_state.c — fuzz target of sealed-state loading
 * (sessions.c: enclave_handle_unseal -> seal_blob.c: hetee_unseal_blob ->
 * keys.c: enclave_keys_import -> serialize.c: secret key -> party registry
 * and policies). The first input byte picks the layer:
 *   even: the rest is a sealed blob, as the host hands it back (outer
 *         container: magic, version, nonce, AEAD — mutants essentially all
 *         fail authentication, which is the point);
 *   odd:  the rest is the plaintext state; the target seals it with the
 *         enclave's sealing key first, so the inner parser — which only
 *         ever sees authenticated bytes, but written by an older binary or
 *         a buggy one — is reached too.
 * An accepted state must be consistent (party and policy counts within
 * their tables, keys usable: the state seals again); a refused one must
 * leave the enclave's keys, parties and policies as they were.
 */
#include "fuzz/fuzz_enclave.h"

const char fuzz_target_name[] = "sealed_state";
const int fuzz_prefixes_valid = 0;

int fuzz_setup(void) { return fz_enclave_setup(); }
void fuzz_teardown(void) { fz_enclave_teardown(); }

int fuzz_one(const uint8_t *data, size_t len) {
  if (len < 1) return hetee_error(HETEE_ERR_TRUNCATED, "empty");
  const uint8_t *body = data + 1;
  size_t blen = len - 1;
  uint8_t *sealed = NULL;
  if (data[0] & 1) {
    size_t slen = 0;
    FUZZ_CHECK(hetee_seal_blob(fz_e.sec->seal_key, body, blen, &sealed, &slen) == 0);
    body = sealed;
    blen = slen;
  }
  /* a refused state must leave the running enclave untouched */
  static enclave_policy before[ENCLAVE_MAX_POLICIES];
  memcpy(before, fz_e.policies, sizeof before);
  size_t parties_before = fz_e.n_parties;
  const hetee_ckks_secret_key *sk_before = fz_e.sk;
  hetee_rbuf r;
  hetee_rbuf_init(&r, body, blen);
  int rc = enclave_handle_unseal(&fz_e, &r);
  if (rc) {
    FUZZ_CHECK(fz_e.sk == sk_before && fz_e.have_keys && fz_e.n_parties == parties_before);
    FUZZ_CHECK(memcmp(before, fz_e.policies, sizeof before) == 0);
  } else {
    FUZZ_CHECK(fz_e.n_parties <= ENCLAVE_MAX_PARTIES);
    FUZZ_CHECK(!fz_e.have_keys || fz_e.sk != NULL);
    uint8_t *again = NULL;
    size_t alen = 0;
    fz_sealed_state(&again, &alen);
    free(again);
  }
  free(sealed);
  fz_reset();
  return rc;
}

size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  /* a state with a party and a policy, as the enclave writes it */
  memset(fz_e.parties[0].pk, 0x77, 32);
  fz_e.parties[0].role = HETEE_ROLE_DP;
  fz_e.n_parties = 1;
  fz_e.policies[3].used = 1;
  fz_e.policies[3].model_id = 9;
  fz_e.policies[3].kind = HETEE_RELEASE_ARGMAX;
  uint8_t *sealed = NULL;
  size_t slen = 0;
  fz_sealed_state(&sealed, &slen);
  uint8_t *plain = NULL;
  size_t plen = 0;
  FUZZ_CHECK(hetee_unseal_blob(fz_e.sec->seal_key, sealed, slen, &plain, &plen) == 0);
  uint8_t *b = malloc(1 + (slen > plen ? slen : plen));
  FUZZ_CHECK(b != NULL);
  b[0] = 0;
  memcpy(b + 1, sealed, slen);
  fuzz_seed_add(&s, &n, b, 1 + slen);
  b[0] = 1;
  memcpy(b + 1, plain, plen);
  fuzz_seed_add(&s, &n, b, 1 + plen);
  free(b);
  sodium_free(plain);
  free(sealed);
  fz_reset();
  *out = s;
  return n;
}

size_t fuzz_known_bad(fuzz_buf **out) {
  *out = NULL;
  return 0;
}

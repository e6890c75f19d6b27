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
 * their tables, every policy naming a data provider and owned by a model
 * provider of the configuration's mp= list, one policy per model, keys
 * usable: the state seals again); a refused one must leave the enclave's
 * keys, parties and policies as they were.
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
    for (int i = 0; i < ENCLAVE_MAX_POLICIES; i++) {
      const enclave_policy *p = &fz_e.policies[i];
      if (!p->used) continue;
      FUZZ_CHECK(p->n_dp >= 1 && p->n_dp <= HETEE_POLICY_MAX_DPS);
      for (unsigned j = 0; j < p->n_dp; j++) FUZZ_CHECK(!sodium_is_zero(p->dp_pk[j], 32));
      int listed = 0;
      for (int j = 0; j < fz_e.cfg.n_mp; j++) listed |= !memcmp(fz_e.cfg.mp[j], p->owner, 32);
      FUZZ_CHECK(listed);
      for (int j = 0; j < i; j++) FUZZ_CHECK(!fz_e.policies[j].used || fz_e.policies[j].model_id != p->model_id);
    }
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

/* Adds the seed policy (argmax release of model 9 to the DP whose key is
 * 0x77..., owned by a model provider listed in mp=) to the running enclave
 * and writes its state, sealed as the enclave writes it and unsealed
 * (*plain: sodium_free). */
static void policy_state(uint8_t **sealed, size_t *slen, uint8_t **plain, size_t *plen) {
  fz_e.policies[3].used = 1;
  fz_e.policies[3].model_id = 9;
  fz_e.policies[3].kind = HETEE_RELEASE_ARGMAX;
  fz_e.policies[3].n_dp = 1;
  memset(fz_e.policies[3].dp_pk[0], 0x77, 32);
  uint8_t sk[64];
  fz_party_key(FZ_MP1, fz_e.policies[3].owner, sk);
  fz_sealed_state(sealed, slen);
  FUZZ_CHECK(hetee_unseal_blob(fz_e.sec->seal_key, *sealed, *slen, plain, plen) == 0);
}

size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  /* a state with a party (the policy's DP) and a policy */
  memset(fz_e.parties[0].pk, 0x77, 32);
  fz_e.parties[0].role = HETEE_ROLE_DP;
  fz_e.n_parties = 1;
  uint8_t *sealed = NULL, *plain = NULL;
  size_t slen = 0, plen = 0;
  policy_state(&sealed, &slen, &plain, &plen);
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

/* Plaintext states (odd first byte) the parser must refuse although they
 * are authentic: a policy owned by a model provider not in mp= (the host's
 * own key), one naming no data provider, two policies for one model, and
 * the version-1 layout (no owners). Derived from the seed state by editing
 * its last policy record (... dp_pk[32] | owner[32] at the end). */
size_t fuzz_known_bad(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  uint8_t *sealed = NULL, *plain = NULL;
  size_t slen = 0, plen = 0;
  policy_state(&sealed, &slen, &plain, &plen);
  free(sealed);
  uint8_t sk[64];
  size_t rec = 4 + 3 + 1 + 32 + 32; /* one policy record (one DP) */
  uint8_t *b = malloc(1 + plen + rec);
  FUZZ_CHECK(b != NULL && plen > rec + 4);
  for (int bad = 0; bad < 4; bad++) {
    b[0] = 1;
    memcpy(b + 1, plain, plen);
    size_t len = 1 + plen;
    uint8_t *last = b + len - rec;
    if (bad == 0) {
      fz_party_key(FZ_HOST_MP, last + 4 + 3 + 1 + 32, sk);
    } else if (bad == 1) {
      memset(last + 4 + 3 + 1, 0, 32);
    } else if (bad == 2) {
      memcpy(b + len, last, rec); /* the same record twice */
      len += rec;
      hetee_le32(last - 4, hetee_rd32(last - 4) + 1); /* policy count */
    } else {
      hetee_le32(b + 1, 1); /* version 1 */
    }
    fuzz_seed_add(&s, &n, b, len);
  }
  free(b);
  sodium_free(plain);
  fz_reset();
  *out = s;
  return n;
}

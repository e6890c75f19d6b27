/*
 * integrity_auth.c — bound inference for a data provider that is not online
 * while its job runs (the service path; docs/security.md "Integrity of the
 * host's work"):
 *
 *  - JOB_AUTH: the data provider's authorization of its input micro-batches
 *    as a detached Ed25519 signature made at submission with its identity
 *    key, which the host stores and presents (again after an enclave
 *    restart). The enclave verifies it against the key the model's policy
 *    names, refuses a (dp, nonce) already used in its lifetime, and turns
 *    each signed digest into a single-use authorization of JOB_START
 *    (integrity.c), exactly as a session authorization.
 *  - The release of such a job is sealed to the data provider's identity,
 *    not to a session (which dies with the enclave): crypto_box from the
 *    enclave's release key to the X25519 key converted from the DP's Ed25519
 *    key. The release key is derived from the sealing key (same enclave,
 *    same platform: same key after every restart) and announced only
 *    through attested sessions (session command 7), so the DP knows that a
 *    result that opens was made by this enclave; the record names the model,
 *    the authorized micro-batch digest and the sample, so the host cannot
 *    swap results between jobs or samples.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/trusted/integrity_auth.h"

#define AUTH_TAG "hetee-job-auth-v1"
#define IDREL_TAG "hetee-idrel-v1"
#define AUTH_MAX_MB 256
#define AUTH_NONCES 4096 /* (dp, nonce) pairs remembered per lifetime (oldest replaced) */

static struct {
  uint8_t dp[32];
  uint8_t nonce[16];
} seen[AUTH_NONCES];
static unsigned n_seen;

int enclave_auth_handle(enclave *e, hetee_rbuf *r, hetee_wbuf *w) {
  (void)w;
  const uint8_t *body = r->p + r->off;
  size_t len = hetee_rbuf_left(r);
  uint32_t model = hetee_rbuf_u32(r);
  uint8_t dp[32], nonce[16];
  hetee_rbuf_copy(r, dp, 32);
  hetee_rbuf_copy(r, nonce, 16);
  uint32_t n = hetee_rbuf_u32(r);
  if (r->err || n < 1 || n > AUTH_MAX_MB || hetee_rbuf_left(r) != (size_t)n * 36 + 64)
    return hetee_error(HETEE_ERR_PROTOCOL, "malformed JOB_AUTH");
  const uint8_t *entries = r->p + r->off, *sig = entries + (size_t)n * 36;
  if (!e->have_keys) return hetee_error(HETEE_ERR_STATE, "no keys yet");
  const enclave_policy *p = enclave_find_policy(e, model);
  int named = 0;
  if (p)
    for (unsigned i = 0; i < p->n_dp; i++) named |= !memcmp(p->dp_pk[i], dp, 32);
  if (!named)
    return hetee_error(HETEE_ERR_AUTH, "only a data provider model %u's policy names authorizes its jobs", model);
  if (!enclave_integrity_bound(e, model))
    return hetee_error(HETEE_ERR_STATE, "model %u is not registered by its model provider", model);
  /* the signed message: tag || the request without its signature */
  size_t mlen = sizeof AUTH_TAG + (len - 64);
  uint8_t *msg = malloc(mlen);
  if (!msg) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  memcpy(msg, AUTH_TAG, sizeof AUTH_TAG);
  memcpy(msg + sizeof AUTH_TAG, body, len - 64);
  int bad = crypto_sign_verify_detached(sig, msg, mlen, dp) != 0;
  free(msg);
  if (bad) return hetee_error(HETEE_ERR_AUTH, "model %u: the job authorization's signature does not verify", model);
  unsigned have = n_seen < AUTH_NONCES ? n_seen : AUTH_NONCES;
  for (unsigned i = 0; i < have; i++)
    if (!memcmp(seen[i].dp, dp, 32) && !memcmp(seen[i].nonce, nonce, 16))
      return hetee_error(HETEE_ERR_REPLAY, "model %u: this job authorization was used already", model);
  memcpy(seen[n_seen % AUTH_NONCES].dp, dp, 32);
  memcpy(seen[n_seen % AUTH_NONCES].nonce, nonce, 16);
  n_seen++;
#ifdef HETEE_ENCLAVE_HAVE_CKKS
  for (uint32_t i = 0; i < n; i++)
    enclave_integrity_add_auth(model, hetee_rd32(entries + (size_t)i * 36), entries + (size_t)i * 36 + 4, dp);
#endif
  return 0;
}

/* The release key pair, derived from the sealing key. */
static int release_keys(enclave *e, uint8_t pk[32], uint8_t sk[32]) {
  uint8_t seed[crypto_box_SEEDBYTES];
  if (crypto_kdf_derive_from_key(seed, sizeof seed, 1, "htrelkey", e->sec->seal_key))
    return hetee_error(HETEE_ERR_CRYPTO, "release key derivation");
  int rc = crypto_box_seed_keypair(pk, sk, seed) ? hetee_error(HETEE_ERR_CRYPTO, "release key") : 0;
  sodium_memzero(seed, sizeof seed);
  return rc;
}

/* What the per-sample sealing to a DP's identity reuses (it was derived
 * for every sample: two X25519 scalar multiplications, an Ed25519 ->
 * X25519 conversion and four guarded allocations per released sample, about
 * half of the enclave's CPU of a 64-image service job): the release key pair
 * (for the sealing key it was derived from, compared in constant time) and
 * crypto_box_beforenm's shared key with the last data providers, all in
 * one locked, guarded block (sodium_malloc) wiped when the sealing key
 * differs and never released before the process ends. The ciphertexts are
 * those crypto_box_easy makes (it is beforenm + afternm). The table is
 * searched by the data providers' public keys (public: the authorization
 * names them). */
#define RELC_DPS 16
#define RELC_SCRATCH 4096 /* a released record and its header, in locked memory */
typedef struct relcache {
  uint8_t seal_key[32];
  uint8_t pk[32], sk[32];
  uint8_t shared[RELC_DPS][crypto_box_BEFORENMBYTES];
  uint8_t scratch[RELC_SCRATCH];
} relcache;
static relcache *rc_sec;      /* secret part, sodium_malloc */
static uint8_t rc_dp[RELC_DPS][32]; /* public keys of the cached shared keys */
static unsigned rc_ndp, rc_next;
static int rc_have;

static int relcache_get(enclave *e, relcache **out) {
  if (!rc_sec) {
    rc_sec = sodium_malloc(sizeof *rc_sec);
    if (!rc_sec) return hetee_error(HETEE_ERR_NOMEM, "no memory");
    rc_have = 0;
  }
  if (!rc_have || sodium_memcmp(rc_sec->seal_key, e->sec->seal_key, 32)) {
    sodium_memzero(rc_sec, sizeof *rc_sec);
    rc_have = 0;
    rc_ndp = rc_next = 0;
    int rc = release_keys(e, rc_sec->pk, rc_sec->sk);
    if (rc) {
      sodium_memzero(rc_sec, sizeof *rc_sec);
      return rc;
    }
    memcpy(rc_sec->seal_key, e->sec->seal_key, 32);
    rc_have = 1;
  }
  *out = rc_sec;
  return 0;
}

void enclave_auth_warm(enclave *e) {
  relcache *k = NULL;
  (void)relcache_get(e, &k);
  hetee_error_clear();
}

/* The crypto_box shared key from the release key to dp's X25519 form. */
static int relcache_shared(relcache *c, const uint8_t dp[32], const uint8_t **k) {
  for (unsigned i = 0; i < rc_ndp; i++)
    if (!memcmp(rc_dp[i], dp, 32)) {
      *k = c->shared[i];
      return 0;
    }
  uint8_t x[32];
  if (crypto_sign_ed25519_pk_to_curve25519(x, dp))
    return hetee_error(HETEE_ERR_CRYPTO, "the data provider's key has no X25519 form");
  unsigned i = rc_ndp < RELC_DPS ? rc_ndp++ : rc_next++ % RELC_DPS;
  if (crypto_box_beforenm(c->shared[i], x, c->sk)) {
    sodium_memzero(c->shared[i], sizeof c->shared[i]);
    memset(rc_dp[i], 0, 32); /* no public key is all zero after the check above */
    return hetee_error(HETEE_ERR_CRYPTO, "crypto_box_beforenm");
  }
  memcpy(rc_dp[i], dp, 32);
  *k = c->shared[i];
  return 0;
}

int enclave_auth_release_key_cmd(enclave *e, hetee_wbuf *reply) {
  uint8_t *k = sodium_malloc(64);
  if (!k) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  int rc = release_keys(e, k, k + 32);
  if (!rc) hetee_wbuf_put(reply, k, 32);
  sodium_free(k);
  return rc;
}

_Static_assert(HETEE_WITNESS_SEALBYTES == crypto_box_SEALBYTES, "witness seal overhead");

int enclave_auth_open_witness(enclave *e, const uint8_t *sealed, size_t len, uint8_t *plain) {
  if (len < crypto_box_SEALBYTES) return hetee_error(HETEE_ERR_FORMAT, "input witness too short");
  relcache *k = NULL;
  int rc = relcache_get(e, &k);
  if (!rc && crypto_box_seal_open(plain, sealed, len, k->pk, k->sk))
    rc = hetee_error(HETEE_ERR_AUTH, "the input witness does not open with this enclave's release key");
  return rc;
}

int enclave_auth_seal_to_dp(enclave *e, const uint8_t dp[32], uint32_t model, const uint8_t digest[32], uint32_t sample,
                            const uint8_t *rec, size_t len, uint8_t **out, size_t *olen) {
  relcache *k = NULL;
  const uint8_t *shared = NULL;
  int rc = relcache_get(e, &k);
  if (!rc) rc = relcache_shared(k, dp, &shared);
  size_t plen = sizeof IDREL_TAG + 4 + 32 + 4 + len;
  /* the record in the cache's locked scratch (a larger one in its own) */
  uint8_t *own = !rc && plen > RELC_SCRATCH ? sodium_malloc(plen) : NULL;
  uint8_t *plain = rc ? NULL : own ? own : k->scratch;
  uint8_t *c = rc ? NULL : malloc(crypto_box_NONCEBYTES + crypto_box_MACBYTES + plen);
  if (!rc && (!plain || !c)) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc) {
    memcpy(plain, IDREL_TAG, sizeof IDREL_TAG);
    hetee_le32(plain + sizeof IDREL_TAG, model);
    memcpy(plain + sizeof IDREL_TAG + 4, digest, 32);
    hetee_le32(plain + sizeof IDREL_TAG + 36, sample);
    memcpy(plain + sizeof IDREL_TAG + 40, rec, len);
    randombytes_buf(c, crypto_box_NONCEBYTES);
    if (crypto_box_easy_afternm(c + crypto_box_NONCEBYTES, plain, plen, c, shared))
      rc = hetee_error(HETEE_ERR_CRYPTO, "crypto_box");
  }
  if (own) sodium_free(own);
  else if (plain) sodium_memzero(plain, plen);
  if (rc) {
    free(c);
    return rc;
  }
  *out = c;
  *olen = crypto_box_NONCEBYTES + crypto_box_MACBYTES + plen;
  return 0;
}

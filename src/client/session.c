/*
 * session.c — the party's end of the session channel (channel.c): an
 * ephemeral X25519 key, the transcript signed with the party's identity key
 * and bound to the evidence it verified, key confirmation from the enclave,
 * then counter-protected XChaCha20-Poly1305 messages. Also the plaintext
 * encodings of session commands and of released results.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"

#define CONFIRM "hetee-session-ok"

int hetee_client_session_new(const hetee_party_key *id, const hetee_verified_enclave *v, hetee_client_session **out,
                             uint8_t **hs, size_t *hs_len) {
  if (!id || !v || !out || !hs || !hs_len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  *hs = NULL;
  if (sodium_init() < 0) return hetee_error(HETEE_ERR_CRYPTO, "sodium_init");
  hetee_client_session *s = sodium_malloc(sizeof *s);
  uint8_t *b = malloc(1 + 32 + 32 + 32 + 64);
  uint8_t eph_sk[32], eph_pk[32], shared[32], tr[32];
  int rc = 0;
  if (!s || !b) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto err;
  }
  memset(s, 0, sizeof *s);
  crypto_box_keypair(eph_pk, eph_sk);
  uint8_t role = (uint8_t)id->role;
  hetee_session_transcript(role, id->pk, eph_pk, v->evidence_hash, v->channel_pk, tr);
  if (crypto_scalarmult(shared, eph_sk, v->channel_pk) != 0) {
    rc = hetee_error(HETEE_ERR_CRYPTO, "degenerate enclave channel key");
    goto err;
  }
  rc = hetee_session_derive(shared, tr, 0, &s->chan);
  if (rc) goto err;
  s->chan.role = role;
  memcpy(s->chan.party_pk, id->pk, 32);
  b[0] = role;
  memcpy(b + 1, id->pk, 32);
  memcpy(b + 33, eph_pk, 32);
  memcpy(b + 65, v->evidence_hash, 32);
  crypto_sign_detached(b + 97, NULL, tr, 32, id->sk);
  *out = s;
  *hs = b;
  *hs_len = 161;
  s = NULL;
  b = NULL;
err:
  sodium_memzero(eph_sk, sizeof eph_sk);
  sodium_memzero(shared, sizeof shared);
  if (s) sodium_free(s);
  free(b);
  return rc;
}

int hetee_client_session_finish(hetee_client_session *s, const uint8_t *reply, size_t len) {
  if (!s || !reply) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (len < HETEE_SESSION_ID_BYTES || memcmp(reply, s->chan.id, HETEE_SESSION_ID_BYTES) != 0)
    return hetee_error(HETEE_ERR_PROTOCOL, "handshake answer names another session");
  uint8_t *m;
  size_t n;
  int rc = hetee_chan_open(&s->chan, reply + HETEE_SESSION_ID_BYTES, len - HETEE_SESSION_ID_BYTES, &m, &n);
  if (rc) return rc == HETEE_ERR_FORMAT ? hetee_error(HETEE_ERR_PROTOCOL, "handshake answer malformed") : rc;
  int ok = n == sizeof CONFIRM && memcmp(m, CONFIRM, n) == 0;
  free(m);
  if (!ok) return hetee_error(HETEE_ERR_AUTH, "enclave did not confirm the session keys");
  s->finished = 1;
  return 0;
}

void hetee_client_session_id(const hetee_client_session *s, uint8_t id[16]) { memcpy(id, s->chan.id, 16); }

void hetee_client_session_free(hetee_client_session *s) {
  if (s) sodium_free(s);
}

int hetee_client_session_seal(hetee_client_session *s, const uint8_t *msg, size_t len, uint8_t **out, size_t *olen) {
  if (!s || (!msg && len) || !out || !olen) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (!s->finished) return hetee_error(HETEE_ERR_STATE, "session handshake not finished");
  return hetee_chan_seal(&s->chan, msg, len, out, olen);
}

int hetee_client_session_open(hetee_client_session *s, const uint8_t *in, size_t len, uint8_t **msg, size_t *mlen) {
  if (!s || !in || !msg || !mlen) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (!s->finished) return hetee_error(HETEE_ERR_STATE, "session handshake not finished");
  return hetee_chan_open(&s->chan, in, len, msg, mlen);
}

int hetee_client_msg_ping(const uint8_t *payload, size_t len, uint8_t **msg, size_t *mlen) {
  if ((!payload && len) || !msg || !mlen) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u16(&w, 1);
  hetee_wbuf_put(&w, payload, len);
  if (w.err) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  *msg = hetee_wbuf_take(&w, mlen);
  return 0;
}

int hetee_client_msg_policy(uint32_t model_id, int kind, int k, int prec_bits, const uint8_t dp_pk[32], uint8_t **msg,
                            size_t *mlen) {
  if (!dp_pk) return hetee_error(HETEE_ERR_INVALID_ARG, "a release policy must name its data provider");
  return hetee_client_msg_policy_dps(model_id, kind, k, prec_bits, (const uint8_t(*)[32])dp_pk, 1, msg, mlen);
}

int hetee_client_msg_policy_dps(uint32_t model_id, int kind, int k, int prec_bits, const uint8_t (*dps)[32], size_t n,
                                uint8_t **msg, size_t *mlen) {
  if (!msg || !mlen || kind < HETEE_RELEASE_VALUES || kind > HETEE_RELEASE_TOPK || k < 0 || k > 255 ||
      prec_bits < 0 || prec_bits > 40)
    return hetee_error(HETEE_ERR_INVALID_ARG, "bad policy");
  if (!dps || n < 1 || n > HETEE_POLICY_MAX_DPS)
    return hetee_error(HETEE_ERR_INVALID_ARG, "a release policy names 1 to %d data providers", HETEE_POLICY_MAX_DPS);
  for (size_t i = 0; i < n; i++) {
    if (sodium_is_zero(dps[i], 32))
      return hetee_error(HETEE_ERR_INVALID_ARG, "a release policy must name its data provider");
    for (size_t j = 0; j < i; j++)
      if (!memcmp(dps[i], dps[j], 32)) return hetee_error(HETEE_ERR_INVALID_ARG, "a data provider named twice");
  }
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u16(&w, 2);
  hetee_wbuf_u32(&w, model_id);
  hetee_wbuf_u8(&w, (uint8_t)kind);
  hetee_wbuf_u8(&w, (uint8_t)k);
  hetee_wbuf_u8(&w, (uint8_t)prec_bits);
  if (n > 1) hetee_wbuf_u8(&w, (uint8_t)n); /* n = 1 keeps the one-DP form */
  for (size_t i = 0; i < n; i++) hetee_wbuf_put(&w, dps[i], 32);
  if (w.err) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  *msg = hetee_wbuf_take(&w, mlen);
  return 0;
}

void hetee_release_result_clear(hetee_release_result *r) {
  if (!r) return;
  free(r->values);
  free(r->indices);
  memset(r, 0, sizeof *r);
}

/* Parses the release record m[0..n) into out; m is wiped and freed. */
static int parse_release(uint8_t *m, size_t n, hetee_release_result *out) {
  int rc;
  hetee_rbuf r;
  hetee_rbuf_init(&r, m, n);
  out->kind = hetee_rbuf_u8(&r);
  out->model_id = hetee_rbuf_u32(&r);
  out->prec_bits = hetee_rbuf_u8(&r);
  uint32_t cnt = hetee_rbuf_u32(&r);
  if (r.err || cnt > HETEE_RELEASE_MAX_VALUES || out->prec_bits > 40) goto bad;
  out->n = cnt;
  if (out->kind == HETEE_RELEASE_VALUES || out->kind == HETEE_RELEASE_SOFTMAX) {
    out->values = malloc((cnt ? cnt : 1) * sizeof *out->values);
    if (!out->values) goto nomem;
    double unit = 1.0 / (double)(1ull << out->prec_bits);
    for (uint32_t i = 0; i < cnt; i++) out->values[i] = (double)(int64_t)hetee_rbuf_u64(&r) * unit;
  } else if (out->kind == HETEE_RELEASE_ARGMAX || out->kind == HETEE_RELEASE_TOPK) {
    out->indices = malloc((cnt ? cnt : 1) * sizeof *out->indices);
    if (!out->indices) goto nomem;
    for (uint32_t i = 0; i < cnt; i++) out->indices[i] = hetee_rbuf_u32(&r);
  } else {
    goto bad;
  }
  if (r.err || hetee_rbuf_left(&r)) goto bad;
  sodium_memzero(m, n);
  free(m);
  return 0;
nomem:
  rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  goto err;
bad:
  rc = hetee_error(HETEE_ERR_FORMAT, "malformed release record");
err:
  sodium_memzero(m, n);
  free(m);
  hetee_release_result_clear(out);
  return rc;
}

int hetee_client_release_open(hetee_client_session *s, const uint8_t *sealed, size_t len, hetee_release_result *out) {
  if (!out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  memset(out, 0, sizeof *out);
  uint8_t *m;
  size_t n;
  int rc = hetee_client_session_open(s, sealed, len, &m, &n);
  if (rc) return rc;
  return parse_release(m, n, out);
}

#define IDREL_TAG "hetee-idrel-v1"
#define IDREL_HDR (sizeof IDREL_TAG + 4 + 32 + 4)

/* crypto_box_beforenm of the enclave's release key and the party's X25519
 * form of its identity key: what opening each result of a job reuses. */
int client_release_beforenm(const hetee_party_key *k, const uint8_t release_pk[32], uint8_t *shared) {
  if (!k || !release_pk || !shared) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  uint8_t *xsk = sodium_malloc(32);
  int rc = xsk ? 0 : hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc && crypto_sign_ed25519_sk_to_curve25519(xsk, k->sk)) rc = hetee_error(HETEE_ERR_CRYPTO, "identity key");
  if (!rc && crypto_box_beforenm(shared, release_pk, xsk)) rc = hetee_error(HETEE_ERR_AUTH, "the enclave's release key");
  if (xsk) sodium_free(xsk);
  if (rc) sodium_memzero(shared, crypto_box_BEFORENMBYTES);
  return rc;
}

int client_release_open_id_afternm(const uint8_t *shared, uint32_t model_id, const uint8_t digest[32], uint32_t sample,
                                   const uint8_t *sealed, size_t len, hetee_release_result *out) {
  if (!shared || !digest || !sealed || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  memset(out, 0, sizeof *out);
  if (len < crypto_box_NONCEBYTES + crypto_box_MACBYTES + IDREL_HDR)
    return hetee_error(HETEE_ERR_FORMAT, "sealed result too short");
  size_t plen = len - crypto_box_NONCEBYTES - crypto_box_MACBYTES;
  uint8_t *plain = malloc(plen);
  int rc = 0;
  if (!plain) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc && crypto_box_open_easy_afternm(plain, sealed + crypto_box_NONCEBYTES, len - crypto_box_NONCEBYTES, sealed,
                                          shared))
    rc = hetee_error(HETEE_ERR_AUTH, "the result is not sealed to this data provider by the enclave's release key");
  if (!rc && (memcmp(plain, IDREL_TAG, sizeof IDREL_TAG) || hetee_rd32(plain + sizeof IDREL_TAG) != model_id ||
              sodium_memcmp(plain + sizeof IDREL_TAG + 4, digest, 32) ||
              hetee_rd32(plain + sizeof IDREL_TAG + 36) != sample))
    rc = hetee_error(HETEE_ERR_AUTH, "the result belongs to another model, job or sample");
  if (rc) {
    if (plain) sodium_memzero(plain, plen);
    free(plain);
    return rc;
  }
  memmove(plain, plain + IDREL_HDR, plen - IDREL_HDR);
  sodium_memzero(plain + plen - IDREL_HDR, IDREL_HDR);
  return parse_release(plain, plen - IDREL_HDR, out);
}

int hetee_client_release_open_id(const hetee_party_key *k, const uint8_t release_pk[32], uint32_t model_id,
                                 const uint8_t digest[32], uint32_t sample, const uint8_t *sealed, size_t len,
                                 hetee_release_result *out) {
  if (!k || !release_pk || !digest || !sealed || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  memset(out, 0, sizeof *out);
  if (len < crypto_box_NONCEBYTES + crypto_box_MACBYTES + IDREL_HDR)
    return hetee_error(HETEE_ERR_FORMAT, "sealed result too short");
  uint8_t *shared = sodium_malloc(crypto_box_BEFORENMBYTES);
  if (!shared) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  int rc = client_release_beforenm(k, release_pk, shared);
  /* a release key that is not a valid X25519 point opens nothing */
  if (rc == HETEE_ERR_AUTH)
    rc = hetee_error(HETEE_ERR_AUTH, "the result is not sealed to this data provider by the enclave's release key");
  if (!rc) rc = client_release_open_id_afternm(shared, model_id, digest, sample, sealed, len, out);
  sodium_free(shared);
  return rc;
}

/*
 * sessions.c — party sessions inside the enclave: the handshake (the party
 * signs a transcript with its Ed25519 identity key; X25519 with the enclave's
 * attested channel key; keys bound to evidence this enclave issued), the
 * party registry, session commands (ping, release policy), and the release
 * operation, whose result leaves the enclave only sealed to one data
 * provider's session and only after rounding (docs/architecture.md).
 *
 * Who may set release policies: only a model provider whose identity key is
 * in the measured configuration's mp= list (config.c), and for a model id
 * already bound, only the model provider that set its first policy (the
 * model's owner, kept in the sealed state). A policy names exactly one data
 * provider, and a release goes only to that party's session. Identities are
 * self-declared keys, so without these checks the host could open "MP" and
 * "DP" sessions with keys it made up and release any ciphertext to itself
 * (docs/security.md, "Release authorization").
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/trusted/activations.h"
#include "enclave/trusted/enclave_internal.h"
#include "enclave/trusted/integrity_auth.h"

#define HS_BYTES (1 + 32 + 32 + 32 + 64)
#define CMD_PING 1
#define CMD_SET_POLICY 2
#define CONFIRM "hetee-session-ok"

static hetee_chan *find_session(enclave *e, const uint8_t *id) {
  for (int i = 0; i < ENCLAVE_MAX_SESSIONS; i++)
    if (e->sec->session_used[i] && sodium_memcmp(e->sec->sessions[i].id, id, HETEE_SESSION_ID_BYTES) == 0)
      return &e->sec->sessions[i];
  return NULL;
}

static void register_party(enclave *e, const uint8_t pk[32], uint8_t role) {
  for (size_t i = 0; i < e->n_parties; i++)
    if (!memcmp(e->parties[i].pk, pk, 32) && e->parties[i].role == role) return;
  if (e->n_parties < ENCLAVE_MAX_PARTIES) {
    memcpy(e->parties[e->n_parties].pk, pk, 32);
    e->parties[e->n_parties].role = role;
    e->n_parties++;
  }
}

int enclave_handle_session_open(enclave *e, hetee_rbuf *r, hetee_wbuf *w) {
  if (hetee_rbuf_left(r) != HS_BYTES) return hetee_error(HETEE_ERR_PROTOCOL, "session handshake must be %d bytes", HS_BYTES);
  uint8_t role = hetee_rbuf_u8(r);
  const uint8_t *id_pk = hetee_rbuf_get(r, 32), *eph = hetee_rbuf_get(r, 32), *evh = hetee_rbuf_get(r, 32),
                *sig = hetee_rbuf_get(r, 64);
  if (role != HETEE_ROLE_MP && role != HETEE_ROLE_DP) return hetee_error(HETEE_ERR_PROTOCOL, "unknown party role %u", role);
  /* Each evidence opens at most one session: a replayed handshake would
   * otherwise recreate the same keys with counters back at zero. */
  int issued = -1;
  unsigned n = e->n_issued < ENCLAVE_EVIDENCE_RING ? e->n_issued : ENCLAVE_EVIDENCE_RING;
  /* used-up entries are zeroed below: an all-zero hash must not match them */
  if (sodium_is_zero(evh, 32))
    return hetee_error(HETEE_ERR_KEY_BINDING, "session bound to evidence this enclave did not issue or already used");
  for (unsigned i = 0; i < n; i++)
    if (!memcmp(e->issued[i], evh, 32)) issued = (int)i;
  if (issued < 0)
    return hetee_error(HETEE_ERR_KEY_BINDING, "session bound to evidence this enclave did not issue or already used");
  uint8_t tr[32];
  hetee_session_transcript(role, id_pk, eph, evh, e->ch_pk, tr);
  if (crypto_sign_verify_detached(sig, tr, 32, id_pk) != 0)
    return hetee_error(HETEE_ERR_BAD_SIGNATURE, "handshake not signed by the party's identity key");
  uint8_t shared[32];
  if (crypto_scalarmult(shared, e->sec->ch_sk, eph) != 0) return hetee_error(HETEE_ERR_CRYPTO, "degenerate ephemeral key");
  unsigned slot = e->next_session++ % ENCLAVE_MAX_SESSIONS; /* oldest session is replaced when full */
  hetee_chan *c = &e->sec->sessions[slot];
  int rc = hetee_session_derive(shared, tr, 1, c);
  sodium_memzero(shared, sizeof shared);
  if (rc) return rc;
  c->role = role;
  memcpy(c->party_pk, id_pk, 32);
  e->sec->session_used[slot] = 1;
  memset(e->issued[issued], 0, 32); /* used up */
  register_party(e, id_pk, role);
  uint8_t *conf;
  size_t clen;
  rc = hetee_chan_seal(c, (const uint8_t *)CONFIRM, sizeof CONFIRM, &conf, &clen);
  if (rc) return rc;
  hetee_wbuf_put(w, c->id, HETEE_SESSION_ID_BYTES);
  hetee_wbuf_put(w, conf, clen);
  free(conf);
  return 0;
}

static enclave_policy *find_policy(enclave *e, uint32_t model) {
  for (int i = 0; i < ENCLAVE_MAX_POLICIES; i++)
    if (e->policies[i].used && e->policies[i].model_id == model) return &e->policies[i];
  return NULL;
}

static int mp_listed(const enclave *e, const uint8_t pk[32]) {
  for (int i = 0; i < e->cfg.n_mp; i++)
    if (!memcmp(e->cfg.mp[i], pk, 32)) return 1; /* public keys: no constant time needed */
  return 0;
}

/* First 8 bytes of a key in hex, for error details (keys are public). */
static const char *short_hex(const uint8_t pk[32], char out[17]) {
  sodium_bin2hex(out, 17, pk, 8);
  return out;
}

/* The checks every policy passes, when set and when unsealed: an owner
 * listed in mp= (first: who asks matters before what is asked), kind, k,
 * precision, a named data provider. */
static int policy_check(const enclave *e, const enclave_policy *p) {
  char h[17];
  if (!e->cfg.n_mp)
    return hetee_error(HETEE_ERR_AUTH,
                       "release policies are disabled: this enclave's measured configuration has no mp= key");
  if (!mp_listed(e, p->owner))
    return hetee_error(HETEE_ERR_AUTH, "model provider %s... is not in this enclave's measured mp= list",
                       short_hex(p->owner, h));
  if (p->kind < HETEE_RELEASE_VALUES || p->kind > HETEE_RELEASE_TOPK || (p->kind == HETEE_RELEASE_TOPK && p->k < 1))
    return hetee_error(HETEE_ERR_INVALID_ARG, "policy kind %u / k %u invalid", p->kind, p->k);
  /* Released values keep at most scale_bits - 16 fractional bits: the
   * rounding unit stays 2^16 times above 1/scale, far above the CKKS
   * decryption noise, so released values carry no noise bits (the
   * Li-Micciancio attack needs them). */
  if ((int)p->prec_bits > e->cfg.scale_bits - 16)
    return hetee_error(HETEE_ERR_INVALID_ARG, "policy precision of %u bits above the %d this enclave releases",
                       p->prec_bits, e->cfg.scale_bits - 16);
  if (p->n_dp < 1 || p->n_dp > HETEE_POLICY_MAX_DPS)
    return hetee_error(HETEE_ERR_INVALID_ARG, "policy for model %u names %u data providers (1..%d)", p->model_id,
                       p->n_dp, HETEE_POLICY_MAX_DPS);
  for (unsigned i = 0; i < p->n_dp; i++) {
    /* "any data provider" would let the host name a DP key it made up */
    if (sodium_is_zero(p->dp_pk[i], 32))
      return hetee_error(HETEE_ERR_INVALID_ARG, "policy for model %u names no data provider (one DP key is required)",
                         p->model_id);
    for (unsigned j = 0; j < i; j++)
      if (!memcmp(p->dp_pk[i], p->dp_pk[j], 32))
        return hetee_error(HETEE_ERR_INVALID_ARG, "policy for model %u names a data provider twice", p->model_id);
  }
  return 0;
}

static int set_policy(enclave *e, const hetee_chan *c, hetee_rbuf *r) {
  if (c->role != HETEE_ROLE_MP) return hetee_error(HETEE_ERR_AUTH, "only a model provider sets release policies");
  enclave_policy p;
  memset(&p, 0, sizeof p);
  p.model_id = hetee_rbuf_u32(r);
  p.kind = hetee_rbuf_u8(r);
  p.k = hetee_rbuf_u8(r);
  p.prec_bits = hetee_rbuf_u8(r);
  /* one DP: dp[32] (the first form); several: u8 n | n x dp[32]. The two
   * cannot be confused: 32 bytes left vs 1 + 32 n. */
  if (hetee_rbuf_left(r) == 32) {
    p.n_dp = 1;
  } else {
    p.n_dp = hetee_rbuf_u8(r);
    if (p.n_dp > HETEE_POLICY_MAX_DPS) return hetee_error(HETEE_ERR_PROTOCOL, "malformed policy: %u data providers", p.n_dp);
  }
  for (unsigned i = 0; i < p.n_dp; i++) hetee_rbuf_copy(r, p.dp_pk[i], 32);
  if (r->err || hetee_rbuf_left(r)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed policy");
  memcpy(p.owner, c->party_pk, 32);
  int rc = policy_check(e, &p);
  if (rc) return rc;
  p.used = 1;
  enclave_policy *old = find_policy(e, p.model_id);
  char h[17];
  if (old && memcmp(old->owner, p.owner, 32))
    return hetee_error(HETEE_ERR_AUTH, "model %u belongs to model provider %s..., not to this one", p.model_id,
                       short_hex(old->owner, h));
  if (!old)
    for (int i = 0; i < ENCLAVE_MAX_POLICIES && !old; i++)
      if (!e->policies[i].used) old = &e->policies[i];
  if (!old) return hetee_error(HETEE_ERR_LIMIT, "policy table full");
  *old = p;
  return 0;
}

int enclave_handle_session_msg(enclave *e, hetee_rbuf *r, hetee_wbuf *w) {
  size_t len = hetee_rbuf_left(r);
  const uint8_t *in = hetee_rbuf_get(r, len);
  if (len < HETEE_SESSION_OVERHEAD) return hetee_error(HETEE_ERR_FORMAT, "session message too short");
  hetee_chan *c = find_session(e, in);
  if (!c) return hetee_error(HETEE_ERR_NOT_FOUND, "no such session");
  uint8_t *msg;
  size_t mlen;
  int rc = hetee_chan_open(c, in, len, &msg, &mlen);
  if (rc) return rc;
  hetee_rbuf m;
  hetee_rbuf_init(&m, msg, mlen);
  uint16_t cmd = hetee_rbuf_u16(&m);
  hetee_wbuf reply;
  hetee_wbuf_init(&reply);
  hetee_wbuf_u16(&reply, cmd);
  if (m.err) rc = hetee_error(HETEE_ERR_PROTOCOL, "empty session message");
  else if (cmd == CMD_PING) hetee_wbuf_put(&reply, msg + 2, mlen - 2);
  else if (cmd == CMD_SET_POLICY) rc = set_policy(e, c, &m);
  else if (cmd >= 3 && cmd <= 6) rc = enclave_integrity_session_cmd(e, c, cmd, &m, &reply);
  else if (cmd == ENCLAVE_CMD_RELEASE_KEY) rc = hetee_rbuf_left(&m) ? hetee_error(HETEE_ERR_PROTOCOL, "malformed release key request")
                                                                    : enclave_auth_release_key_cmd(e, &reply);
  else rc = hetee_error(HETEE_ERR_PROTOCOL, "unknown session command %u", cmd);
  sodium_memzero(msg, mlen);
  free(msg);
  if (!rc) {
    uint8_t *out;
    size_t olen;
    rc = reply.err ? hetee_error(HETEE_ERR_NOMEM, "no memory") : hetee_chan_seal(c, reply.p, reply.len, &out, &olen);
    if (!rc) {
      hetee_wbuf_put(w, out, olen);
      free(out);
    }
  }
  hetee_wbuf_free(&reply);
  return rc;
}

/* Applies the policy and writes the plaintext release record:
 * u8 kind | u32 model | u8 prec | u32 n | n x (i64 fixed | u32 index). */
static int build_release(const enclave_policy *p, double *v, size_t n, hetee_wbuf *out) {
  hetee_wbuf_u8(out, p->kind);
  hetee_wbuf_u32(out, p->model_id);
  hetee_wbuf_u8(out, p->prec_bits);
  if (p->kind == HETEE_RELEASE_VALUES || p->kind == HETEE_RELEASE_SOFTMAX) {
    if (p->kind == HETEE_RELEASE_SOFTMAX) hetee_softmax_ct(v, n);
    hetee_wbuf_u32(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++) hetee_wbuf_u64(out, (uint64_t)hetee_round_fixed(v[i], p->prec_bits));
  } else if (p->kind == HETEE_RELEASE_ARGMAX) {
    hetee_wbuf_u32(out, 1);
    hetee_wbuf_u32(out, hetee_argmax_ct(v, n));
  } else {
    size_t k = p->k < n ? p->k : n;
    double *work = sodium_malloc(n * sizeof *work);
    uint32_t *idx = malloc(k * sizeof *idx);
    if (!work || !idx) {
      if (work) sodium_free(work);
      free(idx);
      return hetee_error(HETEE_ERR_NOMEM, "no memory for top-k");
    }
    hetee_topk_ct(v, n, k, work, idx);
    hetee_wbuf_u32(out, (uint32_t)k);
    for (size_t i = 0; i < k; i++) hetee_wbuf_u32(out, idx[i]);
    sodium_free(work);
    free(idx);
  }
  return out->err ? hetee_error(HETEE_ERR_NOMEM, "no memory") : 0;
}

int enclave_handle_release(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  uint32_t model = hetee_rbuf_u32(r);
  uint8_t sid[HETEE_SESSION_ID_BYTES];
  hetee_rbuf_copy(r, sid, sizeof sid);
  if (r->err) return hetee_error(HETEE_ERR_PROTOCOL, "malformed release request");
  enclave_policy *p = find_policy(e, model);
  if (!p) return hetee_error(HETEE_ERR_NOT_FOUND, "no release policy for model %u", model);
  if (enclave_integrity_bound(e, model))
    return hetee_error(HETEE_ERR_AUTH, "model %u has a registered plan: its results are released only by verified jobs",
                       model);
  hetee_chan *c = find_session(e, sid);
  if (!c) return hetee_error(HETEE_ERR_NOT_FOUND, "no such session");
  int named = 0;
  for (unsigned i = 0; i < p->n_dp; i++) named |= !memcmp(p->dp_pk[i], c->party_pk, 32);
  if (c->role != HETEE_ROLE_DP || !named)
    return hetee_error(HETEE_ERR_AUTH, "session is not a data provider model %u's policy names", model);
  double *v = NULL;
  size_t n = 0;
  int rc = enclave_release_values(e, r, p->prec_bits, &v, &n, items);
  if (rc) return rc;
  hetee_wbuf rec;
  hetee_wbuf_init(&rec);
  rc = build_release(p, v, n, &rec);
  sodium_memzero(v, n * sizeof *v); /* the locked workspace (refresh.c) */
  if (!rc) {
    uint8_t *out;
    size_t olen;
    rc = hetee_chan_seal(c, rec.p, rec.len, &out, &olen);
    if (!rc) {
      hetee_wbuf_put(w, out, olen);
      free(out);
    }
  }
  hetee_wbuf_free(&rec);
  return rc;
}

/* Sealed state: u32 version (3) | keys (enclave_keys_export) | u32 n |
 * n x (pk[32] | u8 role) | u32 np | np x (u32 model | u8 kind | u8 k |
 * u8 prec | u8 n_dp | n_dp x dp_pk[32] | owner[32]). Version 2 (read too)
 * had exactly one dp_pk[32] and no n_dp. */
#define SEALED_STATE_VERSION 4 /* 4: + bound-model registrations (integrity.c) */
int enclave_handle_seal(enclave *e, hetee_wbuf *w) {
  hetee_wbuf st;
  hetee_wbuf_init(&st);
  hetee_wbuf_u32(&st, SEALED_STATE_VERSION);
  int rc = enclave_keys_export(e, &st);
  hetee_wbuf_u32(&st, (uint32_t)e->n_parties);
  for (size_t i = 0; i < e->n_parties; i++) {
    hetee_wbuf_put(&st, e->parties[i].pk, 32);
    hetee_wbuf_u8(&st, e->parties[i].role);
  }
  uint32_t np = 0;
  for (int i = 0; i < ENCLAVE_MAX_POLICIES; i++) np += e->policies[i].used;
  hetee_wbuf_u32(&st, np);
  for (int i = 0; i < ENCLAVE_MAX_POLICIES; i++) {
    const enclave_policy *p = &e->policies[i];
    if (!p->used) continue;
    hetee_wbuf_u32(&st, p->model_id);
    hetee_wbuf_u8(&st, p->kind);
    hetee_wbuf_u8(&st, p->k);
    hetee_wbuf_u8(&st, p->prec_bits);
    hetee_wbuf_u8(&st, p->n_dp);
    for (unsigned j = 0; j < p->n_dp; j++) hetee_wbuf_put(&st, p->dp_pk[j], 32);
    hetee_wbuf_put(&st, p->owner, 32);
  }
  enclave_integrity_export(&st);
  if (!rc && st.err) rc = hetee_error(HETEE_ERR_NOMEM, "no memory to seal");
  if (!rc) {
    uint8_t *blob;
    size_t blen;
    rc = hetee_seal_blob(e->sec->seal_key, st.p, st.len, &blob, &blen);
    if (!rc) {
      hetee_wbuf_put(w, blob, blen);
      free(blob);
    }
  }
  hetee_wbuf_free(&st);
  return rc;
}

int enclave_handle_unseal(enclave *e, hetee_rbuf *r) {
  size_t len = hetee_rbuf_left(r);
  const uint8_t *in = hetee_rbuf_get(r, len);
  uint8_t *plain;
  size_t plen;
  int rc = hetee_unseal_blob(e->sec->seal_key, in, len, &plain, &plen);
  if (rc) return rc;
  /* Parse and check the whole state before changing anything, so that a
   * malformed (if authentic) state leaves the running enclave as it was. */
  enclave_party *parties = calloc(ENCLAVE_MAX_PARTIES, sizeof *parties);
  enclave_policy *policies = calloc(ENCLAVE_MAX_POLICIES, sizeof *policies);
  if (!parties || !policies) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory to unseal");
    goto out;
  }
  hetee_rbuf s;
  hetee_rbuf_init(&s, plain, plen);
  uint32_t version = hetee_rbuf_u32(&s);
  if (version != SEALED_STATE_VERSION && version != 3 && version != 2) {
    rc = hetee_error(HETEE_ERR_VERSION, "sealed state version %u, this enclave reads 2, 3 and %d", version,
                     SEALED_STATE_VERSION);
    goto out;
  }
  hetee_rbuf keys = s; /* the key blobs, imported last */
  size_t skip;
  (void)hetee_rbuf_blob(&s, HETEE_FRAME_MAX_BODY, &skip);
  (void)hetee_rbuf_blob(&s, HETEE_FRAME_MAX_BODY, &skip);
  uint32_t n = hetee_rbuf_u32(&s);
  if (s.err || n > ENCLAVE_MAX_PARTIES) {
    rc = hetee_error(HETEE_ERR_FORMAT, "sealed party registry");
    goto out;
  }
  for (uint32_t i = 0; i < n; i++) {
    hetee_rbuf_copy(&s, parties[i].pk, 32);
    parties[i].role = hetee_rbuf_u8(&s);
  }
  uint32_t np = hetee_rbuf_u32(&s);
  if (s.err || np > ENCLAVE_MAX_POLICIES) {
    rc = hetee_error(HETEE_ERR_FORMAT, "sealed policies");
    goto out;
  }
  for (uint32_t i = 0; i < np; i++) {
    enclave_policy *p = &policies[i];
    p->model_id = hetee_rbuf_u32(&s);
    p->kind = hetee_rbuf_u8(&s);
    p->k = hetee_rbuf_u8(&s);
    p->prec_bits = hetee_rbuf_u8(&s);
    p->n_dp = version == 2 ? 1 : hetee_rbuf_u8(&s);
    if (p->n_dp > HETEE_POLICY_MAX_DPS) {
      rc = hetee_error(HETEE_ERR_FORMAT, "sealed policy %u names %u data providers", i, p->n_dp);
      goto out;
    }
    for (unsigned j = 0; j < p->n_dp; j++) hetee_rbuf_copy(&s, p->dp_pk[j], 32);
    hetee_rbuf_copy(&s, p->owner, 32);
    p->used = 1;
    if (s.err) break; /* reported below */
    /* the checks set_policy made when the policy was set, against this
     * enclave's configuration (owner in mp=), and one owner per model */
    int prc = policy_check(e, p);
    if (prc) {
      char why[256]; /* copied: hetee_error rewrites the detail buffer */
      snprintf(why, sizeof why, "%s", hetee_last_error());
      rc = hetee_error(prc == HETEE_ERR_AUTH ? HETEE_ERR_AUTH : HETEE_ERR_FORMAT, "sealed policy %u refused: %s", i, why);
      goto out;
    }
    for (uint32_t j = 0; j < i; j++)
      if (policies[j].model_id == p->model_id) {
        rc = hetee_error(HETEE_ERR_FORMAT, "sealed state has two policies for model %u", p->model_id);
        goto out;
      }
  }
  hetee_rbuf integ = s; /* version 4: bound-model registrations, imported last */
  if (version >= 4 && !s.err && (rc = enclave_integrity_import(&s, policies, np, 0))) goto out;
  if (s.err || hetee_rbuf_left(&s)) {
    rc = hetee_error(HETEE_ERR_FORMAT, "sealed state malformed");
    goto out;
  }
  rc = enclave_keys_import(e, &keys);
  if (rc) goto out;
  if (version >= 4) (void)enclave_integrity_import(&integ, policies, np, 1);
  memcpy(e->parties, parties, ENCLAVE_MAX_PARTIES * sizeof *parties);
  e->n_parties = n;
  memcpy(e->policies, policies, ENCLAVE_MAX_POLICIES * sizeof *policies);
out:
  free(parties);
  free(policies);
  sodium_free(plain);
  return rc;
}

/* Accessors for integrity.c. */
int enclave_build_release(const enclave_policy *p, double *v, size_t n, hetee_wbuf *out) {
  return build_release(p, v, n, out);
}
const enclave_policy *enclave_find_policy(enclave *e, uint32_t model) { return find_policy(e, model); }
hetee_chan *enclave_find_session(enclave *e, const uint8_t *id) { return find_session(e, id); }

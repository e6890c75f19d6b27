/*
 * integrity_msgs.c — the parties' side of bound inference (issue 9,
 * docs/security.md "Integrity of the host's work"): the model provider's
 * registration of its encrypted model (digest of the plan and of every
 * weight / bias ciphertext, as the enclave recomputes it from what the host
 * streams), the data provider's authorization of its input micro-batches
 * (digest of each micro-batch's stage-0 ciphertexts, as the enclave
 * recomputes it at JOB_START), and the integrity status both may read.
 * The messages are session commands: sealed by the party's session, whose
 * keys its Ed25519 identity signed into the handshake, so the host can
 * neither forge nor alter them.
 */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/wire/proto.h"
#include "hemat/engine_internal.h"
#include "hetee/client.h"

#define CMD_MODEL_REGISTER 3
#define CMD_JOB_AUTH 4
#define CMD_STATUS 5
#define CMD_SET_BUDGET 6

static int hash_ct(crypto_generichash_state *hs, const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct) {
  uint8_t *b, l[8];
  size_t len;
  int rc = hetee_ckks_ciphertext_save(ctx, ct, &b, &len);
  if (rc) return rc;
  hetee_le64(l, (uint64_t)len);
  crypto_generichash_update(hs, l, 8);
  crypto_generichash_update(hs, b, len);
  free(b);
  return 0;
}

int hetee_engine_model_digest(const hetee_engine_model *em, uint8_t out[32]) {
  if (!em || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  uint8_t *plan, l[8];
  size_t plen;
  int rc = engine_plan_save(em->plan, &plan, &plen);
  if (rc) return rc;
  crypto_generichash_state hs;
  crypto_generichash_init(&hs, NULL, 0, 32);
  static const char tag[] = "hetee-model-v1";
  crypto_generichash_update(&hs, (const uint8_t *)tag, sizeof tag);
  hetee_le64(l, (uint64_t)plen);
  crypto_generichash_update(&hs, l, 8);
  crypto_generichash_update(&hs, plan, plen);
  free(plan);
  const hetee_engine_plan *p = em->plan;
  for (size_t s = 0; s < p->nstages && !rc; s++) {
    size_t nw = p->st[s].layout.n_w_cts, nb = p->st[s].has_bias ? (size_t)p->st[s].layout.nmb : 0;
    for (size_t i = 0; i < nw && !rc; i++) rc = hash_ct(&hs, em->ctx, em->w[s][i]);
    for (size_t i = 0; i < nb && !rc; i++) rc = hash_ct(&hs, em->ctx, em->bias[s][i]);
  }
  crypto_generichash_final(&hs, out, 32);
  return rc;
}

int hetee_client_msg_model_register(uint32_t model_id, const hetee_engine_model *em, uint8_t **msg, size_t *len) {
  if (!msg || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  uint8_t d[32];
  int rc = hetee_engine_model_digest(em, d);
  if (rc) return rc;
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u16(&w, CMD_MODEL_REGISTER);
  hetee_wbuf_u32(&w, model_id);
  hetee_wbuf_put(&w, d, 32);
  if (w.err) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  *msg = hetee_wbuf_take(&w, len);
  return 0;
}

int hetee_engine_input_digests(const hetee_engine_input *in, const hetee_engine_plan *p, uint32_t model_id,
                               uint8_t (*out)[32], size_t max, size_t *nmb) {
  if (!in || !p || !nmb) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  size_t n = (in->count + p->micro_batch - 1) / p->micro_batch, off = 0;
  *nmb = n;
  if (n > max) return hetee_error(HETEE_ERR_LIMIT, "%zu micro-batches, room for %zu", n, max);
  for (size_t k = 0; k < n; k++) {
    uint32_t bk = engine_mb_size(in->count, p->micro_batch, k);
    hetee_hemat_layout L;
    int rc = hetee_engine_plan_layout(p, 0, bk, &L);
    if (rc) return rc;
    if (off + L.n_in_cts > in->ncts) return hetee_error(HETEE_ERR_SHAPE, "input shorter than its plan");
    crypto_generichash_state hs;
    crypto_generichash_init(&hs, NULL, 0, 32);
    static const char tag[] = "hetee-input-v1";
    crypto_generichash_update(&hs, (const uint8_t *)tag, sizeof tag);
    uint8_t hdr[12];
    hetee_le32(hdr, model_id);
    hetee_le32(hdr + 4, bk);
    hetee_le32(hdr + 8, (uint32_t)L.n_in_cts);
    crypto_generichash_update(&hs, hdr, 12);
    for (size_t i = 0; i < L.n_in_cts && !rc; i++) rc = hash_ct(&hs, in->ctx, in->cts[off + i]);
    crypto_generichash_final(&hs, out[k], 32);
    if (rc) return rc;
    off += L.n_in_cts;
  }
  return 0;
}

int hetee_client_msg_job_auth(uint32_t model_id, const hetee_engine_input *in, const hetee_engine_plan *p,
                              uint8_t **msg, size_t *len) {
  if (!msg || !len || !in || !p) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  size_t n = 0;
  uint8_t(*d)[32] = malloc(256 * 32);
  if (!d) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  int rc = hetee_engine_input_digests(in, p, model_id, d, 256, &n);
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u16(&w, CMD_JOB_AUTH);
  hetee_wbuf_u32(&w, model_id);
  hetee_wbuf_u32(&w, (uint32_t)n);
  for (size_t k = 0; k < n && !rc; k++) {
    hetee_wbuf_u32(&w, engine_mb_size(in->count, p->micro_batch, k));
    hetee_wbuf_put(&w, d[k], 32);
  }
  free(d);
  if (!rc && w.err) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (rc) {
    hetee_wbuf_free(&w);
    return rc;
  }
  *msg = hetee_wbuf_take(&w, len);
  return 0;
}

int hetee_client_msg_integrity_status(uint32_t model_id, uint8_t **msg, size_t *len) {
  if (!msg || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u16(&w, CMD_STATUS);
  hetee_wbuf_u32(&w, model_id);
  if (w.err) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  *msg = hetee_wbuf_take(&w, len);
  return 0;
}

int hetee_client_integrity_status_parse(const uint8_t *reply, size_t len, hetee_integrity_status *out) {
  if (!reply || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_rbuf r;
  hetee_rbuf_init(&r, reply, len);
  memset(out, 0, sizeof *out);
  uint16_t cmd = hetee_rbuf_u16(&r);
  out->model_id = hetee_rbuf_u32(&r);
  out->loaded = hetee_rbuf_u8(&r);
  out->jobs = hetee_rbuf_u64(&r);
  out->checks = hetee_rbuf_u64(&r);
  out->failures = hetee_rbuf_u64(&r);
  out->last_failed_stage = (int32_t)hetee_rbuf_u32(&r);
  out->budget = hetee_rbuf_u64(&r);
  out->used = hetee_rbuf_u64(&r);
  if (r.err || hetee_rbuf_left(&r) || cmd != CMD_STATUS) return hetee_error(HETEE_ERR_FORMAT, "integrity status reply");
  return 0;
}

int hetee_client_msg_query_budget(uint32_t model_id, uint64_t images, uint8_t **msg, size_t *len) {
  if (!msg || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u16(&w, CMD_SET_BUDGET);
  hetee_wbuf_u32(&w, model_id);
  hetee_wbuf_u64(&w, images);
  if (w.err) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  *msg = hetee_wbuf_take(&w, len);
  return 0;
}

/* ---- detached authorizations (the service path) ----------------------- */
#define AUTH_TAG "hetee-job-auth-v1"
#define CMD_RELEASE_KEY 7

int hetee_job_auth_digests(hetee_job_auth *a, uint32_t model_id, const hetee_engine_input *in,
                           const hetee_engine_plan *p) {
  if (!a || !in || !p) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  size_t n = 0;
  a->model = model_id;
  int rc = hetee_engine_input_digests(in, p, model_id, a->digest, HETEE_JOB_AUTH_MAX, &n);
  if (rc) return rc;
  if (n < 1) return hetee_error(HETEE_ERR_SHAPE, "empty input");
  a->n = (uint32_t)n;
  for (size_t k = 0; k < n; k++) a->batch[k] = engine_mb_size(in->count, p->micro_batch, k);
  return 0;
}

/* "hetee-job-auth-v1\0" || body without the signature. */
static int auth_message(const hetee_job_auth *a, hetee_wbuf *w) {
  if (a->n < 1 || a->n > HETEE_JOB_AUTH_MAX) return hetee_error(HETEE_ERR_INVALID_ARG, "%u micro-batches", a->n);
  hetee_wbuf_init(w);
  hetee_wbuf_put(w, AUTH_TAG, sizeof AUTH_TAG);
  hetee_wbuf_u32(w, a->model);
  hetee_wbuf_put(w, a->dp, 32);
  hetee_wbuf_put(w, a->nonce, 16);
  hetee_wbuf_u32(w, a->n);
  for (uint32_t i = 0; i < a->n; i++) {
    hetee_wbuf_u32(w, a->batch[i]);
    hetee_wbuf_put(w, a->digest[i], 32);
  }
  if (w->err) {
    hetee_wbuf_free(w);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  return 0;
}

int hetee_job_auth_sign(hetee_job_auth *a, const hetee_party_key *k) {
  if (!a || !k) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_party_key_public(k, a->dp);
  hetee_wbuf w;
  int rc = auth_message(a, &w);
  if (rc) return rc;
  rc = hetee_party_key_sign(k, w.p, w.len, a->sig);
  hetee_wbuf_free(&w);
  return rc;
}

int hetee_job_auth_verify(const hetee_job_auth *a) {
  if (!a) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_wbuf w;
  int rc = auth_message(a, &w);
  if (rc) return rc;
  int bad = crypto_sign_verify_detached(a->sig, w.p, w.len, a->dp) != 0;
  hetee_wbuf_free(&w);
  return bad ? hetee_error(HETEE_ERR_AUTH, "the job authorization's signature does not verify") : 0;
}

int hetee_job_auth_encode(const hetee_job_auth *a, uint8_t **out, size_t *len) {
  if (!a || !out || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_wbuf w;
  int rc = auth_message(a, &w);
  if (rc) return rc;
  hetee_wbuf_put(&w, a->sig, 64);
  if (w.err) {
    hetee_wbuf_free(&w);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  size_t n;
  uint8_t *b = hetee_wbuf_take(&w, &n);
  /* without the tag: the request body */
  memmove(b, b + sizeof AUTH_TAG, n - sizeof AUTH_TAG);
  *out = b;
  *len = n - sizeof AUTH_TAG;
  return 0;
}

int hetee_job_auth_decode(const uint8_t *b, size_t len, hetee_job_auth *a) {
  if (!b || !a) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  memset(a, 0, sizeof *a);
  hetee_rbuf r;
  hetee_rbuf_init(&r, b, len);
  a->model = hetee_rbuf_u32(&r);
  hetee_rbuf_copy(&r, a->dp, 32);
  hetee_rbuf_copy(&r, a->nonce, 16);
  a->n = hetee_rbuf_u32(&r);
  if (r.err || a->n < 1 || a->n > HETEE_JOB_AUTH_MAX || hetee_rbuf_left(&r) != (size_t)a->n * 36 + 64)
    return hetee_error(HETEE_ERR_FORMAT, "malformed job authorization");
  for (uint32_t i = 0; i < a->n; i++) {
    a->batch[i] = hetee_rbuf_u32(&r);
    hetee_rbuf_copy(&r, a->digest[i], 32);
  }
  hetee_rbuf_copy(&r, a->sig, 64);
  return r.err ? hetee_error(HETEE_ERR_FORMAT, "malformed job authorization") : 0;
}

int hetee_client_msg_release_key(uint8_t **msg, size_t *len) {
  if (!msg || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u16(&w, CMD_RELEASE_KEY);
  if (w.err) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  *msg = hetee_wbuf_take(&w, len);
  return 0;
}

int hetee_client_release_key_parse(const uint8_t *reply, size_t len, uint8_t pk[32]) {
  if (!reply || !pk) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_rbuf r;
  hetee_rbuf_init(&r, reply, len);
  uint16_t cmd = hetee_rbuf_u16(&r);
  hetee_rbuf_copy(&r, pk, 32);
  if (r.err || hetee_rbuf_left(&r) || cmd != CMD_RELEASE_KEY) return hetee_error(HETEE_ERR_FORMAT, "release key reply");
  return 0;
}

/* ---- input witnesses (docs/security.md "Integrity of the host's work") -- */
_Static_assert(HETEE_WITNESS_SEALBYTES == crypto_box_SEALBYTES, "witness seal overhead");
_Static_assert(HETEE_WITNESS_HEAD == crypto_box_PUBLICKEYBYTES + crypto_box_MACBYTES, "witness digest head");

int hetee_engine_witness_digest(uint32_t model_id, uint32_t batch, const uint8_t *sealed, size_t len, uint8_t out[32]) {
  if (!sealed || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_witness_digest(model_id, batch, sealed, len, out);
  return 0;
}

void hetee_engine_witnesses_clear(hetee_engine_witnesses *w) {
  if (!w) return;
  for (size_t k = 0; w->blob && k < w->n; k++) free(w->blob[k]);
  free(w->blob);
  free(w->len);
  free(w->batch);
  free(w->digest);
  memset(w, 0, sizeof *w);
}

int hetee_engine_witnesses_make(const hetee_engine_plan *p, uint32_t model_id, const uint8_t release_pk[32],
                                const float *x, size_t count, hetee_engine_witnesses *out) {
  if (!p || !release_pk || !x || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  memset(out, 0, sizeof *out);
  if (count < 1 || count > HETEE_ENGINE_MAX_IMAGES)
    return hetee_error(HETEE_ERR_INVALID_ARG, "%zu samples (1..%u)", count, HETEE_ENGINE_MAX_IMAGES);
  /* the values must be those an encoder accepts (checked before anything is sealed) */
  size_t nv = count * p->in_size;
  for (size_t i = 0; i < nv; i++)
    if (!(fabs((double)x[i]) <= HETEE_WITNESS_MAX_ABS))
      return hetee_error(HETEE_ERR_INVALID_ARG, "input value %zu is not finite or above 2^20 in magnitude", i);
  size_t n = (count + p->micro_batch - 1) / p->micro_batch;
  out->n = n;
  out->blob = calloc(n, sizeof *out->blob);
  out->len = calloc(n, sizeof *out->len);
  out->batch = calloc(n, sizeof *out->batch);
  out->digest = calloc(n, sizeof *out->digest);
  int rc = out->blob && out->len && out->batch && out->digest ? 0 : hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (size_t k = 0; k < n && !rc; k++) {
    uint32_t bk = engine_mb_size(count, p->micro_batch, k);
    size_t vals = (size_t)bk * p->in_size, plen = HETEE_WITNESS_HDR + 4 * vals;
    uint8_t *plain = sodium_malloc(plen); /* the DP's values: locked, wiped by sodium_free */
    size_t slen = HETEE_WITNESS_SEALED_LEN(bk, p->in_size);
    out->blob[k] = malloc(slen);
    if (!plain || !out->blob[k]) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    if (!rc) {
      memcpy(plain, HETEE_WITNESS_TAG, sizeof HETEE_WITNESS_TAG);
      hetee_le32(plain + sizeof HETEE_WITNESS_TAG, model_id);
      hetee_le32(plain + sizeof HETEE_WITNESS_TAG + 4, bk);
      hetee_le32(plain + sizeof HETEE_WITNESS_TAG + 8, (uint32_t)p->in_size);
      const float *xk = x + k * (size_t)p->micro_batch * p->in_size;
      for (size_t i = 0; i < vals; i++) {
        uint32_t u;
        memcpy(&u, &xk[i], 4);
        hetee_le32(plain + HETEE_WITNESS_HDR + 4 * i, u);
      }
      if (crypto_box_seal(out->blob[k], plain, plen, release_pk))
        rc = hetee_error(HETEE_ERR_CRYPTO, "crypto_box_seal (is the enclave's release key valid?)");
    }
    if (plain) sodium_free(plain);
    if (!rc) {
      out->len[k] = slen;
      out->batch[k] = bk;
      rc = hetee_engine_witness_digest(model_id, bk, out->blob[k], slen, out->digest[k]);
    }
  }
  if (rc) hetee_engine_witnesses_clear(out);
  return rc;
}

int hetee_client_msg_job_auth_witness(uint32_t model_id, const hetee_engine_witnesses *wit, uint8_t **msg,
                                      size_t *len) {
  if (!msg || !len || !wit || !wit->digest || !wit->batch) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (wit->n < 1 || wit->n > HETEE_JOB_AUTH_MAX)
    return hetee_error(HETEE_ERR_LIMIT, "%zu micro-batches (1..%d per message)", wit->n, HETEE_JOB_AUTH_MAX);
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u16(&w, CMD_JOB_AUTH);
  hetee_wbuf_u32(&w, model_id);
  hetee_wbuf_u32(&w, (uint32_t)wit->n);
  for (size_t k = 0; k < wit->n; k++) {
    hetee_wbuf_u32(&w, wit->batch[k]);
    hetee_wbuf_put(&w, wit->digest[k], 32);
  }
  if (w.err) {
    hetee_wbuf_free(&w);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  *msg = hetee_wbuf_take(&w, len);
  return 0;
}

int hetee_job_auth_witness_digests(hetee_job_auth *a, uint32_t model_id, const hetee_engine_witnesses *wit) {
  if (!a || !wit || !wit->digest || !wit->batch) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (wit->n < 1 || wit->n > HETEE_JOB_AUTH_MAX)
    return hetee_error(HETEE_ERR_LIMIT, "%zu micro-batches (1..%d per authorization)", wit->n, HETEE_JOB_AUTH_MAX);
  a->model = model_id;
  a->n = (uint32_t)wit->n;
  for (size_t k = 0; k < wit->n; k++) {
    a->batch[k] = wit->batch[k];
    memcpy(a->digest[k], wit->digest[k], 32);
  }
  return 0;
}

/* "HTWT" | u32 version 1 | u32 model | u32 n | n x (u32 batch | u64 len | sealed) */
#define WIT_MAGIC "HTWT"

int hetee_engine_witnesses_save(const hetee_engine_witnesses *wit, uint32_t model_id, uint8_t **out, size_t *len) {
  if (!wit || !out || !len || (wit->n && (!wit->batch || !wit->blob || !wit->len)))
    return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_put(&w, WIT_MAGIC, 4);
  hetee_wbuf_u32(&w, 1);
  hetee_wbuf_u32(&w, model_id);
  hetee_wbuf_u32(&w, (uint32_t)wit->n);
  for (size_t k = 0; k < wit->n; k++) {
    hetee_wbuf_u32(&w, wit->batch[k]);
    hetee_wbuf_blob(&w, wit->blob[k], wit->len[k]);
  }
  if (w.err) {
    hetee_wbuf_free(&w);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  *out = hetee_wbuf_take(&w, len);
  return 0;
}

int hetee_engine_witnesses_load(const hetee_engine_plan *p, uint32_t model_id, const uint8_t *b, size_t len,
                                hetee_engine_witnesses *out) {
  if (!p || !b || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  memset(out, 0, sizeof *out);
  hetee_rbuf r;
  hetee_rbuf_init(&r, b, len);
  uint8_t magic[4];
  hetee_rbuf_copy(&r, magic, 4);
  uint32_t ver = hetee_rbuf_u32(&r), model = hetee_rbuf_u32(&r), n = hetee_rbuf_u32(&r);
  if (r.err || memcmp(magic, WIT_MAGIC, 4)) return hetee_error(HETEE_ERR_FORMAT, "not an input witness file");
  if (ver != 1) return hetee_error(HETEE_ERR_VERSION, "input witness file version %u (this library reads 1)", ver);
  if (model != model_id) return hetee_error(HETEE_ERR_FORMAT, "input witnesses for model %u, not %u", model, model_id);
  /* each entry takes at least 12 + its sealed bytes */
  if (n < 1 || (size_t)n > hetee_rbuf_left(&r) / (12 + HETEE_WITNESS_SEALED_LEN(1, p->in_size)))
    return hetee_error(HETEE_ERR_FORMAT, "input witness file: %u micro-batches in %zu bytes", n, len);
  out->n = n;
  out->blob = calloc(n, sizeof *out->blob);
  out->len = calloc(n, sizeof *out->len);
  out->batch = calloc(n, sizeof *out->batch);
  out->digest = calloc(n, sizeof *out->digest);
  int rc = out->blob && out->len && out->batch && out->digest ? 0 : hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (uint32_t k = 0; k < n && !rc; k++) {
    uint32_t bk = hetee_rbuf_u32(&r);
    size_t bl;
    const uint8_t *sb = hetee_rbuf_blob(&r, len, &bl);
    if (r.err || bk < 1 || bk > p->micro_batch || bl != HETEE_WITNESS_SEALED_LEN(bk, p->in_size)) {
      rc = hetee_error(HETEE_ERR_FORMAT, "input witness file: micro-batch %u malformed", k);
      break;
    }
    out->blob[k] = malloc(bl);
    if (!out->blob[k]) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      break;
    }
    memcpy(out->blob[k], sb, bl);
    out->len[k] = bl;
    out->batch[k] = bk;
    rc = hetee_engine_witness_digest(model_id, bk, sb, bl, out->digest[k]);
  }
  if (!rc && hetee_rbuf_left(&r)) rc = hetee_error(HETEE_ERR_FORMAT, "input witness file: trailing bytes");
  if (rc) hetee_engine_witnesses_clear(out);
  return rc;
}

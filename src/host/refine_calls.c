/*
 * refine_calls.c — the host's driver of refining in the enclave process
 * (hetee_host_refine_*, include/hetee/refine.h): a hetee_refine_trusted
 * whose four operations are REFINE_FORWARD / LOSS / BACK / UPDATE requests
 * (wire in enclave/wire/proto.h, handlers in src/enclave/trusted/refine.c),
 * so the host loop (hemat/refine_host.c) runs unchanged while the secret key
 * stays in the enclave; before the first step the frozen layers
 * (REFINE_FROZEN) and each trained layer's authorized weights (REFINE_INIT,
 * op_init; none for a layer a resumed state keeps). Also the model provider's authorization message
 * and the fetch of refined weights sealed to the MP's session.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hemat/refine_internal.h"
#include "hetee/enclave.h"
#include "host/host_internal.h"

#define PART_BYTES (32u << 20) /* requests stay well below HETEE_FRAME_MAX_BODY */
#define GRAD_PART_BYTES PART_BYTES

typedef struct remote {
  hetee_host_enclave *e;
  const hetee_ckks_context *ctx;
  hetee_refine_plan p;
  uint32_t job;
  uint64_t enc, dec;
  uint8_t held[HETEE_REFINE_MAX_LAYERS]; /* the enclave keeps layer l's weights */
  uint32_t nfz; /* frozen layers the MP's authorization digests: sent once (REFINE_FROZEN) */
  uint8_t fz_sent[HETEE_REFINE_MAX_LAYERS]; /* frozen layer l loaded (not sent again on a retry) */
} remote;

/* ---- requests ---- */
static int put_list(const remote *rm, hetee_wbuf *w, ct_t *const *c, size_t n) {
  size_t total = 4;
  for (size_t i = 0; i < n; i++) {
    size_t len = 0;
    if (!c[i]) return hetee_error(HETEE_ERR_INVALID_ARG, "ciphertext %zu missing", i);
    int rc = hetee_ckks_ciphertext_save_size(rm->ctx, c[i], &len);
    if (rc) return rc;
    total += 8 + len;
  }
  if (hetee_wbuf_reserve(w, total)) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  hetee_wbuf_u32(w, (uint32_t)n);
  for (size_t i = 0; i < n; i++) {
    size_t len = 0, got = 0;
    int rc = hetee_ckks_ciphertext_save_size(rm->ctx, c[i], &len);
    if (rc) return rc;
    hetee_wbuf_u64(w, (uint64_t)len);
    rc = hetee_ckks_ciphertext_save_to(rm->ctx, c[i], w->p + w->len, len, &got);
    if (rc) return rc;
    w->len += got;
  }
  return w->err ? hetee_error(HETEE_ERR_NOMEM, "no memory") : 0;
}

/* A step's input list: inline when it fits PART_BYTES, else sent ahead in
 * REFINE_PUT parts and written as an empty list (u32 0). */
static int put_list_staged(const remote *rm, hetee_wbuf *w, ct_t *const *c, size_t n) {
  size_t total = 0, len;
  for (size_t i = 0; i < n; i++) {
    int rc = hetee_ckks_ciphertext_save_size(rm->ctx, c[i], &len);
    if (rc) return rc;
    total += 8 + len;
  }
  if (total <= PART_BYTES) return put_list(rm, w, c, n);
  int rc = 0;
  for (size_t first = 0; first < n && !rc;) {
    size_t k = 0, bytes = 0;
    while (first + k < n && !rc) {
      rc = hetee_ckks_ciphertext_save_size(rm->ctx, c[first + k], &len);
      if (rc || (k && bytes + len > PART_BYTES)) break;
      bytes += len;
      k++;
    }
    if (rc) break;
    hetee_wbuf p;
    hetee_wbuf_init(&p);
    hetee_wbuf_u32(&p, rm->job);
    rc = put_list(rm, &p, c + first, k);
    hetee_frame f;
    memset(&f, 0, sizeof f);
    if (!rc) rc = hetee_host_call_frame(rm->e, HETEE_MSG_REFINE_PUT, p.p, p.len, &f, 0);
    if (!rc) hetee_frame_clear(&f);
    hetee_wbuf_free_public(&p);
    first += k;
  }
  if (!rc) hetee_wbuf_u32(w, 0);
  return rc;
}

/* u32 n (must be `want`) | n blobs loaded into out[0..n) (fresh objects). */
static int take_list(const remote *rm, hetee_rbuf *r, size_t want, ct_t **out) {
  uint32_t n = hetee_rbuf_u32(r);
  if (r->err || n != want) return hetee_error(HETEE_ERR_PROTOCOL, "enclave replied %u ciphertexts, the plan has %zu", n, want);
  for (uint32_t i = 0; i < n; i++) {
    size_t len = 0;
    const uint8_t *b = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &len);
    if (r->err) return hetee_error(HETEE_ERR_PROTOCOL, "truncated refine reply");
    int rc = hetee_ckks_ciphertext_load(rm->ctx, b, len, &out[i]);
    if (rc) return rc;
  }
  return 0;
}

static void drop(ct_t **c, size_t n) {
  if (!c) return;
  for (size_t i = 0; i < n; i++) {
    hetee_ckks_ciphertext_free(c[i]);
    c[i] = NULL;
  }
}

/* Sends w (freed here), parses the reply's lists into outs[k] (counts
 * want[k]) and the counters. On error every out is freed. */
static int call(remote *rm, uint16_t type, hetee_wbuf *w, int nlists, ct_t **const *outs, const size_t *want) {
  int rc = w->err ? hetee_error(HETEE_ERR_NOMEM, "no memory") : 0;
  hetee_frame f;
  memset(&f, 0, sizeof f);
  if (!rc) rc = hetee_host_call_frame(rm->e, type, w->p, w->len, &f, 0);
  hetee_wbuf_free_public(w);
  if (rc) return rc;
  hetee_rbuf r;
  hetee_rbuf_init(&r, f.body, f.len);
  for (int k = 0; k < nlists && !rc; k++) rc = take_list(rm, &r, want[k], outs[k]);
  if (!rc) {
    uint64_t enc = hetee_rbuf_u64(&r), dec = hetee_rbuf_u64(&r);
    if (r.err || hetee_rbuf_left(&r)) rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed refine reply");
    rm->enc = enc;
    rm->dec = dec;
  }
  if (rc)
    for (int k = 0; k < nlists; k++)
      if (outs[k]) drop(outs[k], want[k]);
  hetee_frame_clear(&f);
  return rc;
}

/* A step request: u32 job | u32 layer (l >= 0) | u32 count | the n
 * ciphertexts of `in` (staged by PUT when large) [| the labels]. On error
 * w is freed. */
static int step_request(const remote *rm, hetee_wbuf *w, int l, uint32_t count, ct_t *const *in, size_t n,
                        const ct_t *labels) {
  hetee_wbuf_init(w);
  hetee_wbuf_u32(w, rm->job);
  if (l >= 0) hetee_wbuf_u32(w, (uint32_t)l);
  hetee_wbuf_u32(w, count);
  ct_t *lab[1] = {(ct_t *)labels};
  int rc = put_list_staged(rm, w, in, n);
  if (!rc && labels) rc = put_list(rm, w, lab, 1);
  if (rc) hetee_wbuf_free_public(w);
  return rc;
}

/* Sends a fixed request; on success f holds the reply (the caller clears
 * it) and r reads it. */
static int call_fixed(const remote *rm, uint16_t type, const uint8_t *req, size_t rlen, hetee_frame *f, hetee_rbuf *r) {
  memset(f, 0, sizeof *f);
  int rc = hetee_host_call_frame(rm->e, type, req, rlen, f, 0);
  if (!rc) hetee_rbuf_init(r, f->body, f->len);
  return rc;
}

static int op_forward(void *arg, int l, ct_t *const *out, uint32_t count, ct_t **next_in, ct_t **next_gw) {
  remote *rm = arg;
  const hetee_refine_plan *p = &rm->p;
  if (l < 0 || l >= p->nl - 1) return hetee_error(HETEE_ERR_INVALID_ARG, "forward refresh of layer %d", l);
  const hetee_refine_layer *L = &p->L[l], *N1 = &p->L[l + 1];
  hetee_wbuf w;
  int rc = step_request(rm, &w, l, count, out, L->F.n_out_cts, NULL);
  if (rc) return rc;
  ct_t **outs[2] = {next_in, N1->trains ? next_gw : NULL};
  size_t want[2] = {N1->F.n_in_cts, N1->trains ? N1->G.n_w_cts : 0};
  return call(rm, HETEE_MSG_REFINE_FORWARD, &w, 2, outs, want);
}

static int op_loss(void *arg, ct_t *const *logits, const ct_t *labels, uint32_t count, ct_t **dG, ct_t **dT) {
  remote *rm = arg;
  const hetee_refine_plan *p = &rm->p;
  const hetee_refine_layer *L = &p->L[p->nl - 1];
  hetee_wbuf w;
  int rc = step_request(rm, &w, -1, count, logits, L->F.n_out_cts, labels);
  if (rc) return rc;
  ct_t **outs[2] = {dG, L->has_back ? dT : NULL};
  size_t want[2] = {L->G.n_in_cts, L->has_back ? L->T.n_in_cts : 0};
  return call(rm, HETEE_MSG_REFINE_LOSS, &w, 2, outs, want);
}

static int op_back(void *arg, int l, ct_t *const *u, uint32_t count, ct_t **dG, ct_t **dT) {
  remote *rm = arg;
  const hetee_refine_plan *p = &rm->p;
  if (l < 1 || l >= p->nl || !p->L[l].has_back) return hetee_error(HETEE_ERR_INVALID_ARG, "no W^T stage at layer %d", l);
  const hetee_refine_layer *L = &p->L[l], *P = &p->L[l - 1];
  hetee_wbuf w;
  int rc = step_request(rm, &w, l, count, u, L->T.n_out_cts, NULL);
  if (rc) return rc;
  ct_t **outs[2] = {dG, P->has_back ? dT : NULL};
  size_t want[2] = {P->G.n_in_cts, P->has_back ? P->T.n_in_cts : 0};
  return call(rm, HETEE_MSG_REFINE_BACK, &w, 2, outs, want);
}

static int op_update(void *arg, int l, ct_t *const *gacc, uint32_t nsamples, ct_t *const *W, ct_t *const *bias,
                     ct_t *const *V, ct_t **nW, ct_t **nbias, ct_t **nWT, ct_t **nV) {
  remote *rm = arg;
  const hetee_refine_plan *p = &rm->p;
  if (l < p->first_train || l >= p->nl) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %d does not train", l);
  const hetee_refine_layer *L = &p->L[l];
  int mom = p->cfg.momentum > 0;
  size_t nv = mom ? refine_compact_cts((size_t)L->m * (size_t)(L->k + 1), p->n) : 0;
  hetee_wbuf w;
  int rc = 0;
  /* the gradient in parts of at most GRAD_PART_BYTES (it may exceed a frame) */
  for (size_t first = 0, ng = L->G.n_out_cts; first < ng && !rc;) {
    size_t n = 0, bytes = 0, len;
    while (first + n < ng && !rc) {
      rc = hetee_ckks_ciphertext_save_size(rm->ctx, gacc[first + n], &len);
      if (rc || (n && bytes + len > GRAD_PART_BYTES)) break;
      bytes += len;
      n++;
    }
    if (rc) break;
    hetee_wbuf_init(&w);
    hetee_wbuf_u32(&w, rm->job);
    hetee_wbuf_u32(&w, (uint32_t)l);
    hetee_wbuf_u32(&w, (uint32_t)first);
    rc = put_list(rm, &w, gacc + first, n);
    if (rc) hetee_wbuf_free_public(&w);
    else rc = call(rm, HETEE_MSG_REFINE_GRAD, &w, 0, NULL, NULL);
    first += n;
  }
  if (rc) return rc;
  hetee_wbuf_init(&w);
  hetee_wbuf_u32(&w, rm->job);
  hetee_wbuf_u32(&w, (uint32_t)l);
  hetee_wbuf_u32(&w, nsamples);
  hetee_wbuf_u32(&w, 0); /* gradient: the parts above */
  /* W, bias, momentum: the enclave keeps them since REFINE_INIT (empty lists) */
  (void)W;
  (void)bias;
  (void)V;
  hetee_wbuf_u32(&w, 0);
  hetee_wbuf_u32(&w, 0);
  hetee_wbuf_u32(&w, 0);
  ct_t **outs[4] = {nW, nbias, L->has_back ? nWT : NULL, nv ? nV : NULL};
  size_t want[4] = {L->F.n_w_cts, (size_t)L->F.nmb, L->has_back ? L->T.n_w_cts : 0, nv};
  return call(rm, HETEE_MSG_REFINE_UPDATE, &w, 4, outs, want);
}

/* The enclave's CPU on refine requests so far (its STATS). */
static double op_cpu_s(void *arg) {
  remote *rm = arg;
  hetee_enclave_op_stats st[64];
  size_t n = 0;
  if (hetee_host_stats(rm->e, st, 64, &n)) return 0;
  uint64_t ns = 0;
  for (size_t i = 0; i < n; i++)
    if (st[i].type >= HETEE_MSG_REFINE_OPEN && st[i].type <= HETEE_MSG_REFINE_LAST) ns += st[i].cpu_ns;
  return 1e-9 * (double)ns;
}

static void op_counts(void *arg, uint64_t *enc, uint64_t *dec) {
  remote *rm = arg;
  *enc = rm->enc;
  *dec = rm->dec;
}

static void op_free(void *arg) {
  remote *rm = arg;
  if (!rm) return;
  if (rm->e && rm->job) {
    uint8_t b[4];
    hetee_le32(b, rm->job);
    hetee_frame f;
    if (!hetee_host_call_frame(rm->e, HETEE_MSG_REFINE_CLOSE, b, 4, &f, 0)) hetee_frame_clear(&f);
  }
  free(rm);
}

/* The step's batch witness (REFINE_WITNESS, before FORWARD 0). */
static int op_witness(void *arg, uint32_t count, uint64_t batch_no, const uint8_t dp[32], const uint8_t sig[64],
                      const uint8_t *sealed, size_t len) {
  remote *rm = arg;
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  if (hetee_wbuf_reserve(&w, 4 + 4 + 8 + 96 + 8 + len)) {
    hetee_wbuf_free_public(&w);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  hetee_wbuf_u32(&w, rm->job);
  hetee_wbuf_u32(&w, count);
  hetee_wbuf_u64(&w, batch_no);
  hetee_wbuf_put(&w, dp, 32);
  hetee_wbuf_put(&w, sig, 64);
  hetee_wbuf_blob(&w, sealed, len);
  return call(rm, HETEE_MSG_REFINE_WITNESS, &w, 0, NULL, NULL);
}

/* Frozen layer l's W and bias, once per job (REFINE_FROZEN parts of at
 * most PART_BYTES, in order). */
static int op_frozen(void *arg, int l, ct_t *const *W, ct_t *const *bias) {
  remote *rm = arg;
  const hetee_refine_plan *p = &rm->p;
  if (l < 0 || l >= p->first_train) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %d is not frozen", l);
  if ((uint32_t)l >= rm->nfz || rm->fz_sent[l]) return 0; /* not authorized by digest: the enclave does not check it */
  const hetee_refine_layer *L = &p->L[l];
  size_t nw = L->F.n_w_cts, total = nw + (size_t)L->F.nmb;
  int rc = 0;
  for (size_t first = 0; first < total && !rc;) {
    size_t n = 0, bytes = 0, len;
    while (first + n < total && !rc) {
      size_t i = first + n;
      rc = hetee_ckks_ciphertext_save_size(rm->ctx, i < nw ? W[i] : bias[i - nw], &len);
      if (rc || (n && bytes + len > PART_BYTES) || (n && i == nw)) break; /* a part holds weights or biases */
      bytes += len;
      n++;
    }
    if (rc) break;
    hetee_wbuf w;
    hetee_wbuf_init(&w);
    hetee_wbuf_u32(&w, rm->job);
    hetee_wbuf_u32(&w, (uint32_t)l);
    hetee_wbuf_u32(&w, (uint32_t)first);
    rc = put_list(rm, &w, first < nw ? W + first : bias + (first - nw), n);
    if (rc) hetee_wbuf_free_public(&w);
    else rc = call(rm, HETEE_MSG_REFINE_FROZEN, &w, 0, NULL, NULL);
    first += n;
  }
  if (!rc) rm->fz_sent[l] = 1;
  return rc;
}

/* Trained layer l's weights of the job's start (REFINE_INIT), once per job
 * before its first step; none when the enclave holds them (a resumed state
 * that keeps them). */
static int op_init(void *arg, int l, ct_t *const *W, ct_t *const *bias, ct_t *const *V) {
  remote *rm = arg;
  const hetee_refine_plan *p = &rm->p;
  if (l < p->first_train || l >= p->nl) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %d does not train", l);
  if (rm->held[l]) return 0;
  const hetee_refine_layer *L = &p->L[l];
  size_t nv = p->cfg.momentum > 0 ? refine_compact_cts((size_t)L->m * (size_t)(L->k + 1), p->n) : 0;
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u32(&w, rm->job);
  hetee_wbuf_u32(&w, (uint32_t)l);
  int rc = put_list(rm, &w, W, L->F.n_w_cts);
  if (!rc) rc = put_list(rm, &w, bias, (size_t)L->F.nmb);
  if (!rc) rc = put_list(rm, &w, V, nv);
  if (rc) {
    hetee_wbuf_free_public(&w);
    return rc;
  }
  rc = call(rm, HETEE_MSG_REFINE_INIT, &w, 0, NULL, NULL);
  if (!rc) rm->held[l] = 1;
  return rc;
}

static const hetee_refine_trusted_ops remote_ops = {op_forward, op_loss,  op_back,    op_update, op_cpu_s,
                                                    op_counts,  op_free,  op_witness, op_frozen, op_init};

/* ---- opening, authorization, fetch ---- */
static int layer_digest(const hetee_ckks_context *ctx, const hetee_refine_state *s, int l, uint8_t out[32]) {
  const hetee_refine_plan *p = refine_state_plan(s);
  const hetee_refine_layer *L = &p->L[l];
  ct_t *const *W, *const *B, *const *V;
  size_t nv = 0;
  refine_state_layer(s, l, &W, &B, &V, &nv);
  if (!L->trains) nv = 0; /* a frozen layer: W and bias */
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  ct_t *const *lists[3] = {W, B, V};
  size_t ns[3] = {L->F.n_w_cts, (size_t)L->F.nmb, nv};
  for (int k = 0; k < 3; k++)
    for (size_t i = 0; i < ns[k]; i++) {
      uint8_t *b = NULL, le[8];
      size_t len = 0;
      int rc = hetee_ckks_ciphertext_save(ctx, lists[k][i], &b, &len);
      if (rc) return rc;
      hetee_le64(le, (uint64_t)len);
      crypto_generichash_update(&st, le, 8);
      crypto_generichash_update(&st, b, len);
      free(b);
    }
  crypto_generichash_final(&st, out, 32);
  return 0;
}

int hetee_refine_auth_msg(uint32_t model_id, const hetee_refine_state *s, uint8_t **msg, size_t *len) {
  return hetee_refine_auth_msg_dps(model_id, s, NULL, 0, msg, len);
}

int hetee_refine_auth_msg_dps(uint32_t model_id, const hetee_refine_state *s, const uint8_t (*dps)[32], size_t n_dps,
                              uint8_t **msg, size_t *len) {
  if (!s || !msg || !len || (n_dps && !dps)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (n_dps > HETEE_POLICY_MAX_DPS)
    return hetee_error(HETEE_ERR_INVALID_ARG, "%zu contributors; a refine job names at most %d", n_dps,
                       HETEE_POLICY_MAX_DPS);
  for (size_t i = 0; i < n_dps; i++)
    for (size_t k = 0; k < i; k++)
      if (!memcmp(dps[i], dps[k], 32)) return hetee_error(HETEE_ERR_INVALID_ARG, "contributor %zu is listed twice", i);
  if (sodium_init() < 0) return hetee_error(HETEE_ERR_INTERNAL, "libsodium init failed");
  const hetee_refine_plan *p = refine_state_plan(s);
  uint8_t *spec = NULL;
  size_t slen = 0;
  int rc = hetee_refine_spec_encode(p, &spec, &slen);
  if (rc) return rc;
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  uint8_t h[32];
  crypto_hash_sha256(h, spec, slen);
  free(spec);
  hetee_wbuf_put(&w, HETEE_REFINE_AUTH_CONTEXT, sizeof HETEE_REFINE_AUTH_CONTEXT);
  hetee_wbuf_u32(&w, model_id);
  hetee_wbuf_put(&w, h, 32);
  hetee_wbuf_u32(&w, (uint32_t)(p->nl - p->first_train));
  for (int l = p->first_train; l < p->nl && !rc; l++) {
    rc = layer_digest(refine_state_ctx(s), s, l, h);
    hetee_wbuf_put(&w, h, 32);
  }
  /* the frozen layers' (W, bias) digests, when the state holds them (one
   * read without PATH.frozen does not: then they stay unchecked) */
  int have_fz = p->first_train > 0;
  for (int l = 0; l < p->first_train; l++) {
    ct_t *const *W, *const *B, *const *V;
    size_t nv = 0;
    refine_state_layer(s, l, &W, &B, &V, &nv);
    have_fz &= W && B && W[0] && B[0];
  }
  if (have_fz || n_dps) hetee_wbuf_u32(&w, have_fz ? (uint32_t)p->first_train : 0);
  for (int l = 0; have_fz && l < p->first_train && !rc; l++) {
    rc = layer_digest(refine_state_ctx(s), s, l, h);
    hetee_wbuf_put(&w, h, 32);
  }
  /* the job's contributors: only these DPs' batches (docs/refine.md "Who may contribute") */
  if (n_dps) hetee_wbuf_u32(&w, (uint32_t)n_dps);
  for (size_t i = 0; i < n_dps; i++) hetee_wbuf_put(&w, dps[i], 32);
  if (!rc && w.err) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (rc) {
    hetee_wbuf_free(&w);
    return rc;
  }
  *msg = hetee_wbuf_take(&w, len);
  return 0;
}

int hetee_host_refine_open(hetee_host_enclave *e, const hetee_ckks_context *ctx, const hetee_refine_plan *p,
                           uint32_t model_id, const uint8_t session_id[16], const uint8_t *auth, size_t auth_len,
                           hetee_refine_trusted **out) {
  if (!e || !ctx || !p || !session_id || !auth || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (auth_len < HETEE_SESSION_ID_BYTES || memcmp(auth, session_id, HETEE_SESSION_ID_BYTES))
    return hetee_error(HETEE_ERR_INVALID_ARG, "the authorization is not sealed by that session");
  if (hetee_ckks_context_n(ctx) != p->n) return hetee_error(HETEE_ERR_PARAMS, "ring degree is not the plan's");
  remote *rm = calloc(1, sizeof *rm);
  if (!rm) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  rm->e = e;
  rm->ctx = ctx;
  rm->p = *p;
  uint8_t *spec = NULL;
  size_t slen = 0;
  int rc = hetee_refine_spec_encode(p, &spec, &slen);
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u32(&w, model_id);
  if (!rc) {
    hetee_wbuf_blob(&w, spec, slen);
    hetee_wbuf_blob(&w, auth, auth_len);
    if (w.err) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  free(spec);
  hetee_frame f;
  memset(&f, 0, sizeof f);
  if (!rc) rc = hetee_host_call_frame(e, HETEE_MSG_REFINE_OPEN, w.p, w.len, &f, 0);
  hetee_wbuf_free_public(&w);
  if (!rc) {
    if (f.len != 8) rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_OPEN reply");
    else rm->job = hetee_rd32(f.body), rm->nfz = hetee_rd32(f.body + 4);
    hetee_frame_clear(&f);
  }
  if (!rc) rc = hetee_refine_trusted_new_ops(&rm->p, &remote_ops, rm, out);
  if (rc) {
    op_free(rm);
    return rc;
  }
  return 0;
}

/* A request whose reply is one blob sealed to the model provider's session
 * (FETCH, VREPORT): *sealed gets a copy (with `nonempty`, an empty blob is
 * malformed too); "malformed <msg> reply" otherwise. */
static int call_sealed(const remote *rm, uint16_t type, const uint8_t *req, size_t rlen, int nonempty, const char *msg,
                       uint8_t **sealed, size_t *len) {
  hetee_frame f;
  hetee_rbuf r;
  int rc = call_fixed(rm, type, req, rlen, &f, &r);
  if (rc) return rc;
  size_t n = 0;
  const uint8_t *b = hetee_rbuf_blob(&r, f.len, &n);
  if (r.err || hetee_rbuf_left(&r) || (nonempty && !n) || !(*sealed = malloc(n ? n : 1))) {
    hetee_frame_clear(&f);
    return hetee_error(HETEE_ERR_PROTOCOL, "malformed %s reply", msg);
  }
  memcpy(*sealed, b, n);
  *len = n;
  hetee_frame_clear(&f);
  return 0;
}

int hetee_host_refine_fetch(hetee_refine_trusted *t, const hetee_refine_state *s, int l, uint8_t **sealed, size_t *len) {
  return hetee_host_refine_fetch_auth(t, s, l, NULL, 0, sealed, len);
}

/* "hetee-refine-fetch-v1\0" | u32 model | SHA-256(spec) | u32 layer */
int hetee_refine_fetch_auth_msg(uint32_t model_id, const hetee_refine_plan *p, int l, uint8_t **msg, size_t *len) {
  if (!p || !msg || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (l < p->first_train || l >= p->nl) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %d does not train", l);
  if (sodium_init() < 0) return hetee_error(HETEE_ERR_INTERNAL, "libsodium init failed");
  uint8_t *spec = NULL;
  size_t slen = 0;
  int rc = hetee_refine_spec_encode(p, &spec, &slen);
  if (rc) return rc;
  uint8_t h[32];
  crypto_hash_sha256(h, spec, slen);
  free(spec);
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_put(&w, HETEE_REFINE_FETCH_CONTEXT, sizeof HETEE_REFINE_FETCH_CONTEXT);
  hetee_wbuf_u32(&w, model_id);
  hetee_wbuf_put(&w, h, 32);
  hetee_wbuf_u32(&w, (uint32_t)l);
  if (w.err) {
    hetee_wbuf_free(&w);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  *msg = hetee_wbuf_take(&w, len);
  return 0;
}

int hetee_host_refine_fetch_auth(hetee_refine_trusted *t, const hetee_refine_state *s, int l, const uint8_t *auth,
                                 size_t auth_len, uint8_t **sealed, size_t *len) {
  remote *rm = t ? refine_tr_ops_arg(t) : NULL;
  if (!rm || !s || !sealed || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "not an enclave refine job");
  if (!auth != !auth_len) return hetee_error(HETEE_ERR_INVALID_ARG, "an empty authorization");
  const hetee_refine_plan *p = &rm->p;
  if (l < p->first_train || l >= p->nl) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %d does not train", l);
  if (auth_len > 4096) return hetee_error(HETEE_ERR_LIMIT, "fetch authorization of %zu bytes", auth_len);
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u32(&w, rm->job);
  hetee_wbuf_u32(&w, (uint32_t)l);
  if (auth) hetee_wbuf_blob(&w, auth, auth_len); /* without: sealed to the session the enclave picks */
  if (w.err) {
    hetee_wbuf_free_public(&w);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  int rc = call_sealed(rm, HETEE_MSG_REFINE_FETCH, w.p, w.len, 0, "REFINE_FETCH", sealed, len);
  hetee_wbuf_free_public(&w);
  return rc;
}

/* ---- durable jobs: SAVE / RESUME / STATUS ---- */
int hetee_host_refine_save(hetee_refine_trusted *t, const hetee_refine_state *s, uint8_t uid[16], uint8_t **blob,
                           size_t *blen) {
  remote *rm = t ? refine_tr_ops_arg(t) : NULL;
  if (!rm || !s || !uid || !blob || !blen) return hetee_error(HETEE_ERR_INVALID_ARG, "not an enclave refine job");
  if (hetee_refine_pending_steps(s)) return hetee_error(HETEE_ERR_STATE, "checkpoint with %d steps not yet applied", hetee_refine_pending_steps(s));
  uint32_t epoch, next;
  uint64_t steps, updates;
  hetee_refine_state_cursor(s, &epoch, &next, &steps);
  refine_state_counters(s, &updates);
  uint8_t req[28];
  hetee_le32(req, rm->job);
  hetee_le32(req + 4, epoch);
  hetee_le32(req + 8, next);
  hetee_le64(req + 12, steps);
  hetee_le64(req + 20, updates);
  hetee_frame f;
  hetee_rbuf r;
  int rc = call_fixed(rm, HETEE_MSG_REFINE_SAVE, req, sizeof req, &f, &r);
  if (rc) return rc;
  const uint8_t *u = hetee_rbuf_get(&r, 16);
  (void)hetee_rbuf_u64(&r);
  (void)hetee_rbuf_u64(&r);
  size_t n = 0;
  const uint8_t *b = hetee_rbuf_blob(&r, f.len, &n);
  if (r.err || hetee_rbuf_left(&r) || !n) rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_SAVE reply");
  if (!rc && !(*blob = malloc(n))) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc) {
    memcpy(uid, u, 16);
    memcpy(*blob, b, n);
    *blen = n;
  }
  hetee_frame_clear(&f);
  return rc;
}

int hetee_refine_checkpoint_write_sealed(const hetee_refine_state *s, hetee_refine_trusted *t, const char *path) {
  if (!t || !s || !path) return hetee_error(HETEE_ERR_INVALID_ARG, "not an enclave refine job");
  uint8_t uid[16], *blob = NULL;
  size_t blen = 0;
  int rc = hetee_host_refine_save(t, s, uid, &blob, &blen);
  if (!rc) rc = refine_checkpoint_write_job(s, path, uid, blob, blen);
  free(blob);
  return rc;
}

int hetee_host_refine_resume(hetee_host_enclave *e, const hetee_ckks_context *ctx, const hetee_refine_plan *p,
                             const char *path, hetee_refine_state **state, hetee_refine_trusted **trusted) {
  if (!e || !ctx || !p || !path || !state || !trusted) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (hetee_ckks_context_n(ctx) != p->n) return hetee_error(HETEE_ERR_PARAMS, "ring degree is not the plan's");
  hetee_refine_state *s = NULL;
  uint8_t uid[16], *blob = NULL, *spec = NULL;
  size_t blen = 0, slen = 0;
  int rc = refine_checkpoint_read_job(ctx, p, path, &s, uid, &blob, &blen);
  if (!rc) rc = hetee_refine_spec_encode(p, &spec, &slen);
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  if (!rc) {
    hetee_wbuf_put(&w, uid, 16);
    hetee_wbuf_blob(&w, spec, slen);
    hetee_wbuf_blob(&w, blob, blen);
    if (w.err) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  free(spec);
  free(blob);
  remote *rm = NULL;
  if (!rc && !(rm = calloc(1, sizeof *rm))) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (rm) {
    rm->e = e;
    rm->ctx = ctx;
    rm->p = *p;
  }
  hetee_frame f;
  memset(&f, 0, sizeof f);
  int have_frame = 0;
  if (!rc) rc = hetee_host_call_frame(e, HETEE_MSG_REFINE_RESUME, w.p, w.len, &f, 0);
  have_frame = !rc;
  hetee_wbuf_free_public(&w);
  hetee_rbuf r;
  hetee_rbuf_init(&r, f.body, f.len);
  if (!rc) {
    rm->job = hetee_rbuf_u32(&r);
    uint32_t epoch = hetee_rbuf_u32(&r), next = hetee_rbuf_u32(&r);
    uint64_t steps = hetee_rbuf_u64(&r), updates = hetee_rbuf_u64(&r);
    uint32_t nt = hetee_rbuf_u32(&r);
    if (r.err || nt != (uint32_t)(p->nl - p->first_train)) rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_RESUME reply");
    else refine_state_set_counters(s, epoch, next, steps, updates);
  }
  for (int l = p->first_train; !rc && l < p->nl; l++) {
    uint8_t held = hetee_rbuf_u8(&r);
    if (r.err || held > 1) {
      rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_RESUME reply");
      break;
    }
    if (!held) continue;
    const hetee_refine_layer *L = &p->L[l];
    size_t nw = L->F.n_w_cts, nb = (size_t)L->F.nmb, nwt = L->has_back ? L->T.n_w_cts : 0;
    size_t nv = p->cfg.momentum > 0 ? refine_compact_cts((size_t)L->m * (size_t)(L->k + 1), p->n) : 0;
    ct_t **W = calloc(nw + 1, sizeof *W), **B = calloc(nb + 1, sizeof *B), **T = calloc(nwt + 1, sizeof *T),
         **V = calloc(nv + 1, sizeof *V);
    if (!W || !B || !T || !V) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    if (!rc) rc = take_list(rm, &r, nw, W);
    if (!rc) rc = take_list(rm, &r, nb, B);
    if (!rc) rc = take_list(rm, &r, nwt, T);
    if (!rc) rc = take_list(rm, &r, nv, V);
    if (!rc) rc = refine_state_replace_layer(s, l, W, B, T, V);
    if (rc) {
      drop(W, nw);
      drop(B, nb);
      drop(T, nwt);
      drop(V, nv);
    }
    free(W);
    free(B);
    free(T);
    free(V);
    rm->held[l] = 1;
  }
  if (!rc) rm->nfz = hetee_rbuf_u32(&r);
  if (!rc && (r.err || hetee_rbuf_left(&r))) rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_RESUME reply");
  if (have_frame) hetee_frame_clear(&f);
  if (!rc) rc = hetee_refine_trusted_new_ops(&rm->p, &remote_ops, rm, trusted);
  if (rc) {
    if (rm && !rm->job) free(rm);
    else op_free(rm); /* closes the reopened job */
    hetee_refine_state_free(s);
    return rc;
  }
  *state = s;
  return 0;
}

int hetee_host_refine_status(hetee_refine_trusted *t, hetee_refine_job_status *out) {
  remote *rm = t ? refine_tr_ops_arg(t) : NULL;
  if (!rm || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "not an enclave refine job");
  uint8_t req[4];
  hetee_le32(req, rm->job);
  hetee_frame f;
  hetee_rbuf r;
  int rc = call_fixed(rm, HETEE_MSG_REFINE_STATUS, req, sizeof req, &f, &r);
  if (rc) return rc;
  memset(out, 0, sizeof *out);
  hetee_rbuf_copy(&r, out->uid, 16);
  out->samples = hetee_rbuf_u64(&r);
  out->updates = hetee_rbuf_u64(&r);
  uint32_t n = hetee_rbuf_u32(&r);
  if (n > HETEE_REFINE_EPOCH_LOG) rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_STATUS reply");
  for (uint32_t i = 0; !rc && i < n; i++) out->epoch_samples[i] = hetee_rbuf_u64(&r);
  out->epochs = n;
  if (!rc && (r.err || hetee_rbuf_left(&r))) rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_STATUS reply");
  hetee_frame_clear(&f);
  return rc;
}

uint32_t refine_host_job_id(const hetee_refine_trusted *t) {
  const remote *rm = t ? refine_tr_ops_arg(t) : NULL;
  return rm ? rm->job : 0;
}

/* ---- validation set ---- */
static int vop_vwitness(void *arg, uint32_t count, uint32_t chunk, uint32_t nchunks, const uint8_t mp[32],
                        const uint8_t sig[64], const uint8_t *sealed, size_t len) {
  remote *rm = arg;
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  if (hetee_wbuf_reserve(&w, 4 * 4 + 96 + 8 + len)) {
    hetee_wbuf_free_public(&w);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  hetee_wbuf_u32(&w, rm->job);
  hetee_wbuf_u32(&w, count);
  hetee_wbuf_u32(&w, chunk);
  hetee_wbuf_u32(&w, nchunks);
  hetee_wbuf_put(&w, mp, 32);
  hetee_wbuf_put(&w, sig, 64);
  hetee_wbuf_blob(&w, sealed, len);
  return call(rm, HETEE_MSG_REFINE_VWITNESS, &w, 0, NULL, NULL);
}

static int vop_forward(void *arg, int l, ct_t *const *out, uint32_t count, ct_t **next_in) {
  remote *rm = arg;
  const hetee_refine_plan *p = &rm->p;
  if (l < 0 || l >= p->nl - 1) return hetee_error(HETEE_ERR_INVALID_ARG, "validation forward of layer %d", l);
  hetee_wbuf w;
  int rc = step_request(rm, &w, l, count, out, p->L[l].F.n_out_cts, NULL);
  if (rc) return rc;
  ct_t **outs[1] = {next_in};
  size_t want[1] = {p->L[l + 1].F.n_in_cts};
  return call(rm, HETEE_MSG_REFINE_VFORWARD, &w, 1, outs, want);
}

static int vop_loss(void *arg, ct_t *const *logits, const ct_t *labels, uint32_t count) {
  remote *rm = arg;
  const hetee_refine_plan *p = &rm->p;
  hetee_wbuf w;
  int rc = step_request(rm, &w, -1, count, logits, p->L[p->nl - 1].F.n_out_cts, labels);
  if (rc) return rc;
  return call(rm, HETEE_MSG_REFINE_VLOSS, &w, 0, NULL, NULL);
}

int hetee_refine_validate(hetee_refine_state *s, hetee_refine_trusted *t, const hetee_refine_valset *vs, int threads,
                          uint8_t **sealed, size_t *len) {
  if (!s || !t || !vs || !sealed || !len || threads < 1 || threads > 64)
    return hetee_error(HETEE_ERR_INVALID_ARG, "bad argument");
  remote *rm = refine_tr_ops_arg(t);
  if (!rm) return hetee_error(HETEE_ERR_UNSUPPORTED, "validation runs through an enclave job");
  static const refine_val_ops vops = {vop_vwitness, vop_forward, vop_loss};
  int rc = refine_tr_load_frozen(t, s); /* once per job: a pass can come before any step */
  if (rc) return rc;
  rc = refine_validate_pass(s, vs, threads, &vops, rm);
  uint8_t req[8];
  hetee_le32(req, rm->job);
  hetee_le32(req + 4, rc ? 1 : 0); /* a failed pass: the enclave discards what it accumulated */
  if (rc) {
    char keep[256];
    snprintf(keep, sizeof keep, "%s", hetee_last_error());
    hetee_frame f;
    memset(&f, 0, sizeof f);
    if (!hetee_host_call_frame(rm->e, HETEE_MSG_REFINE_VREPORT, req, sizeof req, &f, 0)) hetee_frame_clear(&f);
    return hetee_error(rc, "%s", keep);
  }
  return call_sealed(rm, HETEE_MSG_REFINE_VREPORT, req, sizeof req, 1, "REFINE_VREPORT", sealed, len);
}

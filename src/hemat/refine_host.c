/*
 * refine_host.c — the untrusted host's side of refining: the encrypted state
 * (weights in F layouts, biases, W^T in T layouts, momentum, accumulated
 * gradients, data cursor), the model / data providers' encryption, the step
 * loop (every weight-sized product is a hemat ct x ct product here), the
 * update schedule and atomic checkpoints.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <sodium.h>

#include "hemat/refine_internal.h"

struct hetee_refine_state {
  const hetee_ckks_context *ctx;
  hetee_refine_plan p;
  ct_t **W[HETEE_REFINE_MAX_LAYERS], **bias[HETEE_REFINE_MAX_LAYERS], **WT[HETEE_REFINE_MAX_LAYERS];
  ct_t **V[HETEE_REFINE_MAX_LAYERS], **gacc[HETEE_REFINE_MAX_LAYERS];
  uint32_t epoch, next;
  uint64_t steps, updates;
  uint32_t pending, pending_samples;
  refine_ck_cache *fz; /* the frozen layers' digest (they never change) and the file that holds them */
  int partial;         /* read without the frozen layers (hetee_refine_checkpoint_read_trained) */
};

struct hetee_refine_batch {
  const hetee_ckks_context *ctx;
  uint32_t batch, k, classes; /* the plan's B, layer-0 input width, classes */
  uint32_t count;
  ct_t **in0;   /* F[0].n_in_cts */
  size_t n_in0;
  ct_t **gw0;   /* G[0].n_w_cts when layer 0 trains */
  size_t n_gw0;
  ct_t *labels;
  /* the DP's witness and authorization (hetee_refine_batch_encrypt_witness) */
  uint8_t *wit;
  size_t wit_len;
  uint32_t wit_model;
  uint64_t wit_no;
  int has_auth;
  uint8_t dp[32], sig[64];
};

static int batch_encrypt(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk, const hetee_refine_plan *p,
                         const float *x, const float *labels, const uint32_t *idx, uint32_t count, int with_gw,
                         hetee_refine_batch **out);
static void vs_put(uint8_t **q, uint64_t v, int n);

static double now_s(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

static size_t n_v(const hetee_refine_state *s, int l) {
  return refine_compact_cts((size_t)s->p.L[l].m * (size_t)(s->p.L[l].k + 1), s->p.n);
}
static int has_v(const hetee_refine_state *s, int l) { return s->p.L[l].trains && s->p.cfg.momentum > 0; }

static ct_t **cts_alloc(size_t n) { return calloc(n ? n : 1, sizeof(ct_t *)); }

static void cts_drop(ct_t ***a, size_t n) {
  if (!*a) return;
  refine_free_cts(*a, n);
  free(*a);
  *a = NULL;
}

void hetee_refine_state_free(hetee_refine_state *s) {
  if (!s) return;
  for (int l = 0; l < s->p.nl; l++) {
    const hetee_refine_layer *L = &s->p.L[l];
    cts_drop(&s->W[l], L->F.n_w_cts);
    cts_drop(&s->bias[l], (size_t)L->F.nmb);
    if (L->has_back) cts_drop(&s->WT[l], L->T.n_w_cts);
    if (s->V[l]) cts_drop(&s->V[l], n_v(s, l));
    if (L->trains) cts_drop(&s->gacc[l], L->G.n_out_cts);
  }
  if (s->fz) free(s->fz->path);
  free(s->fz);
  free(s);
}

static int state_alloc(const hetee_ckks_context *ctx, const hetee_refine_plan *p, hetee_refine_state **out) {
  hetee_refine_state *s = calloc(1, sizeof *s);
  if (!s) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  s->ctx = ctx;
  s->p = *p;
  int bad = !(s->fz = calloc(1, sizeof *s->fz));
  for (int l = 0; l < p->nl; l++) {
    const hetee_refine_layer *L = &p->L[l];
    bad |= !(s->W[l] = cts_alloc(L->F.n_w_cts));
    bad |= !(s->bias[l] = cts_alloc((size_t)L->F.nmb));
    if (L->has_back) bad |= !(s->WT[l] = cts_alloc(L->T.n_w_cts));
    if (has_v(s, l)) bad |= !(s->V[l] = cts_alloc(n_v(s, l)));
    if (L->trains) {
      bad |= !(s->gacc[l] = cts_alloc(L->G.n_out_cts));
      for (size_t i = 0; !bad && i < L->G.n_out_cts; i++) bad |= hetee_ckks_ciphertext_new(ctx, &s->gacc[l][i]) != 0;
    }
  }
  if (bad) {
    hetee_refine_state_free(s);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  *out = s;
  return 0;
}

int hetee_refine_state_encrypt(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                               const hetee_refine_plan *p, const hetee_refine_weights *w, hetee_refine_state **out) {
  if (!ctx || !pk || !p || !w || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (w->nl != p->nl) return hetee_error(HETEE_ERR_SHAPE, "weights are not the plan's");
  for (int l = 0; l < p->nl; l++)
    if (w->k[l] != p->L[l].k || w->m[l] != p->L[l].m) return hetee_error(HETEE_ERR_SHAPE, "layer %d shape", l);
  if (hetee_ckks_context_n(ctx) != p->n) return hetee_error(HETEE_ERR_PARAMS, "ring degree is not the plan's");
  hetee_refine_state *s;
  int rc = state_alloc(ctx, p, &s);
  if (rc) return rc;
  refine_key key = {ctx, NULL, pk, NULL};
  for (int l = 0; l < p->nl && !rc; l++) {
    const hetee_refine_layer *L = &p->L[l];
    rc = refine_enc_weights(&key, &L->F, w->w[l], s->W[l]);
    if (!rc) rc = refine_enc_bias(&key, &L->F, w->b[l], s->bias[l]);
    if (!rc && L->has_back) {
      float *wt = refine_transpose(w->w[l], L->m, L->k);
      rc = wt ? refine_enc_weights(&key, &L->T, wt, s->WT[l]) : hetee_error(HETEE_ERR_NOMEM, "no memory");
      if (wt) sodium_memzero(wt, (size_t)L->m * (size_t)L->k * sizeof *wt);
      free(wt);
    }
    if (!rc && has_v(s, l)) rc = refine_enc_momentum(&key, w->vw[l], w->vb[l], L->m, L->k, s->V[l]);
  }
  if (rc) {
    hetee_refine_state_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void hetee_refine_state_cursor(const hetee_refine_state *s, uint32_t *epoch, uint32_t *next, uint64_t *steps) {
  if (epoch) *epoch = s->epoch;
  if (next) *next = s->next;
  if (steps) *steps = s->steps;
}
void hetee_refine_state_set_cursor(hetee_refine_state *s, uint32_t epoch, uint32_t next) {
  s->epoch = epoch;
  s->next = next;
}
int hetee_refine_pending_steps(const hetee_refine_state *s) { return (int)s->pending; }

void hetee_refine_batch_free(hetee_refine_batch *b) {
  if (!b) return;
  cts_drop(&b->in0, b->n_in0);
  cts_drop(&b->gw0, b->n_gw0);
  hetee_ckks_ciphertext_free(b->labels);
  free(b->wit);
  free(b);
}

/* A witness (refine_internal.h): "tag" | u32 model | u64 no | u32 count |
 * u32 k | the count x k layer-0 values of samples idx, sealed to
 * release_pk into b (wit, wit_len, wit_model, wit_no). tag is the DP's
 * REFINE_WIT_TAG or the MP's REFINE_VWIT_TAG (same length). */
static int wit_seal(const char tag[sizeof REFINE_WIT_TAG], const hetee_refine_plan *p, const float *x, const uint32_t *idx,
                    uint32_t count, uint32_t model_id, const uint8_t release_pk[32], uint64_t no, hetee_refine_batch *b) {
  size_t k = (size_t)p->L[0].k, nv = (size_t)count * k;
  size_t plen = REFINE_WIT_HDR + 4 * nv, slen = REFINE_WIT_SEALED_LEN(count, k);
  uint8_t *plain = sodium_malloc(plen); /* the party's values: locked, wiped by sodium_free */
  b->wit = malloc(slen);
  int rc = 0;
  if (!plain || !b->wit) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc) {
    uint8_t *q = plain;
    memcpy(q, tag, sizeof REFINE_WIT_TAG);
    q += sizeof REFINE_WIT_TAG;
    vs_put(&q, model_id, 4);
    vs_put(&q, no, 8);
    vs_put(&q, count, 4);
    vs_put(&q, k, 4);
    for (uint32_t s = 0; s < count; s++)
      for (size_t j = 0; j < k; j++) {
        uint32_t u;
        memcpy(&u, &x[(size_t)idx[s] * k + j], 4);
        vs_put(&q, u, 4);
      }
    if (crypto_box_seal(b->wit, plain, plen, release_pk))
      rc = hetee_error(HETEE_ERR_CRYPTO, "crypto_box_seal (is the enclave's release key valid?)");
  }
  if (plain) sodium_free(plain);
  if (!rc) {
    b->wit_len = slen;
    b->wit_model = model_id;
    b->wit_no = no;
  }
  return rc;
}

int hetee_refine_batch_encrypt_witness(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                                       const hetee_refine_plan *p, const float *x, const float *labels,
                                       const uint32_t *idx, uint32_t count, uint32_t model_id,
                                       const uint8_t release_pk[32], uint64_t batch_no, hetee_refine_batch **out) {
  if (!release_pk || !p || !x || !idx || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (count < 1 || count > p->cfg.batch)
    return hetee_error(HETEE_ERR_INVALID_ARG, "count %u outside [1, %u]", count, p->cfg.batch);
  size_t k = (size_t)p->L[0].k;
  /* the values must be ones the enclave accepts (checked before anything is sealed) */
  for (uint32_t s = 0; s < count; s++)
    for (size_t j = 0; j < k; j++)
      if (!(fabs((double)x[(size_t)idx[s] * k + j]) <= REFINE_WIT_MAX_ABS))
        return hetee_error(HETEE_ERR_INVALID_ARG, "sample %u, value %zu is not finite or above 2^20 in magnitude", s, j);
  if (sodium_init() < 0) return hetee_error(HETEE_ERR_INTERNAL, "libsodium init failed");
  hetee_refine_batch *b = NULL;
  int rc = batch_encrypt(ctx, pk, p, x, labels, idx, count, 1, &b);
  if (rc) return rc;
  rc = wit_seal(REFINE_WIT_TAG, p, x, idx, count, model_id, release_pk, batch_no, b);
  if (rc) {
    hetee_refine_batch_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

int hetee_refine_batch_auth_msg(const hetee_refine_batch *b, const uint8_t dp_pk[32], uint8_t **msg, size_t *len) {
  if (!b || !dp_pk || !msg || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (!b->wit) return hetee_error(HETEE_ERR_STATE, "the batch has no witness");
  uint8_t d[32];
  refine_witness_digest(b->wit_model, b->wit_no, b->count, b->wit, b->wit_len, d);
  uint8_t *m = malloc(REFINE_BATCH_AUTH_LEN);
  if (!m) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  refine_batch_auth_bytes(b->wit_model, dp_pk, b->wit_no, b->count, d, m);
  *msg = m;
  *len = REFINE_BATCH_AUTH_LEN;
  return 0;
}

int hetee_refine_batch_set_auth(hetee_refine_batch *b, const uint8_t dp_pk[32], const uint8_t sig[64]) {
  if (!b || !dp_pk || !sig) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (!b->wit) return hetee_error(HETEE_ERR_STATE, "the batch has no witness");
  memcpy(b->dp, dp_pk, 32);
  memcpy(b->sig, sig, 64);
  b->has_auth = 1;
  return 0;
}

int hetee_refine_batch_has_witness(const hetee_refine_batch *b) { return b && b->wit && b->has_auth; }

int refine_batch_witness(const hetee_refine_batch *b, refine_batch_wit *w) {
  memset(w, 0, sizeof *w);
  if (!hetee_refine_batch_has_witness(b)) return 0;
  w->sealed = b->wit;
  w->len = b->wit_len;
  w->batch_no = b->wit_no;
  w->dp = b->dp;
  w->sig = b->sig;
  return 1;
}


int hetee_refine_batch_encrypt(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                               const hetee_refine_plan *p, const float *x, const float *labels, const uint32_t *idx,
                               uint32_t count, hetee_refine_batch **out) {
  return batch_encrypt(ctx, pk, p, x, labels, idx, count, 1, out);
}

static int batch_encrypt(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk, const hetee_refine_plan *p,
                         const float *x, const float *labels, const uint32_t *idx, uint32_t count, int with_gw,
                         hetee_refine_batch **out) {
  if (!ctx || !pk || !p || !x || !labels || !idx || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  uint32_t B = p->cfg.batch;
  if (count < 1 || count > B) return hetee_error(HETEE_ERR_INVALID_ARG, "count %u outside [1, %u]", count, B);
  const hetee_refine_layer *L = &p->L[0];
  size_t k = (size_t)L->k, c = (size_t)p->classes;
  hetee_refine_batch *b = calloc(1, sizeof *b);
  uint64_t *pos = malloc((size_t)B * (k > c ? k : c) * sizeof *pos);
  double *v = calloc((size_t)B * (k > c ? k : c), sizeof *v);
  float *xw = NULL;
  int rc = 0;
  if (!b || !pos || !v) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto done;
  }
  b->ctx = ctx;
  b->batch = B;
  b->k = (uint32_t)k;
  b->classes = (uint32_t)c;
  b->count = count;
  b->n_in0 = L->F.n_in_cts;
  b->in0 = cts_alloc(b->n_in0);
  if (!b->in0) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto done;
  }
  refine_key key = {ctx, NULL, pk, NULL};
  for (uint32_t s = 0; s < B; s++)
    for (size_t j = 0; j < k; j++) {
      pos[s * k + j] = hetee_hemat_in_pos(&L->F, s, (int)j, 0, 0);
      v[s * k + j] = s < count ? x[(size_t)idx[s] * k + j] : 0.0;
    }
  rc = refine_enc_scatter(&key, b->n_in0, pos, v, (size_t)B * k, REFINE_IN_SCALE, b->in0);
  if (!rc && L->trains && with_gw) {
    b->n_gw0 = L->G.n_w_cts;
    b->gw0 = cts_alloc(b->n_gw0);
    xw = calloc((k + 1) * B, sizeof *xw);
    if (!b->gw0 || !xw) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      goto done;
    }
    for (uint32_t s = 0; s < count; s++) {
      for (size_t j = 0; j < k; j++) xw[j * B + s] = x[(size_t)idx[s] * k + j];
      xw[k * B + s] = 1.0f;
    }
    rc = refine_enc_weights(&key, &L->G, xw, b->gw0);
  }
  if (!rc) {
    memset(v, 0, (size_t)B * c * sizeof *v);
    for (uint32_t s = 0; s < count; s++) {
      int lab = (int)labels[idx[s]];
      if (lab < 0 || (size_t)lab >= c) {
        rc = hetee_error(HETEE_ERR_INVALID_ARG, "label %d outside [0, %zu)", lab, c);
        goto done;
      }
      v[s * c + (size_t)lab] = 1.0;
    }
    for (size_t q = 0; q < (size_t)B * c; q++) pos[q] = q;
    ct_t *lab1[1] = {NULL};
    rc = refine_enc_scatter(&key, 1, pos, v, (size_t)B * c, REFINE_IN_SCALE, lab1);
    b->labels = lab1[0];
  }
done:
  if (v) sodium_memzero(v, (size_t)B * (k > c ? k : c) * sizeof *v);
  if (xw) sodium_memzero(xw, (k + 1) * B * sizeof *xw);
  free(v);
  free(pos);
  free(xw);
  if (rc) {
    hetee_refine_batch_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

static ct_t **new_out(const hetee_ckks_context *ctx, size_t n) {
  ct_t **o = cts_alloc(n);
  if (!o) return NULL;
  for (size_t i = 0; i < n; i++)
    if (hetee_ckks_ciphertext_new(ctx, &o[i])) {
      refine_free_cts(o, n);
      free(o);
      return NULL;
    }
  return o;
}

/* acc[mbk] += sum_cbk in[cbk] * w[mbk*ncb + cbk] (one "sample": the gradient
 * layout has a single group), degree 2, OpenMP over outputs. */
static int grad_accumulate(const hetee_ckks_context *ctx, const hetee_hemat_layout *G, ct_t *const *in, ct_t *const *w,
                           int threads, ct_t **acc) {
  int rc = 0;
  long nmb = G->nmb, ncb = G->ncb;
#pragma omp parallel for schedule(dynamic) num_threads(threads) reduction(| : rc)
  for (long mbk = 0; mbk < nmb; mbk++) {
    for (long cbk = 0; cbk < ncb && !rc; cbk++) rc |= hetee_ckks_eval_mul_acc(ctx, in[cbk], w[mbk * ncb + cbk], acc[mbk]) ? 1 : 0;
  }
  return rc ? hetee_error(HETEE_ERR_INTERNAL, "gradient accumulation failed") : 0;
}

static int update(hetee_refine_state *s, hetee_refine_trusted *t, hetee_refine_stats *st) {
  int rc = 0;
  for (int l = s->p.first_train; l < s->p.nl && !rc; l++) {
    const hetee_refine_layer *L = &s->p.L[l];
    ct_t **nW = cts_alloc(L->F.n_w_cts), **nb = cts_alloc((size_t)L->F.nmb);
    ct_t **nWT = L->has_back ? cts_alloc(L->T.n_w_cts) : NULL, **nV = has_v(s, l) ? cts_alloc(n_v(s, l)) : NULL;
    if (!nW || !nb || (L->has_back && !nWT) || (has_v(s, l) && !nV)) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    if (!rc) rc = refine_tr_update(t, l, s->gacc[l], s->pending_samples, s->W[l], s->bias[l], s->V[l], nW, nb, nWT, nV);
    if (rc) {
      cts_drop(&nW, L->F.n_w_cts);
      cts_drop(&nb, (size_t)L->F.nmb);
      if (nWT) cts_drop(&nWT, L->T.n_w_cts);
      if (nV) cts_drop(&nV, n_v(s, l));
      break;
    }
    cts_drop(&s->W[l], L->F.n_w_cts);
    s->W[l] = nW;
    cts_drop(&s->bias[l], (size_t)L->F.nmb);
    s->bias[l] = nb;
    if (L->has_back) {
      cts_drop(&s->WT[l], L->T.n_w_cts);
      s->WT[l] = nWT;
    }
    if (nV) {
      cts_drop(&s->V[l], n_v(s, l));
      s->V[l] = nV;
    }
    cts_drop(&s->gacc[l], L->G.n_out_cts);
    s->gacc[l] = new_out(s->ctx, L->G.n_out_cts);
    if (!s->gacc[l]) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  if (!rc) {
    s->pending = 0;
    s->pending_samples = 0;
    s->updates++;
    if (st) st->updates++;
  }
  return rc;
}

int hetee_refine_flush(hetee_refine_state *s, hetee_refine_trusted *t, int threads, hetee_refine_stats *st) {
  (void)threads;
  if (!s || !t) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (!s->pending) return 0;
  double t0 = now_s(), c0 = hetee_refine_trusted_cpu_s(t);
  int rc = update(s, t, st);
  if (st) {
    double dc = hetee_refine_trusted_cpu_s(t) - c0;
    st->trusted_s += dc;
    st->host_s += now_s() - t0 - dc;
  }
  return rc;
}

int hetee_refine_step(hetee_refine_state *s, hetee_refine_trusted *t, const hetee_refine_batch *b, int threads,
                      hetee_refine_stats *st) {
  if (!s || !t || !b || threads < 1 || threads > 64) return hetee_error(HETEE_ERR_INVALID_ARG, "bad argument");
  if (s->partial) return hetee_error(HETEE_ERR_STATE, "a state read without its frozen layers");
  const hetee_refine_plan *p = &s->p;
  int nl = p->nl, rc = 0;
  double t0 = now_s(), c0 = hetee_refine_trusted_cpu_s(t);
  uint64_t prods = 0;
  ct_t **in[HETEE_REFINE_MAX_LAYERS + 1] = {0}, **gw[HETEE_REFINE_MAX_LAYERS] = {0}, **out = NULL;
  ct_t **dG = NULL, **dT = NULL, **u = NULL;
  size_t ndG = 0, ndT = 0, nout = 0;
  in[0] = b->in0;
  gw[0] = b->gw0;
  if (b->n_in0 != p->L[0].F.n_in_cts || (p->L[0].trains && b->n_gw0 != p->L[0].G.n_w_cts))
    return hetee_error(HETEE_ERR_SHAPE, "batch not encrypted for this plan");
  /* once per job the frozen layers and the trained layers' initial weights
   * (REFINE_FROZEN, REFINE_INIT: F and T checked from this step), then this
   * batch's witness */
  rc = refine_tr_load_frozen(t, s);
  if (!rc) rc = refine_tr_pass_witness(t, b);
  if (rc) return rc;
  /* forward */
  for (int l = 0; l < nl && !rc; l++) {
    const hetee_refine_layer *L = &p->L[l];
    out = new_out(s->ctx, nout = L->F.n_out_cts);
    if (!out) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      break;
    }
    rc = hetee_hemat_conv_eval(s->ctx, &L->F, (const ct_t *const *)in[l], (const ct_t *const *)s->W[l],
                               (const ct_t *const *)s->bias[l], threads, out);
    prods += L->F.n_products;
    if (rc) break;
    if (l < nl - 1) {
      const hetee_refine_layer *N1 = &p->L[l + 1];
      in[l + 1] = cts_alloc(N1->F.n_in_cts);
      if (N1->trains) gw[l + 1] = cts_alloc(N1->G.n_w_cts);
      if (!in[l + 1] || (N1->trains && !gw[l + 1])) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      if (!rc) rc = refine_tr_forward(t, l, out, b->count, in[l + 1], gw[l + 1]);
      cts_drop(&out, L->F.n_out_cts);
    }
  }
  /* loss and backward */
  if (!rc) {
    const hetee_refine_layer *L = &p->L[nl - 1];
    dG = cts_alloc(ndG = L->G.n_in_cts);
    dT = L->has_back ? cts_alloc(ndT = L->T.n_in_cts) : NULL;
    if (!dG || (L->has_back && !dT)) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    if (!rc) rc = refine_tr_loss(t, out, b->labels, b->count, dG, dT);
  }
  if (out) cts_drop(&out, nout);
  for (int l = nl - 1; l >= p->first_train && !rc; l--) {
    const hetee_refine_layer *L = &p->L[l];
    rc = grad_accumulate(s->ctx, &L->G, dG, gw[l], threads, s->gacc[l]);
    prods += L->G.n_products;
    cts_drop(&dG, ndG);
    if (rc || !L->has_back) break;
    u = new_out(s->ctx, L->T.n_out_cts);
    if (!u) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      break;
    }
    rc = hetee_hemat_conv_eval(s->ctx, &L->T, (const ct_t *const *)dT, (const ct_t *const *)s->WT[l], NULL, threads, u);
    prods += L->T.n_products;
    cts_drop(&dT, ndT);
    const hetee_refine_layer *P = &p->L[l - 1];
    if (!rc) {
      dG = cts_alloc(ndG = P->G.n_in_cts);
      dT = P->has_back ? cts_alloc(ndT = P->T.n_in_cts) : NULL;
      if (!dG || (P->has_back && !dT)) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    }
    if (!rc) rc = refine_tr_back(t, l, u, b->count, dG, dT);
    cts_drop(&u, L->T.n_out_cts);
  }
  if (dG) cts_drop(&dG, ndG);
  if (dT) cts_drop(&dT, ndT);
  for (int l = 1; l < nl; l++) {
    if (in[l]) cts_drop(&in[l], p->L[l].F.n_in_cts);
    if (gw[l]) cts_drop(&gw[l], p->L[l].G.n_w_cts);
  }
  if (!rc) {
    s->pending++;
    s->pending_samples += b->count;
    s->steps++;
    s->next += b->count;
    if (st) {
      st->steps++;
      st->samples += b->count;
    }
    if (s->pending >= p->cfg.accumulate) rc = update(s, t, st);
  }
  if (st) {
    double dc = hetee_refine_trusted_cpu_s(t) - c0;
    st->products += prods;
    st->trusted_s += dc;
    st->host_s += now_s() - t0 - dc;
    refine_tr_counts(t, &st->trusted_enc, &st->trusted_dec);
  }
  return rc;
}

int hetee_refine_state_decrypt(const hetee_refine_state *s, const hetee_ckks_secret_key *sk, hetee_refine_weights *out) {
  if (!s || !sk || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  memset(out, 0, sizeof *out);
  if (s->partial) return hetee_error(HETEE_ERR_STATE, "a state read without its frozen layers");
  out->nl = s->p.nl;
  int rc = 0;
  hetee_ckks_plaintext *pt = NULL;
  size_t N = s->p.n;
  double *buf = malloc(N * sizeof *buf);
  if (!buf || hetee_ckks_plaintext_new(s->ctx, &pt)) {
    free(buf);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  for (int l = 0; l < s->p.nl && !rc; l++) {
    const hetee_refine_layer *L = &s->p.L[l];
    out->k[l] = L->k;
    out->m[l] = L->m;
    out->act[l] = L->act;
    size_t mk = (size_t)L->m * (size_t)L->k;
    out->w[l] = calloc(mk, sizeof(float));
    out->b[l] = calloc((size_t)L->m, sizeof(float));
    out->vw[l] = calloc(mk, sizeof(float));
    out->vb[l] = calloc((size_t)L->m, sizeof(float));
    if (!out->w[l] || !out->b[l] || !out->vw[l] || !out->vb[l]) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      break;
    }
    /* one ciphertext at a time, whole polynomial decoded */
    for (size_t c = 0; c < L->F.n_w_cts && !rc; c++) {
      rc = hetee_ckks_decrypt(s->ctx, sk, s->W[l][c], pt);
      if (!rc) rc = hetee_ckks_decode_coeffs_scaled(s->ctx, pt, REFINE_W_SCALE, NULL, N, buf);
      for (int i = 0; i < L->m && !rc; i++)
        for (int j = 0; j < L->k; j++) {
          uint64_t q = refine_w_pos(&L->F, i, j);
          if (q / N == c) out->w[l][(size_t)i * (size_t)L->k + (size_t)j] = (float)buf[q % N];
        }
    }
    for (int mbk = 0; mbk < L->F.nmb && !rc; mbk++) {
      rc = hetee_ckks_decrypt(s->ctx, sk, s->bias[l][mbk], pt);
      if (!rc) rc = hetee_ckks_decode_coeffs_scaled(s->ctx, pt, REFINE_OUT_SCALE, NULL, N, buf);
      for (int i = 0; i < L->m && !rc; i++) {
        uint64_t q = hetee_hemat_out_pos(&L->F, 0, i, 0, 0);
        if (q / N == (uint64_t)mbk) out->b[l][i] = (float)buf[q % N];
      }
    }
    if (has_v(s, l)) {
      size_t nv = (size_t)L->m * (size_t)(L->k + 1);
      for (size_t c = 0; c < n_v(s, l) && !rc; c++) {
        rc = hetee_ckks_decrypt(s->ctx, sk, s->V[l][c], pt);
        if (!rc) rc = hetee_ckks_decode_coeffs_scaled(s->ctx, pt, HETEE_REFINE_MOM_SCALE, NULL, N, buf);
        for (size_t q = c * N; q < nv && q < (c + 1) * N && !rc; q++) {
          size_t i = q / (size_t)(L->k + 1), j = q % (size_t)(L->k + 1);
          if (j < (size_t)L->k) out->vw[l][i * (size_t)L->k + j] = (float)buf[q - c * N];
          else out->vb[l][i] = (float)buf[q - c * N];
        }
      }
    }
  }
  sodium_memzero(buf, N * sizeof *buf);
  free(buf);
  hetee_ckks_plaintext_free(pt);
  if (rc) hetee_refine_weights_clear(out);
  return rc;
}

/* ---------------------------------------------------------------- for refine_ckpt.c */

int refine_state_alloc(const hetee_ckks_context *ctx, const hetee_refine_plan *p, hetee_refine_state **out) {
  return state_alloc(ctx, p, out);
}

void refine_state_fields_of(const hetee_refine_state *cs, refine_state_fields *f) {
  hetee_refine_state *s = (hetee_refine_state *)cs;
  f->ctx = s->ctx;
  f->p = &s->p;
  f->W = s->W;
  f->bias = s->bias;
  f->WT = s->WT;
  f->V = s->V;
  f->epoch = &s->epoch;
  f->next = &s->next;
  f->pending = &s->pending;
  f->steps = &s->steps;
  f->updates = &s->updates;
  f->fz = s->fz;
  f->partial = &s->partial;
}

const hetee_ckks_context *refine_state_ctx(const hetee_refine_state *s) { return s->ctx; }
const hetee_refine_plan *refine_state_plan(const hetee_refine_state *s) { return &s->p; }
void refine_state_layer(const hetee_refine_state *s, int l, ct_t *const **W, ct_t *const **bias, ct_t *const **V,
                        size_t *nv) {
  *W = s->W[l];
  *bias = s->bias[l];
  *V = has_v(s, l) ? s->V[l] : NULL;
  *nv = has_v(s, l) ? n_v(s, l) : 0;
}

void refine_state_set_counters(hetee_refine_state *s, uint32_t epoch, uint32_t next, uint64_t steps, uint64_t updates) {
  s->epoch = epoch;
  s->next = next;
  s->steps = steps;
  s->updates = updates;
}

void refine_state_counters(const hetee_refine_state *s, uint64_t *updates) { *updates = s->updates; }

int refine_state_replace_layer(hetee_refine_state *s, int l, ct_t **W, ct_t **bias, ct_t **WT, ct_t **V) {
  if (l < 0 || l >= s->p.nl || !s->p.L[l].trains) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %d does not train", l);
  const hetee_refine_layer *L = &s->p.L[l];
  refine_free_cts(s->W[l], L->F.n_w_cts);
  memcpy(s->W[l], W, L->F.n_w_cts * sizeof *W);
  refine_free_cts(s->bias[l], (size_t)L->F.nmb);
  memcpy(s->bias[l], bias, (size_t)L->F.nmb * sizeof *bias);
  if (L->has_back) {
    refine_free_cts(s->WT[l], L->T.n_w_cts);
    memcpy(s->WT[l], WT, L->T.n_w_cts * sizeof *WT);
  }
  if (has_v(s, l)) {
    refine_free_cts(s->V[l], n_v(s, l));
    memcpy(s->V[l], V, n_v(s, l) * sizeof *V);
  }
  return 0;
}

/* ---------------------------------------------------------------- validation set */
struct hetee_refine_valset {
  const hetee_ckks_context *ctx;
  hetee_refine_plan p;
  uint32_t count, nb;
  hetee_refine_batch **b;
};

void hetee_refine_valset_free(hetee_refine_valset *vs) {
  if (!vs) return;
  for (uint32_t i = 0; vs->b && i < vs->nb; i++) hetee_refine_batch_free(vs->b[i]);
  free(vs->b);
  free(vs);
}

uint32_t hetee_refine_valset_count(const hetee_refine_valset *vs) { return vs ? vs->count : 0; }

/* The MP's witness of validation chunk `chunk` (refine_internal.h). */
static int vwit_seal(const hetee_refine_plan *p, const float *x, const uint32_t *idx, uint32_t count, uint32_t model_id,
                     const uint8_t release_pk[32], uint32_t chunk, hetee_refine_batch *b) {
  return wit_seal(REFINE_VWIT_TAG, p, x, idx, count, model_id, release_pk, chunk, b);
}

static int valset_encrypt(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk, const hetee_refine_plan *p,
                          const float *x, const float *labels, uint32_t count, int wit, uint32_t model_id,
                          const uint8_t *release_pk, hetee_refine_valset **out) {
  if (!ctx || !pk || !p || !x || !labels || !out || count < 1 || (wit && !release_pk))
    return hetee_error(HETEE_ERR_INVALID_ARG, "bad argument");
  size_t k = (size_t)p->L[0].k;
  /* the values must be ones the enclave accepts (checked before anything is sealed) */
  for (size_t q = 0; wit && q < (size_t)count * k; q++)
    if (!(fabs((double)x[q]) <= REFINE_WIT_MAX_ABS))
      return hetee_error(HETEE_ERR_INVALID_ARG, "sample %zu, value %zu is not finite or above 2^20 in magnitude", q / k,
                         q % k);
  if (wit && sodium_init() < 0) return hetee_error(HETEE_ERR_INTERNAL, "libsodium init failed");
  uint32_t B = p->cfg.batch;
  hetee_refine_valset *vs = calloc(1, sizeof *vs);
  uint32_t *idx = malloc((size_t)count * sizeof *idx);
  int rc = 0;
  if (!vs || !idx || !(vs->b = calloc((count + B - 1) / B, sizeof *vs->b))) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (uint32_t i = 0; !rc && i < count; i++) idx[i] = i;
  if (!rc) {
    vs->ctx = ctx;
    vs->p = *p;
    vs->count = count;
  }
  for (uint32_t at = 0; !rc && at < count; at += B) {
    uint32_t c = count - at < B ? count - at : B;
    rc = batch_encrypt(ctx, pk, p, x, labels, idx + at, c, 0, &vs->b[vs->nb]);
    if (!rc) vs->nb++;
    if (!rc && wit) rc = vwit_seal(p, x, idx + at, c, model_id, release_pk, vs->nb - 1, vs->b[vs->nb - 1]);
  }
  free(idx);
  if (rc) {
    hetee_refine_valset_free(vs);
    return rc;
  }
  *out = vs;
  return 0;
}

int hetee_refine_valset_encrypt(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                                const hetee_refine_plan *p, const float *x, const float *labels, uint32_t count,
                                hetee_refine_valset **out) {
  return valset_encrypt(ctx, pk, p, x, labels, count, 0, 0, NULL, out);
}

int hetee_refine_valset_encrypt_witness(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                                        const hetee_refine_plan *p, const float *x, const float *labels,
                                        uint32_t count, uint32_t model_id, const uint8_t release_pk[32],
                                        hetee_refine_valset **out) {
  return valset_encrypt(ctx, pk, p, x, labels, count, 1, model_id, release_pk, out);
}

uint32_t hetee_refine_valset_chunks(const hetee_refine_valset *vs) { return vs ? vs->nb : 0; }

int hetee_refine_valset_auth_msg(const hetee_refine_valset *vs, uint32_t chunk, const uint8_t mp_pk[32], uint8_t **msg,
                                 size_t *len) {
  if (!vs || !mp_pk || !msg || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (chunk >= vs->nb) return hetee_error(HETEE_ERR_INVALID_ARG, "chunk %u of %u", chunk, vs->nb);
  const hetee_refine_batch *b = vs->b[chunk];
  if (!b->wit) return hetee_error(HETEE_ERR_STATE, "the validation set has no witness");
  uint8_t *spec = NULL, sd[32];
  size_t slen = 0;
  int rc = hetee_refine_spec_encode(&vs->p, &spec, &slen);
  if (rc) return rc;
  crypto_hash_sha256(sd, spec, slen);
  free(spec);
  uint8_t *m = malloc(REFINE_VAUTH_LEN);
  if (!m) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  refine_vauth_bytes(b->wit_model, sd, mp_pk, chunk, vs->nb, b->count, b->wit, b->wit_len, m);
  *msg = m;
  *len = REFINE_VAUTH_LEN;
  return 0;
}

int hetee_refine_valset_set_auth(hetee_refine_valset *vs, uint32_t chunk, const uint8_t mp_pk[32], const uint8_t sig[64]) {
  if (!vs || !mp_pk || !sig) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (chunk >= vs->nb) return hetee_error(HETEE_ERR_INVALID_ARG, "chunk %u of %u", chunk, vs->nb);
  return hetee_refine_batch_set_auth(vs->b[chunk], mp_pk, sig);
}

int hetee_refine_valset_sign(hetee_refine_valset *vs, const uint8_t mp_pk[32],
                             int (*sign)(void *arg, const uint8_t *msg, size_t len, uint8_t sig[64]), void *arg) {
  if (!vs || !mp_pk || !sign) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = 0;
  for (uint32_t i = 0; i < vs->nb && !rc; i++) {
    uint8_t *m = NULL, sig[64];
    size_t ml = 0;
    rc = hetee_refine_valset_auth_msg(vs, i, mp_pk, &m, &ml);
    if (!rc) rc = sign(arg, m, ml, sig);
    if (!rc) rc = hetee_refine_valset_set_auth(vs, i, mp_pk, sig);
    free(m);
  }
  return rc;
}

int hetee_refine_valset_has_witness(const hetee_refine_valset *vs) {
  int all = vs && vs->nb > 0;
  for (uint32_t i = 0; all && i < vs->nb; i++) all = hetee_refine_batch_has_witness(vs->b[i]);
  return all;
}

int hetee_refine_valset_labels_digest(const hetee_refine_valset *vs, uint8_t out[32]) {
  if (!vs || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  for (uint32_t i = 0; i < vs->nb; i++) {
    uint8_t *buf = NULL, le[8];
    size_t len = 0;
    int rc = hetee_ckks_ciphertext_save(vs->ctx, vs->b[i]->labels, &buf, &len);
    if (rc) return rc;
    for (int q = 0; q < 8; q++) le[q] = (uint8_t)((uint64_t)len >> (8 * q));
    crypto_generichash_update(&st, le, 8);
    crypto_generichash_update(&st, buf, len);
    free(buf);
  }
  crypto_generichash_final(&st, out, 32);
  return 0;
}

int refine_validate_pass(hetee_refine_state *s, const hetee_refine_valset *vs, int threads, const refine_val_ops *ops,
                         void *arg) {
  const hetee_refine_plan *p = &s->p;
  if (s->partial) return hetee_error(HETEE_ERR_STATE, "a state read without its frozen layers");
  if (vs->p.nl != p->nl || vs->p.cfg.batch != p->cfg.batch || vs->p.L[0].F.n_in_cts != p->L[0].F.n_in_cts ||
      vs->p.classes != p->classes)
    return hetee_error(HETEE_ERR_SHAPE, "validation set encrypted for another plan");
  int rc = 0, nl = p->nl;
  for (uint32_t i = 0; i < vs->nb && !rc; i++) {
    const hetee_refine_batch *b = vs->b[i];
    ct_t **in = b->in0, **out = NULL;
    size_t nin = b->n_in0;
    /* the MP's witness of the chunk (an enclave job refuses a chunk without one) */
    if (ops->vwitness && hetee_refine_batch_has_witness(b))
      rc = ops->vwitness(arg, b->count, i, vs->nb, b->dp, b->sig, b->wit, b->wit_len);
    if (rc) break;
    for (int l = 0; l < nl && !rc; l++) {
      const hetee_refine_layer *L = &p->L[l];
      out = new_out(s->ctx, L->F.n_out_cts);
      if (!out) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      if (!rc)
        rc = hetee_hemat_conv_eval(s->ctx, &L->F, (const ct_t *const *)in, (const ct_t *const *)s->W[l],
                                   (const ct_t *const *)s->bias[l], threads, out);
      if (in != b->in0) cts_drop(&in, nin);
      in = NULL;
      if (!rc && l < nl - 1) {
        nin = p->L[l + 1].F.n_in_cts;
        in = cts_alloc(nin);
        if (!in) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
        if (!rc) rc = ops->forward(arg, l, out, b->count, in);
      } else if (!rc) {
        rc = ops->loss(arg, out, b->labels, b->count);
      }
      if (out) cts_drop(&out, L->F.n_out_cts);
    }
    if (in && in != b->in0) cts_drop(&in, nin);
  }
  return rc;
}

/* ---- validation set serialization ---- */
static void vs_put(uint8_t **q, uint64_t v, int n) {
  for (int i = 0; i < n; i++) (*q)[i] = (uint8_t)(v >> (8 * i));
  *q += n;
}

/* The providers' files hold their ciphertexts packed (docs/ckks.md, flag
 * 4: each residue in its prime's bit length); vs_ct_get loads both forms. */
static int vs_ct_size(const hetee_ckks_context *ctx, const ct_t *c, size_t *n) {
  size_t len = 0;
  int rc = hetee_ckks_ciphertext_save_packed_size(ctx, c, &len);
  *n += 8 + len;
  return rc;
}

static int vs_ct_put(const hetee_ckks_context *ctx, const ct_t *c, uint8_t **q) {
  size_t len = 0, got = 0;
  int rc = hetee_ckks_ciphertext_save_packed_size(ctx, c, &len);
  if (rc) return rc;
  vs_put(q, len, 8);
  rc = hetee_ckks_ciphertext_save_packed_to(ctx, c, *q, len, &got);
  *q += got;
  return rc;
}

#define VS_VERSION 2               /* 2: the MP's witness of each chunk after its labels */
#define VS_WIT_FIXED (4 + 32 + 64 + 8) /* model, MP key, signature, sealed length */

int hetee_refine_valset_save(const hetee_refine_valset *vs, uint8_t **buf, size_t *len) {
  if (!vs || !buf || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  size_t n = 4 + 4 + 32 + 5 * 4;
  int rc = 0;
  for (uint32_t i = 0; i < vs->nb && !rc; i++) {
    n += 8;
    for (size_t j = 0; j < vs->b[i]->n_in0 && !rc; j++) rc = vs_ct_size(vs->ctx, vs->b[i]->in0[j], &n);
    if (!rc) rc = vs_ct_size(vs->ctx, vs->b[i]->labels, &n);
    n += 1 + (hetee_refine_batch_has_witness(vs->b[i]) ? VS_WIT_FIXED + vs->b[i]->wit_len : 0);
  }
  if (rc) return rc;
  uint8_t *b = malloc(n), *q = b;
  if (!b) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  memcpy(q, "HTRV", 4);
  q += 4;
  vs_put(&q, VS_VERSION, 4);
  memcpy(q, hetee_ckks_context_fingerprint(vs->ctx), 32);
  q += 32;
  vs_put(&q, vs->p.cfg.batch, 4);
  vs_put(&q, (uint64_t)vs->p.L[0].k, 4);
  vs_put(&q, (uint64_t)vs->p.classes, 4);
  vs_put(&q, vs->count, 4);
  vs_put(&q, vs->nb, 4);
  for (uint32_t i = 0; i < vs->nb && !rc; i++) {
    vs_put(&q, vs->b[i]->count, 4);
    vs_put(&q, vs->b[i]->n_in0, 4);
    for (size_t j = 0; j < vs->b[i]->n_in0 && !rc; j++) rc = vs_ct_put(vs->ctx, vs->b[i]->in0[j], &q);
    if (!rc) rc = vs_ct_put(vs->ctx, vs->b[i]->labels, &q);
    const hetee_refine_batch *wb = vs->b[i];
    int wit = hetee_refine_batch_has_witness(wb);
    vs_put(&q, (uint64_t)wit, 1);
    if (!rc && wit) {
      vs_put(&q, wb->wit_model, 4);
      memcpy(q, wb->dp, 32);
      memcpy(q + 32, wb->sig, 64);
      q += 96;
      vs_put(&q, wb->wit_len, 8);
      memcpy(q, wb->wit, wb->wit_len);
      q += wb->wit_len;
    }
  }
  if (rc || (size_t)(q - b) != n) {
    free(b);
    return rc ? rc : hetee_error(HETEE_ERR_INTERNAL, "validation set size");
  }
  *buf = b;
  *len = n;
  return 0;
}

typedef struct vs_rd {
  const uint8_t *p;
  size_t left;
  int err;
} vs_rd;

static uint64_t vs_get(vs_rd *r, int n) {
  if (r->err || r->left < (size_t)n) {
    r->err = 1;
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v |= (uint64_t)r->p[i] << (8 * i);
  r->p += n;
  r->left -= (size_t)n;
  return v;
}

static int vs_ct_get(const hetee_ckks_context *ctx, vs_rd *r, double scale, ct_t **out) {
  uint64_t len = vs_get(r, 8);
  if (r->err || len > r->left) return hetee_error(HETEE_ERR_TRUNCATED, "refine file truncated");
  int rc = hetee_ckks_ciphertext_load(ctx, r->p, (size_t)len, out);
  if (rc) return rc;
  r->p += len;
  r->left -= (size_t)len;
  if (hetee_ckks_ciphertext_level(*out) != REFINE_LEVEL || hetee_ckks_ciphertext_size(*out) != 2 ||
      !(fabs(hetee_ckks_ciphertext_scale(*out) / scale - 1) < 0x1p-20))
    return hetee_error(HETEE_ERR_FORMAT, "refine file ciphertext: level, size or scale");
  return 0;
}

/* The signed witness after a chunk's or batch's header fields: dp[32] |
 * sig[64] | u64 length | the sealed witness, which must be `want` bytes;
 * into b (has_auth set). WIT_OK, or what went wrong (each caller names it
 * in its own words): WIT_TRUNCATED, WIT_LENGTH (*wl: the length read),
 * WIT_NOMEM. */
enum { WIT_OK, WIT_TRUNCATED, WIT_LENGTH, WIT_NOMEM };
static int wit_tail(vs_rd *r, uint64_t want, hetee_refine_batch *b, uint64_t *wl) {
  if (!r->err && r->left >= 96) {
    memcpy(b->dp, r->p, 32);
    memcpy(b->sig, r->p + 32, 64);
    r->p += 96;
    r->left -= 96;
  } else {
    r->err = 1;
  }
  *wl = vs_get(r, 8);
  if (r->err || *wl > r->left) return WIT_TRUNCATED;
  if (*wl != want) return WIT_LENGTH;
  if (!(b->wit = malloc((size_t)*wl))) return WIT_NOMEM;
  memcpy(b->wit, r->p, (size_t)*wl);
  r->p += *wl;
  r->left -= (size_t)*wl;
  b->wit_len = (size_t)*wl;
  b->has_auth = 1;
  return WIT_OK;
}

int hetee_refine_valset_load(const hetee_ckks_context *ctx, const hetee_refine_plan *p, const uint8_t *buf, size_t len,
                             hetee_refine_valset **out) {
  if (!ctx || !p || !buf || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  vs_rd r = {buf, len, 0};
  if (len < 60 || memcmp(buf, "HTRV", 4)) return hetee_error(HETEE_ERR_FORMAT, "not a validation set");
  r.p += 4;
  r.left -= 4;
  uint64_t ver = vs_get(&r, 4);
  if (ver == 1)
    return hetee_error(HETEE_ERR_VERSION, "validation set version 1 has no model provider's witnesses: encrypt it again "
                                          "(version %d)", VS_VERSION);
  if (ver != VS_VERSION) return hetee_error(HETEE_ERR_VERSION, "validation set version %llu", (unsigned long long)ver);
  if (memcmp(r.p, hetee_ckks_context_fingerprint(ctx), 32)) return hetee_error(HETEE_ERR_CONTEXT, "validation set under other parameters");
  r.p += 32;
  r.left -= 32;
  uint64_t B = vs_get(&r, 4), k = vs_get(&r, 4), c = vs_get(&r, 4), count = vs_get(&r, 4), nb = vs_get(&r, 4);
  if (B != p->cfg.batch || k != (uint64_t)p->L[0].k || c != (uint64_t)p->classes)
    return hetee_error(HETEE_ERR_SHAPE, "validation set for another plan");
  if (count < 1 || nb != (count + B - 1) / B) return hetee_error(HETEE_ERR_FORMAT, "validation set counts");
  hetee_refine_valset *vs = calloc(1, sizeof *vs);
  int rc = 0;
  if (!vs || !(vs->b = calloc((size_t)nb, sizeof *vs->b))) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc) {
    vs->ctx = ctx;
    vs->p = *p;
    vs->count = (uint32_t)count;
  }
  uint64_t seen = 0;
  for (uint64_t i = 0; i < nb && !rc; i++) {
    uint64_t bc = vs_get(&r, 4), n = vs_get(&r, 4);
    if (r.err) rc = hetee_error(HETEE_ERR_TRUNCATED, "validation set truncated");
    else if (bc < 1 || bc > B || n != p->L[0].F.n_in_cts || (i + 1 < nb && bc != B))
      rc = hetee_error(HETEE_ERR_FORMAT, "validation batch %llu counts", (unsigned long long)i);
    hetee_refine_batch *b = rc ? NULL : calloc(1, sizeof *b);
    if (!rc && (!b || !(b->in0 = cts_alloc((size_t)n)))) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    if (b) {
      vs->b[vs->nb++] = b;
      b->ctx = ctx;
      b->batch = p->cfg.batch;
      b->k = (uint32_t)p->L[0].k;
      b->classes = (uint32_t)p->classes;
      b->count = (uint32_t)bc;
      b->n_in0 = rc ? 0 : (size_t)n;
    }
    for (uint64_t j = 0; j < n && !rc; j++) rc = vs_ct_get(ctx, &r, REFINE_IN_SCALE, &b->in0[j]);
    if (!rc) rc = vs_ct_get(ctx, &r, REFINE_IN_SCALE, &b->labels);
    uint64_t wit = rc ? 0 : vs_get(&r, 1);
    if (!rc && r.err) rc = hetee_error(HETEE_ERR_TRUNCATED, "validation set truncated");
    else if (!rc && wit > 1) rc = hetee_error(HETEE_ERR_FORMAT, "validation chunk %llu: witness flag", (unsigned long long)i);
    if (!rc && wit) {
      b->wit_model = (uint32_t)vs_get(&r, 4);
      uint64_t wl = 0;
      int t = wit_tail(&r, REFINE_WIT_SEALED_LEN(bc, k), b, &wl);
      if (t == WIT_TRUNCATED) rc = hetee_error(HETEE_ERR_TRUNCATED, "validation set truncated");
      else if (t == WIT_LENGTH)
        rc = hetee_error(HETEE_ERR_FORMAT, "validation chunk %llu: a witness of %llu bytes", (unsigned long long)i,
                         (unsigned long long)wl);
      else if (t == WIT_NOMEM) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      else b->wit_no = i;
    }
    seen += bc;
  }
  if (!rc && (seen != count || r.left)) rc = hetee_error(HETEE_ERR_FORMAT, "validation set counts or trailing bytes");
  if (rc) {
    hetee_refine_valset_free(vs);
    return rc;
  }
  *out = vs;
  return 0;
}

/* ---- one data provider's batch (the file a DP submits to a refine job) ---- */
#define RB_HEADER (4 + 4 + 32 + 6 * 4)
#define RB_VERSION 3 /* 3: the DP's witness after the labels */

uint32_t hetee_refine_batch_count(const hetee_refine_batch *b) { return b ? b->count : 0; }

int hetee_refine_batch_save(const hetee_refine_batch *b, uint8_t **buf, size_t *len) {
  if (!b || !b->ctx || !buf || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  size_t n = RB_HEADER;
  int rc = 0;
  for (size_t j = 0; j < b->n_in0 && !rc; j++) rc = vs_ct_size(b->ctx, b->in0[j], &n);
  for (size_t j = 0; j < b->n_gw0 && !rc; j++) rc = vs_ct_size(b->ctx, b->gw0[j], &n);
  if (!rc) rc = vs_ct_size(b->ctx, b->labels, &n);
  if (rc) return rc;
  int wit = hetee_refine_batch_has_witness(b);
  n += 1 + (wit ? 4 + 8 + 32 + 64 + 8 + b->wit_len : 0);
  uint8_t *o = malloc(n), *q = o;
  if (!o) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  memcpy(q, "HTRB", 4);
  q += 4;
  vs_put(&q, RB_VERSION, 4);
  memcpy(q, hetee_ckks_context_fingerprint(b->ctx), 32);
  q += 32;
  vs_put(&q, b->batch, 4);
  vs_put(&q, b->k, 4);
  vs_put(&q, b->classes, 4);
  vs_put(&q, b->count, 4);
  vs_put(&q, b->n_in0, 4);
  vs_put(&q, b->n_gw0, 4);
  for (size_t j = 0; j < b->n_in0 && !rc; j++) rc = vs_ct_put(b->ctx, b->in0[j], &q);
  for (size_t j = 0; j < b->n_gw0 && !rc; j++) rc = vs_ct_put(b->ctx, b->gw0[j], &q);
  if (!rc) rc = vs_ct_put(b->ctx, b->labels, &q);
  if (!rc) {
    vs_put(&q, (uint64_t)wit, 1);
    if (wit) {
      vs_put(&q, b->wit_model, 4);
      vs_put(&q, b->wit_no, 8);
      memcpy(q, b->dp, 32);
      memcpy(q + 32, b->sig, 64);
      q += 96;
      vs_put(&q, b->wit_len, 8);
      memcpy(q, b->wit, b->wit_len);
      q += b->wit_len;
    }
  }
  if (rc || (size_t)(q - o) != n) {
    free(o);
    return rc ? rc : hetee_error(HETEE_ERR_INTERNAL, "refine batch size");
  }
  *buf = o;
  *len = n;
  return 0;
}

int hetee_refine_batch_load(const hetee_ckks_context *ctx, const hetee_refine_plan *p, const uint8_t *buf, size_t len,
                            hetee_refine_batch **out) {
  if (!ctx || !p || !buf || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  if (len < RB_HEADER || memcmp(buf, "HTRB", 4)) return hetee_error(HETEE_ERR_FORMAT, "not a refine batch");
  vs_rd r = {buf + 4, len - 4, 0};
  if (vs_get(&r, 4) != RB_VERSION) return hetee_error(HETEE_ERR_VERSION, "refine batch version (%d expected)", RB_VERSION);
  if (memcmp(r.p, hetee_ckks_context_fingerprint(ctx), 32))
    return hetee_error(HETEE_ERR_CONTEXT, "refine batch under other parameters");
  r.p += 32;
  r.left -= 32;
  uint64_t B = vs_get(&r, 4), k = vs_get(&r, 4), c = vs_get(&r, 4);
  uint64_t count = vs_get(&r, 4), nin = vs_get(&r, 4), ngw = vs_get(&r, 4);
  const hetee_refine_layer *L = &p->L[0];
  uint64_t want_gw = L->trains ? L->G.n_w_cts : 0;
  if (B != p->cfg.batch || k != (uint64_t)L->k || c != (uint64_t)p->classes)
    return hetee_error(HETEE_ERR_SHAPE, "refine batch for another plan");
  if (count < 1 || count > p->cfg.batch)
    return hetee_error(HETEE_ERR_SHAPE, "a batch of %llu samples (the job's batch is %u)", (unsigned long long)count,
                       p->cfg.batch);
  if (nin != L->F.n_in_cts || ngw != want_gw)
    return hetee_error(HETEE_ERR_SHAPE, "%llu input and %llu layer-input ciphertexts; the plan has %zu and %llu",
                       (unsigned long long)nin, (unsigned long long)ngw, L->F.n_in_cts, (unsigned long long)want_gw);
  hetee_refine_batch *b = calloc(1, sizeof *b);
  int rc = 0;
  if (!b || !(b->in0 = cts_alloc((size_t)nin)) || (ngw && !(b->gw0 = cts_alloc((size_t)ngw))))
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (b) {
    b->ctx = ctx;
    b->batch = (uint32_t)B;
    b->k = (uint32_t)k;
    b->classes = (uint32_t)c;
    b->count = (uint32_t)count;
    b->n_in0 = b->in0 ? (size_t)nin : 0;
    b->n_gw0 = b->gw0 ? (size_t)ngw : 0;
  }
  for (uint64_t j = 0; j < nin && !rc; j++) rc = vs_ct_get(ctx, &r, REFINE_IN_SCALE, &b->in0[j]);
  for (uint64_t j = 0; j < ngw && !rc; j++) rc = vs_ct_get(ctx, &r, REFINE_W_SCALE, &b->gw0[j]);
  if (!rc) rc = vs_ct_get(ctx, &r, REFINE_IN_SCALE, &b->labels);
  uint64_t wit = rc ? 0 : vs_get(&r, 1);
  if (!rc && (r.err || wit > 1)) rc = hetee_error(r.err ? HETEE_ERR_TRUNCATED : HETEE_ERR_FORMAT, "refine batch: witness flag");
  if (!rc && wit) {
    b->wit_model = (uint32_t)vs_get(&r, 4);
    b->wit_no = vs_get(&r, 8);
    uint64_t wl = 0;
    int t = wit_tail(&r, REFINE_WIT_SEALED_LEN(count, k), b, &wl);
    if (t == WIT_TRUNCATED) rc = hetee_error(HETEE_ERR_TRUNCATED, "refine batch: witness truncated");
    else if (t == WIT_LENGTH)
      rc = hetee_error(HETEE_ERR_SHAPE, "refine batch: a witness of %llu bytes for %llu samples", (unsigned long long)wl,
                       (unsigned long long)count);
    else if (t == WIT_NOMEM) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  if (!rc && r.left) rc = hetee_error(HETEE_ERR_FORMAT, "%zu bytes after the refine batch", r.left);
  if (rc) {
    hetee_refine_batch_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

/*
 * refine.c — refining's trusted side inside the enclave process (issue 11,
 * docs/refine.md "In the enclave process"). The requests (wire in
 * enclave/wire/proto.h) carry ciphertexts in and out; the work is
 * refine_trusted.c's (hemat), run here with the enclave's secret key, which
 * never leaves this process.
 *
 * What binds what:
 *  - REFINE_OPEN carries the refine spec (layer shapes, activations, batch,
 *    accumulate, trained layers, loss, lr, momentum, weight decay, seed, N)
 *    and an authorization sealed by a model provider's session: plaintext
 *    "hetee-refine-auth-v1\0" | u32 model | SHA-256(spec) | u32 t |
 *    t x digest of the initial (W, bias, momentum) ciphertexts of each
 *    trained layer [| u32 f | f x frozen layer digest [| u32 n | n x DP
 *    key: the job's contributors]]. A job opens only if that session is an MP listed in
 *    the measured mp= configuration, the authorization opens under it
 *    (counters: no replay), names this model and this spec, and the MP owns
 *    the model (it set the model's release policy first). The enclave
 *    rebuilds the plan from the spec (hetee_refine_spec_decode), so every
 *    layout, count and hyper-parameter it uses is the MP's.
 *  - Weights: before the job's first step, REFINE_INIT of trained layer l
 *    takes W, bias and momentum from the host and accepts only the
 *    ciphertexts whose digest (BLAKE2b-256 over u64 len | bytes of each,
 *    in order) the MP authorized (HETEE_ERR_AUTH before decryption); from
 *    then on the job keeps layer l's weights, bias and momentum in the
 *    clear and updates those (UPDATEs carry only the gradient; the enclave
 *    still returns W, bias, W^T and momentum encrypted, for the host's
 *    products and checkpoints). A resumed job gets them from its sealed
 *    state, or (a state sealed before the first step) by REFINE_INIT
 *    against the sealed digests. FORWARD / LOSS / BACK / UPDATE wait
 *    (HETEE_ERR_STATE) until every trained layer is held. FETCH seals the kept W and bias of l to
 *    the MP's session. So the host can neither substitute weights nor have
 *    the enclave decrypt anything else (e.g. the data provider's samples)
 *    into what the MP receives, and no update decrypts weights again.
 *  - Steps are ordered: FORWARD 0..nl-2, LOSS, BACK nl-1..first_train+1,
 *    with one sample count per step; out of order is refused before
 *    decryption.
 *  - The host's products are checked (refine_trusted.c, Freivalds with
 *    secret Gaussian vectors, docs/refine.md "Integrity of the host's
 *    products"): forward outputs of trained layers and W^T deltas from
 *    the first step (the weights are held since REFINE_INIT), forward
 *    outputs of frozen layers
 *    (decrypted once per job from REFINE_FROZEN, checked against the MP's
 *    digest) from the first step, gradients at every update, before
 *    anything is refreshed or updated; layer 0's input is the data
 *    provider's witness (REFINE_WITNESS, signed by one of the job's
 *    contributors the MP authorized, or without that list a DP of the
 *    model's policy; a step without one is refused); a failure is
 *    HETEE_ERR_INTEGRITY and stops the job (FETCH still returns the
 *    weights of the last checked update).
 * Not bound (docs/refine.md "Gaps"): which batches the host feeds and in
 * what order.
 *
 * Every field is validated before anything is decrypted (counts against
 * the plan the enclave built, ciphertext format on load, then level, scale
 * and size in refine_trusted.c); errors name only public quantities; decoded
 * values are saturated at a public bound. Limits: HETEE_REFINE_MAX_JOBS
 * jobs, each keeping one step's pre-activations (batch x m doubles per
 * layer) and each trained layer's weights, bias, momentum (floats) and
 * gradient (doubles): at most a quarter of the configured budget per job;
 * a request's ciphertexts (in and out, expanded) must fit in the budget.
 * Jobs are not sealed: a restarted enclave has none (the host resumes from
 * its checkpoint with a new authorization of the checkpoint's weights).
 */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/trusted/enclave_internal.h"
#include "enclave/trusted/integrity_auth.h"

int enclave_refine_dispatch(enclave *e, uint16_t type, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items);

#ifdef HETEE_ENCLAVE_HAVE_CKKS

#include "hemat/refine_internal.h"

typedef struct refine_job {
  uint32_t id, model;
  uint8_t owner[32], sid[HETEE_SESSION_ID_BYTES];
  hetee_refine_plan plan;
  hetee_refine_trusted *tr;
  const hetee_ckks_context *ctx;
  const hetee_ckks_secret_key *sk;
  int fwd_next;  /* next FORWARD layer allowed (0 always restarts a step) */
  int back_next; /* next BACK layer allowed (-1: none) */
  uint32_t count;
  uint8_t digest[HETEE_REFINE_MAX_LAYERS][32]; /* the authorized initial (W, bias, V) of each trained layer */
  /* frozen layers (docs/refine.md "What is checked"): nfz = first_train
   * when the MP's authorization digests them (then every step waits until
   * each was loaded by REFINE_FROZEN and matched its digest), else 0 */
  int nfz;
  crypto_generichash_state fz_hash[HETEE_REFINE_MAX_LAYERS];
  uint8_t fz_ok[HETEE_REFINE_MAX_LAYERS];
  /* who may contribute (docs/refine.md "Who may contribute"): the ndp DPs
   * the MP's authorization names, or (ndp 0: an authorization without the
   * section) the model's release policy DPs, read at each batch */
  int ndp;
  uint8_t dp[HETEE_POLICY_MAX_DPS][32];
  ct_t **stage; /* PUT: ciphertexts for the next step request */
  size_t nstage;
  /* durability (SAVE / RESUME): a stable identity, the spec, what the job
   * applied, the epochs the host closed */
  uint8_t uid[16];
  uint8_t *spec;
  size_t spec_len;
  uint64_t samples, updates; /* samples applied by updates of the last layer, those updates */
  int ep_set;                /* the host declared a cursor (first SAVE) */
  uint32_t epoch, next;      /* the host's cursor at the last SAVE (steps, updates: the host's counters) */
  uint64_t hsteps, hupdates;
  uint64_t ep_base;          /* samples at the start of the current epoch */
  uint32_t nep;              /* epochs closed (at most REFINE_EPOCH_LOG recorded) */
  uint64_t ep_samples[256];
  /* validation accumulator (VLOSS .. VREPORT) */
  uint64_t vsamples, vcorrect;
  double vloss;
  crypto_generichash_state vdig;
  uint32_t vchunk, vnchunks; /* the MP's validation witnesses: the next chunk expected, of how many */
  uint64_t vwsamples;        /* samples of the witnesses accepted in this pass */
} refine_job;
#define REFINE_EPOCH_LOG 256

static refine_job *jobs[HETEE_REFINE_MAX_JOBS];
static uint32_t next_id; /* random start: a handle of a dead enclave's job does not name a job here */

static uint32_t new_job_id(void) {
  if (!next_id) next_id = 1 + randombytes_uniform(1u << 30);
  return next_id++;
}

static void stage_clear(refine_job *j) {
  for (size_t i = 0; i < j->nstage; i++) hetee_ckks_ciphertext_free(j->stage[i]);
  free(j->stage);
  j->stage = NULL;
  j->nstage = 0;
}

static void job_free(refine_job *j) {
  if (!j) return;
  stage_clear(j);
  free(j->spec);
  hetee_refine_trusted_free(j->tr); /* wipes the pre-activations */
  sodium_memzero(j, sizeof *j);
  free(j);
}

static void jobs_wipe(void) {
  for (int i = 0; i < HETEE_REFINE_MAX_JOBS; i++) {
    job_free(jobs[i]);
    jobs[i] = NULL;
  }
}

static refine_job *find_job(enclave *e, uint32_t id, int *rc) {
  for (int i = 0; i < HETEE_REFINE_MAX_JOBS; i++)
    if (jobs[i] && jobs[i]->id == id) {
      if (jobs[i]->ctx != e->ctx || jobs[i]->sk != e->sk) {
        *rc = hetee_error(HETEE_ERR_STATE, "refine job %u was opened under other keys", id);
        return NULL;
      }
      return jobs[i];
    }
  *rc = hetee_error(HETEE_ERR_NOT_FOUND, "no refine job %u", id);
  return NULL;
}

/* ---- ciphertext lists ---- */
typedef struct ct_list {
  size_t n;
  ct_t **c;
  const uint8_t **blob;
  size_t *blen;
} ct_list;

static void list_free(ct_list *l) {
  if (l->c)
    for (size_t i = 0; i < l->n; i++) hetee_ckks_ciphertext_free(l->c[i]);
  free(l->c);
  free(l->blob);
  free(l->blen);
  memset(l, 0, sizeof *l);
}

/* u32 n | n x blob, n must be `want`; every ciphertext loaded (format
 * checked against the parameters). */
static int list_read(enclave *e, hetee_rbuf *r, size_t want, const char *what, ct_list *l) {
  memset(l, 0, sizeof *l);
  uint32_t n = hetee_rbuf_u32(r);
  if (r->err) return hetee_error(HETEE_ERR_PROTOCOL, "%s: truncated request", what);
  if (n != want) return hetee_error(HETEE_ERR_SHAPE, "%s: %u ciphertexts, the plan has %zu", what, n, want);
  l->n = n;
  l->c = calloc(n ? n : 1, sizeof *l->c);
  l->blob = calloc(n ? n : 1, sizeof *l->blob);
  l->blen = calloc(n ? n : 1, sizeof *l->blen);
  if (!l->c || !l->blob || !l->blen) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (uint32_t i = 0; i < n; i++) {
    l->blob[i] = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &l->blen[i]);
    if (r->err) return hetee_error(HETEE_ERR_PROTOCOL, "%s: ciphertext %u truncated", what, i);
  }
  for (uint32_t i = 0; i < n; i++) {
    int rc = hetee_ckks_ciphertext_load(e->ctx, l->blob[i], l->blen[i], &l->c[i]);
    if (rc) return hetee_error(rc, "%s: ciphertext %u: %s", what, i, hetee_last_error());
  }
  return 0;
}

/* A list that may also be empty (0: the caller's alternative). */
static int list_read_opt(enclave *e, hetee_rbuf *r, size_t want, const char *what, ct_list *l) {
  memset(l, 0, sizeof *l);
  if (hetee_rbuf_left(r) >= 4 && hetee_rd32(r->p + r->off) == 0) {
    (void)hetee_rbuf_u32(r);
    return 0;
  }
  return list_read(e, r, want, what, l);
}

/* A step's input list: inline, or (u32 0) the ciphertexts staged by PUT,
 * which must then be exactly `want`. The stage is emptied either way. */
static int list_take(enclave *e, hetee_rbuf *r, refine_job *j, size_t want, const char *what, ct_list *l) {
  memset(l, 0, sizeof *l);
  int rc;
  if (hetee_rbuf_left(r) >= 4 && hetee_rd32(r->p + r->off) == 0 && want) {
    (void)hetee_rbuf_u32(r);
    if (j->nstage != want) rc = hetee_error(HETEE_ERR_SHAPE, "%s: %zu ciphertexts staged, the plan has %zu", what, j->nstage, want);
    else {
      l->n = j->nstage;
      l->c = j->stage;
      j->stage = NULL;
      j->nstage = 0;
      return 0;
    }
  } else {
    rc = list_read(e, r, want, what, l);
  }
  stage_clear(j);
  return rc;
}

static void digest_update_blob(crypto_generichash_state *st, const uint8_t *p, size_t len) {
  uint8_t le[8];
  hetee_le64(le, (uint64_t)len);
  crypto_generichash_update(st, le, 8);
  crypto_generichash_update(st, p, len);
}

static void digest_lists(const ct_list *const *ls, int nls, uint8_t out[32]) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  for (int k = 0; k < nls; k++)
    for (size_t i = 0; i < ls[k]->n; i++) digest_update_blob(&st, ls[k]->blob[i], ls[k]->blen[i]);
  crypto_generichash_final(&st, out, 32);
}

static int reply_done(const hetee_wbuf *w) {
  return w->err ? hetee_error(HETEE_ERR_NOMEM, "no memory for the reply") : 0;
}

/* Writes n fresh ciphertexts as a list (the reply is reserved once). */
static int list_write(enclave *e, hetee_wbuf *w, ct_t *const *c, size_t n) {
  size_t total = 4;
  for (size_t i = 0; i < n; i++) {
    size_t len = 0;
    int rc = hetee_ckks_ciphertext_save_size(e->ctx, c[i], &len);
    if (rc) return rc;
    total += 8 + len;
  }
  if (hetee_wbuf_reserve(w, total)) return hetee_error(HETEE_ERR_NOMEM, "no memory for the reply");
  hetee_wbuf_u32(w, (uint32_t)n);
  for (size_t i = 0; i < n; i++) {
    size_t len = 0;
    int rc = hetee_ckks_ciphertext_save_size(e->ctx, c[i], &len);
    if (rc) return rc;
    hetee_wbuf_u64(w, (uint64_t)len);
    if (hetee_wbuf_reserve(w, len)) return hetee_error(HETEE_ERR_NOMEM, "no memory for the reply");
    size_t got = 0;
    rc = hetee_ckks_ciphertext_save_to(e->ctx, c[i], w->p + w->len, len, &got);
    if (rc) return rc;
    w->len += got;
  }
  return reply_done(w);
}

static ct_t **outs(size_t n) { return calloc(n ? n : 1, sizeof(ct_t *)); }
static void outs_free(ct_t **c, size_t n) {
  if (!c) return;
  for (size_t i = 0; i < n; i++) hetee_ckks_ciphertext_free(c[i]);
  free(c);
}

static void put_counts(const refine_job *j, hetee_wbuf *w, uint64_t *items, uint64_t enc0, uint64_t dec0) {
  uint64_t enc, dec;
  refine_tr_counts(j->tr, &enc, &dec);
  hetee_wbuf_u64(w, enc);
  hetee_wbuf_u64(w, dec);
  *items += (enc - enc0) + (dec - dec0);
}

/* Expanded bytes of `ncts` ciphertexts of size 3 at the refine level. */
static size_t cts_bytes(const hetee_refine_plan *p, size_t ncts) {
  return ncts * 3 * (REFINE_LEVEL + 1) * p->n * sizeof(uint64_t);
}

static int check_budget(enclave *e, const refine_job *j, size_t ncts) {
  if (cts_bytes(&j->plan, ncts) > e->cfg.budget)
    return hetee_error(HETEE_ERR_LIMIT, "refine request of %zu ciphertexts above the memory budget", ncts);
  return 0;
}

/* ---- what the handlers share: a request's head and end, a reply ---- */

/* The job a request names (its u32 id first), then nf u32 fields into f;
 * a truncated request (with `whole`, also a longer one) is "malformed
 * <msg>". The lookup comes first: an unknown job is NOT_FOUND whatever
 * follows. NULL with *rc set on error. */
static refine_job *job_request(enclave *e, hetee_rbuf *r, const char *msg, int whole, uint32_t *f, int nf, int *rc) {
  refine_job *j = find_job(e, hetee_rbuf_u32(r), rc);
  if (!j) return NULL;
  for (int i = 0; i < nf; i++) f[i] = hetee_rbuf_u32(r);
  if (r->err || (whole && hetee_rbuf_left(r))) {
    *rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed %s", msg);
    return NULL;
  }
  return j;
}

/* The end of a request whose lists have been read (rc so far). */
static int request_end(const hetee_rbuf *r, int rc) {
  if (!rc && hetee_rbuf_left(r)) rc = hetee_error(HETEE_ERR_PROTOCOL, "trailing bytes");
  return rc;
}

/* uid[16] | u64 samples | u64 updates: the head of SAVE's and STATUS's replies. */
static void put_job_head(hetee_wbuf *w, const refine_job *j) {
  hetee_wbuf_put(w, j->uid, 16);
  hetee_wbuf_u64(w, j->samples);
  hetee_wbuf_u64(w, j->updates);
}

/* LOSS's and VLOSS's inputs (rc so far): the logits (inline or staged),
 * the labels, nothing after. */
static int read_loss_in(enclave *e, hetee_rbuf *r, refine_job *j, int rc, ct_list *lo, ct_list *lab) {
  memset(lo, 0, sizeof *lo);
  memset(lab, 0, sizeof *lab);
  if (!rc) rc = list_take(e, r, j, j->plan.L[j->plan.nl - 1].F.n_out_cts, "logits", lo);
  if (!rc) rc = list_read(e, r, 1, "labels", lab);
  return request_end(r, rc);
}

/* A step's reply: k (<= 4) lists of fresh ciphertexts, allocated together
 * before the step (with the counters then), written in order after it,
 * then (items not NULL) the counters; freed together. */
typedef struct step_out {
  int k;
  size_t n[4];
  ct_t **c[4];
  uint64_t enc0, dec0;
} step_out;

static int out_begin(const refine_job *j, step_out *o, int rc, int k, const size_t *n) {
  memset(o, 0, sizeof *o);
  o->k = k;
  int bad = 0;
  for (int i = 0; i < k; i++) {
    o->n[i] = n[i];
    o->c[i] = outs(n[i]);
    bad |= !o->c[i];
  }
  refine_tr_counts(j->tr, &o->enc0, &o->dec0);
  if (!rc && bad) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  return rc;
}

static int out_end(enclave *e, hetee_wbuf *w, const refine_job *j, step_out *o, int rc, uint64_t *items) {
  for (int i = 0; !rc && i < o->k; i++) rc = list_write(e, w, o->c[i], o->n[i]);
  if (!rc && items) put_counts(j, w, items, o->enc0, o->dec0);
  for (int i = 0; i < o->k; i++) outs_free(o->c[i], o->n[i]);
  memset(o, 0, sizeof *o);
  return rc;
}

/* The ciphertexts of a trained layer's weights, bias, W^T (0 without a
 * W^T stage) and momentum (0 without momentum). */
static void layer_cts(const hetee_refine_plan *p, const hetee_refine_layer *L, size_t n[4]) {
  n[0] = L->F.n_w_cts;
  n[1] = (size_t)L->F.nmb;
  n[2] = L->has_back ? L->T.n_w_cts : 0;
  n[3] = p->cfg.momentum > 0 ? refine_compact_cts((size_t)L->m * (size_t)(L->k + 1), p->n) : 0;
}

/* A free slot for a new job, else LIMIT. */
static int free_slot(int *slot) {
  *slot = -1;
  for (int i = 0; i < HETEE_REFINE_MAX_JOBS && *slot < 0; i++)
    if (!jobs[i]) *slot = i;
  if (*slot < 0) return hetee_error(HETEE_ERR_LIMIT, "%d refine jobs open already", HETEE_REFINE_MAX_JOBS);
  return 0;
}

/* j->plan rebuilt from a spec, for the enclave's ring degree. */
static int plan_from_spec(const enclave *e, refine_job *j, const uint8_t *spec, size_t slen) {
  int rc = hetee_refine_spec_decode(spec, slen, &j->plan);
  if (!rc && j->plan.n != hetee_ckks_context_n(e->ctx))
    rc = hetee_error(HETEE_ERR_PARAMS, "refine spec for N = %zu, the enclave's is %zu", j->plan.n,
                     hetee_ckks_context_n(e->ctx));
  return rc;
}

/* A new or resumed job's handle, keys and step state (jobs are wiped at exit). */
static void job_start(const enclave *e, refine_job *j) {
  static int registered;
  if (!registered) registered = atexit(jobs_wipe) == 0;
  j->id = new_job_id();
  j->ctx = e->ctx;
  j->sk = e->sk;
  j->back_next = -1;
}

/* ---- frozen layers and the data provider's witness ---- */
static void frozen_begin(refine_job *j) {
  for (int l = 0; l < j->nfz; l++) crypto_generichash_init(&j->fz_hash[l], NULL, 0, 32);
}

/* Every step refuses to start until the authorized frozen layers are loaded
 * and every trained layer's weights are held (REFINE_INIT, or a resumed
 * state that keeps them), so that every layer's F and T products are
 * checked from the first step. */
static int frozen_ready(const refine_job *j) {
  if (refine_tr_failed(j->tr)) return hetee_error(HETEE_ERR_INTEGRITY, "refine job %u stopped at a failed check", j->id);
  for (int l = 0; l < j->nfz; l++)
    if (!j->fz_ok[l])
      return hetee_error(HETEE_ERR_STATE, "frozen layer %d not loaded yet (REFINE_FROZEN first)", l);
  for (int l = j->plan.first_train; l < j->plan.nl; l++)
    if (!refine_tr_holds(j->tr, l))
      return hetee_error(HETEE_ERR_STATE, "trained layer %d's weights not loaded yet (REFINE_INIT first)", l);
  return 0;
}

/* REFINE_INIT: u32 job | u32 layer | list W (F layout) | list bias | list
 * momentum (compact; empty without momentum): trained layer l's weights of
 * the job's start. Their digest must be the one the MP authorized for l
 * (HETEE_ERR_AUTH before anything is decrypted; nothing kept, the host may
 * send the right ones); then they are decrypted once and kept
 * (refine_tr_init_weights), and layer l's forward and W^T products are
 * checked from the first step. Once per job and layer (a resumed state
 * that keeps l's weights needs none: HETEE_ERR_STATE). */
static int handle_init(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  int rc = 0;
  uint32_t l;
  refine_job *j = job_request(e, r, "REFINE_INIT", 0, &l, 1, &rc);
  if (!j) return rc;
  const hetee_refine_plan *p = &j->plan;
  if (refine_tr_failed(j->tr)) return hetee_error(HETEE_ERR_INTEGRITY, "refine job %u stopped at a failed check", j->id);
  if (l >= (uint32_t)p->nl || (int)l < p->first_train) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %u does not train", l);
  if (refine_tr_holds(j->tr, (int)l)) return hetee_error(HETEE_ERR_STATE, "layer %u holds its weights already", l);
  size_t n[4];
  layer_cts(p, &p->L[l], n);
  rc = check_budget(e, j, n[0] + n[1] + n[3]);
  ct_list W = {0}, B = {0}, V = {0};
  if (!rc) rc = list_read(e, r, n[0], "weights", &W);
  if (!rc) rc = list_read(e, r, n[1], "bias", &B);
  if (!rc) rc = list_read(e, r, n[3], "momentum", &V);
  rc = request_end(r, rc);
  if (!rc) {
    uint8_t d[32];
    const ct_list *ls[3] = {&W, &B, &V};
    digest_lists(ls, 3, d);
    if (sodium_memcmp(d, j->digest[l], 32))
      rc = hetee_error(HETEE_ERR_AUTH, "layer %u: weights are not the ones the model provider authorized", l);
  }
  uint64_t enc0, dec0;
  refine_tr_counts(j->tr, &enc0, &dec0);
  if (!rc) rc = refine_tr_init_weights(j->tr, (int)l, W.c, B.c, n[3] ? V.c : NULL);
  if (!rc) put_counts(j, w, items, enc0, dec0);
  list_free(&W);
  list_free(&B);
  list_free(&V);
  return rc;
}

/* REFINE_FROZEN: u32 job | u32 layer | u32 first | list: ciphertexts
 * first.. of frozen layer l's (W in the F layout, then bias), in order;
 * decrypted on arrival (refine_tr_frozen_feed) and hashed as the MP's
 * authorization digests them; after the last, a digest other than the
 * authorized one stops the job (HETEE_ERR_AUTH, nothing kept). */
static int handle_frozen(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  int rc = 0;
  uint32_t f[2];
  refine_job *j = job_request(e, r, "REFINE_FROZEN", 0, f, 2, &rc);
  if (!j) return rc;
  uint32_t l = f[0], first = f[1], n = hetee_rbuf_left(r) >= 4 ? hetee_rd32(r->p + r->off) : 0;
  const hetee_refine_plan *p = &j->plan;
  if (refine_tr_failed(j->tr)) return hetee_error(HETEE_ERR_INTEGRITY, "refine job %u stopped at a failed check", j->id);
  if ((int)l >= j->nfz) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %u is not an authorized frozen layer", l);
  if (j->fz_ok[l]) return hetee_error(HETEE_ERR_STATE, "frozen layer %u is loaded already", l);
  const hetee_refine_layer *L = &p->L[l];
  size_t nw = L->F.n_w_cts, total = nw + (size_t)L->F.nmb;
  if (n < 1 || first >= total || n > total - first)
    return hetee_error(HETEE_ERR_SHAPE, "frozen ciphertexts %u..%u outside the %zu of layer %u", first, first + n, total, l);
  rc = check_budget(e, j, n);
  ct_list c = {0};
  if (!rc) rc = list_read(e, r, n, "frozen layer", &c);
  rc = request_end(r, rc);
  uint64_t enc0, dec0;
  refine_tr_counts(j->tr, &enc0, &dec0);
  if (!rc) {
    rc = refine_tr_frozen_feed(j->tr, (int)l, first, c.c, n); /* checks the order */
    if (rc) crypto_generichash_init(&j->fz_hash[l], NULL, 0, 32); /* the layer starts again from 0 */
  }
  if (!rc)
    for (size_t i = 0; i < n; i++) digest_update_blob(&j->fz_hash[l], c.blob[i], c.blen[i]);
  if (!rc && refine_tr_frozen_loaded(j->tr, (int)l)) {
    uint8_t d[32];
    crypto_generichash_final(&j->fz_hash[l], d, 32);
    if (sodium_memcmp(d, j->digest[l], 32)) {
      /* the pull-backs are of weights the MP did not authorize: the job stops */
      refine_tr_stop(j->tr);
      rc = hetee_error(HETEE_ERR_AUTH, "frozen layer %u: weights are not the ones the model provider authorized", l);
    } else {
      j->fz_ok[l] = 1;
    }
  }
  if (!rc) put_counts(j, w, items, enc0, dec0);
  list_free(&c);
  return rc;
}

/* A party's witness (formats in hemat/refine_internal.h): opens sealed
 * (len bytes, already checked against count and k) under the release key,
 * compares its header with tag, model, no, count, k (HETEE_ERR_AUTH), and
 * decodes the count x k values into *x (sodium_malloc'd; the caller frees
 * it) in one pass without early exit or data-dependent branch (subnormals
 * flushed branch-free); a value not finite or above 2^20 in magnitude is
 * HETEE_ERR_FORMAT (bad_msg: its message). Errors name the witness as the
 * model's `noun` no. The opened plaintext is wiped. */
static int open_witness(enclave *e, const uint8_t *sealed, size_t len, const char tag[sizeof REFINE_WIT_TAG],
                        uint32_t model, uint64_t no, uint32_t count, size_t k, const char *noun, const char *bad_msg,
                        double **xo) {
  int rc = 0;
  size_t plen = len - REFINE_WIT_SEALBYTES, nx = (size_t)count * k;
  uint8_t *plain = sodium_malloc(plen); /* locked; sodium_free wipes it */
  double *x = sodium_malloc(nx * sizeof(double));
  if (!plain || !x) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc) rc = enclave_auth_open_witness(e, sealed, len, plain);
  if (!rc) {
    const uint8_t *q = plain + sizeof REFINE_WIT_TAG;
    uint64_t hno = (uint64_t)hetee_rd32(q + 4) | (uint64_t)hetee_rd32(q + 8) << 32;
    if (memcmp(plain, tag, sizeof REFINE_WIT_TAG) || hetee_rd32(q) != model || hno != no || hetee_rd32(q + 12) != count ||
        hetee_rd32(q + 16) != (uint32_t)k)
      rc = hetee_error(HETEE_ERR_AUTH, "the witness is not one of this model's %s %llu", noun, (unsigned long long)no);
  }
  if (!rc) {
    const uint8_t *v = plain + REFINE_WIT_HDR;
    unsigned bad = 0;
    for (size_t i = 0; i < nx; i++) {
      uint32_t u = hetee_rd32(v + 4 * i);
      /* subnormals to +-0 without a branch (their conversion can take a slow path) */
      uint32_t normal = (uint32_t)0 - (uint32_t)((u & 0x7f800000u) != 0);
      u &= normal | 0x80000000u;
      float fv;
      memcpy(&fv, &u, 4);
      double xv = (double)fv;
      bad |= (unsigned)!(fabs(xv) <= REFINE_WIT_MAX_ABS);
      x[i] = xv;
    }
    if (bad) rc = hetee_error(HETEE_ERR_FORMAT, "%s", bad_msg);
  }
  if (plain) sodium_free(plain);
  if (rc && x) {
    sodium_free(x);
    x = NULL;
  }
  *xo = x;
  return rc;
}

/* REFINE_WITNESS: u32 job | u32 count | u64 batch_no | dp_pk[32] | sig[64]
 * | blob sealed. The data provider's witness of the next step's batch
 * (formats in hemat/refine_internal.h): checked in this order, each
 * failure one error whatever the values: the sealed size (a function of
 * count and the plan), dp_pk among the job's contributors (or, for a job
 * authorized without that list, the model's policy data providers), the
 * Ed25519 signature over the authorization naming this model, dp_pk,
 * batch_no, count and the sealed bytes' digest (HETEE_ERR_AUTH), the
 * sealed box opening under the release key and its header (model,
 * batch_no, count, k; HETEE_ERR_AUTH), then every value finite and within
 * 2^20 (one pass without early exit; HETEE_ERR_FORMAT). The values become
 * layer 0's input of the next step's checks; the opened plaintext is wiped. */
static int handle_witness(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  int rc = 0;
  uint32_t count;
  refine_job *j = job_request(e, r, "REFINE_WITNESS", 0, &count, 1, &rc);
  if (!j) return rc;
  uint64_t bno = hetee_rbuf_u64(r);
  const uint8_t *dp = hetee_rbuf_get(r, 32), *sig = hetee_rbuf_get(r, 64);
  size_t len = 0;
  const uint8_t *sealed = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &len);
  if (r->err || hetee_rbuf_left(r)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_WITNESS");
  const hetee_refine_plan *p = &j->plan;
  size_t k = (size_t)p->L[0].k;
  if (refine_tr_failed(j->tr)) return hetee_error(HETEE_ERR_INTEGRITY, "refine job %u stopped at a failed check", j->id);
  if (count < 1 || count > p->cfg.batch) return hetee_error(HETEE_ERR_INVALID_ARG, "a witness of %u samples", count);
  if (len != REFINE_WIT_SEALED_LEN(count, k))
    return hetee_error(HETEE_ERR_SHAPE, "a witness of %zu bytes; %u samples of %zu values have %zu", len, count, k,
                       REFINE_WIT_SEALED_LEN(count, k));
  int listed = 0;
  if (j->ndp) { /* the job's contributors, as the MP authorized them */
    for (int i = 0; i < j->ndp; i++) listed |= !sodium_memcmp(j->dp[i], dp, 32);
    if (!listed) return hetee_error(HETEE_ERR_AUTH, "the batch's data provider is not one of refine job %u's contributors", j->id);
  } else {
    const enclave_policy *pol = enclave_find_policy(e, j->model);
    for (int i = 0; pol && i < pol->n_dp; i++) listed |= !sodium_memcmp(pol->dp_pk[i], dp, 32);
    if (!listed) return hetee_error(HETEE_ERR_AUTH, "the batch's data provider is not in model %u's policy", j->model);
  }
  uint8_t d[32], am[REFINE_BATCH_AUTH_LEN];
  refine_witness_digest(j->model, bno, count, sealed, len, d);
  refine_batch_auth_bytes(j->model, dp, bno, count, d, am);
  if (crypto_sign_verify_detached(sig, am, sizeof am, dp))
    return hetee_error(HETEE_ERR_AUTH, "the batch's authorization does not verify under its data provider's key");
  double *x = NULL;
  rc = open_witness(e, sealed, len, REFINE_WIT_TAG, j->model, bno, count, k, "batch",
                    "the witness holds a value that is not finite or above 2^20 in magnitude", &x);
  uint64_t enc0, dec0;
  refine_tr_counts(j->tr, &enc0, &dec0);
  if (!rc) rc = refine_tr_witness(j->tr, x, count);
  if (!rc) put_counts(j, w, items, enc0, dec0);
  if (!rc) *items += 1;
  if (x) sodium_free(x);
  return rc;
}

/* ---- OPEN ---- */
/* u32 n | n x DP key: the job's contributors, the rest of m (what = the
 * message's name in errors). 1..HETEE_POLICY_MAX_DPS distinct keys. */
static int read_contributors(hetee_rbuf *m, refine_job *j, const char *what) {
  uint32_t n = hetee_rbuf_u32(m);
  if (m->err || n < 1 || n > HETEE_POLICY_MAX_DPS || hetee_rbuf_left(m) != (size_t)n * 32)
    return hetee_error(HETEE_ERR_FORMAT, "%s names %u contributors (1 to %d, 32 bytes each)", what, n,
                       HETEE_POLICY_MAX_DPS);
  for (uint32_t i = 0; i < n; i++) {
    hetee_rbuf_copy(m, j->dp[i], 32);
    for (uint32_t k = 0; k < i; k++)
      if (!sodium_memcmp(j->dp[k], j->dp[i], 32))
        return hetee_error(HETEE_ERR_FORMAT, "%s names contributor %u twice", what, i);
  }
  j->ndp = (int)n;
  return 0;
}

static int mp_listed(const enclave *e, const uint8_t pk[32]) {
  for (int i = 0; i < e->cfg.n_mp; i++)
    if (!sodium_memcmp(e->cfg.mp[i], pk, 32)) return 1;
  return 0;
}

/* What a job keeps between requests: one step's pre-activations, the
 * trained layers' weights, bias and momentum, a gradient fed in parts, the
 * checks' inputs and deltas and vectors over m and k + 1, a validation
 * pass's inputs: at most a quarter of the budget. */
static int job_bytes_ok(const enclave *e, const hetee_refine_plan *p) {
  size_t kbytes = 0;
  for (int l = 0; l < p->nl; l++) {
    const hetee_refine_layer *L = &p->L[l];
    if (L->need_z) kbytes += (size_t)p->cfg.batch * (size_t)L->m * sizeof(double);
    if (L->trains) kbytes += (size_t)L->m * (size_t)(L->k + 1) * (2 * sizeof(float) + sizeof(double));
    kbytes += ((size_t)p->cfg.batch + 5) * ((size_t)L->k + (size_t)L->m + 1) * sizeof(double);
    if (!L->trains) kbytes += (size_t)L->m * (size_t)(L->k + 1) * sizeof(float); /* a frozen layer while it loads */
  }
  kbytes += (size_t)p->cfg.batch * (size_t)p->L[0].k * sizeof(double); /* the pending witness */
  if (kbytes > e->cfg.budget / 4)
    return hetee_error(HETEE_ERR_LIMIT, "refine job keeps %zu bytes, above a quarter of the budget", kbytes);
  return 0;
}

static int handle_open(enclave *e, hetee_rbuf *r, hetee_wbuf *w) {
  uint32_t model = hetee_rbuf_u32(r);
  size_t slen = 0, alen = 0;
  const uint8_t *spec = hetee_rbuf_blob(r, 1u << 16, &slen);
  const uint8_t *auth = hetee_rbuf_blob(r, 1u << 16, &alen);
  if (r->err || hetee_rbuf_left(r)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_OPEN");
  int slot;
  int rc = free_slot(&slot);
  if (rc) return rc;
  refine_job *j = calloc(1, sizeof *j);
  if (!j) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  /* who authorizes (first: nothing is planned for an unauthorized spec): an
   * MP session of the measured list, owner of the model */
  hetee_chan *c = NULL;
  if (alen < HETEE_SESSION_OVERHEAD) rc = hetee_error(HETEE_ERR_FORMAT, "refine authorization too short");
  else if (!(c = enclave_find_session(e, auth))) rc = hetee_error(HETEE_ERR_NOT_FOUND, "no such session");
  else if (c->role != HETEE_ROLE_MP || !mp_listed(e, c->party_pk))
    rc = hetee_error(HETEE_ERR_AUTH, "only a model provider of the measured mp= list authorizes refining");
  uint8_t *msg = NULL;
  size_t mlen = 0;
  if (!rc) rc = hetee_chan_open(c, auth, alen, &msg, &mlen);
  if (!rc) {
    const enclave_policy *pol = enclave_find_policy(e, model);
    if (!pol) rc = hetee_error(HETEE_ERR_AUTH, "model %u has no owner (its model provider sets a policy first)", model);
    else if (sodium_memcmp(pol->owner, c->party_pk, 32))
      rc = hetee_error(HETEE_ERR_AUTH, "model %u belongs to another model provider", model);
  }
  hetee_rbuf m;
  hetee_rbuf_init(&m, msg, mlen);
  uint32_t nt = 0;
  if (!rc) {
    const size_t clen = sizeof HETEE_REFINE_AUTH_CONTEXT; /* with the NUL */
    const uint8_t *ctxs = hetee_rbuf_get(&m, clen);
    uint32_t amodel = hetee_rbuf_u32(&m);
    const uint8_t *sdig = hetee_rbuf_get(&m, 32);
    nt = hetee_rbuf_u32(&m);
    uint8_t want[32];
    crypto_hash_sha256(want, spec, slen);
    if (m.err || memcmp(ctxs, HETEE_REFINE_AUTH_CONTEXT, clen))
      rc = hetee_error(HETEE_ERR_FORMAT, "not a refine authorization");
    else if (amodel != model) rc = hetee_error(HETEE_ERR_AUTH, "the authorization is for model %u, not %u", amodel, model);
    else if (sodium_memcmp(sdig, want, 32)) rc = hetee_error(HETEE_ERR_AUTH, "the authorization is for another refine spec");
  }
  /* the plan, rebuilt from the authorized spec */
  if (!rc) rc = plan_from_spec(e, j, spec, slen);
  if (!rc && hetee_ckks_context_max_level(e->ctx) < REFINE_LEVEL)
    rc = hetee_error(HETEE_ERR_PARAMS, "the enclave's parameters have no level %d", REFINE_LEVEL);
  if (!rc) {
    int ntrain = j->plan.nl - j->plan.first_train;
    if (nt != (uint32_t)ntrain || hetee_rbuf_left(&m) < (size_t)nt * 32)
      rc = hetee_error(HETEE_ERR_FORMAT, "the authorization names %u trained layers, the spec %d", nt, ntrain);
    for (int l = j->plan.first_train; !rc && l < j->plan.nl; l++) hetee_rbuf_copy(&m, j->digest[l], 32);
    /* then, optionally, u32 f | f x digest of each frozen layer's (W, bias)
     * [| u32 n | n x contributor DP key (1..HETEE_POLICY_MAX_DPS, distinct)] */
    uint32_t nf = !rc && hetee_rbuf_left(&m) ? hetee_rbuf_u32(&m) : 0;
    if (!rc && (m.err || (nf && nf != (uint32_t)j->plan.first_train) || hetee_rbuf_left(&m) < (size_t)nf * 32))
      rc = hetee_error(HETEE_ERR_FORMAT, "the authorization names %u frozen layers, the spec %d", nf, j->plan.first_train);
    for (uint32_t l = 0; !rc && l < nf; l++) hetee_rbuf_copy(&m, j->digest[l], 32);
    if (!rc) j->nfz = (int)nf;
    if (!rc && hetee_rbuf_left(&m)) rc = read_contributors(&m, j, "the authorization");
    else if (!rc && m.err) rc = hetee_error(HETEE_ERR_FORMAT, "the authorization is truncated");
  }
  if (msg) {
    sodium_memzero(msg, mlen);
    free(msg);
  }
  if (!rc) rc = job_bytes_ok(e, &j->plan);
  if (!rc) rc = hetee_refine_trusted_new(e->ctx, e->sk, &j->plan, &j->tr);
  if (!rc) refine_tr_keep_weights(j->tr);
  if (!rc) refine_tr_require_witness(j->tr);
  if (rc) {
    job_free(j);
    return rc;
  }
  frozen_begin(j);
  j->spec = malloc(slen ? slen : 1);
  if (!j->spec) {
    job_free(j);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  memcpy(j->spec, spec, slen);
  j->spec_len = slen;
  randombytes_buf(j->uid, sizeof j->uid);
  job_start(e, j);
  j->model = model;
  memcpy(j->owner, c->party_pk, 32);
  memcpy(j->sid, c->id, HETEE_SESSION_ID_BYTES);
  jobs[slot] = j;
  hetee_wbuf_u32(w, j->id);
  hetee_wbuf_u32(w, (uint32_t)j->nfz); /* the frozen layers to load (REFINE_FROZEN) */
  return 0;
}

/* ---- steps ---- */
static int handle_forward(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  int rc = 0;
  uint32_t f[2];
  refine_job *j = job_request(e, r, "REFINE_FORWARD", 0, f, 2, &rc);
  if (!j) return rc;
  uint32_t l = f[0], count = f[1];
  const hetee_refine_plan *p = &j->plan;
  if (l >= (uint32_t)p->nl - 1) return hetee_error(HETEE_ERR_INVALID_ARG, "forward refresh of layer %u", l);
  if (l != 0 && ((int)l != j->fwd_next || count != j->count))
    return hetee_error(HETEE_ERR_STATE, "forward refresh of layer %u out of order", l);
  rc = frozen_ready(j);
  if (rc) return rc;
  const hetee_refine_layer *L = &p->L[l], *N1 = &p->L[l + 1];
  size_t nin = N1->F.n_in_cts, ngw = N1->trains ? N1->G.n_w_cts : 0;
  rc = check_budget(e, j, L->F.n_out_cts + nin + ngw);
  ct_list in = {0};
  if (!rc) rc = list_take(e, r, j, L->F.n_out_cts, "layer outputs", &in);
  rc = request_end(r, rc);
  step_out o;
  rc = out_begin(j, &o, rc, 2, (const size_t[]){nin, ngw});
  if (!rc) rc = refine_tr_forward(j->tr, (int)l, in.c, count, o.c[0], ngw ? o.c[1] : NULL);
  rc = out_end(e, w, j, &o, rc, items);
  j->fwd_next = rc ? 0 : (int)l + 1;
  j->count = count;
  j->back_next = -1;
  list_free(&in);
  return rc;
}

static int handle_loss(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  int rc = 0;
  uint32_t count;
  refine_job *j = job_request(e, r, "REFINE_LOSS", 0, &count, 1, &rc);
  if (!j) return rc;
  const hetee_refine_plan *p = &j->plan;
  int l = p->nl - 1;
  if (j->fwd_next != l || (l > 0 && count != j->count)) return hetee_error(HETEE_ERR_STATE, "loss before the forward pass");
  rc = frozen_ready(j);
  if (rc) return rc;
  const hetee_refine_layer *L = &p->L[l];
  size_t ng = L->G.n_in_cts, nt = L->has_back ? L->T.n_in_cts : 0;
  if (!L->trains) return hetee_error(HETEE_ERR_STATE, "the last layer does not train");
  rc = check_budget(e, j, L->F.n_out_cts + 1 + ng + nt);
  ct_list lo, lab;
  rc = read_loss_in(e, r, j, rc, &lo, &lab);
  step_out o;
  rc = out_begin(j, &o, rc, 2, (const size_t[]){ng, nt});
  if (!rc) rc = refine_tr_loss(j->tr, lo.c, lab.c[0], count, o.c[0], nt ? o.c[1] : NULL);
  rc = out_end(e, w, j, &o, rc, items);
  j->fwd_next = rc ? 0 : -1;
  j->count = count;
  j->back_next = rc || !L->has_back ? -1 : l;
  list_free(&lo);
  list_free(&lab);
  return rc;
}

static int handle_back(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  int rc = 0;
  uint32_t f[2];
  refine_job *j = job_request(e, r, "REFINE_BACK", 0, f, 2, &rc);
  if (!j) return rc;
  uint32_t l = f[0], count = f[1];
  const hetee_refine_plan *p = &j->plan;
  if (l >= (uint32_t)p->nl || !p->L[l].has_back) return hetee_error(HETEE_ERR_INVALID_ARG, "no W^T stage at layer %u", l);
  if ((int)l != j->back_next || count != j->count) return hetee_error(HETEE_ERR_STATE, "back refresh of layer %u out of order", l);
  const hetee_refine_layer *L = &p->L[l], *P = &p->L[l - 1];
  size_t ng = P->G.n_in_cts, nt = P->has_back ? P->T.n_in_cts : 0;
  rc = check_budget(e, j, L->T.n_out_cts + ng + nt);
  ct_list u = {0};
  if (!rc) rc = list_take(e, r, j, L->T.n_out_cts, "W^T delta", &u);
  rc = request_end(r, rc);
  step_out o;
  rc = out_begin(j, &o, rc, 2, (const size_t[]){ng, nt});
  if (!rc) rc = refine_tr_back(j->tr, (int)l, u.c, count, o.c[0], nt ? o.c[1] : NULL);
  rc = out_end(e, w, j, &o, rc, items);
  j->back_next = rc || !P->has_back ? -1 : (int)l - 1;
  list_free(&u);
  return rc;
}

static int handle_update(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  int rc = 0;
  uint32_t f[2];
  refine_job *j = job_request(e, r, "REFINE_UPDATE", 0, f, 2, &rc);
  if (!j) return rc;
  uint32_t l = f[0], ns = f[1];
  const hetee_refine_plan *p = &j->plan;
  if (l >= (uint32_t)p->nl || (int)l < p->first_train) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %u does not train", l);
  const hetee_refine_layer *L = &p->L[l];
  /* the weights are the ones the job keeps since REFINE_INIT (or a resumed
   * state): the lists of W, bias and momentum are empty */
  if (!refine_tr_holds(j->tr, (int)l))
    return hetee_error(HETEE_ERR_STATE, "layer %u's weights not loaded yet (REFINE_INIT first)", l);
  size_t n[4];
  layer_cts(p, L, n);
  size_t nw = n[0], nb = n[1], nwt = n[2], nv = n[3];
  ct_list g = {0}, W = {0}, B = {0}, V = {0};
  if (!rc) rc = list_read_opt(e, r, L->G.n_out_cts, "gradient", &g);
  if (!rc) rc = list_read(e, r, 0, "weights", &W);
  if (!rc) rc = list_read(e, r, 0, "bias", &B);
  if (!rc) rc = list_read(e, r, 0, "momentum", &V);
  rc = request_end(r, rc);
  if (!rc) rc = check_budget(e, j, g.n + nw + nb + nwt + nv);
  step_out o;
  rc = out_begin(j, &o, rc, 4, n);
  if (!rc)
    rc = refine_tr_update(j->tr, (int)l, g.n ? g.c : NULL, ns, NULL, NULL, NULL, o.c[0], o.c[1],
                          nwt ? o.c[2] : NULL, nv ? o.c[3] : NULL);
  rc = out_end(e, w, j, &o, rc, items);
  if (!rc && (int)l == p->nl - 1) { /* every update updates every trained layer, the last one included */
    j->samples += ns;
    j->updates++;
  }
  list_free(&g);
  list_free(&W);
  list_free(&B);
  list_free(&V);
  return rc;
}

static int handle_grad(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  int rc = 0;
  uint32_t f[2];
  refine_job *j = job_request(e, r, "REFINE_GRAD", 0, f, 2, &rc);
  if (!j) return rc;
  uint32_t l = f[0], first = f[1], n = hetee_rbuf_left(r) >= 4 ? hetee_rd32(r->p + r->off) : 0;
  const hetee_refine_plan *p = &j->plan;
  if (l >= (uint32_t)p->nl || (int)l < p->first_train) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %u does not train", l);
  size_t nct = p->L[l].G.n_out_cts;
  if (n < 1 || first >= nct || n > nct - first)
    return hetee_error(HETEE_ERR_SHAPE, "gradient ciphertexts %u..%u outside the %zu of layer %u", first, first + n, nct, l);
  rc = check_budget(e, j, n);
  ct_list g = {0};
  if (!rc) rc = list_read(e, r, n, "gradient", &g);
  rc = request_end(r, rc);
  uint64_t enc0, dec0;
  refine_tr_counts(j->tr, &enc0, &dec0);
  if (!rc) rc = refine_tr_grad_feed(j->tr, (int)l, first, g.c, n);
  if (!rc) put_counts(j, w, items, enc0, dec0);
  list_free(&g);
  return rc;
}

/* The session FETCH seals to: the one that authorized the job, else (a
 * resumed job, a new enclave) the first session of the job's owner. */
static hetee_chan *owner_session(enclave *e, const refine_job *j) {
  hetee_chan *c = enclave_find_session(e, j->sid);
  if (c && c->role == HETEE_ROLE_MP && !sodium_memcmp(c->party_pk, j->owner, 32)) return c;
  for (int i = 0; i < ENCLAVE_MAX_SESSIONS; i++) {
    c = &e->sec->sessions[i];
    if (e->sec->session_used[i] && c->role == HETEE_ROLE_MP && !sodium_memcmp(c->party_pk, j->owner, 32)) return c;
  }
  return NULL;
}

/* A fetch the MP authorized: auth opens in an MP session of the job's
 * owner (any of its sessions: a restart or a later session works) and
 * names the job's model, spec and layer l; the weights go to that session
 * (*c). Checked before anything is decrypted; the session's counter
 * refuses a replayed authorization, and an authorization opens only in
 * the session that sealed it. */
static int fetch_authorized(enclave *e, const refine_job *j, uint32_t l, const uint8_t *auth, size_t alen,
                            hetee_chan **c) {
  if (alen < HETEE_SESSION_OVERHEAD) return hetee_error(HETEE_ERR_FORMAT, "fetch authorization too short");
  hetee_chan *s = enclave_find_session(e, auth);
  if (!s) return hetee_error(HETEE_ERR_NOT_FOUND, "no such session");
  if (s->role != HETEE_ROLE_MP || sodium_memcmp(s->party_pk, j->owner, 32))
    return hetee_error(HETEE_ERR_AUTH, "only the refine job's model provider authorizes a fetch");
  uint8_t *msg = NULL;
  size_t mlen = 0;
  int rc = hetee_chan_open(s, auth, alen, &msg, &mlen);
  if (rc) return rc;
  hetee_rbuf m;
  hetee_rbuf_init(&m, msg, mlen);
  const size_t clen = sizeof HETEE_REFINE_FETCH_CONTEXT; /* with the NUL */
  const uint8_t *ctxs = hetee_rbuf_get(&m, clen);
  uint32_t amodel = hetee_rbuf_u32(&m);
  const uint8_t *sdig = hetee_rbuf_get(&m, 32);
  uint32_t al = hetee_rbuf_u32(&m);
  uint8_t want[32];
  crypto_hash_sha256(want, j->spec, j->spec_len);
  if (m.err || hetee_rbuf_left(&m) || memcmp(ctxs, HETEE_REFINE_FETCH_CONTEXT, clen))
    rc = hetee_error(HETEE_ERR_FORMAT, "not a refine fetch authorization");
  else if (amodel != j->model || sodium_memcmp(sdig, want, 32) || al != l)
    rc = hetee_error(HETEE_ERR_AUTH, "the fetch authorization is for another job or layer");
  free(msg);
  if (!rc) *c = s;
  return rc;
}

static int handle_fetch(enclave *e, hetee_rbuf *r, hetee_wbuf *w) {
  int rc = 0;
  uint32_t l;
  refine_job *j = job_request(e, r, "REFINE_FETCH", 0, &l, 1, &rc);
  if (!j) return rc;
  /* optional: the MP's authorization (blob); without it the weights go to
   * the session owner_session picks */
  size_t alen = 0;
  const uint8_t *auth = hetee_rbuf_left(r) ? hetee_rbuf_blob(r, 4096, &alen) : NULL;
  if (r->err || hetee_rbuf_left(r) || (auth && !alen)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_FETCH");
  const hetee_refine_plan *p = &j->plan;
  if (l >= (uint32_t)p->nl || (int)l < p->first_train) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %u does not train", l);
  hetee_chan *c = NULL;
  if (auth) {
    rc = fetch_authorized(e, j, l, auth, alen, &c);
    if (rc) return rc;
  }
  const float *kw, *kb, *kvw, *kvb;
  uint64_t nupd = 0; /* held since REFINE_INIT; fetched once updated */
  refine_tr_kept(j->tr, (int)l, &kw, &kb, &kvw, &kvb, &nupd);
  if (!kw || !nupd) return hetee_error(HETEE_ERR_STATE, "layer %u has not been updated by this job", l);
  const hetee_refine_layer *L = &p->L[l];
  if (!c) c = owner_session(e, j);
  if (!c) return hetee_error(HETEE_ERR_NOT_FOUND, "the refine job's model provider has no session");
  size_t mk = (size_t)L->m * (size_t)L->k, plen = 16 + 4 * (mk + (size_t)L->m);
  float *wv = sodium_malloc((mk + (size_t)L->m) * sizeof(float));
  uint8_t *pl = sodium_malloc(plen);
  if (!wv || !pl) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc) rc = refine_tr_fetch(j->tr, (int)l, NULL, NULL, wv, wv + mk); /* the weights the enclave keeps */
  if (!rc) {
    hetee_le32(pl, j->model);
    hetee_le32(pl + 4, l);
    hetee_le32(pl + 8, (uint32_t)L->m);
    hetee_le32(pl + 12, (uint32_t)L->k);
    for (size_t i = 0; i < mk + (size_t)L->m; i++) {
      uint32_t u;
      memcpy(&u, &wv[i], 4);
      hetee_le32(pl + 16 + 4 * i, u);
    }
    uint8_t *out = NULL;
    size_t olen = 0;
    rc = hetee_chan_seal(c, pl, plen, &out, &olen);
    if (!rc) {
      hetee_wbuf_blob(w, out, olen);
      free(out);
    }
  }
  if (wv) sodium_free(wv); /* wiped by sodium_free */
  if (pl) sodium_free(pl);
  return rc;
}

#define STAGE_MAX_CTS 4096u

static int handle_put(enclave *e, hetee_rbuf *r) {
  int rc = 0;
  refine_job *j = find_job(e, hetee_rbuf_u32(r), &rc);
  if (!j) return rc;
  uint32_t n = hetee_rbuf_left(r) >= 4 ? hetee_rd32(r->p + r->off) : 0;
  if (r->err || n < 1 || n > STAGE_MAX_CTS - j->nstage) {
    stage_clear(j);
    return hetee_error(HETEE_ERR_LIMIT, "refine stage of %zu + %u ciphertexts (1..%u)", j->nstage, n, STAGE_MAX_CTS);
  }
  if (cts_bytes(&j->plan, j->nstage + n) > e->cfg.budget / 2) {
    stage_clear(j);
    return hetee_error(HETEE_ERR_LIMIT, "refine stage above half the memory budget");
  }
  ct_list l;
  rc = request_end(r, list_read(e, r, n, "staged", &l));
  ct_t **ns = rc ? NULL : realloc(j->stage, (j->nstage + n) * sizeof *ns);
  if (!rc && !ns) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (rc) {
    list_free(&l);
    stage_clear(j);
    return rc;
  }
  j->stage = ns;
  memcpy(j->stage + j->nstage, l.c, n * sizeof *ns);
  j->nstage += n;
  free(l.c); /* the objects now belong to the stage */
  l.c = NULL;
  list_free(&l);
  return 0;
}

static int handle_close(enclave *e, hetee_rbuf *r) {
  int rc = 0;
  uint32_t id = hetee_rbuf_u32(r);
  if (r->err || hetee_rbuf_left(r)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_CLOSE");
  if (!find_job(e, id, &rc) && rc != HETEE_ERR_STATE) return rc;
  for (int i = 0; i < HETEE_REFINE_MAX_JOBS; i++)
    if (jobs[i] && jobs[i]->id == id) {
      job_free(jobs[i]);
      jobs[i] = NULL;
    }
  return 0;
}

/* ---- durable jobs: SAVE / RESUME / STATUS (docs/refine.md "Durable
 * enclave jobs") ----
 * Sealed plaintext (under a key derived from the sealing key, so only this
 * binary on this platform opens it):
 *   "hetee-refine-job-v1\0" | uid[16] | u32 model | owner[32] | blob spec |
 *   u64 samples | u64 updates | u8 ep_set | u32 epoch | u32 next |
 *   u64 steps | u64 host updates | u64 ep_base | u32 nep | nep x u64 |
 *   per trained layer: digest[32] | u8 held | u64 layer updates
 *   [| m k f32 W | m f32 bias | m k f32 momentum W | m f32 momentum bias]
 *   | u32 f | f x frozen digest[32] | u32 n | n x contributor DP key[32]
 *   (both trailing sections absent in states sealed before them; n 0: the
 *   model's policy DPs) */
#define JOB_TAG "hetee-refine-job-v1"

static int job_key(const enclave *e, uint8_t key[32]) {
  if (crypto_kdf_derive_from_key(key, 32, 2, "htrefjob", e->sec->seal_key))
    return hetee_error(HETEE_ERR_INTERNAL, "key derivation failed");
  return 0;
}

static void wr_floats(hetee_wbuf *w, const float *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &v[i], 4);
    hetee_wbuf_u32(w, u);
  }
}

static void rd_floats(hetee_rbuf *r, float *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t u = hetee_rbuf_u32(r);
    memcpy(&v[i], &u, 4);
  }
}

static int handle_save(enclave *e, hetee_rbuf *r, hetee_wbuf *w) {
  int rc = 0;
  uint32_t f[2];
  refine_job *j = job_request(e, r, "REFINE_SAVE", 0, f, 2, &rc);
  if (!j) return rc;
  uint32_t epoch = f[0], next = f[1];
  uint64_t steps = hetee_rbuf_u64(r), hupd = hetee_rbuf_u64(r);
  if (r->err || hetee_rbuf_left(r)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_SAVE");
  if (refine_tr_failed(j->tr)) return hetee_error(HETEE_ERR_INTEGRITY, "refine job %u stopped at a failed check", j->id);
  if (!refine_tr_idle(j->tr)) return hetee_error(HETEE_ERR_STATE, "refine job %u has steps not yet applied", j->id);
  /* the host's cursor against what this job applied: within an epoch,
   * `next` samples since the epoch began; a new epoch starts at 0 */
  uint32_t nep = j->nep;
  uint64_t base = j->ep_base;
  if (!j->ep_set) {
    /* the first declaration sets the epoch's start (a job opened on a
     * checkpoint mid-epoch has applied fewer: modular arithmetic keeps
     * samples - base = next) */
    base = j->samples - next;
  } else if (epoch == j->epoch) {
    if (j->samples - base != next)
      return hetee_error(HETEE_ERR_STATE, "cursor at %u of epoch %u, the job applied %llu samples in it", next, epoch,
                         (unsigned long long)(j->samples - base));
  } else if (epoch == j->epoch + 1 && next == 0) {
    nep++;
    base = j->samples;
  } else {
    return hetee_error(HETEE_ERR_STATE, "cursor (epoch %u, %u) does not follow (epoch %u, %u)", epoch, next, j->epoch, j->next);
  }
  const hetee_refine_plan *p = &j->plan;
  /* the plaintext's size is fixed by the spec, what is held and the epochs */
  size_t plen = sizeof JOB_TAG + 16 + 4 + 32 + 8 + j->spec_len + 8 + 8 + 1 + 4 + 4 + 8 + 8 + 8 + 4 +
                8 * (size_t)(nep < REFINE_EPOCH_LOG ? nep : REFINE_EPOCH_LOG);
  for (int l = p->first_train; l < p->nl; l++) {
    plen += 32 + 1 + 8;
    if (refine_tr_holds(j->tr, l)) plen += 4 * 2 * ((size_t)p->L[l].m * (size_t)p->L[l].k + (size_t)p->L[l].m);
  }
  plen += 4 + 32 * (size_t)j->nfz + 4 + 32 * (size_t)j->ndp;
  hetee_wbuf pl;
  hetee_wbuf_init(&pl);
  if (hetee_wbuf_reserve(&pl, plen)) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  hetee_wbuf_put(&pl, JOB_TAG, sizeof JOB_TAG);
  hetee_wbuf_put(&pl, j->uid, 16);
  hetee_wbuf_u32(&pl, j->model);
  hetee_wbuf_put(&pl, j->owner, 32);
  hetee_wbuf_blob(&pl, j->spec, j->spec_len);
  hetee_wbuf_u64(&pl, j->samples);
  hetee_wbuf_u64(&pl, j->updates);
  hetee_wbuf_u8(&pl, 1);
  hetee_wbuf_u32(&pl, epoch);
  hetee_wbuf_u32(&pl, next);
  hetee_wbuf_u64(&pl, steps);
  hetee_wbuf_u64(&pl, hupd);
  hetee_wbuf_u64(&pl, base);
  uint32_t nlog = nep < REFINE_EPOCH_LOG ? nep : REFINE_EPOCH_LOG;
  hetee_wbuf_u32(&pl, nep);
  for (uint32_t i = 0; i < nlog; i++)
    hetee_wbuf_u64(&pl, i < j->nep ? j->ep_samples[i] : j->samples - j->ep_base); /* the epoch closed now */
  for (int l = p->first_train; l < p->nl; l++) {
    const float *kw, *kb, *kvw, *kvb;
    uint64_t nu;
    refine_tr_kept(j->tr, l, &kw, &kb, &kvw, &kvb, &nu);
    hetee_wbuf_put(&pl, j->digest[l], 32);
    hetee_wbuf_u8(&pl, kw ? 1 : 0);
    hetee_wbuf_u64(&pl, nu);
    if (kw) {
      size_t m = (size_t)p->L[l].m, mk = m * (size_t)p->L[l].k;
      wr_floats(&pl, kw, mk);
      wr_floats(&pl, kb, m);
      wr_floats(&pl, kvw, mk);
      wr_floats(&pl, kvb, m);
    }
  }
  /* the frozen layers' authorized digests: a resumed job loads them again */
  hetee_wbuf_u32(&pl, (uint32_t)j->nfz);
  for (int l = 0; l < j->nfz; l++) hetee_wbuf_put(&pl, j->digest[l], 32);
  /* the job's contributors (0: the model's policy DPs) */
  hetee_wbuf_u32(&pl, (uint32_t)j->ndp);
  for (int i = 0; i < j->ndp; i++) hetee_wbuf_put(&pl, j->dp[i], 32);
  uint8_t key[32], *blob = NULL;
  size_t blen = 0;
  rc = pl.err || pl.len != plen ? hetee_error(HETEE_ERR_INTERNAL, "refine job state of %zu bytes, %zu expected", pl.len, plen) : 0;
  if (!rc) rc = job_key(e, key);
  if (!rc) rc = hetee_seal_blob(key, pl.p, pl.len, &blob, &blen);
  sodium_memzero(key, sizeof key);
  hetee_wbuf_free(&pl); /* wiped */
  if (rc) return rc;
  /* the job's record follows the declaration only once it is sealed */
  if (j->ep_set && epoch == j->epoch + 1 && j->nep < REFINE_EPOCH_LOG) j->ep_samples[j->nep] = j->samples - j->ep_base;
  j->nep = nep;
  j->ep_base = base;
  j->ep_set = 1;
  j->epoch = epoch;
  j->next = next;
  j->hsteps = steps;
  j->hupdates = hupd;
  put_job_head(w, j);
  hetee_wbuf_blob(w, blob, blen);
  free(blob);
  return reply_done(w);
}

static int handle_resume(enclave *e, hetee_rbuf *r, hetee_wbuf *w) {
  const uint8_t *uid = hetee_rbuf_get(r, 16);
  size_t slen = 0, blen = 0;
  const uint8_t *spec = hetee_rbuf_blob(r, 1u << 16, &slen);
  const uint8_t *blob = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &blen);
  if (r->err || hetee_rbuf_left(r)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_RESUME");
  int slot;
  int rc = free_slot(&slot);
  if (rc) return rc;
  uint8_t key[32], *plain = NULL;
  size_t plen = 0;
  rc = job_key(e, key);
  if (!rc) rc = hetee_unseal_blob(key, blob, blen, &plain, &plen);
  sodium_memzero(key, sizeof key);
  if (rc) return hetee_error(rc, "refine job state: %s", hetee_last_error());
  refine_job *j = calloc(1, sizeof *j);
  if (!j) {
    sodium_free(plain);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  hetee_rbuf m;
  hetee_rbuf_init(&m, plain, plen);
  const uint8_t *tag = hetee_rbuf_get(&m, sizeof JOB_TAG);
  const uint8_t *buid = hetee_rbuf_get(&m, 16);
  if (!rc && (m.err || memcmp(tag, JOB_TAG, sizeof JOB_TAG))) rc = hetee_error(HETEE_ERR_FORMAT, "not a refine job state");
  if (!rc && sodium_memcmp(buid, uid, 16)) rc = hetee_error(HETEE_ERR_AUTH, "the sealed state is of another refine job");
  for (int i = 0; !rc && i < HETEE_REFINE_MAX_JOBS; i++)
    if (jobs[i] && !sodium_memcmp(jobs[i]->uid, uid, 16)) rc = hetee_error(HETEE_ERR_STATE, "that refine job is open already");
  size_t bslen = 0;
  const uint8_t *bspec = NULL;
  if (!rc) {
    memcpy(j->uid, buid, 16);
    j->model = hetee_rbuf_u32(&m);
    hetee_rbuf_copy(&m, j->owner, 32);
    bspec = hetee_rbuf_blob(&m, 1u << 16, &bslen);
    j->samples = hetee_rbuf_u64(&m);
    j->updates = hetee_rbuf_u64(&m);
    j->ep_set = hetee_rbuf_u8(&m);
    j->epoch = hetee_rbuf_u32(&m);
    j->next = hetee_rbuf_u32(&m);
    j->hsteps = hetee_rbuf_u64(&m);
    j->hupdates = hetee_rbuf_u64(&m);
    j->ep_base = hetee_rbuf_u64(&m);
    j->nep = hetee_rbuf_u32(&m);
    for (uint32_t i = 0; i < j->nep && i < REFINE_EPOCH_LOG; i++) j->ep_samples[i] = hetee_rbuf_u64(&m);
    if (m.err) rc = hetee_error(HETEE_ERR_FORMAT, "refine job state truncated");
  }
  if (!rc && (bslen != slen || sodium_memcmp(bspec, spec, slen)))
    rc = hetee_error(HETEE_ERR_AUTH, "the sealed state is for another refine spec");
  if (!rc) rc = plan_from_spec(e, j, bspec, bslen);
  if (!rc) rc = job_bytes_ok(e, &j->plan);
  if (!rc) { /* the owner still owns the model in this enclave (its sealed policies) */
    const enclave_policy *pol = enclave_find_policy(e, j->model);
    if (!pol || sodium_memcmp(pol->owner, j->owner, 32))
      rc = hetee_error(HETEE_ERR_AUTH, "model %u is not the job's model provider's here", j->model);
  }
  if (!rc && !(j->spec = malloc(slen ? slen : 1))) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc) {
    memcpy(j->spec, spec, slen);
    j->spec_len = slen;
    rc = hetee_refine_trusted_new(e->ctx, e->sk, &j->plan, &j->tr);
  }
  if (!rc) refine_tr_keep_weights(j->tr);
  const hetee_refine_plan *p = &j->plan;
  float *buf = NULL;
  for (int l = p->first_train; !rc && l < p->nl; l++) {
    size_t mm = (size_t)p->L[l].m, mk = mm * (size_t)p->L[l].k;
    hetee_rbuf_copy(&m, j->digest[l], 32);
    uint8_t held = hetee_rbuf_u8(&m);
    uint64_t nu = hetee_rbuf_u64(&m);
    if (m.err || held > 1) {
      rc = hetee_error(HETEE_ERR_FORMAT, "refine job state truncated");
      break;
    }
    if (!held) continue;
    buf = sodium_malloc(2 * (mk + mm) * sizeof(float));
    if (!buf) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      break;
    }
    rd_floats(&m, buf, 2 * (mk + mm));
    if (m.err) rc = hetee_error(HETEE_ERR_FORMAT, "refine job state truncated");
    else rc = refine_tr_restore(j->tr, l, buf, buf + mk, buf + mk + mm, buf + 2 * mk + mm, nu);
    sodium_free(buf); /* wipes */
    buf = NULL;
  }
  if (!rc && hetee_rbuf_left(&m)) { /* u32 f | f x frozen digest (absent in states sealed before) */
    uint32_t nf = hetee_rbuf_u32(&m);
    if (m.err || (nf && nf != (uint32_t)p->first_train) || hetee_rbuf_left(&m) < (size_t)nf * 32)
      rc = hetee_error(HETEE_ERR_FORMAT, "refine job state: %u frozen layers", nf);
    for (uint32_t l = 0; !rc && l < nf; l++) hetee_rbuf_copy(&m, j->digest[l], 32);
    if (!rc) j->nfz = (int)nf;
    /* u32 n | n x contributor (absent in states sealed before: the model's
     * policy DPs, as those jobs had; 0: the same) */
    if (!rc && hetee_rbuf_left(&m) == 4) {
      if (hetee_rbuf_u32(&m)) rc = hetee_error(HETEE_ERR_FORMAT, "refine job state: contributors without keys");
    } else if (!rc && hetee_rbuf_left(&m)) {
      rc = read_contributors(&m, j, "refine job state");
    }
  }
  if (!rc && hetee_rbuf_left(&m)) rc = hetee_error(HETEE_ERR_FORMAT, "trailing bytes in the refine job state");
  if (!rc) refine_tr_require_witness(j->tr);
  if (!rc) frozen_begin(j);
  if (plain) sodium_free(plain);
  /* the host's encrypted weights are re-issued from the kept ones, so a
   * host checkpoint other than the one saved with this state cannot mix in */
  size_t at = w->len;
  hetee_wbuf_u32(w, 0); /* job id, set below */
  hetee_wbuf_u32(w, rc ? 0 : j->epoch);
  hetee_wbuf_u32(w, rc ? 0 : j->next);
  hetee_wbuf_u64(w, rc ? 0 : j->hsteps);
  hetee_wbuf_u64(w, rc ? 0 : j->hupdates);
  hetee_wbuf_u32(w, rc ? 0 : (uint32_t)(p->nl - p->first_train));
  for (int l = p->first_train; !rc && l < p->nl; l++) {
    int held = refine_tr_holds(j->tr, l);
    hetee_wbuf_u8(w, (uint8_t)held);
    if (!held) continue;
    size_t n[4];
    layer_cts(p, &p->L[l], n);
    rc = check_budget(e, j, n[0] + n[1] + n[2] + n[3]);
    step_out o;
    rc = out_begin(j, &o, rc, 4, n);
    if (!rc) rc = refine_tr_reissue(j->tr, l, o.c[0], o.c[1], n[2] ? o.c[2] : NULL, n[3] ? o.c[3] : NULL);
    rc = out_end(e, w, j, &o, rc, NULL); /* no counters in this reply */
  }
  if (!rc) hetee_wbuf_u32(w, (uint32_t)j->nfz); /* the frozen layers to load again */
  if (rc) {
    job_free(j);
    return rc;
  }
  job_start(e, j);
  if (w->err) {
    job_free(j);
    return hetee_error(HETEE_ERR_NOMEM, "no memory for the reply");
  }
  hetee_le32(w->p + at, j->id);
  jobs[slot] = j;
  return 0;
}

static int handle_status(enclave *e, hetee_rbuf *r, hetee_wbuf *w) {
  int rc = 0;
  refine_job *j = job_request(e, r, "REFINE_STATUS", 1, NULL, 0, &rc);
  if (!j) return rc;
  put_job_head(w, j);
  uint32_t nlog = j->nep < REFINE_EPOCH_LOG ? j->nep : REFINE_EPOCH_LOG;
  hetee_wbuf_u32(w, nlog);
  for (uint32_t i = 0; i < nlog; i++) hetee_wbuf_u64(w, j->ep_samples[i]);
  return reply_done(w);
}


/* ---- validation set: VWITNESS / VFORWARD / VLOSS / VREPORT ---- */

/* The validation accumulator and the chunk order start again. */
static void vpass_reset(refine_job *j) {
  j->vsamples = j->vcorrect = 0;
  j->vloss = 0;
  sodium_memzero(&j->vdig, sizeof j->vdig);
  j->vchunk = j->vnchunks = 0;
  j->vwsamples = 0;
  refine_tr_vreset(j->tr);
}

/* REFINE_VWITNESS: u32 job | u32 count | u32 chunk | u32 nchunks | mp_pk[32]
 * | sig[64] | blob sealed. The model provider's witness of validation
 * chunk `chunk` (formats in hemat/refine_internal.h): checked in this
 * order, each failure one error whatever the values: count and the sealed
 * size (functions of public values), the chunk in order (0, 1, ..
 * nchunks - 1 within a pass, nchunks fixed by chunk 0; HETEE_ERR_AUTH: a
 * replayed or another chunk's witness), the previous chunk through VLOSS
 * (HETEE_ERR_STATE), mp_pk the job's owner
 * (HETEE_ERR_AUTH: a data provider's or another MP's signature), the
 * Ed25519 signature over the authorization naming this model, the job's
 * spec, mp_pk, chunk, nchunks, count and the sealed bytes' digest
 * (HETEE_ERR_AUTH), the sealed box opening under the release key and its
 * header (tag, model, chunk, count, k; HETEE_ERR_AUTH), then every value
 * finite and within 2^20 (one pass without early exit; HETEE_ERR_FORMAT).
 * The values become layer 0's input of the chunk's validation F check;
 * the opened plaintext is wiped. */
static int handle_vwitness(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  int rc = 0;
  uint32_t f[3];
  refine_job *j = job_request(e, r, "REFINE_VWITNESS", 0, f, 3, &rc);
  if (!j) return rc;
  uint32_t count = f[0], chunk = f[1], nchunks = f[2];
  const uint8_t *mp = hetee_rbuf_get(r, 32), *sig = hetee_rbuf_get(r, 64);
  size_t len = 0;
  const uint8_t *sealed = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &len);
  if (r->err || hetee_rbuf_left(r)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_VWITNESS");
  const hetee_refine_plan *p = &j->plan;
  size_t k = (size_t)p->L[0].k;
  if (refine_tr_failed(j->tr)) return hetee_error(HETEE_ERR_INTEGRITY, "refine job %u stopped at a failed check", j->id);
  if (count < 1 || count > p->cfg.batch) return hetee_error(HETEE_ERR_INVALID_ARG, "a validation witness of %u samples", count);
  if (len != REFINE_WIT_SEALED_LEN(count, k))
    return hetee_error(HETEE_ERR_SHAPE, "a validation witness of %zu bytes; %u samples of %zu values have %zu", len, count,
                       k, REFINE_WIT_SEALED_LEN(count, k));
  if (nchunks < 1 || chunk != j->vchunk || (j->vchunk && nchunks != j->vnchunks) || chunk >= nchunks)
    return hetee_error(HETEE_ERR_AUTH, "a witness of validation chunk %u of %u; the pass expects chunk %u", chunk, nchunks,
                       j->vchunk);
  if (j->vwsamples != j->vsamples)
    return hetee_error(HETEE_ERR_STATE, "validation chunk %u before the previous chunk's loss", chunk);
  if (sodium_memcmp(mp, j->owner, 32))
    return hetee_error(HETEE_ERR_AUTH, "the validation witness is not signed by refine job %u's model provider", j->id);
  uint8_t sd[32], am[REFINE_VAUTH_LEN];
  crypto_hash_sha256(sd, j->spec, j->spec_len);
  refine_vauth_bytes(j->model, sd, mp, chunk, nchunks, count, sealed, len, am);
  if (crypto_sign_verify_detached(sig, am, sizeof am, mp))
    return hetee_error(HETEE_ERR_AUTH, "the validation witness's authorization does not verify under the model provider's key");
  double *x = NULL;
  rc = open_witness(e, sealed, len, REFINE_VWIT_TAG, j->model, chunk, count, k, "validation chunk",
                    "the validation witness holds a value that is not finite or above 2^20", &x);
  uint64_t enc0, dec0;
  refine_tr_counts(j->tr, &enc0, &dec0);
  if (!rc) rc = refine_tr_vwitness(j->tr, x, count);
  if (!rc) {
    j->vchunk = chunk + 1;
    j->vnchunks = nchunks;
    j->vwsamples += count;
    put_counts(j, w, items, enc0, dec0);
    *items += 1;
  }
  if (x) sodium_free(x);
  return rc;
}

static int handle_vforward(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  int rc = 0;
  uint32_t f[2];
  refine_job *j = job_request(e, r, "REFINE_VFORWARD", 0, f, 2, &rc);
  if (!j) return rc;
  uint32_t l = f[0], count = f[1];
  const hetee_refine_plan *p = &j->plan;
  if (l >= (uint32_t)p->nl - 1) return hetee_error(HETEE_ERR_INVALID_ARG, "validation forward of layer %u", l);
  const hetee_refine_layer *L = &p->L[l], *N1 = &p->L[l + 1];
  size_t nin = N1->F.n_in_cts;
  rc = frozen_ready(j);
  if (!rc) rc = check_budget(e, j, L->F.n_out_cts + nin);
  ct_list in = {0};
  if (!rc) rc = list_take(e, r, j, L->F.n_out_cts, "layer outputs", &in);
  rc = request_end(r, rc);
  step_out o;
  rc = out_begin(j, &o, rc, 1, &nin);
  if (!rc) rc = refine_tr_vforward(j->tr, (int)l, in.c, count, o.c[0]);
  rc = out_end(e, w, j, &o, rc, items);
  list_free(&in);
  return rc;
}

static int handle_vloss(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  int rc = 0;
  uint32_t count;
  refine_job *j = job_request(e, r, "REFINE_VLOSS", 0, &count, 1, &rc);
  if (!j) return rc;
  const hetee_refine_plan *p = &j->plan;
  const hetee_refine_layer *L = &p->L[p->nl - 1];
  rc = check_budget(e, j, L->F.n_out_cts + 1);
  ct_list lo, lab;
  rc = read_loss_in(e, r, j, rc, &lo, &lab);
  uint64_t enc0, dec0, ok = 0;
  double ls = 0;
  refine_tr_counts(j->tr, &enc0, &dec0);
  if (!rc) rc = refine_tr_vloss(j->tr, lo.c, lab.c[0], count, &ls, &ok);
  if (!rc) {
    if (!j->vsamples) crypto_generichash_init(&j->vdig, NULL, 0, 32);
    digest_update_blob(&j->vdig, lab.blob[0], lab.blen[0]);
    j->vsamples += count;
    j->vcorrect += ok;
    j->vloss += ls;
    put_counts(j, w, items, enc0, dec0);
  }
  list_free(&lo);
  list_free(&lab);
  return rc;
}

static int handle_vreport(enclave *e, hetee_rbuf *r, hetee_wbuf *w) {
  int rc = 0;
  uint32_t discard;
  refine_job *j = job_request(e, r, "REFINE_VREPORT", 1, &discard, 1, &rc);
  if (!j) return rc;
  if (discard > 1) return hetee_error(HETEE_ERR_PROTOCOL, "malformed REFINE_VREPORT");
  if (discard) {
    vpass_reset(j);
    return 0;
  }
  if (!j->vsamples) return hetee_error(HETEE_ERR_STATE, "no validation samples since the last report");
  if (j->vchunk != j->vnchunks || j->vsamples != j->vwsamples)
    return hetee_error(HETEE_ERR_STATE, "the validation pass covered %u of the set's %u chunks", j->vchunk, j->vnchunks);
  hetee_chan *c = owner_session(e, j);
  if (!c) return hetee_error(HETEE_ERR_NOT_FOUND, "the refine job's model provider has no session");
  uint8_t pl[HETEE_REFINE_VAL_LEN], *q = pl, dig[32];
  memcpy(q, HETEE_REFINE_VAL_TAG, sizeof HETEE_REFINE_VAL_TAG);
  q += sizeof HETEE_REFINE_VAL_TAG;
  hetee_le32(q, j->model);
  hetee_le64(q + 4, j->updates);
  hetee_le64(q + 12, j->vsamples);
  hetee_le64(q + 20, j->vcorrect);
  uint64_t lb;
  memcpy(&lb, &j->vloss, 8);
  hetee_le64(q + 28, lb);
  crypto_generichash_final(&j->vdig, dig, 32);
  memcpy(q + 36, dig, 32);
  uint8_t *out = NULL;
  size_t olen = 0;
  rc = hetee_chan_seal(c, pl, sizeof pl, &out, &olen);
  sodium_memzero(pl, sizeof pl);
  vpass_reset(j);
  if (rc) return rc;
  hetee_wbuf_blob(w, out, olen);
  free(out);
  return reply_done(w);
}

int enclave_refine_dispatch(enclave *e, uint16_t type, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  if (!e->have_keys) return hetee_error(HETEE_ERR_STATE, "no keys yet (KEYGEN or UNSEAL first)");
  if (type == HETEE_MSG_REFINE_FORWARD || type == HETEE_MSG_REFINE_LOSS || type == HETEE_MSG_REFINE_BACK ||
      type == HETEE_MSG_REFINE_VFORWARD || type == HETEE_MSG_REFINE_VLOSS) {
    /* a step request consumes the stage, whatever its outcome */
    uint32_t id = hetee_rbuf_left(r) >= 4 ? hetee_rd32(r->p + r->off) : 0;
    int rc = type == HETEE_MSG_REFINE_FORWARD    ? handle_forward(e, r, w, items)
             : type == HETEE_MSG_REFINE_LOSS     ? handle_loss(e, r, w, items)
             : type == HETEE_MSG_REFINE_BACK     ? handle_back(e, r, w, items)
             : type == HETEE_MSG_REFINE_VFORWARD ? handle_vforward(e, r, w, items)
                                                 : handle_vloss(e, r, w, items);
    for (int i = 0; i < HETEE_REFINE_MAX_JOBS; i++)
      if (jobs[i] && jobs[i]->id == id) stage_clear(jobs[i]);
    return rc;
  }
  switch (type) {
  case HETEE_MSG_REFINE_OPEN: return handle_open(e, r, w);
  case HETEE_MSG_REFINE_UPDATE: return handle_update(e, r, w, items);
  case HETEE_MSG_REFINE_FETCH: return handle_fetch(e, r, w);
  case HETEE_MSG_REFINE_GRAD: return handle_grad(e, r, w, items);
  case HETEE_MSG_REFINE_PUT: return handle_put(e, r);
  case HETEE_MSG_REFINE_CLOSE: return handle_close(e, r);
  case HETEE_MSG_REFINE_SAVE: return handle_save(e, r, w);
  case HETEE_MSG_REFINE_RESUME: return handle_resume(e, r, w);
  case HETEE_MSG_REFINE_STATUS: return handle_status(e, r, w);
  case HETEE_MSG_REFINE_VREPORT: return handle_vreport(e, r, w);
  case HETEE_MSG_REFINE_WITNESS: return handle_witness(e, r, w, items);
  case HETEE_MSG_REFINE_FROZEN: return handle_frozen(e, r, w, items);
  case HETEE_MSG_REFINE_INIT: return handle_init(e, r, w, items);
  case HETEE_MSG_REFINE_VWITNESS: return handle_vwitness(e, r, w, items);
  default: return hetee_error(HETEE_ERR_PROTOCOL, "unknown refine message %u", type);
  }
}

#else

int enclave_refine_dispatch(enclave *e, uint16_t type, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  (void)e, (void)type, (void)r, (void)w, (void)items;
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}

#endif

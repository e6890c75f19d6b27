/*
 * refine/enclave: refining's trusted side in the real enclave process
 * (src/enclave/trusted/refine.c through src/host/refine_calls.c).
 *  - two SGD steps through the enclave give the weights of the in-process
 *    twin (same data, same order; its own keys) and of plaintext SGD within
 *    1e-4; the refined weights reach the MP only sealed to its session (a
 *    data provider's session cannot open them);
 *  - refusals before any decryption: a spec the MP did not authorize, a
 *    model without an owner, a DP's authorization, a replayed
 *    authorization, wrong ciphertext counts / scales, steps out of order,
 *    weights that are not the ones the MP authorized, a fetch before any
 *    update;
 *  - the Freivalds checks of the host's products (docs/refine.md
 *    "Integrity of the host's products"): a host double that perturbs one
 *    value of a forward output (logits), of a W^T delta or of a gradient by
 *    a small amount, or hands in the previous step's logits, is refused
 *    with HETEE_ERR_INTEGRITY before anything is refreshed or updated, the
 *    job then refuses every step, and the weights the MP fetches are those
 *    of the last update before the tampering; the honest runs raise no
 *    alarm (the twin counts its checks);
 *  - REFINE_INIT: with accumulate 2, a logit, a W^T delta, an output of
 *    layer 0 or of trained layer 1 moved in step 1 (before any update) is
 *    refused in step 1 (HETEE_ERR_INTEGRITY; before REFINE_INIT none of
 *    them was caught); INIT with another encryption of the weights is
 *    HETEE_ERR_AUTH, a step or an update before INIT HETEE_ERR_STATE;
 *  - layer 0 and frozen layers (docs/refine.md "What is checked"): every
 *    batch carries the DP's witness; a host that moves one output of
 *    layer 0 (all layers train, or frozen) or of frozen layer 1, hands in
 *    ciphertexts of other samples than the witness, or the witness of an
 *    earlier batch, is refused with HETEE_ERR_INTEGRITY; frozen weights
 *    other than the MP authorized with HETEE_ERR_AUTH; a batch without a
 *    witness, signed by a DP outside the policy, or with a garbled witness
 *    or batch number with HETEE_ERR_AUTH (the job goes on); an honest run
 *    with only the last layer training (two frozen layers checked) ends
 *    at plaintext SGD's weights;
 *  - the job's contributors (docs/refine.md "Who may contribute"): with an
 *    authorization naming two DPs outside the model's policy, the policy's
 *    DP is refused (HETEE_ERR_AUTH) though the host forwards its batch,
 *    the two contributors train (plaintext SGD's weights); a section with
 *    0 or 17 keys, a key twice or cut short is refused at open.
 */
#include "enclave/fixture.h"
#include "refine/refine_test_util.h"

#include "enclave/wire/proto.h"
#include "hetee/engine.h"
#include "hemat/refine_internal.h"

#define MODEL 7

typedef struct env {
  char dir[256], plat[300], cfg[2048];
  hetee_host_enclave *e;
  hetee_party_key *mp, *dp;
  hetee_client_session *smp, *sdp;
  hetee_ckks_context *ctx;
  hetee_ckks_public_key *pk;
  uint8_t rel[32]; /* the enclave's release key (the DP's witnesses are sealed to it) */
} env;

static void sess_cmd(env *v, hetee_client_session *s, uint8_t *msg, size_t mlen, int want) {
  uint8_t *sealed, *reply, *plain;
  size_t slen, rlen, plen;
  assert_int_equal(hetee_client_session_seal(s, msg, mlen, &sealed, &slen), 0);
  int rc = hetee_host_session_msg(v->e, sealed, slen, &reply, &rlen);
  if (rc != want) fprintf(stderr, "session msg: %s\n", hetee_last_error());
  assert_int_equal(rc, want);
  if (!rc) {
    assert_int_equal(hetee_client_session_open(s, reply, rlen, &plain, &plen), 0);
    free(plain);
    free(reply);
  }
  free(sealed);
  free(msg);
}

static void env_up(env *v) {
  memset(v, 0, sizeof *v);
  fx_tmp_platform(v->dir, sizeof v->dir, v->plat, sizeof v->plat);
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_MP, &v->mp), 0);
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_DP, &v->dp), 0);
  fx_config_mps(NULL, &v->mp, 1, v->cfg, sizeof v->cfg);
  v->e = fx_start_cfg(v->plat, NULL, NULL, 0, v->cfg);
  assert_int_equal(hetee_host_keygen(v->e, NULL, 0), 0);
  uint8_t *bundle;
  size_t blen, ilen;
  const uint8_t *item;
  assert_int_equal(hetee_host_public_keys(v->e, &bundle, &blen), 0);
  assert_int_equal(hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PARAMS, &item, &ilen), 0);
  assert_int_equal(hetee_ckks_context_load(item, ilen, &v->ctx), 0);
  assert_int_equal(hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PUBLIC_KEY, &item, &ilen), 0);
  assert_int_equal(hetee_ckks_public_key_load(v->ctx, item, ilen, &v->pk), 0);
  free(bundle);
  hetee_verified_enclave ve; /* one evidence per session */
  fx_verify_cfg(v->e, v->plat, v->cfg, &ve);
  v->smp = fx_session(v->e, v->mp, &ve);
  fx_verify_cfg(v->e, v->plat, v->cfg, &ve);
  v->sdp = fx_session(v->e, v->dp, &ve);
  uint8_t *msg, *sealed, *reply, *plain;
  size_t mlen, slen, rlen, plen;
  assert_int_equal(hetee_client_msg_release_key(&msg, &mlen), 0);
  assert_int_equal(hetee_client_session_seal(v->sdp, msg, mlen, &sealed, &slen), 0);
  assert_int_equal(hetee_host_session_msg(v->e, sealed, slen, &reply, &rlen), 0);
  assert_int_equal(hetee_client_session_open(v->sdp, reply, rlen, &plain, &plen), 0);
  assert_int_equal(hetee_client_release_key_parse(plain, plen, v->rel), 0);
  free(msg);
  free(sealed);
  free(reply);
  free(plain);
}

/* The DP's batch of samples idx[0..n) with its witness (batch number bno),
 * signed by identity key k (the policy's DP unless a test says otherwise). */
static int wbatch_by(env *v, const hetee_party_key *k, const hetee_refine_plan *p, const float *x, const float *y,
                     const uint32_t *idx, uint32_t n, uint64_t bno, hetee_refine_batch **b) {
  int rc = hetee_refine_batch_encrypt_witness(v->ctx, v->pk, p, x, y, idx, n, MODEL, v->rel, bno, b);
  if (rc) return rc;
  uint8_t dpk[32], sig[64], *am;
  size_t al;
  hetee_party_key_public(k, dpk);
  assert_int_equal(hetee_refine_batch_auth_msg(*b, dpk, &am, &al), 0);
  assert_int_equal(hetee_party_key_sign(k, am, al, sig), 0);
  free(am);
  return hetee_refine_batch_set_auth(*b, dpk, sig);
}

static int wbatch(env *v, const hetee_refine_plan *p, const float *x, const float *y, const uint32_t *idx, uint32_t n,
                  uint64_t bno, hetee_refine_batch **b) {
  return wbatch_by(v, v->dp, p, x, y, idx, n, bno, b);
}

/* The MP takes ownership of MODEL (its release policy). */
static void env_own(env *v) {
  uint8_t dpk[32], *msg;
  size_t mlen;
  hetee_party_key_public(v->dp, dpk);
  assert_int_equal(hetee_client_msg_policy(MODEL, HETEE_RELEASE_ARGMAX, 0, 8, dpk, &msg, &mlen), 0);
  sess_cmd(v, v->smp, msg, mlen, 0);
}

static void env_down(env *v) {
  hetee_client_session_free(v->smp);
  hetee_client_session_free(v->sdp);
  hetee_party_key_free(v->mp);
  hetee_party_key_free(v->dp);
  hetee_ckks_public_key_free(v->pk);
  hetee_ckks_context_free(v->ctx);
  fx_stop(v->e, v->dir);
}

/* The MP's sealed authorization of state s for model `model`. */
static void auth_for(env *v, hetee_client_session *s, uint32_t model, const hetee_refine_state *st, uint8_t **sealed,
                     size_t *slen) {
  uint8_t *msg;
  size_t mlen;
  assert_int_equal(hetee_refine_auth_msg(model, st, &msg, &mlen), 0);
  assert_int_equal(hetee_client_session_seal(s, msg, mlen, sealed, slen), 0);
  free(msg);
}

static int open_job(env *v, hetee_client_session *s, const hetee_refine_plan *p, const hetee_refine_state *st,
                    uint32_t model, hetee_refine_trusted **t) {
  uint8_t *auth, sid[16];
  size_t alen;
  auth_for(v, s, model, st, &auth, &alen);
  hetee_client_session_id(s, sid);
  int rc = hetee_host_refine_open(v->e, v->ctx, p, model, sid, auth, alen, t);
  free(auth);
  return rc;
}

static const int dims[] = {20, 12, 8, 4}, acts[] = {HETEE_REFINE_ACT_RELU, HETEE_REFINE_ACT_TANH, HETEE_REFINE_ACT_NONE};

static void test_step_equals_twin(void **state) {
  (void)state;
  env v;
  env_up(&v);
  env_own(&v);
  hetee_refine_weights w0, wp, wt, we;
  rt_weights(&w0, 3, dims, acts);
  float *x, *y;
  const uint32_t count = 16;
  rt_data(dims[0], dims[3], count, &x, &y);
  hetee_refine_config cfg = {8, 1, 0, HETEE_REFINE_LOSS_XENT, 0.2, 0.9, 1e-3, 5};
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg, 8192, &p), 0);
  /* enclave run: the MP encrypts under the enclave's key and authorizes */
  hetee_refine_state *s = NULL;
  assert_int_equal(hetee_refine_state_encrypt(v.ctx, v.pk, &p, &w0, &s), 0);
  hetee_refine_trusted *t = NULL;
  int rc = open_job(&v, v.smp, &p, s, MODEL, &t);
  if (rc) fprintf(stderr, "open: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  /* no fetch before the first update */
  uint8_t *sealed = NULL;
  size_t slen = 0;
  assert_int_equal(hetee_host_refine_fetch(t, s, 2, &sealed, &slen), HETEE_ERR_STATE);
  uint32_t order[16];
  for (uint32_t i = 0; i < count; i++) order[i] = (i * 7 + 3) % count;
  hetee_refine_stats st;
  memset(&st, 0, sizeof st);
  for (uint32_t k = 0; k < count; k += cfg.batch) {
    hetee_refine_batch *b = NULL;
    assert_int_equal(wbatch(&v, &p, x, y, order + k, cfg.batch, k, &b), 0);
    rc = hetee_refine_step(s, t, b, 1, &st);
    if (rc) fprintf(stderr, "step: %s\n", hetee_last_error());
    assert_int_equal(rc, 0);
    hetee_refine_batch_free(b);
  }
  assert_int_equal(st.updates, 2);
  assert_true(st.trusted_dec > 0 && st.trusted_enc > 0 && st.trusted_s > 0);
  /* the MP fetches every trained layer through its session */
  assert_int_equal(hetee_refine_weights_copy(&w0, &we), 0);
  for (int l = 0; l < p.nl; l++) {
    assert_int_equal(hetee_host_refine_fetch(t, s, l, &sealed, &slen), 0);
    uint8_t *plain = NULL;
    size_t plen = 0;
    if (l == 0) { /* a data provider's session cannot open it */
      int orc = hetee_client_session_open(v.sdp, sealed, slen, &plain, &plen);
      assert_true(orc == HETEE_ERR_AUTH || orc == HETEE_ERR_REPLAY);
    }
    assert_int_equal(hetee_client_session_open(v.smp, sealed, slen, &plain, &plen), 0);
    assert_int_equal(hetee_refine_fetch_parse(plain, plen, MODEL, &we), 0);
    assert_int_equal(hetee_refine_fetch_parse(plain, plen, MODEL + 1, &we), HETEE_ERR_FORMAT);
    free(plain);
    free(sealed);
  }
  /* the in-process twin (own keys) and plaintext SGD on the same order */
  hetee_ckks_literal lit;
  hetee_ckks_literal_default(&lit);
  hetee_ckks_context *c2;
  hetee_ckks_secret_key *sk2;
  hetee_ckks_public_key *pk2;
  assert_int_equal(hetee_ckks_context_new(&lit, &c2), 0);
  assert_int_equal(hetee_ckks_keygen_secret(c2, &sk2), 0);
  assert_int_equal(hetee_ckks_keygen_public(c2, sk2, &pk2), 0);
  hetee_refine_state *s2 = NULL;
  hetee_refine_trusted *t2 = NULL;
  assert_int_equal(hetee_refine_state_encrypt(c2, pk2, &p, &w0, &s2), 0);
  assert_int_equal(hetee_refine_trusted_new(c2, sk2, &p, &t2), 0);
  for (uint32_t k = 0; k < count; k += cfg.batch) {
    hetee_refine_batch *b = NULL;
    assert_int_equal(hetee_refine_batch_encrypt(c2, pk2, &p, x, y, order + k, cfg.batch, &b), 0);
    assert_int_equal(hetee_refine_step(s2, t2, b, 1, NULL), 0);
    hetee_refine_batch_free(b);
  }
  uint64_t nchk = 0, nfail = 0; /* the honest run: every check ran and passed */
  refine_tr_check_counts(t2, &nchk, &nfail);
  fprintf(stderr, "twin: %llu checks, %llu failed\n", (unsigned long long)nchk, (unsigned long long)nfail);
  /* each step: F of layers 1, 2 and T of layers 2, 1 (8 samples x 2
   * vectors each; from step 1 on: the weights of the job's start were
   * loaded before it), G of layers 1, 2 (2 vectors each) */
  assert_int_equal(nchk, 2 * 4 + 2 * 4 * 8 * 2);
  assert_int_equal(nfail, 0);
  assert_int_equal(hetee_refine_state_decrypt(s2, sk2, &wt), 0);
  assert_int_equal(hetee_refine_weights_copy(&w0, &wp), 0);
  hetee_refine_plain tw;
  assert_int_equal(hetee_refine_plain_init(&tw, &p, &wp), 0);
  for (uint32_t k = 0; k < count; k += cfg.batch) assert_int_equal(hetee_refine_plain_step(&tw, x, y, order + k, cfg.batch), 0);
  hetee_refine_plain_clear(&tw);
  double d_twin = hetee_refine_weights_maxdiff(&we, &wt, 0), d_plain = hetee_refine_weights_maxdiff(&we, &wp, 0);
  double moved = hetee_refine_weights_maxdiff(&w0, &wp, 0);
  fprintf(stderr, "enclave vs in-process twin %.3g, vs plaintext %.3g (weights moved %.3g)\n", d_twin, d_plain, moved);
  assert_true(moved > 1e-2);
  assert_true(d_twin < 1e-4);
  assert_true(d_plain < 1e-4);

  hetee_refine_trusted_free(t2);
  hetee_refine_state_free(s2);
  hetee_ckks_public_key_free(pk2);
  hetee_ckks_secret_key_free(sk2);
  hetee_ckks_context_free(c2);
  hetee_refine_trusted_free(t);
  hetee_refine_state_free(s);
  hetee_refine_weights_clear(&w0);
  hetee_refine_weights_clear(&wp);
  hetee_refine_weights_clear(&wt);
  hetee_refine_weights_clear(&we);
  free(x);
  free(y);
  env_down(&v);
}

static void test_refusals(void **state) {
  (void)state;
  env v;
  env_up(&v);
  hetee_refine_weights w0;
  rt_weights(&w0, 3, dims, acts);
  hetee_refine_config cfg = {8, 1, 2, HETEE_REFINE_LOSS_XENT, 0.05, 0.0, 0, 5};
  hetee_refine_plan p, p2;
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg, 8192, &p), 0);
  hetee_refine_state *s = NULL;
  assert_int_equal(hetee_refine_state_encrypt(v.ctx, v.pk, &p, &w0, &s), 0);
  hetee_refine_trusted *t = NULL;
  /* no owner for the model yet */
  assert_int_equal(open_job(&v, v.smp, &p, s, MODEL, &t), HETEE_ERR_AUTH);
  env_own(&v);
  /* a data provider cannot authorize */
  assert_int_equal(open_job(&v, v.sdp, &p, s, MODEL, &t), HETEE_ERR_AUTH);
  /* the host changes the hyper-parameters the MP authorized */
  uint8_t *auth, sid[16];
  size_t alen;
  auth_for(&v, v.smp, MODEL, s, &auth, &alen);
  hetee_client_session_id(v.smp, sid);
  hetee_refine_config c2 = cfg;
  c2.lr = 0.5;
  assert_int_equal(hetee_refine_plan_build(&w0, &c2, 8192, &p2), 0);
  assert_int_equal(hetee_host_refine_open(v.e, v.ctx, &p2, MODEL, sid, auth, alen, &t), HETEE_ERR_AUTH);
  /* ... or the model id */
  free(auth);
  auth_for(&v, v.smp, MODEL, s, &auth, &alen);
  assert_int_equal(hetee_host_refine_open(v.e, v.ctx, &p, MODEL + 1, sid, auth, alen, &t), HETEE_ERR_AUTH);
  /* the authorization is good once: replayed, it is refused */
  free(auth);
  auth_for(&v, v.smp, MODEL, s, &auth, &alen);
  assert_int_equal(hetee_host_refine_open(v.e, v.ctx, &p, MODEL, sid, auth, alen, &t), 0);
  hetee_refine_trusted *t3 = NULL;
  assert_int_equal(hetee_host_refine_open(v.e, v.ctx, &p, MODEL, sid, auth, alen, &t3), HETEE_ERR_REPLAY);
  free(auth);
  /* malformed step requests, refused before decryption */
  ct_t *const *W, *const *B, *const *V;
  size_t nv;
  refine_state_layer(s, 2, &W, &B, &V, &nv);
  const hetee_refine_layer *L0 = &p.L[0], *L1 = &p.L[1];
  size_t nout = L0->F.n_out_cts;
  assert_true(nout < 256 && L1->F.n_in_cts < 256 && p.L[2].T.n_out_cts < 256);
  ct_t **out = calloc(256, sizeof *out);
  for (size_t i = 0; i < 256; i++) out[i] = W[0]; /* level 1, scale 2^34: not a layer output (2^60) */
  ct_t **a = calloc(L1->F.n_in_cts + 1, sizeof *a), **b = calloc(L1->G.n_w_cts + 1, sizeof *b);
  /* layer 0 is frozen and authorized by digest: no step before it is loaded */
  assert_int_equal(refine_tr_forward(t, 0, out, 8, a, b), HETEE_ERR_STATE);
  /* the frozen layer alone: steps still wait for the trained layers'
   * weights (REFINE_INIT), and so does an update (raw request) */
  {
    ct_t *const *FW, *const *FB, *const *FV;
    size_t fnv;
    refine_state_layer(s, 0, &FW, &FB, &FV, &fnv);
    assert_int_equal(refine_tr_send_frozen(t, 0, FW, FB), 0);
    assert_int_equal(refine_tr_forward(t, 0, out, 8, a, b), HETEE_ERR_STATE);
    assert_non_null(strstr(hetee_last_error(), "REFINE_INIT"));
    uint8_t ureq[28];
    hetee_le32(ureq, refine_host_job_id(t));
    hetee_le32(ureq + 4, 2);
    hetee_le32(ureq + 8, 8);
    memset(ureq + 12, 0, 16); /* empty gradient, W, bias, momentum lists */
    uint8_t *ur = NULL;
    size_t urlen = 0;
    assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_UPDATE, ureq, sizeof ureq, &ur, &urlen), HETEE_ERR_STATE);
    assert_non_null(strstr(hetee_last_error(), "REFINE_INIT"));
    /* REFINE_INIT takes only the weights the MP authorized: another
     * encryption of the same weights is refused before decryption (the
     * job goes on: the right ones are taken below) */
    hetee_refine_state *s0 = NULL;
    assert_int_equal(hetee_refine_state_encrypt(v.ctx, v.pk, &p, &w0, &s0), 0);
    ct_t *const *W0, *const *B0, *const *V0;
    size_t nv0;
    refine_state_layer(s0, 2, &W0, &B0, &V0, &nv0);
    assert_int_equal(refine_tr_init_weights(t, 2, W0, B0, V0), HETEE_ERR_AUTH);
    assert_non_null(strstr(hetee_last_error(), "authorized"));
    hetee_refine_state_free(s0);
  }
  assert_int_equal(refine_tr_load_frozen(t, s), 0);
  assert_int_equal(refine_tr_forward(t, 0, out, 8, a, b), HETEE_ERR_SCALE);
  assert_int_equal(refine_tr_forward(t, 0, out, 9, a, b), HETEE_ERR_INVALID_ARG); /* count above the batch */
  assert_int_equal(refine_tr_forward(t, 1, out, 8, a, b), HETEE_ERR_STATE);       /* layer 1 before 0 */
  ct_t **dg = calloc(64, sizeof *dg), **dt = calloc(64, sizeof *dt);
  assert_int_equal(refine_tr_back(t, 2, out, 8, dg, dt), HETEE_ERR_STATE); /* back before the loss */
  /* a ciphertext count that is not the plan's (raw request) */
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  uint32_t job = refine_host_job_id(t);
  hetee_wbuf_u32(&w, job);
  hetee_wbuf_u32(&w, 0);
  hetee_wbuf_u32(&w, 8);
  hetee_wbuf_u32(&w, (uint32_t)nout + 1);
  uint8_t *r = NULL;
  size_t rlen = 0;
  assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_FORWARD, w.p, w.len, &r, &rlen), HETEE_ERR_SHAPE);
  hetee_wbuf_free(&w);
  /* the witness and frozen requests, malformed: a truncated witness, one
   * of the wrong size, a frozen load of a trained layer, of the frozen
   * layer again (loaded above) */
  hetee_wbuf_init(&w);
  hetee_wbuf_u32(&w, job);
  hetee_wbuf_u32(&w, 8);
  assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_WITNESS, w.p, w.len, &r, &rlen), HETEE_ERR_PROTOCOL);
  hetee_wbuf_u64(&w, 1);
  uint8_t zeros[96] = {0};
  hetee_wbuf_put(&w, zeros, 96);
  hetee_wbuf_blob(&w, zeros, 96);
  assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_WITNESS, w.p, w.len, &r, &rlen), HETEE_ERR_SHAPE);
  hetee_wbuf_free(&w);
  for (uint32_t fl = 0; fl < 2; fl++) {
    hetee_wbuf_init(&w);
    hetee_wbuf_u32(&w, job);
    hetee_wbuf_u32(&w, 1 - fl); /* layer 1 (trains), then layer 0 */
    hetee_wbuf_u32(&w, 0);
    hetee_wbuf_u32(&w, 1);
    assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_FROZEN, w.p, w.len, &r, &rlen),
                     fl ? HETEE_ERR_STATE : HETEE_ERR_INVALID_ARG);
    hetee_wbuf_free(&w);
  }
  /* truncated, unknown job */
  uint8_t junk[6] = {0, 0, 0, 0, 0, 0};
  hetee_le32(junk, job);
  assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_LOSS, junk, sizeof junk, &r, &rlen), HETEE_ERR_PROTOCOL);
  junk[0] = 99;
  assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_UPDATE, junk, 4, &r, &rlen), HETEE_ERR_NOT_FOUND);
  /* a malformed spec, even authorized by the MP, and an unauthorized one */
  static const uint8_t bad[8] = {'H', 'T', 'R', 'S', 1, 0, 0, 0}; /* 0 layers */
  hetee_wbuf am;
  hetee_wbuf_init(&am);
  hetee_wbuf_put(&am, HETEE_REFINE_AUTH_CONTEXT, sizeof HETEE_REFINE_AUTH_CONTEXT);
  hetee_wbuf_u32(&am, MODEL);
  uint8_t h[32];
  crypto_hash_sha256(h, bad, sizeof bad);
  hetee_wbuf_put(&am, h, 32);
  hetee_wbuf_u32(&am, 0);
  uint8_t *sa;
  size_t sal;
  assert_int_equal(hetee_client_session_seal(v.smp, am.p, am.len, &sa, &sal), 0);
  hetee_wbuf_free(&am);
  hetee_wbuf_init(&w);
  hetee_wbuf_u32(&w, MODEL);
  hetee_wbuf_blob(&w, bad, sizeof bad);
  hetee_wbuf_blob(&w, sa, sal);
  assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_OPEN, w.p, w.len, &r, &rlen), HETEE_ERR_FORMAT);
  assert_non_null(strstr(hetee_last_error(), "layers"));
  hetee_wbuf_free(&w);
  free(sa);
  hetee_wbuf_init(&w);
  hetee_wbuf_u32(&w, MODEL);
  hetee_wbuf_blob(&w, bad, sizeof bad);
  hetee_wbuf_blob(&w, junk, sizeof junk);
  assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_OPEN, w.p, w.len, &r, &rlen), HETEE_ERR_FORMAT);
  hetee_wbuf_free(&w);
  /* the weights of a trained layer are taken once (the enclave holds them
   * since REFINE_INIT); a raw second INIT is refused before its lists */
  {
    uint8_t ireq[8];
    hetee_le32(ireq, job);
    hetee_le32(ireq + 4, 2);
    assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_INIT, ireq, sizeof ireq, &r, &rlen), HETEE_ERR_STATE);
    hetee_le32(ireq + 4, 0); /* a frozen layer has no INIT */
    assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_INIT, ireq, sizeof ireq, &r, &rlen), HETEE_ERR_INVALID_ARG);
  }
  /* and nothing is fetched before an update (the held initial weights are the MP's own) */
  uint8_t *sealed = NULL;
  size_t slen = 0;
  assert_int_equal(hetee_host_refine_fetch(t, s, 2, &sealed, &slen), HETEE_ERR_STATE);
  /* the enclave is still serving: the good job runs a step (with its update) */
  hetee_refine_stats st;
  memset(&st, 0, sizeof st);
  float *x, *y;
  rt_data(dims[0], dims[3], 8, &x, &y);
  uint32_t idx[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  hetee_refine_batch *bt = NULL;
  assert_int_equal(wbatch(&v, &p, x, y, idx, 8, 0, &bt), 0);
  assert_int_equal(hetee_refine_step(s, t, bt, 1, &st), 0);
  assert_int_equal(st.updates, 1);
  assert_int_equal(hetee_host_refine_fetch(t, s, 2, &sealed, &slen), 0);
  free(sealed);
  hetee_refine_batch_free(bt);
  free(out);
  free(a);
  free(b);
  free(dg);
  free(dt);
  free(x);
  free(y);
  hetee_refine_trusted_free(t);
  hetee_refine_state_free(s);
  hetee_refine_weights_clear(&w0);
  env_down(&v);
}


/* ---- a host that tampers with its products (a trusted side of ops
 * wrapped around the enclave job) ---- */
enum {
  TAMPER_F, TAMPER_T, TAMPER_G, TAMPER_REPLAY, TAMPER_NSAMPLES,
  TAMPER_F0,      /* one output value of layer 0 (FORWARD 0's input) */
  TAMPER_F1,      /* one output value of layer 1 (FORWARD 1's input) */
  TAMPER_DATA,    /* the batch's ciphertexts are of other samples than its witness */
  TAMPER_WREPLAY, /* the batch comes with the witness of an earlier batch */
  TAMPER_FROZENW, /* another state's frozen weights handed to the enclave */
  TAMPER_INITW,   /* another state's weights of the last (trained) layer in REFINE_INIT */
  TAMPER_NOINIT   /* the host never sends REFINE_INIT */
};

typedef struct tamper {
  hetee_refine_trusted *in; /* the enclave job */
  const hetee_ckks_context *ctx;
  const hetee_refine_plan *p;
  int what, at;      /* tamper in step `at` (1-based) */
  int steps, hits;   /* loss calls so far; tamperings done */
  double delta;      /* the perturbation of one value */
  ct_t **saved;      /* TAMPER_REPLAY: the previous step's logits */
  size_t nsaved;
  ct_t **tmp;        /* the arrays handed on */
  ct_t *changed;
  const hetee_refine_state *alt; /* TAMPER_FROZENW: the weights handed on instead */
} tamper;

/* A copy of the array c (n) with the value at global position pos moved by
 * delta (a plaintext added at the ciphertext's scale): what a host can do
 * with public operations. */
static ct_t *const *perturb(tamper *tp, ct_t *const *c, size_t n, uint64_t pos) {
  size_t N = tp->p->n, i = (size_t)(pos / N), q = (size_t)(pos % N);
  assert_true(i < n);
  double *v = calloc(q + 1, sizeof *v);
  v[q] = tp->delta;
  hetee_ckks_plaintext *pt;
  assert_int_equal(hetee_ckks_plaintext_new(tp->ctx, &pt), 0);
  assert_int_equal(hetee_ckks_encode_coeffs(tp->ctx, v, q + 1, hetee_ckks_ciphertext_scale(c[i]), REFINE_LEVEL, pt), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(tp->ctx, &tp->changed), 0);
  assert_int_equal(hetee_ckks_eval_add_plain(tp->ctx, c[i], pt, tp->changed), 0);
  hetee_ckks_plaintext_free(pt);
  free(v);
  tp->tmp = calloc(n, sizeof *tp->tmp);
  memcpy(tp->tmp, c, n * sizeof *c);
  tp->tmp[i] = tp->changed;
  tp->hits++;
  return tp->tmp;
}

static void tamper_done(tamper *tp) {
  free(tp->tmp);
  tp->tmp = NULL;
  hetee_ckks_ciphertext_free(tp->changed);
  tp->changed = NULL;
}

static int tp_forward(void *arg, int l, ct_t *const *out, uint32_t count, ct_t **next_in, ct_t **next_gw) {
  tamper *tp = arg;
  const hetee_refine_layer *L = &tp->p->L[l];
  ct_t *const *use = out;
  if (((tp->what == TAMPER_F0 && l == 0) || (tp->what == TAMPER_F1 && l == 1)) && tp->steps + 1 == tp->at)
    use = perturb(tp, out, L->F.n_out_cts, hetee_hemat_out_pos(&L->F, 1, 3, 0, 0));
  int rc = refine_tr_forward(tp->in, l, use, count, next_in, next_gw);
  tamper_done(tp);
  return rc;
}

static int tp_loss(void *arg, ct_t *const *logits, const ct_t *labels, uint32_t count, ct_t **dG, ct_t **dT) {
  tamper *tp = arg;
  tp->steps++;
  const hetee_refine_layer *L = &tp->p->L[tp->p->nl - 1];
  ct_t *const *use = logits;
  if (tp->what == TAMPER_F && tp->steps == tp->at) use = perturb(tp, logits, L->F.n_out_cts, hetee_hemat_out_pos(&L->F, 0, 1, 0, 0));
  if (tp->what == TAMPER_REPLAY && tp->steps == tp->at) {
    use = tp->saved;
    tp->hits++;
  }
  if (tp->what == TAMPER_REPLAY && tp->steps == tp->at - 1) { /* keep this step's logits */
    tp->nsaved = L->F.n_out_cts;
    tp->saved = calloc(tp->nsaved, sizeof *tp->saved);
    for (size_t i = 0; i < tp->nsaved; i++) {
      assert_int_equal(hetee_ckks_ciphertext_new(tp->ctx, &tp->saved[i]), 0);
      assert_int_equal(hetee_ckks_ciphertext_copy(logits[i], tp->saved[i]), 0);
    }
  }
  int rc = refine_tr_loss(tp->in, use, labels, count, dG, dT);
  tamper_done(tp);
  return rc;
}

static int tp_back(void *arg, int l, ct_t *const *u, uint32_t count, ct_t **dG, ct_t **dT) {
  tamper *tp = arg;
  const hetee_refine_layer *L = &tp->p->L[l];
  ct_t *const *use = u;
  if (tp->what == TAMPER_T && tp->steps == tp->at && l == tp->p->nl - 1)
    use = perturb(tp, u, L->T.n_out_cts, hetee_hemat_out_pos(&L->T, 2, 3, 0, 0));
  int rc = refine_tr_back(tp->in, l, use, count, dG, dT);
  tamper_done(tp);
  return rc;
}

static int tp_update(void *arg, int l, ct_t *const *gacc, uint32_t nsamples, ct_t *const *W, ct_t *const *bias,
                     ct_t *const *V, ct_t **nW, ct_t **nbias, ct_t **nWT, ct_t **nV) {
  tamper *tp = arg;
  const hetee_refine_layer *L = &tp->p->L[l];
  ct_t *const *use = gacc;
  if (tp->what == TAMPER_G && tp->steps == tp->at && l == tp->p->nl - 1)
    use = perturb(tp, gacc, L->G.n_out_cts, hetee_hemat_out_pos(&L->G, 0, 5, 0, 1)); /* dL/dW[1][5] */
  if (tp->what == TAMPER_NSAMPLES && tp->steps == tp->at && l == tp->p->nl - 1) {
    nsamples--; /* a larger step than the samples give */
    tp->hits++;
  }
  int rc = refine_tr_update(tp->in, l, use, nsamples, W, bias, V, nW, nbias, nWT, nV);
  tamper_done(tp);
  return rc;
}

static int tp_witness(void *arg, uint32_t count, uint64_t batch_no, const uint8_t dp[32], const uint8_t sig[64],
                      const uint8_t *sealed, size_t len) {
  tamper *tp = arg;
  return refine_tr_send_witness(tp->in, count, batch_no, dp, sig, sealed, len);
}

static int tp_frozen(void *arg, int l, ct_t *const *W, ct_t *const *bias) {
  tamper *tp = arg;
  if (tp->what == TAMPER_FROZENW && l == 0) {
    ct_t *const *V;
    size_t nv;
    refine_state_layer(tp->alt, l, &W, &bias, &V, &nv);
    tp->hits = 1; /* the host retries at every step; each is refused */
  }
  return refine_tr_send_frozen(tp->in, l, W, bias);
}

static int tp_init(void *arg, int l, ct_t *const *W, ct_t *const *bias, ct_t *const *V) {
  tamper *tp = arg;
  if (tp->what == TAMPER_INITW && l == tp->p->nl - 1) { /* another state's weights of layer l */
    ct_t *const *alt_V;
    size_t nv;
    refine_state_layer(tp->alt, l, &W, &bias, &alt_V, &nv);
    V = alt_V;
    tp->hits = 1; /* the host retries at every step; each is refused */
  }
  if (tp->what == TAMPER_NOINIT) { /* the host skips REFINE_INIT */
    tp->hits = 1;
    return 0;
  }
  return refine_tr_init_weights(tp->in, l, W, bias, V);
}

static const hetee_refine_trusted_ops tamper_ops = {tp_forward, tp_loss, tp_back,    tp_update, NULL,
                                                    NULL,       NULL,    tp_witness, tp_frozen, tp_init};

/* The MP's fetch of layer l: its weights (rc returned). */
static int fetch_layer(env *v, hetee_refine_trusted *t, const hetee_refine_state *s, int l, const hetee_refine_weights *w0,
                       hetee_refine_weights *out) {
  uint8_t *sealed = NULL, *plain = NULL;
  size_t slen = 0, plen = 0;
  int rc = hetee_host_refine_fetch(t, s, l, &sealed, &slen);
  if (rc) return rc;
  assert_int_equal(hetee_refine_weights_copy(w0, out), 0);
  assert_int_equal(hetee_client_session_open(v->smp, sealed, slen, &plain, &plen), 0);
  assert_int_equal(hetee_refine_fetch_parse(plain, plen, MODEL, out), 0);
  free(plain);
  free(sealed);
  return 0;
}

/* The file of batch b with the witness section (its last wlen bytes) of
 * batch a: what a host can splice from two batches a DP sent. */
static hetee_refine_batch *splice(env *v, const hetee_refine_plan *p, hetee_refine_batch *b, hetee_refine_batch *a) {
  uint8_t *fb, *fa;
  size_t lb, la;
  assert_int_equal(hetee_refine_batch_save(b, &fb, &lb), 0);
  assert_int_equal(hetee_refine_batch_save(a, &fa, &la), 0);
  size_t wlen = 1 + 4 + 8 + 32 + 64 + 8 + REFINE_WIT_SEALED_LEN(hetee_refine_batch_count(a), p->L[0].k);
  assert_true(la > wlen && lb > wlen && hetee_refine_batch_count(a) == hetee_refine_batch_count(b));
  memcpy(fb + lb - wlen, fa + la - wlen, wlen);
  hetee_refine_batch *o = NULL;
  assert_int_equal(hetee_refine_batch_load(v->ctx, p, fb, lb, &o), 0);
  free(fa);
  free(fb);
  return o;
}

static void run_tamper_acc(env *v, int what, int at, double delta, int train, uint32_t acc) {
  hetee_refine_weights w0, w1, w2;
  rt_weights(&w0, 3, dims, acts);
  float *x, *y;
  const uint32_t count = 24;
  rt_data(dims[0], dims[3], count, &x, &y);
  hetee_refine_config cfg = {8, acc, train, HETEE_REFINE_LOSS_XENT, 0.2, 0.9, 1e-3, 5};
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg, 8192, &p), 0);
  hetee_refine_state *s = NULL;
  assert_int_equal(hetee_refine_state_encrypt(v->ctx, v->pk, &p, &w0, &s), 0);
  tamper tp;
  memset(&tp, 0, sizeof tp);
  tp.ctx = v->ctx;
  tp.p = &p;
  tp.what = what;
  tp.at = at;
  tp.delta = delta;
  hetee_refine_state *alt = NULL;
  if (what == TAMPER_FROZENW || what == TAMPER_INITW) { /* other initial weights: frozen layer 0 / the last layer differ */
    hetee_refine_weights wa;
    rt_weights(&wa, 3, dims, acts);
    assert_int_equal(hetee_refine_state_encrypt(v->ctx, v->pk, &p, &wa, &alt), 0);
    hetee_refine_weights_clear(&wa);
    tp.alt = alt;
  }
  assert_int_equal(open_job(v, v->smp, &p, s, MODEL, &tp.in), 0);
  hetee_refine_trusted *t = NULL;
  assert_int_equal(hetee_refine_trusted_new_ops(&p, &tamper_ops, &tp, &t), 0);
  int l = p.nl - 1, have_w1 = 0;
  for (uint32_t k = 0, step = 1; k < count; k += cfg.batch, step++) {
    uint32_t idx[8];
    for (uint32_t i = 0; i < 8; i++) idx[i] = k + i;
    hetee_refine_batch *b = NULL;
    assert_int_equal(wbatch(v, &p, x, y, idx, cfg.batch, step, &b), 0);
    if ((what == TAMPER_DATA || what == TAMPER_WREPLAY) && (int)step == at) {
      /* DATA: the ciphertexts of samples 16.. (another batch of the same
       * DP) with this batch's witness; WREPLAY: this batch's ciphertexts
       * with the witness of the first batch (used in step 1) */
      uint32_t other[8];
      for (uint32_t i = 0; i < 8; i++) other[i] = what == TAMPER_DATA ? (k + 8 + i) % count : i;
      hetee_refine_batch *o = NULL, *sp;
      assert_int_equal(wbatch(v, &p, x, y, other, cfg.batch, 100 + step, &o), 0);
      sp = what == TAMPER_DATA ? splice(v, &p, o, b) : splice(v, &p, b, o);
      hetee_refine_batch_free(o);
      hetee_refine_batch_free(b);
      b = sp;
      tp.hits++;
    }
    int rc = hetee_refine_step(s, t, b, 1, NULL);
    hetee_refine_batch_free(b);
    if (what == TAMPER_FROZENW) { /* the enclave refuses the frozen layer, then every step */
      if (step == 1) fprintf(stderr, "tamper %d at step 1: %s\n", what, hetee_last_error());
      assert_int_equal(rc, step == 1 ? HETEE_ERR_AUTH : HETEE_ERR_INTEGRITY);
      continue;
    }
    if (what == TAMPER_INITW || what == TAMPER_NOINIT) {
      /* INITW: REFINE_INIT refused (nothing decrypted), retried and refused
       * at every step; NOINIT: every step refused before decryption */
      if (step == 1) fprintf(stderr, "tamper %d at step 1: %s\n", what, hetee_last_error());
      assert_int_equal(rc, what == TAMPER_INITW ? HETEE_ERR_AUTH : HETEE_ERR_STATE);
      continue;
    }
    if ((int)step < at) {
      if (rc) fprintf(stderr, "step %u: %s\n", step, hetee_last_error());
      assert_int_equal(rc, 0);
      if (have_w1) hetee_refine_weights_clear(&w1);
      assert_int_equal(fetch_layer(v, tp.in, s, l, &w0, &w1), 0);
      have_w1 = 1;
    } else {
      /* the tampered step, then every later one: refused */
      if ((int)step == at) fprintf(stderr, "tamper %d at step %d: %s\n", what, at, hetee_last_error());
      assert_int_equal(rc, HETEE_ERR_INTEGRITY);
    }
  }
  assert_int_equal(tp.hits, 1);
  if (what == TAMPER_FROZENW || what == TAMPER_INITW || what == TAMPER_NOINIT) have_w1 = -1; /* no update ever */
  if (what == TAMPER_INITW || what == TAMPER_NOINIT) /* and the enclave holds no weights of the layer */
    assert_int_equal(fetch_layer(v, tp.in, s, l, &w0, &w2), HETEE_ERR_STATE);
  /* nothing was updated by the tampered step: the MP gets the weights of
   * the last update before it (none at all if it was the first) */
  if (have_w1 > 0) {
    assert_int_equal(fetch_layer(v, tp.in, s, l, &w0, &w2), 0);
    assert_true(hetee_refine_weights_maxdiff(&w1, &w2, 0) == 0);
    assert_true(hetee_refine_weights_maxdiff(&w0, &w2, 0) > 1e-3); /* and they had moved */
    hetee_refine_weights_clear(&w1);
    hetee_refine_weights_clear(&w2);
  } else if (have_w1 == 0) {
    assert_int_equal(fetch_layer(v, tp.in, s, l, &w0, &w2), HETEE_ERR_STATE);
  }
  for (size_t i = 0; i < tp.nsaved; i++) hetee_ckks_ciphertext_free(tp.saved[i]);
  free(tp.saved);
  hetee_refine_trusted_free(t);
  hetee_refine_trusted_free(tp.in);
  hetee_refine_state_free(s);
  hetee_refine_state_free(alt);
  hetee_refine_weights_clear(&w0);
  free(x);
  free(y);
}

static void run_tamper_cfg(env *v, int what, int at, double delta, int train) {
  run_tamper_acc(v, what, at, delta, train, 1);
}
static void run_tamper(env *v, int what, int at, double delta) { run_tamper_cfg(v, what, at, delta, 0); }

static void test_tampering(void **state) {
  (void)state;
  env v;
  env_up(&v);
  env_own(&v);
  /* one value moved by 0.01 (logits and W^T deltas are O(0.1..1) here;
   * the F and T tolerances measured 2e-6..2e-5: a false accept needs
   * |rho_i| < 2e-3 for both vectors, probability ~1e-5), a gradient entry
   * (a sum over 8 samples) by 0.1 (G's tolerance sums the noise of all
   * m (k+1) entries: measured 2e-5..2e-4; a false accept needs
   * |rho_i sig_j| < 2e-3 for both vectors, probability ~1e-4) */
  run_tamper(&v, TAMPER_F, 2, 0.01);      /* logits, after the first update */
  run_tamper(&v, TAMPER_T, 3, 0.01);      /* W^T delta of the last layer */
  run_tamper(&v, TAMPER_G, 1, 0.1);       /* the first update's gradient */
  run_tamper(&v, TAMPER_G, 2, 0.1);       /* a later one */
  run_tamper(&v, TAMPER_REPLAY, 3, 0);    /* the previous step's logits */
  run_tamper(&v, TAMPER_NSAMPLES, 2, 0);  /* an update's sample count */
  /* layer 0 (its input: the DP's witness) and frozen layers */
  run_tamper(&v, TAMPER_F0, 2, 0.01);          /* layer 0's output, all layers train (after its first update) */
  run_tamper_cfg(&v, TAMPER_F0, 1, 0.01, 1);   /* frozen layer 0's output, from the first step */
  run_tamper_cfg(&v, TAMPER_F1, 1, 0.01, 1);   /* frozen layer 1's output (input: the enclave's activations) */
  run_tamper(&v, TAMPER_DATA, 1, 0);           /* other samples' ciphertexts: G of layer 0 at the first update */
  run_tamper_cfg(&v, TAMPER_DATA, 2, 0, 1);    /* the same with layer 0 frozen: its forward check */
  run_tamper(&v, TAMPER_WREPLAY, 3, 0);        /* the witness of step 1's batch again */
  run_tamper_cfg(&v, TAMPER_FROZENW, 1, 0, 1); /* frozen weights the MP did not authorize */
  /* trained layers from the first step (REFINE_INIT), accumulate 2: step 1
   * comes before any update (caught only since REFINE_INIT) */
  run_tamper_acc(&v, TAMPER_F, 1, 0.01, 0, 2);  /* logits (F of the last layer) in step 1 */
  run_tamper_acc(&v, TAMPER_T, 1, 0.01, 0, 2);  /* W^T delta of the last layer in step 1 */
  run_tamper_acc(&v, TAMPER_F0, 1, 0.01, 0, 2); /* layer 0's output, all layers train, step 1 */
  run_tamper_acc(&v, TAMPER_F1, 1, 0.01, 0, 2); /* layer 1's output (trained; input: the enclave's activations) */
  run_tamper_acc(&v, TAMPER_INITW, 1, 0, 0, 2);  /* REFINE_INIT with weights the MP did not authorize */
  run_tamper_acc(&v, TAMPER_NOINIT, 1, 0, 0, 2); /* steps before REFINE_INIT */
  env_down(&v);
}

/* Witnesses the enclave refuses before anything is decrypted (the job goes
 * on: a good batch then trains), and an honest run with only the last
 * layer training (layers 0 and 1 frozen and checked) that ends at
 * plaintext SGD's weights. */
static void test_witness(void **state) {
  (void)state;
  env v;
  env_up(&v);
  env_own(&v);
  hetee_refine_weights w0, wp, we;
  rt_weights(&w0, 3, dims, acts);
  float *x, *y;
  const uint32_t count = 32;
  rt_data(dims[0], dims[3], count, &x, &y);
  hetee_refine_config cfg = {8, 1, 1, HETEE_REFINE_LOSS_XENT, 0.3, 0.9, 1e-3, 5};
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg, 8192, &p), 0);
  hetee_refine_state *s = NULL;
  assert_int_equal(hetee_refine_state_encrypt(v.ctx, v.pk, &p, &w0, &s), 0);
  hetee_refine_trusted *t = NULL;
  assert_int_equal(open_job(&v, v.smp, &p, s, MODEL, &t), 0);
  uint32_t idx[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  hetee_refine_batch *b = NULL;
  /* no witness */
  assert_int_equal(hetee_refine_batch_encrypt(v.ctx, v.pk, &p, x, y, idx, 8, &b), 0);
  assert_false(hetee_refine_batch_has_witness(b));
  assert_int_equal(hetee_refine_step(s, t, b, 1, NULL), HETEE_ERR_AUTH);
  fprintf(stderr, "no witness: %s\n", hetee_last_error());
  hetee_refine_batch_free(b);
  /* a DP outside the model's policy */
  hetee_party_key *other;
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_DP, &other), 0);
  assert_int_equal(wbatch_by(&v, other, &p, x, y, idx, 8, 1, &b), 0);
  assert_int_equal(hetee_refine_step(s, t, b, 1, NULL), HETEE_ERR_AUTH);
  hetee_refine_batch_free(b);
  hetee_party_key_free(other);
  /* garbled: one byte of the sealed witness (its signature no longer
   * verifies), a signature over another batch number */
  assert_int_equal(wbatch(&v, &p, x, y, idx, 8, 2, &b), 0);
  uint8_t *f;
  size_t fl;
  assert_int_equal(hetee_refine_batch_save(b, &f, &fl), 0);
  hetee_refine_batch_free(b);
  f[fl - 10] ^= 1;
  assert_int_equal(hetee_refine_batch_load(v.ctx, &p, f, fl, &b), 0);
  assert_int_equal(hetee_refine_step(s, t, b, 1, NULL), HETEE_ERR_AUTH);
  hetee_refine_batch_free(b);
  f[fl - 10] ^= 1;
  size_t wlen = 1 + 4 + 8 + 32 + 64 + 8 + REFINE_WIT_SEALED_LEN(8, p.L[0].k);
  f[fl - wlen + 1 + 4] ^= 1; /* the batch number */
  assert_int_equal(hetee_refine_batch_load(v.ctx, &p, f, fl, &b), 0);
  assert_int_equal(hetee_refine_step(s, t, b, 1, NULL), HETEE_ERR_AUTH);
  hetee_refine_batch_free(b);
  /* the loader: the old version, a truncated witness, a witness of another size */
  f[fl - wlen + 1 + 4] ^= 1;
  uint8_t v2[4] = {2, 0, 0, 0}, keep[4];
  memcpy(keep, f + 4, 4);
  memcpy(f + 4, v2, 4);
  assert_int_equal(hetee_refine_batch_load(v.ctx, &p, f, fl, &b), HETEE_ERR_VERSION);
  memcpy(f + 4, keep, 4);
  assert_int_equal(hetee_refine_batch_load(v.ctx, &p, f, fl - 1, &b), HETEE_ERR_TRUNCATED);
  assert_int_equal(hetee_refine_batch_load(v.ctx, &p, f, fl - wlen, &b), HETEE_ERR_TRUNCATED);
  free(f);
  /* honest: 4 steps with witnesses; frozen layers 0 and 1 checked in each */
  uint32_t order[32];
  for (uint32_t i = 0; i < count; i++) order[i] = (i * 5 + 1) % count;
  for (uint32_t k = 0; k < count; k += 8) {
    assert_int_equal(wbatch(&v, &p, x, y, order + k, 8, 10 + k, &b), 0);
    int rc = hetee_refine_step(s, t, b, 1, NULL);
    if (rc) fprintf(stderr, "step: %s\n", hetee_last_error());
    assert_int_equal(rc, 0);
    hetee_refine_batch_free(b);
  }
  assert_int_equal(fetch_layer(&v, t, s, 2, &w0, &we), 0);
  assert_int_equal(hetee_refine_weights_copy(&w0, &wp), 0);
  hetee_refine_plain tw;
  assert_int_equal(hetee_refine_plain_init(&tw, &p, &wp), 0);
  for (uint32_t k = 0; k < count; k += 8) assert_int_equal(hetee_refine_plain_step(&tw, x, y, order + k, 8), 0);
  hetee_refine_plain_clear(&tw);
  double d = hetee_refine_weights_maxdiff(&we, &wp, 0), moved = hetee_refine_weights_maxdiff(&w0, &wp, 0);
  fprintf(stderr, "last layer, frozen layers checked: enclave vs plaintext %.3g (moved %.3g)\n", d, moved);
  assert_true(moved > 1e-2);
  assert_true(d < 1e-4);
  hetee_refine_trusted_free(t);
  hetee_refine_state_free(s);
  hetee_refine_weights_clear(&w0);
  hetee_refine_weights_clear(&wp);
  hetee_refine_weights_clear(&we);
  free(x);
  free(y);
  env_down(&v);
}

/* The MP's authorization with a contributor section (docs/refine.md "Who
 * may contribute"): the enclave accepts exactly the DPs it names, whatever
 * the model's release policy says, even when the host forwards another
 * DP's batch; malformed sections are refused at open. */
static void open_raw(env *v, const hetee_refine_plan *p, const uint8_t *msg, size_t mlen, int want) {
  uint8_t *auth, sid[16];
  size_t alen;
  assert_int_equal(hetee_client_session_seal(v->smp, msg, mlen, &auth, &alen), 0);
  hetee_client_session_id(v->smp, sid);
  hetee_refine_trusted *t = NULL;
  int rc = hetee_host_refine_open(v->e, v->ctx, p, MODEL, sid, auth, alen, &t);
  if (rc) fprintf(stderr, "open: %s\n", hetee_last_error());
  assert_int_equal(rc, want);
  hetee_refine_trusted_free(t);
  free(auth);
}

static void test_contributors(void **state) {
  (void)state;
  env v;
  env_up(&v);
  env_own(&v); /* the model's policy names v.dp only */
  hetee_refine_weights w0, wp, we;
  rt_weights(&w0, 3, dims, acts);
  float *x, *y;
  const uint32_t count = 16;
  rt_data(dims[0], dims[3], count, &x, &y);
  /* the last layer trains: the section follows the frozen layers' */
  hetee_refine_config cfg = {8, 1, 1, HETEE_REFINE_LOSS_XENT, 0.3, 0.9, 1e-3, 5};
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg, 8192, &p), 0);
  hetee_refine_state *s = NULL;
  assert_int_equal(hetee_refine_state_encrypt(v.ctx, v.pk, &p, &w0, &s), 0);
  hetee_party_key *c1, *c2;
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_DP, &c1), 0);
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_DP, &c2), 0);
  uint8_t ks[HETEE_POLICY_MAX_DPS + 1][32];
  hetee_party_key_public(c1, ks[0]);
  hetee_party_key_public(c2, ks[1]);
  for (int i = 2; i <= HETEE_POLICY_MAX_DPS; i++) randombytes_buf(ks[i], 32);
  uint8_t *msg, *m0;
  size_t mlen, m0len;
  /* the client's builder: too many keys, a key twice */
  assert_int_equal(hetee_refine_auth_msg_dps(MODEL, s, (const uint8_t(*)[32])ks, HETEE_POLICY_MAX_DPS + 1, &msg, &mlen),
                   HETEE_ERR_INVALID_ARG);
  memcpy(ks[2], ks[0], 32);
  assert_int_equal(hetee_refine_auth_msg_dps(MODEL, s, (const uint8_t(*)[32])ks, 3, &msg, &mlen), HETEE_ERR_INVALID_ARG);
  randombytes_buf(ks[2], 32);
  /* the enclave's parser: 0 keys, 17 keys, a key twice, a key cut short */
  assert_int_equal(hetee_refine_auth_msg(MODEL, s, &m0, &m0len), 0);
  assert_int_equal(hetee_refine_auth_msg_dps(MODEL, s, (const uint8_t(*)[32])ks, 2, &msg, &mlen), 0);
  assert_int_equal(mlen, m0len + 4 + 2 * 32);
  assert_memory_equal(msg, m0, m0len); /* the section follows what the MP signed without it */
  free(m0);
  uint8_t *bad = malloc(mlen + 32 * HETEE_POLICY_MAX_DPS);
  memcpy(bad, msg, mlen);
  hetee_le32(bad + mlen - 68, 0);
  open_raw(&v, &p, bad, mlen - 64, HETEE_ERR_FORMAT);
  hetee_le32(bad + mlen - 68, HETEE_POLICY_MAX_DPS + 1);
  for (int i = 2; i <= HETEE_POLICY_MAX_DPS; i++) memcpy(bad + mlen + 32 * (i - 2), ks[i], 32);
  open_raw(&v, &p, bad, mlen + 32 * (HETEE_POLICY_MAX_DPS - 1), HETEE_ERR_FORMAT);
  memcpy(bad, msg, mlen);
  memcpy(bad + mlen - 32, bad + mlen - 64, 32);
  open_raw(&v, &p, bad, mlen, HETEE_ERR_FORMAT);
  memcpy(bad, msg, mlen);
  open_raw(&v, &p, bad, mlen - 1, HETEE_ERR_FORMAT);
  open_raw(&v, &p, bad, mlen - 2, HETEE_ERR_FORMAT);
  free(bad);
  /* the job names c1 and c2: the model's DP (v.dp) is refused by the
   * enclave, whatever the host forwards; c2 and c1 (outside the model's
   * policy) train */
  uint8_t *auth, sid[16];
  size_t alen;
  assert_int_equal(hetee_client_session_seal(v.smp, msg, mlen, &auth, &alen), 0);
  free(msg);
  hetee_client_session_id(v.smp, sid);
  hetee_refine_trusted *t = NULL;
  assert_int_equal(hetee_host_refine_open(v.e, v.ctx, &p, MODEL, sid, auth, alen, &t), 0);
  free(auth);
  uint32_t idx[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  hetee_refine_batch *b = NULL;
  assert_int_equal(wbatch(&v, &p, x, y, idx, 8, 1, &b), 0);
  assert_int_equal(hetee_refine_step(s, t, b, 1, NULL), HETEE_ERR_AUTH);
  fprintf(stderr, "the model's DP, not the job's: %s\n", hetee_last_error());
  assert_non_null(strstr(hetee_last_error(), "contributors"));
  hetee_refine_batch_free(b);
  assert_int_equal(wbatch_by(&v, c2, &p, x, y, idx, 8, 2, &b), 0);
  int rc = hetee_refine_step(s, t, b, 1, NULL);
  if (rc) fprintf(stderr, "step: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  hetee_refine_batch_free(b);
  assert_int_equal(wbatch_by(&v, c1, &p, x, y, idx + 8, 8, 3, &b), 0);
  assert_int_equal(hetee_refine_step(s, t, b, 1, NULL), 0);
  hetee_refine_batch_free(b);
  /* what trained is the contributors' two batches */
  assert_int_equal(fetch_layer(&v, t, s, 2, &w0, &we), 0);
  assert_int_equal(hetee_refine_weights_copy(&w0, &wp), 0);
  hetee_refine_plain tw;
  assert_int_equal(hetee_refine_plain_init(&tw, &p, &wp), 0);
  assert_int_equal(hetee_refine_plain_step(&tw, x, y, idx, 8), 0);
  assert_int_equal(hetee_refine_plain_step(&tw, x, y, idx + 8, 8), 0);
  hetee_refine_plain_clear(&tw);
  double d = hetee_refine_weights_maxdiff(&we, &wp, 0), moved = hetee_refine_weights_maxdiff(&w0, &wp, 0);
  fprintf(stderr, "contributors outside the model's policy: enclave vs plaintext %.3g (moved %.3g)\n", d, moved);
  assert_true(moved > 1e-2);
  assert_true(d < 1e-4);
  hetee_refine_trusted_free(t);
  hetee_refine_state_free(s);
  hetee_party_key_free(c1);
  hetee_party_key_free(c2);
  hetee_refine_weights_clear(&w0);
  hetee_refine_weights_clear(&wp);
  hetee_refine_weights_clear(&we);
  free(x);
  free(y);
  env_down(&v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_step_equals_twin),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_tampering),
      cmocka_unit_test(test_witness),
      cmocka_unit_test(test_contributors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

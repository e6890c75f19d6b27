/*
 * refine/durable: the enclave job across processes, and its validation
 * set. Enclave refine jobs survive the enclave process and the
 * host process (REFINE_SAVE / REFINE_RESUME, docs/refine.md "Durable
 * enclave jobs"), with the real enclave process (sim backend).
 *  - the enclave is killed with SIGKILL mid-epoch (after an update that no
 *    checkpoint holds); a new enclave process on the same platform
 *    (its sealed keys and policies unsealed) reopens the job from the
 *    sealed checkpoint, the run finishes, and the weights the MP fetches
 *    through a new session equal an uninterrupted plaintext run within
 *    1e-4; the enclave's own count of the samples its updates applied is
 *    exactly the data set once per epoch;
 *  - the host process dies (a child driving the enclave kills itself with
 *    SIGKILL; its enclave goes with it) and a new host with a new enclave
 *    resumes and finishes, with the same result;
 *  - both runs apply the MP's learning-rate schedule (step, cosine) across
 *    the restart: the update counter that drives it is part of the sealed
 *    state; a constant-rate run ends elsewhere;
 *  - refusals: a job opened with a schedule the MP did not authorize, a garbled or truncated sealed checkpoint, another job's uid,
 *    a checkpoint without a sealed state, a job state sealed on another
 *    platform, the same job resumed twice, a declared cursor that disagrees
 *    with the samples the job applied; the enclave keeps serving;
 *  - the validation set (MP-encrypted): the report sealed to the MP before
 *    training and after each epoch gives exactly the plaintext accuracy of
 *    the same weights (loss within 1e-4), the sample count, the update count
 *    and the digest of the MP's labels (a set the host encrypted itself
 *    shows another digest); a data provider cannot open it; fixed size; a
 *    pass run with other weights than the job's fails the forward check
 *    (HETEE_ERR_INTEGRITY) and stops the job; a set without the MP's
 *    witnesses, or signed by the DP, is refused (HETEE_ERR_AUTH); the
 *    version-1 file is refused (HETEE_ERR_VERSION);
 *  - layer 0 of the validation pass (test_validation_layer0): checked
 *    against the MP's witness of each chunk; a replayed or another chunk's
 *    witness is HETEE_ERR_AUTH, a host that moves layer 0's output
 *    HETEE_ERR_INTEGRITY;
 *  - REFINE_INIT: a job sealed before its first step (no weights held) is
 *    resumed; a step before INIT is refused (HETEE_ERR_STATE), the host's
 *    run sends one INIT per trained layer and a later resume of a state
 *    with kept weights none; the run ends at plaintext SGD's weights;
 *  - the job's contributors (the MP's authorization names a DP outside the
 *    model's policy): sealed, closed and resumed, the job trains on that
 *    DP's batches to plaintext SGD's weights and refuses the model's DP.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "enclave/fixture.h"
#include "refine/refine_test_util.h"

#include "enclave/wire/proto.h"
#include "hemat/refine_internal.h"
#include "hetee/engine.h"

#define MODEL 9
#define COUNT 36 /* 4 full batches of 8 and one of 4 per epoch */
#define EPOCHS 2

typedef struct env {
  char dir[256], plat[300], seal[400], ck[400], cfg[2048];
  hetee_host_enclave *e;
  hetee_party_key *mp, *dp;
  hetee_client_session *smp;
  hetee_ckks_context *ctx;
  hetee_ckks_public_key *pk;
} env;

/* the data provider of the runs (its witnesses are sealed to the enclave's
 * release key, the same after a restart: it derives from the sealing key) */
static uint8_t g_rel[32], g_dpk[32];
static hetee_party_key *g_dp;
static int dp_sign(void *arg, const uint8_t *msg, size_t len, uint8_t sig[64]) {
  return hetee_party_key_sign(arg, msg, len, sig);
}

static const int dims[] = {20, 12, 8, 4}, acts[] = {HETEE_REFINE_ACT_RELU, HETEE_REFINE_ACT_TANH, HETEE_REFINE_ACT_NONE};
static const hetee_refine_config cfg = {8, 1, 0, HETEE_REFINE_LOSS_XENT, 0.2, 0.9, 1e-3, 5};

static void env_session(env *v) {
  hetee_client_session_free(v->smp);
  hetee_verified_enclave ve;
  fx_verify_cfg(v->e, v->plat, v->cfg, &ve);
  v->smp = fx_session(v->e, v->mp, &ve);
}

static void env_keys(env *v) {
  uint8_t *bundle;
  size_t blen, ilen;
  const uint8_t *item;
  assert_int_equal(hetee_host_public_keys(v->e, &bundle, &blen), 0);
  assert_int_equal(hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PARAMS, &item, &ilen), 0);
  assert_int_equal(hetee_ckks_context_load(item, ilen, &v->ctx), 0);
  assert_int_equal(hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PUBLIC_KEY, &item, &ilen), 0);
  assert_int_equal(hetee_ckks_public_key_load(v->ctx, item, ilen, &v->pk), 0);
  free(bundle);
}

/* An enclave with keys, the MP owning MODEL, its state sealed to v->seal
 * (a restart unseals it). */
static void env_up(env *v) {
  memset(v, 0, sizeof *v);
  fx_tmp_platform(v->dir, sizeof v->dir, v->plat, sizeof v->plat);
  snprintf(v->seal, sizeof v->seal, "%s/enclave.sealed", v->dir);
  snprintf(v->ck, sizeof v->ck, "%s/refine.ck", v->dir);
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_MP, &v->mp), 0);
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_DP, &v->dp), 0);
  fx_config_mps(NULL, &v->mp, 1, v->cfg, sizeof v->cfg);
  v->e = fx_start_cfg(v->plat, NULL, v->seal, 0, v->cfg);
  assert_int_equal(hetee_host_keygen(v->e, NULL, 0), 0);
  env_keys(v);
  env_session(v);
  uint8_t dpk[32], *msg, *sealed, *reply, *plain;
  size_t mlen, slen, rlen, plen;
  hetee_party_key_public(v->dp, dpk);
  assert_int_equal(hetee_client_msg_policy(MODEL, HETEE_RELEASE_ARGMAX, 0, 8, dpk, &msg, &mlen), 0);
  assert_int_equal(hetee_client_session_seal(v->smp, msg, mlen, &sealed, &slen), 0);
  assert_int_equal(hetee_host_session_msg(v->e, sealed, slen, &reply, &rlen), 0);
  assert_int_equal(hetee_client_session_open(v->smp, reply, rlen, &plain, &plen), 0);
  free(msg);
  free(sealed);
  free(reply);
  free(plain);
  assert_int_equal(hetee_client_msg_release_key(&msg, &mlen), 0);
  assert_int_equal(hetee_client_session_seal(v->smp, msg, mlen, &sealed, &slen), 0);
  assert_int_equal(hetee_host_session_msg(v->e, sealed, slen, &reply, &rlen), 0);
  assert_int_equal(hetee_client_session_open(v->smp, reply, rlen, &plain, &plen), 0);
  assert_int_equal(hetee_client_release_key_parse(plain, plen, g_rel), 0);
  memcpy(g_dpk, dpk, 32);
  g_dp = v->dp;
  free(msg);
  free(sealed);
  free(reply);
  free(plain);
  assert_int_equal(hetee_host_seal(v->e, v->seal), 0);
}

static void env_down(env *v) {
  hetee_client_session_free(v->smp);
  hetee_party_key_free(v->mp);
  hetee_party_key_free(v->dp);
  hetee_ckks_public_key_free(v->pk);
  hetee_ckks_context_free(v->ctx);
  fx_stop(v->e, v->dir);
}

static int open_job(env *v, const hetee_refine_plan *p, const hetee_refine_state *st, hetee_refine_trusted **t) {
  uint8_t *msg, *auth, sid[16];
  size_t mlen, alen;
  assert_int_equal(hetee_refine_auth_msg(MODEL, st, &msg, &mlen), 0);
  assert_int_equal(hetee_client_session_seal(v->smp, msg, mlen, &auth, &alen), 0);
  free(msg);
  hetee_client_session_id(v->smp, sid);
  int rc = hetee_host_refine_open(v->e, v->ctx, p, MODEL, sid, auth, alen, t);
  free(auth);
  return rc;
}

/* The MP's validation set with its witness of every chunk, each signed by
 * `signer` (the MP: the model's owner; anything else is refused). */
static hetee_refine_valset *val_set(const env *v, const hetee_refine_plan *p, const float *x, const float *y,
                                    uint32_t count, const hetee_party_key *signer) {
  hetee_refine_valset *vs = NULL;
  assert_int_equal(hetee_refine_valset_encrypt_witness(v->ctx, v->pk, p, x, y, count, MODEL, g_rel, &vs), 0);
  uint8_t spk[32], sig[64], *msg = NULL;
  size_t mlen = 0;
  hetee_party_key_public(signer, spk);
  for (uint32_t i = 0; i < hetee_refine_valset_chunks(vs); i++) {
    assert_int_equal(hetee_refine_valset_auth_msg(vs, i, spk, &msg, &mlen), 0);
    assert_int_equal(hetee_party_key_sign(signer, msg, mlen, sig), 0);
    assert_int_equal(hetee_refine_valset_set_auth(vs, i, spk, sig), 0);
    free(msg);
  }
  assert_true(hetee_refine_valset_has_witness(vs));
  return vs;
}

static hetee_refine_run_options run_opts(const char *ck, uint64_t stop) {
  hetee_refine_run_options o;
  memset(&o, 0, sizeof o);
  o.threads = 1;
  o.ckpt = ck;
  o.ckpt_every = 2;
  o.stop_after_steps = stop;
  o.epochs = EPOCHS;
  o.ckpt_write = hetee_refine_checkpoint_write_sealed;
  o.release_pk = g_rel;
  o.dp_model = MODEL;
  o.dp_pk = g_dpk;
  o.dp_sign = dp_sign;
  o.dp_sign_arg = g_dp;
  return o;
}

/* The MP fetches every trained layer through its current session. */
static void fetch_all(env *v, hetee_refine_trusted *t, const hetee_refine_state *s, const hetee_refine_plan *p,
                      hetee_refine_weights *we) {
  for (int l = p->first_train; l < p->nl; l++) {
    uint8_t *sealed = NULL, *plain = NULL;
    size_t slen = 0, plen = 0;
    int rc = hetee_host_refine_fetch(t, s, l, &sealed, &slen);
    if (rc) fprintf(stderr, "fetch: %s\n", hetee_last_error());
    assert_int_equal(rc, 0);
    assert_int_equal(hetee_client_session_open(v->smp, sealed, slen, &plain, &plen), 0);
    assert_int_equal(hetee_refine_fetch_parse(plain, plen, MODEL, we), 0);
    free(plain);
    free(sealed);
  }
}

/* Resumes from v->ck in v->e, finishes the run, checks the enclave's
 * per-epoch sample counts and the weights against plaintext SGD. */
static void resume_and_finish(env *v, const hetee_refine_plan *p, const hetee_refine_weights *w0, const float *x,
                              const float *y, uint64_t samples_at_ckpt) {
  hetee_refine_state *s = NULL;
  hetee_refine_trusted *t = NULL;
  int rc = hetee_host_refine_resume(v->e, v->ctx, p, v->ck, &s, &t);
  if (rc) fprintf(stderr, "resume: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  hetee_refine_job_status js;
  assert_int_equal(hetee_host_refine_status(t, &js), 0);
  uint32_t epoch, next;
  hetee_refine_state_cursor(s, &epoch, &next, NULL);
  fprintf(stderr, "resumed at epoch %u, sample %u; the job applied %llu samples\n", epoch, next,
          (unsigned long long)js.samples);
  assert_int_equal(js.samples, samples_at_ckpt);
  assert_int_equal(js.samples, (uint64_t)epoch * COUNT + next);
  /* the same job cannot be open twice in one enclave */
  hetee_refine_state *s2 = NULL;
  hetee_refine_trusted *t2 = NULL;
  assert_int_equal(hetee_host_refine_resume(v->e, v->ctx, p, v->ck, &s2, &t2), HETEE_ERR_STATE);
  hetee_refine_run_options o = run_opts(v->ck, 0);
  rc = hetee_refine_run(s, t, v->pk, x, y, COUNT, &o, NULL, NULL);
  if (rc) fprintf(stderr, "run: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  /* every sample applied exactly once per epoch, counted by the enclave */
  assert_int_equal(hetee_host_refine_status(t, &js), 0);
  assert_int_equal(js.epochs, EPOCHS);
  for (uint32_t e = 0; e < EPOCHS; e++) {
    fprintf(stderr, "epoch %u: %llu samples applied\n", e, (unsigned long long)js.epoch_samples[e]);
    assert_int_equal(js.epoch_samples[e], COUNT);
  }
  assert_int_equal(js.samples, (uint64_t)EPOCHS * COUNT);
  assert_int_equal(js.updates, (uint64_t)EPOCHS * ((COUNT + cfg.batch - 1) / cfg.batch));
  /* the MP's weights equal uninterrupted plaintext SGD */
  hetee_refine_weights we, wp;
  assert_int_equal(hetee_refine_weights_copy(w0, &we), 0);
  assert_int_equal(hetee_refine_weights_copy(w0, &wp), 0);
  fetch_all(v, t, s, p, &we);
  hetee_refine_plain tw;
  assert_int_equal(hetee_refine_plain_init(&tw, p, &wp), 0);
  assert_int_equal(hetee_refine_plain_run(&tw, x, y, COUNT, EPOCHS), 0);
  hetee_refine_plain_clear(&tw);
  double d = hetee_refine_weights_maxdiff(&we, &wp, 0), moved = hetee_refine_weights_maxdiff(w0, &wp, 0);
  fprintf(stderr, "resumed run vs uninterrupted plaintext: %.3g (weights moved %.3g)\n", d, moved);
  assert_true(moved > 1e-2);
  assert_true(d < 1e-4);
  if (p->sched.kind != HETEE_REFINE_LR_CONSTANT) { /* the schedule matters: a constant rate ends elsewhere */
    hetee_refine_plan pc = *p;
    hetee_refine_schedule cst;
    memset(&cst, 0, sizeof cst);
    assert_int_equal(hetee_refine_plan_set_schedule(&pc, &cst), 0);
    hetee_refine_weights wc;
    assert_int_equal(hetee_refine_weights_copy(w0, &wc), 0);
    assert_int_equal(hetee_refine_plain_init(&tw, &pc, &wc), 0);
    assert_int_equal(hetee_refine_plain_run(&tw, x, y, COUNT, EPOCHS), 0);
    hetee_refine_plain_clear(&tw);
    double dc = hetee_refine_weights_maxdiff(&we, &wc, 0);
    fprintf(stderr, "schedule %d: the constant-rate run ends %.3g away\n", p->sched.kind, dc);
    assert_true(dc > 1e-3);
    hetee_refine_weights_clear(&wc);
  }
  hetee_refine_weights_clear(&we);
  hetee_refine_weights_clear(&wp);
  hetee_refine_trusted_free(t);
  hetee_refine_state_free(s);
}

static void test_enclave_killed(void **state) {
  (void)state;
  env v;
  env_up(&v);
  hetee_refine_weights w0;
  rt_weights(&w0, 3, dims, acts);
  float *x, *y;
  rt_data(dims[0], dims[3], COUNT, &x, &y);
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg, 8192, &p), 0);
  hetee_refine_schedule sc = {HETEE_REFINE_LR_STEP, 3, 0.5, 0, 0}; /* x 0.5 every 3 updates */
  assert_int_equal(hetee_refine_plan_set_schedule(&p, &sc), 0);
  hetee_refine_state *s = NULL;
  hetee_refine_trusted *t = NULL;
  assert_int_equal(hetee_refine_state_encrypt(v.ctx, v.pk, &p, &w0, &s), 0);
  assert_int_equal(open_job(&v, &p, s, &t), 0);
  /* 8 steps: epoch 0 (5 steps, sealed checkpoints after steps 2 and 4 and
   * at its end), steps 6..8 of epoch 1 (one after step 7): the update of
   * step 8 is in no checkpoint */
  hetee_refine_run_options o = run_opts(v.ck, 8);
  int rc = hetee_refine_run(s, t, v.pk, x, y, COUNT, &o, NULL, NULL);
  if (rc) fprintf(stderr, "run: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  hetee_refine_job_status js;
  assert_int_equal(hetee_host_refine_status(t, &js), 0);
  assert_int_equal(js.samples, COUNT + 24);
  assert_int_equal(js.epochs, 1);
  assert_int_equal(js.epoch_samples[0], COUNT);
  /* a cursor that disagrees with what the job applied is not sealed */
  uint32_t ep, nx;
  hetee_refine_state_cursor(s, &ep, &nx, NULL);
  hetee_refine_state_set_cursor(s, ep, nx - 8);
  char bad[450];
  snprintf(bad, sizeof bad, "%s.bad", v.ck);
  assert_int_equal(hetee_refine_checkpoint_write_sealed(s, t, bad), HETEE_ERR_STATE);
  hetee_refine_state_set_cursor(s, ep + 2, 0);
  assert_int_equal(hetee_refine_checkpoint_write_sealed(s, t, bad), HETEE_ERR_STATE);
  /* SIGKILL the enclave process mid-epoch */
  hetee_host_info info;
  assert_int_equal(hetee_host_info_get(v.e, &info), 0);
  assert_int_equal(kill(info.pid, SIGKILL), 0);
  fx_wait_dead(info.pid);
  hetee_refine_trusted_free(t); /* the job's handle on the dead process */
  hetee_refine_state_free(s);
  /* a new enclave process, same platform, its sealed state unsealed */
  assert_int_equal(hetee_host_restart(v.e), 0);
  env_session(&v);
  resume_and_finish(&v, &p, &w0, x, y, COUNT + 16);
  hetee_refine_weights_clear(&w0);
  free(x);
  free(y);
  env_down(&v);
}

/* The child: a host process of its own with its own enclave, which runs 8
 * steps with sealed checkpoints and dies by SIGKILL. Exit codes name the
 * failing stage (the parent expects death by SIGKILL). */
static void child_host(env *v, const hetee_refine_plan *p, const hetee_refine_weights *w0, const float *x, const float *y) {
  hetee_host_options ho;
  memset(&ho, 0, sizeof ho);
  ho.config = v->cfg;
  ho.platform_dir = v->plat;
  ho.seal_path = v->seal;
  if (hetee_host_start(&ho, &v->e)) _exit(11);
  v->smp = NULL;
  env_session(v);
  hetee_refine_state *s = NULL;
  hetee_refine_trusted *t = NULL;
  if (hetee_refine_state_encrypt(v->ctx, v->pk, p, w0, &s)) _exit(12);
  if (open_job(v, p, s, &t)) _exit(13);
  hetee_refine_run_options o = run_opts(v->ck, 8);
  if (hetee_refine_run(s, t, v->pk, x, y, COUNT, &o, NULL, NULL)) _exit(14);
  kill(getpid(), SIGKILL);
  _exit(15);
}

static void test_host_killed(void **state) {
  (void)state;
  env v;
  env_up(&v);
  hetee_host_free(v.e); /* the parent's host lets go of its enclave */
  v.e = NULL;
  hetee_client_session_free(v.smp);
  v.smp = NULL;
  hetee_refine_weights w0;
  rt_weights(&w0, 3, dims, acts);
  float *x, *y;
  rt_data(dims[0], dims[3], COUNT, &x, &y);
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg, 8192, &p), 0);
  hetee_refine_schedule sc = {HETEE_REFINE_LR_COSINE, 0, 0, 8, 0.01}; /* cosine over 8 of the 10 updates */
  assert_int_equal(hetee_refine_plan_set_schedule(&p, &sc), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) child_host(&v, &p, &w0, x, y);
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (!WIFSIGNALED(st)) fprintf(stderr, "child exited with %d\n", WEXITSTATUS(st));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  /* a new host, a new enclave on the same platform */
  v.e = fx_start_cfg(v.plat, NULL, v.seal, 0, v.cfg);
  env_session(&v);
  resume_and_finish(&v, &p, &w0, x, y, COUNT + 16);
  hetee_refine_weights_clear(&w0);
  free(x);
  free(y);
  env_down(&v);
}

static void copy_file(const char *from, const char *to, long cut, long flip) {
  FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
  assert_non_null(a);
  assert_non_null(b);
  fseek(a, 0, SEEK_END);
  long n = ftell(a);
  fseek(a, 0, SEEK_SET);
  uint8_t *buf = malloc((size_t)n);
  assert_int_equal(fread(buf, 1, (size_t)n, a), (size_t)n);
  if (flip >= 0) buf[n - 1 - flip] ^= 0x20;
  assert_int_equal(fwrite(buf, 1, (size_t)(n - cut), b), (size_t)(n - cut));
  free(buf);
  fclose(a);
  fclose(b);
}

static void test_refusals(void **state) {
  (void)state;
  env v;
  env_up(&v);
  hetee_refine_weights w0;
  rt_weights(&w0, 3, dims, acts);
  float *x, *y;
  rt_data(dims[0], dims[3], COUNT, &x, &y);
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg, 8192, &p), 0);
  hetee_refine_state *s = NULL, *s2 = NULL;
  hetee_refine_trusted *t = NULL, *t2 = NULL;
  assert_int_equal(hetee_refine_state_encrypt(v.ctx, v.pk, &p, &w0, &s), 0);
  { /* the host cannot change the MP's schedule: the authorization names the spec */
    uint8_t *msg, *auth, sid[16];
    size_t mlen, alen;
    assert_int_equal(hetee_refine_auth_msg(MODEL, s, &msg, &mlen), 0);
    assert_int_equal(hetee_client_session_seal(v.smp, msg, mlen, &auth, &alen), 0);
    free(msg);
    hetee_client_session_id(v.smp, sid);
    hetee_refine_plan ps = p;
    hetee_refine_schedule sc = {HETEE_REFINE_LR_STEP, 1, 0.999, 0, 0};
    assert_int_equal(hetee_refine_plan_set_schedule(&ps, &sc), 0);
    assert_int_equal(hetee_host_refine_open(v.e, v.ctx, &ps, MODEL, sid, auth, alen, &t), HETEE_ERR_AUTH);
    free(auth);
  }
  assert_int_equal(open_job(&v, &p, s, &t), 0);
  /* sealed before any update: nothing held, the initial weights come from
   * the host's part (checked against the authorized digest at the first
   * update of the resumed job) */
  char f0[450];
  snprintf(f0, sizeof f0, "%s.0", v.ck);
  assert_int_equal(hetee_refine_checkpoint_write_sealed(s, t, f0), 0);
  /* not an enclave job; a plain checkpoint has no sealed state */
  assert_int_equal(hetee_refine_checkpoint_write_sealed(s, NULL, v.ck), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_refine_checkpoint_write(s, v.ck), 0);
  assert_int_equal(hetee_host_refine_resume(v.e, v.ctx, &p, v.ck, &s2, &t2), HETEE_ERR_FORMAT);
  hetee_refine_run_options o = run_opts(v.ck, 3);
  assert_int_equal(hetee_refine_run(s, t, v.pk, x, y, COUNT, &o, NULL, NULL), 0);
  char f2[450];
  snprintf(f2, sizeof f2, "%s.2", v.ck);
  /* garbled: a byte of the sealed state; truncated; another job's uid (the
   * uid sits before the u64 length and the blob) */
  copy_file(v.ck, f2, 0, 3);
  assert_int_equal(hetee_host_refine_resume(v.e, v.ctx, &p, f2, &s2, &t2), HETEE_ERR_AUTH);
  copy_file(v.ck, f2, 10, -1);
  int rc = hetee_host_refine_resume(v.e, v.ctx, &p, f2, &s2, &t2);
  assert_true(rc == HETEE_ERR_TRUNCATED || rc == HETEE_ERR_FORMAT);
  {
    FILE *a = fopen(v.ck, "rb");
    fseek(a, 0, SEEK_END);
    long n = ftell(a);
    fclose(a);
    /* the blob's length: read the u64 before it by scanning for the trailer magic */
    copy_file(v.ck, f2, 0, -1);
    FILE *b = fopen(f2, "r+b");
    uint8_t *buf = malloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, b), (size_t)n);
    long at = -1;
    for (long i = n - 4; i >= 0 && at < 0; i--)
      if (!memcmp(buf + i, "HTRJ", 4)) at = i;
    assert_true(at > 0);
    buf[at + 4] ^= 1; /* the uid */
    fseek(b, 0, SEEK_SET);
    assert_int_equal(fwrite(buf, 1, (size_t)n, b), (size_t)n);
    fclose(b);
    free(buf);
  }
  assert_int_equal(hetee_host_refine_resume(v.e, v.ctx, &p, f2, &s2, &t2), HETEE_ERR_AUTH);
  /* sealed on another platform: an enclave there (its own keys, same
   * parameters) cannot open it */
  {
    char d2[256], plat2[300];
    fx_tmp_platform(d2, sizeof d2, plat2, sizeof plat2);
    hetee_host_enclave *e2 = fx_start_cfg(plat2, NULL, NULL, 0, v.cfg);
    assert_int_equal(hetee_host_keygen(e2, NULL, 0), 0);
    assert_int_equal(hetee_host_refine_resume(e2, v.ctx, &p, v.ck, &s2, &t2), HETEE_ERR_AUTH);
    fx_stop(e2, d2);
  }
  { /* malformed requests are answered with errors (raw frames) */
    uint8_t *r = NULL, req[40];
    size_t rlen = 0;
    uint32_t job = refine_host_job_id(t);
    memset(req, 0, sizeof req);
    hetee_le32(req, job);
    assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_SAVE, req, 12, &r, &rlen), HETEE_ERR_PROTOCOL);
    assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_SAVE, req, 29, &r, &rlen), HETEE_ERR_PROTOCOL);
    assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_RESUME, req, 20, &r, &rlen), HETEE_ERR_PROTOCOL);
    assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_STATUS, req, 5, &r, &rlen), HETEE_ERR_PROTOCOL);
    assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_VREPORT, req, 4, &r, &rlen), HETEE_ERR_PROTOCOL);
    hetee_le32(req + 4, 2);
    assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_VREPORT, req, 8, &r, &rlen), HETEE_ERR_PROTOCOL);
    hetee_le32(req + 4, 0); /* nothing accumulated */
    assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_VREPORT, req, 8, &r, &rlen), HETEE_ERR_STATE);
    hetee_le32(req + 4, 7); /* validation forward of a layer outside the plan */
    hetee_le32(req + 8, 8);
    assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_VFORWARD, req, 16, &r, &rlen), HETEE_ERR_INVALID_ARG);
    hetee_le32(req, job ^ 0x40000000u); /* no such job */
    assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_STATUS, req, 4, &r, &rlen), HETEE_ERR_NOT_FOUND);
  }
  /* the enclave still serves: the good file resumes (a second job of the
   * same sealed state in the same enclave is refused while the first is
   * open; the original job is still open here) */
  assert_int_equal(hetee_host_refine_resume(v.e, v.ctx, &p, v.ck, &s2, &t2), HETEE_ERR_STATE);
  hetee_refine_trusted_free(t);
  hetee_refine_state_free(s);
  rc = hetee_host_refine_resume(v.e, v.ctx, &p, f0, &s2, &t2);
  if (rc) fprintf(stderr, "resume: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  o = run_opts(f0, 2);
  assert_int_equal(hetee_refine_run(s2, t2, v.pk, x, y, COUNT, &o, NULL, NULL), 0);
  hetee_refine_job_status js;
  assert_int_equal(hetee_host_refine_status(t2, &js), 0);
  assert_int_equal(js.samples, 16);
  hetee_refine_trusted_free(t2);
  hetee_refine_state_free(s2);
  rc = hetee_host_refine_resume(v.e, v.ctx, &p, v.ck, &s2, &t2);
  if (rc) fprintf(stderr, "resume: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  o = run_opts(v.ck, 2);
  assert_int_equal(hetee_refine_run(s2, t2, v.pk, x, y, COUNT, &o, NULL, NULL), 0);
  hetee_refine_trusted_free(t2);
  hetee_refine_state_free(s2);
  hetee_refine_weights_clear(&w0);
  free(x);
  free(y);
  env_down(&v);
}


/* ---- validation set ---- */
typedef struct valctx {
  const hetee_refine_valset *vs;
  uint8_t *sealed[EPOCHS];
  size_t len[EPOCHS];
} valctx;

static int on_epoch(hetee_refine_state *s, hetee_refine_trusted *t, uint32_t epoch, void *arg) {
  valctx *c = arg;
  if (epoch >= EPOCHS) return hetee_error(HETEE_ERR_INTERNAL, "epoch %u", epoch);
  return hetee_refine_validate(s, t, c->vs, 1, &c->sealed[epoch], &c->len[epoch]);
}

static void open_report(env *v, const uint8_t *sealed, size_t len, hetee_refine_val_report *rep) {
  uint8_t *plain = NULL;
  size_t plen = 0;
  assert_int_equal(hetee_client_session_open(v->smp, sealed, len, &plain, &plen), 0);
  assert_int_equal(plen, HETEE_REFINE_VAL_LEN); /* a fixed size, whatever the values */
  assert_int_equal(hetee_refine_val_report_parse(plain, plen, MODEL + 1, rep), HETEE_ERR_FORMAT);
  assert_int_equal(hetee_refine_val_report_parse(plain, plen, MODEL, rep), 0);
  free(plain);
}

static void check_report(const hetee_refine_val_report *rep, const hetee_refine_plan *p, const hetee_refine_weights *w,
                         const float *vx, const float *vy, uint32_t vcount, const uint8_t digest[32], uint64_t updates) {
  double loss = 0, acc = 0;
  assert_int_equal(hetee_refine_plain_eval(p, w, vx, vy, vcount, &loss, &acc), 0);
  fprintf(stderr, "validation after %llu updates: accuracy %.4f (plaintext %.4f), loss %.6f (plaintext %.6f)\n",
          (unsigned long long)rep->updates, rep->accuracy, acc, rep->loss, loss);
  assert_int_equal(rep->samples, vcount);
  assert_int_equal(rep->updates, updates);
  assert_true(rep->accuracy == acc);
  assert_true(fabs(rep->loss - loss) < 1e-4 * (1 + loss));
  assert_memory_equal(rep->labels_digest, digest, 32);
}

static void test_validation(void **state) {
  (void)state;
  env v;
  env_up(&v);
  hetee_verified_enclave ve;
  fx_verify_cfg(v.e, v.plat, v.cfg, &ve);
  hetee_client_session *sdp = fx_session(v.e, v.dp, &ve);
  hetee_refine_weights w0;
  rt_weights(&w0, 3, dims, acts);
  float *x, *y, *vx, *vy;
  const uint32_t vcount = 20; /* 2 full batches of 8 and one of 4 */
  rt_data(dims[0], dims[3], COUNT, &x, &y);
  rt_data(dims[0], dims[3], vcount, &vx, &vy);
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg, 8192, &p), 0);
  /* the MP encrypts its validation set and keeps the labels' digest */
  hetee_refine_valset *vs = val_set(&v, &p, vx, vy, vcount, v.mp);
  assert_int_equal(hetee_refine_valset_count(vs), vcount);
  assert_int_equal(hetee_refine_valset_chunks(vs), 3);
  uint8_t digest[32];
  assert_int_equal(hetee_refine_valset_labels_digest(vs, digest), 0);
  { /* it reaches the host serialized: the host's copy is the same set */
    uint8_t *buf = NULL, d2[32];
    size_t blen = 0;
    hetee_refine_valset *v2 = NULL;
    assert_int_equal(hetee_refine_valset_save(vs, &buf, &blen), 0);
    assert_int_equal(hetee_refine_valset_load(v.ctx, &p, buf, blen - 1, &v2), HETEE_ERR_TRUNCATED);
    assert_int_equal(hetee_refine_valset_load(v.ctx, &p, buf + 1, blen - 1, &v2), HETEE_ERR_FORMAT);
    buf[4] = 1; /* version 1 (no witnesses): refused */
    assert_int_equal(hetee_refine_valset_load(v.ctx, &p, buf, blen, &v2), HETEE_ERR_VERSION);
    buf[4] = 2;
    hetee_refine_plan pb;
    hetee_refine_config cb = cfg;
    cb.batch = 4;
    assert_int_equal(hetee_refine_plan_build(&w0, &cb, 8192, &pb), 0);
    assert_int_equal(hetee_refine_valset_load(v.ctx, &pb, buf, blen, &v2), HETEE_ERR_SHAPE);
    assert_int_equal(hetee_refine_valset_load(v.ctx, &p, buf, blen, &v2), 0);
    assert_int_equal(hetee_refine_valset_count(v2), vcount);
    assert_int_equal(hetee_refine_valset_labels_digest(v2, d2), 0);
    assert_memory_equal(d2, digest, 32);
    assert_true(hetee_refine_valset_has_witness(v2));
    free(buf);
    hetee_refine_valset_free(vs);
    vs = v2;
  }
  hetee_refine_state *s = NULL;
  hetee_refine_trusted *t = NULL;
  assert_int_equal(hetee_refine_state_encrypt(v.ctx, v.pk, &p, &w0, &s), 0);
  assert_int_equal(open_job(&v, &p, s, &t), 0);
  /* before any update: the MP's initial weights */
  uint8_t *sealed = NULL;
  size_t slen = 0;
  int rc = hetee_refine_validate(s, t, vs, 1, &sealed, &slen);
  if (rc) fprintf(stderr, "validate: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  hetee_refine_val_report rep;
  open_report(&v, sealed, slen, &rep);
  check_report(&rep, &p, &w0, vx, vy, vcount, digest, 0);
  size_t len0 = slen;
  free(sealed);
  /* after each of two epochs */
  valctx vc;
  memset(&vc, 0, sizeof vc);
  vc.vs = vs;
  hetee_refine_run_options o = run_opts(v.ck, 0);
  o.epoch_end = on_epoch;
  o.epoch_arg = &vc;
  rc = hetee_refine_run(s, t, v.pk, x, y, COUNT, &o, NULL, NULL);
  if (rc) fprintf(stderr, "run: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  /* a data provider's session cannot open a report; its size is fixed */
  uint8_t *plain = NULL;
  size_t plen = 0;
  rc = hetee_client_session_open(sdp, vc.sealed[0], vc.len[0], &plain, &plen);
  assert_true(rc == HETEE_ERR_AUTH || rc == HETEE_ERR_REPLAY);
  assert_int_equal(vc.len[0], len0);
  assert_int_equal(vc.len[1], len0);
  /* epoch 1: against the plaintext twin after one epoch; epoch 2: the
   * weights the MP fetches */
  hetee_refine_weights w1, we;
  assert_int_equal(hetee_refine_weights_copy(&w0, &w1), 0);
  hetee_refine_plain tw;
  assert_int_equal(hetee_refine_plain_init(&tw, &p, &w1), 0);
  assert_int_equal(hetee_refine_plain_run(&tw, x, y, COUNT, 1), 0);
  hetee_refine_plain_clear(&tw);
  open_report(&v, vc.sealed[0], vc.len[0], &rep);
  check_report(&rep, &p, &w1, vx, vy, vcount, digest, 5);
  open_report(&v, vc.sealed[1], vc.len[1], &rep); /* (the session opens in order) */
  assert_int_equal(hetee_refine_weights_copy(&w0, &we), 0);
  fetch_all(&v, t, s, &p, &we);
  check_report(&rep, &p, &we, vx, vy, vcount, digest, 10);
  /* a set the host encrypted itself (it has the public key) has no MP
   * witness, or one signed by someone else (here the DP): refused */
  hetee_refine_valset *forged = NULL;
  assert_int_equal(hetee_refine_valset_encrypt(v.ctx, v.pk, &p, vx, vy, vcount, &forged), 0);
  assert_int_equal(hetee_refine_validate(s, t, forged, 1, &sealed, &slen), HETEE_ERR_AUTH);
  hetee_refine_valset_free(forged);
  forged = val_set(&v, &p, vx, vy, vcount, v.dp);
  assert_int_equal(hetee_refine_validate(s, t, forged, 1, &sealed, &slen), HETEE_ERR_AUTH);
  hetee_refine_valset_free(forged);
  /* the job still reports on the MP's set */
  assert_int_equal(hetee_refine_validate(s, t, vs, 1, &sealed, &slen), 0);
  open_report(&v, sealed, slen, &rep);
  check_report(&rep, &p, &we, vx, vy, vcount, digest, 10);
  free(sealed);
  /* the host runs the pass with other weights (the MP's initial ones):
   * the check of the trained layers' forward products stops the job */
  hetee_refine_state *s0 = NULL;
  assert_int_equal(hetee_refine_state_encrypt(v.ctx, v.pk, &p, &w0, &s0), 0);
  rc = hetee_refine_validate(s0, t, vs, 1, &sealed, &slen);
  fprintf(stderr, "validation with other weights: %s\n", hetee_last_error());
  assert_int_equal(rc, HETEE_ERR_INTEGRITY);
  assert_int_equal(hetee_refine_validate(s, t, vs, 1, &sealed, &slen), HETEE_ERR_INTEGRITY);
  hetee_refine_state_free(s0);
  for (int k = 0; k < EPOCHS; k++) free(vc.sealed[k]);
  hetee_refine_weights_clear(&w1);
  hetee_refine_weights_clear(&we);
  hetee_refine_weights_clear(&w0);
  hetee_refine_valset_free(vs);
  hetee_refine_trusted_free(t);
  hetee_refine_state_free(s);
  hetee_client_session_free(sdp);
  free(x);
  free(y);
  free(vx);
  free(vy);
  env_down(&v);
}

/* A raw REFINE_VWITNESS of chunk/nchunks for samples x[0..count) signed by
 * signer (what a host could replay or forge); the enclave's status. */
static int raw_vwitness(env *v, hetee_refine_trusted *t, const hetee_refine_plan *p, const float *x, uint32_t count,
                        uint32_t chunk, uint32_t nchunks, const hetee_party_key *signer) {
  size_t k = (size_t)p->L[0].k, plen = REFINE_WIT_HDR + 4 * (size_t)count * k, slen = REFINE_WIT_SEALED_LEN(count, k);
  uint8_t *plain = calloc(1, plen), *sealed = malloc(slen), *q = plain;
  assert_non_null(plain);
  assert_non_null(sealed);
  memcpy(q, REFINE_VWIT_TAG, sizeof REFINE_VWIT_TAG);
  q += sizeof REFINE_VWIT_TAG;
  hetee_le32(q, MODEL);
  hetee_le64(q + 4, chunk);
  hetee_le32(q + 12, count);
  hetee_le32(q + 16, (uint32_t)k);
  memcpy(plain + REFINE_WIT_HDR, x, 4 * (size_t)count * k); /* little-endian host */
  assert_int_equal(crypto_box_seal(sealed, plain, plen, g_rel), 0);
  uint8_t *spec = NULL, sd[32], spk[32], am[REFINE_VAUTH_LEN], sig[64];
  size_t speclen = 0;
  assert_int_equal(hetee_refine_spec_encode(p, &spec, &speclen), 0);
  crypto_hash_sha256(sd, spec, speclen);
  hetee_party_key_public(signer, spk);
  refine_vauth_bytes(MODEL, sd, spk, chunk, nchunks, count, sealed, slen, am);
  assert_int_equal(hetee_party_key_sign(signer, am, sizeof am, sig), 0);
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u32(&w, refine_host_job_id(t));
  hetee_wbuf_u32(&w, count);
  hetee_wbuf_u32(&w, chunk);
  hetee_wbuf_u32(&w, nchunks);
  hetee_wbuf_put(&w, spk, 32);
  hetee_wbuf_put(&w, sig, 64);
  hetee_wbuf_blob(&w, sealed, slen);
  uint8_t *r = NULL;
  size_t rlen = 0;
  int rc = hetee_host_call(v->e, HETEE_MSG_REFINE_VWITNESS, w.p, w.len, &r, &rlen);
  free(r);
  hetee_wbuf_free_public(&w);
  free(spec);
  free(plain);
  free(sealed);
  return rc;
}

/* Layer 0 of the validation pass (docs/refine.md "Validation set"): with
 * layers 0 and 1 frozen, the pass's layer-0 products are checked against
 * the MP's witness of each chunk. An honest report equals plaintext; a set
 * without witnesses, signed by the DP, a replayed or another chunk's
 * witness: HETEE_ERR_AUTH; a host that moves layer 0's output (its own
 * encryption of a shifted bias): HETEE_ERR_INTEGRITY, the job stops. */
static void test_validation_layer0(void **state) {
  (void)state;
  env v;
  env_up(&v);
  hetee_refine_weights w0, wm;
  rt_weights(&w0, 3, dims, acts);
  float *vx, *vy;
  const uint32_t vcount = 12; /* chunks of 8 and 4 */
  rt_data(dims[0], dims[3], vcount, &vx, &vy);
  hetee_refine_config c1 = cfg;
  c1.train_layers = 1;
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &c1, 8192, &p), 0);
  assert_int_equal(p.first_train, 2);
  hetee_refine_valset *vs = val_set(&v, &p, vx, vy, vcount, v.mp);
  uint8_t digest[32];
  assert_int_equal(hetee_refine_valset_labels_digest(vs, digest), 0);
  hetee_refine_state *s = NULL, *sm = NULL;
  hetee_refine_trusted *t = NULL;
  assert_int_equal(hetee_refine_state_encrypt(v.ctx, v.pk, &p, &w0, &s), 0);
  assert_int_equal(open_job(&v, &p, s, &t), 0);
  uint8_t *sealed = NULL;
  size_t slen = 0;
  int rc = hetee_refine_validate(s, t, vs, 1, &sealed, &slen);
  if (rc) fprintf(stderr, "validate: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  hetee_refine_val_report rep;
  open_report(&v, sealed, slen, &rep);
  check_report(&rep, &p, &w0, vx, vy, vcount, digest, 0);
  free(sealed);
  /* refusals, before anything is decrypted */
  hetee_refine_valset *bad = NULL;
  assert_int_equal(hetee_refine_valset_encrypt(v.ctx, v.pk, &p, vx, vy, vcount, &bad), 0);
  assert_int_equal(hetee_refine_validate(s, t, bad, 1, &sealed, &slen), HETEE_ERR_AUTH);
  fprintf(stderr, "no witness: %s\n", hetee_last_error());
  hetee_refine_valset_free(bad);
  bad = val_set(&v, &p, vx, vy, vcount, v.dp);
  assert_int_equal(hetee_refine_validate(s, t, bad, 1, &sealed, &slen), HETEE_ERR_AUTH);
  fprintf(stderr, "signed by the DP: %s\n", hetee_last_error());
  hetee_refine_valset_free(bad);
  assert_int_equal(raw_vwitness(&v, t, &p, vx + 8 * dims[0], 4, 1, 2, v.mp), HETEE_ERR_AUTH); /* chunk 1 first */
  fprintf(stderr, "another chunk's witness: %s\n", hetee_last_error());
  assert_int_equal(raw_vwitness(&v, t, &p, vx, 8, 0, 2, v.mp), 0);
  assert_int_equal(raw_vwitness(&v, t, &p, vx, 8, 0, 2, v.mp), HETEE_ERR_AUTH); /* replayed */
  fprintf(stderr, "replayed witness: %s\n", hetee_last_error());
  assert_int_equal(raw_vwitness(&v, t, &p, vx + 8 * dims[0], 4, 1, 3, v.mp), HETEE_ERR_AUTH); /* another pass size */
  /* chunk 1's own witness, but chunk 0 never went through its loss */
  assert_int_equal(raw_vwitness(&v, t, &p, vx + 8 * dims[0], 4, 1, 2, v.mp), HETEE_ERR_STATE);
  fprintf(stderr, "chunk 0 skipped: %s\n", hetee_last_error());
  { /* the pass is abandoned (VREPORT discard) */
    uint8_t req[8], *r = NULL;
    size_t rlen = 0;
    hetee_le32(req, refine_host_job_id(t));
    hetee_le32(req + 4, 1);
    assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_VREPORT, req, sizeof req, &r, &rlen), 0);
    free(r);
  }
  assert_int_equal(hetee_refine_validate(s, t, vs, 1, &sealed, &slen), 0); /* honest again */
  open_report(&v, sealed, slen, &rep);
  check_report(&rep, &p, &w0, vx, vy, vcount, digest, 0);
  free(sealed);
  /* the host moves layer 0's output: it runs the pass with its own
   * encryption of layer 0's bias shifted by 0.25 at one output */
  assert_int_equal(hetee_refine_weights_copy(&w0, &wm), 0);
  wm.b[0][3] += 0.25f;
  assert_int_equal(hetee_refine_state_encrypt(v.ctx, v.pk, &p, &wm, &sm), 0);
  rc = hetee_refine_validate(sm, t, vs, 1, &sealed, &slen);
  fprintf(stderr, "layer 0's output moved: %s\n", hetee_last_error());
  assert_int_equal(rc, HETEE_ERR_INTEGRITY);
  assert_int_equal(hetee_refine_validate(s, t, vs, 1, &sealed, &slen), HETEE_ERR_INTEGRITY); /* stopped */
  hetee_refine_state_free(sm);
  hetee_refine_weights_clear(&wm);
  hetee_refine_weights_clear(&w0);
  hetee_refine_valset_free(vs);
  hetee_refine_trusted_free(t);
  hetee_refine_state_free(s);
  free(vx);
  free(vy);
  env_down(&v);
}

/* Frozen layers across a resume: the sealed state carries their digests,
 * the resumed job asks for them again (REFINE_FROZEN) and checks them; the
 * run (last layer trains, layers 0 and 1 frozen, killed mid-epoch by a
 * close) ends at plaintext SGD's weights. */
static void test_frozen_resume(void **state) {
  (void)state;
  env v;
  env_up(&v);
  hetee_refine_weights w0, wp, we;
  rt_weights(&w0, 3, dims, acts);
  float *x, *y;
  rt_data(dims[0], dims[3], COUNT, &x, &y);
  hetee_refine_config c1 = cfg;
  c1.train_layers = 1;
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &c1, 8192, &p), 0);
  assert_int_equal(p.first_train, 2);
  hetee_refine_state *s = NULL, *s2 = NULL;
  hetee_refine_trusted *t = NULL, *t2 = NULL;
  assert_int_equal(hetee_refine_state_encrypt(v.ctx, v.pk, &p, &w0, &s), 0);
  assert_int_equal(open_job(&v, &p, s, &t), 0);
  hetee_refine_run_options o = run_opts(v.ck, 3);
  o.epochs = 1;
  assert_int_equal(hetee_refine_run(s, t, v.pk, x, y, COUNT, &o, NULL, NULL), 0);
  assert_int_equal(hetee_refine_checkpoint_write_sealed(s, t, v.ck), 0);
  hetee_refine_trusted_free(t); /* the job closes */
  hetee_refine_state_free(s);
  int rc = hetee_host_refine_resume(v.e, v.ctx, &p, v.ck, &s2, &t2);
  if (rc) fprintf(stderr, "resume: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  o = run_opts(v.ck, 0);
  o.epochs = 1;
  rc = hetee_refine_run(s2, t2, v.pk, x, y, COUNT, &o, NULL, NULL);
  if (rc) fprintf(stderr, "resumed run: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  /* both frozen layers were loaded by the first job and again by the resumed one */
  hetee_enclave_op_stats es[32];
  size_t nes = 0;
  uint64_t nfrozen = 0;
  assert_int_equal(hetee_host_stats(v.e, es, 32, &nes), 0);
  for (size_t i = 0; i < nes; i++)
    if (es[i].type == HETEE_MSG_REFINE_FROZEN) nfrozen = es[i].count;
  assert_int_equal(nfrozen, 8); /* 2 layers x (weights, bias) x 2 jobs */
  uint8_t *sealed = NULL, *plain = NULL;
  size_t sl = 0, pl = 0;
  assert_int_equal(hetee_refine_weights_copy(&w0, &we), 0);
  assert_int_equal(hetee_host_refine_fetch(t2, s2, 2, &sealed, &sl), 0);
  assert_int_equal(hetee_client_session_open(v.smp, sealed, sl, &plain, &pl), 0);
  assert_int_equal(hetee_refine_fetch_parse(plain, pl, MODEL, &we), 0);
  free(sealed);
  free(plain);
  assert_int_equal(hetee_refine_weights_copy(&w0, &wp), 0);
  hetee_refine_plain tw;
  assert_int_equal(hetee_refine_plain_init(&tw, &p, &wp), 0);
  assert_int_equal(hetee_refine_plain_run(&tw, x, y, COUNT, 1), 0);
  hetee_refine_plain_clear(&tw);
  double d = hetee_refine_weights_maxdiff(&we, &wp, 0), moved = hetee_refine_weights_maxdiff(&w0, &wp, 0);
  fprintf(stderr, "frozen layers across a resume: vs plaintext %.3g (moved %.3g)\n", d, moved);
  assert_true(moved > 1e-2);
  assert_true(d < 1e-4);
  hetee_refine_trusted_free(t2);
  hetee_refine_state_free(s2);
  hetee_refine_weights_clear(&w0);
  hetee_refine_weights_clear(&wp);
  hetee_refine_weights_clear(&we);
  free(x);
  free(y);
  env_down(&v);
}

/* REFINE_INIT across a resume (docs/refine.md "What is checked"): a job
 * sealed before its first step holds no weights, so the resumed job
 * refuses a step (HETEE_ERR_STATE) until the host sends every trained
 * layer's authorized weights (REFINE_INIT; the digests are in the sealed
 * state), which its first step does; a state sealed after updates keeps the
 * weights and needs none. Both runs end at plaintext SGD's weights. */
static uint64_t init_count(env *v) {
  hetee_enclave_op_stats es[64];
  size_t nes = 0;
  uint64_t n = 0;
  assert_int_equal(hetee_host_stats(v->e, es, 64, &nes), 0);
  for (size_t i = 0; i < nes; i++)
    if (es[i].type == HETEE_MSG_REFINE_INIT) n = es[i].count;
  return n;
}

static void test_init_resume(void **state) {
  (void)state;
  env v;
  env_up(&v);
  hetee_refine_weights w0, wp, we;
  rt_weights(&w0, 3, dims, acts);
  float *x, *y;
  rt_data(dims[0], dims[3], COUNT, &x, &y);
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg, 8192, &p), 0);
  assert_int_equal(p.first_train, 0);
  hetee_refine_state *s = NULL;
  hetee_refine_trusted *t = NULL;
  assert_int_equal(hetee_refine_state_encrypt(v.ctx, v.pk, &p, &w0, &s), 0);
  assert_int_equal(open_job(&v, &p, s, &t), 0);
  assert_int_equal(hetee_refine_checkpoint_write_sealed(s, t, v.ck), 0); /* before any step: no weights held */
  hetee_refine_trusted_free(t);
  hetee_refine_state_free(s);
  uint64_t n0 = init_count(&v);
  assert_int_equal(n0, 0);
  int rc = hetee_host_refine_resume(v.e, v.ctx, &p, v.ck, &s, &t);
  if (rc) fprintf(stderr, "resume: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  /* a step before REFINE_INIT (raw FORWARD 0): refused before its list */
  uint8_t req[12];
  hetee_le32(req, refine_host_job_id(t));
  hetee_le32(req + 4, 0);
  hetee_le32(req + 8, cfg.batch);
  uint8_t *r = NULL;
  size_t rlen = 0;
  assert_int_equal(hetee_host_call(v.e, HETEE_MSG_REFINE_FORWARD, req, sizeof req, &r, &rlen), HETEE_ERR_STATE);
  fprintf(stderr, "a resumed job without weights, before INIT: %s\n", hetee_last_error());
  assert_non_null(strstr(hetee_last_error(), "REFINE_INIT"));
  hetee_refine_run_options o = run_opts(v.ck, 0);
  o.epochs = 1;
  rc = hetee_refine_run(s, t, v.pk, x, y, COUNT, &o, NULL, NULL);
  if (rc) fprintf(stderr, "resumed run: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  assert_int_equal(init_count(&v), 3); /* one per trained layer */
  assert_int_equal(hetee_refine_checkpoint_write_sealed(s, t, v.ck), 0); /* now with the kept weights */
  hetee_refine_trusted_free(t);
  hetee_refine_state_free(s);
  rc = hetee_host_refine_resume(v.e, v.ctx, &p, v.ck, &s, &t);
  assert_int_equal(rc, 0);
  o.epochs = 2;
  rc = hetee_refine_run(s, t, v.pk, x, y, COUNT, &o, NULL, NULL);
  if (rc) fprintf(stderr, "second resumed run: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  assert_int_equal(init_count(&v), 3); /* the state kept them: no INIT */
  assert_int_equal(hetee_refine_weights_copy(&w0, &we), 0);
  fetch_all(&v, t, s, &p, &we);
  assert_int_equal(hetee_refine_weights_copy(&w0, &wp), 0);
  hetee_refine_plain tw;
  assert_int_equal(hetee_refine_plain_init(&tw, &p, &wp), 0);
  assert_int_equal(hetee_refine_plain_run(&tw, x, y, COUNT, 2), 0);
  hetee_refine_plain_clear(&tw);
  double d = hetee_refine_weights_maxdiff(&we, &wp, 0), moved = hetee_refine_weights_maxdiff(&w0, &wp, 0);
  fprintf(stderr, "INIT after a resume: vs plaintext %.3g (moved %.3g)\n", d, moved);
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

/* The job's contributors across a resume (docs/refine.md "Who may
 * contribute"): the MP's authorization names one DP the model's policy
 * does not; the sealed state carries it, so the resumed job (frozen
 * layers too) trains on that DP's batches only and refuses the model's
 * own DP, whose batch the host forwards. */
static void test_contributors_resume(void **state) {
  (void)state;
  env v;
  env_up(&v);
  hetee_refine_weights w0, wp, we;
  rt_weights(&w0, 3, dims, acts);
  float *x, *y;
  rt_data(dims[0], dims[3], COUNT, &x, &y);
  hetee_refine_config c1 = cfg;
  c1.train_layers = 1;
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &c1, 8192, &p), 0);
  hetee_refine_state *s = NULL, *s2 = NULL;
  hetee_refine_trusted *t = NULL, *t2 = NULL;
  assert_int_equal(hetee_refine_state_encrypt(v.ctx, v.pk, &p, &w0, &s), 0);
  hetee_party_key *cdp;
  uint8_t cpk[1][32];
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_DP, &cdp), 0);
  hetee_party_key_public(cdp, cpk[0]);
  uint8_t *msg, *auth, sid[16];
  size_t mlen, alen;
  assert_int_equal(hetee_refine_auth_msg_dps(MODEL, s, (const uint8_t(*)[32])cpk, 1, &msg, &mlen), 0);
  assert_int_equal(hetee_client_session_seal(v.smp, msg, mlen, &auth, &alen), 0);
  free(msg);
  hetee_client_session_id(v.smp, sid);
  assert_int_equal(hetee_host_refine_open(v.e, v.ctx, &p, MODEL, sid, auth, alen, &t), 0);
  free(auth);
  hetee_refine_run_options o = run_opts(v.ck, 3);
  o.epochs = 1;
  o.dp_pk = cpk[0];
  o.dp_sign_arg = cdp;
  int rc = hetee_refine_run(s, t, v.pk, x, y, COUNT, &o, NULL, NULL);
  if (rc) fprintf(stderr, "run: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  assert_int_equal(hetee_refine_checkpoint_write_sealed(s, t, v.ck), 0);
  hetee_refine_trusted_free(t); /* the job closes */
  hetee_refine_state_free(s);
  rc = hetee_host_refine_resume(v.e, v.ctx, &p, v.ck, &s2, &t2);
  if (rc) fprintf(stderr, "resume: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  o = run_opts(v.ck, 0);
  o.epochs = 1;
  o.dp_pk = cpk[0];
  o.dp_sign_arg = cdp;
  rc = hetee_refine_run(s2, t2, v.pk, x, y, COUNT, &o, NULL, NULL);
  if (rc) fprintf(stderr, "resumed run: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  /* the model's DP: refused by the resumed job */
  uint32_t idx[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  hetee_refine_batch *b = NULL;
  uint8_t *am, sig[64];
  size_t al;
  assert_int_equal(hetee_refine_batch_encrypt_witness(v.ctx, v.pk, &p, x, y, idx, 8, MODEL, g_rel, 99, &b), 0);
  assert_int_equal(hetee_refine_batch_auth_msg(b, g_dpk, &am, &al), 0);
  assert_int_equal(hetee_party_key_sign(v.dp, am, al, sig), 0);
  free(am);
  assert_int_equal(hetee_refine_batch_set_auth(b, g_dpk, sig), 0);
  assert_int_equal(hetee_refine_step(s2, t2, b, 1, NULL), HETEE_ERR_AUTH);
  fprintf(stderr, "resumed job, the model's DP: %s\n", hetee_last_error());
  assert_non_null(strstr(hetee_last_error(), "contributors"));
  hetee_refine_batch_free(b);
  /* the epoch trained on the contributor's samples: plaintext SGD's weights */
  uint8_t *sealed = NULL, *plain = NULL;
  size_t sl = 0, pl = 0;
  assert_int_equal(hetee_refine_weights_copy(&w0, &we), 0);
  assert_int_equal(hetee_host_refine_fetch(t2, s2, 2, &sealed, &sl), 0);
  assert_int_equal(hetee_client_session_open(v.smp, sealed, sl, &plain, &pl), 0);
  assert_int_equal(hetee_refine_fetch_parse(plain, pl, MODEL, &we), 0);
  free(sealed);
  free(plain);
  assert_int_equal(hetee_refine_weights_copy(&w0, &wp), 0);
  hetee_refine_plain tw;
  assert_int_equal(hetee_refine_plain_init(&tw, &p, &wp), 0);
  assert_int_equal(hetee_refine_plain_run(&tw, x, y, COUNT, 1), 0);
  hetee_refine_plain_clear(&tw);
  double d = hetee_refine_weights_maxdiff(&we, &wp, 0), moved = hetee_refine_weights_maxdiff(&w0, &wp, 0);
  fprintf(stderr, "contributors across a resume: vs plaintext %.3g (moved %.3g)\n", d, moved);
  assert_true(moved > 1e-2);
  assert_true(d < 1e-4);
  hetee_refine_trusted_free(t2);
  hetee_refine_state_free(s2);
  hetee_party_key_free(cdp);
  hetee_refine_weights_clear(&w0);
  hetee_refine_weights_clear(&wp);
  hetee_refine_weights_clear(&we);
  free(x);
  free(y);
  env_down(&v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_enclave_killed),
      cmocka_unit_test(test_host_killed),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_validation),
      cmocka_unit_test(test_validation_layer0),
      cmocka_unit_test(test_frozen_resume),
      cmocka_unit_test(test_contributors_resume),
      cmocka_unit_test(test_init_resume),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

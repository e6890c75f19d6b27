/*
 * test_integrity.c — issue 9: the enclave checks the host's linear algebra
 * and releases only what the registered model computed on the data
 * provider's own input. The three parties run in this process
 * (src/cli/local_parties.c) against the real enclave process; a host test
 * double (engine_tamper_hook in src/host/engine_jobs.h) changes the
 * host's ciphertexts between its kernel and the enclave:
 *   (a) a weight ciphertext (times an encrypted 1, to have the output's
 *       degree, level and scale) substituted for a layer output,
 *   (b) a small error (0.5) added to one output value,
 *   (c) a previous job's layer outputs replayed, and a previous job's whole
 *       input run again,
 *   (d) two images (input groups) swapped in the batch,
 *   (e) another party's ciphertexts (an input no DP authorized) used by the
 *       kernel, and presented at the job start,
 *   (f) a weight ciphertext (its scale field rewritten) as the input, and
 *       another job's whole input in place of this job's,
 * plus the legacy RELEASE of a registered model, a model whose bytes are
 * not those registered, and a registration by someone else than the
 * owner. Each is refused, no sealed result reaches the data provider, and
 * failed checks are counted in the status the MP and the DP read. Honest
 * runs never trip the check (HETEE_TEST_QUICK: fewer images).
 * Jobs start from the data provider's sealed input witness (its values,
 * whose digest it authorized; hetee_engine_run_witnessed), as `hetee run`
 * does; test_ciphertext_path repeats the honest run and the job-start
 * attacks on the ciphertext-digest form the service path still uses, and
 * test_witness_refused shows that a witness the DP did not authorize, one
 * truncated or garbled, one made for another model and one holding a
 * non-finite value are refused with nothing released; test_signed_witness
 * runs witnesses under the service path's signed authorization (results
 * sealed to the DP's identity).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "cli/local_parties.h"
#include "enclave/wire/proto.h"
#include "hemat/engine_internal.h"
#include "hemat/engine_bind.h"
#include "host/engine_jobs.h"

#define MODEL_ID 9
#define MB 16

typedef struct fx {
  local_parties t;
  hetee_nn_model *m;
  hetee_engine_plan *plan;
  hetee_engine_model *host_model;
  size_t insz;
  uint8_t release_pk[32];
} fx;

static fx F;

/* Jobs start from witnesses (1) or from the ciphertexts' digests (0). */
static int use_wit = 1;

/* The witnesses the DP made for each input the tests hold. */
#define MAX_INPUTS 16
static struct {
  hetee_engine_input *in;
  hetee_engine_witnesses w;
} W[MAX_INPUTS];

static hetee_engine_witnesses *wit_of(const hetee_engine_input *in) {
  for (int i = 0; i < MAX_INPUTS; i++)
    if (W[i].in && W[i].in == in) return &W[i].w;
  return NULL;
}

static void in_free(hetee_engine_input *in) {
  for (int i = 0; i < MAX_INPUTS; i++)
    if (W[i].in && W[i].in == in) {
      hetee_engine_witnesses_clear(&W[i].w);
      W[i].in = NULL;
    }
  hetee_engine_input_free(in);
}

/* The DP's session authorization of arbitrary witness digests. */
static int authorize_witnesses(const hetee_engine_witnesses *w, uint32_t model) {
  uint8_t *m = NULL;
  size_t ml = 0;
  assert_int_equal(hetee_client_msg_job_auth_witness(model, w, &m, &ml), 0);
  return local_parties_send(&F.t, F.t.dps, m, ml, NULL, NULL);
}

static void rnd_images(float *x, size_t n, unsigned seed) {
  srand(seed);
  for (size_t i = 0; i < n; i++) x[i] = (float)rand() / (float)RAND_MAX;
}

static char path_buf[512];
static const char *model_path(const char *name) {
  const char *src = getenv("HETEE_SOURCE_DIR");
  snprintf(path_buf, sizeof path_buf, "%s/models/%s", src ? src : ".", name);
  return path_buf;
}

static void status(hetee_client_session *s, hetee_integrity_status *st) {
  uint8_t *m = NULL, *r = NULL;
  size_t ml = 0, rl = 0;
  assert_int_equal(hetee_client_msg_integrity_status(MODEL_ID, &m, &ml), 0);
  assert_int_equal(local_parties_send(&F.t, s, m, ml, &r, &rl), 0);
  assert_int_equal(hetee_client_integrity_status_parse(r, rl, st), 0);
  free(r);
}

/* DP: encrypts n images and seals their witnesses, authorizes them (unless
 * !auth: the witnesses' digests, or the ciphertexts' when !use_wit), host
 * copy loaded. */
static hetee_engine_input *dp_input(size_t n, unsigned seed, int auth) {
  float *x = malloc(n * F.insz * sizeof *x);
  rnd_images(x, n * F.insz, seed);
  hetee_engine_input *dp = NULL, *host = NULL;
  assert_int_equal(hetee_engine_input_encrypt(F.t.ctx, F.t.pk, F.plan, x, n, &dp), 0);
  hetee_engine_witnesses wit;
  assert_int_equal(hetee_engine_witnesses_make(F.plan, MODEL_ID, F.release_pk, x, n, &wit), 0);
  free(x);
  if (auth) {
    uint8_t *m = NULL;
    size_t ml = 0;
    if (use_wit)
      assert_int_equal(hetee_client_msg_job_auth_witness(MODEL_ID, &wit, &m, &ml), 0);
    else
      assert_int_equal(hetee_client_msg_job_auth(MODEL_ID, dp, F.plan, &m, &ml), 0);
    int rc = local_parties_send(&F.t, F.t.dps, m, ml, NULL, NULL);
    if (rc) printf("  auth: %s\n", hetee_last_error());
    assert_int_equal(rc, 0);
  }
  uint8_t *b = NULL;
  size_t bl = 0;
  assert_int_equal(hetee_engine_input_save(dp, &b, &bl), 0);
  assert_int_equal(hetee_engine_input_load(F.t.ctx, F.plan, b, bl, &host), 0);
  free(b);
  hetee_engine_input_free(dp);
  /* the witnesses travel to the host as bytes, loaded as untrusted */
  hetee_engine_witnesses hw;
  assert_int_equal(hetee_engine_witnesses_save(&wit, MODEL_ID, &b, &bl), 0);
  assert_int_equal(hetee_engine_witnesses_load(F.plan, MODEL_ID, b, bl, &hw), 0);
  free(b);
  assert_int_equal(hw.n, wit.n);
  for (size_t k = 0; k < wit.n; k++) assert_memory_equal(hw.digest[k], wit.digest[k], 32);
  hetee_engine_witnesses_clear(&wit);
  wit = hw;
  int slot = 0;
  while (slot < MAX_INPUTS && W[slot].in) slot++;
  assert_true(slot < MAX_INPUTS);
  W[slot].in = host;
  W[slot].w = wit;
  return host;
}

static int run_threads(hetee_engine_input *in, hetee_engine_results *out, int threads, hetee_engine_stats *st) {
  const hetee_engine_witnesses *w = wit_of(in);
  if (use_wit) {
    assert_non_null(w);
    return hetee_engine_run_witnessed(F.t.e, F.host_model, in, w, MODEL_ID, F.t.dp_session, threads, out, st);
  }
  return hetee_engine_run_bound(F.t.e, F.host_model, in, MODEL_ID, F.t.dp_session, threads, out, st);
}

static int run(hetee_engine_input *in, hetee_engine_results *out) { return run_threads(in, out, 1, NULL); }

/* A refused run: the expected status, nothing sealed for anyone. */
static void expect_refused(hetee_engine_input *in, int want) {
  hetee_engine_results out;
  memset(&out, 0xab, sizeof out);
  int rc = run(in, &out);
  printf("  refused: %s (%s)\n", hetee_strerror(rc), hetee_last_error());
  assert_int_equal(rc, want);
  assert_int_equal(out.n, 0);
  assert_null(out.sealed);
}

static int setup(void **state) {
  (void)state;
  memset(&F, 0, sizeof F);
  if (local_parties_start(&F.t, NULL)) {
    fprintf(stderr, "start: %s\n", hetee_last_error());
    return -1;
  }
  if (hetee_nn_model_load(model_path("e2dm.onnx"), &F.m)) return -1;
  hetee_engine_plan_options o = {0};
  o.micro_batch = MB;
  if (hetee_engine_plan_build(F.m, &o, &F.plan)) return -1;
  F.insz = hetee_engine_plan_input_size(F.plan);
  if (local_parties_policy(&F.t, MODEL_ID, HETEE_RELEASE_ARGMAX, 16)) return -1;
  /* the DP learns the enclave's release key through its session */
  uint8_t *km = NULL, *kr = NULL;
  size_t kml = 0, krl = 0;
  if (hetee_client_msg_release_key(&km, &kml) || local_parties_send(&F.t, F.t.dps, km, kml, &kr, &krl) ||
      hetee_client_release_key_parse(kr, krl, F.release_pk))
    return -1;
  free(kr);
  /* MP: encrypt, register the digest; host: load the bytes, bind */
  hetee_engine_model *mp = NULL;
  uint8_t *b = NULL, *reg = NULL;
  size_t bl = 0, rl = 0;
  if (hetee_engine_model_encrypt(F.t.ctx, F.t.pk, F.m, F.plan, &mp) || hetee_engine_model_save(mp, &b, &bl) ||
      hetee_client_msg_model_register(MODEL_ID, mp, &reg, &rl) || local_parties_send(&F.t, F.t.mps, reg, rl, NULL, NULL))
    return -1;
  hetee_engine_model_free(mp);
  if (hetee_engine_model_load(F.t.ctx, b, bl, &F.host_model)) return -1;
  free(b);
  /* a model whose bytes are not those registered is refused */
  hetee_ckks_ciphertext *save = F.host_model->w[1][0];
  F.host_model->w[1][0] = F.host_model->w[1][1];
  int rc = hetee_engine_model_bind(F.t.e, F.host_model, MODEL_ID);
  F.host_model->w[1][0] = save;
  if (rc != HETEE_ERR_AUTH) {
    fprintf(stderr, "substituted model bytes: %d %s\n", rc, hetee_last_error());
    return -1;
  }
  if (hetee_engine_model_bind(F.t.e, F.host_model, MODEL_ID)) {
    fprintf(stderr, "bind: %s\n", hetee_last_error());
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  engine_tamper_hook = NULL;
  hetee_engine_model_free(F.host_model);
  hetee_engine_plan_free(F.plan);
  hetee_nn_model_free(F.m);
  local_parties_stop(&F.t);
  return 0;
}

/* Honest runs: every result opens, predictions equal the plaintext
 * engine's, no check fails. */
static void test_honest(void **state) {
  (void)state;
  size_t n = getenv("HETEE_TEST_QUICK") ? 2 * MB + 3 : 8 * MB + 5;
  float *x = malloc(n * F.insz * sizeof *x);
  rnd_images(x, n * F.insz, 1);
  hetee_integrity_status before, after;
  status(F.t.mps, &before);
  hetee_engine_input *in = dp_input(n, 1, 1);
  hetee_engine_results out;
  hetee_engine_stats st;
  int rc = run_threads(in, &out, 2, &st);
  if (rc) printf("  honest run: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  assert_int_equal(out.n, n);
  float *y = malloc(n * 10 * sizeof *y);
  assert_int_equal(hetee_nn_forward(F.m, x, n, y), 0);
  size_t agree = 0;
  for (size_t i = 0; i < n; i++) {
    hetee_release_result r;
    assert_int_equal(hetee_client_release_open(F.t.dps, out.sealed[i], out.lens[i], &r), 0);
    assert_int_equal(r.kind, HETEE_RELEASE_ARGMAX);
    size_t best = 0;
    for (size_t j = 1; j < 10; j++)
      if (y[i * 10 + j] > y[i * 10 + best]) best = j;
    agree += r.indices[0] == best;
    hetee_release_result_clear(&r);
  }
  printf("  honest: %zu images, %zu agree with plaintext, integrity %.4f s of %.4f s\n", n, agree, st.integrity_s,
         st.total_s);
  assert_true(agree >= n - 1); /* random inputs: a near tie may round either way */
  assert_true(st.integrity_s > 0);
  status(F.t.mps, &after);
  assert_int_equal(after.failures, before.failures);
  assert_int_equal(after.checks - before.checks, (uint64_t)n * 2 * 3);
  assert_int_equal(after.jobs - before.jobs, (n + MB - 1) / MB);
  hetee_engine_results_clear(&out);
  in_free(in);
  free(x);
  free(y);
}

/* ------------------------------------------------------------ test double */
enum { T_WEIGHT = 1, T_DELTA, T_RECORD, T_REPLAY, T_SWAP, T_FOREIGN, T_WEIGHT_IN, T_FOREIGN_ALL };
static struct {
  int mode;
  size_t stage;
  hetee_ckks_ciphertext **saved;
  size_t nsaved;
  hetee_engine_input *foreign;
  hetee_ckks_ciphertext *wct;
} D;

static int tamper(void *arg, size_t mb, size_t stage, hetee_ckks_ciphertext **cts, size_t n, int pre) {
  (void)arg;
  (void)mb;
  const hetee_ckks_context *ctx = F.t.ctx;
  if (stage != D.stage) return 0;
  if (pre) {
    if (D.mode == T_SWAP) { /* images 0..7 and 8..15 exchange places */
      assert_true(n >= 2);
      hetee_ckks_ciphertext *t = cts[0];
      cts[0] = cts[1];
      cts[1] = t;
    }
    if (D.mode == T_FOREIGN) cts[0] = D.foreign->cts[0];
    if (D.mode == T_WEIGHT_IN) cts[0] = D.wct;
    if (D.mode == T_FOREIGN_ALL)
      for (size_t i = 0; i < n && i < D.foreign->ncts; i++) cts[i] = D.foreign->cts[i];
    return 0;
  }
  if (D.mode == T_WEIGHT) { /* w * Enc(1): the weight polynomial as a degree-2 output at 2^60 */
    size_t N = hetee_ckks_context_n(ctx);
    double *v = calloc(N, sizeof *v);
    v[0] = 1.0;
    hetee_ckks_plaintext *pt = NULL;
    hetee_ckks_ciphertext *one = NULL;
    assert_int_equal(hetee_ckks_plaintext_new(ctx, &pt), 0);
    assert_int_equal(hetee_ckks_ciphertext_new(ctx, &one), 0);
    assert_int_equal(hetee_ckks_encode_coeffs(ctx, v, N, HETEE_ENGINE_IN_SCALE, HETEE_ENGINE_LEVEL, pt), 0);
    assert_int_equal(hetee_ckks_encrypt_pk(ctx, F.t.pk, pt, one), 0);
    assert_int_equal(hetee_ckks_eval_mul(ctx, one, F.host_model->w[stage][0], cts[0]), 0);
    hetee_ckks_plaintext_free(pt);
    hetee_ckks_ciphertext_free(one);
    free(v);
  }
  if (D.mode == T_DELTA) { /* +0.5 on output (sample 0, channel 0, 0, 0) */
    size_t N = hetee_ckks_context_n(ctx);
    hetee_hemat_layout L;
    assert_int_equal(hetee_engine_plan_layout(F.plan, stage, MB, &L), 0);
    uint64_t pos = hetee_hemat_out_pos(&L, 0, 0, 0, 0);
    double *v = calloc(N, sizeof *v);
    v[pos % N] = 0.5;
    hetee_ckks_plaintext *pt = NULL;
    assert_int_equal(hetee_ckks_plaintext_new(ctx, &pt), 0);
    assert_int_equal(hetee_ckks_encode_coeffs(ctx, v, N, HETEE_ENGINE_OUT_SCALE, HETEE_ENGINE_LEVEL, pt), 0);
    assert_int_equal(hetee_ckks_eval_add_plain(ctx, cts[pos / N], pt, cts[pos / N]), 0);
    hetee_ckks_plaintext_free(pt);
    free(v);
  }
  if (D.mode == T_RECORD) {
    D.saved = calloc(n, sizeof *D.saved);
    D.nsaved = n;
    for (size_t i = 0; i < n; i++) {
      assert_int_equal(hetee_ckks_ciphertext_new(ctx, &D.saved[i]), 0);
      assert_int_equal(hetee_ckks_ciphertext_copy(cts[i], D.saved[i]), 0);
    }
  }
  if (D.mode == T_REPLAY)
    for (size_t i = 0; i < n && i < D.nsaved; i++) assert_int_equal(hetee_ckks_ciphertext_copy(D.saved[i], cts[i]), 0);
  return 0;
}

static void attack(int mode, size_t stage, int want, unsigned seed) {
  hetee_integrity_status before, after, dp;
  status(F.t.mps, &before);
  D.mode = mode;
  D.stage = stage;
  engine_tamper_hook = tamper;
  hetee_engine_input *in = dp_input(MB, seed, 1);
  expect_refused(in, want);
  engine_tamper_hook = NULL;
  in_free(in);
  status(F.t.mps, &after);
  status(F.t.dps, &dp);
  if (want == HETEE_ERR_INTEGRITY) {
    assert_int_equal(after.failures, before.failures + 1);
    assert_int_equal(after.last_failed_stage, (int32_t)stage);
    assert_int_equal(dp.failures, after.failures); /* the DP sees it too */
  }
  assert_int_equal(after.jobs, before.jobs);
}

static void test_a_weights_as_output(void **state) {
  (void)state;
  for (size_t s = 0; s < 3; s++) attack(T_WEIGHT, s, HETEE_ERR_INTEGRITY, 10 + (unsigned)s);
}

static void test_b_small_error(void **state) {
  (void)state;
  for (size_t s = 0; s < 3; s++) attack(T_DELTA, s, HETEE_ERR_INTEGRITY, 20 + (unsigned)s);
}

static void test_c_replay(void **state) {
  (void)state;
  /* record job A's stage-1 outputs (A runs honestly) */
  D.mode = T_RECORD;
  D.stage = 1;
  engine_tamper_hook = tamper;
  hetee_engine_input *a = dp_input(MB, 30, 1);
  hetee_engine_results out;
  assert_int_equal(run(a, &out), 0);
  for (size_t i = 0; i < out.n; i++) { /* the DP opens them (its session's counters) */
    hetee_release_result r;
    assert_int_equal(hetee_client_release_open(F.t.dps, out.sealed[i], out.lens[i], &r), 0);
    hetee_release_result_clear(&r);
  }
  hetee_engine_results_clear(&out);
  engine_tamper_hook = NULL;
  /* job B gets A's outputs at stage 1 */
  attack(T_REPLAY, 1, HETEE_ERR_INTEGRITY, 31);
  for (size_t i = 0; i < D.nsaved; i++) hetee_ckks_ciphertext_free(D.saved[i]);
  free(D.saved);
  D.saved = NULL;
  D.nsaved = 0;
  /* job A's input again: its authorization was used up */
  expect_refused(a, HETEE_ERR_AUTH);
  in_free(a);
}

static void test_d_swap_images(void **state) {
  (void)state;
  attack(T_SWAP, 0, HETEE_ERR_INTEGRITY, 40);
}

static void test_e_other_ciphertexts(void **state) {
  (void)state;
  /* another party's input, never authorized by this DP */
  D.foreign = dp_input(MB, 50, 0);
  attack(T_FOREIGN, 0, HETEE_ERR_INTEGRITY, 51);
  expect_refused(D.foreign, HETEE_ERR_AUTH); /* presented at the job start */
  in_free(D.foreign);
  D.foreign = NULL;
}

static void open_all(hetee_engine_results *out) {
  for (size_t i = 0; i < out->n; i++) { /* the DP opens them (its session's counters) */
    hetee_release_result r;
    assert_int_equal(hetee_client_release_open(F.t.dps, out->sealed[i], out->lens[i], &r), 0);
    hetee_release_result_clear(&r);
  }
  hetee_engine_results_clear(out);
}

/* The input the host feeds its stage-0 kernel is not the one the witness
 * holds: a weight ciphertext (scale field rewritten to the input's), or
 * another (already released) job's whole input. */
static void test_f_input_substituted(void **state) {
  (void)state;
  assert_int_equal(hetee_ckks_ciphertext_new(F.t.ctx, &D.wct), 0);
  assert_int_equal(hetee_ckks_ciphertext_copy(F.host_model->w[0][0], D.wct), 0);
  assert_int_equal(hetee_ckks_ciphertext_set_scale(D.wct, HETEE_ENGINE_IN_SCALE), 0);
  attack(T_WEIGHT_IN, 0, HETEE_ERR_INTEGRITY, 52);
  hetee_ckks_ciphertext_free(D.wct);
  D.wct = NULL;
  hetee_engine_input *a = dp_input(MB, 53, 1);
  hetee_engine_results out;
  assert_int_equal(run(a, &out), 0);
  open_all(&out);
  D.foreign = a;
  attack(T_FOREIGN_ALL, 0, HETEE_ERR_INTEGRITY, 54);
  D.foreign = NULL;
  in_free(a);
}

/* Input in's (one micro-batch) witness replaced by blob (taken), which the
 * DP authorizes as its own. */
static void dp_authorizes_blob(hetee_engine_input *in, uint8_t *blob, size_t len) {
  hetee_engine_witnesses *w = wit_of(in);
  assert_non_null(w);
  assert_int_equal(w->n, 1);
  free(w->blob[0]);
  w->blob[0] = blob;
  w->len[0] = len;
  assert_int_equal(hetee_engine_witness_digest(MODEL_ID, w->batch[0], blob, len, w->digest[0]), 0);
  assert_int_equal(authorize_witnesses(w, MODEL_ID), 0);
}

/* Witnesses that are not an authorized, well-formed witness of this model
 * are refused at the job start; nothing is released, no check is counted as
 * failed, and a refusal uses up nothing. */
static void test_witness_refused(void **state) {
  (void)state;
  hetee_integrity_status before, after;
  hetee_engine_witnesses o_unused;
  status(F.t.mps, &before);
  /* never authorized */
  hetee_engine_input *in = dp_input(MB, 110, 0);
  expect_refused(in, HETEE_ERR_AUTH);
  /* authorized, then presented truncated, or with one byte changed */
  hetee_engine_witnesses *w = wit_of(in);
  assert_int_equal(authorize_witnesses(w, MODEL_ID), 0);
  w->len[0]--;
  expect_refused(in, HETEE_ERR_SHAPE);
  w->len[0]++;
  w->blob[0][w->len[0] / 2] ^= 0x10; /* past the digest's head: the box does not open */
  expect_refused(in, HETEE_ERR_AUTH);
  w->blob[0][w->len[0] / 2] ^= 0x10;
  w->blob[0][3] ^= 0x10; /* the ephemeral key: not the authorized digest */
  expect_refused(in, HETEE_ERR_AUTH);
  w->blob[0][3] ^= 0x10;
  w->blob[0][40] ^= 0x10; /* the tag: not the authorized digest */
  expect_refused(in, HETEE_ERR_AUTH);
  w->blob[0][40] ^= 0x10;
  /* another model id: the digest covers it */
  hetee_engine_results out;
  assert_int_equal(hetee_engine_run_witnessed(F.t.e, F.host_model, in, w, MODEL_ID + 1, F.t.dp_session, 1, &out, NULL),
                   HETEE_ERR_NOT_FOUND);
  /* witness files that are not this model's well-formed witnesses */
  uint8_t *f = NULL;
  size_t fl = 0;
  assert_int_equal(hetee_engine_witnesses_save(w, MODEL_ID, &f, &fl), 0);
  assert_int_equal(hetee_engine_witnesses_load(F.plan, MODEL_ID + 1, f, fl, &o_unused), HETEE_ERR_FORMAT);
  assert_int_equal(hetee_engine_witnesses_load(F.plan, MODEL_ID, f, fl - 1, &o_unused), HETEE_ERR_FORMAT);
  for (size_t cut = 0; cut < 40; cut++)
    assert_int_not_equal(hetee_engine_witnesses_load(F.plan, MODEL_ID, f, cut, &o_unused), 0);
  f[4] = 2; /* version */
  assert_int_equal(hetee_engine_witnesses_load(F.plan, MODEL_ID, f, fl, &o_unused), HETEE_ERR_VERSION);
  f[4] = 1;
  f[16]++; /* the batch: the sealed size no longer matches */
  assert_int_equal(hetee_engine_witnesses_load(F.plan, MODEL_ID, f, fl, &o_unused), HETEE_ERR_FORMAT);
  free(f);
  /* the untouched witness still runs */
  assert_int_equal(run(in, &out), 0);
  open_all(&out);
  in_free(in);

  /* an authorization of the first digest form (the whole box hashed) is
   * still honoured */
  in = dp_input(MB, 113, 0);
  w = wit_of(in);
  hetee_witness_digest_v1(MODEL_ID, w->batch[0], w->blob[0], w->len[0], w->digest[0]);
  assert_int_equal(authorize_witnesses(w, MODEL_ID), 0);
  assert_int_equal(run(in, &out), 0);
  open_all(&out);
  in_free(in);

  /* bytes the DP authorized that are no witness sealed to this enclave */
  in = dp_input(MB, 111, 0);
  w = wit_of(in);
  uint8_t *g = malloc(w->len[0]);
  memcpy(g, w->blob[0], w->len[0]);
  g[w->len[0] - 1] ^= 1;
  dp_authorizes_blob(in, g, w->len[0]);
  expect_refused(in, HETEE_ERR_AUTH);
  in_free(in);

  /* a witness made for another model (its sealed header names it),
   * authorized for this one */
  in = dp_input(MB, 112, 0);
  float *x = malloc(MB * F.insz * sizeof *x);
  rnd_images(x, MB * F.insz, 112);
  hetee_engine_witnesses o;
  assert_int_equal(hetee_engine_witnesses_make(F.plan, MODEL_ID + 1, F.release_pk, x, MB, &o), 0);
  uint8_t *ob = o.blob[0];
  size_t ol = o.len[0];
  o.blob[0] = NULL;
  hetee_engine_witnesses_clear(&o);
  dp_authorizes_blob(in, ob, ol);
  expect_refused(in, HETEE_ERR_AUTH);
  in_free(in);

  /* non-finite values: the client refuses to seal them, the enclave refuses
   * a witness that holds one */
  x[5] = NAN;
  assert_int_equal(hetee_engine_witnesses_make(F.plan, MODEL_ID, F.release_pk, x, MB, &o), HETEE_ERR_INVALID_ARG);
  x[5] = 1e30f;
  assert_int_equal(hetee_engine_witnesses_make(F.plan, MODEL_ID, F.release_pk, x, MB, &o), HETEE_ERR_INVALID_ARG);
  /* the enclave checks every value in the pass that computes the stage-0
   * expectations: a bad value first, in the middle, last; NaN, infinite,
   * just above 2^20 */
  x[5] = 1.0f;
  const size_t nx = (size_t)MB * F.insz;
  const struct {
    size_t at;
    float v;
  } bad[] = {{5, NAN}, {0, INFINITY}, {nx / 2 + 1, -0x1.000002p20f}, {nx - 1, 1e30f}, {nx - 2, -INFINITY}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    float keep = x[bad[i].at];
    x[bad[i].at] = bad[i].v;
    in = dp_input(MB, 113 + (unsigned)i, 0);
    size_t plen = HETEE_WITNESS_HDR + nx * 4;
    uint8_t *plain = malloc(plen), *sealed = malloc(plen + crypto_box_SEALBYTES);
    memcpy(plain, HETEE_WITNESS_TAG, sizeof HETEE_WITNESS_TAG);
    hetee_le32(plain + sizeof HETEE_WITNESS_TAG, MODEL_ID);
    hetee_le32(plain + sizeof HETEE_WITNESS_TAG + 4, MB);
    hetee_le32(plain + sizeof HETEE_WITNESS_TAG + 8, (uint32_t)F.insz);
    memcpy(plain + HETEE_WITNESS_HDR, x, nx * 4); /* little-endian host */
    assert_int_equal(crypto_box_seal(sealed, plain, plen, F.release_pk), 0);
    free(plain);
    dp_authorizes_blob(in, sealed, plen + crypto_box_SEALBYTES);
    expect_refused(in, HETEE_ERR_FORMAT);
    in_free(in);
    x[bad[i].at] = keep;
  }
  free(x);

  status(F.t.mps, &after);
  assert_int_equal(after.failures, before.failures);
  assert_int_equal(after.jobs, before.jobs + 2); /* the untouched witness and the first-form one */
}

/* The service path's detached authorization over witness digests
 * (hetee_job_auth_witness_digests, signed with the DP's identity key,
 * presented by the host): the results are sealed to the DP's identity and
 * name the witness digest; presented again, it is a replay. */
static void test_signed_witness(void **state) {
  (void)state;
  hetee_engine_input *in = dp_input(MB + 3, 130, 0);
  hetee_engine_witnesses *w = wit_of(in);
  hetee_job_auth *a = calloc(1, sizeof *a);
  assert_non_null(a);
  assert_int_equal(hetee_job_auth_witness_digests(a, MODEL_ID, w), 0);
  assert_int_equal(a->n, 2);
  randombytes_buf(a->nonce, sizeof a->nonce);
  assert_int_equal(hetee_job_auth_sign(a, F.t.dp), 0);
  assert_int_equal(hetee_job_auth_verify(a), 0);
  assert_int_equal(hetee_engine_job_authorize(F.t.e, a), 0);
  static const uint8_t no_session[16];
  hetee_engine_results out;
  int rc = hetee_engine_run_witnessed(F.t.e, F.host_model, in, w, MODEL_ID, no_session, 1, &out, NULL);
  if (rc) printf("  signed witness run: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  assert_int_equal(out.n, MB + 3);
  for (size_t i = 0; i < out.n; i++) {
    uint32_t mb = (uint32_t)(i / MB), b = (uint32_t)(i % MB);
    hetee_release_result r;
    assert_int_equal(hetee_client_release_open_id(F.t.dp, F.release_pk, MODEL_ID, a->digest[mb], b, out.sealed[i],
                                                  out.lens[i], &r),
                     0);
    hetee_release_result_clear(&r);
    assert_int_not_equal(hetee_client_release_open_id(F.t.dp, F.release_pk, MODEL_ID, a->digest[1 - mb], b,
                                                      out.sealed[i], out.lens[i], &r),
                         0);
  }
  hetee_engine_results_clear(&out);
  assert_int_equal(hetee_engine_job_authorize(F.t.e, a), HETEE_ERR_REPLAY);
  expect_refused(in, HETEE_ERR_AUTH); /* each witness digest was used once */
  free(a);
  in_free(in);
}

/* The ciphertext-digest form of JOB_START (the service path's): an honest
 * run, two images swapped, an input nobody authorized. */
static void test_ciphertext_path(void **state) {
  (void)state;
  use_wit = 0;
  hetee_engine_input *in = dp_input(MB + 3, 120, 1);
  hetee_engine_results out;
  assert_int_equal(run(in, &out), 0);
  assert_int_equal(out.n, MB + 3);
  open_all(&out);
  in_free(in);
  attack(T_SWAP, 0, HETEE_ERR_INTEGRITY, 121);
  D.foreign = dp_input(MB, 122, 0);
  expect_refused(D.foreign, HETEE_ERR_AUTH);
  in_free(D.foreign);
  D.foreign = NULL;
  use_wit = 1;
}

/* The free RELEASE of a registered model is refused (the refresh itself
 * only ever yields ciphertexts under the enclave key). */
static void test_legacy_release_refused(void **state) {
  (void)state;
  hetee_engine_input *in = dp_input(MB, 60, 1);
  hetee_engine_results out;
  int rc = hetee_engine_run(F.t.e, F.host_model, in, MODEL_ID, F.t.dp_session, 1, &out, NULL);
  printf("  legacy release: %s (%s)\n", hetee_strerror(rc), hetee_last_error());
  assert_int_equal(rc, HETEE_ERR_AUTH);
  assert_null(out.sealed);
  in_free(in);
}

/* A JOB_REFRESH carries no spec: the enclave applies the registered
 * plan's. A request in the earlier form (the host's spec before the
 * outputs) is refused before anything is decrypted, as is one with the
 * wrong number of outputs, and either stops its job (no retries in a
 * bound chain); stages go in order; a job's results go only to the DP
 * that authorized its input. */
static void test_plan_mismatch(void **state) {
  (void)state;
  use_wit = 0; /* engine_job_start sends the ciphertext form */
  hetee_engine_input *in = dp_input(MB, 70, 1), *in2 = dp_input(MB, 71, 1), *in3 = dp_input(MB, 72, 1);
  use_wit = 1;
  hetee_hemat_layout L0;
  assert_int_equal(hetee_engine_plan_layout(F.plan, 0, MB, &L0), 0);
  uint32_t job = 0;
  uint64_t ns = 0;
  assert_int_equal(engine_job_start(F.t.e, F.t.ctx, MODEL_ID, MB, in->cts, L0.n_in_cts, &job, &ns), 0);
  uint8_t *b = NULL;
  size_t bl = 0;
  assert_int_equal(hetee_ckks_ciphertext_save(F.t.ctx, in->cts[0], &b, &bl), 0);
  uint8_t *blobs[1] = {b};
  size_t lens[1] = {bl};
  uint8_t **fr = NULL;
  size_t *fl = NULL, nf = 0;
  /* the earlier form: job, stage, the plan's own spec with the square
   * dropped (the host asking for the linear outputs), count, outputs */
  hetee_engine_refresh R;
  assert_int_equal(hetee_engine_plan_refresh(F.plan, 0, MB, &R), 0);
  R.nops = 0;
  hetee_refresh_spec sp;
  engine_stage_spec(F.t.ctx, &R, &sp);
  uint8_t *spec = NULL;
  size_t spec_len = 0;
  assert_int_equal(hetee_refresh_spec_encode(&sp, &spec, &spec_len), 0);
  R.nops = F.plan->st[0].nops;
  hetee_engine_refresh_free(&R);
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u32(&w, job);
  hetee_wbuf_u32(&w, 0);
  hetee_wbuf_put(&w, spec, spec_len);
  hetee_wbuf_u32(&w, 1);
  hetee_wbuf_blob(&w, b, bl);
  assert_int_equal(w.err, 0);
  hetee_frame f;
  int rc = hetee_host_call_frame(F.t.e, HETEE_MSG_JOB_REFRESH, w.p, w.len, &f, 0);
  printf("  a spec sent: %s (%s)\n", hetee_strerror(rc), hetee_last_error());
  assert_int_not_equal(rc, 0);
  assert_non_null(strstr(hetee_last_error(), "stopped"));
  hetee_wbuf_free(&w);
  free(spec);
  /* the job is gone */
  assert_int_equal(engine_job_refresh(F.t.e, job, 0, blobs, lens, 1, &fr, &fl, &nf, &ns), HETEE_ERR_NOT_FOUND);
  /* one output where stage 0 has L0.n_out_cts */
  assert_true(L0.n_out_cts > 1);
  assert_int_equal(engine_job_start(F.t.e, F.t.ctx, MODEL_ID, MB, in2->cts, L0.n_in_cts, &job, &ns), 0);
  rc = engine_job_refresh(F.t.e, job, 0, blobs, lens, 1, &fr, &fl, &nf, &ns);
  printf("  outputs missing: %s (%s)\n", hetee_strerror(rc), hetee_last_error());
  assert_int_not_equal(rc, 0);
  assert_int_equal(engine_job_refresh(F.t.e, job, 0, blobs, lens, 1, &fr, &fl, &nf, &ns), HETEE_ERR_NOT_FOUND);
  assert_int_equal(engine_job_start(F.t.e, F.t.ctx, MODEL_ID, MB, in3->cts, L0.n_in_cts, &job, &ns), 0);
  rc = engine_job_refresh(F.t.e, job, 1, blobs, lens, 1, &fr, &fl, &nf, &ns);
  printf("  stage skipped: %s (%s)\n", hetee_strerror(rc), hetee_last_error());
  assert_int_equal(rc, HETEE_ERR_STATE);
  /* no verified final layer: nothing to release, to anyone */
  uint8_t *sealed[MB] = {0};
  size_t sl[MB] = {0};
  assert_int_equal(engine_job_release(F.t.e, job, F.t.dp_session, MB, sealed, sl), HETEE_ERR_STATE);
  free(b);
  in_free(in);
  in_free(in2);
  in_free(in3);
}

/* Registrations survive sealing (the checks' secrets do not): after
 * UNSEAL the model is still bound — the free release stays refused, a job
 * is refused until the host binds the same model again — then runs. */
static void test_sealed_registration(void **state) {
  (void)state;
  char path[400];
  snprintf(path, sizeof path, "%s/integrity.seal", F.t.dir);
  assert_int_equal(hetee_host_seal(F.t.e, path), 0);
  assert_int_equal(hetee_host_unseal(F.t.e, path), 0);
  hetee_engine_input *in = dp_input(MB, 80, 1);
  expect_refused(in, HETEE_ERR_NOT_FOUND);
  hetee_engine_results out;
  assert_int_equal(hetee_engine_run(F.t.e, F.host_model, in, MODEL_ID, F.t.dp_session, 1, &out, NULL), HETEE_ERR_AUTH);
  assert_int_equal(hetee_engine_model_bind(F.t.e, F.host_model, MODEL_ID), 0);
  assert_int_equal(run(in, &out), 0);
  for (size_t i = 0; i < out.n; i++) {
    hetee_release_result r;
    assert_int_equal(hetee_client_release_open(F.t.dps, out.sealed[i], out.lens[i], &r), 0);
    hetee_release_result_clear(&r);
  }
  hetee_engine_results_clear(&out);
  in_free(in);
}

/* The owner's per-DP query budget: JOB_START charges the batch (also for
 * jobs that then fail) and refuses above it; a DP cannot set it. */
static void test_query_budget(void **state) {
  (void)state;
  hetee_integrity_status st;
  status(F.t.dps, &st);
  uint64_t budget = st.used + 2 * MB;
  uint8_t *m = NULL;
  size_t ml = 0;
  assert_int_equal(hetee_client_msg_query_budget(MODEL_ID, budget, &m, &ml), 0);
  assert_int_equal(local_parties_send(&F.t, F.t.dps, m, ml, NULL, NULL), HETEE_ERR_AUTH);
  assert_int_equal(hetee_client_msg_query_budget(MODEL_ID, budget, &m, &ml), 0);
  assert_int_equal(local_parties_send(&F.t, F.t.mps, m, ml, NULL, NULL), 0);
  hetee_engine_input *in = dp_input(2 * MB, 90, 1);
  hetee_engine_results out;
  assert_int_equal(run(in, &out), 0);
  for (size_t i = 0; i < out.n; i++) {
    hetee_release_result r;
    assert_int_equal(hetee_client_release_open(F.t.dps, out.sealed[i], out.lens[i], &r), 0);
    hetee_release_result_clear(&r);
  }
  hetee_engine_results_clear(&out);
  in_free(in);
  status(F.t.dps, &st);
  assert_int_equal(st.budget, budget);
  assert_int_equal(st.used, budget);
  in = dp_input(1, 91, 1);
  expect_refused(in, HETEE_ERR_LIMIT);
  in_free(in);
  assert_int_equal(hetee_client_msg_query_budget(MODEL_ID, 0, &m, &ml), 0); /* lifted again */
  assert_int_equal(local_parties_send(&F.t, F.t.mps, m, ml, NULL, NULL), 0);
}

/* Only the model's owner registers its plan; a DP cannot. */
static void test_register_owner_only(void **state) {
  (void)state;
  uint8_t *m = NULL;
  size_t ml = 0;
  assert_int_equal(hetee_client_msg_model_register(MODEL_ID, F.host_model, &m, &ml), 0);
  assert_int_equal(local_parties_send(&F.t, F.t.dps, m, ml, NULL, NULL), HETEE_ERR_AUTH);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_honest),
      cmocka_unit_test(test_a_weights_as_output),
      cmocka_unit_test(test_b_small_error),
      cmocka_unit_test(test_c_replay),
      cmocka_unit_test(test_d_swap_images),
      cmocka_unit_test(test_e_other_ciphertexts),
      cmocka_unit_test(test_f_input_substituted),
      cmocka_unit_test(test_witness_refused),
      cmocka_unit_test(test_signed_witness),
      cmocka_unit_test(test_ciphertext_path),
      cmocka_unit_test(test_legacy_release_refused),
      cmocka_unit_test(test_register_owner_only),
      cmocka_unit_test(test_plan_mismatch),
      cmocka_unit_test(test_sealed_registration),
      cmocka_unit_test(test_query_budget),
      cmocka_unit_test(test_honest),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

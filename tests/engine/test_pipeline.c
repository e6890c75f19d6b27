/*
 * test_pipeline.c — the host's side of the engine's pipelining (src/host/infer.c):
 *
 * - hetee_hemat_conv_eval_range, the work item of the host's compute pool:
 *   every output, computed alone, in pieces, in any order, equals
 *   hetee_hemat_conv_eval's (1 and 3 OpenMP threads) byte for byte; ranges
 *   outside the layout, NULL and aliased outputs are refused.
 * - bound runs through the real enclave with 1, 2 and 3 compute threads,
 *   2 or 3 pipelines, with and without a CPU kept for the enclave during its
 *   calls, one micro-batch (one pipeline) or several: the same predictions (= the
 *   plaintext engine's) and the same counters per stage (products, enclave
 *   encryptions and decryptions, bytes each way: what the host sends does
 *   not depend on how it was scheduled, and the enclave's counters are
 *   attributed to the right stage by the STATS requests that follow each
 *   call).
 * - the run's trace (HETEE_ENGINE_TRACE, 2 threads): one item per output
 *   ciphertext, one job start, refresh per stage and release per
 *   micro-batch, every event within the run.
 * - a runner (hetee_engine_runner: one pool and the buffers kept across
 *   runs): consecutive runs through it, and two runs at once from two
 *   threads on one enclave lock, give the plaintext engine's predictions
 *   and the counters of a run without it; a runner of another model is
 *   refused before anything is sent.
 */
#include <pthread.h>
#include <unistd.h>

#include "cli/local_parties.h"
#include "engine/engine_test_util.h"

#define LEVEL 1

static hetee_ckks_ciphertext **cts_new(const hetee_ckks_context *ctx, size_t n) {
  hetee_ckks_ciphertext **v = calloc(n, sizeof *v);
  assert_non_null(v);
  for (size_t i = 0; i < n; i++) ET_OK(hetee_ckks_ciphertext_new(ctx, &v[i]));
  return v;
}

static void cts_free(hetee_ckks_ciphertext **v, size_t n) {
  for (size_t i = 0; v && i < n; i++) hetee_ckks_ciphertext_free(v[i]);
  free(v);
}

/* n ciphertexts of small pseudo-random coefficients at `scale` */
static hetee_ckks_ciphertext **cts_random(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk, size_t n,
                                          double scale, uint64_t seed) {
  size_t N = hetee_ckks_context_n(ctx);
  double *v = malloc(N * sizeof *v);
  assert_non_null(v);
  hetee_ckks_plaintext *pt = NULL;
  ET_OK(hetee_ckks_plaintext_new(ctx, &pt));
  hetee_ckks_ciphertext **c = cts_new(ctx, n);
  for (size_t i = 0; i < n; i++) {
    for (size_t k = 0; k < N; k++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      v[k] = (double)(int)((seed >> 33) % 7) - 3.0;
    }
    ET_OK(hetee_ckks_encode_coeffs(ctx, v, N, scale, LEVEL, pt));
    ET_OK(hetee_ckks_encrypt_pk(ctx, pk, pt, c[i]));
  }
  hetee_ckks_plaintext_free(pt);
  free(v);
  return c;
}

static void save(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *c, uint8_t **b, size_t *n) {
  ET_OK(hetee_ckks_ciphertext_save(ctx, c, b, n));
}

static void test_range_equals_full(void **state) {
  (void)state;
  hetee_ckks_literal lit;
  hetee_ckks_literal_default(&lit);
  hetee_ckks_context *ctx = NULL;
  hetee_ckks_secret_key *sk = NULL;
  hetee_ckks_public_key *pk = NULL;
  ET_OK(hetee_ckks_context_new(&lit, &ctx));
  ET_OK(hetee_ckks_keygen_secret(ctx, &sk));
  ET_OK(hetee_ckks_keygen_public(ctx, sk, &pk));
  /* a dense layer of 3 input blocks and 5 output groups over 2 sample
   * groups: 10 outputs of 3 products each */
  hetee_hemat_shape s = {.c = 6, .h = 1, .w = 1, .co = 5, .kh = 1, .kw = 1, .sh = 1, .sw = 1};
  hetee_hemat_pack pk_ = {.cb = 2, .mb = 1, .nimg = 4};
  hetee_hemat_layout L;
  ET_OK(hetee_hemat_layout_init(&s, &pk_, 8, hetee_ckks_context_n(ctx), &L));
  assert_int_equal(L.ncb, 3);
  assert_int_equal(L.n_out_cts, 10);
  hetee_ckks_ciphertext **in = cts_random(ctx, pk, L.n_in_cts, 0x1p30, 1),
                        **w = cts_random(ctx, pk, L.n_w_cts, 0x1p34, 2),
                        **bias = cts_random(ctx, pk, (size_t)L.nmb, 0x1p64, 3);
  size_t no = L.n_out_cts;
  hetee_ckks_ciphertext **full1 = cts_new(ctx, no), **full3 = cts_new(ctx, no), **part = cts_new(ctx, no);
  const hetee_ckks_ciphertext *const *cin = (const hetee_ckks_ciphertext *const *)in,
                              *const *cw = (const hetee_ckks_ciphertext *const *)w,
                              *const *cb = (const hetee_ckks_ciphertext *const *)bias;
  ET_OK(hetee_hemat_conv_eval(ctx, &L, cin, cw, cb, 1, full1));
  ET_OK(hetee_hemat_conv_eval(ctx, &L, cin, cw, cb, 3, full3));
  /* one at a time from the last, then the first 7 reused as pieces of 3, 3, 1 */
  for (size_t i = no; i-- > 0;) ET_OK(hetee_hemat_conv_eval_range(ctx, &L, cin, cw, cb, i, 1, part + i));
  for (size_t i = 0; i < no; i++) {
    uint8_t *a, *b, *c;
    size_t na, nb, nc;
    save(ctx, full1[i], &a, &na);
    save(ctx, full3[i], &b, &nb);
    save(ctx, part[i], &c, &nc);
    assert_int_equal(na, nb);
    assert_int_equal(na, nc);
    assert_memory_equal(a, b, na);
    assert_memory_equal(a, c, na);
    free(a);
    free(b);
    free(c);
  }
  ET_OK(hetee_hemat_conv_eval_range(ctx, &L, cin, cw, cb, 0, 3, part + 7)); /* reused objects, other outputs */
  ET_OK(hetee_hemat_conv_eval_range(ctx, &L, cin, cw, cb, 3, 3, part));
  ET_OK(hetee_hemat_conv_eval_range(ctx, &L, cin, cw, cb, 9, 1, part + 3));
  ET_OK(hetee_hemat_conv_eval_range(ctx, &L, cin, cw, cb, 0, 0, part)); /* nothing */
  size_t want[7] = {3, 4, 5, 9, 4, 5, 6};
  for (size_t j = 0; j < 4; j++) {
    uint8_t *a, *c;
    size_t na, nc;
    save(ctx, full1[want[j]], &a, &na);
    save(ctx, part[j], &c, &nc);
    assert_int_equal(na, nc);
    assert_memory_equal(a, c, na);
    free(a);
    free(c);
  }
  for (size_t j = 7; j < 10; j++) {
    uint8_t *a, *c;
    size_t na, nc;
    save(ctx, full1[j - 7], &a, &na);
    save(ctx, part[j], &c, &nc);
    assert_memory_equal(a, c, na);
    free(a);
    free(c);
  }
  /* refused: outside the layout, NULL or repeated outputs, an output that is its own operand */
  assert_int_equal(hetee_hemat_conv_eval_range(ctx, &L, cin, cw, cb, 9, 2, part), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_conv_eval_range(ctx, &L, cin, cw, cb, 11, 0, part), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_conv_eval_range(ctx, &L, cin, cw, cb, (size_t)-1, 2, part), HETEE_ERR_INVALID_ARG);
  hetee_ckks_ciphertext *two[2] = {part[0], part[0]};
  assert_int_equal(hetee_hemat_conv_eval_range(ctx, &L, cin, cw, cb, 0, 2, two), HETEE_ERR_INVALID_ARG);
  hetee_ckks_ciphertext *nul[1] = {NULL};
  assert_int_equal(hetee_hemat_conv_eval_range(ctx, &L, cin, cw, cb, 0, 1, nul), HETEE_ERR_INVALID_ARG);
  hetee_ckks_ciphertext *alias_in[1] = {in[1]}; /* output 0 reads in[0..2] */
  assert_int_equal(hetee_hemat_conv_eval_range(ctx, &L, cin, cw, cb, 0, 1, alias_in), HETEE_ERR_INVALID_ARG);
  hetee_ckks_ciphertext *alias_w[1] = {w[2]};
  assert_int_equal(hetee_hemat_conv_eval_range(ctx, &L, cin, cw, cb, 0, 1, alias_w), HETEE_ERR_INVALID_ARG);
  hetee_ckks_ciphertext *alias_b[1] = {bias[0]};
  assert_int_equal(hetee_hemat_conv_eval_range(ctx, &L, cin, cw, cb, 0, 1, alias_b), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_conv_eval_range(NULL, &L, cin, cw, cb, 0, 1, part), HETEE_ERR_INVALID_ARG);
  cts_free(in, L.n_in_cts);
  cts_free(w, L.n_w_cts);
  cts_free(bias, (size_t)L.nmb);
  cts_free(full1, no);
  cts_free(full3, no);
  cts_free(part, no);
  hetee_ckks_public_key_free(pk);
  hetee_ckks_secret_key_free(sk);
  hetee_ckks_context_free(ctx);
}

static size_t argmax_f(const float *v, size_t n) {
  size_t best = 0;
  for (size_t k = 1; k < n; k++)
    if (v[k] > v[best]) best = k;
  return best;
}

/* The trace HETEE_ENGINE_TRACE asked for (src/host/infer.c) of a run of n
 * samples with 2 threads: one products item per output ciphertext of
 * every stage of every micro-batch, one job start, one refresh per stage
 * and one release per micro-batch, pool threads 0 and 1 only, every event
 * inside the run's total time. */
static void check_trace(const char *path, const hetee_engine_plan *p, size_t n) {
  uint32_t mb = hetee_engine_plan_micro_batch(p);
  size_t nst = hetee_engine_plan_num_stages(p), nmb = (n + mb - 1) / mb, want_items = 0;
  for (size_t k = 0; k < nmb; k++) {
    uint32_t bk = (uint32_t)(k + 1 < nmb ? mb : n - k * mb);
    for (size_t s = 0; s < nst; s++) {
      hetee_hemat_layout L;
      ET_OK(hetee_engine_plan_layout(p, s, bk, &L));
      want_items += L.n_out_cts;
    }
  }
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[256], kind[32];
  int threads = 0, who = 0;
  size_t pipelines = 0, dropped = 1, items = 0, starts = 0, releases = 0, refresh[16] = {0};
  double total = -1, a = 0, b = 0;
  assert_non_null(fgets(line, sizeof line, f));
  assert_int_equal(sscanf(line, "# hetee engine trace: threads %d pipelines %zu total_s %lf dropped %zu", &threads,
                          &pipelines, &total, &dropped),
                   4);
  assert_int_equal(threads, 2);
  assert_int_equal(dropped, 0);
  assert_true(pipelines >= 1 && total > 0);
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#') continue;
    assert_int_equal(sscanf(line, "%31s %d %lf %lf", kind, &who, &a, &b), 4);
    assert_true(a >= 0 && a <= b && b <= total);
    if (!strcmp(kind, "products")) items++;
    if (!strcmp(kind, "products") || !strcmp(kind, "serialize") || !strcmp(kind, "load")) {
      assert_true(who == 0 || who == 1);
    } else if (!strcmp(kind, "job_start")) {
      starts++;
    } else if (!strcmp(kind, "refresh")) {
      assert_true(who >= 0 && (size_t)who < nst && who < 16);
      refresh[who]++;
    } else {
      assert_string_equal(kind, "release");
      assert_int_equal(who, (int)nst - 1);
      releases++;
    }
  }
  fclose(f);
  assert_int_equal(items, want_items);
  assert_int_equal(starts, nmb);
  assert_int_equal(releases, nmb);
  for (size_t s = 0; s < nst; s++) assert_int_equal(refresh[s], nmb);
}

/* The counts two runs of the same input must share. */
static void counters_equal(const hetee_engine_stats *a, const hetee_engine_stats *b) {
  assert_int_equal(a->micro_batches, b->micro_batches);
  assert_int_equal(a->nstages, b->nstages);
  for (size_t s = 0; s < a->nstages; s++) {
    assert_int_equal(a->stage[s].products, b->stage[s].products);
    assert_int_equal(a->stage[s].enclave_encryptions, b->stage[s].enclave_encryptions);
    assert_int_equal(a->stage[s].enclave_decryptions, b->stage[s].enclave_decryptions);
    assert_int_equal(a->stage[s].bytes_to_enclave, b->stage[s].bytes_to_enclave);
    assert_int_equal(a->stage[s].bytes_from_enclave, b->stage[s].bytes_from_enclave);
  }
}

/* One model, n images in micro-batches of `batch`, run with 1, 2 and 3
 * compute threads (and 2 threads in 2 pipelines with a CPU kept for the
 * enclave during its calls) on one enclave: same predictions, same counters. */
static void threads_agree(const char *name, size_t n, uint32_t batch) {
  hetee_nn_model *m = et_bundled(name);
  hetee_engine_plan_options o;
  memset(&o, 0, sizeof o);
  o.batch = batch;
  hetee_engine_plan *p = NULL;
  ET_OK(hetee_engine_plan_build(m, &o, &p));
  float *x = et_images(m, n, NULL), *logits = malloc(n * 10 * sizeof *logits);
  assert_non_null(logits);
  ET_OK(hetee_nn_forward(m, x, n, logits));
  local_parties t;
  int rc = local_parties_start(&t, NULL);
  if (rc) fprintf(stderr, "start: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  /* 1, 2, 3 threads (2, 3, 4 pipelines); then 2 threads, 2 pipelines, a CPU kept for the enclave during its calls */
  local_infer_result r[4];
  memset(r, 0, sizeof r);
  char trace[64];
  snprintf(trace, sizeof trace, "/tmp/hetee-trace-%d.txt", (int)getpid());
  for (int k = 0; k < 4; k++) {
    if (k == 1) setenv("HETEE_ENGINE_TRACE", trace, 1); /* 2 threads: traced */
    if (k == 3) {
      setenv("HETEE_ENGINE_PIPELINES", "2", 1);
      setenv("HETEE_ENGINE_YIELD", "1", 1);
    }
    int threads = k < 3 ? k + 1 : 2;
    rc = local_infer(&t, m, p, x, n, threads, (uint32_t)k + 1, &r[k]); /* a model id per run */
    unsetenv("HETEE_ENGINE_PIPELINES");
    unsetenv("HETEE_ENGINE_YIELD");
    unsetenv("HETEE_ENGINE_TRACE");
    if (rc) fprintf(stderr, "%s, run %d: %s\n", name, k, hetee_last_error());
    assert_int_equal(rc, 0);
    if (k == 1) {
      check_trace(trace, p, n);
      unlink(trace);
    }
    for (size_t i = 0; i < n; i++) assert_int_equal((size_t)r[k].pred[i], argmax_f(logits + i * 10, 10));
  }
  for (int k = 1; k < 4; k++) {
    counters_equal(&r[0].stats, &r[k].stats);
    for (size_t s = 0; s < r[k].stats.nstages; s++) assert_true(r[k].stats.stage[s].enclave_s > 0);
  }
  fprintf(stderr, "%s: %zu images, micro-batch %u, 1/2/3 threads, 2 pipelines: same predictions and counters\n",
          name, n, hetee_engine_plan_micro_batch(p));
  for (int k = 0; k < 4; k++) local_infer_clear(&r[k]);
  local_parties_stop(&t);
  free(x);
  free(logits);
  hetee_engine_plan_free(p);
  hetee_nn_model_free(m);
}

static void test_threads_agree(void **state) {
  (void)state;
  threads_agree("e2dm", et_quick() ? 11 : 21, 4); /* several micro-batches, a short last one */
  threads_agree("cnn_s2", 6, 8);                  /* one micro-batch: one pipeline */
}

/* ---- runner ------------------------------------------------------------- */
typedef struct {
  local_parties *t;
  const hetee_engine_model *em;
  const hetee_engine_plan *p;
  uint32_t model_id;
  const uint8_t *release_pk;
  const float *x;
  size_t n;
  hetee_engine_runner *runner;
  pthread_mutex_t *lock; /* the enclave handle's, shared by concurrent runs */
  int serial;             /* hetee_engine_run_hooks.enclave_serial */
  hetee_engine_input *in; /* chunk_prepare's */
  hetee_engine_witnesses wit;
  /* out */
  hetee_engine_results res;
  hetee_engine_stats st;
  int rc;
} chunk_run;

static chunk_run chunk_init(local_parties *t, const hetee_engine_model *em, const hetee_engine_plan *p, uint32_t id,
                            const uint8_t *release_pk, const float *x, size_t n, hetee_engine_runner *runner,
                            pthread_mutex_t *lock) {
  chunk_run c;
  memset(&c, 0, sizeof c);
  c.t = t, c.em = em, c.p = p, c.model_id = id, c.release_pk = release_pk, c.x = x, c.n = n, c.runner = runner;
  c.lock = lock;
  return c;
}

/* The DP's input and witnesses of c->n samples, authorized through its
 * session (before any run: the session's messages are counted, and the
 * releases of a run are sealed on the same session). */
static int chunk_prepare(chunk_run *c) {
  hetee_engine_input **host_in = &c->in;
  hetee_engine_witnesses *wit = &c->wit;
  hetee_engine_input *dp_in = NULL;
  uint8_t *bytes = NULL, *auth = NULL;
  size_t blen = 0, authl = 0;
  int rc = hetee_engine_input_encrypt(c->t->ctx, c->t->pk, c->p, c->x, c->n, &dp_in);
  if (!rc) rc = hetee_engine_input_save(dp_in, &bytes, &blen);
  hetee_engine_input_free(dp_in);
  if (!rc) rc = hetee_engine_witnesses_make(c->p, c->model_id, c->release_pk, c->x, c->n, wit);
  if (!rc) rc = hetee_client_msg_job_auth_witness(c->model_id, wit, &auth, &authl);
  if (!rc) rc = local_parties_send(c->t, c->t->dps, auth, authl, NULL, NULL);
  if (!rc) rc = hetee_engine_input_load(c->t->ctx, hetee_engine_model_plan(c->em), bytes, blen, host_in);
  free(bytes);
  return rc;
}

/* Runs a prepared chunk (from any thread). */
static void *chunk_main(void *arg) {
  chunk_run *c = arg;
  hetee_engine_run_hooks hk = {NULL, NULL, c->lock, c->runner, c->serial};
  if (!c->rc)
    c->rc = hetee_engine_run_hooked(c->t->e, c->em, c->in, &c->wit, c->model_id, c->t->dp_session, 2, &hk, &c->res,
                                    &c->st);
  if (c->rc) fprintf(stderr, "chunk of %zu: %s\n", c->n, hetee_last_error());
  hetee_engine_input_free(c->in);
  c->in = NULL;
  hetee_engine_witnesses_clear(&c->wit);
  return NULL;
}

/* The DP opens a run's releases (in the enclave's sealing order) and
 * checks each prediction against the plaintext model's. */
static void chunk_check(local_parties *t, chunk_run *c, uint32_t model_id, const float *logits) {
  assert_int_equal(c->rc, 0);
  assert_int_equal(c->res.n, c->n);
  for (size_t i = 0; i < c->n; i++) {
    hetee_release_result r;
    ET_OK(hetee_client_release_open(t->dps, c->res.sealed[i], c->res.lens[i], &r));
    assert_int_equal(r.model_id, model_id);
    assert_int_equal(r.kind, HETEE_RELEASE_ARGMAX);
    assert_int_equal((size_t)r.indices[0], argmax_f(logits + i * 10, 10));
    hetee_release_result_clear(&r);
  }
}

static void test_runner(void **state) {
  (void)state;
  const uint32_t id = 7;
  hetee_nn_model *m = et_bundled("e2dm");
  hetee_engine_plan_options o;
  memset(&o, 0, sizeof o);
  o.batch = 4;
  hetee_engine_plan *p = NULL;
  ET_OK(hetee_engine_plan_build(m, &o, &p));
  const size_t n = 11; /* two full micro-batches and a short one */
  float *x = et_images(m, n, NULL), *logits = malloc(n * 10 * sizeof *logits);
  assert_non_null(logits);
  ET_OK(hetee_nn_forward(m, x, n, logits));
  local_parties t;
  ET_OK(local_parties_start(&t, NULL));
  ET_OK(local_parties_policy(&t, id, hetee_engine_plan_release_kind(p), 16));
  /* the MP encrypts and registers; the host loads the bytes twice (two
   * model objects: a runner belongs to one) and binds one */
  hetee_engine_model *mp_model = NULL, *em = NULL, *other = NULL;
  uint8_t *bytes = NULL, *reg = NULL, *km = NULL, *kr = NULL, release_pk[32];
  size_t blen = 0, regl = 0, kml = 0, krl = 0;
  ET_OK(hetee_engine_model_encrypt(t.ctx, t.pk, m, p, &mp_model));
  ET_OK(hetee_engine_model_save(mp_model, &bytes, &blen));
  ET_OK(hetee_client_msg_model_register(id, mp_model, &reg, &regl));
  ET_OK(local_parties_send(&t, t.mps, reg, regl, NULL, NULL));
  hetee_engine_model_free(mp_model);
  ET_OK(hetee_engine_model_load(t.ctx, bytes, blen, &em));
  ET_OK(hetee_engine_model_load(t.ctx, bytes, blen, &other));
  free(bytes);
  ET_OK(hetee_engine_model_bind(t.e, em, id));
  ET_OK(hetee_client_msg_release_key(&km, &kml));
  ET_OK(local_parties_send(&t, t.dps, km, kml, &kr, &krl));
  ET_OK(hetee_client_release_key_parse(kr, krl, release_pk));
  free(kr);
  hetee_engine_runner *runner = NULL;
  assert_int_equal(hetee_engine_runner_new(em, 0, &runner), HETEE_ERR_INVALID_ARG);
  ET_OK(hetee_engine_runner_new(em, 2, &runner));
  assert_int_equal(hetee_engine_runner_threads(runner), 2);
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  /* without a runner, then twice through it (the second run reuses the
   * first one's buffers): same predictions, same counters; the enclave
   * (2 threads) serves the first run's requests with its pool, the
   * second's on its calling thread only (HETEE_MSG_SERIAL), the third's as
   * the engine chooses (serial: the run overlaps its micro-batches) */
  chunk_run c[3];
  for (int k = 0; k < 3; k++) {
    c[k] = chunk_init(&t, em, p, id, release_pk, x, n, k ? runner : NULL, &lock);
    c[k].serial = k == 0 ? -1 : k == 1 ? 1 : 0;
    ET_OK(chunk_prepare(&c[k]));
    chunk_main(&c[k]);
    chunk_check(&t, &c[k], id, logits);
    if (k) counters_equal(&c[0].st, &c[k].st);
  }
  /* another model's runner: refused before anything is sent */
  chunk_run bad = chunk_init(&t, other, p, id, release_pk, x, 4, runner, &lock);
  ET_OK(chunk_prepare(&bad));
  chunk_main(&bad);
  assert_int_equal(bad.rc, HETEE_ERR_INVALID_ARG);
  hetee_engine_results_clear(&bad.res);
  /* two runs at once through the runner, on one enclave lock: each
   * sample's release is opened in the enclave's sealing order, which
   * interleaves the runs (the session's counters fix it; a release
   * opened out of turn is refused and leaves the session as it was), so
   * the DP opens whichever run's next release is the session's next */
  chunk_run d[2] = {chunk_init(&t, em, p, id, release_pk, x, 8, runner, &lock),
                    chunk_init(&t, em, p, id, release_pk, x + 8 * hetee_engine_plan_input_size(p), 3, runner, &lock)};
  pthread_t th[2];
  for (int k = 0; k < 2; k++) ET_OK(chunk_prepare(&d[k]));
  for (int k = 0; k < 2; k++) assert_int_equal(pthread_create(&th[k], NULL, chunk_main, &d[k]), 0);
  for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
  for (int k = 0; k < 2; k++) assert_int_equal(d[k].rc, 0);
  size_t next[2] = {0, 0};
  const float *lg[2] = {logits, logits + 8 * 10};
  while (next[0] < d[0].n || next[1] < d[1].n) {
    int opened = 0;
    for (int k = 0; k < 2 && !opened; k++) {
      if (next[k] >= d[k].n) continue;
      hetee_release_result r;
      if (hetee_client_release_open(t.dps, d[k].res.sealed[next[k]], d[k].res.lens[next[k]], &r)) continue;
      assert_int_equal((size_t)r.indices[0], argmax_f(lg[k] + next[k] * 10, 10));
      hetee_release_result_clear(&r);
      next[k]++;
      opened = 1;
    }
    assert_true(opened);
  }
  fprintf(stderr, "runner: 3 runs one after the other, 2 at once: plaintext predictions, same counters\n");
  for (int k = 0; k < 3; k++) hetee_engine_results_clear(&c[k].res);
  for (int k = 0; k < 2; k++) hetee_engine_results_clear(&d[k].res);
  hetee_engine_runner_free(runner);
  hetee_engine_model_free(other);
  hetee_engine_model_free(em);
  local_parties_stop(&t);
  free(x);
  free(logits);
  hetee_engine_plan_free(p);
  hetee_nn_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_range_equals_full), cmocka_unit_test(test_threads_agree),
                                     cmocka_unit_test(test_runner)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

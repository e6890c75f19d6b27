/*
 * test_refine.c — refine jobs through the real `hetee server` and its
 * enclave on loopback, driven by the client library and the CLI:
 *  - epoch: the MP uploads models/mlp_small.onnx and starts a refine job
 *    (last layer, B 64, accumulate 2, momentum, a step learning-rate
 *    schedule, a validation set, one epoch over N samples);
 *    a DP the policy does not name is refused (403) before and at
 *    submission; the named DP submits N encrypted labelled samples; the
 *    job runs to the end of its epoch (a partial accumulation flushed);
 *    the MP fetches the weights (sealed to its job session): they equal
 *    plaintext SGD over the same samples in the same order within 1e-4;
 *    the enclave's validation report (sealed to the MP, over its labels)
 *    gives the refined weights' plaintext loss and accuracy on the set;
 *    the ONNX file written holds exactly those weights and `hetee plain`
 *    runs it; a DP and another MP cannot fetch; `hetee model promote`
 *    uploads the refined model with the original's policy and it serves
 *    inference (labels equal the refined ONNX's plaintext labels);
 *  - kill9: another job; after some checkpointed steps the server and its
 *    enclave are killed (SIGKILL) and restarted: the job waits for the
 *    MP's resume (the enclave's side was lost), then finishes; the store's
 *    record shows every batch used exactly once in the epoch, at
 *    consecutive positions, and the weights equal plaintext SGD over the
 *    same samples (a batch used twice or skipped would move them); after
 *    another kill -9 of the server and its enclave, and another MP session
 *    opened first, the finished job's weights are fetched again (the
 *    enclave reopens it from its sealed checkpoint; the fetch authorized
 *    in the MP's session), the same; they open in the MP's session only,
 *    a replayed, DP-sealed or other model's authorization is refused.
 *  - resume_auth: a checkpoint without the enclave's sealed part: after a
 *    restart the job waits for the MP, whose resume authorizes that
 *    checkpoint in a new session; the job ends at plaintext SGD. Its
 *    checkpoint refused without its frozen-layer file or with another one.
 *    Its only contributor is dp2, which the model's release policy does
 *    not name (the MP's authorization names it, at start and at resume);
 *    dp1, the model's DP, is refused (403).
 *  - slots: 5 jobs one after the other on one enclave (which holds at most
 *    4): each finished job gives its slot back; all 5 fetched afterwards.
 * HETEE_TEST_QUICK=1: fewer samples.
 */
#include "service_fixture.h"

#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "hetee/enclave.h"
#include "enclave/wire/proto.h" /* HETEE_REFINE_MAX_JOBS */
#include "hetee/refine.h"

static sfx *F;
static int64_t MODEL;
static float *X, *Y;
static size_t NTRAIN, NKILL; /* samples of the epoch job, of the kill -9 job (after them in X) */

#define TRAIN_IMAGES "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
#define TRAIN_LABELS "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"

static int quick(void) { return getenv("HETEE_TEST_QUICK") != NULL; }

static int setup(void **state) {
  (void)state;
  char mhex[65];
  F = sfx_parties(mhex);
  sfx_start(F);
  NTRAIN = quick() ? 160 : 288;
  NKILL = quick() ? 192 : 320;
  hetee_nn_data *im, *lb;
  assert_int_equal(hetee_nn_images_load(TRAIN_IMAGES, &im), 0);
  assert_int_equal(hetee_nn_labels_load(TRAIN_LABELS, &lb), 0);
  size_t nx = NTRAIN + NKILL;
  X = malloc(nx * 784 * sizeof *X);
  Y = malloc(nx * sizeof *Y);
  for (size_t i = 0; i < nx * 784; i++) X[i] = hetee_nn_data_values(im)[i] / 255.0f;
  for (size_t i = 0; i < nx; i++) Y[i] = hetee_nn_data_values(lb)[i];
  hetee_nn_data_free(im);
  hetee_nn_data_free(lb);
  char path[512];
  sfx_model_path(path, sizeof path, "mlp_small");
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->mp, &c), 0);
  hetee_client_model_options o = {.name = "mlp_small", .output = "label", .dps = (const uint8_t(*)[32])F->dp1_pk, .ndps = 1};
  assert_int_equal(hetee_client_model_upload(c, path, &o, &MODEL), 0);
  hetee_client_disconnect(c);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  free(X);
  free(Y);
  if (getenv("HETEE_TEST_KEEP_LOG")) { /* debugging: the server's log outlives the test directory */
    char cmd[800];
    snprintf(cmd, sizeof cmd, "cp '%s/server.log' '%s'", F->dir, getenv("HETEE_TEST_KEEP_LOG"));
    if (system(cmd) != 0) fprintf(stderr, "cannot keep the server log\n");
  }
  sfx_free(F);
  return 0;
}

static hetee_client_refine_options opts(const char *onnx, uint32_t acc, double mom, uint32_t n) {
  hetee_client_refine_options o = {.onnx_path = onnx, .batch = 64, .accumulate = acc, .train_layers = 1,
                                   .loss = HETEE_REFINE_LOSS_XENT, .lr = 0.1, .momentum = mom, .seed = 7,
                                   .epochs = 1, .epoch_samples = n, .dps = (const uint8_t(*)[32])F->dp1_pk, .ndps = 1};
  return o;
}

/* Plaintext SGD over x[0..n) in submission order (batches of B), the
 * partial accumulation flushed at the end: the reference. */
static void plain_ref(const char *onnx, const hetee_client_refine_options *o, const float *x, const float *y, size_t n,
                      hetee_refine_weights *w) {
  hetee_nn_model *m;
  assert_int_equal(hetee_nn_model_load(onnx, &m), 0);
  assert_int_equal(hetee_refine_weights_from_model(m, w), 0);
  hetee_nn_model_free(m);
  hetee_refine_config cfg = {o->batch, o->accumulate, o->train_layers, o->loss, o->lr, o->momentum, o->weight_decay, o->seed};
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(w, &cfg, 0, &p), 0);
  if (o->schedule) assert_int_equal(hetee_refine_plan_set_schedule(&p, o->schedule), 0);
  hetee_refine_plain t;
  assert_int_equal(hetee_refine_plain_init(&t, &p, w), 0);
  uint32_t idx[64];
  for (size_t off = 0; off < n; off += 64) {
    uint32_t c = (uint32_t)(n - off < 64 ? n - off : 64);
    for (uint32_t i = 0; i < c; i++) idx[i] = (uint32_t)(off + i);
    assert_int_equal(hetee_refine_plain_step(&t, x, y, idx, c), 0);
  }
  assert_int_equal(hetee_refine_plain_flush(&t), 0);
  hetee_refine_plain_clear(&t);
}

static json_t *status(hetee_client_conn *c, int64_t job) {
  char *js = NULL;
  assert_int_equal(hetee_client_refine_status(c, job, &js), 0);
  json_t *j = json_loads(js, 0, NULL);
  free(js);
  assert_non_null(j);
  return j;
}

static long long jint(json_t *j, const char *k) { return (long long)json_integer_value(json_object_get(j, k)); }

static void test_epoch(void **state) {
  (void)state;
  char onnx[512], out[600], cmd[2048];
  sfx_model_path(onnx, sizeof onnx, "mlp_small");
  hetee_client_conn *mp, *dp1, *dp2;
  assert_int_equal(hetee_client_connect(F->url, F->mp, &mp), 0);
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &dp1), 0);
  assert_int_equal(hetee_client_connect(F->url, F->dp2, &dp2), 0);
  hetee_client_refine_options o = opts(onnx, 2, 0.5, (uint32_t)NTRAIN);
  /* a step schedule: the rate halves at every update (the enclave applies it) */
  hetee_refine_schedule sched = {.kind = HETEE_REFINE_LR_STEP, .step_every = 1, .gamma = 0.5};
  o.schedule = &sched;
  /* a validation set of test images: the enclave's report after the epoch */
  enum { NV = 96 };
  int vlab[NV];
  float *vx = sfx_images(NV, vlab), vy[NV];
  for (int i = 0; i < NV; i++) vy[i] = (float)vlab[i];
  o.val_x = vx;
  o.val_labels = vy;
  o.val_count = NV;
  int64_t job = 0;
  int rc = hetee_client_refine_start(mp, F->mp, MODEL, &o, &job);
  if (rc) fprintf(stderr, "start: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  /* a DP cannot start one */
  int64_t j2 = 0;
  assert_int_equal(hetee_client_refine_start(dp1, F->dp1, MODEL, &o, &j2), HETEE_ERR_AUTH);
  /* a DP outside the job's policy: refused (403), nothing stored */
  size_t nb = 0;
  assert_int_equal(hetee_client_refine_submit(dp2, job, X, Y, 64, &nb), HETEE_ERR_AUTH);
  assert_int_equal(nb, 0);
  long st = 0;
  char target[128];
  snprintf(target, sizeof target, "/v1/refine/%lld/samples", (long long)job);
  uint8_t junk[64] = {0};
  assert_int_equal(hetee_client_request(dp2, "POST", target, "application/octet-stream", junk, sizeof junk, &st, NULL, NULL), 0);
  assert_int_equal(st, 403);
  /* the named DP: its samples, in order */
  rc = hetee_client_refine_submit(dp1, job, X, Y, NTRAIN, &nb);
  if (rc) fprintf(stderr, "submit: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  assert_int_equal(nb, (NTRAIN + 63) / 64);
  /* the data set is full: one more batch is refused */
  assert_int_equal(hetee_client_refine_submit(dp1, job, X, Y, 1, &nb), HETEE_ERR_STATE);
  char fin[24];
  assert_int_equal(hetee_client_refine_wait(mp, job, 600, fin), 0);
  assert_string_equal(fin, "done");
  json_t *s = status(mp, job);
  assert_int_equal(jint(s, "samples"), (long long)NTRAIN);
  /* the frozen layers (mlp_small's first two) in ID.ckpt.frozen, written */
  json_t *fzj = json_object_get(s, "frozen");
  assert_string_equal(json_string_value(json_object_get(fzj, "state")), "written");
  assert_true(jint(fzj, "bytes") > (1 << 20) && jint(fzj, "bytes") == jint(fzj, "on_disk"));
  assert_int_equal(jint(s, "steps"), (long long)((NTRAIN + 63) / 64));
  json_t *u = json_array_get(json_object_get(s, "used"), 0);
  assert_int_equal(jint(u, "epoch"), 0);
  assert_int_equal(jint(u, "samples"), (long long)NTRAIN);
  json_decref(s);
  s = status(dp1, job); /* the DP sees its own samples consumed */
  assert_int_equal(jint(json_array_get(json_object_get(s, "used"), 0), "samples"), (long long)NTRAIN);
  assert_null(json_object_get(s, "steps"));
  json_decref(s);
  /* the MP's weights equal plaintext SGD */
  snprintf(out, sizeof out, "%s/refined.onnx", F->dir);
  hetee_refine_weights we, wp, wf;
  rc = hetee_client_refine_fetch(mp, F->mp, job, out, &we);
  if (rc) fprintf(stderr, "fetch: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  plain_ref(onnx, &o, X, Y, NTRAIN, &wp);
  double d = hetee_refine_weights_maxdiff(&we, &wp, 0);
  hetee_nn_model *m0;
  hetee_refine_weights w0;
  assert_int_equal(hetee_nn_model_load(onnx, &m0), 0);
  assert_int_equal(hetee_refine_weights_from_model(m0, &w0), 0);
  hetee_nn_model_free(m0);
  double moved = hetee_refine_weights_maxdiff(&w0, &wp, 0);
  fprintf(stderr, "refine epoch: %zu samples, encrypted vs plaintext max |dw| %.3g (weights moved by %.3g)\n", NTRAIN, d,
          moved);
  assert_true(d < 1e-4);
  assert_true(moved > 1e-3); /* the weights really moved: 10x the tolerance at least */
  /* the enclave's validation report (sealed to the MP, over its labels):
   * the refined weights' loss and accuracy on the set, as in plaintext */
  hetee_refine_val_report rep;
  uint32_t rep_epoch = 9;
  size_t nrep = 0;
  rc = hetee_client_refine_validation(mp, F->mp, job, 1, &rep, &rep_epoch, &nrep);
  if (rc) fprintf(stderr, "validation: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  assert_int_equal(nrep, 1);
  assert_int_equal(rep_epoch, 0);
  assert_int_equal(rep.samples, NV);
  {
    hetee_refine_config cfg = {o.batch, o.accumulate, o.train_layers, o.loss, o.lr, o.momentum, o.weight_decay, o.seed};
    hetee_refine_plan vp;
    double ploss = 0, pacc = 0;
    assert_int_equal(hetee_refine_plan_build(&we, &cfg, 0, &vp), 0);
    assert_int_equal(hetee_refine_plain_eval(&vp, &we, vx, vy, NV, &ploss, &pacc), 0);
    fprintf(stderr, "refine validation: enclave loss %.5f accuracy %.4f, plaintext (fetched weights) loss %.5f accuracy %.4f\n",
            rep.loss, rep.accuracy, ploss, pacc);
    assert_true(fabs(rep.loss - ploss) < 1e-3);
    assert_true(fabs(rep.accuracy - pacc) <= 1.0 / NV + 1e-9);
  }
  free(vx);
  /* the ONNX written holds exactly the fetched weights, and hetee plain runs it */
  hetee_nn_model *m;
  assert_int_equal(hetee_nn_model_load(out, &m), 0);
  assert_int_equal(hetee_refine_weights_from_model(m, &wf), 0);
  hetee_nn_model_free(m);
  assert_true(hetee_refine_weights_maxdiff(&wf, &we, 0) == 0.0);
  snprintf(cmd, sizeof cmd,
           "%s/hetee plain --model %s /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz --labels "
           "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz --count 200 > %s/plain.txt",
           sfx_bin(), out, F->dir);
  assert_int_equal(system(cmd), 0);
  hetee_refine_weights_clear(&we);
  hetee_refine_weights_clear(&wp);
  hetee_refine_weights_clear(&wf);
  hetee_refine_weights_clear(&w0);
  /* only the MP's job session opens the weights: a DP is refused by role
   * and has no session for the job; the sealed weights do not open in
   * another session (even the MP's own) */
  snprintf(target, sizeof target, "/v1/refine/%lld/weights?layer=1", (long long)job);
  assert_int_equal(hetee_client_request(dp1, "GET", target, NULL, NULL, 0, &st, NULL, NULL), 0);
  assert_int_equal(st, 403);
  assert_int_equal(hetee_client_refine_fetch(dp1, F->dp1, job, NULL, &wf), HETEE_ERR_NOT_FOUND);
  uint8_t *sealed = NULL, *plain = NULL;
  size_t sl = 0, pl = 0;
  assert_int_equal(hetee_client_request(mp, "GET", target, NULL, NULL, 0, &st, &sealed, &sl), 0);
  assert_int_equal(st, 200);
  hetee_client_session *other;
  char osid[33];
  assert_int_equal(hetee_client_session_open_remote(mp, &other, osid), 0);
  assert_int_not_equal(hetee_client_session_open(other, sealed, sl, &plain, &pl), 0);
  hetee_client_session_free(other);
  free(sealed);
  /* through the CLI: status, then promote: the refined model serves inference */
  snprintf(cmd, sizeof cmd, "%s/hetee refine status --job %lld --home %s --server %s > %s/status.txt", sfx_bin(),
           (long long)job, F->mp, F->url, F->dir);
  assert_int_equal(system(cmd), 0);
  snprintf(cmd, sizeof cmd, "grep -q '^  frozen layers: %lld.ckpt.frozen, [0-9]* bytes named by the checkpoint: written$' %s/status.txt",
           (long long)job, F->dir);
  assert_int_equal(system(cmd), 0);
  snprintf(cmd, sizeof cmd, "%s/hetee model promote --model %lld --home %s --server %s | tail -1 > %s/promoted.txt",
           sfx_bin(), (long long)MODEL, F->mp, F->url, F->dir);
  assert_int_equal(system(cmd), 0);
  char pp[600];
  snprintf(pp, sizeof pp, "%s/promoted.txt", F->dir);
  FILE *pf = fopen(pp, "r");
  long long nm = 0;
  assert_non_null(pf);
  assert_int_equal(fscanf(pf, "%lld", &nm), 1);
  fclose(pf);
  assert_true(nm > MODEL);
  enum { NI = 64 };
  int labels[NI], want[NI];
  float *xt = sfx_images(NI, labels);
  sfx_plain_labels(out, xt, NI, want);
  hetee_client_job *ij;
  hetee_release_result *res;
  size_t nres;
  assert_int_equal(hetee_client_job_submit(dp1, nm, xt, NI, &ij), 0);
  assert_int_equal(hetee_client_job_wait(dp1, ij), 0);
  assert_int_equal(hetee_client_job_results(dp1, ij, &res, &nres), 0);
  assert_int_equal(nres, NI);
  int same = 0;
  for (int i = 0; i < NI; i++) same += (int)res[i].indices[0] == want[i];
  fprintf(stderr, "refine promote: model %lld serves inference, %d of %d labels equal the refined ONNX's plaintext ones\n",
          nm, same, NI);
  assert_true(same >= NI - 1);
  hetee_client_results_free(res, nres);
  hetee_client_job_free(ij);
  free(xt);
  hetee_client_disconnect(mp);
  hetee_client_disconnect(dp1);
  hetee_client_disconnect(dp2);
  /* a clean stop (under the sanitizers: no leak in what this server ran), then on */
  sfx_stop(F, SIGTERM);
  sfx_start(F);
}

static pid_t child_of(pid_t parent, const char *prefix) {
  FILE *p = popen("ps -e -o pid=,ppid=,comm=", "r");
  assert_non_null(p);
  int pid, ppid;
  char comm[64];
  pid_t found = 0;
  while (fscanf(p, "%d %d %63s", &pid, &ppid, comm) == 3)
    if (ppid == parent && (!prefix || !strncmp(comm, prefix, strlen(prefix)))) found = pid;
  pclose(p);
  return found;
}

static void test_kill9(void **state) {
  (void)state;
  char onnx[512];
  sfx_model_path(onnx, sizeof onnx, "mlp_small");
  const float *x = X + NTRAIN * 784, *y = Y + NTRAIN; /* other samples than the first job's */
  size_t n = NKILL, nbatch = (n + 63) / 64;
  hetee_client_conn *mp, *dp1;
  assert_int_equal(hetee_client_connect(F->url, F->mp, &mp), 0);
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &dp1), 0);
  hetee_client_refine_options o = opts(onnx, 1, 0.9, (uint32_t)n);
  int64_t job = 0;
  assert_int_equal(hetee_client_refine_start(mp, F->mp, MODEL, &o, &job), 0);
  size_t nb = 0;
  assert_int_equal(hetee_client_refine_submit(dp1, job, x, y, n, &nb), 0);
  /* mid-epoch: at least one checkpointed update, not all */
  long long steps = 0;
  for (int i = 0; i < 3000 && steps < 1; i++) {
    json_t *s = status(mp, job);
    steps = jint(s, "steps");
    json_decref(s);
    if (steps < 1) usleep(20 * 1000);
  }
  assert_true(steps >= 1 && steps < (long long)nbatch);
  pid_t l = child_of(F->pid, "hetee-launcher"), ep = l > 0 ? child_of(l, NULL) : 0;
  sfx_stop(F, SIGKILL);
  if (ep > 0) (void)kill(ep, SIGKILL);
  hetee_client_disconnect(mp);
  hetee_client_disconnect(dp1);
  sfx_start(F);
  assert_int_equal(hetee_client_connect(F->url, F->mp, &mp), 0);
  /* the server resumed the job in its new enclave from the sealed checkpoint */
  json_t *s = status(mp, job);
  const char *state0 = json_string_value(json_object_get(s, "state"));
  long long at = jint(s, "samples");
  fprintf(stderr, "refine kill9: killed after %lld steps; at restart %s with %lld samples checkpointed\n", steps, state0, at);
  assert_true(!strcmp(state0, "running") || !strcmp(state0, "done"));
  assert_true(at < (long long)n);
  json_decref(s);
  char st[24];
  assert_int_equal(hetee_client_refine_wait(mp, job, 600, st), 0);
  s = status(mp, job);
  if (strcmp(st, "done")) fprintf(stderr, "refine kill9: job %s: %s\n", st, json_string_value(json_object_get(s, "error")));
  assert_string_equal(st, "done");
  json_t *u = json_array_get(json_object_get(s, "used"), 0);
  assert_int_equal(jint(u, "samples"), (long long)n);
  assert_int_equal(jint(u, "batches"), (long long)nbatch);
  /* and as the enclave counted what it applied: epoch 0 closed with n samples */
  json_t *en = json_object_get(s, "enclave");
  assert_true(json_is_object(en));
  assert_int_equal(json_array_size(json_object_get(en, "epoch_samples")), 1);
  assert_int_equal(json_integer_value(json_array_get(json_object_get(en, "epoch_samples"), 0)), (long long)n);
  assert_int_equal(jint(en, "samples"), (long long)n);
  json_decref(s);
  /* the store's record: each batch once in epoch 0, at consecutive positions */
  char db[400];
  snprintf(db, sizeof db, "%s/hetee.db", F->data);
  sqlite3 *h;
  assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_busy_timeout(h, 5000);
  sqlite3_stmt *q;
  assert_int_equal(sqlite3_prepare_v2(h,
                                      "SELECT u.epoch, u.pos, u.batch, b.count FROM refine_used u JOIN refine_batches b ON "
                                      "b.id = u.batch WHERE u.job = ? ORDER BY u.epoch, u.pos",
                                      -1, &q, NULL),
                   SQLITE_OK);
  sqlite3_bind_int64(q, 1, job);
  long long pos = 0, prev = 0;
  size_t rows = 0;
  while (sqlite3_step(q) == SQLITE_ROW) {
    assert_int_equal(sqlite3_column_int64(q, 0), 0);
    assert_int_equal(sqlite3_column_int64(q, 1), pos);
    assert_true(sqlite3_column_int64(q, 2) > prev); /* submission order, no batch twice */
    prev = sqlite3_column_int64(q, 2);
    pos += sqlite3_column_int64(q, 3);
    rows++;
  }
  sqlite3_finalize(q);
  sqlite3_close(h);
  assert_int_equal(rows, nbatch);
  assert_int_equal(pos, (long long)n);
  /* and the weights: plaintext SGD over the same samples, once each */
  hetee_refine_weights we, wp;
  int rc = hetee_client_refine_fetch(mp, F->mp, job, NULL, &we);
  if (rc) fprintf(stderr, "fetch: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  plain_ref(onnx, &o, x, y, n, &wp);
  double d = hetee_refine_weights_maxdiff(&we, &wp, 0);
  fprintf(stderr, "refine kill9: encrypted (resumed) vs plaintext max |dw| %.3g\n", d);
  assert_true(d < 1e-4);
  /* a finished job after a kill -9 of the server and its enclave: the new
   * enclave reopens it from its sealed checkpoint for the fetch. The MP's
   * stored session died with the old enclave, and the MP opens another
   * session before fetching (the enclave used to seal the weights to the
   * owner's first session: this fetch failed); the same weights, the job
   * still done */
  hetee_client_disconnect(mp);
  l = child_of(F->pid, "hetee-launcher");
  ep = l > 0 ? child_of(l, NULL) : 0;
  sfx_stop(F, SIGKILL);
  if (ep > 0) (void)kill(ep, SIGKILL);
  sfx_start(F);
  assert_int_equal(hetee_client_connect(F->url, F->mp, &mp), 0);
  hetee_client_session *other = NULL;
  char osid[33];
  assert_int_equal(hetee_client_session_open_remote(mp, &other, osid), 0);
  hetee_refine_weights w2;
  rc = hetee_client_refine_fetch(mp, F->mp, job, NULL, &w2);
  if (rc) fprintf(stderr, "fetch after kill -9: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  assert_true(hetee_refine_weights_maxdiff(&w2, &we, 0) == 0.0);
  s = status(mp, job);
  assert_string_equal(json_string_value(json_object_get(s, "state")), "done");
  hetee_refine_plan p;
  const char *sh = json_string_value(json_object_get(s, "spec"));
  size_t sl = sh ? strlen(sh) / 2 : 0;
  uint8_t *spec = malloc(sl + 1);
  for (size_t i = 0; i < sl; i++) {
    unsigned v;
    assert_int_equal(sscanf(sh + 2 * i, "%2x", &v), 1);
    spec[i] = (uint8_t)v;
  }
  assert_int_equal(hetee_refine_spec_decode(spec, sl, &p), 0);
  free(spec);
  json_decref(s);
  /* the fetch authorized in that other session: the weights are sealed to it
   * and open there; a data provider's session does not open them; the same
   * authorization again (the host replaying it) is refused, so are one
   * sealed by the DP's session and one for another model */
  int L = p.nl - 1;
  hetee_client_conn *dp1b;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &dp1b), 0);
  hetee_client_session *dps = NULL;
  char dsid[33];
  assert_int_equal(hetee_client_session_open_remote(dp1b, &dps, dsid), 0);
  char *tg[3] = {NULL, NULL, NULL};
  for (int k = 0; k < 3; k++) {
    uint8_t *am = NULL, *as = NULL;
    size_t aml = 0, asl = 0;
    assert_int_equal(hetee_refine_fetch_auth_msg((uint32_t)MODEL + (k == 2), &p, L, &am, &aml), 0);
    assert_int_equal(hetee_client_session_seal(k == 1 ? dps : other, am, aml, &as, &asl), 0);
    free(am);
    tg[k] = malloc(2 * asl + 128);
    int o2 = snprintf(tg[k], 2 * asl + 128, "/v1/refine/%lld/weights?layer=%d&auth=", (long long)job, L);
    for (size_t i = 0; i < asl; i++) o2 += snprintf(tg[k] + o2, 3, "%02x", as[i]);
    free(as);
  }
  long hs = 0;
  uint8_t *resp = NULL, *plain = NULL;
  size_t rlen = 0, pl = 0;
  assert_int_equal(hetee_client_request(mp, "GET", tg[0], NULL, NULL, 0, &hs, &resp, &rlen), 0);
  assert_int_equal(hs, 200);
  assert_int_not_equal(hetee_client_session_open(dps, resp, rlen, &plain, &pl), 0);
  assert_int_equal(hetee_client_session_open(other, resp, rlen, &plain, &pl), 0);
  hetee_refine_weights w3;
  assert_int_equal(hetee_refine_weights_copy(&wp, &w3), 0);
  assert_int_equal(hetee_refine_fetch_parse(plain, pl, (uint32_t)MODEL, &w3), 0);
  assert_true(hetee_refine_weights_maxdiff(&w3, &we, 0) == 0.0);
  free(plain);
  free(resp);
  resp = NULL;
  assert_int_equal(hetee_client_request(mp, "GET", tg[0], NULL, NULL, 0, &hs, &resp, &rlen), 0);
  fprintf(stderr, "refine kill9: a replayed fetch authorization: HTTP %ld %.*s\n", hs, (int)rlen, resp ? (char *)resp : "");
  assert_int_equal(hs, 401);
  free(resp);
  resp = NULL;
  for (int k = 1; k < 3; k++) {
    assert_int_equal(hetee_client_request(mp, "GET", tg[k], NULL, NULL, 0, &hs, &resp, &rlen), 0);
    fprintf(stderr, "refine kill9: a fetch authorized %s: HTTP %ld %.*s\n", k == 1 ? "by the DP" : "for another model",
            hs, (int)rlen, resp ? (char *)resp : "");
    assert_int_equal(hs, 403);
    free(resp);
    resp = NULL;
  }
  for (int k = 0; k < 3; k++) free(tg[k]);
  hetee_client_session_free(dps);
  hetee_client_session_free(other);
  hetee_client_disconnect(dp1b);
  hetee_refine_weights_clear(&w3);
  hetee_refine_weights_clear(&w2);
  hetee_refine_weights_clear(&we);
  hetee_refine_weights_clear(&wp);
  hetee_client_disconnect(mp);
}

/* A checkpoint without the enclave's sealed part (as a job killed before
 * its first sealed checkpoint would leave): after a restart the job waits
 * in needs_auth; the MP's resume authorizes that checkpoint in a new
 * session; the job then trains as usual and ends at plaintext SGD. */
static void test_resume_auth(void **state) {
  (void)state;
  /* the MP's client downloads the checkpoint it authorizes: the trained
   * layer and the cursor (2.1 MB for mlp_small's last layer; the frozen
   * layer's 210 MB stay on the server in ID.ckpt.frozen) */
  char onnx[512];
  sfx_model_path(onnx, sizeof onnx, "mlp_small");
  size_t n = 128;
  const float *x = X, *y = Y;
  hetee_client_conn *mp, *dp1, *dp2;
  assert_int_equal(hetee_client_connect(F->url, F->mp, &mp), 0);
  hetee_client_refine_options o = opts(onnx, 1, 0.5, (uint32_t)n);
  /* the job's contributor is dp2, which the model's release policy (dp1)
   * does not name: the MP's authorization lists it, the enclave accepts
   * its batches, and the resume's new authorization lists it again */
  o.dps = (const uint8_t(*)[32])F->dp2_pk;
  int64_t job = 0;
  assert_int_equal(hetee_client_refine_start(mp, F->mp, MODEL, &o, &job), 0);
  /* the job's spec and the enclave's parameters, to rewrite its checkpoint */
  json_t *s = status(mp, job);
  const char *sh = json_string_value(json_object_get(s, "spec"));
  size_t sl = strlen(sh) / 2;
  uint8_t *spec = malloc(sl);
  for (size_t i = 0; i < sl; i++) assert_int_equal(sscanf(sh + 2 * i, "%2hhx", &spec[i]), 1);
  json_decref(s);
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_spec_decode(spec, sl, &p), 0);
  free(spec);
  long st = 0;
  uint8_t *bundle = NULL;
  size_t bl = 0;
  assert_int_equal(hetee_client_request(mp, "GET", "/v1/enclave/bundle", NULL, NULL, 0, &st, &bundle, &bl), 0);
  assert_int_equal(st, 200);
  const uint8_t *it;
  size_t il;
  hetee_ckks_context *ctx;
  assert_int_equal(hetee_key_bundle_get(bundle, bl, HETEE_BUNDLE_PARAMS, &it, &il), 0);
  assert_int_equal(hetee_ckks_context_load(it, il, &ctx), 0);
  free(bundle);
  hetee_client_disconnect(mp);
  sfx_stop(F, SIGTERM);
  char ck[400];
  snprintf(ck, sizeof ck, "%s/refine/%lld.ckpt", F->data, (long long)job);
  hetee_refine_state *rs;
  assert_int_equal(hetee_refine_checkpoint_read(ctx, &p, ck, &rs), 0);
  assert_int_equal(hetee_refine_checkpoint_write(rs, ck), 0); /* without the sealed part */
  hetee_refine_state_free(rs);
  { /* the frozen layer's ciphertexts are in ID.ckpt.frozen, named by digest:
     * the checkpoint is refused without that file or with another one */
    char fz[420], aside[430];
    snprintf(fz, sizeof fz, "%s.frozen", ck);
    snprintf(aside, sizeof aside, "%s.aside", fz);
    struct stat sb0, sb1;
    assert_int_equal(stat(ck, &sb0), 0);
    assert_int_equal(stat(fz, &sb1), 0);
    fprintf(stderr, "refine checkpoint %lld bytes, frozen layers %lld bytes\n", (long long)sb0.st_size, (long long)sb1.st_size);
    assert_true(sb0.st_size * 10 < sb1.st_size);
    assert_int_equal(rename(fz, aside), 0);
    assert_int_equal(hetee_refine_checkpoint_read(ctx, &p, ck, &rs), HETEE_ERR_NOT_FOUND);
    FILE *a = fopen(aside, "rb"), *b = fopen(fz, "wb"); /* the same bytes but one */
    assert_non_null(a);
    assert_non_null(b);
    int c;
    long i = 0;
    while ((c = fgetc(a)) != EOF) fputc(i++ == sb1.st_size - 5 ? c ^ 1 : c, b);
    fclose(a);
    fclose(b);
    int rc0 = hetee_refine_checkpoint_read(ctx, &p, ck, &rs);
    assert_true(rc0 == HETEE_ERR_AUTH || rc0 == HETEE_ERR_RANGE || rc0 == HETEE_ERR_FORMAT);
    assert_int_equal(rename(aside, fz), 0);
    assert_int_equal(hetee_refine_checkpoint_read(ctx, &p, ck, &rs), 0);
    hetee_refine_state_free(rs);
  }
  hetee_ckks_context_free(ctx);
  sfx_start(F);
  assert_int_equal(hetee_client_connect(F->url, F->mp, &mp), 0);
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &dp1), 0);
  assert_int_equal(hetee_client_connect(F->url, F->dp2, &dp2), 0);
  s = status(mp, job);
  assert_string_equal(json_string_value(json_object_get(s, "state")), "needs_auth");
  json_decref(s);
  size_t nb = 0;
  /* the model's DP is not one of this job's: refused (403) */
  assert_int_equal(hetee_client_refine_submit(dp1, job, x, y, 64, &nb), HETEE_ERR_AUTH);
  assert_int_equal(nb, 0);
  assert_int_equal(hetee_client_refine_submit(dp2, job, x, y, n, &nb), 0); /* accepted while it waits */
  int rc = hetee_client_refine_resume(mp, F->mp, job);
  if (rc) fprintf(stderr, "resume: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  char fin[24];
  assert_int_equal(hetee_client_refine_wait(mp, job, 600, fin), 0);
  assert_string_equal(fin, "done");
  hetee_refine_weights we, wp;
  rc = hetee_client_refine_fetch(mp, F->mp, job, NULL, &we);
  if (rc) fprintf(stderr, "fetch: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  plain_ref(onnx, &o, x, y, n, &wp);
  double d = hetee_refine_weights_maxdiff(&we, &wp, 0);
  fprintf(stderr, "refine resume (MP authorization): encrypted vs plaintext max |dw| %.3g\n", d);
  assert_true(d < 1e-4);
  hetee_refine_weights_clear(&we);
  hetee_refine_weights_clear(&wp);
  hetee_client_disconnect(mp);
  hetee_client_disconnect(dp1);
  hetee_client_disconnect(dp2);
}

/* The enclave holds at most 4 open refine jobs: a job that finished gives
 * its slot back (its last sealed checkpoint holds everything), so 5 jobs
 * run one after the other on one server and enclave, each fetched after
 * all of them finished (the enclave reopens each from its sealed
 * checkpoint and closes it again) at plaintext SGD; the enclave's counts
 * stay in the status. */
static void test_slots(void **state) {
  (void)state;
  char onnx[512];
  sfx_model_path(onnx, sizeof onnx, "mlp_small");
  enum { NJ = HETEE_REFINE_MAX_JOBS + 1 };
  hetee_client_conn *mp, *dp1;
  assert_int_equal(hetee_client_connect(F->url, F->mp, &mp), 0);
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &dp1), 0);
  int64_t jobs[NJ];
  hetee_client_refine_options o = opts(onnx, 1, 0.0, 64);
  for (int i = 0; i < NJ; i++) {
    const float *x = X + (size_t)i * 64 * 784, *y = Y + (size_t)i * 64;
    int rc = hetee_client_refine_start(mp, F->mp, MODEL, &o, &jobs[i]);
    if (rc) fprintf(stderr, "refine slots: start %d: %s\n", i, hetee_last_error());
    assert_int_equal(rc, 0);
    size_t nb = 0;
    assert_int_equal(hetee_client_refine_submit(dp1, jobs[i], x, y, 64, &nb), 0);
    char st[24];
    assert_int_equal(hetee_client_refine_wait(mp, jobs[i], 600, st), 0);
    assert_string_equal(st, "done");
    json_t *s = status(mp, jobs[i]);
    assert_int_equal(jint(s, "enclave_holds"), 0); /* closed */
    assert_int_equal(jint(json_object_get(s, "enclave"), "samples"), 64);
    json_decref(s);
  }
  for (int i = 0; i < NJ; i++) {
    hetee_refine_weights we, wp;
    int rc = hetee_client_refine_fetch(mp, F->mp, jobs[i], NULL, &we);
    if (rc) fprintf(stderr, "refine slots: fetch %d: %s\n", i, hetee_last_error());
    assert_int_equal(rc, 0);
    plain_ref(onnx, &o, X + (size_t)i * 64 * 784, Y + (size_t)i * 64, 64, &wp);
    double d = hetee_refine_weights_maxdiff(&we, &wp, 0);
    fprintf(stderr, "refine slots: job %d of %d, encrypted vs plaintext max |dw| %.3g\n", i + 1, NJ, d);
    assert_true(d < 1e-4);
    hetee_refine_weights_clear(&we);
    hetee_refine_weights_clear(&wp);
  }
  hetee_client_disconnect(mp);
  hetee_client_disconnect(dp1);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_epoch), cmocka_unit_test(test_kill9),
                                     cmocka_unit_test(test_resume_auth), cmocka_unit_test(test_slots)};
  return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * test_service.c — `hetee server` driven over loopback through the client
 * library and raw HTTP: the full MP / DP flow on the bundled E2DM model,
 * access control (a DP outside the policy, another DP's job and results),
 * signatures (wrong, replayed, body changed), bad input (sizes, content
 * types, JSON, truncated and foreign-parameter ciphertexts) with the server
 * still serving, and kill -9 in the middle of a queue: after a restart every
 * acknowledged job finishes exactly once. Every job runs bound (docs/
 * security.md, issue 9): the enclave's integrity counters, results sealed
 * to the DP's identity (another DP's key, another sample or model do not
 * open them), authorizations signed by another DP or over another nonce
 * refused, a stored input the host substituted or a stored witness it
 * altered refused by the enclave, and kill -9 of the enclave mid-queue
 * (model bound again, jobs run again). Jobs of the client library carry
 * input witnesses (the enclave starts them from the witnesses); the
 * ciphertext-digest form of older clients is still accepted and tested.
 */
#include "service/service_fixture.h"

#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <sys/time.h>
#include <sys/stat.h>

#include "enclave/wire/proto.h"
#include "hetee/engine.h"
#include "service/reqsig.h"
#include "hemat/engine_internal.h"

#define NIMG 8

static sfx *F;
static int64_t MODEL; /* e2dm, micro-batch 8, allowed: dp1 */
static float *X;
static int PLAIN[NIMG];
static size_t STAGES; /* of e2dm's plan */
static size_t F_STAGES(void) { return STAGES; }

static int setup(void **state) {
  F = sfx_new();
  X = sfx_images(NIMG, NULL);
  char mp[512];
  sfx_model_path(mp, sizeof mp, "e2dm");
  sfx_plain_labels(mp, X, NIMG, PLAIN);
  hetee_nn_model *nm = NULL;
  hetee_engine_plan *pl = NULL;
  hetee_engine_plan_options po = {0};
  po.micro_batch = NIMG;
  assert_int_equal(hetee_nn_model_load(mp, &nm), 0);
  assert_int_equal(hetee_engine_plan_build(nm, &po, &pl), 0);
  STAGES = hetee_engine_plan_num_stages(pl);
  hetee_engine_plan_free(pl);
  hetee_nn_model_free(nm);
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->mp, &c), 0);
  hetee_client_model_options o = {.name = "e2dm", .batch = NIMG, .output = "label",
                                  .dps = (const uint8_t(*)[32])F->dp1_pk, .ndps = 1};
  int rc = hetee_client_model_upload(c, mp, &o, &MODEL);
  if (rc) fprintf(stderr, "upload: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  hetee_client_disconnect(c);
  return 0;
}

static int teardown(void **state) {
  sfx_free(F);
  free(X);
  return 0;
}

/* Runs NIMG images as dp1 and checks the labels against the plaintext
 * engine (at most one disagreement: CKKS noise may flip a near tie). */
static void infer_checked(hetee_client_conn *c, int64_t model) {
  hetee_client_job *j;
  int rc = hetee_client_job_submit(c, model, X, NIMG, &j);
  if (rc) fprintf(stderr, "submit: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  hetee_release_result *r;
  size_t n;
  assert_int_equal(hetee_client_job_await(c, j, &r, &n), 0); /* wait + fetch in one long poll */
  assert_int_equal(n, NIMG);
  int agree = 0;
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(r[i].kind, HETEE_RELEASE_ARGMAX);
    agree += (int)r[i].indices[0] == PLAIN[i];
  }
  assert_true(agree >= NIMG - 1);
  hetee_client_results_free(r, n);
  hetee_client_job_free(j);
}

/* A session command through the server (a fresh attested session of c). */
static void session_cmd(hetee_client_conn *c, uint8_t *msg, size_t ml, uint8_t **reply, size_t *rlen) {
  hetee_client_session *s;
  char sid[33], t[128];
  assert_int_equal(hetee_client_session_open_remote(c, &s, sid), 0);
  uint8_t *sealed, *body;
  size_t sl, bl;
  long st;
  assert_int_equal(hetee_client_session_seal(s, msg, ml, &sealed, &sl), 0);
  free(msg);
  snprintf(t, sizeof t, "/v1/sessions/%s/messages", sid);
  assert_int_equal(hetee_client_request(c, "POST", t, "application/octet-stream", sealed, sl, &st, &body, &bl), 0);
  assert_int_equal(st, 200);
  assert_int_equal(hetee_client_session_open(s, body, bl, reply, rlen), 0);
  free(sealed);
  free(body);
  hetee_client_session_free(s);
}

static void integrity_status_of(hetee_client_conn *c, int64_t model, hetee_integrity_status *out) {
  uint8_t *m, *r;
  size_t ml, rl;
  assert_int_equal(hetee_client_msg_integrity_status((uint32_t)model, &m, &ml), 0);
  session_cmd(c, m, ml, &r, &rl);
  assert_int_equal(hetee_client_integrity_status_parse(r, rl, out), 0);
  free(r);
}

static void integrity_status(hetee_client_conn *c, hetee_integrity_status *out) { integrity_status_of(c, MODEL, out); }

static hetee_party_key *home_key(const char *home) {
  char p[400];
  hetee_party_key *k;
  snprintf(p, sizeof p, "%s/id", home);
  assert_int_equal(hetee_party_key_load(p, &k), 0);
  return k;
}

/* Waits for job j and checks its labels against the plaintext engine's
 * (one disagreement allowed). */
static void labels_checked(hetee_client_conn *c, hetee_client_job *j) {
  int rc = hetee_client_job_wait(c, j);
  if (rc) fprintf(stderr, "wait: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  hetee_release_result *r;
  size_t n;
  assert_int_equal(hetee_client_job_results(c, j, &r, &n), 0);
  assert_int_equal(n, NIMG);
  int agree = 0;
  for (size_t k = 0; k < n; k++) agree += (int)r[k].indices[0] == PLAIN[k];
  assert_true(agree >= NIMG - 1);
  hetee_client_results_free(r, n);
}

static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)n + 1);
  assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return b;
}

/* A stored job file (DIR/jobs/ID.htei: the body as received) ends with the
 * input witnesses of a witness-form job: the offset where they start (the
 * last "HTWT" version 1 header whose n entries end exactly at the end of the
 * file), or n when the file ends with none. */
static size_t witness_at(const uint8_t *b, size_t n) {
  for (size_t off = n >= 16 ? n - 15 : 0; off-- > 0;) {
    if (memcmp(b + off, "HTWT\x01\x00\x00\x00", 8)) continue;
    uint32_t cnt = (uint32_t)b[off + 12] | (uint32_t)b[off + 13] << 8 | (uint32_t)b[off + 14] << 16 |
                   (uint32_t)b[off + 15] << 24;
    size_t p = off + 16;
    for (uint32_t k = 0; k < cnt && p + 12 <= n; k++) {
      uint64_t l = 0;
      for (int i = 7; i >= 0; i--) l = l << 8 | b[p + 4 + (size_t)i];
      p = l <= n - p - 12 ? p + 12 + (size_t)l : n + 1;
    }
    if (p == n) return off;
  }
  return n;
}

static size_t file_witness_at(const char *path, size_t *len) {
  uint8_t *b = read_file(path, len);
  size_t w = witness_at(b, *len);
  free(b);
  return w;
}

static void test_flow(void **state) {
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  hetee_verified_enclave v;
  assert_int_equal(hetee_client_attest(c, &v), 0);
  infer_checked(c, MODEL);
  /* the DP sees the model, with its budget; the listing names it */
  long st;
  uint8_t *body;
  char t[64];
  snprintf(t, sizeof t, "/v1/models/%lld", (long long)MODEL);
  assert_int_equal(hetee_client_request(c, "GET", t, NULL, NULL, 0, &st, &body, NULL), 0);
  assert_int_equal(st, 200);
  assert_non_null(strstr((char *)body, "\"budget\":-1"));
  assert_non_null(strstr((char *)body, "\"state\":\"ready\""));
  free(body);
  /* a fresh client of the same identity attaches to the finished job (its
   * own signed authorization from the server) and opens the results */
  hetee_client_conn *c2;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c2), 0);
  hetee_client_job *last = NULL;
  assert_int_equal(hetee_client_job_submit(c2, MODEL, X, NIMG, &last), 0);
  int64_t jid = hetee_client_job_id(last);
  hetee_client_job_free(last);
  hetee_client_disconnect(c2);
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c2), 0);
  hetee_client_job *att = NULL;
  assert_int_equal(hetee_client_job_attach(c2, jid, &att), 0);
  labels_checked(c2, att);
  hetee_client_job_free(att);
  hetee_client_disconnect(c2);
  /* dp2 cannot attach to it (the job is invisible to it) */
  assert_int_equal(hetee_client_connect(F->url, F->dp2, &c2), 0);
  assert_int_equal(hetee_client_job_attach(c2, jid, &att), HETEE_ERR_NOT_FOUND);
  hetee_client_disconnect(c2);
  /* the job ran bound: the enclave counts its released jobs and checks */
  hetee_integrity_status is;
  integrity_status(c, &is);
  assert_true(is.loaded);
  assert_true(is.jobs >= 2);
  assert_true(is.checks >= (uint64_t)NIMG * 2);
  assert_int_equal(is.failures, 0);
  hetee_client_disconnect(c);
}

/* Sessions the server relayed for party pk (its store's sessions table). */
static int sessions_of(const uint8_t pk[32]) {
  char db[400], hex[65];
  snprintf(db, sizeof db, "%s/hetee.db", F->data);
  reqsig_hex(pk, 32, hex);
  sqlite3 *d;
  assert_int_equal(sqlite3_open_v2(db, &d, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_busy_timeout(d, 5000);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(d, "SELECT COUNT(*) FROM sessions WHERE party = ?", -1, &st, NULL), SQLITE_OK);
  sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int n = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(d);
  return n;
}

/* The key bundle's ETag (its fingerprint, as GET /v1/enclave reports it):
 * If-None-Match with it answers 304 with no body, anything else 200 with
 * the bundle. A connection attests and opens one enclave session (the
 * release key) for its first job only: three jobs on one connection add
 * one session, each with the right labels. */
static void test_client_cache(void **state) {
  char *b = NULL, req[512];
  const char *info = "GET /v1/enclave HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const char *bundle = "GET /v1/enclave/bundle HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  assert_int_equal(sfx_raw(F, info, strlen(info), &b), 200);
  const char *fp = strstr(b, "\"bundle_fp\":\"");
  assert_non_null(fp);
  char etag[80];
  snprintf(etag, sizeof etag, "ETag: \"%.64s\"", fp + 13);
  free(b);
  assert_int_equal(sfx_raw(F, bundle, strlen(bundle), &b), 200);
  assert_non_null(strstr(b, etag));
  free(b);
  int n = snprintf(req, sizeof req, "GET /v1/enclave/bundle HTTP/1.1\r\nHost: x\r\nConnection: close\r\nIf-None-Match: %s\r\n\r\n",
                   etag + 6);
  assert_int_equal(sfx_raw(F, req, (size_t)n, &b), 304);
  assert_non_null(strstr(b, etag));
  const char *end = strstr(b, "\r\n\r\n");
  assert_non_null(end);
  assert_int_equal(strlen(end + 4), 0);
  free(b);
  n = snprintf(req, sizeof req, "GET /v1/enclave/bundle HTTP/1.1\r\nHost: x\r\nConnection: close\r\nIf-None-Match: \"%064d\"\r\n\r\n", 0);
  assert_int_equal(sfx_raw(F, req, (size_t)n, &b), 200);
  free(b);

  int before = sessions_of(F->dp1_pk);
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  for (int i = 0; i < 3; i++) infer_checked(c, MODEL);
  assert_int_equal(sessions_of(F->dp1_pk), before + 1);

  /* GET /v1/jobs/ID?wait=S (a long poll, 0..10 s): malformed or too long
   * waits refused, and asking until the job is final ends with it done */
  hetee_client_job *j;
  assert_int_equal(hetee_client_job_submit(c, MODEL, X, NIMG, &j), 0);
  char t[96];
  long st;
  uint8_t *body;
  static const char *const bad[] = {"11", "-1", "x", ""};
  for (int i = 0; i < 4; i++) {
    snprintf(t, sizeof t, "/v1/jobs/%lld?wait=%s", (long long)hetee_client_job_id(j), bad[i]);
    assert_int_equal(hetee_client_request(c, "GET", t, NULL, NULL, 0, &st, &body, NULL), 0);
    assert_int_equal(st, 400);
    assert_non_null(strstr((char *)body, "bad_wait"));
    free(body);
  }
  for (int done = 0; !done;) {
    snprintf(t, sizeof t, "/v1/jobs/%lld?wait=10", (long long)hetee_client_job_id(j));
    assert_int_equal(hetee_client_request(c, "GET", t, NULL, NULL, 0, &st, &body, NULL), 0);
    assert_int_equal(st, 200);
    assert_null(strstr((char *)body, "\"failed\""));
    done = strstr((char *)body, "\"state\":\"done\"") != NULL;
    free(body);
  }
  hetee_release_result *r;
  size_t nr;
  assert_int_equal(hetee_client_job_results(c, j, &r, &nr), 0);
  assert_int_equal(nr, NIMG);
  hetee_client_results_free(r, nr);
  hetee_client_job_free(j);
  hetee_client_disconnect(c);
}

/* Progress (hetee_client_set_progress): a job of 20 images (micro-batches
 * of 8, 8, 4) prepared, sent, waited for and opened reports each phase
 * with one total, done never decreasing and ending at the total (encrypt:
 * 3 micro-batches, upload: the body's bytes, wait: its place in the queue
 * + 1, open: 20 results). The server's status gives queue_position (an
 * integer >= 0, 0 while running) exactly while the job is not final, and
 * prepared jobs sent later run as submitted ones. */
#define PHASES 5
typedef struct {
  const char *name[PHASES];
  uint64_t done[PHASES], total[PHASES];
  int calls[PHASES], bad;
} prog_log;

static void on_progress(void *ud, const char *phase, uint64_t done, uint64_t total) {
  prog_log *L = ud;
  int i = 0;
  while (i < PHASES && L->name[i] && strcmp(L->name[i], phase)) i++;
  if (i == PHASES) {
    L->bad++;
    return;
  }
  if (!L->name[i]) {
    L->name[i] = phase;
    L->total[i] = total;
  } else if (L->total[i] != total || done < L->done[i]) {
    L->bad++;
  }
  if (done > total) L->bad++;
  L->done[i] = done;
  L->calls[i]++;
}

static int prog_phase(const prog_log *L, const char *name) {
  for (int i = 0; i < PHASES && L->name[i]; i++)
    if (!strcmp(L->name[i], name)) return i;
  return -1;
}

static void status_checked(hetee_client_conn *c, int64_t id) {
  char t[96];
  long st;
  uint8_t *body = NULL;
  snprintf(t, sizeof t, "/v1/jobs/%lld", (long long)id);
  assert_int_equal(hetee_client_request(c, "GET", t, NULL, NULL, 0, &st, &body, NULL), 0);
  assert_int_equal(st, 200);
  json_t *j = json_loads((char *)body, 0, NULL);
  free(body);
  assert_non_null(j);
  const char *state = json_string_value(json_object_get(j, "state"));
  json_t *qp = json_object_get(j, "queue_position");
  assert_non_null(state);
  /* progress inside the run: steps (stages x micro-batches) done of total */
  json_t *pg = json_object_get(j, "progress");
  assert_true(json_is_object(pg));
  json_int_t pd = json_integer_value(json_object_get(pg, "done")), pt = json_integer_value(json_object_get(pg, "total"));
  assert_true(pt > 0);
  assert_true(pd >= 0 && pd <= pt);
  if (!strcmp(state, "done")) assert_int_equal(pd, pt);
  if (!strcmp(state, "queued")) assert_int_equal(pd, 0);
  if (!strcmp(state, "done") || !strcmp(state, "failed")) {
    assert_null(qp);
  } else {
    assert_true(json_is_integer(qp));
    assert_true(json_integer_value(qp) >= 0);
    if (!strcmp(state, "running")) assert_int_equal(json_integer_value(qp), 0);
  }
  json_decref(j);
}

/* GET /v1/jobs/ID/result?wait=S: the long poll that waits for the job and
 * answers with its results (hetee_client_job_await); before the job is
 * done it answers 202 with the job's state; S outside 0..10 is a 400. */
static void test_result_wait(void **state) {
  (void)state;
  enum { N = 150 };
  float *x = sfx_images(N, NULL);
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  hetee_client_job *j = NULL;
  assert_int_equal(hetee_client_job_submit(c, MODEL, x, N, &j), 0);
  char t[128];
  long st = 0;
  uint8_t *body = NULL;
  size_t bl = 0;
  snprintf(t, sizeof t, "/v1/jobs/%lld/result?wait=0", (long long)hetee_client_job_id(j));
  assert_int_equal(hetee_client_request(c, "GET", t, NULL, NULL, 0, &st, &body, &bl), 0);
  fprintf(stderr, "result?wait=0 right after the submission: HTTP %ld\n", st);
  assert_true(st == 202 || st == 200); /* 200 only if the job already ran */
  if (st == 202) {
    json_t *o = json_loadb((const char *)body, bl, 0, NULL);
    assert_non_null(o);
    const char *s = json_string_value(json_object_get(o, "state"));
    assert_non_null(s);
    assert_true(!strcmp(s, "queued") || !strcmp(s, "running"));
    assert_int_equal(json_integer_value(json_object_get(o, "id")), hetee_client_job_id(j));
    json_decref(o);
  }
  free(body);
  body = NULL;
  snprintf(t, sizeof t, "/v1/jobs/%lld/result?wait=11", (long long)hetee_client_job_id(j));
  assert_int_equal(hetee_client_request(c, "GET", t, NULL, NULL, 0, &st, &body, &bl), 0);
  assert_int_equal(st, 400);
  free(body);
  body = NULL;
  /* &progress=D belongs to the job's state, not to its results */
  snprintf(t, sizeof t, "/v1/jobs/%lld/result?wait=1&progress=0", (long long)hetee_client_job_id(j));
  assert_int_equal(hetee_client_request(c, "GET", t, NULL, NULL, 0, &st, &body, &bl), 0);
  assert_int_equal(st, 400);
  assert_non_null(strstr((const char *)body, "bad_progress"));
  free(body);
  hetee_release_result *r;
  size_t n;
  assert_int_equal(hetee_client_job_await(c, j, &r, &n), 0);
  assert_int_equal(n, N);
  for (size_t i = 0; i < n; i++) assert_int_equal(r[i].kind, HETEE_RELEASE_ARGMAX);
  hetee_client_results_free(r, n);
  /* done: the plain GET answers the same results, and so does ?wait */
  for (int k = 0; k < 2; k++) {
    body = NULL;
    snprintf(t, sizeof t, "/v1/jobs/%lld/result%s", (long long)hetee_client_job_id(j), k ? "?wait=5" : "");
    assert_int_equal(hetee_client_request(c, "GET", t, NULL, NULL, 0, &st, &body, &bl), 0);
    assert_int_equal(st, 200);
    assert_true(bl > 8 && !memcmp(body, "HTRS", 4));
    free(body);
  }
  hetee_client_job_free(j);
  hetee_client_disconnect(c);
  free(x);
}

static void test_progress(void **state) {
  (void)state;
  enum { N = 20 };
  float *x = sfx_images(N, NULL);
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  prog_log L;
  memset(&L, 0, sizeof L);
  hetee_client_set_progress(c, on_progress, &L);
  hetee_client_prepared *p = NULL;
  assert_int_equal(hetee_client_job_prepare(c, MODEL, x, N, &p), 0);
  int e = prog_phase(&L, "encrypt");
  assert_true(e >= 0);
  assert_int_equal(L.total[e], 3);
  assert_int_equal(L.done[e], 3);
  assert_int_equal(L.calls[e], 4); /* 0, 1, 2, 3 */
  assert_int_equal(prog_phase(&L, "upload"), -1); /* nothing sent yet */
  hetee_client_job *j = NULL;
  assert_int_equal(hetee_client_job_send(c, p, &j), 0);
  hetee_client_prepared_free(p);
  int u = prog_phase(&L, "upload");
  assert_true(u >= 0);
  assert_true(L.total[u] > 100000); /* the ciphertexts */
  assert_int_equal(L.done[u], L.total[u]);
  status_checked(c, hetee_client_job_id(j));
  assert_int_equal(hetee_client_job_wait(c, j), 0);
  status_checked(c, hetee_client_job_id(j));
  int w = prog_phase(&L, "wait");
  assert_true(w >= 0);
  assert_true(L.total[w] >= 1);
  assert_int_equal(L.done[w], L.total[w]);
  /* the run's own steps: 3 micro-batches x the plan's stages */
  int rn = prog_phase(&L, "run");
  assert_true(rn >= 0);
  assert_int_equal(L.total[rn], 3 * F_STAGES());
  assert_int_equal(L.done[rn], L.total[rn]);
  hetee_release_result *r;
  size_t n;
  assert_int_equal(hetee_client_job_results(c, j, &r, &n), 0);
  assert_int_equal(n, N);
  int o = prog_phase(&L, "open");
  assert_true(o >= 0);
  assert_int_equal(L.total[o], N);
  assert_int_equal(L.done[o], N);
  assert_int_equal(L.calls[o], N);
  assert_int_equal(L.bad, 0);
  hetee_client_results_free(r, n);
  hetee_client_job_free(j);

  /* the server's progress of a job, read with long polls that return
   * once more steps are done (&progress=D): the total stays 3 x stages,
   * done never goes back and ends at the total when the job is done */
  hetee_client_set_progress(c, NULL, NULL);
  assert_int_equal(hetee_client_job_submit(c, MODEL, x, N, &j), 0);
  uint64_t seen = 0, answers = 0, inside = 0;
  for (;;) {
    char t[128];
    long hs;
    uint8_t *body = NULL;
    snprintf(t, sizeof t, "/v1/jobs/%lld?wait=5&progress=%llu", (long long)hetee_client_job_id(j),
             (unsigned long long)seen);
    assert_int_equal(hetee_client_request(c, "GET", t, NULL, NULL, 0, &hs, &body, NULL), 0);
    assert_int_equal(hs, 200);
    json_t *jo = json_loads((char *)body, 0, NULL);
    free(body);
    assert_non_null(jo);
    const char *st = json_string_value(json_object_get(jo, "state"));
    json_t *pg = json_object_get(jo, "progress");
    assert_non_null(st);
    assert_true(json_is_object(pg));
    uint64_t pd = (uint64_t)json_integer_value(json_object_get(pg, "done"));
    assert_int_equal(json_integer_value(json_object_get(pg, "total")), 3 * STAGES);
    assert_true(pd >= seen);
    assert_true(pd <= 3 * STAGES);
    answers++;
    inside += pd > 0 && pd < 3 * STAGES;
    seen = pd;
    int fin = !strcmp(st, "done") || !strcmp(st, "failed");
    if (fin) assert_string_equal(st, "done");
    json_decref(jo);
    if (fin) break;
  }
  assert_int_equal(seen, 3 * STAGES);
  printf("  progress: %llu answers, %llu of them inside the run (of %zu steps)\n", (unsigned long long)answers,
         (unsigned long long)inside, 3 * STAGES);
  /* a malformed progress value */
  {
    long hs;
    char t[128];
    snprintf(t, sizeof t, "/v1/jobs/%lld?wait=0&progress=x", (long long)hetee_client_job_id(j));
    uint8_t *body = NULL;
    assert_int_equal(hetee_client_request(c, "GET", t, NULL, NULL, 0, &hs, &body, NULL), 0);
    free(body);
    assert_int_equal(hs, 400);
  }
  hetee_client_job_free(j);

  /* three prepared jobs sent back to back: each status consistent, each
   * done with its own images' labels */
  hetee_client_set_progress(c, NULL, NULL);
  hetee_client_prepared *ps[3];
  hetee_client_job *js[3];
  for (int i = 0; i < 3; i++) assert_int_equal(hetee_client_job_prepare(c, MODEL, X, NIMG, &ps[i]), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(hetee_client_job_send(c, ps[i], &js[i]), 0);
  for (int i = 0; i < 3; i++) status_checked(c, hetee_client_job_id(js[i]));
  for (int i = 0; i < 3; i++) {
    assert_int_equal(hetee_client_job_wait(c, js[i]), 0);
    assert_int_equal(hetee_client_job_results(c, js[i], &r, &n), 0);
    assert_int_equal(n, NIMG);
    int agree = 0;
    for (size_t k = 0; k < n; k++) agree += (int)r[k].indices[0] == PLAIN[k];
    assert_true(agree >= NIMG - 1);
    hetee_client_results_free(r, n);
    hetee_client_job_free(js[i]);
    hetee_client_prepared_free(ps[i]);
  }
  hetee_client_disconnect(c);
  free(x);
}

/* A DP not in the model's policy: refused at submission (403), the model
 * invisible (404); it cannot read or open dp1's job. */
static void test_access(void **state) {
  hetee_client_conn *c1, *c2;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c1), 0);
  assert_int_equal(hetee_client_connect(F->url, F->dp2, &c2), 0);
  hetee_client_job *j2 = NULL;
  assert_int_equal(hetee_client_job_submit(c2, MODEL, X, NIMG, &j2), HETEE_ERR_NOT_FOUND); /* plan invisible */
  long st;
  uint8_t *body = NULL;
  char t[400];
  snprintf(t, sizeof t, "/v1/models/%lld", (long long)MODEL);
  assert_int_equal(hetee_client_request(c2, "GET", t, NULL, NULL, 0, &st, &body, NULL), 0);
  assert_int_equal(st, 404);
  free(body);
  /* submitting directly: 403 before any body byte is used */
  hetee_client_session *s2;
  char sid2[33];
  assert_int_equal(hetee_client_session_open_remote(c2, &s2, sid2), 0);
  snprintf(t, sizeof t, "/v1/jobs?model=%lld&session=%s", (long long)MODEL, sid2);
  assert_int_equal(hetee_client_request(c2, "POST", t, "application/octet-stream", (const uint8_t *)"x", 1, &st, &body, NULL), 0);
  assert_int_equal(st, 403);
  assert_non_null(strstr((char *)body, "does not name this data provider"));
  free(body);
  /* dp1's job: invisible to dp2, its result unopenable by dp2's session */
  hetee_client_job *j1;
  assert_int_equal(hetee_client_job_submit(c1, MODEL, X, NIMG, &j1), 0);
  assert_int_equal(hetee_client_job_wait(c1, j1), 0);
  snprintf(t, sizeof t, "/v1/jobs/%lld/result", (long long)hetee_client_job_id(j1));
  assert_int_equal(hetee_client_request(c2, "GET", t, NULL, NULL, 0, &st, &body, NULL), 0);
  assert_int_equal(st, 404);
  free(body);
  size_t len;
  assert_int_equal(hetee_client_request(c1, "GET", t, NULL, NULL, 0, &st, &body, &len), 0);
  assert_int_equal(st, 200);
  assert_true(len > 12);
  uint32_t l0 = (uint32_t)body[8] | (uint32_t)body[9] << 8 | (uint32_t)body[10] << 16 | (uint32_t)body[11] << 24;
  hetee_release_result rr;
  assert_int_equal(hetee_client_release_open(s2, body + 12, l0, &rr), HETEE_ERR_AUTH);
  /* sealed to dp1's identity: dp2's identity key does not open it, dp1's
   * does only as sample 0 of its own micro-batch */
  uint8_t *m, *rep, rpk[32];
  size_t ml, rl;
  assert_int_equal(hetee_client_msg_release_key(&m, &ml), 0);
  session_cmd(c1, m, ml, &rep, &rl);
  assert_int_equal(hetee_client_release_key_parse(rep, rl, rpk), 0);
  free(rep);
  /* the job's stored authorization (GET /v1/jobs/ID/auth: from its row) */
  snprintf(t, sizeof t, "/v1/jobs/%lld/auth", (long long)hetee_client_job_id(j1));
  size_t al;
  uint8_t *ab = NULL;
  assert_int_equal(hetee_client_request(c1, "GET", t, NULL, NULL, 0, &st, &ab, &al), 0);
  assert_int_equal(st, 200);
  hetee_job_auth *a = calloc(1, sizeof *a);
  assert_int_equal(hetee_job_auth_decode(ab, al, a), 0);
  free(ab);
  hetee_party_key *k1 = home_key(F->dp1), *k2 = home_key(F->dp2);
  assert_int_equal(hetee_client_release_open_id(k2, rpk, (uint32_t)MODEL, a->digest[0], 0, body + 12, l0, &rr), HETEE_ERR_AUTH);
  assert_int_equal(hetee_client_release_open_id(k1, rpk, (uint32_t)MODEL, a->digest[0], 1, body + 12, l0, &rr), HETEE_ERR_AUTH);
  assert_int_equal(hetee_client_release_open_id(k1, rpk, (uint32_t)MODEL + 1, a->digest[0], 0, body + 12, l0, &rr),
                   HETEE_ERR_AUTH);
  assert_int_equal(hetee_client_release_open_id(k1, rpk, (uint32_t)MODEL, a->digest[0], 0, body + 12, l0, &rr), 0);
  assert_int_equal((int)rr.indices[0], PLAIN[0]);
  hetee_release_result_clear(&rr);
  free(body);
  /* dp1 submitting with an authorization signed by dp2 (the same input,
   * digests and nonce): 403, nothing queued */
  char in[600];
  snprintf(in, sizeof in, "%s/jobs/%lld.htei", F->data, (long long)hetee_client_job_id(j1));
  size_t il;
  uint8_t *ib = read_file(in, &il);
  il = witness_at(ib, il); /* the input, without the witnesses stored after it */
  assert_true(il > 0);
  randombytes_buf(a->nonce, 16);
  assert_int_equal(hetee_job_auth_sign(a, k2), 0);
  char hn[33], hs[129];
  reqsig_hex(a->nonce, 16, hn);
  reqsig_hex(a->sig, 64, hs);
  snprintf(t, sizeof t, "/v1/jobs?model=%lld&nonce=%s&auth=%s", (long long)MODEL, hn, hs);
  assert_int_equal(hetee_client_request(c1, "POST", t, "application/octet-stream", ib, il, &st, &body, NULL), 0);
  assert_int_equal(st, 403);
  assert_non_null(strstr((char *)body, "bad_authorization"));
  free(body);
  /* ... and dp1's own signature, over another nonce than the one sent */
  assert_int_equal(hetee_job_auth_sign(a, k1), 0);
  reqsig_hex(a->sig, 64, hs);
  randombytes_buf(a->nonce, 16);
  reqsig_hex(a->nonce, 16, hn);
  snprintf(t, sizeof t, "/v1/jobs?model=%lld&nonce=%s&auth=%s", (long long)MODEL, hn, hs);
  assert_int_equal(hetee_client_request(c1, "POST", t, "application/octet-stream", ib, il, &st, &body, NULL), 0);
  assert_int_equal(st, 403);
  free(body);
  free(ib);
  free(a);
  hetee_party_key_free(k1);
  hetee_party_key_free(k2);
  hetee_client_session_free(s2);
  hetee_client_job_free(j1);
  hetee_client_disconnect(c1);
  hetee_client_disconnect(c2);
}

/* The ciphertext-digest form (clients before input witnesses): a job
 * submitted without ?witness=, its authorization over the input
 * ciphertexts' digests, runs bound and opens as before; with ?witness= the
 * server refuses a witness part that does not fit the plan (400) and an
 * authorization over the ciphertexts instead of the witnesses (403). */
static void test_ciphertext_form(void **state) {
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  assert_int_equal(hetee_client_attest(c, NULL), 0);
  long st;
  uint8_t *bundle = NULL, *pb = NULL, *body = NULL;
  size_t blen = 0, pl = 0;
  assert_int_equal(hetee_client_request(c, "GET", "/v1/enclave/bundle", NULL, NULL, 0, &st, &bundle, &blen), 0);
  assert_int_equal(st, 200);
  const uint8_t *it;
  size_t il;
  hetee_ckks_context *ctx = NULL;
  hetee_ckks_public_key *pk = NULL;
  assert_int_equal(hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PARAMS, &it, &il), 0);
  assert_int_equal(hetee_ckks_context_load(it, il, &ctx), 0);
  assert_int_equal(hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PUBLIC_KEY, &it, &il), 0);
  assert_int_equal(hetee_ckks_public_key_load(ctx, it, il, &pk), 0);
  free(bundle);
  char t[400];
  snprintf(t, sizeof t, "/v1/models/%lld/plan", (long long)MODEL);
  assert_int_equal(hetee_client_request(c, "GET", t, NULL, NULL, 0, &st, &pb, &pl), 0);
  assert_int_equal(st, 200);
  hetee_engine_plan *plan = NULL;
  assert_int_equal(engine_plan_load(pb, pl, &plan), 0);
  free(pb);
  hetee_engine_input *in = NULL;
  uint8_t *ib = NULL;
  size_t ilen = 0;
  assert_int_equal(hetee_engine_input_encrypt(ctx, pk, plan, X, NIMG, &in), 0);
  assert_int_equal(hetee_engine_input_save(in, &ib, &ilen), 0);
  hetee_job_auth *a = calloc(1, sizeof *a);
  assert_int_equal(hetee_job_auth_digests(a, (uint32_t)MODEL, in, plan), 0);
  hetee_engine_input_free(in);
  randombytes_buf(a->nonce, 16);
  hetee_party_key *k1 = home_key(F->dp1);
  assert_int_equal(hetee_job_auth_sign(a, k1), 0);
  char hn[33], hs[129];
  reqsig_hex(a->nonce, 16, hn);
  reqsig_hex(a->sig, 64, hs);
  /* the ciphertext-digest authorization sent as if over witnesses: the
   * witness part (here the input's own tail) is not a witness file */
  snprintf(t, sizeof t, "/v1/jobs?model=%lld&nonce=%s&auth=%s&witness=%zu", (long long)MODEL, hn, hs, (size_t)64);
  assert_int_equal(hetee_client_request(c, "POST", t, "application/octet-stream", ib, ilen, &st, &body, NULL), 0);
  assert_int_equal(st, 400);
  free(body);
  snprintf(t, sizeof t, "/v1/jobs?model=%lld&nonce=%s&auth=%s&witness=-1", (long long)MODEL, hn, hs);
  assert_int_equal(hetee_client_request(c, "POST", t, "application/octet-stream", ib, ilen, &st, &body, NULL), 0);
  assert_int_equal(st, 400);
  assert_non_null(strstr((char *)body, "bad_witness"));
  free(body);
  /* real witnesses of these images, but the signature is over the
   * ciphertexts: 403 */
  uint8_t *m, *rep, rpk[32];
  size_t ml, rl;
  assert_int_equal(hetee_client_msg_release_key(&m, &ml), 0);
  session_cmd(c, m, ml, &rep, &rl);
  assert_int_equal(hetee_client_release_key_parse(rep, rl, rpk), 0);
  free(rep);
  hetee_engine_witnesses w = {0};
  uint8_t *wb = NULL;
  size_t wl = 0;
  assert_int_equal(hetee_engine_witnesses_make(plan, (uint32_t)MODEL, rpk, X, NIMG, &w), 0);
  assert_int_equal(hetee_engine_witnesses_save(&w, (uint32_t)MODEL, &wb, &wl), 0);
  hetee_engine_witnesses_clear(&w);
  uint8_t *both = malloc(ilen + wl);
  memcpy(both, ib, ilen);
  memcpy(both + ilen, wb, wl);
  snprintf(t, sizeof t, "/v1/jobs?model=%lld&nonce=%s&auth=%s&witness=%zu", (long long)MODEL, hn, hs, wl);
  assert_int_equal(hetee_client_request(c, "POST", t, "application/octet-stream", both, ilen + wl, &st, &body, NULL), 0);
  assert_int_equal(st, 403);
  assert_non_null(strstr((char *)body, "bad_authorization"));
  free(body);
  /* witnesses of the wrong shape (one sample short): 400 */
  assert_int_equal(hetee_engine_witnesses_make(plan, (uint32_t)MODEL, rpk, X, NIMG - 1, &w), 0);
  free(wb);
  assert_int_equal(hetee_engine_witnesses_save(&w, (uint32_t)MODEL, &wb, &wl), 0);
  hetee_engine_witnesses_clear(&w);
  both = realloc(both, ilen + wl);
  memcpy(both + ilen, wb, wl);
  snprintf(t, sizeof t, "/v1/jobs?model=%lld&nonce=%s&auth=%s&witness=%zu", (long long)MODEL, hn, hs, wl);
  assert_int_equal(hetee_client_request(c, "POST", t, "application/octet-stream", both, ilen + wl, &st, &body, NULL), 0);
  assert_int_equal(st, 400);
  assert_non_null(strstr((char *)body, "witnesses refused"));
  free(body);
  free(both);
  free(wb);
  /* the ciphertext-digest form itself: accepted, run, opened */
  snprintf(t, sizeof t, "/v1/jobs?model=%lld&nonce=%s&auth=%s", (long long)MODEL, hn, hs);
  assert_int_equal(hetee_client_request(c, "POST", t, "application/octet-stream", ib, ilen, &st, &body, NULL), 0);
  assert_int_equal(st, 202);
  long long id = 0;
  const char *idp = strstr((char *)body, "\"id\":");
  assert_non_null(idp);
  assert_int_equal(sscanf(idp + 5, "%lld", &id), 1);
  free(body);
  assert_true(id > 0);
  char wp[600];
  size_t wlen;
  snprintf(wp, sizeof wp, "%s/jobs/%lld.htei", F->data, (long long)id);
  size_t wat = file_witness_at(wp, &wlen);
  assert_int_equal(wat, wlen); /* no witnesses stored */
  assert_int_equal(wlen, ilen);
  hetee_client_job *j = NULL;
  assert_int_equal(hetee_client_job_attach(c, id, &j), 0);
  assert_int_equal(hetee_client_job_wait(c, j), 0);
  hetee_release_result *rr;
  size_t nr;
  assert_int_equal(hetee_client_job_results(c, j, &rr, &nr), 0);
  assert_int_equal(nr, NIMG);
  int agree = 0;
  for (size_t i = 0; i < nr; i++) agree += (int)rr[i].indices[0] == PLAIN[i];
  assert_true(agree >= NIMG - 1);
  hetee_client_results_free(rr, nr);
  hetee_client_job_free(j);
  /* and a job of the library (witness form) stores its witnesses */
  assert_int_equal(hetee_client_job_submit(c, MODEL, X, NIMG, &j), 0);
  snprintf(wp, sizeof wp, "%s/jobs/%lld.htei", F->data, (long long)hetee_client_job_id(j));
  assert_true(file_witness_at(wp, &wlen) < wlen); /* its witnesses after its input */
  assert_int_equal(hetee_client_job_wait(c, j), 0);
  hetee_client_job_free(j);
  free(ib);
  free(a);
  hetee_party_key_free(k1);
  hetee_engine_plan_free(plan);
  hetee_ckks_public_key_free(pk);
  hetee_ckks_context_free(ctx);
  hetee_client_disconnect(c);
}

/* A raw signed request (as the client library signs) with optional damage. */
static int signed_raw(const char *home, const char *method, const char *target, const char *ctype, const char *body,
                      int damage, char **resp, char *replay_buf, size_t rbcap) {
  hetee_party_key *k;
  char p[400];
  snprintf(p, sizeof p, "%s/id", home);
  assert_int_equal(hetee_party_key_load(p, &k), 0);
  uint8_t bh[32], nonce[16], key[32], d[32], sig[64];
  size_t blen = body ? strlen(body) : 0;
  reqsig_body_hash((const uint8_t *)(body ? body : ""), blen, bh);
  randombytes_buf(nonce, sizeof nonce);
  hetee_party_key_public(k, key);
  uint64_t ts = reqsig_now_ms();
  reqsig_digest(method, target, bh, ts, nonce, key, d);
  assert_int_equal(hetee_party_key_sign(k, d, sizeof d, sig), 0);
  hetee_party_key_free(k);
  if (damage == 1) sig[5] ^= 1;
  char hk[65], hn[33], hs[129];
  reqsig_hex(key, 32, hk);
  reqsig_hex(nonce, 16, hn);
  reqsig_hex(sig, 64, hs);
  char *req = malloc(4096 + blen);
  int n = snprintf(req, 4096 + blen,
                   "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Hetee-Key: %s\r\nX-Hetee-Timestamp: %llu\r\n"
                   "X-Hetee-Nonce: %s\r\nX-Hetee-Signature: %s\r\n%s%s%sContent-Length: %zu\r\n\r\n%s",
                   method, target, hk, (unsigned long long)ts, hn, hs, ctype ? "Content-Type: " : "", ctype ? ctype : "",
                   ctype ? "\r\n" : "", blen, body ? body : "");
  if (damage == 2) req[n - 1] ^= 1; /* the body after signing */
  if (replay_buf) snprintf(replay_buf, rbcap, "%s", req);
  int st = sfx_raw(F, req, (size_t)n, resp);
  free(req);
  return st;
}

static void test_signatures(void **state) {
  char *r = NULL, saved[8192];
  const char *body = "{\"role\":\"dp\"}";
  assert_int_equal(signed_raw(F->dp1, "POST", "/v1/parties", "application/json", body, 0, NULL, saved, sizeof saved), 201);
  /* the same bytes again: the nonce was used */
  assert_int_equal(sfx_raw(F, saved, strlen(saved), &r), 401);
  assert_non_null(strstr(r, "replay"));
  free(r);
  assert_int_equal(signed_raw(F->dp1, "POST", "/v1/parties", "application/json", body, 1, &r, NULL, 0), 401);
  assert_non_null(strstr(r, "bad_signature"));
  free(r);
  assert_int_equal(signed_raw(F->dp1, "POST", "/v1/parties", "application/json", body, 2, &r, NULL, 0), 401);
  free(r);
  /* unsigned, and signed with a stale timestamp */
  const char *uns = "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  assert_int_equal(sfx_raw(F, uns, strlen(uns), &r), 401);
  assert_non_null(strstr(r, "unsigned request"));
  free(r);
  char stale[1024];
  snprintf(stale, sizeof stale,
           "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Hetee-Key: %064d\r\nX-Hetee-Timestamp: 1000\r\n"
           "X-Hetee-Nonce: %032d\r\nX-Hetee-Signature: %0128d\r\n\r\n", 0, 0, 0);
  assert_int_equal(sfx_raw(F, stale, strlen(stale), &r), 401);
  assert_non_null(strstr(r, "stale"));
  free(r);
}

/* Each bad request gets a 4xx with a message; the server keeps serving. */
static void test_bad_input(void **state) {
  char *r = NULL;
  /* garbage JSON, a JSON array, wrong content type, no body */
  assert_int_equal(signed_raw(F->dp1, "POST", "/v1/enclave/evidence", "application/json", "{\"nonce\": [1,", 0, &r, NULL, 0), 400);
  assert_non_null(strstr(r, "malformed JSON"));
  free(r);
  assert_int_equal(signed_raw(F->dp1, "POST", "/v1/enclave/evidence", "application/json", "[1]", 0, &r, NULL, 0), 400);
  free(r);
  assert_int_equal(signed_raw(F->dp1, "POST", "/v1/enclave/evidence", "text/plain", "{}", 0, &r, NULL, 0), 415);
  free(r);
  assert_int_equal(signed_raw(F->dp1, "POST", "/v1/enclave/evidence", "application/json", "{\"nonce\":\"zz\"}", 0, &r, NULL, 0), 400);
  free(r);
  assert_int_equal(signed_raw(F->dp1, "GET", "/v1/nothing", NULL, NULL, 0, &r, NULL, 0), 404);
  free(r);
  assert_int_equal(signed_raw(F->dp1, "PATCH", "/v1/models", NULL, NULL, 0, &r, NULL, 0), 405);
  free(r);
  /* a declared body above the limit: 413 before a byte is read */
  const char *big = "POST /v1/enclave/evidence HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    "Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n{";
  assert_int_equal(sfx_raw(F, big, strlen(big), &r), 413);
  assert_non_null(strstr(r, "too_large"));
  free(r);
  /* ciphertext uploads: truncated, foreign parameters, garbage */
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  hetee_client_session *s;
  char sid[33], t[128];
  assert_int_equal(hetee_client_session_open_remote(c, &s, sid), 0);
  /* a valid input, encrypted as the client would, then damaged */
  hetee_client_job *j;
  assert_int_equal(hetee_client_job_submit(c, MODEL, X, NIMG, &j), 0);
  assert_int_equal(hetee_client_job_wait(c, j), 0);
  char in[600];
  snprintf(in, sizeof in, "%s/jobs/%lld.htei", F->data, (long long)hetee_client_job_id(j));
  FILE *fi = fopen(in, "rb");
  assert_non_null(fi);
  fseek(fi, 0, SEEK_END);
  long len = ftell(fi);
  fseek(fi, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)len);
  assert_int_equal(fread(b, 1, (size_t)len, fi), (size_t)len);
  fclose(fi);
  len = (long)witness_at(b, (size_t)len); /* the input, without the witnesses stored after it */
  long st;
  uint8_t *body;
  /* no authorization: refused before the body */
  snprintf(t, sizeof t, "/v1/jobs?model=%lld", (long long)MODEL);
  assert_int_equal(hetee_client_request(c, "POST", t, "application/octet-stream", b, (size_t)len, &st, &body, NULL), 0);
  assert_int_equal(st, 400);
  assert_non_null(strstr((char *)body, "bad_authorization"));
  free(body);
  char t2[400];
  snprintf(t2, sizeof t2, "/v1/jobs?model=%lld&nonce=%032d&auth=%0128d", (long long)MODEL, 0, 0);
  assert_int_equal(hetee_client_request(c, "POST", t2, "application/octet-stream", b, (size_t)len / 2, &st, &body, NULL), 0);
  assert_int_equal(st, 400); /* truncated */
  assert_non_null(strstr((char *)body, "encrypted input refused"));
  free(body);
  /* a whole valid input with a signature that is not the DP's over it */
  assert_int_equal(hetee_client_request(c, "POST", t2, "application/octet-stream", b, (size_t)len, &st, &body, NULL), 0);
  assert_int_equal(st, 403);
  assert_non_null(strstr((char *)body, "bad_authorization"));
  free(body);
  b[20] ^= 0x55; /* parameter fingerprint: ciphertexts under other parameters */
  assert_int_equal(hetee_client_request(c, "POST", t2, "application/octet-stream", b, (size_t)len, &st, &body, NULL), 0);
  assert_int_equal(st, 400);
  free(body);
  assert_int_equal(hetee_client_request(c, "POST", t2, "application/octet-stream", (const uint8_t *)"garbage", 7, &st, &body, NULL), 0);
  assert_int_equal(st, 400);
  free(body);
  assert_int_equal(hetee_client_request(c, "POST", t2, "application/json", (const uint8_t *)"{}", 2, &st, &body, NULL), 0);
  assert_int_equal(st, 415);
  free(body);
  free(b);
  hetee_client_session_free(s);
  hetee_client_job_free(j);
  /* still serving */
  infer_checked(c, MODEL);
  hetee_client_disconnect(c);
}

/* kill -9 with jobs queued: after the restart every acknowledged job
 * finishes exactly once (one result per image, the right labels, each job
 * listed once as done); half of them are opened by job objects attached
 * afresh (hetee_client_job_attach), as after a client restart. */
static void test_kill9(void **state) {
  enum { NJOBS = 4 };
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  hetee_client_job *j[NJOBS];
  for (int i = 0; i < NJOBS; i++) assert_int_equal(hetee_client_job_submit(c, MODEL, X, NIMG, &j[i]), 0);
  sfx_stop(F, SIGKILL);
  sfx_start(F); /* same data directory, new port */
  hetee_client_disconnect(c);
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  for (int i = 0; i < NJOBS; i++) {
    if (i % 2) { /* as a fresh client process would: attached by id */
      int64_t id = hetee_client_job_id(j[i]);
      hetee_client_job_free(j[i]);
      assert_int_equal(hetee_client_job_attach(c, id, &j[i]), 0);
    }
    int rc = hetee_client_job_wait(c, j[i]);
    if (rc) fprintf(stderr, "wait: %s\n", hetee_last_error());
    assert_int_equal(rc, 0);
    hetee_release_result *r;
    size_t n;
    rc = hetee_client_job_results(c, j[i], &r, &n);
    if (rc) fprintf(stderr, "results: %s\n", hetee_last_error());
    assert_int_equal(rc, 0);
    assert_int_equal(n, NIMG);
    int agree = 0;
    for (size_t k = 0; k < n; k++) agree += (int)r[k].indices[0] == PLAIN[k];
    assert_true(agree >= NIMG - 1);
    hetee_client_results_free(r, n);
  }
  long st;
  uint8_t *body;
  assert_int_equal(hetee_client_request(c, "GET", "/v1/jobs", NULL, NULL, 0, &st, &body, NULL), 0);
  assert_int_equal(st, 200);
  for (int i = 0; i < NJOBS; i++) {
    char needle[64];
    snprintf(needle, sizeof needle, "{\"id\":%lld,", (long long)hetee_client_job_id(j[i]));
    char *at = strstr((char *)body, needle);
    assert_non_null(at);
    assert_null(strstr(at + 1, needle)); /* once */
    assert_non_null(strstr(at, "\"state\":\"done\""));
    hetee_client_job_free(j[i]);
  }
  free(body);
  hetee_client_disconnect(c);
}

/* A job prepared (v3: its tag and signature made in the preparation)
 * before the server restarted: its signature is older than the new
 * server's start, so the first send is refused (401) and the client signs
 * afresh, once, under the same request key (the server's key file
 * survives the restart); the job then runs with the right labels. */
static void test_prepared_across_restart(void **state) {
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  hetee_client_prepared *p = NULL;
  assert_int_equal(hetee_client_job_prepare(c, MODEL, X, NIMG, &p), 0);
  hetee_client_disconnect(c);
  sfx_stop(F, SIGTERM);
  sfx_start(F);
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  hetee_client_job *j = NULL;
  int rc = hetee_client_job_send(c, p, &j);
  if (rc) fprintf(stderr, "send: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  assert_int_equal(hetee_client_job_wait(c, j), 0);
  labels_checked(c, j);
  hetee_client_job_free(j);
  hetee_client_prepared_free(p);
  hetee_client_disconnect(c);
}

/* The pid of the server's enclave process: the child of its launcher
 * (hetee-launcher, a child of the server). */
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

static pid_t enclave_pid(pid_t server) {
  pid_t l = child_of(server, "hetee-launcher");
  return l > 0 ? child_of(l, NULL) : 0;
}

static void flip_last_byte(const char *path) {
  size_t n;
  uint8_t *b = read_file(path, &n);
  b[n - 1] ^= 0x01;
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, n, f), n);
  fclose(f);
  free(b);
}

/* The host alters stored jobs while the server is down: one job's input is
 * replaced by another acknowledged job's input (valid ciphertexts under
 * the same key, of other images), another job's stored witness has a byte
 * flipped. The enclave refuses both (the first fails the stage-0 integrity
 * check against the job's witness, the second's witness is not the one
 * authorized); nothing is released; the honest jobs finish. */
static void test_tamper(void **state) {
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  hetee_client_job *j[4];
  float *x2 = sfx_images(2 * NIMG, NULL);
  infer_checked(c, MODEL); /* the connection knows the enclave's release key */
  /* the enclave stopped: every job stays unrun (the server acknowledges
   * jobs without it), then server and enclave killed */
  pid_t ep = enclave_pid(F->pid);
  assert_true(ep > 0);
  assert_int_equal(kill(ep, SIGSTOP), 0);
  assert_int_equal(hetee_client_job_submit(c, MODEL, x2 + (size_t)NIMG * 784, NIMG, &j[0]), 0);
  for (int i = 1; i < 4; i++) assert_int_equal(hetee_client_job_submit(c, MODEL, X, NIMG, &j[i]), 0);
  free(x2);
  sfx_stop(F, SIGKILL);
  (void)kill(ep, SIGKILL);
  char victim[600], other[600], wit[600], res[2][600];
  snprintf(victim, sizeof victim, "%s/jobs/%lld.htei", F->data, (long long)hetee_client_job_id(j[2]));
  snprintf(other, sizeof other, "%s/jobs/%lld.htei", F->data, (long long)hetee_client_job_id(j[0]));
  snprintf(wit, sizeof wit, "%s/jobs/%lld.htei", F->data, (long long)hetee_client_job_id(j[3])); /* its witnesses: the end */
  for (int i = 0; i < 2; i++) {
    snprintf(res[i], sizeof res[i], "%s/jobs/%lld.res", F->data, (long long)hetee_client_job_id(j[2 + i]));
    assert_int_not_equal(access(res[i], F_OK), 0); /* the last jobs had not run */
  }
  /* the victim's file: the other job's input, its own witnesses */
  size_t n, vn;
  uint8_t *b = read_file(other, &n), *v = read_file(victim, &vn);
  size_t bw = witness_at(b, n), vw = witness_at(v, vn);
  assert_true(bw < n && vw < vn);
  FILE *f = fopen(victim, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, bw, f), bw);
  assert_int_equal(fwrite(v + vw, 1, vn - vw, f), vn - vw);
  fclose(f);
  free(b);
  free(v);
  flip_last_byte(wit);
  sfx_start(F);
  hetee_client_disconnect(c);
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  assert_int_equal(hetee_client_job_wait(c, j[0]), 0);
  assert_int_equal(hetee_client_job_wait(c, j[1]), 0);
  assert_int_equal(hetee_client_job_wait(c, j[2]), HETEE_ERR_STATE);
  fprintf(stderr, "job with a substituted input: %s\n", hetee_last_error());
  assert_non_null(strstr(hetee_last_error(), "integrity check failed"));
  assert_int_equal(hetee_client_job_wait(c, j[3]), HETEE_ERR_STATE);
  fprintf(stderr, "job with an altered witness: %s\n", hetee_last_error());
  assert_non_null(strstr(hetee_last_error(), "does not open")); /* the box, past its authorized head */
  {
    hetee_release_result *r = NULL;
    assert_int_equal(hetee_client_job_await(c, j[2], &r, &n), HETEE_ERR_STATE); /* 409 "failed", with why */
    assert_non_null(strstr(hetee_last_error(), "integrity check failed"));
  }
  for (int i = 0; i < 2; i++) {
    hetee_release_result *r = NULL;
    assert_int_equal(hetee_client_job_results(c, j[2 + i], &r, &n), HETEE_ERR_STATE); /* 409: nothing released */
    assert_int_not_equal(access(res[i], F_OK), 0);
  }
  for (int i = 0; i < 4; i++) hetee_client_job_free(j[i]);
  hetee_client_disconnect(c);
  unsetenv("HETEE_SERVER_BATCH");
}

static void write_bytes(const char *path, const uint8_t *b, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, n, f), n);
  fclose(f);
}

/* A data directory an older server wrote: a queued job's authorization in
 * DIR/jobs/ID.auth, its witnesses in DIR/jobs/ID.htwt, its input alone in
 * ID.htei, and a jobs table without the columns auth and witness (dropped
 * here while the server is down, so the restarted server adds them back
 * empty). The restarted server runs the job from those files: done, the
 * right labels, and GET /v1/jobs/ID/auth answers the same authorization. */
static void test_legacy_layout(void **state) {
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  infer_checked(c, MODEL); /* the connection knows the enclave's release key */
  pid_t ep = enclave_pid(F->pid);
  assert_true(ep > 0);
  assert_int_equal(kill(ep, SIGSTOP), 0); /* the job stays queued */
  hetee_client_job *j;
  assert_int_equal(hetee_client_job_submit(c, MODEL, X, NIMG, &j), 0);
  long long id = (long long)hetee_client_job_id(j);
  char t[128];
  snprintf(t, sizeof t, "/v1/jobs/%lld/auth", id);
  long st;
  uint8_t *ab = NULL;
  size_t al = 0;
  assert_int_equal(hetee_client_request(c, "GET", t, NULL, NULL, 0, &st, &ab, &al), 0);
  assert_int_equal(st, 200);
  sfx_stop(F, SIGKILL);
  (void)kill(ep, SIGKILL);
  char p[600];
  size_t n;
  snprintf(p, sizeof p, "%s/jobs/%lld.htei", F->data, id);
  uint8_t *b = read_file(p, &n);
  size_t w = witness_at(b, n);
  assert_true(w < n);
  write_bytes(p, b, w);
  snprintf(p, sizeof p, "%s/jobs/%lld.htwt", F->data, id);
  write_bytes(p, b + w, n - w);
  free(b);
  snprintf(p, sizeof p, "%s/jobs/%lld.auth", F->data, id);
  write_bytes(p, ab, al);
  snprintf(p, sizeof p, "%s/hetee.db", F->data);
  sqlite3 *d;
  assert_int_equal(sqlite3_open_v2(p, &d, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  sqlite3_busy_timeout(d, 5000);
  char *err = NULL;
  int rc = sqlite3_exec(d, "ALTER TABLE jobs DROP COLUMN auth; ALTER TABLE jobs DROP COLUMN witness;", NULL, NULL, &err);
  if (rc != SQLITE_OK) fprintf(stderr, "sqlite: %s\n", err ? err : "?");
  sqlite3_free(err);
  assert_int_equal(rc, SQLITE_OK);
  sqlite3_close(d);
  sfx_start(F);
  hetee_client_disconnect(c);
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  labels_checked(c, j);
  uint8_t *ab2 = NULL;
  size_t al2 = 0;
  assert_int_equal(hetee_client_request(c, "GET", t, NULL, NULL, 0, &st, &ab2, &al2), 0);
  assert_int_equal(st, 200);
  assert_int_equal(al2, al);
  assert_memory_equal(ab2, ab, al);
  free(ab);
  free(ab2);
  /* a job submitted now is stored the new way again */
  hetee_client_job *j2;
  assert_int_equal(hetee_client_job_submit(c, MODEL, X, NIMG, &j2), 0);
  assert_int_equal(hetee_client_job_wait(c, j2), 0);
  snprintf(p, sizeof p, "%s/jobs/%lld.htei", F->data, (long long)hetee_client_job_id(j2));
  assert_true(file_witness_at(p, &n) < n);
  snprintf(p, sizeof p, "%s/jobs/%lld.auth", F->data, (long long)hetee_client_job_id(j2));
  assert_int_not_equal(access(p, F_OK), 0);
  hetee_client_job_free(j);
  hetee_client_job_free(j2);
  hetee_client_disconnect(c);
}

/* kill -9 of the enclave with jobs queued and running: the supervised
 * enclave restarts (unseal), the server binds the model again and runs the
 * interrupted jobs again with their stored authorizations and witnesses; every job is
 * done once with the right results. */
static void test_enclave_restart(void **state) {
  enum { NJOBS = 4 };
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  hetee_client_job *j[NJOBS];
  pid_t ep = enclave_pid(F->pid);
  assert_true(ep > 0);
  /* the first job is queued or running when its enclave dies */
  assert_int_equal(hetee_client_job_submit(c, MODEL, X, NIMG, &j[0]), 0);
  assert_int_equal(kill(ep, SIGKILL), 0);
  for (int i = 1; i < NJOBS; i++) assert_int_equal(hetee_client_job_submit(c, MODEL, X, NIMG, &j[i]), 0);
  for (int i = 0; i < NJOBS; i++) { /* witness-form jobs: run (again) from their stored witnesses */
    char wp[600];
    size_t wl;
    snprintf(wp, sizeof wp, "%s/jobs/%lld.htei", F->data, (long long)hetee_client_job_id(j[i]));
    assert_true(file_witness_at(wp, &wl) < wl);
  }
  for (int i = 0; i < NJOBS; i++) {
    int rc = hetee_client_job_wait(c, j[i]);
    if (rc) fprintf(stderr, "wait: %s\n", hetee_last_error());
    assert_int_equal(rc, 0);
    hetee_release_result *r;
    size_t n;
    assert_int_equal(hetee_client_job_results(c, j[i], &r, &n), 0);
    assert_int_equal(n, NIMG);
    int agree = 0;
    for (size_t k = 0; k < n; k++) agree += (int)r[k].indices[0] == PLAIN[k];
    assert_true(agree >= NIMG - 1);
    hetee_client_results_free(r, n);
    hetee_client_job_free(j[i]);
  }
  /* it did restart (inside a failing call, or the server's idle check) */
  long st;
  uint8_t *body;
  for (int restarted = 0; !restarted;) {
    assert_int_equal(hetee_client_request(c, "GET", "/v1/enclave", NULL, NULL, 0, &st, &body, NULL), 0);
    assert_int_equal(st, 200);
    restarted = strstr((char *)body, "\"restarts\":0") == NULL;
    free(body);
    if (!restarted) usleep(50 * 1000);
  }
  assert_int_not_equal(enclave_pid(F->pid), ep);
  hetee_client_disconnect(c);
}

/* The enclave's state is sealed after a job only when the model's policy
 * has budgets (its query counters are all a job changes): a job of the
 * unbudgeted model leaves the seal file as it was (the same file, not
 * rewritten), a job of a model with an enclave budget rewrites it, and its
 * charge survives kill -9 of the enclave (the restarted enclave unseals it
 * and reports it in STATUS). */
static ino_t seal_inode(void) {
  char p[600];
  struct stat sb;
  snprintf(p, sizeof p, "%s/enclave.seal", F->data);
  assert_int_equal(stat(p, &sb), 0);
  return sb.st_ino;
}

static void test_seal_budget(void **state) {
  (void)state;
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  infer_checked(c, MODEL); /* the connection's first job: attestation, session */
  ino_t before = seal_inode();
  infer_checked(c, MODEL);
  infer_checked(c, MODEL);
  assert_true(seal_inode() == before);

  hetee_client_conn *mp;
  char path[512];
  sfx_model_path(path, sizeof path, "e2dm");
  assert_int_equal(hetee_client_connect(F->url, F->mp, &mp), 0);
  int64_t budget = 10 * NIMG, m2 = 0;
  hetee_client_model_options o = {.name = "e2dm-budget", .batch = NIMG, .output = "label",
                                  .dps = (const uint8_t(*)[32])F->dp1_pk, .budgets = &budget, .ndps = 1};
  prog_log L; /* the upload's progress: every stage encrypted, every byte sent */
  memset(&L, 0, sizeof L);
  hetee_client_set_progress(mp, on_progress, &L);
  assert_int_equal(hetee_client_model_upload(mp, path, &o, &m2), 0);
  hetee_client_disconnect(mp);
  int e = prog_phase(&L, "encrypt"), u = prog_phase(&L, "upload");
  assert_true(e >= 0 && u >= 0);
  assert_true(L.total[e] >= 2); /* e2dm's stages */
  assert_int_equal(L.done[e], L.total[e]);
  assert_int_equal(L.calls[e], L.total[e] + 1);
  assert_true(L.total[u] > 1000000);
  assert_int_equal(L.done[u], L.total[u]);
  assert_int_equal(L.bad, 0);
  before = seal_inode();
  infer_checked(c, m2);
  assert_true(seal_inode() != before);
  hetee_integrity_status is;
  integrity_status_of(c, m2, &is);
  assert_int_equal(is.budget, (uint64_t)budget);
  assert_int_equal(is.used, NIMG);
  pid_t ep = enclave_pid(F->pid);
  assert_true(ep > 0);
  assert_int_equal(kill(ep, SIGKILL), 0);
  for (int i = 0; i < 200 && kill(ep, 0) == 0; i++) usleep(10 * 1000);
  integrity_status_of(c, m2, &is); /* the enclave restarts inside the call */
  assert_int_equal(is.used, NIMG);
  assert_int_not_equal(enclave_pid(F->pid), ep);
  infer_checked(c, m2);
  integrity_status_of(c, m2, &is);
  assert_int_equal(is.used, 2 * NIMG);
  hetee_client_disconnect(c);
}

/* The metrics endpoint: two jobs add 2 to the done jobs and the latency
 * count, 2 x NIMG images, enclave CPU and job-run wall time; the enclave
 * share is the ratio of the two totals; the queue is empty afterwards. */
static double metric_of(const char *text, const char *name) {
  size_t l = strlen(name);
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (!strncmp(p, name, l) && p[l] == ' ') return atof(p + l + 1);
  fail_msg("no metric %s", name);
  return -1;
}

static char *metrics_text(hetee_client_conn *c) {
  long st = 0;
  uint8_t *m = NULL;
  assert_int_equal(hetee_client_request(c, "GET", "/metrics", NULL, NULL, 0, &st, &m, NULL), 0);
  assert_int_equal(st, 200);
  assert_non_null(m);
  return (char *)m;
}

static void test_metrics(void **state) {
  (void)state;
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  infer_checked(c, MODEL); /* attestation and session before the first reading */
  char *m0 = metrics_text(c);
  infer_checked(c, MODEL);
  infer_checked(c, MODEL);
  char *m1 = metrics_text(c);
  assert_true(metric_of(m1, "hetee_jobs_total{outcome=\"done\"}") - metric_of(m0, "hetee_jobs_total{outcome=\"done\"}") == 2);
  assert_true(metric_of(m1, "hetee_jobs_total{outcome=\"failed\"}") == metric_of(m0, "hetee_jobs_total{outcome=\"failed\"}"));
  assert_true(metric_of(m1, "hetee_images_total") - metric_of(m0, "hetee_images_total") == 2 * NIMG);
  assert_true(metric_of(m1, "hetee_job_latency_seconds_count") - metric_of(m0, "hetee_job_latency_seconds_count") == 2);
  double cpu = metric_of(m1, "hetee_enclave_cpu_seconds_total"), wall = metric_of(m1, "hetee_job_run_seconds_total");
  assert_true(cpu > metric_of(m0, "hetee_enclave_cpu_seconds_total"));
  assert_true(wall > metric_of(m0, "hetee_job_run_seconds_total"));
  double share = metric_of(m1, "hetee_enclave_time_share");
  assert_true(share > 0);
  assert_true(fabs(share - cpu / wall) < 1e-4 + 1e-3 * share);
  /* the enclave's own counters by message type: each micro-batch of the
   * two jobs started and released once, their refreshes took CPU */
  double js = metric_of(m1, "hetee_enclave_messages_total{type=\"job_start\"}") -
              metric_of(m0, "hetee_enclave_messages_total{type=\"job_start\"}");
  double jr = metric_of(m1, "hetee_enclave_messages_total{type=\"job_release\"}") -
              metric_of(m0, "hetee_enclave_messages_total{type=\"job_release\"}");
  assert_true(js >= 2);
  assert_true(js == jr);
  assert_true(metric_of(m1, "hetee_enclave_message_cpu_seconds_total{type=\"job_refresh\"}") >
              metric_of(m0, "hetee_enclave_message_cpu_seconds_total{type=\"job_refresh\"}"));
  assert_true(metric_of(m1, "hetee_queue_depth{state=\"queued\"}") == 0);
  assert_true(metric_of(m1, "hetee_queue_depth{state=\"running\"}") == 0);
  free(m0);
  free(m1);
  hetee_client_disconnect(c);
}

/* Batches (jobs.c; HETEE_SERVER_BATCH=8 for the servers of this test):
 * jobs of one model queued together run as one engine
 * call. Four jobs acknowledged while the enclave is stopped, then server
 * and enclave killed: after the restart the two workers take the oldest
 * two alone and the first batch query finds at least two more, so at least
 * one batch of three runs, and every job is done once with its own labels.
 * Then the same with the last job's stored witness altered: its batch is
 * refused, the enclave restarted, the jobs run again alone: the three good
 * ones done with their labels, the altered one failed (not authorized). */
static void queue_four_and_restart(hetee_client_conn *c, hetee_client_job *j[4], int alter_last) {
  setenv("HETEE_SERVER_BATCH", "8", 1); /* batches are off unless asked (the restarted server inherits it) */
  pid_t ep = enclave_pid(F->pid);
  assert_true(ep > 0);
  assert_int_equal(kill(ep, SIGSTOP), 0);
  for (int i = 0; i < 4; i++) assert_int_equal(hetee_client_job_submit(c, MODEL, X, NIMG, &j[i]), 0);
  sfx_stop(F, SIGKILL);
  (void)kill(ep, SIGKILL);
  if (alter_last) {
    char wit[600];
    snprintf(wit, sizeof wit, "%s/jobs/%lld.htei", F->data, (long long)hetee_client_job_id(j[3]));
    flip_last_byte(wit); /* the last byte of its witnesses */
  }
  sfx_start(F);
}

static void test_batch(void **state) {
  (void)state;
  hetee_client_conn *c;
  hetee_client_job *j[4];
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  infer_checked(c, MODEL); /* the connection knows the enclave's release key */
  queue_four_and_restart(c, j, 0);
  hetee_client_disconnect(c);
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  for (int i = 0; i < 4; i++) labels_checked(c, j[i]);
  char *m = metrics_text(c);
  assert_true(metric_of(m, "hetee_job_batches_total") >= 1);
  assert_true(metric_of(m, "hetee_batched_jobs_total") >= 3);
  assert_true(metric_of(m, "hetee_jobs_total{outcome=\"done\"}") == 4);
  free(m);
  for (int i = 0; i < 4; i++) hetee_client_job_free(j[i]);

  infer_checked(c, MODEL); /* attested again: the submissions below need no enclave */
  queue_four_and_restart(c, j, 1);
  hetee_client_disconnect(c);
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  for (int i = 0; i < 3; i++) labels_checked(c, j[i]);
  assert_int_equal(hetee_client_job_wait(c, j[3]), HETEE_ERR_STATE);
  assert_non_null(strstr(hetee_last_error(), "does not open")); /* the box, past its authorized head */
  m = metrics_text(c);
  assert_true(metric_of(m, "hetee_enclave_restarts_total") >= 1);
  assert_true(metric_of(m, "hetee_jobs_total{outcome=\"done\"}") == 3);
  assert_true(metric_of(m, "hetee_jobs_total{outcome=\"failed\"}") == 1);
  free(m);
  for (int i = 0; i < 4; i++) hetee_client_job_free(j[i]);
  hetee_client_disconnect(c);
}

/* Slow clients: connections that stop in the middle of their headers, and
 * unsigned uploads that stop in the middle of their body, hold no one up:
 * each upload is answered 401 with a message before its body is read
 * (while it still holds the connection open), and meanwhile health and a
 * full job of another client are served. */
static int slow_conn(const char *part) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)F->port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {.tv_sec = 60}; /* a guard against a hang, not a performance limit */
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  assert_int_equal(send(s, part, strlen(part), MSG_NOSIGNAL), (ssize_t)strlen(part));
  return s;
}

static void test_slow_clients(void **state) {
  (void)state;
  enum { N = 4 };
  int hs[N], us[N];
  for (int i = 0; i < N; i++) {
    hs[i] = slow_conn("GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    us[i] = slow_conn("POST /v1/jobs?model=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                      "Content-Length: 1000000\r\n\r\nHTEI");
  }
  char *b = NULL;
  assert_int_equal(sfx_raw(F, "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 56, &b), 200);
  free(b);
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  infer_checked(c, MODEL);
  hetee_client_disconnect(c);
  for (int i = 0; i < N; i++) {
    char buf[4096];
    size_t n = 0;
    while (n < sizeof buf - 1) {
      ssize_t r = recv(us[i], buf + n, sizeof buf - 1 - n, 0);
      if (r <= 0) break;
      n += (size_t)r;
      buf[n] = 0;
      if (strstr(buf, "\r\n\r\n") && strstr(buf, "}")) break;
    }
    buf[n] = 0;
    int st = 0;
    assert_int_equal(sscanf(buf, "HTTP/1.%*d %d", &st), 1);
    assert_int_equal(st, 401);
    assert_non_null(strstr(buf, "\"message\""));
    close(us[i]);
    close(hs[i]);
  }
}

/* A data provider that signed the first form of the witness digests (the
 * whole sealed box hashed, before the digest of its 48-byte head): the
 * server still verifies the signature (it recomputes that form when the
 * head's does not verify) and the enclave still runs the job. The
 * submission is made by hand from a job the client stored: the same input
 * and witnesses, a fresh nonce, a signature over the first-form digests. */
static void test_first_form_digests(void **state) {
  (void)state;
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  hetee_client_job *j;
  assert_int_equal(hetee_client_job_submit(c, MODEL, X, NIMG, &j), 0);
  assert_int_equal(hetee_client_job_wait(c, j), 0);
  char path[600];
  snprintf(path, sizeof path, "%s/jobs/%lld.htei", F->data, (long long)hetee_client_job_id(j));
  hetee_client_job_free(j);
  size_t len;
  uint8_t *b = read_file(path, &len);
  size_t woff = witness_at(b, len);
  assert_true(woff > 0 && woff < len);
  /* "HTWT" | u32 1 | u32 model | u32 n | n x (u32 batch | u64 len | sealed) */
  hetee_job_auth a;
  memset(&a, 0, sizeof a);
  a.model = (uint32_t)MODEL;
  a.n = (uint32_t)b[woff + 12] | (uint32_t)b[woff + 13] << 8;
  assert_true(a.n >= 1 && a.n <= HETEE_JOB_AUTH_MAX);
  size_t at = woff + 16;
  for (uint32_t k = 0; k < a.n; k++) {
    a.batch[k] = (uint32_t)b[at] | (uint32_t)b[at + 1] << 8;
    uint64_t l = 0;
    for (int i = 7; i >= 0; i--) l = l << 8 | b[at + 4 + (size_t)i];
    hetee_witness_digest_v1(a.model, a.batch[k], b + at + 12, (size_t)l, a.digest[k]);
    at += 12 + (size_t)l;
  }
  assert_int_equal(at, len);
  randombytes_buf(a.nonce, sizeof a.nonce);
  hetee_party_key *k1 = home_key(F->dp1);
  assert_int_equal(hetee_job_auth_sign(&a, k1), 0);
  hetee_party_key_free(k1);
  char nonce[33], sig[129], t[400];
  sodium_bin2hex(nonce, sizeof nonce, a.nonce, sizeof a.nonce);
  sodium_bin2hex(sig, sizeof sig, a.sig, sizeof a.sig);
  snprintf(t, sizeof t, "/v1/jobs?model=%lld&nonce=%s&auth=%s&witness=%zu", (long long)MODEL, nonce, sig, len - woff);
  long st;
  uint8_t *body;
  assert_int_equal(hetee_client_request(c, "POST", t, "application/octet-stream", b, len, &st, &body, NULL), 0);
  if (st != 202) fprintf(stderr, "first-form submission: %ld %s\n", st, (char *)body);
  assert_int_equal(st, 202);
  json_t *jo = json_loads((char *)body, 0, NULL);
  assert_non_null(jo);
  int64_t id = (int64_t)json_integer_value(json_object_get(jo, "id"));
  json_decref(jo);
  free(body);
  assert_true(id > 0);
  assert_int_equal(hetee_client_job_attach(c, id, &j), 0);
  assert_int_equal(hetee_client_job_wait(c, j), 0);
  labels_checked(c, j);
  /* a signature over digests of neither form: 403 */
  a.digest[0][0] ^= 1;
  randombytes_buf(a.nonce, sizeof a.nonce);
  k1 = home_key(F->dp1);
  assert_int_equal(hetee_job_auth_sign(&a, k1), 0);
  hetee_party_key_free(k1);
  sodium_bin2hex(nonce, sizeof nonce, a.nonce, sizeof a.nonce);
  sodium_bin2hex(sig, sizeof sig, a.sig, sizeof a.sig);
  snprintf(t, sizeof t, "/v1/jobs?model=%lld&nonce=%s&auth=%s&witness=%zu", (long long)MODEL, nonce, sig, len - woff);
  assert_int_equal(hetee_client_request(c, "POST", t, "application/octet-stream", b, len, &st, &body, NULL), 0);
  assert_int_equal(st, 403);
  assert_non_null(strstr((char *)body, "bad_authorization"));
  free(body);
  hetee_client_job_free(j);
  free(b);
  hetee_client_disconnect(c);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_flow),       cmocka_unit_test(test_client_cache), cmocka_unit_test(test_access),   cmocka_unit_test(test_signatures),
      cmocka_unit_test(test_ciphertext_form),  cmocka_unit_test(test_first_form_digests),
      cmocka_unit_test(test_bad_input),  cmocka_unit_test(test_kill9),    cmocka_unit_test(test_prepared_across_restart),    cmocka_unit_test(test_tamper),
      cmocka_unit_test(test_legacy_layout),   cmocka_unit_test(test_enclave_restart), cmocka_unit_test(test_progress), cmocka_unit_test(test_result_wait),
      cmocka_unit_test(test_seal_budget),     cmocka_unit_test(test_metrics),
      cmocka_unit_test(test_batch),           cmocka_unit_test(test_slow_clients),
  };
  return cmocka_run_group_tests_name("service/e2dm", tests, setup, teardown);
}

/*
 * test_backpressure.c — `hetee server` under back-pressure: the real binary
 * started with a small queue (--max-queue 2, --max-party-jobs 1, one
 * worker) and the bundled cnn model. While a large job runs:
 *   - a second job from the same data provider is answered 429
 *     (too_many_jobs) with a Retry-After header;
 *   - once two jobs are unfinished, any new job is answered 503
 *     (queue_full) with Retry-After, also for a data provider with no job;
 * the refusals come before the body is read, and the refused requests leave
 * nothing behind: afterwards every accepted job finishes with all its
 * results and the server accepts and runs new jobs (it keeps serving).
 */
#include "service/service_fixture.h"

#include "service/reqsig.h"

/* images of the job that keeps the queue busy; doubled (up to 8192) when
 * it finished before the queue could be filled behind it */
#define BIG 1024
#define MAXIMG 8192
#define SMALL 8

static sfx *F;
static char DP3[300];
static uint8_t DP3_PK[32];
static int64_t MODEL;

/* Starts the server with the small limits (the fixture's default start has
 * none). */
static void start_small(sfx *f) {
  char pf[400], mpp[400], bin[512];
  snprintf(pf, sizeof pf, "%s/port", f->dir);
  unlink(pf);
  snprintf(mpp, sizeof mpp, "%s/id.pub", f->mp);
  snprintf(bin, sizeof bin, "%s/hetee", sfx_bin());
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char log[400];
    snprintf(log, sizeof log, "%s/server.log", f->dir);
    if (!freopen(log, "a", stdout) || !freopen(log, "a", stderr)) _exit(126);
    execl(bin, "hetee", "server", "--listen", "127.0.0.1:0", "--data-dir", f->data, "--platform", f->plat, "--mp",
          mpp, "--port-file", pf, "--workers", "1", "--threads", "1", "--max-queue", "2", "--max-party-jobs", "1", (char *)NULL);
    _exit(127);
  }
  f->pid = pid;
  for (int i = 0; i < 6000 && !f->port; i++) {
    FILE *p = fopen(pf, "r");
    if (p) {
      if (fscanf(p, "%u", &f->port) != 1) f->port = 0;
      fclose(p);
    }
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) fail_msg("hetee server exited at start (see %s/server.log)", f->dir);
    if (!f->port) usleep(10 * 1000);
  }
  assert_true(f->port > 0);
  snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u", f->port);
}

static int setup(void **state) {
  /* the fixture's parties, a third DP, and a server with small limits */
  char mhex[65];
  F = sfx_parties(mhex);
  sfx_identity(F, "dp3", HETEE_PARTY_DP, DP3, DP3_PK, mhex);
  start_small(F);
  char mp[512];
  sfx_model_path(mp, sizeof mp, "cnn");
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->mp, &c), 0);
  uint8_t dps[3][32];
  memcpy(dps[0], F->dp1_pk, 32);
  memcpy(dps[1], F->dp2_pk, 32);
  memcpy(dps[2], DP3_PK, 32);
  hetee_client_model_options o = {.name = "cnn", .batch = 64, .output = "label", .dps = (const uint8_t(*)[32])dps,
                                  .ndps = 3};
  int rc = hetee_client_model_upload(c, mp, &o, &MODEL);
  if (rc) fprintf(stderr, "upload: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  hetee_client_disconnect(c);
  return 0;
}

static int teardown(void **state) {
  sfx_free(F);
  return 0;
}

/* A signed job submission (the client library's format: a request signed by
 * the party, a well-formed job authorization nonce=&auth=) with a small
 * body, sent raw so that the answer's headers can be read. The limits are
 * checked before the body, so neither the body nor the authorization (which
 * is checked against the body) is ever looked at. Returns the status;
 * *retry_after gets the Retry-After header's value (-1: none). */
static int raw_submit(const char *home, int *retry_after, char **body_out) {
  char target[320], p[400], an[33], as[129];
  uint8_t rb[64];
  randombytes_buf(rb, sizeof rb);
  reqsig_hex(rb, 16, an);
  reqsig_hex(rb, 64, as);
  snprintf(target, sizeof target, "/v1/jobs?model=%lld&nonce=%s&auth=%s", (long long)MODEL, an, as);
  snprintf(p, sizeof p, "%s/id", home);
  hetee_party_key *k;
  assert_int_equal(hetee_party_key_load(p, &k), 0);
  static const char body[] = "HTEI-not-read-before-the-limits";
  uint8_t bh[32], nonce[16], key[32], d[32], sig[64];
  reqsig_body_hash((const uint8_t *)body, sizeof body - 1, bh);
  randombytes_buf(nonce, sizeof nonce);
  hetee_party_key_public(k, key);
  uint64_t ts = reqsig_now_ms();
  reqsig_digest("POST", target, bh, ts, nonce, key, d);
  assert_int_equal(hetee_party_key_sign(k, d, sizeof d, sig), 0);
  hetee_party_key_free(k);
  char hk[65], hn[33], hs[129], req[4096];
  reqsig_hex(key, 32, hk);
  reqsig_hex(nonce, 16, hn);
  reqsig_hex(sig, 64, hs);
  int n = snprintf(req, sizeof req,
                   "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Hetee-Key: %s\r\nX-Hetee-Timestamp: %llu\r\n"
                   "X-Hetee-Nonce: %s\r\nX-Hetee-Signature: %s\r\nContent-Type: application/octet-stream\r\n"
                   "Content-Length: %zu\r\n\r\n%s",
                   target, hk, (unsigned long long)ts, hn, hs, sizeof body - 1, body);
  char *resp = NULL;
  int st = sfx_raw(F, req, (size_t)n, &resp);
  *retry_after = -1;
  /* headers are case-insensitive */
  for (char *h = resp; h && *h && strncmp(h, "\r\n", 2); h = strstr(h, "\r\n") ? strstr(h, "\r\n") + 2 : NULL)
    if (!strncasecmp(h, "Retry-After:", 12)) *retry_after = atoi(h + 12);
  if (body_out) *body_out = resp;
  else free(resp);
  return st;
}

static const char *job_state(hetee_client_conn *c, int64_t id, char *buf, size_t n) {
  char t[64];
  long st = 0;
  uint8_t *b = NULL;
  snprintf(t, sizeof t, "/v1/jobs/%lld", (long long)id);
  assert_int_equal(hetee_client_request(c, "GET", t, NULL, NULL, 0, &st, &b, NULL), 0);
  assert_int_equal(st, 200);
  const char *s = strstr((char *)b, "\"state\"");
  assert_non_null(s);
  s = strchr(s + 7, '"');
  assert_non_null(s);
  snprintf(buf, n, "%.*s", (int)strcspn(s + 1, "\""), s + 1);
  free(b);
  return buf;
}

static void finish(hetee_client_conn *c, hetee_client_job *j, size_t n) {
  int rc = hetee_client_job_wait(c, j);
  if (rc) fprintf(stderr, "wait: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  hetee_release_result *r;
  size_t got;
  assert_int_equal(hetee_client_job_results(c, j, &r, &got), 0);
  assert_int_equal(got, n);
  for (size_t i = 0; i < got; i++) {
    assert_int_equal(r[i].kind, HETEE_RELEASE_ARGMAX);
    assert_true(r[i].indices[0] < 10);
  }
  hetee_client_results_free(r, got);
  hetee_client_job_free(j);
}

static void test_backpressure(void **state) {
  float *x = sfx_images(MAXIMG, NULL);
  hetee_client_conn *c1, *c2, *c3;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c1), 0);
  assert_int_equal(hetee_client_connect(F->url, F->dp2, &c2), 0);
  assert_int_equal(hetee_client_connect(F->url, DP3, &c3), 0);

  /* dp1's large job: one worker keeps it (and whatever queues behind it)
     * unfinished while the limits are probed. A refusal is the server's own
   * statement that the limit held; any other answer is a failure unless the
   * large job had already finished (the machine outran the fill), in which
   * case everything is run to completion and tried again with a job twice
   * as large. */
  hetee_client_job *big = NULL, *j2 = NULL, *j3, *j4;
  size_t nbig = BIG;
  int ra = 0;
  char *body = NULL, s[32];
  for (;; nbig *= 2) {
    if (nbig > MAXIMG) fail_msg("a %d-image job finished before 2 jobs could be queued", MAXIMG);
    fprintf(stderr, "backpressure: a job of %zu images keeps the queue busy\n", nbig);
    assert_int_equal(hetee_client_job_submit(c1, MODEL, x, nbig, &big), 0);

    /* dp1 again: its limit of one unfinished job -> 429 + Retry-After */
    int st = raw_submit(F->dp1, &ra, &body);
    if (st != 429 && !strcmp(job_state(c1, hetee_client_job_id(big), s, sizeof s), "done")) {
      free(body);
      finish(c1, big, nbig);
      continue;
    }
    if (st != 429) fprintf(stderr, "%s\n", body);
    assert_int_equal(st, 429);
    assert_non_null(strstr(body, "too_many_jobs"));
    assert_true(ra >= 1);
    free(body);

    /* a second data provider fills the queue to its 2 jobs -> 503 +
     * Retry-After, for dp3, which has no job, and for dp1 (the queue is
     * checked before the party's own limit) */
    assert_int_equal(hetee_client_job_submit(c2, MODEL, x, SMALL, &j2), 0);
    st = raw_submit(DP3, &ra, &body);
    if (st != 503 && !strcmp(job_state(c1, hetee_client_job_id(big), s, sizeof s), "done")) {
      free(body);
      finish(c1, big, nbig);
      finish(c2, j2, SMALL);
      continue;
    }
    if (st != 503) fprintf(stderr, "%s\n", body);
    assert_int_equal(st, 503);
    assert_non_null(strstr(body, "queue_full"));
    assert_true(ra >= 1);
    free(body);
    st = raw_submit(F->dp1, &ra, &body);
    assert_int_equal(st, 503);
    assert_non_null(strstr(body, "queue_full"));
    assert_true(ra >= 1);
    free(body);
    break;
  }

  /* every accepted job finishes with all its results */
  finish(c1, big, nbig);
  finish(c2, j2, SMALL);
  /* dp3, refused a moment ago, now gets its job through */
  assert_int_equal(hetee_client_job_submit(c3, MODEL, x, SMALL, &j3), 0);
  finish(c3, j3, SMALL);

  /* and dp1, refused twice, too */
  assert_int_equal(hetee_client_job_submit(c1, MODEL, x, SMALL, &j4), 0);
  finish(c1, j4, SMALL);
  char *h = NULL;
  assert_int_equal(sfx_raw(F, "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 56, &h), 200);
  free(h);
  /* nothing queued or running is left behind by the refusals */
  long mst = 0;
  uint8_t *m = NULL;
  assert_int_equal(hetee_client_request(c1, "GET", "/metrics", NULL, NULL, 0, &mst, &m, NULL), 0);
  if (mst == 200) {
    assert_non_null(strstr((char *)m, "hetee_queue_depth{state=\"queued\"} 0"));
    assert_non_null(strstr((char *)m, "hetee_queue_depth{state=\"running\"} 0"));
  }
  free(m);

  hetee_client_disconnect(c1);
  hetee_client_disconnect(c2);
  hetee_client_disconnect(c3);
  free(x);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_backpressure)};
  return cmocka_run_group_tests_name("service/backpressure", tests, setup, teardown);
}

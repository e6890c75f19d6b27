/*
 * test_job_cli.c — `hetee job result ID`: a data provider opens the results
 * of a job submitted earlier (here by the client library, then forgotten)
 * with the real `hetee` binary against the real server and enclave. The
 * command waits for the job, prints one label per image in input order —
 * the labels the client library opens for the same job and, within CKKS
 * noise, the plaintext engine's —; another data provider gets a one-line
 * error and status 1 (the job is not its own); usage errors exit 2.
 */
#include "service/service_fixture.h"

#define NIMG 8

static sfx *F;
static int64_t MODEL;
static float *X;
static int PLAIN[NIMG];

static int setup(void **state) {
  (void)state;
  F = sfx_new();
  X = sfx_images(NIMG, NULL);
  char mp[512];
  sfx_model_path(mp, sizeof mp, "e2dm");
  sfx_plain_labels(mp, X, NIMG, PLAIN);
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->mp, &c), 0);
  hetee_client_model_options o = {.name = "e2dm", .batch = NIMG, .output = "label",
                                  .dps = (const uint8_t(*)[32])F->dp1_pk, .ndps = 1};
  assert_int_equal(hetee_client_model_upload(c, mp, &o, &MODEL), 0);
  hetee_client_disconnect(c);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  sfx_free(F);
  free(X);
  return 0;
}

/* Runs `hetee ARGS`; stdout into out (cap bytes), stderr into err; the exit
 * status. */
static int run_hetee(char *out, size_t cap, char *err, size_t ecap, const char *args) {
  char cmd[2048], ef[400];
  snprintf(ef, sizeof ef, "%s/stderr", F->dir);
  snprintf(cmd, sizeof cmd, "'%s/hetee' %s 2>'%s'", sfx_bin(), args, ef);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = 0;
  int st = pclose(p);
  FILE *e = fopen(ef, "r");
  n = e ? fread(err, 1, ecap - 1, e) : 0;
  err[n] = 0;
  if (e) fclose(e);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

static void test_job_result(void **state) {
  (void)state;
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  hetee_client_job *j;
  assert_int_equal(hetee_client_job_submit(c, MODEL, X, NIMG, &j), 0);
  int64_t id = hetee_client_job_id(j);
  char args[1200], out[4096], err[4096];
  /* the job may still be queued: the command waits for it */
  snprintf(args, sizeof args, "job result %lld --home '%s' --server %s", (long long)id, F->dp1, F->url);
  int st = run_hetee(out, sizeof out, err, sizeof err, args);
  if (st) fprintf(stderr, "hetee %s: %d: %s\n", args, st, err);
  assert_int_equal(st, 0);
  assert_int_equal(lines(out), NIMG);
  /* the same labels as the library opens, near the plaintext engine's */
  assert_int_equal(hetee_client_job_wait(c, j), 0);
  hetee_release_result *r;
  size_t n;
  assert_int_equal(hetee_client_job_results(c, j, &r, &n), 0);
  assert_int_equal(n, NIMG);
  const char *p = out;
  int agree = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(p, "%u", &v), 1);
    assert_int_equal(v, r[i].indices[0]);
    agree += (int)v == PLAIN[i];
    p = strchr(p, '\n') + 1;
  }
  assert_true(agree >= NIMG - 1);
  hetee_client_results_free(r, n);
  hetee_client_job_free(j);
  hetee_client_disconnect(c);

  /* another data provider: not its job (one line, status 1, nothing printed) */
  snprintf(args, sizeof args, "job result %lld --home '%s' --server %s", (long long)id, F->dp2, F->url);
  assert_int_equal(run_hetee(out, sizeof out, err, sizeof err, args), 1);
  assert_string_equal(out, "");
  assert_int_equal(lines(err), 1);
  assert_non_null(strstr(err, "hetee job result:"));
  /* a job that does not exist */
  snprintf(args, sizeof args, "job result %lld --home '%s' --server %s", (long long)id + 1000, F->dp1, F->url);
  assert_int_equal(run_hetee(out, sizeof out, err, sizeof err, args), 1);
  assert_non_null(strstr(err, "not found"));
  /* usage errors */
  assert_int_equal(run_hetee(out, sizeof out, err, sizeof err, "job result"), 2);
  assert_int_equal(run_hetee(out, sizeof out, err, sizeof err, "job result x1"), 2);
  assert_int_equal(run_hetee(out, sizeof out, err, sizeof err, "job result 1 2"), 2);
  assert_int_equal(run_hetee(out, sizeof out, err, sizeof err, "job results 1"), 2);
  assert_int_equal(run_hetee(out, sizeof out, err, sizeof err, "job result --help"), 0);
  assert_non_null(strstr(out, "usage: hetee job result ID"));

  /* delete: another data provider cannot; the owner can, once; then the
   * job and its files are gone (the results too) */
  char f_in[400], f_res[400];
  snprintf(f_in, sizeof f_in, "%s/jobs/%lld.htei", F->data, (long long)id);
  snprintf(f_res, sizeof f_res, "%s/jobs/%lld.res", F->data, (long long)id);
  assert_int_equal(access(f_in, F_OK), 0);
  assert_int_equal(access(f_res, F_OK), 0);
  snprintf(args, sizeof args, "job delete %lld --home '%s' --server %s", (long long)id, F->dp2, F->url);
  assert_int_equal(run_hetee(out, sizeof out, err, sizeof err, args), 1);
  assert_non_null(strstr(err, "not found"));
  assert_int_equal(access(f_in, F_OK), 0);
  snprintf(args, sizeof args, "job delete %lld --home '%s' --server %s", (long long)id, F->dp1, F->url);
  st = run_hetee(out, sizeof out, err, sizeof err, args);
  if (st) fprintf(stderr, "hetee %s: %d: %s\n", args, st, err);
  assert_int_equal(st, 0);
  assert_non_null(strstr(err, "deleted"));
  assert_int_not_equal(access(f_in, F_OK), 0);
  assert_int_not_equal(access(f_res, F_OK), 0);
  assert_int_equal(run_hetee(out, sizeof out, err, sizeof err, args), 1); /* twice: not found */
  assert_non_null(strstr(err, "not found"));
  snprintf(args, sizeof args, "job result %lld --home '%s' --server %s", (long long)id, F->dp1, F->url);
  assert_int_equal(run_hetee(out, sizeof out, err, sizeof err, args), 1);
  assert_non_null(strstr(err, "not found"));
  /* the library: an unfinished job is refused (HETEE_ERR_STATE) when the
   * server still has it queued or running; a finished one is deleted */
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  assert_int_equal(hetee_client_job_submit(c, MODEL, X, NIMG, &j), 0);
  int64_t id2 = hetee_client_job_id(j);
  int drc = hetee_client_job_delete(c, id2);
  assert_true(drc == HETEE_ERR_STATE || drc == 0); /* 0: it finished first */
  if (drc) {
    assert_int_equal(hetee_client_job_wait(c, j), 0);
    assert_int_equal(hetee_client_job_delete(c, id2), 0);
  }
  assert_int_equal(hetee_client_job_delete(c, id2), HETEE_ERR_NOT_FOUND);
  assert_int_equal(hetee_client_job_delete(c, 0), HETEE_ERR_INVALID_ARG);
  hetee_client_job_free(j);
  hetee_client_disconnect(c);
  assert_int_equal(run_hetee(out, sizeof out, err, sizeof err, "job delete"), 2);
  assert_int_equal(run_hetee(out, sizeof out, err, sizeof err, "job delete x1"), 2);
  assert_int_equal(run_hetee(out, sizeof out, err, sizeof err, "job delete --help"), 0);
  assert_non_null(strstr(out, "usage: hetee job delete ID"));

  /* files a delete stopped between its row and its files would leave: the
   * restarted server removes job files no row names, and nothing else */
  const char *names[] = {"999999.htei", "999999.res", "999999.auth", "notes.txt", "999999.keep"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char fp[500];
    snprintf(fp, sizeof fp, "%s/jobs/%s", F->data, names[i]);
    FILE *o = fopen(fp, "w");
    assert_non_null(o);
    fputs("x", o);
    fclose(o);
  }
  sfx_stop(F, SIGTERM);
  sfx_start(F);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char fp[500];
    snprintf(fp, sizeof fp, "%s/jobs/%s", F->data, names[i]);
    assert_int_equal(access(fp, F_OK) == 0, i >= 3); /* the last two are not a job's files */
  }

  /* --job-ttl 5: a finished job is still there right after it finished,
   * and goes 5-6 s later, with its files, without anyone asking */
  snprintf(F->job_ttl, sizeof F->job_ttl, "5");
  sfx_stop(F, SIGTERM);
  sfx_start(F);
  assert_int_equal(hetee_client_connect(F->url, F->dp1, &c), 0);
  assert_int_equal(hetee_client_job_submit(c, MODEL, X, NIMG, &j), 0);
  int64_t id3 = hetee_client_job_id(j);
  hetee_release_result *r3 = NULL;
  size_t n3 = 0;
  assert_int_equal(hetee_client_job_await(c, j, &r3, &n3), 0);
  assert_int_equal(n3, NIMG);
  hetee_client_results_free(r3, n3);
  snprintf(f_res, sizeof f_res, "%s/jobs/%lld.res", F->data, (long long)id3);
  assert_int_equal(access(f_res, F_OK), 0); /* finished well under 5 s ago */
  int waited = 0;
  while (access(f_res, F_OK) == 0 && waited < 200) { /* up to 20 s */
    usleep(100 * 1000);
    waited++;
  }
  assert_int_not_equal(access(f_res, F_OK), 0);
  snprintf(f_in, sizeof f_in, "%s/jobs/%lld.htei", F->data, (long long)id3);
  assert_int_not_equal(access(f_in, F_OK), 0);
  assert_int_equal(hetee_client_job_delete(c, id3), HETEE_ERR_NOT_FOUND);
  hetee_client_job_free(j);
  hetee_client_disconnect(c);
  F->job_ttl[0] = 0;
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest t[] = {cmocka_unit_test(test_job_result)};
  return cmocka_run_group_tests_name("service/job_cli", t, setup, teardown);
}

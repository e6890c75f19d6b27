/*
 * test_service_auth.c — bound jobs of an offline data provider (the
 * service path, issue 9): the DP's detached Ed25519 authorization
 * (hetee_job_auth_sign) presented by the host (JOB_AUTH), and the release
 * sealed to the DP's identity by the enclave's release key. Against the
 * real enclave process (src/cli/local_parties.c): a signed run opens with
 * the DP's identity key and matches the plaintext engine; another key,
 * sample, model or micro-batch does not open it; an authorization signed by
 * a DP the policy does not name, signed by another key than the one it
 * names, altered after signing, or presented twice is refused, and an input
 * it does not cover does not start. Two runs at once on the one handle
 * with the engine's hooks (shared enclave lock, progress) as the server
 * runs jobs.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "cli/local_parties.h"
#include "hemat/engine_internal.h"

#define MODEL_ID 11
#define MB 8
#define NIMG 12 /* two micro-batches, the second short */

typedef struct fx {
  local_parties t;
  hetee_nn_model *m;
  hetee_engine_plan *plan;
  hetee_engine_model *host_model;
  size_t insz;
  hetee_party_key *other; /* a DP the policy does not name */
  uint8_t release_pk[32];
} fx;

static fx F;

static char path_buf[512];
static const char *model_path(const char *name) {
  const char *src = getenv("HETEE_SOURCE_DIR");
  snprintf(path_buf, sizeof path_buf, "%s/models/%s", src ? src : ".", name);
  return path_buf;
}

static float *images(size_t n, unsigned seed) {
  float *x = malloc(n * F.insz * sizeof *x);
  srand(seed);
  for (size_t i = 0; i < n * F.insz; i++) x[i] = (float)rand() / (float)RAND_MAX;
  return x;
}

/* DP: encrypts x, signs the authorization with k; host copy loaded. */
static hetee_engine_input *dp_input(const float *x, size_t n, const hetee_party_key *k, hetee_job_auth *a) {
  hetee_engine_input *dp = NULL, *host = NULL;
  assert_int_equal(hetee_engine_input_encrypt(F.t.ctx, F.t.pk, F.plan, x, n, &dp), 0);
  memset(a, 0, sizeof *a);
  assert_int_equal(hetee_job_auth_digests(a, MODEL_ID, dp, F.plan), 0);
  randombytes_buf(a->nonce, sizeof a->nonce);
  assert_int_equal(hetee_job_auth_sign(a, k), 0);
  uint8_t *b = NULL;
  size_t bl = 0;
  assert_int_equal(hetee_engine_input_save(dp, &b, &bl), 0);
  assert_int_equal(hetee_engine_input_load(F.t.ctx, F.plan, b, bl, &host), 0);
  free(b);
  hetee_engine_input_free(dp);
  return host;
}

static const uint8_t TO_ID[16] = {0};

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
  hetee_engine_model *mp = NULL;
  uint8_t *b = NULL, *reg = NULL, *m = NULL, *r = NULL;
  size_t bl = 0, rl = 0, ml = 0, rpl = 0;
  if (hetee_engine_model_encrypt(F.t.ctx, F.t.pk, F.m, F.plan, &mp) || hetee_engine_model_save(mp, &b, &bl) ||
      hetee_client_msg_model_register(MODEL_ID, mp, &reg, &rl) || local_parties_send(&F.t, F.t.mps, reg, rl, NULL, NULL))
    return -1;
  hetee_engine_model_free(mp);
  if (hetee_engine_model_load(F.t.ctx, b, bl, &F.host_model)) return -1;
  free(b);
  if (hetee_engine_model_bind(F.t.e, F.host_model, MODEL_ID)) return -1;
  if (hetee_party_key_generate(HETEE_PARTY_DP, &F.other)) return -1;
  /* the release key, through the DP's attested session */
  if (hetee_client_msg_release_key(&m, &ml) || local_parties_send(&F.t, F.t.dps, m, ml, &r, &rpl) ||
      hetee_client_release_key_parse(r, rpl, F.release_pk))
    return -1;
  free(r);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  hetee_engine_model_free(F.host_model);
  hetee_engine_plan_free(F.plan);
  hetee_nn_model_free(F.m);
  hetee_party_key_free(F.other);
  local_parties_stop(&F.t);
  return 0;
}

static void test_signed_run(void **state) {
  (void)state;
  float *x = images(NIMG, 7);
  hetee_job_auth *a = calloc(1, sizeof *a);
  hetee_engine_input *in = dp_input(x, NIMG, F.t.dp, a);
  assert_int_equal(a->n, 2);
  assert_int_equal(a->batch[1], NIMG - MB);
  assert_int_equal(hetee_job_auth_verify(a), 0);
  /* encode / decode round trip */
  uint8_t *eb = NULL;
  size_t el = 0;
  hetee_job_auth *d = calloc(1, sizeof *d);
  assert_int_equal(hetee_job_auth_encode(a, &eb, &el), 0);
  assert_int_equal(hetee_job_auth_decode(eb, el, d), 0);
  assert_memory_equal(d->sig, a->sig, 64);
  assert_int_equal(hetee_job_auth_verify(d), 0);
  assert_int_equal(hetee_job_auth_decode(eb, el - 1, d), HETEE_ERR_FORMAT);
  free(eb);
  free(d);
  int rc = hetee_engine_job_authorize(F.t.e, a);
  if (rc) printf("  authorize: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  hetee_engine_results out;
  rc = hetee_engine_run_bound(F.t.e, F.host_model, in, MODEL_ID, TO_ID, 1, &out, NULL);
  if (rc) printf("  run: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  assert_int_equal(out.n, NIMG);
  /* the plaintext engine's labels */
  size_t k = hetee_nn_model_output_size(F.m);
  float *y = malloc(NIMG * k * sizeof *y);
  assert_int_equal(hetee_nn_forward(F.m, x, NIMG, y), 0);
  int agree = 0;
  for (size_t i = 0; i < NIMG; i++) {
    hetee_release_result r;
    size_t mb = i / MB;
    uint32_t b = (uint32_t)(i % MB);
    assert_int_equal(hetee_client_release_open_id(F.other, F.release_pk, MODEL_ID, a->digest[mb], b, out.sealed[i],
                                                  out.lens[i], &r),
                     HETEE_ERR_AUTH);
    assert_int_equal(hetee_client_release_open_id(F.t.dp, F.release_pk, MODEL_ID, a->digest[mb], b + 1, out.sealed[i],
                                                  out.lens[i], &r),
                     HETEE_ERR_AUTH);
    assert_int_equal(hetee_client_release_open_id(F.t.dp, F.release_pk, MODEL_ID, a->digest[1 - mb], b, out.sealed[i],
                                                  out.lens[i], &r),
                     HETEE_ERR_AUTH);
    assert_int_equal(hetee_client_release_open_id(F.t.dp, F.release_pk, MODEL_ID + 1, a->digest[mb], b, out.sealed[i],
                                                  out.lens[i], &r),
                     HETEE_ERR_AUTH);
    uint8_t fake_pk[32], fake_sk[32];
    crypto_box_keypair(fake_pk, fake_sk); /* a result the host made: not from the release key */
    assert_int_equal(hetee_client_release_open_id(F.t.dp, fake_pk, MODEL_ID, a->digest[mb], b, out.sealed[i],
                                                  out.lens[i], &r),
                     HETEE_ERR_AUTH);
    out.sealed[i][out.lens[i] - 1] ^= 1;
    assert_int_equal(hetee_client_release_open_id(F.t.dp, F.release_pk, MODEL_ID, a->digest[mb], b, out.sealed[i],
                                                  out.lens[i], &r),
                     HETEE_ERR_AUTH);
    out.sealed[i][out.lens[i] - 1] ^= 1;
    assert_int_equal(hetee_client_release_open_id(F.t.dp, F.release_pk, MODEL_ID, a->digest[mb], b, out.sealed[i],
                                                  out.lens[i], &r),
                     0);
    int best = 0;
    for (size_t j = 1; j < k; j++)
      if (y[i * k + j] > y[i * k + (size_t)best]) best = (int)j;
    agree += (int)r.indices[0] == best;
    hetee_release_result_clear(&r);
  }
  printf("  signed run: %d of %d labels = plaintext engine\n", agree, NIMG);
  assert_true(agree >= NIMG - 1);
  hetee_engine_results_clear(&out);
  /* the same authorization again in this enclave's lifetime */
  assert_int_equal(hetee_engine_job_authorize(F.t.e, a), HETEE_ERR_REPLAY);
  free(y);
  free(a);
  free(x);
  hetee_engine_input_free(in);
}

/* hetee_engine_run_hooked as the server runs jobs: two authorized runs at
 * once from two threads on the one enclave handle, sharing one enclave
 * lock, each with a progress hook. Each run's results open with the DP's
 * key and match the plaintext engine; each hook is called once per (stage,
 * micro-batch) step, done going 1, 2, ... total = micro-batches x stages,
 * each micro-batch reported once per stage. */
typedef struct {
  pthread_mutex_t *lock;
  hetee_engine_input *in;
  hetee_engine_results out;
  int rc;
  uint64_t calls, last, total, bad;
  uint64_t per_mb[4];
} hooked_run;

static void on_step(void *ud, size_t mb, uint64_t done, uint64_t total) {
  hooked_run *h = ud;
  h->calls++;
  if (done != h->last + 1 || (h->total && total != h->total) || mb >= 4) h->bad++;
  h->last = done;
  h->total = total;
  if (mb < 4) h->per_mb[mb]++;
}

static void *hooked_main(void *arg) {
  hooked_run *h = arg;
  hetee_engine_run_hooks hk = {on_step, h, h->lock, NULL, 0};
  h->rc = hetee_engine_run_hooked(F.t.e, F.host_model, h->in, NULL, MODEL_ID, TO_ID, 1, &hk, &h->out, NULL);
  return NULL;
}

static void test_hooked_runs(void **state) {
  (void)state;
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  hooked_run h[2];
  hetee_job_auth *a[2];
  float *x[2];
  memset(h, 0, sizeof h);
  for (int i = 0; i < 2; i++) {
    x[i] = images(NIMG, 20 + (unsigned)i);
    a[i] = calloc(1, sizeof *a[i]);
    h[i].in = dp_input(x[i], NIMG, F.t.dp, a[i]);
    h[i].lock = &lock;
    pthread_mutex_lock(&lock);
    assert_int_equal(hetee_engine_job_authorize(F.t.e, a[i]), 0);
    pthread_mutex_unlock(&lock);
  }
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, hooked_main, &h[1]), 0);
  hooked_main(&h[0]);
  pthread_join(t, NULL);
  size_t ns = hetee_engine_plan_num_stages(F.plan), k = hetee_nn_model_output_size(F.m);
  float *y = malloc(NIMG * k * sizeof *y);
  for (int i = 0; i < 2; i++) {
    if (h[i].rc) printf("  run %d: %s\n", i, hetee_last_error());
    assert_int_equal(h[i].rc, 0);
    assert_int_equal(h[i].out.n, NIMG);
    assert_int_equal(h[i].bad, 0);
    assert_int_equal(h[i].total, 2 * ns);
    assert_int_equal(h[i].calls, 2 * ns);
    assert_int_equal(h[i].last, 2 * ns);
    assert_int_equal(h[i].per_mb[0], ns);
    assert_int_equal(h[i].per_mb[1], ns);
    assert_int_equal(hetee_nn_forward(F.m, x[i], NIMG, y), 0);
    int agree = 0;
    for (size_t s = 0; s < NIMG; s++) {
      hetee_release_result r;
      assert_int_equal(hetee_client_release_open_id(F.t.dp, F.release_pk, MODEL_ID, a[i]->digest[s / MB],
                                                    (uint32_t)(s % MB), h[i].out.sealed[s], h[i].out.lens[s], &r),
                       0);
      int best = 0;
      for (size_t j = 1; j < k; j++)
        if (y[s * k + j] > y[s * k + (size_t)best]) best = (int)j;
      agree += (int)r.indices[0] == best;
      hetee_release_result_clear(&r);
    }
    printf("  overlapped run %d: %d of %d labels = plaintext engine, %llu progress steps\n", i, agree, NIMG,
           (unsigned long long)h[i].calls);
    assert_true(agree >= NIMG - 1);
    hetee_engine_results_clear(&h[i].out);
    hetee_engine_input_free(h[i].in);
    free(a[i]);
    free(x[i]);
  }
  free(y);
}

static void refused_run(hetee_engine_input *in) {
  hetee_engine_results out;
  int rc = hetee_engine_run_bound(F.t.e, F.host_model, in, MODEL_ID, TO_ID, 1, &out, NULL);
  printf("  run: %s (%s)\n", hetee_strerror(rc), hetee_last_error());
  assert_int_equal(rc, HETEE_ERR_AUTH);
}

static void test_refused(void **state) {
  (void)state;
  float *x = images(MB, 9);
  hetee_job_auth *a = calloc(1, sizeof *a);
  /* signed by a DP the policy does not name */
  hetee_engine_input *in = dp_input(x, MB, F.other, a);
  assert_int_equal(hetee_engine_job_authorize(F.t.e, a), HETEE_ERR_AUTH);
  /* naming the policy's DP but signed by the other key */
  hetee_party_key_public(F.t.dp, a->dp);
  assert_int_equal(hetee_job_auth_verify(a), HETEE_ERR_AUTH);
  assert_int_equal(hetee_engine_job_authorize(F.t.e, a), HETEE_ERR_AUTH);
  /* the DP's own signature, then a digest or the model altered */
  assert_int_equal(hetee_job_auth_sign(a, F.t.dp), 0);
  a->digest[0][3] ^= 1;
  assert_int_equal(hetee_engine_job_authorize(F.t.e, a), HETEE_ERR_AUTH);
  a->digest[0][3] ^= 1;
  a->model = MODEL_ID + 1;
  assert_int_not_equal(hetee_engine_job_authorize(F.t.e, a), 0);
  a->model = MODEL_ID;
  /* none of these authorized anything: the input does not start */
  refused_run(in);
  /* an authorization of another input does not cover this one */
  hetee_job_auth *b = calloc(1, sizeof *b);
  hetee_engine_input *other = dp_input(x, MB, F.t.dp, b);
  assert_int_equal(hetee_engine_job_authorize(F.t.e, b), 0);
  refused_run(in);
  hetee_engine_input_free(other);
  free(b);
  free(a);
  free(x);
  hetee_engine_input_free(in);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_signed_run),
      cmocka_unit_test(test_hooked_runs),
      cmocka_unit_test(test_refused),
  };
  return cmocka_run_group_tests_name("service/auth", tests, setup, teardown);
}

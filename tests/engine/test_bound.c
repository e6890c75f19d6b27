/*
 * test_bound.c — bound runs (hetee_engine_run_bound, the path `hetee run`
 * and `hetee-bench infer` take) of every bundled model through the real
 * enclave process with the three local parties (src/cli/local_parties.c):
 * registration, job binding, Freivalds checks, the host's rescale of every
 * product to level 0 and its reused buffers. Every prediction equals the
 * plaintext engine's; the counters equal the plan's; what the host sends
 * per stage is the rescaled size (one prime per polynomial, not two);
 * several micro-batches (two pipelines, a short last one); the pipeline
 * pinned to 1 CPU (enclave threads=1) and to 2, the process's CPU mask
 * restored afterwards.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "cli/local_parties.h"
#include "engine/engine_test_util.h"
#include "host/engine_jobs.h"
#include "host/host_internal.h"

static size_t argmax_f(const float *v, size_t n) {
  size_t best = 0;
  for (size_t k = 1; k < n; k++)
    if (v[k] > v[best]) best = k;
  return best;
}

/* 1: plans with every stage in lanes where that saves encryptions
 * (options.lanes = LOCAL_PARTIES_LANES, force_lanes) */
static int g_force_lanes;

static void run_model(const char *name, size_t n, int cpus) {
  hetee_nn_model *m = et_bundled(name);
  hetee_engine_plan_options o;
  memset(&o, 0, sizeof o);
  o.batch = 8; /* several micro-batches: both pipelines, a short last one */
  o.lanes = g_force_lanes ? LOCAL_PARTIES_LANES : 0;
  o.force_lanes = g_force_lanes;
  hetee_engine_plan *p = NULL;
  ET_OK(hetee_engine_plan_build(m, &o, &p));
  uint32_t mb = hetee_engine_plan_micro_batch(p);
  float *x = et_images(m, n, NULL), *logits = malloc(n * 10 * sizeof *logits);
  assert_non_null(logits);
  ET_OK(hetee_nn_forward(m, x, n, logits));
  cpu_set_t before, after;
  assert_int_equal(sched_getaffinity(0, sizeof before, &before), 0);
  local_parties t;
  local_infer_result r;
  memset(&r, 0, sizeof r);
  int rc = local_parties_start_cpus(&t, NULL, cpus);
  if (rc) fprintf(stderr, "start: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  if (cpus) {
    assert_int_equal(t.cpus, cpus < CPU_COUNT(&before) ? cpus : CPU_COUNT(&before));
    assert_non_null(strstr(t.config, cpus == 1 ? "threads=1" : "threads=2"));
    cpu_set_t now;
    assert_int_equal(sched_getaffinity(0, sizeof now, &now), 0);
    assert_int_equal(CPU_COUNT(&now), t.cpus);
  }
  rc = local_infer(&t, m, p, x, n, cpus ? cpus : 2, 1, &r);
  if (rc) fprintf(stderr, "%s: %s\n", name, hetee_last_error());
  assert_int_equal(rc, 0);
  local_parties_stop(&t);
  assert_int_equal(sched_getaffinity(0, sizeof after, &after), 0);
  assert_true(CPU_EQUAL(&before, &after));
  for (size_t i = 0; i < n; i++) assert_int_equal((size_t)r.pred[i], argmax_f(logits + i * 10, 10));
  const hetee_engine_stats *st = &r.stats;
  size_t nmb = (n + mb - 1) / mb, N = hetee_engine_plan_n(p);
  assert_int_equal(st->micro_batches, nmb);
  uint64_t products = 0, keyswitches = 0;
  for (size_t s = 0; s < hetee_engine_plan_num_stages(p); s++) {
    /* the plan's counts, summed over the micro-batches (the last may be short) */
    uint64_t prod = 0, outs = 0, encs = 0, c0w = 0;
    for (size_t k = 0; k < nmb; k++) {
      uint32_t bk = (uint32_t)(n - k * mb < mb ? n - k * mb : mb);
      hetee_hemat_layout L;
      ET_OK(hetee_engine_plan_layout(p, s, bk, &L));
      prod += L.n_products;
      outs += L.n_out_cts;
      keyswitches += L.lanes > 1 ? L.n_dense_in_cts * (uint64_t)(L.lanes - 1) : 0; /* the host's expansions */
      hetee_engine_refresh R;
      ET_OK(hetee_engine_plan_refresh(p, s, bk, &R));
      encs += R.release ? 0 : R.out_ncts; /* a bound job's last stage encrypts nothing */
      c0w += (uint64_t)R.batch * R.n_in;   /* c0's coefficients the enclave reads */
      hetee_engine_refresh_free(&R);
    }
    assert_int_equal(st->stage[s].products, prod);
    assert_int_equal(st->stage[s].enclave_decryptions, outs);
    assert_int_equal(st->stage[s].enclave_encryptions, encs);
    /* rescaled degree-2 outputs, c1 and c2 of one prime each in full and
     * c0 only at the coefficients the enclave reads (stage 0 also carries
     * the job's input ciphertexts: no upper bound there); above that only
     * headers (a JOB_REFRESH carries no spec: the enclave applies the
     * registered plan's): where N words per output exceed that slack, a
     * full c0 does not fit, and a spec (4 bytes per input value, 8 per
     * output value) would not either */
    uint64_t b = st->stage[s].bytes_to_enclave, body = outs * 2 * N * 8 + c0w * 8;
    assert_true(b > body);
    if (s > 0) assert_true(b < body + outs * 128 + nmb * 8192);
    products += prod;
  }
  assert_int_equal(st->products, products);
  assert_int_equal(st->keyswitches, keyswitches);
  if (g_force_lanes && !strcmp(name, "e2dm")) assert_true(keyswitches > 0);
  fprintf(stderr,
          "%s: %zu images bound on %d CPU(s)%s, predictions = plaintext; enclave %.1f ms, host %.1f ms CPU, %llu key "
          "switches\n",
          name, n, cpus, g_force_lanes ? " in lanes" : "", st->enclave_s * 1e3, st->host_cpu_s * 1e3,
          (unsigned long long)keyswitches);
  local_infer_clear(&r);
  free(x);
  free(logits);
  hetee_engine_plan_free(p);
  hetee_nn_model_free(m);
}

static void test_bundled_bound(void **state) {
  (void)state;
  char names[32][64];
  size_t nm = et_model_names(names, 32);
  for (size_t i = 0; i < nm; i++) run_model(names[i], et_quick() ? 9 : 20, 0);
}

/* Lane stages through the real enclave: the enclave encrypts their inputs
 * dense at scale / lanes (the registered plan's spec), the host expands
 * them with the Galois keys of its KEYGEN bundle, the Freivalds checks of
 * the lane layout pass and every prediction equals the plaintext engine's;
 * the key switches are the plan's. */
static void test_lanes_bound(void **state) {
  (void)state;
  g_force_lanes = 1;
  run_model("e2dm", et_quick() ? 9 : 20, 0);
  run_model("cnn", 9, 0);
  run_model("mlp_odd", 9, 2);
  g_force_lanes = 0;
}

/* A lane plan whose host has no expansion keys is refused before anything
 * reaches the enclave (HETEE_ERR_NO_KEY); with the keys of the parties'
 * KEYGEN it runs. */
static void test_lanes_no_keys(void **state) {
  (void)state;
  hetee_nn_model *m = et_bundled("e2dm");
  hetee_engine_plan_options o;
  memset(&o, 0, sizeof o);
  o.batch = 8;
  o.lanes = LOCAL_PARTIES_LANES;
  o.force_lanes = 1;
  hetee_engine_plan *p = NULL;
  ET_OK(hetee_engine_plan_build(m, &o, &p));
  assert_int_equal(hetee_engine_plan_max_lanes(p), LOCAL_PARTIES_LANES);
  local_parties t;
  ET_OK(local_parties_start(&t, NULL));
  assert_non_null(t.gk);
  ET_OK(local_parties_policy(&t, 7, hetee_engine_plan_release_kind(p), 16));
  size_t n = 8;
  float *x = et_images(m, n, NULL);
  hetee_engine_model *em = NULL;
  hetee_engine_input *in = NULL;
  ET_OK(hetee_engine_model_encrypt(t.ctx, t.pk, m, p, &em));
  ET_OK(hetee_engine_input_encrypt(t.ctx, t.pk, p, x, n, &in));
  hetee_engine_results out;
  assert_int_equal(hetee_engine_run(t.e, em, in, 7, t.dp_session, 1, &out, NULL), HETEE_ERR_NO_KEY);
  assert_non_null(strstr(hetee_last_error(), "expansion keys"));
  assert_int_equal(hetee_engine_run_bound(t.e, em, in, 7, t.dp_session, 1, &out, NULL), HETEE_ERR_NO_KEY);
  ET_OK(hetee_engine_model_set_expand_keys(em, t.gk));
  ET_OK(hetee_engine_run(t.e, em, in, 7, t.dp_session, 2, &out, NULL));
  assert_int_equal(out.n, n);
  hetee_engine_results_clear(&out);
  assert_int_equal(hetee_engine_model_set_expand_keys(NULL, t.gk), HETEE_ERR_INVALID_ARG);
  hetee_engine_input_free(in);
  hetee_engine_model_free(em);
  local_parties_stop(&t);
  free(x);
  hetee_engine_plan_free(p);
  hetee_nn_model_free(m);
}

static void test_pinned(void **state) {
  (void)state;
  run_model("e2dm", 17, 1);
  run_model("cnn_s2", 17, 2);
}

/* A host that rewrites the shared region while the enclave reads a bound
 * JOB_REFRESH in place (docs/enclave.md "Transport"): the tamper hook arms
 * a thread that, after a random pause of 0-400 us, flips random bits and
 * overwrites words of the request area for ~1 ms, so the flips land during
 * the host's copy into the region or during the enclave's parse and
 * decryption of it. Every run ends with a status (refused, or by chance
 * unharmed), the enclave process never dies, and an undisturbed run
 * afterwards predicts as the plaintext engine does. */
typedef struct {
  uint8_t *region;
  size_t span;
  atomic_int armed, stop;
  unsigned long bursts;
} flipper;

static int arm_flipper(void *arg, size_t mb, size_t stage, hetee_ckks_ciphertext **cts, size_t n, int pre) {
  (void)mb, (void)stage, (void)cts, (void)n;
  if (!pre) atomic_store((atomic_int *)arg, 1);
  return 0;
}

static void *flip_thread(void *arg) {
  flipper *fl = arg;
  uint32_t x = 2463534242u;
  while (!atomic_load(&fl->stop)) {
    if (!atomic_exchange(&fl->armed, 0)) {
      struct timespec ts = {0, 20000};
      nanosleep(&ts, NULL);
      continue;
    }
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    struct timespec pause = {0, (long)(x % 400) * 1000};
    nanosleep(&pause, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
      for (int i = 0; i < 4096; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        /* mostly past the spec and maps (the ciphertexts), sometimes anywhere */
        size_t at = i % 16 ? ((size_t)256 << 10) + x % (fl->span - ((size_t)256 << 10)) : x % fl->span;
        fl->region[at] ^= (uint8_t)(1u << (x >> 29));
        if (i % 16 == 0) memset(fl->region + (x % fl->span) / 8 * 8, 0xff, 8); /* a word >= any prime */
      }
      clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 1000000L);
    fl->bursts++;
  }
  return NULL;
}

static void test_region_rewritten(void **state) {
  (void)state;
  hetee_nn_model *m = et_bundled("e2dm");
  hetee_engine_plan_options o;
  memset(&o, 0, sizeof o);
  o.batch = 8;
  hetee_engine_plan *p = NULL;
  ET_OK(hetee_engine_plan_build(m, &o, &p));
  size_t n = 16;
  float *x = et_images(m, n, NULL), *logits = malloc(n * 10 * sizeof *logits);
  assert_non_null(logits);
  ET_OK(hetee_nn_forward(m, x, n, logits));
  local_parties t;
  ET_OK(local_parties_start(&t, NULL));
  uint8_t *region = hetee_host_shm_region(t.e);
  if (!region) { /* HETEE_ENCLAVE_SHM=0 or no memfd: nothing to rewrite */
    local_parties_stop(&t);
    skip();
  }
  hetee_host_info pid0;
  ET_OK(hetee_host_info_get(t.e, &pid0));
  flipper fl = {.region = region, .span = (size_t)4 << 20};
  atomic_init(&fl.armed, 0);
  atomic_init(&fl.stop, 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, flip_thread, &fl), 0);
  engine_tamper_hook = arm_flipper;
  engine_tamper_arg = &fl.armed;
  /* until two runs were refused (each run is refused with a probability
   * of about one half: where the bursts land is random), at most 14 runs
   * (model ids 2..15: the enclave holds 16 models) */
  int refused = 0, runs = 0;
  for (int i = 0; i < 14 && refused < 2; i++, runs++) {
    local_infer_result r;
    memset(&r, 0, sizeof r);
    /* a model id per run: a refused spec leaves its job to the model,
     * which then cannot be registered again under the same id */
    int rc = local_infer(&t, m, p, x, n, 2, (uint32_t)(2 + i), &r);
    if (rc) fprintf(stderr, "rewritten run %d: %s\n", i, hetee_last_error());
    assert_true(rc <= 0 && rc != HETEE_ERR_IO);
    refused += rc != 0;
    local_infer_clear(&r);
  }
  engine_tamper_hook = NULL;
  engine_tamper_arg = NULL;
  atomic_store(&fl.stop, 1);
  pthread_join(th, NULL);
  assert_true(fl.bursts > 0);
  assert_true(refused > 0); /* the flips reached what the enclave decrypts and checks */
  /* the same enclave process, never restarted, still answering */
  hetee_host_info info;
  ET_OK(hetee_host_info_get(t.e, &info));
  assert_int_equal(info.pid, pid0.pid);
  assert_int_equal(hetee_host_restarts(t.e), 0);
  local_parties_stop(&t);
  /* (a failed local_infer leaves the parties' session counters ahead of
   * the enclave's: the honest run below uses fresh parties) */
  ET_OK(local_parties_start(&t, NULL));
  local_infer_result r;
  memset(&r, 0, sizeof r);
  ET_OK(local_infer(&t, m, p, x, n, 2, 1, &r));
  for (size_t i = 0; i < n; i++) assert_int_equal((size_t)r.pred[i], argmax_f(logits + i * 10, 10));
  fprintf(stderr, "e2dm with the region rewritten: %d of %d runs refused, %lu bursts, no restart\n", refused, runs,
          fl.bursts);
  local_infer_clear(&r);
  local_parties_stop(&t);
  free(x);
  free(logits);
  hetee_engine_plan_free(p);
  hetee_nn_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_bundled_bound), cmocka_unit_test(test_lanes_bound), cmocka_unit_test(test_lanes_no_keys), cmocka_unit_test(test_pinned),
                                     cmocka_unit_test(test_region_rewritten)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

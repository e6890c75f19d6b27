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
#include <sched.h>

#include "cli/local_parties.h"
#include "engine/engine_test_util.h"

static size_t argmax_f(const float *v, size_t n) {
  size_t best = 0;
  for (size_t k = 1; k < n; k++)
    if (v[k] > v[best]) best = k;
  return best;
}

static void run_model(const char *name, size_t n, int cpus) {
  hetee_nn_model *m = et_bundled(name);
  hetee_engine_plan_options o;
  memset(&o, 0, sizeof o);
  o.batch = 8; /* several micro-batches: both pipelines, a short last one */
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
  uint64_t products = 0;
  for (size_t s = 0; s < hetee_engine_plan_num_stages(p); s++) {
    /* the plan's counts, summed over the micro-batches (the last may be short) */
    uint64_t prod = 0, outs = 0, encs = 0, c0w = 0, outn = 0;
    for (size_t k = 0; k < nmb; k++) {
      uint32_t bk = (uint32_t)(n - k * mb < mb ? n - k * mb : mb);
      hetee_hemat_layout L;
      ET_OK(hetee_engine_plan_layout(p, s, bk, &L));
      prod += L.n_products;
      outs += L.n_out_cts;
      hetee_engine_refresh R;
      ET_OK(hetee_engine_plan_refresh(p, s, bk, &R));
      encs += R.release ? 0 : R.out_ncts; /* a bound job's last stage encrypts nothing */
      c0w += (uint64_t)R.batch * R.n_in;   /* c0's coefficients the enclave reads */
      outn += R.out_n;
      hetee_engine_refresh_free(&R);
    }
    assert_int_equal(st->stage[s].products, prod);
    assert_int_equal(st->stage[s].enclave_decryptions, outs);
    assert_int_equal(st->stage[s].enclave_encryptions, encs);
    /* rescaled degree-2 outputs, c1 and c2 of one prime each in full and
     * c0 only at the coefficients the enclave reads (stage 0 also carries
     * the job's input ciphertexts: no upper bound there); above that only
     * headers and the spec (its input map 4 bytes and its output pairs 8
     * bytes per value, ops, fixed fields): where N words per output exceed
     * that slack, a full c0 does not fit */
    uint64_t b = st->stage[s].bytes_to_enclave, body = outs * 2 * N * 8 + c0w * 8;
    assert_true(b > body);
    if (s > 0) assert_true(b < body + c0w * 4 + outn * 8 + outs * 128 + nmb * 8192);
    products += prod;
  }
  assert_int_equal(st->products, products);
  fprintf(stderr, "%s: %zu images bound on %d CPU(s), predictions = plaintext; enclave %.1f ms, host %.1f ms CPU\n",
          name, n, cpus, st->enclave_s * 1e3, st->host_cpu_s * 1e3);
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

static void test_pinned(void **state) {
  (void)state;
  run_model("e2dm", 17, 1);
  run_model("cnn_s2", 17, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_bundled_bound), cmocka_unit_test(test_pinned)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

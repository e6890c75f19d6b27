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
 */
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
    const hetee_engine_stats *a = &r[0].stats, *b = &r[k].stats;
    assert_int_equal(a->micro_batches, b->micro_batches);
    assert_int_equal(a->nstages, b->nstages);
    for (size_t s = 0; s < a->nstages; s++) {
      assert_int_equal(a->stage[s].products, b->stage[s].products);
      assert_int_equal(a->stage[s].enclave_encryptions, b->stage[s].enclave_encryptions);
      assert_int_equal(a->stage[s].enclave_decryptions, b->stage[s].enclave_decryptions);
      assert_int_equal(a->stage[s].bytes_to_enclave, b->stage[s].bytes_to_enclave);
      assert_int_equal(a->stage[s].bytes_from_enclave, b->stage[s].bytes_from_enclave);
      assert_true(b->stage[s].enclave_s > 0);
    }
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

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_range_equals_full), cmocka_unit_test(test_threads_agree)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_infer.c — encrypted inference through the real enclave process
 * (hetee/engine.h): the model provider encrypts each bundled model under
 * the enclave's public key (the host loads the file's bytes with the
 * validating loader), the data provider encrypts a few Fashion-MNIST
 * images, the host runs the layer loop with the enclave, and the data
 * provider opens one sealed release per image: every prediction equals the
 * plaintext engine's (weights and inputs travel as packed ciphertexts, flag
 * 4). A model ending with tail ops and a softmax releases
 * probabilities within the policy's rounding of the plaintext ones. Bad
 * inputs are refused with clear errors: input cut for another plan,
 * ciphertexts under other parameters, truncated or foreign model files.
 */
#include "enclave/ckks_fixture.h"
#include "engine/engine_test_util.h"

typedef struct {
  char dir[256], plat[300];
  hetee_host_enclave *e;
  ckfx c;
  uint8_t sid[16];
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  fx_tmp_platform(f->dir, sizeof f->dir, f->plat, sizeof f->plat);
  ckfx_parties(&f->c, NULL);
  f->e = ckfx_start(&f->c, f->plat, NULL, 0);
  ckfx_init(&f->c, f->e, f->plat, NULL, 0);
  hetee_client_session_id(f->c.dps, f->sid);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  ckfx_free(&f->c);
  fx_stop(f->e, f->dir);
  free(f);
  return 0;
}

/* Model provider: encrypt, save; host: load the bytes. */
static hetee_engine_model *mp_encrypt(fx *f, const hetee_nn_model *m, const hetee_engine_plan *p) {
  hetee_engine_model *em = NULL, *host = NULL;
  uint8_t *b = NULL;
  size_t len = 0;
  ET_OK(hetee_engine_model_encrypt(f->c.ctx, f->c.pk, m, p, &em));
  ET_OK(hetee_engine_model_save(em, &b, &len));
  hetee_engine_model_free(em);
  /* the first weight ciphertext (after the header and the plan) is in the
   * packed form (flag 4, docs/ckks.md) */
  size_t pl = (size_t)b[48] | (size_t)b[49] << 8 | (size_t)b[50] << 16 | (size_t)b[51] << 24;
  assert_true(52 + pl + 8 + 12 <= len && (b[52 + pl + 8 + 10] & 4));
  ET_OK(hetee_engine_model_load(f->c.ctx, b, len, &host));
  assert_true(hetee_engine_model_ct_bytes(host) > 0);
  free(b);
  return host;
}

/* Data provider: encrypt, save; host: load the bytes. */
static hetee_engine_input *dp_encrypt(fx *f, const hetee_engine_plan *p, const float *x, size_t n) {
  hetee_engine_input *in = NULL, *host = NULL;
  uint8_t *b = NULL;
  size_t len = 0;
  ET_OK(hetee_engine_input_encrypt(f->c.ctx, f->c.pk, p, x, n, &in));
  ET_OK(hetee_engine_input_save(in, &b, &len));
  hetee_engine_input_free(in);
  assert_true(len > 78 && (b[78] & 4)); /* the first input ciphertext is packed */
  ET_OK(hetee_engine_input_load(f->c.ctx, p, b, len, &host));
  assert_int_equal(hetee_engine_input_count(host), n);
  free(b);
  return host;
}

/* Runs and opens: out[i] = the released result of sample i (values for a
 * softmax release, the index as a double for argmax). */
static void run_open(fx *f, const hetee_engine_model *em, const hetee_engine_input *in, uint32_t model_id, int kind,
                     size_t classes, double *out, hetee_engine_stats *st) {
  hetee_engine_results res;
  ET_OK(hetee_engine_run(f->e, em, in, model_id, f->sid, 2, &res, st));
  size_t n = hetee_engine_input_count(in);
  assert_int_equal(res.n, n);
  for (size_t i = 0; i < n; i++) {
    hetee_release_result r;
    ET_OK(hetee_client_release_open(f->c.dps, res.sealed[i], res.lens[i], &r));
    assert_int_equal(r.kind, kind);
    assert_int_equal(r.model_id, model_id);
    if (kind == HETEE_RELEASE_ARGMAX) {
      assert_int_equal(r.n, 1);
      out[i] = r.indices[0];
    } else {
      assert_int_equal(r.n, classes);
      memcpy(out + i * classes, r.values, classes * sizeof *out);
    }
    hetee_release_result_clear(&r);
  }
  hetee_engine_results_clear(&res);
}

static void test_bundled_encrypted(void **state) {
  fx *f = *state;
  char names[32][64];
  size_t n = et_quick() ? 3 : 8, nmodels = et_model_names(names, 32);
  for (size_t i = 0; i < nmodels; i++) {
    hetee_nn_model *m = et_bundled(names[i]);
    hetee_engine_plan_options o;
    memset(&o, 0, sizeof o);
    o.batch = (uint32_t)n;
    hetee_engine_plan *p = NULL;
    ET_OK(hetee_engine_plan_build(m, &o, &p));
    uint32_t model_id = 100 + (uint32_t)i;
    ckfx_policy(&f->c, f->e, model_id, HETEE_RELEASE_ARGMAX, 0, 16, NULL);
    hetee_engine_model *em = mp_encrypt(f, m, p);
    float *x = et_images(m, n, NULL), *logits = malloc(n * 10 * sizeof *logits);
    ET_OK(hetee_nn_forward(m, x, n, logits));
    hetee_engine_input *in = dp_encrypt(f, p, x, n);
    double got[8];
    hetee_engine_stats st;
    run_open(f, em, in, model_id, HETEE_RELEASE_ARGMAX, 10, got, &st);
    size_t stages = hetee_engine_plan_num_stages(p);
    for (size_t k = 0; k < n; k++) {
      size_t best = 0;
      for (size_t j = 1; j < 10; j++)
        if (logits[k * 10 + j] > logits[k * 10 + best]) best = j;
      assert_int_equal((size_t)got[k], best);
    }
    /* the counters add up to the plan's */
    assert_int_equal(st.images, n);
    assert_int_equal(st.keyswitches, 0);
    assert_int_equal(st.nstages, stages);
    uint64_t products = 0;
    for (size_t s = 0; s < stages; s++) {
      hetee_engine_stage_info si;
      ET_OK(hetee_engine_plan_stage(p, s, &si));
      products += si.n_products;
      assert_int_equal(st.stage[s].enclave_decryptions, si.enclave_decryptions);
      assert_int_equal(st.stage[s].enclave_encryptions, si.enclave_encryptions);
      assert_true(st.stage[s].bytes_to_enclave > si.n_out_cts * 3 * 2 * 8192 * 8);
    }
    assert_int_equal(st.products, products);
    assert_true(st.enclave_s > 0 && st.host_s > 0 && st.total_s >= st.host_s);
    fprintf(stderr, "%s: %zu images, predictions = plaintext; %.1f ms/image (host %.1f, enclave %.1f ms CPU)\n",
            names[i], n, st.total_s * 1e3 / n, st.host_s * 1e3 / n, st.enclave_s * 1e3 / n);
    free(x);
    free(logits);
    hetee_engine_input_free(in);
    hetee_engine_model_free(em);
    hetee_engine_plan_free(p);
    hetee_nn_model_free(m);
  }
}

/* Several micro-batches (the last one short) run as two overlapping
 * pipelines; releases still come back in input order. */
static void test_micro_batches(void **state) {
  fx *f = *state;
  hetee_nn_model *m = et_bundled("e2dm");
  hetee_engine_plan_options o;
  memset(&o, 0, sizeof o);
  o.batch = 3;
  hetee_engine_plan *p = NULL;
  ET_OK(hetee_engine_plan_build(m, &o, &p));
  assert_int_equal(hetee_engine_plan_micro_batch(p), 3);
  ckfx_policy(&f->c, f->e, 300, HETEE_RELEASE_ARGMAX, 0, 16, NULL);
  hetee_engine_model *em = mp_encrypt(f, m, p);
  size_t n = et_quick() ? 7 : 14;
  float *x = et_images(m, n, NULL), *logits = malloc(n * 10 * sizeof *logits);
  ET_OK(hetee_nn_forward(m, x, n, logits));
  hetee_engine_input *in = dp_encrypt(f, p, x, n);
  double got[14];
  hetee_engine_stats st;
  for (int threads = 1; threads <= 2; threads++) {
    hetee_engine_results res;
    ET_OK(hetee_engine_run(f->e, em, in, 300, f->sid, threads, &res, &st));
    assert_int_equal(st.micro_batches, (n + 2) / 3);
    for (size_t i = 0; i < n; i++) {
      hetee_release_result r;
      ET_OK(hetee_client_release_open(f->c.dps, res.sealed[i], res.lens[i], &r));
      got[i] = r.indices[0];
      hetee_release_result_clear(&r);
    }
    hetee_engine_results_clear(&res);
    for (size_t k = 0; k < n; k++) {
      size_t best = 0;
      for (size_t j = 1; j < 10; j++)
        if (logits[k * 10 + j] > logits[k * 10 + best]) best = j;
      assert_int_equal((size_t)got[k], best);
    }
  }
  free(x);
  free(logits);
  hetee_engine_input_free(in);
  hetee_engine_model_free(em);
  hetee_engine_plan_free(p);
  hetee_nn_model_free(m);
}

/* conv -> relu -> maxpool -> flatten -> dense -> tanh -> softmax: the tanh
 * runs in the release refresh, the softmax in the release. */
static hetee_nn_model *softmax_model(void) {
  onnx_builder *b = ob_new(13, 0);
  ob_init(b, "w1", 4, (int64_t[]){3, 2, 3, 3});
  ob_init(b, "b1", 1, (int64_t[]){3});
  ob_node(b, "Conv", "conv", "x", "w1", "b1", "a1");
  ob_attr_ints(b, "pads", 4, (int64_t[]){1, 1, 1, 1});
  ob_node(b, "Relu", "relu", "a1", NULL, NULL, "a2");
  ob_node(b, "MaxPool", "pool", "a2", NULL, NULL, "a3");
  ob_attr_ints(b, "kernel_shape", 2, (int64_t[]){2, 2});
  ob_attr_ints(b, "strides", 2, (int64_t[]){2, 2});
  ob_node(b, "Flatten", "flat", "a3", NULL, NULL, "a4");
  ob_init(b, "w2", 2, (int64_t[]){4, 12});
  ob_init(b, "b2", 1, (int64_t[]){4});
  ob_node(b, "Gemm", "fc", "a4", "w2", "b2", "a5");
  ob_attr_int(b, "transB", 1);
  ob_node(b, "Tanh", "tanh", "a5", NULL, NULL, "a6");
  ob_node(b, "Softmax", "sm", "a6", NULL, NULL, "y");
  et_randomize(b, 99, 1.0f);
  return et_build(b, NULL);
}

static void test_softmax_release(void **state) {
  fx *f = *state;
  hetee_nn_model *m = softmax_model();
  hetee_engine_plan *p = NULL;
  ET_OK(hetee_engine_plan_build(m, NULL, &p));
  assert_int_equal(hetee_engine_plan_release_kind(p), HETEE_RELEASE_SOFTMAX);
  ckfx_policy(&f->c, f->e, 7, HETEE_RELEASE_SOFTMAX, 0, 16, NULL);
  hetee_engine_model *em = mp_encrypt(f, m, p);
  size_t n = 5;
  float x[5 * 50], want[5 * 4];
  uint64_t seed = 5;
  for (size_t i = 0; i < n * 50; i++) x[i] = et_unif(&seed);
  ET_OK(hetee_nn_forward(m, x, n, want));
  hetee_engine_input *in = dp_encrypt(f, p, x, n);
  double got[5 * 4];
  run_open(f, em, in, 7, HETEE_RELEASE_SOFTMAX, 4, got, NULL);
  for (size_t i = 0; i < n * 4; i++) assert_true(fabs(got[i] - want[i]) <= 0x1p-16 + 1e-4);
  hetee_engine_input_free(in);
  hetee_engine_model_free(em);
  hetee_engine_plan_free(p);
  hetee_nn_model_free(m);
}

/* ---- bad inputs ---- */

static void test_bad_inputs(void **state) {
  fx *f = *state;
  hetee_nn_model *m = et_bundled("e2dm");
  hetee_engine_plan_options o;
  memset(&o, 0, sizeof o);
  o.batch = 4;
  hetee_engine_plan *p4 = NULL, *p8 = NULL;
  ET_OK(hetee_engine_plan_build(m, &o, &p4));
  o.batch = 8;
  ET_OK(hetee_engine_plan_build(m, &o, &p8));
  ckfx_policy(&f->c, f->e, 200, HETEE_RELEASE_ARGMAX, 0, 16, NULL);
  hetee_engine_model *em = mp_encrypt(f, m, p4);
  float *x = et_images(m, 8, NULL);
  hetee_engine_results res;

  /* an input cut for another plan (micro-batches of 8 for a model planned for 4) */
  hetee_engine_input *in8 = NULL;
  ET_OK(hetee_engine_input_encrypt(f->c.ctx, f->c.pk, p8, x, 8, &in8));
  assert_int_equal(hetee_engine_run(f->e, em, in8, 200, f->sid, 1, &res, NULL), HETEE_ERR_SHAPE);
  assert_string_equal(hetee_last_error(), "input cut in micro-batches of 8, the model's plan uses 4");
  assert_null(res.sealed);
  uint8_t *b = NULL;
  size_t len = 0;
  hetee_engine_input *back = NULL;
  ET_OK(hetee_engine_input_save(in8, &b, &len));
  assert_int_equal(hetee_engine_input_load(f->c.ctx, p4, b, len, &back), HETEE_ERR_SHAPE);
  assert_null(back);
  free(b);
  hetee_engine_input_free(in8);
  /* the loader the service validates a submitted input with: a packed input
   * loads; a value >= q_0 in its first ciphertext's first row is refused */
  hetee_engine_input *in4 = NULL;
  ET_OK(hetee_engine_input_encrypt(f->c.ctx, f->c.pk, p4, x, 4, &in4));
  ET_OK(hetee_engine_input_save(in4, &b, &len));
  ET_OK(hetee_engine_input_load(f->c.ctx, p4, b, len, &back));
  hetee_engine_input_free(back);
  back = NULL;
  assert_true(len > 136 + 8 && (b[78] & 4));
  memset(b + 136, 0xFF, 8); /* header 48 + 12, u64 length, ciphertext header 52 + 16 */
  assert_int_equal(hetee_engine_input_load(f->c.ctx, p4, b, len, &back), HETEE_ERR_RANGE);
  assert_null(back);
  free(b);
  hetee_engine_input_free(in4);

  /* ciphertexts under other parameters (same ring degree, other primes) */
  hetee_ckks_literal lit;
  memset(&lit, 0, sizeof lit);
  lit.log_n = 13;
  lit.nq = 3;
  lit.q_bits[0] = 58;
  lit.q_bits[1] = lit.q_bits[2] = 40;
  lit.np = 1;
  lit.p_bits[0] = 60;
  hetee_ckks_context *other = NULL;
  hetee_ckks_secret_key *osk = NULL;
  hetee_ckks_public_key *opk = NULL;
  ET_OK(hetee_ckks_context_new(&lit, &other));
  ET_OK(hetee_ckks_keygen_secret(other, &osk));
  ET_OK(hetee_ckks_keygen_public(other, osk, &opk));
  hetee_engine_input *oin = NULL;
  ET_OK(hetee_engine_input_encrypt(other, opk, p4, x, 4, &oin));
  assert_int_equal(hetee_engine_run(f->e, em, oin, 200, f->sid, 1, &res, NULL), HETEE_ERR_CONTEXT);
  ET_OK(hetee_engine_input_save(oin, &b, &len));
  assert_int_equal(hetee_engine_input_load(f->c.ctx, p4, b, len, &back), HETEE_ERR_CONTEXT);
  free(b);
  /* a model file made under other parameters */
  hetee_engine_model *oem = NULL, *oback = NULL;
  ET_OK(hetee_engine_model_encrypt(other, opk, m, p4, &oem));
  ET_OK(hetee_engine_model_save(oem, &b, &len));
  assert_int_equal(hetee_engine_model_load(f->c.ctx, b, len, &oback), HETEE_ERR_CONTEXT);
  assert_null(oback);
  free(b);
  hetee_engine_model_free(oem);
  hetee_engine_input_free(oin);

  /* a truncated model file */
  char path[400];
  snprintf(path, sizeof path, "%s/model.htem", f->dir);
  ET_OK(hetee_engine_model_write(em, path));
  hetee_engine_model *rd = NULL;
  ET_OK(hetee_engine_model_read(f->c.ctx, path, &rd));
  hetee_engine_model_free(rd);
  FILE *fp = fopen(path, "r+b");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  long full = ftell(fp);
  fclose(fp);
  assert_int_equal(truncate(path, full - 1000), 0);
  assert_int_equal(hetee_engine_model_read(f->c.ctx, path, &rd), HETEE_ERR_TRUNCATED);
  assert_null(rd);
  assert_non_null(strstr(hetee_last_error(), "header announces"));
  assert_int_equal(truncate(path, 30), 0);
  assert_int_equal(hetee_engine_model_read(f->c.ctx, path, &rd), HETEE_ERR_TRUNCATED);
  snprintf(path, sizeof path, "%s/missing.htem", f->dir);
  assert_int_equal(hetee_engine_model_read(f->c.ctx, path, &rd), HETEE_ERR_NOT_FOUND);

  /* a model planned for other data: its plan no longer matches the model */
  hetee_nn_model *mlp = et_bundled("mlp");
  hetee_engine_model *bad = NULL;
  assert_int_equal(hetee_engine_model_encrypt(f->c.ctx, f->c.pk, mlp, p4, &bad), HETEE_ERR_SHAPE);
  assert_null(bad);
  hetee_nn_model_free(mlp);

  /* the right input still runs after all that */
  hetee_engine_input *ok = dp_encrypt(f, p4, x, 4);
  double got[4];
  run_open(f, em, ok, 200, HETEE_RELEASE_ARGMAX, 10, got, NULL);
  hetee_engine_input_free(ok);

  hetee_ckks_public_key_free(opk);
  hetee_ckks_secret_key_free(osk);
  hetee_ckks_context_free(other);
  free(x);
  hetee_engine_model_free(em);
  hetee_engine_plan_free(p4);
  hetee_engine_plan_free(p8);
  hetee_nn_model_free(m);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bundled_encrypted),
      cmocka_unit_test(test_micro_batches),
      cmocka_unit_test(test_softmax_release),
      cmocka_unit_test(test_bad_inputs),
  };
  return cmocka_run_group_tests_name("engine/infer/logN13", tests, setup, teardown);
}

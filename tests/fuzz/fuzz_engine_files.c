/*
 * fuzz_engine_files.c — fuzz target of the engine's file loaders
 * (src/hemat/engine_format.c): the encrypted model ("HTEM":
 * hetee_engine_model_load, plan included) and the encrypted input ("HTEI":
 * hetee_engine_input_load) and the data provider's sealed input witnesses
 * ("HTWT": hetee_engine_witnesses_load), selected by the magic so mutants
 * can cross formats. Seeds, under the fuzz parameters (N = 2^12, level 1 = the top):
 * a small model (padded conv 2->3 3x3, ReLU, BatchNormalization,
 * average pool, flatten, dense 12->4, sigmoid: the affine layer folded
 * into the dense one, a version-4 plan) with its plan and encrypted weights, inputs of 1 and
 * 3 samples and their witnesses (model id 7, sealed to a fresh key). An accepted
 * object must save back to the same bytes.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "fuzz/fuzz_ckks.h"
#include "hetee/engine.h"
#include "nn/onnx_builder.h"

const char fuzz_target_name[] = "engine_files";
const int fuzz_prefixes_valid = 0;

static hetee_ckks_context *ctx;
static hetee_engine_plan *plan; /* the plan the input loader checks against */
static hetee_nn_model *model;

static hetee_nn_model *small_model(void) {
  onnx_builder *b = ob_new(13, 0); /* x [N,2,5,5] */
  ob_init(b, "w1", 4, (int64_t[]){3, 2, 3, 3});
  ob_init(b, "b1", 1, (int64_t[]){3});
  ob_node(b, "Conv", "conv", "x", "w1", "b1", "a1");
  ob_attr_ints(b, "pads", 4, (int64_t[]){1, 1, 1, 1});
  ob_node(b, "Relu", "relu", "a1", NULL, NULL, "a2b");
  ob_batchnorm(b, "a2b", "a2", 3);
  ob_node(b, "AveragePool", "pool", "a2", NULL, NULL, "a3");
  ob_attr_ints(b, "kernel_shape", 2, (int64_t[]){2, 2});
  ob_attr_ints(b, "strides", 2, (int64_t[]){2, 2});
  ob_node(b, "Flatten", "flat", "a3", NULL, NULL, "a4");
  ob_init(b, "w2", 2, (int64_t[]){4, 12});
  ob_node(b, "Gemm", "fc", "a4", "w2", NULL, "a5");
  ob_attr_int(b, "transB", 1);
  ob_node(b, "Sigmoid", "sig", "a5", NULL, NULL, "y");
  uint8_t *buf = NULL;
  size_t len = 0;
  hetee_nn_model *m = NULL;
  if (ob_pack(b, &buf, &len) == 0 && hetee_nn_model_from_memory(buf, len, &m) != 0) m = NULL;
  free(buf);
  ob_free(b);
  return m;
}

int fuzz_setup(void) {
  /* the engine's scales (products and biases at 2^80, engine.h) need a
   * level-1 modulus of 2^90 or more, which logN 12's 109-bit bound (with a
   * special prime as large as the largest q) cannot give: the engine's own
   * q {60, 40}, P {60} at logN 13 */
  ctx = fuzz_ckks_ctx_chain(13, 60, 40, 60, 0x1p40, 0);
  if (!ctx) fprintf(stderr, "engine_files setup: %s\n", hetee_last_error());
  model = small_model();
  if (!ctx || !model) return -1;
  hetee_engine_plan_options o;
  memset(&o, 0, sizeof o);
  o.n = hetee_ckks_context_n(ctx);
  o.batch = 3;
  if (hetee_engine_plan_build(model, &o, &plan)) {
    fprintf(stderr, "engine_files setup: %s\n", hetee_last_error());
    return -1;
  }
  hetee_engine_stage_info si;
  if (hetee_engine_plan_stage(plan, 1, &si) || si.folded_layer != 2) {
    fprintf(stderr, "engine_files setup: the seed plan does not fold its affine layer\n");
    return -1;
  }
  return 0;
}

void fuzz_teardown(void) {
  hetee_engine_plan_free(plan);
  hetee_nn_model_free(model);
  hetee_ckks_context_free(ctx);
}

#define WITNESS_MODEL 7u

int fuzz_one(const uint8_t *data, size_t len) {
  uint8_t *b = NULL;
  size_t n = 0;
  int rc;
  if (len >= 4 && !memcmp(data, "HTWT", 4)) {
    hetee_engine_witnesses w;
    memset(&w, 0, sizeof w);
    rc = hetee_engine_witnesses_load(plan, WITNESS_MODEL, data, len, &w);
    if (rc) {
      FUZZ_CHECK(w.n == 0);
      hetee_engine_witnesses_clear(&w);
      return rc;
    }
    FUZZ_CHECK(w.n >= 1);
    size_t total = 0;
    for (size_t i = 0; i < w.n; i++) {
      FUZZ_CHECK(w.batch[i] >= 1 && w.batch[i] <= hetee_engine_plan_micro_batch(plan));
      total += w.batch[i];
    }
    FUZZ_CHECK(total >= 1);
    FUZZ_CHECK(hetee_engine_witnesses_save(&w, WITNESS_MODEL, &b, &n) == 0);
    hetee_engine_witnesses_clear(&w);
  } else if (len >= 4 && !memcmp(data, "HTEI", 4)) {
    hetee_engine_input *in = NULL;
    rc = hetee_engine_input_load(ctx, plan, data, len, &in);
    if (rc) {
      FUZZ_CHECK(in == NULL);
      return rc;
    }
    FUZZ_CHECK(hetee_engine_input_count(in) >= 1);
    FUZZ_CHECK(hetee_engine_input_save(in, &b, &n) == 0);
    hetee_engine_input_free(in);
  } else {
    hetee_engine_model *em = NULL;
    rc = hetee_engine_model_load(ctx, data, len, &em);
    if (rc) {
      FUZZ_CHECK(em == NULL);
      return rc;
    }
    const hetee_engine_plan *p = hetee_engine_model_plan(em);
    FUZZ_CHECK(hetee_engine_plan_num_stages(p) >= 1 && hetee_engine_plan_micro_batch(p) >= 1);
    FUZZ_CHECK(hetee_engine_model_save(em, &b, &n) == 0);
    hetee_engine_model_free(em);
  }
  return fuzz_check_resaved(b, n, data, len);
}

size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  hetee_ckks_secret_key *sk = NULL;
  hetee_ckks_public_key *pk = NULL;
  hetee_engine_model *em = NULL;
  FUZZ_CHECK(hetee_ckks_keygen_secret(ctx, &sk) == 0);
  FUZZ_CHECK(hetee_ckks_keygen_public(ctx, sk, &pk) == 0);
  FUZZ_CHECK(hetee_engine_model_encrypt(ctx, pk, model, plan, &em) == 0);
  uint8_t *b = NULL;
  size_t len = 0;
  FUZZ_CHECK(hetee_engine_model_save(em, &b, &len) == 0);
  fuzz_seed_add(&s, &n, b, len);
  free(b);
  float x[3 * 50];
  for (int i = 0; i < 150; i++) x[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
  for (size_t count = 1; count <= 3; count += 2) {
    hetee_engine_input *in = NULL;
    FUZZ_CHECK(hetee_engine_input_encrypt(ctx, pk, plan, x, count, &in) == 0);
    FUZZ_CHECK(hetee_engine_input_save(in, &b, &len) == 0);
    fuzz_seed_add(&s, &n, b, len);
    free(b);
    hetee_engine_input_free(in);
    uint8_t rpk[crypto_box_PUBLICKEYBYTES], rsk[crypto_box_SECRETKEYBYTES];
    crypto_box_keypair(rpk, rsk);
    sodium_memzero(rsk, sizeof rsk);
    hetee_engine_witnesses w;
    memset(&w, 0, sizeof w);
    FUZZ_CHECK(hetee_engine_witnesses_make(plan, WITNESS_MODEL, rpk, x, count, &w) == 0);
    FUZZ_CHECK(hetee_engine_witnesses_save(&w, WITNESS_MODEL, &b, &len) == 0);
    fuzz_seed_add(&s, &n, b, len);
    free(b);
    hetee_engine_witnesses_clear(&w);
  }
  hetee_engine_model_free(em);
  hetee_ckks_public_key_free(pk);
  hetee_ckks_secret_key_free(sk);
  *out = s;
  return n;
}

FUZZ_NO_KNOWN_BAD

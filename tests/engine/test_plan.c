/*
 * test_plan.c — the engine's plan (hetee/engine.h) without encryption:
 * every bundled model plans into the expected stages and refresh ops; the
 * plaintext simulation of the whole plan (hemat's twin per stage + the
 * enclave's op code through the refresh maps, engine_test_util.h) gives
 * hetee_nn_forward's logits for bundled models and for a graph using every
 * supported non-linear layer (padding, affine, pools, constants, softmax
 * after tail ops); unsupported graphs are refused before anything is
 * encrypted with one exact line naming the node; micro-batches are lowered
 * to fit the enclave frames and a forced one that does not fit is refused.
 */
#include "engine/engine_test_util.h"
#include "hemat/engine_internal.h"

/* ---- bundled models ---- */

typedef struct {
  const char *name;
  size_t stages;
  int ops[4][6]; /* refresh op kinds per stage, 0-terminated */
  int fold[4];   /* 1 + the affine layer folded into each stage, 0: none */
} expect;

/* What the README's architectures say; every other bundled model gets the
 * generic checks. */
static const expect KNOWN[] = {
    {"mlp", 2, {{HETEE_OP_RELU}, {0}}, {0}},
    {"mlp_small", 2, {{HETEE_OP_RELU}, {0}}, {0}},
    {"cnn", 4,
     {{HETEE_OP_RELU, HETEE_OP_MAXPOOL}, {HETEE_OP_RELU, HETEE_OP_MAXPOOL, HETEE_OP_RESHAPE}, {HETEE_OP_RELU}, {0}},
     {0}},
    {"e2dm", 3, {{HETEE_OP_SQUARE, HETEE_OP_RESHAPE}, {HETEE_OP_SQUARE}, {0}}, {0}},
    /* its BatchNormalization (layer 2, after the ReLU) is folded into the
     * next conv: its constants leave the refresh and the plan */
    {"cnn_bn", 3,
     {{HETEE_OP_RELU, HETEE_OP_AVGPOOL},
      {HETEE_OP_TANH, HETEE_OP_AVGPOOL, HETEE_OP_RESHAPE},
      {0}},
     {0, 3, 0}},
};

static const expect *known(const char *name) {
  for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++)
    if (!strcmp(KNOWN[i].name, name)) return &KNOWN[i];
  return NULL;
}

static void test_bundled_plans(void **state) {
  (void)state;
  char names[32][64];
  size_t nm = et_model_names(names, 32), nknown = 0;
  for (size_t i = 0; i < nm; i++) {
    const expect *e = known(names[i]);
    hetee_nn_model *m = et_bundled(names[i]);
    hetee_engine_plan *p = NULL;
    ET_OK(hetee_engine_plan_build(m, NULL, &p));
    size_t stages = hetee_engine_plan_num_stages(p);
    if (e) {
      nknown++;
      assert_int_equal(stages, e->stages);
    }
    assert_true(hetee_engine_plan_micro_batch(p) >= 1);
    assert_true(hetee_engine_plan_micro_batch(p) <= HETEE_ENGINE_DEFAULT_BATCH);
    assert_int_equal(hetee_engine_plan_input_size(p), 784);
    assert_int_equal(hetee_engine_plan_output_size(p), 10);
    assert_int_equal(hetee_engine_plan_release_kind(p), HETEE_RELEASE_ARGMAX);
    size_t wcts = 0;
    for (size_t s = 0; s < stages; s++) {
      hetee_engine_stage_info si;
      ET_OK(hetee_engine_plan_stage(p, s, &si));
      if (e) assert_int_equal(si.folded_layer, e->fold[s] - 1);
      if (e) {
        size_t k = 0;
        while (k < 6 && e->ops[s][k]) {
          assert_true(k < si.nops);
          assert_int_equal(si.ops[k].kind, e->ops[s][k]);
          k++;
        }
        assert_int_equal(si.nops, k);
      }
      hetee_hemat_layout L;
      ET_OK(hetee_engine_plan_layout(p, s, hetee_engine_plan_micro_batch(p), &L));
      assert_int_equal(si.n_products, L.n_products);
      assert_int_equal(si.n_out_cts, L.n_out_cts);
      assert_int_equal(si.enclave_decryptions, L.n_out_cts + (s + 1 == stages ? hetee_engine_plan_micro_batch(p) : 0));
      assert_true(si.predicted_s > 0);
      wcts += si.n_w_cts + si.n_bias_cts;
    }
    assert_true(hetee_engine_plan_model_ct_bytes(p) >= wcts * 2 * 2 * 8192 * 8);
    /* the printout names every stage */
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    hetee_engine_plan_print(p, f);
    fclose(f);
    char want[32];
    snprintf(want, sizeof want, "stage %zu: ", stages - 1);
    assert_non_null(strstr(text, want));
    assert_non_null(strstr(text, "model ciphertexts"));
    /* every stage names its keys (none: no lanes by default) and its
     * weight bytes, which sum to the model's */
    size_t nkeys = 0, nw = 0, wsum = 0;
    for (const char *t = text; (t = strstr(t, "  keys     none: ")); t++) nkeys++;
    for (const char *t = text; (t = strstr(t, "  weights  ")); t++) {
      nw++;
      wsum += strtoull(t + strlen("  weights  "), NULL, 10);
    }
    size_t nbytes = 0;
    for (const char *t = text; (t = strstr(t, "  bytes    to the enclave ")); t++) nbytes++;
    assert_int_equal(nbytes, stages);
    assert_int_equal(nkeys, stages);
    assert_int_equal(nw, stages);
    assert_int_equal(wsum, hetee_engine_plan_model_ct_bytes(p));
    free(text);
    hetee_engine_plan_free(p);
    hetee_nn_model_free(m);
  }
  assert_int_equal(nknown, sizeof KNOWN / sizeof KNOWN[0]);
}

/* The plaintext simulation of plan p on n test images equals the reference
 * engine's logits to 1e-4 relative (what names the plan in the message). */
static void check_simulation(const hetee_engine_plan *p, const hetee_nn_model *m, size_t n, const char *what) {
  float *x = et_images(m, n, NULL), *want = malloc(n * 10 * sizeof *want);
  double *got = malloc(n * 10 * sizeof *got);
  assert_true(want && got);
  ET_OK(hetee_nn_forward(m, x, n, want));
  et_simulate(p, m, x, n, got);
  double worst = 0;
  for (size_t k = 0; k < n * 10; k++) worst = fmax(worst, fabs(got[k] - want[k]) / (1.0 + fabs(want[k])));
  fprintf(stderr, "%s: simulation vs reference, worst relative difference %.2e\n", what, worst);
  assert_true(worst < 1e-4);
  free(x);
  free(want);
  free(got);
}

/* Simulation of each bundled model on 70 images (a full micro-batch and a
 * partial one when the micro-batch is 64) = the reference engine. */
static void test_bundled_simulation(void **state) {
  (void)state;
  size_t n = et_quick() ? 20 : 70;
  char names[32][64];
  size_t nm = et_model_names(names, 32);
  for (size_t i = 0; i < nm; i++) {
    hetee_nn_model *m = et_bundled(names[i]);
    hetee_engine_plan *p = NULL;
    ET_OK(hetee_engine_plan_build(m, NULL, &p));
    check_simulation(p, m, n, names[i]);
    hetee_engine_plan_free(p);
    hetee_nn_model_free(m);
  }
}

/* ---- lanes (docs/engine.md, "Issue 8: lanes") ---- */

/* Lane stages: with options.lanes the default costs keep e2dm's packings
 * (lanes do not pay at enclave_weight 4), force_lanes puts its dense
 * 320 -> 64 in 4 lanes (the enclave encrypts 3 dense inputs instead of 10)
 * and never the first stage; the simulation (dense refresh positions, the
 * host's expansion, the twin of the lane layout) equals the reference for
 * every bundled model forced into lanes; the plan file keeps lanes
 * (version 3, re-saved byte for byte) and a plan without lanes is still
 * version 2, the same bytes as before; bad options are refused. */
static void test_lanes(void **state) {
  (void)state;
  hetee_nn_model *m = et_bundled("e2dm");
  hetee_engine_plan_options o;
  memset(&o, 0, sizeof o);
  hetee_engine_plan *p0 = NULL, *p1 = NULL, *p2 = NULL, *q = NULL;
  ET_OK(hetee_engine_plan_build(m, &o, &p0));
  o.lanes = 4;
  ET_OK(hetee_engine_plan_build(m, &o, &p1));
  o.force_lanes = 1;
  ET_OK(hetee_engine_plan_build(m, &o, &p2));
  assert_int_equal(hetee_engine_plan_max_lanes(p0), 1);
  assert_int_equal(hetee_engine_plan_max_lanes(p1), 1);
  assert_int_equal(hetee_engine_plan_max_lanes(p2), 4);
  hetee_engine_stage_info a, b;
  ET_OK(hetee_engine_plan_stage(p0, 1, &a));
  ET_OK(hetee_engine_plan_stage(p2, 1, &b));
  /* the engine's costs (hetee_hemat_costs_engine) pack the dense 320 -> 64
   * at (64, 2): 5 fresh inputs and 32 coset outputs */
  assert_true(a.pack.cb == 64 && a.pack.mb == 2 && a.pack.lanes == 0);
  assert_true(b.pack.cb == 32 && b.pack.mb == 4 && b.pack.nimg == 64 && b.pack.lanes == 4);
  ET_OK(hetee_engine_plan_stage(p2, 0, &b));
  assert_true(b.pack.lanes <= 1);
  assert_int_equal(b.enclave_encryptions, 3); /* stage 1's dense inputs */
  ET_OK(hetee_engine_plan_stage(p0, 0, &a));
  assert_int_equal(a.enclave_encryptions, 5);
  hetee_engine_refresh R;
  ET_OK(hetee_engine_plan_refresh(p2, 0, 64, &R));
  assert_int_equal(R.out_lanes, 4);
  assert_int_equal(R.out_ncts, 3);
  hetee_engine_refresh_free(&R);
  ET_OK(hetee_engine_plan_refresh(p0, 0, 64, &R));
  assert_int_equal(R.out_lanes, 1);
  hetee_engine_refresh_free(&R);
  hetee_engine_plan_print(p2, stderr);
  /* file form */
  uint8_t *b0 = NULL, *b1 = NULL, *b2 = NULL, *b3 = NULL;
  size_t l0, l1, l2, l3;
  ET_OK(engine_plan_save(p0, &b0, &l0));
  ET_OK(engine_plan_save(p1, &b1, &l1));
  ET_OK(engine_plan_save(p2, &b2, &l2));
  assert_true(l0 == l1 && !memcmp(b0, b1, l0));
  assert_int_equal(b0[0], 2);
  assert_int_equal(b2[0], 3);
  ET_OK(engine_plan_load(b2, l2, &q));
  assert_int_equal(hetee_engine_plan_max_lanes(q), 4);
  ET_OK(engine_plan_save(q, &b3, &l3));
  assert_true(l3 == l2 && !memcmp(b2, b3, l2));
  hetee_engine_plan_free(q);
  q = NULL;
  free(b3);
  /* lanes on the first stage, or out of range, are refused */
  ET_OK(hetee_engine_plan_build(m, &o, &q));
  q->st[0].pack.lanes = 4;
  q->st[0].pack.mb = 4;
  ET_OK(engine_plan_save(q, &b3, &l3));
  hetee_engine_plan *bad = NULL;
  assert_int_equal(engine_plan_load(b3, l3, &bad), HETEE_ERR_FORMAT);
  free(b3);
  q->st[0].pack = p0->st[0].pack;
  q->st[1].pack.lanes = 3;
  ET_OK(engine_plan_save(q, &b3, &l3));
  assert_int_equal(engine_plan_load(b3, l3, &bad), HETEE_ERR_FORMAT);
  free(b3);
  hetee_engine_plan_free(q);
  free(b0);
  free(b1);
  free(b2);
  o.lanes = 3;
  assert_int_equal(hetee_engine_plan_build(m, &o, &q), HETEE_ERR_INVALID_ARG);
  o.lanes = 0;
  o.force_lanes = 1;
  assert_int_equal(hetee_engine_plan_build(m, &o, &q), HETEE_ERR_INVALID_ARG);
  hetee_engine_plan_free(p0);
  hetee_engine_plan_free(p1);
  hetee_engine_plan_free(p2);
  hetee_nn_model_free(m);
  /* every bundled model forced into lanes (where a stage has one that
   * saves encryptions): its simulation = the reference */
  size_t n = et_quick() ? 20 : 70, forced = 0;
  char names[32][64];
  size_t nm = et_model_names(names, 32);
  for (size_t i = 0; i < nm; i++) {
    m = et_bundled(names[i]);
    o.lanes = 4;
    o.force_lanes = 1;
    hetee_engine_plan *p = NULL;
    ET_OK(hetee_engine_plan_build(m, &o, &p));
    forced += hetee_engine_plan_max_lanes(p) > 1;
    char what[96];
    snprintf(what, sizeof what, "%s in lanes (max %d)", names[i], hetee_engine_plan_max_lanes(p));
    check_simulation(p, m, n, what);
    hetee_engine_plan_free(p);
    hetee_nn_model_free(m);
  }
  assert_true(forced >= 3);
}

/* ---- strided convolutions in space-to-depth form ---- */

/* x [N,2,H,W] -> Conv (3 ch, kernel kh x kw, stride sh x sw, pads) -> Relu
 * -> Flatten -> Gemm -> 4 outputs. */
static onnx_builder *strided(int H, int W, int kh, int kw, int sh, int sw, int pad, int oh, int ow) {
  onnx_builder *b = ob_new(13, 0);
  Onnx__TensorShapeProto *shp = b->graph.input[0]->type->tensor_type->shape;
  shp->dim[2]->dim_value = H;
  shp->dim[3]->dim_value = W;
  ob_init(b, "w1", 4, (int64_t[]){3, 2, kh, kw});
  ob_init(b, "b1", 1, (int64_t[]){3});
  ob_node(b, "Conv", "conv", "x", "w1", "b1", "a1");
  ob_attr_ints(b, "strides", 2, (int64_t[]){sh, sw});
  ob_attr_ints(b, "pads", 4, (int64_t[]){pad, pad, pad, pad});
  ob_node(b, "Relu", "relu", "a1", NULL, NULL, "a2");
  ob_node(b, "Flatten", "flat", "a2", NULL, NULL, "a3");
  ob_init(b, "w2", 2, (int64_t[]){4, 3 * oh * ow});
  ob_node(b, "Gemm", "fc", "a3", "w2", NULL, "y");
  ob_attr_int(b, "transB", 1);
  et_randomize(b, 4242, 0.8f);
  return b;
}

/* A strided conv whose space-to-depth form has its output size runs in
 * that form (HETEE_ENGINE_PHASE_ALWAYS), and its simulation (weights rearranged by
 * hetee_engine_plan_stage_weights, inputs placed by the plan's positions,
 * the next stage's inputs by the refresh maps) equals the reference; with
 * no_phase, or when the form would change the output size, the conv runs as
 * it is. E2DM's stride-3 conv: 5 output ciphertexts per 64 images instead
 * of 35. */
static void test_phased(void **state) {
  (void)state;
  static const struct {
    int H, W, kh, kw, sh, sw, pad, phasable;
  } C[] = {
      {12, 12, 3, 3, 2, 2, 1, 1}, /* cnn_s2's geometry, smaller */
      {17, 20, 5, 2, 3, 2, 0, 1}, /* strides and kernels differ per axis */
      {9, 10, 2, 2, 1, 2, 0, 1},  /* stride 1 on one axis */
      {13, 11, 4, 3, 2, 3, 1, 0}, /* ceil(15/2) - 2 + 1 = 7 rows, the conv has 6: not phased */
      {28, 28, 7, 7, 3, 3, 0, 1}, /* E2DM */
  };
  for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
    int oh = (C[i].H + 2 * C[i].pad - C[i].kh) / C[i].sh + 1, ow = (C[i].W + 2 * C[i].pad - C[i].kw) / C[i].sw + 1;
    hetee_nn_model *m = et_build(strided(C[i].H, C[i].W, C[i].kh, C[i].kw, C[i].sh, C[i].sw, C[i].pad, oh, ow), NULL);
    size_t n = 19, in = hetee_nn_model_input_size(m);
    float *x = malloc(n * in * sizeof *x), *want = malloc(n * 4 * sizeof *want);
    double *got = malloc(n * 4 * sizeof *got);
    assert_true(x && want && got);
    uint64_t seed = 99 + i;
    for (size_t k = 0; k < n * in; k++) x[k] = et_unif(&seed);
    ET_OK(hetee_nn_forward(m, x, n, want));
    for (int np = 0; np < 2; np++) {
      hetee_engine_plan_options o;
      memset(&o, 0, sizeof o);
      o.batch = 8;
      o.phase = np ? HETEE_ENGINE_PHASE_NEVER : HETEE_ENGINE_PHASE_ALWAYS;
      hetee_engine_plan *p = NULL;
      ET_OK(hetee_engine_plan_build(m, &o, &p));
      hetee_engine_stage_info si;
      ET_OK(hetee_engine_plan_stage(p, 0, &si));
      assert_int_equal(si.phased, C[i].phasable && !np);
      assert_int_equal(si.conv.kh, C[i].kh);
      assert_int_equal(si.conv.sw, C[i].sw);
      if (si.phased) {
        assert_int_equal(si.shape.c, 2 * C[i].sh * C[i].sw);
        assert_int_equal(si.shape.sh, 1);
        assert_int_equal(si.shape.kh, (C[i].kh + C[i].sh - 1) / C[i].sh);
      } else {
        assert_memory_equal(&si.shape, &si.conv, sizeof si.shape);
      }
      et_simulate(p, m, x, n, got);
      double worst = 0;
      for (size_t k = 0; k < n * 4; k++) worst = fmax(worst, fabs(got[k] - want[k]) / (1.0 + fabs(want[k])));
      assert_true(worst < 1e-5);
      hetee_engine_plan_free(p);
    }
    free(x);
    free(want);
    free(got);
    hetee_nn_model_free(m);
  }
  /* E2DM: the default costs choose the form */
  hetee_nn_model *m = et_bundled("e2dm");
  for (int np = 0; np < 2; np++) {
    hetee_engine_plan_options o;
    memset(&o, 0, sizeof o);
    o.phase = np ? HETEE_ENGINE_PHASE_NEVER : HETEE_ENGINE_PHASE_AUTO;
    hetee_engine_plan *p = NULL;
    ET_OK(hetee_engine_plan_build(m, &o, &p));
    hetee_engine_stage_info si;
    ET_OK(hetee_engine_plan_stage(p, 0, &si));
    assert_int_equal(hetee_engine_plan_micro_batch(p), 64);
    assert_int_equal(si.phased, !np);
    assert_int_equal(si.n_out_cts, np ? 35 : 5);
    hetee_engine_plan_free(p);
  }
  hetee_nn_model_free(m);
}

/* ---- a graph with every supported non-linear layer ---- */

/* x [N,2,5,5] -> Pad 1 -> Conv 3x3 (3 ch, pad 1 more) -> Relu -> BatchNorm
 * (after Relu: not foldable, an affine) -> LeakyRelu -> AveragePool 2 s1 ->
 * Sigmoid -> Pad 1 -> Conv 2x2 s2 (4 ch) -> MaxPool 2 -> Tanh ->
 * GlobalAveragePool -> Flatten -> Gemm 4->6 -> Square -> Add const ->
 * Gemm 6->5 -> Tanh -> Softmax */
static onnx_builder *zoo(int softmax) {
  onnx_builder *b = ob_new(13, 0);
  ob_init_i64(b, "p1", 8, (int64_t[]){0, 0, 1, 1, 0, 0, 1, 1});
  ob_node(b, "Pad", "pad1", "x", "p1", NULL, "a0");
  ob_init(b, "w1", 4, (int64_t[]){3, 2, 3, 3});
  ob_init(b, "b1", 1, (int64_t[]){3});
  ob_node(b, "Conv", "conv1", "a0", "w1", "b1", "a1");
  ob_attr_ints(b, "pads", 4, (int64_t[]){1, 1, 1, 1});
  ob_node(b, "Relu", "relu1", "a1", NULL, NULL, "a2");
  ob_batchnorm(b, "a2", "a3", 3);
  ob_node(b, "LeakyRelu", "lrelu", "a3", NULL, NULL, "a4");
  ob_node(b, "AveragePool", "avg", "a4", NULL, NULL, "a5");
  ob_attr_ints(b, "kernel_shape", 2, (int64_t[]){2, 2});
  ob_node(b, "Sigmoid", "sig", "a5", NULL, NULL, "a6");
  ob_init_i64(b, "p2", 8, (int64_t[]){0, 0, 1, 1, 0, 0, 1, 1});
  ob_node(b, "Pad", "pad2", "a6", "p2", NULL, "a7");
  ob_init(b, "w2", 4, (int64_t[]){4, 3, 2, 2});
  ob_node(b, "Conv", "conv2", "a7", "w2", NULL, "a8");
  ob_attr_ints(b, "strides", 2, (int64_t[]){2, 2});
  ob_node(b, "MaxPool", "max", "a8", NULL, NULL, "a9");
  ob_attr_ints(b, "kernel_shape", 2, (int64_t[]){2, 2});
  ob_node(b, "Tanh", "tanh1", "a9", NULL, NULL, "a10");
  ob_node(b, "GlobalAveragePool", "gap", "a10", NULL, NULL, "a11");
  ob_node(b, "Flatten", "flat", "a11", NULL, NULL, "a12");
  ob_init(b, "w3", 2, (int64_t[]){6, 4});
  ob_init(b, "b3", 1, (int64_t[]){6});
  ob_node(b, "Gemm", "fc1", "a12", "w3", "b3", "a13");
  ob_attr_int(b, "transB", 1);
  ob_node(b, "Mul", "sq", "a13", "a13", NULL, "a14");
  ob_init(b, "k", 2, (int64_t[]){1, 6});
  ob_node(b, "Add", "addc", "a14", "k", NULL, "a15");
  ob_init(b, "w4", 2, (int64_t[]){5, 6});
  ob_node(b, "Gemm", "fc2", "a15", "w4", NULL, "a16");
  ob_attr_int(b, "transB", 1);
  ob_node(b, "Tanh", "tanh2", "a16", NULL, NULL, "a17");
  if (softmax) ob_node(b, "Softmax", "sm", "a17", NULL, NULL, "y");
  et_randomize(b, 12345, 0.9f);
  /* variances must stay positive */
  for (size_t i = 0; i < b->graph.n_initializer; i++)
    if (!strcmp(b->graph.initializer[i]->name, "var"))
      for (size_t j = 0; j < 3; j++) b->graph.initializer[i]->float_data[j] = 0.5f + fabsf(b->graph.initializer[i]->float_data[j]);
  return b;
}

static void test_zoo_simulation(void **state) {
  (void)state;
  for (int sm = 0; sm < 2; sm++) {
    hetee_nn_model *m = et_build(zoo(sm), NULL);
    /* the plain engine's last layer is the softmax: compare before it */
    hetee_engine_plan_options o;
    memset(&o, 0, sizeof o);
    o.batch = 10;
    hetee_engine_plan *p = NULL;
    ET_OK(hetee_engine_plan_build(m, &o, &p));
    assert_int_equal(hetee_engine_plan_num_stages(p), 4);
    assert_int_equal(hetee_engine_plan_release_kind(p), sm ? HETEE_RELEASE_SOFTMAX : HETEE_RELEASE_ARGMAX);
    hetee_engine_stage_info si;
    ET_OK(hetee_engine_plan_stage(p, 0, &si));
    assert_int_equal(si.pads[0], 2); /* PAD 1 + the conv's own 1 */
    assert_int_equal(si.pads[3], 2);
    assert_int_equal(si.nops, 5); /* relu, affine, leaky relu, avgpool, sigmoid */
    assert_int_equal(si.ops[1].kind, HETEE_OP_BATCHNORM);
    ET_OK(hetee_engine_plan_stage(p, 1, &si));
    assert_int_equal(si.pads[0], 1);
    assert_int_equal(si.ops[2].kind, HETEE_OP_AVGPOOL); /* global average pool */
    ET_OK(hetee_engine_plan_stage(p, 2, &si));
    assert_int_equal(si.nops, 1); /* the square; the constant add is folded into fc2 */
    assert_int_equal(si.ops[0].kind, HETEE_OP_SQUARE);
    ET_OK(hetee_engine_plan_stage(p, 3, &si));
    assert_int_equal(si.nops, 1); /* tanh after the last linear layer: in the release refresh */
    assert_true(si.folded_layer > 0);
    assert_int_equal(si.has_bias, 1);
    hetee_nn_layer_info add;
    ET_OK(hetee_nn_model_layer(m, (size_t)si.folded_layer, &add));
    assert_int_equal(add.kind, HETEE_NN_ADD_CONST);
    ET_OK(hetee_engine_plan_stage(p, 0, &si));
    assert_int_equal(si.folded_layer, -1);
    size_t n = 23;
    float *x = malloc(n * 50 * sizeof *x), *want = malloc(n * 5 * sizeof *want);
    double *got = malloc(n * 5 * sizeof *got);
    uint64_t seed = 77;
    for (size_t i = 0; i < n * 50; i++) x[i] = et_unif(&seed);
    hetee_nn_trace *t = NULL;
    ET_OK(hetee_nn_trace_run(m, x, n, &t));
    size_t len;
    const float *pre = hetee_nn_trace_output(t, hetee_nn_model_num_layers(m) - 1 - (size_t)sm, &len);
    assert_int_equal(len, n * 5);
    memcpy(want, pre, len * sizeof *want);
    hetee_nn_trace_free(t);
    et_simulate(p, m, x, n, got);
    for (size_t k = 0; k < n * 5; k++) assert_true(fabs(got[k] - want[k]) < 1e-5);
    free(x);
    free(want);
    free(got);
    hetee_engine_plan_free(p);
    hetee_nn_model_free(m);
  }
}

/* ---- a BatchNormalization folded into the next layer ---- */

/* x [N,2,5,5] -> Conv 3x3 (3 ch) -> Relu -> BatchNorm -> AveragePool 2 s1
 * (3x2x2) -> tail, where the tail is
 *   0: Conv 2x2 (4 ch, no bias) -> Relu -> Flatten -> Gemm 4->5
 *   1: GlobalAveragePool -> Flatten -> Gemm 3->5 (no bias)
 *   2: Relu -> Flatten -> Gemm 12->5                (not foldable: a ReLU after it)
 *   3: Conv 2x2 pad 1 (4 ch) -> Flatten -> Gemm 36->5 (not foldable: padding)
 *   4: Flatten -> Gemm 12->5                        (4 inputs per channel) */
static int bn_foldable(int tail) { return tail == 0 || tail == 1 || tail == 4; }
static onnx_builder *bn_graph(int tail) {
  onnx_builder *b = ob_new(13, 0);
  ob_init(b, "w1", 4, (int64_t[]){3, 2, 3, 3});
  ob_init(b, "b1", 1, (int64_t[]){3});
  ob_node(b, "Conv", "conv1", "x", "w1", "b1", "a1");
  ob_node(b, "Relu", "relu1", "a1", NULL, NULL, "a2");
  ob_batchnorm(b, "a2", "a3", 3);
  ob_node(b, "AveragePool", "avg", "a3", NULL, NULL, "a4");
  ob_attr_ints(b, "kernel_shape", 2, (int64_t[]){2, 2});
  int64_t fin = 12;
  if (tail == 0 || tail == 3) {
    ob_init(b, "w2", 4, (int64_t[]){4, 3, 2, 2});
    ob_node(b, "Conv", "conv2", "a4", "w2", NULL, "a5");
    if (tail == 3) ob_attr_ints(b, "pads", 4, (int64_t[]){1, 1, 1, 1});
    ob_node(b, tail == 0 ? "Relu" : "Identity", "r2", "a5", NULL, NULL, "a6");
    fin = tail == 0 ? 4 : 36;
  } else if (tail == 1) {
    ob_node(b, "GlobalAveragePool", "gap", "a4", NULL, NULL, "a6");
    fin = 3;
  } else {
    ob_node(b, tail == 2 ? "Relu" : "Identity", "r2", "a4", NULL, NULL, "a6");
  }
  ob_node(b, "Flatten", "flat", "a6", NULL, NULL, "a7");
  ob_init(b, "w3", 2, (int64_t[]){5, fin});
  ob_node(b, "Gemm", "fc", "a7", "w3", NULL, "y");
  ob_attr_int(b, "transB", 1);
  et_randomize(b, 4242 + (uint64_t)tail, 0.9f);
  for (size_t i = 0; i < b->graph.n_initializer; i++)
    if (!strcmp(b->graph.initializer[i]->name, "var"))
      for (size_t j = 0; j < 3; j++) b->graph.initializer[i]->float_data[j] = 0.5f + fabsf(b->graph.initializer[i]->float_data[j]);
  return b;
}

/* 1 if the 8 bytes of some f64 of v[0..n) (as the plan writes them) occur in buf */
static int has_f64(const uint8_t *buf, size_t len, const float *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double d = v[i];
    uint8_t le[8];
    uint64_t u;
    memcpy(&u, &d, 8);
    for (int k = 0; k < 8; k++) le[k] = (uint8_t)(u >> (8 * k));
    for (size_t j = 0; j + 8 <= len; j++)
      if (!memcmp(buf + j, le, 8)) return 1;
  }
  return 0;
}

static void test_fold_affine(void **state) {
  (void)state;
  for (int tail = 0; tail < 5; tail++) {
    hetee_nn_model *m = et_build(bn_graph(tail), NULL);
    assert_non_null(m);
    hetee_engine_plan_options o;
    memset(&o, 0, sizeof o);
    o.batch = 7;
    hetee_engine_plan *p = NULL;
    ET_OK(hetee_engine_plan_build(m, &o, &p));
    int foldable = bn_foldable(tail);
    size_t last = hetee_engine_plan_num_stages(p) - 1;
    hetee_engine_stage_info s0, s1;
    ET_OK(hetee_engine_plan_stage(p, 0, &s0));
    ET_OK(hetee_engine_plan_stage(p, 1, &s1));
    assert_int_equal(s0.folded_layer, -1);
    assert_int_equal(s1.folded_layer, foldable ? 2 : -1);
    int has_bn = 0;
    for (size_t k = 0; k < s0.nops; k++) has_bn |= s0.ops[k].kind == HETEE_OP_BATCHNORM;
    assert_int_equal(has_bn, !foldable);
    if (foldable) assert_int_equal(s1.has_bias, 1); /* the fold's bias, though the layer has none */
    /* the plan's bytes hold the affine constants only when they are not folded */
    hetee_nn_layer_info bn;
    ET_OK(hetee_nn_model_layer(m, 2, &bn));
    assert_int_equal(bn.kind, HETEE_NN_AFFINE);
    uint8_t *buf = NULL;
    size_t len = 0;
    ET_OK(engine_plan_save(p, &buf, &len));
    assert_int_equal(has_f64(buf, len, bn.weight, bn.weight_len) || has_f64(buf, len, bn.bias, bn.bias_len), !foldable);
    /* the printout says which it is */
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    hetee_engine_plan_print(p, f);
    fclose(f);
    assert_int_equal(strstr(text, "  folded   layer 2 (an affine map or constant add") != NULL, foldable);
    assert_int_equal(strstr(text, "  clear    ") != NULL, !foldable);
    free(text);
    /* the fold survives the format (what the model provider encrypts from) */
    hetee_engine_plan *q = NULL;
    ET_OK(engine_plan_load(buf, len, &q));
    hetee_engine_stage_info t1;
    ET_OK(hetee_engine_plan_stage(q, 1, &t1));
    assert_int_equal(t1.folded_layer, s1.folded_layer);
    /* a folded layer outside (previous stage's layer, this stage's layer) is refused */
    if (foldable) {
      /* where stage 1's i32 fold lies: the one place the bytes change when it does */
      uint8_t *copy = NULL;
      size_t clen = 0, at = 0, ndiff = 0;
      p->st[1].fold += 1;
      ET_OK(engine_plan_save(p, &copy, &clen));
      p->st[1].fold -= 1;
      assert_int_equal(clen, len);
      for (size_t j = 0; j < len; j++)
        if (copy[j] != buf[j]) at = j, ndiff++;
      assert_int_equal(ndiff, 1);
      const int32_t bad[] = {s0.layer, s1.layer, s1.layer + 1, 1000, -2};
      for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        memcpy(copy, buf, len);
        memcpy(copy + at, &bad[k], 4);
        hetee_engine_plan *r = NULL;
        int lrc = engine_plan_load(copy, len, &r);
        if (lrc != HETEE_ERR_FORMAT) fprintf(stderr, "tail %d: fold %d loaded (%d)\n", tail, (int)bad[k], lrc);
        assert_int_equal(lrc, HETEE_ERR_FORMAT);
        assert_null(r);
      }
      free(copy);
    }
    free(buf);
    /* the folded plan computes what the model computes */
    size_t n = 9, in = hetee_engine_plan_input_size(p);
    float *x = malloc(n * in * sizeof *x), *want = malloc(n * 5 * sizeof *want);
    double *got = malloc(n * 5 * sizeof *got);
    assert_true(x && want && got);
    uint64_t seed = 99 + (uint64_t)tail;
    for (size_t i = 0; i < n * in; i++) x[i] = et_unif(&seed);
    ET_OK(hetee_nn_forward(m, x, n, want));
    et_simulate(p, m, x, n, got);
    for (size_t k = 0; k < n * 5; k++) assert_true(fabs(got[k] - want[k]) < 1e-4 * (1 + fabs(want[k])));
    /* the weights and bias the stage computes with: W a and bias + W b */
    float *w = NULL, *bias = NULL;
    ET_OK(hetee_engine_plan_stage_params(p, 1, m, &w, &bias));
    assert_true(foldable ? bias != NULL : 1);
    free(w);
    free(bias);
    /* another model (no affine at the folded index): refused */
    if (foldable) {
      hetee_nn_model *other = et_build(bn_graph(2), NULL);
      w = bias = NULL;
      assert_int_equal(hetee_engine_plan_stage_params(p, 1, other, &w, &bias), HETEE_ERR_SHAPE);
      assert_null(w);
      hetee_nn_model_free(other);
    }
    (void)last;
    free(x);
    free(want);
    free(got);
    hetee_engine_plan_free(q);
    hetee_engine_plan_free(p);
    hetee_nn_model_free(m);
  }
}

/* ---- refusals ---- */

static void expect_refused(onnx_builder *b, int status, const char *message) {
  hetee_nn_model *m = et_build(b, NULL);
  hetee_engine_plan *p = NULL;
  int rc = hetee_engine_plan_build(m, NULL, &p);
  if (rc != status) fprintf(stderr, "got %d: %s\n", rc, hetee_last_error());
  assert_int_equal(rc, status);
  assert_null(p);
  assert_string_equal(hetee_last_error(), message);
  hetee_nn_model_free(m);
}

static onnx_builder *gemm_relu(void) {
  onnx_builder *b = ob_new(13, 4);
  ob_init(b, "w", 2, (int64_t[]){4, 4});
  ob_node(b, "Gemm", "fc", "x", "w", NULL, "h");
  ob_attr_int(b, "transB", 1);
  ob_node(b, "Relu", "act", "h", NULL, NULL, "a");
  return b;
}

static void test_refusals(void **state) {
  (void)state;
  onnx_builder *b = gemm_relu();
  ob_node(b, "Add", "res", "h", "a", NULL, "y");
  expect_refused(b, HETEE_ERR_UNSUPPORTED,
                 "node 'res' (add): adds two activations; the engine runs chains of single-input layers");

  b = gemm_relu();
  ob_node(b, "Mul", "gate", "h", "a", NULL, "y");
  expect_refused(b, HETEE_ERR_UNSUPPORTED,
                 "node 'gate' (mul): multiplies two activations; the engine runs chains of single-input layers");

  b = gemm_relu();
  ob_init(b, "k", 2, (int64_t[]){1, 4});
  ob_node(b, "Mul", "scale", "a", "k", NULL, "y");
  expect_refused(b, HETEE_ERR_UNSUPPORTED, "node 'scale' (mul_const): multiplication by a constant tensor is not supported");

  b = ob_new(13, 4);
  ob_node(b, "Relu", "first", "x", NULL, NULL, "a");
  ob_init(b, "w", 2, (int64_t[]){4, 4});
  ob_node(b, "Gemm", "fc", "a", "w", NULL, "y");
  ob_attr_int(b, "transB", 1);
  expect_refused(b, HETEE_ERR_UNSUPPORTED,
                 "node 'first' (relu): only flatten/reshape and zero padding may come before the first linear layer");

  b = ob_new(13, 0);
  ob_init(b, "w", 4, (int64_t[]){2, 2, 3, 3});
  ob_node(b, "Conv", "c1", "x", "w", NULL, "a");
  ob_node(b, "MaxPool", "mp", "a", NULL, NULL, "y");
  ob_attr_ints(b, "kernel_shape", 2, (int64_t[]){2, 2});
  ob_attr_ints(b, "pads", 4, (int64_t[]){1, 1, 1, 1});
  expect_refused(b, HETEE_ERR_UNSUPPORTED, "node 'mp' (maxpool): padded pooling is not supported");

  b = ob_new(13, 0);
  ob_init(b, "w", 4, (int64_t[]){2, 2, 3, 3});
  ob_node(b, "Conv", "c1", "x", "w", NULL, "a");
  ob_node(b, "AveragePool", "ap", "a", NULL, NULL, "y");
  ob_attr_ints(b, "kernel_shape", 2, (int64_t[]){2, 1});
  expect_refused(b, HETEE_ERR_UNSUPPORTED,
                 "node 'ap' (avgpool): only square pooling windows and strides are supported (2x1, stride 1x1)");

  b = ob_new(13, 0);
  ob_init_i64(b, "p", 8, (int64_t[]){0, 0, 1, 1, 0, 0, 1, 1});
  ob_init(b, "v", 0, NULL); /* 0.5 */
  ob_node(b, "Pad", "pad", "x", "p", "v", "a");
  ob_init(b, "w", 4, (int64_t[]){2, 2, 3, 3});
  ob_node(b, "Conv", "c1", "a", "w", NULL, "y");
  expect_refused(b, HETEE_ERR_UNSUPPORTED, "node 'pad' (pad): only zero padding is supported (value 0.5)");

  b = ob_new(13, 0);
  ob_init(b, "w", 4, (int64_t[]){2, 2, 3, 3});
  ob_node(b, "Conv", "c1", "x", "w", NULL, "a");
  ob_init_i64(b, "p", 8, (int64_t[]){0, 0, 1, 1, 0, 0, 1, 1});
  ob_node(b, "Pad", "pad", "a", "p", NULL, "c");
  ob_node(b, "Relu", "r", "c", NULL, NULL, "d");
  ob_init(b, "w2", 4, (int64_t[]){2, 2, 3, 3});
  ob_node(b, "Conv", "c2", "d", "w2", NULL, "y");
  expect_refused(b, HETEE_ERR_UNSUPPORTED, "node 'pad' (pad): padding must feed a convolution directly");

  b = ob_new(13, 0);
  ob_node(b, "Relu", "r", "x", NULL, NULL, "a");
  ob_node(b, "Sigmoid", "s", "a", NULL, NULL, "y");
  expect_refused(b, HETEE_ERR_UNSUPPORTED,
                 "node 'r' (relu): only flatten/reshape and zero padding may come before the first linear layer");

}

/* ---- micro-batches and frames ---- */

static void test_micro_batches(void **state) {
  (void)state;
  hetee_nn_model *m = et_bundled("e2dm");
  hetee_engine_plan_options o;
  memset(&o, 0, sizeof o);
  hetee_engine_plan *p = NULL;
  /* a small request plans for exactly that many samples */
  o.batch = 5;
  ET_OK(hetee_engine_plan_build(m, &o, &p));
  assert_int_equal(hetee_engine_plan_micro_batch(p), 5);
  hetee_engine_plan_free(p);
  /* larger requests are cut into micro-batches of at most 64 */
  o.batch = 1000;
  ET_OK(hetee_engine_plan_build(m, &o, &p));
  assert_true(hetee_engine_plan_micro_batch(p) <= 64);
  hetee_hemat_layout L;
  assert_int_equal(hetee_engine_plan_layout(p, 0, hetee_engine_plan_micro_batch(p) + 1, &L), HETEE_ERR_INVALID_ARG);
  hetee_engine_plan_free(p);
  /* a forced micro-batch whose refresh frames exceed 64 MiB is refused */
  o.batch = 0;
  o.micro_batch = 4096;
  assert_int_equal(hetee_engine_plan_build(m, &o, &p), HETEE_ERR_LIMIT);
  assert_null(p);
  assert_non_null(strstr(hetee_last_error(), "does not fit the enclave protocol"));
  hetee_nn_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bundled_plans),   cmocka_unit_test(test_bundled_simulation),
      cmocka_unit_test(test_zoo_simulation),  cmocka_unit_test(test_refusals), cmocka_unit_test(test_phased),
      cmocka_unit_test(test_micro_batches),    cmocka_unit_test(test_lanes),
      cmocka_unit_test(test_fold_affine),
  };
  return cmocka_run_group_tests_name("engine/plan", tests, NULL, NULL);
}

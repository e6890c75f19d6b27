/*
 * test_graphs.c — the importer and engine on small graphs in tests/nn/data,
 * written by scripts/train_models.py (testdata):
 *   - zoo.onnx, zoo_gap.onnx: real PyTorch exports using every supported
 *     operator (BatchNormalization foldable and not, Pad, MatMul+Add, Softmax,
 *     the Shape/Gather/Unsqueeze/Concat/Reshape chain of x.view(x.size(0),-1)),
 *     also exported at opsets 11 and 17; expected outputs computed by
 *     PyTorch on the saved inputs;
 *   - conv_bn.onnx: Conv directly followed by BatchNormalization (built with
 *     onnx.helper; expected output from torch.nn.functional) -> must fold;
 *   - graphs with an unsupported op and with inconsistent shapes, refused
 *     with the exact messages below.
 * Plus graphs built here with protobuf-c (onnx_builder.h) for refusals that
 * PyTorch would not export.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "nn_test_util.h"
#include "nn/onnx_builder.h"

/* Runs tests/nn/data/<file> on <name>.input.npy against <name>.output.npy. */
static void run_file(const char *file, const char *name, double tol) {
  char p[256];
  hetee_nn_model *m = NULL;
  hetee_nn_data *in = NULL, *out = NULL;
  snprintf(p, sizeof p, "tests/nn/data/%s", file);
  int rc = hetee_nn_model_load(src_path(p), &m);
  if (rc) fprintf(stderr, "%s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  snprintf(p, sizeof p, "tests/nn/data/%s.input.npy", name);
  assert_int_equal(hetee_nn_data_load(src_path(p), &in), 0);
  snprintf(p, sizeof p, "tests/nn/data/%s.output.npy", name);
  assert_int_equal(hetee_nn_data_load(src_path(p), &out), 0);
  size_t batch = hetee_nn_data_dims(in)[0];
  assert_int_equal(hetee_nn_data_count(in), batch * hetee_nn_model_input_size(m));
  assert_int_equal(hetee_nn_data_count(out), batch * hetee_nn_model_output_size(m));
  float *y = calloc(hetee_nn_data_count(out), sizeof *y);
  assert_non_null(y);
  assert_int_equal(hetee_nn_forward(m, hetee_nn_data_values(in), batch, y), 0);
  double d = max_abs_diff(y, hetee_nn_data_values(out), hetee_nn_data_count(out));
  printf("%s: max |out - pytorch| = %.3g\n", file, d);
  assert_true(d <= tol);
  free(y);
  hetee_nn_data_free(in);
  hetee_nn_data_free(out);
  hetee_nn_model_free(m);
}

static void run_expected(const char *name, double tol) {
  char f[128];
  snprintf(f, sizeof f, "%s.onnx", name);
  run_file(f, name, tol);
}

static hetee_nn_model *load(const char *rel) {
  hetee_nn_model *m = NULL;
  int rc = hetee_nn_model_load(src_path(rel), &m);
  if (rc) fprintf(stderr, "%s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  return m;
}

static void test_zoo(void **state) {
  (void)state;
  run_expected("zoo", 1e-5);
  /* Structure: BN after Gemm folded, BN after Tanh kept as an affine layer,
   * MatMul + bias Add fused, zero Pad elided, Softmax last. */
  hetee_nn_model *m = load("tests/nn/data/zoo.onnx");
  static const hetee_nn_kind kinds[] = {
      HETEE_NN_CONV,  HETEE_NN_LEAKY_RELU, HETEE_NN_AVGPOOL, HETEE_NN_CONV,   HETEE_NN_TANH,   HETEE_NN_AFFINE,
      HETEE_NN_RESHAPE, HETEE_NN_DENSE,    HETEE_NN_SIGMOID, HETEE_NN_SQUARE, HETEE_NN_DENSE, HETEE_NN_SOFTMAX};
  assert_int_equal(hetee_nn_model_num_layers(m), sizeof kinds / sizeof kinds[0]);
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    hetee_nn_layer_info li;
    assert_int_equal(hetee_nn_model_layer(m, i, &li), 0);
    assert_int_equal(li.kind, kinds[i]);
    if (i == 7) assert_string_equal(li.onnx_ops, "Gemm+BatchNormalization");
    if (i == 10) assert_string_equal(li.onnx_ops, "MatMul+Add");
  }
  hetee_nn_model_free(m);
}

static void test_zoo_gap(void **state) {
  (void)state;
  run_expected("zoo_gap", 1e-5);
  hetee_nn_model *m = load("tests/nn/data/zoo_gap.onnx");
  hetee_nn_layer_info li;
  assert_int_equal(hetee_nn_model_layer(m, 4, &li), 0);
  assert_int_equal(li.kind, HETEE_NN_RESHAPE); /* x.view(x.size(0), -1) */
  assert_int_equal(li.out_rank, 1);
  assert_int_equal(li.out_dims[0], 3);
  hetee_nn_model_free(m);
}

/* The same networks exported at opsets 11 and 17 (Softmax's default axis,
 * Unsqueeze's axes attribute vs input, ...). */
static void test_opsets(void **state) {
  (void)state;
  run_file("zoo.opset11.onnx", "zoo", 1e-5);
  run_file("zoo.opset17.onnx", "zoo", 1e-5);
  run_file("zoo_gap.opset11.onnx", "zoo_gap", 1e-5);
  run_file("zoo_gap.opset17.onnx", "zoo_gap", 1e-5);
}

static void test_conv_bn_folds(void **state) {
  (void)state;
  run_expected("conv_bn", 1e-5);
  hetee_nn_model *m = load("tests/nn/data/conv_bn.onnx");
  assert_int_equal(hetee_nn_model_num_layers(m), 3);
  hetee_nn_layer_info li;
  assert_int_equal(hetee_nn_model_layer(m, 0, &li), 0);
  assert_int_equal(li.kind, HETEE_NN_CONV);
  assert_string_equal(li.onnx_ops, "Conv+BatchNormalization");
  hetee_nn_model_free(m);
}

static void expect_refusal(const char *file, int status, const char *message) {
  char rel[256], full[1200];
  hetee_nn_model *m = (hetee_nn_model *)1;
  snprintf(rel, sizeof rel, "tests/nn/data/%s", file);
  const char *path = src_path(rel);
  assert_int_equal(hetee_nn_model_load(path, &m), status);
  assert_null(m);
  snprintf(full, sizeof full, "%s: %s", path, message);
  assert_string_equal(hetee_last_error(), full);
}

static void test_refusals(void **state) {
  (void)state;
  expect_refusal("unsupported_abs.onnx", HETEE_ERR_UNSUPPORTED,
                 "unsupported operator 'Abs' in node '/Abs' (supported: Gemm, MatMul, Add, Mul, Pow (exponent 2), "
                 "Conv, Relu, LeakyRelu, Sigmoid, Tanh, MaxPool, AveragePool, GlobalAveragePool, BatchNormalization, "
                 "Flatten, Reshape, Pad, Dropout, Identity, Softmax (last), and Constant, Shape, Gather, Unsqueeze, "
                 "Squeeze, Concat, Cast on shape constants)");
  expect_refusal("bad_gemm_shape.onnx", HETEE_ERR_SHAPE,
                 "node 'fc2' (Gemm): input 'r' has shape [N,8] but weight 'w2' of shape [10,6] (transposed) expects "
                 "[N,6]");
  expect_refusal("bad_conv_bias.onnx", HETEE_ERR_SHAPE, "node 'conv0' (Conv): bias 'b' has shape [3]; expected [4]");
  expect_refusal("bad_add_shape.onnx", HETEE_ERR_SHAPE,
                 "node 'add0' (Add): constant 'c' of shape [7] does not broadcast to input 'x' of shape [N,10]");
  expect_refusal("bad_conv_kernel.onnx", HETEE_ERR_SHAPE,
                 "node 'big' (Conv): kernel 9x9 larger than the padded input 5x5 (input 'x' [N,1,5,5])");
}

/* ---- graphs built with protobuf-c ---- */

static void expect_built(onnx_builder *b, int status, const char *message) {
  uint8_t *buf = NULL;
  size_t len = 0;
  hetee_nn_model *m = NULL;
  assert_int_equal(ob_pack(b, &buf, &len), 0);
  int rc = hetee_nn_model_from_memory(buf, len, &m);
  if (rc != status) fprintf(stderr, "got %d: %s\n", rc, hetee_last_error());
  assert_int_equal(rc, status);
  if (message) assert_string_equal(hetee_last_error(), message);
  if (status == 0) assert_non_null(m);
  hetee_nn_model_free(m);
  free(buf);
  ob_free(b);
}

static void test_built_graphs(void **state) {
  (void)state;
  onnx_builder *b;

  /* A minimal valid graph: Gemm + Relu on [N,4]. */
  b = ob_new(13, 4);
  ob_init(b, "w", 2, (int64_t[]){3, 4});
  ob_node(b, "Gemm", "fc", "x", "w", NULL, "h");
  ob_attr_int(b, "transB", 1);
  ob_node(b, "Relu", "act", "h", NULL, NULL, "y");
  expect_built(b, 0, NULL);

  /* Opset outside 11..17. */
  b = ob_new(9, 4);
  ob_node(b, "Relu", "act", "x", NULL, NULL, "y");
  expect_built(b, HETEE_ERR_UNSUPPORTED, "ONNX opset 9 not supported (11..17)");

  /* Conv with groups. */
  b = ob_new(13, 0);
  ob_init(b, "w", 4, (int64_t[]){2, 1, 3, 3});
  ob_node(b, "Conv", "c1", "x", "w", NULL, "y");
  ob_attr_int(b, "group", 2);
  expect_built(b, HETEE_ERR_UNSUPPORTED, "node 'c1' (Conv): group != 1 (only groups=1)");

  /* Conv with dilation 2. */
  b = ob_new(13, 0);
  ob_init(b, "w", 4, (int64_t[]){2, 1, 3, 3});
  ob_node(b, "Conv", "c1", "x", "w", NULL, "y");
  ob_attr_ints(b, "dilations", 2, (int64_t[]){2, 2});
  expect_built(b, HETEE_ERR_UNSUPPORTED, "node 'c1' (Conv): dilation != 1 (only dilation 1)");

  /* Softmax in the middle. */
  b = ob_new(13, 4);
  ob_node(b, "Softmax", "sm", "x", NULL, NULL, "s");
  ob_node(b, "Relu", "act", "s", NULL, NULL, "y");
  expect_built(b, HETEE_ERR_UNSUPPORTED, "node 'sm' (Softmax): Softmax is supported only as the last node");

  /* Initializer whose data does not fill its dims. */
  b = ob_new(13, 4);
  ob_init_n(b, "w", 2, (int64_t[]){3, 4}, 11);
  ob_node(b, "Gemm", "fc", "x", "w", NULL, "y");
  ob_attr_int(b, "transB", 1);
  expect_built(b, HETEE_ERR_SHAPE, "tensor 'w': holds 11 values but its dims need 12");

  /* A node reading a tensor nobody produced. */
  b = ob_new(13, 4);
  ob_node(b, "Relu", "act", "nowhere", NULL, NULL, "y");
  expect_built(b, HETEE_ERR_FORMAT,
               "node 'act' (Relu): input 'nowhere' is not produced by an earlier node (graph not in topological "
               "order?)");

  /* Pow with an exponent other than 2. */
  b = ob_new(13, 4);
  ob_init(b, "e", 0, NULL);
  ob_node(b, "Pow", "p", "x", "e", NULL, "y");
  expect_built(b, HETEE_ERR_UNSUPPORTED, "node 'p' (Pow): exponent 'e' is not the constant 2 (only x^2)");

  /* MaxPool with ceil_mode. */
  b = ob_new(13, 0);
  ob_node(b, "MaxPool", "mp", "x", NULL, NULL, "y");
  ob_attr_ints(b, "kernel_shape", 2, (int64_t[]){2, 2});
  ob_attr_int(b, "ceil_mode", 1);
  expect_built(b, HETEE_ERR_UNSUPPORTED, "node 'mp' (MaxPool): ceil_mode=1 (only floor)");

  /* BatchNormalization whose parameters do not match the channels. */
  b = ob_new(13, 0);
  ob_init(b, "g", 1, (int64_t[]){3});
  ob_init(b, "bb", 1, (int64_t[]){2});
  ob_node(b, "Relu", "r", "x", NULL, NULL, "h");
  ob_node(b, "BatchNormalization", "bn", "h", "g", "bb", "y");
  expect_built(b, HETEE_ERR_SHAPE,
               "node 'bn' (BatchNormalization): scale 'g' has shape [3] but input 'h' of shape [N,2,5,5] has 2 "
               "channels");

  /* Not protobuf at all. */
  hetee_nn_model *m = NULL;
  static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
  assert_int_equal(hetee_nn_model_from_memory(junk, sizeof junk, &m), HETEE_ERR_FORMAT);
  assert_null(m);
  assert_int_equal(hetee_nn_model_load("/nonexistent/model.onnx", &m), HETEE_ERR_IO);
}

static hetee_nn_model *build(onnx_builder *b) {
  uint8_t *buf = NULL;
  size_t len = 0;
  hetee_nn_model *m = NULL;
  assert_int_equal(ob_pack(b, &buf, &len), 0);
  int rc = hetee_nn_model_from_memory(buf, len, &m);
  if (rc) fprintf(stderr, "%s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  free(buf);
  ob_free(b);
  return m;
}

/* Elementwise layers with constants and two activations, checked against
 * the formulas: y = ((relu(x) + 0.5) * relu(x)) * 0.5. */
static void test_elementwise_layers(void **state) {
  (void)state;
  onnx_builder *b = ob_new(13, 4);
  ob_init(b, "c", 1, (int64_t[]){4}); /* all 0.5 */
  ob_node(b, "Relu", "r", "x", NULL, NULL, "h");
  ob_node(b, "Add", "a", "h", "c", NULL, "s");
  ob_node(b, "Mul", "m", "s", "h", NULL, "p");
  ob_node(b, "Mul", "k", "p", "c", NULL, "y");
  hetee_nn_model *m = build(b);
  static const hetee_nn_kind kinds[] = {HETEE_NN_RELU, HETEE_NN_ADD_CONST, HETEE_NN_MUL, HETEE_NN_MUL_CONST};
  assert_int_equal(hetee_nn_model_num_layers(m), 4);
  for (size_t i = 0; i < 4; i++) {
    hetee_nn_layer_info li;
    assert_int_equal(hetee_nn_model_layer(m, i, &li), 0);
    assert_int_equal(li.kind, kinds[i]);
  }
  const float x[8] = {-2, -0.5f, 0, 1, 2, 3, -1, 0.25f};
  float y[8];
  assert_int_equal(hetee_nn_forward(m, x, 2, y), 0);
  for (int i = 0; i < 8; i++) {
    double h = x[i] > 0 ? x[i] : 0;
    assert_true(fabs(y[i] - (h + 0.5) * h * 0.5) < 1e-6);
  }
  hetee_nn_model_free(m);
}

/* Constant Pad (value 0.5) then AveragePool counting padding: checked
 * against values worked out by hand. */
static void test_pad_and_pool(void **state) {
  (void)state;
  onnx_builder *b = ob_new(13, 0); /* x: [N,2,5,5] */
  ob_init_i64(b, "pads", 8, (int64_t[]){0, 0, 1, 2, 0, 0, 3, 0});
  ob_init(b, "v", 0, NULL); /* scalar 0.5 */
  ob_node(b, "Pad", "pad", "x", "pads", "v", "p");
  ob_node(b, "AveragePool", "avg", "p", NULL, NULL, "y");
  ob_attr_ints(b, "kernel_shape", 2, (int64_t[]){3, 3});
  ob_attr_ints(b, "strides", 2, (int64_t[]){3, 3});
  ob_attr_ints(b, "pads", 4, (int64_t[]){1, 1, 1, 1});
  ob_attr_int(b, "count_include_pad", 1);
  hetee_nn_model *m = build(b);
  hetee_nn_layer_info li;
  assert_int_equal(hetee_nn_model_layer(m, 0, &li), 0);
  assert_int_equal(li.kind, HETEE_NN_PAD);
  assert_true(li.out_dims[0] == 2 && li.out_dims[1] == 9 && li.out_dims[2] == 7);
  assert_int_equal(hetee_nn_model_layer(m, 1, &li), 0);
  /* (9 + 2 - 3) / 3 + 1 = 3 rows, (7 + 2 - 3) / 3 + 1 = 3 columns */
  assert_true(li.out_dims[0] == 2 && li.out_dims[1] == 3 && li.out_dims[2] == 3);
  float x[50];
  for (int i = 0; i < 50; i++) x[i] = 1.0f; /* padded image: 0.5 border, 1 inside */
  float y[18];
  assert_int_equal(hetee_nn_forward(m, x, 1, y), 0);
  /* Window (0,0) covers padded rows -1..1, cols -1..1 of the 9x7 image:
   * row -1 and col -1 are pool padding (0, counted), rows 0..1 x cols 0..1
   * are Pad's 0.5 (row 0 is the added top row; cols 0,1 the added left
   * columns): 4 x 0.5 / 9. */
  assert_true(fabs(y[0] - 2.0 / 9.0) < 1e-6);
  /* Window (1,1): rows 2..4, cols 2..4, all original pixels: 9 / 9. */
  assert_true(fabs(y[4] - 1.0) < 1e-6);
  hetee_nn_model_free(m);
}

/* Conv whose padding exceeds its kernel: windows wholly in the padding give
 * the bias (here none: 0); found by the libFuzzer target. 1x1 kernel of 0.5
 * on 2 channels, pads 2: out[r][q] = 0.5 (x0 + x1) inside, 0 on the border. */
static void test_conv_pad_beyond_kernel(void **state) {
  (void)state;
  onnx_builder *b = ob_new(13, 0); /* x: [N,2,5,5] */
  ob_init(b, "w", 4, (int64_t[]){1, 2, 1, 1});
  ob_node(b, "Conv", "c", "x", "w", NULL, "y");
  ob_attr_ints(b, "pads", 4, (int64_t[]){2, 2, 3, 2});
  hetee_nn_model *m = build(b);
  hetee_nn_layer_info li;
  assert_int_equal(hetee_nn_model_layer(m, 0, &li), 0);
  assert_true(li.out_dims[0] == 1 && li.out_dims[1] == 10 && li.out_dims[2] == 9);
  float x[50], y[90];
  for (int i = 0; i < 50; i++) x[i] = (float)i;
  assert_int_equal(hetee_nn_forward(m, x, 1, y), 0);
  for (int r = 0; r < 10; r++) {
    for (int q = 0; q < 9; q++) {
      int in = r >= 2 && r < 7 && q >= 2 && q < 7;
      double want = in ? 0.5 * (x[(r - 2) * 5 + q - 2] + x[25 + (r - 2) * 5 + q - 2]) : 0.0;
      assert_true(fabs(y[r * 9 + q] - want) < 1e-6);
    }
  }
  hetee_nn_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_zoo),      cmocka_unit_test(test_zoo_gap),  cmocka_unit_test(test_opsets),  cmocka_unit_test(test_conv_bn_folds),
      cmocka_unit_test(test_refusals), cmocka_unit_test(test_built_graphs), cmocka_unit_test(test_elementwise_layers),
      cmocka_unit_test(test_pad_and_pool),      cmocka_unit_test(test_conv_pad_beyond_kernel),
  };
  return cmocka_run_group_tests_name("nn/graphs", tests, NULL, NULL);
}

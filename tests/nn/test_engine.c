/*
 * test_engine.c — the reference engine as the twin of the encrypted engine:
 * layer-by-layer outputs (hetee_nn_trace) must agree with each layer's
 * definition applied, here, to the previous layer's traced output using only
 * the public layer view (weights, strides, pads); results must be identical
 * bit for bit whatever the batch split and the OpenMP thread count.
 */
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "nn_test_util.h"

static hetee_nn_model *load(const char *rel) {
  hetee_nn_model *m = NULL;
  int rc = hetee_nn_model_load(src_path(rel), &m);
  if (rc) fprintf(stderr, "%s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  return m;
}

static hetee_nn_data *load_data(const char *rel) {
  hetee_nn_data *d = NULL;
  assert_int_equal(hetee_nn_data_load(src_path(rel), &d), 0);
  return d;
}

/* Value of element (c, r, q) of a [C,H,W] sample, 0 outside (padding). */
static double at(const float *x, const size_t *dims, long c, long r, long q, int *inside) {
  *inside = r >= 0 && q >= 0 && (size_t)r < dims[1] && (size_t)q < dims[2];
  return *inside ? x[((size_t)c * dims[1] + (size_t)r) * dims[2] + (size_t)q] : 0.0;
}

/* Recomputes one sample of layer li from its input sample x into y (double). */
static void reference_layer(const hetee_nn_layer_info *li, const float *x, const float *x2, double *y) {
  size_t in = 1, out = 1;
  for (size_t i = 0; i < li->in_rank; i++) in *= li->in_dims[i];
  for (size_t i = 0; i < li->out_rank; i++) out *= li->out_dims[i];
  int inside;
  switch (li->kind) {
    case HETEE_NN_DENSE:
      for (size_t o = 0; o < out; o++) {
        y[o] = li->bias[o];
        for (size_t i = 0; i < in; i++) y[o] += (double)li->weight[o * in + i] * x[i];
      }
      break;
    case HETEE_NN_CONV:
    case HETEE_NN_MAXPOOL:
    case HETEE_NN_AVGPOOL:
      for (size_t o = 0; o < li->out_dims[0]; o++) {
        for (size_t r = 0; r < li->out_dims[1]; r++) {
          for (size_t q = 0; q < li->out_dims[2]; q++) {
            double acc = li->kind == HETEE_NN_CONV ? li->bias[o] : 0.0, mx = -1e300;
            size_t cnt = 0;
            for (size_t u = 0; u < li->kernel[0]; u++) {
              for (size_t v = 0; v < li->kernel[1]; v++) {
                long rr = (long)(r * li->stride[0] + u) - (long)li->pads[0];
                long qq = (long)(q * li->stride[1] + v) - (long)li->pads[1];
                if (li->kind == HETEE_NN_CONV) {
                  for (size_t c = 0; c < li->in_dims[0]; c++) {
                    double e = at(x, li->in_dims, (long)c, rr, qq, &inside);
                    acc += li->weight[((o * li->in_dims[0] + c) * li->kernel[0] + u) * li->kernel[1] + v] * e;
                  }
                } else {
                  double e = at(x, li->in_dims, (long)o, rr, qq, &inside);
                  if (inside) {
                    mx = e > mx ? e : mx;
                    acc += e;
                    cnt++;
                  }
                }
              }
            }
            if (li->count_include_pad) cnt = li->kernel[0] * li->kernel[1];
            size_t k = (o * li->out_dims[1] + r) * li->out_dims[2] + q;
            y[k] = li->kind == HETEE_NN_CONV ? acc : li->kind == HETEE_NN_MAXPOOL ? mx : acc / (double)cnt;
          }
        }
      }
      break;
    case HETEE_NN_GLOBAL_AVGPOOL: {
      size_t hw = in / li->in_dims[0];
      for (size_t c = 0; c < li->in_dims[0]; c++) {
        y[c] = 0;
        for (size_t i = 0; i < hw; i++) y[c] += x[c * hw + i] / (double)hw;
      }
      break;
    }
    case HETEE_NN_AFFINE: {
      size_t per = in / li->in_dims[0];
      for (size_t i = 0; i < in; i++) y[i] = x[i] * (double)li->weight[i / per] + li->bias[i / per];
      break;
    }
    case HETEE_NN_SOFTMAX: {
      double s = 0;
      for (size_t i = 0; i < in; i++) s += exp(x[i]);
      for (size_t i = 0; i < in; i++) y[i] = exp(x[i]) / s;
      break;
    }
    default:
      for (size_t i = 0; i < out; i++) {
        double a = x[i];
        switch (li->kind) {
          case HETEE_NN_RELU: y[i] = a > 0 ? a : 0; break;
          case HETEE_NN_LEAKY_RELU: y[i] = a >= 0 ? a : li->alpha * a; break;
          case HETEE_NN_SIGMOID: y[i] = 1 / (1 + exp(-a)); break;
          case HETEE_NN_TANH: y[i] = tanh(a); break;
          case HETEE_NN_SQUARE: y[i] = a * a; break;
          case HETEE_NN_MUL: y[i] = a * x2[i]; break;
          case HETEE_NN_ADD: y[i] = a + x2[i]; break;
          case HETEE_NN_ADD_CONST: y[i] = a + li->weight[i]; break;
          case HETEE_NN_MUL_CONST: y[i] = a * li->weight[i]; break;
          case HETEE_NN_RESHAPE: y[i] = a; break;
          default: fail_msg("layer kind %s not covered", hetee_nn_kind_name(li->kind));
        }
      }
  }
}

static void check_trace(const char *model, const char *input) {
  hetee_nn_model *m = load(model);
  hetee_nn_data *in = load_data(input);
  size_t batch = hetee_nn_data_dims(in)[0], n_layers = hetee_nn_model_num_layers(m);
  hetee_nn_trace *t = NULL;
  assert_int_equal(hetee_nn_trace_run(m, hetee_nn_data_values(in), batch, &t), 0);
  double *ref = malloc(65536 * sizeof *ref);
  assert_non_null(ref);
  for (size_t l = 0; l < n_layers; l++) {
    hetee_nn_layer_info li;
    assert_int_equal(hetee_nn_model_layer(m, l, &li), 0);
    size_t in_sz = 1, len, in_len;
    for (size_t i = 0; i < li.in_rank; i++) in_sz *= li.in_dims[i];
    const float *out = hetee_nn_trace_output(t, l, &len);
    const float *src = li.inputs[0] < 0 ? hetee_nn_data_values(in) : hetee_nn_trace_output(t, (size_t)li.inputs[0], &in_len);
    const float *src2 = li.n_inputs > 1 ? hetee_nn_trace_output(t, (size_t)li.inputs[1], &in_len) : NULL;
    size_t out_sz = len / batch;
    assert_true(out_sz <= 65536);
    double worst = 0;
    for (size_t s = 0; s < batch; s++) {
      reference_layer(&li, src + s * in_sz, src2 ? src2 + s * in_sz : NULL, ref);
      for (size_t i = 0; i < out_sz; i++) {
        double d = fabs(ref[i] - out[s * out_sz + i]) / (1.0 + fabs(ref[i]));
        worst = d > worst ? d : worst;
      }
    }
    printf("%s layer %zu %-14s %-24s max rel. diff %.2g\n", model, l, hetee_nn_kind_name(li.kind), li.onnx_ops, worst);
    assert_true(worst <= 1e-6);
  }
  free(ref);
  hetee_nn_trace_free(t);
  hetee_nn_data_free(in);
  hetee_nn_model_free(m);
}

static void test_trace_layers(void **state) {
  (void)state;
  check_trace("tests/nn/data/zoo.onnx", "tests/nn/data/zoo.input.npy");
  check_trace("tests/nn/data/zoo_gap.onnx", "tests/nn/data/zoo_gap.input.npy");
  check_trace("tests/nn/data/conv_bn.onnx", "tests/nn/data/conv_bn.input.npy");
}

/* Same bits for one big batch (several internal chunks), per-sample runs and
 * 1 or 2 OpenMP threads. */
static void test_deterministic(void **state) {
  (void)state;
  const char *models[] = {"models/mlp.onnx", "models/cnn.onnx", "models/e2dm.onnx"};
  size_t n = quick_mode() ? 40 : 600;
  float *x = malloc(n * 784 * sizeof *x), *y1 = malloc(n * 10 * sizeof *y1), *y2 = malloc(n * 10 * sizeof *y2);
  assert_true(x && y1 && y2);
  uint32_t s = 12345;
  for (size_t i = 0; i < n * 784; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)(s >> 8) / 16777216.0f;
  }
  for (size_t k = 0; k < 3; k++) {
    hetee_nn_model *m = load(models[k]);
    omp_set_num_threads(1);
    assert_int_equal(hetee_nn_forward(m, x, n, y1), 0);
    omp_set_num_threads(2);
    assert_int_equal(hetee_nn_forward(m, x, n, y2), 0);
    assert_memory_equal(y1, y2, n * 10 * sizeof(float));
    for (size_t i = 0; i < n; i += 37) {
      assert_int_equal(hetee_nn_forward(m, x + i * 784, 1, y2), 0);
      assert_memory_equal(y2, y1 + i * 10, 10 * sizeof(float));
    }
    hetee_nn_model_free(m);
  }
  free(x);
  free(y1);
  free(y2);
}

static void test_arguments(void **state) {
  (void)state;
  hetee_nn_model *m = load("models/mlp.onnx");
  float x[784] = {0}, y[10];
  assert_int_equal(hetee_nn_forward(m, x, 0, y), 0);
  assert_int_equal(hetee_nn_forward(NULL, x, 1, y), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_nn_forward(m, NULL, 1, y), HETEE_ERR_INVALID_ARG);
  hetee_nn_trace *t = (hetee_nn_trace *)1;
  assert_int_equal(hetee_nn_trace_run(m, NULL, 1, &t), HETEE_ERR_INVALID_ARG);
  /* All-zero input: the output is the last bias path, finite. */
  assert_int_equal(hetee_nn_forward(m, x, 1, y), 0);
  for (int i = 0; i < 10; i++) assert_true(isfinite(y[i]));
  hetee_nn_model_free(m);
  hetee_nn_model_free(NULL);
  hetee_nn_trace_free(NULL);
  hetee_nn_data_free(NULL);
  assert_string_equal(hetee_nn_kind_name(HETEE_NN_CONV), "conv");
  assert_string_equal(hetee_nn_kind_name((hetee_nn_kind)999), "?");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_trace_layers),
      cmocka_unit_test(test_deterministic),
      cmocka_unit_test(test_arguments),
  };
  return cmocka_run_group_tests_name("nn/engine", tests, NULL, NULL);
}

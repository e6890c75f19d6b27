/*
 * tests/enclave/test_ops.c — the refresh operation list on plaintext
 * tensors (ops.c) against naive references written here with ordinary
 * branches and libm, on random shapes: pooling windows/strides, bias per
 * element / per channel, batch-norm, chains of ops with reshape.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/trusted/ops.h"
#include "enclave/wire/proto.h"

static double rnd(void) { return (double)rand() / RAND_MAX * 8.0 - 4.0; }

static void ref_pool(const double *in, double *out, int c, int h, int w, int k, int s, int is_max) {
  int oh = (h - k) / s + 1, ow = (w - k) / s + 1;
  for (int ch = 0; ch < c; ch++)
    for (int y = 0; y < oh; y++)
      for (int x = 0; x < ow; x++) {
        double acc = is_max ? -INFINITY : 0;
        for (int dy = 0; dy < k; dy++)
          for (int dx = 0; dx < k; dx++) {
            double t = in[(ch * h + y * s + dy) * w + x * s + dx];
            if (is_max) acc = t > acc ? t : acc;
            else acc += t;
          }
        out[(ch * oh + y) * ow + x] = is_max ? acc : acc / (k * k);
      }
}

static void test_pools_random_shapes(void **state) {
  srand(11);
  for (int t = 0; t < 60; t++) {
    int c = 1 + rand() % 3, h = 1 + rand() % 9, w = 1 + rand() % 9;
    int k = 1 + rand() % (h < w ? h : w), s = 1 + rand() % 3, is_max = t & 1;
    size_t n = (size_t)c * h * w;
    double *v = malloc(n * sizeof *v), *tmp = malloc(n * sizeof *tmp), *want = malloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++) v[i] = rnd();
    ref_pool(v, want, c, h, w, k, s, is_max);
    hetee_refresh_op op = {.kind = is_max ? HETEE_OP_MAXPOOL : HETEE_OP_AVGPOOL, .window = k, .stride = s};
    hetee_refresh_spec spec = {.shape = {c, h, w}, .nops = 1, .ops = &op};
    int sh[3], sh2[3];
    assert_int_equal(hetee_refresh_shapes(&spec, sh), 0);
    hetee_ops_apply(&spec, v, tmp, sh2);
    assert_memory_equal(sh, sh2, sizeof sh);
    assert_int_equal(sh[1], (h - k) / s + 1);
    for (int i = 0; i < sh[0] * sh[1] * sh[2]; i++) assert_true(fabs(v[i] - want[i]) < 1e-12);
    free(v);
    free(tmp);
    free(want);
  }
}

static void test_chain(void **state) {
  enum { C = 2, H = 4, W = 4, N = C * H * W };
  double v[N], tmp[N], want[N], bias[C] = {0.5, -0.5}, g[C] = {2, 3}, b[C] = {1, -1};
  srand(3);
  for (int i = 0; i < N; i++) v[i] = rnd();
  /* reference: bias per channel, batchnorm, leaky relu 0.2, maxpool 2/2, flatten, sigmoid */
  double t1[N], t2[C * 2 * 2];
  for (int i = 0; i < N; i++) {
    int c = i / (H * W);
    double x = g[c] * (v[i] + bias[c]) + b[c];
    t1[i] = x > 0 ? x : 0.2 * x;
  }
  ref_pool(t1, t2, C, H, W, 2, 2, 1);
  for (int i = 0; i < C * 4; i++) want[i] = 1 / (1 + exp(-t2[i]));
  hetee_refresh_op ops[6] = {{.kind = HETEE_OP_ADD_BIAS, .a = bias, .na = C},
                             {.kind = HETEE_OP_BATCHNORM, .a = g, .na = C, .b = b, .nb = C},
                             {.kind = HETEE_OP_LEAKY_RELU, .alpha = 0.2},
                             {.kind = HETEE_OP_MAXPOOL, .window = 2, .stride = 2},
                             {.kind = HETEE_OP_RESHAPE, .shape = {C * 4, 1, 1}},
                             {.kind = HETEE_OP_SIGMOID}};
  hetee_refresh_spec spec = {.shape = {C, H, W}, .nops = 6, .ops = ops};
  int sh[3];
  assert_int_equal(hetee_refresh_shapes(&spec, sh), 0);
  hetee_ops_apply(&spec, v, tmp, sh);
  assert_int_equal(sh[0], C * 4);
  assert_int_equal(sh[1] * sh[2], 1);
  for (int i = 0; i < C * 4; i++) assert_true(fabs(v[i] - want[i]) < 1e-14);
}

static void test_shape_refusals(void **state) {
  double a[4] = {0};
  hetee_refresh_op op = {.kind = HETEE_OP_BATCHNORM, .a = a, .na = 2, .b = a, .nb = 1};
  hetee_refresh_spec spec = {.shape = {2, 2, 2}, .nops = 1, .ops = &op};
  int sh[3];
  assert_int_equal(hetee_refresh_shapes(&spec, sh), HETEE_ERR_SHAPE);
  op = (hetee_refresh_op){.kind = 77};
  assert_int_equal(hetee_refresh_shapes(&spec, sh), HETEE_ERR_FORMAT);
  op = (hetee_refresh_op){.kind = HETEE_OP_SCALE, .alpha = NAN};
  assert_int_equal(hetee_refresh_shapes(&spec, sh), HETEE_ERR_FORMAT);
  op = (hetee_refresh_op){.kind = HETEE_OP_AVGPOOL, .window = 2, .stride = 0};
  assert_int_equal(hetee_refresh_shapes(&spec, sh), HETEE_ERR_SHAPE);
  spec.shape[0] = 0;
  assert_int_equal(hetee_refresh_shapes(&spec, sh), HETEE_ERR_SHAPE);
}

/* Element-wise ops (relu, bias per element and per channel, square, scale,
 * batch-norm) on values with NaN, infinities, -0, values beyond the bound
 * and odd sizes, bit for bit against branchy references: op, then the
 * saturation (NaN -> -bound). Registered twice in CMake: with the SIMD
 * loops where the CPU has them, and with HETEE_ISA=ref (scalar). */
static double ref_sat(double x) {
  const double b = HETEE_REFRESH_VALUE_BOUND;
  if (x != x || x < -b) return -b;
  return x > b ? b : x;
}

static void test_elementwise_exact(void **state) {
  (void)state;
  enum { C = 3, H = 5, W = 7, N = C * H * W };
  const double B = HETEE_REFRESH_VALUE_BOUND;
  const double special[] = {NAN, INFINITY, -INFINITY, -0.0, 0.0, 2 * B, -2 * B, B, -B, 1e300, -1e300, 3.5, -2.25};
  double bias_el[N], bias_ch[C] = {0.5, -1e280, 7}, g[C] = {2, -3, 1e200}, bb[C] = {1, -1, 0.25};
  srand(11);
  for (int i = 0; i < N; i++) bias_el[i] = rnd();
  for (int kind = 0; kind < 6; kind++) {
    double v[N], tmp[N], want[N];
    for (int i = 0; i < N; i++) v[i] = i % 4 == 0 ? special[(i / 4) % 13] : rnd() * 1e10;
    hetee_refresh_op op = {0};
    for (int i = 0; i < N; i++) {
      double x = ref_sat(v[i]); /* the saturation of the gathered values */
      int c = i / (H * W);
      switch (kind) {
      case 0: op.kind = HETEE_OP_RELU; x = x > 0 ? x : 0; break;
      case 1: op = (hetee_refresh_op){.kind = HETEE_OP_ADD_BIAS, .a = bias_el, .na = N}; x += bias_el[i]; break;
      case 2: op = (hetee_refresh_op){.kind = HETEE_OP_ADD_BIAS, .a = bias_ch, .na = C}; x += bias_ch[c]; break;
      case 3: op.kind = HETEE_OP_SQUARE; x *= x; break;
      case 4: op = (hetee_refresh_op){.kind = HETEE_OP_SCALE, .alpha = -1e250}; x *= -1e250; break;
      default: op = (hetee_refresh_op){.kind = HETEE_OP_BATCHNORM, .a = g, .na = C, .b = bb, .nb = C}; x = g[c] * x + bb[c]; break;
      }
      want[i] = ref_sat(x);
    }
    hetee_refresh_spec spec = {.shape = {C, H, W}, .nops = 1, .ops = &op};
    int sh[3];
    hetee_ops_apply(&spec, v, tmp, sh);
    for (int i = 0; i < N; i++) {
      if (memcmp(&v[i], &want[i], sizeof v[i]) != 0) fprintf(stderr, "kind %d value %d: %a != %a\n", kind, i, v[i], want[i]);
      assert_memory_equal(&v[i], &want[i], sizeof v[i]);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pools_random_shapes),
      cmocka_unit_test(test_chain),
      cmocka_unit_test(test_shape_refusals),
      cmocka_unit_test(test_elementwise_exact),
  };
  return cmocka_run_group_tests_name("enclave/ops", tests, NULL, NULL);
}

/*
 * refine/plan: the refine plan of the bundled MLPs and the refusals, the
 * data order, and the plaintext twin's gradients against finite differences
 * of the loss (cross-entropy and MSE, ReLU / tanh / sigmoid, all layers).
 */
#include "refine/refine_test_util.h"

static char *model_path(const char *name) {
  static char buf[4096];
  const char *src = getenv("HETEE_SOURCE_DIR");
  snprintf(buf, sizeof buf, "%s/models/%s", src ? src : ".", name);
  return buf;
}

static void test_bundled(void **state) {
  (void)state;
  hetee_nn_model *m = NULL;
  assert_int_equal(hetee_nn_model_load(model_path("mlp_small.onnx"), &m), 0);
  hetee_refine_weights w;
  assert_int_equal(hetee_refine_weights_from_model(m, &w), 0);
  assert_int_equal(w.nl, 2);
  assert_int_equal(w.k[0], 784);
  assert_int_equal(w.m[0], 128);
  assert_int_equal(w.m[1], 10);
  assert_int_equal(w.act[0], HETEE_REFINE_ACT_RELU);
  hetee_refine_config cfg = {64, 1, 0, HETEE_REFINE_LOSS_XENT, 0.05, 0.9, 1e-4, 1};
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w, &cfg, 0, &p), 0);
  assert_int_equal(p.first_train, 0);
  assert_true(p.L[1].has_back && !p.L[0].has_back && p.L[0].trains);
  /* the gradient layout: batch as channels, deltas as positions, inputs (+1) as outputs */
  assert_int_equal(p.L[0].G.shape.c, 64);
  assert_int_equal(p.L[0].G.shape.w, 128);
  assert_int_equal(p.L[0].G.shape.co, 785);
  hetee_refine_plan_print(&p, stderr);
  cfg.train_layers = 1;
  assert_int_equal(hetee_refine_plan_build(&w, &cfg, 0, &p), 0);
  assert_int_equal(p.first_train, 1);
  assert_true(!p.L[1].has_back && !p.L[0].trains);
  /* the plain forward equals hetee_nn_forward */
  float x[3 * 784], y1[30], y2[30];
  for (int i = 0; i < 3 * 784; i++) x[i] = (float)((i * 37) % 255) / 255.0f;
  assert_int_equal(hetee_refine_plain_forward(&w, x, 3, y1), 0);
  assert_int_equal(hetee_nn_forward(m, x, 3, y2), 0);
  for (int i = 0; i < 30; i++) assert_true(fabs(y1[i] - y2[i]) < 1e-4);
  hetee_refine_weights_clear(&w);
  hetee_nn_model_free(m);
  /* convolutions are not refined: one line naming the node */
  assert_int_equal(hetee_nn_model_load(model_path("cnn.onnx"), &m), 0);
  assert_int_equal(hetee_refine_weights_from_model(m, &w), HETEE_ERR_UNSUPPORTED);
  assert_non_null(strstr(hetee_last_error(), "convolutions are not refined"));
  hetee_nn_model_free(m);
  /* bad settings */
  rt_weights(&w, 2, (int[]){6, 5, 3}, (int[]){HETEE_REFINE_ACT_RELU, 0});
  hetee_refine_config bad = cfg;
  bad.batch = 0;
  assert_int_equal(hetee_refine_plan_build(&w, &bad, 0, &p), HETEE_ERR_INVALID_ARG);
  bad = cfg;
  bad.train_layers = 3;
  assert_int_equal(hetee_refine_plan_build(&w, &bad, 0, &p), HETEE_ERR_INVALID_ARG);
  bad = cfg;
  bad.momentum = 1.0;
  assert_int_equal(hetee_refine_plan_build(&w, &bad, 0, &p), HETEE_ERR_INVALID_ARG);
  hetee_refine_weights_clear(&w);
}

static void test_order(void **state) {
  (void)state;
  uint32_t a[1000], b[1000], seen[1000] = {0};
  hetee_refine_order(7, 0, 1000, a);
  hetee_refine_order(7, 1, 1000, b);
  for (int i = 0; i < 1000; i++) seen[a[i]]++;
  for (int i = 0; i < 1000; i++) assert_int_equal(seen[i], 1);
  assert_memory_not_equal(a, b, sizeof a);
  hetee_refine_order(7, 0, 1000, b);
  assert_memory_equal(a, b, sizeof a);
}

/* mean loss over samples idx of x */
static double loss_of(const hetee_refine_weights *w, int lossk, const float *x, const float *lab, int count) {
  int c = w->m[w->nl - 1];
  float y[64];
  double L = 0;
  for (int s = 0; s < count; s++) {
    assert_int_equal(hetee_refine_plain_forward(w, x + (size_t)s * (size_t)w->k[0], 1, y), 0);
    int t = (int)lab[s];
    if (lossk == HETEE_REFINE_LOSS_MSE) {
      for (int i = 0; i < c; i++) L += (y[i] - (i == t)) * (y[i] - (i == t));
    } else {
      double mx = y[0], se = 0;
      for (int i = 1; i < c; i++) mx = fmax(mx, y[i]);
      for (int i = 0; i < c; i++) se += exp(y[i] - mx);
      L += -(y[t] - mx - log(se));
    }
  }
  return L / count;
}

static void gradcheck(int lossk, int act) {
  hetee_refine_weights w;
  rt_weights(&w, 3, (int[]){7, 6, 5, 4}, (int[]){act, HETEE_REFINE_ACT_SIGMOID, 0});
  float *x, *lab;
  rt_data(7, 4, 5, &x, &lab);
  hetee_refine_config cfg = {5, 1000, 0, lossk, 0.1, 0, 0, 1};
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w, &cfg, 0, &p), 0);
  hetee_refine_plain t;
  assert_int_equal(hetee_refine_plain_init(&t, &p, &w), 0);
  uint32_t idx[5] = {0, 1, 2, 3, 4};
  assert_int_equal(hetee_refine_plain_step(&t, x, lab, idx, 5), 0);
  double worst = 0;
  for (int l = 0; l < 3; l++) {
    int k = w.k[l];
    for (int i = 0; i < w.m[l]; i++)
      for (int j = 0; j <= k; j++) {
        float *pp = j < k ? &w.w[l][i * k + j] : &w.b[l][i];
        float keep = *pp;
        double h = 1e-2;
        *pp = keep + (float)h;
        double lp = loss_of(&w, lossk, x, lab, 5);
        *pp = keep - (float)h;
        double lm = loss_of(&w, lossk, x, lab, 5);
        *pp = keep;
        double num = (lp - lm) / (2 * h), an = t.gacc[l][i * (k + 1) + j] / 5.0;
        worst = fmax(worst, fabs(num - an));
      }
  }
  fprintf(stderr, "gradcheck loss %d act %d: max |numeric - twin| = %.2e\n", lossk, act, worst);
  assert_true(worst < 2e-3);
  hetee_refine_plain_clear(&t);
  hetee_refine_weights_clear(&w);
  free(x);
  free(lab);
}

static void test_gradcheck(void **state) {
  (void)state;
  gradcheck(HETEE_REFINE_LOSS_XENT, HETEE_REFINE_ACT_TANH);
  gradcheck(HETEE_REFINE_LOSS_MSE, HETEE_REFINE_ACT_TANH);
  gradcheck(HETEE_REFINE_LOSS_XENT, HETEE_REFINE_ACT_RELU);
}


/* The learning-rate schedules: values, the spec round trip (constant is
 * written as version 1, the bytes before schedules), refusals. */
static void test_schedule(void **state) {
  (void)state;
  hetee_refine_weights w;
  static const int dims[] = {6, 5, 3}, acts[] = {HETEE_REFINE_ACT_RELU, HETEE_REFINE_ACT_NONE};
  rt_weights(&w, 2, dims, acts);
  hetee_refine_config cfg = {4, 1, 0, HETEE_REFINE_LOSS_XENT, 0.4, 0.9, 0, 1};
  hetee_refine_plan p, q;
  assert_int_equal(hetee_refine_plan_build(&w, &cfg, 8192, &p), 0);
  assert_true(hetee_refine_lr(&p, 0) == 0.4 && hetee_refine_lr(&p, 1000) == 0.4);
  uint8_t *b;
  size_t n;
  assert_int_equal(hetee_refine_spec_encode(&p, &b, &n), 0);
  assert_int_equal(b[4], 1); /* version 1 */
  free(b);
  hetee_refine_schedule st = {HETEE_REFINE_LR_STEP, 3, 0.5, 0, 0};
  assert_int_equal(hetee_refine_plan_set_schedule(&p, &st), 0);
  assert_true(hetee_refine_lr(&p, 0) == 0.4 && hetee_refine_lr(&p, 2) == 0.4);
  assert_true(hetee_refine_lr(&p, 3) == 0.2 && hetee_refine_lr(&p, 5) == 0.2 && hetee_refine_lr(&p, 6) == 0.1);
  assert_int_equal(hetee_refine_spec_encode(&p, &b, &n), 0);
  assert_int_equal(b[4], 2);
  assert_int_equal(hetee_refine_spec_decode(b, n, &q), 0);
  assert_true(q.sched.kind == HETEE_REFINE_LR_STEP && q.sched.step_every == 3 && q.sched.gamma == 0.5);
  assert_int_equal(hetee_refine_spec_decode(b, n - 1, &q), HETEE_ERR_FORMAT);
  b[n - 25] = 7; /* unknown kind */
  assert_int_equal(hetee_refine_spec_decode(b, n, &q), HETEE_ERR_FORMAT);
  free(b);
  hetee_refine_schedule co = {HETEE_REFINE_LR_COSINE, 0, 0, 10, 0.04};
  assert_int_equal(hetee_refine_plan_set_schedule(&p, &co), 0);
  assert_true(fabs(hetee_refine_lr(&p, 0) - 0.4) < 1e-15);
  assert_true(fabs(hetee_refine_lr(&p, 5) - 0.22) < 1e-12); /* halfway: the mean of lr and the floor */
  assert_true(fabs(hetee_refine_lr(&p, 10) - 0.04) < 1e-15 && fabs(hetee_refine_lr(&p, 99) - 0.04) < 1e-15);
  for (uint64_t u = 1; u <= 10; u++) assert_true(hetee_refine_lr(&p, u) <= hetee_refine_lr(&p, u - 1));
  assert_int_equal(hetee_refine_spec_encode(&p, &b, &n), 0);
  assert_int_equal(hetee_refine_spec_decode(b, n, &q), 0);
  assert_true(q.sched.kind == HETEE_REFINE_LR_COSINE && q.sched.total == 10 && q.sched.lr_min == 0.04);
  free(b);
  /* refused: gamma outside (0, 1], no period, a floor above lr, no length */
  hetee_refine_schedule bad[] = {{HETEE_REFINE_LR_STEP, 3, 1.5, 0, 0}, {HETEE_REFINE_LR_STEP, 0, 0.5, 0, 0},
                                 {HETEE_REFINE_LR_COSINE, 0, 0, 10, 0.5}, {HETEE_REFINE_LR_COSINE, 0, 0, 0, 0},
                                 {9, 0, 0, 0, 0}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(hetee_refine_plan_set_schedule(&p, &bad[i]), HETEE_ERR_INVALID_ARG);
  hetee_refine_weights_clear(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bundled),
      cmocka_unit_test(test_order),
      cmocka_unit_test(test_gradcheck),
      cmocka_unit_test(test_schedule),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

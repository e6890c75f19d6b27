/*
 * test_twin.c — the plaintext twin (hetee_hemat_conv_twin: the packed
 * polynomial products in full, garbage terms included, read out at
 * out_pos) equals a direct convolution / dense product computed from the
 * floats, to 1e-9 of each output's term magnitude (|bias| + sum |w x|),
 * for one shape and packing given on the command line; the ctest names
 * carry the same arguments (tests/hemat/CMakeLists.txt):
 *   test_hemat_twin conv c=3 h=9 w=11 co=4 k=3 s=2 b=3 cb=2 mb=max nimg=max [logN=13]
 *   test_hemat_twin dense c=784 co=128 b=1 cb=784 mb=9 nimg=1
 * (without arguments: the conv above).
 * cb=max / mb=max mean c / co; nimg=max is the largest nimg with
 * nimg * T <= N, and then nimg + 1 must be refused with HETEE_ERR_SHAPE.
 * Every value, the "padding" included, is random and nonzero, so a
 * colliding term cannot hide behind a zero. Also checks that input and
 * output positions are injective and inside their ciphertexts.
 */
#include "hemat/hemat_test_util.h"

static hetee_hemat_shape g_shape;
static uint32_t g_batch = 1;
static int g_cb = -1, g_mb = -1, g_nimg = -1, g_logn = 13, g_lanes = 0;

static int parse_int(const char *v, int dflt_max) {
  if (!strcmp(v, "max")) return dflt_max;
  char *end;
  long r = strtol(v, &end, 10);
  if (*end || r < 0 || r > 1 << 30) {
    fprintf(stderr, "bad value '%s'\n", v);
    exit(2);
  }
  return (int)r;
}

static void parse(int argc, char **argv) {
  static char *dflt[] = {"test_hemat_twin", "conv", "c=3", "h=9", "w=11", "co=4", "k=3", "s=2", "b=3", "cb=2",
                         "mb=max", "nimg=max", NULL};
  if (argc < 2) { /* plain ctest entry hemat/twin */
    argv = dflt;
    argc = (int)(sizeof dflt / sizeof dflt[0]) - 1;
  }
  if (strcmp(argv[1], "dense") && strcmp(argv[1], "conv")) {
    fprintf(stderr, "usage: %s dense|conv key=value...\n", argv[0]);
    exit(2);
  }
  hetee_hemat_shape s = {1, 1, 0, 1, 1, 1, 1, 1};
  for (int i = 2; i < argc; i++) {
    char key[16];
    const char *eq = strchr(argv[i], '=');
    if (!eq || eq - argv[i] >= (long)sizeof key) {
      fprintf(stderr, "bad argument '%s'\n", argv[i]);
      exit(2);
    }
    memcpy(key, argv[i], (size_t)(eq - argv[i]));
    key[eq - argv[i]] = 0;
    const char *v = eq + 1;
    if (!strcmp(key, "c")) s.c = parse_int(v, 0);
    else if (!strcmp(key, "h")) s.h = parse_int(v, 0);
    else if (!strcmp(key, "w")) s.w = parse_int(v, 0);
    else if (!strcmp(key, "co")) s.co = parse_int(v, 0);
    else if (!strcmp(key, "k")) s.kh = s.kw = parse_int(v, 0);
    else if (!strcmp(key, "kh")) s.kh = parse_int(v, 0);
    else if (!strcmp(key, "kw")) s.kw = parse_int(v, 0);
    else if (!strcmp(key, "s")) s.sh = s.sw = parse_int(v, 0);
    else if (!strcmp(key, "sh")) s.sh = parse_int(v, 0);
    else if (!strcmp(key, "sw")) s.sw = parse_int(v, 0);
    else if (!strcmp(key, "b")) g_batch = (uint32_t)parse_int(v, 0);
    else if (!strcmp(key, "cb")) g_cb = parse_int(v, -1);
    else if (!strcmp(key, "mb")) g_mb = parse_int(v, -1);
    else if (!strcmp(key, "nimg")) g_nimg = parse_int(v, -1);
    else if (!strcmp(key, "logN")) g_logn = parse_int(v, 0);
    else if (!strcmp(key, "lanes")) g_lanes = parse_int(v, 0);
    else {
      fprintf(stderr, "unknown key '%s'\n", key);
      exit(2);
    }
  }
  if (!strcmp(argv[1], "dense") && (s.h != 1 || s.kh != 1 || s.kw != 1 || s.sh != 1 || s.sw != 1)) {
    fprintf(stderr, "dense takes c, co only\n");
    exit(2);
  }
  if (s.w == 0) s.w = s.h;
  if (g_cb < 0) g_cb = s.c;
  if (g_mb < 0) g_mb = s.co;
  g_shape = s;
}

static void test_twin(void **state) {
  (void)state;
  const hetee_hemat_shape *s = &g_shape;
  size_t n = (size_t)1 << g_logn;
  hetee_hemat_pack p = {g_cb, g_lanes > 1 ? g_lanes : g_mb, 1, g_lanes};
  hetee_hemat_layout L;
  HT_OK(hetee_hemat_layout_init(s, &p, g_batch, n, &L));
  if (g_nimg < 0) {
    p.nimg = (int)(n / (size_t)L.lanes / L.span_t);
    hetee_hemat_pack over = p;
    over.nimg++;
    assert_int_equal(hetee_hemat_layout_init(s, &over, g_batch, n, &L), HETEE_ERR_SHAPE);
  } else {
    p.nimg = g_nimg;
  }
  HT_OK(hetee_hemat_layout_init(s, &p, g_batch, n, &L));
  fprintf(stderr,
          "c=%d h=%d w=%d co=%d k=%dx%d s=%dx%d batch=%u | cb=%d mb=%d nimg=%d lanes=%d N=%zu | HW=%zu O=%zu S=%zu "
          "T=%zu (fill %.3f) | cts in %zu (dense %zu) w %zu out %zu, products %zu\n",
          s->c, s->h, s->w, s->co, s->kh, s->kw, s->sh, s->sw, g_batch, p.cb, p.mb, p.nimg, L.lanes, n, L.hw,
          L.off_o, L.spacing_s, L.span_t, (double)L.lanes * p.nimg * L.span_t / n, L.n_in_cts, L.n_dense_in_cts,
          L.n_w_cts, L.n_out_cts, L.n_products);
  assert_int_equal(L.oh, ht_oh(s));
  assert_int_equal(L.ow, ht_ow(s));
  ht_check_injective(&L);

  size_t nw = (size_t)s->co * s->c * s->kh * s->kw, nx = (size_t)g_batch * s->c * s->h * s->w,
         ny = (size_t)g_batch * s->co * L.oh * L.ow;
  float *w = malloc(nw * sizeof *w), *bias = malloc((size_t)s->co * sizeof *bias), *x = malloc(nx * sizeof *x);
  double *y = malloc(ny * sizeof *y), *ref = malloc(ny * sizeof *ref), *mag = malloc(ny * sizeof *mag);
  assert_true(w && bias && x && y && ref && mag);
  ht_fill(w, nw, 1);
  ht_fill(bias, (size_t)s->co, 2);
  ht_fill(x, nx, 3);
  for (size_t i = 0; i < ny; i++) y[i] = NAN;
  HT_OK(hetee_hemat_conv_twin(&L, w, bias, x, y));
  ht_direct(s, g_batch, w, bias, x, ref, mag);
  double worst = 0;
  size_t bad = 0;
  for (size_t i = 0; i < ny; i++) {
    double rel = fabs(y[i] - ref[i]) / mag[i];
    if (!(rel <= 1e-9)) {
      if (bad++ < 5) fprintf(stderr, "  output %zu: twin %.17g direct %.17g\n", i, y[i], ref[i]);
    }
    if (!(rel <= worst)) worst = rel;
  }
  fprintf(stderr, "  %zu outputs, worst relative error %.3g (limit 1e-9), %zu above\n", ny, worst, bad);
  assert_int_equal(bad, 0);
  free(w);
  free(bias);
  free(x);
  free(y);
  free(ref);
  free(mag);
}

int main(int argc, char **argv) {
  parse(argc, argv);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_twin)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

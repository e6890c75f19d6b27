/*
 * test_layout.c — hetee_hemat_layout_init's validation (every field, the
 * fit in N at its exact boundary, 64-bit overflow, the error details),
 * known-answer constants and positions for the E2DM layers, the positions'
 * range checks, weight_coeffs / bias_coeffs placement and errors, and a
 * brute-force collision check: for tiny shapes every (input coefficient,
 * weight coefficient) pair of every product is enumerated, and a pair that
 * lands on an output position must be exactly a term of that output
 * (same sample, same input channel, y = oy*sh + dy, x = ox*sw + dx), with
 * every output receiving all c*kh*kw of its terms and no pair that wraps
 * past X^N landing on an output.
 */
#include <limits.h>

#include "hemat/hemat_test_util.h"

static const hetee_hemat_shape E2DM1 = {1, 28, 28, 5, 7, 7, 3, 3}; /* conv 1->5, 7x7, stride 3 */

static int quick(void) {
  const char *q = getenv("HETEE_TEST_QUICK");
  return q && *q && strcmp(q, "0") != 0;
}

static void expect_err(const hetee_hemat_shape *s, const hetee_hemat_pack *p, uint32_t batch, size_t n, int want,
                       const char *detail) {
  hetee_hemat_layout L;
  int rc = hetee_hemat_layout_init(s, p, batch, n, &L);
  if (rc != want || (detail && !strstr(hetee_last_error(), detail)))
    fprintf(stderr, "got %d (%s), want %d with '%s'\n", rc, hetee_last_error(), want, detail ? detail : "");
  assert_int_equal(rc, want);
  if (detail) assert_non_null(strstr(hetee_last_error(), detail));
}

static void test_validation(void **state) {
  (void)state;
  const hetee_hemat_shape ok = {3, 9, 11, 4, 3, 2, 2, 1};
  const hetee_hemat_pack pk = {2, 3, 1, 0};
  hetee_hemat_layout L;
  HT_OK(hetee_hemat_layout_init(&ok, &pk, 5, 8192, &L));
  assert_int_equal(hetee_hemat_layout_init(NULL, &pk, 1, 8192, &L), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_layout_init(&ok, NULL, 1, 8192, &L), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_layout_init(&ok, &pk, 1, 8192, NULL), HETEE_ERR_INVALID_ARG);
  /* every size >= 1, named in the detail */
  static const char *names[8] = {"c =", "h =", "w =", "co =", "kh =", "kw =", "sh =", "sw ="};
  static const size_t offs[8] = {
      offsetof(hetee_hemat_shape, c),  offsetof(hetee_hemat_shape, h),  offsetof(hetee_hemat_shape, w),
      offsetof(hetee_hemat_shape, co), offsetof(hetee_hemat_shape, kh), offsetof(hetee_hemat_shape, kw),
      offsetof(hetee_hemat_shape, sh), offsetof(hetee_hemat_shape, sw)};
  for (int f = 0; f < 8; f++)
    for (int v = -1; v <= 0; v++) {
      hetee_hemat_shape s = ok;
      *(int *)((char *)&s + offs[f]) = v;
      expect_err(&s, &pk, 1, 8192, HETEE_ERR_INVALID_ARG, names[f]);
    }
  /* kernel larger than the padded input */
  hetee_hemat_shape s = ok;
  s.kh = 10;
  expect_err(&s, &pk, 1, 8192, HETEE_ERR_SHAPE, "kernel 10x2");
  s = ok;
  s.kw = 12;
  expect_err(&s, &pk, 1, 8192, HETEE_ERR_SHAPE, "larger than the (padded) input 9x11");
  s = ok;
  s.kh = 9;
  s.kw = 11; /* kernel == input: one output */
  HT_OK(hetee_hemat_layout_init(&s, &pk, 1, 8192, &L));
  assert_int_equal(L.oh, 1);
  assert_int_equal(L.ow, 1);
  /* strides larger than the input are fine: one output row / column */
  s = ok;
  s.sh = 100;
  s.sw = 100;
  HT_OK(hetee_hemat_layout_init(&s, &pk, 1, 8192, &L));
  assert_int_equal(L.oh, 1);
  assert_int_equal(L.ow, 1);
  /* packing */
  hetee_hemat_pack p = pk;
  p.cb = 0;
  expect_err(&ok, &p, 1, 8192, HETEE_ERR_INVALID_ARG, "cb = 0");
  p.cb = 4;
  expect_err(&ok, &p, 1, 8192, HETEE_ERR_INVALID_ARG, "cb = 4, must be in 1..c = 3");
  p = pk;
  p.mb = 0;
  expect_err(&ok, &p, 1, 8192, HETEE_ERR_INVALID_ARG, "mb = 0");
  p.mb = 5;
  expect_err(&ok, &p, 1, 8192, HETEE_ERR_INVALID_ARG, "mb = 5, must be in 1..co = 4");
  p = pk;
  p.nimg = 0;
  expect_err(&ok, &p, 1, 8192, HETEE_ERR_INVALID_ARG, "nimg = 0");
  p.nimg = -3;
  expect_err(&ok, &p, 1, 8192, HETEE_ERR_INVALID_ARG, "nimg = -3");
  expect_err(&ok, &pk, 0, 8192, HETEE_ERR_INVALID_ARG, "batch = 0");
  /* N a power of two */
  expect_err(&ok, &pk, 1, 0, HETEE_ERR_INVALID_ARG, "N = 0");
  expect_err(&ok, &pk, 1, 8191, HETEE_ERR_INVALID_ARG, "N = 8191");
  expect_err(&ok, &pk, 1, (size_t)1 << 32, HETEE_ERR_INVALID_ARG, "power of two");
  /* fit in N at the exact boundary: T of this packing, then nimg = N/T
   * fits and N/T + 1 does not; T > N names T */
  HT_OK(hetee_hemat_layout_init(&ok, &pk, 1, 8192, &L));
  size_t T = L.span_t;
  p = pk;
  p.nimg = (int)(8192 / T);
  HT_OK(hetee_hemat_layout_init(&ok, &p, 1000, 8192, &L));
  p.nimg++;
  expect_err(&ok, &p, 1000, 8192, HETEE_ERR_SHAPE, "at most");
  char want[64];
  snprintf(want, sizeof want, "T = %zu", T);
  expect_err(&ok, &pk, 1, 64, HETEE_ERR_SHAPE, want);
  /* exact fill: conv 1x2x2, 1x1 kernel: T = 4, 16 samples in N = 64 */
  const hetee_hemat_shape tiny = {1, 2, 2, 1, 1, 1, 1, 1};
  p = (hetee_hemat_pack){1, 1, 16, 0};
  HT_OK(hetee_hemat_layout_init(&tiny, &p, 16, 64, &L));
  assert_int_equal(L.span_t, 4);
  p.nimg = 17;
  expect_err(&tiny, &p, 17, 64, HETEE_ERR_SHAPE, "nimg = 17");
  /* sizes whose products overflow 64 bits: an error, not a wrap */
  s = (hetee_hemat_shape){INT_MAX, INT_MAX, INT_MAX, INT_MAX, 1, 1, 1, 1};
  p = (hetee_hemat_pack){INT_MAX, INT_MAX, INT_MAX, 0};
  expect_err(&s, &p, UINT32_MAX, 8192, HETEE_ERR_SHAPE, "overflows");
  s = (hetee_hemat_shape){1, 1 << 30, 1 << 30, INT_MAX, 1, 1, 1, 1};
  p = (hetee_hemat_pack){1, INT_MAX, 1, 0};
  expect_err(&s, &p, 1, 8192, HETEE_ERR_SHAPE, NULL);
  /* a huge dense layer with a tiny packing fits N, but its product count
   * (2^32 - 1) * (2^31 - 1)^2 does not fit 64 bits: refused */
  s = (hetee_hemat_shape){INT_MAX, 1, 1, INT_MAX, 1, 1, 1, 1};
  p = (hetee_hemat_pack){1, 1, 1, 0};
  expect_err(&s, &p, UINT32_MAX, 8192, HETEE_ERR_SHAPE, "products overflow");
  /* with one output its products fit, but not its global input positions
   * ((2^32 - 1) * (2^31 - 1) ciphertexts of 2^13 coefficients) */
  s.co = 1;
  expect_err(&s, &p, UINT32_MAX, 8192, HETEE_ERR_SHAPE, "overflow 64-bit positions");
  HT_OK(hetee_hemat_layout_init(&s, &p, 1000, 8192, &L));
  assert_int_equal(L.n_products, (size_t)1000 * INT_MAX);
  assert_int_equal(L.n_in_cts, (size_t)1000 * INT_MAX);
  assert_true(hetee_hemat_in_pos(&L, 999, INT_MAX - 1, 0, 0) == ((uint64_t)1000 * INT_MAX - 1) * 8192);
}

/* Hand-computed constants of the E2DM first layer (docs/hemat.md):
 * HW = 784, O = 6*28 + 6 = 174, S = cb*HW = 784, T = mb*cb*HW = 3920
 * for mb = 5; oh = ow = 8. */
static void test_known_answers(void **state) {
  (void)state;
  hetee_hemat_layout L;
  hetee_hemat_pack p = {1, 5, 1, 0};
  HT_OK(hetee_hemat_layout_init(&E2DM1, &p, 4, 8192, &L));
  assert_int_equal(L.hw, 784);
  assert_int_equal(L.off_o, 174);
  assert_int_equal(L.spacing_s, 784);
  assert_int_equal(L.span_t, 3920);
  assert_int_equal(L.oh, 8);
  assert_int_equal(L.ow, 8);
  assert_int_equal(L.ncb, 1);
  assert_int_equal(L.nmb, 1);
  assert_int_equal(L.ngroups, 4);
  assert_int_equal(L.n_in_cts, 4);
  assert_int_equal(L.n_w_cts, 1);
  assert_int_equal(L.n_out_cts, 4);
  assert_int_equal(L.n_products, 4);
  /* sample 2, pixel (5, 7) -> ct 2, coefficient 5*28 + 7 */
  assert_int_equal(hetee_hemat_in_pos(&L, 2, 0, 5, 7), 2 * 8192 + 147);
  /* sample 3, channel 4, output (7, 6) -> ct 3, 4*784 + 174 + 21*28 + 18 */
  assert_int_equal(hetee_hemat_out_pos(&L, 3, 4, 7, 6), 3 * 8192 + 4 * 784 + 174 + 21 * 28 + 18);
  /* dense 320 -> 64 with cb = 20, mb = 16, nimg = 3 (S = 20, T = 16*20 = 320) */
  const hetee_hemat_shape d = {320, 1, 1, 64, 1, 1, 1, 1};
  p = (hetee_hemat_pack){20, 16, 3, 0};
  HT_OK(hetee_hemat_layout_init(&d, &p, 64, 8192, &L));
  assert_int_equal(L.off_o, 19);
  assert_int_equal(L.spacing_s, 20);
  assert_int_equal(L.span_t, 320);
  assert_int_equal(L.ncb, 16);
  assert_int_equal(L.nmb, 4);
  assert_int_equal(L.ngroups, 22);
  assert_int_equal(L.n_in_cts, 22 * 16);
  assert_int_equal(L.n_w_cts, 64);
  assert_int_equal(L.n_out_cts, 22 * 4);
  assert_int_equal(L.n_products, 22 * 4 * 16);
  /* sample 50 = group 16 slot 2, feature 123 = block 6 offset 3 */
  assert_int_equal(hetee_hemat_in_pos(&L, 50, 123, 0, 0), (16 * 16 + 6) * 8192ULL + 2 * 320 + 3);
  /* sample 50, output 37 = group 2 offset 5 */
  assert_int_equal(hetee_hemat_out_pos(&L, 50, 37, 0, 0), (16 * 4 + 2) * 8192ULL + 2 * 320 + 5 * 20 + 19);
  /* out of range arguments: UINT64_MAX, never a position */
  assert_true(hetee_hemat_in_pos(&L, 64, 0, 0, 0) == UINT64_MAX);
  assert_true(hetee_hemat_in_pos(&L, 0, 320, 0, 0) == UINT64_MAX);
  assert_true(hetee_hemat_in_pos(&L, 0, -1, 0, 0) == UINT64_MAX);
  assert_true(hetee_hemat_in_pos(&L, 0, 0, 1, 0) == UINT64_MAX);
  assert_true(hetee_hemat_in_pos(&L, 0, 0, 0, 1) == UINT64_MAX);
  assert_true(hetee_hemat_out_pos(&L, 0, 64, 0, 0) == UINT64_MAX);
  assert_true(hetee_hemat_out_pos(&L, 0, 0, 1, 0) == UINT64_MAX);
  assert_true(hetee_hemat_out_pos(&L, 0, 0, 0, -1) == UINT64_MAX);
  assert_true(hetee_hemat_in_pos(NULL, 0, 0, 0, 0) == UINT64_MAX);
}

/* Brute force over one shape / packing / batch / N (see the file top).
 * Weight positions come from weight_coeffs applied to W[i] = i + 1 (exact
 * in float below 2^24), so its placement is checked too. Returns the number
 * of pairs enumerated. */
static size_t brute_force(const hetee_hemat_shape *s, const hetee_hemat_pack *p, uint32_t batch, size_t n) {
  hetee_hemat_layout L;
  HT_OK(hetee_hemat_layout_init(s, p, batch, n, &L));
  ht_check_injective(&L);
  size_t nw = (size_t)s->co * s->c * s->kh * s->kw, pairs = 0;
  assert_true(nw < (1u << 24));
  float *w = malloc(nw * sizeof *w), *bias = malloc((size_t)s->co * sizeof *bias);
  double *wc = malloc(n * sizeof *wc), *bc = malloc(n * sizeof *bc);
  long *tgt = malloc(n * sizeof *tgt), *hits = NULL;
  /* input coefficients of one ciphertext: value id b*c*h*w + ... */
  long *in_id = malloc(n * sizeof *in_id);
  size_t *wk = malloc(n * sizeof *wk);
  size_t nout = (size_t)batch * s->co * L.oh * L.ow;
  hits = calloc(nout, sizeof *hits);
  assert_true(w && bias && wc && bc && tgt && in_id && wk && hits);
  for (size_t i = 0; i < nw; i++) w[i] = (float)(i + 1);
  for (int o = 0; o < s->co; o++) bias[o] = (float)(o + 1);
  for (size_t g = 0; g < L.ngroups; g++)
    for (int mbk = 0; mbk < L.nmb; mbk++) {
      /* output coefficients of ct (g, mbk) */
      for (size_t i = 0; i < n; i++) tgt[i] = -1;
      for (uint32_t b = 0; b < batch; b++)
        for (int o = 0; o < s->co; o++)
          for (int oy = 0; oy < L.oh; oy++)
            for (int ox = 0; ox < L.ow; ox++) {
              uint64_t q = hetee_hemat_out_pos(&L, b, o, oy, ox);
              if (q / n != g * L.nmb + (size_t)mbk) continue;
              tgt[q % n] = (long)((((size_t)b * s->co + o) * L.oh + oy) * L.ow + ox);
            }
      /* the bias polynomial is nonzero exactly at output positions (of
       * every sample slot), with the bias of that output's channel */
      HT_OK(hetee_hemat_bias_coeffs(&L, bias, mbk, bc));
      for (size_t i = 0; i < n; i++) {
        if (tgt[i] >= 0) {
          int o = (int)((tgt[i] / (L.oh * L.ow)) % s->co);
          assert_true(bc[i] == (double)(o + 1));
        } else if (bc[i] != 0) {
          /* only a slot with no sample (b >= batch) may hold it */
          size_t j = i / ((size_t)L.lanes * L.span_t);
          assert_true(g * (size_t)p->nimg + j >= batch);
        }
      }
      for (int cbk = 0; cbk < L.ncb; cbk++) {
        for (size_t i = 0; i < n; i++) in_id[i] = -1;
        for (uint32_t b = 0; b < batch; b++)
          for (int c = 0; c < s->c; c++)
            for (int y = 0; y < s->h; y++)
              for (int x = 0; x < s->w; x++) {
                uint64_t q = hetee_hemat_in_pos(&L, b, c, y, x);
                if (q / n != g * L.ncb + (size_t)cbk) continue;
                in_id[q % n] = (long)((((size_t)b * s->c + c) * s->h + y) * s->w + x);
              }
        HT_OK(hetee_hemat_weight_coeffs(&L, w, mbk, cbk, wc));
        size_t nk = 0;
        for (size_t k = 0; k < n; k++)
          if (wc[k] != 0) wk[nk++] = k;
        for (size_t i = 0; i < n; i++) {
          if (in_id[i] < 0) continue;
          long v = in_id[i];
          int x = (int)(v % s->w), y = (int)(v / s->w % s->h), c = (int)(v / ((long)s->w * s->h) % s->c);
          uint32_t b = (uint32_t)(v / ((long)s->w * s->h * s->c));
          for (size_t kk = 0; kk < nk; kk++) {
            size_t k = wk[kk];
            long id = (long)wc[k] - 1;
            int dx = (int)(id % s->kw), dy = (int)(id / s->kw % s->kh), c2 = (int)(id / ((long)s->kw * s->kh) % s->c);
            int o = (int)(id / ((long)s->kw * s->kh * s->c));
            assert_true(o / p->mb == mbk && c2 / p->cb == cbk);
            pairs++;
            if (i + k >= n) { /* wraps (negated) to i + k - n: never onto an output */
              assert_true(tgt[i + k - n] < 0);
              continue;
            }
            long t = tgt[i + k];
            if (t < 0) continue;
            int ox = (int)(t % L.ow), oy = (int)(t / L.ow % L.oh), o2 = (int)(t / ((long)L.ow * L.oh) % s->co);
            uint32_t b2 = (uint32_t)(t / ((long)L.ow * L.oh * s->co));
            if (!(b2 == b && o2 == o && c2 == c && y == oy * s->sh + dy && x == ox * s->sw + dx))
              fprintf(stderr, "collision: in (%u,%d,%d,%d) x w (%d,%d,%d,%d) -> out (%u,%d,%d,%d)\n", b, c, y, x, o,
                      c2, dy, dx, b2, o2, oy, ox);
            assert_true(b2 == b && o2 == o && c2 == c && y == oy * s->sh + dy && x == ox * s->sw + dx);
            hits[t]++;
          }
        }
      }
    }
  for (size_t i = 0; i < nout; i++) assert_int_equal(hits[i], (long)s->c * s->kh * s->kw);
  free(w);
  free(bias);
  free(wc);
  free(bc);
  free(tgt);
  free(in_id);
  free(wk);
  free(hits);
  return pairs;
}

static void test_brute_force_named(void **state) {
  (void)state;
  /* conv 2 -> 3, 3x4 input, 2x3 kernel, stride (1, 1); blocks of 1 and 2 */
  const hetee_hemat_shape a = {2, 3, 4, 3, 2, 3, 1, 1};
  brute_force(&a, &(hetee_hemat_pack){1, 2, 2, 0}, 5, 256);
  /* conv 3 -> 2, 5x5, 3x3 kernel, stride 2; whole blocks, max nimg */
  const hetee_hemat_shape b = {3, 5, 5, 2, 3, 3, 2, 2};
  hetee_hemat_layout L;
  HT_OK(hetee_hemat_layout_init(&b, &(hetee_hemat_pack){3, 2, 1, 0}, 1, 512, &L));
  brute_force(&b, &(hetee_hemat_pack){3, 2, (int)(512 / L.span_t), 0}, 7, 512);
  /* dense 5 -> 4, cb 2 (partial last block), mb 3 (partial last group),
   * exactly filling N when nimg = N / T */
  const hetee_hemat_shape d = {5, 1, 1, 4, 1, 1, 1, 1};
  HT_OK(hetee_hemat_layout_init(&d, &(hetee_hemat_pack){2, 3, 1, 0}, 1, 64, &L));
  brute_force(&d, &(hetee_hemat_pack){2, 3, (int)(64 / L.span_t), 0}, 9, 64);
}

/* Deterministic sample of small shapes and every kind of packing. */
static void test_brute_force_sweep(void **state) {
  (void)state;
  uint64_t seed = 0xC0FFEE;
  int runs = quick() ? 60 : 400, done = 0;
  size_t pairs = 0;
  while (done < runs) {
    hetee_hemat_shape s;
    s.c = 1 + (int)(ht_rand(&seed) % 3);
    s.co = 1 + (int)(ht_rand(&seed) % 3);
    s.h = 1 + (int)(ht_rand(&seed) % 5);
    s.w = 1 + (int)(ht_rand(&seed) % 5);
    s.kh = 1 + (int)(ht_rand(&seed) % s.h);
    s.kw = 1 + (int)(ht_rand(&seed) % s.w);
    s.sh = 1 + (int)(ht_rand(&seed) % 3);
    s.sw = 1 + (int)(ht_rand(&seed) % 3);
    hetee_hemat_pack p = {1 + (int)(ht_rand(&seed) % s.c), 1 + (int)(ht_rand(&seed) % s.co), 1, 0};
    size_t n = (size_t)1 << (6 + ht_rand(&seed) % 3);
    hetee_hemat_layout L;
    if (hetee_hemat_layout_init(&s, &p, 1, n, &L)) continue;
    int nmax = (int)(n / L.span_t);
    p.nimg = 1 + (int)(ht_rand(&seed) % (uint64_t)nmax);
    if (ht_rand(&seed) & 1) p.nimg = nmax;
    uint32_t batch = 1 + (uint32_t)(ht_rand(&seed) % (uint64_t)(2 * p.nimg + 1));
    pairs += brute_force(&s, &p, batch, n);
    done++;
  }
  fprintf(stderr, "  %d shapes, %zu (input, weight) coefficient pairs checked\n", done, pairs);
}

/* The same brute force over lane packings (lanes 2, 4, 8, mb = lanes):
 * small shapes with co >= lanes, N = 64..512, nimg up to N / (lanes T),
 * batches not multiple of nimg. */
static void test_brute_force_lanes(void **state) {
  (void)state;
  uint64_t seed = 0x1A4E5;
  int runs = quick() ? 60 : 300, done = 0;
  size_t pairs = 0;
  /* named: dense 5 -> 4 in 4 lanes, cb 2, filling N = 64 exactly */
  const hetee_hemat_shape d = {5, 1, 1, 4, 1, 1, 1, 1};
  hetee_hemat_layout L;
  HT_OK(hetee_hemat_layout_init(&d, &(hetee_hemat_pack){2, 4, 8, 4}, 9, 64, &L));
  assert_int_equal(L.span_t, 2);
  assert_int_equal(L.lanes, 4);
  assert_int_equal(L.n_in_cts, 2 * 3);
  assert_int_equal(L.n_dense_in_cts, 2);
  pairs += brute_force(&d, &(hetee_hemat_pack){2, 4, 8, 4}, 9, 64);
  assert_int_equal(hetee_hemat_layout_init(&d, &(hetee_hemat_pack){2, 4, 9, 4}, 9, 64, &L), HETEE_ERR_SHAPE);
  /* conv 2 -> 5, 4x5, kernel 2x3, stride 2x1, 2 lanes (partial last group) */
  const hetee_hemat_shape c = {2, 4, 5, 5, 2, 3, 2, 1};
  pairs += brute_force(&c, &(hetee_hemat_pack){1, 2, 3, 2}, 7, 256);
  while (done < runs) {
    hetee_hemat_shape s;
    int lanes = 2 << (ht_rand(&seed) % 3);
    s.c = 1 + (int)(ht_rand(&seed) % 3);
    s.co = lanes + (int)(ht_rand(&seed) % (uint64_t)(lanes + 2));
    s.h = 1 + (int)(ht_rand(&seed) % 4);
    s.w = 1 + (int)(ht_rand(&seed) % 4);
    s.kh = 1 + (int)(ht_rand(&seed) % s.h);
    s.kw = 1 + (int)(ht_rand(&seed) % s.w);
    s.sh = 1 + (int)(ht_rand(&seed) % 3);
    s.sw = 1 + (int)(ht_rand(&seed) % 3);
    hetee_hemat_pack p = {1 + (int)(ht_rand(&seed) % s.c), lanes, 1, lanes};
    size_t n = (size_t)1 << (6 + ht_rand(&seed) % 4);
    if (hetee_hemat_layout_init(&s, &p, 1, n, &L)) continue;
    int nmax = (int)(n / (size_t)lanes / L.span_t);
    p.nimg = 1 + (int)(ht_rand(&seed) % (uint64_t)nmax);
    if (ht_rand(&seed) & 1) p.nimg = nmax;
    uint32_t batch = 1 + (uint32_t)(ht_rand(&seed) % (uint64_t)(2 * p.nimg + 1));
    pairs += brute_force(&s, &p, batch, n);
    done++;
  }
  fprintf(stderr, "  %d lane shapes, %zu (input, weight) coefficient pairs checked\n", done, pairs);
  /* refusals: lanes not 0/1/2/4/8, mb != lanes, lanes > N */
  hetee_hemat_pack p = {2, 4, 1, 3};
  assert_int_equal(hetee_hemat_layout_init(&d, &p, 1, 64, &L), HETEE_ERR_INVALID_ARG);
  p.lanes = 16;
  assert_int_equal(hetee_hemat_layout_init(&d, &p, 1, 64, &L), HETEE_ERR_INVALID_ARG);
  p.lanes = -2;
  assert_int_equal(hetee_hemat_layout_init(&d, &p, 1, 64, &L), HETEE_ERR_INVALID_ARG);
  p = (hetee_hemat_pack){2, 3, 1, 4};
  assert_int_equal(hetee_hemat_layout_init(&d, &p, 1, 64, &L), HETEE_ERR_INVALID_ARG);
  p = (hetee_hemat_pack){1, 8, 1, 8};
  const hetee_hemat_shape e = {1, 1, 1, 8, 1, 1, 1, 1};
  assert_int_equal(hetee_hemat_layout_init(&e, &p, 1, 4, &L), HETEE_ERR_INVALID_ARG);
  /* lanes 0 and 1 are the same layout */
  hetee_hemat_layout A, B;
  HT_OK(hetee_hemat_layout_init(&d, &(hetee_hemat_pack){2, 3, 4, 0}, 9, 64, &A));
  HT_OK(hetee_hemat_layout_init(&d, &(hetee_hemat_pack){2, 3, 4, 1}, 9, 64, &B));
  assert_int_equal(A.lanes, 1);
  assert_int_equal(A.n_dense_in_cts, A.n_in_cts);
  for (int o = 0; o < 4; o++) assert_true(hetee_hemat_out_pos(&A, 5, o, 0, 0) == hetee_hemat_out_pos(&B, 5, o, 0, 0));
  /* a layout whose lane fields were altered is refused */
  HT_OK(hetee_hemat_layout_init(&d, &(hetee_hemat_pack){2, 4, 8, 4}, 9, 64, &L));
  hetee_hemat_layout bad = L;
  bad.n_dense_in_cts++;
  double buf[64];
  float w[20] = {0}, bias[4] = {0};
  assert_int_equal(hetee_hemat_weight_coeffs(&bad, w, 0, 0, buf), HETEE_ERR_INVALID_ARG);
  bad = L;
  bad.lanes = 1;
  assert_int_equal(hetee_hemat_bias_coeffs(&bad, bias, 0, buf), HETEE_ERR_INVALID_ARG);
}

static void test_coeff_errors(void **state) {
  (void)state;
  const hetee_hemat_shape s = {3, 4, 4, 2, 2, 2, 1, 1};
  hetee_hemat_layout L;
  HT_OK(hetee_hemat_layout_init(&s, &(hetee_hemat_pack){2, 1, 2, 0}, 3, 256, &L));
  float w[2 * 3 * 2 * 2], bias[2] = {1, 2};
  for (int i = 0; i < 24; i++) w[i] = (float)i - 11.5f;
  double out[256];
  assert_int_equal(hetee_hemat_weight_coeffs(NULL, w, 0, 0, out), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_weight_coeffs(&L, NULL, 0, 0, out), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_weight_coeffs(&L, w, 0, 0, NULL), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_weight_coeffs(&L, w, 2, 0, out), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_weight_coeffs(&L, w, 0, 2, out), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_weight_coeffs(&L, w, -1, 0, out), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_bias_coeffs(&L, bias, 2, out), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_bias_coeffs(&L, NULL, 0, out), HETEE_ERR_INVALID_ARG);
  /* the last (partial) block: channel 2 only; 4 taps of output 1 */
  HT_OK(hetee_hemat_weight_coeffs(&L, w, 1, 1, out));
  int nz = 0;
  for (int i = 0; i < 256; i++) nz += out[i] != 0;
  assert_int_equal(nz, 4);
  /* a non-finite weight is refused and the buffer wiped */
  w[13] = NAN;
  for (int i = 0; i < 256; i++) out[i] = 1;
  assert_int_equal(hetee_hemat_weight_coeffs(&L, w, 1, 0, out), HETEE_ERR_INVALID_ARG);
  assert_non_null(strstr(hetee_last_error(), "W[1][0][0][1]"));
  for (int i = 0; i < 256; i++) assert_true(out[i] == 0);
  w[13] = 0;
  bias[1] = INFINITY;
  assert_int_equal(hetee_hemat_bias_coeffs(&L, bias, 0, out), 0);
  assert_int_equal(hetee_hemat_bias_coeffs(&L, bias, 1, out), HETEE_ERR_INVALID_ARG);
  /* a layout whose derived fields were altered is refused everywhere */
  hetee_hemat_layout bad = L;
  bad.span_t--;
  assert_int_equal(hetee_hemat_weight_coeffs(&bad, w, 0, 0, out), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_bias_coeffs(&bad, bias, 0, out), HETEE_ERR_INVALID_ARG);
  float x[3 * 3 * 16] = {0};
  double y[3 * 2 * 9];
  assert_int_equal(hetee_hemat_conv_twin(&bad, w, NULL, x, y), HETEE_ERR_INVALID_ARG);
  bad = L;
  bad.n = 32; /* nimg * T = 64 no longer fits */
  assert_int_equal(hetee_hemat_conv_twin(&bad, w, NULL, x, y), HETEE_ERR_SHAPE);
  assert_int_equal(hetee_hemat_conv_twin(NULL, w, NULL, x, y), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_conv_twin(&L, NULL, NULL, x, y), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_conv_twin(&L, w, NULL, NULL, y), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_hemat_conv_twin(&L, w, NULL, x, NULL), HETEE_ERR_INVALID_ARG);
}

/* Without a bias the twin is the bare convolution. */
static void test_twin_no_bias(void **state) {
  (void)state;
  const hetee_hemat_shape s = {3, 6, 7, 4, 3, 2, 2, 3};
  const uint32_t batch = 5;
  hetee_hemat_layout L;
  HT_OK(hetee_hemat_layout_init(&s, &(hetee_hemat_pack){2, 3, 2, 0}, batch, 1024, &L));
  size_t nw = 4 * 3 * 3 * 2, nx = batch * 3 * 6 * 7, ny = batch * 4 * (size_t)L.oh * L.ow;
  float *w = malloc(nw * sizeof *w), *x = malloc(nx * sizeof *x);
  double *y = malloc(ny * sizeof *y), *ref = malloc(ny * sizeof *ref), *mag = malloc(ny * sizeof *mag);
  assert_true(w && x && y && ref && mag);
  ht_fill(w, nw, 11);
  ht_fill(x, nx, 12);
  HT_OK(hetee_hemat_conv_twin(&L, w, NULL, x, y));
  ht_direct(&s, batch, w, NULL, x, ref, mag);
  for (size_t i = 0; i < ny; i++) assert_true(fabs(y[i] - ref[i]) <= 1e-9 * mag[i]);
  free(w);
  free(x);
  free(y);
  free(ref);
  free(mag);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_validation),         cmocka_unit_test(test_known_answers),
      cmocka_unit_test(test_brute_force_named),  cmocka_unit_test(test_brute_force_sweep),
      cmocka_unit_test(test_brute_force_lanes),  cmocka_unit_test(test_coeff_errors),
      cmocka_unit_test(test_twin_no_bias),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * tests/enclave/test_oracle.c — regression tests of issue 7: the attacks
 * found on refresh and release, replayed through the public host API
 * (hetee_host_refresh / hetee_host_release) against the real enclave
 * process at logN 13 (q {60,40,40}, scale 2^40):
 *  - the bisection oracle (add -c, ReLU, huge scalings; tiny out_scale;
 *    replication into several output ciphertexts; every op kind) gets the
 *    same answer — status, error text, number and sizes of the output
 *    ciphertexts — whatever the hidden value;
 *  - a ciphertext whose scale or level field was rewritten is refused, and
 *    a declared scale the parameters do not allow is refused, with the same
 *    answer for any plaintext;
 *  - a size-3 ciphertext (ct x ct without relinearization) is accepted;
 *  - releases are noise-flooded before rounding and refused when the
 *    declared scale is too small for the policy's precision;
 *  - the refresh CPU time of inputs that used to take the encoder's two
 *    rounding paths does not differ (sign test, false-failure rate 2.8e-4).
 */
#include <math.h>

#include "enclave/ckks_fixture.h"

typedef ckfx_env fx;


/* What the host observes of one refresh. */
typedef struct {
  int rc;
  char err[300];
  size_t nout, lens[8];
} outcome;

static void observe(fx *f, const hetee_refresh_spec *s, const uint8_t *ct, size_t len, outcome *o) {
  memset(o, 0, sizeof *o);
  uint8_t **out = NULL;
  size_t *olens = NULL, nout = 0;
  const uint8_t *cts[1] = {ct};
  o->rc = hetee_host_refresh(f->e, s, cts, &len, 1, &out, &olens, &nout);
  if (o->rc) snprintf(o->err, sizeof o->err, "%s", hetee_last_error());
  o->nout = nout;
  for (size_t i = 0; i < nout && i < 8; i++) o->lens[i] = olens[i];
  if (!o->rc) hetee_host_cts_free(out, olens, nout);
}

static int same(const outcome *a, const outcome *b) {
  return a->rc == b->rc && !strcmp(a->err, b->err) && a->nout == b->nout && !memcmp(a->lens, b->lens, sizeof a->lens);
}

/* A ciphertext (top level, default scale) with x in slot 0 and y in slot 1. */
static uint8_t *hidden_ct(fx *f, double x, size_t *len) {
  double *sv = calloc(f->c.slots, sizeof *sv);
  sv[0] = x;
  sv[1] = 0.5;
  uint8_t *ct = ckfx_encrypt(&f->c, sv, len);
  free(sv);
  return ct;
}

/* Runs spec on every hidden value and asserts one common outcome; returns it. */
static outcome all_same(fx *f, const hetee_refresh_spec *s, const char *what) {
  static const double hidden[] = {-1e6, -2.5, 0.3, 2.9999, 3.0001, 7.5, 1e9};
  outcome first, o;
  for (size_t i = 0; i < sizeof hidden / sizeof *hidden; i++) {
    size_t len;
    uint8_t *ct = hidden_ct(f, hidden[i], &len);
    observe(f, s, ct, len, i ? &o : &first);
    free(ct);
    if (i && !same(&first, &o)) {
      fprintf(stderr, "%s: x = %g gives %d '%s' (%zu cts), x = %g gives %d '%s' (%zu cts)\n", what, hidden[0], first.rc,
              first.err, first.nout, hidden[i], o.rc, o.err, o.nout);
      fail();
    }
  }
  return first;
}

/* The attack of the issue: y = 1e308 * 1e308 * relu(x - c), replicated,
 * with out_scale 1e-300. Each ingredient is now either refused up front
 * (on public data, identically for every x) or harmless. */
static void test_bisection_oracle(void **state) {
  fx *f = *state;
  size_t slots = f->c.slots;
  uint32_t in_map[2] = {0, 1}, dst[4 * 64], src[4 * 64];
  double bias[2] = {-3.0, 0.0};
  hetee_refresh_op ops[4] = {{.kind = HETEE_OP_ADD_BIAS, .a = bias, .na = 2},
                             {.kind = HETEE_OP_RELU},
                             {.kind = HETEE_OP_SCALE, .alpha = 1e308},
                             {.kind = HETEE_OP_SCALE, .alpha = 1e308}};
  /* value 0 replicated into 64 slots of each of 4 output ciphertexts (the
   * replication that overflowed the encoder's inverse FFT) */
  for (size_t k = 0; k < 4 * 64; k++) dst[k] = (uint32_t)((k / 64) * slots + k % 64), src[k] = 0;
  hetee_refresh_spec s = {.shape = {1, 1, 2}, .in_map = in_map, .in_level = -1, .nops = 4, .ops = ops,
                          .out_ncts = 4, .out_n = 4 * 64, .out_dst = dst, .out_src = src, .out_level = -1,
                          .out_scale = 1e-300};
  outcome o = all_same(f, &s, "constants 1e308");
  assert_int_equal(o.rc, HETEE_ERR_FORMAT); /* constants above 2^64: refused by the spec checks */
  ops[2].alpha = ops[3].alpha = HETEE_REFRESH_MAX_CONST;
  o = all_same(f, &s, "out_scale 1e-300");
  assert_int_equal(o.rc, HETEE_ERR_SCALE); /* below 2^20: refused before decryption */
  assert_non_null(strstr(o.err, "output scale"));
  /* the smallest scale the parameters allow, at every level: total */
  for (int level = -1; level <= 2; level++) {
    s.out_level = level;
    s.out_scale = 0x1p20;
    o = all_same(f, &s, "smallest out_scale");
    if (o.rc) fprintf(stderr, "level %d: %s\n", level, o.err);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.nout, 4);
  }
  /* near the largest scale the parameters allow at the top level (Q / 2^10,
   * Q a little below 2^140) */
  s.out_level = -1;
  s.out_scale = 0x1p129;
  o = all_same(f, &s, "largest out_scale");
  assert_int_equal(o.rc, 0);
  s.out_scale = 0x1p131;
  o = all_same(f, &s, "out_scale above the modulus");
  assert_int_equal(o.rc, HETEE_ERR_SCALE);
}

/* Every op kind with the largest constants, replicated into two output
 * ciphertexts at the default scale: one outcome for every hidden value. */
static void test_every_op_kind(void **state) {
  fx *f = *state;
  size_t slots = f->c.slots;
  uint32_t in_map[4] = {0, 1, 2, 3}, dst[64], src[64];
  double big[4] = {HETEE_REFRESH_MAX_CONST, -HETEE_REFRESH_MAX_CONST, 1e-300, HETEE_REFRESH_MAX_CONST};
  for (size_t k = 0; k < 64; k++) dst[k] = (uint32_t)((k & 1) * slots + k / 2), src[k] = 0;
  for (int kind = HETEE_OP_ADD_BIAS; kind <= HETEE_OP_SCALE; kind++) {
    hetee_refresh_op ops[3] = {{.kind = HETEE_OP_SCALE, .alpha = HETEE_REFRESH_MAX_CONST},
                               {.kind = kind, .alpha = -HETEE_REFRESH_MAX_CONST, .window = 2, .stride = 1},
                               {.kind = HETEE_OP_SQUARE}};
    if (kind == HETEE_OP_ADD_BIAS) ops[1].a = big, ops[1].na = 4;
    if (kind == HETEE_OP_BATCHNORM) ops[1].a = big, ops[1].na = 1, ops[1].b = big + 1, ops[1].nb = 1;
    if (kind == HETEE_OP_RESHAPE) ops[1].shape[0] = 4, ops[1].shape[1] = ops[1].shape[2] = 1;
    hetee_refresh_spec s = {.shape = {1, 2, 2}, .in_map = in_map, .in_level = -1, .nops = 3, .ops = ops,
                            .out_ncts = 2, .out_n = 64, .out_dst = dst, .out_src = src, .out_level = -1};
    char what[32];
    snprintf(what, sizeof what, "op kind %d", kind);
    outcome o = all_same(f, &s, what);
    if (o.rc) fprintf(stderr, "%s: %s\n", what, o.err);
    assert_int_equal(o.rc, 0);
  }
}

/* Issue 7, finding 2: the scale field is host-writable. A rewritten scale
 * (2^40 -> 2^16) or level is refused before decryption, and a declared
 * scale outside the parameters' range too, with one answer whatever the
 * plaintext; release likewise. */
static void test_rewritten_metadata(void **state) {
  fx *f = *state;
  uint32_t in_map[2] = {0, 1}, dst[2] = {0, 1}, src[2] = {0, 1};
  hetee_refresh_spec s = {.shape = {1, 1, 2}, .in_map = in_map, .in_level = -1, .out_ncts = 1, .out_n = 2,
                          .out_dst = dst, .out_src = src, .out_level = -1};
  outcome o[2];
  for (int v = 0; v < 2; v++) {
    size_t len;
    uint8_t *ct = hidden_ct(f, v ? 1e6 : -0.25, &len), *b;
    hetee_ckks_ciphertext *c;
    assert_int_equal(hetee_ckks_ciphertext_load(f->c.ctx, ct, len, &c), 0);
    assert_int_equal(hetee_ckks_ciphertext_set_scale(c, 0x1p16), 0);
    size_t blen;
    assert_int_equal(hetee_ckks_ciphertext_save(f->c.ctx, c, &b, &blen), 0);
    s.in_scale = 0; /* the default, 2^40: the field disagrees */
    observe(f, &s, b, blen, &o[v]);
    assert_int_equal(o[v].rc, HETEE_ERR_SCALE);
    assert_non_null(strstr(o[v].err, "declares"));
    outcome d;
    s.in_scale = 0x1p16; /* declared like the field: below 2^20 */
    observe(f, &s, b, blen, &d);
    assert_int_equal(d.rc, HETEE_ERR_SCALE);
    /* release: the same rewritten ciphertext, declared either way */
    ckfx_policy(&f->c, f->e, 77, HETEE_RELEASE_VALUES, 0, 8, NULL);
    uint8_t sid[16], *sealed;
    size_t sl;
    hetee_client_session_id(f->c.dps, sid);
    const uint8_t *cts[1] = {b};
    hetee_release_spec rs = {.in_level = -1, .in_scale = 0x1p16, .map = in_map, .n = 2};
    assert_int_equal(hetee_host_release(f->e, 77, sid, &rs, cts, &blen, 1, &sealed, &sl), HETEE_ERR_SCALE);
    rs.in_scale = 0;
    assert_int_equal(hetee_host_release(f->e, 77, sid, &rs, cts, &blen, 1, &sealed, &sl), HETEE_ERR_SCALE);
    free(b);
    /* a level dropped by the host: refused as a level mismatch */
    hetee_ckks_ciphertext_free(c);
    assert_int_equal(hetee_ckks_ciphertext_load(f->c.ctx, ct, len, &c), 0);
    assert_int_equal(hetee_ckks_eval_drop_level(f->c.ctx, c, 1, c), 0);
    assert_int_equal(hetee_ckks_ciphertext_save(f->c.ctx, c, &b, &blen), 0);
    s.in_scale = 0;
    observe(f, &s, b, blen, &d);
    assert_int_equal(d.rc, HETEE_ERR_LEVEL);
    s.in_level = 1; /* declared: accepted */
    observe(f, &s, b, blen, &d);
    assert_int_equal(d.rc, 0);
    s.in_level = -1;
    free(b);
    hetee_ckks_ciphertext_free(c);
    free(ct);
  }
  assert_true(same(&o[0], &o[1]));
}

/* A ct x ct product straight out of hetee_ckks_eval_mul (size 3, scale
 * 2^80) is accepted when declared with in_scale 2^80, and refreshes to x*y. */
static void test_size3_input(void **state) {
  fx *f = *state;
  size_t slots = f->c.slots, la, lb;
  double *a = calloc(slots, sizeof *a), *b = calloc(slots, sizeof *b);
  for (size_t i = 0; i < 8; i++) a[i] = 0.5 + (double)i, b[i] = 1.25 - 0.5 * (double)i;
  uint8_t *ca = ckfx_encrypt(&f->c, a, &la), *cb = ckfx_encrypt(&f->c, b, &lb), *cp;
  hetee_ckks_ciphertext *x, *y, *p;
  assert_int_equal(hetee_ckks_ciphertext_load(f->c.ctx, ca, la, &x), 0);
  assert_int_equal(hetee_ckks_ciphertext_load(f->c.ctx, cb, lb, &y), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(f->c.ctx, &p), 0);
  assert_int_equal(hetee_ckks_eval_mul(f->c.ctx, x, y, p), 0);
  assert_int_equal(hetee_ckks_ciphertext_size(p), 3);
  size_t lp;
  assert_int_equal(hetee_ckks_ciphertext_save(f->c.ctx, p, &cp, &lp), 0);
  uint32_t in_map[8], dst[8], src[8];
  for (uint32_t i = 0; i < 8; i++) in_map[i] = dst[i] = src[i] = i;
  hetee_refresh_spec s = {.shape = {1, 1, 8}, .in_map = in_map, .in_level = -1, .in_scale = 0x1p80, .out_ncts = 1,
                          .out_n = 8, .out_dst = dst, .out_src = src, .out_level = -1};
  uint8_t **out;
  size_t *olens, nout;
  const uint8_t *cts[1] = {cp};
  int rc = hetee_host_refresh(f->e, &s, cts, &lp, 1, &out, &olens, &nout);
  if (rc) fprintf(stderr, "size 3: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  double got[8];
  ckfx_read(&f->c, f->e, dst, 8, out, olens, nout, got);
  for (int i = 0; i < 8; i++) assert_true(fabs(got[i] - a[i] * b[i]) < 1.0 / (1 << 20));
  hetee_host_cts_free(out, olens, nout);
  hetee_ckks_ciphertext_free(x);
  hetee_ckks_ciphertext_free(y);
  hetee_ckks_ciphertext_free(p);
  free(ca);
  free(cb);
  free(cp);
  free(a);
  free(b);
}

/* Releases are flooded with uniform noise of half-width a = n 2^63 / scale
 * before rounding: at a scale where a is half the rounding unit, two
 * releases of the same ciphertext differ (they never could when rounding
 * was deterministic), and every value stays within a + unit/2 of the
 * truth. A scale too small for the policy's precision is refused. */
static void test_release_flooding(void **state) {
  fx *f = *state;
  enum { N = 64 };
  size_t slots = f->c.slots, len;
  const int prec = 16;
  const double unit = 1.0 / (1 << prec), scale = N * 0x1p63 * 0x1p17; /* a = 2^-17 = unit / 2 */
  double *sv = calloc(slots, sizeof *sv), want[N];
  uint32_t map[N];
  for (size_t i = 0; i < N; i++) map[i] = (uint32_t)(5 * i), want[i] = sv[5 * i] = sin((double)i);
  uint8_t *ct = ckfx_encrypt_at(&f->c, sv, scale, &len);
  ckfx_policy(&f->c, f->e, 78, HETEE_RELEASE_VALUES, 0, prec, NULL);
  uint8_t sid[16];
  hetee_client_session_id(f->c.dps, sid);
  const uint8_t *cts[1] = {ct};
  hetee_release_spec rs = {.in_level = -1, .in_scale = scale, .map = map, .n = N};
  double got[2][N];
  for (int r = 0; r < 2; r++) {
    uint8_t *sealed;
    size_t sl;
    int rc = hetee_host_release(f->e, 78, sid, &rs, cts, &len, 1, &sealed, &sl);
    if (rc) fprintf(stderr, "release: %s\n", hetee_last_error());
    assert_int_equal(rc, 0);
    hetee_release_result res;
    assert_int_equal(hetee_client_release_open(f->c.dps, sealed, sl, &res), 0);
    for (size_t i = 0; i < N; i++) {
      got[r][i] = res.values[i];
      assert_true(fabs(got[r][i] - want[i]) <= unit / 2 + unit / 2 + 1e-9);
    }
    hetee_release_result_clear(&res);
    free(sealed);
  }
  int differ = 0;
  for (size_t i = 0; i < N; i++) differ += got[0][i] != got[1][i];
  assert_true(differ > 0); /* P(no difference in 64 values) < (3/4)^64 ~ 1e-8 */
  /* a quarter of that scale: a = 2 units, refused before decryption */
  free(ct);
  ct = ckfx_encrypt_at(&f->c, sv, scale / 4, &len);
  cts[0] = ct;
  rs.in_scale = scale / 4;
  uint8_t *sealed;
  size_t sl;
  assert_int_equal(hetee_host_release(f->e, 78, sid, &rs, cts, &len, 1, &sealed, &sl), HETEE_ERR_SCALE);
  assert_non_null(strstr(hetee_last_error(), "flooding"));
  free(ct);
  free(sv);
}

/* Issue 7, finding 3: the encoder's rounding path used to follow the data
 * (max |coefficient| < 2^52 or not), +0.88 ms per 16-ciphertext refresh.
 * Now the path comes from the public bound. Small inputs (0.5) and large
 * ones (2^15 and 2^30: coefficients 2^55 and 2^70, the former slow paths)
 * are refreshed alternately; per pair, the enclave CPU time (STATS) of the
 * large one exceeds the small one's or not. With no dependence, the count
 * over 24 pairs is Binomial(24, 1/2); the test fails only at <= 3 or >= 21:
 * false-failure probability 2 * P(Bin(24,1/2) <= 3) = 2.8e-4. */
static uint64_t refresh_cpu(fx *f, const hetee_refresh_spec *s, uint8_t **cts, size_t *lens, size_t n) {
  hetee_enclave_op_stats st[16];
  size_t ns;
  uint64_t before = 0, after = 0;
  assert_int_equal(hetee_host_stats(f->e, st, 16, &ns), 0);
  for (size_t i = 0; i < ns; i++)
    if (st[i].type == HETEE_MSG_REFRESH) before = st[i].cpu_ns;
  uint8_t **out;
  size_t *olens, nout;
  assert_int_equal(hetee_host_refresh(f->e, s, (const uint8_t *const *)cts, lens, n, &out, &olens, &nout), 0);
  hetee_host_cts_free(out, olens, nout);
  assert_int_equal(hetee_host_stats(f->e, st, 16, &ns), 0);
  for (size_t i = 0; i < ns; i++)
    if (st[i].type == HETEE_MSG_REFRESH) after = st[i].cpu_ns;
  return after - before;
}

static void test_timing_independent_of_values(void **state) {
  fx *f = *state;
  enum { NCT = 4, PAIRS = 24 };
  size_t slots = f->c.slots;
  uint32_t *map = malloc(NCT * slots * sizeof *map);
  for (size_t i = 0; i < NCT * slots; i++) map[i] = (uint32_t)i;
  hetee_refresh_op relu = {.kind = HETEE_OP_RELU};
  hetee_refresh_spec s = {.shape = {1, 1, (int)(NCT * slots)}, .in_map = map, .in_level = -1, .nops = 1, .ops = &relu,
                          .out_ncts = NCT, .out_n = NCT * slots, .out_dst = map, .out_src = map, .out_level = -1};
  double *sv = malloc(slots * sizeof *sv);
  uint8_t *small[NCT], *large[NCT];
  size_t ls[NCT], ll[NCT];
  for (int c = 0; c < NCT; c++) {
    for (size_t i = 0; i < slots; i++) sv[i] = 0.5 + 0.001 * (double)(i % 7);
    small[c] = ckfx_encrypt(&f->c, sv, &ls[c]);
    for (size_t i = 0; i < slots; i++) sv[i] = (i & 1) ? 0x1p15 : 0x1p30;
    large[c] = ckfx_encrypt(&f->c, sv, &ll[c]);
  }
  (void)refresh_cpu(f, &s, small, ls, NCT); /* warm-up */
  int larger = 0;
  for (int p = 0; p < PAIRS; p++) {
    uint64_t ts, tl;
    if (p & 1) {
      tl = refresh_cpu(f, &s, large, ll, NCT);
      ts = refresh_cpu(f, &s, small, ls, NCT);
    } else {
      ts = refresh_cpu(f, &s, small, ls, NCT);
      tl = refresh_cpu(f, &s, large, ll, NCT);
    }
    larger += tl > ts;
  }
  fprintf(stderr, "timing: large inputs slower in %d of %d pairs\n", larger, PAIRS);
  assert_true(larger > 3 && larger < 21);
  for (int c = 0; c < NCT; c++) free(small[c]), free(large[c]);
  free(sv);
  free(map);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bisection_oracle),   cmocka_unit_test(test_every_op_kind),
      cmocka_unit_test(test_rewritten_metadata), cmocka_unit_test(test_size3_input),
      cmocka_unit_test(test_release_flooding),   cmocka_unit_test(test_timing_independent_of_values),
  };
  return cmocka_run_group_tests_name("enclave/oracle/logN13", tests, ckfx_env_setup, ckfx_env_teardown);
}

/*
 * test_encrypt.c — the one-step enclave paths of the CKKS layer against the
 * two-step ones they replace:
 *  - hetee_ckks_encrypt_sk_coeffs(_bounded) (rounded coefficients + CBD
 *    noise, one NTT per prime) gives, for the same seeds, exactly the
 *    ciphertext of encode_coeffs(_bounded) + encrypt_sk, at every level, for
 *    partial and full vectors, unbounded / bounded (saturating, every
 *    rounding path of the bounded encoder);
 *  - hetee_ckks_decrypt_coeffs gives exactly the doubles of decrypt +
 *    decode_coeffs_scaled, for ciphertexts of size 2 and 3 (a degree-2
 *    product) and any index list;
 *  - the bounded coefficient rounding (the enclave's) gives the residues of
 *    a 128-bit reference computed here, on every rounding path, with the
 *    AVX-512 kernels and (ctest ckks/encrypt/isa=ref) the portable ones;
 *  - the public functions decrypt to the values (precision), draw fresh
 *    seeds, and return the encoder's / decrypt's error codes for the same
 *    bad arguments, leaving the output empty.
 */
#include "ckks_test_util.h"
#include "ckks/ckks_arena.h"
#include "ckks/ckks_internal.h"

typedef struct {
  hetee_ckks_context *ctx, *other;
  hetee_ckks_secret_key *sk, *sk_other;
  hetee_ckks_public_key *pk;
  size_t n;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  int qb[3] = {60, 40, 40}, pb[1] = {60}, qb2[3] = {60, 40, 38};
  f->ctx = tu_ctx(13, qb, 3, pb, 1, 0x1p40);
  f->other = tu_ctx(13, qb2, 3, pb, 1, 0x1p40);
  f->n = hetee_ckks_context_n(f->ctx);
  TU_OK(hetee_ckks_keygen_secret(f->ctx, &f->sk));
  TU_OK(hetee_ckks_keygen_secret(f->other, &f->sk_other));
  TU_OK(hetee_ckks_keygen_public(f->ctx, f->sk, &f->pk));
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  hetee_ckks_public_key_free(f->pk);
  hetee_ckks_secret_key_free(f->sk);
  hetee_ckks_secret_key_free(f->sk_other);
  hetee_ckks_context_free(f->ctx);
  hetee_ckks_context_free(f->other);
  free(f);
  return 0;
}

static void seeds(uint8_t e[HETEE_SEED_BYTES], uint8_t a[HETEE_SEED_BYTES], uint8_t tag) {
  for (int i = 0; i < HETEE_SEED_BYTES; i++) e[i] = (uint8_t)(tag + i), a[i] = (uint8_t)(0x80 + tag + 3 * i);
}

static void assert_same_ct(fixture *f, const hetee_ckks_ciphertext *a, const hetee_ckks_ciphertext *b) {
  uint8_t *ba = NULL, *bb = NULL;
  size_t la = 0, lb = 0;
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, a, &ba, &la));
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, b, &bb, &lb));
  assert_int_equal(la, lb);
  assert_memory_equal(ba, bb, la);
  free(ba);
  free(bb);
}

/* Same seeds: one-step == two-step, byte for byte (seeded serialization
 * holds c0 in full, the seed of a, level and scale). */
static void test_encrypt_coeffs_bit_exact(void **state) {
  fixture *f = *state;
  size_t N = f->n;
  double *v = malloc(N * sizeof *v);
  tu_fill(v, N, 5);
  v[3] = 1e6; /* saturated by the bounded variants below (vmax 8) */
  v[4] = -INFINITY;
  v[5] = NAN;
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *one = NULL, *two = NULL;
  TU_OK(hetee_ckks_plaintext_new(f->ctx, &pt));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &one));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &two));
  /* bounded: vmax * scale below 2^51, below 2^62 and above (the three
   * rounding paths of the bounded encoder); unbounded on finite values */
  const struct {
    int bounded;
    double scale, vmax;
  } cases[] = {{1, 0x1p26, 8.0}, {1, 0x1p50, 8.0}, {1, 0x1p60, 0x1p20}, {0, 0x1p30, 0}, {0, 0x1p55, 0}, {0, 0x1p70, 0}};
  uint8_t es[HETEE_SEED_BYTES], as[HETEE_SEED_BYTES];
  int tag = 0, compared = 0;
  for (int pass = 0; pass < 1; pass++) { /* one thread: encryption has no thread option since the context became immutable */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
      const size_t counts[] = {1, 1000, N};
      for (int level = 0; level <= 2; level++) {
        double lq = 60 + 40.0 * level;
        if (log2(cases[c].scale) + (cases[c].bounded ? log2(cases[c].vmax) : 1) + 3 >= lq) continue;
        for (size_t k = 0; k < 3; k++) {
          size_t n = counts[k];
          const double *src = cases[c].bounded ? v : v + 6; /* unbounded: finite values only */
          if (!cases[c].bounded && n > N - 6) n = N - 6;
          seeds(es, as, (uint8_t)++tag);
          if (cases[c].bounded)
            TU_OK(hetee_ckks_encode_coeffs_bounded(f->ctx, src, n, cases[c].scale, level, cases[c].vmax, pt));
          else
            TU_OK(hetee_ckks_encode_coeffs(f->ctx, src, n, cases[c].scale, level, pt));
          TU_OK(ckks_encrypt_sk_seeded(f->ctx, f->sk, pt, es, as, two));
          TU_OK(ckks_encrypt_sk_coeffs_seeded(f->ctx, f->sk, src, n, cases[c].scale, level, cases[c].bounded,
                                              cases[c].vmax, es, as, one));
          assert_int_equal(hetee_ckks_ciphertext_level(one), level);
          assert_true(hetee_ckks_ciphertext_scale(one) == cases[c].scale);
          assert_same_ct(f, one, two);
          compared++;
        }
      }
    }
  }
  assert_int_equal(compared, 48); /* 16 (case, level) pairs x 3 counts */
  /* another noise seed, another c0; another a seed, another c1 */
  seeds(es, as, 1);
  TU_OK(ckks_encrypt_sk_coeffs_seeded(f->ctx, f->sk, v + 6, 10, 0x1p30, 1, 0, 0, es, as, one));
  es[0] ^= 1;
  TU_OK(ckks_encrypt_sk_coeffs_seeded(f->ctx, f->sk, v + 6, 10, 0x1p30, 1, 0, 0, es, as, two));
  uint8_t *ba = NULL, *bb = NULL;
  size_t la = 0, lb = 0;
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, one, &ba, &la));
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, two, &bb, &lb));
  assert_int_equal(la, lb);
  assert_memory_not_equal(ba, bb, la);
  free(ba);
  free(bb);
  hetee_ckks_ciphertext_free(one);
  hetee_ckks_ciphertext_free(two);
  hetee_ckks_plaintext_free(pt);
  free(v);
}

/* The bounded coefficient encoder's residues against a reference computed
 * here with 128-bit integers: r_i[k] = nearest(clamp(clamp(v[k], vmax) *
 * scale, cmax)) mod q_i, cmax = vmax scale (1 + 2^-30) + 1, on values with
 * NaN, infinities, saturated ones, exact ties (to even), -0 and the bounds
 * themselves; for every rounding path (cmax below 2^51, below 2^62 — the
 * enclave's at scale 2^26 — and above). Registered twice in CMake: with
 * the AVX-512 kernels where the CPU has them, and with HETEE_ISA=ref. */
static double ref_clamp(double x, double b) {
  if (!(x > -b)) x = -b; /* NaN too */
  if (x > b) x = b;
  return x;
}

static void check_rows(fixture *f, const hetee_ckks_plaintext *pt, int level, const __int128 *x) {
  size_t N = f->n;
  uint64_t *row = malloc(N * sizeof *row);
  for (int i = 0; i <= level; i++) {
    uint64_t q = hetee_ckks_context_prime(f->ctx, i);
    memcpy(row, pt->data + (size_t)i * N, N * sizeof *row);
    hetee_ntt_inverse(f->ctx->ntt[i], row);
    for (size_t k = 0; k < N; k++) {
      __int128 r = x[k] % (__int128)q;
      if (r < 0) r += q;
      if (row[k] != (uint64_t)r) fprintf(stderr, "row %d coefficient %zu: %llu != %llu\n", i, k,
                                         (unsigned long long)row[k], (unsigned long long)r);
      assert_true(row[k] == (uint64_t)r);
    }
  }
  free(row);
}

static void test_bounded_rounding_exact(void **state) {
  fixture *f = *state;
  size_t N = f->n, n = N - 5; /* the last 5 coefficients are zero */
  double *v = malloc(N * sizeof *v);
  __int128 *x = malloc(N * sizeof *x);
  hetee_ckks_plaintext *pt = NULL;
  TU_OK(hetee_ckks_plaintext_new(f->ctx, &pt));
  const struct {
    double scale, vmax;
    int level;
  } cases[] = {{0x1p26, 8.0, 0},        {0x1p26, 0x1p34, 1},       {0x1p40, 0x1p20, 1},
               {0x1p30, 0x1p21 - 1, 0}, {0x1p60, 0x1p20, 1},       {0x1p50, 0x1p70, 2},
               {0x1p45, 0x1p20, 1},     {0x1p50, 0x1p50, 2}}; /* the last two: cmax 2^65, 2^100 (two 52-bit chunks) */
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    double sc = cases[c].scale, vmax = cases[c].vmax, cmax = vmax * sc * (1.0 + 0x1p-30) + 1.0;
    tu_fill(v, n, 40 + c);
    for (size_t k = 0; k < n; k++) v[k] *= vmax * (k % 3 == 0 ? 1.25 : 0.5); /* a third saturate */
    const double special[] = {NAN, INFINITY, -INFINITY, -0.0, 0.0, vmax, -vmax, 2.5 / sc, -3.5 / sc,
                              0.5 / sc, 1.5 / sc, -0.5 / sc, 1e308, -1e308, nextafter(vmax, 0)};
    for (size_t j = 0; j < sizeof special / sizeof special[0]; j++) v[7 * j + 1] = special[j];
    TU_OK(hetee_ckks_encode_coeffs_bounded(f->ctx, v, n, sc, cases[c].level, vmax, pt));
    for (size_t k = 0; k < N; k++) {
      double y = k < n ? nearbyint(ref_clamp(ref_clamp(v[k], vmax) * sc, cmax)) : 0.0;
      assert_true(fabs(y) < 0x1p126);
      x[k] = (__int128)y;
    }
    assert_true(x[7 * 7 + 1] == 2 && x[7 * 8 + 1] == -4 && x[7 * 9 + 1] == 0 && x[7 * 10 + 1] == 2); /* ties to even */
    check_rows(f, pt, cases[c].level, x);
  }
  /* the unbounded encoder on integers below 2^62 (its second path) */
  tu_fill(v, n, 77);
  TU_OK(hetee_ckks_encode_coeffs(f->ctx, v, n, 0x1p60, 1, pt));
  for (size_t k = 0; k < N; k++) x[k] = k < n ? (__int128)nearbyint(v[k] * 0x1p60) : 0;
  check_rows(f, pt, 1, x);
  hetee_ckks_plaintext_free(pt);
  free(v);
  free(x);
}

/* The public functions: values come back, seeds are fresh, half-size wire. */
static void test_encrypt_coeffs_public(void **state) {
  fixture *f = *state;
  size_t N = f->n;
  double *v = malloc(N * sizeof *v), *got = malloc(N * sizeof *got);
  tu_fill(v, N, 9);
  hetee_ckks_ciphertext *a = NULL, *b = NULL;
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &a));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &b));
  for (int level = 0; level <= 2; level++) {
    TU_OK(hetee_ckks_encrypt_sk_coeffs(f->ctx, f->sk, v, N, 0x1p40, level, a));
    size_t sz = 0, want = 0;
    TU_OK(hetee_ckks_ciphertext_save_size(f->ctx, a, &sz));
    TU_OK(hetee_ckks_ciphertext_seeded_size(f->ctx, level, &want));
    assert_int_equal(sz, want);
    TU_OK(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, a, 0x1p40, NULL, N, got));
    tu_check_bits("encrypt_sk_coeffs", tu_bits(got, v, N), 30); /* CBD noise (sigma 3.2) at 2^40 */
  }
  /* bounded: saturation at +-vmax */
  v[0] = 100.0;
  v[1] = -1e300;
  TU_OK(hetee_ckks_encrypt_sk_coeffs_bounded(f->ctx, f->sk, v, N, 0x1p40, 1, 2.0, b));
  TU_OK(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, b, 0x1p40, NULL, 3, got));
  assert_true(fabs(got[0] - 2.0) < 0x1p-30 && fabs(got[1] + 2.0) < 0x1p-30 && fabs(got[2] - v[2]) < 0x1p-30);
  /* fresh seeds: two encryptions of the same values differ */
  TU_OK(hetee_ckks_encrypt_sk_coeffs(f->ctx, f->sk, v + 2, 100, 0x1p40, 1, a));
  TU_OK(hetee_ckks_encrypt_sk_coeffs(f->ctx, f->sk, v + 2, 100, 0x1p40, 1, b));
  uint8_t *ba = NULL, *bb = NULL;
  size_t la = 0, lb = 0;
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, a, &ba, &la));
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, b, &bb, &lb));
  assert_int_equal(la, 52 + 16 + 2 * N * 8 + 32); /* seeded */
  assert_int_equal(la, lb);
  assert_memory_not_equal(ba, bb, la);
  free(ba);
  free(bb);
  size_t sz = 1;
  assert_int_equal(hetee_ckks_ciphertext_seeded_size(f->ctx, 3, &sz), HETEE_ERR_LEVEL);
  assert_int_equal(sz, 0);
  assert_int_equal(hetee_ckks_ciphertext_seeded_size(f->ctx, -1, &sz), HETEE_ERR_LEVEL);
  assert_int_equal(hetee_ckks_ciphertext_seeded_size(NULL, 0, &sz), HETEE_ERR_INVALID_ARG);
  hetee_ckks_ciphertext_free(a);
  hetee_ckks_ciphertext_free(b);
  free(v);
  free(got);
}

/* Same arguments, same error as the two-step path; the output is empty. */
static void test_encrypt_coeffs_errors(void **state) {
  fixture *f = *state;
  size_t N = f->n;
  double v[4] = {1, 2, 3, 4};
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ct = NULL;
  TU_OK(hetee_ckks_plaintext_new(f->ctx, &pt));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &ct));
  const struct {
    const double *v;
    size_t n;
    double scale;
    int level;
    double vmax;
  } bad[] = {
      {NULL, 4, 0x1p30, 1, 1},        {v, N + 1, 0x1p30, 1, 1},      {v, 4, 0, 1, 1},
      {v, 4, NAN, 1, 1},              {v, 4, 0x1p30, 3, 1},          {v, 4, 0x1p30, -1, 1},
      {v, 4, 0x1p30, 1, 0},           {v, 4, 0x1p30, 1, INFINITY},   {v, 4, 0x1p30, 0, 0x1p40},
      {v, 4, 0x1p80, 0, 1},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    for (int bounded = 0; bounded <= 1; bounded++) {
      if (!bounded && (bad[i].vmax == 0 || !isfinite(bad[i].vmax))) continue; /* vmax unused */
      int want = bounded ? hetee_ckks_encode_coeffs_bounded(f->ctx, bad[i].v, bad[i].n, bad[i].scale, bad[i].level,
                                                            bad[i].vmax, pt)
                         : hetee_ckks_encode_coeffs(f->ctx, bad[i].v, bad[i].n, bad[i].scale, bad[i].level, pt);
      if (!bounded && want == 0) continue; /* e.g. vmax-only cases */
      assert_true(want < 0);
      TU_OK(hetee_ckks_encrypt_sk_coeffs(f->ctx, f->sk, v, 4, 0x1p30, 1, ct)); /* non-empty before */
      int got = bounded ? hetee_ckks_encrypt_sk_coeffs_bounded(f->ctx, f->sk, bad[i].v, bad[i].n, bad[i].scale,
                                                               bad[i].level, bad[i].vmax, ct)
                        : hetee_ckks_encrypt_sk_coeffs(f->ctx, f->sk, bad[i].v, bad[i].n, bad[i].scale, bad[i].level,
                                                       ct);
      assert_int_equal(got, want);
      assert_int_equal(hetee_ckks_ciphertext_level(ct), -1);
      assert_int_equal(hetee_ckks_ciphertext_size(ct), 0);
    }
  }
  assert_int_equal(hetee_ckks_encrypt_sk_coeffs(f->ctx, NULL, v, 4, 0x1p30, 1, ct), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_encrypt_sk_coeffs(f->ctx, f->sk, v, 4, 0x1p30, 1, NULL), HETEE_ERR_INVALID_ARG);
  TU_OK(hetee_ckks_encrypt_sk_coeffs(f->ctx, f->sk, v, 4, 0x1p30, 1, ct));
  assert_int_equal(hetee_ckks_encrypt_sk_coeffs(f->ctx, f->sk_other, v, 4, 0x1p30, 1, ct), HETEE_ERR_CONTEXT);
  assert_int_equal(hetee_ckks_ciphertext_level(ct), -1);
  /* an unbounded value that does not fit: refused, output empty */
  double huge[1] = {0x1p200};
  assert_int_equal(hetee_ckks_encrypt_sk_coeffs(f->ctx, f->sk, huge, 1, 0x1p30, 1, ct), HETEE_ERR_SCALE);
  assert_int_equal(hetee_ckks_ciphertext_level(ct), -1);
  assert_int_equal(hetee_ckks_ciphertext_size(ct), 0);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_plaintext_free(pt);
}

/* The coset path of ckks_decrypt_coeffs_view (only the coefficients
 * r + d t computed) against hetee_ckks_decrypt_coeffs, bit for bit: several
 * d and r, every t or a few (in a scrambled order), an index outside the
 * coset (the full path then), a residue >= q still refused. */
static void coset_check(fixture *f, ckks_ct_view *v, double scale, const hetee_ckks_ciphertext *ct, uint32_t *idx,
                        double *x, double *y) {
  size_t N = f->n;
  int logn = __builtin_ctzll(N);
  const int lds[4] = {1, 3, 5, logn - CKKS_COSET_MIN_LOGS};
  for (int a = 0; a < 4; a++) {
    int ld = lds[a];
    uint32_t d = 1u << ld;
    const uint32_t rs[3] = {0, 1, d - 1};
    for (int b = 0; b < 3; b++) {
      uint32_t r = rs[b];
      ckks_coset *cs = NULL;
      TU_OK(ckks_coset_new(f->ctx, ld, r, &cs));
      size_t ns = N / d, cnt = 0;
      for (size_t t = 0; t < ns; t++) idx[cnt++] = r + d * (uint32_t)((t * 7 + 3) % ns); /* all t, scrambled */
      int gl;
      uint32_t gr;
      assert_int_equal(ckks_coset_fit(f->ctx, idx, cnt, &gl, &gr), 1);
      assert_int_equal(gl, ld); /* the largest coset of all t is d's */
      assert_int_equal(gr, r);
      for (int few = 0; few < 3; few++) {
        size_t n = few == 0 ? cnt : few == 1 ? (cnt + 4) / 5 : 1;
        TU_OK(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, ct, scale, idx, n, x));
        memset(y, 0, N * sizeof *y);
        TU_OK(ckks_decrypt_coeffs_view(f->ctx, f->sk, v, scale, cs, idx, n, y));
        assert_memory_equal(x, y, n * sizeof *x);
      }
      /* one index outside the coset: the full path, the same values */
      uint32_t keep = idx[1];
      idx[1] = (r + 1) % d + d;
      TU_OK(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, ct, scale, idx, 4, x));
      memset(y, 0, N * sizeof *y);
      TU_OK(ckks_decrypt_coeffs_view(f->ctx, f->sk, v, scale, cs, idx, 4, y));
      assert_memory_equal(x, y, 4 * sizeof *x);
      idx[1] = keep;
      uint8_t *w = (uint8_t *)v->c[2] + 8 * 9, old[8];
      memcpy(old, w, 8);
      memset(w, 0xff, 8);
      assert_int_equal(ckks_decrypt_coeffs_view(f->ctx, f->sk, v, scale, cs, idx, 4, y), HETEE_ERR_RANGE);
      memcpy(w, old, 8);
      ckks_coset_free(cs);
    }
  }
  /* fit: none for two indices differing in bit 0; capped at N/d >= 16 */
  uint32_t two[2] = {4, 5}, same[1] = {40};
  int gl;
  uint32_t gr;
  assert_int_equal(ckks_coset_fit(f->ctx, two, 2, &gl, &gr), 0);
  assert_int_equal(ckks_coset_fit(f->ctx, same, 1, &gl, &gr), 1);
  assert_int_equal(gl, logn - CKKS_COSET_MIN_LOGS);
  assert_int_equal(gr, 40u & ((1u << gl) - 1));
  ckks_coset *cs = NULL;
  assert_int_equal(ckks_coset_new(f->ctx, 0, 0, &cs), HETEE_ERR_INVALID_ARG);
  assert_int_equal(ckks_coset_new(f->ctx, 3, 8, &cs), HETEE_ERR_INVALID_ARG);
  assert_int_equal(ckks_coset_new(f->ctx, logn - CKKS_COSET_MIN_LOGS + 1, 0, &cs), HETEE_ERR_INVALID_ARG);
  assert_null(cs);
}

/* decrypt_coeffs == decrypt + decode_coeffs_scaled, bit for bit. */
static void test_decrypt_coeffs(void **state) {
  fixture *f = *state;
  size_t N = f->n;
  double *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *x = malloc(N * sizeof *x),
         *y = malloc(N * sizeof *y);
  tu_fill(a, N, 3);
  tu_fill(b, N, 4);
  uint32_t *idx = malloc(N * sizeof *idx);
  for (size_t i = 0; i < N; i++) idx[i] = (uint32_t)((i * 2654435761u) % N);
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ca = NULL, *cb = NULL, *prod = NULL;
  TU_OK(hetee_ckks_plaintext_new(f->ctx, &pt));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &ca));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &cb));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &prod));
  for (int pass = 0; pass < 1; pass++) { /* one thread: encryption has no thread option since the context became immutable */
    for (int level = 0; level <= 2; level++) {
      TU_OK(hetee_ckks_encrypt_sk_coeffs(f->ctx, f->sk, a, N, 0x1p26, level, ca));
      TU_OK(hetee_ckks_encode_coeffs(f->ctx, b, N, 0x1p30, level, pt));
      TU_OK(hetee_ckks_encrypt_pk(f->ctx, f->pk, pt, cb));
      TU_OK(hetee_ckks_eval_mul(f->ctx, ca, cb, prod)); /* degree 2 */
      const hetee_ckks_ciphertext *cts[2] = {ca, prod};
      const double scales[2] = {0x1p26, 0x1p56};
      for (int k = 0; k < 2; k++) {
        const uint32_t *ids[3] = {NULL, idx, idx + 17};
        const size_t ns[3] = {N, N, 1000};
        TU_OK(hetee_ckks_decrypt(f->ctx, f->sk, cts[k], pt));
        for (int t = 0; t < 3; t++) {
          TU_OK(hetee_ckks_decode_coeffs_scaled(f->ctx, pt, scales[k], ids[t], ns[t], x));
          memset(y, 0, N * sizeof *y);
          TU_OK(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, cts[k], scales[k], ids[t], ns[t], y));
          assert_memory_equal(x, y, ns[t] * sizeof *x);
        }
        /* decryption in place from the serialized bytes (ckks_ct_view), at
         * an odd offset: the same doubles; a seeded ciphertext is left to
         * the loader; a residue >= q is refused */
        uint8_t *buf = NULL;
        size_t len = 0;
        TU_OK(hetee_ckks_ciphertext_save(f->ctx, cts[k], &buf, &len));
        uint8_t *mis = malloc(len + 3);
        memcpy(mis + 3, buf, len);
        ckks_ct_view v;
        int vr = ckks_ciphertext_view(f->ctx, mis + 3, len, &v);
        if (k == 0) {
          assert_int_equal(vr, 1); /* seeded fresh encryption */
        } else {
          TU_OK(vr);
          assert_int_equal(v.level, level);
          assert_int_equal(v.size, 3);
          for (int t = 0; t < 3; t++) {
            TU_OK(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, cts[k], scales[k], ids[t], ns[t], x));
            memset(y, 0, N * sizeof *y);
            TU_OK(ckks_decrypt_coeffs_view(f->ctx, f->sk, &v, scales[k], NULL, ids[t], ns[t], y));
            assert_memory_equal(x, y, ns[t] * sizeof *x);
          }
          const size_t rows = (size_t)(level + 1) * 3;
          for (size_t r = 0; r < rows; r += rows - 1) { /* first and last row */
            uint8_t *w = (uint8_t *)v.c[0] + r * N * 8 + 8 * (r ? N - 1 : 5);
            uint8_t old[8];
            memcpy(old, w, 8);
            memset(w, 0xff, 8);
            assert_int_equal(ckks_decrypt_coeffs_view(f->ctx, f->sk, &v, scales[k], NULL, NULL, 8, y), HETEE_ERR_RANGE);
            memcpy(w, old, 8);
          }
          coset_check(f, &v, scales[k], cts[k], idx, x, y);
          assert_int_equal(ckks_ciphertext_view(f->ctx, mis + 3, len - 1, &v), HETEE_ERR_TRUNCATED);
        }
        free(mis);
        free(buf);
      }
    }
  }
  /* errors as decrypt / decode_coeffs */
  hetee_ckks_ciphertext *empty = NULL;
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &empty));
  uint32_t bad = (uint32_t)N;
  assert_int_equal(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, empty, 0x1p26, NULL, 1, y), HETEE_ERR_LEVEL);
  assert_int_equal(hetee_ckks_decrypt_coeffs(f->ctx, f->sk_other, ca, 0x1p26, NULL, 1, y), HETEE_ERR_CONTEXT);
  assert_int_equal(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, ca, 0x1p26, &bad, 1, y), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, ca, 0x1p26, NULL, N + 1, y), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, ca, 0, NULL, 1, y), HETEE_ERR_SCALE);
  assert_int_equal(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, ca, NAN, NULL, 1, y), HETEE_ERR_SCALE);
  assert_int_equal(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, ca, 0x1p26, NULL, 1, NULL), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_decrypt_coeffs(NULL, f->sk, ca, 0x1p26, NULL, 1, y), HETEE_ERR_INVALID_ARG);
  TU_OK(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, ca, 0x1p26, NULL, 0, NULL));
  hetee_ckks_ciphertext_free(empty);
  hetee_ckks_ciphertext_free(ca);
  hetee_ckks_ciphertext_free(cb);
  hetee_ckks_ciphertext_free(prod);
  hetee_ckks_plaintext_free(pt);
  free(a);
  free(b);
  free(x);
  free(y);
  free(idx);
}

/* a under sk and b under pk at (scale, level), and their degree-2
 * product, into new objects (the inputs of test_c0_at's forms) */
static void c0_at_pair(fixture *f, const double *a, const double *b, size_t N, double scale, int level,
                       hetee_ckks_plaintext *pt, hetee_ckks_ciphertext **ca, hetee_ckks_ciphertext **cb,
                       hetee_ckks_ciphertext **prod) {
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, ca));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, cb));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, prod));
  TU_OK(hetee_ckks_encrypt_sk_coeffs(f->ctx, f->sk, a, N, scale, level, *ca));
  TU_OK(hetee_ckks_encode_coeffs(f->ctx, b, N, scale, level, pt));
  TU_OK(hetee_ckks_encrypt_pk(f->ctx, f->pk, pt, *cb));
  TU_OK(hetee_ckks_eval_mul(f->ctx, *ca, *cb, *prod));
}

/* The form "c0 at listed coefficients" (ckks_ciphertext_save_c0_at, the
 * enclave's bound refresh input): decrypted with ckks_decrypt_coeffs_view
 * at the listed indices it gives the full ciphertext's doubles bit for bit
 * (degree 2 and 1, all N indices scrambled, a subset, a coset with its
 * tables, repeated indices, none); hostile bytes are refused with an error
 * (short, long, count above N, count other than the indices read, a c0
 * value >= q, the seeded flag with it, level 1); no loader takes it. */
/* A coset's products with a key (encoder.c coset_keyed: the weights times
 * s and s^2, made on the first decryption through the coset) belong to
 * that key: a second key's decryption through the same coset takes the
 * weights pass instead, and both give the full path's doubles bit for
 * bit (c0 at listed coefficients, degree 1 at level 0). */
static void test_coset_two_keys(void **state) {
  fixture *f = *state;
  size_t N = f->n, n = 0;
  hetee_ckks_secret_key *sk2 = NULL;
  TU_OK(hetee_ckks_keygen_secret(f->ctx, &sk2));
  double *a = malloc(N * sizeof *a), *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
  uint32_t *ix = malloc(N / 32 * sizeof *ix);
  tu_fill(a, N, 9);
  for (size_t j = 0; j < N / 32; j++) ix[n++] = 7 + 32 * (uint32_t)((j * 5 + 1) % (N / 32));
  ckks_coset *cs = NULL;
  TU_OK(ckks_coset_new(f->ctx, 5, 7, &cs));
  /* the products made beforehand (as the enclave does when a model is
   * registered), once; another key's are refused, its decryptions
   * multiply by the weights as before (the loop below: the same doubles) */
  TU_OK(ckks_coset_key(f->ctx, cs, f->sk));
  TU_OK(ckks_coset_key(f->ctx, cs, f->sk));
  assert_int_equal(ckks_coset_key(f->ctx, cs, sk2), HETEE_ERR_NOMEM);
  assert_int_equal(ckks_coset_key(f->ctx, NULL, f->sk), HETEE_ERR_INVALID_ARG);
  const hetee_ckks_secret_key *keys[3] = {f->sk, sk2, f->sk};
  for (int k = 0; k < 3; k++) {
    hetee_ckks_ciphertext *ct = NULL, *two = NULL;
    TU_OK(hetee_ckks_ciphertext_new(f->ctx, &ct));
    TU_OK(hetee_ckks_ciphertext_new(f->ctx, &two));
    TU_OK(hetee_ckks_encrypt_sk_coeffs(f->ctx, keys[k], a, N, 0x1p20, 0, ct));
    TU_OK(hetee_ckks_eval_add(f->ctx, ct, ct, two)); /* unseeded */
    size_t cap = 0, len = 0;
    TU_OK(ckks_ciphertext_c0_at_size(f->ctx, two, n, &cap));
    uint8_t *buf = malloc(cap);
    TU_OK(ckks_ciphertext_save_c0_at(f->ctx, two, ix, n, buf, cap, &len));
    ckks_ct_view v;
    TU_OK(ckks_ciphertext_view(f->ctx, buf, len, &v));
    TU_OK(hetee_ckks_decrypt_coeffs(f->ctx, keys[k], two, 0x1p20, ix, n, x));
    memset(y, 0, N * sizeof *y);
    TU_OK(ckks_decrypt_coeffs_view(f->ctx, keys[k], &v, 0x1p20, cs, ix, n, y));
    assert_memory_equal(x, y, n * sizeof *x);
    for (size_t j = 0; j < n; j++) assert_true(fabs(x[j] - 2 * a[ix[j]]) < 1e-3); /* and it decrypts */
    free(buf);
    hetee_ckks_ciphertext_free(two);
    hetee_ckks_ciphertext_free(ct);
  }
  ckks_coset_free(cs);
  hetee_ckks_secret_key_free(sk2);
  free(ix);
  free(a);
  free(x);
  free(y);
}

static void test_c0_at(void **state) {
  fixture *f = *state;
  size_t N = f->n;
  double *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *x = malloc(N * sizeof *x),
         *y = malloc(N * sizeof *y);
  uint32_t *idx = malloc(N * sizeof *idx);
  tu_fill(a, N, 5);
  tu_fill(b, N, 6);
  for (size_t i = 0; i < N; i++) idx[i] = (uint32_t)((i * 2654435761u) % N);
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ca = NULL, *cb = NULL, *prod = NULL, *sum = NULL;
  TU_OK(hetee_ckks_plaintext_new(f->ctx, &pt));
  c0_at_pair(f, a, b, N, 0x1p20, 0, pt, &ca, &cb, &prod); /* prod: degree 2 at level 0 */
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &sum));
  TU_OK(hetee_ckks_eval_add(f->ctx, ca, cb, sum));  /* degree 1, unseeded */
  const hetee_ckks_ciphertext *cts[2] = {prod, sum};
  const double scales[2] = {0x1p40, 0x1p20};
  uint32_t *ix = malloc(N * sizeof *ix);
  size_t cap = 0;
  TU_OK(ckks_ciphertext_c0_at_size(f->ctx, prod, N, &cap));
  uint8_t *buf = malloc(cap + 16);
  for (int k = 0; k < 2; k++) {
    for (int t = 0; t < 6; t++) {
      size_t n = 0;
      const ckks_coset *use = NULL;
      ckks_coset *cs = NULL;
      if (t == 0) n = N, memcpy(ix, idx, N * sizeof *ix); /* every coefficient, scrambled */
      if (t == 1) n = 1000, memcpy(ix, idx + 17, n * sizeof *ix);
      if (t == 2 || t == 3) { /* one coset (d = 32, r = 7), scrambled; with and without its tables */
        for (size_t j = 0; j < N / 32; j++) ix[n++] = 7 + 32 * (uint32_t)((j * 5 + 1) % (N / 32));
        if (t == 2) TU_OK(ckks_coset_new(f->ctx, 5, 7, &cs));
        use = cs;
      }
      if (t == 4) { /* repeated indices */
        for (size_t j = 0; j < 40; j++) ix[n++] = (uint32_t)(j % 3) * 11;
      }
      /* t == 5: none */
      size_t len = 0, want = 0;
      TU_OK(ckks_ciphertext_c0_at_size(f->ctx, cts[k], n, &want));
      TU_OK(ckks_ciphertext_save_c0_at(f->ctx, cts[k], ix, n, buf, cap, &len));
      assert_int_equal(len, want);
      assert_int_equal(len, 52 + 16 + 4 + 8 * (n + N * (size_t)(hetee_ckks_ciphertext_size(cts[k]) - 1)));
      ckks_ct_view v;
      TU_OK(ckks_ciphertext_view(f->ctx, buf, len, &v));
      assert_null(v.c[0]);
      assert_int_equal(v.nc0, n);
      assert_int_equal(v.level, 0);
      assert_int_equal(v.size, hetee_ckks_ciphertext_size(cts[k]));
      TU_OK(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, cts[k], scales[k], ix, n, x));
      memset(y, 0, N * sizeof *y);
      TU_OK(ckks_decrypt_coeffs_view(f->ctx, f->sk, &v, scales[k], use, ix, n, y));
      assert_memory_equal(x, y, n * sizeof *x);
      if (n >= 8) {
        /* the count must be the indices read */
        assert_int_equal(ckks_decrypt_coeffs_view(f->ctx, f->sk, &v, scales[k], use, ix, n - 1, y), HETEE_ERR_FORM);
        /* a c0 value >= q_0 (the first and the last) */
        for (size_t j = 0; j < n; j += n - 1) {
          uint8_t *w = buf + 52 + 20 + 8 * j, old[8];
          memcpy(old, w, 8);
          memset(w, 0xff, 8);
          assert_int_equal(ckks_decrypt_coeffs_view(f->ctx, f->sk, &v, scales[k], use, ix, n, y), HETEE_ERR_RANGE);
          memcpy(w, old, 8);
        }
        TU_OK(ckks_decrypt_coeffs_view(f->ctx, f->sk, &v, scales[k], use, ix, n, y));
        assert_memory_equal(x, y, n * sizeof *x);
      }
      ckks_coset_free(cs);
      /* short and long bytes */
      assert_int_not_equal(ckks_ciphertext_view(f->ctx, buf, len - 1, &v), 0);
      assert_int_not_equal(ckks_ciphertext_view(f->ctx, buf, len + 8, &v), 0);
      /* no loader takes it */
      hetee_ckks_ciphertext *ld = NULL;
      assert_int_equal(hetee_ckks_ciphertext_load(f->ctx, buf, len, &ld), HETEE_ERR_FORM);
      assert_null(ld);
    }
  }
  /* hand-edited fields of a valid blob (n = 4): count above N, the count
   * one short with the total kept (body size), seeded flag, level 1 */
  size_t len = 0;
  TU_OK(ckks_ciphertext_save_c0_at(f->ctx, prod, idx, 4, buf, cap, &len));
  ckks_ct_view v;
  uint8_t keep[8];
  memcpy(keep, buf + 68, 4);
  uint32_t big = (uint32_t)N + 1;
  memcpy(buf + 68, &big, 4); /* little-endian test host */
  assert_int_equal(ckks_ciphertext_view(f->ctx, buf, len, &v), HETEE_ERR_FORMAT);
  big = 3;
  memcpy(buf + 68, &big, 4);
  assert_int_equal(ckks_ciphertext_view(f->ctx, buf, len, &v), HETEE_ERR_FORMAT);
  memcpy(buf + 68, keep, 4);
  TU_OK(ckks_ciphertext_view(f->ctx, buf, len, &v));
  buf[10] |= 1; /* flags: seeded and c0 at listed coefficients */
  assert_int_equal(ckks_ciphertext_view(f->ctx, buf, len, &v), HETEE_ERR_FORMAT);
  buf[10] &= (uint8_t)~1u;
  buf[52] = 1; /* level 1 */
  assert_int_equal(ckks_ciphertext_view(f->ctx, buf, len, &v), HETEE_ERR_LEVEL);
  buf[52] = 0;
  TU_OK(ckks_ciphertext_view(f->ctx, buf, len, &v));
  /* rescaled on the way from level 1: the bytes of rescale + save, ct
   * unchanged (a degree-2 product and a fresh degree-1 ciphertext) */
  hetee_ckks_ciphertext *p1 = NULL, *a1 = NULL, *b1 = NULL, *r0 = NULL, *hi2 = NULL;
  c0_at_pair(f, a, b, N, 0x1p30, 1, pt, &a1, &b1, &p1);
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &r0));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &hi2));
  uint8_t *want = malloc(cap);
  const hetee_ckks_ciphertext *l1[2] = {p1, b1};
  for (int k = 0; k < 2; k++) {
    size_t wl = 0, gl = 0, n = k ? 1000 : N / 2;
    uint8_t *before = NULL, *after = NULL;
    size_t bl = 0, al = 0;
    TU_OK(hetee_ckks_ciphertext_save(f->ctx, l1[k], &before, &bl));
    TU_OK(hetee_ckks_eval_rescale(f->ctx, l1[k], r0));
    TU_OK(ckks_ciphertext_save_c0_at(f->ctx, r0, idx + 3, n, want, cap, &wl));
    TU_OK(ckks_ciphertext_save_c0_at_rescaled(f->ctx, l1[k], idx + 3, n, buf, cap, &gl));
    assert_int_equal(gl, wl);
    assert_memory_equal(buf, want, wl);
    TU_OK(hetee_ckks_ciphertext_save(f->ctx, l1[k], &after, &al));
    assert_int_equal(al, bl);
    assert_memory_equal(before, after, bl);
    free(before);
    free(after);
  }
  /* the coset path (c0's rows taken to the coefficient domain at one
   * coset only): the same bytes as the full path, for d = 8, 32, N/16,
   * residues 0, 1, d - 1, every index of the coset or a few of them in a
   * scrambled order; an index outside the coset falls back to the full
   * path (the same bytes again) */
  {
    const int logds[] = {3, 5, 9};
    uint32_t *ci = malloc(N * sizeof *ci);
    assert_non_null(ci);
    for (size_t a_ = 0; a_ < sizeof logds / sizeof logds[0]; a_++) {
      uint32_t d = (uint32_t)1 << logds[a_];
      const uint32_t rs[] = {0, 1, d - 1};
      for (int ri = 0; ri < 3; ri++) {
        ckks_coset *cs = NULL;
        TU_OK(ckks_coset_new(f->ctx, logds[a_], rs[ri], &cs));
        for (int form = 0; form < 3; form++) {
          size_t n = 0;
          if (form == 0) /* the whole coset */
            for (uint32_t t = 0; t < N / d; t++) ci[n++] = rs[ri] + t * d;
          else /* a few, scrambled (form 2: one index outside the coset) */
            for (uint32_t t = 0; t < N / d && n < 37; t += 3) ci[n++] = rs[ri] + ((t * 7919u) % (N / d)) * d;
          if (form == 2) ci[n / 2] ^= 1u << (logds[a_] - 1);
          assert_int_equal(ckks_coset_holds(cs, ci, n), form != 2);
          for (int k = 0; k < 2; k++) {
            size_t wl = 0, gl = 0;
            TU_OK(ckks_ciphertext_save_c0_at_rescaled(f->ctx, l1[k], ci, n, want, cap, &wl));
            TU_OK(ckks_ciphertext_save_c0_at_rescaled_cs(f->ctx, l1[k], cs, ci, n, buf, cap, &gl));
            assert_int_equal(gl, wl);
            assert_memory_equal(buf, want, wl);
          }
        }
        ckks_coset_free(cs);
      }
    }
    free(ci);
  }
  assert_int_equal(ckks_ciphertext_save_c0_at_rescaled(f->ctx, prod, idx, 4, buf, cap, &len), HETEE_ERR_LEVEL);
  assert_int_equal(ckks_ciphertext_save_c0_at(f->ctx, p1, idx, 4, buf, cap, &len), HETEE_ERR_LEVEL);
  /* saving: level 0 (1 rescaled) only, indices < N, room */
  TU_OK(hetee_ckks_encrypt_sk_coeffs(f->ctx, f->sk, a, N, 0x1p20, 2, hi2));
  assert_int_equal(ckks_ciphertext_c0_at_size(f->ctx, hi2, 4, &len), HETEE_ERR_LEVEL);
  assert_int_equal(ckks_ciphertext_save_c0_at(f->ctx, hi2, idx, 4, buf, cap, &len), HETEE_ERR_LEVEL);
  assert_int_equal(ckks_ciphertext_save_c0_at_rescaled(f->ctx, hi2, idx, 4, buf, cap, &len), HETEE_ERR_LEVEL);
  free(want);
  hetee_ckks_ciphertext_free(p1);
  hetee_ckks_ciphertext_free(a1);
  hetee_ckks_ciphertext_free(b1);
  hetee_ckks_ciphertext_free(r0);
  hetee_ckks_ciphertext_free(hi2);
  uint32_t bad = (uint32_t)N;
  assert_int_equal(ckks_ciphertext_save_c0_at(f->ctx, prod, &bad, 1, buf, cap, &len), HETEE_ERR_INVALID_ARG);
  assert_int_equal(ckks_ciphertext_save_c0_at(f->ctx, prod, idx, 4, buf, 100, &len), HETEE_ERR_LIMIT);
  assert_int_equal(ckks_ciphertext_c0_at_size(f->ctx, prod, N + 1, &len), HETEE_ERR_INVALID_ARG);
  free(buf);
  free(ix);
  hetee_ckks_ciphertext_free(ca);
  hetee_ckks_ciphertext_free(cb);
  hetee_ckks_ciphertext_free(prod);
  hetee_ckks_ciphertext_free(sum);
  hetee_ckks_plaintext_free(pt);
  free(idx);
  free(a);
  free(b);
  free(x);
  free(y);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_encrypt_coeffs_bit_exact),
      cmocka_unit_test(test_bounded_rounding_exact),
      cmocka_unit_test(test_encrypt_coeffs_public),
      cmocka_unit_test(test_encrypt_coeffs_errors),
      cmocka_unit_test(test_decrypt_coeffs),
      cmocka_unit_test(test_c0_at),
      cmocka_unit_test(test_coset_two_keys),
  };
  return cmocka_run_group_tests_name("ckks/encrypt", tests, setup, teardown);
}

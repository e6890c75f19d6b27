/*
 * tests/enclave/test_fastpath.c — the CKKS operations the enclave's refresh
 * runs per ciphertext (src/ckks/ckks_arena.h) against the public ones they
 * replace: fused slot decrypt + decode gives the doubles of
 * hetee_ckks_decrypt + hetee_ckks_decode_real exactly; fused slot encode +
 * encrypt decrypts to the values within the encoder's precision; decoding
 * named coefficients 8 at a time (AVX-512 CRT) gives the doubles of the
 * one-at-a-time path; and all of it with the thread's scratch arena set,
 * too small (fallback to malloc) or absent, the arena reporting how much it
 * used (what the enclave wipes); and the load's one-pass range check.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_arena.h"
#include "ckks/ckks_internal.h"
#include "hetee/ckks.h"

typedef struct fx {
  hetee_ckks_context *ctx;
  hetee_ckks_secret_key *sk;
  hetee_ckks_public_key *pk;
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  hetee_ckks_literal lit;
  hetee_ckks_literal_default(&lit);
  if (!f || hetee_ckks_context_new(&lit, &f->ctx) || hetee_ckks_keygen_secret(f->ctx, &f->sk) ||
      hetee_ckks_keygen_public(f->ctx, f->sk, &f->pk))
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  hetee_ckks_public_key_free(f->pk);
  hetee_ckks_secret_key_free(f->sk);
  hetee_ckks_context_free(f->ctx);
  free(f);
  return 0;
}

static double rnd(void) { return (double)rand() / RAND_MAX * 4.0 - 2.0; }

/* arena modes: 0 none, 1 large enough, 2 too small (every temporary falls
 * back to malloc) */
static void *arena_on(const hetee_ckks_context *ctx, int mode, size_t *cap) {
  if (mode == 0) return NULL;
  size_t bytes = mode == 1 ? ckks_arena_bytes(ctx) : 256;
  void *a = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
  assert_non_null(a);
  ckks_arena_set(a, bytes);
  *cap = bytes;
  return a;
}

static size_t arena_off(void *a) {
  size_t high = ckks_arena_set(NULL, 0);
  free(a);
  return high;
}

static void test_decrypt_decode_real_same_doubles(void **state) {
  fx *f = *state;
  size_t slots = hetee_ckks_context_slots(f->ctx);
  double *v = malloc(slots * sizeof *v), *a = malloc(slots * sizeof *a), *b = malloc(slots * sizeof *b);
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ct = NULL, *w = NULL;
  assert_int_equal(hetee_ckks_plaintext_new(f->ctx, &pt), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(f->ctx, &ct), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(f->ctx, &w), 0);
  srand(5);
  for (size_t i = 0; i < slots; i++) v[i] = rnd();
  for (int level = 0; level <= hetee_ckks_context_max_level(f->ctx); level++)
    for (int deg2 = 0; deg2 < 2; deg2++) {
      double scale = deg2 ? 0x1p20 : 0x1p40;
      if (level == 0 && !deg2) scale = 0x1p30;
      assert_int_equal(hetee_ckks_encode_real(f->ctx, v, slots, scale, level, pt), 0);
      assert_int_equal(hetee_ckks_encrypt_pk(f->ctx, f->pk, pt, ct), 0);
      if (deg2) { /* size 3: a product, not relinearized */
        assert_int_equal(hetee_ckks_encrypt_pk(f->ctx, f->pk, pt, w), 0);
        assert_int_equal(hetee_ckks_eval_mul(f->ctx, ct, w, ct), 0);
        assert_int_equal(hetee_ckks_ciphertext_size(ct), 3);
      }
      double sc = hetee_ckks_ciphertext_scale(ct);
      assert_int_equal(hetee_ckks_decrypt(f->ctx, f->sk, ct, pt), 0);
      assert_int_equal(hetee_ckks_decode_real(f->ctx, pt, a, slots), 0);
      for (int mode = 0; mode < 3; mode++) {
        size_t cap = 0;
        void *ar = arena_on(f->ctx, mode, &cap);
        memset(b, 0, slots * sizeof *b);
        assert_int_equal(ckks_decrypt_decode_real(f->ctx, f->sk, ct, sc, b, slots), 0);
        size_t high = arena_off(ar);
        if (mode == 1) assert_true(high > 0 && high <= cap);
        if (mode == 2) assert_int_equal(high, 0); /* nothing fitted */
        assert_memory_equal(a, b, slots * sizeof *a);
      }
    }
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_ciphertext_free(w);
  free(v);
  free(a);
  free(b);
}

static void test_encrypt_real_bounded(void **state) {
  fx *f = *state;
  size_t slots = hetee_ckks_context_slots(f->ctx);
  double *v = malloc(slots * sizeof *v), *b = malloc(slots * sizeof *b);
  hetee_ckks_ciphertext *ct = NULL;
  hetee_ckks_plaintext *pt = NULL;
  assert_int_equal(hetee_ckks_ciphertext_new(f->ctx, &ct), 0);
  assert_int_equal(hetee_ckks_plaintext_new(f->ctx, &pt), 0);
  srand(6);
  for (size_t i = 0; i < slots; i++) v[i] = rnd();
  v[0] = 1e9; /* saturated at the bound (16) like encode_real_bounded */
  v[1] = NAN; /* -> -bound */
  for (int level = 0; level <= hetee_ckks_context_max_level(f->ctx); level++)
    for (int mode = 0; mode < 3; mode++) {
      size_t cap = 0;
      void *ar = arena_on(f->ctx, mode, &cap);
      double scale = level ? 0x1p40 : 0x1p30;
      assert_int_equal(ckks_encrypt_sk_real_bounded(f->ctx, f->sk, v, slots, scale, level, 16.0, ct), 0);
      arena_off(ar);
      assert_int_equal(hetee_ckks_ciphertext_level(ct), level);
      assert_int_equal(hetee_ckks_ciphertext_size(ct), 2);
      assert_true(hetee_ckks_ciphertext_scale(ct) == scale);
      assert_int_equal(hetee_ckks_decrypt(f->ctx, f->sk, ct, pt), 0);
      assert_int_equal(hetee_ckks_decode_real(f->ctx, pt, b, slots), 0);
      assert_true(fabs(b[0] - 16.0) < 0x1p-14);
      assert_true(fabs(b[1] + 16.0) < 0x1p-14);
      for (size_t i = 2; i < slots; i++) assert_true(fabs(b[i] - v[i]) < 0x1p-14);
      /* a fresh encryption: seeded (half-size on the wire) */
      size_t len = 0, want = 0;
      assert_int_equal(hetee_ckks_ciphertext_save_size(f->ctx, ct, &len), 0);
      assert_int_equal(hetee_ckks_ciphertext_seeded_size(f->ctx, level, &want), 0);
      assert_int_equal(len, want);
    }
  /* argument errors leave no ciphertext */
  assert_int_equal(ckks_encrypt_sk_real_bounded(f->ctx, f->sk, v, slots + 1, 0x1p40, 1, 16.0, ct),
                   HETEE_ERR_INVALID_ARG);
  assert_int_equal(ckks_encrypt_sk_real_bounded(f->ctx, f->sk, v, slots, 0x1p40, 9, 16.0, ct), HETEE_ERR_LEVEL);
  assert_int_equal(ckks_encrypt_sk_real_bounded(f->ctx, f->sk, v, slots, 0x1p40, 1, INFINITY, ct), HETEE_ERR_SCALE);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_plaintext_free(pt);
  free(v);
  free(b);
}

/* The fused slot encryption with given seeds is byte for byte the
 * ciphertext of hetee_ckks_encode_real_bounded + ckks_encrypt_sk_seeded
 * with the same seeds: on the one-word path (the noise added to the rounded
 * integers, AVX-512), on the multi-word one (bound * scale = 2^63 at level
 * 2) and at every level, with and without the arena, saturated and NaN
 * values included, all slots or all but 3 (also run with HETEE_ISA=ref: the
 * portable path). */
static void test_encrypt_real_bounded_same_ct(void **state) {
  fx *f = *state;
  size_t slots = hetee_ckks_context_slots(f->ctx);
  double *v = malloc(slots * sizeof *v);
  hetee_ckks_ciphertext *ct = NULL, *ref = NULL;
  hetee_ckks_plaintext *pt = NULL;
  assert_int_equal(hetee_ckks_ciphertext_new(f->ctx, &ct), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(f->ctx, &ref), 0);
  assert_int_equal(hetee_ckks_plaintext_new(f->ctx, &pt), 0);
  size_t cap = 1 << 20;
  uint8_t *b1 = malloc(cap), *b2 = malloc(cap);
  uint8_t eseed[32], aseed[32];
  srand(16);
  for (size_t i = 0; i < slots; i++) v[i] = rnd() * 1000.0;
  v[0] = 1e9;
  v[1] = NAN;
  v[2] = -1e300;
  for (int level = 0; level <= hetee_ckks_context_max_level(f->ctx); level++)
    for (int big = 0; big < 2; big++)
      for (int mode = 0; mode < 4; mode++) { /* arena off / on; all slots / slots - 3 values (vector tails) */
        size_t nv = mode >= 2 ? slots - 3 : slots;
        if (big && level < 2) continue; /* bound * scale 2^63 fits Q_level / 4 at level 2 only */
        double scale = big ? 0x1p45 : level ? 0x1p40 : 0x1p30, vmax = big ? 0x1p18 : 0x1p10;
        for (int i = 0; i < 32; i++) eseed[i] = (uint8_t)(i + 7 * level + 3 * big + mode), aseed[i] = (uint8_t)(99 - i);
        size_t acap = 0;
        void *ar = arena_on(f->ctx, mode & 1, &acap);
        assert_int_equal(ckks_encrypt_sk_real_bounded_seeded(f->ctx, f->sk, v, nv, scale, level, vmax, eseed, aseed, ct), 0);
        arena_off(ar);
        assert_int_equal(hetee_ckks_encode_real_bounded(f->ctx, v, nv, scale, level, vmax, pt), 0);
        assert_int_equal(ckks_encrypt_sk_seeded(f->ctx, f->sk, pt, eseed, aseed, ref), 0);
        size_t l1 = 0, l2 = 0;
        assert_int_equal(hetee_ckks_ciphertext_save_to(f->ctx, ct, b1, cap, &l1), 0);
        assert_int_equal(hetee_ckks_ciphertext_save_to(f->ctx, ref, b2, cap, &l2), 0);
        assert_int_equal(l1, l2);
        assert_memory_equal(b1, b2, l1);
      }
  free(b1);
  free(b2);
  free(v);
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_ciphertext_free(ref);
}

/* Blocks of 8 named coefficients (vector CRT) and the single ones after
 * them give the doubles of decoding each coefficient alone. */
static void test_decode_named_blocks(void **state) {
  fx *f = *state;
  size_t N = hetee_ckks_context_n(f->ctx);
  double *v = malloc(N * sizeof *v), *all = malloc(N * sizeof *all), *one = malloc(8 * sizeof *one);
  uint32_t *idx = malloc(N * sizeof *idx);
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ct = NULL, *w = NULL;
  assert_int_equal(hetee_ckks_plaintext_new(f->ctx, &pt), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(f->ctx, &ct), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(f->ctx, &w), 0);
  srand(7);
  for (size_t i = 0; i < N; i++) v[i] = rnd();
  for (int level = 0; level <= 1; level++) {
    double sa = level ? 0x1p26 : 0x1p17, sb = level ? 0x1p34 : 0x1p13;
    assert_int_equal(hetee_ckks_encode_coeffs(f->ctx, v, N, sb, level, pt), 0);
    assert_int_equal(hetee_ckks_encrypt_pk(f->ctx, f->pk, pt, w), 0);
    assert_int_equal(hetee_ckks_encode_coeffs(f->ctx, v, N, sa, level, pt), 0);
    assert_int_equal(hetee_ckks_encrypt_pk(f->ctx, f->pk, pt, ct), 0);
    assert_int_equal(hetee_ckks_eval_mul(f->ctx, ct, w, ct), 0);
    size_t n = 1003; /* 125 blocks of 8 and 3 single ones */
    for (size_t j = 0; j < n; j++) idx[j] = (uint32_t)((j * 7919u + 13u) % N);
    size_t cap = 0;
    void *ar = arena_on(f->ctx, 1, &cap);
    assert_int_equal(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, ct, sa * sb, idx, n, all), 0);
    for (size_t j = 0; j < n; j += 7) { /* fewer than 8 at a time: the scalar path */
      size_t k = n - j < 7 ? n - j : 7;
      assert_int_equal(hetee_ckks_decrypt_coeffs(f->ctx, f->sk, ct, sa * sb, idx + j, k, one), 0);
      assert_memory_equal(one, all + j, k * sizeof *one);
    }
    arena_off(ar);
    /* and the values are the products (within the noise) */
    for (size_t j = 0; j < n; j++) assert_true(fabs(all[j]) < 4.0 * 4.0 * (double)N);
  }
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_ciphertext_free(w);
  free(v);
  free(all);
  free(one);
  free(idx);
}

/* Temporaries are released in stack order; the arena's high-water mark
 * covers everything handed out. */
static void test_arena_stack(void **state) {
  (void)state;
  size_t cap = 4096;
  uint8_t *a = aligned_alloc(64, cap);
  assert_non_null(a);
  ckks_arena_set(a, cap);
  uint8_t *p = ckks_tmp_alloc(100), *q = ckks_tmp_alloc(1000);
  assert_ptr_equal(p, a);
  assert_ptr_equal(q, a + 128); /* 64-byte granules */
  uint8_t *big = ckks_tmp_alloc(8192); /* does not fit: malloc */
  assert_non_null(big);
  assert_true(big < a || big >= a + cap);
  memset(big, 1, 8192);
  ckks_tmp_free(big, 8192, 1);
  ckks_tmp_free(q, 1000, 1);
  uint8_t *r = ckks_tmp_alloc(64);
  assert_ptr_equal(r, a + 128); /* q's place again */
  ckks_tmp_free(r, 64, 1);
  ckks_tmp_free(p, 100, 1);
  assert_int_equal(ckks_arena_set(NULL, 0), 128 + 1024);
  free(a);
}

/* The load's range check (one pass with the copy on AVX-512): a residue
 * equal to its prime anywhere — first, middle, last word of any row of any
 * polynomial — is refused; the untouched bytes load. */
static void test_load_range_check(void **state) {
  fx *f = *state;
  size_t N = hetee_ckks_context_n(f->ctx);
  hetee_ckks_ciphertext *ct = NULL, *w = NULL;
  hetee_ckks_plaintext *pt = NULL;
  double *v = calloc(N, sizeof *v);
  assert_int_equal(hetee_ckks_plaintext_new(f->ctx, &pt), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(f->ctx, &ct), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(f->ctx, &w), 0);
  assert_int_equal(hetee_ckks_encode_coeffs(f->ctx, v, N, 0x1p20, 1, pt), 0);
  assert_int_equal(hetee_ckks_encrypt_pk(f->ctx, f->pk, pt, ct), 0);
  assert_int_equal(hetee_ckks_encrypt_pk(f->ctx, f->pk, pt, w), 0);
  assert_int_equal(hetee_ckks_eval_mul(f->ctx, ct, w, ct), 0); /* size 3, 2 rows */
  uint8_t *buf = NULL;
  size_t len = 0;
  assert_int_equal(hetee_ckks_ciphertext_save(f->ctx, ct, &buf, &len), 0);
  size_t rows0 = len - 6 * N * 8; /* header + level, size, scale */
  assert_int_equal(hetee_ckks_ciphertext_load_into(f->ctx, buf, len, w), 0);
  for (int poly = 0; poly < 3; poly++)
    for (int row = 0; row < 2; row++) {
      size_t at[3] = {0, N / 2 + 3, N - 1};
      for (int k = 0; k < 3; k++) {
        uint8_t *p = buf + rows0 + (((size_t)poly * 2 + (size_t)row) * N + at[k]) * 8, keep[8];
        memcpy(keep, p, 8);
        uint64_t q = hetee_ckks_context_prime(f->ctx, row);
        for (int i = 0; i < 8; i++) p[i] = (uint8_t)(q >> (8 * i));
        assert_int_equal(hetee_ckks_ciphertext_load_into(f->ctx, buf, len, w), HETEE_ERR_RANGE);
        memcpy(p, keep, 8);
      }
    }
  assert_int_equal(hetee_ckks_ciphertext_load_into(f->ctx, buf, len, w), 0);
  free(buf);
  free(v);
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_ciphertext_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_arena_stack),
      cmocka_unit_test(test_decrypt_decode_real_same_doubles),
      cmocka_unit_test(test_encrypt_real_bounded),
      cmocka_unit_test(test_encrypt_real_bounded_same_ct),
      cmocka_unit_test(test_decode_named_blocks),
      cmocka_unit_test(test_load_range_check),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * test_pack.c — ckks/pack: the packed ciphertext form (flag 4,
 * hetee_ckks_ciphertext_save_packed; docs/ckks.md "Packed ciphertexts").
 *  - rows: ckks_pack_row against a bit-by-bit packer written here, for
 *    every prime width 20..61 and row lengths with and without padding
 *    bits; ckks_unpack_row gives the words back; a value >= q (first,
 *    middle, last), each padding bit set, the largest canonical value;
 *  - ciphertexts at every level, seeded and not, sizes 2 and 3: sizes,
 *    bytes of save_packed / _size / _to, load and load_into (reused), the
 *    packed bytes saved back identically, the unpacked bytes equal to the
 *    original's, decryptions bit-identical;
 *  - hostile blobs: value >= q_i in each row and polynomial, truncated,
 *    oversized, the packed flag on a plaintext, on ckks_ciphertext_view,
 *    with the unpacked body, with the c0-at flag.
 * `test_ckks_pack bench` prints pack / unpack throughput (not a test).
 */
#include <time.h>

#include "ckks_test_util.h"
#include "ckks/ckks_arena.h"
#include "ckks/pack.h"

/* ------------------------------------------------------------------ rows */

/* bit-by-bit reference: value j's bit k at stream bit j b + k */
static void pack_naive(uint8_t *dst, const uint64_t *src, size_t n, unsigned b) {
  memset(dst, 0, ckks_pack_row_bytes(n, b));
  for (size_t j = 0; j < n; j++)
    for (unsigned k = 0; k < b; k++)
      if ((src[j] >> k) & 1) {
        size_t bit = j * b + k;
        dst[bit / 8] |= (uint8_t)(1u << (bit % 8));
      }
}

static uint64_t rnd_below(uint64_t *s, uint64_t q) { return tu_rand(s) % q; }

static void test_rows(void **state) {
  (void)state;
  uint64_t s = 0x1234567;
  const size_t lens[] = {1, 3, 7, 8, 13, 16, 24, 63, 64, 65, 1000, 4096};
  for (unsigned b = 20; b <= HETEE_RING_MAX_PRIME_BITS; b++) {
    /* a random odd q of exactly b bits, and q = 2^b - 1 (one b-bit value >= q) */
    uint64_t qs[2] = {(UINT64_C(1) << (b - 1)) | (tu_rand(&s) & ((UINT64_C(1) << (b - 1)) - 1)) | 1,
                      (UINT64_C(1) << b) - 1};
    for (int qi = 0; qi < 2; qi++) {
      uint64_t q = qs[qi];
      assert_int_equal(ckks_pack_bits(q), b);
      for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        size_t n = lens[li], nb = ckks_pack_row_bytes(n, b);
        uint64_t *v = malloc(n * 8), *out = malloc(n * 8);
        uint8_t *p = malloc(nb), *ref = malloc(nb);
        for (size_t j = 0; j < n; j++) v[j] = rnd_below(&s, q);
        v[0] = q - 1; /* the largest canonical value */
        if (n > 1) v[n - 1] = 0;
        ckks_pack_row(p, v, n, b);
        pack_naive(ref, v, n, b);
        assert_memory_equal(p, ref, nb);
        assert_int_equal(ckks_unpack_row(out, p, n, b, q), 0);
        assert_memory_equal(out, v, n * 8);
        /* a value >= q at the start, the middle, the end */
        size_t at[3] = {0, n / 2, n - 1};
        for (int a = 0; a < 3; a++) {
          uint64_t keep = v[at[a]];
          v[at[a]] = q + tu_rand(&s) % ((UINT64_C(1) << b) - q); /* in [q, 2^b) */
          pack_naive(ref, v, n, b);
          assert_int_not_equal(ckks_unpack_row(out, ref, n, b, q), 0);
          assert_int_equal(out[at[a]], v[at[a]]); /* the stream was read as written */
          v[at[a]] = keep;
        }
        /* padding bits (rows whose n b is not a multiple of 8): each set */
        unsigned pad = (unsigned)(nb * 8 - n * b);
        for (unsigned k = 0; k < pad; k++) {
          memcpy(ref, p, nb);
          ref[nb - 1] |= (uint8_t)(0x80u >> k);
          assert_int_not_equal(ckks_unpack_row(out, ref, n, b, q), 0);
        }
        free(v);
        free(out);
        free(p);
        free(ref);
      }
    }
  }
}

/* ----------------------------------------------------------- ciphertexts */

typedef struct {
  hetee_ckks_context *ctx;
  hetee_ckks_secret_key *sk;
  hetee_ckks_public_key *pk;
  size_t n, slots;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  int qb[3] = {60, 40, 40}, pb[1] = {60};
  f->ctx = tu_ctx(13, qb, 3, pb, 1, 0x1p40);
  f->n = hetee_ckks_context_n(f->ctx);
  f->slots = hetee_ckks_context_slots(f->ctx);
  TU_OK(hetee_ckks_keygen_secret(f->ctx, &f->sk));
  TU_OK(hetee_ckks_keygen_public(f->ctx, f->sk, &f->pk));
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  hetee_ckks_public_key_free(f->pk);
  hetee_ckks_secret_key_free(f->sk);
  hetee_ckks_context_free(f->ctx);
  free(f);
  return 0;
}

/* kind 0: seeded (encrypt_sk), 1: public key, 2: size 3 (a product) */
static hetee_ckks_ciphertext *make(fixture *f, int level, int kind, uint64_t seed) {
  double *v = malloc(f->slots * sizeof *v);
  tu_fill(v, f->slots, seed);
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ct = NULL;
  TU_OK(hetee_ckks_plaintext_new(f->ctx, &pt));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &ct));
  TU_OK(hetee_ckks_encode_real(f->ctx, v, f->slots, 0x1p30, level, pt));
  if (kind == 0) TU_OK(hetee_ckks_encrypt_sk(f->ctx, f->sk, pt, ct));
  else TU_OK(hetee_ckks_encrypt_pk(f->ctx, f->pk, pt, ct));
  if (kind == 2) TU_OK(hetee_ckks_eval_mul(f->ctx, ct, ct, ct));
  hetee_ckks_plaintext_free(pt);
  free(v);
  return ct;
}

static void decrypt_raw(fixture *f, const hetee_ckks_ciphertext *ct, double *out) {
  hetee_ckks_plaintext *pt = NULL;
  TU_OK(hetee_ckks_plaintext_new(f->ctx, &pt));
  TU_OK(hetee_ckks_decrypt(f->ctx, f->sk, ct, pt));
  TU_OK(hetee_ckks_decode_real(f->ctx, pt, out, f->slots));
  hetee_ckks_plaintext_free(pt);
}

static size_t packed_poly(fixture *f, int level) {
  size_t t = 0;
  for (int i = 0; i <= level; i++) t += f->n * ckks_pack_bits(hetee_ckks_context_prime(f->ctx, i)) / 8;
  return t;
}

static void test_ct_roundtrip(void **state) {
  fixture *f = *state;
  hetee_ckks_ciphertext *into = NULL;
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &into));
  double *d0 = malloc(f->slots * sizeof *d0), *d1 = malloc(f->slots * sizeof *d1);
  for (int level = 0; level <= 2; level++)
    for (int kind = 0; kind < 3; kind++) {
      hetee_ckks_ciphertext *ct = make(f, level, kind, (uint64_t)(7 + 3 * level + kind)), *c2 = NULL;
      int size = kind == 2 ? 3 : 2, seeded = kind == 0;
      uint8_t *pb = NULL, *ub = NULL, *pb2 = NULL, *ub2 = NULL;
      size_t pl = 0, ul = 0, pl2 = 0, ul2 = 0, sz = 0;
      TU_OK(hetee_ckks_ciphertext_save_packed(f->ctx, ct, &pb, &pl));
      TU_OK(hetee_ckks_ciphertext_save(f->ctx, ct, &ub, &ul));
      size_t want = 52 + 16 + (seeded ? packed_poly(f, level) + 32 : packed_poly(f, level) * (size_t)size);
      assert_int_equal(pl, want);
      assert_true(pl < ul);
      assert_int_equal(pb[10] | pb[11] << 8, 4 | seeded);
      TU_OK(hetee_ckks_ciphertext_save_packed_size(f->ctx, ct, &sz));
      assert_int_equal(sz, pl);
      /* _to: the same bytes; a buffer one byte short is refused */
      uint8_t *tb = malloc(pl);
      assert_int_equal(hetee_ckks_ciphertext_save_packed_to(f->ctx, ct, tb, pl - 1, &sz), HETEE_ERR_LIMIT);
      TU_OK(hetee_ckks_ciphertext_save_packed_to(f->ctx, ct, tb, pl, &sz));
      assert_int_equal(sz, pl);
      assert_memory_equal(tb, pb, pl);
      free(tb);
      /* load: the same object (unpacked bytes equal), saved back packed identically */
      TU_OK(hetee_ckks_ciphertext_load(f->ctx, pb, pl, &c2));
      assert_int_equal(hetee_ckks_ciphertext_level(c2), level);
      assert_int_equal(hetee_ckks_ciphertext_size(c2), size);
      TU_OK(hetee_ckks_ciphertext_save(f->ctx, c2, &ub2, &ul2));
      assert_int_equal(ul2, ul);
      assert_memory_equal(ub2, ub, ul);
      TU_OK(hetee_ckks_ciphertext_save_packed(f->ctx, c2, &pb2, &pl2));
      assert_int_equal(pl2, pl);
      assert_memory_equal(pb2, pb, pl);
      /* load_into a reused object (of another level / size before) */
      TU_OK(hetee_ckks_ciphertext_load_into(f->ctx, pb, pl, into));
      free(ub2);
      TU_OK(hetee_ckks_ciphertext_save(f->ctx, into, &ub2, &ul2));
      assert_memory_equal(ub2, ub, ul);
      /* decryption: bit-identical doubles */
      if (size == 2) {
        decrypt_raw(f, ct, d0);
        decrypt_raw(f, c2, d1);
        assert_memory_equal(d0, d1, f->slots * sizeof *d0);
        decrypt_raw(f, into, d1);
        assert_memory_equal(d0, d1, f->slots * sizeof *d0);
      }
      /* the unpacked bytes still load (old clients, stored data) */
      hetee_ckks_ciphertext_free(c2);
      c2 = NULL;
      TU_OK(hetee_ckks_ciphertext_load(f->ctx, ub, ul, &c2));
      hetee_ckks_ciphertext_free(c2);
      if (level == 1 && size == 2 && !seeded)
        fprintf(stderr, "  level-1 public-key ciphertext: %zu bytes unpacked, %zu packed (%.1f%% fewer)\n", ul, pl,
                100.0 * (double)(ul - pl) / (double)ul);
      free(pb);
      free(pb2);
      free(ub);
      free(ub2);
      hetee_ckks_ciphertext_free(ct);
    }
  free(d0);
  free(d1);
  hetee_ckks_ciphertext_free(into);
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void put64(uint8_t *p, uint64_t v) {
  for (int k = 0; k < 8; k++) p[k] = (uint8_t)(v >> (8 * k));
}

/* ORs the b-bit value x into value j of the packed row at p (the row's
 * value is then all ones where x has ones: >= q when x = 2^b - 1) */
static void set_all_ones(uint8_t *p, size_t j, unsigned b) {
  for (unsigned k = 0; k < b; k++) {
    size_t bit = j * b + k;
    p[bit / 8] |= (uint8_t)(1u << (bit % 8));
  }
}

static void test_hostile(void **state) {
  fixture *f = *state;
  hetee_ckks_ciphertext *cp = make(f, 1, 1, 99), *cs = make(f, 2, 0, 98), *o = NULL, *into = NULL;
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &into));
  uint8_t *buf = NULL, *b = NULL, *ub = NULL;
  size_t len = 0, ul = 0;
  TU_OK(hetee_ckks_ciphertext_save_packed(f->ctx, cp, &buf, &len));
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, cp, &ub, &ul));
  b = malloc(ul + 1);
#define RESET() memcpy(b, buf, len)
#define EXPECT(code, l)                                                                   \
  do {                                                                                    \
    assert_int_equal(hetee_ckks_ciphertext_load(f->ctx, b, (l), &o), (code));           \
    assert_null(o);                                                                       \
    assert_int_equal(hetee_ckks_ciphertext_load_into(f->ctx, b, (l), into), (code));    \
    assert_int_equal(hetee_ckks_ciphertext_level(into), -1);                            \
  } while (0)
  RESET();
  TU_OK(hetee_ckks_ciphertext_load(f->ctx, b, len, &o));
  hetee_ckks_ciphertext_free(o);
  o = NULL;
  EXPECT(HETEE_ERR_TRUNCATED, len - 1);
  EXPECT(HETEE_ERR_TRUNCATED, 60);
  b[len] = 0;
  EXPECT(HETEE_ERR_FORMAT, len + 1); /* oversized */
  /* the header announcing one byte less / more than the body holds */
  RESET(); put64(b + 12, len - 1); EXPECT(HETEE_ERR_FORMAT, len - 1);
  RESET(); put64(b + 12, len + 1); b[len] = 0; EXPECT(HETEE_ERR_FORMAT, len + 1);
  /* a value >= q_i: first and last value of each row of each polynomial */
  unsigned bits[2] = {ckks_pack_bits(hetee_ckks_context_prime(f->ctx, 0)),
                      ckks_pack_bits(hetee_ckks_context_prime(f->ctx, 1))};
  assert_int_equal(bits[0], 60);
  assert_int_equal(bits[1], 40);
  size_t off = 68;
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < 2; i++) {
      RESET(); set_all_ones(b + off, 0, bits[i]); EXPECT(HETEE_ERR_RANGE, len);
      RESET(); set_all_ones(b + off, f->n - 1, bits[i]); EXPECT(HETEE_ERR_RANGE, len);
      off += f->n * bits[i] / 8;
    }
  assert_int_equal(off, len);
  /* exactly q_0 at the first value */
  RESET();
  {
    uint64_t q0 = hetee_ckks_context_prime(f->ctx, 0);
    for (unsigned k = 0; k < 60; k++) {
      b[68 + k / 8] &= (uint8_t)~(1u << (k % 8));
      b[68 + k / 8] |= (uint8_t)(((q0 >> k) & 1) << (k % 8));
    }
    EXPECT(HETEE_ERR_RANGE, len);
  }
  /* the flag on the unpacked body, and the unpacked flag on the packed body */
  memcpy(b, ub, ul);
  put16(b + 10, 4);
  EXPECT(HETEE_ERR_FORMAT, ul);
  RESET(); put16(b + 10, 0); EXPECT(HETEE_ERR_FORMAT, len);
  /* seeded flag on a packed full body; packed + c0-at; an unknown bit */
  RESET(); put16(b + 10, 5); EXPECT(HETEE_ERR_FORMAT, len);
  RESET(); put16(b + 10, 6); EXPECT(HETEE_ERR_FORM, len); /* c0-at: refused by name, as unpacked */
  RESET(); put16(b + 10, 12); EXPECT(HETEE_ERR_FORMAT, len);
  /* the enclave's in-place parser does not take the packed form */
  ckks_ct_view v;
  RESET();
  assert_int_equal(ckks_ciphertext_view(f->ctx, b, len, &v), HETEE_ERR_FORMAT);
  assert_non_null(strstr(hetee_last_error(), "packed"));
  /* nor a plaintext loader (flag on another object type) */
  {
    hetee_ckks_plaintext *pt = NULL, *pt2 = NULL;
    uint8_t *tb = NULL;
    size_t tl = 0;
    TU_OK(hetee_ckks_plaintext_new(f->ctx, &pt));
    double z[4] = {1, 2, 3, 4};
    TU_OK(hetee_ckks_encode_real(f->ctx, z, 4, 0x1p30, 1, pt));
    TU_OK(hetee_ckks_plaintext_save(f->ctx, pt, &tb, &tl));
    put16(tb + 10, 4);
    assert_int_equal(hetee_ckks_plaintext_load(f->ctx, tb, tl, &pt2), HETEE_ERR_FORMAT);
    assert_null(pt2);
    assert_non_null(strstr(hetee_last_error(), "packed"));
    free(tb);
    hetee_ckks_plaintext_free(pt);
  }
  /* seeded packed: truncated seed, c0 value >= q */
  free(buf);
  TU_OK(hetee_ckks_ciphertext_save_packed(f->ctx, cs, &buf, &len));
  free(b);
  b = malloc(len + 1);
  RESET(); EXPECT(HETEE_ERR_TRUNCATED, len - 1);
  RESET(); set_all_ones(b + 68 + f->n * 60 / 8 + f->n * 40 / 8, 5, 40); EXPECT(HETEE_ERR_RANGE, len);
  RESET(); put16(b + 10, 4); EXPECT(HETEE_ERR_FORMAT, len); /* not seeded: body size */
#undef RESET
#undef EXPECT
  free(b);
  free(buf);
  free(ub);
  hetee_ckks_ciphertext_free(into);
  hetee_ckks_ciphertext_free(cp);
  hetee_ckks_ciphertext_free(cs);
}

/* ----------------------------------------------------------------- bench */

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Throughput of pack / unpack (dispatched and portable) for rows of N =
 * 8192 at 60 and 40 bits: GB/s of unpacked words (8 bytes per value). */
static int bench(void) {
  const size_t n = 8192;
  const int reps = 4000;
  uint64_t s = 5;
  uint64_t *v = malloc(n * 8), *out = malloc(n * 8);
  uint8_t *p = malloc(n * 8);
  unsigned widths[2] = {60, 40};
  for (int w = 0; w < 2; w++) {
    unsigned b = widths[w];
    uint64_t q = (UINT64_C(1) << b) - 1;
    for (size_t j = 0; j < n; j++) v[j] = tu_rand(&s) % q;
    double t0 = now();
    for (int r = 0; r < reps; r++) ckks_pack_row(p, v, n, b);
    double t1 = now();
    uint64_t bad = 0;
    for (int r = 0; r < reps; r++) bad |= ckks_unpack_row(out, p, n, b, q);
    double t2 = now();
    double gb = (double)reps * (double)n * 8 / 1e9;
    printf("b=%u N=%zu: pack %.2f GB/s, unpack + check %.2f GB/s (of 8-byte words)%s\n", b, n, gb / (t1 - t0),
           gb / (t2 - t1), bad ? " BAD" : "");
  }
  free(v);
  free(out);
  free(p);
  /* a level-1 public-key ciphertext at logN 13 (q {60, 40, 40}): save and
   * load_into, unpacked vs packed, alternated, medians of 9 rounds */
  fixture f;
  memset(&f, 0, sizeof f);
  int qb[3] = {60, 40, 40}, pb[1] = {60};
  f.ctx = tu_ctx(13, qb, 3, pb, 1, 0x1p40);
  f.n = hetee_ckks_context_n(f.ctx);
  f.slots = hetee_ckks_context_slots(f.ctx);
  if (hetee_ckks_keygen_secret(f.ctx, &f.sk) || hetee_ckks_keygen_public(f.ctx, f.sk, &f.pk)) return 1;
  hetee_ckks_ciphertext *ct = make(&f, 1, 1, 3), *into = NULL;
  if (hetee_ckks_ciphertext_new(f.ctx, &into)) return 1;
  uint8_t *bu = NULL, *bp = NULL;
  size_t lu = 0, lp = 0;
  if (hetee_ckks_ciphertext_save(f.ctx, ct, &bu, &lu) || hetee_ckks_ciphertext_save_packed(f.ctx, ct, &bp, &lp))
    return 1;
  enum { ROUNDS = 9, ITERS = 500 };
  double t[4][ROUNDS];
  for (int r = 0; r < ROUNDS; r++)
    for (int form = 0; form < 2; form++) {
      uint8_t *b = form ? bp : bu;
      size_t l = form ? lp : lu, got = 0;
      double a = now();
      for (int i = 0; i < ITERS; i++)
        if ((form ? hetee_ckks_ciphertext_save_packed_to : hetee_ckks_ciphertext_save_to)(f.ctx, ct, b, l, &got))
          return 1;
      double m = now();
      for (int i = 0; i < ITERS; i++)
        if (hetee_ckks_ciphertext_load_into(f.ctx, b, l, into)) return 1;
      double e = now();
      t[2 * form][r] = (m - a) / ITERS;
      t[2 * form + 1][r] = (e - m) / ITERS;
    }
  for (int k = 0; k < 4; k++) /* medians */
    for (int i = 0; i < ROUNDS; i++)
      for (int j = i + 1; j < ROUNDS; j++)
        if (t[k][j] < t[k][i]) {
          double x = t[k][i];
          t[k][i] = t[k][j];
          t[k][j] = x;
        }
  printf("level-1 ciphertext, logN 13: unpacked %zu bytes: save_to %.1f us, load_into %.1f us; packed %zu bytes: "
         "save_packed_to %.1f us, load_into %.1f us (medians of %d x %d)\n",
         lu, t[0][ROUNDS / 2] * 1e6, t[1][ROUNDS / 2] * 1e6, lp, t[2][ROUNDS / 2] * 1e6, t[3][ROUNDS / 2] * 1e6, ROUNDS,
         ITERS);
  free(bu);
  free(bp);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_ciphertext_free(into);
  hetee_ckks_public_key_free(f.pk);
  hetee_ckks_secret_key_free(f.sk);
  hetee_ckks_context_free(f.ctx);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "bench")) return bench();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rows),
      cmocka_unit_test(test_ct_roundtrip),
      cmocka_unit_test(test_hostile),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

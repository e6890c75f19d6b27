/*
 * test_serialize.c — ckks/serialize: round trips of every object type
 * (parameters, secret / public / relinearization / Galois keys, plaintexts,
 * seeded and full ciphertexts of size 2 and 3), the seeded formats' sizes,
 * rejection of truncated, bit-flipped (header fields, residues >= q) and
 * other-parameter inputs with their specific error codes (also through
 * load_into on a reused object), the buffer variants (save_size, save_to,
 * load_into) against save / load, and a fuzz loop of
 * random and mutated bytes over every loader (must never crash; run under
 * ASan by `make test`).
 */
#include "ckks_test_util.h"

typedef struct {
  hetee_ckks_context *ctx, *other;
  hetee_ckks_secret_key *sk;
  hetee_ckks_public_key *pk;
  hetee_ckks_relin_key *rk;
  hetee_ckks_galois_keys *gk;
  size_t slots;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  int qb[3] = {60, 40, 40}, pb[1] = {60}, qb2[3] = {60, 40, 38};
  f->ctx = tu_ctx(13, qb, 3, pb, 1, 0x1p40);
  f->other = tu_ctx(13, qb2, 3, pb, 1, 0x1p40);
  f->slots = hetee_ckks_context_slots(f->ctx);
  int steps[2] = {1, -3};
  TU_OK(hetee_ckks_keygen_secret(f->ctx, &f->sk));
  TU_OK(hetee_ckks_keygen_public(f->ctx, f->sk, &f->pk));
  TU_OK(hetee_ckks_keygen_relin(f->ctx, f->sk, &f->rk));
  TU_OK(hetee_ckks_keygen_galois(f->ctx, f->sk, steps, 2, 1, &f->gk));
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  hetee_ckks_galois_keys_free(f->gk);
  hetee_ckks_relin_key_free(f->rk);
  hetee_ckks_public_key_free(f->pk);
  hetee_ckks_secret_key_free(f->sk);
  hetee_ckks_context_free(f->ctx);
  hetee_ckks_context_free(f->other);
  free(f);
  return 0;
}

static hetee_ckks_ciphertext *enc(fixture *f, const double *v, int use_pk) {
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ct = NULL;
  TU_OK(hetee_ckks_plaintext_new(f->ctx, &pt));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &ct));
  TU_OK(hetee_ckks_encode_real(f->ctx, v, f->slots, 0x1p40, 2, pt));
  if (use_pk) TU_OK(hetee_ckks_encrypt_pk(f->ctx, f->pk, pt, ct));
  else TU_OK(hetee_ckks_encrypt_sk(f->ctx, f->sk, pt, ct));
  hetee_ckks_plaintext_free(pt);
  return ct;
}

static double dec_bits(fixture *f, const hetee_ckks_secret_key *sk, const hetee_ckks_ciphertext *ct,
                       const double *want) {
  hetee_ckks_plaintext *pt = NULL;
  double *got = malloc(f->slots * sizeof *got);
  TU_OK(hetee_ckks_plaintext_new(f->ctx, &pt));
  TU_OK(hetee_ckks_decrypt(f->ctx, sk, ct, pt));
  TU_OK(hetee_ckks_decode_real(f->ctx, pt, got, f->slots));
  double b = tu_bits(got, want, f->slots);
  free(got);
  hetee_ckks_plaintext_free(pt);
  return b;
}

static void test_params(void **state) {
  fixture *f = *state;
  uint8_t *buf = NULL;
  size_t len = 0;
  hetee_ckks_context *c2 = NULL;
  TU_OK(hetee_ckks_literal_save(f->ctx, &buf, &len));
  TU_OK(hetee_ckks_context_load(buf, len, &c2));
  assert_memory_equal(hetee_ckks_context_fingerprint(c2), hetee_ckks_context_fingerprint(f->ctx), 32);
  for (int i = 0; i < 4; i++) assert_true(hetee_ckks_context_prime(c2, i) == hetee_ckks_context_prime(f->ctx, i));
  hetee_ckks_context_free(c2);
  /* a prime changed in the body no longer matches the regenerated chain */
  buf[len - 1] ^= 1;
  assert_int_equal(hetee_ckks_context_load(buf, len, &c2), HETEE_ERR_FORMAT);
  buf[len - 1] ^= 1;
  /* fingerprint changed */
  buf[20] ^= 1;
  assert_int_equal(hetee_ckks_context_load(buf, len, &c2), HETEE_ERR_FORMAT);
  buf[20] ^= 1;
  /* log_n out of range */
  buf[52] = 40;
  assert_int_equal(hetee_ckks_context_load(buf, len, &c2), HETEE_ERR_FORMAT);
  buf[52] = 13;
  assert_int_equal(hetee_ckks_context_load(buf, len - 1, &c2), HETEE_ERR_TRUNCATED);
  assert_null(c2);
  free(buf);
  /* insecure parameters (allowed at creation for tests) never load */
  hetee_ckks_context *toy = tu_ctx_std(12, 2);
  TU_OK(hetee_ckks_literal_save(toy, &buf, &len));
  assert_int_equal(hetee_ckks_context_load(buf, len, &c2), HETEE_ERR_INSECURE);
  assert_null(c2);
  free(buf);
  hetee_ckks_context_free(toy);
}

static uint64_t rd64(const uint8_t *p) {
  uint64_t v = 0;
  for (int b = 0; b < 8; b++) v |= (uint64_t)p[b] << (8 * b);
  return v;
}

/* The byte layout documented in docs/ckks.md, rebuilt field by field. */
static void test_layout(void **state) {
  fixture *f = *state;
  uint8_t *buf = NULL;
  size_t len = 0;
  TU_OK(hetee_ckks_literal_save(f->ctx, &buf, &len));
  size_t nt = 4, want_len = 52 + 4 * 4 + 8 + 3 + 1 + 8 * nt;
  uint8_t *exp = calloc(1, want_len);
  memcpy(exp, "HETE", 4);
  exp[4] = 52;
  exp[6] = 2; /* format version 2 */
  exp[8] = HETEE_OBJ_PARAMS;
  for (int b = 0; b < 8; b++) exp[12 + b] = (uint8_t)(want_len >> (8 * b));
  memcpy(exp + 20, hetee_ckks_context_fingerprint(f->ctx), 32);
  uint8_t *p = exp + 52;
  p[0] = 13, p[4] = 3, p[8] = 1, p[12] = 0;
  double sc = 0x1p40;
  memcpy(p + 16, &sc, 8); /* little-endian host */
  p[24] = 60, p[25] = 40, p[26] = 40, p[27] = 60;
  for (size_t i = 0; i < nt; i++)
    for (int b = 0; b < 8; b++) p[28 + 8 * i + (size_t)b] = (uint8_t)(hetee_ckks_context_prime(f->ctx, (int)i) >> (8 * b));
  assert_int_equal(len, want_len);
  assert_memory_equal(buf, exp, want_len);
  free(exp);
  free(buf);

  /* a seeded ciphertext: header fields, level / size / scale, c0 residues
   * in row order, then the seed */
  double *v = calloc(f->slots, sizeof *v);
  hetee_ckks_ciphertext *ct = enc(f, v, 0);
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, ct, &buf, &len));
  assert_memory_equal(buf, "HETE", 4);
  assert_int_equal(buf[4] | buf[5] << 8, 52);
  assert_int_equal(buf[6] | buf[7] << 8, 2);
  assert_int_equal(buf[8] | buf[9] << 8, HETEE_OBJ_CIPHERTEXT);
  assert_int_equal(buf[10] | buf[11] << 8, 1);
  assert_true(rd64(buf + 12) == len);
  assert_memory_equal(buf + 20, hetee_ckks_context_fingerprint(f->ctx), 32);
  assert_int_equal(buf[52], 2);
  assert_int_equal(buf[56], 2);
  double scale;
  memcpy(&scale, buf + 60, 8);
  assert_true(scale == 0x1p40);
  for (size_t i = 0; i < 3 * 8192; i += 997) {
    uint64_t q = hetee_ckks_context_prime(f->ctx, (int)(i / 8192));
    assert_true(rd64(buf + 68 + 8 * i) < q);
  }
  assert_int_equal(len, 68 + 3 * 8192 * 8 + 32);
  free(buf);
  free(v);
  hetee_ckks_ciphertext_free(ct);
}

static void test_keys_roundtrip(void **state) {
  fixture *f = *state;
  uint8_t *buf = NULL;
  size_t len = 0;
  double *v = malloc(f->slots * sizeof *v), *w = malloc(f->slots * sizeof *w);
  tu_fill(v, f->slots, 21);
  /* secret key: a ciphertext under the original decrypts under the copy */
  hetee_ckks_secret_key *sk2 = NULL;
  TU_OK(hetee_ckks_secret_key_save(f->ctx, f->sk, &buf, &len));
  assert_int_equal(len, 52 + 8192);
  TU_OK(hetee_ckks_secret_key_load(f->ctx, buf, len, &sk2));
  hetee_ckks_ciphertext *ct = enc(f, v, 0);
  tu_check_bits("secret key round trip", dec_bits(f, sk2, ct, v), 28);
  hetee_ckks_secret_key_free(sk2);
  buf[60] = 2; /* coefficient outside {-1,0,1} */
  assert_int_equal(hetee_ckks_secret_key_load(f->ctx, buf, len, &sk2), HETEE_ERR_RANGE);
  assert_null(sk2);
  free(buf);

  /* public key: seeded, encrypt under the loaded copy */
  hetee_ckks_public_key *pk2 = NULL;
  TU_OK(hetee_ckks_public_key_save(f->ctx, f->pk, &buf, &len));
  assert_int_equal(len, 52 + 32 + 4 * 8192 * 8);
  TU_OK(hetee_ckks_public_key_load(f->ctx, buf, len, &pk2));
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *c2 = NULL;
  TU_OK(hetee_ckks_plaintext_new(f->ctx, &pt));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &c2));
  TU_OK(hetee_ckks_encode_real(f->ctx, v, f->slots, 0x1p40, 2, pt));
  TU_OK(hetee_ckks_encrypt_pk(f->ctx, pk2, pt, c2));
  tu_check_bits("public key round trip", dec_bits(f, f->sk, c2, v), 25);
  free(buf);
  hetee_ckks_public_key_free(pk2);

  /* relinearization key */
  hetee_ckks_relin_key *rk2 = NULL;
  TU_OK(hetee_ckks_relin_key_save(f->ctx, f->rk, &buf, &len));
  assert_int_equal(len, 52 + 4 + 8 + 32 + 3 * 4 * 8192 * 8); /* seeded: b only */
  TU_OK(hetee_ckks_relin_key_load(f->ctx, buf, len, &rk2));
  TU_OK(hetee_ckks_eval_mul(f->ctx, ct, ct, c2));
  TU_OK(hetee_ckks_eval_relin(f->ctx, rk2, c2, c2));
  TU_OK(hetee_ckks_eval_rescale(f->ctx, c2, c2));
  for (size_t i = 0; i < f->slots; i++) w[i] = v[i] * v[i];
  tu_check_bits("relin key round trip", dec_bits(f, f->sk, c2, w), 24);
  free(buf);
  hetee_ckks_relin_key_free(rk2);

  /* Galois keys */
  hetee_ckks_galois_keys *gk2 = NULL;
  TU_OK(hetee_ckks_galois_keys_save(f->ctx, f->gk, &buf, &len));
  TU_OK(hetee_ckks_galois_keys_load(f->ctx, buf, len, &gk2));
  assert_true(hetee_ckks_galois_keys_has_step(gk2, -3));
  assert_false(hetee_ckks_galois_keys_has_step(gk2, 2));
  TU_OK(hetee_ckks_eval_rotate(f->ctx, gk2, ct, -3, c2));
  for (size_t i = 0; i < f->slots; i++) w[i] = v[(i + f->slots - 3) % f->slots];
  tu_check_bits("Galois keys round trip", dec_bits(f, f->sk, c2, w), 23);
  hetee_ckks_galois_keys_free(gk2);
  /* first key's Galois element made even */
  buf[52 + 8] ^= 1;
  assert_int_equal(hetee_ckks_galois_keys_load(f->ctx, buf, len, &gk2), HETEE_ERR_FORMAT);
  assert_null(gk2);
  free(buf);

  hetee_ckks_plaintext_free(pt);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_ciphertext_free(c2);
  free(v);
  free(w);
}

static void test_data_roundtrip(void **state) {
  fixture *f = *state;
  uint8_t *buf = NULL;
  size_t len = 0, len_pk = 0, len_sk = 0;
  double *v = malloc(f->slots * sizeof *v), *got = malloc(f->slots * sizeof *got),
         *ref = malloc(f->slots * sizeof *ref);
  tu_fill(v, f->slots, 22);
  /* plaintext: identical decoding */
  hetee_ckks_plaintext *pt = NULL, *pt2 = NULL;
  TU_OK(hetee_ckks_plaintext_new(f->ctx, &pt));
  TU_OK(hetee_ckks_encode_real(f->ctx, v, f->slots, 0x1p40, 1, pt));
  TU_OK(hetee_ckks_plaintext_save(f->ctx, pt, &buf, &len));
  TU_OK(hetee_ckks_plaintext_load(f->ctx, buf, len, &pt2));
  TU_OK(hetee_ckks_decode_real(f->ctx, pt, ref, f->slots));
  TU_OK(hetee_ckks_decode_real(f->ctx, pt2, got, f->slots));
  assert_memory_equal(ref, got, f->slots * sizeof *got);
  assert_int_equal(hetee_ckks_plaintext_level(pt2), 1);
  free(buf);
  hetee_ckks_plaintext_free(pt2);

  /* ciphertexts: seeded (secret key) is about half of full (public key) */
  hetee_ckks_ciphertext *cs = enc(f, v, 0), *cp = enc(f, v, 1), *c2 = NULL, *c3 = NULL;
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, cp, &buf, &len_pk));
  TU_OK(hetee_ckks_ciphertext_load(f->ctx, buf, len_pk, &c2));
  assert_int_equal(len_pk, 52 + 16 + 2 * 3 * 8192 * 8);
  tu_check_bits("ciphertext (pk) round trip", dec_bits(f, f->sk, c2, v), 25);
  free(buf);
  hetee_ckks_ciphertext_free(c2);
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, cs, &buf, &len_sk));
  assert_int_equal(len_sk, 52 + 16 + 3 * 8192 * 8 + 32);
  TU_OK(hetee_ckks_ciphertext_load(f->ctx, buf, len_sk, &c2));
  tu_check_bits("ciphertext (sk, seeded) round trip", dec_bits(f, f->sk, c2, v), 28);
  /* the loaded seeded ciphertext is saved seeded again, byte for byte */
  uint8_t *buf2 = NULL;
  size_t len2 = 0;
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, c2, &buf2, &len2));
  assert_int_equal(len2, len_sk);
  assert_memory_equal(buf, buf2, len2);
  free(buf2);
  free(buf);
  /* modified: saved in full */
  TU_OK(hetee_ckks_eval_add(f->ctx, c2, cs, c2));
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, c2, &buf, &len));
  assert_int_equal(len, len_pk);
  free(buf);
  /* size 3 */
  TU_OK(hetee_ckks_eval_mul(f->ctx, cs, cp, c2));
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, c2, &buf, &len));
  TU_OK(hetee_ckks_ciphertext_load(f->ctx, buf, len, &c3));
  assert_int_equal(hetee_ckks_ciphertext_size(c3), 3);
  TU_OK(hetee_ckks_eval_relin(f->ctx, f->rk, c3, c3));
  TU_OK(hetee_ckks_eval_rescale(f->ctx, c3, c3));
  for (size_t i = 0; i < f->slots; i++) ref[i] = v[i] * v[i];
  tu_check_bits("size-3 ciphertext round trip", dec_bits(f, f->sk, c3, ref), 24);
  free(buf);
  hetee_ckks_ciphertext_free(c3);
  hetee_ckks_ciphertext_free(c2);
  hetee_ckks_ciphertext_free(cs);
  hetee_ckks_ciphertext_free(cp);
  hetee_ckks_plaintext_free(pt);
  free(v);
  free(got);
  free(ref);
}

/* save_size / save_to give save's bytes; load_into gives load's object,
 * reusing one ciphertext object across sizes, levels and seeded / full
 * forms. */
static void test_buffer_variants(void **state) {
  fixture *f = *state;
  double *v = malloc(f->slots * sizeof *v);
  tu_fill(v, f->slots, 31);
  hetee_ckks_ciphertext *cs = enc(f, v, 0), *cp = enc(f, v, 1), *c3 = NULL, *c1 = NULL, *into = NULL;
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &c3));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &c1));
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &into));
  TU_OK(hetee_ckks_eval_mul(f->ctx, cs, cp, c3));
  TU_OK(hetee_ckks_eval_drop_level(f->ctx, cp, 1, c1));
  hetee_ckks_ciphertext *all[5] = {cs, c3, c1, cp, cs};
  for (int k = 0; k < 5; k++) {
    uint8_t *want = NULL, *got = NULL, *again = NULL;
    size_t wl = 0, sz = 0, gl = 0, al = 0;
    TU_OK(hetee_ckks_ciphertext_save(f->ctx, all[k], &want, &wl));
    TU_OK(hetee_ckks_ciphertext_save_size(f->ctx, all[k], &sz));
    assert_int_equal(sz, wl);
    got = malloc(wl + 5);
    assert_int_equal(hetee_ckks_ciphertext_save_to(f->ctx, all[k], got, wl - 1, &gl), HETEE_ERR_LIMIT);
    assert_int_equal(gl, 0);
    TU_OK(hetee_ckks_ciphertext_save_to(f->ctx, all[k], got, wl + 5, &gl));
    assert_int_equal(gl, wl);
    assert_memory_equal(got, want, wl);
    TU_OK(hetee_ckks_ciphertext_load_into(f->ctx, got, gl, into));
    assert_int_equal(hetee_ckks_ciphertext_size(into), hetee_ckks_ciphertext_size(all[k]));
    assert_int_equal(hetee_ckks_ciphertext_level(into), hetee_ckks_ciphertext_level(all[k]));
    assert_true(hetee_ckks_ciphertext_scale(into) == hetee_ckks_ciphertext_scale(all[k]));
    TU_OK(hetee_ckks_ciphertext_save(f->ctx, into, &again, &al));
    assert_int_equal(al, wl);
    assert_memory_equal(again, want, wl); /* seeded stays seeded */
    free(want);
    free(got);
    free(again);
  }
  tu_check_bits("load_into after reuse", dec_bits(f, f->sk, into, v), 28);
  /* argument errors */
  size_t l = 7;
  uint8_t one[1];
  hetee_ckks_ciphertext *empty = NULL;
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &empty));
  assert_int_equal(hetee_ckks_ciphertext_save_size(f->ctx, empty, &l), HETEE_ERR_LEVEL);
  assert_int_equal(l, 0);
  assert_int_equal(hetee_ckks_ciphertext_save_size(f->ctx, NULL, &l), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_ciphertext_save_size(f->ctx, cs, NULL), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_ciphertext_save_to(f->ctx, cs, NULL, 10, &l), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_ciphertext_save_to(f->other, cs, one, 1, &l), HETEE_ERR_CONTEXT);
  assert_int_equal(hetee_ckks_ciphertext_load_into(f->ctx, one, 1, NULL), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_ciphertext_load_into(NULL, one, 1, into), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_ciphertext_level(into), -1);
  hetee_ckks_ciphertext_free(empty);
  hetee_ckks_ciphertext_free(into);
  hetee_ckks_ciphertext_free(c1);
  hetee_ckks_ciphertext_free(c3);
  hetee_ckks_ciphertext_free(cp);
  hetee_ckks_ciphertext_free(cs);
  free(v);
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void put64(uint8_t *p, uint64_t v) {
  for (int b = 0; b < 8; b++) p[b] = (uint8_t)(v >> (8 * b));
}

/* Every header / body corruption of a ciphertext gives its specific code. */
static void test_corrupt(void **state) {
  fixture *f = *state;
  double *v = calloc(f->slots, sizeof *v);
  hetee_ckks_ciphertext *cp = enc(f, v, 1), *o = NULL;
  uint8_t *buf = NULL, *b = NULL;
  size_t len = 0;
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, cp, &buf, &len));
  b = malloc(len + 1);
#define RESET() memcpy(b, buf, len)
  hetee_ckks_ciphertext *into = NULL;
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &into));
  TU_OK(hetee_ckks_ciphertext_copy(cp, into));
  /* load and load_into (reusing one object) give the same code; a failed
   * load_into leaves the object empty */
#define EXPECT(code, l)                                                           \
  do {                                                                          \
    assert_int_equal(hetee_ckks_ciphertext_load(f->ctx, b, (l), &o), (code));   \
    assert_null(o);                                                             \
    assert_int_equal(hetee_ckks_ciphertext_load_into(f->ctx, b, (l), into), (code)); \
    assert_int_equal(hetee_ckks_ciphertext_size(into), 0);                      \
    assert_int_equal(hetee_ckks_ciphertext_level(into), -1);                    \
  } while (0)
  RESET();
  EXPECT(HETEE_ERR_TRUNCATED, len - 1);
  EXPECT(HETEE_ERR_TRUNCATED, 51);
  EXPECT(HETEE_ERR_TRUNCATED, 0);
  b[len] = 0;
  EXPECT(HETEE_ERR_FORMAT, len + 1); /* trailing byte: size differs from the header */
  RESET(); b[0] = 'X';                     EXPECT(HETEE_ERR_FORMAT, len);
  RESET(); put16(b + 4, 48);               EXPECT(HETEE_ERR_FORMAT, len);
  RESET(); put16(b + 6, 3);                EXPECT(HETEE_ERR_VERSION, len);
  /* version 1 expanded seeds with 8 bytes per candidate: refused by name */
  RESET(); put16(b + 6, 1);                EXPECT(HETEE_ERR_VERSION, len);
  assert_non_null(strstr(hetee_last_error(), "version 1 not supported"));
  RESET(); put16(b + 8, HETEE_OBJ_PLAINTEXT); EXPECT(HETEE_ERR_FORMAT, len);
  RESET(); put16(b + 10, 4);               EXPECT(HETEE_ERR_FORMAT, len);
  RESET(); put16(b + 10, 1);               EXPECT(HETEE_ERR_FORMAT, len); /* seeded flag, full body */
  RESET(); put64(b + 12, len + 8);         EXPECT(HETEE_ERR_TRUNCATED, len);
  RESET(); put64(b + 12, len - 8);         EXPECT(HETEE_ERR_FORMAT, len);
  RESET(); b[20 + 5] ^= 0x10;              EXPECT(HETEE_ERR_CONTEXT, len);
  RESET(); b[52] = 3;                      EXPECT(HETEE_ERR_FORMAT, len); /* level 3 > max 2 */
  RESET(); b[52] = 1;                      EXPECT(HETEE_ERR_FORMAT, len); /* level 1: body size wrong */
  RESET(); b[56] = 4;                      EXPECT(HETEE_ERR_FORMAT, len); /* size 4 */
  RESET(); b[56] = 1;                      EXPECT(HETEE_ERR_FORMAT, len);
  RESET(); put64(b + 60, 0x7FF8000000000000ULL); EXPECT(HETEE_ERR_FORMAT, len); /* NaN scale */
  RESET(); put64(b + 60, 0xBFF0000000000000ULL); EXPECT(HETEE_ERR_FORMAT, len); /* scale -1 */
  /* residue >= q in the first row (q_0), in a 40-bit row, in c1 */
  RESET(); put64(b + 68, hetee_ckks_context_prime(f->ctx, 0)); EXPECT(HETEE_ERR_RANGE, len);
  RESET(); put64(b + 68 + 8 * 8192 + 80, hetee_ckks_context_prime(f->ctx, 1)); EXPECT(HETEE_ERR_RANGE, len);
  RESET(); put64(b + len - 8, ~0ULL);      EXPECT(HETEE_ERR_RANGE, len);
  /* a valid object of another parameter set */
  RESET();
  assert_int_equal(hetee_ckks_ciphertext_load(f->other, b, len, &o), HETEE_ERR_CONTEXT);
  hetee_ckks_secret_key *so = NULL;
  hetee_ckks_relin_key *ro = NULL;
  TU_OK(hetee_ckks_keygen_secret(f->other, &so));
  uint8_t *kb = NULL;
  size_t kl = 0;
  TU_OK(hetee_ckks_secret_key_save(f->other, so, &kb, &kl));
  hetee_ckks_secret_key *sk2 = NULL;
  assert_int_equal(hetee_ckks_secret_key_load(f->ctx, kb, kl, &sk2), HETEE_ERR_CONTEXT);
  free(kb);
  TU_OK(hetee_ckks_keygen_relin(f->other, so, &ro));
  TU_OK(hetee_ckks_relin_key_save(f->other, ro, &kb, &kl));
  hetee_ckks_relin_key *rk2 = NULL;
  assert_int_equal(hetee_ckks_relin_key_load(f->ctx, kb, kl, &rk2), HETEE_ERR_CONTEXT);
  /* saving an object under the wrong context */
  uint8_t *xb = NULL;
  size_t xl = 0;
  assert_int_equal(hetee_ckks_relin_key_save(f->ctx, ro, &xb, &xl), HETEE_ERR_CONTEXT);
  free(kb);
  hetee_ckks_relin_key_free(ro);
  hetee_ckks_secret_key_free(so);
#undef RESET
#undef EXPECT
  hetee_ckks_ciphertext_free(into);
  free(b);
  free(buf);
  free(v);
  hetee_ckks_ciphertext_free(cp);
}

/* Random bytes and random mutations of valid objects into every loader. */
static void test_fuzz(void **state) {
  fixture *f = *state;
  int iters = tu_quick() ? 60 : 400;
  uint8_t *objs[7];
  size_t lens[7];
  double *v = calloc(f->slots, sizeof *v);
  hetee_ckks_ciphertext *cs = enc(f, v, 0), *cp = enc(f, v, 1);
  hetee_ckks_plaintext *pt = NULL;
  TU_OK(hetee_ckks_plaintext_new(f->ctx, &pt));
  TU_OK(hetee_ckks_encode_real(f->ctx, v, f->slots, 0x1p40, 0, pt));
  TU_OK(hetee_ckks_literal_save(f->ctx, &objs[0], &lens[0]));
  TU_OK(hetee_ckks_secret_key_save(f->ctx, f->sk, &objs[1], &lens[1]));
  TU_OK(hetee_ckks_public_key_save(f->ctx, f->pk, &objs[2], &lens[2]));
  TU_OK(hetee_ckks_galois_keys_save(f->ctx, f->gk, &objs[3], &lens[3]));
  TU_OK(hetee_ckks_plaintext_save(f->ctx, pt, &objs[4], &lens[4]));
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, cs, &objs[5], &lens[5]));
  TU_OK(hetee_ckks_ciphertext_save(f->ctx, cp, &objs[6], &lens[6]));
  uint64_t s = 99;
  int accepted = 0, rejected = 0;
  hetee_ckks_ciphertext *reuse = NULL;
  TU_OK(hetee_ckks_ciphertext_new(f->ctx, &reuse));
  for (int it = 0; it < iters; it++) {
    int which = (int)(tu_rand(&s) % 7);
    size_t len = lens[which];
    uint8_t *b = malloc(len + 64);
    memcpy(b, objs[which], len);
    int mode = (int)(tu_rand(&s) % 4);
    if (mode == 0) { /* random bytes after a valid header prefix */
      size_t keep = tu_rand(&s) % 60;
      for (size_t i = keep; i < len; i++) b[i] = (uint8_t)tu_rand(&s);
    } else if (mode == 1) { /* flip a few bytes, header-heavy */
      for (int k = 0; k < 3; k++) b[tu_rand(&s) % (tu_rand(&s) & 1 ? 80 : len)] ^= (uint8_t)(1 + tu_rand(&s) % 255);
    } else if (mode == 2) { /* truncate */
      len = tu_rand(&s) % len;
    } else { /* extend with junk, fix the size field */
      size_t extra = 1 + tu_rand(&s) % 63;
      for (size_t i = 0; i < extra; i++) b[len + i] = (uint8_t)tu_rand(&s);
      len += extra;
      if (len >= 20) put64(b + 12, len);
    }
    int rc, rcs[7];
    hetee_ckks_context *c = NULL;
    hetee_ckks_secret_key *sk = NULL;
    hetee_ckks_public_key *pk = NULL;
    hetee_ckks_relin_key *rk = NULL;
    hetee_ckks_galois_keys *gk = NULL;
    hetee_ckks_plaintext *p = NULL;
    hetee_ckks_ciphertext *ct = NULL;
    /* every loader sees every input: wrong types must be refused too */
    rcs[0] = hetee_ckks_context_load(b, len, &c);
    hetee_ckks_context_free(c);
    rcs[1] = hetee_ckks_secret_key_load(f->ctx, b, len, &sk);
    hetee_ckks_secret_key_free(sk);
    rcs[2] = hetee_ckks_public_key_load(f->ctx, b, len, &pk);
    hetee_ckks_public_key_free(pk);
    rc = hetee_ckks_relin_key_load(f->ctx, b, len, &rk);
    assert_true(rc < 0); /* no relinearization key among the seeds */
    hetee_ckks_relin_key_free(rk);
    rcs[3] = hetee_ckks_galois_keys_load(f->ctx, b, len, &gk);
    hetee_ckks_galois_keys_free(gk);
    rcs[4] = hetee_ckks_plaintext_load(f->ctx, b, len, &p);
    hetee_ckks_plaintext_free(p);
    rcs[5] = rcs[6] = hetee_ckks_ciphertext_load(f->ctx, b, len, &ct);
    assert_int_equal(hetee_ckks_ciphertext_load_into(f->ctx, b, len, reuse), rcs[5]);
    if (!rcs[5]) { /* same object either way: saved again, the same bytes */
      uint8_t *x1 = NULL, *x2 = NULL;
      size_t l1 = 0, l2 = 0;
      TU_OK(hetee_ckks_ciphertext_save(f->ctx, ct, &x1, &l1));
      TU_OK(hetee_ckks_ciphertext_save(f->ctx, reuse, &x2, &l2));
      assert_int_equal(l1, l2);
      assert_memory_equal(x1, x2, l1);
      free(x1);
      free(x2);
    }
    rc = rcs[which];
    accepted += rc == 0;
    if (ct) { /* an accepted mutation must still be a usable object */
      hetee_ckks_plaintext *d = NULL;
      TU_OK(hetee_ckks_plaintext_new(f->ctx, &d));
      TU_OK(hetee_ckks_decrypt(f->ctx, f->sk, ct, d));
      hetee_ckks_plaintext_free(d);
    }
    hetee_ckks_ciphertext_free(ct);
    rejected += rc != 0;
    free(b);
  }
  fprintf(stderr, "  fuzz: %d inputs, %d rejected by their own loader, %d accepted\n", iters, rejected, accepted);
  /* most mutations must be caught by the loader of the mutated type (the
   * accepted ones are flips inside residues that stay < q, or in seeds) */
  assert_true(rejected > iters / 2);
  for (int i = 0; i < 7; i++) free(objs[i]);
  hetee_ckks_ciphertext_free(reuse);
  hetee_ckks_ciphertext_free(cs);
  hetee_ckks_ciphertext_free(cp);
  hetee_ckks_plaintext_free(pt);
  free(v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_params),  cmocka_unit_test(test_layout), cmocka_unit_test(test_keys_roundtrip), cmocka_unit_test(test_data_roundtrip),
      cmocka_unit_test(test_buffer_variants), cmocka_unit_test(test_corrupt), cmocka_unit_test(test_fuzz),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

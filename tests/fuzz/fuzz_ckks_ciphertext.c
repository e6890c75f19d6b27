/*
 * fuzz_ckks_ciphertext.c — fuzz target of hetee_ckks_ciphertext_load and
 * hetee_ckks_plaintext_load (serialize.c), selected by the object type in
 * the header so mutants can cross formats. Seeds: a seeded fresh
 * ciphertext, an unseeded one (after an addition), a degree-2 product, one
 * at level 0, the same four in the packed form (flag 4), and plaintexts at
 * both levels. An accepted object must save back to the same bytes (in the
 * form its flags name: packed or not).
 */
#include "fuzz/fuzz.h"
#include "fuzz/fuzz_ckks.h"

const char fuzz_target_name[] = "ckks_ciphertext";
const int fuzz_prefixes_valid = 0;

FUZZ_CKKS_SHARED_CTX

int fuzz_one(const uint8_t *data, size_t len) {
  uint16_t type = fuzz_ckks_obj_type(data, len);
  uint8_t *b = NULL;
  size_t n = 0;
  int rc;
  if (type == HETEE_OBJ_PLAINTEXT) {
    hetee_ckks_plaintext *pt = NULL;
    rc = hetee_ckks_plaintext_load(ctx, data, len, &pt);
    if (rc) {
      FUZZ_CHECK(pt == NULL);
      return rc;
    }
    FUZZ_CHECK(hetee_ckks_plaintext_level(pt) >= 0 && hetee_ckks_plaintext_level(pt) <= 1);
    FUZZ_CHECK(hetee_ckks_plaintext_save(ctx, pt, &b, &n) == 0);
    hetee_ckks_plaintext_free(pt);
  } else {
    hetee_ckks_ciphertext *ct = NULL;
    rc = hetee_ckks_ciphertext_load(ctx, data, len, &ct);
    if (rc) {
      FUZZ_CHECK(ct == NULL);
      return rc;
    }
    FUZZ_CHECK(hetee_ckks_ciphertext_level(ct) >= 0 && hetee_ckks_ciphertext_level(ct) <= 1);
    FUZZ_CHECK(hetee_ckks_ciphertext_size(ct) == 2 || hetee_ckks_ciphertext_size(ct) == 3);
    int packed = len >= 12 && (data[10] & 4); /* the header's flags (accepted: long enough) */
    FUZZ_CHECK((packed ? hetee_ckks_ciphertext_save_packed : hetee_ckks_ciphertext_save)(ctx, ct, &b, &n) == 0);
    hetee_ckks_ciphertext_free(ct);
  }
  return fuzz_check_resaved(b, n, data, len);
}

size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  hetee_ckks_secret_key *sk = NULL;
  hetee_ckks_plaintext *pt = NULL, *pt0 = NULL;
  hetee_ckks_ciphertext *ct = NULL, *sum = NULL, *prod = NULL, *ct0 = NULL;
  double v[8] = {0.5, -1.25, 3.0, 0.0, 7.5, -0.125, 2.0, 1.0};
  FUZZ_CHECK(hetee_ckks_keygen_secret(ctx, &sk) == 0);
  FUZZ_CHECK(hetee_ckks_plaintext_new(ctx, &pt) == 0 && hetee_ckks_plaintext_new(ctx, &pt0) == 0);
  FUZZ_CHECK(hetee_ckks_ciphertext_new(ctx, &ct) == 0 && hetee_ckks_ciphertext_new(ctx, &sum) == 0);
  FUZZ_CHECK(hetee_ckks_ciphertext_new(ctx, &prod) == 0 && hetee_ckks_ciphertext_new(ctx, &ct0) == 0);
  FUZZ_CHECK(hetee_ckks_encode_real(ctx, v, 8, hetee_ckks_context_default_scale(ctx), 1, pt) == 0);
  FUZZ_CHECK(hetee_ckks_encode_real(ctx, v, 8, hetee_ckks_context_default_scale(ctx), 0, pt0) == 0);
  FUZZ_CHECK(hetee_ckks_encrypt_sk(ctx, sk, pt, ct) == 0);
  FUZZ_CHECK(hetee_ckks_encrypt_sk(ctx, sk, pt0, ct0) == 0);
  FUZZ_CHECK(hetee_ckks_eval_add(ctx, ct, ct, sum) == 0);
  FUZZ_CHECK(hetee_ckks_eval_mul(ctx, ct, ct, prod) == 0);
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_ciphertext_save, ctx, ct);   /* seeded, size 2, level 1 */
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_ciphertext_save, ctx, sum);  /* unseeded, size 2 */
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_ciphertext_save, ctx, prod); /* size 3 */
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_ciphertext_save, ctx, ct0);  /* seeded, level 0 */
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_ciphertext_save_packed, ctx, ct);   /* packed: seeded, level 1 */
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_ciphertext_save_packed, ctx, sum);  /* packed: unseeded, size 2 */
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_ciphertext_save_packed, ctx, prod); /* packed: size 3 */
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_ciphertext_save_packed, ctx, ct0);  /* packed: seeded, level 0 */
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_plaintext_save, ctx, pt);
  FUZZ_CKKS_SEED(&s, &n, hetee_ckks_plaintext_save, ctx, pt0);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_ciphertext_free(sum);
  hetee_ckks_ciphertext_free(prod);
  hetee_ckks_ciphertext_free(ct0);
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_plaintext_free(pt0);
  hetee_ckks_secret_key_free(sk);
  *out = s;
  return n;
}

FUZZ_NO_KNOWN_BAD

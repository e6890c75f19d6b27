/*
 * fuzz_refine_files.c — fuzz target of the refine library's file loaders
 * (src/hemat/refine_host.c): a data provider's encrypted batch ("HTRB":
 * hetee_refine_batch_load) and the model provider's encrypted validation
 * set ("HTRV": hetee_refine_valset_load), selected by the magic so mutants
 * can cross formats. Both are checked against one plan, under the fuzz
 * parameters (N = 2^12, level 1 = the top): a dense chain 6 -> 5 (ReLU) ->
 * 3, batch 4, every layer training (so a batch carries layer 0's gradient
 * polynomials). Seeds: batches of 1 and 4 samples (without and with the
 * DP's witness), validation sets of 3 and 6 samples (without and with the
 * MP's witness of each chunk; version 1 is refused). An accepted object must save back to the same bytes.
 */
#include <string.h>

#include <sodium.h>

#include "fuzz/fuzz.h"
#include "fuzz/fuzz_ckks.h"
#include "hetee/refine.h"

const char fuzz_target_name[] = "refine_files";
const int fuzz_prefixes_valid = 0;

static hetee_ckks_context *ctx;
static hetee_refine_plan plan;
static hetee_refine_weights w;

int fuzz_setup(void) {
  ctx = fuzz_ckks_ctx();
  if (!ctx) return -1;
  static const int dims[3] = {6, 5, 3};
  memset(&w, 0, sizeof w);
  w.nl = 2;
  for (int l = 0; l < 2; l++) {
    w.k[l] = dims[l];
    w.m[l] = dims[l + 1];
    w.act[l] = l == 0 ? HETEE_REFINE_ACT_RELU : HETEE_REFINE_ACT_NONE;
    size_t mk = (size_t)dims[l] * (size_t)dims[l + 1];
    w.w[l] = calloc(mk, sizeof(float));
    w.b[l] = calloc((size_t)dims[l + 1], sizeof(float));
    if (!w.w[l] || !w.b[l]) return -1;
    for (size_t q = 0; q < mk; q++) w.w[l][q] = (float)((int)(q * 7 % 11) - 5) / 10.0f;
  }
  hetee_refine_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.batch = 4;
  cfg.accumulate = 1;
  cfg.loss = HETEE_REFINE_LOSS_XENT;
  cfg.lr = 0.1;
  return hetee_refine_plan_build(&w, &cfg, hetee_ckks_context_n(ctx), &plan) ? -1 : 0;
}

void fuzz_teardown(void) {
  hetee_refine_weights_clear(&w);
  hetee_ckks_context_free(ctx);
}

int fuzz_one(const uint8_t *data, size_t len) {
  uint8_t *b = NULL;
  size_t n = 0;
  int rc;
  if (len >= 4 && !memcmp(data, "HTRV", 4)) {
    hetee_refine_valset *vs = NULL;
    rc = hetee_refine_valset_load(ctx, &plan, data, len, &vs);
    if (rc) {
      FUZZ_CHECK(vs == NULL);
      return rc;
    }
    FUZZ_CHECK(hetee_refine_valset_count(vs) >= 1);
    uint8_t d[32];
    FUZZ_CHECK(hetee_refine_valset_labels_digest(vs, d) == 0);
    FUZZ_CHECK(hetee_refine_valset_save(vs, &b, &n) == 0);
    hetee_refine_valset_free(vs);
  } else {
    hetee_refine_batch *rb = NULL;
    rc = hetee_refine_batch_load(ctx, &plan, data, len, &rb);
    if (rc) {
      FUZZ_CHECK(rb == NULL);
      return rc;
    }
    FUZZ_CHECK(hetee_refine_batch_count(rb) >= 1 && hetee_refine_batch_count(rb) <= plan.cfg.batch);
    FUZZ_CHECK(hetee_refine_batch_save(rb, &b, &n) == 0);
    hetee_refine_batch_free(rb);
  }
  return fuzz_check_resaved(b, n, data, len);
}

size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  hetee_ckks_secret_key *sk = NULL;
  hetee_ckks_public_key *pk = NULL;
  FUZZ_CHECK(hetee_ckks_keygen_secret(ctx, &sk) == 0);
  FUZZ_CHECK(hetee_ckks_keygen_public(ctx, sk, &pk) == 0);
  float x[6 * 6], labels[6];
  uint32_t idx[4] = {3, 0, 5, 1};
  for (int i = 0; i < 36; i++) x[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
  for (int i = 0; i < 6; i++) labels[i] = (float)(i % 3);
  uint8_t *b = NULL;
  size_t len = 0;
  for (uint32_t count = 1; count <= 4; count += 3) {
    hetee_refine_batch *rb = NULL;
    FUZZ_CHECK(hetee_refine_batch_encrypt(ctx, pk, &plan, x, labels, idx, count, &rb) == 0);
    FUZZ_CHECK(hetee_refine_batch_save(rb, &b, &len) == 0);
    fuzz_seed_add(&s, &n, b, len);
    free(b);
    hetee_refine_batch_free(rb);
  }
  /* batches with the DP's witness and a signed authorization (HTRB v3) */
  uint8_t rpk[32], rsk[32], spk[32], ssk[64];
  crypto_box_keypair(rpk, rsk);
  crypto_sign_keypair(spk, ssk);
  for (uint32_t count = 1; count <= 4; count += 3) {
    hetee_refine_batch *rb = NULL;
    uint8_t *am = NULL, sig[64];
    size_t al = 0;
    FUZZ_CHECK(hetee_refine_batch_encrypt_witness(ctx, pk, &plan, x, labels, idx, count, 7, rpk, 1000 + count, &rb) == 0);
    FUZZ_CHECK(hetee_refine_batch_auth_msg(rb, spk, &am, &al) == 0);
    crypto_sign_detached(sig, NULL, am, al, ssk);
    free(am);
    FUZZ_CHECK(hetee_refine_batch_set_auth(rb, spk, sig) == 0);
    FUZZ_CHECK(hetee_refine_batch_has_witness(rb));
    FUZZ_CHECK(hetee_refine_batch_save(rb, &b, &len) == 0);
    fuzz_seed_add(&s, &n, b, len);
    free(b);
    hetee_refine_batch_free(rb);
  }
  for (uint32_t count = 3; count <= 6; count += 3) {
    hetee_refine_valset *vs = NULL;
    FUZZ_CHECK(hetee_refine_valset_encrypt(ctx, pk, &plan, x, labels, count, &vs) == 0);
    FUZZ_CHECK(hetee_refine_valset_save(vs, &b, &len) == 0);
    fuzz_seed_add(&s, &n, b, len);
    free(b);
    hetee_refine_valset_free(vs);
  }
  /* validation sets with the MP's witness of each chunk, signed (HTRV v2) */
  for (uint32_t count = 3; count <= 6; count += 3) {
    hetee_refine_valset *vs = NULL, *vs2 = NULL;
    FUZZ_CHECK(hetee_refine_valset_encrypt_witness(ctx, pk, &plan, x, labels, count, 7, rpk, &vs) == 0);
    for (uint32_t i = 0; i < hetee_refine_valset_chunks(vs); i++) {
      uint8_t *am = NULL, sig[64];
      size_t al = 0;
      FUZZ_CHECK(hetee_refine_valset_auth_msg(vs, i, spk, &am, &al) == 0);
      crypto_sign_detached(sig, NULL, am, al, ssk);
      free(am);
      FUZZ_CHECK(hetee_refine_valset_set_auth(vs, i, spk, sig) == 0);
    }
    FUZZ_CHECK(hetee_refine_valset_has_witness(vs));
    FUZZ_CHECK(hetee_refine_valset_save(vs, &b, &len) == 0);
    fuzz_seed_add(&s, &n, b, len);
    if (count == 6) { /* the same bytes as version 1 (before the witnesses): refused */
      b[4] = 1;
      FUZZ_CHECK(hetee_refine_valset_load(ctx, &plan, b, len, &vs2) == HETEE_ERR_VERSION);
    }
    free(b);
    hetee_refine_valset_free(vs);
  }
  hetee_ckks_public_key_free(pk);
  hetee_ckks_secret_key_free(sk);
  *out = s;
  return n;
}

FUZZ_NO_KNOWN_BAD

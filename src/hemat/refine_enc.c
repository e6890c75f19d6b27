/*
 * refine_enc.c — encryption of refining objects (weights, biases, scattered
 * activations / deltas, momentum) with the secret key (trusted side) or the
 * public key (model and data providers). Values are saturated at the public
 * bound REFINE_VMAX (hetee_ckks_encode_coeffs_bounded), so nothing depends
 * on them but the ciphertexts.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "hemat/refine_internal.h"

/* ---- the data provider's witness (formats in refine_internal.h) ---- */
static void le_put(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

void refine_witness_digest(uint32_t model, uint64_t batch_no, uint32_t count, const uint8_t *sealed, size_t len,
                           uint8_t out[32]) {
  uint8_t h[sizeof REFINE_WIT_TAG + 4 + 8 + 4 + 8];
  memcpy(h, REFINE_WIT_TAG, sizeof REFINE_WIT_TAG);
  le_put(h + sizeof REFINE_WIT_TAG, model, 4);
  le_put(h + sizeof REFINE_WIT_TAG + 4, batch_no, 8);
  le_put(h + sizeof REFINE_WIT_TAG + 12, count, 4);
  le_put(h + sizeof REFINE_WIT_TAG + 16, (uint64_t)len, 8);
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  crypto_generichash_update(&st, h, sizeof h);
  crypto_generichash_update(&st, sealed, len);
  crypto_generichash_final(&st, out, 32);
}

void refine_batch_auth_bytes(uint32_t model, const uint8_t dp[32], uint64_t batch_no, uint32_t count,
                             const uint8_t digest[32], uint8_t out[REFINE_BATCH_AUTH_LEN]) {
  uint8_t *q = out;
  memcpy(q, REFINE_BATCH_AUTH_TAG, sizeof REFINE_BATCH_AUTH_TAG);
  q += sizeof REFINE_BATCH_AUTH_TAG;
  le_put(q, model, 4);
  memcpy(q + 4, dp, 32);
  le_put(q + 36, batch_no, 8);
  le_put(q + 44, count, 4);
  memcpy(q + 48, digest, 32);
}

void refine_vauth_bytes(uint32_t model, const uint8_t spec_digest[32], const uint8_t mp[32], uint32_t chunk,
                        uint32_t nchunks, uint32_t count, const uint8_t *sealed, size_t len,
                        uint8_t out[REFINE_VAUTH_LEN]) {
  uint8_t *q = out;
  memcpy(q, REFINE_VAUTH_TAG, sizeof REFINE_VAUTH_TAG);
  q += sizeof REFINE_VAUTH_TAG;
  le_put(q, model, 4);
  memcpy(q + 4, spec_digest, 32);
  memcpy(q + 36, mp, 32);
  le_put(q + 68, chunk, 4);
  le_put(q + 72, nchunks, 4);
  le_put(q + 76, count, 4);
  crypto_generichash(q + 80, 32, sealed, len, NULL, 0);
}

static int provider_threads = 1;
void hetee_refine_set_provider_threads(int threads) { provider_threads = threads < 1 ? 1 : threads > 64 ? 64 : threads; }

void refine_free_cts(ct_t **c, size_t n) {
  if (!c) return;
  for (size_t i = 0; i < n; i++) {
    hetee_ckks_ciphertext_free(c[i]);
    c[i] = NULL;
  }
}

static int enc_one(const refine_key *k, const double *coeffs, double scale, ct_t **out) {
  hetee_ckks_plaintext *pt = NULL;
  ct_t *ct = NULL;
  size_t n = hetee_ckks_context_n(k->ctx);
  int rc = hetee_ckks_ciphertext_new(k->ctx, &ct);
  if (!rc && k->sk) /* encode + encrypt in one (one forward NTT per prime fewer; seeded) */
    rc = hetee_ckks_encrypt_sk_coeffs_bounded(k->ctx, k->sk, coeffs, n, scale, REFINE_LEVEL, REFINE_VMAX, ct);
  else {
    if (!rc) rc = hetee_ckks_plaintext_new(k->ctx, &pt);
    if (!rc) rc = hetee_ckks_encode_coeffs_bounded(k->ctx, coeffs, n, scale, REFINE_LEVEL, REFINE_VMAX, pt);
    if (!rc) rc = hetee_ckks_encrypt_pk(k->ctx, k->pk, pt, ct);
  }
  hetee_ckks_plaintext_free(pt);
  if (rc) {
    hetee_ckks_ciphertext_free(ct);
    return rc;
  }
  if (k->nenc) {
#pragma omp atomic
    (*k->nenc)++;
  }
  *out = ct;
  return 0;
}

int refine_enc_weights(const refine_key *k, const hetee_hemat_layout *L, const float *w, ct_t **out) {
  size_t n = L->n;
  long total = (long)L->nmb * (long)L->ncb;
  /* the providers (public key) encrypt in parallel; the trusted side stays
   * on one thread (its CPU time is measured per thread) */
  int threads = k->pk ? provider_threads : 1;
  int rc = 0;
#pragma omp parallel num_threads(threads) reduction(| : rc)
  {
    double *c = malloc(n * sizeof *c);
    if (!c) rc |= 1;
#pragma omp for schedule(dynamic)
    for (long q = 0; q < total; q++) {
      if (rc || !c) continue;
      int mbk = (int)(q / L->ncb), cbk = (int)(q % L->ncb);
      int r = hetee_hemat_weight_coeffs(L, w, mbk, cbk, c);
      if (!r) r = enc_one(k, c, REFINE_W_SCALE, &out[q]);
      rc |= r != 0;
    }
    if (c) sodium_memzero(c, n * sizeof *c);
    free(c);
  }
  return rc ? hetee_error(HETEE_ERR_CRYPTO, "weight encryption failed") : 0;
}

int refine_enc_bias(const refine_key *k, const hetee_hemat_layout *L, const float *b, ct_t **out) {
  size_t n = L->n;
  double *c = malloc(n * sizeof *c);
  if (!c) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  int rc = 0;
  for (int mbk = 0; mbk < L->nmb && !rc; mbk++) {
    rc = hetee_hemat_bias_coeffs(L, b, mbk, c);
    if (!rc) rc = enc_one(k, c, REFINE_OUT_SCALE, &out[mbk]);
  }
  sodium_memzero(c, n * sizeof *c);
  free(c);
  return rc;
}

int refine_enc_scatter(const refine_key *k, size_t ncts, const uint64_t *pos, const double *v, size_t n, double scale,
                       ct_t **out) {
  size_t N = hetee_ckks_context_n(k->ctx);
  double *c = calloc(ncts * N, sizeof *c);
  if (!c) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    if (pos[i] >= (uint64_t)ncts * N) {
      rc = hetee_error(HETEE_ERR_INTERNAL, "position beyond the ciphertexts");
      break;
    }
    c[pos[i]] = v[i];
  }
  for (size_t i = 0; i < ncts && !rc; i++) rc = enc_one(k, c + i * N, scale, &out[i]);
  sodium_memzero(c, ncts * N * sizeof *c);
  free(c);
  return rc;
}

float *refine_transpose(const float *w, int m, int k) {
  float *t = malloc((size_t)m * (size_t)k * sizeof *t);
  if (!t) return NULL;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < k; j++) t[(size_t)j * (size_t)m + (size_t)i] = w[(size_t)i * (size_t)k + (size_t)j];
  return t;
}

int refine_enc_momentum(const refine_key *key, const float *vw, const float *vb, int m, int k, ct_t **out) {
  size_t N = hetee_ckks_context_n(key->ctx), nv = (size_t)m * (size_t)(k + 1);
  size_t ncts = refine_compact_cts(nv, N);
  double *c = calloc(ncts * N, sizeof *c);
  if (!c) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (int i = 0; i < m; i++) {
    for (int j = 0; j < k; j++) c[(size_t)i * (size_t)(k + 1) + (size_t)j] = vw ? vw[(size_t)i * (size_t)k + (size_t)j] : 0;
    c[(size_t)i * (size_t)(k + 1) + (size_t)k] = vb ? vb[i] : 0;
  }
  int rc = 0;
  for (size_t i = 0; i < ncts && !rc; i++) rc = enc_one(key, c + i * N, HETEE_REFINE_MOM_SCALE, &out[i]);
  sodium_memzero(c, ncts * N * sizeof *c);
  free(c);
  return rc;
}

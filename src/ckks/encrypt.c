/*
 * encrypt.c — CKKS encryption and decryption in NTT form.
 *   public key:    (v b + e0, v a + e1) over Q_l*P, v ternary, e0, e1
 *                  CBD(21), divided by P (ModDown) then + (m, 0): the
 *                  fresh noise is the rounding error, ~ that of secret-key
 *                  encryption (as SEAL does with its special prime),
 *   secret key:    (-a s + e + m, a), a expanded from a fresh 32-byte seed
 *                  (the ciphertext keeps the seed while unmodified),
 *   decryption:    m' = c0 + c1 s (+ c2 s^2), all pointwise in NTT form.
 * Fresh noise is sampled from OS-seeded ChaCha20 streams (ring layer).
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_internal.h"

static int check_pt(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt) {
  int rc = ckks_check_ctx(ctx, pt->fp, "plaintext");
  if (rc) return rc;
  if (pt->level < 0 || pt->level >= ctx->nq) return hetee_error(HETEE_ERR_LEVEL, "plaintext is empty");
  return 0;
}

void ckks_noise_free(hetee_prg *prg, uint8_t seed[HETEE_SEED_BYTES], int8_t *small, size_t small_bytes,
                     uint64_t *scratch, size_t words) {
  hetee_prg_wipe(prg);
  sodium_memzero(seed, HETEE_SEED_BYTES);
  if (small) {
    sodium_memzero(small, small_bytes);
    free(small);
  }
  if (scratch) hetee_free_secure(scratch, words * 8);
}

int hetee_ckks_encrypt_pk(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                          const hetee_ckks_plaintext *pt, hetee_ckks_ciphertext *out) {
  if (!ctx || !pk || !pt || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc;
  if ((rc = ckks_check_ctx(ctx, pk->fp, "public key")) || (rc = check_pt(ctx, pt))) return rc;
  size_t n = ctx->n;
  int l = pt->level, R = l + 1 + ctx->np;
  int primes[CKKS_MAX_PRIMES];
  for (int r = 0; r < R; r++) primes[r] = ckks_ext_prime(ctx, l, r);
  uint8_t seed[HETEE_SEED_BYTES];
  hetee_prg prg;
  int8_t *small = malloc(3 * n);
  /* v, u0 = v b + e0, u1 = v a + e1 over Q_l * P, then scratch */
  size_t words = 3 * (size_t)R * n + (size_t)(ctx->np + l + 1) * n;
  uint64_t *buf = ckks_scratch(words);
  memset(&prg, 0, sizeof prg);
  if (!small || !buf) {
    rc = hetee_error(HETEE_ERR_NOMEM, "encryption buffers");
    goto err;
  }
  uint64_t *vn = buf, *u0 = buf + (size_t)R * n, *u1 = buf + 2 * (size_t)R * n;
  uint64_t *ybuf = buf + 3 * (size_t)R * n, *conv = ybuf + (size_t)ctx->np * n;
  if ((rc = hetee_seed_random(seed))) goto err;
  hetee_prg_init(&prg, seed, 0);
  hetee_sample_ternary(&prg, small, n);
  hetee_sample_cbd(&prg, small + n, n);
  hetee_sample_cbd(&prg, small + 2 * n, n);
  if ((rc = ckks_ct_reserve(ctx, out, l, 2))) goto err;
  ckks_small_to_ntt(ctx, small, primes, R, vn);
  ckks_small_to_ntt(ctx, small + n, primes, R, u0);
  ckks_small_to_ntt(ctx, small + 2 * n, primes, R, u1);
  for (int r = 0; r < R; r++) {
    int t = primes[r];
    const hetee_modulus *m = &ctx->mod[t];
    size_t off = (size_t)r * n, koff = (size_t)t * n;
    /* u0 += v b, u1 += v a */
    hetee_vec_muladd(m, vn + off, pk->b + koff, u0 + off, n);
    hetee_vec_muladd(m, vn + off, pk->a + koff, u1 + off, n);
  }
  /* divide the encryption of zero by P: its noise shrinks to the rounding
   * error (as secret-key encryption), then add the message */
  ckks_moddown(ctx, l, u0, pt->data, out->c[0], ybuf, conv, 1); /* + message */
  ckks_moddown(ctx, l, u1, NULL, out->c[1], ybuf, conv, 1);
  out->scale = pt->scale;
  rc = 0;
err:
  ckks_noise_free(&prg, seed, small, 3 * n, buf, words);
  return rc;
}

int hetee_ckks_encrypt_sk(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                          const hetee_ckks_plaintext *pt, hetee_ckks_ciphertext *out) {
  if (!ctx || !sk || !pt || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc;
  if ((rc = ckks_check_ctx(ctx, sk->fp, "secret key")) || (rc = check_pt(ctx, pt))) return rc;
  size_t n = ctx->n;
  int l = pt->level, rows = l + 1;
  int primes[HETEE_CKKS_MAX_Q];
  for (int i = 0; i < rows; i++) primes[i] = i;
  uint8_t eseed[HETEE_SEED_BYTES], aseed[HETEE_SEED_BYTES];
  hetee_prg prg;
  int8_t *e = malloc(n);
  uint64_t *vn = ckks_scratch((size_t)rows * n);
  memset(&prg, 0, sizeof prg);
  if (!e || !vn) {
    rc = hetee_error(HETEE_ERR_NOMEM, "encryption buffers");
    goto err;
  }
  if ((rc = hetee_seed_random(eseed)) || (rc = hetee_seed_random(aseed))) goto err;
  if ((rc = ckks_ct_reserve(ctx, out, l, 2))) goto err;
  hetee_prg_init(&prg, eseed, 0);
  hetee_sample_cbd(&prg, e, n);
  ckks_expand_uniform(ctx, aseed, CKKS_DOMAIN_CT_A, primes, rows, out->c[1]);
  ckks_small_to_ntt(ctx, e, primes, rows, out->c[0]);
  for (int i = 0; i < rows; i++) {
    const hetee_modulus *m = &ctx->mod[i];
    size_t off = (size_t)i * n;
    uint64_t *c0 = out->c[0] + off, *tmp = vn + off;
    /* c0 = e + m - a s */
    hetee_vec_mul(m, out->c[1] + off, sk->s + off, tmp, n);
    hetee_vec_add(m, c0, pt->data + off, c0, n);
    hetee_vec_sub(m, c0, tmp, c0, n);
  }
  out->scale = pt->scale;
  out->seeded = 1;
  memcpy(out->seed, aseed, sizeof aseed);
  rc = 0;
err:
  ckks_noise_free(&prg, eseed, e, n, vn, (size_t)rows * n);
  return rc;
}

int hetee_ckks_decrypt(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                       const hetee_ckks_ciphertext *ct, hetee_ckks_plaintext *out) {
  if (!ctx || !sk || !ct || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc;
  if ((rc = ckks_check_ctx(ctx, sk->fp, "secret key")) || (rc = ckks_check_ctx(ctx, ct->fp, "ciphertext")))
    return rc;
  if (ct->level < 0 || ct->level >= ctx->nq) return hetee_error(HETEE_ERR_LEVEL, "ciphertext is empty");
  if (ct->size < 2 || ct->size > 3) return hetee_error(HETEE_ERR_FORM, "ciphertext size %d", ct->size);
  size_t n = ctx->n;
  int l = ct->level;
  if ((rc = ckks_pt_reserve(ctx, out, l))) return rc;
  for (int i = 0; i <= l; i++) {
    const hetee_modulus *m = &ctx->mod[i];
    size_t off = (size_t)i * n;
    const uint64_t *s = sk->s + off;
    uint64_t *o = out->data + off;
    if (ct->size == 2) {
      /* o = c0 + c1 s */
      memcpy(o, ct->c[0] + off, n * 8);
      hetee_vec_muladd(m, ct->c[1] + off, s, o, n);
    } else {
      /* o = c0 + s (c1 + s c2) */
      memcpy(o, ct->c[1] + off, n * 8);
      hetee_vec_muladd(m, ct->c[2] + off, s, o, n);
      hetee_vec_mul(m, o, s, o, n);
      hetee_vec_add(m, o, ct->c[0] + off, o, n);
    }
  }
  out->scale = ct->scale;
  return 0;
}

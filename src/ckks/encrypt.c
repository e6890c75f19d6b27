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

#include "ckks/ckks_arena.h"
#include "ckks/ckks_internal.h"
#include "ring/ring_shoup.h"

static int check_pt(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt) {
  int rc = ckks_check_ctx(ctx, pt->fp, "plaintext");
  if (rc) return rc;
  if (pt->level < 0 || pt->level >= ctx->nq) return hetee_error(HETEE_ERR_LEVEL, "plaintext is empty");
  return 0;
}

void ckks_noise_free(hetee_prg *prg, uint8_t seed[HETEE_SEED_BYTES], int8_t *small, size_t small_bytes,
                     uint64_t *scratch, size_t words) {
  hetee_prg_wipe(prg);
  if (seed) sodium_memzero(seed, HETEE_SEED_BYTES);
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

int ckks_seeds_random(uint8_t eseed[HETEE_SEED_BYTES], uint8_t aseed[HETEE_SEED_BYTES]) {
  /* one draw of OS entropy for both seeds (one getrandom call, not two) */
  uint8_t b[2 * HETEE_SEED_BYTES];
  if (sodium_init() < 0) return hetee_error(HETEE_ERR_CRYPTO, "seed_random: libsodium initialisation failed");
  randombytes_buf(b, sizeof b);
  memcpy(eseed, b, HETEE_SEED_BYTES);
  memcpy(aseed, b + HETEE_SEED_BYTES, HETEE_SEED_BYTES);
  sodium_memzero(b, sizeof b);
  return 0;
}

/* The key's derived rows (ckks_internal.h): s^2, then the Shoup quotients
 * of s and of s^2 (ring_shoup.h), all nt primes, made once per key on
 * first use (secret memory, wiped with the key). Threads racing on the
 * first use each compute them; one copy is kept. NULL when there is no
 * memory for them (callers fall back to s). Which branch runs depends only
 * on whether the rows exist yet (public). */
const uint64_t *ckks_sk_derived(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk_c) {
  hetee_ckks_secret_key *sk = (hetee_ckks_secret_key *)sk_c; /* a cache, not the key's value */
  uint64_t *d = atomic_load_explicit(&sk->derived, memory_order_acquire);
  if (d) return d;
  size_t n = ctx->n, nt = (size_t)ctx->nt;
  d = sodium_malloc(CKKS_SKD_TABLES * nt * n * 8);
  if (!d) return NULL;
  (void)sodium_mlock(d, CKKS_SKD_TABLES * nt * n * 8); /* as the key when the limit allows it */
  for (size_t i = 0; i < nt; i++) {
    const hetee_modulus *m = &ctx->mod[i];
    const uint64_t *s = sk->s + i * n;
    uint64_t *sq = d + (CKKS_SKD_SQ * nt + i) * n;
    hetee_vec_mul(m, s, s, sq, n);
    hetee_vec_shoup_prep(m, s, d + (CKKS_SKD_S_SHOUP * nt + i) * n, n);
    hetee_vec_shoup_prep(m, sq, d + (CKKS_SKD_SQ_SHOUP * nt + i) * n, n);
  }
  uint64_t *expect = NULL;
  if (!atomic_compare_exchange_strong_explicit(&sk->derived, &expect, d, memory_order_acq_rel, memory_order_acquire)) {
    sodium_free(d); /* another thread's copy won */
    return expect;
  }
  return d;
}

/* A coefficient-encoded message still to be rounded into c0
 * (ckks_encrypt_sk_coeffs_seeded). */
typedef struct coef_msg {
  const double *v;
  size_t n;
  int bounded;
  double vmax;
  /* > 0: v (= vw, N values, clobbered) is already scaled; round at this
   * bound as ckks_round_to_rns_bounded (ckks_encrypt_sk_scaled) */
  double cmax;
  double *vw;
} coef_msg;

/* (-a s + e + m, a) at `level` from the given seeds (e from the CBD stream
 * of eseed, a expanded from aseed). The message comes in NTT form (m_ntt,
 * rows 0..level) or as real coefficients rounded here into c0 (cm: values
 * to scale, or already scaled with cm->cmax > 0 for the slot encoder), with
 * e added to the integers before they are reduced when the encoder's
 * one-pass path applies. Without m_ntt, e is
 * added in the coefficient domain and each row takes ONE forward NTT,
 * NTT(m + e) = NTT(m) + NTT(e) exactly (the NTT is linear mod q and both
 * sides are fully reduced), so all forms give the same ciphertext. c0 -= a s
 * is one pass of Shoup products by s (quotients from ckks_sk_derived). */
static int encrypt_sk_core(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, int level, double scale,
                           const uint64_t *m_ntt, const coef_msg *cm, const uint8_t eseed[HETEE_SEED_BYTES],
                           const uint8_t aseed[HETEE_SEED_BYTES], hetee_ckks_ciphertext *out) {
  size_t n = ctx->n;
  int rows = level + 1, rc = 0;
  int primes[HETEE_CKKS_MAX_Q];
  for (int i = 0; i < rows; i++) primes[i] = i;
  hetee_prg prg;
  /* the noise and one row of scratch (temporaries: from the thread's arena
   * when the enclave set one, ckks_arena.h) */
  int8_t *e = ckks_tmp_alloc(n);
  uint64_t *tmp = e ? ckks_tmp_alloc(n * 8) : NULL;
  memset(&prg, 0, sizeof prg);
  if (!e || !tmp) {
    rc = hetee_error(HETEE_ERR_NOMEM, "encryption buffers");
    goto err;
  }
  const uint64_t *der = ckks_sk_derived(ctx, sk), *sp = der ? der + CKKS_SKD_S_SHOUP * (size_t)ctx->nt * n : NULL;
  hetee_prg_init(&prg, eseed, 0);
  hetee_sample_cbd(&prg, e, n);
  int with_e = 0; /* c0 already holds m + e (public: the path) */
  if (cm && cm->cmax > 0) { /* scaled coefficients: round into c0, with e when the one-pass path applies */
    with_e = ckks_round_noise_scaled(ctx, cm->vw, level, cm->cmax, e, out->c[0]);
    if (with_e < 0) {
      rc = with_e;
      goto err;
    }
    if (!with_e && (rc = ckks_round_to_rns_bounded(ctx, cm->vw, level, cm->cmax, out->c[0]))) goto err;
  } else if (cm) { /* round the message into c0, with e when the one-pass path applies */
    if (cm->bounded) with_e = ckks_coeffs_round_noise(ctx, cm->v, cm->n, scale, level, cm->vmax, e, out->c[0]);
    if (with_e < 0) {
      rc = with_e;
      goto err;
    }
    if (!with_e && (rc = ckks_coeffs_round(ctx, cm->v, cm->n, scale, level, cm->bounded, cm->vmax, out->c[0])))
      goto err;
  }
  ckks_expand_uniform(ctx, aseed, CKKS_DOMAIN_CT_A, primes, rows, out->c[1]);
  for (int i = 0; i < rows; i++) {
    const hetee_modulus *m = &ctx->mod[i];
    size_t off = (size_t)i * n;
    uint64_t *c0 = out->c[0] + off;
    if (m_ntt) { /* c0 = NTT(e) + m */
      hetee_vec_from_small(m, e, tmp, n);
      hetee_ntt_forward(ctx->ntt[i], tmp);
      hetee_vec_add(m, tmp, m_ntt + off, c0, n);
    } else { /* c0 = NTT(m + e) */
      if (!with_e) {
        hetee_vec_from_small(m, e, tmp, n);
        hetee_vec_add(m, c0, tmp, c0, n);
      }
      hetee_ntt_forward(ctx->ntt[i], c0);
    }
    /* c0 -= a s: one pass, Shoup products with the key's precomputed
     * quotients (the same residues) */
    if (sp)
      hetee_vec_shoup_sub(m, c0, out->c[1] + off, sk->s + off, sp + off, c0, n);
    else {
      hetee_vec_mul(m, out->c[1] + off, sk->s + off, tmp, n);
      hetee_vec_sub(m, c0, tmp, c0, n);
    }
  }
  out->scale = scale;
  out->seeded = 1;
  memcpy(out->seed, aseed, HETEE_SEED_BYTES);
err:
  hetee_prg_wipe(&prg);
  ckks_tmp_free(tmp, n * 8, 1);
  ckks_tmp_free(e, n, 1);
  return rc;
}

int ckks_encrypt_sk_scaled(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, double *coef, int level,
                           double scale, double cmax, const uint8_t eseed[HETEE_SEED_BYTES],
                           const uint8_t aseed[HETEE_SEED_BYTES], hetee_ckks_ciphertext *out) {
  coef_msg cm = {coef, ctx->n, 1, 0, cmax, coef};
  return encrypt_sk_core(ctx, sk, level, scale, NULL, &cm, eseed, aseed, out);
}

int ckks_encrypt_sk_seeded(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                           const hetee_ckks_plaintext *pt, const uint8_t eseed[HETEE_SEED_BYTES],
                           const uint8_t aseed[HETEE_SEED_BYTES], hetee_ckks_ciphertext *out) {
  int rc = ckks_ct_reserve(ctx, out, pt->level, 2);
  if (!rc) rc = encrypt_sk_core(ctx, sk, pt->level, pt->scale, pt->data, NULL, eseed, aseed, out);
  if (rc) out->level = -1;
  return rc;
}

int ckks_encrypt_sk_coeffs_seeded(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, const double *v,
                                  size_t n, double scale, int level, int bounded, double vmax,
                                  const uint8_t eseed[HETEE_SEED_BYTES], const uint8_t aseed[HETEE_SEED_BYTES],
                                  hetee_ckks_ciphertext *out) {
  int rc = ckks_ct_reserve(ctx, out, level, 2);
  /* the rounded message goes straight into c0 (coefficient form; with the
   * noise added in the same pass on the AVX-512 bounded path) */
  coef_msg cm = {v, n, bounded, vmax, 0, NULL};
  if (!rc) rc = encrypt_sk_core(ctx, sk, level, scale, NULL, &cm, eseed, aseed, out);
  if (rc) { /* c0 may hold the message: wipe it */
    if (out->c[0]) sodium_memzero(out->c[0], out->cap_rows * ctx->n * 8);
    out->level = -1;
    out->seeded = 0;
  }
  return rc;
}

int hetee_ckks_encrypt_sk(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                          const hetee_ckks_plaintext *pt, hetee_ckks_ciphertext *out) {
  if (!ctx || !sk || !pt || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc;
  if ((rc = ckks_check_ctx(ctx, sk->fp, "secret key")) || (rc = check_pt(ctx, pt))) return rc;
  uint8_t eseed[HETEE_SEED_BYTES], aseed[HETEE_SEED_BYTES];
  if (!(rc = ckks_seeds_random(eseed, aseed)))
    rc = ckks_encrypt_sk_seeded(ctx, sk, pt, eseed, aseed, out);
  sodium_memzero(eseed, sizeof eseed);
  return rc;
}

static int encrypt_sk_coeffs(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, const double *v,
                             size_t n, double scale, int level, int bounded, double vmax, hetee_ckks_ciphertext *out) {
  if (!out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc;
  uint8_t eseed[HETEE_SEED_BYTES], aseed[HETEE_SEED_BYTES];
  if (!ctx || !sk) rc = hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  else if (!(rc = ckks_check_ctx(ctx, sk->fp, "secret key")) &&
           !(rc = ckks_coeffs_check(ctx, v, n, scale, level, bounded, vmax)) && !(rc = ckks_seeds_random(eseed, aseed)))
    rc = ckks_encrypt_sk_coeffs_seeded(ctx, sk, v, n, scale, level, bounded, vmax, eseed, aseed, out);
  sodium_memzero(eseed, sizeof eseed);
  if (rc) { /* whatever the error, no ciphertext */
    out->level = -1;
    out->seeded = 0;
  }
  return rc;
}

int hetee_ckks_encrypt_sk_coeffs(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, const double *v,
                                 size_t n, double scale, int level, hetee_ckks_ciphertext *out) {
  return encrypt_sk_coeffs(ctx, sk, v, n, scale, level, 0, 0, out);
}

int hetee_ckks_encrypt_sk_coeffs_bounded(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                                         const double *v, size_t n, double scale, int level, double vmax,
                                         hetee_ckks_ciphertext *out) {
  return encrypt_sk_coeffs(ctx, sk, v, n, scale, level, 1, vmax, out);
}

void ckks_decrypt_row(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, const hetee_ckks_ciphertext *ct,
                      int i, uint64_t *o) {
  const hetee_modulus *m = &ctx->mod[i];
  size_t n = ctx->n, nt = (size_t)ctx->nt, off = (size_t)i * n;
  const uint64_t *s = sk->s + off;
  const uint64_t *der = ckks_sk_derived(ctx, sk);
  if (der) {
    /* o = c0 + c1 s (+ c2 s^2): Shoup products with the key's precomputed
     * quotients, one pass (the same residues as below) */
    const uint64_t *sp = der + CKKS_SKD_S_SHOUP * nt * n + off;
    if (ct->size == 2)
      hetee_vec_shoup_dot(m, ct->c[0] + off, ct->c[1] + off, s, sp, NULL, NULL, NULL, o, n);
    else
      hetee_vec_shoup_dot(m, ct->c[0] + off, ct->c[1] + off, s, sp, ct->c[2] + off, der + CKKS_SKD_SQ * nt * n + off,
                          der + CKKS_SKD_SQ_SHOUP * nt * n + off, o, n);
  } else if (ct->size == 2) {
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

int ckks_decrypt_check(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                       const hetee_ckks_ciphertext *ct) {
  int rc;
  if ((rc = ckks_check_ctx(ctx, sk->fp, "secret key")) || (rc = ckks_check_ctx(ctx, ct->fp, "ciphertext")))
    return rc;
  if (ct->level < 0 || ct->level >= ctx->nq) return hetee_error(HETEE_ERR_LEVEL, "ciphertext is empty");
  if (ct->size < 2 || ct->size > 3) return hetee_error(HETEE_ERR_FORM, "ciphertext size %d", ct->size);
  return 0;
}

int hetee_ckks_decrypt(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                       const hetee_ckks_ciphertext *ct, hetee_ckks_plaintext *out) {
  if (!ctx || !sk || !ct || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc;
  if ((rc = ckks_decrypt_check(ctx, sk, ct))) return rc;
  size_t n = ctx->n;
  int l = ct->level;
  if ((rc = ckks_pt_reserve(ctx, out, l))) return rc;
  for (int i = 0; i <= l; i++) ckks_decrypt_row(ctx, sk, ct, i, out->data + (size_t)i * n);
  out->scale = ct->scale;
  return 0;
}

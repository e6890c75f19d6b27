/*
 * context.c — CKKS parameters: the literal -> checked immutable context step.
 * Generates the prime chain (ring layer's hetee_primes_generate), NTT tables,
 * the 128-bit security check against the HomomorphicEncryption.org standard
 * table (ternary secret, classical), the SHA-256 parameter fingerprint, and
 * every precomputed constant: rescale (q_l^-1 mod q_i), hybrid key switching
 * (Han–Ki 2020: digit basis extension to Q_l*P, ModDown by P)
 * and encoder roots (CKKS special FFT).
 */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_internal.h"

int hetee_ckks_max_logqp_128(int log_n) {
  switch (log_n) {
  case 12: return 109;
  case 13: return 218;
  case 14: return 438;
  case 15: return 881;
  case 16: return 1772;
  default: return 0;
  }
}

static void *xcalloc(size_t n, size_t sz) { return n && sz ? calloc(n, sz) : calloc(1, 1); }

void hetee_ckks_context_free(hetee_ckks_context *ctx) {
  if (!ctx) return;
  for (int i = 0; i < ctx->nt; i++) hetee_ntt_tables_free(ctx->ntt[i]);
  if (ctx->rs_inv) {
    for (int l = 0; l < ctx->nq; l++) {
      free(ctx->rs_inv[l]);
      free(ctx->rs_inv_shoup[l]);
      free(ctx->rs_half_mod[l]);
    }
  }
  free(ctx->rs_inv);
  free(ctx->rs_inv_shoup);
  free(ctx->rs_half_mod);
  if (ctx->ks) {
    for (int l = 0; l < ctx->nq; l++) {
      if (!ctx->ks[l].digits) continue;
      for (int j = 0; j < ctx->ks[l].ndigits; j++) {
        free(ctx->ks[l].digits[j].hat_mod);
        free(ctx->ks[l].digits[j].hd_mod);
        free(ctx->ks[l].digits[j].d_mod);
      }
      free(ctx->ks[l].digits);
    }
  }
  free(ctx->ks);
  free(ctx->phat_mod);
  free(ctx->fft_tw);
  free(ctx->rot5);
  free(ctx->bitrev);
  free(ctx);
}

/* Canonical encoding hashed into the fingerprint: "hetee-ckks-v1" | u32 logN |
 * u32 nq | u32 np | u64 primes (LE) | f64 default scale (LE bits). */
static void compute_fingerprint(hetee_ckks_context *ctx) {
  crypto_hash_sha256_state st;
  uint8_t buf[8];
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, (const uint8_t *)"hetee-ckks-v1", 13);
  uint32_t v32[3] = {(uint32_t)ctx->log_n, (uint32_t)ctx->nq, (uint32_t)ctx->np};
  for (int i = 0; i < 3; i++) {
    for (int b = 0; b < 4; b++) buf[b] = (uint8_t)(v32[i] >> (8 * b));
    crypto_hash_sha256_update(&st, buf, 4);
  }
  for (int i = 0; i < ctx->nt; i++) {
    for (int b = 0; b < 8; b++) buf[b] = (uint8_t)(ctx->mod[i].q >> (8 * b));
    crypto_hash_sha256_update(&st, buf, 8);
  }
  uint64_t sbits;
  memcpy(&sbits, &ctx->default_scale, 8);
  for (int b = 0; b < 8; b++) buf[b] = (uint8_t)(sbits >> (8 * b));
  crypto_hash_sha256_update(&st, buf, 8);
  crypto_hash_sha256_final(&st, ctx->fingerprint);
}

static int check_literal(const hetee_ckks_literal *lit) {
  if (lit->log_n < HETEE_CKKS_MIN_LOGN || lit->log_n > HETEE_CKKS_MAX_LOGN)
    return hetee_error(HETEE_ERR_PARAMS, "log_n = %d outside [%d, %d]", lit->log_n, HETEE_CKKS_MIN_LOGN,
                       HETEE_CKKS_MAX_LOGN);
  if (lit->nq < 1 || lit->nq > HETEE_CKKS_MAX_Q)
    return hetee_error(HETEE_ERR_PARAMS, "nq = %d outside [1, %d]", lit->nq, HETEE_CKKS_MAX_Q);
  if (lit->np < 1 || lit->np > HETEE_CKKS_MAX_P)
    return hetee_error(HETEE_ERR_PARAMS, "np = %d outside [1, %d]", lit->np, HETEE_CKKS_MAX_P);
  for (int i = 0; i < lit->nq; i++)
    if (lit->q_bits[i] < 20 || lit->q_bits[i] > HETEE_RING_MAX_PRIME_BITS)
      return hetee_error(HETEE_ERR_PARAMS, "q_bits[%d] = %d outside [20, %d]", i, lit->q_bits[i],
                         HETEE_RING_MAX_PRIME_BITS);
  for (int i = 0; i < lit->np; i++)
    if (lit->p_bits[i] < 20 || lit->p_bits[i] > HETEE_RING_MAX_PRIME_BITS)
      return hetee_error(HETEE_ERR_PARAMS, "p_bits[%d] = %d outside [20, %d]", i, lit->p_bits[i],
                         HETEE_RING_MAX_PRIME_BITS);
  if (!(isfinite(lit->default_scale) && lit->default_scale >= 0.0))
    return hetee_error(HETEE_ERR_PARAMS, "default_scale must be finite and >= 0");
  /* Hybrid key switching needs P >= each digit product (roughly), else the
   * key-switching noise is not divided away. Digits have np primes. */
  int pbits = 0, maxq = 0;
  for (int i = 0; i < lit->np; i++) pbits += lit->p_bits[i];
  for (int j = 0; j < lit->nq; j += lit->np) {
    int d = 0;
    for (int i = j; i < j + lit->np && i < lit->nq; i++) d += lit->q_bits[i];
    if (d > maxq) maxq = d;
  }
  if (pbits < maxq)
    return hetee_error(HETEE_ERR_PARAMS, "special primes (%d bits) smaller than a key-switching digit (%d bits)",
                       pbits, maxq);
  return 0;
}

/* Total bits of the prime chain, as log2 of the product (what the standard
 * table bounds). Computed from the actual primes. */
static double chain_log2(const hetee_ckks_context *ctx) {
  double s = 0;
  for (int i = 0; i < ctx->nt; i++) s += log2((double)ctx->mod[i].q);
  return s;
}

static int build_rescale(hetee_ckks_context *ctx) {
  int nq = ctx->nq;
  ctx->rs_inv = xcalloc((size_t)nq, sizeof(uint64_t *));
  ctx->rs_inv_shoup = xcalloc((size_t)nq, sizeof(uint64_t *));
  ctx->rs_half_mod = xcalloc((size_t)nq, sizeof(uint64_t *));
  if (!ctx->rs_inv || !ctx->rs_inv_shoup || !ctx->rs_half_mod) return HETEE_ERR_NOMEM;
  for (int l = 0; l < nq; l++) {
    ctx->rs_inv[l] = xcalloc((size_t)l + 1, 8);
    ctx->rs_inv_shoup[l] = xcalloc((size_t)l + 1, 8);
    ctx->rs_half_mod[l] = xcalloc((size_t)l + 1, 8);
    if (!ctx->rs_inv[l] || !ctx->rs_inv_shoup[l] || !ctx->rs_half_mod[l]) return HETEE_ERR_NOMEM;
    uint64_t ql = ctx->mod[l].q;
    for (int i = 0; i < l; i++) {
      const hetee_modulus *m = &ctx->mod[i];
      uint64_t inv = hetee_mod_inv(hetee_mod_reduce64(ql, m), m);
      ctx->rs_inv[l][i] = inv;
      ctx->rs_inv_shoup[l][i] = hetee_shoup_prep(inv, m->q);
      ctx->rs_half_mod[l][i] = hetee_mod_reduce64(ql >> 1, m);
    }
  }
  return 0;
}

static int build_keyswitch(hetee_ckks_context *ctx) {
  int nq = ctx->nq, np = ctx->np, nt = ctx->nt, alpha = ctx->alpha;
  ctx->ks = xcalloc((size_t)nq, sizeof(ckks_level_ks));
  if (!ctx->ks) return HETEE_ERR_NOMEM;
  for (int l = 0; l < nq; l++) {
    int nd = (l + 1 + alpha - 1) / alpha;
    ctx->ks[l].ndigits = nd;
    ctx->ks[l].digits = xcalloc((size_t)nd, sizeof(ckks_digit));
    if (!ctx->ks[l].digits) return HETEE_ERR_NOMEM;
    for (int j = 0; j < nd; j++) {
      ckks_digit *d = &ctx->ks[l].digits[j];
      d->first = j * alpha;
      d->count = (j + 1) * alpha <= l + 1 ? alpha : l + 1 - j * alpha;
      d->hat_mod = xcalloc((size_t)d->count * (size_t)nt, 8);
      d->hd_mod = xcalloc((size_t)nt, 8);
      d->d_mod = xcalloc((size_t)nt, 8);
      if (!d->hat_mod || !d->hd_mod || !d->d_mod) return HETEE_ERR_NOMEM;
      for (int t = 0; t < nt; t++) {
        const hetee_modulus *mt = &ctx->mod[t];
        uint64_t dm = 1;
        for (int b = 0; b < d->count; b++) dm = hetee_mod_mul(dm, hetee_mod_reduce64(ctx->mod[d->first + b].q, mt), mt);
        /* floor(D/2) = (D - 1)/2 for odd D */
        uint64_t h = hetee_mod_mul(hetee_mod_sub(dm, 1, mt->q), (mt->q + 1) / 2, mt);
        d->hd_mod[t] = h;
        d->d_mod[t] = dm;
        if (t >= d->first && t < d->first + d->count) d->hd_src[t - d->first] = h;
      }
      for (int a = 0; a < d->count; a++) {
        int pi = d->first + a;
        /* (D/q_pi) mod q_pi and mod every prime t */
        const hetee_modulus *mi = &ctx->mod[pi];
        uint64_t hat_i = 1;
        for (int b = 0; b < d->count; b++)
          if (b != a) hat_i = hetee_mod_mul(hat_i, hetee_mod_reduce64(ctx->mod[d->first + b].q, mi), mi);
        d->hat_inv[a] = hetee_mod_inv(hat_i, mi);
        d->hat_inv_shoup[a] = hetee_shoup_prep(d->hat_inv[a], mi->q);
        for (int t = 0; t < nt; t++) {
          const hetee_modulus *mt = &ctx->mod[t];
          uint64_t h = 1;
          for (int b = 0; b < d->count; b++)
            if (b != a) h = hetee_mod_mul(h, hetee_mod_reduce64(ctx->mod[d->first + b].q, mt), mt);
          d->hat_mod[(size_t)a * nt + t] = h;
        }
      }
    }
  }
  ctx->phat_mod = xcalloc((size_t)np * (size_t)nq, 8);
  if (!ctx->phat_mod) return HETEE_ERR_NOMEM;
  for (int k = 0; k < np; k++) {
    const hetee_modulus *mk = &ctx->mod[nq + k];
    uint64_t h = 1;
    for (int b = 0; b < np; b++)
      if (b != k) h = hetee_mod_mul(h, hetee_mod_reduce64(ctx->mod[nq + b].q, mk), mk);
    ctx->phat_inv[k] = hetee_mod_inv(h, mk);
    ctx->phat_inv_shoup[k] = hetee_shoup_prep(ctx->phat_inv[k], mk->q);
    for (int i = 0; i < nq; i++) {
      const hetee_modulus *mi = &ctx->mod[i];
      uint64_t hm = 1;
      for (int b = 0; b < np; b++)
        if (b != k) hm = hetee_mod_mul(hm, hetee_mod_reduce64(ctx->mod[nq + b].q, mi), mi);
      ctx->phat_mod[(size_t)k * nq + i] = hm;
    }
  }
  /* floor(P/2) = (P - 1) / 2 mod m = (P mod m - 1) * 2^-1 mod m (P odd) */
  for (int t = 0; t < nt; t++) {
    const hetee_modulus *mt = &ctx->mod[t];
    uint64_t p = 1;
    for (int k = 0; k < np; k++) p = hetee_mod_mul(p, hetee_mod_reduce64(ctx->mod[nq + k].q, mt), mt);
    uint64_t h = hetee_mod_mul(hetee_mod_sub(p, 1, mt->q), (mt->q + 1) / 2, mt);
    if (t < nq) ctx->hp_q[t] = h;
    else ctx->hp_p[t - nq] = h;
  }
  for (int i = 0; i < nq; i++) {
    const hetee_modulus *mi = &ctx->mod[i];
    uint64_t p = 1;
    for (int k = 0; k < np; k++) p = hetee_mod_mul(p, hetee_mod_reduce64(ctx->mod[nq + k].q, mi), mi);
    ctx->pmod[i] = p;
    ctx->pinv[i] = hetee_mod_inv(p, mi);
    ctx->pinv_shoup[i] = hetee_shoup_prep(ctx->pinv[i], mi->q);
  }
  return 0;
}

static int build_encoder(hetee_ckks_context *ctx) {
  size_t n = ctx->n, m = 2 * n, slots = n / 2;
  ctx->rot5 = xcalloc(slots, 8);
  ctx->fft_tw = xcalloc(slots, sizeof(double complex));
  ctx->bitrev = xcalloc(slots, 4);
  if (!ctx->rot5 || !ctx->fft_tw || !ctx->bitrev) return HETEE_ERR_NOMEM;
  uint64_t g = 1;
  for (size_t j = 0; j < slots; j++) {
    ctx->rot5[j] = g;
    g = (g * 5) % m;
  }
  for (size_t h = 1; h < slots; h <<= 1) {
    size_t lenq = 8 * h;
    for (size_t j = 0; j < h; j++) {
      size_t k = (ctx->rot5[j] % lenq) * (m / lenq);
      /* long double angle: the table is computed once, accurately */
      long double ang = 2.0L * 3.14159265358979323846264338327950288L * (long double)k / (long double)m;
      ctx->fft_tw[h + j] = (double)cosl(ang) + I * (double)sinl(ang);
    }
  }
  int lb = ctx->log_n - 1;
  for (size_t j = 0; j < slots; j++) {
    uint32_t r = 0;
    for (int b = 0; b < lb; b++) r |= (uint32_t)((j >> b) & 1) << (lb - 1 - b);
    ctx->bitrev[j] = r;
  }
  return 0;
}

int hetee_ckks_context_new(const hetee_ckks_literal *lit, hetee_ckks_context **out) {
  if (!lit || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  int rc = check_literal(lit);
  if (rc) return rc;
  hetee_ckks_context *ctx = xcalloc(1, sizeof *ctx);
  if (!ctx) return hetee_error(HETEE_ERR_NOMEM, "context allocation");
  ctx->lit = *lit;
  ctx->log_n = lit->log_n;
  ctx->n = (size_t)1 << lit->log_n;
  ctx->nq = lit->nq;
  ctx->np = lit->np;
  ctx->nt = lit->nq + lit->np;
  ctx->alpha = lit->np;
  ctx->dnum = (lit->nq + ctx->alpha - 1) / ctx->alpha;
  ctx->default_scale = lit->default_scale > 0 ? lit->default_scale : ldexp(1.0, lit->q_bits[lit->nq - 1]);

  /* Ciphertext primes first, then the special primes excluding them. */
  uint64_t primes[CKKS_MAX_PRIMES];
  rc = hetee_primes_generate(lit->log_n, lit->q_bits, (size_t)lit->nq, NULL, 0, primes);
  if (rc) {
    rc = hetee_error(HETEE_ERR_PARAMS, "cannot generate ciphertext primes: %s", hetee_last_error());
    goto err;
  }
  rc = hetee_primes_generate(lit->log_n, lit->p_bits, (size_t)lit->np, primes, (size_t)lit->nq, primes + lit->nq);
  if (rc) {
    rc = hetee_error(HETEE_ERR_PARAMS, "cannot generate special primes: %s", hetee_last_error());
    goto err;
  }
  for (int i = 0; i < ctx->nt; i++) {
    for (int k = 0; k < i; k++)
      if (primes[k] == primes[i]) {
        rc = hetee_error(HETEE_ERR_PARAMS, "prime chain has duplicates");
        goto err;
      }
    if (hetee_modulus_init(&ctx->mod[i], primes[i])) {
      rc = hetee_error(HETEE_ERR_PARAMS, "bad prime %llu", (unsigned long long)primes[i]);
      goto err;
    }
  }
  {
    int bound = hetee_ckks_max_logqp_128(lit->log_n);
    double total = chain_log2(ctx);
    /* the table bounds log2(QP) as an integer bit count: accept <= bound */
    if (!lit->allow_insecure && ceil(total) > bound) {
      rc = hetee_error(HETEE_ERR_INSECURE, "log2(QP) = %.1f bits exceeds the 128-bit bound %d for logN %d", total,
                       bound, lit->log_n);
      goto err;
    }
  }
  {
    /* default scale must be representable below q_0 * ... sanity: < 2^1000 */
    if (!(ctx->default_scale >= 1.0)) {
      rc = hetee_error(HETEE_ERR_PARAMS, "default scale must be >= 1");
      goto err;
    }
  }
  for (int i = 0; i < ctx->nt; i++) {
    rc = hetee_ntt_tables_new(lit->log_n, primes[i], &ctx->ntt[i]);
    if (rc) goto err;
  }
  if ((rc = build_rescale(ctx)) || (rc = build_keyswitch(ctx)) ||
      (rc = build_encoder(ctx))) {
    rc = hetee_error(rc, "context precomputation failed");
    goto err;
  }
  compute_fingerprint(ctx);
  *out = ctx;
  return 0;
err:
  hetee_ckks_context_free(ctx);
  return rc;
}

int hetee_ckks_context_log_n(const hetee_ckks_context *ctx) { return ctx ? ctx->log_n : 0; }
size_t hetee_ckks_context_n(const hetee_ckks_context *ctx) { return ctx ? ctx->n : 0; }
size_t hetee_ckks_context_slots(const hetee_ckks_context *ctx) { return ctx ? ctx->n / 2 : 0; }
int hetee_ckks_context_max_level(const hetee_ckks_context *ctx) { return ctx ? ctx->nq - 1 : -1; }
double hetee_ckks_context_default_scale(const hetee_ckks_context *ctx) { return ctx ? ctx->default_scale : 0; }
uint64_t hetee_ckks_context_prime(const hetee_ckks_context *ctx, int i) {
  if (!ctx || i < 0 || i >= ctx->nt) return 0;
  return ctx->mod[i].q;
}
int hetee_ckks_context_nq(const hetee_ckks_context *ctx) { return ctx ? ctx->nq : 0; }
int hetee_ckks_context_np(const hetee_ckks_context *ctx) { return ctx ? ctx->np : 0; }
const uint8_t *hetee_ckks_context_fingerprint(const hetee_ckks_context *ctx) { return ctx ? ctx->fingerprint : NULL; }

int ckks_check_ctx(const hetee_ckks_context *ctx, const uint8_t *fp, const char *what) {
  if (!ckks_fp_eq(ctx->fingerprint, fp))
    return hetee_error(HETEE_ERR_CONTEXT, "%s was made under other parameters", what);
  return 0;
}

void hetee_ckks_literal_default(hetee_ckks_literal *lit) {
  if (!lit) return;
  memset(lit, 0, sizeof *lit);
  lit->log_n = 13;
  lit->nq = 3;
  lit->q_bits[0] = 60;
  lit->q_bits[1] = 40;
  lit->q_bits[2] = 40;
  lit->np = 1;
  lit->p_bits[0] = 60;
  lit->default_scale = 0x1p40;
}

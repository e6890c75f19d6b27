/*
 * keyswitch.c — hybrid key switching (Han–Ki, "Better bootstrapping for
 * approximate HE", CT-RSA 2020; GHS special modulus): key generation, the
 * ModUp basis extension of each digit, the inner product with the key and
 * ModDown by P.
 *
 * Digits: alpha = np consecutive ciphertext primes; at level l the digits are
 * {q_0..q_{alpha-1}}, {q_alpha..}, .. truncated at q_l. For digit j with
 * product D_j, the key holds b_j = -a_j s + e_j + P * g_j * s' over Q*P,
 * where g_j = 1 mod the digit's primes and 0 mod every other prime (a CRT
 * gadget that stays valid when a level drops primes). Switching a
 * polynomial d (NTT form, level l):
 *   ModUp:   d_j = [d]_{D_j} taken centered in (-D_j/2, D_j/2), extended
 *            to Q_l*P by fast base conversion (error a small multiple of
 *            D_j, killed by g_j),
 *   inner:   (c0', c1') = sum_j d_j * (b_j, a_j)  over Q_l*P (NTT form),
 *   ModDown: c' <- (c' - conv_P->Q([c']_P)) * P^-1 mod each q_i, with the
 *            remainder [c']_P centered (+floor(P/2) before, - after), so
 *            the division rounds instead of flooring,
 * giving c0' + c1' s ~ d s' with error ~ sum_j d_j e_j / P + rounding.
 * Hoisting (Halevi–Shoup 2018): the extended digits of one c1 are permuted
 * by each Galois automorphism in NTT form (a permutation of evaluations), so
 * ModUp runs once for many rotations.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_internal.h"

int ckks_ksk_alloc(const hetee_ckks_context *ctx, ckks_ksk *k) {
  size_t words = (size_t)ctx->nt * ctx->n;
  k->dnum = ctx->dnum;
  k->b = calloc((size_t)k->dnum, sizeof(uint64_t *));
  k->a = calloc((size_t)k->dnum, sizeof(uint64_t *));
  if (!k->b || !k->a) return hetee_error(HETEE_ERR_NOMEM, "key allocation");
  for (int j = 0; j < k->dnum; j++) {
    k->b[j] = hetee_alloc(words * 8);
    k->a[j] = hetee_alloc(words * 8);
    if (!k->b[j] || !k->a[j]) return hetee_error(HETEE_ERR_NOMEM, "key allocation");
  }
  return 0;
}

void ckks_ksk_free(ckks_ksk *k) {
  if (!k) return;
  for (int j = 0; j < k->dnum; j++) {
    if (k->b) hetee_free(k->b[j]);
    if (k->a) hetee_free(k->a[j]);
  }
  free(k->b);
  free(k->a);
  free(k->perm);
  k->perm = NULL;
  k->b = k->a = NULL;
  k->dnum = 0;
}

int ckks_ksk_expand(const hetee_ckks_context *ctx, ckks_ksk *k) {
  int primes[CKKS_MAX_PRIMES];
  for (int i = 0; i < ctx->nt; i++) primes[i] = i;
  for (int j = 0; j < k->dnum; j++)
    ckks_expand_uniform(ctx, k->seed, CKKS_DOMAIN_KSK_A + (uint64_t)j, primes, ctx->nt, k->a[j]);
  return 0;
}

int ckks_ksk_gen(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, const uint64_t *sprime,
                 uint64_t galois, ckks_ksk *out) {
  size_t n = ctx->n;
  int nt = ctx->nt, rc;
  int primes[CKKS_MAX_PRIMES];
  uint8_t eseed[HETEE_SEED_BYTES];
  hetee_prg prg;
  int8_t *e = malloc(n);
  uint64_t *ent = hetee_alloc((size_t)nt * n * 8);
  memset(&prg, 0, sizeof prg);
  if (!e || !ent) {
    rc = hetee_error(HETEE_ERR_NOMEM, "key generation buffers");
    goto err;
  }
  for (int i = 0; i < nt; i++) primes[i] = i;
  out->galois = galois;
  if ((rc = hetee_seed_random(out->seed)) || (rc = hetee_seed_random(eseed))) goto err;
  if ((rc = ckks_ksk_alloc(ctx, out)) || (rc = ckks_ksk_expand(ctx, out))) goto err;
  hetee_prg_init(&prg, eseed, 0);
  for (int j = 0; j < out->dnum; j++) {
    hetee_sample_cbd(&prg, e, n);
    ckks_small_to_ntt(ctx, e, primes, nt, ent);
    int lo = j * ctx->alpha, hi = lo + ctx->alpha < ctx->nq ? lo + ctx->alpha : ctx->nq;
    for (int i = 0; i < nt; i++) {
      const hetee_modulus *m = &ctx->mod[i];
      uint64_t *b = out->b[j] + (size_t)i * n;
      const uint64_t *a = out->a[j] + (size_t)i * n, *s = sk->s + (size_t)i * n, *er = ent + (size_t)i * n;
      for (size_t c = 0; c < n; c++) b[c] = hetee_mod_sub(er[c], hetee_mod_mul(a[c], s[c], m), m->q);
      if (i >= lo && i < hi) {
        uint64_t pm = ctx->pmod[i], pms = hetee_shoup_prep(pm, m->q);
        const uint64_t *sp = sprime + (size_t)i * n;
        for (size_t c = 0; c < n; c++) b[c] = hetee_mod_add(b[c], hetee_mod_mul_shoup(sp[c], pm, pms, m->q), m->q);
      }
    }
  }
  rc = 0;
err:
  ckks_noise_free(&prg, eseed, e, n, ent, (size_t)nt * n);
  return rc;
}

size_t ckks_ks_ext_words(const hetee_ckks_context *ctx, int l) {
  return (size_t)ctx->ks[l].ndigits * (size_t)(l + 1 + ctx->np) * ctx->n;
}

size_t ckks_ks_work_words(const hetee_ckks_context *ctx, int l) {
  size_t r = (size_t)(l + 1 + ctx->np);
  size_t modup = (size_t)(l + 2 + ctx->alpha) * ctx->n;
  size_t inner = (2 * r + (size_t)ctx->np + (size_t)(l + 1)) * ctx->n;
  return modup > inner ? modup : inner;
}

void ckks_modup(const hetee_ckks_context *ctx, int l, const uint64_t *d, uint64_t *ext, uint64_t *tmp,
                int threads) {
  size_t n = ctx->n;
  int R = l + 1 + ctx->np;
  const ckks_level_ks *ks = &ctx->ks[l];
  uint64_t *coef = tmp;                      /* l+1 rows, coefficient form */
  uint64_t *ybuf = tmp + (size_t)(l + 1) * n; /* alpha rows + u */
  /* coefficient form of every row with its digit's centering constant
   * floor(D_j/2) added (copy, inverse NTT and addition in one ring call) */
  CKKS_OMP_FOR(threads)
  for (int i = 0; i <= l; i++)
    hetee_ntt_inverse_add(ctx->ntt[i], d + (size_t)i * n, coef + (size_t)i * n,
                          ks->digits[i / ctx->alpha].hd_src[i % ctx->alpha]);
  for (int j = 0; j < ks->ndigits; j++) {
    const ckks_digit *dg = &ks->digits[j];
    uint64_t *e = ext + (size_t)j * R * n;
    /* y_a = [x + floor(D/2)]_{q_a} * (D/q_a)^-1: for a one-prime digit the
     * factor is 1 and y is the coefficient row itself */
    const uint64_t *y = ybuf;
    for (int a = 0; a < dg->count; a++) {
      int pi = dg->first + a;
      const uint64_t *src = coef + (size_t)pi * n;
      uint64_t w = dg->hat_inv[a];
      if (dg->count == 1 && w == 1) y = src;
      else if (w == 1) memcpy(ybuf + (size_t)a * n, src, n * 8);
      else hetee_vec_mul_scalar(&ctx->mod[pi], src, w, ybuf + (size_t)a * n, n);
    }
    /* multi-prime digit: sum_a y_a (D/q_a) = x' + u D, u = floor(sum_a y_a /
     * q_a) < count; subtracting u D makes the extension exact, so the
     * extended digit is the centered one (an uncorrected u adds a
     * non-centered multiple of D, i.e. a smooth error after the product
     * with the key's noise). u goes to the spare row after y. */
    uint64_t *u = ybuf + (size_t)ctx->alpha * n;
    if (dg->count > 1) {
      long double inv[HETEE_CKKS_MAX_P];
      for (int a = 0; a < dg->count; a++) inv[a] = 1.0L / (long double)ctx->mod[dg->first + a].q;
      for (size_t c = 0; c < n; c++) {
        long double f = 0;
        for (int a = 0; a < dg->count; a++) f += (long double)y[(size_t)a * n + c] * inv[a];
        u[c] = (uint64_t)f;
      }
    }
    CKKS_OMP_FOR(threads)
    for (int r = 0; r < R; r++) {
      int t = ckks_ext_prime(ctx, l, r);
      uint64_t *row = e + (size_t)r * n;
      /* own prime: the input row itself (already NTT form) is read by the
       * inner product; this ext row stays unused */
      if (t >= dg->first && t < dg->first + dg->count && t <= l) continue;
      const hetee_modulus *mt = &ctx->mod[t];
      uint64_t qt = mt->q, hd = dg->hd_mod[t];
      if (dg->count == 1) {
        /* row = y mod t * hat - floor(D/2), one pass */
        uint64_t h = dg->hat_mod[t], nhd = hd ? qt - hd : 0;
        if (h == 1 && ctx->mod[dg->first].q < qt) {
          hetee_vec_add_scalar(mt, y, nhd, row, n); /* y < q_j < t: no reduction */
        } else if (h == 1) {
          hetee_vec_reduce_add_scalar(mt, y, nhd, row, n);
        } else {
          hetee_vec_reduce(mt, y, row, n);
          hetee_vec_mul_scalar(mt, row, h, row, n);
          hetee_vec_add_scalar(mt, row, nhd, row, n);
        }
      } else {
        for (size_t c = 0; c < n; c++) {
          unsigned __int128 s = 0;
          for (int a = 0; a < dg->count; a++)
            s += (unsigned __int128)y[(size_t)a * n + c] * dg->hat_mod[(size_t)a * ctx->nt + t];
          uint64_t ud = ckks_reduce64(u[c] * dg->d_mod[t], mt); /* u < count: no overflow */
          row[c] = hetee_mod_sub(hetee_mod_sub(ckks_reduce_u128(s, mt), ud, qt), hd, qt);
        }
      }
      hetee_ntt_forward(ctx->ntt[t], row);
    }
  }
}

/* ModDown of one polynomial acc (R rows over Q_l*P, NTT form); rows 0..l of
 * out = base + round(acc / P) (or just round(acc / P) when base is NULL). */
void ckks_moddown(const hetee_ckks_context *ctx, int l, uint64_t *acc, const uint64_t *base, uint64_t *out,
                  uint64_t *ybuf, uint64_t *conv, int threads) {
  size_t n = ctx->n;
  int np = ctx->np, nq = ctx->nq;
  for (int k = 0; k < np; k++) {
    uint64_t *row = acc + (size_t)(l + 1 + k) * n;
    const hetee_modulus *mp = &ctx->mod[nq + k];
    hetee_ntt_inverse_add(ctx->ntt[nq + k], row, row, ctx->hp_p[k]); /* centered remainder */
    if (np == 1 && ctx->phat_inv[k] == 1) ybuf = row;      /* y_0 is the row itself */
    else hetee_vec_mul_scalar(mp, row, ctx->phat_inv[k], ybuf + (size_t)k * n, n);
  }
  /* np > 1: sum_k y_k (P/p_k) = x' + u P with u = floor(sum_k y_k / p_k)
   * (x' = remainder + floor(P/2) in [0, P)); u is computed in long double
   * and subtracted, making the conversion exact (Halevi–Polyakov–Shoup) —
   * an uncorrected u in [0, np) would add a non-centered error to every
   * coefficient. u is stored in the (no longer needed) first P row. */
  uint64_t *u = acc + (size_t)(l + 1) * n;
  if (np > 1) {
    long double inv[HETEE_CKKS_MAX_P];
    for (int k = 0; k < np; k++) inv[k] = 1.0L / (long double)ctx->mod[nq + k].q;
    for (size_t c = 0; c < n; c++) {
      long double f = 0;
      for (int k = 0; k < np; k++) f += (long double)ybuf[(size_t)k * n + c] * inv[k];
      u[c] = (uint64_t)f;
    }
  }
  CKKS_OMP_FOR(threads)
  for (int i = 0; i <= l; i++) {
    const hetee_modulus *mi = &ctx->mod[i];
    uint64_t q = mi->q;
    uint64_t *cv = conv + (size_t)i * n;
    uint64_t hp = ctx->hp_q[i], nhp = hp ? q - hp : 0;
    if (np == 1) {
      uint64_t h = ctx->phat_mod[i];
      if (h == 1) {
        hetee_vec_reduce_add_scalar(mi, ybuf, nhp, cv, n); /* y mod q_i - floor(P/2) */
      } else {
        hetee_vec_reduce(mi, ybuf, cv, n);
        hetee_vec_mul_scalar(mi, cv, h, cv, n);
        hetee_vec_add_scalar(mi, cv, nhp, cv, n);
      }
    } else {
      for (size_t c = 0; c < n; c++) {
        unsigned __int128 s = 0;
        for (int k = 0; k < np; k++) s += (unsigned __int128)ybuf[(size_t)k * n + c] * ctx->phat_mod[(size_t)k * nq + i];
        uint64_t up = ckks_reduce64(u[c] * ctx->pmod[i], mi); /* u < np: no overflow */
        cv[c] = hetee_mod_sub(hetee_mod_sub(ckks_reduce_u128(s, mi), up, q), hp, q); /* - u P - floor(P/2) */
      }
    }
    hetee_ntt_forward(ctx->ntt[i], cv);
    /* base + (acc - conv) * P^-1, one fused pass */
    hetee_vec_sub_mul_scalar_add(mi, acc + (size_t)i * n, cv, ctx->pinv[i], base ? base + (size_t)i * n : NULL,
                                 out + (size_t)i * n, n);
  }
}

void ckks_ks_inner_moddown(const hetee_ckks_context *ctx, int l, const uint64_t *ext, const uint64_t *d,
                           const uint32_t *perm, const ckks_ksk *k, const uint64_t *base0, uint64_t *out0,
                           const uint64_t *base1, uint64_t *out1, uint64_t *work, int threads) {
  size_t n = ctx->n;
  int R = l + 1 + ctx->np, nd = ctx->ks[l].ndigits;
  uint64_t *acc0 = work, *acc1 = work + (size_t)R * n;
  uint64_t *ybuf = acc1 + (size_t)R * n;
  uint64_t *conv = ybuf + (size_t)ctx->np * n;
  CKKS_OMP_FOR(threads)
  for (int r = 0; r < R; r++) {
    int t = ckks_ext_prime(ctx, l, r);
    const hetee_modulus *mt = &ctx->mod[t];
    const uint64_t *xs[HETEE_CKKS_MAX_Q], *bs[HETEE_CKKS_MAX_Q], *as[HETEE_CKKS_MAX_Q];
    for (int j = 0; j < nd; j++) {
      const ckks_digit *dg = &ctx->ks[l].digits[j];
      int own = t <= l && t >= dg->first && t < dg->first + dg->count;
      xs[j] = own ? d + (size_t)t * n : ext + ((size_t)j * R + r) * n;
      bs[j] = k->b[j] + (size_t)t * n;
      as[j] = k->a[j] + (size_t)t * n;
    }
    /* unreduced sums of the nd digit products, reduced once per few terms;
     * hoisted rotations read the shared extended digits through the
     * Galois permutation (ring kernel, SIMD gathers) */
    hetee_vec_dot2(mt, xs, perm, bs, as, (size_t)nd, acc0 + (size_t)r * n, acc1 + (size_t)r * n, n);
  }
  ckks_moddown(ctx, l, acc0, base0, out0, ybuf, conv, threads);
  ckks_moddown(ctx, l, acc1, base1, out1, ybuf, conv, threads);
}

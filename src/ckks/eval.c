/*
 * eval.c — the CKKS evaluator, except rotations (eval_rotate.c): additions,
 * plaintext / constant operations, ct x ct multiplication to degree 2, lazy
 * degree-2 accumulation, relinearization (hybrid key switching,
 * keyswitch.c), exact rescaling and level dropping.
 *
 * Every polynomial stays in NTT form; only rescale (last prime) and key
 * switching leave it. Rescale is the exact rounded division of the RNS CKKS
 * paper (Cheon–Han–Kim–Kim–Song, SAC 2018): c' = (c - t) / q_l with
 * t = [c + floor(q_l/2)]_{q_l} - floor(q_l/2), i.e. round(c / q_l).
 * Checks: context fingerprint, level equality, scales (relative 2^-20 for
 * additions), sizes. Outputs may alias inputs unless stated in ckks.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_internal.h"

#define SCALE_TOL 0x1p-20

static int check_ct(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, const char *what) {
  int rc = ckks_check_ctx(ctx, ct->fp, what);
  if (rc) return rc;
  if (ct->level < 0 || ct->level >= ctx->nq) return hetee_error(HETEE_ERR_LEVEL, "%s is empty", what);
  if (ct->size < 2 || ct->size > 3) return hetee_error(HETEE_ERR_FORM, "%s has size %d", what, ct->size);
  return 0;
}

static int scales_match(double a, double b) { return fabs(a - b) <= SCALE_TOL * fmax(fabs(a), fabs(b)); }

static int check_binary(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                        const hetee_ckks_ciphertext *b, int check_scale) {
  int rc;
  if ((rc = check_ct(ctx, a, "first ciphertext")) || (rc = check_ct(ctx, b, "second ciphertext"))) return rc;
  if (a->level != b->level)
    return hetee_error(HETEE_ERR_LEVEL, "level mismatch: %d vs %d (use drop_level)", a->level, b->level);
  if (check_scale && !scales_match(a->scale, b->scale))
    return hetee_error(HETEE_ERR_SCALE, "scale mismatch: 2^%.4f vs 2^%.4f", log2(a->scale), log2(b->scale));
  return 0;
}

static int addsub(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a, const hetee_ckks_ciphertext *b,
                  hetee_ckks_ciphertext *out, int sub) {
  if (!ctx || !a || !b || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = check_binary(ctx, a, b, 1);
  if (rc) return rc;
  int l = a->level, sa = a->size, sb = b->size, so = sa > sb ? sa : sb;
  double scale = a->scale;
  size_t n = ctx->n;
  if ((rc = ckks_ct_reserve(ctx, out, l, so))) return rc;
  for (int k = 0; k < so; k++) {
    for (int i = 0; i <= l; i++) {
      const hetee_modulus *m = &ctx->mod[i];
      size_t off = (size_t)i * n;
      uint64_t *o = out->c[k] + off;
      if (k < sa && k < sb) {
        if (sub) hetee_vec_sub(m, a->c[k] + off, b->c[k] + off, o, n);
        else hetee_vec_add(m, a->c[k] + off, b->c[k] + off, o, n);
      } else if (k < sa) {
        if (o != a->c[k] + off) memcpy(o, a->c[k] + off, n * 8);
      } else {
        if (sub) hetee_vec_neg(m, b->c[k] + off, o, n);
        else if (o != b->c[k] + off) memcpy(o, b->c[k] + off, n * 8);
      }
    }
  }
  out->scale = scale;
  return 0;
}

int hetee_ckks_eval_add(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a, const hetee_ckks_ciphertext *b,
                        hetee_ckks_ciphertext *out) {
  return addsub(ctx, a, b, out, 0);
}

int hetee_ckks_eval_sub(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a, const hetee_ckks_ciphertext *b,
                        hetee_ckks_ciphertext *out) {
  return addsub(ctx, a, b, out, 1);
}

int hetee_ckks_eval_negate(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a, hetee_ckks_ciphertext *out) {
  if (!ctx || !a || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = check_ct(ctx, a, "ciphertext");
  if (rc) return rc;
  int l = a->level, sz = a->size;
  double scale = a->scale;
  if ((rc = ckks_ct_reserve(ctx, out, l, sz))) return rc;
  for (int k = 0; k < sz; k++)
    for (int i = 0; i <= l; i++)
      hetee_vec_neg(&ctx->mod[i], a->c[k] + (size_t)i * ctx->n, out->c[k] + (size_t)i * ctx->n, ctx->n);
  out->scale = scale;
  return 0;
}

static int check_plain(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a, const hetee_ckks_plaintext *p) {
  int rc = check_ct(ctx, a, "ciphertext");
  if (rc) return rc;
  if ((rc = ckks_check_ctx(ctx, p->fp, "plaintext"))) return rc;
  if (p->level < 0) return hetee_error(HETEE_ERR_LEVEL, "plaintext is empty");
  if (p->level < a->level)
    return hetee_error(HETEE_ERR_LEVEL, "plaintext level %d below ciphertext level %d", p->level, a->level);
  return 0;
}

/* Copies the polynomials of a (other than `skip`) into out when out != a. */
static void copy_rest(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a, hetee_ckks_ciphertext *out,
                      int skip) {
  if (out == a) return;
  for (int k = 0; k < a->size; k++)
    if (k != skip) memcpy(out->c[k], a->c[k], (size_t)(a->level + 1) * ctx->n * 8);
}

static int addsub_plain(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a, const hetee_ckks_plaintext *p,
                        hetee_ckks_ciphertext *out, int sub) {
  if (!ctx || !a || !p || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = check_plain(ctx, a, p);
  if (rc) return rc;
  if (!scales_match(a->scale, p->scale))
    return hetee_error(HETEE_ERR_SCALE, "scale mismatch: 2^%.4f vs 2^%.4f", log2(a->scale), log2(p->scale));
  int l = a->level, sz = a->size;
  double scale = a->scale;
  if ((rc = ckks_ct_reserve(ctx, out, l, sz))) return rc;
  copy_rest(ctx, a, out, 0);
  for (int i = 0; i <= l; i++) {
    size_t off = (size_t)i * ctx->n;
    if (sub) hetee_vec_sub(&ctx->mod[i], a->c[0] + off, p->data + off, out->c[0] + off, ctx->n);
    else hetee_vec_add(&ctx->mod[i], a->c[0] + off, p->data + off, out->c[0] + off, ctx->n);
  }
  out->scale = scale;
  return 0;
}

int hetee_ckks_eval_add_plain(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                              const hetee_ckks_plaintext *p, hetee_ckks_ciphertext *out) {
  return addsub_plain(ctx, a, p, out, 0);
}

int hetee_ckks_eval_sub_plain(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                              const hetee_ckks_plaintext *p, hetee_ckks_ciphertext *out) {
  return addsub_plain(ctx, a, p, out, 1);
}

int hetee_ckks_eval_mul_plain(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                              const hetee_ckks_plaintext *p, hetee_ckks_ciphertext *out) {
  if (!ctx || !a || !p || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = check_plain(ctx, a, p);
  if (rc) return rc;
  double scale = a->scale * p->scale;
  if (!isfinite(scale)) return hetee_error(HETEE_ERR_SCALE, "product scale overflows");
  int l = a->level, sz = a->size;
  if ((rc = ckks_ct_reserve(ctx, out, l, sz))) return rc;
  for (int k = 0; k < sz; k++) {
    for (int i = 0; i <= l; i++) {
      size_t off = (size_t)i * ctx->n;
      hetee_vec_mul(&ctx->mod[i], a->c[k] + off, p->data + off, out->c[k] + off, ctx->n);
    }
  }
  out->scale = scale;
  return 0;
}

int hetee_ckks_eval_mul_const(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a, double c, double cscale,
                              hetee_ckks_ciphertext *out) {
  if (!ctx || !a || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = check_ct(ctx, a, "ciphertext");
  if (rc) return rc;
  if (!(isfinite(cscale) && cscale > 0)) return hetee_error(HETEE_ERR_SCALE, "constant scale must be finite and > 0");
  double scale = a->scale * cscale;
  if (!isfinite(scale)) return hetee_error(HETEE_ERR_SCALE, "product scale overflows");
  uint64_t res[HETEE_CKKS_MAX_Q];
  int l = a->level, sz = a->size;
  if ((rc = ckks_const_to_rns(ctx, c * cscale, l, res))) return rc;
  if ((rc = ckks_ct_reserve(ctx, out, l, sz))) return rc;
  for (int k = 0; k < sz; k++)
    for (int i = 0; i <= l; i++) {
      size_t off = (size_t)i * ctx->n;
      hetee_vec_mul_scalar(&ctx->mod[i], a->c[k] + off, res[i], out->c[k] + off, ctx->n);
    }
  out->scale = scale;
  return 0;
}

int hetee_ckks_eval_add_const(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a, double c,
                              hetee_ckks_ciphertext *out) {
  if (!ctx || !a || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = check_ct(ctx, a, "ciphertext");
  if (rc) return rc;
  uint64_t res[HETEE_CKKS_MAX_Q];
  int l = a->level, sz = a->size;
  double scale = a->scale;
  /* the constant polynomial k has all NTT evaluations equal to k */
  if ((rc = ckks_const_to_rns(ctx, c * scale, l, res))) return rc;
  if ((rc = ckks_ct_reserve(ctx, out, l, sz))) return rc;
  copy_rest(ctx, a, out, 0);
  for (int i = 0; i <= l; i++) {
    size_t off = (size_t)i * ctx->n;
    hetee_vec_add_scalar(&ctx->mod[i], a->c[0] + off, res[i], out->c[0] + off, ctx->n);
  }
  out->scale = scale;
  return 0;
}

/* Degree-2 product of size-2 a and b on rows 0..l; accumulate into out when
 * acc != 0. The ring's tensor2 kernel: one reduction per output coefficient
 * (Karatsuba on the 64-bit SIMD path), in-place safe (every output index
 * depends only on the same index of the inputs, read before writing). */
static void tensor(const hetee_ckks_context *ctx, int l, const hetee_ckks_ciphertext *a,
                   const hetee_ckks_ciphertext *b, hetee_ckks_ciphertext *out, int acc, int threads) {
  size_t n = ctx->n;
  CKKS_OMP_FOR(threads)
  for (int i = 0; i <= l; i++) {
    size_t off = (size_t)i * n;
    hetee_vec_tensor2(&ctx->mod[i], a->c[0] + off, a->c[1] + off, b->c[0] + off, b->c[1] + off, out->c[0] + off,
                      out->c[1] + off, out->c[2] + off, n, acc);
  }
}

int hetee_ckks_evaluator_mul(hetee_ckks_evaluator *ev, const hetee_ckks_ciphertext *a,
                             const hetee_ckks_ciphertext *b, hetee_ckks_ciphertext *out) {
  int rc = ckks_ev_check(ev);
  if (rc) return rc;
  const hetee_ckks_context *ctx = ev->ctx;
  if (!a || !b || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if ((rc = check_binary(ctx, a, b, 0))) return rc;
  if (a->size != 2 || b->size != 2) return hetee_error(HETEE_ERR_FORM, "mul needs size-2 inputs (relinearize first)");
  double scale = a->scale * b->scale;
  if (!isfinite(scale)) return hetee_error(HETEE_ERR_SCALE, "product scale overflows");
  int l = a->level;
  if ((rc = ckks_ct_reserve(ctx, out, l, 3))) return rc;
  tensor(ctx, l, a, b, out, 0, ev->threads);
  out->scale = scale;
  return 0;
}

int hetee_ckks_evaluator_mul_acc(hetee_ckks_evaluator *ev, const hetee_ckks_ciphertext *a,
                                 const hetee_ckks_ciphertext *b, hetee_ckks_ciphertext *acc) {
  int rc = ckks_ev_check(ev);
  if (rc) return rc;
  const hetee_ckks_context *ctx = ev->ctx;
  if (!a || !b || !acc) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (acc == a || acc == b) return hetee_error(HETEE_ERR_INVALID_ARG, "mul_acc: acc must not alias a or b");
  if ((rc = check_binary(ctx, a, b, 0))) return rc;
  if (a->size != 2 || b->size != 2) return hetee_error(HETEE_ERR_FORM, "mul_acc needs size-2 inputs");
  double scale = a->scale * b->scale;
  if (!isfinite(scale)) return hetee_error(HETEE_ERR_SCALE, "product scale overflows");
  int l = a->level;
  if (acc->level < 0) {
    if ((rc = ckks_ct_reserve(ctx, acc, l, 3))) return rc;
    tensor(ctx, l, a, b, acc, 0, ev->threads);
    acc->scale = scale;
    return 0;
  }
  if ((rc = check_ct(ctx, acc, "accumulator"))) return rc;
  if (acc->level != l) return hetee_error(HETEE_ERR_LEVEL, "accumulator level %d vs product level %d", acc->level, l);
  if (!scales_match(acc->scale, scale))
    return hetee_error(HETEE_ERR_SCALE, "accumulator scale 2^%.4f vs product 2^%.4f", log2(acc->scale), log2(scale));
  int was2 = acc->size == 2;
  if ((rc = ckks_ct_reserve(ctx, acc, l, 3))) return rc;
  if (was2) memset(acc->c[2], 0, (size_t)(l + 1) * ctx->n * 8);
  tensor(ctx, l, a, b, acc, 1, ev->threads);
  return 0;
}

/* Key switches poly d (level l) with key k: out0 = base0 + ks0, out1 =
 * base1 + ks1 (NULL base: zero), in the evaluator's scratch. */
int ckks_keyswitch_add(hetee_ckks_evaluator *ev, int l, const uint64_t *d, const ckks_ksk *k,
                       const uint64_t *base0, uint64_t *out0, const uint64_t *base1, uint64_t *out1) {
  int rc = ckks_ev_ks_scratch(ev, l);
  if (rc) return rc;
  ckks_modup(ev->ctx, l, d, ev->ext, ev->work, ev->threads);
  ckks_ks_inner_moddown(ev->ctx, l, ev->ext, d, NULL, k, base0, out0, base1, out1, ev->work, ev->threads);
  return 0;
}

int hetee_ckks_evaluator_relin(hetee_ckks_evaluator *ev, const hetee_ckks_relin_key *rk,
                               const hetee_ckks_ciphertext *a, hetee_ckks_ciphertext *out) {
  int rc = ckks_ev_check(ev);
  if (rc) return rc;
  const hetee_ckks_context *ctx = ev->ctx;
  if (!a || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (!rk) return hetee_error(HETEE_ERR_NO_KEY, "no relinearization key");
  if ((rc = check_ct(ctx, a, "ciphertext"))) return rc;
  if ((rc = ckks_check_ctx(ctx, rk->fp, "relinearization key"))) return rc;
  if (a->size != 3) return hetee_error(HETEE_ERR_FORM, "relin needs a size-3 ciphertext (got %d)", a->size);
  int l = a->level;
  double scale = a->scale;
  uint64_t *c2 = a->c[2];
  /* out = (c0, c1) + keyswitch(c2): the key switch writes the sums
   * directly (no copy of c0, c1 when out != a) */
  if (out != a && (rc = ckks_ct_reserve(ctx, out, l, 2))) return rc;
  if ((rc = ckks_keyswitch_add(ev, l, c2, &rk->k, a->c[0], out->c[0], a->c[1], out->c[1]))) return rc;
  out->size = 2;
  out->level = l;
  out->scale = scale;
  out->seeded = 0;
  ckks_ct_set_fp(ctx, out);
  return 0;
}

int hetee_ckks_evaluator_mul_relin(hetee_ckks_evaluator *ev, const hetee_ckks_relin_key *rk,
                                   const hetee_ckks_ciphertext *a, const hetee_ckks_ciphertext *b,
                                   hetee_ckks_ciphertext *out) {
  int rc = ckks_ev_check(ev);
  if (rc) return rc;
  if (!a || !b || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (!rk) return hetee_error(HETEE_ERR_NO_KEY, "no relinearization key");
  if ((rc = ckks_check_ctx(ev->ctx, rk->fp, "relinearization key"))) return rc;
  if ((rc = hetee_ckks_evaluator_mul(ev, a, b, out))) return rc;
  return hetee_ckks_evaluator_relin(ev, rk, out, out);
}

int hetee_ckks_evaluator_rescale(hetee_ckks_evaluator *ev, const hetee_ckks_ciphertext *a,
                                 hetee_ckks_ciphertext *out) {
  int rc = ckks_ev_check(ev);
  if (rc) return rc;
  const hetee_ckks_context *ctx = ev->ctx;
  if (!a || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if ((rc = check_ct(ctx, a, "ciphertext"))) return rc;
  int l = a->level, sz = a->size, threads = ev->threads;
  if (l == 0) return hetee_error(HETEE_ERR_LEVEL, "cannot rescale: ciphertext already at level 0");
  size_t n = ctx->n;
  double scale = a->scale / (double)ctx->mod[l].q;
  /* last: n words, then corr: l rows */
  if ((rc = ckks_ev_aux_scratch(ev, (size_t)(l + 1) * n))) return rc;
  uint64_t *last = ev->aux, *corr = ev->aux + n;
  if ((rc = ckks_ct_reserve(ctx, out, l, sz))) return rc;
  const hetee_modulus *ml = &ctx->mod[l];
  uint64_t ql = ml->q, h = ql >> 1;
  for (int k = 0; k < sz; k++) {
    /* last <- [c + floor(q_l/2)]_{q_l}, coefficient form (copy, inverse
     * NTT and addition in one ring call) */
    hetee_ntt_inverse_add(ctx->ntt[l], a->c[k] + (size_t)l * n, last, h);
    const uint64_t *src = a->c[k];
    uint64_t *dst = out->c[k];
    CKKS_OMP_FOR(threads)
    for (int i = 0; i < l; i++) {
      const hetee_modulus *mi = &ctx->mod[i];
      uint64_t q = mi->q, hm = ctx->rs_half_mod[l][i], w = ctx->rs_inv[l][i];
      uint64_t *t = corr + (size_t)i * n;
      /* t = last - floor(q_l/2) mod q_i (the centered remainder) */
      if (ql < q) hetee_vec_add_scalar(mi, last, hm ? q - hm : 0, t, n); /* last < q_l < q_i: no reduction */
      else hetee_vec_reduce_add_scalar(mi, last, hm ? q - hm : 0, t, n);
      hetee_ntt_forward(ctx->ntt[i], t);
      /* (c_i - t) * q_l^-1, one fused pass of the ring's (SIMD) kernels */
      hetee_vec_sub_mul_scalar_add(mi, src + (size_t)i * n, t, w, NULL, dst + (size_t)i * n, n);
    }
  }
  out->level = l - 1;
  out->scale = scale;
  return 0;
}

/* The context-only forms: ckks_internal.h, CKKS_ON_TEMP_EV. */

int hetee_ckks_eval_mul(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a, const hetee_ckks_ciphertext *b,
                        hetee_ckks_ciphertext *out) {
  CKKS_ON_TEMP_EV(ctx, hetee_ckks_evaluator_mul(&ev_, a, b, out));
}

int hetee_ckks_eval_mul_acc(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                            const hetee_ckks_ciphertext *b, hetee_ckks_ciphertext *acc) {
  CKKS_ON_TEMP_EV(ctx, hetee_ckks_evaluator_mul_acc(&ev_, a, b, acc));
}

int hetee_ckks_eval_relin(const hetee_ckks_context *ctx, const hetee_ckks_relin_key *rk,
                          const hetee_ckks_ciphertext *a, hetee_ckks_ciphertext *out) {
  CKKS_ON_TEMP_EV(ctx, hetee_ckks_evaluator_relin(&ev_, rk, a, out));
}

int hetee_ckks_eval_mul_relin(const hetee_ckks_context *ctx, const hetee_ckks_relin_key *rk,
                              const hetee_ckks_ciphertext *a, const hetee_ckks_ciphertext *b,
                              hetee_ckks_ciphertext *out) {
  CKKS_ON_TEMP_EV(ctx, hetee_ckks_evaluator_mul_relin(&ev_, rk, a, b, out));
}

int hetee_ckks_eval_rescale(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                            hetee_ckks_ciphertext *out) {
  CKKS_ON_TEMP_EV(ctx, hetee_ckks_evaluator_rescale(&ev_, a, out));
}

int hetee_ckks_eval_drop_level(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a, int level,
                               hetee_ckks_ciphertext *out) {
  if (!ctx || !a || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = check_ct(ctx, a, "ciphertext");
  if (rc) return rc;
  if (level < 0 || level > a->level)
    return hetee_error(HETEE_ERR_LEVEL, "cannot drop from level %d to %d", a->level, level);
  int sz = a->size;
  double scale = a->scale;
  if (out != a) {
    if ((rc = ckks_ct_reserve(ctx, out, level, sz))) return rc;
    for (int k = 0; k < sz; k++) memcpy(out->c[k], a->c[k], (size_t)(level + 1) * ctx->n * 8);
  }
  out->level = level;
  out->size = sz;
  out->scale = scale;
  out->seeded = 0;
  return 0;
}

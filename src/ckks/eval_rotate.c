/*
 * eval_rotate.c — slot rotations and conjugation through Galois
 * automorphisms X -> X^g (g = 5^k mod 2N rotates left by k, g = 2N-1
 * conjugates), with hoisting (Halevi–Shoup, "Faster homomorphic linear
 * transformations in HElib", CRYPTO 2018).
 *
 * (c0, c1) under s  ->  (sigma(c0), sigma(c1)) under sigma(s)  ->  key
 * switch sigma(c1) from sigma(s) back to s. In NTT form sigma is a
 * permutation of evaluations, and it commutes with the digit decomposition up
 * to multiples of each digit's modulus, so the ModUp of c1 is computed once
 * and each step only permutes the extended digits on the fly inside the
 * inner product with its key, then ModDowns: n rotations cost one ModUp
 * ((l+1) INTT + dnum*(l+1+np-alpha) NTT) plus n x (inner product + ModDown).
 */
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_internal.h"

static int rotate_many(hetee_ckks_evaluator *ev, const hetee_ckks_galois_keys *gk,
                       const hetee_ckks_ciphertext *a, const uint64_t *elts, size_t cnt,
                       hetee_ckks_ciphertext *const *outs) {
  const hetee_ckks_context *ctx = ev->ctx;
  int rc = ckks_check_ctx(ctx, a->fp, "ciphertext");
  if (rc) return rc;
  if (a->level < 0 || a->level >= ctx->nq) return hetee_error(HETEE_ERR_LEVEL, "ciphertext is empty");
  if (a->size != 2) return hetee_error(HETEE_ERR_FORM, "rotation needs a size-2 ciphertext (relinearize first)");
  if (!gk) return hetee_error(HETEE_ERR_NO_KEY, "no Galois keys");
  if ((rc = ckks_check_ctx(ctx, gk->fp, "Galois keys"))) return rc;
  const ckks_ksk **keys = calloc(cnt ? cnt : 1, sizeof *keys);
  int l = a->level;
  size_t n = ctx->n;
  double scale = a->scale;
  int need_ks = 0;
  if (!keys) {
    rc = hetee_error(HETEE_ERR_NOMEM, "rotation buffers");
    goto err;
  }
  for (size_t i = 0; i < cnt; i++) {
    if (outs[i] == a) {
      rc = hetee_error(HETEE_ERR_INVALID_ARG, "hoisted rotation outputs must not alias the input");
      goto err;
    }
    for (size_t j = 0; j < i; j++)
      if (outs[j] == outs[i]) {
        rc = hetee_error(HETEE_ERR_INVALID_ARG, "hoisted rotation outputs must be distinct");
        goto err;
      }
    if (elts[i] == 1) continue;
    keys[i] = ckks_galois_find(gk, elts[i]);
    if (!keys[i]) {
      rc = hetee_error(HETEE_ERR_NO_KEY, "no Galois key for element %llu", (unsigned long long)elts[i]);
      goto err;
    }
    need_ks = 1;
  }
  if (need_ks) {
    if ((rc = ckks_ev_ks_scratch(ev, l))) goto err;
    ckks_modup(ctx, l, a->c[1], ev->ext, ev->work, ev->threads);
  }
  for (size_t i = 0; i < cnt; i++) {
    hetee_ckks_ciphertext *o = outs[i];
    if (elts[i] == 1) {
      if ((rc = hetee_ckks_ciphertext_copy(a, o))) goto err;
      continue;
    }
    const uint32_t *perm = keys[i]->perm;
    if ((rc = ckks_ct_reserve(ctx, o, l, 2))) goto err;
    for (int r = 0; r <= l; r++) hetee_vec_permute(perm, a->c[0] + (size_t)r * n, o->c[0] + (size_t)r * n, n);
    ckks_ks_inner_moddown(ctx, l, ev->ext, a->c[1], perm, keys[i], o->c[0], o->c[0], NULL, o->c[1], ev->work,
                          ev->threads);
    o->scale = scale;
  }
  rc = 0;
err:
  free(keys);
  return rc;
}

/* One rotation without hoisting: permute both polynomials first, then key
 * switch sigma(c1) (ModUp of the permuted polynomial). A code path distinct
 * from rotate_many, so tests can check hoisted == individual. */
static int rotate_one(hetee_ckks_evaluator *ev, const hetee_ckks_galois_keys *gk,
                      const hetee_ckks_ciphertext *a, uint64_t g, hetee_ckks_ciphertext *out) {
  const hetee_ckks_context *ctx = ev->ctx;
  int rc = ckks_check_ctx(ctx, a->fp, "ciphertext");
  if (rc) return rc;
  if (a->level < 0 || a->level >= ctx->nq) return hetee_error(HETEE_ERR_LEVEL, "ciphertext is empty");
  if (a->size != 2) return hetee_error(HETEE_ERR_FORM, "rotation needs a size-2 ciphertext (relinearize first)");
  if (!gk) return hetee_error(HETEE_ERR_NO_KEY, "no Galois keys");
  if ((rc = ckks_check_ctx(ctx, gk->fp, "Galois keys"))) return rc;
  if (g == 1) return hetee_ckks_ciphertext_copy(a, out);
  const ckks_ksk *k = ckks_galois_find(gk, g);
  if (!k) return hetee_error(HETEE_ERR_NO_KEY, "no Galois key for element %llu", (unsigned long long)g);
  int l = a->level;
  size_t n = ctx->n, rows = (size_t)l + 1;
  double scale = a->scale;
  if ((rc = ckks_ev_aux_scratch(ev, rows * n))) return rc;
  uint64_t *c1p = ev->aux; /* sigma(c1); the key switch uses ev's other buffers */
  for (size_t r = 0; r < rows; r++) hetee_vec_permute(k->perm, a->c[1] + r * n, c1p + r * n, n);
  if (out != a) {
    if ((rc = ckks_ct_reserve(ctx, out, l, 2))) return rc;
    for (size_t r = 0; r < rows; r++) hetee_vec_permute(k->perm, a->c[0] + r * n, out->c[0] + r * n, n);
  } else {
    /* in place: c0 through the (now free) c1 storage */
    memcpy(out->c[1], out->c[0], rows * n * 8);
    for (size_t r = 0; r < rows; r++) hetee_vec_permute(k->perm, out->c[1] + r * n, out->c[0] + r * n, n);
    out->seeded = 0;
  }
  if ((rc = ckks_keyswitch_add(ev, l, c1p, k, out->c[0], out->c[0], NULL, out->c[1]))) return rc;
  out->scale = scale;
  out->size = 2;
  return 0;
}

int ckks_rotate_galois(hetee_ckks_evaluator *ev, const hetee_ckks_galois_keys *gk, const hetee_ckks_ciphertext *a,
                       uint64_t g, hetee_ckks_ciphertext *out) {
  return rotate_one(ev, gk, a, g, out);
}

int hetee_ckks_evaluator_rotate(hetee_ckks_evaluator *ev, const hetee_ckks_galois_keys *gk,
                                const hetee_ckks_ciphertext *a, int step, hetee_ckks_ciphertext *out) {
  int rc = ckks_ev_check(ev);
  if (rc) return rc;
  if (!a || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  return rotate_one(ev, gk, a, ckks_galois_elt(ev->ctx->n, step), out);
}

int hetee_ckks_evaluator_rotate_hoisted(hetee_ckks_evaluator *ev, const hetee_ckks_galois_keys *gk,
                                        const hetee_ckks_ciphertext *a, const int *steps, size_t n,
                                        hetee_ckks_ciphertext *const *outs) {
  int rc = ckks_ev_check(ev);
  if (rc) return rc;
  if (!a || (n && (!steps || !outs))) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  for (size_t i = 0; i < n; i++)
    if (!outs[i]) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL output %zu", i);
  uint64_t *elts = malloc((n ? n : 1) * sizeof *elts);
  if (!elts) return hetee_error(HETEE_ERR_NOMEM, "rotation buffers");
  for (size_t i = 0; i < n; i++) elts[i] = ckks_galois_elt(ev->ctx->n, steps[i]);
  rc = rotate_many(ev, gk, a, elts, n, outs);
  free(elts);
  return rc;
}

int hetee_ckks_evaluator_conjugate(hetee_ckks_evaluator *ev, const hetee_ckks_galois_keys *gk,
                                   const hetee_ckks_ciphertext *a, hetee_ckks_ciphertext *out) {
  int rc = ckks_ev_check(ev);
  if (rc) return rc;
  if (!a || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  return rotate_one(ev, gk, a, 2 * ev->ctx->n - 1, out);
}

/* Rotate-and-sum with one ModDown ("double hoisting", Bossuat et al.,
 * Eurocrypt 2021, for the inner sums of baby-step giant-step products):
 * one ModUp of c1 shared by all steps (as rotate_hoisted), each step's
 * inner product with its Galois key stays in the extended basis Q_l*P and
 * is added there, and the sum is divided by P once: 2 ModDowns in all
 * instead of 2 per step. The permuted c0's are summed in Q_l and become the
 * ModDown's base. Rounding once instead of per step, the result equals the
 * sum of single rotations up to a few units of rounding (not bit for bit).
 * Scratch: ext, work (acc0, acc1, ybuf, conv as in ckks_ks_inner_moddown),
 * aux (sum of c0's) and sum (per-step products, sum of unrotated c1's;
 * sized for the top level on first use and kept). */
int hetee_ckks_evaluator_rotate_hoisted_sum(hetee_ckks_evaluator *ev, const hetee_ckks_galois_keys *gk,
                                            const hetee_ckks_ciphertext *a, const int *steps, size_t cnt,
                                            hetee_ckks_ciphertext *out) {
  int rc = ckks_ev_check(ev);
  if (rc) return rc;
  if (!a || !out || !steps) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (!cnt) return hetee_error(HETEE_ERR_INVALID_ARG, "rotate_hoisted_sum: no steps");
  const hetee_ckks_context *ctx = ev->ctx;
  if ((rc = ckks_check_ctx(ctx, a->fp, "ciphertext"))) return rc;
  if (a->level < 0 || a->level >= ctx->nq) return hetee_error(HETEE_ERR_LEVEL, "ciphertext is empty");
  if (a->size != 2) return hetee_error(HETEE_ERR_FORM, "rotation needs a size-2 ciphertext (relinearize first)");
  if (!gk) return hetee_error(HETEE_ERR_NO_KEY, "no Galois keys");
  if ((rc = ckks_check_ctx(ctx, gk->fp, "Galois keys"))) return rc;
  int l = a->level, R = l + 1 + ctx->np, nd = ctx->ks[l].ndigits, threads = ev->threads;
  size_t n = ctx->n, rows = (size_t)l + 1;
  double scale = a->scale;
  const ckks_ksk **keys = calloc(cnt, sizeof *keys);
  if (!keys) return hetee_error(HETEE_ERR_NOMEM, "rotation buffers");
  int need_ks = 0, ident = 0;
  for (size_t i = 0; i < cnt; i++) {
    uint64_t g = ckks_galois_elt(n, steps[i]);
    if (g == 1) {
      ident++;
      continue;
    }
    keys[i] = ckks_galois_find(gk, g);
    if (!keys[i]) {
      rc = hetee_error(HETEE_ERR_NO_KEY, "no Galois key for step %d", steps[i]);
      goto err;
    }
    need_ks = 1;
  }
  if ((rc = ckks_ev_ks_scratch(ev, l)) || (rc = ckks_ev_aux_scratch(ev, rows * n)) ||
      (rc = ckks_ev_sum_scratch(ev, (2 * (size_t)(ctx->nq + ctx->np) + (size_t)ctx->nq) * n)))
    goto err;
  if (need_ks) ckks_modup(ctx, l, a->c[1], ev->ext, ev->work, threads);
  uint64_t *acc0 = ev->work, *acc1 = acc0 + (size_t)R * n, *ybuf = acc1 + (size_t)R * n;
  uint64_t *conv = ybuf + (size_t)ctx->np * n;
  uint64_t *tmp0 = ev->sum, *tmp1 = tmp0 + (size_t)R * n, *base1 = tmp1 + (size_t)R * n, *base0 = ev->aux;
  memset(acc0, 0, 2 * (size_t)R * n * 8);
  memset(base0, 0, rows * n * 8);
  CKKS_OMP_FOR(threads)
  for (int r = 0; r <= l; r++) {
    /* the unrotated terms (step 0) need no key switch: ident x (c0, c1) */
    size_t off = (size_t)r * n;
    memset(base1 + off, 0, n * 8);
    for (int k = 0; k < ident; k++) {
      hetee_vec_add(&ctx->mod[r], base0 + off, a->c[0] + off, base0 + off, n);
      hetee_vec_add(&ctx->mod[r], base1 + off, a->c[1] + off, base1 + off, n);
    }
  }
  for (size_t i = 0; i < cnt; i++) {
    if (!keys[i]) continue;
    const ckks_ksk *k = keys[i];
    const uint32_t *perm = k->perm;
    CKKS_OMP_FOR(threads)
    for (int r = 0; r < R; r++) {
      int t = ckks_ext_prime(ctx, l, r);
      const hetee_modulus *mt = &ctx->mod[t];
      const uint64_t *xs[HETEE_CKKS_MAX_Q], *bs[HETEE_CKKS_MAX_Q], *as[HETEE_CKKS_MAX_Q];
      for (int j = 0; j < nd; j++) {
        const ckks_digit *dg = &ctx->ks[l].digits[j];
        int own = t <= l && t >= dg->first && t < dg->first + dg->count;
        xs[j] = own ? a->c[1] + (size_t)t * n : ev->ext + ((size_t)j * R + r) * n;
        bs[j] = k->b[j] + (size_t)t * n;
        as[j] = k->a[j] + (size_t)t * n;
      }
      size_t off = (size_t)r * n;
      hetee_vec_dot2(mt, xs, perm, bs, as, (size_t)nd, tmp0 + off, tmp1 + off, n);
      hetee_vec_add(mt, acc0 + off, tmp0 + off, acc0 + off, n);
      hetee_vec_add(mt, acc1 + off, tmp1 + off, acc1 + off, n);
      if (r <= l) { /* + sigma(c0) on q_r */
        hetee_vec_permute(perm, a->c[0] + off, tmp0 + off, n);
        hetee_vec_add(mt, base0 + off, tmp0 + off, base0 + off, n);
      }
    }
  }
  /* a is read for the last time above: out may alias it */
  if ((rc = ckks_ct_reserve(ctx, out, l, 2))) goto err;
  ckks_moddown(ctx, l, acc0, base0, out->c[0], ybuf, conv, threads);
  ckks_moddown(ctx, l, acc1, base1, out->c[1], ybuf, conv, threads);
  out->scale = scale;
  rc = 0;
err:
  free(keys);
  return rc;
}

/* The context-only forms: ckks_internal.h, CKKS_ON_TEMP_EV. */

int hetee_ckks_eval_rotate(const hetee_ckks_context *ctx, const hetee_ckks_galois_keys *gk,
                           const hetee_ckks_ciphertext *a, int step, hetee_ckks_ciphertext *out) {
  CKKS_ON_TEMP_EV(ctx, hetee_ckks_evaluator_rotate(&ev_, gk, a, step, out));
}

int hetee_ckks_eval_rotate_hoisted(const hetee_ckks_context *ctx, const hetee_ckks_galois_keys *gk,
                                   const hetee_ckks_ciphertext *a, const int *steps, size_t n,
                                   hetee_ckks_ciphertext *const *outs) {
  CKKS_ON_TEMP_EV(ctx, hetee_ckks_evaluator_rotate_hoisted(&ev_, gk, a, steps, n, outs));
}

int hetee_ckks_eval_conjugate(const hetee_ckks_context *ctx, const hetee_ckks_galois_keys *gk,
                              const hetee_ckks_ciphertext *a, hetee_ckks_ciphertext *out) {
  CKKS_ON_TEMP_EV(ctx, hetee_ckks_evaluator_conjugate(&ev_, gk, a, out));
}

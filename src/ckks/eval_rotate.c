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

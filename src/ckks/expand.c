/*
 * expand.c — coefficient expansion: one ciphertext of m = sum_e m_e X^e
 * into L = 2^k "lane" ciphertexts, lane q encrypting
 * L * sum_{e = q mod L} m_e X^(e - q) (the oblivious expansion of SealPIR,
 * Angel et al., IEEE S&P 2018, on CKKS coefficient encodings).
 *
 * Why it works. For h a power of two with 4h <= N, the automorphism
 * sigma(X) = X^(1 + N/h) maps X^e to X^e X^(eN/h). For e a multiple of 2h,
 * X^(eN/h) = (X^(2N))^(e/2h) = 1; for e = h mod 2h, X^(eN/h) =
 * X^N (X^(2N))^((e-h)/2h) = -1 (X^N = -1 in Z_q[X]/(X^N + 1)). A polynomial whose
 * exponents are all multiples of h therefore splits as
 *   c + sigma(c)             = 2 * (its terms with e = 0 mod 2h)
 *   (c - sigma(c)) X^(-h)    = 2 * (its terms with e = h mod 2h) X^(-h),
 * both again with exponents multiples of 2h. Starting from h = 1 (every
 * polynomial) and doubling h up to L/2 gives a binary tree whose leaf q
 * (q's bit j = the branch taken at h = 2^j) holds lane q times L.
 *
 * Cost, on a size-2 ciphertext at level l: L - 1 automorphisms with their
 * key switches (the tree's inner nodes; the dominant term), 2(L - 1)
 * additions or subtractions, L - 1 products by a monomial (pointwise, in
 * NTT form, with the monomial's transform made per call: log2 L forward
 * NTTs per prime). Noise: each level adds one key switch's error to each
 * branch and doubles everything before; values come out multiplied by L,
 * so callers encode at scale / L to read them back at scale. Galois keys:
 * the elements 1 + N/h, i.e. the rotation steps hetee_ckks_expand_steps
 * names (all are powers of 5 modulo 2N while L <= N/2).
 */
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_internal.h"

static int lanes_ok(size_t n, int lanes) {
  return lanes >= 2 && (size_t)lanes <= n / 2 && !(lanes & (lanes - 1));
}

int hetee_ckks_expand_steps_n(size_t n, int lanes, int *steps, size_t cap, size_t *count) {
  if (!count || (cap && !steps)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (n < 8 || (n & (n - 1))) return hetee_error(HETEE_ERR_INVALID_ARG, "expand: N = %zu (a power of two >= 8)", n);
  if (!lanes_ok(n, lanes)) return hetee_error(HETEE_ERR_INVALID_ARG, "expand: lanes %d (a power of two in [2, N/2])", lanes);
  size_t k = 0;
  for (int h = 1; h < lanes; h <<= 1) k++;
  *count = k;
  if (cap < k) return hetee_error(HETEE_ERR_LIMIT, "expand: %zu steps, room for %zu", k, cap);
  /* discrete logarithm base 5 modulo 2N of each 1 + N/h: 5 generates the
   * residues = 1 mod 4, and 1 + N/h is one since h <= L/2 <= N/4 */
  uint64_t m = 2 * (uint64_t)n, g = 1;
  size_t found = 0, j;
  for (j = 0; j < k; j++) steps[j] = -1;
  for (size_t s = 0; s < n / 2 && found < k; s++) {
    size_t h = 1;
    for (j = 0; j < k; j++, h <<= 1)
      if (steps[j] < 0 && g == 1 + n / h) {
        steps[j] = (int)s;
        found++;
      }
    g = g * 5 % m;
  }
  if (found != k) return hetee_error(HETEE_ERR_INTERNAL, "expand: no rotation step for an element");
  return 0;
}

int hetee_ckks_expand_steps(const hetee_ckks_context *ctx, int lanes, int *steps, size_t cap, size_t *count) {
  if (!ctx) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  return hetee_ckks_expand_steps_n(ctx->n, lanes, steps, cap, count);
}

int hetee_ckks_evaluator_expand(hetee_ckks_evaluator *ev, const hetee_ckks_galois_keys *gk,
                                const hetee_ckks_ciphertext *a, int lanes, hetee_ckks_ciphertext *const *outs) {
  int rc = ckks_ev_check(ev);
  if (rc) return rc;
  if (!a || !outs) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  const hetee_ckks_context *ctx = ev->ctx;
  size_t n = ctx->n;
  if (!lanes_ok(n, lanes)) return hetee_error(HETEE_ERR_INVALID_ARG, "expand: lanes %d (a power of two in [2, N/2])", lanes);
  for (int i = 0; i < lanes; i++) {
    if (!outs[i]) return hetee_error(HETEE_ERR_INVALID_ARG, "expand: NULL output %d", i);
    if (outs[i] == a) return hetee_error(HETEE_ERR_INVALID_ARG, "expand: output %d aliases the input", i);
    for (int j = 0; j < i; j++)
      if (outs[j] == outs[i]) return hetee_error(HETEE_ERR_INVALID_ARG, "expand: outputs %d and %d are the same", j, i);
  }
  if ((rc = ckks_check_ctx(ctx, a->fp, "ciphertext"))) return rc;
  if (a->level < 0 || a->level >= ctx->nq) return hetee_error(HETEE_ERR_LEVEL, "ciphertext is empty");
  if (a->size != 2) return hetee_error(HETEE_ERR_FORM, "expand needs a size-2 ciphertext (relinearize first)");
  if (!gk) return hetee_error(HETEE_ERR_NO_KEY, "no Galois keys");
  if ((rc = ckks_check_ctx(ctx, gk->fp, "Galois keys"))) return rc;
  for (int h = 1; h < lanes; h <<= 1)
    if (!ckks_galois_find(gk, 1 + n / (size_t)h))
      return hetee_error(HETEE_ERR_NO_KEY, "no Galois key for element %zu (expand into %d lanes)", 1 + n / (size_t)h,
                         lanes);
  int l = a->level;
  size_t rows = (size_t)l + 1;
  hetee_ckks_ciphertext *r = NULL;
  uint64_t *mono = ckks_scratch(rows * n);
  if (!mono) return hetee_error(HETEE_ERR_NOMEM, "expand buffers");
  if ((rc = hetee_ckks_ciphertext_new(ctx, &r))) goto out;
  if ((rc = hetee_ckks_ciphertext_copy(a, outs[0]))) goto out;
  outs[0]->seeded = 0;
  for (int h = 1; h < lanes; h <<= 1) {
    uint64_t g = 1 + n / (size_t)h;
    /* X^-h = -X^(N-h), in NTT form per prime */
    for (size_t i = 0; i < rows; i++) {
      uint64_t *row = mono + i * n;
      memset(row, 0, n * 8);
      row[n - (size_t)h] = ctx->mod[i].q - 1;
      hetee_ntt_forward(ctx->ntt[i], row);
    }
    for (int p = 0; p < h; p++) {
      hetee_ckks_ciphertext *c = outs[p], *o = outs[p + h];
      if ((rc = ckks_rotate_galois(ev, gk, c, g, r))) goto out;
      if ((rc = ckks_ct_reserve(ctx, o, l, 2))) goto out;
      for (size_t i = 0; i < rows; i++) {
        const hetee_modulus *m = &ctx->mod[i];
        for (int k = 0; k < 2; k++) {
          uint64_t *cr = c->c[k] + i * n, *orow = o->c[k] + i * n;
          const uint64_t *rr = r->c[k] + i * n;
          hetee_vec_sub(m, cr, rr, orow, n);
          hetee_vec_mul(m, orow, mono + i * n, orow, n);
          hetee_vec_add(m, cr, rr, cr, n);
        }
      }
      o->scale = c->scale;
    }
  }
  rc = 0;
out:
  hetee_ckks_ciphertext_free(r);
  free(mono);
  return rc;
}

int hetee_ckks_eval_expand(const hetee_ckks_context *ctx, const hetee_ckks_galois_keys *gk,
                           const hetee_ckks_ciphertext *a, int lanes, hetee_ckks_ciphertext *const *outs) {
  CKKS_ON_TEMP_EV(ctx, hetee_ckks_evaluator_expand(&ev_, gk, a, lanes, outs));
}

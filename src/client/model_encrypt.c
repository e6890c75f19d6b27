/*
 * model_encrypt.c — the model provider's side of encrypted inference
 * (hetee/engine.h): every linear layer's weights and biases are laid out
 * as hemat's coefficient-packed weight and bias polynomials for the stage's
 * packing (hetee_hemat_weight_coeffs / _bias_coeffs), coefficient-encoded
 * at level 1 (weights at HETEE_ENGINE_W_SCALE, biases at
 * HETEE_ENGINE_OUT_SCALE, the scale of the products they are added to) and encrypted under the enclave's public
 * key, so neither the host nor the enclave's refresh ever sees a weight.
 * Polynomials are encrypted in parallel (OpenMP); coefficient buffers are
 * wiped after each polynomial.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "hemat/engine_internal.h"

/* A private copy of the plan (through its format: it is checked again). */
static int plan_copy(const hetee_engine_plan *p, hetee_engine_plan **out) {
  uint8_t *b = NULL;
  size_t n = 0;
  int rc = engine_plan_save(p, &b, &n);
  if (rc) return rc;
  rc = engine_plan_load(b, n, out);
  free(b);
  return rc;
}

static int encrypt_coeffs(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk, const double *v,
                          double scale, hetee_ckks_plaintext *pt, hetee_ckks_ciphertext **out) {
  int rc = hetee_ckks_ciphertext_new(ctx, out);
  if (!rc) rc = hetee_ckks_encode_coeffs(ctx, v, hetee_ckks_context_n(ctx), scale, HETEE_ENGINE_LEVEL, pt);
  if (!rc) rc = hetee_ckks_encrypt_pk(ctx, pk, pt, *out);
  return rc;
}

/* The n_w_cts weight and nb bias ciphertexts of one stage, in parallel
 * (OpenMP, the default thread count: the model provider's machine). Each
 * thread wipes its own coefficient buffer after every polynomial. */
static int encrypt_stage(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk, const engine_stage *st,
                         const hetee_nn_model *m, size_t nb, hetee_ckks_ciphertext **w, hetee_ckks_ciphertext **bias) {
  const hetee_hemat_layout *L = &st->layout;
  size_t n = hetee_ckks_context_n(ctx), total = L->n_w_cts + nb;
  size_t wlen = (size_t)st->conv.co * st->conv.c * st->conv.kh * st->conv.kw;
  /* the layer's weights and bias (with a folded affine layer applied:
   * engine_stage_params checks the layer is the planned one), then the
   * weights in hemat's geometry (rearranged for a space-to-depth stage) */
  float *lw = NULL, *lb = NULL;
  int rc = engine_stage_params(st, m, &lw, &lb);
  if (rc) return rc;
  const float *wts = NULL;
  float *owned = NULL;
  char detail[512] = "";
  if ((rc = engine_stage_weights(st, lw, &wts, &owned))) {
    snprintf(detail, sizeof detail, "%s", hetee_last_error());
    goto done;
  }
#pragma omp parallel
  {
    double *buf = malloc(n * sizeof *buf);
    hetee_ckks_plaintext *pt = NULL;
    int trc = buf && !hetee_ckks_plaintext_new(ctx, &pt) ? 0 : hetee_error(HETEE_ERR_NOMEM, "no memory");
#pragma omp for schedule(dynamic, 1)
    for (size_t j = 0; j < total; j++) {
      if (trc) continue;
      if (j < L->n_w_cts) {
        int mbk = (int)(j / (size_t)L->ncb), cbk = (int)(j % (size_t)L->ncb);
        trc = hetee_hemat_weight_coeffs(L, wts, mbk, cbk, buf);
        if (!trc) trc = encrypt_coeffs(ctx, pk, buf, HETEE_ENGINE_W_SCALE, pt, &w[j]);
      } else {
        trc = hetee_hemat_bias_coeffs(L, lb, (int)(j - L->n_w_cts), buf);
        if (!trc) trc = encrypt_coeffs(ctx, pk, buf, HETEE_ENGINE_OUT_SCALE, pt, &bias[j - L->n_w_cts]);
      }
      sodium_memzero(buf, n * sizeof *buf);
    }
    if (trc) {
#pragma omp critical
      if (!rc) {
        rc = trc;
        snprintf(detail, sizeof detail, "%s", hetee_last_error());
      }
    }
    hetee_ckks_plaintext_free(pt); /* wiped by ckks */
    free(buf);
  }
  if (owned) {
    sodium_memzero(owned, (size_t)st->shape.co * st->shape.c * st->shape.kh * st->shape.kw * sizeof *owned);
    free(owned);
  }
done:
  sodium_memzero(lw, wlen * sizeof *lw);
  free(lw);
  if (lb) sodium_memzero(lb, (size_t)st->conv.co * sizeof *lb);
  free(lb);
  return rc ? hetee_error(rc, "%s", detail) : 0;
}

int hetee_engine_model_encrypt(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk, const hetee_nn_model *m,
                               const hetee_engine_plan *plan, hetee_engine_model **out) {
  return client_model_encrypt_progress(ctx, pk, m, plan, NULL, NULL, out);
}

int client_model_encrypt_progress(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                                  const hetee_nn_model *m, const hetee_engine_plan *plan,
                                  void (*cb)(void *ud, size_t done, size_t total), void *ud, hetee_engine_model **out) {
  if (!ctx || !pk || !m || !plan || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  size_t n = hetee_ckks_context_n(ctx);
  if (n != plan->n) return hetee_error(HETEE_ERR_PARAMS, "plan for N = %zu, parameters have N = %zu", plan->n, n);
  if (hetee_ckks_context_max_level(ctx) < HETEE_ENGINE_LEVEL)
    return hetee_error(HETEE_ERR_PARAMS, "parameters without level %d", HETEE_ENGINE_LEVEL);
  hetee_engine_model *em = calloc(1, sizeof *em);
  int rc = 0;
  if (!em) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  em->ctx = ctx;
  if ((rc = plan_copy(plan, &em->plan))) goto err;
  size_t ns = em->plan->nstages;
  em->w = calloc(ns, sizeof *em->w);
  em->bias = calloc(ns, sizeof *em->bias);
  if (!em->w || !em->bias) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto err;
  }
  size_t w_ct = engine_ct_bytes(n, 2, HETEE_ENGINE_LEVEL);
  for (size_t s = 0; s < ns && !rc; s++) {
    const engine_stage *st = &em->plan->st[s];
    const hetee_hemat_layout *L = &st->layout;
    em->w[s] = calloc(L->n_w_cts, sizeof *em->w[s]);
    if (st->has_bias) em->bias[s] = calloc((size_t)L->nmb, sizeof *em->bias[s]);
    if (!em->w[s] || (st->has_bias && !em->bias[s])) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      goto err;
    }
    size_t nb = st->has_bias ? (size_t)L->nmb : 0;
    rc = encrypt_stage(ctx, pk, st, m, nb, em->w[s], em->bias[s]);
    em->ct_bytes += (L->n_w_cts + nb) * w_ct;
    if (rc) rc = engine_wrap(rc, "stage %zu (%s)", s, st->names);
    else if (cb) cb(ud, s + 1, ns);
  }
  if (rc) goto err;
  *out = em;
  return 0;
err:
  hetee_engine_model_free(em);
  return rc;
}

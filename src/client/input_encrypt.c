/*
 * input_encrypt.c — the data provider's side of encrypted inference
 * (hetee/engine.h): samples are cut into the plan's micro-batches and each
 * micro-batch is laid out in the first stage's hemat input layout (zero
 * padding left empty), coefficient-encoded at level 1, scale
 * HETEE_ENGINE_IN_SCALE, and
 * encrypted under the enclave's public key, in parallel (OpenMP).
 * Coefficient buffers are wiped after each ciphertext.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hemat/engine_internal.h"

/* Coefficients of input ciphertext `ct` (= g * ncb + cbk) of a micro-batch
 * whose samples are x[0 .. L->batch). */
static int fill(const hetee_engine_plan *p, const hetee_hemat_layout *L, const float *x, size_t ct, double *buf) {
  const engine_stage *st = &p->st[0];
  size_t n = p->n, g = ct / (size_t)L->ncb, cbk = ct % (size_t)L->ncb;
  int C = st->in_shape[0], H = st->in_shape[1], W = st->in_shape[2];
  int c0 = (int)cbk * L->pack.cb, c1 = c0 + L->pack.cb;
  memset(buf, 0, n * sizeof *buf);
  for (int j = 0; j < L->pack.nimg; j++) {
    size_t b = g * (size_t)L->pack.nimg + (size_t)j;
    if (b >= L->batch) break;
    const float *xs = x + b * p->in_size;
    for (int c = 0; c < C; c++)
      for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++) {
          int hc, hy, hx; /* hemat's channel (space-to-depth: depends on y, x) */
          engine_in_coord(st, c, y, xx, &hc, &hy, &hx);
          if (hc < c0 || hc >= c1) continue;
          uint64_t pos = hetee_hemat_in_pos(L, (uint32_t)b, hc, hy, hx);
          if (pos / n != ct) return hetee_error(HETEE_ERR_INTERNAL, "input position outside its ciphertext");
          buf[pos % n] = xs[((size_t)c * H + y) * W + xx];
        }
  }
  return 0;
}

int hetee_engine_input_encrypt(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                               const hetee_engine_plan *plan, const float *x, size_t count, hetee_engine_input **out) {
  if (!ctx || !pk || !plan || !x || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  if (count < 1 || count > HETEE_ENGINE_MAX_IMAGES)
    return hetee_error(HETEE_ERR_INVALID_ARG, "%zu samples (1..%u)", count, HETEE_ENGINE_MAX_IMAGES);
  size_t n = hetee_ckks_context_n(ctx);
  if (n != plan->n) return hetee_error(HETEE_ERR_PARAMS, "plan for N = %zu, parameters have N = %zu", plan->n, n);
  if (hetee_ckks_context_max_level(ctx) < HETEE_ENGINE_LEVEL)
    return hetee_error(HETEE_ERR_PARAMS, "parameters without level %d", HETEE_ENGINE_LEVEL);
  size_t total;
  int rc = engine_input_cts(plan, count, &total);
  if (rc) return rc;
  hetee_engine_input *in = calloc(1, sizeof *in);
  if (in) in->cts = calloc(total, sizeof *in->cts);
  if (!in || !in->cts) {
    hetee_engine_input_free(in);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  in->ctx = ctx;
  in->count = count;
  in->micro_batch = plan->micro_batch;
  in->ncts = total;
  size_t nmb = (count + plan->micro_batch - 1) / plan->micro_batch, off = 0;
  char detail[512] = "";
  for (size_t k = 0; k < nmb && !rc; k++) {
    hetee_hemat_layout L;
    uint32_t bk = engine_mb_size(count, plan->micro_batch, k);
    if ((rc = hetee_engine_plan_layout(plan, 0, bk, &L))) break;
    const float *xk = x + k * (size_t)plan->micro_batch * plan->in_size;
    /* the micro-batch's ciphertexts in parallel, one buffer per thread */
#pragma omp parallel
    {
      double *buf = malloc(n * sizeof *buf);
      hetee_ckks_plaintext *pt = NULL;
      int trc = buf && !hetee_ckks_plaintext_new(ctx, &pt) ? 0 : hetee_error(HETEE_ERR_NOMEM, "no memory");
#pragma omp for schedule(dynamic, 1)
      for (size_t i = 0; i < L.n_in_cts; i++) {
        if (trc) continue;
        trc = fill(plan, &L, xk, i, buf);
        if (!trc) trc = hetee_ckks_ciphertext_new(ctx, &in->cts[off + i]);
        if (!trc) trc = hetee_ckks_encode_coeffs(ctx, buf, n, HETEE_ENGINE_IN_SCALE, HETEE_ENGINE_LEVEL, pt);
        if (!trc) trc = hetee_ckks_encrypt_pk(ctx, pk, pt, in->cts[off + i]);
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
    off += L.n_in_cts;
  }
  if (rc) {
    hetee_engine_input_free(in); /* frees the ciphertexts made so far (the rest are NULL) */
    return detail[0] ? hetee_error(rc, "%s", detail) : rc;
  }
  *out = in;
  return 0;
}

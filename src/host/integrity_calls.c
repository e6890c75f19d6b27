/*
 * integrity_calls.c — host side of bound inference (issue 9): streams a
 * registered model to the enclave (MODEL_LOAD: plan, then every weight and
 * bias ciphertext in file order, in frames of at most 32 MiB), and the job
 * calls infer.c uses instead of the free REFRESH / RELEASE when a run is
 * bound (hetee_engine_run_bound). The host still only relays ciphertexts:
 * what it may ask is fixed by the model provider's registered plan and the
 * data provider's authorization (docs/security.md).
 */
#include <stdlib.h>
#include <string.h>

#include "host/engine_jobs.h"

engine_tamper_fn engine_tamper_hook;
void *engine_tamper_arg;

#define LOAD_FRAME_BYTES (32u << 20)

static int send_load(hetee_host_enclave *e, hetee_wbuf *w) {
  if (w->err) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  hetee_frame f;
  int rc = hetee_host_call_frame(e, HETEE_MSG_MODEL_LOAD, w->p, w->len, &f, 0);
  if (!rc) hetee_frame_clear(&f);
  return rc;
}

int hetee_engine_model_bind(hetee_host_enclave *e, const hetee_engine_model *em, uint32_t model_id) {
  if (!e || !em) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  uint8_t *plan = NULL;
  size_t plen = 0;
  int rc = engine_plan_save(em->plan, &plan, &plen);
  if (rc) return rc;
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u32(&w, model_id);
  hetee_wbuf_u8(&w, 0);
  hetee_wbuf_blob(&w, plan, plen);
  free(plan);
  rc = send_load(e, &w);
  hetee_wbuf_free(&w);
  /* ciphertexts, in the model file's order, batched into frames */
  const hetee_engine_plan *p = em->plan;
  uint8_t **bl = NULL;
  size_t *ll = NULL, nb = 0, cap = 0, bytes = 0;
  for (size_t s = 0; s < p->nstages && !rc; s++) {
    size_t nw = p->st[s].layout.n_w_cts, nbias = p->st[s].has_bias ? (size_t)p->st[s].layout.nmb : 0;
    for (size_t i = 0; i < nw + nbias && !rc; i++) {
      const hetee_ckks_ciphertext *ct = i < nw ? em->w[s][i] : em->bias[s][i - nw];
      if (nb == cap) {
        cap = cap ? 2 * cap : 64;
        uint8_t **nbl = realloc(bl, cap * sizeof *bl);
        size_t *nll = nbl ? realloc(ll, cap * sizeof *ll) : NULL;
        if (nbl) bl = nbl;
        if (nll) ll = nll;
        if (!nbl || !nll) {
          rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
          break;
        }
      }
      rc = hetee_ckks_ciphertext_save(em->ctx, ct, &bl[nb], &ll[nb]);
      if (rc) break;
      bytes += ll[nb++];
      int last = s + 1 == p->nstages && i + 1 == nw + nbias;
      if (bytes >= LOAD_FRAME_BYTES || last) {
        hetee_wbuf_init(&w);
        hetee_wbuf_u32(&w, model_id);
        hetee_wbuf_u8(&w, 1);
        hetee_wbuf_u32(&w, (uint32_t)nb);
        for (size_t j = 0; j < nb; j++) hetee_wbuf_blob(&w, bl[j], ll[j]);
        rc = send_load(e, &w);
        hetee_wbuf_free(&w);
        for (size_t j = 0; j < nb; j++) free(bl[j]);
        nb = 0;
        bytes = 0;
      }
    }
  }
  for (size_t j = 0; j < nb; j++) free(bl[j]);
  free(bl);
  free(ll);
  if (!rc) {
    hetee_wbuf_init(&w);
    hetee_wbuf_u32(&w, model_id);
    hetee_wbuf_u8(&w, 2);
    rc = send_load(e, &w);
    hetee_wbuf_free(&w);
  }
  return rc;
}

int engine_job_start(hetee_host_enclave *e, const hetee_ckks_context *ctx, uint32_t model_id, uint32_t batch,
                     hetee_ckks_ciphertext *const *in, size_t n, uint32_t *job, uint64_t *ns) {
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u32(&w, model_id);
  hetee_wbuf_u32(&w, batch);
  hetee_wbuf_u32(&w, (uint32_t)n);
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    uint8_t *b;
    size_t len;
    rc = hetee_ckks_ciphertext_save(ctx, in[i], &b, &len);
    if (!rc) {
      hetee_wbuf_blob(&w, b, len);
      free(b);
    }
  }
  if (!rc && w.err) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  hetee_frame f;
  if (!rc) rc = hetee_host_call_frame(e, HETEE_MSG_JOB_START, w.p, w.len, &f, 0);
  hetee_wbuf_free(&w);
  if (rc) return rc;
  hetee_rbuf r;
  hetee_rbuf_init(&r, f.body, f.len);
  *job = hetee_rbuf_u32(&r);
  *ns = hetee_rbuf_u64(&r);
  rc = r.err || hetee_rbuf_left(&r) ? hetee_error(HETEE_ERR_PROTOCOL, "malformed JOB_START reply") : 0;
  hetee_frame_clear(&f);
  return rc;
}

int engine_job_refresh(hetee_host_enclave *e, uint32_t job, uint32_t stage, uint8_t *const *blobs, const size_t *lens,
                       size_t n, uint8_t ***fresh, size_t **flens, size_t *nf, uint64_t *ns) {
  *fresh = NULL;
  *flens = NULL;
  *nf = 0;
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  int rc = 0;
  size_t total = 12;
  for (size_t i = 0; i < n; i++) total += 8 + lens[i];
  if (hetee_wbuf_reserve(&w, total)) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  hetee_wbuf_u32(&w, job);
  hetee_wbuf_u32(&w, stage);
  hetee_wbuf_u32(&w, (uint32_t)n);
  for (size_t i = 0; i < n; i++) hetee_wbuf_blob(&w, blobs[i], lens[i]);
  if (!rc && w.err) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  hetee_frame f;
  if (!rc) rc = hetee_host_call_frame(e, HETEE_MSG_JOB_REFRESH, w.p, w.len, &f, 0);
  hetee_wbuf_free(&w);
  if (rc) return rc;
  hetee_rbuf r;
  hetee_rbuf_init(&r, f.body, f.len);
  uint32_t m = hetee_rbuf_u32(&r);
  if (r.err || m > 4096) {
    hetee_frame_clear(&f);
    return hetee_error(HETEE_ERR_PROTOCOL, "malformed JOB_REFRESH reply");
  }
  uint8_t **out = calloc(m ? m : 1, sizeof *out);
  size_t *ol = calloc(m ? m : 1, sizeof *ol);
  if (!out || !ol) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (uint32_t i = 0; i < m && !rc; i++) {
    size_t len;
    const uint8_t *b = hetee_rbuf_blob(&r, HETEE_FRAME_MAX_BODY, &len);
    if (r.err) {
      rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed JOB_REFRESH reply");
      break;
    }
    out[i] = malloc(len ? len : 1);
    if (!out[i]) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      break;
    }
    memcpy(out[i], b, len);
    ol[i] = len;
  }
  if (!rc) *ns = hetee_rbuf_u64(&r);
  if (!rc && (r.err || hetee_rbuf_left(&r))) rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed JOB_REFRESH reply");
  hetee_frame_clear(&f);
  if (rc) {
    hetee_host_cts_free(out, ol, m);
    return rc;
  }
  *fresh = out;
  *flens = ol;
  *nf = m;
  return 0;
}

int engine_job_release(hetee_host_enclave *e, uint32_t job, const uint8_t sid[16], uint32_t bk, uint8_t **sealed,
                       size_t *lens) {
  uint8_t body[20];
  hetee_le32(body, job);
  memcpy(body + 4, sid, 16);
  hetee_frame f;
  int rc = hetee_host_call_frame(e, HETEE_MSG_JOB_RELEASE, body, sizeof body, &f, 0);
  if (rc) return rc;
  hetee_rbuf r;
  hetee_rbuf_init(&r, f.body, f.len);
  uint32_t n = hetee_rbuf_u32(&r);
  if (r.err || n != bk) rc = hetee_error(HETEE_ERR_PROTOCOL, "JOB_RELEASE returned %u results for %u samples", n, bk);
  for (uint32_t i = 0; i < n && !rc; i++) {
    size_t len;
    const uint8_t *b = hetee_rbuf_blob(&r, HETEE_FRAME_MAX_BODY, &len);
    if (r.err) {
      rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed JOB_RELEASE reply");
      break;
    }
    sealed[i] = malloc(len ? len : 1);
    if (!sealed[i]) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      break;
    }
    memcpy(sealed[i], b, len);
    lens[i] = len;
  }
  if (!rc && hetee_rbuf_left(&r)) rc = hetee_error(HETEE_ERR_PROTOCOL, "trailing bytes in JOB_RELEASE reply");
  hetee_frame_clear(&f);
  return rc;
}

int hetee_engine_job_authorize(hetee_host_enclave *e, const hetee_job_auth *a) {
  if (!e || !a) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (a->n < 1 || a->n > HETEE_JOB_AUTH_MAX) return hetee_error(HETEE_ERR_INVALID_ARG, "%u micro-batches", a->n);
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u32(&w, a->model);
  hetee_wbuf_put(&w, a->dp, 32);
  hetee_wbuf_put(&w, a->nonce, 16);
  hetee_wbuf_u32(&w, a->n);
  for (uint32_t i = 0; i < a->n; i++) {
    hetee_wbuf_u32(&w, a->batch[i]);
    hetee_wbuf_put(&w, a->digest[i], 32);
  }
  hetee_wbuf_put(&w, a->sig, 64);
  int rc = w.err ? hetee_error(HETEE_ERR_NOMEM, "no memory") : 0;
  hetee_frame f;
  if (!rc) rc = hetee_host_call_frame(e, HETEE_MSG_JOB_AUTH, w.p, w.len, &f, 0);
  hetee_wbuf_free(&w);
  if (!rc) hetee_frame_clear(&f);
  return rc;
}

/*
 * refresh.c — the enclave's hot path, replacing bootstrapping
 * (DESIGN.md): decrypt a layer's output ciphertexts one at a time, gather the
 * values the host's layout names into a tensor, apply the operation list
 * (ops.c), scatter into the requested output layout and encrypt fresh
 * ciphertexts with the secret key (seeded: half-size on the wire) at the
 * requested level and scale. Peak memory is bounded: the tensor, one slot
 * vector, one ciphertext at a time, and the reply; jobs above the configured
 * budget are refused (the host splits batches, see host.h).
 *
 * Also the decrypt-and-gather step of release (sessions.c).
 */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/activations.h"
#include "enclave/enclave_internal.h"
#include "enclave/ops.h"

#define MAX_CTS 4096u

#ifdef HETEE_ENCLAVE_HAVE_CKKS

/* Reads u32 ncts then ncts ciphertext blobs; fills values[k] from global slot
 * map[k]. Ciphertexts are decrypted one at a time. */
static int gather(enclave *e, hetee_rbuf *r, const uint32_t *map, size_t n, double *values, double *slotbuf,
                  uint64_t *items) {
  size_t slots = hetee_ckks_context_slots(e->ctx);
  uint32_t ncts = hetee_rbuf_u32(r);
  if (r->err || ncts < 1 || ncts > MAX_CTS) return hetee_error(HETEE_ERR_PROTOCOL, "bad ciphertext count");
  for (size_t k = 0; k < n; k++)
    if (map[k] >= (uint64_t)ncts * slots)
      return hetee_error(HETEE_ERR_SHAPE, "input map entry %zu names slot %u beyond %u ciphertexts", k, map[k], ncts);
  /* counting sort of the values by source ciphertext (public layout) */
  uint32_t *start = calloc(ncts + 1, sizeof *start), *order = malloc((n ? n : 1) * sizeof *order);
  hetee_ckks_plaintext *pt = NULL;
  int rc = 0;
  if (!start || !order || hetee_ckks_plaintext_new(e->ctx, &pt)) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto err;
  }
  for (size_t k = 0; k < n; k++) start[map[k] / slots + 1]++;
  for (uint32_t c = 0; c < ncts; c++) start[c + 1] += start[c];
  {
    uint32_t *fill = calloc(ncts, sizeof *fill);
    if (!fill) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      goto err;
    }
    for (size_t k = 0; k < n; k++) {
      uint32_t c = (uint32_t)(map[k] / slots);
      order[start[c] + fill[c]++] = (uint32_t)k;
    }
    free(fill);
  }
  for (uint32_t c = 0; c < ncts && !rc; c++) {
    size_t len;
    const uint8_t *b = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &len);
    if (r->err) {
      rc = hetee_error(HETEE_ERR_PROTOCOL, "ciphertext %u truncated", c);
      break;
    }
    hetee_ckks_ciphertext *ct = NULL;
    rc = hetee_ckks_ciphertext_load(e->ctx, b, len, &ct);
    if (!rc) rc = hetee_ckks_decrypt(e->ctx, e->sk, ct, pt);
    if (!rc) rc = hetee_ckks_decode_real(e->ctx, pt, slotbuf, slots);
    hetee_ckks_ciphertext_free(ct);
    for (uint32_t j = start[c]; j < start[c + 1] && !rc; j++) values[order[j]] = slotbuf[map[order[j]] % slots];
  }
  if (!rc && hetee_rbuf_left(r)) rc = hetee_error(HETEE_ERR_PROTOCOL, "trailing bytes after the ciphertexts");
  if (!rc) *items += ncts;
err:
  hetee_ckks_plaintext_free(pt); /* plaintext objects are wiped by ckks on free */
  sodium_memzero(slotbuf, slots * sizeof *slotbuf);
  free(start);
  free(order);
  return rc;
}

/* Saturation bound for the values the enclave encodes: |v| * scale stays
 * below min(2^60, Q_level / 16), public (level and scale only). The encoder
 * refuses values whose coefficients reach Q_level / 4 (HETEE_ERR_SCALE) and
 * switches to a slower multi-word path above 2^62; both depend on the
 * values, and the host picks the output scale, so without saturation a
 * refresh succeeding or failing (or its timing) would tell the host whether
 * max |activation| * scale crossed a threshold it chose, i.e. leak the
 * activations' magnitude by bisection over repeated refreshes. Saturating
 * first (branch-free, NaN -> -bound) makes encoding total and one-path.
 * Coefficients are bounded by the largest slot magnitude (inverse canonical
 * embedding averages the slots), so the bound keeps a factor 4 margin. */
static double encode_bound(const hetee_ckks_context *ctx, int level, double scale) {
  double logq = 0;
  for (int i = 0; i <= level; i++) logq += log2((double)hetee_ckks_context_prime(ctx, i));
  double lim = logq - 4.0 < 60.0 ? logq - 4.0 : 60.0;
  return exp2(lim) / scale;
}

static int scatter_encrypt(enclave *e, const hetee_refresh_spec *s, const double *values, double *slotbuf,
                           hetee_wbuf *w, uint64_t *items) {
  size_t slots = hetee_ckks_context_slots(e->ctx);
  int level = s->out_level < 0 ? hetee_ckks_context_max_level(e->ctx) : s->out_level;
  if (level > hetee_ckks_context_max_level(e->ctx))
    return hetee_error(HETEE_ERR_LEVEL, "output level %d above the top level %d", level,
                       hetee_ckks_context_max_level(e->ctx));
  double scale = s->out_scale > 0 ? s->out_scale : hetee_ckks_context_default_scale(e->ctx);
  const double bound = encode_bound(e->ctx, level, scale);
  uint32_t *start = calloc(s->out_ncts + 1, sizeof *start), *fill = calloc(s->out_ncts, sizeof *fill);
  uint32_t *order = malloc((s->out_n ? s->out_n : 1) * sizeof *order);
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ct = NULL;
  int rc = 0;
  if (!start || !fill || !order || hetee_ckks_plaintext_new(e->ctx, &pt) || hetee_ckks_ciphertext_new(e->ctx, &ct)) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto err;
  }
  for (size_t k = 0; k < s->out_n; k++) start[s->out_dst[k] / slots + 1]++;
  for (uint32_t c = 0; c < s->out_ncts; c++) start[c + 1] += start[c];
  for (size_t k = 0; k < s->out_n; k++) {
    uint32_t c = (uint32_t)(s->out_dst[k] / slots);
    order[start[c] + fill[c]++] = (uint32_t)k;
  }
  hetee_wbuf_u32(w, s->out_ncts);
  for (uint32_t c = 0; c < s->out_ncts && !rc; c++) {
    memset(slotbuf, 0, slots * sizeof *slotbuf);
    for (uint32_t j = start[c]; j < start[c + 1]; j++) {
      uint32_t k = order[j];
      slotbuf[s->out_dst[k] % slots] = values[s->out_src[k]];
    }
    for (size_t j = 0; j < slots; j++) slotbuf[j] = hetee_dmin(hetee_dmax(slotbuf[j], -bound), bound);
    uint8_t *b = NULL;
    size_t blen = 0;
    rc = hetee_ckks_encode_real(e->ctx, slotbuf, slots, scale, level, pt);
    if (!rc) rc = hetee_ckks_encrypt_sk(e->ctx, e->sk, pt, ct);
    if (!rc) rc = hetee_ckks_ciphertext_save(e->ctx, ct, &b, &blen);
    if (!rc) hetee_wbuf_blob(w, b, blen);
    free(b);
  }
  if (!rc) *items += s->out_ncts;
err:
  sodium_memzero(slotbuf, slots * sizeof *slotbuf);
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_ciphertext_free(ct);
  free(start);
  free(fill);
  free(order);
  return rc;
}

int enclave_handle_refresh(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  if (!e->have_keys) return hetee_error(HETEE_ERR_STATE, "no keys yet (KEYGEN or UNSEAL first)");
  size_t slots = hetee_ckks_context_slots(e->ctx);
  hetee_refresh_job job;
  int rc = hetee_refresh_spec_decode(r, slots, &job);
  if (rc) return rc;
  size_t n = (size_t)job.spec.shape[0] * job.spec.shape[1] * job.spec.shape[2];
  /* working set: tensor + pooling buffer + slot vector (+ one ciphertext) */
  size_t need = (2 * n + slots) * sizeof(double);
  if (need > e->cfg.budget) {
    hetee_refresh_job_free(&job);
    return hetee_error(HETEE_ERR_LIMIT, "refresh job needs %zu bytes, budget is %zu: split the batch", need,
                       e->cfg.budget);
  }
  double *v = sodium_malloc(n * sizeof *v), *tmp = sodium_malloc(n * sizeof *tmp),
         *slotbuf = sodium_malloc(slots * sizeof *slotbuf);
  if (!v || !tmp || !slotbuf) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory for the refresh tensor");
    goto out;
  }
  rc = gather(e, r, job.spec.in_map, n, v, slotbuf, items);
  if (rc) goto out;
  int sh[3];
  hetee_ops_apply(&job.spec, v, tmp, sh);
  rc = scatter_encrypt(e, &job.spec, v, slotbuf, w, items);
out:
  if (v) sodium_free(v); /* sodium_free wipes */
  if (tmp) sodium_free(tmp);
  if (slotbuf) sodium_free(slotbuf);
  hetee_refresh_job_free(&job);
  return rc;
}

int enclave_release_values(enclave *e, hetee_rbuf *r, double **vals, size_t *nout, uint64_t *items) {
  *vals = NULL;
  *nout = 0;
  if (!e->have_keys) return hetee_error(HETEE_ERR_STATE, "no keys yet");
  size_t slots = hetee_ckks_context_slots(e->ctx);
  uint32_t n = hetee_rbuf_u32(r);
  if (r->err || n < 1 || n > HETEE_RELEASE_MAX_VALUES || (size_t)n * 4 > hetee_rbuf_left(r))
    return hetee_error(HETEE_ERR_PROTOCOL, "release value count invalid");
  uint32_t *map = malloc(n * sizeof *map);
  double *v = sodium_malloc(n * sizeof *v), *slotbuf = sodium_malloc(slots * sizeof *slotbuf);
  int rc = 0;
  if (!map || !v || !slotbuf) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto out;
  }
  for (uint32_t i = 0; i < n; i++) map[i] = hetee_rbuf_u32(r);
  rc = gather(e, r, map, n, v, slotbuf, items);
out:
  free(map);
  if (slotbuf) sodium_free(slotbuf);
  if (rc) {
    if (v) sodium_free(v);
    return rc;
  }
  *vals = v;
  *nout = n;
  return 0;
}

#else

int enclave_handle_refresh(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}
int enclave_release_values(enclave *e, hetee_rbuf *r, double **vals, size_t *n, uint64_t *items) {
  *vals = NULL;
  *n = 0;
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}

#endif

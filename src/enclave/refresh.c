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
 * Nothing the host observes depends on the decrypted values (issue 7,
 * docs/security.md "Refresh and release as oracles"): levels and scales are
 * checked against the parameters and every ciphertext's metadata against
 * the declaration before decryption; values are saturated at public bounds
 * (after decoding, after every op, before encoding) and encoded on a path
 * chosen from those bounds.
 *
 * Also the decrypt-and-gather step of release (sessions.c), followed there
 * by noise flooding.
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

/* log2 Q_level (public). */
static double level_log2q(const hetee_ckks_context *ctx, int level) {
  double logq = 0;
  for (int i = 0; i <= level; i++) logq += log2((double)hetee_ckks_context_prime(ctx, i));
  return logq;
}

/* Resolves a declared level (-1: top) and scale (0: default) and checks
 * them against the parameters: level in [0, L], scale >= 2^20 and
 * scale * 2^HETEE_SCALE_HEADROOM_BITS <= Q_level. Public data only. */
int enclave_check_level_scale(const hetee_ckks_context *ctx, int level_in, double scale_in, const char *what,
                              int *level, double *scale) {
  int top = hetee_ckks_context_max_level(ctx);
  int l = level_in == -1 ? top : level_in;
  if (l < 0 || l > top) return hetee_error(HETEE_ERR_LEVEL, "%s level %d outside [0, %d] (-1: top)", what, level_in, top);
  double sc = scale_in > 0 ? scale_in : hetee_ckks_context_default_scale(ctx);
  double lq = level_log2q(ctx, l);
  if (!(isfinite(sc) && log2(sc) >= HETEE_SCALE_MIN_BITS && log2(sc) + HETEE_SCALE_HEADROOM_BITS <= lq))
    return hetee_error(HETEE_ERR_SCALE, "%s scale 2^%.2f outside [2^%d, 2^%.2f] at level %d", what, log2(sc),
                       HETEE_SCALE_MIN_BITS, lq - HETEE_SCALE_HEADROOM_BITS, l);
  *level = l;
  *scale = sc;
  return 0;
}

/* Saturation bound of the values the enclave encodes at (level, scale):
 * |v| * scale <= min(Q_level / 16, max(2^60, scale * 2^20), 2^1000).
 * Coefficients are bounded by the largest slot magnitude times the scale
 * (the inverse canonical embedding averages the slots), so they stay below
 * Q_level / 16 < Q_level / 2, and the encoder picks its path from this
 * public bound (hetee_ckks_encode_real_bounded): below 2^62 the one-word
 * path (ordinary scales: values up to 2^20 at 2^40), above it the
 * multi-word path (scales above 2^40, where the values keep 2^20 of
 * headroom). Saturating makes refresh total: before (issue 7) an out_scale
 * of 1e-300 made the bound infinite and the encoder's "not finite" failure
 * a plaintext-comparison oracle. */
static double encode_bound(const hetee_ckks_context *ctx, int level, double scale) {
  double lim = level_log2q(ctx, level) - 4.0, want = log2(scale) + 20.0;
  if (want < 60.0) want = 60.0;
  if (lim > want) lim = want;
  return exp2(lim < 1000.0 ? lim : 1000.0) / scale;
}

/* Reads u32 ncts then ncts ciphertext blobs; fills values[k] from global slot
 * map[k]. Every ciphertext must have the declared level and (within 2^-20)
 * the declared scale, checked before it is decrypted; it is decoded with the
 * declared scale, never with the host-writable field. Ciphertexts of size 2
 * or 3 (a ct x ct product not relinearized) are accepted. Decoded values are
 * saturated at +-HETEE_REFRESH_VALUE_BOUND. One ciphertext is decrypted at a
 * time. */
/* Values per ciphertext of an encoding: N/2 slots or N coefficients. */
static size_t enc_unit(const hetee_ckks_context *ctx, int enc) {
  return enc == HETEE_ENC_COEFFS ? hetee_ckks_context_n(ctx) : hetee_ckks_context_slots(ctx);
}

/* unitbuf: enc_unit doubles; idxbuf: enc_unit u32 (coefficient encoding:
 * the public indices decoded from one ciphertext). */
static int gather(enclave *e, hetee_rbuf *r, const uint32_t *map, size_t n, int enc, int level, double scale,
                  double *values, double *slotbuf, uint32_t *idxbuf, uint64_t *items) {
  size_t slots = enc_unit(e->ctx, enc); /* values per ciphertext */
  uint32_t ncts = hetee_rbuf_u32(r);
  if (r->err || ncts < 1 || ncts > MAX_CTS) return hetee_error(HETEE_ERR_PROTOCOL, "bad ciphertext count");
  for (size_t k = 0; k < n; k++)
    if (map[k] >= (uint64_t)ncts * slots)
      return hetee_error(HETEE_ERR_SHAPE, "input map entry %zu names slot %u beyond %u ciphertexts", k, map[k], ncts);
  /* counting sort of the values by source ciphertext (public layout) */
  uint32_t *start = calloc(ncts + 1, sizeof *start), *order = malloc((n ? n : 1) * sizeof *order);
  uint32_t *fill = calloc(ncts, sizeof *fill);
  hetee_ckks_plaintext *pt = NULL;
  int rc = 0;
  if (!start || !order || !fill || hetee_ckks_plaintext_new(e->ctx, &pt)) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto err;
  }
  for (size_t k = 0; k < n; k++) start[map[k] / slots + 1]++;
  for (uint32_t c = 0; c < ncts; c++) start[c + 1] += start[c];
  for (size_t k = 0; k < n; k++) {
    uint32_t c = (uint32_t)(map[k] / slots);
    order[start[c] + fill[c]++] = (uint32_t)k;
  }
  const double bound = HETEE_REFRESH_VALUE_BOUND;
  for (uint32_t c = 0; c < ncts && !rc; c++) {
    size_t len;
    const uint8_t *b = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &len);
    if (r->err) {
      rc = hetee_error(HETEE_ERR_PROTOCOL, "ciphertext %u truncated", c);
      break;
    }
    hetee_ckks_ciphertext *ct = NULL;
    rc = hetee_ckks_ciphertext_load(e->ctx, b, len, &ct);
    if (!rc && hetee_ckks_ciphertext_level(ct) != level)
      rc = hetee_error(HETEE_ERR_LEVEL, "ciphertext %u is at level %d, the request declares %d", c,
                       hetee_ckks_ciphertext_level(ct), level);
    if (!rc && !(fabs(hetee_ckks_ciphertext_scale(ct) - scale) <= scale * 0x1p-20))
      rc = hetee_error(HETEE_ERR_SCALE, "ciphertext %u has scale 2^%.4f, the request declares 2^%.4f", c,
                       log2(hetee_ckks_ciphertext_scale(ct)), log2(scale));
    if (!rc) rc = hetee_ckks_ciphertext_set_scale(ct, scale); /* decode with the declared scale */
    if (!rc) rc = hetee_ckks_decrypt(e->ctx, e->sk, ct, pt);
    size_t cnt = start[c + 1] - start[c];
    if (!rc && enc == HETEE_ENC_SLOTS) rc = hetee_ckks_decode_real(e->ctx, pt, slotbuf, slots);
    if (!rc && enc == HETEE_ENC_COEFFS) { /* only the coefficients named (public indices) */
      for (size_t j = 0; j < cnt; j++) idxbuf[j] = (uint32_t)(map[order[start[c] + j]] % slots);
      rc = hetee_ckks_decode_coeffs_scaled(e->ctx, pt, scale, idxbuf, cnt, slotbuf);
    }
    hetee_ckks_ciphertext_free(ct);
    for (uint32_t j = start[c]; j < start[c + 1] && !rc; j++) {
      double x = enc == HETEE_ENC_SLOTS ? slotbuf[map[order[j]] % slots] : slotbuf[j - start[c]];
      values[order[j]] = hetee_dmin(hetee_dmax(x, -bound), bound); /* NaN -> -bound */
    }
  }
  if (!rc && hetee_rbuf_left(r)) rc = hetee_error(HETEE_ERR_PROTOCOL, "trailing bytes after the ciphertexts");
  if (!rc) *items += ncts;
err:
  hetee_ckks_plaintext_free(pt); /* plaintext objects are wiped by ckks on free */
  sodium_memzero(slotbuf, slots * sizeof *slotbuf);
  free(start);
  free(order);
  free(fill);
  return rc;
}

static int scatter_encrypt(enclave *e, const hetee_refresh_spec *s, int level, double scale, const double *values,
                           double *slotbuf, hetee_wbuf *w, uint64_t *items) {
  size_t slots = enc_unit(e->ctx, s->out_encoding); /* values per ciphertext */
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
    uint8_t *b = NULL;
    size_t blen = 0;
    /* saturates at +-bound and picks the rounding path from the bound */
    rc = s->out_encoding == HETEE_ENC_COEFFS
             ? hetee_ckks_encode_coeffs_bounded(e->ctx, slotbuf, slots, scale, level, bound, pt)
             : hetee_ckks_encode_real_bounded(e->ctx, slotbuf, slots, scale, level, bound, pt);
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
  return enclave_refresh_job_run(e, &job, r, w, items, NULL);
}

/* The refresh of a decoded job (freed here); hook (may be NULL: plain
 * refresh) sees the gathered values before the ops and the final values
 * before they are encrypted, and may stop the job (integrity.c). */
int enclave_refresh_job_run(enclave *e, hetee_refresh_job *jp, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items,
                            const enclave_refresh_hook *hook) {
  hetee_refresh_job job = *jp;
  size_t slots = hetee_ckks_context_slots(e->ctx);
  int rc;
  /* every parameter-dependent check before anything is decrypted */
  int in_level, out_level;
  double in_scale, out_scale;
  rc = enclave_check_level_scale(e->ctx, job.spec.in_level, job.spec.in_scale, "input", &in_level, &in_scale);
  if (!rc)
    rc = enclave_check_level_scale(e->ctx, job.spec.out_level, job.spec.out_scale, "output", &out_level, &out_scale);
  if (rc) {
    hetee_refresh_job_free(&job);
    return rc;
  }
  size_t per = (size_t)job.spec.shape[0] * job.spec.shape[1] * job.spec.shape[2];
  size_t n = per * job.spec.batch;
  size_t unit = hetee_ckks_context_n(e->ctx); /* slot or coefficient vector of one ciphertext */
  (void)slots;
  /* working set: tensor + pooling buffer (one sample) + one ciphertext's
   * values and indices (+ one ciphertext) */
  size_t need = (n + per + unit) * sizeof(double) + unit * sizeof(uint32_t);
  if (need > e->cfg.budget) {
    hetee_refresh_job_free(&job);
    return hetee_error(HETEE_ERR_LIMIT, "refresh job needs %zu bytes, budget is %zu: split the batch", need,
                       e->cfg.budget);
  }
  /* one locked workspace per request: tensor | pooling buffer | slot vector */
  double *ws = sodium_malloc(need);
  if (!ws) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory for the refresh tensor");
    goto out;
  }
  double *v = ws, *tmp = ws + n, *slotbuf = ws + n + per;
  uint32_t *idxbuf = (uint32_t *)(slotbuf + unit);
  rc = gather(e, r, job.spec.in_map, n, job.spec.in_encoding, in_level, in_scale, v, slotbuf, idxbuf, items);
  if (rc) goto out;
  if (hook && (rc = hook->gathered(hook->arg, &job.spec, v, n))) goto out;
  int sh[3];
  hetee_ops_apply(&job.spec, v, tmp, sh);
  if (hook && (rc = hook->final(hook->arg, &job.spec, v, (size_t)sh[0] * sh[1] * sh[2] * job.spec.batch))) goto out;
  rc = scatter_encrypt(e, &job.spec, out_level, out_scale, v, slotbuf, w, items);
out:
  if (ws) sodium_free(ws); /* sodium_free wipes */
  hetee_refresh_job_free(&job);
  return rc;
}

/* Uniform noise in [-a, a] for each of the n values, from libsodium's
 * randombytes (53 random bits per value, no branch on them). */
static void flood(double *v, size_t n, double a) {
  for (size_t i = 0; i < n; i++) {
    uint64_t u;
    randombytes_buf(&u, sizeof u);
    double x = (double)(int64_t)(u >> 11) * 0x1p-52 - 1.0; /* [-1, 1) on a 2^-52 grid */
    v[i] += x * a;
    u = 0;
    x = 0;
  }
}

int enclave_release_values(enclave *e, hetee_rbuf *r, int prec_bits, double **vals, size_t *nout, uint64_t *items) {
  *vals = NULL;
  *nout = 0;
  if (!e->have_keys) return hetee_error(HETEE_ERR_STATE, "no keys yet");
  size_t slots = hetee_ckks_context_slots(e->ctx);
  int32_t lvl = (int32_t)hetee_rbuf_u32(r);
  double sc = hetee_rbuf_f64(r);
  uint8_t enc = hetee_rbuf_u8(r);
  uint32_t n = hetee_rbuf_u32(r);
  if (r->err || n < 1 || n > HETEE_RELEASE_MAX_VALUES || (size_t)n * 4 > hetee_rbuf_left(r))
    return hetee_error(HETEE_ERR_PROTOCOL, "release value count invalid");
  if (enc != HETEE_ENC_SLOTS && enc != HETEE_ENC_COEFFS)
    return hetee_error(HETEE_ERR_UNSUPPORTED, "release encoding %u: 0 (slots) or 1 (coefficients)", enc);
  if (!(isfinite(sc) && sc >= 0)) return hetee_error(HETEE_ERR_SCALE, "release scale not finite or negative");
  int level;
  double scale;
  int rc = enclave_check_level_scale(e->ctx, lvl, sc, "release input", &level, &scale);
  if (rc) return rc;
  /* flooding half-width (docs/security.md, "Noise flooding"): n values with
   * errors below 2^ERR / scale each are within statistical distance
   * n 2^ERR / (2a) = 2^-STAT of error-free ones */
  double log2a = log2((double)n) + HETEE_RELEASE_ERR_BITS + HETEE_RELEASE_STAT_BITS - 1 - log2(scale);
  if (log2a > -(double)prec_bits)
    return hetee_error(HETEE_ERR_SCALE,
                       "release of %u values at scale 2^%.2f: flooding noise 2^%.2f exceeds the policy's rounding "
                       "unit 2^-%d (decode at scale >= 2^%.2f)",
                       n, log2(scale), log2a, prec_bits, log2(scale) + log2a + prec_bits);
  size_t unit = hetee_ckks_context_n(e->ctx);
  (void)slots;
  uint32_t *map = malloc(n * sizeof *map), *idxbuf = malloc(unit * sizeof *idxbuf);
  double *v = sodium_malloc(n * sizeof *v), *slotbuf = sodium_malloc(unit * sizeof *slotbuf);
  if (!map || !idxbuf || !v || !slotbuf) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto out;
  }
  for (uint32_t i = 0; i < n; i++) map[i] = hetee_rbuf_u32(r);
  rc = gather(e, r, map, n, enc, level, scale, v, slotbuf, idxbuf, items);
  if (!rc) flood(v, n, exp2(log2a));
out:
  free(map);
  free(idxbuf);
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
int enclave_refresh_job_run(enclave *e, hetee_refresh_job *jp, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items,
                            const enclave_refresh_hook *hook) {
  (void)e, (void)r, (void)w, (void)items, (void)hook;
  hetee_refresh_job_free(jp);
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}
int enclave_release_values(enclave *e, hetee_rbuf *r, int prec_bits, double **vals, size_t *n, uint64_t *items) {
  (void)prec_bits;
  *vals = NULL;
  *n = 0;
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}

#endif

/*
 * refresh_spec.c — wire encoding of a refresh job description (version 2:
 * shape and batch, input gather map, declared input level/scale/encoding,
 * operation list, output scatter map, output level/scale/encoding; byte
 * layout in docs/enclave.md) and its strict decoder: every count is
 * bounded, every index checked, every constant finite and bounded, and the
 * shape each operation produces is propagated so that a malformed job is
 * refused with HETEE_ERR_SHAPE / HETEE_ERR_FORMAT / HETEE_ERR_VERSION before
 * any secret is touched. Checks that need the CKKS parameters (levels,
 * scales) are made by refresh.c, also before decryption.
 */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/wire/proto.h"

#define MAX_OUT_CTS 4096u

static int op_valid_kind(int k) { return k >= HETEE_OP_ADD_BIAS && k <= HETEE_OP_SCALE; }

/* c*h*w when every factor is >= 1 and the product is at most
 * HETEE_REFRESH_MAX_VALUES, else 0. Checked factor by factor, so no
 * overflow whatever the (host-chosen) factors: a plain c*h*w of three values
 * up to 2^31 wraps (e.g. 2^22 * 2^21 * 2^21 = 2^64 == 0 mod 2^64), which let
 * a spec announce 0 values while pooling over 2^22 channels. */
static uint64_t shape_elems(long c, long h, long w) {
  const uint64_t max = HETEE_REFRESH_MAX_VALUES;
  if (c < 1 || h < 1 || w < 1 || (uint64_t)c > max || (uint64_t)h > max || (uint64_t)w > max) return 0;
  uint64_t ch = (uint64_t)c * (uint64_t)h; /* < 2^48 */
  if (ch > max) return 0;
  uint64_t n = ch * (uint64_t)w; /* < 2^48 */
  return n > max ? 0 : n;
}

static int const_ok(double x) { return isfinite(x) && fabs(x) <= HETEE_REFRESH_MAX_CONST; }

int hetee_refresh_shapes(const hetee_refresh_spec *spec, int sh[3]) {
  long c = spec->shape[0], h = spec->shape[1], w = spec->shape[2];
  uint64_t per = shape_elems(c, h, w), batch = spec->batch ? spec->batch : 1;
  if (!per) return hetee_error(HETEE_ERR_SHAPE, "input shape %ldx%ldx%ld invalid", c, h, w);
  if (batch > HETEE_REFRESH_MAX_VALUES / per)
    return hetee_error(HETEE_ERR_LIMIT, "batch of %llu samples of %llu values above the limit of %u values",
                       (unsigned long long)batch, (unsigned long long)per, HETEE_REFRESH_MAX_VALUES);
  if ((spec->in_encoding != HETEE_ENC_SLOTS && spec->in_encoding != HETEE_ENC_COEFFS) ||
      (spec->out_encoding != HETEE_ENC_SLOTS && spec->out_encoding != HETEE_ENC_COEFFS))
    return hetee_error(HETEE_ERR_UNSUPPORTED, "refresh encoding %d -> %d: 0 (slots) or 1 (coefficients)",
                       spec->in_encoding, spec->out_encoding);
  if (spec->nops > HETEE_REFRESH_MAX_OPS) return hetee_error(HETEE_ERR_LIMIT, "%zu ops above limit", spec->nops);
  for (size_t i = 0; i < spec->nops; i++) {
    const hetee_refresh_op *o = &spec->ops[i];
    long n = c * h * w;
    if (!op_valid_kind(o->kind)) return hetee_error(HETEE_ERR_FORMAT, "op %zu: unknown kind %d", i, o->kind);
    if (!const_ok(o->alpha)) return hetee_error(HETEE_ERR_FORMAT, "op %zu: alpha not finite or above 2^64", i);
    size_t wa = 0, wb = 0; /* expected array sizes */
    switch (o->kind) {
    case HETEE_OP_ADD_BIAS:
      if (o->na != (size_t)n && o->na != (size_t)c)
        return hetee_error(HETEE_ERR_SHAPE, "op %zu: bias has %zu values for %ld elements / %ld channels", i, o->na, n, c);
      wa = o->na;
      break;
    case HETEE_OP_BATCHNORM: wa = wb = (size_t)c; break;
    case HETEE_OP_MAXPOOL:
    case HETEE_OP_AVGPOOL:
      if (o->window < 1 || o->stride < 1 || o->window > h || o->window > w)
        return hetee_error(HETEE_ERR_SHAPE, "op %zu: pool window %d stride %d on %ldx%ld", i, o->window, o->stride, h, w);
      h = (h - o->window) / o->stride + 1;
      w = (w - o->window) / o->stride + 1;
      break;
    case HETEE_OP_RESHAPE: {
      long s0 = o->shape[0], s1 = o->shape[1], s2 = o->shape[2];
      if (shape_elems(s0, s1, s2) != (uint64_t)n)
        return hetee_error(HETEE_ERR_SHAPE, "op %zu: reshape to %ldx%ldx%ld from %ld elements", i, s0, s1, s2, n);
      c = s0, h = s1, w = s2;
      break;
    }
    default: break;
    }
    if (o->na != wa || o->nb != wb)
      return hetee_error(HETEE_ERR_SHAPE, "op %zu: parameter arrays of %zu/%zu values, expected %zu/%zu", i, o->na,
                         o->nb, wa, wb);
    for (size_t j = 0; j < o->na; j++)
      if (!const_ok(o->a[j])) return hetee_error(HETEE_ERR_FORMAT, "op %zu: parameter not finite or above 2^64", i);
    for (size_t j = 0; j < o->nb; j++)
      if (!const_ok(o->b[j])) return hetee_error(HETEE_ERR_FORMAT, "op %zu: parameter not finite or above 2^64", i);
  }
  sh[0] = (int)c, sh[1] = (int)h, sh[2] = (int)w;
  return 0;
}

int hetee_refresh_spec_encode(const hetee_refresh_spec *s, uint8_t **buf, size_t *len) {
  if (!s || !buf || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int sh[3];
  int rc = hetee_refresh_shapes(s, sh);
  if (rc) return rc;
  uint32_t batch = s->batch ? s->batch : 1;
  size_t n = (size_t)batch * s->shape[0] * s->shape[1] * s->shape[2];
  if (!s->in_map || (s->out_n && (!s->out_dst || !s->out_src)))
    return hetee_error(HETEE_ERR_INVALID_ARG, "NULL map");
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_put(&w, "HTRS", 4);
  hetee_wbuf_u16(&w, HETEE_REFRESH_SPEC_VERSION);
  hetee_wbuf_u16(&w, 0);
  for (int i = 0; i < 3; i++) hetee_wbuf_u32(&w, (uint32_t)s->shape[i]);
  hetee_wbuf_u32(&w, batch);
  hetee_wbuf_u32(&w, (uint32_t)n);
  for (size_t i = 0; i < n; i++) hetee_wbuf_u32(&w, s->in_map[i]);
  hetee_wbuf_u32(&w, (uint32_t)(int32_t)s->in_level);
  hetee_wbuf_f64(&w, s->in_scale);
  hetee_wbuf_u8(&w, (uint8_t)s->in_encoding);
  hetee_wbuf_u32(&w, (uint32_t)s->nops);
  for (size_t i = 0; i < s->nops; i++) {
    const hetee_refresh_op *o = &s->ops[i];
    hetee_wbuf_u16(&w, (uint16_t)o->kind);
    hetee_wbuf_f64(&w, o->alpha);
    hetee_wbuf_u32(&w, (uint32_t)o->window);
    hetee_wbuf_u32(&w, (uint32_t)o->stride);
    for (int j = 0; j < 3; j++) hetee_wbuf_u32(&w, (uint32_t)o->shape[j]);
    hetee_wbuf_u32(&w, (uint32_t)o->na);
    for (size_t j = 0; j < o->na; j++) hetee_wbuf_f64(&w, o->a[j]);
    hetee_wbuf_u32(&w, (uint32_t)o->nb);
    for (size_t j = 0; j < o->nb; j++) hetee_wbuf_f64(&w, o->b[j]);
  }
  hetee_wbuf_u32(&w, (uint32_t)(int32_t)s->out_level);
  hetee_wbuf_f64(&w, s->out_scale);
  hetee_wbuf_u8(&w, (uint8_t)s->out_encoding);
  hetee_wbuf_u32(&w, s->out_ncts);
  hetee_wbuf_u32(&w, (uint32_t)s->out_n);
  for (size_t i = 0; i < s->out_n; i++) {
    hetee_wbuf_u32(&w, s->out_dst[i]);
    hetee_wbuf_u32(&w, s->out_src[i]);
  }
  if (w.err) {
    hetee_wbuf_free(&w);
    return hetee_error(HETEE_ERR_NOMEM, "no memory for refresh spec");
  }
  *buf = hetee_wbuf_take(&w, len);
  return 0;
}

void hetee_refresh_job_free(hetee_refresh_job *job) {
  if (!job) return;
  free(job->in_map);
  free(job->out_dst);
  free(job->out_src);
  for (size_t i = 0; i < 2 * HETEE_REFRESH_MAX_OPS; i++) free(job->arrays[i]);
  memset(job, 0, sizeof *job);
}

static uint32_t *read_u32s(hetee_rbuf *r, size_t n) {
  if (n > hetee_rbuf_left(r) / 4) {
    r->err = 1;
    return NULL;
  }
  uint32_t *a = malloc(n ? n * 4 : 4);
  if (!a) return NULL;
  const uint8_t *p = hetee_rbuf_get(r, 4 * n); /* checked above: in bounds */
  for (size_t i = 0; i < n; i++) a[i] = hetee_rd32(p + 4 * i);
  return a;
}

static double *read_f64s(hetee_rbuf *r, size_t n) {
  if (n > hetee_rbuf_left(r) / 8) {
    r->err = 1;
    return NULL;
  }
  double *a = malloc(n ? n * 8 : 8);
  if (!a) return NULL;
  for (size_t i = 0; i < n; i++) a[i] = hetee_rbuf_f64(r);
  return a;
}

/* Values per ciphertext of an encoding (validated by hetee_refresh_shapes). */
static uint64_t per_ct(int enc, size_t slots) { return enc == HETEE_ENC_COEFFS ? 2 * (uint64_t)slots : slots; }

int hetee_refresh_spec_decode(hetee_rbuf *r, size_t slots, hetee_refresh_job *job) {
  memset(job, 0, sizeof *job);
  hetee_refresh_spec *s = &job->spec;
  int rc = HETEE_ERR_FORMAT;
  const uint8_t *magic = hetee_rbuf_get(r, 4);
  uint16_t version = hetee_rbuf_u16(r), reserved = hetee_rbuf_u16(r);
  if (r->err || memcmp(magic, "HTRS", 4)) goto bad;
  if (version != HETEE_REFRESH_SPEC_VERSION || reserved) {
    rc = hetee_error(HETEE_ERR_VERSION, "refresh spec version %u, this enclave reads %d", version,
                     HETEE_REFRESH_SPEC_VERSION);
    goto err;
  }
  for (int i = 0; i < 3; i++) s->shape[i] = (int)hetee_rbuf_u32(r);
  s->batch = hetee_rbuf_u32(r);
  uint32_t n = hetee_rbuf_u32(r);
  if (r->err) goto bad;
  uint64_t per = shape_elems(s->shape[0], s->shape[1], s->shape[2]);
  if (s->batch < 1 || !per || s->batch > HETEE_REFRESH_MAX_VALUES / per || per * s->batch != n) {
    rc = hetee_error(HETEE_ERR_SHAPE, "refresh input shape x batch %u does not match its %u values", s->batch, n);
    goto err;
  }
  job->in_map = read_u32s(r, n);
  if (!job->in_map) goto nomem_or_bad;
  s->in_map = job->in_map;
  s->in_level = (int32_t)hetee_rbuf_u32(r);
  s->in_scale = hetee_rbuf_f64(r);
  s->in_encoding = hetee_rbuf_u8(r);
  uint32_t nops = hetee_rbuf_u32(r);
  if (r->err) goto bad;
  if (nops > HETEE_REFRESH_MAX_OPS) {
    rc = hetee_error(HETEE_ERR_LIMIT, "%u refresh ops above the limit of %d", nops, HETEE_REFRESH_MAX_OPS);
    goto err;
  }
  s->nops = nops;
  s->ops = job->ops;
  for (uint32_t i = 0; i < nops; i++) {
    hetee_refresh_op *o = &job->ops[i];
    o->kind = hetee_rbuf_u16(r);
    o->alpha = hetee_rbuf_f64(r);
    o->window = (int)(hetee_rbuf_u32(r) & 0x7fffffff);
    o->stride = (int)(hetee_rbuf_u32(r) & 0x7fffffff);
    for (int j = 0; j < 3; j++) o->shape[j] = (int)(hetee_rbuf_u32(r) & 0x7fffffff);
    o->na = hetee_rbuf_u32(r);
    if (r->err || o->na > HETEE_REFRESH_MAX_VALUES) goto bad;
    job->arrays[2 * i] = read_f64s(r, o->na);
    if (!job->arrays[2 * i]) goto nomem_or_bad;
    o->a = job->arrays[2 * i];
    o->nb = hetee_rbuf_u32(r);
    if (r->err || o->nb > HETEE_REFRESH_MAX_VALUES) goto bad;
    job->arrays[2 * i + 1] = read_f64s(r, o->nb);
    if (!job->arrays[2 * i + 1]) goto nomem_or_bad;
    o->b = job->arrays[2 * i + 1];
  }
  rc = hetee_refresh_shapes(s, job->final_shape);
  if (rc) goto err;
  s->out_level = (int32_t)hetee_rbuf_u32(r);
  s->out_scale = hetee_rbuf_f64(r);
  s->out_encoding = hetee_rbuf_u8(r);
  s->out_ncts = hetee_rbuf_u32(r);
  uint32_t out_n = hetee_rbuf_u32(r);
  if (r->err) goto bad;
  if (s->out_encoding != HETEE_ENC_SLOTS && s->out_encoding != HETEE_ENC_COEFFS) {
    rc = hetee_error(HETEE_ERR_UNSUPPORTED, "refresh output encoding %d: 0 (slots) or 1 (coefficients)",
                     s->out_encoding);
    goto err;
  }
  if (!isfinite(s->in_scale) || s->in_scale < 0 || !isfinite(s->out_scale) || s->out_scale < 0) {
    rc = hetee_error(HETEE_ERR_SCALE, "refresh input or output scale not finite or negative");
    goto err;
  }
  const uint64_t out_per = per_ct(s->out_encoding, slots);
  if (s->out_ncts < 1 || s->out_ncts > MAX_OUT_CTS || (uint64_t)out_n > (uint64_t)s->out_ncts * out_per) {
    rc = hetee_error(HETEE_ERR_LIMIT, "refresh output of %u ciphertexts / %u values out of range", s->out_ncts, out_n);
    goto err;
  }
  if ((size_t)out_n > hetee_rbuf_left(r) / 8) goto bad;
  job->out_dst = malloc(out_n ? out_n * 4u : 4u);
  job->out_src = malloc(out_n ? out_n * 4u : 4u);
  if (!job->out_dst || !job->out_src) goto nomem;
  uint64_t nfinal = (uint64_t)s->batch * job->final_shape[0] * job->final_shape[1] * job->final_shape[2];
  const uint8_t *pairs = hetee_rbuf_get(r, 8 * (size_t)out_n); /* checked above: in bounds */
  for (uint32_t i = 0; i < out_n; i++) {
    job->out_dst[i] = hetee_rd32(pairs + 8 * (size_t)i);
    job->out_src[i] = hetee_rd32(pairs + 8 * (size_t)i + 4);
    if ((uint64_t)job->out_dst[i] >= (uint64_t)s->out_ncts * out_per || job->out_src[i] >= nfinal) {
      rc = hetee_error(HETEE_ERR_SHAPE, "refresh output pair %u (%u <- %u) out of range", i, job->out_dst[i],
                       job->out_src[i]);
      goto err;
    }
  }
  s->out_n = out_n;
  s->out_dst = job->out_dst;
  s->out_src = job->out_src;
  return 0;
nomem_or_bad:
  if (r->err) goto bad;
nomem:
  rc = hetee_error(HETEE_ERR_NOMEM, "no memory for refresh job");
  goto err;
bad:
  rc = hetee_error(HETEE_ERR_FORMAT, "refresh job truncated or malformed");
err:
  hetee_refresh_job_free(job);
  return rc;
}

/* ---- input witness digest (proto.h) ------------------------------------ */
static void witness_digest(const char *tag, size_t taglen, uint32_t model, uint32_t batch, const uint8_t *sealed,
                           size_t len, size_t hashed, uint8_t out[32]) {
  uint8_t hdr[16];
  hetee_le32(hdr, model);
  hetee_le32(hdr + 4, batch);
  hetee_le64(hdr + 8, (uint64_t)len);
  crypto_generichash_state hs;
  crypto_generichash_init(&hs, NULL, 0, 32);
  crypto_generichash_update(&hs, (const uint8_t *)tag, taglen);
  crypto_generichash_update(&hs, hdr, sizeof hdr);
  crypto_generichash_update(&hs, sealed, hashed);
  crypto_generichash_final(&hs, out, 32);
}

void hetee_witness_digest(uint32_t model, uint32_t batch, const uint8_t *sealed, size_t len, uint8_t out[32]) {
  /* the box's ephemeral key and tag: its first HETEE_WITNESS_HEAD bytes
   * (all of it if shorter: such a box opens for no one) */
  witness_digest(HETEE_WITNESS_DIGEST_TAG, sizeof HETEE_WITNESS_DIGEST_TAG, model, batch, sealed, len,
                 len < HETEE_WITNESS_HEAD ? len : HETEE_WITNESS_HEAD, out);
}

void hetee_witness_digest_v1(uint32_t model, uint32_t batch, const uint8_t *sealed, size_t len, uint8_t out[32]) {
  witness_digest(HETEE_WITNESS_TAG, sizeof HETEE_WITNESS_TAG, model, batch, sealed, len, len, out);
}

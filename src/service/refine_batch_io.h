/*
 * refine_batch_io.h — the file a data provider submits to a refine job: one
 * encrypted batch (hetee_refine_batch_encrypt) serialized, and its loader
 * with the checks the server runs before acknowledging it. Shared by the
 * client library (api_refine.c) and the server (h_refine.c,
 * refine_worker.c) as static functions.
 *
 *   "HTRB" | u32 version 1 | u32 count | u32 n_in0 | u32 n_gw0 |
 *   (n_in0 + n_gw0 + 1) x (u64 len | serialized ciphertext)   (labels last)
 *
 * hetee/refine.h has no batch (de)serialization yet; the layout of
 * struct hetee_refine_batch (src/hemat/refine_host.c, private) is mirrored
 * here. TODO(refine): replace with hetee_refine_batch_save / _load once
 * refine_host.c exports them.
 */
#ifndef HETEE_SERVICE_REFINE_BATCH_IO_H
#define HETEE_SERVICE_REFINE_BATCH_IO_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hetee/ckks.h"
#include "hetee/common.h"
#include "hetee/refine.h"

/* Mirror of src/hemat/refine_host.c's struct (freed by hetee_refine_batch_free). */
struct hetee_refine_batch {
  uint32_t count;
  hetee_ckks_ciphertext **in0;
  size_t n_in0;
  hetee_ckks_ciphertext **gw0;
  size_t n_gw0;
  hetee_ckks_ciphertext *labels;
};

#define RBATCH_IN_SCALE 0x1p26 /* REFINE_IN_SCALE: inputs and labels */
#define RBATCH_W_SCALE 0x1p34  /* REFINE_W_SCALE: layer 0's G weight polynomials */

static inline void rb_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t rb_rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline int rbatch_save(const hetee_ckks_context *ctx, const hetee_refine_batch *b, uint8_t **out, size_t *outlen) {
  size_t n = b->n_in0 + b->n_gw0 + 1, total = 20;
  for (size_t i = 0; i < n; i++) {
    const hetee_ckks_ciphertext *c = i < b->n_in0 ? b->in0[i] : i < b->n_in0 + b->n_gw0 ? b->gw0[i - b->n_in0] : b->labels;
    size_t l = 0;
    int rc = hetee_ckks_ciphertext_save_size(ctx, c, &l);
    if (rc) return rc;
    total += 8 + l;
  }
  uint8_t *buf = malloc(total), *p = buf;
  if (!buf) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  memcpy(p, "HTRB", 4);
  rb_le32(p + 4, 1);
  rb_le32(p + 8, b->count);
  rb_le32(p + 12, (uint32_t)b->n_in0);
  rb_le32(p + 16, (uint32_t)b->n_gw0);
  p += 20;
  for (size_t i = 0; i < n; i++) {
    const hetee_ckks_ciphertext *c = i < b->n_in0 ? b->in0[i] : i < b->n_in0 + b->n_gw0 ? b->gw0[i - b->n_in0] : b->labels;
    size_t l = 0;
    int rc = hetee_ckks_ciphertext_save_to(ctx, c, p + 8, total - (size_t)(p + 8 - buf), &l);
    if (rc) {
      free(buf);
      return rc;
    }
    rb_le32(p, (uint32_t)l);
    rb_le32(p + 4, (uint32_t)((uint64_t)l >> 32));
    p += 8 + l;
  }
  *out = buf;
  *outlen = (size_t)(p - buf);
  return 0;
}

static inline int rbatch_ct_ok(const hetee_ckks_ciphertext *c, double scale) {
  return hetee_ckks_ciphertext_level(c) == 1 && hetee_ckks_ciphertext_size(c) == 2 &&
         fabs(hetee_ckks_ciphertext_scale(c) / scale - 1.0) < 0x1p-20;
}

/* Loads and checks against the plan: sample count 1..B, ciphertext counts
 * of F[0] (input) and G[0] (when layer 0 trains), every ciphertext's
 * format, level (1), size (2) and scale. Errors: HETEE_ERR_FORMAT,
 * HETEE_ERR_SHAPE, HETEE_ERR_SCALE / what the ciphertext loader says. */
static inline int rbatch_load_(const hetee_ckks_context *ctx, const hetee_refine_plan *pl, const uint8_t *buf, size_t len,
                               int val, hetee_refine_batch **out) {
  if (len < 20 || memcmp(buf, "HTRB", 4) || rb_rd32(buf + 4) != 1)
    return hetee_error(HETEE_ERR_FORMAT, "not a refine batch (HTRB version 1)");
  uint32_t count = rb_rd32(buf + 8), nin = rb_rd32(buf + 12), ngw = rb_rd32(buf + 16);
  const hetee_refine_layer *L = &pl->L[0];
  size_t want_gw = L->trains && !val ? L->G.n_w_cts : 0; /* a validation batch has no gradient part */
  if (count < 1 || count > pl->cfg.batch)
    return hetee_error(HETEE_ERR_SHAPE, "a batch of %u samples (the job's batch is %u)", count, pl->cfg.batch);
  if (nin != L->F.n_in_cts || ngw != want_gw)
    return hetee_error(HETEE_ERR_SHAPE, "%u input and %u layer-input ciphertexts; the job's plan has %zu and %zu", nin, ngw,
                       L->F.n_in_cts, want_gw);
  hetee_refine_batch *b = calloc(1, sizeof *b);
  if (!b) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  b->count = count;
  b->in0 = calloc(nin ? nin : 1, sizeof *b->in0);
  b->gw0 = ngw ? calloc(ngw, sizeof *b->gw0) : NULL;
  int rc = !b->in0 || (ngw && !b->gw0) ? hetee_error(HETEE_ERR_NOMEM, "no memory") : 0;
  b->n_in0 = nin;
  b->n_gw0 = ngw;
  size_t off = 20, n = (size_t)nin + ngw + 1;
  for (size_t i = 0; i < n && !rc; i++) {
    if (len - off < 8) {
      rc = hetee_error(HETEE_ERR_FORMAT, "refine batch truncated at ciphertext %zu", i);
      break;
    }
    uint64_t l = (uint64_t)rb_rd32(buf + off) | (uint64_t)rb_rd32(buf + off + 4) << 32;
    off += 8;
    if (l > len - off) {
      rc = hetee_error(HETEE_ERR_FORMAT, "refine batch truncated at ciphertext %zu", i);
      break;
    }
    hetee_ckks_ciphertext **dst = i < nin ? &b->in0[i] : i < (size_t)nin + ngw ? &b->gw0[i - nin] : &b->labels;
    rc = hetee_ckks_ciphertext_load(ctx, buf + off, (size_t)l, dst);
    if (!rc && !rbatch_ct_ok(*dst, i >= nin && i < (size_t)nin + ngw ? RBATCH_W_SCALE : RBATCH_IN_SCALE))
      rc = hetee_error(HETEE_ERR_SCALE, "refine batch ciphertext %zu: level, size or scale is not the plan's", i);
    off += (size_t)l;
  }
  if (!rc && off != len) rc = hetee_error(HETEE_ERR_FORMAT, "%zu bytes after the refine batch", len - off);
  if (rc) {
    hetee_refine_batch_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

static inline int rbatch_load(const hetee_ckks_context *ctx, const hetee_refine_plan *pl, const uint8_t *buf, size_t len,
                              hetee_refine_batch **out) {
  return rbatch_load_(ctx, pl, buf, len, 0, out);
}

/* ---- the MP's encrypted validation set (hetee_refine_valset_encrypt) ----
 *   "HTRV" | u32 version 1 | u32 count | u32 nb | nb x (u64 len | HTRB batch without gradient part)
 * Mirror of src/hemat/refine_host.c's private struct (freed by
 * hetee_refine_valset_free). TODO(refine): hetee_refine_valset_save / _load. */
struct hetee_refine_valset {
  const hetee_ckks_context *ctx;
  hetee_refine_plan p;
  uint32_t count, nb;
  hetee_refine_batch **b;
};

static inline int rvalset_save(const hetee_ckks_context *ctx, const hetee_refine_valset *vs, uint8_t **out, size_t *outlen) {
  size_t total = 16, cap = 16;
  uint8_t *buf = malloc(cap);
  if (!buf) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  memcpy(buf, "HTRV", 4);
  rb_le32(buf + 4, 1);
  rb_le32(buf + 8, vs->count);
  rb_le32(buf + 12, vs->nb);
  for (uint32_t i = 0; i < vs->nb; i++) {
    uint8_t *b = NULL;
    size_t l = 0;
    int rc = rbatch_save(ctx, vs->b[i], &b, &l);
    uint8_t *nb = rc ? NULL : realloc(buf, total + 8 + l);
    if (!nb) {
      free(b);
      free(buf);
      return rc ? rc : hetee_error(HETEE_ERR_NOMEM, "no memory");
    }
    buf = nb;
    rb_le32(buf + total, (uint32_t)l);
    rb_le32(buf + total + 4, (uint32_t)((uint64_t)l >> 32));
    memcpy(buf + total + 8, b, l);
    total += 8 + l;
    free(b);
  }
  (void)cap;
  *out = buf;
  *outlen = total;
  return 0;
}

/* Loads and checks against the plan (each batch as rbatch_load, without
 * the gradient part; batch i holds min(B, count - i B) samples). */
static inline int rvalset_load(const hetee_ckks_context *ctx, const hetee_refine_plan *pl, const uint8_t *buf, size_t len,
                               hetee_refine_valset **out) {
  if (len < 16 || memcmp(buf, "HTRV", 4) || rb_rd32(buf + 4) != 1)
    return hetee_error(HETEE_ERR_FORMAT, "not a validation set (HTRV version 1)");
  uint32_t count = rb_rd32(buf + 8), nb = rb_rd32(buf + 12), B = pl->cfg.batch;
  if (count < 1 || count > (1u << 20) || nb != (count + B - 1) / B)
    return hetee_error(HETEE_ERR_SHAPE, "a validation set of %u samples in %u batches (the job's batch is %u)", count, nb, B);
  hetee_refine_valset *vs = calloc(1, sizeof *vs);
  if (!vs || !(vs->b = calloc(nb, sizeof *vs->b))) {
    free(vs);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  vs->ctx = ctx;
  vs->p = *pl;
  vs->count = count;
  size_t off = 16;
  int rc = 0;
  for (uint32_t i = 0; i < nb && !rc; i++) {
    if (len - off < 8) {
      rc = hetee_error(HETEE_ERR_FORMAT, "validation set truncated at batch %u", i);
      break;
    }
    uint64_t l = (uint64_t)rb_rd32(buf + off) | (uint64_t)rb_rd32(buf + off + 4) << 32;
    off += 8;
    if (l > len - off) {
      rc = hetee_error(HETEE_ERR_FORMAT, "validation set truncated at batch %u", i);
      break;
    }
    rc = rbatch_load_(ctx, pl, buf + off, (size_t)l, 1, &vs->b[i]);
    if (!rc) vs->nb++;
    uint32_t want = count - i * B < B ? count - i * B : B;
    if (!rc && vs->b[i]->count != want)
      rc = hetee_error(HETEE_ERR_SHAPE, "validation batch %u holds %u samples, not %u", i, vs->b[i]->count, want);
    off += (size_t)l;
  }
  if (!rc && off != len) rc = hetee_error(HETEE_ERR_FORMAT, "%zu bytes after the validation set", len - off);
  if (rc) {
    hetee_refine_valset_free(vs);
    return rc;
  }
  *out = vs;
  return 0;
}

#endif

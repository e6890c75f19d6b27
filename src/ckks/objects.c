/*
 * objects.c — plaintext and ciphertext containers (level, scale, degree,
 * fingerprint, row storage in NTT form) and the polynomial helpers shared by
 * the CKKS files: seeded uniform expansion and small-polynomial -> NTT.
 */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_arena.h"
#include "ckks/ckks_internal.h"

/* ---- per-thread scratch arena (ckks_arena.h) ---- */

static _Thread_local struct {
  uint8_t *base;
  size_t cap, top, high; /* high: most bytes in use at once */
} arena;

size_t ckks_arena_bytes(const hetee_ckks_context *ctx) {
  /* the largest user: slot decoding (nq rows + N/2 complex values) or
   * bounded slot encoding + encryption (N/2 complex, N doubles, N int64,
   * N noise bytes, one row); + the CRT plan and alignment slack */
  size_t n = ctx->n, rows = (size_t)ctx->nq;
  size_t dec = (rows + 1) * n * 8, enc = 3 * n * 8 + n + n * 8;
  return (dec > enc ? dec : enc) + 64 * (size_t)CKKS_MAX_PRIMES * 8 + 16 * 64;
}

size_t ckks_arena_set(void *base, size_t bytes) {
  size_t high = arena.high;
  arena.base = base;
  arena.cap = base ? bytes : 0;
  arena.top = 0;
  arena.high = 0;
  return high;
}

void *ckks_tmp_alloc(size_t bytes) {
  size_t r = (bytes + 63) & ~(size_t)63;
  if (r < bytes) return NULL;
  if (r == 0) r = 64;
  if (arena.base && arena.cap - arena.top >= r) {
    void *p = arena.base + arena.top;
    arena.top += r;
    if (arena.top > arena.high) arena.high = arena.top;
    return p;
  }
  return aligned_alloc(64, r);
}

void ckks_tmp_free(void *p, size_t bytes, int wipe) {
  if (!p) return;
  uint8_t *b = p;
  if (arena.base && b >= arena.base && b < arena.base + arena.cap) {
    /* stack order: releasing the newest block pops it (the arena's owner
     * wipes the whole arena) */
    size_t off = (size_t)(b - arena.base);
    if (off < arena.top) arena.top = off;
    return;
  }
  if (wipe) sodium_memzero(p, bytes);
  free(p);
}

int hetee_ckks_plaintext_new(const hetee_ckks_context *ctx, hetee_ckks_plaintext **out) {
  if (!ctx || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_ckks_plaintext *pt = calloc(1, sizeof *pt);
  if (!pt) return hetee_error(HETEE_ERR_NOMEM, "plaintext allocation");
  memcpy(pt->fp, ctx->fingerprint, sizeof pt->fp);
  pt->level = -1;
  pt->n = ctx->n;
  *out = pt;
  return 0;
}

void hetee_ckks_plaintext_free(hetee_ckks_plaintext *pt) {
  if (!pt) return;
  /* plaintexts hold decrypted data in the enclave: wipe */
  if (pt->data) hetee_free_secure(pt->data, pt->cap_rows * pt->n * 8);
  free(pt);
}

int hetee_ckks_plaintext_level(const hetee_ckks_plaintext *pt) { return pt ? pt->level : -1; }
double hetee_ckks_plaintext_scale(const hetee_ckks_plaintext *pt) { return pt ? pt->scale : 0; }

int ckks_pt_reserve(const hetee_ckks_context *ctx, hetee_ckks_plaintext *pt, int level) {
  size_t rows = (size_t)level + 1;
  if (pt->cap_rows < rows || pt->n != ctx->n) {
    uint64_t *d = hetee_alloc(rows * ctx->n * 8);
    if (!d) return hetee_error(HETEE_ERR_NOMEM, "plaintext rows");
    if (pt->data) hetee_free_secure(pt->data, pt->cap_rows * pt->n * 8);
    pt->data = d;
    pt->cap_rows = rows;
    pt->n = ctx->n;
  }
  memcpy(pt->fp, ctx->fingerprint, sizeof pt->fp);
  pt->level = level;
  return 0;
}

int hetee_ckks_ciphertext_new(const hetee_ckks_context *ctx, hetee_ckks_ciphertext **out) {
  if (!ctx || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_ckks_ciphertext *ct = calloc(1, sizeof *ct);
  if (!ct) return hetee_error(HETEE_ERR_NOMEM, "ciphertext allocation");
  memcpy(ct->fp, ctx->fingerprint, sizeof ct->fp);
  ct->level = -1;
  ct->n = ctx->n;
  *out = ct;
  return 0;
}

void hetee_ckks_ciphertext_free(hetee_ckks_ciphertext *ct) {
  if (!ct) return;
  for (int k = 0; k < 3; k++) hetee_free(ct->c[k]);
  free(ct);
}

/* Makes room for `size` polynomials of level+1 rows; contents undefined
 * except that rows already present are kept (callers may alias). */
int ckks_ct_reserve(const hetee_ckks_context *ctx, hetee_ckks_ciphertext *ct, int level, int size) {
  size_t rows = (size_t)level + 1;
  if (ct->cap_rows < rows || ct->n != ctx->n) {
    for (int k = 0; k < 3; k++) {
      hetee_free(ct->c[k]);
      ct->c[k] = NULL;
    }
    ct->cap_rows = 0;
    ct->n = ctx->n;
  }
  for (int k = 0; k < size; k++) {
    if (!ct->c[k]) {
      size_t cap = ct->cap_rows > rows ? ct->cap_rows : rows;
      ct->c[k] = hetee_alloc(cap * ctx->n * 8);
      if (!ct->c[k]) return hetee_error(HETEE_ERR_NOMEM, "ciphertext rows");
    }
  }
  if (ct->cap_rows < rows) ct->cap_rows = rows;
  ct->level = level;
  ct->size = size;
  ct->seeded = 0;
  memcpy(ct->fp, ctx->fingerprint, sizeof ct->fp);
  return 0;
}

void ckks_ct_set_fp(const hetee_ckks_context *ctx, hetee_ckks_ciphertext *ct) {
  memcpy(ct->fp, ctx->fingerprint, sizeof ct->fp);
}

int hetee_ckks_ciphertext_copy(const hetee_ckks_ciphertext *src, hetee_ckks_ciphertext *dst) {
  if (!src || !dst) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (src == dst) return 0;
  if (src->level < 0) return hetee_error(HETEE_ERR_INVALID_ARG, "source ciphertext is empty");
  size_t rows = (size_t)src->level + 1, n = src->n;
  if (dst->cap_rows < rows || dst->n != n) {
    for (int k = 0; k < 3; k++) {
      hetee_free(dst->c[k]);
      dst->c[k] = NULL;
    }
    dst->cap_rows = rows;
    dst->n = n;
  }
  for (int k = 0; k < src->size; k++) {
    if (!dst->c[k]) {
      dst->c[k] = hetee_alloc(dst->cap_rows * n * 8);
      if (!dst->c[k]) return hetee_error(HETEE_ERR_NOMEM, "ciphertext rows");
    }
    memcpy(dst->c[k], src->c[k], rows * n * 8);
  }
  memcpy(dst->fp, src->fp, sizeof dst->fp);
  dst->level = src->level;
  dst->size = src->size;
  dst->scale = src->scale;
  dst->seeded = src->seeded;
  memcpy(dst->seed, src->seed, sizeof dst->seed);
  return 0;
}

int hetee_ckks_ciphertext_level(const hetee_ckks_ciphertext *ct) { return ct ? ct->level : -1; }
double hetee_ckks_ciphertext_scale(const hetee_ckks_ciphertext *ct) { return ct ? ct->scale : 0; }
int hetee_ckks_ciphertext_size(const hetee_ckks_ciphertext *ct) { return ct && ct->level >= 0 ? ct->size : 0; }
int hetee_ckks_ciphertext_set_scale(hetee_ckks_ciphertext *ct, double scale) {
  if (!ct) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL ciphertext");
  if (!(isfinite(scale) && scale > 0)) return hetee_error(HETEE_ERR_SCALE, "scale must be finite and > 0");
  ct->scale = scale;
  return 0;
}

void ckks_expand_uniform(const hetee_ckks_context *ctx, const uint8_t seed[HETEE_SEED_BYTES], uint64_t domain,
                         const int *primes, int nrows, uint64_t *out) {
  hetee_prg prg;
  hetee_prg_init(&prg, seed, domain);
  for (int r = 0; r < nrows; r++) hetee_sample_uniform(&prg, &ctx->mod[primes[r]], out + (size_t)r * ctx->n, ctx->n);
  hetee_prg_wipe(&prg);
}

void ckks_small_to_ntt(const hetee_ckks_context *ctx, const int8_t *v, const int *primes, int nrows, uint64_t *out) {
  for (int r = 0; r < nrows; r++) {
    uint64_t *row = out + (size_t)r * ctx->n;
    hetee_vec_from_small(&ctx->mod[primes[r]], v, row, ctx->n);
    hetee_ntt_forward(ctx->ntt[primes[r]], row);
  }
}

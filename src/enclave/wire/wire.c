/*
 * wire.c — little-endian writer / bounds-checked reader (see wire.h).
 */
#include "enclave/wire/wire.h"

#include <sodium.h>
#include <stdlib.h>

void hetee_wbuf_init(hetee_wbuf *w) { memset(w, 0, sizeof *w); }

void hetee_wbuf_free(hetee_wbuf *w) {
  if (w->p) {
    sodium_memzero(w->p, w->cap);
    free(w->p);
  }
  memset(w, 0, sizeof *w);
}

void hetee_wbuf_free_public(hetee_wbuf *w) {
  free(w->p);
  memset(w, 0, sizeof *w);
}

int hetee_wbuf_reserve(hetee_wbuf *w, size_t extra) {
  if (w->err) return -1;
  if (extra > SIZE_MAX / 2 - w->len) {
    w->err = 1;
    return -1;
  }
  if (w->len + extra <= w->cap) return 0;
  size_t cap = w->cap ? w->cap : 256;
  while (cap < w->len + extra) cap *= 2;
  /* Grow by copy rather than realloc so the old block can be wiped. */
  uint8_t *np = malloc(cap);
  if (!np) {
    w->err = 1;
    return -1;
  }
  if (w->p) {
    memcpy(np, w->p, w->len);
    sodium_memzero(w->p, w->cap);
    free(w->p);
  }
  w->p = np;
  w->cap = cap;
  return 0;
}

void hetee_wbuf_put(hetee_wbuf *w, const void *src, size_t n) {
  if (n == 0 || hetee_wbuf_reserve(w, n)) return;
  memcpy(w->p + w->len, src, n);
  w->len += n;
}
void hetee_wbuf_u8(hetee_wbuf *w, uint8_t v) { hetee_wbuf_put(w, &v, 1); }
void hetee_wbuf_u16(hetee_wbuf *w, uint16_t v) {
  uint8_t b[2];
  hetee_le16(b, v);
  hetee_wbuf_put(w, b, 2);
}
void hetee_wbuf_u32(hetee_wbuf *w, uint32_t v) {
  uint8_t b[4];
  hetee_le32(b, v);
  hetee_wbuf_put(w, b, 4);
}
void hetee_wbuf_u64(hetee_wbuf *w, uint64_t v) {
  uint8_t b[8];
  hetee_le64(b, v);
  hetee_wbuf_put(w, b, 8);
}
void hetee_wbuf_f64(hetee_wbuf *w, double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  hetee_wbuf_u64(w, u);
}
void hetee_wbuf_blob(hetee_wbuf *w, const void *src, size_t n) {
  hetee_wbuf_u64(w, (uint64_t)n);
  hetee_wbuf_put(w, src, n);
}
uint8_t *hetee_wbuf_take(hetee_wbuf *w, size_t *len) {
  uint8_t *p = w->p;
  *len = w->len;
  if (!p) p = malloc(1); /* an empty result is still a valid pointer */
  memset(w, 0, sizeof *w);
  return p;
}

const uint8_t *hetee_rbuf_get(hetee_rbuf *r, size_t n) {
  if (r->err || n > r->len - r->off) {
    r->err = 1;
    return NULL;
  }
  /* an empty frame body is a NULL buffer: NULL + 0 is undefined in C
   * (found by fuzz/enclave_frames under UBSan) */
  const uint8_t *p = r->p ? r->p + r->off : NULL;
  r->off += n;
  return p;
}
void hetee_rbuf_copy(hetee_rbuf *r, void *dst, size_t n) {
  const uint8_t *p = hetee_rbuf_get(r, n);
  if (p) memcpy(dst, p, n);
  else memset(dst, 0, n);
}
uint8_t hetee_rbuf_u8(hetee_rbuf *r) {
  const uint8_t *p = hetee_rbuf_get(r, 1);
  return p ? p[0] : 0;
}
uint16_t hetee_rbuf_u16(hetee_rbuf *r) {
  const uint8_t *p = hetee_rbuf_get(r, 2);
  return p ? hetee_rd16(p) : 0;
}
uint32_t hetee_rbuf_u32(hetee_rbuf *r) {
  const uint8_t *p = hetee_rbuf_get(r, 4);
  return p ? hetee_rd32(p) : 0;
}
uint64_t hetee_rbuf_u64(hetee_rbuf *r) {
  const uint8_t *p = hetee_rbuf_get(r, 8);
  return p ? hetee_rd64(p) : 0;
}
double hetee_rbuf_f64(hetee_rbuf *r) {
  uint64_t u = hetee_rbuf_u64(r);
  double d;
  memcpy(&d, &u, 8);
  return d;
}
const uint8_t *hetee_rbuf_blob(hetee_rbuf *r, size_t max, size_t *n) {
  uint64_t len = hetee_rbuf_u64(r);
  *n = 0;
  if (r->err || len > max || len > hetee_rbuf_left(r)) {
    r->err = 1;
    return NULL;
  }
  *n = (size_t)len;
  return hetee_rbuf_get(r, (size_t)len);
}

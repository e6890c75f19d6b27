/*
 * wire.h — little-endian byte writer and bounds-checked reader used by every
 * hetee enclave wire format (frames, evidence, key bundles, refresh specs,
 * sealed state). Internal to hetee (src/), not part of the public API.
 *
 * The reader never reads past its end: every get_* checks the remaining length
 * first and latches an error flag, so a parser can read a whole structure and
 * check `r.err` once (the style of Redis' protocol parser: bound every size
 * before trusting it).
 */
#ifndef HETEE_ENCLAVE_WIRE_H
#define HETEE_ENCLAVE_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct hetee_wbuf {
  uint8_t *p;
  size_t len, cap;
  int err; /* 1 after an allocation failure: later puts are ignored */
} hetee_wbuf;

typedef struct hetee_rbuf {
  const uint8_t *p;
  size_t len, off;
  int err; /* 1 after any read past the end */
} hetee_rbuf;

void hetee_wbuf_init(hetee_wbuf *w);
/* Frees the buffer, wiping it first (buffers may hold secrets). */
void hetee_wbuf_free(hetee_wbuf *w);
/* Frees without wiping: only for buffers that never held anything secret
 * (ciphertexts, public requests). */
void hetee_wbuf_free_public(hetee_wbuf *w);
int hetee_wbuf_reserve(hetee_wbuf *w, size_t extra);
void hetee_wbuf_put(hetee_wbuf *w, const void *src, size_t n);
void hetee_wbuf_u8(hetee_wbuf *w, uint8_t v);
void hetee_wbuf_u16(hetee_wbuf *w, uint16_t v);
void hetee_wbuf_u32(hetee_wbuf *w, uint32_t v);
void hetee_wbuf_u64(hetee_wbuf *w, uint64_t v);
void hetee_wbuf_f64(hetee_wbuf *w, double v);
/* u64 length followed by the bytes. */
void hetee_wbuf_blob(hetee_wbuf *w, const void *src, size_t n);
/* Transfers ownership of the bytes to the caller (malloc'd); resets w. */
uint8_t *hetee_wbuf_take(hetee_wbuf *w, size_t *len);

static inline void hetee_rbuf_init(hetee_rbuf *r, const void *p, size_t len) {
  r->p = (const uint8_t *)p;
  r->len = len;
  r->off = 0;
  r->err = 0;
}
static inline size_t hetee_rbuf_left(const hetee_rbuf *r) { return r->err ? 0 : r->len - r->off; }
/* Pointer to the next n bytes (NULL and err set if fewer remain). */
const uint8_t *hetee_rbuf_get(hetee_rbuf *r, size_t n);
void hetee_rbuf_copy(hetee_rbuf *r, void *dst, size_t n);
uint8_t hetee_rbuf_u8(hetee_rbuf *r);
uint16_t hetee_rbuf_u16(hetee_rbuf *r);
uint32_t hetee_rbuf_u32(hetee_rbuf *r);
uint64_t hetee_rbuf_u64(hetee_rbuf *r);
double hetee_rbuf_f64(hetee_rbuf *r);
/* u64 length (must be <= max and <= what remains) then the bytes. */
const uint8_t *hetee_rbuf_blob(hetee_rbuf *r, size_t max, size_t *n);

static inline void hetee_le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void hetee_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void hetee_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t hetee_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t hetee_rd32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t hetee_rd64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

#endif

/*
 * pack.c — bit packing of residue rows (pack.h): the packed ciphertext
 * form's writer and its validating reader. The reader keeps a 64-bit
 * window of the stream and loads the next little-endian word when the
 * window holds fewer than b bits; the row's last word is read byte by byte
 * (never past the row). Values are public: a value >= q or a nonzero
 * padding bit is accumulated into the verdict without branching on data.
 */
#include "ckks/pack.h"

#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define PACK_LE 1
#endif

static inline void st64(uint8_t *p, uint64_t v) {
#ifdef PACK_LE
  memcpy(p, &v, 8);
#else
  for (int k = 0; k < 8; k++) p[k] = (uint8_t)(v >> (8 * k));
#endif
}

static inline uint64_t ld64(const uint8_t *p) {
#ifdef PACK_LE
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
#else
  uint64_t v = 0;
  for (int k = 0; k < 8; k++) v |= (uint64_t)p[k] << (8 * k);
  return v;
#endif
}

/* The m < 8 bytes p[0..m) as a little-endian word, zero above. */
static inline uint64_t ld_part(const uint8_t *p, size_t m) {
  uint64_t v = 0;
  for (size_t k = 0; k < m; k++) v |= (uint64_t)p[k] << (8 * k);
  return v;
}

void ckks_pack_row(uint8_t *dst, const uint64_t *src, size_t n, unsigned b) {
  const uint64_t mask = (UINT64_C(1) << b) - 1;
  uint64_t acc = 0;
  unsigned fill = 0; /* bits in acc, < 64 */
  size_t pos = 0;
  for (size_t j = 0; j < n; j++) {
    uint64_t v = src[j] & mask;
    acc |= v << fill;
    if (fill + b >= 64) { /* b <= 62: fill >= 2 here */
      st64(dst + pos, acc);
      pos += 8;
      acc = v >> (64 - fill);
      fill = fill + b - 64;
    } else {
      fill += b;
    }
  }
  for (unsigned k = 0; k < (fill + 7) / 8; k++) dst[pos++] = (uint8_t)(acc >> (8 * k));
}

uint64_t ckks_unpack_row(uint64_t *dst, const uint8_t *src, size_t n, unsigned b, uint64_t q) {
  const uint64_t mask = (UINT64_C(1) << b) - 1;
  const size_t nbytes = ckks_pack_row_bytes(n, b);
  uint64_t acc = 0, bad0 = 0, bad1 = 0;
  unsigned avail = 0; /* bits of the stream in acc, < 64 */
  size_t pos = 0, j = 0;
  /* while a whole word is left to load */
  for (; j < n && nbytes - pos >= 8; j++) {
    uint64_t v;
    if (avail >= b) {
      v = acc & mask;
      acc >>= b;
      avail -= b;
    } else {
      uint64_t w = ld64(src + pos);
      pos += 8;
      v = (acc | (w << avail)) & mask;
      acc = w >> (b - avail);
      avail += 64 - b;
    }
    dst[j] = v;
    if (j & 1) bad1 |= (uint64_t)(v >= q);
    else bad0 |= (uint64_t)(v >= q);
  }
  /* the row's last (partial) word */
  for (; j < n; j++) {
    uint64_t v;
    if (avail >= b) {
      v = acc & mask;
      acc >>= b;
      avail -= b;
    } else {
      size_t m = nbytes - pos < 8 ? nbytes - pos : 8;
      uint64_t w = m == 8 ? ld64(src + pos) : ld_part(src + pos, m);
      pos += m;
      v = (acc | (w << avail)) & mask;
      acc = w >> (b - avail);
      avail += 64 - b;
    }
    dst[j] = v;
    bad0 |= (uint64_t)(v >= q);
  }
  /* what is left in the window is the row's padding (zero-filled above
   * the row's last byte), and every byte of the row must have been read */
  return bad0 | bad1 | (uint64_t)(acc != 0) | (uint64_t)(pos != nbytes);
}


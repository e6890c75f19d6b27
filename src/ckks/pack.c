/*
 * pack.c — bit packing of residue rows (pack.h): the packed ciphertext
 * form's writer and its validating reader. The reader keeps a 64-bit
 * window of the stream and loads the next little-endian word when the
 * window holds fewer than b bits; the row's last word is read byte by byte
 * (never past the row). Values are public: a value >= q or a nonzero
 * padding bit is accumulated into the verdict without branching on data.
 * Groups of 8 values (b bytes, byte-aligned) away from the row's end are
 * read first by a loop compiled once per width b (every shift and offset
 * a constant: one unaligned load per value, no loop-carried state), the
 * rest by the stream reader.
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

/* The stream reader: any n, reads exactly the row's bytes. */
static uint64_t unpack_stream(uint64_t *dst, const uint8_t *src, size_t n, unsigned b, uint64_t q) {
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


/* ng groups of 8 values of B bits (B a constant after inlining): value j
 * of group g is at byte (j B) / 8 of the group, shifted by (j B) % 8, with
 * one more byte when that shift + B exceeds 64. The caller keeps every read
 * inside the row (reads reach 9 bytes past the group's 7th value start). */
static inline __attribute__((always_inline)) uint64_t unpack_groups(uint64_t *dst, const uint8_t *src, size_t ng,
                                                                    const unsigned B, uint64_t q) {
  const uint64_t mask = (UINT64_C(1) << B) - 1;
  uint64_t bad = 0;
  for (size_t g = 0; g < ng; g++) {
    const uint8_t *p = src + g * B;
    uint64_t *d = dst + 8 * g;
#pragma GCC unroll 8
    for (unsigned j = 0; j < 8; j++) {
      const unsigned bit = j * B, off = bit >> 3, sh = bit & 7;
      uint64_t v = ld64(p + off) >> sh;
      if (sh + B > 64) v |= (uint64_t)p[off + 8] << (64 - sh);
      v &= mask;
      d[j] = v;
      bad |= (uint64_t)(v >= q);
    }
  }
  return bad;
}

uint64_t ckks_unpack_row(uint64_t *dst, const uint8_t *src, size_t n, unsigned b, uint64_t q) {
  const size_t nbytes = ckks_pack_row_bytes(n, b);
  /* groups whose reads stay at least 7 bytes inside the row */
  size_t ng = nbytes >= 16 && b ? (nbytes - 16) / b : 0;
  if (ng > n / 8) ng = n / 8;
  uint64_t bad = 0;
  switch (b) {
#define PACK_CASE(B)                                \
  case B:                                           \
    bad = unpack_groups(dst, src, ng, B, q);        \
    break;
    PACK_CASE(20) PACK_CASE(21) PACK_CASE(22) PACK_CASE(23) PACK_CASE(24) PACK_CASE(25) PACK_CASE(26)
    PACK_CASE(27) PACK_CASE(28) PACK_CASE(29) PACK_CASE(30) PACK_CASE(31) PACK_CASE(32) PACK_CASE(33)
    PACK_CASE(34) PACK_CASE(35) PACK_CASE(36) PACK_CASE(37) PACK_CASE(38) PACK_CASE(39) PACK_CASE(40)
    PACK_CASE(41) PACK_CASE(42) PACK_CASE(43) PACK_CASE(44) PACK_CASE(45) PACK_CASE(46) PACK_CASE(47)
    PACK_CASE(48) PACK_CASE(49) PACK_CASE(50) PACK_CASE(51) PACK_CASE(52) PACK_CASE(53) PACK_CASE(54)
    PACK_CASE(55) PACK_CASE(56) PACK_CASE(57) PACK_CASE(58) PACK_CASE(59) PACK_CASE(60) PACK_CASE(61)
    PACK_CASE(62)
#undef PACK_CASE
  default:
    ng = 0; /* other widths: the stream reader only */
  }
  return bad | unpack_stream(dst + 8 * ng, src + ng * b, n - 8 * ng, b, q);
}

/*
 * sampler.c — samplers over the PRG stream (prg.c).
 *
 * uniform  for each output: read 8 bytes, little-endian word w, keep the low
 *          b = bitlen(q) bits, accept if < q else draw again (rejection,
 *          no modulo bias; acceptance > 1/2). The accept/reject decision is
 *          on public randomness only (the uniform `a` is public).
 * ternary  for each output: read 1 byte x, reject x = 255, output x mod 3 - 1
 *          (255 = 3 * 85 so the three values are exactly equiprobable; the
 *          rejection reveals nothing about the output).
 * cbd      centered binomial with k = 21 (Kyber-style, Alkim et al. 2016):
 *          read 6 bytes, little-endian 48-bit word w, output
 *          popcount(w & (2^21-1)) - popcount((w >> 21) & (2^21-1)); variance
 *          k/2 = 10.5, sigma ~ 3.24. Popcount by SWAR arithmetic, no table.
 */
#include "ring_internal.h"

#include <sodium.h>

static uint64_t load_le(const uint8_t *b, int k) {
  uint64_t w = 0;
  for (int i = 0; i < k; i++)
    w |= (uint64_t)b[i] << (8 * i);
  return w;
}

void hetee_sample_uniform(hetee_prg *p, const hetee_modulus *m, uint64_t *out, size_t n) {
  const uint64_t q = m->q;
  const uint64_t mask = (m->bits >= 64) ? ~(uint64_t)0 : (((uint64_t)1 << m->bits) - 1);
  uint8_t b[8];
  for (size_t i = 0; i < n;) {
    uint64_t w;
    if (p->len - p->pos >= 8) { /* fast path: the word is in the buffer */
      w = load_le(p->buf + p->pos, 8);
      p->pos += 8;
    } else {
      hetee_prg_bytes(p, b, 8);
      w = load_le(b, 8);
    }
    w &= mask;
    if (w < q)
      out[i++] = w;
  }
}

void hetee_sample_ternary(hetee_prg *p, int8_t *out, size_t n) {
  uint8_t buf[256];
  size_t have = 0, pos = 0;
  for (size_t i = 0; i < n;) {
    if (pos == have) {
      have = sizeof buf;
      hetee_prg_bytes(p, buf, have);
      pos = 0;
    }
    uint32_t x = buf[pos++];
    if (x == 255)
      continue; /* public: independent of the output value */
    /* x mod 3 without a data-dependent division: q3 = floor(x / 3) */
    uint32_t q3 = (x * 171u) >> 9;
    out[i++] = (int8_t)((int32_t)(x - 3 * q3) - 1);
  }
  sodium_memzero(buf, sizeof buf);
}

static inline uint32_t popcount21(uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return (uint32_t)((x * 0x0101010101010101ull) >> 56);
}

void hetee_sample_cbd(hetee_prg *p, int8_t *out, size_t n) {
  const uint64_t k21 = ((uint64_t)1 << HETEE_CBD_K) - 1;
  uint8_t buf[6 * 64];
  for (size_t i = 0; i < n;) {
    size_t chunk = n - i < 64 ? n - i : 64;
    hetee_prg_bytes(p, buf, 6 * chunk);
    for (size_t j = 0; j < chunk; j++) {
      uint64_t w = load_le(buf + 6 * j, 6);
      int32_t a = (int32_t)popcount21(w & k21), b = (int32_t)popcount21((w >> HETEE_CBD_K) & k21);
      out[i + j] = (int8_t)(a - b);
    }
    i += chunk;
  }
  sodium_memzero(buf, sizeof buf);
}

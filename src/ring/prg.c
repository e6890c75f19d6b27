/*
 * prg.c — the seeded PRG: the ChaCha20 keystream (RFC 7539 block function
 * with libsodium's original 64-bit nonce / 64-bit counter variant,
 * crypto_stream_chacha20) under a 32-byte seed, with the 64-bit domain
 * separator as little-endian nonce. Byte i of a (seed, domain) stream is
 * byte i of crypto_stream_chacha20(.., nonce = LE64(domain), key = seed).
 * Also OS-entropy seeding of such seeds.
 */
#include "ring_internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int hetee_seed_random(uint8_t seed[HETEE_SEED_BYTES]) {
  if (!seed)
    return hetee_error(HETEE_ERR_INVALID_ARG, "seed_random: NULL seed");
  if (sodium_init() < 0)
    return hetee_error(HETEE_ERR_CRYPTO, "seed_random: libsodium initialisation failed");
  randombytes_buf(seed, HETEE_SEED_BYTES);
  return 0;
}

void hetee_prg_init(hetee_prg *p, const uint8_t seed[HETEE_SEED_BYTES], uint64_t domain) {
  /* sodium_init picks libsodium's SIMD ChaCha20 (4x faster than its
   * portable one, same stream); idempotent and thread-safe. A failure
   * leaves the portable implementation, which gives the same bytes. */
  if (sodium_init() < 0) {
  }
  memcpy(p->key, seed, HETEE_SEED_BYTES);
  for (int i = 0; i < 8; i++)
    p->nonce[i] = (uint8_t)(domain >> (8 * i));
  p->block = 0;
  p->pos = p->len = 0;
}

/* The keystream is ChaCha20 applied to zeros: read from this constant
 * block instead of clearing the buffer before every refill (a pass over
 * 4 KB per 4 KB of stream). */
static const uint8_t zeros[sizeof ((hetee_prg *)0)->buf];

static void refill(hetee_prg *p) {
  crypto_stream_chacha20_xor_ic(p->buf, zeros, sizeof p->buf, p->nonce, p->block, p->key);
  p->block += sizeof p->buf / 64;
  p->pos = 0;
  p->len = sizeof p->buf;
}

void hetee_prg_bytes(hetee_prg *p, void *out, size_t len) {
  uint8_t *o = out;
  while (len) {
    if (p->pos == p->len)
      refill(p);
    size_t k = p->len - p->pos;
    if (k > len)
      k = len;
    memcpy(o, p->buf + p->pos, k);
    p->pos += k;
    o += k;
    len -= k;
  }
}

void hetee_prg_wipe(hetee_prg *p) {
  if (p)
    sodium_memzero(p, sizeof *p);
}

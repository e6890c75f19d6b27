/*
 * modarith.c — modulus set-up (Barrett constant floor(2^128/q)), modular
 * exponentiation and inversion. The inline Barrett/Shoup helpers live in
 * hetee/ring.h (Barrett 1986; Shoup's precomputed-quotient multiplication as
 * used by NTL and Harvey 2014).
 */
#include "ring_internal.h"

int hetee_modulus_init(hetee_modulus *m, uint64_t q) {
  if (!m)
    return hetee_error(HETEE_ERR_INVALID_ARG, "hetee_modulus_init: NULL modulus");
  if (q < 3 || (q >> HETEE_RING_MAX_PRIME_BITS) != 0 || (q & 1) == 0)
    return hetee_error(HETEE_ERR_INVALID_ARG, "modulus %llu: must be odd and in [3, 2^61)",
                       (unsigned long long)q);
  m->q = q;
  m->bits = 64 - __builtin_clzll(q);
  /* floor(2^128 / q) = floor((2^128 - 1) / q) because q (odd, > 1) does
   * not divide 2^128. */
  unsigned __int128 b = ~(unsigned __int128)0 / q;
  m->barrett_lo = (uint64_t)b;
  m->barrett_hi = (uint64_t)(b >> 64);
  return 0;
}

uint64_t hetee_mod_pow(uint64_t a, uint64_t e, const hetee_modulus *m) {
  uint64_t r = 1 % m->q;
  uint64_t b = hetee_mod_reduce64(a, m);
  while (e) {
    if (e & 1)
      r = hetee_mod_mul(r, b, m);
    b = hetee_mod_mul(b, b, m);
    e >>= 1;
  }
  return r;
}

uint64_t hetee_mod_inv(uint64_t a, const hetee_modulus *m) {
  uint64_t x = hetee_mod_reduce64(a, m);
  if (x == 0)
    return 0;
  /* Fermat: a^(q-2) for prime q. */
  return hetee_mod_pow(x, m->q - 2, m);
}

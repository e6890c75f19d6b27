/*
 * primes.c — deterministic Miller-Rabin, NTT-friendly prime generation and
 * primitive 2N-th roots of unity.
 *
 * Miller-Rabin with the first 12 prime bases is exact for n < 3.3e24
 * (Sorenson & Webster 2015), hence for every 64-bit n. Primes are found by
 * scanning q = k*2N + 1 downward from 2^bits, as SEAL's CoeffModulus::Create
 * does. The root is the minimal primitive 2N-th root (as SEAL picks), so it
 * does not depend on which generator the search met first.
 */
#include "ring_internal.h"

static uint64_t mulmod(uint64_t a, uint64_t b, uint64_t n) {
  return (uint64_t)(((unsigned __int128)a * b) % n);
}

static uint64_t powmod(uint64_t a, uint64_t e, uint64_t n) {
  uint64_t r = 1 % n;
  a %= n;
  while (e) {
    if (e & 1)
      r = mulmod(r, a, n);
    a = mulmod(a, a, n);
    e >>= 1;
  }
  return r;
}

int hetee_is_prime(uint64_t n) {
  static const uint64_t bases[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
  if (n < 2)
    return 0;
  for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
    if (n == bases[i])
      return 1;
    if (n % bases[i] == 0)
      return 0;
  }
  uint64_t d = n - 1;
  int s = 0;
  while ((d & 1) == 0) {
    d >>= 1;
    s++;
  }
  for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
    uint64_t x = powmod(bases[i], d, n);
    if (x == 1 || x == n - 1)
      continue;
    int composite = 1;
    for (int r = 1; r < s; r++) {
      x = mulmod(x, x, n);
      if (x == n - 1) {
        composite = 0;
        break;
      }
    }
    if (composite)
      return 0;
  }
  return 1;
}

static int already_used(uint64_t q, const uint64_t *a, size_t na) {
  for (size_t i = 0; i < na; i++)
    if (a[i] == q)
      return 1;
  return 0;
}

int hetee_primes_generate(int logn, const int *bits, size_t count, const uint64_t *exclude,
                          size_t nexclude, uint64_t *out) {
  if (logn < 1 || logn > HETEE_RING_MAX_LOGN)
    return hetee_error(HETEE_ERR_PARAMS, "primes: logN %d out of [1, %d]", logn, HETEE_RING_MAX_LOGN);
  if ((count && (!bits || !out)) || (nexclude && !exclude))
    return hetee_error(HETEE_ERR_INVALID_ARG, "primes: NULL argument");
  uint64_t step = (uint64_t)2 << logn; /* 2N */
  for (size_t i = 0; i < count; i++) {
    int b = bits[i];
    if (b < 20 || b > HETEE_RING_MAX_PRIME_BITS || b <= logn + 1)
      return hetee_error(HETEE_ERR_PARAMS, "primes: size %d bits out of [max(20, logN+2), %d]", b,
                         HETEE_RING_MAX_PRIME_BITS);
    uint64_t hi = (uint64_t)1 << b, lo = (uint64_t)1 << (b - 1);
    /* largest q < 2^b with q = 1 mod 2N: 2N divides 2^b */
    uint64_t q = hi - step + 1;
    int found = 0;
    for (; q > lo; q -= step) {
      if (already_used(q, out, i) || already_used(q, exclude, nexclude))
        continue;
      if (hetee_is_prime(q)) {
        found = 1;
        break;
      }
    }
    if (!found)
      return hetee_error(HETEE_ERR_PARAMS, "primes: not enough %d-bit primes = 1 mod 2^%d", b, logn + 1);
    out[i] = q;
  }
  return 0;
}

int hetee_primitive_root_2n(uint64_t q, int logn, uint64_t *out) {
  if (!out)
    return hetee_error(HETEE_ERR_INVALID_ARG, "primitive root: NULL output");
  if (logn < 1 || logn > HETEE_RING_MAX_LOGN)
    return hetee_error(HETEE_ERR_PARAMS, "primitive root: logN %d out of range", logn);
  hetee_modulus m;
  if (hetee_modulus_init(&m, q) < 0)
    return hetee_error(HETEE_ERR_PARAMS, "primitive root: bad modulus %llu", (unsigned long long)q);
  uint64_t n2 = (uint64_t)2 << logn;
  if (q % n2 != 1)
    return hetee_error(HETEE_ERR_PARAMS, "primitive root: q = %llu is not 1 mod 2N", (unsigned long long)q);
  if (!hetee_is_prime(q))
    return hetee_error(HETEE_ERR_PARAMS, "primitive root: q = %llu is not prime", (unsigned long long)q);
  uint64_t cof = (q - 1) / n2, n = n2 / 2;
  for (uint64_t x = 2; x < q; x++) {
    uint64_t g = hetee_mod_pow(x, cof, &m);
    if (hetee_mod_pow(g, n, &m) != q - 1)
      continue; /* order of g is not 2N */
    /* every primitive 2N-th root is g^k for odd k: take the smallest */
    uint64_t g2 = hetee_mod_mul(g, g, &m), best = g, cur = g;
    for (uint64_t k = 1; k < n; k++) {
      cur = hetee_mod_mul(cur, g2, &m);
      if (cur < best)
        best = cur;
    }
    *out = best;
    return 0;
  }
  return hetee_error(HETEE_ERR_INTERNAL, "primitive root: none found for q = %llu", (unsigned long long)q);
}

/* tests/ring/test_util.h — small helpers shared by the ring tests: a
 * deterministic test RNG (splitmix64, independent of the code under test)
 * and the HETEE_TEST_QUICK switch. */
#ifndef HETEE_TEST_RING_UTIL_H
#define HETEE_TEST_RING_UTIL_H

#include <stdint.h>
#include <stdlib.h>

static inline uint64_t tu_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static inline int tu_quick(void) {
  const char *e = getenv("HETEE_TEST_QUICK");
  return e && *e && e[0] != '0';
}

#endif

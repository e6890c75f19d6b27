/*
 * alloc.c — 64-byte aligned, zeroed buffers for coefficient rows (aligned for
 * AVX-512 loads), and the wiping free for buffers that held secrets.
 */
#include "ring_internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

void *hetee_alloc(size_t bytes) {
  size_t r = (bytes + 63) & ~(size_t)63;
  if (r < bytes)
    return NULL;
  if (r == 0)
    r = 64;
  void *p = aligned_alloc(64, r);
  if (p)
    memset(p, 0, r);
  return p;
}

void hetee_free(void *p) { free(p); }

void hetee_free_secure(void *p, size_t bytes) {
  if (!p)
    return;
  sodium_memzero(p, bytes);
  free(p);
}

/*
 * fuzz_ckks.h — the parameter set shared by the CKKS loader targets: N =
 * 2^12 with a 36 + 30 bit chain and a 36-bit special prime (102 bits, inside
 * the 128-bit bound for N = 2^12, so context_load accepts it), small enough
 * that thousands of loads take seconds. Primes are generated
 * deterministically, so the fingerprint — and the seeds written for
 * libFuzzer — are the same in every build.
 */
#ifndef HETEE_TESTS_FUZZ_CKKS_H
#define HETEE_TESTS_FUZZ_CKKS_H

#include <string.h>

#include "hetee/ckks.h"

static inline hetee_ckks_context *fuzz_ckks_ctx(void) {
  hetee_ckks_literal lit;
  memset(&lit, 0, sizeof lit);
  lit.log_n = 12;
  lit.nq = 2;
  lit.q_bits[0] = 36;
  lit.q_bits[1] = 30;
  lit.np = 1;
  lit.p_bits[0] = 36;
  lit.default_scale = 1073741824.0; /* 2^30 */
  hetee_ckks_context *ctx = NULL;
  if (hetee_ckks_context_new(&lit, &ctx)) return NULL;
  return ctx;
}

/* Saved bytes of an accepted object must equal the input (the formats are
 * canonical: one encoding per object). */
static inline int fuzz_same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  return alen == blen && memcmp(a, b, alen) == 0;
}

#endif

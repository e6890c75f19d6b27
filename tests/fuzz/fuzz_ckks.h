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

#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "hetee/ckks.h"

/* A context of ring degree 2^log_n with primes q {q0, q1} and one special
 * prime p (bits), default scale `scale`; insecure: allow log2(QP) above
 * the 128-bit bound (format tests only). NULL if refused. */
static inline hetee_ckks_context *fuzz_ckks_ctx_chain(int log_n, int q0, int q1, int p, double scale, int insecure) {
  hetee_ckks_literal lit;
  memset(&lit, 0, sizeof lit);
  lit.log_n = log_n;
  lit.nq = 2;
  lit.q_bits[0] = q0;
  lit.q_bits[1] = q1;
  lit.np = 1;
  lit.p_bits[0] = p;
  lit.default_scale = scale;
  lit.allow_insecure = insecure;
  hetee_ckks_context *ctx = NULL;
  return hetee_ckks_context_new(&lit, &ctx) ? NULL : ctx;
}

static inline hetee_ckks_context *fuzz_ckks_ctx(void) { return fuzz_ckks_ctx_chain(12, 36, 30, 36, 0x1p30, 0); }

/* The saved bytes (saved[0..n), malloc'd; freed here) of an accepted
 * object must equal the input (the formats are canonical: one encoding per
 * object). Returns 0, fuzz_one's answer for an accepted input. */
static inline int fuzz_check_resaved(uint8_t *saved, size_t n, const uint8_t *data, size_t len) {
  FUZZ_CHECK(n == len && memcmp(saved, data, len) == 0);
  free(saved);
  return 0;
}

/* The object type field of a serialized header (bytes 8..9, little endian;
 * 0 when too short), so one target can dispatch to several loaders and
 * mutants can cross formats. */
static inline uint16_t fuzz_ckks_obj_type(const uint8_t *data, size_t len) {
  return len >= 10 ? (uint16_t)(data[8] | data[9] << 8) : 0;
}

/* For the targets whose loaders all run under the one context above: defines
 * that context `ctx` and fuzz_setup()/fuzz_teardown() around it. */
#define FUZZ_CKKS_SHARED_CTX                                                                             \
  static hetee_ckks_context *ctx;                                                                        \
  int fuzz_setup(void) {                                                                                 \
    ctx = fuzz_ckks_ctx();                                                                               \
    return ctx ? 0 : -1;                                                                                 \
  }                                                                                                      \
  void fuzz_teardown(void) {                                                                             \
    hetee_ckks_context_free(ctx);                                                                        \
    ctx = NULL;                                                                                          \
  }

/* Appends `save_fn(ctx, obj)` (a hetee_ckks_*_save) to the seed list s[0..n). */
#define FUZZ_CKKS_SEED(s, n, save_fn, ctx, obj)                                                          \
  do {                                                                                                   \
    uint8_t *seed_b_ = NULL;                                                                             \
    size_t seed_len_ = 0;                                                                                \
    FUZZ_CHECK(save_fn((ctx), (obj), &seed_b_, &seed_len_) == 0);                                        \
    fuzz_seed_add((s), (n), seed_b_, seed_len_);                                                         \
    free(seed_b_);                                                                                       \
  } while (0)

#endif

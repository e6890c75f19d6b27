/*
 * expect.h — the expectations of the integrity checks (integrity.c): for
 * each sample b of a stage's input, the two random projections of its
 * values and their L1 norm, s_t[b] = beta_t + V_t . x_b and ||x_b||_1,
 * the values saturated first as refresh saturates what it encrypts. The
 * input values are secret: every path is branch-free on them.
 */
#ifndef HETEE_ENCLAVE_EXPECT_H
#define HETEE_ENCLAVE_EXPECT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Two doubles per vector with GCC's vector extensions (SSE2 on the
 * baseline, whatever the target ISA), shared with integrity.c's checks.
 * The sums are of decrypted values, so selections are masks, never
 * branches. */
typedef double v2d __attribute__((vector_size(16)));
typedef int64_t v2i __attribute__((vector_size(16)));
static inline v2d v2_load(const double *p) {
  v2d x;
  memcpy(&x, p, sizeof x);
  return x;
}
static inline v2d v2_sel(v2i m, v2d a, v2d b) { return (v2d)(((v2i)a & m) | ((v2i)b & ~m)); }
static inline v2d v2_abs(v2d a) { return (v2d)((v2i)a & (v2i){INT64_MAX, INT64_MAX}); }
static inline double v2_sum(v2d a, v2d b) { return (a[0] + b[0]) + (a[1] + b[1]); }
/* max(x, lo) (NaN -> lo), then min(., hi) */
static inline v2d v2_sat(v2d x, v2d lo, v2d hi) {
  x = v2_sel(x > lo, x, lo);
  return v2_sel(x > hi, hi, x);
}

/* A stage's two check vectors over its n_in inputs and their offsets. */
typedef struct enclave_expect_stage {
  const double *v0, *v1;
  double beta0, beta1;
  size_t n_in;
} enclave_expect_stage;

/* s0[b] = beta0 + v0 . x_b, s1[b] = beta1 + v1 . x_b and l1[b] =
 * ||x_b||_1 for b < batch, every value first saturated at +-bound (NaN:
 * -bound). src holds batch x n_in doubles, or with `witness` the
 * little-endian floats of an opened input witness (subnormals taken as
 * +-0); then returns nonzero if any of them is not finite or above
 * HETEE_WITNESS_MAX_ABS in magnitude (one pass, no early exit), else 0.
 * With AVX-512 (hetee_ring_isa) eight doubles per vector, else two: the
 * same values, the sums in another order (the last bits may differ
 * between the two; on one machine every caller takes the same one). */
unsigned enclave_expect(const enclave_expect_stage *st, const void *src, int witness, uint32_t batch, double bound,
                        double *s0, double *s1, double *l1);

#endif

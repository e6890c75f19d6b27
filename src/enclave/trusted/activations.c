/*
 * activations.c — branch-free exp, softmax, argmax and top-k for the
 * enclave's release path and activation functions (see activations.h).
 * exp: Cody–Waite range reduction x = k ln2 + r (k by the 1.5*2^52 rounding
 * trick, no libm call), degree-13 Taylor polynomial on |r| <= ln2/2 in Horner
 * form, and 2^k assembled directly in the exponent bits.
 */
#include "enclave/trusted/activations.h"

#include <math.h> /* INFINITY */

double hetee_exp_ct(double x) {
  static const double LOG2E = 1.4426950408889634074;
  static const double LN2_HI = 6.93147180369123816490e-01;
  static const double LN2_LO = 1.90821492927058770002e-10;
  static const double SHIFT = 6755399441055744.0; /* 1.5 * 2^52 */
  x = hetee_dmin(hetee_dmax(x, -700.0), 700.0);
  volatile double t = x * LOG2E + SHIFT; /* volatile: keep the rounding step */
  double kf = t - SHIFT;
  double r = (x - kf * LN2_HI) - kf * LN2_LO;
  double p = 1.0 / 6227020800.0; /* 1/13! */
  static const double inv_fact[13] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
                                      1.0 / 40320.0,     1.0 / 5040.0,     1.0 / 720.0,     1.0 / 120.0,
                                      1.0 / 24.0,        1.0 / 6.0,        0.5,             1.0,
                                      1.0};
  for (int i = 0; i < 13; i++) p = p * r + inv_fact[i];
  int64_t k = (int64_t)kf; /* in [-1010, 1010] */
  double scale = hetee_bitsd((uint64_t)(k + 1023) << 52);
  return p * scale;
}

void hetee_softmax_ct(double *v, size_t n) {
  if (n == 0) return;
  double m = v[0];
  for (size_t i = 1; i < n; i++) m = hetee_dmax(m, v[i]);
  double s = 0;
  for (size_t i = 0; i < n; i++) {
    v[i] = hetee_exp_ct(v[i] - m);
    s += v[i];
  }
  double inv = 1.0 / s; /* s >= 1: the maximum contributes exp(0) */
  for (size_t i = 0; i < n; i++) v[i] *= inv;
}

uint32_t hetee_argmax_ct(const double *v, size_t n) {
  double best = n ? v[0] : 0;
  uint64_t idx = 0;
  for (size_t i = 1; i < n; i++) {
    uint64_t m = hetee_dgt_mask(v[i], best);
    best = hetee_dsel(m, v[i], best);
    idx = ((uint64_t)i & m) | (idx & ~m);
  }
  return (uint32_t)idx;
}

void hetee_topk_ct(const double *v, size_t n, size_t k, double *work, uint32_t *out) {
  for (size_t i = 0; i < n; i++) work[i] = v[i];
  for (size_t j = 0; j < k; j++) {
    uint32_t a = hetee_argmax_ct(work, n);
    out[j] = a;
    for (size_t i = 0; i < n; i++) {
      uint64_t m = (uint64_t)0 - (uint64_t)(i == a); /* public loop index vs secret a: mask, no branch */
      work[i] = hetee_dsel(m, -INFINITY, work[i]);
    }
  }
}

int64_t hetee_round_fixed(double x, int bits) {
  /* exact scaling by 2^bits, built in the exponent field (bits in [0, 60]) */
  double y = x * hetee_bitsd((uint64_t)(bits + 1023) << 52);
  const double lim = 4611686018427387904.0; /* 2^62 */
  y = hetee_dmin(hetee_dmax(y, -lim), lim);
  /* round half away from zero without a branch: add +-0.5 then truncate */
  double half = hetee_dsel(hetee_dgt_mask(0.0, y), -0.5, 0.5);
  return (int64_t)(y + half);
}

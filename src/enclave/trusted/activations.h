/*
 * activations.h — branch-free non-linear functions on decrypted (secret)
 * values. Comparisons become all-ones/all-zero masks and selections are bit
 * operations, so neither the control flow nor the memory addresses depend on
 * the data (the constant-time discipline of libsodium / BearSSL applied to
 * doubles). exp is evaluated with a fixed range reduction and a fixed-degree
 * polynomial instead of libm's exp, whose special-case branches depend on x.
 */
#ifndef HETEE_ENCLAVE_ACTIVATIONS_H
#define HETEE_ENCLAVE_ACTIVATIONS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t hetee_dbits(double x) {
  uint64_t u;
  memcpy(&u, &x, 8);
  return u;
}
static inline double hetee_bitsd(uint64_t u) {
  double x;
  memcpy(&x, &u, 8);
  return x;
}
/* c ? a : b for a mask c of all ones / all zeros. */
static inline double hetee_dsel(uint64_t mask, double a, double b) {
  return hetee_bitsd((hetee_dbits(a) & mask) | (hetee_dbits(b) & ~mask));
}
static inline uint64_t hetee_dgt_mask(double a, double b) { return (uint64_t)0 - (uint64_t)(a > b); }
static inline double hetee_dmax(double a, double b) { return hetee_dsel(hetee_dgt_mask(a, b), a, b); }
static inline double hetee_dmin(double a, double b) { return hetee_dsel(hetee_dgt_mask(a, b), b, a); }
static inline double hetee_relu(double x) { return hetee_dmax(x, 0.0); }
static inline double hetee_leaky_relu(double x, double alpha) { return hetee_dmax(x, 0.0) + alpha * hetee_dmin(x, 0.0); }

/* exp(x), |relative error| < 1e-15 on [-700, 700]; inputs outside are clamped. */
double hetee_exp_ct(double x);
static inline double hetee_sigmoid(double x) { return 1.0 / (1.0 + hetee_exp_ct(-x)); }
static inline double hetee_tanh(double x) { return 2.0 / (1.0 + hetee_exp_ct(-2.0 * x)) - 1.0; }

/* Numerically stable softmax in place (max subtracted, branch-free). */
void hetee_softmax_ct(double *v, size_t n);
/* Index of the largest value (first on ties), scanning every element. */
uint32_t hetee_argmax_ct(const double *v, size_t n);
/* The k largest indices, best first; v is not modified (a masked copy is
 * used: work must hold n doubles). */
void hetee_topk_ct(const double *v, size_t n, size_t k, double *work, uint32_t *out);
/* round(x * 2^bits) as a 64-bit integer, saturating at +-2^62. */
int64_t hetee_round_fixed(double x, int bits);

#endif

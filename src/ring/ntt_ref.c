/*
 * ntt_ref.c — portable reference negacyclic NTT (always built; the SIMD
 * variants are tested bit for bit against it).
 *
 * Forward: Cooley-Tukey, natural-order input, bit-reversed output, with the
 * psi-twisting merged into the twiddles (Longa & Naehrig 2016, Alg. 1).
 * Inverse: Gentleman-Sande, bit-reversed input, natural output (Alg. 2), the
 * 1/N factor folded into the last stage.
 * Butterflies are Harvey's lazy ones ("Faster arithmetic for number-theoretic
 * transforms", 2014) with Shoup-precomputed twiddles:
 *   forward  values stay in [0, 4q); X' = X + W*Y, Y' = X - W*Y + 2q, with X
 *            first brought to [0, 2q) and W*Y in [0, 2q);
 *   inverse  values stay in [0, 2q); X' = X + Y (brought to [0, 2q)),
 *            Y' = W*(X - Y + 2q) in [0, 2q).
 * A final pass reduces to [0, q). Requires 4q < 2^64 (q < 2^61 here).
 */
#include "ring_internal.h"

#include <string.h>

/* x in [0, 2*bound) with bound < 2^62: x - bound if x >= bound, branch-free
 * (the sign of x - bound, read as signed, selects the correction). */
static inline uint64_t csub(uint64_t x, uint64_t bound) {
  uint64_t t = x - bound;
  return t + (bound & (uint64_t)((int64_t)t >> 63));
}

/* forward Harvey butterfly on *x, *y, values in [0, 4q) */
static inline void fwd_bfly(uint64_t *x, uint64_t *y, uint64_t w, uint64_t wp, uint64_t q, uint64_t q2) {
  uint64_t u = csub(*x, q2);
  uint64_t v = hetee_mod_mul_shoup_lazy(*y, w, wp, q);
  *x = u + v;
  *y = u - v + q2;
}

void hetee_ntt_forward_ref(const hetee_ntt_tables *t, uint64_t *a) {
  const uint64_t q = t->mod.q, q2 = 2 * q;
  const uint64_t *restrict w = t->fwd, *restrict wp = t->fwd_shoup;
  const size_t n = t->n;
  size_t m = 1, gap = n >> 1;
  /* two stages per pass over memory (m, distance gap) and (2m, gap/2):
   * same butterflies, same order within each coefficient */
  for (; gap >= 2; m <<= 2, gap >>= 2) {
    const size_t h = gap >> 1;
    for (size_t i = 0; i < m; i++) {
      const uint64_t w1 = w[m + i], w1p = wp[m + i];
      const uint64_t w2 = w[2 * m + 2 * i], w2p = wp[2 * m + 2 * i];
      const uint64_t w3 = w[2 * m + 2 * i + 1], w3p = wp[2 * m + 2 * i + 1];
      uint64_t *restrict x0 = a + 2 * i * gap, *restrict x1 = x0 + h, *restrict x2 = x0 + gap,
                         *restrict x3 = x2 + h;
      for (size_t j = 0; j < h; j++) {
        uint64_t A = x0[j], B = x1[j], C = x2[j], D = x3[j];
        fwd_bfly(&A, &C, w1, w1p, q, q2);
        fwd_bfly(&B, &D, w1, w1p, q, q2);
        fwd_bfly(&A, &B, w2, w2p, q, q2);
        fwd_bfly(&C, &D, w3, w3p, q, q2);
        x0[j] = A, x1[j] = B, x2[j] = C, x3[j] = D;
      }
    }
  }
  if (gap == 1) { /* odd number of stages: the last one alone */
    for (size_t i = 0; i < m; i++)
      fwd_bfly(a + 2 * i, a + 2 * i + 1, w[m + i], wp[m + i], q, q2);
  }
  for (size_t j = 0; j < n; j++)
    a[j] = csub(csub(a[j], q2), q);
}

/* inverse Harvey butterfly on *x, *y, values in [0, 2q) */
static inline void inv_bfly(uint64_t *x, uint64_t *y, uint64_t w, uint64_t wp, uint64_t q, uint64_t q2) {
  uint64_t u = *x, v = *y;
  *x = csub(u + v, q2);
  *y = hetee_mod_mul_shoup_lazy(u - v + q2, w, wp, q);
}

void hetee_ntt_inverse_ref(const hetee_ntt_tables *t, uint64_t *a) {
  const uint64_t q = t->mod.q, q2 = 2 * q;
  const uint64_t *restrict w = t->inv, *restrict wp = t->inv_shoup;
  const size_t n = t->n, last = n >> 1;
  size_t gap = 1;
  /* two stages per pass: distance gap (twiddles at h = N/(2 gap)) and
   * 2*gap (at h/2), as long as the second is not the last stage */
  for (; 2 * gap < last; gap <<= 2) {
    const size_t h = n / (2 * gap);
    for (size_t i = 0; i < h / 2; i++) {
      const uint64_t w1 = w[h + 2 * i], w1p = wp[h + 2 * i];
      const uint64_t w2 = w[h + 2 * i + 1], w2p = wp[h + 2 * i + 1];
      const uint64_t w3 = w[h / 2 + i], w3p = wp[h / 2 + i];
      uint64_t *restrict x0 = a + 4 * i * gap, *restrict x1 = x0 + gap, *restrict x2 = x1 + gap,
                         *restrict x3 = x2 + gap;
      for (size_t j = 0; j < gap; j++) {
        uint64_t A = x0[j], B = x1[j], C = x2[j], D = x3[j];
        inv_bfly(&A, &B, w1, w1p, q, q2);
        inv_bfly(&C, &D, w2, w2p, q, q2);
        inv_bfly(&A, &C, w3, w3p, q, q2);
        inv_bfly(&B, &D, w3, w3p, q, q2);
        x0[j] = A, x1[j] = B, x2[j] = C, x3[j] = D;
      }
    }
  }
  if (gap < last) { /* one stage left before the last */
    const size_t h = n / (2 * gap);
    for (size_t i = 0; i < h; i++) {
      uint64_t *x = a + 2 * i * gap;
      for (size_t j = 0; j < gap; j++)
        inv_bfly(x + j, x + gap + j, w[h + i], wp[h + i], q, q2);
    }
    gap <<= 1;
  }
  /* last stage (h = 1, distance N/2) with the 1/N factor folded in:
   * X' = (X + Y)/N, Y' = (X - Y) * psi^-brv(1) / N, fully reduced */
  uint64_t *x = a, *y = a + gap;
  for (size_t j = 0; j < gap; j++) {
    uint64_t u = x[j], v = y[j];
    x[j] = hetee_mod_mul_shoup(u + v, t->ninv, t->ninv_shoup, q);
    y[j] = hetee_mod_mul_shoup(u - v + q2, t->ninv_w, t->ninv_w_shoup, q);
  }
}

void hetee_ntt_inverse_add_steps(void (*inv)(const hetee_ntt_tables *, uint64_t *), const hetee_ntt_tables *t,
                                 const uint64_t *in, uint64_t *out, uint64_t s) {
  if (in != out) memcpy(out, in, t->n * sizeof *out);
  inv(t, out);
  hetee_vec_add_scalar_ref(&t->mod, out, s, out, t->n);
}

void hetee_ntt_inverse_add_ref(const hetee_ntt_tables *t, const uint64_t *in, uint64_t *out, uint64_t s) {
  hetee_ntt_inverse_add_steps(hetee_ntt_inverse_ref, t, in, out, s);
}

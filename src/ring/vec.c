/*
 * vec.c — pointwise operations on one residue row modulo q: the reference
 * kernels (also used by SIMD files for tails) and the public functions, which
 * dispatch the hot ones (add, sub, mul, muladd, mul_scalar) to the picked
 * ISA variant.
 * All branch-free in the data (values may be secret).
 */
#include "ring_internal.h"

void hetee_vec_add_ref(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  const uint64_t q = m->q;
  for (size_t i = 0; i < n; i++)
    c[i] = hetee_mod_add(a[i], b[i], q);
}

void hetee_vec_sub_ref(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  const uint64_t q = m->q;
  for (size_t i = 0; i < n; i++)
    c[i] = hetee_mod_sub(a[i], b[i], q);
}

void hetee_vec_mul_ref(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  for (size_t i = 0; i < n; i++)
    c[i] = hetee_mod_mul(a[i], b[i], m);
}

void hetee_vec_muladd_ref(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  /* c + a*b < q + q^2 < q * 2^64: one Barrett reduction */
  for (size_t i = 0; i < n; i++)
    c[i] = hetee_mod_reduce128((unsigned __int128)a[i] * b[i] + c[i], m);
}

void hetee_vec_add(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  hetee_ring_active()->vec_add(m, a, b, c, n);
}

void hetee_vec_sub(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  hetee_ring_active()->vec_sub(m, a, b, c, n);
}

void hetee_vec_mul(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  hetee_ring_active()->vec_mul(m, a, b, c, n);
}

void hetee_vec_muladd(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n) {
  hetee_ring_active()->vec_muladd(m, a, b, c, n);
}

void hetee_vec_neg(const hetee_modulus *m, const uint64_t *a, uint64_t *c, size_t n) {
  const uint64_t q = m->q;
  for (size_t i = 0; i < n; i++) {
    uint64_t nz = (uint64_t)0 - (uint64_t)(a[i] != 0);
    c[i] = (q - a[i]) & nz;
  }
}

void hetee_vec_mul_scalar_ref(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n) {
  const uint64_t q = m->q, sp = hetee_shoup_prep(s, q);
  for (size_t i = 0; i < n; i++)
    c[i] = hetee_mod_mul_shoup(a[i], s, sp, q);
}

void hetee_vec_mul_scalar(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n) {
  hetee_ring_active()->vec_mul_scalar(m, a, s, c, n);
}

void hetee_vec_add_scalar(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n) {
  const uint64_t q = m->q;
  for (size_t i = 0; i < n; i++)
    c[i] = hetee_mod_add(a[i], s, q);
}

void hetee_vec_reduce(const hetee_modulus *m, const uint64_t *a, uint64_t *c, size_t n) {
  for (size_t i = 0; i < n; i++)
    c[i] = hetee_mod_reduce64(a[i], m);
}

void hetee_vec_from_small(const hetee_modulus *m, const int8_t *v, uint64_t *out, size_t n) {
  const uint64_t q = m->q;
  for (size_t i = 0; i < n; i++) {
    int64_t x = v[i];
    uint64_t neg = (uint64_t)(x >> 63); /* all ones when x < 0 */
    out[i] = (uint64_t)x + (q & neg);
  }
}

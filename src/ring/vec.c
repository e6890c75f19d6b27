/*
 * vec.c — pointwise operations on one residue row modulo q: the reference
 * kernels (also used by SIMD files for tails) and the public functions, which
 * dispatch the hot ones (add, sub, mul, muladd, mul_scalar, add_scalar,
 * reduce, dot, dot2, tensor2, ...) to the picked ISA variant.
 * All branch-free in the data (values may be secret).
 */
#include "ring_internal.h"
#include "ring_shoup.h"

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

void hetee_vec_add_scalar_ref(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n) {
  const uint64_t q = m->q;
  for (size_t i = 0; i < n; i++)
    c[i] = hetee_mod_add(a[i], s, q);
}

void hetee_vec_add_scalar(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n) {
  hetee_ring_active()->vec_add_scalar(m, a, s, c, n);
}

void hetee_vec_reduce_ref(const hetee_modulus *m, const uint64_t *a, uint64_t *c, size_t n) {
  for (size_t i = 0; i < n; i++)
    c[i] = hetee_mod_reduce64(a[i], m);
}

void hetee_vec_reduce(const hetee_modulus *m, const uint64_t *a, uint64_t *c, size_t n) {
  hetee_ring_active()->vec_reduce(m, a, c, n);
}

/* Products per Barrett reduction in the reference dot product: a running
 * value < q plus c products <= (q-1)^2 stays below q * 2^64 (the input range
 * of hetee_mod_reduce128) when c <= 2^64 / q; at least 8 for q < 2^61. */
static size_t dot_chunk(uint64_t q) {
  uint64_t c = UINT64_MAX / q;
  return c > 64 ? 64 : (size_t)c;
}

void hetee_vec_dot_ref(const hetee_modulus *m, const uint64_t *const *a, const uint64_t *const *b, size_t k, uint64_t *c,
                       size_t n) {
  const size_t chunk = dot_chunk(m->q);
  for (size_t i = 0; i < n; i++) {
    unsigned __int128 s = 0;
    size_t used = 0;
    for (size_t j = 0; j < k; j++) {
      s += (unsigned __int128)a[j][i] * b[j][i];
      if (++used == chunk) {
        s = hetee_mod_reduce128(s, m);
        used = 0;
      }
    }
    c[i] = hetee_mod_reduce128(s, m);
  }
}

void hetee_vec_dot(const hetee_modulus *m, const uint64_t *const *a, const uint64_t *const *b, size_t k, uint64_t *c,
                   size_t n) {
  hetee_ring_active()->vec_dot(m, a, b, k, c, n);
}

void hetee_vec_tensor2_ref(const hetee_modulus *m, const uint64_t *a0, const uint64_t *a1, const uint64_t *b0,
                           const uint64_t *b1, uint64_t *c0, uint64_t *c1, uint64_t *c2, size_t n, int acc) {
  /* every bound below q * 2^64: q^2 + q, and 2 q^2 + q < q 2^64 for q < 2^61 */
  const uint64_t keep = (uint64_t)0 - (uint64_t)(acc != 0);
  for (size_t i = 0; i < n; i++) {
    uint64_t x0 = a0[i], x1 = a1[i], y0 = b0[i], y1 = b1[i];
    uint64_t z0 = c0[i] & keep, z1 = c1[i] & keep, z2 = c2[i] & keep;
    c0[i] = hetee_mod_reduce128((unsigned __int128)x0 * y0 + z0, m);
    c1[i] = hetee_mod_reduce128((unsigned __int128)x0 * y1 + (unsigned __int128)x1 * y0 + z1, m);
    c2[i] = hetee_mod_reduce128((unsigned __int128)x1 * y1 + z2, m);
  }
}

void hetee_vec_tensor2(const hetee_modulus *m, const uint64_t *a0, const uint64_t *a1, const uint64_t *b0,
                       const uint64_t *b1, uint64_t *c0, uint64_t *c1, uint64_t *c2, size_t n, int acc) {
  hetee_ring_active()->vec_tensor2(m, a0, a1, b0, b1, c0, c1, c2, n, acc);
}

void hetee_vec_from_small(const hetee_modulus *m, const int8_t *v, uint64_t *out, size_t n) {
  const uint64_t q = m->q;
  for (size_t i = 0; i < n; i++) {
    int64_t x = v[i];
    uint64_t neg = (uint64_t)(x >> 63); /* all ones when x < 0 */
    out[i] = (uint64_t)x + (q & neg);
  }
}

void hetee_vec_reduce_add_scalar_ref(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n) {
  for (size_t i = 0; i < n; i++)
    c[i] = hetee_mod_add(hetee_mod_reduce64(a[i], m), s, m->q);
}

void hetee_vec_reduce_add_scalar(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n) {
  hetee_ring_active()->vec_reduce_add_scalar(m, a, s, c, n);
}

void hetee_vec_sub_mul_scalar_add_ref(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t s,
                                      const uint64_t *base, uint64_t *c, size_t n) {
  const uint64_t q = m->q, sp = hetee_shoup_prep(s, q);
  for (size_t i = 0; i < n; i++) {
    uint64_t r = hetee_mod_mul_shoup(hetee_mod_sub(a[i], b[i], q), s, sp, q);
    c[i] = base ? hetee_mod_add(r, base[i], q) : r;
  }
}

void hetee_vec_sub_mul_scalar_add(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t s,
                                  const uint64_t *base, uint64_t *c, size_t n) {
  hetee_ring_active()->vec_sub_mul_scalar_add(m, a, b, s, base, c, n);
}

void hetee_vec_dot2_ref(const hetee_modulus *m, const uint64_t *const *a, const uint32_t *perm,
                        const uint64_t *const *b0, const uint64_t *const *b1, size_t k, uint64_t *c0, uint64_t *c1,
                        size_t n) {
  const size_t chunk = dot_chunk(m->q);
  for (size_t i = 0; i < n; i++) {
    unsigned __int128 s0 = 0, s1 = 0;
    size_t used = 0;
    for (size_t j = 0; j < k; j++) {
      uint64_t x = a[j][perm ? perm[i] : i];
      s0 += (unsigned __int128)x * b0[j][i];
      s1 += (unsigned __int128)x * b1[j][i];
      if (++used == chunk) {
        s0 = hetee_mod_reduce128(s0, m);
        s1 = hetee_mod_reduce128(s1, m);
        used = 0;
      }
    }
    c0[i] = hetee_mod_reduce128(s0, m);
    c1[i] = hetee_mod_reduce128(s1, m);
  }
}

void hetee_vec_dot2(const hetee_modulus *m, const uint64_t *const *a, const uint32_t *perm, const uint64_t *const *b0,
                    const uint64_t *const *b1, size_t k, uint64_t *c0, uint64_t *c1, size_t n) {
  hetee_ring_active()->vec_dot2(m, a, perm, b0, b1, k, c0, c1, n);
}

/* ---- products by fixed rows with Shoup quotients (ring_shoup.h) ---- */

void hetee_vec_shoup_prep(const hetee_modulus *m, const uint64_t *w, uint64_t *wp, size_t n) {
  const uint64_t q = m->q;
  uint64_t qinv = q; /* q^-1 mod 2^64 by Newton (q odd): 3 -> 6 -> ... -> 96 bits */
  for (int i = 0; i < 5; i++) qinv *= 2 - q * qinv;
  for (size_t i = 0; i < n; i++) {
    uint64_t r = hetee_mod_reduce128((unsigned __int128)w[i] << 64, m); /* w 2^64 < q 2^64 */
    wp[i] = ((uint64_t)0 - r) * qinv;
  }
}

void hetee_vec_shoup_dot_ref(const hetee_modulus *m, const uint64_t *add, const uint64_t *a0, const uint64_t *w0,
                             const uint64_t *wp0, const uint64_t *a1, const uint64_t *w1, const uint64_t *wp1,
                             uint64_t *c, size_t n) {
  const uint64_t q = m->q;
  for (size_t i = 0; i < n; i++) {
    uint64_t x = hetee_mod_mul_shoup(a0[i], w0[i], wp0[i], q);
    if (a1) x = hetee_mod_add(x, hetee_mod_mul_shoup(a1[i], w1[i], wp1[i], q), q);
    c[i] = add ? hetee_mod_add(x, add[i], q) : x;
  }
}

void hetee_vec_shoup_dot(const hetee_modulus *m, const uint64_t *add, const uint64_t *a0, const uint64_t *w0,
                         const uint64_t *wp0, const uint64_t *a1, const uint64_t *w1, const uint64_t *wp1, uint64_t *c,
                         size_t n) {
#ifndef HETEE_RING_NO_SIMD
  if (hetee_ring_isa() == HETEE_ISA_AVX512) {
    if (m->bits <= HETEE_IFMA_MAX_BITS && m->bits >= 2 && hetee_ring_cpu_has_ifma())
      hetee_vec_shoup_dot_avx512ifma(m, add, a0, w0, wp0, a1, w1, wp1, c, n);
    else
      hetee_vec_shoup_dot_avx512(m, add, a0, w0, wp0, a1, w1, wp1, c, n);
    return;
  }
#endif
  hetee_vec_shoup_dot_ref(m, add, a0, w0, wp0, a1, w1, wp1, c, n);
}

static inline uint64_t ld_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int k = 7; k >= 0; k--) v = (v << 8) | p[k]; /* one load on a little-endian host */
  return v;
}

/* Out-of-range words (host bytes, public) go through the products unreduced:
 * defined arithmetic, a meaningless c, and a nonzero return. */
uint64_t hetee_vec_shoup_dot_le_ref(const hetee_modulus *m, const uint8_t *add, const uint8_t *a0, const uint64_t *w0,
                                    const uint64_t *wp0, const uint8_t *a1, const uint64_t *w1, const uint64_t *wp1,
                                    uint64_t *c, size_t n) {
  const uint64_t q = m->q;
  uint64_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t y0 = ld_le64(a0 + 8 * i);
    bad |= (uint64_t)(y0 >= q);
    uint64_t x = hetee_mod_mul_shoup(y0, w0[i], wp0[i], q);
    if (a1) {
      uint64_t y1 = ld_le64(a1 + 8 * i);
      bad |= (uint64_t)(y1 >= q);
      x = hetee_mod_add(x, hetee_mod_mul_shoup(y1, w1[i], wp1[i], q), q);
    }
    if (add) {
      uint64_t z = ld_le64(add + 8 * i);
      bad |= (uint64_t)(z >= q);
      x = hetee_mod_add(x, z, q);
    }
    c[i] = x;
  }
  return bad;
}

uint64_t hetee_vec_shoup_dot_le(const hetee_modulus *m, const uint8_t *add, const uint8_t *a0, const uint64_t *w0,
                                const uint64_t *wp0, const uint8_t *a1, const uint64_t *w1, const uint64_t *wp1,
                                uint64_t *c, size_t n) {
#if !defined(HETEE_RING_NO_SIMD) && (defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
  if (hetee_ring_isa() == HETEE_ISA_AVX512) return hetee_vec_shoup_dot_le_avx512(m, add, a0, w0, wp0, a1, w1, wp1, c, n);
#endif
  return hetee_vec_shoup_dot_le_ref(m, add, a0, w0, wp0, a1, w1, wp1, c, n);
}

void hetee_vec_shoup_sub_ref(const hetee_modulus *m, const uint64_t *b, const uint64_t *a, const uint64_t *w,
                             const uint64_t *wp, uint64_t *c, size_t n) {
  const uint64_t q = m->q;
  for (size_t i = 0; i < n; i++) c[i] = hetee_mod_sub(b[i], hetee_mod_mul_shoup(a[i], w[i], wp[i], q), q);
}

void hetee_vec_shoup_sub(const hetee_modulus *m, const uint64_t *b, const uint64_t *a, const uint64_t *w,
                         const uint64_t *wp, uint64_t *c, size_t n) {
#ifndef HETEE_RING_NO_SIMD
  if (hetee_ring_isa() == HETEE_ISA_AVX512) {
    if (m->bits <= HETEE_IFMA_MAX_BITS && m->bits >= 2 && hetee_ring_cpu_has_ifma())
      hetee_vec_shoup_sub_avx512ifma(m, b, a, w, wp, c, n);
    else
      hetee_vec_shoup_sub_avx512(m, b, a, w, wp, c, n);
    return;
  }
#endif
  hetee_vec_shoup_sub_ref(m, b, a, w, wp, c, n);
}

/*
 * ring_internal.h — private definitions shared by the files of src/ring/:
 * the layout of hetee_ntt_tables and the per-ISA kernel table that the
 * picker (isa.c) chooses from. Not installed, not part of the API.
 */
#ifndef HETEE_RING_INTERNAL_H
#define HETEE_RING_INTERNAL_H

#include "hetee/ring.h"

/* NTT tables of one prime (Harvey lazy butterflies, Shoup twiddles).
 *
 * fwd[k] = psi^brv(k) for k in [1, N) (index 0 unused), so that stage m of
 * the Cooley-Tukey forward loop (m = 1, 2, 4, ..., N/2) reads fwd[m + i].
 * inv[k] = psi^-brv(k) likewise, read as inv[h + i] by the Gentleman-Sande
 * inverse at stage h = N/2, ..., 1.
 * *_shoup are floor(w * 2^64 / q); *_shoup52 are floor(w * 2^52 / q), only
 * filled when q < 2^50 (the AVX-512 IFMA path). */
struct hetee_ntt_tables {
  int logn;
  size_t n;
  hetee_modulus mod;
  uint64_t psi;
  uint64_t *fwd, *fwd_shoup, *fwd_shoup52;
  uint64_t *inv, *inv_shoup, *inv_shoup52;
  uint64_t ninv, ninv_shoup, ninv_shoup52;
  /* inv[1] * N^-1 (the last inverse stage folds the 1/N factor in). */
  uint64_t ninv_w, ninv_w_shoup, ninv_w_shoup52;
};

#define HETEE_IFMA_MAX_BITS 50

/* One ISA variant: NTT kernels and the hot vector kernels. */
typedef struct hetee_ring_kernels {
  const char *name;
  void (*ntt_forward)(const hetee_ntt_tables *t, uint64_t *a);
  void (*ntt_inverse)(const hetee_ntt_tables *t, uint64_t *a);
  void (*vec_add)(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
  void (*vec_sub)(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
  void (*vec_mul)(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
  void (*vec_muladd)(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
  void (*vec_mul_scalar)(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n);
  void (*vec_add_scalar)(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n);
  void (*vec_reduce)(const hetee_modulus *m, const uint64_t *a, uint64_t *c, size_t n);
  void (*vec_dot)(const hetee_modulus *m, const uint64_t *const *a, const uint64_t *const *b, size_t k, uint64_t *c,
                  size_t n);
  void (*vec_tensor2)(const hetee_modulus *m, const uint64_t *a0, const uint64_t *a1, const uint64_t *b0,
                      const uint64_t *b1, uint64_t *c0, uint64_t *c1, uint64_t *c2, size_t n, int acc);
  void (*vec_dot2)(const hetee_modulus *m, const uint64_t *const *a, const uint32_t *perm, const uint64_t *const *b0,
                   const uint64_t *const *b1, size_t k, uint64_t *c0, uint64_t *c1, size_t n);
  void (*vec_reduce_add_scalar)(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n);
  void (*vec_sub_mul_scalar_add)(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t s,
                                 const uint64_t *base, uint64_t *c, size_t n);
  /* out = INTT(in) + s (in may equal out) */
  void (*ntt_inverse_add)(const hetee_ntt_tables *t, const uint64_t *in, uint64_t *out, uint64_t s);
} hetee_ring_kernels;

extern const hetee_ring_kernels hetee_ring_kernels_ref;
extern const hetee_ring_kernels hetee_ring_kernels_avx2;
extern const hetee_ring_kernels hetee_ring_kernels_avx512;

/* Reference vector kernels (vec.c), also used for tails by SIMD files. */
void hetee_vec_add_ref(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
void hetee_vec_sub_ref(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
void hetee_vec_mul_ref(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
void hetee_vec_muladd_ref(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
void hetee_vec_mul_scalar_ref(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n);
void hetee_vec_add_scalar_ref(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n);
void hetee_vec_reduce_ref(const hetee_modulus *m, const uint64_t *a, uint64_t *c, size_t n);
void hetee_vec_dot_ref(const hetee_modulus *m, const uint64_t *const *a, const uint64_t *const *b, size_t k, uint64_t *c,
                       size_t n);
void hetee_vec_tensor2_ref(const hetee_modulus *m, const uint64_t *a0, const uint64_t *a1, const uint64_t *b0,
                           const uint64_t *b1, uint64_t *c0, uint64_t *c1, uint64_t *c2, size_t n, int acc);
void hetee_vec_dot2_ref(const hetee_modulus *m, const uint64_t *const *a, const uint32_t *perm,
                        const uint64_t *const *b0, const uint64_t *const *b1, size_t k, uint64_t *c0, uint64_t *c1,
                        size_t n);
void hetee_vec_reduce_add_scalar_ref(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n);
void hetee_vec_sub_mul_scalar_add_ref(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t s,
                                      const uint64_t *base, uint64_t *c, size_t n);

/* hetee_ntt_inverse_add from separate steps (variants without a fused
 * kernel): copy, in-place inverse, add. */
void hetee_ntt_inverse_add_ref(const hetee_ntt_tables *t, const uint64_t *in, uint64_t *out, uint64_t s);
void hetee_ntt_inverse_add_steps(void (*inv)(const hetee_ntt_tables *, uint64_t *), const hetee_ntt_tables *t,
                                 const uint64_t *in, uint64_t *out, uint64_t s);

/* AVX-512 IFMA52 usable (CPU + OS). */
int hetee_ring_cpu_has_ifma(void);

/* SIMD pointwise kernels (vec_avx2.c, vec_avx512.c). */
void hetee_vec_add_avx2(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
void hetee_vec_sub_avx2(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
void hetee_vec_add_avx512(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
void hetee_vec_sub_avx512(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
void hetee_vec_mul_avx512(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
void hetee_vec_muladd_avx512(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
void hetee_vec_mul_scalar_avx512(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n);
void hetee_vec_mul_scalar_avx512ifma(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n);
void hetee_vec_mul_avx512ifma(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
void hetee_vec_muladd_avx512ifma(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
void hetee_vec_add_scalar_avx512(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n);
void hetee_vec_reduce_avx512(const hetee_modulus *m, const uint64_t *a, uint64_t *c, size_t n);
void hetee_vec_dot_avx512(const hetee_modulus *m, const uint64_t *const *a, const uint64_t *const *b, size_t k,
                          uint64_t *c, size_t n);
void hetee_vec_tensor2_avx512(const hetee_modulus *m, const uint64_t *a0, const uint64_t *a1, const uint64_t *b0,
                              const uint64_t *b1, uint64_t *c0, uint64_t *c1, uint64_t *c2, size_t n, int acc);
void hetee_vec_reduce_add_scalar_avx512(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n);
void hetee_vec_sub_mul_scalar_add_avx512(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t s,
                                         const uint64_t *base, uint64_t *c, size_t n);
void hetee_vec_sub_mul_scalar_add_avx512ifma(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t s,
                                             const uint64_t *base, uint64_t *c, size_t n);
void hetee_vec_dot2_avx512(const hetee_modulus *m, const uint64_t *const *a, const uint32_t *perm,
                           const uint64_t *const *b0, const uint64_t *const *b1, size_t k, uint64_t *c0, uint64_t *c1,
                           size_t n);
void hetee_vec_dot2_avx512ifma(const hetee_modulus *m, const uint64_t *const *a, const uint32_t *perm,
                               const uint64_t *const *b0, const uint64_t *const *b1, size_t k, uint64_t *c0,
                               uint64_t *c1, size_t n);
void hetee_vec_dot_avx512ifma(const hetee_modulus *m, const uint64_t *const *a, const uint64_t *const *b, size_t k,
                              uint64_t *c, size_t n);
void hetee_vec_tensor2_avx512ifma(const hetee_modulus *m, const uint64_t *a0, const uint64_t *a1, const uint64_t *b0,
                                  const uint64_t *b1, uint64_t *c0, uint64_t *c1, uint64_t *c2, size_t n, int acc);

/* Galois permutation out[i] = in[perm[i]] (galois.c, galois_avx512.c). */
void hetee_vec_permute_ref(const uint32_t *perm, const uint64_t *in, uint64_t *out, size_t n);
void hetee_vec_permute_avx512(const uint32_t *perm, const uint64_t *in, uint64_t *out, size_t n);

/* The kernel table the dispatching functions use (picked once). */
const hetee_ring_kernels *hetee_ring_active(void);

/* Bit reversal of the low `bits` bits of x. */
static inline uint32_t hetee_bitrev(uint32_t x, int bits) {
  uint32_t r = 0;
  for (int i = 0; i < bits; i++) {
    r = (r << 1) | (x & 1u);
    x >>= 1;
  }
  return r;
}

#endif

/*
 * ring_shoup.h — internal (the enclave's secret-key products): pointwise
 * multiply-adds by fixed rows with precomputed Shoup quotients.
 *
 * The secret key s (and s^2, -s) multiply every ciphertext the enclave
 * decrypts or encrypts. Precomputing w' = floor(w * 2^64 / q) per
 * coefficient once per key turns each product into Shoup's method (a high
 * product and two low products) instead of a full 128-bit product and a
 * Barrett reduction; on the IFMA52 path (q < 2^50) the 52-bit quotient is
 * w' >> 12 = floor(w * 2^52 / q), so one table serves every variant. All
 * variants return the same fully reduced values (compared with the
 * reference by ring/vec for every ISA). Branch-free and index-free in the
 * values: w and w' may be secret.
 */
#ifndef HETEE_RING_SHOUP_H
#define HETEE_RING_SHOUP_H

#include <stddef.h>
#include <stdint.h>

#include "hetee/ring.h"

/* wp[i] = floor(w[i] * 2^64 / q) for w[i] in [0, q), without a division
 * (the 128-bit division is a library routine with data-dependent branches;
 * w may be secret): r = w 2^64 mod q by Barrett, then the exact quotient
 * (w 2^64 - r) / q = -r * q^-1 mod 2^64. */
void hetee_vec_shoup_prep(const hetee_modulus *m, const uint64_t *w, uint64_t *wp, size_t n);

/* c[i] = add[i] + a0[i] w0[i] (+ a1[i] w1[i]) mod q, with wp0 / wp1 from
 * hetee_vec_shoup_prep. a0, a1, add in [0, q); a1 (with w1, wp1) may be NULL
 * (one product); add may be NULL (no addend) and may alias c. Dispatched to
 * the picked ISA (AVX-512 64-bit lanes, IFMA52 for q < 2^50, else scalar). */
void hetee_vec_shoup_dot(const hetee_modulus *m, const uint64_t *add, const uint64_t *a0, const uint64_t *w0,
                         const uint64_t *wp0, const uint64_t *a1, const uint64_t *w1, const uint64_t *wp1, uint64_t *c,
                         size_t n);

/* The same sum with add, a0, a1 read from little-endian bytes (any
 * alignment: a serialized ciphertext's rows where they lie in a request),
 * each word checked < q on the way: returns nonzero if one is not (c is
 * then meaningless). a1 (w1, wp1) and add may be NULL as above; q < 2^61.
 * One pass instead of a copy-and-check pass and a product pass. */
uint64_t hetee_vec_shoup_dot_le(const hetee_modulus *m, const uint8_t *add, const uint8_t *a0, const uint64_t *w0,
                                const uint64_t *wp0, const uint8_t *a1, const uint64_t *w1, const uint64_t *wp1,
                                uint64_t *c, size_t n);
uint64_t hetee_vec_shoup_dot_le_ref(const hetee_modulus *m, const uint8_t *add, const uint8_t *a0, const uint64_t *w0,
                                    const uint64_t *wp0, const uint8_t *a1, const uint64_t *w1, const uint64_t *wp1,
                                    uint64_t *c, size_t n);
uint64_t hetee_vec_shoup_dot_le_avx512(const hetee_modulus *m, const uint8_t *add, const uint8_t *a0,
                                       const uint64_t *w0, const uint64_t *wp0, const uint8_t *a1, const uint64_t *w1,
                                       const uint64_t *wp1, uint64_t *c, size_t n);

/* c[i] = b[i] - a[i] w[i] mod q (b may alias c; a, b in [0, q)): the
 * encryption's c0 - a s without a table of -s. */
void hetee_vec_shoup_sub(const hetee_modulus *m, const uint64_t *b, const uint64_t *a, const uint64_t *w,
                         const uint64_t *wp, uint64_t *c, size_t n);

/* a = c * INTT(a) mod q for a public constant c in [0, q): the inverse
 * transform of the picked ISA with c folded into the constants of its last
 * stage (N^-1 and N^-1 psi^-brv(1), which scale every output), so the
 * product costs no pass of its own; the same values as hetee_ntt_inverse
 * followed by hetee_vec_mul_scalar(c). (The CRT constants of decoding.) */
void hetee_ntt_inverse_scaled(const hetee_ntt_tables *t, uint64_t *a, uint64_t c);

/* The variants (tests compare them; callers use hetee_vec_shoup_dot). The
 * SIMD ones handle n mod 8 tails through the reference. */
void hetee_vec_shoup_dot_ref(const hetee_modulus *m, const uint64_t *add, const uint64_t *a0, const uint64_t *w0,
                             const uint64_t *wp0, const uint64_t *a1, const uint64_t *w1, const uint64_t *wp1,
                             uint64_t *c, size_t n);
void hetee_vec_shoup_dot_avx512(const hetee_modulus *m, const uint64_t *add, const uint64_t *a0, const uint64_t *w0,
                                const uint64_t *wp0, const uint64_t *a1, const uint64_t *w1, const uint64_t *wp1,
                                uint64_t *c, size_t n);
void hetee_vec_shoup_dot_avx512ifma(const hetee_modulus *m, const uint64_t *add, const uint64_t *a0,
                                    const uint64_t *w0, const uint64_t *wp0, const uint64_t *a1, const uint64_t *w1,
                                    const uint64_t *wp1, uint64_t *c, size_t n);

void hetee_vec_shoup_sub_ref(const hetee_modulus *m, const uint64_t *b, const uint64_t *a, const uint64_t *w,
                             const uint64_t *wp, uint64_t *c, size_t n);
void hetee_vec_shoup_sub_avx512(const hetee_modulus *m, const uint64_t *b, const uint64_t *a, const uint64_t *w,
                                const uint64_t *wp, uint64_t *c, size_t n);
void hetee_vec_shoup_sub_avx512ifma(const hetee_modulus *m, const uint64_t *b, const uint64_t *a, const uint64_t *w,
                                    const uint64_t *wp, uint64_t *c, size_t n);

#endif

/*
 * ntt_avx512.c — AVX-512F/DQ/VL variant: NTT kernels for any q < 2^61 with
 * an exact 64x64 -> high-64 product from four vpmuludq (AVX-512 has no
 * 64-bit high multiply), low products with vpmullq; for q < 2^50 on CPUs
 * with IFMA52 the NTT goes to ntt_avx512ifma.c instead. The kernel table
 * also points at the vectorised pointwise kernels of vec_avx512.c.
 */
#include "ring_internal.h"

#include "avx512_arith.h"

/* floor(a * b / 2^64) - e with e in {0, 1, 2}: three vpmuludq instead of
 * four, dropping the low x low product and the carries of the middle sum,
 * (a*b = hh 2^64 + (lh + hl) 2^32 + ll; what is dropped is < 3 * 2^64). */
static inline __m512i mulhi64_approx(__m512i a, __m512i b) {
  __m512i ah = _mm512_srli_epi64(a, 32), bh = _mm512_srli_epi64(b, 32);
  __m512i lh = _mm512_mul_epu32(a, bh), hl = _mm512_mul_epu32(ah, b), hh = _mm512_mul_epu32(ah, bh);
  return _mm512_add_epi64(hh, _mm512_add_epi64(_mm512_srli_epi64(lh, 32), _mm512_srli_epi64(hl, 32)));
}

/* Shoup with the approximate quotient: y*w - Q'*q with Q' >= Q - 2 lies in
 * [0, 4q) for any 64-bit y. Hence the wider lazy range (LAZY_MULT 4):
 * forward values < 8q, inverse values < 4q, which fits 64 bits because
 * q < 2^61. Fewer vector uops per butterfly than the exact product. */
static inline __m512i avx512_mul_lazy(__m512i y, __m512i w, __m512i wp, __m512i q) {
  __m512i qh = mulhi64_approx(y, wp);
  return _mm512_sub_epi64(_mm512_mullo_epi64(y, w), _mm512_mullo_epi64(qh, q));
}

#define TMPL(name) avx512_##name
#define SHOUP(t) t##_shoup
#define LAZY_MULT 4
#define mul_lazy avx512_mul_lazy
#include "ntt_avx512_tmpl.h"

/* The kernel-table entries. For primes above IFMA's 50 bits (the 60-bit q_0
 * of the usual chains) the compiler inlines the vpmuludq kernel into them,
 * so in a profile that NTT shows under these names (named apart from the
 * AVX2 ones so the two cannot be confused). */
void hetee_ntt_forward_avx512ifma(const hetee_ntt_tables *t, uint64_t *a);
void hetee_ntt_inverse_avx512ifma(const hetee_ntt_tables *t, uint64_t *a);
void hetee_ntt_inverse_add_avx512ifma(const hetee_ntt_tables *t, const uint64_t *in, uint64_t *out, uint64_t s);

static void avx512_ntt_forward_entry(const hetee_ntt_tables *t, uint64_t *a) {
  if (t->fwd_shoup52 && hetee_ring_cpu_has_ifma())
    hetee_ntt_forward_avx512ifma(t, a);
  else
    avx512_forward(t, a);
}

static void avx512_ntt_inverse_entry(const hetee_ntt_tables *t, uint64_t *a) {
  if (t->inv_shoup52 && hetee_ring_cpu_has_ifma())
    hetee_ntt_inverse_avx512ifma(t, a);
  else
    avx512_inverse(t, a);
}

static void avx512_ntt_inverse_add_entry(const hetee_ntt_tables *t, const uint64_t *in, uint64_t *out, uint64_t s) {
  if (t->inv_shoup52 && hetee_ring_cpu_has_ifma())
    hetee_ntt_inverse_add_avx512ifma(t, in, out, s);
  else
    avx512_inverse_add(t, in, out, s);
}

const hetee_ring_kernels hetee_ring_kernels_avx512 = {
    "avx512", avx512_ntt_forward_entry, avx512_ntt_inverse_entry, hetee_vec_add_avx512,
    hetee_vec_sub_avx512, hetee_vec_mul_avx512, hetee_vec_muladd_avx512, hetee_vec_mul_scalar_avx512,
    hetee_vec_add_scalar_avx512, hetee_vec_reduce_avx512, hetee_vec_dot_avx512, hetee_vec_tensor2_avx512,
    hetee_vec_dot2_avx512, hetee_vec_reduce_add_scalar_avx512, hetee_vec_sub_mul_scalar_add_avx512,
    avx512_ntt_inverse_add_entry,
};

/*
 * galois.c — the Galois automorphisms X -> X^g of Z_q[X]/(X^N+1), on
 * coefficients and as an index permutation of the NTT form.
 *
 * hetee_ntt_forward leaves at index i the evaluation a(psi^(2*brv(i)+1)).
 * Then b(X) = a(X^g) has b(psi^e) = a(psi^(g*e mod 2N)), so output index i
 * reads input index brv(((g * (2*brv(i)+1)) mod 2N - 1) / 2). Same idea as
 * SEAL's GaloisTool, derived here for this file's ordering.
 * hetee_vec_permute runs the AVX-512 gather variant (galois_avx512.c) when
 * the ISA picker chose AVX-512, the scalar loop otherwise.
 */
#include "ring_internal.h"

int hetee_galois_perm_ntt(int logn, uint64_t g, uint32_t *perm) {
  if (!perm)
    return hetee_error(HETEE_ERR_INVALID_ARG, "galois: NULL permutation");
  if (logn < 1 || logn > HETEE_RING_MAX_LOGN)
    return hetee_error(HETEE_ERR_PARAMS, "galois: logN %d out of range", logn);
  uint64_t n = (uint64_t)1 << logn, mask = 2 * n - 1;
  if ((g & 1) == 0 || g >= 2 * n)
    return hetee_error(HETEE_ERR_INVALID_ARG, "galois: element %llu must be odd and < 2N",
                       (unsigned long long)g);
  for (uint64_t i = 0; i < n; i++) {
    uint64_t e = 2 * (uint64_t)hetee_bitrev((uint32_t)i, logn) + 1;
    uint64_t f = (e * g) & mask;
    perm[i] = hetee_bitrev((uint32_t)((f - 1) >> 1), logn);
  }
  return 0;
}

void hetee_vec_permute_ref(const uint32_t *perm, const uint64_t *in, uint64_t *out, size_t n) {
  for (size_t i = 0; i < n; i++)
    out[i] = in[perm[i]];
}

/* AVX-512 gathers (galois_avx512.c) when the picker chose AVX-512. */
void hetee_vec_permute(const uint32_t *perm, const uint64_t *in, uint64_t *out, size_t n) {
#ifndef HETEE_RING_NO_SIMD
  if (hetee_ring_isa() == HETEE_ISA_AVX512) {
    hetee_vec_permute_avx512(perm, in, out, n);
    return;
  }
#endif
  hetee_vec_permute_ref(perm, in, out, n);
}

void hetee_galois_apply_coeff(const hetee_modulus *m, int logn, uint64_t g, const uint64_t *in, uint64_t *out) {
  const uint64_t n = (uint64_t)1 << logn, mask = 2 * n - 1, q = m->q;
  for (uint64_t j = 0; j < n; j++) {
    uint64_t idx = (j * g) & mask;
    /* the destination is public; the sign flip on the value is branch-free */
    uint64_t neg = (uint64_t)0 - (idx >> logn);
    uint64_t nz = (uint64_t)0 - (uint64_t)(in[j] != 0);
    uint64_t v = in[j];
    out[idx & (n - 1)] = (v & ~neg) | (((q - v) & nz) & neg);
  }
}

/*
 * hemat_internal.h — helpers shared by the hemat files (layout.c,
 * weights.c, twin.c, planner.c, kernel.c); not installed.
 */
#ifndef HETEE_HEMAT_INTERNAL_H
#define HETEE_HEMAT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "hetee/hemat.h"

/* Largest ring degree a layout accepts: coefficients then fit the uint32_t
 * indices of hetee_ckks_decode_coeffs. */
#define HEMAT_MAX_N ((size_t)1 << 31)

/* Every shape field >= 1 (HETEE_ERR_INVALID_ARG) and the kernel within the
 * padded input (HETEE_ERR_SHAPE); the detail names the field. */
int hemat_check_shape(const hetee_hemat_shape *s);
/* N a power of two in [1, HEMAT_MAX_N] (HETEE_ERR_INVALID_ARG). */
int hemat_check_n(size_t n);
/* HW, O, S and T of hemat.h for a checked shape and 1 <= cb <= c,
 * 1 <= mb <= co; HETEE_ERR_SHAPE if one overflows 64 bits. */
int hemat_span(const hetee_hemat_shape *s, int cb, int mb, uint64_t *hw, uint64_t *off_o, uint64_t *sp_s,
               uint64_t *span_t);

/* hetee_hemat_choose for the engine's plan (plan.c): a layer whose outputs
 * the enclave's JOB_REFRESH decrypts as one coset (oh = ow = 1 and a
 * power of two d >= 8 dividing the spacing) prices its decryptions at 0.75
 * t_enclave_dec (planner.c, docs/hemat.md "Costs"). */
/* 1 if the enclave decrypts the outputs of packing pk (at a micro-batch of
 * batch samples) as one coset each; the cost of one output ciphertext
 * (host t_out_host + the enclave's coset or full decryption). */
int hemat_pack_coset(const hetee_hemat_shape *s, const hetee_hemat_pack *pk, uint32_t batch, size_t n);
double hemat_out_cost(const hetee_hemat_costs *c, const hetee_hemat_shape *s, const hetee_hemat_pack *pk,
                      uint32_t batch, size_t n);
int hemat_choose_engine(const hetee_hemat_shape *s, uint32_t batch, size_t n, int input_from_client,
                        const hetee_hemat_costs *c, hetee_hemat_pack *out, double *cost);

/* The three coefficient formulas of hemat.h (the layout, weights.c, the
 * twin and the enclave's integrity checks use these and nothing else), for
 * a layout made by hetee_hemat_layout_init and arguments in range:
 * j = sample slot, m = o % mb, ci = c % cb. With lanes > 1 (mb == lanes)
 * the subring layout: everything at multiples of lanes, channel m at
 * residue m. */
static inline uint64_t hemat_in_coef(const hetee_hemat_layout *L, uint64_t j, uint64_t ci, uint64_t y, uint64_t x) {
  return (uint64_t)L->lanes * (j * L->span_t + ci * L->hw + y * (uint64_t)L->shape.w + x);
}
static inline uint64_t hemat_w_coef(const hetee_hemat_layout *L, uint64_t m, uint64_t ci, uint64_t dy, uint64_t dx) {
  uint64_t d = ci * L->hw + dy * (uint64_t)L->shape.w + dx; /* <= O */
  if (L->lanes > 1) return (uint64_t)L->lanes * (L->off_o - d) + m;
  return m * L->spacing_s + L->off_o - d;
}
static inline uint64_t hemat_out_coef(const hetee_hemat_layout *L, uint64_t j, uint64_t m, uint64_t oy, uint64_t ox) {
  uint64_t e = oy * (uint64_t)L->shape.sh * (uint64_t)L->shape.w + ox * (uint64_t)L->shape.sw;
  if (L->lanes > 1) return (uint64_t)L->lanes * (j * L->span_t + L->off_o + e) + m;
  return j * L->span_t + m * L->spacing_s + L->off_o + e;
}

/* The planner with lanes: max_lanes 0 or 1 never picks a lane packing;
 * else lane packings with lanes 2..max_lanes (powers of two) are priced
 * too when the inputs come from the enclave (never for the client's).
 * cosets: the engine's coset discount (hemat_choose_engine); only_lanes:
 * only lane packings are considered (the engine's forced-lanes option,
 * for measurements; HETEE_ERR_SHAPE when none fits). */
int hemat_choose_lanes(const hetee_hemat_shape *s, uint32_t batch, size_t n, int input_from_client, int max_lanes,
                       int cosets, int only_lanes, const hetee_hemat_costs *c, hetee_hemat_pack *out, double *cost);

/* Re-derives L with hetee_hemat_layout_init and checks every derived
 * field, so a hand-made or corrupted layout never indexes out of bounds
 * (HETEE_ERR_INVALID_ARG / the errors of layout_init). O(1). */
int hemat_check_layout(const hetee_hemat_layout *L);

#endif

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
int hemat_choose_engine(const hetee_hemat_shape *s, uint32_t batch, size_t n, int input_from_client,
                        const hetee_hemat_costs *c, hetee_hemat_pack *out, double *cost);

/* Re-derives L with hetee_hemat_layout_init and checks every derived
 * field, so a hand-made or corrupted layout never indexes out of bounds
 * (HETEE_ERR_INVALID_ARG / the errors of layout_init). O(1). */
int hemat_check_layout(const hetee_hemat_layout *L);

#endif

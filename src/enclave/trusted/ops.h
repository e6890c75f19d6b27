/*
 * ops.h — internal: the refresh operation list applied to a decrypted
 * tensor (plaintext side of the enclave's refresh; no CKKS involved, so it
 * is unit-tested directly against a naive reference).
 */
#ifndef HETEE_ENCLAVE_OPS_H
#define HETEE_ENCLAVE_OPS_H

#include <stddef.h>

#include "hetee/enclave.h"

/* Applies spec->ops to each of the spec->batch samples of v (shape
 * spec->shape, C*H*W values each, sample-major) in place; tmp must hold
 * C*H*W doubles. On return v holds batch samples of the final shape
 * (sample-major, compacted) and shape the final shape of one sample. Values
 * are saturated at +-HETEE_REFRESH_VALUE_BOUND on entry and after every op.
 * The spec must have passed hetee_refresh_shapes. Branch-free on the values. */
void hetee_ops_apply(const hetee_refresh_spec *spec, double *v, double *tmp, int shape[3]);

#endif

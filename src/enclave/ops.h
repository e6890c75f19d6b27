/*
 * ops.h — internal: the refresh operation list applied to a decrypted
 * tensor (plaintext side of the enclave's refresh; no CKKS involved, so it
 * is unit-tested directly against a naive reference).
 */
#ifndef HETEE_ENCLAVE_OPS_H
#define HETEE_ENCLAVE_OPS_H

#include <stddef.h>

#include "hetee/enclave.h"

/* Applies spec->ops to v (shape spec->shape, C*H*W values) in place; tmp must
 * hold as many doubles as v. On return shape holds the final shape.
 * The spec must have passed hetee_refresh_shapes. Branch-free on the values. */
void hetee_ops_apply(const hetee_refresh_spec *spec, double *v, double *tmp, int shape[3]);

#endif

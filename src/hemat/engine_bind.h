/*
 * engine_bind.h — internal: the refresh spec of one engine stage as the
 * enclave (src/enclave/trusted/integrity.c) derives it from a registered
 * plan. A bound JOB_REFRESH carries no spec: the enclave applies this one
 * (the tests build it too, to send it in a request and see it refused).
 */
#ifndef HETEE_HEMAT_ENGINE_BIND_H
#define HETEE_HEMAT_ENGINE_BIND_H

#include <string.h>

#include "hetee/engine.h"

static inline void engine_stage_spec(const hetee_ckks_context *ctx, const hetee_engine_refresh *R,
                                     hetee_refresh_spec *spec) {
  memset(spec, 0, sizeof *spec);
  memcpy(spec->shape, R->in_shape, sizeof spec->shape);
  spec->batch = R->batch;
  spec->in_map = R->in_map;
  /* the host rescales every product by q_1 before sending it */
  spec->in_level = HETEE_ENGINE_REFRESH_LEVEL;
  spec->in_scale = hetee_engine_refresh_scale(ctx);
  spec->in_encoding = HETEE_ENC_COEFFS;
  spec->nops = R->nops;
  spec->ops = R->ops;
  spec->out_ncts = R->out_ncts;
  spec->out_n = R->out_n;
  spec->out_dst = R->out_dst;
  spec->out_src = R->out_src;
  spec->out_level = R->release ? hetee_ckks_context_max_level(ctx) : HETEE_ENGINE_LEVEL;
  spec->out_scale = R->release          ? hetee_engine_release_scale(ctx)
                    : R->out_lanes > 1  ? HETEE_ENGINE_IN_SCALE / (double)R->out_lanes
                                        : HETEE_ENGINE_IN_SCALE;
  spec->out_encoding = HETEE_ENC_COEFFS;
}

#endif

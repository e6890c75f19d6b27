/*
 * engine_internal.h — internal: the objects behind hetee/engine.h, shared by
 * hemat/ (plan, formats), client/ (model provider / data provider
 * encryption) and host/ (the layer loop). Nothing here is public API.
 */
#ifndef HETEE_HEMAT_ENGINE_INTERNAL_H
#define HETEE_HEMAT_ENGINE_INTERNAL_H

#include <stdarg.h>
#include <stdio.h>

#include "hetee/engine.h"

#define ENGINE_NAMES_MAX 1024 /* bytes of a stage's layer list (with NUL) */
#define ENGINE_MAX_TOP_LEVEL 3 /* level bound used to size release ciphertexts */

typedef struct engine_stage {
  int layer;            /* index of the linear layer in the hetee_nn model */
  int kind;             /* HETEE_NN_DENSE / HETEE_NN_CONV */
  char names[ENGINE_NAMES_MAX];
  int in_shape[3];      /* unpadded input per sample */
  int pads[4];          /* top, left, bottom, right */
  hetee_hemat_shape conv;  /* the layer's own geometry (padded input; dense: 1x1) */
  int phased;              /* hemat runs conv in space-to-depth form (engine_phase_shape) */
  hetee_hemat_shape shape; /* what hemat computes: conv, or its space-to-depth form */
  hetee_hemat_pack pack;
  hetee_hemat_layout layout; /* at the plan's micro-batch */
  int has_bias;
  int fold;             /* 1 + index of the AFFINE layer (BatchNormalization)
                           or ADD_CONST layer folded into this stage's
                           weights and bias: the
                           previous stage's refresh no longer applies it, and
                           its constants reach nobody but the model provider
                           (engine_fold_affine); 0: none */
  size_t nops;
  hetee_refresh_op ops[HETEE_REFRESH_MAX_OPS];
  int op_layer[HETEE_REFRESH_MAX_OPS]; /* nn layer of each op (built plans only) */
  double *arrays[2 * HETEE_REFRESH_MAX_OPS]; /* owned op parameters (a, b) */
  int out_shape[3];     /* after the ops */
  double predicted_s;
} engine_stage;

struct hetee_engine_plan {
  size_t n;             /* ring degree */
  uint32_t micro_batch;
  int in_shape[3];      /* model input per sample (C, H, W) */
  size_t in_size, out_size;
  int release_kind;
  size_t nstages;
  engine_stage *st;
  hetee_hemat_costs costs;
  int phase;            /* build option only (not saved): HETEE_ENGINE_PHASE_* */
  int max_lanes, force_lanes; /* build options only (not saved): lane packings */
  int version;          /* plan format version it was loaded from (0: built) */
};

struct hetee_engine_model {
  const hetee_ckks_context *ctx;
  hetee_engine_plan *plan;
  /* per stage: w[s][mbk * ncb + cbk] (n_w_cts), bias[s][mbk] (nmb, or NULL) */
  hetee_ckks_ciphertext ***w;
  hetee_ckks_ciphertext ***bias;
  size_t ct_bytes;
  const hetee_ckks_galois_keys *gk; /* the host's expansion keys (lane stages), by reference; NULL: none */
};

struct hetee_engine_input {
  const hetee_ckks_context *ctx;
  size_t count;         /* samples */
  uint32_t micro_batch;
  size_t ncts;          /* all micro-batches, in order */
  hetee_ckks_ciphertext **cts;
};

/* Number of samples of micro-batch k of a run of `count` samples. */
static inline uint32_t engine_mb_size(size_t count, uint32_t mb, size_t k) {
  size_t left = count - k * (size_t)mb;
  return (uint32_t)(left < mb ? left : mb);
}

/* Returns rc with the detail "<prefix>: <current detail>"; the current
 * detail is copied first (hetee_error writes the very buffer
 * hetee_last_error points to). */
static inline int engine_wrap(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int engine_wrap(int rc, const char *fmt, ...) {
  char old[512], pre[400];
  snprintf(old, sizeof old, "%s", hetee_last_error());
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pre, sizeof pre, fmt, ap);
  va_end(ap);
  return hetee_error(rc, "%s: %s", pre, old);
}

/* Space-to-depth form of a strided convolution (docs/engine.md, "Strided
 * convolutions"): with strides sh x sw, padded input element (c, Y, X) goes
 * to channel (c*sh + Y%sh)*sw + X%sw at (Y/sh, X/sw), kernel tap (dy, dx) of
 * input channel c to channel (c*sh + dy%sh)*sw + dx%sw at (dy/sh, dx/sw):
 * the same outputs from a stride-1 convolution with sh*sw times the
 * channels on an input sh*sw times smaller, whose outputs are sh*sw times
 * denser in hemat's output ciphertexts. Fills *out and returns 1 when conv
 * has a stride above 1 and the form gives exactly conv's output size
 * (ceil(h/sh) - ceil(kh/sh) + 1 = oh, the same for w); else returns 0. */
int engine_phase_shape(const hetee_hemat_shape *conv, hetee_hemat_shape *out);

/* Where element (c, y, x) of stage st's unpadded input sits in hemat's
 * input geometry st->shape (padding added; space-to-depth if phased). */
static inline void engine_in_coord(const engine_stage *st, int c, int y, int x, int *hc, int *hy, int *hx) {
  int Y = y + st->pads[0], X = x + st->pads[1];
  if (!st->phased) {
    *hc = c, *hy = Y, *hx = X;
    return;
  }
  int ph = st->conv.sh, pw = st->conv.sw;
  *hc = (c * ph + Y % ph) * pw + X % pw;
  *hy = Y / ph;
  *hx = X / pw;
}

/* The layer's weights (co x c x kh x kw of st->conv) as hemat's weights of
 * st->shape: w itself, or (phased) a rearranged copy in *owned (malloc'd;
 * the caller wipes and frees it: weights are the model provider's). */
int engine_stage_weights(const engine_stage *st, const float *w, const float **out, float **owned);
/* The weights (the layer's own geometry, co x c x kh x kw) and bias (co
 * values, or NULL without one) stage st computes with, from model m: the
 * layer's, with the AFFINE layer st->fold names folded in. malloc'd. */
int engine_stage_params(const engine_stage *st, const hetee_nn_model *m, float **w, float **bias);

/* Plan (de)serialization, embedded in the encrypted model file. load
 * validates everything (HETEE_ERR_FORMAT with a detail) and recomputes the
 * layouts. */
int engine_plan_save(const hetee_engine_plan *p, uint8_t **buf, size_t *len);
int engine_plan_load(const uint8_t *buf, size_t len, hetee_engine_plan **out);

/* Whether every enclave frame of plan p (at its micro-batch) fits the
 * protocol's limits; why (wn bytes) names the first that does not. */
int engine_frames_fit(const hetee_engine_plan *p, char *why, size_t wn);
/* Cost-model seconds of stage s per micro-batch (hemat costs of the plan). */
double engine_predict(const hetee_engine_plan *p, size_t s);
/* Input ciphertexts of a run of `count` samples under plan p. */
int engine_input_cts(const hetee_engine_plan *p, size_t count, size_t *ncts);

/* Upper bound of a serialized ciphertext's bytes (polys polynomials at
 * `level` of ring degree n). */
static inline size_t engine_ct_bytes(size_t n, int polys, int level) {
  return 128 + (size_t)polys * (size_t)(level + 1) * n * 8;
}

/* Checks a ciphertext is what the engine format says: context, level 1,
 * size 2, scale. */
int engine_check_ct(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, double scale, const char *what);

#endif

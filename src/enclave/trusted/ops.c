/*
 * ops.c — the non-linear part of a layer, applied by the enclave between
 * decryption and fresh encryption: bias, ReLU / leaky ReLU / sigmoid / tanh /
 * square, max- and average-pooling windows, batch-norm affine, reshape,
 * scaling. Every loop bound and index comes from the public shape; the
 * values only flow through arithmetic and mask selections (activations.h),
 * so timing and memory access do not depend on them. After every op the
 * values are saturated (branch-free) at +-HETEE_REFRESH_VALUE_BOUND (2^256):
 * with constants bounded by 2^64 (refresh_spec.c) no op can then produce an
 * infinity or a NaN, whatever the decrypted values were.
 */
#include <string.h>

#include "enclave/trusted/activations.h"
#include "enclave/trusted/ops.h"

static void pool(const double *in, double *out, int c, int h, int w, int k, int s, int is_max) {
  int oh = (h - k) / s + 1, ow = (w - k) / s + 1;
  double inv = 1.0 / (double)(k * k);
  for (int ch = 0; ch < c; ch++)
    for (int y = 0; y < oh; y++)
      for (int x = 0; x < ow; x++) {
        const double *base = in + ((size_t)ch * h + (size_t)y * s) * w + (size_t)x * s;
        double acc = is_max ? base[0] : 0.0;
        for (int dy = 0; dy < k; dy++)
          for (int dx = 0; dx < k; dx++) {
            double t = base[(size_t)dy * w + dx];
            acc = is_max ? hetee_dmax(acc, t) : acc + t; /* is_max is public */
          }
        out[((size_t)ch * oh + y) * ow + x] = is_max ? acc : acc * inv;
      }
}

static void saturate(double *v, size_t n) {
  const double b = HETEE_REFRESH_VALUE_BOUND;
  for (size_t j = 0; j < n; j++) v[j] = hetee_dmin(hetee_dmax(v[j], -b), b); /* NaN -> -b */
}

/* One sample. */
static void apply_one(const hetee_refresh_spec *spec, double *v, double *tmp, int sh[3]) {
  int c = spec->shape[0], h = spec->shape[1], w = spec->shape[2];
  for (size_t i = 0; i < spec->nops; i++) {
    const hetee_refresh_op *o = &spec->ops[i];
    size_t n = (size_t)c * h * w, hw = (size_t)h * w;
    switch (o->kind) {
    case HETEE_OP_ADD_BIAS:
      if (o->na == n)
        for (size_t j = 0; j < n; j++) v[j] += o->a[j];
      else /* one constant per channel: no division per value */
        for (size_t ch = 0; ch < (size_t)c; ch++)
          for (size_t j = ch * hw; j < (ch + 1) * hw; j++) v[j] += o->a[ch];
      break;
    case HETEE_OP_RELU:
      for (size_t j = 0; j < n; j++) v[j] = hetee_relu(v[j]);
      break;
    case HETEE_OP_LEAKY_RELU:
      for (size_t j = 0; j < n; j++) v[j] = hetee_leaky_relu(v[j], o->alpha);
      break;
    case HETEE_OP_SIGMOID:
      for (size_t j = 0; j < n; j++) v[j] = hetee_sigmoid(v[j]);
      break;
    case HETEE_OP_TANH:
      for (size_t j = 0; j < n; j++) v[j] = hetee_tanh(v[j]);
      break;
    case HETEE_OP_SQUARE:
      for (size_t j = 0; j < n; j++) v[j] *= v[j];
      break;
    case HETEE_OP_SCALE:
      for (size_t j = 0; j < n; j++) v[j] *= o->alpha;
      break;
    case HETEE_OP_BATCHNORM:
      for (size_t ch = 0; ch < (size_t)c; ch++) {
        const double a = o->a[ch], b = o->b[ch];
        for (size_t j = ch * hw; j < (ch + 1) * hw; j++) v[j] = a * v[j] + b;
      }
      break;
    case HETEE_OP_MAXPOOL:
    case HETEE_OP_AVGPOOL: {
      pool(v, tmp, c, h, w, o->window, o->stride, o->kind == HETEE_OP_MAXPOOL);
      h = (h - o->window) / o->stride + 1;
      w = (w - o->window) / o->stride + 1;
      memcpy(v, tmp, (size_t)c * h * w * sizeof *v);
      break;
    }
    case HETEE_OP_RESHAPE:
      c = o->shape[0], h = o->shape[1], w = o->shape[2];
      break;
    default: break;
    }
    saturate(v, (size_t)c * h * w);
  }
  sh[0] = c, sh[1] = h, sh[2] = w;
}

void hetee_ops_apply(const hetee_refresh_spec *spec, double *v, double *tmp, int sh[3]) {
  size_t batch = spec->batch ? spec->batch : 1;
  size_t n = (size_t)spec->shape[0] * spec->shape[1] * spec->shape[2];
  saturate(v, batch * n);
  sh[0] = spec->shape[0], sh[1] = spec->shape[1], sh[2] = spec->shape[2];
  for (size_t b = 0; b < batch; b++) {
    apply_one(spec, v + b * n, tmp, sh);
    size_t nf = (size_t)sh[0] * sh[1] * sh[2];
    /* compact: sample b's final values to [b * nf, (b + 1) * nf); nf <= n, so
     * the destination never overtakes a sample not yet processed */
    if (b && nf) memmove(v + b * nf, v + b * n, nf * sizeof *v);
  }
}

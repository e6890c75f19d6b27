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
#include "hetee/ring.h"

/* The element-wise ops and the saturation, 4 values at a time with AVX2
 * when the ring layer runs AVX2 or better (HETEE_ISA=ref pins the scalar
 * loops): vmaxpd / vminpd are the selections of activations.h (max(x, y) =
 * x > y ? x : y, the second operand on NaN), the arithmetic is the same
 * (no FMA contraction: the target has none), so the values are the scalar
 * loops' bit for bit, and the timing does not depend on them. Each op is
 * fused with the saturation that follows it (one pass instead of two). */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(HETEE_RING_NO_SIMD)
#include <immintrin.h>
#define OPS_AVX2 1

enum { EW_SAT, EW_RELU, EW_ADD, EW_MUL, EW_SQUARE, EW_AFFINE };

/* v[j] = saturate(op(v[j])) for j < n, op with the constants a, b. */
__attribute__((target("avx2"))) static void ew_avx2(int op, double *v, size_t n, double a, double b) {
  const __m256d hi = _mm256_set1_pd(HETEE_REFRESH_VALUE_BOUND), lo = _mm256_set1_pd(-HETEE_REFRESH_VALUE_BOUND),
                va = _mm256_set1_pd(a), vb = _mm256_set1_pd(b), zero = _mm256_setzero_pd();
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    __m256d x = _mm256_loadu_pd(v + j);
    switch (op) { /* public: the op */
    case EW_RELU: x = _mm256_max_pd(x, zero); break;
    case EW_ADD: x = _mm256_add_pd(x, va); break;
    case EW_MUL: x = _mm256_mul_pd(x, va); break;
    case EW_SQUARE: x = _mm256_mul_pd(x, x); break;
    case EW_AFFINE: x = _mm256_add_pd(_mm256_mul_pd(va, x), vb); break;
    default: break;
    }
    _mm256_storeu_pd(v + j, _mm256_min_pd(_mm256_max_pd(x, lo), hi)); /* NaN -> -bound */
  }
  for (; j < n; j++) {
    double x = v[j];
    switch (op) {
    case EW_RELU: x = hetee_relu(x); break;
    case EW_ADD: x += a; break;
    case EW_MUL: x *= a; break;
    case EW_SQUARE: x *= x; break;
    case EW_AFFINE: x = a * x + b; break;
    default: break;
    }
    v[j] = hetee_dmin(hetee_dmax(x, -HETEE_REFRESH_VALUE_BOUND), HETEE_REFRESH_VALUE_BOUND);
  }
}

static int ops_simd(void) {
  static int use = -1; /* racing first calls store the same value */
  if (use < 0) use = hetee_ring_isa() != HETEE_ISA_REF && __builtin_cpu_supports("avx2");
  return use;
}
#endif

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
#ifdef OPS_AVX2
  if (ops_simd()) {
    ew_avx2(EW_SAT, v, n, 0, 0);
    return;
  }
#endif
  for (size_t j = 0; j < n; j++) v[j] = hetee_dmin(hetee_dmax(v[j], -b), b); /* NaN -> -b */
}

/* One sample. */
static void apply_one(const hetee_refresh_spec *spec, double *v, double *tmp, int sh[3]) {
  int c = spec->shape[0], h = spec->shape[1], w = spec->shape[2];
  for (size_t i = 0; i < spec->nops; i++) {
    const hetee_refresh_op *o = &spec->ops[i];
    size_t n = (size_t)c * h * w, hw = (size_t)h * w;
#ifdef OPS_AVX2
    if (ops_simd()) { /* the element-wise ops fused with their saturation */
      int done = 1;
      switch (o->kind) {
      case HETEE_OP_ADD_BIAS:
        if (o->na == n) {
          for (size_t j = 0; j < n; j++) v[j] += o->a[j];
          ew_avx2(EW_SAT, v, n, 0, 0);
        } else
          for (size_t ch = 0; ch < (size_t)c; ch++) ew_avx2(EW_ADD, v + ch * hw, hw, o->a[ch], 0);
        break;
      case HETEE_OP_RELU: ew_avx2(EW_RELU, v, n, 0, 0); break;
      case HETEE_OP_SQUARE: ew_avx2(EW_SQUARE, v, n, 0, 0); break;
      case HETEE_OP_SCALE: ew_avx2(EW_MUL, v, n, o->alpha, 0); break;
      case HETEE_OP_BATCHNORM:
        for (size_t ch = 0; ch < (size_t)c; ch++) ew_avx2(EW_AFFINE, v + ch * hw, hw, o->a[ch], o->b[ch]);
        break;
      default: done = 0; break;
      }
      if (done) continue;
    }
#endif
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

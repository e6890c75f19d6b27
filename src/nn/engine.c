/*
 * engine.c — the plaintext reference engine: runs a hetee_nn_model on a
 * batch in floating point, layer by layer, keeping every layer's output.
 *
 * It is the twin the encrypted engine is tested against, so it is written for
 * being right and reproducible rather than fast: dot products (dense, conv,
 * pooling means, softmax sums) accumulate in double in a fixed order and are
 * rounded to float once per output, as PyTorch's float32 results are close
 * to exactly that. Samples are independent; the batch may be split across
 * OpenMP threads without changing a single bit of the result.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

#define NN_CHUNK 256 /* samples per pass in hetee_nn_forward (bounds memory) */

static void run_dense(const nn_layer *l, const float *x, size_t batch, float *y) {
  size_t k = l->in_size, n = l->out_size;
#pragma omp parallel for schedule(static) if (batch >= 16)
  for (size_t s = 0; s < batch; s++) {
    const float *xs = x + s * k;
    for (size_t o = 0; o < n; o++) {
      const float *w = l->weight + o * k;
      double acc = l->bias[o];
      for (size_t i = 0; i < k; i++) acc += (double)w[i] * xs[i];
      y[s * n + o] = (float)acc;
    }
  }
}

static void run_conv(const nn_layer *l, const float *x, size_t batch, float *y) {
  size_t ci = l->in_dims[0], ih = l->in_dims[1], iw = l->in_dims[2];
  size_t co = l->out_dims[0], oh = l->out_dims[1], ow = l->out_dims[2];
  size_t kh = l->kernel[0], kw = l->kernel[1];
#pragma omp parallel for schedule(static) if (batch >= 4)
  for (size_t s = 0; s < batch; s++) {
    const float *xs = x + s * l->in_size;
    float *ys = y + s * l->out_size;
    for (size_t o = 0; o < co; o++) {
      for (size_t r = 0; r < oh; r++) {
        for (size_t q = 0; q < ow; q++) {
          /* Kernel taps u in [u0,u1), v in [v0,v1) fall inside the input:
           * input row = r*stride + u - pad_top (likewise for columns). */
          size_t r0 = r * l->stride[0], q0 = q * l->stride[1];
          size_t u0 = r0 < l->pads[0] ? l->pads[0] - r0 : 0, v0 = q0 < l->pads[1] ? l->pads[1] - q0 : 0;
          size_t u1 = r0 >= ih + l->pads[0] ? 0 : ih + l->pads[0] - r0 < kh ? ih + l->pads[0] - r0 : kh;
          size_t v1 = q0 >= iw + l->pads[1] ? 0 : iw + l->pads[1] - q0 < kw ? iw + l->pads[1] - q0 : kw;
          double acc = l->bias[o];
          for (size_t c = 0; c < ci; c++) {
            const float *w = l->weight + ((o * ci + c) * kh) * kw;
            for (size_t u = u0; u < u1; u++) {
              const float *xr = xs + (c * ih + r0 + u - l->pads[0]) * iw;
              const float *wr = w + u * kw;
              for (size_t v = v0; v < v1; v++) acc += (double)wr[v] * xr[q0 + v - l->pads[1]];
            }
          }
          ys[(o * oh + r) * ow + q] = (float)acc;
        }
      }
    }
  }
}

static void run_pool(const nn_layer *l, const float *x, size_t batch, float *y) {
  size_t ch = l->in_dims[0], ih = l->in_dims[1], iw = l->in_dims[2];
  size_t oh = l->out_dims[1], ow = l->out_dims[2];
  int is_max = l->kind == HETEE_NN_MAXPOOL;
  for (size_t s = 0; s < batch; s++) {
    const float *xs = x + s * l->in_size;
    float *ys = y + s * l->out_size;
    for (size_t c = 0; c < ch; c++) {
      for (size_t r = 0; r < oh; r++) {
        for (size_t q = 0; q < ow; q++) {
          double acc = 0.0;
          float mx = -INFINITY;
          size_t cnt = 0;
          for (size_t u = 0; u < l->kernel[0]; u++) {
            size_t row = r * l->stride[0] + u;
            if (row < l->pads[0] || row - l->pads[0] >= ih) continue;
            for (size_t v = 0; v < l->kernel[1]; v++) {
              size_t col = q * l->stride[1] + v;
              if (col < l->pads[1] || col - l->pads[1] >= iw) continue;
              float e = xs[(c * ih + row - l->pads[0]) * iw + col - l->pads[1]];
              mx = e > mx ? e : mx;
              acc += e;
              cnt++;
            }
          }
          if (l->count_include_pad) cnt = l->kernel[0] * l->kernel[1];
          ys[(c * oh + r) * ow + q] = is_max ? mx : (float)(acc / (double)cnt);
        }
      }
    }
  }
}

static void run_pad(const nn_layer *l, const float *x, size_t batch, float *y) {
  size_t ch = l->in_dims[0], ih = l->in_dims[1], iw = l->in_dims[2];
  size_t oh = l->out_dims[1], ow = l->out_dims[2];
  for (size_t s = 0; s < batch; s++) {
    float *ys = y + s * l->out_size;
    for (size_t i = 0; i < l->out_size; i++) ys[i] = l->alpha;
    for (size_t c = 0; c < ch; c++) {
      for (size_t r = 0; r < ih; r++) {
        memcpy(ys + (c * oh + r + l->pads[0]) * ow + l->pads[1], x + s * l->in_size + (c * ih + r) * iw,
               iw * sizeof(float));
      }
    }
  }
}

void nn_layer_run(const nn_layer *l, const float *a, const float *b, size_t batch, float *y) {
  size_t n = batch * l->out_size;
  switch (l->kind) {
    case HETEE_NN_DENSE: run_dense(l, a, batch, y); break;
    case HETEE_NN_CONV: run_conv(l, a, batch, y); break;
    case HETEE_NN_MAXPOOL:
    case HETEE_NN_AVGPOOL: run_pool(l, a, batch, y); break;
    case HETEE_NN_PAD: run_pad(l, a, batch, y); break;
    case HETEE_NN_GLOBAL_AVGPOOL: {
      size_t ch = l->in_dims[0], hw = l->in_size / ch;
      for (size_t s = 0; s < batch; s++) {
        for (size_t c = 0; c < ch; c++) {
          double acc = 0.0;
          for (size_t i = 0; i < hw; i++) acc += a[s * l->in_size + c * hw + i];
          y[s * ch + c] = (float)(acc / (double)hw);
        }
      }
      break;
    }
    case HETEE_NN_AFFINE: {
      size_t ch = l->in_dims[0], per = l->out_size / ch;
      for (size_t i = 0; i < n; i++) {
        size_t c = (i % l->out_size) / per;
        y[i] = (float)((double)a[i] * l->weight[c] + l->bias[c]);
      }
      break;
    }
    case HETEE_NN_ADD_CONST:
      for (size_t i = 0; i < n; i++) y[i] = a[i] + l->weight[i % l->out_size];
      break;
    case HETEE_NN_MUL_CONST:
      for (size_t i = 0; i < n; i++) y[i] = a[i] * l->weight[i % l->out_size];
      break;
    case HETEE_NN_ADD:
      for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
      break;
    case HETEE_NN_MUL:
      for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i];
      break;
    case HETEE_NN_SQUARE:
      for (size_t i = 0; i < n; i++) y[i] = a[i] * a[i];
      break;
    case HETEE_NN_RELU:
      for (size_t i = 0; i < n; i++) y[i] = a[i] > 0.0f ? a[i] : 0.0f;
      break;
    case HETEE_NN_LEAKY_RELU:
      for (size_t i = 0; i < n; i++) y[i] = a[i] >= 0.0f ? a[i] : l->alpha * a[i];
      break;
    case HETEE_NN_SIGMOID:
      for (size_t i = 0; i < n; i++) y[i] = (float)(1.0 / (1.0 + exp(-(double)a[i])));
      break;
    case HETEE_NN_TANH:
      for (size_t i = 0; i < n; i++) y[i] = (float)tanh((double)a[i]);
      break;
    case HETEE_NN_RESHAPE: memcpy(y, a, n * sizeof(float)); break;
    case HETEE_NN_SOFTMAX: {
      size_t d = l->out_size;
      for (size_t s = 0; s < batch; s++) {
        const float *as = a + s * d;
        double mx = -INFINITY, sum = 0.0;
        for (size_t i = 0; i < d; i++) mx = as[i] > mx ? as[i] : mx;
        for (size_t i = 0; i < d; i++) sum += exp((double)as[i] - mx);
        for (size_t i = 0; i < d; i++) y[s * d + i] = (float)(exp((double)as[i] - mx) / sum);
      }
      break;
    }
  }
}

struct hetee_nn_trace {
  size_t n_layers, batch;
  float **outs;
  size_t *lens;
};

void hetee_nn_trace_free(hetee_nn_trace *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n_layers; i++) free(t->outs[i]);
  free(t->outs);
  free(t->lens);
  free(t);
}

int hetee_nn_trace_run(const hetee_nn_model *m, const float *x, size_t batch, hetee_nn_trace **out) {
  int rc;
  if (!m || !out || (!x && batch)) return hetee_error(HETEE_ERR_INVALID_ARG, "hetee_nn_trace_run: NULL");
  *out = NULL;
  hetee_nn_trace *t = calloc(1, sizeof *t);
  if (!t) return hetee_error(HETEE_ERR_NOMEM, "trace");
  t->batch = batch;
  t->n_layers = m->n_layers;
  t->outs = calloc(m->n_layers, sizeof *t->outs);
  t->lens = calloc(m->n_layers, sizeof *t->lens);
  if (!t->outs || !t->lens) {
    rc = hetee_error(HETEE_ERR_NOMEM, "trace");
    goto err;
  }
  for (size_t i = 0; i < m->n_layers; i++) {
    const nn_layer *l = &m->layers[i];
    if (batch && l->out_size > HETEE_NN_MAX_ELEMENTS / batch) {
      rc = hetee_error(HETEE_ERR_LIMIT, "batch of %zu too large for layer '%s'", batch, l->name);
      goto err;
    }
    t->lens[i] = batch * l->out_size;
    t->outs[i] = malloc((t->lens[i] ? t->lens[i] : 1) * sizeof(float));
    if (!t->outs[i]) {
      rc = hetee_error(HETEE_ERR_NOMEM, "layer '%s' output for %zu samples", l->name, batch);
      goto err;
    }
    const float *a = l->inputs[0] < 0 ? x : t->outs[l->inputs[0]];
    const float *b = l->n_inputs > 1 ? (l->inputs[1] < 0 ? x : t->outs[l->inputs[1]]) : NULL;
    if (batch) nn_layer_run(l, a, b, batch, t->outs[i]);
  }
  *out = t;
  return 0;
err:
  hetee_nn_trace_free(t);
  return rc;
}

const float *hetee_nn_trace_output(const hetee_nn_trace *t, size_t i, size_t *len) {
  if (!t || i >= t->n_layers) return NULL;
  if (len) *len = t->lens[i];
  return t->outs[i];
}

int hetee_nn_forward(const hetee_nn_model *m, const float *x, size_t batch, float *y) {
  if (!m || (batch && (!x || !y))) return hetee_error(HETEE_ERR_INVALID_ARG, "hetee_nn_forward: NULL");
  size_t in = m->in_size, outn = hetee_nn_model_output_size(m);
  for (size_t s0 = 0; s0 < batch; s0 += NN_CHUNK) {
    size_t nb = batch - s0 < NN_CHUNK ? batch - s0 : NN_CHUNK;
    hetee_nn_trace *t = NULL;
    int rc = hetee_nn_trace_run(m, x + s0 * in, nb, &t);
    if (rc) return rc;
    memcpy(y + s0 * outn, t->outs[m->n_layers - 1], nb * outn * sizeof(float));
    hetee_nn_trace_free(t);
  }
  return 0;
}

/*
 * plan.c — the model-level plan of encrypted inference (hetee/engine.h):
 * cuts a hetee_nn chain into stages (one linear layer + the non-linear
 * layers up to the next one), maps the non-linear layers onto the enclave's
 * refresh ops, picks each stage's packing with hemat's cost model
 * (hetee_hemat_choose) and the micro-batch that keeps every enclave frame
 * inside the protocol's limits, and derives the refresh maps between
 * consecutive layouts. Everything unsupported is refused here, before any
 * encryption, with one line naming the node.
 *
 * The op types come from hetee/enclave.h (header only: hemat does not link
 * the enclave).
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "hemat/engine_internal.h"
#include "hemat/hemat_internal.h"

#define CT1_LIMIT 4096u /* ciphertexts per refresh request / reply (enclave) */
#define FRAME_MARGIN (256u << 10)

/* ------------------------------------------------------------- shapes */

/* The per-sample dims of an nn tensor as (C, H, W): rank 1 {D} -> (D,1,1),
 * rank 2 -> (d0,d1,1), rank 3 as is. 0 when it does not fit in int. */
static int dims3(size_t rank, const size_t *d, int out[3]) {
  size_t v[3] = {1, 1, 1};
  if (rank < 1 || rank > 3) return 0;
  for (size_t i = 0; i < rank; i++) v[i] = d[i];
  for (int i = 0; i < 3; i++) {
    if (v[i] < 1 || v[i] > (1u << 24)) return 0;
    out[i] = (int)v[i];
  }
  return (size_t)out[0] * (size_t)out[1] * (size_t)out[2] <= HETEE_REFRESH_MAX_VALUES;
}

static size_t count3(const int s[3]) { return (size_t)s[0] * (size_t)s[1] * (size_t)s[2]; }

/* The shape after op o, the way the enclave propagates it (refresh_spec.c);
 * 0 on success, else a reason in why. */
static int op_shape(const hetee_refresh_op *o, int sh[3], char *why, size_t wn) {
  size_t n = count3(sh);
  switch (o->kind) {
  case HETEE_OP_ADD_BIAS:
    if (o->na != n && o->na != (size_t)sh[0]) return snprintf(why, wn, "bias of %zu values", o->na), -1;
    if (o->nb) return snprintf(why, wn, "bias with a second array"), -1;
    return 0;
  case HETEE_OP_RELU:
  case HETEE_OP_LEAKY_RELU:
  case HETEE_OP_SIGMOID:
  case HETEE_OP_TANH:
  case HETEE_OP_SQUARE:
  case HETEE_OP_SCALE:
    if (o->na || o->nb) return snprintf(why, wn, "element-wise op with parameter arrays"), -1;
    if (!isfinite(o->alpha)) return snprintf(why, wn, "alpha not finite"), -1;
    return 0;
  case HETEE_OP_BATCHNORM:
    if (o->na != (size_t)sh[0] || o->nb != (size_t)sh[0]) return snprintf(why, wn, "affine of %zu/%zu values for %d channels", o->na, o->nb, sh[0]), -1;
    return 0;
  case HETEE_OP_MAXPOOL:
  case HETEE_OP_AVGPOOL:
    if (o->na || o->nb) return snprintf(why, wn, "pool with parameter arrays"), -1;
    if (o->window < 1 || o->stride < 1 || o->window > sh[1] || o->window > sh[2])
      return snprintf(why, wn, "pool window %d stride %d on %dx%d", o->window, o->stride, sh[1], sh[2]), -1;
    sh[1] = (sh[1] - o->window) / o->stride + 1;
    sh[2] = (sh[2] - o->window) / o->stride + 1;
    return 0;
  case HETEE_OP_RESHAPE: {
    if (o->na || o->nb) return snprintf(why, wn, "reshape with parameter arrays"), -1;
    for (int i = 0; i < 3; i++)
      if (o->shape[i] < 1 || o->shape[i] > (1 << 24)) return snprintf(why, wn, "reshape to a bad shape"), -1;
    if (count3(o->shape) != n) return snprintf(why, wn, "reshape changes the element count"), -1;
    memcpy(sh, o->shape, sizeof o->shape);
    return 0;
  }
  default: return snprintf(why, wn, "unknown op kind %d", o->kind), -1;
  }
}

/* ------------------------------------------------------------- building */

static int refuse(const hetee_nn_layer_info *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(const hetee_nn_layer_info *L, const char *fmt, ...) {
  char why[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  return hetee_error(HETEE_ERR_UNSUPPORTED, "node '%s' (%s): %s", L->name ? L->name : "?",
                     hetee_nn_kind_name(L->kind), why);
}

static void names_add(engine_stage *s, const hetee_nn_layer_info *L) {
  size_t used = strlen(s->names);
  snprintf(s->names + used, sizeof s->names - used, "%s%s %s", used ? ", " : "", hetee_nn_kind_name(L->kind),
           L->name ? L->name : "?");
}

static void stage_free_arrays(engine_stage *s) {
  for (size_t i = 0; i < 2 * HETEE_REFRESH_MAX_OPS; i++) {
    free(s->arrays[i]);
    s->arrays[i] = NULL;
  }
}

void hetee_engine_plan_free(hetee_engine_plan *p) {
  if (!p) return;
  for (size_t i = 0; i < p->nstages; i++) stage_free_arrays(&p->st[i]);
  free(p->st);
  free(p);
}

/* Appends op o to stage s (copying a[na], b[nb]); propagates s->out_shape. */
static int stage_add_op(engine_stage *s, const hetee_nn_layer_info *L, hetee_refresh_op o, const float *a, size_t na,
                        const float *b, size_t nb) {
  if (s->nops == HETEE_REFRESH_MAX_OPS)
    return refuse(L, "more than %d non-linear layers between two linear layers", HETEE_REFRESH_MAX_OPS);
  double *da = NULL, *db = NULL;
  if (na) {
    da = malloc(na * sizeof *da);
    if (!da) return hetee_error(HETEE_ERR_NOMEM, "no memory for the plan");
    for (size_t i = 0; i < na; i++) da[i] = a[i];
  }
  if (nb) {
    db = malloc(nb * sizeof *db);
    if (!db) {
      free(da);
      return hetee_error(HETEE_ERR_NOMEM, "no memory for the plan");
    }
    for (size_t i = 0; i < nb; i++) db[i] = b[i];
  }
  s->arrays[2 * s->nops] = da;
  s->arrays[2 * s->nops + 1] = db;
  o.a = da;
  o.na = na;
  o.b = db;
  o.nb = nb;
  char why[200];
  if (op_shape(&o, s->out_shape, why, sizeof why)) return refuse(L, "%s", why);
  s->ops[s->nops++] = o;
  return 0;
}

/* Maps non-linear layer L (current per-sample shape s->out_shape) onto
 * refresh ops of stage s. */
static int map_layer(engine_stage *s, const hetee_nn_layer_info *L) {
  hetee_refresh_op o;
  memset(&o, 0, sizeof o);
  int out[3];
  if (!dims3(L->out_rank, L->out_dims, out)) return refuse(L, "output of rank %zu is not supported", L->out_rank);
  switch (L->kind) {
  case HETEE_NN_RELU: o.kind = HETEE_OP_RELU; break;
  case HETEE_NN_LEAKY_RELU:
    o.kind = HETEE_OP_LEAKY_RELU;
    o.alpha = L->alpha;
    break;
  case HETEE_NN_SIGMOID: o.kind = HETEE_OP_SIGMOID; break;
  case HETEE_NN_TANH: o.kind = HETEE_OP_TANH; break;
  case HETEE_NN_SQUARE: o.kind = HETEE_OP_SQUARE; break;
  case HETEE_NN_MAXPOOL:
  case HETEE_NN_AVGPOOL:
    if (L->pads[0] || L->pads[1] || L->pads[2] || L->pads[3]) return refuse(L, "padded pooling is not supported");
    if (L->kernel[0] != L->kernel[1] || L->stride[0] != L->stride[1])
      return refuse(L, "only square pooling windows and strides are supported (%zux%zu, stride %zux%zu)",
                    L->kernel[0], L->kernel[1], L->stride[0], L->stride[1]);
    o.kind = L->kind == HETEE_NN_MAXPOOL ? HETEE_OP_MAXPOOL : HETEE_OP_AVGPOOL;
    o.window = (int)L->kernel[0];
    o.stride = (int)L->stride[0];
    break;
  case HETEE_NN_GLOBAL_AVGPOOL:
    if (s->out_shape[1] != s->out_shape[2])
      return refuse(L, "only square inputs are supported (%dx%d)", s->out_shape[1], s->out_shape[2]);
    o.kind = HETEE_OP_AVGPOOL;
    o.window = s->out_shape[1];
    o.stride = 1;
    break;
  case HETEE_NN_AFFINE:
    o.kind = HETEE_OP_BATCHNORM;
    if (L->weight_len != (size_t)s->out_shape[0] || L->bias_len != (size_t)s->out_shape[0])
      return refuse(L, "affine parameters of %zu/%zu values for %d channels", L->weight_len, L->bias_len,
                    s->out_shape[0]);
    return stage_add_op(s, L, o, L->weight, L->weight_len, L->bias, L->bias_len);
  case HETEE_NN_ADD_CONST:
    o.kind = HETEE_OP_ADD_BIAS;
    if (L->weight_len != count3(s->out_shape))
      return refuse(L, "constant of %zu values for %zu elements", L->weight_len, count3(s->out_shape));
    return stage_add_op(s, L, o, L->weight, L->weight_len, NULL, 0);
  case HETEE_NN_RESHAPE:
    o.kind = HETEE_OP_RESHAPE;
    memcpy(o.shape, out, sizeof out);
    break;
  default: return refuse(L, "not supported by the encrypted engine");
  }
  int rc = stage_add_op(s, L, o, NULL, 0, NULL, 0);
  if (rc) return rc;
  if (count3(s->out_shape) != count3(out) || (L->kind != HETEE_NN_RESHAPE && memcmp(s->out_shape, out, sizeof out)))
    return refuse(L, "output %dx%dx%d, expected %dx%dx%d", s->out_shape[0], s->out_shape[1], s->out_shape[2], out[0],
                  out[1], out[2]);
  return 0;
}

/* Fills the geometry of linear layer L as stage s (pads: pending zero
 * padding from PAD layers before it). */
static int stage_linear(engine_stage *s, const hetee_nn_layer_info *L, int layer, const int pend[4]) {
  memset(s, 0, sizeof *s);
  s->layer = layer;
  s->kind = L->kind;
  names_add(s, L);
  int out[3];
  if (!dims3(L->out_rank, L->out_dims, out)) return refuse(L, "output of rank %zu is not supported", L->out_rank);
  if (L->kind == HETEE_NN_DENSE) {
    if (L->in_rank != 1) return refuse(L, "dense layer on a rank-%zu input (flatten it first)", L->in_rank);
    if (pend[0] || pend[1] || pend[2] || pend[3]) return refuse(L, "padding before a dense layer is not supported");
    if (L->in_dims[0] > (1u << 24) || L->out_dims[0] > (1u << 24)) return refuse(L, "layer too large");
    s->in_shape[0] = (int)L->in_dims[0];
    s->in_shape[1] = s->in_shape[2] = 1;
    s->shape = (hetee_hemat_shape){s->in_shape[0], 1, 1, out[0], 1, 1, 1, 1};
    s->out_shape[0] = out[0];
    s->out_shape[1] = s->out_shape[2] = 1;
  } else {
    if (L->in_rank != 3 || L->out_rank != 3) return refuse(L, "convolution needs C x H x W tensors");
    if (!dims3(L->in_rank, L->in_dims, s->in_shape)) return refuse(L, "input too large");
    /* a PAD before the conv: its input is the unpadded tensor */
    s->in_shape[1] -= pend[0] + pend[2];
    s->in_shape[2] -= pend[1] + pend[3];
    if (s->in_shape[1] < 1 || s->in_shape[2] < 1) return refuse(L, "padding larger than the input");
    for (int i = 0; i < 4; i++) {
      if (L->pads[i] > 1024) return refuse(L, "padding of %zu", L->pads[i]);
      s->pads[i] = pend[i] + (int)L->pads[i];
    }
    if (L->kernel[0] < 1 || L->kernel[1] < 1 || L->stride[0] < 1 || L->stride[1] < 1 || L->kernel[0] > 1024 ||
        L->kernel[1] > 1024 || L->stride[0] > 1024 || L->stride[1] > 1024)
      return refuse(L, "kernel or stride out of range");
    s->shape.c = s->in_shape[0];
    s->shape.h = s->in_shape[1] + s->pads[0] + s->pads[2];
    s->shape.w = s->in_shape[2] + s->pads[1] + s->pads[3];
    s->shape.co = out[0];
    s->shape.kh = (int)L->kernel[0];
    s->shape.kw = (int)L->kernel[1];
    s->shape.sh = (int)L->stride[0];
    s->shape.sw = (int)L->stride[1];
    if (s->shape.kh > s->shape.h || s->shape.kw > s->shape.w ||
        (s->shape.h - s->shape.kh) / s->shape.sh + 1 != out[1] || (s->shape.w - s->shape.kw) / s->shape.sw + 1 != out[2])
      return refuse(L, "output %dx%dx%d does not follow from the input and kernel", out[0], out[1], out[2]);
    memcpy(s->out_shape, out, sizeof out);
  }
  s->conv = s->shape;
  size_t wlen = (size_t)s->shape.co * s->shape.c * s->shape.kh * s->shape.kw;
  if (!L->weight || L->weight_len != wlen) return refuse(L, "weights of %zu values, expected %zu", L->weight_len, wlen);
  s->has_bias = L->bias != NULL && L->bias_len > 0;
  if (s->has_bias && L->bias_len != (size_t)s->shape.co)
    return refuse(L, "bias of %zu values for %d outputs", L->bias_len, s->shape.co);
  return 0;
}

/* Folds the last AFFINE op of stage s's refresh into the next stage's
 * layer when nothing but average pooling and reshapes lies between them
 * and that layer reads no zero padding: for the next layer's input element
 * e (unpadded C x H x W order), the affine's channel is e / (size / C_a),
 * since pooling keeps channels and a reshape flattens channel-major, so
 *   W'[o][e] = W[o][e] a[ch(e)],  bias'[o] = bias[o] + sum_e W[o][e] b[ch(e)]
 * (engine_stage_params) computes the same outputs (average pooling
 * commutes with a per-channel affine map; without padding every weight
 * reads a real element). Then the affine's constants travel nowhere: the
 * plan names only its layer, the model provider folds them before it
 * encrypts, and the enclave's refresh has one op less. Anything else (a
 * non-linear op after the affine, padding, the last stage) keeps the op in
 * the refresh, its constants in the plan (docs/security.md). A constant
 * add (ADD_BIAS with one value per element) folds the same way into a
 * dense layer reached through reshapes only: bias'[o] = bias[o] +
 * sum_e W[o][e] k[e]. */
static void fold_affine(engine_stage *s, engine_stage *next) {
  size_t k = s->nops, pools = 0;
  while (k > 0 && (s->ops[k - 1].kind == HETEE_OP_AVGPOOL || s->ops[k - 1].kind == HETEE_OP_RESHAPE))
    pools += s->ops[--k].kind == HETEE_OP_AVGPOOL;
  if (k == 0 || next->fold) return;
  for (int i = 0; i < 4; i++)
    if (next->pads[i]) return;
  size_t j = k - 1, ch = s->ops[j].na, size = count3(next->in_shape);
  if (s->ops[j].kind == HETEE_OP_ADD_BIAS) {
    /* a constant add (one value per element) into a dense layer with only
     * reshapes between: bias'[o] = bias[o] + sum_e W[o][e] k[e] (into a
     * conv the sum would depend on the output position) */
    if (pools || s->ops[j].nb || ch != size || next->kind != HETEE_NN_DENSE) return;
  } else if (s->ops[j].kind != HETEE_OP_BATCHNORM || !ch || size % ch ||
             (next->kind == HETEE_NN_CONV && (size_t)next->in_shape[0] != ch))
    return;
  next->fold = s->op_layer[j] + 1;
  next->has_bias = 1;
  free(s->arrays[2 * j]);
  free(s->arrays[2 * j + 1]);
  for (size_t i = j; i + 1 < s->nops; i++) {
    s->ops[i] = s->ops[i + 1];
    s->op_layer[i] = s->op_layer[i + 1];
    s->arrays[2 * i] = s->arrays[2 * i + 2];
    s->arrays[2 * i + 1] = s->arrays[2 * i + 3];
  }
  s->nops--;
  s->arrays[2 * s->nops] = s->arrays[2 * s->nops + 1] = NULL;
}

/* The stages of model m without packings. */
static int cut_stages(const hetee_nn_model *m, hetee_engine_plan *p) {
  size_t nl = hetee_nn_model_num_layers(m);
  size_t din[HETEE_NN_MAX_RANK];
  size_t rank = hetee_nn_model_input_shape(m, din);
  if (!dims3(rank, din, p->in_shape))
    return hetee_error(HETEE_ERR_UNSUPPORTED, "model input of rank %zu is not supported (C x H x W or a vector)", rank);
  p->in_size = count3(p->in_shape);
  p->release_kind = HETEE_RELEASE_ARGMAX;
  p->st = calloc(nl ? nl : 1, sizeof *p->st);
  if (!p->st) return hetee_error(HETEE_ERR_NOMEM, "no memory for the plan");
  int pend[4] = {0, 0, 0, 0};
  engine_stage *cur = NULL;
  for (size_t i = 0; i < nl; i++) {
    hetee_nn_layer_info L;
    int rc = hetee_nn_model_layer(m, i, &L);
    if (rc) return rc;
    if (L.kind == HETEE_NN_ADD) return refuse(&L, "adds two activations; the engine runs chains of single-input layers");
    if (L.kind == HETEE_NN_MUL)
      return refuse(&L, "multiplies two activations; the engine runs chains of single-input layers");
    if (L.kind == HETEE_NN_MUL_CONST) return refuse(&L, "multiplication by a constant tensor is not supported");
    if (L.n_inputs != 1 || L.inputs[0] != (int)i - 1)
      return refuse(&L, "takes its input from layer %d, not from the layer before it; the engine runs chains of layers",
                    L.inputs[0]);
    if (L.kind == HETEE_NN_DENSE || L.kind == HETEE_NN_CONV) {
      if (p->nstages == HETEE_ENGINE_MAX_STAGES) return refuse(&L, "more than %d linear layers", HETEE_ENGINE_MAX_STAGES);
      cur = &p->st[p->nstages++];
      if ((rc = stage_linear(cur, &L, (int)i, pend))) return rc;
      memset(pend, 0, sizeof pend);
      continue;
    }
    if (L.kind == HETEE_NN_PAD) {
      if (L.alpha != 0.0f) return refuse(&L, "only zero padding is supported (value %g)", (double)L.alpha);
      for (int k = 0; k < 4; k++) {
        if (L.pads[k] > 1024) return refuse(&L, "padding of %zu", L.pads[k]);
        pend[k] += (int)L.pads[k];
      }
      /* the layout leaves padded positions empty: only a convolution reads them */
      if (i + 1 == nl) return refuse(&L, "padding must feed a convolution directly");
      hetee_nn_layer_info next;
      if ((rc = hetee_nn_model_layer(m, i + 1, &next))) return rc;
      if (next.kind != HETEE_NN_CONV && next.kind != HETEE_NN_PAD)
        return refuse(&L, "padding must feed a convolution directly");
      if (cur) names_add(cur, &L);
      continue;
    }
    if (!cur) {
      if (L.kind == HETEE_NN_RESHAPE) continue;
      return refuse(&L, "only flatten/reshape and zero padding may come before the first linear layer");
    }
    if (L.kind == HETEE_NN_SOFTMAX) {
      if (i + 1 != nl) return refuse(&L, "softmax is supported as the last layer only");
      p->release_kind = HETEE_RELEASE_SOFTMAX;
      names_add(cur, &L);
      continue;
    }
    if ((rc = map_layer(cur, &L))) return rc;
    cur->op_layer[cur->nops - 1] = (int)i;
    names_add(cur, &L);
  }
  if (!p->nstages) return hetee_error(HETEE_ERR_UNSUPPORTED, "the model has no linear layer (Gemm, MatMul or Conv)");
  for (size_t s = 0; s + 1 < p->nstages; s++) fold_affine(&p->st[s], &p->st[s + 1]);
  /* the first stage's input is the model input (after flatten/reshape) */
  if (count3(p->st[0].in_shape) != p->in_size)
    return hetee_error(HETEE_ERR_SHAPE, "first linear layer takes %zu values, the model input has %zu",
                       count3(p->st[0].in_shape), p->in_size);
  for (size_t s = 0; s + 1 < p->nstages; s++)
    if (count3(p->st[s].out_shape) != count3(p->st[s + 1].in_shape))
      return hetee_error(HETEE_ERR_SHAPE, "stage %zu ends with %zu values, stage %zu takes %zu", s,
                         count3(p->st[s].out_shape), s + 1, count3(p->st[s + 1].in_shape));
  p->out_size = count3(p->st[p->nstages - 1].out_shape);
  if (p->out_size > p->n)
    return hetee_error(HETEE_ERR_LIMIT, "model output of %zu values is larger than one ciphertext (%zu)", p->out_size,
                       p->n);
  return 0;
}

/* ------------------------------------------------------------- packing */

/* Samples per release ciphertext and release ciphertexts of a batch. */
static uint32_t release_cap(const hetee_engine_plan *p) { return (uint32_t)(p->n / p->out_size); }
static size_t release_cts(const hetee_engine_plan *p, uint32_t batch) {
  uint32_t cap = release_cap(p);
  return (batch + cap - 1) / cap;
}

/* Whether every enclave frame of the plan fits at micro-batch mb; why names
 * the first that does not. */
int engine_frames_fit(const hetee_engine_plan *p, char *why, size_t wn) {
  /* degree-2 outputs at level 1: the unbound path sends them unrescaled */
  size_t ct2 = engine_ct_bytes(p->n, 3, HETEE_ENGINE_LEVEL), ct1 = engine_ct_bytes(p->n, 1, HETEE_ENGINE_LEVEL) + 32;
  size_t ct1top = engine_ct_bytes(p->n, 1, ENGINE_MAX_TOP_LEVEL) + 32;
  for (size_t s = 0; s < p->nstages; s++) {
    const engine_stage *st = &p->st[s];
    const hetee_hemat_layout *L = &st->layout;
    if (s + 1 < p->nstages) {
      const hetee_hemat_layout *N = &p->st[s + 1].layout;
      size_t values = (size_t)p->micro_batch * st->shape.co * L->oh * L->ow;
      size_t outs = (size_t)p->micro_batch * count3(st->out_shape);
      size_t spec = 1024 + 4 * values + 8 * outs + 16 * st->nops + 8 * (size_t)p->micro_batch * count3(st->out_shape);
        /* the enclave encrypts the next stage's dense inputs (lanes) */
      const size_t nin = N->n_dense_in_cts;
      if (L->n_out_cts > CT1_LIMIT || nin > CT1_LIMIT) {
        snprintf(why, wn, "stage %zu: refresh of %zu -> %zu ciphertexts (limit %u)", s, L->n_out_cts, nin,
                 CT1_LIMIT);
        return 0;
      }
      if (spec + L->n_out_cts * ct2 + FRAME_MARGIN > HETEE_FRAME_MAX_BODY ||
          nin * ct1 + FRAME_MARGIN > HETEE_FRAME_MAX_BODY) {
        snprintf(why, wn, "stage %zu: refresh frame of %zu + %zu ciphertexts above %u MiB", s, L->n_out_cts, nin,
                 HETEE_FRAME_MAX_BODY >> 20);
        return 0;
      }
      if (values > HETEE_REFRESH_MAX_VALUES) {
        snprintf(why, wn, "stage %zu: %zu values per refresh", s, values);
        return 0;
      }
    } else {
      size_t values = (size_t)p->micro_batch * st->shape.co * L->oh * L->ow;
      size_t nrel = release_cts(p, p->micro_batch);
      size_t spec = 1024 + 4 * values + 16 * (size_t)p->micro_batch * p->out_size;
      if (L->n_out_cts > CT1_LIMIT || spec + L->n_out_cts * ct2 + FRAME_MARGIN > HETEE_FRAME_MAX_BODY ||
          nrel * ct1top + FRAME_MARGIN > HETEE_FRAME_MAX_BODY || values > HETEE_REFRESH_MAX_VALUES) {
        snprintf(why, wn, "stage %zu: release refresh of %zu ciphertexts above the protocol's limits", s,
                 L->n_out_cts);
        return 0;
      }
    }
  }
  return 1;
}

static void stage_counts(const hetee_engine_plan *p, size_t s, const hetee_hemat_layout *L, hetee_engine_stage_info *o) {
  const engine_stage *st = &p->st[s];
  o->n_in_cts = L->n_in_cts;
  o->n_w_cts = L->n_w_cts;
  o->n_bias_cts = st->has_bias ? (size_t)L->nmb : 0;
  o->n_out_cts = L->n_out_cts;
  o->n_products = L->n_products;
  /* the refresh after the stage decrypts every output once and encrypts the
   * next stage's inputs (at the plan's micro-batch: the next layout) or the
   * release ciphertexts, each of which is decrypted once per sample */
  if (s + 1 < p->nstages) {
    /* lanes: the enclave encrypts the next stage's inputs dense */
    o->enclave_encryptions = p->st[s + 1].layout.n_dense_in_cts;
    o->enclave_decryptions = L->n_out_cts;
  } else {
    o->enclave_encryptions = release_cts(p, L->batch);
    o->enclave_decryptions = L->n_out_cts + L->batch;
  }
}

double engine_predict(const hetee_engine_plan *p, size_t s) {
  hetee_engine_stage_info o;
  stage_counts(p, s, &p->st[s].layout, &o);
  const hetee_hemat_costs *c = &p->costs;
  const hetee_hemat_layout *L = &p->st[s].layout;
  /* a lane stage's inputs are expanded by the host first: lanes - 1 key
   * switches per dense input */
  double expand = L->lanes > 1 ? (double)L->n_dense_in_cts * (double)(L->lanes - 1) * c->t_expand : 0.0;
  /* each output: the host's bias, rescale and serialization and the
   * enclave's decryption (one coset where it can); the rest of the
   * decryptions (an unbound release's, one per sample) in full */
  const engine_stage *st = &p->st[s];
  double outs = (double)o.n_out_cts * hemat_out_cost(c, &st->shape, &st->pack, L->batch, p->n);
  return (double)o.n_products * c->t_product + (double)o.enclave_encryptions * c->t_enclave_enc + outs +
         (double)(o.enclave_decryptions - o.n_out_cts) * c->t_enclave_dec +
         (s == 0 ? (double)o.n_in_cts * c->t_client_enc : 0.0) + expand;
}

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

int engine_phase_shape(const hetee_hemat_shape *conv, hetee_hemat_shape *out) {
  const hetee_hemat_shape *k = conv;
  if (k->sh < 1 || k->sw < 1 || (k->sh == 1 && k->sw == 1) || k->kh < 1 || k->kw < 1 || k->h < k->kh || k->w < k->kw)
    return 0;
  if ((int64_t)k->c * k->sh * k->sw > (1 << 24)) return 0;
  hetee_hemat_shape f = {k->c * k->sh * k->sw, ceil_div(k->h, k->sh), ceil_div(k->w, k->sw), k->co,
                         ceil_div(k->kh, k->sh), ceil_div(k->kw, k->sw), 1, 1};
  if (f.h - f.kh + 1 != (k->h - k->kh) / k->sh + 1 || f.w - f.kw + 1 != (k->w - k->kw) / k->sw + 1) return 0;
  *out = f;
  return 1;
}

int engine_stage_weights(const engine_stage *st, const float *w, const float **out, float **owned) {
  *owned = NULL;
  *out = w;
  if (!st->phased) return 0;
  const hetee_hemat_shape *k = &st->conv, *f = &st->shape;
  size_t n = (size_t)f->co * f->c * f->kh * f->kw;
  float *v = calloc(n ? n : 1, sizeof *v);
  if (!v) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (int o = 0; o < k->co; o++)
    for (int c = 0; c < k->c; c++)
      for (int dy = 0; dy < k->kh; dy++)
        for (int dx = 0; dx < k->kw; dx++) {
          int hc = (c * k->sh + dy % k->sh) * k->sw + dx % k->sw;
          v[(((size_t)o * f->c + hc) * f->kh + dy / k->sh) * f->kw + dx / k->sw] =
              w[(((size_t)o * k->c + c) * k->kh + dy) * k->kw + dx];
        }
  *owned = v;
  *out = v;
  return 0;
}

int engine_stage_params(const engine_stage *st, const hetee_nn_model *m, float **w, float **bias) {
  *w = *bias = NULL;
  hetee_nn_layer_info L, A;
  size_t wlen = (size_t)st->conv.co * st->conv.c * st->conv.kh * st->conv.kw, co = (size_t)st->conv.co;
  if (st->layer < 0 || (size_t)st->layer >= hetee_nn_model_num_layers(m) || hetee_nn_model_layer(m, (size_t)st->layer, &L) ||
      (int)L.kind != st->kind || !L.weight || L.weight_len != wlen || (L.bias && L.bias_len && L.bias_len != co) ||
      (!st->has_bias && L.bias && L.bias_len) || (st->has_bias && !st->fold && (!L.bias || !L.bias_len)))
    return hetee_error(HETEE_ERR_SHAPE, "layer %d of the model is not the one planned (plan of another model?)",
                       st->layer);
  size_t size = count3(st->in_shape), ch = 0;
  if (st->fold) {
    size_t fl = (size_t)st->fold - 1;
    int ok = (int)fl < st->layer && fl < hetee_nn_model_num_layers(m) && !hetee_nn_model_layer(m, fl, &A) &&
             A.weight && A.weight_len;
    if (ok && A.kind == HETEE_NN_AFFINE)
      ok = A.bias && A.bias_len == A.weight_len && size % A.weight_len == 0 &&
           (st->kind != HETEE_NN_CONV || (size_t)st->in_shape[0] == A.weight_len);
    else
      ok = ok && A.kind == HETEE_NN_ADD_CONST && st->kind == HETEE_NN_DENSE && A.weight_len == size;
    if (!ok)
      return hetee_error(HETEE_ERR_SHAPE, "layer %zu of the model is not the affine map or constant add the plan folds",
                         fl);
    ch = A.weight_len;
  }
  float *v = malloc(wlen * sizeof *v), *b = st->has_bias ? calloc(co, sizeof *b) : NULL;
  if (!v || (st->has_bias && !b)) {
    free(v);
    free(b);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  memcpy(v, L.weight, wlen * sizeof *v);
  for (size_t o = 0; b && o < co; o++) b[o] = L.bias && L.bias_len ? L.bias[o] : 0.0f;
  if (st->fold) {
    /* per output o, the weights over the unpadded input (no padding: the
     * conv's c x kh x kw, a dense layer's D) */
    size_t per = wlen / co, hw = (size_t)st->conv.kh * st->conv.kw, group = size / ch;
    for (size_t o = 0; o < co; o++) {
      double acc = 0;
      for (size_t e = 0; e < per; e++) {
        if (A.kind == HETEE_NN_ADD_CONST) { /* dense: input element e */
          acc += (double)v[o * per + e] * (double)A.weight[e];
          continue;
        }
        size_t c = st->kind == HETEE_NN_CONV ? e / hw : e / group; /* the affine's channel */
        acc += (double)v[o * per + e] * (double)A.bias[c];
        v[o * per + e] *= A.weight[c];
      }
      b[o] = (float)((double)b[o] + acc);
    }
  }
  *w = v;
  *bias = b;
  return 0;
}

/* Packs every stage for micro-batch mb (hemat's choice) and fills layouts.
 * A strided convolution runs in space-to-depth form when the cost model
 * prefers it (fewer, denser output ciphertexts for a few more products). */
static int pack_stages(hetee_engine_plan *p, uint32_t mb) {
  p->micro_batch = mb;
  for (size_t s = 0; s < p->nstages; s++) {
    engine_stage *st = &p->st[s];
    double cost = 0, pcost = 0;
    hetee_hemat_shape ph;
    hetee_hemat_pack pp;
    st->shape = st->conv;
    st->phased = 0;
    /* lanes only for inputs the enclave encrypts (stages after the first)
     * and only when the host can expand them (option lanes) */
    int ml = s > 0 ? p->max_lanes : 0;
    int rc = hemat_choose_lanes(&st->shape, mb, p->n, s == 0, ml, 1, 0, &p->costs, &st->pack, &cost);
    hetee_hemat_pack lp;
    hetee_hemat_layout a, b;
    double lcost = 0;
    /* forced lanes (measurements): the cheapest lane packing instead,
     * where one fits and it asks the enclave for fewer encryptions */
    if (!rc && ml > 1 && p->force_lanes && st->pack.lanes <= 1 &&
        !hemat_choose_lanes(&st->shape, mb, p->n, 0, ml, 1, 1, &p->costs, &lp, &lcost) &&
        !hetee_hemat_layout_init(&st->shape, &st->pack, mb, p->n, &a) &&
        !hetee_hemat_layout_init(&st->shape, &lp, mb, p->n, &b) && b.n_dense_in_cts < a.n_in_cts) {
      st->pack = lp;
      cost = lcost;
    }
    if (st->kind == HETEE_NN_CONV && p->phase != HETEE_ENGINE_PHASE_NEVER && engine_phase_shape(&st->conv, &ph) &&
        !(ml > 1 && p->force_lanes && st->pack.lanes > 1) &&
        !hemat_choose_lanes(&ph, mb, p->n, s == 0, ml, 1, 0, &p->costs, &pp, &pcost) &&
        (rc || pcost < cost || p->phase == HETEE_ENGINE_PHASE_ALWAYS)) {
      st->shape = ph;
      st->pack = pp;
      st->phased = 1;
      rc = 0;
    }
    if (!rc) rc = hetee_hemat_layout_init(&st->shape, &st->pack, mb, p->n, &st->layout);
    if (rc)
      return engine_wrap(rc, "stage %zu (%s): no packing at N = %zu", s, st->names, p->n);
  }
  for (size_t s = 0; s < p->nstages; s++) p->st[s].predicted_s = engine_predict(p, s);
  return 0;
}

int hetee_engine_plan_build(const hetee_nn_model *m, const hetee_engine_plan_options *o, hetee_engine_plan **out) {
  if (!m || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  hetee_engine_plan_options d;
  memset(&d, 0, sizeof d);
  if (!o) o = &d;
  size_t n = o->n ? o->n : 8192;
  if (n < 4096 || n > 65536 || (n & (n - 1))) return hetee_error(HETEE_ERR_INVALID_ARG, "ring degree %zu", n);
  uint32_t want = o->batch ? o->batch : HETEE_ENGINE_DEFAULT_BATCH;
  if (want > HETEE_ENGINE_DEFAULT_BATCH) want = HETEE_ENGINE_DEFAULT_BATCH;
  if (o->micro_batch > HETEE_ENGINE_MAX_MICRO_BATCH)
    return hetee_error(HETEE_ERR_LIMIT, "micro-batch %u above %u", o->micro_batch, HETEE_ENGINE_MAX_MICRO_BATCH);
  if (o->phase < HETEE_ENGINE_PHASE_AUTO || o->phase > HETEE_ENGINE_PHASE_ALWAYS)
    return hetee_error(HETEE_ERR_INVALID_ARG, "phase option %d", o->phase);
  if (o->lanes < 0 || o->lanes > 8 || (o->lanes & (o->lanes - 1)) || o->force_lanes < 0 || o->force_lanes > 1 ||
      (o->force_lanes && o->lanes < 2))
    return hetee_error(HETEE_ERR_INVALID_ARG, "lanes option %d (0, 2, 4 or 8), force_lanes %d", o->lanes,
                       o->force_lanes);
  hetee_engine_plan *p = calloc(1, sizeof *p);
  if (!p) return hetee_error(HETEE_ERR_NOMEM, "no memory for the plan");
  p->n = n;
  p->phase = o->phase;
  p->max_lanes = o->lanes > 1 ? o->lanes : 0;
  p->force_lanes = o->force_lanes;
  if (o->costs) p->costs = *o->costs;
  else hetee_hemat_costs_engine(&p->costs);
  int rc = cut_stages(m, p);
  if (rc) goto err;
  char why[200] = "";
  if (o->micro_batch) {
    if ((rc = pack_stages(p, o->micro_batch))) goto err;
    if (!engine_frames_fit(p, why, sizeof why)) {
      rc = hetee_error(HETEE_ERR_LIMIT, "micro-batch %u does not fit the enclave protocol: %s", o->micro_batch, why);
      goto err;
    }
  } else {
    /* the largest micro-batch <= want whose frames fit */
    uint32_t mb = want;
    for (;;) {
      if ((rc = pack_stages(p, mb))) goto err;
      if (engine_frames_fit(p, why, sizeof why)) break;
      if (mb == 1) {
        rc = hetee_error(HETEE_ERR_LIMIT, "not even one sample fits the enclave protocol: %s", why);
        goto err;
      }
      mb = mb > 8 ? mb - mb / 8 : mb - 1;
    }
  }
  *out = p;
  return 0;
err:
  hetee_engine_plan_free(p);
  return rc;
}

/* ------------------------------------------------------------- queries */

size_t hetee_engine_plan_num_stages(const hetee_engine_plan *p) { return p ? p->nstages : 0; }
uint32_t hetee_engine_plan_micro_batch(const hetee_engine_plan *p) { return p ? p->micro_batch : 0; }
size_t hetee_engine_plan_n(const hetee_engine_plan *p) { return p ? p->n : 0; }
size_t hetee_engine_plan_input_size(const hetee_engine_plan *p) { return p ? p->in_size : 0; }
size_t hetee_engine_plan_output_size(const hetee_engine_plan *p) { return p ? p->out_size : 0; }
int hetee_engine_plan_release_kind(const hetee_engine_plan *p) { return p ? p->release_kind : 0; }

int hetee_engine_plan_stage(const hetee_engine_plan *p, size_t i, hetee_engine_stage_info *o) {
  if (!p || !o || i >= p->nstages) return hetee_error(HETEE_ERR_INVALID_ARG, "no stage %zu", i);
  const engine_stage *st = &p->st[i];
  memset(o, 0, sizeof *o);
  o->names = st->names;
  o->layer = st->layer;
  o->kind = st->kind;
  memcpy(o->in_shape, st->in_shape, sizeof o->in_shape);
  memcpy(o->pads, st->pads, sizeof o->pads);
  o->shape = st->shape;
  o->pack = st->pack;
  o->has_bias = st->has_bias;
  stage_counts(p, i, &st->layout, o);
  o->predicted_s = st->predicted_s;
  o->nops = st->nops;
  o->ops = st->ops;
  memcpy(o->out_shape, st->out_shape, sizeof o->out_shape);
  o->conv = st->conv;
  o->phased = st->phased;
  o->folded_layer = st->fold - 1;
  return 0;
}

int hetee_engine_plan_stage_params(const hetee_engine_plan *p, size_t i, const hetee_nn_model *m, float **w,
                                   float **bias) {
  if (!p || !m || !w || !bias || i >= p->nstages) return hetee_error(HETEE_ERR_INVALID_ARG, "no stage %zu", i);
  float *lw = NULL, *lb = NULL, *hw = NULL;
  int rc = engine_stage_params(&p->st[i], m, &lw, &lb);
  if (!rc) rc = hetee_engine_plan_stage_weights(p, i, lw, &hw);
  free(lw);
  if (rc) {
    free(lb);
    return rc;
  }
  *w = hw;
  *bias = lb;
  return 0;
}

int hetee_engine_plan_stage_weights(const hetee_engine_plan *p, size_t i, const float *w, float **out) {
  if (!p || !w || !out || i >= p->nstages) return hetee_error(HETEE_ERR_INVALID_ARG, "no stage %zu", i);
  const engine_stage *st = &p->st[i];
  size_t n = (size_t)st->shape.co * st->shape.c * st->shape.kh * st->shape.kw;
  const float *v;
  float *owned;
  int rc = engine_stage_weights(st, w, &v, &owned);
  if (rc) return rc;
  if (!owned) {
    owned = malloc(n * sizeof *owned);
    if (!owned) return hetee_error(HETEE_ERR_NOMEM, "no memory");
    memcpy(owned, w, n * sizeof *owned);
  }
  *out = owned;
  return 0;
}

int hetee_engine_plan_layout(const hetee_engine_plan *p, size_t i, uint32_t batch, hetee_hemat_layout *out) {
  if (!p || !out || i >= p->nstages || batch < 1 || batch > p->micro_batch)
    return hetee_error(HETEE_ERR_INVALID_ARG, "stage %zu / batch %u out of range", i, batch);
  const engine_stage *st = &p->st[i];
  if (batch == p->micro_batch) {
    *out = st->layout;
    return 0;
  }
  return hetee_hemat_layout_init(&st->shape, &st->pack, batch, p->n, out);
}

int hetee_engine_plan_max_lanes(const hetee_engine_plan *p) {
  int m = 1;
  for (size_t s = 0; p && s < p->nstages; s++)
    if (p->st[s].layout.lanes > m) m = p->st[s].layout.lanes;
  return m;
}

int hetee_engine_model_set_expand_keys(hetee_engine_model *em, const hetee_ckks_galois_keys *gk) {
  if (!em) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  em->gk = gk;
  return 0;
}

size_t hetee_engine_plan_model_ct_bytes(const hetee_engine_plan *p) {
  if (!p) return 0;
  size_t total = 0, ct = engine_ct_bytes(p->n, 2, HETEE_ENGINE_LEVEL);
  for (size_t s = 0; s < p->nstages; s++) {
    const hetee_hemat_layout *L = &p->st[s].layout;
    total += (L->n_w_cts + (p->st[s].has_bias ? (size_t)L->nmb : 0)) * ct;
  }
  return total;
}

int hetee_engine_plan_input_pos(const hetee_engine_plan *p, uint32_t batch, uint32_t b, size_t k, uint64_t *pos) {
  if (!p || !pos || b >= batch || k >= p->in_size) return hetee_error(HETEE_ERR_INVALID_ARG, "input index out of range");
  hetee_hemat_layout L;
  int rc = hetee_engine_plan_layout(p, 0, batch, &L);
  if (rc) return rc;
  const engine_stage *st = &p->st[0];
  int hw = st->in_shape[1] * st->in_shape[2];
  int c = (int)(k / (size_t)hw), y = (int)(k % (size_t)hw) / st->in_shape[2], x = (int)(k % (size_t)st->in_shape[2]);
  int hc, hy, hx;
  engine_in_coord(st, c, y, x, &hc, &hy, &hx);
  *pos = hetee_hemat_in_pos(&L, b, hc, hy, hx);
  return 0;
}

/* ------------------------------------------------------------- refresh maps */

double hetee_engine_release_scale(const hetee_ckks_context *ctx) {
  if (!ctx) return 0;
  double logq = 0;
  for (int i = 0; i <= hetee_ckks_context_max_level(ctx); i++) logq += log2((double)hetee_ckks_context_prime(ctx, i));
  return exp2(floor(logq) - 44);
}

double hetee_engine_refresh_scale(const hetee_ckks_context *ctx) {
  if (!ctx || hetee_ckks_context_max_level(ctx) < HETEE_ENGINE_LEVEL) return 0;
  return HETEE_ENGINE_OUT_SCALE / (double)hetee_ckks_context_prime(ctx, HETEE_ENGINE_LEVEL);
}

void hetee_engine_refresh_free(hetee_engine_refresh *r) {
  if (!r) return;
  free(r->in_map);
  free(r->out_dst);
  free(r->out_src);
  memset(r, 0, sizeof *r);
}

int hetee_engine_plan_refresh(const hetee_engine_plan *p, size_t i, uint32_t batch, hetee_engine_refresh *r) {
  if (!r) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  memset(r, 0, sizeof *r);
  hetee_hemat_layout L, N;
  int rc = hetee_engine_plan_layout(p, i, batch, &L);
  if (rc) return rc;
  const engine_stage *st = &p->st[i];
  int last = i + 1 == p->nstages;
  if (!last && (rc = hetee_engine_plan_layout(p, i + 1, batch, &N))) return rc;
  r->batch = batch;
  r->out_lanes = 1;
  r->in_shape[0] = st->shape.co;
  r->in_shape[1] = L.oh;
  r->in_shape[2] = L.ow;
  r->n_in = count3(r->in_shape);
  r->in_ncts = (uint32_t)L.n_out_cts;
  r->nops = st->nops;
  r->ops = st->ops;
  memcpy(r->out_shape, st->out_shape, sizeof r->out_shape);
  r->n_final = count3(st->out_shape);
  size_t nin = (size_t)batch * r->n_in;
  r->in_map = malloc(nin * sizeof *r->in_map);
  if (!r->in_map) goto nomem;
  size_t k = 0;
  for (uint32_t b = 0; b < batch; b++)
    for (int o = 0; o < st->shape.co; o++)
      for (int y = 0; y < L.oh; y++)
        for (int x = 0; x < L.ow; x++) {
          uint64_t pos = hetee_hemat_out_pos(&L, b, o, y, x);
          if (pos > UINT32_MAX) {
            hetee_engine_refresh_free(r);
            return hetee_error(HETEE_ERR_LIMIT, "stage %zu: output position beyond 2^32", i);
          }
          r->in_map[k++] = (uint32_t)pos;
        }
  if (last) {
    /* the release layout: sample b's value v at (b / cap) * N + (b % cap) * n_final + v */
    r->release = 1;
    r->release_cap = release_cap(p);
    r->out_ncts = (uint32_t)release_cts(p, batch);
    r->out_n = (size_t)batch * r->n_final;
    r->out_dst = malloc(r->out_n * sizeof *r->out_dst);
    r->out_src = malloc(r->out_n * sizeof *r->out_src);
    if (!r->out_dst || !r->out_src) goto nomem;
    k = 0;
    for (uint32_t b = 0; b < batch; b++)
      for (size_t v = 0; v < r->n_final; v++, k++) {
        r->out_dst[k] = (uint32_t)((size_t)(b / r->release_cap) * p->n + (size_t)(b % r->release_cap) * r->n_final + v);
        r->out_src[k] = (uint32_t)(b * r->n_final + v);
      }
    return 0;
  }
  const engine_stage *nx = &p->st[i + 1];
  /* a lane stage's inputs: dense positions, n_dense_in_cts ciphertexts */
  r->out_lanes = N.lanes;
  r->out_ncts = (uint32_t)N.n_dense_in_cts;
  r->out_n = (size_t)batch * r->n_final;
  r->out_dst = malloc(r->out_n * sizeof *r->out_dst);
  r->out_src = malloc(r->out_n * sizeof *r->out_src);
  if (!r->out_dst || !r->out_src) goto nomem;
  int ih = nx->in_shape[1], iw = nx->in_shape[2];
  k = 0;
  for (uint32_t b = 0; b < batch; b++)
    for (size_t v = 0; v < r->n_final; v++) {
      /* value v of the final tensor is element v of the next input (C,H,W) */
      int c = (int)(v / ((size_t)ih * iw)), y = (int)(v / (size_t)iw) % ih, x = (int)(v % (size_t)iw);
      int hc, hy, hx;
      engine_in_coord(nx, c, y, x, &hc, &hy, &hx);
      uint64_t pos = hetee_hemat_in_pos_dense(&N, b, hc, hy, hx);
      if (pos > UINT32_MAX) {
        hetee_engine_refresh_free(r);
        return hetee_error(HETEE_ERR_LIMIT, "stage %zu: input position beyond 2^32", i + 1);
      }
      r->out_dst[k] = (uint32_t)pos;
      r->out_src[k] = (uint32_t)(b * r->n_final + v);
      k++;
    }
  return 0;
nomem:
  hetee_engine_refresh_free(r);
  return hetee_error(HETEE_ERR_NOMEM, "no memory for the refresh maps");
}

/* ------------------------------------------------------------- printing */

static const char *op_name(int kind) {
  switch (kind) {
  case HETEE_OP_ADD_BIAS: return "add";
  case HETEE_OP_RELU: return "relu";
  case HETEE_OP_LEAKY_RELU: return "leaky_relu";
  case HETEE_OP_SIGMOID: return "sigmoid";
  case HETEE_OP_TANH: return "tanh";
  case HETEE_OP_SQUARE: return "square";
  case HETEE_OP_MAXPOOL: return "maxpool";
  case HETEE_OP_AVGPOOL: return "avgpool";
  case HETEE_OP_BATCHNORM: return "affine";
  case HETEE_OP_RESHAPE: return "reshape";
  case HETEE_OP_SCALE: return "scale";
  default: return "?";
  }
}

/* The ciphertext bytes a bound run moves per micro-batch for stage s (what
 * hetee_engine_stats counts, less headers): to the enclave each output's c1
 * and c2 of one prime in full and c0 at the coefficients the refresh reads
 * (engine/bound checks the measured bytes against this), plus the first
 * stage's sealed input witness; back the next stage's fresh seeded inputs
 * (c0 of two primes). */
static void print_bytes(FILE *f, const hetee_engine_plan *p, size_t s) {
  hetee_engine_refresh R;
  if (hetee_engine_plan_refresh(p, s, p->micro_batch, &R)) return;
  const hetee_hemat_layout *L = &p->st[s].layout;
  size_t to = L->n_out_cts * 2 * p->n * 8 + (size_t)R.batch * R.n_in * 8;
  size_t from = s + 1 < p->nstages ? p->st[s + 1].layout.n_dense_in_cts * 2 * p->n * 8 : 0;
  size_t wit = s == 0 ? 4 * (size_t)p->micro_batch * p->in_size : 0;
  hetee_engine_refresh_free(&R);
  fprintf(f, "  bytes    to the enclave %.2f MB", (double)to / 1e6);
  if (wit) fprintf(f, " + the input witness %.2f MB", (double)wit / 1e6);
  fprintf(f, ", back %.2f MB per micro-batch (bound run, without headers)\n", (double)from / 1e6);
}

/* A refresh op with constants (an affine map the plan could not fold, a
 * constant add) carries them in the plan, which the host reads. */
static void print_clear(FILE *f) {
  fprintf(f, "  clear    this refresh's affine or constant-add values are in the plan, which the host reads "
             "(not foldable here)\n");
}

/* The evaluation keys a stage's host work needs: none for the coefficient
 * kernels (products stay in degree 2, the enclave decrypts with s^2), the
 * rotation steps of the expansion for a lane stage. */
static void print_keys(FILE *f, size_t n, const hetee_hemat_layout *L) {
  if (L->lanes <= 1) {
    fprintf(f, "  keys     none: no rotation, relinearisation or key switch on the host\n");
    return;
  }
  int steps[16];
  size_t k = 0;
  if (hetee_ckks_expand_steps_n(n, L->lanes, steps, sizeof steps / sizeof steps[0], &k)) {
    fprintf(f, "  keys     rotation steps of a %d-lane expansion: %s\n", L->lanes, hetee_last_error());
    return;
  }
  fprintf(f, "  keys     rotation steps");
  for (size_t j = 0; j < k; j++) fprintf(f, "%s %d", j ? "," : "", steps[j]);
  fprintf(f, " (Galois keys of the %d-lane expansion, made by the enclave)\n", L->lanes);
}

void hetee_engine_plan_print(const hetee_engine_plan *p, FILE *f) {
  if (!p || !f) return;
  double total = 0;
  fprintf(f, "plan: %zu stages, N = %zu, micro-batch %u, input %dx%dx%d, output %zu (%s)\n", p->nstages, p->n,
          p->micro_batch, p->in_shape[0], p->in_shape[1], p->in_shape[2], p->out_size,
          p->release_kind == HETEE_RELEASE_SOFTMAX ? "softmax release" : "argmax release");
  for (size_t s = 0; s < p->nstages; s++) {
    hetee_engine_stage_info o;
    if (hetee_engine_plan_stage(p, s, &o)) return;
    const hetee_hemat_layout *L = &p->st[s].layout;
    fprintf(f, "stage %zu: %s\n", s, o.names);
    fprintf(f, "  shape    in %dx%dx%d pad %d,%d,%d,%d -> c %d h %d w %d, co %d, kernel %dx%d, stride %dx%d -> out %dx%dx%d\n",
            o.in_shape[0], o.in_shape[1], o.in_shape[2], o.pads[0], o.pads[1], o.pads[2], o.pads[3], o.shape.c,
            o.shape.h, o.shape.w, o.shape.co, o.shape.kh, o.shape.kw, o.shape.sh, o.shape.sw, o.shape.co, L->oh,
            L->ow);
    if (p->st[s].phased) {
      const hetee_hemat_shape *k = &p->st[s].conv;
      fprintf(f, "  phased   conv kernel %dx%d stride %dx%d run as the stride-1 space-to-depth form above\n", k->kh, k->kw,
              k->sh, k->sw);
    }
    if (o.folded_layer >= 0)
      fprintf(f, "  folded   layer %d (an affine map or constant add before this layer) into its weights and bias: "
                 "its constants stay with the model provider\n", o.folded_layer);
    fprintf(f, "  packing  cb %d, mb %d, nimg %d (%zu groups)\n", o.pack.cb, o.pack.mb, o.pack.nimg, L->ngroups);
    if (L->lanes > 1)
      fprintf(f, "  lanes    %d: the enclave encrypts %zu dense inputs, the host expands each into %d (%zu key switches)\n",
              L->lanes, L->n_dense_in_cts, L->lanes, L->n_dense_in_cts * (size_t)(L->lanes - 1));
    fprintf(f,
            "  counts   input cts %zu (%s), weight cts %zu + bias %zu, output cts %zu, products %zu, enclave "
            "encryptions %zu, decryptions %zu\n",
            o.n_in_cts, s == 0 ? "data provider" : "enclave", o.n_w_cts, o.n_bias_cts, o.n_out_cts, o.n_products,
            o.enclave_encryptions, o.enclave_decryptions);
    print_keys(f, p->n, L);
    print_bytes(f, p, s);
    size_t wb = (o.n_w_cts + o.n_bias_cts) * engine_ct_bytes(p->n, 2, HETEE_ENGINE_LEVEL);
    fprintf(f, "  weights  %zu bytes (%.1f MiB) of weight and bias ciphertexts\n", wb, (double)wb / (1 << 20));
    fprintf(f, "  predicted %.2f ms per micro-batch\n", o.predicted_s * 1e3);
    total += o.predicted_s;
    fprintf(f, "  refresh ");
    if (!o.nops) fprintf(f, " (layout change only)");
    int clear = 0;
    for (size_t k = 0; k < o.nops; k++) {
      const hetee_refresh_op *op = &o.ops[k];
      fprintf(f, "%s%s", k ? ", " : " ", op_name(op->kind));
      if (op->kind == HETEE_OP_LEAKY_RELU) fprintf(f, "(%g)", op->alpha);
      if (op->kind == HETEE_OP_MAXPOOL || op->kind == HETEE_OP_AVGPOOL)
        fprintf(f, "(%d, stride %d)", op->window, op->stride);
      if (op->kind == HETEE_OP_RESHAPE) fprintf(f, "(%dx%dx%d)", op->shape[0], op->shape[1], op->shape[2]);
      clear |= op->na || op->nb;
    }
    if (s + 1 < p->nstages) {
      fprintf(f, " -> %dx%dx%d into stage %zu's layout\n", o.out_shape[0], o.out_shape[1], o.out_shape[2], s + 1);
      if (clear) print_clear(f);
      continue;
    }
    fprintf(f, " -> %zu values into the release layout (%zu ciphertexts)\n", p->out_size, o.enclave_encryptions);
    if (clear) print_clear(f);
    fprintf(f, "  release  %s of %zu values per sample, sealed to the data provider\n",
            p->release_kind == HETEE_RELEASE_SOFTMAX ? "softmax" : "argmax", p->out_size);
  }
  fprintf(f, "predicted total %.2f ms per micro-batch of %u (%.3f ms per sample)\n", total * 1e3, p->micro_batch,
          total * 1e3 / p->micro_batch);
  fprintf(f, "model ciphertexts %zu bytes (%.1f MiB)\n", hetee_engine_plan_model_ct_bytes(p),
          (double)hetee_engine_plan_model_ct_bytes(p) / (1 << 20));
}

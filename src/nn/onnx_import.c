/*
 * onnx_import.c — ONNX (opsets 11-17) to hetee's graph representation.
 *
 * The ModelProto is decoded by protobuf-c code generated at build time from
 * Debian's onnx.proto (libonnx-dev). Nodes are visited in file order (ONNX
 * requires topological order, checked here): each one either
 *   - creates a layer (Gemm, Conv, Relu, ...) whose per-sample shape is
 *     inferred from its inputs' shapes and checked against its initializers,
 *   - is folded into the layer before it (BatchNormalization and a constant
 *     Add into the Conv/Gemm/MatMul whose output feeds only them),
 *   - is an alias (Identity, Dropout, Flatten of a flat tensor, zero Pad), or
 *   - is evaluated at import time on constants: the shape arithmetic PyTorch
 *     emits for x.view(x.size(0), -1) (Shape, Gather, Unsqueeze, Squeeze,
 *     Concat, Cast, Constant). The batch size is symbolic there: an int64
 *     constant element may be "the batch dimension".
 * The batch dimension is always dimension 0 and is never mixed with others.
 * Every failure names the node ("node 'fc2' (Gemm): ...").
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"
#include "onnx.pb-c.h"

#define MAX_CRANK 8 /* rank of import-time constants */

enum { VAL_ACT = 1, VAL_FLOAT, VAL_INT };

/* A named value of the graph: an activation (output of a layer, per-sample
 * shape) or a constant (full shape, float or int64 data). */
typedef struct {
  const char *name;
  int kind;
  int layer; /* VAL_ACT: producing layer, -1 = model input */
  size_t rank, dims[MAX_CRANK];
  size_t count;
  float *f;           /* VAL_FLOAT */
  int64_t *iv;        /* VAL_INT */
  unsigned char *bat; /* VAL_INT: element is the symbolic batch size */
  int aliased;        /* VAL_ACT: another name for a layer's output */
} val;

typedef struct {
  const Onnx__GraphProto *g;
  hetee_nn_model *m;
  val *vals;
  size_t n_vals, cap_vals;
  void **pool; /* every constant buffer, freed at the end */
  size_t n_pool, cap_pool;
  int64_t opset;
  const Onnx__NodeProto *node;
} ctx;

static const char SUPPORTED[] =
    "Gemm, MatMul, Add, Mul, Pow (exponent 2), Conv, Relu, LeakyRelu, Sigmoid, Tanh, MaxPool, AveragePool, "
    "GlobalAveragePool, BatchNormalization, Flatten, Reshape, Pad, Dropout, Identity, Softmax (last), and "
    "Constant, Shape, Gather, Unsqueeze, Squeeze, Concat, Cast on shape constants";

/* ---------------------------------------------------------------- helpers */

static const char *node_label(const Onnx__NodeProto *n) {
  if (n->name && n->name[0]) return n->name;
  if (n->n_output > 0 && n->output[0]) return n->output[0];
  return "?";
}

/* Error about the current node: "node 'NAME' (OP): detail". */
static int node_err(ctx *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int node_err(ctx *c, int status, const char *fmt, ...) {
  char detail[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  return hetee_error(status, "node '%s' (%s): %s", node_label(c->node), c->node->op_type, detail);
}

static void *pool_alloc(ctx *c, size_t n, size_t size) {
  if (c->n_pool == c->cap_pool) {
    size_t ncap = c->cap_pool ? 2 * c->cap_pool : 64;
    void **np = realloc(c->pool, ncap * sizeof *np);
    if (!np) return NULL;
    c->pool = np;
    c->cap_pool = ncap;
  }
  void *p = calloc(n ? n : 1, size);
  if (p) c->pool[c->n_pool++] = p;
  return p;
}

static val *find_val(ctx *c, const char *name) {
  for (size_t i = c->n_vals; i-- > 0;) {
    if (!strcmp(c->vals[i].name, name)) return &c->vals[i];
  }
  return NULL;
}

static int add_val(ctx *c, const val *v) {
  if (c->n_vals == c->cap_vals) {
    size_t ncap = c->cap_vals ? 2 * c->cap_vals : 64;
    val *nv = realloc(c->vals, ncap * sizeof *nv);
    if (!nv) return hetee_error(HETEE_ERR_NOMEM, "ONNX import");
    c->vals = nv;
    c->cap_vals = ncap;
  }
  c->vals[c->n_vals++] = *v;
  return 0;
}

/* Number of node inputs and graph outputs that read `name`. */
static size_t uses(const ctx *c, const char *name) {
  size_t n = 0;
  for (size_t i = 0; i < c->g->n_node; i++) {
    const Onnx__NodeProto *nd = c->g->node[i];
    for (size_t k = 0; k < nd->n_input; k++) n += nd->input[k] && !strcmp(nd->input[k], name);
  }
  for (size_t i = 0; i < c->g->n_output; i++) n += c->g->output[i]->name && !strcmp(c->g->output[i]->name, name);
  return n;
}

static void fmt_shape(char *buf, size_t cap, int batch, const size_t *dims, size_t rank) {
  int p = snprintf(buf, cap, "[%s", batch ? "N" : "");
  for (size_t i = 0; i < rank && (size_t)p < cap; i++) {
    p += snprintf(buf + p, cap - (size_t)p, "%s%zu", (i || batch) ? "," : "", dims[i]);
  }
  if ((size_t)p < cap) snprintf(buf + p, cap - (size_t)p, "]");
}
#define SHAPE_ACT(buf, v) fmt_shape(buf, sizeof buf, 1, (v)->dims, (v)->rank)
#define SHAPE_CONST(buf, v) fmt_shape(buf, sizeof buf, 0, (v)->dims, (v)->rank)

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name) {
  for (size_t i = 0; i < n->n_attribute; i++) {
    if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name)) return n->attribute[i];
  }
  return NULL;
}

static int64_t attr_int(const Onnx__NodeProto *n, const char *name, int64_t dflt) {
  const Onnx__AttributeProto *a = attr(n, name);
  return a && a->has_i ? a->i : dflt;
}

static float attr_float(const Onnx__NodeProto *n, const char *name, float dflt) {
  const Onnx__AttributeProto *a = attr(n, name);
  return a && a->has_f ? a->f : dflt;
}

/* Integer list attribute of exactly `want` entries, or the default `dflt`
 * for every entry when absent. */
static int attr_ints(ctx *c, const char *name, size_t want, int64_t dflt, int64_t *out) {
  const Onnx__AttributeProto *a = attr(c->node, name);
  if (!a || a->n_ints == 0) {
    for (size_t i = 0; i < want; i++) out[i] = dflt;
    return 0;
  }
  if (a->n_ints != want) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "attribute %s has %zu values (expected %zu: 2-D only)", name,
                    a->n_ints, want);
  }
  for (size_t i = 0; i < want; i++) out[i] = a->ints[i];
  return 0;
}

/* Input k of the current node (NULL if absent/empty). */
static const char *in_name(ctx *c, size_t k) {
  return k < c->node->n_input && c->node->input[k] && c->node->input[k][0] ? c->node->input[k] : NULL;
}

static int get_in(ctx *c, size_t k, val **out) {
  const char *nm = in_name(c, k);
  if (!nm) return node_err(c, HETEE_ERR_FORMAT, "input %zu is missing", k);
  val *v = find_val(c, nm);
  if (!v) {
    return node_err(c, HETEE_ERR_FORMAT, "input '%s' is not produced by an earlier node (graph not in topological order?)",
                    nm);
  }
  *out = v;
  return 0;
}

static int need_act(ctx *c, val *v, size_t k) {
  if (v->kind != VAL_ACT) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "input %zu ('%s') is a constant; an activation is expected (constant "
                    "folding is not supported)", k, v->name);
  }
  return 0;
}

static int need_float(ctx *c, val *v, const char *what) {
  if (v->kind != VAL_FLOAT) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "%s '%s' must be a float initializer or constant", what, v->name);
  }
  return 0;
}

/* Output k: defines a value named after it. */
static int set_out(ctx *c, size_t k, val *v) {
  if (k >= c->node->n_output || !c->node->output[k] || !c->node->output[k][0]) {
    return node_err(c, HETEE_ERR_FORMAT, "output %zu is missing", k);
  }
  v->name = c->node->output[k];
  return add_val(c, v);
}

/* Refuses extra outputs that something reads (e.g. MaxPool indices). */
static int single_output(ctx *c) {
  for (size_t k = 1; k < c->node->n_output; k++) {
    if (c->node->output[k] && c->node->output[k][0] && uses(c, c->node->output[k])) {
      return node_err(c, HETEE_ERR_UNSUPPORTED, "output %zu ('%s') is used; only the first output is supported", k,
                      c->node->output[k]);
    }
  }
  return 0;
}

/* ------------------------------------------------------------- constants */

static int tensor_to_val(ctx *c, const Onnx__TensorProto *t, const char *name, val *v) {
  memset(v, 0, sizeof *v);
  v->name = name;
  if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    return hetee_error(HETEE_ERR_UNSUPPORTED, "tensor '%s': external data is not supported", name);
  }
  if (t->n_dims > MAX_CRANK) return hetee_error(HETEE_ERR_UNSUPPORTED, "tensor '%s': rank %zu", name, t->n_dims);
  v->rank = t->n_dims;
  for (size_t i = 0; i < t->n_dims; i++) {
    if (t->dims[i] < 0 || t->dims[i] > (int64_t)HETEE_NN_MAX_ELEMENTS) {
      return hetee_error(HETEE_ERR_FORMAT, "tensor '%s': dimension %zu is %lld", name, i, (long long)t->dims[i]);
    }
    v->dims[i] = (size_t)t->dims[i];
  }
  int rc = nn_checked_count(v->dims, v->rank, HETEE_NN_MAX_ELEMENTS, name, &v->count);
  if (rc) return rc;
  size_t n = v->count;
  int dt = t->has_data_type ? t->data_type : 0;
  const uint8_t *raw = t->has_raw_data ? t->raw_data.data : NULL;
  size_t raw_len = t->has_raw_data ? t->raw_data.len : 0;
  size_t esize = dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 ? 4 : 8;
  size_t have;
  switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: have = raw ? raw_len / 4 : t->n_float_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: have = raw ? raw_len / 8 : t->n_double_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: have = raw ? raw_len / 8 : t->n_int64_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: have = raw ? raw_len / 4 : t->n_int32_data; break;
    default:
      return hetee_error(HETEE_ERR_UNSUPPORTED, "tensor '%s': data type %d not supported (float, double, int32, int64)",
                         name, dt);
  }
  if (have != n || (raw && raw_len != n * esize)) {
    return hetee_error(HETEE_ERR_SHAPE, "tensor '%s': holds %zu values but its dims need %zu", name, have, n);
  }
  if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
    v->kind = VAL_FLOAT;
    v->f = pool_alloc(c, n, sizeof(float));
    if (!v->f) return hetee_error(HETEE_ERR_NOMEM, "tensor '%s'", name);
    for (size_t i = 0; i < n; i++) {
      double x;
      if (raw) {
        uint64_t u = 0;
        for (size_t k = 0; k < esize; k++) u |= (uint64_t)raw[i * esize + k] << (8 * k);
        if (esize == 4) {
          uint32_t w = (uint32_t)u;
          float f;
          memcpy(&f, &w, 4);
          x = f;
        } else {
          memcpy(&x, &u, 8);
        }
      } else {
        x = dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? t->float_data[i] : t->double_data[i];
      }
      if (!isfinite(x) || fabs(x) > 3.0e38) {
        return hetee_error(HETEE_ERR_RANGE, "tensor '%s': element %zu is not a finite float", name, i);
      }
      v->f[i] = (float)x;
    }
  } else {
    v->kind = VAL_INT;
    v->iv = pool_alloc(c, n, sizeof(int64_t));
    v->bat = pool_alloc(c, n, 1);
    if (!v->iv || !v->bat) return hetee_error(HETEE_ERR_NOMEM, "tensor '%s'", name);
    for (size_t i = 0; i < n; i++) {
      if (raw) {
        uint64_t u = 0;
        for (size_t k = 0; k < esize; k++) u |= (uint64_t)raw[i * esize + k] << (8 * k);
        v->iv[i] = esize == 4 ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u;
      } else {
        v->iv[i] = dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? t->int64_data[i] : t->int32_data[i];
      }
    }
  }
  return 0;
}

/* An int constant input that must not contain the batch size. */
static int need_int(ctx *c, val *v, const char *what) {
  if (v->kind != VAL_INT) return node_err(c, HETEE_ERR_UNSUPPORTED, "%s '%s' must be an integer constant", what, v->name);
  return 0;
}

/* Normalizes axis a of a rank-r tensor (negative counts from the end). */
static int norm_axis(ctx *c, int64_t a, size_t r, size_t *out) {
  int64_t rr = (int64_t)r;
  if (a < -rr || a >= rr) return node_err(c, HETEE_ERR_SHAPE, "axis %lld out of range for rank %zu", (long long)a, r);
  *out = (size_t)(a < 0 ? a + rr : a);
  return 0;
}

/* -------------------------------------------------------------- layers */

static int new_layer(ctx *c, hetee_nn_kind kind, const val *in0, const val *in1, size_t out_rank,
                     const size_t *out_dims, nn_layer **out) {
  hetee_nn_model *m = c->m;
  if (m->n_layers == m->cap_layers) {
    size_t ncap = m->cap_layers ? 2 * m->cap_layers : 16;
    nn_layer *nl = realloc(m->layers, ncap * sizeof *nl);
    if (!nl) return hetee_error(HETEE_ERR_NOMEM, "ONNX import");
    m->layers = nl;
    m->cap_layers = ncap;
  }
  nn_layer *l = &m->layers[m->n_layers];
  memset(l, 0, sizeof *l);
  l->name = strdup(node_label(c->node));
  if (!l->name) return hetee_error(HETEE_ERR_NOMEM, "ONNX import");
  m->n_layers++;
  l->kind = kind;
  snprintf(l->onnx_ops, sizeof l->onnx_ops, "%s", c->node->op_type);
  l->n_inputs = in1 ? 2 : 1;
  l->inputs[0] = in0->layer;
  l->inputs[1] = in1 ? in1->layer : -1;
  l->in_rank = in0->rank;
  memcpy(l->in_dims, in0->dims, in0->rank * sizeof(size_t));
  l->in_size = 1;
  for (size_t i = 0; i < in0->rank; i++) l->in_size *= in0->dims[i];
  if (out_rank < 1 || out_rank > HETEE_NN_MAX_RANK) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "output of rank %zu per sample (1..%d supported)", out_rank,
                    HETEE_NN_MAX_RANK);
  }
  l->out_rank = out_rank;
  memcpy(l->out_dims, out_dims, out_rank * sizeof(size_t));
  int rc = nn_checked_count(out_dims, out_rank, HETEE_NN_MAX_SAMPLE, node_label(c->node), &l->out_size);
  if (rc) return rc;
  *out = l;
  return 0;
}

/* Defines output 0 as the activation produced by layer l. */
static int out_layer(ctx *c, nn_layer *l) {
  val v;
  memset(&v, 0, sizeof v);
  v.kind = VAL_ACT;
  v.layer = (int)(l - c->m->layers);
  v.rank = l->out_rank;
  memcpy(v.dims, l->out_dims, l->out_rank * sizeof(size_t));
  return set_out(c, 0, &v);
}

static int alloc_params(nn_layer *l, size_t wlen, size_t blen) {
  l->weight = calloc(wlen ? wlen : 1, sizeof(float));
  l->weight_len = wlen;
  if (blen) {
    l->bias = calloc(blen, sizeof(float));
    l->bias_len = blen;
  }
  if (!l->weight || (blen && !l->bias)) return hetee_error(HETEE_ERR_NOMEM, "layer parameters");
  return 0;
}

/* Layer that produced activation v, if v is its only reader's input and it is
 * the last layer so far (so folding into it changes nothing else). */
static nn_layer *foldable(ctx *c, const val *v, hetee_nn_kind k1, hetee_nn_kind k2) {
  if (v->kind != VAL_ACT || v->aliased || v->layer < 0 || (size_t)v->layer + 1 != c->m->n_layers) return NULL;
  nn_layer *l = &c->m->layers[v->layer];
  if (l->kind != k1 && l->kind != k2) return NULL;
  if (uses(c, v->name) != 1) return NULL;
  return l;
}

static void append_op(nn_layer *l, const char *op) {
  size_t n = strlen(l->onnx_ops);
  snprintf(l->onnx_ops + n, sizeof l->onnx_ops - n, "+%s", op);
}

/* ------------------------------------------------------------- op: alias */

static int op_alias(ctx *c) {
  val *x;
  int rc = get_in(c, 0, &x);
  if (rc) return rc;
  rc = single_output(c);
  if (rc) return rc;
  val v = *x;
  v.aliased = 1;
  return set_out(c, 0, &v);
}

static int op_unary(ctx *c, hetee_nn_kind kind) {
  val *x;
  nn_layer *l;
  int rc = get_in(c, 0, &x);
  if (rc || (rc = need_act(c, x, 0))) return rc;
  rc = new_layer(c, kind, x, NULL, x->rank, x->dims, &l);
  if (rc) return rc;
  if (kind == HETEE_NN_LEAKY_RELU) l->alpha = attr_float(c->node, "alpha", 0.01f);
  return out_layer(c, l);
}

/* ------------------------------------------------------- op: Gemm, MatMul */

static int op_gemm(ctx *c, int is_matmul) {
  val *a, *b, *bias = NULL;
  nn_layer *l;
  char s1[64], s2[64];
  int rc = get_in(c, 0, &a);
  if (rc || (rc = need_act(c, a, 0))) return rc;
  if ((rc = get_in(c, 1, &b))) return rc;
  if (b->kind == VAL_ACT) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "both inputs are activations; the second must be a weight initializer");
  }
  if ((rc = need_float(c, b, "weight"))) return rc;
  if (!is_matmul && in_name(c, 2)) {
    if ((rc = get_in(c, 2, &bias)) || (rc = need_float(c, bias, "bias"))) return rc;
  }
  int trans_b = is_matmul ? 0 : (int)attr_int(c->node, "transB", 0);
  float alpha = is_matmul ? 1.0f : attr_float(c->node, "alpha", 1.0f);
  float beta = is_matmul ? 1.0f : attr_float(c->node, "beta", 1.0f);
  if (!is_matmul && attr_int(c->node, "transA", 0)) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "transA=1 (the batch must stay the first dimension)");
  }
  SHAPE_ACT(s1, a);
  SHAPE_CONST(s2, b);
  if (a->rank != 1) return node_err(c, HETEE_ERR_SHAPE, "input '%s' has shape %s; a matrix [N,K] is expected", a->name, s1);
  if (b->rank != 2) return node_err(c, HETEE_ERR_SHAPE, "weight '%s' has shape %s; a matrix is expected", b->name, s2);
  size_t k = trans_b ? b->dims[1] : b->dims[0];
  size_t n = trans_b ? b->dims[0] : b->dims[1];
  if (k != a->dims[0]) {
    return node_err(c, HETEE_ERR_SHAPE, "input '%s' has shape %s but weight '%s' of shape %s%s expects [N,%zu]",
                    a->name, s1, b->name, s2, trans_b ? " (transposed)" : "", k);
  }
  if (bias) {
    int ok = bias->count == n || bias->count == 1;
    if (ok && bias->rank == 2) ok = bias->dims[0] == 1;
    if (!ok || bias->rank > 2) {
      SHAPE_CONST(s2, bias);
      return node_err(c, HETEE_ERR_SHAPE, "bias '%s' has shape %s; expected [%zu]", bias->name, s2, n);
    }
  }
  size_t od[1] = {n};
  if ((rc = new_layer(c, HETEE_NN_DENSE, a, NULL, 1, od, &l))) return rc;
  if ((rc = alloc_params(l, n * k, n))) return rc;
  for (size_t o = 0; o < n; o++) {
    for (size_t i = 0; i < k; i++) {
      l->weight[o * k + i] = alpha * (trans_b ? b->f[o * k + i] : b->f[i * n + o]);
    }
    if (bias) l->bias[o] = beta * bias->f[bias->count == 1 ? 0 : o];
  }
  return out_layer(c, l);
}

/* ------------------------------------------------------------------ Conv */

static int op_conv(ctx *c) {
  val *x, *w, *b = NULL;
  nn_layer *l;
  char s1[64], s2[64];
  int64_t ks[2], st[2], pd[4], dl[2];
  int rc = get_in(c, 0, &x);
  if (rc || (rc = need_act(c, x, 0))) return rc;
  if ((rc = get_in(c, 1, &w)) || (rc = need_float(c, w, "weight"))) return rc;
  if (in_name(c, 2) && ((rc = get_in(c, 2, &b)) || (rc = need_float(c, b, "bias")))) return rc;
  SHAPE_ACT(s1, x);
  SHAPE_CONST(s2, w);
  if (x->rank != 3) return node_err(c, HETEE_ERR_SHAPE, "input '%s' has shape %s; [N,C,H,W] expected", x->name, s1);
  if (w->rank != 4) return node_err(c, HETEE_ERR_SHAPE, "weight '%s' has shape %s; [M,C,kH,kW] expected", w->name, s2);
  if (attr_int(c->node, "group", 1) != 1) return node_err(c, HETEE_ERR_UNSUPPORTED, "group != 1 (only groups=1)");
  const Onnx__AttributeProto *ap = attr(c->node, "auto_pad");
  if (ap && ap->has_s && !(ap->s.len == 6 && !memcmp(ap->s.data, "NOTSET", 6)) &&
      !(ap->s.len == 5 && !memcmp(ap->s.data, "VALID", 5))) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "auto_pad other than NOTSET/VALID (use explicit pads)");
  }
  if ((rc = attr_ints(c, "dilations", 2, 1, dl))) return rc;
  if (dl[0] != 1 || dl[1] != 1) return node_err(c, HETEE_ERR_UNSUPPORTED, "dilation != 1 (only dilation 1)");
  if ((rc = attr_ints(c, "kernel_shape", 2, 0, ks))) return rc;
  if ((ks[0] || ks[1]) && ((size_t)ks[0] != w->dims[2] || (size_t)ks[1] != w->dims[3])) {
    return node_err(c, HETEE_ERR_SHAPE, "kernel_shape %lldx%lld does not match weight '%s' of shape %s",
                    (long long)ks[0], (long long)ks[1], w->name, s2);
  }
  if ((rc = attr_ints(c, "strides", 2, 1, st)) || (rc = attr_ints(c, "pads", 4, 0, pd))) return rc;
  for (int i = 0; i < 4; i++) {
    if (pd[i] < 0 || pd[i] > 1024) return node_err(c, HETEE_ERR_UNSUPPORTED, "pads must be in 0..1024");
  }
  if (st[0] < 1 || st[1] < 1 || st[0] > 1024 || st[1] > 1024) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "strides must be in 1..1024");
  }
  size_t co = w->dims[0], ci = w->dims[1], kh = w->dims[2], kw = w->dims[3];
  if (ci != x->dims[0]) {
    return node_err(c, HETEE_ERR_SHAPE, "input '%s' has shape %s (%zu channels) but weight '%s' of shape %s expects %zu",
                    x->name, s1, x->dims[0], w->name, s2, ci);
  }
  size_t ph = x->dims[1] + (size_t)pd[0] + (size_t)pd[2], pw = x->dims[2] + (size_t)pd[1] + (size_t)pd[3];
  if (kh < 1 || kw < 1 || kh > ph || kw > pw) {
    return node_err(c, HETEE_ERR_SHAPE, "kernel %zux%zu larger than the padded input %zux%zu (input '%s' %s)", kh, kw,
                    ph, pw, x->name, s1);
  }
  if (b && (b->rank != 1 || b->count != co)) {
    SHAPE_CONST(s2, b);
    return node_err(c, HETEE_ERR_SHAPE, "bias '%s' has shape %s; expected [%zu]", b->name, s2, co);
  }
  size_t od[3] = {co, (ph - kh) / (size_t)st[0] + 1, (pw - kw) / (size_t)st[1] + 1};
  if ((rc = new_layer(c, HETEE_NN_CONV, x, NULL, 3, od, &l))) return rc;
  if ((rc = alloc_params(l, w->count, co))) return rc;
  memcpy(l->weight, w->f, w->count * sizeof(float));
  if (b) memcpy(l->bias, b->f, co * sizeof(float));
  l->kernel[0] = kh;
  l->kernel[1] = kw;
  l->stride[0] = (size_t)st[0];
  l->stride[1] = (size_t)st[1];
  for (int i = 0; i < 4; i++) l->pads[i] = (size_t)pd[i];
  /* ONNX pads are (H begin, W begin, H end, W end): top, left, bottom, right. */
  return out_layer(c, l);
}

/* ----------------------------------------------------------------- pools */

static int op_pool(ctx *c, hetee_nn_kind kind) {
  val *x;
  nn_layer *l;
  char s1[64];
  int64_t ks[2], st[2], pd[4], dl[2];
  int rc = get_in(c, 0, &x);
  if (rc || (rc = need_act(c, x, 0)) || (rc = single_output(c))) return rc;
  SHAPE_ACT(s1, x);
  if (x->rank != 3) return node_err(c, HETEE_ERR_SHAPE, "input '%s' has shape %s; [N,C,H,W] expected", x->name, s1);
  if (kind == HETEE_NN_GLOBAL_AVGPOOL) {
    size_t od[3] = {x->dims[0], 1, 1};
    if ((rc = new_layer(c, kind, x, NULL, 3, od, &l))) return rc;
    return out_layer(c, l);
  }
  const Onnx__AttributeProto *ap = attr(c->node, "auto_pad");
  if (ap && ap->has_s && !(ap->s.len == 6 && !memcmp(ap->s.data, "NOTSET", 6)) &&
      !(ap->s.len == 5 && !memcmp(ap->s.data, "VALID", 5))) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "auto_pad other than NOTSET/VALID (use explicit pads)");
  }
  if (attr_int(c->node, "ceil_mode", 0)) return node_err(c, HETEE_ERR_UNSUPPORTED, "ceil_mode=1 (only floor)");
  if (attr_int(c->node, "storage_order", 0)) return node_err(c, HETEE_ERR_UNSUPPORTED, "storage_order=1");
  if ((rc = attr_ints(c, "dilations", 2, 1, dl))) return rc;
  if (dl[0] != 1 || dl[1] != 1) return node_err(c, HETEE_ERR_UNSUPPORTED, "dilation != 1 (only dilation 1)");
  if (!attr(c->node, "kernel_shape")) return node_err(c, HETEE_ERR_FORMAT, "attribute kernel_shape is missing");
  if ((rc = attr_ints(c, "kernel_shape", 2, 0, ks)) || (rc = attr_ints(c, "strides", 2, 1, st)) ||
      (rc = attr_ints(c, "pads", 4, 0, pd))) {
    return rc;
  }
  if (ks[0] < 1 || ks[1] < 1 || ks[0] > 1024 || ks[1] > 1024 || st[0] < 1 || st[1] < 1 || st[0] > 1024 ||
      st[1] > 1024) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "kernel and strides must be in 1..1024");
  }
  for (int i = 0; i < 4; i++) {
    if (pd[i] < 0 || pd[i] >= ks[i % 2]) return node_err(c, HETEE_ERR_UNSUPPORTED, "pads must be in 0..kernel-1");
  }
  size_t ph = x->dims[1] + (size_t)pd[0] + (size_t)pd[2], pw = x->dims[2] + (size_t)pd[1] + (size_t)pd[3];
  if ((size_t)ks[0] > ph || (size_t)ks[1] > pw) {
    return node_err(c, HETEE_ERR_SHAPE, "kernel %lldx%lld larger than the padded input %zux%zu (input '%s' %s)",
                    (long long)ks[0], (long long)ks[1], ph, pw, x->name, s1);
  }
  size_t od[3] = {x->dims[0], (ph - (size_t)ks[0]) / (size_t)st[0] + 1, (pw - (size_t)ks[1]) / (size_t)st[1] + 1};
  if ((rc = new_layer(c, kind, x, NULL, 3, od, &l))) return rc;
  l->kernel[0] = (size_t)ks[0];
  l->kernel[1] = (size_t)ks[1];
  l->stride[0] = (size_t)st[0];
  l->stride[1] = (size_t)st[1];
  for (int i = 0; i < 4; i++) l->pads[i] = (size_t)pd[i];
  l->count_include_pad = (int)attr_int(c->node, "count_include_pad", 0);
  return out_layer(c, l);
}

/* ----------------------------------------------------- BatchNormalization */

static int op_batchnorm(ctx *c) {
  val *x, *p[4];
  nn_layer *l;
  char s1[64], s2[64];
  static const char *const what[4] = {"scale", "B", "mean", "var"};
  int rc = get_in(c, 0, &x);
  if (rc || (rc = need_act(c, x, 0)) || (rc = single_output(c))) return rc;
  if (attr_int(c->node, "training_mode", 0)) return node_err(c, HETEE_ERR_UNSUPPORTED, "training_mode=1 (inference form only)");
  size_t ch = x->dims[0];
  for (int i = 0; i < 4; i++) {
    if ((rc = get_in(c, (size_t)i + 1, &p[i])) || (rc = need_float(c, p[i], what[i]))) return rc;
    if (p[i]->rank != 1 || p[i]->count != ch) {
      SHAPE_ACT(s1, x);
      SHAPE_CONST(s2, p[i]);
      return node_err(c, HETEE_ERR_SHAPE, "%s '%s' has shape %s but input '%s' of shape %s has %zu channels", what[i],
                      p[i]->name, s2, x->name, s1, ch);
    }
  }
  double eps = attr_float(c->node, "epsilon", 1e-5f);
  double *s = calloc(ch, sizeof *s), *t = calloc(ch, sizeof *t);
  if (!s || !t) {
    free(s);
    free(t);
    return hetee_error(HETEE_ERR_NOMEM, "BatchNormalization");
  }
  for (size_t i = 0; i < ch; i++) {
    double var = p[3]->f[i];
    if (!(var + eps > 0)) {
      free(s);
      free(t);
      return node_err(c, HETEE_ERR_RANGE, "var + epsilon is not positive for channel %zu", i);
    }
    s[i] = p[0]->f[i] / sqrt(var + eps);
    t[i] = p[1]->f[i] - p[2]->f[i] * s[i];
  }
  /* Fold into the preceding Conv / Gemm / MatMul: W' = s W, b' = s b + t. */
  l = foldable(c, x, HETEE_NN_CONV, HETEE_NN_DENSE);
  if (l) {
    size_t per = l->weight_len / ch;
    for (size_t o = 0; o < ch; o++) {
      for (size_t i = 0; i < per; i++) l->weight[o * per + i] = (float)(s[o] * l->weight[o * per + i]);
      l->bias[o] = (float)(s[o] * l->bias[o] + t[o]);
    }
    append_op(l, "BatchNormalization");
  } else {
    rc = new_layer(c, HETEE_NN_AFFINE, x, NULL, x->rank, x->dims, &l);
    if (!rc) rc = alloc_params(l, ch, ch);
    if (!rc) {
      for (size_t i = 0; i < ch; i++) {
        l->weight[i] = (float)s[i];
        l->bias[i] = (float)t[i];
      }
    }
  }
  free(s);
  free(t);
  if (rc) return rc;
  return out_layer(c, l);
}

/* ------------------------------------------------------ Add, Mul, Pow */

/* Expands constant k to the per-sample shape of activation x under NumPy
 * broadcasting (the constant may not extend the batch dimension). */
static int broadcast_const(ctx *c, const val *x, const val *k, float **out) {
  char s1[64], s2[64];
  size_t xr = x->rank + 1, xd[MAX_CRANK];
  xd[0] = 1; /* the batch: k's matching dim must be 1 */
  memcpy(xd + 1, x->dims, x->rank * sizeof(size_t));
  int ok = k->rank <= xr;
  size_t kd[MAX_CRANK];
  for (size_t i = 0; ok && i < xr; i++) {
    size_t ki = i + k->rank >= xr ? k->dims[i + k->rank - xr] : 1;
    kd[i] = ki;
    ok = ki == 1 || ki == xd[i];
  }
  if (!ok) {
    SHAPE_ACT(s1, x);
    SHAPE_CONST(s2, k);
    return node_err(c, HETEE_ERR_SHAPE, "constant '%s' of shape %s does not broadcast to input '%s' of shape %s",
                    k->name, s2, x->name, s1);
  }
  size_t n = 1;
  for (size_t i = 0; i < x->rank; i++) n *= x->dims[i];
  float *w = calloc(n ? n : 1, sizeof *w);
  if (!w) return hetee_error(HETEE_ERR_NOMEM, "broadcast");
  for (size_t e = 0; e < n; e++) {
    size_t rem = e, kidx = 0, kstride = 1;
    for (size_t i = xr; i-- > 1;) {
      size_t coord = rem % xd[i];
      rem /= xd[i];
      if (kd[i] != 1) kidx += coord * kstride;
      kstride *= kd[i];
    }
    w[e] = k->f[kidx];
  }
  *out = w;
  return 0;
}

static int op_binary(ctx *c, int is_mul) {
  val *a, *b;
  nn_layer *l;
  char s1[64], s2[64];
  int rc = get_in(c, 0, &a);
  if (rc || (rc = get_in(c, 1, &b))) return rc;
  if (a->kind != VAL_ACT && b->kind != VAL_ACT) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "both inputs are constants (constant folding is not supported)");
  }
  if (is_mul && a->kind == VAL_ACT && b->kind == VAL_ACT && a->layer == b->layer) {
    if ((rc = new_layer(c, HETEE_NN_SQUARE, a, NULL, a->rank, a->dims, &l))) return rc;
    return out_layer(c, l);
  }
  if (a->kind == VAL_ACT && b->kind == VAL_ACT) {
    if (a->rank != b->rank || memcmp(a->dims, b->dims, a->rank * sizeof(size_t))) {
      SHAPE_ACT(s1, a);
      SHAPE_ACT(s2, b);
      return node_err(c, HETEE_ERR_SHAPE, "inputs '%s' %s and '%s' %s differ in shape (no broadcasting between activations)",
                      a->name, s1, b->name, s2);
    }
    if ((rc = new_layer(c, is_mul ? HETEE_NN_MUL : HETEE_NN_ADD, a, b, a->rank, a->dims, &l))) return rc;
    return out_layer(c, l);
  }
  val *x = a->kind == VAL_ACT ? a : b, *k = a->kind == VAL_ACT ? b : a;
  if ((rc = need_float(c, k, "constant"))) return rc;
  float *w = NULL;
  if ((rc = broadcast_const(c, x, k, &w))) return rc;
  if (!is_mul) {
    /* A bias per output channel folds into the preceding Conv / Gemm / MatMul. */
    nn_layer *p = foldable(c, x, HETEE_NN_CONV, HETEE_NN_DENSE);
    if (p) {
      size_t ch = p->out_dims[0], per = p->out_size / ch;
      int per_channel = 1;
      for (size_t o = 0; o < ch && per_channel; o++) {
        for (size_t i = 1; i < per; i++) per_channel &= w[o * per + i] == w[o * per];
      }
      if (per_channel) {
        for (size_t o = 0; o < ch; o++) p->bias[o] += w[o * per];
        free(w);
        append_op(p, "Add");
        return out_layer(c, p);
      }
    }
  }
  rc = new_layer(c, is_mul ? HETEE_NN_MUL_CONST : HETEE_NN_ADD_CONST, x, NULL, x->rank, x->dims, &l);
  if (rc) {
    free(w);
    return rc;
  }
  l->weight = w;
  l->weight_len = l->out_size;
  return out_layer(c, l);
}

static int op_pow(ctx *c) {
  val *x, *e;
  nn_layer *l;
  int rc = get_in(c, 0, &x);
  if (rc || (rc = need_act(c, x, 0)) || (rc = get_in(c, 1, &e))) return rc;
  double ev = e->kind == VAL_FLOAT && e->count == 1 ? e->f[0] : e->kind == VAL_INT && e->count == 1 ? (double)e->iv[0] : NAN;
  if (ev != 2.0) return node_err(c, HETEE_ERR_UNSUPPORTED, "exponent '%s' is not the constant 2 (only x^2)", e->name);
  if ((rc = new_layer(c, HETEE_NN_SQUARE, x, NULL, x->rank, x->dims, &l))) return rc;
  return out_layer(c, l);
}

/* ------------------------------------------------------- shape changes */

static int reshape_to(ctx *c, val *x, size_t rank, const size_t *dims) {
  size_t same = rank == x->rank && !memcmp(dims, x->dims, rank * sizeof(size_t));
  if (same) {
    val v = *x;
    v.aliased = 1;
    return set_out(c, 0, &v);
  }
  nn_layer *l;
  int rc = new_layer(c, HETEE_NN_RESHAPE, x, NULL, rank, dims, &l);
  if (rc) return rc;
  return out_layer(c, l);
}

static int op_flatten(ctx *c) {
  val *x;
  int rc = get_in(c, 0, &x);
  if (rc || (rc = need_act(c, x, 0))) return rc;
  int64_t axis = attr_int(c->node, "axis", 1);
  if (axis != 1 && axis != -(int64_t)x->rank) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "axis=%lld (only axis=1: [N, ...] -> [N, D])", (long long)axis);
  }
  size_t d = 1;
  for (size_t i = 0; i < x->rank; i++) d *= x->dims[i];
  return reshape_to(c, x, 1, &d);
}

static int op_reshape(ctx *c) {
  val *x, *s;
  char s1[64];
  int rc = get_in(c, 0, &x);
  if (rc || (rc = get_in(c, 1, &s)) || (rc = need_int(c, s, "shape"))) return rc;
  if (attr_int(c->node, "allowzero", 0)) return node_err(c, HETEE_ERR_UNSUPPORTED, "allowzero=1");
  if (s->rank != 1 || s->count < 1 || s->count > MAX_CRANK) {
    return node_err(c, HETEE_ERR_SHAPE, "shape '%s' must be a vector of 1..%d entries", s->name, MAX_CRANK);
  }
  if (x->kind == VAL_FLOAT) {
    /* Reshape of a constant: plain numbers only. */
    val v = *x;
    size_t infer = SIZE_MAX, prod = 1;
    v.rank = s->count;
    for (size_t i = 0; i < s->count; i++) {
      int64_t e = s->iv[i];
      if (s->bat[i] || e < -1) return node_err(c, HETEE_ERR_SHAPE, "bad target shape for constant '%s'", x->name);
      if (e == -1) {
        if (infer != SIZE_MAX) return node_err(c, HETEE_ERR_SHAPE, "two -1 entries in shape '%s'", s->name);
        infer = i;
        continue;
      }
      v.dims[i] = e == 0 ? (i < x->rank ? x->dims[i] : 0) : (size_t)e;
      if (v.dims[i] && prod > HETEE_NN_MAX_ELEMENTS / v.dims[i]) return node_err(c, HETEE_ERR_LIMIT, "shape too large");
      prod *= v.dims[i];
    }
    if (infer != SIZE_MAX) v.dims[infer] = prod ? x->count / prod : 0;
    size_t total = 1;
    for (size_t i = 0; i < v.rank; i++) total *= v.dims[i];
    if (total != x->count) return node_err(c, HETEE_ERR_SHAPE, "cannot reshape constant '%s' of %zu values", x->name, x->count);
    return set_out(c, 0, &v);
  }
  if ((rc = need_act(c, x, 0))) return rc;
  size_t per = 1, dims[MAX_CRANK], prod = 1, infer = SIZE_MAX;
  for (size_t i = 0; i < x->rank; i++) per *= x->dims[i];
  SHAPE_ACT(s1, x);
  int first_is_batch = s->bat[0] || (s->iv[0] == 0);
  for (size_t i = 1; i < s->count; i++) {
    int64_t e = s->iv[i];
    if (s->bat[i]) {
      return node_err(c, HETEE_ERR_UNSUPPORTED, "shape '%s' moves the batch dimension (input '%s' %s)", s->name, x->name, s1);
    }
    if (e == -1) {
      if (infer != SIZE_MAX || (!first_is_batch && s->iv[0] == -1)) {
        return node_err(c, HETEE_ERR_SHAPE, "shape '%s' has two -1 entries", s->name);
      }
      infer = i;
      continue;
    }
    if (e < 0 || e > (int64_t)HETEE_NN_MAX_ELEMENTS) {
      return node_err(c, HETEE_ERR_SHAPE, "shape '%s' has entry %lld", s->name, (long long)e);
    }
    dims[i - 1] = e == 0 ? (i - 1 < x->rank ? x->dims[i - 1] : 0) : (size_t)e;
    if (dims[i - 1] && prod > HETEE_NN_MAX_ELEMENTS / dims[i - 1]) return node_err(c, HETEE_ERR_LIMIT, "shape too large");
    prod *= dims[i - 1];
  }
  if (!first_is_batch && s->iv[0] != -1) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "shape '%s' fixes the batch size to %lld (the first entry must be the "
                    "batch: x.size(0), 0 or -1)", s->name, (long long)s->iv[0]);
  }
  if (infer != SIZE_MAX) {
    if (prod == 0 || per % prod) {
      return node_err(c, HETEE_ERR_SHAPE, "cannot reshape input '%s' %s: %zu values per sample are not a multiple of %zu",
                      x->name, s1, per, prod);
    }
    dims[infer - 1] = per / prod;
    prod = per;
  }
  if (prod != per) {
    return node_err(c, HETEE_ERR_SHAPE, "cannot reshape input '%s' %s (%zu values per sample) to %zu values per sample",
                    x->name, s1, per, prod);
  }
  if (s->count < 2) return node_err(c, HETEE_ERR_UNSUPPORTED, "reshape to a rank-1 tensor mixes batch and features");
  return reshape_to(c, x, s->count - 1, dims);
}

static int op_pad(ctx *c) {
  val *x, *p = NULL, *cv = NULL;
  int64_t pads[2 * MAX_CRANK];
  int rc = get_in(c, 0, &x);
  if (rc || (rc = need_act(c, x, 0))) return rc;
  const Onnx__AttributeProto *mode = attr(c->node, "mode");
  if (mode && mode->has_s && !(mode->s.len == 8 && !memcmp(mode->s.data, "constant", 8))) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "mode '%.*s' (only constant)", (int)(mode->s.len > 32 ? 32 : mode->s.len),
                    (const char *)mode->s.data);
  }
  size_t r = x->rank + 1;
  if (c->opset < 11) return node_err(c, HETEE_ERR_UNSUPPORTED, "opset < 11");
  if ((rc = get_in(c, 1, &p)) || (rc = need_int(c, p, "pads"))) return rc;
  if (p->count != 2 * r) return node_err(c, HETEE_ERR_SHAPE, "pads '%s' has %zu entries; expected %zu", p->name, p->count, 2 * r);
  for (size_t i = 0; i < 2 * r; i++) {
    pads[i] = p->iv[i];
    if (p->bat[i] || pads[i] < 0 || pads[i] > 1024) return node_err(c, HETEE_ERR_UNSUPPORTED, "pads must be in 0..1024");
  }
  float value = 0.0f;
  if (in_name(c, 2)) {
    if ((rc = get_in(c, 2, &cv)) || (rc = need_float(c, cv, "constant_value"))) return rc;
    if (cv->count != 1) return node_err(c, HETEE_ERR_SHAPE, "constant_value must be a scalar");
    value = cv->f[0];
  }
  int any = 0;
  for (size_t i = 0; i < 2 * r; i++) any |= pads[i] != 0;
  if (!any) {
    val v = *x;
    v.aliased = 1;
    return set_out(c, 0, &v);
  }
  if (x->rank != 3 || pads[0] || pads[1] || pads[r] || pads[r + 1]) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "padding other than of H and W of an [N,C,H,W] tensor");
  }
  size_t od[3] = {x->dims[0], x->dims[1] + (size_t)pads[2] + (size_t)pads[r + 2],
                  x->dims[2] + (size_t)pads[3] + (size_t)pads[r + 3]};
  nn_layer *l;
  if ((rc = new_layer(c, HETEE_NN_PAD, x, NULL, 3, od, &l))) return rc;
  l->pads[0] = (size_t)pads[2];
  l->pads[1] = (size_t)pads[3];
  l->pads[2] = (size_t)pads[r + 2];
  l->pads[3] = (size_t)pads[r + 3];
  l->alpha = value;
  return out_layer(c, l);
}

static int op_softmax(ctx *c) {
  val *x;
  nn_layer *l;
  int rc = get_in(c, 0, &x);
  if (rc || (rc = need_act(c, x, 0))) return rc;
  int64_t axis = attr_int(c->node, "axis", c->opset >= 13 ? -1 : 1);
  if (x->rank != 1 || (axis != 1 && axis != -1)) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "softmax only over the features of an [N,D] tensor (axis 1)");
  }
  if ((rc = new_layer(c, HETEE_NN_SOFTMAX, x, NULL, 1, x->dims, &l))) return rc;
  return out_layer(c, l);
}

/* ---------------------------------------------- import-time shape arithmetic */

static int new_int(ctx *c, size_t rank, const size_t *dims, val *v) {
  memset(v, 0, sizeof *v);
  v->kind = VAL_INT;
  v->rank = rank;
  memcpy(v->dims, dims, rank * sizeof(size_t));
  v->count = 1;
  for (size_t i = 0; i < rank; i++) v->count *= dims[i];
  if (v->count > 4096) return node_err(c, HETEE_ERR_LIMIT, "shape constant larger than 4096 entries");
  v->iv = pool_alloc(c, v->count, sizeof(int64_t));
  v->bat = pool_alloc(c, v->count, 1);
  if (!v->iv || !v->bat) return hetee_error(HETEE_ERR_NOMEM, "ONNX import");
  return 0;
}

static int op_constant(ctx *c) {
  const Onnx__AttributeProto *a;
  val v;
  int rc;
  if ((a = attr(c->node, "value")) && a->t) {
    if ((rc = tensor_to_val(c, a->t, c->node->output[0], &v))) return node_err(c, rc, "%s", hetee_last_error());
    return set_out(c, 0, &v);
  }
  if ((a = attr(c->node, "value_float")) && a->has_f) {
    memset(&v, 0, sizeof v);
    v.kind = VAL_FLOAT;
    v.count = 1;
    if (!(v.f = pool_alloc(c, 1, sizeof(float)))) return hetee_error(HETEE_ERR_NOMEM, "Constant");
    v.f[0] = a->f;
    return set_out(c, 0, &v);
  }
  if ((a = attr(c->node, "value_int")) && a->has_i) {
    if ((rc = new_int(c, 0, NULL, &v))) return rc;
    v.iv[0] = a->i;
    return set_out(c, 0, &v);
  }
  if ((a = attr(c->node, "value_ints"))) {
    size_t d = a->n_ints;
    if ((rc = new_int(c, 1, &d, &v))) return rc;
    memcpy(v.iv, a->ints, d * sizeof(int64_t));
    return set_out(c, 0, &v);
  }
  return node_err(c, HETEE_ERR_UNSUPPORTED, "only value, value_float, value_int, value_ints constants");
}

static int op_shape(ctx *c) {
  val *x, v;
  int rc = get_in(c, 0, &x);
  if (rc) return rc;
  size_t full = x->kind == VAL_ACT ? x->rank + 1 : x->rank;
  int64_t start = attr_int(c->node, "start", 0), end = attr_int(c->node, "end", (int64_t)full);
  if (start < 0) start += (int64_t)full;
  if (end < 0) end += (int64_t)full;
  if (start < 0) start = 0;
  if (end > (int64_t)full) end = (int64_t)full;
  size_t n = end > start ? (size_t)(end - start) : 0;
  if ((rc = new_int(c, 1, &n, &v))) return rc;
  for (size_t i = 0; i < n; i++) {
    size_t d = (size_t)start + i;
    if (x->kind == VAL_ACT) {
      v.bat[i] = d == 0;
      v.iv[i] = d == 0 ? -1 : (int64_t)x->dims[d - 1];
    } else {
      v.iv[i] = (int64_t)x->dims[d];
    }
  }
  return set_out(c, 0, &v);
}

static int op_gather(ctx *c) {
  val *x, *idx, v;
  int rc = get_in(c, 0, &x);
  if (rc || (rc = get_in(c, 1, &idx))) return rc;
  if (x->kind != VAL_INT || x->rank != 1 || idx->kind != VAL_INT || idx->rank > 1 || attr_int(c->node, "axis", 0) != 0) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "Gather is supported only on 1-D shape constants (axis 0)");
  }
  if ((rc = new_int(c, idx->rank, idx->dims, &v))) return rc;
  for (size_t i = 0; i < idx->count; i++) {
    int64_t k = idx->iv[i];
    if (k < 0) k += (int64_t)x->count;
    if (k < 0 || k >= (int64_t)x->count) return node_err(c, HETEE_ERR_SHAPE, "index %lld out of range", (long long)idx->iv[i]);
    v.iv[i] = x->iv[k];
    v.bat[i] = x->bat[k];
  }
  return set_out(c, 0, &v);
}

/* Unsqueeze / Squeeze of constants: only the dims change. */
static int op_squeeze(ctx *c, int unsqueeze) {
  val *x, *ax = NULL, v;
  int64_t axes[MAX_CRANK];
  size_t n_axes = 0;
  int rc = get_in(c, 0, &x);
  if (rc) return rc;
  if (x->kind == VAL_ACT) {
    return node_err(c, HETEE_ERR_UNSUPPORTED, "%s of an activation (only of shape constants)", c->node->op_type);
  }
  if (c->opset >= 13) {
    if (in_name(c, 1)) {
      if ((rc = get_in(c, 1, &ax)) || (rc = need_int(c, ax, "axes"))) return rc;
      if (ax->count > MAX_CRANK) return node_err(c, HETEE_ERR_LIMIT, "too many axes");
      for (size_t i = 0; i < ax->count; i++) axes[n_axes++] = ax->iv[i];
    }
  } else {
    const Onnx__AttributeProto *a = attr(c->node, "axes");
    if (a) {
      if (a->n_ints > MAX_CRANK) return node_err(c, HETEE_ERR_LIMIT, "too many axes");
      for (size_t i = 0; i < a->n_ints; i++) axes[n_axes++] = a->ints[i];
    }
  }
  v = *x;
  if (unsqueeze) {
    size_t r = x->rank + n_axes, src = 0;
    unsigned char mark[MAX_CRANK] = {0};
    if (n_axes == 0 || r > MAX_CRANK) return node_err(c, HETEE_ERR_SHAPE, "bad axes");
    for (size_t i = 0; i < n_axes; i++) {
      size_t a = 0;
      if ((rc = norm_axis(c, axes[i], r, &a))) return rc;
      if (mark[a]) return node_err(c, HETEE_ERR_SHAPE, "repeated axis");
      mark[a] = 1;
    }
    v.rank = r;
    for (size_t i = 0; i < r; i++) v.dims[i] = mark[i] ? 1 : x->dims[src++];
  } else {
    unsigned char mark[MAX_CRANK] = {0};
    for (size_t i = 0; i < n_axes; i++) {
      size_t a = 0;
      if ((rc = norm_axis(c, axes[i], x->rank, &a))) return rc;
      if (x->dims[a] != 1) return node_err(c, HETEE_ERR_SHAPE, "cannot squeeze axis %zu of size %zu", a, x->dims[a]);
      mark[a] = 1;
    }
    v.rank = 0;
    for (size_t i = 0; i < x->rank; i++) {
      if (!(n_axes ? mark[i] : x->dims[i] == 1)) v.dims[v.rank++] = x->dims[i];
    }
  }
  return set_out(c, 0, &v);
}

static int op_concat(ctx *c) {
  val v, *parts[64];
  size_t n = 0;
  int rc;
  if (c->node->n_input < 1 || c->node->n_input > 64) return node_err(c, HETEE_ERR_UNSUPPORTED, "1..64 inputs");
  for (size_t i = 0; i < c->node->n_input; i++) {
    if ((rc = get_in(c, i, &parts[i]))) return rc;
    if (parts[i]->kind != VAL_INT || parts[i]->rank != 1) {
      return node_err(c, HETEE_ERR_UNSUPPORTED, "Concat is supported only on 1-D shape constants (input '%s')",
                      parts[i]->name);
    }
    n += parts[i]->count;
  }
  if ((rc = new_int(c, 1, &n, &v))) return rc;
  size_t o = 0;
  for (size_t i = 0; i < c->node->n_input; i++) {
    memcpy(v.iv + o, parts[i]->iv, parts[i]->count * sizeof(int64_t));
    memcpy(v.bat + o, parts[i]->bat, parts[i]->count);
    o += parts[i]->count;
  }
  return set_out(c, 0, &v);
}

static int op_cast(ctx *c) {
  val *x;
  int rc = get_in(c, 0, &x);
  if (rc) return rc;
  int64_t to = attr_int(c->node, "to", 0);
  int to_float = to == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, to_int =
      to == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || to == ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
  if (x->kind == VAL_ACT && to_float) return op_alias(c);
  if (x->kind == VAL_INT && to_int) return op_alias(c);
  if (x->kind == VAL_FLOAT && to_float) return op_alias(c);
  return node_err(c, HETEE_ERR_UNSUPPORTED, "Cast to type %lld of '%s'", (long long)to, x->name);
}

/* ----------------------------------------------------------------- driver */

typedef struct {
  const char *op;
  int (*fn)(ctx *);
} op_entry;

static int do_gemm(ctx *c) { return op_gemm(c, 0); }
static int do_matmul(ctx *c) { return op_gemm(c, 1); }
static int do_add(ctx *c) { return op_binary(c, 0); }
static int do_mul(ctx *c) { return op_binary(c, 1); }
static int do_relu(ctx *c) { return op_unary(c, HETEE_NN_RELU); }
static int do_leaky(ctx *c) { return op_unary(c, HETEE_NN_LEAKY_RELU); }
static int do_sigmoid(ctx *c) { return op_unary(c, HETEE_NN_SIGMOID); }
static int do_tanh(ctx *c) { return op_unary(c, HETEE_NN_TANH); }
static int do_maxpool(ctx *c) { return op_pool(c, HETEE_NN_MAXPOOL); }
static int do_avgpool(ctx *c) { return op_pool(c, HETEE_NN_AVGPOOL); }
static int do_gap(ctx *c) { return op_pool(c, HETEE_NN_GLOBAL_AVGPOOL); }
static int do_unsqueeze(ctx *c) { return op_squeeze(c, 1); }
static int do_squeeze(ctx *c) { return op_squeeze(c, 0); }

static const op_entry OPS[] = {
    {"Gemm", do_gemm},           {"MatMul", do_matmul},
    {"Add", do_add},             {"Mul", do_mul},
    {"Pow", op_pow},             {"Conv", op_conv},
    {"Relu", do_relu},           {"LeakyRelu", do_leaky},
    {"Sigmoid", do_sigmoid},     {"Tanh", do_tanh},
    {"MaxPool", do_maxpool},     {"AveragePool", do_avgpool},
    {"GlobalAveragePool", do_gap}, {"BatchNormalization", op_batchnorm},
    {"Flatten", op_flatten},     {"Reshape", op_reshape},
    {"Pad", op_pad},             {"Dropout", op_alias},
    {"Identity", op_alias},      {"Softmax", op_softmax},
    {"Constant", op_constant},   {"Shape", op_shape},
    {"Gather", op_gather},       {"Unsqueeze", do_unsqueeze},
    {"Squeeze", do_squeeze},     {"Concat", op_concat},
    {"Cast", op_cast},
};

static int import_input(ctx *c) {
  const Onnx__GraphProto *g = c->g;
  const Onnx__ValueInfoProto *in = NULL;
  for (size_t i = 0; i < g->n_input; i++) {
    if (!g->input[i]->name || find_val(c, g->input[i]->name)) continue; /* initializers listed as inputs */
    if (in) return hetee_error(HETEE_ERR_UNSUPPORTED, "graph has several inputs ('%s', '%s'); one is supported", in->name,
                               g->input[i]->name);
    in = g->input[i];
  }
  if (!in) return hetee_error(HETEE_ERR_FORMAT, "graph has no input");
  const Onnx__TypeProto *t = in->type;
  if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type || !t->tensor_type->shape) {
    return hetee_error(HETEE_ERR_FORMAT, "graph input '%s' has no tensor shape", in->name);
  }
  if (t->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
    return hetee_error(HETEE_ERR_UNSUPPORTED, "graph input '%s' has element type %d (only float)", in->name,
                       t->tensor_type->elem_type);
  }
  const Onnx__TensorShapeProto *s = t->tensor_type->shape;
  if (s->n_dim < 2 || s->n_dim > HETEE_NN_MAX_RANK + 1) {
    return hetee_error(HETEE_ERR_UNSUPPORTED, "graph input '%s' has rank %zu (2..%d: a batch dimension, then 1..%d)",
                       in->name, s->n_dim, HETEE_NN_MAX_RANK + 1, HETEE_NN_MAX_RANK);
  }
  val v;
  memset(&v, 0, sizeof v);
  v.kind = VAL_ACT;
  v.layer = -1;
  v.name = in->name;
  v.rank = s->n_dim - 1;
  for (size_t i = 1; i < s->n_dim; i++) {
    const Onnx__TensorShapeProto__Dimension *d = s->dim[i];
    if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || d->dim_value < 1 ||
        d->dim_value > (int64_t)HETEE_NN_MAX_ELEMENTS) {
      return hetee_error(HETEE_ERR_UNSUPPORTED, "graph input '%s': dimension %zu must be a fixed positive size (only "
                         "the batch dimension may be dynamic)", in->name, i);
    }
    v.dims[i - 1] = (size_t)d->dim_value;
  }
  c->m->in_rank = v.rank;
  memcpy(c->m->in_dims, v.dims, v.rank * sizeof(size_t));
  int rc = nn_checked_count(v.dims, v.rank, HETEE_NN_MAX_SAMPLE, "graph input", &c->m->in_size);
  if (rc) return rc;
  return add_val(c, &v);
}

static int import_graph(ctx *c, const Onnx__ModelProto *mp) {
  int rc;
  const Onnx__GraphProto *g = mp->graph;
  if (!g) return hetee_error(HETEE_ERR_FORMAT, "ONNX model has no graph");
  c->g = g;
  c->opset = -1;
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
    if (!o->domain || !o->domain[0] || !strcmp(o->domain, "ai.onnx")) c->opset = o->has_version ? o->version : -1;
  }
  if (c->opset < 11 || c->opset > 17) {
    return hetee_error(HETEE_ERR_UNSUPPORTED, "ONNX opset %lld not supported (11..17)", (long long)c->opset);
  }
  if (g->n_node > HETEE_NN_MAX_NODES) {
    return hetee_error(HETEE_ERR_LIMIT, "graph has %zu nodes (limit %d)", g->n_node, HETEE_NN_MAX_NODES);
  }
  if (g->n_sparse_initializer) return hetee_error(HETEE_ERR_UNSUPPORTED, "sparse initializers are not supported");
  for (size_t i = 0; i < mp->n_metadata_props; i++) {
    const Onnx__StringStringEntryProto *e = mp->metadata_props[i];
    if (!e->key || !e->value) continue;
    char **nk = realloc(c->m->meta_keys, (c->m->n_meta + 1) * sizeof *nk);
    if (nk) c->m->meta_keys = nk;
    char **nv = realloc(c->m->meta_values, (c->m->n_meta + 1) * sizeof *nv);
    if (nv) c->m->meta_values = nv;
    if (!nk || !nv) return hetee_error(HETEE_ERR_NOMEM, "metadata");
    c->m->meta_keys[c->m->n_meta] = strdup(e->key);
    c->m->meta_values[c->m->n_meta] = strdup(e->value);
    c->m->n_meta++;
    if (!c->m->meta_keys[c->m->n_meta - 1] || !c->m->meta_values[c->m->n_meta - 1]) {
      return hetee_error(HETEE_ERR_NOMEM, "metadata");
    }
  }
  const char *scale = hetee_nn_model_metadata(c->m, "hetee.input_scale");
  if (scale && strcmp(scale, "1/255")) {
    char *end;
    double v = strtod(scale, &end);
    if (end == scale || *end || !(v > 0.0) || v > 1e6) {
      return hetee_error(HETEE_ERR_FORMAT, "metadata hetee.input_scale '%s' is not a positive number or 1/255", scale);
    }
  }
  for (size_t i = 0; i < g->n_initializer; i++) {
    val v;
    const char *nm = g->initializer[i]->name;
    if (!nm || !nm[0]) return hetee_error(HETEE_ERR_FORMAT, "initializer %zu has no name", i);
    if ((rc = tensor_to_val(c, g->initializer[i], nm, &v)) || (rc = add_val(c, &v))) return rc;
  }
  if ((rc = import_input(c))) return rc;
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    c->node = n;
    if (!n->op_type) return hetee_error(HETEE_ERR_FORMAT, "node %zu has no op_type", i);
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx")) {
      return hetee_error(HETEE_ERR_UNSUPPORTED, "unsupported operator '%s' of domain '%s' in node '%s'", n->op_type,
                         n->domain, node_label(n));
    }
    const op_entry *e = NULL;
    for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++) {
      if (!strcmp(OPS[k].op, n->op_type)) e = &OPS[k];
    }
    if (!e) {
      return hetee_error(HETEE_ERR_UNSUPPORTED, "unsupported operator '%s' in node '%s' (supported: %s)", n->op_type,
                         node_label(n), SUPPORTED);
    }
    if (n->n_output < 1) return node_err(c, HETEE_ERR_FORMAT, "node has no output");
    if ((rc = e->fn(c))) return rc;
  }
  if (g->n_output != 1 || !g->output[0]->name) {
    return hetee_error(HETEE_ERR_UNSUPPORTED, "graph has %zu outputs (one is supported)", g->n_output);
  }
  val *out = find_val(c, g->output[0]->name);
  if (!out) return hetee_error(HETEE_ERR_FORMAT, "graph output '%s' is not produced by any node", g->output[0]->name);
  if (out->kind != VAL_ACT || out->layer < 0) {
    return hetee_error(HETEE_ERR_UNSUPPORTED, "graph output '%s' does not depend on the input through any layer",
                       out->name);
  }
  if ((size_t)out->layer + 1 != c->m->n_layers) {
    return hetee_error(HETEE_ERR_UNSUPPORTED, "graph output '%s' is not produced by the last layer", out->name);
  }
  for (size_t i = 0; i + 1 < c->m->n_layers; i++) {
    if (c->m->layers[i].kind == HETEE_NN_SOFTMAX) {
      return hetee_error(HETEE_ERR_UNSUPPORTED, "node '%s' (Softmax): Softmax is supported only as the last node",
                         c->m->layers[i].name);
    }
  }
  /* A declared output shape must agree with the inferred one. */
  const Onnx__TypeProto *t = g->output[0]->type;
  if (t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && t->tensor_type && t->tensor_type->shape) {
    const Onnx__TensorShapeProto *s = t->tensor_type->shape;
    int ok = s->n_dim == out->rank + 1;
    for (size_t i = 1; ok && i < s->n_dim; i++) {
      if (s->dim[i]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
        ok = s->dim[i]->dim_value == (int64_t)out->dims[i - 1];
      }
    }
    if (!ok) {
      char s1[64];
      SHAPE_ACT(s1, out);
      return hetee_error(HETEE_ERR_SHAPE, "graph output '%s' is declared with another shape than the inferred %s",
                         out->name, s1);
    }
  }
  return 0;
}

int hetee_nn_model_from_memory(const uint8_t *buf, size_t len, hetee_nn_model **out) {
  ctx c;
  int rc;
  if (!out || (!buf && len)) return hetee_error(HETEE_ERR_INVALID_ARG, "hetee_nn_model_from_memory: NULL");
  *out = NULL;
  if (len > HETEE_NN_MAX_ONNX_BYTES) {
    return hetee_error(HETEE_ERR_LIMIT, "ONNX model larger than %zu bytes", HETEE_NN_MAX_ONNX_BYTES);
  }
  memset(&c, 0, sizeof c);
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
  if (!mp) return hetee_error(HETEE_ERR_FORMAT, "not an ONNX model (protobuf decoding failed)");
  c.m = calloc(1, sizeof *c.m);
  if (!c.m) {
    rc = hetee_error(HETEE_ERR_NOMEM, "model");
    goto err;
  }
  rc = import_graph(&c, mp);
  if (rc) goto err;
  if (c.m->n_layers == 0) {
    rc = hetee_error(HETEE_ERR_UNSUPPORTED, "graph has no layers");
    goto err;
  }
  *out = c.m;
  c.m = NULL;
err:
  hetee_nn_model_free(c.m);
  for (size_t i = 0; i < c.n_pool; i++) free(c.pool[i]);
  free(c.pool);
  free(c.vals);
  onnx__model_proto__free_unpacked(mp, NULL);
  return rc;
}

int hetee_nn_model_load(const char *path, hetee_nn_model **out) {
  uint8_t *buf = NULL;
  size_t len = 0;
  if (!path || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "hetee_nn_model_load: NULL");
  *out = NULL;
  int rc = nn_read_file(path, HETEE_NN_MAX_ONNX_BYTES, &buf, &len);
  if (rc) return rc;
  rc = hetee_nn_model_from_memory(buf, len, out);
  free(buf);
  if (rc) {
    char detail[1024];
    snprintf(detail, sizeof detail, "%s", hetee_last_error());
    return hetee_error(rc, "%s: %s", path, detail);
  }
  return 0;
}

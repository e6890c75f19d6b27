/*
 * onnx_builder.h — test helper building small ONNX models in C through the
 * protobuf-c structures generated from Debian's onnx.proto, for graphs an
 * exporter would never write (bad opsets, unsupported attributes, short
 * initializers). Input "x" is [N,d] (d > 0) or [N,2,5,5] (d == 0); the graph
 * output is the last node's output. Every allocation goes to an arena freed
 * by ob_free.
 */
#ifndef HETEE_TEST_ONNX_BUILDER_H
#define HETEE_TEST_ONNX_BUILDER_H

#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"

typedef struct onnx_builder {
  Onnx__ModelProto model;
  Onnx__GraphProto graph;
  Onnx__OperatorSetIdProto opset, *opsets[1];
  void *arena[512];
  size_t n_arena;
  Onnx__NodeProto *last;
} onnx_builder;

static inline void *ob_alloc(onnx_builder *b, size_t n) {
  void *p = calloc(1, n ? n : 1);
  if (!p || b->n_arena == sizeof b->arena / sizeof b->arena[0]) abort();
  b->arena[b->n_arena++] = p;
  return p;
}

static inline char *ob_str(onnx_builder *b, const char *s) {
  char *p = ob_alloc(b, strlen(s) + 1);
  memcpy(p, s, strlen(s) + 1);
  return p;
}

/* Appends p to a (n, array) pair stored in the arena. */
#define OB_PUSH(b, n, arr, p)                                                      \
  do {                                                                             \
    void **na_ = ob_alloc((b), ((n) + 1) * sizeof(void *));                        \
    if ((n)) memcpy(na_, (arr), (n) * sizeof(void *));                             \
    (arr) = (void *)na_;                                                           \
    (arr)[(n)++] = (p);                                                            \
  } while (0)

static inline Onnx__ValueInfoProto *ob_value_info(onnx_builder *b, const char *name, size_t rank,
                                                  const int64_t *dims) {
  Onnx__ValueInfoProto *v = ob_alloc(b, sizeof *v);
  onnx__value_info_proto__init(v);
  v->name = ob_str(b, name);
  Onnx__TypeProto *t = ob_alloc(b, sizeof *t);
  onnx__type_proto__init(t);
  Onnx__TypeProto__Tensor *tt = ob_alloc(b, sizeof *tt);
  onnx__type_proto__tensor__init(tt);
  tt->has_elem_type = 1;
  tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  Onnx__TensorShapeProto *s = ob_alloc(b, sizeof *s);
  onnx__tensor_shape_proto__init(s);
  for (size_t i = 0; i < rank; i++) {
    Onnx__TensorShapeProto__Dimension *d = ob_alloc(b, sizeof *d);
    onnx__tensor_shape_proto__dimension__init(d);
    if (dims[i] < 0) {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      d->dim_param = ob_str(b, "N");
    } else {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      d->dim_value = dims[i];
    }
    OB_PUSH(b, s->n_dim, s->dim, d);
  }
  tt->shape = s;
  t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  t->tensor_type = tt;
  v->type = t;
  return v;
}

static inline onnx_builder *ob_new(int64_t opset, int64_t d) {
  onnx_builder *b = calloc(1, sizeof *b);
  if (!b) abort();
  onnx__model_proto__init(&b->model);
  onnx__graph_proto__init(&b->graph);
  onnx__operator_set_id_proto__init(&b->opset);
  b->opset.domain = ob_str(b, "");
  b->opset.has_version = 1;
  b->opset.version = opset;
  b->opsets[0] = &b->opset;
  b->model.has_ir_version = 1;
  b->model.ir_version = 8;
  b->model.n_opset_import = 1;
  b->model.opset_import = b->opsets;
  b->model.graph = &b->graph;
  b->graph.name = ob_str(b, "test");
  static const int64_t img[4] = {-1, 2, 5, 5};
  int64_t vec[2] = {-1, d};
  OB_PUSH(b, b->graph.n_input, b->graph.input, ob_value_info(b, "x", d > 0 ? 2 : 4, d > 0 ? vec : img));
  return b;
}

/* Float initializer of the given dims holding n values (all 0.5). */
static inline void ob_init_n(onnx_builder *b, const char *name, size_t rank, const int64_t *dims, size_t n) {
  Onnx__TensorProto *t = ob_alloc(b, sizeof *t);
  onnx__tensor_proto__init(t);
  t->name = ob_str(b, name);
  t->has_data_type = 1;
  t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  t->n_dims = rank;
  t->dims = ob_alloc(b, rank * sizeof(int64_t));
  if (rank) memcpy(t->dims, dims, rank * sizeof(int64_t));
  t->n_float_data = n;
  t->float_data = ob_alloc(b, n * sizeof(float));
  for (size_t i = 0; i < n; i++) t->float_data[i] = 0.5f;
  OB_PUSH(b, b->graph.n_initializer, b->graph.initializer, t);
}

/* int64 initializer (shapes, pads). */
static inline void ob_init_i64(onnx_builder *b, const char *name, size_t n, const int64_t *v) {
  Onnx__TensorProto *t = ob_alloc(b, sizeof *t);
  onnx__tensor_proto__init(t);
  t->name = ob_str(b, name);
  t->has_data_type = 1;
  t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
  t->n_dims = 1;
  t->dims = ob_alloc(b, sizeof(int64_t));
  t->dims[0] = (int64_t)n;
  t->n_int64_data = n;
  t->int64_data = ob_alloc(b, n * sizeof(int64_t));
  memcpy(t->int64_data, v, n * sizeof(int64_t));
  OB_PUSH(b, b->graph.n_initializer, b->graph.initializer, t);
}

static inline void ob_init(onnx_builder *b, const char *name, size_t rank, const int64_t *dims) {
  size_t n = 1;
  for (size_t i = 0; i < rank; i++) n *= (size_t)dims[i];
  ob_init_n(b, name, rank, dims, n);
}

static inline void ob_node(onnx_builder *b, const char *op, const char *name, const char *in0, const char *in1,
                           const char *in2, const char *out) {
  Onnx__NodeProto *n = ob_alloc(b, sizeof *n);
  onnx__node_proto__init(n);
  n->op_type = ob_str(b, op);
  n->name = ob_str(b, name);
  const char *ins[3] = {in0, in1, in2};
  for (int i = 0; i < 3 && ins[i]; i++) OB_PUSH(b, n->n_input, n->input, ob_str(b, ins[i]));
  OB_PUSH(b, n->n_output, n->output, ob_str(b, out));
  OB_PUSH(b, b->graph.n_node, b->graph.node, n);
  b->last = n;
}

/* BatchNormalization of `ch` channels from in to out, named "bn", with the
 * initializers "g", "bb", "mu" and "var" (all 0.5 until randomized: keep
 * "var" positive after et_randomize). */
static inline void ob_batchnorm(onnx_builder *b, const char *in, const char *out, int64_t ch) {
  ob_init(b, "g", 1, (int64_t[]){ch});
  ob_init(b, "bb", 1, (int64_t[]){ch});
  ob_init(b, "mu", 1, (int64_t[]){ch});
  ob_init(b, "var", 1, (int64_t[]){ch});
  ob_node(b, "BatchNormalization", "bn", in, "g", "bb", out);
  OB_PUSH(b, b->last->n_input, b->last->input, ob_str(b, "mu"));
  OB_PUSH(b, b->last->n_input, b->last->input, ob_str(b, "var"));
}

static inline Onnx__AttributeProto *ob_attr(onnx_builder *b, const char *name) {
  Onnx__AttributeProto *a = ob_alloc(b, sizeof *a);
  onnx__attribute_proto__init(a);
  a->name = ob_str(b, name);
  a->has_type = 1;
  OB_PUSH(b, b->last->n_attribute, b->last->attribute, a);
  return a;
}

static inline void ob_attr_int(onnx_builder *b, const char *name, int64_t v) {
  Onnx__AttributeProto *a = ob_attr(b, name);
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
  a->has_i = 1;
  a->i = v;
}

static inline void ob_attr_ints(onnx_builder *b, const char *name, size_t n, const int64_t *v) {
  Onnx__AttributeProto *a = ob_attr(b, name);
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  a->n_ints = n;
  a->ints = ob_alloc(b, n * sizeof(int64_t));
  memcpy(a->ints, v, n * sizeof(int64_t));
}

/* Serializes the model; the graph output is the last node's first output. */
static inline int ob_pack(onnx_builder *b, uint8_t **buf, size_t *len) {
  if (b->last && b->graph.n_output == 0) {
    Onnx__ValueInfoProto *o = ob_alloc(b, sizeof *o);
    onnx__value_info_proto__init(o);
    o->name = b->last->output[0];
    OB_PUSH(b, b->graph.n_output, b->graph.output, o);
  }
  *len = onnx__model_proto__get_packed_size(&b->model);
  *buf = malloc(*len ? *len : 1);
  if (!*buf) return -1;
  onnx__model_proto__pack(&b->model, *buf);
  return 0;
}

static inline void ob_free(onnx_builder *b) {
  if (!b) return;
  for (size_t i = 0; i < b->n_arena; i++) free(b->arena[i]);
  free(b);
}

#endif

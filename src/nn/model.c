/*
 * model.c — hetee's graph representation of a network: the model object,
 * its layer list (topologically ordered; each layer names the earlier
 * layers it reads), metadata, read-only accessors and freeing. The ONNX
 * importer (onnx_import.c) is the only producer of models.
 */
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

static const char *const KIND_NAMES[] = {
    [HETEE_NN_DENSE] = "dense",         [HETEE_NN_CONV] = "conv",
    [HETEE_NN_AFFINE] = "affine",       [HETEE_NN_ADD_CONST] = "add_const",
    [HETEE_NN_MUL_CONST] = "mul_const", [HETEE_NN_ADD] = "add",
    [HETEE_NN_MUL] = "mul",             [HETEE_NN_SQUARE] = "square",
    [HETEE_NN_RELU] = "relu",           [HETEE_NN_LEAKY_RELU] = "leaky_relu",
    [HETEE_NN_SIGMOID] = "sigmoid",     [HETEE_NN_TANH] = "tanh",
    [HETEE_NN_MAXPOOL] = "maxpool",     [HETEE_NN_AVGPOOL] = "avgpool",
    [HETEE_NN_GLOBAL_AVGPOOL] = "global_avgpool", [HETEE_NN_PAD] = "pad",
    [HETEE_NN_RESHAPE] = "reshape",     [HETEE_NN_SOFTMAX] = "softmax",
};

const char *hetee_nn_kind_name(hetee_nn_kind kind) {
  if ((int)kind <= 0 || (size_t)kind >= sizeof KIND_NAMES / sizeof KIND_NAMES[0] || !KIND_NAMES[kind]) return "?";
  return KIND_NAMES[kind];
}

void hetee_nn_model_free(hetee_nn_model *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n_layers; i++) {
    free(m->layers[i].name);
    free(m->layers[i].weight);
    free(m->layers[i].bias);
  }
  free(m->layers);
  for (size_t i = 0; i < m->n_meta; i++) {
    free(m->meta_keys[i]);
    free(m->meta_values[i]);
  }
  free(m->meta_keys);
  free(m->meta_values);
  free(m);
}

size_t hetee_nn_model_num_layers(const hetee_nn_model *m) { return m ? m->n_layers : 0; }

int hetee_nn_model_layer(const hetee_nn_model *m, size_t i, hetee_nn_layer_info *out) {
  if (!m || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "hetee_nn_model_layer: NULL");
  if (i >= m->n_layers) {
    return hetee_error(HETEE_ERR_INVALID_ARG, "layer %zu does not exist (model has %zu)", i, m->n_layers);
  }
  const nn_layer *l = &m->layers[i];
  memset(out, 0, sizeof *out);
  out->kind = l->kind;
  out->name = l->name;
  out->onnx_ops = l->onnx_ops;
  out->n_inputs = l->n_inputs;
  out->inputs[0] = l->inputs[0];
  out->inputs[1] = l->inputs[1];
  out->in_rank = l->in_rank;
  memcpy(out->in_dims, l->in_dims, sizeof l->in_dims);
  out->out_rank = l->out_rank;
  memcpy(out->out_dims, l->out_dims, sizeof l->out_dims);
  out->weight = l->weight;
  out->weight_len = l->weight_len;
  out->bias = l->bias;
  out->bias_len = l->bias_len;
  memcpy(out->kernel, l->kernel, sizeof l->kernel);
  memcpy(out->stride, l->stride, sizeof l->stride);
  memcpy(out->pads, l->pads, sizeof l->pads);
  out->alpha = l->alpha;
  out->count_include_pad = l->count_include_pad;
  return 0;
}

size_t hetee_nn_model_input_size(const hetee_nn_model *m) { return m ? m->in_size : 0; }

size_t hetee_nn_model_output_size(const hetee_nn_model *m) {
  return m && m->n_layers ? m->layers[m->n_layers - 1].out_size : 0;
}

size_t hetee_nn_model_input_shape(const hetee_nn_model *m, size_t dims[HETEE_NN_MAX_RANK]) {
  if (!m) return 0;
  if (dims) memcpy(dims, m->in_dims, m->in_rank * sizeof *dims);
  return m->in_rank;
}

const char *hetee_nn_model_metadata(const hetee_nn_model *m, const char *key) {
  if (!m || !key) return NULL;
  for (size_t i = 0; i < m->n_meta; i++) {
    if (!strcmp(m->meta_keys[i], key)) return m->meta_values[i];
  }
  return NULL;
}

double hetee_nn_model_input_scale(const hetee_nn_model *m) {
  const char *s = hetee_nn_model_metadata(m, "hetee.input_scale");
  if (!s) return 1.0;
  if (!strcmp(s, "1/255")) return 1.0 / 255.0;
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end || !(v > 0.0) || v > 1e6) return 1.0;
  return v;
}

/*
 * nn_internal.h — private declarations shared by the files of src/nn: the
 * layout of a model and of a loaded data array, file reading, gzip
 * inflation, and the IDX / .npy parsers. Not installed.
 */
#ifndef HETEE_NN_INTERNAL_H
#define HETEE_NN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "hetee/nn.h"

typedef struct nn_layer {
  hetee_nn_kind kind;
  char *name;
  char onnx_ops[96];
  int n_inputs;
  int inputs[2];
  size_t in_rank, in_dims[HETEE_NN_MAX_RANK], in_size;
  size_t out_rank, out_dims[HETEE_NN_MAX_RANK], out_size;
  float *weight;
  size_t weight_len;
  float *bias;
  size_t bias_len;
  size_t kernel[2], stride[2], pads[4];
  float alpha;
  int count_include_pad;
} nn_layer;

struct hetee_nn_model {
  nn_layer *layers;
  size_t n_layers, cap_layers;
  size_t in_rank, in_dims[HETEE_NN_MAX_RANK], in_size;
  size_t n_meta;
  char **meta_keys, **meta_values;
};

struct hetee_nn_data {
  hetee_nn_dtype dtype;
  size_t rank;
  size_t dims[HETEE_NN_MAX_RANK];
  size_t count;
  float *values;
};

/* Product of dims with overflow and limit checks: HETEE_ERR_LIMIT when the
 * product exceeds `limit` (names `what` in the detail). */
int nn_checked_count(const size_t *dims, size_t rank, size_t limit, const char *what, size_t *out);

/* Reads a whole file (at most `limit` bytes) into a malloc'd buffer. */
int nn_read_file(const char *path, size_t limit, uint8_t **buf, size_t *len);

/* Inflates gzip data (RFC 1952, possibly multi-member) into a malloc'd
 * buffer of at most `limit` bytes. */
int nn_gunzip(const uint8_t *in, size_t in_len, size_t limit, uint8_t **out, size_t *out_len);

/* Allocates a data object of the given type and shape (values zeroed). */
int nn_data_new(hetee_nn_dtype dtype, size_t rank, const size_t *dims, hetee_nn_data **out);

/* Parsers of already decompressed bytes. */
int nn_idx_parse(const uint8_t *buf, size_t len, hetee_nn_data **out);
int nn_npy_parse(const uint8_t *buf, size_t len, hetee_nn_data **out);

/* Reference kernels (engine.c): run layer l on batch inputs a (and b). */
void nn_layer_run(const nn_layer *l, const float *a, const float *b, size_t batch, float *y);

#endif

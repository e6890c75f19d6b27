/*
 * hetee/nn.h — the model layer: hetee's own graph of a neural network,
 * imported from ONNX, a plaintext reference engine that runs it in floating
 * point, and loaders for the data it runs on (IDX and .npy files).
 *
 * The reference engine is the ground truth every encrypted result is tested
 * against: it is deterministic (same inputs, same bits, whatever the thread
 * count), accumulates dot products in double precision, and exposes the
 * output of every layer (hetee_nn_trace).
 *
 * Graph model. A hetee_nn_model is a topologically ordered list of layers.
 * Every tensor is a batch of samples: the batch dimension is dynamic and not
 * part of the shapes below, which are per sample (C order, e.g. {C, H, W}
 * for images, {D} for vectors). Layer inputs refer to earlier layers by index
 * (-1 is the model input); the last layer's output is the model output.
 * BatchNormalization is folded into the preceding Conv/Gemm/MatMul when that
 * layer's output feeds nothing else, otherwise it becomes an AFFINE layer.
 *
 * Errors: fallible functions return 0 or a negative hetee_status and set a
 * detail message (hetee_last_error()).
 * Thread-safety: a model is immutable after import and may be used by many
 * threads at once; traces and data objects belong to one thread at a time.
 */
#ifndef HETEE_NN_H
#define HETEE_NN_H

#include <stddef.h>
#include <stdint.h>

#include "hetee/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hard limits on untrusted input, answered with HETEE_ERR_LIMIT. */
#define HETEE_NN_MAX_ONNX_BYTES ((size_t)256 << 20)  /* ONNX file size */
#define HETEE_NN_MAX_DATA_BYTES ((size_t)1 << 30)    /* data file, decompressed */
#define HETEE_NN_MAX_ELEMENTS ((size_t)1 << 28)      /* elements of one tensor */
#define HETEE_NN_MAX_SAMPLE ((size_t)1 << 24)        /* elements of one sample's activation */
#define HETEE_NN_MAX_NODES 4096                      /* ONNX nodes in a graph */
#define HETEE_NN_MAX_RANK 4                          /* per-sample rank */

/* ------------------------------------------------------------------ model */

typedef struct hetee_nn_model hetee_nn_model;

typedef enum hetee_nn_kind {
  HETEE_NN_DENSE = 1,     /* y[o] = sum_i W[o][i] x[i] + b[o]; W is out x in */
  HETEE_NN_CONV,          /* 2-D cross-correlation, W [co][ci][kh][kw], b [co] */
  HETEE_NN_AFFINE,        /* y[c,...] = x[c,...] * weight[c] + bias[c] (BatchNorm) */
  HETEE_NN_ADD_CONST,     /* y = x + weight (weight has the output's size) */
  HETEE_NN_MUL_CONST,     /* y = x * weight (weight has the output's size) */
  HETEE_NN_ADD,           /* y = a + b, two activations of the same shape */
  HETEE_NN_MUL,           /* y = a * b, two different activations */
  HETEE_NN_SQUARE,        /* y = x * x (ONNX Mul(x, x) or Pow(x, 2)) */
  HETEE_NN_RELU,          /* y = max(x, 0) */
  HETEE_NN_LEAKY_RELU,    /* y = x >= 0 ? x : alpha x */
  HETEE_NN_SIGMOID,       /* y = 1 / (1 + exp(-x)) */
  HETEE_NN_TANH,          /* y = tanh(x) */
  HETEE_NN_MAXPOOL,       /* max over kernel windows; padding never wins */
  HETEE_NN_AVGPOOL,       /* mean over kernel windows (count_include_pad) */
  HETEE_NN_GLOBAL_AVGPOOL,/* mean over H x W: {C,H,W} -> {C,1,1} */
  HETEE_NN_PAD,           /* constant padding (value alpha) of H and W */
  HETEE_NN_RESHAPE,       /* same values, new shape (Flatten, Reshape) */
  HETEE_NN_SOFTMAX        /* softmax over the last axis; last layer only */
} hetee_nn_kind;

/* Lower-case name of a kind ("dense", "conv", ...); "?" if unknown. */
HETEE_API const char *hetee_nn_kind_name(hetee_nn_kind kind);

/* Read-only view of one layer. Pointers stay valid while the model lives. */
typedef struct hetee_nn_layer_info {
  hetee_nn_kind kind;
  const char *name;      /* name of the ONNX node the layer came from */
  const char *onnx_ops;  /* ONNX ops fused into it, e.g. "Conv+BatchNormalization" */
  int n_inputs;          /* 1, or 2 for ADD / MUL */
  int inputs[2];         /* index of the producing layer, -1 = model input */
  size_t in_rank, in_dims[HETEE_NN_MAX_RANK];   /* first input, per sample */
  size_t out_rank, out_dims[HETEE_NN_MAX_RANK]; /* per sample */
  const float *weight;   /* DENSE, CONV, AFFINE, *_CONST; else NULL */
  size_t weight_len;
  const float *bias;     /* DENSE, CONV, AFFINE; else NULL */
  size_t bias_len;
  size_t kernel[2];      /* CONV, MAXPOOL, AVGPOOL: kh, kw */
  size_t stride[2];      /* CONV, MAXPOOL, AVGPOOL: sh, sw */
  size_t pads[4];        /* CONV, pools, PAD: top, left, bottom, right */
  float alpha;           /* LEAKY_RELU slope, PAD value */
  int count_include_pad; /* AVGPOOL */
} hetee_nn_layer_info;

/* Imports an ONNX model (opsets 11-17, default domain) from a file or from
 * memory, infers every shape from the input shape and validates the graph.
 * Supported: Gemm, MatMul, Add, Mul, Pow (exponent 2), Conv (dilation 1,
 * groups 1), Relu, LeakyRelu, Sigmoid, Tanh, MaxPool, AveragePool,
 * GlobalAveragePool, BatchNormalization, Flatten, Reshape, Pad (constant),
 * Dropout and Identity (no-ops), Softmax (last node), and the shape
 * arithmetic PyTorch emits around Reshape (Constant, Shape, Gather,
 * Unsqueeze, Squeeze, Concat, Cast).
 * Returns HETEE_ERR_FORMAT (not ONNX), HETEE_ERR_UNSUPPORTED (op, attribute
 * or opset; the detail names the op, the node and what is supported),
 * HETEE_ERR_SHAPE (shapes or initializer sizes that do not fit; the detail
 * names the node), HETEE_ERR_LIMIT, HETEE_ERR_IO, HETEE_ERR_NOMEM. */
HETEE_API HETEE_WUR int hetee_nn_model_load(const char *path, hetee_nn_model **out);
HETEE_API HETEE_WUR int hetee_nn_model_from_memory(const uint8_t *buf, size_t len,
                                                   hetee_nn_model **out);
/* Frees a model; NULL is a no-op. */
HETEE_API void hetee_nn_model_free(hetee_nn_model *m);

HETEE_API size_t hetee_nn_model_num_layers(const hetee_nn_model *m);
/* Fills *out for layer i; HETEE_ERR_INVALID_ARG if i is out of range. */
HETEE_API int hetee_nn_model_layer(const hetee_nn_model *m, size_t i, hetee_nn_layer_info *out);
/* Per-sample element counts of the model input and output. */
HETEE_API size_t hetee_nn_model_input_size(const hetee_nn_model *m);
HETEE_API size_t hetee_nn_model_output_size(const hetee_nn_model *m);
/* Per-sample input shape: writes up to HETEE_NN_MAX_RANK dims, returns rank. */
HETEE_API size_t hetee_nn_model_input_shape(const hetee_nn_model *m, size_t dims[HETEE_NN_MAX_RANK]);
/* Value of a metadata_props entry, or NULL. */
HETEE_API const char *hetee_nn_model_metadata(const hetee_nn_model *m, const char *key);
/* Factor applied to integer pixel data (uint8) before it enters the model:
 * 1/255 when metadata "hetee.input_scale" is "1/255" (pixels scaled to
 * [0,1] as in training), otherwise its numeric value, 1 if absent. */
HETEE_API double hetee_nn_model_input_scale(const hetee_nn_model *m);

/* ------------------------------------------------------- reference engine */

/* Runs the model on `batch` samples x (batch x input_size floats, C order)
 * and writes batch x output_size floats to y (y must not alias x).
 * Deterministic. HETEE_ERR_INVALID_ARG, HETEE_ERR_NOMEM, HETEE_ERR_LIMIT. */
HETEE_API HETEE_WUR int hetee_nn_forward(const hetee_nn_model *m, const float *x, size_t batch,
                                         float *y);

/* Layer-by-layer run: keeps every layer's output. */
typedef struct hetee_nn_trace hetee_nn_trace;
HETEE_API HETEE_WUR int hetee_nn_trace_run(const hetee_nn_model *m, const float *x, size_t batch,
                                           hetee_nn_trace **out);
/* Output of layer i: batch x (per-sample size) floats; *len gets the total
 * count. NULL if i is out of range. */
HETEE_API const float *hetee_nn_trace_output(const hetee_nn_trace *t, size_t i, size_t *len);
HETEE_API void hetee_nn_trace_free(hetee_nn_trace *t);

/* ------------------------------------------------------------------- data */

typedef enum hetee_nn_dtype {
  HETEE_NN_U8 = 1,
  HETEE_NN_I32,
  HETEE_NN_I64,
  HETEE_NN_F32,
  HETEE_NN_F64
} hetee_nn_dtype;

/* A loaded array: values converted to float, its shape and source type. */
typedef struct hetee_nn_data hetee_nn_data;

/* Loads an IDX file (raw or gzip; unsigned-byte data) or a .npy file
 * (versions 1-3, little-endian '<f4' '<f8' '|u1' '<i4' '<i8', C order),
 * recognised by content. Rank 1..4. HETEE_ERR_FORMAT (bad magic, header or
 * dtype), HETEE_ERR_TRUNCATED (shorter than its header says; also extra
 * bytes), HETEE_ERR_LIMIT (sizes above the limits), HETEE_ERR_IO, NOMEM. */
HETEE_API HETEE_WUR int hetee_nn_data_load(const char *path, hetee_nn_data **out);
HETEE_API HETEE_WUR int hetee_nn_data_from_memory(const uint8_t *buf, size_t len,
                                                  hetee_nn_data **out);
/* Images: as hetee_nn_data_load, then the shape must be [N,784], [N,28,28]
 * or [N,1,28,28] (N >= 1) and the type u8, f32 or f64; the result has shape
 * [N,1,28,28]. HETEE_ERR_SHAPE / HETEE_ERR_FORMAT otherwise. */
HETEE_API HETEE_WUR int hetee_nn_images_load(const char *path, hetee_nn_data **out);
/* Labels: rank 1, integer type, every value in 0..255. */
HETEE_API HETEE_WUR int hetee_nn_labels_load(const char *path, hetee_nn_data **out);
HETEE_API void hetee_nn_data_free(hetee_nn_data *d);

HETEE_API size_t hetee_nn_data_rank(const hetee_nn_data *d);
HETEE_API const size_t *hetee_nn_data_dims(const hetee_nn_data *d);
HETEE_API size_t hetee_nn_data_count(const hetee_nn_data *d); /* number of elements */
HETEE_API const float *hetee_nn_data_values(const hetee_nn_data *d);
HETEE_API hetee_nn_dtype hetee_nn_data_dtype(const hetee_nn_data *d);

/* Writes a float32 C-order .npy file (format 1.0) of the given shape. */
HETEE_API HETEE_WUR int hetee_nn_npy_save_f32(const char *path, const float *values, size_t rank,
                                              const size_t *dims);

#ifdef __cplusplus
}
#endif
#endif

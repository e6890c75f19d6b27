/*
 * hetee/engine.h — encrypted inference end to end: the model plan, the
 * model provider's weight encryption, the data provider's input encryption
 * and the host's layer loop with the enclave.
 *
 * Plan (hetee_engine_plan_build): the model (a chain of hetee_nn layers) is
 * cut into *stages*, one per linear layer (DENSE or CONV), each followed by
 * the non-linear layers up to the next linear layer. The host evaluates a
 * stage's linear layer as hemat's coefficient-packed convolution
 * (hetee/hemat.h; a dense layer is the 1x1 case with c = in features) on
 * ciphertexts x ciphertexts; the enclave then decrypts its degree-2 outputs,
 * applies the stage's non-linear layers as refresh ops (ReLU, leaky ReLU,
 * sigmoid, tanh, square, max/average pooling, batch-norm affine, flatten,
 * per-element constant add) and encrypts fresh inputs of the next stage in
 * that stage's layout, with the zero padding of a CONV / PAD left empty.
 * After the last stage the enclave refreshes the outputs (applying any
 * non-linear layers that follow the last linear layer) into the compact
 * *release layout* and then releases each sample's values to the data
 * provider: argmax, or the probabilities when the model ends with SOFTMAX.
 * Anything else (two-input ADD / MUL, MUL_CONST, padded pooling, non-zero
 * padding values, ...) is refused by the plan, before anything is
 * encrypted, with one line naming the node and the reason.
 *
 * Scales and levels (the enclave's default parameters, logN 13,
 * q {60, 40, 40}, p {60}; level 1 = q0 q1):
 *   inputs  coefficient-encoded, level 1, scale 2^40 (first stage: the data
 *           provider, public key; later stages: the enclave, secret key)
 *   weights coefficient-encoded, level 1, scale 2^40 (model provider, public key)
 *   biases  coefficient-encoded, level 1, scale 2^80 (added by the host)
 *   outputs degree 2 (never relinearised: no evaluation key is needed),
 *           level 1, scale 2^80; in bound runs the host rescales each by q1
 *           to level 0 (scale hetee_engine_refresh_scale, ~2^40) before the
 *           enclave decrypts it: half the bytes and half the enclave's
 *           decryption work, for the host's ~6 NTTs per output.
 *   release fresh from the enclave, coefficient-encoded at the top level and
 *           scale hetee_engine_release_scale (2^95 for the defaults): the
 *           enclave floods released values with noise sized for fresh
 *           ciphertexts at a large scale (hetee_release_spec), which a
 *           degree-2 product at 2^60 is not. Sample b's value j is
 *           coefficient (b % cap) * classes + j of ciphertext b / cap,
 *           cap = N / classes.
 *
 * Micro-batches: the plan is made for a micro-batch of Bm samples (default
 * min(64, requested batch)), lowered until every refresh request and reply
 * fits the enclave protocol (HETEE_FRAME_MAX_BODY, 4096 ciphertexts). A run
 * on more samples is a sequence of independent micro-batch pipelines; the
 * last one may be smaller (same packing, fewer groups).
 *
 * Errors: 0 or a negative hetee_status with a detail (hetee_last_error()).
 * Thread-safety: plans and encrypted models are immutable once built or
 * loaded and may be shared between threads; hetee_engine_run drives one
 * enclave handle, which is not thread-safe (one run per handle at a time).
 */
#ifndef HETEE_ENGINE_H
#define HETEE_ENGINE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hetee/ckks.h"
#include "hetee/common.h"
#include "hetee/enclave.h"
#include "hetee/hemat.h"
#include "hetee/host.h"
#include "hetee/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HETEE_ENGINE_LEVEL 1               /* level of every engine ciphertext the host multiplies */
#define HETEE_ENGINE_IN_SCALE 0x1p40       /* layer inputs */
#define HETEE_ENGINE_W_SCALE 0x1p40        /* weights */
#define HETEE_ENGINE_OUT_SCALE 0x1p80      /* products and biases */
#define HETEE_ENGINE_REFRESH_LEVEL 0       /* the products as the enclave decrypts them (bound runs) */
#define HETEE_ENGINE_DEFAULT_BATCH 64u     /* micro-batch when none is asked for */
#define HETEE_ENGINE_MAX_STAGES 64
#define HETEE_ENGINE_MAX_IMAGES (1u << 20) /* samples of one run */
#define HETEE_ENGINE_MAX_MICRO_BATCH 4096u /* samples of one micro-batch */

/* ---------------------------------------------------------------------------
 * Plan
 * ------------------------------------------------------------------------- */
typedef struct hetee_engine_plan hetee_engine_plan;

enum { HETEE_ENGINE_PHASE_AUTO = 0, HETEE_ENGINE_PHASE_NEVER = 1, HETEE_ENGINE_PHASE_ALWAYS = 2 };

typedef struct hetee_engine_plan_options {
  uint32_t batch;        /* samples the caller wants to run at once (0: 64);
                            the micro-batch is min(batch, 64), lowered to fit */
  uint32_t micro_batch;  /* > 0: use exactly this micro-batch, at most
                            HETEE_ENGINE_MAX_MICRO_BATCH (refused with
                            HETEE_ERR_LIMIT if a frame would not fit) */
  size_t n;              /* ring degree (0: 8192, the enclave's default) */
  const hetee_hemat_costs *costs; /* NULL: hetee_hemat_costs_default */
  int phase;             /* strided convolutions in space-to-depth form
                            (docs/engine.md, "Strided convolutions"):
                            HETEE_ENGINE_PHASE_AUTO (0) when the cost model
                            prefers it, _NEVER, or _ALWAYS when it exists */
  int lanes;             /* lane packings (docs/engine.md, "Issue 8: lanes"):
                            0 none (default); 2, 4 or 8: the host holds the
                            Galois keys of hetee_ckks_expand_steps(ctx, lanes)
                            and stages after the first may take packings of
                            up to that many lanes when the cost model prefers
                            them (the enclave encrypts their inputs dense,
                            the host expands them) */
  int force_lanes;       /* 1 (with lanes >= 2): every stage after the first
                            takes the cheapest lane packing, whatever the
                            cost model says (for measurements) */
} hetee_engine_plan_options;

/* Builds the plan of model m (options may be NULL: defaults).
 * Errors: HETEE_ERR_UNSUPPORTED (a layer the engine cannot run: the detail
 * is one line "node '<name>' (<kind>): <reason>"), HETEE_ERR_SHAPE (hemat
 * finds no packing for a layer at this ring degree), HETEE_ERR_LIMIT (no
 * micro-batch fits the enclave protocol), HETEE_ERR_INVALID_ARG,
 * HETEE_ERR_NOMEM. */
HETEE_API int hetee_engine_plan_build(const hetee_nn_model *m, const hetee_engine_plan_options *o,
                                      hetee_engine_plan **out) HETEE_WUR;
HETEE_API void hetee_engine_plan_free(hetee_engine_plan *p);

HETEE_API size_t hetee_engine_plan_num_stages(const hetee_engine_plan *p);
HETEE_API uint32_t hetee_engine_plan_micro_batch(const hetee_engine_plan *p);
HETEE_API size_t hetee_engine_plan_n(const hetee_engine_plan *p);
/* Per-sample element counts of the model input and output (classes). */
HETEE_API size_t hetee_engine_plan_input_size(const hetee_engine_plan *p);
HETEE_API size_t hetee_engine_plan_output_size(const hetee_engine_plan *p);
/* HETEE_RELEASE_ARGMAX, or HETEE_RELEASE_SOFTMAX when the model ends with it. */
HETEE_API int hetee_engine_plan_release_kind(const hetee_engine_plan *p);

/* Read-only view of stage i; counts are per full micro-batch. Pointers stay
 * valid while the plan lives. */
typedef struct hetee_engine_stage_info {
  const char *names;        /* "conv /0/Conv, relu /1/Relu, maxpool /2/MaxPool" */
  int layer;                /* index of the linear layer in the hetee_nn model */
  int kind;                 /* HETEE_NN_DENSE or HETEE_NN_CONV */
  int in_shape[3];          /* unpadded input per sample (C, H, W; dense: D, 1, 1) */
  int pads[4];              /* zero padding: top, left, bottom, right */
  hetee_hemat_shape shape;  /* hemat geometry (padded input) */
  hetee_hemat_pack pack;
  int has_bias;
  size_t n_in_cts, n_w_cts, n_bias_cts, n_out_cts, n_products;
  size_t enclave_encryptions; /* fresh ciphertexts the enclave makes after this
                                 stage: the next stage's inputs, or for the
                                 last stage the release ciphertexts */
  size_t enclave_decryptions; /* the stage's outputs (refresh), plus one
                                 release ciphertext per sample (last stage) */
  double predicted_s;       /* cost model: products + enclave work + DP encryption */
  size_t nops;              /* refresh ops applied to this stage's output */
  const hetee_refresh_op *ops;
  int out_shape[3];         /* after the ops, per sample */
  hetee_hemat_shape conv;   /* the layer's own geometry (padded input) */
  int phased;               /* 1: shape is conv's stride-1 space-to-depth form:
                               padded input element (c, Y, X) is hemat's
                               (c*sh + Y%sh)*sw + X%sw, Y/sh, X/sw
                               (docs/engine.md, "Strided convolutions") */
  int folded_layer;         /* the AFFINE layer (a BatchNormalization after the
                               previous stage's non-linearity) or constant add
                               folded into this stage's weights and bias, -1:
                               none (docs/engine.md, "Folded BatchNormalization") */
} hetee_engine_stage_info;

HETEE_API int hetee_engine_plan_stage(const hetee_engine_plan *p, size_t i, hetee_engine_stage_info *out) HETEE_WUR;

/* The weights w of stage i's layer (co x c x kh x kw, the layer's own
 * geometry) rearranged for hemat's geometry (shape of the stage info:
 * a copy of w, or its space-to-depth form), malloc'd into *out. */
HETEE_API int hetee_engine_plan_stage_weights(const hetee_engine_plan *p, size_t i, const float *w,
                                              float **out) HETEE_WUR;
/* What stage i computes with, from the model m the plan was built from:
 * its weights in hemat's geometry (as hetee_engine_plan_stage_weights) and
 * its bias (shape.co values; NULL when the stage has none), both with a
 * folded affine layer applied (folded_layer). malloc'd. HETEE_ERR_SHAPE if
 * m is not the planned model. */
HETEE_API int hetee_engine_plan_stage_params(const hetee_engine_plan *p, size_t i, const hetee_nn_model *m, float **w,
                                             float **bias) HETEE_WUR;

/* Layout of stage i for a micro-batch of `batch` samples (1..micro-batch;
 * the last micro-batch of a run may be smaller). */
HETEE_API int hetee_engine_plan_layout(const hetee_engine_plan *p, size_t i, uint32_t batch,
                                       hetee_hemat_layout *out) HETEE_WUR;

/* Bytes of the model's ciphertexts (weights + biases) as stored. */
HETEE_API size_t hetee_engine_plan_model_ct_bytes(const hetee_engine_plan *p);

/* Prints the plan (per stage: layers, shape, packing, counts, the host's
 * evaluation keys (none, or a lane stage's rotation steps), the stage's
 * weight and bias ciphertext bytes, predicted time, refresh ops; the
 * model's ciphertext bytes) as `hetee plan` shows it. */
HETEE_API void hetee_engine_plan_print(const hetee_engine_plan *p, FILE *f);

/* The enclave's job between stage i and i + 1 (or, for the last stage,
 * where the release reads each sample's outputs), for a micro-batch of
 * `batch` samples, in the refresh-spec terms of hetee/enclave.h with
 * coefficient encodings (global position = ciphertext index * N +
 * coefficient):
 *   in_map[b*n_in + k]   position of value k (C, H, W row-major over
 *                        in_shape) of sample b in stage i's outputs
 *   ops                  applied per sample; out_shape after them
 *   out_dst[j]/out_src[j] pairs: position in stage i+1's inputs (for the
 *                        last stage: in the release layout) <- value index
 *                        (b * n_final + k); out_ncts its ciphertexts
 * Arrays are owned by the object (hetee_engine_refresh_free). */
typedef struct hetee_engine_refresh {
  uint32_t batch;
  int in_shape[3];
  size_t n_in; /* values per sample: in_shape[0] * [1] * [2] */
  uint32_t *in_map;
  uint32_t in_ncts;
  size_t nops;
  const hetee_refresh_op *ops; /* points into the plan */
  int out_shape[3];
  size_t n_final; /* values per sample after the ops */
  uint32_t out_ncts;
  size_t out_n;
  uint32_t *out_dst, *out_src;
  int release;          /* 1: the last stage's refresh into the release layout */
  uint32_t release_cap; /* samples per release ciphertext (release only) */
  int out_lanes;        /* 1, or the next stage's lanes: out_dst are its dense
                           input positions (hetee_hemat_in_pos_dense), out_ncts
                           its n_dense_in_cts, encrypted at HETEE_ENGINE_IN_SCALE
                           / out_lanes; the host expands each into out_lanes
                           ciphertexts (hetee_ckks_evaluator_expand) */
} hetee_engine_refresh;

HETEE_API int hetee_engine_plan_refresh(const hetee_engine_plan *p, size_t i, uint32_t batch,
                                        hetee_engine_refresh *out) HETEE_WUR;
HETEE_API void hetee_engine_refresh_free(hetee_engine_refresh *r);

/* Scale of the release ciphertexts under ctx: 2^(floor(log2 Q) - 44) for
 * the top level's modulus Q (values up to 2^40 fit). */
HETEE_API double hetee_engine_release_scale(const hetee_ckks_context *ctx);
/* Scale of a product after the host's rescale to HETEE_ENGINE_REFRESH_LEVEL:
 * HETEE_ENGINE_OUT_SCALE / q_1 (~2^40 for the defaults; 0 without ctx). */
HETEE_API double hetee_engine_refresh_scale(const hetee_ckks_context *ctx);

/* Position (ciphertext index * N + coefficient) of value k (flat, per
 * sample, over the model input's C x H x W) of sample b in stage 0's inputs,
 * for a micro-batch of `batch` samples. */
HETEE_API int hetee_engine_plan_input_pos(const hetee_engine_plan *p, uint32_t batch, uint32_t b, size_t k,
                                          uint64_t *pos) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * Encrypted model (model provider -> host). File format (little-endian):
 *   "HTEM" | u16 header size (48) | u16 version (1) | u64 total size |
 *   parameter fingerprint[32] |
 *   u32 plan length | plan (structure: shapes, packings, ops) |
 *   per stage: n_w_cts + n_bias_cts x (u64 length | hetee_ckks ciphertext)
 * The plan is public (the host runs it); weights and biases are ciphertexts.
 * ------------------------------------------------------------------------- */
typedef struct hetee_engine_model hetee_engine_model;

/* Model provider side (src/client): encrypts model m's weights and biases
 * under the enclave's public key in the packing of `plan` (built from the
 * same model; a mismatch gives HETEE_ERR_SHAPE). ctx must be the enclave's
 * parameters (logN 13, 3 ciphertext primes at least: level 1 is used);
 * the object keeps a reference to ctx. Plaintext weights and coefficient
 * buffers are wiped. Errors: HETEE_ERR_INVALID_ARG, HETEE_ERR_SHAPE,
 * HETEE_ERR_PARAMS (ctx's ring degree is not the plan's), the encoder's and
 * encryptor's errors, HETEE_ERR_NOMEM. */
HETEE_API int hetee_engine_model_encrypt(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                                         const hetee_nn_model *m, const hetee_engine_plan *plan,
                                         hetee_engine_model **out) HETEE_WUR;
HETEE_API void hetee_engine_model_free(hetee_engine_model *em);
HETEE_API const hetee_engine_plan *hetee_engine_model_plan(const hetee_engine_model *em);
/* Serialized size of the model's ciphertexts (exact for a loaded model, an
 * upper bound right after encryption). */
HETEE_API size_t hetee_engine_model_ct_bytes(const hetee_engine_model *em);

/* The host's Galois keys for the coefficient expansion of lane stages
 * (hetee_ckks_expand_steps(ctx, lanes) for the plan's largest lanes, made
 * by the enclave's KEYGEN with those rotation steps): kept by reference
 * (they must outlive em; NULL removes them). A run of a plan with lanes
 * needs them (HETEE_ERR_NO_KEY otherwise). Not part of the model file. */
HETEE_API int hetee_engine_model_set_expand_keys(hetee_engine_model *em, const hetee_ckks_galois_keys *gk) HETEE_WUR;
/* The largest lanes of em's plan (1: none). */
HETEE_API int hetee_engine_plan_max_lanes(const hetee_engine_plan *p);

/* Serialization; *buf malloc'd. load validates the header, the plan (every
 * shape, packing and op re-derived and checked against the layouts) and
 * every ciphertext (parameters, level 1, scale, size 2), under ctx (kept by
 * reference). Errors: HETEE_ERR_FORMAT, HETEE_ERR_VERSION,
 * HETEE_ERR_TRUNCATED, HETEE_ERR_CONTEXT (other parameters),
 * HETEE_ERR_LEVEL / HETEE_ERR_SCALE (a ciphertext not as the format says),
 * HETEE_ERR_LIMIT, HETEE_ERR_NOMEM. Never aborts on bad bytes. */
HETEE_API int hetee_engine_model_save(const hetee_engine_model *em, uint8_t **buf, size_t *len) HETEE_WUR;
HETEE_API int hetee_engine_model_load(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                                      hetee_engine_model **out) HETEE_WUR;
/* File forms (written atomically; read with a 4 GiB limit). */
HETEE_API int hetee_engine_model_write(const hetee_engine_model *em, const char *path) HETEE_WUR;
HETEE_API int hetee_engine_model_read(const hetee_ckks_context *ctx, const char *path,
                                      hetee_engine_model **out) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * Encrypted input (data provider -> host): `count` samples cut into
 * micro-batches of the plan, each encrypted in stage 0's layout.
 * ------------------------------------------------------------------------- */
typedef struct hetee_engine_input hetee_engine_input;

/* Data provider side (src/client): x is count x input_size floats (C order,
 * already scaled as the model expects). Public-key encryption at level 1,
 * scale HETEE_ENGINE_IN_SCALE. The coefficient buffers are wiped. Errors:
 * HETEE_ERR_INVALID_ARG (count 0 or above HETEE_ENGINE_MAX_IMAGES, NULL),
 * HETEE_ERR_PARAMS (ring degree), the encryptor's errors, HETEE_ERR_NOMEM. */
HETEE_API int hetee_engine_input_encrypt(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                                         const hetee_engine_plan *plan, const float *x, size_t count,
                                         hetee_engine_input **out) HETEE_WUR;
HETEE_API void hetee_engine_input_free(hetee_engine_input *in);
HETEE_API size_t hetee_engine_input_count(const hetee_engine_input *in);
/* Format: "HTEI" | u16 48 | u16 1 | u64 total | fingerprint[32] | u32 count |
 * u32 micro-batch | u32 n cts | n x (u64 length | ciphertext). load checks
 * the ciphertexts (parameters, level 1, scale HETEE_ENGINE_IN_SCALE, size 2) and the count
 * against the micro-batches of `plan`. Errors as for the model. */
HETEE_API int hetee_engine_input_save(const hetee_engine_input *in, uint8_t **buf, size_t *len) HETEE_WUR;
HETEE_API int hetee_engine_input_load(const hetee_ckks_context *ctx, const hetee_engine_plan *plan,
                                      const uint8_t *buf, size_t len, hetee_engine_input **out) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * Host driver
 * ------------------------------------------------------------------------- */
typedef struct hetee_engine_stage_stats {
  uint64_t products;
  uint64_t enclave_encryptions, enclave_decryptions;
  uint64_t bytes_to_enclave, bytes_from_enclave;
  double host_s;    /* host kernel (products, bias) + (de)serialization */
  double enclave_s; /* enclave CPU time (its own counters) for this stage */
  double wall_s;    /* host wall time of the stage, enclave calls included */
} hetee_engine_stage_stats;

/* acc += x, field by field (counts and seconds of one stage). */
HETEE_API void hetee_engine_stage_stats_add(hetee_engine_stage_stats *acc, const hetee_engine_stage_stats *x);

typedef struct hetee_engine_stats {
  uint64_t images, micro_batches;
  uint64_t products, keyswitches; /* keyswitches: always 0 (no relinearisation, no rotation) */
  uint64_t enclave_encryptions, enclave_decryptions;
  uint64_t bytes_to_enclave, bytes_from_enclave;
  double total_s;   /* wall time: encrypted inputs at the host -> sealed results */
  double host_s;    /* host wall time outside enclave calls, summed over the
                       (up to two, overlapping) micro-batch pipelines */
  double host_cpu_s; /* CPU time of the host process during the run (all its
                        threads: kernels, (de)serialization, socket copies) */
  double enclave_s; /* enclave CPU time (its own counters) */
  double wall_enclave_s; /* host wall time in enclave calls, summed over pipelines */
  size_t nstages;
  hetee_engine_stage_stats stage[HETEE_ENGINE_MAX_STAGES];
  double integrity_s; /* bound runs: enclave CPU time of the integrity work (the
                         witness or the stage-0 input decryption, Freivalds
                         checks, next-stage expectations); part of enclave_s */
} hetee_engine_stats;

/* One sealed release per sample, in input order (opened by the data
 * provider with hetee_client_release_open). */
typedef struct hetee_engine_results {
  size_t n;
  uint8_t **sealed;
  size_t *lens;
} hetee_engine_results;
HETEE_API void hetee_engine_results_clear(hetee_engine_results *r);

/* Runs the encrypted model on the encrypted input: per micro-batch, per
 * stage, the host kernel (threads: OpenMP threads inside it, 1..64), then
 * the enclave's refresh into the next stage's layout (after the last stage:
 * into the release layout), then one release per sample under model
 * `model_id`'s policy, sealed to data provider session `dp_session`, in
 * input order. With two or more micro-batches, two pipelines run at once
 * (two host threads sharing the enclave handle under a lock), so that the
 * host's kernels of one overlap the enclave's work on the other. stats may
 * be NULL. The input must have been encrypted for this model's plan under
 * the same parameters.
 * Errors: HETEE_ERR_INVALID_ARG, HETEE_ERR_CONTEXT (input and model under
 * different parameters), HETEE_ERR_SHAPE (input not in the plan's layout),
 * and whatever the kernel or the enclave answers (its detail is kept). */
HETEE_API int hetee_engine_run(hetee_host_enclave *e, const hetee_engine_model *em, const hetee_engine_input *in,
                               uint32_t model_id, const uint8_t dp_session[16], int threads,
                               hetee_engine_results *out, hetee_engine_stats *stats) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * Bound inference (docs/security.md, "Integrity of the host's work").
 * The model provider registers the model's digest through its session
 * (hetee_client_msg_model_register, after its release policy); the host
 * then streams the encrypted model to the enclave, which decrypts the
 * weights once and keeps secret Freivalds checks per stage
 * (hetee_engine_model_bind; HETEE_ERR_AUTH if the bytes are not those the
 * MP registered). From then on the model's results are released only by
 * bound runs: the data provider authorizes its input micro-batches
 * (hetee_client_msg_job_auth), and hetee_engine_run_bound runs them as
 * jobs whose refreshes follow the registered plan and whose every layer
 * output is checked against the job's own input before anything is
 * refreshed or released. A failed check stops the micro-batch with
 * HETEE_ERR_INTEGRITY (the detail names the stage, never values).
 * hetee_engine_run_witnessed (below, "Input witnesses") binds the jobs to
 * the DP's input values instead of its ciphertexts' bytes.
 * ------------------------------------------------------------------------- */
HETEE_API int hetee_engine_model_bind(hetee_host_enclave *e, const hetee_engine_model *em, uint32_t model_id) HETEE_WUR;
/* Parties (src/client). The model provider's registration: u16 3 | u32 model
 * | digest[32], digest = BLAKE2b-256("hetee-model-v1\0" || u64 len || plan ||
 * per stage, weights then biases: u64 len || ciphertext) over the bytes
 * hetee_engine_model_save writes; accepted only from the model's owner. */
HETEE_API int hetee_engine_model_digest(const hetee_engine_model *em, uint8_t out[32]) HETEE_WUR;
HETEE_API int hetee_client_msg_model_register(uint32_t model_id, const hetee_engine_model *em, uint8_t **msg,
                                              size_t *len) HETEE_WUR;
/* The data provider's authorization of every micro-batch of its input
 * (at most 256 per message): u16 4 | u32 model | u32 n | n x (u32 batch |
 * digest[32]), digest = BLAKE2b-256("hetee-input-v1\0" || u32 model || u32 batch
 * || u32 k || k x (u64 len || ciphertext)) over the micro-batch's stage-0
 * ciphertexts. Each digest allows one job, for a DP the policy names. */
HETEE_API int hetee_engine_input_digests(const hetee_engine_input *in, const hetee_engine_plan *p, uint32_t model_id,
                                         uint8_t (*out)[32], size_t max, size_t *nmb) HETEE_WUR;
HETEE_API int hetee_client_msg_job_auth(uint32_t model_id, const hetee_engine_input *in, const hetee_engine_plan *p,
                                        uint8_t **msg, size_t *len) HETEE_WUR;
/* Integrity status of a model, for its owner and the DPs its policy names. */
typedef struct hetee_integrity_status {
  uint32_t model_id;
  int loaded;                /* plan registered and weights loaded */
  uint64_t jobs;             /* jobs released */
  uint64_t checks;           /* per-sample checks made */
  uint64_t failures;         /* failed checks (each stopped a job) */
  int32_t last_failed_stage; /* -1: none */
  uint64_t budget;           /* per-DP query budget in images (0: none) */
  uint64_t used;             /* images the asking DP started (0 for the MP) */
} hetee_integrity_status;
/* The owner's per-DP query budget for a registered model (images; 0: no
 * budget): u16 6 | u32 model | u64 images. Each JOB_START charges its
 * batch to the authorizing DP, completed or not; above the budget it is
 * refused with HETEE_ERR_LIMIT. Counts survive sealing. */
HETEE_API int hetee_client_msg_query_budget(uint32_t model_id, uint64_t images, uint8_t **msg, size_t *len) HETEE_WUR;
HETEE_API int hetee_client_msg_integrity_status(uint32_t model_id, uint8_t **msg, size_t *len) HETEE_WUR;
/* Parses the opened reply of the status command. */
HETEE_API int hetee_client_integrity_status_parse(const uint8_t *reply, size_t len,
                                                  hetee_integrity_status *out) HETEE_WUR;
HETEE_API int hetee_engine_run_bound(hetee_host_enclave *e, const hetee_engine_model *em, const hetee_engine_input *in,
                                     uint32_t model_id, const uint8_t dp_session[16], int threads,
                                     hetee_engine_results *out, hetee_engine_stats *stats) HETEE_WUR;

/* Bound jobs of an offline data provider (the service path; docs/security.md,
 * "Integrity of the host's work"). The DP signs, at submission, a detached
 * Ed25519 authorization of its input micro-batches with its identity key:
 * sig over "hetee-job-auth-v1\0" || u32 model | dp[32] | nonce[16] | u32 n |
 * n x (u32 batch | digest[32]) (digests as hetee_engine_input_digests). The
 * host stores it and presents it to the enclave (hetee_engine_job_authorize,
 * again after an enclave restart), then runs hetee_engine_run_bound with an
 * all-zero dp_session: each release is then sealed to the authorizing DP's
 * identity (hetee_client_release_open_id), not to a session. */
#define HETEE_JOB_AUTH_MAX 256 /* micro-batches per authorization */
struct hetee_party_key; /* hetee/client.h */
typedef struct hetee_job_auth {
  uint32_t model;
  uint8_t dp[32];    /* the signer */
  uint8_t nonce[16]; /* the job's: one use per enclave lifetime */
  uint32_t n;
  uint32_t batch[HETEE_JOB_AUTH_MAX];
  uint8_t digest[HETEE_JOB_AUTH_MAX][32];
  uint8_t sig[64];
} hetee_job_auth;
/* Fills model, n, batch[] and digest[] for input `in` under plan p. */
HETEE_API int hetee_job_auth_digests(hetee_job_auth *a, uint32_t model_id, const hetee_engine_input *in,
                                     const hetee_engine_plan *p) HETEE_WUR;
/* The data provider: fills dp and sig with its identity key (nonce set by
 * the caller, random per job). */
HETEE_API int hetee_job_auth_sign(hetee_job_auth *a, const struct hetee_party_key *k) HETEE_WUR;
/* HETEE_ERR_AUTH unless sig is dp's signature of the rest. */
HETEE_API int hetee_job_auth_verify(const hetee_job_auth *a) HETEE_WUR;
/* Serialized (the JOB_AUTH request body) and back. */
HETEE_API int hetee_job_auth_encode(const hetee_job_auth *a, uint8_t **out, size_t *len) HETEE_WUR;
HETEE_API int hetee_job_auth_decode(const uint8_t *b, size_t len, hetee_job_auth *a) HETEE_WUR;
/* The host: presents the authorization to the enclave (HETEE_ERR_AUTH: not
 * a DP the policy names, or the signature does not verify; HETEE_ERR_REPLAY:
 * its nonce was used in this enclave's lifetime). */
HETEE_API int hetee_engine_job_authorize(hetee_host_enclave *e, const hetee_job_auth *a) HETEE_WUR;
/* Session command asking for the enclave's release key (the key results
 * sealed to a DP's identity come from): u16 7; reply u16 7 | pk[32]. */
HETEE_API int hetee_client_msg_release_key(uint8_t **msg, size_t *len) HETEE_WUR;
HETEE_API int hetee_client_release_key_parse(const uint8_t *reply, size_t len, uint8_t pk[32]) HETEE_WUR;

/* Input witnesses (docs/security.md, "Integrity of the host's work"): the
 * job is bound to the values the data provider encoded, not to its
 * ciphertexts' bytes. Per micro-batch the DP seals its input values (f32,
 * as given to hetee_engine_input_encrypt) to the enclave's release key
 * (learned through an attested session: hetee_client_msg_release_key) and
 * authorizes the sealed witness's digest instead of its ciphertexts'
 * (hetee_client_msg_job_auth_witness through its session, or
 * hetee_job_auth_witness_digests + hetee_job_auth_sign on the service path).
 * The host passes the sealed witnesses at each JOB_START
 * (hetee_engine_run_witnessed); the enclave neither hashes nor decrypts the
 * input ciphertexts: the stage-0 Freivalds check ties the host's product to
 * the witness. Format in src/enclave/wire/proto.h; a sealed witness's size
 * depends only on the micro-batch size and the plan's input size. */
typedef struct hetee_engine_witnesses {
  size_t n;              /* micro-batches, in input order */
  uint32_t *batch;       /* samples of each */
  uint8_t **blob;        /* sealed witness of each (what the host passes) */
  size_t *len;
  uint8_t (*digest)[32]; /* what the DP authorizes */
} hetee_engine_witnesses;
/* The DP: witnesses of `count` samples x (count x input size) for plan p and
 * model_id, sealed to release_pk. HETEE_ERR_INVALID_ARG if a value is not
 * finite or above 2^20 in magnitude. Clear with hetee_engine_witnesses_clear. */
HETEE_API int hetee_engine_witnesses_make(const hetee_engine_plan *p, uint32_t model_id, const uint8_t release_pk[32],
                                          const float *x, size_t count, hetee_engine_witnesses *out) HETEE_WUR;
HETEE_API void hetee_engine_witnesses_clear(hetee_engine_witnesses *w);
/* BLAKE2b-256("hetee-witness-d2\0" | u32 model | u32 batch | u64 len |
 * sealed[0..48)): the sealed box's ephemeral key and tag, which only its
 * maker can pair with other contents that open (src/enclave/wire/proto.h).
 * The enclave also accepts authorizations of the first form, the whole box
 * hashed under "hetee-witness-v1\0". */
HETEE_API int hetee_engine_witness_digest(uint32_t model_id, uint32_t batch, const uint8_t *sealed, size_t len,
                                          uint8_t out[32]) HETEE_WUR;
/* Session command 4 (as hetee_client_msg_job_auth) over the witnesses' digests. */
HETEE_API int hetee_client_msg_job_auth_witness(uint32_t model_id, const hetee_engine_witnesses *w, uint8_t **msg,
                                                size_t *len) HETEE_WUR;
/* Fills model, n, batch[] and digest[] of a detached authorization from w. */
HETEE_API int hetee_job_auth_witness_digests(hetee_job_auth *a, uint32_t model_id,
                                             const hetee_engine_witnesses *w) HETEE_WUR;
/* The sealed witnesses as bytes, for the DP to hand to the host (e.g. with
 * its input file): "HTWT" | u32 version 1 | u32 model | u32 n | n x (u32
 * batch | u64 len | sealed). The loader (untrusted bytes) checks every size
 * against plan p (HETEE_ERR_FORMAT / HETEE_ERR_VERSION) and recomputes the
 * digests. */
HETEE_API int hetee_engine_witnesses_save(const hetee_engine_witnesses *w, uint32_t model_id, uint8_t **out,
                                          size_t *len) HETEE_WUR;
HETEE_API int hetee_engine_witnesses_load(const hetee_engine_plan *p, uint32_t model_id, const uint8_t *b, size_t len,
                                          hetee_engine_witnesses *out) HETEE_WUR;
/* hetee_engine_run_bound whose jobs start from the witnesses (one per
 * micro-batch of `in`, same sizes) instead of the input ciphertexts. */
HETEE_API int hetee_engine_run_witnessed(hetee_host_enclave *e, const hetee_engine_model *em,
                                         const hetee_engine_input *in, const hetee_engine_witnesses *w,
                                         uint32_t model_id, const uint8_t dp_session[16], int threads,
                                         hetee_engine_results *out, hetee_engine_stats *stats) HETEE_WUR;

/* Hooks of a bound run (hetee_engine_run_hooked: hetee_engine_run_witnessed
 * when wit is given, else hetee_engine_run_bound), for a service running
 * jobs as separate runs.
 * progress: fn(progress_ud, micro_batch, done, total) after each stage of
 *   each micro-batch (the last stage after its releases): done counts the
 *   (stage, micro-batch) steps finished in the run, total = micro-batches x
 *   stages, micro_batch is the one (input order) whose step just finished.
 *   Called from the run's pipeline threads, one call at a time, done
 *   strictly increasing; a successful run's last call has done == total.
 *   It must not call into the engine.
 * enclave_lock: when not NULL, the run holds this mutex (instead of one of
 *   its own) around each of its enclave calls and only then, so that
 *   several runs on the same handle, each from its own thread, overlap one
 *   run's host kernels with another's enclave work; every other user of
 *   the handle must hold it too. The enclave's counters in stats are then
 *   taken from the last engine call under that lock, whichever run made
 *   it (a STATS round trip when another handle or lock came between). */
typedef void (*hetee_engine_progress_fn)(void *ud, size_t micro_batch, uint64_t done, uint64_t total);

/* A runner: what bound runs of one model share across runs instead of
 * making it per run — one pool of `threads` compute threads (concurrent
 * runs queue their host work on it, oldest first: the host runs `threads`
 * compute threads in all, not `threads` per run), the pool threads'
 * evaluators and accumulators, and the buffers, ciphertext objects and
 * refresh maps of the runs' pipelines (kept between runs, at most
 * 8 pipelines' worth). For a service running many small runs of one
 * model. hetee_engine_run_hooked uses it when hooks->runner is set (its
 * `threads` argument is then the runner's); runs of the runner's model
 * may use it from several threads at once. Free it only when no run uses
 * it; the model must outlive it. Errors: HETEE_ERR_INVALID_ARG (threads
 * outside 1..64), HETEE_ERR_NOMEM. */
typedef struct hetee_engine_runner hetee_engine_runner;
HETEE_API int hetee_engine_runner_new(const hetee_engine_model *em, int threads,
                                      hetee_engine_runner **out) HETEE_WUR;
HETEE_API void hetee_engine_runner_free(hetee_engine_runner *r);
HETEE_API int hetee_engine_runner_threads(const hetee_engine_runner *r);

typedef struct hetee_engine_run_hooks {
  hetee_engine_progress_fn progress;
  void *progress_ud;
  pthread_mutex_t *enclave_lock;
  hetee_engine_runner *runner; /* NULL: the run makes its own pool and buffers;
                                  else the runner of em (HETEE_ERR_INVALID_ARG
                                  if it is another model's) */
  int enclave_serial;           /* the enclave's requests on its calling thread
                                  only: 0 when this run overlaps micro-batches
                                  (the other runs: its pool), > 0 always (e.g.
                                  runs that overlap each other), < 0 never */
} hetee_engine_run_hooks;
HETEE_API int hetee_engine_run_hooked(hetee_host_enclave *e, const hetee_engine_model *em,
                                      const hetee_engine_input *in, const hetee_engine_witnesses *wit,
                                      uint32_t model_id, const uint8_t dp_session[16], int threads,
                                      const hetee_engine_run_hooks *hooks, hetee_engine_results *out,
                                      hetee_engine_stats *stats) HETEE_WUR;

#ifdef __cplusplus
}
#endif
#endif

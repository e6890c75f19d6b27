/*
 * hetee/refine.h — confidential model refining (issue #11): mini-batch SGD
 * (momentum, weight decay, gradient accumulation) on an encrypted model and
 * encrypted data, with the same parties as inference (docs/refine.md).
 *
 * Models: a chain of dense layers, each optionally followed by ReLU, tanh or
 * sigmoid (a leading flatten / reshape and a final softmax are allowed; the
 * loss reads the logits). The model provider chooses which layers train: the
 * last `train_layers` dense layers (0: all). Convolutions are NOT refined:
 * the plan refuses a model containing one (HETEE_ERR_UNSUPPORTED).
 *
 * Every weight-sized product is a hemat coefficient-packed ct x ct product on
 * the host (hetee/hemat.h, no new kernel):
 *   forward     layer l, layout F[l]: dense (c = k inputs, co = m outputs)
 *   weight grad layout G[l]: conv with c = B (the batch is the contracted
 *               channel axis), h = 1, w = m (deltas as positions), co = k + 1,
 *               1x1 kernel, one "sample". Its *input* is the deltas
 *               (delta_b[i] at channel b, position i), its *weight*
 *               polynomials are the layer inputs (x_b[j] at output channel j,
 *               channel b) with a constant-1 feature k that yields the bias
 *               gradient. Output (j, 0, i) = sum_b x_b[j] delta_b[i] = G[i][j];
 *               accumulated over the steps of an update by degree-2 products.
 *   back        layout T[l]: dense (c = m, co = k) with W^T: W^T delta.
 * The trusted side (the enclave role, refine_trusted.c) decrypts outputs,
 * applies activations, computes the loss gradient and activation
 * derivatives (O(activations) per step), and every `accumulate` steps runs
 * the update pass (O(weights)).
 */
#ifndef HETEE_REFINE_H
#define HETEE_REFINE_H

#include <stddef.h>
#include <stdint.h>

#include "hetee/ckks.h"
#include "hetee/common.h"
#include "hetee/hemat.h"
#include "hetee/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HETEE_REFINE_MAX_LAYERS 16
#define HETEE_REFINE_MOM_SCALE 0x1p34 /* momentum and compact state */

enum { HETEE_REFINE_LOSS_XENT = 0, HETEE_REFINE_LOSS_MSE = 1 };
enum { HETEE_REFINE_ACT_NONE = 0, HETEE_REFINE_ACT_RELU, HETEE_REFINE_ACT_TANH, HETEE_REFINE_ACT_SIGMOID };

typedef struct hetee_refine_config {
  uint32_t batch;      /* B: samples per step (1..1024) */
  uint32_t accumulate; /* steps per weight update (>= 1) */
  int train_layers;    /* the last train_layers dense layers train; 0: all */
  int loss;            /* HETEE_REFINE_LOSS_* */
  double lr, momentum, weight_decay;
  uint64_t seed;       /* data order: one permutation per epoch */
} hetee_refine_config;

typedef struct hetee_refine_layer {
  int k, m, act, trains;
  int need_z;    /* the trusted side keeps pre-activations (derivative) */
  int has_back;  /* W^T stage (the previous layer trains) */
  hetee_hemat_layout F, G, T; /* T valid if has_back */
} hetee_refine_layer;

/* Learning-rate schedule (part of the spec the MP authorizes; applied by
 * the trusted side at each update, and by the plaintext twin). The rate of
 * a layer's u-th update (u = 0, 1, ...) with base rate lr = cfg.lr:
 *   CONSTANT: lr
 *   STEP:     lr * gamma^floor(u / step_every)
 *   COSINE:   lr_min + (lr - lr_min) (1 + cos(pi min(u, total) / total)) / 2
 *             (lr at u = 0, lr_min from u = total on) */
enum { HETEE_REFINE_LR_CONSTANT = 0, HETEE_REFINE_LR_STEP = 1, HETEE_REFINE_LR_COSINE = 2 };
typedef struct hetee_refine_schedule {
  int kind;            /* HETEE_REFINE_LR_* */
  uint32_t step_every; /* STEP: >= 1 */
  double gamma;        /* STEP: (0, 1] */
  uint32_t total;      /* COSINE: updates of the decay, >= 1 */
  double lr_min;       /* COSINE: floor, [0, lr] */
} hetee_refine_schedule;

typedef struct hetee_refine_plan {
  hetee_refine_config cfg;
  size_t n;
  int nl, first_train;
  int classes;
  hetee_refine_layer L[HETEE_REFINE_MAX_LAYERS];
  hetee_refine_schedule sched; /* constant after hetee_refine_plan_build */
} hetee_refine_plan;

/* Plain weights of the dense chain: w[l] is m x k (row-major), b[l] m. */
typedef struct hetee_refine_weights {
  int nl;
  int k[HETEE_REFINE_MAX_LAYERS], m[HETEE_REFINE_MAX_LAYERS], act[HETEE_REFINE_MAX_LAYERS];
  float *w[HETEE_REFINE_MAX_LAYERS], *b[HETEE_REFINE_MAX_LAYERS];
  float *vw[HETEE_REFINE_MAX_LAYERS], *vb[HETEE_REFINE_MAX_LAYERS]; /* momentum (may be NULL) */
} hetee_refine_weights;

/* ---- plan, plain weights, data order (refine_plan.c) ---- */
HETEE_API int hetee_refine_weights_from_model(const hetee_nn_model *m, hetee_refine_weights *out) HETEE_WUR;
HETEE_API int hetee_refine_weights_copy(const hetee_refine_weights *src, hetee_refine_weights *dst) HETEE_WUR;
HETEE_API void hetee_refine_weights_clear(hetee_refine_weights *w);
/* Plan for weights' shapes (n: ring degree, 0 = 8192). */
HETEE_API int hetee_refine_plan_build(const hetee_refine_weights *w, const hetee_refine_config *cfg, size_t n,
                                      hetee_refine_plan *out) HETEE_WUR;
/* Sets the plan's learning-rate schedule (validated: HETEE_ERR_INVALID_ARG). */
HETEE_API int hetee_refine_plan_set_schedule(hetee_refine_plan *p, const hetee_refine_schedule *s) HETEE_WUR;
/* The learning rate of update u (0-based) under p's schedule. */
HETEE_API double hetee_refine_lr(const hetee_refine_plan *p, uint64_t u);
/* Prints the plan's layouts and per-step counts. */
HETEE_API void hetee_refine_plan_print(const hetee_refine_plan *p, void *file);
/* Sample order of epoch `epoch`: perm[0..count) a permutation of 0..count-1
 * (splitmix64 seeded by seed and epoch, Fisher-Yates). */
HETEE_API void hetee_refine_order(uint64_t seed, uint32_t epoch, uint32_t count, uint32_t *perm);
/* Plain forward: y = logits (count x classes). */
HETEE_API int hetee_refine_plain_forward(const hetee_refine_weights *w, const float *x, size_t count,
                                         float *y) HETEE_WUR;
HETEE_API double hetee_refine_plain_accuracy(const hetee_refine_weights *w, const float *x, const float *labels,
                                             size_t count);
/* Plaintext twin of the refining: one SGD step on `count` (<= B) samples
 * whose indices are idx, gradients accumulated in gacc (allocated by the
 * call when NULL: layout per layer m x (k+1), bias last column); when
 * `update` is set the accumulated gradient (divided by `nsamples`) is
 * applied (momentum, weight decay as PyTorch SGD) and gacc cleared. */
typedef struct hetee_refine_plain {
  const hetee_refine_plan *plan;
  hetee_refine_weights *w;
  double *gacc[HETEE_REFINE_MAX_LAYERS];
  uint32_t acc_samples, acc_steps;
  uint64_t updates; /* applied so far (the schedule's clock) */
} hetee_refine_plain;
HETEE_API int hetee_refine_plain_init(hetee_refine_plain *t, const hetee_refine_plan *p, hetee_refine_weights *w) HETEE_WUR;
HETEE_API int hetee_refine_plain_step(hetee_refine_plain *t, const float *x, const float *labels, const uint32_t *idx,
                                      uint32_t count) HETEE_WUR;
/* Applies a pending partial accumulation (end of data). */
HETEE_API int hetee_refine_plain_flush(hetee_refine_plain *t) HETEE_WUR;
HETEE_API void hetee_refine_plain_clear(hetee_refine_plain *t);

/* ---- the trusted side (refine_trusted.c): holds the secret key ---- */
typedef struct hetee_refine_trusted hetee_refine_trusted;
HETEE_API int hetee_refine_trusted_new(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                                       const hetee_refine_plan *p, hetee_refine_trusted **out) HETEE_WUR;
HETEE_API void hetee_refine_trusted_free(hetee_refine_trusted *t);
/* CPU seconds spent in trusted calls so far (thread CPU time). */
HETEE_API double hetee_refine_trusted_cpu_s(const hetee_refine_trusted *t);

/* ---- encrypted state, parties, host loop (refine_host.c) ---- */
typedef struct hetee_refine_state hetee_refine_state;
typedef struct hetee_refine_batch hetee_refine_batch;

/* Model provider: encrypts W (F layouts), biases, W^T (T layouts) and zero
 * momentum under the public key. */
HETEE_API int hetee_refine_state_encrypt(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                                         const hetee_refine_plan *p, const hetee_refine_weights *w,
                                         hetee_refine_state **out) HETEE_WUR;
HETEE_API void hetee_refine_state_free(hetee_refine_state *s);
/* Data cursor: epoch, next position in the epoch's order, steps done. */
HETEE_API void hetee_refine_state_cursor(const hetee_refine_state *s, uint32_t *epoch, uint32_t *next, uint64_t *steps);
HETEE_API void hetee_refine_state_set_cursor(hetee_refine_state *s, uint32_t epoch, uint32_t next);

/* Data provider: samples idx[0..count) (count <= B) of x (input_size floats
 * each) and labels (class indices as floats; for MSE, class c's target is
 * one-hot) encrypted under the public key: the stage-0 input (F[0]), the
 * layer inputs as G[0] weight polynomials when layer 0 trains, the one-hot
 * labels (one ciphertext). */
HETEE_API int hetee_refine_batch_encrypt(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                                         const hetee_refine_plan *p, const float *x, const float *labels,
                                         const uint32_t *idx, uint32_t count, hetee_refine_batch **out) HETEE_WUR;
HETEE_API void hetee_refine_batch_free(hetee_refine_batch *b);
HETEE_API uint32_t hetee_refine_batch_count(const hetee_refine_batch *b);
/* The same with the DP's witness (docs/refine.md "What is checked"): the
 * layer-0 input values of the batch sealed to the enclave's release key
 * release_pk (crypto_box_seal; the enclave's session command 7), bound to
 * model_id and the DP's batch number batch_no (distinct per batch of this
 * DP). Before the host can use it, the DP signs hetee_refine_batch_auth_msg
 * with its Ed25519 identity key (hetee_party_key_sign) and attaches the
 * signature (hetee_refine_batch_set_auth). An enclave job refuses a step
 * whose batch has no witness or an authorization that does not verify
 * (HETEE_ERR_AUTH); layer 0's products are checked against the witness
 * (HETEE_ERR_INTEGRITY when the host's ciphertexts or products disagree). */
HETEE_API int hetee_refine_batch_encrypt_witness(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                                                 const hetee_refine_plan *p, const float *x, const float *labels,
                                                 const uint32_t *idx, uint32_t count, uint32_t model_id,
                                                 const uint8_t release_pk[32], uint64_t batch_no,
                                                 hetee_refine_batch **out) HETEE_WUR;
/* The bytes the DP signs for b with identity dp_pk (*msg malloc'd). */
HETEE_API int hetee_refine_batch_auth_msg(const hetee_refine_batch *b, const uint8_t dp_pk[32], uint8_t **msg,
                                          size_t *len) HETEE_WUR;
HETEE_API int hetee_refine_batch_set_auth(hetee_refine_batch *b, const uint8_t dp_pk[32], const uint8_t sig[64]) HETEE_WUR;
/* 1 when b carries a witness with an attached authorization. */
HETEE_API int hetee_refine_batch_has_witness(const hetee_refine_batch *b);
/* Serialized batch (the DP hands it to the host; little-endian): "HTRB" |
 * u32 version 3 | parameters fingerprint[32] | u32 batch | u32 k | u32
 * classes | u32 count | u32 n_in | u32 n_gw | (n_in + n_gw) x (u64 len |
 * ciphertext) | u64 len | labels ciphertext | u8 witness (0 or 1) [| u64
 * batch_no | dp_pk[32] | sig[64] | u64 len | sealed witness (exactly
 * the size a witness of count x k values has)]. The loader checks the
 * parameters, the plan's batch, input width and classes, 1 <= count <=
 * batch, the ciphertext counts of F[0] (input) and G[0] (when layer 0
 * trains; 0 otherwise), each ciphertext's level, size and scale and that no
 * byte follows; version 2 files are refused (HETEE_ERR_FORMAT /
 * HETEE_ERR_VERSION / HETEE_ERR_CONTEXT /
 * HETEE_ERR_SHAPE / HETEE_ERR_TRUNCATED / the ciphertext loader's errors). */
HETEE_API int hetee_refine_batch_save(const hetee_refine_batch *b, uint8_t **buf, size_t *len) HETEE_WUR;
HETEE_API int hetee_refine_batch_load(const hetee_ckks_context *ctx, const hetee_refine_plan *p, const uint8_t *buf,
                                      size_t len, hetee_refine_batch **out) HETEE_WUR;

typedef struct hetee_refine_stats {
  uint64_t steps, updates, samples, products;
  uint64_t trusted_enc, trusted_dec;
  double host_s, trusted_s; /* host wall outside trusted calls; trusted CPU */
  double dp_wall_s, dp_cpu_s; /* the data provider's encryption inside hetee_refine_run */
} hetee_refine_stats;

/* One step on the host: forward, loss, back, gradient accumulation; the
 * update pass when `accumulate` steps are pending (or flush != 0 and some
 * are). threads: OpenMP threads for the products. HETEE_ERR_INTEGRITY: the
 * trusted side's check of a product failed (docs/refine.md "Integrity of
 * the host's products"); that trusted side then refuses every step. */
HETEE_API int hetee_refine_step(hetee_refine_state *s, hetee_refine_trusted *t, const hetee_refine_batch *b,
                                int threads, hetee_refine_stats *st) HETEE_WUR;
HETEE_API int hetee_refine_flush(hetee_refine_state *s, hetee_refine_trusted *t, int threads,
                                 hetee_refine_stats *st) HETEE_WUR;
HETEE_API int hetee_refine_pending_steps(const hetee_refine_state *s);

/* The model provider's view: decrypts the current weights (and momentum)
 * with the secret key (the MP asks the enclave to release them: `model fetch`). */
HETEE_API int hetee_refine_state_decrypt(const hetee_refine_state *s, const hetee_ckks_secret_key *sk,
                                         hetee_refine_weights *out) HETEE_WUR;

/* Checkpoint (version 3): the trained layers' encrypted weights, biases,
 * W^T, momentum and the cursor, written atomically (tmp + fsync + rename +
 * directory fsync); only between updates (no pending gradient:
 * HETEE_ERR_STATE otherwise). The frozen layers' ciphertexts (layers below
 * the first trained one), which never change, are in a separate file
 * PATH.frozen ("HTRF"), written atomically once per state (again only when
 * that file is gone or not the one this state wrote or read); the
 * checkpoint names it by its BLAKE2b-256 digest and size.
 * hetee_refine_checkpoint_write_full puts the frozen layers inside the
 * checkpoint instead (one self-contained file: the MP's initial state). */
HETEE_API int hetee_refine_checkpoint_write(const hetee_refine_state *s, const char *path) HETEE_WUR;
HETEE_API int hetee_refine_checkpoint_write_full(const hetee_refine_state *s, const char *path) HETEE_WUR;
/* Reads either form. Errors: HETEE_ERR_VERSION (an older checkpoint),
 * HETEE_ERR_NOT_FOUND (no checkpoint, or no PATH.frozen), HETEE_ERR_AUTH
 * (PATH.frozen or the inline section is not the one the checkpoint names:
 * digest, size, parameters, layers), HETEE_ERR_TRUNCATED, HETEE_ERR_FORMAT,
 * HETEE_ERR_SHAPE / HETEE_ERR_CONTEXT (another plan or parameters). */
HETEE_API int hetee_refine_checkpoint_read(const hetee_ckks_context *ctx, const hetee_refine_plan *p,
                                           const char *path, hetee_refine_state **out) HETEE_WUR;
/* Reads the checkpoint without opening PATH.frozen: a state whose trained
 * layers and cursor are loaded, for hetee_refine_auth_msg (the MP's
 * authorization of a resume); step, validation, decryption and checkpoint
 * writes refuse it (HETEE_ERR_STATE). */
HETEE_API int hetee_refine_checkpoint_read_trained(const hetee_ckks_context *ctx, const hetee_refine_plan *p,
                                                   const char *path, hetee_refine_state **out) HETEE_WUR;

/* OpenMP threads the model / data providers use for weight-layout
 * encryptions (default 1; not thread-safe: set it before any work). */
HETEE_API void hetee_refine_set_provider_threads(int threads);

/* ---- drivers (refine_run.c) ---- */
/* Runs the encrypted refining from the state's cursor until `epochs` epochs
 * are done over samples 0..count-1 of x / labels: per step the data
 * provider's encryption of the next B samples of the epoch's order (public
 * key; its wall time goes to *dp_s), hetee_refine_step, and after an update
 * a checkpoint (when ckpt is not NULL) every ckpt_every updates and at each
 * epoch's end (after flushing a partial accumulation). stop_after_steps > 0:
 * return after that many steps of this call (tests). */
typedef struct hetee_refine_run_options {
  int threads;
  const char *ckpt;
  uint32_t ckpt_every;
  uint64_t stop_after_steps;
  uint32_t epochs;
  /* writes the checkpoints when set (e.g. hetee_refine_checkpoint_write_sealed
   * for an enclave job); NULL: hetee_refine_checkpoint_write */
  int (*ckpt_write)(const hetee_refine_state *s, hetee_refine_trusted *t, const char *path);
  /* called after each epoch (after its flush and checkpoint), e.g. for
   * hetee_refine_validate; a non-zero return stops the run with it */
  int (*epoch_end)(hetee_refine_state *s, hetee_refine_trusted *t, uint32_t epoch, void *arg);
  void *epoch_arg;
  /* the data provider's witness (an enclave job requires one per batch):
   * when release_pk is set, batches are made with
   * hetee_refine_batch_encrypt_witness for dp_model, batch number
   * (epoch << 32) | position in the epoch's order, and signed by dp_sign
   * (e.g. hetee_party_key_sign through a wrapper) as identity dp_pk */
  const uint8_t *release_pk;
  uint32_t dp_model;
  const uint8_t *dp_pk;
  int (*dp_sign)(void *arg, const uint8_t *msg, size_t len, uint8_t sig[64]);
  void *dp_sign_arg;
} hetee_refine_run_options;
HETEE_API int hetee_refine_run(hetee_refine_state *s, hetee_refine_trusted *t, const hetee_ckks_public_key *pk,
                               const float *x, const float *labels, uint32_t count,
                               const hetee_refine_run_options *o, hetee_refine_stats *st, double *dp_s) HETEE_WUR;
/* The plaintext twin of hetee_refine_run (same order, same update points). */
HETEE_API int hetee_refine_plain_run(hetee_refine_plain *t, const float *x, const float *labels, uint32_t count,
                                     uint32_t epochs) HETEE_WUR;
/* Largest |a - b| over every weight and bias (and momentum when with_v). */
HETEE_API double hetee_refine_weights_maxdiff(const hetee_refine_weights *a, const hetee_refine_weights *b, int with_v);

/* ---- the trusted side behind another implementation (the enclave) ----
 * The host loop calls the trusted side through these four operations; the
 * in-process implementation above (hetee_refine_trusted_new, holding the
 * secret key) is the test twin, the enclave-process implementation is
 * hetee_host_refine_open below. Arrays are sized by the plan's layouts
 * (refine_internal.h documents each); outputs are fresh ciphertexts. */
typedef struct hetee_refine_trusted_ops {
  int (*forward)(void *arg, int l, hetee_ckks_ciphertext *const *out, uint32_t count, hetee_ckks_ciphertext **next_in,
                 hetee_ckks_ciphertext **next_gw);
  int (*loss)(void *arg, hetee_ckks_ciphertext *const *logits, const hetee_ckks_ciphertext *labels, uint32_t count,
              hetee_ckks_ciphertext **dG, hetee_ckks_ciphertext **dT);
  int (*back)(void *arg, int l, hetee_ckks_ciphertext *const *u, uint32_t count, hetee_ckks_ciphertext **dG,
              hetee_ckks_ciphertext **dT);
  int (*update)(void *arg, int l, hetee_ckks_ciphertext *const *gacc, uint32_t nsamples,
                hetee_ckks_ciphertext *const *W, hetee_ckks_ciphertext *const *bias, hetee_ckks_ciphertext *const *V,
                hetee_ckks_ciphertext **nW, hetee_ckks_ciphertext **nbias, hetee_ckks_ciphertext **nWT,
                hetee_ckks_ciphertext **nV);
  /* trusted CPU seconds so far; encryption / decryption counters (may be NULL) */
  double (*cpu_s)(void *arg);
  void (*counts)(void *arg, uint64_t *enc, uint64_t *dec);
  void (*free)(void *arg); /* called by hetee_refine_trusted_free (may be NULL) */
  /* the step's batch witness (REFINE_WITNESS; may be NULL: not sent) */
  int (*witness)(void *arg, uint32_t count, uint64_t batch_no, const uint8_t dp[32], const uint8_t sig[64],
                 const uint8_t *sealed, size_t len);
  /* frozen layer l's W (F layout) and bias, once per job (REFINE_FROZEN; may be NULL) */
  int (*frozen)(void *arg, int l, hetee_ckks_ciphertext *const *W, hetee_ckks_ciphertext *const *bias);
  /* trained layer l's initial W (F layout), bias and momentum, once per job
   * before its first step (REFINE_INIT; may be NULL: not sent) */
  int (*init)(void *arg, int l, hetee_ckks_ciphertext *const *W, hetee_ckks_ciphertext *const *bias,
              hetee_ckks_ciphertext *const *V);
} hetee_refine_trusted_ops;
HETEE_API int hetee_refine_trusted_new_ops(const hetee_refine_plan *p, const hetee_refine_trusted_ops *ops, void *arg,
                                           hetee_refine_trusted **out) HETEE_WUR;

/* ---- the refine spec: what the enclave rebuilds the plan from ----
 * Wire (little-endian): "HTRS" | u16 version | u16 nl | nl x (u32 k |
 * u32 m | u8 act) | u32 batch | u32 accumulate | i32 train_layers | u8 loss
 * | f64 lr | f64 momentum | f64 weight_decay | u64 seed | u32 N; version 2
 * (a schedule other than constant) appends u8 kind | u32 step_every |
 * f64 gamma | u32 total | f64 lr_min. A constant schedule is written as
 * version 1 (the same bytes as before schedules existed).
 * The plan is a deterministic function of the spec (hetee_refine_plan_build),
 * so the enclave, given the spec, knows every layout and count itself. */
#define HETEE_REFINE_SPEC_VERSION 2
#define HETEE_REFINE_MAX_WIDTH 65536 /* k, m of one layer */
HETEE_API int hetee_refine_spec_encode(const hetee_refine_plan *p, uint8_t **buf, size_t *len) HETEE_WUR;
/* Decodes and validates (HETEE_ERR_FORMAT / HETEE_ERR_VERSION / HETEE_ERR_SHAPE)
 * and builds the plan. */
HETEE_API int hetee_refine_spec_decode(const uint8_t *buf, size_t len, hetee_refine_plan *out) HETEE_WUR;

/* ---- the enclave process (src/host/refine_calls.c, library hetee_host) ----
 * Binding (docs/refine.md, "In the enclave process"): REFINE_OPEN carries
 * the spec, the model id, the id of the model provider's session and an
 * authorization sealed by that session whose plaintext is
 *   "hetee-refine-auth-v1\0" | u32 model | SHA-256(spec)[32] | ...
 * (hetee_refine_auth_msg / _dps, below: the state's digests and the job's
 * contributors). The enclave opens a job only if the session is a
 * model provider's, the authorization opens under it, names this model and
 * this spec's digest, and that MP owns the model (set its release policy
 * first). The plan the enclave uses is rebuilt from the spec, so the host
 * cannot pick layouts, hyper-parameters or trained layers. */
struct hetee_host_enclave;
#define HETEE_REFINE_AUTH_CONTEXT "hetee-refine-auth-v1"
/* The authorization plaintext for the state the MP encrypted (*msg
 * malloc'd): "hetee-refine-auth-v1\0" | u32 model | SHA-256(spec of s's
 * plan) | u32 t | t x BLAKE2b-256 digest of each trained layer's W, bias
 * and (momentum > 0) momentum ciphertexts (u64 len | serialized bytes, in
 * that order), then, when s holds its frozen layers (not a state read by
 * hetee_refine_checkpoint_read_trained), u32 f (= first trained layer) |
 * f x the digest of each frozen layer's W and bias ciphertexts: the
 * enclave then decrypts those once per job and checks their forward
 * products (docs/refine.md "What is checked"). The MP seals it with
 * hetee_client_session_seal and hands it to the host. */
HETEE_API int hetee_refine_auth_msg(uint32_t model_id, const hetee_refine_state *s, uint8_t **msg,
                                    size_t *len) HETEE_WUR;
/* The same with the job's contributors (docs/refine.md "Who may
 * contribute"): n_dps (1..HETEE_POLICY_MAX_DPS) data providers' Ed25519
 * keys, the only ones whose batches the enclave then accepts in this job
 * (whether or not the model's release policy names them). The message
 * always carries the frozen section then (u32 f, 0 when s holds no frozen
 * layers), followed by u32 n_dps | n_dps x key[32]. n_dps 0 is
 * hetee_refine_auth_msg: no section, and the job accepts the DPs of the
 * model's release policy (read at each batch). Errors: HETEE_ERR_INVALID_ARG
 * (more than HETEE_POLICY_MAX_DPS keys, or the same key twice). */
HETEE_API int hetee_refine_auth_msg_dps(uint32_t model_id, const hetee_refine_state *s, const uint8_t (*dps)[32],
                                        size_t n_dps, uint8_t **msg, size_t *len) HETEE_WUR;
/* Opens a refine job in the enclave and returns a trusted side that calls
 * it (hetee_refine_step etc. use it unchanged; hetee_refine_trusted_cpu_s
 * is the enclave process's CPU on refine requests, read from its STATS).
 * ctx: the enclave's parameters (from its key bundle). The handle e must
 * outlive *out; hetee_refine_trusted_free closes the job. */
HETEE_API int hetee_host_refine_open(struct hetee_host_enclave *e, const hetee_ckks_context *ctx,
                                     const hetee_refine_plan *p, uint32_t model_id, const uint8_t session_id[16],
                                     const uint8_t *auth, size_t auth_len, hetee_refine_trusted **out) HETEE_WUR;
/* The refined weights of trained layer l, decrypted by the enclave and
 * sealed to the job's model-provider session (*sealed malloc'd). */
HETEE_API int hetee_host_refine_fetch(hetee_refine_trusted *t, const hetee_refine_state *s, int l, uint8_t **sealed,
                                      size_t *len) HETEE_WUR;
/* A fetch the model provider authorizes (docs/refine.md "Fetch"): auth is
 * hetee_refine_fetch_auth_msg sealed by any live session of the job's MP
 * (hetee_client_session_seal); the enclave opens it in that session (its
 * counter refuses a replay), checks the session is the job owner's and the
 * message names the job's model, spec and layer l, and seals the weights to
 * that session. Errors: HETEE_ERR_NOT_FOUND (no such session),
 * HETEE_ERR_AUTH (another party's session, garbled, another model / spec /
 * layer), HETEE_ERR_REPLAY, then those of hetee_host_refine_fetch. */
#define HETEE_REFINE_FETCH_CONTEXT "hetee-refine-fetch-v1"
HETEE_API int hetee_refine_fetch_auth_msg(uint32_t model_id, const hetee_refine_plan *p, int l, uint8_t **msg,
                                          size_t *len) HETEE_WUR;
HETEE_API int hetee_host_refine_fetch_auth(hetee_refine_trusted *t, const hetee_refine_state *s, int l,
                                           const uint8_t *auth, size_t auth_len, uint8_t **sealed,
                                           size_t *len) HETEE_WUR;
/* The model provider's side: the opened plaintext of a fetch into
 * w->w[l] (m x k) and w->b[l] (shapes must match w's). Errors:
 * HETEE_ERR_FORMAT, HETEE_ERR_SHAPE. */
HETEE_API int hetee_refine_fetch_parse(const uint8_t *msg, size_t len, uint32_t model_id, hetee_refine_weights *w) HETEE_WUR;

/* ---- durable enclave jobs (docs/refine.md "Durable enclave jobs") ----
 * An enclave job survives the enclave process: REFINE_SAVE seals the job's
 * state (spec, model and owner, the authorized digests, the kept weights,
 * bias and momentum, per-layer update counts, the samples and updates it
 * applied, the epochs the host closed, the cursor the host declares, a
 * random job uid) under a key derived from the enclave's sealing key;
 * REFINE_RESUME in a (possibly new) enclave process on the same platform
 * with the same unsealed state (hetee_host_unseal) reopens it and re-issues
 * the trained layers' encrypted W, bias, W^T and momentum from its kept
 * weights, so the host's part of the checkpoint cannot be mixed in from
 * another one. */
#define HETEE_REFINE_EPOCH_LOG 256
/* Seals t's enclave job (declaring s's cursor) and writes s's checkpoint
 * with the sealed state appended, one file, atomically (tmp + fsync +
 * rename). Errors: HETEE_ERR_INVALID_ARG (t is not an enclave job),
 * HETEE_ERR_STATE (pending steps; a cursor that disagrees with the samples
 * the job applied: within an epoch `next` must equal the samples applied
 * since the epoch began, a new epoch starts at 0), HETEE_ERR_INTEGRITY (the
 * job stopped at a failed check), HETEE_ERR_IO. Has the signature of
 * hetee_refine_run_options.ckpt_write. hetee_refine_checkpoint_read reads
 * the same file (ignoring the sealed part). */
HETEE_API int hetee_refine_checkpoint_write_sealed(const hetee_refine_state *s, hetee_refine_trusted *t,
                                                   const char *path) HETEE_WUR;
/* The parts of hetee_refine_checkpoint_write_sealed, so that a caller that
 * serializes the enclave's handle with a lock holds it only for the
 * enclave's part: hetee_host_refine_save asks the enclave for REFINE_SAVE
 * (declaring s's cursor; s without pending steps) and returns the job's uid
 * and sealed state (*blob malloc'd); hetee_refine_checkpoint_write_job
 * writes s's checkpoint with them (no enclave call).
 * hetee_refine_checkpoint_write_frozen writes PATH.frozen, the frozen
 * layers' file (tmp, fsync, rename, directory fsync; no enclave call; 0 at
 * once when s has no frozen layers or wrote / read that file already and it
 * is still there with its size): a checkpoint to PATH afterwards finds it
 * and writes only its own file (a checkpoint always names a frozen file
 * that is durable before it). */
HETEE_API int hetee_host_refine_save(hetee_refine_trusted *t, const hetee_refine_state *s, uint8_t uid[16],
                                     uint8_t **blob, size_t *blen) HETEE_WUR;
HETEE_API int hetee_refine_checkpoint_write_job(const hetee_refine_state *s, const char *path, const uint8_t uid[16],
                                                const uint8_t *blob, size_t blen) HETEE_WUR;
HETEE_API int hetee_refine_checkpoint_write_frozen(const hetee_refine_state *s, const char *path) HETEE_WUR;
/* Where checkpoint path keeps its frozen layers, from its header only:
 * *mode 0 (no frozen layers), 1 (inside the checkpoint), 2 (in
 * PATH.frozen, *size bytes, named by digest). Errors: the reader's for
 * the header (HETEE_ERR_NOT_FOUND, _TRUNCATED, _FORMAT, _VERSION). */
HETEE_API int hetee_refine_checkpoint_frozen_info(const char *path, int *mode, uint64_t *size) HETEE_WUR;
/* Reads a sealed checkpoint of plan p, reopens its job in enclave e and
 * returns the encrypted state (trained layers as the enclave re-issued them,
 * the cursor and counters of the sealed state) and a trusted side calling
 * the reopened job (hetee_host_refine_fetch works once the job's model
 * provider has a session with e). Errors: HETEE_ERR_AUTH (sealed by another
 * enclave binary or platform, garbled, another job's uid or another spec,
 * the model no longer the job's MP's in e), HETEE_ERR_FORMAT /
 * HETEE_ERR_TRUNCATED (not a sealed checkpoint, truncated), HETEE_ERR_STATE
 * (that job is open in e already), the checkpoint reader's errors. */
HETEE_API int hetee_host_refine_resume(struct hetee_host_enclave *e, const hetee_ckks_context *ctx,
                                       const hetee_refine_plan *p, const char *path, hetee_refine_state **state,
                                       hetee_refine_trusted **trusted) HETEE_WUR;
/* What the enclave job applied (counted by the enclave at each update):
 * samples and updates in total, and the samples of each epoch the host
 * closed (at a sealed checkpoint with cursor (e + 1, 0)). */
typedef struct hetee_refine_job_status {
  uint8_t uid[16];
  uint64_t samples, updates;
  uint32_t epochs; /* entries of epoch_samples */
  uint64_t epoch_samples[HETEE_REFINE_EPOCH_LOG];
} hetee_refine_job_status;
HETEE_API int hetee_host_refine_status(hetee_refine_trusted *t, hetee_refine_job_status *out) HETEE_WUR;

/* ---- validation set (docs/refine.md "Validation set") ----
 * The MP encrypts a labelled validation set under the enclave's public key
 * (per batch of B: the layer-0 input and the one-hot labels, as a DP's
 * batch without the gradient polynomials). The host runs the forward pass
 * with the current encrypted weights; the enclave decrypts the logits and
 * labels, accumulates loss and correct predictions and returns a report
 * sealed to the job's model provider's session (fixed size: the host learns
 * nothing from it):
 *   "hetee-refine-val-v1\0" | u32 model | u64 updates | u64 samples |
 *   u64 correct | f64 loss sum | BLAKE2b-256 of the label ciphertexts
 *   (u64 len | serialized bytes each, in order)
 * The digest lets the MP check the labels were its own (anyone can encrypt
 * under the public key). */
typedef struct hetee_refine_valset hetee_refine_valset;
HETEE_API int hetee_refine_valset_encrypt(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                                          const hetee_refine_plan *p, const float *x, const float *labels,
                                          uint32_t count, hetee_refine_valset **out) HETEE_WUR;
/* The same with the MP's witness of every chunk of B samples (docs/refine.md
 * "Validation set"): chunk i's layer-0 values sealed to the enclave's
 * release key release_pk, bound to model_id and i. Before the host can use
 * it, the MP signs hetee_refine_valset_auth_msg of every chunk i <
 * hetee_refine_valset_chunks with its Ed25519 identity key (the model's
 * owner; hetee_party_key_sign) and attaches the signature
 * (hetee_refine_valset_set_auth); the message binds the model, the job's
 * spec (hetee_refine_spec_encode of p), the MP's key, i, the number of
 * chunks, the count and the sealed bytes. An enclave job refuses a
 * validation chunk without a valid witness (HETEE_ERR_AUTH) and checks
 * layer 0's products of the pass against it (HETEE_ERR_INTEGRITY). */
HETEE_API int hetee_refine_valset_encrypt_witness(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                                                  const hetee_refine_plan *p, const float *x, const float *labels,
                                                  uint32_t count, uint32_t model_id, const uint8_t release_pk[32],
                                                  hetee_refine_valset **out) HETEE_WUR;
HETEE_API uint32_t hetee_refine_valset_chunks(const hetee_refine_valset *vs);
HETEE_API int hetee_refine_valset_auth_msg(const hetee_refine_valset *vs, uint32_t chunk, const uint8_t mp_pk[32],
                                           uint8_t **msg, size_t *len) HETEE_WUR;
HETEE_API int hetee_refine_valset_set_auth(hetee_refine_valset *vs, uint32_t chunk, const uint8_t mp_pk[32],
                                           const uint8_t sig[64]) HETEE_WUR;
/* The same for every chunk: sign (e.g. hetee_party_key_sign through a
 * wrapper) signs as identity mp_pk. */
HETEE_API int hetee_refine_valset_sign(hetee_refine_valset *vs, const uint8_t mp_pk[32],
                                       int (*sign)(void *arg, const uint8_t *msg, size_t len, uint8_t sig[64]),
                                       void *arg) HETEE_WUR;
/* 1 when every chunk carries a witness with an attached authorization. */
HETEE_API int hetee_refine_valset_has_witness(const hetee_refine_valset *vs);
HETEE_API void hetee_refine_valset_free(hetee_refine_valset *vs);
HETEE_API uint32_t hetee_refine_valset_count(const hetee_refine_valset *vs);
/* Serialized set (the MP hands it to the host; little-endian): "HTRV" |
 * u32 version 2 | parameters fingerprint[32] | u32 batch | u32 k | u32
 * classes | u32 count | u32 nb | nb x (u32 count | u32 n | n x (u64 len |
 * ciphertext) | u64 len | labels ciphertext | u8 witness (0 or 1) [| u32
 * model | mp_pk[32] | sig[64] | u64 len | sealed witness (exactly the size
 * a witness of count x k values has)]). The loader checks the parameters,
 * the plan's batch, input width, classes and layer-0 input count, counts
 * that add up, each ciphertext's level, scale and size and the witness
 * sizes (HETEE_ERR_FORMAT / HETEE_ERR_SHAPE / HETEE_ERR_CONTEXT /
 * HETEE_ERR_TRUNCATED); version 1 (no witnesses) is HETEE_ERR_VERSION. */
HETEE_API int hetee_refine_valset_save(const hetee_refine_valset *vs, uint8_t **buf, size_t *len) HETEE_WUR;
HETEE_API int hetee_refine_valset_load(const hetee_ckks_context *ctx, const hetee_refine_plan *p, const uint8_t *buf,
                                       size_t len, hetee_refine_valset **out) HETEE_WUR;
/* The digest of the set's label ciphertexts the report carries. */
HETEE_API int hetee_refine_valset_labels_digest(const hetee_refine_valset *vs, uint8_t out[32]) HETEE_WUR;
/* Host: one pass over vs with s's current weights through t's enclave job;
 * *sealed (malloc'd) is the report sealed to the job's MP session.
 * HETEE_ERR_UNSUPPORTED for the in-process twin; HETEE_ERR_NOT_FOUND when
 * the job's MP has no session. */
HETEE_API int hetee_refine_validate(hetee_refine_state *s, hetee_refine_trusted *t, const hetee_refine_valset *vs,
                                    int threads, uint8_t **sealed, size_t *len) HETEE_WUR;
typedef struct hetee_refine_val_report {
  uint64_t updates, samples, correct;
  double loss_sum;
  double accuracy, loss; /* correct / samples, loss_sum / samples */
  uint8_t labels_digest[32];
} hetee_refine_val_report;
/* MP: the opened report (HETEE_ERR_FORMAT: not a report of model_id). */
HETEE_API int hetee_refine_val_report_parse(const uint8_t *msg, size_t len, uint32_t model_id,
                                            hetee_refine_val_report *out) HETEE_WUR;
/* Plaintext reference: mean loss (the plan's loss) and accuracy of w on a set. */
HETEE_API int hetee_refine_plain_eval(const hetee_refine_plan *p, const hetee_refine_weights *w, const float *x,
                                      const float *labels, size_t count, double *loss, double *accuracy) HETEE_WUR;

#ifdef __cplusplus
}
#endif
#endif

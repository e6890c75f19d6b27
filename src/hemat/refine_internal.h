/* refine_internal.h — shared between the refining files (not public). */
#ifndef HETEE_REFINE_INTERNAL_H
#define HETEE_REFINE_INTERNAL_H

#include "hetee/refine.h"

#define REFINE_LEVEL 1
#define REFINE_IN_SCALE 0x1p26
#define REFINE_W_SCALE 0x1p34
#define REFINE_OUT_SCALE 0x1p60
#define REFINE_VMAX 0x1p20 /* public saturation bound of every encoded value */

double hetee_refine_act_f(int a, double z);
double hetee_refine_act_d(int a, double z);
void hetee_refine_loss_grad(int loss, const double *z, int c, int label, double *d);
void hetee_refine_sgd(const hetee_refine_config *c, double g, float *p, float *v);

/* Position of weight W(o, c) (1x1 kernel) in a layout's weight polynomials. */
static inline uint64_t refine_w_pos(const hetee_hemat_layout *L, int o, int c) {
  int mb = L->pack.mb, cb = L->pack.cb;
  uint64_t ct = (uint64_t)(o / mb) * (uint64_t)L->ncb + (uint64_t)(c / cb);
  uint64_t co = (uint64_t)(o % mb) * L->spacing_s + L->off_o - (uint64_t)(c % cb) * L->hw;
  return ct * L->n + co;
}
/* Compact layout of momentum: value v at ct v / N, coefficient v % N. */
static inline size_t refine_compact_cts(size_t nvals, size_t n) { return (nvals + n - 1) / n; }

typedef hetee_ckks_ciphertext ct_t;

/* Trusted side entry points (refine_trusted.c). Arrays are sized by the
 * plan's layouts; outputs are fresh ciphertexts (allocated by the call). */
int refine_tr_forward(hetee_refine_trusted *t, int l, ct_t *const *out, uint32_t count, ct_t **next_in, ct_t **next_gw);
int refine_tr_loss(hetee_refine_trusted *t, ct_t *const *logits, const ct_t *labels, uint32_t count, ct_t **dG,
                   ct_t **dT);
int refine_tr_back(hetee_refine_trusted *t, int l, ct_t *const *u, uint32_t count, ct_t **dG, ct_t **dT);
int refine_tr_update(hetee_refine_trusted *t, int l, ct_t *const *gacc, uint32_t nsamples, ct_t *const *W,
                     ct_t *const *bias, ct_t *const *V, ct_t **nW, ct_t **nbias, ct_t **nWT, ct_t **nV);
void refine_tr_counts(const hetee_refine_trusted *t, uint64_t *enc, uint64_t *dec);
/* Decrypts layer l's weights (F layout, n_w_cts) and bias (nmb) into
 * w (m x k) and b (m): the model provider's fetch (the enclave seals the
 * values to its session). Checked like every trusted entry point. */
int refine_tr_fetch(hetee_refine_trusted *t, int l, ct_t *const *W, ct_t *const *bias, float *w, float *b);
/* Layer l's accumulated gradient in parts: G output ciphertexts
 * first..first+n-1, decrypted on arrival and kept (m x (k+1) values) until
 * refine_tr_update is called with gacc = NULL, which requires all of them
 * (each once). For gradients above one frame (the enclave's requests). */
int refine_tr_grad_feed(hetee_refine_trusted *t, int l, size_t first, ct_t *const *c, size_t n);
/* From now on the trusted side keeps each trained layer's weights, bias
 * and momentum after every update (the enclave: it then decrypts none of
 * them again); refine_tr_update with W = NULL (bias, V ignored) updates the
 * kept ones, refine_tr_fetch with W = NULL reads them. refine_tr_holds: 1
 * once layer l's are kept. */
void refine_tr_keep_weights(hetee_refine_trusted *t);
int refine_tr_holds(const hetee_refine_trusted *t, int l);
/* Durable jobs (the enclave's REFINE_SAVE / REFINE_RESUME, docs/refine.md
 * "Durable enclave jobs"). refine_tr_idle: 1 when nothing is accumulated
 * since the last update (no deltas emitted, no gradient part fed);
 * refine_tr_failed: a check failed. refine_tr_kept: layer l's kept W (m x
 * k), bias, momentum (m x k, m) or NULLs when not held, and its update count.
 * refine_tr_restore: a resumed job's kept weights of layer l (before any
 * update of this trusted side), the check pull-backs recomputed under its
 * own fresh vectors. refine_tr_reissue: the kept layer l encrypted as an
 * update's outputs (W, bias, W^T if a back stage, momentum if > 0). */
int refine_tr_idle(const hetee_refine_trusted *t);
int refine_tr_failed(const hetee_refine_trusted *t);
void refine_tr_kept(const hetee_refine_trusted *t, int l, const float **w, const float **b, const float **vw,
                    const float **vb, uint64_t *updates);
int refine_tr_restore(hetee_refine_trusted *t, int l, const float *w, const float *b, const float *vw, const float *vb,
                      uint64_t updates);
int refine_tr_reissue(hetee_refine_trusted *t, int l, ct_t **nW, ct_t **nbias, ct_t **nWT, ct_t **nV);
/* Freivalds checks of the host's products run so far (per sample and
 * vector for F and T, per vector for G) and how many failed (0 or 1: a
 * failure stops the trusted side, HETEE_ERR_INTEGRITY). In-process only. */
void refine_tr_check_counts(const hetee_refine_trusted *t, uint64_t *checks, uint64_t *failures);
/* CPU seconds spent in the checks (part of hetee_refine_trusted_cpu_s). */
double refine_tr_check_cpu_s(const hetee_refine_trusted *t);
/* The arg of a trusted side made by hetee_refine_trusted_new_ops (NULL otherwise). */
void *refine_tr_ops_arg(const hetee_refine_trusted *t);
/* Layer l's encrypted weights and bias in a state (n_w_cts / nmb of F) and
 * momentum (*nv ciphertexts; 0 and NULL without momentum or training). */
void refine_state_layer(const hetee_refine_state *s, int l, ct_t *const **W, ct_t *const **bias, ct_t *const **V,
                        size_t *nv);

/* Encryption of one layer's objects with either key (sk: the enclave,
 * pk: the model / data provider); out gets fresh ciphertexts. */
typedef struct refine_key {
  const hetee_ckks_context *ctx;
  const hetee_ckks_secret_key *sk; /* one of sk, pk */
  const hetee_ckks_public_key *pk;
  uint64_t *nenc;                  /* counter (may be NULL) */
} refine_key;
/* weights w[co][c] in L's weight polynomials (L->n_w_cts), scale 2^34 */
int refine_enc_weights(const refine_key *k, const hetee_hemat_layout *L, const float *w, ct_t **out);
/* bias polynomials (L->nmb), scale 2^60 */
int refine_enc_bias(const refine_key *k, const hetee_hemat_layout *L, const float *b, ct_t **out);
/* values v[0..n) at global positions pos (ncts ciphertexts), at scale */
int refine_enc_scatter(const refine_key *k, size_t ncts, const uint64_t *pos, const double *v, size_t n, double scale,
                       ct_t **out);
/* transposed copy (k x m) of w (m x k) */
float *refine_transpose(const float *w, int m, int k);
/* momentum of a layer in the compact layout: index i*(k+1)+j, bias j = k */
int refine_enc_momentum(const refine_key *key, const float *vw, const float *vb, int m, int k, ct_t **out);
void refine_free_cts(ct_t **c, size_t n);
const hetee_ckks_context *refine_state_ctx(const hetee_refine_state *s);
/* Validation (docs/refine.md "Validation set"). The trusted side's part,
 * which touches no training state (and runs no product check):
 * refine_tr_vforward decrypts layer l's outputs, applies the activation and
 * encrypts layer l+1's F input; refine_tr_vloss decrypts the logits and
 * one-hot labels and adds each sample's loss to *loss and its correct
 * prediction (argmax, branch-free) to *correct. The host's pass over a set
 * calls ops (refine_host.c). */
int refine_tr_vforward(hetee_refine_trusted *t, int l, ct_t *const *out, uint32_t count, ct_t **next_in);
int refine_tr_vloss(hetee_refine_trusted *t, ct_t *const *logits, const ct_t *labels, uint32_t count, double *loss,
                    uint64_t *correct);
typedef struct refine_val_ops {
  /* the MP's witness of chunk i of nb (REFINE_VWITNESS), before its forward */
  int (*vwitness)(void *arg, uint32_t count, uint32_t chunk, uint32_t nchunks, const uint8_t mp[32],
                  const uint8_t sig[64], const uint8_t *sealed, size_t len);
  int (*forward)(void *arg, int l, ct_t *const *out, uint32_t count, ct_t **next_in);
  int (*loss)(void *arg, ct_t *const *logits, const ct_t *labels, uint32_t count);
} refine_val_ops;
int refine_validate_pass(hetee_refine_state *s, const hetee_refine_valset *vs, int threads, const refine_val_ops *ops,
                         void *arg);
/* One sample's loss and whether argmax(z) is the label (branch-free). */
double refine_sample_loss(int loss, const double *z, int c, int label, int *correct);
int refine_argmax(const double *z, int c); /* branch- and index-free on z */
#define HETEE_REFINE_VAL_TAG "hetee-refine-val-v1"
#define HETEE_REFINE_VAL_LEN (sizeof HETEE_REFINE_VAL_TAG + 4 + 8 + 8 + 8 + 8 + 32)
/* The enclave's id of an enclave job's trusted side (0 otherwise;
 * src/host/refine_calls.c, for tests that write raw requests). */
uint32_t refine_host_job_id(const hetee_refine_trusted *t);
/* The digest (BLAKE2b-256) and size of a state's frozen-layer section
 * once known, and the PATH.frozen file known to hold it (refine_host.c). */
typedef struct refine_ck_cache {
  int known;
  uint8_t digest[32];
  uint64_t size;
  char *path;
} refine_ck_cache;

/* Sealed checkpoints (refine_ckpt.c): the checkpoint followed by "HTRJ" |
 * uid[16] | u64 len | the enclave's sealed job state, one file written
 * atomically; the reader requires the trailer (*blob malloc'd). */
int refine_checkpoint_write_job(const hetee_refine_state *s, const char *path, const uint8_t uid[16],
                                const uint8_t *blob, size_t blen);
int refine_checkpoint_read_job(const hetee_ckks_context *ctx, const hetee_refine_plan *p, const char *path,
                               hetee_refine_state **out, uint8_t uid[16], uint8_t **blob, size_t *blen);
void refine_state_set_counters(hetee_refine_state *s, uint32_t epoch, uint32_t next, uint64_t steps, uint64_t updates);
void refine_state_counters(const hetee_refine_state *s, uint64_t *updates);
/* Replaces trained layer l's W, bias, W^T (if a back stage), momentum (if
 * any) by the given ciphertexts (taken over). */
int refine_state_replace_layer(hetee_refine_state *s, int l, ct_t **W, ct_t **bias, ct_t **WT, ct_t **V);
const hetee_refine_plan *refine_state_plan(const hetee_refine_state *s);

/* refine_ckpt.c's access to a state (the struct is refine_host.c's):
 * pointers into s, valid while it lives; W, bias, WT, V are s's per-layer
 * arrays [HETEE_REFINE_MAX_LAYERS]. */
typedef struct refine_state_fields {
  const hetee_ckks_context *ctx;
  const hetee_refine_plan *p;
  ct_t ***W, ***bias, ***WT, ***V;
  uint32_t *epoch, *next, *pending;
  uint64_t *steps, *updates;
  refine_ck_cache *fz;
  int *partial;
} refine_state_fields;
void refine_state_fields_of(const hetee_refine_state *s, refine_state_fields *f);
/* a state of plan p with its ciphertext arrays allocated (empty) */
int refine_state_alloc(const hetee_ckks_context *ctx, const hetee_refine_plan *p, hetee_refine_state **out);
/* ---- the data provider's witness of one batch (docs/refine.md "What is
 * checked") ----
 * plain  = "hetee-refine-witness-v1\0" | u32 model | u64 batch_no |
 *          u32 count | u32 k | count x k f32 (little-endian: exactly the
 *          layer-0 input values the DP encrypted, sample by sample)
 * sealed = crypto_box_seal(plain) to the enclave's release key
 *          (REFINE_WIT_SEALED_LEN bytes: a function of count and k only)
 * digest = BLAKE2b-256("hetee-refine-witness-v1\0" | u32 model | u64
 *          batch_no | u32 count | u64 len | sealed)
 * The DP signs (Ed25519, its identity key) the authorization
 *   "hetee-refine-batch-v1\0" | u32 model | dp_pk[32] | u64 batch_no |
 *   u32 count | digest[32]
 * (REFINE_BATCH_AUTH_LEN bytes). The enclave accepts it when dp_pk is one
 * of the model's policy data providers and the signature verifies. */
#define REFINE_WIT_TAG "hetee-refine-witness-v1"
#define REFINE_WIT_HDR (sizeof REFINE_WIT_TAG + 4 + 8 + 4 + 4)
#define REFINE_WIT_SEALBYTES 48 /* crypto_box_SEALBYTES */
#define REFINE_WIT_SEALED_LEN(count, k) (REFINE_WIT_HDR + (size_t)(count) * (size_t)(k) * 4u + REFINE_WIT_SEALBYTES)
#define REFINE_BATCH_AUTH_TAG "hetee-refine-batch-v1"
#define REFINE_BATCH_AUTH_LEN (sizeof REFINE_BATCH_AUTH_TAG + 4 + 32 + 8 + 4 + 32)
#define REFINE_WIT_MAX_ABS 0x1p20
void refine_witness_digest(uint32_t model, uint64_t batch_no, uint32_t count, const uint8_t *sealed, size_t len,
                           uint8_t out[32]);
void refine_batch_auth_bytes(uint32_t model, const uint8_t dp[32], uint64_t batch_no, uint32_t count,
                             const uint8_t digest[32], uint8_t out[REFINE_BATCH_AUTH_LEN]);
/* Trusted side: layer 0's input values of the next step (count x k, from
 * an opened witness; the enclave's REFINE_WITNESS). The next FORWARD 0 (or
 * LOSS of a one-layer model) consumes them: they are the input of layer
 * 0's F and G checks for that step. refine_tr_require_witness: from now on
 * a step without them is refused (HETEE_ERR_AUTH; the enclave's jobs). */
int refine_tr_witness(hetee_refine_trusted *t, const double *x, uint32_t count);
void refine_tr_require_witness(hetee_refine_trusted *t);
/* Stops the trusted side as a failed check does (every later call refused). */
void refine_tr_stop(hetee_refine_trusted *t);
/* Frozen layer l's weights (F layout) and bias, fed as one index space of
 * n_w_cts + nmb ciphertexts (weights first) in order, in parts: decrypted
 * on arrival; when the last arrives the checks' pull-backs of layer l are
 * computed (its forward products are checked from then on) and the values
 * wiped. refine_tr_frozen_done: 1 once every frozen layer was loaded. */
int refine_tr_frozen_feed(hetee_refine_trusted *t, int l, size_t first, ct_t *const *c, size_t n);
int refine_tr_frozen_loaded(const hetee_refine_trusted *t, int l);
/* Trained layer l's weights (F layout), bias and momentum (compact layout)
 * of the job's start: decrypted once, the checks' pull-backs computed, so
 * layer l's forward and W^T products are checked from the next step on;
 * kept (refine_tr_keep_weights: then the first update finds them held and
 * takes no weights; a second load is HETEE_ERR_STATE). Through the ops'
 * `init` when t is an enclave job (REFINE_INIT, checked there against the
 * MP's digest). */
int refine_tr_init_weights(hetee_refine_trusted *t, int l, ct_t *const *W, ct_t *const *bias, ct_t *const *V);
/* The host side: feeds t every frozen layer of s once (through the ops'
 * `frozen` when t is an enclave job), then every trained layer's weights
 * (refine_tr_init_weights). No-op when done already. */
int refine_tr_load_frozen(hetee_refine_trusted *t, const hetee_refine_state *s);
/* A batch's witness and authorization (NULL / 0 when it has none). */
typedef struct refine_batch_wit {
  const uint8_t *sealed;
  size_t len;
  uint64_t batch_no;
  const uint8_t *dp, *sig; /* 32, 64 bytes */
} refine_batch_wit;
int refine_batch_witness(const hetee_refine_batch *b, refine_batch_wit *w);
/* Hands the witness of the step's batch to the trusted side (ops `witness`
 * for an enclave job; the in-process twin has no release key: no-op). */
int refine_tr_pass_witness(hetee_refine_trusted *t, const hetee_refine_batch *b);
/* The same two hand-overs with their parts (a trusted side of ops that
 * wraps another, e.g. a test's host double): ops `witness` / `frozen` of
 * t, or for the in-process twin nothing / refine_tr_frozen_feed. */
int refine_tr_send_witness(hetee_refine_trusted *t, uint32_t count, uint64_t batch_no, const uint8_t dp[32],
                           const uint8_t sig[64], const uint8_t *sealed, size_t len);
int refine_tr_send_frozen(hetee_refine_trusted *t, int l, ct_t *const *W, ct_t *const *bias);
/* ---- the model provider's witness of one validation chunk (docs/refine.md
 * "Validation set") ----
 * plain  = "hetee-refine-val-wit-v1\0" | u32 model | u64 chunk | u32 count
 *          | u32 k | count x k f32: the layout of the DP's witness (same
 *          REFINE_WIT_HDR and REFINE_WIT_SEALED_LEN), another tag, so the
 *          one is never accepted as the other
 * sealed = crypto_box_seal(plain) to the enclave's release key
 * The MP signs (Ed25519, its identity key: the model's owner)
 *   "hetee-refine-vauth-v1\0" | u32 model | SHA-256(spec)[32] | mp_pk[32]
 *   | u32 chunk | u32 nchunks | u32 count | BLAKE2b-256(sealed)[32]
 * (REFINE_VAUTH_LEN bytes); the spec is hetee_refine_spec_encode of the
 * job's plan (the bytes the MP authorized at open). */
#define REFINE_VWIT_TAG "hetee-refine-val-wit-v1"
_Static_assert(sizeof REFINE_VWIT_TAG == sizeof REFINE_WIT_TAG, "the validation witness shares the DP's layout");
#define REFINE_VAUTH_TAG "hetee-refine-vauth-v1"
#define REFINE_VAUTH_LEN (sizeof REFINE_VAUTH_TAG + 4 + 32 + 32 + 4 + 4 + 4 + 32)
void refine_vauth_bytes(uint32_t model, const uint8_t spec_digest[32], const uint8_t mp[32], uint32_t chunk,
                        uint32_t nchunks, uint32_t count, const uint8_t *sealed, size_t len,
                        uint8_t out[REFINE_VAUTH_LEN]);
/* Trusted side: layer 0's input values (count x k, from the opened MP
 * witness; the enclave's REFINE_VWITNESS) of the next validation forward
 * of layer 0 (VLOSS of a one-layer model): its F check's input, used once.
 * An enclave job (refine_tr_require_witness) refuses a validation forward
 * of layer 0 without them (HETEE_ERR_AUTH) and one of layer l >= 1 (VLOSS)
 * that does not follow layer l - 1's of the same chunk (HETEE_ERR_STATE).
 * refine_tr_vreset: a new pass (every layer's pending input dropped). */
int refine_tr_vwitness(hetee_refine_trusted *t, const double *x, uint32_t count);
void refine_tr_vreset(hetee_refine_trusted *t);

#endif

/*
 * hetee/api_client.h — the parties' client of `hetee server` (docs/api.md),
 * used by the `hetee` CLI and embeddable in other programs: signed HTTP
 * requests (libcurl), attestation of the server's enclave against what the
 * party trusts, model upload with its release policy (model provider),
 * encrypted inference jobs and the opening of their results (data
 * provider). Everything is encrypted or opened on the client: the server
 * sees ciphertexts and sealed messages only.
 *
 * A party's home directory (hetee keygen --home DIR) holds
 *   DIR/id, DIR/id.pub   the identity key (hetee_party_key_save format)
 *   DIR/trust            "platform <64 hex>\nmeasurement <64 hex>\n": the
 *                        platform key and enclave measurement it accepts
 *
 * Errors: 0 or a negative hetee_status with a detail (hetee_last_error());
 * HTTP errors map to HETEE_ERR_AUTH (401/403), HETEE_ERR_NOT_FOUND (404),
 * HETEE_ERR_STATE (409), HETEE_ERR_LIMIT (413, 429, 503 after retries),
 * HETEE_ERR_FORMAT (400, 415), HETEE_ERR_IO (connection), with the server's
 * message in the detail. Thread-safety: one connection per thread.
 */
#ifndef HETEE_API_CLIENT_H
#define HETEE_API_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "hetee/client.h"
#include "hetee/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hetee_client_conn hetee_client_conn;

/* Writes DIR/trust (platform key read from platform_dir/platform.pub). */
HETEE_API int hetee_client_home_trust(const char *home, const char *platform_dir, const char *measurement_hex) HETEE_WUR;

/* Loads the identity and trust of `home` and connects to `url`
 * ("http://127.0.0.1:8470"); registers the party with its role
 * (idempotent). Errors: HETEE_ERR_NOT_FOUND (no identity / trust file),
 * the server's answers. */
HETEE_API int hetee_client_connect(const char *url, const char *home, hetee_client_conn **out) HETEE_WUR;
HETEE_API void hetee_client_disconnect(hetee_client_conn *c);

/* Fetches the key bundle and evidence on a fresh nonce and verifies them
 * (platform signature, trusted measurement, binding of the bundle and
 * channel key); on success the connection encrypts under that bundle.
 * v may be NULL. Errors: as hetee_client_verify_evidence. */
HETEE_API int hetee_client_attest(hetee_client_conn *c, hetee_verified_enclave *v) HETEE_WUR;

/* Attests afresh and opens an enclave session through the server; *sid
 * receives its 32-hex-digit id. */
HETEE_API int hetee_client_session_open_remote(hetee_client_conn *c, hetee_client_session **s, char sid[33]) HETEE_WUR;

/* One signed request: body may be NULL (len 0); ctype NULL: none.
 * *status gets the HTTP status, *resp (malloc'd, NUL-terminated, may be
 * NULL) the body. Returns 0 whenever an HTTP answer came back. */
HETEE_API int hetee_client_request(hetee_client_conn *c, const char *method, const char *target, const char *ctype,
                                   const uint8_t *body, size_t len, long *status, uint8_t **resp,
                                   size_t *rlen) HETEE_WUR;

/* Model provider: plans and encrypts the ONNX model under the attested
 * enclave's key (micro-batch `batch`, 0: 64), uploads it, and sets its
 * release policy through an enclave session: outputs `output` ("label",
 * "probs", "logits", "topk" with k), the data providers dps[0..n) (public
 * keys) with budgets (images, -1 none; NULL: none). */
typedef struct hetee_client_model_options {
  const char *name;
  uint32_t batch;
  const char *output;
  int k;
  int precision; /* fractional bits of probs / logits (0: 16) */
  const uint8_t (*dps)[32];
  const int64_t *budgets;
  size_t ndps;
  double input_scale; /* published with the model: factor for uint8 pixels (0: the ONNX
                         model's hetee.input_scale) */
} hetee_client_model_options;
HETEE_API int hetee_client_model_upload(hetee_client_conn *c, const char *onnx_path,
                                        const hetee_client_model_options *o, int64_t *model_id) HETEE_WUR;

/* Data provider: a submitted (bound) job: what the DP signed (the digest of
 * each input micro-batch's witness) and the enclave release key its results come from
 * (docs/security.md, "The service path"). */
typedef struct hetee_client_job hetee_client_job;

/* Encrypts count samples (count x input_size floats, already scaled as the
 * model expects) for model `model_id` (its plan from the server), seals
 * each micro-batch's values to the enclave's release key as its input
 * witness, signs the authorization of exactly these witnesses under a fresh
 * job nonce with the party's identity key and submits input and witnesses
 * (docs/api.md, "Data provider"). The connection attests the enclave
 * and asks its release key through an attested session on its first job
 * only; later jobs check (one request, no enclave call) that the server's
 * key bundle is still the verified one and attest afresh when it is not.
 * The model's plan is kept for the next job of the same model. Retries
 * 429 / 503 after their Retry-After (bounded). */
HETEE_API int hetee_client_job_submit(hetee_client_conn *c, int64_t model_id, const float *x, size_t count,
                                      hetee_client_job **out) HETEE_WUR;
/* The same in two steps, so that a program can encrypt ahead and send
 * later (hetee-bench service --prepared times only the sending): _prepare
 * does everything _submit does before the upload (attestation, plan and
 * release key on the connection's first job, encryption, witnesses, the
 * signed authorization under a fresh nonce); _send uploads it and returns
 * the submitted job. A prepared job is sent at most once (the enclave
 * refuses a second use of its nonce); free it with _prepared_free (which
 * wipes the sealed witnesses' copy). */
typedef struct hetee_client_prepared hetee_client_prepared;
HETEE_API int hetee_client_job_prepare(hetee_client_conn *c, int64_t model_id, const float *x, size_t count,
                                       hetee_client_prepared **out) HETEE_WUR;
HETEE_API int hetee_client_job_send(hetee_client_conn *c, const hetee_client_prepared *p,
                                    hetee_client_job **out) HETEE_WUR;
HETEE_API void hetee_client_prepared_free(hetee_client_prepared *p);

/* Progress of the long operations on connection c, through fn(ud, phase,
 * done, total) on the calling thread (fn NULL: none). Phases:
 *   "encrypt"  model stages (model upload) or input micro-batches (job
 *              prepare / submit) encrypted so far, from 0
 *   "upload"   body bytes sent (model upload, job send / submit), from 0
 *   "wait"     hetee_client_job_wait: total = the jobs the server runs
 *              before this one when first asked (its status's
 *              queue_position) + 1, done = those that left the queue since;
 *              the job's own run counts as one step
 *   "run"      hetee_client_job_wait, inside the job's run: the engine's
 *              steps (stages x micro-batches) done of total, from the
 *              status's progress (long polls that also return when it
 *              advances); reported while the job runs and, when the
 *              server gave a total, total/total once it is done (after
 *              the last "wait")
 *   "open"     results fetched and opened so far
 * Within a phase of one call, done never decreases and the last report
 * has done == total when the phase completes. */
typedef void (*hetee_client_progress_fn)(void *ud, const char *phase, uint64_t done, uint64_t total);
HETEE_API void hetee_client_set_progress(hetee_client_conn *c, hetee_client_progress_fn fn, void *ud);

/* A job this identity submitted earlier (e.g. from another process, after
 * the client lost it): its authorization fetched from the server and
 * accepted only if it is this party's own valid signature for the job's
 * model and micro-batch count; the release key through an attested session
 * (as for _submit: once per connection and verified bundle). Then _wait
 * and _results as for a submitted job. */
HETEE_API int hetee_client_job_attach(hetee_client_conn *c, int64_t job_id, hetee_client_job **out) HETEE_WUR;
HETEE_API int64_t hetee_client_job_id(const hetee_client_job *j);
/* Polls until done or failed (HETEE_ERR_STATE with the server's error,
 * e.g. the enclave's refusal of a substituted input). */
HETEE_API int hetee_client_job_wait(hetee_client_conn *c, hetee_client_job *j) HETEE_WUR;
/* Fetches and opens the results (one per sample, input order) with the
 * party's identity key: each must come from the enclave's release key and
 * name the job's model, micro-batch digest and sample (HETEE_ERR_AUTH
 * otherwise); *out malloc'd array of n results (hetee_client_results_free). */
HETEE_API int hetee_client_job_results(hetee_client_conn *c, hetee_client_job *j, hetee_release_result **out,
                                       size_t *n) HETEE_WUR;
/* _wait and _results in one long poll per 5 s (GET /v1/jobs/ID/result?wait=5:
 * the server answers with the results as soon as the job is done), one
 * request fewer per job; with a progress callback set it is _wait then
 * _results, since progress comes with the job's state. Errors as theirs
 * (HETEE_ERR_STATE with the server's error for a failed job). */
HETEE_API int hetee_client_job_await(hetee_client_conn *c, hetee_client_job *j, hetee_release_result **out,
                                     size_t *n) HETEE_WUR;
HETEE_API void hetee_client_job_free(hetee_client_job *j);
/* Deletes job job_id on the server (DELETE /v1/jobs/ID): a done or failed
 * job of this identity, with its files (its input, witnesses and sealed
 * results). Errors: HETEE_ERR_NOT_FOUND (no such job of this identity, or
 * deleted already), HETEE_ERR_STATE (the job is not finished yet). */
HETEE_API int hetee_client_job_delete(hetee_client_conn *c, int64_t job_id) HETEE_WUR;
HETEE_API void hetee_client_results_free(hetee_release_result *r, size_t n);

/* ---- Refining (api_refine.c; docs/api.md "Refine jobs") -------------------
 * Model provider: start a refine job on one of its ready models (the ONNX
 * file is its plaintext copy: the plan, the initial weights encrypted
 * client-side, and the file the refined weights are written into). The
 * enclave seals the refined weights to the enclave session that authorized
 * the job; that session is kept in HOME/refine-JOB.session (mode 0600) so
 * that fetch / promote work from another process of the same party. */
struct hetee_refine_weights;
struct hetee_refine_schedule;
typedef struct hetee_client_refine_options {
  const char *onnx_path;
  uint32_t batch;      /* B, 0: 64 */
  uint32_t accumulate; /* steps per update, 0: 1 */
  int train_layers;    /* the last train_layers dense layers train; 0: all */
  int loss;            /* HETEE_REFINE_LOSS_* (0: cross-entropy) */
  double lr, momentum, weight_decay;
  uint64_t seed;       /* data order of epochs >= 1 */
  uint32_t epochs;        /* 0 with epoch_samples 0: continuous */
  uint32_t epoch_samples; /* samples in the job's data set (epochs > 0) */
  const uint8_t (*dps)[32]; /* the data providers that may contribute */
  size_t ndps;
  const struct hetee_refine_schedule *schedule; /* learning-rate schedule (NULL: constant) */
  /* optional validation set (val_count samples, scaled as the model expects;
   * labels as class indices): encrypted here, measured by the enclave after
   * each epoch, the report sealed to this MP */
  const float *val_x, *val_labels;
  uint32_t val_count;
} hetee_client_refine_options;
HETEE_API int hetee_client_refine_start(hetee_client_conn *c, const char *home, int64_t model_id,
                                        const hetee_client_refine_options *o, int64_t *job_id) HETEE_WUR;
/* The job's status as the server's JSON (*json malloc'd). */
HETEE_API int hetee_client_refine_status(hetee_client_conn *c, int64_t job, char **json) HETEE_WUR;
HETEE_API int hetee_client_refine_stop(hetee_client_conn *c, int64_t job) HETEE_WUR;
/* Polls until the job is no longer running (state: done, stopped, failed,
 * needs_auth); timeout_s <= 0: none (HETEE_ERR_LIMIT on timeout). */
HETEE_API int hetee_client_refine_wait(hetee_client_conn *c, int64_t job, int timeout_s, char state[24]) HETEE_WUR;
/* After the enclave lost the job (state needs_auth): authorizes its last
 * checkpoint in a new session (stored in HOME, replacing the old one). */
HETEE_API int hetee_client_refine_resume(hetee_client_conn *c, const char *home, int64_t job) HETEE_WUR;
/* The enclave's validation reports of the job (one per epoch done, opened
 * with the job's session; each must carry the digest of the label
 * ciphertexts this MP encrypted): up to max into reports / epochs, *n how
 * many. A report is checked as the enclave's for this job's session and
 * model; its sequence position is not (reports carry their update count). */
struct hetee_refine_val_report;
HETEE_API int hetee_client_refine_validation(hetee_client_conn *c, const char *home, int64_t job, size_t max,
                                             struct hetee_refine_val_report *reports, uint32_t *epochs,
                                             size_t *n) HETEE_WUR;
/* The newest refine job of this MP on model. */
HETEE_API int hetee_client_refine_latest(hetee_client_conn *c, int64_t model, int64_t *job) HETEE_WUR;
/* The refined weights of every trained layer, sealed by the enclave to the
 * job's session and opened here: written into a copy of the job's ONNX
 * file (out_onnx, may be NULL) and / or returned (out, may be NULL;
 * hetee_refine_weights_clear). */
HETEE_API int hetee_client_refine_fetch(hetee_client_conn *c, const char *home, int64_t job, const char *out_onnx,
                                        struct hetee_refine_weights *out) HETEE_WUR;
/* Fetches job's weights (job < 1: the model's newest job) and uploads them
 * as a new model with model's release policy (output, data providers,
 * budgets, micro-batch, input scale); *new_model serves inference. */
HETEE_API int hetee_client_model_promote(hetee_client_conn *c, const char *home, int64_t model, int64_t job,
                                         int64_t *new_model) HETEE_WUR;
/* Data provider: count labelled samples (count x input_size floats scaled as
 * the model expects; labels as class indices) encrypted client-side in
 * batches of the job's B and submitted in order; *batches: how many were
 * acknowledged (also on error). */
HETEE_API int hetee_client_refine_submit(hetee_client_conn *c, int64_t job, const float *x, const float *labels,
                                         size_t count, size_t *batches) HETEE_WUR;

#ifdef __cplusplus
}
#endif
#endif

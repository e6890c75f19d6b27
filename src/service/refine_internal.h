/*
 * refine_internal.h — refine jobs in `hetee server` (docs/api.md, "Refine
 * jobs"): the tables (refine_store.c), the background worker and its live
 * jobs (refine_worker.c), the handlers (h_refine.c).
 */
#ifndef HETEE_SERVICE_REFINE_INTERNAL_H
#define HETEE_SERVICE_REFINE_INTERNAL_H

#include "hetee/refine.h"
#include "service/server_internal.h"

/* store.c's connection and lock */
sqlite3 *store_sqlite(store *s, pthread_mutex_t **lock);

typedef struct st_refine {
  int64_t id, model;
  char owner[65], session[33], state[24], error[256];
  int64_t epochs, epoch_samples; /* 0, 0: continuous */
  int64_t epoch, steps, updates, samples, created_ms, finished_ms;
} st_refine;

/* Creates the tables; drops staged batches (their files through the callback). */
int rstore_init(store *s, void (*drop_batch)(void *ctx, int64_t id), void *ctx);
int rstore_job_add(store *s, int64_t model, const char *owner, const char *session, const uint8_t *spec, size_t speclen,
                   int64_t epochs, int64_t epoch_samples, const char (*dps)[65], size_t n, int64_t *id);
/* spec may be NULL; else *spec malloc'd */
int rstore_job_get(store *s, int64_t id, st_refine *j, uint8_t **spec, size_t *speclen);
int rstore_job_set_state(store *s, int64_t id, const char *state, const char *error);
int rstore_job_set_session(store *s, int64_t id, const char *session);
int rstore_job_dp(store *s, int64_t id, const char *dp); /* HETEE_ERR_NOT_FOUND: not in the policy */
json_t *rstore_jobs_json(store *s, const char *owner, int64_t model);
json_t *rstore_dps_json(store *s, int64_t id);
int rstore_jobs_live(store *s, int64_t **ids, size_t *n); /* running / needs_auth */
int rstore_batch_stage(store *s, int64_t job, const char *dp, int64_t count, int64_t *id);
/* staged -> ready; in epoch mode refused (HETEE_ERR_STATE, row dropped) when the
 * epoch's samples would exceed epoch_samples */
int rstore_batch_commit(store *s, int64_t job, int64_t id, int64_t epoch_samples);
int rstore_batches(store *s, int64_t job, int64_t **ids, uint32_t **counts, size_t *n); /* ready, in order */
/* One transaction: the batches used (epoch, position) and the job's progress
 * (steps < 0: the rows only). */
int rstore_progress(store *s, int64_t job, int64_t epoch, const int64_t *batch, const uint32_t *pos, size_t n,
                    int64_t steps, int64_t updates, int64_t samples);
/* Drops the records beyond a checkpoint's cursor (epoch, next sample position). */
int rstore_reconcile(store *s, int64_t job, int64_t epoch, int64_t next, int64_t steps, int64_t updates);
json_t *rstore_used_json(store *s, int64_t job, const char *dp); /* dp NULL: all */
int rstore_submitted(store *s, int64_t job, const char *dp, int64_t *batches, int64_t *samples);

/* ---- refine_worker.c ---- */
int refine_worker_start(server *S);
void refine_worker_stop(server *S);
void refine_worker_kick(server *S);
/* Opens (or, resume != 0, re-opens after the enclave lost it) the enclave's
 * side of job id from the checkpoint file ckpt (the initial state at
 * start), with the MP's session and sealed authorization; the worker then
 * trains it. The plan is the job's spec's. */
int refine_live_open(server *S, int64_t id, const hetee_refine_plan *p, const char *ckpt, const uint8_t sid[16],
                     const uint8_t *auth, size_t alen, int resume);
/* The enclave's seal of trained layer l's weights: to the MP session that
 * sealed auth (hetee_refine_fetch_auth_msg; any live session of the job's
 * MP), or without auth (NULL) to the job's MP session the enclave picks. */
int refine_live_fetch(server *S, int64_t id, int l, const uint8_t *auth, size_t alen, uint8_t **sealed, size_t *len);
/* Asks the worker to stop job id after its current step (flushes, checkpoints). */
int refine_live_stop(server *S, int64_t id);
/* What the enclave's job applied, as the enclave counts it (its samples,
 * updates and the samples of each closed epoch); NULL when the enclave
 * does not hold the job or the worker is stepping it. */
json_t *refine_live_enclave_json(server *S, int64_t id);
/* Live facts for status: pending steps, whether the enclave has the job. */
void refine_live_info(server *S, int64_t id, int *live, int *pending);

/* handlers (h_refine.c) */
void h_refine_start(srv_req *q, srv_resp *r);
void h_refine_list(srv_req *q, srv_resp *r);
void h_refine_show(srv_req *q, srv_resp *r);
void h_refine_stop(srv_req *q, srv_resp *r);
void h_refine_resume(srv_req *q, srv_resp *r);
void h_refine_weights(srv_req *q, srv_resp *r);
void h_refine_checkpoint(srv_req *q, srv_resp *r);
void h_refine_valset(srv_req *q, srv_resp *r);
int h_refine_samples_pre(srv_req *q, srv_resp *r);
void h_refine_samples(srv_req *q, srv_resp *r);

#endif

/*
 * engine_jobs.h — internal (host): the bound-inference calls of
 * integrity_calls.c used by infer.c (docs/security.md, "Integrity of the
 * host's work").
 */
#ifndef HETEE_HOST_ENGINE_JOBS_H
#define HETEE_HOST_ENGINE_JOBS_H

#include "hemat/engine_internal.h"
#include "host/host_internal.h"

/* JOB_START: the micro-batch's stage-0 ciphertexts (as the data provider
 * authorized them) -> job handle; *ns: enclave CPU time of the checks. */
int engine_job_start(hetee_host_enclave *e, const hetee_ckks_context *ctx, uint32_t model_id, uint32_t batch,
                     hetee_ckks_ciphertext *const *in, size_t n, uint32_t *job, uint64_t *ns);
/* JOB_REFRESH of stage s: the n outputs (serialized), no spec (the
 * enclave applies the one the registered plan prescribes). */
int engine_job_refresh(hetee_host_enclave *e, uint32_t job, uint32_t stage, uint8_t *const *blobs, const size_t *lens,
                       size_t n, uint8_t ***fresh, size_t **flens, size_t *nf, uint64_t *ns);
/* JOB_RELEASE: bk sealed results into sealed[0..bk), lens[0..bk). */
int engine_job_release(hetee_host_enclave *e, uint32_t job, const uint8_t sid[16], uint32_t bk, uint8_t **sealed,
                       size_t *lens);

/* Test double (tests/integrity): when set, called by bound runs on every
 * stage's outputs before they go to the enclave (stage inputs `in` for the
 * kernel may be replaced before the kernel by the `pre` call: outs NULL). */
typedef int (*engine_tamper_fn)(void *arg, size_t micro_batch, size_t stage, hetee_ckks_ciphertext **cts, size_t n,
                                int pre);
extern engine_tamper_fn engine_tamper_hook;
extern void *engine_tamper_arg;

#endif

/*
 * local_parties.h — the three parties of encrypted inference in one
 * process, for `hetee run` and `hetee-bench infer`: the host starts the
 * real enclave process (sim backend, a temporary platform unless one is
 * given) with a configuration naming the model provider in its mp= list;
 * the model provider and the data provider each verify the enclave's
 * evidence on their own nonce against the measurement they compute
 * themselves from the binary and that configuration, take the CKKS
 * parameters and public key from the bundle the evidence binds, and open
 * their sessions; the model provider sets the release policy that names
 * the data provider.
 */
#ifndef HETEE_CLI_LOCAL_PARTIES_H
#define HETEE_CLI_LOCAL_PARTIES_H

#include "hetee/ckks.h"
#include "hetee/client.h"
#include "hetee/engine.h"
#include "hetee/host.h"

typedef struct local_parties {
  char dir[256];  /* temporary directory (platform), removed by _stop; "" if none */
  hetee_host_enclave *e;
  hetee_ckks_context *ctx;     /* from the verified key bundle */
  hetee_ckks_public_key *pk;
  hetee_ckks_galois_keys *gk;  /* the host's: the expansion steps of LOCAL_PARTIES_LANES (lane stages) */
  hetee_party_key *mp, *dp;
  hetee_client_session *mps, *dps;
  uint8_t dp_session[16];
  char config[HETEE_ENCLAVE_CONFIG_MAX + 1];
  int unbound; /* local_infer without registration, checks and job binding
                  (the pre-issue-9 path, for comparison: hetee-bench infer --unbound) */
  int cpus;            /* local_parties_start_cpus: CPUs the pipeline may use (0: not pinned) */
  void *saved_affinity; /* this process's CPU mask before pinning (restored by _stop) */
} local_parties;

/* The enclave's KEYGEN is asked for the rotation steps of
 * hetee_ckks_expand_steps(ctx, LOCAL_PARTIES_LANES); the host keeps the
 * Galois keys from the bundle (gk) and local_infer hands them to the
 * model (hetee_engine_model_set_expand_keys): plans built with
 * options.lanes <= LOCAL_PARTIES_LANES may use lane packings. */
#define LOCAL_PARTIES_LANES 4

/* platform: an existing sim platform directory, or NULL for a temporary one.
 * 0 or a hetee_status (detail in hetee_last_error()). */
int local_parties_start(local_parties *t, const char *platform);
/* The same, for a pipeline allowed `cpus` CPUs (>= 1; 0 = local_parties_start):
 * before the enclave is spawned, every thread of this process is pinned to
 * the first `cpus` CPUs it may run on (sched_setaffinity; the launcher and
 * the enclave inherit the mask), and the enclave's configuration says
 * threads=cpus. So `--threads 1` measures the whole pipeline (host and
 * enclave) on one CPU. local_parties_stop restores the previous mask.
 * Errors as local_parties_start, HETEE_ERR_INVALID_ARG (cpus < 0 or above
 * 64), HETEE_ERR_IO (the mask cannot be read or set). */
int local_parties_start_cpus(local_parties *t, const char *platform, int cpus);
/* The model provider sets model_id's release policy (kind, precision) for
 * the data provider. */
int local_parties_policy(local_parties *t, uint32_t model_id, int kind, int prec_bits);
void local_parties_stop(local_parties *t);
/* Seals session command m (consumed) with party session ps, sends it,
 * opens the reply (*reply malloc'd; reply may be NULL). */
int local_parties_send(local_parties *t, hetee_client_session *ps, uint8_t *m, size_t ml, uint8_t **reply,
                       size_t *rlen);

/* Encrypted inference of n samples x (n x input size, scaled) with model m
 * planned as p: the model provider sets the release policy (the plan's
 * kind, 16 bits), encrypts the model and registers its digest; its bytes
 * are loaded by the host (validating loader) and bound in the enclave
 * (hetee_engine_model_bind); then chunk by chunk the data provider
 * encrypts its micro-batches, seals their values as witnesses to the
 * enclave's release key (asked through its session) and authorizes the
 * witnesses, the host runs them bound from the witnesses
 * (hetee_engine_run_witnessed); the data provider opens each release (the
 * host loads the input bytes with the validating loader; threads: kernel
 * threads). */
typedef struct local_infer_result {
  size_t n;
  int *pred;                  /* encrypted prediction of each sample */
  hetee_engine_stats stats;   /* summed over the chunks */
  double mp_encrypt_s, model_load_s, dp_encrypt_s, input_load_s, dp_open_s;
  double model_bind_s;        /* the enclave's one-time model load (integrity) */
  size_t model_ct_bytes;
} local_infer_result;
int local_infer(local_parties *t, const hetee_nn_model *m, const hetee_engine_plan *p, const float *x, size_t n,
                int threads, uint32_t model_id, local_infer_result *res);
void local_infer_clear(local_infer_result *r);

#endif

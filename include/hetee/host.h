/*
 * hetee/host.h — the untrusted host's handle on the enclave process.
 *
 * hetee_host_start() spawns hetee-launcher (the sim backend's CPU
 * stand-in), which measures and starts hetee-enclave; the host talks to the
 * enclave over a socketpair with the framed protocol of hetee/enclave.h.
 * Every call sends one request and waits for its reply; enclave-side failures
 * come back as the enclave's own status code and detail
 * (hetee_last_error()). If the enclave process dies, the call fails with
 * HETEE_ERR_IO; with `auto_restart` the handle starts a new enclave at once
 * (unsealing `seal_path` if that file exists), so the next call works.
 *
 * Ciphertexts cross this API in hetee_ckks serialized form. Buffers returned
 * through uint8_t ** are malloc'd: free them with free().
 *
 * Thread-safety: a handle is not thread-safe; use one per thread or lock.
 */
#ifndef HETEE_HOST_H
#define HETEE_HOST_H

#include "hetee/common.h"
#include "hetee/enclave.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hetee_host_enclave hetee_host_enclave;

/* Directory where the host library looks for hetee-launcher (and, next to
 * it, hetee-enclave) when the options name none: $HETEE_BIN_DIR if set,
 * else the directory of the running executable. Errors: HETEE_ERR_IO. */
HETEE_API int hetee_host_bin_dir(char *out, size_t n) HETEE_WUR;

typedef struct hetee_host_options {
  const char *platform_dir;  /* required: the sim platform (hetee platform init) */
  const char *enclave_path;  /* NULL: hetee-enclave next to the launcher */
  const char *launcher_path; /* NULL: $HETEE_BIN_DIR/hetee-launcher, else next to
                                the running executable */
  const char *config;        /* NULL: HETEE_ENCLAVE_DEFAULT_CONFIG. Measured with
                                the binary; name the model providers allowed to
                                set release policies with an mp= key
                                (hetee_enclave_config_with_mps), else no
                                release is possible */
  const char *seal_path;     /* NULL: no unseal on automatic restart */
  int auto_restart;          /* restart a dead enclave inside the failing call */
} hetee_host_options;

typedef struct hetee_host_info {
  int pid;                         /* the enclave process */
  uint8_t measurement[32];         /* as reported by the launcher */
  uint8_t channel_pk[32];
  uint8_t bundle_fp[32];
  int have_keys;
  uint32_t slots;
  char config[1100];
  int secrets_locked;              /* 0: RLIMIT_MEMLOCK is too low for what the
                                      configuration may lock, so keys and
                                      decrypted tensors may be swapped out */
} hetee_host_info;

/* Starts the launcher + enclave and checks it answers.
 * Errors: HETEE_ERR_INVALID_ARG, HETEE_ERR_IO (cannot spawn / enclave died at
 * start), and whatever the launcher reports (HETEE_ERR_NOT_FOUND for a
 * missing platform or binary, ...). */
HETEE_API int hetee_host_start(const hetee_host_options *opt, hetee_host_enclave **out) HETEE_WUR;
/* Asks the enclave to shut down, reaps both processes. NULL is a no-op. */
HETEE_API void hetee_host_free(hetee_host_enclave *e);
/* Kills (if still alive) and starts a fresh enclave (unsealing seal_path if
 * set and present). */
HETEE_API int hetee_host_restart(hetee_host_enclave *e) HETEE_WUR;
/* Number of restarts so far (automatic or explicit). */
HETEE_API unsigned hetee_host_restarts(const hetee_host_enclave *e);

HETEE_API int hetee_host_info_get(hetee_host_enclave *e, hetee_host_info *out) HETEE_WUR;
/* Generates the CKKS keys (once per enclave state): rotation keys for
 * steps[0..n). Errors: HETEE_ERR_STATE (keys exist), HETEE_ERR_LIMIT (more
 * steps than the configuration allows), HETEE_ERR_INVALID_ARG (bad step). */
HETEE_API int hetee_host_keygen(hetee_host_enclave *e, const int *steps, size_t n) HETEE_WUR;
HETEE_API int hetee_host_public_keys(hetee_host_enclave *e, uint8_t **bundle, size_t *len) HETEE_WUR;
/* Evidence for a verifier's nonce, with the channel key and bundle
 * fingerprint it binds. */
HETEE_API int hetee_host_evidence(hetee_host_enclave *e, const uint8_t nonce[HETEE_NONCE_BYTES], uint8_t **evidence,
                                     size_t *len, uint8_t channel_pk[32], uint8_t bundle_fp[32]) HETEE_WUR;
/* Seals the enclave's state and writes it atomically to path; unseal reads
 * it back into the enclave (HETEE_ERR_AUTH if another binary/platform
 * sealed it). */
HETEE_API int hetee_host_seal(hetee_host_enclave *e, const char *path) HETEE_WUR;
HETEE_API int hetee_host_unseal(hetee_host_enclave *e, const char *path) HETEE_WUR;

/* Relays a party's session handshake / sealed message (hetee/client.h) and
 * returns the enclave's answer for the party. */
HETEE_API int hetee_host_session_open(hetee_host_enclave *e, const uint8_t *hs, size_t len, uint8_t **reply,
                                         size_t *rlen) HETEE_WUR;
HETEE_API int hetee_host_session_msg(hetee_host_enclave *e, const uint8_t *msg, size_t len, uint8_t **reply,
                                        size_t *rlen) HETEE_WUR;

/* One refresh job (see hetee_refresh_spec): n input ciphertexts in, *nout
 * fresh ciphertexts out (arrays malloc'd; free each element and the arrays,
 * or use hetee_host_cts_free). */
HETEE_API int hetee_host_refresh(hetee_host_enclave *e, const hetee_refresh_spec *spec, const uint8_t *const *cts,
                                    const size_t *lens, size_t n, uint8_t ***out, size_t **out_lens,
                                    size_t *nout) HETEE_WUR;
/* Streaming form for batches of independent groups: `spec` describes one
 * group of `group` input ciphertexts; the n inputs (a multiple of group) are
 * sent group by group, so enclave memory stays bounded however large n is.
 * Outputs are concatenated in order. */
HETEE_API int hetee_host_refresh_stream(hetee_host_enclave *e, const hetee_refresh_spec *spec, size_t group,
                                           const uint8_t *const *cts, const size_t *lens, size_t n,
                                           uint8_t ***out, size_t **out_lens, size_t *nout) HETEE_WUR;
HETEE_API void hetee_host_cts_free(uint8_t **cts, size_t *lens, size_t n);

/* Release: the values spec->map[0..spec->n) of the ciphertexts (which must
 * all have level spec->in_level and scale spec->in_scale: refused before
 * decryption otherwise), noise-flooded, treated by model `model_id`'s
 * policy (set by the model's owner, a model provider of the configuration's
 * mp= list), rounded to its precision and sealed to session `session_id`,
 * which must be the data provider that policy names. Errors:
 * HETEE_ERR_NOT_FOUND (no policy for the model, no such session),
 * HETEE_ERR_AUTH (session is not the named DP), HETEE_ERR_SCALE (scale
 * outside the parameters' range, or too small for the policy's precision
 * with the flooding noise: see hetee_release_spec), and the refresh errors
 * for bad maps or ciphertexts. */
HETEE_API int hetee_host_release(hetee_host_enclave *e, uint32_t model_id, const uint8_t session_id[16],
                                    const hetee_release_spec *spec, const uint8_t *const *cts, const size_t *lens,
                                    size_t n, uint8_t **sealed, size_t *len) HETEE_WUR;

/* Per message type counters; *n entries written (at most max). */
HETEE_API int hetee_host_stats(hetee_host_enclave *e, hetee_enclave_op_stats *out, size_t max, size_t *n) HETEE_WUR;

/* Raw access for tests and tools: one typed request (body may be NULL when
 * len is 0) answered by *reply; an error reply becomes its status. */
HETEE_API int hetee_host_call(hetee_host_enclave *e, uint16_t type, const uint8_t *body, size_t len, uint8_t **reply,
                                 size_t *rlen) HETEE_WUR;
/* Writes bytes as they are (possibly malformed frames) / reads one reply
 * frame (type, id, body). For protocol fuzzing. */
HETEE_API int hetee_host_send_raw(hetee_host_enclave *e, const uint8_t *bytes, size_t len) HETEE_WUR;
HETEE_API int hetee_host_recv_raw(hetee_host_enclave *e, uint16_t *type, uint64_t *id, uint8_t **body,
                                     size_t *len) HETEE_WUR;

#ifdef __cplusplus
}
#endif
#endif

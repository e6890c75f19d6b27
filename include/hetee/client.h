/*
 * hetee/client.h — the parties' side (model provider MP, data provider DP):
 * identity keys, verification of the enclave's attestation evidence, the
 * authenticated session to the enclave, release policies and the opening of
 * released results.
 *
 * Flow: the party picks a fresh nonce, gets the evidence (through the host,
 * hetee_host_evidence) together with the key bundle it will encrypt under,
 * verifies it with hetee_client_verify_evidence against the platform key and
 * the measurement it computes itself (`hetee enclave measure`,
 * hetee_measure_file) for the binary and the configuration it agreed to —
 * including the mp= list of model providers allowed to set release
 * policies (hetee_enclave_config_with_mps; docs/enclave.md, "How a party
 * computes the expected measurement") — then opens a session bound to that
 * evidence. Everything sent through the host is sealed to the
 * session; the host only relays bytes.
 *
 * Thread-safety: objects are not shared-safe; functions are reentrant.
 */
#ifndef HETEE_CLIENT_H
#define HETEE_CLIENT_H

#include "hetee/common.h"
#include "hetee/enclave.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Party identity: an Ed25519 key pair with a role.
 * File format (secret, mode 0600): "HTID" | u16 version 1 | u8 role |
 * u8 reserved | Ed25519 secret key (64); PATH.pub: "HTIP" | u16 1 | u8 role |
 * u8 0 | public key (32).
 * ------------------------------------------------------------------------- */
#define HETEE_PARTY_MP 1
#define HETEE_PARTY_DP 2

typedef struct hetee_party_key hetee_party_key;

HETEE_API int hetee_party_key_generate(int role, hetee_party_key **out) HETEE_WUR;
/* Writes path (secret) and path.pub atomically. */
HETEE_API int hetee_party_key_save(const hetee_party_key *k, const char *path) HETEE_WUR;
/* Errors: HETEE_ERR_NOT_FOUND, HETEE_ERR_FORMAT, HETEE_ERR_VERSION. */
HETEE_API int hetee_party_key_load(const char *path, hetee_party_key **out) HETEE_WUR;
HETEE_API void hetee_party_key_free(hetee_party_key *k);
/* Reads a public identity file (PATH.pub as written by _save): role (may be
 * NULL) and key. Errors: HETEE_ERR_NOT_FOUND, HETEE_ERR_FORMAT,
 * HETEE_ERR_VERSION. */
HETEE_API int hetee_party_public_load(const char *path, int *role, uint8_t pk[32]) HETEE_WUR;
HETEE_API int hetee_party_key_role(const hetee_party_key *k);
HETEE_API void hetee_party_key_public(const hetee_party_key *k, uint8_t pk[32]);
/* Ed25519 signature of msg[0..len) with the identity key (used by the
 * service client to sign HTTP requests, hetee/api_client.h). */
HETEE_API int hetee_party_key_sign(const hetee_party_key *k, const uint8_t *msg, size_t len, uint8_t sig[64]) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * Evidence verification.
 * ------------------------------------------------------------------------- */
typedef struct hetee_verified_enclave {
  uint16_t backend;
  uint8_t measurement[HETEE_MEASUREMENT_BYTES];
  uint8_t channel_pk[32];
  uint8_t bundle_fp[32];
  uint8_t evidence_hash[32];
} hetee_verified_enclave;

/* Checks, in this order:
 *   format                       -> HETEE_ERR_FORMAT / HETEE_ERR_VERSION
 *   platform signature           -> HETEE_ERR_BAD_SIGNATURE
 *   measurement == expected      -> HETEE_ERR_MEASUREMENT
 *   report data == H(fingerprint of `bundle` || channel_pk || nonce)
 *                                -> HETEE_ERR_KEY_BINDING
 * `bundle` is the key bundle the caller is going to encrypt under (as
 * fetched from the host); channel_pk the key the enclave announced. On
 * success *out (may be NULL) describes the verified enclave. */
HETEE_API int hetee_client_verify_evidence(const uint8_t *evidence, size_t len,
                                           const uint8_t platform_pk[HETEE_PLATFORM_PK_BYTES],
                                           const uint8_t expected_measurement[HETEE_MEASUREMENT_BYTES],
                                           const uint8_t *bundle, size_t bundle_len, const uint8_t channel_pk[32],
                                           const uint8_t nonce[HETEE_NONCE_BYTES],
                                           hetee_verified_enclave *out) HETEE_WUR;
/* Parses a hex string of 64 digits into 32 bytes (HETEE_ERR_FORMAT). */
HETEE_API int hetee_hex_decode32(const char *hex, uint8_t out[32]) HETEE_WUR;
/* Writes 64 hex digits and a NUL into out (65 bytes). */
HETEE_API void hetee_hex_encode32(const uint8_t in[32], char out[65]);

/* ---------------------------------------------------------------------------
 * Sessions.
 * ------------------------------------------------------------------------- */
typedef struct hetee_client_session hetee_client_session;

/* Creates the handshake for the verified enclave (*hs malloc'd: send it with
 * hetee_host_session_open and pass the answer to _finish). */
HETEE_API int hetee_client_session_new(const hetee_party_key *id, const hetee_verified_enclave *v,
                                       hetee_client_session **out, uint8_t **hs, size_t *hs_len) HETEE_WUR;
/* Checks the enclave's answer: only the holder of the attested channel key
 * can produce it. Errors: HETEE_ERR_AUTH, HETEE_ERR_PROTOCOL. */
HETEE_API int hetee_client_session_finish(hetee_client_session *s, const uint8_t *reply, size_t len) HETEE_WUR;
HETEE_API void hetee_client_session_id(const hetee_client_session *s, uint8_t id[16]);
HETEE_API void hetee_client_session_free(hetee_client_session *s);
/* Seal / open one message (see the enclave session commands below).
 * open errors: HETEE_ERR_AUTH (other session or key, tampered),
 * HETEE_ERR_REPLAY (replayed or reordered), HETEE_ERR_FORMAT. */
HETEE_API int hetee_client_session_seal(hetee_client_session *s, const uint8_t *msg, size_t len, uint8_t **out,
                                        size_t *out_len) HETEE_WUR;
HETEE_API int hetee_client_session_open(hetee_client_session *s, const uint8_t *in, size_t len, uint8_t **msg,
                                        size_t *msg_len) HETEE_WUR;

/* Session commands (plaintext before sealing). PING echoes its payload. */
HETEE_API int hetee_client_msg_ping(const uint8_t *payload, size_t len, uint8_t **msg, size_t *msg_len) HETEE_WUR;
/* Release policy for a model: kind (hetee_release_kind), k for top-k,
 * precision in bits of the released fixed-point values (0..40 here; the
 * enclave refuses more than its scale bits - 16, i.e. 24 at the default
 * scale 2^40; it also bounds the release's flooding noise, for ARGMAX /
 * TOPK too: a release is refused unless that noise stays below 2^-prec,
 * see hetee_release_spec), and the data provider allowed to receive results
 * (required: NULL or all zero gives HETEE_ERR_INVALID_ARG; several:
 * hetee_client_msg_policy_dps below).
 * The enclave accepts it only from an MP session whose identity key is in
 * its measured configuration's mp= list, and, once a model id has a policy,
 * only from the MP that set the first one (the model's owner); otherwise the
 * session message fails with HETEE_ERR_AUTH. */
HETEE_API int hetee_client_msg_policy(uint32_t model_id, int kind, int k, int prec_bits, const uint8_t dp_pk[32],
                                      uint8_t **msg, size_t *msg_len) HETEE_WUR;
/* The same with n (1..HETEE_POLICY_MAX_DPS) data providers, any of which may
 * receive the model's results (each release goes to the one session it
 * names). Wire: u16 2 | u32 model | u8 kind | u8 k | u8 prec | dp[32] for
 * n = 1 (the form above), else ... | u8 n | n x dp[32]. Errors:
 * HETEE_ERR_INVALID_ARG (n out of range, a zero key, a key twice). */
HETEE_API int hetee_client_msg_policy_dps(uint32_t model_id, int kind, int k, int prec_bits, const uint8_t (*dps)[32],
                                          size_t n, uint8_t **msg, size_t *msg_len) HETEE_WUR;

/* A released result, opened by the data provider's session. */
typedef struct hetee_release_result {
  int kind;
  uint32_t model_id;
  int prec_bits;
  size_t n;
  double *values;     /* VALUES / SOFTMAX: n values, multiples of 2^-prec_bits */
  uint32_t *indices;  /* ARGMAX (n = 1) / TOPK (n = k), best first */
} hetee_release_result;

HETEE_API int hetee_client_release_open(hetee_client_session *s, const uint8_t *sealed, size_t len,
                                        hetee_release_result *out) HETEE_WUR;
HETEE_API void hetee_release_result_clear(hetee_release_result *r);
/* A result the enclave sealed to this data provider's identity (bound jobs
 * of the service path, docs/security.md): opened with the identity key k,
 * checked to come from the enclave's release key release_pk (as an attested
 * session reported it) and to be sample `sample` of the micro-batch whose
 * authorized input digest is `digest`, for model `model_id`. Errors:
 * HETEE_ERR_AUTH (another recipient or sender, tampered, another job,
 * micro-batch or sample), HETEE_ERR_FORMAT. */
HETEE_API int hetee_client_release_open_id(const hetee_party_key *k, const uint8_t release_pk[32], uint32_t model_id,
                                           const uint8_t digest[32], uint32_t sample, const uint8_t *sealed, size_t len,
                                           hetee_release_result *out) HETEE_WUR;

#ifdef __cplusplus
}
#endif
#endif

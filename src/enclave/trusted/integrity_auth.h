/*
 * integrity_auth.h — internal (enclave): bound jobs whose data provider is
 * offline (the service path, docs/security.md "Integrity of the host's
 * work"): detached Ed25519 authorizations of input micro-batches and the
 * release sealed to the authorizing data provider's identity.
 */
#ifndef HETEE_ENCLAVE_INTEGRITY_AUTH_H
#define HETEE_ENCLAVE_INTEGRITY_AUTH_H

#include "enclave/trusted/enclave_internal.h"

/* HETEE_MSG_JOB_AUTH: u32 model | dp_pk[32] | nonce[16] | u32 n |
 * n x (u32 batch | digest[32]) | sig[64], sig = Ed25519 by dp_pk over
 * "hetee-job-auth-v1\0" || everything before sig. Accepted when dp_pk is
 * named by the model's policy, the model is registered, the signature
 * verifies and (dp, nonce) was not used in this enclave's lifetime; each
 * digest then allows one JOB_START, as a session authorization does. */
int enclave_auth_handle(enclave *e, hetee_rbuf *r, hetee_wbuf *w);

/* Session command 7 (any party): the enclave's release public key (X25519,
 * derived from the sealing key, so the same after every restart of this
 * enclave on this platform). Reply: pk[32]. */
#define ENCLAVE_CMD_RELEASE_KEY 7
int enclave_auth_release_key_cmd(enclave *e, hetee_wbuf *reply);

/* One released sample sealed to data provider dp's identity: nonce[24] |
 * crypto_box_easy(plain) from the release key to dp's X25519 key (converted
 * from its Ed25519 key), plain = "hetee-idrel-v1\0" | u32 model |
 * digest[32] (the micro-batch's authorized input) | u32 sample | record.
 * *out malloc'd. */
int enclave_auth_seal_to_dp(enclave *e, const uint8_t dp[32], uint32_t model, const uint8_t digest[32], uint32_t sample,
                            const uint8_t *rec, size_t len, uint8_t **out, size_t *olen);

/* Opens a data provider's sealed input witness (crypto_box_seal to the
 * release key; format in enclave/wire/proto.h) into plain (len -
 * HETEE_WITNESS_SEALBYTES bytes, the caller's locked buffer). HETEE_ERR_AUTH
 * if it does not open (the same error whatever the bytes). */
int enclave_auth_open_witness(enclave *e, const uint8_t *sealed, size_t len, uint8_t *plain);
/* Derives and caches the release key pair now (best effort; the first
 * use does it otherwise), e.g. when a model is registered, so that the
 * first job's witness is not the one that pays it. */
void enclave_auth_warm(enclave *e);

/* integrity.c: one single-use authorization of (model, batch, digest) for dp. */
void enclave_integrity_add_auth(uint32_t model, uint32_t batch, const uint8_t digest[32], const uint8_t dp[32]);

#endif

/*
 * client_internal.h — party-side object layouts (internal).
 */
#ifndef HETEE_CLIENT_INTERNAL_H
#define HETEE_CLIENT_INTERNAL_H

#include "enclave/wire/proto.h"
#include "hetee/client.h"
#include "hetee/engine.h"
#include "hetee/nn.h"

struct hetee_party_key {
  int role;
  uint8_t sk[64];
  uint8_t pk[32];
};

struct hetee_client_session {
  hetee_chan chan;
  int finished;
};

/* hetee_engine_model_encrypt with cb(ud, stages done, stages) after each
 * stage (cb may be NULL): the client library's progress. */
int client_model_encrypt_progress(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                                  const hetee_nn_model *m, const hetee_engine_plan *plan,
                                  void (*cb)(void *ud, size_t done, size_t total), void *ud, hetee_engine_model **out);

/* hetee_client_release_open_id in two steps: the crypto_box shared key of
 * the release key and the party's identity (shared: crypto_box_BEFORENMBYTES
 * of the caller's locked memory, wiped on error), then each result opened
 * with it (the same checks and answers). */
int client_release_beforenm(const hetee_party_key *k, const uint8_t release_pk[32], uint8_t *shared);
int client_release_open_id_afternm(const uint8_t *shared, uint32_t model_id, const uint8_t digest[32], uint32_t sample,
                                   const uint8_t *sealed, size_t len, hetee_release_result *out);

#endif

/*
 * client_internal.h — party-side object layouts (internal).
 */
#ifndef HETEE_CLIENT_INTERNAL_H
#define HETEE_CLIENT_INTERNAL_H

#include "enclave/wire/proto.h"
#include "hetee/client.h"

struct hetee_party_key {
  int role;
  uint8_t sk[64];
  uint8_t pk[32];
};

struct hetee_client_session {
  hetee_chan chan;
  int finished;
};

#endif

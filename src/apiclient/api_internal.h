/*
 * api_internal.h — what api_refine.c shares with api_client.c: the signed
 * request expecting one status (retried after Retry-After on 429 / 503,
 * other answers turned into a hetee status carrying the server's message),
 * its JSON form, and the connection's attested keys.
 */
#ifndef HETEE_API_INTERNAL_H
#define HETEE_API_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "hetee/api_client.h"
#include "hetee/ckks.h"
#include "hetee/client.h"

int api_call(hetee_client_conn *c, const char *method, const char *target, const char *ctype, const uint8_t *body,
             size_t len, long want, uint8_t **resp, size_t *rlen);
/* in is taken over (may be NULL: no body); NULL with *rc set on failure */
json_t *api_call_json(hetee_client_conn *c, const char *method, const char *target, json_t *in, long want, int *rc);
int api_conn_keys(hetee_client_conn *c, const hetee_ckks_context **ctx, const hetee_ckks_public_key **pk,
                  const hetee_party_key **key, const char **url);

/* The enclave's release key (api_client.c; asked once per verified bundle):
 * what a data provider seals its refining witnesses to (api_refine.c). */
int api_release_key(hetee_client_conn *c, uint8_t pk[32]);

#endif

/*
 * party.c — party identity keys (Ed25519, libsodium) with their role, and
 * their file format; secrets in sodium_malloc'd memory, wiped on free.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"

int hetee_party_key_generate(int role, hetee_party_key **out) {
  if (!out || (role != HETEE_PARTY_MP && role != HETEE_PARTY_DP))
    return hetee_error(HETEE_ERR_INVALID_ARG, "role must be mp or dp");
  if (sodium_init() < 0) return hetee_error(HETEE_ERR_CRYPTO, "sodium_init");
  hetee_party_key *k = sodium_malloc(sizeof *k);
  if (!k) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  k->role = role;
  crypto_sign_keypair(k->pk, k->sk);
  *out = k;
  return 0;
}

void hetee_party_key_free(hetee_party_key *k) {
  if (k) sodium_free(k); /* wipes */
}
int hetee_party_key_role(const hetee_party_key *k) { return k ? k->role : 0; }
void hetee_party_key_public(const hetee_party_key *k, uint8_t pk[32]) { memcpy(pk, k->pk, 32); }

int hetee_party_key_save(const hetee_party_key *k, const char *path) {
  if (!k || !path) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  uint8_t b[8 + 64];
  memcpy(b, "HTID", 4);
  hetee_le16(b + 4, 1);
  b[6] = (uint8_t)k->role;
  b[7] = 0;
  memcpy(b + 8, k->sk, 64);
  int rc = hetee_file_write_atomic(path, b, sizeof b, 0600);
  sodium_memzero(b, sizeof b);
  if (rc) return rc;
  uint8_t p[8 + 32];
  memcpy(p, "HTIP", 4);
  hetee_le16(p + 4, 1);
  p[6] = (uint8_t)k->role;
  p[7] = 0;
  memcpy(p + 8, k->pk, 32);
  char pub[4096];
  snprintf(pub, sizeof pub, "%s.pub", path);
  return hetee_file_write_atomic(pub, p, sizeof p, 0644);
}

int hetee_party_key_load(const char *path, hetee_party_key **out) {
  if (!path || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  if (sodium_init() < 0) return hetee_error(HETEE_ERR_CRYPTO, "sodium_init");
  uint8_t *b;
  size_t n;
  int rc = hetee_file_read(path, 4096, &b, &n);
  if (rc) return rc;
  if (n != 72 || memcmp(b, "HTID", 4) != 0) rc = hetee_error(HETEE_ERR_FORMAT, "%s is not a hetee identity key", path);
  else if (hetee_rd16(b + 4) != 1) rc = hetee_error(HETEE_ERR_VERSION, "identity key version %u", hetee_rd16(b + 4));
  else if (b[6] != HETEE_PARTY_MP && b[6] != HETEE_PARTY_DP) rc = hetee_error(HETEE_ERR_FORMAT, "unknown role %u", b[6]);
  hetee_party_key *k = rc ? NULL : sodium_malloc(sizeof *k);
  if (!rc && !k) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc) {
    k->role = b[6];
    memcpy(k->sk, b + 8, 64);
    memcpy(k->pk, b + 8 + 32, 32); /* libsodium sk = seed || pk */
    *out = k;
  }
  sodium_memzero(b, n);
  free(b);
  return rc;
}

int hetee_party_public_load(const char *path, int *role, uint8_t pk[32]) {
  if (!path || !pk) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  uint8_t *b;
  size_t n;
  int rc = hetee_file_read(path, 4096, &b, &n);
  if (rc) return rc;
  if (n != 40 || memcmp(b, "HTIP", 4) != 0) rc = hetee_error(HETEE_ERR_FORMAT, "%s is not a hetee public identity", path);
  else if (hetee_rd16(b + 4) != 1) rc = hetee_error(HETEE_ERR_VERSION, "public identity version %u", hetee_rd16(b + 4));
  else if (b[6] != HETEE_PARTY_MP && b[6] != HETEE_PARTY_DP) rc = hetee_error(HETEE_ERR_FORMAT, "unknown role %u", b[6]);
  if (!rc) {
    if (role) *role = b[6];
    memcpy(pk, b + 8, 32);
  }
  free(b);
  return rc;
}

int hetee_party_key_sign(const hetee_party_key *k, const uint8_t *msg, size_t len, uint8_t sig[64]) {
  if (!k || (!msg && len) || !sig) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (crypto_sign_detached(sig, NULL, msg, len, k->sk) != 0) return hetee_error(HETEE_ERR_CRYPTO, "signing failed");
  return 0;
}

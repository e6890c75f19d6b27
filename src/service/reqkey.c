/*
 * reqkey.c — the server's long-term X25519 key pair for v3 request
 * authentication (reqsig.h): DIR/request.key, created at first start
 * (crypto_kx_keypair, written to a 0600 temp file, fsync'd, renamed), the
 * same after every restart; a file that is not such a key stops the start.
 * The per-party MAC keys (crypto_kx server rx) are cached for the last
 * REQKEY_CACHE parties seen (direct-mapped by the key's first bytes), so a
 * party's requests cost one X25519 computation, not one each.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "hetee/common.h"
#include "service/server_internal.h"

#define REQKEY_FILE "request.key"
#define REQKEY_LEN 72
#define REQKEY_CACHE 64

typedef struct {
  uint8_t party[32];
  uint8_t k[32];
  int used;
} rk_slot;

struct reqkey {
  uint8_t pk[32];
  uint8_t *sk;    /* sodium_malloc'd: secret[32] */
  rk_slot *cache; /* sodium_malloc'd: MAC keys */
  pthread_mutex_t lock;
};

static int rk_load(const char *path, uint8_t pk[32], uint8_t sk[32]) {
  uint8_t *b = NULL;
  size_t n = 0;
  int rc = blob_read(path, 4096, &b, &n);
  if (rc == HETEE_ERR_LIMIT) return hetee_error(HETEE_ERR_FORMAT, "%s is not a request key (too large)", path);
  if (rc) return rc;
  uint8_t chk[32];
  if (n != REQKEY_LEN || memcmp(b, "HTRK", 4) || b[4] != 1 || b[5] || b[6] || b[7])
    rc = hetee_error(HETEE_ERR_FORMAT, "%s is not a hetee request key (72 bytes, \"HTRK\" version 1)", path);
  else if (crypto_scalarmult_base(chk, b + 8) || sodium_memcmp(chk, b + 40, 32))
    rc = hetee_error(HETEE_ERR_FORMAT, "%s: its public key does not match its secret key", path);
  if (!rc) {
    memcpy(sk, b + 8, 32);
    memcpy(pk, b + 40, 32);
  }
  sodium_memzero(b, n);
  free(b);
  return rc;
}

int reqkey_open(const char *data_dir, struct reqkey **out) {
  *out = NULL;
  struct reqkey *k = calloc(1, sizeof *k);
  if (!k) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  k->sk = sodium_malloc(32);
  k->cache = sodium_malloc(REQKEY_CACHE * sizeof *k->cache);
  if (!k->sk || !k->cache) {
    reqkey_free(k);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  memset(k->cache, 0, REQKEY_CACHE * sizeof *k->cache);
  pthread_mutex_init(&k->lock, NULL);
  char path[SRV_PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", data_dir, REQKEY_FILE);
  int rc = rk_load(path, k->pk, k->sk);
  if (rc == HETEE_ERR_NOT_FOUND) {
    uint8_t b[REQKEY_LEN] = {'H', 'T', 'R', 'K', 1, 0, 0, 0};
    crypto_kx_keypair(k->pk, k->sk);
    memcpy(b + 8, k->sk, 32);
    memcpy(b + 40, k->pk, 32);
    rc = blob_write(data_dir, path, b, sizeof b); /* a 0600 temp file, fsync'd, renamed, directory fsync'd */
    sodium_memzero(b, sizeof b);
    if (rc) rc = hetee_error(rc, "cannot store the request key: %s", hetee_last_error());
  } else if (rc) {
    rc = hetee_error(rc, "request key: %s (move it away to have a new one created)", hetee_last_error());
  }
  if (rc) {
    reqkey_free(k);
    return rc;
  }
  *out = k;
  return 0;
}

void reqkey_free(struct reqkey *k) {
  if (!k) return;
  if (k->sk) sodium_free(k->sk);
  if (k->cache) {
    sodium_free(k->cache);
    pthread_mutex_destroy(&k->lock);
  }
  free(k);
}

void reqkey_public(const struct reqkey *k, uint8_t xpk[32]) { memcpy(xpk, k->pk, 32); }

int reqkey_mac_key(struct reqkey *k, const uint8_t party_pk[32], uint8_t mac_key[32]) {
  /* the party's key is public: indexing by it leaks nothing */
  rk_slot *s = &k->cache[party_pk[0] % REQKEY_CACHE];
  pthread_mutex_lock(&k->lock);
  if (s->used && !memcmp(s->party, party_pk, 32)) {
    memcpy(mac_key, s->k, 32);
    pthread_mutex_unlock(&k->lock);
    return 0;
  }
  pthread_mutex_unlock(&k->lock);
  int rc = reqsig_v3_server_key(party_pk, k->pk, k->sk, mac_key);
  if (rc) return rc;
  pthread_mutex_lock(&k->lock);
  memcpy(s->party, party_pk, 32);
  memcpy(s->k, mac_key, 32);
  s->used = 1;
  pthread_mutex_unlock(&k->lock);
  return 0;
}

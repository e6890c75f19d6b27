/*
 * platform.c — the sim platform directory: an Ed25519 attestation key pair
 * and a sealing secret standing for the keys a CPU vendor fuses into the
 * processor. Created once by `hetee platform init`; the secret files are
 * readable only by their owner (0600) and only the launcher loads them.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enclave/wire/platform.h"
#include "enclave/wire/proto.h"

static void join(char *out, size_t n, const char *dir, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

int hetee_platform_init(const char *dir) {
  if (!dir) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL directory");
  char p[4096];
  int rc;
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) return hetee_error(HETEE_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
  join(p, sizeof p, dir, "platform.key");
  if (access(p, F_OK) == 0) return hetee_error(HETEE_ERR_STATE, "%s already holds a platform", dir);
  hetee_platform pl;
  crypto_sign_keypair(pl.pk, pl.sk);
  randombytes_buf(pl.secret, sizeof pl.secret);
  rc = hetee_file_write_atomic(p, pl.sk, sizeof pl.sk, 0600);
  if (!rc) {
    join(p, sizeof p, dir, "platform.secret");
    rc = hetee_file_write_atomic(p, pl.secret, sizeof pl.secret, 0600);
  }
  if (!rc) {
    join(p, sizeof p, dir, "platform.pub");
    rc = hetee_file_write_atomic(p, pl.pk, sizeof pl.pk, 0644);
  }
  sodium_memzero(&pl, sizeof pl);
  return rc;
}

static int load_fixed(const char *dir, const char *name, uint8_t *out, size_t n) {
  char p[4096];
  join(p, sizeof p, dir, name);
  uint8_t *b;
  size_t len;
  int rc = hetee_file_read(p, 4096, &b, &len);
  if (rc) return rc;
  if (len != n) rc = hetee_error(HETEE_ERR_FORMAT, "%s: %zu bytes, expected %zu", p, len, n);
  else memcpy(out, b, n);
  sodium_memzero(b, len);
  free(b);
  return rc;
}

int hetee_platform_load_public(const char *dir, uint8_t pk[HETEE_PLATFORM_PK_BYTES]) {
  if (!dir || !pk) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  return load_fixed(dir, "platform.pub", pk, 32);
}

int hetee_platform_load(const char *dir, hetee_platform *pl) {
  int rc = load_fixed(dir, "platform.key", pl->sk, sizeof pl->sk);
  if (!rc) rc = load_fixed(dir, "platform.secret", pl->secret, sizeof pl->secret);
  if (!rc) memcpy(pl->pk, pl->sk + 32, 32); /* libsodium's sk = seed || pk */
  if (rc) sodium_memzero(pl, sizeof *pl);
  return rc;
}

void hetee_platform_seal_key(const hetee_platform *pl, const uint8_t measurement[32], uint8_t key[32]) {
  static const char tag[] = "hetee-seal-v1";
  crypto_generichash_state st;
  crypto_generichash_init(&st, pl->secret, sizeof pl->secret, 32);
  crypto_generichash_update(&st, (const uint8_t *)tag, sizeof tag);
  crypto_generichash_update(&st, measurement, 32);
  crypto_generichash_final(&st, key, 32);
}

int hetee_platform_sign_report(const hetee_platform *pl, const uint8_t measurement[32], const uint8_t report_data[32],
                               uint8_t out[HETEE_EVIDENCE_BYTES]) {
  memcpy(out, "HTEV", 4);
  hetee_le16(out + 4, 1);
  hetee_le16(out + 6, HETEE_BACKEND_SIM);
  memcpy(out + 8, measurement, 32);
  memcpy(out + 40, report_data, 32);
  uint8_t msg[32 + HETEE_EVIDENCE_SIGNED_BYTES];
  size_t n = hetee_evidence_signed_message(out, msg);
  if (crypto_sign_detached(out + HETEE_EVIDENCE_SIGNED_BYTES, NULL, msg, n, pl->sk) != 0)
    return hetee_error(HETEE_ERR_CRYPTO, "signing failed");
  return 0;
}

/*
 * measure.c — the enclave measurement: SHA-256 over a domain tag, the
 * executable's bytes and its configuration string (the sim counterpart of
 * SGX's MRENCLAVE, which hashes the loaded pages and their layout).
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/wire/proto.h"

#define MEASURE_MAX_BINARY (256u << 20)

int hetee_measure_bytes(const uint8_t *bin, size_t len, const char *config, uint8_t out[HETEE_MEASUREMENT_BYTES]) {
  if ((!bin && len) || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (!config) config = HETEE_ENCLAVE_DEFAULT_CONFIG;
  static const char tag[] = "hetee-measure-v1";
  uint8_t b[8];
  size_t clen = strlen(config);
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, (const uint8_t *)tag, sizeof tag);
  hetee_le64(b, (uint64_t)len);
  crypto_hash_sha256_update(&st, b, 8);
  crypto_hash_sha256_update(&st, bin, len);
  hetee_le32(b, (uint32_t)clen);
  crypto_hash_sha256_update(&st, b, 4);
  crypto_hash_sha256_update(&st, (const uint8_t *)config, clen);
  crypto_hash_sha256_final(&st, out);
  return 0;
}

int hetee_measure_file(const char *path, const char *config, uint8_t out[HETEE_MEASUREMENT_BYTES]) {
  if (!path || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  uint8_t *bin;
  size_t len;
  int rc = hetee_file_read(path, MEASURE_MAX_BINARY, &bin, &len);
  if (rc) return rc;
  rc = hetee_measure_bytes(bin, len, config, out);
  free(bin);
  return rc;
}

/*
 * evidence.c — attestation evidence and key-bundle formats (hetee/enclave.h):
 * parsing, the report data that binds the CKKS key bundle and the channel key
 * to a verifier's nonce, and fingerprints. Verification lives on the party
 * side (src/client/verify.c).
 */
#include <sodium.h>
#include <string.h>

#include "enclave/wire/platform.h"
#include "enclave/wire/proto.h"

size_t hetee_evidence_signed_message(const uint8_t *ev, uint8_t *msg) {
  static const char tag[] = "hetee-evidence-v1";
  memcpy(msg, tag, sizeof tag);
  memcpy(msg + sizeof tag, ev, HETEE_EVIDENCE_SIGNED_BYTES);
  return sizeof tag + HETEE_EVIDENCE_SIGNED_BYTES;
}

int hetee_evidence_parse(const uint8_t *buf, size_t len, hetee_evidence *out) {
  if (!buf || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (len != HETEE_EVIDENCE_BYTES) return hetee_error(HETEE_ERR_FORMAT, "evidence is %zu bytes, expected %d", len, HETEE_EVIDENCE_BYTES);
  if (memcmp(buf, "HTEV", 4) != 0) return hetee_error(HETEE_ERR_FORMAT, "evidence has a bad magic");
  out->version = hetee_rd16(buf + 4);
  out->backend = hetee_rd16(buf + 6);
  if (out->version != 1) return hetee_error(HETEE_ERR_VERSION, "evidence version %u unsupported", out->version);
  if (out->backend != HETEE_BACKEND_SIM) return hetee_error(HETEE_ERR_FORMAT, "unknown evidence backend %u", out->backend);
  memcpy(out->measurement, buf + 8, 32);
  memcpy(out->report_data, buf + 40, 32);
  memcpy(out->signature, buf + 72, 64);
  return 0;
}

void hetee_report_data(const uint8_t bundle_fp[32], const uint8_t channel_pk[32], const uint8_t nonce[32],
                       uint8_t out[32]) {
  static const char tag[] = "hetee-report-v1";
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, (const uint8_t *)tag, sizeof tag);
  crypto_hash_sha256_update(&st, bundle_fp, 32);
  crypto_hash_sha256_update(&st, channel_pk, 32);
  crypto_hash_sha256_update(&st, nonce, 32);
  crypto_hash_sha256_final(&st, out);
}

void hetee_evidence_hash(const uint8_t *buf, size_t len, uint8_t out[32]) { crypto_hash_sha256(out, buf, len); }

void hetee_key_bundle_fingerprint(const uint8_t *buf, size_t len, uint8_t out[32]) {
  static const char tag[] = "hetee-keybundle-v1";
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, (const uint8_t *)tag, sizeof tag);
  crypto_hash_sha256_update(&st, buf, len);
  crypto_hash_sha256_final(&st, out);
}

int hetee_key_bundle_get(const uint8_t *buf, size_t len, int kind, const uint8_t **item, size_t *item_len) {
  if (!buf || !item || !item_len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_rbuf r;
  hetee_rbuf_init(&r, buf, len);
  const uint8_t *m = hetee_rbuf_get(&r, 4);
  uint16_t ver = hetee_rbuf_u16(&r), count = hetee_rbuf_u16(&r);
  if (r.err || memcmp(m, "HTKB", 4) != 0 || ver != 1) return hetee_error(HETEE_ERR_FORMAT, "not a key bundle");
  int found = 0;
  for (uint16_t i = 0; i < count; i++) {
    uint16_t k = hetee_rbuf_u16(&r);
    size_t n;
    const uint8_t *p = hetee_rbuf_blob(&r, len, &n);
    if (r.err) return hetee_error(HETEE_ERR_FORMAT, "key bundle truncated");
    if (k == kind && !found) {
      *item = p;
      *item_len = n;
      found = 1;
    }
  }
  if (hetee_rbuf_left(&r) != 0) return hetee_error(HETEE_ERR_FORMAT, "trailing bytes in key bundle");
  return found ? 0 : hetee_error(HETEE_ERR_NOT_FOUND, "key bundle has no item of kind %d", kind);
}

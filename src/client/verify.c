/*
 * verify.c — the party's check of the enclave's attestation evidence:
 * platform signature (Ed25519), expected measurement, and the binding of the
 * CKKS key bundle the party will encrypt under, the channel key it will talk
 * to, and its own fresh nonce (against replayed evidence). Each failure has
 * its own status code so that tools can say exactly what failed. Comparisons
 * of public values need no constant time, but use sodium_memcmp anyway.
 */
#include <sodium.h>
#include <string.h>

#include "client/client_internal.h"
#include "enclave/wire/platform.h"

int hetee_client_verify_evidence(const uint8_t *ev, size_t len, const uint8_t platform_pk[32],
                                 const uint8_t expected[32], const uint8_t *bundle, size_t bundle_len,
                                 const uint8_t channel_pk[32], const uint8_t nonce[32], hetee_verified_enclave *out) {
  if (!ev || !platform_pk || !expected || (!bundle && bundle_len) || !channel_pk || !nonce)
    return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (sodium_init() < 0) return hetee_error(HETEE_ERR_CRYPTO, "sodium_init");
  hetee_evidence e;
  int rc = hetee_evidence_parse(ev, len, &e);
  if (rc) return rc;
  uint8_t msg[32 + HETEE_EVIDENCE_SIGNED_BYTES];
  size_t n = hetee_evidence_signed_message(ev, msg);
  if (crypto_sign_verify_detached(e.signature, msg, n, platform_pk) != 0)
    return hetee_error(HETEE_ERR_BAD_SIGNATURE, "evidence is not signed by this platform's attestation key");
  if (sodium_memcmp(e.measurement, expected, 32) != 0) {
    char got[65], want[65];
    hetee_hex_encode32(e.measurement, got);
    hetee_hex_encode32(expected, want);
    return hetee_error(HETEE_ERR_MEASUREMENT, "enclave measurement %s, expected %s", got, want);
  }
  uint8_t fp[32], rd[32];
  hetee_key_bundle_fingerprint(bundle, bundle_len, fp);
  hetee_report_data(fp, channel_pk, nonce, rd);
  if (sodium_memcmp(rd, e.report_data, 32) != 0)
    return hetee_error(HETEE_ERR_KEY_BINDING,
                       "evidence does not bind this key bundle, channel key and nonce (swapped keys or replayed evidence)");
  if (out) {
    out->backend = e.backend;
    memcpy(out->measurement, e.measurement, 32);
    memcpy(out->channel_pk, channel_pk, 32);
    memcpy(out->bundle_fp, fp, 32);
    hetee_evidence_hash(ev, len, out->evidence_hash);
  }
  return 0;
}

int hetee_hex_decode32(const char *hex, uint8_t out[32]) {
  if (!hex || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  size_t bin_len = 0;
  const char *end = NULL;
  if (strlen(hex) != 64 || sodium_hex2bin(out, 32, hex, 64, NULL, &bin_len, &end) != 0 || bin_len != 32)
    return hetee_error(HETEE_ERR_FORMAT, "expected 64 hex digits");
  return 0;
}

void hetee_hex_encode32(const uint8_t in[32], char out[65]) { sodium_bin2hex(out, 65, in, 32); }

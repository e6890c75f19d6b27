/*
 * fuzz_evidence.c — fuzz target of the party's side of attestation
 * (client/verify.c: hetee_client_verify_evidence, which parses the evidence
 * with enclave/evidence.c: hetee_evidence_parse) and of the key-bundle
 * reader (hetee_key_bundle_get), both fed bytes relayed by the untrusted
 * host. Input: u32 evidence length | evidence | key bundle. The verifier is
 * given a fixed platform key, measurement, channel key and nonce; the seed
 * is evidence those keys really sign and bind, so it verifies, and mutants
 * must fail with the precise status (signature, measurement, binding,
 * format). An accepted input must have bound exactly this bundle.
 */
#include <sodium.h>
#include <string.h>

#include "enclave/wire/platform.h"
#include "enclave/wire/proto.h"
#include "fuzz/fuzz.h"
#include "hetee/client.h"

const char fuzz_target_name[] = "evidence";
const int fuzz_prefixes_valid = 0;

static uint8_t plat_pk[32], plat_sk[64], meas[32], ch_pk[32], nonce[32];

int fuzz_setup(void) {
  if (sodium_init() < 0) return -1;
  uint8_t seed[32];
  memset(seed, 0x11, 32);
  crypto_sign_seed_keypair(plat_pk, plat_sk, seed);
  memset(meas, 0x5a, 32);
  memset(ch_pk, 0x2c, 32);
  memset(nonce, 0x9d, 32);
  return 0;
}
void fuzz_teardown(void) {}

/* Every item the bundle reader returns lies inside the bundle. */
static void check_bundle(const uint8_t *b, size_t len) {
  for (int kind = 0; kind <= 5; kind++) {
    const uint8_t *item = NULL;
    size_t n = 0;
    if (hetee_key_bundle_get(b, len, kind, &item, &n) == 0)
      FUZZ_CHECK(item >= b && n <= len && (size_t)(item - b) <= len - n);
  }
}

int fuzz_one(const uint8_t *data, size_t len) {
  if (len < 4) return hetee_error(HETEE_ERR_TRUNCATED, "short");
  uint32_t evlen = hetee_rd32(data);
  if (evlen > len - 4) return hetee_error(HETEE_ERR_TRUNCATED, "evidence length");
  const uint8_t *ev = data + 4, *bundle = ev + evlen;
  size_t blen = len - 4 - evlen;
  check_bundle(bundle, blen);
  hetee_verified_enclave v;
  memset(&v, 0, sizeof v);
  int rc = hetee_client_verify_evidence(ev, evlen, plat_pk, meas, bundle, blen, ch_pk, nonce, &v);
  if (rc) return rc;
  uint8_t fp[32];
  hetee_key_bundle_fingerprint(bundle, blen, fp);
  FUZZ_CHECK(memcmp(fp, v.bundle_fp, 32) == 0 && memcmp(v.measurement, meas, 32) == 0);
  return 0;
}

size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  /* bundle: "HTKB" v1, two items (params-like bytes, public-key-like bytes) */
  hetee_wbuf b;
  hetee_wbuf_init(&b);
  hetee_wbuf_put(&b, "HTKB", 4);
  hetee_wbuf_u16(&b, 1);
  hetee_wbuf_u16(&b, 2);
  hetee_wbuf_u16(&b, HETEE_BUNDLE_PARAMS);
  hetee_wbuf_blob(&b, "params-bytes", 12);
  hetee_wbuf_u16(&b, HETEE_BUNDLE_PUBLIC_KEY);
  hetee_wbuf_blob(&b, "public-key-bytes", 16);
  FUZZ_CHECK(!b.err);
  uint8_t fp[32], rd[32], ev[HETEE_EVIDENCE_BYTES];
  hetee_key_bundle_fingerprint(b.p, b.len, fp);
  hetee_report_data(fp, ch_pk, nonce, rd);
  memcpy(ev, "HTEV", 4);
  hetee_le16(ev + 4, 1);
  hetee_le16(ev + 6, HETEE_BACKEND_SIM);
  memcpy(ev + 8, meas, 32);
  memcpy(ev + 40, rd, 32);
  uint8_t msg[32 + HETEE_EVIDENCE_SIGNED_BYTES];
  size_t mlen = hetee_evidence_signed_message(ev, msg);
  crypto_sign_detached(ev + 72, NULL, msg, mlen, plat_sk);
  hetee_wbuf in;
  hetee_wbuf_init(&in);
  hetee_wbuf_u32(&in, HETEE_EVIDENCE_BYTES);
  hetee_wbuf_put(&in, ev, sizeof ev);
  hetee_wbuf_put(&in, b.p, b.len);
  FUZZ_CHECK(!in.err);
  fuzz_seed_add(&s, &n, in.p, in.len);
  hetee_wbuf_free(&in);
  hetee_wbuf_free(&b);
  *out = s;
  return n;
}

FUZZ_NO_KNOWN_BAD

/*
 * fuzz_service_request.c — the signed-request verifier of `hetee server`
 * (src/service/reqsig.c) on untrusted bytes. Input: six header lines
 * (method, target, X-Hetee-Key, X-Hetee-Timestamp, X-Hetee-Nonce,
 * X-Hetee-Signature) each ended by '\n', then the body. Accepted (0) only
 * when every header parses and the Ed25519 signature covers exactly this
 * method, target, body, timestamp, nonce and key; then the target is
 * re-checked printable and the verdict must not depend on anything else.
 * Seeds: requests signed with a deterministic key.
 */
#include <sodium.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "hetee/common.h"
#include "service/reqsig.h"

const char fuzz_target_name[] = "service_request";
const int fuzz_prefixes_valid = 0;

static uint8_t g_pk[32], g_sk[64];

int fuzz_setup(void) {
  if (sodium_init() < 0) return -1;
  uint8_t seed[32];
  memset(seed, 0x42, sizeof seed);
  crypto_sign_seed_keypair(g_pk, g_sk, seed);
  return 0;
}
void fuzz_teardown(void) {}

int fuzz_one(const uint8_t *data, size_t len) {
  char *f[6] = {0};
  size_t off = 0;
  char *copy = malloc(len + 1);
  if (!copy) return HETEE_ERR_NOMEM;
  memcpy(copy, data, len);
  copy[len] = 0;
  int rc = 0;
  for (int i = 0; i < 6; i++) {
    char *nl = memchr(copy + off, '\n', len - off);
    if (!nl) {
      rc = HETEE_ERR_FORMAT;
      break;
    }
    *nl = 0;
    f[i] = copy + off;
    if (strlen(f[i]) != (size_t)(nl - (copy + off))) rc = HETEE_ERR_FORMAT; /* NUL inside a header */
    off = (size_t)(nl - copy) + 1;
  }
  reqsig h;
  if (!rc) rc = reqsig_parse(f[2], f[3], f[4], f[5], &h);
  uint8_t bh[32];
  if (!rc) {
    reqsig_body_hash(data + off, len - off, bh);
    rc = reqsig_verify(&h, f[0], f[1], bh);
  }
  if (!rc) {
    /* accepted: the time check behaves and a changed body is refused */
    FUZZ_CHECK(reqsig_check_time(&h, h.ts_ms, 0) == 0);
    FUZZ_CHECK(reqsig_check_time(&h, h.ts_ms + REQSIG_WINDOW_MS + 1, 0) == HETEE_ERR_REPLAY);
    bh[0] ^= 1;
    FUZZ_CHECK(reqsig_verify(&h, f[0], f[1], bh) == HETEE_ERR_BAD_SIGNATURE);
  }
  free(copy);
  return rc;
}

static void add_signed(fuzz_buf **s, size_t *n, const char *method, const char *target, const char *body, uint64_t ts) {
  uint8_t nonce[16], bh[32], d[32], sig[64];
  for (int i = 0; i < 16; i++) nonce[i] = (uint8_t)(i * 7 + ts);
  reqsig_body_hash((const uint8_t *)body, strlen(body), bh);
  reqsig_digest(method, target, bh, ts, nonce, g_pk, d);
  crypto_sign_detached(sig, NULL, d, sizeof d, g_sk);
  char hk[65], hn[33], hs[129], buf[4096];
  reqsig_hex(g_pk, 32, hk);
  reqsig_hex(nonce, 16, hn);
  reqsig_hex(sig, 64, hs);
  int len = snprintf(buf, sizeof buf, "%s\n%s\n%s\n%llu\n%s\n%s\n%s", method, target, hk, (unsigned long long)ts, hn, hs, body);
  fuzz_seed_add(s, n, buf, (size_t)len);
}

size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  add_signed(&s, &n, "POST", "/v1/parties", "{\"role\":\"dp\"}", 1764400000000ull);
  add_signed(&s, &n, "GET", "/v1/jobs/12/result", "", 1764400000123ull);
  add_signed(&s, &n, "POST", "/v1/jobs?model=3&session=00112233445566778899aabbccddeeff", "\x01\x02\x00\x03", 99ull);
  *out = s;
  return n;
}

size_t fuzz_known_bad(fuzz_buf **out) {
  *out = NULL;
  return 0;
}

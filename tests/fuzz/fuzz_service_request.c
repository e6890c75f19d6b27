/*
 * fuzz_service_request.c — the signed-request verifier of `hetee server`
 * (src/service/reqsig.c) on untrusted bytes. Input: seven header lines
 * (method, target, X-Hetee-Key, X-Hetee-Timestamp, X-Hetee-Nonce,
 * X-Hetee-Signature, X-Hetee-Auth: empty = absent) each ended by '\n',
 * then the body. Accepted (0) only when every header parses and the
 * Ed25519 signature covers exactly this method, target, body (v2: its
 * BLAKE2b-256; v3: its Poly1305 tag under the key the server shares with
 * the party, streamed in pieces as the server receives it), timestamp,
 * nonce, key (and for v3 the server's request key); then a changed body
 * digest or tag must be refused, and for v3 the client's side of the MAC
 * key must equal the server's. Seeds: v2 and v3 requests signed with a
 * deterministic key.
 */
#include <sodium.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "hetee/common.h"
#include "service/reqsig.h"

const char fuzz_target_name[] = "service_request";
const int fuzz_prefixes_valid = 0;

static uint8_t g_pk[32], g_sk[64];
static uint8_t g_xpk[32], g_xsk[32]; /* the server's request key */

int fuzz_setup(void) {
  if (sodium_init() < 0) return -1;
  uint8_t seed[32];
  memset(seed, 0x42, sizeof seed);
  crypto_sign_seed_keypair(g_pk, g_sk, seed);
  memset(seed, 0x17, sizeof seed);
  crypto_kx_seed_keypair(g_xpk, g_xsk, seed);
  return 0;
}
void fuzz_teardown(void) {}

int fuzz_one(const uint8_t *data, size_t len) {
  char *f[7] = {0};
  size_t off = 0;
  char *copy = malloc(len + 1);
  if (!copy) return HETEE_ERR_NOMEM;
  memcpy(copy, data, len);
  copy[len] = 0;
  int rc = 0;
  for (int i = 0; i < 7; i++) {
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
  if (!rc) rc = reqsig_parse_auth(f[6][0] ? f[6] : NULL, &h);
  uint8_t bh[32], mk[32];
  const uint8_t *body = data + off;
  size_t blen = len - off;
  if (!rc && h.v3) rc = reqsig_v3_server_key(h.key, g_xpk, g_xsk, mk);
  if (!rc && h.v3) {
    /* as the server: streamed in pieces of uneven sizes */
    reqsig_body_state *st = aligned_alloc(64, (sizeof *st + 63) / 64 * 64);
    if (!st) {
      free(copy);
      return HETEE_ERR_NOMEM;
    }
    reqsig_body_init_v3(st, mk, h.nonce, h.ts_ms);
    for (size_t o = 0, step = 1; o < blen; o += step, step = step * 3 + 1)
      reqsig_body_update(st, body + o, step < blen - o ? step : blen - o);
    reqsig_body_final(st, bh);
    free(st);
    uint8_t whole[16];
    reqsig_body_tag(mk, h.nonce, h.ts_ms, body, blen, whole);
    FUZZ_CHECK(!memcmp(whole, bh, 16));
    rc = reqsig_verify_v3(&h, f[0], f[1], bh, g_xpk);
  } else if (!rc) {
    reqsig_body_hash(body, blen, bh);
    rc = reqsig_verify(&h, f[0], f[1], bh);
  }
  if (!rc) {
    /* accepted: the time check behaves and a changed body is refused */
    FUZZ_CHECK(reqsig_check_time(&h, h.ts_ms, 0) == 0);
    FUZZ_CHECK(reqsig_check_time(&h, h.ts_ms + REQSIG_WINDOW_MS + 1, 0) == HETEE_ERR_REPLAY);
    bh[0] ^= 1;
    if (h.v3) {
      FUZZ_CHECK(reqsig_verify_v3(&h, f[0], f[1], bh, g_xpk) == HETEE_ERR_BAD_SIGNATURE);
      bh[0] ^= 1;
      /* the party's side of the key is the server's; another server key is refused */
      uint8_t ck[32], other[32];
      if (!memcmp(h.key, g_pk, 32)) {
        FUZZ_CHECK(reqsig_v3_client_key(g_sk, g_xpk, ck) == 0 && !memcmp(ck, mk, 32));
      }
      memcpy(other, g_xpk, 32);
      other[31] ^= 1;
      FUZZ_CHECK(reqsig_verify_v3(&h, f[0], f[1], bh, other) == HETEE_ERR_BAD_SIGNATURE);
      /* and the same signature is not a v2 one */
      FUZZ_CHECK(reqsig_verify(&h, f[0], f[1], bh) == HETEE_ERR_BAD_SIGNATURE);
    } else {
      FUZZ_CHECK(reqsig_verify(&h, f[0], f[1], bh) == HETEE_ERR_BAD_SIGNATURE);
    }
  }
  sodium_memzero(mk, sizeof mk);
  free(copy);
  return rc;
}

static void add_signed(fuzz_buf **s, size_t *n, const char *method, const char *target, const char *body, uint64_t ts,
                       int v3) {
  uint8_t nonce[16], bh[32], d[32], sig[64];
  for (int i = 0; i < 16; i++) nonce[i] = (uint8_t)(i * 7 + ts);
  if (v3) {
    uint8_t mk[32];
    if (reqsig_v3_client_key(g_sk, g_xpk, mk)) return;
    reqsig_body_tag(mk, nonce, ts, (const uint8_t *)body, strlen(body), bh);
    reqsig_digest_v3(method, target, bh, ts, nonce, g_pk, g_xpk, d);
  } else {
    reqsig_body_hash((const uint8_t *)body, strlen(body), bh);
    reqsig_digest(method, target, bh, ts, nonce, g_pk, d);
  }
  crypto_sign_detached(sig, NULL, d, sizeof d, g_sk);
  char hk[65], hn[33], hs[129], buf[4096];
  reqsig_hex(g_pk, 32, hk);
  reqsig_hex(nonce, 16, hn);
  reqsig_hex(sig, 64, hs);
  int len = snprintf(buf, sizeof buf, "%s\n%s\n%s\n%llu\n%s\n%s\n%s\n%s", method, target, hk, (unsigned long long)ts, hn,
                     hs, v3 ? "v3" : "", body);
  fuzz_seed_add(s, n, buf, (size_t)len);
}

size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  for (int v3 = 0; v3 < 2; v3++) {
    add_signed(&s, &n, "POST", "/v1/parties", "{\"role\":\"dp\"}", 1764400000000ull, v3);
    add_signed(&s, &n, "GET", "/v1/jobs/12/result", "", 1764400000123ull, v3);
    add_signed(&s, &n, "POST", "/v1/jobs?model=3&session=00112233445566778899aabbccddeeff",
               "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15", 99ull, v3);
  }
  *out = s;
  return n;
}

size_t fuzz_known_bad(fuzz_buf **out) {
  *out = NULL;
  return 0;
}

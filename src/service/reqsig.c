/*
 * reqsig.c — the signed request format (reqsig.h): header parsing with
 * exact lengths, the canonical digest, Ed25519 verification (libsodium) and
 * the time window. Every byte here comes from the network.
 */
#include "service/reqsig.h"

#include <sodium.h>
#include <string.h>
#include <time.h>

#include "hetee/common.h"

void reqsig_hex(const uint8_t *in, size_t n, char *out) { sodium_bin2hex(out, 2 * n + 1, in, n); }

int reqsig_unhex(const char *in, uint8_t *out, size_t n) {
  if (!in || strlen(in) != 2 * n) return hetee_error(HETEE_ERR_FORMAT, "expected %zu hex digits", 2 * n);
  for (size_t i = 0; i < 2 * n; i++) {
    char c = in[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
      return hetee_error(HETEE_ERR_FORMAT, "not a hex digit");
  }
  size_t bin_len = 0;
  if (sodium_hex2bin(out, n, in, 2 * n, NULL, &bin_len, NULL) != 0 || bin_len != n)
    return hetee_error(HETEE_ERR_FORMAT, "bad hex");
  return 0;
}

uint64_t reqsig_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int reqsig_parse(const char *key, const char *ts, const char *nonce, const char *sig, reqsig *out) {
  memset(out, 0, sizeof *out);
  if (!key || !ts || !nonce || !sig)
    return hetee_error(HETEE_ERR_AUTH, "unsigned request: %s, %s, %s and %s headers are required", REQSIG_H_KEY,
                       REQSIG_H_TS, REQSIG_H_NONCE, REQSIG_H_SIG);
  if (reqsig_unhex(key, out->key, 32)) return hetee_error(HETEE_ERR_FORMAT, "%s: 64 hex digits expected", REQSIG_H_KEY);
  if (reqsig_unhex(nonce, out->nonce, 16))
    return hetee_error(HETEE_ERR_FORMAT, "%s: 32 hex digits expected", REQSIG_H_NONCE);
  if (reqsig_unhex(sig, out->sig, 64)) return hetee_error(HETEE_ERR_FORMAT, "%s: 128 hex digits expected", REQSIG_H_SIG);
  size_t n = strlen(ts);
  if (n < 1 || n > 15) return hetee_error(HETEE_ERR_FORMAT, "%s: 1 to 15 decimal digits expected", REQSIG_H_TS);
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (ts[i] < '0' || ts[i] > '9') return hetee_error(HETEE_ERR_FORMAT, "%s: decimal digits expected", REQSIG_H_TS);
    v = v * 10 + (uint64_t)(ts[i] - '0');
  }
  out->ts_ms = v;
  return 0;
}

static int printable(const char *s) {
  for (; *s; s++)
    if (*s <= ' ' || *s > '~') return 0;
  return 1;
}

int reqsig_parse_auth(const char *auth, reqsig *out) {
  out->v3 = 0;
  if (!auth) return 0;
  if (strcmp(auth, "v3")) return hetee_error(HETEE_ERR_FORMAT, "%s: \"v3\" or absent (v2)", REQSIG_H_AUTH);
  out->v3 = 1;
  return 0;
}

void reqsig_body_init(reqsig_body_state *s) {
  s->v3 = 0;
  crypto_generichash_init(&s->h, NULL, 0, 32);
}

/* The one-time Poly1305 key: XChaCha20 keystream under k with the 24-byte
 * nonce = request nonce || u64le timestamp. */
static void v3_otk(const uint8_t k[32], const uint8_t nonce[16], uint64_t ts_ms, uint8_t otk[32]) {
  uint8_t n24[24];
  memcpy(n24, nonce, 16);
  for (int i = 0; i < 8; i++) n24[16 + i] = (uint8_t)(ts_ms >> (8 * i));
  crypto_stream_xchacha20(otk, 32, n24, k);
}

void reqsig_body_init_v3(reqsig_body_state *s, const uint8_t k[32], const uint8_t nonce[16], uint64_t ts_ms) {
  uint8_t otk[32];
  v3_otk(k, nonce, ts_ms, otk);
  s->v3 = 1;
  crypto_onetimeauth_init(&s->p, otk);
  sodium_memzero(otk, sizeof otk);
}

void reqsig_body_update(reqsig_body_state *s, const uint8_t *b, size_t n) {
  if (s->v3) crypto_onetimeauth_update(&s->p, b, n);
  else crypto_generichash_update(&s->h, b, n);
}

void reqsig_body_final(reqsig_body_state *s, uint8_t out[32]) {
  if (s->v3) {
    memset(out, 0, 32);
    crypto_onetimeauth_final(&s->p, out);
  } else {
    crypto_generichash_final(&s->h, out, 32);
  }
  sodium_memzero(&s->p, sizeof s->p);
}

void reqsig_body_tag(const uint8_t k[32], const uint8_t nonce[16], uint64_t ts_ms, const uint8_t *body, size_t len,
                     uint8_t tag[16]) {
  uint8_t otk[32];
  v3_otk(k, nonce, ts_ms, otk);
  crypto_onetimeauth(tag, body ? body : (const uint8_t *)"", len, otk);
  sodium_memzero(otk, sizeof otk);
}

int reqsig_v3_client_key(const uint8_t ed_sk[64], const uint8_t server_xpk[32], uint8_t k[32]) {
  uint8_t xsk[32], xpk[32], rx[32];
  int rc = 0;
  if (crypto_sign_ed25519_sk_to_curve25519(xsk, ed_sk) || crypto_sign_ed25519_pk_to_curve25519(xpk, ed_sk + 32))
    rc = hetee_error(HETEE_ERR_CRYPTO, "identity key has no X25519 form");
  else if (crypto_kx_client_session_keys(rx, k, xpk, xsk, server_xpk))
    rc = hetee_error(HETEE_ERR_CRYPTO, "the server's request key is not usable");
  sodium_memzero(xsk, sizeof xsk);
  sodium_memzero(rx, sizeof rx);
  if (rc) sodium_memzero(k, 32);
  return rc;
}

int reqsig_v3_server_key(const uint8_t party_ed_pk[32], const uint8_t server_xpk[32], const uint8_t server_xsk[32],
                         uint8_t k[32]) {
  uint8_t xpk[32], tx[32];
  int rc = 0;
  if (crypto_sign_ed25519_pk_to_curve25519(xpk, party_ed_pk))
    rc = hetee_error(HETEE_ERR_CRYPTO, "%s has no X25519 form (v3)", REQSIG_H_KEY);
  else if (crypto_kx_server_session_keys(k, tx, server_xpk, server_xsk, xpk))
    rc = hetee_error(HETEE_ERR_CRYPTO, "%s is not usable for v3", REQSIG_H_KEY);
  sodium_memzero(tx, sizeof tx);
  if (rc) sodium_memzero(k, 32);
  return rc;
}
void reqsig_body_hash(const uint8_t *body, size_t len, uint8_t out[32]) {
  crypto_generichash(out, 32, body ? body : (const uint8_t *)"", len, NULL, 0);
}

/* SHA-256(dom with its NUL || method || "\n" || target || "\n" || bind ||
 * u64le ts || nonce || key [|| server_xpk]): the digest both forms sign. */
static void digest_of(const char *dom, size_t domlen, const char *method, const char *target, const uint8_t *bind,
                      size_t bindlen, uint64_t ts_ms, const uint8_t nonce[16], const uint8_t key[32],
                      const uint8_t *server_xpk, uint8_t out[32]) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, (const uint8_t *)dom, domlen);
  crypto_hash_sha256_update(&st, (const uint8_t *)method, strlen(method));
  crypto_hash_sha256_update(&st, (const uint8_t *)"\n", 1);
  crypto_hash_sha256_update(&st, (const uint8_t *)target, strlen(target));
  crypto_hash_sha256_update(&st, (const uint8_t *)"\n", 1);
  crypto_hash_sha256_update(&st, bind, bindlen);
  uint8_t le[8];
  for (int i = 0; i < 8; i++) le[i] = (uint8_t)(ts_ms >> (8 * i));
  crypto_hash_sha256_update(&st, le, 8);
  crypto_hash_sha256_update(&st, nonce, 16);
  crypto_hash_sha256_update(&st, key, 32);
  if (server_xpk) crypto_hash_sha256_update(&st, server_xpk, 32);
  crypto_hash_sha256_final(&st, out);
}

void reqsig_digest(const char *method, const char *target, const uint8_t body_hash[32], uint64_t ts_ms,
                   const uint8_t nonce[16], const uint8_t key[32], uint8_t out[32]) {
  static const char dom[] = "hetee-request-v2";
  digest_of(dom, sizeof dom, method, target, body_hash, 32, ts_ms, nonce, key, NULL, out);
}

void reqsig_digest_v3(const char *method, const char *target, const uint8_t tag[16], uint64_t ts_ms,
                      const uint8_t nonce[16], const uint8_t key[32], const uint8_t server_xpk[32], uint8_t out[32]) {
  static const char dom[] = "hetee-request-v3";
  digest_of(dom, sizeof dom, method, target, tag, 16, ts_ms, nonce, key, server_xpk, out);
}

int reqsig_verify_v3(const reqsig *h, const char *method, const char *target, const uint8_t tag[16],
                     const uint8_t server_xpk[32]) {
  if (!method || !target || strlen(method) + strlen(target) > REQSIG_MAX_TARGET || !printable(method) ||
      !printable(target))
    return hetee_error(HETEE_ERR_LIMIT, "request line too long or not printable ASCII");
  uint8_t d[32];
  reqsig_digest_v3(method, target, tag, h->ts_ms, h->nonce, h->key, server_xpk, d);
  if (crypto_sign_verify_detached(h->sig, d, sizeof d, h->key) != 0)
    return hetee_error(HETEE_ERR_BAD_SIGNATURE,
                       "request signature (v3) does not verify under %s, this body and this server's request key",
                       REQSIG_H_KEY);
  return 0;
}

int reqsig_verify(const reqsig *h, const char *method, const char *target, const uint8_t body_hash[32]) {
  if (!method || !target || strlen(method) + strlen(target) > REQSIG_MAX_TARGET || !printable(method) ||
      !printable(target))
    return hetee_error(HETEE_ERR_LIMIT, "request line too long or not printable ASCII");
  uint8_t d[32];
  reqsig_digest(method, target, body_hash, h->ts_ms, h->nonce, h->key, d);
  if (crypto_sign_verify_detached(h->sig, d, sizeof d, h->key) != 0)
    return hetee_error(HETEE_ERR_BAD_SIGNATURE, "request signature does not verify under %s", REQSIG_H_KEY);
  return 0;
}

int reqsig_check_time(const reqsig *h, uint64_t now_ms, uint64_t start_ms) {
  if (h->ts_ms + REQSIG_WINDOW_MS < now_ms) return hetee_error(HETEE_ERR_REPLAY, "request timestamp is stale (window 300 s)");
  if (h->ts_ms > now_ms + REQSIG_WINDOW_MS) return hetee_error(HETEE_ERR_REPLAY, "request timestamp is in the future");
  if (h->ts_ms < start_ms) return hetee_error(HETEE_ERR_REPLAY, "request signed before this server started");
  return 0;
}

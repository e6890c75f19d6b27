/*
 * reqsig.h — the signed HTTP request format shared by `hetee server`
 * (verification) and the service client (signing). Internal.
 *
 * A party signs every request with its Ed25519 identity key. Headers:
 *   X-Hetee-Key        64 hex digits: the party's public key
 *   X-Hetee-Timestamp  decimal milliseconds since the Unix epoch
 *   X-Hetee-Nonce      32 hex digits: 16 random bytes
 *   X-Hetee-Signature  128 hex digits: Ed25519 over the digest below
 * digest = SHA-256("hetee-request-v2\0" || method || "\n" || target || "\n"
 *                  || BLAKE2b-256(body) || u64le timestamp || nonce[16] || key[32])
 * where target is the request path with its query string, as sent. (v1
 * hashed the body with SHA-256: libsodium's runs at a third of BLAKE2b's
 * speed here, and bodies are ciphertexts of up to hundreds of MB, hashed
 * by the client and again by the server.)
 * The server accepts a timestamp within REQSIG_WINDOW_MS of its clock and
 * not before its own start, and each (key, nonce) once inside the window
 * (replay.c), so a captured request cannot be replayed, before or after a
 * restart.
 *
 * v3 (header X-Hetee-Auth: v3) binds the body with a one-time Poly1305 MAC
 * instead of a hash (Poly1305 runs at ~2.4x BLAKE2b's speed here). The
 * server has a long-term X25519 key pair for request authentication
 * (published as "request_key"); the party's X25519 keys are its Ed25519
 * identity's (crypto_sign_ed25519_*_to_curve25519), and
 *   K   = the party's crypto_kx client tx key == the server's rx key
 *   otk = the first 32 bytes of XChaCha20(K, nonce[16] || u64le timestamp)
 *   tag = Poly1305(otk, body)
 *   digest = SHA-256("hetee-request-v3\0" || method || "\n" || target || "\n"
 *                    || tag[16] || u64le timestamp || nonce[16] || key[32]
 *                    || the server's X25519 public key[32])
 * The tag is not sent: the server computes it from the body as it arrives
 * and the Ed25519 signature must cover it (docs/security.md, "v3 request
 * authentication", says what this gives and what it gives up against v2).
 */
#ifndef HETEE_SERVICE_REQSIG_H
#define HETEE_SERVICE_REQSIG_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#define REQSIG_WINDOW_MS (300u * 1000u)
#define REQSIG_MAX_TARGET 2048 /* method + path + query bytes accepted */

#define REQSIG_H_KEY "X-Hetee-Key"
#define REQSIG_H_TS "X-Hetee-Timestamp"
#define REQSIG_H_NONCE "X-Hetee-Nonce"
#define REQSIG_H_SIG "X-Hetee-Signature"
#define REQSIG_H_AUTH "X-Hetee-Auth" /* absent: v2; "v3": the Poly1305 form */

typedef struct reqsig {
  uint8_t key[32];
  uint64_t ts_ms;
  uint8_t nonce[16];
  uint8_t sig[64];
  int v3; /* X-Hetee-Auth: v3 */
} reqsig;

/* Parses the four header values (any may be NULL: missing). Errors:
 * HETEE_ERR_AUTH (missing header), HETEE_ERR_FORMAT (wrong length, not hex,
 * bad number), with a detail naming the header. */
int reqsig_parse(const char *key, const char *ts, const char *nonce, const char *sig, reqsig *out);
/* The X-Hetee-Auth header (NULL: v2; "v3"): sets out->v3. HETEE_ERR_FORMAT
 * for any other value. Call after reqsig_parse. */
int reqsig_parse_auth(const char *auth, reqsig *out);

/* What a signature covers of the body, at once or streamed: v2 the
 * BLAKE2b-256 hash (out: 32 bytes), v3 the Poly1305 tag (out[0..16), the
 * rest zero). The state is 64-byte aligned: allocate structs holding it
 * accordingly; _final wipes it. */
typedef struct reqsig_body_state {
  crypto_generichash_state h;
  crypto_onetimeauth_state p;
  int v3;
} reqsig_body_state;
void reqsig_body_hash(const uint8_t *body, size_t len, uint8_t out[32]);
void reqsig_body_init(reqsig_body_state *s);
void reqsig_body_init_v3(reqsig_body_state *s, const uint8_t k[32], const uint8_t nonce[16], uint64_t ts_ms);
void reqsig_body_update(reqsig_body_state *s, const uint8_t *b, size_t n);
void reqsig_body_final(reqsig_body_state *s, uint8_t out[32]);
/* The v3 tag of a whole body. */
void reqsig_body_tag(const uint8_t k[32], const uint8_t nonce[16], uint64_t ts_ms, const uint8_t *body, size_t len,
                     uint8_t tag[16]);

/* The v3 MAC key K of a party and a server (crypto_kx; the client's tx is
 * the server's rx). Client side from its Ed25519 secret key (64 bytes,
 * libsodium's seed || pk), server side from the party's Ed25519 public key
 * and the server's X25519 pair. HETEE_ERR_CRYPTO when a key is not usable
 * (e.g. a public key of small order). */
int reqsig_v3_client_key(const uint8_t ed_sk[64], const uint8_t server_xpk[32], uint8_t k[32]);
int reqsig_v3_server_key(const uint8_t party_ed_pk[32], const uint8_t server_xpk[32], const uint8_t server_xsk[32],
                         uint8_t k[32]);

/* The digest a request's signature covers. */
void reqsig_digest(const char *method, const char *target, const uint8_t body_hash[32], uint64_t ts_ms,
                   const uint8_t nonce[16], const uint8_t key[32], uint8_t out[32]);

/* The digest a v3 request's signature covers. */
void reqsig_digest_v3(const char *method, const char *target, const uint8_t tag[16], uint64_t ts_ms,
                      const uint8_t nonce[16], const uint8_t key[32], const uint8_t server_xpk[32], uint8_t out[32]);

/* Checks the signature of a parsed request (v2, whatever h->v3 says).
 * Errors: HETEE_ERR_LIMIT (method or target too long or not printable
 * ASCII), HETEE_ERR_BAD_SIGNATURE. */
int reqsig_verify(const reqsig *h, const char *method, const char *target, const uint8_t body_hash[32]);
/* The same for v3: tag as the server computed it from the body, and its
 * own X25519 public key (a request naming another key does not verify). */
int reqsig_verify_v3(const reqsig *h, const char *method, const char *target, const uint8_t tag[16],
                     const uint8_t server_xpk[32]);

/* Checks the timestamp against now_ms and the server's start: HETEE_ERR_REPLAY
 * ("stale" or "from the future" or "signed before the server started"). */
int reqsig_check_time(const reqsig *h, uint64_t now_ms, uint64_t start_ms);

/* Hex helpers: lower-case encoding (out: 2n + 1 bytes); decoding of exactly
 * 2n hex digits (HETEE_ERR_FORMAT otherwise). */
void reqsig_hex(const uint8_t *in, size_t n, char *out);
int reqsig_unhex(const char *in, uint8_t *out, size_t n);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
uint64_t reqsig_now_ms(void);

#endif

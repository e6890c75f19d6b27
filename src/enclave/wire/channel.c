/*
 * channel.c — the party <-> enclave session channel. Key agreement: X25519
 * between the party's ephemeral key and the enclave's attested channel key;
 * the shared secret and a transcript hash (role, identity key, ephemeral key,
 * hash of the evidence the party verified, channel key) go through BLAKE2b to
 * one key per direction. Messages: XChaCha20-Poly1305 with a 64-bit
 * per-direction counter in the nonce and the associated data; the receiver
 * accepts only the next counter, which rejects replays and reordering (the
 * record layer of TLS 1.3 / Noise, built from libsodium primitives only).
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/wire/proto.h"

void hetee_session_transcript(uint8_t role, const uint8_t id_pk[32], const uint8_t eph_pk[32],
                              const uint8_t evidence_hash[32], const uint8_t channel_pk[32], uint8_t out[32]) {
  crypto_hash_sha256_state st;
  static const char tag[] = "hetee-session-v1";
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, (const uint8_t *)tag, sizeof tag);
  crypto_hash_sha256_update(&st, &role, 1);
  crypto_hash_sha256_update(&st, id_pk, 32);
  crypto_hash_sha256_update(&st, eph_pk, 32);
  crypto_hash_sha256_update(&st, evidence_hash, 32);
  crypto_hash_sha256_update(&st, channel_pk, 32);
  crypto_hash_sha256_final(&st, out);
}

int hetee_session_derive(const uint8_t shared[32], const uint8_t transcript[32], int is_enclave, hetee_chan *c) {
  uint8_t k[64];
  static const char tag[] = "hetee-session-keys-v1";
  crypto_generichash_state st;
  if (crypto_generichash_init(&st, shared, 32, sizeof k) != 0) return hetee_error(HETEE_ERR_CRYPTO, "kdf init");
  crypto_generichash_update(&st, (const uint8_t *)tag, sizeof tag);
  crypto_generichash_update(&st, transcript, 32);
  crypto_generichash_final(&st, k, sizeof k);
  /* k[0..32): party -> enclave, k[32..64): enclave -> party */
  memcpy(c->k_send, is_enclave ? k + 32 : k, 32);
  memcpy(c->k_recv, is_enclave ? k : k + 32, 32);
  c->dir_send = (uint8_t)(is_enclave ? 1 : 0);
  c->dir_recv = (uint8_t)(is_enclave ? 0 : 1);
  c->next_send = c->next_recv = 0;
  memcpy(c->id, transcript, HETEE_SESSION_ID_BYTES);
  sodium_memzero(k, sizeof k);
  return 0;
}

static void make_nonce(uint8_t dir, uint64_t ctr, uint8_t n[24]) {
  memset(n, 0, 24);
  hetee_le64(n, ctr);
  n[8] = dir;
}

int hetee_chan_seal(hetee_chan *c, const uint8_t *msg, size_t len, uint8_t **out, size_t *outlen) {
  if (c->next_send == UINT64_MAX) return hetee_error(HETEE_ERR_LIMIT, "session counter exhausted");
  size_t n = HETEE_SESSION_OVERHEAD + len;
  uint8_t *b = malloc(n);
  if (!b) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  memcpy(b, c->id, HETEE_SESSION_ID_BYTES);
  b[HETEE_SESSION_ID_BYTES] = c->dir_send;
  hetee_le64(b + HETEE_SESSION_ID_BYTES + 1, c->next_send);
  uint8_t nonce[24];
  make_nonce(c->dir_send, c->next_send, nonce);
  unsigned long long clen;
  size_t ad = HETEE_SESSION_ID_BYTES + 9;
  crypto_aead_xchacha20poly1305_ietf_encrypt(b + ad, &clen, msg, len, b, ad, NULL, nonce, c->k_send);
  c->next_send++;
  *out = b;
  *outlen = n;
  return 0;
}

int hetee_chan_open(hetee_chan *c, const uint8_t *in, size_t len, uint8_t **msg, size_t *msglen) {
  *msg = NULL;
  *msglen = 0;
  size_t ad = HETEE_SESSION_ID_BYTES + 9;
  if (len < HETEE_SESSION_OVERHEAD) return hetee_error(HETEE_ERR_FORMAT, "session message too short");
  if (sodium_memcmp(in, c->id, HETEE_SESSION_ID_BYTES) != 0)
    return hetee_error(HETEE_ERR_AUTH, "message belongs to another session");
  if (in[HETEE_SESSION_ID_BYTES] != c->dir_recv) return hetee_error(HETEE_ERR_AUTH, "message has the wrong direction");
  uint64_t ctr = hetee_rd64(in + HETEE_SESSION_ID_BYTES + 1);
  if (ctr != c->next_recv)
    return hetee_error(HETEE_ERR_REPLAY, "session message counter %llu, expected %llu (replayed or reordered)",
                       (unsigned long long)ctr, (unsigned long long)c->next_recv);
  size_t n = len - HETEE_SESSION_OVERHEAD;
  uint8_t *p = malloc(n ? n : 1);
  if (!p) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  uint8_t nonce[24];
  make_nonce(c->dir_recv, ctr, nonce);
  unsigned long long plen;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(p, &plen, NULL, in + ad, len - ad, in, ad, nonce, c->k_recv) != 0) {
    free(p);
    return hetee_error(HETEE_ERR_AUTH, "session message fails authentication (tampered or wrong key)");
  }
  c->next_recv++;
  *msg = p;
  *msglen = (size_t)plen;
  return 0;
}

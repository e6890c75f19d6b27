/*
 * seal_blob.c — the sealed-state container: XChaCha20-Poly1305 (libsodium,
 * random 192-bit nonce) under a 32-byte key that the platform derives from
 * its sealing secret and the enclave's measurement, so only the same enclave
 * binary + configuration on the same platform can open it (the model of SGX's
 * MRENCLAVE sealing policy).
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/wire/proto.h"

#define SEAL_HDR 8
#define SEAL_VERSION 1

int hetee_seal_blob(const uint8_t key[32], const uint8_t *plain, size_t len, uint8_t **out, size_t *outlen) {
  size_t n = SEAL_HDR + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + len + crypto_aead_xchacha20poly1305_ietf_ABYTES;
  uint8_t *b = malloc(n);
  if (!b) return hetee_error(HETEE_ERR_NOMEM, "no memory for sealed blob");
  memcpy(b, "HTSL", 4);
  hetee_le16(b + 4, SEAL_VERSION);
  hetee_le16(b + 6, 0);
  uint8_t *nonce = b + SEAL_HDR;
  randombytes_buf(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &clen, plain, len,
                                             b, SEAL_HDR, NULL, nonce, key);
  *out = b;
  *outlen = n;
  return 0;
}

int hetee_unseal_blob(const uint8_t key[32], const uint8_t *in, size_t len, uint8_t **plain, size_t *plainlen) {
  *plain = NULL;
  *plainlen = 0;
  size_t min = SEAL_HDR + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES;
  if (len < min || memcmp(in, "HTSL", 4) != 0) return hetee_error(HETEE_ERR_FORMAT, "not a sealed hetee blob");
  if (hetee_rd16(in + 4) != SEAL_VERSION) return hetee_error(HETEE_ERR_VERSION, "sealed blob version %u", hetee_rd16(in + 4));
  size_t n = len - min;
  uint8_t *p = sodium_malloc(n ? n : 1);
  if (!p) return hetee_error(HETEE_ERR_NOMEM, "no memory to unseal");
  const uint8_t *nonce = in + SEAL_HDR;
  unsigned long long plen = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(p, &plen, NULL, nonce + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
                                                 len - SEAL_HDR - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, in,
                                                 SEAL_HDR, nonce, key) != 0) {
    sodium_free(p);
    return hetee_error(HETEE_ERR_AUTH, "sealed state does not open with this enclave's sealing key "
                                       "(other enclave binary, configuration or platform, or tampered)");
  }
  *plain = p;
  *plainlen = (size_t)plen;
  return 0;
}

/*
 * fuzz_enclave.h — an in-process enclave for the fuzz targets that parse
 * what the untrusted host sends (frames, request bodies, sealed state):
 * the real handlers of src/enclave (enclave_dispatch) on an `enclave` struct
 * set up like enclave_main.c does, but deterministic — fixed platform,
 * channel and sealing keys, a secret key loaded from fixed ternary bytes, a
 * fake evidence backend that signs like the sim launcher, a configuration
 * naming two model providers (mp=) — so seeds written
 * by one build are valid in another (the libFuzzer build). After every input
 * fz_reset() puts back the state an input may change (sessions, policies,
 * parties, issued evidence, keys), so inputs do not depend on each other.
 */
#ifndef HETEE_TESTS_FUZZ_ENCLAVE_H
#define HETEE_TESTS_FUZZ_ENCLAVE_H

#include <sodium.h>
#include <string.h>

#include "enclave/trusted/backend.h"
#include "enclave/trusted/enclave_internal.h"
#include "enclave/wire/platform.h"
#include "fuzz/fuzz.h"
#include "hetee/ckks.h"

/* logN 13: releases need a scale of at least n 2^(64 + precision) (flooding,
 * hetee_release_spec), which logN 12 moduli cannot hold */
#define FZ_CONFIG "logn=13;q=60,40,40;p=60;scale=40;budget=67108864;max_galois=4"
#define FZ_RELEASE_SCALE 0x1p100
/* Party identities of the seeds are Ed25519 keys from the seed bytes
 * (tag + 1) x 32 (fz_party_key). The configuration lists two model
 * providers in mp= (tags FZ_MP1, FZ_MP2); FZ_HOST_MP is an identity the host
 * makes up (not listed). */
#define FZ_MP1 0xa0
#define FZ_MP2 0xe0
#define FZ_HOST_MP 0xf0

static enclave fz_e;
static uint8_t fz_plat_pk[32], fz_plat_sk[64];
static enclave_policy fz_policies0[ENCLAVE_MAX_POLICIES];
static uint8_t *fz_sk_bytes;
static size_t fz_sk_len;

static inline void fz_fill(uint8_t *p, size_t n, uint8_t v) { memset(p, v, n); }

/* The deterministic identity key pair of party `tag`. */
static inline void fz_party_key(uint8_t tag, uint8_t pk[32], uint8_t sk[64]) {
  uint8_t seed[32];
  memset(seed, (uint8_t)(tag + 1), 32);
  crypto_sign_seed_keypair(pk, sk, seed);
}

/* Evidence over report data, signed with the fixed platform key (the format
 * of the sim launcher, enclave/evidence.c). */
static int fz_report(struct enclave *e, const uint8_t rd[32], uint8_t *out, size_t cap, size_t *len) {
  if (cap < HETEE_EVIDENCE_BYTES) return hetee_error(HETEE_ERR_LIMIT, "evidence buffer");
  memcpy(out, "HTEV", 4);
  hetee_le16(out + 4, 1);
  hetee_le16(out + 6, HETEE_BACKEND_SIM);
  memcpy(out + 8, e->measurement, 32);
  memcpy(out + 40, rd, 32);
  uint8_t msg[32 + HETEE_EVIDENCE_SIGNED_BYTES];
  size_t n = hetee_evidence_signed_message(out, msg);
  crypto_sign_detached(out + 72, NULL, msg, n, fz_plat_sk);
  *len = HETEE_EVIDENCE_BYTES;
  return 0;
}
static int fz_init(struct enclave *e) {
  (void)e;
  return 0;
}
static const enclave_backend fz_backend = {"fuzz", HETEE_BACKEND_SIM, fz_init, fz_report};

/* The fixed secret key: header of the parameter object retyped, then N
 * ternary coefficients from a fixed xorshift stream. */
static int fz_make_sk_bytes(void) {
  uint8_t *lit = NULL;
  size_t litlen = 0;
  if (hetee_ckks_literal_save(fz_e.ctx, &lit, &litlen)) return -1;
  size_t n = hetee_ckks_context_n(fz_e.ctx);
  fz_sk_len = 52 + n;
  fz_sk_bytes = malloc(fz_sk_len);
  if (!fz_sk_bytes) return -1;
  memcpy(fz_sk_bytes, lit, 52);
  free(lit);
  hetee_le16(fz_sk_bytes + 8, HETEE_OBJ_SECRET_KEY);
  hetee_le16(fz_sk_bytes + 10, 0);
  hetee_le64(fz_sk_bytes + 12, (uint64_t)fz_sk_len);
  uint64_t x = 0x243f6a8885a308d3ull;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    fz_sk_bytes[52 + i] = (uint8_t)(int8_t)((int)(x % 3) - 1);
  }
  return 0;
}

static int fz_load_sk(void) {
  hetee_ckks_secret_key_free(fz_e.sk);
  fz_e.sk = NULL;
  if (hetee_ckks_secret_key_load(fz_e.ctx, fz_sk_bytes, fz_sk_len, &fz_e.sk)) return -1;
  fz_e.have_keys = 1;
  return 0;
}

static int fz_enclave_setup(void) {
  if (sodium_init() < 0) return -1;
  memset(&fz_e, 0, sizeof fz_e);
  fz_e.sec = sodium_malloc(sizeof *fz_e.sec);
  if (!fz_e.sec) return -1;
  memset(fz_e.sec, 0, sizeof *fz_e.sec);
  fz_e.backend = &fz_backend;
  fz_e.host_fd = fz_e.plat_fd = -1;
  uint8_t seed[32];
  fz_fill(seed, 32, 0x11);
  crypto_sign_seed_keypair(fz_plat_pk, fz_plat_sk, seed);
  fz_fill(seed, 32, 0x22);
  crypto_box_seed_keypair(fz_e.ch_pk, fz_e.sec->ch_sk, seed);
  fz_fill(fz_e.measurement, 32, 0x5a);
  fz_fill(fz_e.sec->seal_key, 32, 0x33);
  uint8_t mps[2][32], sk[64];
  fz_party_key(FZ_MP1, mps[0], sk);
  fz_party_key(FZ_MP2, mps[1], sk);
  sodium_memzero(sk, sizeof sk);
  if (hetee_enclave_config_with_mps(FZ_CONFIG, (const uint8_t(*)[32])mps, 2, fz_e.config_str, sizeof fz_e.config_str))
    return -1;
  if (enclave_config_parse(fz_e.config_str, &fz_e.cfg) || enclave_keys_init(&fz_e)) return -1;
  if (fz_make_sk_bytes() || fz_load_sk()) return -1;
  memcpy(fz_policies0, fz_e.policies, sizeof fz_policies0);
  return 0;
}

/* Puts back everything an input may have changed. */
static void fz_reset(void) {
  memset(fz_e.sec->sessions, 0, sizeof fz_e.sec->sessions);
  memset(fz_e.sec->session_used, 0, sizeof fz_e.sec->session_used);
  memcpy(fz_e.policies, fz_policies0, sizeof fz_policies0);
  memset(fz_e.parties, 0, sizeof fz_e.parties);
  fz_e.n_parties = 0;
  memset(fz_e.issued, 0, sizeof fz_e.issued);
  fz_e.n_issued = 0;
  fz_e.next_session = 0;
  if (fz_e.bundle_len != 8) FUZZ_CHECK(enclave_set_empty_bundle(&fz_e) == 0);
  FUZZ_CHECK(fz_load_sk() == 0);
}

static void fz_enclave_teardown(void) {
  enclave_keys_free(&fz_e);
  if (fz_e.sec) sodium_free(fz_e.sec);
  fz_e.sec = NULL;
  free(fz_sk_bytes);
  fz_sk_bytes = NULL;
}

/* The sealed state of the enclave as it is now (a valid UNSEAL body). */
static void fz_sealed_state(uint8_t **out, size_t *len) {
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  FUZZ_CHECK(enclave_handle_seal(&fz_e, &w) == 0 && !w.err);
  *out = hetee_wbuf_take(&w, len);
}

#endif

/*
 * tests/client/test_verify.c — the party side in process: evidence built
 * and signed here with a sim platform's key (as the launcher does) and
 * verified with hetee_client_verify_evidence, one distinct status per
 * failure; identity key files; a session handshake checked against the
 * enclave-side derivation; release records that do not parse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enclave/wire/platform.h"
#include "enclave/wire/proto.h"
#include "hetee/client.h"

typedef struct {
  char dir[64], plat[128], plat2[128];
  hetee_platform pl;
  uint8_t meas[32], bundle[40], ch[32], nonce[32], ev[HETEE_EVIDENCE_BYTES], ppk[32], ppk2[32];
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/hetee-client-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->plat, sizeof f->plat, "%s/p1", f->dir);
  snprintf(f->plat2, sizeof f->plat2, "%s/p2", f->dir);
  assert_int_equal(hetee_platform_init(f->plat), 0);
  assert_int_equal(hetee_platform_init(f->plat2), 0);
  assert_int_equal(hetee_platform_load(f->plat, &f->pl), 0);
  assert_int_equal(hetee_platform_load_public(f->plat, f->ppk), 0);
  assert_int_equal(hetee_platform_load_public(f->plat2, f->ppk2), 0);
  assert_memory_equal(f->pl.pk, f->ppk, 32);
  assert_int_equal(hetee_measure_bytes((const uint8_t *)"enclave code", 12, NULL, f->meas), 0);
  memcpy(f->bundle, "HTKB\1\0\0\0", 8);
  randombytes_buf(f->ch, 32);
  randombytes_buf(f->nonce, 32);
  uint8_t fp[32], rd[32];
  hetee_key_bundle_fingerprint(f->bundle, 8, fp);
  hetee_report_data(fp, f->ch, f->nonce, rd);
  assert_int_equal(hetee_platform_sign_report(&f->pl, f->meas, rd, f->ev), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  sodium_memzero(&f->pl, sizeof f->pl);
  free(f);
  return 0;
}

static int verify(fx *f, const uint8_t *ev, size_t len, const uint8_t *ppk, const uint8_t *meas, const uint8_t *bundle,
                  const uint8_t *ch, const uint8_t *nonce, hetee_verified_enclave *v) {
  return hetee_client_verify_evidence(ev, len, ppk, meas, bundle, 8, ch, nonce, v);
}

static void test_each_failure_has_its_code(void **state) {
  fx *f = *state;
  hetee_verified_enclave v;
  assert_int_equal(verify(f, f->ev, sizeof f->ev, f->ppk, f->meas, f->bundle, f->ch, f->nonce, &v), 0);
  assert_memory_equal(v.measurement, f->meas, 32);
  assert_int_equal(v.backend, HETEE_BACKEND_SIM);
  assert_int_equal(verify(f, f->ev, sizeof f->ev, f->ppk2, f->meas, f->bundle, f->ch, f->nonce, NULL),
                   HETEE_ERR_BAD_SIGNATURE);
  uint8_t other[32];
  memcpy(other, f->meas, 32);
  other[31] ^= 1;
  assert_int_equal(verify(f, f->ev, sizeof f->ev, f->ppk, other, f->bundle, f->ch, f->nonce, NULL),
                   HETEE_ERR_MEASUREMENT);
  uint8_t b2[8];
  memcpy(b2, f->bundle, 8);
  b2[7] = 1;
  assert_int_equal(verify(f, f->ev, sizeof f->ev, f->ppk, f->meas, b2, f->ch, f->nonce, NULL), HETEE_ERR_KEY_BINDING);
  assert_int_equal(verify(f, f->ev, sizeof f->ev, f->ppk, f->meas, f->bundle, other, f->nonce, NULL),
                   HETEE_ERR_KEY_BINDING);
  assert_int_equal(verify(f, f->ev, sizeof f->ev, f->ppk, f->meas, f->bundle, f->ch, other, NULL),
                   HETEE_ERR_KEY_BINDING);
  /* a measurement field rewritten by an attacker breaks the signature first */
  uint8_t ev[HETEE_EVIDENCE_BYTES];
  memcpy(ev, f->ev, sizeof ev);
  ev[8] ^= 1;
  assert_int_equal(verify(f, ev, sizeof ev, f->ppk, f->meas, f->bundle, f->ch, f->nonce, NULL),
                   HETEE_ERR_BAD_SIGNATURE);
  memcpy(ev, f->ev, sizeof ev);
  ev[0] = 'X';
  assert_int_equal(verify(f, ev, sizeof ev, f->ppk, f->meas, f->bundle, f->ch, f->nonce, NULL), HETEE_ERR_FORMAT);
  memcpy(ev, f->ev, sizeof ev);
  ev[4] = 2;
  assert_int_equal(verify(f, ev, sizeof ev, f->ppk, f->meas, f->bundle, f->ch, f->nonce, NULL), HETEE_ERR_VERSION);
  assert_int_equal(verify(f, f->ev, 10, f->ppk, f->meas, f->bundle, f->ch, f->nonce, NULL), HETEE_ERR_FORMAT);
  assert_int_equal(verify(f, NULL, 0, f->ppk, f->meas, f->bundle, f->ch, f->nonce, NULL), HETEE_ERR_INVALID_ARG);
}

static void test_hex(void **state) {
  uint8_t b[32], c[32];
  char h[65];
  randombytes_buf(b, 32);
  hetee_hex_encode32(b, h);
  assert_int_equal(strlen(h), 64);
  assert_int_equal(hetee_hex_decode32(h, c), 0);
  assert_memory_equal(b, c, 32);
  assert_int_equal(hetee_hex_decode32("abc", c), HETEE_ERR_FORMAT);
  h[10] = 'g';
  assert_int_equal(hetee_hex_decode32(h, c), HETEE_ERR_FORMAT);
}

static void test_party_key_files(void **state) {
  fx *f = *state;
  char path[128];
  snprintf(path, sizeof path, "%s/mp.key", f->dir);
  hetee_party_key *k, *l;
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_MP, &k), 0);
  assert_int_equal(hetee_party_key_save(k, path), 0);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(hetee_party_key_load(path, &l), 0);
  uint8_t a[32], b[32];
  hetee_party_key_public(k, a);
  hetee_party_key_public(l, b);
  assert_memory_equal(a, b, 32);
  assert_int_equal(hetee_party_key_role(l), HETEE_PARTY_MP);
  hetee_party_key_free(l);
  hetee_party_key_free(k);
  hetee_party_key_free(NULL);
  FILE *fp = fopen(path, "r+b");
  fputc('Z', fp);
  fclose(fp);
  assert_int_equal(hetee_party_key_load(path, &l), HETEE_ERR_FORMAT);
  assert_int_equal(hetee_party_key_generate(3, &k), HETEE_ERR_INVALID_ARG);
}

/* The handshake produces the keys the enclave side derives. */
static void test_handshake_keys_match(void **state) {
  uint8_t ch_pk[32], ch_sk[32];
  crypto_box_keypair(ch_pk, ch_sk);
  hetee_verified_enclave v;
  memset(&v, 0, sizeof v);
  memcpy(v.channel_pk, ch_pk, 32);
  randombytes_buf(v.evidence_hash, 32);
  hetee_party_key *dp;
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_DP, &dp), 0);
  hetee_client_session *s;
  uint8_t *hs;
  size_t hl;
  assert_int_equal(hetee_client_session_new(dp, &v, &s, &hs, &hl), 0);
  assert_int_equal(hl, 161);
  /* enclave side: verify the signature and derive */
  uint8_t tr[32], shared[32];
  hetee_session_transcript(hs[0], hs + 1, hs + 33, hs + 65, ch_pk, tr);
  assert_int_equal(crypto_sign_verify_detached(hs + 97, tr, 32, hs + 1), 0);
  assert_int_equal(crypto_scalarmult(shared, ch_sk, hs + 33), 0);
  hetee_chan enc;
  assert_int_equal(hetee_session_derive(shared, tr, 1, &enc), 0);
  uint8_t *conf, *reply;
  size_t cl;
  assert_int_equal(hetee_chan_seal(&enc, (const uint8_t *)"hetee-session-ok", 17, &conf, &cl), 0);
  reply = malloc(16 + cl);
  memcpy(reply, enc.id, 16);
  memcpy(reply + 16, conf, cl);
  /* sending before the handshake finished is refused */
  uint8_t *m;
  size_t ml;
  assert_int_equal(hetee_client_session_seal(s, (const uint8_t *)"x", 1, &m, &ml), HETEE_ERR_STATE);
  assert_int_equal(hetee_client_session_finish(s, reply, 16 + cl), 0);
  /* a release record that is not well formed */
  uint8_t bad[3] = {1, 2, 3}, *sealed;
  size_t sl;
  assert_int_equal(hetee_chan_seal(&enc, bad, sizeof bad, &sealed, &sl), 0);
  hetee_release_result r;
  assert_int_equal(hetee_client_release_open(s, sealed, sl, &r), HETEE_ERR_FORMAT);
  free(sealed);
  free(conf);
  free(reply);
  free(hs);
  hetee_client_session_free(s);
  hetee_party_key_free(dp);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_each_failure_has_its_code),
      cmocka_unit_test(test_hex),
      cmocka_unit_test(test_party_key_files),
      cmocka_unit_test(test_handshake_keys_match),
  };
  return cmocka_run_group_tests_name("client/verify", tests, setup, teardown);
}

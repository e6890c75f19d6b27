/*
 * fixture.h — shared helpers of the enclave/host/client tests: a temporary
 * sim platform, paths of the built binaries (HETEE_BIN_DIR, set by ctest),
 * starting the real enclave process, fetching and verifying its evidence,
 * opening party sessions, and a tampered copy of the enclave binary.
 */
#ifndef HETEE_TEST_ENCLAVE_FIXTURE_H
#define HETEE_TEST_ENCLAVE_FIXTURE_H

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

#include "hetee/client.h"
#include "hetee/enclave.h"
#include "hetee/host.h"

#define ENCLAVE_BUILD_TAG_TEXT "hetee-enclave build tag: sim backend v1"

static inline int fx_quick(void) { return getenv("HETEE_TEST_QUICK") != NULL; }

static inline const char *fx_bin_dir(void) {
  const char *d = getenv("HETEE_BIN_DIR");
  return d ? d : "./bin";
}

static inline void fx_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", fx_bin_dir(), name); }

/* A fresh directory under /tmp; the caller removes it with fx_rmtree. */
static inline void fx_tmpdir(char *out, size_t n) {
  snprintf(out, n, "/tmp/hetee-test-XXXXXX");
  assert_non_null(mkdtemp(out));
}

static inline void fx_rmtree(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

/* Waits (up to 5 s) until process pid has died (gone or a zombie: its
 * sockets are closed either way). A fixed sleep after SIGKILL made the
 * crash tests depend on the machine's load. */
static inline void fx_wait_dead(int pid) {
  for (int i = 0; i < 500; i++) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *rp = strrchr(buf, ')');
    if (rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X')) return;
    usleep(10 * 1000);
  }
  fail_msg("process %d still alive 5 s after SIGKILL", pid);
}

/* Creates DIR/name as a platform. */
static inline void fx_platform(const char *dir, const char *name, char *out, size_t n) {
  snprintf(out, n, "%s/%s", dir, name);
  assert_int_equal(hetee_platform_init(out), 0);
}

/* A fresh temporary directory (dir) holding a simulated platform "plat"
 * (its path in plat): the start of every enclave test's set-up. */
static inline void fx_tmp_platform(char *dir, size_t dn, char *plat, size_t pn) {
  fx_tmpdir(dir, dn);
  fx_platform(dir, "plat", plat, pn);
}

/* The end of every enclave test's tear-down: stops the enclave (NULL: none)
 * and removes the directory of fx_tmp_platform. */
static inline void fx_stop(hetee_host_enclave *e, const char *dir) {
  hetee_host_free(e);
  fx_rmtree(dir);
}

/* Starts the enclave with configuration `config` (NULL: the default). */
static inline hetee_host_enclave *fx_start_cfg(const char *platform, const char *enclave_path, const char *seal_path,
                                          int auto_restart, const char *config) {
  hetee_host_options o;
  memset(&o, 0, sizeof o);
  o.config = config;
  o.platform_dir = platform;
  o.enclave_path = enclave_path;
  o.seal_path = seal_path;
  o.auto_restart = auto_restart;
  hetee_host_enclave *e = NULL;
  int rc = hetee_host_start(&o, &e);
  if (rc) fprintf(stderr, "start: %s: %s\n", hetee_strerror(rc), hetee_last_error());
  assert_int_equal(rc, 0);
  return e;
}

static inline hetee_host_enclave *fx_start(const char *platform, const char *enclave_path, const char *seal_path,
                                      int auto_restart) {
  return fx_start_cfg(platform, enclave_path, seal_path, auto_restart, NULL);
}

/* Measurement of the published enclave binary under configuration `config`
 * (NULL: the default): what a party computes from a configuration it
 * checked itself. */
static inline void fx_expected_measurement_cfg(const char *config, uint8_t m[32]) {
  char p[4096];
  fx_path(p, sizeof p, "hetee-enclave");
  assert_int_equal(hetee_measure_file(p, config, m), 0);
}

static inline void fx_expected_measurement(uint8_t m[32]) { fx_expected_measurement_cfg(NULL, m); }

typedef struct fx_evidence {
  uint8_t nonce[32], ch[32], fp[32];
  uint8_t *ev, *bundle;
  size_t evlen, blen;
} fx_evidence;

static inline void fx_get_evidence(hetee_host_enclave *e, fx_evidence *x) {
  randombytes_buf(x->nonce, 32);
  assert_int_equal(hetee_host_public_keys(e, &x->bundle, &x->blen), 0);
  assert_int_equal(hetee_host_evidence(e, x->nonce, &x->ev, &x->evlen, x->ch, x->fp), 0);
}

static inline void fx_evidence_free(fx_evidence *x) {
  free(x->ev);
  free(x->bundle);
  memset(x, 0, sizeof *x);
}

/* Verifies e's evidence like a party expecting configuration `config` (NULL:
 * the default) and returns the verified description. */
static inline void fx_verify_cfg(hetee_host_enclave *e, const char *platform, const char *config,
                                 hetee_verified_enclave *v) {
  fx_evidence x;
  uint8_t ppk[32], m[32];
  fx_get_evidence(e, &x);
  assert_int_equal(hetee_platform_load_public(platform, ppk), 0);
  fx_expected_measurement_cfg(config, m);
  int rc = hetee_client_verify_evidence(x.ev, x.evlen, ppk, m, x.bundle, x.blen, x.ch, x.nonce, v);
  if (rc) fprintf(stderr, "verify: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  fx_evidence_free(&x);
}

static inline void fx_verify(hetee_host_enclave *e, const char *platform, hetee_verified_enclave *v) {
  fx_verify_cfg(e, platform, NULL, v);
}

/* The configuration `base` (NULL: default) with model providers keys[0..n)
 * in its mp= list, as parties build it. */
static inline void fx_config_mps(const char *base, hetee_party_key *const *keys, size_t n, char *out, size_t cap) {
  uint8_t pks[HETEE_ENCLAVE_MAX_MPS][32];
  assert_true(n <= HETEE_ENCLAVE_MAX_MPS);
  for (size_t i = 0; i < n; i++) hetee_party_key_public(keys[i], pks[i]);
  assert_int_equal(hetee_enclave_config_with_mps(base, (const uint8_t(*)[32])pks, n, out, cap), 0);
}

static inline hetee_client_session *fx_session(hetee_host_enclave *e, const hetee_party_key *id,
                                               const hetee_verified_enclave *v) {
  hetee_client_session *s = NULL;
  uint8_t *hs, *reply;
  size_t hlen, rlen;
  assert_int_equal(hetee_client_session_new(id, v, &s, &hs, &hlen), 0);
  int rc = hetee_host_session_open(e, hs, hlen, &reply, &rlen);
  if (rc) fprintf(stderr, "session open: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  assert_int_equal(hetee_client_session_finish(s, reply, rlen), 0);
  free(hs);
  free(reply);
  return s;
}

/* Copies the enclave binary to dir/name, flipping one byte inside its build
 * tag string: the copy still runs, but it is not the published binary. */
static inline void fx_tampered_copy(const char *dir, char *out, size_t n) {
  char src[4096];
  fx_path(src, sizeof src, "hetee-enclave");
  FILE *f = fopen(src, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)len);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  const char *tag = ENCLAVE_BUILD_TAG_TEXT;
  size_t tl = strlen(tag);
  long at = -1;
  for (long i = 0; i + (long)tl <= len; i++)
    if (!memcmp(b + i, tag, tl)) {
      at = i;
      break;
    }
  assert_true(at >= 0);
  b[at + tl - 1] ^= 0x01; /* "v1" -> "v0" */
  snprintf(out, n, "%s/hetee-enclave-tampered", dir);
  f = fopen(out, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  chmod(out, 0755);
  free(b);
}

#endif

/*
 * tests/enclave/test_process.c — integration tests against the real
 * hetee-launcher + hetee-enclave processes: evidence round trip, each
 * verifier failure with its own code (tampered binary, wrong platform key,
 * swapped key bundle, replayed evidence), sessions (replay, tampering,
 * unbound evidence), hardening visible from /proc (every thread filtered),
 * crash + automatic restart.
 */
#define _GNU_SOURCE /* memmem */
#include <sys/resource.h>

#include "enclave/fixture.h"
#include "host/host_internal.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>

typedef struct {
  char dir[256], plat[300], plat2[300];
  hetee_host_enclave *e;
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  fx_tmp_platform(f->dir, sizeof f->dir, f->plat, sizeof f->plat);
  fx_platform(f->dir, "plat2", f->plat2, sizeof f->plat2);
  f->e = fx_start(f->plat, NULL, NULL, 1);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  fx_stop(f->e, f->dir);
  free(f);
  return 0;
}

static void test_evidence_verifies(void **state) {
  fx *f = *state;
  hetee_verified_enclave v;
  fx_verify(f->e, f->plat, &v);
  hetee_host_info info;
  assert_int_equal(hetee_host_info_get(f->e, &info), 0);
  assert_memory_equal(v.measurement, info.measurement, 32);
  assert_memory_equal(v.channel_pk, info.channel_pk, 32);
  assert_memory_equal(v.bundle_fp, info.bundle_fp, 32);
  assert_string_equal(info.config, HETEE_ENCLAVE_DEFAULT_CONFIG);
  /* The launcher lifts RLIMIT_MEMLOCK when it may (CAP_SYS_RESOURCE), else
   * raises the soft limit to the hard one; INFO says whether that covers
   * what the default configuration may lock (270540800 bytes: key material
   * and the 256 MiB budget). Whether this process may lift the limit is
   * tried in a child. */
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct rlimit inf = {RLIM_INFINITY, RLIM_INFINITY};
    _exit(setrlimit(RLIMIT_MEMLOCK, &inf) == 0 ? 0 : 1);
  }
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  struct rlimit ml;
  assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &ml), 0);
  int can_lift = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  int enough = ml.rlim_max == RLIM_INFINITY || ml.rlim_max >= 270540800u;
  assert_int_equal(info.secrets_locked, can_lift || enough);
}

static void test_wrong_platform_key(void **state) {
  fx *f = *state;
  fx_evidence x;
  uint8_t other[32], m[32];
  fx_get_evidence(f->e, &x);
  assert_int_equal(hetee_platform_load_public(f->plat2, other), 0);
  fx_expected_measurement(m);
  assert_int_equal(hetee_client_verify_evidence(x.ev, x.evlen, other, m, x.bundle, x.blen, x.ch, x.nonce, NULL),
                   HETEE_ERR_BAD_SIGNATURE);
  /* a signature bit flipped is refused the same way */
  uint8_t ppk[32];
  assert_int_equal(hetee_platform_load_public(f->plat, ppk), 0);
  x.ev[100] ^= 4;
  assert_int_equal(hetee_client_verify_evidence(x.ev, x.evlen, ppk, m, x.bundle, x.blen, x.ch, x.nonce, NULL),
                   HETEE_ERR_BAD_SIGNATURE);
  /* and a truncated evidence is a format error */
  assert_int_equal(hetee_client_verify_evidence(x.ev, x.evlen - 1, ppk, m, x.bundle, x.blen, x.ch, x.nonce, NULL),
                   HETEE_ERR_FORMAT);
  fx_evidence_free(&x);
}

static void test_tampered_binary(void **state) {
  fx *f = *state;
  char copy[400];
  fx_tampered_copy(f->dir, copy, sizeof copy);
  hetee_host_enclave *t = fx_start(f->plat, copy, NULL, 0);
  fx_evidence x;
  uint8_t ppk[32], m[32], mcopy[32];
  fx_get_evidence(t, &x);
  assert_int_equal(hetee_platform_load_public(f->plat, ppk), 0);
  fx_expected_measurement(m);
  assert_int_equal(hetee_client_verify_evidence(x.ev, x.evlen, ppk, m, x.bundle, x.blen, x.ch, x.nonce, NULL),
                   HETEE_ERR_MEASUREMENT);
  /* the launcher reports the copy's true measurement, not the one it claims */
  assert_int_equal(hetee_measure_file(copy, NULL, mcopy), 0);
  assert_memory_not_equal(m, mcopy, 32);
  assert_int_equal(hetee_client_verify_evidence(x.ev, x.evlen, ppk, mcopy, x.bundle, x.blen, x.ch, x.nonce, NULL), 0);
  fx_evidence_free(&x);
  hetee_host_free(t);
}

static void test_swapped_keys_and_nonce(void **state) {
  fx *f = *state;
  fx_evidence x, y;
  uint8_t ppk[32], m[32];
  fx_get_evidence(f->e, &x);
  assert_int_equal(hetee_platform_load_public(f->plat, ppk), 0);
  fx_expected_measurement(m);
  /* another enclave's key bundle / channel key, presented with this evidence */
  hetee_host_enclave *o = fx_start(f->plat, NULL, NULL, 0);
  fx_get_evidence(o, &y);
  uint8_t *bundle = x.bundle;
  size_t blen = x.blen;
  uint8_t mod[64];
  if (y.blen != x.blen || memcmp(y.bundle, x.bundle, x.blen)) {
    bundle = y.bundle;
    blen = y.blen;
  } else { /* without CKKS keys both bundles are empty: modify one byte */
    assert_true(x.blen <= sizeof mod);
    memcpy(mod, x.bundle, x.blen);
    mod[x.blen - 1] ^= 1;
    bundle = mod;
  }
  assert_int_equal(hetee_client_verify_evidence(x.ev, x.evlen, ppk, m, bundle, blen, x.ch, x.nonce, NULL),
                   HETEE_ERR_KEY_BINDING);
  assert_int_equal(hetee_client_verify_evidence(x.ev, x.evlen, ppk, m, x.bundle, x.blen, y.ch, x.nonce, NULL),
                   HETEE_ERR_KEY_BINDING);
  /* replayed evidence: the verifier's fresh nonce is not the one signed */
  assert_int_equal(hetee_client_verify_evidence(x.ev, x.evlen, ppk, m, x.bundle, x.blen, x.ch, y.nonce, NULL),
                   HETEE_ERR_KEY_BINDING);
  fx_evidence_free(&x);
  fx_evidence_free(&y);
  hetee_host_free(o);
}

static void test_session_replay_and_tamper(void **state) {
  fx *f = *state;
  hetee_verified_enclave v;
  fx_verify(f->e, f->plat, &v);
  hetee_party_key *dp;
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_DP, &dp), 0);
  hetee_client_session *s = fx_session(f->e, dp, &v);
  uint8_t *m, *sealed, *reply, *plain;
  size_t mlen, slen, rlen, plen;
  assert_int_equal(hetee_client_msg_ping((const uint8_t *)"hello", 5, &m, &mlen), 0);
  assert_int_equal(hetee_client_session_seal(s, m, mlen, &sealed, &slen), 0);
  assert_int_equal(hetee_host_session_msg(f->e, sealed, slen, &reply, &rlen), 0);
  assert_int_equal(hetee_client_session_open(s, reply, rlen, &plain, &plen), 0);
  assert_int_equal(plen, 7);
  assert_memory_equal(plain + 2, "hello", 5);
  free(plain);
  /* the host replays the party's message: refused */
  uint8_t *r2;
  size_t r2len;
  assert_int_equal(hetee_host_session_msg(f->e, sealed, slen, &r2, &r2len), HETEE_ERR_REPLAY);
  /* and replays the enclave's answer to the party: refused */
  assert_int_equal(hetee_client_session_open(s, reply, rlen, &plain, &plen), HETEE_ERR_REPLAY);
  free(sealed);
  free(reply);
  /* tampered message: refused, and the session still works afterwards */
  assert_int_equal(hetee_client_session_seal(s, m, mlen, &sealed, &slen), 0);
  sealed[slen - 3] ^= 0x20;
  assert_int_equal(hetee_host_session_msg(f->e, sealed, slen, &r2, &r2len), HETEE_ERR_AUTH);
  sealed[slen - 3] ^= 0x20;
  assert_int_equal(hetee_host_session_msg(f->e, sealed, slen, &reply, &rlen), 0);
  assert_int_equal(hetee_client_session_open(s, reply, rlen, &plain, &plen), 0);
  free(plain);
  free(reply);
  free(sealed);
  free(m);
  hetee_client_session_free(s);
  hetee_party_key_free(dp);
}

/* The host replays a party's whole handshake: refused, since it would
 * recreate the session keys with counters back at zero. */
static void test_handshake_replay(void **state) {
  fx *f = *state;
  hetee_verified_enclave v;
  fx_verify(f->e, f->plat, &v);
  hetee_party_key *dp;
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_DP, &dp), 0);
  hetee_client_session *s;
  uint8_t *hs, *reply, *again;
  size_t hlen, rlen, alen;
  assert_int_equal(hetee_client_session_new(dp, &v, &s, &hs, &hlen), 0);
  assert_int_equal(hetee_host_session_open(f->e, hs, hlen, &reply, &rlen), 0);
  assert_int_equal(hetee_client_session_finish(s, reply, rlen), 0);
  assert_int_equal(hetee_host_session_open(f->e, hs, hlen, &again, &alen), HETEE_ERR_KEY_BINDING);
  free(reply);
  free(hs);
  hetee_client_session_free(s);
  hetee_party_key_free(dp);
}

static void test_session_needs_issued_evidence(void **state) {
  fx *f = *state;
  hetee_verified_enclave v;
  fx_verify(f->e, f->plat, &v);
  hetee_party_key *mp;
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_MP, &mp), 0);
  hetee_client_session *s;
  uint8_t *hs, *reply;
  size_t hlen, rlen;
  /* bound to evidence this enclave never issued */
  hetee_verified_enclave fake = v;
  fake.evidence_hash[0] ^= 1;
  assert_int_equal(hetee_client_session_new(mp, &fake, &s, &hs, &hlen), 0);
  assert_int_equal(hetee_host_session_open(f->e, hs, hlen, &reply, &rlen), HETEE_ERR_KEY_BINDING);
  free(hs);
  hetee_client_session_free(s);
  /* a handshake whose identity signature is broken */
  assert_int_equal(hetee_client_session_new(mp, &v, &s, &hs, &hlen), 0);
  hs[hlen - 1] ^= 1;
  assert_int_equal(hetee_host_session_open(f->e, hs, hlen, &reply, &rlen), HETEE_ERR_BAD_SIGNATURE);
  free(hs);
  hetee_client_session_free(s);
  hetee_party_key_free(mp);
}

static void read_proc(int pid, const char *file, char *buf, size_t n) {
  char p[400];
  snprintf(p, sizeof p, "/proc/%d/%s", pid, file);
  FILE *fp = fopen(p, "r");
  assert_non_null(fp);
  size_t k = fread(buf, 1, n - 1, fp);
  buf[k] = 0;
  fclose(fp);
}

static void test_hardening_visible(void **state) {
  fx *f = *state;
  hetee_host_info info;
  assert_int_equal(hetee_host_info_get(f->e, &info), 0);
  char buf[8192];
  read_proc(info.pid, "limits", buf, sizeof buf);
  const char *core = strstr(buf, "Max core file size");
  assert_non_null(core);
  unsigned long soft = 99, hard = 99;
  assert_int_equal(sscanf(core + strlen("Max core file size"), " %lu %lu", &soft, &hard), 2);
  assert_int_equal(soft, 0);
  assert_int_equal(hard, 0);
#ifndef HETEE_SANITIZE
  read_proc(info.pid, "status", buf, sizeof buf);
  const char *sc = strstr(buf, "Seccomp:");
  assert_non_null(sc);
  assert_int_equal(atoi(sc + strlen("Seccomp:")), 2); /* filter mode */
#endif
  /* the default configuration's 2 threads (threads=2), created before the
   * filter; every one of them runs under it */
  read_proc(info.pid, "status", buf, sizeof buf);
  const char *th = strstr(buf, "Threads:");
  assert_non_null(th);
  assert_int_equal(atoi(th + strlen("Threads:")), 2);
  char tdir[64];
  snprintf(tdir, sizeof tdir, "/proc/%d/task", info.pid);
  DIR *d = opendir(tdir);
  assert_non_null(d);
  int ntask = 0;
  for (struct dirent *de; (de = readdir(d));) {
    if (de->d_name[0] == '.') continue;
    char tfile[300];
    snprintf(tfile, sizeof tfile, "task/%s/status", de->d_name);
    read_proc(info.pid, tfile, buf, sizeof buf);
#ifndef HETEE_SANITIZE
    sc = strstr(buf, "Seccomp:");
    assert_non_null(sc);
    assert_int_equal(atoi(sc + strlen("Seccomp:")), 2);
#endif
    ntask++;
  }
  closedir(d);
  assert_int_equal(ntask, 2);
  /* the enclave runs with a clean environment, whatever the host sets */
  char envp[64];
  snprintf(envp, sizeof envp, "/proc/%d/environ", info.pid);
  FILE *fe = fopen(envp, "rb");
  assert_non_null(fe);
  size_t k = fread(buf, 1, sizeof buf, fe);
  fclose(fe);
  assert_null(memmem(buf, k, "HETEE_TEST_MARKER", 17));
  assert_non_null(getenv("HETEE_TEST_MARKER"));
  /* and the filtered process still serves every kind of request */
  fx_evidence x;
  fx_get_evidence(f->e, &x);
  fx_evidence_free(&x);
  hetee_enclave_op_stats st[16];
  size_t n;
  assert_int_equal(hetee_host_stats(f->e, st, 16, &n), 0);
  int seen = 0;
  for (size_t i = 0; i < n; i++)
    if (st[i].type == HETEE_MSG_EVIDENCE) {
      seen = 1;
      assert_true(st[i].count >= 1);
      assert_true(st[i].bytes_out >= HETEE_EVIDENCE_BYTES);
    }
  assert_true(seen);
}

static uint64_t ping_count(const hetee_enclave_op_stats *st, size_t k, uint64_t *bytes_out) {
  for (size_t i = 0; i < k; i++)
    if (st[i].type == HETEE_MSG_PING) {
      if (bytes_out) *bytes_out = st[i].bytes_out;
      return st[i].count;
    }
  return 0;
}

/* The host sends its follow-up STATS request with the call, and the
 * enclave answers both in one send when the reply is at most 64 KiB
 * (server.c): small and large replies, a refused call in between and an
 * explicit STATS keep the stream in step, and every STATS reply counts
 * the call it follows, with the reply's bytes. */
static void test_stats_follow_batched(void **state) {
  fx *f = *state;
  size_t big = 200000, k = 0;
  uint8_t *body = malloc(big), *r;
  size_t n;
  for (size_t i = 0; i < big; i++) body[i] = (uint8_t)(i * 31 + 7);
  hetee_enclave_op_stats st[64];
  assert_int_equal(hetee_host_stats(f->e, st, 64, &k), 0);
  uint64_t c0 = ping_count(st, k, NULL), out0 = 0, out1 = 0;
  hetee_host_stats_follow(f->e, 1);
  size_t lens[4] = {40, big, 1, 65536};
  for (int i = 0; i < 4; i++) {
    ping_count(st, k, &out0);
    assert_int_equal(hetee_host_call(f->e, HETEE_MSG_PING, body, lens[i], &r, &n), 0);
    assert_int_equal(n, lens[i]);
    assert_memory_equal(r, body, n);
    free(r);
    assert_int_equal(hetee_host_stats_followed(f->e, st, 64, &k), 0);
    assert_int_equal(ping_count(st, k, &out1), c0 + (uint64_t)i + 1);
    assert_int_equal(out1 - out0, lens[i] + 16); /* the reply's body and header */
    assert_int_equal(hetee_host_call(f->e, 0x7777, body, 8, &r, &n), HETEE_ERR_PROTOCOL);
    assert_int_equal(hetee_host_stats_followed(f->e, st, 64, &k), HETEE_ERR_STATE);
    assert_int_equal(hetee_host_stats(f->e, st, 64, &k), 0);
  }
  hetee_host_stats_follow(f->e, 0);
  assert_int_equal(hetee_host_call(f->e, HETEE_MSG_PING, body, 3, &r, &n), 0);
  free(r);
  assert_int_equal(hetee_host_stats(f->e, st, 64, &k), 0);
  assert_int_equal(ping_count(st, k, NULL), c0 + 5);
  free(body);
}

static void test_crash_restart(void **state) {
  fx *f = *state;
  hetee_host_info a, b;
  assert_int_equal(hetee_host_info_get(f->e, &a), 0);
  unsigned r0 = hetee_host_restarts(f->e);
  assert_int_equal(kill(a.pid, SIGKILL), 0);
  fx_wait_dead((int)a.pid);
  assert_int_equal(hetee_host_info_get(f->e, &b), HETEE_ERR_IO); /* the call that found it dead */
  assert_int_equal(hetee_host_restarts(f->e), r0 + 1);
  assert_int_equal(hetee_host_info_get(f->e, &b), 0);
  assert_int_not_equal(a.pid, b.pid);
  assert_memory_equal(a.measurement, b.measurement, 32);
  assert_memory_not_equal(a.channel_pk, b.channel_pk, 32); /* fresh process, fresh channel key */
}

static void test_missing_platform(void **state) {
  fx *f = *state;
  char nowhere[400];
  snprintf(nowhere, sizeof nowhere, "%s/none", f->dir);
  hetee_host_options o;
  memset(&o, 0, sizeof o);
  o.platform_dir = nowhere;
  hetee_host_enclave *e = NULL;
  assert_int_equal(hetee_host_start(&o, &e), HETEE_ERR_NOT_FOUND);
  assert_null(e);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  setenv("HETEE_TEST_MARKER", "host-controlled", 1); /* inherited by the launcher, not by the enclave */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_evidence_verifies),
      cmocka_unit_test(test_wrong_platform_key),
      cmocka_unit_test(test_tampered_binary),
      cmocka_unit_test(test_swapped_keys_and_nonce),
      cmocka_unit_test(test_session_replay_and_tamper),
      cmocka_unit_test(test_handshake_replay),
      cmocka_unit_test(test_session_needs_issued_evidence),
      cmocka_unit_test(test_hardening_visible),
      cmocka_unit_test(test_stats_follow_batched),
      cmocka_unit_test(test_crash_restart),
      cmocka_unit_test(test_missing_platform),
  };
  return cmocka_run_group_tests_name("enclave/process", tests, setup, teardown);
}

/*
 * tests/host/test_host.c — the host's handle on the enclave process:
 * argument checks, a launcher that cannot be executed, configurations the
 * enclave refuses at start-up, a dead enclave
 * without automatic restart (HETEE_ERR_IO, then HETEE_ERR_STATE until an
 * explicit restart), the per-operation counters the host can read, and
 * those counters read from a STATS request written behind each request
 * (hetee_host_stats_follow, the engine's per-stage accounting): right
 * after successes and refusals alike, the stream kept in sync.
 */
#include "enclave/fixture.h"
#include "host/host_internal.h"

#include <signal.h>

static void test_bad_arguments(void **state) {
  hetee_host_enclave *e = NULL;
  hetee_host_options o;
  memset(&o, 0, sizeof o);
  assert_int_equal(hetee_host_start(NULL, &e), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_host_start(&o, &e), HETEE_ERR_INVALID_ARG); /* no platform */
  o.platform_dir = "/nonexistent";
  o.launcher_path = "/nonexistent/hetee-launcher";
  assert_int_equal(hetee_host_start(&o, &e), HETEE_ERR_IO);
  assert_null(e);
  hetee_host_free(NULL);
}

/* The configuration is checked by the enclave itself at start-up. */
static void test_bad_config(void **state) {
  char dir[256], plat[300];
  fx_tmp_platform(dir, sizeof dir, plat, sizeof plat);
  hetee_host_options o;
  memset(&o, 0, sizeof o);
  o.platform_dir = plat;
  hetee_host_enclave *e = NULL;
  o.config = "logn=13;q=60,40,40;p=60;scale=40;budget=268435456;max_galois=8;unknown=1";
  assert_int_equal(hetee_host_start(&o, &e), HETEE_ERR_PARAMS);
  o.config = "logn=12;q=60,60,60;p=60;scale=40;budget=268435456;max_galois=8"; /* 240 bits at N=4096 */
  int rc = hetee_host_start(&o, &e);
#ifdef HETEE_ENCLAVE_HAVE_CKKS
  assert_int_equal(rc, HETEE_ERR_INSECURE);
#else
  assert_int_equal(rc, 0); /* parameters are not checked without the CKKS layer */
  hetee_host_free(e);
#endif
  fx_rmtree(dir);
}

static void test_dead_without_restart(void **state) {
  char dir[256], plat[300];
  fx_tmp_platform(dir, sizeof dir, plat, sizeof plat);
  hetee_host_enclave *e = fx_start(plat, NULL, NULL, 0);
  hetee_host_info info;
  assert_int_equal(hetee_host_info_get(e, &info), 0);
  assert_int_equal(kill(info.pid, SIGKILL), 0);
  fx_wait_dead((int)info.pid);
  assert_int_equal(hetee_host_info_get(e, &info), HETEE_ERR_IO);
  assert_int_equal(hetee_host_info_get(e, &info), HETEE_ERR_STATE);
  assert_int_equal(hetee_host_restart(e), 0);
  assert_int_equal(hetee_host_restarts(e), 1);
  assert_int_equal(hetee_host_info_get(e, &info), 0);
  fx_stop(e, dir);
}

static void test_counters(void **state) {
  char dir[256], plat[300];
  fx_tmp_platform(dir, sizeof dir, plat, sizeof plat);
  hetee_host_enclave *e = fx_start(plat, NULL, NULL, 0);
  uint8_t body[100], *r;
  size_t n;
  for (size_t i = 0; i < sizeof body; i++) body[i] = (uint8_t)(3 * i + 1);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(hetee_host_call(e, HETEE_MSG_PING, body, sizeof body, &r, &n), 0);
    assert_int_equal(n, sizeof body);
    assert_memory_equal(r, body, sizeof body); /* PING echoes its body */
    free(r);
  }
  hetee_enclave_op_stats st[16];
  size_t k;
  assert_int_equal(hetee_host_stats(e, st, 16, &k), 0);
  int seen = 0;
  for (size_t i = 0; i < k; i++)
    if (st[i].type == HETEE_MSG_PING) {
      seen = 1;
      assert_int_equal(st[i].count, 5);
      assert_int_equal(st[i].bytes_in, 5 * (HETEE_FRAME_HEADER_BYTES + sizeof body));
      assert_int_equal(st[i].bytes_out, 5 * (HETEE_FRAME_HEADER_BYTES + sizeof body));
    }
  assert_true(seen);
  fx_stop(e, dir);
}

static uint64_t count_of(const hetee_enclave_op_stats *st, size_t k, uint16_t type) {
  for (size_t i = 0; i < k; i++)
    if (st[i].type == type) return st[i].count;
  return 0;
}

static void test_stats_follow(void **state) {
  (void)state;
  char dir[256], plat[300];
  fx_tmp_platform(dir, sizeof dir, plat, sizeof plat);
  hetee_host_enclave *e = fx_start(plat, NULL, NULL, 0);
  hetee_enclave_op_stats st[16];
  size_t k = 0;
  uint8_t body[40], *r;
  size_t n;
  memset(body, 7, sizeof body);
  assert_int_equal(hetee_host_stats_followed(e, st, 16, &k), HETEE_ERR_STATE); /* nothing followed yet */
  hetee_host_stats_follow(e, 1);
  for (uint64_t i = 1; i <= 3; i++) {
    assert_int_equal(hetee_host_call(e, HETEE_MSG_PING, body, sizeof body, &r, &n), 0);
    assert_int_equal(n, sizeof body);
    free(r);
    assert_int_equal(hetee_host_stats_followed(e, st, 16, &k), 0);
    assert_int_equal(count_of(st, k, HETEE_MSG_PING), i); /* this request already counted */
    assert_int_equal(hetee_host_stats_followed(e, st, 16, &k), HETEE_ERR_STATE); /* read once */
  }
  /* refused requests: the error reply, then the STATS reply, both read */
  assert_int_equal(hetee_host_call(e, 0x7777, body, sizeof body, &r, &n), HETEE_ERR_PROTOCOL);
  assert_int_equal(hetee_host_stats_followed(e, st, 16, &k), HETEE_ERR_STATE);
  int rc = hetee_host_call(e, HETEE_MSG_REFRESH, body, sizeof body, &r, &n); /* no keys, bad body */
  assert_true(rc < 0 && rc != HETEE_ERR_IO);
  assert_int_equal(hetee_host_call(e, HETEE_MSG_PING, body, 5, &r, &n), 0);
  assert_int_equal(n, 5);
  free(r);
  assert_int_equal(hetee_host_stats_followed(e, st, 16, &k), 0);
  assert_int_equal(count_of(st, k, HETEE_MSG_PING), 4);
  assert_int_equal(count_of(st, k, HETEE_MSG_REFRESH), 1);
  /* a STATS request is not followed by another */
  assert_int_equal(hetee_host_stats(e, st, 16, &k), 0);
  assert_int_equal(count_of(st, k, HETEE_MSG_PING), 4);
  assert_int_equal(hetee_host_stats_followed(e, st, 16, &k), HETEE_ERR_STATE);
  /* off: nothing written behind; the stream is still in step */
  hetee_host_stats_follow(e, 0);
  assert_int_equal(hetee_host_call(e, HETEE_MSG_PING, body, sizeof body, &r, &n), 0);
  free(r);
  assert_int_equal(hetee_host_stats_followed(e, st, 16, &k), HETEE_ERR_STATE);
  assert_int_equal(hetee_host_stats(e, st, 16, &k), 0);
  assert_int_equal(count_of(st, k, HETEE_MSG_PING), 5);
  /* a dead enclave: the followed request fails with HETEE_ERR_IO, no STATS kept */
  hetee_host_info info;
  assert_int_equal(hetee_host_info_get(e, &info), 0);
  hetee_host_stats_follow(e, 1);
  assert_int_equal(kill(info.pid, SIGKILL), 0);
  fx_wait_dead((int)info.pid);
  assert_int_equal(hetee_host_call(e, HETEE_MSG_PING, body, sizeof body, &r, &n), HETEE_ERR_IO);
  assert_int_equal(hetee_host_stats_followed(e, st, 16, &k), HETEE_ERR_STATE);
  fx_stop(e, dir);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_bad_config),
      cmocka_unit_test(test_dead_without_restart),
      cmocka_unit_test(test_counters),
      cmocka_unit_test(test_stats_follow),
  };
  return cmocka_run_group_tests_name("host/enclave_process", tests, NULL, NULL);
}

/*
 * tests/enclave/test_seal.c — sealing with the real processes: seal, kill -9
 * the enclave, let the host restart it and unseal: the same keys come back
 * (same key-bundle fingerprint, and ciphertexts made under the old public key
 * still refresh correctly); the sealed file is written atomically with owner
 * permissions; a modified enclave binary cannot unseal it.
 */
#include <math.h>
#include <signal.h>

#include "enclave/ckks_fixture.h"

typedef struct {
  char dir[256], plat[300], seal[400];
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  fx_tmp_platform(f->dir, sizeof f->dir, f->plat, sizeof f->plat);
  snprintf(f->seal, sizeof f->seal, "%s/enclave.sealed", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  fx_rmtree(f->dir);
  free(f);
  return 0;
}

static void test_seal_kill_restart_unseal(void **state) {
  fx *f = *state;
  ckfx c;
  ckfx_parties(&c, NULL);
  hetee_host_enclave *e = ckfx_start(&c, f->plat, f->seal, 1);
  ckfx_init(&c, e, f->plat, NULL, 0);
  hetee_host_info before, after;
  assert_int_equal(hetee_host_info_get(e, &before), 0);
  assert_int_equal(hetee_host_seal(e, f->seal), 0);
  struct stat st;
  assert_int_equal(stat(f->seal, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  /* a ciphertext under the sealed public key */
  double *sv = calloc(c.slots, sizeof *sv);
  sv[5] = -0.75;
  sv[6] = 1.25;
  size_t len;
  uint8_t *ct = ckfx_encrypt(&c, sv, &len);
  free(sv);
  assert_int_equal(kill(before.pid, SIGKILL), 0);
  fx_wait_dead((int)before.pid);
  assert_int_equal(hetee_host_info_get(e, &after), HETEE_ERR_IO); /* found dead, restarted, unsealed */
  assert_int_equal(hetee_host_info_get(e, &after), 0);
  assert_int_not_equal(before.pid, after.pid);
  assert_true(after.have_keys);
  assert_memory_equal(before.bundle_fp, after.bundle_fp, 32);
  /* keys are usable: new sessions (the old ones died with the process) */
  hetee_client_session_free(c.mps);
  hetee_client_session_free(c.dps);
  hetee_verified_enclave v, w;
  fx_verify_cfg(e, f->plat, c.config, &v);
  fx_verify_cfg(e, f->plat, c.config, &w);
  assert_memory_equal(v.bundle_fp, before.bundle_fp, 32);
  c.mps = fx_session(e, c.mp, &v);
  c.dps = fx_session(e, c.dp, &w);
  uint32_t in_map[2] = {5, 6}, dst[2] = {0, 1}, src[2] = {0, 1};
  hetee_refresh_op op = {.kind = HETEE_OP_RELU};
  hetee_refresh_spec s = {.in_level = -1, .shape = {1, 1, 2}, .in_map = in_map, .nops = 1, .ops = &op, .out_ncts = 1, .out_n = 2,
                          .out_dst = dst, .out_src = src, .out_level = -1};
  uint8_t **out;
  size_t *olens, nout;
  const uint8_t *cts[1] = {ct};
  assert_int_equal(hetee_host_refresh(e, &s, cts, &len, 1, &out, &olens, &nout), 0);
  double got[2];
  ckfx_read(&c, e, dst, 2, out, olens, nout, got);
  assert_true(fabs(got[0] - 0.0) < 1e-6);
  assert_true(fabs(got[1] - 1.25) < 1e-6);
  hetee_host_cts_free(out, olens, nout);
  free(ct);
  ckfx_free(&c);
  hetee_host_free(e);
  /* no temporary file left next to the sealed state */
  char cmd[600];
  snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", f->dir);
  assert_int_not_equal(system(cmd), 0);
}

static void test_explicit_unseal_and_modified_binary(void **state) {
  fx *f = *state;
  hetee_host_enclave *e = fx_start(f->plat, NULL, NULL, 0);
  assert_int_equal(hetee_host_keygen(e, NULL, 0), 0);
  hetee_host_info a, b;
  assert_int_equal(hetee_host_info_get(e, &a), 0);
  assert_int_equal(hetee_host_seal(e, f->seal), 0);
  /* keys exist: a second keygen is refused */
  assert_int_equal(hetee_host_keygen(e, NULL, 0), HETEE_ERR_STATE);
  hetee_host_free(e);
  /* the same binary, started fresh, unseals the same keys */
  e = fx_start(f->plat, NULL, NULL, 0);
  assert_int_equal(hetee_host_info_get(e, &b), 0);
  assert_false(b.have_keys);
  assert_int_equal(hetee_host_unseal(e, f->seal), 0);
  assert_int_equal(hetee_host_info_get(e, &b), 0);
  assert_true(b.have_keys);
  assert_memory_equal(a.bundle_fp, b.bundle_fp, 32);
  hetee_host_free(e);
  /* a modified binary gets another sealing key */
  char copy[400];
  fx_tampered_copy(f->dir, copy, sizeof copy);
  e = fx_start(f->plat, copy, NULL, 0);
  assert_int_equal(hetee_host_unseal(e, f->seal), HETEE_ERR_AUTH);
  assert_int_equal(hetee_host_info_get(e, &b), 0);
  assert_false(b.have_keys);
  hetee_host_free(e);
  /* and so does another platform */
  char plat2[300];
  fx_platform(f->dir, "plat2", plat2, sizeof plat2);
  e = fx_start(plat2, NULL, NULL, 0);
  assert_int_equal(hetee_host_unseal(e, f->seal), HETEE_ERR_AUTH);
  hetee_host_free(e);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_seal_kill_restart_unseal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_explicit_unseal_and_modified_binary, setup, teardown),
  };
  return cmocka_run_group_tests_name("enclave/seal", tests, NULL, NULL);
}

/*
 * tests/enclave/test_cli.c — the command line end to end, as a user runs it:
 * `hetee platform init`, `hetee keygen`, `hetee enclave measure` (compared
 * with hetee_measure_file, and it must change when one byte of the binary
 * changes), and
 * `hetee attest` on the genuine binary (exit 0), on a tampered copy
 * (measurement mismatch) and against another platform's key (bad signature);
 * model providers added to the configuration with --mp (`hetee enclave
 * config`, `measure`, `attest`).
 */
#include "enclave/fixture.h"

#include <sys/wait.h>

static int run(const char *cmd, char *out, size_t n) {
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t k = fread(out, 1, n - 1, p);
  out[k] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli_end_to_end(void **state) {
  char dir[256], hetee[4096], enc[4096], cmd[16384], out[8192], plat[300], plat2[300];
  fx_tmpdir(dir, sizeof dir);
  fx_path(hetee, sizeof hetee, "hetee");
  fx_path(enc, sizeof enc, "hetee-enclave");
  snprintf(plat, sizeof plat, "%s/plat", dir);
  snprintf(plat2, sizeof plat2, "%s/plat2", dir);

  snprintf(cmd, sizeof cmd, "'%s' platform init --dir '%s'", hetee, plat);
  assert_int_equal(run(cmd, out, sizeof out), 0);
  snprintf(cmd, sizeof cmd, "'%s' platform init --dir '%s'", hetee, plat); /* never overwrites */
  assert_int_equal(run(cmd, out, sizeof out), 1);
  snprintf(cmd, sizeof cmd, "'%s' platform init --dir '%s'", hetee, plat2);
  assert_int_equal(run(cmd, out, sizeof out), 0);
  char keyf[400];
  snprintf(keyf, sizeof keyf, "%s/dp.key", dir);
  snprintf(cmd, sizeof cmd, "'%s' keygen --role dp --out '%s'", hetee, keyf);
  assert_int_equal(run(cmd, out, sizeof out), 0);
  hetee_party_key *k;
  assert_int_equal(hetee_party_key_load(keyf, &k), 0);
  assert_int_equal(hetee_party_key_role(k), HETEE_PARTY_DP);
  hetee_party_key_free(k);
  snprintf(cmd, sizeof cmd, "'%s' keygen --role xx --out '%s'", hetee, keyf);
  assert_int_equal(run(cmd, out, sizeof out), 2);

  /* measure: one line of 64 hex digits, equal to the library's value */
  snprintf(cmd, sizeof cmd, "'%s' enclave measure '%s'", hetee, enc);
  assert_int_equal(run(cmd, out, sizeof out), 0);
  assert_int_equal(strlen(out), 65);
  assert_int_equal(out[64], '\n');
  out[64] = 0;
  char meas[65];
  strcpy(meas, out);
  uint8_t m[32];
  char hex[65];
  fx_expected_measurement(m);
  hetee_hex_encode32(m, hex);
  assert_string_equal(meas, hex);

  /* attest the genuine binary */
  snprintf(cmd, sizeof cmd, "'%s' attest --local '%s' --platform '%s' --expect %s", hetee, enc, plat, meas);
  assert_int_equal(run(cmd, out, sizeof out), 0);
  assert_non_null(strstr(out, "attest: OK"));
  assert_non_null(strstr(out, meas));

  /* a tampered copy: measurement mismatch, named on one line */
  char copy[400];
  fx_tampered_copy(dir, copy, sizeof copy);
  snprintf(cmd, sizeof cmd, "'%s' enclave measure '%s'", hetee, copy);
  assert_int_equal(run(cmd, out, sizeof out), 0);
  out[64] = 0;
  assert_string_not_equal(out, meas);
  snprintf(cmd, sizeof cmd, "'%s' attest --local '%s' --platform '%s' --expect %s 2>/dev/null", hetee, copy, plat, meas);
  assert_int_equal(run(cmd, out, sizeof out), 1);
  assert_non_null(strstr(out, "attest: FAILED: measurement mismatch"));
  assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1); /* exactly one line */

  /* evidence signed by one platform, checked against another's key: the
   * verifier gets plat2's public key while the launcher signs with plat's */
  char mixed[400], cp[4096];
  snprintf(mixed, sizeof mixed, "%s/mixed", dir);
  snprintf(cp, sizeof cp, "mkdir '%s' && cp '%s'/platform.key '%s'/platform.secret '%s' && cp '%s'/platform.pub '%s'",
           mixed, plat, plat, mixed, plat2, mixed);
  assert_int_equal(system(cp), 0);
  snprintf(cmd, sizeof cmd, "'%s' attest --local '%s' --platform '%s' --expect %s 2>/dev/null", hetee, enc, mixed, meas);
  assert_int_equal(run(cmd, out, sizeof out), 1);
  assert_non_null(strstr(out, "attest: FAILED: bad signature"));

  /* model providers in the configuration (--mp FILE.pub): `enclave config`
   * prints the string, `enclave measure` its measurement, equal to the
   * library's over hetee_enclave_config_with_mps; attest with the same keys
   * lists them, attest expecting the list without them fails */
  char mpf[400], mpf2[400], cfg[HETEE_ENCLAVE_CONFIG_MAX + 1], mhex[65];
  snprintf(mpf, sizeof mpf, "%s/mp.key", dir);
  snprintf(mpf2, sizeof mpf2, "%s/mp2.key", dir);
  snprintf(cmd, sizeof cmd, "'%s' keygen --role mp --out '%s' && '%s' keygen --role mp --out '%s'", hetee, mpf, hetee,
           mpf2);
  assert_int_equal(run(cmd, out, sizeof out), 0);
  hetee_party_key *mk[2];
  assert_int_equal(hetee_party_key_load(mpf, &mk[0]), 0);
  assert_int_equal(hetee_party_key_load(mpf2, &mk[1]), 0);
  fx_config_mps(NULL, mk, 2, cfg, sizeof cfg);
  uint8_t mpk[32];
  hetee_party_key_public(mk[1], mpk);
  hetee_hex_encode32(mpk, mhex);
  hetee_party_key_free(mk[0]);
  hetee_party_key_free(mk[1]);
  snprintf(cmd, sizeof cmd, "'%s' enclave config --mp '%s.pub' --mp '%s.pub'", hetee, mpf, mpf2);
  assert_int_equal(run(cmd, out, sizeof out), 0);
  assert_int_equal(strlen(out), strlen(cfg) + 1);
  assert_memory_equal(out, cfg, strlen(cfg));
  snprintf(cmd, sizeof cmd, "'%s' enclave measure '%s' --mp '%s.pub' --mp '%s.pub'", hetee, enc, mpf, mpf2);
  assert_int_equal(run(cmd, out, sizeof out), 0);
  out[64] = 0;
  fx_expected_measurement_cfg(cfg, m);
  hetee_hex_encode32(m, hex);
  assert_string_equal(out, hex);
  assert_string_not_equal(out, meas);
  char meas_mp[65];
  strcpy(meas_mp, out);
  snprintf(cmd, sizeof cmd, "'%s' attest --local '%s' --platform '%s' --expect %s --mp '%s.pub' --mp '%s.pub'", hetee,
           enc, plat, meas_mp, mpf, mpf2);
  assert_int_equal(run(cmd, out, sizeof out), 0);
  assert_non_null(strstr(out, "attest: OK"));
  assert_non_null(strstr(out, mhex));
  snprintf(cmd, sizeof cmd, "'%s' attest --local '%s' --platform '%s' --expect %s --config '%s'", hetee, enc, plat,
           meas_mp, cfg); /* the same configuration spelled out */
  assert_int_equal(run(cmd, out, sizeof out), 0);
  snprintf(cmd, sizeof cmd, "'%s' attest --local '%s' --platform '%s' --expect %s", hetee, enc, plat, meas);
  assert_int_equal(run(cmd, out, sizeof out), 0);
  assert_non_null(strstr(out, "release policies: disabled"));
  snprintf(cmd, sizeof cmd, "'%s' attest --local '%s' --platform '%s' --expect %s --mp '%s.pub' 2>/dev/null", hetee,
           enc, plat, meas_mp, mpf); /* one key fewer than expected */
  assert_int_equal(run(cmd, out, sizeof out), 1);
  assert_non_null(strstr(out, "attest: FAILED: measurement mismatch"));
  snprintf(cmd, sizeof cmd, "'%s' enclave measure '%s' --mp '%s.pub' 2>/dev/null", hetee, enc, keyf); /* a DP key */
  assert_int_equal(run(cmd, out, sizeof out), 1);

  /* usage errors */
  snprintf(cmd, sizeof cmd, "'%s' attest --local '%s' 2>/dev/null", hetee, enc);
  assert_int_equal(run(cmd, out, sizeof out), 2);
  snprintf(cmd, sizeof cmd, "'%s' attest --local '%s' --platform '%s' --expect nothex", hetee, enc, plat);
  assert_int_equal(run(cmd, out, sizeof out), 1);
  fx_rmtree(dir);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_cli_end_to_end)};
  return cmocka_run_group_tests_name("enclave/cli", tests, NULL, NULL);
}

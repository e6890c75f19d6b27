/*
 * test_demo.c — ckks/demo: runs `hetee demo` (src/cli/cmd_demo.c) in
 * process: every step must meet its stated precision (exit code 0); --help
 * exits 0 and an unknown option is a usage error (2).
 */
#include "ckks_test_util.h"
#include "cli/cli.h"

static void test_demo_runs(void **state) {
  (void)state;
  char *argv[] = {"demo", NULL};
  assert_int_equal(hetee_cmd_demo(1, argv), 0);
}

static void test_demo_usage(void **state) {
  (void)state;
  char *help[] = {"demo", "--help", NULL};
  assert_int_equal(hetee_cmd_demo(2, help), 0);
  char *bad[] = {"demo", "--bogus", NULL};
  assert_int_equal(hetee_cmd_demo(2, bad), 2);
  char *badt[] = {"demo", "--threads", "0", NULL};
  assert_int_equal(hetee_cmd_demo(3, badt), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_demo_runs), cmocka_unit_test(test_demo_usage)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

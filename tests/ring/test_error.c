/* tests/ring/test_error.c — status texts and the per-thread detail message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "hetee/common.h"

static void test_strerror_known_and_unknown(void **state) {
  (void)state;
  assert_string_equal(hetee_strerror(HETEE_OK), "success");
  assert_string_equal(hetee_strerror(HETEE_ERR_INSECURE), "parameters below 128-bit security");
  assert_string_equal(hetee_strerror(12345), "unknown error");
  for (int s = 0; s >= HETEE_ERR_INTERNAL; s--)
    assert_string_not_equal(hetee_strerror(s), "unknown error");
}

static void test_detail_message(void **state) {
  (void)state;
  hetee_error_clear();
  assert_string_equal(hetee_last_error(), "");
  int rc = hetee_error(HETEE_ERR_LEVEL, "cannot rescale: ciphertext already at level %d", 0);
  assert_int_equal(rc, HETEE_ERR_LEVEL);
  assert_string_equal(hetee_last_error(), "cannot rescale: ciphertext already at level 0");
}

/* Wrapping the current detail in a new one (a common pattern:
 * hetee_error(rc, "loading X: %s", hetee_last_error())) keeps both parts. */
static void test_detail_wraps_itself(void **state) {
  (void)state;
  (void)hetee_error(HETEE_ERR_FORMAT, "bad magic");
  (void)hetee_error(HETEE_ERR_FORMAT, "model file: %s", hetee_last_error());
  assert_string_equal(hetee_last_error(), "model file: bad magic");
  (void)hetee_error(HETEE_ERR_FORMAT, "%s (then %s)", hetee_last_error(), hetee_last_error());
  assert_string_equal(hetee_last_error(), "model file: bad magic (then model file: bad magic)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror_known_and_unknown),
      cmocka_unit_test(test_detail_message),
      cmocka_unit_test(test_detail_wraps_itself),
  };
  return cmocka_run_group_tests_name("ring/error", tests, NULL, NULL);
}

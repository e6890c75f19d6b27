/*
 * tests/enclave/test_hardening.c — the sim backend's process hardening, run
 * in forked children: after enclave_harden_early the process is not dumpable
 * and has no core limit; after enclave_seccomp_install the calls the message
 * loop needs still work (memory, randomness, clocks, socket I/O) while a
 * forbidden one (openat) kills the process with SIGSYS. Sanitizer builds do
 * not install the filter (documented in hardening.c), so there the kill
 * check is skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "enclave/enclave_internal.h"

static int run_child(int (*body)(void)) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) _exit(body());
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return st;
}

static int early_body(void) {
  if (enclave_harden_early()) return 10;
  if (prctl(PR_GET_DUMPABLE) != 0) return 11;
  struct rlimit rl;
  if (getrlimit(RLIMIT_CORE, &rl) || rl.rlim_cur != 0 || rl.rlim_max != 0) return 12;
#if defined(__x86_64__) || defined(__i386__)
  /* FTZ + DAZ: a subnormal operand reads as 0 and products flush to 0 */
  volatile double tiny = 1e-310, big = 1e-300;
  if (tiny != 0.0 || big * 1e-20 != 0.0) return 13;
#endif
  return 0;
}

static void test_early(void **state) {
  int st = run_child(early_body);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

static int loop_body(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 20;
  if (sodium_init() < 0) return 21;
  if (enclave_seccomp_install()) return 22;
  /* what the loop does: allocate (small and large), lock, random, clocks, frames */
  void *p = malloc(100), *q = malloc(64 << 20);
  uint8_t *s = sodium_malloc(4096);
  if (!p || !q || !s) return 23;
  randombytes_buf(s, 64);
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)) return 24;
  if (hetee_frame_write(sv[0], HETEE_MSG_PING, 1, "x", 1)) return 25;
  hetee_frame f;
  if (hetee_frame_read(sv[1], 10, &f) || f.len != 1) return 26;
  hetee_frame_clear(&f);
  sodium_free(s);
  free(q);
  free(p);
  return 0;
}

static void test_filter_allows_the_loop(void **state) {
  int st = run_child(loop_body);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

static int forbidden_body(void) {
  if (enclave_seccomp_install()) return 30;
  int fd = open("/etc/hostname", O_RDONLY); /* not on the allow list */
  (void)fd;
  return 31; /* reached only without a filter */
}

static void test_filter_kills_forbidden(void **state) {
  int st = run_child(forbidden_body);
#ifdef HETEE_SANITIZE
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 31); /* no filter in sanitizer builds */
#else
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGSYS);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_early),
      cmocka_unit_test(test_filter_allows_the_loop),
      cmocka_unit_test(test_filter_kills_forbidden),
  };
  return cmocka_run_group_tests_name("enclave/hardening", tests, NULL, NULL);
}

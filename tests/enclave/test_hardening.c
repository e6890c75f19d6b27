/*
 * tests/enclave/test_hardening.c — the sim backend's process hardening, run
 * in forked children: after enclave_harden_early the process is not dumpable
 * and has no core limit; after enclave_seccomp_install the calls the message
 * loop needs still work (memory, randomness, clocks, socket I/O) while a
 * forbidden one (openat) kills the process with SIGSYS; the worker threads
 * (pool.c), created before the filter, keep working under it, are covered
 * by it (a forbidden call from a worker kills the process too) and compute
 * in the same flush-to-zero mode; creating a thread under the filter kills
 * the process. Sanitizer builds do not install the filter (documented in
 * hardening.c), so there the kill checks are skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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

/* Worker threads (pool.c): created before the filter, they keep working
 * under it (allocation, randomness, process CPU clock, jobs woken through
 * futexes); the filter covers them too (a forbidden call from a worker
 * kills the process); creating a thread after the filter kills it. */
static _Atomic int g_ran[4];

static void job_ok(void *arg, int tid) {
  (void)arg;
  void *q = malloc(3u << 20); /* above the default mmap threshold */
  uint8_t r[32];
  randombytes_buf(r, sizeof r);
  struct timespec ts;
  if (q && clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0) g_ran[tid]++;
  free(q);
}

static int pool_body(void) {
  if (enclave_harden_early() || sodium_init() < 0) return 40;
  enclave_pool *p = NULL;
  if (enclave_pool_start(3, job_ok, NULL, &p) || enclave_pool_threads(p) != 3) return 41;
  if (g_ran[0] != 1 || g_ran[1] != 1 || g_ran[2] != 1) return 42; /* the warm-up ran on every thread */
  if (enclave_seccomp_install()) return 43;
  for (int i = 0; i < 50; i++) enclave_pool_run(p, job_ok, NULL);
  if (g_ran[0] != 51 || g_ran[1] != 51 || g_ran[2] != 51) return 44;
  enclave_pool_free(p);
  return 0;
}

static void test_pool_under_filter(void **state) {
  int st = run_child(pool_body);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

static void job_forbidden(void *arg, int tid) {
  (void)arg;
  if (tid == 1) {
    int fd = open("/etc/hostname", O_RDONLY); /* a worker, not the main thread */
    if (fd >= 0) close(fd);
  }
}

static int worker_forbidden_body(void) {
  enclave_pool *p = NULL;
  if (enclave_pool_start(2, NULL, NULL, &p)) return 50;
  if (enclave_seccomp_install()) return 51;
  enclave_pool_run(p, job_forbidden, NULL);
  return 52; /* reached only if the worker is not filtered */
}

static void *nothing(void *arg) { return arg; }

static int late_thread_body(void) {
  if (enclave_seccomp_install()) return 60;
  pthread_t t;
  if (pthread_create(&t, NULL, nothing, NULL) == 0) pthread_join(t, NULL);
  return 61; /* reached only without a filter */
}

static void test_filter_covers_threads(void **state) {
  int st = run_child(worker_forbidden_body);
#ifdef HETEE_SANITIZE
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 52);
#else
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGSYS);
#endif
  st = run_child(late_thread_body);
#ifdef HETEE_SANITIZE
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 61);
#else
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGSYS);
#endif
}

static void job_fp(void *arg, int tid) {
  volatile double tiny = 1e-310, big = 1e-300;
  if (tiny == 0.0 && big * 1e-20 == 0.0) ((_Atomic int *)arg)[tid] = 1;
}

/* Workers compute with flush-to-zero / denormals-are-zero like the main
 * thread (timing independent of tiny values). */
static int fp_body(void) {
  if (enclave_harden_early()) return 70;
  static _Atomic int ok[2];
  enclave_pool *p = NULL;
  if (enclave_pool_start(2, NULL, NULL, &p)) return 71;
  enclave_pool_run(p, job_fp, (void *)ok);
  enclave_pool_free(p);
  return ok[0] && ok[1] ? 0 : 72;
}

static void test_pool_fp_mode(void **state) {
#if defined(__x86_64__) || defined(__i386__)
  int st = run_child(fp_body);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_early),
      cmocka_unit_test(test_filter_allows_the_loop),
      cmocka_unit_test(test_filter_kills_forbidden),
      cmocka_unit_test(test_pool_under_filter),
      cmocka_unit_test(test_filter_covers_threads),
      cmocka_unit_test(test_pool_fp_mode),
  };
  return cmocka_run_group_tests_name("enclave/hardening", tests, NULL, NULL);
}

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

#include "enclave/trusted/enclave_internal.h"

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
 * kills the process); creating a thread after the filter kills it. A job
 * is run by the caller and by the workers that join it, so these tests make
 * the caller wait (on a condition variable: no time limit) until a worker
 * has joined, which makes the worker's part certain. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int worker_in;
  _Atomic unsigned next;
  _Atomic int done[256];
  _Atomic int by_worker, warm[3];
  void (*body)(int tid);
} tjob;

/* A worker runs the body once, then lets the caller go on; the caller
 * waits for that. */
static void rendezvous(tjob *t, int tid) {
  if (tid) {
    if (t->body) t->body(tid);
    t->by_worker++;
  }
  pthread_mutex_lock(&t->mu);
  if (tid == 0)
    while (!t->worker_in) pthread_cond_wait(&t->cv, &t->mu);
  else {
    t->worker_in = 1;
    pthread_cond_broadcast(&t->cv);
  }
  pthread_mutex_unlock(&t->mu);
}

static void loop_work(int tid) {
  (void)tid;
  void *q = malloc(3u << 20); /* above the default mmap threshold */
  uint8_t r[32];
  randombytes_buf(r, sizeof r);
  struct timespec ts;
  if (q) clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  free(q);
}

/* 256 items claimed one at a time by the caller and the workers that
 * joined, each done exactly once */
static void job_items(void *arg, int tid) {
  tjob *t = arg;
  rendezvous(t, tid);
  for (unsigned c; (c = atomic_fetch_add(&t->next, 1)) < 256;) {
    if (t->body) t->body(tid);
    t->done[c]++;
  }
}

static void warm(void *arg, int tid) { ((tjob *)arg)->warm[tid]++; }

static tjob *tjob_new(void (*body)(int)) {
  tjob *t = calloc(1, sizeof *t);
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  t->body = body;
  return t;
}

static int run_items(enclave_pool *p, tjob *t) {
  t->worker_in = 0;
  atomic_store(&t->next, 0);
  for (int i = 0; i < 256; i++) t->done[i] = 0;
  int before = t->by_worker;
  enclave_pool_run(p, job_items, t, 256);
  for (int i = 0; i < 256; i++)
    if (t->done[i] != 1) return 1;
  return t->by_worker > before ? 0 : 2; /* a worker ran the body */
}

static int pool_body(void) {
  if (enclave_harden_early() || sodium_init() < 0) return 40;
  tjob *t = tjob_new(loop_work);
  enclave_pool *p = NULL;
  if (enclave_pool_start(3, warm, t, &p) || enclave_pool_threads(p) != 3) return 41;
  if (t->warm[0] != 1 || t->warm[1] != 1 || t->warm[2] != 1) return 42; /* the warm-up ran on every thread */
  if (enclave_seccomp_install()) return 43;
  for (int i = 0; i < 20; i++)
    if (run_items(p, t)) return 44;
  /* one item: the caller alone (no worker is woken) */
  int before = t->by_worker;
  atomic_store(&t->next, 255);
  t->done[255] = 0;
  t->worker_in = 1; /* no rendezvous */
  enclave_pool_run(p, job_items, t, 1);
  if (t->done[255] != 1 || t->by_worker != before) return 45;
  enclave_pool_free(p);
  return 0;
}

static void test_pool_under_filter(void **state) {
  int st = run_child(pool_body);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

static void forbidden_work(int tid) {
  if (tid != 0) { /* a worker, not the main thread */
    int fd = open("/etc/hostname", O_RDONLY);
    if (fd >= 0) close(fd);
  }
}

static int worker_forbidden_body(void) {
  tjob *t = tjob_new(forbidden_work);
  enclave_pool *p = NULL;
  if (enclave_pool_start(2, NULL, NULL, &p)) return 50;
  if (enclave_seccomp_install()) return 51;
  if (run_items(p, t)) return 53;
  return 52; /* reached only if the worker is not filtered */
}

static void *nothing(void *arg) { return arg; }

static int late_thread_body(void) {
  if (enclave_seccomp_install()) return 60;
  pthread_t th;
  if (pthread_create(&th, NULL, nothing, NULL) == 0) pthread_join(th, NULL);
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

static _Atomic int g_fp_ok[2];

static void fp_work(int tid) {
  volatile double tiny = 1e-310, big = 1e-300;
  if (tiny == 0.0 && big * 1e-20 == 0.0) g_fp_ok[tid ? 1 : 0] = 1;
}

/* Workers compute with flush-to-zero / denormals-are-zero like the main
 * thread (timing independent of tiny values). */
static int fp_body(void) {
  if (enclave_harden_early()) return 70;
  tjob *t = tjob_new(fp_work);
  enclave_pool *p = NULL;
  if (enclave_pool_start(2, NULL, NULL, &p)) return 71;
  if (run_items(p, t)) return 73; /* the worker ran fp_work at least once */
  enclave_pool_free(p);
  fp_work(0);
  return g_fp_ok[0] && g_fp_ok[1] ? 0 : 72;
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

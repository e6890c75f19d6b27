/* tests/ring/test_threads.c — ring.h's thread-safety promise: tables are
 * immutable and shareable, and the ISA picker may be raced by the first
 * calls. Four threads start at once on the same tables, each transforming
 * its own buffer forward and back many times through the dispatching entry
 * points; every result must equal the single-threaded reference. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "hetee/ring.h"
#include "ring/test_util.h"

#define THREADS 4

typedef struct {
  const hetee_ntt_tables *t;
  const uint64_t *input, *expect_fwd;
  int ok;
} job;

static pthread_barrier_t g_start;

static void *worker(void *arg) {
  job *j = arg;
  size_t n = hetee_ntt_tables_n(j->t);
  uint64_t *a = hetee_alloc(n * 8);
  j->ok = a != NULL;
  pthread_barrier_wait(&g_start);
  for (int r = 0; r < 50 && j->ok; r++) {
    memcpy(a, j->input, n * 8);
    hetee_ntt_forward(j->t, a);
    j->ok &= memcmp(a, j->expect_fwd, n * 8) == 0;
    hetee_ntt_inverse(j->t, a);
    j->ok &= memcmp(a, j->input, n * 8) == 0;
  }
  hetee_free(a);
  return NULL;
}

static void test_shared_tables(void **state) {
  (void)state;
  const int logn = 12;
  const size_t n = (size_t)1 << logn;
  const int sizes[2] = {45, 60}; /* an IFMA-sized and a 64-bit-path prime */
  for (int s = 0; s < 2; s++) {
    uint64_t q, seed = 17 + (uint64_t)s;
    int bits = sizes[s];
    assert_int_equal(hetee_primes_generate(logn, &bits, 1, NULL, 0, &q), 0);
    hetee_ntt_tables *t = NULL;
    assert_int_equal(hetee_ntt_tables_new(logn, q, &t), 0);
    uint64_t *in = hetee_alloc(n * 8 * THREADS), *fw = hetee_alloc(n * 8 * THREADS);
    assert_non_null(fw);
    for (size_t i = 0; i < n * THREADS; i++)
      in[i] = tu_next(&seed) % q;
    memcpy(fw, in, n * 8 * THREADS);
    for (int k = 0; k < THREADS; k++)
      hetee_ntt_forward_ref(t, fw + k * n);
    job jobs[THREADS];
    pthread_t th[THREADS];
    assert_int_equal(pthread_barrier_init(&g_start, NULL, THREADS), 0);
    for (int k = 0; k < THREADS; k++) {
      jobs[k] = (job){t, in + k * n, fw + k * n, 0};
      assert_int_equal(pthread_create(&th[k], NULL, worker, &jobs[k]), 0);
    }
    for (int k = 0; k < THREADS; k++) {
      pthread_join(th[k], NULL);
      assert_true(jobs[k].ok);
    }
    pthread_barrier_destroy(&g_start);
    hetee_free(in);
    hetee_free(fw);
    hetee_ntt_tables_free(t);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shared_tables),
  };
  return cmocka_run_group_tests_name("ring/threads", tests, NULL, NULL);
}

/*
 * pool.c — the enclave's worker threads (configuration key `threads=`).
 *
 * The seccomp filter (hardening.c) forbids clone/clone3, so every thread is
 * created at start-up, before the filter, and lives until the enclave
 * exits; after that a job only wakes them (futex, allowed). A job is one
 * function run by all threads at once (the caller is thread 0); the
 * function claims its work items itself (refresh.c: one ciphertext per
 * claim). Idle workers block on a condition variable: they use no CPU
 * between jobs, so the process CPU clock the STATS counters read
 * (server.c) counts only work. Workers block every signal (the main
 * thread handles them), set the same floating-point mode as the main thread
 * (flush-to-zero / denormals-are-zero, hardening.c) and run a warm-up
 * function given to enclave_pool_start while the filter is not yet
 * installed, so that per-thread lazy initialisation (malloc arenas, libgomp
 * state) does not happen under it.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/enclave_internal.h"

struct enclave_pool {
  int n; /* threads, the caller included */
  pthread_t *tid;
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  unsigned long gen; /* job number */
  int pending;       /* workers still in the current job */
  int quit;
  enclave_job_fn fn;
  void *arg;
  int started; /* workers created */
};

typedef struct {
  enclave_pool *p;
  int id;
} worker_arg;

static void *worker(void *vp) {
  worker_arg *wa = vp;
  enclave_pool *p = wa->p;
  int id = wa->id;
  free(wa);
  enclave_fp_mode();
  unsigned long seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->gen == seen && !p->quit) pthread_cond_wait(&p->go, &p->mu);
    if (p->quit) break;
    seen = p->gen;
    enclave_job_fn fn = p->fn;
    void *arg = p->arg;
    pthread_mutex_unlock(&p->mu);
    fn(arg, id);
    pthread_mutex_lock(&p->mu);
    if (--p->pending == 0) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int enclave_pool_threads(const enclave_pool *p) { return p ? p->n : 1; }

void enclave_pool_run(enclave_pool *p, enclave_job_fn fn, void *arg) {
  if (!p || p->n == 1) {
    fn(arg, 0);
    return;
  }
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->arg = arg;
  p->pending = p->n - 1;
  p->gen++;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  fn(arg, 0);
  pthread_mutex_lock(&p->mu);
  while (p->pending) pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

void enclave_pool_free(enclave_pool *p) {
  if (!p) return;
  if (p->started) {
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++) pthread_join(p->tid[i], NULL);
  }
  pthread_cond_destroy(&p->go);
  pthread_cond_destroy(&p->done);
  pthread_mutex_destroy(&p->mu);
  free(p->tid);
  free(p);
}

int enclave_pool_start(int nthreads, enclave_job_fn warmup, void *arg, enclave_pool **out) {
  *out = NULL;
  if (nthreads < 1 || nthreads > ENCLAVE_MAX_THREADS)
    return hetee_error(HETEE_ERR_PARAMS, "%d threads outside [1, %d]", nthreads, ENCLAVE_MAX_THREADS);
  enclave_pool *p = calloc(1, sizeof *p);
  if (!p) return hetee_error(HETEE_ERR_NOMEM, "thread pool");
  p->n = nthreads;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->go, NULL);
  pthread_cond_init(&p->done, NULL);
  p->tid = calloc((size_t)nthreads, sizeof *p->tid);
  if (!p->tid) {
    enclave_pool_free(p);
    return hetee_error(HETEE_ERR_NOMEM, "thread pool");
  }
  /* workers start with every signal blocked */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = 0;
  for (int i = 1; i < nthreads && !rc; i++) {
    worker_arg *wa = malloc(sizeof *wa);
    if (!wa) {
      rc = hetee_error(HETEE_ERR_NOMEM, "thread pool");
      break;
    }
    wa->p = p;
    wa->id = i;
    int e = pthread_create(&p->tid[p->started], NULL, worker, wa);
    if (e) {
      free(wa);
      rc = hetee_error(HETEE_ERR_INTERNAL, "pthread_create: %s", strerror(e));
    } else {
      p->started++;
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc) {
    enclave_pool_free(p);
    return rc;
  }
  if (warmup) enclave_pool_run(p, warmup, arg);
  *out = p;
  return 0;
}

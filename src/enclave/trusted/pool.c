/*
 * pool.c — the enclave's worker threads (configuration key `threads=`).
 *
 * The seccomp filter (hardening.c) forbids clone/clone3, so every thread is
 * created at start-up, before the filter, and lives until the enclave
 * exits; after that a job only wakes them (futex, allowed). A job is one
 * function run by the caller (thread 0) and by every worker that joins it;
 * the function claims its work items itself (refresh.c: one ciphertext per
 * claim), so the work is done whoever turns up. The caller never waits for
 * a worker that has not started: when it runs out of items it closes the
 * job, and only waits for the workers that joined before (they are busy
 * with an item); a worker that wakes after that finds the job closed and
 * goes back to sleep. On a shared machine a descheduled worker therefore
 * costs nothing but its share of the work, instead of a barrier wait.
 *
 * Idle workers block on a condition variable: they use no CPU between jobs,
 * so the process CPU clock the STATS counters read (server.c) counts only
 * work. Workers block every signal (the main thread handles them), set the
 * same floating-point mode as the main thread (flush-to-zero /
 * denormals-are-zero, hardening.c) and each runs the warm-up function given
 * to enclave_pool_start once, before it returns — while the filter is not
 * yet installed, so that per-thread lazy initialisation (malloc arenas,
 * libgomp state) does not happen under it.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/trusted/enclave_internal.h"

struct enclave_pool {
  int n; /* threads, the caller included */
  pthread_t *tid;
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  unsigned long gen; /* job number */
  int closed;        /* the current job takes no more workers */
  int active;        /* workers inside the current job */
  int quit;
  enclave_job_fn fn;
  void *arg;
  int started; /* workers created */
  int warm;    /* workers that ran the warm-up */
  enclave_job_fn warmup;
  void *warm_arg;
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
  if (p->warmup) p->warmup(p->warm_arg, id);
  pthread_mutex_lock(&p->mu);
  p->warm++;
  pthread_cond_broadcast(&p->done);
  unsigned long seen = p->gen;
  for (;;) {
    while (p->gen == seen && !p->quit) pthread_cond_wait(&p->go, &p->mu);
    if (p->quit) break;
    seen = p->gen;
    if (p->closed) continue; /* woke too late: the caller finished this job */
    p->active++;
    enclave_job_fn fn = p->fn;
    void *arg = p->arg;
    pthread_mutex_unlock(&p->mu);
    fn(arg, id);
    pthread_mutex_lock(&p->mu);
    if (--p->active == 0 && p->closed) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int enclave_pool_threads(const enclave_pool *p) { return p ? p->n : 1; }

void enclave_pool_run(enclave_pool *p, enclave_job_fn fn, void *arg, size_t items) {
  if (!p || p->n == 1 || items <= 1) {
    fn(arg, 0);
    return;
  }
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->arg = arg;
  p->closed = 0;
  p->active = 0;
  p->gen++;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  fn(arg, 0); /* returns when no item is left to claim */
  pthread_mutex_lock(&p->mu);
  p->closed = 1;
  while (p->active) pthread_cond_wait(&p->done, &p->mu);
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
  p->warmup = warmup;
  p->warm_arg = arg;
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
  if (!rc && warmup) warmup(arg, 0);
  /* every worker has run the warm-up before the caller goes on (and
   * installs the filter) */
  pthread_mutex_lock(&p->mu);
  while (p->warm < p->started) pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
  if (rc) {
    enclave_pool_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

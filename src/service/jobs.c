/*
 * jobs.c — the job queue: worker threads take the oldest queued job from
 * the store, load its encrypted model (cached), input and input
 * witnesses, and run the engine bound (hetee_engine_run_witnessed, or
 * hetee_engine_run_bound for a job submitted without witnesses, with the
 * data provider's stored signed authorization) with the enclave lock held; the results, sealed to
 * the DP's identity, are written atomically *before* the job is marked
 * done, so a job is acknowledged-and-finished exactly when its result file
 * exists. A job cut short by an enclave restart is queued again (the model
 * is bound again in the new enclave, the authorization and witnesses presented again).
 *
 * Only one engine run holds the enclave at a time (the handle is not
 * thread-safe); each run uses `threads` kernel threads, and the other
 * workers meanwhile read and validate the next jobs' inputs. After a run
 * of a model whose policy has budgets the enclave's state (its query
 * counters; a job changes nothing else in it) is sealed: taken under the
 * enclave lock, written and fsynced after it is released (sup_seal_write:
 * the newest state wins), so the next job's run does not wait for the
 * disk; the job is marked done only once its state is on disk. If the
 * enclave dies in the few milliseconds between a release of the lock and
 * the end of that write, the restarted enclave unseals the state before
 * that job (its budget charge is lost; docs/security.md already counts
 * the sealed state as the host's to roll back).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hetee/common.h"
#include "service/server_internal.h"

/* ---- model cache -------------------------------------------------------- */
void model_cache_add(server *S, int64_t id, hetee_engine_model *em) {
  model_cache_entry *c = calloc(1, sizeof *c);
  if (!c) {
    hetee_engine_model_free(em);
    return;
  }
  c->id = id;
  c->em = em;
  c->bound_epoch = -1;
  pthread_mutex_lock(&S->cache_lock);
  c->next = S->cache;
  S->cache = c;
  pthread_mutex_unlock(&S->cache_lock);
}

int model_get(server *S, int64_t id, hetee_engine_model **em) {
  pthread_mutex_lock(&S->cache_lock);
  for (model_cache_entry *c = S->cache; c; c = c->next)
    if (c->id == id) {
      c->refs++;
      *em = c->em;
      pthread_mutex_unlock(&S->cache_lock);
      return 0;
    }
  pthread_mutex_unlock(&S->cache_lock);
  char path[SRV_PATH_MAX];
  blob_path(S, path, "models", id, "htem");
  hetee_engine_model *m = NULL;
  int rc = hetee_engine_model_read(S->en.ctx, path, &m);
  if (rc) return rc;
  model_cache_add(S, id, m);
  return model_get(S, id, em);
}

int model_bind_locked(server *S, int64_t id, const hetee_engine_model *em, int force) {
  int64_t bound = -1;
  pthread_mutex_lock(&S->cache_lock);
  for (model_cache_entry *c = S->cache; c; c = c->next)
    if (c->id == id) bound = c->bound_epoch;
  pthread_mutex_unlock(&S->cache_lock);
  sup_note_restarts(&S->en);
  if (!force && bound == S->en.epoch) return 0;
  int64_t epoch = S->en.epoch;
  int rc = hetee_engine_model_bind(S->en.e, em, (uint32_t)id);
  unsigned before = S->en.restarts_seen;
  sup_note_restarts(&S->en);
  if (!rc && S->en.restarts_seen != before) rc = hetee_error(HETEE_ERR_IO, "the enclave restarted while binding");
  pthread_mutex_lock(&S->cache_lock);
  for (model_cache_entry *c = S->cache; c; c = c->next)
    if (c->id == id) c->bound_epoch = rc ? -1 : epoch;
  pthread_mutex_unlock(&S->cache_lock);
  if (!rc) fprintf(stderr, "hetee server: model %lld bound in the enclave (epoch %lld)\n", (long long)id, (long long)epoch);
  return rc;
}

void model_put(server *S, int64_t id) {
  pthread_mutex_lock(&S->cache_lock);
  for (model_cache_entry **p = &S->cache; *p; p = &(*p)->next)
    if ((*p)->id == id) {
      (*p)->refs--;
      break;
    }
  pthread_mutex_unlock(&S->cache_lock);
}

/* Drops an unused model from the cache (after DELETE; busy models have no
 * active jobs by then, see h_model_delete). */
void model_drop(server *S, int64_t id) {
  pthread_mutex_lock(&S->cache_lock);
  for (model_cache_entry **p = &S->cache; *p; p = &(*p)->next)
    if ((*p)->id == id && (*p)->refs == 0) {
      model_cache_entry *c = *p;
      *p = c->next;
      hetee_engine_model_free(c->em);
      free(c);
      break;
    }
  pthread_mutex_unlock(&S->cache_lock);
}

/* ---- results ------------------------------------------------------------ */
/* Result file: "HTRS" | u32 n | n x (u32 len | sealed release). */
static int write_results(server *S, int64_t id, const hetee_engine_results *res) {
  size_t total = 8;
  for (size_t i = 0; i < res->n; i++) total += 4 + res->lens[i];
  uint8_t *b = malloc(total), *p = b;
  if (!b) return hetee_error(HETEE_ERR_NOMEM, "no memory for results");
  memcpy(p, "HTRS", 4);
  p += 4;
  for (int k = 0; k < 4; k++) *p++ = (uint8_t)(res->n >> (8 * k));
  for (size_t i = 0; i < res->n; i++) {
    for (int k = 0; k < 4; k++) *p++ = (uint8_t)(res->lens[i] >> (8 * k));
    memcpy(p, res->sealed[i], res->lens[i]);
    p += res->lens[i];
  }
  char path[SRV_PATH_MAX];
  blob_path(S, path, "jobs", id, "res");
  int rc = blob_write(S->data_dir, path, b, total);
  free(b);
  return rc;
}

/* The job's signed authorization (DIR/jobs/ID.auth, written at submission). */
static int read_auth(server *S, int64_t id, hetee_job_auth *a) {
  char path[SRV_PATH_MAX];
  blob_path(S, path, "jobs", id, "auth");
  uint8_t *b = NULL;
  size_t len = 0;
  int rc = blob_read(path, 64u << 10, &b, &len);
  if (!rc) rc = hetee_job_auth_decode(b, len, a);
  free(b);
  return rc;
}

#define MAX_ATTEMPTS 5 /* runs of one job cut short by enclave restarts */

/* A bound run: the model bound in this enclave epoch (MODEL_LOAD again after
 * a restart), the DP's stored signed authorization presented, every
 * micro-batch checked and released sealed to the DP's identity (all-zero
 * session id). If the enclave died under it, the job goes back to the queue
 * and runs again from the start with the same authorization. */
static void run_job(server *S, st_job *j) {
  char why[300];
  hetee_job_auth *a = calloc(1, sizeof *a);
  int rc = a ? read_auth(S, j->id, a) : hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (rc) {
    snprintf(why, sizeof why, "authorization: %s", hetee_last_error());
    (void)store_job_set_state(S->db, j->id, "failed", why);
    metrics_job(&S->m, 0, 0, 0, 0, 0);
    free(a);
    return;
  }
  hetee_engine_model *em = NULL;
  rc = model_get(S, j->model, &em);
  if (rc) {
    snprintf(why, sizeof why, "model %lld: %s", (long long)j->model, hetee_last_error());
    (void)store_job_set_state(S->db, j->id, "failed", why);
    metrics_job(&S->m, 0, 0, 0, 0, 0);
    free(a);
    return;
  }
  char path[SRV_PATH_MAX];
  blob_path(S, path, "jobs", j->id, "htei");
  uint8_t *buf = NULL;
  size_t len = 0;
  hetee_engine_input *in = NULL;
  rc = blob_read(path, S->o.max_input_bytes, &buf, &len);
  if (!rc) rc = hetee_engine_input_load(S->en.ctx, hetee_engine_model_plan(em), buf, len, &in);
  free(buf);
  if (rc) {
    snprintf(why, sizeof why, "input: %s", hetee_last_error());
    (void)store_job_set_state(S->db, j->id, "failed", why);
    model_put(S, j->model);
    metrics_job(&S->m, 0, 0, 0, 0, 0);
    free(a);
    return;
  }
  /* the DP's input witnesses, when it sent them (DIR/jobs/ID.htwt): the
   * enclave then starts each micro-batch from its sealed witness and
   * neither hashes nor decrypts the input ciphertexts. Without the file
   * the ciphertext-digest form runs (a host that deletes it only gets a
   * job the enclave refuses: the authorization names the witnesses). */
  hetee_engine_witnesses wit = {0};
  int witnessed = 0;
  blob_path(S, path, "jobs", j->id, "htwt");
  rc = blob_read(path, S->o.max_input_bytes, &buf, &len);
  if (!rc) {
    witnessed = 1;
    rc = hetee_engine_witnesses_load(hetee_engine_model_plan(em), (uint32_t)j->model, buf, len, &wit);
    free(buf);
    if (rc) {
      snprintf(why, sizeof why, "input witnesses: %s", hetee_last_error());
      (void)store_job_set_state(S->db, j->id, "failed", why);
      hetee_engine_input_free(in);
      model_put(S, j->model);
      metrics_job(&S->m, 0, 0, 0, 0, 0);
      free(a);
      return;
    }
  } else if (rc != HETEE_ERR_NOT_FOUND) {
    snprintf(why, sizeof why, "input witnesses: %s", hetee_last_error());
    (void)store_job_set_state(S->db, j->id, "failed", why);
    hetee_engine_input_free(in);
    model_put(S, j->model);
    metrics_job(&S->m, 0, 0, 0, 0, 0);
    free(a);
    return;
  }
  /* the enclave's state changes in a job only by a query budget's counter
   * (integrity.c charges a DP only for a model with an enclave budget), so
   * the state is sealed after the jobs of models whose policy has budgets;
   * for the others the sealed state on disk is already the enclave's (when
   * unsure, seal) */
  int budgeted = 1;
  if (store_model_budgeted(S->db, j->model, &budgeted)) budgeted = 1;
  rc = 0;
  hetee_engine_results res;
  memset(&res, 0, sizeof res);
  hetee_engine_stats *stats = calloc(1, sizeof *stats);
  static const uint8_t to_identity[16] = {0};
  int lost = 0;
  uint8_t *seal = NULL;
  size_t seal_len = 0;
  uint64_t seal_seq = 0;
  pthread_mutex_lock(&S->en.lock);
  sup_note_restarts(&S->en);
  unsigned before = S->en.restarts_seen;
  rc = model_bind_locked(S, j->model, em, 0);
  if (rc) snprintf(why, sizeof why, "binding model %lld: %s: %s", (long long)j->model, hetee_strerror(rc), hetee_last_error());
  if (!rc && (rc = hetee_engine_job_authorize(S->en.e, a)))
    snprintf(why, sizeof why, "authorization: %s: %s", hetee_strerror(rc), hetee_last_error());
  if (!rc && (rc = witnessed ? hetee_engine_run_witnessed(S->en.e, em, in, &wit, (uint32_t)j->model, to_identity,
                                                           S->threads, &res, stats)
                             : hetee_engine_run_bound(S->en.e, em, in, (uint32_t)j->model, to_identity, S->threads,
                                                      &res, stats)))
    snprintf(why, sizeof why, "%s: %s", hetee_strerror(rc), hetee_last_error());
  if (!rc && budgeted) {
    /* the enclave's query counters survive a restart: the sealed state is
     * taken here, written to disk below without the enclave lock */
    rc = sup_seal_take(&S->en, &seal, &seal_len, &seal_seq);
    if (rc) snprintf(why, sizeof why, "sealing: %s", hetee_last_error());
  }
  if (rc) {
    /* did the enclave die under the run? INFO restarts a dead one */
    hetee_host_info info;
    if (hetee_host_info_get(S->en.e, &info))
      fprintf(stderr, "hetee server: enclave INFO after a failed run: %s\n", hetee_last_error());
    sup_note_restarts(&S->en);
    lost = S->en.restarts_seen != before;
  }
  pthread_mutex_unlock(&S->en.lock);
  hetee_engine_input_free(in);
  hetee_engine_witnesses_clear(&wit);
  model_put(S, j->model);
  free(a);
  if (lost && j->attempts < MAX_ATTEMPTS) {
    free(seal);
    hetee_engine_results_clear(&res);
    (void)store_job_set_state(S->db, j->id, "queued", "the enclave restarted during the run: queued again");
    fprintf(stderr, "hetee server: job %lld: the enclave restarted during the run; queued again\n", (long long)j->id);
    free(stats);
    jobs_kick(S);
    return;
  }
  if (!rc && seal) {
    rc = sup_seal_write(&S->en, seal, seal_len, seal_seq);
    if (rc) snprintf(why, sizeof why, "sealing: %s", hetee_last_error());
  }
  free(seal);
  if (!rc) {
    rc = write_results(S, j->id, &res);
    if (rc) snprintf(why, sizeof why, "storing results: %s", hetee_last_error());
  }
  hetee_engine_results_clear(&res);
  double lat = (double)(reqsig_now_ms() - (uint64_t)j->created_ms) / 1000.0;
  if (!rc) {
    rc = store_job_set_state(S->db, j->id, "done", NULL);
    metrics_job(&S->m, 1, lat, stats->total_s, stats->enclave_s, (uint64_t)j->count);
  } else {
    (void)store_job_set_state(S->db, j->id, "failed", why);
    metrics_job(&S->m, 0, 0, 0, 0, 0);
  }
  free(stats);
}

void jobs_finished(server *S) {
  pthread_mutex_lock(&S->wlock);
  pthread_cond_broadcast(&S->wcond);
  pthread_mutex_unlock(&S->wlock);
}

static void *worker(void *arg) {
  server *S = arg;
  for (;;) {
    pthread_mutex_lock(&S->qlock);
    st_job j;
    int rc = HETEE_ERR_NOT_FOUND;
    while (!S->stopping && (rc = store_job_take(S->db, &j)) != 0) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += 1; /* also polls: jobs may be queued by another path */
      pthread_cond_timedwait(&S->qcond, &S->qlock, &ts);
    }
    pthread_mutex_unlock(&S->qlock);
    if (S->stopping) {
      /* a job taken just now goes back to the queue */
      if (rc == 0) (void)store_job_set_state(S->db, j.id, "queued", NULL);
      return NULL;
    }
    run_job(S, &j);
    jobs_finished(S);
  }
}

void jobs_kick(server *S) {
  pthread_mutex_lock(&S->qlock);
  pthread_cond_broadcast(&S->qcond);
  pthread_mutex_unlock(&S->qlock);
}

int jobs_start(server *S) {
  pthread_mutex_init(&S->qlock, NULL);
  pthread_cond_init(&S->qcond, NULL);
  S->workers = calloc((size_t)S->nworkers, sizeof *S->workers);
  if (!S->workers) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (int i = 0; i < S->nworkers; i++)
    if (pthread_create(&S->workers[i], NULL, worker, S) != 0) {
      S->nworkers = i;
      return hetee_error(HETEE_ERR_INTERNAL, "cannot start worker threads");
    }
  return 0;
}

void jobs_stop(server *S) {
  pthread_mutex_lock(&S->qlock);
  S->stopping = 1;
  pthread_cond_broadcast(&S->qcond);
  pthread_mutex_unlock(&S->qlock);
  for (int i = 0; i < S->nworkers; i++) pthread_join(S->workers[i], NULL);
  free(S->workers);
  S->workers = NULL;
  pthread_cond_destroy(&S->qcond);
  pthread_mutex_destroy(&S->qlock);
}

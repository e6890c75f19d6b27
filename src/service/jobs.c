/*
 * jobs.c — the job queue: worker threads take the oldest queued job from
 * the store, load its encrypted model (cached) and input, and run the
 * engine (hetee_engine_run) with the enclave lock held; the sealed results
 * are written atomically *before* the job is marked done, so a job is
 * acknowledged-and-finished exactly when its result file exists. A job
 * whose enclave session is gone (the enclave restarted, or the server did)
 * goes to awaiting_session until its data provider binds a new session.
 *
 * Only one engine run holds the enclave at a time (the handle is not
 * thread-safe); each run uses `threads` kernel threads, and the other
 * workers meanwhile read and validate the next jobs' inputs.
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

static void run_job(server *S, st_job *j) {
  char why[300];
  uint8_t sid[16];
  if (reqsig_unhex(j->session, sid, 16)) {
    (void)store_job_set_state(S->db, j->id, "failed", "corrupt session id");
    return;
  }
  hetee_engine_model *em = NULL;
  int rc = model_get(S, j->model, &em);
  if (rc) {
    snprintf(why, sizeof why, "model %lld: %s", (long long)j->model, hetee_last_error());
    (void)store_job_set_state(S->db, j->id, "failed", why);
    metrics_job(&S->m, 0, 0, 0, 0, 0);
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
    return;
  }
  hetee_engine_results res;
  hetee_engine_stats *stats = calloc(1, sizeof *stats);
  int lost = 0;
  pthread_mutex_lock(&S->en.lock);
  sup_note_restarts(&S->en);
  if (j->epoch != S->en.epoch || j->seq + SRV_SESSION_SLOTS <= S->en.next_seq) {
    lost = 1;
  } else {
    rc = hetee_engine_run(S->en.e, em, in, (uint32_t)j->model, sid, S->threads, &res, stats);
    if (rc) snprintf(why, sizeof why, "%s: %s", hetee_strerror(rc), hetee_last_error());
    unsigned before = S->en.restarts_seen;
    sup_note_restarts(&S->en);
    if (rc && S->en.restarts_seen != before) lost = 1; /* the enclave died under the run */
  }
  pthread_mutex_unlock(&S->en.lock);
  hetee_engine_input_free(in);
  model_put(S, j->model);
  if (lost) {
    (void)store_job_set_state(S->db, j->id, "awaiting_session",
                              "the enclave session is gone (enclave restarted): bind a new session");
    free(stats);
    return;
  }
  if (!rc) {
    rc = write_results(S, j->id, &res);
    if (rc) snprintf(why, sizeof why, "storing results: %s", hetee_last_error());
    hetee_engine_results_clear(&res);
  }
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

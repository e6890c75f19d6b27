/*
 * jobs.c — the job queue: worker threads take the oldest queued job from
 * the store, load its encrypted model (cached), input and input
 * witnesses, and run the engine bound (hetee_engine_run_witnessed, or
 * hetee_engine_run_bound for a job submitted without witnesses, with the
 * data provider's signed authorization stored in the job's row) with the enclave lock held; the results, sealed to
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
#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hemat/engine_internal.h"
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

static int runner_on = 1; /* HETEE_SERVER_RUNNER=0 (read by jobs_start): a pool per run, for measurements */

hetee_engine_runner *model_runner(server *S, int64_t id, const hetee_engine_model *em) {
  if (!runner_on) return NULL;
  hetee_engine_runner *r = NULL;
  pthread_mutex_lock(&S->cache_lock);
  for (model_cache_entry *c = S->cache; c; c = c->next)
    if (c->id == id && c->em == em) { /* the entry model_get gave (the cache may hold a model twice) */
      if (!c->runner && hetee_engine_runner_new(c->em, S->threads, &c->runner))
        fprintf(stderr, "hetee server: model %lld: no runner (%s); its runs make their own pools\n", (long long)id,
                hetee_last_error());
      r = c->runner;
      break;
    }
  pthread_mutex_unlock(&S->cache_lock);
  return r;
}

/* Drops an unused model from the cache (after DELETE; busy models have no
 * active jobs by then, see h_model_delete). */
void model_drop(server *S, int64_t id) {
  pthread_mutex_lock(&S->cache_lock);
  for (model_cache_entry **p = &S->cache; *p; p = &(*p)->next)
    if ((*p)->id == id && (*p)->refs == 0) {
      model_cache_entry *c = *p;
      *p = c->next;
      hetee_engine_runner_free(c->runner);
      hetee_engine_model_free(c->em);
      free(c);
      break;
    }
  pthread_mutex_unlock(&S->cache_lock);
}

/* ---- results ------------------------------------------------------------ */
/* Result file: "HTRS" | u32 n | n x (u32 len | sealed release); written,
 * fsynced and renamed into place (path: where), its directory fsynced
 * (dirsync) or not (the caller syncs it). */
static int write_results_to(server *S, int64_t id, const hetee_engine_results *res, char path[SRV_PATH_MAX],
                            int dirsync) {
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
  blob_path(S, path, "jobs", id, "res");
  int rc = dirsync ? blob_write(S->data_dir, path, b, total) : blob_write_nodirsync(S->data_dir, path, b, total);
  free(b);
  return rc;
}

static int write_results(server *S, int64_t id, const hetee_engine_results *res) {
  char path[SRV_PATH_MAX];
  return write_results_to(S, id, res, path, 1);
}

static int write_results_nodirsync(server *S, int64_t id, const hetee_engine_results *res, char path[SRV_PATH_MAX]) {
  return write_results_to(S, id, res, path, 0);
}

/* ---- the finisher ------------------------------------------------------------
 * A successful run's results are stored and its job marked done by one
 * finisher thread, so that the worker takes its next job at once instead
 * of waiting for the result file's fsyncs and the done commit (with 2-3
 * workers each such wait left the CPUs idle while the other runs waited
 * for the enclave). The finisher takes every run waiting at once: their
 * result files written and fsynced, renamed, one fsync of DIR/jobs for
 * all, then one durable commit marking all of them done — the same order
 * as before for each job (acknowledged-and-finished exactly when its
 * result file exists; a crash before the commit runs the job again, as a
 * crash after a run and before its done always did). At most FIN_MAX runs
 * wait (a worker waits for room); jobs_stop drains them. */
#define FIN_MAX 16
typedef struct fin_item {
  st_job j;
  hetee_engine_results res;
  double wall_s, enclave_s;
} fin_item;
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;    /* items queued, or stop */
  pthread_cond_t room;  /* items taken */
  fin_item q[FIN_MAX];
  size_t n;
  int stop, started;
  pthread_t tid;
} fin = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .room = PTHREAD_COND_INITIALIZER};
static int fin_on = 1; /* HETEE_SERVER_FINISHER=0 (read by jobs_start): each worker stores its own results */

static int write_results_nodirsync(server *S, int64_t id, const hetee_engine_results *res, char path[SRV_PATH_MAX]);
static void job_failed_now(server *S, int64_t id, const char *why);

static void *fin_main(void *arg) {
  server *S = arg;
  fin_item *batch = calloc(FIN_MAX, sizeof *batch);
  int64_t *ids = calloc(FIN_MAX, sizeof *ids);
  pthread_mutex_lock(&fin.mu);
  for (;;) {
    while (!fin.n && !fin.stop) pthread_cond_wait(&fin.cv, &fin.mu);
    if (!fin.n) break; /* stop, drained */
    size_t n = fin.n;
    if (batch && ids) memcpy(batch, fin.q, n * sizeof *batch);
    fin.n = 0;
    pthread_cond_broadcast(&fin.room);
    pthread_mutex_unlock(&fin.mu);
    if (!batch || !ids) { /* no memory for the batch: nothing can be stored; the jobs run again after a restart */
      pthread_mutex_lock(&fin.mu);
      continue;
    }
    char why[FIN_MAX][300], path[SRV_PATH_MAX];
    int ok[FIN_MAX], any = 0;
    for (size_t i = 0; i < n; i++) {
      ok[i] = !write_results_nodirsync(S, batch[i].j.id, &batch[i].res, path);
      if (!ok[i]) snprintf(why[i], sizeof why[i], "storing results: %s", hetee_last_error());
      any |= ok[i];
    }
    /* one fsync of DIR/jobs makes every rename above durable */
    if (any && blob_sync_dir(path)) {
      for (size_t i = 0; i < n; i++)
        if (ok[i]) {
          ok[i] = 0;
          snprintf(why[i], sizeof why[i], "storing results: %s", hetee_last_error());
        }
    }
    size_t nd = 0;
    for (size_t i = 0; i < n; i++)
      if (ok[i]) {
        double lat = (double)(reqsig_now_ms() - (uint64_t)batch[i].j.created_ms) / 1000.0;
        metrics_job(&S->m, 1, lat, batch[i].wall_s, batch[i].enclave_s, (uint64_t)batch[i].j.count);
        ids[nd++] = batch[i].j.id;
      }
    if (nd) (void)store_jobs_done(S->db, ids, nd);
    for (size_t i = 0; i < n; i++) {
      if (ok[i]) jobs_finished(S, batch[i].j.id);
      else job_failed_now(S, batch[i].j.id, why[i]);
      hetee_engine_results_clear(&batch[i].res);
    }
    pthread_mutex_lock(&fin.mu);
  }
  pthread_mutex_unlock(&fin.mu);
  free(batch);
  free(ids);
  return NULL;
}

/* Hands a successful run's results (taken: *res is cleared) to the
 * finisher; -1 when it is not running (the caller stores them itself). */
static int fin_put(const st_job *j, hetee_engine_results *res, double wall_s, double enclave_s) {
  pthread_mutex_lock(&fin.mu);
  if (!fin.started || fin.stop) {
    pthread_mutex_unlock(&fin.mu);
    return -1;
  }
  while (fin.n == FIN_MAX) pthread_cond_wait(&fin.room, &fin.mu);
  fin_item *it = &fin.q[fin.n++];
  it->j = *j;
  it->res = *res;
  it->wall_s = wall_s;
  it->enclave_s = enclave_s;
  memset(res, 0, sizeof *res);
  pthread_cond_signal(&fin.cv);
  pthread_mutex_unlock(&fin.mu);
  return 0;
}

/* The signed authorization of a job an older server stored (its file
 * DIR/jobs/ID.auth; the job's row holds it now). */
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

/* ---- one job's pieces ----------------------------------------------------- */
typedef struct jctx {
  st_job j;
  hetee_job_auth *a;
  hetee_engine_model *em; /* model_get's: model_put in job_unload */
  hetee_engine_input *in;
  hetee_engine_witnesses wit;
  int witnessed;
} jctx;

static void job_unload(server *S, jctx *x) {
  hetee_engine_input_free(x->in);
  x->in = NULL;
  hetee_engine_witnesses_clear(&x->wit);
  if (x->em) model_put(S, x->j.model);
  x->em = NULL;
  free(x->a);
  x->a = NULL;
}

/* ---- hand-off ----------------------------------------------------------------
 * What the submission parsed and checked (the input, its witnesses, the
 * decoded authorization) is kept for the worker, which then neither reads
 * the files back nor parses them again; the files are written and made
 * durable exactly as before (a restarted server, and a run queued again
 * after an enclave restart, load them from disk). At most HANDOFF_MAX bytes
 * of bodies are kept: past that, a job is loaded from disk as before. */
#define HANDOFF_MAX ((size_t)64 << 20)
typedef struct handoff {
  int64_t id;
  hetee_engine_input *in;
  hetee_engine_witnesses wit;
  int witnessed;
  hetee_job_auth *a;
  size_t bytes;
  struct handoff *next;
} handoff;
static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;
static handoff *handoffs;
static size_t handoff_bytes;

static void handoff_free(handoff *h) {
  hetee_engine_input_free(h->in);
  hetee_engine_witnesses_clear(&h->wit);
  free(h->a);
  free(h);
}

static int handoff_on = 1; /* HETEE_SERVER_HANDOFF=0 (read by jobs_start): off, for measurements */

int jobs_handoff_put(int64_t id, hetee_engine_input **in, hetee_engine_witnesses *w, int witnessed, hetee_job_auth **a,
                     size_t bytes) {
  if (!handoff_on) return -1;
  handoff *h = calloc(1, sizeof *h);
  if (!h) return -1;
  pthread_mutex_lock(&handoff_lock);
  if (handoff_bytes + bytes > HANDOFF_MAX) {
    pthread_mutex_unlock(&handoff_lock);
    free(h);
    return -1;
  }
  h->id = id;
  h->in = *in;
  *in = NULL;
  h->wit = *w;
  memset(w, 0, sizeof *w);
  h->witnessed = witnessed;
  h->a = *a;
  *a = NULL;
  h->bytes = bytes;
  h->next = handoffs;
  handoffs = h;
  handoff_bytes += bytes;
  pthread_mutex_unlock(&handoff_lock);
  return 0;
}

static handoff *handoff_take(int64_t id) {
  pthread_mutex_lock(&handoff_lock);
  handoff *h = NULL;
  for (handoff **p = &handoffs; *p; p = &(*p)->next)
    if ((*p)->id == id) {
      h = *p;
      *p = h->next;
      handoff_bytes -= h->bytes;
      break;
    }
  pthread_mutex_unlock(&handoff_lock);
  return h;
}

void jobs_handoff_drop(int64_t id) {
  handoff *h = handoff_take(id);
  if (h) handoff_free(h);
}

static void handoff_clear(void) {
  pthread_mutex_lock(&handoff_lock);
  while (handoffs) {
    handoff *h = handoffs;
    handoffs = h->next;
    handoff_free(h);
  }
  handoff_bytes = 0;
  pthread_mutex_unlock(&handoff_lock);
}

/* The metrics count a job before its state says final, so that a client
 * that saw it final reads metrics that include it. */
static void job_failed(server *S, int64_t id, const char *why) {
  metrics_job(&S->m, 0, 0, 0, 0, 0);
  (void)store_job_set_state(S->db, id, "failed", why);
  jobs_finished(S, id);
}

static void job_failed_now(server *S, int64_t id, const char *why) { job_failed(S, id, why); }

/* Job x->j's authorization (its row), model (cached), input and, when the
 * DP sent them, input witnesses (the end of DIR/jobs/ID.htei, their size
 * in the row: the enclave then starts each micro-batch from its sealed
 * witness and neither hashes nor decrypts the input ciphertexts; without
 * them the ciphertext-digest form runs — a host that drops them only gets
 * a job the enclave refuses: the authorization names the witnesses). On
 * error the job is failed and nothing is held (nonzero). */
static int job_load(server *S, jctx *x) {
  char why[300], path[SRV_PATH_MAX];
  st_job *j = &x->j;
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = 0;
  handoff *h = x->j.attempts <= 1 ? handoff_take(j->id) : NULL;
  if (h) { /* what the submission checked, in memory */
    if ((rc = model_get(S, j->model, &x->em))) {
      x->em = NULL;
      handoff_free(h);
      snprintf(why, sizeof why, "model %lld: %s", (long long)j->model, hetee_last_error());
      goto fail;
    }
    x->a = h->a;
    x->in = h->in;
    x->wit = h->wit;
    x->witnessed = h->witnessed;
    free(h);
    return 0;
  }
  /* the row: the authorization and the size of the witnesses at the end
   * of the input file (a job an older server stored has neither: its
   * authorization and witnesses are the files ID.auth and ID.htwt) */
  uint8_t *ab = NULL;
  size_t al = 0;
  int64_t wlen = 0;
  x->a = calloc(1, sizeof *x->a);
  rc = x->a ? store_job_stored(S->db, j->id, &ab, &al, &wlen) : hetee_error(HETEE_ERR_NOMEM, "no memory");
  int legacy = !rc && !ab;
  if (!rc) rc = legacy ? read_auth(S, j->id, x->a) : hetee_job_auth_decode(ab, al, x->a);
  free(ab);
  if (rc) {
    snprintf(why, sizeof why, "authorization: %s", hetee_last_error());
    goto fail;
  }
  if ((rc = model_get(S, j->model, &x->em))) {
    x->em = NULL;
    snprintf(why, sizeof why, "model %lld: %s", (long long)j->model, hetee_last_error());
    goto fail;
  }
  blob_path(S, path, "jobs", j->id, "htei");
  rc = blob_read(path, S->o.max_input_bytes, &buf, &len);
  if (!rc && (wlen < 0 || (uint64_t)wlen >= len))
    rc = hetee_error(HETEE_ERR_FORMAT, "%s: %zu bytes cannot hold %lld bytes of witnesses and an input", path, len,
                     (long long)wlen);
  size_t inlen = rc ? 0 : len - (size_t)wlen;
  if (!rc) rc = hetee_engine_input_load(S->en.ctx, hetee_engine_model_plan(x->em), buf, inlen, &x->in);
  if (rc) {
    free(buf);
    snprintf(why, sizeof why, "input: %s", hetee_last_error());
    goto fail;
  }
  if (wlen > 0) {
    x->witnessed = 1;
    rc = hetee_engine_witnesses_load(hetee_engine_model_plan(x->em), (uint32_t)j->model, buf + inlen, (size_t)wlen,
                                     &x->wit);
  }
  free(buf);
  buf = NULL;
  if (!rc && legacy) {
    blob_path(S, path, "jobs", j->id, "htwt");
    rc = blob_read(path, S->o.max_input_bytes, &buf, &len);
    if (!rc) {
      x->witnessed = 1;
      rc = hetee_engine_witnesses_load(hetee_engine_model_plan(x->em), (uint32_t)j->model, buf, len, &x->wit);
      free(buf);
    } else if (rc == HETEE_ERR_NOT_FOUND) {
      rc = 0;
    }
  }
  if (rc) {
    snprintf(why, sizeof why, "input witnesses: %s", hetee_last_error());
    goto fail;
  }
  return 0;
fail:
  job_failed(S, j->id, why);
  job_unload(S, x);
  return rc;
}

/* Results of job x (res: its samples) stored, then the job marked done
 * (acknowledged-and-finished exactly when its result file exists); or
 * failed with why. wall_s / enclave_s: its share of the run, for metrics. */
static void job_finish(server *S, jctx *x, int rc, const char *why, const hetee_engine_results *res, double wall_s,
                       double enclave_s) {
  char w2[300];
  if (!rc && (rc = write_results(S, x->j.id, res))) {
    snprintf(w2, sizeof w2, "storing results: %s", hetee_last_error());
    why = w2;
  }
  double lat = (double)(reqsig_now_ms() - (uint64_t)x->j.created_ms) / 1000.0;
  if (!rc) {
    metrics_job(&S->m, 1, lat, wall_s, enclave_s, (uint64_t)x->j.count);
    (void)store_job_set_state(S->db, x->j.id, "done", NULL);
    jobs_finished(S, x->j.id);
  } else {
    job_failed(S, x->j.id, why);
  }
}

/* Under the enclave lock, after a failed call: did the enclave die under
 * it? (INFO restarts a dead one.) */
static int enclave_lost_locked(server *S, unsigned before) {
  hetee_host_info info;
  if (hetee_host_info_get(S->en.e, &info))
    fprintf(stderr, "hetee server: enclave INFO after a failed run: %s\n", hetee_last_error());
  sup_note_restarts(&S->en);
  return S->en.restarts_seen != before;
}

static void requeue(server *S, const st_job *j, const char *why) {
  (void)store_job_set_state(S->db, j->id, "queued", why);
  fprintf(stderr, "hetee server: job %lld: %s\n", (long long)j->id, why);
}

static int solo_job(int64_t id);
static void mark_solo_dp(const char *dp);

/* Whether the workers' runs overlap (HETEE_SERVER_OVERLAP=0 turns it off):
 * each run holds the enclave lock only around its enclave calls, so one
 * job's host kernels run while the enclave refreshes another's (a job of
 * one micro-batch alone leaves the host idle during its enclave calls and
 * the enclave idle during its kernels). Binding, authorizing and sealing
 * still hold the lock throughout; a run the enclave's restart cut short
 * (by anyone's call) is queued again as before. */
static int overlap_on = 1; /* set by jobs_start */
static int overlap(void) { return overlap_on; }

/* The enclave requests of overlapping runs (several workers) ask for the
 * enclave's calling thread only: the other runs' host work keeps the CPUs
 * busy meanwhile (hetee_engine_run_hooks.enclave_serial; 0: the engine's
 * own choice, serial when a run overlaps its own micro-batches). */
static int runs_serial(const server *S) { return overlap() && S->nworkers > 1; }

/* Engine steps of job x's run (stages x micro-batches), its progress total. */
static uint64_t job_steps(const jctx *x) {
  const hetee_engine_plan *p = hetee_engine_model_plan(x->em);
  uint64_t mb = hetee_engine_plan_micro_batch(p), n = (uint64_t)hetee_engine_input_count(x->in);
  return mb ? (n + mb - 1) / mb * hetee_engine_plan_num_stages(p) : 0;
}

/* The engine's progress hook of a run of one job. */
typedef struct {
  server *S;
  int64_t id;
} prog_one;
static void one_progress(void *ud, size_t mb, uint64_t done, uint64_t total) {
  (void)mb;
  prog_one *p = ud;
  jobs_progress_set(p->S, p->id, done, total);
}

/* A bound run: the model bound in this enclave epoch (MODEL_LOAD again after
 * a restart), the DP's stored signed authorization presented, every
 * micro-batch checked and released sealed to the DP's identity (all-zero
 * session id). If the enclave died under it, the job goes back to the queue
 * and runs again from the start with the same authorization. */
static void run_one(server *S, jctx *x) {
  char why[300];
  st_job *j = &x->j;
  /* the enclave's state changes in a job only by a query budget's counter
   * (integrity.c charges a DP only for a model with an enclave budget), so
   * the state is sealed after the jobs of models whose policy has budgets;
   * for the others the sealed state on disk is already the enclave's (when
   * unsure, seal) */
  int budgeted = 1;
  if (store_model_budgeted(S->db, j->model, &budgeted)) budgeted = 1;
  int rc = 0;
  hetee_engine_results res;
  memset(&res, 0, sizeof res);
  hetee_engine_stats *stats = calloc(1, sizeof *stats);
  static const uint8_t to_identity[16] = {0};
  int lost = 0;
  uint8_t *seal = NULL;
  size_t seal_len = 0;
  uint64_t seal_seq = 0;
  if (!stats) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  pthread_mutex_lock(&S->en.lock);
  sup_note_restarts(&S->en);
  unsigned before = S->en.restarts_seen;
  if (rc) snprintf(why, sizeof why, "no memory");
  if (!rc && (rc = model_bind_locked(S, j->model, x->em, 0)))
    snprintf(why, sizeof why, "binding model %lld: %s: %s", (long long)j->model, hetee_strerror(rc), hetee_last_error());
  if (!rc && (rc = hetee_engine_job_authorize(S->en.e, x->a)))
    snprintf(why, sizeof why, "authorization: %s: %s", hetee_strerror(rc), hetee_last_error());
  prog_one po = {S, j->id};
  hetee_engine_run_hooks hk = {one_progress, &po, NULL, model_runner(S, j->model, x->em), runs_serial(S)};
  if (!rc) jobs_progress_set(S, j->id, 0, job_steps(x));
  /* overlapped runs: the lock only around each enclave call of the run */
  int ov = overlap();
  if (ov) {
    hk.enclave_lock = &S->en.lock;
    pthread_mutex_unlock(&S->en.lock);
  }
  if (!rc && (rc = hetee_engine_run_hooked(S->en.e, x->em, x->in, x->witnessed ? &x->wit : NULL, (uint32_t)j->model,
                                           to_identity, S->threads, &hk, &res, stats)))
    snprintf(why, sizeof why, "%s: %s", hetee_strerror(rc), hetee_last_error());
  if (ov) pthread_mutex_lock(&S->en.lock);
  if (!rc && budgeted) {
    /* the enclave's query counters survive a restart: the sealed state is
     * taken here, written to disk below without the enclave lock */
    rc = sup_seal_take(&S->en, &seal, &seal_len, &seal_seq);
    if (rc) snprintf(why, sizeof why, "sealing: %s", hetee_last_error());
  }
  if (rc) lost = enclave_lost_locked(S, before);
  pthread_mutex_unlock(&S->en.lock);
  if (lost && j->attempts < MAX_ATTEMPTS) {
    free(seal);
    hetee_engine_results_clear(&res);
    requeue(S, j, "the enclave restarted during the run: queued again");
    free(stats);
    jobs_kick(S);
    return;
  }
  if (!rc && seal) {
    rc = sup_seal_write(&S->en, seal, seal_len, seal_seq);
    if (rc) snprintf(why, sizeof why, "sealing: %s", hetee_last_error());
  }
  free(seal);
  if (rc || fin_put(&x->j, &res, stats ? stats->total_s : 0, stats ? stats->enclave_s : 0))
    job_finish(S, x, rc, why, &res, stats ? stats->total_s : 0, stats ? stats->enclave_s : 0);
  /* refused alone after its batch was refused: its DP's jobs run alone */
  if (rc && solo_job(j->id)) mark_solo_dp(j->dp);
  hetee_engine_results_clear(&res);
  free(stats);
}

/* ---- batches ---------------------------------------------------------------
 * Jobs of one model waiting together run as one engine call: their input
 * micro-batches in one input (job order), their witnesses in one list, each
 * job's authorization presented first; the engine then overlaps the
 * micro-batches' host and enclave work (two pipelines) and pays its per-run
 * costs once, and each job gets its own slice of the sealed results (each
 * release names its own job's authorized digest and is sealed to its own
 * DP). Batched: witnessed jobs of whole micro-batches of a model without
 * budgets (an exhausted enclave budget would stop the whole call), at most
 * HETEE_SERVER_BATCH of them (default 1: off; at most S_BATCH_MAX).
 *
 * If the enclave refuses one job's micro-batch (e.g. a witness the DP sealed
 * with values out of range), the call stops and the authorizations of the
 * micro-batches it started are spent: every job of the batch goes back to
 * the queue marked to run alone, and the enclave is restarted (a new
 * enclave accepts the stored authorizations again, as after a crash); the
 * refused job then fails alone, and its DP's later jobs run alone (a DP can
 * cost the others one restart, not more). */
#define S_BATCH_MAX 16
#define SOLO_MAX 256
static pthread_mutex_t solo_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t solo_jobs[SOLO_MAX]; /* jobs to run alone (ring) */
static unsigned n_solo_jobs;
static char solo_dps[SOLO_MAX][65]; /* DPs whose jobs run alone (ring) */
static unsigned n_solo_dps;
static int batch_max = -1;

static int batch_size(void) {
  pthread_mutex_lock(&solo_lock);
  if (batch_max < 0) {
    const char *e = getenv("HETEE_SERVER_BATCH");
    long v = e ? strtol(e, NULL, 10) : 1; /* off unless asked: no gain measured on the 2-vCPU machine (docs/api.md) */
    batch_max = v < 1 ? 1 : v > S_BATCH_MAX ? S_BATCH_MAX : (int)v;
  }
  int b = batch_max;
  pthread_mutex_unlock(&solo_lock);
  return b;
}

static int solo(const st_job *j) {
  int yes = 0;
  pthread_mutex_lock(&solo_lock);
  for (unsigned i = 0; i < SOLO_MAX && i < n_solo_jobs; i++) yes |= solo_jobs[i] == j->id;
  for (unsigned i = 0; i < SOLO_MAX && i < n_solo_dps; i++) yes |= !strcmp(solo_dps[i], j->dp);
  pthread_mutex_unlock(&solo_lock);
  return yes;
}

static int solo_job(int64_t id) {
  int yes = 0;
  pthread_mutex_lock(&solo_lock);
  for (unsigned i = 0; i < SOLO_MAX && i < n_solo_jobs; i++) yes |= solo_jobs[i] == id;
  pthread_mutex_unlock(&solo_lock);
  return yes;
}

static void mark_solo_job(int64_t id) {
  pthread_mutex_lock(&solo_lock);
  solo_jobs[n_solo_jobs++ % SOLO_MAX] = id;
  pthread_mutex_unlock(&solo_lock);
}

static void mark_solo_dp(const char *dp) {
  pthread_mutex_lock(&solo_lock);
  snprintf(solo_dps[n_solo_dps++ % SOLO_MAX], 65, "%s", dp);
  pthread_mutex_unlock(&solo_lock);
}

/* Whether job x may join a batch (loaded). */
static int batchable(const jctx *x, uint32_t mb) {
  return x->witnessed && mb && x->j.count > 0 && x->j.count % mb == 0 && !solo(&x->j);
}

/* The engine's progress hook of a batch: the micro-batch tells the job
 * (its micro-batches are consecutive in the run), each job counts its own
 * steps. */
typedef struct {
  server *S;
  const jctx *xs;
  size_t n;
  size_t first[S_BATCH_MAX + 1]; /* first micro-batch of each job in the run */
  uint64_t done[S_BATCH_MAX];
} prog_batch;
static void batch_progress(void *ud, size_t mb, uint64_t done, uint64_t total) {
  (void)done, (void)total;
  prog_batch *p = ud;
  for (size_t i = 0; i < p->n; i++)
    if (mb >= p->first[i] && mb < p->first[i + 1]) {
      p->done[i]++;
      jobs_progress_set(p->S, p->xs[i].j.id, p->done[i], job_steps(&p->xs[i]));
      return;
    }
}

static void run_batch(server *S, jctx *xs, size_t n) {
  char why[300];
  int64_t model = xs[0].j.model;
  hetee_engine_model *em = xs[0].em;
  int ok[S_BATCH_MAX] = {0};
  char aw[S_BATCH_MAX][160];
  size_t ncts = 0, nw = 0;
  for (size_t i = 0; i < n; i++) {
    ncts += xs[i].in->ncts;
    nw += xs[i].wit.n;
  }
  struct hetee_engine_input all;
  memset(&all, 0, sizeof all);
  hetee_engine_witnesses w;
  memset(&w, 0, sizeof w);
  all.cts = calloc(ncts, sizeof *all.cts);
  w.batch = calloc(nw, sizeof *w.batch);
  w.blob = calloc(nw, sizeof *w.blob);
  w.len = calloc(nw, sizeof *w.len);
  w.digest = calloc(nw, sizeof *w.digest);
  hetee_engine_stats *stats = calloc(1, sizeof *stats);
  hetee_engine_results res;
  memset(&res, 0, sizeof res);
  static const uint8_t to_identity[16] = {0};
  int rc = all.cts && w.batch && w.blob && w.len && w.digest && stats ? 0 : hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (rc) snprintf(why, sizeof why, "no memory");
  int lost = 0, refused = 0, auth_failed = 0;
  size_t nok = 0;
  pthread_mutex_lock(&S->en.lock);
  sup_note_restarts(&S->en);
  unsigned before = S->en.restarts_seen;
  if (!rc && (rc = model_bind_locked(S, model, em, 0)))
    snprintf(why, sizeof why, "binding model %lld: %s: %s", (long long)model, hetee_strerror(rc), hetee_last_error());
  /* each job's authorization; a refused one fails alone */
  for (size_t i = 0; i < n && !rc; i++) {
    int arc = hetee_engine_job_authorize(S->en.e, xs[i].a);
    if (arc) {
      snprintf(aw[i], sizeof aw[i], "authorization: %s: %s", hetee_strerror(arc), hetee_last_error());
      auth_failed = 1;
      continue;
    }
    ok[i] = 1;
    nok++;
    memcpy(all.cts + all.ncts, xs[i].in->cts, xs[i].in->ncts * sizeof *all.cts);
    all.ncts += xs[i].in->ncts;
    all.count += xs[i].in->count;
    for (size_t k = 0; k < xs[i].wit.n; k++, w.n++) {
      w.batch[w.n] = xs[i].wit.batch[k];
      w.blob[w.n] = xs[i].wit.blob[k];
      w.len[w.n] = xs[i].wit.len[k];
      memcpy(w.digest[w.n], xs[i].wit.digest[k], 32);
    }
  }
  all.ctx = xs[0].in->ctx;
  all.micro_batch = xs[0].in->micro_batch;
  /* the jobs in the run (the authorized ones, in order) for the progress hook */
  prog_batch *pb = calloc(1, sizeof *pb);
  if (!rc && !pb) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    snprintf(why, sizeof why, "no memory");
  }
  if (pb) {
    pb->S = S;
    pb->xs = xs;
    for (size_t i = 0; i < n; i++) {
      pb->first[i + 1] = pb->first[i] + (ok[i] ? xs[i].wit.n : 0);
      if (ok[i]) jobs_progress_set(S, xs[i].j.id, 0, job_steps(&xs[i]));
    }
    pb->n = n;
  }
  hetee_engine_run_hooks hk = {batch_progress, pb, NULL, model_runner(S, model, em), runs_serial(S)};
  int ov = overlap();
  if (ov) {
    hk.enclave_lock = &S->en.lock;
    pthread_mutex_unlock(&S->en.lock);
  }
  if (!rc && nok && (rc = hetee_engine_run_hooked(S->en.e, em, &all, &w, (uint32_t)model, to_identity, S->threads, &hk,
                                                   &res, stats)))
    refused = 1;
  if (ov) pthread_mutex_lock(&S->en.lock);
  if (refused) {
    snprintf(why, sizeof why, "%s: %s", hetee_strerror(rc), hetee_last_error());
    refused = 1;
  }
  if (!rc && nok && res.n != all.count) {
    rc = hetee_error(HETEE_ERR_INTERNAL, "%zu results for %zu samples", res.n, all.count);
    snprintf(why, sizeof why, "%s", hetee_last_error());
  }
  if (rc || auth_failed) lost = enclave_lost_locked(S, before); /* as for one job: a dead enclave refuses */
  if (rc && !lost && refused && nok > 1) {
    /* the spent authorizations are accepted again only by a new enclave */
    fprintf(stderr, "hetee server: a batch of %zu jobs was refused (%s); restarting the enclave to run them alone\n",
            nok, why);
    if (S->en.info.pid > 0) kill(S->en.info.pid, SIGKILL);
    lost = enclave_lost_locked(S, before);
  }
  pthread_mutex_unlock(&S->en.lock);
  free(pb);
  free(all.cts);
  free(w.batch);
  free(w.blob);
  free(w.len);
  free(w.digest);
  if (!rc && nok > 1) metrics_batch(&S->m, nok);
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    jctx *x = &xs[i];
    if (lost && x->j.attempts < MAX_ATTEMPTS) {
      if (refused && nok > 1 && ok[i]) mark_solo_job(x->j.id);
      requeue(S, &x->j, refused && nok > 1 && ok[i] ? "a job batched with it was refused: queued again to run alone"
                                                    : "the enclave restarted during the run: queued again");
    } else if (!ok[i]) {
      job_failed(S, x->j.id, rc ? why : aw[i]);
    } else if (rc) {
      job_failed(S, x->j.id, why);
    } else {
      hetee_engine_results part = {.n = x->in->count, .sealed = res.sealed + off, .lens = res.lens + off};
      double f = (double)x->in->count / (double)all.count;
      job_finish(S, x, 0, NULL, &part, f * stats->total_s, f * stats->enclave_s);
      off += x->in->count;
    }
    job_unload(S, x);
  }
  if (lost) jobs_kick(S);
  hetee_engine_results_clear(&res);
  free(stats);
}

/* Job j (taken) and, when it can be batched, more queued jobs of its model
 * taken with it: loaded, then run as one batch and the others alone. */
static void run_job(server *S, st_job *j) {
  jctx xs[S_BATCH_MAX];
  memset(xs, 0, sizeof xs);
  xs[0].j = *j;
  if (job_load(S, &xs[0])) return;
  uint32_t mb = hetee_engine_plan_micro_batch(hetee_engine_model_plan(xs[0].em));
  int budgeted = 1;
  size_t n = 1;
  int bmax = batch_size();
  if (bmax > 1 && batchable(&xs[0], mb) && !store_model_budgeted(S->db, j->model, &budgeted) && !budgeted) {
    st_job more[S_BATCH_MAX];
    size_t got = 0;
    if (!store_job_take_batch(S->db, j->model, mb, (size_t)bmax - 1, more, &got))
      for (size_t i = 0; i < got; i++) {
        xs[n].j = more[i];
        if (!job_load(S, &xs[n])) n++;
      }
  }
  /* the batchable ones together, the others alone */
  jctx *rest[S_BATCH_MAX];
  size_t nb = 0, nr = 0;
  for (size_t i = 0; i < n; i++) {
    if (n > 1 && batchable(&xs[i], mb)) {
      if (nb != i) xs[nb] = xs[i];
      nb++;
    } else {
      rest[nr] = malloc(sizeof **rest);
      if (rest[nr]) {
        *rest[nr++] = xs[i];
      } else { /* no room to keep it for later: now */
        run_one(S, &xs[i]);
        job_unload(S, &xs[i]);
      }
    }
  }
  if (nb > 1) {
    run_batch(S, xs, nb);
  } else if (nb == 1) {
    run_one(S, &xs[0]);
    job_unload(S, &xs[0]);
  }
  for (size_t i = 0; i < nr; i++) {
    run_one(S, rest[i]);
    job_unload(S, rest[i]);
    free(rest[i]);
  }
}

/* Called after job id's final state is in the store (the order matters:
 * a waiter that took the sequence number before reading the store either
 * read the final state or finds the id in the ring). */
void jobs_finished(server *S, int64_t id) {
  pthread_mutex_lock(&S->wlock);
  S->fin_ring[S->fin_seq % (sizeof S->fin_ring / sizeof S->fin_ring[0])] = id;
  S->fin_seq++;
  for (struct job_waiter *w = S->waiters; w; w = w->next)
    if (w->id == id) pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&S->wlock);
}

void jobs_wake_all_locked(server *S) {
  for (struct job_waiter *w = S->waiters; w; w = w->next) pthread_cond_signal(&w->cv);
}

uint64_t jobs_finished_seq(server *S) {
  pthread_mutex_lock(&S->wlock);
  uint64_t s = S->fin_seq;
  pthread_mutex_unlock(&S->wlock);
  return s;
}

void jobs_progress_set(server *S, int64_t id, uint64_t done, uint64_t total) {
  if (id <= 0) return;
  pthread_mutex_lock(&S->wlock);
  struct job_prog *p = &S->prog[(uint64_t)id % SRV_PROG_RING];
  if (p->id != id) {
    p->id = id;
    p->done = 0;
  }
  int changed = p->total != total || done > p->done;
  p->total = total;
  if (done > p->done) p->done = done;
  if (p->done > p->total) p->done = p->total;
  if (changed)
    for (struct job_waiter *w = S->waiters; w; w = w->next)
      if (w->id == id && w->prog) pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&S->wlock);
}

int jobs_progress_get_locked(server *S, int64_t id, uint64_t *done, uint64_t *total) {
  const struct job_prog *p = &S->prog[(uint64_t)(id > 0 ? id : 0) % SRV_PROG_RING];
  if (id <= 0 || p->id != id) return -1;
  *done = p->done;
  *total = p->total;
  return 0;
}

int jobs_progress_get(server *S, int64_t id, uint64_t *done, uint64_t *total) {
  pthread_mutex_lock(&S->wlock);
  int rc = jobs_progress_get_locked(S, id, done, total);
  pthread_mutex_unlock(&S->wlock);
  return rc;
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
  const char *ov = getenv("HETEE_SERVER_OVERLAP");
  overlap_on = !(ov && !strcmp(ov, "0"));
  const char *ho = getenv("HETEE_SERVER_HANDOFF");
  handoff_on = !(ho && !strcmp(ho, "0"));
  const char *ru = getenv("HETEE_SERVER_RUNNER");
  runner_on = !(ru && !strcmp(ru, "0"));
  const char *fe = getenv("HETEE_SERVER_FINISHER");
  fin_on = !(fe && !strcmp(fe, "0"));
  pthread_mutex_lock(&fin.mu);
  fin.stop = 0;
  fin.n = 0;
  fin.started = fin_on && pthread_create(&fin.tid, NULL, fin_main, S) == 0;
  pthread_mutex_unlock(&fin.mu);
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
  /* the finisher stores what the workers handed it, then ends */
  pthread_mutex_lock(&fin.mu);
  int had = fin.started;
  fin.stop = 1;
  pthread_cond_broadcast(&fin.cv);
  pthread_mutex_unlock(&fin.mu);
  if (had) pthread_join(fin.tid, NULL);
  pthread_mutex_lock(&fin.mu);
  fin.started = 0;
  pthread_mutex_unlock(&fin.mu);
  handoff_clear();
  free(S->workers);
  S->workers = NULL;
  pthread_cond_destroy(&S->qcond);
  pthread_mutex_destroy(&S->qlock);
}

/* ---- deletion and retention --------------------------------------------- */

const char *const srv_job_ext[SRV_JOB_EXTS] = {"htei", "res", "htwt", "auth"};

void jobs_unlink_files(const server *S, int64_t id) {
  char p[SRV_PATH_MAX];
  for (size_t k = 0; k < SRV_JOB_EXTS; k++) {
    blob_path(S, p, "jobs", id, srv_job_ext[k]);
    (void)unlink(p); /* absent ones (a failed job has no results) are fine */
  }
}

int jobs_delete_finished(server *S, int64_t id, int *deleted) {
  int rc = store_job_delete(S->db, id, deleted);
  if (rc || !*deleted) return rc;
  jobs_unlink_files(S, id);
  char p[SRV_PATH_MAX];
  blob_path(S, p, "jobs", id, srv_job_ext[0]);
  (void)blob_sync_dir(p);
  return 0;
}

/* Every min(ttl / 4, 60) s (at least 1 s): the jobs finished ttl or more
 * seconds ago are deleted, oldest first, 256 per query until none is
 * left. A store error waits for the next round. */
static void *ttl_main(void *arg) {
  server *S = arg;
  const uint64_t ttl = S->o.job_ttl_s;
  uint64_t period = ttl / 4;
  if (period < 1) period = 1;
  if (period > 60) period = 60;
  pthread_mutex_lock(&S->ttl_mu);
  while (!S->ttl_stop) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)period;
    while (!S->ttl_stop && pthread_cond_timedwait(&S->ttl_cv, &S->ttl_mu, &until) != ETIMEDOUT) {
    }
    if (S->ttl_stop) break;
    pthread_mutex_unlock(&S->ttl_mu);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t before = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - (int64_t)ttl * 1000;
    int64_t ids[256];
    size_t n = 0;
    do {
      if (store_jobs_expired(S->db, before, ids, sizeof ids / sizeof ids[0], &n)) break;
      for (size_t i = 0; i < n; i++) {
        int deleted = 0;
        (void)jobs_delete_finished(S, ids[i], &deleted);
      }
    } while (n == sizeof ids / sizeof ids[0]);
    pthread_mutex_lock(&S->ttl_mu);
  }
  pthread_mutex_unlock(&S->ttl_mu);
  return NULL;
}

int jobs_retention_start(server *S) {
  pthread_mutex_init(&S->ttl_mu, NULL);
  pthread_cond_init(&S->ttl_cv, NULL);
  S->ttl_stop = 0;
  S->ttl_started = 0;
  if (!S->o.job_ttl_s) return 0;
  if (pthread_create(&S->ttl_tid, NULL, ttl_main, S) != 0)
    return hetee_error(HETEE_ERR_INTERNAL, "cannot start the retention thread");
  S->ttl_started = 1;
  return 0;
}

void jobs_retention_stop(server *S) {
  pthread_mutex_lock(&S->ttl_mu);
  S->ttl_stop = 1;
  pthread_cond_broadcast(&S->ttl_cv);
  pthread_mutex_unlock(&S->ttl_mu);
  if (S->ttl_started) pthread_join(S->ttl_tid, NULL);
  S->ttl_started = 0;
  pthread_cond_destroy(&S->ttl_cv);
  pthread_mutex_destroy(&S->ttl_mu);
}

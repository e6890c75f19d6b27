/*
 * refine_worker.c — the background refine worker of `hetee server`: one
 * thread that trains every live refine job on the batches its data
 * providers submitted, in order, as they arrive.
 *
 * Data order. Continuous jobs (epochs 0) use each acknowledged batch once,
 * in submission order. Epoch jobs (epochs E, epoch_samples N) take batches
 * until N samples are acknowledged; epoch 0 runs in submission order as
 * they arrive, epochs 1.. in the permutation hetee_refine_order(seed,
 * epoch, batches) of the same batches. One batch is one SGD step (at most
 * B samples); the update pass runs every `accumulate` steps and at the end
 * of an epoch (partial accumulation flushed).
 *
 * Exactly once. The state's cursor (epoch, next sample position in the
 * epoch's order) lives in the checkpoint DIR/refine/ID.ckpt, written
 * atomically with the enclave's sealed job state after an update
 * (hetee_refine_checkpoint_write_sealed; only possible between updates):
 * when the work since the last one took CKPT_RATIO times that checkpoint's
 * time, at an epoch's end, at a stop and when the worker waits for data. Before each checkpoint the batches it covers
 * are recorded in refine_used (job, epoch, position, batch; the primary key
 * forbids a second use of a batch in one epoch); at resume the records
 * beyond the checkpoint's cursor are deleted (rstore_reconcile), and
 * training restarts at that cursor: steps whose gradient was pending when
 * the process died are recomputed, none is applied twice.
 *
 * The enclave. Each step holds the supervised enclave's lock (the handle is
 * not thread-safe); between steps the lock is released and, when inference
 * jobs are queued, the worker sleeps briefly so that an inference worker
 * takes the lock (pthread mutexes are not fair). A checkpoint holds it for
 * the enclave's REFINE_SAVE only: the frozen layers' file and the
 * checkpoint file are written without it (sealed_checkpoint). The enclave's side of a
 * job (its kept weights, the MP's session) does not survive an enclave
 * restart: a job whose enclave restarted goes to state needs_auth, its
 * host state reloaded from the last checkpoint, until the MP authorizes a
 * new enclave job for that checkpoint (POST /v1/refine/ID/resume).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hetee/common.h"

static double mono_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
#include "service/refine_internal.h"

typedef struct rjob {
  int64_t id, model;
  pthread_mutex_t jl; /* held by the worker during a step, by fetch / resume */
  hetee_refine_plan plan;
  hetee_refine_state *st;
  hetee_refine_trusted *t; /* NULL: the enclave does not hold the job (needs_auth) */
  unsigned en_restarts;    /* S->en.restarts_seen when t was opened */
  int64_t epochs, epoch_samples, updates;
  int stop_req, finished;
  int closable;                  /* finished done or stopped: its last sealed checkpoint holds everything it did */
  int have_last;                 /* last: the enclave's counts when the job was closed (release) */
  hetee_refine_job_status last;
  double t_load, t_step, t_ckpt; /* this process's seconds: batch loads, steps (enclave lock held), checkpoints */
  double t_ckpt_locked;           /* the checkpoints' seconds under the enclave lock */
  double ckpt_end, ckpt_dur;      /* when the last checkpoint ended, how long it took */
  uint64_t n_steps;
  /* steps since the last checkpoint: batch ids and their positions */
  int64_t *pb;
  uint32_t *pp;
  size_t np, capp;
  struct rjob *next;
} rjob;

typedef struct rworker {
  pthread_t th;
  int started;
  pthread_mutex_t lock; /* the list, the wake-up */
  pthread_cond_t cond;
  int stopping, kicked;
  rjob *jobs;
} rworker;

static void ckpt_path(server *S, int64_t id, char out[SRV_PATH_MAX]) { blob_path(S, out, "refine", id, "ckpt"); }

static rjob *find(rworker *w, int64_t id) {
  pthread_mutex_lock(&w->lock);
  rjob *j = w->jobs;
  while (j && j->id != id) j = j->next;
  pthread_mutex_unlock(&w->lock);
  return j;
}

static rjob *find_or_add(rworker *w, int64_t id) {
  pthread_mutex_lock(&w->lock);
  rjob *j = w->jobs;
  while (j && j->id != id) j = j->next;
  if (!j && (j = calloc(1, sizeof *j)) != NULL) {
    j->id = id;
    pthread_mutex_init(&j->jl, NULL);
    j->next = w->jobs;
    w->jobs = j;
  }
  pthread_mutex_unlock(&w->lock);
  return j;
}

static int spec_plan(server *S, int64_t id, st_refine *row, hetee_refine_plan *p) {
  uint8_t *spec = NULL;
  size_t sl = 0;
  int rc = rstore_job_get(S->db, id, row, &spec, &sl);
  if (!rc) rc = hetee_refine_spec_decode(spec, sl, p);
  free(spec);
  return rc;
}

/* Host state from the job's checkpoint; the store reconciled with its cursor. */
static int reload(server *S, rjob *j) {
  char path[SRV_PATH_MAX];
  ckpt_path(S, j->id, path);
  hetee_refine_state *st = NULL;
  int rc = hetee_refine_checkpoint_read(S->en.ctx, &j->plan, path, &st);
  if (rc) return rc;
  hetee_refine_state_free(j->st);
  j->st = st;
  j->np = 0;
  uint32_t e = 0, next = 0;
  uint64_t steps = 0;
  hetee_refine_state_cursor(st, &e, &next, &steps);
  st_refine row;
  rc = rstore_job_get(S->db, j->id, &row, NULL, NULL);
  /* updates up to the checkpoint: the store's count was written with it or
   * later (rows first, then the checkpoint) */
  if (!rc) j->updates = row.updates;
  if (!rc) rc = rstore_reconcile(S->db, j->id, e, next, (int64_t)steps, j->updates);
  return rc;
}

/* Reopens the job in the (new) enclave from its sealed checkpoint
 * (hetee_host_refine_resume: the enclave unseals its own state of the job,
 * re-issues the trained layers' ciphertexts and checks the host's cursor
 * against what it applied). 0: running again. */
static int try_resume_(server *S, rjob *j, int keep_state);
static int try_resume(server *S, rjob *j) { return try_resume_(S, j, 0); }
static int try_resume_(server *S, rjob *j, int keep_state) {
  char path[SRV_PATH_MAX];
  ckpt_path(S, j->id, path);
  hetee_refine_state *st = NULL;
  hetee_refine_trusted *t = NULL;
  pthread_mutex_lock(&S->en.lock);
  sup_note_restarts(&S->en);
  unsigned restarts = S->en.restarts_seen;
  int rc = hetee_host_refine_resume(S->en.e, S->en.ctx, &j->plan, path, &st, &t);
  sup_note_restarts(&S->en);
  if (!rc && S->en.restarts_seen != restarts) {
    hetee_refine_trusted_free(t);
    hetee_refine_state_free(st);
    rc = hetee_error(HETEE_ERR_IO, "the enclave restarted while resuming");
  }
  pthread_mutex_unlock(&S->en.lock);
  if (rc) return rc;
  hetee_refine_state_free(j->st);
  j->st = st;
  j->t = t;
  j->en_restarts = restarts;
  j->np = 0;
  uint32_t e = 0, next = 0;
  uint64_t steps = 0;
  hetee_refine_state_cursor(st, &e, &next, &steps);
  st_refine row;
  rc = rstore_job_get(S->db, j->id, &row, NULL, NULL);
  if (!rc) j->updates = row.updates;
  if (!rc) rc = rstore_reconcile(S->db, j->id, e, next, (int64_t)steps, j->updates);
  if (!rc && !keep_state) rc = rstore_job_set_state(S->db, j->id, "running", NULL);
  if (!rc) fprintf(stderr, "hetee server: refine job %lld resumed in the enclave from its sealed checkpoint (epoch %u, sample %u)\n",
                   (long long)j->id, e, next);
  return rc;
}

/* The enclave's side of the job is gone (a restart): resumed from the
 * sealed checkpoint, or (a checkpoint without the enclave's sealed state:
 * the MP's initial one) back to it until the MP authorizes a resume. */
static void lost(server *S, rjob *j) {
  /* its CLOSE names a job id of the dead enclave (ids start at random: it
   * names no job of the new one) */
  pthread_mutex_lock(&S->en.lock);
  hetee_refine_trusted_free(j->t);
  pthread_mutex_unlock(&S->en.lock);
  j->t = NULL;
  if (!try_resume(S, j)) return;
  fprintf(stderr, "hetee server: refine job %lld: no resume from a sealed checkpoint: %s\n", (long long)j->id,
          hetee_last_error());
  int rc = reload(S, j);
  if (rc) {
    char why[300];
    snprintf(why, sizeof why, "reloading the checkpoint: %s", hetee_last_error());
    (void)rstore_job_set_state(S->db, j->id, "failed", why);
    j->finished = 1;
    return;
  }
  (void)rstore_job_set_state(S->db, j->id, "needs_auth",
                             "the enclave restarted: the model provider authorizes a resume from the last checkpoint");
  fprintf(stderr, "hetee server: refine job %lld: the enclave restarted; waiting for the model provider's resume\n",
          (long long)j->id);
}

static int pend_add(rjob *j, int64_t batch, uint32_t pos) {
  if (j->np == j->capp) {
    size_t cap = j->capp ? 2 * j->capp : 16;
    int64_t *a = realloc(j->pb, cap * sizeof *a);
    if (a) j->pb = a;
    uint32_t *b = a ? realloc(j->pp, cap * sizeof *b) : NULL;
    if (b) j->pp = b;
    if (!a || !b) return hetee_error(HETEE_ERR_NOMEM, "no memory");
    j->capp = cap;
  }
  j->pb[j->np] = batch;
  j->pp[j->np] = pos;
  j->np++;
  return 0;
}

/* Records the steps since the last checkpoint, then writes the checkpoint
 * (no pending gradient). */
static int checkpoint_(server *S, rjob *j);
static void validate(server *S, rjob *j, uint32_t e);
static int checkpoint(server *S, rjob *j) {
  double t0 = mono_s();
  int rc = checkpoint_(S, j);
  j->ckpt_end = mono_s();
  j->ckpt_dur = j->ckpt_end - t0;
  j->t_ckpt += j->ckpt_dur;
  return rc;
}

/* After an update: a checkpoint once the work since the last one took at
 * least CKPT_RATIO times as long as that checkpoint (it holds the whole
 * encrypted state, frozen layers included: 212 MB for mlp_small), so
 * checkpoints cost at most about 1 / (1 + CKPT_RATIO) of the time; the
 * epoch's end, a stop and an idle worker always write one. */
#define CKPT_RATIO 4.0
static int checkpoint_due(const rjob *j) { return mono_s() - j->ckpt_end >= CKPT_RATIO * j->ckpt_dur; }

/* The sealed checkpoint of j at path with the enclave lock held for the
 * enclave's part only (REFINE_SAVE): the frozen layers' file (210 MB for
 * mlp_small, once per job) and the checkpoint file are written outside it,
 * the frozen file first (a checkpoint names only a durable frozen file).
 * *locked += the seconds the lock was held. */
static int sealed_checkpoint(server *S, rjob *j, hetee_refine_trusted *t, const char *path, double *locked) {
  int rc = hetee_refine_checkpoint_write_frozen(j->st, path);
  uint8_t uid[16], *blob = NULL;
  size_t blen = 0;
  if (!rc) {
    pthread_mutex_lock(&S->en.lock);
    double tl = mono_s();
    sup_note_restarts(&S->en);
    if (S->en.restarts_seen != j->en_restarts) rc = hetee_error(HETEE_ERR_IO, "the enclave restarted");
    else rc = hetee_host_refine_save(t, j->st, uid, &blob, &blen);
    *locked += mono_s() - tl;
    pthread_mutex_unlock(&S->en.lock);
  }
  /* the enclave's sealed side of the job in the same file (one rename) */
  if (!rc) rc = hetee_refine_checkpoint_write_job(j->st, path, uid, blob, blen);
  free(blob);
  return rc;
}

static int checkpoint_(server *S, rjob *j) {
  uint32_t e = 0, next = 0;
  uint64_t steps = 0;
  hetee_refine_state_cursor(j->st, &e, &next, &steps);
  int64_t samples = 0, nb = 0;
  st_refine row;
  int rc = rstore_job_get(S->db, j->id, &row, NULL, NULL);
  if (!rc) samples = row.samples;
  int64_t *ids = NULL;
  uint32_t *cnt = NULL;
  size_t n = 0;
  if (!rc) rc = rstore_batches(S->db, j->id, &ids, &cnt, &n);
  for (size_t i = 0; i < j->np && !rc; i++)
    for (size_t k = 0; k < n; k++)
      if (ids[k] == j->pb[i]) samples += cnt[k], nb++;
  free(ids);
  free(cnt);
  /* the epoch of the rows: the batches were used in the epoch the steps ran
   * in (an epoch end moves the cursor only after its checkpoint) */
  int64_t used_epoch = j->np ? (int64_t)e : 0;
  /* the rows first (a crash before the checkpoint leaves rows beyond its
   * cursor, which the resume deletes), the counters after it */
  if (!rc && j->np) rc = rstore_progress(S->db, j->id, used_epoch, j->pb, j->pp, j->np, -1, 0, 0);
  char path[SRV_PATH_MAX];
  ckpt_path(S, j->id, path);
  if (!rc) rc = sealed_checkpoint(S, j, j->t, path, &j->t_ckpt_locked);
  if (!rc) rc = rstore_progress(S->db, j->id, (int64_t)e, NULL, NULL, 0, (int64_t)steps, j->updates, samples);
  if (!rc) j->np = 0;
  (void)nb;
  return rc;
}

static int enclave_gone(server *S, rjob *j) {
  pthread_mutex_lock(&S->en.lock);
  sup_note_restarts(&S->en);
  int gone = S->en.restarts_seen != j->en_restarts;
  pthread_mutex_unlock(&S->en.lock);
  return gone;
}

static void fail(server *S, rjob *j, const char *what) {
  if (j->t && enclave_gone(S, j)) { /* not the job's fault: the enclave restarted under it */
    lost(S, j);
    return;
  }
  char why[300];
  snprintf(why, sizeof why, "%s: %s", what, hetee_last_error());
  (void)rstore_job_set_state(S->db, j->id, "failed", why);
  j->finished = 1;
  fprintf(stderr, "hetee server: refine job %lld failed: %s\n", (long long)j->id, why);
}

/* A job that finished done or stopped gives its slot in the enclave back
 * (at most HETEE_REFINE_MAX_JOBS open jobs): its last sealed checkpoint
 * holds all it did, the enclave's counts are kept for the status, and a
 * fetch reopens it from that checkpoint (try_resume_) and closes it again. */
static void release(server *S, rjob *j) {
  if (!j->t || !j->closable) return;
  pthread_mutex_lock(&S->en.lock);
  sup_note_restarts(&S->en);
  if (S->en.restarts_seen == j->en_restarts && !hetee_host_refine_status(j->t, &j->last)) j->have_last = 1;
  hetee_refine_trusted_free(j->t); /* REFINE_CLOSE */
  pthread_mutex_unlock(&S->en.lock);
  j->t = NULL;
}

/* Runs fn under the enclave lock unless the enclave restarted since the job
 * was opened (then *was_lost). */
static int flush_locked(server *S, rjob *j, int *was_lost) {
  pthread_mutex_lock(&S->en.lock);
  sup_note_restarts(&S->en);
  int rc = 0;
  if (S->en.restarts_seen != j->en_restarts) {
    *was_lost = 1;
  } else {
    rc = hetee_refine_flush(j->st, j->t, S->threads, NULL);
    if (rc) {
      hetee_host_info info;
      if (hetee_host_info_get(S->en.e, &info)) { /* a dead enclave is restarted by this call */ }
      sup_note_restarts(&S->en);
      if (S->en.restarts_seen != j->en_restarts) *was_lost = 1;
    }
  }
  pthread_mutex_unlock(&S->en.lock);
  return rc;
}

/* One unit of work on job j (jl held): a step, an epoch end, a stop.
 * Returns 1 if something was done. */
static int work(server *S, rjob *j) {
  if (j->finished || !j->t) return 0;
  int was_lost = 0, rc = 0;
  if (j->stop_req) {
    if (hetee_refine_pending_steps(j->st) > 0) {
      rc = flush_locked(S, j, &was_lost);
      if (!rc) j->updates++;
    }
    if (was_lost) {
      lost(S, j);
      return 1;
    }
    if (!rc) rc = checkpoint(S, j);
    if (rc) fail(S, j, "stopping");
    else (void)rstore_job_set_state(S->db, j->id, "stopped", NULL);
    j->finished = 1;
    j->closable = !rc;
    release(S, j);
    return 1;
  }
  uint32_t e = 0, next = 0;
  hetee_refine_state_cursor(j->st, &e, &next, NULL);
  if (j->epochs > 0 && e >= j->epochs) { /* the checkpoint at (epochs, 0) is written */
    (void)rstore_job_set_state(S->db, j->id, "done", NULL);
    j->finished = 1;
    j->closable = 1;
    release(S, j);
    return 1;
  }
  int64_t *ids = NULL;
  uint32_t *cnt = NULL;
  size_t n = 0;
  rc = rstore_batches(S->db, j->id, &ids, &cnt, &n);
  if (rc) return 0;
  uint32_t *perm = NULL;
  if (j->epochs > 0 && e > 0 && n) {
    perm = malloc(n * sizeof *perm);
    if (!perm) {
      free(ids);
      free(cnt);
      return 0;
    }
    hetee_refine_order(j->plan.cfg.seed, e, (uint32_t)n, perm);
  }
  size_t i = 0;
  uint64_t pos = 0;
  while (i < n && pos < next) pos += cnt[perm ? perm[i++] : i++];
  int did = 0;
  if (pos != next) {
    rc = hetee_error(HETEE_ERR_STATE, "the checkpoint's cursor (%u) is not at a batch boundary", next);
    fail(S, j, "data order");
    did = 1;
  } else if (i == n) {
    /* no more data: the end of an epoch, or wait */
    if (j->epochs > 0 && (int64_t)next >= j->epoch_samples) {
      if (hetee_refine_pending_steps(j->st) > 0) {
        rc = flush_locked(S, j, &was_lost);
        if (!rc) j->updates++;
      }
      if (!rc && !was_lost) rc = checkpoint(S, j); /* the epoch's last batches, in epoch e */
      if (!rc && !was_lost) {
        hetee_refine_state_set_cursor(j->st, e + 1, 0);
        rc = checkpoint(S, j);
        if (!rc) validate(S, j, e);
        if (!rc)
          fprintf(stderr,
                  "hetee server: refine job %lld: epoch %u done (this process: %llu steps, %.3f s loading batches, "
                  "%.3f s in steps, %.3f s in checkpoints, %.3f s of them under the enclave lock)\n",
                  (long long)j->id, e, (unsigned long long)j->n_steps, j->t_load, j->t_step, j->t_ckpt,
                  j->t_ckpt_locked);
      }
      if (was_lost) lost(S, j);
      else if (rc) fail(S, j, "end of epoch");
      did = 1;
    } else if (j->np && hetee_refine_pending_steps(j->st) == 0) {
      /* waiting for data: what the updates applied becomes durable now */
      rc = checkpoint(S, j);
      if (rc) fail(S, j, "checkpoint");
      did = 1;
    }
  } else {
    size_t bi = perm ? perm[i] : i;
    char path[SRV_PATH_MAX];
    blob_path(S, path, "refine", ids[bi], "htrb");
    uint8_t *buf = NULL;
    size_t len = 0;
    hetee_refine_batch *b = NULL;
    double t0 = mono_s();
    rc = blob_read(path, S->o.max_input_bytes, &buf, &len);
    if (!rc) rc = hetee_refine_batch_load(S->en.ctx, &j->plan, buf, len, &b);
    free(buf);
    double t1 = mono_s();
    j->t_load += t1 - t0;
    if (rc) {
      fail(S, j, "loading a batch");
    } else {
      int before = hetee_refine_pending_steps(j->st);
      pthread_mutex_lock(&S->en.lock);
      sup_note_restarts(&S->en);
      if (S->en.restarts_seen != j->en_restarts) {
        was_lost = 1;
      } else {
        rc = hetee_refine_step(j->st, j->t, b, S->threads, NULL);
        if (rc) {
          hetee_host_info info;
          if (hetee_host_info_get(S->en.e, &info)) { /* a dead enclave is restarted by this call */ }
          sup_note_restarts(&S->en);
          if (S->en.restarts_seen != j->en_restarts) was_lost = 1;
        }
      }
      pthread_mutex_unlock(&S->en.lock);
      j->t_step += mono_s() - t1;
      j->n_steps++;
      hetee_refine_batch_free(b);
      if (was_lost) {
        lost(S, j);
      } else if (rc) {
        fail(S, j, "step");
      } else {
        rc = pend_add(j, ids[bi], next);
        int after = hetee_refine_pending_steps(j->st);
        if (!rc && after == 0 && before + 1 >= (int)j->plan.cfg.accumulate) {
          j->updates++;
          if (checkpoint_due(j)) rc = checkpoint(S, j);
        }
        if (rc) fail(S, j, "checkpoint");
      }
    }
    did = 1;
  }
  free(perm);
  free(ids);
  free(cnt);
  return did;
}

/* After epoch e's checkpoint: the enclave's loss and accuracy on the MP's
 * validation set (DIR/refine/ID.htrv, when there is one), sealed to the
 * MP, stored as DIR/refine/ID.val<e>. A failure is logged; training goes on. */
static void validate(server *S, rjob *j, uint32_t e) {
  char path[SRV_PATH_MAX];
  blob_path(S, path, "refine", j->id, "htrv");
  uint8_t *buf = NULL, *sealed = NULL;
  size_t len = 0, sl = 0;
  int rc = blob_read(path, S->o.max_input_bytes, &buf, &len);
  if (rc == HETEE_ERR_NOT_FOUND) return;
  hetee_refine_valset *vs = NULL;
  if (!rc) rc = hetee_refine_valset_load(S->en.ctx, &j->plan, buf, len, &vs);
  free(buf);
  if (!rc) {
    pthread_mutex_lock(&S->en.lock);
    sup_note_restarts(&S->en);
    if (S->en.restarts_seen != j->en_restarts) rc = hetee_error(HETEE_ERR_IO, "the enclave restarted");
    else rc = hetee_refine_validate(j->st, j->t, vs, S->threads, &sealed, &sl);
    pthread_mutex_unlock(&S->en.lock);
  }
  hetee_refine_valset_free(vs);
  char ext[32];
  snprintf(ext, sizeof ext, "val%u", e);
  blob_path(S, path, "refine", j->id, ext);
  if (!rc) rc = blob_write(S->data_dir, path, sealed, sl);
  free(sealed);
  if (rc)
    fprintf(stderr, "hetee server: refine job %lld: no validation report for epoch %u: %s\n", (long long)j->id, e,
            hetee_last_error());
}

static int inference_waiting(server *S) {
  int64_t q = 0, r = 0;
  return !store_job_counts(S->db, &q, &r) && q > 0;
}

static void *loop(void *arg) {
  server *S = arg;
  rworker *w = S->refine;
  for (;;) {
    pthread_mutex_lock(&w->lock);
    int stop = w->stopping;
    rjob *head = w->jobs;
    pthread_mutex_unlock(&w->lock);
    if (stop) return NULL;
    int did = 0;
    for (rjob *j = head; j; j = j->next) {
      pthread_mutex_lock(&j->jl);
      /* a restart noticed while idle (the server's INFO poll) */
      if (j->t && !j->finished) {
        pthread_mutex_lock(&S->en.lock);
        sup_note_restarts(&S->en);
        int gone = S->en.restarts_seen != j->en_restarts;
        pthread_mutex_unlock(&S->en.lock);
        if (gone) lost(S, j);
      }
      did |= work(S, j);
      pthread_mutex_unlock(&j->jl);
      pthread_mutex_lock(&w->lock);
      stop = w->stopping;
      pthread_mutex_unlock(&w->lock);
      if (stop) return NULL;
    }
    if (did) {
      if (inference_waiting(S)) usleep(20 * 1000); /* let an inference worker take the enclave */
      continue;
    }
    pthread_mutex_lock(&w->lock);
    if (!w->kicked && !w->stopping) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += 1;
      pthread_cond_timedwait(&w->cond, &w->lock, &ts);
    }
    w->kicked = 0;
    pthread_mutex_unlock(&w->lock);
  }
}

void refine_worker_kick(server *S) {
  rworker *w = S->refine;
  if (!w) return;
  pthread_mutex_lock(&w->lock);
  w->kicked = 1;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

int refine_worker_start(server *S) {
  rworker *w = calloc(1, sizeof *w);
  if (!w) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->cond, NULL);
  S->refine = w;
  /* jobs live at the last stop: their enclave side is gone with the old
   * enclave process; reload their checkpoints and wait for the MP's resume */
  int64_t *ids = NULL;
  size_t n = 0;
  int rc = rstore_jobs_live(S->db, &ids, &n);
  for (size_t i = 0; i < n && !rc; i++) {
    rjob *j = find_or_add(w, ids[i]);
    if (!j) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      break;
    }
    st_refine row;
    int r2 = spec_plan(S, ids[i], &row, &j->plan);
    j->model = row.model;
    j->epochs = row.epochs;
    j->epoch_samples = row.epoch_samples;
    if (!r2 && !try_resume(S, j)) continue;
    if (!r2) r2 = reload(S, j);
    if (r2) {
      char why[300];
      snprintf(why, sizeof why, "at restart: %s", hetee_last_error());
      (void)rstore_job_set_state(S->db, ids[i], "failed", why);
      j->finished = 1;
    } else {
      (void)rstore_job_set_state(S->db, ids[i], "needs_auth",
                                 "the server restarted: the model provider authorizes a resume from the last checkpoint");
    }
  }
  free(ids);
  if (rc) return rc;
  if (pthread_create(&w->th, NULL, loop, S) != 0) return hetee_error(HETEE_ERR_INTERNAL, "cannot start the refine worker");
  w->started = 1;
  return 0;
}

void refine_worker_stop(server *S) {
  rworker *w = S->refine;
  if (!w) return;
  pthread_mutex_lock(&w->lock);
  w->stopping = 1;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->lock);
  if (w->started) pthread_join(w->th, NULL);
  while (w->jobs) {
    rjob *j = w->jobs;
    w->jobs = j->next;
    pthread_mutex_lock(&S->en.lock);
    hetee_refine_trusted_free(j->t); /* closes the enclave job */
    pthread_mutex_unlock(&S->en.lock);
    hetee_refine_state_free(j->st);
    free(j->pb);
    free(j->pp);
    pthread_mutex_destroy(&j->jl);
    free(j);
  }
  pthread_cond_destroy(&w->cond);
  pthread_mutex_destroy(&w->lock);
  free(w);
  S->refine = NULL;
}

int refine_live_open(server *S, int64_t id, const hetee_refine_plan *p, const char *ckpt, const uint8_t sid[16],
                     const uint8_t *auth, size_t alen, int resume) {
  rworker *w = S->refine;
  rjob *j = find_or_add(w, id);
  if (!j) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  st_refine row;
  int rc = rstore_job_get(S->db, id, &row, NULL, NULL);
  if (rc) return rc;
  pthread_mutex_lock(&j->jl);
  if (resume && j->t) {
    pthread_mutex_unlock(&j->jl);
    return hetee_error(HETEE_ERR_STATE, "refine job %lld is held by the enclave already", (long long)id);
  }
  hetee_refine_state *st = NULL;
  j->plan = *p;
  j->model = row.model;
  j->epochs = row.epochs;
  j->epoch_samples = row.epoch_samples;
  if (resume) {
    rc = reload(S, j); /* the checkpoint the MP authorized (it read the same file) */
  } else {
    rc = hetee_refine_checkpoint_read(S->en.ctx, p, ckpt, &st);
    if (!rc) {
      hetee_refine_state_free(j->st);
      j->st = st;
      j->np = 0;
      j->updates = 0;
    }
  }
  hetee_refine_trusted *t = NULL;
  if (!rc) {
    pthread_mutex_lock(&S->en.lock);
    sup_note_restarts(&S->en);
    unsigned restarts = S->en.restarts_seen;
    rc = hetee_host_refine_open(S->en.e, S->en.ctx, p, (uint32_t)row.model, sid, auth, alen, &t);
    sup_note_restarts(&S->en);
    if (!rc && S->en.restarts_seen != restarts) {
      hetee_refine_trusted_free(t);
      t = NULL;
      rc = hetee_error(HETEE_ERR_IO, "the enclave restarted while opening the job");
    }
    pthread_mutex_unlock(&S->en.lock);
    if (!rc) {
      j->t = t;
      j->en_restarts = restarts;
      j->finished = 0;
      j->stop_req = 0;
      if (!resume) {
        /* the job's state sealed by the enclave from the start, so that a
         * restart before the first update resumes it too */
        double t0 = mono_s(), locked = 0;
        if (sealed_checkpoint(S, j, t, ckpt, &locked))
          fprintf(stderr, "hetee server: refine job %lld: no sealed initial checkpoint: %s\n", (long long)id,
                  hetee_last_error());
        else
          fprintf(stderr, "hetee server: refine job %lld: initial sealed checkpoint in %.3f s, %.3f s of it under the enclave lock\n",
                  (long long)id, mono_s() - t0, locked);
      }
    }
  }
  pthread_mutex_unlock(&j->jl);
  if (!rc) refine_worker_kick(S);
  return rc;
}

int refine_live_fetch(server *S, int64_t id, int l, const uint8_t *auth, size_t alen, uint8_t **sealed, size_t *len) {
  rjob *j = find(S->refine, id);
  int rc = 0;
  if (!j) {
    /* a job that finished before this server started */
    st_refine row;
    rc = rstore_job_get(S->db, id, &row, NULL, NULL);
    if (!rc && strcmp(row.state, "done") && strcmp(row.state, "stopped") && strcmp(row.state, "failed"))
      rc = hetee_error(HETEE_ERR_STATE, "refine job %lld is %s", (long long)id, row.state);
    if (!rc && !(j = find_or_add(S->refine, id))) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    if (rc) return rc;
    pthread_mutex_lock(&j->jl);
    if (!j->t && !j->st) {
      j->finished = 1;
      j->closable = !strcmp(row.state, "done") || !strcmp(row.state, "stopped");
      rc = spec_plan(S, id, &row, &j->plan);
      j->model = row.model;
      j->epochs = row.epochs;
      j->epoch_samples = row.epoch_samples;
    }
    pthread_mutex_unlock(&j->jl);
    if (rc) return rc;
  }
  pthread_mutex_lock(&j->jl);
  if (j->finished && (!j->t || enclave_gone(S, j))) {
    /* a finished job the enclave no longer holds (a restart): reopened from
     * its sealed checkpoint for the fetch; its state stays as it is */
    if (j->t) {
      pthread_mutex_lock(&S->en.lock);
      hetee_refine_trusted_free(j->t);
      pthread_mutex_unlock(&S->en.lock);
      j->t = NULL;
    }
    rc = try_resume_(S, j, 1);
  }
  if (!rc && !j->t) rc = hetee_error(HETEE_ERR_STATE, "the enclave does not hold refine job %lld (resume it first)", (long long)id);
  if (!rc && (l < j->plan.first_train || l >= j->plan.nl))
    rc = hetee_error(HETEE_ERR_INVALID_ARG, "layer %d does not train in this job (trained: %d..%d)", l, j->plan.first_train,
                     j->plan.nl - 1);
  if (!rc) {
    pthread_mutex_lock(&S->en.lock);
    sup_note_restarts(&S->en);
    if (S->en.restarts_seen != j->en_restarts)
      rc = hetee_error(HETEE_ERR_STATE, "the enclave restarted: refine job %lld resumes at its next step", (long long)id);
    else rc = hetee_host_refine_fetch_auth(j->t, j->st, l, auth, alen, sealed, len);
    pthread_mutex_unlock(&S->en.lock);
  }
  if (j->finished) release(S, j); /* the slot back (done or stopped) */
  pthread_mutex_unlock(&j->jl);
  return rc;
}

int refine_live_stop(server *S, int64_t id) {
  rjob *j = find(S->refine, id);
  if (!j) return hetee_error(HETEE_ERR_STATE, "refine job %lld is not live", (long long)id);
  pthread_mutex_lock(&j->jl);
  int rc = 0;
  if (j->finished) rc = hetee_error(HETEE_ERR_STATE, "refine job %lld has finished", (long long)id);
  else if (!j->t) {
    /* nothing runs: stopped at its checkpoint */
    j->finished = 1;
    rc = rstore_job_set_state(S->db, id, "stopped", NULL);
  } else {
    j->stop_req = 1;
  }
  pthread_mutex_unlock(&j->jl);
  refine_worker_kick(S);
  return rc;
}

void refine_live_info(server *S, int64_t id, int *live, int *pending) {
  *live = 0;
  *pending = 0;
  rjob *j = find(S->refine, id);
  if (!j) return;
  if (pthread_mutex_trylock(&j->jl) == 0) {
    *live = j->t != NULL;
    *pending = j->st ? hetee_refine_pending_steps(j->st) : 0;
    pthread_mutex_unlock(&j->jl);
  } else {
    *live = 1; /* the worker is stepping it */
    *pending = -1;
  }
}

json_t *refine_live_enclave_json(server *S, int64_t id) {
  rjob *j = find(S->refine, id);
  if (!j) return NULL;
  if (pthread_mutex_trylock(&j->jl) != 0) {
    if (!j->finished) return NULL; /* the worker is stepping it */
    pthread_mutex_lock(&j->jl);     /* a finished job's lock is held briefly */
  }
  json_t *o = NULL;
  if (j->t) {
    hetee_refine_job_status st;
    pthread_mutex_lock(&S->en.lock);
    sup_note_restarts(&S->en);
    int rc = S->en.restarts_seen == j->en_restarts ? hetee_host_refine_status(j->t, &st) : HETEE_ERR_STATE;
    pthread_mutex_unlock(&S->en.lock);
    if (!rc) {
      json_t *ep = json_array();
      for (uint32_t e = 0; e < st.epochs && e < HETEE_REFINE_EPOCH_LOG; e++)
        json_array_append_new(ep, json_integer((json_int_t)st.epoch_samples[e]));
      o = json_pack("{sI sI so}", "samples", (json_int_t)st.samples, "updates", (json_int_t)st.updates, "epoch_samples", ep);
    }
  } else if (j->have_last) { /* counted when the finished job was closed */
    json_t *ep = json_array();
    for (uint32_t e = 0; e < j->last.epochs && e < HETEE_REFINE_EPOCH_LOG; e++)
      json_array_append_new(ep, json_integer((json_int_t)j->last.epoch_samples[e]));
    o = json_pack("{sI sI so}", "samples", (json_int_t)j->last.samples, "updates", (json_int_t)j->last.updates,
                  "epoch_samples", ep);
  }
  pthread_mutex_unlock(&j->jl);
  return o;
}

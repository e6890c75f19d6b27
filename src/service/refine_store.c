/*
 * refine_store.c — the refine jobs' tables, in store.c's SQLite connection
 * (same lock, WAL, synchronous=FULL):
 *   refine_jobs     one row per job: model, owner, the spec the enclave
 *                   rebuilds the plan from, epochs / samples per epoch (0:
 *                   continuous), state, progress
 *   refine_dps      the data providers the job's policy names
 *   refine_batches  the acknowledged encrypted batches (staged while their
 *                   file is committed; dropped at start-up if still staged)
 *   refine_used     which batch each epoch used, at which sample position:
 *                   PRIMARY KEY (job, epoch, batch) makes a second use of a
 *                   batch in one epoch impossible; rows are written before
 *                   the checkpoint that covers them and those beyond the
 *                   checkpoint's cursor are deleted at resume
 *                   (rstore_reconcile), so after any crash the table
 *                   says exactly what the checkpointed weights contain.
 * Job states: running (training or waiting for data), needs_auth (the
 * enclave's side of the job was lost: the MP authorizes a resume from the
 * last checkpoint), stopped, done, failed.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "hetee/common.h"
#include "service/refine_internal.h"

static const char RSCHEMA[] =
    "CREATE TABLE IF NOT EXISTS refine_jobs(id INTEGER PRIMARY KEY AUTOINCREMENT, model INTEGER NOT NULL,"
    " owner TEXT NOT NULL, session TEXT NOT NULL, spec BLOB NOT NULL, epochs INTEGER NOT NULL,"
    " epoch_samples INTEGER NOT NULL, state TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',"
    " epoch INTEGER NOT NULL DEFAULT 0, steps INTEGER NOT NULL DEFAULT 0, updates INTEGER NOT NULL DEFAULT 0,"
    " samples INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS refine_dps(job INTEGER NOT NULL, dp TEXT NOT NULL, PRIMARY KEY(job, dp));"
    "CREATE TABLE IF NOT EXISTS refine_batches(id INTEGER PRIMARY KEY AUTOINCREMENT, job INTEGER NOT NULL,"
    " dp TEXT NOT NULL, count INTEGER NOT NULL, state TEXT NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS refine_batches_job ON refine_batches(job, state, id);"
    "CREATE TABLE IF NOT EXISTS refine_used(job INTEGER NOT NULL, epoch INTEGER NOT NULL, pos INTEGER NOT NULL,"
    " batch INTEGER NOT NULL, PRIMARY KEY(job, epoch, batch), UNIQUE(job, epoch, pos));";

typedef struct {
  sqlite3 *db;
  pthread_mutex_t *lock;
} conn;

static conn C(store *s) {
  conn c;
  c.db = store_sqlite(s, &c.lock);
  return c;
}

static int dberr(conn c, const char *what) {
  return hetee_error(HETEE_ERR_IO, "database: %s: %s", what, sqlite3_errmsg(c.db));
}

/* 'i' int64, 's' text, 'b' blob (pointer, size_t) */
static sqlite3_stmt *prep(conn c, const char *sql, const char *fmt, ...) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(c.db, sql, -1, &st, NULL) != SQLITE_OK) return NULL;
  va_list ap;
  va_start(ap, fmt);
  int col = 1;
  for (int i = 0; fmt && fmt[i]; i++, col++) {
    if (fmt[i] == 'i') {
      sqlite3_bind_int64(st, col, va_arg(ap, int64_t));
    } else if (fmt[i] == 'b') {
      const void *p = va_arg(ap, const void *);
      size_t n = va_arg(ap, size_t);
      sqlite3_bind_blob(st, col, p, (int)n, SQLITE_TRANSIENT);
    } else {
      sqlite3_bind_text(st, col, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
    }
  }
  va_end(ap);
  return st;
}

static int exec_stmt(conn c, sqlite3_stmt *st, const char *what) {
  if (!st) return dberr(c, what);
  int r = sqlite3_step(st);
  sqlite3_finalize(st);
  return r == SQLITE_DONE || r == SQLITE_ROW ? 0 : dberr(c, what);
}

static int begin(conn c) { return sqlite3_exec(c.db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : dberr(c, "begin"); }
static int commit(conn c) { return sqlite3_exec(c.db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : dberr(c, "commit"); }
static void rollback(conn c) { sqlite3_exec(c.db, "ROLLBACK", NULL, NULL, NULL); }

#define LOCK pthread_mutex_lock(c.lock)
#define UNLOCK pthread_mutex_unlock(c.lock)

int rstore_init(store *s, void (*drop_batch)(void *ctx, int64_t id), void *ctx) {
  conn c = C(s);
  LOCK;
  char *err = NULL;
  int rc = 0;
  if (sqlite3_exec(c.db, RSCHEMA, NULL, NULL, &err) != SQLITE_OK) {
    rc = hetee_error(HETEE_ERR_IO, "database schema (refine): %s", err ? err : "?");
    sqlite3_free(err);
  }
  if (!rc) rc = begin(c);
  if (!rc) {
    sqlite3_stmt *st = prep(c, "SELECT id FROM refine_batches WHERE state = 'staged'", "");
    while (st && sqlite3_step(st) == SQLITE_ROW) drop_batch(ctx, sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
    rc = exec_stmt(c, prep(c, "DELETE FROM refine_batches WHERE state = 'staged'", ""), "refine recover");
    if (!rc) rc = commit(c);
    else rollback(c);
  }
  UNLOCK;
  return rc;
}

int rstore_job_add(store *s, int64_t model, const char *owner, const char *session, const uint8_t *spec, size_t speclen,
                   int64_t epochs, int64_t epoch_samples, const char (*dps)[65], size_t n, int64_t *id) {
  conn c = C(s);
  LOCK;
  int rc = begin(c);
  if (!rc)
    rc = exec_stmt(c,
                   prep(c,
                        "INSERT INTO refine_jobs(model, owner, session, spec, epochs, epoch_samples, state, created_ms) "
                        "VALUES(?, ?, ?, ?, ?, ?, 'running', ?)",
                        "issbiii", model, owner, session, spec, speclen, epochs, epoch_samples, (int64_t)reqsig_now_ms()),
                   "refine job");
  if (!rc) *id = sqlite3_last_insert_rowid(c.db);
  for (size_t i = 0; i < n && !rc; i++)
    rc = exec_stmt(c, prep(c, "INSERT OR IGNORE INTO refine_dps(job, dp) VALUES(?, ?)", "is", *id, dps[i]), "refine dp");
  if (!rc) rc = commit(c);
  else rollback(c);
  UNLOCK;
  return rc;
}

static void copy_col(char *dst, size_t n, sqlite3_stmt *st, int col) {
  const unsigned char *t = sqlite3_column_text(st, col);
  snprintf(dst, n, "%s", t ? (const char *)t : "");
}

int rstore_job_get(store *s, int64_t id, st_refine *j, uint8_t **spec, size_t *speclen) {
  conn c = C(s);
  memset(j, 0, sizeof *j);
  LOCK;
  sqlite3_stmt *st = prep(c,
                          "SELECT id, model, owner, session, epochs, epoch_samples, state, error, epoch, steps, updates, "
                          "samples, created_ms, finished_ms, spec FROM refine_jobs WHERE id = ?",
                          "i", id);
  int rc = st ? 0 : dberr(c, "refine job");
  if (!rc && sqlite3_step(st) == SQLITE_ROW) {
    j->id = sqlite3_column_int64(st, 0);
    j->model = sqlite3_column_int64(st, 1);
    copy_col(j->owner, sizeof j->owner, st, 2);
    copy_col(j->session, sizeof j->session, st, 3);
    j->epochs = sqlite3_column_int64(st, 4);
    j->epoch_samples = sqlite3_column_int64(st, 5);
    copy_col(j->state, sizeof j->state, st, 6);
    copy_col(j->error, sizeof j->error, st, 7);
    j->epoch = sqlite3_column_int64(st, 8);
    j->steps = sqlite3_column_int64(st, 9);
    j->updates = sqlite3_column_int64(st, 10);
    j->samples = sqlite3_column_int64(st, 11);
    j->created_ms = sqlite3_column_int64(st, 12);
    j->finished_ms = sqlite3_column_int64(st, 13);
    if (spec) {
      int n = sqlite3_column_bytes(st, 14);
      const void *b = sqlite3_column_blob(st, 14);
      *spec = malloc(n > 0 ? (size_t)n : 1);
      if (!*spec) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      else if (n > 0) memcpy(*spec, b, (size_t)n);
      *speclen = (size_t)(n > 0 ? n : 0);
    }
  } else if (!rc) {
    rc = hetee_error(HETEE_ERR_NOT_FOUND, "no refine job %lld", (long long)id);
  }
  sqlite3_finalize(st);
  UNLOCK;
  return rc;
}

int rstore_job_set_state(store *s, int64_t id, const char *state, const char *error) {
  conn c = C(s);
  int fin = !strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "stopped");
  LOCK;
  int rc = exec_stmt(c, prep(c, "UPDATE refine_jobs SET state = ?, error = ?, finished_ms = ? WHERE id = ?", "ssii", state,
                             error ? error : "", fin ? (int64_t)reqsig_now_ms() : (int64_t)0, id),
                     "refine state");
  UNLOCK;
  return rc;
}

int rstore_job_set_session(store *s, int64_t id, const char *session) {
  conn c = C(s);
  LOCK;
  int rc = exec_stmt(c, prep(c, "UPDATE refine_jobs SET session = ? WHERE id = ?", "si", session, id), "refine session");
  UNLOCK;
  return rc;
}

int rstore_job_dp(store *s, int64_t id, const char *dp) {
  conn c = C(s);
  LOCK;
  sqlite3_stmt *st = prep(c, "SELECT 1 FROM refine_dps WHERE job = ? AND dp = ?", "is", id, dp);
  int rc = st ? 0 : dberr(c, "refine dp");
  if (!rc && sqlite3_step(st) != SQLITE_ROW)
    rc = hetee_error(HETEE_ERR_NOT_FOUND, "refine job %lld's policy does not name this data provider", (long long)id);
  sqlite3_finalize(st);
  UNLOCK;
  return rc;
}

json_t *rstore_jobs_json(store *s, const char *owner, int64_t model) {
  conn c = C(s);
  json_t *a = json_array();
  LOCK;
  sqlite3_stmt *st = prep(c,
                          "SELECT id, model, state, epoch, steps, samples FROM refine_jobs WHERE owner = ? AND "
                          "(? = 0 OR model = ?) ORDER BY id",
                          "sii", owner, model, model);
  while (st && sqlite3_step(st) == SQLITE_ROW)
    json_array_append_new(a, json_pack("{sI sI ss sI sI sI}", "id", (json_int_t)sqlite3_column_int64(st, 0), "model",
                                       (json_int_t)sqlite3_column_int64(st, 1), "state",
                                       (const char *)sqlite3_column_text(st, 2), "epoch",
                                       (json_int_t)sqlite3_column_int64(st, 3), "steps",
                                       (json_int_t)sqlite3_column_int64(st, 4), "samples",
                                       (json_int_t)sqlite3_column_int64(st, 5)));
  sqlite3_finalize(st);
  UNLOCK;
  return a;
}

json_t *rstore_dps_json(store *s, int64_t id) {
  conn c = C(s);
  json_t *a = json_array();
  LOCK;
  sqlite3_stmt *st = prep(c, "SELECT dp FROM refine_dps WHERE job = ? ORDER BY dp", "i", id);
  while (st && sqlite3_step(st) == SQLITE_ROW) json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0)));
  sqlite3_finalize(st);
  UNLOCK;
  return a;
}

int rstore_jobs_live(store *s, int64_t **ids, size_t *n) {
  conn c = C(s);
  *ids = NULL;
  *n = 0;
  LOCK;
  sqlite3_stmt *st = prep(c, "SELECT id FROM refine_jobs WHERE state IN ('running', 'needs_auth') ORDER BY id", "");
  int rc = st ? 0 : dberr(c, "refine jobs");
  while (!rc && sqlite3_step(st) == SQLITE_ROW) {
    int64_t *p = realloc(*ids, (*n + 1) * sizeof *p);
    if (!p) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      break;
    }
    *ids = p;
    p[(*n)++] = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  UNLOCK;
  return rc;
}

int rstore_batch_stage(store *s, int64_t job, const char *dp, int64_t count, int64_t *id) {
  conn c = C(s);
  LOCK;
  int rc = exec_stmt(c, prep(c, "INSERT INTO refine_batches(job, dp, count, state, created_ms) VALUES(?, ?, ?, 'staged', ?)",
                             "isii", job, dp, count, (int64_t)reqsig_now_ms()),
                     "refine batch");
  if (!rc) *id = sqlite3_last_insert_rowid(c.db);
  UNLOCK;
  return rc;
}

int rstore_batch_commit(store *s, int64_t job, int64_t id, int64_t epoch_samples) {
  conn c = C(s);
  LOCK;
  int rc = begin(c);
  if (!rc && epoch_samples > 0) {
    sqlite3_stmt *st = prep(c,
                            "SELECT COALESCE(SUM(count), 0), (SELECT count FROM refine_batches WHERE id = ?) FROM "
                            "refine_batches WHERE job = ? AND state = 'ready'",
                            "ii", id, job);
    rc = st && sqlite3_step(st) == SQLITE_ROW ? 0 : dberr(c, "refine capacity");
    if (!rc && sqlite3_column_int64(st, 0) + sqlite3_column_int64(st, 1) > epoch_samples)
      rc = hetee_error(HETEE_ERR_STATE, "the job's epoch holds %lld samples; %lld are submitted already",
                       (long long)epoch_samples, (long long)sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
  }
  if (!rc)
    rc = exec_stmt(c, prep(c, "UPDATE refine_batches SET state = 'ready' WHERE id = ? AND state = 'staged'", "i", id),
                   "refine batch commit");
  if (!rc) rc = commit(c);
  else rollback(c);
  if (rc) {
    int keep = rc;
    char why[300];
    snprintf(why, sizeof why, "%s", hetee_last_error());
    (void)exec_stmt(c, prep(c, "DELETE FROM refine_batches WHERE id = ?", "i", id), "refine batch drop");
    rc = hetee_error(keep, "%s", why);
  }
  UNLOCK;
  return rc;
}

int rstore_batches(store *s, int64_t job, int64_t **ids, uint32_t **counts, size_t *n) {
  conn c = C(s);
  *ids = NULL;
  *counts = NULL;
  *n = 0;
  LOCK;
  sqlite3_stmt *st = prep(c, "SELECT id, count FROM refine_batches WHERE job = ? AND state = 'ready' ORDER BY id", "i", job);
  int rc = st ? 0 : dberr(c, "refine batches");
  size_t cap = 0;
  while (!rc && sqlite3_step(st) == SQLITE_ROW) {
    if (*n == cap) {
      cap = cap ? 2 * cap : 64;
      int64_t *a = realloc(*ids, cap * sizeof *a);
      if (a) *ids = a;
      uint32_t *b = a ? realloc(*counts, cap * sizeof *b) : NULL;
      if (b) *counts = b;
      if (!a || !b) {
        rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
        break;
      }
    }
    (*ids)[*n] = sqlite3_column_int64(st, 0);
    (*counts)[*n] = (uint32_t)sqlite3_column_int64(st, 1);
    (*n)++;
  }
  sqlite3_finalize(st);
  UNLOCK;
  return rc;
}

int rstore_progress(store *s, int64_t job, int64_t epoch, const int64_t *batch, const uint32_t *pos, size_t n,
                    int64_t steps, int64_t updates, int64_t samples) {
  conn c = C(s);
  LOCK;
  int rc = begin(c);
  for (size_t i = 0; i < n && !rc; i++)
    rc = exec_stmt(c, prep(c, "INSERT INTO refine_used(job, epoch, pos, batch) VALUES(?, ?, ?, ?)", "iiii", job, epoch,
                           (int64_t)pos[i], batch[i]),
                   "refine used");
  if (!rc && steps >= 0)
    rc = exec_stmt(c, prep(c, "UPDATE refine_jobs SET epoch = ?, steps = ?, updates = ?, samples = ? WHERE id = ?", "iiiii",
                           epoch, steps, updates, samples, job),
                   "refine progress");
  if (!rc) rc = commit(c);
  else rollback(c);
  UNLOCK;
  return rc;
}

int rstore_reconcile(store *s, int64_t job, int64_t epoch, int64_t next, int64_t steps, int64_t updates) {
  conn c = C(s);
  LOCK;
  int rc = begin(c);
  if (!rc)
    rc = exec_stmt(c, prep(c, "DELETE FROM refine_used WHERE job = ? AND (epoch > ? OR (epoch = ? AND pos >= ?))", "iiii",
                           job, epoch, epoch, next),
                   "refine reconcile");
  if (!rc)
    rc = exec_stmt(c,
                   prep(c,
                        "UPDATE refine_jobs SET epoch = ?, steps = ?, updates = ?, samples = (SELECT COALESCE(SUM(b.count), 0) "
                        "FROM refine_used u JOIN refine_batches b ON b.id = u.batch WHERE u.job = ?) WHERE id = ?",
                        "iiiii", epoch, steps, updates, job, job),
                   "refine reconcile");
  if (!rc) rc = commit(c);
  else rollback(c);
  UNLOCK;
  return rc;
}

json_t *rstore_used_json(store *s, int64_t job, const char *dp) {
  conn c = C(s);
  json_t *a = json_array();
  LOCK;
  sqlite3_stmt *st = prep(c,
                          "SELECT u.epoch, COUNT(*), COALESCE(SUM(b.count), 0) FROM refine_used u JOIN refine_batches b "
                          "ON b.id = u.batch WHERE u.job = ? AND (? = '' OR b.dp = ?) GROUP BY u.epoch ORDER BY u.epoch",
                          "iss", job, dp ? dp : "", dp ? dp : "");
  while (st && sqlite3_step(st) == SQLITE_ROW)
    json_array_append_new(a, json_pack("{sI sI sI}", "epoch", (json_int_t)sqlite3_column_int64(st, 0), "batches",
                                       (json_int_t)sqlite3_column_int64(st, 1), "samples",
                                       (json_int_t)sqlite3_column_int64(st, 2)));
  sqlite3_finalize(st);
  UNLOCK;
  return a;
}

int rstore_submitted(store *s, int64_t job, const char *dp, int64_t *batches, int64_t *samples) {
  conn c = C(s);
  LOCK;
  sqlite3_stmt *st = prep(c,
                          "SELECT COUNT(*), COALESCE(SUM(count), 0) FROM refine_batches WHERE job = ? AND state = 'ready' "
                          "AND (? = '' OR dp = ?)",
                          "iss", job, dp ? dp : "", dp ? dp : "");
  int rc = st && sqlite3_step(st) == SQLITE_ROW ? 0 : dberr(c, "refine submitted");
  if (!rc) {
    *batches = sqlite3_column_int64(st, 0);
    *samples = sqlite3_column_int64(st, 1);
  }
  sqlite3_finalize(st);
  UNLOCK;
  return rc;
}

/*
 * store.c — the server's metadata in SQLite (WAL, synchronous=FULL: a
 * committed row survives kill -9 and power loss): parties, models and
 * their data-provider policies with budgets, jobs and their states, and
 * the enclave sessions the server relayed. One connection behind a mutex;
 * every statement is prepared with bound parameters.
 *
 * Job states: staged (input being committed; dropped at start-up) ->
 * queued -> running -> done | failed (a run cut short by an enclave restart
 * goes back to queued; jobs hold no enclave session: their results are
 * sealed to the data provider's identity). Model states: staged ->
 * pending_policy -> ready.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "hetee/common.h"
#include "service/server_internal.h"

static int lazy_on = 1; /* HETEE_SERVER_LAZY_COMMIT=0: every commit durable, for measurements */

/* Prepared statements kept for reuse (sqlite3_prepare_v2 of the same SQL
 * on every request was about a third of the server's SQLite time): found
 * by the SQL text's address, confirmed by its content; reset (which ends
 * the statement's read transaction) and unbound when given back. */
#define STMT_CACHE 64
typedef struct {
  const char *key;
  sqlite3_stmt *st;
  int busy;
} stmt_slot;

struct store {
  sqlite3 *db;
  pthread_mutex_t lock;
  stmt_slot cache[STMT_CACHE];
  int ncache;
};

static const char SCHEMA[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "PRAGMA foreign_keys=ON;"
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS parties(pk TEXT PRIMARY KEY, role INTEGER NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS models(id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, name TEXT NOT NULL,"
    " state TEXT NOT NULL, output TEXT NOT NULL DEFAULT '', k INTEGER NOT NULL DEFAULT 0, prec INTEGER NOT NULL DEFAULT 0,"
    " bytes INTEGER NOT NULL DEFAULT 0, micro_batch INTEGER NOT NULL DEFAULT 0, in_size INTEGER NOT NULL DEFAULT 0,"
    " classes INTEGER NOT NULL DEFAULT 0, release_kind INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,"
    " input_scale REAL NOT NULL DEFAULT 1);"
    "CREATE TABLE IF NOT EXISTS model_dps(model INTEGER NOT NULL, dp TEXT NOT NULL, budget INTEGER NOT NULL,"
    " used INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(model, dp));"
    "CREATE TABLE IF NOT EXISTS jobs(id INTEGER PRIMARY KEY AUTOINCREMENT, model INTEGER NOT NULL, dp TEXT NOT NULL,"
    " session TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, state TEXT NOT NULL, count INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL,"
    " started_ms INTEGER NOT NULL DEFAULT 0, finished_ms INTEGER NOT NULL DEFAULT 0, auth BLOB,"
    " witness INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);"
    "CREATE TABLE IF NOT EXISTS sessions(id TEXT PRIMARY KEY, party TEXT NOT NULL, epoch INTEGER NOT NULL,"
    " seq INTEGER NOT NULL);";

static int dberr(store *s, const char *what) {
  return hetee_error(HETEE_ERR_IO, "database: %s: %s", what, sqlite3_errmsg(s->db));
}

int store_open(const char *path, store **out) {
  store *s = calloc(1, sizeof *s);
  if (!s) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
      SQLITE_OK) {
    int rc = hetee_error(HETEE_ERR_IO, "cannot open database %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "");
    sqlite3_close(s->db);
    free(s);
    return rc;
  }
  sqlite3_busy_timeout(s->db, 5000);
  char *err = NULL;
  if (sqlite3_exec(s->db, SCHEMA, NULL, NULL, &err) != SQLITE_OK) {
    int rc = hetee_error(HETEE_ERR_IO, "database schema: %s", err ? err : "?");
    sqlite3_free(err);
    sqlite3_close(s->db);
    free(s);
    return rc;
  }
  /* a database of an older server: its jobs table without the columns
   * auth and witness (added here; "duplicate column" when present) */
  sqlite3_exec(s->db, "ALTER TABLE jobs ADD COLUMN auth BLOB", NULL, NULL, NULL);
  sqlite3_exec(s->db, "ALTER TABLE jobs ADD COLUMN witness INTEGER NOT NULL DEFAULT 0", NULL, NULL, NULL);
  pthread_mutex_init(&s->lock, NULL);
  const char *lz = getenv("HETEE_SERVER_LAZY_COMMIT");
  lazy_on = !(lz && !strcmp(lz, "0"));
  *out = s;
  return 0;
}

void store_close(store *s) {
  if (!s) return;
  for (int i = 0; i < s->ncache; i++) sqlite3_finalize(s->cache[i].st);
  sqlite3_close(s->db);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

/* Binds arguments described by fmt: 'i' int64, 's' text. */
static sqlite3_stmt *stmt_get(store *s, const char *sql) {
  int known = 0;
  for (int i = 0; i < s->ncache; i++) {
    stmt_slot *c = &s->cache[i];
    if (c->key != sql || strcmp(sqlite3_sql(c->st), sql)) continue;
    known = 1;
    if (!c->busy) {
      c->busy = 1;
      return c->st;
    }
  }
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
    sqlite3_finalize(st);
    return NULL;
  }
  if (!known && s->ncache < STMT_CACHE) s->cache[s->ncache++] = (stmt_slot){sql, st, 1};
  return st;
}

/* A statement from prep, done with (instead of sqlite3_finalize). */
static void unprep(store *s, sqlite3_stmt *st) {
  if (!st) return;
  for (int i = 0; i < s->ncache; i++)
    if (s->cache[i].st == st) {
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
      s->cache[i].busy = 0;
      return;
    }
  sqlite3_finalize(st);
}

static sqlite3_stmt *prep(store *s, const char *sql, const char *fmt, ...) {
  sqlite3_stmt *st = stmt_get(s, sql);
  if (!st) return NULL;
  va_list ap;
  va_start(ap, fmt);
  for (int i = 0; fmt && fmt[i]; i++) {
    if (fmt[i] == 'i') sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
    else if (fmt[i] == 'd') sqlite3_bind_double(st, i + 1, va_arg(ap, double));
    else sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
  }
  va_end(ap);
  return st;
}

/* The connection and its lock, for the refine tables (refine_store.c). */
sqlite3 *store_sqlite(store *s, pthread_mutex_t **lock) {
  *lock = &s->lock;
  return s->db;
}

#define LOCK pthread_mutex_lock(&s->lock)
#define UNLOCK pthread_mutex_unlock(&s->lock)

static int exec_stmt(store *s, sqlite3_stmt *st, const char *what) {
  if (!st) return dberr(s, what);
  int r = sqlite3_step(st);
  unprep(s, st);
  return r == SQLITE_DONE || r == SQLITE_ROW ? 0 : dberr(s, what);
}

/* A commit that need not be durable by itself (synchronous=NORMAL for it:
 * WAL frames appended, no fsync), for a state a crash may lose because
 * recovery gives the same outcome: a staged job row (dropped at start-up
 * anyway; nothing is acknowledged before the durable commit that queues
 * it) and a job taken to `running` (queued again at start-up). The next
 * durable commit's fsync of the WAL covers these frames too. Under s->lock. */
static int begin_lazy(store *s);
static int end_lazy(store *s, int rc);

/* (as kept statements too: these run several times per job) */
static int begin(store *s) { return exec_stmt(s, prep(s, "BEGIN IMMEDIATE", ""), "begin"); }
static int commit(store *s) { return exec_stmt(s, prep(s, "COMMIT", ""), "commit"); }
static void rollback(store *s) { (void)exec_stmt(s, prep(s, "ROLLBACK", ""), "rollback"); }
/* (SQLite refuses to change the level inside a transaction: set before
 * BEGIN, back to FULL after COMMIT or ROLLBACK.) */
static int begin_lazy(store *s) {
  if (lazy_on) (void)exec_stmt(s, prep(s, "PRAGMA synchronous=NORMAL", ""), "synchronous=NORMAL");
  return begin(s);
}
static int end_lazy(store *s, int rc) {
  if (lazy_on && exec_stmt(s, prep(s, "PRAGMA synchronous=FULL", ""), "synchronous=FULL") && !rc)
    rc = dberr(s, "synchronous=FULL");
  return rc;
}

int store_next_boot(store *s, int64_t *boot) {
  LOCK;
  int rc = begin(s);
  if (!rc) rc = exec_stmt(s, prep(s, "INSERT INTO meta(k, v) VALUES('boot', 1) ON CONFLICT(k) DO UPDATE SET v = v + 1", ""), "boot");
  sqlite3_stmt *st = rc ? NULL : prep(s, "SELECT v FROM meta WHERE k = 'boot'", "");
  if (!rc && st && sqlite3_step(st) == SQLITE_ROW) *boot = sqlite3_column_int64(st, 0);
  else if (!rc) rc = dberr(s, "boot");
  unprep(s, st);
  if (!rc) rc = commit(s);
  else rollback(s);
  UNLOCK;
  return rc;
}

int store_recover(store *s, void (*drop)(void *ctx, const char *kind, int64_t id), void *ctx) {
  LOCK;
  int rc = begin(s);
  const char *kinds[2] = {"models", "jobs"};
  for (int k = 0; k < 2 && !rc; k++) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT id FROM %s WHERE state = 'staged'", kinds[k]);
    sqlite3_stmt *st = prep(s, sql, "");
    if (!st) {
      rc = dberr(s, "recover");
      break;
    }
    while (sqlite3_step(st) == SQLITE_ROW) drop(ctx, kinds[k], sqlite3_column_int64(st, 0));
    unprep(s, st);
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE state = 'staged'", kinds[k]);
    rc = exec_stmt(s, prep(s, sql, ""), "recover");
  }
  /* a job that was running when the server died runs again (its results
   * were never acknowledged: the result file is written before 'done') */
  if (!rc) rc = exec_stmt(s, prep(s, "UPDATE jobs SET state = 'queued' WHERE state IN ('running', 'awaiting_session')", ""), "recover");
  if (!rc) rc = commit(s);
  else rollback(s);
  UNLOCK;
  return rc;
}

int store_party_get(store *s, const char *pk, int *role) {
  LOCK;
  sqlite3_stmt *st = prep(s, "SELECT role FROM parties WHERE pk = ?", "s", pk);
  int rc = st ? 0 : dberr(s, "party");
  if (!rc) {
    if (sqlite3_step(st) == SQLITE_ROW) *role = sqlite3_column_int(st, 0);
    else rc = hetee_error(HETEE_ERR_NOT_FOUND, "party not registered (POST /v1/parties first)");
  }
  unprep(s, st);
  UNLOCK;
  return rc;
}

int store_party_add(store *s, const char *pk, int role) {
  int old = -1;
  if (!store_party_get(s, pk, &old))
    return old == role ? 0 : hetee_error(HETEE_ERR_STATE, "this key is registered with another role");
  LOCK;
  int rc = exec_stmt(s, prep(s, "INSERT OR IGNORE INTO parties(pk, role, created_ms) VALUES(?, ?, ?)", "sii", pk,
                             (int64_t)role, (int64_t)reqsig_now_ms()),
                     "party add");
  UNLOCK;
  return rc;
}

int store_model_stage(store *s, const char *owner, const char *name, int64_t *id) {
  LOCK;
  int rc = exec_stmt(s, prep(s, "INSERT INTO models(owner, name, state, created_ms) VALUES(?, ?, 'staged', ?)", "ssi", owner,
                             name, (int64_t)reqsig_now_ms()),
                     "model stage");
  if (!rc) *id = sqlite3_last_insert_rowid(s->db);
  UNLOCK;
  return rc;
}

int store_model_commit(store *s, const st_model *m) {
  LOCK;
  int rc = exec_stmt(s, prep(s,
                             "UPDATE models SET state = 'pending_policy', bytes = ?, micro_batch = ?, in_size = ?, "
                             "classes = ?, release_kind = ?, input_scale = ? WHERE id = ?",
                             "iiiiidi", m->bytes, (int64_t)m->micro_batch, (int64_t)m->in_size, (int64_t)m->classes,
                             (int64_t)m->release_kind, m->input_scale, m->id),
                     "model commit");
  UNLOCK;
  return rc;
}

static void copy_col(char *dst, size_t n, sqlite3_stmt *st, int c) {
  const unsigned char *t = sqlite3_column_text(st, c);
  snprintf(dst, n, "%s", t ? (const char *)t : "");
}

int store_model_get(store *s, int64_t id, st_model *m) {
  memset(m, 0, sizeof *m);
  LOCK;
  sqlite3_stmt *st = prep(s,
                          "SELECT id, owner, name, state, output, k, prec, bytes, micro_batch, in_size, classes, "
                          "release_kind, created_ms, input_scale FROM models WHERE id = ? AND state != 'staged' AND state != 'deleted'",
                          "i", id);
  int rc = st ? 0 : dberr(s, "model");
  if (!rc && sqlite3_step(st) == SQLITE_ROW) {
    m->id = sqlite3_column_int64(st, 0);
    copy_col(m->owner, sizeof m->owner, st, 1);
    copy_col(m->name, sizeof m->name, st, 2);
    copy_col(m->state, sizeof m->state, st, 3);
    copy_col(m->output, sizeof m->output, st, 4);
    m->k = sqlite3_column_int(st, 5);
    m->prec = sqlite3_column_int(st, 6);
    m->bytes = sqlite3_column_int64(st, 7);
    m->micro_batch = sqlite3_column_int(st, 8);
    m->in_size = sqlite3_column_int(st, 9);
    m->classes = sqlite3_column_int(st, 10);
    m->release_kind = sqlite3_column_int(st, 11);
    m->created_ms = sqlite3_column_int64(st, 12);
    m->input_scale = sqlite3_column_double(st, 13);
  } else if (!rc) {
    rc = hetee_error(HETEE_ERR_NOT_FOUND, "no model %lld", (long long)id);
  }
  unprep(s, st);
  UNLOCK;
  return rc;
}

int store_model_set_policy(store *s, int64_t id, const char *output, int k, int prec, const char (*dps)[65],
                           const int64_t *budgets, size_t n) {
  LOCK;
  int rc = begin(s);
  if (!rc)
    rc = exec_stmt(s, prep(s, "UPDATE models SET state = 'ready', output = ?, k = ?, prec = ? WHERE id = ?", "siii", output,
                           (int64_t)k, (int64_t)prec, id),
                   "policy");
  /* budgets already used stay charged when the owner changes the policy */
  if (!rc) {
    char sql[] = "DELETE FROM model_dps WHERE model = ?";
    rc = exec_stmt(s, prep(s, sql, "i", id), "policy");
  }
  for (size_t i = 0; i < n && !rc; i++)
    rc = exec_stmt(s, prep(s, "INSERT INTO model_dps(model, dp, budget, used) VALUES(?, ?, ?, "
                              "(SELECT COALESCE(SUM(count), 0) FROM jobs WHERE model = ? AND dp = ? AND state != 'failed'))",
                           "isiis", id, dps[i], budgets[i], id, dps[i]),
                   "policy dp");
  if (!rc) rc = commit(s);
  else rollback(s);
  UNLOCK;
  return rc;
}

int store_model_dp(store *s, int64_t id, const char *dp, int64_t *budget, int64_t *used) {
  LOCK;
  sqlite3_stmt *st = prep(s,
                          "SELECT d.budget, d.used FROM model_dps d JOIN models m ON m.id = d.model "
                          "WHERE d.model = ? AND d.dp = ? AND m.state = 'ready'",
                          "is", id, dp);
  int rc = st ? 0 : dberr(s, "model dp");
  if (!rc && sqlite3_step(st) == SQLITE_ROW) {
    if (budget) *budget = sqlite3_column_int64(st, 0);
    if (used) *used = sqlite3_column_int64(st, 1);
  } else if (!rc) {
    rc = hetee_error(HETEE_ERR_NOT_FOUND, "model %lld does not exist or its policy does not name this data provider",
                     (long long)id);
  }
  unprep(s, st);
  UNLOCK;
  return rc;
}

int store_model_delete(store *s, int64_t id) {
  LOCK;
  int rc = begin(s);
  if (!rc) rc = exec_stmt(s, prep(s, "UPDATE models SET state = 'deleted' WHERE id = ?", "i", id), "delete");
  if (!rc) rc = exec_stmt(s, prep(s, "DELETE FROM model_dps WHERE model = ?", "i", id), "delete");
  if (!rc) rc = commit(s);
  else rollback(s);
  UNLOCK;
  return rc;
}

int store_model_active_jobs(store *s, int64_t id, int64_t *n) {
  LOCK;
  sqlite3_stmt *st = prep(s, "SELECT COUNT(*) FROM jobs WHERE model = ? AND state IN ('queued', 'running')",
                          "i", id);
  int rc = st && sqlite3_step(st) == SQLITE_ROW ? 0 : dberr(s, "jobs");
  if (!rc) *n = sqlite3_column_int64(st, 0);
  unprep(s, st);
  UNLOCK;
  return rc;
}

json_t *store_models_json(store *s, const char *party, int role) {
  json_t *a = json_array();
  LOCK;
  sqlite3_stmt *st =
      role == ROLE_MP
          ? prep(s, "SELECT id, name, state, output, classes, micro_batch FROM models WHERE owner = ? AND state IN "
                    "('pending_policy', 'ready') ORDER BY id",
                 "s", party)
          : prep(s, "SELECT m.id, m.name, m.state, m.output, m.classes, m.micro_batch FROM models m JOIN model_dps d "
                    "ON d.model = m.id WHERE d.dp = ? AND m.state = 'ready' ORDER BY m.id",
                 "s", party);
  while (st && sqlite3_step(st) == SQLITE_ROW)
    json_array_append_new(a, json_pack("{sI ss ss ss si si}", "id", (json_int_t)sqlite3_column_int64(st, 0), "name",
                                       (const char *)sqlite3_column_text(st, 1), "state",
                                       (const char *)sqlite3_column_text(st, 2), "output",
                                       (const char *)sqlite3_column_text(st, 3), "classes", sqlite3_column_int(st, 4),
                                       "micro_batch", sqlite3_column_int(st, 5)));
  unprep(s, st);
  UNLOCK;
  return a;
}

json_t *store_model_dps_json(store *s, int64_t id) {
  json_t *a = json_array();
  LOCK;
  sqlite3_stmt *st = prep(s, "SELECT dp, budget, used FROM model_dps WHERE model = ? ORDER BY dp", "i", id);
  while (st && sqlite3_step(st) == SQLITE_ROW)
    json_array_append_new(a, json_pack("{ss sI sI}", "dp", (const char *)sqlite3_column_text(st, 0), "budget",
                                       (json_int_t)sqlite3_column_int64(st, 1), "used",
                                       (json_int_t)sqlite3_column_int64(st, 2)));
  unprep(s, st);
  UNLOCK;
  return a;
}

int store_job_stage(store *s, int64_t model, const char *dp, const char *session, int64_t count, int64_t epoch,
                    int64_t seq, const uint8_t *auth, size_t auth_len, int64_t witness, int64_t *id) {
  LOCK;
  int rc = begin_lazy(s); /* durable with store_job_commit's */
  if (!rc) {
    sqlite3_stmt *st = prep(s,
                            "UPDATE model_dps SET used = used + ? WHERE model = ? AND dp = ? AND "
                            "(budget < 0 OR used + ? <= budget)",
                            "iisi", count, model, dp, count);
    rc = st && sqlite3_step(st) == SQLITE_DONE ? 0 : dberr(s, "budget");
    unprep(s, st);
    if (!rc && sqlite3_changes(s->db) != 1)
      rc = hetee_error(HETEE_ERR_LIMIT, "query budget for model %lld exhausted (%lld images asked)", (long long)model,
                       (long long)count);
  }
  if (!rc) {
    sqlite3_stmt *st = prep(s,
                            "INSERT INTO jobs(model, dp, session, epoch, seq, state, count, created_ms, witness, auth) "
                            "VALUES(?, ?, ?, ?, ?, 'staged', ?, ?, ?, ?)",
                            "issiiiii", model, dp, session, epoch, seq, count, (int64_t)reqsig_now_ms(), witness);
    if (st && auth && sqlite3_bind_blob(st, 9, auth, (int)auth_len, SQLITE_TRANSIENT) != SQLITE_OK) {
      unprep(s, st);
      st = NULL;
    }
    rc = exec_stmt(s, st, "job stage");
  }
  if (!rc) *id = sqlite3_last_insert_rowid(s->db);
  if (!rc) rc = commit(s);
  else rollback(s);
  rc = end_lazy(s, rc);
  UNLOCK;
  return rc;
}

int store_job_stored(store *s, int64_t id, uint8_t **auth, size_t *auth_len, int64_t *witness) {
  *auth = NULL;
  *auth_len = 0;
  *witness = 0;
  LOCK;
  sqlite3_stmt *st = prep(s, "SELECT auth, witness FROM jobs WHERE id = ?", "i", id);
  int rc = st ? 0 : dberr(s, "job");
  if (!rc && sqlite3_step(st) != SQLITE_ROW) rc = hetee_error(HETEE_ERR_NOT_FOUND, "no job %lld", (long long)id);
  if (!rc && sqlite3_column_type(st, 0) == SQLITE_BLOB) {
    const void *b = sqlite3_column_blob(st, 0);
    int n = sqlite3_column_bytes(st, 0);
    uint8_t *c = malloc(n > 0 ? (size_t)n : 1);
    if (!c) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    else {
      if (n > 0) memcpy(c, b, (size_t)n);
      *auth = c;
      *auth_len = (size_t)(n > 0 ? n : 0);
    }
  }
  if (!rc) *witness = sqlite3_column_int64(st, 1);
  unprep(s, st);
  UNLOCK;
  return rc;
}

int store_job_commit(store *s, int64_t id) {
  LOCK;
  int rc = exec_stmt(s, prep(s, "UPDATE jobs SET state = 'queued' WHERE id = ? AND state = 'staged'", "i", id), "job commit");
  UNLOCK;
  return rc;
}

static void job_row(sqlite3_stmt *st, st_job *j) {
  memset(j, 0, sizeof *j);
  j->id = sqlite3_column_int64(st, 0);
  j->model = sqlite3_column_int64(st, 1);
  copy_col(j->dp, sizeof j->dp, st, 2);
  copy_col(j->session, sizeof j->session, st, 3);
  j->epoch = sqlite3_column_int64(st, 4);
  j->seq = sqlite3_column_int64(st, 5);
  copy_col(j->state, sizeof j->state, st, 6);
  j->count = sqlite3_column_int64(st, 7);
  j->attempts = sqlite3_column_int64(st, 8);
  copy_col(j->error, sizeof j->error, st, 9);
  j->created_ms = sqlite3_column_int64(st, 10);
  j->started_ms = sqlite3_column_int64(st, 11);
  j->finished_ms = sqlite3_column_int64(st, 12);
}

#define JOB_COLS "id, model, dp, session, epoch, seq, state, count, attempts, error, created_ms, started_ms, finished_ms"

int store_job_get(store *s, int64_t id, st_job *out) {
  LOCK;
  sqlite3_stmt *st = prep(s, "SELECT " JOB_COLS " FROM jobs WHERE id = ? AND state != 'staged'", "i", id);
  int rc = st ? 0 : dberr(s, "job");
  if (!rc && sqlite3_step(st) == SQLITE_ROW) job_row(st, out);
  else if (!rc) rc = hetee_error(HETEE_ERR_NOT_FOUND, "no job %lld", (long long)id);
  unprep(s, st);
  UNLOCK;
  return rc;
}

int store_job_take(store *s, st_job *out) {
  LOCK;
  int rc = begin_lazy(s); /* `running` lost in a crash is `queued` again, as recovery makes it */
  sqlite3_stmt *st = rc ? NULL : prep(s, "SELECT " JOB_COLS " FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1", "");
  if (!rc && st && sqlite3_step(st) == SQLITE_ROW) job_row(st, out);
  else if (!rc) rc = st ? HETEE_ERR_NOT_FOUND : dberr(s, "take");
  unprep(s, st);
  if (!rc)
    rc = exec_stmt(s, prep(s, "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_ms = ? WHERE id = ?", "ii",
                           (int64_t)reqsig_now_ms(), out->id),
                   "take");
  if (!rc) {
    rc = commit(s);
    out->attempts++;
  } else {
    rollback(s);
  }
  rc = end_lazy(s, rc);
  UNLOCK;
  return rc;
}

int store_job_take_batch(store *s, int64_t model, uint32_t mb, size_t max, st_job *out, size_t *n) {
  *n = 0;
  if (!max || !mb) return 0;
  LOCK;
  int rc = begin(s);
  sqlite3_stmt *st = rc ? NULL
                        : prep(s,
                               "SELECT " JOB_COLS " FROM jobs WHERE state = 'queued' AND model = ? AND count % ? = 0 "
                               "ORDER BY id LIMIT ?",
                               "iii", model, (int64_t)mb, (int64_t)max);
  if (!rc && !st) rc = dberr(s, "take");
  while (!rc && *n < max && sqlite3_step(st) == SQLITE_ROW) job_row(st, &out[(*n)++]);
  unprep(s, st);
  uint64_t now = reqsig_now_ms();
  for (size_t i = 0; !rc && i < *n; i++) {
    rc = exec_stmt(s, prep(s, "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_ms = ? WHERE id = ?",
                           "ii", (int64_t)now, out[i].id),
                   "take");
    out[i].attempts++;
  }
  if (!rc) {
    rc = commit(s);
  } else {
    rollback(s);
  }
  if (rc) *n = 0;
  UNLOCK;
  return rc;
}

int store_job_set_state(store *s, int64_t id, const char *state, const char *error) {
  LOCK;
  int fin = !strcmp(state, "done") || !strcmp(state, "failed");
  int rc = exec_stmt(s, prep(s, "UPDATE jobs SET state = ?, error = ?, finished_ms = ? WHERE id = ?", "ssii", state,
                             error ? error : "", fin ? (int64_t)reqsig_now_ms() : (int64_t)0, id),
                     "job state");
  UNLOCK;
  return rc;
}

int store_job_delete(store *s, int64_t id, int *deleted) {
  LOCK;
  *deleted = 0;
  int rc = exec_stmt(s, prep(s, "DELETE FROM jobs WHERE id = ? AND state IN ('done', 'failed')", "i", id), "delete");
  if (!rc) *deleted = sqlite3_changes(s->db) > 0;
  UNLOCK;
  return rc;
}

int store_jobs_expired(store *s, int64_t before_ms, int64_t *ids, size_t max, size_t *n) {
  LOCK;
  *n = 0;
  sqlite3_stmt *st = prep(s,
                          "SELECT id FROM jobs WHERE state IN ('done', 'failed') AND finished_ms <= ? "
                          "ORDER BY finished_ms LIMIT ?",
                          "ii", before_ms, (int64_t)max);
  int rc = st ? 0 : dberr(s, "jobs"), step;
  while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) ids[(*n)++] = sqlite3_column_int64(st, 0);
  if (!rc && step != SQLITE_DONE) rc = dberr(s, "jobs");
  unprep(s, st);
  UNLOCK;
  return rc;
}

int store_job_exists(store *s, int64_t id, int *exists) {
  LOCK;
  sqlite3_stmt *st = prep(s, "SELECT 1 FROM jobs WHERE id = ?", "i", id);
  int rc = st ? 0 : dberr(s, "jobs"), step = st ? sqlite3_step(st) : SQLITE_ERROR;
  if (!rc && step != SQLITE_ROW && step != SQLITE_DONE) rc = dberr(s, "jobs");
  *exists = !rc && step == SQLITE_ROW;
  unprep(s, st);
  UNLOCK;
  return rc;
}

int store_jobs_done(store *s, const int64_t *ids, size_t n) {
  if (!n) return 0;
  LOCK;
  int rc = begin(s);
  int64_t now = (int64_t)reqsig_now_ms();
  for (size_t i = 0; i < n && !rc; i++)
    rc = exec_stmt(s, prep(s, "UPDATE jobs SET state = 'done', error = '', finished_ms = ? WHERE id = ?", "ii", now, ids[i]),
                   "job state");
  if (!rc) rc = commit(s);
  else rollback(s);
  UNLOCK;
  return rc;
}

int store_job_counts(store *s, int64_t *queued, int64_t *running) {
  LOCK;
  /* two searches of the state index (a SUM over the table read every job
   * row's index entry: per submission, O(jobs ever stored)) */
  sqlite3_stmt *st = prep(s,
                          "SELECT (SELECT COUNT(*) FROM jobs WHERE state = 'queued'), "
                          "(SELECT COUNT(*) FROM jobs WHERE state = 'running')",
                          "");
  int rc = st && sqlite3_step(st) == SQLITE_ROW ? 0 : dberr(s, "counts");
  if (!rc) {
    *queued = sqlite3_column_int64(st, 0);
    *running = sqlite3_column_int64(st, 1);
  }
  unprep(s, st);
  UNLOCK;
  return rc;
}

/* Jobs the workers take before job id (queued with a smaller id, or
 * running): its place in the queue, for the status's progress. */
int store_job_ahead(store *s, int64_t id, int64_t *n) {
  LOCK;
  sqlite3_stmt *st = prep(s, "SELECT COUNT(*) FROM jobs WHERE (state = 'queued' AND id < ?) OR (state = 'running' AND id != ?)",
                          "ii", id, id);
  int rc = st && sqlite3_step(st) == SQLITE_ROW ? 0 : dberr(s, "ahead");
  if (!rc) *n = sqlite3_column_int64(st, 0);
  unprep(s, st);
  UNLOCK;
  return rc;
}

int store_model_budgeted(store *s, int64_t id, int *yes) {
  LOCK;
  sqlite3_stmt *st = prep(s, "SELECT COUNT(*) FROM model_dps WHERE model = ? AND budget >= 0", "i", id);
  int rc = st && sqlite3_step(st) == SQLITE_ROW ? 0 : dberr(s, "budgeted");
  if (!rc) *yes = sqlite3_column_int64(st, 0) > 0;
  unprep(s, st);
  UNLOCK;
  return rc;
}

int store_job_party_active(store *s, const char *dp, int64_t *n) {
  LOCK;
  sqlite3_stmt *st = prep(s, "SELECT COUNT(*) FROM jobs WHERE dp = ? AND state IN ('staged', 'queued', 'running')",
                          "s", dp);
  int rc = st && sqlite3_step(st) == SQLITE_ROW ? 0 : dberr(s, "active");
  if (!rc) *n = sqlite3_column_int64(st, 0);
  unprep(s, st);
  UNLOCK;
  return rc;
}

json_t *store_jobs_json(store *s, const char *dp) {
  json_t *a = json_array();
  LOCK;
  sqlite3_stmt *st = prep(s, "SELECT id, model, state, count FROM jobs WHERE dp = ? AND state != 'staged' ORDER BY id", "s", dp);
  while (st && sqlite3_step(st) == SQLITE_ROW)
    json_array_append_new(a, json_pack("{sI sI ss sI}", "id", (json_int_t)sqlite3_column_int64(st, 0), "model",
                                       (json_int_t)sqlite3_column_int64(st, 1), "state",
                                       (const char *)sqlite3_column_text(st, 2), "count",
                                       (json_int_t)sqlite3_column_int64(st, 3)));
  unprep(s, st);
  UNLOCK;
  return a;
}

int store_session_add(store *s, const char *id, const char *party, int64_t epoch, int64_t seq) {
  LOCK;
  int rc = exec_stmt(s, prep(s, "INSERT OR REPLACE INTO sessions(id, party, epoch, seq) VALUES(?, ?, ?, ?)", "ssii", id,
                             party, epoch, seq),
                     "session add");
  UNLOCK;
  return rc;
}

int store_session_get(store *s, const char *id, char party[65], int64_t *epoch, int64_t *seq) {
  LOCK;
  sqlite3_stmt *st = prep(s, "SELECT party, epoch, seq FROM sessions WHERE id = ?", "s", id);
  int rc = st ? 0 : dberr(s, "session");
  if (!rc && sqlite3_step(st) == SQLITE_ROW) {
    copy_col(party, 65, st, 0);
    *epoch = sqlite3_column_int64(st, 1);
    *seq = sqlite3_column_int64(st, 2);
  } else if (!rc) {
    rc = hetee_error(HETEE_ERR_NOT_FOUND, "no such session");
  }
  unprep(s, st);
  UNLOCK;
  return rc;
}

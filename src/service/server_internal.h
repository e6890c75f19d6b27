/*
 * server_internal.h — the pieces of `hetee server` and their small
 * interfaces (Redis-style: transport, request parsing, route table and
 * storage in separate files):
 *   http.c      transport: libmicrohttpd, bodies streamed to memory or to a
 *               temp file under hard limits, responses
 *   reqsig.c    signed request format; replay.c the nonce window
 *   routes.c    route table, authentication, content types, dispatch
 *   h_*.c       handlers grouped by resource (enclave, models, jobs, misc)
 *   store.c     SQLite (WAL): parties, models, policies, jobs, sessions
 *   blobs.c     ciphertext files written atomically
 *   sup.c       the supervised enclave (one handle, a lock, epochs)
 *   jobs.c      queue and worker threads running the engine
 *   metrics.c   Prometheus counters
 */
#ifndef HETEE_SERVICE_INTERNAL_H
#define HETEE_SERVICE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>

#include "hetee/engine.h"
#include "hetee/host.h"
#include "hetee/server.h"
#include "service/reqsig.h"

#define SRV_PATH_MAX 4096
#define SRV_JSON_MAX (64u << 10)     /* JSON request bodies */
#define SRV_BIN_MEM_MAX (1u << 20)   /* small binary bodies (handshakes, session messages) */
#define SRV_MAX_CONNECTIONS 64
#define SRV_SESSION_SLOTS 64         /* the enclave's session table (oldest replaced) */
#define SRV_NAME_MAX 64              /* model names */
#define SRV_RETRY_AFTER_S 2

typedef struct server server;

/* ---- replay.c: (key, nonce) seen inside the window ---------------------- */
typedef struct replay replay;
int replay_new(size_t cap, replay **out);
void replay_free(replay *r);
/* 0: first time; HETEE_ERR_REPLAY: seen; HETEE_ERR_LIMIT: table full of
 * live entries (the caller answers 503). */
int replay_check(replay *r, const uint8_t key[32], const uint8_t nonce[16], uint64_t ts_ms, uint64_t now_ms);

/* ---- store.c ------------------------------------------------------------ */
typedef struct store store;
#define ROLE_MP 1
#define ROLE_DP 2

typedef struct st_model {
  int64_t id;
  char owner[65], name[SRV_NAME_MAX + 1], state[24], output[16];
  int k, prec;
  int64_t bytes, created_ms;
  int micro_batch, in_size, classes, release_kind;
  double input_scale; /* factor for uint8 pixels, as the MP declared it (public) */
} st_model;

typedef struct st_job {
  int64_t id, model;
  char dp[65], session[33], state[24], error[256];
  int64_t count, attempts, created_ms, started_ms, finished_ms, epoch, seq;
} st_job;

int store_open(const char *path, store **out);
void store_close(store *s);
/* A per-boot counter (starts the sessions' epochs of this process). */
int store_next_boot(store *s, int64_t *boot);
/* Crash recovery at start: staged uploads dropped (ids returned through
 * the callback so their files go too), running jobs back to queued. */
int store_recover(store *s, void (*drop)(void *ctx, const char *kind, int64_t id), void *ctx);

int store_party_get(store *s, const char *pk, int *role); /* HETEE_ERR_NOT_FOUND */
int store_party_add(store *s, const char *pk, int role);  /* HETEE_ERR_STATE: other role */

int store_model_stage(store *s, const char *owner, const char *name, int64_t *id);
int store_model_commit(store *s, const st_model *m); /* staged -> pending_policy with the plan facts */
int store_model_get(store *s, int64_t id, st_model *out);
int store_model_set_policy(store *s, int64_t id, const char *output, int k, int prec, const char (*dps)[65],
                           const int64_t *budgets, size_t n);
/* Whether dp may use model id: HETEE_ERR_NOT_FOUND (no such model / not
 * allowed: the same answer), *budget (-1: none) and *used. */
int store_model_dp(store *s, int64_t id, const char *dp, int64_t *budget, int64_t *used);
int store_model_delete(store *s, int64_t id);
/* Whether model id's policy gives some data provider a budget (*yes 1): only
 * then can the enclave hold a query budget for it (h_model_policy refuses
 * an enclave budget without one for every data provider). */
int store_model_budgeted(store *s, int64_t id, int *yes);
/* JSON arrays for listings; caller json_decref. */
json_t *store_models_json(store *s, const char *party, int role);
json_t *store_model_dps_json(store *s, int64_t id);
int store_model_active_jobs(store *s, int64_t id, int64_t *n);

/* Stages a job row, charging `count` images to dp's budget for the model
 * (HETEE_ERR_LIMIT: budget exhausted); commit makes it queued. The row
 * holds the job's encoded signed authorization (auth, auth_len) and the
 * size of the input witnesses at the end of its input file (witness; 0:
 * the ciphertext-digest form). */
int store_job_stage(store *s, int64_t model, const char *dp, const char *session, int64_t count, int64_t epoch,
                    int64_t seq, const uint8_t *auth, size_t auth_len, int64_t witness, int64_t *id);
/* The job's stored authorization (*auth malloc'd; NULL for a job an older
 * server stored, whose authorization is the file DIR/jobs/ID.auth) and the
 * size of the witnesses at the end of its input file. */
int store_job_stored(store *s, int64_t id, uint8_t **auth, size_t *auth_len, int64_t *witness);
int store_job_commit(store *s, int64_t id);
int store_job_get(store *s, int64_t id, st_job *out);
/* Oldest queued job -> running (attempts + 1). HETEE_ERR_NOT_FOUND: none. */
int store_job_take(store *s, st_job *out);
/* Up to max more queued jobs of model whose counts are whole micro-batches
 * of mb, oldest first, -> running (attempts + 1), in one transaction. */
int store_job_take_batch(store *s, int64_t model, uint32_t mb, size_t max, st_job *out, size_t *n);
int store_job_set_state(store *s, int64_t id, const char *state, const char *error);
/* Deletes job id's row if the job is done or failed (*deleted = 1), in
 * one durable statement; *deleted = 0 if it is not (any more) there or
 * not finished. */
int store_job_delete(store *s, int64_t id, int *deleted);
/* Up to max ids of finished jobs (done or failed) that finished at or
 * before before_ms, oldest first. */
int store_jobs_expired(store *s, int64_t before_ms, int64_t *ids, size_t max, size_t *n);
/* *exists = whether job id has a row (in any state). */
int store_job_exists(store *s, int64_t id, int *exists);
/* Jobs ids[0..n) -> done, in one durable commit. */
int store_jobs_done(store *s, const int64_t *ids, size_t n);
int store_job_counts(store *s, int64_t *queued, int64_t *running);
/* Queued jobs before id plus running jobs other than id (the status's progress). */
int store_job_ahead(store *s, int64_t id, int64_t *n);
int store_job_party_active(store *s, const char *dp, int64_t *n);
json_t *store_jobs_json(store *s, const char *dp);

int store_session_add(store *s, const char *id, const char *party, int64_t epoch, int64_t seq);
int store_session_get(store *s, const char *id, char party[65], int64_t *epoch, int64_t *seq);

/* ---- blobs.c ------------------------------------------------------------ */
/* A new temp file under dir/tmp (path out); O_EXCL, mode 0600. */
int blob_tmp(const char *data_dir, char path[SRV_PATH_MAX], int *fd);
/* fsync(fd), close, rename to dst, fsync the directory. */
int blob_commit(int fd, const char *tmp, const char *dst);
/* Writes bytes atomically to dst (temp, fsync, rename, fsync dir). */
int blob_write(const char *data_dir, const char *dst, const uint8_t *b, size_t n);
/* The same without the directory's fsync: a caller that places several
 * files in one directory renames them all, then calls blob_sync_dir once
 * before acknowledging any of them. */
int blob_commit_nodirsync(int fd, const char *tmp, const char *dst);
int blob_write_nodirsync(const char *data_dir, const char *dst, const uint8_t *b, size_t n);
/* fsync of the directory holding path (its renames are then durable). */
int blob_sync_dir(const char *path);
/* Reads a whole file of at most max bytes. */
int blob_read(const char *path, uint64_t max, uint8_t **out, size_t *len);
void blob_path(const server *S, char out[SRV_PATH_MAX], const char *kind, int64_t id, const char *ext);

/* ---- sup.c: the supervised enclave -------------------------------------- */
typedef struct sup {
  pthread_mutex_t lock; /* held around every enclave call */
  hetee_host_enclave *e;
  char seal_path[SRV_PATH_MAX];
  unsigned restarts_seen;
  int64_t epoch;        /* boot * 2^20 + restarts: sessions die with it */
  int64_t boot;
  int64_t next_seq;     /* sessions opened in this epoch */
  uint8_t *bundle;
  size_t bundle_len;
  uint8_t bundle_fp[32]; /* hetee_key_bundle_fingerprint of bundle */
  hetee_ckks_context *ctx;
  hetee_host_info info;
  uint64_t seal_taken;        /* states taken from the enclave (under lock) */
  pthread_mutex_t seal_lock;  /* the seal file; held while writing it */
  uint64_t seal_written;      /* the newest state on disk (under seal_lock) */
} sup;
int sup_start(sup *u, const hetee_server_options *o, int64_t boot);
void sup_stop(sup *u);
/* With u->lock held: notices an automatic restart (new epoch). */
void sup_note_restarts(sup *u);
/* With u->lock held: seals the enclave state to the seal file. */
int sup_seal(sup *u);
/* The same in two steps, so that the file write and its fsyncs happen
 * without the enclave lock: take (u->lock held) gets the sealed state and
 * its sequence number; write (u->lock not needed) puts it on disk unless a
 * newer state is there already (which covers it). A job is acknowledged
 * done only after its write returned 0. */
int sup_seal_take(sup *u, uint8_t **blob, size_t *len, uint64_t *seq);
int sup_seal_write(sup *u, const uint8_t *blob, size_t len, uint64_t seq);

/* ---- metrics.c ---------------------------------------------------------- */
typedef struct metrics {
  pthread_mutex_t lock;
  uint64_t req_by_class[6]; /* 1xx..5xx */
  uint64_t req_total, bytes_in;
  uint64_t jobs_done, jobs_failed, images;
  double job_latency_sum, job_wall_sum, job_enclave_sum;
  uint64_t latency_buckets[12];
  uint64_t batches, batched_jobs; /* engine runs of several jobs, and their jobs */
  uint64_t signed_ok[2];          /* signed requests verified: v2, v3 */
} metrics;
void metrics_request(metrics *m, int status, uint64_t bytes_in);
void metrics_signed(metrics *m, int v3);
void metrics_job(metrics *m, int ok, double latency_s, double wall_s, double enclave_s, uint64_t images);
void metrics_batch(metrics *m, uint64_t jobs);
char *metrics_render(server *S); /* malloc'd Prometheus text */

/* ---- model cache -------------------------------------------------------- */
typedef struct model_cache_entry {
  int64_t id;
  hetee_engine_model *em;
  int refs;
  int64_t bound_epoch; /* the enclave epoch it was bound in (MODEL_LOAD); -1: not bound */
  hetee_engine_runner *runner; /* its jobs' shared compute pool and buffers (made at its first run) */
  struct model_cache_entry *next;
} model_cache_entry;

/* ---- the server --------------------------------------------------------- */
#define SRV_PROG_RING 1024

struct server {
  hetee_server_options o;
  char data_dir[3072]; /* room for the file names under it in SRV_PATH_MAX */
  uint64_t start_ms;
  store *db;
  replay *rp;
  sup en;
  metrics m;
  pthread_mutex_t qlock; /* queue: workers wait on qcond */
  pthread_cond_t qcond;
  int stopping;
  pthread_t *workers;
  int nworkers, threads;
  pthread_mutex_t cache_lock;
  model_cache_entry *cache;
  /* GET /v1/jobs/ID?wait=S: each waiting handler is on the list `waiters`
   * (under wlock) with its own condition, signalled when its job finishes
   * (jobs_finished), when its job's progress moves if it asked for
   * progress (&progress=D), and when the server closes (jobs_wake_all);
   * before, every finish woke every waiter of every job */
  pthread_mutex_t wlock;
  pthread_cond_t wcond; /* unused (kept initialised for the teardown) */
  pthread_cond_t pcond; /* unused */
  struct job_waiter {
    int64_t id;
    int prog; /* woken on progress steps too */
    pthread_cond_t cv;
    struct job_waiter *next;
  } *waiters;
  int closing;
  /* the ids of the last SRV_FIN_RING jobs that reached done / failed, in
   * order (fin_seq counts them all): a woken waiter reads its job from the
   * store again only when its id is among those finished since it looked */
  int64_t fin_ring[64];
  uint64_t fin_seq;
  /* progress of the last SRV_PROG_RING jobs submitted or run since the
   * server started (under wlock; a change wakes the pcond waiters): engine
   * steps (stages x micro-batches) done of total */
  struct job_prog {
    int64_t id;
    uint64_t done, total;
  } prog[SRV_PROG_RING];
  struct rworker *refine; /* refine_worker.c */
  /* retention (--job-ttl, jobs.c jobs_retention_*): a thread deleting the
   * jobs finished more than o.job_ttl_s ago */
  pthread_t ttl_tid;
  int ttl_started, ttl_stop;
  pthread_mutex_t ttl_mu;
  pthread_cond_t ttl_cv;
  struct reqkey *rk;       /* reqkey.c: the v3 request-authentication key */
};

/* ---- reqkey.c: the server's X25519 key for v3 requests ------------------ */
/* DIR/request.key ("HTRK" | u16 1 | u16 0 | secret[32] | public[32], 0600,
 * written atomically at first start): loaded, or created when absent.
 * HETEE_ERR_FORMAT for a file that is not such a key (the server refuses
 * to start rather than replace it). */
int reqkey_open(const char *data_dir, struct reqkey **out);
void reqkey_free(struct reqkey *k);
void reqkey_public(const struct reqkey *k, uint8_t xpk[32]);
/* The v3 MAC key shared with the party whose Ed25519 key is party_pk (a
 * small cache of the latest parties: one X25519 computation per party, not
 * per request). HETEE_ERR_CRYPTO: the key has no usable X25519 form. */
int reqkey_mac_key(struct reqkey *k, const uint8_t party_pk[32], uint8_t mac_key[32]);

/* A job reached done / failed: wakes the requests waiting on jobs. */
void jobs_finished(server *S, int64_t id);
/* Wakes every waiting handler (the server closes). Under S->wlock. */
void jobs_wake_all_locked(server *S);
uint64_t jobs_finished_seq(server *S);
/* Job id's progress: (done, total) engine steps of its run (stages x
 * micro-batches); done never goes backwards (a run started again after an
 * enclave restart keeps the larger value until it passes it). _get: 0 and
 * the values if the server knows the job's progress, else nonzero; the
 * _locked variant with S->wlock held. */
void jobs_progress_set(server *S, int64_t id, uint64_t done, uint64_t total);
int jobs_progress_get(server *S, int64_t id, uint64_t *done, uint64_t *total);
int jobs_progress_get_locked(server *S, int64_t id, uint64_t *done, uint64_t *total);

/* A model from the cache (loaded from its file on first use); put it back
 * with model_put. */
int model_get(server *S, int64_t id, hetee_engine_model **em);
void model_put(server *S, int64_t id);
/* The runner of model id's object em (held through model_get), made at the first call;
 * NULL when there is none (HETEE_SERVER_RUNNER=0, or no memory: the run
 * then makes its own pool and buffers). */
hetee_engine_runner *model_runner(server *S, int64_t id, const hetee_engine_model *em);
void model_drop(server *S, int64_t id);
void model_cache_add(server *S, int64_t id, hetee_engine_model *em);
/* With S->en.lock held: streams model id (em, from model_get) to the enclave
 * unless it is bound in the current epoch already (force: bind anyway). */
int model_bind_locked(server *S, int64_t id, const hetee_engine_model *em, int force);

/* A submitted job's parsed input, witnesses (witnessed: the form with
 * witnesses) and decoded authorization, taken over (the pointers set to
 * NULL, w zeroed) for its first run, after its files and row are durable;
 * bytes: its body's size. Nonzero: not kept (over the bound), the caller
 * still owns them. */
int jobs_handoff_put(int64_t id, hetee_engine_input **in, hetee_engine_witnesses *w, int witnessed, hetee_job_auth **a,
                     size_t bytes);
void jobs_handoff_drop(int64_t id);
int jobs_start(server *S);
void jobs_stop(server *S);
void jobs_kick(server *S);

/* ---- transport <-> routes ---------------------------------------------- */
typedef struct srv_req {
  server *S;
  const char *method;
  char target[REQSIG_MAX_TARGET + 1]; /* path + query as sent */
  char path[REQSIG_MAX_TARGET + 1];   /* decoded path, no query */
  void *conn;                         /* struct MHD_Connection */
  /* body */
  int body_kind;
  uint8_t *mem;
  size_t len;
  int fd;
  char file[SRV_PATH_MAX];
  uint64_t total;
  uint8_t body_hash[32]; /* v2: BLAKE2b-256; v3: the Poly1305 tag in [0..16) */
  uint8_t mac_key[32];   /* v3: set by routes_begin, wiped once the body state has it */
  /* authentication */
  int authed;
  reqsig sig;
  char party[65];
  int role; /* 0: not registered */
  /* route */
  const struct route *rt;
  int64_t ids[2];
  int nids;
  void *hctx; /* handler state between the header and body phases */
} srv_req;

typedef struct srv_resp {
  int status;
  const char *ctype;
  uint8_t *body; /* malloc'd */
  size_t len;
  char file[SRV_PATH_MAX]; /* non-empty: the body is this file */
  int retry_after;
  char location[128];
  char etag[72]; /* non-empty: an ETag header (quoted) */
} srv_resp;

/* Query parameter of the request (NULL: absent). */
const char *req_query(srv_req *q, const char *name);
const char *req_header(srv_req *q, const char *name);

/* Response helpers: JSON body (steals j), error {"error": code, "message": ...}. */
void resp_json(srv_resp *r, int status, json_t *j);
void resp_error(srv_resp *r, int status, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Maps a hetee_status to an HTTP status and an error from hetee_last_error(). */
void resp_status(srv_resp *r, int rc, const char *what);

#define BODY_NONE 0
#define BODY_JSON 1
#define BODY_BIN_MEM 2
#define BODY_BIN_FILE 3

#define AUTH_NONE 0
#define AUTH_ANY 1 /* signed, registration not required (POST /v1/parties) */
#define AUTH_PARTY 2
#define AUTH_MP 3
#define AUTH_DP 4

typedef int (*route_pre_fn)(srv_req *q, srv_resp *r);   /* before the body: 0 or a response queued */
typedef void (*route_fn)(srv_req *q, srv_resp *r);

typedef struct route {
  const char *method;
  const char *pattern; /* "/v1/models/{id}/policy" */
  int auth;
  int body;
  route_pre_fn pre;
  route_fn fn;
} route;

/* routes.c */
/* Finds the route; *r filled with 404 / 405 when none. */
const route *routes_match(srv_req *q, srv_resp *r);
/* Header phase: content type, length, authentication (everything but the
 * signature, which covers the body). 0: go on; otherwise *r is the answer. */
int routes_begin(srv_req *q, srv_resp *r);
uint64_t routes_body_limit(srv_req *q);
/* After the body: signature, replay, handler. */
void routes_finish(srv_req *q, srv_resp *r);

/* handlers */
void h_health(srv_req *q, srv_resp *r);
void h_metrics(srv_req *q, srv_resp *r);
void h_party_register(srv_req *q, srv_resp *r);
void h_enclave_info(srv_req *q, srv_resp *r);
void h_enclave_bundle(srv_req *q, srv_resp *r);
void h_enclave_evidence(srv_req *q, srv_resp *r);
void h_session_open(srv_req *q, srv_resp *r);
void h_session_msg(srv_req *q, srv_resp *r);
void h_model_upload(srv_req *q, srv_resp *r);
void h_model_policy(srv_req *q, srv_resp *r);
void h_model_list(srv_req *q, srv_resp *r);
void h_model_show(srv_req *q, srv_resp *r);
void h_model_plan(srv_req *q, srv_resp *r);
void h_model_delete(srv_req *q, srv_resp *r);
int h_job_pre(srv_req *q, srv_resp *r);
void h_job_submit(srv_req *q, srv_resp *r);
void h_job_list(srv_req *q, srv_resp *r);
void h_job_show(srv_req *q, srv_resp *r);
void h_job_result(srv_req *q, srv_resp *r);
void h_job_auth(srv_req *q, srv_resp *r);
void h_job_delete(srv_req *q, srv_resp *r);
/* Deletes finished job id: its row (one durable statement; *deleted = 0
 * if it was not there or not finished), then its files and a sync of
 * DIR/jobs (jobs.c; DELETE /v1/jobs/ID and the retention thread). */
int jobs_delete_finished(server *S, int64_t id, int *deleted);
/* The extensions of a job's files under DIR/jobs (SRV_JOB_EXTS of them):
 * its input, its results, an older server's witnesses and authorization. */
#define SRV_JOB_EXTS 4
extern const char *const srv_job_ext[SRV_JOB_EXTS];
/* Unlinks job id's files, those that exist (no directory sync). */
void jobs_unlink_files(const server *S, int64_t id);
/* The retention thread (o.job_ttl_s > 0): started with the workers,
 * stopped before them. */
int jobs_retention_start(server *S);
void jobs_retention_stop(server *S);

/* Whether session (epoch, seq) is still in the enclave (lock not needed:
 * reads epoch / next_seq under u->lock). */
int session_live(server *S, int64_t epoch, int64_t seq);

/* http.c */
int http_start(server *S, const char *host, unsigned port, unsigned *bound, void **daemon);
void http_stop(void *daemon);

#endif

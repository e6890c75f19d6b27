/*
 * h_jobs.c — inference jobs of a data provider. Submission is checked in
 * two phases: before the body (the model names this DP, budget left, an
 * authorization is given, queue room: 403 / 400 / 429 / 503 with
 * Retry-After) and after it (the encrypted input loads under the model's
 * plan and the enclave's parameters, the authorization is the DP's
 * signature over it, the budget covers its images).
 * A job is acknowledged (202) only once its input file and its row are
 * durable. Every job is bound (docs/security.md, "Integrity of the host's
 * work"): the submission carries the DP's detached Ed25519 authorization of
 * its input micro-batches (nonce, signature), checked here against the
 * input and stored in the job's row for the enclave, which checks it
 * again. With ?witness=W the body ends with the DP's sealed input
 * witnesses (W bytes), checked against the plan and the input's
 * micro-batches; the authorization is then over the witnesses' digests
 * (the enclave starts the job from them). The body as received is the
 * job's one file, DIR/jobs/ID.htei (W in the row).
 * Without it, the ciphertext-digest form of older clients. Results are the releases the enclave sealed to the DP's
 * identity; the server shows a job to its DP only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hetee/common.h"
#include "enclave/wire/proto.h"
#include "service/server_internal.h"

json_t *req_json(srv_req *q, srv_resp *r);

typedef struct {
  int64_t model;
  uint8_t nonce[16], sig[64];
  uint64_t witness; /* ?witness=W: the body's last W bytes are the input witnesses (0: ciphertext-digest form) */
} job_pre;

static int parse_id(const char *s, int64_t *out) {
  if (!s || !*s || strlen(s) > 15) return -1;
  int64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (*s - '0');
  }
  *out = v;
  return v >= 1 ? 0 : -1;
}

int h_job_pre(srv_req *q, srv_resp *r) {
  server *S = q->S;
  job_pre *p = calloc(1, sizeof *p);
  if (!p) {
    resp_error(r, 503, "memory", "no memory");
    return -1;
  }
  q->hctx = p;
  if (parse_id(req_query(q, "model"), &p->model)) {
    resp_error(r, 400, "bad_model", "?model=ID is required");
    return -1;
  }
  st_model m;
  if (store_model_get(S->db, p->model, &m)) {
    resp_error(r, 404, "not_found", "no model %lld", (long long)p->model);
    return -1;
  }
  int64_t budget = -1, used = 0;
  if (store_model_dp(S->db, p->model, q->party, &budget, &used)) {
    resp_error(r, 403, "not_allowed", "model %lld's policy does not name this data provider", (long long)p->model);
    return -1;
  }
  if (budget >= 0 && used >= budget) {
    resp_error(r, 403, "budget", "query budget for model %lld exhausted (%lld of %lld images used)", (long long)p->model,
               (long long)used, (long long)budget);
    return -1;
  }
  /* the DP's detached authorization of this input (checked after the body) */
  const char *nonce = req_query(q, "nonce"), *auth = req_query(q, "auth");
  if (!nonce || !auth || strlen(nonce) != 32 || strlen(auth) != 128 || reqsig_unhex(nonce, p->nonce, 16) ||
      reqsig_unhex(auth, p->sig, 64)) {
    resp_error(r, 400, "bad_authorization",
               "?nonce=<32 hex>&auth=<128 hex>: the data provider's signed authorization of this input is required");
    return -1;
  }
  /* ?witness=W: the body is the input file followed by its W-byte
   * witness file (HTWT), and the authorization is over the witnesses */
  const char *wit = req_query(q, "witness");
  if (wit) {
    char *end;
    unsigned long long w = strtoull(wit, &end, 10);
    if (end == wit || *end || *wit == '-' || w < 16 || w > S->o.max_input_bytes) {
      resp_error(r, 400, "bad_witness", "?witness=W: the size in bytes of the input witnesses at the end of the body");
      return -1;
    }
    p->witness = w;
  }
  int64_t qd = 0, run = 0, mine = 0;
  if (store_job_counts(S->db, &qd, &run) || (uint64_t)(qd + run) >= S->o.max_queue) {
    resp_error(r, 503, "queue_full", "the job queue is full (%u jobs); retry later", S->o.max_queue);
    r->retry_after = SRV_RETRY_AFTER_S;
    return -1;
  }
  if (store_job_party_active(S->db, q->party, &mine) || (uint64_t)mine >= S->o.max_party_jobs) {
    resp_error(r, 429, "too_many_jobs", "this data provider has %lld unfinished jobs (limit %u); retry later",
               (long long)mine, S->o.max_party_jobs);
    r->retry_after = SRV_RETRY_AFTER_S;
    return -1;
  }
  return 0;
}

/* The received body, read from its temp file where the transport wrote it:
 * mapped (the page cache's pages, no copy), not read into a new buffer. */
static int map_body(srv_req *q, uint8_t **buf, size_t *len) {
  struct stat st;
  if (q->fd < 0 || fstat(q->fd, &st) != 0 || (uint64_t)st.st_size != q->total || st.st_size <= 0)
    return hetee_error(HETEE_ERR_IO, "the received body's temp file is not the %llu bytes received",
                       (unsigned long long)q->total);
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED | MAP_POPULATE, q->fd, 0); /* one call, not a fault per page */
  if (m == MAP_FAILED) return hetee_error(HETEE_ERR_IO, "cannot map the received body: %s", strerror(errno));
  *buf = m;
  *len = (size_t)st.st_size;
  return 0;
}

static void unmap_body(uint8_t *buf, size_t len) {
  if (buf) munmap(buf, len);
}

void h_job_submit(srv_req *q, srv_resp *r) {
  server *S = q->S;
  job_pre *p = q->hctx;
  if (q->total == 0) {
    resp_error(r, 400, "empty_body", "the body is the encrypted input file");
    return;
  }
  hetee_engine_model *em = NULL;
  int rc = model_get(S, p->model, &em);
  if (rc) {
    resp_status(r, rc, "model");
    return;
  }
  uint8_t *buf = NULL, *wb = NULL;
  size_t len = 0, wl = 0;
  hetee_engine_input *in = NULL;
  hetee_engine_witnesses w = {0};
  rc = map_body(q, &buf, &len);
  if (!rc && p->witness >= len)
    rc = hetee_error(HETEE_ERR_FORMAT, "a body of %zu bytes cannot hold %llu bytes of witnesses and an input", len,
                     (unsigned long long)p->witness);
  size_t inlen = len - (size_t)(rc ? 0 : p->witness);
  if (!rc) rc = hetee_engine_input_load(S->en.ctx, hetee_engine_model_plan(em), buf, inlen, &in);
  if (rc) {
    unmap_body(buf, len);
    model_put(S, p->model);
    resp_status(r, rc, "encrypted input refused");
    return;
  }
  int64_t count = (int64_t)hetee_engine_input_count(in);
  const hetee_engine_plan *plan = hetee_engine_model_plan(em);
  uint64_t pmb = hetee_engine_plan_micro_batch(plan);
  uint64_t steps = pmb ? ((uint64_t)count + pmb - 1) / pmb * hetee_engine_plan_num_stages(plan) : 0;
  /* the authorization must be the caller's signature over this very input
   * (the enclave checks it again before anything is decrypted): over its
   * witnesses (shape checked against the plan and the input's
   * micro-batches, digests recomputed), else over its ciphertexts */
  hetee_job_auth *a = calloc(1, sizeof *a);
  uint8_t *ab = NULL;
  size_t al = 0;
  rc = a ? 0 : hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc && p->witness) {
    const hetee_engine_plan *pl = hetee_engine_model_plan(em);
    rc = hetee_engine_witnesses_load(pl, (uint32_t)p->model, buf + inlen, (size_t)p->witness, &w);
    size_t mb = hetee_engine_plan_micro_batch(pl), nmb = ((size_t)count + mb - 1) / mb;
    if (!rc && w.n != nmb) rc = hetee_error(HETEE_ERR_SHAPE, "%zu witnesses for %zu micro-batches", w.n, nmb);
    for (size_t k = 0; !rc && k < nmb; k++) {
      size_t bk = (size_t)count - k * mb < mb ? (size_t)count - k * mb : mb;
      if (w.batch[k] != bk) rc = hetee_error(HETEE_ERR_SHAPE, "witness %zu: %u samples, the input has %zu", k, w.batch[k], bk);
    }
    if (!rc) rc = hetee_job_auth_witness_digests(a, (uint32_t)p->model, &w);
    if (rc) {
      hetee_engine_witnesses_clear(&w);
      free(a);
      hetee_engine_input_free(in);
      unmap_body(buf, len);
      model_put(S, p->model);
      resp_status(r, rc, "input witnesses refused");
      return;
    }
    /* stored in place: the end of the job's input file */
    wb = buf + inlen;
    wl = (size_t)p->witness;
  } else if (!rc) {
    rc = hetee_job_auth_digests(a, (uint32_t)p->model, in, hetee_engine_model_plan(em));
  }
  model_put(S, p->model);
  if (!rc) {
    memcpy(a->nonce, p->nonce, 16);
    memcpy(a->sig, p->sig, 64);
    rc = reqsig_unhex(q->party, a->dp, 32) ? hetee_error(HETEE_ERR_INTERNAL, "party key") : 0;
  }
  /* from here on, in, w and a are the job's (handed to the worker below,
   * or freed at the end) */
  int unsigned_by_caller = !rc && hetee_job_auth_verify(a) != 0;
  if (unsigned_by_caller && p->witness) {
    /* a client that signed the first form of the witness digests (the
     * whole sealed box hashed, src/enclave/wire/proto.h): the enclave
     * still accepts those, so the server does too */
    for (size_t k = 0; k < w.n; k++)
      hetee_witness_digest_v1((uint32_t)p->model, w.batch[k], w.blob[k], w.len[k], a->digest[k]);
    unsigned_by_caller = hetee_job_auth_verify(a) != 0;
  }
  if (unsigned_by_caller) {
    rc = HETEE_ERR_AUTH;
    resp_error(r, 403, "bad_authorization", "the signed authorization is not this data provider's for this input");
    goto out;
  }
  if (!rc) rc = hetee_job_auth_encode(a, &ab, &al);
  if (rc) {
    resp_status(r, rc, "authorization");
    goto out;
  }
  int64_t id = 0;
  /* the authorization and the witnesses' size go in the job's row (durable
   * with store_job_commit's below), the body as received (input, then the
   * witnesses) is the job's one file */
  rc = store_job_stage(S->db, p->model, q->party, "", count, 0, 0, ab, al, wb ? (int64_t)wl : 0, &id);
  free(ab);
  if (rc == HETEE_ERR_LIMIT) {
    resp_error(r, 403, "budget", "%s", hetee_last_error());
    goto out;
  }
  char dst[SRV_PATH_MAX];
  if (!rc) {
    blob_path(S, dst, "jobs", id, "htei");
    rc = blob_commit_nodirsync(q->fd, q->file, dst);
    q->fd = -1;
    if (!rc) q->file[0] = 0;
  }
  /* the fsync of DIR/jobs makes the rename durable, before the row that
   * acknowledges the job */
  if (!rc) rc = blob_sync_dir(dst);
  /* what was checked here goes to the worker in memory (kept before the
   * row can be taken, dropped again if the row is not committed) */
  int handed = !rc && !jobs_handoff_put(id, &in, &w, p->witness != 0, &a, (size_t)q->total);
  if (!rc) rc = store_job_commit(S->db, id);
  if (rc) {
    if (handed) jobs_handoff_drop(id);
    if (id) (void)store_job_set_state(S->db, id, "failed", "not stored");
    resp_status(r, rc, "storing the job");
    goto out;
  }
  jobs_progress_set(S, id, 0, steps);
  jobs_kick(S);
  snprintf(r->location, sizeof r->location, "/v1/jobs/%lld", (long long)id);
  resp_json(r, 202, json_pack("{sI sI ss sI}", "id", (json_int_t)id, "model", (json_int_t)p->model, "state", "queued",
                              "count", (json_int_t)count));
out:
  unmap_body(buf, len);
  hetee_engine_input_free(in);
  hetee_engine_witnesses_clear(&w);
  free(a);
}

static int own_job(srv_req *q, srv_resp *r, st_job *j) {
  if (store_job_get(q->S->db, q->ids[0], j) || strcmp(j->dp, q->party)) {
    resp_error(r, 404, "not_found", "no job %lld", (long long)q->ids[0]);
    return -1;
  }
  return 0;
}

void h_job_list(srv_req *q, srv_resp *r) { resp_json(r, 200, json_pack("{so}", "jobs", store_jobs_json(q->S->db, q->party))); }

#define WAIT_MAX_S 10

static int job_final(const st_job *j) { return !strcmp(j->state, "done") || !strcmp(j->state, "failed"); }

/* Parses ?wait=S (0..WAIT_MAX_S) and &progress=D of q. Returns 0 (*s = -1
 * when there is no ?wait), or 1 with a 400 answer set in r. */
static int wait_args(srv_req *q, srv_resp *r, long *s, int *want_prog, uint64_t *pd) {
  *s = -1;
  *want_prog = 0;
  *pd = 0;
  const char *w = req_query(q, "wait");
  if (!w) return 0;
  char *end;
  long v = strtol(w, &end, 10);
  if (end == w || *end || v < 0 || v > WAIT_MAX_S) {
    resp_error(r, 400, "bad_wait", "?wait=S: seconds, 0..%d", WAIT_MAX_S);
    return 1;
  }
  /* &progress=D: also answer once more than D steps are done */
  const char *pv = req_query(q, "progress");
  if (pv) {
    char *pe;
    unsigned long long d = strtoull(pv, &pe, 10);
    if (pe == pv || *pe || *pv == '-') {
      resp_error(r, 400, "bad_progress", "?progress=D: the steps done the client saw last");
      return 1;
    }
    *pd = (uint64_t)d;
    *want_prog = 1;
  }
  *s = v;
  return 0;
}

/* A long poll on job *j (read by own_job after `seen` was taken): returns
 * when it is done or failed, after s seconds, when the server closes or
 * (want_prog) once its progress passes pd steps, with *j read again from
 * the store whenever it may have finished. Returns 1 if the job could not
 * be read again (r then holds own_job's answer), else 0. */
static int wait_final(srv_req *q, srv_resp *r, st_job *j, uint64_t seen, long s, int want_prog, uint64_t pd) {
  server *S = q->S;
  uint64_t pdone = 0, ptotal = 0;
  const uint64_t ring = sizeof S->fin_ring / sizeof S->fin_ring[0];
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += s;
  /* on the waiters' list: woken by this job's finish (and its progress,
   * if asked), or by the server closing */
  struct job_waiter me;
  memset(&me, 0, sizeof me);
  me.id = j->id;
  me.prog = want_prog;
  if (pthread_cond_init(&me.cv, NULL)) {
    resp_error(r, 503, "unavailable", "cannot wait");
    r->retry_after = SRV_RETRY_AFTER_S;
    return 1;
  }
  int gone = 0;
  pthread_mutex_lock(&S->wlock);
  me.next = S->waiters;
  S->waiters = &me;
  while (!job_final(j) && !S->closing) {
    if (want_prog && !jobs_progress_get_locked(S, j->id, &pdone, &ptotal) && pdone > pd) break;
    if (pthread_cond_timedwait(&me.cv, &S->wlock, &until) == ETIMEDOUT) break;
    /* read the store again only if this job is among the jobs finished
     * since the last look (or the ring wrapped and it cannot tell): a
     * progress step or the server closing also wake it */
    int mine = S->fin_seq - seen > ring;
    for (uint64_t k = seen; !mine && k < S->fin_seq; k++) mine = S->fin_ring[k % ring] == j->id;
    seen = S->fin_seq;
    if (!mine) continue;
    pthread_mutex_unlock(&S->wlock);
    int rc = own_job(q, r, j);
    pthread_mutex_lock(&S->wlock);
    if (rc) {
      gone = 1;
      break;
    }
  }
  for (struct job_waiter **pw = &S->waiters; *pw; pw = &(*pw)->next)
    if (*pw == &me) {
      *pw = me.next;
      break;
    }
  pthread_mutex_unlock(&S->wlock);
  pthread_cond_destroy(&me.cv);
  if (gone) return 1;
  if (!job_final(j) && own_job(q, r, j)) return 1; /* the state at the deadline */
  return 0;
}

/* The job's state as GET /v1/jobs/ID answers it. */
static json_t *job_json(server *S, const st_job *j) {
  json_t *o = json_pack("{sI sI ss sI sI sI sI}", "id", (json_int_t)j->id, "model", (json_int_t)j->model, "state",
                        j->state, "count", (json_int_t)j->count, "attempts", (json_int_t)j->attempts, "created_ms",
                        (json_int_t)j->created_ms, "finished_ms", (json_int_t)j->finished_ms);
  if (j->error[0]) json_object_set_new(o, "error", json_string(j->error));
  /* progress while it waits: the jobs the workers run before it (queued
   * earlier, or running); 0 once it runs */
  int64_t ahead = 0;
  if (!job_final(j) && !store_job_ahead(S->db, j->id, &ahead))
    json_object_set_new(o, "queue_position", json_integer(!strcmp(j->state, "running") ? 0 : ahead));
  if (!strcmp(j->state, "done")) json_object_set_new(o, "latency_ms", json_integer(j->finished_ms - j->created_ms));
  /* progress inside the run: engine steps (stages x micro-batches) done of
   * total, for the jobs submitted or run since the server started */
  uint64_t pdone = 0, ptotal = 0;
  if (!jobs_progress_get(S, j->id, &pdone, &ptotal)) {
    if (!strcmp(j->state, "done")) pdone = ptotal;
    json_object_set_new(o, "progress", json_pack("{sI sI}", "done", (json_int_t)pdone, "total", (json_int_t)ptotal));
  }
  return o;
}

/* ?wait=S (0..10): the answer comes when the job is done or failed, or
 * after S seconds with its state then (a long poll instead of the
 * client's sleeps, which made it notice a finished job up to 0.5 s late).
 * With &progress=D also as soon as the job's progress passes D steps. */
/* The caller's job *j, after the long poll its ?wait=S asks for (*s = -1
 * without one; progress: whether &progress=D also ends it). Returns 1 when
 * r already holds the answer (not the caller's job, bad arguments). */
static int job_waited(srv_req *q, srv_resp *r, st_job *j, long *s, int progress) {
  uint64_t seen = jobs_finished_seq(q->S); /* before the store is read */
  if (own_job(q, r, j)) return 1;
  if (!progress && req_query(q, "progress")) { /* the results' long poll ends only with the job */
    resp_error(r, 400, "bad_progress", "&progress=D applies to GET /v1/jobs/ID, not to its results");
    return 1;
  }
  int want_prog;
  uint64_t pd;
  if (wait_args(q, r, s, &want_prog, &pd)) return 1;
  return *s >= 0 && wait_final(q, r, j, seen, *s, progress && want_prog, pd);
}

void h_job_show(srv_req *q, srv_resp *r) {
  st_job j;
  long s;
  if (job_waited(q, r, &j, &s, 1)) return;
  resp_json(r, 200, job_json(q->S, &j));
}

/* GET /v1/jobs/ID/result: the sealed results of a done job; 409 for a job
 * not done (a failed one: its error). With ?wait=S it first waits as
 * GET /v1/jobs/ID?wait=S does, so that one request both waits for the job
 * and fetches its results; a job still unfinished at the deadline is then
 * answered 202 with its state (the JSON of GET /v1/jobs/ID). */
void h_job_result(srv_req *q, srv_resp *r) {
  st_job j;
  long s;
  if (job_waited(q, r, &j, &s, 0)) return;
  if (!strcmp(j.state, "failed")) {
    resp_error(r, 409, "failed", "job %lld failed: %s", (long long)j.id, j.error[0] ? j.error : "?");
    return;
  }
  if (strcmp(j.state, "done")) {
    if (s >= 0) {
      resp_json(r, 202, job_json(q->S, &j));
      return;
    }
    resp_error(r, 409, "not_done", "job %lld is %s", (long long)j.id, j.state);
    r->retry_after = 1;
    return;
  }
  blob_path(q->S, r->file, "jobs", j.id, "res");
  r->status = 200;
  r->ctype = "application/octet-stream";
}

/* The job's stored signed authorization, for its DP (who checks it is its
 * own signature: e.g. a client that lost the job's digests). */
void h_job_auth(srv_req *q, srv_resp *r) {
  st_job j;
  if (own_job(q, r, &j)) return;
  uint8_t *a = NULL;
  size_t al = 0;
  int64_t w = 0;
  if (store_job_stored(q->S->db, j.id, &a, &al, &w)) {
    resp_status(r, HETEE_ERR_IO, "authorization");
    return;
  }
  if (a) { /* in the job's row */
    r->body = a;
    r->len = al;
  } else { /* a job an older server stored: its own file */
    blob_path(q->S, r->file, "jobs", j.id, "auth");
  }
  r->status = 200;
  r->ctype = "application/octet-stream";
}

/* DELETE /v1/jobs/ID: the job's data provider removes a finished job (done
 * or failed) and its files: its input with the witnesses, its sealed
 * results and an older server's authorization and witness files. The row
 * goes first, in one durable statement (from then on the job is not
 * found); the files after it, then DIR/jobs is synced. A crash between
 * the two leaves files no row names (start-up removes them, server.c
 * sweep_orphans). 409 for a job still staged, queued or running. */
void h_job_delete(srv_req *q, srv_resp *r) {
  st_job j;
  if (own_job(q, r, &j)) return;
  if (!job_final(&j)) {
    resp_error(r, 409, "busy", "job %lld is %s: only a done or failed job is deleted", (long long)j.id, j.state);
    r->retry_after = 1;
    return;
  }
  int deleted = 0;
  int rc = jobs_delete_finished(q->S, j.id, &deleted);
  if (rc) {
    resp_status(r, rc, "delete");
    return;
  }
  if (!deleted) { /* another request (or the retention thread) deleted it meanwhile */
    resp_error(r, 404, "not_found", "no job %lld", (long long)j.id);
    return;
  }
  resp_json(r, 200, json_pack("{sI sb}", "id", (json_int_t)j.id, "deleted", 1));
}

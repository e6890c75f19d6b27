/*
 * infer.c — the host's layer loop of encrypted inference (hetee/engine.h,
 * docs/architecture.md "One inference, end to end"): per micro-batch and per stage, the
 * host evaluates the linear layer with hemat's coefficient-packed kernel
 * (ct x ct products accumulated in degree 2, encrypted biases added; no
 * key switch at all), hands the degree-2 outputs to the enclave, which
 * decrypts them, applies the stage's non-linear ops and encrypts the next
 * stage's inputs in that stage's layout (refresh); after the last stage the
 * enclave releases each sample's result, sealed to the data provider.
 *
 * The host only ever holds ciphertexts and public layouts. It declares to
 * the enclave what it sends (level, scale, coefficient encoding), and it
 * checks what comes back (count, level, scale, degree) before using it.
 * Counters: products, enclave encryptions / decryptions, bytes and CPU time
 * as the enclave counts them (hetee_host_stats), host time.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <time.h>

#include "ckks/ckks_arena.h"
#include "hemat/engine_internal.h"
#include "host/engine_jobs.h"
#include "host/host_internal.h"

/* CPU time of this process (all threads). */
static double process_cpu(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru)) return 0;
  return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
         1e-6 * (double)ru.ru_stime.tv_usec;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Enclave counters of the operations the engine uses. */
typedef struct {
  uint64_t cpu_ns, bytes_in, bytes_out;
} enc_counters;

/* followed: from the STATS reply that followed the last request
 * (hetee_host_stats_follow), else from a STATS round trip. */
static int enclave_counters(hetee_host_enclave *e, enc_counters *c, int followed) {
  hetee_enclave_op_stats st[64];
  size_t n = 0;
  memset(c, 0, sizeof *c);
  int rc = followed ? hetee_host_stats_followed(e, st, 64, &n) : hetee_host_stats(e, st, 64, &n);
  if (rc) return rc;
  for (size_t i = 0; i < n; i++)
    if (st[i].type == HETEE_MSG_REFRESH || st[i].type == HETEE_MSG_RELEASE ||
        (st[i].type >= HETEE_MSG_JOB_START && st[i].type <= HETEE_MSG_JOB_RELEASE)) {
      c->cpu_ns += st[i].cpu_ns;
      c->bytes_in += st[i].bytes_in;
      c->bytes_out += st[i].bytes_out;
    }
  return 0;
}

static void add_counters(hetee_engine_stage_stats *s, const enc_counters *a, const enc_counters *b) {
  s->enclave_s += (double)(b->cpu_ns - a->cpu_ns) * 1e-9;
  s->bytes_to_enclave += b->bytes_in - a->bytes_in;
  s->bytes_from_enclave += b->bytes_out - a->bytes_out;
}

static void cts_free(hetee_ckks_ciphertext **c, size_t n) {
  if (!c) return;
  for (size_t i = 0; i < n; i++) hetee_ckks_ciphertext_free(c[i]);
  free(c);
}

/* Serializes c[0..n) into blobs (threads: OpenMP). */
static int save_all(const hetee_ckks_context *ctx, hetee_ckks_ciphertext *const *c, size_t n, int threads,
                    uint8_t ***blobs, size_t **lens) {
  *blobs = calloc(n ? n : 1, sizeof **blobs);
  *lens = calloc(n ? n : 1, sizeof **lens);
  if (!*blobs || !*lens) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  int rc = 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (size_t i = 0; i < n; i++) {
    int r = hetee_ckks_ciphertext_save(ctx, c[i], &(*blobs)[i], &(*lens)[i]);
    if (r) {
#pragma omp critical
      if (!rc) rc = r;
    }
  }
  return rc ? hetee_error(rc, "cannot serialize a layer output") : 0;
}

/* Loads the enclave's fresh ciphertexts and checks they are what the next
 * stage expects (the host does not take the enclave's word for it either:
 * a wrong count, level or scale would make the kernel fail or misread). */
static int load_fresh(const hetee_ckks_context *ctx, uint8_t *const *blobs, const size_t *lens, size_t n,
                      size_t want, double scale, int threads, hetee_ckks_ciphertext ***out) {
  *out = NULL;
  if (n != want)
    return hetee_error(HETEE_ERR_PROTOCOL, "the enclave returned %zu ciphertexts, the next stage needs %zu", n, want);
  hetee_ckks_ciphertext **c = calloc(n ? n : 1, sizeof *c);
  if (!c) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  int rc = 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (size_t i = 0; i < n; i++) {
    int r = hetee_ckks_ciphertext_load(ctx, blobs[i], lens[i], &c[i]);
    if (!r) r = engine_check_ct(ctx, c[i], scale, "refreshed input");
    if (r) {
#pragma omp critical
      if (!rc) rc = r;
    }
  }
  if (rc) {
    cts_free(c, n);
    return engine_wrap(rc, "refreshed ciphertexts refused");
  }
  *out = c;
  return 0;
}

static void blobs_free(uint8_t **b, size_t *l, size_t n) { hetee_host_cts_free(b, l, n); }

/* The enclave's refresh after stage s of a micro-batch: into the next
 * stage's inputs, or (last stage) into the release layout at the top level
 * and the release scale. */
static int refresh(hetee_host_enclave *e, const hetee_ckks_context *ctx, const hetee_engine_refresh *R,
                   uint8_t *const *blobs, const size_t *lens, uint8_t ***fresh, size_t **flens, size_t *nf) {
  hetee_refresh_spec spec;
  memset(&spec, 0, sizeof spec);
  memcpy(spec.shape, R->in_shape, sizeof spec.shape);
  spec.batch = R->batch;
  spec.in_map = R->in_map;
  spec.in_level = HETEE_ENGINE_LEVEL;
  spec.in_scale = HETEE_ENGINE_OUT_SCALE;
  spec.in_encoding = HETEE_ENC_COEFFS;
  spec.nops = R->nops;
  spec.ops = R->ops;
  spec.out_ncts = R->out_ncts;
  spec.out_n = R->out_n;
  spec.out_dst = R->out_dst;
  spec.out_src = R->out_src;
  spec.out_level = R->release ? hetee_ckks_context_max_level(ctx) : HETEE_ENGINE_LEVEL;
  spec.out_scale = R->release ? hetee_engine_release_scale(ctx) : HETEE_ENGINE_IN_SCALE / (double)R->out_lanes;
  spec.out_encoding = HETEE_ENC_COEFFS;
  return hetee_host_refresh(e, &spec, (const uint8_t *const *)blobs, lens, R->in_ncts, fresh, flens, nf);
}

/* Rewrites the enclave's seeded release ciphertexts in full form (same
 * ciphertext, both polynomials stored): each is then sent in up to `cap`
 * release requests, and without this every one of them would make the
 * enclave expand the same seed again (about twice a decryption's cost). */
static int unseed(const hetee_ckks_context *ctx, uint8_t **blobs, size_t *lens, size_t n) {
  for (size_t i = 0; i < n; i++) {
    hetee_ckks_ciphertext *ct = NULL;
    uint8_t *b = NULL;
    size_t len = 0;
    int rc = hetee_ckks_ciphertext_load(ctx, blobs[i], lens[i], &ct);
    /* dropping to its own level changes nothing but the seeded flag */
    if (!rc) rc = hetee_ckks_eval_drop_level(ctx, ct, hetee_ckks_ciphertext_level(ct), ct);
    if (!rc) rc = hetee_ckks_ciphertext_save(ctx, ct, &b, &len);
    hetee_ckks_ciphertext_free(ct);
    if (rc) return engine_wrap(rc, "release ciphertext %zu from the enclave", i);
    free(blobs[i]);
    blobs[i] = b;
    lens[i] = len;
  }
  return 0;
}

/* Checks the input against the model before anything is sent anywhere. */
static int check_input(const hetee_engine_model *em, const hetee_engine_input *in) {
  const hetee_engine_plan *p = em->plan;
  if (memcmp(hetee_ckks_context_fingerprint(in->ctx), hetee_ckks_context_fingerprint(em->ctx),
             HETEE_CKKS_FINGERPRINT_BYTES))
    return hetee_error(HETEE_ERR_CONTEXT, "input encrypted under other CKKS parameters than the model");
  if (in->micro_batch != p->micro_batch)
    return hetee_error(HETEE_ERR_SHAPE, "input cut in micro-batches of %u, the model's plan uses %u", in->micro_batch,
                       p->micro_batch);
  size_t want;
  int rc = engine_input_cts(p, in->count, &want);
  if (rc) return rc;
  if (want != in->ncts)
    return hetee_error(HETEE_ERR_SHAPE, "input has %zu ciphertexts, the plan needs %zu for %zu samples", in->ncts, want,
                       in->count);
  for (size_t i = 0; i < in->ncts; i++)
    if ((rc = engine_check_ct(em->ctx, in->cts[i], HETEE_ENGINE_IN_SCALE, "input ciphertext"))) return rc;
  return 0;
}

/* The host's compute threads of one run (`threads` of them), shared by
 * the run's pipelines. Each pipeline hands its host work to the pool as a
 * job of independent items (one output ciphertext: its products, bias and
 * rescale; one ciphertext to serialize or to load) and sleeps until the
 * job is done; the pool's threads take items in job order (the older
 * micro-batch first). The host therefore never runs more compute threads
 * than the CPUs it was given, whatever the number of pipelines: before,
 * each pipeline had its own OpenMP team of `threads`, i.e. 2 x threads
 * host threads beside the enclave's on `threads` CPUs, and a team whose
 * thread was descheduled held its barrier. Items are claimed under one
 * mutex (each costs tens of microseconds or more); idle threads sleep on a
 * condition variable (no spinning: the enclave shares the CPUs). */
typedef int (*pool_fn)(void *arg, size_t i, int tid);

/* An optional trace of one run, for measurements (HETEE_ENGINE_TRACE=FILE,
 * docs/engine.md "1 vs 2 CPUs"; bench/trace_states.py reads it): the start
 * and end of every pool item (which kind, which pool thread) and of every
 * enclave call (which request, which stage), in seconds from the run's
 * start, written to FILE when the run ends. It shows when the run's CPUs
 * were idle (no item running, no call in the enclave) and what the
 * pipelines were waiting for. Off unless the variable is set; events past
 * the cap (TRACE_CAP) are dropped and counted. */
#define TRACE_CAP ((size_t)1 << 20)

typedef struct {
  double t0, t1;
  int what; /* TRACE_* */
  int who;  /* pool thread (items) or stage (calls) */
} trace_ev;

enum { TRACE_PRODUCTS, TRACE_SERIALIZE, TRACE_LOAD, TRACE_JOB_START, TRACE_REFRESH, TRACE_RELEASE };
static const char *const TRACE_NAME[] = {"products", "serialize", "load", "job_start", "refresh", "release"};

typedef struct engine_trace {
  pthread_mutex_t mu;
  trace_ev *ev;
  size_t n, dropped;
  double t0;
} engine_trace;

static engine_trace *trace_new(void) {
  const char *f = getenv("HETEE_ENGINE_TRACE");
  if (!f || !*f) return NULL;
  engine_trace *t = calloc(1, sizeof *t);
  if (t) t->ev = malloc(TRACE_CAP * sizeof *t->ev);
  if (!t || !t->ev) {
    free(t);
    return NULL; /* a measurement aid: no trace rather than no run */
  }
  pthread_mutex_init(&t->mu, NULL);
  return t;
}

/* Writes the trace to $HETEE_ENGINE_TRACE and frees it. */
static void trace_finish(engine_trace *t, int threads, size_t pipelines, double total_s) {
  if (!t) return;
  FILE *f = fopen(getenv("HETEE_ENGINE_TRACE"), "w");
  if (f) {
    fprintf(f, "# hetee engine trace: threads %d pipelines %zu total_s %.6f dropped %zu\n", threads, pipelines, total_s,
            t->dropped);
    fprintf(f, "# kind who start_s end_s (who: pool thread for items, stage for enclave calls)\n");
    for (size_t i = 0; i < t->n; i++)
      fprintf(f, "%s %d %.7f %.7f\n", TRACE_NAME[t->ev[i].what], t->ev[i].who, t->ev[i].t0, t->ev[i].t1);
    if (fclose(f)) fprintf(stderr, "hetee: cannot write the engine trace\n");
  } else {
    fprintf(stderr, "hetee: cannot write the engine trace\n");
  }
  pthread_mutex_destroy(&t->mu);
  free(t->ev);
  free(t);
}

static void trace_add(engine_trace *t, int what, int who, double a, double b) {
  if (!t) return;
  pthread_mutex_lock(&t->mu);
  if (t->n < TRACE_CAP) t->ev[t->n++] = (trace_ev){a - t->t0, b - t->t0, what, who};
  else t->dropped++;
  pthread_mutex_unlock(&t->mu);
}

#define ENGINE_YIELD 0

typedef struct pool_job {
  pool_fn fn;
  void *arg;
  size_t n, next, done;
  int rc;
  char detail[256];
  struct pool_job *link;
  pthread_cond_t fin; /* done == n (its pipeline waits on it) */
} pool_job;

typedef struct host_pool {
  pthread_mutex_t mu;
  pthread_cond_t work;
  pool_job *head, *tail;
  int quit, n, started;
  int running; /* items being computed */
  int reserve; /* CPUs left to the enclave while a call is in it (0 or 1) */
  int yield;   /* reserve a CPU during enclave calls */
  pthread_t *tid;
  engine_trace *trace; /* NULL unless HETEE_ENGINE_TRACE */
} host_pool;

static int stage_item(void *arg, size_t i, int tid);
static int ser_item(void *arg, size_t i, int tid);

typedef struct {
  host_pool *p;
  int id;
} pool_arg;

static void *pool_main(void *vp) {
  pool_arg *a = vp;
  host_pool *p = a->p;
  int id = a->id;
  free(a);
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->quit && (!p->head || p->running >= p->n - p->reserve)) pthread_cond_wait(&p->work, &p->mu);
    if (!p->head) break; /* quit */
    p->running++;
    pool_job *j = p->head;
    size_t i = j->next++;
    if (j->next == j->n) { /* every item claimed: off the queue */
      p->head = j->link;
      if (!p->head) p->tail = NULL;
    }
    int skip = j->rc != 0; /* an item failed: the rest are not run */
    pthread_mutex_unlock(&p->mu);
    double t0 = p->trace ? now() : 0;
    int rc = skip ? 0 : j->fn(j->arg, i, id);
    if (p->trace)
      trace_add(p->trace, j->fn == stage_item ? TRACE_PRODUCTS : j->fn == ser_item ? TRACE_SERIALIZE : TRACE_LOAD, id, t0,
                now());
    pthread_mutex_lock(&p->mu);
    if (rc && !j->rc) {
      j->rc = rc;
      snprintf(j->detail, sizeof j->detail, "%s", hetee_last_error());
    }
    if (++j->done == j->n) pthread_cond_signal(&j->fin); /* only its own pipeline waits on it */
    p->running--;
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* A call is in the enclave (on) or not (off). With yield, the pool then
 * runs at most n - 1 items at once (none when n = 1): the enclave's
 * request is the pipelines' common critical path (one at a time), and on
 * the run's `threads` CPUs every host thread beside it slows it down. */
static void pool_reserve(host_pool *p, int on) {
  if (!p->tid) return;
  pthread_mutex_lock(&p->mu);
  p->reserve = on && p->yield ? 1 : 0;
  if (!p->reserve) pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
}

static void pool_stop(host_pool *p) {
  if (!p->tid) return;
  pthread_mutex_lock(&p->mu);
  p->quit = 1;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->started; i++) pthread_join(p->tid[i], NULL);
  free(p->tid);
  p->tid = NULL;
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->work);
}

static int pool_start(host_pool *p, int n) {
  memset(p, 0, sizeof *p);
  p->tid = calloc((size_t)n, sizeof *p->tid);
  if (!p->tid) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work, NULL);
  p->n = n;
  const char *y = getenv("HETEE_ENGINE_YIELD");
  p->yield = y ? strcmp(y, "0") != 0 : ENGINE_YIELD;
  for (int i = 0; i < n; i++) {
    pool_arg *a = malloc(sizeof *a);
    if (a) a->p = p, a->id = i;
    if (!a || pthread_create(&p->tid[i], NULL, pool_main, a)) {
      free(a);
      pool_stop(p);
      return hetee_error(HETEE_ERR_NOMEM, "cannot start the host's compute threads");
    }
    p->started++;
  }
  return 0;
}

/* Runs fn(arg, i, tid) for i in [0, n) on the pool and waits for all of
 * them; the first failure's status and detail are returned. */
static int pool_run(host_pool *p, size_t n, pool_fn fn, void *arg) {
  if (!n) return 0;
  pool_job j;
  memset(&j, 0, sizeof j);
  j.fn = fn;
  j.arg = arg;
  j.n = n;
  pthread_cond_init(&j.fin, NULL);
  pthread_mutex_lock(&p->mu);
  if (p->tail) p->tail->link = &j;
  else p->head = &j;
  p->tail = &j;
  if (n == 1) pthread_cond_signal(&p->work);
  else pthread_cond_broadcast(&p->work);
  while (j.done < j.n) pthread_cond_wait(&j.fin, &p->mu);
  pthread_mutex_unlock(&p->mu);
  pthread_cond_destroy(&j.fin);
  return j.rc ? hetee_error(j.rc, "%s", j.detail) : 0;
}

/* Micro-batches in flight at once (each its own pipeline thread driving
 * it through the stages; all share the enclave handle and the host's
 * compute pool): one more than the compute threads (capped at
 * ENGINE_PIPELINES_MAX), or HETEE_ENGINE_PIPELINES (1..8) from the
 * environment, for measurements. With 2 threads, 2 pipelines often both
 * wait for the enclave (docs/engine.md); with 1 thread a third pipeline
 * only adds buffers (e2dm, 1024 images, --threads 1, 3 alternated rounds:
 * host CPU 0.339-0.350 s with 2, 0.360-0.385 s with 3). */
#define ENGINE_PIPELINES_MAX 8

static size_t engine_pipelines(int threads) {
  const char *v = getenv("HETEE_ENGINE_PIPELINES");
  char *end = NULL;
  long n = v ? strtol(v, &end, 10) : 0;
  if (v && *v && !*end && n >= 1 && n <= ENGINE_PIPELINES_MAX) return (size_t)n;
  return threads + 1 < ENGINE_PIPELINES_MAX ? (size_t)threads + 1 : ENGINE_PIPELINES_MAX;
}

/* What the workers of one run share. The enclave handle is used under
 * `lock` (one request at a time, as the enclave serves them anyway); each
 * worker pipelines its own micro-batches, so the host's kernels of one run
 * while the enclave refreshes another's. */
typedef struct run_shared {
  hetee_host_enclave *e;
  const hetee_engine_model *em;
  const hetee_engine_input *in;
  uint32_t model_id;
  const uint8_t *sid;
  int threads;
  hetee_engine_results *res;
  pthread_mutex_t lock;  /* the enclave handle */
  pthread_mutex_t queue; /* next, released, rc */
  pthread_cond_t turn;   /* released advanced or rc set */
  size_t next, nmb;
  size_t released;       /* micro-batches whose releases are done: releases
                            are sealed to the data provider's session with
                            consecutive counters, so they go in input order */
  size_t *first_ct;      /* input ciphertext index of each micro-batch */
  int rc;
  char detail[512];
  int bound; /* hetee_engine_run_bound: registered plan, checked jobs */
  const hetee_engine_witnesses *wit; /* hetee_engine_run_witnessed: jobs start from these */
  host_pool own_pool;        /* bound runs without a runner: the run's compute threads */
  host_pool *pool;           /* bound runs: &own_pool or the runner's (shared by its runs) */
  enc_counters last;         /* the enclave's counters after the last call (under lock) */
  int have_last;
  hetee_ckks_evaluator **ev; /* one per pool thread (the rescale's scratch): the run's or the runner's */
  pthread_mutex_t *elock;        /* held around enclave calls: &lock, or the caller's (hooks) */
  hetee_engine_progress_fn prog; /* hetee_engine_run_hooked's progress hook (NULL: none) */
  void *prog_ud;
  uint64_t prog_done, prog_total; /* under queue */
  hetee_ckks_ciphertext **acc; /* one per pool thread: the output being computed (the run's or the runner's) */
  hetee_engine_runner *runner; /* NULL: the run makes its own pool, evaluators and worker buffers */
  engine_trace *trace;       /* NULL unless HETEE_ENGINE_TRACE */
  double call_t0;            /* the current enclave call (under lock): start, */
  int call_what, call_stage; /* request and stage, for the trace */
  uint16_t serial;           /* HETEE_MSG_SERIAL or 0, or'ed into JOB_START and JOB_REFRESH (run_impl) */
} run_shared;

/* What a worker keeps from one micro-batch to the next (bound runs), so
 * that the host's loop allocates nothing per ciphertext once warm: the
 * serialized outputs (one buffer each), the objects the enclave's fresh
 * ciphertexts are loaded into; with a tamper hook (tests) the kernel's
 * output objects. */
typedef struct stage_buf {
  hetee_ckks_ciphertext **outs; /* kernel outputs of this stage (tamper hook only) */
  size_t nouts;
  uint8_t **slot;               /* output i serialized: u64 length | bytes (the wire's blob) */
  size_t *slot_cap, *slot_len, nslot;
  hetee_ckks_ciphertext **next; /* the next stage's inputs, as the enclave made them */
  size_t nnext;
  hetee_ckks_ciphertext **lanes; /* a lane stage next: next[] expanded, lanes per dense input */
  size_t nlanes;
  /* the coefficients the enclave reads of output i, in its order:
   * c0_idx[c0_start[i] .. c0_start[i + 1]) (c0_positions) */
  uint32_t *c0_start, *c0_idx;
  size_t c0_nouts, c0_cap; /* outputs / entries of c0_idx allocated */
  int c0_full;             /* 1: computed for the full micro-batch's map */
  /* the coset r + d t (d >= 8) holding every coefficient read, if there
   * is one: c0 taken to the coefficient domain there only (c0_positions) */
  ckks_coset *c0cs;
  int c0cs_logd;
  uint32_t c0cs_r;
} stage_buf;

typedef struct worker {
  run_shared *sh;
  hetee_engine_refresh *cache; /* per stage, full micro-batches */
  stage_buf *sb;               /* per stage */
  uint8_t *ser;                /* ciphertexts serialized for a request (u64 length | bytes each) */
  size_t ser_cap;
  const uint8_t **blob;        /* blobs of a reply */
  size_t *blen, nblob;
  hetee_engine_stats st;
  uint64_t integrity_ns; /* enclave CPU time of the checks (bound runs) */
  uint64_t keyswitches;  /* of the lane expansions */
} worker;

static void worker_bufs_free(worker *w, size_t nstages) {
  for (size_t s = 0; w->sb && s < nstages; s++) {
    cts_free(w->sb[s].outs, w->sb[s].nouts);
    for (size_t i = 0; i < w->sb[s].nslot; i++) free(w->sb[s].slot[i]);
    free(w->sb[s].slot);
    free(w->sb[s].slot_cap);
    free(w->sb[s].slot_len);
    cts_free(w->sb[s].next, w->sb[s].nnext);
    cts_free(w->sb[s].lanes, w->sb[s].nlanes);
    free(w->sb[s].c0_start);
    free(w->sb[s].c0_idx);
    ckks_coset_free(w->sb[s].c0cs);
  }
  free(w->sb);
  free(w->ser);
  free(w->blob);
  free(w->blen);
  w->sb = NULL;
  w->ser = NULL;
  w->blob = NULL;
  w->blen = NULL;
}

/* A runner (hetee/engine.h): what consecutive and concurrent bound runs
 * of one model share instead of making and freeing it per run: one pool
 * of `threads` compute threads (concurrent runs queue their items on it,
 * oldest job first, so the host never runs more compute threads than
 * that whatever the number of runs), its per-thread evaluators and
 * accumulators, and the worker state a run's pipelines leave behind (the
 * refresh maps of full micro-batches, the output
 * buffers and ciphertext objects of every stage), parked for the next
 * run's pipelines. A service running each 64-image job as one run
 * otherwise made two threads, two evaluators, the refresh maps of every
 * stage and ~10 MB of buffers (page faults) per job. */
#define RUNNER_PARKED_MAX ENGINE_PIPELINES_MAX

struct hetee_engine_runner {
  const hetee_engine_model *em;
  int threads;
  host_pool pool;
  hetee_ckks_evaluator **ev;
  hetee_ckks_ciphertext **acc;
  pthread_mutex_t mu; /* parked */
  worker parked[RUNNER_PARKED_MAX];
  size_t nparked;
};

/* A parked worker's buffers into w (0), or nothing parked (-1). */
static int runner_take(hetee_engine_runner *r, worker *w) {
  int got = -1;
  pthread_mutex_lock(&r->mu);
  if (r->nparked) {
    *w = r->parked[--r->nparked];
    got = 0;
  }
  pthread_mutex_unlock(&r->mu);
  return got;
}

/* Parks w's buffers for a later run (0), or there is no room (-1: the
 * caller frees them). */
static int runner_park(hetee_engine_runner *r, const worker *w) {
  int put = -1;
  pthread_mutex_lock(&r->mu);
  if (r->nparked < RUNNER_PARKED_MAX) {
    worker *k = &r->parked[r->nparked++];
    memset(k, 0, sizeof *k);
    k->cache = w->cache;
    k->sb = w->sb;
    k->ser = w->ser;
    k->ser_cap = w->ser_cap;
    k->blob = w->blob;
    k->blen = w->blen;
    k->nblob = w->nblob;
    put = 0;
  }
  pthread_mutex_unlock(&r->mu);
  return put;
}

static void worker_free(worker *w, size_t nstages) {
  if (w->cache)
    for (size_t s = 0; s < nstages; s++) hetee_engine_refresh_free(&w->cache[s]);
  free(w->cache);
  w->cache = NULL;
  worker_bufs_free(w, nstages);
}

void hetee_engine_runner_free(hetee_engine_runner *r) {
  if (!r) return;
  pool_stop(&r->pool);
  for (int t = 0; r->ev && t < r->threads; t++) hetee_ckks_evaluator_free(r->ev[t]);
  free(r->ev);
  for (int t = 0; r->acc && t < r->threads; t++) hetee_ckks_ciphertext_free(r->acc[t]);
  free(r->acc);
  size_t ns = r->em->plan->nstages;
  for (size_t i = 0; i < r->nparked; i++) worker_free(&r->parked[i], ns);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

int hetee_engine_runner_new(const hetee_engine_model *em, int threads, hetee_engine_runner **out) {
  if (!em || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  if (threads < 1 || threads > 64) return hetee_error(HETEE_ERR_INVALID_ARG, "threads %d (1..64)", threads);
  hetee_engine_runner *r = calloc(1, sizeof *r);
  if (!r) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  r->em = em;
  r->threads = threads;
  pthread_mutex_init(&r->mu, NULL);
  r->ev = calloc((size_t)threads, sizeof *r->ev);
  r->acc = calloc((size_t)threads, sizeof *r->acc);
  int rc = r->ev && r->acc ? 0 : hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (int t = 0; t < threads && !rc; t++) rc = hetee_ckks_evaluator_new(em->ctx, 1, &r->ev[t]);
  for (int t = 0; t < threads && !rc; t++) rc = hetee_ckks_ciphertext_new(em->ctx, &r->acc[t]);
  if (!rc) rc = pool_start(&r->pool, threads);
  if (rc) {
    hetee_engine_runner_free(r);
    return rc;
  }
  *out = r;
  return 0;
}

int hetee_engine_runner_threads(const hetee_engine_runner *r) { return r ? r->threads : 0; }

/* *arr holds at least n ciphertext objects (kept, storage reused). */
static int cts_reserve(const hetee_ckks_context *ctx, hetee_ckks_ciphertext ***arr, size_t *have, size_t n) {
  if (*have >= n) return 0;
  hetee_ckks_ciphertext **a = realloc(*arr, n * sizeof *a);
  if (!a) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  *arr = a;
  for (size_t i = *have; i < n; i++) {
    a[i] = NULL;
    int rc = hetee_ckks_ciphertext_new(ctx, &a[i]);
    if (rc) {
      *have = i;
      return rc;
    }
  }
  *have = n;
  return 0;
}

/* One output of a stage on the pool (bound runs): its products and bias
 * (hetee_hemat_conv_eval_range) and, when `rescale`, its rescale by q_1 to
 * the level and scale the enclave decrypts it at
 * (HETEE_ENGINE_REFRESH_LEVEL, hetee_engine_refresh_scale: 2 NTTs per
 * polynomial on the host, half the bytes and half the decryption work in
 * the enclave) while it is still in this thread's cache. */
typedef struct {
  run_shared *sh;
  const hetee_ckks_context *ctx;
  const hetee_hemat_layout *L;
  const hetee_ckks_ciphertext *const *in, *const *w, *const *bias;
  hetee_ckks_ciphertext *const *out;
  int kernel, rescale;
  stage_buf *sb; /* fused: output i computed in the thread's accumulator and serialized into sb->slot[i] */
} stage_task;

static int rescale_one(run_shared *sh, hetee_ckks_ciphertext *c, int tid) {
  return hetee_ckks_ciphertext_level(c) == HETEE_ENGINE_LEVEL ? hetee_ckks_evaluator_rescale(sh->ev[tid], c, c)
                                                               : hetee_error(HETEE_ERR_LEVEL, "product level");
}

/* Output i in the pool thread's own accumulator (the same 0.4 MB for
 * every item of that thread, so it stays in the core's L2 instead of
 * cycling through each pipeline's output objects: 9 MB per e2dm
 * micro-batch), rescaled, serialized into its buffer sb->slot[i] (grown
 * by this item only) while still in cache. */
/* Output i at level 0 as the enclave's refresh reads it: c0 only at the
 * coefficients it decrypts of that output, in its order (about a third
 * fewer bytes to the enclave), c1 and c2 in full; buf NULL: *len = the
 * bytes. rescale: ct is the product at level 1, rescaled on the way
 * (ckks_ciphertext_save_c0_at_rescaled: c0's coefficients without a third
 * NTT); else ct is at level 0 (ckks_ciphertext_save_c0_at: one inverse
 * NTT of c0 here). */
static int save_c0_at(const hetee_ckks_context *ctx, const stage_buf *sb, const hetee_ckks_ciphertext *ct, size_t i,
                      int rescale, uint8_t *buf, size_t cap, size_t *len) {
  const uint32_t *idx = sb->c0_idx + sb->c0_start[i];
  size_t n = sb->c0_start[i + 1] - sb->c0_start[i];
  if (!buf) return ckks_ciphertext_c0_at_size(ctx, ct, n, len);
  return rescale ? ckks_ciphertext_save_c0_at_rescaled_cs(ctx, ct, sb->c0cs, idx, n, buf, cap, len)
                 : ckks_ciphertext_save_c0_at(ctx, ct, idx, n, buf, cap, len);
}

/* sb->c0_start / c0_idx for the nouts outputs of a stage whose refresh
 * map is R's: for output i, the coefficients R->in_map names of it in map
 * order, which is the order the enclave reads them (its stable counting
 * sort of the same registered map, refresh.c). Kept for the full
 * micro-batch's map (full = 1), made again for a short one. */
static int c0_positions(const hetee_ckks_context *ctx, stage_buf *sb, const hetee_engine_refresh *R, size_t nouts,
                        int full) {
  if (full && sb->c0_full && sb->c0_nouts == nouts) return 0;
  const size_t N = hetee_ckks_context_n(ctx);
  size_t n = (size_t)R->batch * R->n_in;
  sb->c0_full = 0;
  uint32_t *st = realloc(sb->c0_start, (nouts + 1) * sizeof *st);
  if (st) sb->c0_start = st;
  if (st && n > sb->c0_cap) {
    uint32_t *ix = realloc(sb->c0_idx, n * sizeof *ix);
    if (ix) sb->c0_idx = ix, sb->c0_cap = n;
  }
  if (!st || n > sb->c0_cap) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  const unsigned sh = (unsigned)__builtin_ctzll(N);
  memset(st, 0, (nouts + 1) * sizeof *st);
  for (size_t k = 0; k < n; k++) {
    size_t c = R->in_map[k] >> sh;
    if (c >= nouts) return hetee_error(HETEE_ERR_INTERNAL, "refresh map names output %zu of %zu", c, nouts);
    st[c + 1]++;
  }
  for (size_t c = 0; c < nouts; c++) st[c + 1] += st[c];
  for (size_t k = 0; k < n; k++) /* st[c] runs ahead while output c fills: back by one pass below */
    sb->c0_idx[st[R->in_map[k] >> sh]++] = R->in_map[k] & (uint32_t)(N - 1);
  for (size_t c = nouts; c > 0; c--) st[c] = st[c - 1];
  st[0] = 0;
  sb->c0_nouts = nouts;
  sb->c0_full = full;
  /* one coset of d >= 8 holding every coefficient read (a dense layer's
   * outputs, hemat's planner: HEMAT_COSET_MIN_D): the rescale takes c0's
   * two rows to the coefficient domain at that coset only, ~6 us of
   * products, sums and a small transform per row instead of an inverse
   * NTT of size N (the same bytes, ckks/encrypt test_c0_at). Without
   * memory for its tables the full path is taken (public choice). */
  int logd = 0;
  uint32_t r = 0;
  if (!ckks_coset_fit(ctx, sb->c0_idx, n, &logd, &r) || logd < 3) logd = 0;
  if (!logd || !sb->c0cs || sb->c0cs_logd != logd || sb->c0cs_r != r) {
    ckks_coset_free(sb->c0cs);
    sb->c0cs = NULL;
    if (logd && ckks_coset_new(ctx, logd, r, &sb->c0cs)) sb->c0cs = NULL;
    sb->c0cs_logd = logd;
    sb->c0cs_r = r;
  }
  return 0;
}

static int fused_item(const stage_task *t, size_t i, int tid) {
  hetee_ckks_ciphertext *acc = t->sh->acc[tid];
  stage_buf *sb = t->sb;
  size_t len = 0;
  int rc = hetee_hemat_conv_eval_range(t->ctx, t->L, t->in, t->w, t->bias, i, 1, &acc);
  if (rc) return rc;
  /* rescaled by q_1 as it is serialized (the same bytes as
   * hetee_ckks_evaluator_rescale + ckks_ciphertext_save_c0_at) */
  if (hetee_ckks_ciphertext_level(acc) != HETEE_ENGINE_LEVEL)
    return hetee_error(HETEE_ERR_LEVEL, "cannot rescale layer output %zu: product level", i);
  if ((rc = save_c0_at(t->ctx, sb, acc, i, 1, NULL, 0, &len))) return rc;
  if (len > SIZE_MAX - 8) return hetee_error(HETEE_ERR_LIMIT, "layer output of %zu bytes", len);
  if (8 + len > sb->slot_cap[i]) {
    uint8_t *b = realloc(sb->slot[i], 8 + len);
    if (!b) return hetee_error(HETEE_ERR_NOMEM, "no memory");
    sb->slot[i] = b;
    sb->slot_cap[i] = 8 + len;
  }
  if ((rc = save_c0_at(t->ctx, sb, acc, i, 1, sb->slot[i] + 8, sb->slot_cap[i] - 8, &len)))
    return hetee_error(rc, "cannot serialize a ciphertext: %s", hetee_last_error());
  hetee_le64(sb->slot[i], len);
  sb->slot_len[i] = 8 + len;
  return 0;
}

static int stage_item(void *arg, size_t i, int tid) {
  const stage_task *t = arg;
  if (t->sb) return fused_item(t, i, tid);
  int rc = t->kernel ? hetee_hemat_conv_eval_range(t->ctx, t->L, t->in, t->w,
                                                   t->bias, i, 1, t->out + i)
                     : 0;
  if (!rc && t->rescale && (rc = rescale_one(t->sh, t->out[i], tid)))
    hetee_error(rc, "cannot rescale layer output %zu: %s", i, hetee_last_error());
  return rc;
}

/* Serializes c[0..n) into w->ser as n x (u64 length | ciphertext bytes),
 * the wire's blob list, without intermediate copies (on the pool). */
typedef struct {
  const hetee_ckks_context *ctx;
  hetee_ckks_ciphertext *const *c;
  uint8_t *ser;
  const size_t *off;
  const stage_buf *c0; /* NULL: full form; else a stage's outputs in the c0-at form (save_c0_at) */
} ser_task;

static int ser_item(void *arg, size_t i, int tid) {
  (void)tid;
  const ser_task *t = arg;
  size_t len = 0;
  uint8_t *dst = t->ser + t->off[i] + 8;
  size_t cap = t->off[i + 1] - t->off[i] - 8;
  int rc = t->c0 ? save_c0_at(t->ctx, t->c0, t->c[i], i, 0, dst, cap, &len)
                 : hetee_ckks_ciphertext_save_to(t->ctx, t->c[i], dst, cap, &len);
  hetee_le64(t->ser + t->off[i], len);
  return rc;
}

/* c0: NULL, or a stage's buffers whose c0 positions (c0_positions) say
 * which coefficients of c0 each output carries */
static int serialize(worker *w, const hetee_ckks_context *ctx, hetee_ckks_ciphertext *const *c, size_t n,
                     const stage_buf *c0, size_t *total) {
  size_t *off = malloc((n + 1) * sizeof *off);
  if (!off) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  int rc = 0;
  off[0] = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    size_t len = 0;
    rc = c0 ? save_c0_at(ctx, c0, c[i], i, 0, NULL, 0, &len) : hetee_ckks_ciphertext_save_size(ctx, c[i], &len);
    off[i + 1] = off[i] + 8 + len;
  }
  if (!rc && off[n] > w->ser_cap) {
    uint8_t *b = realloc(w->ser, off[n]);
    if (!b) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    else w->ser = b, w->ser_cap = off[n];
  }
  if (!rc) {
    ser_task t = {ctx, c, w->ser, off, c0};
    rc = pool_run(w->sh->pool, n, ser_item, &t);
    if (rc) rc = hetee_error(rc, "cannot serialize a ciphertext: %s", hetee_last_error());
  }
  *total = rc ? 0 : off[n];
  free(off);
  return rc;
}

/* Reads the blob list `u32 m | m x (u64 length | bytes)` of a reply into
 * w->blob / w->blen (pointers into the reply body). */
static int read_blobs(worker *w, hetee_rbuf *r, const char *what) {
  uint32_t m = hetee_rbuf_u32(r);
  if (r->err || m > 4096) return hetee_error(HETEE_ERR_PROTOCOL, "malformed %s reply", what);
  if (m > w->nblob) {
    const uint8_t **b = realloc(w->blob, m * sizeof *b);
    if (b) w->blob = b;
    size_t *l = b ? realloc(w->blen, m * sizeof *l) : NULL;
    if (l) w->blen = l;
    if (!b || !l) return hetee_error(HETEE_ERR_NOMEM, "no memory");
    w->nblob = m;
  }
  for (uint32_t i = 0; i < m; i++) {
    w->blob[i] = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &w->blen[i]);
    if (r->err) return hetee_error(HETEE_ERR_PROTOCOL, "malformed %s reply", what);
  }
  return (int)m;
}

/* Sends a JOB_START made of two parts and reads its reply (job handle,
 * the enclave's integrity CPU). */
static int job_start_call(worker *w, const hetee_frame_part parts[2], uint32_t *job, uint64_t *ns) {
  hetee_frame f;
  int rc = hetee_host_call_parts(w->sh->e, (uint16_t)(HETEE_MSG_JOB_START | w->sh->serial), parts, 2, &f, 0);
  if (rc) return rc;
  hetee_rbuf r;
  hetee_rbuf_init(&r, f.body, f.len);
  *job = hetee_rbuf_u32(&r);
  *ns = hetee_rbuf_u64(&r);
  rc = r.err || hetee_rbuf_left(&r) ? hetee_error(HETEE_ERR_PROTOCOL, "malformed JOB_START reply") : 0;
  hetee_frame_clear(&f);
  return rc;
}

/* JOB_START (engine_job_start's wire format) of inputs serialized into
 * w->ser (total bytes), written without further copies. */
static int job_start(worker *w, uint32_t model_id, uint32_t batch, size_t n, size_t total, uint32_t *job,
                     uint64_t *ns) {
  uint8_t hdr[12];
  hetee_le32(hdr, model_id);
  hetee_le32(hdr + 4, batch);
  hetee_le32(hdr + 8, (uint32_t)n);
  hetee_frame_part parts[2] = {{hdr, sizeof hdr}, {w->ser, total}};
  return job_start_call(w, parts, job, ns);
}

/* JOB_START in its witness form (enclave/wire/proto.h): the data
 * provider's sealed input values for micro-batch k, whose digest it
 * authorized; the input ciphertexts stay on the host. */
static int job_start_witness(worker *w, uint32_t model_id, size_t k, uint32_t batch, uint32_t *job, uint64_t *ns) {
  const hetee_engine_witnesses *wit = w->sh->wit;
  if (k >= wit->n || wit->batch[k] != batch || !wit->blob[k])
    return hetee_error(HETEE_ERR_SHAPE, "no witness of %u samples for micro-batch %zu", batch, k);
  uint8_t hdr[20];
  hetee_le32(hdr, model_id);
  hetee_le32(hdr + 4, batch);
  hetee_le32(hdr + 8, 0);
  hetee_le64(hdr + 12, (uint64_t)wit->len[k]);
  hetee_frame_part parts[2] = {{hdr, sizeof hdr}, {wit->blob[k], wit->len[k]}};
  return job_start_call(w, parts, job, ns);
}

/* sb holds at least n output buffers (kept, storage reused). */
static int slots_reserve(stage_buf *sb, size_t n) {
  if (sb->nslot >= n) return 0;
  uint8_t **s = realloc(sb->slot, n * sizeof *s);
  if (s) sb->slot = s;
  size_t *c = s ? realloc(sb->slot_cap, n * sizeof *c) : NULL;
  if (c) sb->slot_cap = c;
  size_t *l = c ? realloc(sb->slot_len, n * sizeof *l) : NULL;
  if (l) sb->slot_len = l;
  if (!s || !c || !l) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (size_t i = sb->nslot; i < n; i++) s[i] = NULL, c[i] = 0, l[i] = 0;
  sb->nslot = n;
  return 0;
}

/* JOB_REFRESH of stage s (engine_job_refresh's wire format: job, stage,
 * count, the outputs; no spec, the enclave applies the registered plan's)
 * with the n outputs serialized in sb's buffers, written from them as they
 * are (writev); the reply is left in *f. */
static int job_refresh_slots(worker *w, uint32_t job, uint32_t s, const stage_buf *sb, size_t n, hetee_frame *f) {
  uint8_t hdr[12];
  hetee_le32(hdr, job);
  hetee_le32(hdr + 4, s);
  hetee_le32(hdr + 8, (uint32_t)n);
  hetee_frame_part *parts = malloc((n + 1) * sizeof *parts);
  if (!parts) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  parts[0] = (hetee_frame_part){hdr, sizeof hdr};
  for (size_t i = 0; i < n; i++) parts[1 + i] = (hetee_frame_part){sb->slot[i], sb->slot_len[i]};
  memset(f, 0, sizeof *f);
  int rc = hetee_host_call_parts(w->sh->e, (uint16_t)(HETEE_MSG_JOB_REFRESH | w->sh->serial), parts, n + 1, f, 0);
  free(parts);
  return rc;
}

/* The same with the n outputs serialized into w->ser (total bytes). */
static int job_refresh_call(worker *w, uint32_t job, uint32_t s, size_t n, size_t total, hetee_frame *f) {
  uint8_t hdr[12];
  hetee_le32(hdr, job);
  hetee_le32(hdr + 4, s);
  hetee_le32(hdr + 8, (uint32_t)n);
  hetee_frame_part parts[2] = {{hdr, sizeof hdr}, {w->ser, total}};
  memset(f, 0, sizeof *f);
  return hetee_host_call_parts(w->sh->e, (uint16_t)(HETEE_MSG_JOB_REFRESH | w->sh->serial), parts, 2, f, 0);
}

/* Loads the enclave's ciphertext i into its object and checks it is what
 * the next stage expects (on the pool). */
typedef struct {
  const hetee_ckks_context *ctx;
  const uint8_t *const *blob;
  const size_t *blen;
  hetee_ckks_ciphertext **fresh;
  double scale; /* HETEE_ENGINE_IN_SCALE, / lanes for a lane stage's dense inputs */
} load_task;

static int load_item(void *arg, size_t i, int tid) {
  (void)tid;
  const load_task *t = arg;
  int rc = hetee_ckks_ciphertext_load_into(t->ctx, t->blob[i], t->blen[i], t->fresh[i]);
  return rc ? rc : engine_check_ct(t->ctx, t->fresh[i], t->scale, "refreshed input");
}

/* Lanes (docs/engine.md, "Issue 8: lanes"): the enclave encrypted a lane
 * stage's inputs dense at HETEE_ENGINE_IN_SCALE / lanes; the host splits
 * dense ciphertext i into lanes ciphertexts out[i*lanes .. +lanes) with
 * public operations (hetee_ckks_evaluator_expand: lanes - 1 key switches),
 * lane q being the stage's input ciphertext i*lanes + q with its values
 * at HETEE_ENGINE_IN_SCALE (the expansion multiplies them by lanes). */
typedef struct {
  hetee_ckks_evaluator **ev; /* per pool thread; NULL: a temporary one per item */
  const hetee_ckks_context *ctx;
  const hetee_ckks_galois_keys *gk;
  hetee_ckks_ciphertext *const *dense;
  hetee_ckks_ciphertext *const *out;
  int lanes;
} expand_task;

static int expand_item(void *arg, size_t i, int tid) {
  const expand_task *t = arg;
  hetee_ckks_ciphertext *const *o = t->out + i * (size_t)t->lanes;
  int rc = t->ev ? hetee_ckks_evaluator_expand(t->ev[tid], t->gk, t->dense[i], t->lanes, o)
                 : hetee_ckks_eval_expand(t->ctx, t->gk, t->dense[i], t->lanes, o);
  for (int q = 0; q < t->lanes && !rc; q++) rc = hetee_ckks_ciphertext_set_scale(o[q], HETEE_ENGINE_IN_SCALE);
  return rc ? engine_wrap(rc, "expansion of refreshed input %zu", i) : 0;
}

/* The JOB_REFRESH reply f: R->out_ncts fresh ciphertexts loaded straight
 * into the worker's objects fresh[] and checked as the next stage's inputs,
 * or (last stage) only counted: a bound run releases from the enclave's
 * own values. *ns: the enclave's integrity time. */
static int job_refresh_reply(worker *w, const hetee_ckks_context *ctx, const hetee_engine_refresh *R, const hetee_frame *f,
                             hetee_ckks_ciphertext **fresh, uint64_t *ns) {
  hetee_rbuf r;
  hetee_rbuf_init(&r, f->body, f->len);
  int rc = 0, m = read_blobs(w, &r, "JOB_REFRESH");
  if (m < 0) return m;
  /* the last stage of a bound job returns none: the enclave releases from
   * the values it kept */
  uint32_t want = R->release ? 0 : R->out_ncts;
  if ((uint32_t)m != want)
    return hetee_error(HETEE_ERR_PROTOCOL, "the enclave returned %d ciphertexts, expected %u", m, want);
  *ns = hetee_rbuf_u64(&r);
  if (r.err || hetee_rbuf_left(&r)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed JOB_REFRESH reply");
  if (R->release) return 0;
  load_task t = {ctx, w->blob, w->blen, fresh, HETEE_ENGINE_IN_SCALE / (double)R->out_lanes};
  rc = pool_run(w->sh->pool, (size_t)m, load_item, &t);
  return rc ? engine_wrap(rc, "refreshed ciphertexts refused") : 0;
}

/* Enclave calls under the lock, so that the counters see only this
 * worker's requests: what the enclave counted since the last call of the
 * run (sh->last) is this call's. Each request is followed by a STATS
 * request on the socket (hetee_host_stats_follow), answered without a
 * round trip of its own: before, two STATS round trips framed every call
 * under the lock (e2dm, 1024 images, 2 CPUs on the loaded machine: 0.07 s
 * of a 0.43 s run, 0.45 ms each, the other pipeline waiting on the lock). */
/* Runs sharing a caller's lock (hetee_engine_run_hooked): the counters
 * after the last engine call on that handle under that lock, whichever run
 * made it (own mutex; a miss costs a STATS round trip). */
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  const hetee_host_enclave *e;
  const pthread_mutex_t *lock;
  enc_counters last;
} shared_last;

static int enclave_begin(run_shared *sh, enc_counters *c0) {
  pthread_mutex_lock(sh->elock);
  if (sh->elock != &sh->lock) { /* shared: other runs' calls came in between */
    pthread_mutex_lock(&shared_mu);
    sh->have_last = shared_last.e == sh->e && shared_last.lock == sh->elock;
    if (sh->have_last) sh->last = shared_last.last;
    pthread_mutex_unlock(&shared_mu);
  }
  int rc = sh->have_last ? 0 : enclave_counters(sh->e, &sh->last, 0);
  if (rc) {
    pthread_mutex_unlock(sh->elock);
    return rc;
  }
  sh->have_last = 1;
  *c0 = sh->last;
  hetee_host_stats_follow(sh->e, 1);
  pool_reserve(sh->pool, 1);
  if (sh->trace) sh->call_t0 = now();
  return 0;
}

/* Names the call just begun, for the trace (under the lock). */
static void call_is(run_shared *sh, int what, size_t stage) {
  sh->call_what = what;
  sh->call_stage = (int)stage;
}

static int enclave_end(run_shared *sh, int rc, const enc_counters *c0, hetee_engine_stage_stats *ss) {
  enc_counters c1 = {0, 0, 0};
  if (!rc && enclave_counters(sh->e, &c1, 1)) rc = enclave_counters(sh->e, &c1, 0);
  hetee_host_stats_follow(sh->e, 0);
  pool_reserve(sh->pool, 0);
  int shared = sh->elock != &sh->lock;
  /* shared: the enclave may have restarted (counters from 0) since */
  int back = c1.cpu_ns < c0->cpu_ns || c1.bytes_in < c0->bytes_in || c1.bytes_out < c0->bytes_out;
  if (!rc && !(shared && back)) add_counters(ss, c0, &c1);
  if (sh->trace) trace_add(sh->trace, sh->call_what, sh->call_stage, sh->call_t0, now());
  if (!rc) {
    sh->last = c1;
  } else {
    sh->have_last = 0;
  }
  if (shared) {
    pthread_mutex_lock(&shared_mu);
    shared_last.e = rc ? NULL : sh->e;
    shared_last.lock = sh->elock;
    shared_last.last = c1;
    pthread_mutex_unlock(&shared_mu);
  }
  pthread_mutex_unlock(sh->elock);
  return rc;
}

/* The per-sample releases of a micro-batch (first sample index first). */
static int releases(run_shared *sh, const hetee_engine_refresh *R, uint32_t bk, size_t first, uint8_t *const *fresh,
                    const size_t *flens, hetee_engine_stage_stats *ss) {
  const hetee_ckks_context *ctx = sh->em->ctx;
  uint32_t *map = malloc(R->n_final * sizeof *map);
  if (!map) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  hetee_release_spec rs;
  memset(&rs, 0, sizeof rs);
  rs.in_level = hetee_ckks_context_max_level(ctx);
  rs.in_scale = hetee_engine_release_scale(ctx);
  rs.in_encoding = HETEE_ENC_COEFFS;
  rs.map = map;
  rs.n = R->n_final;
  enc_counters c0;
  int rc = enclave_begin(sh, &c0);
  if (!rc) call_is(sh, TRACE_RELEASE, sh->em->plan->nstages - 1);
  for (uint32_t b = 0; b < bk && !rc; b++) {
    size_t ct = b / R->release_cap, idx = first + b;
    for (size_t j = 0; j < R->n_final; j++) map[j] = (uint32_t)((b % R->release_cap) * R->n_final + j);
    rc = hetee_host_release(sh->e, sh->model_id, sh->sid, &rs, (const uint8_t *const *)fresh + ct, flens + ct, 1,
                               &sh->res->sealed[idx], &sh->res->lens[idx]);
    if (rc) rc = engine_wrap(rc, "release of sample %zu", idx);
    ss->enclave_decryptions++;
  }
  rc = enclave_end(sh, rc, &c0, ss);
  free(map);
  return rc;
}

/* The progress hook: stage done of micro-batch k (under queue, so that
 * the caller sees done strictly increasing). */
static void engine_progress(run_shared *sh, size_t k) {
  if (!sh->prog) return;
  pthread_mutex_lock(&sh->queue);
  sh->prog_done++;
  sh->prog(sh->prog_ud, k, sh->prog_done, sh->prog_total);
  pthread_mutex_unlock(&sh->queue);
}

/* Micro-batch k: bk samples, inputs in[]. Bound runs keep every object
 * and buffer in the worker (stage_buf) and talk to the enclave without
 * intermediate copies; unbound runs (the pre-issue-9 path) allocate per
 * micro-batch. */
static int run_micro_batch(worker *w, size_t k, hetee_ckks_ciphertext *const *in, uint32_t bk) {
  run_shared *sh = w->sh;
  const hetee_engine_model *em = sh->em;
  const hetee_engine_plan *p = em->plan;
  const hetee_ckks_context *ctx = em->ctx;
  int threads = sh->threads;
  size_t first = k * p->micro_batch;
  hetee_ckks_ciphertext **cur = (hetee_ckks_ciphertext **)in, **own = NULL, **outs = NULL;
  size_t nown = 0, nouts = 0;
  uint8_t **blobs = NULL, **fresh = NULL;
  size_t *lens = NULL, *flens = NULL, nblobs = 0, nf = 0;
  hetee_engine_refresh tmp;
  memset(&tmp, 0, sizeof tmp);
  int rc = 0;
  uint32_t job = 0;
  hetee_ckks_ciphertext **tampered = NULL;
  if (sh->bound) {
    hetee_hemat_layout L0;
    uint64_t ns = 0;
    enc_counters c0;
    size_t total = 0;
    rc = hetee_engine_plan_layout(p, 0, bk, &L0);
    if (!rc && !sh->wit) rc = serialize(w, ctx, in, L0.n_in_cts, NULL, &total);
    if (!rc && !(rc = enclave_begin(sh, &c0))) {
      call_is(sh, TRACE_JOB_START, 0);
      rc = sh->wit ? job_start_witness(w, sh->model_id, k, bk, &job, &ns)
                   : job_start(w, sh->model_id, bk, L0.n_in_cts, total, &job, &ns);
      if (rc) rc = engine_wrap(rc, "micro-batch %zu: job start", k);
      rc = enclave_end(sh, rc, &c0, &w->st.stage[0]);
    }
    w->integrity_ns += ns;
  }
  for (size_t s = 0; s < p->nstages && !rc; s++) {
    hetee_engine_stage_stats *ss = &w->st.stage[s];
    stage_buf *sb = &w->sb[s];
    double t0 = now();
    hetee_hemat_layout L;
    if ((rc = hetee_engine_plan_layout(p, s, bk, &L))) break;
    /* refresh maps: cached for full micro-batches, fresh for a short one */
    hetee_engine_refresh *R = &w->cache[s];
    if (bk != p->micro_batch) {
      hetee_engine_refresh_free(&tmp);
      R = &tmp;
    }
    if (!R->in_map && (rc = hetee_engine_plan_refresh(p, s, bk, R))) break;
    nouts = L.n_out_cts;
    /* bound runs: each output computed, rescaled and serialized by one pool
     * item (fused); with a tamper hook (tests) into output objects first */
    int fused = sh->bound && !engine_tamper_hook;
    /* bound runs: which coefficients of c0 each output carries */
    if (sh->bound && (rc = c0_positions(ctx, sb, R, nouts, R == &w->cache[s]))) break;
    if (fused) {
      rc = slots_reserve(sb, nouts);
    } else if (sh->bound) {
      rc = cts_reserve(ctx, &sb->outs, &sb->nouts, nouts);
      outs = sb->outs;
    } else {
      outs = calloc(nouts, sizeof *outs);
      if (!outs) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      for (size_t i = 0; i < nouts && !rc; i++) rc = hetee_ckks_ciphertext_new(ctx, &outs[i]);
    }
    if (!rc && engine_tamper_hook) { /* test double (tests/integrity) */
      free(tampered);
      tampered = malloc(L.n_in_cts * sizeof *tampered);
      if (!tampered) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      if (!rc) memcpy(tampered, cur, L.n_in_cts * sizeof *tampered);
      if (!rc) rc = engine_tamper_hook(engine_tamper_arg, k, s, tampered, L.n_in_cts, 1);
      if (!rc) cur = tampered;
    }
    /* bound runs: each output's products, bias and rescale as one item
     * of the host's pool (the rescale after the tamper hook when a test
     * installed one); unbound runs: OpenMP in this thread */
    stage_task task = {sh, ctx, &L, (const hetee_ckks_ciphertext *const *)cur,
                       (const hetee_ckks_ciphertext *const *)em->w[s],
                       (const hetee_ckks_ciphertext *const *)em->bias[s], outs, 1, !engine_tamper_hook,
                       fused ? sb : NULL};
    if (!rc && sh->bound) rc = pool_run(sh->pool, nouts, stage_item, &task);
    else if (!rc)
      rc = hetee_hemat_conv_eval(ctx, &L, (const hetee_ckks_ciphertext *const *)cur,
                                 (const hetee_ckks_ciphertext *const *)em->w[s],
                                 (const hetee_ckks_ciphertext *const *)em->bias[s], threads, outs);
    if (rc) {
      rc = engine_wrap(rc, "stage %zu (%s): host kernel", s, p->st[s].names);
      break;
    }
    if (engine_tamper_hook && (rc = engine_tamper_hook(engine_tamper_arg, k, s, outs, nouts, 0))) break;
    ss->products += L.n_products;
    /* this stage's inputs are consumed */
    cts_free(own, nown);
    own = NULL;
    nown = 0;
    cur = NULL;
    if (sh->bound) {
      /* the enclave's fresh ciphertexts go straight into the worker's objects */
      if (!R->release && (rc = cts_reserve(ctx, &sb->next, &sb->nnext, R->out_ncts))) break;
      size_t total = 0;
      if (!task.rescale) {
        task.kernel = 0, task.rescale = 1;
        rc = pool_run(sh->pool, nouts, stage_item, &task);
      }
      if (!rc && !fused) rc = serialize(w, ctx, outs, nouts, sb, &total);
      outs = NULL; /* the worker's */
      if (rc) break;
      double t1 = now();
      ss->host_s += t1 - t0;
      enc_counters c0;
      hetee_frame f;
      memset(&f, 0, sizeof f);
      if (!(rc = enclave_begin(sh, &c0))) {
        call_is(sh, TRACE_REFRESH, s);
        rc = fused ? job_refresh_slots(w, job, (uint32_t)s, sb, nouts, &f)
                   : job_refresh_call(w, job, (uint32_t)s, nouts, total, &f);
        rc = enclave_end(sh, rc, &c0, ss);
      }
      double t2 = now();
      w->st.wall_enclave_s += t2 - t1;
      uint64_t ns = 0;
      if (!rc) rc = job_refresh_reply(w, ctx, R, &f, sb->next, &ns);
      hetee_frame_clear(&f);
      w->integrity_ns += ns;
      nouts = 0;
      if (rc) {
        rc = engine_wrap(rc, "stage %zu (%s): refresh", s, p->st[s].names);
        break;
      }
      ss->enclave_decryptions += R->in_ncts;
      ss->enclave_encryptions += R->release ? 0 : R->out_ncts;
      double t2b = now();
      ss->host_s += t2b - t2;
      if (!R->release && R->out_lanes > 1) { /* a lane stage next: expand its dense inputs */
        size_t nl = (size_t)R->out_ncts * (size_t)R->out_lanes;
        expand_task et = {sh->ev, ctx, em->gk, sb->next, NULL, R->out_lanes};
        if (!(rc = cts_reserve(ctx, &sb->lanes, &sb->nlanes, nl))) {
          et.out = sb->lanes;
          rc = pool_run(sh->pool, R->out_ncts, expand_item, &et);
        }
        if (rc) {
          rc = engine_wrap(rc, "stage %zu: inputs of stage %zu", s, s + 1);
          break;
        }
        w->keyswitches += (uint64_t)R->out_ncts * (uint64_t)(R->out_lanes - 1);
        double t2c = now();
        ss->host_s += t2c - t2b;
        t2b = t2c;
      }
      if (!R->release) {
        cur = R->out_lanes > 1 ? sb->lanes : sb->next;
        ss->wall_s += t2b - t0;
        engine_progress(sh, k);
        continue;
      }
      t2 = t2b;
      /* the last stage: the release, after the previous micro-batch's */
      pthread_mutex_lock(&sh->queue);
      while (sh->released != k && !sh->rc) pthread_cond_wait(&sh->turn, &sh->queue);
      int failed = sh->rc;
      pthread_mutex_unlock(&sh->queue);
      if (failed) {
        rc = hetee_error(HETEE_ERR_STATE, "another micro-batch failed");
        break;
      }
      enc_counters cr;
      if (!(rc = enclave_begin(sh, &cr))) {
        call_is(sh, TRACE_RELEASE, s);
        rc = engine_job_release(sh->e, job, sh->sid, bk, sh->res->sealed + first, sh->res->lens + first);
        if (rc) rc = engine_wrap(rc, "micro-batch %zu: release", k);
        rc = enclave_end(sh, rc, &cr, ss);
      }
      pthread_mutex_lock(&sh->queue);
      sh->released = k + 1;
      pthread_cond_broadcast(&sh->turn);
      pthread_mutex_unlock(&sh->queue);
      if (rc) break;
      double t3 = now();
      w->st.wall_enclave_s += t3 - t2;
      ss->wall_s += t3 - t0;
      engine_progress(sh, k);
      continue;
    }
    nblobs = nouts;
    rc = save_all(ctx, outs, nouts, threads, &blobs, &lens);
    cts_free(outs, nouts);
    outs = NULL;
    if (rc) break;
    double t1 = now();
    ss->host_s += t1 - t0;
    enc_counters c0;
    if ((rc = enclave_begin(sh, &c0))) break;
    call_is(sh, TRACE_REFRESH, s);
    rc = refresh(sh->e, ctx, R, blobs, lens, &fresh, &flens, &nf);
    if (rc) rc = engine_wrap(rc, "stage %zu (%s): refresh", s, p->st[s].names);
    rc = enclave_end(sh, rc, &c0, ss);
    if (rc) break;
    ss->enclave_decryptions += R->in_ncts;
    ss->enclave_encryptions += R->out_ncts;
    double t2 = now();
    w->st.wall_enclave_s += t2 - t1;
    blobs_free(blobs, lens, nblobs);
    blobs = NULL;
    lens = NULL;
    nblobs = 0;
    if (R->release) {
      if (nf != R->out_ncts) {
        rc = hetee_error(HETEE_ERR_PROTOCOL, "the enclave returned %zu release ciphertexts, expected %u", nf,
                         R->out_ncts);
        break;
      }
      if ((rc = unseed(ctx, fresh, flens, nf))) break;
      double t3 = now();
      ss->host_s += t3 - t2;
      /* one release per sample, from the release ciphertext holding it,
       * after the previous micro-batch's */
      pthread_mutex_lock(&sh->queue);
      while (sh->released != k && !sh->rc) pthread_cond_wait(&sh->turn, &sh->queue);
      int failed = sh->rc;
      pthread_mutex_unlock(&sh->queue);
      if (failed) {
        rc = hetee_error(HETEE_ERR_STATE, "another micro-batch failed");
        break;
      }
      rc = releases(sh, R, bk, first, fresh, flens, ss);
      pthread_mutex_lock(&sh->queue);
      sh->released = k + 1;
      pthread_cond_broadcast(&sh->turn);
      pthread_mutex_unlock(&sh->queue);
      if (rc) break;
      w->st.wall_enclave_s += now() - t3;
    } else {
      rc = load_fresh(ctx, fresh, flens, nf, R->out_ncts, HETEE_ENGINE_IN_SCALE / (double)R->out_lanes, threads, &own);
      nown = rc ? 0 : R->out_ncts;
      if (rc) break;
      if (R->out_lanes > 1) { /* a lane stage next: expand its dense inputs (one temporary evaluator each) */
        size_t nl = (size_t)R->out_ncts * (size_t)R->out_lanes;
        hetee_ckks_ciphertext **lanes = calloc(nl, sizeof *lanes);
        if (!lanes) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
        for (size_t i = 0; i < nl && !rc; i++) rc = hetee_ckks_ciphertext_new(ctx, &lanes[i]);
        expand_task et = {NULL, ctx, em->gk, own, lanes, R->out_lanes};
        for (size_t i = 0; i < R->out_ncts && !rc; i++) rc = expand_item(&et, i, 0);
        cts_free(own, nown);
        own = lanes;
        nown = lanes ? nl : 0;
        if (rc) break;
        w->keyswitches += (uint64_t)R->out_ncts * (uint64_t)(R->out_lanes - 1);
      }
      cur = own;
      ss->host_s += now() - t2;
    }
    blobs_free(fresh, flens, nf);
    fresh = NULL;
    flens = NULL;
    nf = 0;
    ss->wall_s += now() - t0;
    engine_progress(sh, k);
  }
  cts_free(own, nown);
  if (!sh->bound) cts_free(outs, nouts);
  blobs_free(blobs, lens, nblobs);
  blobs_free(fresh, flens, nf);
  hetee_engine_refresh_free(&tmp);
  free(tampered);
  return rc;
}

/* Takes micro-batches until none is left or a worker failed. */
static void *worker_main(void *arg) {
  worker *w = arg;
  run_shared *sh = w->sh;
  const hetee_engine_plan *p = sh->em->plan;
  for (;;) {
    pthread_mutex_lock(&sh->queue);
    size_t k = sh->next++;
    int stop = sh->rc != 0 || k >= sh->nmb;
    pthread_mutex_unlock(&sh->queue);
    if (stop) break;
    uint32_t bk = engine_mb_size(sh->in->count, p->micro_batch, k);
    int rc = run_micro_batch(w, k, sh->in->cts + sh->first_ct[k], bk);
    w->st.micro_batches++;
    if (rc) {
      pthread_mutex_lock(&sh->queue);
      if (!sh->rc) {
        sh->rc = rc;
        snprintf(sh->detail, sizeof sh->detail, "%s", hetee_last_error());
      }
      pthread_cond_broadcast(&sh->turn);
      pthread_mutex_unlock(&sh->queue);
      break;
    }
  }
  return NULL;
}

void hetee_engine_stage_stats_add(hetee_engine_stage_stats *acc, const hetee_engine_stage_stats *x) {
  acc->products += x->products;
  acc->enclave_encryptions += x->enclave_encryptions;
  acc->enclave_decryptions += x->enclave_decryptions;
  acc->bytes_to_enclave += x->bytes_to_enclave;
  acc->bytes_from_enclave += x->bytes_from_enclave;
  acc->host_s += x->host_s;
  acc->enclave_s += x->enclave_s;
  acc->wall_s += x->wall_s;
}

static void stats_merge(hetee_engine_stats *a, const hetee_engine_stats *b) {
  a->micro_batches += b->micro_batches;
  a->wall_enclave_s += b->wall_enclave_s;
  for (size_t s = 0; s < a->nstages; s++) hetee_engine_stage_stats_add(&a->stage[s], &b->stage[s]);
}

static int run_impl(hetee_host_enclave *e, const hetee_engine_model *em, const hetee_engine_input *in, uint32_t model_id,
                    const uint8_t dp_session[16], int threads, hetee_engine_results *out, hetee_engine_stats *stats,
                    int bound, const hetee_engine_witnesses *wit, const hetee_engine_run_hooks *hooks);

int hetee_engine_run(hetee_host_enclave *e, const hetee_engine_model *em, const hetee_engine_input *in, uint32_t model_id,
                     const uint8_t dp_session[16], int threads, hetee_engine_results *out, hetee_engine_stats *stats) {
  return run_impl(e, em, in, model_id, dp_session, threads, out, stats, 0, NULL, NULL);
}

int hetee_engine_run_bound(hetee_host_enclave *e, const hetee_engine_model *em, const hetee_engine_input *in,
                           uint32_t model_id, const uint8_t dp_session[16], int threads, hetee_engine_results *out,
                           hetee_engine_stats *stats) {
  return run_impl(e, em, in, model_id, dp_session, threads, out, stats, 1, NULL, NULL);
}

int hetee_engine_run_witnessed(hetee_host_enclave *e, const hetee_engine_model *em, const hetee_engine_input *in,
                               const hetee_engine_witnesses *wit, uint32_t model_id, const uint8_t dp_session[16],
                               int threads, hetee_engine_results *out, hetee_engine_stats *stats) {
  if (!wit || !wit->batch || !wit->blob || !wit->len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  return run_impl(e, em, in, model_id, dp_session, threads, out, stats, 1, wit, NULL);
}

int hetee_engine_run_hooked(hetee_host_enclave *e, const hetee_engine_model *em, const hetee_engine_input *in,
                            const hetee_engine_witnesses *wit, uint32_t model_id, const uint8_t dp_session[16],
                            int threads, const hetee_engine_run_hooks *hooks, hetee_engine_results *out,
                            hetee_engine_stats *stats) {
  if (wit && (!wit->batch || !wit->blob || !wit->len)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  return run_impl(e, em, in, model_id, dp_session, threads, out, stats, 1, wit, hooks);
}

/* Whether the run's enclave requests ask for the enclave's calling thread
 * only (HETEE_MSG_SERIAL): the hooks' choice, else serial when the run
 * overlaps micro-batches (nw pipelines >= 2), whose host work then keeps
 * the CPUs busy while the enclave serves one of them — its parallel loops
 * only add wake-ups and contention to the enclave's CPU time (measured:
 * docs/enclave.md, "Serial requests"). HETEE_ENCLAVE_SERIAL=0 / 1 forces
 * it off / on (for measurements). */
static int enclave_serial(const hetee_engine_run_hooks *hooks, size_t nw) {
  const char *v = getenv("HETEE_ENCLAVE_SERIAL");
  if (v && (!strcmp(v, "0") || !strcmp(v, "1"))) return v[0] == '1';
  int want = hooks ? hooks->enclave_serial : 0;
  return want > 0 || (want == 0 && nw >= 2);
}

static int run_impl(hetee_host_enclave *e, const hetee_engine_model *em, const hetee_engine_input *in, uint32_t model_id,
                    const uint8_t dp_session[16], int threads, hetee_engine_results *out, hetee_engine_stats *stats,
                    int bound, const hetee_engine_witnesses *wit, const hetee_engine_run_hooks *hooks) {
  if (!e || !em || !in || !dp_session || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  memset(out, 0, sizeof *out);
  if (threads < 1 || threads > 64) return hetee_error(HETEE_ERR_INVALID_ARG, "threads %d (1..64)", threads);
  int rc = check_input(em, in);
  if (rc) return rc;
  const hetee_engine_plan *p = em->plan;
  /* lane stages: the host expands their inputs with its Galois keys */
  if (hetee_engine_plan_max_lanes(p) > 1 && !em->gk)
    return hetee_error(HETEE_ERR_NO_KEY, "the plan has stages in %d lanes: the host needs the expansion keys "
                                         "(hetee_engine_model_set_expand_keys)", hetee_engine_plan_max_lanes(p));
  uint64_t keyswitches = 0;
  hetee_engine_stats local, *st = stats ? stats : &local;
  memset(st, 0, sizeof *st);
  st->nstages = p->nstages;
  run_shared sh;
  memset(&sh, 0, sizeof sh);
  sh.e = e;
  sh.em = em;
  sh.in = in;
  sh.model_id = model_id;
  sh.sid = dp_session;
  sh.threads = threads;
  sh.res = out;
  sh.bound = bound;
  sh.wit = wit;
  sh.nmb = (in->count + p->micro_batch - 1) / p->micro_batch;
  sh.prog = hooks ? hooks->progress : NULL;
  sh.prog_ud = hooks ? hooks->progress_ud : NULL;
  sh.elock = hooks && hooks->enclave_lock ? hooks->enclave_lock : &sh.lock;
  sh.pool = &sh.own_pool;
  sh.runner = bound && hooks ? hooks->runner : NULL;
  if (sh.runner) {
    if (sh.runner->em != em) return hetee_error(HETEE_ERR_INVALID_ARG, "the runner is another model's");
    threads = sh.threads = sh.runner->threads; /* the runner's pool */
  }
  sh.prog_total = (uint64_t)sh.nmb * p->nstages;
  if (wit && wit->n != sh.nmb)
    return hetee_error(HETEE_ERR_SHAPE, "%zu witnesses for %zu micro-batches", wit->n, sh.nmb);
  /* several pipelines when there are micro-batches to overlap: the host's
   * products of one while the enclave refreshes another; bound runs give
   * all their host work to one pool of `threads` compute threads, unbound
   * runs use `threads` OpenMP threads per pipeline */
  size_t nw = engine_pipelines(threads);
  if (nw > sh.nmb) nw = sh.nmb;
  sh.serial = enclave_serial(hooks, nw) ? HETEE_MSG_SERIAL : 0;
  worker w[ENGINE_PIPELINES_MAX];
  memset(w, 0, sizeof w);
  out->sealed = calloc(in->count, sizeof *out->sealed);
  out->lens = calloc(in->count, sizeof *out->lens);
  sh.first_ct = calloc(sh.nmb, sizeof *sh.first_ct);
  for (size_t i = 0; i < nw; i++) {
    if (sh.runner) (void)runner_take(sh.runner, &w[i]); /* a previous run's buffers, if any */
    w[i].sh = &sh;
    w[i].st.nstages = p->nstages;
    if (!w[i].cache) w[i].cache = calloc(p->nstages, sizeof *w[i].cache);
    if (!w[i].sb) w[i].sb = calloc(p->nstages, sizeof *w[i].sb);
  }
  int nomem = !out->sealed || !out->lens || !sh.first_ct;
  for (size_t i = 0; i < nw; i++) nomem |= !w[i].cache || !w[i].sb;
  if (nomem) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto done;
  }
  out->n = in->count;
  for (size_t k = 0, off = 0; k < sh.nmb; k++) {
    hetee_hemat_layout L0;
    if ((rc = hetee_engine_plan_layout(p, 0, engine_mb_size(in->count, p->micro_batch, k), &L0))) goto done;
    sh.first_ct[k] = off;
    off += L0.n_in_cts;
  }
  if (sh.runner) { /* the runner's compute threads and evaluators */
    sh.pool = &sh.runner->pool;
    sh.ev = sh.runner->ev;
    sh.acc = sh.runner->acc;
    sh.trace = trace_new(); /* enclave calls only: the pool's items are shared with other runs */
  } else if (bound) { /* the host's compute threads and their evaluators */
    sh.ev = calloc((size_t)threads, sizeof *sh.ev);
    if (!sh.ev) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    for (int t = 0; t < threads && !rc; t++) rc = hetee_ckks_evaluator_new(em->ctx, 1, &sh.ev[t]);
    sh.acc = rc ? NULL : calloc((size_t)threads, sizeof *sh.acc);
    if (!rc && !sh.acc) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    for (int t = 0; t < threads && !rc; t++) rc = hetee_ckks_ciphertext_new(em->ctx, &sh.acc[t]);
    if (!rc) rc = pool_start(&sh.own_pool, threads);
    if (rc) goto done;
    sh.trace = sh.own_pool.trace = trace_new(); /* before any item or call */
  }
  pthread_mutex_init(&sh.lock, NULL);
  pthread_mutex_init(&sh.queue, NULL);
  pthread_cond_init(&sh.turn, NULL);
  double t0 = now(), cpu0 = process_cpu();
  if (sh.trace) sh.trace->t0 = t0;
  pthread_t tid[ENGINE_PIPELINES_MAX];
  size_t spawned = 1;
  while (spawned < nw && pthread_create(&tid[spawned], NULL, worker_main, &w[spawned]) == 0) spawned++;
  worker_main(&w[0]);
  for (size_t i = 1; i < spawned; i++) pthread_join(tid[i], NULL);
  st->total_s = now() - t0;
  st->host_cpu_s = process_cpu() - cpu0;
  trace_finish(sh.trace, threads, nw, st->total_s);
  sh.trace = sh.own_pool.trace = NULL;
  pthread_mutex_destroy(&sh.lock);
  pthread_mutex_destroy(&sh.queue);
  pthread_cond_destroy(&sh.turn);
  rc = sh.rc;
  if (rc) hetee_error(rc, "%s", sh.detail);
done:
  if (!sh.runner) {
    pool_stop(&sh.own_pool);
    for (int t = 0; sh.ev && t < threads; t++) hetee_ckks_evaluator_free(sh.ev[t]);
    free(sh.ev);
    for (int t = 0; sh.acc && t < threads; t++) hetee_ckks_ciphertext_free(sh.acc[t]);
    free(sh.acc);
  }
  for (size_t i = 0; i < nw; i++) {
    stats_merge(st, &w[i].st);
    st->integrity_s += (double)w[i].integrity_ns * 1e-9;
    keyswitches += w[i].keyswitches;
    /* a successful run's buffers go back to the runner (a failed one's
     * may be half made: freed) */
    if (!(sh.runner && !rc && w[i].cache && w[i].sb && !runner_park(sh.runner, &w[i]))) worker_free(&w[i], p->nstages);
  }
  free(sh.first_ct);
  if (rc) {
    hetee_engine_results_clear(out);
    return rc;
  }
  st->images = in->count;
  for (size_t s = 0; s < p->nstages; s++) {
    const hetee_engine_stage_stats *ss = &st->stage[s];
    st->products += ss->products;
    st->enclave_encryptions += ss->enclave_encryptions;
    st->enclave_decryptions += ss->enclave_decryptions;
    st->bytes_to_enclave += ss->bytes_to_enclave;
    st->bytes_from_enclave += ss->bytes_from_enclave;
    st->host_s += ss->host_s;
    st->enclave_s += ss->enclave_s;
  }
  st->keyswitches = keyswitches; /* the lane expansions' (the kernels make none) */
  return 0;
}

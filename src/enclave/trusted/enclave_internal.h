/*
 * enclave_internal.h — state and handlers of the hetee-enclave process (the
 * trusted side). Secrets (channel key, sealing key, session keys, CKKS secret
 * key) live in sodium_malloc'd memory: locked, guarded and wiped on free.
 */
#ifndef HETEE_ENCLAVE_INTERNAL_H
#define HETEE_ENCLAVE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "enclave/wire/proto.h"
#include "hetee/enclave.h"

#ifdef HETEE_ENCLAVE_HAVE_CKKS
#include "hetee/ckks.h"
#endif

#define ENCLAVE_HOST_FD 3
#define ENCLAVE_PLAT_FD 4
#define ENCLAVE_MAX_SESSIONS 64
#define ENCLAVE_MAX_POLICIES 64
#define ENCLAVE_MAX_PARTIES 256
#define ENCLAVE_EVIDENCE_RING 32
#define ENCLAVE_STATS 64 /* > the 42 message codes (0x51 REFINE_INIT, 0x52 REFINE_VWITNESS included): every type gets its row */
#define ENCLAVE_MAX_THREADS 64 /* configuration key threads= */
/* Marker string read by tests that patch a copy of the binary. */
#define ENCLAVE_BUILD_TAG "hetee-enclave build tag: sim backend v1"

typedef struct enclave_config {
  int log_n;
  int nq, q_bits[8];
  int np, p_bits[4];
  int scale_bits;
  size_t budget;
  int max_galois;
  int threads; /* worker threads including the main one (key threads=, default 1) */
  /* model providers allowed to set release policies (key mp=); none: no
   * policy can be set, so nothing can be released */
  int n_mp;
  uint8_t mp[HETEE_ENCLAVE_MAX_MPS][32];
} enclave_config;

typedef struct enclave_policy {
  uint32_t model_id;
  uint8_t kind, k, prec_bits, used;
  uint8_t n_dp;       /* 1..HETEE_POLICY_MAX_DPS */
  uint8_t dp_pk[HETEE_POLICY_MAX_DPS][32]; /* the only data providers a release may go
                                              to (none all zero, no repeats) */
  uint8_t owner[32];  /* the model provider (listed in mp=) that set the first policy */
} enclave_policy;

typedef struct enclave_party {
  uint8_t pk[32];
  uint8_t role;
} enclave_party;

typedef struct enclave_secrets {
  uint8_t seal_key[32];
  uint8_t ch_sk[32];
  hetee_chan sessions[ENCLAVE_MAX_SESSIONS];
  uint8_t session_used[ENCLAVE_MAX_SESSIONS];
} enclave_secrets;

struct enclave_backend;

/* Worker threads (pool.c), created at start-up before the seccomp filter. */
typedef struct enclave_pool enclave_pool;
/* A job: run by every thread of the pool at once, tid 0 being the caller. */
typedef void (*enclave_job_fn)(void *arg, int tid);
/* nthreads - 1 workers (1 <= nthreads <= ENCLAVE_MAX_THREADS); warmup (may
 * be NULL) has run once on every thread, workers included, when it
 * returns. */
int enclave_pool_start(int nthreads, enclave_job_fn warmup, void *arg, enclave_pool **out);
/* Runs fn(arg, 0) on the calling thread and fn(arg, tid) on the workers
 * that wake up before it returns; returns when all of those have returned.
 * fn must claim its work items itself, so that every item is done whoever
 * joins. items <= 1 (or a NULL pool) runs fn(arg, 0) alone. */
void enclave_pool_run(enclave_pool *p, enclave_job_fn fn, void *arg, size_t items);
/* Threads of the pool, the caller included (1 for NULL). */
int enclave_pool_threads(const enclave_pool *p);
void enclave_pool_free(enclave_pool *p);

typedef struct enclave {
  const struct enclave_backend *backend;
  int host_fd, plat_fd;
  int pid;
  uint64_t plat_id;
  uint8_t measurement[32];
  char config_str[1100];
  enclave_config cfg;
  enclave_secrets *sec; /* sodium_malloc */
  uint8_t ch_pk[32];
  unsigned next_session;
  uint8_t issued[ENCLAVE_EVIDENCE_RING][32];
  unsigned n_issued;
  enclave_policy policies[ENCLAVE_MAX_POLICIES];
  enclave_party parties[ENCLAVE_MAX_PARTIES];
  size_t n_parties;
  hetee_enclave_op_stats stats[ENCLAVE_STATS];
  /* key bundle (public) and its fingerprint; empty bundle until keygen */
  uint8_t *bundle;
  size_t bundle_len;
  uint8_t bundle_fp[32];
  int have_keys;
  int secrets_locked; /* RLIMIT_MEMLOCK covers enclave_locked_need() */
  int *galois_steps;
  size_t n_galois;
  enclave_pool *pool; /* NULL: single-threaded (in-process users such as the fuzz targets) */
  /* locked refresh/release workspace, grown on demand and kept between
   * requests (wiped after each one) */
  void *ws;
  size_t ws_cap;
  /* request body and reply buffers of the message loop, kept between
   * requests (server.c: wiped after each request unless public) */
  uint8_t *rx;
  size_t rx_cap;
  hetee_wbuf tx;
  /* a reply and the STATS reply behind it, sent together (server.c) */
  hetee_wbuf txb;
  /* the host's shared region (proto.h "shared-memory transport"), mapped at
   * start-up by enclave_shm_map; NULL: socket only. Public bytes only:
   * request bodies are copied out of it into rx before parsing (but
   * JOB_REFRESH: parsed in place, read once), and only finished public
   * replies are written into it. */
  uint8_t *shm;
  /* 1 while the request being served is parsed in place in the region
   * (JOB_REFRESH: server.c); its readers read every byte once */
  int body_shared;
  /* 1 while the request being served asked to run on the calling thread
   * only (HETEE_MSG_SERIAL, server.c): refresh.c's loops then skip the pool */
  int serial;
  /* the region's reply area while the request being served is answered
   * there (server.c sets it before dispatch; NULL otherwise): a handler may
   * write a finished, public part of the reply straight to its place in it
   * and name that part [reply_direct_off, + reply_direct_len) of the reply
   * (reserved in tx but not written there); the server copies only the
   * rest of tx. refresh.c: the fresh ciphertexts, each written once final
   * (the region never holds a value computed on the way). */
  uint8_t *reply_shm;
  size_t reply_direct_off, reply_direct_len;
#ifdef HETEE_ENCLAVE_HAVE_CKKS
  hetee_ckks_context *ctx;
  hetee_ckks_secret_key *sk;
  /* one ciphertext object per thread, reused by every refresh and release
   * (ciphertexts only: nothing secret is kept in them) */
  hetee_ckks_ciphertext *tct[ENCLAVE_MAX_THREADS];
#endif
  /* --- branch enclave-work --- */
  /* set by integrity.c for the JOB_REFRESH of a bound job's last stage:
   * the refresh runs its checks and ops but encrypts nothing (the final
   * values stay in the enclave for JOB_RELEASE; the reply holds 0
   * ciphertexts) */
  int job_no_output;
} enclave;

int enclave_config_parse(const char *s, enclave_config *c);
int enclave_harden_early(void);
/* Maps the host's shared region from fd HETEE_SHM_FD if it is there and
 * sound (a memfd of exactly HETEE_SHM_BYTES whose size is sealed, so the
 * host cannot shrink it under the mapping); otherwise leaves e->shm NULL
 * (socket only). Before the seccomp filter (hardening.c). */
void enclave_shm_map(enclave *e);
/* Fixed malloc thresholds (hardening.c): freed memory stays in the process
 * instead of being unmapped and faulted in again for every ciphertext. */
void enclave_malloc_tune(size_t budget);
/* Flush-to-zero and denormals-are-zero for the calling thread (part of
 * enclave_harden_early; worker threads call it too). */
void enclave_fp_mode(void);
/* Starts the worker threads the configuration asks for and warms them up
 * (refresh.c); call after enclave_keys_init, before the seccomp filter. */
int enclave_threads_start(enclave *e);
/* Joins the workers. */
void enclave_threads_free(enclave *e);
/* Frees the per-thread ciphertext objects and the locked workspace
 * (enclave_keys_free calls it: they belong to the context). */
void enclave_work_free(enclave *e);
/* 1 if RLIMIT_MEMLOCK allows locking `need` bytes (hardening.c). */
int enclave_memlock_ok(size_t need);
/* Bytes of locked memory the enclave may hold at once: secret key and key
 * generation temporaries, a refresh workspace up to the budget, sessions. */
size_t enclave_locked_need(const enclave_config *c);
int enclave_seccomp_install(void);

/* Handlers: parse the request body, fill the reply; errors are negative
 * statuses (with detail) answered by an error frame. */
int enclave_keys_init(enclave *e);
void enclave_keys_free(enclave *e);
int enclave_set_empty_bundle(enclave *e);
int enclave_handle_keygen(enclave *e, hetee_rbuf *r, hetee_wbuf *w);
int enclave_handle_refresh(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items);
/* Refresh of an already decoded job (consumed: freed here) with an
 * optional hook: gathered() sees the n decoded input values before the
 * ops, final() the n final values before they are encoded; a non-zero
 * return stops the refresh with that status (integrity.c). */
typedef struct enclave_refresh_hook {
  int (*gathered)(void *arg, const hetee_refresh_spec *spec, const double *v, size_t n);
  int (*final)(void *arg, const hetee_refresh_spec *spec, const double *v, size_t n);
  void *arg;
} enclave_refresh_hook;
int enclave_refresh_job_run(enclave *e, hetee_refresh_job *job, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items,
                            const enclave_refresh_hook *hook);
/* A refresh spec decoded once with the counting sorts of its input map and
 * output places (integrity.c keeps one per registered stage: every full
 * micro-batch JOB_REFRESH carries exactly these bytes). spec must be a
 * whole encoded spec. Running it does what enclave_refresh_job_run does
 * with the same spec, every check included. */
/* Adds uniform noise in [-a, a] to each of v[0..n) (release flooding,
 * docs/security.md): libsodium ChaCha20 under a fresh OS-entropy key per
 * call (refresh.c). */
void enclave_flood(double *v, size_t n, double a);
typedef struct enclave_refresh_prep enclave_refresh_prep;
int enclave_refresh_prepare(enclave *e, const uint8_t *spec, size_t len, enclave_refresh_prep **out);
void enclave_refresh_prep_free(enclave_refresh_prep *p);
int enclave_refresh_prep_run(enclave *e, const enclave_refresh_prep *p, hetee_rbuf *r, hetee_wbuf *w,
                             uint64_t *items, const enclave_refresh_hook *hook);
/* What a prepared job's first run would make, made beforehand (when its
 * model is registered, integrity.c): the products of the key with the
 * input's coset tables (ckks_coset_key) and the locked workspace at the
 * size the job asks for, so that the first job pays no allocation, page
 * faults or key products the later ones do not. Best effort: what cannot
 * be made now is made by the job (or fails there, with its own error). */
void enclave_refresh_prep_warm(enclave *e, const enclave_refresh_prep *p);
/* Parses a release input (i32 level | f64 scale | u8 encoding | u32 n |
 * u32 map[n] | u32 ncts | ncts x blob), checks it against the parameters
 * and against the flooding bound for a policy of prec_bits fractional bits
 * (all before decryption), decrypts the values named by map and adds the
 * flooding noise; *vals lies in the locked workspace (valid until its next
 * use): the caller wipes its n values. */
int enclave_release_values(enclave *e, hetee_rbuf *r, int prec_bits, double **vals, size_t *n, uint64_t *items);
/* Decrypts the coefficients map[k] (global index ct * N + coefficient) of
 * the ciphertexts blob[0..ncts) into values[k] on the enclave's threads, as
 * refresh does (one ciphertext per thread at a time, temporaries in the
 * locked workspace, wiped before it returns): every ciphertext must have
 * size 2, the given level and (within 2^-20) the given scale, checked
 * before it is decrypted; values saturate at +-HETEE_REFRESH_VALUE_BOUND.
 * The error is the one of the lowest failing ciphertext (integrity.c's
 * JOB_START). */
int enclave_gather_coeffs(enclave *e, const uint8_t *const *blob, const size_t *blen, uint32_t ncts,
                          const uint32_t *map, size_t n, int level, double scale, double *values);
/* *out = n doubles in the locked workspace, after the part
 * enclave_gather_coeffs uses (so its values may live there), valid until
 * the next use of the workspace; the caller wipes them. HETEE_ERR_LIMIT
 * above the budget, HETEE_ERR_NOMEM. */
int enclave_job_values(enclave *e, size_t n, double **out);
#ifdef HETEE_ENCLAVE_HAVE_CKKS
/* Resolves a declared level (-1: top) / scale (0: default) and checks them
 * against the parameters (HETEE_ERR_LEVEL / HETEE_ERR_SCALE). */
int enclave_check_level_scale(const hetee_ckks_context *ctx, int level_in, double scale_in, const char *what,
                              int *level, double *scale);
#endif
/* Secret key serialization for sealing (empty when no keys). */
int enclave_keys_export(enclave *e, hetee_wbuf *w);
int enclave_keys_import(enclave *e, hetee_rbuf *r);

/* integrity.c: bound inference (registered plans, Freivalds checks, jobs
 * bound to a data provider's signed input). */
int enclave_integrity_dispatch(enclave *e, uint16_t type, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items);
/* Session commands 3..5 (model registration, job authorization, status). */
int enclave_integrity_session_cmd(enclave *e, const hetee_chan *c, uint16_t cmd, hetee_rbuf *m, hetee_wbuf *reply);
/* 1 if model's owner registered a plan: legacy RELEASE is then refused. */
int enclave_integrity_bound(const enclave *e, uint32_t model);
/* Sealed state (version 4): u32 n | n x (u32 model | owner[32] | digest[32]).
 * import checks every entry against the sealed policies (owner) when
 * apply = 0, replaces the registrations (not loaded: MODEL_LOAD again) when
 * apply = 1. */
void enclave_integrity_export(hetee_wbuf *w);
int enclave_integrity_import(hetee_rbuf *r, const enclave_policy *policies, uint32_t np, int apply);
/* sessions.c: the policy record of a release (used by the job release). */
int enclave_build_release(const enclave_policy *p, double *v, size_t n, hetee_wbuf *out);
const enclave_policy *enclave_find_policy(enclave *e, uint32_t model);
hetee_chan *enclave_find_session(enclave *e, const uint8_t *id);
int enclave_handle_session_open(enclave *e, hetee_rbuf *r, hetee_wbuf *w);
int enclave_handle_session_msg(enclave *e, hetee_rbuf *r, hetee_wbuf *w);
int enclave_handle_release(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items);
int enclave_handle_seal(enclave *e, hetee_wbuf *w);
int enclave_handle_unseal(enclave *e, hetee_rbuf *r);

/* Routes one request frame (version already checked) to its handler; the
 * reply body goes to w. Sets *quit on SHUTDOWN. Used by enclave_serve and by
 * the in-process fuzz targets (tests/fuzz). */
int enclave_dispatch(enclave *e, const hetee_frame *f, hetee_wbuf *w, uint64_t *items, int *quit);

#endif

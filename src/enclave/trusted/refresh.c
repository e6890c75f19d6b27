/*
 * refresh.c — the enclave's hot path, replacing bootstrapping
 * (docs/architecture.md): decrypt a layer's output ciphertexts one at a time, gather the
 * values the host's layout names into a tensor, apply the operation list
 * (ops.c), scatter into the requested output layout and encrypt fresh
 * ciphertexts with the secret key (seeded: half-size on the wire) at the
 * requested level and scale. The ciphertexts of a request are decrypted /
 * encrypted on the enclave's threads (threads= in the configuration, pool.c),
 * one ciphertext per thread at a time. Peak memory is bounded: the tensor,
 * per thread one value vector and one ciphertext, and the reply; jobs above
 * the configured budget are refused (the host splits batches, see host.h).
 *
 * Nothing the host observes depends on the decrypted values (issue 7,
 * docs/security.md "Refresh and release as oracles"): levels and scales are
 * checked against the parameters and every ciphertext's metadata against
 * the declaration before decryption; values are saturated at public bounds
 * (after decoding, after every op, before encoding) and encoded on a path
 * chosen from those bounds.
 *
 * Also the decrypt-and-gather step of release (sessions.c), followed there
 * by noise flooding.
 */
#include <math.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_arena.h"
#include "ckks/ckks_internal.h"
#include "enclave/trusted/activations.h"
#include "enclave/trusted/enclave_internal.h"
#include "enclave/trusted/ops.h"

#define MAX_CTS 4096u
#define SEED_KDF_CTX "hetee-ct" /* crypto_kdf context of the fresh ciphertexts' seeds (8 bytes) */

/* Uniform noise in [-a, a] added to each of the n values: 53 random bits
 * per value (no branch on them) from libsodium's ChaCha20 keyed by 32
 * bytes of OS entropy drawn for this call (one getrandom per call, not
 * one per value: a system call of ~1 us each, most of a JOB_RELEASE of
 * 640 values), 2 KiB of stream per nonce. The key, the stream and the
 * noise are wiped. */
void enclave_flood(double *v, size_t n, double a) {
  uint8_t key[crypto_stream_chacha20_KEYBYTES], nonce[crypto_stream_chacha20_NONCEBYTES] = {0};
  uint64_t u[256];
  randombytes_buf(key, sizeof key);
  for (size_t i = 0, chunk = 0; i < n; chunk++) {
    size_t k = n - i < 256 ? n - i : 256;
    for (int b = 0; b < 8; b++) nonce[b] = (uint8_t)(chunk >> (8 * b));
    crypto_stream_chacha20((uint8_t *)u, k * sizeof u[0], nonce, key);
    for (size_t t = 0; t < k; t++) {
      double x = (double)(int64_t)(u[t] >> 11) * 0x1p-52 - 1.0; /* [-1, 1) on a 2^-52 grid */
      v[i + t] += x * a;
    }
    i += k;
  }
  sodium_memzero(u, sizeof u);
  sodium_memzero(key, sizeof key);
}

#ifdef HETEE_ENCLAVE_HAVE_CKKS

/* log2 Q_level (public). */
static double level_log2q(const hetee_ckks_context *ctx, int level) {
  double logq = 0;
  for (int i = 0; i <= level; i++) logq += log2((double)hetee_ckks_context_prime(ctx, i));
  return logq;
}

/* Resolves a declared level (-1: top) and scale (0: default) and checks
 * them against the parameters: level in [0, L], scale >= 2^20 and
 * scale * 2^HETEE_SCALE_HEADROOM_BITS <= Q_level. Public data only. */
int enclave_check_level_scale(const hetee_ckks_context *ctx, int level_in, double scale_in, const char *what,
                              int *level, double *scale) {
  int top = hetee_ckks_context_max_level(ctx);
  int l = level_in == -1 ? top : level_in;
  if (l < 0 || l > top) return hetee_error(HETEE_ERR_LEVEL, "%s level %d outside [0, %d] (-1: top)", what, level_in, top);
  double sc = scale_in > 0 ? scale_in : hetee_ckks_context_default_scale(ctx);
  double lq = level_log2q(ctx, l);
  if (!(isfinite(sc) && log2(sc) >= HETEE_SCALE_MIN_BITS && log2(sc) + HETEE_SCALE_HEADROOM_BITS <= lq))
    return hetee_error(HETEE_ERR_SCALE, "%s scale 2^%.2f outside [2^%d, 2^%.2f] at level %d", what, log2(sc),
                       HETEE_SCALE_MIN_BITS, lq - HETEE_SCALE_HEADROOM_BITS, l);
  *level = l;
  *scale = sc;
  return 0;
}

/* Saturation bound of the values the enclave encodes at (level, scale):
 * |v| * scale <= min(Q_level / 16, max(2^60, scale * 2^20), 2^1000).
 * Coefficients are bounded by the largest slot magnitude times the scale
 * (the inverse canonical embedding averages the slots), so they stay below
 * Q_level / 16 < Q_level / 2, and the encoder picks its path from this
 * public bound (hetee_ckks_encode_real_bounded): below 2^62 the one-word
 * path (ordinary scales: values up to 2^20 at 2^40), above it the
 * multi-word path (scales above 2^40, where the values keep 2^20 of
 * headroom). Saturating makes refresh total: before (issue 7) an out_scale
 * of 1e-300 made the bound infinite and the encoder's "not finite" failure
 * a plaintext-comparison oracle. */
static double encode_bound(const hetee_ckks_context *ctx, int level, double scale) {
  double lim = level_log2q(ctx, level) - 4.0, want = log2(scale) + 20.0;
  if (want < 60.0) want = 60.0;
  if (lim > want) lim = want;
  return exp2(lim < 1000.0 ? lim : 1000.0) / scale;
}

/* Values per ciphertext of an encoding: N/2 slots or N coefficients. */
static size_t enc_unit(const hetee_ckks_context *ctx, int enc) {
  return enc == HETEE_ENC_COEFFS ? hetee_ckks_context_n(ctx) : hetee_ckks_context_slots(ctx);
}

/* ---- jobs over ciphertexts, on the enclave's threads ----------------------
 *
 * Inputs (gather) and outputs (scatter_encrypt) are independent per
 * ciphertext: every thread of the pool claims the next ciphertext index
 * until none is left. Each thread has its own ciphertext object (e->tct),
 * its own slice of the request's locked workspace and, for slot encoding,
 * its own plaintext; values are written to disjoint places (each tensor
 * value comes from one input ciphertext, each output blob has its own place
 * in the reply). The result is the serial one: errors are kept per thread
 * with their ciphertext index and the lowest index wins, so the status and
 * the text are those the serial loop returns (which stopped at the first
 * failing ciphertext); a thread stops claiming once an error at a lower
 * index is known. All errors are on public data (formats, metadata,
 * allocation), never on values. */

/* The per-thread parts of a request's locked workspace (64-byte aligned):
 * one ciphertext's values and indices, and the CKKS layer's temporaries
 * (ckks_arena.h). */
typedef struct thread_ws {
  size_t unit;       /* N: doubles / u32 per thread */
  double *unitbuf;   /* [T][unit] */
  uint32_t *idxbuf;  /* [T][unit] */
  uint8_t *arena;    /* [T][arena_each] */
  size_t arena_each;
  /* per thread: 0 if it never ran a task of this request, else 1 + the
   * arena bytes it used (what the request's wipe covers) */
  size_t used[ENCLAVE_MAX_THREADS];
  /* per thread: how many leading doubles of its value vector the request
   * wrote (decrypted or final values: the part the wipe covers) */
  size_t unit_used[ENCLAVE_MAX_THREADS];
} thread_ws;

static size_t a64(size_t x) { return (x + 63) & ~(size_t)63; }

/* Bytes of the per-thread parts for T threads. */
static size_t thread_ws_bytes(const enclave *e, size_t T) {
  size_t unit = hetee_ckks_context_n(e->ctx);
  return T * (unit * sizeof(double) + unit * sizeof(uint32_t) + a64(ckks_arena_bytes(e->ctx)));
}

/* Carves the per-thread parts out of p (64-byte aligned). */
static void thread_ws_at(const enclave *e, size_t T, uint8_t *p, thread_ws *t) {
  size_t unit = hetee_ckks_context_n(e->ctx); /* a power of two >= 4096: every part stays aligned */
  t->unit = unit;
  t->unitbuf = (double *)p;
  t->idxbuf = (uint32_t *)(p + T * unit * sizeof(double));
  t->arena = p + T * unit * (sizeof(double) + sizeof(uint32_t));
  t->arena_each = a64(ckks_arena_bytes(e->ctx));
  memset(t->used, 0, sizeof t->used);
  memset(t->unit_used, 0, sizeof t->unit_used);
}

/* Wipes what the threads of the request used: the part of their value
 * vectors they wrote and the part of their arena they touched (decrypted
 * values, messages, noise). Which threads ran, how many values a
 * ciphertext has and how much arena an operation takes depend only on
 * public sizes and scheduling. The index vectors hold public coefficient
 * numbers (the map's) and are not wiped (before: all N of both vectors of
 * every thread, per request). */
static void thread_ws_wipe(thread_ws *t, size_t T) {
  for (size_t i = 0; i < T; i++)
    if (t->used[i]) {
      sodium_memzero(t->unitbuf + i * t->unit, t->unit_used[i] * sizeof(double));
      sodium_memzero(t->arena + i * t->arena_each, t->used[i] - 1);
      t->used[i] = 0;
      t->unit_used[i] = 0;
    }
}

/* Thread tid writes (or wrote) the first k doubles of its value vector. */
static inline void note_unit(thread_ws *t, int tid, size_t k) {
  if (k > t->unit_used[tid]) t->unit_used[tid] = k;
}

typedef struct job_err {
  uint32_t idx; /* UINT32_MAX: none */
  int rc;
  char msg[512];
} job_err;

typedef struct ct_job {
  enclave *e;
  uint32_t ncts;                      /* work items */
  _Atomic uint32_t next, fail;        /* next index to claim; lowest failing index */
  job_err *err;                       /* [threads] */
  size_t unit;                        /* doubles / u32 per thread slice */
  double *unitbuf;                    /* [threads][unit] (locked workspace) */
  uint32_t *idxbuf;                   /* [threads][unit] */
  thread_ws *tw;                      /* per-thread workspace (locked) */
  /* ciphertext index c owns order[start[c] .. start[c+1]) (public layout) */
  const uint32_t *start, *order;
  size_t slots;                       /* values per ciphertext */
  int enc, level;
  double scale;
  /* gather */
  int size2; /* 1: only ciphertexts of size 2 */
  const uint32_t *cidx; /* NULL, or the coefficient of each order[] entry (ct_sort) */
  const ckks_coset *const *cs; /* NULL, or per input ciphertext its coset tables (may be NULL) */
  const uint8_t **blob;
  const size_t *blen;
  const uint32_t *map;
  double *values;
  /* scatter */
  const hetee_refresh_spec *spec;
  const double *cvalues;
  double bound;
  uint8_t *out; /* reply bytes of output c at out + c * (8 + ctbytes) */
  size_t ctbytes;
  /* the request's one draw of OS entropy: output c's seeds are derived
   * from it (crypto_kdf, subkeys 2c: noise, 2c + 1: the public `a`) */
  const uint8_t *seed_key;
  uint8_t zeroed[ENCLAVE_MAX_THREADS]; /* scatter: the thread's value vector is all zero between ciphertexts */
} ct_job;

static void job_note(ct_job *j, int tid, uint32_t c, int rc) {
  job_err *je = &j->err[tid];
  if (c < je->idx) {
    je->idx = c;
    je->rc = rc;
    snprintf(je->msg, sizeof je->msg, "%s", hetee_last_error());
  }
  uint32_t f = atomic_load(&j->fail);
  while (c < f && !atomic_compare_exchange_weak(&j->fail, &f, c)) {
  }
}

/* Next ciphertext index for this thread, or UINT32_MAX when done. */
static uint32_t job_claim(ct_job *j) {
  uint32_t c = atomic_fetch_add(&j->next, 1);
  return c < j->ncts && c < atomic_load(&j->fail) ? c : UINT32_MAX;
}

/* The winning error (lowest index) into the thread's error detail. */
static int job_result(ct_job *j, int nthreads, uint32_t *idx) {
  int best = -1;
  for (int t = 0; t < nthreads; t++)
    if (j->err[t].idx != UINT32_MAX && (best < 0 || j->err[t].idx < j->err[best].idx)) best = t;
  if (best < 0) return 0;
  if (idx) *idx = j->err[best].idx;
  return hetee_error(j->err[best].rc, "%s", j->err[best].msg);
}

static int job_init(ct_job *j, enclave *e, uint32_t ncts, int enc, int nthreads) {
  memset(j, 0, sizeof *j);
  j->e = e;
  j->ncts = ncts;
  atomic_init(&j->next, 0);
  atomic_init(&j->fail, UINT32_MAX);
  j->err = malloc((size_t)nthreads * sizeof *j->err);
  if (!j->err) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (int t = 0; t < nthreads; t++) j->err[t].idx = UINT32_MAX;
  for (int t = 0; t < nthreads; t++)
    if (!e->tct[t] && hetee_ckks_ciphertext_new(e->ctx, &e->tct[t])) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  (void)enc;
  return 0;
}

static void job_free(ct_job *j, int nthreads) {
  (void)nthreads;
  free(j->err);
}

/* The calling thread's CKKS temporaries go to its slice of the request's
 * locked workspace for the duration of a task (wiped with it once per
 * request), instead of malloc + wipe + free per ciphertext. */
static void arena_enter(const ct_job *j, int tid) {
  ckks_arena_set(j->tw->arena + (size_t)tid * j->tw->arena_each, j->tw->arena_each);
  if (!j->tw->used[tid]) j->tw->used[tid] = 1;
}
static void arena_leave(const ct_job *j, int tid) {
  size_t high = ckks_arena_set(NULL, 0) + 1;
  if (high > j->tw->used[tid]) j->tw->used[tid] = high;
}

/* Counting sort of n values by ciphertext (index / slots) into start[ncts+1]
 * and order[n] (public layout). slots is a power of two (N or N/2), so the
 * divisions here and the remainders below are shifts and masks (a 64-bit
 * division per value was ~4 % of a refresh). Layouts come in runs of values
 * of one ciphertext (a channel, a sample, all of it): both passes go run
 * by run, so consecutive values of one ciphertext do not chain through one
 * counter in memory (a store-to-load dependency per value). */
static int sort_by_ct(const uint32_t *glob, size_t n, size_t slots, uint32_t ncts, uint32_t **start,
                      uint32_t **order) {
  uint32_t *st = calloc((size_t)ncts + 1, sizeof *st), *ord = malloc((n ? n : 1) * sizeof *ord),
           *fill = calloc(ncts ? ncts : 1, sizeof *fill);
  if (!st || !ord || !fill) {
    free(st);
    free(ord);
    free(fill);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  const unsigned sh = (unsigned)__builtin_ctzll(slots);
  for (size_t k = 0; k < n;) { /* counts, a run at a time */
    uint32_t c = glob[k] >> sh;
    size_t e = k + 1;
    while (e < n && (glob[e] >> sh) == c) e++;
    st[c + 1] += (uint32_t)(e - k);
    k = e;
  }
  for (uint32_t c = 0; c < ncts; c++) st[c + 1] += st[c];
  for (size_t k = 0; k < n;) { /* places, a run at a time (stable) */
    uint32_t c = glob[k] >> sh;
    size_t e = k + 1;
    while (e < n && (glob[e] >> sh) == c) e++;
    uint32_t *o = ord + st[c] + fill[c];
    for (size_t q = k; q < e; q++) o[q - k] = (uint32_t)q;
    fill[c] += (uint32_t)(e - k);
    k = e;
  }
  free(fill);
  *start = st;
  *order = ord;
  return 0;
}

/* A counting sort kept with a prepared job (enclave_refresh_prepare). */
typedef struct ct_sort {
  uint32_t ncts;
  uint32_t *start, *order;
  uint32_t *cidx; /* input, coefficients: cidx[k] = map[order[k]] mod N (NULL: none) */
  /* input, coefficients: per ciphertext the coset tables when all the
   * coefficients it names lie in one (ckks_coset_fit), else NULL; the
   * distinct tables are owned here */
  const ckks_coset **cs;
  ckks_coset **own;
  uint32_t nown;
} ct_sort;

/* Input ciphertext c: load into this thread's object, check its metadata
 * against the declaration (before decrypting), decrypt and decode the
 * values it holds (with the declared scale, never with the host-writable
 * field), saturate them into the tensor. */
/* Coefficients: a ciphertext whose rows are in the request (not seeded)
 * is decrypted straight from the request bytes, its rows range-checked in
 * the decryption's pass (no copy); 1: load it instead. */
static int gather_view(ct_job *j, int tid, uint32_t c) {
  enclave *e = j->e;
  double *buf = j->unitbuf + (size_t)tid * j->unit;
  uint32_t *ib = j->idxbuf + (size_t)tid * j->unit;
  ckks_ct_view v;
  int rc = ckks_ciphertext_view(e->ctx, j->blob[c], j->blen[c], &v);
  if (rc) return rc; /* 1: seeded */
  /* the metadata against the declaration, before decrypting */
  if (v.level != j->level)
    return hetee_error(HETEE_ERR_LEVEL, "ciphertext %u is at level %d, the request declares %d", c, v.level, j->level);
  if (!(fabs(v.scale - j->scale) <= j->scale * 0x1p-20))
    return hetee_error(HETEE_ERR_SCALE, "ciphertext %u has scale 2^%.4f, the request declares 2^%.4f", c,
                       log2(v.scale), log2(j->scale));
  if (j->size2 && v.size != 2) return hetee_error(HETEE_ERR_FORM, "ciphertext %u has size %d, not 2", c, v.size);
  size_t cnt = j->start[c + 1] - j->start[c];
  /* c0 at listed coefficients: one value per coefficient the map names of
   * this ciphertext, in map order (public counts) */
  if (!v.c[0] && v.nc0 != cnt)
    return hetee_error(HETEE_ERR_FORM, "ciphertext %u carries %zu c0 coefficients, the map reads %zu", c, v.nc0, cnt);
  const uint32_t *ord = j->order + j->start[c];
  const uint32_t *ix = ib;
  if (j->cidx)
    ix = j->cidx + j->start[c];
  else
    for (size_t k = 0; k < cnt; k++) ib[k] = (uint32_t)(j->map[ord[k]] & (j->slots - 1));
  note_unit(j->tw, tid, cnt);
  rc = ckks_decrypt_coeffs_view(e->ctx, e->sk, &v, j->scale, j->cs ? j->cs[c] : NULL, ix, cnt, buf);
  if (rc) return rc; /* 1: no precomputed key products */
  const double bound = HETEE_REFRESH_VALUE_BOUND;
  for (size_t k = 0; k < cnt; k++) j->values[ord[k]] = hetee_dmin(hetee_dmax(buf[k], -bound), bound); /* NaN -> -bound */
  return 0;
}

static int gather_one(ct_job *j, int tid, uint32_t c) {
  enclave *e = j->e;
  hetee_ckks_ciphertext *ct = e->tct[tid];
  double *buf = j->unitbuf + (size_t)tid * j->unit;
  uint32_t *ib = j->idxbuf + (size_t)tid * j->unit;
  if (j->enc == HETEE_ENC_COEFFS) {
    /* one value and index per named coefficient in the thread's vectors
     * (public: the map; it could name a coefficient several times) */
    if (j->start[c + 1] - j->start[c] > j->unit)
      return hetee_error(HETEE_ERR_SHAPE, "input map names %u values of ciphertext %u, more than its %zu coefficients",
                         j->start[c + 1] - j->start[c], c, j->unit);
    int vr = gather_view(j, tid, c);
    if (vr != 1) return vr;
  }
  int rc;
  if (e->body_shared) { /* the loader parses a private copy (not read-once) */
    uint8_t *cp = malloc(j->blen[c] ? j->blen[c] : 1);
    if (!cp) return hetee_error(HETEE_ERR_NOMEM, "no memory");
    memcpy(cp, j->blob[c], j->blen[c]);
    rc = hetee_ckks_ciphertext_load_into(e->ctx, cp, j->blen[c], ct);
    free(cp);
  } else {
    rc = hetee_ckks_ciphertext_load_into(e->ctx, j->blob[c], j->blen[c], ct);
  }
  if (!rc && hetee_ckks_ciphertext_level(ct) != j->level)
    rc = hetee_error(HETEE_ERR_LEVEL, "ciphertext %u is at level %d, the request declares %d", c,
                     hetee_ckks_ciphertext_level(ct), j->level);
  if (!rc && !(fabs(hetee_ckks_ciphertext_scale(ct) - j->scale) <= j->scale * 0x1p-20))
    rc = hetee_error(HETEE_ERR_SCALE, "ciphertext %u has scale 2^%.4f, the request declares 2^%.4f", c,
                     log2(hetee_ckks_ciphertext_scale(ct)), log2(j->scale));
  if (!rc && j->size2 && hetee_ckks_ciphertext_size(ct) != 2)
    rc = hetee_error(HETEE_ERR_FORM, "ciphertext %u has size %d, not 2", c, hetee_ckks_ciphertext_size(ct));
  if (rc) return rc;
  size_t cnt = j->start[c + 1] - j->start[c];
  const uint32_t *ord = j->order + j->start[c];
  if (j->enc == HETEE_ENC_SLOTS) { /* decoded with the declared scale */
    note_unit(j->tw, tid, j->slots);
    rc = ckks_decrypt_decode_real(e->ctx, e->sk, ct, j->scale, buf, j->slots);
  } else { /* only the coefficients named (public indices) */
    for (size_t k = 0; k < cnt; k++) ib[k] = (uint32_t)(j->map[ord[k]] & (j->slots - 1));
    note_unit(j->tw, tid, cnt);
    rc = hetee_ckks_decrypt_coeffs(e->ctx, e->sk, ct, j->scale, ib, cnt, buf);
  }
  if (rc) return rc;
  const double bound = HETEE_REFRESH_VALUE_BOUND;
  for (size_t k = 0; k < cnt; k++) {
    double x = j->enc == HETEE_ENC_SLOTS ? buf[j->map[ord[k]] & (j->slots - 1)] : buf[k];
    j->values[ord[k]] = hetee_dmin(hetee_dmax(x, -bound), bound); /* NaN -> -bound */
  }
  return 0;
}

static void gather_task(void *arg, int tid) {
  ct_job *j = arg;
  arena_enter(j, tid);
  for (uint32_t c; (c = job_claim(j)) != UINT32_MAX;) {
    int rc = gather_one(j, tid, c);
    if (rc) job_note(j, tid, c, rc);
  }
  arena_leave(j, tid);
}

/* Reads u32 ncts then ncts ciphertext blobs; fills values[k] from global
 * index map[k] (slot or coefficient, per `enc`). Every ciphertext must have
 * the declared level and (within 2^-20) the declared scale, checked before
 * it is decrypted; it is decoded with the declared scale, never with the
 * host-writable field. Ciphertexts of size 2 or 3 (a ct x ct product not
 * relinearized) are accepted; with coefficient encoding also the form
 * "c0 at listed coefficients" (ckks_ciphertext_save_c0_at: level 0, c0
 * only at the coefficients the map names of that ciphertext, in map
 * order, the count checked against the map's). Decoded values are saturated at
 * +-HETEE_REFRESH_VALUE_BOUND. Each thread holds one ciphertext at a time.
 * unitbuf / idxbuf: enc_unit doubles / u32 per thread (wiped by the
 * caller). */
/* Decrypts blob[0..nrun) (the request's first ciphertexts of ncts; the
 * map names slots of all ncts and was checked against them) into
 * values[k] from map[k]; the winning error is the lowest failing index. */
static int gather_blobs(enclave *e, const uint8_t **blob, const size_t *blen, uint32_t ncts, uint32_t nrun,
                        const uint32_t *map, size_t n, int enc, int level, double scale, int size2, double *values,
                        thread_ws *tw, const ct_sort *pre) {
  size_t slots = enc_unit(e->ctx, enc); /* values per ciphertext */
  int nthreads = enclave_pool_threads(e->pool);
  ct_job j;
  uint32_t *start = NULL, *order = NULL;
  const uint32_t *st, *ord;
  int rc = job_init(&j, e, ncts, enc, nthreads);
  if (!rc && !(pre && pre->ncts == ncts)) rc = sort_by_ct(map, n, slots, ncts, &start, &order);
  if (rc) goto out;
  st = start ? start : pre->start;
  ord = start ? order : pre->order;
  j.cidx = start ? NULL : pre->cidx;
  j.cs = start ? NULL : (const ckks_coset *const *)pre->cs;
  j.ncts = nrun;
  j.unit = tw->unit;
  j.unitbuf = tw->unitbuf;
  j.idxbuf = tw->idxbuf;
  j.tw = tw;
  j.start = st;
  j.order = ord;
  j.slots = slots;
  j.enc = enc;
  j.level = level;
  j.scale = scale;
  j.size2 = size2;
  j.blob = blob;
  j.blen = blen;
  j.map = map;
  j.values = values;
  enclave_pool_run(e->serial ? NULL : e->pool, gather_task, &j, j.ncts); /* NULL: this thread alone */
  rc = job_result(&j, nthreads, NULL);
out:
  job_free(&j, nthreads);
  free(start);
  free(order);
  return rc;
}

static int check_map(const uint32_t *map, size_t n, uint32_t ncts, size_t slots) {
  for (size_t k = 0; k < n; k++)
    if (map[k] >= (uint64_t)ncts * slots)
      return hetee_error(HETEE_ERR_SHAPE, "input map entry %zu names slot %u beyond %u ciphertexts", k, map[k], ncts);
  return 0;
}

static int gather(enclave *e, hetee_rbuf *r, const uint32_t *map, size_t n, int enc, int level, double scale,
                  double *values, thread_ws *tw, uint64_t *items, const ct_sort *pre) {
  size_t slots = enc_unit(e->ctx, enc); /* values per ciphertext */
  uint32_t ncts = hetee_rbuf_u32(r);
  if (r->err || ncts < 1 || ncts > MAX_CTS) return hetee_error(HETEE_ERR_PROTOCOL, "bad ciphertext count");
  /* a prepared job's map was checked against the ciphertexts it names
   * (pre->ncts); another count is checked here */
  int rc = pre && pre->ncts == ncts ? 0 : check_map(map, n, ncts, slots);
  if (rc) return rc;
  const uint8_t **blob = malloc(ncts * sizeof *blob);
  size_t *blen = malloc(ncts * sizeof *blen);
  if (!blob || !blen) {
    free(blob);
    free(blen);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  /* the blobs' places (public lengths); a truncated one ends the list and
   * is reported unless an earlier ciphertext fails */
  uint32_t parsed = 0;
  for (; parsed < ncts; parsed++) {
    blob[parsed] = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &blen[parsed]);
    if (r->err) break;
  }
  rc = gather_blobs(e, blob, blen, ncts, parsed, map, n, enc, level, scale, 0, values, tw, pre);
  if (!rc && parsed < ncts) rc = hetee_error(HETEE_ERR_PROTOCOL, "ciphertext %u truncated", parsed);
  if (!rc && hetee_rbuf_left(r)) rc = hetee_error(HETEE_ERR_PROTOCOL, "trailing bytes after the ciphertexts");
  if (!rc) *items += ncts;
  free(blob);
  free(blen);
  return rc;
}

/* Output ciphertext c: its values (zero elsewhere) encoded at the public
 * bound and encrypted with the secret key, saved into its place in the
 * reply. */
static int scatter_one(ct_job *j, int tid, uint32_t c) {
  enclave *e = j->e;
  const hetee_refresh_spec *s = j->spec;
  hetee_ckks_ciphertext *ct = e->tct[tid];
  double *buf = j->unitbuf + (size_t)tid * j->unit;
  /* zeroed once per thread and request; after each ciphertext only the
   * places it wrote (public layout) are cleared again */
  if (!j->zeroed[tid]) memset(buf, 0, j->slots * sizeof *buf);
  j->zeroed[tid] = 1;
  note_unit(j->tw, tid, j->slots);
  for (uint32_t k = j->start[c]; k < j->start[c + 1]; k++) {
    uint32_t i = j->order[k];
    buf[s->out_dst[i] & (j->slots - 1)] = j->cvalues[s->out_src[i]];
  }
  /* this output's seeds from the request's key (one getrandom per
   * request instead of one per ciphertext) */
  uint8_t es[HETEE_SEED_BYTES], as[HETEE_SEED_BYTES];
  int rc = crypto_kdf_derive_from_key(es, sizeof es, 2 * (uint64_t)c, SEED_KDF_CTX, j->seed_key) ||
                   crypto_kdf_derive_from_key(as, sizeof as, 2 * (uint64_t)c + 1, SEED_KDF_CTX, j->seed_key)
               ? hetee_error(HETEE_ERR_CRYPTO, "seed derivation")
               : 0;
  /* saturates at +-bound and picks the rounding path from the bound */
  if (!rc && s->out_encoding == HETEE_ENC_COEFFS) {
    /* hetee_ckks_encrypt_sk_coeffs_bounded's checks, then its encryption
     * with the derived seeds */
    if (!(rc = ckks_check_ctx(e->ctx, e->sk->fp, "secret key")) &&
        !(rc = ckks_coeffs_check(e->ctx, buf, j->slots, j->scale, j->level, 1, j->bound)))
      rc = ckks_encrypt_sk_coeffs_seeded(e->ctx, e->sk, buf, j->slots, j->scale, j->level, 1, j->bound, es, as, ct);
  } else if (!rc) {
    rc = ckks_encrypt_sk_real_bounded_seeded(e->ctx, e->sk, buf, j->slots, j->scale, j->level, j->bound, es, as, ct);
  }
  sodium_memzero(es, sizeof es);
  uint8_t *dst = j->out + (size_t)c * (8 + j->ctbytes);
  size_t len = 0;
  for (uint32_t k = j->start[c]; k < j->start[c + 1]; k++) buf[s->out_dst[j->order[k]] & (j->slots - 1)] = 0.0;
  if (!rc) rc = hetee_ckks_ciphertext_save_to(e->ctx, ct, dst + 8, j->ctbytes, &len);
  if (!rc && len != j->ctbytes) rc = hetee_error(HETEE_ERR_INTERNAL, "fresh ciphertext of %zu bytes, not %zu", len, j->ctbytes);
  if (!rc) hetee_le64(dst, (uint64_t)len);
  return rc;
}

static void scatter_task(void *arg, int tid) {
  ct_job *j = arg;
  arena_enter(j, tid);
  for (uint32_t c; (c = job_claim(j)) != UINT32_MAX;) {
    int rc = scatter_one(j, tid, c);
    if (rc) job_note(j, tid, c, rc);
  }
  arena_leave(j, tid);
}

/* Writes u32 out_ncts then out_ncts blobs (u64 length, seeded ciphertext)
 * into w: each output ciphertext's place in the reply is known beforehand
 * (every fresh encryption at one level has the same size), so the threads
 * write their ciphertexts straight there. unitbuf: enc_unit doubles per
 * thread (wiped by the caller). */
static int scatter_encrypt(enclave *e, const hetee_refresh_spec *s, int level, double scale, const double *values,
                           thread_ws *tw, hetee_wbuf *w, uint64_t *items, const ct_sort *pre) {
  size_t slots = enc_unit(e->ctx, s->out_encoding); /* values per ciphertext */
  int nthreads = enclave_pool_threads(e->pool);
  ct_job j;
  uint32_t *start = NULL, *order = NULL;
  const uint32_t *st = pre ? pre->start : NULL, *ord = pre ? pre->order : NULL;
  size_t ctbytes = 0;
  int rc = job_init(&j, e, s->out_ncts, s->out_encoding, nthreads);
  if (!rc) rc = hetee_ckks_ciphertext_seeded_size(e->ctx, level, &ctbytes);
  if (!rc && 4 + (uint64_t)s->out_ncts * (8 + ctbytes) > HETEE_FRAME_MAX_BODY)
    rc = hetee_error(HETEE_ERR_LIMIT, "reply above the frame limit");
  if (!rc && !pre) {
    rc = sort_by_ct(s->out_dst, s->out_n, slots, s->out_ncts, &start, &order);
    st = start;
    ord = order;
  }
  if (!rc) {
    hetee_wbuf_u32(w, s->out_ncts);
    if (hetee_wbuf_reserve(w, (size_t)s->out_ncts * (8 + ctbytes))) rc = hetee_error(HETEE_ERR_NOMEM, "no memory for the reply");
  }
  if (rc) goto out;
  uint8_t key[crypto_kdf_KEYBYTES];
  crypto_kdf_keygen(key);
  size_t bytes = (size_t)s->out_ncts * (8 + ctbytes);
  /* a reply going back through the region: each ciphertext is saved
   * straight to its place there (from the thread's ciphertext object, once
   * final) instead of into tx and copied again by the server */
  int direct = e->reply_shm && !e->reply_direct_len && w->len + bytes <= HETEE_SHM_AREA;
  j.unit = tw->unit;
  j.unitbuf = tw->unitbuf;
  j.tw = tw;
  j.start = st;
  j.order = ord;
  j.slots = slots;
  j.enc = s->out_encoding;
  j.level = level;
  j.scale = scale;
  j.spec = s;
  j.cvalues = values;
  j.bound = encode_bound(e->ctx, level, scale);
  j.out = direct ? e->reply_shm + w->len : w->p + w->len;
  j.ctbytes = ctbytes;
  j.seed_key = key;
  enclave_pool_run(e->serial ? NULL : e->pool, scatter_task, &j, j.ncts);
  sodium_memzero(key, sizeof key);
  rc = job_result(&j, nthreads, NULL);
  if (!rc) {
    if (direct) {
      e->reply_direct_off = w->len;
      e->reply_direct_len = bytes;
    }
    w->len += bytes;
    *items += s->out_ncts;
  }
out:
  job_free(&j, nthreads);
  free(start);
  free(order);
  return rc;
}

/* A refresh job's working set (public: the spec): per thread one
 * ciphertext's values and indices and the CKKS temporaries, then the
 * tensor + pooling buffer (one sample) (+ one ciphertext object per
 * thread). */
static size_t job_ws_need(enclave *e, const hetee_refresh_spec *s) {
  size_t per = (size_t)s->shape[0] * s->shape[1] * s->shape[2];
  return a64(thread_ws_bytes(e, (size_t)enclave_pool_threads(e->pool)) + (per * s->batch + per) * sizeof(double));
}

/* The locked workspace of a request (`need` bytes): kept between requests
 * and grown when a request needs more (sodium_malloc: locked, guarded);
 * the caller wipes what it used. */
static void *workspace(enclave *e, size_t need) {
  if (e->ws_cap < need) {
    if (e->ws) sodium_free(e->ws);
    e->ws = sodium_malloc(need + 64); /* + room to align the start to 64 bytes */
    e->ws_cap = e->ws ? need : 0;
  }
  return e->ws ? (void *)(((uintptr_t)e->ws + 63) & ~(uintptr_t)63) : NULL;
}

int enclave_handle_refresh(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  if (!e->have_keys) return hetee_error(HETEE_ERR_STATE, "no keys yet (KEYGEN or UNSEAL first)");
  size_t slots = hetee_ckks_context_slots(e->ctx);
  hetee_refresh_job job;
  int rc = hetee_refresh_spec_decode(r, slots, &job);
  if (rc) return rc;
  return enclave_refresh_job_run(e, &job, r, w, items, NULL);
}

/* The refresh of a decoded job (freed here); hook (may be NULL: plain
 * refresh) sees the gathered values before the ops and the final values
 * before they are encrypted, and may stop the job (integrity.c). */
/* The refresh of a decoded job; pin / pout: its counting sorts when
 * prepared beforehand (NULL: sorted here). */
static int job_run(enclave *e, const hetee_refresh_job *job, const ct_sort *pin, const ct_sort *pout, hetee_rbuf *r,
                   hetee_wbuf *w, uint64_t *items, const enclave_refresh_hook *hook) {
  int rc;
  /* every parameter-dependent check before anything is decrypted */
  int in_level, out_level;
  double in_scale, out_scale;
  rc = enclave_check_level_scale(e->ctx, job->spec.in_level, job->spec.in_scale, "input", &in_level, &in_scale);
  if (!rc)
    rc = enclave_check_level_scale(e->ctx, job->spec.out_level, job->spec.out_scale, "output", &out_level, &out_scale);
  if (rc) return rc;
  size_t per = (size_t)job->spec.shape[0] * job->spec.shape[1] * job->spec.shape[2];
  size_t n = per * job->spec.batch;
  size_t T = (size_t)enclave_pool_threads(e->pool);
  size_t need = job_ws_need(e, &job->spec);
  if (need > e->cfg.budget)
    return hetee_error(HETEE_ERR_LIMIT, "refresh job needs %zu bytes, budget is %zu: split the batch", need,
                       e->cfg.budget);
  /* one locked workspace: per-thread parts | tensor | pooling buffer */
  uint8_t *ws = workspace(e, need);
  if (!ws) return hetee_error(HETEE_ERR_NOMEM, "no memory for the refresh tensor");
  thread_ws tw;
  thread_ws_at(e, T, ws, &tw);
  double *v = (double *)(ws + thread_ws_bytes(e, T)), *tmp = v + n;
  rc = gather(e, r, job->spec.in_map, n, job->spec.in_encoding, in_level, in_scale, v, &tw, items, pin);
  if (rc) goto out;
  if (hook && (rc = hook->gathered(hook->arg, &job->spec, v, n))) goto out;
  int sh[3];
  hetee_ops_apply(&job->spec, v, tmp, sh);
  if (hook && (rc = hook->final(hook->arg, &job->spec, v, (size_t)sh[0] * sh[1] * sh[2] * job->spec.batch))) goto out;
  if (hook && e->job_no_output) /* a bound job's last stage: the hook kept the values, nothing to encrypt */
    hetee_wbuf_u32(w, 0);
  else
    rc = scatter_encrypt(e, &job->spec, out_level, out_scale, v, &tw, w, items, pout);
out:
  /* decrypted values: wiped once per request (what was used of it) */
  thread_ws_wipe(&tw, T);
  sodium_memzero(v, (n + per) * sizeof(double));
  return rc;
}

int enclave_refresh_job_run(enclave *e, hetee_refresh_job *jp, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items,
                            const enclave_refresh_hook *hook) {
  int rc = job_run(e, jp, NULL, NULL, r, w, items, hook);
  hetee_refresh_job_free(jp);
  return rc;
}

/* A job decoded once and its counting sorts (public: the spec only). */
struct enclave_refresh_prep {
  hetee_refresh_job job; /* never moved: its spec points into it */
  ct_sort in, out;
};

void enclave_refresh_prep_free(enclave_refresh_prep *p) {
  if (!p) return;
  hetee_refresh_job_free(&p->job);
  free(p->in.start);
  free(p->in.order);
  free(p->in.cidx);
  free(p->in.cs);
  for (uint32_t k = 0; k < p->in.nown; k++) ckks_coset_free(p->in.own[k]);
  free(p->in.own);
  free(p->out.start);
  free(p->out.order);
  free(p);
}

#define PREP_COSETS 4

/* The coset tables of a prepared input (public: the map only). A ciphertext
 * whose named coefficients share no coset, or whose tables cannot be made,
 * is decrypted in full, as before. At most PREP_COSETS distinct cosets are
 * kept per stage (a dense stage has one; each costs 2 rows per prime of
 * Q, 0.5 MB at logN 13): the host's spec cannot make MODEL_LOAD keep more. */
static int prepare_cosets(enclave *e, ct_sort *in) {
  in->cs = calloc(in->ncts, sizeof *in->cs);
  in->own = calloc(PREP_COSETS, sizeof *in->own);
  if (!in->cs || !in->own) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  int logd[PREP_COSETS];
  uint32_t res[PREP_COSETS];
  for (uint32_t c = 0; c < in->ncts; c++) {
    int ld;
    uint32_t r;
    if (!ckks_coset_fit(e->ctx, in->cidx + in->start[c], in->start[c + 1] - in->start[c], &ld, &r)) continue;
    uint32_t k = 0;
    while (k < in->nown && !(logd[k] == ld && res[k] == r)) k++;
    if (k == in->nown) {
      if (k == PREP_COSETS || ckks_coset_new(e->ctx, ld, r, &in->own[k])) continue; /* decrypted in full */
      logd[k] = ld;
      res[k] = r;
      in->nown++;
    }
    in->cs[c] = in->own[k];
  }
  hetee_error_clear();
  return 0;
}

int enclave_refresh_prepare(enclave *e, const uint8_t *spec, size_t len, enclave_refresh_prep **out) {
  *out = NULL;
  enclave_refresh_prep *p = calloc(1, sizeof *p);
  if (!p) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  hetee_rbuf r = {spec, len, 0, 0};
  int rc = hetee_refresh_spec_decode(&r, hetee_ckks_context_slots(e->ctx), &p->job);
  if (rc) {
    free(p);
    return rc;
  }
  if (hetee_rbuf_left(&r)) rc = hetee_error(HETEE_ERR_INTERNAL, "prepared refresh spec with trailing bytes");
  const hetee_refresh_spec *s = &p->job.spec;
  size_t n = (size_t)s->shape[0] * s->shape[1] * s->shape[2] * s->batch;
  size_t islots = enc_unit(e->ctx, s->in_encoding), oslots = enc_unit(e->ctx, s->out_encoding);
  uint32_t mx = 0;
  for (size_t k = 0; k < n; k++) mx = s->in_map[k] > mx ? s->in_map[k] : mx;
  p->in.ncts = (uint32_t)(mx / islots + 1); /* the fewest ciphertexts the map fits in */
  if (!rc && p->in.ncts <= MAX_CTS) rc = sort_by_ct(s->in_map, n, islots, p->in.ncts, &p->in.start, &p->in.order);
  if (!rc && p->in.start && s->in_encoding == HETEE_ENC_COEFFS) {
    p->in.cidx = malloc((n ? n : 1) * sizeof *p->in.cidx);
    if (!p->in.cidx) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    for (size_t k = 0; !rc && k < n; k++) p->in.cidx[k] = (uint32_t)(s->in_map[p->in.order[k]] & (islots - 1));
    if (!rc) rc = prepare_cosets(e, &p->in);
  }
  if (!rc) rc = sort_by_ct(s->out_dst, s->out_n, oslots, s->out_ncts, &p->out.start, &p->out.order);
  if (rc) {
    enclave_refresh_prep_free(p);
    return rc;
  }
  p->out.ncts = s->out_ncts;
  *out = p;
  return 0;
}

int enclave_refresh_prep_run(enclave *e, const enclave_refresh_prep *p, hetee_rbuf *r, hetee_wbuf *w,
                             uint64_t *items, const enclave_refresh_hook *hook) {
  return job_run(e, &p->job, p->in.start ? &p->in : NULL, &p->out, r, w, items, hook);
}

void enclave_refresh_prep_warm(enclave *e, const enclave_refresh_prep *p) {
  if (!p || !e->have_keys) return;
  for (uint32_t k = 0; k < p->in.nown; k++) (void)ckks_coset_key(e->ctx, p->in.own[k], e->sk);
  size_t need = job_ws_need(e, &p->job.spec);
  if (need <= e->cfg.budget) (void)workspace(e, need); /* job_run's size */
  hetee_error_clear();
}

int enclave_job_values(enclave *e, size_t n, double **out) {
  size_t T = (size_t)enclave_pool_threads(e->pool), need = a64(thread_ws_bytes(e, T) + n * sizeof(double));
  *out = NULL;
  if (need > e->cfg.budget)
    return hetee_error(HETEE_ERR_LIMIT, "job needs %zu bytes, budget is %zu", need, e->cfg.budget);
  uint8_t *ws = workspace(e, need);
  if (!ws) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  *out = (double *)(ws + thread_ws_bytes(e, T));
  return 0;
}

int enclave_gather_coeffs(enclave *e, const uint8_t *const *blob, const size_t *blen, uint32_t ncts,
                          const uint32_t *map, size_t n, int level, double scale, double *values) {
  size_t N = hetee_ckks_context_n(e->ctx), T = (size_t)enclave_pool_threads(e->pool);
  if (ncts < 1 || ncts > MAX_CTS) return hetee_error(HETEE_ERR_PROTOCOL, "bad ciphertext count");
  int rc = check_map(map, n, ncts, N);
  if (rc) return rc;
  size_t need = a64(thread_ws_bytes(e, T));
  if (need > e->cfg.budget) return hetee_error(HETEE_ERR_LIMIT, "workspace above the budget");
  uint8_t *ws = workspace(e, need);
  if (!ws) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  thread_ws tw;
  thread_ws_at(e, T, ws, &tw);
  rc = gather_blobs(e, (const uint8_t **)blob, blen, ncts, ncts, map, n, HETEE_ENC_COEFFS, level, scale, 1, values,
                    &tw, NULL);
  thread_ws_wipe(&tw, T);
  return rc;
}

/* Start-up (before the seccomp filter): the worker threads, and on each
 * thread its ciphertext object and one encoding, so that what the threads
 * initialise lazily (malloc arenas, the ring layer's ISA choice, libgomp's
 * per-thread state) is done before the filter. */
static void warm_task(void *arg, int tid) {
  enclave *e = arg;
  size_t n = hetee_ckks_context_n(e->ctx);
  double *v = calloc(n, sizeof *v);
  hetee_ckks_plaintext *pt = NULL;
  int rc = v ? hetee_ckks_plaintext_new(e->ctx, &pt) : HETEE_ERR_NOMEM;
  if (!rc) rc = hetee_ckks_encode_coeffs(e->ctx, v, n, hetee_ckks_context_default_scale(e->ctx), 0, pt);
  hetee_ckks_plaintext_free(pt);
  free(v);
  if (!e->tct[tid]) rc = hetee_ckks_ciphertext_new(e->ctx, &e->tct[tid]);
  (void)rc; /* nothing here is needed: the first job allocates what is missing */
}

int enclave_threads_start(enclave *e) { return enclave_pool_start(e->cfg.threads, warm_task, e, &e->pool); }

void enclave_threads_free(enclave *e) {
  enclave_pool_free(e->pool);
  e->pool = NULL;
}

void enclave_work_free(enclave *e) {
  for (int t = 0; t < ENCLAVE_MAX_THREADS; t++) {
    hetee_ckks_ciphertext_free(e->tct[t]);
    e->tct[t] = NULL;
  }
  if (e->ws) sodium_free(e->ws);
  e->ws = NULL;
  e->ws_cap = 0;
}

int enclave_release_values(enclave *e, hetee_rbuf *r, int prec_bits, double **vals, size_t *nout, uint64_t *items) {
  *vals = NULL;
  *nout = 0;
  if (!e->have_keys) return hetee_error(HETEE_ERR_STATE, "no keys yet");
  size_t slots = hetee_ckks_context_slots(e->ctx);
  int32_t lvl = (int32_t)hetee_rbuf_u32(r);
  double sc = hetee_rbuf_f64(r);
  uint8_t enc = hetee_rbuf_u8(r);
  uint32_t n = hetee_rbuf_u32(r);
  if (r->err || n < 1 || n > HETEE_RELEASE_MAX_VALUES || (size_t)n * 4 > hetee_rbuf_left(r))
    return hetee_error(HETEE_ERR_PROTOCOL, "release value count invalid");
  if (enc != HETEE_ENC_SLOTS && enc != HETEE_ENC_COEFFS)
    return hetee_error(HETEE_ERR_UNSUPPORTED, "release encoding %u: 0 (slots) or 1 (coefficients)", enc);
  if (!(isfinite(sc) && sc >= 0)) return hetee_error(HETEE_ERR_SCALE, "release scale not finite or negative");
  int level;
  double scale;
  int rc = enclave_check_level_scale(e->ctx, lvl, sc, "release input", &level, &scale);
  if (rc) return rc;
  /* flooding half-width (docs/security.md, "Noise flooding"): n values with
   * errors below 2^ERR / scale each are within statistical distance
   * n 2^ERR / (2a) = 2^-STAT of error-free ones */
  double log2a = log2((double)n) + HETEE_RELEASE_ERR_BITS + HETEE_RELEASE_STAT_BITS - 1 - log2(scale);
  if (log2a > -(double)prec_bits)
    return hetee_error(HETEE_ERR_SCALE,
                       "release of %u values at scale 2^%.2f: flooding noise 2^%.2f exceeds the policy's rounding "
                       "unit 2^-%d (decode at scale >= 2^%.2f)",
                       n, log2(scale), log2a, prec_bits, log2(scale) + log2a + prec_bits);
  size_t T = (size_t)enclave_pool_threads(e->pool);
  (void)slots;
  /* per-thread decoding buffers and, after them, the released values, all
   * in the shared locked workspace (sized for both first, so that taking
   * the thread parts does not move it; was a guarded allocation of the
   * values per request); the caller wipes the values */
  size_t need = a64(thread_ws_bytes(e, T));
  double *v = NULL;
  rc = enclave_job_values(e, n, &v);
  if (rc) return rc;
  uint32_t *map = malloc(n * sizeof *map);
  uint8_t *unitbuf = workspace(e, need);
  thread_ws tw;
  if (unitbuf) thread_ws_at(e, T, unitbuf, &tw);
  if (!map || !unitbuf) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto out;
  }
  for (uint32_t i = 0; i < n; i++) map[i] = hetee_rbuf_u32(r);
  rc = gather(e, r, map, n, enc, level, scale, v, &tw, items, NULL);
  if (!rc) enclave_flood(v, n, exp2(log2a));
out:
  free(map);
  if (unitbuf) thread_ws_wipe(&tw, T);
  if (rc) {
    sodium_memzero(v, n * sizeof *v);
    return rc;
  }
  *vals = v;
  *nout = n;
  return 0;
}

#else

int enclave_threads_start(enclave *e) { return enclave_pool_start(e->cfg.threads, NULL, NULL, &e->pool); }
void enclave_threads_free(enclave *e) {
  enclave_pool_free(e->pool);
  e->pool = NULL;
}
void enclave_work_free(enclave *e) {
  if (e->ws) sodium_free(e->ws);
  e->ws = NULL;
  e->ws_cap = 0;
}

int enclave_handle_refresh(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}
int enclave_refresh_job_run(enclave *e, hetee_refresh_job *jp, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items,
                            const enclave_refresh_hook *hook) {
  (void)e, (void)r, (void)w, (void)items, (void)hook;
  hetee_refresh_job_free(jp);
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}
int enclave_refresh_prepare(enclave *e, const uint8_t *spec, size_t len, enclave_refresh_prep **out) {
  (void)e, (void)spec, (void)len;
  *out = NULL;
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}
void enclave_refresh_prep_free(enclave_refresh_prep *p) { (void)p; }
void enclave_refresh_prep_warm(enclave *e, const enclave_refresh_prep *p) { (void)e, (void)p; }
int enclave_refresh_prep_run(enclave *e, const enclave_refresh_prep *p, hetee_rbuf *r, hetee_wbuf *w,
                             uint64_t *items, const enclave_refresh_hook *hook) {
  (void)e, (void)p, (void)r, (void)w, (void)items, (void)hook;
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}
int enclave_job_values(enclave *e, size_t n, double **out) {
  (void)e, (void)n;
  *out = NULL;
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}
int enclave_gather_coeffs(enclave *e, const uint8_t *const *blob, const size_t *blen, uint32_t ncts,
                          const uint32_t *map, size_t n, int level, double scale, double *values) {
  (void)e, (void)blob, (void)blen, (void)ncts, (void)map, (void)n, (void)level, (void)scale, (void)values;
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}
int enclave_release_values(enclave *e, hetee_rbuf *r, int prec_bits, double **vals, size_t *n, uint64_t *items) {
  (void)prec_bits;
  *vals = NULL;
  *n = 0;
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}

#endif

/*
 * integrity.c — bound inference (issue 9, docs/security.md "Integrity of the
 * host's work"): the enclave checks the host's linear algebra and releases
 * only what the registered model computed on a data provider's own input.
 *
 *  1. Registration. The model's owner (the MP that set its policy) names,
 *     through its session, the SHA-256 digest of the encrypted model (plan
 *     bytes and every weight / bias ciphertext). The host then streams that
 *     model to the enclave (MODEL_LOAD); the enclave hashes what it gets,
 *     parses the plan, decrypts every weight and bias once and keeps, per
 *     stage and per check t < INTEG_T, a secret Gaussian vector rho_t over
 *     the stage's outputs (co x oh x ow) and its pull-back through the layer
 *     V_t = W^T rho_t over the (unpadded) input, plus beta_t = rho_t . bias.
 *     A digest mismatch discards everything.
 *  2. Jobs. A data provider authorizes, through its session (or a signed
 *     JOB_AUTH), the digests of its input micro-batches (single use). In
 *     the witness form, JOB_START carries the DP's input values sealed to
 *     the release key (its "witness"); the enclave matches the sealed
 *     bytes' digest, opens them and stores s_t[b] = V_t . x_b + beta_t from
 *     them, never touching the input ciphertexts (the stage-0 check binds
 *     the host's product to these values). In the ciphertext form it
 *     hashes the stage-0 ciphertexts the host hands in, refuses them unless
 *     a DP authorized them for this model, and decrypts them (O(input)).
 *  3. Refresh. JOB_REFRESH names (job, stage) and carries the stage's
 *     outputs only: the enclave applies the spec the registered plan
 *     prescribes for this stage and batch, its own copy (the host sends
 *     none: nothing of the refresh is the host's to choose, and a plan's
 *     spec is up to ~440 KB per request). After decryption the enclave
 *     checks rho_t . y_b = s_t[b] within a tolerance derived from the CKKS
 *     noise, for every sample and t, before the ops; then it computes the
 *     next stage's s_t from its own output (the values it encrypts), or, at
 *     the last stage, keeps the final values for the release.
 *  4. Release. JOB_RELEASE seals the kept values (flooded as a release at
 *     the release scale would be) to the session of the DP that authorized
 *     the input, if the model's policy names it. The legacy RELEASE is
 *     refused for registered models.
 * A failed check stops the job (HETEE_ERR_INTEGRITY, the detail names the
 * stage only), is counted per model and visible to the MP and to the
 * authorizing DP through the STATUS session command.
 */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#endif

#include "enclave/trusted/activations.h"
#include "enclave/trusted/enclave_internal.h"
#include "enclave/trusted/expect.h"
#include "enclave/trusted/integrity_auth.h"

#ifdef HETEE_ENCLAVE_HAVE_CKKS
#include "hemat/engine_bind.h"
#include "hemat/engine_internal.h"
#include "hemat/hemat_internal.h"

#define INTEG_T 2            /* independent checks per stage */
#define INTEG_KAPPA 16.0     /* tolerance in standard deviations of the noise bound */
#define INTEG_SIGMA 8.0      /* fresh-encryption noise std assumed (units of 1/scale; measured ~3.2) */
/* inputs a host expanded from the enclave's dense encryptions (a lane
 * stage, docs/hemat.md "Lanes"): the expansion's key switches, measured at
 * std 194 (max 899) units for 4 lanes, taken with the same ~2.5x margin as
 * the fresh value and scaled by sqrt((lanes - 1) / 3): a key switch at
 * depth j of the expansion tree is summed with permuted copies of itself by
 * the k - j levels below it (2^(k-j) terms, nearly independent
 * coefficients), so the lanes' variance grows as sum_j 2^(k-j) = lanes - 1 */
#define INTEG_SIGMA_EXPANDED_4 512.0
#define INTEG_MAX_MODELS 16
#define INTEG_MAX_JOBS 64
#define INTEG_MAX_AUTH 1024
#define INTEG_MAX_CTS 4096u
#define CMD_MODEL_REGISTER 3
#define CMD_JOB_AUTH 4
#define CMD_STATUS 5
#define CMD_SET_BUDGET 6
#define INTEG_MAX_DP HETEE_POLICY_MAX_DPS

typedef struct istage {
  size_t n_out, n_in;      /* per sample: co*oh*ow outputs, unpadded inputs */
  double *rho[INTEG_T];    /* n_out */
  double *V[INTEG_T];      /* n_in, unpadded input order (C, H, W) */
  double *Vp[INTEG_T];     /* padded, during loading */
  double beta[INTEG_T];
  double rho_norm[INTEG_T];
  double a2;               /* sum over weight polynomials of ||W||_1^2 */
  uint8_t *spec;           /* the plan's encoded refresh spec at the full micro-batch */
  size_t spec_len;
  enclave_refresh_prep *prep; /* that spec decoded once, with its sorts */
} istage;

typedef struct imodel {
  int used, loading, ready;
  uint32_t id;
  uint8_t owner[32];
  uint8_t digest[32];
  crypto_generichash_state hs;
  hetee_engine_plan *plan;
  istage *st;
  size_t cur_stage, cur_ct;
  uint32_t *in_start, *in_idx, *in_owner; /* stage-0 input positions by ciphertext (full micro-batch) */
  uint64_t jobs, checks, failures;
  int32_t last_failed_stage;
  /* per-DP query budget (images; 0: none), charged at JOB_START */
  uint64_t budget;
  uint8_t n_dp;
  uint8_t dp[INTEG_MAX_DP][32];
  uint64_t qused[INTEG_MAX_DP];
} imodel;

typedef struct ijob {
  int used;
  uint32_t handle, model;
  uint8_t dp[32];
  uint32_t batch;
  uint32_t next_stage;
  int done;
  uint8_t digest[32]; /* the authorized input (names an identity-sealed release) */
  double *s;    /* INTEG_T x batch: expected checks of next_stage */
  double *l1;   /* batch: L1 norm of each sample's input of next_stage */
  double *fin;  /* batch x out_size (after the last stage; NULL before) */
  /* s, l1 and fin live in one locked buffer (sodium_malloc) kept with the
   * table slot between jobs and grown on demand (was: three guarded
   * allocations and frees per job, ~23 us each here); job_free wipes the
   * part the job used (buf_used doubles) and keeps the buffer, up to
   * INTEG_KEEP_BUF doubles (a larger one is freed). */
  double *buf;
  size_t buf_cap, buf_used;
} ijob;

typedef struct iauth {
  int used;
  uint32_t model, batch;
  uint8_t dp[32];
  uint8_t digest[32];
} iauth;

static imodel models[INTEG_MAX_MODELS];
static ijob jobs[INTEG_MAX_JOBS];
static iauth auths[INTEG_MAX_AUTH];
static unsigned next_auth;
static uint32_t next_handle = 1;

/* CPU time of the whole process: JOB_START decrypts on the worker threads
 * too (the checks after the gather run while the workers sleep). */
static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static imodel *find_model(uint32_t id) {
  for (int i = 0; i < INTEG_MAX_MODELS; i++)
    if (models[i].used && models[i].id == id) return &models[i];
  return NULL;
}

static void stage_free(istage *s) {
  for (int t = 0; t < INTEG_T; t++) {
    if (s->rho[t]) sodium_free(s->rho[t]);
    if (s->V[t]) sodium_free(s->V[t]);
    if (s->Vp[t]) sodium_free(s->Vp[t]);
  }
  free(s->spec);
  enclave_refresh_prep_free(s->prep);
  memset(s, 0, sizeof *s);
}

static void model_clear(imodel *m) {
  if (m->st && m->plan)
    for (size_t s = 0; s < m->plan->nstages; s++) stage_free(&m->st[s]);
  free(m->st);
  free(m->in_start);
  free(m->in_idx);
  free(m->in_owner);
  hetee_engine_plan_free(m->plan);
  uint32_t id = m->id;
  uint8_t owner[32], digest[32];
  uint64_t jb = m->jobs, ck = m->checks, fl = m->failures, bud = m->budget;
  int32_t lf = m->last_failed_stage;
  uint8_t ndp = m->n_dp, dps[INTEG_MAX_DP][32];
  uint64_t used[INTEG_MAX_DP];
  memcpy(dps, m->dp, sizeof dps);
  memcpy(used, m->qused, sizeof used);
  memcpy(owner, m->owner, 32);
  memcpy(digest, m->digest, 32);
  memset(m, 0, sizeof *m);
  /* registration and counters survive a failed load */
  m->used = 1;
  m->id = id;
  memcpy(m->owner, owner, 32);
  memcpy(m->digest, digest, 32);
  m->jobs = jb;
  m->checks = ck;
  m->failures = fl;
  m->last_failed_stage = lf;
  m->budget = bud;
  m->n_dp = ndp;
  memcpy(m->dp, dps, sizeof dps);
  memcpy(m->qused, used, sizeof used);
}

/* The query counter of data provider dp for model m (created on first use). */
static uint64_t *dp_used(imodel *m, const uint8_t dp[32]) {
  for (unsigned i = 0; i < m->n_dp; i++)
    if (!memcmp(m->dp[i], dp, 32)) return &m->qused[i];
  if (m->n_dp >= INTEG_MAX_DP) return NULL;
  memcpy(m->dp[m->n_dp], dp, 32);
  m->qused[m->n_dp] = 0;
  return &m->qused[m->n_dp++];
}

/* Job buffers up to this many doubles stay with their slot between jobs
 * (e2dm: 832; the engine keeps threads + 1 jobs running, so a few slots
 * are in use); a larger one is freed when its job ends, so that what the
 * table keeps locked stays below INTEG_MAX_JOBS x 64 KiB. */
#define INTEG_KEEP_BUF 8192u

/* Ends a job: its expectations and final values (secret: derived from the
 * input) are wiped; the slot's locked buffer stays for the next job unless
 * it is large (sodium_free wipes it). */
static void job_free(ijob *j) {
  double *buf = j->buf;
  size_t cap = j->buf_cap;
  if (buf && cap > INTEG_KEEP_BUF) {
    sodium_free(buf);
    buf = NULL;
    cap = 0;
  } else if (buf && j->buf_used) {
    sodium_memzero(buf, j->buf_used * sizeof *buf);
  }
  memset(j, 0, sizeof *j);
  j->buf = buf;
  j->buf_cap = cap;
}

/* Points s and l1 of a job of `batch` samples into the slot's locked
 * buffer, with room for batch x out_size final values after them (fin is
 * set by the last stage). */
static int job_buffers(ijob *j, uint32_t batch, size_t out_size) {
  size_t need = ((size_t)INTEG_T + 1 + out_size) * batch;
  if (j->buf_cap < need) {
    if (j->buf) sodium_free(j->buf); /* wiped after its last job already */
    j->buf = sodium_malloc(need * sizeof *j->buf);
    j->buf_cap = j->buf ? need : 0;
    if (!j->buf) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  j->buf_used = need;
  j->s = j->buf;
  j->l1 = j->buf + (size_t)INTEG_T * batch;
  j->fin = NULL;
  return 0;
}

int enclave_integrity_bound(const enclave *e, uint32_t model) {
  (void)e;
  return find_model(model) != NULL;
}

/* Standard Gaussian from libsodium's randombytes (Box-Muller). */
static double gauss(void) {
  uint64_t u[2];
  randombytes_buf(u, sizeof u);
  double a = ((double)(u[0] >> 11) + 0.5) * 0x1p-53, b = (double)(u[1] >> 11) * 0x1p-53;
  return sqrt(-2.0 * log(a)) * cos(6.283185307179586 * b);
}

static double *smalloc0(size_t n) {
  double *p = sodium_malloc((n ? n : 1) * sizeof *p);
  if (p) memset(p, 0, (n ? n : 1) * sizeof *p);
  return p;
}

/* Saturation bound refresh.c applies before encoding at (level, scale). */
static double encode_bound(const hetee_ckks_context *ctx, int level, double scale) {
  double lq = 0;
  for (int i = 0; i <= level; i++) lq += log2((double)hetee_ckks_context_prime(ctx, i));
  double lim = lq - 4.0, want = log2(scale) + 20.0;
  if (want < 60.0) want = 60.0;
  if (lim > want) lim = want;
  return exp2(lim < 1000.0 ? lim : 1000.0) / scale;
}

static void hash_blob(crypto_generichash_state *hs, const uint8_t *b, size_t len) {
  uint8_t l[8];
  hetee_le64(l, (uint64_t)len);
  crypto_generichash_update(hs, l, 8);
  crypto_generichash_update(hs, b, len);
}

/* Loads ct, checks level 1 and the scale, decrypts, decodes coefficients
 * idx[0..n) into out. */
static int decrypt_coeffs(enclave *e, const uint8_t *b, size_t len, double scale, const uint32_t *idx, size_t n,
                          double *out, const char *what) {
  hetee_ckks_ciphertext *ct = NULL;
  hetee_ckks_plaintext *pt = NULL;
  int rc = hetee_ckks_ciphertext_load(e->ctx, b, len, &ct);
  if (!rc && hetee_ckks_ciphertext_level(ct) != HETEE_ENGINE_LEVEL)
    rc = hetee_error(HETEE_ERR_LEVEL, "%s not at level %d", what, HETEE_ENGINE_LEVEL);
  if (!rc && !(fabs(hetee_ckks_ciphertext_scale(ct) - scale) <= scale * 0x1p-20))
    rc = hetee_error(HETEE_ERR_SCALE, "%s not at scale 2^%.0f", what, log2(scale));
  if (!rc && hetee_ckks_ciphertext_size(ct) != 2) rc = hetee_error(HETEE_ERR_FORM, "%s not of size 2", what);
  if (!rc) rc = hetee_ckks_ciphertext_set_scale(ct, scale);
  if (!rc) rc = hetee_ckks_plaintext_new(e->ctx, &pt);
  if (!rc) rc = hetee_ckks_decrypt(e->ctx, e->sk, ct, pt);
  if (!rc) rc = hetee_ckks_decode_coeffs_scaled(e->ctx, pt, scale, idx, n, out);
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_ciphertext_free(ct);
  return rc;
}

/* ------------------------------------------------------------ registration */

static int load_begin(enclave *e, imodel *m, hetee_rbuf *r) {
  size_t plen;
  const uint8_t *pb = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &plen);
  if (r->err || hetee_rbuf_left(r)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed MODEL_LOAD plan");
  model_clear(m);
  int rc = engine_plan_load(pb, plen, &m->plan);
  if (rc) return rc;
  const hetee_engine_plan *p = m->plan;
  if (p->n != hetee_ckks_context_n(e->ctx)) {
    model_clear(m);
    return hetee_error(HETEE_ERR_PARAMS, "plan for ring degree %zu, the enclave's is %zu", p->n,
                       hetee_ckks_context_n(e->ctx));
  }
  m->st = calloc(p->nstages, sizeof *m->st);
  if (!m->st) {
    model_clear(m);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  for (size_t s = 0; s < p->nstages; s++) {
    const engine_stage *ps = &p->st[s];
    istage *is = &m->st[s];
    is->n_out = (size_t)ps->shape.co * ps->layout.oh * ps->layout.ow;
    is->n_in = (size_t)ps->in_shape[0] * ps->in_shape[1] * ps->in_shape[2];
    size_t np = (size_t)ps->shape.c * ps->shape.h * ps->shape.w;
    for (int t = 0; t < INTEG_T; t++) {
      is->rho[t] = smalloc0(is->n_out);
      is->V[t] = smalloc0(is->n_in);
      is->Vp[t] = smalloc0(np);
      if (!is->rho[t] || !is->V[t] || !is->Vp[t]) {
        model_clear(m);
        return hetee_error(HETEE_ERR_NOMEM, "no memory");
      }
      double nn = 0;
      for (size_t k = 0; k < is->n_out; k++) {
        is->rho[t][k] = gauss();
        nn += is->rho[t][k] * is->rho[t][k];
      }
      is->rho_norm[t] = sqrt(nn);
    }
  }
  crypto_generichash_init(&m->hs, NULL, 0, 32);
  static const char tag[] = "hetee-model-v1";
  crypto_generichash_update(&m->hs, (const uint8_t *)tag, sizeof tag);
  hash_blob(&m->hs, pb, plen);
  m->loading = 1;
  return 0;
}

/* Weight polynomial (mbk, cbk) of stage s: adds rho_t(o, oy, ox) W(o, c, dy, dx)
 * into Vp_t at the input position it multiplies. */
static int load_weight(enclave *e, imodel *m, size_t s, size_t i, const uint8_t *b, size_t len) {
  const engine_stage *ps = &m->plan->st[s];
  const hetee_hemat_layout *L = &ps->layout;
  const hetee_hemat_shape *sh = &ps->shape;
  istage *is = &m->st[s];
  int mbk = (int)(i / (size_t)L->ncb), cbk = (int)(i % (size_t)L->ncb);
  int mb = ps->pack.mb, cb = ps->pack.cb, kk = sh->kh * sh->kw;
  size_t cnt = (size_t)mb * cb * kk;
  uint32_t *idx = malloc(cnt * sizeof *idx);
  double *wv = sodium_malloc(cnt * sizeof *wv);
  int rc = 0;
  if (!idx || !wv) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto out;
  }
  size_t k = 0;
  for (int mm = 0; mm < mb; mm++)
    for (int ci = 0; ci < cb; ci++)
      for (int dy = 0; dy < sh->kh; dy++)
        for (int dx = 0; dx < sh->kw; dx++)
          idx[k++] = (uint32_t)hemat_w_coef(L, (uint64_t)mm, (uint64_t)ci, (uint64_t)dy, (uint64_t)dx);
  rc = decrypt_coeffs(e, b, len, HETEE_ENGINE_W_SCALE, idx, cnt, wv, "weight ciphertext");
  if (rc) goto out;
  double l1 = 0;
  k = 0;
  for (int mm = 0; mm < mb; mm++)
    for (int ci = 0; ci < cb; ci++)
      for (int dy = 0; dy < sh->kh; dy++)
        for (int dx = 0; dx < sh->kw; dx++, k++) {
          int o = mbk * mb + mm, c = cbk * cb + ci;
          double wgt = wv[k];
          l1 += fabs(wgt);
          if (o >= sh->co || c >= sh->c) continue;
          for (int t = 0; t < INTEG_T; t++) {
            const double *rho = is->rho[t] + (size_t)o * L->oh * L->ow;
            double *vp = is->Vp[t] + (size_t)c * sh->h * sh->w;
            for (int oy = 0; oy < L->oh; oy++)
              for (int ox = 0; ox < L->ow; ox++)
                vp[(size_t)(oy * sh->sh + dy) * sh->w + (size_t)(ox * sh->sw + dx)] += rho[oy * L->ow + ox] * wgt;
          }
        }
  is->a2 += l1 * l1;
out:
  free(idx);
  if (wv) sodium_free(wv);
  return rc;
}

/* Bias polynomial mbk of stage s: beta_t += sum rho_t(o, .) bias(o). */
static int load_bias(enclave *e, imodel *m, size_t s, size_t mbk, const uint8_t *b, size_t len) {
  const engine_stage *ps = &m->plan->st[s];
  const hetee_hemat_layout *L = &ps->layout;
  istage *is = &m->st[s];
  int mb = ps->pack.mb;
  uint32_t idx[HETEE_ENGINE_MAX_MICRO_BATCH] = {0};
  double bv[HETEE_ENGINE_MAX_MICRO_BATCH] = {0};
  if (mb > (int)HETEE_ENGINE_MAX_MICRO_BATCH) return hetee_error(HETEE_ERR_LIMIT, "bias group too large");
  for (int mm = 0; mm < mb; mm++) idx[mm] = (uint32_t)hemat_out_coef(L, 0, (uint64_t)mm, 0, 0);
  int rc = decrypt_coeffs(e, b, len, HETEE_ENGINE_OUT_SCALE, idx, (size_t)mb, bv, "bias ciphertext");
  if (rc) return rc;
  size_t area = (size_t)L->oh * L->ow;
  for (int mm = 0; mm < mb; mm++) {
    int o = (int)mbk * mb + mm;
    if (o >= ps->shape.co) continue;
    for (int t = 0; t < INTEG_T; t++) {
      double sum = 0;
      for (size_t q = 0; q < area; q++) sum += is->rho[t][(size_t)o * area + q];
      is->beta[t] += sum * bv[mm];
    }
  }
  sodium_memzero(bv, sizeof bv);
  return 0;
}

static int load_cts(enclave *e, imodel *m, hetee_rbuf *r) {
  uint32_t k = hetee_rbuf_u32(r);
  if (r->err || k > INTEG_MAX_CTS) return hetee_error(HETEE_ERR_PROTOCOL, "malformed MODEL_LOAD ciphertexts");
  const hetee_engine_plan *p = m->plan;
  for (uint32_t j = 0; j < k; j++) {
    size_t len;
    const uint8_t *b = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &len);
    if (r->err) return hetee_error(HETEE_ERR_PROTOCOL, "MODEL_LOAD ciphertext %u truncated", j);
    if (m->cur_stage >= p->nstages) return hetee_error(HETEE_ERR_PROTOCOL, "more model ciphertexts than the plan has");
    const engine_stage *ps = &p->st[m->cur_stage];
    size_t nw = ps->layout.n_w_cts, nb = ps->has_bias ? (size_t)ps->layout.nmb : 0;
    hash_blob(&m->hs, b, len);
    int rc = m->cur_ct < nw ? load_weight(e, m, m->cur_stage, m->cur_ct, b, len)
                            : load_bias(e, m, m->cur_stage, m->cur_ct - nw, b, len);
    if (rc) return rc;
    if (++m->cur_ct == nw + nb) {
      m->cur_stage++;
      m->cur_ct = 0;
    }
  }
  if (hetee_rbuf_left(r)) return hetee_error(HETEE_ERR_PROTOCOL, "trailing bytes in MODEL_LOAD");
  return 0;
}

static int plan_spec(enclave *e, const hetee_engine_plan *p, size_t s, uint32_t batch, uint8_t **buf, size_t *len);
static int input_positions(const hetee_engine_plan *p, uint32_t batch, uint32_t nct, uint32_t **start, uint32_t **idx,
                           uint32_t **owner);

static int load_end(enclave *e, imodel *m) {
  const hetee_engine_plan *p = m->plan;
  if (m->cur_stage != p->nstages) return hetee_error(HETEE_ERR_PROTOCOL, "model ciphertexts missing");
  uint8_t d[32];
  crypto_generichash_final(&m->hs, d, 32);
  if (sodium_memcmp(d, m->digest, 32))
    return hetee_error(HETEE_ERR_AUTH, "model %u: the bytes loaded are not those its model provider registered", m->id);
  /* V on the unpadded input (padding is zero in every layout) */
  for (size_t s = 0; s < p->nstages; s++) {
    const engine_stage *ps = &p->st[s];
    istage *is = &m->st[s];
    for (int t = 0; t < INTEG_T; t++) {
      size_t k = 0;
      for (int c = 0; c < ps->in_shape[0]; c++)
        for (int y = 0; y < ps->in_shape[1]; y++)
          for (int x = 0; x < ps->in_shape[2]; x++) {
            int hc, hy, hx;
            engine_in_coord(ps, c, y, x, &hc, &hy, &hx);
            is->V[t][k++] = is->Vp[t][((size_t)hc * ps->shape.h + (size_t)hy) * ps->shape.w + (size_t)hx];
          }
      sodium_free(is->Vp[t]);
      is->Vp[t] = NULL;
    }
  }
  /* what every full micro-batch job uses: the plan's specs, the input
   * positions; and what its first job would make (the coset products
   * with the key, the workspace at the jobs' sizes, the release key
   * pair): made now, so that the first job of the model costs what the
   * later ones do (e2dm: ~1.8 ms less enclave CPU in the first
   * micro-batch, docs/enclave.md "Registration") */
  for (size_t s = 0; s < p->nstages; s++) {
    int rc = plan_spec(e, p, s, p->micro_batch, &m->st[s].spec, &m->st[s].spec_len);
    if (!rc) rc = enclave_refresh_prepare(e, m->st[s].spec, m->st[s].spec_len, &m->st[s].prep);
    if (rc) return rc;
    enclave_refresh_prep_warm(e, m->st[s].prep);
  }
  double *room = NULL; /* the witness's room at JOB_START (public sizes) */
  size_t wlen = HETEE_WITNESS_SEALED_LEN(p->micro_batch, p->in_size) - HETEE_WITNESS_SEALBYTES;
  (void)enclave_job_values(e, (wlen + sizeof(double) - 1) / sizeof(double), &room);
  enclave_auth_warm(e);
  hetee_error_clear();
  hetee_hemat_layout L0;
  int rc = hetee_engine_plan_layout(p, 0, p->micro_batch, &L0);
  if (!rc) rc = input_positions(p, p->micro_batch, (uint32_t)L0.n_in_cts, &m->in_start, &m->in_idx, &m->in_owner);
  if (rc) return rc;
  m->loading = 0;
  m->ready = 1;
  return 0;
}

static int handle_model_load(enclave *e, hetee_rbuf *r) {
  uint32_t id = hetee_rbuf_u32(r);
  uint8_t phase = hetee_rbuf_u8(r);
  if (r->err) return hetee_error(HETEE_ERR_PROTOCOL, "malformed MODEL_LOAD");
  imodel *m = find_model(id);
  if (!m) return hetee_error(HETEE_ERR_NOT_FOUND, "model %u: no plan registered by its model provider", id);
  int rc;
  if (phase == 0) {
    for (int i = 0; i < INTEG_MAX_JOBS; i++)
      if (jobs[i].used && jobs[i].model == id) return hetee_error(HETEE_ERR_STATE, "model %u has jobs running", id);
    rc = load_begin(e, m, r);
  } else if (!m->loading) {
    rc = hetee_error(HETEE_ERR_STATE, "model %u: MODEL_LOAD begin first", id);
  } else if (phase == 1) {
    rc = load_cts(e, m, r);
  } else if (phase == 2) {
    rc = hetee_rbuf_left(r) ? hetee_error(HETEE_ERR_PROTOCOL, "trailing bytes") : load_end(e, m);
  } else {
    rc = hetee_error(HETEE_ERR_PROTOCOL, "MODEL_LOAD phase %u", phase);
  }
  if (rc) model_clear(m);
  return rc;
}

/* Stage-0 input positions of a micro-batch of `batch` samples, grouped by
 * ciphertext (counting sort over the public layout): start[c]..start[c+1]
 * index idx (coefficient) and owner (b * in_size + k). */
static int input_positions(const hetee_engine_plan *p, uint32_t batch, uint32_t nct, uint32_t **start, uint32_t **idx,
                           uint32_t **owner) {
  size_t n = (size_t)batch * p->in_size;
  uint32_t *st = calloc((size_t)nct + 1, sizeof *st), *fill = calloc(nct ? nct : 1, sizeof *fill);
  uint32_t *ix = malloc(n * sizeof *ix), *ow = malloc(n * sizeof *ow);
  uint64_t *pos = malloc(n * sizeof *pos);
  int rc = 0;
  if (!st || !fill || !ix || !ow || !pos) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  hetee_hemat_layout L;
  if (!rc) rc = hetee_engine_plan_layout(p, 0, batch, &L);
  const engine_stage *s0 = &p->st[0];
  size_t q = 0;
  for (uint32_t b = 0; b < batch && !rc; b++)
    for (int c = 0; c < s0->in_shape[0]; c++)
      for (int y = 0; y < s0->in_shape[1]; y++)
        for (int x = 0; x < s0->in_shape[2]; x++, q++) {
          int hc, hy, hx;
          engine_in_coord(s0, c, y, x, &hc, &hy, &hx);
          pos[q] = hetee_hemat_in_pos(&L, b, hc, hy, hx);
          if (pos[q] / p->n >= nct) rc = hetee_error(HETEE_ERR_INTERNAL, "input position");
          else st[pos[q] / p->n + 1]++;
        }
  for (uint32_t c = 0; c < nct && !rc; c++) st[c + 1] += st[c];
  for (size_t k = 0; k < n && !rc; k++) {
    uint32_t c = (uint32_t)(pos[k] / p->n), at = st[c] + fill[c]++;
    ix[at] = (uint32_t)(pos[k] % p->n);
    ow[at] = (uint32_t)k;
  }
  free(fill);
  free(pos);
  if (rc) {
    free(st);
    free(ix);
    free(ow);
    return rc;
  }
  *start = st;
  *idx = ix;
  *owner = ow;
  return 0;
}

/* ------------------------------------------------------------------- jobs */

static ijob *find_job(uint32_t h) {
  for (int i = 0; i < INTEG_MAX_JOBS; i++)
    if (jobs[i].used && jobs[i].handle == h) return &jobs[i];
  return NULL;
}

_Static_assert(INTEG_T == 2, "expect() and the check compute the two checks in one pass");

/* The expectations of a stage's checks (expect.c) from decoded doubles x
 * (batch x n_in), saturated at bound. */
static void expect(const istage *is, const double *x, uint32_t batch, double bound, double *s, double *l1) {
  enclave_expect_stage st = {is->V[0], is->V[INTEG_T - 1], is->beta[0], is->beta[INTEG_T - 1], is->n_in};
  (void)enclave_expect(&st, x, 0, batch, bound, s, s + (size_t)(INTEG_T - 1) * batch, l1);
}

/* The same for stage 0 straight from the opened witness values (batch x
 * n_in little-endian floats at v), without a decoded copy, saturated at
 * HETEE_REFRESH_VALUE_BOUND; nonzero if a value is not finite or too large. */
static unsigned expect_witness(const istage *is, const uint8_t *v, uint32_t batch, double *s, double *l1) {
  enclave_expect_stage st = {is->V[0], is->V[INTEG_T - 1], is->beta[0], is->beta[INTEG_T - 1], is->n_in};
  return enclave_expect(&st, v, 1, batch, HETEE_REFRESH_VALUE_BOUND, s, s + (size_t)(INTEG_T - 1) * batch, l1);
}

/* z_t = rho_t . y and mag_t = sum |rho_t[k] y[k]| for both checks, one pass
 * over y. */
static void check_sums(const istage *is, const double *y, double z[INTEG_T], double mag[INTEG_T]) {
  const double *r0 = is->rho[0], *r1 = is->rho[INTEG_T - 1];
  v2d z0a = {0}, z0b = {0}, z1a = {0}, z1b = {0}, m0a = {0}, m0b = {0}, m1a = {0}, m1b = {0};
  size_t k = 0, n = is->n_out;
  for (; k + 4 <= n; k += 4) {
    v2d ya = v2_load(y + k), yb = v2_load(y + k + 2);
    v2d p0a = v2_load(r0 + k) * ya, p0b = v2_load(r0 + k + 2) * yb;
    v2d p1a = v2_load(r1 + k) * ya, p1b = v2_load(r1 + k + 2) * yb;
    z0a += p0a;
    z0b += p0b;
    z1a += p1a;
    z1b += p1b;
    m0a += v2_abs(p0a);
    m0b += v2_abs(p0b);
    m1a += v2_abs(p1a);
    m1b += v2_abs(p1b);
  }
  double a0 = v2_sum(z0a, z0b), a1 = v2_sum(z1a, z1b), b0 = v2_sum(m0a, m0b), b1 = v2_sum(m1a, m1b);
  for (; k < n; k++) {
    double p0 = r0[k] * y[k], p1 = r1[k] * y[k];
    a0 += p0;
    a1 += p1;
    b0 += fabs(p0);
    b1 += fabs(p1);
  }
  z[0] = a0;
  z[INTEG_T - 1] = a1;
  mag[0] = b0;
  mag[INTEG_T - 1] = b1;
}

static int job_fail(enclave *e, ijob *j, imodel *m, uint32_t stage) {
  (void)e;
  m->failures++;
  m->last_failed_stage = (int32_t)stage;
  uint32_t h = j->handle, id = j->model;
  job_free(j);
  return hetee_error(HETEE_ERR_INTEGRITY,
                     "integrity check failed at stage %u of model %u (job %u): the layer output is not the "
                     "registered layer applied to this job's input; job stopped",
                     stage, id, h);
}

/* The start of a job once its input is authorized and its values x are
 * known, common to the witness and the ciphertext forms: binds the job to
 * the authorization a (then spent), computes s_t from x (x NULL: the
 * caller computed them), charges the DP's quota and writes the reply
 * (handle, integrity CPU). */
static void job_begin(ijob *j, const imodel *m, uint32_t id, uint32_t batch, iauth *a, const double *x,
                      uint64_t *quota, hetee_wbuf *w, uint64_t t0) {
  j->used = 1;
  j->handle = next_handle++;
  j->model = id;
  memcpy(j->dp, a->dp, 32);
  memcpy(j->digest, a->digest, 32);
  j->batch = batch;
  j->next_stage = 0;
  if (x) expect(&m->st[0], x, batch, HETEE_REFRESH_VALUE_BOUND, j->s, j->l1);
  memset(a, 0, sizeof *a); /* single use */
  if (quota) *quota += batch; /* charged whether or not the job completes */
  hetee_wbuf_u32(w, j->handle);
  hetee_wbuf_u64(w, cpu_ns() - t0);
}

/* The unused authorization of (model, batch, digest), or NULL. */
static iauth *find_auth(uint32_t model, uint32_t batch, const uint8_t d[32]) {
  for (int i = 0; i < INTEG_MAX_AUTH; i++)
    if (auths[i].used && auths[i].model == model && auths[i].batch == batch && !sodium_memcmp(auths[i].digest, d, 32))
      return &auths[i];
  return NULL;
}

/* The witness form of JOB_START (enclave/wire/proto.h): the job is bound to
 * the values the data provider encoded, sealed to the release key, whose
 * digest it authorized. Neither the input ciphertexts' bytes nor their
 * plaintexts are touched here: the stage-0 check compares the host's
 * product with W x_witness. Checks, in order: the sealed size (a function
 * of the public batch and plan only), the authorization (digest, before
 * opening), the opened header (model, batch, input size), then every value
 * finite and within +-HETEE_WITNESS_MAX_ABS (one pass without early exit,
 * one error whatever the values). The opened values are wiped. */

static int job_start_witness(enclave *e, imodel *m, uint32_t id, uint32_t batch, hetee_rbuf *r, hetee_wbuf *w,
                             uint64_t *items, uint64_t t0) {
  const hetee_engine_plan *p = m->plan;
  size_t len;
  const uint8_t *sealed = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &len);
  if (r->err || hetee_rbuf_left(r)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed JOB_START witness");
  size_t want = HETEE_WITNESS_SEALED_LEN(batch, p->in_size);
  if (len != want)
    return hetee_error(HETEE_ERR_SHAPE, "input witness of %zu bytes; a micro-batch of %u of model %u has %zu", len,
                       batch, id, want);
  /* the digest of the box's head (proto.h); an authorization made with
   * the first form (the whole box hashed) is looked for only when no
   * authorization of the head matches (its cost: one hash of the box) */
  uint8_t d[32];
  hetee_witness_digest(id, batch, sealed, len, d);
  iauth *a = find_auth(id, batch, d);
  if (!a) {
    hetee_witness_digest_v1(id, batch, sealed, len, d);
    a = find_auth(id, batch, d);
  }
#ifdef INTEG_CALIBRATE
  uint64_t t_hash = cpu_ns() - t0;
#endif
  if (!a)
    return hetee_error(HETEE_ERR_AUTH, "model %u: this input witness was not authorized by a data provider "
                                       "(or was used already)", id);
  int rc = 0;
  uint64_t *quota = NULL;
  if (m->budget) {
    quota = dp_used(m, a->dp);
    if (!quota || *quota + batch > m->budget)
      return hetee_error(HETEE_ERR_LIMIT, "model %u: this data provider's query budget (%llu images) is used up", id,
                         (unsigned long long)m->budget);
  }
  ijob *j = NULL;
  for (int i = 0; i < INTEG_MAX_JOBS && !j; i++)
    if (!jobs[i].used) j = &jobs[i];
  if (!j) return hetee_error(HETEE_ERR_LIMIT, "too many jobs running");
  /* the opened witness in the locked workspace (kept between requests;
   * wiped below): no guarded allocation of its ~200 KB per job */
  size_t plen = len - HETEE_WITNESS_SEALBYTES;
  double *room = NULL;
  rc = enclave_job_values(e, (plen + sizeof(double) - 1) / sizeof(double), &room);
  uint8_t *plain = (uint8_t *)room;
  if (!rc) rc = enclave_auth_open_witness(e, sealed, len, plain);
#ifdef INTEG_CALIBRATE
  uint64_t t_open = cpu_ns() - t0;
#endif
  if (!rc && (memcmp(plain, HETEE_WITNESS_TAG, sizeof HETEE_WITNESS_TAG) ||
              hetee_rd32(plain + sizeof HETEE_WITNESS_TAG) != id ||
              hetee_rd32(plain + sizeof HETEE_WITNESS_TAG + 4) != batch ||
              hetee_rd32(plain + sizeof HETEE_WITNESS_TAG + 8) != p->in_size))
    rc = hetee_error(HETEE_ERR_AUTH, "model %u: the input witness is not one for this model and micro-batch", id);
  if (!rc) rc = job_buffers(j, batch, p->out_size);
  /* s_t and ||x_b||_1 straight from the opened values, every value
   * checked in the same pass (one error whatever the values) */
  if (!rc && expect_witness(&m->st[0], plain + HETEE_WITNESS_HDR, batch, j->s, j->l1))
    rc = hetee_error(HETEE_ERR_FORMAT, "model %u: the input witness holds a value that is not finite or above 2^20 "
                                       "in magnitude", id);
  if (!rc) {
    job_begin(j, m, id, batch, a, NULL, quota, w, t0);
    *items += 1;
#ifdef INTEG_CALIBRATE
    fprintf(stderr, "calib job_start witness: hash %.3f ms, +open %.3f ms, total %.3f ms\n", t_hash * 1e-6,
            (t_open - t_hash) * 1e-6, (cpu_ns() - t0) * 1e-6);
#endif
  } else {
    job_free(j);
  }
  if (plain) sodium_memzero(plain, plen);
  return rc;
}

static int handle_job_start(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  uint64_t t0 = cpu_ns();
  uint32_t id = hetee_rbuf_u32(r), batch = hetee_rbuf_u32(r), k = hetee_rbuf_u32(r);
  if (r->err || k > INTEG_MAX_CTS) return hetee_error(HETEE_ERR_PROTOCOL, "malformed JOB_START");
  imodel *m = find_model(id);
  if (!m || !m->ready) return hetee_error(HETEE_ERR_NOT_FOUND, "model %u is not registered and loaded", id);
  const hetee_engine_plan *p = m->plan;
  hetee_hemat_layout L;
  if (batch < 1 || batch > p->micro_batch || hetee_engine_plan_layout(p, 0, batch, &L))
    return hetee_error(HETEE_ERR_SHAPE, "batch %u outside the plan's micro-batch %u", batch, p->micro_batch);
  if (k == 0) return job_start_witness(e, m, id, batch, r, w, items, t0);
  if (k != L.n_in_cts) return hetee_error(HETEE_ERR_SHAPE, "%u input ciphertexts, the plan has %zu", k, L.n_in_cts);
  /* pass 1: the digest the data provider authorized, before any decryption */
  const uint8_t **bl = calloc(k, sizeof *bl);
  size_t *ll = calloc(k, sizeof *ll);
  if (!bl || !ll) {
    free(bl);
    free(ll);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  crypto_generichash_state hs;
  crypto_generichash_init(&hs, NULL, 0, 32);
  static const char tag[] = "hetee-input-v1";
  crypto_generichash_update(&hs, (const uint8_t *)tag, sizeof tag);
  uint8_t hdr[12];
  hetee_le32(hdr, id);
  hetee_le32(hdr + 4, batch);
  hetee_le32(hdr + 8, k);
  crypto_generichash_update(&hs, hdr, 12);
  for (uint32_t c = 0; c < k; c++) {
    bl[c] = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &ll[c]);
    if (!r->err) hash_blob(&hs, bl[c], ll[c]);
  }
  uint8_t d[32];
  crypto_generichash_final(&hs, d, 32);
#ifdef INTEG_CALIBRATE
  uint64_t t_hash = cpu_ns() - t0;
#endif
  int rc = 0;
  iauth *a = NULL;
  if (r->err || hetee_rbuf_left(r)) rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed JOB_START ciphertexts");
  for (int i = 0; i < INTEG_MAX_AUTH && !rc && !a; i++)
    if (auths[i].used && auths[i].model == id && auths[i].batch == batch && !sodium_memcmp(auths[i].digest, d, 32))
      a = &auths[i];
  if (!rc && !a)
    rc = hetee_error(HETEE_ERR_AUTH, "model %u: these input ciphertexts were not authorized by a data provider "
                                     "(or were used already)", id);
  uint64_t *quota = NULL;
  if (!rc && m->budget) {
    quota = dp_used(m, a->dp);
    if (!quota || *quota + batch > m->budget)
      rc = hetee_error(HETEE_ERR_LIMIT, "model %u: this data provider's query budget (%llu images) is used up", id,
                       (unsigned long long)m->budget);
  }
  ijob *j = NULL;
  for (int i = 0; i < INTEG_MAX_JOBS && !rc && !j; i++)
    if (!jobs[i].used) j = &jobs[i];
  if (!rc && !j) rc = hetee_error(HETEE_ERR_LIMIT, "too many jobs running");
  double *x = NULL;
  uint32_t *map = NULL;
  uint32_t *start = m->in_start, *idx = m->in_idx, *owner = m->in_owner;
  uint32_t *own_start = NULL, *own_idx = NULL, *own_owner = NULL; /* a short micro-batch: its own positions */
  size_t nx = (size_t)batch * p->in_size;
  if (!rc && batch != p->micro_batch && !(rc = input_positions(p, batch, k, &own_start, &own_idx, &own_owner))) {
    start = own_start;
    idx = own_idx;
    owner = own_owner;
  }
  if (!rc) rc = enclave_job_values(e, nx, &x); /* locked workspace, wiped below */
  if (!rc) rc = job_buffers(j, batch, p->out_size);
  if (!rc) {
    map = malloc((nx ? nx : 1) * sizeof *map);
    if (!x || !map) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  /* pass 2: decrypt the input positions (public layout: x[owner] is
   * coefficient idx of ciphertext c) on the enclave's threads, as refresh
   * does */
  for (uint32_t c = 0; c < k && !rc; c++)
    for (uint32_t q = start[c]; q < start[c + 1]; q++) map[owner[q]] = (uint32_t)(c * p->n + idx[q]);
  if (!rc)
    rc = enclave_gather_coeffs(e, bl, ll, k, map, nx, HETEE_ENGINE_LEVEL, HETEE_ENGINE_IN_SCALE, x);
  free(own_start);
  free(own_idx);
  free(own_owner);
  if (!rc) {
    job_begin(j, m, id, batch, a, x, quota, w, t0);
    *items += k;
#ifdef INTEG_CALIBRATE
    fprintf(stderr, "calib job_start: hash %.3f ms, total %.3f ms\n", t_hash * 1e-6, (cpu_ns() - t0) * 1e-6);
#endif
  } else if (j) {
    job_free(j);
  }
  if (x) sodium_memzero(x, nx * sizeof *x);
  free(map);
  free(bl);
  free(ll);
  return rc;
}

typedef struct hook_ctx {
  enclave *e;
  imodel *m;
  ijob *j;
  uint32_t stage;
  uint64_t ns;
  int failed;
} hook_ctx;

/* rho_t . y_b against s_t[b] for every sample, before the ops. */
static int hook_gathered(void *arg, const hetee_refresh_spec *spec, const double *v, size_t n) {
  hook_ctx *h = arg;
  uint64_t t0 = cpu_ns();
  const istage *is = &h->m->st[h->stage];
  const engine_stage *ps = &h->m->plan->st[h->stage];
  uint32_t batch = h->j->batch;
  if (n != (size_t)batch * is->n_out || spec->batch != batch) return hetee_error(HETEE_ERR_INTERNAL, "job shape");
  /* weight polynomials per output group: ceil(co / mb), whatever the batch
   * (the registered layout's; was a layout computed per request) */
  const double nmb = (double)ps->layout.nmb;
  /* noise bound (docs/security.md): the output error of a sample is the
   * input ciphertexts' noise convolved with the weight polynomials plus the
   * weights' noise convolved with the input polynomials of its group */
  const int lanes = ps->pack.lanes;
  const double sig_in = lanes > 1 ? INTEG_SIGMA_EXPANDED_4 * sqrt((lanes - 1) / 3.0) : INTEG_SIGMA;
  const double sx = sig_in / HETEE_ENGINE_IN_SCALE, sw = INTEG_SIGMA / HETEE_ENGINE_W_SCALE;
  /* plus the host's rescale of each product by q_1 (spec->in_scale is the
   * scale after it): rounding r0 + r1 s + r2 s^2 per coefficient, r_i
   * uniform in [-1/2, 1/2], s ternary (|s_j| <= 1, so (s^2)_k has variance
   * at most N): variance at most (1 + N + N^2) / 12 in units of
   * 1/in_scale (N = 8192: std 2365 = 2^-28.8 at the engine's 2^40) */
  const double nr = (double)hetee_ckks_context_n(h->e->ctx);
  const double srs = spec->in_level < HETEE_ENGINE_LEVEL ? sqrt((1 + nr + nr * nr) / 12) / spec->in_scale : 0;
  int ok = 1;
  uint32_t nimg = (uint32_t)ps->pack.nimg;
  double g = 0;
  for (uint32_t b = 0; b < batch; b++) {
    if (b % nimg == 0) { /* the L1 norm of this sample's group of inputs (public sizes only) */
      g = 0;
      for (uint32_t q = b; q < b + nimg && q < batch; q++) g += h->j->l1[q];
    }
    double var = sx * sx * is->a2 + sw * sw * nmb * g * g + srs * srs;
    const double *yb = v + (size_t)b * is->n_out;
    double zs[INTEG_T], mags[INTEG_T];
    check_sums(is, yb, zs, mags);
    for (int t = 0; t < INTEG_T; t++) {
      double z = zs[t], mag = mags[t];
      double s = h->j->s[(size_t)t * batch + b];
      double tol = INTEG_KAPPA * is->rho_norm[t] * sqrt(var) + 0x1p-40 * (mag + fabs(s));
      ok &= fabs(z - s) <= tol; /* NaN fails */
#ifdef INTEG_CALIBRATE
      {
        static double worst[64];
        double ratio = fabs(z - s) / tol;
        if (ratio > worst[h->stage]) {
          worst[h->stage] = ratio;
          fprintf(stderr, "calib stage %u ratio %.3e (log2 %.2f) tol %.3e z %.3e\n", h->stage, ratio, log2(ratio), tol, z);
        }
      }
#endif
    }
  }
  h->m->checks += (uint64_t)batch * INTEG_T;
  h->ns += cpu_ns() - t0;
  if (!ok) {
    h->failed = 1;
    return job_fail(h->e, h->j, h->m, h->stage);
  }
  return 0;
}

/* After the ops: the next stage's expectations from the values about to be
 * encrypted (saturated as the encoder will), or the kept final values. */
static int hook_final(void *arg, const hetee_refresh_spec *spec, const double *v, size_t n) {
  hook_ctx *h = arg;
  uint64_t t0 = cpu_ns();
  const hetee_engine_plan *p = h->m->plan;
  ijob *j = h->j;
  uint32_t batch = j->batch;
  int last = h->stage + 1 == p->nstages;
  size_t per = last ? p->out_size : h->m->st[h->stage + 1].n_in;
  if (n != (size_t)batch * per) return hetee_error(HETEE_ERR_INTERNAL, "job final shape");
  double bound = encode_bound(h->e->ctx, spec->out_level < 0 ? hetee_ckks_context_max_level(h->e->ctx) : spec->out_level,
                              spec->out_scale);
  if (last) { /* kept for the release, in the job's locked buffer */
    if (!j->buf || j->buf_used < ((size_t)INTEG_T + 1) * batch + n)
      return hetee_error(HETEE_ERR_INTERNAL, "job buffer");
    double *x = j->buf + ((size_t)INTEG_T + 1) * batch;
    for (size_t k = 0; k < n; k++) x[k] = hetee_dmin(hetee_dmax(v[k], -bound), bound);
    j->fin = x;
    j->done = 1;
  } else { /* straight from the values, saturated on the fly */
    expect(&h->m->st[h->stage + 1], v, batch, bound, j->s, j->l1);
  }
  j->next_stage = h->stage + 1;
  h->ns += cpu_ns() - t0;
  return 0;
}

/* The spec the registered plan prescribes for (stage, batch), encoded. */
static int plan_spec(enclave *e, const hetee_engine_plan *p, size_t s, uint32_t batch, uint8_t **buf, size_t *len) {
  hetee_engine_refresh R;
  int rc = hetee_engine_plan_refresh(p, s, batch, &R);
  if (rc) return rc;
  hetee_refresh_spec spec;
  engine_stage_spec(e->ctx, &R, &spec);
  rc = hetee_refresh_spec_encode(&spec, buf, len);
  hetee_engine_refresh_free(&R);
  return rc;
}

static int handle_job_refresh(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  uint64_t t0 = cpu_ns();
  uint32_t h = hetee_rbuf_u32(r), stage = hetee_rbuf_u32(r);
  if (r->err) return hetee_error(HETEE_ERR_PROTOCOL, "malformed JOB_REFRESH");
  ijob *j = find_job(h);
  if (!j) return hetee_error(HETEE_ERR_NOT_FOUND, "no job %u (never started, finished or stopped)", h);
  imodel *m = find_model(j->model);
  if (!m || !m->ready) return hetee_error(HETEE_ERR_STATE, "model %u not loaded", j->model);
  if (j->done || stage != j->next_stage)
    return hetee_error(HETEE_ERR_STATE, "job %u expects stage %u, not %u", h, j->next_stage, stage);
  /* the spec is the registered plan's for this stage and batch: the
   * enclave's own bytes (the request carries none) */
  uint8_t *want = m->st[stage].spec, *own = NULL;
  size_t wlen = m->st[stage].spec_len;
  int rc = 0;
  if (j->batch != m->plan->micro_batch && (rc = plan_spec(e, m->plan, stage, j->batch, &own, &wlen))) return rc;
  if (own) want = own;
  int full = own == NULL; /* the full micro-batch: the registered spec */
  uint64_t check_ns = cpu_ns() - t0; /* the spec's decoding below is refresh work, not integrity */
  hook_ctx hc = {e, m, j, stage, check_ns, 0};
  enclave_refresh_hook hook = {hook_gathered, hook_final, &hc};
  /* the last stage's outputs are released from the values hook_final
   * keeps: its release-layout ciphertexts (one top-level encryption per
   * micro-batch, ~6 % of the enclave's CPU of an e2dm batch) were made
   * and sent for nothing */
  e->job_no_output = stage + 1 == m->plan->nstages;
  if (full && m->st[stage].prep) { /* the registered spec: decoded at MODEL_LOAD */
    rc = enclave_refresh_prep_run(e, m->st[stage].prep, r, w, items, &hook);
  } else {
    /* decoded from the enclave's own encoding of the plan's spec for this
     * batch */
    hetee_refresh_job job;
    hetee_rbuf sr;
    hetee_rbuf_init(&sr, want, wlen);
    rc = hetee_refresh_spec_decode(&sr, hetee_ckks_context_slots(e->ctx), &job);
    if (!rc && hetee_rbuf_left(&sr)) {
      hetee_refresh_job_free(&job);
      rc = hetee_error(HETEE_ERR_INTERNAL, "registered refresh spec with trailing bytes");
    }
    if (!rc) rc = enclave_refresh_job_run(e, &job, r, w, items, &hook);
  }
  free(own);
  e->job_no_output = 0;
  if (rc && !hc.failed && find_job(h) == j) {
    /* any other failure stops the job too: a bound chain has no retries */
    char why[400];
    snprintf(why, sizeof why, "%s", hetee_last_error());
    job_free(j);
    return hetee_error(rc, "%s (job %u stopped)", why, h);
  }
  if (!rc) hetee_wbuf_u64(w, hc.ns);
#ifdef INTEG_CALIBRATE
  fprintf(stderr, "calib job_refresh stage %u: spec %.3f ms, checks %.3f ms\n", stage, check_ns * 1e-6,
          (hc.ns - check_ns) * 1e-6);
#endif
  return rc;
}

static int handle_job_release(enclave *e, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  uint32_t h = hetee_rbuf_u32(r);
  uint8_t sid[HETEE_SESSION_ID_BYTES];
  hetee_rbuf_copy(r, sid, sizeof sid);
  if (r->err || hetee_rbuf_left(r)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed JOB_RELEASE");
  ijob *j = find_job(h);
  if (!j || !j->done) return hetee_error(HETEE_ERR_STATE, "job %u has no verified final layer", h);
  imodel *m = find_model(j->model);
  const enclave_policy *p = enclave_find_policy(e, j->model);
  if (!m || !p) return hetee_error(HETEE_ERR_NOT_FOUND, "no release policy for model %u", j->model);
  /* an all-zero session id: sealed to the authorizing DP's identity (integrity_auth.c) */
  int to_id = sodium_is_zero(sid, sizeof sid);
  hetee_chan *c = to_id ? NULL : enclave_find_session(e, sid);
  if (!to_id && !c) return hetee_error(HETEE_ERR_NOT_FOUND, "no such session");
  int named = 0;
  for (unsigned i = 0; i < p->n_dp; i++) named |= !memcmp(p->dp_pk[i], j->dp, 32);
  if (!named || (c && (c->role != HETEE_ROLE_DP || memcmp(c->party_pk, j->dp, 32))))
    return hetee_error(HETEE_ERR_AUTH, "job %u's results go only to the data provider that authorized its input", h);
  size_t n = m->plan->out_size;
  double scale = hetee_engine_release_scale(e->ctx);
  double log2a = log2((double)n) + HETEE_RELEASE_ERR_BITS + HETEE_RELEASE_STAT_BITS - 1 - log2(scale);
  if (log2a > -(double)p->prec_bits)
    return hetee_error(HETEE_ERR_SCALE, "release flooding 2^%.2f above the policy's unit 2^-%d", log2a, p->prec_bits);
  /* the flooded copy of every sample's values in the locked workspace
   * (wiped below; the kept values stay as they are until the release
   * succeeds), one flood key for the whole job */
  size_t nv = (size_t)j->batch * n;
  double *v = NULL;
  int rc = enclave_job_values(e, nv, &v);
  if (rc) return rc;
  memcpy(v, j->fin, nv * sizeof *v);
  enclave_flood(v, nv, exp2(log2a)); /* refresh.c */
  hetee_wbuf_u32(w, j->batch);
  for (uint32_t b = 0; b < j->batch && !rc; b++) {
    hetee_wbuf rec;
    hetee_wbuf_init(&rec);
    rc = enclave_build_release(p, v + (size_t)b * n, n, &rec);
    if (!rc) {
      uint8_t *out;
      size_t olen;
      rc = c ? hetee_chan_seal(c, rec.p, rec.len, &out, &olen)
             : enclave_auth_seal_to_dp(e, j->dp, j->model, j->digest, b, rec.p, rec.len, &out, &olen);
      if (!rc) {
        hetee_wbuf_blob(w, out, olen);
        free(out);
      }
    }
    sodium_memzero(rec.p, rec.len);
    hetee_wbuf_free(&rec);
  }
  sodium_memzero(v, nv * sizeof *v);
  if (!rc) {
    m->jobs++;
    *items += j->batch;
    job_free(j); /* released once */
  }
  return rc;
}

int enclave_integrity_dispatch(enclave *e, uint16_t type, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  if (!e->have_keys) return hetee_error(HETEE_ERR_STATE, "no keys yet");
  switch (type) {
  case HETEE_MSG_MODEL_LOAD: return handle_model_load(e, r);
  case HETEE_MSG_JOB_START: return handle_job_start(e, r, w, items);
  case HETEE_MSG_JOB_REFRESH: return handle_job_refresh(e, r, w, items);
  case HETEE_MSG_JOB_RELEASE: return handle_job_release(e, r, w, items);
  default: return hetee_error(HETEE_ERR_PROTOCOL, "unknown message type %u", type);
  }
}

/* -------------------------------------------------------- session commands */

static int cmd_register(enclave *e, const hetee_chan *c, hetee_rbuf *m) {
  uint32_t id = hetee_rbuf_u32(m);
  uint8_t d[32];
  hetee_rbuf_copy(m, d, 32);
  if (m->err || hetee_rbuf_left(m)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed model registration");
  const enclave_policy *p = enclave_find_policy(e, id);
  if (c->role != HETEE_ROLE_MP || !p || memcmp(p->owner, c->party_pk, 32))
    return hetee_error(HETEE_ERR_AUTH, "only model %u's owner (the MP that set its policy) registers its plan", id);
  imodel *mo = find_model(id);
  if (mo) {
    for (int i = 0; i < INTEG_MAX_JOBS; i++)
      if (jobs[i].used && jobs[i].model == id) return hetee_error(HETEE_ERR_STATE, "model %u has jobs running", id);
    model_clear(mo);
  }
  for (int i = 0; i < INTEG_MAX_MODELS && !mo; i++)
    if (!models[i].used) mo = &models[i];
  if (!mo) return hetee_error(HETEE_ERR_LIMIT, "model table full");
  if (!mo->used) {
    memset(mo, 0, sizeof *mo);
    mo->used = 1;
    mo->id = id;
    mo->last_failed_stage = -1;
  }
  memcpy(mo->owner, c->party_pk, 32);
  memcpy(mo->digest, d, 32);
  return 0;
}

static int cmd_job_auth(enclave *e, const hetee_chan *c, hetee_rbuf *m) {
  uint32_t id = hetee_rbuf_u32(m), n = hetee_rbuf_u32(m);
  if (m->err || n < 1 || n > 256 || hetee_rbuf_left(m) != (size_t)n * 36)
    return hetee_error(HETEE_ERR_PROTOCOL, "malformed job authorization");
  const enclave_policy *p = enclave_find_policy(e, id);
  int named = 0;
  if (p)
    for (unsigned i = 0; i < p->n_dp; i++) named |= !memcmp(p->dp_pk[i], c->party_pk, 32);
  if (c->role != HETEE_ROLE_DP || !named)
    return hetee_error(HETEE_ERR_AUTH, "only a data provider model %u's policy names authorizes its jobs", id);
  for (uint32_t i = 0; i < n; i++) {
    iauth *a = &auths[next_auth++ % INTEG_MAX_AUTH];
    memset(a, 0, sizeof *a);
    a->used = 1;
    a->model = id;
    a->batch = hetee_rbuf_u32(m);
    hetee_rbuf_copy(m, a->digest, 32);
    memcpy(a->dp, c->party_pk, 32);
  }
  return 0;
}

void enclave_integrity_add_auth(uint32_t model, uint32_t batch, const uint8_t digest[32], const uint8_t dp[32]) {
  iauth *a = &auths[next_auth++ % INTEG_MAX_AUTH];
  a->used = 1;
  a->model = model;
  a->batch = batch;
  memcpy(a->digest, digest, 32);
  memcpy(a->dp, dp, 32);
}

static int cmd_set_budget(enclave *e, const hetee_chan *c, hetee_rbuf *m) {
  uint32_t id = hetee_rbuf_u32(m);
  uint64_t budget = hetee_rbuf_u64(m);
  if (m->err || hetee_rbuf_left(m)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed query budget");
  const enclave_policy *p = enclave_find_policy(e, id);
  imodel *mo = find_model(id);
  if (c->role != HETEE_ROLE_MP || !p || memcmp(p->owner, c->party_pk, 32) || !mo)
    return hetee_error(HETEE_ERR_AUTH, "only model %u's owner sets its query budget, after registering it", id);
  mo->budget = budget;
  return 0;
}

static int cmd_status(enclave *e, const hetee_chan *c, hetee_rbuf *m, hetee_wbuf *reply) {
  uint32_t id = hetee_rbuf_u32(m);
  if (m->err || hetee_rbuf_left(m)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed status request");
  const enclave_policy *p = enclave_find_policy(e, id);
  int allowed = p && !memcmp(p->owner, c->party_pk, 32) && c->role == HETEE_ROLE_MP;
  if (p && c->role == HETEE_ROLE_DP)
    for (unsigned i = 0; i < p->n_dp; i++) allowed |= !memcmp(p->dp_pk[i], c->party_pk, 32);
  if (!allowed) return hetee_error(HETEE_ERR_AUTH, "model %u's status goes to its owner and its data providers", id);
  imodel *mo = find_model(id);
  hetee_wbuf_u32(reply, id);
  hetee_wbuf_u8(reply, (uint8_t)(mo && mo->ready));
  hetee_wbuf_u64(reply, mo ? mo->jobs : 0);
  hetee_wbuf_u64(reply, mo ? mo->checks : 0);
  hetee_wbuf_u64(reply, mo ? mo->failures : 0);
  hetee_wbuf_u32(reply, (uint32_t)(mo ? mo->last_failed_stage : -1));
  /* the budget, and what the asking DP used of it (0 for the MP) */
  uint64_t *u = mo && c->role == HETEE_ROLE_DP ? dp_used(mo, c->party_pk) : NULL;
  hetee_wbuf_u64(reply, mo ? mo->budget : 0);
  hetee_wbuf_u64(reply, u ? *u : 0);
  return 0;
}

/* The registrations survive sealing, so that an enclave restarted from a
 * sealed state never serves a bound model's results through the free
 * RELEASE; the checks' secrets (rho, V) do not: the host binds the model
 * again (MODEL_LOAD, same digest) and new vectors are drawn. */
void enclave_integrity_export(hetee_wbuf *w) {
  uint32_t n = 0;
  for (int i = 0; i < INTEG_MAX_MODELS; i++) n += (uint32_t)models[i].used;
  hetee_wbuf_u32(w, n);
  for (int i = 0; i < INTEG_MAX_MODELS; i++)
    if (models[i].used) {
      hetee_wbuf_u32(w, models[i].id);
      hetee_wbuf_put(w, models[i].owner, 32);
      hetee_wbuf_put(w, models[i].digest, 32);
      hetee_wbuf_u64(w, models[i].budget);
      hetee_wbuf_u8(w, models[i].n_dp);
      for (unsigned k = 0; k < models[i].n_dp; k++) {
        hetee_wbuf_put(w, models[i].dp[k], 32);
        hetee_wbuf_u64(w, models[i].qused[k]);
      }
    }
}

int enclave_integrity_import(hetee_rbuf *r, const enclave_policy *policies, uint32_t np, int apply) {
  uint32_t n = hetee_rbuf_u32(r);
  if (r->err || n > INTEG_MAX_MODELS) return hetee_error(HETEE_ERR_FORMAT, "sealed model registrations");
  if (apply) {
    for (int i = 0; i < INTEG_MAX_JOBS; i++) job_free(&jobs[i]);
    for (int i = 0; i < INTEG_MAX_MODELS; i++) {
      if (models[i].used) model_clear(&models[i]);
      memset(&models[i], 0, sizeof models[i]);
    }
    memset(auths, 0, sizeof auths);
  }
  for (uint32_t i = 0; i < n; i++) {
    uint32_t id = hetee_rbuf_u32(r);
    uint8_t owner[32], digest[32];
    hetee_rbuf_copy(r, owner, 32);
    hetee_rbuf_copy(r, digest, 32);
    uint64_t budget = hetee_rbuf_u64(r);
    uint8_t ndp = hetee_rbuf_u8(r);
    if (r->err || ndp > INTEG_MAX_DP) return hetee_error(HETEE_ERR_FORMAT, "sealed model registrations truncated");
    uint8_t dps[INTEG_MAX_DP][32];
    uint64_t used[INTEG_MAX_DP];
    for (unsigned k = 0; k < ndp; k++) {
      hetee_rbuf_copy(r, dps[k], 32);
      used[k] = hetee_rbuf_u64(r);
    }
    if (r->err) return hetee_error(HETEE_ERR_FORMAT, "sealed model registrations truncated");
    int ok = 0;
    for (uint32_t k = 0; k < np; k++) ok |= policies[k].model_id == id && !memcmp(policies[k].owner, owner, 32);
    if (!ok) return hetee_error(HETEE_ERR_FORMAT, "sealed registration of model %u without its owner's policy", id);
    if (apply) {
      imodel *m = &models[i];
      m->used = 1;
      m->id = id;
      m->last_failed_stage = -1;
      memcpy(m->owner, owner, 32);
      memcpy(m->digest, digest, 32);
      m->budget = budget;
      m->n_dp = ndp;
      memcpy(m->dp, dps, (size_t)ndp * 32);
      memcpy(m->qused, used, (size_t)ndp * sizeof *used);
    }
  }
  return 0;
}

int enclave_integrity_session_cmd(enclave *e, const hetee_chan *c, uint16_t cmd, hetee_rbuf *m, hetee_wbuf *reply) {
  switch (cmd) {
  case CMD_MODEL_REGISTER: return cmd_register(e, c, m);
  case CMD_JOB_AUTH: return cmd_job_auth(e, c, m);
  case CMD_STATUS: return cmd_status(e, c, m, reply);
  case CMD_SET_BUDGET: return cmd_set_budget(e, c, m);
  default: return hetee_error(HETEE_ERR_PROTOCOL, "unknown session command %u", cmd);
  }
}

#else

void enclave_integrity_export(hetee_wbuf *w) { hetee_wbuf_u32(w, 0); }
int enclave_integrity_import(hetee_rbuf *r, const enclave_policy *policies, uint32_t np, int apply) {
  (void)policies, (void)np, (void)apply;
  return hetee_rbuf_u32(r) || r->err ? hetee_error(HETEE_ERR_UNSUPPORTED, "no CKKS layer") : 0;
}

int enclave_integrity_bound(const enclave *e, uint32_t model) {
  (void)e, (void)model;
  return 0;
}
int enclave_integrity_dispatch(enclave *e, uint16_t type, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items) {
  (void)e, (void)type, (void)r, (void)w, (void)items;
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}
int enclave_integrity_session_cmd(enclave *e, const hetee_chan *c, uint16_t cmd, hetee_rbuf *m, hetee_wbuf *reply) {
  (void)e, (void)c, (void)cmd, (void)m, (void)reply;
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}
#endif

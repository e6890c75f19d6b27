/*
 * refine_trusted.c — the trusted side of refining. The same code runs in
 * two places: inside the enclave process (src/enclave/trusted/refine.c calls
 * refine_tr_* with the enclave's secret key, behind the REFINE_* requests),
 * and in-process as the test twin (hetee_refine_trusted_new with a secret
 * key the caller holds: tests and the benchmark's reference only). A
 * trusted side made by hetee_refine_trusted_new_ops forwards every call to
 * another implementation (the enclave process, src/host/refine_calls.c).
 * It is the only code that sees plaintext activations, deltas and (in the
 * update pass) weights:
 *   forward  decrypt a layer's degree-2 outputs, keep the pre-activations a
 *            trained layer's derivative needs, apply the activation, encrypt
 *            the next layer's input (F layout) and, when the next layer
 *            trains, its input as G-layout weight polynomials
 *   loss     decrypt logits and the DP's one-hot labels, softmax - onehot
 *            (or MSE), encrypt the deltas (G input layout, T input layout)
 *   back     decrypt W^T delta, multiply by the activation derivative,
 *            encrypt the previous layer's deltas
 *   update   every `accumulate` steps: decrypt the accumulated gradient, W,
 *            the bias and the momentum, SGD, encrypt W, bias, W^T, momentum.
 * Per step the work is O(activations); the update pass is O(weights).
 * The host's products are Freivalds-checked (rchk_*): layer 0's against the
 * data provider's witness values (refine_tr_witness, once per step),
 * frozen layers' against their weights decrypted once per job
 * (refine_tr_frozen_feed), trained layers' against the kept weights.
 * Every ciphertext is checked (count, level, scale, size) before anything is
 * decrypted; decoded values are saturated at a public bound; errors name
 * only public quantities.
 */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hemat/refine_internal.h"

struct hetee_refine_trusted {
  const hetee_ckks_context *ctx;
  const hetee_ckks_secret_key *sk;
  const hetee_refine_plan *p;
  double *z[HETEE_REFINE_MAX_LAYERS]; /* pre-activations of the current step (B x m) */
  double cpu_s;
  uint64_t nenc, ndec;
  /* gradients fed in parts (refine_tr_grad_feed): values of layer l's
   * G output (m x (k+1)) and which of its ciphertexts arrived */
  double *g[HETEE_REFINE_MAX_LAYERS];
  uint8_t *g_got[HETEE_REFINE_MAX_LAYERS];
  /* weights kept between updates (refine_tr_keep_weights): W (m x k),
   * bias, momentum of each trained layer, once loaded by an update */
  int keep;
  uint8_t held[HETEE_REFINE_MAX_LAYERS];
  float *hw[HETEE_REFINE_MAX_LAYERS], *hb[HETEE_REFINE_MAX_LAYERS], *hvw[HETEE_REFINE_MAX_LAYERS],
      *hvb[HETEE_REFINE_MAX_LAYERS];
  const hetee_refine_trusted_ops *ops; /* set: calls go there (no key here) */
  void *arg;
  /* Freivalds checks of the host's products (docs/refine.md "Integrity of
   * the host's products"): per trained layer l and check c < RCHK_T,
   * secret Gaussian vectors rho (m) and sig (k + 1); once the weights are
   * known here (from l's first update on) vf = W^T rho, ws = W sig[0..k),
   * beta = rho . b and w2 = ||W||_F^2; this step's inputs x (B x k, layers
   * >= 1: the activations forward(l-1) encrypted) and deltas d (B x m);
   * the expected rho^T G sig of the steps since l's last update. */
  int failed; /* a check failed: every later call is refused */
  uint64_t nchecks, nfail;
  double chk_s; /* CPU in the checks (their share of cpu_s) */
  double *rho[HETEE_REFINE_MAX_LAYERS][2], *sig[HETEE_REFINE_MAX_LAYERS][2];
  double *vf[HETEE_REFINE_MAX_LAYERS][2], *ws[HETEE_REFINE_MAX_LAYERS][2];
  double beta[HETEE_REFINE_MAX_LAYERS][2], w2[HETEE_REFINE_MAX_LAYERS];
  double rnorm[HETEE_REFINE_MAX_LAYERS][2], snorm[HETEE_REFINE_MAX_LAYERS][2], tnorm[HETEE_REFINE_MAX_LAYERS][2];
  uint8_t have_w[HETEE_REFINE_MAX_LAYERS];
  double *x[HETEE_REFINE_MAX_LAYERS], *d[HETEE_REFINE_MAX_LAYERS];
  uint32_t xcount[HETEE_REFINE_MAX_LAYERS], dcount[HETEE_REFINE_MAX_LAYERS];
  double gexp[HETEE_REFINE_MAX_LAYERS][2], gmag[HETEE_REFINE_MAX_LAYERS][2], gvar[HETEE_REFINE_MAX_LAYERS];
  uint64_t gsamples[HETEE_REFINE_MAX_LAYERS]; /* samples whose deltas fed l's gradient since its last update */
  uint64_t nupd[HETEE_REFINE_MAX_LAYERS];     /* updates of layer l applied (the schedule's clock; sealed) */
  double *vx[HETEE_REFINE_MAX_LAYERS];        /* validation pass: layer l's input (B x k) for its F check */
  uint32_t vxcount[HETEE_REFINE_MAX_LAYERS];
  /* layer 0's input from the data provider's witness (refine_tr_witness):
   * wx waits for the next step's FORWARD 0, which moves it to x[0] */
  int need_wit;
  double *wx;
  uint32_t wit_count;
  uint8_t gunk[HETEE_REFINE_MAX_LAYERS]; /* layer 0: a step of this update had no witness (G not checked) */
  /* frozen layers' weights being fed (refine_tr_frozen_feed), then only their pull-backs */
  float *fw[HETEE_REFINE_MAX_LAYERS], *fb[HETEE_REFINE_MAX_LAYERS];
  size_t fz_next[HETEE_REFINE_MAX_LAYERS];
  uint8_t fz_loaded[HETEE_REFINE_MAX_LAYERS];
  int fz_all; /* refine_tr_load_frozen done */
};

#define RCHK_T 2
#define RCHK_KAPPA 16.0 /* tolerance in standard deviations of the noise bound (as integrity.c) */
#define RCHK_SIGMA 8.0  /* fresh secret-key encryption noise std assumed, coefficient domain (measured ~3.2) */
#define RCHK_SX (RCHK_SIGMA / REFINE_IN_SCALE) /* noise of an input ciphertext (x, deltas) */
#define RCHK_SW (RCHK_SIGMA / REFINE_W_SCALE)  /* noise of a weight polynomial (W, W^T, G's x) */
/* Public-key encryptions (the DP's layer-0 inputs and G polynomials, the
 * MP's frozen weights): the fresh noise is ModDown's rounding, c1's
 * rounding (var 1/12) times the ternary secret (~2N/3 non-zero) plus c0's,
 * std sqrt((2N/3 + 1)/12) (21 at N = 8192), assumed 2.5x larger (as
 * RCHK_SIGMA is to the measured 3.2) plus the CBD error. */
static double rchk_sigma_pk(size_t n) { return 2.5 * sqrt(((double)n * 2.0 / 3.0 + 1.0) / 12.0 + 3.24 * 3.24); }
/* noise of layer l's F input ciphertexts and of its F weight polynomials */
static double rchk_sx(const hetee_refine_trusted *t, int l) {
  return l == 0 ? rchk_sigma_pk(t->p->n) / REFINE_IN_SCALE : RCHK_SX;
}
static double rchk_sw(const hetee_refine_trusted *t, int l) {
  return l < t->p->first_train ? rchk_sigma_pk(t->p->n) / REFINE_W_SCALE : RCHK_SW;
}

/* Standard Gaussian from libsodium's randombytes (Box-Muller). */
static double rchk_gauss(void) {
  uint64_t u[2];
  randombytes_buf(u, sizeof u);
  double a = ((double)(u[0] >> 11) + 0.5) * 0x1p-53, b = (double)(u[1] >> 11) * 0x1p-53;
  sodium_memzero(u, sizeof u);
  return sqrt(-2.0 * log(a)) * cos(6.283185307179586 * b);
}

static double *rchk_vec(size_t n, int gauss, double *norm) {
  double *v = calloc(n ? n : 1, sizeof *v);
  if (v && gauss) {
    double nn = 0;
    for (size_t i = 0; i < n; i++) {
      v[i] = rchk_gauss();
      nn += v[i] * v[i];
    }
    *norm = sqrt(nn);
  }
  return v;
}

static void rchk_free(double *v, size_t n) {
  if (v) sodium_memzero(v, (n ? n : 1) * sizeof *v);
  free(v);
}

/* The check vectors of every trained layer, inputs / deltas kept for a step. */
static int rchk_init(hetee_refine_trusted *t) {
  const hetee_refine_plan *p = t->p;
  t->wx = calloc((size_t)p->cfg.batch * (size_t)p->L[0].k, sizeof(double));
  if (!t->wx) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (int l = 0; l < p->nl; l++) { /* frozen layers too: checked once their weights are loaded */
    size_t m = (size_t)p->L[l].m, k = (size_t)p->L[l].k, B = p->cfg.batch;
    for (int c = 0; c < RCHK_T; c++) {
      double dummy;
      t->rho[l][c] = rchk_vec(m, 1, &t->rnorm[l][c]);
      t->sig[l][c] = rchk_vec(k + 1, 1, &t->snorm[l][c]);
      t->vf[l][c] = rchk_vec(k, 0, &dummy);
      t->ws[l][c] = rchk_vec(m, 0, &dummy);
      if (!t->rho[l][c] || !t->sig[l][c] || !t->vf[l][c] || !t->ws[l][c]) return hetee_error(HETEE_ERR_NOMEM, "no memory");
      double nn = 0; /* norm of sig over the k inputs (the T check) */
      for (size_t j = 0; j < k; j++) nn += t->sig[l][c][j] * t->sig[l][c][j];
      t->tnorm[l][c] = sqrt(nn);
    }
    if (p->L[l].trains) t->d[l] = calloc(B * m, sizeof(double));
    t->x[l] = calloc(B * k, sizeof(double));
    if ((p->L[l].trains && !t->d[l]) || !t->x[l]) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  return 0;
}

static void rchk_wipe(hetee_refine_trusted *t) {
  const hetee_refine_plan *p = t->p;
  if (!p) return;
  for (int l = 0; l < p->nl; l++) {
    size_t m = (size_t)p->L[l].m, k = (size_t)p->L[l].k, B = p->cfg.batch;
    for (int c = 0; c < RCHK_T; c++) {
      rchk_free(t->rho[l][c], m);
      rchk_free(t->sig[l][c], k + 1);
      rchk_free(t->vf[l][c], k);
      rchk_free(t->ws[l][c], m);
    }
    rchk_free(t->d[l], B * m);
    rchk_free(t->x[l], B * k);
    if (t->fw[l]) sodium_memzero(t->fw[l], m * k * sizeof(float));
    if (t->fb[l]) sodium_memzero(t->fb[l], m * sizeof(float));
    free(t->fw[l]);
    free(t->fb[l]);
  }
  rchk_free(t->wx, (size_t)p->cfg.batch * (size_t)p->L[0].k);
  t->wx = NULL;
  sodium_memzero(t->beta, sizeof t->beta);
  sodium_memzero(t->gexp, sizeof t->gexp);
  sodium_memzero(t->gmag, sizeof t->gmag);
}

static int rchk_fail(hetee_refine_trusted *t, const char *what, int l) {
  t->failed = 1;
  t->nfail++;
  return hetee_error(HETEE_ERR_INTEGRITY, "refine: the host's %s of layer %d failed the trusted side's check (job stopped)",
                     what, l);
}

#ifdef RCHK_CALIBRATE /* -DRCHK_CALIBRATE: the largest |lhs - rhs| / tol per kind, on stderr */
#include <stdio.h>
static void rchk_calib(int kind, int l, double diff, double tol) {
  static double worst[3][HETEE_REFINE_MAX_LAYERS];
  static const char *names[3] = {"F", "T", "G"};
  double r = diff / tol;
  if (r > worst[kind][l]) {
    worst[kind][l] = r;
    fprintf(stderr, "rchk calib %s layer %d ratio %.3e (log2 %.2f) tol %.3e\n", names[kind], l, r, log2(r), tol);
  }
}
#define RCHK_CALIB(kind, l, diff, tol) rchk_calib(kind, l, diff, tol)
#else
#define RCHK_CALIB(kind, l, diff, tol) ((void)0)
#endif

static int rchk_refuse(const hetee_refine_trusted *t) {
  return t->failed ? hetee_error(HETEE_ERR_INTEGRITY, "refine: a check of the host's work failed earlier (job stopped)")
                   : 0;
}

/* *dot += a . b and *mag += sum |a_i b_i| over n entries, in order (the
 * checks' two sides and the magnitudes their rounding tolerance scales
 * with). */
static void dot_mag(const double *a, const double *b, size_t n, double *dot, double *mag) {
  double s = *dot, g = *mag;
  for (size_t i = 0; i < n; i++) {
    s += a[i] * b[i];
    g += fabs(a[i] * b[i]);
  }
  *dot = s;
  *mag = g;
}

/* F: rho . z_b = vf . x_b + beta for b < count (z: count x m), when layer
 * l trains, its weights are known here and its input is (l >= 1). Noise:
 * the input ciphertexts' (RCHK_SX) convolved with the weight polynomials
 * (||W||^2 at most) plus the weights' (RCHK_SW) convolved with the input
 * polynomials (at most the whole batch's ||x||^2). */
static double cpu_now(void);

static int rchk_forward_x(hetee_refine_trusted *t, int l, const double *z, uint32_t count, const double *x,
                          uint32_t xcount);
static int rchk_forward(hetee_refine_trusted *t, int l, const double *z, uint32_t count) {
  return rchk_forward_x(t, l, z, count, t->x[l], t->xcount[l]);
}

/* The same check with the layer's input x (B x k) given: the validation
 * pass's own activations. */
static int rchk_forward_x(hetee_refine_trusted *t, int l, const double *z, uint32_t count, const double *x,
                          uint32_t xcount) {
  const hetee_refine_layer *L = &t->p->L[l];
  /* trained layers once their weights are kept here, frozen layers once
   * loaded; layer 0's input is the data provider's witness */
  if (!t->have_w[l] || !x || xcount != count) return 0;
  double t0 = cpu_now();
  size_t m = (size_t)L->m, k = (size_t)L->k;
  double x2 = 0;
  for (size_t q = 0; q < (size_t)count * k; q++) x2 += x[q] * x[q];
  double sx = rchk_sx(t, l), sw = rchk_sw(t, l);
  double sd = sqrt(sx * sx * t->w2[l] + sw * sw * x2);
  int ok = 1;
  for (uint32_t b = 0; b < count; b++)
    for (int c = 0; c < RCHK_T; c++) {
      double lhs = 0, mag = 0, rhs = t->beta[l][c], rmag = fabs(rhs);
      dot_mag(t->rho[l][c], z + b * m, m, &lhs, &mag);
      dot_mag(t->vf[l][c], x + b * k, k, &rhs, &rmag);
      double tol = RCHK_KAPPA * t->rnorm[l][c] * sd + 0x1p-40 * (mag + rmag);
      ok &= fabs(lhs - rhs) <= tol; /* NaN fails */
      RCHK_CALIB(0, l, fabs(lhs - rhs), tol);
    }
  t->nchecks += (uint64_t)count * RCHK_T;
  t->chk_s += cpu_now() - t0;
  return ok ? 0 : rchk_fail(t, "forward product (W x + b)", l);
}

/* T: sig . u_b = ws . d_b for b < count (u: count x k), d the deltas of
 * layer l this step produced. */
static int rchk_back(hetee_refine_trusted *t, int l, const double *u, uint32_t count) {
  const hetee_refine_layer *L = &t->p->L[l];
  if (!t->have_w[l] || t->dcount[l] != count) return 0;
  double t0 = cpu_now();
  size_t m = (size_t)L->m, k = (size_t)L->k;
  const double *d = t->d[l];
  double d2 = 0;
  for (size_t q = 0; q < (size_t)count * m; q++) d2 += d[q] * d[q];
  double sd = sqrt(RCHK_SX * RCHK_SX * t->w2[l] + RCHK_SW * RCHK_SW * d2);
  int ok = 1;
  for (uint32_t b = 0; b < count; b++)
    for (int c = 0; c < RCHK_T; c++) {
      double lhs = 0, mag = 0, rhs = 0, rmag = 0;
      dot_mag(t->sig[l][c], u + b * k, k, &lhs, &mag);
      dot_mag(t->ws[l][c], d + b * m, m, &rhs, &rmag);
      double tol = RCHK_KAPPA * t->tnorm[l][c] * sd + 0x1p-40 * (mag + rmag);
      ok &= fabs(lhs - rhs) <= tol;
      RCHK_CALIB(1, l, fabs(lhs - rhs), tol);
    }
  t->nchecks += (uint64_t)count * RCHK_T;
  t->chk_s += cpu_now() - t0;
  return ok ? 0 : rchk_fail(t, "back product (W^T delta)", l);
}

/* The deltas d (B x m, zero beyond count) of trained layer l this step:
 * kept for the T check, and their gradient's expected rho^T G sig added
 * (layers >= 1, whose input x this side produced; the G weight polynomials
 * hold x as floats and a constant-1 feature). */
static void rchk_deltas(hetee_refine_trusted *t, int l, const double *d, uint32_t count) {
  const hetee_refine_layer *L = &t->p->L[l];
  if (!L->trains) return;
  double t0 = cpu_now();
  size_t m = (size_t)L->m, k = (size_t)L->k;
  memcpy(t->d[l], d, (size_t)t->p->cfg.batch * m * sizeof *d);
  t->dcount[l] = count;
  t->gsamples[l] += count;
  if (t->xcount[l] != count) { /* layer 0 without a witness (the in-process twin): G not checked this update */
    if (l == 0) t->gunk[0] = 1;
    t->chk_s += cpu_now() - t0;
    return;
  }
  const double *x = t->x[l];
  double var = 0, gsw = l == 0 ? rchk_sigma_pk(t->p->n) / REFINE_W_SCALE : RCHK_SW; /* G's x polynomials: the DP's for layer 0 */
  for (uint32_t b = 0; b < count; b++) {
    double x2 = 1, d2 = 0; /* the constant-1 feature */
    for (size_t j = 0; j < k; j++) x2 += (double)(float)x[b * k + j] * (double)(float)x[b * k + j];
    for (size_t i = 0; i < m; i++) d2 += d[b * m + i] * d[b * m + i];
    var += RCHK_SX * RCHK_SX * x2 + gsw * gsw * d2;
    for (int c = 0; c < RCHK_T; c++) {
      double rd = 0, xs = t->sig[l][c][k];
      for (size_t i = 0; i < m; i++) rd += t->rho[l][c][i] * d[b * m + i];
      for (size_t j = 0; j < k; j++) xs += t->sig[l][c][j] * (double)(float)x[b * k + j];
      t->gexp[l][c] += rd * xs;
      t->gmag[l][c] += fabs(rd * xs);
    }
  }
  t->gvar[l] += var;
  t->chk_s += cpu_now() - t0;
}

/* G: rho^T g sig against the expected sum (g: m x (k+1)), before any
 * update; layer 0 when every step of the update had the DP's witness. */
static int rchk_grad(hetee_refine_trusted *t, int l, const double *g) {
  const hetee_refine_layer *L = &t->p->L[l];
  size_t m = (size_t)L->m, k1 = (size_t)L->k + 1;
  int ok = 1;
  double t0 = cpu_now();
  if (!t->gunk[l]) {
    double sd = sqrt(t->gvar[l]);
    for (int c = 0; c < RCHK_T; c++) {
      double lhs = 0, mag = 0;
      for (size_t i = 0; i < m; i++) {
        double r = 0;
        for (size_t j = 0; j < k1; j++) r += g[i * k1 + j] * t->sig[l][c][j];
        lhs += t->rho[l][c][i] * r;
        mag += fabs(t->rho[l][c][i] * r);
      }
      double tol = RCHK_KAPPA * t->rnorm[l][c] * t->snorm[l][c] * sd + 0x1p-40 * (mag + t->gmag[l][c]);
      ok &= fabs(lhs - t->gexp[l][c]) <= tol;
      RCHK_CALIB(2, l, fabs(lhs - t->gexp[l][c]), tol);
    }
    t->nchecks += RCHK_T;
  }
  for (int c = 0; c < RCHK_T; c++) t->gexp[l][c] = t->gmag[l][c] = 0;
  t->gvar[l] = 0;
  t->gsamples[l] = 0;
  t->gunk[l] = 0;
  t->chk_s += cpu_now() - t0;
  return ok ? 0 : rchk_fail(t, "gradient product (sum delta x^T)", l);
}

/* After an update: the new weights' pull-backs. */
static void rchk_weights(hetee_refine_trusted *t, int l, const float *w, const float *b) {
  const hetee_refine_layer *L = &t->p->L[l];
  size_t m = (size_t)L->m, k = (size_t)L->k;
  double t0 = cpu_now(), w2 = 0;
  for (size_t q = 0; q < m * k; q++) w2 += (double)w[q] * (double)w[q];
  t->w2[l] = w2;
  for (int c = 0; c < RCHK_T; c++) {
    double *vf = t->vf[l][c], *ws = t->ws[l][c];
    const double *rho = t->rho[l][c], *sig = t->sig[l][c];
    memset(vf, 0, k * sizeof *vf);
    double be = 0;
    for (size_t i = 0; i < m; i++) {
      double s = 0;
      for (size_t j = 0; j < k; j++) {
        vf[j] += rho[i] * (double)w[i * k + j];
        s += (double)w[i * k + j] * sig[j];
      }
      ws[i] = s;
      be += rho[i] * (double)b[i];
    }
    t->beta[l][c] = be;
  }
  t->have_w[l] = 1;
  t->chk_s += cpu_now() - t0;
}

void refine_tr_check_counts(const hetee_refine_trusted *t, uint64_t *checks, uint64_t *failures) {
  *checks = t && !t->ops ? t->nchecks : 0;
  *failures = t && !t->ops ? t->nfail : 0;
}

double refine_tr_check_cpu_s(const hetee_refine_trusted *t) { return t && !t->ops ? t->chk_s : 0; }

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int hetee_refine_trusted_new(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                             const hetee_refine_plan *p, hetee_refine_trusted **out) {
  if (!ctx || !sk || !p || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (hetee_ckks_context_n(ctx) != p->n) return hetee_error(HETEE_ERR_PARAMS, "ring degree is not the plan's");
  hetee_refine_trusted *t = calloc(1, sizeof *t);
  if (!t) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  t->ctx = ctx;
  t->sk = sk;
  t->p = p;
  for (int l = 0; l < p->nl; l++)
    if (p->L[l].need_z) {
      t->z[l] = calloc((size_t)p->cfg.batch * (size_t)p->L[l].m, sizeof(double));
      if (!t->z[l]) {
        hetee_refine_trusted_free(t);
        return hetee_error(HETEE_ERR_NOMEM, "no memory");
      }
    }
  int rc = rchk_init(t);
  if (rc) {
    hetee_refine_trusted_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

int hetee_refine_trusted_new_ops(const hetee_refine_plan *p, const hetee_refine_trusted_ops *ops, void *arg,
                                 hetee_refine_trusted **out) {
  if (!p || !ops || !out || !ops->forward || !ops->loss || !ops->back || !ops->update)
    return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_refine_trusted *t = calloc(1, sizeof *t);
  if (!t) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  t->p = p;
  t->ops = ops;
  t->arg = arg;
  *out = t;
  return 0;
}

void hetee_refine_trusted_free(hetee_refine_trusted *t) {
  if (!t) return;
  if (t->ops) { /* nothing of its own: t->p may belong to arg */
    if (t->ops->free) t->ops->free(t->arg);
    free(t);
    return;
  }
  for (int l = 0; l < HETEE_REFINE_MAX_LAYERS; l++) {
    if (t->z[l]) sodium_memzero(t->z[l], (size_t)t->p->cfg.batch * (size_t)t->p->L[l].m * sizeof(double));
    free(t->z[l]);
    if (t->g[l]) sodium_memzero(t->g[l], (size_t)t->p->L[l].m * (size_t)(t->p->L[l].k + 1) * sizeof(double));
    free(t->g[l]);
    free(t->g_got[l]);
    size_t mk = t->p ? (size_t)t->p->L[l].m * (size_t)t->p->L[l].k : 0, m = t->p ? (size_t)t->p->L[l].m : 0;
    if (t->hw[l]) sodium_memzero(t->hw[l], mk * sizeof(float));
    if (t->hvw[l]) sodium_memzero(t->hvw[l], mk * sizeof(float));
    if (t->hb[l]) sodium_memzero(t->hb[l], m * sizeof(float));
    if (t->hvb[l]) sodium_memzero(t->hvb[l], m * sizeof(float));
    free(t->hw[l]);
    free(t->hb[l]);
    free(t->hvw[l]);
    free(t->hvb[l]);
  }
  for (int l = 0; t->p && l < t->p->nl; l++)
    if (t->vx[l]) {
      sodium_memzero(t->vx[l], (size_t)t->p->cfg.batch * (size_t)t->p->L[l].k * sizeof(double));
      free(t->vx[l]);
    }
  rchk_wipe(t);
  free(t);
}

double hetee_refine_trusted_cpu_s(const hetee_refine_trusted *t) {
  if (t && t->ops) return t->ops->cpu_s ? t->ops->cpu_s(t->arg) : 0;
  return t ? t->cpu_s : 0;
}

void *refine_tr_ops_arg(const hetee_refine_trusted *t) { return t && t->ops ? t->arg : NULL; }

void refine_tr_counts(const hetee_refine_trusted *t, uint64_t *enc, uint64_t *dec) {
  if (t->ops) {
    *enc = *dec = 0;
    if (t->ops->counts) t->ops->counts(t->arg, enc, dec);
    return;
  }
  *enc = t->nenc;
  *dec = t->ndec;
}

/* Public checks of host-supplied ciphertexts, before any decryption. */
static int check_cts(const hetee_refine_trusted *t, ct_t *const *c, size_t n, double scale, int deg2_ok,
                     const char *what) {
  if (!c) return hetee_error(HETEE_ERR_INVALID_ARG, "%s: missing", what);
  for (size_t i = 0; i < n; i++) {
    if (!c[i]) return hetee_error(HETEE_ERR_INVALID_ARG, "%s: ciphertext %zu missing", what, i);
    if (hetee_ckks_ciphertext_level(c[i]) != REFINE_LEVEL)
      return hetee_error(HETEE_ERR_LEVEL, "%s: ciphertext %zu not at level %d", what, i, REFINE_LEVEL);
    if (!(fabs(hetee_ckks_ciphertext_scale(c[i]) / scale - 1.0) < 0x1p-20))
      return hetee_error(HETEE_ERR_SCALE, "%s: ciphertext %zu not at scale 2^%.0f", what, i, log2(scale));
    int sz = hetee_ckks_ciphertext_size(c[i]);
    if (sz != 2 && !(deg2_ok && sz == 3))
      return hetee_error(HETEE_ERR_FORM, "%s: ciphertext %zu of size %d", what, i, sz);
  }
  (void)t;
  return 0;
}

/* out[k] = value at global position pos[k] (decoded at the declared scale,
 * saturated at +-REFINE_VMAX); each ciphertext decrypted once. */
static int gather(hetee_refine_trusted *t, ct_t *const *c, size_t ncts, double scale, const uint64_t *pos, size_t n,
                  double *out) {
  size_t N = t->p->n;
  uint32_t *start = calloc(ncts + 1, sizeof *start), *order = malloc((n ? n : 1) * sizeof *order);
  uint32_t *fill = calloc(ncts, sizeof *fill), *idx = malloc((n ? n : 1) * sizeof *idx);
  double *tmp = malloc((n ? n : 1) * sizeof *tmp);
  hetee_ckks_plaintext *pt = NULL;
  int rc = 0;
  if (!start || !order || !fill || !idx || !tmp || hetee_ckks_plaintext_new(t->ctx, &pt)) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto out;
  }
  for (size_t k = 0; k < n; k++) {
    if (pos[k] >= (uint64_t)ncts * N) {
      rc = hetee_error(HETEE_ERR_INTERNAL, "position beyond the ciphertexts");
      goto out;
    }
    start[pos[k] / N + 1]++;
  }
  for (size_t i = 0; i < ncts; i++) start[i + 1] += start[i];
  for (size_t k = 0; k < n; k++) {
    size_t i = (size_t)(pos[k] / N);
    order[start[i] + fill[i]++] = (uint32_t)k;
  }
  for (size_t i = 0; i < ncts && !rc; i++) {
    uint32_t cnt = start[i + 1] - start[i];
    if (!cnt) continue;
    for (uint32_t q = 0; q < cnt; q++) idx[q] = (uint32_t)(pos[order[start[i] + q]] % N);
    rc = hetee_ckks_decrypt_coeffs(t->ctx, t->sk, c[i], scale, idx, cnt, tmp);
    t->ndec++;
    for (uint32_t q = 0; q < cnt && !rc; q++) {
      double v = tmp[q];
      v = v > REFINE_VMAX ? REFINE_VMAX : v;
      v = v < -REFINE_VMAX ? -REFINE_VMAX : v;
      out[order[start[i] + q]] = v;
    }
  }
out:
  if (tmp) sodium_memzero(tmp, (n ? n : 1) * sizeof *tmp);
  hetee_ckks_plaintext_free(pt);
  free(start);
  free(order);
  free(fill);
  free(idx);
  free(tmp);
  return rc;
}

static refine_key tkey(hetee_refine_trusted *t) {
  refine_key k = {t->ctx, t->sk, NULL, &t->nenc};
  return k;
}

/* Deltas of layer l (B x m, zero beyond count) into G[l]'s input and, when
 * layer l has a W^T stage, T[l]'s input. */
static int emit_deltas(hetee_refine_trusted *t, int l, const double *d, ct_t **dG, ct_t **dT) {
  const hetee_refine_layer *L = &t->p->L[l];
  uint32_t B = t->p->cfg.batch;
  size_t n = (size_t)B * (size_t)L->m;
  uint64_t *pos = calloc(n, sizeof *pos);
  if (!pos) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (uint32_t b = 0; b < B; b++)
    for (int i = 0; i < L->m; i++) pos[(size_t)b * (size_t)L->m + (size_t)i] = hetee_hemat_in_pos(&L->G, 0, (int)b, 0, i);
  refine_key k = tkey(t);
  int rc = refine_enc_scatter(&k, L->G.n_in_cts, pos, d, n, REFINE_IN_SCALE, dG);
  if (!rc && L->has_back) {
    for (uint32_t b = 0; b < B; b++)
      for (int i = 0; i < L->m; i++) pos[(size_t)b * (size_t)L->m + (size_t)i] = hetee_hemat_in_pos(&L->T, b, i, 0, 0);
    rc = refine_enc_scatter(&k, L->T.n_in_cts, pos, d, n, REFINE_IN_SCALE, dT);
  }
  free(pos);
  return rc;
}

static int check_count(const hetee_refine_trusted *t, uint32_t count) {
  if (count < 1 || count > t->p->cfg.batch) return hetee_error(HETEE_ERR_INVALID_ARG, "sample count %u outside [1, %u]", count, t->p->cfg.batch);
  return 0;
}

/* ---- what the training and the validation pass share ---- */

/* Before a forward of layer l (training's refresh or validation's, `what`
 * names it): the layer, the job's state, the count, the outputs' format. */
static int check_forward_in(const hetee_refine_trusted *t, int l, ct_t *const *out, uint32_t count, const char *what) {
  const hetee_refine_plan *p = t->p;
  if (l < 0 || l >= p->nl - 1) return hetee_error(HETEE_ERR_INVALID_ARG, "%s of layer %d", what, l);
  int rc = rchk_refuse(t);
  if (!rc) rc = check_count(t, count);
  if (!rc) rc = check_cts(t, out, p->L[l].F.n_out_cts, REFINE_OUT_SCALE, 1, "layer outputs");
  return rc;
}

/* Before a loss (training's or validation's): the job's state, the count,
 * the logits' and the labels' format. */
static int check_loss_in(const hetee_refine_trusted *t, ct_t *const *logits, ct_t *const *lab1, uint32_t count) {
  int rc = rchk_refuse(t);
  if (!rc) rc = check_count(t, count);
  if (!rc) rc = check_cts(t, logits, t->p->L[t->p->nl - 1].F.n_out_cts, REFINE_OUT_SCALE, 1, "logits");
  if (!rc) rc = check_cts(t, lab1, 1, REFINE_IN_SCALE, 0, "labels");
  return rc;
}

/* The first `count` rows (m values each) of layer L's F outputs, decrypted
 * into h (pos: room for count x m positions). */
static int gather_rows(hetee_refine_trusted *t, const hetee_refine_layer *L, ct_t *const *out, uint32_t count, size_t m,
                       uint64_t *pos, double *h) {
  for (uint32_t b = 0; b < count; b++)
    for (size_t i = 0; i < m; i++) pos[b * m + i] = hetee_hemat_out_pos(&L->F, b, (int)i, 0, 0);
  return gather(t, out, L->F.n_out_cts, REFINE_OUT_SCALE, pos, (size_t)count * m, h);
}

/* h (B rows of m, zero beyond the count) encrypted as layer N1's F input
 * (pos: room for B x m positions). */
static int scatter_next(hetee_refine_trusted *t, const hetee_refine_layer *N1, uint32_t B, size_t m, uint64_t *pos,
                        const double *h, ct_t **next_in) {
  for (uint32_t b = 0; b < B; b++)
    for (size_t i = 0; i < m; i++) pos[b * m + i] = hetee_hemat_in_pos(&N1->F, b, (int)i, 0, 0);
  refine_key k = tkey(t);
  return refine_enc_scatter(&k, N1->F.n_in_cts, pos, h, (size_t)B * m, REFINE_IN_SCALE, next_in);
}

/* dst (n values) = the first `used` values of h, zeros after. */
static void keep_rows(double *dst, const double *h, size_t n, size_t used) {
  memset(dst, 0, n * sizeof(double));
  memcpy(dst, h, used * sizeof(double));
}

/* A one-hot label row's class: its largest entry (refine_argmax). */
static int label_of(const double *y, int c) { return refine_argmax(y, c); }

/* The start of a step (FORWARD 0, or LOSS of a one-layer model): layer
 * 0's input for the checks is the witness handed in for this step, which
 * is used once; without one (or for another count) an enclave job refuses
 * the step. */
static int take_witness(hetee_refine_trusted *t, uint32_t count) {
  uint32_t w = t->wit_count;
  size_t n = (size_t)t->p->cfg.batch * (size_t)t->p->L[0].k;
  t->wit_count = 0;
  t->xcount[0] = 0;
  if (w && w == count) {
    memcpy(t->x[0], t->wx, n * sizeof(double));
    memset(t->wx, 0, n * sizeof(double));
    t->xcount[0] = count;
    return 0;
  }
  if (!t->need_wit) return 0;
  return w ? hetee_error(HETEE_ERR_AUTH, "the data provider's witness is for %u samples, the step has %u", w, count)
           : hetee_error(HETEE_ERR_AUTH, "a step without the data provider's witness of its batch");
}

int refine_tr_witness(hetee_refine_trusted *t, const double *x, uint32_t count) {
  if (t->ops) return hetee_error(HETEE_ERR_UNSUPPORTED, "witnesses go through the enclave");
  int rc = rchk_refuse(t);
  if (!rc) rc = check_count(t, count);
  if (rc) return rc;
  size_t n = (size_t)t->p->cfg.batch * (size_t)t->p->L[0].k;
  keep_rows(t->wx, x, n, (size_t)count * (size_t)t->p->L[0].k);
  t->wit_count = count;
  return 0;
}

void refine_tr_require_witness(hetee_refine_trusted *t) {
  if (t && !t->ops) t->need_wit = 1;
}

void refine_tr_stop(hetee_refine_trusted *t) {
  if (t && !t->ops) t->failed = 1;
}

int refine_tr_pass_witness(hetee_refine_trusted *t, const hetee_refine_batch *b) {
  refine_batch_wit w;
  if (!refine_batch_witness(b, &w)) return 0; /* an enclave job then refuses the step */
  return refine_tr_send_witness(t, hetee_refine_batch_count(b), w.batch_no, w.dp, w.sig, w.sealed, w.len);
}

int refine_tr_send_witness(hetee_refine_trusted *t, uint32_t count, uint64_t batch_no, const uint8_t dp[32],
                           const uint8_t sig[64], const uint8_t *sealed, size_t len) {
  if (!t->ops || !t->ops->witness) return 0; /* the twin has no release key */
  return t->ops->witness(t->arg, count, batch_no, dp, sig, sealed, len);
}

int refine_tr_send_frozen(hetee_refine_trusted *t, int l, ct_t *const *W, ct_t *const *bias) {
  if (t->ops) return t->ops->frozen ? t->ops->frozen(t->arg, l, W, bias) : 0;
  if (l < 0 || l >= t->p->first_train) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %d is not frozen", l);
  if (t->fz_loaded[l]) return 0;
  const hetee_refine_layer *L = &t->p->L[l];
  int rc = refine_tr_frozen_feed(t, l, 0, W, L->F.n_w_cts);
  if (!rc) rc = refine_tr_frozen_feed(t, l, L->F.n_w_cts, bias, (size_t)L->F.nmb);
  return rc;
}

/* ---- frozen layers: decrypted once per job, then only their pull-backs ---- */
int refine_tr_frozen_feed(hetee_refine_trusted *t, int l, size_t first, ct_t *const *c, size_t n) {
  if (t->ops) return hetee_error(HETEE_ERR_UNSUPPORTED, "frozen layers go through the enclave");
  const hetee_refine_plan *p = t->p;
  if (l < 0 || l >= p->first_train) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %d is not frozen", l);
  const hetee_refine_layer *L = &p->L[l];
  size_t N = p->n, nw = L->F.n_w_cts, nb = (size_t)L->F.nmb, total = nw + nb, m = (size_t)L->m, k = (size_t)L->k;
  if (t->fz_loaded[l]) return hetee_error(HETEE_ERR_STATE, "frozen layer %d is loaded already", l);
  if (n < 1 || first != t->fz_next[l] || n > total - first)
    return hetee_error(HETEE_ERR_SHAPE, "frozen layer %d: ciphertexts %zu..%zu, expected from %zu of %zu", l, first,
                       first + n, t->fz_next[l], total);
  double t0 = cpu_now();
  int rc = rchk_refuse(t);
  /* weights [first, min(first+n, nw)), bias [max(first, nw), first+n) */
  size_t w0 = first, w1 = first + n < nw ? first + n : nw, b0 = first > nw ? first : nw, b1 = first + n;
  if (!rc && w1 > w0) rc = check_cts(t, c, w1 - w0, REFINE_W_SCALE, 0, "frozen weights");
  if (!rc && b1 > b0) rc = check_cts(t, c + (b0 - first), b1 - b0, REFINE_OUT_SCALE, 0, "frozen bias");
  if (rc) return rc;
  if (!t->fw[l]) {
    t->fw[l] = calloc(m * k + 1, sizeof(float));
    t->fb[l] = calloc(m, sizeof(float));
    if (!t->fw[l] || !t->fb[l]) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  size_t nv = m * k > m ? m * k : m;
  uint64_t *pos = calloc(nv, sizeof *pos);
  uint32_t *idx = malloc(nv * sizeof *idx);
  double *v = calloc(nv, sizeof *v);
  size_t cnt = 0;
  if (!pos || !idx || !v) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc && w1 > w0 && pos && idx && v) { /* the weights these ciphertexts hold (public positions) */
    for (size_t i = 0; i < m; i++)
      for (size_t j = 0; j < k; j++) {
        uint64_t q = refine_w_pos(&L->F, (int)i, (int)j);
        if (q / N >= w0 && q / N < w1) {
          pos[cnt] = q - (uint64_t)w0 * N;
          idx[cnt++] = (uint32_t)(i * k + j);
        }
      }
    rc = gather(t, c, w1 - w0, REFINE_W_SCALE, pos, cnt, v);
    for (size_t q = 0; q < cnt && !rc; q++) t->fw[l][idx[q]] = (float)v[q];
  }
  if (!rc && b1 > b0 && pos && idx && v) {
    cnt = 0;
    for (size_t i = 0; i < m; i++) {
      uint64_t q = hetee_hemat_out_pos(&L->F, 0, (int)i, 0, 0);
      if (q / N >= b0 - nw && q / N < b1 - nw) {
        pos[cnt] = q - (uint64_t)(b0 - nw) * N;
        idx[cnt++] = (uint32_t)i;
      }
    }
    rc = gather(t, c + (b0 - first), b1 - b0, REFINE_OUT_SCALE, pos, cnt, v);
    for (size_t q = 0; q < cnt && !rc; q++) t->fb[l][idx[q]] = (float)v[q];
  }
  if (v) sodium_memzero(v, nv * sizeof *v);
  free(pos);
  free(idx);
  free(v);
  if (!rc) t->fz_next[l] = first + n;
  if (!rc && t->fz_next[l] == total) { /* complete: the pull-backs, then the values go */
    rchk_weights(t, l, t->fw[l], t->fb[l]);
    t->fz_loaded[l] = 1;
  }
  if (rc || t->fz_loaded[l]) {
    sodium_memzero(t->fw[l], (m * k + 1) * sizeof(float));
    sodium_memzero(t->fb[l], m * sizeof(float));
    free(t->fw[l]);
    free(t->fb[l]);
    t->fw[l] = t->fb[l] = NULL;
    if (rc) t->fz_next[l] = 0;
  }
  t->cpu_s += cpu_now() - t0;
  return rc;
}

int refine_tr_frozen_loaded(const hetee_refine_trusted *t, int l) {
  return t && !t->ops && l >= 0 && l < HETEE_REFINE_MAX_LAYERS && t->fz_loaded[l];
}

int refine_tr_load_frozen(hetee_refine_trusted *t, const hetee_refine_state *s) {
  if (t->fz_all) return 0;
  const hetee_refine_plan *p = t->p;
  int rc = 0;
  for (int l = 0; l < p->first_train && !rc; l++) {
    ct_t *const *W, *const *B, *const *V;
    size_t nv = 0;
    refine_state_layer(s, l, &W, &B, &V, &nv);
    if (!W || !B) return hetee_error(HETEE_ERR_STATE, "the state has no frozen layer %d", l);
    rc = refine_tr_send_frozen(t, l, W, B);
  }
  /* then the trained layers' weights: their F / T checks from the first step */
  for (int l = p->first_train; l < p->nl && !rc; l++) {
    ct_t *const *W, *const *B, *const *V;
    size_t nv = 0;
    refine_state_layer(s, l, &W, &B, &V, &nv);
    if (!W || !B) return hetee_error(HETEE_ERR_STATE, "the state has no layer %d", l);
    rc = refine_tr_init_weights(t, l, W, B, V);
  }
  if (!rc) t->fz_all = 1;
  return rc;
}

int refine_tr_forward(hetee_refine_trusted *t, int l, ct_t *const *out, uint32_t count, ct_t **next_in, ct_t **next_gw) {
  if (t->ops) return t->ops->forward(t->arg, l, out, count, next_in, next_gw);
  double t0 = cpu_now();
  const hetee_refine_plan *p = t->p;
  int rc = check_forward_in(t, l, out, count, "forward refresh");
  if (rc) return rc;
  const hetee_refine_layer *L = &p->L[l], *N1 = &p->L[l + 1];
  uint32_t B = p->cfg.batch;
  size_t m = (size_t)L->m, n = (size_t)B * m;
  uint64_t *pos = calloc(n, sizeof *pos);
  double *h = calloc(n, sizeof *h);
  float *xw = NULL;
  if (!pos || !h) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto done;
  }
  if (l == 0) rc = take_witness(t, count); /* a new step: layer 0's input */
  if (!rc) rc = gather_rows(t, L, out, count, m, pos, h);
  if (!rc) rc = rchk_forward(t, l, h, count); /* before anything is refreshed */
  if (rc) goto done;
  if (L->need_z) keep_rows(t->z[l], h, n, (size_t)count * m);
  for (size_t q = 0; q < (size_t)count * m; q++) h[q] = hetee_refine_act_f(L->act, h[q]);
  if (t->x[l + 1]) { /* layer l+1's input, for its F and G checks */
    keep_rows(t->x[l + 1], h, n, (size_t)count * m);
    t->xcount[l + 1] = count;
  }
  rc = scatter_next(t, N1, B, m, pos, h, next_in);
  refine_key k = tkey(t);
  if (!rc && N1->trains) {
    xw = calloc((m + 1) * B, sizeof *xw);
    if (!xw) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      goto done;
    }
    for (uint32_t b = 0; b < count; b++) {
      for (size_t j = 0; j < m; j++) xw[j * B + b] = (float)h[b * m + j];
      xw[m * B + b] = 1.0f;
    }
    rc = refine_enc_weights(&k, &N1->G, xw, next_gw);
  }
done:
  if (h) sodium_memzero(h, n * sizeof *h);
  if (xw) sodium_memzero(xw, (m + 1) * B * sizeof *xw);
  free(pos);
  free(h);
  free(xw);
  t->cpu_s += cpu_now() - t0;
  return rc;
}

int refine_tr_loss(hetee_refine_trusted *t, ct_t *const *logits, const ct_t *labels, uint32_t count, ct_t **dG,
                   ct_t **dT) {
  if (t->ops) return t->ops->loss(t->arg, logits, labels, count, dG, dT);
  double t0 = cpu_now();
  const hetee_refine_plan *p = t->p;
  int l = p->nl - 1, c = p->classes;
  const hetee_refine_layer *L = &p->L[l];
  ct_t *lab1[1] = {(ct_t *)labels};
  int rc = check_loss_in(t, logits, lab1, count);
  if (rc) return rc;
  uint32_t B = p->cfg.batch;
  size_t n = (size_t)B * (size_t)c, nc = (size_t)count * (size_t)c;
  uint64_t *pos = calloc(n, sizeof *pos);
  double *z = calloc(n, sizeof *z), *y = calloc(n, sizeof *y), *d = calloc(n, sizeof *d);
  if (!pos || !z || !y || !d) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto done;
  }
  if (l == 0) rc = take_witness(t, count); /* a one-layer model: the step starts here */
  if (!rc) rc = gather_rows(t, L, logits, count, (size_t)c, pos, z);
  for (size_t q = 0; q < nc; q++) pos[q] = q;
  if (!rc) rc = rchk_forward(t, l, z, count); /* before anything is refreshed */
  if (!rc) rc = gather(t, lab1, 1, REFINE_IN_SCALE, pos, nc, y);
  if (rc) goto done;
  for (uint32_t b = 0; b < count; b++) {
    int lab = label_of(y + (size_t)b * (size_t)c, c);
    hetee_refine_loss_grad(p->cfg.loss, z + (size_t)b * (size_t)c, c, lab, d + (size_t)b * (size_t)c);
  }
  rchk_deltas(t, l, d, count);
  rc = emit_deltas(t, l, d, dG, dT);
done:
  if (z) sodium_memzero(z, n * sizeof *z);
  if (y) sodium_memzero(y, n * sizeof *y);
  if (d) sodium_memzero(d, n * sizeof *d);
  free(pos);
  free(z);
  free(y);
  free(d);
  t->cpu_s += cpu_now() - t0;
  return rc;
}

int refine_tr_back(hetee_refine_trusted *t, int l, ct_t *const *u, uint32_t count, ct_t **dG, ct_t **dT) {
  if (t->ops) return t->ops->back(t->arg, l, u, count, dG, dT);
  double t0 = cpu_now();
  const hetee_refine_plan *p = t->p;
  if (l < 1 || l >= p->nl || !p->L[l].has_back) return hetee_error(HETEE_ERR_INVALID_ARG, "no W^T stage at layer %d", l);
  const hetee_refine_layer *L = &p->L[l], *P = &p->L[l - 1];
  int rc = rchk_refuse(t);
  if (!rc) rc = check_count(t, count);
  if (!rc) rc = check_cts(t, u, L->T.n_out_cts, REFINE_OUT_SCALE, 1, "W^T delta");
  if (rc) return rc;
  uint32_t B = p->cfg.batch;
  size_t k = (size_t)L->k, n = (size_t)B * k;
  uint64_t *pos = calloc(n, sizeof *pos);
  double *d = calloc(n, sizeof *d);
  if (!pos || !d) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto done;
  }
  for (uint32_t b = 0; b < count; b++)
    for (size_t j = 0; j < k; j++) pos[b * k + j] = hetee_hemat_out_pos(&L->T, b, (int)j, 0, 0);
  rc = gather(t, u, L->T.n_out_cts, REFINE_OUT_SCALE, pos, (size_t)count * k, d);
  if (!rc) rc = rchk_back(t, l, d, count); /* before anything is refreshed */
  if (rc) goto done;
  for (size_t q = 0; q < (size_t)count * k; q++) d[q] *= hetee_refine_act_d(P->act, t->z[l - 1][q]);
  rchk_deltas(t, l - 1, d, count);
  rc = emit_deltas(t, l - 1, d, dG, dT);
done:
  if (d) sodium_memzero(d, n * sizeof *d);
  free(pos);
  free(d);
  t->cpu_s += cpu_now() - t0;
  return rc;
}

/* Layer l's W (F layout), bias and momentum (compact layout) decrypted into
 * wf (m x k), bf (m), vw (m x k), vb (m) (momentum 0 without momentum); pos,
 * wv, vv: scratch of m x (k + 1). The ciphertexts were checked (check_cts). */
static int decrypt_weights(hetee_refine_trusted *t, int l, ct_t *const *W, ct_t *const *bias, ct_t *const *V,
                           uint64_t *pos, double *wv, double *vv, float *wf, float *bf, float *vw, float *vb) {
  const hetee_refine_plan *p = t->p;
  const hetee_refine_layer *L = &p->L[l];
  int m = L->m, k = L->k, mom = p->cfg.momentum > 0;
  size_t nv = (size_t)m * (size_t)(k + 1), nvc = refine_compact_cts(nv, p->n);
  /* weights (index i*(k+1)+j) and bias (j = k) */
  for (int i = 0; i < m; i++) {
    for (int j = 0; j < k; j++) pos[(size_t)i * (size_t)k + (size_t)j] = refine_w_pos(&L->F, i, j);
  }
  int rc = gather(t, W, L->F.n_w_cts, REFINE_W_SCALE, pos, (size_t)m * (size_t)k, wv);
  for (int i = 0; i < m && !rc; i++) pos[i] = hetee_hemat_out_pos(&L->F, 0, i, 0, 0);
  if (!rc) rc = gather(t, bias, (size_t)L->F.nmb, REFINE_OUT_SCALE, pos, (size_t)m, vv);
  if (rc) return rc;
  for (size_t q = 0; q < (size_t)m * (size_t)k; q++) wf[q] = (float)wv[q];
  for (int i = 0; i < m; i++) bf[i] = (float)vv[i];
  if (mom) {
    for (size_t q = 0; q < nv; q++) pos[q] = q;
    rc = gather(t, V, nvc, HETEE_REFINE_MOM_SCALE, pos, nv, vv);
    if (rc) return rc;
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < k; j++) vw[(size_t)i * (size_t)k + (size_t)j] = (float)vv[(size_t)i * (size_t)(k + 1) + (size_t)j];
      vb[i] = (float)vv[(size_t)i * (size_t)(k + 1) + (size_t)k];
    }
  }
  return 0;
}

/* The public checks of a layer's (W, bias, momentum) ciphertexts. */
static int check_weights_in(const hetee_refine_trusted *t, int l, ct_t *const *W, ct_t *const *bias, ct_t *const *V) {
  const hetee_refine_layer *L = &t->p->L[l];
  size_t nvc = refine_compact_cts((size_t)L->m * (size_t)(L->k + 1), t->p->n);
  int rc = check_cts(t, W, L->F.n_w_cts, REFINE_W_SCALE, 0, "weights");
  if (!rc) rc = check_cts(t, bias, (size_t)L->F.nmb, REFINE_OUT_SCALE, 0, "bias");
  if (!rc && t->p->cfg.momentum > 0) rc = check_cts(t, V, nvc, HETEE_REFINE_MOM_SCALE, 0, "momentum");
  return rc;
}

/* Kept-weight buffers of layer l (m x (k + 1) floats, as refine_tr_restore). */
static int alloc_kept(hetee_refine_trusted *t, int l) {
  if (t->hw[l]) return 0;
  size_t m = (size_t)t->p->L[l].m, nv = m * (size_t)(t->p->L[l].k + 1);
  t->hw[l] = calloc(nv, sizeof(float));
  t->hvw[l] = calloc(nv, sizeof(float));
  t->hb[l] = calloc(m, sizeof(float));
  t->hvb[l] = calloc(m, sizeof(float));
  if (!t->hw[l] || !t->hvw[l] || !t->hb[l] || !t->hvb[l]) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  return 0;
}

int refine_tr_init_weights(hetee_refine_trusted *t, int l, ct_t *const *W, ct_t *const *bias, ct_t *const *V) {
  if (t->ops) return t->ops->init ? t->ops->init(t->arg, l, W, bias, V) : 0;
  const hetee_refine_plan *p = t->p;
  if (l < p->first_train || l >= p->nl) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %d does not train", l);
  if (t->keep && t->held[l]) return hetee_error(HETEE_ERR_STATE, "layer %d holds its weights already", l);
  double t0 = cpu_now();
  const hetee_refine_layer *L = &p->L[l];
  int m = L->m, k = L->k;
  size_t nv = (size_t)m * (size_t)(k + 1);
  int rc = rchk_refuse(t);
  if (!rc) rc = check_weights_in(t, l, W, bias, V);
  if (!rc && t->keep) rc = alloc_kept(t, l);
  if (rc) return rc;
  uint64_t *pos = calloc(nv, sizeof *pos);
  double *wv = calloc(nv, sizeof *wv), *vv = calloc(nv, sizeof *vv);
  float *wf = calloc(nv, sizeof *wf), *bf = calloc((size_t)m, sizeof *bf), *vw = calloc(nv, sizeof *vw),
        *vb = calloc((size_t)m, sizeof *vb);
  if (!pos || !wv || !vv || !wf || !bf || !vw || !vb) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc) rc = decrypt_weights(t, l, W, bias, V, pos, wv, vv, wf, bf, vw, vb);
  if (!rc) rchk_weights(t, l, wf, bf); /* F and T of layer l are checked from the next step on */
  if (!rc && t->keep) {
    memcpy(t->hw[l], wf, (size_t)m * (size_t)k * sizeof *wf);
    memcpy(t->hvw[l], vw, (size_t)m * (size_t)k * sizeof *vw);
    memcpy(t->hb[l], bf, (size_t)m * sizeof *bf);
    memcpy(t->hvb[l], vb, (size_t)m * sizeof *vb);
    t->held[l] = 1;
  }
  if (wv) sodium_memzero(wv, nv * sizeof *wv);
  if (vv) sodium_memzero(vv, nv * sizeof *vv);
  if (wf) sodium_memzero(wf, nv * sizeof *wf);
  if (vw) sodium_memzero(vw, nv * sizeof *vw);
  if (bf) sodium_memzero(bf, (size_t)m * sizeof *bf);
  if (vb) sodium_memzero(vb, (size_t)m * sizeof *vb);
  free(pos);
  free(wv);
  free(vv);
  free(wf);
  free(bf);
  free(vw);
  free(vb);
  t->cpu_s += cpu_now() - t0;
  return rc;
}

int refine_tr_update(hetee_refine_trusted *t, int l, ct_t *const *gacc, uint32_t nsamples, ct_t *const *W,
                     ct_t *const *bias, ct_t *const *V, ct_t **nW, ct_t **nbias, ct_t **nWT, ct_t **nV) {
  if (t->ops) return t->ops->update(t->arg, l, gacc, nsamples, W, bias, V, nW, nbias, nWT, nV);
  double t0 = cpu_now();
  const hetee_refine_plan *p = t->p;
  if (l < p->first_train || l >= p->nl) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %d does not train", l);
  const hetee_refine_layer *L = &p->L[l];
  int m = L->m, k = L->k, mom = p->cfg.momentum > 0;
  size_t nv = (size_t)m * (size_t)(k + 1);
  int rc = rchk_refuse(t);
  if (!rc && (nsamples < 1 || nsamples > p->cfg.batch * p->cfg.accumulate))
    rc = hetee_error(HETEE_ERR_INVALID_ARG, "update over %u samples", nsamples);
  /* the divisor of the summed gradient: the samples whose deltas this side
   * emitted for layer l since its last update, not what the host says */
  if (!rc && nsamples != t->gsamples[l]) rc = rchk_fail(t, "sample count of the update", l);
  if (!rc && gacc) rc = check_cts(t, gacc, L->G.n_out_cts, REFINE_OUT_SCALE, 1, "gradient");
  if (!rc && !gacc) { /* fed in parts: every ciphertext must have arrived */
    for (size_t i = 0; i < L->G.n_out_cts && !rc; i++)
      if (!t->g_got[l] || !t->g_got[l][i]) rc = hetee_error(HETEE_ERR_STATE, "gradient ciphertext %zu of layer %d missing", i, l);
  }
  int from_held = !W; /* the weights this side keeps (refine_tr_keep_weights) */
  if (!rc && from_held && !t->held[l]) rc = hetee_error(HETEE_ERR_STATE, "layer %d: no weights kept yet", l);
  if (!rc && !from_held) rc = check_weights_in(t, l, W, bias, V);
  if (!rc && t->keep) rc = alloc_kept(t, l);
  if (rc) return rc;
  uint64_t *pos = calloc(nv, sizeof *pos);
  double *g = calloc(nv, sizeof *g), *wv = calloc(nv, sizeof *wv), *vv = calloc(nv, sizeof *vv);
  float *wf = calloc(nv, sizeof *wf), *bf = calloc((size_t)m, sizeof *bf), *vw = calloc(nv, sizeof *vw),
        *vb = calloc((size_t)m, sizeof *vb), *wt = NULL;
  if (!pos || !g || !wv || !vv || !wf || !bf || !vw || !vb) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto done;
  }
  for (int i = 0; i < m; i++)
    for (int j = 0; j <= k; j++) pos[(size_t)i * (size_t)(k + 1) + (size_t)j] = hetee_hemat_out_pos(&L->G, 0, j, 0, i);
  if (gacc) rc = gather(t, gacc, L->G.n_out_cts, REFINE_OUT_SCALE, pos, nv, g);
  else {
    memcpy(g, t->g[l], nv * sizeof *g);
    memset(t->g[l], 0, nv * sizeof *g);
    memset(t->g_got[l], 0, L->G.n_out_cts);
  }
  if (!rc) rc = rchk_grad(t, l, g); /* before anything is updated */
  if (rc) goto done;
  if (from_held) {
    memcpy(wf, t->hw[l], (size_t)m * (size_t)k * sizeof *wf);
    memcpy(vw, t->hvw[l], (size_t)m * (size_t)k * sizeof *vw);
    memcpy(bf, t->hb[l], (size_t)m * sizeof *bf);
    memcpy(vb, t->hvb[l], (size_t)m * sizeof *vb);
    goto sgd;
  }
  rc = decrypt_weights(t, l, W, bias, V, pos, wv, vv, wf, bf, vw, vb);
  if (rc) goto done;
sgd:;
  hetee_refine_config cu = p->cfg; /* the rate of this layer's update nupd[l] under the MP's schedule */
  cu.lr = hetee_refine_lr(p, t->nupd[l]);
  for (int i = 0; i < m; i++) {
    for (int j = 0; j < k; j++)
      hetee_refine_sgd(&cu, g[(size_t)i * (size_t)(k + 1) + (size_t)j] / (double)nsamples,
                       &wf[(size_t)i * (size_t)k + (size_t)j], &vw[(size_t)i * (size_t)k + (size_t)j]);
    hetee_refine_sgd(&cu, g[(size_t)i * (size_t)(k + 1) + (size_t)k] / (double)nsamples, &bf[i], &vb[i]);
  }
  refine_key key = tkey(t);
  rc = refine_enc_weights(&key, &L->F, wf, nW);
  if (!rc) rc = refine_enc_bias(&key, &L->F, bf, nbias);
  if (!rc && L->has_back) {
    wt = refine_transpose(wf, m, k);
    rc = wt ? refine_enc_weights(&key, &L->T, wt, nWT) : hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  if (!rc && mom) rc = refine_enc_momentum(&key, vw, vb, m, k, nV);
  if (!rc) rchk_weights(t, l, wf, bf);
  if (!rc) t->nupd[l]++;
  if (!rc && t->keep) {
    memcpy(t->hw[l], wf, (size_t)m * (size_t)k * sizeof *wf);
    memcpy(t->hvw[l], vw, (size_t)m * (size_t)k * sizeof *vw);
    memcpy(t->hb[l], bf, (size_t)m * sizeof *bf);
    memcpy(t->hvb[l], vb, (size_t)m * sizeof *vb);
    t->held[l] = 1;
  }
done:
  if (g) sodium_memzero(g, nv * sizeof *g);
  if (wv) sodium_memzero(wv, nv * sizeof *wv);
  if (vv) sodium_memzero(vv, nv * sizeof *vv);
  if (wf) sodium_memzero(wf, nv * sizeof *wf);
  if (vw) sodium_memzero(vw, nv * sizeof *vw);
  if (wt) sodium_memzero(wt, (size_t)m * (size_t)k * sizeof *wt);
  if (bf) sodium_memzero(bf, (size_t)m * sizeof *bf);
  if (vb) sodium_memzero(vb, (size_t)m * sizeof *vb);
  free(pos);
  free(g);
  free(wv);
  free(vv);
  free(wf);
  free(bf);
  free(vw);
  free(vb);
  free(wt);
  t->cpu_s += cpu_now() - t0;
  return rc;
}

int refine_tr_fetch(hetee_refine_trusted *t, int l, ct_t *const *W, ct_t *const *bias, float *w, float *b) {
  if (t->ops) return hetee_error(HETEE_ERR_UNSUPPORTED, "fetch goes through the enclave (hetee_host_refine_fetch)");
  double t0 = cpu_now();
  const hetee_refine_plan *p = t->p;
  if (l < 0 || l >= p->nl) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %d outside the plan", l);
  const hetee_refine_layer *L = &p->L[l];
  int m = L->m, k = L->k;
  if (!W) { /* the kept weights */
    if (!t->held[l]) return hetee_error(HETEE_ERR_STATE, "layer %d: no weights kept yet", l);
    memcpy(w, t->hw[l], (size_t)m * (size_t)k * sizeof *w);
    memcpy(b, t->hb[l], (size_t)m * sizeof *b);
    return 0;
  }
  int rc = check_cts(t, W, L->F.n_w_cts, REFINE_W_SCALE, 0, "weights");
  if (!rc) rc = check_cts(t, bias, (size_t)L->F.nmb, REFINE_OUT_SCALE, 0, "bias");
  if (rc) return rc;
  size_t nv = (size_t)m * (size_t)k;
  uint64_t *pos = calloc(nv, sizeof *pos);
  double *v = calloc(nv, sizeof *v);
  if (!pos || !v) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto done;
  }
  for (int i = 0; i < m; i++)
    for (int j = 0; j < k; j++) pos[(size_t)i * (size_t)k + (size_t)j] = refine_w_pos(&L->F, i, j);
  rc = gather(t, W, L->F.n_w_cts, REFINE_W_SCALE, pos, nv, v);
  for (size_t q = 0; q < nv && !rc; q++) w[q] = (float)v[q];
  for (int i = 0; i < m && !rc; i++) pos[i] = hetee_hemat_out_pos(&L->F, 0, i, 0, 0);
  if (!rc) rc = gather(t, bias, (size_t)L->F.nmb, REFINE_OUT_SCALE, pos, (size_t)m, v);
  for (int i = 0; i < m && !rc; i++) b[i] = (float)v[i];
done:
  if (v) sodium_memzero(v, nv * sizeof *v);
  free(pos);
  free(v);
  t->cpu_s += cpu_now() - t0;
  return rc;
}

int refine_tr_grad_feed(hetee_refine_trusted *t, int l, size_t first, ct_t *const *c, size_t n) {
  if (t->ops) return hetee_error(HETEE_ERR_UNSUPPORTED, "gradient parts go through the enclave");
  double t0 = cpu_now();
  const hetee_refine_plan *p = t->p;
  if (l < p->first_train || l >= p->nl) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %d does not train", l);
  const hetee_refine_layer *L = &p->L[l];
  size_t N = p->n, nct = L->G.n_out_cts, nv = (size_t)L->m * (size_t)(L->k + 1);
  if (n < 1 || first > nct || n > nct - first)
    return hetee_error(HETEE_ERR_SHAPE, "gradient ciphertexts %zu..%zu outside the %zu of layer %d", first, first + n, nct, l);
  int rc = rchk_refuse(t);
  if (!rc) rc = check_cts(t, c, n, REFINE_OUT_SCALE, 1, "gradient");
  if (rc) return rc;
  if (!t->g[l]) {
    t->g[l] = calloc(nv, sizeof(double));
    t->g_got[l] = calloc(nct, 1);
    if (!t->g[l] || !t->g_got[l]) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  if (first == 0) memset(t->g_got[l], 0, nct); /* a new gradient begins */
  for (size_t i = 0; i < n; i++)
    if (t->g_got[l][first + i]) return hetee_error(HETEE_ERR_STATE, "gradient ciphertext %zu of layer %d sent twice", first + i, l);
  /* the values these ciphertexts hold (public positions) */
  uint64_t *pos = calloc(nv, sizeof *pos);
  uint32_t *idx = malloc(nv * sizeof *idx);
  double *v = malloc(nv * sizeof *v);
  size_t cnt = 0;
  if (!pos || !idx || !v) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (int i = 0; i < L->m && !rc; i++)
    for (int j = 0; j <= L->k; j++) {
      uint64_t q = hetee_hemat_out_pos(&L->G, 0, j, 0, i);
      if (q / N >= first && q / N < first + n) {
        pos[cnt] = q - (uint64_t)first * N;
        idx[cnt++] = (uint32_t)((size_t)i * (size_t)(L->k + 1) + (size_t)j);
      }
    }
  if (!rc) rc = gather(t, c, n, REFINE_OUT_SCALE, pos, cnt, v);
  for (size_t q = 0; q < cnt && !rc; q++) t->g[l][idx[q]] = v[q];
  for (size_t i = 0; i < n && !rc; i++) t->g_got[l][first + i] = 1;
  if (v) sodium_memzero(v, nv * sizeof *v);
  free(pos);
  free(idx);
  free(v);
  t->cpu_s += cpu_now() - t0;
  return rc;
}

void refine_tr_keep_weights(hetee_refine_trusted *t) {
  if (t && !t->ops) t->keep = 1;
}

int refine_tr_holds(const hetee_refine_trusted *t, int l) {
  return t && !t->ops && l >= 0 && l < HETEE_REFINE_MAX_LAYERS && t->held[l];
}

/* ---- durable jobs (the enclave's REFINE_SAVE / REFINE_RESUME) ---- */
int refine_tr_idle(const hetee_refine_trusted *t) {
  if (!t || t->ops) return 0;
  const hetee_refine_plan *p = t->p;
  for (int l = p->first_train; l < p->nl; l++) {
    if (t->gsamples[l]) return 0;
    for (size_t i = 0; t->g_got[l] && i < p->L[l].G.n_out_cts; i++)
      if (t->g_got[l][i]) return 0;
  }
  return 1;
}

int refine_tr_failed(const hetee_refine_trusted *t) { return t && !t->ops && t->failed; }

void refine_tr_kept(const hetee_refine_trusted *t, int l, const float **w, const float **b, const float **vw,
                    const float **vb, uint64_t *updates) {
  int h = refine_tr_holds(t, l);
  *w = h ? t->hw[l] : NULL;
  *b = h ? t->hb[l] : NULL;
  *vw = h ? t->hvw[l] : NULL;
  *vb = h ? t->hvb[l] : NULL;
  *updates = t && !t->ops && l >= 0 && l < HETEE_REFINE_MAX_LAYERS ? t->nupd[l] : 0;
}

int refine_tr_restore(hetee_refine_trusted *t, int l, const float *w, const float *b, const float *vw, const float *vb,
                      uint64_t updates) {
  if (!t || t->ops || !t->keep) return hetee_error(HETEE_ERR_STATE, "not a trusted side that keeps weights");
  const hetee_refine_plan *p = t->p;
  if (l < p->first_train || l >= p->nl) return hetee_error(HETEE_ERR_INVALID_ARG, "layer %d does not train", l);
  if (t->held[l]) return hetee_error(HETEE_ERR_STATE, "layer %d holds weights already", l);
  size_t m = (size_t)p->L[l].m, mk = m * (size_t)p->L[l].k;
  t->hw[l] = calloc(mk + m, sizeof(float)); /* sized as the update allocates them: m x (k + 1) */
  t->hvw[l] = calloc(mk + m, sizeof(float));
  t->hb[l] = calloc(m, sizeof(float));
  t->hvb[l] = calloc(m, sizeof(float));
  if (!t->hw[l] || !t->hvw[l] || !t->hb[l] || !t->hvb[l]) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  memcpy(t->hw[l], w, mk * sizeof(float));
  memcpy(t->hvw[l], vw, mk * sizeof(float));
  memcpy(t->hb[l], b, m * sizeof(float));
  memcpy(t->hvb[l], vb, m * sizeof(float));
  t->held[l] = 1;
  t->nupd[l] = updates;
  rchk_weights(t, l, t->hw[l], t->hb[l]); /* the checks' pull-backs under this job's fresh vectors */
  return 0;
}

int refine_tr_reissue(hetee_refine_trusted *t, int l, ct_t **nW, ct_t **nbias, ct_t **nWT, ct_t **nV) {
  if (!refine_tr_holds(t, l)) return hetee_error(HETEE_ERR_STATE, "layer %d: no weights kept", l);
  double t0 = cpu_now();
  const hetee_refine_layer *L = &t->p->L[l];
  refine_key key = tkey(t);
  int rc = refine_enc_weights(&key, &L->F, t->hw[l], nW);
  if (!rc) rc = refine_enc_bias(&key, &L->F, t->hb[l], nbias);
  float *wt = NULL;
  if (!rc && L->has_back) {
    wt = refine_transpose(t->hw[l], L->m, L->k);
    rc = wt ? refine_enc_weights(&key, &L->T, wt, nWT) : hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  if (!rc && t->p->cfg.momentum > 0) rc = refine_enc_momentum(&key, t->hvw[l], t->hvb[l], L->m, L->k, nV);
  if (wt) sodium_memzero(wt, (size_t)L->m * (size_t)L->k * sizeof *wt);
  free(wt);
  t->cpu_s += cpu_now() - t0;
  return rc;
}

/* ---- validation (no training state touched) ---- */
int refine_tr_vwitness(hetee_refine_trusted *t, const double *x, uint32_t count) {
  if (t->ops) return hetee_error(HETEE_ERR_UNSUPPORTED, "validation witnesses go through the enclave");
  int rc = rchk_refuse(t);
  if (!rc) rc = check_count(t, count);
  if (rc) return rc;
  size_t n = (size_t)t->p->cfg.batch * (size_t)t->p->L[0].k;
  if (!t->vx[0] && !(t->vx[0] = calloc(n, sizeof(double)))) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  keep_rows(t->vx[0], x, n, (size_t)count * (size_t)t->p->L[0].k);
  t->vxcount[0] = count;
  return 0;
}

void refine_tr_vreset(hetee_refine_trusted *t) {
  if (!t || t->ops) return;
  for (int l = 0; l < HETEE_REFINE_MAX_LAYERS; l++) t->vxcount[l] = 0;
}

/* An enclave job's validation order: layer l's input is this chunk's
 * (the MP's witness for l = 0, else the validation forward of l - 1). */
static int vinput_ready(const hetee_refine_trusted *t, int l, uint32_t count) {
  if (!t->need_wit || t->vxcount[l] == count) return 0;
  return l == 0 ? hetee_error(HETEE_ERR_AUTH, "a validation chunk without the model provider's witness of its %u samples",
                              count)
                : hetee_error(HETEE_ERR_STATE, "validation forward of layer %d out of order", l);
}

int refine_tr_vforward(hetee_refine_trusted *t, int l, ct_t *const *out, uint32_t count, ct_t **next_in) {
  if (t->ops) return hetee_error(HETEE_ERR_UNSUPPORTED, "validation goes through the enclave");
  double t0 = cpu_now();
  const hetee_refine_plan *p = t->p;
  int rc = check_forward_in(t, l, out, count, "validation forward");
  if (!rc) rc = vinput_ready(t, l, count);
  if (rc) {
    t->vxcount[l] = 0;
    return rc;
  }
  const hetee_refine_layer *L = &p->L[l], *N1 = &p->L[l + 1];
  uint32_t B = p->cfg.batch;
  size_t m = (size_t)L->m, n = (size_t)B * m;
  uint64_t *pos = calloc(n, sizeof *pos);
  double *h = calloc(n, sizeof *h);
  if (!pos || !h) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc) rc = gather_rows(t, L, out, count, m, pos, h);
  /* the F check (a frozen layer, a trained one once its weights are kept
   * here) with this pass's own input: layer 0's the MP's witness */
  if (!rc) rc = rchk_forward_x(t, l, h, count, t->vx[l], t->vxcount[l]);
  t->vxcount[l] = 0; /* one use per pass */
  for (size_t q = 0; !rc && q < (size_t)count * m; q++) h[q] = hetee_refine_act_f(L->act, h[q]);
  if (!rc) { /* layer l+1's input, for its check in this pass (trained or loaded frozen layer) */
    if (!t->vx[l + 1] && !(t->vx[l + 1] = calloc(n, sizeof(double)))) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    if (!rc) {
      keep_rows(t->vx[l + 1], h, n, (size_t)count * m);
      t->vxcount[l + 1] = count;
    }
  }
  if (!rc) rc = scatter_next(t, N1, B, m, pos, h, next_in);
  if (h) sodium_memzero(h, n * sizeof *h);
  free(pos);
  free(h);
  t->cpu_s += cpu_now() - t0;
  return rc;
}

int refine_tr_vloss(hetee_refine_trusted *t, ct_t *const *logits, const ct_t *labels, uint32_t count, double *loss,
                    uint64_t *correct) {
  if (t->ops) return hetee_error(HETEE_ERR_UNSUPPORTED, "validation goes through the enclave");
  double t0 = cpu_now();
  const hetee_refine_plan *p = t->p;
  int c = p->classes;
  const hetee_refine_layer *L = &p->L[p->nl - 1];
  ct_t *lab1[1] = {(ct_t *)labels};
  int rc = check_loss_in(t, logits, lab1, count);
  if (!rc) rc = vinput_ready(t, p->nl - 1, count);
  if (rc) {
    t->vxcount[p->nl - 1] = 0;
    return rc;
  }
  size_t nc = (size_t)count * (size_t)c;
  uint64_t *pos = calloc(nc, sizeof *pos);
  double *z = calloc(nc, sizeof *z), *y = calloc(nc, sizeof *y);
  if (!pos || !z || !y) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc) rc = gather_rows(t, L, logits, count, (size_t)c, pos, z);
  if (!rc) rc = rchk_forward_x(t, p->nl - 1, z, count, t->vx[p->nl - 1], t->vxcount[p->nl - 1]);
  if (p->nl - 1 < HETEE_REFINE_MAX_LAYERS) t->vxcount[p->nl - 1] = 0; /* one use per pass */
  for (size_t q = 0; !rc && q < nc; q++) pos[q] = q;
  if (!rc) rc = gather(t, lab1, 1, REFINE_IN_SCALE, pos, nc, y);
  double ls = 0;
  uint64_t ok = 0;
  for (uint32_t b = 0; !rc && b < count; b++) {
    int lab = label_of(y + (size_t)b * (size_t)c, c);
    int cor = 0;
    ls += refine_sample_loss(p->cfg.loss, z + (size_t)b * (size_t)c, c, lab, &cor);
    ok += (uint64_t)cor;
  }
  if (!rc) {
    *loss += ls;
    *correct += ok;
  }
  if (z) sodium_memzero(z, nc * sizeof *z);
  if (y) sodium_memzero(y, nc * sizeof *y);
  free(pos);
  free(z);
  free(y);
  t->cpu_s += cpu_now() - t0;
  return rc;
}

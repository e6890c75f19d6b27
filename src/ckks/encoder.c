/*
 * encoder.c — CKKS encoding and decoding (Cheon–Kim–Kim–Song 2017, canonical
 * embedding; special FFT as in the CKKS paper's reference implementation).
 *
 * Slot j (j < N/2) holds m(zeta^(5^j)), zeta = exp(2 pi i / 2N). Folding the
 * real coefficients as u_k = m_k + i m_(k+N/2) (k < N/2) gives
 * m(w) = u(w) for every w with w^(N/2) = i, i.e. the slots are the values of
 * the degree < N/2 complex polynomial u at the N/2 roots of X^(N/2) = i taken
 * in the order of the powers of 5: an O(N log N) "special FFT" (radix 2,
 * bit-reversed input, twiddles zeta^(5^j mod 8h * 2N/8h)).
 *
 * Encoding: z -> inverse special FFT -> u -> coefficients * scale, rounded to
 * integers and reduced modulo every prime of the level (exactly, also for
 * |value| >= 2^63: the double's mantissa times a power of two) -> NTT.
 * Decoding: inverse NTT per prime -> exact centered CRT (Garner mixed radix
 * with balanced digits, evaluated in double, Horner from the top) -> / scale
 * -> special FFT. See docs/ckks.md for the precision.
 */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_internal.h"

void ckks_fft_special(const hetee_ckks_context *ctx, double complex *v) {
  size_t n = ctx->n / 2;
  for (size_t j = 0; j < n; j++) {
    size_t r = ctx->bitrev[j];
    if (r > j) {
      double complex t = v[j];
      v[j] = v[r];
      v[r] = t;
    }
  }
  for (size_t h = 1; h < n; h <<= 1) {
    const double complex *tw = ctx->fft_tw + h;
    for (size_t i = 0; i < n; i += 2 * h) {
      for (size_t j = 0; j < h; j++) {
        double complex u = v[i + j], w = v[i + j + h] * tw[j];
        v[i + j] = u + w;
        v[i + j + h] = u - w;
      }
    }
  }
}

void ckks_fft_special_inv(const hetee_ckks_context *ctx, double complex *v) {
  size_t n = ctx->n / 2;
  for (size_t h = n / 2; h >= 1; h >>= 1) {
    const double complex *tw = ctx->fft_tw + h;
    for (size_t i = 0; i < n; i += 2 * h) {
      for (size_t j = 0; j < h; j++) {
        double complex a = v[i + j], b = v[i + j + h];
        v[i + j] = a + b;
        v[i + j + h] = (a - b) * conj(tw[j]);
      }
    }
  }
  double inv = 1.0 / (double)n;
  for (size_t j = 0; j < n; j++) {
    size_t r = ctx->bitrev[j];
    if (r > j) {
      double complex t = v[j];
      v[j] = v[r];
      v[r] = t;
    }
  }
  for (size_t j = 0; j < n; j++) v[j] *= inv;
}

/* log2 of Q_level / 2: coefficients must stay strictly below it in
 * magnitude so that the centered representative is the integer itself. */
static double level_half_log2(const hetee_ckks_context *ctx, int level) {
  double s = -1.0;
  for (int i = 0; i <= level; i++) s += log2((double)ctx->mod[i].q);
  return s;
}

/* Residues of one rounded double x (any magnitude below 2^1023) modulo the
 * primes 0..level; written with stride `stride`. */
static void big_to_rns(const hetee_ckks_context *ctx, double x, int level, uint64_t *res, size_t stride) {
  double r = nearbyint(x);
  if (fabs(r) < 9.2e18) {
    int64_t v = (int64_t)r;
    for (int i = 0; i <= level; i++) res[(size_t)i * stride] = ckks_from_i64(v, &ctx->mod[i]);
    return;
  }
  /* |r| >= 2^63: r = mant * 2^e exactly with |mant| < 2^53 */
  int e;
  double f = frexp(r, &e);          /* r = f * 2^e, 0.5 <= |f| < 1 */
  int64_t mant = (int64_t)ldexp(f, 53);
  int sh = e - 53;                  /* >= 10 */
  for (int i = 0; i <= level; i++) {
    const hetee_modulus *m = &ctx->mod[i];
    uint64_t p2 = hetee_mod_pow(2, (uint64_t)sh, m);
    res[(size_t)i * stride] = hetee_mod_mul(ckks_from_i64(mant, m), p2, m);
  }
}

int ckks_round_to_rns(const hetee_ckks_context *ctx, const double *coef, int level, uint64_t *out) {
  size_t n = ctx->n;
  double maxabs = 0;
  int finite = 1;
  for (size_t k = 0; k < n; k++) {
    double a = fabs(coef[k]);
    finite &= isfinite(a) != 0;
    maxabs = a > maxabs ? a : maxabs;
  }
  if (!finite) return hetee_error(HETEE_ERR_SCALE, "encoded value is not finite");
  if (maxabs > 0 && log2(maxabs) >= level_half_log2(ctx, level) - 1.0)
    return hetee_error(HETEE_ERR_SCALE, "values * scale (2^%.1f) do not fit the modulus at level %d (2^%.1f)",
                       log2(maxabs), level, level_half_log2(ctx, level) + 1.0);
  if (maxabs < 4.0e18) {
    /* fast path: every coefficient fits int64; llrint is one cvtsd2si
     * (round to nearest, branch-free) with -fno-math-errno */
    int64_t *iv = malloc(n * sizeof *iv);
    if (!iv) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
    for (size_t k = 0; k < n; k++) iv[k] = (int64_t)llrint(coef[k]);
    for (int i = 0; i <= level; i++) {
      const hetee_modulus *m = &ctx->mod[i];
      uint64_t *row = out + (size_t)i * n;
      for (size_t k = 0; k < n; k++) row[k] = ckks_from_i64(iv[k], m);
    }
    sodium_memzero(iv, n * sizeof *iv);
    free(iv);
    return 0;
  }
  for (size_t k = 0; k < n; k++) big_to_rns(ctx, coef[k], level, out + k, n);
  return 0;
}

int ckks_const_to_rns(const hetee_ckks_context *ctx, double v, int level, uint64_t *res) {
  if (!isfinite(v)) return hetee_error(HETEE_ERR_SCALE, "constant * scale is not finite");
  if (v != 0 && log2(fabs(v)) >= level_half_log2(ctx, level) - 1.0)
    return hetee_error(HETEE_ERR_SCALE, "constant * scale (2^%.1f) does not fit the modulus at level %d",
                       log2(fabs(v)), level);
  big_to_rns(ctx, v, level, res, 1);
  return 0;
}

static int encode_common(const hetee_ckks_context *ctx, double complex *z, double scale, int level,
                         hetee_ckks_plaintext *out) {
  size_t n = ctx->n, slots = n / 2;
  int rc = 0;
  double *coef = NULL;
  ckks_fft_special_inv(ctx, z);
  coef = malloc(n * sizeof(double));
  if (!coef) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
  for (size_t k = 0; k < slots; k++) {
    coef[k] = creal(z[k]) * scale;
    coef[k + slots] = cimag(z[k]) * scale;
  }
  if ((rc = ckks_pt_reserve(ctx, out, level))) goto err;
  if ((rc = ckks_round_to_rns(ctx, coef, level, out->data))) {
    out->level = -1;
    goto err;
  }
#pragma omp parallel for if (ctx->threads > 1) num_threads(ctx->threads)
  for (int i = 0; i <= level; i++) hetee_ntt_forward(ctx->ntt[i], out->data + (size_t)i * n);
  out->scale = scale;
err:
  /* the coefficients are the (possibly secret) message: wipe */
  sodium_memzero(coef, n * sizeof(double));
  free(coef);
  return rc;
}

static int check_encode_args(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level,
                             const hetee_ckks_plaintext *out) {
  if (!ctx || (!v && n) || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (n > ctx->n / 2) return hetee_error(HETEE_ERR_INVALID_ARG, "%zu values exceed %zu slots", n, ctx->n / 2);
  if (!(isfinite(scale) && scale > 0)) return hetee_error(HETEE_ERR_SCALE, "scale must be finite and > 0");
  if (level < 0 || level >= ctx->nq)
    return hetee_error(HETEE_ERR_LEVEL, "level %d outside [0, %d]", level, ctx->nq - 1);
  return 0;
}

int hetee_ckks_encode_real(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level,
                           hetee_ckks_plaintext *out) {
  int rc = check_encode_args(ctx, v, n, scale, level, out);
  if (rc) return rc;
  double complex *z = calloc(ctx->n / 2, sizeof *z);
  if (!z) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
  for (size_t j = 0; j < n; j++) z[j] = v[j];
  rc = encode_common(ctx, z, scale, level, out);
  sodium_memzero(z, ctx->n / 2 * sizeof *z);
  free(z);
  return rc;
}

int hetee_ckks_encode_complex(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level,
                              hetee_ckks_plaintext *out) {
  int rc = check_encode_args(ctx, v, n, scale, level, out);
  if (rc) return rc;
  double complex *z = calloc(ctx->n / 2, sizeof *z);
  if (!z) return hetee_error(HETEE_ERR_NOMEM, "encoder buffer");
  for (size_t j = 0; j < n; j++) z[j] = v[2 * j] + I * v[2 * j + 1];
  rc = encode_common(ctx, z, scale, level, out);
  sodium_memzero(z, ctx->n / 2 * sizeof *z);
  free(z);
  return rc;
}

/* Centered CRT of coefficient rows (coefficient form, level+1 rows) into
 * doubles: balanced Garner digits v_i in (-q_i/2, q_i/2),
 * x = v_0 + q_0 (v_1 + q_1 (v_2 + ...)). The digits are exact; the Horner
 * evaluation in double never cancels (with balanced digits each partial sum
 * is dominated by its top term), so x has a relative error below
 * (level + 1) 2^-53 — far below CKKS noise, and the decoded slots are
 * doubles anyway. Digit rows are computed one prime at a time (Shoup
 * constants); rows are overwritten with the unsigned digits u_i,
 * v_i = u_i - q_i [u_i > q_i/2]. */
static void crt_centered(const hetee_ckks_context *ctx, uint64_t *rows, int level, double *out) {
  size_t n = ctx->n;
  int nq = ctx->nq;
  for (int i = 1; i <= level; i++) {
    const hetee_modulus *mi = &ctx->mod[i];
    uint64_t q = mi->q;
    uint64_t *xi = rows + (size_t)i * n;
    for (int t = 0; t < i; t++) {
      /* x_i -= v_t * (q_0..q_{t-1}) = u_t * P_t - [neg_t] * P_{t+1}  (mod q_i) */
      uint64_t pt = ctx->gar_pmod[(size_t)i * nq + t], pts = hetee_shoup_prep(pt, q);
      uint64_t pn = t + 1 < i ? ctx->gar_pmod[(size_t)i * nq + t + 1] : hetee_mod_mul(pt, ctx->gar_qmod[(size_t)i * nq + t], mi);
      uint64_t ht = ctx->mod[t].q >> 1;
      const uint64_t *ut = rows + (size_t)t * n;
      for (size_t c = 0; c < n; c++) {
        uint64_t term = hetee_mod_mul_shoup(ut[c], pt, pts, q);
        uint64_t negm = (uint64_t)0 - (uint64_t)(ut[c] > ht);
        term = hetee_mod_sub(term, pn & negm, q);
        xi[c] = hetee_mod_sub(xi[c], term, q);
      }
    }
    uint64_t w = ctx->gar_inv[i], ws = hetee_shoup_prep(w, q);
    for (size_t c = 0; c < n; c++) xi[c] = hetee_mod_mul_shoup(xi[c], w, ws, q);
  }
  for (size_t c = 0; c < n; c++) {
    double x = 0;
    for (int i = level; i >= 0; i--) {
      uint64_t q = ctx->mod[i].q, u = rows[(size_t)i * n + c];
      uint64_t negm = (uint64_t)0 - (uint64_t)(u > (q >> 1));
      int64_t v = (int64_t)u - (int64_t)(q & negm);
      x = x * (double)q + (double)v;
    }
    out[c] = x;
  }
}

static int decode_common(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt, double complex **zout) {
  if (!ctx || !pt) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = ckks_check_ctx(ctx, pt->fp, "plaintext");
  if (rc) return rc;
  if (pt->level < 0 || pt->level >= ctx->nq) return hetee_error(HETEE_ERR_LEVEL, "plaintext is empty");
  size_t n = ctx->n, slots = n / 2;
  int level = pt->level;
  uint64_t *rows = ckks_scratch((size_t)(level + 1) * n);
  double *x = malloc(n * sizeof(double));
  double complex *z = malloc(slots * sizeof(double complex));
  if (!rows || !x || !z) {
    rc = hetee_error(HETEE_ERR_NOMEM, "decoder buffers");
    goto err;
  }
  memcpy(rows, pt->data, (size_t)(level + 1) * n * 8);
#pragma omp parallel for if (ctx->threads > 1) num_threads(ctx->threads)
  for (int i = 0; i <= level; i++) hetee_ntt_inverse(ctx->ntt[i], rows + (size_t)i * n);
  crt_centered(ctx, rows, level, x);
  double inv = 1.0 / pt->scale;
  for (size_t k = 0; k < slots; k++) z[k] = x[k] * inv + I * (x[k + slots] * inv);
  ckks_fft_special(ctx, z);
  *zout = z;
  z = NULL;
err:
  if (rows) hetee_free_secure(rows, (size_t)(level + 1) * n * 8);
  if (x) {
    sodium_memzero(x, n * sizeof(double));
    free(x);
  }
  free(z);
  return rc;
}

int hetee_ckks_decode_real(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt, double *out, size_t n) {
  if (!out && n) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL output");
  if (ctx && n > ctx->n / 2) return hetee_error(HETEE_ERR_INVALID_ARG, "%zu values exceed the slots", n);
  double complex *z = NULL;
  int rc = decode_common(ctx, pt, &z);
  if (rc) return rc;
  for (size_t j = 0; j < n; j++) out[j] = creal(z[j]);
  sodium_memzero(z, ctx->n / 2 * sizeof *z);
  free(z);
  return 0;
}

int hetee_ckks_decode_complex(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt, double *out, size_t n) {
  if (!out && n) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL output");
  if (ctx && n > ctx->n / 2) return hetee_error(HETEE_ERR_INVALID_ARG, "%zu values exceed the slots", n);
  double complex *z = NULL;
  int rc = decode_common(ctx, pt, &z);
  if (rc) return rc;
  for (size_t j = 0; j < n; j++) {
    out[2 * j] = creal(z[j]);
    out[2 * j + 1] = cimag(z[j]);
  }
  sodium_memzero(z, ctx->n / 2 * sizeof *z);
  free(z);
  return 0;
}

/*
 * planner.c — the cost model of the coefficient-packed layers and the
 * packing search (hetee_hemat_choose).
 *
 * For a packing (cb, mb, nimg) of a layer and a batch the work is counted
 * exactly from the layout (hemat.h):
 *   ngroups = ceil(batch / nimg), ncb = ceil(c / cb), nmb = ceil(co / mb),
 *   host products        ngroups * nmb * ncb     (t_product each),
 *   input ciphertexts    ngroups * ncb           (enclave encryptions, or
 *                                                 client encryptions when
 *                                                 input_from_client),
 *   output ciphertexts   ngroups * nmb           (enclave decryptions),
 *   weight ciphertexts   nmb * ncb               (budget max_weight_cts),
 * and priced as
 *   products * t_product + enclave_weight * (enc * t_enclave_enc +
 *   outs * t_enclave_dec) + client_encs * t_client_enc.
 * Every count is non-increasing in nimg, so for each (cb, mb) only the
 * fewest groups matter: nimg_max = min(N / T, batch); the planner then
 * takes the smallest nimg giving the same ngroups (same cost, samples
 * spread evenly). T grows with cb and with mb, so each loop stops at the
 * first packing that does not fit N: at most c * co candidates of O(1)
 * each (dense 784 -> 128 at logN 13: 27473 fit; 0.55 ms, hetee-bench hemat).
 */
#include <math.h>

#include "hemat/hemat_internal.h"

/* Measured on the development machine, lscpu "Model name": Intel(R)
 * Xeon(R) Processor (2 shared cores, AVX-512 IFMA), Release build, logN 13,
 * q {60, 40, 40}, P {60}, level 1, one thread, medians of 400 runs, two
 * repetitions within 2 % (load average ~6 from concurrent test runs; the
 * minima were 1-3 % lower):
 *   cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DHETEE_WERROR=ON
 *   cmake --build build-release -j2
 *   build-release/bin/hetee-bench hemat --costs --runs 400
 *   mul_acc 46.1 us; encrypt_sk_coeffs_bounded (what the enclave runs for
 *   an input ciphertext: encode + encrypt in one step) 188 us;
 *   decrypt_coeffs of N/8 coefficients of a degree-2 product 104 us;
 *   encode_coeffs + encrypt_pk 715 us.
 * (Before the enclave's one-step paths and the faster samplers, perf
 * branch: 295 / 107 / 775 us.) These are CPU times per ciphertext; an
 * enclave with threads=2 spreads a refresh's ciphertexts over two cores. */
#define HEMAT_T_PRODUCT 46.1e-6
#define HEMAT_T_ENCLAVE_ENC 188e-6
#define HEMAT_T_ENCLAVE_DEC 104e-6
#define HEMAT_T_CLIENT_ENC 715e-6

void hetee_hemat_costs_default(hetee_hemat_costs *c) {
  if (!c) return;
  c->t_product = HEMAT_T_PRODUCT;
  c->t_enclave_enc = HEMAT_T_ENCLAVE_ENC;
  c->t_enclave_dec = HEMAT_T_ENCLAVE_DEC;
  c->t_client_enc = HEMAT_T_CLIENT_ENC;
  /* an enclave second is scarcer than a host second: one enclave serves
   * every host and every model, on a few cores, with little memory */
  c->enclave_weight = 4.0;
  c->max_weight_cts = 0;
}

static int cost_ok(double v) { return isfinite(v) && v >= 0; }

int hetee_hemat_choose(const hetee_hemat_shape *s, uint32_t batch, size_t n, int input_from_client,
                       const hetee_hemat_costs *c, hetee_hemat_pack *out, double *cost) {
  if (!s || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat choose: NULL argument");
  int rc;
  if ((rc = hemat_check_shape(s)) || (rc = hemat_check_n(n))) return rc;
  if (batch < 1) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat choose: batch = 0, must be >= 1");
  hetee_hemat_costs dflt;
  if (!c) {
    hetee_hemat_costs_default(&dflt);
    c = &dflt;
  }
  if (!cost_ok(c->t_product) || !cost_ok(c->t_enclave_enc) || !cost_ok(c->t_enclave_dec) ||
      !cost_ok(c->t_client_enc) || !cost_ok(c->enclave_weight))
    return hetee_error(HETEE_ERR_INVALID_ARG, "hemat choose: costs must be finite and >= 0");

  const double ew = c->enclave_weight;
  double best = INFINITY;
  hetee_hemat_pack bp = {0, 0, 0};
  size_t fitting = 0;
  for (int cb = 1; cb <= s->c; cb++) {
    int fit_any = 0;
    for (int mb = 1; mb <= s->co; mb++) {
      uint64_t HW = 0, O = 0, S = 0, T = 0;
      if (hemat_span(s, cb, mb, &HW, &O, &S, &T) || T > (uint64_t)n) break; /* larger mb: larger T */
      fit_any = 1;
      fitting++;
      uint64_t nmax = (uint64_t)n / T;
      if (nmax > batch) nmax = batch;
      uint64_t ngroups = ((uint64_t)batch - 1) / nmax + 1;
      uint64_t ncb = (uint64_t)(s->c - 1) / (uint64_t)cb + 1, nmb = (uint64_t)(s->co - 1) / (uint64_t)mb + 1;
      double nw = (double)ncb * (double)nmb;
      if (c->max_weight_cts && nw > (double)c->max_weight_cts) continue;
      double g = (double)ngroups, products = g * (double)nmb * (double)ncb, nin = g * (double)ncb,
             nout = g * (double)nmb;
      double t = products * c->t_product + ew * ((input_from_client ? 0 : nin) * c->t_enclave_enc +
                                                 nout * c->t_enclave_dec) +
                 (input_from_client ? nin * c->t_client_enc : 0);
      if (t < best) { /* strict: the first of equal costs (smallest cb, then mb) */
        best = t;
        bp.cb = cb;
        bp.mb = mb;
        bp.nimg = (int)(((uint64_t)batch - 1) / ngroups + 1);
      }
    }
    if (!fit_any) break; /* larger cb: larger T */
  }
  if (bp.cb == 0) {
    if (fitting)
      return hetee_error(HETEE_ERR_SHAPE,
                         "hemat choose: all %zu packings that fit N = %zu need more than max_weight_cts = %zu "
                         "weight ciphertexts",
                         fitting, n, c->max_weight_cts);
    return hetee_error(HETEE_ERR_SHAPE,
                       "hemat choose: no packing fits N = %zu: one input channel of %dx%d with a %dx%d kernel "
                       "already spans more than N coefficients",
                       n, s->h, s->w, s->kh, s->kw);
  }
  /* the counts of the choice also fit 64-bit positions (layout_init) */
  hetee_hemat_layout L;
  if ((rc = hetee_hemat_layout_init(s, &bp, batch, n, &L))) return rc;
  *out = bp;
  if (cost) *cost = best;
  return 0;
}

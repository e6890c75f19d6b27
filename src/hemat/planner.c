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
 *   outs * t_dec) + client_encs * t_client_enc,
 * t_dec = t_enclave_dec; for the engine's plan (hemat_choose_engine)
 * HEMAT_COSET_DEC_FACTOR of it when the enclave decrypts the layer's
 * outputs as cosets (coset_outputs below; refining's trusted steps and
 * hetee_hemat_choose price every decryption in full).
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
/* One key switch of hetee_ckks_evaluator_expand at level 1 (a 4-lane
 * expansion makes 3): a third of `expand4_ev_l1` in `hetee-bench ckks
 * --runs 50` (Release, 2026-11-30 07:26 UTC, load 3.8-5.2): 2804 us
 * (min 2215) against 207.8 us for `encrypt_sk_coeffs_l1` in the same run,
 * a ratio of 13.5, put on the scale of HEMAT_T_ENCLAVE_ENC (measured at
 * load ~6): 188 us x 13.5 / 3 = 845 us. In the engine (hetee-bench infer
 * --force-lanes, e2dm, load 4.5) the host's CPU grew by 1.1 ms per key
 * switch of its expansions (docs/hemat.md, "Lanes"). */
#define HEMAT_T_EXPAND 845e-6

/* A layer whose every output ciphertext names coefficients of one coset
 * r + d t only (d a power of two) is decrypted by the enclave as that coset
 * (docs/ckks.md, "Decrypting one coset"; enclave_refresh_prepare): the
 * product with the key and the range check over all N words as before,
 * then sums over blocks of d and an inverse NTT of size N/d instead of N.
 * Measured in the enclave process (2026-11-30, cnn's dense 400 -> 128 at
 * batch 64, CPU time of the refresh's decryption loop per ciphertext,
 * degree 2, level 0, 8 micro-batches): 72 us each in full (cb 25, no
 * coset), 42 us each as cosets of d = 32 (cb 32), a ratio of 0.58; with
 * the bytes (the 196 KB input received and read), e2dm's dense 320 -> 64
 * with 16 more coset outputs per micro-batch cost the enclave ~82 us per
 * coset decryption, against t_enclave_dec = 104 us for a full one: the
 * factor applied, for d >= HEMAT_COSET_MIN_D (below it the smaller
 * transform saves less), is 0.75 (docs/hemat.md, "Costs"). */
#define HEMAT_COSET_DEC_FACTOR 0.75
#define HEMAT_COSET_MIN_D 8u

/* 1 if the enclave decrypts the outputs of packing (cb, mb, nimg) as one
 * coset of d >= HEMAT_COSET_MIN_D: one output position per channel
 * (oh = ow = 1: dense layers and convolutions with a 1x1 output), so the
 * outputs of a ciphertext lie at j T + m S + O with T = mb S, and every
 * step is a multiple of S = cb h w; d is the largest power of two
 * dividing S (a single output per ciphertext fits any coset), at most
 * N/16 (CKKS_COSET_MIN_LOGS). tests/hemat/test_planner.c checks this rule
 * against the output positions of the layouts. */
static int coset_outputs(const hetee_hemat_shape *s, uint64_t S, int mb, uint64_t nimg, size_t n) {
  if ((s->h - s->kh) / s->sh + 1 != 1 || (s->w - s->kw) / s->sw + 1 != 1) return 0;
  uint64_t d = mb == 1 && nimg == 1 ? (uint64_t)n : (S & (~S + 1));
  if (d > (uint64_t)n / 16) d = (uint64_t)n / 16; /* the enclave's smallest transform: N/d >= 16 */
  return d >= HEMAT_COSET_MIN_D;
}

/* What a bound run of the engine pays (2026-11-30, the development machine
 * as above, Release build), where the costs above (one operation on cache-hot
 * operands, the enclave's level-1 decryption path) misjudge it
 * (docs/hemat.md, "The engine's costs"):
 *   a product inside a layer, weights streamed from memory: 65 us (e2dm's
 *     dense 320 -> 64 in `hetee-bench infer --json`, 14:05 UTC: 13.7 ms of
 *     host CPU per micro-batch for 160 products and 16 outputs; the layer
 *     benchmarks of `hetee-bench hemat`: 63-67 us);
 *   a fresh input: 230 us of enclave CPU (`hetee-bench enclave`, 14:10
 *     UTC: 0.301 ms per ciphertext in and out at threads=2, less one
 *     in-place decryption);
 *   an output: 230 us of host CPU (bias, rescale to one prime, c0 at the
 *     read coefficients: `hetee-bench hemat --costs`, "bound runs", 14:42
 *     UTC: 226.5-248 us as a coset, 292-302 us in full) and 71 us of
 *     enclave CPU decrypted in full in place, 30 us as one coset (23.1 us at
 *     d = 64, 41.2 us at d = 8);
 *   enclave weight 85/15: a deployment that gives the enclave 15% of the
 *     CPU (the engine's target share) values its second 5.67 host seconds. */
#define HEMAT_ENGINE_T_PRODUCT 65e-6
#define HEMAT_ENGINE_T_ENC 230e-6
#define HEMAT_ENGINE_T_OUT_HOST 230e-6
#define HEMAT_ENGINE_T_DEC 71e-6
#define HEMAT_ENGINE_T_DEC_COSET 30e-6
#define HEMAT_ENGINE_WEIGHT (85.0 / 15.0)

void hetee_hemat_costs_engine(hetee_hemat_costs *c) {
  if (!c) return;
  hetee_hemat_costs_default(c);
  c->t_product = HEMAT_ENGINE_T_PRODUCT;
  c->t_enclave_enc = HEMAT_ENGINE_T_ENC;
  c->t_enclave_dec = HEMAT_ENGINE_T_DEC;
  c->t_enclave_dec_coset = HEMAT_ENGINE_T_DEC_COSET;
  c->t_out_host = HEMAT_ENGINE_T_OUT_HOST;
  c->enclave_weight = HEMAT_ENGINE_WEIGHT;
}

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
  c->t_expand = HEMAT_T_EXPAND;
  c->t_out_host = 0;
  c->t_enclave_dec_coset = 0;
}

static int cost_ok(double v) { return isfinite(v) && v >= 0; }

/* An output decrypted as one coset */
static double coset_dec(const hetee_hemat_costs *c) {
  return c->t_enclave_dec_coset > 0 ? c->t_enclave_dec_coset : c->t_enclave_dec * HEMAT_COSET_DEC_FACTOR;
}

int hemat_pack_coset(const hetee_hemat_shape *s, const hetee_hemat_pack *pk, uint32_t batch, size_t n) {
  uint64_t HW = 0, O = 0, S = 0, T = 0;
  if (pk->lanes > 1 || hemat_span(s, pk->cb, pk->mb, &HW, &O, &S, &T)) return 0;
  uint64_t nimg = (uint64_t)pk->nimg < batch ? (uint64_t)pk->nimg : batch;
  return coset_outputs(s, S, pk->mb, nimg, n);
}

double hemat_out_cost(const hetee_hemat_costs *c, const hetee_hemat_shape *s, const hetee_hemat_pack *pk,
                      uint32_t batch, size_t n) {
  return c->t_out_host + (hemat_pack_coset(s, pk, batch, n) ? coset_dec(c) : c->t_enclave_dec);
}

static int choose(const hetee_hemat_shape *s, uint32_t batch, size_t n, int input_from_client,
                  const hetee_hemat_costs *c, int cosets, int max_lanes, int only_lanes, hetee_hemat_pack *out,
                  double *cost) {
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
      !cost_ok(c->t_client_enc) || !cost_ok(c->enclave_weight) || !cost_ok(c->t_expand) ||
      !cost_ok(c->t_out_host) || !cost_ok(c->t_enclave_dec_coset))
    return hetee_error(HETEE_ERR_INVALID_ARG, "hemat choose: costs must be finite and >= 0");

  const double ew = c->enclave_weight;
  double best = INFINITY;
  hetee_hemat_pack bp = {0, 0, 0, 0};
  size_t fitting = 0;
  for (int cb = 1; cb <= s->c; cb++) {
    int fit_any = 0;
    for (int mb = 1; mb <= s->co && !only_lanes; mb++) {
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
      uint64_t nimg = ((uint64_t)batch - 1) / ngroups + 1;
      double tdec = cosets && coset_outputs(s, S, mb, nimg, n) ? coset_dec(c) : c->t_enclave_dec;
      double t = products * c->t_product + nout * c->t_out_host +
                 ew * ((input_from_client ? 0 : nin) * c->t_enclave_enc + nout * tdec) +
                 (input_from_client ? nin * c->t_client_enc : 0);
      if (t < best) { /* strict: the first of equal costs (smallest cb, then mb) */
        best = t;
        bp.cb = cb;
        bp.mb = mb;
        bp.nimg = (int)nimg;
        bp.lanes = 0;
      }
    }
    /* lane packings (hemat.h): mb = lanes, the mb = 1 layout of the subring
     * of dimension N / lanes; the enclave encrypts ceil(n_in / lanes) dense
     * inputs, the host expands each (lanes - 1 key switches); the outputs
     * are lanes residues apart, never one coset (full decryptions) */
    for (int lanes = 2; !input_from_client && lanes <= max_lanes && lanes <= s->co; lanes *= 2) {
      uint64_t HW = 0, O = 0, S = 0, T = 0;
      if (hemat_span(s, cb, 1, &HW, &O, &S, &T) || T > (uint64_t)n / (uint64_t)lanes) break;
      fit_any = 1;
      fitting++;
      uint64_t nmax = (uint64_t)n / (uint64_t)lanes / T;
      if (nmax > batch) nmax = batch;
      uint64_t ngroups = ((uint64_t)batch - 1) / nmax + 1;
      uint64_t ncb = (uint64_t)(s->c - 1) / (uint64_t)cb + 1, nmb = (uint64_t)(s->co - 1) / (uint64_t)lanes + 1;
      double nw = (double)ncb * (double)nmb;
      if (c->max_weight_cts && nw > (double)c->max_weight_cts) continue;
      double g = (double)ngroups, products = g * (double)nmb * (double)ncb, nout = g * (double)nmb;
      double ndense = (double)((ngroups * ncb - 1) / (uint64_t)lanes + 1);
      uint64_t nimg = ((uint64_t)batch - 1) / ngroups + 1;
      double t = products * c->t_product + nout * c->t_out_host +
                 ew * (ndense * c->t_enclave_enc + nout * c->t_enclave_dec) +
                 ndense * (double)(lanes - 1) * c->t_expand;
      if (t < best) {
        best = t;
        bp.cb = cb;
        bp.mb = lanes;
        bp.nimg = (int)nimg;
        bp.lanes = lanes;
      }
    }
    if (!fit_any) break; /* larger cb: larger T */
  }
  if (bp.cb == 0) {
    if (only_lanes)
      return hetee_error(HETEE_ERR_SHAPE, "hemat choose: no lane packing (%d lanes at most%s) fits N = %zu",
                         max_lanes, input_from_client ? ", inputs from the client" : "", n);
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

int hetee_hemat_choose(const hetee_hemat_shape *s, uint32_t batch, size_t n, int input_from_client,
                       const hetee_hemat_costs *c, hetee_hemat_pack *out, double *cost) {
  return choose(s, batch, n, input_from_client, c, 0, 0, 0, out, cost);
}

int hemat_choose_engine(const hetee_hemat_shape *s, uint32_t batch, size_t n, int input_from_client,
                        const hetee_hemat_costs *c, hetee_hemat_pack *out, double *cost) {
  return choose(s, batch, n, input_from_client, c, 1, 0, 0, out, cost);
}

int hemat_choose_lanes(const hetee_hemat_shape *s, uint32_t batch, size_t n, int input_from_client, int max_lanes,
                       int cosets, int only_lanes, const hetee_hemat_costs *c, hetee_hemat_pack *out, double *cost) {
  if (max_lanes < 0 || max_lanes > 8 || (max_lanes & (max_lanes - 1)))
    return hetee_error(HETEE_ERR_INVALID_ARG, "hemat choose: max_lanes = %d (0, 1, 2, 4 or 8)", max_lanes);
  return choose(s, batch, n, input_from_client, c, cosets, max_lanes, only_lanes, out, cost);
}

int hetee_hemat_choose_lanes(const hetee_hemat_shape *s, uint32_t batch, size_t n, int input_from_client,
                             int max_lanes, const hetee_hemat_costs *c, hetee_hemat_pack *out, double *cost) {
  return hemat_choose_lanes(s, batch, n, input_from_client, max_lanes, 0, 0, c, out, cost);
}

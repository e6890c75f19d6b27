/*
 * weights.c — the model provider's side of the layout: coefficients of the
 * weight polynomials (kernel taps reversed inside each output channel's
 * window, hetee/hemat.h) and of the bias polynomials (the bias of output
 * channel o at every output position of o, for every sample slot of a
 * ciphertext). Both run where the weights are in the clear; the host only
 * ever sees their encryptions. A partially written buffer is wiped on
 * error. Cost: O(N) to clear the buffer plus one store per weight of the
 * block (mb*cb*kh*kw) or per output position of the group
 * (nimg*mb*oh*ow), and an O(1) re-check of the layout.
 */
#include <math.h>
#include <sodium.h>
#include <string.h>

#include "hemat/hemat_internal.h"

int hemat_check_layout(const hetee_hemat_layout *L) {
  if (!L) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat: NULL layout");
  hetee_hemat_layout r;
  int rc = hetee_hemat_layout_init(&L->shape, &L->pack, L->batch, L->n, &r);
  if (rc) return rc;
  if (r.oh != L->oh || r.ow != L->ow || r.ncb != L->ncb || r.nmb != L->nmb || r.hw != L->hw ||
      r.off_o != L->off_o || r.spacing_s != L->spacing_s || r.span_t != L->span_t || r.ngroups != L->ngroups ||
      r.n_in_cts != L->n_in_cts || r.n_w_cts != L->n_w_cts || r.n_out_cts != L->n_out_cts ||
      r.n_products != L->n_products || r.lanes != L->lanes || r.n_dense_in_cts != L->n_dense_in_cts)
    return hetee_error(HETEE_ERR_INVALID_ARG, "hemat: layout fields do not match its shape and packing "
                                              "(not made by hetee_hemat_layout_init)");
  return 0;
}

int hetee_hemat_weight_coeffs(const hetee_hemat_layout *L, const float *w, int mbk, int cbk, double *out) {
  if (!L || !w || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat weight_coeffs: NULL argument");
  int rc = hemat_check_layout(L);
  if (rc) return rc;
  if (mbk < 0 || mbk >= L->nmb || cbk < 0 || cbk >= L->ncb)
    return hetee_error(HETEE_ERR_INVALID_ARG, "hemat weight_coeffs: block (%d, %d) outside %d x %d", mbk, cbk,
                       L->nmb, L->ncb);
  const hetee_hemat_shape *s = &L->shape;
  const int cb = L->pack.cb, mb = L->pack.mb;
  memset(out, 0, L->n * sizeof *out);
  for (int m = 0; m < mb; m++) {
    int o = mbk * mb + m;
    if (o >= s->co) break;
    for (int ci = 0; ci < cb; ci++) {
      int c = cbk * cb + ci;
      if (c >= s->c) break;
      const float *k = w + ((size_t)o * (size_t)s->c + (size_t)c) * (size_t)s->kh * (size_t)s->kw;
      for (int dy = 0; dy < s->kh; dy++)
        for (int dx = 0; dx < s->kw; dx++) {
          float v = k[(size_t)dy * (size_t)s->kw + (size_t)dx];
          if (!isfinite(v)) {
            sodium_memzero(out, L->n * sizeof *out);
            return hetee_error(HETEE_ERR_INVALID_ARG, "hemat weight_coeffs: W[%d][%d][%d][%d] is not finite", o, c,
                               dy, dx);
          }
          /* O >= ci*HW + dy*w + dx: the exponent is in [m*S, m*S + O]
           * (lanes: lanes*[0, O] + m) */
          out[hemat_w_coef(L, (uint64_t)m, (uint64_t)ci, (uint64_t)dy, (uint64_t)dx)] = v;
        }
    }
  }
  return 0;
}

int hetee_hemat_bias_coeffs(const hetee_hemat_layout *L, const float *bias, int mbk, double *out) {
  if (!L || !bias || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat bias_coeffs: NULL argument");
  int rc = hemat_check_layout(L);
  if (rc) return rc;
  if (mbk < 0 || mbk >= L->nmb)
    return hetee_error(HETEE_ERR_INVALID_ARG, "hemat bias_coeffs: group %d outside 0..%d", mbk, L->nmb - 1);
  const hetee_hemat_shape *s = &L->shape;
  const int mb = L->pack.mb;
  memset(out, 0, L->n * sizeof *out);
  for (int m = 0; m < mb; m++) {
    int o = mbk * mb + m;
    if (o >= s->co) break;
    float v = bias[o];
    if (!isfinite(v)) {
      sodium_memzero(out, L->n * sizeof *out);
      return hetee_error(HETEE_ERR_INVALID_ARG, "hemat bias_coeffs: bias[%d] is not finite", o);
    }
    for (int j = 0; j < L->pack.nimg; j++)
      for (int oy = 0; oy < L->oh; oy++)
        for (int ox = 0; ox < L->ow; ox++)
          out[hemat_out_coef(L, (uint64_t)j, (uint64_t)m, (uint64_t)oy, (uint64_t)ox)] = v;
  }
  return 0;
}

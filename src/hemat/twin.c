/*
 * twin.c — the plaintext twin of the encrypted linear layer: builds every
 * input polynomial, weight polynomial and bias polynomial exactly as the
 * encrypted path encodes them (hemat.h layout, weights.c), multiplies them
 * in Z[X]/(X^N + 1) in double precision with the schoolbook negacyclic
 * product over nonzero coefficients (X^(i+j) = -X^(i+j-N) past N), sums
 * over the input blocks as hetee_hemat_conv_eval does, adds the bias and
 * reads the outputs at hetee_hemat_out_pos. Because the whole product is
 * formed — the "garbage" cross terms included — a layout in which any
 * other term reached an output position would show up as a difference
 * from a direct convolution (tests/hemat).
 *
 * Cost: one product per (group, output block, input block), each
 * nnz(input poly) * nnz(weight poly) <= (nimg*cb*h*w) * (mb*cb*kh*kw)
 * multiply-adds: ~ batch * co * c * cb * h*w * kh*kw in total (the price
 * of forming the garbage terms too); O(N) memory. It runs on the model
 * provider's side (it holds weights and inputs): every buffer is wiped.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "hemat/hemat_internal.h"

typedef struct {
  uint32_t *idx; /* ascending exponents */
  double *val;
  size_t nnz;
} sparse_poly;

static void gather(const double *p, size_t n, sparse_poly *sp) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0) {
      sp->idx[k] = (uint32_t)i;
      sp->val[k] = p[i];
      k++;
    }
  sp->nnz = k;
}

/* acc += a * b mod X^n + 1 (exact product terms; sums rounded in order). */
static void negacyclic_acc(const sparse_poly *a, const sparse_poly *b, size_t n, double *acc) {
  for (size_t i = 0; i < a->nnz; i++) {
    const size_t ea = a->idx[i];
    const double va = a->val[i];
    /* b's exponents are ascending: [0, split) stay below n, the rest wrap */
    size_t lo = 0, hi = b->nnz;
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (b->idx[mid] < n - ea) lo = mid + 1;
      else hi = mid;
    }
    double *up = acc + ea;
    for (size_t j = 0; j < lo; j++) up[b->idx[j]] += va * b->val[j];
    /* ea + idx >= n for the wrapping terms: X^(ea+idx) = -X^(ea+idx-n) */
    for (size_t j = lo; j < b->nnz; j++) acc[ea + b->idx[j] - n] -= va * b->val[j];
  }
}

/* Input polynomial of ciphertext (g, cbk): x[b][c][y][x] at
 * j*T + (c % cb)*HW + y*w + x for the samples b = g*nimg + j < batch. */
static void input_poly(const hetee_hemat_layout *L, const float *x, size_t g, int cbk, double *out) {
  const hetee_hemat_shape *s = &L->shape;
  const size_t HW = L->hw, nimg = (size_t)L->pack.nimg;
  memset(out, 0, L->n * sizeof *out);
  for (size_t j = 0; j < nimg; j++) {
    size_t b = g * nimg + j;
    if (b >= L->batch) break;
    for (int ci = 0; ci < L->pack.cb; ci++) {
      int c = cbk * L->pack.cb + ci;
      if (c >= s->c) break;
      const float *src = x + (b * (size_t)s->c + (size_t)c) * HW;
      for (int y = 0; y < s->h; y++)
        for (int xx = 0; xx < s->w; xx++)
          out[hemat_in_coef(L, j, (uint64_t)ci, (uint64_t)y, (uint64_t)xx)] = src[(size_t)y * (size_t)s->w + (size_t)xx];
    }
  }
}

int hetee_hemat_conv_twin(const hetee_hemat_layout *L, const float *w, const float *bias, const float *x,
                          double *y) {
  if (!L || !w || !x || !y) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat twin: NULL argument");
  int rc = hemat_check_layout(L);
  if (rc) return rc;
  const hetee_hemat_shape *s = &L->shape;
  const size_t n = L->n;
  const size_t nimg = (size_t)L->pack.nimg, oh = (size_t)L->oh, ow = (size_t)L->ow;
  const size_t dbytes = n * sizeof(double), ibytes = n * sizeof(uint32_t);
  double *poly = malloc(dbytes), *acc = malloc(dbytes);
  sparse_poly a = {malloc(ibytes), malloc(dbytes), 0}, k = {malloc(ibytes), malloc(dbytes), 0};
  if (!poly || !acc || !a.idx || !a.val || !k.idx || !k.val) {
    rc = hetee_error(HETEE_ERR_NOMEM, "hemat twin: %zu-coefficient buffers", n);
    goto err;
  }
  for (size_t g = 0; g < L->ngroups; g++) {
    for (int mbk = 0; mbk < L->nmb; mbk++) {
      memset(acc, 0, dbytes);
      for (int cbk = 0; cbk < L->ncb; cbk++) {
        input_poly(L, x, g, cbk, poly);
        gather(poly, n, &a);
        if ((rc = hetee_hemat_weight_coeffs(L, w, mbk, cbk, poly))) goto err;
        gather(poly, n, &k);
        negacyclic_acc(&a, &k, n, acc);
      }
      if (bias) {
        if ((rc = hetee_hemat_bias_coeffs(L, bias, mbk, poly))) goto err;
        for (size_t i = 0; i < n; i++) acc[i] += poly[i];
      }
      /* read-out at out_pos (hemat_out_coef) */
      for (size_t j = 0; j < nimg; j++) {
        size_t b = g * nimg + j;
        if (b >= L->batch) break;
        for (int m = 0; m < L->pack.mb; m++) {
          int o = mbk * L->pack.mb + m;
          if (o >= s->co) break;
          double *dst = y + (b * (size_t)s->co + (size_t)o) * oh * ow;
          for (size_t oy = 0; oy < oh; oy++)
            for (size_t ox = 0; ox < ow; ox++) dst[oy * ow + ox] = acc[hemat_out_coef(L, j, (uint64_t)m, oy, ox)];
        }
      }
    }
  }
  rc = 0;
err:
  /* weights, inputs and their products: wiped before release */
  if (poly) sodium_memzero(poly, dbytes);
  if (acc) sodium_memzero(acc, dbytes);
  if (a.val) sodium_memzero(a.val, dbytes);
  if (k.val) sodium_memzero(k.val, dbytes);
  free(poly);
  free(acc);
  free(a.idx);
  free(a.val);
  free(k.idx);
  free(k.val);
  return rc;
}

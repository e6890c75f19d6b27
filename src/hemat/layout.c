/*
 * layout.c — the coefficient-packed convolution layout of hetee/hemat.h:
 * checks a shape and packing against the ring degree and derives the
 * layout's constants (HW, O, S, T, ciphertext counts), and maps input and
 * output values to global positions (ciphertext index * N + coefficient).
 *
 * The layout turns a convolution into polynomial products: an input block
 * a(X) = sum x[c][y][x] X^(c*HW + y*w + x) times a "reversed" weight
 * polynomial k(X) = sum W[o][c][dy][dx] X^(m*S + O - (c*HW + dy*w + dx))
 * holds, at exponent m*S + O + oy*sh*w + ox*sw, exactly the terms with
 * y = oy*sh + dy, x = ox*sw + dx of output channel o = mbk*mb + m (the
 * same idea as the coefficient encodings of Juvekar et al., GAZELLE 2018,
 * and Huang et al., Cheetah 2022, without their rotations / share
 * conversions). docs/hemat.md proves that no other term reaches these
 * exponents and that nothing wraps around X^N = -1 when nimg * T <= N.
 *
 * Every size is computed in 64 bits with overflow checks, so a layout that
 * initialises has all of its positions below 2^64.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "hemat/hemat_internal.h"

/* r = a * b and r = a + b in uint64_t; 0 on overflow. */
static int mul_ok(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }

static int check_pos(const char *what, int v) {
  if (v < 1) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat layout: %s = %d, must be >= 1", what, v);
  return 0;
}

/* The per-sample constants of hemat.h for (shape, cb, mb):
 * HW = h*w, O = (cb-1)*HW + (kh-1)*w + (kw-1), S = cb*HW, T = mb*cb*HW. Returns 0, or HETEE_ERR_SHAPE when a value
 * overflows 64 bits (it then exceeds any N). Sizes must be >= 1 and
 * cb, mb, kh, kw in range (checked by the caller). */
int hemat_span(const hetee_hemat_shape *s, int cb, int mb, uint64_t *hw, uint64_t *off_o, uint64_t *sp_s,
               uint64_t *span_t) {
  uint64_t HW = 0, cbhw = 0, O = 0, S = 0, T = 0;
  if (!mul_ok((uint64_t)s->h, (uint64_t)s->w, &HW) || !mul_ok((uint64_t)cb, HW, &cbhw)) goto big;
  /* O = (cb-1)*HW + (kh-1)*w + (kw-1) < cb*HW (kh <= h, kw <= w) */
  O = cbhw - HW + (uint64_t)(s->kh - 1) * (uint64_t)s->w + (uint64_t)(s->kw - 1);
  /* S = cb*HW: a channel's taps span [m*S, m*S + O + cb*HW - 1] and its
   * outputs [m*S + O, m*S + cb*HW - 1]; T = mb*cb*HW: the last O positions
   * of a sample's garbage fall on the next sample's first O positions,
   * which hold no output, and what wraps past X^N lands in [0, O), below the
   * first output (docs/hemat.md, "Why it is collision-free"). */
  S = cbhw;
  if (!mul_ok((uint64_t)mb, cbhw, &T)) goto big;
  *hw = HW;
  *off_o = O;
  *sp_s = S;
  *span_t = T;
  return 0;
big:
  return hetee_error(HETEE_ERR_SHAPE, "hemat layout: c=%d h=%d w=%d with cb=%d mb=%d overflows 64-bit positions",
                     s->c, s->h, s->w, cb, mb);
}

int hemat_check_shape(const hetee_hemat_shape *s) {
  int rc;
  if ((rc = check_pos("c", s->c)) || (rc = check_pos("h", s->h)) || (rc = check_pos("w", s->w)) ||
      (rc = check_pos("co", s->co)) || (rc = check_pos("kh", s->kh)) || (rc = check_pos("kw", s->kw)) ||
      (rc = check_pos("sh", s->sh)) || (rc = check_pos("sw", s->sw)))
    return rc;
  if (s->kh > s->h || s->kw > s->w)
    return hetee_error(HETEE_ERR_SHAPE, "hemat layout: kernel %dx%d larger than the (padded) input %dx%d", s->kh,
                       s->kw, s->h, s->w);
  return 0;
}

int hemat_check_n(size_t n) {
  if (n < 1 || (n & (n - 1)) || n > HEMAT_MAX_N)
    return hetee_error(HETEE_ERR_INVALID_ARG, "hemat layout: ring degree N = %zu is not a power of two in [1, 2^31]",
                       n);
  return 0;
}

int hetee_hemat_layout_init(const hetee_hemat_shape *s, const hetee_hemat_pack *p, uint32_t batch, size_t n,
                            hetee_hemat_layout *out) {
  if (!s || !p || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat layout: NULL argument");
  int rc;
  if ((rc = hemat_check_shape(s)) || (rc = hemat_check_n(n))) return rc;
  if (batch < 1) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat layout: batch = 0, must be >= 1");
  if (p->cb < 1 || p->cb > s->c)
    return hetee_error(HETEE_ERR_INVALID_ARG, "hemat layout: cb = %d, must be in 1..c = %d", p->cb, s->c);
  if (p->mb < 1 || p->mb > s->co)
    return hetee_error(HETEE_ERR_INVALID_ARG, "hemat layout: mb = %d, must be in 1..co = %d", p->mb, s->co);
  if (p->nimg < 1) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat layout: nimg = %d, must be >= 1", p->nimg);
  if (p->lanes < 0 || p->lanes > 8 || (p->lanes & (p->lanes - 1)))
    return hetee_error(HETEE_ERR_INVALID_ARG, "hemat layout: lanes = %d, must be 0, 1, 2, 4 or 8", p->lanes);
  const int lanes = p->lanes > 1 ? p->lanes : 1;
  if (lanes > 1 && p->mb != lanes)
    return hetee_error(HETEE_ERR_INVALID_ARG, "hemat layout: %d lanes need mb = %d (mb = %d)", lanes, lanes, p->mb);
  if ((size_t)lanes > n)
    return hetee_error(HETEE_ERR_INVALID_ARG, "hemat layout: %d lanes in a ring of degree %zu", lanes, n);
  /* lanes: the mb = 1 layout of the subring of dimension N / lanes */
  const size_t cap = n / (size_t)lanes;

  uint64_t HW = 0, O = 0, S = 0, T = 0, total = 0;
  if ((rc = hemat_span(s, p->cb, lanes > 1 ? 1 : p->mb, &HW, &O, &S, &T))) return rc;
  if (T > (uint64_t)cap)
    return hetee_error(HETEE_ERR_SHAPE,
                       "hemat layout: packing cb=%d mb=%d does not fit N = %zu: one sample spans T = %llu "
                       "coefficients%s (reduce cb or mb)",
                       p->cb, p->mb, n, (unsigned long long)T, lanes > 1 ? " of the subring N / lanes" : "");
  if (!mul_ok((uint64_t)p->nimg, T, &total) || total > (uint64_t)cap)
    return hetee_error(HETEE_ERR_SHAPE,
                       "hemat layout: nimg = %d samples of T = %llu coefficients (cb=%d mb=%d lanes=%d) do not fit "
                       "N = %zu; at most %llu fit",
                       p->nimg, (unsigned long long)T, p->cb, p->mb, lanes, n, (unsigned long long)((uint64_t)cap / T));

  hetee_hemat_layout L;
  memset(&L, 0, sizeof L);
  L.shape = *s;
  L.pack = *p;
  L.n = n;
  L.batch = batch;
  L.oh = (s->h - s->kh) / s->sh + 1;
  L.ow = (s->w - s->kw) / s->sw + 1;
  L.ncb = (s->c - 1) / p->cb + 1;
  L.nmb = (s->co - 1) / p->mb + 1;
  L.hw = (size_t)HW;
  L.off_o = (size_t)O;
  L.spacing_s = (size_t)S;
  L.span_t = (size_t)T;
  L.ngroups = ((size_t)batch - 1) / (size_t)p->nimg + 1;
  /* ngroups <= 2^32 and ncb, nmb < 2^31: the pairwise products fit in
   * 64 bits; the triple product and the global positions are checked */
  uint64_t prod, top;
  L.n_in_cts = L.ngroups * (size_t)L.ncb;
  L.n_w_cts = (size_t)L.nmb * (size_t)L.ncb;
  L.n_out_cts = L.ngroups * (size_t)L.nmb;
  if (!mul_ok((uint64_t)L.n_in_cts, (uint64_t)L.nmb, &prod))
    return hetee_error(HETEE_ERR_SHAPE, "hemat layout: %zu x %d x %d products overflow 64 bits", L.ngroups, L.nmb,
                       L.ncb);
  L.n_products = (size_t)prod;
  L.lanes = lanes;
  L.n_dense_in_cts = (L.n_in_cts - 1) / (size_t)lanes + 1;
  uint64_t most = L.n_in_cts;
  if (L.n_out_cts > most) most = L.n_out_cts;
  if (L.n_w_cts > most) most = L.n_w_cts;
  if (!mul_ok(most, (uint64_t)n, &top))
    return hetee_error(HETEE_ERR_SHAPE, "hemat layout: %llu ciphertexts of N = %zu overflow 64-bit positions",
                       (unsigned long long)most, n);
  *out = L;
  return 0;
}

uint64_t hetee_hemat_in_pos(const hetee_hemat_layout *L, uint32_t b, int c, int y, int x) {
  if (!L || b >= L->batch || c < 0 || c >= L->shape.c || y < 0 || y >= L->shape.h || x < 0 || x >= L->shape.w)
    return UINT64_MAX;
  uint64_t nimg = (uint64_t)L->pack.nimg, cb = (uint64_t)L->pack.cb;
  uint64_t g = b / nimg, j = b % nimg;
  uint64_t ct = g * (uint64_t)L->ncb + (uint64_t)c / cb;
  return ct * (uint64_t)L->n + hemat_in_coef(L, j, (uint64_t)c % cb, (uint64_t)y, (uint64_t)x);
}

uint64_t hetee_hemat_in_pos_dense(const hetee_hemat_layout *L, uint32_t b, int c, int y, int x) {
  uint64_t pos = hetee_hemat_in_pos(L, b, c, y, x);
  if (pos == UINT64_MAX || L->lanes <= 1) return pos;
  uint64_t n = (uint64_t)L->n, ct = pos / n, lanes = (uint64_t)L->lanes;
  /* the sparse coefficient is a multiple of lanes: residue ct % lanes is free */
  return (ct / lanes) * n + pos % n + ct % lanes;
}

uint64_t hetee_hemat_out_pos(const hetee_hemat_layout *L, uint32_t b, int o, int oy, int ox) {
  if (!L || b >= L->batch || o < 0 || o >= L->shape.co || oy < 0 || oy >= L->oh || ox < 0 || ox >= L->ow)
    return UINT64_MAX;
  uint64_t nimg = (uint64_t)L->pack.nimg, mb = (uint64_t)L->pack.mb;
  uint64_t g = b / nimg, j = b % nimg;
  uint64_t ct = g * (uint64_t)L->nmb + (uint64_t)o / mb;
  return ct * (uint64_t)L->n + hemat_out_coef(L, j, (uint64_t)o % mb, (uint64_t)oy, (uint64_t)ox);
}

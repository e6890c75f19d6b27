/*
 * hetee/hemat.h — encrypted linear layers on the untrusted host.
 *
 * Every linear layer (Gemm/MatMul and Conv) is evaluated as one generic
 * *coefficient-packed convolution*: values are the coefficients of CKKS
 * plaintext polynomials (hetee_ckks_encode_coeffs), and a single ct x ct
 * product of an input polynomial and a weight polynomial computes a whole
 * block of the layer (a negacyclic polynomial product is a convolution).
 * The host never rotates, never relinearises and needs no evaluation key:
 * it multiplies and adds (degree-2 results), and the enclave decrypts the
 * degree-2 outputs directly with s and s^2 when it refreshes them. The
 * price is sparsity: an output ciphertext carries at most N / cb useful
 * coefficients (cb = input block length), which the planner weighs
 * (hetee_hemat_choose). docs/hemat.md derives the layout and proves it
 * collision-free.
 *
 * Geometry (per sample): input c x h x w (h, w include zero padding the
 * input layout leaves empty), kernel co x c x kh x kw, stride sh x sw,
 * output co x oh x ow with oh = (h - kh) / sh + 1. A dense layer is the
 * case h = w = kh = kw = sh = sw = 1 (c = in features, co = out features).
 *
 * Packing (hetee_hemat_pack): input channels in blocks of cb, output
 * channels in groups of mb per weight polynomial, nimg samples per
 * ciphertext. With HW = h*w, O = (cb-1)*HW + (kh-1)*w + (kw-1):
 *   input  value (b, c, y, x)   -> ct (g, cbk), coefficient
 *                                   j*T + (c % cb)*HW + y*w + x
 *   weight (o, c, dy, dx)       -> weight poly (mbk, cbk), coefficient
 *                                   (o % mb)*S + O - ((c % cb)*HW + dy*w + dx)
 *   output (b, o, oy, ox)       -> ct (g, mbk), coefficient
 *                                   j*T + (o % mb)*S + O + (oy*sh)*w + ox*sw
 * where g = b / nimg, j = b % nimg, cbk = c / cb, mbk = o / mb,
 * S = cb*HW (spacing of output channels) and T = mb*cb*HW (span of one
 * sample); nimg*T <= N. A sample's product terms reach O positions past
 * its span, onto the next sample's first O positions, and the last
 * sample's wrap (negated) into [0, O): none of them holds an output.
 * Ciphertext indices: input (g, cbk) -> g*ncb + cbk; weight (mbk, cbk) ->
 * mbk*ncb + cbk; output (g, mbk) -> g*nmb + mbk; global position =
 * index * N + coefficient (the enclave's refresh maps use these).
 *
 * Lane layout (pack.lanes = L in {2, 4, 8}, mb == L): the mb = 1 layout
 * of the subring of dimension N/L (Y = X^L), with T = cb*HW, O as above
 * and nimg*T <= N/L; in coefficients of the full ring:
 *   input  (b, c, y, x)    -> L*(j*T + (c % cb)*HW + y*w + x)
 *   weight (o, c, dy, dx)  -> L*(O - ((c % cb)*HW + dy*w + dx)) + (o % L)
 *   output (b, o, oy, ox)  -> L*(j*T + O + oy*sh*w + ox*sw) + (o % L)
 * (ciphertext indices as above). A product term lands at L*(u + v) + m:
 * residue m mod L is exactly the subring's mb = 1 product of channel m
 * (collision-free by the same proof in Y; a wrap past X^N = -1 is the
 * subring's wrap past Y^(N/L) = -1). Inputs are sparse (every L-th
 * coefficient): the enclave encrypts them dense, L sparse ciphertexts in
 * one (hetee_hemat_in_pos_dense), and the host splits each dense one with
 * hetee_ckks_evaluator_expand (lane q of dense ciphertext D = sparse input
 * ciphertext D*L + q; encode at scale / L).
 *
 * Thread-safety: layouts are immutable values; the kernel uses OpenMP
 * over output ciphertexts when threads > 1.
 */
#ifndef HETEE_HEMAT_H
#define HETEE_HEMAT_H

#include <stddef.h>
#include <stdint.h>

#include "hetee/ckks.h"
#include "hetee/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hetee_hemat_shape {
  int c, h, w;    /* input channels, padded height and width */
  int co, kh, kw; /* output channels, kernel size */
  int sh, sw;     /* stride */
} hetee_hemat_shape;

typedef struct hetee_hemat_pack {
  int cb;    /* input channels per block (1..c) */
  int mb;    /* output channels per weight polynomial (1..co) */
  int nimg;  /* samples per ciphertext (>= 1) */
  int lanes; /* 0 or 1: the layout above; else a power of two 2..8 with
                mb == lanes: the lane layout (below) */
} hetee_hemat_pack;

/* Derived, immutable description of one layer's packing for one batch. */
typedef struct hetee_hemat_layout {
  hetee_hemat_shape shape;
  hetee_hemat_pack pack;
  size_t n;          /* ring degree N */
  uint32_t batch;
  int oh, ow;
  int ncb, nmb;      /* ceil(c / cb), ceil(co / mb) */
  size_t hw, off_o, spacing_s, span_t;
  size_t ngroups;    /* ceil(batch / nimg) */
  size_t n_in_cts;   /* ngroups * ncb */
  size_t n_w_cts;    /* nmb * ncb (independent of the batch) */
  size_t n_out_cts;  /* ngroups * nmb */
  size_t n_products; /* ngroups * nmb * ncb */
  int lanes;         /* 1, or pack.lanes (2..8) for a lane layout */
  size_t n_dense_in_cts; /* ceil(n_in_cts / lanes): the dense ciphertexts
                            the enclave encrypts before the host's expansion
                            (n_in_cts when lanes == 1) */
} hetee_hemat_layout;

/* Checks the shape and packing (sizes >= 1, kernel fits, nimg * T <= n)
 * and fills *out. n must be a power of two <= 2^31 (coefficients then fit
 * the uint32_t indices of hetee_ckks_decode_coeffs); nimg > batch is
 * allowed (one partly empty group). Errors: HETEE_ERR_INVALID_ARG (a size
 * < 1, cb > c, mb > co, batch 0, bad n), HETEE_ERR_SHAPE (kernel larger
 * than input, packing does not fit N, a count or a global position
 * overflows 64 bits: the detail says which). */
HETEE_API int hetee_hemat_layout_init(const hetee_hemat_shape *s, const hetee_hemat_pack *p, uint32_t batch,
                                      size_t n, hetee_hemat_layout *out) HETEE_WUR;

/* Global positions (ct index * N + coefficient); arguments must be in
 * range (b < batch, c < shape.c, y < h, x < w; o < co, oy < oh, ox < ow):
 * out of range (or L NULL) gives UINT64_MAX, which is never a position. */
HETEE_API uint64_t hetee_hemat_in_pos(const hetee_hemat_layout *L, uint32_t b, int c, int y, int x);
HETEE_API uint64_t hetee_hemat_out_pos(const hetee_hemat_layout *L, uint32_t b, int o, int oy, int ox);
/* Where the enclave puts input value (b, c, y, x) before the host's
 * expansion: with in_pos = s*N + coef, (s / lanes)*N + coef + (s % lanes)
 * (= in_pos when lanes == 1); positions are below n_dense_in_cts * N.
 * UINT64_MAX as in_pos. */
HETEE_API uint64_t hetee_hemat_in_pos_dense(const hetee_hemat_layout *L, uint32_t b, int c, int y, int x);

/* Coefficients (out: N doubles, fully written) of weight polynomial
 * (mbk, cbk) from W[co][c][kh][kw] (row-major floats, as hetee_nn stores
 * Conv weights; a dense W[out][in] is the same with kh = kw = 1).
 * Errors (both functions): HETEE_ERR_INVALID_ARG (NULL, block index out of
 * range, a non-finite value: out is then wiped, a layout not made by
 * hetee_hemat_layout_init). */
HETEE_API int hetee_hemat_weight_coeffs(const hetee_hemat_layout *L, const float *w, int mbk, int cbk,
                                        double *out) HETEE_WUR;
/* Coefficients (N doubles) of the bias polynomial of output group mbk:
 * bias[o] at every output position of o for all nimg samples of a group,
 * to be added (at the product's scale) to the output ciphertexts. */
HETEE_API int hetee_hemat_bias_coeffs(const hetee_hemat_layout *L, const float *bias, int mbk,
                                      double *out) HETEE_WUR;

/* Cost model: seconds per operation measured on the running machine (or
 * defaults), and weights that express how scarce each resource is. */
typedef struct hetee_hemat_costs {
  double t_product;      /* host: one ct x ct product accumulated in degree 2 */
  double t_enclave_enc;  /* enclave: one fresh coefficient encryption */
  double t_enclave_dec;  /* enclave: one degree-2 decryption + decode */
  double t_client_enc;   /* data provider: one public-key encryption */
  double enclave_weight; /* multiplies enclave seconds (scarcity), e.g. 4 */
  size_t max_weight_cts; /* budget for the model's weight ciphertexts per layer (0: none) */
  double t_expand;       /* host: one key switch of a coefficient expansion
                            (hetee_ckks_evaluator_expand into L lanes costs
                            L - 1); used by hemat_choose's lane packings */
  double t_out_host;     /* host: per output ciphertext, what a bound run does
                            with it (bias, rescale, serialization); 0 in the
                            defaults */
  double t_enclave_dec_coset; /* enclave: an output decrypted as one coset
                            (engine plans); 0: 0.75 t_enclave_dec */
} hetee_hemat_costs;

/* Defaults measured on the development machine (docs/hemat.md). */
HETEE_API void hetee_hemat_costs_default(hetee_hemat_costs *c);
/* The costs the encrypted engine plans with (hetee_engine_plan_build without
 * costs of its own): what a bound run pays per product, fresh input and
 * output, measured in the engine's own paths, and an enclave weight of
 * 85/15 (docs/hemat.md, "The engine's costs"). */
HETEE_API void hetee_hemat_costs_engine(hetee_hemat_costs *c);

/* Picks the packing of minimal weighted cost for the shape and batch
 * (c NULL: hetee_hemat_costs_default):
 * enumerates cb, mb, nimg, counts products, enclave encryptions (input
 * ciphertexts, unless input_from_client) and decryptions (output
 * ciphertexts), weight ciphertexts; *cost (may be NULL) gets the predicted
 * weighted seconds. Errors: HETEE_ERR_SHAPE (nothing fits N). */
HETEE_API int hetee_hemat_choose(const hetee_hemat_shape *s, uint32_t batch, size_t n, int input_from_client,
                                 const hetee_hemat_costs *c, hetee_hemat_pack *out, double *cost) HETEE_WUR;

/* hetee_hemat_choose that may also pick a lane packing (pack.lanes 2..
 * max_lanes, powers of two; max_lanes 0 or 1: never, as hetee_hemat_choose).
 * Only for inputs the enclave encrypts (input_from_client must be 0 for a
 * lane packing to be considered) and only when the host holds the Galois
 * keys of hetee_ckks_expand_steps(ctx, lanes): the caller says so through
 * max_lanes. A lane packing costs
 *   n_products * t_product + enclave_weight * (n_dense_in_cts * t_enclave_enc
 *   + n_out_cts * t_enclave_dec) + n_dense_in_cts * (lanes - 1) * t_expand.
 * Errors: those of hetee_hemat_choose; HETEE_ERR_INVALID_ARG for
 * max_lanes not in {0, 1, 2, 4, 8}. */
HETEE_API int hetee_hemat_choose_lanes(const hetee_hemat_shape *s, uint32_t batch, size_t n, int input_from_client,
                                       int max_lanes, const hetee_hemat_costs *c, hetee_hemat_pack *out,
                                       double *cost) HETEE_WUR;

/* The host kernel: out[g*nmb + mbk] = sum_cbk in[g*ncb + cbk] * w[mbk*ncb + cbk]
 * (+ bias[mbk] when bias is not NULL), degree 2, not relinearised, scale =
 * in scale * w scale (the bias must be at that scale and the same level).
 * Cost: n_products ct x ct products (no key switch, no rotation).
 * out[i] must be distinct, non-aliasing objects (fresh from ciphertext_new
 * or reused: a reused output is overwritten). threads > 1: OpenMP over
 * output ciphertexts; the result does not depend on threads.
 * Errors: HETEE_ERR_INVALID_ARG (NULL argument or array entry, threads < 1,
 * an output aliasing an operand or repeated, a layout not made by
 * layout_init), HETEE_ERR_CONTEXT (layout N != context N), and those of
 * hetee_ckks_eval_mul_acc / eval_add (level, scale, context mismatch),
 * whose detail names the output ciphertext. */
HETEE_API int hetee_hemat_conv_eval(const hetee_ckks_context *ctx, const hetee_hemat_layout *L,
                                    const hetee_ckks_ciphertext *const *in, const hetee_ckks_ciphertext *const *w,
                                    const hetee_ckks_ciphertext *const *bias, int threads,
                                    hetee_ckks_ciphertext *const *out) HETEE_WUR;

/* The same for outputs first .. first+count-1 only, written to
 * out[0..count) (out[j] is output first+j), in the calling thread: equal
 * bit for bit to those outputs of hetee_hemat_conv_eval. For callers that
 * spread the outputs over their own threads (the engine's host pool).
 * Checks only the operands these outputs use. Errors: those of
 * hetee_hemat_conv_eval, and HETEE_ERR_INVALID_ARG for a range outside
 * the layout's outputs. */
HETEE_API int hetee_hemat_conv_eval_range(const hetee_ckks_context *ctx, const hetee_hemat_layout *L,
                                          const hetee_ckks_ciphertext *const *in,
                                          const hetee_ckks_ciphertext *const *w,
                                          const hetee_ckks_ciphertext *const *bias, size_t first, size_t count,
                                          hetee_ckks_ciphertext *const *out) HETEE_WUR;

/* Plaintext twin of the whole path (layout -> polynomial products ->
 * read-out), in double precision with exact negacyclic products:
 * x is batch x c x h x w floats, y gets batch x co x oh x ow; bias may be
 * NULL (no bias). Used by the tests to prove a packing collision-free
 * against a direct convolution. Runs where weights and inputs are in the
 * clear; its buffers are wiped. Errors: HETEE_ERR_INVALID_ARG (NULL, bad
 * layout, non-finite weight), HETEE_ERR_NOMEM. */
HETEE_API int hetee_hemat_conv_twin(const hetee_hemat_layout *L, const float *w, const float *bias,
                                    const float *x, double *y) HETEE_WUR;

#ifdef __cplusplus
}
#endif
#endif

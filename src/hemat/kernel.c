/*
 * kernel.c — the host's encrypted linear layer (hetee_hemat_conv_eval):
 * for every output ciphertext (g, mbk), the sum over input blocks cbk of
 * the ct x ct products in[g, cbk] * w[mbk, cbk], kept in degree 2 (lazy
 * accumulation, hetee_ckks_eval_mul_acc: the tensor product of RNS/NTT
 * rows, one modular reduction per coefficient, no key switch), plus the
 * bias ciphertext of group mbk. Because inputs and weights are coefficient
 * encoded (hemat.h), each product is a polynomial product that computes a
 * whole block of the convolution; nothing is rotated or relinearised and
 * the host holds no evaluation key: the enclave decrypts the degree-2
 * results with (1, s, s^2).
 *
 * Parallelism: OpenMP over output ciphertexts (schedule(dynamic): with
 * few outputs per thread, uneven finishing times matter); each output is
 * written by one thread in a fixed order of cbk, so results do not depend
 * on the thread count. The CKKS calls are reentrant for distinct output
 * objects; the context's own thread count is left as it is (1 on the
 * host), so there is no nested parallelism.
 */
#include <stdio.h>
#include <stdlib.h>

#include "hemat/hemat_internal.h"

/* Output ciphertext i = g*nmb + mbk (see the file top). */
static int eval_one(const hetee_ckks_context *ctx, const hetee_hemat_layout *L, const hetee_ckks_ciphertext *const *in,
                    const hetee_ckks_ciphertext *const *w, const hetee_ckks_ciphertext *const *bias, size_t i,
                    hetee_ckks_ciphertext *out) {
  size_t g = i / (size_t)L->nmb, mbk = i % (size_t)L->nmb, ncb = (size_t)L->ncb;
  const hetee_ckks_ciphertext *const *a = in + g * ncb, *const *k = w + mbk * ncb;
  /* the first product overwrites whatever a reused out held */
  int rc = hetee_ckks_eval_mul(ctx, a[0], k[0], out);
  for (size_t cbk = 1; !rc && cbk < ncb; cbk++) rc = hetee_ckks_eval_mul_acc(ctx, a[cbk], k[cbk], out);
  if (!rc && bias) rc = hetee_ckks_eval_add(ctx, out, bias[mbk], out);
  return rc;
}

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (const void *const *)a, y = (uintptr_t) * (const void *const *)b;
  return (x > y) - (x < y);
}

/* Every pointer non-NULL; the outputs distinct and none of them an input,
 * weight or bias (an output aliasing an operand would be overwritten by
 * the first product). O((n_in + n_w + n_out) log). */
static int check_operands(const hetee_hemat_layout *L, const hetee_ckks_ciphertext *const *in,
                          const hetee_ckks_ciphertext *const *w, const hetee_ckks_ciphertext *const *bias,
                          hetee_ckks_ciphertext *const *out) {
  for (size_t i = 0; i < L->n_in_cts; i++)
    if (!in[i]) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: in[%zu] is NULL", i);
  for (size_t i = 0; i < L->n_w_cts; i++)
    if (!w[i]) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: w[%zu] is NULL", i);
  for (size_t i = 0; bias && i < (size_t)L->nmb; i++)
    if (!bias[i]) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: bias[%zu] is NULL", i);
  for (size_t i = 0; i < L->n_out_cts; i++)
    if (!out[i]) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: out[%zu] is NULL", i);
  size_t nops = L->n_in_cts + L->n_w_cts + (bias ? (size_t)L->nmb : 0), no = L->n_out_cts;
  const void **ops = malloc(nops * sizeof *ops), **outs = malloc(no * sizeof *outs);
  int rc = 0;
  if (!ops || !outs) {
    rc = hetee_error(HETEE_ERR_NOMEM, "hemat conv_eval: %zu operand pointers", nops + no);
    goto done;
  }
  size_t k = 0;
  for (size_t i = 0; i < L->n_in_cts; i++) ops[k++] = in[i];
  for (size_t i = 0; i < L->n_w_cts; i++) ops[k++] = w[i];
  for (size_t i = 0; bias && i < (size_t)L->nmb; i++) ops[k++] = bias[i];
  for (size_t i = 0; i < no; i++) outs[i] = out[i];
  qsort(ops, nops, sizeof *ops, cmp_ptr);
  qsort(outs, no, sizeof *outs, cmp_ptr);
  for (size_t i = 0; i < no; i++) {
    if (i > 0 && outs[i] == outs[i - 1]) {
      rc = hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: the same object appears twice in out[]");
      goto done;
    }
    if (bsearch(&outs[i], ops, nops, sizeof *ops, cmp_ptr)) {
      rc = hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: an output aliases an input, weight or bias");
      goto done;
    }
  }
done:
  free(ops);
  free(outs);
  return rc;
}

/* Outputs first..first+count-1 into out[0..count): the work of one caller's
 * share (a thread pool's item, src/host/infer.c). Checks only what these
 * outputs touch (O(count * ncb)): every operand non-NULL and no output one
 * of its own operands or repeated in out[]. */
int hetee_hemat_conv_eval_range(const hetee_ckks_context *ctx, const hetee_hemat_layout *L,
                                const hetee_ckks_ciphertext *const *in, const hetee_ckks_ciphertext *const *w,
                                const hetee_ckks_ciphertext *const *bias, size_t first, size_t count,
                                hetee_ckks_ciphertext *const *out) {
  if (!ctx || !L || !in || !w || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: NULL argument");
  int rc = hemat_check_layout(L);
  if (rc) return rc;
  if (L->n != hetee_ckks_context_n(ctx))
    return hetee_error(HETEE_ERR_CONTEXT, "hemat conv_eval: layout made for N = %zu, context has N = %zu", L->n,
                       hetee_ckks_context_n(ctx));
  if (first > L->n_out_cts || count > L->n_out_cts - first)
    return hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: outputs %zu..%zu of %zu", first, first + count,
                       L->n_out_cts);
  size_t ncb = (size_t)L->ncb;
  for (size_t j = 0; j < count; j++) {
    size_t i = first + j, g = i / (size_t)L->nmb, mbk = i % (size_t)L->nmb;
    const hetee_ckks_ciphertext *o = out[j];
    if (!o) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: out[%zu] is NULL", j);
    for (size_t k = 0; k < j; k++)
      if (out[k] == o) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: the same object appears twice in out[]");
    if (bias && (!bias[mbk] || bias[mbk] == o))
      return hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: bias[%zu] NULL or aliased by an output", mbk);
    for (size_t cbk = 0; cbk < ncb; cbk++) {
      const hetee_ckks_ciphertext *a = in[g * ncb + cbk], *b = w[mbk * ncb + cbk];
      if (!a || !b) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: an input or weight is NULL");
      if (a == o || b == o)
        return hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: an output aliases an input, weight or bias");
    }
  }
  for (size_t j = 0; j < count; j++)
    if ((rc = eval_one(ctx, L, in, w, bias, first + j, out[j])))
      return hetee_error(rc, "hemat conv_eval: output ciphertext %zu: %s", first + j, hetee_last_error());
  return 0;
}

int hetee_hemat_conv_eval(const hetee_ckks_context *ctx, const hetee_hemat_layout *L,
                          const hetee_ckks_ciphertext *const *in, const hetee_ckks_ciphertext *const *w,
                          const hetee_ckks_ciphertext *const *bias, int threads, hetee_ckks_ciphertext *const *out) {
  if (!ctx || !L || !in || !w || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: NULL argument");
  if (threads < 1) return hetee_error(HETEE_ERR_INVALID_ARG, "hemat conv_eval: threads = %d, must be >= 1", threads);
  int rc = hemat_check_layout(L);
  if (rc) return rc;
  if (L->n != hetee_ckks_context_n(ctx))
    return hetee_error(HETEE_ERR_CONTEXT, "hemat conv_eval: layout made for N = %zu, context has N = %zu", L->n,
                       hetee_ckks_context_n(ctx));
  if ((rc = check_operands(L, in, w, bias, out))) return rc;

  const long nout = (long)L->n_out_cts;
  int err = 0;
  long err_at = -1;
  char detail[256] = "";
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (threads > 1)
  for (long i = 0; i < nout; i++) {
    int stop;
#pragma omp atomic read
    stop = err;
    if (stop) continue; /* an output failed: skip the rest */
    int r = eval_one(ctx, L, in, w, bias, (size_t)i, out[i]);
    if (r) {
      /* the detail is per thread: carry it to the caller's thread */
#pragma omp critical(hetee_hemat_eval_err)
      if (!err || i < err_at) {
        err_at = i;
        snprintf(detail, sizeof detail, "%s", hetee_last_error());
#pragma omp atomic write
        err = r;
      }
    }
  }
  if (err) return hetee_error(err, "hemat conv_eval: output ciphertext %ld: %s", err_at, detail);
  return 0;
}

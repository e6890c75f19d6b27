/*
 * evaluator.c — the evaluator object: the OpenMP thread count of the
 * operations run through it and their reusable scratch (key-switching ModUp
 * digits and work rows, the permuted c1 of a rotation, rescale rows).
 *
 * A context is immutable and may be shared by any number of threads; each
 * thread uses its own evaluator. hetee_ckks_evaluator_new sizes the buffers
 * for the context's top level, so no operation through it allocates
 * polynomial-sized memory; they are wiped when the evaluator is freed. The
 * context-only functions of ckks.h run on a temporary one-thread evaluator
 * (ckks_ev_temp) whose buffers are allocated for the operation's level on
 * first use and freed at the end, so both forms share one code path.
 */
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_internal.h"

#define EV_MAX_THREADS 1024

static void buf_free(const hetee_ckks_evaluator *ev, uint64_t *p, size_t words) {
  if (ev->wipe) hetee_free_secure(p, words * 8);
  else hetee_free(p);
}

/* Grows *p to at least `words` words (contents not kept). */
static int buf_reserve(hetee_ckks_evaluator *ev, uint64_t **p, size_t *cap, size_t words) {
  if (*p && *cap >= words) return 0;
  buf_free(ev, *p, *cap);
  *p = NULL;
  *cap = 0;
  uint64_t *q = ckks_scratch(words);
  if (!q) return hetee_error(HETEE_ERR_NOMEM, "evaluator scratch (%zu words)", words);
  *p = q;
  *cap = words;
  return 0;
}

void ckks_ev_temp(const hetee_ckks_context *ctx, hetee_ckks_evaluator *ev) {
  memset(ev, 0, sizeof *ev);
  ev->ctx = ctx;
  ev->threads = 1;
}

void ckks_ev_release(hetee_ckks_evaluator *ev) {
  buf_free(ev, ev->ext, ev->ext_cap);
  buf_free(ev, ev->work, ev->work_cap);
  buf_free(ev, ev->aux, ev->aux_cap);
  buf_free(ev, ev->sum, ev->sum_cap);
  ev->ext = ev->work = ev->aux = ev->sum = NULL;
  ev->ext_cap = ev->work_cap = ev->aux_cap = ev->sum_cap = 0;
}

int ckks_ev_ks_scratch(hetee_ckks_evaluator *ev, int l) {
  int rc = buf_reserve(ev, &ev->ext, &ev->ext_cap, ckks_ks_ext_words(ev->ctx, l));
  if (rc) return rc;
  return buf_reserve(ev, &ev->work, &ev->work_cap, ckks_ks_work_words(ev->ctx, l));
}

int ckks_ev_aux_scratch(hetee_ckks_evaluator *ev, size_t words) {
  return buf_reserve(ev, &ev->aux, &ev->aux_cap, words);
}

int ckks_ev_sum_scratch(hetee_ckks_evaluator *ev, size_t words) {
  return buf_reserve(ev, &ev->sum, &ev->sum_cap, words);
}

int ckks_ev_check(const hetee_ckks_evaluator *ev) {
  if (!ev || !ev->ctx) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL evaluator");
  return 0;
}

int hetee_ckks_evaluator_new(const hetee_ckks_context *ctx, int threads, hetee_ckks_evaluator **out) {
  if (!out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  if (!ctx) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (threads < 1 || threads > EV_MAX_THREADS)
    return hetee_error(HETEE_ERR_INVALID_ARG, "evaluator threads must be 1..%d (got %d)", EV_MAX_THREADS, threads);
  hetee_ckks_evaluator *ev = calloc(1, sizeof *ev);
  if (!ev) return hetee_error(HETEE_ERR_NOMEM, "evaluator");
  ev->ctx = ctx;
  ev->threads = threads;
  ev->wipe = 1;
  int top = ctx->nq - 1, rc;
  if ((rc = ckks_ev_ks_scratch(ev, top)) || (rc = ckks_ev_aux_scratch(ev, (size_t)ctx->nq * ctx->n))) {
    hetee_ckks_evaluator_free(ev);
    return rc;
  }
  *out = ev;
  return 0;
}

void hetee_ckks_evaluator_free(hetee_ckks_evaluator *ev) {
  if (!ev) return;
  ckks_ev_release(ev);
  free(ev);
}

int hetee_ckks_evaluator_threads(const hetee_ckks_evaluator *ev) { return ev ? ev->threads : 0; }

size_t hetee_ckks_evaluator_scratch_bytes(const hetee_ckks_evaluator *ev) {
  return ev ? (ev->ext_cap + ev->work_cap + ev->aux_cap + ev->sum_cap) * 8 : 0;
}

/*
 * refine_run.c — epoch drivers: the encrypted refining with the data
 * provider's per-step encryption, cursor and checkpoints, and its plaintext
 * twin with the same data order and update points.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "hemat/refine_internal.h"

/* CPU time of the whole process: the DP's encryption may use several
 * OpenMP threads and nothing else runs while it does */
static double process_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now_s(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

int hetee_refine_run(hetee_refine_state *s, hetee_refine_trusted *t, const hetee_ckks_public_key *pk, const float *x,
                     const float *labels, uint32_t count, const hetee_refine_run_options *o, hetee_refine_stats *st,
                     double *dp_s) {
  if (!s || !t || !pk || !x || !labels || !o || count < 1) return hetee_error(HETEE_ERR_INVALID_ARG, "bad argument");
  const hetee_refine_plan *p = refine_state_plan(s);
  const hetee_ckks_context *ctx = refine_state_ctx(s);
  uint32_t *perm = malloc((size_t)count * sizeof *perm);
  if (!perm) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  uint32_t epoch, next;
  hetee_refine_state_cursor(s, &epoch, &next, NULL);
  if (next > count) {
    free(perm);
    return hetee_error(HETEE_ERR_STATE, "cursor %u beyond %u samples", next, count);
  }
  uint64_t done_steps = 0, updates0 = 0;
  int rc = 0;
  hetee_refine_stats local;
  memset(&local, 0, sizeof local);
  if (!st) st = &local;
  while (!rc && epoch < o->epochs) {
    hetee_refine_order(p->cfg.seed, epoch, count, perm);
    while (!rc && next < count) {
      uint32_t c = count - next < p->cfg.batch ? count - next : p->cfg.batch;
      hetee_refine_batch *b = NULL;
      double t0 = now_s(), c0 = process_cpu();
      if (o->release_pk) { /* the DP's witness and its signed authorization */
        rc = hetee_refine_batch_encrypt_witness(ctx, pk, p, x, labels, perm + next, c, o->dp_model, o->release_pk,
                                                ((uint64_t)epoch << 32) | next, &b);
        uint8_t *am = NULL, sig[64];
        size_t al = 0;
        if (!rc && (!o->dp_sign || !o->dp_pk)) rc = hetee_error(HETEE_ERR_INVALID_ARG, "a witness needs dp_pk and dp_sign");
        if (!rc) rc = hetee_refine_batch_auth_msg(b, o->dp_pk, &am, &al);
        if (!rc) rc = o->dp_sign(o->dp_sign_arg, am, al, sig);
        if (!rc) rc = hetee_refine_batch_set_auth(b, o->dp_pk, sig);
        free(am);
      } else {
        rc = hetee_refine_batch_encrypt(ctx, pk, p, x, labels, perm + next, c, &b);
      }
      double dw = now_s() - t0;
      if (dp_s) *dp_s += dw;
      st->dp_wall_s += dw;
      st->dp_cpu_s += process_cpu() - c0;
      if (!rc) rc = hetee_refine_step(s, t, b, o->threads, st);
      hetee_refine_batch_free(b);
      if (rc) break;
      next += c;
      done_steps++;
      if (o->ckpt && hetee_refine_pending_steps(s) == 0 && next < count) {
        updates0++;
        if (updates0 % (o->ckpt_every ? o->ckpt_every : 1) == 0)
          rc = o->ckpt_write ? o->ckpt_write(s, t, o->ckpt) : hetee_refine_checkpoint_write(s, o->ckpt);
      }
      if (!rc && o->stop_after_steps && done_steps >= o->stop_after_steps) {
        free(perm);
        return 0;
      }
    }
    if (rc) break;
    rc = hetee_refine_flush(s, t, o->threads, st);
    epoch++;
    next = 0;
    hetee_refine_state_set_cursor(s, epoch, next);
    if (!rc && o->ckpt) rc = o->ckpt_write ? o->ckpt_write(s, t, o->ckpt) : hetee_refine_checkpoint_write(s, o->ckpt);
    if (!rc && o->epoch_end) rc = o->epoch_end(s, t, epoch - 1, o->epoch_arg);
  }
  free(perm);
  return rc;
}

int hetee_refine_plain_run(hetee_refine_plain *t, const float *x, const float *labels, uint32_t count, uint32_t epochs) {
  uint32_t *perm = malloc((size_t)count * sizeof *perm);
  if (!perm) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  int rc = 0;
  for (uint32_t e = 0; e < epochs && !rc; e++) {
    hetee_refine_order(t->plan->cfg.seed, e, count, perm);
    for (uint32_t next = 0; next < count && !rc; next += t->plan->cfg.batch) {
      uint32_t c = count - next < t->plan->cfg.batch ? count - next : t->plan->cfg.batch;
      rc = hetee_refine_plain_step(t, x, labels, perm + next, c);
    }
    if (!rc) rc = hetee_refine_plain_flush(t);
  }
  free(perm);
  return rc;
}

double hetee_refine_weights_maxdiff(const hetee_refine_weights *a, const hetee_refine_weights *b, int with_v) {
  if (a->nl != b->nl) return INFINITY;
  double d = 0;
  for (int l = 0; l < a->nl; l++) {
    if (a->k[l] != b->k[l] || a->m[l] != b->m[l]) return INFINITY;
    size_t mk = (size_t)a->m[l] * (size_t)a->k[l];
    for (size_t q = 0; q < mk; q++) {
      d = fmax(d, fabs((double)a->w[l][q] - (double)b->w[l][q]));
      if (with_v) d = fmax(d, fabs((double)a->vw[l][q] - (double)b->vw[l][q]));
    }
    for (int i = 0; i < a->m[l]; i++) {
      d = fmax(d, fabs((double)a->b[l][i] - (double)b->b[l][i]));
      if (with_v) d = fmax(d, fabs((double)a->vb[l][i] - (double)b->vb[l][i]));
    }
  }
  return d;
}

/*
 * test_evaluator.c — the evaluator object and the immutable context.
 *
 * Several POSIX threads share one context and one set of keys; each has its
 * own evaluator and runs, concurrently and repeatedly, multiplication with
 * relinearization, mul_acc, rescale, single and hoisted rotations,
 * conjugation, secret- and public-key encryption and decryption. Every
 * deterministic result must equal, byte for byte, what one thread computes
 * with the context-only functions; fresh encryptions (random) must decrypt
 * to their values. Also: evaluator argument checks, and evaluator results at
 * every level equal to the context-only forms (the scratch is sized for the
 * top level and reused below it).
 *
 * Arguments: [pthreads] [OpenMP threads per evaluator] [logN] [L] [np];
 * defaults 2 1 13 2 1 (logN 12, L 1 under HETEE_TEST_QUICK).
 */
#include <pthread.h>

#include "ckks/ckks_test_util.h"

static int g_threads = 2, g_omp = 1, g_logn = 13, g_L = 2;
static double g_slack = 0; /* bits the floors (set at logN 13) give up for larger N */
#define ROUNDS 3
#define NSTEPS 4
static const int k_steps[NSTEPS] = {1, 3, -2, 7};

typedef struct shared {
  hetee_ckks_context *ctx;
  hetee_ckks_secret_key *sk;
  hetee_ckks_public_key *pk;
  hetee_ckks_relin_key *rk;
  hetee_ckks_galois_keys *gk;
  hetee_ckks_ciphertext *ca, *cb; /* inputs, read by every thread */
  double *va, *vb;
  size_t slots;
} shared;

/* The bytes of every deterministic result of one pass. */
typedef struct results {
  uint8_t *buf[NSTEPS + 5];
  size_t len[NSTEPS + 5];
} results;
#define NRES (NSTEPS + 5) /* p, acc, rot, conj, NSTEPS hoisted, one plaintext */

static void results_free(results *r) {
  for (int i = 0; i < NRES; i++) free(r->buf[i]);
  memset(r, 0, sizeof *r);
}

/* One pass: ev NULL means the context-only forms. Returns 0 or the first
 * failing status. Does not use cmocka assertions (runs in worker threads). */
static int pass(const shared *s, hetee_ckks_evaluator *ev, results *res, uint64_t seed, double *enc_bits) {
  const hetee_ckks_context *ctx = s->ctx;
  hetee_ckks_ciphertext *p = NULL, *acc = NULL, *rot = NULL, *conj = NULL, *h[NSTEPS] = {NULL}, *fresh = NULL;
  hetee_ckks_ciphertext *outs[NRES - 1];
  hetee_ckks_plaintext *pt = NULL;
  double *v = malloc(s->slots * sizeof *v), *got = malloc(s->slots * sizeof *got);
  int rc = HETEE_ERR_NOMEM;
  memset(res, 0, sizeof *res);
  if (!v || !got) goto out;
  if ((rc = hetee_ckks_ciphertext_new(ctx, &p)) || (rc = hetee_ckks_ciphertext_new(ctx, &acc)) ||
      (rc = hetee_ckks_ciphertext_new(ctx, &rot)) || (rc = hetee_ckks_ciphertext_new(ctx, &conj)) ||
      (rc = hetee_ckks_ciphertext_new(ctx, &fresh)) || (rc = hetee_ckks_plaintext_new(ctx, &pt)))
    goto out;
  for (int i = 0; i < NSTEPS; i++)
    if ((rc = hetee_ckks_ciphertext_new(ctx, &h[i]))) goto out;
  /* p = relin(a * b) at level L; acc = relin(a*b + b*b), rescaled */
  if ((rc = ev ? hetee_ckks_evaluator_mul_relin(ev, s->rk, s->ca, s->cb, p)
               : hetee_ckks_eval_mul_relin(ctx, s->rk, s->ca, s->cb, p)))
    goto out;
  if ((rc = ev ? hetee_ckks_evaluator_mul_acc(ev, s->ca, s->cb, acc) : hetee_ckks_eval_mul_acc(ctx, s->ca, s->cb, acc)))
    goto out;
  if ((rc = ev ? hetee_ckks_evaluator_mul_acc(ev, s->cb, s->cb, acc) : hetee_ckks_eval_mul_acc(ctx, s->cb, s->cb, acc)))
    goto out;
  if ((rc = ev ? hetee_ckks_evaluator_relin(ev, s->rk, acc, acc) : hetee_ckks_eval_relin(ctx, s->rk, acc, acc)))
    goto out;
  if ((rc = ev ? hetee_ckks_evaluator_rescale(ev, acc, acc) : hetee_ckks_eval_rescale(ctx, acc, acc))) goto out;
  /* rotations of the level-(L-1) product: single, hoisted, conjugate */
  if ((rc = ev ? hetee_ckks_evaluator_rotate(ev, s->gk, acc, 3, rot) : hetee_ckks_eval_rotate(ctx, s->gk, acc, 3, rot)))
    goto out;
  if ((rc = ev ? hetee_ckks_evaluator_rotate_hoisted(ev, s->gk, p, k_steps, NSTEPS, h)
               : hetee_ckks_eval_rotate_hoisted(ctx, s->gk, p, k_steps, NSTEPS, h)))
    goto out;
  if ((rc = ev ? hetee_ckks_evaluator_conjugate(ev, s->gk, rot, conj)
               : hetee_ckks_eval_conjugate(ctx, s->gk, rot, conj)))
    goto out;
  outs[0] = p;
  outs[1] = acc;
  outs[2] = rot;
  outs[3] = conj;
  for (int i = 0; i < NSTEPS; i++) outs[4 + i] = h[i];
  for (int i = 0; i < NRES - 1; i++)
    if ((rc = hetee_ckks_ciphertext_save(ctx, outs[i], &res->buf[i], &res->len[i]))) goto out;
  /* decryption is deterministic: the plaintext of conj */
  if ((rc = hetee_ckks_decrypt(ctx, s->sk, conj, pt)) ||
      (rc = hetee_ckks_plaintext_save(ctx, pt, &res->buf[NRES - 1], &res->len[NRES - 1])))
    goto out;
  /* fresh encryptions (random): decrypt to the values */
  tu_fill(v, s->slots, seed);
  *enc_bits = 99;
  for (int pk = 0; pk < 2; pk++) {
    if ((rc = hetee_ckks_encode_real(ctx, v, s->slots, hetee_ckks_context_default_scale(ctx), g_L, pt))) goto out;
    if ((rc = pk ? hetee_ckks_encrypt_pk(ctx, s->pk, pt, fresh) : hetee_ckks_encrypt_sk(ctx, s->sk, pt, fresh)))
      goto out;
    if ((rc = hetee_ckks_decrypt(ctx, s->sk, fresh, pt)) || (rc = hetee_ckks_decode_real(ctx, pt, got, s->slots)))
      goto out;
    double b = tu_bits(got, v, s->slots);
    if (b < *enc_bits) *enc_bits = b;
  }
  rc = 0;
out:
  hetee_ckks_ciphertext_free(p);
  hetee_ckks_ciphertext_free(acc);
  hetee_ckks_ciphertext_free(rot);
  hetee_ckks_ciphertext_free(conj);
  hetee_ckks_ciphertext_free(fresh);
  for (int i = 0; i < NSTEPS; i++) hetee_ckks_ciphertext_free(h[i]);
  hetee_ckks_plaintext_free(pt);
  free(v);
  free(got);
  if (rc) results_free(res);
  return rc;
}

static int results_equal(const results *a, const results *b) {
  for (int i = 0; i < NRES; i++)
    if (a->len[i] != b->len[i] || memcmp(a->buf[i], b->buf[i], a->len[i]) != 0) return 0;
  return 1;
}

typedef struct worker {
  const shared *s;
  const results *ref;
  int id;
  int status;     /* first failing hetee status, 0 */
  int mismatches; /* passes whose results differ from the reference */
  double enc_bits;
} worker;

static void *worker_main(void *arg) {
  worker *w = arg;
  hetee_ckks_evaluator *ev = NULL;
  w->enc_bits = 99;
  if ((w->status = hetee_ckks_evaluator_new(w->s->ctx, g_omp, &ev))) return NULL;
  for (int r = 0; r < ROUNDS; r++) {
    results res;
    double b = 0;
    if ((w->status = pass(w->s, ev, &res, (uint64_t)(100 + 10 * w->id + r), &b))) break;
    if (!results_equal(&res, w->ref)) w->mismatches++;
    if (b < w->enc_bits) w->enc_bits = b;
    results_free(&res);
  }
  hetee_ckks_evaluator_free(ev);
  return NULL;
}

static void shared_init(shared *s) {
  memset(s, 0, sizeof *s);
  s->ctx = tu_ctx_std(g_logn, g_L);
  s->slots = hetee_ckks_context_slots(s->ctx);
  TU_OK(hetee_ckks_keygen_secret(s->ctx, &s->sk));
  TU_OK(hetee_ckks_keygen_public(s->ctx, s->sk, &s->pk));
  TU_OK(hetee_ckks_keygen_relin(s->ctx, s->sk, &s->rk));
  TU_OK(hetee_ckks_keygen_galois(s->ctx, s->sk, k_steps, NSTEPS, 1, &s->gk));
  s->va = malloc(s->slots * sizeof *s->va);
  s->vb = malloc(s->slots * sizeof *s->vb);
  assert_non_null(s->va);
  assert_non_null(s->vb);
  tu_fill(s->va, s->slots, 1);
  tu_fill(s->vb, s->slots, 2);
  hetee_ckks_plaintext *pt = NULL;
  TU_OK(hetee_ckks_plaintext_new(s->ctx, &pt));
  TU_OK(hetee_ckks_ciphertext_new(s->ctx, &s->ca));
  TU_OK(hetee_ckks_ciphertext_new(s->ctx, &s->cb));
  double scale = hetee_ckks_context_default_scale(s->ctx);
  TU_OK(hetee_ckks_encode_real(s->ctx, s->va, s->slots, scale, g_L, pt));
  TU_OK(hetee_ckks_encrypt_pk(s->ctx, s->pk, pt, s->ca));
  TU_OK(hetee_ckks_encode_real(s->ctx, s->vb, s->slots, scale, g_L, pt));
  TU_OK(hetee_ckks_encrypt_sk(s->ctx, s->sk, pt, s->cb));
  hetee_ckks_plaintext_free(pt);
}

static void shared_free(shared *s) {
  hetee_ckks_ciphertext_free(s->ca);
  hetee_ckks_ciphertext_free(s->cb);
  hetee_ckks_galois_keys_free(s->gk);
  hetee_ckks_relin_key_free(s->rk);
  hetee_ckks_public_key_free(s->pk);
  hetee_ckks_secret_key_free(s->sk);
  hetee_ckks_context_free(s->ctx);
  free(s->va);
  free(s->vb);
}

static void test_concurrent(void **state) {
  (void)state;
  shared s;
  shared_init(&s);
  /* reference: one thread, context-only forms */
  results ref;
  double b = 0;
  TU_OK(pass(&s, NULL, &ref, 99, &b));
  /* the computation itself is right (so equal results are meaningful):
   * conj(rot(a*b + b*b, 3)) decrypts to the rotated real values */
  {
    hetee_ckks_plaintext *pt = NULL;
    TU_OK(hetee_ckks_plaintext_load(s.ctx, ref.buf[NRES - 1], ref.len[NRES - 1], &pt));
    double *got = malloc(s.slots * sizeof *got), *want = malloc(s.slots * sizeof *want);
    assert_non_null(got);
    assert_non_null(want);
    TU_OK(hetee_ckks_decode_real(s.ctx, pt, got, s.slots));
    for (size_t i = 0; i < s.slots; i++) {
      size_t j = (i + 3) % s.slots;
      want[i] = s.va[j] * s.vb[j] + s.vb[j] * s.vb[j];
    }
    tu_check_bits("conj(rot(a*b + b*b, 3))", tu_bits(got, want, s.slots), 18 - g_slack);
    hetee_ckks_plaintext_free(pt);
    free(got);
    free(want);
  }
  tu_check_bits("fresh encryptions (one thread)", b, 25 - g_slack);

  pthread_t tid[64];
  worker w[64];
  int nt = g_threads < 1 ? 1 : g_threads > 64 ? 64 : g_threads;
  for (int i = 0; i < nt; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].s = &s;
    w[i].ref = &ref;
    w[i].id = i;
    assert_int_equal(pthread_create(&tid[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < nt; i++) assert_int_equal(pthread_join(tid[i], NULL), 0);
  for (int i = 0; i < nt; i++) {
    if (w[i].status) fprintf(stderr, "worker %d: %s\n", i, hetee_strerror(w[i].status));
    assert_int_equal(w[i].status, 0);
    assert_int_equal(w[i].mismatches, 0);
    char what[64];
    snprintf(what, sizeof what, "fresh encryptions (worker %d)", i);
    tu_check_bits(what, w[i].enc_bits, 25 - g_slack);
  }
  results_free(&ref);
  shared_free(&s);
}

/* Evaluator forms equal the context-only forms at every level (scratch
 * sized for the top level, used below it), and one evaluator serves
 * operations of different levels in any order. */
static void test_levels(void **state) {
  (void)state;
  shared s;
  shared_init(&s);
  hetee_ckks_evaluator *ev = NULL;
  TU_OK(hetee_ckks_evaluator_new(s.ctx, g_omp, &ev));
  size_t top = hetee_ckks_evaluator_scratch_bytes(ev);
  hetee_ckks_ciphertext *x = NULL, *y = NULL, *a = NULL, *b = NULL;
  TU_OK(hetee_ckks_ciphertext_new(s.ctx, &x));
  TU_OK(hetee_ckks_ciphertext_new(s.ctx, &a));
  TU_OK(hetee_ckks_ciphertext_new(s.ctx, &b));
  TU_OK(hetee_ckks_ciphertext_copy(s.ca, x));
  for (int l = g_L; l >= 0; l--) {
    uint8_t *ba = NULL, *bb = NULL;
    size_t la = 0, lb = 0;
    TU_OK(hetee_ckks_eval_drop_level(s.ctx, x, l, x));
    TU_OK(hetee_ckks_ciphertext_new(s.ctx, &y));
    TU_OK(hetee_ckks_eval_drop_level(s.ctx, s.cb, l, y));
    TU_OK(hetee_ckks_eval_mul_relin(s.ctx, s.rk, x, y, a));
    TU_OK(hetee_ckks_evaluator_mul_relin(ev, s.rk, x, y, b));
    TU_OK(hetee_ckks_eval_rotate(s.ctx, s.gk, a, -2, a));
    TU_OK(hetee_ckks_evaluator_rotate(ev, s.gk, b, -2, b));
    if (l > 0) {
      TU_OK(hetee_ckks_eval_rescale(s.ctx, a, a));
      TU_OK(hetee_ckks_evaluator_rescale(ev, b, b));
    }
    TU_OK(hetee_ckks_ciphertext_save(s.ctx, a, &ba, &la));
    TU_OK(hetee_ckks_ciphertext_save(s.ctx, b, &bb, &lb));
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    free(ba);
    free(bb);
    hetee_ckks_ciphertext_free(y);
    y = NULL;
  }
  /* no operation grew the scratch: it was sized for the top level */
  assert_int_equal(hetee_ckks_evaluator_scratch_bytes(ev), top);
  hetee_ckks_ciphertext_free(x);
  hetee_ckks_ciphertext_free(a);
  hetee_ckks_ciphertext_free(b);
  hetee_ckks_evaluator_free(ev);
  shared_free(&s);
}

/* rotate_hoisted_sum (one ModDown for all steps) against the sum of single
 * rotations: both decrypt to the rotated sum of the values; also in place
 * and with a repeated step and step 0. */
static void test_hoisted_sum(void **state) {
  (void)state;
  shared s;
  shared_init(&s);
  hetee_ckks_evaluator *ev = NULL;
  TU_OK(hetee_ckks_evaluator_new(s.ctx, g_omp, &ev));
  const int st[6] = {1, 3, 0, -2, 3, 7};
  hetee_ckks_ciphertext *sum = NULL, *ref = NULL, *r = NULL, *x = NULL;
  hetee_ckks_plaintext *pt = NULL;
  TU_OK(hetee_ckks_ciphertext_new(s.ctx, &sum));
  TU_OK(hetee_ckks_ciphertext_new(s.ctx, &ref));
  TU_OK(hetee_ckks_ciphertext_new(s.ctx, &r));
  TU_OK(hetee_ckks_ciphertext_new(s.ctx, &x));
  TU_OK(hetee_ckks_plaintext_new(s.ctx, &pt));
  double *want = malloc(s.slots * sizeof *want), *got = malloc(s.slots * sizeof *got);
  double *got2 = malloc(s.slots * sizeof *got2);
  assert_non_null(want);
  assert_non_null(got);
  assert_non_null(got2);
  for (int lv = g_L; lv >= 0; lv -= g_L ? g_L : 1) { /* top level and level 0 */
    TU_OK(hetee_ckks_eval_drop_level(s.ctx, s.ca, lv, x));
    TU_OK(hetee_ckks_evaluator_rotate_hoisted_sum(ev, s.gk, x, st, 6, sum));
    for (int i = 0; i < 6; i++) {
      TU_OK(hetee_ckks_evaluator_rotate(ev, s.gk, x, st[i], r));
      if (i == 0) TU_OK(hetee_ckks_ciphertext_copy(r, ref));
      else TU_OK(hetee_ckks_eval_add(s.ctx, ref, r, ref));
    }
    for (size_t j = 0; j < s.slots; j++) {
      want[j] = 0;
      for (int i = 0; i < 6; i++) want[j] += s.va[(j + s.slots + (size_t)(st[i] + (int)s.slots)) % s.slots];
    }
    assert_int_equal(hetee_ckks_ciphertext_level(sum), lv);
    TU_OK(hetee_ckks_decrypt(s.ctx, s.sk, sum, pt));
    TU_OK(hetee_ckks_decode_real(s.ctx, pt, got, s.slots));
    TU_OK(hetee_ckks_decrypt(s.ctx, s.sk, ref, pt));
    TU_OK(hetee_ckks_decode_real(s.ctx, pt, got2, s.slots));
    double bs = tu_bits(got, want, s.slots), br = tu_bits(got2, want, s.slots);
    tu_check_bits("hoisted sum of 6 rotations", bs, 22 - g_slack);
    tu_check_bits("sum of 6 single rotations", br, 22 - g_slack);
    /* one rounding instead of six: not worse than the reference by more
     * than the run-to-run spread */
    assert_true(bs >= br - 1.0);
    /* in place gives the same bytes */
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    TU_OK(hetee_ckks_ciphertext_save(s.ctx, sum, &b1, &l1));
    TU_OK(hetee_ckks_evaluator_rotate_hoisted_sum(ev, s.gk, x, st, 6, x));
    TU_OK(hetee_ckks_ciphertext_save(s.ctx, x, &b2, &l2));
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);
    free(b1);
    free(b2);
    if (!g_L) break;
  }
  /* a single step equals rotate up to the rounding of the same ModDown:
   * one step is exactly the single hoisted rotation */
  {
    hetee_ckks_ciphertext *h[1] = {r};
    int one = 7;
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    TU_OK(hetee_ckks_evaluator_rotate_hoisted_sum(ev, s.gk, s.ca, &one, 1, sum));
    TU_OK(hetee_ckks_evaluator_rotate_hoisted(ev, s.gk, s.ca, &one, 1, h));
    TU_OK(hetee_ckks_ciphertext_save(s.ctx, sum, &b1, &l1));
    TU_OK(hetee_ckks_ciphertext_save(s.ctx, r, &b2, &l2));
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);
    free(b1);
    free(b2);
  }
  int bad = 5;
  assert_int_equal(hetee_ckks_evaluator_rotate_hoisted_sum(ev, s.gk, s.ca, &bad, 1, sum), HETEE_ERR_NO_KEY);
  assert_int_equal(hetee_ckks_evaluator_rotate_hoisted_sum(ev, s.gk, s.ca, st, 0, sum), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_evaluator_rotate_hoisted_sum(ev, NULL, s.ca, st, 1, sum), HETEE_ERR_NO_KEY);
  free(want);
  free(got);
  free(got2);
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_ciphertext_free(sum);
  hetee_ckks_ciphertext_free(ref);
  hetee_ckks_ciphertext_free(r);
  hetee_ckks_ciphertext_free(x);
  hetee_ckks_evaluator_free(ev);
  shared_free(&s);
}

static void test_errors(void **state) {
  (void)state;
  shared s;
  shared_init(&s);
  hetee_ckks_evaluator *ev = NULL, *ev2 = NULL;
  assert_int_equal(hetee_ckks_evaluator_new(NULL, 1, &ev), HETEE_ERR_INVALID_ARG);
  assert_null(ev);
  assert_int_equal(hetee_ckks_evaluator_new(s.ctx, 0, &ev), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_evaluator_new(s.ctx, -3, &ev), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_evaluator_new(s.ctx, 1, NULL), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_evaluator_threads(NULL), 0);
  assert_int_equal((int)hetee_ckks_evaluator_scratch_bytes(NULL), 0);
  hetee_ckks_evaluator_free(NULL);
  hetee_ckks_ciphertext *o = NULL;
  TU_OK(hetee_ckks_ciphertext_new(s.ctx, &o));
  assert_int_equal(hetee_ckks_evaluator_mul(NULL, s.ca, s.cb, o), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_evaluator_relin(NULL, s.rk, s.ca, o), HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_ckks_evaluator_rotate(NULL, s.gk, s.ca, 1, o), HETEE_ERR_INVALID_ARG);
  TU_OK(hetee_ckks_evaluator_new(s.ctx, 1, &ev));
  assert_int_equal(hetee_ckks_evaluator_relin(ev, NULL, s.ca, o), HETEE_ERR_NO_KEY);
  assert_int_equal(hetee_ckks_evaluator_relin(ev, s.rk, s.ca, o), HETEE_ERR_FORM); /* size 2 */
  assert_int_equal(hetee_ckks_evaluator_rotate(ev, s.gk, s.ca, 5, o), HETEE_ERR_NO_KEY);
  assert_int_equal(hetee_ckks_evaluator_rotate(ev, NULL, s.ca, 1, o), HETEE_ERR_NO_KEY);
  /* an evaluator of another context refuses these objects */
  hetee_ckks_context *other = tu_ctx_std(g_logn, g_L > 0 ? g_L - 1 : 1);
  TU_OK(hetee_ckks_evaluator_new(other, 1, &ev2));
  assert_int_equal(hetee_ckks_evaluator_mul(ev2, s.ca, s.cb, o), HETEE_ERR_CONTEXT);
  assert_int_equal(hetee_ckks_evaluator_rescale(ev2, s.ca, o), HETEE_ERR_CONTEXT);
  assert_int_equal(hetee_ckks_evaluator_rotate(ev2, s.gk, s.ca, 1, o), HETEE_ERR_CONTEXT);
  hetee_ckks_evaluator_free(ev2);
  hetee_ckks_context_free(other);
  hetee_ckks_evaluator_free(ev);
  hetee_ckks_ciphertext_free(o);
  shared_free(&s);
}

int main(int argc, char **argv) {
  g_threads = tu_arg(argc, argv, 1, 2);
  g_omp = tu_arg(argc, argv, 2, 1);
  g_logn = tu_arg(argc, argv, 3, tu_quick() ? 12 : 13);
  g_L = tu_arg(argc, argv, 4, tu_quick() ? 1 : 2);
  tu_np = tu_arg(argc, argv, 5, 1);
  g_slack = g_logn > 13 ? 0.6 * (g_logn - 13) : 0; /* as tu_eval_args */
  fprintf(stderr, "ckks/evaluator: %d threads x %d OpenMP, logN %d, L %d, np %d\n", g_threads, g_omp, g_logn, g_L,
          tu_np);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_concurrent),
      cmocka_unit_test(test_levels),
      cmocka_unit_test(test_hoisted_sum),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

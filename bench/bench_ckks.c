/*
 * bench_ckks.c — `hetee-bench ckks [--json] [--logn 13|14|15] [--runs R]
 * [--chain seal|ifma] [--threads T]`: median single-threaded time of every
 * CKKS primitive (>= 50 timed runs after warm-up), plus serialized
 * ciphertext sizes. The *_ev lines run the key-switching operations through
 * one hetee_ckks_evaluator (scratch allocated once; T OpenMP threads,
 * default 1) instead of the context-only functions.
 *
 * --chain seal (default; parameters as SEAL's examples for 13 and 14):
 *   logN 13: q {60, 40, 40},            P {60},          scale 2^40 (218-bit bound: 200)
 *   logN 14: q {60, 40 x 6},            P {60},          scale 2^40 (438-bit bound: 420)
 *   logN 15: q {60, 40 x 14},           P {60, 60, 60},  scale 2^40 (881-bit bound: 800)
 * --chain ifma: the same levels and scale with every prime <= 50 bits, so
 * the ring layer's AVX-512 IFMA (52-bit multiplier) kernels apply to all of
 * them (docs/ring.md):
 *   logN 13: q {50, 40, 40},            P {50},          (218-bit bound: 180)
 *   logN 14: q {50, 40 x 6},            P {50},          (438-bit bound: 340)
 *   logN 15: q {50, 40 x 14},           P {50, 50, 50},  (881-bit bound: 760;
 *            a key-switching digit is 3 primes, at most 130 bits < P's 150)
 * Before timing, one mul_relin + rescale is decrypted and compared with the
 * plaintext product; the bench fails if the error exceeds 2^-20 relative.
 * Every op runs on top-level ciphertexts except the two level-1 lines the
 * encrypted engine's trade-offs are priced with: encrypt_sk_coeffs_l1 (a
 * seeded secret-key encryption of N coefficients at level 1, what the
 * enclave makes for each input of a stage after the first) and
 * expand4_ev_l1 (the 4-lane coefficient expansion of one such ciphertext,
 * hetee_ckks_evaluator_expand: 3 automorphisms with key switching). --json prints one object per line:
 *   {"op": "mul", "logN": 13, "median_us": 41.2}
 *   {"op": "ct_bytes_pk", "logN": 13, "bytes": 393284}
 * and with --chain ifma (only then) a "chain" field after "logN":
 *   {"op": "mul", "logN": 13, "chain": "ifma", "median_us": 30.1}
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hetee/ckks.h"
#include "bench_util.h"
#include "ckks/ckks_arena.h"

#define MAX_RUNS 100000

typedef struct {
  hetee_ckks_context *ctx;
  hetee_ckks_secret_key *sk;
  hetee_ckks_public_key *pk;
  hetee_ckks_relin_key *rk;
  hetee_ckks_galois_keys *gk, *gkx; /* gkx: the expansion's keys */
  hetee_ckks_ciphertext *l1;       /* a level-1 ciphertext of N coefficients */
  hetee_ckks_ciphertext *p1;       /* l1 x l1: a degree-2 product at level 1 */
  ckks_coset *cs32;                /* the coset 5 + 32 t */
  uint32_t *idx32;                 /* its N/32 indices */
  uint8_t *sbuf;                   /* room for one serialized output */
  size_t sbuf_cap;
  double *cvals;                   /* N coefficient values */
  hetee_ckks_evaluator *ev; /* the *_ev lines: reusable scratch, --threads */
  hetee_ckks_plaintext *pt, *pt2;
  hetee_ckks_ciphertext *a, *b, *o, *m3, *r2, *outs[8];
  double *vals, *dec;
  uint64_t *poly;
  size_t slots;
  int level;
} bench_state;

typedef int (*op_fn)(bench_state *s);

static int op_encode(bench_state *s) {
  return hetee_ckks_encode_real(s->ctx, s->vals, s->slots, 0x1p40, s->level, s->pt2);
}
static int op_encrypt_pk(bench_state *s) { return hetee_ckks_encrypt_pk(s->ctx, s->pk, s->pt, s->o); }
static int op_encrypt_sk(bench_state *s) { return hetee_ckks_encrypt_sk(s->ctx, s->sk, s->pt, s->o); }
static int op_decrypt(bench_state *s) { return hetee_ckks_decrypt(s->ctx, s->sk, s->a, s->pt2); }
static int op_decode(bench_state *s) { return hetee_ckks_decode_real(s->ctx, s->pt, s->dec, s->slots); }
static int op_add(bench_state *s) { return hetee_ckks_eval_add(s->ctx, s->a, s->b, s->o); }
static int op_mul(bench_state *s) { return hetee_ckks_eval_mul(s->ctx, s->a, s->b, s->m3); }
static int op_relin(bench_state *s) { return hetee_ckks_eval_relin(s->ctx, s->rk, s->m3, s->o); }
static int op_mul_relin(bench_state *s) { return hetee_ckks_eval_mul_relin(s->ctx, s->rk, s->a, s->b, s->o); }
static int op_rescale(bench_state *s) { return hetee_ckks_eval_rescale(s->ctx, s->r2, s->o); }
static int op_rotate(bench_state *s) { return hetee_ckks_eval_rotate(s->ctx, s->gk, s->a, 1, s->o); }
static int op_hoisted8(bench_state *s) {
  static const int steps[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  return hetee_ckks_eval_rotate_hoisted(s->ctx, s->gk, s->a, steps, 8, s->outs);
}
static int op_relin_ev(bench_state *s) { return hetee_ckks_evaluator_relin(s->ev, s->rk, s->m3, s->o); }
static int op_mul_relin_ev(bench_state *s) { return hetee_ckks_evaluator_mul_relin(s->ev, s->rk, s->a, s->b, s->o); }
static int op_rescale_ev(bench_state *s) { return hetee_ckks_evaluator_rescale(s->ev, s->r2, s->o); }
static int op_rotate_ev(bench_state *s) { return hetee_ckks_evaluator_rotate(s->ev, s->gk, s->a, 1, s->o); }
static int op_hoisted8_ev(bench_state *s) {
  static const int steps[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  return hetee_ckks_evaluator_rotate_hoisted(s->ev, s->gk, s->a, steps, 8, s->outs);
}
/* the sum of the 8 rotations: one ModDown (rotate_hoisted_sum) ... */
static int op_sum8_ev(bench_state *s) {
  static const int steps[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  return hetee_ckks_evaluator_rotate_hoisted_sum(s->ev, s->gk, s->a, steps, 8, s->o);
}
/* ... against 8 hoisted rotations and 7 additions */
static int op_hoisted8_add_ev(bench_state *s) {
  int rc = op_hoisted8_ev(s);
  for (int i = 1; i < 8 && !rc; i++) rc = hetee_ckks_eval_add(s->ctx, i == 1 ? s->outs[0] : s->o, s->outs[i], s->o);
  return rc;
}
static int op_encrypt_sk_coeffs_l1(bench_state *s) {
  return hetee_ckks_encrypt_sk_coeffs(s->ctx, s->sk, s->cvals, hetee_ckks_context_n(s->ctx), 0x1p38, 1, s->o);
}
/* the engine's per-output serialization of a degree-2 product at level 1
 * (rescaled to level 0 on the way, c0 at the N/32 coefficients of one
 * coset): c0's rows through full inverse NTTs, or at the coset only */
static int op_save_rescaled_l1(bench_state *s) {
  size_t len = 0, n = hetee_ckks_context_n(s->ctx) / 32;
  return ckks_ciphertext_save_c0_at_rescaled(s->ctx, s->p1, s->idx32, n, s->sbuf, s->sbuf_cap, &len);
}
static int op_save_rescaled_coset32_l1(bench_state *s) {
  size_t len = 0, n = hetee_ckks_context_n(s->ctx) / 32;
  return ckks_ciphertext_save_c0_at_rescaled_cs(s->ctx, s->p1, s->cs32, s->idx32, n, s->sbuf, s->sbuf_cap, &len);
}
static int op_expand4_ev_l1(bench_state *s) { return hetee_ckks_evaluator_expand(s->ev, s->gkx, s->l1, 4, s->outs); }
static int op_keygen_relin(bench_state *s) {
  hetee_ckks_relin_key *k = NULL;
  int rc = hetee_ckks_keygen_relin(s->ctx, s->sk, &k);
  hetee_ckks_relin_key_free(k);
  return rc;
}

static int g_json = 0, g_logn = 13, g_runs = 50, g_ifma = 0, g_threads = 1;

/* JSON field naming the chain: empty for the default SEAL-shaped chain so
 * that its output stays exactly what it always was. */
static const char *chain_field(void) { return g_ifma ? " \"chain\": \"ifma\"," : ""; }

/* Precision sanity check on the chain being measured: a * b (a = b = vals)
 * through mul_relin + rescale, decrypted and decoded, against vals^2 in
 * doubles. Returns the error in bits (-log2 of the relative error, as in
 * docs/ckks.md "Precision"), or a negative value if an operation failed. */
static double check_precision(bench_state *s) {
  hetee_ckks_ciphertext *prod = s->o, *res = s->outs[0];
  if (hetee_ckks_eval_mul_relin(s->ctx, s->rk, s->a, s->b, prod) || hetee_ckks_eval_rescale(s->ctx, prod, res) ||
      hetee_ckks_decrypt(s->ctx, s->sk, res, s->pt2) || hetee_ckks_decode_real(s->ctx, s->pt2, s->dec, s->slots))
    return -1.0;
  double err = 0.0, ref = 1.0;
  for (size_t i = 0; i < s->slots; i++) {
    double want = s->vals[i] * s->vals[i];
    double e = fabs(s->dec[i] - want);
    if (!(e <= err)) err = e; /* also catches NaN */
    if (fabs(want) > ref) ref = fabs(want);
  }
  if (isnan(err)) return 0.0;
  return err > 0.0 ? -log2(err / ref) : 64.0;
}

static int time_op(bench_state *s, const char *name, op_fn fn, uint64_t *ntt_row, const hetee_ntt_tables *t) {
  int runs = g_runs, warm = 3;
  double *tv = malloc((size_t)runs * sizeof *tv);
  if (!tv) return 1;
  for (int r = 0; r < warm + runs; r++) {
    double t0 = bench_now_us();
    int rc = 0;
    if (ntt_row) hetee_ntt_forward(t, ntt_row);
    else rc = fn(s);
    double t1 = bench_now_us();
    if (rc) {
      fprintf(stderr, "hetee-bench ckks: %s failed: %s: %s\n", name, hetee_strerror(rc), hetee_last_error());
      free(tv);
      return 1;
    }
    if (r >= warm) tv[r - warm] = t1 - t0;
  }
  qsort(tv, (size_t)runs, sizeof *tv, bench_cmp_double);
  double med = runs % 2 ? tv[runs / 2] : 0.5 * (tv[runs / 2 - 1] + tv[runs / 2]);
  if (g_json) printf("{\"op\": \"%s\", \"logN\": %d,%s \"median_us\": %.1f}\n", name, g_logn, chain_field(), med);
  else printf("  %-18s %12.1f us   (min %.1f, %d runs)\n", name, med, tv[0], runs);
  fflush(stdout);
  free(tv);
  return 0;
}

static void usage(FILE *f) {
  fprintf(f, "usage: hetee-bench ckks [--json] [--logn 13|14|15] [--runs R (>= 50)] [--chain seal|ifma]\n"
             "                        [--threads T (evaluator lines *_ev, default 1)]\n");
}

int hetee_bench_ckks(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) g_json = 1;
    else if (!strcmp(argv[i], "--logn") && i + 1 < argc) g_logn = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--runs") && i + 1 < argc) g_runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) g_threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--chain") && i + 1 < argc) {
      const char *c = argv[++i];
      if (!strcmp(c, "seal")) g_ifma = 0;
      else if (!strcmp(c, "ifma")) g_ifma = 1;
      else {
        usage(stderr);
        return 2;
      }
    } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if ((g_logn < 13 || g_logn > 15) || g_runs < 50 || g_runs > MAX_RUNS || g_threads < 1 || g_threads > 256) {
    usage(stderr);
    return 2;
  }
  hetee_ckks_literal lit;
  memset(&lit, 0, sizeof lit);
  lit.log_n = g_logn;
  lit.default_scale = 0x1p40;
  /* Largest prime sizes: 60 bits for the SEAL-shaped chain, 50 (the IFMA
   * kernels' limit is 2^50, docs/ring.md) for the ifma chain. */
  const int big = g_ifma ? 50 : 60;
  lit.q_bits[0] = big;
  int nq40 = g_logn == 13 ? 2 : g_logn == 14 ? 6 : 14;
  for (int i = 1; i <= nq40; i++) lit.q_bits[i] = 40;
  lit.nq = nq40 + 1;
  lit.np = g_logn == 15 ? 3 : 1;
  for (int i = 0; i < lit.np; i++) lit.p_bits[i] = big;

  bench_state s;
  memset(&s, 0, sizeof s);
  int rc = 1, fail = 0;
  const int steps[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  if (hetee_ckks_context_new(&lit, &s.ctx) || hetee_ckks_evaluator_new(s.ctx, g_threads, &s.ev)) goto err;
  s.slots = hetee_ckks_context_slots(s.ctx);
  s.level = hetee_ckks_context_max_level(s.ctx);
  s.vals = malloc(s.slots * sizeof(double));
  s.dec = malloc(s.slots * sizeof(double));
  s.poly = malloc(hetee_ckks_context_n(s.ctx) * sizeof(uint64_t));
  if (!s.vals || !s.dec || !s.poly) goto err;
  for (size_t i = 0; i < s.slots; i++) s.vals[i] = (double)((i * 7919) % 2001) / 1000.0 - 1.0;
  if (hetee_ckks_keygen_secret(s.ctx, &s.sk) || hetee_ckks_keygen_public(s.ctx, s.sk, &s.pk) ||
      hetee_ckks_keygen_relin(s.ctx, s.sk, &s.rk) || hetee_ckks_keygen_galois(s.ctx, s.sk, steps, 8, 0, &s.gk) ||
      hetee_ckks_plaintext_new(s.ctx, &s.pt) || hetee_ckks_plaintext_new(s.ctx, &s.pt2) ||
      hetee_ckks_ciphertext_new(s.ctx, &s.a) || hetee_ckks_ciphertext_new(s.ctx, &s.b) ||
      hetee_ckks_ciphertext_new(s.ctx, &s.o) || hetee_ckks_ciphertext_new(s.ctx, &s.m3) ||
      hetee_ckks_ciphertext_new(s.ctx, &s.r2))
    goto err;
  for (int i = 0; i < 8; i++)
    if (hetee_ckks_ciphertext_new(s.ctx, &s.outs[i])) goto err;
  if (hetee_ckks_encode_real(s.ctx, s.vals, s.slots, 0x1p40, s.level, s.pt) ||
      hetee_ckks_encrypt_pk(s.ctx, s.pk, s.pt, s.a) || hetee_ckks_encrypt_pk(s.ctx, s.pk, s.pt, s.b) ||
      hetee_ckks_eval_mul(s.ctx, s.a, s.b, s.m3) || hetee_ckks_eval_relin(s.ctx, s.rk, s.m3, s.r2))
    goto err;
  double bits = check_precision(&s);
  if (bits < 0.0) goto err;
  if (bits < 20.0) {
    fprintf(stderr,
            "hetee-bench ckks: precision check FAILED: mul_relin + rescale is only %.1f bits "
            "(relative error above 2^-20) on this chain\n",
            bits);
    fail = 1;
    goto err;
  }

  hetee_ntt_tables *t = NULL;
  if (hetee_ntt_tables_new(g_logn, hetee_ckks_context_prime(s.ctx, 0), &t)) goto err;
  for (size_t i = 0; i < hetee_ckks_context_n(s.ctx); i++) s.poly[i] = (i * 0x9E3779B97F4A7C15ULL) % hetee_ckks_context_prime(s.ctx, 0);
  if (!g_json) {
    printf("hetee-bench ckks: logN %d, q = {%d, 40 x %d}, P = {%d x %d}, scale 2^40, 1 thread (*_ev: %d), NTT isa %s\n", g_logn,
           big, nq40, big, lit.np, g_threads, hetee_ring_isa_name());
    if (g_ifma) printf("  precision check: mul_relin + rescale %.1f bits (>= 20 required)\n", bits);
  }
  fail |= time_op(&s, "ntt_fwd", NULL, s.poly, t); /* one prime (q_0), N coefficients */
  hetee_ntt_tables_free(t);
  fail |= time_op(&s, "encode", op_encode, NULL, NULL);
  fail |= time_op(&s, "encrypt_pk", op_encrypt_pk, NULL, NULL);
  fail |= time_op(&s, "encrypt_sk", op_encrypt_sk, NULL, NULL);
  fail |= time_op(&s, "decrypt", op_decrypt, NULL, NULL);
  fail |= time_op(&s, "decode", op_decode, NULL, NULL);
  fail |= time_op(&s, "add", op_add, NULL, NULL);
  fail |= time_op(&s, "mul", op_mul, NULL, NULL);
  fail |= time_op(&s, "relin", op_relin, NULL, NULL);
  fail |= time_op(&s, "mul_relin", op_mul_relin, NULL, NULL);
  fail |= time_op(&s, "rescale", op_rescale, NULL, NULL); /* size-2 (relinearized) product */
  fail |= time_op(&s, "rotate", op_rotate, NULL, NULL);
  fail |= time_op(&s, "rotate_hoisted8", op_hoisted8, NULL, NULL);
  fail |= time_op(&s, "keygen_relin", op_keygen_relin, NULL, NULL);
  /* the same operations through an evaluator (scratch allocated once, sized
   * for the top level; --threads OpenMP threads) */
  fail |= time_op(&s, "relin_ev", op_relin_ev, NULL, NULL);
  fail |= time_op(&s, "mul_relin_ev", op_mul_relin_ev, NULL, NULL);
  fail |= time_op(&s, "rescale_ev", op_rescale_ev, NULL, NULL);
  fail |= time_op(&s, "rotate_ev", op_rotate_ev, NULL, NULL);
  fail |= time_op(&s, "rotate_hoisted8_ev", op_hoisted8_ev, NULL, NULL);
  fail |= time_op(&s, "hoisted8_add_ev", op_hoisted8_add_ev, NULL, NULL);
  fail |= time_op(&s, "rotate_sum8_ev", op_sum8_ev, NULL, NULL);
  /* level 1 */
  {
    size_t n = hetee_ckks_context_n(s.ctx), nsx = 0;
    int xsteps[2];
    s.cvals = malloc(n * sizeof(double));
    if (!s.cvals) goto err;
    for (size_t i = 0; i < n; i++) s.cvals[i] = (double)((i * 7919) % 2001) / 1000.0 - 1.0;
    if (hetee_ckks_expand_steps(s.ctx, 4, xsteps, 2, &nsx) ||
        hetee_ckks_keygen_galois(s.ctx, s.sk, xsteps, nsx, 0, &s.gkx) || hetee_ckks_ciphertext_new(s.ctx, &s.l1) ||
        hetee_ckks_encrypt_sk_coeffs(s.ctx, s.sk, s.cvals, n, 0x1p38, 1, s.l1))
      goto err;
    fail |= time_op(&s, "encrypt_sk_coeffs_l1", op_encrypt_sk_coeffs_l1, NULL, NULL);
    fail |= time_op(&s, "expand4_ev_l1", op_expand4_ev_l1, NULL, NULL);
    s.idx32 = malloc(n / 32 * sizeof *s.idx32);
    if (!s.idx32 || hetee_ckks_ciphertext_new(s.ctx, &s.p1) || hetee_ckks_eval_mul(s.ctx, s.l1, s.l1, s.p1) ||
        ckks_coset_new(s.ctx, 5, 5, &s.cs32) || ckks_ciphertext_c0_at_size(s.ctx, s.p1, n / 32, &s.sbuf_cap) ||
        !(s.sbuf = malloc(s.sbuf_cap)))
      goto err;
    for (size_t k = 0; k < n / 32; k++) s.idx32[k] = (uint32_t)(5 + 32 * k);
    fail |= time_op(&s, "save_rescaled_l1", op_save_rescaled_l1, NULL, NULL);
    fail |= time_op(&s, "save_rescaled_coset32_l1", op_save_rescaled_coset32_l1, NULL, NULL);
  }

  /* serialized sizes */
  {
    uint8_t *buf = NULL;
    size_t len_pk = 0, len_sk = 0;
    if (hetee_ckks_ciphertext_save(s.ctx, s.a, &buf, &len_pk)) goto err;
    free(buf);
    if (hetee_ckks_encrypt_sk(s.ctx, s.sk, s.pt, s.o) || hetee_ckks_ciphertext_save(s.ctx, s.o, &buf, &len_sk))
      goto err;
    free(buf);
    if (g_json) {
      printf("{\"op\": \"ct_bytes_pk\", \"logN\": %d,%s \"bytes\": %zu}\n", g_logn, chain_field(), len_pk);
      printf("{\"op\": \"ct_bytes_sk_seeded\", \"logN\": %d,%s \"bytes\": %zu}\n", g_logn, chain_field(), len_sk);
    } else {
      printf("  %-18s %12zu bytes\n", "ct_bytes_pk", len_pk);
      printf("  %-18s %12zu bytes\n", "ct_bytes_sk_seeded", len_sk);
    }
  }
  rc = fail ? 1 : 0;
err:
  if (rc && !fail) fprintf(stderr, "hetee-bench ckks: setup failed: %s\n", hetee_last_error());
  for (int i = 0; i < 8; i++) hetee_ckks_ciphertext_free(s.outs[i]);
  hetee_ckks_ciphertext_free(s.a);
  hetee_ckks_ciphertext_free(s.b);
  hetee_ckks_ciphertext_free(s.o);
  hetee_ckks_ciphertext_free(s.m3);
  hetee_ckks_ciphertext_free(s.r2);
  hetee_ckks_plaintext_free(s.pt);
  hetee_ckks_plaintext_free(s.pt2);
  hetee_ckks_galois_keys_free(s.gk);
  hetee_ckks_galois_keys_free(s.gkx);
  hetee_ckks_ciphertext_free(s.l1);
  hetee_ckks_ciphertext_free(s.p1);
  ckks_coset_free(s.cs32);
  free(s.idx32);
  free(s.sbuf);
  free(s.cvals);
  hetee_ckks_relin_key_free(s.rk);
  hetee_ckks_public_key_free(s.pk);
  hetee_ckks_secret_key_free(s.sk);
  hetee_ckks_evaluator_free(s.ev);
  hetee_ckks_context_free(s.ctx);
  free(s.vals);
  free(s.dec);
  free(s.poly);
  return rc;
}

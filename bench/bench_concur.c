/*
 * bench_concur.c — `hetee-bench concur [--rounds R] [--ms M] [--kernel K] [--json]`:
 * what this machine gives two copies of the same kernel run at once, i.e.
 * the upper bound of any "2 CPUs vs 1" speedup here (issue 8, docs/engine.md
 * "1 vs 2 CPUs"). For each kernel, R alternated rounds of
 *   solo: one process pinned to CPU 0 runs the kernel for M ms;
 *   pair: two processes pinned to CPU 0 and CPU 1 run it at the same time;
 * every process records each call's wall time and reports the median (a
 * call is 0.02-5 ms, so the median is the kernel's speed while the process
 * had its CPU; preemption by other load shows in the tail, not the median).
 * Printed per kernel: solo and pair medians of the rounds (us per call),
 * pair / solo (how much one copy slows down because the other runs) and
 * 2 x solo / pair, the throughput of two CPUs over one — the ceiling of a
 * 1-vs-2-CPU ratio for work made of that kernel.
 * Kernels (logN 13, q {60,40,40}, level 1: the engine's host ciphertexts):
 *   ntt        forward + inverse NTT of one 50-bit prime (64 KiB, L1/L2)
 *   product_l2 ct x ct product accumulated in degree 2 over 4 pairs of
 *              level-1 ciphertexts (2 MiB of operands: fits a 4 MiB L2)
 *   product_l3 the same over 64 pairs (32 MiB: streams from L3, like the
 *              engine's stages, whose weights are 10-60 MiB)
 *   dense_fwd  e2dm's dense 320-64 stage: one output (10 products) a call,
 *              10 inputs shared by the 16 outputs, 160 weights read once
 *   dense_snake the same, every other output in reverse product order
 *   dense_pair the same output of two micro-batches a call (20 products),
 *              each weight used for both in a row
 *   rescale    the engine's per-output rescale (evaluator, 2 NTTs per poly)
 *   stream     c = a + b mod q over 3 x 32 MiB (memory bandwidth)
 *   memcpy     32 MiB memcpy (memory bandwidth)
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hetee/ckks.h"
#include "hetee/ring.h"
#include "bench_util.h"

typedef enum { K_NTT, K_PRODUCT_L2, K_PRODUCT_L3, K_DENSE_FWD, K_DENSE_SNAKE, K_DENSE_PAIR, K_RESCALE, K_STREAM, K_MEMCPY, K_COUNT } kernel_id;
static const char *const KNAME[K_COUNT] = {"ntt", "product_l2", "product_l3", "dense_fwd", "dense_snake", "dense_pair", "rescale", "stream", "memcpy"};

/* shared between the parent and its children */
typedef struct {
  atomic_int ready, go;
  double med[2]; /* each child's median us per call */
  long calls[2];
  int fail[2];
} shared_t;

#define STREAM_WORDS ((size_t)4 << 20) /* 32 MiB of u64 */

/* One child: set up the kernel's data, wait for the start, run it for ms
 * milliseconds, store the median call time. */
static int child_run(kernel_id k, int ms, shared_t *sh, int slot, int nprocs) {
  int rc = 1;
  hetee_ckks_context *ctx = NULL;
  hetee_ckks_secret_key *sk = NULL;
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_evaluator *ev = NULL;
  hetee_ckks_ciphertext *a[64] = {0}, *b[160] = {0}, *o = NULL, *o2 = NULL, *r = NULL;
  hetee_ntt_tables *t = NULL;
  uint64_t *x = NULL, *y = NULL, *z = NULL;
  double *times = NULL;
  size_t npairs = k == K_PRODUCT_L2 ? 4 : 64, maxcalls = 1 << 20;
  const hetee_modulus *m = NULL;
  times = malloc(maxcalls * sizeof *times);
  if (!times) goto out;
  if (k == K_NTT || k == K_STREAM) {
    /* a 50-bit NTT prime: 1 mod 2^14 */
    uint64_t q = (1ULL << 49) + 1;
    for (int tries = 0; tries < 100000 && !t; tries++, q += 1ULL << 14)
      if (hetee_ntt_tables_new(13, q, &t)) t = NULL;
    if (!t) goto out;
    m = hetee_ntt_tables_modulus(t);
  }
  if (k == K_NTT) {
    x = malloc(8192 * sizeof *x);
    if (!x) goto out;
    for (size_t i = 0; i < 8192; i++) x[i] = (i * 2654435761u) % m->q;
  } else if (k == K_STREAM || k == K_MEMCPY) {
    x = malloc(STREAM_WORDS * 8), y = malloc(STREAM_WORDS * 8), z = malloc(STREAM_WORDS * 8);
    if (!x || !y || !z) goto out;
    uint64_t q = m ? m->q : ~0ULL;
    for (size_t i = 0; i < STREAM_WORDS; i++) x[i] = (i * 2654435761u) % q, y[i] = (i * 40503u) % q, z[i] = 0;
  } else {
    hetee_ckks_literal lit;
    hetee_ckks_literal_default(&lit);
    if (hetee_ckks_context_new(&lit, &ctx) || hetee_ckks_keygen_secret(ctx, &sk) || hetee_ckks_plaintext_new(ctx, &pt))
      goto out;
    size_t slots = hetee_ckks_context_n(ctx) / 2;
    double *v = malloc(slots * sizeof *v);
    if (!v) goto out;
    for (size_t i = 0; i < slots; i++) v[i] = (double)(i % 17) / 17.0 - 0.5;
    int e = hetee_ckks_encode_real(ctx, v, slots, 0x1p40, 1, pt);
    free(v);
    if (e) goto out;
    int dense = k == K_DENSE_FWD || k == K_DENSE_SNAKE || k == K_DENSE_PAIR;
    size_t na = k == K_RESCALE ? 1 : k == K_DENSE_PAIR ? 20 : dense ? 10 : npairs, nb = dense ? 160 : na;
    for (size_t i = 0; i < na; i++)
      if (hetee_ckks_ciphertext_new(ctx, &a[i]) || hetee_ckks_encrypt_sk(ctx, sk, pt, a[i])) goto out;
    for (size_t i = 0; i < nb; i++)
      if (hetee_ckks_ciphertext_new(ctx, &b[i]) || hetee_ckks_encrypt_sk(ctx, sk, pt, b[i])) goto out;
    if (hetee_ckks_ciphertext_new(ctx, &o) || hetee_ckks_ciphertext_new(ctx, &o2) || hetee_ckks_ciphertext_new(ctx, &r) ||
        hetee_ckks_eval_mul(ctx, a[0], b[0], o))
      goto out;
    if (k == K_RESCALE && hetee_ckks_evaluator_new(ctx, 1, &ev)) goto out;
  }
  atomic_fetch_add(&sh->ready, 1);
  while (atomic_load(&sh->ready) < nprocs) sched_yield();
  atomic_store(&sh->go, 1);
  double end = bench_now_us() + 1e3 * ms;
  size_t nc = 0, pi = 0;
  for (;;) {
    double t0 = bench_now_us();
    if (t0 >= end || nc == maxcalls) break;
    int e = 0;
    switch (k) {
    case K_NTT:
      hetee_ntt_forward(t, x);
      hetee_ntt_inverse(t, x);
      break;
    case K_PRODUCT_L2:
    case K_PRODUCT_L3: /* one output: 4 products accumulated, as the engine's outputs do */
      e = hetee_ckks_eval_mul(ctx, a[pi], b[pi], o);
      for (int j = 1; j < 4 && !e; j++) e = hetee_ckks_eval_mul_acc(ctx, a[(pi + j) % npairs], b[(pi + j) % npairs], o);
      pi = (pi + 4) % npairs;
      break;
    case K_DENSE_FWD: /* e2dm's dense 320-64: 10 inputs shared by 16 outputs, 160 weights read once */
    case K_DENSE_SNAKE: {
      int rev = k == K_DENSE_SNAKE && (pi & 1);
      for (int j = 0; j < 10 && !e; j++) {
        int c = rev ? 9 - j : j;
        e = j ? hetee_ckks_eval_mul_acc(ctx, a[c], b[pi * 10 + (size_t)c], o) : hetee_ckks_eval_mul(ctx, a[c], b[pi * 10 + (size_t)c], o);
      }
      pi = (pi + 1) % 16;
      break;
    }
    case K_DENSE_PAIR: /* the same output of two micro-batches, each weight used twice in a row (2 outputs a call) */
      for (int j = 0; j < 10 && !e; j++) {
        const hetee_ckks_ciphertext *wj = b[pi * 10 + (size_t)j];
        e = j ? hetee_ckks_eval_mul_acc(ctx, a[j], wj, o) : hetee_ckks_eval_mul(ctx, a[j], wj, o);
        if (!e) e = j ? hetee_ckks_eval_mul_acc(ctx, a[10 + j], wj, o2) : hetee_ckks_eval_mul(ctx, a[10 + j], wj, o2);
      }
      pi = (pi + 1) % 16;
      break;
    case K_RESCALE:
      e = hetee_ckks_eval_mul(ctx, a[0], b[0], o); /* fresh degree-2 input (not timed apart) */
      if (!e) e = hetee_ckks_evaluator_rescale(ev, o, r);
      break;
    case K_STREAM:
      hetee_vec_add(m, x, y, z, STREAM_WORDS);
      break;
    case K_MEMCPY:
      memcpy(z, x, STREAM_WORDS * 8);
      break;
    default:
      break;
    }
    if (e) goto out;
    times[nc++] = bench_now_us() - t0;
  }
  sh->calls[slot] = (long)nc;
  sh->med[slot] = bench_median(times, nc);
  rc = 0;
out:
  if (rc) sh->fail[slot] = 1;
  if (rc) atomic_fetch_add(&sh->ready, 1); /* do not hold the other child */
  for (size_t i = 0; i < 64; i++) hetee_ckks_ciphertext_free(a[i]);
  for (size_t i = 0; i < 160; i++) hetee_ckks_ciphertext_free(b[i]);
  hetee_ckks_ciphertext_free(o);
  hetee_ckks_ciphertext_free(o2);
  hetee_ckks_ciphertext_free(r);
  hetee_ckks_evaluator_free(ev);
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_secret_key_free(sk);
  hetee_ckks_context_free(ctx);
  hetee_ntt_tables_free(t);
  free(x);
  free(y);
  free(z);
  free(times);
  return rc;
}

/* nprocs processes on CPUs 0..nprocs-1; *med: their medians' mean. */
static int run_once(kernel_id k, int ms, int nprocs, double *med) {
  shared_t *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) return 1;
  memset(sh, 0, sizeof *sh);
  pid_t pid[2] = {0, 0};
  int bad = 0;
  for (int c = 0; c < nprocs; c++) {
    pid[c] = fork();
    if (pid[c] < 0) {
      atomic_store(&sh->ready, nprocs); /* the children already started do not wait for this one */
      bad = 1;
      break;
    }
    if (pid[c] == 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(c, &set);
      if (sched_setaffinity(0, sizeof set, &set)) _exit(3);
      _exit(child_run(k, ms, sh, c, nprocs));
    }
  }
  for (int c = 0; c < nprocs; c++) {
    int st = 0;
    if (pid[c] > 0 && (waitpid(pid[c], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))) bad = 1;
  }
  double s = 0;
  for (int c = 0; c < nprocs; c++) s += sh->med[c], bad |= sh->fail[c] || sh->calls[c] < 5;
  *med = s / nprocs;
  munmap(sh, sizeof *sh);
  return bad;
}

static void usage(FILE *f) {
  fprintf(f, "usage: hetee-bench concur [--rounds R (1..50)] [--ms M (50..10000)] [--kernel NAME] [--json]\n"
             "kernels: ntt product_l2 product_l3 dense_fwd dense_snake dense_pair rescale stream memcpy (default: all)\n");
}

int hetee_bench_concur(int argc, char **argv) {
  int rounds = 5, ms = 400, json = 0, only = -1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--ms") && i + 1 < argc) ms = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--kernel") && i + 1 < argc) {
      const char *n = argv[++i];
      for (int k = 0; k < K_COUNT; k++)
        if (!strcmp(n, KNAME[k])) only = k;
      if (only < 0) {
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
  if (rounds < 1 || rounds > 50 || ms < 50 || ms > 10000) {
    usage(stderr);
    return 2;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) || !CPU_ISSET(0, &set) || !CPU_ISSET(1, &set)) {
    fprintf(stderr, "hetee-bench concur: needs CPUs 0 and 1\n");
    return 1;
  }
  if (json) printf("{\"rounds\": %d, \"ms\": %d, \"kernels\": [", rounds, ms);
  else
    printf("%-11s %12s %12s %10s %14s   (medians of %d alternated rounds of %d ms)\n", "kernel", "solo us", "pair us",
           "pair/solo", "2 CPUs / 1", rounds, ms);
  int first = 1;
  for (int k = 0; k < K_COUNT; k++) {
    if (only >= 0 && k != only) continue;
    double solo[50], pair[50];
    for (int r = 0; r < rounds; r++) {
      if (run_once((kernel_id)k, ms, 1, &solo[r]) || run_once((kernel_id)k, ms, 2, &pair[r])) {
        fprintf(stderr, "hetee-bench concur: kernel %s failed\n", KNAME[k]);
        return 1;
      }
    }
    double s = bench_median(solo, (size_t)rounds), p = bench_median(pair, (size_t)rounds);
    if (json)
      printf("%s{\"kernel\": \"%s\", \"solo_us\": %.3f, \"pair_us\": %.3f, \"slowdown\": %.4f, \"two_cpu_ratio\": %.4f}",
             first ? "" : ", ", KNAME[k], s, p, p / s, 2 * s / p);
    else
      printf("%-11s %12.2f %12.2f %10.3f %14.3f\n", KNAME[k], s, p, p / s, 2 * s / p);
    first = 0;
    fflush(stdout);
  }
  if (json) printf("]}\n");
  return 0;
}

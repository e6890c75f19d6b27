/*
 * bench_ntt.c — `hetee-bench ntt [--runs R] [--logn L]`: median time of one
 * forward and one inverse negacyclic NTT per ISA variant (ref, avx2, avx512
 * — the latter uses the IFMA52 kernels for primes < 2^50), single thread,
 * for logN 12..16 and a 50-bit and a 60-bit prime, with the ratio to ref.
 * Also the hot pointwise product (vec_muladd) of the dispatching variant and
 * the expansion of one uniform row from a seed (sample_uniform).
 * Each number is the median over R >= 200 runs after a warm-up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hetee/ring.h"
#include "bench_util.h"

/* median microseconds of fn over `runs` timed calls after warm-up; the
 * input is re-randomised outside the timed region every 16 runs so values
 * stay in range (forward/inverse alternate on the same buffer). */
static double median_ntt(hetee_isa isa, int inverse, const hetee_ntt_tables *t, uint64_t *a, int runs,
                         double *samples) {
  size_t n = hetee_ntt_tables_n(t);
  for (int w = 0; w < 20; w++)
    (void)(inverse ? hetee_ntt_inverse_isa(isa, t, a) : hetee_ntt_forward_isa(isa, t, a));
  for (int r = 0; r < runs; r++) {
    double t0 = bench_now_us();
    int rc = inverse ? hetee_ntt_inverse_isa(isa, t, a) : hetee_ntt_forward_isa(isa, t, a);
    samples[r] = bench_now_us() - t0;
    if (rc < 0)
      return -1;
    (void)n;
  }
  qsort(samples, (size_t)runs, sizeof *samples, bench_cmp_double);
  return samples[runs / 2];
}

int hetee_bench_ntt(int argc, char **argv) {
  int runs = 300, only_logn = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--runs") && i + 1 < argc)
      runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--logn") && i + 1 < argc)
      only_logn = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: hetee-bench ntt [--runs R>=200] [--logn 12..16]\n");
      return 2;
    }
  }
  if (runs < 200)
    runs = 200;
  double *samples = malloc((size_t)runs * sizeof *samples);
  if (!samples)
    return 1;
  static const hetee_isa isas[] = {HETEE_ISA_REF, HETEE_ISA_AVX2, HETEE_ISA_AVX512};
  static const char *names[] = {"ref", "avx2", "avx512"};
  printf("# hetee-bench ntt: median us over %d runs, single thread; dispatch picks %s\n", runs,
         hetee_ring_isa_name());
  printf("%-5s %-5s %-8s %11s %11s %9s %9s\n", "logN", "bits", "isa", "forward_us", "inverse_us",
         "fwd_x_ref", "inv_x_ref");
  for (int logn = 12; logn <= 16; logn++) {
    if (only_logn && logn != only_logn)
      continue;
    const int sizes[] = {50, 60};
    for (int s = 0; s < 2; s++) {
      uint64_t q;
      int bits = sizes[s];
      hetee_ntt_tables *t = NULL;
      if (hetee_primes_generate(logn, &bits, 1, NULL, 0, &q) < 0 || hetee_ntt_tables_new(logn, q, &t) < 0) {
        fprintf(stderr, "bench ntt: %s\n", hetee_last_error());
        free(samples);
        return 1;
      }
      size_t n = hetee_ntt_tables_n(t);
      uint64_t *a = hetee_alloc(n * sizeof *a);
      if (!a) {
        hetee_ntt_tables_free(t);
        free(samples);
        return 1;
      }
      double ref_f = 0, ref_i = 0;
      for (int v = 0; v < 3; v++) {
        if (!hetee_ring_isa_supported(isas[v]))
          continue;
        for (size_t i = 0; i < n; i++)
          a[i] = (i * 0x9e3779b97f4a7c15ull) % q;
        double f = median_ntt(isas[v], 0, t, a, runs, samples);
        double iv = median_ntt(isas[v], 1, t, a, runs, samples);
        if (v == 0)
          ref_f = f, ref_i = iv;
        const char *name = names[v];
        if (isas[v] == HETEE_ISA_AVX512 && bits <= 50 && !strcmp(hetee_ring_isa_name(), "avx512ifma"))
          name = "avx512ifma";
        printf("%-5d %-5d %-10s %9.2f %11.2f %9.2f %9.2f\n", logn, bits, name, f, iv, ref_f / f, ref_i / iv);
      }
      /* pointwise multiply-accumulate (the ct x ct product's inner loop) */
      uint64_t *b = hetee_alloc(n * sizeof *b), *c = hetee_alloc(n * sizeof *c);
      if (b && c) {
        for (size_t i = 0; i < n; i++)
          b[i] = (i * 0x2545f4914f6cdd1dull) % q;
        const hetee_modulus *m = hetee_ntt_tables_modulus(t);
        for (int r = 0; r < runs; r++) {
          double t0 = bench_now_us();
          hetee_vec_muladd(m, a, b, c, n);
          samples[r] = bench_now_us() - t0;
        }
        qsort(samples, (size_t)runs, sizeof *samples, bench_cmp_double);
        printf("%-5d %-5d %-10s vec_muladd %.2f us (dispatch %s)\n", logn, bits, "", samples[runs / 2],
               hetee_ring_isa_name());
        /* degree-2 product of two size-2 rows (ct x ct, one prime) */
        uint64_t *d = hetee_alloc(3 * n * sizeof *d);
        if (d) {
          for (int r = 0; r < runs; r++) {
            double t0 = bench_now_us();
            hetee_vec_tensor2(m, a, b, b, a, d, d + n, d + 2 * n, n, 0);
            samples[r] = bench_now_us() - t0;
          }
          qsort(samples, (size_t)runs, sizeof *samples, bench_cmp_double);
          printf("%-5d %-5d %-10s vec_tensor2 %.2f us\n", logn, bits, "", samples[runs / 2]);
          /* key-switching inner product of 3 digits against both key rows */
          const uint64_t *xs[3] = {a, b, c}, *k0[3] = {b, c, a}, *k1[3] = {c, a, b};
          for (int r = 0; r < runs; r++) {
            double t0 = bench_now_us();
            hetee_vec_dot2(m, xs, NULL, k0, k1, 3, d, d + n, n);
            samples[r] = bench_now_us() - t0;
          }
          qsort(samples, (size_t)runs, sizeof *samples, bench_cmp_double);
          printf("%-5d %-5d %-10s vec_dot2(3 digits) %.2f us\n", logn, bits, "", samples[runs / 2]);
        }
        hetee_free(d);
      }
      /* expanding one uniform row from a seed (the `a` of seeded objects) */
      if (c) {
        uint8_t seed[HETEE_SEED_BYTES] = {1};
        hetee_prg prg;
        for (int r = 0; r < runs; r++) {
          hetee_prg_init(&prg, seed, (uint64_t)r);
          double t0 = bench_now_us();
          hetee_sample_uniform(&prg, hetee_ntt_tables_modulus(t), c, n);
          samples[r] = bench_now_us() - t0;
        }
        hetee_prg_wipe(&prg);
        qsort(samples, (size_t)runs, sizeof *samples, bench_cmp_double);
        printf("%-5d %-5d %-10s sample_uniform %.2f us\n", logn, bits, "", samples[runs / 2]);
      }
      hetee_free(b);
      hetee_free(c);
      hetee_free(a);
      hetee_ntt_tables_free(t);
    }
  }
  free(samples);
  return 0;
}

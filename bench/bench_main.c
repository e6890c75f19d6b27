/*
 * bench_main.c — `hetee-bench <suite> [options]`: one binary, one suite per
 * file (bench_ckks.c, bench_enclave.c, ...). Suites not in this build are
 * reported as unavailable.
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#define HETEE_SUITE(name) int name(int argc, char **argv) __attribute__((weak));
HETEE_SUITE(hetee_bench_ckks)
HETEE_SUITE(hetee_bench_enclave)
HETEE_SUITE(hetee_bench_ntt)
HETEE_SUITE(hetee_bench_infer)
HETEE_SUITE(hetee_bench_hemat)
HETEE_SUITE(hetee_bench_refine)
HETEE_SUITE(hetee_bench_service)
HETEE_SUITE(hetee_bench_concur)
#undef HETEE_SUITE

typedef struct {
  const char *name;
  int (*fn)(int, char **);
  const char *help;
} suite;

static const suite SUITES[] = {
    {"ckks", hetee_bench_ckks, "CKKS primitives: [--json] [--logn 13|14|15] [--threads T (*_ev lines)]"},
    {"ntt", hetee_bench_ntt, "NTT variants (ref / avx2 / avx512) side by side"},
    {"enclave", hetee_bench_enclave, "enclave refresh and attestation costs"},
    {"infer", hetee_bench_infer, "encrypted inference: --model M.onnx [--batch B] [--images N] [--threads T] [--json]"},
    {"hemat", hetee_bench_hemat, "encrypted linear layers (E2DM) and the planner's unit costs: [--runs R] [--batch B] [--costs]"},
    {"service", hetee_bench_service, "the HTTP service under load: --clients C --batch B [--images N] [--model M.onnx] [--workers W] [--threads T] [--no-infer] [--json]"},
    {"concur", hetee_bench_concur, "one vs two copies of a kernel at once (the machine's own 2-CPU limit): [--rounds R] [--ms M] [--kernel K] [--json]"},
    {"refine", hetee_bench_refine, "encrypted refining: --model M.onnx [--batch B] [--samples S] [--accumulate A] [--train last|all|K] [--json]"},
};

int main(int argc, char **argv) {
  /* ciphertexts and keys are 0.1-100 MiB: fixed malloc thresholds keep freed
   * memory in the process instead of an mmap/munmap (and page faults) per
   * object; the enclave does the same (enclave_malloc_tune) */
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  if (argc < 2 || !strcmp(argv[1], "--help")) {
    fprintf(argc < 2 ? stderr : stdout, "usage: hetee-bench <suite> [options]\n");
    for (size_t i = 0; i < sizeof SUITES / sizeof SUITES[0]; i++)
      fprintf(argc < 2 ? stderr : stdout, "  %-8s %s%s\n", SUITES[i].name, SUITES[i].help,
              SUITES[i].fn ? "" : " (not in this build)");
    return argc < 2 ? 2 : 0;
  }
  for (size_t i = 0; i < sizeof SUITES / sizeof SUITES[0]; i++) {
    if (!strcmp(argv[1], SUITES[i].name)) {
      if (!SUITES[i].fn) {
        fprintf(stderr, "hetee-bench: suite '%s' is not available in this build\n", argv[1]);
        return 2;
      }
      return SUITES[i].fn(argc - 1, argv + 1);
    }
  }
  fprintf(stderr, "hetee-bench: unknown suite '%s'\n", argv[1]);
  return 2;
}

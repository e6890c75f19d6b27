/*
 * isa.c — picks the ISA variant once (libsodium/BLIS style): CPUID through
 * __builtin_cpu_supports plus an XGETBV check that the OS saves the YMM/ZMM
 * state; HETEE_ISA=ref|avx2|avx512 pins a variant (falling back to the best
 * available one with a warning) and HETEE_ISA_LOG=1 prints the choice.
 * Also the dispatching NTT entry points.
 */
#include "ring_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && !defined(HETEE_RING_NO_SIMD)
#define HETEE_X86 1
static uint64_t xgetbv0(void) {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}
static int os_saves(uint64_t mask) {
  uint32_t a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
  if (!(c & (1u << 27))) /* OSXSAVE */
    return 0;
  return (xgetbv0() & mask) == mask;
}
#endif

static int cpu_probe(hetee_isa isa) {
#ifdef HETEE_X86
  __builtin_cpu_init();
  switch (isa) {
  case HETEE_ISA_REF: return 1;
  case HETEE_ISA_AVX2:
    return __builtin_cpu_supports("avx2") && os_saves(0x6); /* XMM | YMM */
  case HETEE_ISA_AVX512:
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") && os_saves(0xe6); /* + opmask, ZMM */
  }
  return 0;
#else
  return isa == HETEE_ISA_REF;
#endif
}

/* CPUID/XGETBV trap to the hypervisor in a VM (microseconds), so the
 * answers are computed once. */
static pthread_once_t g_probe_once = PTHREAD_ONCE_INIT;
static int g_has[3], g_has_ifma;

static void probe_all(void) {
  for (int i = 0; i < 3; i++)
    g_has[i] = cpu_probe((hetee_isa)i);
#ifdef HETEE_X86
  g_has_ifma = g_has[HETEE_ISA_AVX512] && __builtin_cpu_supports("avx512ifma");
#endif
}

static int cpu_has(hetee_isa isa) {
  pthread_once(&g_probe_once, probe_all);
  return (unsigned)isa < 3 ? g_has[isa] : 0;
}

int hetee_ring_cpu_has_ifma(void) {
  pthread_once(&g_probe_once, probe_all);
  return g_has_ifma;
}

static const hetee_ring_kernels *kernels_of(hetee_isa isa) {
  switch (isa) {
  case HETEE_ISA_AVX2: return &hetee_ring_kernels_avx2;
  case HETEE_ISA_AVX512: return &hetee_ring_kernels_avx512;
  default: return &hetee_ring_kernels_ref;
  }
}

int hetee_ring_isa_supported(hetee_isa isa) {
  if (isa != HETEE_ISA_REF && isa != HETEE_ISA_AVX2 && isa != HETEE_ISA_AVX512)
    return 0;
  return cpu_has(isa);
}

static const char *isa_name(hetee_isa isa) {
  if (isa == HETEE_ISA_AVX512 && hetee_ring_cpu_has_ifma())
    return "avx512ifma";
  return kernels_of(isa)->name;
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static hetee_isa g_isa = HETEE_ISA_REF;

static void pick(void) {
  hetee_isa best = HETEE_ISA_REF;
  if (cpu_has(HETEE_ISA_AVX2))
    best = HETEE_ISA_AVX2;
  if (cpu_has(HETEE_ISA_AVX512))
    best = HETEE_ISA_AVX512;
  g_isa = best;
  const char *env = getenv("HETEE_ISA");
  if (env && *env) {
    hetee_isa want;
    int known = 1;
    if (!strcmp(env, "ref"))
      want = HETEE_ISA_REF;
    else if (!strcmp(env, "avx2"))
      want = HETEE_ISA_AVX2;
    else if (!strcmp(env, "avx512"))
      want = HETEE_ISA_AVX512;
    else
      known = 0, want = best;
    if (!known)
      fprintf(stderr, "hetee: HETEE_ISA=%s unknown (ref|avx2|avx512), using %s\n", env,
              kernels_of(best)->name);
    else if (!cpu_has(want))
      fprintf(stderr, "hetee: HETEE_ISA=%s not supported by this CPU, using %s\n", env,
              kernels_of(best)->name);
    else
      g_isa = want;
  }
  const char *log = getenv("HETEE_ISA_LOG");
  if (log && *log && strcmp(log, "0")) /* not hetee_ring_isa_name(): we are inside the once */
    fprintf(stderr, "hetee: ring ISA %s\n", isa_name(g_isa));
}

const hetee_ring_kernels *hetee_ring_active(void) {
  pthread_once(&g_once, pick);
  return kernels_of(g_isa);
}

hetee_isa hetee_ring_isa(void) {
  pthread_once(&g_once, pick);
  return g_isa;
}

const char *hetee_ring_isa_name(void) { return isa_name(hetee_ring_isa()); }

void hetee_ntt_forward(const hetee_ntt_tables *t, uint64_t *a) { hetee_ring_active()->ntt_forward(t, a); }

void hetee_ntt_inverse(const hetee_ntt_tables *t, uint64_t *a) { hetee_ring_active()->ntt_inverse(t, a); }

void hetee_ntt_inverse_add(const hetee_ntt_tables *t, const uint64_t *in, uint64_t *out, uint64_t s) {
  hetee_ring_active()->ntt_inverse_add(t, in, out, s);
}

int hetee_ntt_forward_isa(hetee_isa isa, const hetee_ntt_tables *t, uint64_t *a) {
  if (!hetee_ring_isa_supported(isa))
    return hetee_error(HETEE_ERR_UNSUPPORTED, "ntt: ISA variant %d not supported here", (int)isa);
  kernels_of(isa)->ntt_forward(t, a);
  return 0;
}

int hetee_ntt_inverse_isa(hetee_isa isa, const hetee_ntt_tables *t, uint64_t *a) {
  if (!hetee_ring_isa_supported(isa))
    return hetee_error(HETEE_ERR_UNSUPPORTED, "ntt: ISA variant %d not supported here", (int)isa);
  kernels_of(isa)->ntt_inverse(t, a);
  return 0;
}

const hetee_ring_kernels hetee_ring_kernels_ref = {
    "ref", hetee_ntt_forward_ref, hetee_ntt_inverse_ref, hetee_vec_add_ref,
    hetee_vec_sub_ref, hetee_vec_mul_ref, hetee_vec_muladd_ref, hetee_vec_mul_scalar_ref,
    hetee_vec_add_scalar_ref, hetee_vec_reduce_ref, hetee_vec_dot_ref, hetee_vec_tensor2_ref,
    hetee_vec_dot2_ref, hetee_vec_reduce_add_scalar_ref, hetee_vec_sub_mul_scalar_add_ref,
    hetee_ntt_inverse_add_ref,
};

#ifdef HETEE_RING_NO_SIMD
/* non-x86 build: the SIMD files are not compiled and cpu_probe() reports
 * the variants unsupported; these tables only satisfy kernels_of() */
const hetee_ring_kernels hetee_ring_kernels_avx2 = {
    "avx2", hetee_ntt_forward_ref, hetee_ntt_inverse_ref, hetee_vec_add_ref,
    hetee_vec_sub_ref, hetee_vec_mul_ref, hetee_vec_muladd_ref, hetee_vec_mul_scalar_ref,
    hetee_vec_add_scalar_ref, hetee_vec_reduce_ref, hetee_vec_dot_ref, hetee_vec_tensor2_ref,
    hetee_vec_dot2_ref, hetee_vec_reduce_add_scalar_ref, hetee_vec_sub_mul_scalar_add_ref,
    hetee_ntt_inverse_add_ref,
};
const hetee_ring_kernels hetee_ring_kernels_avx512 = {
    "avx512", hetee_ntt_forward_ref, hetee_ntt_inverse_ref, hetee_vec_add_ref,
    hetee_vec_sub_ref, hetee_vec_mul_ref, hetee_vec_muladd_ref, hetee_vec_mul_scalar_ref,
    hetee_vec_add_scalar_ref, hetee_vec_reduce_ref, hetee_vec_dot_ref, hetee_vec_tensor2_ref,
    hetee_vec_dot2_ref, hetee_vec_reduce_add_scalar_ref, hetee_vec_sub_mul_scalar_add_ref,
    hetee_ntt_inverse_add_ref,
};
#endif

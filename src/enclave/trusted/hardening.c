/*
 * hardening.c — process hardening of the sim backend: no core dumps, not
 * ptrace-attachable by other processes of the same user (PR_SET_DUMPABLE 0),
 * subnormal floating point flushed to zero (no data-dependent microcode
 * assists on decrypted values),
 * a seccomp-BPF filter (libseccomp) installed after start-up allowing only
 * what the message loop needs: read/write on its sockets, memory management
 * without PROT_EXEC, getrandom, clocks, futex, exit. Anything else kills the
 * process. The filter is synchronised to every thread (TSYNC): the worker
 * threads (pool.c) exist before it and run under it; creating a thread
 * afterwards (clone) is one of the forbidden calls. This is defence in depth for an ordinary process: it does not
 * protect against the kernel, root or the hardware (docs/enclave.md).
 *
 * Under AddressSanitizer (HETEE_SANITIZE) the sanitizer runtime needs system
 * calls the loop does not (sigaltstack, /proc reads, ...): the filter is not
 * installed in sanitizer builds, which are test builds only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <limits.h>
#include <sys/resource.h>

#include "enclave/trusted/enclave_internal.h"

/* Whether RLIMIT_MEMLOCK lets sodium_malloc lock `need` bytes:
 * sodium_malloc locks its pages on a best-effort basis and silently leaves
 * them unlocked (swappable) above the limit. The launcher raises the limit
 * (launcher.c); this check reports what it got. */
int enclave_memlock_ok(size_t need) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0) return 0;
  return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need;
}

int enclave_harden_early(void) {
  struct rlimit rl = {0, 0};
  if (setrlimit(RLIMIT_CORE, &rl) != 0) return hetee_error(HETEE_ERR_IO, "setrlimit(RLIMIT_CORE): %s", strerror(errno));
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return hetee_error(HETEE_ERR_IO, "prctl(PR_SET_DUMPABLE): %s", strerror(errno));
  signal(SIGPIPE, SIG_IGN);
  enclave_fp_mode();
  return 0;
}

/* glibc serves requests above M_MMAP_THRESHOLD (128 KiB at first, moving
 * up to the largest block freed so far) with their own mmap and returns
 * them with munmap, and trims the heap top above M_TRIM_THRESHOLD: with
 * ciphertext rows of 64-128 KiB and request frames of megabytes every
 * refresh paid page faults and zeroing for memory it had just released.
 * Fixed thresholds keep freed memory in the process (blocks up to 32 MiB,
 * the most glibc allows, come from the heap; the heap keeps up to the
 * budget plus the largest frame), so after the first requests nothing is
 * mapped, faulted in or unmapped per ciphertext. Everything secret is wiped
 * before it is freed (plaintexts, scratch, frames, replies), so kept memory
 * holds nothing more than it did. */
void enclave_malloc_tune(size_t budget) {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  size_t keep = budget + HETEE_FRAME_MAX_BODY;
  mallopt(M_TRIM_THRESHOLD, keep > (size_t)INT_MAX ? INT_MAX : (int)keep);
}

/* The shared region is the host's memory too: it can write any byte at any
 * time (the server copies request bodies out before parsing them), but it
 * must not be able to make an access fault. A memfd whose size is sealed
 * (F_SEAL_SHRINK; F_SEAL_SEAL so no later seal can be added) cannot be
 * truncated under the mapping (SIGBUS); F_GET_SEALS fails on anything that
 * is not a memfd. Adding F_SEAL_WRITE is refused by the kernel while this
 * writable mapping exists. A region that is absent or fails a check is not
 * used: the socket carries everything, as it does without a region. */
void enclave_shm_map(enclave *e) {
  e->shm = NULL;
  struct stat st;
  if (fstat(HETEE_SHM_FD, &st) != 0) return; /* no region */
  int seals = fcntl(HETEE_SHM_FD, F_GET_SEALS);
  int need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
  if (!S_ISREG(st.st_mode) || st.st_size != (off_t)HETEE_SHM_BYTES || seals < 0 || (seals & need) != need ||
      (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
    return;
  void *p = mmap(NULL, HETEE_SHM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, HETEE_SHM_FD, 0);
  if (p == MAP_FAILED) return;
  close(HETEE_SHM_FD); /* the mapping stays */
  e->shm = p;
}

void enclave_fp_mode(void) {
#if defined(__x86_64__) || defined(__i386__)
  /* Flush-to-zero and denormals-are-zero (MXCSR bits 15 and 6) for this
   * thread and the threads it creates (the pool's workers set it again
   * themselves): on x86 an operation with a subnormal operand or result
   * takes a microcode assist (~100 cycles), so the time of
   * ReLU/softmax/encoding would depend on how many decrypted values are
   * tiny. Values below 2^-1022 carry nothing at CKKS precision. */
  __builtin_ia32_ldmxcsr(__builtin_ia32_stmxcsr() | 0x8040u);
#endif
}

int enclave_seccomp_install(void) {
#ifdef HETEE_SANITIZE
  return 0;
#else
  scmp_filter_ctx f = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (!f) return hetee_error(HETEE_ERR_INTERNAL, "seccomp_init failed");
  static const int allowed[] = {
      SCMP_SYS(read),          SCMP_SYS(write),         SCMP_SYS(readv),         SCMP_SYS(writev),
      SCMP_SYS(sendto),        SCMP_SYS(recvfrom),      SCMP_SYS(close),         SCMP_SYS(exit),
      SCMP_SYS(exit_group),    SCMP_SYS(futex),         SCMP_SYS(brk),           SCMP_SYS(munmap),
      SCMP_SYS(mremap),        SCMP_SYS(madvise),       SCMP_SYS(mlock),         SCMP_SYS(munlock),
      SCMP_SYS(getrandom),     SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),  SCMP_SYS(gettimeofday),
      SCMP_SYS(rt_sigreturn),  SCMP_SYS(rt_sigprocmask), SCMP_SYS(sched_yield),  SCMP_SYS(getpid),
      SCMP_SYS(restart_syscall),
  };
  /* the filter goes to every thread of the process (the pool's workers,
   * created before it), not only to the calling one */
  int rc = seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1);
  for (size_t i = 0; i < sizeof allowed / sizeof allowed[0] && !rc; i++)
    rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, allowed[i], 0);
  /* Memory mapping only without PROT_EXEC: no new code after start-up. */
  if (!rc) rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
  if (!rc) rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
  if (!rc) rc = seccomp_load(f);
  seccomp_release(f);
  if (rc) return hetee_error(HETEE_ERR_INTERNAL, "seccomp filter: %s", strerror(-rc));
  return 0;
#endif
}

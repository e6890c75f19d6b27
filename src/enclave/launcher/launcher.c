/*
 * launcher.c — hetee-launcher, the sim backend's stand-in for the CPU.
 *
 *   hetee-launcher --platform DIR --enclave PATH [--config STR]
 *   (fd 3: the host's end of a socketpair; fd 5, optional: the host's
 *   shared region, a sealed memfd, passed on to the enclave untouched)
 *
 * It holds what real hardware keeps out of the enclave's reach: the platform
 * attestation key and the sealing root. It copies the enclave binary into a
 * sealed memfd, measures exactly those bytes plus the configuration, and
 * starts the enclave from that memfd (so the code that runs is the code that
 * was measured) with fd 3 = host socket and fd 4 = a private "platform"
 * socket. On that socket it answers two requests, the way SGX's EREPORT /
 * EGETKEY do: HELLO (measurement, sealing key = KDF(platform secret,
 * measurement), configuration) and REPORT (sign report data with the
 * measurement it computed itself). A modified enclave therefore gets a
 * different measurement and a different sealing key; it can never choose
 * what the platform signs as its measurement.
 *
 * The enclave starts with an empty environment (sanitizer options excepted in
 * HETEE_SANITIZE builds): the host's environment must not alter what the
 * measured code does. If the host dies the launcher dies (PDEATHSIG), and the
 * enclave with it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "enclave/wire/platform.h"
#include "enclave/wire/proto.h"

#define HOST_FD 3
#define PLAT_FD 4

extern char **environ;

static int fail(int status, const char *what) {
  /* The host is waiting for a reply on fd 3: tell it why we stop. */
  char msg[300];
  snprintf(msg, sizeof msg, "launcher: %s: %s", what, hetee_last_error());
  (void)hetee_frame_write_error(HOST_FD, 0, status, msg);
  fprintf(stderr, "%s\n", msg);
  return 1;
}

static int serve(int fd, const hetee_platform *pl, const uint8_t meas[32], const char *config) {
  for (;;) {
    hetee_frame f;
    int rc = hetee_frame_read(fd, 4096, &f);
    if (rc == HETEE_ERR_IO) return 0; /* enclave gone */
    if (rc) {
      (void)hetee_frame_write_error(fd, f.id, rc, hetee_last_error());
      continue;
    }
    if (f.version != HETEE_PROTO_VERSION) {
      rc = hetee_frame_write_error(fd, f.id, HETEE_ERR_VERSION, "platform protocol version");
    } else if (f.type == HETEE_MSG_PLAT_HELLO && f.len == 0) {
      hetee_wbuf w;
      hetee_wbuf_init(&w);
      uint8_t key[32];
      hetee_platform_seal_key(pl, meas, key);
      hetee_wbuf_put(&w, meas, 32);
      hetee_wbuf_put(&w, key, 32);
      hetee_wbuf_blob(&w, config, strlen(config));
      sodium_memzero(key, sizeof key);
      rc = w.err ? hetee_frame_write_error(fd, f.id, HETEE_ERR_NOMEM, "no memory")
                 : hetee_frame_write(fd, HETEE_MSG_PLAT_HELLO | HETEE_MSG_REPLY, f.id, w.p, w.len);
      hetee_wbuf_free(&w);
    } else if (f.type == HETEE_MSG_PLAT_REPORT && f.len == 32) {
      uint8_t ev[HETEE_EVIDENCE_BYTES];
      rc = hetee_platform_sign_report(pl, meas, f.body, ev);
      rc = rc ? hetee_frame_write_error(fd, f.id, rc, "signing failed")
              : hetee_frame_write(fd, HETEE_MSG_PLAT_REPORT | HETEE_MSG_REPLY, f.id, ev, sizeof ev);
    } else {
      rc = hetee_frame_write_error(fd, f.id, HETEE_ERR_PROTOCOL, "unknown platform request");
    }
    hetee_frame_clear(&f);
    if (rc == HETEE_ERR_IO) return 0;
  }
}

int main(int argc, char **argv) {
  const char *pdir = NULL, *path = NULL, *config = HETEE_ENCLAVE_DEFAULT_CONFIG;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--platform")) pdir = argv[i + 1];
    else if (!strcmp(argv[i], "--enclave")) path = argv[i + 1];
    else if (!strcmp(argv[i], "--config")) config = argv[i + 1];
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  prctl(PR_SET_DUMPABLE, 0);
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0) return fail(HETEE_ERR_CRYPTO, "sodium_init");
  if (!pdir || !path) {
    hetee_error(HETEE_ERR_INVALID_ARG, "usage: hetee-launcher --platform DIR --enclave PATH [--config STR]");
    return fail(HETEE_ERR_INVALID_ARG, "arguments");
  }
  if (strlen(config) > 1024) {
    hetee_error(HETEE_ERR_LIMIT, "configuration longer than 1024 bytes");
    return fail(HETEE_ERR_LIMIT, "config");
  }
  hetee_platform *pl = sodium_malloc(sizeof *pl);
  if (!pl) return fail(HETEE_ERR_NOMEM, "memory");
  int rc = hetee_platform_load(pdir, pl);
  if (rc) return fail(rc, "cannot load platform");
  uint8_t *bin;
  size_t len;
  rc = hetee_file_read(path, 256u << 20, &bin, &len);
  if (rc) return fail(rc, "cannot read enclave binary");
  uint8_t meas[32];
  rc = hetee_measure_bytes(bin, len, config, meas);
  if (rc) return fail(rc, "measure");
  int mfd = memfd_create("hetee-enclave", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mfd < 0) {
    hetee_error(HETEE_ERR_IO, "memfd_create: %s", strerror(errno));
    return fail(HETEE_ERR_IO, "memfd");
  }
  for (size_t off = 0; off < len;) {
    ssize_t w = write(mfd, bin + off, len - off);
    if (w <= 0) {
      hetee_error(HETEE_ERR_IO, "memfd write: %s", strerror(errno));
      return fail(HETEE_ERR_IO, "memfd");
    }
    off += (size_t)w;
  }
  free(bin);
  if (fcntl(mfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    hetee_error(HETEE_ERR_IO, "memfd seal: %s", strerror(errno));
    return fail(HETEE_ERR_IO, "memfd");
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    hetee_error(HETEE_ERR_IO, "socketpair: %s", strerror(errno));
    return fail(HETEE_ERR_IO, "socketpair");
  }
  /* Keep our descriptors clear of 3 and 4, which the child rearranges. */
  int hi[3] = {fcntl(mfd, F_DUPFD_CLOEXEC, 10), fcntl(sv[0], F_DUPFD_CLOEXEC, 10), fcntl(sv[1], F_DUPFD_CLOEXEC, 10)};
  if (hi[0] < 0 || hi[1] < 0 || hi[2] < 0) {
    hetee_error(HETEE_ERR_IO, "fcntl: %s", strerror(errno));
    return fail(HETEE_ERR_IO, "descriptors");
  }
  close(mfd);
  close(sv[0]);
  close(sv[1]);
  mfd = hi[0], sv[0] = hi[1], sv[1] = hi[2];
  pid_t pid = fork();
  if (pid < 0) {
    hetee_error(HETEE_ERR_IO, "fork: %s", strerror(errno));
    return fail(HETEE_ERR_IO, "fork");
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (dup2(sv[1], PLAT_FD) < 0) _exit(127);
    int fl = fcntl(HOST_FD, F_GETFD);
    if (fl < 0 || fcntl(HOST_FD, F_SETFD, fl & ~FD_CLOEXEC) != 0) _exit(127);
    sodium_memzero(pl, sizeof *pl); /* the enclave never sees the platform root */
    /* Locked memory: sodium_malloc locks secrets only within
     * RLIMIT_MEMLOCK (8 MiB by default; logN 16 keys and refresh
     * workspaces exceed it) and silently gives up above it. Lift the limit
     * (needs CAP_SYS_RESOURCE), else raise the soft limit to the hard one;
     * the enclave reports in INFO whether that covers its configuration. */
    struct rlimit ml = {RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_MEMLOCK, &ml) != 0 && getrlimit(RLIMIT_MEMLOCK, &ml) == 0) {
      ml.rlim_cur = ml.rlim_max;
      (void)setrlimit(RLIMIT_MEMLOCK, &ml);
    }
    char *args[] = {(char *)"hetee-enclave", NULL};
    /* A clean environment: nothing the host sets (LD_PRELOAD, ...) may change
     * what the measured binary does. Sanitizer builds keep their options. */
    char *envp[8];
    int ne = 0;
#ifdef HETEE_SANITIZE
    static const char *keep[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
      for (char **ev = environ; *ev; ev++)
        if (!strncmp(*ev, keep[i], strlen(keep[i])) && (*ev)[strlen(keep[i])] == '=') envp[ne++] = *ev;
#endif
    envp[ne] = NULL;
    fexecve(mfd, args, envp);
    hetee_error(HETEE_ERR_IO, "cannot execute enclave binary: %s", strerror(errno));
    (void)fail(HETEE_ERR_IO, "exec");
    _exit(127);
  }
  close(sv[1]);
  close(HOST_FD);
  if (fcntl(HETEE_SHM_FD, F_GET_SEALS) >= 0) close(HETEE_SHM_FD); /* the host's region: the enclave's, not ours */
  close(mfd);
  serve(sv[0], pl, meas, config);
  close(sv[0]);
  sodium_free(pl);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/*
 * enclave_process.c — the host's side of the enclave process: spawn
 * hetee-launcher with a socketpair on fd 3 (the launcher measures and starts
 * hetee-enclave, see src/enclave/launcher/launcher.c), send one framed request at a
 * time and match its reply by request id, detect a dead enclave (EOF/EPIPE)
 * and restart it (unsealing the last sealed state when configured), and shut
 * both processes down cleanly. Bulk bodies of the public request and reply
 * types travel through a shared region (a sealed memfd created here, fd 5
 * of the launcher and the enclave) with only the frame header and a length
 * on the socket (docs/enclave.md "Transport"); without a region, or with
 * HETEE_ENCLAVE_SHM=0, the socket carries everything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "host/host_internal.h"

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int hetee_host_bin_dir(char *out, size_t n) {
  const char *env = getenv("HETEE_BIN_DIR");
  if (env && *env) {
    snprintf(out, n, "%s", env);
    return 0;
  }
  char exe[PATH_MAX];
  ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (k <= 0) return hetee_error(HETEE_ERR_IO, "cannot locate the running executable");
  exe[k] = 0;
  snprintf(out, n, "%s", dirname(exe));
  return 0;
}

static int resolve_paths(hetee_host_enclave *e, const hetee_host_options *o) {
  char dir[PATH_MAX], p[PATH_MAX + 32];
  if (o->launcher_path) {
    e->launcher = strdup(o->launcher_path);
  } else {
    int rc = hetee_host_bin_dir(dir, sizeof dir);
    if (rc) return rc;
    snprintf(p, sizeof p, "%s/hetee-launcher", dir);
    e->launcher = strdup(p);
  }
  if (!e->launcher) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (o->enclave_path) {
    e->enclave = strdup(o->enclave_path);
  } else {
    char *copy = strdup(e->launcher);
    if (!copy) return hetee_error(HETEE_ERR_NOMEM, "no memory");
    snprintf(p, sizeof p, "%s/hetee-enclave", dirname(copy));
    free(copy);
    e->enclave = strdup(p);
  }
  return e->enclave ? 0 : hetee_error(HETEE_ERR_NOMEM, "no memory");
}

/* Waits up to ms for pid, then kills it. */
static void reap(pid_t pid, int ms) {
  if (pid <= 0) return;
  for (int i = 0; i < ms / 5; i++) {
    pid_t r = waitpid(pid, NULL, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return;
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
}

void hetee_host_stats_follow(hetee_host_enclave *e, int on) {
  if (!e) return;
  e->stats_follow = on;
  e->stats_have = 0;
  hetee_frame_clear(&e->stats_reply);
}

static void close_process(hetee_host_enclave *e, int graceful) {
  hetee_host_stats_follow(e, 0);
  if (e->fd >= 0) {
    if (graceful && hetee_frame_write(e->fd, HETEE_MSG_SHUTDOWN, ++e->next_id, NULL, 0) == 0) {
      hetee_frame f;
      if (hetee_frame_read(e->fd, 1024, &f) == 0) hetee_frame_clear(&f);
    }
    close(e->fd);
    e->fd = -1;
  }
  reap(e->launcher_pid, graceful ? 5000 : 2000);
  e->launcher_pid = -1;
  e->info_pid = -1;
  e->shm_ok = 0; /* until the next enclave confirms the region */
}

/* Creates the shared region: a memfd of HETEE_SHM_BYTES with its size
 * sealed (the enclave refuses one that could shrink under its mapping),
 * mapped here. Any failure leaves no region: the socket carries
 * everything. */
static void shm_create(hetee_host_enclave *e) {
  e->shm_fd = -1;
  e->shm = NULL;
  const char *env = getenv(HETEE_SHM_ENV);
  if (env && !strcmp(env, "0")) return;
  int fd = memfd_create("hetee-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return;
  /* above the descriptors the spawned child rearranges (3, 5) */
  int hi = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  close(fd);
  if (hi < 0) return;
  void *p = MAP_FAILED;
  if (ftruncate(hi, (off_t)HETEE_SHM_BYTES) == 0 &&
      fcntl(hi, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
    p = mmap(NULL, HETEE_SHM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, hi, 0);
  if (p == MAP_FAILED) {
    close(hi);
    return;
  }
  e->shm_fd = hi;
  e->shm = p;
}

static void shm_destroy(hetee_host_enclave *e) {
  if (e->shm) munmap(e->shm, HETEE_SHM_BYTES);
  if (e->shm_fd >= 0) close(e->shm_fd);
  e->shm = NULL;
  e->shm_fd = -1;
  e->shm_ok = 0;
}

/* Whether the enclave just started maps the region: it answers SHM_HELLO
 * with the random probe the host wrote at the start of the request area.
 * Any refusal (an enclave without the region, or an older one) leaves the
 * socket path. */
static void shm_hello(hetee_host_enclave *e) {
  e->shm_ok = 0;
  if (!e->shm) return;
  uint8_t probe[HETEE_SHM_PROBE_BYTES];
  randombytes_buf(probe, sizeof probe);
  memcpy(e->shm, probe, sizeof probe);
  hetee_frame f;
  if (hetee_host_call_frame(e, HETEE_MSG_SHM_HELLO, NULL, 0, &f, 0) != 0) {
    hetee_error_clear();
    return;
  }
  e->shm_ok = f.len == 8 + sizeof probe && hetee_rd64(f.body) == HETEE_SHM_AREA && !memcmp(f.body + 8, probe, sizeof probe);
  hetee_frame_clear(&f);
}

uint8_t *hetee_host_shm_region(hetee_host_enclave *e) { return e && e->shm_ok ? e->shm : NULL; }

void hetee_host_shm_enable(hetee_host_enclave *e, int on) {
  if (e) e->shm_off = !on;
}

static int spawn(hetee_host_enclave *e) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return hetee_error(HETEE_ERR_IO, "socketpair: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0) {
    close(sv[0]);
    close(sv[1]);
    return hetee_error(HETEE_ERR_IO, "fork: %s", strerror(errno));
  }
  if (pid == 0) {
    if (sv[1] == 3) {
      int fl = fcntl(3, F_GETFD);
      fcntl(3, F_SETFD, fl & ~FD_CLOEXEC);
    } else if (dup2(sv[1], 3) < 0) {
      _exit(127);
    }
    /* the shared region as fd 5 (shm_fd >= 10: clear of 3 and 5) */
    int shm = e->shm_fd >= 0 && dup2(e->shm_fd, HETEE_SHM_FD) == HETEE_SHM_FD;
    for (int fd = 4; fd < 1024; fd++) /* nothing else leaks into the enclave */
      if (!(shm && fd == HETEE_SHM_FD)) close(fd);
    char *args[] = {(char *)"hetee-launcher", (char *)"--platform", e->platform, (char *)"--enclave", e->enclave,
                    (char *)"--config", e->config, NULL};
    execv(e->launcher, args);
    fprintf(stderr, "hetee: cannot execute %s: %s\n", e->launcher, strerror(errno));
    _exit(127);
  }
  close(sv[1]);
  e->fd = sv[0];
  e->launcher_pid = pid;
  hetee_host_info info;
  int rc = hetee_host_info_get_noretry(e, &info);
  if (rc) {
    int keep = rc;
    char detail[512];
    snprintf(detail, sizeof detail, "%s", hetee_last_error());
    close_process(e, 0);
    return hetee_error(keep, "enclave did not start: %s", detail);
  }
  e->info_pid = info.pid;
  shm_hello(e);
  return 0;
}

static int unseal_if_any(hetee_host_enclave *e) {
  if (!e->seal_path || access(e->seal_path, F_OK) != 0) return 0;
  return hetee_host_unseal(e, e->seal_path);
}

int hetee_host_start(const hetee_host_options *o, hetee_host_enclave **out) {
  if (!o || !out || !o->platform_dir) return hetee_error(HETEE_ERR_INVALID_ARG, "platform_dir is required");
  *out = NULL;
  hetee_host_enclave *e = calloc(1, sizeof *e);
  if (!e) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  e->fd = -1;
  e->launcher_pid = -1;
  shm_create(e);
  int rc = resolve_paths(e, o);
  if (rc) goto err;
  e->platform = strdup(o->platform_dir);
  e->config = strdup(o->config ? o->config : HETEE_ENCLAVE_DEFAULT_CONFIG);
  e->seal_path = dup_or_null(o->seal_path);
  e->auto_restart = o->auto_restart;
  if (!e->platform || !e->config || (o->seal_path && !e->seal_path)) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto err;
  }
  rc = spawn(e);
  if (rc) goto err;
  rc = unseal_if_any(e);
  if (rc) goto err;
  *out = e;
  return 0;
err:
  hetee_host_free(e);
  return rc;
}

void hetee_host_free(hetee_host_enclave *e) {
  if (!e) return;
  close_process(e, 1);
  free(e->launcher);
  free(e->enclave);
  free(e->platform);
  free(e->config);
  free(e->seal_path);
  shm_destroy(e);
  free(e);
}

int hetee_host_restart(hetee_host_enclave *e) {
  if (!e) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL handle");
  close_process(e, 0);
  e->restarts++;
  int rc = spawn(e);
  if (!rc) rc = unseal_if_any(e);
  return rc;
}

unsigned hetee_host_restarts(const hetee_host_enclave *e) { return e ? e->restarts : 0; }

/* The enclave is gone: clean up, restart if asked, report HETEE_ERR_IO. */
static int died(hetee_host_enclave *e, const char *what) {
  char detail[300];
  snprintf(detail, sizeof detail, "%s", what);
  close_process(e, 0);
  if (!e->auto_restart) return hetee_error(HETEE_ERR_IO, "enclave died (%s)", detail);
  e->restarts++;
  int rc = spawn(e);
  if (!rc) rc = unseal_if_any(e);
  if (rc) return hetee_error(HETEE_ERR_IO, "enclave died (%s) and could not be restarted: %s", detail, hetee_last_error());
  return hetee_error(HETEE_ERR_IO, "enclave died (%s); a new enclave was started", detail);
}

int hetee_host_call_frame(hetee_host_enclave *e, uint16_t type, const uint8_t *body, size_t len, hetee_frame *reply,
                             int may_restart) {
  hetee_frame_part part = {body, len};
  return hetee_host_call_parts(e, type, &part, 1, reply, may_restart);
}

/* Reads the reply to request (id, type) into *reply; an error frame
 * becomes its status. *got: a frame was read (reply or error), i.e. the
 * stream is where it should be. */
static int read_reply(hetee_host_enclave *e, uint64_t id, uint16_t type, hetee_frame *reply, int may_restart,
                      int *got) {
  *got = 0;
  int rc = hetee_frame_read(e->fd, HETEE_FRAME_MAX_BODY, reply);
  if (rc == HETEE_ERR_IO) {
    /* An error frame written by the launcher before it gave up reads fine;
     * EOF here means the process died. */
    return may_restart ? died(e, "no reply") : rc;
  }
  if (rc) return rc;
  if (reply->type == HETEE_MSG_ERROR) {
    *got = 1;
    rc = hetee_frame_error_status(reply);
    hetee_frame_clear(reply);
    return rc;
  }
  if (reply->type == (uint16_t)(type | HETEE_MSG_REPLY | HETEE_MSG_SHM) && reply->id == id && e->shm_ok) {
    /* the body is in the reply area: copied out now, before the call
     * returns (the caller's enclave lock covers the copy; the region is
     * reused by the next call) */
    *got = 1;
    size_t n;
    rc = hetee_frame_shm_len(reply, HETEE_SHM_AREA, &n);
    uint8_t *body = NULL;
    if (!rc && n && !(body = malloc(n))) rc = hetee_error(HETEE_ERR_NOMEM, "no memory for a %zu-byte reply", n);
    hetee_frame_clear(reply);
    if (rc) return rc;
    if (n) memcpy(body, e->shm + HETEE_SHM_AREA, n);
    reply->version = HETEE_PROTO_VERSION;
    reply->type = (uint16_t)(type | HETEE_MSG_REPLY);
    reply->id = id;
    reply->body = body;
    reply->len = n;
    return 0;
  }
  if (reply->id != id || reply->type != (uint16_t)(type | HETEE_MSG_REPLY)) {
    hetee_frame_clear(reply);
    close_process(e, 0); /* out of sync: the stream cannot be trusted anymore */
    return hetee_error(HETEE_ERR_PROTOCOL, "reply %llu/%u does not match request %llu/%u",
                       (unsigned long long)reply->id, reply->type, (unsigned long long)id, type);
  }
  *got = 1;
  return 0;
}

int hetee_host_call_parts(hetee_host_enclave *e, uint16_t type, const hetee_frame_part *parts, size_t nparts,
                             hetee_frame *reply, int may_restart) {
  if (e->fd < 0) {
    if (!may_restart || !e->auto_restart) return hetee_error(HETEE_ERR_STATE, "enclave is not running");
    return died(e, "not running");
  }
  /* type may carry HETEE_MSG_SERIAL (a scheduling hint the enclave strips):
   * the checks and the reply's match use the type without it */
  uint16_t base = (uint16_t)(type & ~HETEE_MSG_SERIAL);
  int follow = e->stats_follow && base != HETEE_MSG_STATS;
  if (follow) {
    e->stats_have = 0;
    hetee_frame_clear(&e->stats_reply);
  }
  uint64_t id = ++e->next_id, sid = 0;
  size_t total = 0;
  int shm = e->shm_ok && !e->shm_off && hetee_msg_public_body(base);
  for (size_t i = 0; i < nparts && shm; i++) {
    if (parts[i].len > HETEE_SHM_AREA - total) shm = 0; /* above the frame limit: the socket path refuses it */
    else total += parts[i].len;
  }
  int rc;
  if (shm) {
    /* a public body: into the request area, its length on the socket */
    size_t off = 0;
    for (size_t i = 0; i < nparts; i++) {
      if (parts[i].len) memcpy(e->shm + off, parts[i].p, parts[i].len);
      off += parts[i].len;
    }
  }
  /* the STATS request right behind it, in the same send: the enclave reads
   * it as soon as it has answered, without waiting for this process to ask
   * again, and is woken once for both */
  if (follow) sid = ++e->next_id;
  uint16_t then = follow ? HETEE_MSG_STATS : 0;
  if (shm)
    rc = hetee_frame_write_shm_then(e->fd, type, id, total, then, sid);
  else
    rc = hetee_frame_write_parts_then(e->fd, type, id, parts, nparts, then, sid);
  if (rc == HETEE_ERR_IO) {
    /* The write fails when the peer has closed its end: the launcher may
     * have written an error frame (e.g. "platform not found") and exited
     * before our request arrived. That frame is still readable, and it, not
     * the broken pipe, is the answer (reading cannot block: the peer is
     * gone, so the read ends at EOF). */
    hetee_frame pending;
    memset(&pending, 0, sizeof pending);
    if (hetee_frame_read(e->fd, HETEE_FRAME_MAX_BODY, &pending) == 0) {
      int st = pending.type == HETEE_MSG_ERROR ? hetee_frame_error_status(&pending) : HETEE_ERR_IO;
      hetee_frame_clear(&pending);
      if (st != HETEE_ERR_IO) return st;
    }
    return may_restart ? died(e, "write failed") : rc;
  }
  if (rc) return rc;
  int got = 0;
  rc = read_reply(e, id, base, reply, may_restart, &got);
  if (follow && got) {
    /* the enclave answers the STATS request whatever became of the first
     * (an error reply keeps the stream in sync) */
    char detail[512];
    snprintf(detail, sizeof detail, "%s", hetee_last_error());
    int got2 = 0, frc = read_reply(e, sid, HETEE_MSG_STATS, &e->stats_reply, 0, &got2);
    if (rc) {
      if (!frc) hetee_frame_clear(&e->stats_reply);
      return hetee_error(rc, "%s", detail);
    }
    if (frc) {
      hetee_frame_clear(reply);
      return frc;
    }
    e->stats_have = 1;
  }
  return rc;
}

int hetee_host_call(hetee_host_enclave *e, uint16_t type, const uint8_t *body, size_t len, uint8_t **out, size_t *olen) {
  if (!e || (!body && len) || !out || !olen) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  *olen = 0;
  hetee_frame f;
  int rc = hetee_host_call_frame(e, type, body, len, &f, 1);
  if (rc) return rc;
  *out = f.body ? f.body : malloc(1);
  *olen = f.len;
  return *out ? 0 : hetee_error(HETEE_ERR_NOMEM, "no memory");
}

int hetee_host_send_raw(hetee_host_enclave *e, const uint8_t *bytes, size_t len) {
  if (!e || (!bytes && len)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (e->fd < 0) return hetee_error(HETEE_ERR_STATE, "enclave is not running");
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(e->fd, bytes + off, len - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return hetee_error(HETEE_ERR_IO, "send: %s", strerror(errno));
    off += (size_t)w;
  }
  return 0;
}

int hetee_host_recv_raw(hetee_host_enclave *e, uint16_t *type, uint64_t *id, uint8_t **body, size_t *len) {
  if (!e || !type || !id || !body || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (e->fd < 0) return hetee_error(HETEE_ERR_STATE, "enclave is not running");
  hetee_frame f;
  int rc = hetee_frame_read(e->fd, HETEE_FRAME_MAX_BODY, &f);
  if (rc) return rc;
  *type = f.type;
  *id = f.id;
  *body = f.body;
  *len = f.len;
  return 0;
}

/*
 * frame.c — length-prefixed, versioned frames on a blocking stream socket
 * (format in hetee/enclave.h and docs/enclave.md). Every size read from the
 * peer is bounded before use; oversized frames are drained rather than
 * buffered so the stream stays in sync and the reader keeps running.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "enclave/wire/proto.h"

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    /* MSG_NOSIGNAL: a dead peer is an error code, not a SIGPIPE */
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == ENOTSOCK) w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return hetee_error(HETEE_ERR_IO, "frame write failed: %s", w < 0 ? strerror(errno) : "eof");
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Returns 0, or HETEE_ERR_IO on EOF / error. */
static int read_all(int fd, uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return hetee_error(HETEE_ERR_IO, "frame read failed: %s", r < 0 ? strerror(errno) : "peer closed");
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static int drain(int fd, uint64_t n) {
  uint8_t tmp[16384];
  while (n > 0) {
    size_t k = n > sizeof tmp ? sizeof tmp : (size_t)n;
    int rc = read_all(fd, tmp, k);
    if (rc) return rc;
    n -= k;
  }
  return 0;
}

static void put_header(uint8_t h[HETEE_FRAME_HEADER_BYTES], uint16_t type, uint64_t id, size_t len) {
  hetee_le32(h, (uint32_t)(12 + len));
  hetee_le16(h + 4, HETEE_PROTO_VERSION);
  hetee_le16(h + 6, type);
  hetee_le64(h + 8, id);
}

void hetee_frame_header(uint8_t h[HETEE_FRAME_HEADER_BYTES], uint16_t type, uint64_t id, size_t len) {
  put_header(h, type, id, len);
}

int hetee_frame_write_raw(int fd, const uint8_t *p, size_t n) { return write_all(fd, p, n); }

#define PARTS_PER_CALL 1024 /* Linux's IOV_MAX (UIO_MAXIOV) */
#define SMALL_BODY 512       /* bodies sent with their header in one send */

/* A small body goes out with its header in one send (a copy on the stack;
 * the enclave's seccomp filter allows send, not sendmsg): the reader,
 * woken by the header, never finds the body missing and blocks a second
 * time (before: two sends, and a blocked reader could wake for each). */
int hetee_frame_write(int fd, uint16_t type, uint64_t id, const void *body, size_t len) {
  if (len > HETEE_FRAME_MAX_BODY) return hetee_error(HETEE_ERR_LIMIT, "frame body of %zu bytes above limit", len);
  uint8_t h[HETEE_FRAME_HEADER_BYTES + SMALL_BODY];
  put_header(h, type, id, len);
  if (len <= SMALL_BODY) {
    /* (nothing to wipe: the copy holds what the peer is sent) */
    if (len) memcpy(h + HETEE_FRAME_HEADER_BYTES, body, len);
    return write_all(fd, h, HETEE_FRAME_HEADER_BYTES + len);
  }
  int rc = write_all(fd, h, HETEE_FRAME_HEADER_BYTES);
  if (!rc) rc = write_all(fd, (const uint8_t *)body, len);
  return rc;
}

/* Writes all of iov[0..n) (advanced in place), at most PARTS_PER_CALL per
 * call. */
static int writev_all(int fd, struct iovec *iov, size_t n) {
  while (n > 0) {
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = iov;
    m.msg_iovlen = n < PARTS_PER_CALL ? n : PARTS_PER_CALL;
    ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
    if (w < 0 && errno == ENOTSOCK) w = writev(fd, iov, (int)m.msg_iovlen);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return hetee_error(HETEE_ERR_IO, "frame write failed: %s", strerror(errno));
    size_t k = (size_t)w;
    while (n > 0 && k >= iov->iov_len) { /* whole parts sent */
      k -= iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) { /* a part sent partly */
      iov->iov_base = (uint8_t *)iov->iov_base + k;
      iov->iov_len -= k;
    }
  }
  return 0;
}

int hetee_frame_write_parts(int fd, uint16_t type, uint64_t id, const hetee_frame_part *parts, size_t nparts) {
  return hetee_frame_write_parts_then(fd, type, id, parts, nparts, 0, 0);
}

int hetee_frame_write_parts_then(int fd, uint16_t type, uint64_t id, const hetee_frame_part *parts, size_t nparts,
                                 uint16_t type2, uint64_t id2) {
  size_t len = 0;
  for (size_t i = 0; i < nparts; i++) {
    if (parts[i].len > HETEE_FRAME_MAX_BODY - len)
      return hetee_error(HETEE_ERR_LIMIT, "frame body above the limit of %u bytes", HETEE_FRAME_MAX_BODY);
    len += parts[i].len;
  }
  uint8_t h[HETEE_FRAME_HEADER_BYTES];
  put_header(h, type, id, len);
  uint8_t h2[HETEE_FRAME_HEADER_BYTES];
  struct iovec *iov = malloc((nparts + 2) * sizeof *iov);
  if (!iov) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  size_t n = 0;
  iov[n].iov_base = h;
  iov[n++].iov_len = sizeof h;
  for (size_t i = 0; i < nparts; i++)
    if (parts[i].len) {
      iov[n].iov_base = (void *)parts[i].p;
      iov[n++].iov_len = parts[i].len;
    }
  if (type2) { /* the empty second frame, in the same sendmsg */
    put_header(h2, type2, id2, 0);
    iov[n].iov_base = h2;
    iov[n++].iov_len = sizeof h2;
  }
  int rc = writev_all(fd, iov, n);
  free(iov);
  return rc;
}

int hetee_frame_write_error(int fd, uint64_t id, int status, const char *detail) {
  uint8_t b[4 + 2 + 240];
  size_t n = detail ? strlen(detail) : 0;
  if (n > 240) n = 240;
  hetee_le32(b, (uint32_t)(int32_t)status);
  hetee_le16(b + 4, (uint16_t)n);
  if (n) memcpy(b + 6, detail, n);
  return hetee_frame_write(fd, HETEE_MSG_ERROR, id, b, 6 + n);
}

void hetee_frame_clear(hetee_frame *f) {
  free(f->body);
  memset(f, 0, sizeof *f);
}

/* Reads a frame; the body goes to *buf (grown to *cap when too small:
 * freed, then malloc'd) when buf is not NULL, else to a fresh malloc. */
static int frame_read(int fd, size_t max_body, hetee_frame *f, uint8_t **buf, size_t *cap) {
  memset(f, 0, sizeof *f);
  uint8_t h[HETEE_FRAME_HEADER_BYTES];
  int rc = read_all(fd, h, 4);
  if (rc) return rc;
  uint32_t len = hetee_rd32(h);
  if (len < 12) {
    rc = drain(fd, len);
    return rc ? rc : hetee_error(HETEE_ERR_PROTOCOL, "frame length %u below header size", len);
  }
  rc = read_all(fd, h + 4, 12);
  if (rc) return rc;
  f->version = hetee_rd16(h + 4);
  f->type = hetee_rd16(h + 6);
  f->id = hetee_rd64(h + 8);
  size_t body = (size_t)len - 12;
  if (body > max_body || body > HETEE_FRAME_MAX_BODY) {
    rc = drain(fd, body);
    return rc ? rc : hetee_error(HETEE_ERR_LIMIT, "frame body of %zu bytes above limit %zu", body, max_body);
  }
  if (body) {
    if (buf && *cap < body) {
      free(*buf);
      *buf = malloc(body);
      *cap = *buf ? body : 0;
    }
    f->body = buf ? *buf : malloc(body);
    if (!f->body) {
      rc = drain(fd, body);
      return rc ? rc : hetee_error(HETEE_ERR_NOMEM, "no memory for a %zu-byte frame", body);
    }
    rc = read_all(fd, f->body, body);
    if (rc) {
      if (buf) memset(f, 0, sizeof *f);
      else hetee_frame_clear(f);
      return rc;
    }
  }
  f->len = body;
  return 0;
}

int hetee_frame_read(int fd, size_t max_body, hetee_frame *f) { return frame_read(fd, max_body, f, NULL, NULL); }

int hetee_frame_read_into(int fd, size_t max_body, hetee_frame *f, uint8_t **buf, size_t *cap) {
  return frame_read(fd, max_body, f, buf, cap);
}

int hetee_frame_error_status(const hetee_frame *f) {
  if (f->type != HETEE_MSG_ERROR || f->len < 6) return hetee_error(HETEE_ERR_PROTOCOL, "malformed error reply");
  int32_t st = (int32_t)hetee_rd32(f->body);
  size_t n = hetee_rd16(f->body + 4);
  if (st >= 0 || st < -1000 || n != f->len - 6) return hetee_error(HETEE_ERR_PROTOCOL, "malformed error reply");
  return hetee_error(st, "%.*s", (int)n, (const char *)f->body + 6);
}

int hetee_frame_write_shm(int fd, uint16_t type, uint64_t id, size_t len) {
  return hetee_frame_write_shm_then(fd, type, id, len, 0, 0);
}

int hetee_frame_write_shm_then(int fd, uint16_t type, uint64_t id, size_t len, uint16_t type2, uint64_t id2) {
  if (len > HETEE_SHM_AREA) return hetee_error(HETEE_ERR_LIMIT, "frame body of %zu bytes above the shared area", len);
  /* header, descriptor (and the second frame's header) in one send */
  uint8_t b[2 * HETEE_FRAME_HEADER_BYTES + HETEE_SHM_DESC_BYTES];
  put_header(b, (uint16_t)(type | HETEE_MSG_SHM), id, HETEE_SHM_DESC_BYTES);
  hetee_le64(b + HETEE_FRAME_HEADER_BYTES, (uint64_t)len);
  size_t n = HETEE_FRAME_HEADER_BYTES + HETEE_SHM_DESC_BYTES;
  if (type2) {
    put_header(b + n, type2, id2, 0);
    n += HETEE_FRAME_HEADER_BYTES;
  }
  return write_all(fd, b, n);
}

int hetee_frame_shm_len(const hetee_frame *f, size_t max, size_t *len) {
  *len = 0;
  if (f->len != HETEE_SHM_DESC_BYTES || !f->body)
    return hetee_error(HETEE_ERR_PROTOCOL, "shared-memory frame with a %zu-byte descriptor (want %d)", f->len,
                       HETEE_SHM_DESC_BYTES);
  uint64_t n = hetee_rd64(f->body);
  if (n > max || n > HETEE_SHM_AREA)
    return hetee_error(HETEE_ERR_LIMIT, "shared-memory frame body of %llu bytes above limit %zu", (unsigned long long)n,
                       max < HETEE_SHM_AREA ? max : HETEE_SHM_AREA);
  *len = (size_t)n;
  return 0;
}

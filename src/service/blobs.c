/*
 * blobs.c — ciphertext files under the data directory, written so that a
 * crash at any point leaves either the old file or the complete new one:
 * write a temp file, fsync it, rename it into place, fsync the directory
 * (once for several files renamed into one directory: blob_sync_dir).
 * Layout: DIR/tmp (uploads in progress), DIR/models/ID.htem (+ ID.plan),
 * DIR/jobs/ID.htei (inputs), ID.htwt (input witnesses), ID.auth (signed
 * authorizations), DIR/jobs/ID.res (sealed results).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hetee/common.h"
#include "service/server_internal.h"

int blob_tmp(const char *data_dir, char path[SRV_PATH_MAX], int *fd) {
  snprintf(path, SRV_PATH_MAX, "%s/tmp/upload-XXXXXX", data_dir);
  int f = mkstemp(path);
  if (f < 0) return hetee_error(HETEE_ERR_IO, "cannot create a temp file under %s/tmp: %s", data_dir, strerror(errno));
  *fd = f;
  return 0;
}

int blob_sync_dir(const char *path) {
  char d[SRV_PATH_MAX];
  snprintf(d, sizeof d, "%s", path);
  int dfd = open(dirname(d), O_RDONLY | O_DIRECTORY);
  if (dfd < 0) return hetee_error(HETEE_ERR_IO, "cannot open the directory of %s", path);
  int rc = fsync(dfd);
  close(dfd);
  return rc ? hetee_error(HETEE_ERR_IO, "fsync of the directory of %s failed", path) : 0;
}

int blob_commit_nodirsync(int fd, const char *tmp, const char *dst) {
  if (fsync(fd) != 0) {
    close(fd);
    return hetee_error(HETEE_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
  }
  if (close(fd) != 0) return hetee_error(HETEE_ERR_IO, "close %s: %s", tmp, strerror(errno));
  if (rename(tmp, dst) != 0) return hetee_error(HETEE_ERR_IO, "rename %s -> %s: %s", tmp, dst, strerror(errno));
  return 0;
}

int blob_commit(int fd, const char *tmp, const char *dst) {
  int rc = blob_commit_nodirsync(fd, tmp, dst);
  return rc ? rc : blob_sync_dir(dst);
}

static int write_blob(const char *data_dir, const char *dst, const uint8_t *b, size_t n, int dirsync) {
  char tmp[SRV_PATH_MAX];
  int fd = -1, rc = blob_tmp(data_dir, tmp, &fd);
  if (rc) return rc;
  for (size_t off = 0; off < n;) {
    ssize_t w = write(fd, b + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      close(fd);
      unlink(tmp);
      return hetee_error(HETEE_ERR_IO, "write %s: %s", tmp, strerror(errno));
    }
    off += (size_t)w;
  }
  rc = dirsync ? blob_commit(fd, tmp, dst) : blob_commit_nodirsync(fd, tmp, dst);
  if (rc) unlink(tmp);
  return rc;
}

int blob_write(const char *data_dir, const char *dst, const uint8_t *b, size_t n) {
  return write_blob(data_dir, dst, b, n, 1);
}

int blob_write_nodirsync(const char *data_dir, const char *dst, const uint8_t *b, size_t n) {
  return write_blob(data_dir, dst, b, n, 0);
}

int blob_read(const char *path, uint64_t max, uint8_t **out, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return hetee_error(errno == ENOENT ? HETEE_ERR_NOT_FOUND : HETEE_ERR_IO, "cannot open %s", path);
  struct stat st;
  if (fstat(fd, &st) != 0 || (uint64_t)st.st_size > max) {
    close(fd);
    return hetee_error(HETEE_ERR_LIMIT, "%s is larger than %llu bytes", path, (unsigned long long)max);
  }
  size_t n = (size_t)st.st_size;
  uint8_t *b = malloc(n ? n : 1);
  if (!b) {
    close(fd);
    return hetee_error(HETEE_ERR_NOMEM, "no memory for %s", path);
  }
  for (size_t off = 0; off < n;) {
    ssize_t r = read(fd, b + off, n - off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      free(b);
      close(fd);
      return hetee_error(HETEE_ERR_IO, "read %s", path);
    }
    off += (size_t)r;
  }
  close(fd);
  *out = b;
  *len = n;
  return 0;
}

void blob_path(const server *S, char out[SRV_PATH_MAX], const char *kind, int64_t id, const char *ext) {
  snprintf(out, SRV_PATH_MAX, "%s/%s/%lld.%s", S->data_dir, kind, (long long)id, ext);
}

/*
 * files.c — whole-file reads with a size bound and crash-safe writes: write a
 * temporary file in the same directory, fsync it, rename it over the target,
 * fsync the directory (the POSIX recipe SQLite and git use), so a reader
 * sees either the old or the new content, never a torn file.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enclave/wire/proto.h"

int hetee_file_write_atomic(const char *path, const void *data, size_t len, int mode) {
  int rc = HETEE_ERR_IO, fd = -1, dfd = -1;
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 32), *dcopy = strdup(path);
  if (!tmp || !dcopy) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    goto err;
  }
  snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    rc = hetee_error(HETEE_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    goto err;
  }
  const uint8_t *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      rc = hetee_error(HETEE_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
      goto err_unlink;
    }
    p += w;
    left -= (size_t)w;
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    fd = -1;
    rc = hetee_error(HETEE_ERR_IO, "cannot sync %s: %s", tmp, strerror(errno));
    goto err_unlink;
  }
  fd = -1;
  if (rename(tmp, path) != 0) {
    rc = hetee_error(HETEE_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    goto err_unlink;
  }
  dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd); /* best effort: some file systems refuse directory fsync */
    close(dfd);
  }
  rc = 0;
  goto err;
err_unlink:
  unlink(tmp);
err:
  if (fd >= 0) close(fd);
  free(tmp);
  free(dcopy);
  return rc;
}

int hetee_file_read(const char *path, size_t max, uint8_t **data, size_t *len) {
  *data = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return hetee_error(errno == ENOENT ? HETEE_ERR_NOT_FOUND : HETEE_ERR_IO, "cannot open %s: %s", path,
                       strerror(errno));
  int rc = 0;
  uint8_t *buf = NULL;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = hetee_error(HETEE_ERR_IO, "%s is not a regular file", path);
    goto err;
  }
  if ((uint64_t)st.st_size > max) {
    rc = hetee_error(HETEE_ERR_LIMIT, "%s is larger than %zu bytes", path, max);
    goto err;
  }
  size_t n = (size_t)st.st_size;
  buf = malloc(n ? n : 1);
  if (!buf) {
    rc = hetee_error(HETEE_ERR_NOMEM, "no memory for %s", path);
    goto err;
  }
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      rc = hetee_error(HETEE_ERR_IO, "cannot read %s", path);
      goto err;
    }
    got += (size_t)r;
  }
  *data = buf;
  *len = n;
  buf = NULL;
err:
  free(buf);
  close(fd);
  return rc;
}

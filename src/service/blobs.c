/*
 * blobs.c — ciphertext files under the data directory, written so that a
 * crash at any point leaves either the old file or the complete new one:
 * write a temp file, fsync it, rename it into place, fsync the directory
 * (once for several files renamed into one directory, and one fsync for
 * the concurrent callers of blob_sync_dir on one directory).
 * Layout: DIR/tmp (uploads in progress), DIR/models/ID.htem (+ ID.plan),
 * DIR/jobs/ID.htei (a job's body as received: the encrypted input, then
 * its input witnesses; the job's row holds its signed authorization and
 * the witnesses' size; servers before that stored ID.htwt and ID.auth),
 * DIR/jobs/ID.res (sealed results).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
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

static int sync_dir_now(const char *dir) {
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  if (dfd < 0) return -1;
  int rc = fsync(dfd);
  close(dfd);
  return rc;
}

/* Group commit of directory fsyncs: a caller whose renames are done asks
 * for a sync of the directory; if one is running it may have started
 * before those renames, so the caller waits for the next one, which covers
 * every rename made before it starts — one fsync for all the callers that
 * asked while the previous one ran (concurrent submissions, results).
 * A caller returns only after an fsync that started after its request
 * succeeded (or with the error of that fsync). A few directories
 * (DIR/jobs, DIR/models) get a group each; others are synced alone. */
#define DIR_GROUPS 4
static struct dir_group {
  char dir[SRV_PATH_MAX];
  uint64_t asked, done; /* requests; the requests the last finished sync covers */
  int running, err;              /* err: of the last sync */
  uint64_t err_upto;             /* requests the failed sync covered */
} groups[DIR_GROUPS];
static int ngroups;
static pthread_mutex_t group_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t group_cv = PTHREAD_COND_INITIALIZER;
static int group_on = -1; /* HETEE_SERVER_GROUP_SYNC=0: one fsync per caller, for measurements */

static int sync_dir_grouped(const char *dir) {
  pthread_mutex_lock(&group_mu);
  if (group_on < 0) {
    const char *e = getenv("HETEE_SERVER_GROUP_SYNC");
    group_on = !(e && !strcmp(e, "0"));
  }
  struct dir_group *g = NULL;
  for (int i = 0; i < ngroups && !g; i++)
    if (!strcmp(groups[i].dir, dir)) g = &groups[i];
  if (!g && ngroups < DIR_GROUPS && strlen(dir) < SRV_PATH_MAX) {
    g = &groups[ngroups++];
    memset(g, 0, sizeof *g);
    snprintf(g->dir, sizeof g->dir, "%s", dir);
  }
  if (!g || !group_on) {
    pthread_mutex_unlock(&group_mu);
    return sync_dir_now(dir);
  }
  uint64_t me = ++g->asked;
  int rc = 0;
  for (;;) {
    if (g->done >= me) { /* a sync that started after my request has finished */
      rc = g->err && g->err_upto >= me ? -1 : 0;
      break;
    }
    if (!g->running) {
      g->running = 1;
      uint64_t upto = g->asked;
      pthread_mutex_unlock(&group_mu);
      int r = sync_dir_now(dir);
      pthread_mutex_lock(&group_mu);
      g->running = 0;
      g->err = r != 0;
      g->err_upto = upto;
      g->done = upto;
      pthread_cond_broadcast(&group_cv);
      continue;
    }
    pthread_cond_wait(&group_cv, &group_mu);
  }
  pthread_mutex_unlock(&group_mu);
  return rc;
}

int blob_sync_dir(const char *path) {
  char d[SRV_PATH_MAX];
  snprintf(d, sizeof d, "%s", path);
  int rc = sync_dir_grouped(dirname(d));
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

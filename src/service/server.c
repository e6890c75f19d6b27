/*
 * server.c — hetee_server_run: lays out the data directory, opens the
 * store and recovers it (staged uploads dropped, running jobs queued
 * again), starts the supervised enclave, the workers and the HTTP
 * transport, writes the port file, and waits for SIGINT / SIGTERM (whose
 * handlers are installed before anything else).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "hetee/common.h"
#include "service/refine_internal.h"
#include "service/server_internal.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}
void hetee_server_stop(void) { g_stop = 1; }

static int mkdir_p(const char *path) {
  if (mkdir(path, 0700) != 0 && errno != EEXIST)
    return hetee_error(HETEE_ERR_IO, "cannot create %s: %s", path, strerror(errno));
  return 0;
}

static void drop_staged(void *ctx, const char *kind, int64_t id) {
  server *S = ctx;
  if (strcmp(kind, "models")) { /* a job: its input, and the files written before it */
    jobs_unlink_files(S, id);
    return;
  }
  char p[SRV_PATH_MAX];
  blob_path(S, p, kind, id, "htem");
  unlink(p);
  blob_path(S, p, kind, id, "plan");
  unlink(p);
}

static void drop_batch(void *ctx, int64_t id) {
  char p[SRV_PATH_MAX];
  blob_path(ctx, p, "refine", id, "htrb");
  unlink(p);
}

/* Uploads that were in progress when the server stopped. */
static void clean_tmp(const server *S) {
  char dir[SRV_PATH_MAX];
  snprintf(dir, sizeof dir, "%s/tmp", S->data_dir);
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, "upload-", 7)) continue;
    char p[SRV_PATH_MAX + 300];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    unlink(p);
  }
  closedir(d);
}

/* Job files no row names: a DELETE /v1/jobs/ID stopped between its row and
 * its files (h_job_delete). Only "ID.ext" names of a job's files, and only
 * when the store answers that no job ID exists (an error keeps the file). */
static void sweep_orphans(const server *S) {
  char dir[SRV_PATH_MAX];
  snprintf(dir, sizeof dir, "%s/jobs", S->data_dir);
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char *end = NULL;
    long long id = strtoll(e->d_name, &end, 10);
    if (end == e->d_name || id <= 0 || *end != '.') continue;
    int known = 0;
    for (size_t k = 0; k < SRV_JOB_EXTS; k++) known |= !strcmp(end + 1, srv_job_ext[k]);
    int exists = 1;
    if (!known || store_job_exists(S->db, (int64_t)id, &exists) || exists) continue;
    char p[SRV_PATH_MAX + 300];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    unlink(p);
  }
  closedir(d);
}

int hetee_server_run(const hetee_server_options *opt) {
  if (!opt || !opt->data_dir || !opt->platform_dir) return hetee_error(HETEE_ERR_INVALID_ARG, "data_dir and platform_dir are required");
  if (sodium_init() < 0) return hetee_error(HETEE_ERR_CRYPTO, "libsodium");
  /* the handlers come first: a SIGINT / SIGTERM at any point of the start
   * (also right after the port file appears) is a clean stop, never death
   * by the signal */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  server *S = calloc(1, sizeof *S);
  if (!S) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  S->o = *opt;
  if (!S->o.workers) S->o.workers = 3; /* three runs in flight on the shared pool (docs/api.md "Jobs") */
  if (!S->o.max_queue) S->o.max_queue = 32;
  if (!S->o.max_party_jobs) S->o.max_party_jobs = 8;
  if (!S->o.max_model_bytes) S->o.max_model_bytes = 1ull << 30;
  if (!S->o.max_input_bytes) S->o.max_input_bytes = 256ull << 20;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  S->threads = S->o.threads ? S->o.threads : (int)(ncpu < 1 ? 1 : ncpu > 64 ? 64 : ncpu);
  S->nworkers = S->o.workers;
  if (strlen(opt->data_dir) >= sizeof S->data_dir) {
    free(S);
    return hetee_error(HETEE_ERR_LIMIT, "data directory path longer than %zu bytes", sizeof S->data_dir - 1);
  }
  snprintf(S->data_dir, sizeof S->data_dir, "%s", opt->data_dir);
  S->start_ms = reqsig_now_ms();
  pthread_mutex_init(&S->m.lock, NULL);
  pthread_mutex_init(&S->cache_lock, NULL);
  pthread_mutex_init(&S->wlock, NULL);
  pthread_cond_init(&S->wcond, NULL);
  pthread_cond_init(&S->pcond, NULL);

  char host[64] = "127.0.0.1";
  unsigned port = 8470;
  if (opt->listen) {
    const char *c = strrchr(opt->listen, ':');
    char *end;
    unsigned long pv = c ? strtoul(c + 1, &end, 10) : 0;
    if (!c || (size_t)(c - opt->listen) >= sizeof host || c == opt->listen || !c[1] || *end || pv > 65535) {
      free(S);
      return hetee_error(HETEE_ERR_INVALID_ARG, "--listen wants HOST:PORT (IPv4), not '%s'", opt->listen);
    }
    memcpy(host, opt->listen, (size_t)(c - opt->listen));
    host[c - opt->listen] = 0;
    port = (unsigned)pv;
  }
  char p[SRV_PATH_MAX];
  int rc = mkdir_p(S->data_dir);
  const char *subs[4] = {"tmp", "models", "jobs", "refine"};
  for (int i = 0; i < 4 && !rc; i++) {
    snprintf(p, sizeof p, "%s/%s", S->data_dir, subs[i]);
    rc = mkdir_p(p);
  }
  clean_tmp(S);
  snprintf(p, sizeof p, "%s/hetee.db", S->data_dir);
  int64_t boot = 0;
  if (!rc) rc = store_open(p, &S->db);
  if (!rc) rc = store_next_boot(S->db, &boot);
  if (!rc) rc = store_recover(S->db, drop_staged, S);
  if (!rc) sweep_orphans(S);
  if (!rc) rc = rstore_init(S->db, drop_batch, S);
  if (!rc) rc = replay_new(1u << 16, &S->rp);
  if (!rc) rc = reqkey_open(S->data_dir, &S->rk);
  int en_started = 0;
  if (!rc) {
    rc = sup_start(&S->en, &S->o, boot);
    en_started = 1;
  }
  void *daemon = NULL;
  unsigned bound = 0;
  int jobs_started = 0;
  if (!rc) {
    rc = jobs_start(S);
    jobs_started = 1;
  }
  int refine_started = 0;
  if (!rc) {
    rc = refine_worker_start(S);
    refine_started = 1;
  }
  int ttl_started = 0;
  if (!rc) {
    rc = jobs_retention_start(S);
    ttl_started = 1;
  }
  if (!rc) rc = http_start(S, host, port, &bound, &daemon);
  if (!rc && opt->port_file) {
    char txt[16];
    int n = snprintf(txt, sizeof txt, "%u\n", bound);
    rc = blob_write(S->data_dir, opt->port_file, (const uint8_t *)txt, (size_t)n);
  }
  if (!rc) {
    printf("hetee server: listening on http://%s:%u (data %s, enclave pid %d, %d workers x %d threads)\n", host, bound,
           S->data_dir, S->en.info.pid, S->nworkers, S->threads);
    fflush(stdout);
    while (!g_stop) {
      usleep(100 * 1000);
      /* notice a dead enclave while idle: INFO restarts it (auto_restart) */
      if (pthread_mutex_trylock(&S->en.lock) == 0) {
        hetee_host_info info;
        if (hetee_host_info_get(S->en.e, &info) && hetee_host_info_get(S->en.e, &info))
          fprintf(stderr, "hetee server: enclave not answering: %s\n", hetee_last_error());
        sup_note_restarts(&S->en);
        pthread_mutex_unlock(&S->en.lock);
      }
    }
    printf("hetee server: stopping\n");
    fflush(stdout);
  }
  int keep = rc;
  char why[512];
  snprintf(why, sizeof why, "%s", rc ? hetee_last_error() : "");
  /* requests waiting on a job answer now, so that the transport stops */
  pthread_mutex_lock(&S->wlock);
  S->closing = 1;
  jobs_wake_all_locked(S);
  pthread_mutex_unlock(&S->wlock);
  http_stop(daemon);
  if (ttl_started) jobs_retention_stop(S);
  if (jobs_started) jobs_stop(S);
  if (refine_started) refine_worker_stop(S);
  if (en_started) sup_stop(&S->en);
  while (S->cache) {
    model_cache_entry *c = S->cache;
    S->cache = c->next;
    hetee_engine_runner_free(c->runner);
    hetee_engine_model_free(c->em);
    free(c);
  }
  replay_free(S->rp);
  reqkey_free(S->rk);
  store_close(S->db);
  pthread_mutex_destroy(&S->m.lock);
  pthread_mutex_destroy(&S->cache_lock);
  pthread_cond_destroy(&S->wcond);
  pthread_cond_destroy(&S->pcond);
  pthread_mutex_destroy(&S->wlock);
  free(S);
  g_stop = 0;
  if (keep) return hetee_error(keep, "%s", why);
  return 0;
}

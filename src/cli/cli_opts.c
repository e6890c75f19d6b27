/*
 * cli_opts.c — what every `hetee` command shares: option parsing on top of
 * getopt_long from one table per command (that table also prints --help, so
 * the help names every option the parser accepts), one-line errors, checks
 * of output files before long work, integer arguments, and the progress
 * line on stderr (only when stderr is a terminal).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

int hetee_cli_error(const hetee_cli_cmd *c, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* one line: a message that would wrap into several keeps its first */
  for (char *p = msg; *p; p++)
    if (*p == '\n') *p = ' ';
  fprintf(stderr, "%s: %s\n", c->name, msg);
  return 2;
}

void hetee_cli_help(const hetee_cli_cmd *c, FILE *f) {
  fprintf(f, "usage: %s\n", c->synopsis);
  if (c->about) fprintf(f, "\n%s\n", c->about);
  if (!c->opts || !c->opts[0].name) return;
  fprintf(f, "\noptions:\n");
  for (const hetee_cli_opt *o = c->opts; o->name; o++) {
    char left[64];
    snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    /* help text lines after the first are indented under the first */
    const char *h = o->help ? o->help : "";
    fprintf(f, "  %-26s ", left);
    if (strlen(left) > 26) fprintf(f, "\n  %-26s ", "");
    for (; *h; h++) {
      fputc(*h, f);
      if (*h == '\n') fprintf(f, "  %-26s ", "");
    }
    fputc('\n', f);
  }
  fprintf(f, "  %-26s %s\n", "--help", "print this help and exit");
}

void hetee_cli_parser_init(hetee_cli_parser *p, const hetee_cli_cmd *c, int argc, char **argv) {
  memset(p, 0, sizeof *p);
  p->cmd = c;
  p->argc = argc;
  p->argv = argv;
  size_t n = 0;
  for (const hetee_cli_opt *o = c->opts; o && o->name && n + 2 < HETEE_CLI_MAX_OPTS; o++, n++)
    p->lo[n] = (struct option){o->name, o->arg ? required_argument : no_argument, NULL, o->key};
  p->lo[n++] = (struct option){"help", no_argument, NULL, HETEE_CLI_KEY_HELP};
  p->lo[n] = (struct option){0, 0, 0, 0};
  optind = 0; /* GNU getopt: start afresh (commands may parse twice) */
  opterr = 0;
}

int hetee_cli_next(hetee_cli_parser *p) {
  /* '+' would stop at the first positional argument; the default permutes
   * so options may follow them (hetee model upload M.onnx --allow ...) */
  int k = getopt_long(p->argc, p->argv, ":h", p->lo, NULL);
  p->arg = optarg;
  if (k == -1) {
    p->optind = optind;
    return -1;
  }
  if (k == 'h' || k == HETEE_CLI_KEY_HELP) {
    hetee_cli_help(p->cmd, stdout);
    return HETEE_CLI_HELP;
  }
  if (k == '?' || k == ':') {
    const char *bad = optind > 0 && optind <= p->argc ? p->argv[optind - 1] : "?";
    char name[128];
    if (optopt && (optind <= 0 || optind > p->argc || strncmp(bad, "--", 2))) {
      snprintf(name, sizeof name, "-%c", optopt);
    } else {
      snprintf(name, sizeof name, "%.*s", (int)strcspn(bad, "="), bad);
    }
    if (k == ':')
      hetee_cli_error(p->cmd, "option '%s' needs a value (see '%s --help')", name, p->cmd->name);
    else
      hetee_cli_error(p->cmd, "unknown option '%s' (see '%s --help')", name, p->cmd->name);
    return HETEE_CLI_ERROR;
  }
  return k;
}

int hetee_cli_uint(const hetee_cli_cmd *c, const char *opt, const char *v, unsigned max, unsigned *out) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (errno || end == v || *end || v[0] == '-' || v[0] == '+' || n == 0 || n > max) {
    hetee_cli_error(c, "%s needs an integer in 1..%u, got '%s'", opt, max, v);
    return -1;
  }
  *out = (unsigned)n;
  return 0;
}

int hetee_cli_check_output(const hetee_cli_cmd *c, const char *path, int may_overwrite) {
  struct stat st;
  if (stat(path, &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      hetee_cli_error(c, "%s is a directory, not a file to write", path);
      return -1;
    }
    if (!may_overwrite) {
      hetee_cli_error(c, "%s exists; refusing to overwrite it (use --force to replace it)", path);
      return -1;
    }
    if (access(path, W_OK) != 0) {
      hetee_cli_error(c, "cannot write %s: %s", path, strerror(errno));
      return -1;
    }
    return 0;
  }
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == dir) dir[1] = 0;
  else *slash = 0;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    hetee_cli_error(c, "cannot write %s: directory %s does not exist", path, dir);
    return -1;
  }
  if (access(dir, W_OK | X_OK) != 0) {
    hetee_cli_error(c, "cannot write %s: directory %s is not writable", path, dir);
    return -1;
  }
  return 0;
}

/* ---- progress ------------------------------------------------------------
 * A line on stderr redrawn in place: what runs, the elapsed time and, when
 * the caller knows it, done/total. A thread redraws it every 200 ms so a
 * phase that is one long library call (encrypting and uploading a model)
 * still shows that it is alive. Nothing is drawn unless stderr is a
 * terminal, so logs and pipes see only the commands' normal output. */
struct hetee_cli_progress {
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  char what[96];
  size_t done, total;
  int bytes; /* done / total are bytes: shown in MiB */
  struct timespec t0;
};

static double since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static void draw(hetee_cli_progress *p) {
  double s = since(&p->t0);
  if (p->total) {
    double f = (double)p->done / (double)p->total;
    if (f > 1) f = 1;
    int w = 30, fill = (int)((double)w * f);
    if (p->bytes)
      fprintf(stderr, "\r\033[K%s [%.*s%*s] %3d%% %.1f/%.1f MiB %.1f s", p->what, fill, "##############################",
              w - fill, "", (int)(100 * f), (double)p->done / 1048576.0, (double)p->total / 1048576.0, s);
    else
      fprintf(stderr, "\r\033[K%s [%.*s%*s] %3d%% %zu/%zu %.1f s", p->what, fill, "##############################",
              w - fill, "", (int)(100 * f), p->done, p->total, s);
  } else {
    static const char spin[] = "|/-\\";
    fprintf(stderr, "\r\033[K%s %c %.1f s", p->what, spin[(int)(s * 5) & 3], s);
  }
  fflush(stderr);
}

static void *ticker(void *arg) {
  hetee_cli_progress *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    draw(p);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 200 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

hetee_cli_progress *hetee_cli_progress_start(const char *what, size_t total) {
  if (!isatty(STDERR_FILENO) || getenv("HETEE_NO_PROGRESS")) return NULL;
  hetee_cli_progress *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  snprintf(p->what, sizeof p->what, "%s", what);
  p->total = total;
  clock_gettime(CLOCK_MONOTONIC, &p->t0);
  if (pthread_create(&p->th, NULL, ticker, p)) {
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
  }
  return p;
}

void hetee_cli_progress_set(hetee_cli_progress *p, const char *what, size_t done, size_t total) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  if (what) snprintf(p->what, sizeof p->what, "%s", what);
  p->done = done;
  p->total = total;
  p->bytes = 0;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

void hetee_cli_progress_client(void *ud, const char *phase, uint64_t done, uint64_t total) {
  hetee_cli_progress *p = ud;
  if (!p || !phase) return;
  const char *what = !strcmp(phase, "encrypt") ? "encrypting"
                     : !strcmp(phase, "upload") ? "uploading"
                     : !strcmp(phase, "wait")   ? "waiting for the server (jobs ahead, then ours)"
                     : !strcmp(phase, "open")   ? "opening the results"
                     : !strcmp(phase, "run")    ? "running our job (stages x micro-batches)"
                                                : phase;
  pthread_mutex_lock(&p->mu);
  int changed = strcmp(p->what, what) != 0;
  snprintf(p->what, sizeof p->what, "%s", what);
  p->done = (size_t)done;
  p->total = (size_t)total;
  p->bytes = !strcmp(phase, "upload");
  if (changed || done == total) pthread_cond_signal(&p->cv); /* redraw at once on a new phase or its end */
  pthread_mutex_unlock(&p->mu);
}

void hetee_cli_progress_end(hetee_cli_progress *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->th, NULL);
  fprintf(stderr, "\r\033[K");
  fflush(stderr);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

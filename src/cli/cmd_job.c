/*
 * cmd_job.c — a data provider's earlier jobs on `hetee server`
 * (hetee/api_client.h, docs/api.md, docs/cli.md):
 *   hetee job result ID [--home DIR] [--server URL]
 * fetches job ID's authorization from the server, accepts it only if it is
 * this identity's own signature for the job's model and micro-batches
 * (hetee_client_job_attach), learns the enclave's release key through an
 * attested session, waits until the job is done, then fetches and opens
 * the results with the identity key: each must come from the enclave's
 * release key and name the job's model, micro-batch digest and sample.
 * Prints one line per sample, in input order: the label (output label),
 * the K best classes (topk:K) or the released values (probs, logits).
 *   hetee job delete ID [--home DIR] [--server URL]
 * deletes a done or failed job of this identity and its files on the
 * server (DELETE /v1/jobs/ID).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "hetee/api_client.h"
#include "hetee/client.h"

#define DEFAULT_SERVER "http://127.0.0.1:8470"

int hetee_cmd_job(int argc, char **argv); /* dispatched from main.c */

static int job_fail(const char *what, int rc) {
  fprintf(stderr, "hetee job result: %s: %s: %s\n", what, hetee_strerror(rc), hetee_last_error());
  return 1;
}

/* The options and the ID both subcommands take: 0, or the exit status
 * (0 after --help: *id stays 0; 2 for a usage error). */
static int job_args(const hetee_cli_cmd *cmd, int argc, char **argv, char hb[1024], const char **home,
                    const char **url, unsigned *id) {
  const char *h = getenv("HOME");
  snprintf(hb, 1024, "%s/.hetee", h ? h : ".");
  *home = hb;
  *url = DEFAULT_SERVER;
  *id = 0;
  hetee_cli_parser p;
  hetee_cli_parser_init(&p, cmd, argc, argv);
  for (int k; (k = hetee_cli_next(&p)) != -1;) {
    switch (k) {
    case 'H': *home = p.arg; break;
    case 's': *url = p.arg; break;
    case HETEE_CLI_HELP: return -1;
    default: return 2;
    }
  }
  char more[160];
  snprintf(more, sizeof more, "missing the job ID (see '%s --help')", cmd->name);
  if (p.optind >= argc) return hetee_cli_error(cmd, "%s", more);
  if (p.optind + 1 < argc) return hetee_cli_error(cmd, "unexpected argument '%s'", argv[p.optind + 1]);
  return hetee_cli_uint(cmd, "ID", argv[p.optind], 0x7fffffff, id) ? 2 : 0;
}

static const hetee_cli_opt JOB_OPTS[] = {
    {"home", "DIR", 'H', "the data provider's home directory (identity and trust; default ~/.hetee)"},
    {"server", "URL", 's', "the hetee server (default " DEFAULT_SERVER ")"},
    {0, 0, 0, 0}};

static int job_result(int argc, char **argv) {
  static const hetee_cli_cmd cmd = {
      "hetee job result", "hetee job result ID [--home DIR] [--server URL]",
      "Data provider: opens the results of job ID, submitted earlier by this identity (e.g. by\n"
      "'hetee infer' or another process that stopped). The job's stored authorization must be this\n"
      "identity's own signature; the enclave is attested, the job waited for, and each result opened\n"
      "with the identity key. Prints one line per image in input order: the label, the K best classes\n"
      "(topk:K) or the released values (probs, logits).",
      JOB_OPTS};
  char hb[1024];
  const char *home, *url;
  unsigned id;
  int st = job_args(&cmd, argc, argv, hb, &home, &url, &id);
  if (st) return st < 0 ? 0 : st;
  hetee_client_conn *c = NULL;
  hetee_client_job *j = NULL;
  hetee_release_result *r = NULL;
  size_t n = 0;
  int rc = hetee_client_connect(url, home, &c);
  if (rc) return job_fail("connect", rc);
  char what[64];
  snprintf(what, sizeof what, "job %u", id);
  rc = hetee_client_job_attach(c, (int64_t)id, &j);
  hetee_cli_progress *pr = rc ? NULL : hetee_cli_progress_start("waiting for the server's job", 0);
  if (pr) hetee_client_set_progress(c, hetee_cli_progress_client, pr);
  /* with a progress bar: the job's state while it waits, then the
   * results; without: both in one long poll */
  if (!rc && pr) rc = hetee_client_job_wait(c, j);
  hetee_cli_progress_set(pr, "fetching and opening the results", 0, 0);
  if (!rc) rc = pr ? hetee_client_job_results(c, j, &r, &n) : hetee_client_job_await(c, j, &r, &n);
  hetee_client_set_progress(c, NULL, NULL);
  hetee_cli_progress_end(pr);
  int code = rc ? job_fail(what, rc) : 0;
  for (size_t i = 0; !rc && i < n; i++) {
    if (r[i].indices) {
      for (size_t k = 0; k < r[i].n; k++) printf(k ? " %u" : "%u", r[i].indices[k]);
    } else {
      for (size_t k = 0; k < r[i].n; k++) printf(k ? " %.6g" : "%.6g", r[i].values[k]);
    }
    printf("\n");
  }
  if (!rc) fprintf(stderr, "hetee job result: job %u: %zu results opened\n", id, n);
  hetee_client_results_free(r, n);
  hetee_client_job_free(j);
  hetee_client_disconnect(c);
  return code;
}

static int job_delete(int argc, char **argv) {
  static const hetee_cli_cmd cmd = {
      "hetee job delete", "hetee job delete ID [--home DIR] [--server URL]",
      "Data provider: deletes job ID, a done or failed job of this identity, with its files on the\n"
      "server (its encrypted input, its input witnesses and its sealed results). Refused for a job\n"
      "still queued or running.",
      JOB_OPTS};
  char hb[1024];
  const char *home, *url;
  unsigned id;
  int st = job_args(&cmd, argc, argv, hb, &home, &url, &id);
  if (st) return st < 0 ? 0 : st;
  hetee_client_conn *c = NULL;
  int rc = hetee_client_connect(url, home, &c);
  if (!rc) rc = hetee_client_job_delete(c, (int64_t)id);
  hetee_client_disconnect(c);
  if (rc) {
    fprintf(stderr, "hetee job delete: job %u: %s: %s\n", id, hetee_strerror(rc), hetee_last_error());
    return 1;
  }
  fprintf(stderr, "hetee job delete: job %u deleted\n", id);
  return 0;
}

int hetee_cmd_job(int argc, char **argv) {
  static const hetee_cli_cmd cmd = {
      "hetee job", "hetee job result|delete ID [--home DIR] [--server URL]",
      "Data provider: jobs submitted earlier.\n"
      "  result ID   open job ID's results (see 'hetee job result --help')\n"
      "  delete ID   delete a finished job and its files (see 'hetee job delete --help')",
      NULL};
  if (argc >= 2 && !strcmp(argv[1], "result")) return job_result(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "delete")) return job_delete(argc - 1, argv + 1);
  hetee_cli_parser p;
  hetee_cli_parser_init(&p, &cmd, argc, argv);
  for (int k; (k = hetee_cli_next(&p)) != -1;) {
    if (k == HETEE_CLI_HELP) return 0;
    return 2;
  }
  if (p.optind >= argc) return hetee_cli_error(&cmd, "missing subcommand: result or delete (see 'hetee job --help')");
  return hetee_cli_error(&cmd, "unknown subcommand '%s' (see 'hetee job --help')", argv[p.optind]);
}

/*
 * cli.h — shared declarations of the `hetee` command's subcommands. Each
 * subcommand gets argv starting at its own name (argv[0] = "plain", ...) and
 * returns the process exit code (0 success, 1 failure, 2 usage error).
 */
#ifndef HETEE_CLI_H
#define HETEE_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HETEE_VERSION_STRING "0.1.0"

int hetee_cmd_demo(int argc, char **argv);
int hetee_cmd_plain(int argc, char **argv);
int hetee_cmd_keygen(int argc, char **argv);
int hetee_cmd_platform(int argc, char **argv);
int hetee_cmd_enclave(int argc, char **argv);
int hetee_cmd_attest(int argc, char **argv);
int hetee_cmd_plan(int argc, char **argv);
int hetee_cmd_run(int argc, char **argv);
int hetee_cmd_server(int argc, char **argv);
int hetee_cmd_trust(int argc, char **argv);
int hetee_cmd_model(int argc, char **argv);
int hetee_cmd_infer(int argc, char **argv);
struct hetee_cli_cmd;
/* cmd_party.c: `hetee keygen --home DIR ...` (options parsed by cmd_keygen.c;
 * home NULL: ~/.hetee) and `hetee attest --server URL` (options parsed by
 * cmd_attest.c). */
int hetee_cli_keygen_home(const struct hetee_cli_cmd *cmd, int role, const char *role_name, const char *home,
                          const char *plat, const char *meas, int force);
int hetee_cli_attest_server(const char *url, const char *home);

/* Parses the value v of option opt of command cmd as an integer in 1..max;
 * prints the error and returns 0 otherwise. Defined in cmd_plan.c. */
unsigned hetee_cli_u32(const char *cmd, const char *opt, const char *v, unsigned max);

/* Shared by `hetee enclave measure|config` and `hetee attest`: the canonical
 * enclave configuration string from a base (--config; NULL: the built-in
 * one) and the model providers' public identity files (--mp, in order) into
 * out (cap bytes). 0, or 1 with the error printed (unreadable key file, a
 * data provider's key, too many keys). Defined in cmd_enclave.c. */
int hetee_cli_config(const char *cmdname, const char *base, char *const *mp_files, size_t nmp, char *out, size_t cap);

/* ---- cli_opts.c: what every command shares ------------------------------
 * A command describes itself once (name, synopsis, options with their help);
 * the same table drives getopt_long and prints --help, so the help names
 * every option the parser accepts. Typical use:
 *
 *   hetee_cli_parser p;
 *   hetee_cli_parser_init(&p, &CMD, argc, argv);
 *   for (int k; (k = hetee_cli_next(&p)) != -1;) switch (k) {
 *     case 'r': role = p.arg; break;
 *     case HETEE_CLI_HELP: return 0;
 *     default: return 2;                 (HETEE_CLI_ERROR: already printed)
 *   }
 *   positional arguments: p.argv[p.optind .. p.argc)
 *
 * Option keys are any int but 'h', '?', ':' and the values below. */
typedef struct hetee_cli_opt {
  const char *name; /* long name without the leading -- */
  const char *arg;  /* the value's name in the help (e.g. "DIR"); NULL: a flag */
  int key;
  const char *help; /* may hold '\n' for more lines */
} hetee_cli_opt;

typedef struct hetee_cli_cmd {
  const char *name;     /* "hetee keygen": prefix of every error line */
  const char *synopsis; /* after "usage: " (may hold several lines) */
  const char *about;    /* paragraph after the synopsis, NULL: none */
  const hetee_cli_opt *opts; /* ends with a zero entry; NULL: none */
} hetee_cli_cmd;

#define HETEE_CLI_MAX_OPTS 40
#define HETEE_CLI_HELP (-10)     /* --help / -h: printed on stdout, exit 0 */
#define HETEE_CLI_ERROR (-11)    /* unknown option / missing value: printed, exit 2 */
#define HETEE_CLI_KEY_HELP 0x7ff0

typedef struct hetee_cli_parser {
  const hetee_cli_cmd *cmd;
  int argc;
  char **argv;
  const char *arg; /* the current option's value */
  int optind;      /* first positional argument once hetee_cli_next returned -1 */
  struct option lo[HETEE_CLI_MAX_OPTS];
} hetee_cli_parser;

void hetee_cli_parser_init(hetee_cli_parser *p, const hetee_cli_cmd *c, int argc, char **argv);
/* The next option's key, -1 at the end, HETEE_CLI_HELP or HETEE_CLI_ERROR. */
int hetee_cli_next(hetee_cli_parser *p);
void hetee_cli_help(const hetee_cli_cmd *c, FILE *f);
/* Prints "<cmd name>: <message>" as one line on stderr; returns 2 (usage). */
int hetee_cli_error(const hetee_cli_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* v as an integer in 1..max into *out: 0, or -1 with the error printed. */
int hetee_cli_uint(const hetee_cli_cmd *c, const char *opt, const char *v, unsigned max, unsigned *out);
/* Before long work: path can be written (its directory exists and is
 * writable, it is not a directory) and, unless may_overwrite, does not exist
 * yet. 0, or -1 with the error printed. */
int hetee_cli_check_output(const hetee_cli_cmd *c, const char *path, int may_overwrite);

/* A progress line on stderr, redrawn in place, only when stderr is a
 * terminal (and HETEE_NO_PROGRESS is unset): NULL otherwise, and every call
 * below accepts NULL. total 0: elapsed time only. */
typedef struct hetee_cli_progress hetee_cli_progress;
hetee_cli_progress *hetee_cli_progress_start(const char *what, size_t total);
void hetee_cli_progress_set(hetee_cli_progress *p, const char *what, size_t done, size_t total);
void hetee_cli_progress_end(hetee_cli_progress *p);
/* A hetee_client_progress_fn (hetee/api_client.h) drawing the client
 * library's phases (encrypting, uploading, waiting, opening) with their
 * done / total on the progress ud (a hetee_cli_progress, may be NULL). */
void hetee_cli_progress_client(void *ud, const char *phase, uint64_t done, uint64_t total);

#endif

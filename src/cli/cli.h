/*
 * cli.h — shared declarations of the `hetee` command's subcommands. Each
 * subcommand gets argv starting at its own name (argv[0] = "plain", ...) and
 * returns the process exit code (0 success, 1 failure, 2 usage error).
 */
#ifndef HETEE_CLI_H
#define HETEE_CLI_H

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
/* cmd_party.c: `hetee keygen --home DIR ...` and `hetee attest --server URL`. */
int hetee_cli_keygen_home(int argc, char **argv);
int hetee_cli_attest_server(int argc, char **argv);

/* Parses the value v of option opt of command cmd as an integer in 1..max;
 * prints the error and returns 0 otherwise. Defined in cmd_plan.c. */
unsigned hetee_cli_u32(const char *cmd, const char *opt, const char *v, unsigned max);

/* Shared by `hetee enclave measure|config` and `hetee attest`: parses the
 * --config STR and --mp FILE.pub options from argv[from..argc) into the
 * canonical enclave configuration string `out` (cap bytes); used[i] is set
 * for every argv element consumed. Returns 0, 1 (unreadable key file, too
 * many keys; the error is printed) or 2 (usage). Defined in cmd_enclave.c. */
int hetee_cli_config_args(int argc, char **argv, int from, char *used, char *out, size_t cap);

#endif

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

#endif

/*
 * main.c — the `hetee` command: git-style subcommands dispatched from one
 * table. Each subcommand lives in its own cmd_*.c file, owned by the layer it
 * drives; a subcommand whose file is not part of this build is reported as
 * unavailable rather than silently missing.
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "hetee/common.h"

/* Weak so a build without a layer still links; each is defined in cmd_*.c. */
#define HETEE_CMD(name) int name(int argc, char **argv) __attribute__((weak));
HETEE_CMD(hetee_cmd_demo)
HETEE_CMD(hetee_cmd_plain)
HETEE_CMD(hetee_cmd_keygen)
HETEE_CMD(hetee_cmd_platform)
HETEE_CMD(hetee_cmd_enclave)
HETEE_CMD(hetee_cmd_attest)
HETEE_CMD(hetee_cmd_plan)
HETEE_CMD(hetee_cmd_run)
HETEE_CMD(hetee_cmd_server)
HETEE_CMD(hetee_cmd_trust)
HETEE_CMD(hetee_cmd_model)
HETEE_CMD(hetee_cmd_infer)
HETEE_CMD(hetee_cmd_job)
HETEE_CMD(hetee_cmd_refine)
#undef HETEE_CMD

typedef struct {
  const char *name;
  int (*fn)(int, char **);
  const char *help;
} command;

static const command COMMANDS[] = {
    {"demo", hetee_cmd_demo, "run an encrypted computation end to end and report precision and timings"},
    {"plain", hetee_cmd_plain, "run the plaintext reference engine on an ONNX model"},
    {"keygen", hetee_cmd_keygen, "create a party identity key (--role mp|dp)"},
    {"platform", hetee_cmd_platform, "manage the simulated attestation platform (init)"},
    {"enclave", hetee_cmd_enclave, "enclave utilities (measure)"},
    {"attest", hetee_cmd_attest, "start an enclave and verify its attestation evidence"},
    {"plan", hetee_cmd_plan, "show how the encrypted engine runs an ONNX model (stages, packing, counts)"},
    {"run", hetee_cmd_run, "encrypted inference on images: model provider, data provider and host in one process"},
    {"server", hetee_cmd_server, "run the three-party service (HTTP, storage, job queue, supervised enclave)"},
    {"trust", hetee_cmd_trust, "record the platform and enclave measurement a party accepts (--home DIR)"},
    {"model", hetee_cmd_model, "model provider: upload an encrypted model with its policy; list, show, delete; fetch, promote"},
    {"infer", hetee_cmd_infer, "data provider: encrypted inference on images through a server"},
    {"job", hetee_cmd_job, "data provider: open an earlier job's results by id (result ID)"},
    {"refine", hetee_cmd_refine, "refine an encrypted model on encrypted labelled samples (start, submit, status, stop, resume)"},
    {"version", NULL, "print the version (also: hetee --version)"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: hetee <command> [options]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
    int builtin = !strcmp(COMMANDS[i].name, "version");
    fprintf(f, "  %-10s %s%s\n", COMMANDS[i].name, COMMANDS[i].help,
            COMMANDS[i].fn || builtin ? "" : " (not in this build)");
  }
  fprintf(f, "\nRun 'hetee <command> --help' for a command's options; 'hetee --version' for the version.\n");
}

int main(int argc, char **argv) {
  /* ciphertexts and keys are 0.1-100 MiB: fixed malloc thresholds keep freed
   * memory in the process instead of an mmap/munmap (and page faults) per
   * object; the enclave does the same (enclave_malloc_tune) */
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  if (argc < 2) {
    fprintf(stderr, "hetee: missing command (see 'hetee --help' for the list)\n");
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    if (argc > 2 && strcmp(argv[1], "help") == 0) { /* hetee help CMD = hetee CMD --help */
      char *av[] = {argv[2], (char *)"--help", NULL};
      for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[2], COMMANDS[i].name) && COMMANDS[i].fn) return COMMANDS[i].fn(2, av);
    }
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V") || !strcmp(argv[1], "version")) {
    if (argc > 2 && strcmp(argv[2], "--help") && strcmp(argv[2], "-h")) {
      fprintf(stderr, "hetee version: unexpected argument '%s'\n", argv[2]);
      return 2;
    }
    printf("hetee %s\n", HETEE_VERSION_STRING);
    return 0;
  }
  if (argv[1][0] == '-') {
    fprintf(stderr, "hetee: unknown option '%s' (see 'hetee --help')\n", argv[1]);
    return 2;
  }
  for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
    if (!strcmp(argv[1], COMMANDS[i].name)) {
      if (!COMMANDS[i].fn) {
        fprintf(stderr, "hetee: command '%s' is not available in this build\n", argv[1]);
        return 2;
      }
      return COMMANDS[i].fn(argc - 1, argv + 1);
    }
  }
  fprintf(stderr, "hetee: unknown command '%s' (see 'hetee --help' for the list)\n", argv[1]);
  return 2;
}

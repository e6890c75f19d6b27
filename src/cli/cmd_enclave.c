/*
 * cmd_enclave.c — `hetee enclave measure PATH [--config STR] [--mp FILE.pub]...`
 * prints the measurement of an enclave binary (SHA-256 over the binary and
 * its configuration, see hetee/enclave.h) as hex on one line — the value
 * parties expect when they verify evidence. `hetee enclave config
 * [--config STR] [--mp FILE.pub]...` prints the configuration string itself
 * (what the host passes to the launcher). Each --mp appends a model
 * provider's public identity to the configuration's mp= list, in the order
 * given (hetee_enclave_config_with_mps): the model providers allowed to set
 * release policies, measured with everything else.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "hetee/client.h"
#include "hetee/enclave.h"

int hetee_cli_config(const char *cmdname, const char *base, char *const *mp_files, size_t nmp, char *out, size_t cap) {
  uint8_t pks[HETEE_ENCLAVE_MAX_MPS][32];
  if (nmp > HETEE_ENCLAVE_MAX_MPS) {
    fprintf(stderr, "%s: at most %d --mp keys\n", cmdname, HETEE_ENCLAVE_MAX_MPS);
    return 1;
  }
  for (size_t i = 0; i < nmp; i++) {
    int role = 0, rc = hetee_party_public_load(mp_files[i], &role, pks[i]);
    if (rc) {
      fprintf(stderr, "%s: --mp %s: %s: %s\n", cmdname, mp_files[i], hetee_strerror(rc), hetee_last_error());
      return 1;
    }
    if (role != HETEE_PARTY_MP) {
      fprintf(stderr, "%s: %s is a data provider's key, --mp needs a model provider's\n", cmdname, mp_files[i]);
      return 1;
    }
  }
  int rc = hetee_enclave_config_with_mps(base, (const uint8_t(*)[32])pks, nmp, out, cap);
  if (rc) {
    fprintf(stderr, "%s: configuration: %s: %s\n", cmdname, hetee_strerror(rc), hetee_last_error());
    return 1;
  }
  return 0;
}

static const hetee_cli_opt OPTS[] = {
    {"config", "STR", 'c', "the enclave configuration's base (default: hetee's built-in one)"},
    {"mp", "FILE.pub", 'm', "a model provider's public identity, appended to the configuration's mp= list\n"
                            "(who may set release policies); repeatable, in order"},
    {0, 0, 0, 0}};
static const hetee_cli_cmd CMD = {
    "hetee enclave",
    "hetee enclave measure PATH [--config STR] [--mp FILE.pub]...\n"
    "       hetee enclave config [--config STR] [--mp FILE.pub]...",
    "measure: prints the measurement (SHA-256 of the binary PATH and the configuration) as 64 hex digits,\n"
    "         the value parties expect when they verify the enclave's evidence.\n"
    "config:  prints the configuration string the host passes to the launcher.",
    OPTS};
static const hetee_cli_cmd MEASURE_CMD = {"hetee enclave measure",
                                          "hetee enclave measure PATH [--config STR] [--mp FILE.pub]...",
                                          "Prints the measurement (SHA-256 of the enclave binary PATH and the "
                                          "configuration) as 64 hex digits.",
                                          OPTS};
static const hetee_cli_cmd CONFIG_CMD = {"hetee enclave config", "hetee enclave config [--config STR] [--mp FILE.pub]...",
                                         "Prints the canonical enclave configuration string.", OPTS};

int hetee_cmd_enclave(int argc, char **argv) {
  if (argc < 2) return hetee_cli_error(&CMD, "missing subcommand: measure or config (see 'hetee enclave --help')");
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    hetee_cli_help(&CMD, stdout);
    return 0;
  }
  int measure = !strcmp(argv[1], "measure");
  if (!measure && strcmp(argv[1], "config"))
    return hetee_cli_error(&CMD, "unknown subcommand '%s' (measure or config)", argv[1]);
  const hetee_cli_cmd *cmd = measure ? &MEASURE_CMD : &CONFIG_CMD;
  const char *base = NULL;
  char *mps[HETEE_ENCLAVE_MAX_MPS + 1];
  size_t nmp = 0;
  hetee_cli_parser p;
  hetee_cli_parser_init(&p, cmd, argc - 1, argv + 1);
  for (int k; (k = hetee_cli_next(&p)) != -1;) {
    switch (k) {
    case 'c': base = p.arg; break;
    case 'm':
      if (nmp > HETEE_ENCLAVE_MAX_MPS) return hetee_cli_error(cmd, "at most %d --mp keys", HETEE_ENCLAVE_MAX_MPS);
      mps[nmp++] = (char *)p.arg;
      break;
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  int npos = argc - 1 - p.optind;
  char **pos = argv + 1 + p.optind;
  if (measure && npos < 1) return hetee_cli_error(cmd, "missing PATH of the enclave binary");
  if (npos > measure) return hetee_cli_error(cmd, "unexpected argument '%s'", pos[measure]);
  char cfg[HETEE_ENCLAVE_CONFIG_MAX + 1];
  int rc = hetee_cli_config(cmd->name, base, mps, nmp, cfg, sizeof cfg);
  if (rc) return rc;
  if (!measure) {
    printf("%s\n", cfg);
    return 0;
  }
  uint8_t m[32];
  rc = hetee_measure_file(pos[0], cfg, m);
  if (rc) {
    fprintf(stderr, "hetee enclave measure: %s: %s\n", hetee_strerror(rc), hetee_last_error());
    return 1;
  }
  char hex[65];
  hetee_hex_encode32(m, hex);
  printf("%s\n", hex);
  return 0;
}

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

#define USAGE                                                                                                    \
  "usage: hetee enclave measure PATH [--config STR] [--mp FILE.pub]...\n"                                       \
  "       hetee enclave config [--config STR] [--mp FILE.pub]...\n"

/* Builds the configuration from --config (default: the built-in one) and the
 * --mp public identity files found in argv[from..argc); other arguments are
 * left to the caller, which marks them in used[]. Returns 0, or prints the
 * error and returns 1 (bad file / too many keys) or 2 (usage). Shared with
 * cmd_attest.c. */
int hetee_cli_config_args(int argc, char **argv, int from, char *used, char *out, size_t cap) {
  const char *base = NULL;
  uint8_t pks[HETEE_ENCLAVE_MAX_MPS][32];
  size_t n = 0;
  for (int i = from; i < argc; i++) {
    if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "--mp")) {
      if (i + 1 >= argc) return 2;
      used[i] = used[i + 1] = 1;
      if (argv[i][2] == 'c') {
        base = argv[++i];
        continue;
      }
      if (n == HETEE_ENCLAVE_MAX_MPS) {
        fprintf(stderr, "hetee: at most %d --mp keys\n", HETEE_ENCLAVE_MAX_MPS);
        return 1;
      }
      int role = 0, rc = hetee_party_public_load(argv[++i], &role, pks[n]);
      if (!rc && role != HETEE_PARTY_MP) {
        fprintf(stderr, "hetee: %s is a data provider's key, --mp needs a model provider's\n", argv[i]);
        return 1;
      }
      if (rc) {
        fprintf(stderr, "hetee: --mp %s: %s: %s\n", argv[i], hetee_strerror(rc), hetee_last_error());
        return 1;
      }
      n++;
    }
  }
  int rc = hetee_enclave_config_with_mps(base, (const uint8_t(*)[32])pks, n, out, cap);
  if (rc) {
    fprintf(stderr, "hetee: configuration: %s: %s\n", hetee_strerror(rc), hetee_last_error());
    return 1;
  }
  return 0;
}

int hetee_cmd_enclave(int argc, char **argv) {
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf(USAGE);
    return 0;
  }
  int measure = argc >= 3 && !strcmp(argv[1], "measure"), config = argc >= 2 && !strcmp(argv[1], "config");
  if (!measure && !config) {
    fprintf(stderr, USAGE);
    return 2;
  }
  char used[256] = {0}, cfg[HETEE_ENCLAVE_CONFIG_MAX + 1];
  if (argc > (int)sizeof used) {
    fprintf(stderr, USAGE);
    return 2;
  }
  int from = measure ? 3 : 2;
  int rc = hetee_cli_config_args(argc, argv, from, used, cfg, sizeof cfg);
  for (int i = from; i < argc && !rc; i++)
    if (!used[i]) rc = 2;
  if (rc) {
    if (rc == 2) fprintf(stderr, USAGE);
    return rc;
  }
  if (config) {
    printf("%s\n", cfg);
    return 0;
  }
  uint8_t m[32];
  rc = hetee_measure_file(argv[2], cfg, m);
  if (rc) {
    fprintf(stderr, "hetee enclave measure: %s: %s\n", hetee_strerror(rc), hetee_last_error());
    return 1;
  }
  char hex[65];
  hetee_hex_encode32(m, hex);
  printf("%s\n", hex);
  return 0;
}

/*
 * cmd_enclave.c — `hetee enclave measure PATH [--config STR]`: prints the
 * measurement of an enclave binary (SHA-256 over the binary and its
 * configuration, see hetee/enclave.h) as hex on one line — the value parties
 * expect when they verify evidence.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "hetee/client.h"
#include "hetee/enclave.h"

int hetee_cmd_enclave(int argc, char **argv) {
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: hetee enclave measure PATH [--config STR]\n");
    return 0;
  }
  const char *config = NULL;
  if (argc == 5 && !strcmp(argv[3], "--config")) config = argv[4];
  if ((argc != 3 && !config) || strcmp(argv[1], "measure")) {
    fprintf(stderr, "usage: hetee enclave measure PATH [--config STR]\n");
    return 2;
  }
  uint8_t m[32];
  int rc = hetee_measure_file(argv[2], config, m);
  if (rc) {
    fprintf(stderr, "hetee enclave measure: %s: %s\n", hetee_strerror(rc), hetee_last_error());
    return 1;
  }
  char hex[65];
  hetee_hex_encode32(m, hex);
  printf("%s\n", hex);
  return 0;
}

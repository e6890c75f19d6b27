/*
 * cmd_platform.c — `hetee platform init --dir DIR`: creates a sim platform
 * (Ed25519 attestation key pair + sealing secret) standing for a CPU vendor's
 * root of trust. See docs/enclave.md.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "hetee/enclave.h"

int hetee_cmd_platform(int argc, char **argv) {
  const char *dir = NULL;
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: hetee platform init --dir DIR\n");
    return 0;
  }
  if (argc != 4 || strcmp(argv[1], "init") || strcmp(argv[2], "--dir")) {
    fprintf(stderr, "usage: hetee platform init --dir DIR\n");
    return 2;
  }
  dir = argv[3];
  int rc = hetee_platform_init(dir);
  if (rc) {
    fprintf(stderr, "hetee platform: %s: %s\n", hetee_strerror(rc), hetee_last_error());
    return 1;
  }
  uint8_t pk[32];
  if (hetee_platform_load_public(dir, pk) == 0) {
    printf("sim platform created in %s\nplatform public key: ", dir);
    for (int i = 0; i < 32; i++) printf("%02x", pk[i]);
    printf("\n");
  }
  return 0;
}

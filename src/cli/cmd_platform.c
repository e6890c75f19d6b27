/*
 * cmd_platform.c — `hetee platform init --dir DIR`: creates a sim platform
 * (Ed25519 attestation key pair + sealing secret) standing for a CPU vendor's
 * root of trust. See docs/enclave.md. An existing platform is never
 * overwritten (its sealed data would be lost).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "hetee/enclave.h"

static const hetee_cli_opt OPTS[] = {
    {"dir", "DIR", 'd', "where the platform is created (DIR/platform.key, .secret: 0600; DIR/platform.pub);\n"
                        "required; an existing platform there is never overwritten"},
    {0, 0, 0, 0}};
static const hetee_cli_cmd CMD = {
    "hetee platform", "hetee platform init --dir DIR",
    "init: creates a simulated attestation platform (sim backend: no hardware isolation): the key pair\n"
    "that signs enclave evidence and the sealing secret, standing for a CPU vendor's root of trust.",
    OPTS};

int hetee_cmd_platform(int argc, char **argv) {
  if (argc < 2) return hetee_cli_error(&CMD, "missing subcommand: init (see 'hetee platform --help')");
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    hetee_cli_help(&CMD, stdout);
    return 0;
  }
  if (strcmp(argv[1], "init")) return hetee_cli_error(&CMD, "unknown subcommand '%s' (init)", argv[1]);
  const char *dir = NULL;
  hetee_cli_parser p;
  static const hetee_cli_cmd INIT = {"hetee platform init", "hetee platform init --dir DIR",
                                     "Creates a simulated attestation platform in DIR.", OPTS};
  hetee_cli_parser_init(&p, &INIT, argc - 1, argv + 1);
  for (int k; (k = hetee_cli_next(&p)) != -1;) {
    switch (k) {
    case 'd': dir = p.arg; break;
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  if (p.optind < argc - 1) return hetee_cli_error(&INIT, "unexpected argument '%s'", argv[1 + p.optind]);
  if (!dir) return hetee_cli_error(&INIT, "--dir DIR is required");
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

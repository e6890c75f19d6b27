/*
 * cmd_keygen.c — `hetee keygen --role mp|dp --out FILE`: a party identity
 * (Ed25519) key; FILE holds the secret key (0600), FILE.pub the public key.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "hetee/client.h"

int hetee_cmd_keygen(int argc, char **argv) {
  const char *role = NULL, *out = NULL;
  for (int i = 1; i < argc; i++) /* a party's home directory: cmd_party.c */
    if (!strcmp(argv[i], "--home") || !strncmp(argv[i], "--home=", 7)) return hetee_cli_keygen_home(argc, argv);
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: hetee keygen --role mp|dp --out FILE\n"
             "       hetee keygen --role mp|dp --home DIR [--trust-platform DIR --trust-measurement HEX] [--force]\n");
      return 0;
    } else if (!strcmp(argv[i], "--role") && i + 1 < argc) {
      role = argv[++i];
    } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
      out = argv[++i];
    } else {
      fprintf(stderr, "hetee keygen: unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  int r = role && !strcmp(role, "mp") ? HETEE_PARTY_MP : role && !strcmp(role, "dp") ? HETEE_PARTY_DP : 0;
  if (!r || !out) {
    fprintf(stderr, "usage: hetee keygen --role mp|dp --out FILE\n");
    return 2;
  }
  hetee_party_key *k = NULL;
  int rc = hetee_party_key_generate(r, &k);
  if (!rc) rc = hetee_party_key_save(k, out);
  if (rc) {
    fprintf(stderr, "hetee keygen: %s: %s\n", hetee_strerror(rc), hetee_last_error());
    hetee_party_key_free(k);
    return 1;
  }
  uint8_t pk[32];
  char hex[65];
  hetee_party_key_public(k, pk);
  hetee_hex_encode32(pk, hex);
  printf("%s identity key written to %s (public key in %s.pub)\npublic key: %s\n", role, out, out, hex);
  hetee_party_key_free(k);
  return 0;
}

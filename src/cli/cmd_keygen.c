/*
 * cmd_keygen.c — `hetee keygen`: a party identity (Ed25519) key.
 *   hetee keygen --role mp|dp [--home DIR] [--trust-platform DIR --trust-measurement HEX] [--force]
 *     the identity in DIR/id (secret, 0600) and DIR/id.pub (default DIR: ~/.hetee), see cmd_party.c
 *   hetee keygen --role mp|dp --out FILE [--force]
 *     FILE holds the secret key (0600), FILE.pub the public key.
 * An existing identity is never replaced without --force.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "hetee/client.h"

static const hetee_cli_opt OPTS[] = {
    {"role", "mp|dp", 'r', "the party: mp (model provider) or dp (data provider); required"},
    {"home", "DIR", 'H', "party home directory: identity in DIR/id and DIR/id.pub, trust in DIR/trust\n"
                         "(default ~/.hetee; created if missing)"},
    {"trust-platform", "DIR", 'p', "with --home: also trust this sim platform (its DIR/platform.pub)"},
    {"trust-measurement", "HEX", 'm', "with --home: also trust this enclave measurement (hetee enclave measure)"},
    {"out", "FILE", 'o', "instead of --home: write the secret key to FILE and the public key to FILE.pub"},
    {"force", NULL, 'f', "replace an existing identity (its old key is lost)"},
    {0, 0, 0, 0}};

static const hetee_cli_cmd CMD = {
    "hetee keygen",
    "hetee keygen --role mp|dp [--home DIR] [--trust-platform DIR --trust-measurement HEX] [--force]\n"
    "       hetee keygen --role mp|dp --out FILE [--force]",
    "Creates a party identity (Ed25519 key pair). Refuses to replace an existing identity unless --force.",
    OPTS};

int hetee_cmd_keygen(int argc, char **argv) {
  const char *role = NULL, *out = NULL, *home = NULL, *plat = NULL, *meas = NULL;
  int force = 0;
  hetee_cli_parser p;
  hetee_cli_parser_init(&p, &CMD, argc, argv);
  for (int k; (k = hetee_cli_next(&p)) != -1;) {
    switch (k) {
    case 'r': role = p.arg; break;
    case 'H': home = p.arg; break;
    case 'p': plat = p.arg; break;
    case 'm': meas = p.arg; break;
    case 'o': out = p.arg; break;
    case 'f': force = 1; break;
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  if (p.optind < argc) return hetee_cli_error(&CMD, "unexpected argument '%s'", argv[p.optind]);
  if (!role) return hetee_cli_error(&CMD, "--role mp|dp is required");
  int r = !strcmp(role, "mp") ? HETEE_PARTY_MP : !strcmp(role, "dp") ? HETEE_PARTY_DP : 0;
  if (!r) return hetee_cli_error(&CMD, "--role must be mp or dp, got '%s'", role);
  if (out && home) return hetee_cli_error(&CMD, "--out and --home exclude each other");
  if (!plat != !meas) return hetee_cli_error(&CMD, "--trust-platform and --trust-measurement go together");
  if (out && plat) return hetee_cli_error(&CMD, "--trust-platform/--trust-measurement need --home, not --out");
  if (!out) return hetee_cli_keygen_home(&CMD, r, role, home, plat, meas, force);

  if (hetee_cli_check_output(&CMD, out, force)) return 1;
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

/* hello_client.c — a program of a party built against the installed hetee
 * (pkg-config hetee): makes a data provider identity in a home directory,
 * reads it back, and tries to reach a server that is not there (the error
 * without a trust file: an error code, not a crash). Prints "ok <key> ...". */
#include <stdio.h>
#include <string.h>

#include <hetee/api_client.h>
#include <hetee/client.h>

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  char path[1024];
  snprintf(path, sizeof path, "%s/id", argv[1]);
  hetee_party_key *k = NULL, *k2 = NULL;
  if (hetee_party_key_generate(HETEE_PARTY_DP, &k) || hetee_party_key_save(k, path) ||
      hetee_party_key_load(path, &k2)) {
    fprintf(stderr, "identity: %s\n", hetee_last_error());
    return 1;
  }
  uint8_t a[32], b[32];
  hetee_party_key_public(k, a);
  hetee_party_key_public(k2, b);
  if (memcmp(a, b, 32) || hetee_party_key_role(k2) != HETEE_PARTY_DP) return 1;
  /* trust in home/trust is missing: connect must refuse with an error */
  hetee_client_conn *c = NULL;
  int rc = hetee_client_connect("http://127.0.0.1:1", argv[1], &c);
  if (rc == 0 || c) {
    fprintf(stderr, "connect without trust succeeded\n");
    return 1;
  }
  char hex[65];
  hetee_hex_encode32(a, hex);
  printf("ok %s (connect refused: %s)\n", hex, hetee_strerror(rc));
  hetee_party_key_free(k);
  hetee_party_key_free(k2);
  return 0;
}

/*
 * cmd_attest.c — `hetee attest --local PATH --platform DIR --expect HEX
 * [--config STR] [--mp FILE.pub]...`: starts that enclave binary through the
 * sim launcher with that configuration (--mp appends model providers to its
 * mp= list, as `hetee enclave measure` does), asks for evidence on a fresh
 * nonce and for its key bundle, and verifies the evidence like a party would
 * (hetee_client_verify_evidence). Prints what was verified — including who
 * may set release policies under that configuration — and exits 0, or
 * prints one line naming the failure and exits 1.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "hetee/client.h"
#include "hetee/host.h"

/* --config / --mp arguments -> configuration string: hetee_cli_config_args (cli.h) */

#define USAGE                                                                                \
  "usage: hetee attest --local PATH --platform DIR --expect HEX [--config STR] [--mp FILE.pub]...\n" \
  "       hetee attest --server URL [--home DIR]\n"

static int failed(const char *what, int rc) {
  printf("attest: FAILED: %s: %s (%s)\n", what, hetee_strerror(rc), hetee_last_error());
  return 1;
}

int hetee_cmd_attest(int argc, char **argv) {
  const char *path = NULL, *pdir = NULL, *expect = NULL;
  char used[256] = {0}, config[HETEE_ENCLAVE_CONFIG_MAX + 1];
  for (int i = 1; i < argc; i++) /* a running server's enclave: cmd_party.c */
    if (!strcmp(argv[i], "--server") || !strncmp(argv[i], "--server=", 9)) return hetee_cli_attest_server(argc, argv);
  if (argc > (int)sizeof used) {
    fprintf(stderr, USAGE);
    return 2;
  }
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf(USAGE);
      return 0;
    }
  int crc = hetee_cli_config_args(argc, argv, 1, used, config, sizeof config);
  if (crc == 1) return 1;
  for (int i = 1; i < argc && !crc; i++) {
    if (used[i]) continue;
    if (!strcmp(argv[i], "--local") && i + 1 < argc) {
      path = argv[++i];
    } else if (!strcmp(argv[i], "--platform") && i + 1 < argc) {
      pdir = argv[++i];
    } else if (!strcmp(argv[i], "--expect") && i + 1 < argc) {
      expect = argv[++i];
    } else {
      fprintf(stderr, "hetee attest: unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (crc || !path || !pdir || !expect) {
    fprintf(stderr, USAGE);
    return 2;
  }
  uint8_t want[32], ppk[32], nonce[32], ch[32], fp[32];
  int rc = hetee_hex_decode32(expect, want);
  if (rc) return failed("--expect is not a measurement", rc);
  rc = hetee_platform_load_public(pdir, ppk);
  if (rc) return failed("cannot read the platform public key", rc);
  if (sodium_init() < 0) return failed("libsodium", HETEE_ERR_CRYPTO);
  hetee_host_options o = {.platform_dir = pdir, .enclave_path = path, .config = config};
  hetee_host_enclave *e = NULL;
  rc = hetee_host_start(&o, &e);
  if (rc) return failed("cannot start the enclave", rc);
  uint8_t *ev = NULL, *bundle = NULL;
  size_t evlen = 0, blen = 0;
  randombytes_buf(nonce, sizeof nonce);
  int code = 1;
  /* A fresh enclave holds no CKKS keys yet: have it generate them (secret
   * key inside, public + relinearization key out) so the evidence binds the
   * public key bundle a party would really encrypt under. */
  rc = hetee_host_keygen(e, NULL, 0);
  if (rc) {
    failed("enclave key generation failed", rc);
    goto out;
  }
  rc = hetee_host_public_keys(e, &bundle, &blen);
  if (rc) {
    failed("cannot get the key bundle", rc);
    goto out;
  }
  rc = hetee_host_evidence(e, nonce, &ev, &evlen, ch, fp);
  if (rc) {
    failed("cannot get evidence", rc);
    goto out;
  }
  hetee_verified_enclave v;
  rc = hetee_client_verify_evidence(ev, evlen, ppk, want, bundle, blen, ch, nonce, &v);
  if (rc) {
    const char *what = rc == HETEE_ERR_BAD_SIGNATURE ? "bad signature"
                       : rc == HETEE_ERR_MEASUREMENT ? "measurement mismatch"
                       : rc == HETEE_ERR_KEY_BINDING ? "key binding mismatch"
                                                     : "malformed evidence";
    printf("attest: FAILED: %s: %s\n", what, hetee_last_error());
    goto out;
  }
  char h1[65], h2[65], h3[65], h4[65];
  hetee_hex_encode32(ppk, h1);
  hetee_hex_encode32(v.measurement, h2);
  hetee_hex_encode32(v.bundle_fp, h3);
  hetee_hex_encode32(v.channel_pk, h4);
  printf("attest: OK (backend sim: simulated platform, no hardware isolation)\n");
  printf("  signature:   valid, platform key %s\n", h1);
  printf("  measurement: %s (as expected)\n", h2);
  printf("  key binding: key bundle %s (%zu bytes: CKKS parameters, public and relinearization keys)\n", h3, blen);
  printf("               channel key %s, fresh nonce\n", h4);
  /* the configuration is covered by the measurement just verified */
  const char *mp = strstr(config, "mp=");
  while (mp && mp != config && mp[-1] != ';') mp = strstr(mp + 1, "mp=");
  if (!mp) {
    printf("  release policies: disabled (the configuration has no mp= key)\n");
  } else {
    printf("  release policies: only these model providers (mp=):\n");
    for (const char *k = mp + 3; *k && *k != ';';) {
      size_t len = strcspn(k, ",;");
      printf("               %.*s\n", (int)len, k);
      k += len + (k[len] == ',');
    }
  }
  code = 0;
out:
  free(ev);
  free(bundle);
  hetee_host_free(e);
  return code;
}

/*
 * cmd_server.c — `hetee server`: runs the networked three-party service
 * (hetee/server.h, docs/api.md) until SIGINT / SIGTERM.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "hetee/client.h"
#include "hetee/enclave.h"
#include "hetee/server.h"

#define USAGE                                                                                                       \
  "usage: hetee server --data-dir DIR --platform DIR [--listen HOST:PORT] [--mp FILE.pub]... [--config STR]\n"      \
  "                    [--port-file FILE] [--workers N] [--threads N] [--max-queue N] [--max-party-jobs N]\n"      \
  "                    [--max-model-mb N] [--max-input-mb N]\n"                                                    \
  "  --listen HOST:PORT  IPv4 address and port (default 127.0.0.1:8470; port 0: any free port)\n"                  \
  "  --data-dir DIR      database, ciphertext files and the enclave's sealed state (created if missing)\n"         \
  "  --platform DIR      the sim platform (hetee platform init)\n"                                                 \
  "  --mp FILE.pub       a model provider allowed to set release policies (repeatable, in order; measured)\n"     \
  "  --config STR        enclave configuration base (default: hetee's); --mp keys are appended\n"                  \
  "  --port-file FILE    write the bound port here once serving\n"                                                 \
  "  --workers N         job worker threads (default 2); --threads N kernel threads per job (default: CPUs)\n"     \
  "  --max-queue N       queued + running jobs (default 32); --max-party-jobs N per data provider (default 8)\n"   \
  "  --max-model-mb N    model upload limit (default 1024); --max-input-mb N job input limit (default 256)\n"

int hetee_cmd_server(int argc, char **argv) {
  static const struct option opts[] = {
      {"listen", required_argument, 0, 'l'},     {"data-dir", required_argument, 0, 'd'},
      {"platform", required_argument, 0, 'p'},   {"mp", required_argument, 0, 'm'},
      {"config", required_argument, 0, 'c'},     {"port-file", required_argument, 0, 'f'},
      {"workers", required_argument, 0, 'w'},    {"threads", required_argument, 0, 't'},
      {"max-queue", required_argument, 0, 'q'},  {"max-party-jobs", required_argument, 0, 'j'},
      {"max-model-mb", required_argument, 0, 'M'}, {"max-input-mb", required_argument, 0, 'I'},
      {"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
  hetee_server_options o;
  memset(&o, 0, sizeof o);
  const char *base = NULL;
  uint8_t mps[HETEE_ENCLAVE_MAX_MPS][32];
  size_t nmp = 0;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'l': o.listen = optarg; break;
    case 'd': o.data_dir = optarg; break;
    case 'p': o.platform_dir = optarg; break;
    case 'c': base = optarg; break;
    case 'f': o.port_file = optarg; break;
    case 'm':
      if (nmp >= HETEE_ENCLAVE_MAX_MPS) {
        fprintf(stderr, "hetee server: at most %d --mp\n", HETEE_ENCLAVE_MAX_MPS);
        return 2;
      }
      if (hetee_party_public_load(optarg, NULL, mps[nmp])) {
        fprintf(stderr, "hetee server: %s: %s\n", optarg, hetee_last_error());
        return 1;
      }
      nmp++;
      break;
    case 'w': if (!(o.workers = (int)hetee_cli_u32("server", "--workers", optarg, 64))) return 2; break;
    case 't': if (!(o.threads = (int)hetee_cli_u32("server", "--threads", optarg, 64))) return 2; break;
    case 'q': if (!(o.max_queue = hetee_cli_u32("server", "--max-queue", optarg, 100000))) return 2; break;
    case 'j': if (!(o.max_party_jobs = hetee_cli_u32("server", "--max-party-jobs", optarg, 100000))) return 2; break;
    case 'M': {
      unsigned v = hetee_cli_u32("server", "--max-model-mb", optarg, 65536);
      if (!v) return 2;
      o.max_model_bytes = (uint64_t)v << 20;
      break;
    }
    case 'I': {
      unsigned v = hetee_cli_u32("server", "--max-input-mb", optarg, 65536);
      if (!v) return 2;
      o.max_input_bytes = (uint64_t)v << 20;
      break;
    }
    case 'h': printf(USAGE); return 0;
    default: fprintf(stderr, USAGE); return 2;
    }
  }
  if (optind != argc || !o.data_dir || !o.platform_dir) {
    fprintf(stderr, USAGE);
    return 2;
  }
  char config[HETEE_ENCLAVE_CONFIG_MAX + 1];
  if (hetee_enclave_config_with_mps(base, (const uint8_t(*)[32])mps, nmp, config, sizeof config)) {
    fprintf(stderr, "hetee server: enclave configuration: %s\n", hetee_last_error());
    return 2;
  }
  o.config = config;
  int rc = hetee_server_run(&o);
  if (rc) {
    fprintf(stderr, "hetee server: %s: %s\n", hetee_strerror(rc), hetee_last_error());
    return 1;
  }
  return 0;
}

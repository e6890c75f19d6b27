/*
 * cmd_server.c — `hetee server`: runs the networked three-party service
 * (hetee/server.h, docs/api.md) until SIGINT / SIGTERM.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "hetee/client.h"
#include "hetee/enclave.h"
#include "hetee/server.h"

static const hetee_cli_opt OPTS[] = {
    {"listen", "HOST:PORT", 'l', "IPv4 address and port (default 127.0.0.1:8470; port 0: any free port)"},
    {"data-dir", "DIR", 'd', "database, ciphertext files and the enclave's sealed state (created if\n"
                             "missing); required"},
    {"platform", "DIR", 'p', "the sim platform (hetee platform init); required"},
    {"mp", "FILE.pub", 'm', "a model provider allowed to set release policies (repeatable, in order;\n"
                            "measured with the enclave's configuration)"},
    {"config", "STR", 'c', "enclave configuration base (default: hetee's); --mp keys are appended"},
    {"port-file", "FILE", 'f', "write the bound port here once serving"},
    {"workers", "N", 'w', "job worker threads, 1..64 (default 3)"},
    {"threads", "N", 't', "kernel threads per job, 1..64 (default: the CPUs)"},
    {"max-queue", "N", 'q', "queued + running jobs before new ones get 503 + Retry-After (default 32)"},
    {"max-party-jobs", "N", 'j', "unfinished jobs per data provider before 429 + Retry-After (default 8)"},
    {"max-model-mb", "N", 'M', "model upload limit in MiB (default 1024)"},
    {"max-input-mb", "N", 'I', "job input limit in MiB (default 256)"},
    {"job-ttl", "SECONDS", 'T', "delete a finished job and its files this long after it finished\n"
                                "(default: keep it until its data provider deletes it)"},
    {0, 0, 0, 0}};
static const hetee_cli_cmd CMD = {
    "hetee server",
    "hetee server --data-dir DIR --platform DIR [--listen HOST:PORT] [--mp FILE.pub]... [--config STR]\n"
    "                    [--port-file FILE] [--workers N] [--threads N] [--max-queue N] [--max-party-jobs N]\n"
    "                    [--max-model-mb N] [--max-input-mb N] [--job-ttl SECONDS]",
    "Runs the three-party service (HTTP/1.1, storage, job queue, supervised enclave; docs/api.md) until\n"
    "SIGINT or SIGTERM.",
    OPTS};

int hetee_cmd_server(int argc, char **argv) {
  hetee_server_options o;
  memset(&o, 0, sizeof o);
  const char *base = NULL;
  uint8_t mps[HETEE_ENCLAVE_MAX_MPS][32];
  size_t nmp = 0;
  hetee_cli_parser p;
  hetee_cli_parser_init(&p, &CMD, argc, argv);
  unsigned v;
  for (int c; (c = hetee_cli_next(&p)) != -1;) {
    const char *optarg = p.arg;
    switch (c) {
    case 'l': o.listen = optarg; break;
    case 'd': o.data_dir = optarg; break;
    case 'p': o.platform_dir = optarg; break;
    case 'c': base = optarg; break;
    case 'f': o.port_file = optarg; break;
    case 'm':
      if (nmp >= HETEE_ENCLAVE_MAX_MPS) return hetee_cli_error(&CMD, "at most %d --mp", HETEE_ENCLAVE_MAX_MPS);
      if (hetee_party_public_load(optarg, NULL, mps[nmp])) {
        fprintf(stderr, "hetee server: %s: %s\n", optarg, hetee_last_error());
        return 1;
      }
      nmp++;
      break;
    case 'w': if (hetee_cli_uint(&CMD, "--workers", optarg, 64, &v)) return 2; o.workers = (int)v; break;
    case 't': if (hetee_cli_uint(&CMD, "--threads", optarg, 64, &v)) return 2; o.threads = (int)v; break;
    case 'q': if (hetee_cli_uint(&CMD, "--max-queue", optarg, 100000, &v)) return 2; o.max_queue = v; break;
    case 'j': if (hetee_cli_uint(&CMD, "--max-party-jobs", optarg, 100000, &v)) return 2; o.max_party_jobs = v; break;
    case 'M': if (hetee_cli_uint(&CMD, "--max-model-mb", optarg, 65536, &v)) return 2; o.max_model_bytes = (uint64_t)v << 20; break;
    case 'I': if (hetee_cli_uint(&CMD, "--max-input-mb", optarg, 65536, &v)) return 2; o.max_input_bytes = (uint64_t)v << 20; break;
    case 'T': if (hetee_cli_uint(&CMD, "--job-ttl", optarg, 0x7fffffff, &v)) return 2; o.job_ttl_s = v; break;
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  if (p.optind < argc) return hetee_cli_error(&CMD, "unexpected argument '%s'", argv[p.optind]);
  if (!o.data_dir) return hetee_cli_error(&CMD, "--data-dir DIR is required");
  if (!o.platform_dir) return hetee_cli_error(&CMD, "--platform DIR is required");
  if (o.port_file && hetee_cli_check_output(&CMD, o.port_file, 1)) return 1;
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

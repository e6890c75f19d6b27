/*
 * hetee/server.h — `hetee server`: the untrusted host's networked service
 * (docs/api.md). HTTP/1.1 REST (libmicrohttpd) with JSON metadata and binary
 * ciphertext bodies, requests signed by the parties' Ed25519 identity keys,
 * SQLite (WAL) for parties, models, jobs and sessions, ciphertext files
 * written atomically under the data directory, a job queue run by worker
 * threads with the encrypted inference engine (hetee/engine.h), and the
 * enclave process it starts and supervises (hetee/host.h: auto restart,
 * sealed state under the data directory).
 *
 * The server never sees a plaintext weight, input or result: models and
 * inputs arrive as CKKS ciphertexts under the enclave's key, results leave
 * sealed to the data provider's enclave session.
 */
#ifndef HETEE_SERVER_H
#define HETEE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "hetee/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hetee_server_options {
  const char *listen;       /* "HOST:PORT", IPv4 literal; NULL: 127.0.0.1:8470; port 0: any free port */
  const char *data_dir;     /* required: created if missing */
  const char *platform_dir; /* required: the sim platform */
  const char *config;       /* enclave configuration (with mp=); NULL: default (no release possible) */
  const char *port_file;    /* NULL, or a file the bound port is written to (atomically) once serving */
  int workers;              /* job worker threads (0: 3) */
  int threads;              /* kernel threads per job (0: online CPUs, at most 64) */
  unsigned max_queue;       /* queued + running jobs accepted (0: 32) */
  unsigned max_party_jobs;  /* unfinished jobs per data provider (0: 8) */
  uint64_t max_model_bytes; /* model upload limit (0: 1 GiB) */
  uint64_t max_input_bytes;/* job input limit (0: 256 MiB) */
  unsigned job_ttl_s;       /* a finished job (done or failed) and its files are deleted this many seconds
                               after it finished (0: kept until its data provider deletes it) */
} hetee_server_options;

/* Runs the server until SIGINT or SIGTERM (or hetee_server_stop from another
 * thread), then stops accepting, lets the running job finish, stops the
 * enclave. Returns 0 or a negative hetee_status (cannot bind, data
 * directory, enclave start...) with a detail. */
HETEE_API int hetee_server_run(const hetee_server_options *o) HETEE_WUR;
HETEE_API void hetee_server_stop(void);

#ifdef __cplusplus
}
#endif
#endif

/*
 * enclave_main.c — the hetee-enclave process (sim backend). Started by
 * hetee-launcher with fd 3 = host socket, fd 4 = platform socket. Start-up:
 * harden (no dumps, no ptrace), ask the evidence backend (backend.h; `sim`:
 * the launcher) for measurement, sealing key and configuration, create the X25519 channel key and the CKKS context,
 * map the host's shared region if it passed one (fd 5, hardening.c), start the worker threads (pool.c), install the seccomp filter, then serve framed requests until the host
 * closes its socket or asks for shutdown.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "enclave/trusted/backend.h"
#include "enclave/trusted/enclave_internal.h"

int enclave_serve(enclave *e);

static int startup(enclave *e) {
  int rc = enclave_harden_early();
  if (rc) return rc;
  if (sodium_init() < 0) return hetee_error(HETEE_ERR_CRYPTO, "sodium_init failed");
  e->sec = sodium_malloc(sizeof *e->sec);
  if (!e->sec) return hetee_error(HETEE_ERR_NOMEM, "no locked memory");
  memset(e->sec, 0, sizeof *e->sec);
  e->pid = (int)getpid();
  e->backend = &hetee_enclave_backend_sim;
  rc = e->backend->init(e);
  if (rc) return rc;
  rc = enclave_config_parse(e->config_str, &e->cfg);
  if (rc) return rc;
  enclave_malloc_tune(e->cfg.budget);
  e->secrets_locked = enclave_memlock_ok(enclave_locked_need(&e->cfg));
  if (!e->secrets_locked)
    fprintf(stderr,
            "hetee-enclave: WARNING: RLIMIT_MEMLOCK is below the %zu bytes this configuration may lock: "
            "secrets (keys, decrypted tensors) are NOT locked in memory and may be swapped out "
            "(INFO reports secrets_locked = 0)\n",
            enclave_locked_need(&e->cfg));
  crypto_box_keypair(e->ch_pk, e->sec->ch_sk);
  rc = enclave_keys_init(e);
  if (rc) return rc;
  /* the host's shared region: mapped now, before the filter (no mmap of a
   * descriptor is needed afterwards) */
  enclave_shm_map(e);
  /* threads cannot be created under the filter (no clone): all now */
  rc = enclave_threads_start(e);
  if (rc) return rc;
  return enclave_seccomp_install();
}

int main(void) {
  static enclave e;
  e.host_fd = ENCLAVE_HOST_FD;
  e.plat_fd = ENCLAVE_PLAT_FD;
  int rc = startup(&e);
  if (rc) {
    char msg[400];
    snprintf(msg, sizeof msg, "enclave start-up failed: %s", hetee_last_error());
    (void)hetee_frame_write_error(e.host_fd, 0, rc, msg);
    return 1;
  }
  rc = enclave_serve(&e);
  enclave_threads_free(&e);
  enclave_keys_free(&e);
  if (e.sec) sodium_free(e.sec);
  if (e.shm) munmap(e.shm, HETEE_SHM_BYTES);
  return rc ? 1 : 0;
}

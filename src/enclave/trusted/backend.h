/*
 * backend.h — the enclave's evidence backend table: where the enclave gets
 * its measurement, sealing key and configuration at start-up, and who signs
 * its report data. One table per TEE technology; the enclave core (server.c,
 * sessions.c, keys.c) only calls through it.
 *
 * Implemented and tested here: `sim` (backend_sim.c). The trusted launcher
 * (hetee-launcher) stands for the CPU: it measured the binary it started,
 * derives the sealing key from its platform secret and that measurement, and
 * signs report data with the platform's Ed25519 key; the enclave reaches it
 * over fd 4. `sim` gives NO hardware isolation: the host's root user, the
 * kernel and anyone who can read the platform directory can read the
 * enclave's memory or forge evidence. It exists for development, tests, and
 * running where no TEE is available.
 *
 * How real TEEs plug in (not shipped: they cannot run or be tested on this
 * machine, and their verifiers need vendor collateral not packaged in
 * Debian 12):
 *
 *  - Gramine-SGX. The same hetee-enclave binary runs inside Gramine with a
 *    manifest that fixes the configuration (so MRENCLAVE covers binary and
 *    configuration, as `sim` does with its measurement). init(): read the
 *    sealing key from /dev/attestation/keys/_sgx_mrenclave (Gramine's
 *    MRENCLAVE-bound sealing key) and the configuration from the manifest's
 *    trusted arguments; report(): write the 32-byte report data, zero padded
 *    to 64 bytes, to /dev/attestation/user_report_data and read the DCAP
 *    quote from /dev/attestation/quote; evidence = "HTEV" header with
 *    backend id 2 + the quote. The client verifier then checks the quote
 *    against Intel's PCK certificate chain (DCAP quote verification library),
 *    MRENCLAVE against the published value, and report data as today.
 *    The seccomp filter would be dropped: Gramine's LibOS mediates syscalls.
 *
 *  - TDX / SEV-SNP confidential VMs via the kernel's configfs-tsm interface.
 *    report(): mkdir /sys/kernel/config/tsm/report/<name>, write the report
 *    data (64 bytes) to inblob, read outblob (TDX quote or SNP attestation
 *    report) and provider; evidence backend id 3. The measurement is the
 *    VM's launch measurement (MRTD+RTMRs / SNP MEASUREMENT), so the
 *    measured image must contain hetee-enclave and its configuration.
 *    Sealing: SNP derives keys bound to the measurement through
 *    /dev/sev-guest (SNP_GET_DERIVED_KEY); TDX has no sealing key, so a key
 *    broker releasing a sealing key against a verified quote is needed.
 *
 * A backend returns 0 or a negative hetee_status with a detail.
 */
#ifndef HETEE_ENCLAVE_BACKEND_H
#define HETEE_ENCLAVE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

struct enclave;

typedef struct enclave_backend {
  const char *name;
  uint16_t id; /* HETEE_BACKEND_* carried in the evidence header */
  /* Fills e->measurement, e->sec->seal_key and e->config_str. */
  int (*init)(struct enclave *e);
  /* Evidence over report_data; out has room for cap bytes. */
  int (*report)(struct enclave *e, const uint8_t report_data[32], uint8_t *out, size_t cap, size_t *len);
} enclave_backend;

extern const enclave_backend hetee_enclave_backend_sim;

#endif

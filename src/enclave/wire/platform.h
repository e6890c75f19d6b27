/*
 * platform.h — internal: the sim platform's secret side (attestation signing
 * key and sealing root), used only by the launcher (src/enclave/launcher/launcher.c),
 * and the message an evidence signature covers.
 */
#ifndef HETEE_ENCLAVE_PLATFORM_H
#define HETEE_ENCLAVE_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "hetee/enclave.h"

typedef struct hetee_platform {
  uint8_t sk[64];
  uint8_t pk[32];
  uint8_t secret[32];
} hetee_platform;

int hetee_platform_load(const char *dir, hetee_platform *pl);
/* key = BLAKE2b-256(key = platform secret, "hetee-seal-v1\0" || measurement) */
void hetee_platform_seal_key(const hetee_platform *pl, const uint8_t measurement[32], uint8_t key[32]);
int hetee_platform_sign_report(const hetee_platform *pl, const uint8_t measurement[32], const uint8_t report_data[32],
                               uint8_t out[HETEE_EVIDENCE_BYTES]);
/* Writes "hetee-evidence-v1\0" || ev[0..72) into msg (room for 32 + 72 bytes),
 * returns its length. */
size_t hetee_evidence_signed_message(const uint8_t *ev, uint8_t *msg);

#endif

/*
 * host_internal.h — the hetee_host_enclave handle (host side), internal.
 */
#ifndef HETEE_HOST_INTERNAL_H
#define HETEE_HOST_INTERNAL_H

#include <sys/types.h>

#include "enclave/wire/proto.h"
#include "hetee/host.h"

struct hetee_host_enclave {
  int fd;             /* host end of the socketpair, -1 when not running */
  pid_t launcher_pid; /* our child; the enclave is its child */
  int info_pid;       /* the enclave process as it reported itself */
  uint64_t next_id;
  unsigned restarts;
  int auto_restart;
  char *launcher, *enclave, *platform, *config, *seal_path;
  /* hetee_host_stats_follow: every request is followed by a STATS request
   * written right behind it, whose reply is kept in stats_reply */
  int stats_follow, stats_have;
  hetee_frame stats_reply;
  /* the shared region (proto.h "shared-memory transport"; docs/enclave.md
   * "Transport"): created once in hetee_host_start unless HETEE_ENCLAVE_SHM=0
   * (shm_fd -1 and shm NULL when not created or when creating it failed),
   * passed to every enclave spawned as fd 5; shm_ok: the running enclave
   * confirmed it maps it (SHM_HELLO); shm_off: the test switch below */
  int shm_fd;
  uint8_t *shm;
  int shm_ok, shm_off;
};

/* The shared region as the host maps it (request area first, the reply area
 * HETEE_SHM_AREA bytes further), NULL when the running enclave does not use
 * one. For tests: the host is the adversary and may write it at any time. */
uint8_t *hetee_host_shm_region(hetee_host_enclave *e);
/* on = 0: requests go through the socket even with a region (tests compare
 * both paths on one enclave); on = 1: the region again when there is one. */
void hetee_host_shm_enable(hetee_host_enclave *e, int on);

/* on: each request made through hetee_host_call_parts (STATS excepted) is
 * followed on the socket by a STATS request, written before the reply is
 * awaited, so the enclave answers it without a second round trip; the
 * last such reply is read with hetee_host_stats_followed. off: as before
 * (and the kept reply is dropped). */
void hetee_host_stats_follow(hetee_host_enclave *e, int on);
/* The enclave's counters as of the last followed request (its STATS
 * reply); HETEE_ERR_STATE when there is none (e.g. the request failed
 * before its reply arrived). */
int hetee_host_stats_followed(hetee_host_enclave *e, hetee_enclave_op_stats *out, size_t max, size_t *n);

/* Sends one request, reads its reply (checked id/type; error frames turned
 * into their status). may_restart: on a dead enclave restart it (if
 * configured) and fail with HETEE_ERR_IO. */
int hetee_host_call_frame(hetee_host_enclave *e, uint16_t type, const uint8_t *body, size_t len, hetee_frame *reply,
                             int may_restart);
/* The same with the request body given in parts (written without copying
 * them together). */
int hetee_host_call_parts(hetee_host_enclave *e, uint16_t type, const hetee_frame_part *parts, size_t nparts,
                             hetee_frame *reply, int may_restart);
int hetee_host_info_get_noretry(hetee_host_enclave *e, hetee_host_info *out);

#endif

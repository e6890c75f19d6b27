/*
 * sup.c — the enclave the server supervises: started through the sim
 * launcher with auto_restart and the seal file DIR/enclave.seal, so that a
 * dead enclave is restarted inside the failing call and unseals its keys
 * and release policies. The first start generates the CKKS keys and seals
 * them; later starts unseal. Sessions live only in the enclave process, so
 * every restart starts a new *epoch*: sessions of older epochs are gone and
 * jobs bound to them wait for their data provider to bind a new one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hetee/common.h"
#include "enclave/wire/proto.h"
#include "hetee/enclave.h"
#include "service/server_internal.h"

static int load_bundle(sup *u) {
  free(u->bundle);
  u->bundle = NULL;
  hetee_ckks_context_free(u->ctx);
  u->ctx = NULL;
  int rc = hetee_host_public_keys(u->e, &u->bundle, &u->bundle_len);
  if (!rc) hetee_key_bundle_fingerprint(u->bundle, u->bundle_len, u->bundle_fp);
  const uint8_t *it;
  size_t il;
  if (!rc) rc = hetee_key_bundle_get(u->bundle, u->bundle_len, HETEE_BUNDLE_PARAMS, &it, &il);
  if (!rc) rc = hetee_ckks_context_load(it, il, &u->ctx);
  if (!rc) rc = hetee_host_info_get(u->e, &u->info);
  return rc;
}

int sup_seal_take(sup *u, uint8_t **blob, size_t *len, uint64_t *seq) {
  int rc = hetee_host_call(u->e, HETEE_MSG_SEAL, NULL, 0, blob, len);
  if (!rc) *seq = ++u->seal_taken;
  return rc;
}

int sup_seal_write(sup *u, const uint8_t *blob, size_t len, uint64_t seq) {
  pthread_mutex_lock(&u->seal_lock);
  int rc = seq > u->seal_written ? hetee_file_write_atomic(u->seal_path, blob, len, 0600) : 0;
  if (!rc && seq > u->seal_written) u->seal_written = seq;
  pthread_mutex_unlock(&u->seal_lock);
  return rc;
}

int sup_seal(sup *u) {
  uint8_t *b = NULL;
  size_t n = 0;
  uint64_t seq = 0;
  int rc = sup_seal_take(u, &b, &n, &seq);
  if (!rc) rc = sup_seal_write(u, b, n, seq);
  free(b);
  return rc;
}

int sup_start(sup *u, const hetee_server_options *o, int64_t boot) {
  pthread_mutex_init(&u->lock, NULL);
  pthread_mutex_init(&u->seal_lock, NULL);
  snprintf(u->seal_path, sizeof u->seal_path, "%s/enclave.seal", o->data_dir);
  hetee_host_options eo = {.platform_dir = o->platform_dir, .config = o->config, .seal_path = u->seal_path,
                              .auto_restart = 1};
  int rc = hetee_host_start(&eo, &u->e);
  if (rc) return rc;
  if (access(u->seal_path, F_OK) == 0) {
    rc = hetee_host_unseal(u->e, u->seal_path);
  } else {
    rc = hetee_host_keygen(u->e, NULL, 0);
    if (!rc) rc = sup_seal(u);
  }
  if (!rc) rc = load_bundle(u);
  u->boot = boot;
  u->restarts_seen = hetee_host_restarts(u->e);
  u->epoch = boot << 20;
  u->next_seq = 0;
  return rc;
}

void sup_note_restarts(sup *u) {
  unsigned r = hetee_host_restarts(u->e);
  if (r != u->restarts_seen) {
    u->restarts_seen = r;
    u->epoch = (u->boot << 20) + (int64_t)r;
    u->next_seq = 0;
    /* the restarted enclave unsealed the same keys: the bundle is the same,
     * its channel key and pid are new */
    if (hetee_host_info_get(u->e, &u->info))
      fprintf(stderr, "hetee server: enclave restarted, INFO failed: %s\n", hetee_last_error());
    else
      fprintf(stderr, "hetee server: enclave restarted (restart %u, pid %d); sessions of the old one are gone\n", r,
              u->info.pid);
  }
}

void sup_stop(sup *u) {
  hetee_host_free(u->e);
  u->e = NULL;
  free(u->bundle);
  u->bundle = NULL;
  hetee_ckks_context_free(u->ctx);
  u->ctx = NULL;
  pthread_mutex_destroy(&u->lock);
  pthread_mutex_destroy(&u->seal_lock);
}

int session_live(server *S, int64_t epoch, int64_t seq) {
  pthread_mutex_lock(&S->en.lock);
  sup_note_restarts(&S->en);
  int live = epoch == S->en.epoch && seq + SRV_SESSION_SLOTS > S->en.next_seq - 1 && seq < S->en.next_seq;
  pthread_mutex_unlock(&S->en.lock);
  return live;
}

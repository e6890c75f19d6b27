/*
 * replay.c — the (key, nonce) pairs of signed requests seen inside the
 * time window (reqsig.h), in an open-addressing table of fixed capacity:
 * memory is bounded whatever the request rate; entries older than the
 * window are reused, and a table full of live entries refuses the request
 * (the caller answers 503) rather than forgetting a nonce that could then
 * be replayed.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "hetee/common.h"
#include "service/server_internal.h"

typedef struct {
  uint8_t id[32]; /* BLAKE2b(key || nonce) */
  uint64_t ts;    /* 0: free */
} slot;

struct replay {
  pthread_mutex_t lock;
  size_t cap;
  slot *t;
};

int replay_new(size_t cap, replay **out) {
  replay *r = calloc(1, sizeof *r);
  if (!r || !(r->t = calloc(cap, sizeof *r->t))) {
    free(r);
    return hetee_error(HETEE_ERR_NOMEM, "no memory for the replay table");
  }
  r->cap = cap;
  pthread_mutex_init(&r->lock, NULL);
  *out = r;
  return 0;
}

void replay_free(replay *r) {
  if (!r) return;
  pthread_mutex_destroy(&r->lock);
  free(r->t);
  free(r);
}

int replay_check(replay *r, const uint8_t key[32], const uint8_t nonce[16], uint64_t ts_ms, uint64_t now_ms) {
  uint8_t in[48], id[32];
  memcpy(in, key, 32);
  memcpy(in + 32, nonce, 16);
  crypto_generichash(id, sizeof id, in, sizeof in, NULL, 0);
  uint64_t h = 0;
  memcpy(&h, id, sizeof h);
  if (ts_ms == 0) ts_ms = 1;
  pthread_mutex_lock(&r->lock);
  size_t free_at = r->cap;
  int rc = 0;
  /* linear probe over at most 64 slots: a stale or free slot is reused */
  for (size_t i = 0; i < 64 && i < r->cap; i++) {
    slot *s = &r->t[(h + i) % r->cap];
    int live = s->ts && s->ts + 2 * REQSIG_WINDOW_MS >= now_ms;
    if (live && !memcmp(s->id, id, 32)) {
      rc = hetee_error(HETEE_ERR_REPLAY, "request nonce already used (replayed request)");
      goto out;
    }
    if (!live && free_at == r->cap) free_at = (h + i) % r->cap;
  }
  if (free_at == r->cap) {
    rc = hetee_error(HETEE_ERR_LIMIT, "too many signed requests in the replay window");
    goto out;
  }
  memcpy(r->t[free_at].id, id, 32);
  r->t[free_at].ts = ts_ms > now_ms ? ts_ms : now_ms;
out:
  pthread_mutex_unlock(&r->lock);
  return rc;
}

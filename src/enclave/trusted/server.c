/*
 * server.c — the enclave's message loop: read a frame, check version and
 * type, dispatch to a handler, answer with a reply or an error frame, account
 * CPU time and bytes per message type. A malformed frame never ends the loop;
 * only a dead host socket or SHUTDOWN does (the route-table design of Redis'
 * command dispatcher).
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "enclave/trusted/backend.h"
#include "enclave/trusted/enclave_internal.h"
#include "enclave/trusted/integrity_auth.h"

/* CPU time of the whole process: the worker threads' too (pool.c; idle
 * workers sleep, so between requests nothing accrues). */
static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static hetee_enclave_op_stats *stats_for(enclave *e, uint16_t type) {
  for (int i = 0; i < ENCLAVE_STATS; i++) {
    if (e->stats[i].type == type) return &e->stats[i];
    if (e->stats[i].type == 0) {
      e->stats[i].type = type;
      return &e->stats[i];
    }
  }
  return NULL;
}

static int handle_info(enclave *e, hetee_rbuf *r, hetee_wbuf *w) {
  if (hetee_rbuf_left(r)) return hetee_error(HETEE_ERR_PROTOCOL, "INFO takes no body");
  hetee_wbuf_u32(w, (uint32_t)e->pid);
  hetee_wbuf_put(w, e->measurement, 32);
  hetee_wbuf_put(w, e->ch_pk, 32);
  hetee_wbuf_put(w, e->bundle_fp, 32);
  hetee_wbuf_u8(w, (uint8_t)e->have_keys);
  hetee_wbuf_u32(w, e->cfg.log_n ? (uint32_t)1 << (e->cfg.log_n - 1) : 0);
  hetee_wbuf_blob(w, ENCLAVE_BUILD_TAG, strlen(ENCLAVE_BUILD_TAG));
  hetee_wbuf_blob(w, e->config_str, strlen(e->config_str));
  hetee_wbuf_u8(w, (uint8_t)e->secrets_locked);
  return 0;
}

static int handle_evidence(enclave *e, hetee_rbuf *r, hetee_wbuf *w) {
  uint8_t nonce[32];
  if (hetee_rbuf_left(r) != 32) return hetee_error(HETEE_ERR_PROTOCOL, "EVIDENCE takes a 32-byte nonce");
  hetee_rbuf_copy(r, nonce, 32);
  uint8_t rd[32];
  hetee_report_data(e->bundle_fp, e->ch_pk, nonce, rd);
  uint8_t ev[512];
  size_t evlen = 0;
  int rc = e->backend->report(e, rd, ev, sizeof ev, &evlen);
  if (rc) return rc;
  hetee_evidence_hash(ev, evlen, e->issued[e->n_issued % ENCLAVE_EVIDENCE_RING]);
  e->n_issued++;
  hetee_wbuf_blob(w, ev, evlen);
  hetee_wbuf_put(w, e->ch_pk, 32);
  hetee_wbuf_put(w, e->bundle_fp, 32);
  return 0;
}

static int handle_stats(enclave *e, hetee_rbuf *r, hetee_wbuf *w) {
  if (hetee_rbuf_left(r)) return hetee_error(HETEE_ERR_PROTOCOL, "STATS takes no body");
  uint32_t n = 0;
  while (n < ENCLAVE_STATS && e->stats[n].type) n++;
  hetee_wbuf_u32(w, n);
  for (uint32_t i = 0; i < n; i++) {
    hetee_wbuf_u16(w, e->stats[i].type);
    hetee_wbuf_u64(w, e->stats[i].count);
    hetee_wbuf_u64(w, e->stats[i].cpu_ns);
    hetee_wbuf_u64(w, e->stats[i].bytes_in);
    hetee_wbuf_u64(w, e->stats[i].bytes_out);
    hetee_wbuf_u64(w, e->stats[i].items);
  }
  return 0;
}

/* refining (refine.c) */
int enclave_refine_dispatch(enclave *e, uint16_t type, hetee_rbuf *r, hetee_wbuf *w, uint64_t *items);
static int is_refine(uint16_t t) { return hetee_msg_is_refine(t); }

/* SHM_HELLO: the host checks that the enclave sees the region it wrote. */
static int handle_shm_hello(enclave *e, const hetee_frame *f, hetee_wbuf *w) {
  if (f->len) return hetee_error(HETEE_ERR_PROTOCOL, "SHM_HELLO takes no body");
  if (!e->shm) return hetee_error(HETEE_ERR_STATE, "no shared region");
  hetee_wbuf_u64(w, (uint64_t)HETEE_SHM_AREA);
  uint8_t probe[HETEE_SHM_PROBE_BYTES];
  memcpy(probe, e->shm, sizeof probe); /* public: the host's own bytes */
  hetee_wbuf_put(w, probe, sizeof probe);
  return 0;
}

/* A request marked HETEE_MSG_SHM: its body is in the request area. The
 * length comes from the socket descriptor (checked against the area and
 * max_body). Only public request bodies. A JOB_REFRESH is parsed in place
 * (below: its readers read each byte once); any other body is copied into
 * the private rx buffer in one pass and only that copy is parsed, so a
 * host writing the region meanwhile can change what the enclave copied
 * (as it could have sent other bytes) but never what it checks after
 * checking it (JOB_START's witness, for one, is hashed and then opened:
 * two reads). */
static int shm_take(enclave *e, hetee_frame *f, size_t max_body) {
  uint16_t type = (uint16_t)(f->type & ~HETEE_MSG_SHM);
  if (!e->shm) return hetee_error(HETEE_ERR_STATE, "no shared region");
  if (!hetee_msg_public_body(type))
    return hetee_error(HETEE_ERR_PROTOCOL, "message type %u cannot use the shared region", type);
  size_t n;
  int rc = hetee_frame_shm_len(f, max_body, &n);
  if (rc) return rc;
  if (type == HETEE_MSG_JOB_REFRESH) {
    /* parsed in place: its readers (integrity.c handle_job_refresh,
     * refresh.c gather) read every byte of the region once, so a host
     * writing the region meanwhile changes what is decrypted, as other
     * bytes sent would, but never a length or offset after its check */
    f->body = n ? e->shm : NULL;
    f->len = n;
    f->type = type;
    e->body_shared = 1;
    return 0;
  }
  if (n > e->rx_cap) { /* rx holds the descriptor only: nothing to wipe */
    free(e->rx);
    e->rx = malloc(n);
    e->rx_cap = e->rx ? n : 0;
    if (!e->rx) {
      f->body = NULL;
      f->len = 0;
      return hetee_error(HETEE_ERR_NOMEM, "no memory for a %zu-byte frame", n);
    }
  }
  if (n) memcpy(e->rx, e->shm, n);
  f->body = n ? e->rx : NULL;
  f->len = n;
  f->type = type;
  return 0;
}

int enclave_dispatch(enclave *e, const hetee_frame *f, hetee_wbuf *w, uint64_t *items, int *quit) {
  hetee_rbuf r;
  hetee_rbuf_init(&r, f->body, f->len);
  switch (f->type) {
  case HETEE_MSG_PING: hetee_wbuf_put(w, f->body, f->len); return 0;
  case HETEE_MSG_INFO: return handle_info(e, &r, w);
  case HETEE_MSG_KEYGEN: return enclave_handle_keygen(e, &r, w);
  case HETEE_MSG_PUBLIC_KEYS:
    if (f->len) return hetee_error(HETEE_ERR_PROTOCOL, "PUBLIC_KEYS takes no body");
    hetee_wbuf_put(w, e->bundle, e->bundle_len);
    return 0;
  case HETEE_MSG_EVIDENCE: return handle_evidence(e, &r, w);
  case HETEE_MSG_SEAL:
    if (f->len) return hetee_error(HETEE_ERR_PROTOCOL, "SEAL takes no body");
    return enclave_handle_seal(e, w);
  case HETEE_MSG_UNSEAL: return enclave_handle_unseal(e, &r);
  case HETEE_MSG_SESSION_OPEN: return enclave_handle_session_open(e, &r, w);
  case HETEE_MSG_SESSION_MSG: return enclave_handle_session_msg(e, &r, w);
  case HETEE_MSG_REFRESH: return enclave_handle_refresh(e, &r, w, items);
  case HETEE_MSG_RELEASE: return enclave_handle_release(e, &r, w, items);
  case HETEE_MSG_STATS: return handle_stats(e, &r, w);
  case HETEE_MSG_MODEL_LOAD:
  case HETEE_MSG_JOB_START:
  case HETEE_MSG_JOB_REFRESH:
  case HETEE_MSG_JOB_RELEASE: return enclave_integrity_dispatch(e, f->type, &r, w, items);
  case HETEE_MSG_JOB_AUTH: return enclave_auth_handle(e, &r, w);
  case HETEE_MSG_REFINE_OPEN:
  case HETEE_MSG_REFINE_FORWARD:
  case HETEE_MSG_REFINE_LOSS:
  case HETEE_MSG_REFINE_BACK:
  case HETEE_MSG_REFINE_UPDATE:
  case HETEE_MSG_REFINE_FETCH:
  case HETEE_MSG_REFINE_GRAD:
  case HETEE_MSG_REFINE_PUT:
  case HETEE_MSG_REFINE_CLOSE:
  case HETEE_MSG_REFINE_SAVE:
  case HETEE_MSG_REFINE_RESUME:
  case HETEE_MSG_REFINE_STATUS:
  case HETEE_MSG_REFINE_VFORWARD:
  case HETEE_MSG_REFINE_VLOSS:
  case HETEE_MSG_REFINE_VREPORT:
  case HETEE_MSG_REFINE_WITNESS:
  case HETEE_MSG_REFINE_FROZEN:
  case HETEE_MSG_REFINE_INIT: return enclave_refine_dispatch(e, f->type, &r, w, items);
  case HETEE_MSG_REFINE_VWITNESS: return enclave_refine_dispatch(e, f->type, &r, w, items);
  case HETEE_MSG_SHUTDOWN:
    if (f->len) return hetee_error(HETEE_ERR_PROTOCOL, "SHUTDOWN takes no body");
    *quit = 1;
    return 0;
  default: return hetee_error(HETEE_ERR_PROTOCOL, "unknown message type %u", f->type);
  }
}

/* The host's STATS request when it is already waiting, whole, behind the
 * request just served (the host sends it with its request:
 * src/host/enclave_process.c): consumed, its id in *sid, 1. 0 when there is
 * none yet (nothing read: the loop reads it as any frame), -1 on a failed
 * read. Never blocks. */
static int stats_waiting(int fd, uint64_t *sid) {
  uint8_t h[HETEE_FRAME_HEADER_BYTES];
  ssize_t n = recv(fd, h, sizeof h, MSG_PEEK | MSG_DONTWAIT);
  if (n != (ssize_t)sizeof h || hetee_rd32(h) != 12 || hetee_rd16(h + 4) != HETEE_PROTO_VERSION ||
      hetee_rd16(h + 6) != HETEE_MSG_STATS)
    return 0;
  if (recv(fd, h, sizeof h, MSG_DONTWAIT) != (ssize_t)sizeof h) return -1; /* the peeked bytes: cannot be short */
  *sid = hetee_rd64(h + 8);
  return 1;
}

/* Replies up to this size go out in one send with the STATS reply behind
 * them (copied into txb); larger ones as before. */
#define BATCH_MAX_BODY 65536

int enclave_serve(enclave *e) {
  int quit = 0;
  while (!quit) {
    hetee_frame f;
    /* the memory budget bounds request frames too (drained and refused above it) */
    size_t max_body = e->cfg.budget < HETEE_FRAME_MAX_BODY ? e->cfg.budget : HETEE_FRAME_MAX_BODY;
    /* a request's CPU time counts its receipt (the copy out of the socket;
     * waiting for the host is not CPU time) and the wipes after it */
    uint64_t t0 = cpu_ns(), items = 0;
    int rc = hetee_frame_read_into(e->host_fd, max_body, &f, &e->rx, &e->rx_cap);
    if (rc == HETEE_ERR_IO) break; /* host closed: normal end */
    if (rc) {
      /* recoverable framing error: the stream is still in sync */
      if (hetee_frame_write_error(e->host_fd, f.id, rc, hetee_last_error())) break;
      continue;
    }
    /* the host's scheduling hint, stripped before anything reads the type */
    e->serial = (f.type & (HETEE_MSG_REPLY | HETEE_MSG_SERIAL)) == HETEE_MSG_SERIAL;
    if (e->serial) f.type = (uint16_t)(f.type & ~HETEE_MSG_SERIAL);
    hetee_wbuf w = e->tx; /* the kept reply buffer, emptied */
    w.len = 0;
    w.err = 0;
    /* a request whose body is in the shared region is answered there too
     * when its reply is public */
    int via_shm = (f.type & (HETEE_MSG_REPLY | HETEE_MSG_SHM)) == HETEE_MSG_SHM;
    if (f.version != HETEE_PROTO_VERSION) {
      rc = hetee_error(HETEE_ERR_VERSION, "protocol version %u, this enclave speaks %d", f.version, HETEE_PROTO_VERSION);
    } else {
      hetee_error_clear();
      e->body_shared = 0;
      rc = via_shm ? shm_take(e, &f, max_body) : 0;
      /* a public reply to a request through the region goes back there:
       * its handler may write finished parts of it in place */
      if (!rc && via_shm && hetee_msg_public_reply(f.type)) e->reply_shm = e->shm + HETEE_SHM_AREA;
      if (!rc)
        rc = f.type == HETEE_MSG_SHM_HELLO ? handle_shm_hello(e, &f, &w) : enclave_dispatch(e, &f, &w, &items, &quit);
      if (!rc && w.err) rc = hetee_error(HETEE_ERR_NOMEM, "no memory for the reply");
      if (!rc && w.len > HETEE_FRAME_MAX_BODY) rc = hetee_error(HETEE_ERR_LIMIT, "reply above the frame limit");
    }
    int public_body = hetee_msg_public_body(f.type), public_reply = hetee_msg_public_reply(f.type);
    hetee_enclave_op_stats *s = f.version == HETEE_PROTO_VERSION && ((f.type >= HETEE_MSG_PING && f.type <= HETEE_MSG_JOB_AUTH) || is_refine(f.type))
                                    ? stats_for(e, f.type)
                                    : NULL;
    int wrc, in_shm = !rc && via_shm && public_reply && w.len <= HETEE_SHM_AREA, batched = 0;
    uint64_t sid = 0, t2 = 0;
    if (in_shm) {
      /* the finished (public) reply, copied in one pass: the region never
       * holds anything the handler computed on the way; the part the
       * handler wrote there itself (each piece once final) is not copied */
      size_t lo = e->reply_direct_len ? e->reply_direct_off : w.len, hi = lo + e->reply_direct_len;
      if (lo) memcpy(e->shm + HETEE_SHM_AREA, w.p, lo);
      if (w.len > hi) memcpy(e->shm + HETEE_SHM_AREA + hi, w.p + hi, w.len - hi);
    }
    if (!rc && f.type != HETEE_MSG_STATS && (in_shm || w.len <= BATCH_MAX_BODY) && s) {
      /* the host's STATS request already behind this one: both replies in
       * one send (the host is woken once, and this process is not
       * preempted by it between the two); the STATS reply counts this
       * request up to here, the send and the wipes are added to its
       * counter after (they show in the next call's difference) */
      int st = stats_waiting(e->host_fd, &sid);
      if (st < 0) {
        batched = 1; /* the stream is out of step: the loop ends below */
        wrc = HETEE_ERR_IO;
      } else if (st) {
        batched = 1;
        s->count++;
        s->cpu_ns += cpu_ns() - t0;
        s->bytes_in += f.len + HETEE_FRAME_HEADER_BYTES;
        s->bytes_out += w.len + HETEE_FRAME_HEADER_BYTES;
        s->items += items;
        uint64_t t1 = cpu_ns();
        hetee_wbuf *b = &e->txb;
        b->len = 0;
        b->err = 0;
        uint8_t h[HETEE_FRAME_HEADER_BYTES], d[HETEE_SHM_DESC_BYTES];
        hetee_frame_header(h, (uint16_t)(f.type | HETEE_MSG_REPLY | (in_shm ? HETEE_MSG_SHM : 0)), f.id,
                           in_shm ? sizeof d : w.len);
        hetee_wbuf_put(b, h, sizeof h);
        if (in_shm) {
          hetee_le64(d, (uint64_t)w.len);
          hetee_wbuf_put(b, d, sizeof d);
        } else {
          hetee_wbuf_put(b, w.p, w.len);
        }
        size_t at = b->len;
        hetee_wbuf_put(b, h, sizeof h); /* the STATS reply's header, filled below */
        hetee_rbuf none;
        hetee_rbuf_init(&none, NULL, 0);
        handle_stats(e, &none, b);
        hetee_enclave_op_stats *ss = stats_for(e, HETEE_MSG_STATS);
        if (!b->err) hetee_frame_header(b->p + at, HETEE_MSG_STATS | HETEE_MSG_REPLY, sid, b->len - at - sizeof h);
        if (ss) {
          ss->count++;
          ss->cpu_ns += cpu_ns() - t1;
          ss->bytes_in += HETEE_FRAME_HEADER_BYTES;
          ss->bytes_out += b->len - at;
        }
        if (!b->err) {
          wrc = hetee_frame_write_raw(e->host_fd, b->p, b->len);
        } else { /* no memory for the copy: the two replies apart (the second an error) */
          wrc = in_shm ? hetee_frame_write_shm(e->host_fd, (uint16_t)(f.type | HETEE_MSG_REPLY), f.id, w.len)
                       : hetee_frame_write(e->host_fd, (uint16_t)(f.type | HETEE_MSG_REPLY), f.id, w.p, w.len);
          if (!wrc) wrc = hetee_frame_write_error(e->host_fd, sid, HETEE_ERR_NOMEM, "no memory for the statistics");
        }
        /* a private reply's copy is wiped like the reply itself */
        if (!public_reply && b->p) sodium_memzero(b->p, b->len);
        t2 = cpu_ns();
      }
    }
    if (batched) {
    } else if (rc) {
      wrc = hetee_frame_write_error(e->host_fd, f.id, rc, hetee_last_error());
    } else if (in_shm) {
      wrc = hetee_frame_write_shm(e->host_fd, (uint16_t)(f.type | HETEE_MSG_REPLY), f.id, w.len);
    } else {
      /* (not reached with a part in the region: a reply through the region
       * fits it, HETEE_SHM_AREA being the frame limit; were it otherwise,
       * that part, public, is taken back from the region) */
      if (e->reply_direct_len && e->reply_direct_off + e->reply_direct_len <= w.len)
        memcpy(w.p + e->reply_direct_off, e->shm + HETEE_SHM_AREA + e->reply_direct_off, e->reply_direct_len);
      wrc = hetee_frame_write(e->host_fd, (uint16_t)(f.type | HETEE_MSG_REPLY), f.id, w.p, w.len);
    }
    /* Request and reply buffers are wiped after each request, except
     * where everything in them came from the host or goes to it anyway:
     * REFRESH, RELEASE, MODEL_LOAD, JOB_START and JOB_REFRESH requests
     * (ids, specs, maps, plans, ciphertexts the host holds) and REFRESH and
     * JOB_REFRESH replies (fresh ciphertexts, a CPU time the host is told
     * anyway). Wiping those protects nothing and costs a pass over
     * megabytes per request (14 MB per stage-0 JOB_REFRESH of e2dm).
     * (The lists are proto.h's hetee_msg_public_body / _reply: the same
     * ones decide what may travel through the shared region.) */
    if (f.body && !public_body) sodium_memzero(f.body, f.len);
    /* both buffers are kept for the next request (no allocation, no page
     * faults per request); what a request wrote is wiped unless public */
    if (!public_reply && w.p) sodium_memzero(w.p, w.len);
    if (batched) {
      if (t2) s->cpu_ns += cpu_ns() - t2;
    } else if (s) {
      s->count++;
      s->cpu_ns += cpu_ns() - t0;
      s->bytes_in += f.len + HETEE_FRAME_HEADER_BYTES;
      s->bytes_out += (rc ? 0 : w.len) + HETEE_FRAME_HEADER_BYTES;
      s->items += items;
    }
    w.len = 0;
    e->tx = w;
    e->reply_shm = NULL;
    e->reply_direct_off = e->reply_direct_len = 0;
    if (e->body_shared) { /* f.body is the region, not rx */
      e->body_shared = 0;
      f.body = NULL;
    }
    if (wrc == HETEE_ERR_IO) break;
  }
  hetee_wbuf_free(&e->tx);
  hetee_wbuf_free(&e->txb);
  if (e->rx) sodium_memzero(e->rx, e->rx_cap);
  free(e->rx);
  e->rx = NULL;
  e->rx_cap = 0;
  return 0;
}

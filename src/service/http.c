/*
 * http.c — the transport: libmicrohttpd (one thread per connection, at most
 * SRV_MAX_CONNECTIONS, 30 s idle timeout). For each request it finds the
 * route and runs the header phase (routes_begin: content type, declared
 * length, authentication headers) before reading any body byte, so an
 * oversized or unauthenticated upload is refused without being read; then
 * streams the body into memory (small JSON / binary bodies) or a temp file
 * (ciphertext uploads), hashing it for the signature and stopping at the
 * route's hard limit; then runs the handler and sends its response (file
 * bodies are sent from the file, not copied into memory).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hetee/common.h"
#include "service/server_internal.h"

/* Each connection's memory pool (headers, the read buffer) is at most
 * SRV_CONN_MEMORY. libmicrohttpd's default (32 KiB, growing the read buffer
 * 1 KiB at a time) hands a body to on_request in chunks of a few KiB: one
 * poll, one recv and one write of the temp file per chunk, about 130 of each
 * for a 64-image input. With 256 KiB, grown 64 KiB at a time, a chunk is up to
 * about 200 KiB; 64 connections at most hold 16 MiB (pools are allocated as
 * they are used). */
#define SRV_CONN_MEMORY (256u << 10)
#define SRV_CONN_MEMORY_INCREMENT (64u << 10)

typedef struct conn_state {
  srv_req q;
  srv_resp r;
  int phase;      /* 0 header done, 1 body refused (respond at end) */
  int refused;    /* a response is ready: body bytes are discarded */
  reqsig_body_state hs; /* 64-byte aligned: conn_state comes from aligned_alloc */
  uint64_t limit;
} conn_state;

const char *req_header(srv_req *q, const char *name) {
  return MHD_lookup_connection_value((struct MHD_Connection *)q->conn, MHD_HEADER_KIND, name);
}

const char *req_query(srv_req *q, const char *name) {
  return MHD_lookup_connection_value((struct MHD_Connection *)q->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct {
  char *out;
  size_t cap, len;
  int n, overflow;
} target_acc;

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  target_acc *a = cls;
  int w = snprintf(a->out + a->len, a->cap - a->len, "%s%s%s%s", a->n++ ? "&" : "?", key, value ? "=" : "",
                   value ? value : "");
  if (w < 0 || (size_t)w >= a->cap - a->len) {
    a->overflow = 1;
    return MHD_NO;
  }
  a->len += (size_t)w;
  return MHD_YES;
}

/* The signed target: the path, then the query arguments in the order sent,
 * decoded, as "?k=v&k=v" (clients use only unreserved characters, so this is
 * what they sent). 0, or -1 when longer than REQSIG_MAX_TARGET. */
static int build_target(srv_req *q) {
  target_acc a = {.out = q->target, .cap = sizeof q->target};
  int w = snprintf(q->target, sizeof q->target, "%s", q->path);
  if (w < 0 || (size_t)w >= sizeof q->target) return -1;
  a.len = (size_t)w;
  MHD_get_connection_values((struct MHD_Connection *)q->conn, MHD_GET_ARGUMENT_KIND, add_arg, &a);
  return a.overflow ? -1 : 0;
}

static enum MHD_Result send_resp(struct MHD_Connection *c, srv_resp *r) {
  struct MHD_Response *resp = NULL;
  if (r->file[0]) {
    int fd = open(r->file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0) {
      resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    } else {
      if (fd >= 0) close(fd);
      resp_error(r, 500, "io", "cannot open the stored file");
    }
  }
  if (!resp) {
    resp = MHD_create_response_from_buffer(r->len, r->body ? r->body : (void *)"", MHD_RESPMEM_MUST_COPY);
  }
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", r->ctype ? r->ctype : "application/json");
  if (r->retry_after > 0) {
    char ra[16];
    snprintf(ra, sizeof ra, "%d", r->retry_after);
    MHD_add_response_header(resp, "Retry-After", ra);
  }
  if (r->location[0]) MHD_add_response_header(resp, "Location", r->location);
  if (r->etag[0]) MHD_add_response_header(resp, "ETag", r->etag);
  enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
  server *S = cls;
  conn_state *cs = *con_cls;
  if (!cs) {
    cs = aligned_alloc(64, (sizeof *cs + 63) / 64 * 64);
    if (cs) memset(cs, 0, sizeof *cs);
    if (!cs) return MHD_NO;
    *con_cls = cs;
    cs->q.S = S;
    cs->q.conn = c;
    cs->q.fd = -1;
    cs->q.method = method;
    cs->r.status = 0;
    if (strlen(url) > REQSIG_MAX_TARGET) {
      resp_error(&cs->r, 414, "uri_too_long", "request target longer than %d bytes", REQSIG_MAX_TARGET);
      cs->refused = 2;
      metrics_request(&S->m, cs->r.status, 0);
      return send_resp(c, &cs->r);
    }
    snprintf(cs->q.path, sizeof cs->q.path, "%s", url);
    if (build_target(&cs->q)) {
      resp_error(&cs->r, 414, "uri_too_long", "request target longer than %d bytes", REQSIG_MAX_TARGET);
      cs->refused = 2;
      metrics_request(&S->m, cs->r.status, 0);
      return send_resp(c, &cs->r);
    }
    if (routes_match(&cs->q, &cs->r) == NULL || routes_begin(&cs->q, &cs->r) != 0) {
      /* answered before the body: libmicrohttpd does not read it and closes
       * the connection after the response */
      cs->refused = 2;
      metrics_request(&S->m, cs->r.status, 0);
      return send_resp(c, &cs->r);
    }
    if (cs->q.sig.v3) reqsig_body_init_v3(&cs->hs, cs->q.mac_key, cs->q.sig.nonce, cs->q.sig.ts_ms);
    else reqsig_body_init(&cs->hs);
    sodium_memzero(cs->q.mac_key, sizeof cs->q.mac_key);
    cs->limit = routes_body_limit(&cs->q);
    if (cs->q.body_kind == BODY_BIN_FILE) {
      if (blob_tmp(S->data_dir, cs->q.file, &cs->q.fd)) {
        resp_error(&cs->r, 500, "io", "%s", hetee_last_error());
        cs->refused = 1;
      }
    }
    return MHD_YES;
  }
  if (*upload_size) {
    size_t n = *upload_size;
    *upload_size = 0;
    if (cs->refused) return MHD_YES; /* the answer is decided: discard */
    if (cs->q.total + n > cs->limit) {
      resp_error(&cs->r, 413, "too_large", "request body above the %llu bytes this endpoint accepts",
                 (unsigned long long)cs->limit);
      cs->refused = 1;
      /* stop reading a body we will never use */
      return MHD_NO;
    }
    cs->q.total += n;
    reqsig_body_update(&cs->hs, (const uint8_t *)upload_data, n);
    if (cs->q.body_kind == BODY_BIN_FILE) {
      for (size_t off = 0; off < n;) {
        ssize_t w = write(cs->q.fd, upload_data + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
          resp_error(&cs->r, 507, "storage", "cannot store the upload: %s", strerror(errno));
          cs->refused = 1;
          return MHD_YES;
        }
        off += (size_t)w;
      }
    } else if (cs->q.body_kind != BODY_NONE) {
      uint8_t *m = realloc(cs->q.mem, cs->q.len + n + 1);
      if (!m) {
        resp_error(&cs->r, 503, "memory", "no memory");
        cs->refused = 1;
        return MHD_YES;
      }
      cs->q.mem = m;
      memcpy(m + cs->q.len, upload_data, n);
      cs->q.len += n;
      m[cs->q.len] = 0; /* JSON parsers get a NUL-terminated copy */
    } else {
      resp_error(&cs->r, 400, "unexpected_body", "this endpoint takes no request body");
      cs->refused = 1;
    }
    return MHD_YES;
  }
  /* the whole request is in */
  if (cs->refused == 2) return MHD_YES; /* already answered */
  if (!cs->refused) {
    reqsig_body_final(&cs->hs, cs->q.body_hash);
    routes_finish(&cs->q, &cs->r);
  }
  if (!cs->r.status) resp_error(&cs->r, 500, "internal", "no response");
  metrics_request(&S->m, cs->r.status, cs->q.total);
  return send_resp(c, &cs->r);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
  conn_state *cs = *con_cls;
  if (!cs) return;
  if (cs->q.fd >= 0) close(cs->q.fd);
  if (cs->q.file[0]) unlink(cs->q.file); /* handlers rename the files they keep */
  free(cs->q.mem);
  free(cs->r.body);
  free(cs->q.hctx);
  sodium_memzero(&cs->hs, sizeof cs->hs); /* a v3 body's one-time key */
  sodium_memzero(cs->q.mac_key, sizeof cs->q.mac_key); /* set when the request was refused before its body */
  free(cs);
  *con_cls = NULL;
}

int http_start(server *S, const char *host, unsigned port, unsigned *bound, void **daemon) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) return hetee_error(HETEE_ERR_INVALID_ARG, "listen address '%s' is not an IPv4 address", host);
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL,
      on_request, S, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)SRV_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_NOTIFY_COMPLETED, on_done, S,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SRV_CONN_MEMORY, MHD_OPTION_CONNECTION_MEMORY_INCREMENT,
      (size_t)SRV_CONN_MEMORY_INCREMENT, MHD_OPTION_END);
  if (!d) return hetee_error(HETEE_ERR_IO, "cannot listen on %s:%u", host, port);
  const union MHD_DaemonInfo *inf = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  *bound = inf ? inf->port : port;
  *daemon = d;
  return 0;
}

void http_stop(void *daemon) {
  if (daemon) MHD_stop_daemon(daemon);
}

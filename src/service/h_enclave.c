/*
 * h_enclave.c — handlers for the enclave and parties: health, metrics,
 * enclave info, key bundle, attestation evidence, party registration, and
 * the relay of party sessions (handshake, sealed messages). The server only
 * relays: evidence is signed by the platform, sessions are keyed between
 * the party and the enclave.
 */
#include <stdlib.h>
#include <string.h>

#include "enclave/wire/proto.h"
#include "hetee/common.h"
#include "service/server_internal.h"

static json_t *hexj(const uint8_t *b, size_t n) {
  char *h = malloc(2 * n + 1);
  if (!h) return NULL;
  reqsig_hex(b, n, h);
  json_t *j = json_string(h);
  free(h);
  return j;
}

/* Parses the request's JSON object body (400 with the parser's message). */
json_t *req_json(srv_req *q, srv_resp *r);
json_t *req_json(srv_req *q, srv_resp *r) {
  json_error_t e;
  json_t *j = json_loadb((const char *)q->mem, q->len, JSON_REJECT_DUPLICATES, &e);
  if (!j) {
    resp_error(r, 400, "bad_json", "malformed JSON at line %d column %d: %s", e.line, e.column, e.text);
    return NULL;
  }
  if (!json_is_object(j)) {
    json_decref(j);
    resp_error(r, 400, "bad_json", "a JSON object is expected");
    return NULL;
  }
  return j;
}

void h_health(srv_req *q, srv_resp *r) {
  server *S = q->S;
  int64_t qd = 0, run = 0;
  (void)store_job_counts(S->db, &qd, &run);
  const char *enc = "busy"; /* a job holds the enclave: it is answering it */
  if (pthread_mutex_trylock(&S->en.lock) == 0) {
    hetee_host_info info;
    enc = hetee_host_info_get(S->en.e, &info) ? "down" : "up";
    sup_note_restarts(&S->en);
    pthread_mutex_unlock(&S->en.lock);
  }
  uint8_t xpk[32];
  reqkey_public(S->rk, xpk);
  resp_json(r, strcmp(enc, "down") ? 200 : 503,
            json_pack("{ss ss sI sI so}", "status", strcmp(enc, "down") ? "ok" : "degraded", "enclave", enc, "queued",
                      (json_int_t)qd, "running", (json_int_t)run, "request_key", hexj(xpk, 32)));
}

void h_metrics(srv_req *q, srv_resp *r) {
  char *m = metrics_render(q->S);
  if (!m) {
    resp_error(r, 500, "internal", "no memory");
    return;
  }
  r->status = 200;
  r->ctype = "text/plain; version=0.0.4";
  r->body = (uint8_t *)m;
  r->len = strlen(m);
}

void h_enclave_info(srv_req *q, srv_resp *r) {
  server *S = q->S;
  pthread_mutex_lock(&S->en.lock);
  sup_note_restarts(&S->en);
  hetee_host_info info = S->en.info;
  unsigned restarts = hetee_host_restarts(S->en.e);
  pthread_mutex_unlock(&S->en.lock);
  resp_json(r, 200,
            json_pack("{ss so ss so si sb}", "backend", "sim (simulated platform, no hardware isolation)",
                      "measurement", hexj(info.measurement, 32), "config", info.config, "bundle_fp", hexj(S->en.bundle_fp, 32),
                      "restarts", (int)restarts, "secrets_locked", info.secrets_locked));
}

/* The key bundle (immutable once started) with its fingerprint as ETag: a
 * client that verified it asks again with If-None-Match and gets 304 with
 * no body while it is unchanged (no enclave call either way). */
void h_enclave_bundle(srv_req *q, srv_resp *r) {
  server *S = q->S;
  char fp[65];
  reqsig_hex(S->en.bundle_fp, 32, fp);
  snprintf(r->etag, sizeof r->etag, "\"%s\"", fp);
  const char *inm = req_header(q, "If-None-Match");
  if (inm && !strcmp(inm, r->etag)) {
    r->status = 304;
    r->ctype = "application/octet-stream";
    return;
  }
  r->body = malloc(S->en.bundle_len);
  if (!r->body) {
    resp_error(r, 503, "memory", "no memory");
    return;
  }
  memcpy(r->body, S->en.bundle, S->en.bundle_len); /* immutable once started */
  r->len = S->en.bundle_len;
  r->status = 200;
  r->ctype = "application/octet-stream";
}

void h_enclave_evidence(srv_req *q, srv_resp *r) {
  json_t *j = req_json(q, r);
  if (!j) return;
  uint8_t nonce[32];
  const char *nh = json_string_value(json_object_get(j, "nonce"));
  if (!nh || reqsig_unhex(nh, nonce, 32)) {
    json_decref(j);
    resp_error(r, 400, "bad_nonce", "\"nonce\": 64 hex digits expected");
    return;
  }
  json_decref(j);
  server *S = q->S;
  uint8_t *ev = NULL, ch[32], fp[32];
  size_t evlen = 0;
  pthread_mutex_lock(&S->en.lock);
  int rc = hetee_host_evidence(S->en.e, nonce, &ev, &evlen, ch, fp);
  sup_note_restarts(&S->en);
  pthread_mutex_unlock(&S->en.lock);
  if (rc) {
    resp_status(r, rc, "evidence");
    return;
  }
  resp_json(r, 200, json_pack("{so so so}", "evidence", hexj(ev, evlen), "channel_pk", hexj(ch, 32), "bundle_fp", hexj(fp, 32)));
  free(ev);
}

/* Whether key (hex) is in the enclave configuration's mp= list. */
static int mp_listed(server *S, const char *key) {
  const char *c = S->en.info.config;
  const char *mp = strstr(c, "mp=");
  while (mp && mp != c && mp[-1] != ';') mp = strstr(mp + 1, "mp=");
  if (!mp) return 0;
  for (const char *k = mp + 3; *k && *k != ';';) {
    size_t len = strcspn(k, ",;");
    if (len == 64 && !strncmp(k, key, 64)) return 1;
    k += len + (k[len] == ',');
  }
  return 0;
}

void h_party_register(srv_req *q, srv_resp *r) {
  json_t *j = req_json(q, r);
  if (!j) return;
  const char *role = json_string_value(json_object_get(j, "role"));
  int ro = role && !strcmp(role, "mp") ? ROLE_MP : role && !strcmp(role, "dp") ? ROLE_DP : 0;
  json_decref(j);
  if (!ro) {
    resp_error(r, 400, "bad_role", "\"role\" must be \"mp\" or \"dp\"");
    return;
  }
  if (ro == ROLE_MP && !mp_listed(q->S, q->party)) {
    resp_error(r, 403, "not_listed", "model provider %.16s... is not in the enclave's measured mp= list", q->party);
    return;
  }
  int rc = store_party_add(q->S->db, q->party, ro);
  if (rc) {
    resp_status(r, rc, "register");
    return;
  }
  /* the server's X25519 key for v3 requests (reqsig.h): the client library
   * learns it here, at its first request */
  uint8_t xpk[32];
  reqkey_public(q->S->rk, xpk);
  resp_json(r, 201, json_pack("{ss ss so}", "party", q->party, "role", ro == ROLE_MP ? "mp" : "dp", "request_key",
                              hexj(xpk, 32)));
}

void h_session_open(srv_req *q, srv_resp *r) {
  server *S = q->S;
  /* u8 role | identity[32] | ephemeral[32] | evidence hash[32] | sig[64] */
  if (q->len != 161) {
    resp_error(r, 400, "bad_handshake", "a session handshake is 161 bytes, not %zu", q->len);
    return;
  }
  if (memcmp(q->mem + 1, q->sig.key, 32)) {
    resp_error(r, 403, "forbidden", "a party opens sessions for its own identity key only");
    return;
  }
  if (q->mem[0] != (q->role == ROLE_MP ? HETEE_ROLE_MP : HETEE_ROLE_DP)) {
    resp_error(r, 403, "role", "handshake role is not the party's registered role");
    return;
  }
  pthread_mutex_lock(&S->en.lock);
  sup_note_restarts(&S->en);
  uint8_t *rep = NULL;
  size_t rlen = 0;
  int rc = hetee_host_session_open(S->en.e, q->mem, q->len, &rep, &rlen);
  int64_t epoch = S->en.epoch, seq = S->en.next_seq;
  if (!rc && rlen >= 16) S->en.next_seq++;
  sup_note_restarts(&S->en);
  pthread_mutex_unlock(&S->en.lock);
  if (rc || rlen < 16) {
    free(rep);
    resp_status(r, rc ? rc : HETEE_ERR_PROTOCOL, "session");
    return;
  }
  char sid[33];
  reqsig_hex(rep, 16, sid);
  rc = store_session_add(S->db, sid, q->party, epoch, seq);
  if (rc) {
    free(rep);
    resp_status(r, rc, "session");
    return;
  }
  resp_json(r, 201, json_pack("{ss so}", "session", sid, "reply", hexj(rep, rlen)));
  free(rep);
}

/* The session named in the path / by hex, checked to be the caller's and
 * alive: 0, or *r answered. */
int session_owned(srv_req *q, srv_resp *r, const char *sid, int64_t *epoch, int64_t *seq);
int session_owned(srv_req *q, srv_resp *r, const char *sid, int64_t *epoch, int64_t *seq) {
  char owner[65];
  uint8_t tmp[16];
  if (!sid || reqsig_unhex(sid, tmp, 16)) {
    resp_error(r, 400, "bad_session", "a session id is 32 hex digits");
    return -1;
  }
  if (store_session_get(q->S->db, sid, owner, epoch, seq) || strcmp(owner, q->party)) {
    resp_error(r, 404, "not_found", "no such session of this party");
    return -1;
  }
  if (!session_live(q->S, *epoch, *seq)) {
    resp_error(r, 409, "session_gone", "the enclave no longer has this session (restarted or replaced): open a new one");
    return -1;
  }
  return 0;
}

void h_session_msg(srv_req *q, srv_resp *r) {
  char sid[33];
  snprintf(sid, sizeof sid, "%s", q->path + strlen("/v1/sessions/"));
  int64_t epoch, seq;
  if (session_owned(q, r, sid, &epoch, &seq)) return;
  if (q->len < 16 || memcmp(sid, "", 0)) {
    resp_error(r, 400, "bad_message", "sealed session message too short");
    return;
  }
  uint8_t id[16];
  if (reqsig_unhex(sid, id, 16) || memcmp(q->mem, id, 16)) {
    resp_error(r, 400, "bad_message", "the message is not for this session");
    return;
  }
  server *S = q->S;
  uint8_t *rep = NULL;
  size_t rlen = 0;
  pthread_mutex_lock(&S->en.lock);
  int rc = hetee_host_session_msg(S->en.e, q->mem, q->len, &rep, &rlen);
  sup_note_restarts(&S->en);
  pthread_mutex_unlock(&S->en.lock);
  if (rc) {
    resp_status(r, rc, "session message");
    return;
  }
  r->status = 200;
  r->ctype = "application/octet-stream";
  r->body = rep;
  r->len = rlen;
}

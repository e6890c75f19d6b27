/*
 * routes.c — the route table and what every request goes through before
 * its handler: method + path matching (numeric {id} segments, 1..2^53),
 * content type per body kind (415), declared length against the route's
 * hard limit (413), the signature headers (401) and, after the body, the
 * signature over method, target, body hash, timestamp and nonce, the time
 * window and the nonce's first use (401), then the party's registration and
 * role (403). Handlers see only authenticated requests of the right party.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hetee/common.h"
#include "service/refine_internal.h"
#include "service/server_internal.h"

static const route ROUTES[] = {
    {"GET", "/v1/health", AUTH_NONE, BODY_NONE, NULL, h_health},
    {"GET", "/metrics", AUTH_NONE, BODY_NONE, NULL, h_metrics},
    {"GET", "/v1/enclave", AUTH_NONE, BODY_NONE, NULL, h_enclave_info},
    {"GET", "/v1/enclave/bundle", AUTH_NONE, BODY_NONE, NULL, h_enclave_bundle},
    {"POST", "/v1/parties", AUTH_ANY, BODY_JSON, NULL, h_party_register},
    {"POST", "/v1/enclave/evidence", AUTH_PARTY, BODY_JSON, NULL, h_enclave_evidence},
    {"POST", "/v1/sessions", AUTH_PARTY, BODY_BIN_MEM, NULL, h_session_open},
    {"POST", "/v1/sessions/{hex}/messages", AUTH_PARTY, BODY_BIN_MEM, NULL, h_session_msg},
    {"POST", "/v1/models", AUTH_MP, BODY_BIN_FILE, NULL, h_model_upload},
    {"GET", "/v1/models", AUTH_PARTY, BODY_NONE, NULL, h_model_list},
    {"GET", "/v1/models/{id}", AUTH_PARTY, BODY_NONE, NULL, h_model_show},
    {"DELETE", "/v1/models/{id}", AUTH_MP, BODY_NONE, NULL, h_model_delete},
    {"PUT", "/v1/models/{id}/policy", AUTH_MP, BODY_JSON, NULL, h_model_policy},
    {"GET", "/v1/models/{id}/plan", AUTH_PARTY, BODY_NONE, NULL, h_model_plan},
    {"POST", "/v1/jobs", AUTH_DP, BODY_BIN_FILE, h_job_pre, h_job_submit},
    {"GET", "/v1/jobs", AUTH_DP, BODY_NONE, NULL, h_job_list},
    {"GET", "/v1/jobs/{id}", AUTH_DP, BODY_NONE, NULL, h_job_show},
    {"GET", "/v1/jobs/{id}/result", AUTH_DP, BODY_NONE, NULL, h_job_result},
    {"GET", "/v1/jobs/{id}/auth", AUTH_DP, BODY_NONE, NULL, h_job_auth},
    {"DELETE", "/v1/jobs/{id}", AUTH_DP, BODY_NONE, NULL, h_job_delete},
    {"POST", "/v1/refine", AUTH_MP, BODY_BIN_FILE, NULL, h_refine_start},
    {"GET", "/v1/refine", AUTH_MP, BODY_NONE, NULL, h_refine_list},
    {"GET", "/v1/refine/{id}", AUTH_PARTY, BODY_NONE, NULL, h_refine_show},
    {"POST", "/v1/refine/{id}/stop", AUTH_MP, BODY_NONE, NULL, h_refine_stop},
    {"POST", "/v1/refine/{id}/resume", AUTH_MP, BODY_JSON, NULL, h_refine_resume},
    {"GET", "/v1/refine/{id}/checkpoint", AUTH_MP, BODY_NONE, NULL, h_refine_checkpoint},
    {"GET", "/v1/refine/{id}/weights", AUTH_MP, BODY_NONE, NULL, h_refine_weights},
    {"PUT", "/v1/refine/{id}/valset", AUTH_MP, BODY_BIN_FILE, NULL, h_refine_valset},
    {"POST", "/v1/refine/{id}/samples", AUTH_DP, BODY_BIN_FILE, h_refine_samples_pre, h_refine_samples},
};
#define NROUTES (sizeof ROUTES / sizeof ROUTES[0])

/* ---- responses ---------------------------------------------------------- */
void resp_json(srv_resp *r, int status, json_t *j) {
  free(r->body);
  r->body = NULL;
  r->len = 0;
  r->status = status;
  r->ctype = "application/json";
  char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!s) {
    r->status = 500;
    s = strdup("{\"error\":\"internal\",\"message\":\"cannot encode the response\"}");
  }
  if (s) {
    size_t n = strlen(s);
    r->body = (uint8_t *)s;
    s[n] = 0;
    r->len = n;
  }
}

void resp_error(srv_resp *r, int status, const char *code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  resp_json(r, status, json_pack("{ss ss}", "error", code, "message", msg));
}

void resp_status(srv_resp *r, int rc, const char *what) {
  int st = 400;
  const char *code = "bad_request";
  switch (rc) {
  case HETEE_ERR_NOT_FOUND: st = 404; code = "not_found"; break;
  case HETEE_ERR_AUTH: st = 403; code = "forbidden"; break;
  case HETEE_ERR_BAD_SIGNATURE: st = 401; code = "bad_signature"; break;
  case HETEE_ERR_REPLAY: st = 401; code = "replay"; break;
  case HETEE_ERR_STATE: st = 409; code = "conflict"; break;
  case HETEE_ERR_LIMIT: st = 413; code = "limit"; break;
  case HETEE_ERR_NOMEM: st = 503; code = "memory"; r->retry_after = SRV_RETRY_AFTER_S; break;
  case HETEE_ERR_IO: st = 503; code = "unavailable"; r->retry_after = SRV_RETRY_AFTER_S; break;
  case HETEE_ERR_INTERNAL: st = 500; code = "internal"; break;
  case HETEE_ERR_KEY_BINDING: st = 409; code = "key_binding"; break;
  case HETEE_ERR_CONTEXT: case HETEE_ERR_PARAMS: st = 400; code = "wrong_parameters"; break;
  default: break;
  }
  char msg[400];
  snprintf(msg, sizeof msg, "%s", hetee_last_error());
  resp_error(r, st, code, "%s: %s (%s)", what, msg, hetee_strerror(rc));
}

/* ---- matching ----------------------------------------------------------- */
/* Matches path against pattern; numeric {id} segments go to ids, {hex}
 * segments (32 hex digits) are checked and left in the path. */
static int match(const char *pattern, const char *path, int64_t ids[2], int *nids) {
  *nids = 0;
  while (*pattern && *path) {
    if (*pattern == '{') {
      const char *end = strchr(pattern, '}');
      size_t seg = strcspn(path, "/");
      if (!strncmp(pattern, "{id}", 4)) {
        if (seg < 1 || seg > 15 || *nids >= 2) return 0;
        int64_t v = 0;
        for (size_t i = 0; i < seg; i++) {
          if (path[i] < '0' || path[i] > '9') return 0;
          v = v * 10 + (path[i] - '0');
        }
        if (v < 1) return 0;
        ids[(*nids)++] = v;
      } else {
        if (seg != 32) return 0;
        for (size_t i = 0; i < seg; i++)
          if (!strchr("0123456789abcdef", path[i])) return 0;
      }
      pattern = end + 1;
      path += seg;
      continue;
    }
    if (*pattern != *path) return 0;
    pattern++;
    path++;
  }
  return !*pattern && !*path;
}

const route *routes_match(srv_req *q, srv_resp *r) {
  int path_found = 0;
  for (size_t i = 0; i < NROUTES; i++) {
    if (!match(ROUTES[i].pattern, q->path, q->ids, &q->nids)) continue;
    path_found = 1;
    if (!strcmp(ROUTES[i].method, q->method)) {
      q->rt = &ROUTES[i];
      q->body_kind = ROUTES[i].body;
      return q->rt;
    }
  }
  if (path_found) resp_error(r, 405, "method_not_allowed", "%s is not allowed on %s", q->method, q->path);
  else resp_error(r, 404, "not_found", "no endpoint %s", q->path);
  return NULL;
}

uint64_t routes_body_limit(srv_req *q) {
  switch (q->body_kind) {
  case BODY_JSON: return SRV_JSON_MAX;
  case BODY_BIN_MEM: return SRV_BIN_MEM_MAX;
  case BODY_BIN_FILE:
    return q->rt->fn == h_model_upload || q->rt->fn == h_refine_start ? q->S->o.max_model_bytes : q->S->o.max_input_bytes;
  default: return 0;
  }
}

static int ctype_is(const char *ct, const char *want) {
  if (!ct) return 0;
  size_t n = strlen(want);
  return !strncasecmp(ct, want, n) && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

int routes_begin(srv_req *q, srv_resp *r) {
  const route *rt = q->rt;
  const char *ct = req_header(q, "Content-Type");
  const char *cl = req_header(q, "Content-Length");
  uint64_t limit = routes_body_limit(q);
  if (cl) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(cl, &end, 10);
    if (*cl < '0' || *cl > '9' || *end || errno) {
      resp_error(r, 400, "bad_length", "Content-Length is not a number");
      return -1;
    }
    if (v > limit) {
      resp_error(r, 413, "too_large", "request body of %llu bytes above the %llu this endpoint accepts", v,
                 (unsigned long long)limit);
      return -1;
    }
  }
  if (rt->body == BODY_JSON && !ctype_is(ct, "application/json")) {
    resp_error(r, 415, "content_type", "this endpoint takes application/json");
    return -1;
  }
  if ((rt->body == BODY_BIN_MEM || rt->body == BODY_BIN_FILE) && !ctype_is(ct, "application/octet-stream")) {
    resp_error(r, 415, "content_type", "this endpoint takes application/octet-stream");
    return -1;
  }
  if (rt->auth == AUTH_NONE) return 0;
  int rc = reqsig_parse(req_header(q, REQSIG_H_KEY), req_header(q, REQSIG_H_TS), req_header(q, REQSIG_H_NONCE),
                        req_header(q, REQSIG_H_SIG), &q->sig);
  if (!rc) rc = reqsig_parse_auth(req_header(q, REQSIG_H_AUTH), &q->sig);
  if (!rc) rc = reqsig_check_time(&q->sig, reqsig_now_ms(), q->S->start_ms);
  /* v3: the MAC key shared with this party, for the body as it arrives */
  if (!rc && q->sig.v3) rc = reqkey_mac_key(q->S->rk, q->sig.key, q->mac_key);
  if (rc) {
    resp_error(r, 401, "unauthenticated", "%s", hetee_last_error());
    return -1;
  }
  reqsig_hex(q->sig.key, 32, q->party);
  if (rt->auth != AUTH_ANY) {
    /* the signature is checked after the body; registration and role now,
     * so that nobody uploads gigabytes under a key the server never saw */
    if (store_party_get(q->S->db, q->party, &q->role)) {
      resp_error(r, 403, "unregistered", "party %.16s... is not registered (POST /v1/parties)", q->party);
      return -1;
    }
    if ((rt->auth == AUTH_MP && q->role != ROLE_MP) || (rt->auth == AUTH_DP && q->role != ROLE_DP)) {
      resp_error(r, 403, "role", "this endpoint is for %s", rt->auth == AUTH_MP ? "model providers" : "data providers");
      return -1;
    }
  }
  if (rt->pre) return rt->pre(q, r);
  return 0;
}

void routes_finish(srv_req *q, srv_resp *r) {
  if (q->rt->auth != AUTH_NONE) {
    uint8_t xpk[32];
    reqkey_public(q->S->rk, xpk);
    int rc = q->sig.v3 ? reqsig_verify_v3(&q->sig, q->method, q->target, q->body_hash, xpk)
                       : reqsig_verify(&q->sig, q->method, q->target, q->body_hash);
    if (!rc) rc = replay_check(q->S->rp, q->sig.key, q->sig.nonce, q->sig.ts_ms, reqsig_now_ms());
    if (rc == HETEE_ERR_LIMIT) {
      resp_error(r, 503, "busy", "%s", hetee_last_error());
      r->retry_after = SRV_RETRY_AFTER_S;
      return;
    }
    if (rc) {
      resp_error(r, 401, rc == HETEE_ERR_REPLAY ? "replay" : "bad_signature", "%s", hetee_last_error());
      return;
    }
    q->authed = 1;
    metrics_signed(&q->S->m, q->sig.v3);
  }
  if (q->body_kind == BODY_JSON && q->len == 0) {
    resp_error(r, 400, "empty_body", "this endpoint needs a JSON body");
    return;
  }
  q->rt->fn(q, r);
}

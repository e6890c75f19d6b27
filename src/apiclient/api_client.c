/*
 * api_client.c — the parties' client of `hetee server` (hetee/api_client.h):
 * libcurl for HTTP, every request signed (service/reqsig.h), JSON with
 * jansson, attestation and sessions with hetee/client.h, encryption with
 * the engine's client side (hetee/engine.h).
 */
#include "hetee/api_client.h"
#include "apiclient/api_internal.h"

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "hemat/engine_internal.h"
#include "hetee/ckks.h"
#include "hetee/engine.h"
#include "hetee/nn.h"
#include "service/reqsig.h"

#define RESP_MAX (2ull << 30) /* largest response body accepted */
#define MAX_RETRIES 60        /* 429 / 503 answers retried after Retry-After */

/* A request's authentication computed ahead (hetee_client_job_prepare):
 * v2 the body's hash; v3 the whole signature, for this target, nonce and
 * timestamp, used by the first attempt to send it if still fresh. */
typedef struct pre_auth {
  int v3;
  int used; /* its nonce went out: any later attempt signs afresh */
  uint8_t body_hash[32]; /* v2 */
  uint8_t nonce[16], sig[64];
  uint64_t ts;
  char target[512];
} pre_auth;

#define PRE_FRESH_MS (120u * 1000u) /* of the server's 300 s window */

struct hetee_client_job {
  int64_t id;
  uint32_t model, micro_batch;
  size_t count;
  uint8_t release_pk[32]; /* the enclave's release key, from an attested session */
  hetee_job_auth auth; /* what we signed: the digest of each micro-batch */
};

struct hetee_client_conn {
  char url[512];
  CURL *curl;
  hetee_party_key *key;
  int role;
  uint8_t platform_pk[32], measurement[32];
  uint8_t *bundle;
  size_t bundle_len;
  hetee_ckks_context *ctx;
  hetee_ckks_public_key *pk;
  /* what this connection verified once and reuses (docs/api.md, "What a
   * client caches"): the bundle's fingerprint (checked against the
   * server's ETag before each job, re-attested when it changes), the
   * enclave's release key (derived from its sealing key: the same after
   * every restart) and the last model's plan */
  int verified;
  uint8_t bundle_fp[32];
  int have_release;
  uint8_t release_pk[32];
  int64_t plan_model;
  hetee_engine_plan *plan;
  const char *if_none_match; /* set around one request */
  /* progress (hetee_client_set_progress): the callback, and while a large
   * body is sent, the phase name and the bytes reported so far (monotone
   * over retries) */
  hetee_client_progress_fn progress;
  void *progress_ud;
  const char *up_phase;
  uint64_t up_done;
  pre_auth *pre; /* set around one call: its authentication, computed ahead */
  int pre_sent;  /* the last request() used pre's signature */
  /* v3 requests (service/reqsig.h): the server's request key, learnt from
   * its answer to POST /v1/parties, and the MAC key shared with it
   * (sodium_malloc'd; NULL: v2, e.g. a server that does not publish one,
   * or HETEE_CLIENT_AUTH=v2 in the environment) */
  uint8_t server_xpk[32];
  uint8_t *mac_key;
};

/* A job encrypted, witnessed and signed, not sent yet. */
struct hetee_client_prepared {
  int64_t model;
  uint8_t *body; /* input then witnesses */
  size_t len, wlen;
  pre_auth pre;         /* the request's authentication, computed when prepared */
  hetee_client_job job; /* filled but for the id */
};


static void progress(hetee_client_conn *c, const char *phase, uint64_t done, uint64_t total) {
  if (c->progress) c->progress(c->progress_ud, phase, done, total);
}

void hetee_client_set_progress(hetee_client_conn *c, hetee_client_progress_fn fn, void *ud) {
  if (!c) return;
  c->progress = fn;
  c->progress_ud = ud;
}

/* libcurl's transfer callback while a body is sent under c->up_phase:
 * bytes sent, never less than reported before (a retried request sends
 * the body again), never the final total (the caller reports that once
 * the server accepted it). */
static int on_xfer(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
  (void)dltotal;
  (void)dlnow;
  hetee_client_conn *c = ud;
  if (ultotal > 0 && ulnow > 0 && (uint64_t)ulnow > c->up_done && ulnow < ultotal) {
    c->up_done = (uint64_t)ulnow;
    progress(c, c->up_phase, c->up_done, (uint64_t)ultotal);
  }
  return 0;
}

/* ---- home --------------------------------------------------------------- */
int hetee_client_home_trust(const char *home, const char *platform_dir, const char *measurement_hex) {
  uint8_t ppk[32], m[32];
  int rc = hetee_platform_load_public(platform_dir, ppk);
  if (rc) return rc;
  if (hetee_hex_decode32(measurement_hex, m)) return hetee_error(HETEE_ERR_FORMAT, "the measurement is 64 hex digits");
  char p[1024], tmp[1100], hp[65], hm[65];
  snprintf(p, sizeof p, "%s/trust", home);
  snprintf(tmp, sizeof tmp, "%s.tmp", p);
  hetee_hex_encode32(ppk, hp);
  hetee_hex_encode32(m, hm);
  FILE *f = fopen(tmp, "w");
  if (!f) return hetee_error(HETEE_ERR_IO, "cannot write %s", tmp);
  fprintf(f, "platform %s\nmeasurement %s\n", hp, hm);
  int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, p) != 0) return hetee_error(HETEE_ERR_IO, "cannot write %s", p);
  return 0;
}

static int load_trust(hetee_client_conn *c, const char *home) {
  char p[1024], a[80], b[80], k1[32], k2[32];
  snprintf(p, sizeof p, "%s/trust", home);
  FILE *f = fopen(p, "r");
  if (!f) return hetee_error(HETEE_ERR_NOT_FOUND, "%s: no trust recorded (hetee keygen --trust-platform/--trust-measurement, or hetee trust)", p);
  int n = fscanf(f, "%31s %79s %31s %79s", k1, a, k2, b);
  fclose(f);
  if (n != 4 || strcmp(k1, "platform") || strcmp(k2, "measurement") || hetee_hex_decode32(a, c->platform_pk) ||
      hetee_hex_decode32(b, c->measurement))
    return hetee_error(HETEE_ERR_FORMAT, "%s: malformed trust file", p);
  return 0;
}

/* ---- HTTP --------------------------------------------------------------- */
typedef struct {
  uint8_t *p;
  size_t len;
  int over;
} rbuf;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud) {
  rbuf *b = ud;
  size_t n = size * nmemb;
  if (b->len + n > RESP_MAX) {
    b->over = 1;
    return 0;
  }
  uint8_t *q = realloc(b->p, b->len + n + 1);
  if (!q) return 0;
  memcpy(q + b->len, ptr, n);
  b->p = q;
  b->len += n;
  q[b->len] = 0;
  return n;
}

typedef struct {
  long retry_after;
} hdrs;

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud) {
  hdrs *h = ud;
  size_t n = size * nmemb;
  if (n > 12 && !strncasecmp(ptr, "Retry-After:", 12)) h->retry_after = strtol(ptr + 12, NULL, 10);
  return n;
}

static int request(hetee_client_conn *c, const char *method, const char *target, const char *ctype, const uint8_t *body,
                   size_t len, long *status, uint8_t **resp, size_t *rlen, long *retry_after) {
  uint8_t bh[32], nonce[16], key[32], d[32], sig[64];
  hetee_party_key_public(c->key, key);
  uint64_t ts = reqsig_now_ms();
  pre_auth *pa = c->pre;
  int rc = 0;
  c->pre_sent = 0;
  if (pa && !pa->used && pa->v3 == (c->mac_key != NULL) && pa->v3 && !strcmp(pa->target, target) &&
      pa->ts <= ts && ts - pa->ts < PRE_FRESH_MS) {
    /* signed in the preparation; its nonce is used now, once */
    memcpy(nonce, pa->nonce, 16);
    memcpy(sig, pa->sig, 64);
    ts = pa->ts;
    pa->used = 1;
    c->pre_sent = 1;
  } else {
    randombytes_buf(nonce, sizeof nonce);
    if (c->mac_key) {
      reqsig_body_tag(c->mac_key, nonce, ts, body, len, bh);
      reqsig_digest_v3(method, target, bh, ts, nonce, key, c->server_xpk, d);
    } else {
      if (pa && !pa->v3) memcpy(bh, pa->body_hash, 32);
      else reqsig_body_hash(body, len, bh);
      reqsig_digest(method, target, bh, ts, nonce, key, d);
    }
    rc = hetee_party_key_sign(c->key, d, sizeof d, sig);
    sodium_memzero(bh, sizeof bh);
    if (rc) return rc;
  }
  char hk[65], hn[33], hs[129], line[256], url[4096];
  reqsig_hex(key, 32, hk);
  reqsig_hex(nonce, 16, hn);
  reqsig_hex(sig, 64, hs);
  struct curl_slist *h = NULL;
  snprintf(line, sizeof line, "%s: %s", REQSIG_H_KEY, hk);
  h = curl_slist_append(h, line);
  snprintf(line, sizeof line, "%s: %llu", REQSIG_H_TS, (unsigned long long)ts);
  h = curl_slist_append(h, line);
  snprintf(line, sizeof line, "%s: %s", REQSIG_H_NONCE, hn);
  h = curl_slist_append(h, line);
  snprintf(line, sizeof line, "%s: %s", REQSIG_H_SIG, hs);
  h = curl_slist_append(h, line);
  if (c->mac_key) h = curl_slist_append(h, REQSIG_H_AUTH ": v3");
  h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
  if (c->if_none_match) {
    snprintf(line, sizeof line, "If-None-Match: %s", c->if_none_match);
    h = curl_slist_append(h, line);
  }
  if (ctype) {
    snprintf(line, sizeof line, "Content-Type: %s", ctype);
    h = curl_slist_append(h, line);
  }
  snprintf(url, sizeof url, "%s%s", c->url, target);
  rbuf b = {0};
  hdrs hd = {0};
  CURL *k = c->curl;
  curl_easy_reset(k);
  curl_easy_setopt(k, CURLOPT_URL, url);
  curl_easy_setopt(k, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(k, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(k, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(k, CURLOPT_HEADERDATA, &hd);
  curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(k, CURLOPT_CONNECTTIMEOUT, 10L);
  if (!strcmp(method, "GET")) {
    curl_easy_setopt(k, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(k, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(k, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
    curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    /* a large body (an encrypted input: 2.3 MB for 64 e2dm images) in
     * 1 MiB sends instead of curl's default 64 KiB: 5 instead of 37 send
     * calls and 18 instead of 81 polls per such upload, ~0.4 ms less CPU
     * (hetee-bench service; docs/api.md) */
    if (len > ((size_t)256 << 10)) curl_easy_setopt(k, CURLOPT_UPLOAD_BUFFERSIZE, 1L << 20);
    if (c->progress && c->up_phase && len) {
      curl_easy_setopt(k, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(k, CURLOPT_XFERINFOFUNCTION, on_xfer);
      curl_easy_setopt(k, CURLOPT_XFERINFODATA, c);
    }
  }
  CURLcode cr = curl_easy_perform(k);
  curl_slist_free_all(h);
  if (cr != CURLE_OK) {
    free(b.p);
    return hetee_error(HETEE_ERR_IO, "%s %s: %s", method, target, b.over ? "response too large" : curl_easy_strerror(cr));
  }
  curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, status);
  if (retry_after) *retry_after = hd.retry_after;
  if (resp) *resp = b.p;
  else free(b.p);
  if (rlen) *rlen = b.len;
  return 0;
}

int hetee_client_request(hetee_client_conn *c, const char *method, const char *target, const char *ctype,
                         const uint8_t *body, size_t len, long *status, uint8_t **resp, size_t *rlen) {
  if (!c || !method || !target || !status) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  return request(c, method, target, ctype, body, len, status, resp, rlen, NULL);
}

/* An HTTP error answer -> hetee status with the server's message. */
static int http_error(const char *what, long st, const uint8_t *body) {
  const char *msg = "";
  json_t *j = body ? json_loads((const char *)body, 0, NULL) : NULL;
  if (j) msg = json_string_value(json_object_get(j, "message"));
  int rc = st == 401 || st == 403 ? HETEE_ERR_AUTH
           : st == 404            ? HETEE_ERR_NOT_FOUND
           : st == 409            ? HETEE_ERR_STATE
           : st == 413 || st == 429 || st == 503 ? HETEE_ERR_LIMIT
           : st >= 500            ? HETEE_ERR_IO
                                  : HETEE_ERR_FORMAT;
  rc = hetee_error(rc, "%s: HTTP %ld: %s", what, st, msg ? msg : "");
  json_decref(j);
  return rc;
}

/* A request expecting `want` (or `also`, 0: none; *got, if not NULL, is
 * the status answered), retried after Retry-After on 429 / 503. */
static int api_call2(hetee_client_conn *c, const char *method, const char *target, const char *ctype,
                     const uint8_t *body, size_t len, long want, long also, long *got, uint8_t **resp, size_t *rlen) {
  for (int attempt = 0;; attempt++) {
    long st = 0, ra = 0;
    uint8_t *r = NULL;
    size_t n = 0;
    int rc = request(c, method, target, ctype, body, len, &st, &r, &n, &ra);
    if (rc) return rc;
    if (st == 401 && c->pre_sent && attempt == 0) {
      /* signed ahead and refused (e.g. a server started since): sign afresh */
      free(r);
      continue;
    }
    if (st == want || (also && st == also)) {
      if (got) *got = st;
      if (resp) *resp = r;
      else free(r);
      if (rlen) *rlen = n;
      return 0;
    }
    if ((st == 429 || st == 503) && attempt < MAX_RETRIES) {
      free(r);
      sleep((unsigned)(ra > 0 && ra < 60 ? ra : 1));
      continue;
    }
    char what[300];
    snprintf(what, sizeof what, "%s %s", method, target);
    rc = http_error(what, st, r);
    free(r);
    return rc;
  }
}

/* A request expecting `want`, retried after Retry-After on 429 / 503. */
int api_call(hetee_client_conn *c, const char *method, const char *target, const char *ctype, const uint8_t *body,
             size_t len, long want, uint8_t **resp, size_t *rlen) {
  return api_call2(c, method, target, ctype, body, len, want, 0, NULL, resp, rlen);
}

json_t *api_call_json(hetee_client_conn *c, const char *method, const char *target, json_t *in, long want, int *rc) {
  char *s = in ? json_dumps(in, JSON_COMPACT) : NULL;
  json_decref(in);
  uint8_t *r = NULL;
  *rc = api_call(c, method, target, s ? "application/json" : NULL, (const uint8_t *)s, s ? strlen(s) : 0, want, &r, NULL);
  free(s);
  if (*rc) return NULL;
  json_t *j = json_loads((const char *)r, 0, NULL);
  free(r);
  if (!j) *rc = hetee_error(HETEE_ERR_PROTOCOL, "%s %s: the server's answer is not JSON", method, target);
  return j;
}

/* ---- connection --------------------------------------------------------- */
int hetee_client_connect(const char *url, const char *home, hetee_client_conn **out) {
  if (!url || !home || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (sodium_init() < 0) return hetee_error(HETEE_ERR_CRYPTO, "libsodium");
  if (strlen(url) >= 512) return hetee_error(HETEE_ERR_INVALID_ARG, "server URL too long");
  static int curl_ready;
  if (!curl_ready) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl_ready = 1;
  }
  hetee_client_conn *c = calloc(1, sizeof *c);
  if (!c) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  snprintf(c->url, sizeof c->url, "%s", url);
  size_t ul = strlen(c->url);
  if (ul && c->url[ul - 1] == '/') c->url[ul - 1] = 0;
  char p[1024];
  snprintf(p, sizeof p, "%s/id", home);
  int rc = hetee_party_key_load(p, &c->key);
  if (!rc) rc = load_trust(c, home);
  if (!rc && !(c->curl = curl_easy_init())) rc = hetee_error(HETEE_ERR_NOMEM, "curl");
  if (!rc) {
    c->role = hetee_party_key_role(c->key);
    json_t *j = api_call_json(c, "POST", "/v1/parties", json_pack("{ss}", "role", c->role == HETEE_PARTY_MP ? "mp" : "dp"), 201, &rc);
    /* the server's request key: later requests are v3 (service/reqsig.h) */
    const char *rk = j ? json_string_value(json_object_get(j, "request_key")) : NULL;
    const char *force = getenv("HETEE_CLIENT_AUTH");
    if (!rc && rk && !(force && !strcmp(force, "v2"))) {
      if (reqsig_unhex(rk, c->server_xpk, 32)) rc = hetee_error(HETEE_ERR_PROTOCOL, "the server's \"request_key\" is not 64 hex digits");
      else if (!(c->mac_key = sodium_malloc(32))) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      else if (reqsig_v3_client_key(c->key->sk, c->server_xpk, c->mac_key)) {
        sodium_free(c->mac_key);
        c->mac_key = NULL;
        rc = hetee_error(HETEE_ERR_PROTOCOL, "the server's request key is not usable");
      }
    }
    json_decref(j);
  }
  if (rc) {
    hetee_client_disconnect(c);
    return rc;
  }
  *out = c;
  return 0;
}

void hetee_client_disconnect(hetee_client_conn *c) {
  if (!c) return;
  if (c->curl) curl_easy_cleanup(c->curl);
  if (c->mac_key) sodium_free(c->mac_key);
  hetee_party_key_free(c->key);
  free(c->bundle);
  hetee_ckks_public_key_free(c->pk);
  hetee_ckks_context_free(c->ctx);
  hetee_engine_plan_free(c->plan);
  free(c);
}

static int unhex_json(json_t *j, const char *key, uint8_t **out, size_t *n, size_t max) {
  const char *h = json_string_value(json_object_get(j, key));
  size_t l = h ? strlen(h) : 0;
  if (!l || l % 2 || l / 2 > max) return hetee_error(HETEE_ERR_PROTOCOL, "\"%s\" missing or malformed", key);
  *out = malloc(l / 2);
  if (!*out) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (reqsig_unhex(h, *out, l / 2)) {
    free(*out);
    return hetee_error(HETEE_ERR_PROTOCOL, "\"%s\" is not hex", key);
  }
  *n = l / 2;
  return 0;
}

int hetee_client_attest(hetee_client_conn *c, hetee_verified_enclave *v) {
  uint8_t *bundle = NULL, nonce[32], *ev = NULL, *ch = NULL;
  size_t blen = 0, evlen = 0, chl = 0;
  int rc = api_call(c, "GET", "/v1/enclave/bundle", NULL, NULL, 0, 200, &bundle, &blen);
  if (rc) return rc;
  randombytes_buf(nonce, sizeof nonce);
  char nh[65];
  reqsig_hex(nonce, 32, nh);
  json_t *j = api_call_json(c, "POST", "/v1/enclave/evidence", json_pack("{ss}", "nonce", nh), 200, &rc);
  if (!rc) rc = unhex_json(j, "evidence", &ev, &evlen, 4096);
  if (!rc) rc = unhex_json(j, "channel_pk", &ch, &chl, 32);
  if (!rc && chl != 32) rc = hetee_error(HETEE_ERR_PROTOCOL, "channel key size");
  json_decref(j);
  hetee_verified_enclave local;
  if (!rc)
    rc = hetee_client_verify_evidence(ev, evlen, c->platform_pk, c->measurement, bundle, blen, ch, nonce, v ? v : &local);
  free(ev);
  free(ch);
  if (rc) {
    free(bundle);
    return rc;
  }
  /* the verified bundle is what we encrypt under from now on */
  const uint8_t *it;
  size_t il;
  hetee_ckks_context *ctx = NULL;
  hetee_ckks_public_key *pk = NULL;
  rc = hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PARAMS, &it, &il);
  if (!rc) rc = hetee_ckks_context_load(it, il, &ctx);
  if (!rc) rc = hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PUBLIC_KEY, &it, &il);
  if (!rc) rc = hetee_ckks_public_key_load(ctx, it, il, &pk);
  if (rc) {
    hetee_ckks_context_free(ctx);
    free(bundle);
    return rc;
  }
  uint8_t fp[32];
  hetee_key_bundle_fingerprint(bundle, blen, fp);
  if (c->verified && memcmp(fp, c->bundle_fp, 32)) c->have_release = 0; /* another enclave state: ask again */
  free(c->bundle);
  hetee_ckks_public_key_free(c->pk);
  hetee_ckks_context_free(c->ctx);
  c->bundle = bundle;
  c->bundle_len = blen;
  c->ctx = ctx;
  c->pk = pk;
  memcpy(c->bundle_fp, fp, 32);
  c->verified = 1;
  return 0;
}

/* The verified bundle, attested once per connection: later calls only ask
 * the server whether its bundle is still the one verified (GET
 * /v1/enclave/bundle with If-None-Match: its fingerprint; 304 = unchanged,
 * no body, no enclave call) and attest afresh when it is not. */
static int ensure_attested(hetee_client_conn *c) {
  if (!c->verified) return hetee_client_attest(c, NULL);
  char etag[72], fh[65];
  reqsig_hex(c->bundle_fp, 32, fh);
  snprintf(etag, sizeof etag, "\"%s\"", fh);
  long st = 0;
  c->if_none_match = etag;
  int rc = request(c, "GET", "/v1/enclave/bundle", NULL, NULL, 0, &st, NULL, NULL, NULL);
  c->if_none_match = NULL;
  if (rc) return rc;
  return st == 304 ? 0 : hetee_client_attest(c, NULL);
}

/* For api_refine.c: the attested bundle's keys, the identity and the URL. */
int api_conn_keys(hetee_client_conn *c, const hetee_ckks_context **ctx, const hetee_ckks_public_key **pk,
                  const hetee_party_key **key, const char **url) {
  int rc = ensure_attested(c);
  if (!rc) *ctx = c->ctx, *pk = c->pk, *key = c->key, *url = c->url;
  return rc;
}

int hetee_client_session_open_remote(hetee_client_conn *c, hetee_client_session **s, char sid[33]) {
  hetee_verified_enclave v;
  int rc = hetee_client_attest(c, &v);
  if (rc) return rc;
  uint8_t *hs = NULL, *r = NULL;
  size_t hl = 0, rl = 0;
  hetee_client_session *ss = NULL;
  rc = hetee_client_session_new(c->key, &v, &ss, &hs, &hl);
  uint8_t *resp = NULL;
  if (!rc) rc = api_call(c, "POST", "/v1/sessions", "application/octet-stream", hs, hl, 201, &resp, NULL);
  free(hs);
  json_t *j = NULL;
  if (!rc && !(j = json_loads((const char *)resp, 0, NULL))) rc = hetee_error(HETEE_ERR_PROTOCOL, "session answer");
  free(resp);
  const char *id = rc ? NULL : json_string_value(json_object_get(j, "session"));
  if (!rc && (!id || strlen(id) != 32)) rc = hetee_error(HETEE_ERR_PROTOCOL, "session id");
  if (!rc) rc = unhex_json(j, "reply", &r, &rl, 4096);
  if (!rc) rc = hetee_client_session_finish(ss, r, rl);
  if (!rc) {
    /* the id the server reports must be the session's own */
    uint8_t mine[16];
    char mh[33];
    hetee_client_session_id(ss, mine);
    reqsig_hex(mine, 16, mh);
    if (strcmp(mh, id)) rc = hetee_error(HETEE_ERR_PROTOCOL, "the server reports another session id");
    else snprintf(sid, 33, "%s", mh);
  }
  free(r);
  json_decref(j);
  if (rc) {
    hetee_client_session_free(ss);
    return rc;
  }
  *s = ss;
  return 0;
}

/* ---- model provider ----------------------------------------------------- */
/* A session command sealed in s, as hex (*out malloc'd). */
static int seal_hex(hetee_client_session *s, const uint8_t *msg, size_t len, char **out) {
  uint8_t *sealed = NULL;
  size_t sl = 0;
  int rc = hetee_client_session_seal(s, msg, len, &sealed, &sl);
  if (rc) return rc;
  *out = malloc(2 * sl + 1);
  if (*out) reqsig_hex(sealed, sl, *out);
  free(sealed);
  return *out ? 0 : hetee_error(HETEE_ERR_NOMEM, "no memory");
}

static void model_progress(void *ud, size_t done, size_t total) { progress(ud, "encrypt", done, total); }

/* api_call() of a large body, its bytes reported as the "upload" phase. */
static int call_upload(hetee_client_conn *c, const char *method, const char *target, const uint8_t *body, size_t len,
                       long want, uint8_t **resp) {
  c->up_phase = "upload";
  c->up_done = 0;
  progress(c, "upload", 0, len);
  int rc = api_call(c, method, target, "application/octet-stream", body, len, want, resp, NULL);
  c->up_phase = NULL;
  if (!rc) progress(c, "upload", len, len);
  return rc;
}

int hetee_client_model_upload(hetee_client_conn *c, const char *onnx_path, const hetee_client_model_options *o,
                              int64_t *model_id) {
  if (!c || !onnx_path || !o || !model_id || !o->ndps || !o->dps) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  const char *out = o->output ? o->output : "label";
  int kind = !strcmp(out, "label") ? HETEE_RELEASE_ARGMAX
             : !strcmp(out, "probs") ? HETEE_RELEASE_SOFTMAX
             : !strcmp(out, "logits") ? HETEE_RELEASE_VALUES
             : !strcmp(out, "topk")   ? HETEE_RELEASE_TOPK
                                      : 0;
  if (!kind || (kind == HETEE_RELEASE_TOPK && o->k < 1))
    return hetee_error(HETEE_ERR_INVALID_ARG, "output must be label, probs, logits or topk (with k >= 1)");
  int prec = kind == HETEE_RELEASE_SOFTMAX || kind == HETEE_RELEASE_VALUES ? (o->precision ? o->precision : 16) : 0;
  int rc = hetee_client_attest(c, NULL);
  if (rc) return rc;
  hetee_nn_model *m = NULL;
  hetee_engine_plan *plan = NULL;
  hetee_engine_model *em = NULL;
  uint8_t *buf = NULL;
  size_t len = 0;
  rc = hetee_nn_model_load(onnx_path, &m);
  hetee_engine_plan_options po = {.batch = o->batch ? o->batch : 64};
  double iscale = o->input_scale > 0 ? o->input_scale : m ? hetee_nn_model_input_scale(m) : 1.0;
  if (!rc) rc = hetee_engine_plan_build(m, &po, &plan);
  if (!rc) {
    progress(c, "encrypt", 0, hetee_engine_plan_num_stages(plan));
    rc = client_model_encrypt_progress(c->ctx, c->pk, m, plan, model_progress, c, &em);
  }
  if (!rc) rc = hetee_engine_model_save(em, &buf, &len);
  /* the registration binds exactly these bytes (plan + every ciphertext) */
  uint8_t *regmsg = NULL;
  size_t reglen = 0;
  if (!rc) rc = hetee_client_msg_model_register(0, em, &regmsg, &reglen);
  hetee_engine_model_free(em);
  hetee_engine_plan_free(plan);
  hetee_nn_model_free(m);
  if (rc) return rc;
  char target[256];
  snprintf(target, sizeof target, "/v1/models?name=%s&input_scale=%.17g", o->name ? o->name : "model", iscale);
  json_t *j = NULL;
  uint8_t *resp = NULL;
  rc = call_upload(c, "POST", target, buf, len, 201, &resp);
  free(buf);
  if (!rc && !(j = json_loads((const char *)resp, 0, NULL))) rc = hetee_error(HETEE_ERR_PROTOCOL, "upload answer");
  free(resp);
  int64_t id = rc ? 0 : (int64_t)json_integer_value(json_object_get(j, "id"));
  json_decref(j);
  if (!rc && id < 1) rc = hetee_error(HETEE_ERR_PROTOCOL, "no model id in the answer");
  if (rc) {
    free(regmsg);
    return rc;
  }
  /* the release policy, set in the enclave through our own session */
  hetee_client_session *s = NULL;
  char sid[33];
  uint8_t *msg = NULL, *sealed = NULL, *rep = NULL, *plain = NULL;
  size_t ml = 0, sl = 0, rl = 0, pl = 0;
  rc = hetee_client_session_open_remote(c, &s, sid);
  if (!rc) rc = hetee_client_msg_policy_dps((uint32_t)id, kind, o->k, prec, o->dps, o->ndps, &msg, &ml);
  if (!rc) rc = hetee_client_session_seal(s, msg, ml, &sealed, &sl);
  free(msg);
  msg = NULL;
  /* then, in the same session, the registration (u16 3 | u32 model |
   * digest) and, when every DP has a budget, the enclave's per-DP query
   * budget (the largest: the server keeps the finer per-DP quota) */
  char *regh = NULL, *budh = NULL;
  if (!rc) {
    /* u16 3 | u32 model | digest: the id is the server's, known only now */
    for (int b = 0; b < 4; b++) regmsg[2 + b] = (uint8_t)((uint32_t)id >> (8 * b));
    rc = reglen == 38 ? seal_hex(s, regmsg, reglen, &regh) : hetee_error(HETEE_ERR_INTERNAL, "registration size");
  }
  free(regmsg);
  int64_t maxb = -1;
  for (size_t i = 0; o->budgets && i < o->ndps; i++) {
    if (o->budgets[i] < 0) {
      maxb = -1;
      break;
    }
    if (o->budgets[i] > maxb) maxb = o->budgets[i];
  }
  if (!rc && maxb > 0) {
    rc = hetee_client_msg_query_budget((uint32_t)id, (uint64_t)maxb, &msg, &ml);
    if (!rc) rc = seal_hex(s, msg, ml, &budh);
    free(msg);
  }
  json_t *allow = json_array();
  for (size_t i = 0; i < o->ndps; i++) {
    char h[65];
    reqsig_hex(o->dps[i], 32, h);
    json_array_append_new(allow, json_pack("{ss sI}", "dp", h, "budget", (json_int_t)(o->budgets ? o->budgets[i] : -1)));
  }
  char *sh = sealed ? malloc(2 * sl + 1) : NULL;
  if (sh) reqsig_hex(sealed, sl, sh);
  free(sealed);
  snprintf(target, sizeof target, "/v1/models/%lld/policy", (long long)id);
  j = NULL;
  if (!rc && !sh) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc) {
    json_t *body = json_pack("{ss ss ss si si so ss}", "session", sid, "sealed", sh, "output", out, "k", o->k,
                             "precision", prec, "allow", allow, "register", regh);
    if (budh) json_object_set_new(body, "budget_msg", json_string(budh));
    j = api_call_json(c, "PUT", target, body, 200, &rc);
  } else {
    json_decref(allow);
  }
  free(sh);
  free(regh);
  /* the enclave's own acknowledgements, in order */
  static const char *const keys[3] = {"reply", "register_reply", "budget_reply"};
  for (int i = 0; i < (budh ? 3 : 2) && !rc; i++) {
    rc = unhex_json(j, keys[i], &rep, &rl, 4096);
    if (!rc) rc = hetee_client_session_open(s, rep, rl, &plain, &pl);
    free(rep);
    free(plain);
    rep = plain = NULL;
  }
  free(budh);
  json_decref(j);
  hetee_client_session_free(s);
  if (rc) return rc;
  *model_id = id;
  return 0;
}

/* ---- data provider ------------------------------------------------------ */
int64_t hetee_client_job_id(const hetee_client_job *j) { return j ? j->id : 0; }

void hetee_client_job_free(hetee_client_job *j) { free(j); }

/* The enclave's release key, asked once per verified bundle through a
 * fresh attested session. */
static int release_key(hetee_client_conn *c, uint8_t pk[32]) {
  if (c->have_release) {
    memcpy(pk, c->release_pk, 32);
    return 0;
  }
  hetee_client_session *s = NULL;
  char sid[33], target[128];
  uint8_t *msg = NULL, *rep = NULL, *plain = NULL;
  size_t ml = 0, rl = 0, pl = 0;
  int rc = hetee_client_session_open_remote(c, &s, sid);
  if (!rc) rc = hetee_client_msg_release_key(&msg, &ml);
  uint8_t *sealed = NULL;
  size_t sl = 0;
  if (!rc) rc = hetee_client_session_seal(s, msg, ml, &sealed, &sl);
  free(msg);
  snprintf(target, sizeof target, "/v1/sessions/%s/messages", sid);
  if (!rc) rc = api_call(c, "POST", target, "application/octet-stream", sealed, sl, 200, &rep, &rl);
  free(sealed);
  if (!rc) rc = hetee_client_session_open(s, rep, rl, &plain, &pl);
  if (!rc) rc = hetee_client_release_key_parse(plain, pl, pk);
  if (!rc) {
    memcpy(c->release_pk, pk, 32);
    c->have_release = 1;
  }
  free(rep);
  free(plain);
  hetee_client_session_free(s);
  return rc;
}

int api_release_key(hetee_client_conn *c, uint8_t pk[32]) { return release_key(c, pk); }

/* Model id's plan from the server, kept for the next job of the same model
 * (the plan is public; the enclave checks every job against the plan the
 * model provider registered). */
static int job_plan(hetee_client_conn *c, int64_t model_id, const hetee_engine_plan **out) {
  if (c->plan && c->plan_model == model_id) {
    *out = c->plan;
    return 0;
  }
  char target[128];
  snprintf(target, sizeof target, "/v1/models/%lld/plan", (long long)model_id);
  uint8_t *pb = NULL;
  size_t pl = 0;
  hetee_engine_plan *plan = NULL;
  int rc = api_call(c, "GET", target, NULL, NULL, 0, 200, &pb, &pl);
  if (!rc) rc = engine_plan_load(pb, pl, &plan);
  free(pb);
  if (rc) return rc;
  hetee_engine_plan_free(c->plan);
  c->plan = plan;
  c->plan_model = model_id;
  *out = plan;
  return 0;
}

/* hetee_engine_input_encrypt micro-batch by micro-batch ("encrypt" progress
 * after each), the ciphertexts moved into one input of `count` samples:
 * the same ciphertexts, in the same order, as one call would make. */
static int encrypt_input(hetee_client_conn *c, const hetee_engine_plan *plan, const float *x, size_t count,
                         hetee_engine_input **out) {
  size_t mb = hetee_engine_plan_micro_batch(plan), nmb = (count + mb - 1) / mb, total = 0;
  int rc = count >= 1 && count <= HETEE_ENGINE_MAX_IMAGES && mb ? engine_input_cts(plan, count, &total)
                                                                 : hetee_error(HETEE_ERR_INVALID_ARG, "%zu samples", count);
  if (rc) return rc;
  hetee_engine_input *in = calloc(1, sizeof *in);
  if (in) in->cts = calloc(total ? total : 1, sizeof *in->cts);
  if (!in || !in->cts) {
    hetee_engine_input_free(in);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  in->ctx = c->ctx;
  in->count = count;
  in->micro_batch = (uint32_t)mb;
  progress(c, "encrypt", 0, nmb);
  for (size_t k = 0; k < nmb && !rc; k++) {
    size_t bk = count - k * mb < mb ? count - k * mb : mb;
    hetee_engine_input *part = NULL;
    rc = hetee_engine_input_encrypt(c->ctx, c->pk, plan, x + k * mb * hetee_engine_plan_input_size(plan), bk, &part);
    if (!rc && in->ncts + part->ncts > total) rc = hetee_error(HETEE_ERR_INTERNAL, "input ciphertext count");
    if (!rc) {
      memcpy(in->cts + in->ncts, part->cts, part->ncts * sizeof *part->cts);
      in->ncts += part->ncts;
      part->ncts = 0; /* moved */
      progress(c, "encrypt", k + 1, nmb);
    }
    hetee_engine_input_free(part);
  }
  if (!rc && in->ncts != total) rc = hetee_error(HETEE_ERR_INTERNAL, "input ciphertext count");
  if (rc) {
    hetee_engine_input_free(in);
    return rc;
  }
  *out = in;
  return 0;
}

void hetee_client_prepared_free(hetee_client_prepared *p) {
  if (!p) return;
  if (p->body) sodium_memzero(p->body + (p->len - p->wlen), p->wlen);
  free(p->body);
  free(p);
}

/* The submission's target: model, the job authorization's nonce and
 * signature, the witnesses' size. */
static void job_target(const hetee_client_prepared *p, char target[512]) {
  char hn[33], hs[129];
  reqsig_hex(p->job.auth.nonce, 16, hn);
  reqsig_hex(p->job.auth.sig, 64, hs);
  snprintf(target, 512, "/v1/jobs?model=%lld&nonce=%s&auth=%s&witness=%zu", (long long)p->model, hn, hs, p->wlen);
}

int hetee_client_job_prepare(hetee_client_conn *c, int64_t model_id, const float *x, size_t count,
                             hetee_client_prepared **out) {
  if (!c || !x || !count || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  int rc = ensure_attested(c);
  if (rc) return rc;
  uint8_t *buf = NULL;
  size_t len = 0;
  const hetee_engine_plan *plan = NULL;
  hetee_engine_input *in = NULL;
  hetee_client_prepared *p = calloc(1, sizeof *p);
  if (!p) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  hetee_client_job *j = &p->job;
  rc = job_plan(c, model_id, &plan);
  /* results will come sealed from the enclave's release key, learnt
   * through an attested session (once per verified bundle); the input
   * witnesses are sealed to it too */
  if (!rc) rc = release_key(c, j->release_pk);
  if (!rc) rc = encrypt_input(c, plan, x, count, &in);
  if (!rc) rc = hetee_engine_input_save(in, &buf, &len);
  hetee_engine_input_free(in);
  /* each micro-batch's values sealed to the enclave as its witness, and
   * the detached authorization of exactly these witnesses, for this model,
   * under a fresh job nonce: the server stores both and the enclave checks
   * them whenever it runs the job (also after a restart); it starts the
   * job from the witnesses and never hashes or decrypts the ciphertexts */
  hetee_engine_witnesses w = {0};
  uint8_t *wb = NULL;
  size_t wl = 0;
  if (!rc) rc = hetee_engine_witnesses_make(plan, (uint32_t)model_id, j->release_pk, x, count, &w);
  if (!rc) rc = hetee_job_auth_witness_digests(&j->auth, (uint32_t)model_id, &w);
  if (!rc) rc = hetee_engine_witnesses_save(&w, (uint32_t)model_id, &wb, &wl);
  hetee_engine_witnesses_clear(&w);
  if (!rc) {
    uint8_t *both = realloc(buf, len + wl);
    if (both) {
      buf = both;
      memcpy(buf + len, wb, wl);
      len += wl;
    } else {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    }
  }
  if (wb) sodium_memzero(wb, wl);
  free(wb);
  if (!rc) {
    randombytes_buf(j->auth.nonce, sizeof j->auth.nonce);
    rc = hetee_job_auth_sign(&j->auth, c->key);
  }
  if (rc) {
    free(buf);
    free(p);
    return rc;
  }
  j->micro_batch = hetee_engine_plan_micro_batch(plan);
  j->model = (uint32_t)model_id;
  j->count = count;
  p->model = model_id;
  p->body = buf;
  p->len = len;
  p->wlen = wl;
  /* the request's authentication ahead of the send: v2 the body's hash; v3
   * the whole signature (nonce, timestamp, the body's tag) for its target */
  pre_auth *pa = &p->pre;
  job_target(p, pa->target);
  if (c->mac_key) {
    uint8_t key[32], tag[32], d[32];
    pa->v3 = 1;
    randombytes_buf(pa->nonce, sizeof pa->nonce);
    pa->ts = reqsig_now_ms();
    hetee_party_key_public(c->key, key);
    reqsig_body_tag(c->mac_key, pa->nonce, pa->ts, buf, len, tag);
    reqsig_digest_v3("POST", pa->target, tag, pa->ts, pa->nonce, key, c->server_xpk, d);
    rc = hetee_party_key_sign(c->key, d, sizeof d, pa->sig);
    if (rc) {
      hetee_client_prepared_free(p);
      return rc;
    }
  } else {
    reqsig_body_hash(buf, len, pa->body_hash);
  }
  *out = p;
  return 0;
}

int hetee_client_job_send(hetee_client_conn *c, const hetee_client_prepared *p, hetee_client_job **out) {
  if (!c || !p || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  hetee_client_job *j = malloc(sizeof *j);
  if (!j) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  *j = p->job;
  char target[512];
  job_target(p, target);
  uint8_t *resp = NULL;
  /* the preparation's signature goes out once (a prepared job sent again
   * signs afresh): the struct is the caller's, allocated writable */
  c->pre = (pre_auth *)&p->pre;
  int rc = call_upload(c, "POST", target, p->body, p->len, 202, &resp);
  c->pre = NULL;
  json_t *a = rc ? NULL : json_loads((const char *)resp, 0, NULL);
  free(resp);
  if (!rc) j->id = (int64_t)json_integer_value(json_object_get(a, "id"));
  json_decref(a);
  if (!rc && j->id < 1) rc = hetee_error(HETEE_ERR_PROTOCOL, "no job id in the answer");
  if (rc) {
    hetee_client_job_free(j);
    return rc;
  }
  *out = j;
  return 0;
}

int hetee_client_job_submit(hetee_client_conn *c, int64_t model_id, const float *x, size_t count, hetee_client_job **out) {
  hetee_client_prepared *p = NULL;
  int rc = hetee_client_job_prepare(c, model_id, x, count, &p);
  if (!rc) rc = hetee_client_job_send(c, p, out);
  hetee_client_prepared_free(p);
  return rc;
}

int hetee_client_job_attach(hetee_client_conn *c, int64_t job_id, hetee_client_job **out) {
  if (!c || !out || job_id < 1) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  char target[128];
  snprintf(target, sizeof target, "/v1/jobs/%lld", (long long)job_id);
  int rc;
  json_t *a = api_call_json(c, "GET", target, NULL, 200, &rc);
  if (rc) return rc;
  int64_t model = (int64_t)json_integer_value(json_object_get(a, "model"));
  int64_t count = (int64_t)json_integer_value(json_object_get(a, "count"));
  json_decref(a);
  if (model < 1 || count < 1) return hetee_error(HETEE_ERR_PROTOCOL, "job %lld: no model or count", (long long)job_id);
  snprintf(target, sizeof target, "/v1/models/%lld", (long long)model);
  a = api_call_json(c, "GET", target, NULL, 200, &rc);
  if (rc) return rc;
  int64_t mb = (int64_t)json_integer_value(json_object_get(a, "micro_batch"));
  json_decref(a);
  hetee_client_job *j = calloc(1, sizeof *j);
  if (!j) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  uint8_t *b = NULL, me[32];
  size_t len = 0;
  snprintf(target, sizeof target, "/v1/jobs/%lld/auth", (long long)job_id);
  rc = api_call(c, "GET", target, NULL, NULL, 0, 200, &b, &len);
  if (!rc) rc = hetee_job_auth_decode(b, len, &j->auth);
  free(b);
  /* the server's copy is trusted only as far as it is our own signature
   * over this job's model and micro-batches */
  hetee_party_key_public(c->key, me);
  if (!rc && (memcmp(j->auth.dp, me, 32) || j->auth.model != (uint32_t)model))
    rc = hetee_error(HETEE_ERR_AUTH, "job %lld: the stored authorization is not ours for model %lld", (long long)job_id,
                     (long long)model);
  if (!rc) rc = hetee_job_auth_verify(&j->auth);
  size_t nmb = mb > 0 ? ((size_t)count + (size_t)mb - 1) / (size_t)mb : 0;
  if (!rc && (mb < 1 || nmb != j->auth.n))
    rc = hetee_error(HETEE_ERR_PROTOCOL, "job %lld: %lld images at micro-batch %lld, %u authorized micro-batches",
                     (long long)job_id, (long long)count, (long long)mb, j->auth.n);
  if (!rc) rc = ensure_attested(c);
  if (!rc) rc = release_key(c, j->release_pk);
  if (rc) {
    free(j);
    return rc;
  }
  j->id = job_id;
  j->model = (uint32_t)model;
  j->micro_batch = (uint32_t)mb;
  j->count = (size_t)count;
  *out = j;
  return 0;
}

int hetee_client_job_wait(hetee_client_conn *c, hetee_client_job *j) {
  char target[128];
  unsigned delay_ms = 50;
  uint64_t wait_total = 0, wait_done = 0, run_total = 0, run_done = 0;
  int wait_seen = 0, asked = 0, run_seen = 0;
  for (;;) {
    /* a long poll: the server answers when the job finishes (or after 5 s);
     * with a progress callback the first question does not wait, so that
     * the job's place in the queue is reported at once, and the later ones
     * also return when the job's run has progressed past what was seen */
    if (c->progress && asked)
      snprintf(target, sizeof target, "/v1/jobs/%lld?wait=5&progress=%llu", (long long)j->id,
               (unsigned long long)run_done);
    else
      snprintf(target, sizeof target, "/v1/jobs/%lld?wait=%d", (long long)j->id, c->progress && !asked ? 0 : 5);
    int quick = c->progress && !asked;
    asked = 1;
    int rc;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    json_t *a = api_call_json(c, "GET", target, NULL, 200, &rc);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc) return rc;
    const char *st = json_string_value(json_object_get(a, "state"));
    /* progress inside the run: the engine's steps (stages x micro-batches)
     * done of total, as the server reports them (never backwards here) */
    json_t *pg = json_object_get(a, "progress");
    json_int_t pgd = json_integer_value(json_object_get(pg, "done")), pgt = json_integer_value(json_object_get(pg, "total"));
    int took_prog = 0;
    if (json_is_object(pg) && pgt > 0 && pgd >= 0 && pgd <= pgt && (!run_total || (uint64_t)pgt == run_total)) {
      took_prog = !run_seen || (uint64_t)pgd > run_done;
      run_total = (uint64_t)pgt;
      if ((uint64_t)pgd > run_done) run_done = (uint64_t)pgd;
    }
    if (st && !strcmp(st, "done")) {
      json_decref(a);
      progress(c, "wait", wait_total ? wait_total : 1, wait_total ? wait_total : 1);
      if (run_total) progress(c, "run", run_total, run_total);
      return 0;
    }
    if (took_prog && st && !strcmp(st, "running")) {
      run_seen = 1;
      progress(c, "run", run_done, run_total);
    }
    /* progress: the jobs ahead of ours when first seen, plus ours; done
     * the ones that left the queue since (never reported backwards) */
    json_t *qp = json_object_get(a, "queue_position");
    if (st && json_is_integer(qp) && json_integer_value(qp) >= 0) {
      uint64_t ahead = (uint64_t)json_integer_value(qp);
      if (!wait_total) wait_total = ahead + 1;
      if (ahead + 1 > wait_total) ahead = wait_total - 1;
      uint64_t d = wait_total - 1 - ahead;
      if (d > wait_done || !wait_seen) {
        wait_done = d;
        wait_seen = 1;
        progress(c, "wait", wait_done, wait_total);
      }
    }
    if (!st || !strcmp(st, "failed")) {
      const char *e = json_string_value(json_object_get(a, "error"));
      rc = hetee_error(HETEE_ERR_STATE, "job %lld failed: %s", (long long)j->id, e ? e : "?");
      json_decref(a);
      return rc;
    }
    json_decref(a);
    /* a server that answered at once with an unfinished job did not wait
     * (a restart, or one without long polls): sleep before asking again */
    double took = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (took < 1.0 && !quick && !took_prog) {
      usleep(delay_ms * 1000);
      if (delay_ms < 500) delay_ms *= 2;
    }
  }
}

void hetee_client_results_free(hetee_release_result *r, size_t n) {
  if (!r) return;
  for (size_t i = 0; i < n; i++) hetee_release_result_clear(&r[i]);
  free(r);
}

/* Opens the result file b (len bytes, freed here) of job j. */
static int open_results(hetee_client_conn *c, hetee_client_job *j, uint8_t *b, size_t len, hetee_release_result **out,
                        size_t *n) {
  int rc = 0;
  if (len < 8 || memcmp(b, "HTRS", 4)) {
    free(b);
    return hetee_error(HETEE_ERR_FORMAT, "result file malformed");
  }
  uint32_t cnt = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
  if (cnt > HETEE_ENGINE_MAX_IMAGES || cnt > (len - 8) / 4) {
    free(b);
    return hetee_error(HETEE_ERR_FORMAT, "result count %u", cnt);
  }
  hetee_release_result *r = calloc(cnt ? cnt : 1, sizeof *r);
  if (!r) {
    free(b);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  /* one X25519 agreement for the whole job, then each result opened with it */
  uint8_t *shared = sodium_malloc(crypto_box_BEFORENMBYTES);
  if (!shared) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (!rc && (rc = client_release_beforenm(c->key, j->release_pk, shared)) == HETEE_ERR_AUTH)
    rc = hetee_error(HETEE_ERR_AUTH, "the results are not sealed to this data provider by the enclave's release key");
  size_t off = 8;
  for (uint32_t i = 0; i < cnt && !rc; i++) {
    if (len - off < 4) {
      rc = hetee_error(HETEE_ERR_TRUNCATED, "result %u", i);
      break;
    }
    uint32_t l = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 | (uint32_t)b[off + 2] << 16 | (uint32_t)b[off + 3] << 24;
    off += 4;
    if (l > len - off) {
      rc = hetee_error(HETEE_ERR_TRUNCATED, "result %u", i);
      break;
    }
    size_t mb = j->micro_batch ? j->micro_batch : 1, k = i / mb;
    if (cnt != j->count || k >= j->auth.n) {
      rc = hetee_error(HETEE_ERR_FORMAT, "%u results for %zu samples", cnt, j->count);
      break;
    }
    rc = client_release_open_id_afternm(shared, j->model, j->auth.digest[k], (uint32_t)(i % mb), b + off, l, &r[i]);
    off += l;
    if (!rc) progress(c, "open", i + 1, cnt);
  }
  if (shared) sodium_free(shared);
  if (rc == HETEE_ERR_AUTH) c->have_release = 0; /* the next job asks the enclave for its release key again */
  free(b);
  if (rc) {
    hetee_client_results_free(r, cnt);
    return rc;
  }
  *out = r;
  *n = cnt;
  return 0;
}

int hetee_client_job_results(hetee_client_conn *c, hetee_client_job *j, hetee_release_result **out, size_t *n) {
  if (!c || !j || !out || !n) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  char target[128];
  snprintf(target, sizeof target, "/v1/jobs/%lld/result", (long long)j->id);
  uint8_t *b = NULL;
  size_t len = 0;
  int rc = api_call(c, "GET", target, NULL, NULL, 0, 200, &b, &len);
  return rc ? rc : open_results(c, j, b, len, out, n);
}

int hetee_client_job_await(hetee_client_conn *c, hetee_client_job *j, hetee_release_result **out, size_t *n) {
  if (!c || !j || !out || !n) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  /* progress is reported by the job's state, which only _wait asks for */
  if (c->progress) {
    int rc = hetee_client_job_wait(c, j);
    return rc ? rc : hetee_client_job_results(c, j, out, n);
  }
  char target[128];
  snprintf(target, sizeof target, "/v1/jobs/%lld/result?wait=5", (long long)j->id);
  unsigned delay_ms = 50;
  for (;;) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint8_t *b = NULL;
    size_t len = 0;
    long st = 0;
    /* 200: the results; 202: still unfinished after the server's wait; 409:
     * failed (the server's message says why) */
    int rc = api_call2(c, "GET", target, NULL, NULL, 0, 200, 202, &st, &b, &len);
    if (rc) return rc;
    if (st == 200) return open_results(c, j, b, len, out, n);
    free(b);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* a server that answered at once did not wait (it is closing): sleep
     * before asking again */
    double took = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (took < 1.0) {
      usleep(delay_ms * 1000);
      if (delay_ms < 500) delay_ms *= 2;
    }
  }
}

int hetee_client_job_delete(hetee_client_conn *c, int64_t job_id) {
  if (!c || job_id <= 0) return hetee_error(HETEE_ERR_INVALID_ARG, "job delete: no connection or job id %lld", (long long)job_id);
  char target[64];
  snprintf(target, sizeof target, "/v1/jobs/%lld", (long long)job_id);
  uint8_t *resp = NULL;
  int rc = api_call(c, "DELETE", target, NULL, NULL, 0, 200, &resp, NULL);
  free(resp);
  return rc;
}

/*
 * test_reqsig_v3.c — v3 request authentication (src/service/reqsig.h: the
 * body bound by a one-time Poly1305 MAC under a key shared by the party's
 * identity and the server's X25519 request key) against the real server:
 * a v3 request verifies (a small JSON body and a 1 MiB body received in
 * many pieces); a body byte changed after signing, a signature over the
 * tag of another nonce, one naming another server key, a replayed request
 * and an unknown X-Hetee-Auth are refused (401); v2 requests are still
 * accepted; the client library signs v3 once it knows the key and v2 with
 * HETEE_CLIENT_AUTH=v2; the key file is 0600, the same after a restart,
 * and a corrupt one stops the server with a message naming it.
 */
#include "service/service_fixture.h"

#include <fcntl.h>
#include <jansson.h>

#include "client/client_internal.h"
#include "service/reqsig.h"

static sfx *F;

/* The server's request key, from GET /v1/health. */
static void server_key(uint8_t xpk[32]) {
  const char *req = "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  char *r = NULL;
  assert_int_equal(sfx_raw(F, req, strlen(req), &r), 200);
  char *j = strstr(r, "\r\n\r\n");
  assert_non_null(j);
  json_t *o = json_loads(j + 4, 0, NULL);
  assert_non_null(o);
  const char *h = json_string_value(json_object_get(o, "request_key"));
  assert_non_null(h);
  assert_int_equal(reqsig_unhex(h, xpk, 32), 0);
  json_decref(o);
  free(r);
}

/* OTHER_SERVER_KEY: the MAC under a substituted server key, which the
 * signature names; NAMES_OTHER_KEY: the right MAC, another key named */
enum { OK = 0, BODY_CHANGED, OTHER_NONCE_TAG, OTHER_SERVER_KEY, NAMES_OTHER_KEY, AUTH_V4, V2 };

/* A raw request of `home`'s party signed as the client library signs v3
 * (or v2), with the named damage; the sent bytes in *sent (malloc'd) when
 * asked. Returns the HTTP status. */
static int send_signed(const char *home, const char *method, const char *target, const char *ctype, const uint8_t *body,
                       size_t blen, int how, char **resp, char **sent, size_t *sent_len) {
  hetee_party_key *k;
  char p[400];
  snprintf(p, sizeof p, "%s/id", home);
  assert_int_equal(hetee_party_key_load(p, &k), 0);
  uint8_t xpk[32], mk[32], tag[32], nonce[16], key[32], d[32], sig[64];
  server_key(xpk);
  if (how == OTHER_SERVER_KEY) { /* a key the server does not hold: a substituted one */
    uint8_t sk[32];
    crypto_kx_keypair(xpk, sk);
  }
  assert_int_equal(reqsig_v3_client_key(k->sk, xpk, mk), 0);
  if (how == NAMES_OTHER_KEY) xpk[3] ^= 1;
  randombytes_buf(nonce, sizeof nonce);
  hetee_party_key_public(k, key);
  uint64_t ts = reqsig_now_ms();
  if (how == V2) {
    reqsig_body_hash(body, blen, tag);
    reqsig_digest(method, target, tag, ts, nonce, key, d);
  } else {
    uint8_t other[16];
    memcpy(other, nonce, 16);
    other[0] ^= 1;
    reqsig_body_tag(mk, how == OTHER_NONCE_TAG ? other : nonce, ts, body, blen, tag);
    reqsig_digest_v3(method, target, tag, ts, nonce, key, xpk, d);
  }
  assert_int_equal(hetee_party_key_sign(k, d, sizeof d, sig), 0);
  hetee_party_key_free(k);
  char hk[65], hn[33], hs[129];
  reqsig_hex(key, 32, hk);
  reqsig_hex(nonce, 16, hn);
  reqsig_hex(sig, 64, hs);
  char auth[64] = "", ct[128] = "";
  if (how != V2) snprintf(auth, sizeof auth, "X-Hetee-Auth: %s\r\n", how == AUTH_V4 ? "v4" : "v3");
  if (ctype) snprintf(ct, sizeof ct, "Content-Type: %s\r\n", ctype);
  char *req = malloc(4096 + blen);
  int n = snprintf(req, 4096, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Hetee-Key: %s\r\nX-Hetee-Timestamp: %llu\r\n"
                   "X-Hetee-Nonce: %s\r\nX-Hetee-Signature: %s\r\n%s%sContent-Length: %zu\r\n\r\n",
                   method, target, hk, (unsigned long long)ts, hn, hs, auth, ct, blen);
  memcpy(req + n, body, blen);
  size_t len = (size_t)n + blen;
  if (how == BODY_CHANGED) req[len - 1] ^= 1;
  int st = sfx_raw(F, req, len, resp);
  if (sent) {
    *sent = req;
    *sent_len = len;
  } else {
    free(req);
  }
  return st;
}

static void test_v3_raw(void **state) {
  (void)state;
  const char *js = "{\"role\":\"dp\"}";
  const uint8_t *b = (const uint8_t *)js;
  size_t bl = strlen(js);
  char *r = NULL, *sent = NULL;
  size_t sl = 0;
  assert_int_equal(send_signed(F->dp1, "POST", "/v1/parties", "application/json", b, bl, OK, &r, &sent, &sl), 201);
  free(r);
  /* the same bytes again: the nonce was used */
  assert_int_equal(sfx_raw(F, sent, sl, &r), 401);
  assert_non_null(strstr(r, "replay"));
  free(r);
  free(sent);
  static const int bad[] = {BODY_CHANGED, OTHER_NONCE_TAG, OTHER_SERVER_KEY, NAMES_OTHER_KEY};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(send_signed(F->dp1, "POST", "/v1/parties", "application/json", b, bl, bad[i], &r, NULL, NULL), 401);
    assert_non_null(strstr(r, "bad_signature"));
    free(r);
  }
  assert_int_equal(send_signed(F->dp1, "POST", "/v1/parties", "application/json", b, bl, AUTH_V4, &r, NULL, NULL), 401);
  assert_non_null(strstr(r, "X-Hetee-Auth"));
  free(r);
  /* v2 is still accepted */
  assert_int_equal(send_signed(F->dp1, "POST", "/v1/parties", "application/json", b, bl, V2, &r, NULL, NULL), 201);
  free(r);
  /* a GET (empty body) */
  assert_int_equal(send_signed(F->dp1, "GET", "/v1/jobs", NULL, b, 0, OK, &r, NULL, NULL), 200);
  free(r);
}

/* 1 MiB (the server receives it in many pieces, MACs it as they come): a
 * v3 model upload of bytes that are no model passes authentication and is
 * refused by the handler (4xx, not 401); one byte changed: 401. */
static void test_v3_large(void **state) {
  (void)state;
  hetee_client_conn *c;
  assert_int_equal(hetee_client_connect(F->url, F->mp, &c), 0); /* registers the MP */
  hetee_client_disconnect(c);
  size_t n = 1u << 20;
  uint8_t *b = malloc(n);
  randombytes_buf(b, n);
  char *r = NULL;
  int st = send_signed(F->mp, "POST", "/v1/models", "application/octet-stream", b, n, OK, &r, NULL, NULL);
  assert_true(st >= 400 && st < 500 && st != 401);
  assert_null(strstr(r, "bad_signature"));
  free(r);
  st = send_signed(F->mp, "POST", "/v1/models", "application/octet-stream", b, n, BODY_CHANGED, &r, NULL, NULL);
  assert_int_equal(st, 401);
  assert_non_null(strstr(r, "bad_signature"));
  free(r);
  free(b);
}

/* The client library: v3 once it knows the server's key (its first
 * request, registration, is v2), v2 throughout with HETEE_CLIENT_AUTH=v2:
 * the server's counts of verified requests by form. */
/* hetee_signed_requests_total{auth="v2"|"v3"} from /metrics. */
static void signed_counts(double n[2]) {
  const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  char *r = NULL;
  assert_int_equal(sfx_raw(F, req, strlen(req), &r), 200);
  for (int v = 0; v < 2; v++) {
    const char *at = strstr(r, v ? "hetee_signed_requests_total{auth=\"v3\"} " : "hetee_signed_requests_total{auth=\"v2\"} ");
    assert_non_null(at);
    n[v] = strtod(strchr(at, ' ') + 1, NULL);
  }
  free(r);
}

static void test_client_forms(void **state) {
  (void)state;
  for (int v2 = 0; v2 < 2; v2++) {
    double before[2], after[2];
    signed_counts(before);
    if (v2) setenv("HETEE_CLIENT_AUTH", "v2", 1);
    hetee_client_conn *c;
    assert_int_equal(hetee_client_connect(F->url, F->dp2, &c), 0);
    long st = 0;
    uint8_t *body = NULL;
    assert_int_equal(hetee_client_request(c, "GET", "/v1/jobs", NULL, NULL, 0, &st, &body, NULL), 0);
    assert_int_equal(st, 200);
    free(body);
    assert_int_equal(hetee_client_request(c, "POST", "/v1/enclave/evidence", "application/json",
                                          (const uint8_t *)"{\"nonce\": 1}", 12, &st, &body, NULL), 0);
    assert_int_equal(st, 400); /* authenticated, then refused by the handler */
    free(body);
    hetee_client_disconnect(c);
    signed_counts(after);
    /* POST /v1/parties is v2 (the key is not known yet), then the two */
    assert_true(after[0] - before[0] == (v2 ? 3 : 1));
    assert_true(after[1] - before[1] == (v2 ? 0 : 2));
    unsetenv("HETEE_CLIENT_AUTH");
  }
}

static void read_key_file(uint8_t b[72]) {
  char p[400];
  snprintf(p, sizeof p, "%s/request.key", F->data);
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(st.st_size, 72);
  FILE *f = fopen(p, "rb");
  assert_non_null(f);
  assert_int_equal(fread(b, 1, 72, f), 72);
  fclose(f);
}

/* The key survives restarts; a corrupt key file stops the start. */
static void test_key_file(void **state) {
  (void)state;
  uint8_t before[32], after[32], f1[72], f2[72];
  server_key(before);
  read_key_file(f1);
  assert_memory_equal(f1 + 40, before, 32);
  sfx_stop(F, SIGTERM);
  sfx_start(F);
  server_key(after);
  read_key_file(f2);
  assert_memory_equal(before, after, 32);
  assert_memory_equal(f1, f2, 72);
  sfx_stop(F, SIGKILL);
  sfx_start(F);
  server_key(after);
  assert_memory_equal(before, after, 32);
  sfx_stop(F, SIGTERM);
  /* corrupt: a public half that does not match, then a truncated file */
  char p[400];
  snprintf(p, sizeof p, "%s/request.key", F->data);
  for (int round = 0; round < 2; round++) {
    uint8_t bad[72];
    memcpy(bad, f1, 72);
    bad[71] ^= 1;
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bad, 1, round ? 40 : 72, f), round ? 40 : 72);
    fclose(f);
    char pf[400], mpp[400], bin[512], log[400];
    snprintf(pf, sizeof pf, "%s/port", F->dir);
    unlink(pf);
    snprintf(mpp, sizeof mpp, "%s/id.pub", F->mp);
    snprintf(bin, sizeof bin, "%s/hetee", sfx_bin());
    snprintf(log, sizeof log, "%s/bad.log", F->dir);
    unlink(log);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      if (!freopen(log, "w", stdout) || !freopen(log, "a", stderr)) _exit(126);
      execl(bin, "hetee", "server", "--listen", "127.0.0.1:0", "--data-dir", F->data, "--platform", F->plat, "--mp",
            mpp, "--port-file", pf, (char *)NULL);
      _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    assert_int_equal(access(pf, F_OK), -1);
    FILE *lf = fopen(log, "r");
    assert_non_null(lf);
    char text[4096] = {0};
    size_t got = fread(text, 1, sizeof text - 1, lf);
    fclose(lf);
    assert_true(got > 0);
    assert_non_null(strstr(text, "request.key"));
    /* the file is left as it was, not replaced */
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, round ? 40 : 72);
  }
  /* the good key back: the server starts with it again */
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(f1, 1, 72, f), 72);
  fclose(f);
  sfx_start(F);
  server_key(after);
  assert_memory_equal(before, after, 32);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  F = sfx_new();
  const struct CMUnitTest t[] = {cmocka_unit_test(test_v3_raw), cmocka_unit_test(test_v3_large),
                                 cmocka_unit_test(test_client_forms), cmocka_unit_test(test_key_file)};
  int rc = cmocka_run_group_tests_name("service/reqsig_v3", t, NULL, NULL);
  sfx_free(F);
  return rc;
}

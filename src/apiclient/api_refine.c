#define _GNU_SOURCE /* memmem, realpath */
/*
 * api_refine.c — the parties' side of refine jobs (hetee/api_client.h,
 * "Refining"; docs/api.md, "Refine jobs").
 *
 * Model provider. start: plans the refining of its ONNX model (the spec),
 * encrypts the initial state under the attested enclave's key
 * (hetee_refine_state_encrypt, written as a checkpoint file), opens an
 * enclave session and seals in it the authorization
 * (hetee_refine_auth_msg_dps: model id, spec digest, the state's digests,
 * the data providers that may contribute: the enclave accepts only their
 * batches); the server opens the enclave's job with them. The client keeps that
 * session — its keys and counters — in the party's home,
 * HOME/refine-JOB.session (mode 0600, next to the identity key it is
 * derived from), with the server URL, the model id and the ONNX path, so
 * that a later process (`hetee model fetch`) opens the weights, and the
 * contributors it authorized. resume (after the enclave lost the job)
 * authorizes the job's last checkpoint, with those contributors, in a new
 * session, which replaces the stored one. fetch: per trained layer
 * the MP authorizes REFINE_FETCH in the stored session
 * (hetee_refine_fetch_auth_msg sealed in it; a new session when the enclave
 * no longer knows it, e.g. after a restart) and the enclave seals the
 * weights to that session; they are written into a copy of the
 * original ONNX file (the float tensors of W and b replaced in place: the
 * same graph, valid ONNX). promote: fetch, then upload the refined ONNX as
 * a new model with the original's release policy.
 *
 * Data provider. submit: encrypts its labelled samples in batches of the
 * job's B (hetee_refine_batch_encrypt under the attested key; the spec
 * from the server) and posts each.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "hetee/api_client.h"
#include "apiclient/api_internal.h"
#include "hetee/ckks.h"
#include "hetee/host.h"
#include "hetee/nn.h"
#include "hetee/refine.h"
#include "service/reqsig.h"

static char *hex_of(const uint8_t *b, size_t n) {
  char *h = malloc(2 * n + 1);
  if (h) reqsig_hex(b, n, h);
  return h;
}

static int unhex_str(const char *h, uint8_t **out, size_t *n) {
  size_t l = h ? strlen(h) : 0;
  if (!l || l % 2) return hetee_error(HETEE_ERR_PROTOCOL, "malformed hex in the server's answer");
  *out = malloc(l / 2);
  if (!*out) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  if (reqsig_unhex(h, *out, l / 2)) {
    free(*out);
    return hetee_error(HETEE_ERR_PROTOCOL, "malformed hex in the server's answer");
  }
  *n = l / 2;
  return 0;
}

/* The job's spec (from its status; the DP and the MP see it) -> plan. */
static int job_plan(hetee_client_conn *c, int64_t job, hetee_refine_plan *p, int64_t *model) {
  char target[96];
  snprintf(target, sizeof target, "/v1/refine/%lld", (long long)job);
  int rc;
  json_t *j = api_call_json(c, "GET", target, NULL, 200, &rc);
  if (rc) return rc;
  uint8_t *spec = NULL;
  size_t sl = 0;
  rc = unhex_str(json_string_value(json_object_get(j, "spec")), &spec, &sl);
  if (model) *model = (int64_t)json_integer_value(json_object_get(j, "model"));
  json_decref(j);
  if (!rc) rc = hetee_refine_spec_decode(spec, sl, p);
  free(spec);
  return rc;
}

/* ---- the MP's session file ---------------------------------------------- */
typedef struct {
  char url[512], onnx[1024];
  int64_t model;
  int have_vd;
  uint8_t vd[32]; /* the digest of the validation set's label ciphertexts */
  size_t ndps;    /* the job's contributors, as the MP authorized them (0: a file of before) */
  uint8_t dps[HETEE_POLICY_MAX_DPS][32];
} sess_meta;

static void sess_path(const char *home, int64_t job, char out[1200]) {
  snprintf(out, 1200, "%s/refine-%lld.session", home, (long long)job);
}

static int sess_save(const char *home, int64_t job, const sess_meta *m, const hetee_client_session *s) {
  char p[1200], tmp[1300];
  sess_path(home, job, p);
  snprintf(tmp, sizeof tmp, "%s.tmp", p);
  const hetee_chan *ch = &s->chan;
  char id[2 * HETEE_SESSION_ID_BYTES + 1], ks[65], kr[65], pk[65];
  reqsig_hex(ch->id, HETEE_SESSION_ID_BYTES, id);
  reqsig_hex(ch->k_send, 32, ks);
  reqsig_hex(ch->k_recv, 32, kr);
  reqsig_hex(ch->party_pk, 32, pk);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) {
    if (fd >= 0) close(fd);
    sodium_memzero(ks, sizeof ks);
    sodium_memzero(kr, sizeof kr);
    return hetee_error(HETEE_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
  }
  fprintf(f, "url %s\nmodel %lld\nonnx %s\nsession %s %s %s %u %u %llu %llu %u %s\n", m->url, (long long)m->model,
          m->onnx, id, ks, kr, ch->dir_send, ch->dir_recv, (unsigned long long)ch->next_send,
          (unsigned long long)ch->next_recv, ch->role, pk);
  if (m->have_vd) {
    char vd[65];
    reqsig_hex(m->vd, 32, vd);
    fprintf(f, "valdigest %s\n", vd);
  }
  for (size_t i = 0; i < m->ndps; i++) {
    char dh[65];
    reqsig_hex(m->dps[i], 32, dh);
    fprintf(f, "contributor %s\n", dh);
  }
  sodium_memzero(ks, sizeof ks);
  sodium_memzero(kr, sizeof kr);
  int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, p) != 0) return hetee_error(HETEE_ERR_IO, "cannot write %s", p);
  return 0;
}

static int sess_load(const char *home, int64_t job, sess_meta *m, hetee_client_session **out) {
  char p[1200], line[2048];
  sess_path(home, job, p);
  FILE *f = fopen(p, "r");
  if (!f)
    return hetee_error(HETEE_ERR_NOT_FOUND,
                       "%s: no session for refine job %lld in this home (the job was started or resumed elsewhere)", p,
                       (long long)job);
  memset(m, 0, sizeof *m);
  int have = 0, rc = 0;
  hetee_client_session *s = sodium_malloc(sizeof *s);
  if (!s) {
    fclose(f);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  memset(s, 0, sizeof *s);
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (!strncmp(line, "url ", 4) && strlen(line + 4) < sizeof m->url) memcpy(m->url, line + 4, strlen(line + 4) + 1);
    else if (!strncmp(line, "model ", 6)) m->model = strtoll(line + 6, NULL, 10);
    else if (!strncmp(line, "valdigest ", 10) && strlen(line + 10) == 64 && !reqsig_unhex(line + 10, m->vd, 32))
      m->have_vd = 1;
    else if (!strncmp(line, "contributor ", 12) && strlen(line + 12) == 64 && m->ndps < HETEE_POLICY_MAX_DPS &&
             !reqsig_unhex(line + 12, m->dps[m->ndps], 32))
      m->ndps++;
    else if (!strncmp(line, "onnx ", 5) && strlen(line + 5) < sizeof m->onnx) memcpy(m->onnx, line + 5, strlen(line + 5) + 1);
    else if (!strncmp(line, "session ", 8)) {
      char id[64], ks[80], kr[80], pk[80];
      unsigned ds, dr, role;
      unsigned long long ns, nr;
      if (sscanf(line + 8, "%63s %79s %79s %u %u %llu %llu %u %79s", id, ks, kr, &ds, &dr, &ns, &nr, &role, pk) == 9 &&
          strlen(id) == 2 * HETEE_SESSION_ID_BYTES && !reqsig_unhex(id, s->chan.id, HETEE_SESSION_ID_BYTES) &&
          strlen(ks) == 64 && !reqsig_unhex(ks, s->chan.k_send, 32) && strlen(kr) == 64 &&
          !reqsig_unhex(kr, s->chan.k_recv, 32) && strlen(pk) == 64 && !reqsig_unhex(pk, s->chan.party_pk, 32)) {
        s->chan.dir_send = (uint8_t)ds;
        s->chan.dir_recv = (uint8_t)dr;
        s->chan.next_send = ns;
        s->chan.next_recv = nr;
        s->chan.role = (uint8_t)role;
        s->finished = 1;
        have = 1;
      }
      sodium_memzero(ks, sizeof ks);
      sodium_memzero(kr, sizeof kr);
    }
    sodium_memzero(line, sizeof line);
  }
  fclose(f);
  if (!have || !m->model || !m->onnx[0]) rc = hetee_error(HETEE_ERR_FORMAT, "%s: malformed session file", p);
  if (rc) {
    hetee_client_session_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* ---- model provider ----------------------------------------------------- */
static int ckpt_bytes(const hetee_refine_state *s, uint8_t **out, size_t *len) {
  char tmp[] = "/tmp/hetee-refine-XXXXXX";
  int fd = mkstemp(tmp);
  if (fd < 0) return hetee_error(HETEE_ERR_IO, "cannot create a temp file: %s", strerror(errno));
  close(fd);
  int rc = hetee_refine_checkpoint_write_full(s, tmp); /* one self-contained file */
  FILE *f = rc ? NULL : fopen(tmp, "rb");
  if (!rc && !f) rc = hetee_error(HETEE_ERR_IO, "cannot read %s", tmp);
  if (f) {
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = n > 0 ? malloc((size_t)n) : NULL;
    if (!*out || fread(*out, 1, (size_t)n, f) != (size_t)n) {
      free(*out);
      *out = NULL;
      rc = hetee_error(HETEE_ERR_IO, "cannot read %s", tmp);
    } else {
      *len = (size_t)n;
    }
    fclose(f);
  }
  unlink(tmp);
  return rc;
}

/* The authorization of state s for model with the job's contributors
 * (dps[0..ndps): the enclave accepts only their batches), sealed in a
 * fresh session. */
static int authorize(hetee_client_conn *c, int64_t model, const hetee_refine_state *s, const uint8_t (*dps)[32],
                     size_t ndps, hetee_client_session **sess, char sid[33], char **auth_hex) {
  uint8_t *msg = NULL, *sealed = NULL;
  size_t ml = 0, sl = 0;
  int rc = hetee_refine_auth_msg_dps((uint32_t)model, s, dps, ndps, &msg, &ml);
  if (!rc) rc = hetee_client_session_open_remote(c, sess, sid);
  if (!rc) rc = hetee_client_session_seal(*sess, msg, ml, &sealed, &sl);
  free(msg);
  if (!rc && !(*auth_hex = hex_of(sealed, sl))) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  free(sealed);
  return rc;
}

/* the MP's signature of a validation chunk's witness */
static int vs_sign(void *arg, const uint8_t *msg, size_t len, uint8_t sig[64]) {
  return hetee_party_key_sign(arg, msg, len, sig);
}

int hetee_client_refine_start(hetee_client_conn *c, const char *home, int64_t model_id,
                              const hetee_client_refine_options *o, int64_t *job_id) {
  if (!c || !home || !o || !o->onnx_path || !job_id || !o->ndps || !o->dps || model_id < 1)
    return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if ((o->epochs > 0) != (o->epoch_samples > 0))
    return hetee_error(HETEE_ERR_INVALID_ARG, "epochs and epoch_samples go together (both 0: continuous)");
  const hetee_ckks_context *ctx;
  const hetee_ckks_public_key *pk;
  const hetee_party_key *key;
  const char *url;
  int rc = api_conn_keys(c, &ctx, &pk, &key, &url);
  if (rc) return rc;
  hetee_nn_model *m = NULL;
  hetee_refine_weights w;
  memset(&w, 0, sizeof w);
  hetee_refine_plan p;
  hetee_refine_state *s = NULL;
  uint8_t *spec = NULL, *ck = NULL;
  size_t sl = 0, cl = 0;
  hetee_refine_config cfg = {o->batch ? o->batch : 64, o->accumulate ? o->accumulate : 1, o->train_layers, o->loss,
                             o->lr, o->momentum, o->weight_decay, o->seed};
  rc = hetee_nn_model_load(o->onnx_path, &m);
  if (!rc) rc = hetee_refine_weights_from_model(m, &w);
  hetee_nn_model_free(m);
  if (!rc) rc = hetee_refine_plan_build(&w, &cfg, 0, &p);
  if (!rc && o->schedule) rc = hetee_refine_plan_set_schedule(&p, o->schedule);
  if (!rc) rc = hetee_refine_spec_encode(&p, &spec, &sl);
  if (!rc) rc = hetee_refine_state_encrypt(ctx, pk, &p, &w, &s);
  hetee_refine_weights_clear(&w);
  if (!rc) rc = ckpt_bytes(s, &ck, &cl);
  hetee_client_session *sess = NULL;
  char sid[33], *auth = NULL;
  if (!rc && o->ndps > HETEE_POLICY_MAX_DPS)
    rc = hetee_error(HETEE_ERR_INVALID_ARG, "at most %d data providers may contribute", HETEE_POLICY_MAX_DPS);
  if (!rc) rc = authorize(c, model_id, s, (const uint8_t(*)[32])o->dps, o->ndps, &sess, sid, &auth);
  hetee_refine_state_free(s);
  char *spec_hex = rc ? NULL : hex_of(spec, sl);
  free(spec);
  if (!rc && !spec_hex) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
  uint8_t *body = NULL;
  size_t blen = 0;
  if (!rc) {
    json_t *allow = json_array();
    for (size_t i = 0; i < o->ndps; i++) {
      char h[65];
      reqsig_hex(o->dps[i], 32, h);
      json_array_append_new(allow, json_string(h));
    }
    json_t *meta = json_pack("{sI ss ss ss so}", "model", (json_int_t)model_id, "session", sid, "spec", spec_hex, "auth",
                             auth, "allow", allow);
    if (o->epochs) {
      json_object_set_new(meta, "epochs", json_integer(o->epochs));
      json_object_set_new(meta, "epoch_samples", json_integer(o->epoch_samples));
    }
    char *js = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    size_t jl = js ? strlen(js) : 0;
    blen = 8 + jl + cl;
    body = js ? malloc(blen) : NULL;
    if (!body) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    } else {
      memcpy(body, "HTRJ", 4);
      for (int q = 0; q < 4; q++) body[4 + q] = (uint8_t)((uint32_t)jl >> (8 * q));
      memcpy(body + 8, js, jl);
      memcpy(body + 8 + jl, ck, cl);
    }
    free(js);
  }
  free(spec_hex);
  free(auth);
  free(ck);
  uint8_t *resp = NULL;
  if (!rc) rc = api_call(c, "POST", "/v1/refine", "application/octet-stream", body, blen, 201, &resp, NULL);
  free(body);
  json_t *a = rc ? NULL : json_loads((const char *)resp, 0, NULL);
  free(resp);
  int64_t id = rc ? 0 : (int64_t)json_integer_value(json_object_get(a, "id"));
  json_decref(a);
  if (!rc && id < 1) rc = hetee_error(HETEE_ERR_PROTOCOL, "no refine job id in the answer");
  sess_meta sm;
  memset(&sm, 0, sizeof sm);
  if (!rc) {
    snprintf(sm.url, sizeof sm.url, "%s", url);
    sm.model = model_id;
    sm.ndps = o->ndps;
    for (size_t i = 0; i < o->ndps; i++) memcpy(sm.dps[i], o->dps[i], 32);
    if (!realpath(o->onnx_path, sm.onnx)) snprintf(sm.onnx, sizeof sm.onnx, "%s", o->onnx_path);
    rc = sess_save(home, id, &sm, sess);
  }
  if (!rc && o->val_count) {
    /* the validation set, encrypted here under the attested key */
    hetee_refine_valset *vs = NULL;
    uint8_t *vb = NULL;
    size_t vl = 0;
    /* the session above attested afresh: the connection's keys are new objects */
    uint8_t rel[32], mpk[32];
    rc = api_release_key(c, rel); /* first: it may verify the enclave again, which renews the keys below */
    if (!rc) rc = api_conn_keys(c, &ctx, &pk, &key, &url);
    /* with our witness of each chunk, signed with our identity key (the
     * enclave checks layer 0 of the pass against it; docs/refine.md
     * "Validation set") */
    if (!rc) {
      hetee_party_key_public(key, mpk);
      rc = hetee_refine_valset_encrypt_witness(ctx, pk, &p, o->val_x, o->val_labels, o->val_count, (uint32_t)model_id,
                                               rel, &vs);
    }
    if (!rc) rc = hetee_refine_valset_sign(vs, mpk, vs_sign, (void *)key);
    if (!rc) rc = hetee_refine_valset_labels_digest(vs, sm.vd);
    if (!rc) rc = hetee_refine_valset_save(vs, &vb, &vl);
    hetee_refine_valset_free(vs);
    char target[96];
    snprintf(target, sizeof target, "/v1/refine/%lld/valset", (long long)id);
    if (!rc) rc = api_call(c, "PUT", target, "application/octet-stream", vb, vl, 200, NULL, NULL);
    free(vb);
    sm.have_vd = !rc;
    if (!rc) rc = sess_save(home, id, &sm, sess);
    if (rc) {
      /* the job runs without it: say so, keep the job id */
      char why[300];
      snprintf(why, sizeof why, "%s", hetee_last_error());
      hetee_client_session_free(sess);
      *job_id = id;
      return hetee_error(rc, "refine job %lld started, but its validation set was not stored: %s", (long long)id, why);
    }
  }
  hetee_client_session_free(sess);
  if (rc) return rc;
  *job_id = id;
  return 0;
}

int hetee_client_refine_status(hetee_client_conn *c, int64_t job, char **json) {
  if (!c || !json || job < 1) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  char target[96];
  snprintf(target, sizeof target, "/v1/refine/%lld", (long long)job);
  uint8_t *r = NULL;
  int rc = api_call(c, "GET", target, NULL, NULL, 0, 200, &r, NULL);
  if (rc) return rc;
  *json = (char *)r;
  return 0;
}

int hetee_client_refine_stop(hetee_client_conn *c, int64_t job) {
  if (!c || job < 1) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  char target[96];
  snprintf(target, sizeof target, "/v1/refine/%lld/stop", (long long)job);
  return api_call(c, "POST", target, NULL, NULL, 0, 202, NULL, NULL);
}

int hetee_client_refine_wait(hetee_client_conn *c, int64_t job, int timeout_s, char state[24]) {
  if (!c || job < 1 || !state) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  for (int i = 0; timeout_s <= 0 || i < timeout_s * 5; i++) {
    char *js = NULL;
    int rc = hetee_client_refine_status(c, job, &js);
    if (rc) return rc;
    json_t *j = json_loads(js, 0, NULL);
    free(js);
    const char *st = json_string_value(json_object_get(j, "state"));
    snprintf(state, 24, "%s", st ? st : "?");
    json_decref(j);
    if (strcmp(state, "running")) return 0;
    usleep(200 * 1000);
  }
  return hetee_error(HETEE_ERR_LIMIT, "refine job %lld still running after %d s", (long long)job, timeout_s);
}

int hetee_client_refine_resume(hetee_client_conn *c, const char *home, int64_t job) {
  if (!c || !home || job < 1) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  const hetee_ckks_context *ctx;
  const hetee_ckks_public_key *pk;
  const hetee_party_key *key;
  const char *url;
  int rc = api_conn_keys(c, &ctx, &pk, &key, &url);
  if (rc) return rc;
  sess_meta sm;
  hetee_client_session *old = NULL;
  rc = sess_load(home, job, &sm, &old);
  hetee_client_session_free(old);
  if (rc) return rc;
  hetee_refine_plan p;
  int64_t model = 0;
  rc = job_plan(c, job, &p, &model);
  if (rc) return rc;
  if (model != sm.model) return hetee_error(HETEE_ERR_PROTOCOL, "the server names model %lld for this job, we started it on %lld", (long long)model, (long long)sm.model);
  /* the host's last checkpoint: what the new enclave job will start from */
  char target[96];
  snprintf(target, sizeof target, "/v1/refine/%lld/checkpoint", (long long)job);
  uint8_t *ck = NULL;
  size_t cl = 0;
  rc = api_call(c, "GET", target, NULL, NULL, 0, 200, &ck, &cl);
  char tmp[] = "/tmp/hetee-refine-XXXXXX";
  int fd = rc ? -1 : mkstemp(tmp);
  if (!rc && fd < 0) rc = hetee_error(HETEE_ERR_IO, "cannot create a temp file");
  if (!rc) {
    ssize_t wn = write(fd, ck, cl);
    close(fd);
    if (wn != (ssize_t)cl) rc = hetee_error(HETEE_ERR_IO, "cannot write %s", tmp);
  }
  free(ck);
  hetee_refine_state *s = NULL;
  if (!rc) rc = hetee_refine_checkpoint_read_trained(ctx, &p, tmp, &s); /* the authorization covers the trained layers */
  if (fd >= 0) unlink(tmp);
  hetee_client_session *sess = NULL;
  char sid[33], *auth = NULL;
  /* the contributors the MP named at start, from its own file (never the
   * server's list); a session file of before names none: the model's policy */
  if (!rc) rc = authorize(c, model, s, (const uint8_t(*)[32])sm.dps, sm.ndps, &sess, sid, &auth);
  hetee_refine_state_free(s);
  if (!rc) {
    snprintf(target, sizeof target, "/v1/refine/%lld/resume", (long long)job);
    json_t *j = api_call_json(c, "POST", target, json_pack("{ss ss}", "session", sid, "auth", auth), 200, &rc);
    json_decref(j);
  }
  free(auth);
  if (!rc) rc = sess_save(home, job, &sm, sess);
  hetee_client_session_free(sess);
  return rc;
}

int hetee_client_refine_validation(hetee_client_conn *c, const char *home, int64_t job, size_t max,
                                   hetee_refine_val_report *reports, uint32_t *epochs, size_t *n) {
  if (!c || !home || job < 1 || !n || (max && (!reports || !epochs))) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *n = 0;
  sess_meta sm;
  hetee_client_session *s = NULL;
  int rc = sess_load(home, job, &sm, &s);
  if (rc) return rc;
  char *js = NULL;
  rc = hetee_client_refine_status(c, job, &js);
  json_t *j = rc ? NULL : json_loads(js, 0, NULL);
  free(js);
  json_t *va = json_object_get(j, "validation");
  for (size_t i = 0; !rc && i < json_array_size(va) && *n < max; i++) {
    json_t *e = json_array_get(va, i);
    uint8_t *sealed = NULL, *plain = NULL;
    size_t sl = 0, pl = 0;
    rc = unhex_str(json_string_value(json_object_get(e, "report")), &sealed, &sl);
    /* reports were sealed at epoch ends, between fetches: opened with a copy
     * of the session at each counter up to ours (what they claim is checked
     * below; their update counts order them) */
    hetee_client_session *t = rc ? NULL : sodium_malloc(sizeof *t);
    if (!rc && !t) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    int orc = HETEE_ERR_AUTH;
    for (uint64_t k = 0; !rc && orc && k < s->chan.next_recv + 4096; k++) {
      memcpy(t, s, sizeof *t);
      t->chan.next_recv = k;
      orc = hetee_client_session_open(t, sealed, sl, &plain, &pl);
    }
    if (t) hetee_client_session_free(t);
    free(sealed);
    if (!rc && orc) rc = hetee_error(orc, "validation report of epoch %lld: does not open with this job's session",
                                     (long long)json_integer_value(json_object_get(e, "epoch")));
    if (!rc) rc = hetee_refine_val_report_parse(plain, pl, (uint32_t)sm.model, &reports[*n]);
    if (!rc && (!sm.have_vd || sodium_memcmp(reports[*n].labels_digest, sm.vd, 32)))
      rc = hetee_error(HETEE_ERR_AUTH, "validation report of epoch %lld: not over this MP's validation labels",
                       (long long)json_integer_value(json_object_get(e, "epoch")));
    if (plain) sodium_memzero(plain, pl);
    free(plain);
    if (!rc) epochs[(*n)++] = (uint32_t)json_integer_value(json_object_get(e, "epoch"));
  }
  json_decref(j);
  hetee_client_session_free(s);
  return rc;
}

int hetee_client_refine_latest(hetee_client_conn *c, int64_t model, int64_t *job) {
  char target[96];
  snprintf(target, sizeof target, "/v1/refine?model=%lld", (long long)model);
  int rc;
  json_t *j = api_call_json(c, "GET", target, NULL, 200, &rc);
  if (rc) return rc;
  json_t *a = json_object_get(j, "jobs");
  size_t n = json_array_size(a);
  *job = n ? (int64_t)json_integer_value(json_object_get(json_array_get(a, n - 1), "id")) : 0;
  json_decref(j);
  return *job > 0 ? 0 : hetee_error(HETEE_ERR_NOT_FOUND, "model %lld has no refine job of yours", (long long)model);
}

/* Replaces the n floats `old` by `neu` in buf: exactly one occurrence. */
static int patch_floats(uint8_t *buf, size_t len, const float *old, const float *neu, size_t n) {
  size_t bytes = n * sizeof(float);
  uint8_t *hit = NULL;
  int count = 0;
  for (uint8_t *p = buf; p + bytes <= buf + len;) {
    uint8_t *q = memmem(p, (size_t)(buf + len - p), old, bytes);
    if (!q) break;
    if (!hit) hit = q;
    count++;
    p = q + 1;
  }
  if (count != 1) return count;
  memcpy(hit, neu, bytes);
  return 1;
}

/* Writes a copy of the ONNX file at src with layer l's W and b replaced by
 * w's for every trained layer, W found as stored m x k (Gemm transB=1) or
 * k x m. */
static int onnx_patch(const char *src, const char *dst, const hetee_refine_weights *w0, const hetee_refine_weights *w,
                      int first) {
  FILE *f = fopen(src, "rb");
  if (!f) return hetee_error(HETEE_ERR_IO, "cannot open %s", src);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = n > 0 ? malloc((size_t)n) : NULL;
  int rc = buf && fread(buf, 1, (size_t)n, f) == (size_t)n ? 0 : hetee_error(HETEE_ERR_IO, "cannot read %s", src);
  fclose(f);
  for (int l = first; l < w->nl && !rc; l++) {
    size_t m = (size_t)w->m[l], k = (size_t)w->k[l];
    if (patch_floats(buf, (size_t)n, w0->w[l], w->w[l], m * k) != 1) {
      float *t0 = malloc(m * k * sizeof *t0), *t1 = malloc(m * k * sizeof *t1);
      if (!t0 || !t1) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      for (size_t i = 0; !rc && i < m; i++)
        for (size_t j = 0; j < k; j++) t0[j * m + i] = w0->w[l][i * k + j], t1[j * m + i] = w->w[l][i * k + j];
      if (!rc && patch_floats(buf, (size_t)n, t0, t1, m * k) != 1)
        rc = hetee_error(HETEE_ERR_FORMAT, "%s: layer %d's weights are not stored once as float32 in the file", src, l);
      free(t0);
      free(t1);
    }
    if (!rc && patch_floats(buf, (size_t)n, w0->b[l], w->b[l], m) != 1)
      rc = hetee_error(HETEE_ERR_FORMAT, "%s: layer %d's bias is not stored once as float32 in the file", src, l);
  }
  if (!rc) rc = hetee_file_write_atomic(dst, buf, (size_t)n, 0644);
  free(buf);
  return rc;
}

int hetee_client_refine_fetch(hetee_client_conn *c, const char *home, int64_t job, const char *out_onnx,
                              hetee_refine_weights *out) {
  if (!c || !home || job < 1 || (!out_onnx && !out)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  sess_meta sm;
  hetee_client_session *s = NULL;
  int rc = sess_load(home, job, &sm, &s);
  if (rc) return rc;
  hetee_refine_plan p;
  int64_t model = 0;
  rc = job_plan(c, job, &p, &model);
  if (!rc && model != sm.model) rc = hetee_error(HETEE_ERR_PROTOCOL, "the server names another model for this job");
  hetee_nn_model *m = NULL;
  hetee_refine_weights w0, w;
  memset(&w0, 0, sizeof w0);
  memset(&w, 0, sizeof w);
  if (!rc) rc = hetee_nn_model_load(sm.onnx, &m);
  if (!rc) rc = hetee_refine_weights_from_model(m, &w0);
  hetee_nn_model_free(m);
  if (!rc) rc = hetee_refine_weights_copy(&w0, &w);
  /* Each layer's fetch is authorized in the MP's session (the weights come
   * back sealed to it): attempt 0 with the stored session; attempt 1, when
   * the enclave no longer knows it (restarted since) or its counter is not
   * ours, with a new session, which replaces the stored one. */
  for (int attempt = 0; attempt < 2 && !rc; attempt++) {
    int again = 0;
    for (int l = p.first_train; l < p.nl && !rc; l++) {
      uint8_t *am = NULL, *as = NULL, *sealed = NULL, *plain = NULL;
      size_t aml = 0, asl = 0, sl = 0, pl = 0;
      rc = hetee_refine_fetch_auth_msg((uint32_t)model, &p, l, &am, &aml);
      if (!rc) rc = hetee_client_session_seal(s, am, aml, &as, &asl);
      free(am);
      if (!rc) rc = sess_save(home, job, &sm, s); /* the session's send counter moved */
      char *ah = rc ? NULL : hex_of(as, asl);
      free(as);
      if (!rc && !ah) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      size_t tl = ah ? strlen(ah) + 128 : 0;
      char *target = ah ? malloc(tl) : NULL;
      if (!rc && !target) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      if (!rc) snprintf(target, tl, "/v1/refine/%lld/weights?layer=%d&auth=%s", (long long)job, l, ah);
      free(ah);
      if (!rc) {
        rc = api_call(c, "GET", target, NULL, NULL, 0, 200, &sealed, &sl);
        if ((rc == HETEE_ERR_NOT_FOUND && strstr(hetee_last_error(), "session")) ||
            (rc == HETEE_ERR_AUTH && strstr(hetee_last_error(), "counter")))
          again = 1;
      }
      free(target);
      if (!rc) rc = hetee_client_session_open(s, sealed, sl, &plain, &pl);
      /* a fetch whose answer never reached this party (or a message the
       * enclave sealed to this session since) moved the enclave's counter
       * past ours: later counters only, so nothing older is ever accepted */
      uint64_t was = s->chan.next_recv;
      for (unsigned skip = 0; rc == HETEE_ERR_REPLAY && skip < 4096; skip++) {
        s->chan.next_recv++;
        rc = hetee_client_session_open(s, sealed, sl, &plain, &pl);
      }
      if (rc && sealed) s->chan.next_recv = was;
      free(sealed);
      if (!rc) rc = sess_save(home, job, &sm, s); /* the session's counter moved */
      if (!rc) rc = hetee_refine_fetch_parse(plain, pl, (uint32_t)model, &w);
      if (plain) sodium_memzero(plain, pl);
      free(plain);
    }
    if (!rc || !again || attempt) break;
    hetee_client_session *ns = NULL;
    char sid[33];
    rc = hetee_client_session_open_remote(c, &ns, sid);
    if (!rc) {
      hetee_client_session_free(s);
      s = ns;
      rc = sess_save(home, job, &sm, s);
    }
  }
  hetee_client_session_free(s);
  if (!rc && out_onnx) rc = onnx_patch(sm.onnx, out_onnx, &w0, &w, p.first_train);
  hetee_refine_weights_clear(&w0);
  if (!rc && out) {
    *out = w;
    return 0;
  }
  hetee_refine_weights_clear(&w);
  return rc;
}

int hetee_client_model_promote(hetee_client_conn *c, const char *home, int64_t model, int64_t job, int64_t *new_model) {
  if (!c || !home || model < 1 || !new_model) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = 0;
  if (job < 1) rc = hetee_client_refine_latest(c, model, &job);
  if (rc) return rc;
  char target[96];
  snprintf(target, sizeof target, "/v1/models/%lld", (long long)model);
  json_t *mj = api_call_json(c, "GET", target, NULL, 200, &rc);
  if (rc) return rc;
  char tmp[] = "/tmp/hetee-refined-XXXXXX";
  int fd = mkstemp(tmp);
  if (fd < 0) {
    json_decref(mj);
    return hetee_error(HETEE_ERR_IO, "cannot create a temp file");
  }
  close(fd);
  rc = hetee_client_refine_fetch(c, home, job, tmp, NULL);
  json_t *allow = json_object_get(mj, "allow");
  size_t nd = json_array_size(allow);
  uint8_t(*dps)[32] = nd ? calloc(nd, 32) : NULL;
  int64_t *budgets = nd ? calloc(nd, sizeof *budgets) : NULL;
  if (!rc && (!nd || !dps || !budgets)) rc = hetee_error(HETEE_ERR_PROTOCOL, "model %lld has no data providers to keep", (long long)model);
  for (size_t i = 0; i < nd && !rc; i++) {
    json_t *e = json_array_get(allow, i);
    if (hetee_hex_decode32(json_string_value(json_object_get(e, "dp")), dps[i]))
      rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed policy in the server's answer");
    budgets[i] = (int64_t)json_integer_value(json_object_get(e, "budget"));
  }
  char name[80];
  snprintf(name, sizeof name, "%.50s-refined", json_string_value(json_object_get(mj, "name")) ? json_string_value(json_object_get(mj, "name")) : "model");
  hetee_client_model_options mo = {.name = name,
                                   .batch = (uint32_t)json_integer_value(json_object_get(mj, "micro_batch")),
                                   .output = json_string_value(json_object_get(mj, "output")),
                                   .k = (int)json_integer_value(json_object_get(mj, "k")),
                                   .precision = (int)json_integer_value(json_object_get(mj, "precision")),
                                   .dps = (const uint8_t(*)[32])dps,
                                   .budgets = budgets,
                                   .ndps = nd,
                                   .input_scale = json_real_value(json_object_get(mj, "input_scale"))};
  if (!rc) rc = hetee_client_model_upload(c, tmp, &mo, new_model);
  unlink(tmp);
  free(dps);
  free(budgets);
  json_decref(mj);
  return rc;
}

/* ---- data provider ------------------------------------------------------ */
int hetee_client_refine_submit(hetee_client_conn *c, int64_t job, const float *x, const float *labels, size_t count,
                               size_t *batches) {
  if (!c || !x || !labels || !count || job < 1) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  /* each batch carries its witness sealed to the enclave's release key and
   * our signed authorization (docs/refine.md "What is checked"); asked
   * first: it may verify the enclave again, which renews the keys below */
  uint8_t rel[32], dpk[32];
  int rc = api_release_key(c, rel);
  if (rc) return rc;
  const hetee_ckks_context *ctx;
  const hetee_ckks_public_key *pk;
  const hetee_party_key *key;
  const char *url;
  rc = api_conn_keys(c, &ctx, &pk, &key, &url);
  if (rc) return rc;
  hetee_refine_plan p;
  int64_t model = 0;
  rc = job_plan(c, job, &p, &model);
  if (rc) return rc;
  hetee_party_key_public(key, dpk);
  uint32_t B = p.cfg.batch, k = (uint32_t)p.L[0].k;
  uint32_t *idx = malloc(B * sizeof *idx);
  if (!idx) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (uint32_t i = 0; i < B; i++) idx[i] = i;
  char target[96];
  snprintf(target, sizeof target, "/v1/refine/%lld/samples", (long long)job);
  size_t nb = 0;
  for (size_t off = 0; off < count && !rc; off += B) {
    uint32_t n = (uint32_t)(count - off < B ? count - off : B);
    hetee_refine_batch *b = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    uint64_t bno; /* a batch number of ours that no other batch has (random) */
    randombytes_buf(&bno, sizeof bno);
    rc = hetee_refine_batch_encrypt_witness(ctx, pk, &p, x + off * k, labels + off, idx, n, (uint32_t)model, rel, bno, &b);
    uint8_t *am = NULL, sig[64];
    size_t al = 0;
    if (!rc) rc = hetee_refine_batch_auth_msg(b, dpk, &am, &al);
    if (!rc) rc = hetee_party_key_sign(key, am, al, sig);
    if (!rc) rc = hetee_refine_batch_set_auth(b, dpk, sig);
    free(am);
    if (!rc) rc = hetee_refine_batch_save(b, &buf, &len);
    hetee_refine_batch_free(b);
    if (!rc) rc = api_call(c, "POST", target, "application/octet-stream", buf, len, 202, NULL, NULL);
    free(buf);
    if (!rc) nb++;
  }
  free(idx);
  if (batches) *batches = nb;
  return rc;
}

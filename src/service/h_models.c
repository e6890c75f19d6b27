/*
 * h_models.c — model handlers. Upload: the encrypted model file (as the
 * engine's model-provider side writes it) streamed to a temp file, loaded
 * and validated under the enclave's parameters (every ciphertext, the plan),
 * then committed atomically; the model is usable once its owner sets the
 * release policy through its enclave session (PUT .../policy), which the
 * server relays and records (allowed data providers, output, budgets).
 * The policy request also carries the owner's registration of the model
 * (its digest, sealed in the same session): the server relays both, seals
 * the enclave state and streams the model to the enclave (MODEL_LOAD); only
 * a model bound this way is ready (docs/security.md, "Integrity of the
 * host's work"). Models are visible to their owner and to the data providers their policy
 * names, to nobody else (404, as for a model that does not exist).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hemat/engine_internal.h"
#include "hetee/common.h"
#include "service/server_internal.h"

json_t *req_json(srv_req *q, srv_resp *r);
int session_owned(srv_req *q, srv_resp *r, const char *sid, int64_t *epoch, int64_t *seq);

static const char *output_name(int kind) {
  return kind == HETEE_RELEASE_ARGMAX ? "label" : kind == HETEE_RELEASE_SOFTMAX ? "probs" : kind == HETEE_RELEASE_TOPK ? "topk" : "logits";
}

static int valid_name(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > SRV_NAME_MAX) return 0;
  for (; *s; s++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *s)) return 0;
  return 1;
}

void h_model_upload(srv_req *q, srv_resp *r) {
  server *S = q->S;
  const char *name = req_query(q, "name");
  if (!name) name = "model";
  if (!valid_name(name)) {
    resp_error(r, 400, "bad_name", "model names are 1..64 characters of [A-Za-z0-9._-]");
    return;
  }
  const char *sc = req_query(q, "input_scale");
  double input_scale = 1.0;
  if (sc) {
    char *end;
    input_scale = strtod(sc, &end);
    if (*end || !(input_scale > 0 && input_scale <= 1e6)) {
      resp_error(r, 400, "bad_scale", "input_scale must be a number in (0, 1e6]");
      return;
    }
  }
  if (q->total == 0) {
    resp_error(r, 400, "empty_body", "the body is the encrypted model file");
    return;
  }
  hetee_engine_model *em = NULL;
  int rc = hetee_engine_model_read(S->en.ctx, q->file, &em);
  if (rc) {
    resp_status(r, rc, "encrypted model refused");
    return;
  }
  const hetee_engine_plan *p = hetee_engine_model_plan(em);
  uint8_t *plan = NULL;
  size_t plen = 0;
  int64_t id = 0;
  char dst[SRV_PATH_MAX];
  rc = engine_plan_save(p, &plan, &plen);
  if (!rc) rc = store_model_stage(S->db, q->party, name, &id);
  if (!rc) {
    blob_path(S, dst, "models", id, "plan");
    rc = blob_write(S->data_dir, dst, plan, plen);
  }
  free(plan);
  if (!rc) {
    blob_path(S, dst, "models", id, "htem");
    rc = blob_commit(q->fd, q->file, dst);
    q->fd = -1;
    if (!rc) q->file[0] = 0;
  }
  st_model m = {.id = id,
                .bytes = (int64_t)q->total,
                .micro_batch = (int)hetee_engine_plan_micro_batch(p),
                .in_size = (int)hetee_engine_plan_input_size(p),
                .classes = (int)hetee_engine_plan_output_size(p),
                .release_kind = hetee_engine_plan_release_kind(p),
                .input_scale = input_scale};
  if (!rc) rc = store_model_commit(S->db, &m);
  if (rc) {
    hetee_engine_model_free(em);
    resp_status(r, rc, "storing the model");
    return;
  }
  model_cache_add(S, id, em);
  snprintf(r->location, sizeof r->location, "/v1/models/%lld", (long long)id);
  resp_json(r, 201, json_pack("{sI ss ss sI si si si ss}", "id", (json_int_t)id, "name", name, "state", "pending_policy",
                              "bytes", (json_int_t)q->total, "micro_batch", m.micro_batch, "input_size", m.in_size,
                              "classes", m.classes, "plan_release", output_name(m.release_kind)));
}

/* The model of the path, visible to the caller: 0, or *r answered (404). */
static int visible_model(srv_req *q, srv_resp *r, st_model *m, int *owner) {
  if (store_model_get(q->S->db, q->ids[0], m)) {
    resp_error(r, 404, "not_found", "no model %lld", (long long)q->ids[0]);
    return -1;
  }
  *owner = !strcmp(m->owner, q->party);
  if (*owner) return 0;
  if (q->role == ROLE_DP && !store_model_dp(q->S->db, m->id, q->party, NULL, NULL)) return 0;
  resp_error(r, 404, "not_found", "no model %lld", (long long)q->ids[0]);
  return -1;
}

/* A hex session message (at most 4096 bytes) -> malloc'd bytes; -1 if malformed. */
static int unhex_msg(const char *h, uint8_t **out, size_t *n) {
  size_t l = h ? strlen(h) : 0;
  *out = NULL;
  if (!l || l % 2 || l > 8192) return -1;
  *out = malloc(l / 2);
  if (!*out || reqsig_unhex(h, *out, l / 2)) {
    free(*out);
    *out = NULL;
    return -1;
  }
  *n = l / 2;
  return 0;
}

void h_model_policy(srv_req *q, srv_resp *r) {
  server *S = q->S;
  st_model m;
  int owner;
  if (visible_model(q, r, &m, &owner)) return;
  if (!owner) {
    resp_error(r, 404, "not_found", "no model %lld", (long long)q->ids[0]);
    return;
  }
  json_t *j = req_json(q, r);
  if (!j) return;
  const char *sid = json_string_value(json_object_get(j, "session"));
  const char *sealed = json_string_value(json_object_get(j, "sealed"));
  const char *output = json_string_value(json_object_get(j, "output"));
  json_t *allow = json_object_get(j, "allow");
  json_t *jk = json_object_get(j, "k"), *jp = json_object_get(j, "precision");
  int k = jk ? (int)json_integer_value(jk) : 0, prec = jp ? (int)json_integer_value(jp) : 0;
  size_t n = json_is_array(allow) ? json_array_size(allow) : 0;
  if (!output || (strcmp(output, "label") && strcmp(output, "probs") && strcmp(output, "logits") && strcmp(output, "topk")) ||
      (jk && !json_is_integer(jk)) || (jp && !json_is_integer(jp)) || k < 0 || k > 255 || prec < 0 || prec > 40) {
    json_decref(j);
    resp_error(r, 400, "bad_policy", "\"output\" must be label, probs, logits or topk; \"k\" 0..255; \"precision\" 0..40");
    return;
  }
  if (n < 1 || n > HETEE_POLICY_MAX_DPS) {
    json_decref(j);
    resp_error(r, 400, "bad_policy", "\"allow\" lists 1 to %d data providers", HETEE_POLICY_MAX_DPS);
    return;
  }
  char dps[HETEE_POLICY_MAX_DPS][65];
  int64_t budgets[HETEE_POLICY_MAX_DPS];
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(allow, i);
    const char *dp = json_string_value(json_object_get(e, "dp"));
    json_t *b = json_object_get(e, "budget");
    uint8_t tmp[32];
    if (!dp || reqsig_unhex(dp, tmp, 32) || (b && (!json_is_integer(b) || json_integer_value(b) < -1))) {
      json_decref(j);
      resp_error(r, 400, "bad_policy", "allow[%zu]: {\"dp\": 64 hex digits, \"budget\": images or -1}", i);
      return;
    }
    reqsig_hex(tmp, 32, dps[i]);
    budgets[i] = b ? json_integer_value(b) : -1;
  }
  size_t slen = sealed ? strlen(sealed) : 0;
  uint8_t *msg = slen && slen % 2 == 0 && slen <= 8192 ? malloc(slen / 2) : NULL;
  if (!msg || reqsig_unhex(sealed, msg, slen / 2)) {
    free(msg);
    json_decref(j);
    resp_error(r, 400, "bad_policy", "\"sealed\": the SET_POLICY session message in hex (at most 4096 bytes)");
    return;
  }
  /* the registration (required: the service serves bound models only) and
   * the optional enclave query budget, sealed in the same session */
  const char *reg = json_string_value(json_object_get(j, "register"));
  const char *bud = json_string_value(json_object_get(j, "budget_msg"));
  uint8_t *regm = NULL, *budm = NULL;
  size_t regl = 0, budl = 0;
  if (unhex_msg(reg, &regm, &regl) || (bud && unhex_msg(bud, &budm, &budl))) {
    free(msg);
    free(regm);
    json_decref(j);
    resp_error(r, 400, "bad_policy", "\"register\" (required) and \"budget_msg\" (optional): session messages in hex");
    return;
  }
  /* an enclave budget comes with a budget for every data provider: the
   * workers seal the enclave's query counters after each job of a model
   * whose stored policy has a budget (jobs.c), and only then */
  int all_budgeted = 1;
  for (size_t i = 0; i < n; i++) all_budgeted &= budgets[i] >= 0;
  if (budm && !all_budgeted) {
    free(msg);
    free(regm);
    free(budm);
    json_decref(j);
    resp_error(r, 400, "bad_policy", "\"budget_msg\" (an enclave query budget) needs a budget for every data provider");
    return;
  }
  int64_t epoch, seq;
  if (session_owned(q, r, sid, &epoch, &seq)) {
    free(msg);
    free(regm);
    free(budm);
    json_decref(j);
    return;
  }
  uint8_t *rep[3] = {NULL, NULL, NULL};
  size_t rlen[3] = {0, 0, 0};
  const char *step = "the enclave refused the policy";
  hetee_engine_model *em = NULL;
  pthread_mutex_lock(&S->en.lock);
  int rc = hetee_host_session_msg(S->en.e, msg, slen / 2, &rep[0], &rlen[0]);
  if (!rc) {
    step = "the enclave refused the model's registration";
    rc = hetee_host_session_msg(S->en.e, regm, regl, &rep[1], &rlen[1]);
  }
  if (!rc && budm) {
    step = "the enclave refused the query budget";
    rc = hetee_host_session_msg(S->en.e, budm, budl, &rep[2], &rlen[2]);
  }
  /* policy and registration survive enclave restarts */
  if (!rc && !(rc = sup_seal(&S->en))) {
    step = "binding the model in the enclave (the stored model is not the one registered?)";
    sup_note_restarts(&S->en);
    rc = model_get(S, m.id, &em);
    if (!rc) {
      rc = model_bind_locked(S, m.id, em, 1);
      model_put(S, m.id);
    }
  }
  sup_note_restarts(&S->en);
  pthread_mutex_unlock(&S->en.lock);
  free(msg);
  free(regm);
  free(budm);
  if (!rc) {
    step = "policy";
    rc = store_model_set_policy(S->db, m.id, output, k, prec, (const char(*)[65])dps, budgets, n);
  }
  json_decref(j);
  if (rc) {
    for (int i = 0; i < 3; i++) free(rep[i]);
    resp_status(r, rc, step);
    return;
  }
  json_t *o = json_pack("{sI ss}", "id", (json_int_t)m.id, "state", "ready");
  static const char *const keys[3] = {"reply", "register_reply", "budget_reply"};
  for (int i = 0; i < 3; i++) {
    if (!rep[i]) continue;
    char *rh = malloc(2 * rlen[i] + 1);
    if (rh) reqsig_hex(rep[i], rlen[i], rh);
    json_object_set_new(o, keys[i], json_string(rh ? rh : ""));
    free(rh);
    free(rep[i]);
  }
  resp_json(r, 200, o);
}

void h_model_list(srv_req *q, srv_resp *r) {
  resp_json(r, 200, json_pack("{so}", "models", store_models_json(q->S->db, q->party, q->role)));
}

void h_model_show(srv_req *q, srv_resp *r) {
  st_model m;
  int owner;
  if (visible_model(q, r, &m, &owner)) return;
  json_t *j = json_pack("{sI ss ss ss ss si si sI si si si ss sf}", "id", (json_int_t)m.id, "name", m.name, "owner", m.owner,
                        "state", m.state, "output", m.output, "k", m.k, "precision", m.prec, "bytes", (json_int_t)m.bytes,
                        "micro_batch", m.micro_batch, "input_size", m.in_size, "classes", m.classes, "plan_release",
                        output_name(m.release_kind), "input_scale", m.input_scale);
  if (owner) {
    json_object_set_new(j, "allow", store_model_dps_json(q->S->db, m.id));
  } else {
    int64_t b = -1, u = 0;
    (void)store_model_dp(q->S->db, m.id, q->party, &b, &u);
    json_object_set_new(j, "budget", json_integer(b));
    json_object_set_new(j, "used", json_integer(u));
  }
  resp_json(r, 200, j);
}

void h_model_plan(srv_req *q, srv_resp *r) {
  st_model m;
  int owner;
  if (visible_model(q, r, &m, &owner)) return;
  blob_path(q->S, r->file, "models", m.id, "plan");
  r->status = 200;
  r->ctype = "application/octet-stream";
}

void h_model_delete(srv_req *q, srv_resp *r) {
  st_model m;
  int owner;
  if (visible_model(q, r, &m, &owner)) return;
  if (!owner) {
    resp_error(r, 404, "not_found", "no model %lld", (long long)q->ids[0]);
    return;
  }
  int64_t active = 0;
  if (store_model_active_jobs(q->S->db, m.id, &active) || active) {
    resp_error(r, 409, "busy", "model %lld has %lld unfinished jobs", (long long)m.id, (long long)active);
    return;
  }
  int rc = store_model_delete(q->S->db, m.id);
  if (rc) {
    resp_status(r, rc, "delete");
    return;
  }
  model_drop(q->S, m.id);
  char p[SRV_PATH_MAX];
  blob_path(q->S, p, "models", m.id, "htem");
  unlink(p);
  blob_path(q->S, p, "models", m.id, "plan");
  unlink(p);
  resp_json(r, 200, json_pack("{sI sb}", "id", (json_int_t)m.id, "deleted", 1));
}

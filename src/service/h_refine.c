/*
 * h_refine.c — refine job handlers (docs/api.md, "Refine jobs").
 *
 * Model provider: POST /v1/refine starts a job on one of its ready models:
 * the body is "HTRJ" | u32 json_len | JSON metadata | the MP's encrypted
 * initial state (a hetee_refine_checkpoint_write file). The metadata holds
 * the spec (hetee_refine_spec_encode: shapes, batch, accumulate, trained
 * layers, loss, lr, momentum, weight decay, seed), the data order (epochs
 * and samples per epoch, or continuous), the data providers that may
 * contribute, and the MP's authorization (hetee_refine_auth_msg_dps over
 * the model id, the spec, the initial state's digests and the same data
 * providers: the enclave accepts only their batches, docs/refine.md "Who
 * may contribute") sealed in one of its live enclave sessions. The list
 * stored here only answers early (403); the sealed one is what counts. The server opens the enclave's side of the job
 * with them (the enclave checks ownership, spec and digests), stores the
 * state as the job's first checkpoint and hands the job to the worker.
 * Status, stop, resume (a new authorization for the last checkpoint after
 * an enclave restart), the checkpoint (for that authorization) and the
 * refined weights of one trained layer, sealed by the enclave to the job's
 * MP session. Data provider: submits encrypted batches (one
 * hetee_refine_batch each, hetee_refine_batch_save) to a job whose policy names
 * it (403 otherwise) and sees how many of its samples each epoch used.
 * Jobs are visible to their owner and to the DPs their policy names; to
 * everyone else they do not exist (404).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hetee/common.h"
#include "service/refine_internal.h"

json_t *req_json(srv_req *q, srv_resp *r);
int session_owned(srv_req *q, srv_resp *r, const char *sid, int64_t *epoch, int64_t *seq);

#define RJ_JSON_MAX (64u << 10)
#define RJ_AUTH_MAX 4096

static int unhex_alloc(const char *h, size_t max, uint8_t **out, size_t *n) {
  size_t l = h ? strlen(h) : 0;
  *out = NULL;
  if (!l || l % 2 || l / 2 > max) return -1;
  *out = malloc(l / 2);
  if (!*out || reqsig_unhex(h, *out, l / 2)) {
    free(*out);
    *out = NULL;
    return -1;
  }
  *n = l / 2;
  return 0;
}

static char *hex_alloc(const uint8_t *b, size_t n) {
  char *h = malloc(2 * n + 1);
  if (h) reqsig_hex(b, n, h);
  return h;
}

/* The job of the path for its owner (owner_only) or also a DP its policy
 * names: 0, or *r answered 404. */
static int visible_job(srv_req *q, srv_resp *r, st_refine *j, int owner_only, uint8_t **spec, size_t *sl) {
  if (rstore_job_get(q->S->db, q->ids[0], j, spec, sl)) goto nf;
  if (!strcmp(j->owner, q->party)) return 0;
  if (!owner_only && q->role == ROLE_DP && !rstore_job_dp(q->S->db, j->id, q->party)) return 0;
  if (spec) {
    free(*spec);
    *spec = NULL;
  }
  if (!owner_only && q->role == ROLE_DP) {
    /* as for inference jobs on a model: a DP the policy does not name is refused */
    resp_error(r, 403, "not_allowed", "refine job %lld's policy does not name this data provider", (long long)j->id);
    return -1;
  }
nf:
  resp_error(r, 404, "not_found", "no refine job %lld", (long long)q->ids[0]);
  return -1;
}

void h_refine_start(srv_req *q, srv_resp *r) {
  server *S = q->S;
  uint8_t *buf = NULL, *spec = NULL, *auth = NULL, sid[16];
  size_t len = 0, sl = 0, al = 0;
  json_t *j = NULL;
  if (q->total < 8) {
    resp_error(r, 400, "empty_body", "the body is \"HTRJ\" | u32 json length | JSON | the encrypted initial state");
    return;
  }
  int rc = blob_read(q->file, S->o.max_model_bytes, &buf, &len);
  if (rc) {
    resp_status(r, rc, "reading the body");
    return;
  }
  uint32_t jl = len >= 8 ? (uint32_t)buf[4] | (uint32_t)buf[5] << 8 | (uint32_t)buf[6] << 16 | (uint32_t)buf[7] << 24 : 0;
  if (len < 8 || memcmp(buf, "HTRJ", 4) || jl == 0 || jl > RJ_JSON_MAX || jl >= len - 8) {
    free(buf);
    resp_error(r, 400, "bad_body", "the body is \"HTRJ\" | u32 json length | JSON | the encrypted initial state");
    return;
  }
  j = json_loadb((const char *)buf + 8, jl, 0, NULL);
  if (!json_is_object(j)) {
    free(buf);
    json_decref(j);
    resp_error(r, 400, "bad_json", "the metadata is not a JSON object");
    return;
  }
  json_t *jm = json_object_get(j, "model"), *je = json_object_get(j, "epochs"), *jn = json_object_get(j, "epoch_samples");
  const char *sidh = json_string_value(json_object_get(j, "session"));
  json_t *allow = json_object_get(j, "allow");
  int64_t model = json_is_integer(jm) ? json_integer_value(jm) : 0;
  int64_t epochs = je ? (json_is_integer(je) ? json_integer_value(je) : -1) : 0;
  int64_t esamp = jn ? (json_is_integer(jn) ? json_integer_value(jn) : -1) : 0;
  size_t nd = json_is_array(allow) ? json_array_size(allow) : 0;
  const char *bad = NULL;
  if (model < 1) bad = "\"model\": the id of one of your ready models";
  else if (epochs < 0 || epochs > 1000 || esamp < 0 || esamp > (1ll << 32) || (epochs > 0) != (esamp > 0))
    bad = "\"epochs\" 1..1000 with \"epoch_samples\" >= 1 (samples per epoch), or neither (continuous)";
  else if (nd < 1 || nd > HETEE_POLICY_MAX_DPS) bad = "\"allow\": 1 to 16 data provider keys (64 hex digits)";
  else if (unhex_alloc(json_string_value(json_object_get(j, "spec")), 1u << 16, &spec, &sl))
    bad = "\"spec\": the refine spec in hex (hetee_refine_spec_encode)";
  else if (unhex_alloc(json_string_value(json_object_get(j, "auth")), RJ_AUTH_MAX, &auth, &al))
    bad = "\"auth\": the sealed authorization in hex";
  else if (!sidh || strlen(sidh) != 32 || reqsig_unhex(sidh, sid, 16))
    bad = "\"session\": your enclave session's id (32 hex digits)";
  char dps[HETEE_POLICY_MAX_DPS][65];
  for (size_t i = 0; !bad && i < nd; i++) {
    const char *d = json_string_value(json_array_get(allow, i));
    uint8_t tmp[32];
    if (!d || strlen(d) != 64 || reqsig_unhex(d, tmp, 32)) bad = "\"allow\": data provider keys are 64 hex digits";
    else reqsig_hex(tmp, 32, dps[i]);
  }
  hetee_refine_plan p;
  if (!bad && hetee_refine_spec_decode(spec, sl, &p)) bad = "\"spec\" refused";
  if (bad) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s%s%s", bad, !strcmp(bad, "\"spec\" refused") ? ": " : "",
             !strcmp(bad, "\"spec\" refused") ? hetee_last_error() : "");
    free(buf);
    free(spec);
    free(auth);
    json_decref(j);
    resp_error(r, 400, "bad_refine", "%s", msg);
    return;
  }
  st_model m;
  if (store_model_get(S->db, model, &m) || strcmp(m.owner, q->party)) {
    free(buf);
    free(spec);
    free(auth);
    json_decref(j);
    resp_error(r, 404, "not_found", "no model %lld", (long long)model);
    return;
  }
  if (strcmp(m.state, "ready")) {
    free(buf);
    free(spec);
    free(auth);
    json_decref(j);
    resp_error(r, 409, "not_ready", "model %lld is %s (set its policy first)", (long long)model, m.state);
    return;
  }
  int64_t ep, seq;
  if (session_owned(q, r, sidh, &ep, &seq)) {
    free(buf);
    free(spec);
    free(auth);
    json_decref(j);
    return;
  }
  int64_t id = 0;
  rc = rstore_job_add(S->db, model, q->party, sidh, spec, sl, epochs, esamp, (const char(*)[65])dps, nd, &id);
  json_decref(j);
  free(spec);
  char ck[SRV_PATH_MAX];
  if (!rc) {
    blob_path(S, ck, "refine", id, "ckpt");
    rc = blob_write(S->data_dir, ck, buf + 8 + jl, len - 8 - jl);
  }
  free(buf);
  const char *step = "storing the job";
  if (!rc) {
    step = "opening the job in the enclave";
    rc = refine_live_open(S, id, &p, ck, sid, auth, al, 0);
  }
  free(auth);
  if (rc) {
    char why[300];
    snprintf(why, sizeof why, "%s: %s", step, hetee_last_error());
    if (id) (void)rstore_job_set_state(S->db, id, "failed", why);
    resp_status(r, rc, step);
    return;
  }
  snprintf(r->location, sizeof r->location, "/v1/refine/%lld", (long long)id);
  resp_json(r, 201, json_pack("{sI sI ss sI sI}", "id", (json_int_t)id, "model", (json_int_t)model, "state", "running",
                              "epochs", (json_int_t)epochs, "epoch_samples", (json_int_t)esamp));
}

void h_refine_list(srv_req *q, srv_resp *r) {
  const char *ms = req_query(q, "model");
  int64_t model = ms ? strtoll(ms, NULL, 10) : 0;
  resp_json(r, 200, json_pack("{so}", "jobs", rstore_jobs_json(q->S->db, q->party, model)));
}

/* json_object_update copies: the packed object is dropped after */
static void merge(json_t *o, json_t *add) {
  if (add) json_object_update(o, add);
  json_decref(add);
}

static const char *loss_name(int l) { return l == HETEE_REFINE_LOSS_MSE ? "mse" : "xent"; }

/* Where the job's checkpoint keeps the frozen layers' ciphertexts: null
 * (none: every layer trains), "checkpoint" (inside it: the MP's upload,
 * before the first sealed checkpoint) or the file ID.ckpt.frozen with the
 * size the checkpoint names, its size on disk and "written" (there, that
 * size), "missing" or "other_size" (the digest is checked when the file is
 * read, not here: 210 MB for mlp_small). */
static json_t *frozen_json(server *S, int64_t id) {
  char ck[SRV_PATH_MAX], fz[SRV_PATH_MAX + 8];
  blob_path(S, ck, "refine", id, "ckpt");
  int mode = 0;
  uint64_t size = 0;
  if (hetee_refine_checkpoint_frozen_info(ck, &mode, &size))
    return json_pack("{ss ss}", "state", "unknown", "error", hetee_last_error());
  if (mode == 0) return json_null();
  if (mode == 1) return json_pack("{ss}", "state", "checkpoint");
  snprintf(fz, sizeof fz, "%s.frozen", ck);
  struct stat sb;
  int there = stat(fz, &sb) == 0;
  const char *base = strrchr(fz, '/');
  return json_pack("{ss ss sI so}", "state", !there ? "missing" : (uint64_t)sb.st_size == size ? "written" : "other_size",
                   "file", base ? base + 1 : fz, "bytes", (json_int_t)size, "on_disk",
                   there ? json_integer((json_int_t)sb.st_size) : json_null());
}

void h_refine_show(srv_req *q, srv_resp *r) {
  st_refine j;
  uint8_t *spec = NULL;
  size_t sl = 0;
  if (visible_job(q, r, &j, 0, &spec, &sl)) return;
  int owner = !strcmp(j.owner, q->party);
  hetee_refine_plan p;
  int have_plan = !hetee_refine_spec_decode(spec, sl, &p);
  char *sh = hex_alloc(spec, sl);
  free(spec);
  int64_t nb = 0, ns = 0;
  (void)rstore_submitted(q->S->db, j.id, owner ? NULL : q->party, &nb, &ns);
  json_t *o = json_pack("{sI sI ss sI sI sI ss* sI sI}", "id", (json_int_t)j.id, "model", (json_int_t)j.model, "state",
                        j.state, "epochs", (json_int_t)j.epochs, "epoch_samples", (json_int_t)j.epoch_samples, "epoch",
                        (json_int_t)j.epoch, "spec", sh, "submitted_batches", (json_int_t)nb, "submitted_samples",
                        (json_int_t)ns);
  free(sh);
  if (have_plan)
    merge(o, json_pack("{si si si ss sf sf sf si si}", "batch", (int)p.cfg.batch, "accumulate",
                                    (int)p.cfg.accumulate, "train_layers", p.cfg.train_layers, "loss",
                                    loss_name(p.cfg.loss), "lr", p.cfg.lr, "momentum", p.cfg.momentum, "weight_decay",
                                    p.cfg.weight_decay, "first_train", p.first_train, "layers", p.nl));
  json_object_set_new(o, "used", rstore_used_json(q->S->db, j.id, owner ? NULL : q->party));
  st_model m;
  if (!store_model_get(q->S->db, j.model, &m)) {
    /* what a data provider needs to scale its samples as the model expects */
    json_object_set_new(o, "input_size", json_integer(m.in_size));
    json_object_set_new(o, "input_scale", json_real(m.input_scale));
  }
  if (owner) {
    int live = 0, pending = 0;
    refine_live_info(q->S, j.id, &live, &pending);
    merge(o, json_pack("{sI sI sI si si}", "steps", (json_int_t)j.steps, "updates", (json_int_t)j.updates,
                                    "samples", (json_int_t)j.samples, "pending_steps", pending, "enclave_holds", live));
    json_object_set_new(o, "allow", rstore_dps_json(q->S->db, j.id));
    json_t *en = refine_live_enclave_json(q->S, j.id);
    json_object_set_new(o, "enclave", en ? en : json_null());
    json_object_set_new(o, "frozen", frozen_json(q->S, j.id));
    /* the enclave's validation reports, sealed to the MP, one per epoch done */
    char vp[SRV_PATH_MAX];
    blob_path(q->S, vp, "refine", j.id, "htrv");
    json_t *va = json_null();
    if (access(vp, F_OK) == 0) {
      va = json_array();
      for (int64_t e = 0; e < j.epoch && e < 100000; e++) {
        char ext[32];
        snprintf(ext, sizeof ext, "val%lld", (long long)e);
        blob_path(q->S, vp, "refine", j.id, ext);
        uint8_t *rb = NULL;
        size_t rl = 0;
        if (blob_read(vp, 1u << 16, &rb, &rl)) continue;
        char *rh = hex_alloc(rb, rl);
        free(rb);
        json_array_append_new(va, json_pack("{sI ss}", "epoch", (json_int_t)e, "report", rh ? rh : ""));
        free(rh);
      }
    }
    json_object_set_new(o, "validation", va);
    if (j.error[0]) json_object_set_new(o, "error", json_string(j.error));
  }
  resp_json(r, 200, o);
}

void h_refine_stop(srv_req *q, srv_resp *r) {
  st_refine j;
  if (visible_job(q, r, &j, 1, NULL, NULL)) return;
  int rc = refine_live_stop(q->S, j.id);
  if (rc) {
    resp_status(r, rc, "stop");
    return;
  }
  resp_json(r, 202, json_pack("{sI ss}", "id", (json_int_t)j.id, "state", "stopping"));
}

void h_refine_resume(srv_req *q, srv_resp *r) {
  st_refine j;
  uint8_t *spec = NULL, *auth = NULL, sid[16];
  size_t sl = 0, al = 0;
  if (visible_job(q, r, &j, 1, &spec, &sl)) return;
  hetee_refine_plan p;
  int rc = hetee_refine_spec_decode(spec, sl, &p);
  free(spec);
  if (rc) {
    resp_status(r, rc, "the job's spec");
    return;
  }
  if (strcmp(j.state, "needs_auth")) {
    resp_error(r, 409, "conflict", "refine job %lld is %s; only a job in needs_auth resumes", (long long)j.id, j.state);
    return;
  }
  json_t *b = req_json(q, r);
  if (!b) return;
  const char *sidh = json_string_value(json_object_get(b, "session"));
  if (!sidh || strlen(sidh) != 32 || reqsig_unhex(sidh, sid, 16) ||
      unhex_alloc(json_string_value(json_object_get(b, "auth")), RJ_AUTH_MAX, &auth, &al)) {
    json_decref(b);
    resp_error(r, 400, "bad_resume", "{\"session\": 32 hex digits, \"auth\": the sealed authorization in hex}");
    return;
  }
  int64_t ep, seq;
  char sidc[33];
  snprintf(sidc, sizeof sidc, "%s", sidh);
  json_decref(b);
  if (session_owned(q, r, sidc, &ep, &seq)) {
    free(auth);
    return;
  }
  char ck[SRV_PATH_MAX];
  blob_path(q->S, ck, "refine", j.id, "ckpt");
  rc = refine_live_open(q->S, j.id, &p, ck, sid, auth, al, 1);
  free(auth);
  if (!rc) rc = rstore_job_set_session(q->S->db, j.id, sidc);
  if (!rc) rc = rstore_job_set_state(q->S->db, j.id, "running", NULL);
  if (rc) {
    resp_status(r, rc, "resume");
    return;
  }
  resp_json(r, 200, json_pack("{sI ss}", "id", (json_int_t)j.id, "state", "running"));
}

void h_refine_valset(srv_req *q, srv_resp *r) {
  st_refine j;
  uint8_t *spec = NULL, *buf = NULL;
  size_t sl = 0, len = 0;
  if (visible_job(q, r, &j, 1, &spec, &sl)) return;
  hetee_refine_plan p;
  int rc = hetee_refine_spec_decode(spec, sl, &p);
  free(spec);
  if (!rc && strcmp(j.state, "running") && strcmp(j.state, "needs_auth"))
    rc = hetee_error(HETEE_ERR_STATE, "refine job %lld is %s", (long long)j.id, j.state);
  hetee_refine_valset *vs = NULL;
  if (!rc) rc = blob_read(q->file, q->S->o.max_input_bytes, &buf, &len);
  if (!rc) rc = hetee_refine_valset_load(q->S->en.ctx, &p, buf, len, &vs);
  /* the enclave refuses every chunk without the MP's witness: so does the upload */
  if (!rc && !hetee_refine_valset_has_witness(vs))
    rc = hetee_error(HETEE_ERR_AUTH, "a validation set without the model provider's signed witness of each chunk");
  free(buf);
  hetee_refine_valset_free(vs);
  char dst[SRV_PATH_MAX];
  blob_path(q->S, dst, "refine", j.id, "htrv");
  if (!rc) {
    rc = blob_commit(q->fd, q->file, dst);
    q->fd = -1;
    if (!rc) q->file[0] = 0;
  }
  if (rc) {
    resp_status(r, rc, "validation set refused");
    return;
  }
  resp_json(r, 200, json_pack("{sI sb}", "id", (json_int_t)j.id, "validation_set", 1));
}

void h_refine_checkpoint(srv_req *q, srv_resp *r) {
  st_refine j;
  if (visible_job(q, r, &j, 1, NULL, NULL)) return;
  blob_path(q->S, r->file, "refine", j.id, "ckpt");
  r->status = 200;
  r->ctype = "application/octet-stream";
}

void h_refine_weights(srv_req *q, srv_resp *r) {
  st_refine j;
  if (visible_job(q, r, &j, 1, NULL, NULL)) return;
  const char *ls = req_query(q, "layer");
  char *end = NULL;
  long l = ls ? strtol(ls, &end, 10) : -1;
  if (!ls || !*ls || *end || l < 0 || l >= HETEE_REFINE_MAX_LAYERS) {
    resp_error(r, 400, "bad_layer", "?layer=L: a trained layer's index");
    return;
  }
  /* &auth=HEX: the MP's fetch authorization, sealed in the session the
   * weights go to (any live session of the job's MP) */
  const char *ah = req_query(q, "auth");
  uint8_t *auth = NULL;
  size_t alen = 0;
  if (ah && unhex_alloc(ah, RJ_AUTH_MAX, &auth, &alen)) {
    resp_error(r, 400, "bad_auth", "&auth=HEX: the fetch authorization sealed in the model provider's session");
    return;
  }
  uint8_t *sealed = NULL;
  size_t n = 0;
  int rc = refine_live_fetch(q->S, j.id, (int)l, auth, alen, &sealed, &n);
  free(auth);
  if (rc) {
    resp_status(r, rc, "fetch");
    return;
  }
  r->status = 200;
  r->ctype = "application/octet-stream";
  r->body = sealed;
  r->len = n;
}

typedef struct {
  int64_t job;
  st_refine row;
} samples_pre;

int h_refine_samples_pre(srv_req *q, srv_resp *r) {
  samples_pre *p = calloc(1, sizeof *p);
  if (!p) {
    resp_error(r, 503, "memory", "no memory");
    return -1;
  }
  q->hctx = p;
  if (rstore_job_get(q->S->db, q->ids[0], &p->row, NULL, NULL)) {
    resp_error(r, 404, "not_found", "no refine job %lld", (long long)q->ids[0]);
    return -1;
  }
  if (rstore_job_dp(q->S->db, p->row.id, q->party)) {
    resp_error(r, 403, "not_allowed", "refine job %lld's policy does not name this data provider", (long long)p->row.id);
    return -1;
  }
  if (strcmp(p->row.state, "running") && strcmp(p->row.state, "needs_auth")) {
    resp_error(r, 409, "finished", "refine job %lld is %s", (long long)p->row.id, p->row.state);
    return -1;
  }
  p->job = p->row.id;
  return 0;
}

void h_refine_samples(srv_req *q, srv_resp *r) {
  server *S = q->S;
  samples_pre *p = q->hctx;
  uint8_t *spec = NULL, *buf = NULL;
  size_t sl = 0, len = 0;
  st_refine row;
  hetee_refine_plan pl;
  int rc = rstore_job_get(S->db, p->job, &row, &spec, &sl);
  if (!rc) rc = hetee_refine_spec_decode(spec, sl, &pl);
  free(spec);
  if (rc) {
    resp_status(r, rc, "the job's spec");
    return;
  }
  hetee_refine_batch *b = NULL;
  rc = blob_read(q->file, S->o.max_input_bytes, &buf, &len);
  if (!rc) rc = hetee_refine_batch_load(S->en.ctx, &pl, buf, len, &b);
  free(buf);
  if (rc) {
    resp_status(r, rc, "encrypted batch refused");
    return;
  }
  int64_t count = hetee_refine_batch_count(b), id = 0;
  hetee_refine_batch_free(b);
  rc = rstore_batch_stage(S->db, p->job, q->party, count, &id);
  char dst[SRV_PATH_MAX];
  if (!rc) {
    blob_path(S, dst, "refine", id, "htrb");
    rc = blob_commit(q->fd, q->file, dst);
    q->fd = -1;
    if (!rc) q->file[0] = 0;
  }
  if (!rc) rc = rstore_batch_commit(S->db, p->job, id, row.epoch_samples);
  if (rc) {
    if (id) unlink(dst);
    resp_status(r, rc, "storing the batch");
    return;
  }
  refine_worker_kick(S);
  resp_json(r, 202, json_pack("{sI sI sI}", "job", (json_int_t)p->job, "batch", (json_int_t)id, "count", (json_int_t)count));
}

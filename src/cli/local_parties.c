/*
 * local_parties.c — see local_parties.h.
 */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#include <dirent.h>
#include <ftw.h>
#include <sched.h>
#include <libgen.h>
#include <limits.h>
#include <time.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/local_parties.h"

/* The enclave binary a party measures: where the host library looks for it
 * ($HETEE_BIN_DIR, else next to the running executable). */
static int enclave_path(char *out, size_t n) {
  char dir[PATH_MAX];
  int rc = hetee_host_bin_dir(dir, sizeof dir);
  if (!rc) snprintf(out, n, "%s/hetee-enclave", dir);
  return rc;
}

/* One party: verifies fresh evidence against the measurement it computes
 * and opens its session. */
static int party_session(local_parties *t, const hetee_party_key *id, const uint8_t ppk[32], const uint8_t meas[32],
                         const uint8_t *bundle, size_t blen, hetee_client_session **s) {
  uint8_t nonce[32], ch[32], fp[32], *ev = NULL, *hs = NULL, *reply = NULL;
  size_t evlen = 0, hlen = 0, rlen = 0;
  hetee_verified_enclave v;
  randombytes_buf(nonce, sizeof nonce);
  int rc = hetee_host_evidence(t->e, nonce, &ev, &evlen, ch, fp);
  if (!rc) rc = hetee_client_verify_evidence(ev, evlen, ppk, meas, bundle, blen, ch, nonce, &v);
  if (!rc) rc = hetee_client_session_new(id, &v, s, &hs, &hlen);
  if (!rc) rc = hetee_host_session_open(t->e, hs, hlen, &reply, &rlen);
  if (!rc) rc = hetee_client_session_finish(*s, reply, rlen);
  free(ev);
  free(hs);
  free(reply);
  return rc;
}

/* Sets the CPU mask of every thread of this process (threads created later,
 * and children, inherit the mask of their creator). */
static int set_affinity_all(const cpu_set_t *m) {
  int rc = 0;
  DIR *d = opendir("/proc/self/task");
  if (!d) return sched_setaffinity(0, sizeof *m, m) ? -1 : 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && sched_setaffinity((pid_t)atol(de->d_name), sizeof *m, m))
      rc = -1;
  closedir(d);
  return rc;
}

/* Pins this process to the first `cpus` CPUs of its current mask (the old
 * mask is kept in t->saved_affinity). */
static int pin_cpus(local_parties *t, int cpus) {
  cpu_set_t *old = malloc(sizeof *old), now;
  if (!old) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  CPU_ZERO(old);
  if (sched_getaffinity(0, sizeof *old, old)) {
    free(old);
    return hetee_error(HETEE_ERR_IO, "cannot read this process's CPU mask");
  }
  CPU_ZERO(&now);
  int k = 0;
  for (int c = 0; c < CPU_SETSIZE && k < cpus; c++)
    if (CPU_ISSET(c, old)) {
      CPU_SET(c, &now);
      k++;
    }
  t->saved_affinity = old;
  if (set_affinity_all(&now)) return hetee_error(HETEE_ERR_IO, "cannot pin this process to %d CPU(s)", cpus);
  t->cpus = k;
  return 0;
}

/* HETEE_ENCLAVE_DEFAULT_CONFIG with its threads= key set to `threads`. */
static int config_threads(int threads, char *out, size_t cap) {
  const char *def = HETEE_ENCLAVE_DEFAULT_CONFIG, *k = strstr(def, "threads=");
  size_t head = k ? (size_t)(k - def) : strlen(def);
  const char *tail = k ? strchr(k, ';') : NULL; /* what follows the key, from its ';' */
  int n = snprintf(out, cap, "%.*s%sthreads=%d%s", (int)head, def, !k && head ? ";" : "", threads, tail ? tail : "");
  return n < 0 || (size_t)n >= cap ? hetee_error(HETEE_ERR_LIMIT, "configuration too long") : 0;
}

int local_parties_start(local_parties *t, const char *platform) { return local_parties_start_cpus(t, platform, 0); }

int local_parties_start_cpus(local_parties *t, const char *platform, int cpus) {
  memset(t, 0, sizeof *t);
  if (cpus < 0 || cpus > 64) return hetee_error(HETEE_ERR_INVALID_ARG, "cpus %d (0..64)", cpus);
  if (sodium_init() < 0) return hetee_error(HETEE_ERR_CRYPTO, "libsodium");
  char base[HETEE_ENCLAVE_CONFIG_MAX + 1];
  if (cpus) {
    int rc = config_threads(cpus, base, sizeof base);
    if (!rc) rc = pin_cpus(t, cpus);
    if (rc) return rc;
  }
  char plat[400], bin[PATH_MAX + 32];
  if (!platform) {
    snprintf(t->dir, sizeof t->dir, "/tmp/hetee-run-XXXXXX");
    if (!mkdtemp(t->dir)) {
      t->dir[0] = 0;
      return hetee_error(HETEE_ERR_IO, "cannot create a temporary directory");
    }
    snprintf(plat, sizeof plat, "%s/platform", t->dir);
    int rc = hetee_platform_init(plat);
    if (rc) return rc;
    platform = plat;
  }
  uint8_t mp_pk[1][32], ppk[32], meas[32];
  int rc = hetee_party_key_generate(HETEE_PARTY_MP, &t->mp);
  if (!rc) rc = hetee_party_key_generate(HETEE_PARTY_DP, &t->dp);
  if (rc) return rc;
  hetee_party_key_public(t->mp, mp_pk[0]);
  if ((rc = hetee_enclave_config_with_mps(cpus ? base : NULL, (const uint8_t(*)[32])mp_pk, 1, t->config, sizeof t->config)))
    return rc;
  hetee_host_options o;
  memset(&o, 0, sizeof o);
  o.platform_dir = platform;
  o.config = t->config;
  if ((rc = hetee_host_start(&o, &t->e))) return rc;
  /* the rotation steps of the host's coefficient expansion (lane stages):
   * they depend on N only, taken from the default parameters the
   * configuration names (checked against the bundle's below) */
  int steps[8];
  size_t nsteps = 0;
  {
    hetee_ckks_literal lit;
    hetee_ckks_context *c0 = NULL;
    hetee_ckks_literal_default(&lit);
    rc = hetee_ckks_context_new(&lit, &c0);
    if (!rc) rc = hetee_ckks_expand_steps(c0, LOCAL_PARTIES_LANES, steps, 8, &nsteps);
    hetee_ckks_context_free(c0);
    if (rc) return rc;
  }
  if ((rc = hetee_host_keygen(t->e, steps, nsteps))) return rc;
  /* what each party checks: the platform key, the binary and configuration it
   * agreed to, and the key bundle it is about to encrypt under */
  uint8_t *bundle = NULL;
  size_t blen = 0;
  const uint8_t *item;
  size_t ilen;
  if ((rc = hetee_platform_load_public(platform, ppk)) || (rc = enclave_path(bin, sizeof bin)) ||
      (rc = hetee_measure_file(bin, t->config, meas)) || (rc = hetee_host_public_keys(t->e, &bundle, &blen)))
    return rc;
  rc = party_session(t, t->mp, ppk, meas, bundle, blen, &t->mps);
  if (!rc) rc = party_session(t, t->dp, ppk, meas, bundle, blen, &t->dps);
  if (!rc) rc = hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PARAMS, &item, &ilen);
  if (!rc) rc = hetee_ckks_context_load(item, ilen, &t->ctx);
  if (!rc) rc = hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PUBLIC_KEY, &item, &ilen);
  if (!rc) rc = hetee_ckks_public_key_load(t->ctx, item, ilen, &t->pk);
  /* the host's Galois keys (public evaluation keys of the same bundle) */
  if (!rc) rc = hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_GALOIS_KEYS, &item, &ilen);
  if (!rc) rc = hetee_ckks_galois_keys_load(t->ctx, item, ilen, &t->gk);
  for (size_t i = 0; i < nsteps && !rc; i++)
    if (!hetee_ckks_galois_keys_has_step(t->gk, steps[i]))
      rc = hetee_error(HETEE_ERR_NO_KEY, "the enclave's bundle lacks the expansion's rotation step %d", steps[i]);
  free(bundle);
  if (!rc) hetee_client_session_id(t->dps, t->dp_session);
  return rc;
}

int local_parties_policy(local_parties *t, uint32_t model_id, int kind, int prec_bits) {
  uint8_t dp_pk[32], *m = NULL, *s = NULL, *r = NULL, *p = NULL;
  size_t ml = 0, sl = 0, rl = 0, pl = 0;
  hetee_party_key_public(t->dp, dp_pk);
  int rc = hetee_client_msg_policy(model_id, kind, 0, prec_bits, dp_pk, &m, &ml);
  if (!rc) rc = hetee_client_session_seal(t->mps, m, ml, &s, &sl);
  if (!rc) rc = hetee_host_session_msg(t->e, s, sl, &r, &rl);
  if (!rc) rc = hetee_client_session_open(t->mps, r, rl, &p, &pl);
  free(m);
  free(s);
  free(r);
  free(p);
  return rc;
}

int local_parties_send(local_parties *t, hetee_client_session *ps, uint8_t *m, size_t ml, uint8_t **reply,
                       size_t *rlen) {
  uint8_t *s = NULL, *r = NULL, *p = NULL;
  size_t sl = 0, rl = 0, pl = 0;
  int rc = m ? 0 : HETEE_ERR_NOMEM;
  if (!rc) rc = hetee_client_session_seal(ps, m, ml, &s, &sl);
  if (!rc) rc = hetee_host_session_msg(t->e, s, sl, &r, &rl);
  if (!rc) rc = hetee_client_session_open(ps, r, rl, &p, &pl);
  free(m);
  free(s);
  free(r);
  if (!rc && reply) {
    *reply = p;
    *rlen = pl;
  } else {
    free(p);
  }
  return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

void local_parties_stop(local_parties *t) {
  hetee_client_session_free(t->mps);
  hetee_client_session_free(t->dps);
  hetee_party_key_free(t->mp);
  hetee_party_key_free(t->dp);
  hetee_ckks_public_key_free(t->pk);
  hetee_ckks_galois_keys_free(t->gk);
  hetee_ckks_context_free(t->ctx);
  hetee_host_free(t->e);
  if (t->dir[0] && nftw(t->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS) != 0)
    fprintf(stderr, "hetee: could not remove %s\n", t->dir);
  if (t->saved_affinity && set_affinity_all(t->saved_affinity))
    fprintf(stderr, "hetee: could not restore the CPU mask\n");
  free(t->saved_affinity);
  memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------- inference */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void stats_add(hetee_engine_stats *a, const hetee_engine_stats *b) {
  a->images += b->images;
  a->micro_batches += b->micro_batches;
  a->products += b->products;
  a->keyswitches += b->keyswitches;
  a->enclave_encryptions += b->enclave_encryptions;
  a->enclave_decryptions += b->enclave_decryptions;
  a->bytes_to_enclave += b->bytes_to_enclave;
  a->bytes_from_enclave += b->bytes_from_enclave;
  a->total_s += b->total_s;
  a->host_s += b->host_s;
  a->host_cpu_s += b->host_cpu_s;
  a->enclave_s += b->enclave_s;
  a->integrity_s += b->integrity_s;
  a->wall_enclave_s += b->wall_enclave_s;
  a->nstages = b->nstages;
  for (size_t s = 0; s < b->nstages; s++) hetee_engine_stage_stats_add(&a->stage[s], &b->stage[s]);
}

/* The data provider opens sample i's release: the predicted class. */
static int open_result(local_parties *t, uint32_t model_id, const uint8_t *sealed, size_t len, int *pred) {
  hetee_release_result r;
  int rc = hetee_client_release_open(t->dps, sealed, len, &r);
  if (rc) return rc;
  if (r.model_id != model_id || r.n < 1) rc = hetee_error(HETEE_ERR_PROTOCOL, "release for another model");
  else if (r.kind == HETEE_RELEASE_ARGMAX) *pred = (int)r.indices[0];
  else if (r.kind == HETEE_RELEASE_SOFTMAX) {
    size_t best = 0;
    for (size_t k = 1; k < r.n; k++)
      if (r.values[k] > r.values[best]) best = k;
    *pred = (int)best;
  } else
    rc = hetee_error(HETEE_ERR_PROTOCOL, "release of kind %d", r.kind);
  hetee_release_result_clear(&r);
  return rc;
}

int local_infer(local_parties *t, const hetee_nn_model *m, const hetee_engine_plan *p, const float *x, size_t n,
                int threads, uint32_t model_id, local_infer_result *res) {
  memset(res, 0, sizeof *res);
  res->pred = calloc(n ? n : 1, sizeof *res->pred);
  if (!res->pred) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  int rc = local_parties_policy(t, model_id, hetee_engine_plan_release_kind(p), 16);
  if (rc) return rc;
  /* model provider: encrypts, sends the file's bytes; the host loads them */
  hetee_engine_model *mp_model = NULL, *host_model = NULL;
  uint8_t *bytes = NULL;
  size_t blen = 0;
  double t0 = now();
  rc = hetee_engine_model_encrypt(t->ctx, t->pk, m, p, &mp_model);
  res->mp_encrypt_s = now() - t0;
  if (!rc) rc = hetee_engine_model_save(mp_model, &bytes, &blen);
  /* the model provider registers the model it encrypted (digest) */
  uint8_t *reg = NULL;
  size_t regl = 0;
  if (!rc && !t->unbound) rc = hetee_client_msg_model_register(model_id, mp_model, &reg, &regl);
  if (!rc && !t->unbound) rc = local_parties_send(t, t->mps, reg, regl, NULL, NULL);
  hetee_engine_model_free(mp_model);
  if (rc) return rc;
  t0 = now();
  rc = hetee_engine_model_load(t->ctx, bytes, blen, &host_model);
  res->model_load_s = now() - t0;
  free(bytes);
  if (rc) return rc;
  /* the host streams it to the enclave, which checks it and keeps its checks */
  t0 = now();
  rc = t->unbound ? 0 : hetee_engine_model_bind(t->e, host_model, model_id);
  res->model_bind_s = now() - t0;
  if (rc) {
    hetee_engine_model_free(host_model);
    return rc;
  }
  res->model_ct_bytes = hetee_engine_model_ct_bytes(host_model);
  /* lane stages: the host expands their inputs with its Galois keys */
  if (!rc && hetee_engine_plan_max_lanes(p) > LOCAL_PARTIES_LANES)
    rc = hetee_error(HETEE_ERR_NO_KEY, "the plan uses %d lanes, the host has the keys of %d",
                     hetee_engine_plan_max_lanes(p), LOCAL_PARTIES_LANES);
  if (!rc) rc = hetee_engine_model_set_expand_keys(host_model, t->gk);
  if (rc) {
    hetee_engine_model_free(host_model);
    return rc;
  }
  /* the data provider learns the enclave's release key through its attested
   * session: its input witnesses are sealed to it */
  uint8_t release_pk[32];
  if (!t->unbound) {
    uint8_t *km = NULL, *kr = NULL;
    size_t kml = 0, krl = 0;
    rc = hetee_client_msg_release_key(&km, &kml);
    if (!rc) rc = local_parties_send(t, t->dps, km, kml, &kr, &krl);
    if (!rc) rc = hetee_client_release_key_parse(kr, krl, release_pk);
    free(kr);
    if (rc) {
      hetee_engine_model_free(host_model);
      return rc;
    }
  }
  /* data provider and host, chunk by chunk (bounded memory) */
  const hetee_engine_plan *hp = hetee_engine_model_plan(host_model);
  size_t in = hetee_engine_plan_input_size(hp), chunk = (size_t)hetee_engine_plan_micro_batch(hp) * 16;
  for (size_t first = 0; first < n && !rc; first += chunk) {
    size_t cnt = n - first < chunk ? n - first : chunk;
    hetee_engine_input *dp_in = NULL, *host_in = NULL;
    hetee_engine_results out = {0};
    hetee_engine_stats st;
    hetee_engine_witnesses wit = {0};
    t0 = now();
    rc = hetee_engine_input_encrypt(t->ctx, t->pk, p, x + first * in, cnt, &dp_in);
    if (!rc) rc = hetee_engine_input_save(dp_in, &bytes, &blen);
    /* the data provider seals its values as each micro-batch's witness and
     * authorizes exactly these witnesses */
    uint8_t *auth = NULL;
    size_t authl = 0;
    if (!rc && !t->unbound) rc = hetee_engine_witnesses_make(p, model_id, release_pk, x + first * in, cnt, &wit);
    if (!rc && !t->unbound) rc = hetee_client_msg_job_auth_witness(model_id, &wit, &auth, &authl);
    if (!rc && !t->unbound) rc = local_parties_send(t, t->dps, auth, authl, NULL, NULL);
    res->dp_encrypt_s += now() - t0;
    hetee_engine_input_free(dp_in);
    if (rc) {
      hetee_engine_witnesses_clear(&wit);
      break;
    }
    t0 = now();
    rc = hetee_engine_input_load(t->ctx, hp, bytes, blen, &host_in);
    res->input_load_s += now() - t0;
    free(bytes);
    if (!rc)
      rc = t->unbound ? hetee_engine_run(t->e, host_model, host_in, model_id, t->dp_session, threads, &out, &st)
                      : hetee_engine_run_witnessed(t->e, host_model, host_in, &wit, model_id, t->dp_session, threads,
                                                   &out, &st);
    hetee_engine_input_free(host_in);
    hetee_engine_witnesses_clear(&wit);
    if (rc) break;
    stats_add(&res->stats, &st);
    t0 = now();
    for (size_t i = 0; i < cnt && !rc; i++) rc = open_result(t, model_id, out.sealed[i], out.lens[i], &res->pred[first + i]);
    res->dp_open_s += now() - t0;
    hetee_engine_results_clear(&out);
    res->n = first + cnt;
  }
  hetee_engine_model_free(host_model);
  return rc;
}

void local_infer_clear(local_infer_result *r) {
  free(r->pred);
  memset(r, 0, sizeof *r);
}

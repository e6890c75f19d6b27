/*
 * ckks_fixture.h — CKKS-side helpers of the enclave tests: a context and
 * public key taken from the enclave's published key bundle (what a real
 * encryptor does), encryption of slot vectors, and reading refreshed results
 * back through the only door the enclave has: a release of rounded values to
 * a data provider's session.
 *
 * Order: ckfx_parties (identity keys, and the configuration whose mp= list
 * names the model provider — it must exist before the enclave starts, since
 * it is measured), ckfx_start, ckfx_init.
 */
#ifndef HETEE_TEST_ENCLAVE_CKKS_FIXTURE_H
#define HETEE_TEST_ENCLAVE_CKKS_FIXTURE_H

#include "enclave/fixture.h"
#include "hetee/ckks.h"

typedef struct ckfx {
  hetee_ckks_context *ctx;
  hetee_ckks_public_key *pk;
  size_t slots;
  hetee_party_key *mp, *dp;
  hetee_client_session *mps, *dps;
  char config[HETEE_ENCLAVE_CONFIG_MAX + 1]; /* base + mp=<the MP's key> */
} ckfx;

/* MP and DP identity keys; the enclave configuration `base` (NULL: default)
 * with the MP in its mp= list. */
static inline void ckfx_parties(ckfx *c, const char *base) {
  memset(c, 0, sizeof *c);
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_MP, &c->mp), 0);
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_DP, &c->dp), 0);
  fx_config_mps(base, &c->mp, 1, c->config, sizeof c->config);
}

/* Starts the enclave with c's configuration. */
static inline hetee_host_enclave *ckfx_start(ckfx *c, const char *platform, const char *seal_path, int auto_restart) {
  return fx_start_cfg(platform, NULL, seal_path, auto_restart, c->config);
}

/* Generates keys in the enclave, verifies its evidence (against c's
 * configuration), loads the bundle and opens an MP and a DP session. */
static inline void ckfx_init(ckfx *c, hetee_host_enclave *e, const char *platform, const int *steps, size_t nsteps) {
  int rc = hetee_host_keygen(e, steps, nsteps);
  if (rc) fprintf(stderr, "keygen: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  uint8_t *bundle;
  size_t blen;
  assert_int_equal(hetee_host_public_keys(e, &bundle, &blen), 0);
  const uint8_t *item;
  size_t ilen;
  assert_int_equal(hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PARAMS, &item, &ilen), 0);
  assert_int_equal(hetee_ckks_context_load(item, ilen, &c->ctx), 0);
  assert_int_equal(hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PUBLIC_KEY, &item, &ilen), 0);
  assert_int_equal(hetee_ckks_public_key_load(c->ctx, item, ilen, &c->pk), 0);
  free(bundle);
  c->slots = hetee_ckks_context_slots(c->ctx);
  hetee_verified_enclave v, w; /* each party verifies on its own nonce */
  fx_verify_cfg(e, platform, c->config, &v);
  fx_verify_cfg(e, platform, c->config, &w);
  c->mps = fx_session(e, c->mp, &v);
  c->dps = fx_session(e, c->dp, &w);
}

static inline void ckfx_free(ckfx *c) {
  hetee_client_session_free(c->mps);
  hetee_client_session_free(c->dps);
  hetee_party_key_free(c->mp);
  hetee_party_key_free(c->dp);
  hetee_ckks_public_key_free(c->pk);
  hetee_ckks_context_free(c->ctx);
}

/* The common test environment: a temporary sim platform, the parties, an
 * enclave started and initialised (rotation keys for steps[0..nsteps)).
 * Test files embed it first in their fixture and free it with
 * ckfx_env_stop. */
typedef struct {
  char dir[256], plat[300];
  hetee_host_enclave *e;
  ckfx c;
} ckfx_env;

static inline void ckfx_env_start(ckfx_env *v, const int *steps, size_t nsteps) {
  fx_tmp_platform(v->dir, sizeof v->dir, v->plat, sizeof v->plat);
  ckfx_parties(&v->c, NULL);
  v->e = ckfx_start(&v->c, v->plat, NULL, 0);
  ckfx_init(&v->c, v->e, v->plat, steps, nsteps);
}

static inline void ckfx_env_stop(ckfx_env *v) {
  ckfx_free(&v->c);
  fx_stop(v->e, v->dir);
}

/* cmocka group setup / teardown for tests whose fixture is a ckfx_env
 * without rotation keys */
static inline int ckfx_env_setup(void **state) {
  ckfx_env *v = calloc(1, sizeof *v);
  ckfx_env_start(v, NULL, 0);
  *state = v;
  return 0;
}

static inline int ckfx_env_teardown(void **state) {
  ckfx_env_stop(*state);
  free(*state);
  return 0;
}

/* Sets model `model`'s release policy through the MP session; dp_pk NULL:
 * c's data provider. */
static inline void ckfx_policy(ckfx *c, hetee_host_enclave *e, uint32_t model, int kind, int k, int prec,
                               const uint8_t *dp_pk) {
  uint8_t *m, *s, *r, *p, own[32];
  size_t ml, sl, rl, pl;
  hetee_party_key_public(c->dp, own);
  assert_int_equal(hetee_client_msg_policy(model, kind, k, prec, dp_pk ? dp_pk : own, &m, &ml), 0);
  assert_int_equal(hetee_client_session_seal(c->mps, m, ml, &s, &sl), 0);
  int rc = hetee_host_session_msg(e, s, sl, &r, &rl);
  if (rc) fprintf(stderr, "policy: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  assert_int_equal(hetee_client_session_open(c->mps, r, rl, &p, &pl), 0);
  free(m);
  free(s);
  free(r);
  free(p);
}

/* Public-key encryption of a full slot vector at the top level and `scale`;
 * returns the serialized ct. */
static inline uint8_t *ckfx_encrypt_at(ckfx *c, const double *v, double scale, size_t *len) {
  hetee_ckks_plaintext *pt;
  hetee_ckks_ciphertext *ct;
  assert_int_equal(hetee_ckks_plaintext_new(c->ctx, &pt), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(c->ctx, &ct), 0);
  assert_int_equal(hetee_ckks_encode_real(c->ctx, v, c->slots, scale, hetee_ckks_context_max_level(c->ctx), pt), 0);
  assert_int_equal(hetee_ckks_encrypt_pk(c->ctx, c->pk, pt, ct), 0);
  uint8_t *b;
  assert_int_equal(hetee_ckks_ciphertext_save(c->ctx, ct, &b, len), 0);
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_ciphertext_free(ct);
  return b;
}

/* ... at the default scale. */
static inline uint8_t *ckfx_encrypt(ckfx *c, const double *v, size_t *len) {
  return ckfx_encrypt_at(c, v, hetee_ckks_context_default_scale(c->ctx), len);
}

/* Scale at which ckfx_read releases: large enough that the release's
 * flooding noise (n 2^59 / scale, hetee_release_spec) stays far below
 * 2^-24 for the few values tests read. */
#define CKFX_READ_SCALE 0x1p100

/* Reads values at global slots map[0..n) of cts (all at one level and
 * scale, as refresh outputs are) the only way the enclave lets them out:
 * an identity refresh to CKFX_READ_SCALE at the top level, then a VALUES
 * release (model 0xFFFF, 24 fractional bits: the most the enclave releases
 * at scale 2^40) opened by the DP session. */
static inline void ckfx_read_enc(ckfx *c, hetee_host_enclave *e, int enc, const uint32_t *map, size_t n,
                                 uint8_t *const *cts, const size_t *lens, size_t ncts, double *out) {
  hetee_ckks_ciphertext *ct0;
  assert_int_equal(hetee_ckks_ciphertext_load(c->ctx, cts[0], lens[0], &ct0), 0);
  uint32_t *idx = malloc(n * sizeof *idx);
  for (size_t i = 0; i < n; i++) idx[i] = (uint32_t)i;
  hetee_refresh_spec s = {.shape = {1, 1, (int)n}, .in_map = map, .in_encoding = enc,
                          .in_level = hetee_ckks_ciphertext_level(ct0),
                          .in_scale = hetee_ckks_ciphertext_scale(ct0), .out_ncts = (uint32_t)((n + c->slots - 1) / c->slots),
                          .out_n = n, .out_dst = idx, .out_src = idx, .out_level = -1, .out_scale = CKFX_READ_SCALE};
  hetee_ckks_ciphertext_free(ct0);
  uint8_t **hi;
  size_t *hlens, nhi;
  int rc = hetee_host_refresh(e, &s, (const uint8_t *const *)cts, lens, ncts, &hi, &hlens, &nhi);
  if (rc) fprintf(stderr, "read refresh: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  ckfx_policy(c, e, 0xFFFF, HETEE_RELEASE_VALUES, 0, 24, NULL);
  uint8_t sid[16], *sealed;
  size_t slen;
  hetee_client_session_id(c->dps, sid);
  const hetee_release_spec rs = {.in_level = -1, .in_scale = CKFX_READ_SCALE, .map = idx, .n = n};
  rc = hetee_host_release(e, 0xFFFF, sid, &rs, (const uint8_t *const *)hi, hlens, nhi, &sealed, &slen);
  if (rc) fprintf(stderr, "release: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  hetee_release_result res;
  assert_int_equal(hetee_client_release_open(c->dps, sealed, slen, &res), 0);
  assert_int_equal(res.n, n);
  memcpy(out, res.values, n * sizeof *out);
  hetee_release_result_clear(&res);
  free(sealed);
  hetee_host_cts_free(hi, hlens, nhi);
  free(idx);
}

/* ... for slot-encoded ciphertexts. */
static inline void ckfx_read(ckfx *c, hetee_host_enclave *e, const uint32_t *map, size_t n, uint8_t *const *cts,
                             const size_t *lens, size_t ncts, double *out) {
  ckfx_read_enc(c, e, HETEE_ENC_SLOTS, map, n, cts, lens, ncts, out);
}

#endif

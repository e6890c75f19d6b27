/*
 * tests/enclave/test_policy_auth.c — who may set release policies, with the
 * real launcher + enclave processes (the fix of the release-oracle hole,
 * docs/security.md "Release authorization"). Party identities are
 * self-declared keys, so the enclave accepts a policy only from a model
 * provider listed in its measured configuration (mp=), binds each model id
 * to the first MP that sets its policy, and releases only to the one data
 * provider a policy names:
 *   - an "MP" identity the host made up (not in mp=) cannot set a policy,
 *     nor overwrite an existing one;
 *   - a listed MP can; a second listed MP cannot overwrite the first one's
 *     model; the owner can update its own policy;
 *   - a DP not named (another DP, a host-made DP, the MP) cannot be the
 *     target of a release; a policy naming no DP is refused;
 *   - after seal, kill -9, automatic restart and unseal, ownership is kept;
 *   - an enclave whose configuration has no mp= key refuses every policy;
 *   - the mp= list is measured: a party that expects the list it agreed to
 *     refuses an enclave started with the host's key added, and that
 *     enclave cannot unseal the state sealed under the agreed list.
 */
#include <math.h>
#include <signal.h>

#include "enclave/ckks_fixture.h"

typedef struct {
  char dir[256], plat[300], seal[400];
  char config[HETEE_ENCLAVE_CONFIG_MAX + 1]; /* default + mp=mp1,mp2 */
  hetee_party_key *mp1, *mp2, *dp1, *dp2, *host_mp, *host_dp;
  hetee_host_enclave *e;
  hetee_ckks_context *ctx;
  hetee_ckks_public_key *pk;
  uint8_t *ct;
  size_t ctlen;
  double x[4];
  uint32_t map[4];
} fx;

static hetee_party_key *gen(int role) {
  hetee_party_key *k;
  assert_int_equal(hetee_party_key_generate(role, &k), 0);
  return k;
}

/* Keys, bundle and one ciphertext of 4 known values under the enclave's key. */
static void keys_and_ct(fx *f) {
  assert_int_equal(hetee_host_keygen(f->e, NULL, 0), 0);
  uint8_t *bundle;
  size_t blen, ilen;
  const uint8_t *item;
  assert_int_equal(hetee_host_public_keys(f->e, &bundle, &blen), 0);
  assert_int_equal(hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PARAMS, &item, &ilen), 0);
  assert_int_equal(hetee_ckks_context_load(item, ilen, &f->ctx), 0);
  assert_int_equal(hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PUBLIC_KEY, &item, &ilen), 0);
  assert_int_equal(hetee_ckks_public_key_load(f->ctx, item, ilen, &f->pk), 0);
  free(bundle);
  size_t slots = hetee_ckks_context_slots(f->ctx);
  double *sv = calloc(slots, sizeof *sv);
  static const double vals[4] = {1.5, -0.25, 2.75, 0.5};
  for (int i = 0; i < 4; i++) {
    f->x[i] = vals[i];
    f->map[i] = (uint32_t)(11 * i + 3);
    sv[f->map[i]] = vals[i];
  }
  hetee_ckks_plaintext *pt;
  hetee_ckks_ciphertext *ct;
  assert_int_equal(hetee_ckks_plaintext_new(f->ctx, &pt), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(f->ctx, &ct), 0);
  assert_int_equal(hetee_ckks_encode_real(f->ctx, sv, slots, 0x1p90,
                                          hetee_ckks_context_max_level(f->ctx), pt),
                   0);
  assert_int_equal(hetee_ckks_encrypt_pk(f->ctx, f->pk, pt, ct), 0);
  assert_int_equal(hetee_ckks_ciphertext_save(f->ctx, ct, &f->ct, &f->ctlen), 0);
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_ciphertext_free(ct);
  free(sv);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  fx_tmp_platform(f->dir, sizeof f->dir, f->plat, sizeof f->plat);
  snprintf(f->seal, sizeof f->seal, "%s/enclave.sealed", f->dir);
  f->mp1 = gen(HETEE_PARTY_MP);
  f->mp2 = gen(HETEE_PARTY_MP);
  f->dp1 = gen(HETEE_PARTY_DP);
  f->dp2 = gen(HETEE_PARTY_DP);
  f->host_mp = gen(HETEE_PARTY_MP); /* identities the host makes up */
  f->host_dp = gen(HETEE_PARTY_DP);
  hetee_party_key *listed[2] = {f->mp1, f->mp2};
  fx_config_mps(NULL, listed, 2, f->config, sizeof f->config);
  f->e = fx_start_cfg(f->plat, NULL, f->seal, 1, f->config);
  keys_and_ct(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  hetee_host_free(f->e);
  free(f->ct);
  hetee_ckks_public_key_free(f->pk);
  hetee_ckks_context_free(f->ctx);
  hetee_party_key *ks[6] = {f->mp1, f->mp2, f->dp1, f->dp2, f->host_mp, f->host_dp};
  for (int i = 0; i < 6; i++) hetee_party_key_free(ks[i]);
  fx_rmtree(f->dir);
  free(f);
  return 0;
}

/* A session for key k, bound to evidence verified against f's configuration
 * (the host-made identities verify too: evidence is public). */
static hetee_client_session *open_as(fx *f, const hetee_party_key *k) {
  hetee_verified_enclave v;
  fx_verify_cfg(f->e, f->plat, f->config, &v);
  return fx_session(f->e, k, &v);
}

/* SET_POLICY over session s (raw message bytes); returns the enclave's
 * answer, checking that an accepted policy is confirmed on the session. */
static int send_policy_raw(fx *f, hetee_client_session *s, const uint8_t *m, size_t ml) {
  uint8_t *sm, *r, *p;
  size_t sml, rl, pl;
  assert_int_equal(hetee_client_session_seal(s, m, ml, &sm, &sml), 0);
  int rc = hetee_host_session_msg(f->e, sm, sml, &r, &rl);
  free(sm);
  if (!rc) {
    assert_int_equal(hetee_client_session_open(s, r, rl, &p, &pl), 0);
    assert_true(pl >= 2 && p[0] == 2 && p[1] == 0); /* the command echoed */
    free(p);
    free(r);
  }
  return rc;
}

static int set_policy(fx *f, hetee_client_session *s, uint32_t model, int kind, const hetee_party_key *dp) {
  uint8_t dp_pk[32], *m;
  size_t ml;
  hetee_party_key_public(dp, dp_pk);
  assert_int_equal(hetee_client_msg_policy(model, kind, kind == HETEE_RELEASE_TOPK ? 2 : 0, 8, dp_pk, &m, &ml), 0);
  int rc = send_policy_raw(f, s, m, ml);
  free(m);
  return rc;
}

static int release_to(fx *f, uint32_t model, hetee_client_session *to, uint8_t **sealed, size_t *len) {
  uint8_t sid[16];
  hetee_client_session_id(to, sid);
  const uint8_t *cts[1] = {f->ct};
  const hetee_release_spec rs = {.in_level = -1, .in_scale = 0x1p90, .map = f->map, .n = 4};
  return hetee_host_release(f->e, model, sid, &rs, cts, &f->ctlen, 1, sealed, len);
}

/* Releases model's result to session s and checks what s opens: values
 * rounded to 2^-8 (VALUES) or the index of 2.75 (ARGMAX). */
static void release_ok(fx *f, uint32_t model, hetee_client_session *s, int kind) {
  uint8_t *sealed;
  size_t len;
  int rc = release_to(f, model, s, &sealed, &len);
  if (rc) fprintf(stderr, "release: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  hetee_release_result r;
  assert_int_equal(hetee_client_release_open(s, sealed, len, &r), 0);
  assert_int_equal(r.kind, kind);
  assert_int_equal(r.model_id, model);
  if (kind == HETEE_RELEASE_VALUES) {
    assert_int_equal(r.n, 4);
    for (int i = 0; i < 4; i++) assert_true(fabs(r.values[i] - f->x[i]) <= 1.0 / 512 + 1e-6);
  } else {
    assert_int_equal(r.n, 1);
    assert_int_equal(r.indices[0], 2);
  }
  hetee_release_result_clear(&r);
  free(sealed);
}

static void test_unlisted_mp_refused(void **state) {
  fx *f = *state;
  hetee_client_session *hm = open_as(f, f->host_mp), *hd = open_as(f, f->host_dp);
  /* the attack of the audit: a made-up MP names a made-up DP */
  assert_int_equal(set_policy(f, hm, 1, HETEE_RELEASE_VALUES, f->host_dp), HETEE_ERR_AUTH);
  assert_non_null(strstr(hetee_last_error(), "mp="));
  uint8_t *sealed;
  size_t len;
  assert_int_equal(release_to(f, 1, hd, &sealed, &len), HETEE_ERR_NOT_FOUND); /* nothing was set */
  /* nor can it overwrite a listed MP's policy */
  hetee_client_session *m1 = open_as(f, f->mp1), *d1 = open_as(f, f->dp1);
  assert_int_equal(set_policy(f, m1, 1, HETEE_RELEASE_VALUES, f->dp1), 0);
  assert_int_equal(set_policy(f, hm, 1, HETEE_RELEASE_VALUES, f->host_dp), HETEE_ERR_AUTH);
  assert_int_equal(release_to(f, 1, hd, &sealed, &len), HETEE_ERR_AUTH);
  release_ok(f, 1, d1, HETEE_RELEASE_VALUES); /* the policy is still mp1's */
  hetee_client_session_free(hm);
  hetee_client_session_free(hd);
  hetee_client_session_free(m1);
  hetee_client_session_free(d1);
}

static void test_listed_mp_owns_its_model(void **state) {
  fx *f = *state;
  hetee_client_session *m1 = open_as(f, f->mp1), *m2 = open_as(f, f->mp2), *d1 = open_as(f, f->dp1),
                       *d2 = open_as(f, f->dp2);
  assert_int_equal(set_policy(f, m1, 1, HETEE_RELEASE_VALUES, f->dp1), 0);
  release_ok(f, 1, d1, HETEE_RELEASE_VALUES);
  /* a second listed MP cannot take the model over (to its own DP) */
  assert_int_equal(set_policy(f, m2, 1, HETEE_RELEASE_VALUES, f->dp2), HETEE_ERR_AUTH);
  assert_non_null(strstr(hetee_last_error(), "belongs to"));
  uint8_t *sealed;
  size_t len;
  assert_int_equal(release_to(f, 1, d2, &sealed, &len), HETEE_ERR_AUTH);
  /* the owner may change its own policy; mp2 may own another model */
  assert_int_equal(set_policy(f, m1, 1, HETEE_RELEASE_ARGMAX, f->dp1), 0);
  release_ok(f, 1, d1, HETEE_RELEASE_ARGMAX);
  assert_int_equal(set_policy(f, m2, 2, HETEE_RELEASE_VALUES, f->dp2), 0);
  release_ok(f, 2, d2, HETEE_RELEASE_VALUES);
  assert_int_equal(set_policy(f, m1, 2, HETEE_RELEASE_VALUES, f->dp1), HETEE_ERR_AUTH);
  hetee_client_session_free(m1);
  hetee_client_session_free(m2);
  hetee_client_session_free(d1);
  hetee_client_session_free(d2);
}

static void test_only_the_named_dp(void **state) {
  fx *f = *state;
  hetee_client_session *m1 = open_as(f, f->mp1), *d1 = open_as(f, f->dp1), *d2 = open_as(f, f->dp2),
                       *hd = open_as(f, f->host_dp);
  assert_int_equal(set_policy(f, m1, 5, HETEE_RELEASE_VALUES, f->dp1), 0);
  uint8_t *sealed;
  size_t len;
  assert_int_equal(release_to(f, 5, d2, &sealed, &len), HETEE_ERR_AUTH);
  assert_int_equal(release_to(f, 5, hd, &sealed, &len), HETEE_ERR_AUTH);
  assert_int_equal(release_to(f, 5, m1, &sealed, &len), HETEE_ERR_AUTH);
  release_ok(f, 5, d1, HETEE_RELEASE_VALUES);
  /* "any data provider" is gone: the client refuses to encode it, and the
   * enclave refuses the bytes (u16 cmd 2 | u32 model | kind | k | prec | 0^32) */
  uint8_t *m;
  size_t ml;
  assert_int_equal(hetee_client_msg_policy(6, HETEE_RELEASE_VALUES, 0, 8, NULL, &m, &ml), HETEE_ERR_INVALID_ARG);
  uint8_t raw[2 + 4 + 3 + 32] = {2, 0, 6, 0, 0, 0, HETEE_RELEASE_VALUES, 0, 8};
  assert_int_equal(send_policy_raw(f, m1, raw, sizeof raw), HETEE_ERR_INVALID_ARG);
  assert_int_equal(release_to(f, 6, hd, &sealed, &len), HETEE_ERR_NOT_FOUND);
  hetee_client_session_free(m1);
  hetee_client_session_free(d1);
  hetee_client_session_free(d2);
  hetee_client_session_free(hd);
}

static void test_ownership_survives_restart(void **state) {
  fx *f = *state;
  hetee_client_session *m1 = open_as(f, f->mp1);
  assert_int_equal(set_policy(f, m1, 3, HETEE_RELEASE_VALUES, f->dp1), 0);
  hetee_client_session_free(m1);
  assert_int_equal(hetee_host_seal(f->e, f->seal), 0);
  hetee_host_info before, after;
  assert_int_equal(hetee_host_info_get(f->e, &before), 0);
  assert_int_equal(kill(before.pid, SIGKILL), 0);
  fx_wait_dead(before.pid);
  assert_int_equal(hetee_host_info_get(f->e, &after), HETEE_ERR_IO); /* found dead, restarted, unsealed */
  assert_int_equal(hetee_host_info_get(f->e, &after), 0);
  assert_int_not_equal(before.pid, after.pid);
  assert_true(after.have_keys);
  assert_string_equal(after.config, f->config);
  /* sessions died with the process; the policy and its owner did not */
  hetee_client_session *m2 = open_as(f, f->mp2), *hm = open_as(f, f->host_mp), *d1 = open_as(f, f->dp1);
  assert_int_equal(set_policy(f, m2, 3, HETEE_RELEASE_VALUES, f->dp2), HETEE_ERR_AUTH);
  assert_non_null(strstr(hetee_last_error(), "belongs to"));
  assert_int_equal(set_policy(f, hm, 3, HETEE_RELEASE_VALUES, f->host_dp), HETEE_ERR_AUTH);
  release_ok(f, 3, d1, HETEE_RELEASE_VALUES);
  m1 = open_as(f, f->mp1);
  assert_int_equal(set_policy(f, m1, 3, HETEE_RELEASE_ARGMAX, f->dp1), 0);
  release_ok(f, 3, d1, HETEE_RELEASE_ARGMAX);
  /* an explicit unseal of the old state brings the old policy back (no
   * rollback protection), still owned by mp1 */
  assert_int_equal(hetee_host_unseal(f->e, f->seal), 0);
  assert_int_equal(set_policy(f, m2, 3, HETEE_RELEASE_VALUES, f->dp2), HETEE_ERR_AUTH);
  release_ok(f, 3, d1, HETEE_RELEASE_VALUES);
  hetee_client_session_free(m1);
  hetee_client_session_free(m2);
  hetee_client_session_free(hm);
  hetee_client_session_free(d1);
}

static void test_no_mp_key_no_policy(void **state) {
  fx *f = *state;
  hetee_host_enclave *e = fx_start(f->plat, NULL, NULL, 0); /* default configuration: no mp= */
  assert_int_equal(hetee_host_keygen(e, NULL, 0), 0);
  hetee_verified_enclave v, w;
  fx_verify(e, f->plat, &v);
  fx_verify(e, f->plat, &w);
  hetee_client_session *m1 = fx_session(e, f->mp1, &v), *d1 = fx_session(e, f->dp1, &w);
  uint8_t dp_pk[32], *m, *sm, *r;
  size_t ml, sml, rl;
  hetee_party_key_public(f->dp1, dp_pk);
  assert_int_equal(hetee_client_msg_policy(1, HETEE_RELEASE_ARGMAX, 0, 0, dp_pk, &m, &ml), 0);
  assert_int_equal(hetee_client_session_seal(m1, m, ml, &sm, &sml), 0);
  assert_int_equal(hetee_host_session_msg(e, sm, sml, &r, &rl), HETEE_ERR_AUTH);
  assert_non_null(strstr(hetee_last_error(), "no mp= key"));
  uint8_t sid[16], *sealed;
  size_t len;
  hetee_client_session_id(d1, sid);
  const uint8_t *cts[1] = {f->ct}; /* (another enclave's key: never reached) */
  const hetee_release_spec rs = {.in_level = -1, .in_scale = 0x1p90, .map = f->map, .n = 4};
  assert_int_equal(hetee_host_release(e, 1, sid, &rs, cts, &f->ctlen, 1, &sealed, &len),
                   HETEE_ERR_NOT_FOUND);
  free(m);
  free(sm);
  hetee_client_session_free(m1);
  hetee_client_session_free(d1);
  hetee_host_free(e);
}

static void test_mp_list_is_measured(void **state) {
  fx *f = *state;
  hetee_client_session *m1 = open_as(f, f->mp1);
  assert_int_equal(set_policy(f, m1, 4, HETEE_RELEASE_VALUES, f->dp1), 0);
  hetee_client_session_free(m1);
  assert_int_equal(hetee_host_seal(f->e, f->seal), 0);
  /* the host starts the same binary with its own key added to mp= */
  char forged[HETEE_ENCLAVE_CONFIG_MAX + 1];
  hetee_party_key *three[3] = {f->mp1, f->mp2, f->host_mp};
  fx_config_mps(NULL, three, 3, forged, sizeof forged);
  hetee_host_enclave *e = fx_start_cfg(f->plat, NULL, NULL, 0, forged);
  assert_int_equal(hetee_host_keygen(e, NULL, 0), 0);
  fx_evidence x;
  uint8_t ppk[32], want[32];
  fx_get_evidence(e, &x);
  assert_int_equal(hetee_platform_load_public(f->plat, ppk), 0);
  fx_expected_measurement_cfg(f->config, want); /* what the parties agreed to */
  assert_int_equal(hetee_client_verify_evidence(x.ev, x.evlen, ppk, want, x.bundle, x.blen, x.ch, x.nonce, NULL),
                   HETEE_ERR_MEASUREMENT);
  fx_evidence_free(&x);
  /* and it gets another sealing key: the agreed enclave's state stays shut */
  assert_int_equal(hetee_host_unseal(e, f->seal), HETEE_ERR_AUTH);
  hetee_host_free(e);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_unlisted_mp_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_listed_mp_owns_its_model, setup, teardown),
      cmocka_unit_test_setup_teardown(test_only_the_named_dp, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ownership_survives_restart, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_mp_key_no_policy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mp_list_is_measured, setup, teardown),
  };
  return cmocka_run_group_tests_name("enclave/policy_auth", tests, NULL, NULL);
}

/*
 * tests/enclave/test_release.c — release through the real enclave process:
 * each policy (values rounded to the policy's precision, softmax, argmax,
 * top-k) gives the data provider what a plaintext reference says, and only
 * the data provider named by the model provider's policy can get and open
 * the result: the MP's session, another DP's session and a forged session
 * cannot. (Who may set policies at all: test_policy_auth.c.)
 */
#include <math.h>

#include "enclave/ckks_fixture.h"

/* Releases decode at 2^90: flooding noise 10 * 2^59 / 2^90 ~ 2^-27.7, below
 * the finest policy used here (2^-16). */
#define REL_SCALE 0x1p90

typedef struct {
  char dir[256], plat[300];
  hetee_host_enclave *e;
  ckfx c;
  uint8_t *ct;
  size_t ctlen;
  double x[10];
  uint32_t map[10];
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  fx_tmp_platform(f->dir, sizeof f->dir, f->plat, sizeof f->plat);
  ckfx_parties(&f->c, NULL);
  f->e = ckfx_start(&f->c, f->plat, NULL, 0);
  ckfx_init(&f->c, f->e, f->plat, NULL, 0);
  /* ten logits, well separated, at scattered slots */
  static const double logits[10] = {0.3, -1.2, 2.5, 0.9, -0.4, 1.7, 3.1, -2.2, 0.05, 1.1};
  double *sv = calloc(f->c.slots, sizeof *sv);
  for (int i = 0; i < 10; i++) {
    f->x[i] = logits[i];
    f->map[i] = (uint32_t)(37 * i + 11);
    sv[f->map[i]] = logits[i];
  }
  f->ct = ckfx_encrypt_at(&f->c, sv, REL_SCALE, &f->ctlen);
  free(sv);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  free(f->ct);
  ckfx_free(&f->c);
  fx_stop(f->e, f->dir);
  free(f);
  return 0;
}

static int release(fx *f, uint32_t model, hetee_client_session *to, uint8_t **sealed, size_t *len) {
  uint8_t sid[16];
  hetee_client_session_id(to, sid);
  const uint8_t *cts[1] = {f->ct};
  const hetee_release_spec rs = {.in_level = -1, .in_scale = REL_SCALE, .map = f->map, .n = 10};
  return hetee_host_release(f->e, model, sid, &rs, cts, &f->ctlen, 1, sealed, len);
}

/* Releases model's result to the data provider's session and opens it there
 * (*r: hetee_release_result_clear). */
static void release_to_dp(fx *f, uint32_t model, hetee_release_result *r) {
  uint8_t *sealed;
  size_t len;
  assert_int_equal(release(f, model, f->c.dps, &sealed, &len), 0);
  assert_int_equal(hetee_client_release_open(f->c.dps, sealed, len, r), 0);
  free(sealed);
}

static void test_values_rounded(void **state) {
  fx *f = *state;
  uint8_t dp_pk[32];
  hetee_party_key_public(f->c.dp, dp_pk);
  ckfx_policy(&f->c, f->e, 1, HETEE_RELEASE_VALUES, 0, 8, dp_pk);
  hetee_release_result r;
  release_to_dp(f, 1, &r);
  assert_int_equal(r.kind, HETEE_RELEASE_VALUES);
  assert_int_equal(r.prec_bits, 8);
  assert_int_equal(r.n, 10);
  for (int i = 0; i < 10; i++) {
    double q = r.values[i] * 256.0;
    assert_true(q == floor(q));                          /* nothing below 2^-8 leaves the enclave */
    assert_true(fabs(r.values[i] - f->x[i]) <= 1.0 / 512 + 1e-6); /* round to nearest */
  }
  hetee_release_result_clear(&r);
}

static void test_softmax(void **state) {
  fx *f = *state;
  ckfx_policy(&f->c, f->e, 2, HETEE_RELEASE_SOFTMAX, 0, 16, NULL);
  hetee_release_result r;
  release_to_dp(f, 2, &r);
  double s = 0, want[10];
  for (int i = 0; i < 10; i++) s += exp(f->x[i]);
  for (int i = 0; i < 10; i++) {
    want[i] = exp(f->x[i]) / s;
    assert_true(fabs(r.values[i] - want[i]) <= 1.0 / 65536 + 1e-6);
  }
  hetee_release_result_clear(&r);
}

static void test_argmax_topk(void **state) {
  fx *f = *state;
  ckfx_policy(&f->c, f->e, 3, HETEE_RELEASE_ARGMAX, 0, 8, NULL);
  ckfx_policy(&f->c, f->e, 4, HETEE_RELEASE_TOPK, 3, 8, NULL);
  hetee_release_result r;
  release_to_dp(f, 3, &r);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.indices[0], 6); /* 3.1 */
  hetee_release_result_clear(&r);
  release_to_dp(f, 4, &r);
  assert_int_equal(r.n, 3);
  assert_int_equal(r.indices[0], 6); /* 3.1, 2.5, 1.7 */
  assert_int_equal(r.indices[1], 2);
  assert_int_equal(r.indices[2], 5);
  hetee_release_result_clear(&r);
}

static void test_only_the_data_provider(void **state) {
  fx *f = *state;
  uint8_t dp_pk[32], *sealed;
  size_t len;
  hetee_party_key_public(f->c.dp, dp_pk);
  ckfx_policy(&f->c, f->e, 5, HETEE_RELEASE_ARGMAX, 0, 8, dp_pk);
  assert_int_equal(release(f, 5, f->c.dps, &sealed, &len), 0);
  /* the MP's session key does not open it */
  hetee_release_result r;
  assert_int_equal(hetee_client_release_open(f->c.mps, sealed, len, &r), HETEE_ERR_AUTH);
  /* a second data provider does not either, and cannot be the target */
  hetee_verified_enclave v;
  fx_verify_cfg(f->e, f->plat, f->c.config, &v);
  hetee_party_key *dp2;
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_DP, &dp2), 0);
  hetee_client_session *s2 = fx_session(f->e, dp2, &v);
  assert_int_equal(hetee_client_release_open(s2, sealed, len, &r), HETEE_ERR_AUTH);
  uint8_t *other;
  size_t olen;
  assert_int_equal(release(f, 5, s2, &other, &olen), HETEE_ERR_AUTH);
  /* nor can the model provider make itself the target */
  assert_int_equal(release(f, 5, f->c.mps, &other, &olen), HETEE_ERR_AUTH);
  /* finer precision than the enclave releases (scale 2^40: 24 bits) is refused */
  uint8_t *m0, *s0, *r0;
  size_t m0l, s0l, r0l;
  assert_int_equal(hetee_client_msg_policy(7, HETEE_RELEASE_VALUES, 0, 25, dp_pk, &m0, &m0l), 0);
  assert_int_equal(hetee_client_session_seal(f->c.mps, m0, m0l, &s0, &s0l), 0);
  assert_int_equal(hetee_host_session_msg(f->e, s0, s0l, &r0, &r0l), HETEE_ERR_INVALID_ARG);
  free(m0);
  free(s0);
  /* a DP may not set policies */
  uint8_t *m, *sm, *rep;
  size_t ml, sml, rl;
  assert_int_equal(hetee_client_msg_policy(6, HETEE_RELEASE_VALUES, 0, 8, dp_pk, &m, &ml), 0);
  assert_int_equal(hetee_client_session_seal(s2, m, ml, &sm, &sml), 0);
  assert_int_equal(hetee_host_session_msg(f->e, sm, sml, &rep, &rl), HETEE_ERR_AUTH);
  free(m);
  free(sm);
  /* the right data provider opens it */
  assert_int_equal(hetee_client_release_open(f->c.dps, sealed, len, &r), 0);
  assert_int_equal(r.indices[0], 6);
  hetee_release_result_clear(&r);
  /* unknown model: no policy, nothing released */
  assert_int_equal(release(f, 99, f->c.dps, &other, &olen), HETEE_ERR_NOT_FOUND);
  free(sealed);
  hetee_client_session_free(s2);
  hetee_party_key_free(dp2);
}

/* A policy naming several data providers: each named DP receives and
 * opens its own release, an unnamed one is refused; malformed lists (a key
 * twice, a zero key, too many) are refused by the client and the enclave. */
static void set_policy_raw(fx *f, const uint8_t *m, size_t ml, int want) {
  uint8_t *sm, *rep, *p;
  size_t sml, rl, pl;
  assert_int_equal(hetee_client_session_seal(f->c.mps, m, ml, &sm, &sml), 0);
  int rc = hetee_host_session_msg(f->e, sm, sml, &rep, &rl);
  assert_int_equal(rc, want);
  if (!rc) {
    assert_int_equal(hetee_client_session_open(f->c.mps, rep, rl, &p, &pl), 0);
    free(p);
    free(rep);
  }
  free(sm);
}

static void test_several_data_providers(void **state) {
  fx *f = *state;
  hetee_party_key *dp2, *dp3;
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_DP, &dp2), 0);
  assert_int_equal(hetee_party_key_generate(HETEE_PARTY_DP, &dp3), 0);
  uint8_t dps[3][32], *m, *sealed;
  size_t ml, len;
  hetee_party_key_public(f->c.dp, dps[0]);
  hetee_party_key_public(dp2, dps[1]);
  hetee_party_key_public(dp3, dps[2]);
  assert_int_equal(hetee_client_msg_policy_dps(8, HETEE_RELEASE_ARGMAX, 0, 0, (const uint8_t(*)[32])dps, 2, &m, &ml), 0);
  set_policy_raw(f, m, ml, 0);
  free(m);
  hetee_verified_enclave v2, v3;
  fx_verify_cfg(f->e, f->plat, f->c.config, &v2);
  fx_verify_cfg(f->e, f->plat, f->c.config, &v3);
  hetee_client_session *s2 = fx_session(f->e, dp2, &v2), *s3 = fx_session(f->e, dp3, &v3);
  hetee_release_result r;
  release_to_dp(f, 8, &r); /* the first DP */
  assert_int_equal(r.indices[0], 6);
  hetee_release_result_clear(&r);
  assert_int_equal(release(f, 8, s2, &sealed, &len), 0); /* the second */
  assert_int_equal(hetee_client_release_open(f->c.dps, sealed, len, &r), HETEE_ERR_AUTH);
  assert_int_equal(hetee_client_release_open(s2, sealed, len, &r), 0);
  assert_int_equal(r.indices[0], 6);
  hetee_release_result_clear(&r);
  free(sealed);
  assert_int_equal(release(f, 8, s3, &sealed, &len), HETEE_ERR_AUTH); /* not named */
  /* the client refuses a key twice, a zero key, no key, too many keys */
  uint8_t twice[2][32], many[HETEE_POLICY_MAX_DPS + 1][32];
  memcpy(twice[0], dps[0], 32);
  memcpy(twice[1], dps[0], 32);
  assert_int_equal(hetee_client_msg_policy_dps(9, HETEE_RELEASE_ARGMAX, 0, 0, (const uint8_t(*)[32])twice, 2, &m, &ml),
                   HETEE_ERR_INVALID_ARG);
  memset(twice[1], 0, 32);
  assert_int_equal(hetee_client_msg_policy_dps(9, HETEE_RELEASE_ARGMAX, 0, 0, (const uint8_t(*)[32])twice, 2, &m, &ml),
                   HETEE_ERR_INVALID_ARG);
  assert_int_equal(hetee_client_msg_policy_dps(9, HETEE_RELEASE_ARGMAX, 0, 0, (const uint8_t(*)[32])dps, 0, &m, &ml),
                   HETEE_ERR_INVALID_ARG);
  for (int i = 0; i <= HETEE_POLICY_MAX_DPS; i++) memset(many[i], i + 1, 32);
  assert_int_equal(hetee_client_msg_policy_dps(9, HETEE_RELEASE_ARGMAX, 0, 0, (const uint8_t(*)[32])many,
                                               HETEE_POLICY_MAX_DPS + 1, &m, &ml),
                   HETEE_ERR_INVALID_ARG);
  /* the enclave refuses them too, written by hand: a key twice, a count
   * above the limit, a count that does not match the bytes */
  uint8_t raw[2 + 4 + 3 + 1 + 3 * 32];
  memset(raw, 0, sizeof raw);
  raw[0] = 2;           /* SET_POLICY */
  raw[2] = 9;           /* model 9 */
  raw[6] = HETEE_RELEASE_ARGMAX;
  raw[9] = 2;           /* two DPs ... */
  memcpy(raw + 10, dps[0], 32);
  memcpy(raw + 42, dps[0], 32); /* ... the same one twice */
  set_policy_raw(f, raw, 10 + 64, HETEE_ERR_INVALID_ARG);
  raw[9] = HETEE_POLICY_MAX_DPS + 1;
  set_policy_raw(f, raw, 10 + 64, HETEE_ERR_PROTOCOL);
  raw[9] = 3;
  memcpy(raw + 42, dps[1], 32);
  set_policy_raw(f, raw, 10 + 64, HETEE_ERR_PROTOCOL);
  hetee_client_session_free(s2);
  hetee_client_session_free(s3);
  hetee_party_key_free(dp2);
  hetee_party_key_free(dp3);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values_rounded),
      cmocka_unit_test(test_softmax),
      cmocka_unit_test(test_argmax_topk),
      cmocka_unit_test(test_only_the_data_provider),
      cmocka_unit_test(test_several_data_providers),
  };
  return cmocka_run_group_tests_name("enclave/release/logN13", tests, setup, teardown);
}

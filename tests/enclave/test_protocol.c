/*
 * tests/enclave/test_protocol.c — the real enclave process against malformed
 * frames: too short, oversized (drained, refused), wrong version, unknown
 * type, garbage bodies for every request type, then a fuzz run of random
 * frames. Every frame must get an answer carrying its request id, and the
 * same enclave process (same pid, no restart) must still serve afterwards.
 */
#include "enclave/fixture.h"

#include "enclave/wire/wire.h"
#include "hetee/ring.h"

typedef struct {
  char dir[256], plat[300];
  hetee_host_enclave *e;
  int pid;
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  fx_tmp_platform(f->dir, sizeof f->dir, f->plat, sizeof f->plat);
  f->e = fx_start(f->plat, NULL, NULL, 0);
  hetee_host_info info;
  assert_int_equal(hetee_host_info_get(f->e, &info), 0);
  f->pid = info.pid;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  fx_stop(f->e, f->dir);
  free(f);
  return 0;
}

/* Reads one reply; returns its status (0 for a normal reply) and checks id. */
static int expect_reply(fx *f, uint64_t id) {
  uint16_t type;
  uint64_t rid;
  uint8_t *body;
  size_t len;
  assert_int_equal(hetee_host_recv_raw(f->e, &type, &rid, &body, &len), 0);
  assert_int_equal(rid, id);
  int st = 0;
  if (type == HETEE_MSG_ERROR) {
    assert_true(len >= 6);
    st = (int32_t)hetee_rd32(body);
    assert_true(st < 0);
  } else {
    assert_true(type & HETEE_MSG_REPLY);
  }
  free(body);
  return st;
}

static void send_frame(fx *f, uint32_t len_field, uint16_t ver, uint16_t type, uint64_t id, const uint8_t *body,
                       size_t blen) {
  uint8_t h[16];
  hetee_le32(h, len_field);
  hetee_le16(h + 4, ver);
  hetee_le16(h + 6, type);
  hetee_le64(h + 8, id);
  assert_int_equal(hetee_host_send_raw(f->e, h, 16), 0);
  if (blen) assert_int_equal(hetee_host_send_raw(f->e, body, blen), 0);
}

static void assert_same_enclave(fx *f) {
  uint8_t *r;
  size_t n;
  assert_int_equal(hetee_host_call(f->e, HETEE_MSG_PING, (const uint8_t *)"ok", 2, &r, &n), 0);
  assert_int_equal(n, 2);
  assert_memory_equal(r, "ok", 2);
  free(r);
  hetee_host_info info;
  assert_int_equal(hetee_host_info_get(f->e, &info), 0);
  assert_int_equal(info.pid, f->pid);
  assert_int_equal(hetee_host_restarts(f->e), 0);
}

static void test_short_length(void **state) {
  fx *f = *state;
  uint8_t b[9] = {5, 0, 0, 0, 1, 2, 3, 4, 5}; /* length 5 < header */
  assert_int_equal(hetee_host_send_raw(f->e, b, sizeof b), 0);
  assert_int_equal(expect_reply(f, 0), HETEE_ERR_PROTOCOL);
  assert_same_enclave(f);
}

static void test_oversized(void **state) {
  fx *f = *state;
  size_t body = (size_t)HETEE_FRAME_MAX_BODY + 1;
  uint8_t *zeros = calloc(1, body);
  assert_non_null(zeros);
  send_frame(f, (uint32_t)(12 + body), HETEE_PROTO_VERSION, HETEE_MSG_PING, 77, zeros, body);
  free(zeros);
  assert_int_equal(expect_reply(f, 77), HETEE_ERR_LIMIT);
  assert_same_enclave(f);
}

static void test_wrong_version_and_type(void **state) {
  fx *f = *state;
  send_frame(f, 12, 2, HETEE_MSG_PING, 5, NULL, 0);
  assert_int_equal(expect_reply(f, 5), HETEE_ERR_VERSION);
  send_frame(f, 12, HETEE_PROTO_VERSION, 999, 6, NULL, 0);
  assert_int_equal(expect_reply(f, 6), HETEE_ERR_PROTOCOL);
  send_frame(f, 12, HETEE_PROTO_VERSION, HETEE_MSG_PLAT_REPORT, 7, NULL, 0); /* platform-only type */
  assert_int_equal(expect_reply(f, 7), HETEE_ERR_PROTOCOL);
  assert_same_enclave(f);
}

/* Random test input comes from hetee's seeded PRG, not the OS, so a failing
 * run can be replayed: the seed is printed, and HETEE_TEST_SEED=<64 hex>
 * sets it. */
static hetee_prg g_prg;

static uint32_t rnd32(void) {
  uint32_t v;
  hetee_prg_bytes(&g_prg, &v, sizeof v);
  return v;
}

static void seed_prg(void) {
  uint8_t seed[HETEE_SEED_BYTES];
  const char *env = getenv("HETEE_TEST_SEED");
  if (!env || sodium_hex2bin(seed, sizeof seed, env, strlen(env), NULL, NULL, NULL) != 0)
    randombytes_buf(seed, sizeof seed);
  char hex[2 * HETEE_SEED_BYTES + 1];
  sodium_bin2hex(hex, sizeof hex, seed, sizeof seed);
  fprintf(stderr, "enclave/protocol: HETEE_TEST_SEED=%s\n", hex);
  hetee_prg_init(&g_prg, seed, 0);
}

/* Truncated or garbage bodies for every request type that takes one. */
static void test_garbage_bodies(void **state) {
  fx *f = *state;
  static const uint16_t types[] = {HETEE_MSG_INFO,         HETEE_MSG_KEYGEN,      HETEE_MSG_PUBLIC_KEYS,
                                   HETEE_MSG_EVIDENCE,     HETEE_MSG_SEAL,        HETEE_MSG_UNSEAL,
                                   HETEE_MSG_SESSION_OPEN, HETEE_MSG_SESSION_MSG, HETEE_MSG_REFRESH,
                                   HETEE_MSG_RELEASE,      HETEE_MSG_STATS};
  uint8_t g[300];
  uint64_t id = 1000;
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
    const size_t lens[] = {1, 3, 31, 33, 160, 162, 300};
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
      hetee_prg_bytes(&g_prg, g, lens[l]);
      send_frame(f, (uint32_t)(12 + lens[l]), HETEE_PROTO_VERSION, types[t], ++id, g, lens[l]);
      int st = expect_reply(f, id);
      assert_true(st < 0); /* random bytes are never a valid request of these types */
    }
  }
  assert_same_enclave(f);
}

static void test_fuzz_random_frames(void **state) {
  fx *f = *state;
  int rounds = fx_quick() ? 150 : 600;
  uint8_t body[1024];
  for (int i = 0; i < rounds; i++) {
    uint32_t r = rnd32();
    uint16_t type = (uint16_t)(r % 16);
    if (type == HETEE_MSG_SHUTDOWN) type = 0; /* a valid shutdown would end the run legitimately */
    if (r & 0x10000) type = (uint16_t)rnd32();
    if (type == HETEE_MSG_SHUTDOWN) type = 0;
    uint16_t ver = (r & 0x20000) ? (uint16_t)(rnd32() % 4) : HETEE_PROTO_VERSION;
    size_t len = rnd32() % sizeof body;
    hetee_prg_bytes(&g_prg, body, len);
    uint64_t id = ((uint64_t)rnd32() << 32) | (uint64_t)i;
    send_frame(f, (uint32_t)(12 + len), ver, type, id, body, len);
    (void)expect_reply(f, id);
  }
  assert_same_enclave(f);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  seed_prg();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_short_length),       cmocka_unit_test(test_oversized),
      cmocka_unit_test(test_wrong_version_and_type), cmocka_unit_test(test_garbage_bodies),
      cmocka_unit_test(test_fuzz_random_frames),
  };
  return cmocka_run_group_tests_name("enclave/protocol", tests, setup, teardown);
}

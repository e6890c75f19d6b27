/*
 * test_shm.c — the shared-memory transport (docs/enclave.md "Transport"):
 * the enclave confirms the host's region at start-up; a refresh through the
 * region gives the same values (and a refused one the same status and
 * text) as through the socket, on one enclave; without a region
 * (HETEE_ENCLAVE_SHM=0) everything runs over the socket; and a host that
 * lies in descriptors (bad lengths, types that may not use the region, a
 * reply's type) or rewrites the region while the enclave copies and parses
 * it gets error replies, never a crash: the same enclave process answers
 * correctly afterwards.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include "enclave/ckks_fixture.h"
#include "enclave/wire/proto.h"
#include "host/host_internal.h"

#define TOL (1.0 / (1 << 20))

typedef ckfx_env fx;


enum { C = 2, H = 4, W = 4, N = C * H * W };

/* ReLU over a 2x4x4 tensor scattered over 2 input ciphertexts (decoys in
 * the other slots), read back through a release: got[N]. */
static void relu_run(ckfx *c, hetee_host_enclave *e, double *got, double *want) {
  uint32_t in_map[N], dst[N], src[N];
  double x[N];
  size_t slots = c->slots;
  double *sv = malloc(2 * slots * sizeof *sv);
  for (size_t i = 0; i < 2 * slots; i++) sv[i] = 100.0 + (double)(i % 13);
  for (size_t i = 0; i < N; i++) {
    in_map[i] = (uint32_t)((i * 977 + 5) % (2 * slots));
    x[i] = -3.0 + 6.0 * (double)i / (N - 1);
    sv[in_map[i]] = x[i];
    want[i] = x[i] > 0 ? x[i] : 0;
    dst[i] = src[i] = (uint32_t)i;
  }
  hetee_refresh_op op = {.kind = HETEE_OP_RELU};
  hetee_refresh_spec s = {.in_level = -1, .shape = {C, H, W}, .in_map = in_map, .nops = 1, .ops = &op,
                          .out_ncts = (uint32_t)((N + slots - 1) / slots), .out_n = N, .out_dst = dst, .out_src = src,
                          .out_level = -1};
  uint8_t *cts[2];
  size_t lens[2];
  for (int k = 0; k < 2; k++) cts[k] = ckfx_encrypt(c, sv + k * slots, &lens[k]);
  uint8_t **out;
  size_t *olens, nout;
  int rc = hetee_host_refresh(e, &s, (const uint8_t *const *)cts, lens, 2, &out, &olens, &nout);
  if (rc) fprintf(stderr, "refresh: %s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  ckfx_read(c, e, dst, N, out, olens, nout, got);
  hetee_host_cts_free(out, olens, nout);
  for (int k = 0; k < 2; k++) free(cts[k]);
  free(sv);
}

static double worst(const double *a, const double *b) {
  double m = 0;
  for (size_t i = 0; i < N; i++) m = fmax(m, fabs(a[i] - b[i]));
  return m;
}

/* A refused refresh (input slot beyond one ciphertext): status and text. */
static int refused(ckfx *c, hetee_host_enclave *e, char *text, size_t n) {
  uint32_t in_map[4] = {0, 1, 2, 9000}, dst[1] = {0}, src[1] = {0};
  hetee_refresh_spec s = {.in_level = -1, .shape = {1, 2, 2}, .in_map = in_map, .out_ncts = 1, .out_n = 1,
                          .out_dst = dst, .out_src = src, .out_level = -1};
  double *z = calloc(c->slots, sizeof *z);
  size_t len;
  uint8_t *ct = ckfx_encrypt(c, z, &len);
  const uint8_t *cts[1] = {ct};
  uint8_t **out;
  size_t *olens, nout;
  int rc = hetee_host_refresh(e, &s, cts, &len, 1, &out, &olens, &nout);
  snprintf(text, n, "%s", hetee_last_error());
  free(ct);
  free(z);
  return rc;
}

static void test_region_same_as_socket(void **state) {
  fx *f = *state;
  assert_non_null(hetee_host_shm_region(f->e)); /* the enclave confirmed the region */
  uint8_t *reply_area = hetee_host_shm_region(f->e) + HETEE_SHM_AREA, zero[64] = {0};
  assert_memory_equal(reply_area, zero, sizeof zero); /* nothing answered there yet */
  double got_shm[N], got_sock[N], want[N];
  relu_run(&f->c, f->e, got_shm, want);
  assert_memory_not_equal(reply_area, zero, sizeof zero); /* the refresh replies came through it */
  char t1[512], t2[512];
  int r1 = refused(&f->c, f->e, t1, sizeof t1);
  hetee_enclave_op_stats st[64];
  size_t ns;
  assert_int_equal(hetee_host_stats(f->e, st, 64, &ns), 0);
  uint64_t in_shm = 0;
  for (size_t i = 0; i < ns; i++)
    if (st[i].type == HETEE_MSG_REFRESH) in_shm = st[i].bytes_in;
  hetee_host_shm_enable(f->e, 0); /* the same enclave, the socket path */
  relu_run(&f->c, f->e, got_sock, want);
  int r2 = refused(&f->c, f->e, t2, sizeof t2);
  hetee_host_shm_enable(f->e, 1);
  assert_true(worst(got_shm, want) < TOL);
  assert_true(worst(got_sock, want) < TOL);
  assert_true(worst(got_shm, got_sock) < 2 * TOL);
  assert_int_equal(r1, HETEE_ERR_SHAPE);
  assert_int_equal(r1, r2);
  assert_string_equal(t1, t2);
  /* STATS count the body bytes whichever way they came: the socket run
   * made the same requests, so REFRESH's bytes_in doubled (up to the
   * ciphertexts' sizes, which are the same) */
  assert_int_equal(hetee_host_stats(f->e, st, 64, &ns), 0);
  uint64_t in_both = 0;
  for (size_t i = 0; i < ns; i++)
    if (st[i].type == HETEE_MSG_REFRESH) in_both = st[i].bytes_in;
  assert_true(in_shm > 0);
  assert_int_equal(in_both, 2 * in_shm);
}

/* HETEE_ENCLAVE_SHM=0: no region, the socket carries everything. */
static void test_fallback_socket(void **state) {
  fx *f = *state;
  setenv(HETEE_SHM_ENV, "0", 1);
  ckfx c;
  ckfx_parties(&c, NULL);
  hetee_host_enclave *e = ckfx_start(&c, f->plat, NULL, 0);
  unsetenv(HETEE_SHM_ENV);
  assert_null(hetee_host_shm_region(e));
  ckfx_init(&c, e, f->plat, NULL, 0);
  double got[N], want[N];
  relu_run(&c, e, got, want);
  assert_true(worst(got, want) < TOL);
  ckfx_free(&c);
  hetee_host_free(e);
}

/* ---- a hostile host --------------------------------------------------- */

static void raw_frame(hetee_host_enclave *e, uint16_t type, uint64_t id, const void *body, size_t len) {
  uint8_t *b = malloc(HETEE_FRAME_HEADER_BYTES + len);
  hetee_le32(b, (uint32_t)(12 + len));
  hetee_le16(b + 4, HETEE_PROTO_VERSION);
  hetee_le16(b + 6, type);
  hetee_le64(b + 8, id);
  if (len) memcpy(b + HETEE_FRAME_HEADER_BYTES, body, len);
  assert_int_equal(hetee_host_send_raw(e, b, HETEE_FRAME_HEADER_BYTES + len), 0);
  free(b);
}

/* A request marked HETEE_MSG_SHM with descriptor length n (desc_len bytes
 * of descriptor); returns the status of the error reply (a reply must come,
 * and with this id). */
static int shm_request(hetee_host_enclave *e, uint16_t type, uint64_t n, size_t desc_len) {
  static uint64_t id = 1u << 30;
  uint8_t d[16] = {0};
  hetee_le64(d, n);
  raw_frame(e, (uint16_t)(type | HETEE_MSG_SHM), ++id, d, desc_len);
  uint16_t rt;
  uint64_t rid;
  uint8_t *body;
  size_t len;
  assert_int_equal(hetee_host_recv_raw(e, &rt, &rid, &body, &len), 0);
  assert_int_equal(rid, id);
  int st = 0;
  if (rt == HETEE_MSG_ERROR) {
    hetee_frame f = {.type = rt, .id = rid, .body = body, .len = len};
    st = hetee_frame_error_status(&f);
  } else {
    /* a success can only be a public reply in the region or on the socket */
    assert_true(rt == (uint16_t)(type | HETEE_MSG_REPLY) || rt == (uint16_t)(type | HETEE_MSG_REPLY | HETEE_MSG_SHM));
  }
  free(body);
  return st;
}

typedef struct {
  uint8_t *region;
  size_t span;
  atomic_int stop;
  unsigned long passes;
} flipper;

/* The host rewriting the request area while the enclave copies it: random
 * bytes, flipped bits and ciphertext-like headers, without pause. */
static void *flip_thread(void *arg) {
  flipper *fl = arg;
  uint32_t x = 2463534242u;
  while (!atomic_load(&fl->stop)) {
    for (int i = 0; i < 4096; i++) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      size_t at = x % fl->span;
      fl->region[at] ^= (uint8_t)(1u << (x >> 29));
      if (i % 512 == 0) memset(fl->region + (x % 64), (int)(x >> 24), 8); /* counts and lengths up front */
    }
    fl->passes++;
  }
  return NULL;
}

static void test_hostile_descriptors(void **state) {
  fx *f = *state;
  uint8_t *region = hetee_host_shm_region(f->e);
  assert_non_null(region);
  hetee_host_info before;
  assert_int_equal(hetee_host_info_get(f->e, &before), 0);
  /* descriptors that are not 8 bytes */
  assert_int_equal(shm_request(f->e, HETEE_MSG_REFRESH, 100, 0), HETEE_ERR_PROTOCOL);
  assert_int_equal(shm_request(f->e, HETEE_MSG_REFRESH, 100, 7), HETEE_ERR_PROTOCOL);
  assert_int_equal(shm_request(f->e, HETEE_MSG_REFRESH, 100, 9), HETEE_ERR_PROTOCOL);
  /* lengths beyond the area / the limit */
  assert_int_equal(shm_request(f->e, HETEE_MSG_REFRESH, HETEE_SHM_AREA + 1, 8), HETEE_ERR_LIMIT);
  assert_int_equal(shm_request(f->e, HETEE_MSG_JOB_REFRESH, UINT64_MAX, 8), HETEE_ERR_LIMIT);
  assert_int_equal(shm_request(f->e, HETEE_MSG_MODEL_LOAD, (uint64_t)1 << 40, 8), HETEE_ERR_LIMIT);
  /* types whose body or reply is not public may not use the region */
  const uint16_t private_types[] = {HETEE_MSG_PING,        HETEE_MSG_INFO,     HETEE_MSG_KEYGEN,
                                    HETEE_MSG_EVIDENCE,    HETEE_MSG_SEAL,     HETEE_MSG_UNSEAL,
                                    HETEE_MSG_SESSION_OPEN, HETEE_MSG_SESSION_MSG, HETEE_MSG_STATS,
                                    HETEE_MSG_SHUTDOWN,    HETEE_MSG_JOB_RELEASE, HETEE_MSG_JOB_AUTH,
                                    HETEE_MSG_SHM_HELLO,   0x3fff};
  for (size_t i = 0; i < sizeof private_types / sizeof private_types[0]; i++)
    assert_int_equal(shm_request(f->e, private_types[i], 16, 8), HETEE_ERR_PROTOCOL);
  /* a reply type from the host */
  assert_int_equal(shm_request(f->e, HETEE_MSG_REFRESH | HETEE_MSG_REPLY, 16, 8), HETEE_ERR_PROTOCOL);
  /* garbage bodies of every public type, at lengths up to the whole area */
  const uint16_t public_types[] = {HETEE_MSG_REFRESH,   HETEE_MSG_RELEASE,       HETEE_MSG_MODEL_LOAD,
                                   HETEE_MSG_JOB_START, HETEE_MSG_JOB_REFRESH,   HETEE_MSG_REFINE_OPEN,
                                   HETEE_MSG_REFINE_FORWARD, HETEE_MSG_REFINE_PUT, HETEE_MSG_REFINE_VWITNESS};
  randombytes_buf(region, 1 << 20);
  const uint64_t lens[] = {0, 1, 4, 12, 64, 4096, 1 << 20, HETEE_SHM_AREA};
  for (size_t t = 0; t < sizeof public_types / sizeof public_types[0]; t++)
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
      assert_true(shm_request(f->e, public_types[t], lens[l], 8) < 0);

  /* the same while another thread rewrites the region: bodies change
   * under the enclave's copy, never after it */
  flipper fl = {.region = region, .span = 1 << 20};
  atomic_init(&fl.stop, 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, flip_thread, &fl), 0);
  int rounds = fx_quick() ? 40 : 200;
  uint32_t x = 12345;
  for (int i = 0; i < rounds; i++) {
    x = x * 1103515245u + 12345u;
    uint16_t type = public_types[(x >> 8) % (sizeof public_types / sizeof public_types[0])];
    uint64_t n = (x >> 4) % (1u << 20);
    int st = shm_request(f->e, type, n, 8);
    assert_true(st <= 0); /* an error reply, or (by chance) a success: never silence */
  }
  /* real refreshes whose request bytes are rewritten while in flight: each
   * ends with a status (0 if the flips missed), the stream in sync */
  for (int i = 0; i < (fx_quick() ? 4 : 16); i++) {
    double *z = calloc(f->c.slots, sizeof *z);
    size_t len;
    uint8_t *ct = ckfx_encrypt(&f->c, z, &len);
    free(z);
    uint32_t in_map[N], dst[N], src[N];
    for (size_t k = 0; k < N; k++) in_map[k] = dst[k] = src[k] = (uint32_t)k;
    hetee_refresh_op op = {.kind = HETEE_OP_RELU};
    hetee_refresh_spec s = {.in_level = -1, .shape = {C, H, W}, .in_map = in_map, .nops = 1, .ops = &op,
                            .out_ncts = 1, .out_n = N, .out_dst = dst, .out_src = src, .out_level = -1};
    const uint8_t *cts[1] = {ct};
    uint8_t **out;
    size_t *olens, nout;
    int rc = hetee_host_refresh(f->e, &s, cts, &len, 1, &out, &olens, &nout);
    if (!rc) hetee_host_cts_free(out, olens, nout);
    assert_true(rc <= 0 && rc != HETEE_ERR_IO);
    free(ct);
  }
  atomic_store(&fl.stop, 1);
  pthread_join(th, NULL);
  assert_true(fl.passes > 0);

  /* the same process, still serving, and correctly */
  hetee_host_info after;
  assert_int_equal(hetee_host_info_get(f->e, &after), 0);
  assert_int_equal(after.pid, before.pid);
  assert_int_equal(hetee_host_restarts(f->e), 0);
  double got[N], want[N];
  relu_run(&f->c, f->e, got, want);
  assert_true(worst(got, want) < TOL);
}

/* A refresh with three output ciphertexts (an identity spread over them):
 * through the region the enclave saves each fresh ciphertext straight to
 * its place in the reply area (server.c copies only the rest of the
 * reply). The values read back equal the inputs, through the region and
 * through the socket; every output of both requests has its own seed of
 * `a` (derived per output from one draw of entropy per request: distinct
 * within a request and between requests). */
static void test_region_direct_outputs(void **state) {
  fx *f = *state;
  ckfx *c = &f->c;
  size_t slots = c->slots;
  enum { M = 24, K = 3 };
  uint32_t in_map[M], dst[M], src[M];
  double *sv = calloc(slots, sizeof *sv), want[M];
  for (size_t i = 0; i < M; i++) {
    in_map[i] = (uint32_t)(i * 7);
    want[i] = sv[in_map[i]] = -2.0 + 0.17 * (double)i;
    dst[i] = (uint32_t)((i % K) * slots + i / K * 5); /* output i % K */
    src[i] = (uint32_t)i;
  }
  hetee_refresh_spec s = {.in_level = -1, .shape = {1, 1, M}, .in_map = in_map, .out_ncts = K, .out_n = M,
                          .out_dst = dst, .out_src = src, .out_level = -1};
  size_t len;
  uint8_t *ct = ckfx_encrypt(c, sv, &len);
  const uint8_t *cts[1] = {ct};
  uint8_t seeds[2][K][32];
  for (int pass = 0; pass < 2; pass++) { /* 0: the region, 1: the socket */
    hetee_host_shm_enable(f->e, pass == 0);
    uint8_t **out;
    size_t *olens, nout;
    assert_int_equal(hetee_host_refresh(f->e, &s, cts, &len, 1, &out, &olens, &nout), 0);
    assert_int_equal(nout, K);
    double got[M];
    ckfx_read(c, f->e, dst, M, out, olens, nout, got);
    for (size_t i = 0; i < M; i++) assert_true(fabs(got[i] - want[i]) < TOL);
    for (int k = 0; k < K; k++) memcpy(seeds[pass][k], out[k] + olens[k] - 32, 32); /* a seeded ciphertext ends with its seed */
    hetee_host_cts_free(out, olens, nout);
  }
  hetee_host_shm_enable(f->e, 1);
  for (int a = 0; a < 2 * K; a++)
    for (int b = a + 1; b < 2 * K; b++) assert_memory_not_equal(seeds[a / K][a % K], seeds[b / K][b % K], 32);
  free(ct);
  free(sv);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_region_same_as_socket),
      cmocka_unit_test(test_region_direct_outputs),
      cmocka_unit_test(test_fallback_socket),
      cmocka_unit_test(test_hostile_descriptors),
  };
  return cmocka_run_group_tests_name("enclave/shm", tests, ckfx_env_setup, ckfx_env_teardown);
}

/*
 * tests/enclave/test_formats.c — in-process checks of the wire formats: frame
 * reading over a socketpair (normal, too short, oversized drained with the
 * stream kept in sync, EOF), refresh-spec encode/decode round trip and its
 * refusals, sealed blobs (other key, tampering), the session channel
 * (replay, reordering, direction, tampering), evidence parsing, atomic file
 * writes and the enclave configuration parser (including the mp= list of
 * model providers and its builder).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "enclave/trusted/enclave_internal.h"
#include "enclave/wire/platform.h"
#include "enclave/wire/proto.h"

static void test_frames(void **state) {
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  hetee_frame f;
  assert_int_equal(hetee_frame_write(sv[0], HETEE_MSG_PING, 42, "abc", 3), 0);
  assert_int_equal(hetee_frame_read(sv[1], 100, &f), 0);
  assert_int_equal(f.type, HETEE_MSG_PING);
  assert_int_equal(f.id, 42);
  assert_int_equal(f.version, HETEE_PROTO_VERSION);
  assert_int_equal(f.len, 3);
  assert_memory_equal(f.body, "abc", 3);
  hetee_frame_clear(&f);
  /* above the reader's limit: drained, refused, next frame still readable */
  uint8_t big[200] = {0};
  assert_int_equal(hetee_frame_write(sv[0], HETEE_MSG_PING, 43, big, sizeof big), 0);
  assert_int_equal(hetee_frame_write(sv[0], HETEE_MSG_INFO, 44, NULL, 0), 0);
  assert_int_equal(hetee_frame_read(sv[1], 100, &f), HETEE_ERR_LIMIT);
  assert_int_equal(f.id, 43);
  assert_int_equal(hetee_frame_read(sv[1], 100, &f), 0);
  assert_int_equal(f.id, 44);
  hetee_frame_clear(&f);
  /* a length below the header size */
  uint8_t shortf[6] = {2, 0, 0, 0, 9, 9};
  assert_int_equal(write(sv[0], shortf, 6), 6);
  assert_int_equal(hetee_frame_read(sv[1], 100, &f), HETEE_ERR_PROTOCOL);
  /* error frames carry status and detail */
  assert_int_equal(hetee_frame_write_error(sv[0], 45, HETEE_ERR_SHAPE, "bad shape"), 0);
  assert_int_equal(hetee_frame_read(sv[1], 100, &f), 0);
  assert_int_equal(hetee_frame_error_status(&f), HETEE_ERR_SHAPE);
  assert_string_equal(hetee_last_error(), "bad shape");
  hetee_frame_clear(&f);
  /* EOF in the middle of a frame */
  uint8_t part[10] = {40, 0, 0, 0, 1, 0, 1, 0, 0, 0};
  assert_int_equal(write(sv[0], part, sizeof part), (ssize_t)sizeof part);
  close(sv[0]);
  assert_int_equal(hetee_frame_read(sv[1], 100, &f), HETEE_ERR_IO);
  close(sv[1]);
}

/* A frame written in parts (hetee_frame_write_parts: more parts than one
 * sendmsg takes, empty ones, one part larger than the socket buffer) reads
 * back as the concatenation; a body above the limit is refused before
 * anything is written. */
typedef struct {
  int fd;
  hetee_frame_part *parts;
  size_t n;
  int rc;
} parts_arg;

static void *write_parts_thread(void *a) {
  parts_arg *pa = a;
  pa->rc = hetee_frame_write_parts(pa->fd, HETEE_MSG_REFRESH, 77, pa->parts, pa->n);
  return NULL;
}

static void test_frame_parts(void **state) {
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  enum { NP = 3001 };
  size_t total = 0, sizes[NP];
  uint64_t x = 12345;
  for (size_t i = 0; i < NP; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    sizes[i] = i == 1500 ? (1u << 20) : (i % 7 == 0 ? 0 : (size_t)(x % 700));
    total += sizes[i];
  }
  uint8_t *src = malloc(total), *want = src;
  for (size_t i = 0; i < total; i++) src[i] = (uint8_t)(i * 131 + (i >> 9));
  hetee_frame_part *parts = malloc(NP * sizeof *parts);
  size_t off = 0;
  for (size_t i = 0; i < NP; i++) {
    parts[i].p = src + off;
    parts[i].len = sizes[i];
    off += sizes[i];
  }
  parts_arg pa = {sv[0], parts, NP, -1};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, write_parts_thread, &pa), 0);
  hetee_frame f;
  assert_int_equal(hetee_frame_read(sv[1], HETEE_FRAME_MAX_BODY, &f), 0);
  pthread_join(t, NULL);
  assert_int_equal(pa.rc, 0);
  assert_int_equal(f.type, HETEE_MSG_REFRESH);
  assert_int_equal(f.id, 77);
  assert_int_equal(f.len, total);
  assert_memory_equal(f.body, want, total);
  hetee_frame_clear(&f);
  /* above the limit: nothing written (the next frame reads cleanly) */
  hetee_frame_part big[2] = {{src, HETEE_FRAME_MAX_BODY}, {src, 1}};
  assert_int_equal(hetee_frame_write_parts(sv[0], HETEE_MSG_REFRESH, 78, big, 2), HETEE_ERR_LIMIT);
  assert_int_equal(hetee_frame_write_parts(sv[0], HETEE_MSG_PING, 79, parts, 3), 0);
  assert_int_equal(hetee_frame_read(sv[1], HETEE_FRAME_MAX_BODY, &f), 0);
  assert_int_equal(f.id, 79);
  assert_int_equal(f.len, sizes[0] + sizes[1] + sizes[2]);
  hetee_frame_clear(&f);
  free(parts);
  free(src);
  close(sv[0]);
  close(sv[1]);
}

static void test_refresh_spec_roundtrip(void **state) {
  uint32_t in_map[12], dst[3] = {0, 4097, 5}, src[3] = {0, 2, 1};
  for (int i = 0; i < 12; i++) in_map[i] = (uint32_t)(11 - i);
  double bias[3] = {1, 2, 3}, g[3] = {1, 1, 1}, b[3] = {0, 0, 0};
  hetee_refresh_op ops[4] = {{.kind = HETEE_OP_ADD_BIAS, .a = bias, .na = 3},
                             {.kind = HETEE_OP_MAXPOOL, .window = 2, .stride = 2},
                             {.kind = HETEE_OP_BATCHNORM, .a = g, .na = 3, .b = b, .nb = 3},
                             {.kind = HETEE_OP_RESHAPE, .shape = {3, 1, 1}}};
  hetee_refresh_spec s = {.shape = {3, 2, 2}, .in_map = in_map, .in_level = 2, .in_scale = 0x1p80,
                          .nops = 4, .ops = ops, .out_ncts = 2, .out_n = 3,
                          .out_dst = dst, .out_src = src, .out_level = 1, .out_scale = 1099511627776.0};
  uint8_t *buf;
  size_t len;
  assert_int_equal(hetee_refresh_spec_encode(&s, &buf, &len), 0);
  hetee_rbuf r;
  hetee_refresh_job job;
  hetee_rbuf_init(&r, buf, len);
  assert_int_equal(hetee_refresh_spec_decode(&r, 4096, &job), 0);
  assert_int_equal(hetee_rbuf_left(&r), 0);
  assert_int_equal(job.spec.nops, 4);
  assert_int_equal(job.final_shape[0], 3);
  assert_int_equal(job.final_shape[1], 1);
  assert_int_equal(job.spec.out_dst[1], 4097);
  assert_int_equal(job.spec.out_level, 1);
  assert_true(job.spec.out_scale == s.out_scale);
  assert_int_equal(job.spec.in_level, 2);
  assert_true(job.spec.in_scale == 0x1p80);
  assert_int_equal(job.spec.batch, 1); /* 0 in the struct means 1 */
  assert_int_equal(job.spec.in_encoding, HETEE_ENC_SLOTS);
  assert_int_equal(job.spec.out_encoding, HETEE_ENC_SLOTS);
  assert_true(job.spec.ops[2].b[2] == 0);
  hetee_refresh_job_free(&job);
  /* the format is versioned: another version is refused as such */
  buf[4] = 1;
  hetee_rbuf_init(&r, buf, len);
  assert_int_equal(hetee_refresh_spec_decode(&r, 4096, &job), HETEE_ERR_VERSION);
  buf[4] = HETEE_REFRESH_SPEC_VERSION;
  buf[0] = 'X';
  hetee_rbuf_init(&r, buf, len);
  assert_int_equal(hetee_refresh_spec_decode(&r, 4096, &job), HETEE_ERR_FORMAT);
  buf[0] = 'H';
  /* with 2048 slots, output slot 4097 is beyond 2 ciphertexts */
  hetee_rbuf_init(&r, buf, len);
  assert_int_equal(hetee_refresh_spec_decode(&r, 2048, &job), HETEE_ERR_SHAPE);
  /* every truncation is refused cleanly */
  for (size_t cut = 0; cut < len; cut++) {
    hetee_rbuf_init(&r, buf, cut);
    int rc = hetee_refresh_spec_decode(&r, 4096, &job);
    assert_true(rc < 0);
  }
  free(buf);
  /* encode refuses inconsistent specs */
  ops[0].na = 5;
  assert_int_equal(hetee_refresh_spec_encode(&s, &buf, &len), HETEE_ERR_SHAPE);
  ops[0].na = 3;
  ops[3].shape[0] = 4;
  assert_int_equal(hetee_refresh_spec_encode(&s, &buf, &len), HETEE_ERR_SHAPE);
  ops[3].shape[0] = 3;
  ops[1].window = 3;
  assert_int_equal(hetee_refresh_spec_encode(&s, &buf, &len), HETEE_ERR_SHAPE);
  ops[1].window = 2;
  /* constants must be finite and at most 2^64 in magnitude (issue 7: the
   * oracle scaled by 1e308 twice) */
  bias[1] = 1e308;
  assert_int_equal(hetee_refresh_spec_encode(&s, &buf, &len), HETEE_ERR_FORMAT);
  bias[1] = NAN;
  assert_int_equal(hetee_refresh_spec_encode(&s, &buf, &len), HETEE_ERR_FORMAT);
  bias[1] = -HETEE_REFRESH_MAX_CONST;
  assert_int_equal(hetee_refresh_spec_encode(&s, &buf, &len), 0);
  free(buf);
  hetee_refresh_op sc = {.kind = HETEE_OP_SCALE, .alpha = 2.0 * HETEE_REFRESH_MAX_CONST};
  hetee_refresh_spec s2 = {.shape = {1, 1, 1}, .in_map = in_map, .nops = 1, .ops = &sc, .out_ncts = 1};
  assert_int_equal(hetee_refresh_spec_encode(&s2, &buf, &len), HETEE_ERR_FORMAT);
  sc.alpha = 2.0;
  /* encodings: slots (0) and coefficients (1); any other is refused */
  s2.in_encoding = 2;
  assert_int_equal(hetee_refresh_spec_encode(&s2, &buf, &len), HETEE_ERR_UNSUPPORTED);
  s2.in_encoding = HETEE_ENC_SLOTS;
  s2.out_encoding = 7;
  assert_int_equal(hetee_refresh_spec_encode(&s2, &buf, &len), HETEE_ERR_UNSUPPORTED);
  /* with coefficients, an output ciphertext holds N values, not N/2 */
  uint32_t d2[1] = {6000}, r2[1] = {0};
  s2.out_encoding = HETEE_ENC_COEFFS;
  s2.out_n = 1, s2.out_dst = d2, s2.out_src = r2;
  assert_int_equal(hetee_refresh_spec_encode(&s2, &buf, &len), 0);
  hetee_rbuf_init(&r, buf, len);
  assert_int_equal(hetee_refresh_spec_decode(&r, 4096, &job), 0); /* 6000 < 8192 */
  assert_int_equal(job.spec.out_encoding, HETEE_ENC_COEFFS);
  hetee_refresh_job_free(&job);
  free(buf);
  s2.out_encoding = HETEE_ENC_SLOTS;
  assert_int_equal(hetee_refresh_spec_encode(&s2, &buf, &len), 0);
  hetee_rbuf_init(&r, buf, len);
  assert_int_equal(hetee_refresh_spec_decode(&r, 4096, &job), HETEE_ERR_SHAPE); /* 6000 >= 4096 slots */
  free(buf);
  s2.out_n = 0;
  /* batch: 3 samples need 3 values; the decoder checks batch x shape = n */
  s2.batch = 3;
  assert_int_equal(hetee_refresh_spec_encode(&s2, &buf, &len), 0);
  hetee_rbuf_init(&r, buf, len);
  assert_int_equal(hetee_refresh_spec_decode(&r, 4096, &job), 0);
  assert_int_equal(job.spec.batch, 3);
  hetee_refresh_job_free(&job);
  buf[8 + 12] = 4; /* batch 4 against 3 values */
  hetee_rbuf_init(&r, buf, len);
  assert_int_equal(hetee_refresh_spec_decode(&r, 4096, &job), HETEE_ERR_SHAPE);
  free(buf);
}

static void test_seal_blob(void **state) {
  uint8_t k1[32], k2[32], *blob, *plain;
  size_t blen, plen;
  randombytes_buf(k1, 32);
  randombytes_buf(k2, 32);
  assert_int_equal(hetee_seal_blob(k1, (const uint8_t *)"secret state", 12, &blob, &blen), 0);
  assert_int_equal(hetee_unseal_blob(k1, blob, blen, &plain, &plen), 0);
  assert_int_equal(plen, 12);
  assert_memory_equal(plain, "secret state", 12);
  sodium_free(plain);
  assert_int_equal(hetee_unseal_blob(k2, blob, blen, &plain, &plen), HETEE_ERR_AUTH);
  blob[blen - 20] ^= 1;
  assert_int_equal(hetee_unseal_blob(k1, blob, blen, &plain, &plen), HETEE_ERR_AUTH);
  blob[0] = 'X';
  assert_int_equal(hetee_unseal_blob(k1, blob, blen, &plain, &plen), HETEE_ERR_FORMAT);
  assert_int_equal(hetee_unseal_blob(k1, blob, 10, &plain, &plen), HETEE_ERR_FORMAT);
  free(blob);
}

static void test_channel(void **state) {
  uint8_t shared[32], tr[32];
  randombytes_buf(shared, 32);
  randombytes_buf(tr, 32);
  hetee_chan party, encl;
  assert_int_equal(hetee_session_derive(shared, tr, 0, &party), 0);
  assert_int_equal(hetee_session_derive(shared, tr, 1, &encl), 0);
  uint8_t *m1, *m2, *p;
  size_t l1, l2, pl;
  assert_int_equal(hetee_chan_seal(&party, (const uint8_t *)"one", 3, &m1, &l1), 0);
  assert_int_equal(hetee_chan_seal(&party, (const uint8_t *)"two", 3, &m2, &l2), 0);
  /* reordering: message 1 before message 0 */
  assert_int_equal(hetee_chan_open(&encl, m2, l2, &p, &pl), HETEE_ERR_REPLAY);
  assert_int_equal(hetee_chan_open(&encl, m1, l1, &p, &pl), 0);
  assert_memory_equal(p, "one", 3);
  free(p);
  /* replay */
  assert_int_equal(hetee_chan_open(&encl, m1, l1, &p, &pl), HETEE_ERR_REPLAY);
  /* reflection: the party's own message sent back to it */
  assert_int_equal(hetee_chan_open(&party, m2, l2, &p, &pl), HETEE_ERR_AUTH);
  /* tampering with the counter is caught by the AEAD */
  m2[HETEE_SESSION_ID_BYTES + 1] ^= 0; /* counter 1 = expected */
  m2[l2 - 1] ^= 1;
  assert_int_equal(hetee_chan_open(&encl, m2, l2, &p, &pl), HETEE_ERR_AUTH);
  m2[l2 - 1] ^= 1;
  assert_int_equal(hetee_chan_open(&encl, m2, l2, &p, &pl), 0);
  free(p);
  /* another session's keys */
  hetee_chan other;
  tr[0] ^= 1;
  assert_int_equal(hetee_session_derive(shared, tr, 1, &other), 0);
  assert_int_equal(hetee_chan_open(&other, m1, l1, &p, &pl), HETEE_ERR_AUTH);
  assert_int_equal(hetee_chan_open(&encl, m1, 10, &p, &pl), HETEE_ERR_FORMAT);
  free(m1);
  free(m2);
}

static void test_evidence_format(void **state) {
  hetee_platform pl;
  crypto_sign_keypair(pl.pk, pl.sk);
  randombytes_buf(pl.secret, 32);
  uint8_t m[32] = {1}, rd[32] = {2}, ev[HETEE_EVIDENCE_BYTES];
  assert_int_equal(hetee_platform_sign_report(&pl, m, rd, ev), 0);
  hetee_evidence e;
  assert_int_equal(hetee_evidence_parse(ev, sizeof ev, &e), 0);
  assert_memory_equal(e.measurement, m, 32);
  assert_memory_equal(e.report_data, rd, 32);
  assert_int_equal(hetee_evidence_parse(ev, sizeof ev - 1, &e), HETEE_ERR_FORMAT);
  ev[4] = 9;
  assert_int_equal(hetee_evidence_parse(ev, sizeof ev, &e), HETEE_ERR_VERSION);
  /* sealing keys differ by measurement */
  uint8_t k1[32], k2[32], m2[32] = {3};
  hetee_platform_seal_key(&pl, m, k1);
  hetee_platform_seal_key(&pl, m2, k2);
  assert_memory_not_equal(k1, k2, 32);
  /* measurement covers the configuration */
  uint8_t a[32], b[32];
  assert_int_equal(hetee_measure_bytes((const uint8_t *)"bin", 3, "x=1", a), 0);
  assert_int_equal(hetee_measure_bytes((const uint8_t *)"bin", 3, "x=2", b), 0);
  assert_memory_not_equal(a, b, 32);
  /* SHA-256 of the empty string, the known answer of FIPS 180-2, through
   * the public evidence hash */
  uint8_t h[32];
  hetee_evidence_hash((const uint8_t *)"", 0, h);
  static const uint8_t empty[32] = {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
                                    0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
                                    0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
  assert_memory_equal(h, empty, 32);
}

static void test_atomic_file_and_config(void **state) {
  char dir[] = "/tmp/hetee-fmt-XXXXXX", path[64];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/f", dir);
  assert_int_equal(hetee_file_write_atomic(path, "first", 5, 0600), 0);
  assert_int_equal(hetee_file_write_atomic(path, "second", 6, 0600), 0);
  uint8_t *d;
  size_t n;
  assert_int_equal(hetee_file_read(path, 100, &d, &n), 0);
  assert_int_equal(n, 6);
  assert_memory_equal(d, "second", 6);
  free(d);
  assert_int_equal(hetee_file_read(path, 3, &d, &n), HETEE_ERR_LIMIT);
  unlink(path);
  assert_int_equal(hetee_file_read(path, 100, &d, &n), HETEE_ERR_NOT_FOUND);
  rmdir(dir);

  enclave_config c;
  assert_int_equal(enclave_config_parse(HETEE_ENCLAVE_DEFAULT_CONFIG, &c), 0);
  assert_int_equal(c.log_n, 13);
  assert_int_equal(c.nq, 3);
  assert_int_equal(c.q_bits[0], 60);
  assert_int_equal(c.np, 1);
  assert_int_equal(c.max_galois, 32);
  assert_int_equal(enclave_config_parse("logn=13;q=60,40,40;p=60;scale=40;budget=268435456", &c), HETEE_ERR_PARAMS);
  assert_int_equal(enclave_config_parse("logn=11;q=60;p=60;scale=40;budget=268435456;max_galois=1", &c),
                   HETEE_ERR_PARAMS);
  assert_int_equal(enclave_config_parse("logn=13;q=60,x;p=60;scale=40;budget=268435456;max_galois=1", &c),
                   HETEE_ERR_PARAMS);
  assert_int_equal(enclave_config_parse("logn=13;q=60;p=60;scale=40;budget=268435456;max_galois=1;evil=1", &c),
                   HETEE_ERR_PARAMS);
  /* a key given twice is refused, whatever the key (no "last one wins":
   * parties read this string to decide whom to trust) */
  static const char *twice[] = {
      "logn=13;logn=14;q=60,40,40;p=60;scale=40;budget=268435456;max_galois=32",
      "logn=13;q=60,40,40;q=60;p=60;scale=40;budget=268435456;max_galois=32",
      "logn=13;q=60,40,40;p=60;p=50;scale=40;budget=268435456;max_galois=32",
      "logn=13;q=60,40,40;p=60;scale=40;scale=30;budget=268435456;max_galois=32",
      "logn=13;q=60,40,40;p=60;scale=40;budget=268435456;budget=1048576;max_galois=32",
      "logn=13;q=60,40,40;p=60;scale=40;budget=268435456;max_galois=32;max_galois=32",
  };
  for (size_t i = 0; i < sizeof twice / sizeof *twice; i++) {
    assert_int_equal(enclave_config_parse(twice[i], &c), HETEE_ERR_PARAMS);
    assert_non_null(strstr(hetee_last_error(), "given twice"));
  }
  /* threads= (optional): 1..64, 1 when absent, 2 in the default */
  assert_int_equal(c.threads, 0); /* cleared by the failed parses above */
  assert_int_equal(enclave_config_parse(HETEE_ENCLAVE_DEFAULT_CONFIG, &c), 0);
  assert_int_equal(c.threads, 2);
  assert_int_equal(enclave_config_parse("logn=13;q=60,40,40;p=60;scale=40;budget=268435456;max_galois=32", &c), 0);
  assert_int_equal(c.threads, 1);
  assert_int_equal(enclave_config_parse("threads=64;logn=13;q=60,40,40;p=60;scale=40;budget=268435456;max_galois=32", &c),
                   0);
  assert_int_equal(c.threads, 64);
  static const char *bad_threads[] = {"threads=0", "threads=65", "threads=", "threads=2x", "threads=-1",
                                      "threads=2;threads=2"};
  for (size_t i = 0; i < sizeof bad_threads / sizeof *bad_threads; i++) {
    char cfg[200];
    snprintf(cfg, sizeof cfg, "logn=13;q=60,40,40;p=60;scale=40;budget=268435456;max_galois=32;%s", bad_threads[i]);
    assert_int_equal(enclave_config_parse(cfg, &c), HETEE_ERR_PARAMS);
  }
}

/* The mp= key (model providers allowed to set release policies): built by
 * hetee_enclave_config_with_mps in one fixed spelling, parsed back to the
 * same keys in the same order; every other spelling is refused, so one set
 * of keys gives one measurement. */
static void test_config_mps(void **state) {
  uint8_t pks[HETEE_ENCLAVE_MAX_MPS + 1][32];
  for (int i = 0; i <= HETEE_ENCLAVE_MAX_MPS; i++) randombytes_buf(pks[i], 32);
  char cfg[HETEE_ENCLAVE_CONFIG_MAX + 1], hex[65];
  enclave_config c;
  /* none: no mp= key, no model provider, base copied as it is */
  assert_int_equal(hetee_enclave_config_with_mps(NULL, (const uint8_t(*)[32])pks, 0, cfg, sizeof cfg), 0);
  assert_string_equal(cfg, HETEE_ENCLAVE_DEFAULT_CONFIG);
  assert_int_equal(enclave_config_parse(cfg, &c), 0);
  assert_int_equal(c.n_mp, 0);
  /* one, then the maximum: same keys, same order */
  for (size_t n = 1; n <= HETEE_ENCLAVE_MAX_MPS; n += HETEE_ENCLAVE_MAX_MPS - 1) {
    assert_int_equal(hetee_enclave_config_with_mps(NULL, (const uint8_t(*)[32])pks, n, cfg, sizeof cfg), 0);
    assert_int_equal(strlen(cfg), strlen(HETEE_ENCLAVE_DEFAULT_CONFIG) + 4 + 65 * n - 1);
    sodium_bin2hex(hex, 65, pks[0], 32);
    assert_non_null(strstr(cfg, hex));
    assert_int_equal(enclave_config_parse(cfg, &c), 0);
    assert_int_equal(c.n_mp, (int)n);
    for (size_t i = 0; i < n; i++) assert_memory_equal(c.mp[i], pks[i], 32);
    assert_int_equal(c.log_n, 13); /* the other keys unchanged */
  }
  assert_int_equal(hetee_enclave_config_with_mps(NULL, (const uint8_t(*)[32])pks, HETEE_ENCLAVE_MAX_MPS + 1, cfg,
                                                 sizeof cfg),
                   HETEE_ERR_LIMIT);
  assert_int_equal(hetee_enclave_config_with_mps(NULL, (const uint8_t(*)[32])pks, 2, cfg, 100), HETEE_ERR_LIMIT);
  char base[HETEE_ENCLAVE_CONFIG_MAX + 1];
  assert_int_equal(hetee_enclave_config_with_mps(NULL, (const uint8_t(*)[32])pks, 1, base, sizeof base), 0);
  assert_int_equal(hetee_enclave_config_with_mps(base, (const uint8_t(*)[32])pks + 1, 1, cfg, sizeof cfg),
                   HETEE_ERR_INVALID_ARG); /* already has mp= */
  /* refused spellings, each a variant of a valid one-key configuration */
  const char *d = HETEE_ENCLAVE_DEFAULT_CONFIG;
  sodium_bin2hex(hex, 65, pks[0], 32);
  char up[65], h2[65];
  strcpy(up, hex);
  for (int i = 0; i < 64; i++)
    if (up[i] >= 'a') up[i] = (char)(up[i] - 32);
  if (!strcmp(up, hex)) up[0] = 'A'; /* (all digits: force a letter) */
  sodium_bin2hex(h2, 65, pks[1], 32);
  char bad[8][400];
  snprintf(bad[0], 400, "%s;mp=", d);                    /* empty */
  snprintf(bad[1], 400, "%s;mp=%.63s", d, hex);          /* 63 digits */
  snprintf(bad[2], 400, "%s;mp=%s0", d, hex);            /* 65 digits */
  snprintf(bad[3], 400, "%s;mp=%s", d, up);              /* upper case */
  snprintf(bad[4], 400, "%s;mp=%s,%s", d, hex, hex);     /* repeated key */
  snprintf(bad[5], 400, "%s;mp=%s,", d, hex);            /* trailing comma */
  snprintf(bad[6], 400, "%s;mp=%s;mp=%s", d, hex, h2);   /* key given twice */
  snprintf(bad[7], 400, "%s;mp=%.62sxy", d, hex);        /* not hex */
  for (int i = 0; i < 8; i++) {
    if (enclave_config_parse(bad[i], &c) != HETEE_ERR_PARAMS) fail_msg("accepted: %s", bad[i]);
  }
  snprintf(bad[0], 400, "%s;mp=%s", d, hex);
  assert_int_equal(enclave_config_parse(bad[0], &c), 0);
  /* the measurement covers the list: another key, another measurement */
  uint8_t m1[32], m2[32];
  snprintf(bad[1], 400, "%s;mp=%s", d, h2);
  assert_int_equal(hetee_measure_bytes((const uint8_t *)"bin", 3, bad[0], m1), 0);
  assert_int_equal(hetee_measure_bytes((const uint8_t *)"bin", 3, bad[1], m2), 0);
  assert_memory_not_equal(m1, m2, 32);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_frames),        cmocka_unit_test(test_frame_parts),
      cmocka_unit_test(test_refresh_spec_roundtrip),
      cmocka_unit_test(test_seal_blob),     cmocka_unit_test(test_channel),
      cmocka_unit_test(test_evidence_format), cmocka_unit_test(test_atomic_file_and_config),
      cmocka_unit_test(test_config_mps),
  };
  return cmocka_run_group_tests_name("enclave/formats", tests, NULL, NULL);
}

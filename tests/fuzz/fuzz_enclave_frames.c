/*
 * fuzz_enclave_frames.c — fuzz target of everything the untrusted host can
 * send the enclave: the input is a byte stream read with the real frame
 * reader (frame.c, from a memfd standing for the host socket), and every
 * frame read is handed to the real dispatcher (server.c: enclave_dispatch)
 * of an in-process enclave (fuzz_enclave.h), reaching every request-body
 * parser: KEYGEN, EVIDENCE, SESSION_OPEN / SESSION_MSG (and the policy
 * command inside), REFRESH (refresh_spec.c + ciphertext loading and
 * decryption, also of an input in the form "c0 at listed coefficients"),
 * RELEASE, UNSEAL. Returns 0 when every frame was read and
 * handled successfully, else the first error (the enclave loop would answer
 * it with an error frame and go on, so does this target).
 *
 * Seeds: one stream that opens sessions of the two model providers listed
 * in the configuration's mp= and of a DP (deterministic keys), sets release
 * policies naming that DP, releases and refreshes real ciphertexts, seals
 * and unseals; plus single frames of each stateless kind. Regression inputs
 * (fuzz_known_bad) include the release-oracle attacks of the audit.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <unistd.h>

#include "ckks/ckks_arena.h"
#include "fuzz/fuzz_enclave.h"
#include "hetee/client.h"

const char fuzz_target_name[] = "enclave_frames";
const int fuzz_prefixes_valid = 1;

int fuzz_setup(void) { return fz_enclave_setup(); }
void fuzz_teardown(void) { fz_enclave_teardown(); }

static int run_stream(int fd) {
  int first = 0, frames = 0;
  for (;;) {
    hetee_frame f;
    int rc = hetee_frame_read(fd, fz_e.cfg.budget, &f);
    if (rc == HETEE_ERR_IO) break;
    frames++;
    if (!rc && f.version != HETEE_PROTO_VERSION) rc = hetee_error(HETEE_ERR_VERSION, "version");
    int quit = 0;
    if (!rc) {
      hetee_wbuf w;
      hetee_wbuf_init(&w);
      uint64_t items = 0;
      rc = enclave_dispatch(&fz_e, &f, &w, &items, &quit);
      if (!rc && w.err) rc = hetee_error(HETEE_ERR_NOMEM, "reply");
      hetee_wbuf_free(&w);
    }
    hetee_frame_clear(&f);
    if (rc && !first) first = rc;
    if (quit) break;
  }
  if (!frames && !first) first = hetee_error(HETEE_ERR_TRUNCATED, "no frame");
  return first;
}

int fuzz_one(const uint8_t *data, size_t len) {
  int fd = memfd_create("hetee-fuzz-frames", 0);
  FUZZ_CHECK(fd >= 0);
  size_t off = 0;
  while (off < len) {
    ssize_t k = write(fd, data + off, len - off);
    FUZZ_CHECK(k > 0);
    off += (size_t)k;
  }
  FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0);
  int rc = run_stream(fd);
  close(fd);
  fz_reset();
  return rc;
}

/* ---- seeds -------------------------------------------------------------- */

static uint64_t next_id;

static void put_frame(hetee_wbuf *s, uint16_t type, const void *body, size_t len) {
  hetee_wbuf_u32(s, (uint32_t)(12 + len));
  hetee_wbuf_u16(s, HETEE_PROTO_VERSION);
  hetee_wbuf_u16(s, type);
  hetee_wbuf_u64(s, ++next_id);
  hetee_wbuf_put(s, body, len);
}

static void add_single(fuzz_buf **seeds, size_t *n, uint16_t type, const void *body, size_t len) {
  hetee_wbuf s;
  hetee_wbuf_init(&s);
  put_frame(&s, type, body, len);
  FUZZ_CHECK(!s.err);
  fuzz_seed_add(seeds, n, s.p, s.len);
  hetee_wbuf_free(&s);
}

/* EVIDENCE(nonce) then SESSION_OPEN as a party with fixed keys; fills the
 * party's side of the channel. zero_evh: bind the handshake to an all-zero
 * evidence hash instead (the value used-up ring entries hold). */
static void open_session_ex(hetee_wbuf *s, uint8_t role, uint8_t tag, hetee_chan *party, int zero_evh) {
  uint8_t nonce[32], ev[HETEE_EVIDENCE_BYTES], rd[32], evh[32], seed[32];
  size_t evlen = 0;
  memset(nonce, tag, 32);
  put_frame(s, HETEE_MSG_EVIDENCE, nonce, 32);
  hetee_report_data(fz_e.bundle_fp, fz_e.ch_pk, nonce, rd);
  FUZZ_CHECK(fz_report(&fz_e, rd, ev, sizeof ev, &evlen) == 0);
  hetee_evidence_hash(ev, evlen, evh);
  if (zero_evh) memset(evh, 0, 32);
  uint8_t id_pk[32], id_sk[64], eph_pk[32], eph_sk[32], tr[32], shared[32];
  fz_party_key(tag, id_pk, id_sk);
  memset(seed, tag + 2, 32);
  crypto_box_seed_keypair(eph_pk, eph_sk, seed);
  hetee_session_transcript(role, id_pk, eph_pk, evh, fz_e.ch_pk, tr);
  FUZZ_CHECK(crypto_scalarmult(shared, eph_sk, fz_e.ch_pk) == 0);
  FUZZ_CHECK(hetee_session_derive(shared, tr, 0, party) == 0);
  uint8_t hs[1 + 32 + 32 + 32 + 64];
  hs[0] = role;
  memcpy(hs + 1, id_pk, 32);
  memcpy(hs + 33, eph_pk, 32);
  memcpy(hs + 65, evh, 32);
  crypto_sign_detached(hs + 97, NULL, tr, 32, id_sk);
  put_frame(s, HETEE_MSG_SESSION_OPEN, hs, sizeof hs);
}

static void open_session(hetee_wbuf *s, uint8_t role, uint8_t tag, hetee_chan *party) {
  open_session_ex(s, role, tag, party, 0);
}

static void session_msg(hetee_wbuf *s, hetee_chan *party, const uint8_t *msg, size_t len) {
  uint8_t *c = NULL;
  size_t clen = 0;
  FUZZ_CHECK(hetee_chan_seal(party, msg, len, &c, &clen) == 0);
  put_frame(s, HETEE_MSG_SESSION_MSG, c, clen);
  free(c);
}

/* A ciphertext of 4 known values under the enclave's fixed key, at `level`
 * and `scale`. */
static void put_ct_blob_at(hetee_wbuf *w, int level, double scale) {
  hetee_ckks_context *ctx = fz_e.ctx;
  double v[4] = {0.75, -2.5, 1.25, 3.0};
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ct = NULL;
  uint8_t *b = NULL;
  size_t blen = 0;
  FUZZ_CHECK(hetee_ckks_plaintext_new(ctx, &pt) == 0 && hetee_ckks_ciphertext_new(ctx, &ct) == 0);
  FUZZ_CHECK(hetee_ckks_encode_real(ctx, v, 4, scale, level, pt) == 0);
  FUZZ_CHECK(hetee_ckks_encrypt_sk(ctx, fz_e.sk, pt, ct) == 0);
  FUZZ_CHECK(hetee_ckks_ciphertext_save(ctx, ct, &b, &blen) == 0);
  hetee_wbuf_blob(w, b, blen);
  free(b);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_plaintext_free(pt);
}

/* ... at level 1 and the default scale (refresh inputs). */
static void put_ct_blob(hetee_wbuf *w) { put_ct_blob_at(w, 1, hetee_ckks_context_default_scale(fz_e.ctx)); }

/* The release input header (level, scale, encoding, 4 values at slots
 * 0..3) and one ciphertext at that level and scale. */
static void put_release_input(hetee_wbuf *body) {
  hetee_wbuf_u32(body, 2);
  hetee_wbuf_f64(body, FZ_RELEASE_SCALE);
  hetee_wbuf_u8(body, HETEE_ENC_SLOTS);
  hetee_wbuf_u32(body, 4);
  for (uint32_t i = 0; i < 4; i++) hetee_wbuf_u32(body, i);
  hetee_wbuf_u32(body, 1);
  put_ct_blob_at(body, 2, FZ_RELEASE_SCALE);
}

static void refresh_body(hetee_wbuf *w) {
  const uint32_t in_map[4] = {0, 1, 2, 3}, dst[1] = {5}, src[1] = {0};
  const double bias[1] = {0.5};
  hetee_refresh_op ops[3];
  memset(ops, 0, sizeof ops);
  ops[0].kind = HETEE_OP_ADD_BIAS, ops[0].a = bias, ops[0].na = 1;
  ops[1].kind = HETEE_OP_RELU;
  ops[2].kind = HETEE_OP_MAXPOOL, ops[2].window = 2, ops[2].stride = 2;
  const hetee_refresh_spec sp = {.in_level = 1, .shape = {1, 2, 2}, .in_map = in_map, .nops = 3, .ops = ops,
                                 .out_ncts = 1, .out_n = 1, .out_dst = dst, .out_src = src, .out_level = -1};
  uint8_t *b = NULL;
  size_t blen = 0;
  FUZZ_CHECK(hetee_refresh_spec_encode(&sp, &b, &blen) == 0);
  hetee_wbuf_put(w, b, blen);
  free(b);
  hetee_wbuf_u32(w, 1);
  put_ct_blob(w);
}

/* A REFRESH of a degree-2 coefficient-encoded input at level 0 in the
 * form "c0 at listed coefficients" (what bound runs send): c0 only at the
 * 4 coefficients the map names. */
static void refresh_c0_at_body(hetee_wbuf *w) {
  hetee_ckks_context *ctx = fz_e.ctx;
  const uint32_t in_map[4] = {0, 1, 2, 3}, dst[4] = {0, 1, 2, 3}, src[4] = {0, 1, 2, 3};
  double v[4] = {0.75, -2.5, 1.25, 3.0};
  hetee_refresh_op relu;
  memset(&relu, 0, sizeof relu);
  relu.kind = HETEE_OP_RELU;
  const hetee_refresh_spec sp = {.in_level = 0, .in_scale = 0x1p44, .in_encoding = HETEE_ENC_COEFFS,
                                 .shape = {1, 1, 4}, .in_map = in_map, .nops = 1, .ops = &relu, .out_ncts = 1,
                                 .out_n = 4, .out_dst = dst, .out_src = src, .out_level = -1,
                                 .out_encoding = HETEE_ENC_COEFFS};
  uint8_t *b = NULL;
  size_t blen = 0;
  FUZZ_CHECK(hetee_refresh_spec_encode(&sp, &b, &blen) == 0);
  hetee_wbuf_put(w, b, blen);
  free(b);
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ct = NULL, *sq = NULL;
  FUZZ_CHECK(hetee_ckks_plaintext_new(ctx, &pt) == 0 && hetee_ckks_ciphertext_new(ctx, &ct) == 0 &&
             hetee_ckks_ciphertext_new(ctx, &sq) == 0);
  FUZZ_CHECK(hetee_ckks_encode_coeffs(ctx, v, 4, 0x1p22, 0, pt) == 0);
  FUZZ_CHECK(hetee_ckks_encrypt_sk(ctx, fz_e.sk, pt, ct) == 0);
  FUZZ_CHECK(hetee_ckks_eval_mul(ctx, ct, ct, sq) == 0);
  FUZZ_CHECK(ckks_ciphertext_c0_at_size(ctx, sq, 4, &blen) == 0);
  b = malloc(blen);
  FUZZ_CHECK(b && ckks_ciphertext_save_c0_at(ctx, sq, in_map, 4, b, blen, &blen) == 0);
  hetee_wbuf_u32(w, 1);
  hetee_wbuf_blob(w, b, blen);
  free(b);
  hetee_ckks_ciphertext_free(sq);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_plaintext_free(pt);
}

size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *seeds = NULL;
  size_t n = 0;
  hetee_wbuf s, body;
  hetee_wbuf_init(&s);
  hetee_chan mp, dp;
  put_frame(&s, HETEE_MSG_PING, "hello", 5);
  put_frame(&s, HETEE_MSG_INFO, NULL, 0);
  put_frame(&s, HETEE_MSG_PUBLIC_KEYS, NULL, 0);
  put_frame(&s, HETEE_MSG_STATS, NULL, 0);
  open_session(&s, HETEE_ROLE_MP, FZ_MP1, &mp);
  uint8_t *m = NULL, dp_pk[32], dp_sk[64];
  size_t mlen = 0;
  fz_party_key(0xb0, dp_pk, dp_sk); /* the DP the policies name */
  FUZZ_CHECK(hetee_client_msg_policy(7, HETEE_RELEASE_VALUES, 0, 8, dp_pk, &m, &mlen) == 0);
  session_msg(&s, &mp, m, mlen);
  free(m);
  FUZZ_CHECK(hetee_client_msg_ping((const uint8_t *)"abc", 3, &m, &mlen) == 0);
  session_msg(&s, &mp, m, mlen);
  free(m);
  FUZZ_CHECK(hetee_client_msg_policy(8, HETEE_RELEASE_TOPK, 2, 0, dp_pk, &m, &mlen) == 0);
  session_msg(&s, &mp, m, mlen);
  free(m);
  /* the second listed model provider sets a policy for a model of its own */
  hetee_chan mp2;
  open_session(&s, HETEE_ROLE_MP, FZ_MP2, &mp2);
  FUZZ_CHECK(hetee_client_msg_policy(9, HETEE_RELEASE_ARGMAX, 0, 0, dp_pk, &m, &mlen) == 0);
  session_msg(&s, &mp2, m, mlen);
  free(m);
  sodium_memzero(&mp2, sizeof mp2);
  open_session(&s, HETEE_ROLE_DP, 0xb0, &dp);
  for (uint32_t model = 7; model <= 9; model++) {
    hetee_wbuf_init(&body);
    hetee_wbuf_u32(&body, model);
    hetee_wbuf_put(&body, dp.id, HETEE_SESSION_ID_BYTES);
    put_release_input(&body);
    FUZZ_CHECK(!body.err);
    put_frame(&s, HETEE_MSG_RELEASE, body.p, body.len);
    hetee_wbuf_free(&body);
  }
  hetee_wbuf_init(&body);
  refresh_body(&body);
  FUZZ_CHECK(!body.err);
  put_frame(&s, HETEE_MSG_REFRESH, body.p, body.len);
  add_single(&seeds, &n, HETEE_MSG_REFRESH, body.p, body.len);
  hetee_wbuf_free(&body);
  hetee_wbuf_init(&body);
  refresh_c0_at_body(&body);
  FUZZ_CHECK(!body.err);
  put_frame(&s, HETEE_MSG_REFRESH, body.p, body.len);
  add_single(&seeds, &n, HETEE_MSG_REFRESH, body.p, body.len);
  hetee_wbuf_free(&body);
  put_frame(&s, HETEE_MSG_SEAL, NULL, 0);
  uint8_t *sealed = NULL;
  size_t slen = 0;
  fz_sealed_state(&sealed, &slen);
  put_frame(&s, HETEE_MSG_UNSEAL, sealed, slen);
  add_single(&seeds, &n, HETEE_MSG_UNSEAL, sealed, slen);
  free(sealed);
  put_frame(&s, HETEE_MSG_SHUTDOWN, NULL, 0);
  FUZZ_CHECK(!s.err);
  fuzz_seed_add(&seeds, &n, s.p, s.len);
  hetee_wbuf_free(&s);
  uint8_t nonce[32];
  memset(nonce, 0x42, 32);
  add_single(&seeds, &n, HETEE_MSG_EVIDENCE, nonce, 32);
  add_single(&seeds, &n, HETEE_MSG_PING, "x", 1);
  add_single(&seeds, &n, HETEE_MSG_INFO, NULL, 0);
  add_single(&seeds, &n, HETEE_MSG_SEAL, NULL, 0);
  fz_reset();
  *out = seeds;
  return n;
}

/* A RELEASE of model `model` to session `to` (one ciphertext, 4 values). */
static void put_release(hetee_wbuf *s, uint32_t model, const hetee_chan *to) {
  hetee_wbuf body;
  hetee_wbuf_init(&body);
  hetee_wbuf_u32(&body, model);
  hetee_wbuf_put(&body, to->id, HETEE_SESSION_ID_BYTES);
  put_release_input(&body);
  FUZZ_CHECK(!body.err);
  put_frame(s, HETEE_MSG_RELEASE, body.p, body.len);
  hetee_wbuf_free(&body);
}

static void put_policy(hetee_wbuf *s, hetee_chan *mp, uint32_t model, uint8_t dp_tag) {
  uint8_t dp_pk[32], dp_sk[64], *m = NULL;
  size_t mlen = 0;
  fz_party_key(dp_tag, dp_pk, dp_sk);
  FUZZ_CHECK(hetee_client_msg_policy(model, HETEE_RELEASE_VALUES, 0, 8, dp_pk, &m, &mlen) == 0);
  session_msg(s, mp, m, mlen);
  free(m);
}

/* The release-oracle hole of the audit (docs/security.md, "Release
 * authorization"), each stream must now be refused:
 *   1. the host opens an "MP" session with a key it made up (not in mp=) and
 *      a "DP" session of its own, sets a VALUES policy, releases to itself;
 *   2. a second listed MP overwrites the first one's model policy (to
 *      redirect its releases), then releases to its own DP;
 *   3. a listed MP sets a policy naming no data provider ("any DP");
 *   4. a DP the policy does not name asks for the release. */
static void add_policy_attacks(fuzz_buf **seeds, size_t *n) {
  hetee_chan mp, mp2, dp, other;
  for (int attack = 1; attack <= 4; attack++) {
    hetee_wbuf st;
    hetee_wbuf_init(&st);
    if (attack == 1) {
      open_session(&st, HETEE_ROLE_MP, FZ_HOST_MP, &mp);
      open_session(&st, HETEE_ROLE_DP, 0xc0, &dp);
      put_policy(&st, &mp, 7, 0xc0);
      put_release(&st, 7, &dp);
    } else if (attack == 2) {
      open_session(&st, HETEE_ROLE_MP, FZ_MP1, &mp);
      open_session(&st, HETEE_ROLE_MP, FZ_MP2, &mp2);
      open_session(&st, HETEE_ROLE_DP, 0xc0, &dp);
      put_policy(&st, &mp, 7, 0xb0);
      put_policy(&st, &mp2, 7, 0xc0);
      put_release(&st, 7, &dp);
    } else if (attack == 3) {
      open_session(&st, HETEE_ROLE_MP, FZ_MP1, &mp);
      uint8_t raw[2 + 4 + 3 + 32] = {2, 0, 7, 0, 0, 0, HETEE_RELEASE_VALUES, 0, 8}; /* DP key all zero */
      session_msg(&st, &mp, raw, sizeof raw);
    } else {
      open_session(&st, HETEE_ROLE_MP, FZ_MP1, &mp);
      open_session(&st, HETEE_ROLE_DP, 0xc0, &other);
      put_policy(&st, &mp, 7, 0xb0);
      put_release(&st, 7, &other);
    }
    FUZZ_CHECK(!st.err);
    fuzz_seed_add(seeds, n, st.p, st.len);
    hetee_wbuf_free(&st);
  }
  sodium_memzero(&mp, sizeof mp);
  sodium_memzero(&mp2, sizeof mp2);
  sodium_memzero(&dp, sizeof dp);
  sodium_memzero(&other, sizeof other);
}

/* Findings of this target (fixed): a request frame with an empty body (here
 * SESSION_MSG) made hetee_rbuf_get compute NULL + 0 (wire.c, undefined
 * behaviour reported by clang's UBSan); empty EVIDENCE / SESSION_OPEN /
 * UNSEAL / RELEASE / REFRESH bodies take the same path. */
size_t fuzz_known_bad(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  const uint16_t types[] = {HETEE_MSG_SESSION_MSG, HETEE_MSG_EVIDENCE, HETEE_MSG_SESSION_OPEN,
                            HETEE_MSG_UNSEAL,      HETEE_MSG_RELEASE,  HETEE_MSG_REFRESH};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) add_single(&s, &n, types[i], NULL, 0);
  /* Found by review: the evidence ring marks a used entry by zeroing it, so
   * a handshake bound to an all-zero evidence hash matched a used-up entry
   * and opened a session bound to no evidence. First session valid, second
   * (zero hash, another identity) must be refused. */
  hetee_wbuf st;
  hetee_wbuf_init(&st);
  hetee_chan a, b;
  open_session(&st, HETEE_ROLE_DP, 0xc0, &a);
  open_session_ex(&st, HETEE_ROLE_DP, 0xd0, &b, 1);
  FUZZ_CHECK(!st.err);
  fuzz_seed_add(&s, &n, st.p, st.len);
  hetee_wbuf_free(&st);
  sodium_memzero(&a, sizeof a);
  sodium_memzero(&b, sizeof b);
  add_policy_attacks(&s, &n);
  *out = s;
  return n;
}

/*
 * fuzz_client_release.c — fuzz target of what a data provider parses from
 * the enclave's replies, relayed by the untrusted host: the sealed session
 * message (client/session.c -> enclave/channel.c: hetee_chan_open) and the
 * release record inside it (hetee_client_release_open). The first input
 * byte picks the layer:
 *   even: the rest is the sealed message as the host relays it (mutants
 *         fail authentication, replay or framing checks);
 *   odd:  the rest is the plaintext record; the target seals it with the
 *         enclave's end of an established session first, so the record
 *         parser — which only sees authenticated bytes, but of a possibly
 *         older or buggy enclave — is reached too.
 * Set-up runs the real handshake (hetee_client_session_new / _finish) with
 * an enclave end derived here as sessions.c derives it. An accepted record
 * must be consistent: known kind, n within the limit, the array its kind
 * needs, values on the 2^-prec grid.
 */
#include <math.h>
#include <sodium.h>
#include <string.h>

#include "enclave/wire/proto.h"
#include "fuzz/fuzz.h"
#include "hetee/client.h"

const char fuzz_target_name[] = "client_release";
const int fuzz_prefixes_valid = 0;

static hetee_party_key *dp_key;
static hetee_client_session *sess;
static hetee_chan *enc; /* the enclave's end (sodium_malloc) */

int fuzz_setup(void) {
  if (sodium_init() < 0) return -1;
  enc = sodium_malloc(sizeof *enc);
  if (!enc || hetee_party_key_generate(HETEE_ROLE_DP, &dp_key)) return -1;
  uint8_t ch_sk[32], seed[32];
  hetee_verified_enclave v;
  memset(&v, 0, sizeof v);
  memset(seed, 0x22, 32);
  crypto_box_seed_keypair(v.channel_pk, ch_sk, seed);
  memset(v.evidence_hash, 0x44, 32);
  uint8_t *hs = NULL;
  size_t hslen = 0;
  if (hetee_client_session_new(dp_key, &v, &sess, &hs, &hslen) || hslen != 161) return -1;
  /* the enclave's side of the handshake (sessions.c) */
  uint8_t tr[32], shared[32];
  hetee_session_transcript(hs[0], hs + 1, hs + 33, hs + 65, v.channel_pk, tr);
  int rc = crypto_scalarmult(shared, ch_sk, hs + 33);
  free(hs);
  if (rc || hetee_session_derive(shared, tr, 1, enc)) return -1;
  uint8_t *conf = NULL;
  size_t clen = 0;
  static const char confirm[] = "hetee-session-ok";
  if (hetee_chan_seal(enc, (const uint8_t *)confirm, sizeof confirm, &conf, &clen)) return -1;
  uint8_t *reply = malloc(HETEE_SESSION_ID_BYTES + clen);
  if (!reply) return -1;
  memcpy(reply, enc->id, HETEE_SESSION_ID_BYTES);
  memcpy(reply + HETEE_SESSION_ID_BYTES, conf, clen);
  rc = hetee_client_session_finish(sess, reply, HETEE_SESSION_ID_BYTES + clen);
  free(reply);
  free(conf);
  sodium_memzero(ch_sk, sizeof ch_sk);
  return rc ? -1 : 0;
}

void fuzz_teardown(void) {
  hetee_client_session_free(sess);
  hetee_party_key_free(dp_key);
  if (enc) sodium_free(enc);
  sess = NULL;
  dp_key = NULL;
  enc = NULL;
}

int fuzz_one(const uint8_t *data, size_t len) {
  if (len < 1) return hetee_error(HETEE_ERR_TRUNCATED, "empty");
  const uint8_t *msg = data + 1;
  size_t mlen = len - 1;
  uint8_t *sealed = NULL;
  if (data[0] & 1) {
    size_t slen = 0;
    FUZZ_CHECK(hetee_chan_seal(enc, msg, mlen, &sealed, &slen) == 0);
    msg = sealed;
    mlen = slen;
  }
  hetee_release_result r;
  int rc = hetee_client_release_open(sess, msg, mlen, &r);
  free(sealed);
  if (rc) {
    FUZZ_CHECK(r.values == NULL && r.indices == NULL);
    return rc;
  }
  FUZZ_CHECK(r.kind >= HETEE_RELEASE_VALUES && r.kind <= HETEE_RELEASE_TOPK && r.n <= HETEE_RELEASE_MAX_VALUES);
  FUZZ_CHECK(r.prec_bits >= 0 && r.prec_bits <= 40);
  if (r.kind == HETEE_RELEASE_VALUES || r.kind == HETEE_RELEASE_SOFTMAX) {
    FUZZ_CHECK(r.values != NULL);
    for (size_t i = 0; i < r.n; i++) {
      double k = r.values[i] * ldexp(1.0, r.prec_bits);
      FUZZ_CHECK(isfinite(k) && k == nearbyint(k));
    }
  } else {
    FUZZ_CHECK(r.indices != NULL);
  }
  hetee_release_result_clear(&r);
  return 0;
}

/* u8 kind | u32 model | u8 prec | u32 n | n x (i64 fixed | u32 index):
 * the record sessions.c (build_release) writes. */
static void add_record(fuzz_buf **s, size_t *n, uint8_t kind, uint8_t prec, uint32_t count, const int64_t *fixed,
                       const uint32_t *idx) {
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u8(&w, 1); /* odd: plaintext record, sealed by the target */
  hetee_wbuf_u8(&w, kind);
  hetee_wbuf_u32(&w, 7);
  hetee_wbuf_u8(&w, prec);
  hetee_wbuf_u32(&w, count);
  for (uint32_t i = 0; i < count; i++) {
    if (fixed) hetee_wbuf_u64(&w, (uint64_t)fixed[i]);
    else hetee_wbuf_u32(&w, idx[i]);
  }
  FUZZ_CHECK(!w.err);
  fuzz_seed_add(s, n, w.p, w.len);
  hetee_wbuf_free(&w);
}

size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  const int64_t vals[3] = {384, -1024, 5}; /* 1.5, -4, 5/256 at prec 8 */
  const int64_t probs[4] = {30000, 20000, 10000, 5536};
  const uint32_t top[2] = {3, 0}, arg[1] = {2};
  add_record(&s, &n, HETEE_RELEASE_VALUES, 8, 3, vals, NULL);
  add_record(&s, &n, HETEE_RELEASE_SOFTMAX, 16, 4, probs, NULL);
  add_record(&s, &n, HETEE_RELEASE_ARGMAX, 0, 1, NULL, arg);
  add_record(&s, &n, HETEE_RELEASE_TOPK, 0, 2, NULL, top);
  /* no even (pre-sealed) seed: a sealed message is valid once only (the
   * session counter moves on), so acceptance is covered by the odd seeds */
  *out = s;
  return n;
}

FUZZ_NO_KNOWN_BAD

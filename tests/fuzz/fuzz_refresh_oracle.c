/*
 * fuzz_refresh_oracle.c — fuzz target of the property issue 7 asks of
 * refresh: what the host observes (status, error text, reply length) does
 * not depend on what the ciphertexts decrypt to. The input bytes drive a
 * generator (after the magic "ORCL"): a random refresh spec (shape, batch,
 * every op kind with constants from tiny to the 2^64 limit and beyond,
 * declared input level/scale, output level/scale from 1e-300 to above
 * the modulus, encodings, replication into several ciphertexts) and the
 * metadata of 1-3 input ciphertexts (level, scale, size 2 or 3), some
 * agreeing with the declaration and some not. The same spec then runs
 * through the real handler (refresh.c: enclave_handle_refresh, in-process
 * enclave of fuzz_enclave.h) twice, on ciphertexts with the same metadata
 * but different plaintexts: A from the input bytes (tiny, ordinary and huge
 * values, up to what the modulus holds) and B unrelated huge/alternating
 * values. The invariant (abort otherwise): identical status, identical
 * error text, identical reply length. fuzz_one returns that common status.
 */
#include <math.h>
#include <string.h>

#include "fuzz/fuzz_enclave.h"

const char fuzz_target_name[] = "refresh_oracle";
const int fuzz_prefixes_valid = 1; /* the generator reads zeros past the end */

int fuzz_setup(void) {
  (void)fz_reset; /* refresh changes no enclave state */
  (void)fz_sealed_state;
  return fz_enclave_setup();
}
void fuzz_teardown(void) { fz_enclave_teardown(); }
FUZZ_NO_KNOWN_BAD

typedef struct gen {
  const uint8_t *p;
  size_t len, pos, asked; /* asked: bytes the generator wanted */
} gen;

static unsigned g8(gen *g) {
  g->asked++;
  return g->pos < g->len ? g->p[g->pos++] : 0;
}
static unsigned g16(gen *g) { return g8(g) | g8(g) << 8; }

/* A constant: ordinary, tiny, the 2^64 limit, or beyond it. */
static double gconst(gen *g) {
  static const double special[] = {0.0, 1.0, -1.0, 1e-300, -1e-300, 0x1p64, -0x1p64, 0x1p65, 1e308, 0.5, 3.0, -7.25};
  unsigned k = g8(g);
  if (k < 96) return ((double)g16(g) - 32768.0) / 256.0;
  return special[k % (sizeof special / sizeof *special)];
}

static double gscale(gen *g, int allow_zero) {
  static const double s[] = {0x1p40, 0x1p30, 0x1p20, 0x1p19, 1e-300, 0x1p80, 0x1p100, 0x1p130, 0x1p131, 0x1p40 * 1.5};
  unsigned k = g8(g);
  if (allow_zero && k < 128) return 0;
  return s[k % (sizeof s / sizeof *s)];
}

/* One hidden value: class A from the bytes. */
static double value_a(gen *g) {
  unsigned k = g8(g);
  double m = ((double)g16(g) - 32768.0) / 4096.0;
  switch (k % 5) {
  case 0: return m;
  case 1: return m * 1e-12;
  case 2: return m * 1e6;
  case 3: return m * 1e30; /* saturated by the encoder below */
  default: return 0.0;
  }
}
/* Class B: unrelated, alternating huge / tiny. */
static double value_b(size_t i) { return (i & 1) ? -1e35 * (double)(i % 7 + 1) : 1e-9 * (double)(i % 5); }

#define MAXV 64

typedef struct ctmeta {
  int level, size3;
  double scale;
} ctmeta;

/* Serializes one ciphertext of `vals` (slots 0..nv) with metadata m. */
static void put_ct(hetee_wbuf *w, const ctmeta *m, const double *vals, size_t nv) {
  const hetee_ckks_context *ctx = fz_e.ctx;
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ct = NULL, *ct2 = NULL;
  FUZZ_CHECK(hetee_ckks_plaintext_new(ctx, &pt) == 0 && hetee_ckks_ciphertext_new(ctx, &ct) == 0);
  /* the factor scale of a size-3 product is its square root */
  double sc = m->size3 ? sqrt(m->scale) : m->scale;
  double logq = 0;
  for (int i = 0; i <= m->level; i++) logq += log2((double)hetee_ckks_context_prime(ctx, i));
  double lim = (m->size3 ? logq / 2 : logq) - 6;
  double vmax = exp2(lim < 1000 ? lim : 1000) / sc;
  FUZZ_CHECK(hetee_ckks_encode_real_bounded(ctx, vals, nv, sc, m->level, vmax, pt) == 0);
  FUZZ_CHECK(hetee_ckks_encrypt_sk(ctx, fz_e.sk, pt, ct) == 0);
  if (m->size3) {
    FUZZ_CHECK(hetee_ckks_ciphertext_new(ctx, &ct2) == 0);
    FUZZ_CHECK(hetee_ckks_eval_mul(ctx, ct, ct, ct2) == 0);
    FUZZ_CHECK(hetee_ckks_ciphertext_size(ct2) == 3);
  }
  uint8_t *b = NULL;
  size_t blen = 0;
  FUZZ_CHECK(hetee_ckks_ciphertext_save(ctx, ct2 ? ct2 : ct, &b, &blen) == 0);
  hetee_wbuf_blob(w, b, blen);
  free(b);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_ciphertext_free(ct2);
  hetee_ckks_plaintext_free(pt);
}

static int run_once(const uint8_t *spec, size_t slen, const ctmeta *m, uint32_t ncts, double (*vals)[MAXV],
                    size_t *reply_len, char *err, size_t errcap) {
  hetee_wbuf body, out;
  hetee_wbuf_init(&body);
  hetee_wbuf_put(&body, spec, slen);
  hetee_wbuf_u32(&body, ncts);
  for (uint32_t c = 0; c < ncts; c++) put_ct(&body, &m[c], vals[c], MAXV);
  FUZZ_CHECK(!body.err);
  hetee_rbuf r;
  hetee_rbuf_init(&r, body.p, body.len);
  hetee_wbuf_init(&out);
  uint64_t items = 0;
  int rc = enclave_handle_refresh(&fz_e, &r, &out, &items);
  *reply_len = out.len;
  snprintf(err, errcap, "%s", rc ? hetee_last_error() : "");
  hetee_wbuf_free(&out);
  hetee_wbuf_free(&body);
  return rc;
}

/* strict: the input must be exactly as long as the generator reads (so
 * that random buffers are refused); *asked: that length. */
static int oracle(const uint8_t *data, size_t len, int strict, size_t *asked) {
  if (len < 4 || memcmp(data, "ORCL", 4)) return hetee_error(HETEE_ERR_FORMAT, "no ORCL magic");
  gen g = {data + 4, len - 4, 0, 0};
  const int top = hetee_ckks_context_max_level(fz_e.ctx);
  const size_t slots = hetee_ckks_context_slots(fz_e.ctx);
  /* input tensor: C x H x W x batch, at most MAXV values per ciphertext
   * slot range used */
  int C = 1 + (int)(g8(&g) % 3), H = 1 + (int)(g8(&g) % 4), W = 1 + (int)(g8(&g) % 4);
  uint32_t batch = 1 + g8(&g) % 3;
  uint32_t ncts = 1 + g8(&g) % 3;
  size_t n = (size_t)C * H * W * batch;
  uint32_t in_map[3 * 4 * 4 * 3];
  for (size_t i = 0; i < n; i++) in_map[i] = (uint32_t)((g8(&g) % ncts) * slots + g8(&g) % MAXV);
  hetee_refresh_op ops[8];
  double arr[8][2][3 * 4 * 4];
  memset(ops, 0, sizeof ops);
  size_t nops = g8(&g) % 7;
  int c = C, h = H, w = W;
  for (size_t i = 0; i < nops; i++) {
    hetee_refresh_op *o = &ops[i];
    o->kind = 1 + (int)(g8(&g) % 11);
    o->alpha = gconst(&g);
    o->window = 1 + (int)(g8(&g) % 2);
    o->stride = 1 + (int)(g8(&g) % 2);
    size_t per = (size_t)c * h * w;
    if (o->kind == HETEE_OP_ADD_BIAS) o->na = (g8(&g) & 1) ? per : (size_t)c;
    if (o->kind == HETEE_OP_BATCHNORM) o->na = o->nb = (size_t)c;
    for (size_t j = 0; j < o->na; j++) arr[i][0][j] = gconst(&g);
    for (size_t j = 0; j < o->nb; j++) arr[i][1][j] = gconst(&g);
    o->a = arr[i][0];
    o->b = arr[i][1];
    if (o->kind == HETEE_OP_MAXPOOL || o->kind == HETEE_OP_AVGPOOL) {
      if (o->window > h || o->window > w) o->window = 1;
      h = (h - o->window) / o->stride + 1;
      w = (w - o->window) / o->stride + 1;
    }
    if (o->kind == HETEE_OP_RESHAPE) {
      o->shape[0] = (int)per, o->shape[1] = 1, o->shape[2] = 1;
      c = (int)per, h = 1, w = 1;
    }
  }
  size_t nfinal = (size_t)c * h * w * batch;
  uint32_t out_ncts = 1 + g8(&g) % 3, out_n = g8(&g) % 48, dst[48], src[48];
  for (uint32_t k = 0; k < out_n; k++) {
    /* replication: several pairs may take the same value */
    dst[k] = (uint32_t)((g8(&g) % out_ncts) * slots + g8(&g) % slots);
    src[k] = (uint32_t)(g8(&g) % nfinal);
  }
  hetee_refresh_spec s = {.shape = {C, H, W}, .batch = batch, .in_map = in_map, .nops = nops, .ops = ops,
                          .out_ncts = out_ncts, .out_n = out_n, .out_dst = dst, .out_src = src};
  s.in_level = (int)(g8(&g) % (top + 2)) - 1;
  s.in_scale = gscale(&g, 1);
  s.out_level = (int)(g8(&g) % (top + 2)) - 1;
  s.out_scale = gscale(&g, 1);
  unsigned enc = g8(&g);
  s.in_encoding = enc == 255 ? HETEE_ENC_COEFFS : HETEE_ENC_SLOTS;
  s.out_encoding = enc == 254 ? HETEE_ENC_COEFFS : HETEE_ENC_SLOTS;
  /* specs refused before any ciphertext is read cannot depend on the
   * plaintexts: answered here without encrypting anything (cheap) */
  int l0, l1;
  double s0, s1;
  int rc = enclave_check_level_scale(fz_e.ctx, s.in_level, s.in_scale, "input", &l0, &s0);
  if (!rc) rc = enclave_check_level_scale(fz_e.ctx, s.out_level, s.out_scale, "output", &l1, &s1);
  if (rc) return rc;
  uint8_t *spec = NULL;
  size_t slen = 0;
  rc = hetee_refresh_spec_encode(&s, &spec, &slen);
  if (rc) return rc; /* the host library refuses it already (public data) */
  /* ciphertext metadata: mostly what the spec declares, sometimes not */
  ctmeta m[3];
  for (uint32_t k = 0; k < ncts; k++) {
    unsigned v = g8(&g);
    int lvl = s.in_level < 0 ? top : s.in_level;
    double sc = s.in_scale > 0 ? s.in_scale : hetee_ckks_context_default_scale(fz_e.ctx);
    m[k].size3 = (v & 0x80) != 0;
    if (v % 8 == 7) lvl = (int)(g8(&g) % (top + 1)); /* another level */
    if (v % 8 == 6) sc *= 2.0;                        /* another scale */
    if (v % 8 == 5) sc *= 1.0 + 0x1p-24;              /* the same within 2^-20 */
    if (!(sc >= 0x1p20 && sc <= 0x1p130)) sc = 0x1p40;
    m[k].level = lvl > top ? top : lvl;
    m[k].scale = m[k].size3 ? fmax(sc, 0x1p40) : sc;
  }
  double va[3][MAXV], vb[3][MAXV];
  for (uint32_t k = 0; k < ncts; k++)
    for (size_t i = 0; i < MAXV; i++) {
      va[k][i] = value_a(&g);
      vb[k][i] = value_b(i + 131 * k);
    }
  *asked = 4 + g.asked;
  if (strict && *asked != len) {
    free(spec);
    return hetee_error(HETEE_ERR_FORMAT, "generator input of %zu bytes, %zu expected", len, *asked);
  }
  size_t la = 0, lb = 0;
  char ea[512], eb[512];
  int ra = run_once(spec, slen, m, ncts, va, &la, ea, sizeof ea);
  int rb = run_once(spec, slen, m, ncts, vb, &lb, eb, sizeof eb);
  free(spec);
  if (ra != rb || la != lb || strcmp(ea, eb))
    fprintf(stderr, "refresh outcome depends on the plaintext: %d/%zu '%s' vs %d/%zu '%s'\n", ra, la, ea, rb, lb, eb);
  FUZZ_CHECK(ra == rb && la == lb && strcmp(ea, eb) == 0);
  return ra;
}

int fuzz_one(const uint8_t *data, size_t len) {
  size_t asked;
  return oracle(data, len, 1, &asked);
}

/* Seeds: generator inputs whose spec is accepted (found by a fixed scan, so
 * deterministic), covering several ciphertexts and ops. */
size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  uint8_t buf[600];
  uint64_t x = 0x853c49e6748fea9bull;
  memcpy(buf, "ORCL", 4);
  for (int tries = 0; tries < 4000 && n < 6; tries++) {
    for (size_t i = 4; i < sizeof buf; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      buf[i] = (uint8_t)x;
    }
    size_t asked = 0;
    if (oracle(buf, sizeof buf, 0, &asked) == 0 && asked <= sizeof buf) fuzz_seed_add(&s, &n, buf, asked);
  }
  *out = s;
  return n;
}

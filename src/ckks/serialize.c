/*
 * serialize.c — binary formats of every CKKS object (layout as in SEAL's
 * serialization: fixed little-endian header, then the body), with seeded
 * variants that store a 32-byte PRG seed instead of a uniform polynomial
 * (secret-key ciphertexts, public key, key-switching keys: about half size).
 *
 * Header (52 bytes): magic "HETE" | u16 header size (52) | u16 version (1) |
 * u16 object type | u16 flags | u64 total size | 32-byte fingerprint.
 * Bodies and the byte tables are documented in docs/ckks.md.
 *
 * Loaders treat the bytes as hostile: every field is range-checked before it
 * is used to size anything, the total size must match exactly, residues must
 * be < their prime, and nothing aborts. Errors: HETEE_ERR_TRUNCATED,
 * HETEE_ERR_FORMAT, HETEE_ERR_VERSION, HETEE_ERR_CONTEXT, HETEE_ERR_RANGE.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_arena.h"
#include "ckks/ckks_internal.h"
#include "ckks/pack.h"

#define HDR_SIZE 52
/* 2: a seeded object's uniform polynomials are expanded with
 * ceil(bitlen(q) / 8) stream bytes per candidate (hetee_sample_uniform);
 * version 1 read 8 bytes per candidate, so its seeds expand to other
 * polynomials: refused */
#define FMT_VERSION 2
#define FLAG_SEEDED 1u
/* a ciphertext whose c0 is given only at listed coefficients (level 0,
 * coefficient domain; ckks_ciphertext_save_c0_at): no loader takes it, only
 * ckks_ciphertext_view */
#define FLAG_C0_AT 2u
/* a ciphertext whose rows are bit-packed (hetee_ckks_ciphertext_save_packed:
 * each residue mod q_i in bitlen(q_i) bits, pack.h); taken by
 * hetee_ckks_ciphertext_load(_into), refused by ckks_ciphertext_view */
#define FLAG_PACKED 4u

typedef struct {
  uint8_t *p;
  size_t pos;
} wr;

static void put_u16(wr *w, uint16_t v) {
  for (int b = 0; b < 2; b++) w->p[w->pos++] = (uint8_t)(v >> (8 * b));
}
static void put_u32(wr *w, uint32_t v) {
  for (int b = 0; b < 4; b++) w->p[w->pos++] = (uint8_t)(v >> (8 * b));
}
static void put_u64(wr *w, uint64_t v) {
  for (int b = 0; b < 8; b++) w->p[w->pos++] = (uint8_t)(v >> (8 * b));
}
static void put_f64(wr *w, double d) {
  uint64_t v;
  memcpy(&v, &d, 8);
  put_u64(w, v);
}
static void put_bytes(wr *w, const void *src, size_t n) {
  memcpy(w->p + w->pos, src, n);
  w->pos += n;
}
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1 /* rows are stored as the host keeps them: one memcpy */
#endif

static void put_rows(wr *w, const uint64_t *rows, size_t words) {
#ifdef HOST_LE
  memcpy(w->p + w->pos, rows, words * 8);
  w->pos += words * 8;
#else
  for (size_t i = 0; i < words; i++) put_u64(w, rows[i]);
#endif
}

typedef struct {
  const uint8_t *p;
  size_t len, pos;
  uint16_t flags; /* the header's flags, once load_begin has read them */
} rd;

static int get_u16(rd *r, uint16_t *v) {
  if (r->len - r->pos < 2) return HETEE_ERR_TRUNCATED;
  *v = (uint16_t)(r->p[r->pos] | (r->p[r->pos + 1] << 8));
  r->pos += 2;
  return 0;
}
static int get_u32(rd *r, uint32_t *v) {
  if (r->len - r->pos < 4) return HETEE_ERR_TRUNCATED;
  uint32_t x = 0;
  for (int b = 0; b < 4; b++) x |= (uint32_t)r->p[r->pos + b] << (8 * b);
  r->pos += 4;
  *v = x;
  return 0;
}
static uint64_t ld_u64(const uint8_t *p) {
  uint64_t x = 0;
  for (int b = 0; b < 8; b++) x |= (uint64_t)p[b] << (8 * b);
  return x;
}
static int get_u64(rd *r, uint64_t *v) {
  if (r->len - r->pos < 8) return HETEE_ERR_TRUNCATED;
  *v = ld_u64(r->p + r->pos);
  r->pos += 8;
  return 0;
}
static int get_f64(rd *r, double *d) {
  uint64_t v;
  int rc = get_u64(r, &v);
  if (!rc) memcpy(d, &v, 8);
  return rc;
}
static int get_bytes(rd *r, void *dst, size_t n) {
  if (r->len - r->pos < n) return HETEE_ERR_TRUNCATED;
  memcpy(dst, r->p + r->pos, n);
  r->pos += n;
  return 0;
}

#if defined(HOST_LE) && defined(__x86_64__) && defined(__GNUC__)
#define CKKS_LOAD_AVX512 1
#include <immintrin.h>
/* copy_check in one pass on AVX-512 (the residues are public: a range
 * check of the host's bytes): load 8 words, compare with q, store. */
__attribute__((target("avx512f"))) static uint64_t copy_check_avx512(uint64_t *dst, const uint8_t *src, size_t n,
                                                                     uint64_t q) {
  const __m512i vq = _mm512_set1_epi64((long long)q);
  __mmask8 bad = 0;
  size_t c = 0;
  for (; c + 8 <= n; c += 8) {
    __m512i v = _mm512_loadu_si512((const void *)(src + 8 * c));
    bad |= _mm512_cmpge_epu64_mask(v, vq);
    _mm512_storeu_si512((void *)(dst + c), v);
  }
  uint64_t b = bad != 0;
  for (; c < n; c++) {
    uint64_t v;
    memcpy(&v, src + 8 * c, 8);
    dst[c] = v;
    b |= (uint64_t)(v >= q);
  }
  return b;
}
#endif

/* Copies n little-endian words from src to dst and returns nonzero if one
 * of them is >= q (one pass on AVX-512, above). Otherwise four independent
 * accumulators of (v >= q), so the compiler keeps the loop free of
 * branches and the copy at memory speed. */
static uint64_t copy_check(uint64_t *dst, const uint8_t *src, size_t n, uint64_t q) {
#ifdef CKKS_LOAD_AVX512
  if (hetee_ring_isa() == HETEE_ISA_AVX512) return copy_check_avx512(dst, src, n, q);
#endif
#ifdef HOST_LE
  memcpy(dst, src, n * 8);
#else
  for (size_t c = 0; c < n; c++) dst[c] = ld_u64(src + 8 * c);
#endif
  uint64_t b0 = 0, b1 = 0, b2 = 0, b3 = 0;
  size_t c = 0;
  for (; c + 4 <= n; c += 4) {
    b0 |= (uint64_t)(dst[c] >= q);
    b1 |= (uint64_t)(dst[c + 1] >= q);
    b2 |= (uint64_t)(dst[c + 2] >= q);
    b3 |= (uint64_t)(dst[c + 3] >= q);
  }
  for (; c < n; c++) b0 |= (uint64_t)(dst[c] >= q);
  return b0 | b1 | b2 | b3;
}

/* Reads `nrows` rows whose global prime indices are primes[] (NULL: row r is
 * prime r), checking every residue < its prime. */
static int get_rows(const hetee_ckks_context *ctx, rd *r, const int *primes, int nrows, uint64_t *out) {
  size_t n = ctx->n;
  if ((r->len - r->pos) / 8 / n < (size_t)nrows) return hetee_error(HETEE_ERR_TRUNCATED, "body shorter than its rows");
  for (int i = 0; i < nrows; i++) {
    uint64_t q = ctx->mod[primes ? primes[i] : i].q;
    if (copy_check(out + (size_t)i * n, r->p + r->pos + (size_t)i * n * 8, n, q))
      return hetee_error(HETEE_ERR_RANGE, "residue >= its prime in row %d", i);
  }
  r->pos += (size_t)nrows * n * 8;
  return 0;
}

/* Writes the header of an object of `body` bytes at the start of p. */
static void put_header(const hetee_ckks_context *ctx, uint16_t type, uint16_t flags, size_t body, uint8_t *p, wr *w) {
  w->p = p;
  w->pos = 0;
  put_bytes(w, "HETE", 4);
  put_u16(w, HDR_SIZE);
  put_u16(w, FMT_VERSION);
  put_u16(w, type);
  put_u16(w, flags);
  put_u64(w, HDR_SIZE + body);
  put_bytes(w, ctx->fingerprint, HETEE_CKKS_FINGERPRINT_BYTES);
}

static int begin(const hetee_ckks_context *ctx, uint16_t type, uint16_t flags, size_t body, uint8_t **buf,
                 size_t *len, wr *w) {
  size_t total = HDR_SIZE + body;
  uint8_t *p = malloc(total);
  if (!p) return hetee_error(HETEE_ERR_NOMEM, "serialization buffer");
  put_header(ctx, type, flags, body, p, w);
  *buf = p;
  *len = total;
  return 0;
}

/* Parses and checks the header; fp_ctx NULL skips the fingerprint check
 * (the parameter object checks it against the rebuilt context). */
static int parse_header(const uint8_t *buf, size_t len, uint16_t type, const uint8_t *fp_ctx, uint16_t *flags,
                        uint8_t fp[HETEE_CKKS_FINGERPRINT_BYTES], rd *r) {
  if (!buf) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL buffer");
  if (len < HDR_SIZE) return hetee_error(HETEE_ERR_TRUNCATED, "%zu bytes: shorter than the header", len);
  if (memcmp(buf, "HETE", 4) != 0) return hetee_error(HETEE_ERR_FORMAT, "bad magic");
  r->p = buf;
  r->len = len;
  r->pos = 4;
  uint16_t hsize, version, t;
  uint64_t total;
  (void)get_u16(r, &hsize);
  (void)get_u16(r, &version);
  (void)get_u16(r, &t);
  (void)get_u16(r, flags);
  (void)get_u64(r, &total);
  (void)get_bytes(r, fp, HETEE_CKKS_FINGERPRINT_BYTES);
  if (hsize != HDR_SIZE) return hetee_error(HETEE_ERR_FORMAT, "header size %u, expected %d", hsize, HDR_SIZE);
  if (version == 1)
    return hetee_error(HETEE_ERR_VERSION, "format version 1 not supported: its seeds expand to other polynomials "
                                          "since version 2 (5-byte samples for 40-bit primes); re-create the object");
  if (version != FMT_VERSION)
    return hetee_error(HETEE_ERR_VERSION, "format version %u not supported (this library reads %d)", version, FMT_VERSION);
  if (t != type) return hetee_error(HETEE_ERR_FORMAT, "object type %u, expected %u", t, type);
  if (total > len) return hetee_error(HETEE_ERR_TRUNCATED, "%zu bytes, header announces %llu", len,
                                      (unsigned long long)total);
  if (total != len) return hetee_error(HETEE_ERR_FORMAT, "%zu bytes, header announces %llu", len,
                                       (unsigned long long)total);
  if (fp_ctx && !ckks_fp_eq(fp, fp_ctx)) return hetee_error(HETEE_ERR_CONTEXT, "object made under other parameters");
  return 0;
}

static int check_end(const rd *r) {
  if (r->pos != r->len) return hetee_error(HETEE_ERR_FORMAT, "%zu trailing bytes", r->len - r->pos);
  return 0;
}

static int save_args(const hetee_ckks_context *ctx, const void *obj, uint8_t **buf, size_t *len) {
  if (!ctx || !obj || !buf || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *buf = NULL;
  *len = 0;
  return 0;
}

/* Common start of every object loader (the caller has already cleared *out):
 * arguments, header against ctx's fingerprint, then the flags — a bit outside
 * `allowed` or a missing bit of `required` is an unknown format. */
static int load_begin(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len, const void *out, uint16_t type,
                      uint16_t allowed, uint16_t required, rd *r) {
  if (!ctx || !buf || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  uint8_t fp[HETEE_CKKS_FINGERPRINT_BYTES];
  int rc = parse_header(buf, len, type, ctx->fingerprint, &r->flags, fp, r);
  if (rc) return rc;
  if (type == HETEE_OBJ_CIPHERTEXT && (r->flags & FLAG_C0_AT & ~allowed))
    return hetee_error(HETEE_ERR_FORM, "ciphertext with c0 at listed coefficients: only a coefficient-encoded "
                                       "refresh input takes this form");
  if (r->flags & FLAG_PACKED & ~allowed)
    return hetee_error(HETEE_ERR_FORMAT, type == HETEE_OBJ_CIPHERTEXT
                                             ? "packed ciphertext: this loader takes the unpacked form only"
                                             : "packed form (flag 4) on an object other than a ciphertext");
  if ((r->flags & ~allowed) || (r->flags & required) != required)
    return hetee_error(HETEE_ERR_FORMAT, "unknown flags 0x%x", r->flags);
  return 0;
}

/* The bytes left after the fixed fields must be exactly `want`. */
static int check_body(const rd *r, size_t want, const char *what) {
  if (r->len - r->pos != want) return hetee_error(HETEE_ERR_FORMAT, "%s body size", what);
  return 0;
}

/* ---------------------------------------------------------------- params */

int hetee_ckks_literal_save(const hetee_ckks_context *ctx, uint8_t **buf, size_t *len) {
  int rc = save_args(ctx, ctx, buf, len);
  if (rc) return rc;
  wr w;
  size_t body = 4 * 4 + 8 + (size_t)ctx->nq + (size_t)ctx->np + 8 * (size_t)ctx->nt;
  if ((rc = begin(ctx, HETEE_OBJ_PARAMS, 0, body, buf, len, &w))) return rc;
  put_u32(&w, (uint32_t)ctx->log_n);
  put_u32(&w, (uint32_t)ctx->nq);
  put_u32(&w, (uint32_t)ctx->np);
  put_u32(&w, (uint32_t)(ctx->lit.allow_insecure != 0));
  put_f64(&w, ctx->default_scale);
  for (int i = 0; i < ctx->nq; i++) w.p[w.pos++] = (uint8_t)ctx->lit.q_bits[i];
  for (int i = 0; i < ctx->np; i++) w.p[w.pos++] = (uint8_t)ctx->lit.p_bits[i];
  for (int i = 0; i < ctx->nt; i++) put_u64(&w, ctx->mod[i].q);
  return 0;
}

int hetee_ckks_context_load(const uint8_t *buf, size_t len, hetee_ckks_context **out) {
  if (!buf || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  rd r;
  uint16_t flags;
  uint8_t fp[HETEE_CKKS_FINGERPRINT_BYTES];
  int rc = parse_header(buf, len, HETEE_OBJ_PARAMS, NULL, &flags, fp, &r);
  if (rc) return rc;
  if (flags) return hetee_error(HETEE_ERR_FORMAT, "unknown flags 0x%x", flags);
  uint32_t logn, nq, np, insecure;
  hetee_ckks_literal lit;
  memset(&lit, 0, sizeof lit);
  if (get_u32(&r, &logn) || get_u32(&r, &nq) || get_u32(&r, &np) || get_u32(&r, &insecure) ||
      get_f64(&r, &lit.default_scale))
    return hetee_error(HETEE_ERR_FORMAT, "parameter body too short");
  if (logn < HETEE_CKKS_MIN_LOGN || logn > HETEE_CKKS_MAX_LOGN || nq < 1 || nq > HETEE_CKKS_MAX_Q || np < 1 ||
      np > HETEE_CKKS_MAX_P || insecure > 1)
    return hetee_error(HETEE_ERR_FORMAT, "parameter fields out of range");
  if (!(isfinite(lit.default_scale) && lit.default_scale >= 1.0))
    return hetee_error(HETEE_ERR_FORMAT, "bad default scale");
  if (r.len - r.pos != nq + np + 8 * (size_t)(nq + np)) return hetee_error(HETEE_ERR_FORMAT, "parameter body size");
  lit.log_n = (int)logn;
  lit.nq = (int)nq;
  lit.np = (int)np;
  /* The saved allow_insecure flag is not honoured: parameters read from
   * bytes (possibly from an untrusted host) must pass the 128-bit check, so
   * a file cannot downgrade security (HETEE_ERR_INSECURE). */
  lit.allow_insecure = 0;
  for (uint32_t i = 0; i < nq; i++) lit.q_bits[i] = r.p[r.pos++];
  for (uint32_t i = 0; i < np; i++) lit.p_bits[i] = r.p[r.pos++];
  hetee_ckks_context *ctx = NULL;
  rc = hetee_ckks_context_new(&lit, &ctx);
  if (rc == HETEE_ERR_PARAMS) rc = hetee_error(HETEE_ERR_FORMAT, "saved parameters invalid: %s", hetee_last_error());
  if (rc) return rc;
  for (int i = 0; i < ctx->nt; i++) {
    uint64_t q = 0;
    (void)get_u64(&r, &q);
    if (q != ctx->mod[i].q) {
      hetee_ckks_context_free(ctx);
      return hetee_error(HETEE_ERR_FORMAT, "prime %d differs from the regenerated chain", i);
    }
  }
  if (!ckks_fp_eq(fp, ctx->fingerprint)) {
    hetee_ckks_context_free(ctx);
    return hetee_error(HETEE_ERR_FORMAT, "fingerprint does not match the parameters");
  }
  *out = ctx;
  return 0;
}

/* ---------------------------------------------------------------- keys */

int hetee_ckks_secret_key_save(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *k, uint8_t **buf,
                               size_t *len) {
  int rc = save_args(ctx, k, buf, len);
  if (rc || (rc = ckks_check_ctx(ctx, k->fp, "secret key"))) return rc;
  wr w;
  if ((rc = begin(ctx, HETEE_OBJ_SECRET_KEY, 0, ctx->n, buf, len, &w))) return rc;
  put_bytes(&w, k->small, ctx->n);
  return 0;
}

int hetee_ckks_secret_key_load(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                               hetee_ckks_secret_key **out) {
  if (out) *out = NULL;
  rd r;
  int rc = load_begin(ctx, buf, len, out, HETEE_OBJ_SECRET_KEY, 0, 0, &r);
  if (rc) return rc;
  if ((rc = check_body(&r, ctx->n, "secret key"))) return rc;
  hetee_ckks_secret_key *k = NULL;
  if ((rc = ckks_sk_alloc(ctx, &k))) return rc;
  uint8_t bad = 0;
  for (size_t i = 0; i < ctx->n; i++) {
    int8_t v = (int8_t)r.p[r.pos + i];
    bad |= (uint8_t)((v < -1) | (v > 1));
    k->small[i] = v;
  }
  if (bad) {
    hetee_ckks_secret_key_free(k);
    return hetee_error(HETEE_ERR_RANGE, "secret key coefficient outside {-1, 0, 1}");
  }
  ckks_sk_from_small(ctx, k);
  *out = k;
  return 0;
}

int hetee_ckks_public_key_save(const hetee_ckks_context *ctx, const hetee_ckks_public_key *k, uint8_t **buf,
                               size_t *len) {
  int rc = save_args(ctx, k, buf, len);
  if (rc || (rc = ckks_check_ctx(ctx, k->fp, "public key"))) return rc;
  wr w;
  size_t words = (size_t)ctx->nt * ctx->n;
  if ((rc = begin(ctx, HETEE_OBJ_PUBLIC_KEY, FLAG_SEEDED, HETEE_SEED_BYTES + 8 * words, buf, len, &w))) return rc;
  put_bytes(&w, k->seed, HETEE_SEED_BYTES);
  put_rows(&w, k->b, words);
  return 0;
}

int hetee_ckks_public_key_load(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                               hetee_ckks_public_key **out) {
  if (out) *out = NULL;
  rd r;
  int rc = load_begin(ctx, buf, len, out, HETEE_OBJ_PUBLIC_KEY, FLAG_SEEDED, FLAG_SEEDED, &r);
  if (rc) return rc;
  if ((rc = check_body(&r, HETEE_SEED_BYTES + 8 * (size_t)ctx->nt * ctx->n, "public key"))) return rc;
  hetee_ckks_public_key *k = NULL;
  if ((rc = ckks_pk_alloc(ctx, &k))) return rc;
  (void)get_bytes(&r, k->seed, HETEE_SEED_BYTES);
  if ((rc = get_rows(ctx, &r, NULL, ctx->nt, k->b))) {
    hetee_ckks_public_key_free(k);
    return rc;
  }
  ckks_pk_expand(ctx, k);
  *out = k;
  return 0;
}

/* A key-switching key: u64 galois | seed | dnum x nt rows of b. */
static size_t ksk_bytes(const hetee_ckks_context *ctx) {
  return 8 + HETEE_SEED_BYTES + 8 * (size_t)ctx->dnum * ctx->nt * ctx->n;
}

static void put_ksk(const hetee_ckks_context *ctx, wr *w, const ckks_ksk *k) {
  put_u64(w, k->galois);
  put_bytes(w, k->seed, HETEE_SEED_BYTES);
  for (int j = 0; j < k->dnum; j++) put_rows(w, k->b[j], (size_t)ctx->nt * ctx->n);
}

static int get_ksk(const hetee_ckks_context *ctx, rd *r, ckks_ksk *k) {
  int rc;
  if ((rc = get_u64(r, &k->galois)) || (rc = get_bytes(r, k->seed, HETEE_SEED_BYTES)))
    return hetee_error(rc, "key truncated");
  if ((rc = ckks_ksk_alloc(ctx, k))) return rc;
  for (int j = 0; j < k->dnum; j++)
    if ((rc = get_rows(ctx, r, NULL, ctx->nt, k->b[j]))) return rc;
  return ckks_ksk_expand(ctx, k);
}

int hetee_ckks_relin_key_save(const hetee_ckks_context *ctx, const hetee_ckks_relin_key *k, uint8_t **buf,
                              size_t *len) {
  int rc = save_args(ctx, k, buf, len);
  if (rc || (rc = ckks_check_ctx(ctx, k->fp, "relinearization key"))) return rc;
  wr w;
  if ((rc = begin(ctx, HETEE_OBJ_RELIN_KEY, FLAG_SEEDED, 4 + ksk_bytes(ctx), buf, len, &w))) return rc;
  put_u32(&w, (uint32_t)ctx->dnum);
  put_ksk(ctx, &w, &k->k);
  return 0;
}

int hetee_ckks_relin_key_load(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                              hetee_ckks_relin_key **out) {
  if (out) *out = NULL;
  rd r;
  uint32_t dnum;
  int rc = load_begin(ctx, buf, len, out, HETEE_OBJ_RELIN_KEY, FLAG_SEEDED, FLAG_SEEDED, &r);
  if (rc) return rc;
  if (get_u32(&r, &dnum) || dnum != (uint32_t)ctx->dnum) return hetee_error(HETEE_ERR_FORMAT, "bad digit count");
  if ((rc = check_body(&r, ksk_bytes(ctx), "relinearization key"))) return rc;
  hetee_ckks_relin_key *k = calloc(1, sizeof *k);
  if (!k) return hetee_error(HETEE_ERR_NOMEM, "relinearization key");
  memcpy(k->fp, ctx->fingerprint, sizeof k->fp);
  if ((rc = get_ksk(ctx, &r, &k->k))) goto err;
  if (k->k.galois != 0) {
    rc = hetee_error(HETEE_ERR_FORMAT, "relinearization key with a Galois element");
    goto err;
  }
  *out = k;
  return 0;
err:
  hetee_ckks_relin_key_free(k);
  return rc;
}

int hetee_ckks_galois_keys_save(const hetee_ckks_context *ctx, const hetee_ckks_galois_keys *k, uint8_t **buf,
                                size_t *len) {
  int rc = save_args(ctx, k, buf, len);
  if (rc || (rc = ckks_check_ctx(ctx, k->fp, "Galois keys"))) return rc;
  wr w;
  if ((rc = begin(ctx, HETEE_OBJ_GALOIS_KEYS, FLAG_SEEDED, 8 + k->count * ksk_bytes(ctx), buf, len, &w))) return rc;
  put_u32(&w, (uint32_t)k->count);
  put_u32(&w, (uint32_t)ctx->dnum);
  for (size_t i = 0; i < k->count; i++) put_ksk(ctx, &w, &k->keys[i]);
  return 0;
}

int hetee_ckks_galois_keys_load(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                                hetee_ckks_galois_keys **out) {
  if (out) *out = NULL;
  rd r;
  uint32_t count, dnum;
  int rc = load_begin(ctx, buf, len, out, HETEE_OBJ_GALOIS_KEYS, FLAG_SEEDED, FLAG_SEEDED, &r);
  if (rc) return rc;
  if (get_u32(&r, &count) || get_u32(&r, &dnum)) return hetee_error(HETEE_ERR_FORMAT, "Galois keys body too short");
  if (dnum != (uint32_t)ctx->dnum) return hetee_error(HETEE_ERR_FORMAT, "bad digit count");
  /* count <= N (distinct odd elements < 2N); size check before allocating */
  if (count > ctx->n || (r.len - r.pos) / ksk_bytes(ctx) != count || (r.len - r.pos) % ksk_bytes(ctx) != 0)
    return hetee_error(HETEE_ERR_FORMAT, "Galois keys body size");
  hetee_ckks_galois_keys *k = calloc(1, sizeof *k);
  if (!k) return hetee_error(HETEE_ERR_NOMEM, "Galois keys");
  memcpy(k->fp, ctx->fingerprint, sizeof k->fp);
  k->n = ctx->n;
  k->keys = calloc(count ? count : 1, sizeof(ckks_ksk));
  if (!k->keys) {
    rc = hetee_error(HETEE_ERR_NOMEM, "Galois keys");
    goto err;
  }
  for (uint32_t i = 0; i < count; i++) {
    k->count = i + 1;
    if ((rc = get_ksk(ctx, &r, &k->keys[i]))) goto err;
    uint64_t g = k->keys[i].galois;
    if (!(g & 1) || g <= 1 || g >= 2 * ctx->n || (i && g <= k->keys[i - 1].galois)) {
      rc = hetee_error(HETEE_ERR_FORMAT, "bad Galois element %llu", (unsigned long long)g);
      goto err;
    }
    if ((rc = ckks_ksk_set_perm(ctx, &k->keys[i]))) goto err;
  }
  *out = k;
  return 0;
err:
  hetee_ckks_galois_keys_free(k);
  return rc;
}

/* ---------------------------------------------------------------- data */

/* Plaintexts and ciphertexts open their body with the same 16 bytes:
 * u32 level | u32 extra (0 for a plaintext, the polynomial count for a
 * ciphertext) | f64 scale; `rows_bytes` more follow. */
static int begin_data(const hetee_ckks_context *ctx, uint16_t type, uint16_t flags, size_t rows_bytes, int level,
                      uint32_t extra, double scale, uint8_t **buf, size_t *len, wr *w) {
  int rc = begin(ctx, type, flags, 16 + rows_bytes, buf, len, w);
  if (rc) return rc;
  put_u32(w, (uint32_t)level);
  put_u32(w, extra);
  put_f64(w, scale);
  return 0;
}

static int get_data_header(const hetee_ckks_context *ctx, rd *r, const char *what, uint32_t *level, uint32_t *extra,
                           double *scale) {
  if (get_u32(r, level) || get_u32(r, extra) || get_f64(r, scale))
    return hetee_error(HETEE_ERR_FORMAT, "%s body too short", what);
  if (*level >= (uint32_t)ctx->nq) return hetee_error(HETEE_ERR_FORMAT, "level %u out of range", *level);
  if (!(isfinite(*scale) && *scale > 0)) return hetee_error(HETEE_ERR_FORMAT, "scale not finite and > 0");
  return 0;
}

int hetee_ckks_plaintext_save(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt, uint8_t **buf,
                              size_t *len) {
  int rc = save_args(ctx, pt, buf, len);
  if (rc || (rc = ckks_check_ctx(ctx, pt->fp, "plaintext"))) return rc;
  if (pt->level < 0) return hetee_error(HETEE_ERR_LEVEL, "plaintext is empty");
  wr w;
  size_t words = (size_t)(pt->level + 1) * ctx->n;
  if ((rc = begin_data(ctx, HETEE_OBJ_PLAINTEXT, 0, 8 * words, pt->level, 0, pt->scale, buf, len, &w))) return rc;
  put_rows(&w, pt->data, words);
  return 0;
}

int hetee_ckks_plaintext_load(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                              hetee_ckks_plaintext **out) {
  if (out) *out = NULL;
  rd r;
  uint32_t level = 0, reserved = 0;
  double scale = 0;
  int rc = load_begin(ctx, buf, len, out, HETEE_OBJ_PLAINTEXT, 0, 0, &r);
  if (rc) return rc;
  if ((rc = get_data_header(ctx, &r, "plaintext", &level, &reserved, &scale))) return rc;
  if (reserved) return hetee_error(HETEE_ERR_FORMAT, "reserved field not zero");
  if ((rc = check_body(&r, 8 * (size_t)(level + 1) * ctx->n, "plaintext"))) return rc;
  hetee_ckks_plaintext *pt = NULL;
  if ((rc = hetee_ckks_plaintext_new(ctx, &pt)) || (rc = ckks_pt_reserve(ctx, pt, (int)level)) ||
      (rc = get_rows(ctx, &r, NULL, (int)level + 1, pt->data))) {
    hetee_ckks_plaintext_free(pt);
    return rc;
  }
  pt->scale = scale;
  if ((rc = check_end(&r))) {
    hetee_ckks_plaintext_free(pt);
    return rc;
  }
  *out = pt;
  return 0;
}

/* Bytes of one polynomial's rows 0..level: 8 per residue, or packed. */
static size_t poly_bytes(const hetee_ckks_context *ctx, int level, int packed) {
  if (!packed) return 8 * (size_t)(level + 1) * ctx->n;
  size_t t = 0;
  for (int i = 0; i <= level; i++) t += ckks_pack_row_bytes(ctx->n, ckks_pack_bits(ctx->mod[i].q));
  return t;
}

/* Body bytes and flags of a ciphertext's serialization (packed: the
 * packed form). */
static int ct_body_f(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, int packed, size_t *body,
                     int *seeded) {
  if (!ctx || !ct) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = ckks_check_ctx(ctx, ct->fp, "ciphertext");
  if (rc) return rc;
  if (ct->level < 0) return hetee_error(HETEE_ERR_LEVEL, "ciphertext is empty");
  size_t pb = poly_bytes(ctx, ct->level, packed);
  *seeded = ct->seeded && ct->size == 2;
  *body = 16 + (*seeded ? pb + HETEE_SEED_BYTES : pb * (size_t)ct->size);
  return 0;
}

static int ct_body(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, size_t *body, int *seeded) {
  return ct_body_f(ctx, ct, 0, body, seeded);
}

/* Packs rows 0..level of one polynomial. */
static void put_rows_packed(const hetee_ckks_context *ctx, wr *w, const uint64_t *rows, int level) {
  for (int i = 0; i <= level; i++) {
    unsigned b = ckks_pack_bits(ctx->mod[i].q);
    ckks_pack_row(w->p + w->pos, rows + (size_t)i * ctx->n, ctx->n, b);
    w->pos += ckks_pack_row_bytes(ctx->n, b);
  }
}

/* Header and body of ct into p (room for HDR_SIZE + body bytes). */
static void ct_write(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, size_t body, int seeded,
                     int packed, uint8_t *p) {
  wr w;
  size_t words = (size_t)(ct->level + 1) * ctx->n;
  uint16_t flags = (uint16_t)((seeded ? FLAG_SEEDED : 0) | (packed ? FLAG_PACKED : 0));
  put_header(ctx, HETEE_OBJ_CIPHERTEXT, flags, body, p, &w);
  put_u32(&w, (uint32_t)ct->level);
  put_u32(&w, (uint32_t)ct->size);
  put_f64(&w, ct->scale);
  for (int k = 0; k < (seeded ? 1 : ct->size); k++) {
    if (packed) put_rows_packed(ctx, &w, ct->c[k], ct->level);
    else put_rows(&w, ct->c[k], words);
  }
  if (seeded) put_bytes(&w, ct->seed, HETEE_SEED_BYTES);
}

static int ct_save(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, int packed, uint8_t **buf,
                   size_t *len) {
  int rc = save_args(ctx, ct, buf, len), seeded = 0;
  size_t body = 0;
  if (rc || (rc = ct_body_f(ctx, ct, packed, &body, &seeded))) return rc;
  uint8_t *p = malloc(HDR_SIZE + body);
  if (!p) return hetee_error(HETEE_ERR_NOMEM, "serialization buffer");
  ct_write(ctx, ct, body, seeded, packed, p);
  *buf = p;
  *len = HDR_SIZE + body;
  return 0;
}

static int ct_save_size(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, int packed, size_t *len) {
  if (!len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *len = 0;
  int seeded = 0;
  size_t body = 0;
  int rc = ct_body_f(ctx, ct, packed, &body, &seeded);
  if (!rc) *len = HDR_SIZE + body;
  return rc;
}

static int ct_save_to(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, int packed, uint8_t *buf,
                      size_t cap, size_t *len) {
  if (!buf || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *len = 0;
  int seeded = 0;
  size_t body = 0;
  int rc = ct_body_f(ctx, ct, packed, &body, &seeded);
  if (rc) return rc;
  if (cap < HDR_SIZE + body)
    return hetee_error(HETEE_ERR_LIMIT, "ciphertext needs %zu bytes, buffer has %zu", HDR_SIZE + body, cap);
  ct_write(ctx, ct, body, seeded, packed, buf);
  *len = HDR_SIZE + body;
  return 0;
}

int hetee_ckks_ciphertext_save_packed(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, uint8_t **buf,
                                      size_t *len) {
  return ct_save(ctx, ct, 1, buf, len);
}

int hetee_ckks_ciphertext_save_packed_size(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct,
                                           size_t *len) {
  return ct_save_size(ctx, ct, 1, len);
}

int hetee_ckks_ciphertext_save_packed_to(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, uint8_t *buf,
                                         size_t cap, size_t *len) {
  return ct_save_to(ctx, ct, 1, buf, cap, len);
}

int hetee_ckks_ciphertext_save(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, uint8_t **buf,
                               size_t *len) {
  return ct_save(ctx, ct, 0, buf, len);
}

int hetee_ckks_ciphertext_save_size(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, size_t *len) {
  return ct_save_size(ctx, ct, 0, len);
}

int hetee_ckks_ciphertext_seeded_size(const hetee_ckks_context *ctx, int level, size_t *len) {
  if (!ctx || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *len = 0;
  if (level < 0 || level >= ctx->nq) return hetee_error(HETEE_ERR_LEVEL, "level %d outside [0, %d]", level, ctx->nq - 1);
  *len = HDR_SIZE + 16 + 8 * (size_t)(level + 1) * ctx->n + HETEE_SEED_BYTES;
  return 0;
}

int hetee_ckks_ciphertext_save_to(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, uint8_t *buf,
                                  size_t cap, size_t *len) {
  return ct_save_to(ctx, ct, 0, buf, cap, len);
}

/* Reads rows 0..nrows-1 of one packed polynomial (the body size is already
 * checked), every value < its prime and every padding bit zero. */
static int get_rows_packed(const hetee_ckks_context *ctx, rd *r, int nrows, uint64_t *out) {
  for (int i = 0; i < nrows; i++) {
    uint64_t q = ctx->mod[i].q;
    unsigned b = ckks_pack_bits(q);
    size_t rb = ckks_pack_row_bytes(ctx->n, b);
    if (r->len - r->pos < rb) return hetee_error(HETEE_ERR_TRUNCATED, "body shorter than its rows");
    if (ckks_unpack_row(out + (size_t)i * ctx->n, r->p + r->pos, ctx->n, b, q))
      return hetee_error(HETEE_ERR_RANGE, "packed row %d: residue >= its prime or padding bits set", i);
    r->pos += rb;
  }
  return 0;
}

int hetee_ckks_ciphertext_load_into(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                                    hetee_ckks_ciphertext *ct) {
  rd r;
  uint32_t level = 0, size = 0;
  double scale = 0;
  int rc = load_begin(ctx, buf, len, ct, HETEE_OBJ_CIPHERTEXT, FLAG_SEEDED | FLAG_PACKED, 0, &r);
  if (rc) goto err;
  if ((rc = get_data_header(ctx, &r, "ciphertext", &level, &size, &scale))) goto err;
  if (size < 2 || size > 3) {
    rc = hetee_error(HETEE_ERR_FORMAT, "ciphertext size %u not in 2..3", size);
    goto err;
  }
  int seeded = (r.flags & FLAG_SEEDED) != 0;
  if (seeded && size != 2) {
    rc = hetee_error(HETEE_ERR_FORMAT, "seeded ciphertext of size %u", size);
    goto err;
  }
  int packed = (r.flags & FLAG_PACKED) != 0;
  size_t pb = poly_bytes(ctx, (int)level, packed);
  size_t want = seeded ? pb + HETEE_SEED_BYTES : pb * size;
  if ((rc = check_body(&r, want, "ciphertext"))) goto err;
  if ((rc = ckks_ct_reserve(ctx, ct, (int)level, (int)size))) goto err;
  for (uint32_t k = 0; k < (seeded ? 1 : size); k++)
    if ((rc = packed ? get_rows_packed(ctx, &r, (int)level + 1, ct->c[k])
                     : get_rows(ctx, &r, NULL, (int)level + 1, ct->c[k])))
      goto err;
  if (seeded) {
    int primes[HETEE_CKKS_MAX_Q];
    for (uint32_t i = 0; i <= level; i++) primes[i] = (int)i;
    (void)get_bytes(&r, ct->seed, HETEE_SEED_BYTES);
    ckks_expand_uniform(ctx, ct->seed, CKKS_DOMAIN_CT_A, primes, (int)level + 1, ct->c[1]);
    ct->seeded = 1;
  }
  ct->scale = scale;
  if ((rc = check_end(&r))) goto err;
  return 0;
err:
  if (ct) { /* nothing half-loaded stays usable; the rows' capacity is kept */
    ct->level = -1;
    ct->seeded = 0;
  }
  return rc;
}

int ckks_ciphertext_view(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len, ckks_ct_view *v) {
  rd r;
  uint32_t level = 0, size = 0;
  double scale = 0;
  int rc = load_begin(ctx, buf, len, v, HETEE_OBJ_CIPHERTEXT, FLAG_SEEDED | FLAG_C0_AT, 0, &r);
  if (rc) return rc;
  if ((rc = get_data_header(ctx, &r, "ciphertext", &level, &size, &scale))) return rc;
  if (size < 2 || size > 3) return hetee_error(HETEE_ERR_FORMAT, "ciphertext size %u not in 2..3", size);
  if ((r.flags & FLAG_SEEDED) && (r.flags & FLAG_C0_AT))
    return hetee_error(HETEE_ERR_FORMAT, "unknown flags 0x%x", r.flags);
  if (r.flags & FLAG_SEEDED) return 1; /* c1 is a seed: the loader expands it */
  size_t words = (size_t)(level + 1) * ctx->n;
  v->c0at = NULL;
  v->nc0 = 0;
  if (r.flags & FLAG_C0_AT) {
    /* u32 count | count words of c0 | rows of c1 (, c2) */
    uint32_t cnt = 0;
    if (level != 0)
      return hetee_error(HETEE_ERR_LEVEL, "ciphertext with c0 at listed coefficients at level %u: only level 0", level);
    if (get_u32(&r, &cnt)) return hetee_error(HETEE_ERR_FORMAT, "ciphertext body too short");
    if (cnt > ctx->n) return hetee_error(HETEE_ERR_FORMAT, "%u c0 coefficients, N is %zu", cnt, ctx->n);
    if ((rc = check_body(&r, 8 * ((size_t)cnt + words * (size - 1)), "ciphertext"))) return rc;
    v->c0at = r.p + r.pos;
    v->nc0 = cnt;
    r.pos += 8 * (size_t)cnt;
    v->c[0] = NULL;
    for (uint32_t k = 1; k < 3; k++) v->c[k] = k < size ? r.p + r.pos + (size_t)(k - 1) * words * 8 : NULL;
  } else {
    if ((rc = check_body(&r, 8 * words * size, "ciphertext"))) return rc;
    for (uint32_t k = 0; k < 3; k++) v->c[k] = k < size ? r.p + r.pos + (size_t)k * words * 8 : NULL;
  }
  v->level = (int)level;
  v->size = (int)size;
  v->scale = scale;
  return 0;
}

int ckks_ciphertext_c0_at_size(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, size_t n, size_t *len) {
  if (!len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *len = 0;
  int seeded = 0;
  size_t body = 0;
  int rc = ct_body(ctx, ct, &body, &seeded);
  if (rc) return rc;
  if (ct->level > 1)
    return hetee_error(HETEE_ERR_LEVEL, "c0 at listed coefficients: level 0 only (ciphertext at level %d)", ct->level);
  if (n > ctx->n) return hetee_error(HETEE_ERR_INVALID_ARG, "%zu c0 coefficients, N is %zu", n, ctx->n);
  *len = HDR_SIZE + 16 + 4 + 8 * (n + ctx->n * (size_t)(ct->size - 1));
  return 0;
}

/* Checks of both savers: ct at `level`, indices < N, room for the bytes. */
static int c0_at_args(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, int level, const uint32_t *idx,
                      size_t n, uint8_t *buf, size_t cap, size_t *len, size_t *total) {
  if (!buf || !len || (!idx && n)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = ckks_ciphertext_c0_at_size(ctx, ct, n, total);
  if (rc) return rc;
  *len = 0;
  if (ct->level != level)
    return hetee_error(HETEE_ERR_LEVEL, "c0 at listed coefficients: ciphertext at level %d, not %d", ct->level, level);
  if (cap < *total) return hetee_error(HETEE_ERR_LIMIT, "ciphertext needs %zu bytes, buffer has %zu", *total, cap);
  uint32_t bad = 0;
  for (size_t j = 0; j < n; j++) bad |= (uint32_t)(idx[j] >= ctx->n);
  if (bad) return hetee_error(HETEE_ERR_INVALID_ARG, "coefficient index >= N = %zu", ctx->n);
  return 0;
}

int ckks_ciphertext_save_c0_at(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, const uint32_t *idx,
                               size_t n, uint8_t *buf, size_t cap, size_t *len) {
  size_t total = 0;
  int rc = c0_at_args(ctx, ct, 0, idx, n, buf, cap, len, &total);
  if (rc) return rc;
  size_t N = ctx->n;
  /* c0 to the coefficient domain (level 0: no CRT constant), then the
   * listed coefficients in their order: public ciphertext data */
  uint64_t *t = ckks_tmp_alloc(N * 8);
  if (!t) return hetee_error(HETEE_ERR_NOMEM, "serialization buffer");
  memcpy(t, ct->c[0], N * 8);
  hetee_ntt_inverse(ctx->ntt[0], t);
  wr w;
  put_header(ctx, HETEE_OBJ_CIPHERTEXT, FLAG_C0_AT, total - HDR_SIZE, buf, &w);
  put_u32(&w, 0);
  put_u32(&w, (uint32_t)ct->size);
  put_f64(&w, ct->scale);
  put_u32(&w, (uint32_t)n);
  for (size_t j = 0; j < n; j++) put_u64(&w, t[idx[j]]);
  for (int k = 1; k < ct->size; k++) put_rows(&w, ct->c[k], N);
  ckks_tmp_free(t, N * 8, 0);
  *len = w.pos;
  return 0;
}

int ckks_ciphertext_save_c0_at_rescaled(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct,
                                        const uint32_t *idx, size_t n, uint8_t *buf, size_t cap, size_t *len) {
  return ckks_ciphertext_save_c0_at_rescaled_cs(ctx, ct, NULL, idx, n, buf, cap, len);
}

int ckks_ciphertext_save_c0_at_rescaled_cs(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct,
                                           const ckks_coset *cs, const uint32_t *idx, size_t n, uint8_t *buf,
                                           size_t cap, size_t *len) {
  size_t total = 0;
  int rc = c0_at_args(ctx, ct, 1, idx, n, buf, cap, len, &total);
  if (rc) return rc;
  if (ctx->nq < 2) return hetee_error(HETEE_ERR_LEVEL, "no level to rescale to");
  size_t N = ctx->n;
  /* the coset path only when every listed index is in the coset (public) */
  if (cs && !ckks_coset_holds(cs, idx, n)) cs = NULL;
  size_t words = cs ? 3 * N + ckks_coset_small_words(cs) : 2 * N;
  uint64_t *last = ckks_tmp_alloc(words * 8);
  if (!last) return hetee_error(HETEE_ERR_NOMEM, "serialization buffer");
  uint64_t *t = last + N;
  /* hetee_ckks_evaluator_rescale's steps from level 1 to 0, per
   * polynomial: last = [c + floor(q_1/2)]_{q_1} in coefficient form, t =
   * last - floor(q_1/2) mod q_0, c' = (c - t) q_1^-1 mod q_0: for c1, c2
   * with t taken to the NTT domain (the rescaled rows, the same words),
   * for c0 in the coefficient domain with c0's q_0 row taken there
   * instead (INTT is linear: the coefficients of the rescaled c0, without
   * the rescale's forward NTT and the serializer's inverse one) */
  const hetee_modulus *m0 = &ctx->mod[0], *m1 = &ctx->mod[1];
  const uint64_t q0 = m0->q, h = m1->q >> 1, hm = ctx->rs_half_mod[1][0], winv = ctx->rs_inv[1][0];
  wr w;
  put_header(ctx, HETEE_OBJ_CIPHERTEXT, FLAG_C0_AT, total - HDR_SIZE, buf, &w);
  put_u32(&w, 0);
  put_u32(&w, (uint32_t)ct->size);
  put_f64(&w, ct->scale / (double)m1->q);
  put_u32(&w, (uint32_t)n);
  for (int k = 0; k < ct->size; k++) {
    if (k == 0 && cs) {
      /* c0 at the coset's coefficients only: the q_1 row's there (+ the
       * half, as the inverse NTT below adds it), gathered in idx order,
       * then the q_0 row's, and the same last step on the n values */
      uint64_t *g1 = t, *g0 = last + 2 * N, *small = last + 3 * N;
      memcpy(last, ct->c[0] + N, N * 8);
      ckks_coset_coeffs(ctx, cs, 1, last, small);
      for (size_t j = 0; j < n; j++) g1[j] = last[idx[j]];
      hetee_vec_add_scalar(m1, g1, h, g1, n);
      if (m1->q < q0) hetee_vec_add_scalar(m0, g1, hm ? q0 - hm : 0, g1, n);
      else hetee_vec_reduce_add_scalar(m0, g1, hm ? q0 - hm : 0, g1, n);
      memcpy(last, ct->c[0], N * 8);
      ckks_coset_coeffs(ctx, cs, 0, last, small);
      for (size_t j = 0; j < n; j++) g0[j] = last[idx[j]];
      hetee_vec_sub_mul_scalar_add(m0, g0, g1, winv, NULL, g0, n);
      for (size_t j = 0; j < n; j++) put_u64(&w, g0[j]);
      continue;
    }
    hetee_ntt_inverse_add(ctx->ntt[1], ct->c[k] + N, last, h);
    if (m1->q < q0) hetee_vec_add_scalar(m0, last, hm ? q0 - hm : 0, t, N); /* last < q_1 < q_0 */
    else hetee_vec_reduce_add_scalar(m0, last, hm ? q0 - hm : 0, t, N);
    if (k == 0) {
      memcpy(last, ct->c[0], N * 8);
      hetee_ntt_inverse(ctx->ntt[0], last);
      hetee_vec_sub_mul_scalar_add(m0, last, t, winv, NULL, last, N);
      for (size_t j = 0; j < n; j++) put_u64(&w, last[idx[j]]);
    } else {
      hetee_ntt_forward(ctx->ntt[0], t);
      hetee_vec_sub_mul_scalar_add(m0, ct->c[k], t, winv, NULL, t, N);
      put_rows(&w, t, N);
    }
  }
  ckks_tmp_free(last, words * 8, 0);
  *len = w.pos;
  return 0;
}

int hetee_ckks_ciphertext_load(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                               hetee_ckks_ciphertext **out) {
  if (out) *out = NULL;
  if (!ctx || !buf || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_ckks_ciphertext *ct = NULL;
  int rc = hetee_ckks_ciphertext_new(ctx, &ct);
  if (!rc) rc = hetee_ckks_ciphertext_load_into(ctx, buf, len, ct);
  if (rc) {
    hetee_ckks_ciphertext_free(ct);
    return rc;
  }
  *out = ct;
  return 0;
}

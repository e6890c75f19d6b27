/*
 * engine_format.c — the engine's serialized objects (hetee/engine.h): the
 * plan embedded in an encrypted model, the encrypted model file ("HTEM")
 * and the encrypted input ("HTEI"), with loaders that treat every byte as
 * hostile: the plan is re-derived and checked against hemat's layouts (so a
 * host never runs a geometry that does not follow from its own numbers),
 * counts are bounded by the bytes actually present before anything is
 * allocated, and every ciphertext must be under the caller's parameters at
 * the level and scale the format fixes.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hemat/engine_internal.h"

#define MODEL_MAGIC "HTEM"
#define INPUT_MAGIC "HTEI"
#define HDR_BYTES 48
#define FMT_VERSION 1
#define PLAN_VERSION 2 /* 2: the layer's own geometry + the space-to-depth flag */
#define PLAN_VERSION_LANES 3 /* 3: + i32 lanes per stage after nimg; written only
                                when a stage has lanes > 1 (a plan without
                                lanes keeps version 2, byte for byte) */
#define PLAN_VERSION_FOLD 4 /* 4: + i32 fold per stage after the bias flag (the
                               folded AFFINE layer's index, -1: none); written
                               only when a stage folds one */
#define PLAN_MAX_BYTES (64u << 20)
#define FILE_MAX_BYTES ((size_t)4 << 30)
#define MIN_CT_BYTES 64 /* a serialized ciphertext is never shorter */

/* ------------------------------------------------------------- byte buffers */

typedef struct {
  uint8_t *p;
  size_t len, cap;
  int err;
} wbuf;

static void w_put(wbuf *w, const void *src, size_t n) {
  if (w->err) return;
  if (w->len + n > w->cap) {
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n) cap *= 2;
    uint8_t *q = realloc(w->p, cap);
    if (!q) {
      w->err = 1;
      return;
    }
    w->p = q;
    w->cap = cap;
  }
  memcpy(w->p + w->len, src, n);
  w->len += n;
}
static void w_u8(wbuf *w, uint8_t v) { w_put(w, &v, 1); }
static void w_le(wbuf *w, uint64_t v, int bytes) {
  uint8_t b[8];
  for (int i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
  w_put(w, b, (size_t)bytes);
}
static void w_u16(wbuf *w, uint16_t v) { w_le(w, v, 2); }
static void w_u32(wbuf *w, uint32_t v) { w_le(w, v, 4); }
static void w_i32(wbuf *w, int v) { w_le(w, (uint32_t)(int32_t)v, 4); }
static void w_u64(wbuf *w, uint64_t v) { w_le(w, v, 8); }
static void w_f64(wbuf *w, double d) {
  uint64_t v;
  memcpy(&v, &d, 8);
  w_u64(w, v);
}

typedef struct {
  const uint8_t *p;
  size_t len, pos;
  int err;
} rbuf;

static size_t r_left(const rbuf *r) { return r->len - r->pos; }
static uint64_t r_le(rbuf *r, int bytes) {
  if (r->err || r_left(r) < (size_t)bytes) {
    r->err = 1;
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v |= (uint64_t)r->p[r->pos + i] << (8 * i);
  r->pos += (size_t)bytes;
  return v;
}
static uint8_t r_u8(rbuf *r) { return (uint8_t)r_le(r, 1); }
static uint16_t r_u16(rbuf *r) { return (uint16_t)r_le(r, 2); }
static uint32_t r_u32(rbuf *r) { return (uint32_t)r_le(r, 4); }
static int r_i32(rbuf *r) { return (int)(int32_t)r_u32(r); }
static uint64_t r_u64(rbuf *r) { return r_le(r, 8); }
static double r_f64(rbuf *r) {
  uint64_t v = r_u64(r);
  double d;
  memcpy(&d, &v, 8);
  return d;
}
static const uint8_t *r_bytes(rbuf *r, size_t n) {
  if (r->err || r_left(r) < n) {
    r->err = 1;
    return NULL;
  }
  const uint8_t *q = r->p + r->pos;
  r->pos += n;
  return q;
}

/* ------------------------------------------------------------- plan */

int engine_plan_save(const hetee_engine_plan *p, uint8_t **buf, size_t *len) {
  wbuf w = {0};
  uint32_t ver = p->version == PLAN_VERSION_LANES || p->version == PLAN_VERSION_FOLD ? (uint32_t)p->version : PLAN_VERSION;
  for (size_t s = 0; s < p->nstages; s++)
    if (p->st[s].pack.lanes > 1 && ver < PLAN_VERSION_LANES) ver = PLAN_VERSION_LANES;
  for (size_t s = 0; s < p->nstages; s++)
    if (p->st[s].fold) ver = PLAN_VERSION_FOLD;
  w_u32(&w, ver);
  w_u32(&w, (uint32_t)p->n);
  w_u32(&w, p->micro_batch);
  for (int i = 0; i < 3; i++) w_i32(&w, p->in_shape[i]);
  w_u32(&w, (uint32_t)p->out_size);
  w_u8(&w, (uint8_t)p->release_kind);
  w_u32(&w, (uint32_t)p->nstages);
  for (size_t s = 0; s < p->nstages; s++) {
    const engine_stage *st = &p->st[s];
    w_u32(&w, (uint32_t)st->layer);
    w_u8(&w, (uint8_t)st->kind);
    size_t nl = strlen(st->names);
    w_u16(&w, (uint16_t)nl);
    w_put(&w, st->names, nl);
    for (int i = 0; i < 3; i++) w_i32(&w, st->in_shape[i]);
    for (int i = 0; i < 4; i++) w_i32(&w, st->pads[i]);
    const int sh[8] = {st->conv.c, st->conv.h, st->conv.w, st->conv.co,
                       st->conv.kh, st->conv.kw, st->conv.sh, st->conv.sw};
    for (int i = 0; i < 8; i++) w_i32(&w, sh[i]);
    w_u8(&w, (uint8_t)st->phased);
    w_i32(&w, st->pack.cb);
    w_i32(&w, st->pack.mb);
    w_i32(&w, st->pack.nimg);
    if (ver >= PLAN_VERSION_LANES) w_i32(&w, st->pack.lanes);
    w_u8(&w, (uint8_t)st->has_bias);
    if (ver >= PLAN_VERSION_FOLD) w_i32(&w, st->fold - 1);
    w_u32(&w, (uint32_t)st->nops);
    for (size_t k = 0; k < st->nops; k++) {
      const hetee_refresh_op *o = &st->ops[k];
      w_u16(&w, (uint16_t)o->kind);
      w_f64(&w, o->alpha);
      w_i32(&w, o->window);
      w_i32(&w, o->stride);
      for (int i = 0; i < 3; i++) w_i32(&w, o->shape[i]);
      w_u32(&w, (uint32_t)o->na);
      for (size_t j = 0; j < o->na; j++) w_f64(&w, o->a[j]);
      w_u32(&w, (uint32_t)o->nb);
      for (size_t j = 0; j < o->nb; j++) w_f64(&w, o->b[j]);
    }
  }
  if (w.err) {
    free(w.p);
    return hetee_error(HETEE_ERR_NOMEM, "no memory for the plan");
  }
  *buf = w.p;
  *len = w.len;
  return 0;
}

static int bad(const char *what) { return hetee_error(HETEE_ERR_FORMAT, "engine plan: %s", what); }

static int in_range(int v, int lo, int hi) { return v >= lo && v <= hi; }

/* Reads and checks stage s of the plan being loaded. */
static int load_stage(rbuf *r, hetee_engine_plan *p, size_t s) {
  engine_stage *st = &p->st[s];
  char what[160];
  st->layer = (int)r_u32(r);
  st->kind = r_u8(r);
  uint16_t nl = r_u16(r);
  const uint8_t *names = r_bytes(r, nl);
  if (r->err) return bad("truncated stage");
  if (st->layer < 0 || st->layer >= HETEE_NN_MAX_NODES) return bad("layer index out of range");
  if (st->kind != HETEE_NN_DENSE && st->kind != HETEE_NN_CONV) return bad("stage is not a dense or conv layer");
  if (nl >= ENGINE_NAMES_MAX || memchr(names, 0, nl)) return bad("layer names too long or not text");
  memcpy(st->names, names, nl);
  st->names[nl] = 0;
  for (int i = 0; i < 3; i++) st->in_shape[i] = r_i32(r);
  for (int i = 0; i < 4; i++) st->pads[i] = r_i32(r);
  int sh[8];
  for (int i = 0; i < 8; i++) sh[i] = r_i32(r);
  uint8_t phased = r_u8(r);
  st->pack.cb = r_i32(r);
  st->pack.mb = r_i32(r);
  st->pack.nimg = r_i32(r);
  st->pack.lanes = p->version >= PLAN_VERSION_LANES ? r_i32(r) : 0; /* version 2: no lanes */
  st->has_bias = r_u8(r);
  int32_t fold = p->version >= PLAN_VERSION_FOLD ? r_i32(r) : -1;
  uint32_t nops = r_u32(r);
  if (r->err) return bad("truncated stage");
  for (int i = 0; i < 3; i++)
    if (!in_range(st->in_shape[i], 1, 1 << 24)) return bad("input shape out of range");
  if ((size_t)st->in_shape[0] * st->in_shape[1] * st->in_shape[2] > HETEE_REFRESH_MAX_VALUES)
    return bad("input shape too large");
  for (int i = 0; i < 4; i++)
    if (!in_range(st->pads[i], 0, 1024)) return bad("padding out of range");
  st->conv = (hetee_hemat_shape){sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], sh[6], sh[7]};
  if (st->kind == HETEE_NN_DENSE) {
    if (st->in_shape[1] != 1 || st->in_shape[2] != 1 || st->pads[0] || st->pads[1] || st->pads[2] || st->pads[3])
      return bad("dense stage with a spatial input or padding");
    if (sh[0] != st->in_shape[0] || sh[1] != 1 || sh[2] != 1 || sh[4] != 1 || sh[5] != 1 || sh[6] != 1 || sh[7] != 1)
      return bad("dense stage geometry does not follow from its input");
  } else {
    if (sh[0] != st->in_shape[0] || sh[1] != st->in_shape[1] + st->pads[0] + st->pads[2] ||
        sh[2] != st->in_shape[2] + st->pads[1] + st->pads[3])
      return bad("conv stage geometry does not follow from its input and padding");
    for (int i = 4; i < 8; i++)
      if (!in_range(sh[i], 1, 1024)) return bad("kernel or stride out of range");
  }
  if (!in_range(sh[3], 1, 1 << 24)) return bad("output channels out of range");
  if (phased > 1 || (phased && st->kind != HETEE_NN_CONV)) return bad("space-to-depth flag");
  if (st->kind == HETEE_NN_CONV && (sh[4] > sh[1] || sh[5] > sh[2])) return bad("kernel larger than the input");
  st->phased = phased;
  st->shape = st->conv;
  if (phased && !engine_phase_shape(&st->conv, &st->shape)) return bad("space-to-depth form of a conv that has none");
  if (st->has_bias > 1) return bad("bias flag");
  /* a folded affine layer lies between the previous stage's layer and this
   * one, and this layer has a bias (the fold's) and reads no padding */
  if (fold < -1 || fold >= st->layer || (fold >= 0 && (s == 0 || fold <= p->st[s - 1].layer || !st->has_bias ||
                                                          st->pads[0] || st->pads[1] || st->pads[2] || st->pads[3])))
    return bad("folded layer");
  st->fold = fold + 1;
  /* lanes: 0, 1, 2, 4, 8 (hemat checks mb == lanes), never on the first
   * stage (its inputs come from the data provider, not the enclave) */
  if (st->pack.lanes < 0 || st->pack.lanes > 8) return bad("lanes out of range");
  if (s == 0 && st->pack.lanes > 1) return bad("lanes on the first stage");
  int rc = hetee_hemat_layout_init(&st->shape, &st->pack, p->micro_batch, p->n, &st->layout);
  if (rc) {
    snprintf(what, sizeof what, "stage %zu: packing refused by hemat (%s)", s, hetee_last_error());
    return bad(what);
  }
  if (nops > HETEE_REFRESH_MAX_OPS) return bad("too many ops");
  st->out_shape[0] = st->shape.co;
  st->out_shape[1] = st->layout.oh;
  st->out_shape[2] = st->layout.ow;
  size_t n0 = (size_t)st->out_shape[0] * st->out_shape[1] * st->out_shape[2];
  if (n0 > HETEE_REFRESH_MAX_VALUES) return bad("stage output too large");
  for (uint32_t k = 0; k < nops; k++) {
    hetee_refresh_op o;
    memset(&o, 0, sizeof o);
    o.kind = r_u16(r);
    o.alpha = r_f64(r);
    o.window = r_i32(r);
    o.stride = r_i32(r);
    for (int i = 0; i < 3; i++) o.shape[i] = r_i32(r);
    size_t cur = (size_t)st->out_shape[0] * st->out_shape[1] * st->out_shape[2];
    for (int arr = 0; arr < 2; arr++) {
      uint32_t na = r_u32(r);
      if (r->err) return bad("truncated op");
      if (na > cur || na > r_left(r) / 8) return bad("op parameter array too long");
      double *a = NULL;
      if (na) {
        a = malloc(na * sizeof *a);
        if (!a) return hetee_error(HETEE_ERR_NOMEM, "no memory for the plan");
        for (uint32_t j = 0; j < na; j++) {
          a[j] = r_f64(r);
          if (!isfinite(a[j])) {
            free(a);
            return bad("op parameter not finite");
          }
        }
      }
      st->arrays[2 * k + (size_t)arr] = a;
      if (arr == 0) o.a = a, o.na = na;
      else o.b = a, o.nb = na;
    }
    if (!isfinite(o.alpha)) return bad("op alpha not finite");
    if (o.kind < HETEE_OP_ADD_BIAS || o.kind > HETEE_OP_SCALE) return bad("unknown op kind");
    /* the propagation of plan.c, repeated here on the decoded op */
    int shp[3];
    memcpy(shp, st->out_shape, sizeof shp);
    size_t n = (size_t)shp[0] * shp[1] * shp[2];
    int ok = 1;
    switch (o.kind) {
    case HETEE_OP_ADD_BIAS: ok = (o.na == n || o.na == (size_t)shp[0]) && !o.nb; break;
    case HETEE_OP_BATCHNORM: ok = o.na == (size_t)shp[0] && o.nb == (size_t)shp[0]; break;
    case HETEE_OP_MAXPOOL:
    case HETEE_OP_AVGPOOL:
      ok = !o.na && !o.nb && o.window >= 1 && o.stride >= 1 && o.window <= shp[1] && o.window <= shp[2];
      if (ok) {
        shp[1] = (shp[1] - o.window) / o.stride + 1;
        shp[2] = (shp[2] - o.window) / o.stride + 1;
      }
      break;
    case HETEE_OP_RESHAPE:
      ok = !o.na && !o.nb;
      for (int i = 0; i < 3; i++) ok = ok && in_range(o.shape[i], 1, 1 << 24);
      ok = ok && (size_t)o.shape[0] * o.shape[1] * o.shape[2] == n;
      if (ok) memcpy(shp, o.shape, sizeof shp);
      break;
    default: ok = !o.na && !o.nb; break;
    }
    if (!ok) return bad("op does not fit the tensor it applies to");
    memcpy(st->out_shape, shp, sizeof shp);
    st->ops[st->nops++] = o;
  }
  return 0;
}

int engine_plan_load(const uint8_t *buf, size_t len, hetee_engine_plan **out) {
  *out = NULL;
  rbuf r = {buf, len, 0, 0};
  uint32_t ver = r_u32(&r), n = r_u32(&r), mb = r_u32(&r);
  int in_shape[3];
  for (int i = 0; i < 3; i++) in_shape[i] = r_i32(&r);
  uint32_t out_size = r_u32(&r);
  uint8_t kind = r_u8(&r);
  uint32_t nstages = r_u32(&r);
  if (r.err) return bad("truncated header");
  if (ver != PLAN_VERSION && ver != PLAN_VERSION_LANES && ver != PLAN_VERSION_FOLD)
    return hetee_error(HETEE_ERR_VERSION, "engine plan version %u, expected %d to %d", ver, PLAN_VERSION,
                       PLAN_VERSION_FOLD);
  if (n < 4096 || n > 65536 || (n & (n - 1))) return bad("ring degree");
  if (mb < 1 || mb > HETEE_ENGINE_MAX_MICRO_BATCH) return bad("micro-batch out of range");
  for (int i = 0; i < 3; i++)
    if (!in_range(in_shape[i], 1, 1 << 24)) return bad("input shape out of range");
  if ((size_t)in_shape[0] * in_shape[1] * in_shape[2] > HETEE_REFRESH_MAX_VALUES) return bad("input too large");
  if (kind != HETEE_RELEASE_ARGMAX && kind != HETEE_RELEASE_SOFTMAX) return bad("release kind");
  if (nstages < 1 || nstages > HETEE_ENGINE_MAX_STAGES) return bad("stage count");
  hetee_engine_plan *p = calloc(1, sizeof *p);
  if (p) p->st = calloc(nstages, sizeof *p->st);
  if (!p || !p->st) {
    free(p);
    return hetee_error(HETEE_ERR_NOMEM, "no memory for the plan");
  }
  p->n = n;
  p->version = (int)ver;
  p->micro_batch = mb;
  memcpy(p->in_shape, in_shape, sizeof in_shape);
  p->in_size = (size_t)in_shape[0] * in_shape[1] * in_shape[2];
  p->out_size = out_size;
  p->release_kind = kind;
  hetee_hemat_costs_engine(&p->costs);
  int rc = 0;
  for (uint32_t s = 0; s < nstages && !rc; s++) {
    p->nstages = s + 1; /* so that free releases the arrays of a failed stage */
    rc = load_stage(&r, p, s);
  }
  if (rc) goto err;
  if (r_left(&r)) {
    rc = bad("trailing bytes");
    goto err;
  }
  /* the chain: model input -> stage 0 -> ... -> last stage -> release */
  size_t prev = p->in_size;
  for (size_t s = 0; s < p->nstages; s++) {
    const engine_stage *st = &p->st[s];
    if ((size_t)st->in_shape[0] * st->in_shape[1] * st->in_shape[2] != prev) {
      rc = bad("stage input does not match the previous stage's output");
      goto err;
    }
    prev = (size_t)st->out_shape[0] * st->out_shape[1] * st->out_shape[2];
  }
  if (prev != p->out_size || p->out_size > p->n) {
    rc = bad("the last stage does not end in the released output");
    goto err;
  }
  {
    char why[200];
    if (!engine_frames_fit(p, why, sizeof why)) {
      rc = hetee_error(HETEE_ERR_LIMIT, "engine plan: %s", why);
      goto err;
    }
  }
  for (size_t s = 0; s < p->nstages; s++) {
    p->st[s].predicted_s = engine_predict(p, s);
  }
  *out = p;
  return 0;
err:
  hetee_engine_plan_free(p);
  return rc;
}

/* ------------------------------------------------------------- ciphertexts */

int engine_check_ct(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, double scale, const char *what) {
  if (hetee_ckks_ciphertext_level(ct) != HETEE_ENGINE_LEVEL)
    return hetee_error(HETEE_ERR_LEVEL, "%s at level %d, the engine uses level %d", what,
                       hetee_ckks_ciphertext_level(ct), HETEE_ENGINE_LEVEL);
  if (hetee_ckks_ciphertext_size(ct) != 2)
    return hetee_error(HETEE_ERR_FORM, "%s of degree %d, expected a fresh ciphertext", what,
                       hetee_ckks_ciphertext_size(ct) - 1);
  if (hetee_ckks_ciphertext_scale(ct) != scale)
    return hetee_error(HETEE_ERR_SCALE, "%s at scale 2^%.2f, expected 2^%.0f", what,
                       log2(hetee_ckks_ciphertext_scale(ct)), log2(scale));
  (void)ctx;
  return 0;
}

static void put_header(wbuf *w, const char *magic, const hetee_ckks_context *ctx) {
  w_put(w, magic, 4);
  w_u16(w, HDR_BYTES);
  w_u16(w, FMT_VERSION);
  w_u64(w, 0); /* total, patched at the end */
  w_put(w, hetee_ckks_context_fingerprint(ctx), 32);
}

static int finish(wbuf *w, uint8_t **buf, size_t *len) {
  if (w->err) {
    free(w->p);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  for (int i = 0; i < 8; i++) w->p[8 + i] = (uint8_t)((uint64_t)w->len >> (8 * i));
  *buf = w->p;
  *len = w->len;
  return 0;
}

static void put_ct(wbuf *w, const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, int *rc) {
  if (*rc) return;
  uint8_t *b = NULL;
  size_t n = 0;
  *rc = hetee_ckks_ciphertext_save_packed(ctx, ct, &b, &n); /* packed (docs/ckks.md); get_ct takes both forms */
  if (*rc) return;
  w_u64(w, n);
  w_put(w, b, n);
  free(b);
}

static int check_header(rbuf *r, const char *magic, const hetee_ckks_context *ctx, const char *what) {
  const uint8_t *m = r_bytes(r, 4);
  uint16_t hs = r_u16(r), ver = r_u16(r);
  uint64_t total = r_u64(r);
  const uint8_t *fp = r_bytes(r, 32);
  if (r->err) return hetee_error(HETEE_ERR_TRUNCATED, "%s: %zu bytes, shorter than the header", what, r->len);
  if (memcmp(m, magic, 4)) return hetee_error(HETEE_ERR_FORMAT, "%s: bad magic", what);
  if (hs != HDR_BYTES) return hetee_error(HETEE_ERR_FORMAT, "%s: header size %u", what, hs);
  if (ver != FMT_VERSION) return hetee_error(HETEE_ERR_VERSION, "%s: format version %u, expected %d", what, ver, FMT_VERSION);
  if (total > r->len) return hetee_error(HETEE_ERR_TRUNCATED, "%s: %zu bytes, header announces %llu", what, r->len,
                                         (unsigned long long)total);
  if (total != r->len) return hetee_error(HETEE_ERR_FORMAT, "%s: %zu bytes, header announces %llu", what, r->len,
                                          (unsigned long long)total);
  if (memcmp(fp, hetee_ckks_context_fingerprint(ctx), 32))
    return hetee_error(HETEE_ERR_CONTEXT, "%s: made under other CKKS parameters", what);
  return 0;
}

/* Loads one length-prefixed ciphertext and checks it. */
static int get_ct(rbuf *r, const hetee_ckks_context *ctx, double scale, const char *what, hetee_ckks_ciphertext **out) {
  *out = NULL;
  uint64_t n = r_u64(r);
  if (r->err) return hetee_error(HETEE_ERR_TRUNCATED, "%s: missing", what);
  if (n > r_left(r)) return hetee_error(HETEE_ERR_TRUNCATED, "%s: %llu bytes announced, %zu left", what,
                                        (unsigned long long)n, r_left(r));
  const uint8_t *b = r_bytes(r, (size_t)n);
  int rc = hetee_ckks_ciphertext_load(ctx, b, (size_t)n, out);
  if (!rc) rc = engine_check_ct(ctx, *out, scale, what);
  if (rc) {
    hetee_ckks_ciphertext_free(*out);
    *out = NULL;
  }
  return rc;
}

/* ------------------------------------------------------------- model */

void hetee_engine_model_free(hetee_engine_model *em) {
  if (!em) return;
  for (size_t s = 0; em->plan && s < em->plan->nstages; s++) {
    const hetee_hemat_layout *L = &em->plan->st[s].layout;
    if (em->w && em->w[s]) {
      for (size_t i = 0; i < L->n_w_cts; i++) hetee_ckks_ciphertext_free(em->w[s][i]);
      free(em->w[s]);
    }
    if (em->bias && em->bias[s]) {
      for (int i = 0; i < L->nmb; i++) hetee_ckks_ciphertext_free(em->bias[s][i]);
      free(em->bias[s]);
    }
  }
  free(em->w);
  free(em->bias);
  hetee_engine_plan_free(em->plan);
  free(em);
}

const hetee_engine_plan *hetee_engine_model_plan(const hetee_engine_model *em) { return em ? em->plan : NULL; }
size_t hetee_engine_model_ct_bytes(const hetee_engine_model *em) { return em ? em->ct_bytes : 0; }

int hetee_engine_model_save(const hetee_engine_model *em, uint8_t **buf, size_t *len) {
  if (!em || !buf || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  uint8_t *pb = NULL;
  size_t pl = 0;
  int rc = engine_plan_save(em->plan, &pb, &pl);
  if (rc) return rc;
  wbuf w = {0};
  put_header(&w, MODEL_MAGIC, em->ctx);
  w_u32(&w, (uint32_t)pl);
  w_put(&w, pb, pl);
  free(pb);
  for (size_t s = 0; s < em->plan->nstages && !rc; s++) {
    const hetee_hemat_layout *L = &em->plan->st[s].layout;
    for (size_t i = 0; i < L->n_w_cts; i++) put_ct(&w, em->ctx, em->w[s][i], &rc);
    if (em->bias[s])
      for (int i = 0; i < L->nmb; i++) put_ct(&w, em->ctx, em->bias[s][i], &rc);
  }
  if (rc) {
    free(w.p);
    return rc;
  }
  return finish(&w, buf, len);
}

int hetee_engine_model_load(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len, hetee_engine_model **out) {
  if (!ctx || !buf || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  rbuf r = {buf, len, 0, 0};
  int rc = check_header(&r, MODEL_MAGIC, ctx, "encrypted model");
  if (rc) return rc;
  uint32_t pl = r_u32(&r);
  if (r.err || pl > r_left(&r) || pl > PLAN_MAX_BYTES)
    return hetee_error(HETEE_ERR_TRUNCATED, "encrypted model: plan of %u bytes does not fit", pl);
  hetee_engine_model *em = calloc(1, sizeof *em);
  if (!em) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  em->ctx = ctx;
  rc = engine_plan_load(r_bytes(&r, pl), pl, &em->plan);
  if (rc) goto err;
  if (em->plan->n != hetee_ckks_context_n(ctx)) {
    rc = hetee_error(HETEE_ERR_CONTEXT, "encrypted model: plan for N = %zu, parameters have N = %zu", em->plan->n,
                     hetee_ckks_context_n(ctx));
    goto err;
  }
  size_t ns = em->plan->nstages;
  em->w = calloc(ns, sizeof *em->w);
  em->bias = calloc(ns, sizeof *em->bias);
  if (!em->w || !em->bias) goto nomem;
  for (size_t s = 0; s < ns; s++) {
    const engine_stage *st = &em->plan->st[s];
    const hetee_hemat_layout *L = &st->layout;
    size_t nb = st->has_bias ? (size_t)L->nmb : 0;
    if ((L->n_w_cts + nb) > r_left(&r) / MIN_CT_BYTES) {
      rc = hetee_error(HETEE_ERR_TRUNCATED, "encrypted model: stage %zu needs %zu ciphertexts, %zu bytes left", s,
                       L->n_w_cts + nb, r_left(&r));
      goto err;
    }
    em->w[s] = calloc(L->n_w_cts, sizeof *em->w[s]);
    if (nb) em->bias[s] = calloc(nb, sizeof *em->bias[s]);
    if (!em->w[s] || (nb && !em->bias[s])) goto nomem;
    char what[96];
    for (size_t i = 0; i < L->n_w_cts && !rc; i++) {
      snprintf(what, sizeof what, "stage %zu weight ciphertext %zu", s, i);
      rc = get_ct(&r, ctx, HETEE_ENGINE_W_SCALE, what, &em->w[s][i]);
    }
    for (size_t i = 0; i < nb && !rc; i++) {
      snprintf(what, sizeof what, "stage %zu bias ciphertext %zu", s, i);
      rc = get_ct(&r, ctx, HETEE_ENGINE_OUT_SCALE, what, &em->bias[s][i]);
    }
    if (rc) goto err;
  }
  if (r_left(&r)) {
    rc = hetee_error(HETEE_ERR_FORMAT, "encrypted model: %zu trailing bytes", r_left(&r));
    goto err;
  }
  em->ct_bytes = len - HDR_BYTES - 4 - pl;
  *out = em;
  return 0;
nomem:
  rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
err:
  hetee_engine_model_free(em);
  return rc;
}

/* ------------------------------------------------------------- files */

static int write_atomic(const char *path, const uint8_t *b, size_t n) {
  size_t pl = strlen(path);
  char *tmp = malloc(pl + 16);
  if (!tmp) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  snprintf(tmp, pl + 16, "%s.tmp%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int rc = 0;
  if (fd < 0) {
    rc = hetee_error(HETEE_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    free(tmp);
    return rc;
  }
  size_t off = 0;
  while (off < n) {
    ssize_t k = write(fd, b + off, n - off);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      rc = hetee_error(HETEE_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
      break;
    }
    off += (size_t)k;
  }
  if (!rc && fsync(fd) != 0) rc = hetee_error(HETEE_ERR_IO, "cannot sync %s: %s", tmp, strerror(errno));
  if (close(fd) != 0 && !rc) rc = hetee_error(HETEE_ERR_IO, "cannot close %s", tmp);
  if (!rc && rename(tmp, path) != 0) rc = hetee_error(HETEE_ERR_IO, "cannot rename to %s: %s", path, strerror(errno));
  if (rc) unlink(tmp);
  free(tmp);
  return rc;
}

static int read_file(const char *path, uint8_t **buf, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return hetee_error(errno == ENOENT ? HETEE_ERR_NOT_FOUND : HETEE_ERR_IO, "cannot open %s: %s", path,
                             strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return hetee_error(HETEE_ERR_IO, "%s is not a regular file", path);
  }
  if ((uint64_t)st.st_size > FILE_MAX_BYTES) {
    fclose(f);
    return hetee_error(HETEE_ERR_LIMIT, "%s: %lld bytes, above the limit", path, (long long)st.st_size);
  }
  size_t n = (size_t)st.st_size;
  uint8_t *b = malloc(n ? n : 1);
  if (!b) {
    fclose(f);
    return hetee_error(HETEE_ERR_NOMEM, "no memory for %s", path);
  }
  size_t got = fread(b, 1, n, f);
  fclose(f);
  if (got != n) {
    free(b);
    return hetee_error(HETEE_ERR_IO, "cannot read %s", path);
  }
  *buf = b;
  *len = n;
  return 0;
}

int hetee_engine_model_write(const hetee_engine_model *em, const char *path) {
  if (!em || !path) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  uint8_t *b;
  size_t n;
  int rc = hetee_engine_model_save(em, &b, &n);
  if (rc) return rc;
  rc = write_atomic(path, b, n);
  free(b);
  return rc;
}

int hetee_engine_model_read(const hetee_ckks_context *ctx, const char *path, hetee_engine_model **out) {
  if (!ctx || !path || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  uint8_t *b = NULL;
  size_t n = 0;
  int rc = read_file(path, &b, &n);
  if (rc) return rc;
  rc = hetee_engine_model_load(ctx, b, n, out);
  free(b);
  return rc;
}

/* ------------------------------------------------------------- input */

void hetee_engine_input_free(hetee_engine_input *in) {
  if (!in) return;
  for (size_t i = 0; i < in->ncts; i++) hetee_ckks_ciphertext_free(in->cts[i]);
  free(in->cts);
  free(in);
}

size_t hetee_engine_input_count(const hetee_engine_input *in) { return in ? in->count : 0; }

int hetee_engine_input_save(const hetee_engine_input *in, uint8_t **buf, size_t *len) {
  if (!in || !buf || !len) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  wbuf w = {0};
  put_header(&w, INPUT_MAGIC, in->ctx);
  w_u32(&w, (uint32_t)in->count);
  w_u32(&w, in->micro_batch);
  w_u32(&w, (uint32_t)in->ncts);
  int rc = 0;
  for (size_t i = 0; i < in->ncts; i++) put_ct(&w, in->ctx, in->cts[i], &rc);
  if (rc) {
    free(w.p);
    return rc;
  }
  return finish(&w, buf, len);
}

/* Input ciphertexts of a run of `count` samples under plan p. */
int engine_input_cts(const hetee_engine_plan *p, size_t count, size_t *ncts) {
  size_t total = 0, nmb = (count + p->micro_batch - 1) / p->micro_batch;
  for (size_t k = 0; k < nmb; k++) {
    hetee_hemat_layout L;
    int rc = hetee_engine_plan_layout(p, 0, engine_mb_size(count, p->micro_batch, k), &L);
    if (rc) return rc;
    total += L.n_in_cts;
  }
  *ncts = total;
  return 0;
}

int hetee_engine_input_load(const hetee_ckks_context *ctx, const hetee_engine_plan *plan, const uint8_t *buf,
                            size_t len, hetee_engine_input **out) {
  if (!ctx || !plan || !buf || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  rbuf r = {buf, len, 0, 0};
  int rc = check_header(&r, INPUT_MAGIC, ctx, "encrypted input");
  if (rc) return rc;
  uint32_t count = r_u32(&r), mb = r_u32(&r), ncts = r_u32(&r);
  if (r.err) return hetee_error(HETEE_ERR_TRUNCATED, "encrypted input: truncated");
  if (count < 1 || count > HETEE_ENGINE_MAX_IMAGES)
    return hetee_error(HETEE_ERR_FORMAT, "encrypted input: %u samples", count);
  if (mb != plan->micro_batch)
    return hetee_error(HETEE_ERR_SHAPE, "encrypted input: micro-batch %u, the plan's is %u", mb, plan->micro_batch);
  size_t want;
  if ((rc = engine_input_cts(plan, count, &want))) return rc;
  if (ncts != want)
    return hetee_error(HETEE_ERR_SHAPE, "encrypted input: %u ciphertexts, the plan needs %zu for %u samples", ncts,
                       want, count);
  if (ncts > r_left(&r) / MIN_CT_BYTES)
    return hetee_error(HETEE_ERR_TRUNCATED, "encrypted input: %u ciphertexts in %zu bytes", ncts, r_left(&r));
  hetee_engine_input *in = calloc(1, sizeof *in);
  if (in) in->cts = calloc(ncts ? ncts : 1, sizeof *in->cts);
  if (!in || !in->cts) {
    free(in);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  in->ctx = ctx;
  in->count = count;
  in->micro_batch = mb;
  for (uint32_t i = 0; i < ncts && !rc; i++) {
    char what[96];
    snprintf(what, sizeof what, "input ciphertext %u", i);
    rc = get_ct(&r, ctx, HETEE_ENGINE_IN_SCALE, what, &in->cts[i]);
    if (!rc) in->ncts = i + 1;
  }
  if (!rc && r_left(&r)) rc = hetee_error(HETEE_ERR_FORMAT, "encrypted input: %zu trailing bytes", r_left(&r));
  if (rc) {
    hetee_engine_input_free(in);
    return rc;
  }
  *out = in;
  return 0;
}

void hetee_engine_results_clear(hetee_engine_results *r) {
  if (!r) return;
  for (size_t i = 0; r->sealed && i < r->n; i++) free(r->sealed[i]);
  free(r->sealed);
  free(r->lens);
  memset(r, 0, sizeof *r);
}

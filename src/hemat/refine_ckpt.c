/*
 * refine_ckpt.c — checkpoints of the host's refine state (docs/refine.md
 * "Checkpoints and resume"): the atomic writer (temporary file, fsync,
 * rename, directory fsync), the frozen layers' file PATH.frozen, the sealed
 * form's trailer, and the reader. Moved out of refine_host.c; the state's
 * struct stays there (refine_state_fields_of).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "hemat/refine_internal.h"

static size_t n_v(const hetee_refine_plan *p, int l) {
  return refine_compact_cts((size_t)p->L[l].m * (size_t)(p->L[l].k + 1), p->n);
}
static int has_v(const hetee_refine_plan *p, int l) { return p->L[l].trains && p->cfg.momentum > 0; }

/* ---------------------------------------------------------------- checkpoints */

#define CK_MAGIC "HTRC"
#define CK_VERSION 3u /* 2: the learning-rate schedule; 3: frozen layers apart, bound by digest */
#define CK_FROZEN_MAGIC "HTRF"
#define CK_FROZEN_VERSION 1u
#define CK_FROZEN_SUFFIX ".frozen"
enum { CK_FROZEN_NONE = 0, CK_FROZEN_INLINE = 1, CK_FROZEN_FILE = 2 };

/* A writer / reader that hashes (BLAKE2b-256) what passes through it when
 * h is set; f == NULL (writer): hash only. */
typedef struct ck_io {
  FILE *f;
  crypto_generichash_state *h;
  uint64_t n;
} ck_io;

static int wr(ck_io *w, const void *p, size_t n) {
  if (w->f && fwrite(p, 1, n, w->f) != n) return -1;
  if (w->h) crypto_generichash_update(w->h, p, n);
  w->n += n;
  return 0;
}

static int rd(ck_io *r, void *p, size_t n) {
  if (fread(p, 1, n, r->f) != n) return -1;
  if (r->h) crypto_generichash_update(r->h, p, n);
  r->n += n;
  return 0;
}

static int wr_cts(ck_io *w, const hetee_ckks_context *ctx, ct_t *const *c, size_t n) {
  uint32_t n32 = (uint32_t)n;
  if (wr(w, &n32, 4)) return -1;
  for (size_t i = 0; i < n; i++) {
    uint8_t *buf = NULL;
    size_t len = 0;
    if (hetee_ckks_ciphertext_save(ctx, c[i], &buf, &len)) return -1;
    uint64_t l64 = len;
    int bad = wr(w, &l64, 8) || wr(w, buf, len);
    free(buf);
    if (bad) return -1;
  }
  return 0;
}

typedef struct ck_header {
  char magic[4];
  uint32_t version;
  uint8_t fp[32];
  uint32_t batch, accumulate, loss, nl;
  int32_t train_layers, pad;
  double lr, momentum, weight_decay;
  uint64_t seed;
  int32_t k[HETEE_REFINE_MAX_LAYERS], m[HETEE_REFINE_MAX_LAYERS];
  uint32_t epoch, next;
  uint64_t steps, updates;
  int32_t sched_kind;
  uint32_t step_every, total, pad2;
  double gamma, lr_min;
  /* version 3: where the frozen layers' ciphertexts are (CK_FROZEN_*), and
   * the BLAKE2b-256 digest and size of their section */
  uint32_t frozen_mode, first_train;
  uint8_t frozen_digest[32];
  uint64_t frozen_size;
} ck_header;

typedef struct ck_frozen_head {
  char magic[4];
  uint32_t version;
  uint8_t fp[32];
  uint32_t nl, first_train;
} ck_frozen_head;

/* The header of plan p's checkpoints without the cursor and the frozen
 * section's mode, digest and size (zero): what the writer writes, and
 * what the reader requires byte for byte (pads, layers beyond nl, the sign
 * of a zero included: one encoding per checkpoint). */
static void ck_settings(const hetee_ckks_context *ctx, const hetee_refine_plan *p, ck_header *h) {
  memset(h, 0, sizeof *h);
  memcpy(h->magic, CK_MAGIC, 4);
  h->version = CK_VERSION;
  memcpy(h->fp, hetee_ckks_context_fingerprint(ctx), 32);
  h->batch = p->cfg.batch;
  h->accumulate = p->cfg.accumulate;
  h->loss = (uint32_t)p->cfg.loss;
  h->nl = (uint32_t)p->nl;
  h->train_layers = p->cfg.train_layers;
  h->lr = p->cfg.lr;
  h->momentum = p->cfg.momentum;
  h->weight_decay = p->cfg.weight_decay;
  h->seed = p->cfg.seed;
  for (int l = 0; l < p->nl; l++) h->k[l] = p->L[l].k, h->m[l] = p->L[l].m;
  h->sched_kind = p->sched.kind;
  h->step_every = p->sched.step_every;
  h->total = p->sched.total;
  h->gamma = p->sched.gamma;
  h->lr_min = p->sched.lr_min;
  h->first_train = (uint32_t)p->first_train;
}

/* The frozen layers' section (the whole PATH.frozen file, or inline):
 * "HTRF" | u32 version 1 | fingerprint | u32 nl | u32 first_train | per
 * frozen layer l: W (F layout), bias. */
static int wr_frozen(ck_io *w, const hetee_refine_state *s) {
  refine_state_fields S;
  refine_state_fields_of(s, &S);
  ck_frozen_head fh;
  memset(&fh, 0, sizeof fh);
  memcpy(fh.magic, CK_FROZEN_MAGIC, 4);
  fh.version = CK_FROZEN_VERSION;
  memcpy(fh.fp, hetee_ckks_context_fingerprint(S.ctx), 32);
  fh.nl = (uint32_t)S.p->nl;
  fh.first_train = (uint32_t)S.p->first_train;
  int bad = wr(w, &fh, sizeof fh);
  for (int l = 0; l < S.p->first_train && !bad; l++) {
    const hetee_refine_layer *L = &S.p->L[l];
    bad |= wr_cts(w, S.ctx, S.W[l], L->F.n_w_cts);
    bad |= wr_cts(w, S.ctx, S.bias[l], (size_t)L->F.nmb);
  }
  return bad;
}

/* the digest of the frozen section (computed once per state: frozen layers never change) */
static int frozen_digest(const hetee_refine_state *s) {
  refine_state_fields S;
  refine_state_fields_of(s, &S);
  refine_ck_cache *fz = S.fz;
  if (fz->known) return 0;
  crypto_generichash_state h;
  crypto_generichash_init(&h, NULL, 0, 32);
  ck_io w = {NULL, &h, 0};
  if (wr_frozen(&w, s)) return hetee_error(HETEE_ERR_INTERNAL, "serializing the frozen layers");
  crypto_generichash_final(&h, fz->digest, 32);
  fz->size = w.n;
  fz->known = 1;
  return 0;
}

static void fsync_dir_of(const char *path) {
  char *dir = strdup(path);
  if (!dir) return;
  char *sl = strrchr(dir, '/');
  if (sl) *sl = 0;
  int fd = open(sl ? dir : ".", O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  free(dir);
}

static char *path_with(const char *path, const char *suffix) {
  size_t n = strlen(path) + strlen(suffix) + 1;
  char *o = malloc(n);
  if (o) snprintf(o, n, "%s%s", path, suffix);
  return o;
}

/* Writes PATH.frozen (tmp + fsync + rename + directory fsync) unless the
 * state wrote (or read and checked) that file already and it is still
 * there with its size: the frozen layers are written once per job. */
static int frozen_file_ensure(const hetee_refine_state *s, const char *path) {
  refine_state_fields S;
  refine_state_fields_of(s, &S);
  refine_ck_cache *fz = S.fz;
  char *fpath = path_with(path, CK_FROZEN_SUFFIX);
  if (!fpath) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  struct stat sb;
  if (fz->known && fz->path && !strcmp(fz->path, fpath) && !stat(fpath, &sb) && (uint64_t)sb.st_size == fz->size) {
    free(fpath);
    return 0;
  }
  char *tmp = malloc(strlen(fpath) + 32);
  if (!tmp) {
    free(fpath);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  snprintf(tmp, strlen(fpath) + 32, "%s.tmp%ld", fpath, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    int rc = hetee_error(HETEE_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    free(tmp);
    free(fpath);
    return rc;
  }
  crypto_generichash_state h;
  crypto_generichash_init(&h, NULL, 0, 32);
  ck_io w = {f, &h, 0};
  uint8_t d[32];
  int bad = wr_frozen(&w, s);
  crypto_generichash_final(&h, d, 32);
  bad |= fflush(f) != 0;
  bad |= fsync(fileno(f)) != 0;
  bad |= fclose(f) != 0;
  if (!bad && fz->known && (memcmp(d, fz->digest, 32) || w.n != fz->size)) bad = 2; /* cannot happen: frozen */
  if (!bad) bad |= rename(tmp, fpath) != 0;
  if (!bad) fsync_dir_of(fpath);
  int rc = bad == 2 ? hetee_error(HETEE_ERR_INTERNAL, "the frozen layers changed")
           : bad   ? hetee_error(HETEE_ERR_IO, "cannot write %s", fpath)
                   : 0;
  if (bad) {
    unlink(tmp);
    free(fpath);
  } else {
    memcpy(fz->digest, d, 32);
    fz->size = w.n;
    fz->known = 1;
    free(fz->path);
    fz->path = fpath;
  }
  free(tmp);
  return rc;
}

#define CK_JOB_MAGIC "HTRJ" /* trailer of a sealed checkpoint: uid[16] | u64 len | enclave job state */

static int ck_write(const hetee_refine_state *s, const char *path, const uint8_t *uid, const uint8_t *blob, size_t blen,
                    int inline_frozen);

int hetee_refine_checkpoint_write(const hetee_refine_state *s, const char *path) {
  return ck_write(s, path, NULL, NULL, 0, 0);
}

int hetee_refine_checkpoint_write_full(const hetee_refine_state *s, const char *path) {
  return ck_write(s, path, NULL, NULL, 0, 1);
}

int hetee_refine_checkpoint_write_job(const hetee_refine_state *s, const char *path, const uint8_t uid[16],
                                      const uint8_t *blob, size_t blen) {
  return refine_checkpoint_write_job(s, path, uid, blob, blen);
}

int hetee_refine_checkpoint_write_frozen(const hetee_refine_state *s, const char *path) {
  if (!s || !path) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  refine_state_fields S;
  refine_state_fields_of(s, &S);
  if (*S.partial) return hetee_error(HETEE_ERR_STATE, "a state read without its frozen layers");
  if (S.p->first_train == 0) return 0;
  return frozen_file_ensure(s, path);
}

int refine_checkpoint_write_job(const hetee_refine_state *s, const char *path, const uint8_t uid[16],
                                const uint8_t *blob, size_t blen) {
  if (!uid || !blob || !blen) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  return ck_write(s, path, uid, blob, blen, 0);
}

static int ck_write(const hetee_refine_state *s, const char *path, const uint8_t *uid, const uint8_t *blob, size_t blen,
                    int inline_frozen) {
  if (!s || !path) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  refine_state_fields S;
  refine_state_fields_of(s, &S);
  if (*S.partial) return hetee_error(HETEE_ERR_STATE, "a state read without its frozen layers");
  if (*S.pending) return hetee_error(HETEE_ERR_STATE, "checkpoint with %u steps not yet applied", *S.pending);
  ck_header h;
  ck_settings(S.ctx, S.p, &h);
  h.epoch = *S.epoch;
  h.next = *S.next;
  h.steps = *S.steps;
  h.updates = *S.updates;
  h.frozen_mode = S.p->first_train == 0 ? CK_FROZEN_NONE : inline_frozen ? CK_FROZEN_INLINE : CK_FROZEN_FILE;
  int rc = 0;
  if (h.frozen_mode == CK_FROZEN_FILE) rc = frozen_file_ensure(s, path);
  else if (h.frozen_mode == CK_FROZEN_INLINE) rc = frozen_digest(s);
  if (rc) return rc;
  if (h.frozen_mode != CK_FROZEN_NONE) {
    memcpy(h.frozen_digest, S.fz->digest, 32);
    h.frozen_size = S.fz->size;
  }
  size_t pl = strlen(path);
  char *tmp = malloc(pl + 32);
  if (!tmp) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  snprintf(tmp, pl + 32, "%s.tmp%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    rc = hetee_error(HETEE_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    free(tmp);
    return rc;
  }
  ck_io w = {f, NULL, 0};
  int bad = wr(&w, &h, sizeof h);
  if (!bad && h.frozen_mode == CK_FROZEN_INLINE) bad |= wr_frozen(&w, s);
  for (int l = S.p->first_train; l < S.p->nl && !bad; l++) { /* the trained layers */
    const hetee_refine_layer *L = &S.p->L[l];
    bad |= wr_cts(&w, S.ctx, S.W[l], L->F.n_w_cts);
    bad |= wr_cts(&w, S.ctx, S.bias[l], (size_t)L->F.nmb);
    bad |= wr_cts(&w, S.ctx, S.WT[l], L->has_back ? L->T.n_w_cts : 0);
    bad |= wr_cts(&w, S.ctx, S.V[l], has_v(S.p, l) ? n_v(S.p, l) : 0);
  }
  if (blob) { /* the enclave's sealed job state, in the same file (one rename) */
    uint64_t l64 = blen;
    bad |= wr(&w, CK_JOB_MAGIC, 4) || wr(&w, uid, 16) || wr(&w, &l64, 8) || wr(&w, blob, blen);
  }
  bad |= fflush(f) != 0;
  bad |= fsync(fileno(f)) != 0;
  bad |= fclose(f) != 0;
  {
    /* test hook: the process dies (as under kill -9) between writing the
     * temporary file and renaming it, at the n-th checkpoint */
    static int writes;
    const char *die = getenv("HETEE_REFINE_TEST_DIE_BEFORE_RENAME");
    if (!bad && die && ++writes == atoi(die)) _exit(137);
  }
  if (!bad) bad |= rename(tmp, path) != 0;
  if (!bad) fsync_dir_of(path); /* make the rename durable */
  rc = bad ? hetee_error(HETEE_ERR_IO, "cannot write checkpoint %s", path) : 0;
  if (bad) unlink(tmp);
  free(tmp);
  return rc;
}

static int rd_cts(ck_io *r, const hetee_ckks_context *ctx, ct_t **c, size_t n, double scale) {
  uint32_t n32;
  if (rd(r, &n32, 4)) return hetee_error(HETEE_ERR_TRUNCATED, "checkpoint truncated");
  if (n32 != n) return hetee_error(HETEE_ERR_FORMAT, "checkpoint: %u ciphertexts where the plan has %zu", n32, n);
  for (size_t i = 0; i < n; i++) {
    uint64_t len;
    if (rd(r, &len, 8)) return hetee_error(HETEE_ERR_TRUNCATED, "checkpoint truncated");
    if (len > ((uint64_t)64 << 20)) return hetee_error(HETEE_ERR_LIMIT, "checkpoint ciphertext of %llu bytes", (unsigned long long)len);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return hetee_error(HETEE_ERR_NOMEM, "no memory");
    if (rd(r, buf, len)) {
      free(buf);
      return hetee_error(HETEE_ERR_TRUNCATED, "checkpoint truncated");
    }
    int rc = hetee_ckks_ciphertext_load(ctx, buf, len, &c[i]);
    free(buf);
    if (rc) return rc;
    if (hetee_ckks_ciphertext_level(c[i]) != REFINE_LEVEL || hetee_ckks_ciphertext_size(c[i]) != 2 ||
        !(fabs(hetee_ckks_ciphertext_scale(c[i]) / scale - 1) < 0x1p-20))
      return hetee_error(HETEE_ERR_FORMAT, "checkpoint ciphertext %zu: level, size or scale", i);
  }
  return 0;
}

/* Reads the frozen section from f into s and checks it against the digest
 * and size the checkpoint header names. */
static int rd_frozen(FILE *f, const hetee_ckks_context *ctx, hetee_refine_state *s, const ck_header *h, const char *what) {
  refine_state_fields S;
  refine_state_fields_of(s, &S);
  crypto_generichash_state hs;
  crypto_generichash_init(&hs, NULL, 0, 32);
  ck_io r = {f, &hs, 0};
  ck_frozen_head fh;
  int rc = 0;
  if (rd(&r, &fh, sizeof fh)) rc = hetee_error(HETEE_ERR_TRUNCATED, "%s truncated", what);
  else if (memcmp(fh.magic, CK_FROZEN_MAGIC, 4)) rc = hetee_error(HETEE_ERR_FORMAT, "%s: not frozen refine layers", what);
  else if (fh.version != CK_FROZEN_VERSION) rc = hetee_error(HETEE_ERR_VERSION, "%s: version %u", what, fh.version);
  else if (memcmp(fh.fp, hetee_ckks_context_fingerprint(ctx), 32) || fh.nl != (uint32_t)S.p->nl ||
           fh.first_train != (uint32_t)S.p->first_train)
    rc = hetee_error(HETEE_ERR_AUTH, "%s is not the frozen layers the checkpoint names", what);
  for (int l = 0; l < S.p->first_train && !rc; l++) {
    const hetee_refine_layer *L = &S.p->L[l];
    rc = rd_cts(&r, ctx, S.W[l], L->F.n_w_cts, REFINE_W_SCALE);
    if (!rc) rc = rd_cts(&r, ctx, S.bias[l], (size_t)L->F.nmb, REFINE_OUT_SCALE);
  }
  uint8_t d[32];
  crypto_generichash_final(&hs, d, 32);
  if (!rc && (r.n != h->frozen_size || sodium_memcmp(d, h->frozen_digest, 32)))
    rc = hetee_error(HETEE_ERR_AUTH, "%s is not the frozen layers the checkpoint names (digest)", what);
  if (!rc) {
    memcpy(S.fz->digest, d, 32);
    S.fz->size = r.n;
    S.fz->known = 1;
  }
  return rc;
}

static int ck_read(const hetee_ckks_context *ctx, const hetee_refine_plan *p, const char *path,
                   hetee_refine_state **out, uint8_t *uid, uint8_t **blob, size_t *blen, int trained_only);

int hetee_refine_checkpoint_frozen_info(const char *path, int *mode, uint64_t *size) {
  if (!path || !mode || !size) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  FILE *f = fopen(path, "rb");
  if (!f) return hetee_error(HETEE_ERR_NOT_FOUND, "cannot open %s: %s", path, strerror(errno));
  ck_header h;
  int rc = 0;
  if (fread(&h, sizeof h, 1, f) != 1) rc = hetee_error(HETEE_ERR_TRUNCATED, "checkpoint truncated");
  else if (memcmp(h.magic, CK_MAGIC, 4)) rc = hetee_error(HETEE_ERR_FORMAT, "not a refine checkpoint");
  else if (h.version != CK_VERSION) rc = hetee_error(HETEE_ERR_VERSION, "checkpoint version %u (%u expected)", h.version, CK_VERSION);
  else if (h.frozen_mode > CK_FROZEN_FILE) rc = hetee_error(HETEE_ERR_FORMAT, "checkpoint: frozen layers' mode %u", h.frozen_mode);
  fclose(f);
  if (rc) return rc;
  *mode = (int)h.frozen_mode;
  *size = h.frozen_mode == CK_FROZEN_NONE ? 0 : h.frozen_size;
  return 0;
}

int hetee_refine_checkpoint_read(const hetee_ckks_context *ctx, const hetee_refine_plan *p, const char *path,
                                 hetee_refine_state **out) {
  return ck_read(ctx, p, path, out, NULL, NULL, NULL, 0);
}

int hetee_refine_checkpoint_read_trained(const hetee_ckks_context *ctx, const hetee_refine_plan *p, const char *path,
                                         hetee_refine_state **out) {
  return ck_read(ctx, p, path, out, NULL, NULL, NULL, 1);
}

int refine_checkpoint_read_job(const hetee_ckks_context *ctx, const hetee_refine_plan *p, const char *path,
                               hetee_refine_state **out, uint8_t uid[16], uint8_t **blob, size_t *blen) {
  if (!uid || !blob || !blen) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  return ck_read(ctx, p, path, out, uid, blob, blen, 0);
}

static int ck_read(const hetee_ckks_context *ctx, const hetee_refine_plan *p, const char *path,
                   hetee_refine_state **out, uint8_t *uid, uint8_t **blob, size_t *blen, int trained_only) {
  if (!ctx || !p || !path || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  FILE *f = fopen(path, "rb");
  if (!f) return hetee_error(HETEE_ERR_NOT_FOUND, "cannot open %s: %s", path, strerror(errno));
  ck_header h;
  memset(&h, 0, sizeof h);
  ck_io r = {f, NULL, 0};
  int rc = 0;
  uint32_t want_mode = p->first_train == 0 ? CK_FROZEN_NONE : CK_FROZEN_FILE;
  if (fread(&h, 8, 1, f) != 1) rc = hetee_error(HETEE_ERR_TRUNCATED, "checkpoint truncated");
  else if (memcmp(h.magic, CK_MAGIC, 4)) rc = hetee_error(HETEE_ERR_FORMAT, "not a refine checkpoint");
  else if (h.version != CK_VERSION) rc = hetee_error(HETEE_ERR_VERSION, "checkpoint version %u (%u expected)", h.version, CK_VERSION);
  else if (fread((uint8_t *)&h + 8, sizeof h - 8, 1, f) != 1) rc = hetee_error(HETEE_ERR_TRUNCATED, "checkpoint truncated");
  else if (memcmp(h.fp, hetee_ckks_context_fingerprint(ctx), 32)) rc = hetee_error(HETEE_ERR_CONTEXT, "checkpoint under other parameters");
  else if (h.batch != p->cfg.batch || h.accumulate != p->cfg.accumulate || h.loss != (uint32_t)p->cfg.loss ||
           h.nl != (uint32_t)p->nl || h.train_layers != p->cfg.train_layers || h.lr != p->cfg.lr ||
           h.momentum != p->cfg.momentum || h.weight_decay != p->cfg.weight_decay || h.seed != p->cfg.seed ||
           h.sched_kind != p->sched.kind || h.step_every != p->sched.step_every || h.total != p->sched.total ||
           h.gamma != p->sched.gamma || h.lr_min != p->sched.lr_min || h.first_train != (uint32_t)p->first_train)
    rc = hetee_error(HETEE_ERR_SHAPE, "checkpoint made with other settings");
  else if (h.frozen_mode != want_mode && !(want_mode == CK_FROZEN_FILE && h.frozen_mode == CK_FROZEN_INLINE))
    rc = hetee_error(HETEE_ERR_FORMAT, "checkpoint: frozen layers' mode %u", h.frozen_mode);
  for (int l = 0; l < p->nl && !rc; l++)
    if (h.k[l] != p->L[l].k || h.m[l] != p->L[l].m) rc = hetee_error(HETEE_ERR_SHAPE, "checkpoint layer %d shape", l);
  if (!rc) { /* the rest of the header as the writer writes it for this plan */
    ck_header e;
    ck_settings(ctx, p, &e);
    e.epoch = h.epoch;
    e.next = h.next;
    e.steps = h.steps;
    e.updates = h.updates;
    e.frozen_mode = h.frozen_mode;
    if (h.frozen_mode != CK_FROZEN_NONE) {
      memcpy(e.frozen_digest, h.frozen_digest, 32);
      e.frozen_size = h.frozen_size;
    }
    if (memcmp(&e, &h, sizeof h)) rc = hetee_error(HETEE_ERR_FORMAT, "checkpoint: a malformed header");
  }
  hetee_refine_state *s = NULL;
  if (!rc) rc = refine_state_alloc(ctx, p, &s);
  refine_state_fields S;
  memset(&S, 0, sizeof S);
  if (s) refine_state_fields_of(s, &S);
  char *fpath = NULL;
  if (!rc && h.frozen_mode == CK_FROZEN_INLINE) {
    rc = rd_frozen(f, ctx, s, &h, "checkpoint");
  } else if (!rc && h.frozen_mode == CK_FROZEN_FILE && !trained_only) {
    fpath = path_with(path, CK_FROZEN_SUFFIX);
    FILE *ff = fpath ? fopen(fpath, "rb") : NULL;
    if (!fpath) rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    else if (!ff) rc = hetee_error(HETEE_ERR_NOT_FOUND, "cannot open the frozen layers %s: %s", fpath, strerror(errno));
    else {
      rc = rd_frozen(ff, ctx, s, &h, fpath);
      if (!rc && fgetc(ff) != EOF) rc = hetee_error(HETEE_ERR_AUTH, "%s is not the frozen layers the checkpoint names (trailing bytes)", fpath);
      fclose(ff);
    }
  } else if (!rc && h.frozen_mode == CK_FROZEN_FILE) {
    *S.partial = 1; /* the MP's authorization reads the trained layers only */
  }
  for (int l = p->first_train; l < p->nl && !rc; l++) {
    const hetee_refine_layer *L = &p->L[l];
    rc = rd_cts(&r, ctx, S.W[l], L->F.n_w_cts, REFINE_W_SCALE);
    if (!rc) rc = rd_cts(&r, ctx, S.bias[l], (size_t)L->F.nmb, REFINE_OUT_SCALE);
    if (!rc) rc = rd_cts(&r, ctx, S.WT[l], L->has_back ? L->T.n_w_cts : 0, REFINE_W_SCALE);
    if (!rc) rc = rd_cts(&r, ctx, S.V[l], has_v(S.p, l) ? n_v(S.p, l) : 0, HETEE_REFINE_MOM_SCALE);
  }
  /* the end of the file, or the trailer of a sealed checkpoint (required
   * by the sealed reader; the plain reader reads past a whole one): nothing
   * else may follow the trained layers */
  if (!rc) {
    char mg[4];
    uint8_t uidb[16];
    uint64_t l64 = 0;
    uint8_t *b = NULL;
    size_t got = fread(mg, 1, 4, f);
    if (!blob && got == 0) {
      /* a plain checkpoint */
    } else if (got != 4 || memcmp(mg, CK_JOB_MAGIC, 4)) {
      rc = blob ? hetee_error(HETEE_ERR_FORMAT, "%s holds no enclave job state", path)
                : hetee_error(HETEE_ERR_FORMAT, "checkpoint: trailing bytes");
    } else if (fread(uidb, 16, 1, f) != 1 || fread(&l64, 8, 1, f) != 1) {
      rc = hetee_error(HETEE_ERR_TRUNCATED, "checkpoint truncated");
    } else if (l64 < 1 || l64 > ((uint64_t)64 << 20)) {
      rc = hetee_error(HETEE_ERR_LIMIT, "enclave job state of %llu bytes", (unsigned long long)l64);
    } else if (!(b = malloc((size_t)l64))) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
    } else if (fread(b, 1, (size_t)l64, f) != (size_t)l64) {
      rc = hetee_error(HETEE_ERR_TRUNCATED, "checkpoint truncated");
    }
    if (!rc && fgetc(f) != EOF) rc = hetee_error(HETEE_ERR_FORMAT, "checkpoint: trailing bytes");
    if (!rc && blob) {
      memcpy(uid, uidb, 16);
      *blob = b;
      *blen = (size_t)l64;
      b = NULL;
    }
    free(b);
  }
  fclose(f);
  if (rc) {
    free(fpath);
    hetee_refine_state_free(s);
    return rc;
  }
  if (fpath) { /* this file holds these frozen layers: later checkpoints to path need not rewrite it */
    free(S.fz->path);
    S.fz->path = fpath;
  }
  *S.epoch = h.epoch;
  *S.next = h.next;
  *S.steps = h.steps;
  *S.updates = h.updates;
  *out = s;
  return 0;
}

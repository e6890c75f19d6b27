/*
 * fuzz_refine_ckpt.c — fuzz target of the refine checkpoint reader
 * (src/hemat/refine_ckpt.c): the host's checkpoint ("HTRC", version 3: the
 * frozen layers in PATH.frozen or inline, optionally followed by the
 * enclave's sealed job state "HTRJ" | uid | u64 len | blob) and the frozen
 * layers' file ("HTRF"). The reader reads files, so each input is written to
 * a temporary directory (on /dev/shm when there is one): an "HTRF" input as
 * CK.frozen next to a valid checkpoint CK that names the valid frozen file,
 * anything else as CK next to the valid CK.frozen. Every reader runs on it:
 * hetee_refine_checkpoint_read, _read_trained (no frozen file) and
 * refine_checkpoint_read_job (the sealed form).
 *
 * Plan: under N = 2^12 parameters (level 1 = the top; ckpt_ctx) a dense
 * chain 6 -> 5 (ReLU) -> 4 (tanh) -> 3, batch 4, the last two layers
 * training (layer 0 frozen, so there is a frozen section), momentum 0.9
 * (so the momentum ciphertexts are there too). Seeds: a checkpoint with
 * PATH.frozen, the self-contained form (frozen layers inline), a sealed
 * checkpoint (a 40-byte stand-in for the enclave's blob, which the host
 * never opens), the frozen file itself.
 *
 * Accepted inputs must write back to the same bytes: the plain read with
 * hetee_refine_checkpoint_write (CK and CK.frozen) or _write_full, the
 * sealed read with the same uid and blob, a frozen file through a
 * checkpoint written elsewhere (its new .frozen file equals the input). A
 * state read without its frozen layers must refuse to be written
 * (HETEE_ERR_STATE; the self-contained form has them inline).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz/fuzz.h"
#include "fuzz/fuzz_ckks.h"
#include "hemat/refine_internal.h"
#include "hetee/refine.h"

const char fuzz_target_name[] = "refine_ckpt";
const int fuzz_prefixes_valid = 0;

static hetee_ckks_context *ctx;
static hetee_refine_plan plan;
static hetee_refine_weights w;
static char dir[256], ck[300], ckf[320], outp[300], outpf[320];
static uint8_t *good_ck, *good_fz; /* the valid checkpoint and its frozen file */
static size_t good_ck_len, good_fz_len;

static const uint8_t seed_uid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static int file_put(const char *path, const uint8_t *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  int bad = fwrite(p, 1, n, f) != n;
  bad |= fclose(f) != 0;
  return bad ? -1 : 0;
}

static uint8_t *file_get(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long l = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc(l > 0 ? (size_t)l : 1);
  if (b && l > 0 && fread(b, 1, (size_t)l, f) != (size_t)l) {
    free(b);
    b = NULL;
  }
  fclose(f);
  *n = l > 0 ? (size_t)l : 0;
  return b;
}

static int same_file(const char *path, const uint8_t *p, size_t n) {
  size_t m = 0;
  uint8_t *b = file_get(path, &m);
  int same = b && m == n && !memcmp(b, p, n);
  free(b);
  return same;
}

/* N = 2^12 as the other targets, but a top prime of 50 bits: the biases are
 * encrypted at scale 2^60 (level 1 must hold 2^80). log2(QP) = 136 bits is
 * above the 128-bit bound for N = 2^12: allowed for this format test only. */
static hetee_ckks_context *ckpt_ctx(void) { return fuzz_ckks_ctx_chain(12, 36, 50, 50, 0x1p30, 1); }

int fuzz_setup(void) {
  ctx = ckpt_ctx();
  if (!ctx) return -1;
  const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(dir, sizeof dir, "%s/hetee-fuzz-ckpt-XXXXXX", base);
  if (!mkdtemp(dir)) return -1;
  snprintf(ck, sizeof ck, "%s/ck", dir);
  snprintf(ckf, sizeof ckf, "%s/ck.frozen", dir);
  snprintf(outp, sizeof outp, "%s/out", dir);
  snprintf(outpf, sizeof outpf, "%s/out.frozen", dir);
  static const int dims[4] = {6, 5, 4, 3};
  static const int acts[3] = {HETEE_REFINE_ACT_RELU, HETEE_REFINE_ACT_TANH, HETEE_REFINE_ACT_NONE};
  memset(&w, 0, sizeof w);
  w.nl = 3;
  for (int l = 0; l < 3; l++) {
    w.k[l] = dims[l];
    w.m[l] = dims[l + 1];
    w.act[l] = acts[l];
    size_t mk = (size_t)dims[l] * (size_t)dims[l + 1];
    w.w[l] = calloc(mk, sizeof(float));
    w.b[l] = calloc((size_t)dims[l + 1], sizeof(float));
    if (!w.w[l] || !w.b[l]) return -1;
    for (size_t q = 0; q < mk; q++) w.w[l][q] = (float)((int)(q * 7 % 11) - 5) / 10.0f;
    for (int q = 0; q < dims[l + 1]; q++) w.b[l][q] = (float)(q % 3) / 10.0f;
  }
  hetee_refine_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.batch = 4;
  cfg.accumulate = 1;
  cfg.train_layers = 2;
  cfg.loss = HETEE_REFINE_LOSS_XENT;
  cfg.lr = 0.1;
  cfg.momentum = 0.9;
  cfg.seed = 7;
  if (hetee_refine_plan_build(&w, &cfg, hetee_ckks_context_n(ctx), &plan) || plan.first_train != 1) {
    fprintf(stderr, "plan: %s\n", hetee_last_error());
    return -1;
  }
  /* the valid pair every input is read against */
  hetee_ckks_secret_key *sk = NULL;
  hetee_ckks_public_key *pk = NULL;
  hetee_refine_state *s = NULL;
  int rc = hetee_ckks_keygen_secret(ctx, &sk) || hetee_ckks_keygen_public(ctx, sk, &pk) ||
           hetee_refine_state_encrypt(ctx, pk, &plan, &w, &s);
  if (!rc) {
    hetee_refine_state_set_cursor(s, 1, 8);
    rc = hetee_refine_checkpoint_write(s, ck);
  }
  hetee_refine_state_free(s);
  hetee_ckks_public_key_free(pk);
  hetee_ckks_secret_key_free(sk);
  if (rc) {
    fprintf(stderr, "the valid checkpoint: %s\n", hetee_last_error());
    return -1;
  }
  good_ck = file_get(ck, &good_ck_len);
  good_fz = file_get(ckf, &good_fz_len);
  return good_ck && good_fz ? 0 : -1;
}

void fuzz_teardown(void) {
  unlink(ck);
  unlink(ckf);
  unlink(outp);
  unlink(outpf);
  rmdir(dir);
  free(good_ck);
  free(good_fz);
  hetee_refine_weights_clear(&w);
  hetee_ckks_context_free(ctx);
}

/* An accepted frozen file: a checkpoint of the state written elsewhere
 * carries the same frozen file. */
static int frozen_one(const uint8_t *data, size_t len) {
  if (file_put(ck, good_ck, good_ck_len) || file_put(ckf, data, len)) abort();
  hetee_refine_state *s = NULL;
  int rc = hetee_refine_checkpoint_read(ctx, &plan, ck, &s);
  if (rc) {
    FUZZ_CHECK(s == NULL);
    return rc;
  }
  unlink(outpf);
  FUZZ_CHECK(hetee_refine_checkpoint_write(s, outp) == 0);
  FUZZ_CHECK(same_file(outpf, data, len));
  FUZZ_CHECK(same_file(outp, good_ck, good_ck_len));
  hetee_refine_state_free(s);
  return 0;
}

static int ckpt_one(const uint8_t *data, size_t len) {
  if (file_put(ckf, good_fz, good_fz_len) || file_put(ck, data, len)) abort();
  int accepted = 0;
  /* the plain reader (either form; a sealed trailer is read past) */
  hetee_refine_state *s = NULL;
  int rc = hetee_refine_checkpoint_read(ctx, &plan, ck, &s);
  if (rc) FUZZ_CHECK(s == NULL);
  else {
    accepted = 1;
    uint32_t e, n;
    uint64_t st;
    hetee_refine_state_cursor(s, &e, &n, &st);
    unlink(outpf);
    FUZZ_CHECK(hetee_refine_checkpoint_write(s, outp) == 0);
    int same = same_file(outp, data, len);
    if (same) FUZZ_CHECK(same_file(outpf, good_fz, good_fz_len));
    if (!same) { /* the self-contained form */
      FUZZ_CHECK(hetee_refine_checkpoint_write_full(s, outp) == 0);
      same = same_file(outp, data, len);
    }
    if (!same) { /* the sealed form: checked below with its trailer */
      uint8_t uid[16], *blob = NULL;
      size_t blen = 0;
      hetee_refine_state *s2 = NULL;
      FUZZ_CHECK(refine_checkpoint_read_job(ctx, &plan, ck, &s2, uid, &blob, &blen) == 0);
      free(blob);
      hetee_refine_state_free(s2);
    }
    hetee_refine_state_free(s);
  }
  /* the sealed form's reader */
  uint8_t uid[16], *blob = NULL;
  size_t blen = 0;
  s = NULL;
  int rj = refine_checkpoint_read_job(ctx, &plan, ck, &s, uid, &blob, &blen);
  if (rj) FUZZ_CHECK(s == NULL && blob == NULL);
  else {
    accepted = 1;
    FUZZ_CHECK(blen >= 1);
    FUZZ_CHECK(refine_checkpoint_write_job(s, outp, uid, blob, blen) == 0);
    FUZZ_CHECK(same_file(outp, data, len));
    free(blob);
    hetee_refine_state_free(s);
  }
  /* without the frozen layers (what the MP's resume authorization reads) */
  s = NULL;
  int rt = hetee_refine_checkpoint_read_trained(ctx, &plan, ck, &s);
  if (rt) FUZZ_CHECK(s == NULL);
  else {
    /* refused unless the frozen layers were inline (then read: a whole state) */
    int wr = hetee_refine_checkpoint_write(s, outp);
    FUZZ_CHECK(wr == HETEE_ERR_STATE || (wr == 0 && !rc));
    hetee_refine_state_free(s);
  }
  return accepted ? 0 : rc;
}

int fuzz_one(const uint8_t *data, size_t len) {
  if (len >= 4 && !memcmp(data, "HTRF", 4)) return frozen_one(data, len);
  return ckpt_one(data, len);
}

size_t fuzz_seeds(fuzz_buf **outs) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  fuzz_seed_add(&s, &n, good_ck, good_ck_len);
  fuzz_seed_add(&s, &n, good_fz, good_fz_len);
  hetee_refine_state *st = NULL;
  FUZZ_CHECK(file_put(ck, good_ck, good_ck_len) == 0 && file_put(ckf, good_fz, good_fz_len) == 0);
  FUZZ_CHECK(hetee_refine_checkpoint_read(ctx, &plan, ck, &st) == 0);
  size_t len = 0;
  uint8_t *b = NULL;
  FUZZ_CHECK(hetee_refine_checkpoint_write_full(st, outp) == 0);
  FUZZ_CHECK((b = file_get(outp, &len)) != NULL);
  fuzz_seed_add(&s, &n, b, len);
  free(b);
  uint8_t blob[40];
  for (size_t i = 0; i < sizeof blob; i++) blob[i] = (uint8_t)(i * 29 + 3);
  FUZZ_CHECK(refine_checkpoint_write_job(st, outp, seed_uid, blob, sizeof blob) == 0);
  FUZZ_CHECK((b = file_get(outp, &len)) != NULL);
  fuzz_seed_add(&s, &n, b, len);
  free(b);
  hetee_refine_state_free(st);
  *outs = s;
  return n;
}

/* Findings of this target (fixed in refine_ckpt.c): the plain reader took
 * bytes after the trained layers that were not a sealed trailer, and read
 * header fields it did not compare (the pad after train_layers, the k / m
 * of layers beyond nl, the sign of a zero setting), so two files read as
 * the same state. */
size_t fuzz_known_bad(fuzz_buf **outs) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  FUZZ_CHECK(good_ck_len > 400 && good_ck_len < ((size_t)1 << 30));
  uint8_t *b = malloc(good_ck_len + 1);
  FUZZ_CHECK(b != NULL);
  memcpy(b, good_ck, good_ck_len);
  b[good_ck_len] = 0;
  fuzz_seed_add(&s, &n, b, good_ck_len + 1); /* one byte appended */
  memcpy(b, good_ck, good_ck_len);
  b[60] = 1; /* the pad after train_layers (offset 56 + 4) */
  fuzz_seed_add(&s, &n, b, good_ck_len);
  memcpy(b, good_ck, good_ck_len);
  b[96 + 4 * 3] = 1; /* k[3]: the plan has 3 layers */
  fuzz_seed_add(&s, &n, b, good_ck_len);
  memcpy(b, good_ck, good_ck_len);
  b[64 + 16 + 7] = 0x80; /* weight_decay 0 -> -0 (offset 80, the sign bit) */
  fuzz_seed_add(&s, &n, b, good_ck_len);
  free(b);
  *outs = s;
  return n;
}

/*
 * cmd_demo.c — `hetee demo`: an encrypted computation end to end with the
 * CKKS layer at logN 13 (q = {60, 40, 40}, P = {60}, scale 2^40, 128-bit
 * secure): key generation, encoding + encryption, ct x ct products with
 * relinearization and rescaling (depth 2), single and hoisted rotations, an
 * encrypted dot product (rotate-and-sum) and an encrypted 16x16
 * matrix-vector product (Halevi–Shoup diagonals: hoisted rotations of the
 * vector, lazy degree-2 accumulation of 16 ct x ct products, one
 * relinearization). Every step is timed and checked against the same
 * computation in plaintext doubles; the command exits 0 only if every step
 * keeps at least its stated precision (bits = -log2 of the max error
 * relative to the value range).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "hetee/ckks.h"

#define DIM 16 /* matrix-vector dimension */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static double bits(const double *got, const double *want, size_t n) {
  double err = 0, range = 1;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(got[i] - want[i]);
    if (!(e <= err)) err = e;
    if (fabs(want[i]) > range) range = fabs(want[i]);
  }
  if (isnan(err)) return -999;
  return err == 0 ? 60 : -log2(err / range);
}

typedef struct {
  hetee_ckks_context *ctx;
  hetee_ckks_secret_key *sk;
  hetee_ckks_plaintext *pt;
  size_t slots;
  int failures;
  double *buf;
} demo;

static void row(demo *d, const char *step, double ms, double b, double min_bits) {
  int ok = b >= min_bits;
  if (!ok) d->failures++;
  if (min_bits > 0)
    printf("| %-50s | %9.2f | %8.2f | %6.1f | %-4s |\n", step, ms, b, min_bits, ok ? "ok" : "FAIL");
  else
    printf("| %-50s | %9.2f | %8s | %6s | %-4s |\n", step, ms, "-", "-", "ok");
}

/* Decrypts ct and returns the precision of its first n slots against want. */
static double check(demo *d, const hetee_ckks_ciphertext *ct, const double *want, size_t n) {
  if (hetee_ckks_decrypt(d->ctx, d->sk, ct, d->pt) || hetee_ckks_decode_real(d->ctx, d->pt, d->buf, d->slots)) {
    fprintf(stderr, "hetee demo: decryption failed: %s\n", hetee_last_error());
    return -999;
  }
  return bits(d->buf, want, n);
}

#define TRY(call)                                                                                     \
  do {                                                                                                \
    int rc_ = (call);                                                                                 \
    if (rc_) {                                                                                        \
      fprintf(stderr, "hetee demo: %s failed: %s: %s\n", #call, hetee_strerror(rc_), hetee_last_error()); \
      goto err;                                                                                       \
    }                                                                                                 \
  } while (0)

int hetee_cmd_demo(int argc, char **argv) {
  static const hetee_cli_opt opts[] = {
      {"threads", "N", 't', "OpenMP threads inside each evaluator operation (mul, relin, rescale,\n"
                            "rotations), 1..256 (default 1)"},
      {0, 0, 0, 0}};
  static const hetee_cli_cmd cmd = {
      "hetee demo", "hetee demo [--threads N]",
      "Runs an encrypted CKKS computation end to end at logN 13 (q = {60, 40, 40}, P = {60}, scale 2^40):\n"
      "keys, encryption, ct x ct products with relinearization and rescaling, single and hoisted rotations,\n"
      "an encrypted dot product and a 16x16 encrypted matrix-vector product. Prints each step's time and\n"
      "precision (bits) against plaintext arithmetic; exits 0 only if every step meets its stated minimum.",
      opts};
  unsigned threads = 1;
  hetee_cli_parser p;
  hetee_cli_parser_init(&p, &cmd, argc, argv);
  for (int k; (k = hetee_cli_next(&p)) != -1;) {
    switch (k) {
    case 't': if (hetee_cli_uint(&cmd, "--threads", p.arg, 256, &threads)) return 2; break;
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  if (p.optind < argc) return hetee_cli_error(&cmd, "unexpected argument '%s'", argv[p.optind]);
  demo d;
  memset(&d, 0, sizeof d);
  hetee_ckks_public_key *pk = NULL;
  hetee_ckks_relin_key *rk = NULL;
  hetee_ckks_galois_keys *gk = NULL;
  hetee_ckks_evaluator *ev = NULL;
  hetee_ckks_ciphertext *cx = NULL, *cy = NULL, *t1 = NULL, *t2 = NULL, *acc = NULL, *rot[DIM] = {0};
  hetee_ckks_ciphertext *diag[DIM] = {0};
  double *x = NULL, *y = NULL, *w = NULL, *mat = NULL;
  int exit_code = 1;
  double t0;

  hetee_ckks_literal lit;
  hetee_ckks_literal_default(&lit);
  const double scale = 0x1p40;

  printf("hetee demo: CKKS logN 13, q = {60, 40, 40} + P {60} (200 of 218 bits allowed at 128-bit security),\n"
         "scale 2^40, %u thread(s). Precision = -log2(max error / value range) vs plaintext doubles.\n\n",
         threads);
  printf("| %-50s | %9s | %8s | %6s | %-4s |\n", "step", "time ms", "bits", "min", "");
  printf("|%.52s|%.11s|%.10s|%.8s|%.6s|\n", "----------------------------------------------------", "-----------",
         "----------", "--------", "------");

  t0 = now_ms();
  TRY(hetee_ckks_context_new(&lit, &d.ctx));
  TRY(hetee_ckks_evaluator_new(d.ctx, (int)threads, &ev));
  row(&d, "context + evaluator (tables, constants, scratch)", now_ms() - t0, 0, 0);
  d.slots = hetee_ckks_context_slots(d.ctx);
  size_t n = d.slots;
  int level = hetee_ckks_context_max_level(d.ctx);

  /* rotation steps: 1..DIM-1 (matrix diagonals) and powers of two (sums) */
  int steps[DIM + 16];
  size_t nsteps = 0;
  for (int s = 1; s < DIM; s++) steps[nsteps++] = s;
  for (size_t s = DIM; s < n; s <<= 1) steps[nsteps++] = (int)s;
  t0 = now_ms();
  TRY(hetee_ckks_keygen_secret(d.ctx, &d.sk));
  TRY(hetee_ckks_keygen_public(d.ctx, d.sk, &pk));
  TRY(hetee_ckks_keygen_relin(d.ctx, d.sk, &rk));
  TRY(hetee_ckks_keygen_galois(d.ctx, d.sk, steps, nsteps, 0, &gk));
  char what[96];
  snprintf(what, sizeof what, "keygen: secret, public, relin, %zu Galois", nsteps);
  row(&d, what, now_ms() - t0, 0, 0);

  x = malloc(n * sizeof *x);
  y = malloc(n * sizeof *y);
  w = malloc(n * sizeof *w);
  d.buf = malloc(n * sizeof *d.buf);
  mat = malloc(DIM * DIM * sizeof *mat);
  if (!x || !y || !w || !d.buf || !mat) goto err;
  uint64_t seed = 0x2545F4914F6CDD1DULL;
  for (size_t i = 0; i < n; i++) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    x[i] = (double)(seed >> 11) * 0x1p-52 - 1.0;
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    y[i] = (double)(seed >> 11) * 0x1p-52 - 1.0;
  }
  TRY(hetee_ckks_plaintext_new(d.ctx, &d.pt));
  TRY(hetee_ckks_ciphertext_new(d.ctx, &cx));
  TRY(hetee_ckks_ciphertext_new(d.ctx, &cy));
  TRY(hetee_ckks_ciphertext_new(d.ctx, &t1));
  TRY(hetee_ckks_ciphertext_new(d.ctx, &t2));
  TRY(hetee_ckks_ciphertext_new(d.ctx, &acc));
  for (int i = 0; i < DIM; i++) {
    TRY(hetee_ckks_ciphertext_new(d.ctx, &rot[i]));
    TRY(hetee_ckks_ciphertext_new(d.ctx, &diag[i]));
  }

  /* 1. encode + encrypt (public key) */
  t0 = now_ms();
  TRY(hetee_ckks_encode_real(d.ctx, x, n, scale, level, d.pt));
  TRY(hetee_ckks_encrypt_pk(d.ctx, pk, d.pt, cx));
  double ms = now_ms() - t0;
  row(&d, "encode + encrypt_pk x (4096 slots)", ms, check(&d, cx, x, n), 25);
  t0 = now_ms();
  TRY(hetee_ckks_encode_real(d.ctx, y, n, scale, level, d.pt));
  TRY(hetee_ckks_encrypt_sk(d.ctx, d.sk, d.pt, cy));
  ms = now_ms() - t0;
  row(&d, "encode + encrypt_sk y (seeded)", ms, check(&d, cy, y, n), 27);

  /* 2. x * y, relinearize, rescale */
  t0 = now_ms();
  TRY(hetee_ckks_evaluator_mul_relin(ev, rk, cx, cy, t1));
  TRY(hetee_ckks_evaluator_rescale(ev, t1, t1));
  ms = now_ms() - t0;
  for (size_t i = 0; i < n; i++) w[i] = x[i] * y[i];
  row(&d, "x * y (mul + relin + rescale)", ms, check(&d, t1, w, n), 22);

  /* 3. depth 2: (x * y) * x */
  t0 = now_ms();
  TRY(hetee_ckks_eval_drop_level(d.ctx, cx, level - 1, t2));
  TRY(hetee_ckks_evaluator_mul_relin(ev, rk, t1, t2, t1));
  TRY(hetee_ckks_evaluator_rescale(ev, t1, t1));
  ms = now_ms() - t0;
  for (size_t i = 0; i < n; i++) w[i] = x[i] * y[i] * x[i];
  row(&d, "(x * y) * x (depth 2, level 0)", ms, check(&d, t1, w, n), 20);

  /* 4. a single rotation */
  t0 = now_ms();
  TRY(hetee_ckks_evaluator_rotate(ev, gk, cx, 3, t1));
  ms = now_ms() - t0;
  for (size_t i = 0; i < n; i++) w[i] = x[(i + 3) % n];
  row(&d, "rotate x by 3", ms, check(&d, t1, w, n), 22);

  /* 5. hoisted rotations by 1..8 */
  {
    int hs[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    t0 = now_ms();
    TRY(hetee_ckks_evaluator_rotate_hoisted(ev, gk, cx, hs, 8, rot));
    ms = now_ms() - t0;
    double worst = 99;
    for (int k = 0; k < 8; k++) {
      for (size_t i = 0; i < n; i++) w[i] = x[(i + (size_t)hs[k]) % n];
      double bk = check(&d, rot[k], w, n);
      if (bk < worst) worst = bk;
    }
    row(&d, "8 hoisted rotations of x (1..8), worst", ms, worst, 22);
  }

  /* 6. dot product x . y over all slots: multiply, then rotate-and-sum */
  t0 = now_ms();
  TRY(hetee_ckks_evaluator_mul_relin(ev, rk, cx, cy, t1));
  TRY(hetee_ckks_evaluator_rescale(ev, t1, t1));
  for (size_t s = 1; s < n; s <<= 1) {
    TRY(hetee_ckks_evaluator_rotate(ev, gk, t1, (int)s, t2));
    TRY(hetee_ckks_eval_add(d.ctx, t1, t2, t1));
  }
  ms = now_ms() - t0;
  {
    long double dot = 0;
    for (size_t i = 0; i < n; i++) dot += (long double)x[i] * y[i];
    for (size_t i = 0; i < n; i++) w[i] = (double)dot;
    snprintf(what, sizeof what, "dot product x . y (%zu terms, %d rotations)", n, (int)log2((double)n));
    row(&d, what, ms, check(&d, t1, w, n), 18);
  }

  /* 7. 16x16 matrix W (encrypted diagonals) times encrypted vector v:
   * v replicated with period 16 in the slots; y = sum_i diag_i * rot(v, i),
   * diag_i[j] = W[j mod 16][(j + i) mod 16]. */
  {
    for (int r = 0; r < DIM * DIM; r++) {
      seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
      mat[r] = (double)(seed >> 11) * 0x1p-52 - 1.0;
    }
    for (size_t i = 0; i < n; i++) w[i] = x[i % DIM];
    TRY(hetee_ckks_encode_real(d.ctx, w, n, scale, level, d.pt));
    TRY(hetee_ckks_encrypt_pk(d.ctx, pk, d.pt, cx)); /* cx <- replicated v */
    for (int k = 0; k < DIM; k++) {
      for (size_t j = 0; j < n; j++) w[j] = mat[(j % DIM) * DIM + (j + (size_t)k) % DIM];
      TRY(hetee_ckks_encode_real(d.ctx, w, n, scale, level, d.pt));
      TRY(hetee_ckks_encrypt_sk(d.ctx, d.sk, d.pt, diag[k]));
    }
    int rs[DIM - 1];
    for (int k = 1; k < DIM; k++) rs[k - 1] = k;
    hetee_ckks_ciphertext_free(acc);
    acc = NULL;
    TRY(hetee_ckks_ciphertext_new(d.ctx, &acc));
    t0 = now_ms();
    TRY(hetee_ckks_evaluator_rotate_hoisted(ev, gk, cx, rs, DIM - 1, rot + 1));
    TRY(hetee_ckks_evaluator_mul_acc(ev, diag[0], cx, acc));
    for (int k = 1; k < DIM; k++) TRY(hetee_ckks_evaluator_mul_acc(ev, diag[k], rot[k], acc));
    TRY(hetee_ckks_evaluator_relin(ev, rk, acc, acc));
    TRY(hetee_ckks_evaluator_rescale(ev, acc, acc));
    ms = now_ms() - t0;
    for (size_t j = 0; j < n; j++) {
      double s = 0;
      for (int c = 0; c < DIM; c++) s += mat[(j % DIM) * DIM + (size_t)c] * x[c];
      w[j] = s;
    }
    row(&d, "16x16 matvec: 15 hoisted rot, 16 mul_acc, 1 relin", ms, check(&d, acc, w, n), 20);
  }

  /* 8. decrypt + decode (the final read-out) */
  t0 = now_ms();
  TRY(hetee_ckks_decrypt(d.ctx, d.sk, acc, d.pt));
  TRY(hetee_ckks_decode_real(d.ctx, d.pt, d.buf, n));
  ms = now_ms() - t0;
  row(&d, "decrypt + decode", ms, bits(d.buf, w, n), 20);

  printf("\n%s: %d step(s) below their minimum precision\n", d.failures ? "FAILED" : "OK", d.failures);
  exit_code = d.failures ? 1 : 0;
err:
  for (int i = 0; i < DIM; i++) {
    hetee_ckks_ciphertext_free(rot[i]);
    hetee_ckks_ciphertext_free(diag[i]);
  }
  hetee_ckks_ciphertext_free(cx);
  hetee_ckks_ciphertext_free(cy);
  hetee_ckks_ciphertext_free(t1);
  hetee_ckks_ciphertext_free(t2);
  hetee_ckks_ciphertext_free(acc);
  hetee_ckks_plaintext_free(d.pt);
  hetee_ckks_evaluator_free(ev);
  hetee_ckks_galois_keys_free(gk);
  hetee_ckks_relin_key_free(rk);
  hetee_ckks_public_key_free(pk);
  hetee_ckks_secret_key_free(d.sk);
  hetee_ckks_context_free(d.ctx);
  free(x);
  free(y);
  free(w);
  free(mat);
  free(d.buf);
  return exit_code;
}

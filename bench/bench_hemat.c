/*
 * bench_hemat.c — `hetee-bench hemat [--runs R] [--batch B] [--costs]`:
 *
 * 1. The unit costs of the planner's model (hetee_hemat_costs), logN 13,
 *    q {60, 40, 40}, P {60}, level 1, single thread, median of >= 200 runs:
 *      t_product      one hetee_ckks_eval_mul_acc into a degree-2 accumulator
 *      t_enclave_enc  encrypt_sk_coeffs_bounded (N values; the one-step
 *                     encode_coeffs + encrypt_sk the enclave uses)
 *      t_enclave_dec  decrypt_coeffs of N/8 coefficients of a degree-2
 *                     product (the one-step decrypt + decode_coeffs_scaled)
 *      t_client_enc   encode_coeffs (N values) + encrypt_pk
 *    with the two-step forms (enc_sk, dec+decode) and the enclave's steps one
 *    by one (encrypt_sk, degree-2 decrypt, decode of N/8 coefficients, load
 *    / save of a degree-2 and of a seeded ciphertext, load_into / save_to),
 *    what a bound run pays per output and per fresh input (bound_costs:
 *    the host's bias + rescaled serialization, the enclave's in-place
 *    decryption, in full and as one coset, at two read counts each; the
 *    host's load of a seeded input; not in the planner's model,
 *    docs/hemat.md "What a bound run's outputs cost"), and the time
 *    hetee_hemat_choose takes for dense 784->128 and conv 6->16 5x5 on
 *    12x12 (--costs prints only these).
 * 2. hetee_hemat_conv_eval on the E2DM layers (conv 1->5 7x7 stride 3 on
 *    28x28, dense 320->64, dense 64->10) at batch B (default 64), packed
 *    as hetee_hemat_choose picks with the default costs, with 1 and 2
 *    threads: median of R runs (default 20) and the layout's counts. Each
 *    layer is first decrypted and compared with the plaintext twin; the
 *    bench fails below 20 bits of precision.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hetee/hemat.h"
#include "bench_util.h"
#include "ckks/ckks_arena.h"

#define W_SCALE 0x1p34
#define X_SCALE 0x1p26
#define Y_SCALE 0x1p60
#define LEVEL 1

static uint64_t g_rng = 0x243F6A8885A308D3ULL;
static double unif(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return (double)(g_rng >> 11) * 0x1p-52 * 2.0 - 1.0;
}

typedef struct {
  hetee_ckks_context *ctx;
  hetee_ckks_secret_key *sk;
  hetee_ckks_public_key *pk;
  hetee_ckks_plaintext *pt;
  size_t n;
} env;

#define CHECK(call)                                                                                 \
  do {                                                                                              \
    int rc_ = (call);                                                                               \
    if (rc_) {                                                                                      \
      fprintf(stderr, "hetee-bench hemat: %s: %s: %s\n", #call, hetee_strerror(rc_), hetee_last_error()); \
      goto err;                                                                                     \
    }                                                                                               \
  } while (0)

/* Part 1: unit costs (seconds in *c), then the enclave's steps one by one
 * (what a refresh does per ciphertext: load a degree-2 input, decrypt,
 * decode N/8 coefficients; encode N coefficients, encrypt, save seeded). */
enum { OP_MUL_ACC, OP_ENC_SK, OP_DEC, OP_ENC_PK, OP_ENCODE, OP_ENCRYPT_SK, OP_DECRYPT2, OP_DECODE, OP_LOAD2, OP_SAVE2,
       OP_LOAD_SEEDED, OP_SAVE_SEEDED, OP_ENC_FUSED, OP_DEC_FUSED, OP_LOAD2_INTO, OP_SAVE_TO, N_OPS };

static int unit_costs(env *e, int runs, hetee_hemat_costs *c) {
  int ret = 1;
  size_t n = e->n, nidx = n / 8;
  double *v = malloc(n * sizeof *v), *dec = malloc(nidx * sizeof *dec), *tv = malloc((size_t)runs * sizeof *tv);
  uint32_t *idx = malloc(nidx * sizeof *idx);
  hetee_ckks_ciphertext *a = NULL, *b = NULL, *acc = NULL, *o = NULL, *ld = NULL;
  hetee_ckks_plaintext *pd = NULL;
  uint8_t *b2 = NULL, *bs = NULL, *tmp = NULL, *sbuf = NULL;
  size_t l2 = 0, ls = 0, tl = 0;
  if (!v || !dec || !tv || !idx) goto err;
  for (size_t i = 0; i < n; i++) v[i] = unif();
  for (size_t i = 0; i < nidx; i++) idx[i] = (uint32_t)(i * 8 + 3);
  CHECK(hetee_ckks_ciphertext_new(e->ctx, &a));
  CHECK(hetee_ckks_ciphertext_new(e->ctx, &b));
  CHECK(hetee_ckks_ciphertext_new(e->ctx, &acc));
  CHECK(hetee_ckks_ciphertext_new(e->ctx, &o));
  CHECK(hetee_ckks_plaintext_new(e->ctx, &pd));
  CHECK(hetee_ckks_encode_coeffs(e->ctx, v, n, X_SCALE, LEVEL, e->pt));
  CHECK(hetee_ckks_encrypt_sk(e->ctx, e->sk, e->pt, a));
  CHECK(hetee_ckks_encode_coeffs(e->ctx, v, n, W_SCALE, LEVEL, e->pt));
  CHECK(hetee_ckks_encrypt_pk(e->ctx, e->pk, e->pt, b));
  CHECK(hetee_ckks_eval_mul(e->ctx, a, b, acc));
  CHECK(hetee_ckks_ciphertext_save(e->ctx, acc, &b2, &l2));
  CHECK(hetee_ckks_ciphertext_save(e->ctx, a, &bs, &ls));
  CHECK(hetee_ckks_encode_coeffs(e->ctx, v, n, X_SCALE, LEVEL, e->pt));
  const char *names[N_OPS] = {"mul_acc",     "enc_sk",      "dec+decode", "enc_pk",      "encode",
                              "encrypt_sk",  "decrypt2",    "decode/8",   "load deg2",   "save deg2",
                              "load seeded", "save seeded", "enc_sk_coeffs", "dec_coeffs/8", "load_into deg2",
                              "save_to seeded"};
  sbuf = malloc(ls);
  if (!sbuf) goto err;
  double med[N_OPS];
  for (int op = 0; op < N_OPS; op++) {
    if (op == OP_ENCRYPT_SK) printf("  enclave steps (level 1; deg2 = degree-2 product, seeded = fresh sk):\n");
    if (op == OP_ENC_FUSED)
      printf("  one-step paths the enclave uses (encrypt_sk_coeffs_bounded = encode + encrypt_sk,\n"
             "  decrypt_coeffs = decrypt2 + decode/8, into an existing object / buffer):\n");
    for (int r = -5; r < runs; r++) {
      double t0 = bench_now_us();
      switch (op) {
        case OP_MUL_ACC: CHECK(hetee_ckks_eval_mul_acc(e->ctx, a, b, acc)); break;
        case OP_ENC_SK:
          CHECK(hetee_ckks_encode_coeffs(e->ctx, v, n, X_SCALE, LEVEL, e->pt));
          CHECK(hetee_ckks_encrypt_sk(e->ctx, e->sk, e->pt, o));
          break;
        case OP_DEC:
          CHECK(hetee_ckks_decrypt(e->ctx, e->sk, acc, pd));
          CHECK(hetee_ckks_decode_coeffs_scaled(e->ctx, pd, Y_SCALE, idx, nidx, dec));
          break;
        case OP_ENC_PK:
          CHECK(hetee_ckks_encode_coeffs(e->ctx, v, n, W_SCALE, LEVEL, pd));
          CHECK(hetee_ckks_encrypt_pk(e->ctx, e->pk, pd, o));
          break;
        case OP_ENCODE: CHECK(hetee_ckks_encode_coeffs(e->ctx, v, n, X_SCALE, LEVEL, pd)); break;
        case OP_ENCRYPT_SK: CHECK(hetee_ckks_encrypt_sk(e->ctx, e->sk, e->pt, o)); break;
        case OP_DECRYPT2: CHECK(hetee_ckks_decrypt(e->ctx, e->sk, acc, pd)); break;
        case OP_DECODE: CHECK(hetee_ckks_decode_coeffs_scaled(e->ctx, pd, Y_SCALE, idx, nidx, dec)); break;
        case OP_LOAD2:
        case OP_LOAD_SEEDED:
          CHECK(hetee_ckks_ciphertext_load(e->ctx, op == OP_LOAD2 ? b2 : bs, op == OP_LOAD2 ? l2 : ls, &ld));
          hetee_ckks_ciphertext_free(ld);
          ld = NULL;
          break;
        case OP_ENC_FUSED:
          /* the bound the enclave encodes at, level 1 and scale 2^26:
           * 2^60 / scale (refresh.c, encode_bound), the one-word path */
          CHECK(hetee_ckks_encrypt_sk_coeffs_bounded(e->ctx, e->sk, v, n, X_SCALE, LEVEL, 0x1p60 / X_SCALE, o));
          break;
        case OP_DEC_FUSED: CHECK(hetee_ckks_decrypt_coeffs(e->ctx, e->sk, acc, Y_SCALE, idx, nidx, dec)); break;
        case OP_LOAD2_INTO: CHECK(hetee_ckks_ciphertext_load_into(e->ctx, b2, l2, b)); break;
        case OP_SAVE_TO: CHECK(hetee_ckks_ciphertext_save_to(e->ctx, a, sbuf, ls, &tl)); break;
        case OP_SAVE2:
        case OP_SAVE_SEEDED:
          CHECK(hetee_ckks_ciphertext_save(e->ctx, op == OP_SAVE2 ? acc : a, &tmp, &tl));
          free(tmp);
          tmp = NULL;
          break;
      }
      if (r >= 0) tv[r] = bench_now_us() - t0;
    }
    med[op] = bench_median(tv, runs);
    printf("  %-12s %9.1f us  (min %.1f, %d runs)\n", names[op], med[op], tv[0], runs);
  }
  /* the enclave's costs are those of the paths it takes (refresh.c) */
  c->t_product = med[OP_MUL_ACC] * 1e-6;
  c->t_enclave_enc = med[OP_ENC_FUSED] * 1e-6;
  c->t_enclave_dec = med[OP_DEC_FUSED] * 1e-6;
  c->t_client_enc = med[OP_ENC_PK] * 1e-6;
  printf("  costs: t_product %.3g  t_enclave_enc %.3g  t_enclave_dec %.3g  t_client_enc %.3g  (seconds)\n",
         c->t_product, c->t_enclave_enc, c->t_enclave_dec, c->t_client_enc);
  ret = 0;
err:
  hetee_ckks_ciphertext_free(a);
  hetee_ckks_ciphertext_free(b);
  hetee_ckks_ciphertext_free(acc);
  hetee_ckks_ciphertext_free(o);
  hetee_ckks_ciphertext_free(ld);
  hetee_ckks_plaintext_free(pd);
  free(b2);
  free(bs);
  free(sbuf);
  free(tmp);
  free(v);
  free(dec);
  free(tv);
  free(idx);
  return ret;
}

/* The engine's bound runs (docs/hemat.md, "What a bound run's outputs
 * cost"; not in the planner's model, which prices an output by
 * t_enclave_dec alone), per output
 * ciphertext: the host adds the bias (degree 1) to the degree-2 product and
 * serializes it rescaled to level 0 with c0 only at the n coefficients the
 * enclave reads (ckks_ciphertext_save_c0_at_rescaled[_cs]); the enclave
 * parses that form in place and decrypts those n coefficients
 * (ckks_ciphertext_view + ckks_decrypt_coeffs_view), in full or as one
 * coset r + d t (n = N/d, every coefficient of it read, the key's products
 * made beforehand as at registration); per fresh input the enclave made,
 * the host loads the seeded ciphertext. Each cost is a + b n, from two
 * read counts per path: N/8 and N/2 coefficients in full (sets no coset
 * of d >= 2 holds), the cosets of d = 8 and d = 64. */
static int bound_costs(env *e, int runs) {
  int ret = 1;
  size_t N = e->n;
  const size_t nf[2] = {N / 8, N / 2}, dc[2] = {8, 64};
  double *v = malloc(N * sizeof *v), *dec = malloc(N * sizeof *dec), *tv = malloc((size_t)runs * sizeof *tv);
  uint32_t *ix[4] = {0};
  uint8_t *wb[4] = {0};
  size_t wl[4] = {0}, nn[4] = {0}, cap = 0, len = 0;
  ckks_coset *cs[2] = {0};
  hetee_ckks_ciphertext *a = NULL, *b = NULL, *acc = NULL, *bias = NULL, *o = NULL;
  uint8_t *seeded = NULL;
  size_t lseeded = 0;
  if (!v || !dec || !tv) goto err;
  for (size_t i = 0; i < N; i++) v[i] = unif();
  CHECK(hetee_ckks_ciphertext_new(e->ctx, &a));
  CHECK(hetee_ckks_ciphertext_new(e->ctx, &b));
  CHECK(hetee_ckks_ciphertext_new(e->ctx, &acc));
  CHECK(hetee_ckks_ciphertext_new(e->ctx, &bias));
  CHECK(hetee_ckks_ciphertext_new(e->ctx, &o));
  CHECK(hetee_ckks_encode_coeffs(e->ctx, v, N, X_SCALE, LEVEL, e->pt));
  CHECK(hetee_ckks_encrypt_sk(e->ctx, e->sk, e->pt, a));
  CHECK(hetee_ckks_ciphertext_save(e->ctx, a, &seeded, &lseeded));
  CHECK(hetee_ckks_encode_coeffs(e->ctx, v, N, W_SCALE, LEVEL, e->pt));
  CHECK(hetee_ckks_encrypt_pk(e->ctx, e->pk, e->pt, b));
  CHECK(hetee_ckks_eval_mul(e->ctx, a, b, acc));
  CHECK(hetee_ckks_encode_coeffs(e->ctx, v, N, X_SCALE * W_SCALE, LEVEL, e->pt));
  CHECK(hetee_ckks_encrypt_pk(e->ctx, e->pk, e->pt, bias));
  CHECK(ckks_ciphertext_c0_at_size(e->ctx, acc, N / 2, &cap));
  for (int k = 0; k < 4; k++) {
    nn[k] = k < 2 ? nf[k] : N / dc[k - 2];
    if (!(ix[k] = malloc(nn[k] * sizeof *ix[k])) || !(wb[k] = malloc(cap))) goto err;
    for (size_t i = 0; i < nn[k]; i++)
      ix[k][i] = k == 0   ? (uint32_t)(i * 8 + (i & 1 ? 3 : 4))     /* N/8, both parities */
                 : k == 1 ? (uint32_t)((i / 2) * 4 + (i & 1))      /* N/2: k mod 4 in {0, 1} */
                          : (uint32_t)(3 + i * dc[k - 2]);          /* the coset 3 + d t */
    if (k >= 2) {
      int logd = k == 2 ? 3 : 6;
      CHECK(ckks_coset_new(e->ctx, logd, 3, &cs[k - 2]));
      CHECK(ckks_coset_key(e->ctx, cs[k - 2], e->sk));
      CHECK(ckks_ciphertext_save_c0_at_rescaled_cs(e->ctx, acc, cs[k - 2], ix[k], nn[k], wb[k], cap, &wl[k]));
    } else {
      CHECK(ckks_ciphertext_save_c0_at_rescaled(e->ctx, acc, ix[k], nn[k], wb[k], cap, &wl[k]));
    }
  }
  double out[4], dc_us[4], in_us;
  printf("  bound runs (per output: bias + rescaled serialization on the host, in-place decryption in the\n"
         "  enclave, of n read coefficients; per fresh input: the host's load of the seeded ciphertext):\n");
  for (int k = 0; k < 4; k++) {
    for (int side = 0; side < 2; side++) {
      for (int r = -5; r < runs; r++) {
        double t0 = bench_now_us();
        if (side == 0) {
          CHECK(hetee_ckks_eval_add(e->ctx, acc, bias, o));
          if (k >= 2) CHECK(ckks_ciphertext_save_c0_at_rescaled_cs(e->ctx, o, cs[k - 2], ix[k], nn[k], wb[k], cap, &len));
          else CHECK(ckks_ciphertext_save_c0_at_rescaled(e->ctx, o, ix[k], nn[k], wb[k], cap, &len));
        } else {
          ckks_ct_view cv;
          CHECK(ckks_ciphertext_view(e->ctx, wb[k], wl[k], &cv));
          CHECK(ckks_decrypt_coeffs_view(e->ctx, e->sk, &cv, cv.scale, k >= 2 ? cs[k - 2] : NULL, ix[k], nn[k], dec));
        }
        if (r >= 0) tv[r] = bench_now_us() - t0;
      }
      (side == 0 ? out : dc_us)[k] = bench_median(tv, runs);
    }
    printf("  %-7s n = %4zu  host out %6.1f us  enclave dec %6.1f us\n", k < 2 ? "full" : k == 2 ? "coset8" : "coset64",
           nn[k], out[k], dc_us[k]);
  }
  for (int r = -5; r < runs; r++) {
    double t0 = bench_now_us();
    CHECK(hetee_ckks_ciphertext_load_into(e->ctx, seeded, lseeded, o));
    if (r >= 0) tv[r] = bench_now_us() - t0;
  }
  in_us = bench_median(tv, runs);
  printf("  host in (load seeded) %.1f us\n", in_us);
  /* a + b n through the two points of each path (b >= 0) */
  double bf = (dc_us[1] - dc_us[0]) / (double)(nn[1] - nn[0]), bc = (dc_us[2] - dc_us[3]) / (double)(nn[2] - nn[3]);
  double hf = (out[1] - out[0]) / (double)(nn[1] - nn[0]), hc = (out[2] - out[3]) / (double)(nn[2] - nn[3]);
  if (bf < 0) bf = 0;
  if (bc < 0) bc = 0;
  if (hf < 0) hf = 0;
  if (hc < 0) hc = 0;
  printf("  fitted (a + b n, us): enclave dec %.1f + %.4f n (full), %.1f + %.4f n (coset); host out %.1f + %.4f n "
         "(full), %.1f + %.4f n (coset)\n",
         dc_us[0] - bf * (double)nn[0], bf, dc_us[3] - bc * (double)nn[3], bc, out[0] - hf * (double)nn[0], hf,
         out[3] - hc * (double)nn[3], hc);
  ret = 0;
err:
  for (int k = 0; k < 4; k++) free(ix[k]), free(wb[k]);
  for (int k = 0; k < 2; k++) ckks_coset_free(cs[k]);
  hetee_ckks_ciphertext_free(a);
  hetee_ckks_ciphertext_free(b);
  hetee_ckks_ciphertext_free(acc);
  hetee_ckks_ciphertext_free(bias);
  hetee_ckks_ciphertext_free(o);
  free(seeded);
  free(v);
  free(dec);
  free(tv);
  return ret;
}

static hetee_ckks_ciphertext **cts_new(const hetee_ckks_context *ctx, size_t n) {
  hetee_ckks_ciphertext **v = calloc(n ? n : 1, sizeof *v);
  for (size_t i = 0; v && i < n; i++)
    if (hetee_ckks_ciphertext_new(ctx, &v[i])) return v; /* caller frees; NULL entries stop conv_eval */
  return v;
}
static void cts_free(hetee_ckks_ciphertext **v, size_t n) {
  for (size_t i = 0; v && i < n; i++) hetee_ckks_ciphertext_free(v[i]);
  free(v);
}

/* Part 2: one layer. */
static int bench_layer(env *e, const char *name, const hetee_hemat_shape *s, uint32_t batch, int runs) {
  int ret = 1;
  size_t n = e->n;
  hetee_hemat_pack p;
  hetee_hemat_layout L;
  double predicted;
  float *w = NULL, *bias = NULL, *x = NULL;
  double *y = NULL, *poly = NULL, *tv = NULL;
  hetee_ckks_ciphertext **in = NULL, **wc = NULL, **bc = NULL, **out = NULL;
  memset(&L, 0, sizeof L);
  CHECK(hetee_hemat_choose(s, batch, n, 0, NULL, &p, &predicted));
  CHECK(hetee_hemat_layout_init(s, &p, batch, n, &L));
  size_t nw = (size_t)s->co * s->c * s->kh * s->kw, nx = (size_t)batch * s->c * s->h * s->w,
         ny = (size_t)batch * s->co * L.oh * L.ow;
  w = malloc(nw * sizeof *w);
  bias = malloc((size_t)s->co * sizeof *bias);
  x = malloc(nx * sizeof *x);
  y = malloc(ny * sizeof *y);
  poly = malloc(n * sizeof *poly);
  tv = malloc((size_t)runs * sizeof *tv);
  in = cts_new(e->ctx, L.n_in_cts);
  wc = cts_new(e->ctx, L.n_w_cts);
  bc = cts_new(e->ctx, (size_t)L.nmb);
  out = cts_new(e->ctx, L.n_out_cts);
  if (!w || !bias || !x || !y || !poly || !tv || !in || !wc || !bc || !out) goto err;
  for (size_t i = 0; i < nw; i++) w[i] = (float)(unif() / sqrt((double)s->c * s->kh * s->kw));
  for (int i = 0; i < s->co; i++) bias[i] = (float)unif();
  for (size_t i = 0; i < nx; i++) x[i] = (float)unif();
  CHECK(hetee_hemat_conv_twin(&L, w, bias, x, y));
  for (int mbk = 0; mbk < L.nmb; mbk++) {
    for (int cbk = 0; cbk < L.ncb; cbk++) {
      CHECK(hetee_hemat_weight_coeffs(&L, w, mbk, cbk, poly));
      CHECK(hetee_ckks_encode_coeffs(e->ctx, poly, n, W_SCALE, LEVEL, e->pt));
      CHECK(hetee_ckks_encrypt_pk(e->ctx, e->pk, e->pt, wc[(size_t)mbk * L.ncb + cbk]));
    }
    CHECK(hetee_hemat_bias_coeffs(&L, bias, mbk, poly));
    CHECK(hetee_ckks_encode_coeffs(e->ctx, poly, n, Y_SCALE, LEVEL, e->pt));
    CHECK(hetee_ckks_encrypt_pk(e->ctx, e->pk, e->pt, bc[mbk]));
  }
  for (size_t ct = 0; ct < L.n_in_cts; ct++) {
    memset(poly, 0, n * sizeof *poly);
    for (uint32_t b = 0; b < batch; b++)
      for (int c = 0; c < s->c; c++)
        for (int yy = 0; yy < s->h; yy++)
          for (int xx = 0; xx < s->w; xx++) {
            uint64_t q = hetee_hemat_in_pos(&L, b, c, yy, xx);
            if (q / n == ct) poly[q % n] = x[(((size_t)b * s->c + c) * s->h + yy) * s->w + xx];
          }
    CHECK(hetee_ckks_encode_coeffs(e->ctx, poly, n, X_SCALE, LEVEL, e->pt));
    CHECK(hetee_ckks_encrypt_sk(e->ctx, e->sk, e->pt, in[ct]));
  }
  const hetee_ckks_ciphertext *const *cin = (const hetee_ckks_ciphertext *const *)in;
  const hetee_ckks_ciphertext *const *cw = (const hetee_ckks_ciphertext *const *)wc;
  const hetee_ckks_ciphertext *const *cbias = (const hetee_ckks_ciphertext *const *)bc;
  /* precision check: every output against the twin */
  CHECK(hetee_hemat_conv_eval(e->ctx, &L, cin, cw, cbias, 1, out));
  double err = 0, range = 1;
  for (size_t ct = 0; ct < L.n_out_cts; ct++) {
    CHECK(hetee_ckks_decrypt(e->ctx, e->sk, out[ct], e->pt));
    for (uint32_t b = 0; b < batch; b++)
      for (int o = 0; o < s->co; o++)
        for (int oy = 0; oy < L.oh; oy++)
          for (int ox = 0; ox < L.ow; ox++) {
            uint64_t q = hetee_hemat_out_pos(&L, b, o, oy, ox);
            if (q / n != ct) continue;
            uint32_t k = (uint32_t)(q % n);
            double got;
            CHECK(hetee_ckks_decode_coeffs_scaled(e->ctx, e->pt, Y_SCALE, &k, 1, &got));
            double want = y[(((size_t)b * s->co + o) * L.oh + oy) * L.ow + ox];
            if (fabs(got - want) > err) err = fabs(got - want);
            if (fabs(want) > range) range = fabs(want);
          }
  }
  double bits = err > 0 ? -log2(err / range) : 60;
  printf("%s, batch %u: cb=%d mb=%d nimg=%d | %zu products, %zu in / %zu weight / %zu out cts | "
         "predicted %.1f ms weighted | %.1f bits\n",
         name, batch, p.cb, p.mb, p.nimg, L.n_products, L.n_in_cts, L.n_w_cts, L.n_out_cts, predicted * 1e3, bits);
  if (!(bits >= 20)) {
    fprintf(stderr, "hetee-bench hemat: %s: precision %.1f bits < 20\n", name, bits);
    goto err;
  }
  for (int threads = 1; threads <= 2; threads++) {
    for (int r = -2; r < runs; r++) {
      double t0 = bench_now_us();
      CHECK(hetee_hemat_conv_eval(e->ctx, &L, cin, cw, cbias, threads, out));
      if (r >= 0) tv[r] = bench_now_us() - t0;
    }
    double med = bench_median(tv, runs);
    printf("  conv_eval, %d thread%s: %10.2f ms  (min %.2f, %d runs; %.1f us per product)\n", threads,
           threads > 1 ? "s" : " ", med * 1e-3, tv[0] * 1e-3, runs, med / (double)L.n_products);
  }
  ret = 0;
err:
  cts_free(in, L.n_in_cts);
  cts_free(wc, L.n_w_cts);
  cts_free(bc, (size_t)L.nmb);
  cts_free(out, L.n_out_cts);
  free(w);
  free(bias);
  free(x);
  free(y);
  free(poly);
  free(tv);
  return ret;
}

static void usage(FILE *f) { fprintf(f, "usage: hetee-bench hemat [--runs R (>= 5)] [--batch B] [--costs]\n"); }

int hetee_bench_hemat(int argc, char **argv) {
  int runs = 20, costs_only = 0;
  long batch = 64;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atol(argv[++i]);
    else if (!strcmp(argv[i], "--costs")) costs_only = 1;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (runs < 5 || runs > 100000 || batch < 1 || batch > 100000) {
    usage(stderr);
    return 2;
  }
  int ret = 1;
  env e;
  memset(&e, 0, sizeof e);
  hetee_ckks_literal lit;
  hetee_ckks_literal_default(&lit);
  CHECK(hetee_ckks_context_new(&lit, &e.ctx));
  CHECK(hetee_ckks_keygen_secret(e.ctx, &e.sk));
  CHECK(hetee_ckks_keygen_public(e.ctx, e.sk, &e.pk));
  CHECK(hetee_ckks_plaintext_new(e.ctx, &e.pt));
  e.n = hetee_ckks_context_n(e.ctx);
  printf("hemat unit costs, logN 13, q {60,40,40} P {60}, level 1, 1 thread:\n");
  hetee_hemat_costs c;
  if (unit_costs(&e, runs < 200 ? 200 : runs, &c)) goto err;
  if (bound_costs(&e, runs < 200 ? 200 : runs)) goto err;
  hetee_hemat_costs d;
  hetee_hemat_costs_default(&d);
  printf("  defaults: t_product %.3g  t_enclave_enc %.3g  t_enclave_dec %.3g  t_client_enc %.3g  weight %.1f\n",
         d.t_product, d.t_enclave_enc, d.t_enclave_dec, d.t_client_enc, d.enclave_weight);
  hetee_hemat_costs_engine(&d);
  printf("  the engine's (hetee_hemat_costs_engine, from bound runs): t_product %.3g  t_enclave_enc %.3g  t_enclave_dec "
         "%.3g (coset %.3g)  t_out_host %.3g  weight %.2f\n",
         d.t_product, d.t_enclave_enc, d.t_enclave_dec, d.t_enclave_dec_coset, d.t_out_host, d.enclave_weight);
  /* the planner's own time (it runs once per layer and batch size) */
  {
    const hetee_hemat_shape d784 = {784, 1, 1, 128, 1, 1, 1, 1}, c616 = {6, 12, 12, 16, 5, 5, 1, 1};
    const hetee_hemat_shape *ps[2] = {&d784, &c616};
    const char *pn[2] = {"dense 784->128", "conv 6->16 5x5 12x12"};
    double tv[51];
    for (int k = 0; k < 2; k++) {
      hetee_hemat_pack p;
      for (int r = -3; r < 51; r++) {
        double t0 = bench_now_us();
        CHECK(hetee_hemat_choose(ps[k], (uint32_t)batch, e.n, 0, NULL, &p, NULL));
        if (r >= 0) tv[r] = bench_now_us() - t0;
      }
      printf("  hetee_hemat_choose(%s, batch %ld): %.3f ms (median of 51) -> cb=%d mb=%d nimg=%d\n", pn[k], batch,
             bench_median(tv, 51) * 1e-3, p.cb, p.mb, p.nimg);
    }
  }
  if (!costs_only) {
    printf("E2DM layers, packings from hetee_hemat_choose (default costs, inputs from the enclave):\n");
    const hetee_hemat_shape conv1 = {1, 28, 28, 5, 7, 7, 3, 3}, fc1 = {320, 1, 1, 64, 1, 1, 1, 1},
                            fc2 = {64, 1, 1, 10, 1, 1, 1, 1};
    if (bench_layer(&e, "conv 1->5 7x7 s3 28x28", &conv1, (uint32_t)batch, runs) ||
        bench_layer(&e, "dense 320->64", &fc1, (uint32_t)batch, runs) ||
        bench_layer(&e, "dense 64->10", &fc2, (uint32_t)batch, runs))
      goto err;
  }
  ret = 0;
err:
  hetee_ckks_plaintext_free(e.pt);
  hetee_ckks_public_key_free(e.pk);
  hetee_ckks_secret_key_free(e.sk);
  hetee_ckks_context_free(e.ctx);
  return ret;
}

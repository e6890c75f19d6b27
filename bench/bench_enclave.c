/*
 * bench_enclave.c — `hetee-bench enclave [--logn 13|14] [--cts N] [--json]`:
 * the enclave's cost per refreshed ciphertext (decrypt + decode + ReLU +
 * encode + fresh secret-key encryption, full slots, identity layout; then
 * the same in the shape hemat produces: degree-2 products at level 1 in,
 * N/8 coefficients each, coefficient-encoded ciphertexts out; and the same
 * at level 0, one prime, the shape of products the host rescales before
 * sending), both as CPU time inside the enclave (its own counters) and as
 * wall time seen by the host (including the socket round trip and
 * (de)serialization), for the configured threads and again on a second
 * enclave with threads=1 (the cost of one thread), plus the
 * cost of evidence generation (enclave + launcher signature) and of its
 * verification by a party, and of a release (ARGMAX of 10 values from one
 * ciphertext, under a policy set by the model provider the configuration's
 * mp= key lists, sealed to the data provider it names and opened there).
 * Runs the real launcher + enclave processes with a throw-away sim platform.
 * --breakdown instead times, in this process on one thread, the CKKS
 * functions the enclave runs per slot ciphertext at the top level and their
 * parts (keystream, NTTs, secret-key products, the rest): where a slot
 * refresh's CPU goes without the transport; and a degree-2 decryption at
 * level 0 of one coset of N/32 coefficients, in full and as a coset.
 */
#include <dirent.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hetee/ckks.h"
#include "hetee/client.h"
#include "hetee/host.h"
#include "bench_util.h"

static int die(const char *what, int rc) {
  fprintf(stderr, "hetee-bench enclave: %s: %s (%s)\n", what, hetee_strerror(rc), hetee_last_error());
  return 1;
}

/* Verifies evidence on a fresh nonce and opens a session for party k. */
static int open_session(hetee_host_enclave *e, const hetee_party_key *k, const uint8_t ppk[32], const uint8_t meas[32],
                        const uint8_t *bundle, size_t blen, hetee_client_session **s) {
  uint8_t nonce[32], ch[32], fp[32], *ev = NULL, *hs = NULL, *reply = NULL;
  size_t evlen = 0, hlen = 0, rlen = 0;
  hetee_verified_enclave v;
  randombytes_buf(nonce, 32);
  int rc = hetee_host_evidence(e, nonce, &ev, &evlen, ch, fp);
  if (!rc) rc = hetee_client_verify_evidence(ev, evlen, ppk, meas, bundle, blen, ch, nonce, &v);
  if (!rc) rc = hetee_client_session_new(k, &v, s, &hs, &hlen);
  if (!rc) rc = hetee_host_session_open(e, hs, hlen, &reply, &rlen);
  if (!rc) rc = hetee_client_session_finish(*s, reply, rlen);
  free(ev);
  free(hs);
  free(reply);
  return rc;
}

static uint64_t refresh_cpu_ns(hetee_host_enclave *e) {
  hetee_enclave_op_stats st[16];
  size_t n = 0;
  if (hetee_host_stats(e, st, 16, &n)) return 0;
  for (size_t i = 0; i < n; i++)
    if (st[i].type == HETEE_MSG_REFRESH) return st[i].cpu_ns;
  return 0;
}

/* CPU time of every thread of process pid so far (ns; the first field of
 * /proc/PID/task/TID/schedstat): whatever the process's own counters
 * count, this is all of it (receiving, wiping, the kernel's socket copies).
 * 0 when /proc cannot be read. */
static uint64_t proc_cpu_ns(int pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR *d = opendir(path);
  if (!d) return 0;
  uint64_t sum = 0;
  for (struct dirent *de; (de = readdir(d));) {
    if (de->d_name[0] == '.') continue;
    char f[128];
    snprintf(f, sizeof f, "/proc/%d/task/%.16s/schedstat", pid, de->d_name);
    FILE *fp = fopen(f, "r");
    unsigned long long ns = 0;
    if (fp && fscanf(fp, "%llu", &ns) == 1) sum += ns;
    if (fp) fclose(fp);
  }
  closedir(d);
  return sum;
}

/* The refresh of n ciphertexts (in groups of `group`) run 1 + reps times:
 * the first run only warms the enclave up (its allocator, its threads'
 * caches), then the medians of the enclave CPU time (STATS: all its
 * threads) and of the host's wall time, per input ciphertext, and the size
 * of the first output. */
static int timed_refresh(hetee_host_enclave *e, const hetee_refresh_spec *s, size_t group, uint8_t **cts, size_t *lens,
                         size_t n, int reps, double *cpu, double *wall, double *pcpu, size_t *olen0) {
  double c[64], w[64], pc[64];
  hetee_host_info info;
  int pid = hetee_host_info_get(e, &info) ? 0 : info.pid;
  if (reps > 64) reps = 64;
  for (int r = -1; r < reps; r++) {
    uint8_t **out = NULL;
    size_t *olens = NULL, nout = 0;
    uint64_t c0 = refresh_cpu_ns(e), p0 = proc_cpu_ns(pid);
    double t0 = bench_now();
    int rc = hetee_host_refresh_stream(e, s, group, (const uint8_t *const *)cts, lens, n, &out, &olens, &nout);
    double t1 = bench_now();
    uint64_t p1 = proc_cpu_ns(pid);
    if (rc) return rc;
    if (r >= 0) {
      w[r] = (t1 - t0) / (double)n;
      c[r] = (double)(refresh_cpu_ns(e) - c0) * 1e-9 / (double)n;
      pc[r] = (double)(p1 - p0) * 1e-9 / (double)n;
    }
    if (olen0) *olen0 = olens[0];
    }
  qsort(c, (size_t)reps, sizeof *c, bench_cmp_double);
  qsort(w, (size_t)reps, sizeof *w, bench_cmp_double);
  qsort(pc, (size_t)reps, sizeof *pc, bench_cmp_double);
  *cpu = c[reps / 2];
  *wall = w[reps / 2];
  *pcpu = pc[reps / 2];
  return 0;
}

typedef struct refresh_costs {
  /* per ciphertext: enclave CPU (its STATS), host wall, enclave process
   * CPU (/proc: all its threads, everything) */
  double relu_cpu, relu_wall, relu_proc; /* slots, ReLU, one ciphertext per request, top level */
  double c1_cpu, c1_wall, c1_proc;       /* coefficients, degree 2 in at level 1 */
  double c0_cpu, c0_wall, c0_proc;       /* coefficients, degree 2 in at level 0 */
  size_t relu_in, relu_out, c1_in, c0_in;
} refresh_costs;

/* The hemat shape (docs/hemat.md) at `level`: ncts degree-2 products (a
 * fresh encryption at scale sa times one at scale sb, not relinearized),
 * N/8 coefficients read from each, ReLU, written to N/8 coefficients of as
 * many fresh ciphertexts at the same level and scale out_scale, all in one
 * request. */
static int coeff_refresh(hetee_host_enclave *e, hetee_ckks_context *ctx, hetee_ckks_public_key *pk, int ncts, int reps,
                         int level, double sa, double sb, double out_scale, double *cpu, double *wall, double *pcpu,
                         size_t *inlen) {
  const size_t nn = hetee_ckks_context_n(ctx), per = nn / 8;
  hetee_ckks_ciphertext *w2 = NULL, *ct = NULL;
  hetee_ckks_plaintext *pt = NULL;
  hetee_refresh_op relu = {.kind = HETEE_OP_RELU};
  double *cv = malloc(nn * sizeof *cv);
  uint32_t *cmap = malloc((size_t)ncts * per * sizeof *cmap), *src = malloc((size_t)ncts * per * sizeof *src);
  uint8_t **c2 = calloc((size_t)ncts, sizeof *c2);
  size_t *c2l = calloc((size_t)ncts, sizeof *c2l);
  int rc = !cv || !cmap || !src || !c2 || !c2l ? HETEE_ERR_NOMEM : hetee_ckks_ciphertext_new(ctx, &w2);
  if (!rc) rc = hetee_ckks_ciphertext_new(ctx, &ct);
  if (!rc) rc = hetee_ckks_plaintext_new(ctx, &pt);
  for (size_t i = 0; !rc && i < nn; i++) cv[i] = (double)((int)(i % 13) - 6) / 8.0;
  for (size_t i = 0; !rc && i < (size_t)ncts * per; i++) {
    cmap[i] = (uint32_t)((i / per) * nn + (i % per) * 8 + 3);
    src[i] = (uint32_t)i;
  }
  if (!rc) rc = hetee_ckks_encode_coeffs(ctx, cv, nn, sb, level, pt);
  if (!rc) rc = hetee_ckks_encrypt_pk(ctx, pk, pt, w2);
  if (!rc) rc = hetee_ckks_encode_coeffs(ctx, cv, nn, sa, level, pt);
  for (int c = 0; c < ncts && !rc; c++) {
    rc = hetee_ckks_encrypt_pk(ctx, pk, pt, ct);
    if (!rc) rc = hetee_ckks_eval_mul(ctx, ct, w2, ct);
    if (!rc) rc = hetee_ckks_ciphertext_save(ctx, ct, &c2[c], &c2l[c]);
  }
  hetee_refresh_spec cs = {.in_level = level, .in_scale = sa * sb, .in_encoding = HETEE_ENC_COEFFS,
                           .shape = {1, 1, (int)((size_t)ncts * per)}, .in_map = cmap, .nops = 1, .ops = &relu,
                           .out_ncts = (uint32_t)ncts, .out_n = (size_t)ncts * per, .out_dst = cmap, .out_src = src,
                           .out_level = level, .out_scale = out_scale, .out_encoding = HETEE_ENC_COEFFS};
  if (!rc) rc = timed_refresh(e, &cs, (size_t)ncts, c2, c2l, (size_t)ncts, reps, cpu, wall, pcpu, NULL);
  if (!rc) *inlen = c2l[0];
  hetee_host_cts_free(c2, c2l, (size_t)ncts);
  hetee_ckks_ciphertext_free(w2);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_plaintext_free(pt);
  free(cv);
  free(cmap);
  free(src);
  return rc;
}

/* The three refreshes on one enclave (its key: ctx, pk). */
static int refresh_suite(hetee_host_enclave *e, hetee_ckks_context *ctx, hetee_ckks_public_key *pk, int ncts, int reps,
                         refresh_costs *rc_out) {
  memset(rc_out, 0, sizeof *rc_out);
  size_t slots = hetee_ckks_context_slots(ctx);
  double *v = malloc(slots * sizeof *v);
  uint32_t *map = malloc(slots * sizeof *map);
  uint8_t **cts = calloc((size_t)ncts, sizeof *cts);
  size_t *lens = calloc((size_t)ncts, sizeof *lens);
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ct = NULL;
  int rc = !v || !map || !cts || !lens ? HETEE_ERR_NOMEM : hetee_ckks_plaintext_new(ctx, &pt);
  if (!rc) rc = hetee_ckks_ciphertext_new(ctx, &ct);
  for (size_t i = 0; !rc && i < slots; i++) {
    v[i] = (double)((int)(i % 17) - 8) / 8.0;
    map[i] = (uint32_t)i;
  }
  for (int c = 0; c < ncts && !rc; c++) {
    rc = hetee_ckks_encode_real(ctx, v, slots, hetee_ckks_context_default_scale(ctx), hetee_ckks_context_max_level(ctx),
                                pt);
    if (!rc) rc = hetee_ckks_encrypt_pk(ctx, pk, pt, ct);
    if (!rc) rc = hetee_ckks_ciphertext_save(ctx, ct, &cts[c], &lens[c]);
  }
  if (rc) die("encrypt", rc);
  /* one ciphertext per job: ReLU over every slot, same layout out */
  hetee_refresh_op relu = {.kind = HETEE_OP_RELU};
  hetee_refresh_spec spec = {.in_level = -1, .shape = {1, 1, (int)slots}, .in_map = map, .nops = 1, .ops = &relu,
                             .out_ncts = 1, .out_n = slots, .out_dst = map, .out_src = map, .out_level = -1};
  if (!rc && (rc = timed_refresh(e, &spec, 1, cts, lens, (size_t)ncts, reps, &rc_out->relu_cpu, &rc_out->relu_wall,
                                 &rc_out->relu_proc, &rc_out->relu_out)))
    die("refresh", rc);
  if (!rc) rc_out->relu_in = lens[0];
  /* degree 2 at level 1 (scale 2^26 x 2^34 = 2^60), out at 2^26 */
  if (!rc && (rc = coeff_refresh(e, ctx, pk, ncts, reps, 1, 0x1p26, 0x1p34, 0x1p26, &rc_out->c1_cpu, &rc_out->c1_wall,
                                 &rc_out->c1_proc, &rc_out->c1_in)))
    die("coefficient refresh at level 1", rc);
  /* degree 2 at level 0, one prime (what a product rescaled to level 0
   * looks like: scale 2^17 x 2^13 = 2^30), out at 2^26 */
  if (!rc && (rc = coeff_refresh(e, ctx, pk, ncts, reps, 0, 0x1p17, 0x1p13, 0x1p26, &rc_out->c0_cpu, &rc_out->c0_wall,
                                 &rc_out->c0_proc, &rc_out->c0_in)))
    die("coefficient refresh at level 0", rc);
  hetee_host_cts_free(cts, lens, (size_t)ncts);
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_ciphertext_free(ct);
  free(v);
  free(map);
  return rc;
}

/* ---- --breakdown: where a slot refresh's CPU goes, in process ------------
 *
 * The CKKS functions the enclave runs per slot ciphertext at the top level
 * of its configuration's chain (logN 13: q = 60, 40, 40 bits), timed in this
 * process on one thread: the fused decryption + decoding and encoding +
 * encryption the enclave calls (with a scratch arena, as the enclave), and
 * their parts, each the best of 21 batches (thread CPU time). The parts are
 * the same calls the fused functions make, on the same sizes. */
#include <time.h>

#include "ckks/ckks_arena.h"
#include "ckks/ckks_internal.h"
#include "ring/ring_shoup.h"

static double thread_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}
#define BD_TIME(var, reps, stmt)                                                                                       \
  do {                                                                                                                 \
    double best_ = 1e30;                                                                                               \
    for (int b_ = 0; b_ < 21; b_++) {                                                                                  \
      double t0_ = thread_us();                                                                                        \
      for (int r_ = 0; r_ < (reps); r_++) { stmt; }                                                                    \
      double t_ = (thread_us() - t0_) / (reps);                                                                        \
      if (t_ < best_) best_ = t_;                                                                                      \
    }                                                                                                                  \
    var = best_;                                                                                                       \
  } while (0)

static int breakdown(int logn, int json) {
  hetee_ckks_literal lit;
  hetee_ckks_literal_default(&lit); /* logN 13: q {60, 40, 40}, p {60}, as the enclave bench */
  lit.log_n = logn;
  if (logn == 14) { /* the enclave bench's logN 14 chain: q {60, 40 x 5} */
    lit.nq = 6;
    for (int i = 1; i < 6; i++) lit.q_bits[i] = 40;
  }
  hetee_ckks_context *ctx = NULL;
  hetee_ckks_secret_key *sk = NULL;
  hetee_ckks_ciphertext *ct = NULL;
  int rc = hetee_ckks_context_new(&lit, &ctx);
  if (!rc) rc = hetee_ckks_keygen_secret(ctx, &sk);
  if (!rc) rc = hetee_ckks_ciphertext_new(ctx, &ct);
  if (rc) return die("breakdown set-up", rc);
  size_t N = hetee_ckks_context_n(ctx), S = N / 2, nt = (size_t)ctx->nt, ab = ckks_arena_bytes(ctx);
  int top = hetee_ckks_context_max_level(ctx);
  double sc = hetee_ckks_context_default_scale(ctx), *v = malloc(S * sizeof *v), *o = malloc(S * sizeof *o);
  void *arena = aligned_alloc(64, (ab + 63) & ~(size_t)63);
  uint64_t *row = hetee_alloc(N * 8);
  int8_t *e = malloc(N);
  uint8_t seed[32] = {1}, *ks = malloc(65536);
  if (!v || !o || !arena || !row || !e || !ks) return die("breakdown set-up", HETEE_ERR_NOMEM);
  for (size_t i = 0; i < S; i++) v[i] = sin(0.1 * (double)i);
  ckks_arena_set(arena, ab);
  double enc = 0, dec = 0, t = 0, dots = 0, subs = 0, inv = 0, fwd = 0, unif = 0, cbd = 0, st64 = 0, st48 = 0;
  BD_TIME(enc, 40, rc |= ckks_encrypt_sk_real_bounded(ctx, sk, v, S, sc, top, 0x1p20, ct));
  BD_TIME(dec, 40, rc |= ckks_decrypt_decode_real(ctx, sk, ct, sc, o, S));
  if (rc) return die("breakdown", rc);
  const uint64_t *der = ckks_sk_derived(ctx, sk);
  if (!der) return die("breakdown", HETEE_ERR_NOMEM);
  hetee_prg prg;
  if (!json) printf("per prime (us): prime bits, decrypt product, encrypt product, inverse NTT, forward NTT, a\n");
  for (int i = 0; i <= top; i++) {
    const hetee_modulus *m = &ctx->mod[i];
    size_t off = (size_t)i * N;
    const uint64_t *sp = der + CKKS_SKD_S_SHOUP * nt * N + off;
    double d1, s1, i1, f1, u1;
    BD_TIME(d1, 200, hetee_vec_shoup_dot(m, ct->c[0] + off, ct->c[1] + off, sk->s + off, sp, NULL, NULL, NULL, row, N));
    BD_TIME(i1, 200, hetee_ntt_inverse(ctx->ntt[i], row));
    BD_TIME(f1, 200, hetee_ntt_forward(ctx->ntt[i], row));
    BD_TIME(s1, 200, hetee_vec_shoup_sub(m, row, ct->c[1] + off, sk->s + off, sp, row, N));
    BD_TIME(u1, 100, (hetee_prg_init(&prg, seed, 1), hetee_sample_uniform(&prg, m, row, N)));
    if (!json) printf("  q_%d %2d bits   %6.1f %6.1f %6.1f %6.1f %6.1f\n", i, m->bits, d1, s1, i1, f1, u1);
    dots += d1, subs += s1, inv += i1, fwd += f1, unif += u1;
  }
  BD_TIME(cbd, 100, (hetee_prg_init(&prg, seed, 0), hetee_sample_cbd(&prg, e, N)));
  BD_TIME(st64, 100, crypto_stream_chacha20(ks, 65536, seed, seed));
  BD_TIME(st48, 100, crypto_stream_chacha20(ks, 49152, seed, seed));
  /* a refresh input of a dense stage: a degree-2 ciphertext at level 0
   * (public random rows stand in for the host's product) of which the
   * coefficients 31 + 32 t are named: decrypted in full, then as a coset */
  double dfull = 0, dcoset = 0;
  size_t ns = N / 32;
  uint8_t *d2 = malloc(3 * N * 8);
  uint32_t *ci = malloc(ns * sizeof *ci);
  ckks_coset *cs = NULL;
  if (!d2 || !ci || ckks_coset_new(ctx, 5, 31, &cs)) return die("breakdown coset set-up", HETEE_ERR_NOMEM);
  hetee_prg_init(&prg, seed, 7);
  for (int k = 0; k < 3; k++) {
    hetee_sample_uniform(&prg, &ctx->mod[0], row, N);
    memcpy(d2 + (size_t)k * N * 8, row, N * 8); /* little-endian host */
  }
  for (size_t i = 0; i < ns; i++) ci[i] = (uint32_t)(31 + 32 * i);
  ckks_ct_view dv = {0, 3, 0x1p24, {d2, d2 + N * 8, d2 + 2 * N * 8}, NULL, 0};
  BD_TIME(dfull, 100, rc |= ckks_decrypt_coeffs_view(ctx, sk, &dv, 0x1p24, NULL, ci, ns, o));
  BD_TIME(dcoset, 100, rc |= ckks_decrypt_coeffs_view(ctx, sk, &dv, 0x1p24, cs, ci, ns, o));
  if (rc) return die("breakdown coset", rc);
  ckks_coset_free(cs);
  free(d2);
  free(ci);
  hetee_prg_wipe(&prg);
  t = enc + dec;
  double rest = t - (dots + subs + inv + fwd + unif + cbd);
  if (json)
    printf("{\"suite\": \"enclave_breakdown\", \"logn\": %d, \"slot_encrypt_us\": %.1f, \"slot_decrypt_decode_us\": %.1f, "
           "\"sk_products_us\": %.1f, \"ntt_inverse_us\": %.1f, \"ntt_forward_us\": %.1f, \"uniform_a_us\": %.1f, "
           "\"noise_cbd_us\": %.1f, \"chacha20_64k_us\": %.1f, \"chacha20_48k_us\": %.1f, \"rest_us\": %.1f, "
           "\"dec2_l0_full_us\": %.1f, \"dec2_l0_coset32_us\": %.1f}\n",
           logn, enc, dec, dots + subs, inv, fwd, unif, cbd, st64, st48, rest, dfull, dcoset);
  else {
    printf("slot refresh at the top level, in process, one thread (best of 21 batches), us:\n");
    printf("  encode + encrypt %.1f, decrypt + decode %.1f: total %.1f\n", enc, dec, t);
    printf("  ChaCha20 keystream and samplers: a %.1f (%.0f %%), noise %.1f (%.0f %%); stream alone 64 KiB %.1f, 48 KiB %.1f\n",
           unif, 100 * unif / t, cbd, 100 * cbd / t, st64, st48);
    printf("  NTTs: inverse %.1f, forward %.1f (%.0f %%)\n", inv, fwd, 100 * (inv + fwd) / t);
    printf("  secret-key products %.1f (%.0f %%)\n", dots + subs, 100 * (dots + subs) / t);
    printf("  the rest (CRT, FFTs, rounding, copies) %.1f (%.0f %%)\n", rest, 100 * rest / t);
    printf("degree-2 decryption at level 0 of the N/32 coefficients 31 + 32 t (a dense stage's refresh input), us:\n");
    printf("  full inverse NTT %.1f, coset (weights, block sums, inverse NTT of size N/32) %.1f\n", dfull, dcoset);
  }
  ckks_arena_set(NULL, 0);
  sodium_memzero(arena, ab);
  free(arena);
  hetee_free(row);
  free(e);
  free(ks);
  free(v);
  free(o);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_secret_key_free(sk);
  hetee_ckks_context_free(ctx);
  return 0;
}

int hetee_bench_enclave(int argc, char **argv) {
  int logn = 13, ncts = 16, json = 0, threads = 2, reps = 5, bd = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--logn") && i + 1 < argc) logn = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--cts") && i + 1 < argc) ncts = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--breakdown")) bd = 1;
    else {
      fprintf(stderr,
              "usage: hetee-bench enclave [--logn 13|14] [--cts N] [--threads T] [--reps R] [--json] [--breakdown]\n");
      return 2;
    }
  }
  if ((logn != 13 && logn != 14) || ncts < 1 || ncts > 1024 || threads < 1 || threads > 64 || reps < 1 || reps > 64) {
    fprintf(stderr, "hetee-bench enclave: --logn 13|14, --cts 1..1024, --threads 1..64, --reps 1..64\n");
    return 2;
  }
  if (sodium_init() < 0) return 1;
  if (bd) return breakdown(logn, json);
  char dir[] = "/tmp/hetee-bench-XXXXXX", plat[64], base[200], config[HETEE_ENCLAVE_CONFIG_MAX + 1];
  if (!mkdtemp(dir)) return 1;
  snprintf(plat, sizeof plat, "%s/platform", dir);
  snprintf(base, sizeof base, "logn=%d;q=%s;p=60;scale=40;budget=268435456;max_galois=64;threads=%d", logn,
           logn == 13 ? "60,40,40" : "60,40,40,40,40,40", threads);
  hetee_party_key *mp = NULL, *dp = NULL;
  hetee_client_session *mps = NULL, *dps = NULL;
  uint8_t mp_pk[1][32], dp_pk[32];
  int rc = hetee_party_key_generate(HETEE_PARTY_MP, &mp), code = 1;
  if (!rc) rc = hetee_party_key_generate(HETEE_PARTY_DP, &dp);
  if (rc) return die("party keys", rc);
  hetee_party_key_public(mp, mp_pk[0]);
  hetee_party_key_public(dp, dp_pk);
  /* the model provider is named in the (measured) configuration */
  rc = hetee_enclave_config_with_mps(base, (const uint8_t(*)[32])mp_pk, 1, config, sizeof config);
  if (!rc) rc = hetee_platform_init(plat);
  if (rc) {
    hetee_party_key_free(mp);
    hetee_party_key_free(dp);
    return die("platform init", rc);
  }
  hetee_host_options o = {.platform_dir = plat, .config = config};
  hetee_host_enclave *e = NULL;
  hetee_ckks_context *ctx = NULL;
  hetee_ckks_public_key *pk = NULL;
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ct = NULL;
  uint8_t *bundle = NULL;
  size_t blen = 0;
  double *v = NULL;
  uint32_t *map = NULL;
  if ((rc = hetee_host_start(&o, &e))) {
    die("start", rc);
    goto out;
  }
  double t0 = bench_now();
  if ((rc = hetee_host_keygen(e, NULL, 0))) {
    die("keygen", rc);
    goto out;
  }
  double t_keygen = bench_now() - t0;
  const uint8_t *item;
  size_t ilen;
  if ((rc = hetee_host_public_keys(e, &bundle, &blen)) ||
      (rc = hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PARAMS, &item, &ilen)) ||
      (rc = hetee_ckks_context_load(item, ilen, &ctx)) ||
      (rc = hetee_key_bundle_get(bundle, blen, HETEE_BUNDLE_PUBLIC_KEY, &item, &ilen)) ||
      (rc = hetee_ckks_public_key_load(ctx, item, ilen, &pk))) {
    die("key bundle", rc);
    goto out;
  }
  size_t slots = hetee_ckks_context_slots(ctx);
  v = malloc(slots * sizeof *v);
  map = malloc(slots * sizeof *map);
  if (!v || !map || hetee_ckks_plaintext_new(ctx, &pt) || hetee_ckks_ciphertext_new(ctx, &ct)) {
    die("memory", HETEE_ERR_NOMEM);
    goto out;
  }
  for (size_t i = 0; i < slots; i++) {
    v[i] = (double)((int)(i % 17) - 8) / 8.0;
    map[i] = (uint32_t)i;
  }
  refresh_costs rt, r1;
  if ((rc = refresh_suite(e, ctx, pk, ncts, reps, &rt))) goto out;
  /* the same on an enclave with threads=1: the cost of one thread */
  if (threads == 1) {
    r1 = rt;
  } else {
    char base1[200], config1[HETEE_ENCLAVE_CONFIG_MAX + 1];
    snprintf(base1, sizeof base1, "logn=%d;q=%s;p=60;scale=40;budget=268435456;max_galois=64;threads=1", logn,
             logn == 13 ? "60,40,40" : "60,40,40,40,40,40");
    hetee_host_options o1 = {.platform_dir = plat, .config = config1};
    hetee_host_enclave *e1 = NULL;
    hetee_ckks_context *ctx1 = NULL;
    hetee_ckks_public_key *pk1 = NULL;
    uint8_t *bundle1 = NULL;
    size_t blen1 = 0;
    rc = hetee_enclave_config_with_mps(base1, (const uint8_t(*)[32])mp_pk, 1, config1, sizeof config1);
    if (!rc) rc = hetee_host_start(&o1, &e1);
    if (!rc) rc = hetee_host_keygen(e1, NULL, 0);
    if (!rc) rc = hetee_host_public_keys(e1, &bundle1, &blen1);
    if (!rc) rc = hetee_key_bundle_get(bundle1, blen1, HETEE_BUNDLE_PARAMS, &item, &ilen);
    if (!rc) rc = hetee_ckks_context_load(item, ilen, &ctx1);
    if (!rc) rc = hetee_key_bundle_get(bundle1, blen1, HETEE_BUNDLE_PUBLIC_KEY, &item, &ilen);
    if (!rc) rc = hetee_ckks_public_key_load(ctx1, item, ilen, &pk1);
    if (rc) die("enclave with threads=1", rc);
    else rc = refresh_suite(e1, ctx1, pk1, ncts, reps, &r1);
    hetee_ckks_public_key_free(pk1);
    hetee_ckks_context_free(ctx1);
    free(bundle1);
    hetee_host_free(e1);
    if (rc) goto out;
  }
  /* evidence: generation through the enclave and launcher, then verification */
  uint8_t ppk[32], meas[32], nonce[32], ch[32], fp[32];
  hetee_host_info info;
  if ((rc = hetee_platform_load_public(plat, ppk)) || (rc = hetee_host_info_get(e, &info))) goto out;
  memcpy(meas, info.measurement, 32);
  const int ereps = 50;
  double t_ev = 0, t_ver = 0;
  for (int r = 0; r < ereps; r++) {
    uint8_t *ev;
    size_t evlen;
    randombytes_buf(nonce, 32);
    t0 = bench_now();
    if ((rc = hetee_host_evidence(e, nonce, &ev, &evlen, ch, fp))) {
      die("evidence", rc);
      goto out;
    }
    double t1 = bench_now();
    rc = hetee_client_verify_evidence(ev, evlen, ppk, meas, bundle, blen, ch, nonce, NULL);
    double t2 = bench_now();
    free(ev);
    if (rc) {
      die("verify", rc);
      goto out;
    }
    t_ev += t1 - t0;
    t_ver += t2 - t1;
  }
  t_ev /= ereps;
  t_ver /= ereps;
  /* release: policy by the listed MP, ARGMAX of slots 0..9 to the DP */
  uint8_t *m = NULL, *sm = NULL, *rep = NULL, *pl = NULL;
  size_t ml = 0, sml = 0, rl = 0, pll = 0;
  if ((rc = open_session(e, mp, ppk, meas, bundle, blen, &mps)) ||
      (rc = open_session(e, dp, ppk, meas, bundle, blen, &dps)) ||
      (rc = hetee_client_msg_policy(1, HETEE_RELEASE_ARGMAX, 0, 8, dp_pk, &m, &ml)) ||
      (rc = hetee_client_session_seal(mps, m, ml, &sm, &sml)) || (rc = hetee_host_session_msg(e, sm, sml, &rep, &rl)) ||
      (rc = hetee_client_session_open(mps, rep, rl, &pl, &pll))) {
    free(m);
    free(sm);
    free(rep);
    die("sessions and policy", rc);
    goto out;
  }
  free(m);
  free(sm);
  free(rep);
  free(pl);
  uint8_t sid[16];
  hetee_client_session_id(dps, sid);
  /* releases decode at a large scale (2^90), so that the flooding noise
   * (hetee_release_spec) stays below the policy's 2^-8 */
  uint8_t *rct = NULL;
  size_t rlen = 0;
  const double rscale = 0x1p90;
  if ((rc = hetee_ckks_encode_real(ctx, v, slots, rscale, hetee_ckks_context_max_level(ctx), pt)) ||
      (rc = hetee_ckks_encrypt_pk(ctx, pk, pt, ct)) || (rc = hetee_ckks_ciphertext_save(ctx, ct, &rct, &rlen))) {
    die("encrypt for release", rc);
    goto out;
  }
  const hetee_release_spec rs = {.in_level = -1, .in_scale = rscale, .map = map, .n = 10};
  double t_rel = 0;
  for (int r = 0; r < ereps; r++) {
    uint8_t *sealed;
    size_t slen;
    hetee_release_result res;
    t0 = bench_now();
    const uint8_t *rcts[1] = {rct};
    rc = hetee_host_release(e, 1, sid, &rs, rcts, &rlen, 1, &sealed, &slen);
    if (!rc) {
      rc = hetee_client_release_open(dps, sealed, slen, &res);
      free(sealed);
    }
    t_rel += bench_now() - t0;
    if (!rc && (res.n != 1 || res.indices[0] != 9)) rc = HETEE_ERR_INTERNAL; /* v[0..9] = -1 .. 1/8 */
    if (!rc) hetee_release_result_clear(&res);
    if (rc) {
      free(rct);
      die("release", rc);
      goto out;
    }
  }
  free(rct);
  t_rel /= ereps;
  if (json) {
    printf("{\"suite\":\"enclave\",\"logn\":%d,\"cts\":%d,\"threads\":%d,\"keygen_s\":%.6f", logn, ncts, threads,
           t_keygen);
    const refresh_costs *qs[2] = {&rt, &r1};
    const char *pre[2] = {"", "t1_"};
    for (int k = 0; k < 2; k++) {
      const refresh_costs *q = qs[k];
      printf(",\"%srefresh_relu_cpu_ms_per_ct\":%.4f,\"%srefresh_relu_wall_ms_per_ct\":%.4f,"
             "\"%srefresh_relu_proc_cpu_ms_per_ct\":%.4f,\"%srefresh_coeffs_cpu_ms_per_ct\":%.4f,"
             "\"%srefresh_coeffs_wall_ms_per_ct\":%.4f,\"%srefresh_coeffs_proc_cpu_ms_per_ct\":%.4f,"
             "\"%srefresh_coeffs_l0_cpu_ms_per_ct\":%.4f,\"%srefresh_coeffs_l0_wall_ms_per_ct\":%.4f,"
             "\"%srefresh_coeffs_l0_proc_cpu_ms_per_ct\":%.4f",
             pre[k], q->relu_cpu * 1e3, pre[k], q->relu_wall * 1e3, pre[k], q->relu_proc * 1e3, pre[k], q->c1_cpu * 1e3,
             pre[k], q->c1_wall * 1e3, pre[k], q->c1_proc * 1e3, pre[k], q->c0_cpu * 1e3, pre[k], q->c0_wall * 1e3,
             pre[k], q->c0_proc * 1e3);
    }
    printf(",\"ct_bytes_in\":%zu,\"ct_bytes_out\":%zu,\"ct2_bytes_in_l1\":%zu,\"ct2_bytes_in_l0\":%zu,"
           "\"evidence_gen_ms\":%.4f,\"evidence_verify_ms\":%.4f,\"release_argmax10_ms\":%.4f}\n",
           rt.relu_in, rt.relu_out, rt.c1_in, rt.c0_in, t_ev * 1e3, t_ver * 1e3, t_rel * 1e3);
  } else {
    printf("enclave (sim backend), logN %d, %zu slots, %d ciphertexts, medians of %d refreshes after one "
           "warm-up\n", logn, slots, ncts, reps);
    printf("  key generation (sk, pk, relin)         %10.3f ms\n", t_keygen * 1e3);
    printf("  per ciphertext, ms: enclave CPU (its STATS) / enclave process CPU (/proc, all) / host wall\n");
    printf("                                                 threads=%-2d                    threads=1\n", threads);
    printf("  refresh, ReLU, slots, top level in and out   %6.3f / %6.3f / %6.3f   %6.3f / %6.3f / %6.3f\n",
           rt.relu_cpu * 1e3, rt.relu_proc * 1e3, rt.relu_wall * 1e3, r1.relu_cpu * 1e3, r1.relu_proc * 1e3,
           r1.relu_wall * 1e3);
    printf("  refresh, coefficients, degree 2 in, level 1  %6.3f / %6.3f / %6.3f   %6.3f / %6.3f / %6.3f\n",
           rt.c1_cpu * 1e3, rt.c1_proc * 1e3, rt.c1_wall * 1e3, r1.c1_cpu * 1e3, r1.c1_proc * 1e3, r1.c1_wall * 1e3);
    printf("  refresh, coefficients, degree 2 in, level 0  %6.3f / %6.3f / %6.3f   %6.3f / %6.3f / %6.3f\n",
           rt.c0_cpu * 1e3, rt.c0_proc * 1e3, rt.c0_wall * 1e3, r1.c0_cpu * 1e3, r1.c0_proc * 1e3, r1.c0_wall * 1e3);
    printf("    (coefficient refreshes: N/8 values per ciphertext, ReLU, fresh out at the input's level; per\n"
           "     ciphertext in + out)\n");
    printf("  ciphertext bytes: ReLU in %zu (public-key encrypted), out %zu (seeded); degree 2 in %zu (level 1), "
           "%zu (level 0)\n", rt.relu_in, rt.relu_out, rt.c1_in, rt.c0_in);
    printf("  evidence generation (enclave + launcher) %8.3f ms\n", t_ev * 1e3);
    printf("  evidence verification (party)            %8.3f ms\n", t_ver * 1e3);
    printf("  release, ARGMAX of 10 values, host wall + DP open %8.3f ms\n", t_rel * 1e3);
  }
  code = 0;
out:
  if (rc && code) fprintf(stderr, "hetee-bench enclave: failed: %s\n", hetee_last_error());
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_public_key_free(pk);
  hetee_ckks_context_free(ctx);
  free(bundle);
  free(v);
  free(map);
  hetee_host_free(e);
  hetee_client_session_free(mps);
  hetee_client_session_free(dps);
  hetee_party_key_free(mp);
  hetee_party_key_free(dp);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "hetee-bench enclave: could not remove %s\n", dir);
  return code;
}
